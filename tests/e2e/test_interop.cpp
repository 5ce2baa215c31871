// Unmodified Debian nginx, haproxy and stunnel as keyless edges with stub files: the TLS matrix,
// 200 concurrent handshakes, a keyserver outage and recovery, the terminator's own reload, a
// start while the keyserver is down, and haproxy's ssl-mode-async keeping one thread busy with
// many handshakes. (Keys by URI, where the terminator takes them: test_interop_uri.cpp.)
#include "provider_env.hpp"
#include "terminator_checks.hpp"
#include "terminators.hpp"
#include "tls_clients.hpp"

#include "catch.hpp"
#include <nlohmann/json.hpp>

#include <openssl/ssl.h>
#include <signal.h>

#include <functional>
#include <sstream>

using namespace keyless::test;

namespace {

const char* kGet = "GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n";
using Setup = EdgeSetup;

void full_suite(Terminator& t, Setup& s) {
    check_full_suite(t, s.keyserver);
}

} // namespace

TEST_CASE("nginx (master + 2 workers) as a keyless edge", "[nginx]") {
    Setup s;
    auto t = start_nginx(s.subdir("nginx"), s.conf, s.keys);
    full_suite(*t, s);
    // keyless.so leaves nothing on OpenSSL's error queue for nginx to find later.
    CHECK(t->log().find("stale global SSL error") == std::string::npos);
}

TEST_CASE("nginx: an Ed25519 keyless key, and a keyless client certificate for its upstream",
          "[nginx]") {
    Setup s;
    // The upstream asks nginx for a client certificate and verifies it (its own key is local).
    uint16_t upstream = free_port();
    Process server({"/usr/bin/openssl", "s_server", "-accept",
                    "127.0.0.1:" + std::to_string(upstream), "-cert", pki("keyserver.crt"), "-key",
                    pki("keyserver.key"), "-Verify", "2", "-CAfile", pki("ca.crt"),
                    "-verify_return_error", "-www"},
                   {}, s.dir / "upstream.log", s.dir / "upstream.log");
    wait_for_port(upstream, std::chrono::seconds(10));
    uint16_t ed_port = free_port(), proxy_port = free_port();
    std::string extra =
        "    server {\n        listen 127.0.0.1:" + std::to_string(ed_port) +
        " ssl;\n        ssl_protocols TLSv1.3;\n        ssl_certificate " +
        pki("certs/ed25519.crt") + ";\n        ssl_certificate_key " +
        (s.dir / "ed25519.stub.pem") +
        ";\n        location / { return 200 \"keyless nginx ed25519 ok\\n\"; }\n    }\n"
        "    server {\n        listen 127.0.0.1:" +
        std::to_string(proxy_port) +
        ";\n        location / {\n            proxy_pass https://127.0.0.1:" +
        std::to_string(upstream) + ";\n            proxy_ssl_protocols TLSv1.3;\n" +
        "            proxy_ssl_certificate " + pki("certs/p384.crt") +
        ";\n            proxy_ssl_certificate_key " + (s.dir / "p384.stub.pem") +
        ";\n            proxy_ssl_trusted_certificate " + pki("ca.crt") +
        ";\n            proxy_ssl_verify on;\n            proxy_ssl_name localhost;\n        }\n   "
        " }\n";
    auto t = start_nginx(s.subdir("nginx"), s.conf, s.keys, extra);
    wait_for_port(ed_port, std::chrono::seconds(10));

    std::string out = s_client(ed_port, "-tls1_3", "", kGet);
    CHECK(handshake_ok(out));
    CHECK(s_client_shows(out, "Peer signature type: ed25519", "sign-tls:ed25519"));
    CHECK_THAT(out, match::contains("keyless nginx ed25519 ok"));
    CHECK(count_of(s.keyserver.access_log(), "sign-tls:ed25519") == 1);

    run_command("timeout 30 curl -sS http://127.0.0.1:" + std::to_string(proxy_port) + "/", &out);
    CHECK_THAT(out, match::contains("s_server"));
    std::string log = s.keyserver.access_log();
    CHECK(count_of(log, "\"shape\":\"tls13-client-cv\"") == 1);
    CHECK_THAT(log, match::contains("\"key\":\"p384\""));
    CHECK(t->alive());
}

namespace {

using StartEdge =
    std::function<std::unique_ptr<Terminator>(const std::string& dir, const EdgeKeys&)>;

// Every ML-DSA parameter set where OpenSSL has ML-DSA (3.5 and later), and Ed448 everywhere: the
// terminator serves two certificates, so it is started once per pair of keys.
void check_whole_message_keys(Setup& s, const StartEdge& start) {
    std::string out;
    for (const auto& [first, second] : pq_key_pairs()) {
        for (const std::string& key : {first, second}) {
            REQUIRE(run_with_conf(s.conf,
                                  keyless_tool() + " stub " + s.uri(key) + " --from-cert " +
                                      pki("certs/" + key + ".crt") + " -o " +
                                      (s.dir / (key + ".stub")),
                                  &out) == 0);
        }
        auto t = start("edge-" + first,
                       EdgeKeys{pki("certs/" + first + ".crt"), s.dir / (first + ".stub"),
                                pki("certs/" + second + ".crt"), s.dir / (second + ".stub")});
        for (auto [port, scheme] :
             {std::pair{t->rsa_port(), first}, std::pair{t->ec_port(), second}}) {
            INFO(t->name() << " " << scheme);
            size_t before = count_of(s.keyserver.access_log(), "sign-tls:" + scheme);
            out = s_client(port, "-tls1_3 -sigalgs " + scheme, "", kGet);
            INFO(out);
            CHECK(handshake_ok(out));
            CHECK(s_client_shows(out, "Peer signature type: " + scheme, "sign-tls:" + scheme));
            CHECK_THAT(out, match::contains(t->body()));
            CHECK(count_of(s.keyserver.access_log(), "sign-tls:" + scheme) == before + 1);
        }
        CHECK(t->alive());
    }
}

} // namespace

