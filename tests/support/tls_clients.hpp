// Real TLS clients for end-to-end tests: openssl s_client and curl as separate processes, and an
// in-process OpenSSL client for many concurrent handshakes.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace keyless::test {

// `echo | openssl s_client -connect 127.0.0.1:PORT -verify_return_error ARGS` (CA: the test CA),
// optionally with OPENSSL_CONF; returns everything it printed. `request` is sent after the
// handshake (e.g. an HTTP GET) when not empty.
std::string s_client(uint16_t port, const std::string& args, const std::string& conf = "",
                     const std::string& request = "");
// s_client prints the verify result even when the handshake fails after the certificate (TLS
// 1.3 sends it before CertificateVerify): success is that, a cipher, and no error at all.
bool handshake_ok(const std::string& s_client_output);
// Whether s_client's output shows `expect` for a handshake whose keyserver operation was `op`.
// For "Peer signature type: X": OpenSSL 3.x prints the key type (RSA-PSS, ECDSA, RSA, ed25519),
// 4.0 the SignatureScheme's name (rsa_pss_rsae_sha256, the SCHEME of a "sign-tls:SCHEME" op);
// either is accepted, nothing else. Other lines must appear as given.
bool s_client_shows(const std::string& s_client_output, const std::string& expect,
                    const std::string& op);
// Repeats s_client until a handshake succeeds (a keyserver that just came back is probed by the
// provider before requests go to it again) or `within` passes; false then.
bool handshake_eventually(uint16_t port, const std::string& args, const std::string& conf = "",
                          std::chrono::seconds within = std::chrono::seconds(10));
// curl https://localhost:PORT/ verifying against the test CA, optionally with OPENSSL_CONF;
// returns body and errors.
std::string curl(uint16_t port, const std::string& args, const std::string& conf = "");

// One full handshake (no session reuse) + "GET /" with an in-process OpenSSL client; returns the
// response, or "" on any failure.
std::string https_get(uint16_t port, int max_version = 0, const char* cipher_list = nullptr);
// `count` https_get calls at once from as many threads; returns how many got a response
// containing `expect`.
int concurrent_gets(uint16_t port, int count, const std::string& expect, int max_version = 0,
                    const char* cipher_list = nullptr);

} // namespace keyless::test
