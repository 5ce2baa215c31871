// A SoftHSM2 token in a temporary directory, for tests that serve keys from an HSM: made with
// softhsm2-util, keys generated inside it (sensitive, never extractable) by opensc's
// pkcs11-tool. SOFTHSM2_CONF points at it for this process and the programs it starts.
#pragma once

#include "process.hpp"

#include <cstdint>
#include <string>

namespace keyless::test {

class SoftHsm {
  public:
    explicit SoftHsm(const std::string& label = "edge", const std::string& pin = "1234");
    ~SoftHsm(); // unsets SOFTHSM2_CONF
    SoftHsm(const SoftHsm&) = delete;
    SoftHsm& operator=(const SoftHsm&) = delete;

    // Generates a key pair in the token: type as pkcs11-tool's --key-type ("EC:prime256v1",
    // "rsa:2048", "EC:edwards25519"), labelled `label`, CKA_ID `id` (hex).
    void generate(const std::string& type, const std::string& label, const std::string& id);
    // Generates an Ed448 key pair in the token through PKCS#11 itself (CKM_EC_EDWARDS_KEY_PAIR_GEN
    // with edwards448's OID): Debian 12's pkcs11-tool knows only edwards25519.
    void generate_ed448(const std::string& label, uint8_t id);
    // Deletes every object file of the token, as if the HSM lost it, and returns
    void lose_objects();

    static std::string module() { return "/usr/lib/softhsm/libsofthsm2.so"; }
    const std::string& label() const { return label_; }
    std::string pin_file() const { return dir_ / "pin"; }
    std::string conf() const { return dir_ / "softhsm2.conf"; }

  private:
    TempDir dir_;
    std::string label_;
    std::string pin_;
};

} // namespace keyless::test
