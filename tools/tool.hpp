// What keyless-tool's commands share: the parsed options, fatal errors, and a keyserver client
// with the provider's settings.
#pragma once

#include "client/client.hpp"
#include "ossl.hpp"
#include "uri.hpp"

#include <memory>
#include <string>

namespace keyless::tool {

struct Options {
    std::string command, uri, cert, key, ca, out, from_cert, provider_dir = KEYLESS_PROVIDER_DIR;
    int count = 10;
    int seconds = 5;
    int concurrency = 32;
    int connections = 1;
    int threads = 0; // bench: 0 = one per request in flight
    bool json = false;
    bool digest = false; // bench: gokeyless digest signing instead of sign-tls
};

// The command line (tools/flags.cpp): --help and --version print and exit 0; an unknown option,
// a missing or malformed value, or a wrong number of arguments dies naming it. Options given
// become the provider's environment overrides (KEYLESS_CLIENT_CERT, ...).
Options parse_options(int argc, char** argv);
// Prints "keyless-tool: MESSAGE" and exits 1.
[[noreturn]] void die(const std::string& message);
// A prepared keyserver client with the provider's settings, for commands that talk directly.
std::unique_ptr<client::Client> direct_client(const Options& o, KeyUri& uri);
// The payload of a successful Response, else dies naming `what` and the failure.
Bytes reply_or_die(const client::Call& call, const std::string& what);

// The TLS 1.3 scheme a server signs with this key: RSA-PSS, its curve's ECDSA, or the key's own
// (EdDSA, ML-DSA); dies for any other key.
uint16_t tls13_scheme(EVP_PKEY* key);

int bench(const Options& o);

} // namespace keyless::tool
