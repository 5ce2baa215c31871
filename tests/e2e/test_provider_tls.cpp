// openssl s_server as a keyless edge (key by URI and by stub file), driven by openssl s_client
// and curl; the openssl CLI on keyless keys; and the failures a user must see clearly.
#include "hostile_keyserver.hpp"
#include "provider_env.hpp"
#include "tls_clients.hpp"

#include "catch.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <regex>
#include <thread>

using namespace keyless::test;

namespace {

const char* kConfig = R"({"keys": {
    "rsa2048": {"allow": ["sign-tls", "sign-digest", "rsa-decrypt-tls"]},
    "p256": {"allow": ["sign-tls", "sign-digest"]},
    "p384": {"allow": ["sign-tls"]},
    "ed25519": {"allow": ["sign-tls", "sign-digest"]}
}})";

// One `openssl s_server -www` with a keyless key, on a free port. A port another test took
// between free_port() and s_server's bind (ctest runs suites in parallel) makes s_server exit:
// then it starts again on another; a failure to start says why (its log).
struct Edge {
    Edge(const std::string& conf, const std::string& key_arg, const std::string& key_name,
         const std::string& log) {
        for (int attempt = 0; attempt < 3; ++attempt) {
            port = free_port();
            proc = std::make_unique<Process>(
                std::vector<std::string>{
                    "/usr/bin/openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port),
                    "-cert", pki("certs/" + key_name + ".crt"), "-key", key_arg, "-www"},
                std::map<std::string, std::string>{{"OPENSSL_CONF", conf}}, log, log);
            auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
            while (proc->running() && !accepts(port) && std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            if (accepts(port)) return;
            if (proc->running()) break; // alive but not listening: not a lost port race
        }
        throw std::runtime_error("s_server with " + key_arg + " did not start:\n" + read_file(log));
    }
    uint16_t port = 0;
    std::unique_ptr<Process> proc;
};

} // namespace

TEST_CASE("s_server with a keyless key (URI and stub): TLS 1.2/1.3, RSA/EC, RSA key exchange") {
    KeyserverFixture keyserver(kConfig);
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string base = "keyless:" + keyserver.address() + "/";

    struct Case {
        const char* name;
        const char* key;
        const char* client_args;
        const char* curl_args;
        const char* expect_client; // a line s_client must print
        const char* expect_op;     // what the keyserver's access log must record
    };
    const Case cases[] = {
        {"TLS 1.3 RSA-2048 (PSS)", "rsa2048", "-tls1_3", "--tlsv1.3",
         "Peer signature type: RSA-PSS", "sign-tls:rsa_pss_rsae_sha256"},
        {"TLS 1.3 P-256", "p256", "-tls1_3", "--tlsv1.3", "Peer signature type: ECDSA",
         "sign-tls:ecdsa_secp256r1_sha256"},
        {"TLS 1.3 P-384", "p384", "-tls1_3", "--tlsv1.3", "Peer signature type: ECDSA",
         "sign-tls:ecdsa_secp384r1_sha384"},
        {"TLS 1.3 Ed25519", "ed25519", "-tls1_3", "--tlsv1.3", "Peer signature type: ed25519",
         "sign-tls:ed25519"},
        {"TLS 1.2 ECDHE-RSA (PKCS#1)", "rsa2048",
         "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 -sigalgs RSA+SHA256",
         "--tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256",
         "Peer signature type: RSA\n", "sign-tls:rsa_pkcs1_sha256"},
        {"TLS 1.2 ECDHE-RSA (PSS)", "rsa2048", "-tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384",
         "--tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES256-GCM-SHA384",
         "Peer signature type: RSA-PSS", "sign-tls:rsa_pss_rsae_sha256"},
        {"TLS 1.2 ECDHE-ECDSA", "p256", "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256",
         "--tlsv1.2 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256",
         "Peer signature type: ECDSA", "sign-tls:ecdsa_secp256r1_sha256"},
        {"TLS 1.2 RSA key exchange", "rsa2048", "-tls1_2 -cipher AES128-GCM-SHA256",
         "--tlsv1.2 --tls-max 1.2 --ciphers AES128-GCM-SHA256", "Cipher is AES128-GCM-SHA256",
         "rsa-decrypt-tls"},
    };

    for (const char* via : {"uri", "stub"}) {
        std::map<std::string, std::unique_ptr<Edge>> edges;
        for (const auto& c : cases) {
            DYNAMIC_SECTION(c.name << " via " << via) {
                std::string key_arg = base + c.key;
                if (std::string(via) == "stub") {
                    key_arg = dir / (std::string(c.key) + ".stub.pem");
                    std::string out;
                    REQUIRE(run_with_conf(
                                conf, keyless_tool() + " stub " + base + c.key + " -o " + key_arg,
                                &out) == 0);
                }
                auto& edge = edges[c.key];
                if (!edge)
                    edge = std::make_unique<Edge>(conf, key_arg, c.key,
                                                  dir / (std::string(via) + "-" + c.key + ".log"));
                std::string needle = "\"key\":\"" + std::string(c.key) + "\",\"latency_us\"";
                std::string op_needle = "\"op\":\"" + std::string(c.expect_op) + "\"";
                size_t before = count_of(keyserver.access_log(), op_needle);

                std::string out = s_client(edge->port, c.client_args, conf);
                INFO(out);
                CHECK(handshake_ok(out));
                CHECK(s_client_shows(out, c.expect_client, c.expect_op));
                // The keyserver did the private-key operation: the key stayed remote.
                CHECK(count_of(keyserver.access_log(), op_needle) == before + 1);
                size_t key_ops = count_of(keyserver.access_log(), needle);
                std::string body = curl(edge->port, c.curl_args);
                INFO(body);
                CHECK_THAT(body, match::contains("s_server"));
                CHECK(count_of(keyserver.access_log(), needle) == key_ops + 1); // curl's handshake
                CHECK(edge->proc->running());
            }
        }
    }
}

