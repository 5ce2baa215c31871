#include "terminator_checks.hpp"

#include "provider_env.hpp"
#include "tls_clients.hpp"

#include "catch.hpp"

#include <signal.h>

#include <stdexcept>

namespace keyless::test {

namespace {

const char* kGet = "GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n";
const char* kEdgeConfig = R"({"keys": {
    "rsa2048": {"allow": ["sign-tls", "rsa-decrypt-tls"]},
    "p256": {"allow": ["sign-tls"]},
    "p384": {"allow": ["sign-tls-client"]},
    "ed25519": {"allow": ["sign-tls"]}
}})";

void check_under_load(Terminator& t) {
    INFO(t.name() << ": 200 concurrent handshakes");
    CHECK(concurrent_gets(t.rsa_port(), 200, t.body()) == 200);
    CHECK(t.alive());
}

void check_outage(Terminator& t, KeyserverFixture& keyserver) {
    INFO(t.name() << ": keyserver killed and restarted");
    keyserver.process().kill(SIGKILL);
    keyserver.process().wait(std::chrono::seconds(5));
    auto start = std::chrono::steady_clock::now();
    std::string out = s_client(t.rsa_port(), "-tls1_3");
    CHECK_FALSE(handshake_ok(out));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(15)); // bounded
    CHECK(t.alive());
    keyserver.restart();
    // Back within a few seconds: the provider probes a down keyserver in the background.
    CHECK(handshake_eventually(t.rsa_port(), "-tls1_3"));
    CHECK(handshake_eventually(t.ec_port(), "-tls1_2"));
    CHECK(t.alive());
}

void check_reload(Terminator& t) {
    INFO(t.name() << ": reload");
    t.reload();
    CHECK(handshake_ok(s_client(t.rsa_port(), "-tls1_3")));
    CHECK(handshake_ok(s_client(t.ec_port(), "-tls1_3")));
    bool alive = t.alive();
    INFO(t.log());
    CHECK(alive);
}

} // namespace

EdgeSetup::EdgeSetup(std::vector<std::string> keyserver_args, const std::string& conf_extra)
    : keyserver(kEdgeConfig, std::move(keyserver_args)) {
    conf = write_openssl_conf(dir / "openssl.cnf", "edge-1", "ca.crt",
                              "request_timeout_ms = 3000\n" + conf_extra);
    std::string out;
    for (const char* key : {"rsa2048", "p256", "p384", "ed25519"}) {
        if (run_with_conf(conf,
                          keyless_tool() + " stub " + uri(key) + " --from-cert " +
                              pki(std::string("certs/") + key + ".crt") + " -o " +
                              (dir / (std::string(key) + ".stub.pem")),
                          &out) != 0)
            throw std::runtime_error(out);
    }
    keys = {pki("certs/rsa2048.crt"), dir / "rsa2048.stub.pem", pki("certs/p256.crt"),
            dir / "p256.stub.pem"};
}

std::string EdgeSetup::subdir(const std::string& name) {
    run_command("mkdir -p " + (dir / name));
    return dir / name;
}

std::string EdgeSetup::uri(const std::string& key) const {
    return "keyless:" + keyserver.address() + "/" + key;
}

void check_full_suite(Terminator& t, KeyserverFixture& keyserver) {
    INFO(t.log());
    check_matrix(t, keyserver);
    check_under_load(t);
    check_outage(t, keyserver);
    check_reload(t);
}

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
        CHECK(s_client_shows(out, c.expect, c.op));
        CHECK_THAT(out, match::contains(t.body()));
        CHECK(count_of(keyserver.access_log(), op) == before + 1);
        std::string body = curl(port, c.curl_args);
        INFO(body);
        CHECK_THAT(body, match::contains(t.body()));
        CHECK(count_of(keyserver.access_log(), op) == before + 2);
    }
}

} // namespace keyless::test
