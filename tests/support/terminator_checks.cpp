#include "terminator_checks.hpp"

#include "tls_clients.hpp"

#include <catch2/catch.hpp>

namespace keyless::test {

namespace {

const char* kGet = "GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n";

} // namespace

void check_matrix(Terminator& t, KeyserverFixture& keyserver) {
    struct Case {
        const char* name;
        bool rsa;
        const char* client_args;
        const char* curl_args;
        const char* expect;
        const char* op;
    };
    const Case cases[] = {
        {"TLS 1.3 RSA", true, "-tls1_3", "--tlsv1.3", "Peer signature type: RSA-PSS",
         "sign-tls:rsa_pss_rsae_sha256"},
        {"TLS 1.3 EC", false, "-tls1_3", "--tlsv1.3", "Peer signature type: ECDSA",
         "sign-tls:ecdsa_secp256r1_sha256"},
        {"TLS 1.2 ECDHE-RSA", true, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256",
         "--tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256",
         "Peer signature type: RSA-PSS", "sign-tls:rsa_pss_rsae_sha256"},
        {"TLS 1.2 ECDHE-ECDSA", false, "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256",
         "--tlsv1.2 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256",
         "Peer signature type: ECDSA", "sign-tls:ecdsa_secp256r1_sha256"},
        {"TLS 1.2 RSA key exchange", true, "-tls1_2 -cipher AES128-GCM-SHA256",
         "--tlsv1.2 --tls-max 1.2 --ciphers AES128-GCM-SHA256", "Cipher is AES128-GCM-SHA256",
         "rsa-decrypt-tls"},
    };
    for (const auto& c : cases) {
        INFO(t.name() << ": " << c.name);
        uint16_t port = c.rsa ? t.rsa_port() : t.ec_port();
        std::string op = "\"op\":\"" + std::string(c.op) + "\"";
        size_t before = count_of(keyserver.access_log(), op);
        std::string out = s_client(port, c.client_args, "", kGet);
        INFO(out);
        CHECK(handshake_ok(out));
        CHECK_THAT(out, Catch::Contains(c.expect));
        CHECK_THAT(out, Catch::Contains(t.body()));
        CHECK(count_of(keyserver.access_log(), op) == before + 1);
        std::string body = curl(port, c.curl_args);
        INFO(body);
        CHECK_THAT(body, Catch::Contains(t.body()));
        CHECK(count_of(keyserver.access_log(), op) == before + 2);
    }
}

} // namespace keyless::test
