// What the HSM tests share: a SoftHSM2 token with an RSA-2048 and a P-256 key, the keyserver
// config that serves them, `keyserver --check` on a config, and a TLS 1.3 P-256 sign request.
#pragma once

#include "frames.hpp"
#include "keyserver_fixture.hpp"
#include "softhsm.hpp"

namespace keyless::test {

// A token with an RSA-2048 and a P-256 key, and keyserver configs that serve them.
struct HsmSetup {
    HsmSetup() {
        hsm.generate("rsa:2048", "www-rsa", "01");
        hsm.generate("EC:prime256v1", "www-ec", "02");
    }
    // `keys_dir`: the key files served beside (an empty directory: none).
    std::string config(const std::string& keys_dir, const std::string& pin_file = "",
                       const std::string& module = "") const {
        return R"({"keys_dir": ")" + keys_dir + R"(", "pkcs11": {"module": ")" +
               (module.empty() ? SoftHsm::module() : module) + R"(", "pin_file": ")" +
               (pin_file.empty() ? hsm.pin_file() : pin_file) + R"("},
            "keys": {
              "hsm-rsa": {"pkcs11": "pkcs11:token=edge;object=www-rsa",
                          "allow": ["sign-tls", "rsa-decrypt-tls"]},
              "hsm-ec": {"pkcs11": "pkcs11:token=edge;id=%02", "allow": ["sign-tls"]}}})";
    }
    SoftHsm hsm;
    TempDir no_key_files;
};

// The keyserver's --check output and exit status for `config`.
inline int check(const std::string& config, std::string& out) {
    TempDir dir;
    write_file(dir / "ks.json", config);
    return run_command(keyserver_binary() + " --check --config " + (dir / "ks.json") + " --cert " +
                           pki("keyserver.crt") + " --key " + pki("keyserver.key") +
                           " --client-ca " + pki("ca.crt"),
                       &out);
}

inline protocol::Operation sign_p256(const std::string& key) {
    auto op =
        protocol::Operation::make(protocol::Opcode::SignTLS, tls13_certificate_verify_input());
    op.key_name = key;
    op.signature_scheme = 0x0403;
    return op;
}

} // namespace keyless::test