TEST_CASE("openssl CLI on keyless keys: pkey, pkeyutl, req, storeutl") {
    KeyserverFixture keyserver(kConfig);
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string rsa = "keyless:" + keyserver.address() + "/rsa2048";
    std::string out, expected;
    auto ok = [&](const std::string& cmd) {
        int rc = run_with_conf(conf, cmd, &out);
        INFO(cmd << "\n" << out);
        REQUIRE(rc == 0);
        return out;
    };

    ok("openssl pkey -in " + rsa + " -pubout -out " + (dir / "pub.pem"));
    run_command("openssl x509 -in " + pki("certs/rsa2048.crt") + " -pubkey -noout", &expected);
    CHECK(read_file(dir / "pub.pem") == expected);

    write_file(dir / "msg", "keyless says hello");
    ok("openssl dgst -sha256 -binary -out " + (dir / "msg.sha256") + " " + (dir / "msg"));
    ok("openssl pkeyutl -sign -inkey " + rsa + " -pkeyopt digest:sha256 -in " +
       (dir / "msg.sha256") + " -out " + (dir / "sig"));
    CHECK_THAT(ok("openssl pkeyutl -verify -pubin -inkey " + (dir / "pub.pem") +
                  " -pkeyopt digest:sha256 -in " + (dir / "msg.sha256") + " -sigfile " +
                  (dir / "sig")),
               match::contains("Signature Verified Successfully"));
    // PSS through the provider, verified by the default provider
    ok("openssl pkeyutl -sign -inkey " + rsa +
       " -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss"
       " -pkeyopt rsa_pss_saltlen:digest -in " +
       (dir / "msg.sha256") + " -out " + (dir / "pss"));
    CHECK_THAT(ok("openssl pkeyutl -verify -pubin -inkey " + (dir / "pub.pem") +
                  " -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -in " +
                  (dir / "msg.sha256") + " -sigfile " + (dir / "pss")),
               match::contains("Signature Verified Successfully"));

    for (const char* key : {"rsa2048", "p256"}) {
        std::string uri = "keyless:" + keyserver.address() + "/" + key;
        std::string csr = dir / (std::string(key) + ".csr");
        ok("openssl req -new -key " + uri + " -subj /CN=keyless-test -out " + csr);
        CHECK_THAT(ok("openssl req -in " + csr + " -verify -noout"), match::contains("verify OK"));
        ok("openssl dgst -sha384 -sign " + uri + " -out " + (dir / "dgst.sig") + " " +
           (dir / "msg"));
        run_command("openssl x509 -in " + pki(std::string("certs/") + key + ".crt") +
                    " -pubkey -noout > " + (dir / "k.pub"));
        CHECK_THAT(ok("openssl dgst -sha384 -verify " + (dir / "k.pub") + " -signature " +
                      (dir / "dgst.sig") + " " + (dir / "msg")),
                   match::contains("Verified OK"));
    }
    // pkeyutl -rawin: the whole message goes in (OpenSSL 3.5 and later sign it through the
    // message-signing API; 3.0 through DigestSign), verified by the default provider.
    for (const char* key : {"rsa2048", "p256", "ed25519"}) {
        std::string uri = "keyless:" + keyserver.address() + "/" + key;
        bool ed = std::string(key) == "ed25519";
        std::string digest = ed ? "" : " -digest sha256";
        run_command("openssl x509 -in " + pki(std::string("certs/") + key + ".crt") +
                    " -pubkey -noout > " + (dir / "raw.pub"));
        ok("openssl pkeyutl -sign -rawin" + digest + " -inkey " + uri + " -in " + (dir / "msg") +
           " -out " + (dir / "raw.sig"));
        CHECK_THAT(ok("openssl pkeyutl -verify -rawin" + digest + " -pubin -inkey " +
                      (dir / "raw.pub") + " -in " + (dir / "msg") + " -sigfile " +
                      (dir / "raw.sig")),
                   match::contains("Signature Verified Successfully"));
    }
    // Ed25519: a CSR and a self-signed certificate, by URI and through a stub.
    std::string ed = "keyless:" + keyserver.address() + "/ed25519";
    ok(keyless_tool() + " stub " + ed + " -o " + (dir / "ed.stub.pem"));
    for (const std::string& key : {ed, dir / "ed.stub.pem"}) {
        ok("openssl req -new -key " + key + " -subj /CN=ed -out " + (dir / "ed.csr"));
        CHECK_THAT(ok("openssl req -in " + (dir / "ed.csr") + " -verify -noout -text"),
                   match::contains("verify OK") && match::contains("ED25519"));
        ok("openssl req -x509 -new -key " + key + " -subj /CN=ed -days 1 -out " + (dir / "ed.crt"));
        CHECK_THAT(ok("openssl verify -CAfile " + (dir / "ed.crt") + " " + (dir / "ed.crt")),
                   match::contains(": OK"));
        CHECK(ok("openssl pkey -in " + key + " -pubout") ==
              ok("openssl x509 -in " + pki("certs/ed25519.crt") + " -pubkey -noout"));
    }
    CHECK_THAT(ok("openssl storeutl " + rsa),
               match::contains("0: Pkey") && match::contains("Total found: 1"));
    CHECK_THAT(ok(keyless_tool() + " ping " + rsa + " --count 3"),
               match::contains("pong from " + keyserver.address()));
    // Malformed options are refused by name before anything is done.
    for (auto [args, says] :
         {std::pair{" --count 3x", "('3x') for option '--count' is invalid: a number from 1"},
          {" --count 0", "('0') for option '--count' is invalid"},
          {" --seconds -5", "('-5') for option '--seconds' is invalid"},
          {" --secs 5", "unrecognised option '--secs'"},
          {" extra", "expected COMMAND URI"}}) {
        INFO(args);
        CHECK(run_with_conf(conf, keyless_tool() + " ping " + rsa + args, &out) == 1);
        CHECK_THAT(out, match::contains(says));
    }
    CHECK_THAT(ok(keyless_tool() + " pubkey " + rsa), match::contains(expected));

    // A key whose policy does not allow digest signing: a clear refusal, naming the key.
    std::string p384 = "keyless:" + keyserver.address() + "/p384";
    int rc = run_with_conf(
        conf, "openssl req -new -key " + p384 + " -subj /CN=x -out " + (dir / "x.csr"), &out);
    CHECK(rc != 0);
    CHECK_THAT(out, match::contains("denied by the keyserver's policy for key 'p384'"));
}

