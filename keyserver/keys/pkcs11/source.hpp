// Keys in PKCS#11 tokens, named in the config by RFC 7512 URIs
// ("keys": {"www": {"pkcs11": "pkcs11:token=edge;object=www", ...}}). The registry keeps every
// module it loaded and every token it logged in to for the life of the keyserver: a module is
// initialised once per process, and a reload reuses the tokens' logins and sessions.
#pragma once

#include "keys/key_store.hpp"
#include "keys/pkcs11/token.hpp"

#include <map>
#include <memory>
#include <mutex>

namespace keyless::keyserver {

class Pkcs11Registry {
  public:
    Pkcs11Registry() = default;
    Pkcs11Registry(const Pkcs11Registry&) = delete;
    Pkcs11Registry& operator=(const Pkcs11Registry&) = delete;

    // Loads key `name` from `uri`: the module (the URI's module-path, else settings.module), the
    // one token the URI matches, logged in with the PIN (the URI's pin-value or pin-source, else
    // settings.pin_file), the private key object and its public key (a public key object or a
    // certificate with the same CKA_ID, or the RSA private key's own modulus). Throws HsmError or
    // std::runtime_error with a message naming the URI, the token and the cause.
    std::shared_ptr<Key> load(const std::string& name, const std::string& uri,
                              const Pkcs11Settings& settings);

  private:
    std::shared_ptr<Pkcs11Module> module(const std::string& path);
    // The logged-in token in `slot` of `mod`, made again when the PIN changed.
    std::shared_ptr<Pkcs11Token> token(const std::shared_ptr<Pkcs11Module>& mod, CK_SLOT_ID slot,
                                       const std::string& label, const std::string& pin,
                                       const Pkcs11Settings& settings);

    std::mutex mutex_; // loads run at start and on reloads, one at a time, but --check too
    std::map<std::string, std::shared_ptr<Pkcs11Module>> modules_;
    std::map<std::string, std::shared_ptr<Pkcs11Token>> tokens_; // by module, slot and label
};

} // namespace keyless::keyserver
