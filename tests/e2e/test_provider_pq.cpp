// Ed448 and ML-DSA (FIPS 204; OpenSSL 3.5 and later) keys on the keyserver, used by unmodified
// openssl s_server, s_client, req and x509 through keyless.so: TLS 1.3 server and client
// signatures, CSRs and certificates that the default provider verifies, across key types. The
// ML-DSA cases run where gen-pki.sh could make ML-DSA keys; Ed448 runs everywhere (OpenSSL 3.0 has
// it).
#include "keyserver_fixture.hpp"
#include "process.hpp"
#include "provider_env.hpp"
#include "tls_clients.hpp"

#include "catch.hpp"

#include <string>
#include <tuple>
#include <vector>

using namespace keyless::test;

namespace {

struct PqKey {
    std::string name, scheme;
};

// The whole-message keys this platform has, each with its TLS 1.3 scheme.
std::vector<PqKey> pq_keys() {
    std::vector<PqKey> keys{{"ed448", "ed448"}};
    if (pki_has_ml_dsa())
        keys.insert(keys.end(),
                    {{"mldsa44", "mldsa44"}, {"mldsa65", "mldsa65"}, {"mldsa87", "mldsa87"}});
    return keys;
}

// A keyserver where every such key may sign TLS (server and client) and other messages.
std::string pq_config(const std::string& allow) {
    std::string keys;
    for (const auto& k : pq_keys())
        keys += std::string(keys.empty() ? "" : ",") + "\"" + k.name + "\": {\"allow\": [" + allow +
                "]}";
    return R"({"keys": {"p256": {"allow": ["sign-tls", "sign-digest"]}, )" + keys + "}}";
}

const std::string kAll = R"("sign-tls", "sign-tls-client", "sign-digest")";

} // namespace

TEST_CASE("Ed448 and ML-DSA keyless keys serve TLS 1.3 through s_server, by URI and by stub") {
    KeyserverFixture keyserver(pq_config(kAll));
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string out;
    for (const auto& k : pq_keys()) {
        std::string uri = "keyless:" + keyserver.address() + "/" + k.name;
        std::string stub = dir / (k.name + ".stub.pem");
        REQUIRE(run_with_conf(conf, keyless_tool() + " stub " + uri + " -o " + stub, &out) == 0);
        // keyless-tool check's test signature and bench: TLS 1.3 CertificateVerify inputs with the
        // key's own scheme.
        CHECK(run_with_conf(conf, keyless_tool() + " check " + uri, &out) == 0);
        CHECK_THAT(out, match::contains("ok: " + uri));
        CHECK(run_with_conf(
                  conf, keyless_tool() + " bench " + uri + " --seconds 1 --concurrency 4 --json",
                  &out) == 0);
        CHECK_THAT(out, match::contains("\"algorithm\":\"" + k.scheme + "\""));
        for (const std::string& key : {uri, stub}) {
            INFO(key);
            uint16_t port = free_port();
            Process server({"/usr/bin/openssl", "s_server", "-accept",
                            "127.0.0.1:" + std::to_string(port), "-cert",
                            pki("certs/" + k.name + ".crt"), "-key", key, "-www"},
                           {{"OPENSSL_CONF", conf}}, dir / "server.log", dir / "server.log");
            wait_for_port(port, std::chrono::seconds(10));
            std::string op = "\"op\":\"sign-tls:" + k.scheme + "\"";
            size_t before = count_of(keyserver.access_log(), op);
            out = s_client(port, "-tls1_3 -sigalgs " + k.scheme);
            INFO(out << read_file(dir / "server.log"));
            CHECK(handshake_ok(out));
            CHECK(s_client_shows(out, "Peer signature type: " + k.scheme, "sign-tls:" + k.scheme));
            CHECK(count_of(keyserver.access_log(), op) == before + 1);
            CHECK_THAT(curl(port, "--tlsv1.3"), match::contains("s_server"));
            CHECK(count_of(keyserver.access_log(), op) == before + 2);
        }
    }
}

TEST_CASE("CSRs and certificates signed by keyless Ed448 and ML-DSA keys verify, across types") {
    KeyserverFixture keyserver(pq_config(kAll));
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string out;
    auto ok = [&](const std::string& cmd) {
        int rc = run_with_conf(conf, cmd, &out);
        INFO(cmd << "\n" << out);
        REQUIRE(rc == 0);
        return out;
    };
    auto uri = [&](const std::string& name) {
        return "keyless:" + keyserver.address() + "/" + name;
    };
    write_file(dir / "leaf.ext", "basicConstraints = CA:FALSE\nkeyUsage = digitalSignature\n");
    // cert CA_NAME LEAF_NAME: a self-signed CA by the keyless key CA_NAME signs a CSR made by the
    // keyless key LEAF_NAME; the default provider verifies the chain.
    auto chain = [&](const std::string& ca, const std::string& leaf) {
        INFO(ca << " signs " << leaf);
        ok("openssl req -x509 -new -key " + uri(ca) + " -subj /CN=ca-" + ca + " -days 1" +
           " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign -out " +
           (dir / "ca.crt"));
        ok("openssl req -new -key " + uri(leaf) + " -subj /CN=leaf-" + leaf + " -out " +
           (dir / "leaf.csr"));
        CHECK_THAT(ok("openssl req -in " + (dir / "leaf.csr") + " -verify -noout"),
                   match::contains("verify OK"));
        ok("openssl x509 -req -in " + (dir / "leaf.csr") + " -CA " + (dir / "ca.crt") + " -CAkey " +
           uri(ca) + " -CAcreateserial -days 1 -extfile " + (dir / "leaf.ext") + " -out " +
           (dir / "leaf.crt"));
        // Verified by the default provider alone (no keyless.so loaded).
        std::string verified;
        run_command("OPENSSL_CONF=/dev/null openssl verify -CAfile " + (dir / "ca.crt") + " " +
                        (dir / "leaf.crt"),
                    &verified);
        CHECK_THAT(verified, match::contains(": OK"));
    };
    for (const auto& k : pq_keys()) {
        chain(k.name, k.name); // self-issued
        chain("p256", k.name); // a post-quantum leaf under an EC CA
        chain(k.name, "p256"); // and the reverse
    }
    CHECK(count_of(keyserver.access_log(), "\"result\":\"ok\"") >= 5 * pq_keys().size());
}