TEST_CASE("nginx serves Ed448 and ML-DSA certificates with keyless stubs", "[nginx]") {
    Setup s;
    check_whole_message_keys(s, [&](const std::string& dir, const EdgeKeys& keys) {
        return start_nginx(s.subdir(dir), s.conf, keys);
    });
}

TEST_CASE("haproxy serves Ed448 and ML-DSA certificates with keyless stubs", "[haproxy]") {
    Setup s;
    check_whole_message_keys(s, [&](const std::string& dir, const EdgeKeys& keys) {
        return start_haproxy(s.subdir(dir), s.conf, keys, 2, false);
    });
}

TEST_CASE("haproxy master-worker, nbthread 2, as a keyless edge", "[haproxy]") {
    Setup s;
    auto t = start_haproxy(s.subdir("haproxy"), s.conf, s.keys, 2, false);
    full_suite(*t, s);
}

TEST_CASE("haproxy with ssl-mode-async as a keyless edge", "[haproxy]") {
    Setup s;
    auto t = start_haproxy(s.subdir("haproxy-async"), s.conf, s.keys, 2, true);
    full_suite(*t, s);
}

TEST_CASE("stunnel (daemonized) as a keyless edge", "[stunnel]") {
    Setup s;
    Backend backend;
    auto t = start_stunnel(s.subdir("stunnel"), s.conf, s.keys, backend.port());
    full_suite(*t, s);
}

namespace {

// The stub carries the public key: the terminator starts, its handshakes fail until the
// keyserver is back, then succeed without a restart.
void check_start_while_keyserver_down(Setup& s,
                                      const std::function<std::unique_ptr<Terminator>()>& start) {
    s.keyserver.stop();
    auto t = start();
    INFO(t->name());
    CHECK(t->alive());
    CHECK_FALSE(handshake_ok(s_client(t->rsa_port(), "-tls1_3")));
    s.keyserver.restart();
    INFO(t->log());
    CHECK(handshake_eventually(t->rsa_port(), "-tls1_3"));
    CHECK(handshake_eventually(t->ec_port(), "-tls1_3"));
}

} // namespace

TEST_CASE("nginx starts while the keyserver is down (the stub carries the public key)", "[nginx]") {
    Setup s;
    check_start_while_keyserver_down(
        s, [&] { return start_nginx(s.subdir("nginx"), s.conf, s.keys); });
}

TEST_CASE("haproxy starts while the keyserver is down (the stub carries the public key)",
          "[haproxy]") {
    Setup s;
    check_start_while_keyserver_down(
        s, [&] { return start_haproxy(s.subdir("haproxy"), s.conf, s.keys, 2, false); });
}

TEST_CASE("stunnel starts while the keyserver is down (the stub carries the public key)",
          "[stunnel]") {
    Setup s;
    Backend backend;
    check_start_while_keyserver_down(
        s, [&] { return start_stunnel(s.subdir("stunnel"), s.conf, s.keys, backend.port()); });
}

namespace {

// The largest number of sign operations the keyserver had in flight at once, from its log.
size_t peak_in_flight(const std::string& log, size_t from) {
    std::istringstream lines(log.substr(from));
    std::string line;
    size_t peak = 0;
    while (std::getline(lines, line)) {
        auto j = nlohmann::json::parse(line);
        if (j["op"].get<std::string>().rfind("sign-tls", 0) == 0)
            peak = std::max(peak, j["in_flight"].get<size_t>());
    }
    return peak;
}

} // namespace

TEST_CASE("haproxy ssl-mode-async: one thread keeps many keyless handshakes in flight",
          "[haproxy]") {
    // Every keyserver reply is held 300 ms, like a distant keyserver.
    Setup s({"--test-reply-delay-ms", "300"});
    constexpr int kClients = 12;
    size_t peaks[2] = {};
    for (bool async : {false, true}) {
        INFO((async ? "async" : "blocking"));
        auto t = start_haproxy(s.subdir(async ? "async" : "blocking"), s.conf, s.keys, 1, async);
        size_t mark = s.keyserver.access_log().size();
        CHECK(concurrent_gets(t->ec_port(), kClients, t->body(), TLS1_3_VERSION) == kClients);
        peaks[async] = peak_in_flight(s.keyserver.access_log(), mark);
        CHECK(t->alive());
    }
    INFO("peak operations in flight: blocking " << peaks[0] << ", async " << peaks[1]);
    CHECK(peaks[0] == 1);            // one thread, blocking: one round trip at a time
    CHECK(peaks[1] >= kClients / 2); // one thread, async: the handshakes overlap
}
