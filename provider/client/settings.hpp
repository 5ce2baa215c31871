// How the provider reaches keyservers: from its openssl.cnf section, overridden by KEYLESS_*
// environment variables (handy for quick tests; nginx scrubs its workers' environment, which is
// why openssl.cnf is the primary source).
#pragma once

#include "uri.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

namespace keyless::client {

struct Settings {
    std::string client_cert; // client_cert / KEYLESS_CLIENT_CERT
    std::string client_key;  // client_key / KEYLESS_CLIENT_KEY
    std::string ca_file;     // ca_file / KEYLESS_CA_FILE
    std::chrono::milliseconds connect_timeout{
        3000}; // connect_timeout_ms / KEYLESS_CONNECT_TIMEOUT_MS
    std::chrono::milliseconds request_timeout{
        5000}; // request_timeout_ms / KEYLESS_REQUEST_TIMEOUT_MS
    // connections_per_server / KEYLESS_CONNECTIONS_PER_SERVER: mTLS connections to each
    // keyserver endpoint, requests spread over them by fewest outstanding
    size_t connections_per_server = 2;
    // servers / KEYLESS_SERVERS: the keyserver fleet that keyless:/KEYID URIs (and stubs) use,
    // so moving it is an edit of openssl.cnf and a terminator reload, not new stubs.
    std::vector<Endpoint> servers;
};

class SettingsError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// `lookup(name)` returns the openssl.cnf value or "" when unset. Throws SettingsError naming the
// setting for an invalid value.
Settings resolve_settings(const std::function<std::string(const char*)>& lookup);

} // namespace keyless::client