TEST_CASE("keyless-tool check proves the whole path, or fails with the provider's reason") {
    KeyserverFixture keyserver(R"({"keys": {"rsa2048": {"allow": ["rsa-decrypt-tls"]}}})");
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string base = "keyless:" + keyserver.address() + "/";
    std::string out;
    auto check = [&](const std::string& config, const std::string& key) {
        return run_with_conf(config, keyless_tool() + " check " + base + key, &out);
    };
    for (const char* key : {"p256", "p384", "rsa-default", "ed25519"}) {
        INFO(key);
        CHECK(check(conf, key) == 0);
        CHECK_THAT(out, match::starts_with("ok: " + base + key));
    }
    CHECK(check(conf, "rsa2048") != 0); // its policy has no sign-tls
    CHECK_THAT(out, match::contains("denied by the keyserver's policy for key 'rsa2048'"));
    CHECK(check(conf, "no-such-key") != 0);
    CHECK_THAT(out, match::contains("key 'no-such-key' not found"));
    std::string rogue = write_openssl_conf(dir / "rogue.cnf", "rogue");
    CHECK(check(rogue, "p256") != 0);
    CHECK_THAT(out, match::contains(base + "p256: fetching the public key failed"));
    write_file(dir / "bad-module.cnf",
               std::regex_replace(read_file(conf), std::regex("module = [^\n]*"),
                                  "module = /nonexistent/keyless.so"));
    CHECK(check(dir / "bad-module.cnf", "p256") != 0);
    CHECK_THAT(out, match::contains("the keyless provider is not loaded by OPENSSL_CONF="));
    // ping reaches the keyserver with the same settings, and warns about the module too.
    CHECK(run_with_conf(dir / "bad-module.cnf", keyless_tool() + " ping " + base + "p256 --count 1",
                        &out) == 0);
    CHECK_THAT(out, match::contains("does not load the keyless provider") &&
                        match::contains("pong from " + keyserver.address()));
    CHECK(run_command(keyless_tool() + " --version", &out) == 0);
    CHECK_THAT(out, match::starts_with("keyless-tool 0."));
}