TEST_CASE("Ed448 and ML-DSA keys sign only what their policy allows") {
    KeyserverFixture keyserver(pq_config(R"("sign-tls")"));
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    for (const auto& k : pq_keys()) {
        INFO(k.name);
        std::string out;
        int rc = run_with_conf(conf,
                               "openssl req -new -key keyless:" + keyserver.address() + "/" +
                                   k.name + " -subj /CN=x -out " + (dir / "x.csr"),
                               &out);
        CHECK(rc != 0);
        CHECK_THAT(out,
                   match::contains("denied by the keyserver's policy for key '" + k.name + "'"));
    }
    CHECK_THAT(keyserver.access_log(), match::contains("anything else needs sign-digest"));
}

TEST_CASE("keyless Ed448 and ML-DSA client certificates (TLS 1.3, sign-tls-client)") {
    KeyserverFixture keyserver(pq_config(kAll));
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    uint16_t port = free_port();
    Process server({"/usr/bin/openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port),
                    "-cert", pki("keyserver.crt"), "-key", pki("keyserver.key"), "-Verify", "2",
                    "-CAfile", pki("ca.crt"), "-verify_return_error", "-www"},
                   {}, dir / "server.log", dir / "server.log");
    wait_for_port(port, std::chrono::seconds(10));
    for (const auto& k : pq_keys()) {
        INFO(k.name);
        std::string stub = dir / (k.name + ".stub.pem"), out;
        REQUIRE(run_with_conf(conf,
                              keyless_tool() + " stub keyless:" + keyserver.address() + "/" +
                                  k.name + " -o " + stub,
                              &out) == 0);
        size_t before = count_of(keyserver.access_log(), "\"shape\":\"tls13-client-cv\"");
        out = s_client(port,
                       "-tls1_3 -cert " + pki("certs/" + k.name + ".crt") + " -key " + stub +
                           " -client_sigalgs " + k.scheme,
                       conf, "GET / HTTP/1.0\\r\\n\\r\\n");
        INFO(out << read_file(dir / "server.log"));
        CHECK(handshake_ok(out));
        CHECK_THAT(out, match::contains("s_server"));
        CHECK(count_of(keyserver.access_log(), "\"shape\":\"tls13-client-cv\"") == before + 1);
    }
}

TEST_CASE("against a gokeyless keyserver, Ed448 and ML-DSA keys fail naming the key and why") {
    // gokeyless has no Ed448 or ML-DSA operation (and answers BadOpcode to keyless's).
    KeyserverFixture keyserver(pq_config(kAll), {"--test-emulate-gokeyless"});
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    for (const auto& k : pq_keys()) {
        INFO(k.name);
        std::string stub = dir / (k.name + ".stub.pem"), out;
        REQUIRE(run_with_conf(conf,
                              keyless_tool() + " stub keyless:" + keyserver.address() + "/" +
                                  k.name + " --from-cert " + pki("certs/" + k.name + ".crt") +
                                  " -o " + stub,
                              &out) == 0);
        int rc = run_with_conf(
            conf, "openssl req -new -key " + stub + " -subj /CN=x -out " + (dir / "x.csr"), &out);
        CHECK(rc != 0);
        CHECK_THAT(out, match::contains("keyless:" + keyserver.address() + "/" + k.name));
        CHECK_THAT(out, match::contains("needs a keyless keyserver"));
    }
}

TEST_CASE(
    "keyless-tool bench --digest signs digests as gokeyless clients do, RSA and EC keys only") {
    KeyserverFixture keyserver(
        R"({"keys": {"p256": {"allow": ["sign-digest"]}, "rsa2048": {"allow": ["sign-digest"]},
                     "ed448": {"allow": ["sign-digest"]}}})");
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string out;
    for (auto [key, algorithm, op] :
         {std::tuple{"p256", "ecdsa_secp256r1_sha256", "ecdsa-sign-sha256"},
          std::tuple{"rsa2048", "rsa_pss_rsae_sha256", "rsa-pss-sign-sha256"}}) {
        INFO(key);
        CHECK(run_with_conf(conf,
                            keyless_tool() + " bench keyless:" + keyserver.address() + "/" + key +
                                " --digest --seconds 1 --concurrency 2 --json",
                            &out) == 0);
        CHECK_THAT(out, match::contains("\"operation\":\"sign-digest\"") &&
                            match::contains(std::string("\"algorithm\":\"") + algorithm + "\""));
        CHECK_THAT(keyserver.access_log(), match::contains(std::string("\"op\":\"") + op));
    }
    CHECK(run_with_conf(conf,
                        keyless_tool() + " bench keyless:" + keyserver.address() +
                            "/ed448 --digest --seconds 1 --json",
                        &out) == 1);
    CHECK_THAT(out, match::contains("--digest needs an RSA or EC key"));
}
