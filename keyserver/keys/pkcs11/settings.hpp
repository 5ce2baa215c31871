// The config's "pkcs11" object (docs/hsm.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace keyless::keyserver {

struct Pkcs11Settings {
    std::string module;      // the module's path, unless a key's URI has module-path
    std::string pin_file;    // the user PIN, unless a key's URI has pin-source or pin-value
    size_t max_sessions = 4; // per token: sessions and worker threads
    std::chrono::milliseconds session_wait{2000}; // the longest wait for a free session
    size_t max_queue = 1024; // operations waiting per token; past it requests get Overloaded
    bool allow_insecure_permissions = false; // allow_insecure_key_permissions: others may read
                                             // the PIN file
};

} // namespace keyless::keyserver