TEST_CASE("a keyserver that sheds a request (rate limit) sends it to the next of the fleet") {
    // A: one signature per second for this edge; B: no limit.
    KeyserverFixture a(R"({"default_limits": {"ops_per_second": 1, "burst": 1}})");
    KeyserverFixture b;
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string out;
    for (auto [name, uri] : {std::pair{"fleet", "keyless:" + a.address() + "," + b.address()},
                             std::pair{"alone", "keyless:" + a.address()}})
        REQUIRE(run_with_conf(conf,
                              keyless_tool() + " stub " + uri + "/p256 --from-cert " +
                                  pki("certs/p256.crt") + " -o " +
                                  (dir / (std::string(name) + ".pem")),
                              &out) == 0);
    {
        Edge fleet(conf, dir / "fleet.pem", "p256", dir / "fleet.log");
        for (int i = 0; i < 4; ++i)
            CHECK(handshake_ok(s_client(fleet.port, "-tls1_3")));
        CHECK_THAT(a.access_log(), match::contains("\"error\":\"overloaded\""));
        CHECK(count_of(b.access_log(), "sign-tls:ecdsa_secp256r1_sha256") >= 2);
    }
    Edge alone(conf, dir / "alone.pem", "p256", dir / "alone.log");
    bool shed = false;
    for (int i = 0; i < 4 && !shed; ++i)
        shed = !handshake_ok(s_client(alone.port, "-tls1_3"));
    CHECK(shed);
    CHECK_THAT(read_file(dir / "alone.log"),
               match::contains("keyserver " + a.address() + " is overloaded (rate limit"));
}

TEST_CASE("keyless client certificates: s_client and curl under sign-tls-client only") {
    KeyserverFixture keyserver(R"({"keys": {
        "p384": {"allow": ["sign-tls-client"]},
        "rsa2048": {"allow": ["sign-tls-client"]},
        "p256": {"allow": ["sign-tls"]}
    }})");
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string out;
    for (const char* key : {"p384", "rsa2048", "p256"}) {
        std::string uri = "keyless:" + keyserver.address() + "/" + key;
        REQUIRE(run_with_conf(conf,
                              keyless_tool() + " stub " + uri + " -o " +
                                  (dir / (std::string(key) + ".stub.pem")),
                              &out) == 0);
    }
    // The server asks for a client certificate and verifies it; its own key is an ordinary file.
    uint16_t port = free_port();
    Process server({"/usr/bin/openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port),
                    "-cert", pki("keyserver.crt"), "-key", pki("keyserver.key"), "-Verify", "2",
                    "-CAfile", pki("ca.crt"), "-verify_return_error", "-www"},
                   {}, dir / "server.log", dir / "server.log");
    wait_for_port(port, std::chrono::seconds(10));
    auto client_args = [&](const char* key) {
        return std::string("-tls1_3 -cert ") + pki(std::string("certs/") + key + ".crt") +
               " -key " + (dir / (std::string(key) + ".stub.pem"));
    };
    for (const char* key : {"p384", "rsa2048"}) {
        INFO(key);
        out = s_client(port, client_args(key), conf, "GET / HTTP/1.0\\r\\n\\r\\n");
        CHECK(handshake_ok(out));
        CHECK_THAT(out, match::contains("Client certificate"));
        std::string body =
            curl(port,
                 std::string("--tlsv1.3 --cert ") + pki(std::string("certs/") + key + ".crt") +
                     " --key " + (dir / (std::string(key) + ".stub.pem")),
                 conf);
        CHECK_THAT(body, match::contains("s_server"));
    }
    std::string log = keyserver.access_log();
    CHECK(count_of(log, "\"shape\":\"tls13-client-cv\"") == 4);
    CHECK(count_of(log, "sign-tls:rsa_pss_rsae_sha256") == 2);
    CHECK(count_of(log, "sign-tls:ecdsa_secp384r1_sha384") == 2);
    // A key with only sign-tls cannot authenticate as a client.
    out = s_client(port, client_args("p256"), conf, "GET / HTTP/1.0\\r\\n\\r\\n");
    CHECK_THAT(out, !match::contains("s_server"));
    CHECK_THAT(keyserver.access_log(),
               match::contains("a TLS 1.3 client CertificateVerify needs sign-tls-client"));
}

