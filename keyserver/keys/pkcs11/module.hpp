// A PKCS#11 module (SoftHSM2's libsofthsm2.so, an HSM vendor's library), loaded with dlopen and
// initialised once. C_Initialize may succeed only once per process, so a module lives as long
// as the registry that loaded it (the running keyserver), across reloads.
#pragma once

#include "keys/key_operations.hpp"

#include <p11-kit/pkcs11.h>

#include <string>

namespace keyless::keyserver {

// The name of a PKCS#11 return value ("CKR_PIN_INCORRECT"; "CKR_0x..." for a vendor's own).
std::string ckr_name(CK_RV rv);

// An HSM failure: its own class in the access log ("hsm error") and metrics ("hsm_error"), with
// a message naming the token and the CKR_* value.
class HsmError : public KeySourceError {
  public:
    HsmError(const std::string& what, CK_RV rv)
        : KeySourceError(what + " (" + ckr_name(rv) + ")"), rv_(rv) {}
    explicit HsmError(const std::string& what) : KeySourceError(what), rv_(CKR_GENERAL_ERROR) {}
    CK_RV rv() const { return rv_; }

  private:
    CK_RV rv_;
};

class Pkcs11Module {
  public:
    // dlopen, C_GetFunctionList, C_Initialize (with the OS's locking: several threads call in);
    // throws HsmError naming the path.
    explicit Pkcs11Module(const std::string& path);
    ~Pkcs11Module(); // C_Finalize, dlclose
    Pkcs11Module(const Pkcs11Module&) = delete;
    Pkcs11Module& operator=(const Pkcs11Module&) = delete;

    CK_FUNCTION_LIST* fn() const { return fn_; }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
    void* handle_ = nullptr;
    CK_FUNCTION_LIST* fn_ = nullptr;
};

// A PKCS#11 text field (blank-padded, not NUL-terminated) as a string without the padding.
std::string pkcs11_text(const unsigned char* field, size_t size);

} // namespace keyless::keyserver
