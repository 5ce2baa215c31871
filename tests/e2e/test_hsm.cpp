// Keys inside a SoftHSM2 token, never extractable, served by the keyserver through PKCS#11: the
// TLS matrix through openssl s_server and nginx with no key file anywhere, and the failures an
// operator must see clearly (wrong PIN, missing module, a token that loses its keys) while file
// keys keep being served.
#include "frames.hpp"
#include "hsm_setup.hpp"
#include "provider_env.hpp"
#include "terminator_checks.hpp"
#include "terminators.hpp"
#include "test_client.hpp"
#include "tls_clients.hpp"

#include "catch.hpp"

using namespace keyless::test;
using keyless::protocol::ErrorCode;
using keyless::protocol::Opcode;
using keyless::protocol::Operation;

TEST_CASE("keys inside SoftHSM2 serve s_server's and nginx's TLS matrix, no key file anywhere",
          "[nginx]") {
    HsmSetup s;
    std::string objects;
    REQUIRE(run_command("pkcs11-tool --module " + SoftHsm::module() +
                            " --token-label edge --login --pin 1234 --list-objects --type privkey",
                        &objects) == 0);
    CHECK(count_of(objects, "never extractable") == 2); // the keys cannot leave the token

    std::string summary;
    REQUIRE(check(s.config(s.no_key_files.path()), summary) == 0);
    INFO(summary);
    CHECK_THAT(summary, match::contains("hsm-ec: EC P-256"));
    CHECK_THAT(summary, match::contains("hsm-rsa: RSA-2048"));
    CHECK_THAT(summary, match::contains("in token 'edge'"));
    CHECK_THAT(summary, match::contains("mechanisms: ECDSA (sign)"));
    CHECK_THAT(summary, match::contains("RSA-X-509 (sign+decrypt)"));

    KeyserverFixture keyserver(s.config(s.no_key_files.path()));
    TempDir dir;
    std::string conf = write_openssl_conf(dir / "openssl.cnf");
    // Certificates for the token's public keys (fetched through the provider), issued by the
    // test CA, and the stubs nginx loads as its keys.
    EdgeKeys keys;
    write_file(dir / "ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                "extendedKeyUsage=serverAuth\n");
    for (const char* key : {"hsm-rsa", "hsm-ec"}) {
        std::string uri = "keyless:" + keyserver.address() + "/" + key;
        std::string base = dir / key, out;
        REQUIRE(run_with_conf(conf, keyless_tool() + " pubkey " + uri + " > " + base + ".pub",
                              &out) == 0);
        REQUIRE(run_command("openssl x509 -new -subj /CN=localhost -force_pubkey " + base +
                                ".pub -CA " + pki("ca.crt") + " -CAkey " + pki("ca.key") +
                                " -days 2 -extfile " + (dir / "ext.cnf") + " -out " + base +
                                ".crt 2>&1",
                            &out) == 0);
        REQUIRE(run_with_conf(conf, keyless_tool() + " stub " + uri + " -o " + base + ".stub",
                              &out) == 0);
    }
    keys = {dir / "hsm-rsa.crt", dir / "hsm-rsa.stub", dir / "hsm-ec.crt", dir / "hsm-ec.stub"};

    SECTION("openssl s_server: TLS 1.3 and 1.2, RSA (PSS and PKCS#1) and EC, RSA key exchange") {
        struct Case {
            const char* name;
            const char* key;
            const char* client_args;
            const char* expect_client;
            const char* expect_op;
        };
        const Case cases[] = {
            {"TLS 1.3 RSA-PSS", "hsm-rsa", "-tls1_3", "Peer signature type: RSA-PSS",
             "sign-tls:rsa_pss_rsae_sha256"},
            {"TLS 1.3 P-256", "hsm-ec", "-tls1_3", "Peer signature type: ECDSA",
             "sign-tls:ecdsa_secp256r1_sha256"},
            {"TLS 1.2 ECDHE-RSA (PKCS#1)", "hsm-rsa",
             "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 -sigalgs RSA+SHA256",
             "Peer signature type: RSA\n", "sign-tls:rsa_pkcs1_sha256"},
            {"TLS 1.2 ECDHE-RSA (PSS)", "hsm-rsa", "-tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384",
             "Peer signature type: RSA-PSS", "sign-tls:rsa_pss_rsae_sha256"},
            {"TLS 1.2 ECDHE-ECDSA", "hsm-ec", "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256",
             "Peer signature type: ECDSA", "sign-tls:ecdsa_secp256r1_sha256"},
            {"TLS 1.2 RSA key exchange", "hsm-rsa", "-tls1_2 -cipher AES128-GCM-SHA256",
             "Cipher is AES128-GCM-SHA256", "rsa-decrypt-tls"},
        };
        std::map<std::string, std::pair<uint16_t, std::unique_ptr<Process>>> servers;
        for (const char* key : {"hsm-rsa", "hsm-ec"}) {
            uint16_t port = free_port();
            std::string base = dir / key;
            servers[key] = {
                port, std::make_unique<Process>(
                          std::vector<std::string>{"/usr/bin/openssl", "s_server", "-accept",
                                                   "127.0.0.1:" + std::to_string(port), "-cert",
                                                   base + ".crt", "-key", base + ".stub", "-www"},
                          std::map<std::string, std::string>{{"OPENSSL_CONF", conf}}, base + ".log",
                          base + ".log")};
            wait_for_port(port, std::chrono::seconds(10));
        }
        for (const auto& c : cases) {
            std::string op = "\"op\":\"" + std::string(c.expect_op) + "\"";
            size_t before = count_of(keyserver.access_log(), op);
            std::string out = s_client(servers[c.key].first, c.client_args);
            INFO(c.name << "\n" << out);
            CHECK(handshake_ok(out));
            CHECK(s_client_shows(out, c.expect_client, c.expect_op));
            CHECK(count_of(keyserver.access_log(), op) == before + 1);
        }
    }
    SECTION("nginx, the full matrix (TLS 1.3 and 1.2, RSA and EC, RSA key exchange)") {
        run_command("mkdir -p " + (dir / "nginx"));
        auto nginx = start_nginx(dir / "nginx", conf, keys);
        check_matrix(*nginx, keyserver);
        CHECK(nginx->alive());
        // Every private-key operation went to the token.
        std::string log = keyserver.access_log();
        CHECK(count_of(log, "\"key\":\"hsm-rsa\"") >= 6);
        CHECK(count_of(log, "\"key\":\"hsm-ec\"") >= 4);
        CHECK(count_of(log, "\"op\":\"rsa-decrypt-tls\"") >= 2);
        CHECK(count_of(log, "\"error\"") == 0);
    }
}

TEST_CASE("scripts/hsm-new-key.sh makes (or imports) a key the keyserver serves, and its stub") {
    SoftHsm hsm;
    TempDir dir;
    std::string tools = keyless_tool().substr(0, keyless_tool().rfind('/'));
    std::string script = source_dir() + "/scripts/hsm-new-key.sh";
    std::string out;
    for (std::string how : {std::string("--type ec"), "--import " + pki("keys/rsa2048.pem")}) {
        std::string name = how == "--type ec" ? "made" : "imported";
        INFO(how);
        REQUIRE(run_command("PATH=" + tools + ":$PATH " + script + " --token edge --pin-file " +
                                hsm.pin_file() + " --name " + name + " " + how + " --out " +
                                dir.path() + " --keyserver 127.0.0.1:2407",
                            &out) == 0);
        CHECK_THAT(out, match::contains("\"pkcs11\": \"pkcs11:token=edge;object=" + name + "\""));
    }
    KeyserverFixture keyserver(R"({"pkcs11": {"module": ")" + SoftHsm::module() +
                               R"(", "pin_file": ")" + hsm.pin_file() + R"("},
        "keys": {"made": {"pkcs11": "pkcs11:token=edge;object=made"},
                 "imported": {"pkcs11": "pkcs11:token=edge;object=imported"}}})");
    TestClient edge(keyserver.client());
    CHECK(edge.call(sign_p256("made")).is(Opcode::Response));
    // The stub and the keyserver describe the same public key.
    TempDir conf_dir;
    std::string conf = write_openssl_conf(conf_dir / "openssl.cnf");
    for (const char* name : {"made", "imported"}) {
        std::string served;
        REQUIRE(run_with_conf(
                    conf, keyless_tool() + " pubkey keyless:" + keyserver.address() + "/" + name,
                    &served) == 0);
        CHECK(served == read_file(dir / (std::string(name) + ".pub.pem")));
        CHECK_THAT(read_file(dir / (std::string(name) + ".stub.pem")),
                   match::contains("BEGIN KEYLESS KEY"));
    }
}