TEST_CASE("RSA-PSS CSRs, certificates and CMS signatures made with a keyless key verify") {
    KeyserverFixture keyserver(kConfig);
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string base = "keyless:" + keyserver.address() + "/";
    std::string rsa = base + "rsa2048";
    std::string out;
    auto ok = [&](const std::string& cmd) {
        int rc = run_with_conf(conf, cmd, &out);
        INFO(cmd << "\n" << out);
        REQUIRE(rc == 0);
        return out;
    };
    std::string stub = dir / "rsa.stub.pem";
    ok(keyless_tool() + " stub " + rsa + " -o " + stub);
    const std::string pss = " -sigopt rsa_padding_mode:pss";

    for (const std::string& key : {rsa, stub}) { // by URI and through a stub file
        INFO(key);
        // A PSS CSR, for every digest the keyserver can sign PSS with and every salt setting.
        for (const char* opts :
             {" -sha256", " -sha384 -sigopt rsa_pss_saltlen:max",
              " -sha512 -sigopt rsa_pss_saltlen:auto", " -sha256 -sigopt rsa_pss_saltlen:32"}) {
            INFO(opts);
            ok("openssl req -new -key " + key + " -subj /CN=pss" + pss + opts + " -out " +
               (dir / "pss.csr"));
            CHECK_THAT(ok("openssl req -in " + (dir / "pss.csr") + " -verify -noout -text"),
                       match::contains("verify OK") && match::contains("rsassaPss"));
        }
        // A PSS self-signed CA certificate, then a leaf it signs (x509 -req -CAkey keyless:).
        ok("openssl req -x509 -new -key " + key + " -subj /CN=pss-ca -days 1" + pss +
           " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign -out " +
           (dir / "ca.crt"));
        CHECK_THAT(ok("openssl x509 -in " + (dir / "ca.crt") + " -noout -text"),
                   match::contains("Signature Algorithm: rsassaPss"));
        CHECK_THAT(ok("openssl verify -CAfile " + (dir / "ca.crt") + " " + (dir / "ca.crt")),
                   match::contains(": OK"));
        ok("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " +
           (dir / "leaf.key") + " -subj /CN=leaf -out " + (dir / "leaf.csr"));
        // The leaf's extensions named explicitly: OpenSSL 4.0's x509 -req otherwise reads them
        // from the default section of OPENSSL_CONF (here the one that loads keyless.so).
        write_file(dir / "leaf.ext", "basicConstraints = CA:FALSE\nkeyUsage = digitalSignature\n");
        ok("openssl x509 -req -in " + (dir / "leaf.csr") + " -CA " + (dir / "ca.crt") + " -CAkey " +
           key + " -CAcreateserial -days 1 -sha384" + pss + " -extfile " + (dir / "leaf.ext") +
           " -out " + (dir / "leaf.crt"));
        CHECK_THAT(ok("openssl verify -CAfile " + (dir / "ca.crt") + " " + (dir / "leaf.crt")),
                   match::contains(": OK"));
        // CMS with PSS.
        write_file(dir / "msg.txt", "signed by a keyless key");
        ok("openssl cms -sign -nodetach -binary -in " + (dir / "msg.txt") + " -signer " +
           (dir / "ca.crt") + " -inkey " + key +
           " -keyopt rsa_padding_mode:pss -outform PEM -out " + (dir / "msg.cms"));
        CHECK_THAT(ok("openssl cms -verify -binary -inform PEM -in " + (dir / "msg.cms") +
                      " -purpose any -CAfile " + (dir / "ca.crt") + " -out " + (dir / "msg.out")),
                   match::contains("Verification successful"));
        CHECK(read_file(dir / "msg.out") == "signed by a keyless key");
    }

    // What the keyserver cannot do fails cleanly, saying why.
    int rc = run_with_conf(conf,
                           "openssl req -new -key " + rsa + " -subj /CN=x" + pss +
                               " -sigopt rsa_pss_saltlen:20 -out " + (dir / "x.csr"),
                           &out);
    CHECK(rc != 0);
    CHECK_THAT(out, match::contains(rsa + ": RSA-PSS salt length 20 is not supported"));
    rc = run_with_conf(conf,
                       "openssl req -new -sha1 -key " + rsa + " -subj /CN=x" + pss + " -out " +
                           (dir / "x.csr"),
                       &out);
    CHECK(rc != 0);
    CHECK_THAT(out, match::contains("RSA-PSS with SHA1 is not supported"));
    // Printing or exporting the private key says where it is; the public half still prints.
    for (const char* args : {" -out ", " -text -noout -out "}) {
        rc = run_with_conf(conf, "openssl pkey -in " + rsa + args + (dir / "private.pem"), &out);
        CHECK(rc != 0);
        CHECK_THAT(out, match::contains(rsa + ": the private key is held by the keyserver and "
                                              "cannot be exported or printed"));
    }
    CHECK_THAT(ok("openssl pkey -in " + rsa + " -text_pub -noout"),
               match::contains("Public-Key: (2048 bit)"));
    // A malformed URI says what is wrong with it.
    rc = run_with_conf(conf, "openssl pkey -in keyless:127.0.0.1/x -pubout", &out);
    CHECK(rc != 0);
    CHECK_THAT(out, match::contains("bad keyless URI") && match::contains("missing ':PORT'"));
}

