// Terminators that load private keys through OSSL_STORE take a keyless URI where others need a
// stub file: nginx >= 1.29 `ssl_certificate_key store:keyless:...` and stunnel >= 5.75
// `key = keyless:...`. The same suite as with stubs (test_interop.cpp), by URI with the
// keyserver named in it and by `keyless:/KEYID` with the provider's `servers`; and what each
// does when the keyserver is down while it loads the key (no stub: no public key without it).
// tests/CMakeLists.txt registers each terminator's cases only where its version takes URIs.
#include "provider_env.hpp"
#include "terminator_checks.hpp"
#include "terminators.hpp"
#include "tls_clients.hpp"

#include "catch.hpp"

#include <stdexcept>

using namespace keyless::test;

namespace {

// The RSA key named with its keyserver, the EC key through the provider's fleet (`servers`).
struct UriSetup : EdgeSetup {
    UriSetup() {
        fleet_conf =
            write_openssl_conf(dir / "fleet.cnf", "edge-1", "ca.crt",
                               "request_timeout_ms = 3000\nservers = " + keyserver.address());
    }
    EdgeKeys keys_by_uri(const std::string& prefix) const {
        return {keys.rsa_cert, prefix + uri("rsa2048"), keys.ec_cert, prefix + "keyless:/p256"};
    }
    std::string fleet_conf;
};

} // namespace

TEST_CASE("nginx loads keyless keys by store: URI, without stub files", "[nginx]") {
    UriSetup s;
    auto t = start_nginx(s.subdir("nginx"), s.fleet_conf, s.keys_by_uri("store:"));
    // Master loads the keys (one key-store load each, over the network), 2 workers fork and
    // reconnect; every nginx -s reload loads them again (nginx does not keep store: keys).
    check_full_suite(*t, s.keyserver);
    CHECK(t->log().find("stale global SSL error") == std::string::npos);
}

TEST_CASE("nginx with store: URIs and the keyserver down: start and reload fail naming the key "
          "and the cause, the running workers keep their keys",
          "[nginx]") {
    UriSetup s;
    EdgeKeys keys = s.keys_by_uri("store:");
    s.keyserver.stop();
    try {
        start_nginx(s.subdir("nginx-down"), s.fleet_conf, keys);
        FAIL("nginx started without its keyserver");
    } catch (const std::runtime_error& e) {
        std::string why = e.what();
        INFO(why);
        // nginx's own words, then the provider's: which key, which keyserver, why.
        CHECK_THAT(why, match::contains("cannot load certificate key"));
        CHECK_THAT(why, match::contains("keyless:"));
        CHECK_THAT(why, match::contains("cannot connect"));
    }

    // Up at start, down at a reload: `nginx -s reload` loads the configuration itself before
    // it signals the master, so it fails there, naming the cause, and the running master and
    // workers keep the keys they have; they serve again as soon as the keyserver is back.
    s.keyserver.restart();
    auto t = start_nginx(s.subdir("nginx"), s.fleet_conf, keys);
    CHECK(handshake_ok(s_client(t->rsa_port(), "-tls1_3")));
    s.keyserver.stop();
    try {
        t->reload();
        FAIL("nginx -s reload succeeded without the keyserver");
    } catch (const std::runtime_error& e) {
        INFO(e.what());
        CHECK_THAT(e.what(), match::contains("cannot load certificate key"));
        CHECK_THAT(e.what(), match::contains("cannot connect"));
    }
    CHECK(t->alive());
    s.keyserver.restart();
    CHECK(handshake_eventually(t->rsa_port(), "-tls1_3"));
    CHECK(handshake_eventually(t->ec_port(), "-tls1_2"));
    t->reload();
    CHECK(handshake_ok(s_client(t->rsa_port(), "-tls1_3")));
    CHECK(t->alive());
}

TEST_CASE("stunnel loads keyless keys by URI (key = keyless:...), without stub files",
          "[stunnel]") {
    UriSetup s;
    Backend backend;
    auto t = start_stunnel(s.subdir("stunnel"), s.fleet_conf, s.keys_by_uri(""), backend.port());
    check_full_suite(*t, s.keyserver);
}

TEST_CASE("stunnel with a URI key and the keyserver down: start fails naming the key",
          "[stunnel]") {
    UriSetup s;
    Backend backend;
    s.keyserver.stop();
    try {
        start_stunnel(s.subdir("stunnel"), s.fleet_conf, s.keys_by_uri(""), backend.port());
        FAIL("stunnel started without its keyserver");
    } catch (const std::runtime_error& e) {
        INFO(e.what());
        CHECK_THAT(e.what(), match::contains("keyless:"));
        CHECK_THAT(e.what(), match::contains("cannot connect"));
    }
}

TEST_CASE("nginx serves ML-DSA and Ed448 certificates whose keys it loads by store: URI",
          "[nginx]") {
    UriSetup s;
    // By host and port for the first of each pair, by the provider's servers for the second.
    for (const auto& [first, second] : pq_key_pairs()) {
        EdgeKeys keys{pki("certs/" + first + ".crt"), "store:" + s.uri(first),
                      pki("certs/" + second + ".crt"), "store:keyless:/" + second};
        auto t = start_nginx(s.subdir("nginx-" + first), s.fleet_conf, keys);
        for (auto [port, scheme] :
             {std::pair{t->rsa_port(), first}, std::pair{t->ec_port(), second}}) {
            INFO(scheme);
            size_t before = count_of(s.keyserver.access_log(), "sign-tls:" + scheme);
            std::string out = s_client(port, "-tls1_3 -sigalgs " + scheme);
            INFO(out);
            CHECK(handshake_ok(out));
            CHECK(s_client_shows(out, "Peer signature type: " + scheme, "sign-tls:" + scheme));
            CHECK(count_of(s.keyserver.access_log(), "sign-tls:" + scheme) == before + 1);
        }
        CHECK(t->alive());
    }
}
