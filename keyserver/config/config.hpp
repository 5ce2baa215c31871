// Keyserver settings: from a JSON file (--config), overridden by command-line flags.
#pragma once

#include "keys/pkcs11/settings.hpp"
#include "ops/policy.hpp"
#include "ops/rate_limits.hpp"

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace keyless::keyserver {

struct Limits {
    size_t max_connections = 4096;              // authenticated connections
    size_t max_handshaking = 1024;              // connections still in the TLS handshake
    size_t max_handshaking_per_source = 64;     // of those, from one source address
    size_t max_in_flight_per_connection = 1024; // as gokeyless
    // Bytes of requests being worked on plus replies not yet written: past the per-connection
    // budget the connection is not read; past the server-wide one requests get Overloaded.
    size_t max_buffered_bytes_per_connection = 1 << 20;
    size_t max_buffered_bytes = 256u << 20;
    size_t max_ping_payload = 4096;
    size_t max_frame_bytes = 8 + 65535; // header + the largest body the format allows
    std::chrono::milliseconds handshake_timeout{3'000};
    std::chrono::milliseconds idle_timeout{300'000};
};

struct Config {
    std::string listen = "127.0.0.1:2407";
    unsigned threads = 0; // 0: one per core
    std::string cert_file;
    std::string key_file;
    std::string client_ca_file;
    std::string crl_file; // optional: client certificates it revokes are refused
    std::string keys_dir;
    bool allow_insecure_key_permissions = false;
    // Refuse to start (and to reload) when any key cannot be loaded, instead of serving the
    // others and reporting the missing ones.
    bool strict_start = false;
    std::string access_log; // empty: none; "-": standard output
    std::string ready_file; // written with the bound HOST:PORT once listening (for scripts)
    std::string admin_listen = "127.0.0.1:2406"; // admin HTTP listener; "off" disables it
    std::string admin_token_file; // bearer token, required for a non-loopback admin address
    std::chrono::milliseconds drain_timeout{10'000}; // SIGTERM: how long to let requests finish
    Limits limits;
    Policies policies;           // default_policy and keys.NAME
    RateLimitPolicy rate_limits; // default_limits, keys.NAME.limits, clients.SELECTOR.limits
    Pkcs11Settings pkcs11;       // the pkcs11 object
    std::map<std::string, std::string> pkcs11_keys; // keys.NAME.pkcs11: name -> RFC 7512 URI
};

// An error in the configuration; the message names the JSON key (e.g. "keys.rsa.allow[1]") or
// the flag, and the file.
class ConfigError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Reads a JSON config file into `config` (keys absent from the file keep their current value).
void load_config_file(const std::string& path, Config& config);
// Checks that what a server needs is present; returns one message per problem.
std::vector<std::string> missing_settings(const Config& config);

} // namespace keyless::keyserver