TEST_CASE("a key replaced in place is caught as a stale stub, a refreshed stub works") {
    TempDir dir;
    ::mkdir((dir / "keys").c_str(), 0700);
    auto install_key = [&](const std::string& from) {
        write_file(dir / "keys/www.pem.tmp", read_file(pki("keys/" + from + ".pem")));
        ::chmod((dir / "keys/www.pem.tmp").c_str(), 0600);
        ::rename((dir / "keys/www.pem.tmp").c_str(), (dir / "keys/www.pem").c_str());
    };
    install_key("p256");
    KeyserverFixture keyserver(R"({"keys_dir": ")" + (dir / "keys") + R"("})");
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string uri = "keyless:" + keyserver.address() + "/www";
    auto make_stub = [&](const std::string& path) {
        std::string out;
        REQUIRE(run_with_conf(conf, keyless_tool() + " stub " + uri + " -o " + path, &out) == 0);
    };
    make_stub(dir / "www.stub.pem");
    {
        Edge edge(conf, dir / "www.stub.pem", "p256", dir / "edge.log");
        REQUIRE(handshake_ok(s_client(edge.port, "-tls1_3")));

        // The operator replaces the key file under the same name and reloads the keyserver.
        install_key("p384");
        keyserver.process().kill(SIGHUP);
        for (int i = 0; i < 500 && keyserver.stderr_text().find("reloaded") == std::string::npos;
             ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        REQUIRE_THAT(keyserver.stderr_text(), match::contains("reloaded"));

        // The stale stub is refused before anything is signed, and the edge says what to do.
        CHECK_FALSE(handshake_ok(s_client(edge.port, "-tls1_3")));
        CHECK_THAT(read_file(dir / "edge.log"),
                   match::contains(uri + ": signing failed: the keyserver's key 'www' is not the "
                                         "key in this stub (rotated? refresh it with "
                                         "keyless-tool stub)"));
        CHECK_THAT(keyserver.access_log(), match::contains("\"error\":\"key mismatch\""));
        CHECK(count_of(keyserver.access_log(), "sign-tls:ecdsa_secp256r1_sha256\",\"peer") == 1);
    }
    // A refreshed stub (and the certificate of the new key) works.
    make_stub(dir / "www-new.stub.pem");
    Edge edge(conf, dir / "www-new.stub.pem", "p384", dir / "edge-new.log");
    CHECK(handshake_ok(s_client(edge.port, "-tls1_3")));
}

size_t rss_kib(pid_t pid) {
    std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    auto at = status.find("VmRSS:");
    return at == std::string::npos ? 0 : std::stoul(status.substr(at + 6));
}

TEST_CASE("a keyserver that floods replies costs a handshake, never the terminator") {
    uint16_t port = free_port();
    TempDir dir;
    std::string conf =
        write_openssl_conf(dir / "openssl.cnf", "edge-1", "ca.crt", "request_timeout_ms = 2000");
    std::string uri = "keyless:127.0.0.1:" + std::to_string(port) + "/p256";
    std::string out;
    REQUIRE(run_with_conf(conf,
                          keyless_tool() + " stub " + uri + " --from-cert " +
                              pki("certs/p256.crt") + " -o " + (dir / "p256.stub.pem"),
                          &out) == 0);
    Edge edge(conf, dir / "p256.stub.pem", "p256", dir / "edge.log");
    size_t rss_before = rss_kib(edge.proc->pid());
    {
        FloodingKeyserver flood(port);
        for (int i = 0; i < 3; ++i) {
            CHECK_FALSE(handshake_ok(s_client(edge.port, "-tls1_3")));
            CHECK(edge.proc->running());
        }
        CHECK(flood.connections() >= 1);
        INFO("flood sent " << flood.bytes_sent() << " bytes; s_server RSS " << rss_before
                           << " KiB before, " << rss_kib(edge.proc->pid()) << " KiB after");
        // Bounded: the client keeps at most one read and one partial frame per connection.
        CHECK(rss_kib(edge.proc->pid()) < rss_before + 32 * 1024);
        CHECK_THAT(read_file(dir / "edge.log"),
                   match::contains("keyserver 127.0.0.1:" + std::to_string(port) +
                                   " answered request id"));
    }
    // A good keyserver at the same address: the same s_server recovers.
    KeyserverFixture good(kConfig, {}, "127.0.0.1:" + std::to_string(port));
    CHECK(handshake_eventually(edge.port, "-tls1_3"));
    CHECK(edge.proc->running());
}

TEST_CASE("failures are bounded and name the URI and the cause") {
    KeyserverFixture keyserver(kConfig);
    TempDir dir;
    std::string conf =
        write_openssl_conf(dir / "openssl.cnf", "edge-1", "ca.crt", "request_timeout_ms = 1500");
    std::string base = "keyless:" + keyserver.address() + "/";
    std::string out;
    REQUIRE(run_with_conf(conf,
                          keyless_tool() + " stub " + base + "rsa2048 -o " + (dir / "rsa.pem"),
                          &out) == 0);

    SECTION("keyserver down: handshakes fail at once, s_server survives and says why") {
        Edge edge(conf, dir / "rsa.pem", "rsa2048", dir / "edge.log");
        keyserver.stop();
        auto start = std::chrono::steady_clock::now();
        out = s_client(edge.port, "-tls1_3", conf);
        auto took = std::chrono::steady_clock::now() - start;
        CHECK_FALSE(handshake_ok(out));
        CHECK_THAT(out, match::contains("alert internal error"));
        CHECK(took < std::chrono::seconds(10)); // bounded: never a hang
        CHECK(edge.proc->running());
        std::string log = read_file(dir / "edge.log");
        CHECK_THAT(log, match::contains(base + "rsa2048: signing failed: keyserver 127.0.0.1:"));
        CHECK_THAT(log, match::contains("Connection refused"));
        // ... and it recovers, without a restart, when the keyserver is back.
        keyserver.restart();
        CHECK(handshake_eventually(edge.port, "-tls1_3", conf));
    }
    SECTION("keyserver that never answers: the request timeout ends the handshake") {
        KeyserverFixture slow(kConfig, {"--test-reply-delay-ms", "8000"});
        std::string slow_base = "keyless:" + slow.address() + "/";
        // The stub is made offline from the certificate: the slow keyserver is never asked.
        REQUIRE(run_with_conf(conf,
                              keyless_tool() + " stub " + slow_base + "p256 --from-cert " +
                                  pki("certs/p256.crt") + " -o " + (dir / "slow.pem"),
                              &out) == 0);
        Edge edge(conf, dir / "slow.pem", "p256", dir / "slow.log");
        auto start = std::chrono::steady_clock::now();
        out = s_client(edge.port, "-tls1_3", conf);
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(6)); // 1.5 s, not 8 s
        CHECK_FALSE(handshake_ok(out));
        CHECK_THAT(read_file(dir / "slow.log"),
                   match::contains(slow_base + "p256: signing failed: keyserver 127.0.0.1:"));
        CHECK_THAT(read_file(dir / "slow.log"), match::contains("no reply within 1500 ms"));
        CHECK(edge.proc->running());
    }
    SECTION("unknown key id") {
        int rc = run_with_conf(
            conf,
            "timeout 20 openssl s_server -accept 127.0.0.1:" + std::to_string(free_port()) +
                " -cert " + pki("certs/rsa2048.crt") + " -key " + base + "no-such-key -www",
            &out);
        CHECK(rc != 0);
        CHECK_THAT(
            out,
            match::contains(
                base + "no-such-key: fetching the public key failed: key 'no-such-key' not found"));
    }
    SECTION("a client certificate the keyserver does not trust") {
        std::string rogue = write_openssl_conf(dir / "rogue.cnf", "rogue");
        int rc =
            run_with_conf(rogue, "timeout 20 openssl pkey -in " + base + "rsa2048 -pubout", &out);
        CHECK(rc != 0);
        CHECK_THAT(out,
                   match::contains(
                       base + "rsa2048: fetching the public key failed: keyserver 127.0.0.1:"));
        CHECK_THAT(out, match::contains("unknown ca"));
    }
    SECTION("wrong ca_file: the keyserver's certificate is not trusted") {
        std::string wrong = write_openssl_conf(dir / "wrong.cnf", "edge-1", "other-ca.crt");
        int rc =
            run_with_conf(wrong, "timeout 20 openssl pkey -in " + base + "rsa2048 -pubout", &out);
        CHECK(rc != 0);
        CHECK_THAT(out, match::contains("keyserver TLS handshake failed"));
        CHECK_THAT(out, match::contains(
                            "server certificate: self-signed certificate in certificate chain"));
    }
    SECTION("a bad URI and a bad setting are reported, not ignored") {
        int rc = run_with_conf(conf, "openssl pkey -in keyless:host-without-port/k -pubout", &out);
        CHECK(rc != 0);
        CHECK_THAT(out, match::contains("bad key URI 'keyless:host-without-port/k'"));
        std::string bad =
            write_openssl_conf(dir / "bad.cnf", "edge-1", "ca.crt", "request_timeout_ms = soon");
        rc = run_with_conf(bad, "openssl pkey -in " + base + "rsa2048 -pubout", &out);
        CHECK(rc != 0);
        CHECK_THAT(out,
                   match::contains("request_timeout_ms = 'soon' must be a number of milliseconds"));
    }
}

