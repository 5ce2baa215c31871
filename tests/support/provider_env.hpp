// Helpers for tests that run real programs with keyless.so loaded through OPENSSL_CONF.
#pragma once

#include "build_paths.hpp"
#include "keyserver_fixture.hpp"

namespace keyless::test {

// Writes an openssl.cnf that activates default + keyless with the given client identity.
// Extra lines go into the keyless section (e.g. "request_timeout_ms = 1000").
std::string write_openssl_conf(const std::string& path, const std::string& identity = "edge-1",
                               const std::string& ca = "ca.crt", const std::string& extra = "");

uint16_t free_port();
bool accepts(uint16_t port); // something accepts TCP connections on 127.0.0.1:port
// Polls until something accepts on 127.0.0.1:port, or throws after `timeout`.
void wait_for_port(uint16_t port, std::chrono::milliseconds timeout);

// Runs a shell command with OPENSSL_CONF set; returns the exit code, fills output.
int run_with_conf(const std::string& conf, const std::string& command, std::string* output);

} // namespace keyless::test