TEST_CASE("against a stock gokeyless keyserver: digest signing and raw decryption fallbacks") {
    // The keyserver answers like gokeyless: BadOpcode for keyless extensions, keys by SKI only.
    KeyserverFixture keyserver(R"({"keys": {
        "rsa2048": {"allow": ["sign-digest", "rsa-decrypt-raw"]},
        "p256": {"allow": ["sign-digest"]}
    }})",
                               {"--test-emulate-gokeyless"});
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    std::string out;
    for (const char* key : {"rsa2048", "p256"}) {
        // No get-public-key on gokeyless: stubs are made from the certificates.
        REQUIRE(run_with_conf(conf,
                              keyless_tool() + " stub keyless:" + keyserver.address() + "/" + key +
                                  " --from-cert " + pki(std::string("certs/") + key + ".crt") +
                                  " -o " + (dir / (std::string(key) + ".pem")),
                              &out) == 0);
    }
    Edge rsa(conf, dir / "rsa2048.pem", "rsa2048", dir / "rsa.log");
    Edge ec(conf, dir / "p256.pem", "p256", dir / "ec.log");
    for (int round = 0; round < 2; ++round) { // the second round skips the extension probe
        CHECK(handshake_ok(s_client(rsa.port, "-tls1_3", conf)));
        CHECK(handshake_ok(s_client(rsa.port, "-tls1_2 -cipher AES128-GCM-SHA256", conf)));
        CHECK(handshake_ok(s_client(ec.port, "-tls1_3", conf)));
    }
    std::string log = keyserver.access_log();
    INFO(log);
    CHECK(count_of(log, "\"op\":\"rsa-pss-sign-sha256\"") == 2);
    CHECK(count_of(log, "\"op\":\"rsa-decrypt-raw\"") == 2);
    CHECK(count_of(log, "\"op\":\"ecdsa-sign-sha256\"") == 2);
    // Each s_server asked once whether the keyserver knows keyless's extensions, then remembered.
    CHECK(count_of(log, "\"error\":\"bad opcode\"") == 2);

    // The gokeyless server is replaced by a keyless one at the same address: the edges notice
    // on their new connection and use sign-TLS, with no restart of their own.
    keyserver.restart({});
    for (int round = 0; round < 2; ++round) { // the first handshake reconnects, digest-signed
        CHECK(handshake_ok(s_client(rsa.port, "-tls1_3", conf)));
        CHECK(handshake_ok(s_client(ec.port, "-tls1_3", conf)));
    }
    log = keyserver.access_log();
    CHECK(count_of(log, "sign-tls:rsa_pss_rsae_sha256") >= 1);
    CHECK(count_of(log, "sign-tls:ecdsa_secp256r1_sha256") >= 1);
    CHECK(count_of(log, "\"error\":\"bad opcode\"") == 2); // no new refusals
}

TEST_CASE("a mixed fleet (gokeyless and keyless keyservers in one URI): each gets the form it "
          "knows") {
    // A rolling upgrade: A is still gokeyless (digest signing, sign-digest allowed), B is ours
    // under the default policy (sign-tls only): a digest request to B would be refused.
    KeyserverFixture a(R"({"keys": {"p256": {"allow": ["sign-digest"]}}})",
                       {"--test-emulate-gokeyless"});
    KeyserverFixture b("{}");
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    Edge edge(conf, "keyless:" + a.address() + "," + b.address() + "/p256", "p256",
              dir / "edge.log");
    constexpr int kHandshakes = 1000;
    int ok = 0;
    for (int i = 0; i < kHandshakes; ++i)
        ok += !https_get(edge.port).empty();
    CHECK(ok == kHandshakes);
    std::string log_a = a.access_log(), log_b = b.access_log();
    size_t digest_signed = count_of(log_a, "\"op\":\"ecdsa-sign-sha256\"");
    size_t tls_signed = count_of(log_b, "\"op\":\"sign-tls:ecdsa_secp256r1_sha256\"");
    INFO("A (gokeyless) signed " << digest_signed << ", B (keyless) " << tls_signed);
    // One call per handshake, each answered by the keyserver it went to: B never refused
    // (no policy denial), A refused sign-TLS once, the first time, and that call was answered
    // on A in gokeyless's form.
    CHECK(digest_signed + tls_signed == kHandshakes);
    CHECK(digest_signed > 0);
    CHECK(tls_signed > 0);
    CHECK(count_of(log_b, "\"error\":") == 0);
    CHECK(count_of(log_a, "\"error\":\"bad opcode\"") == 1);
    CHECK(count_of(log_a, "\"error\":") == 1);
}
