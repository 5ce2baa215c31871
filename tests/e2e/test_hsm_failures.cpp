// Key sources that fail, and what an operator must see: PKCS#11 failures (wrong PIN, missing
// module, unmatched token, a PIN file others can read, a token that loses its keys) and key files
// this build cannot use, at start and on reload, while the other keys keep being served (a
// source that fails costs only its own keys unless strict_start). Here (keyserver_e2e) they also
// run under ASan+UBSan.
#include "hsm_setup.hpp"
#include "signatures.hpp"
#include "test_client.hpp"
#include "test_keys.hpp"

#include <nlohmann/json.hpp>

#include "catch.hpp"

using namespace keyless::test;
using keyless::protocol::ErrorCode;
using keyless::protocol::Opcode;
using keyless::protocol::Operation;

TEST_CASE("HSM failures are clear, and file keys keep being served") {
    HsmSetup s;
    std::string out;
    SECTION("a wrong PIN stops the start, naming the token and CKR_PIN_INCORRECT") {
        TempDir dir;
        write_file(dir / "pin", "0000\n");
        run_command("chmod 600 " + (dir / "pin"));
        CHECK(check(s.config(pki("keys"), dir / "pin"), out) == 1);
        CHECK_THAT(out, match::contains("token 'edge'"));
        CHECK_THAT(out, match::contains("login failed (CKR_PIN_INCORRECT)"));
        CHECK_THAT(out, match::contains("key 'hsm-rsa'"));
    }
    SECTION("a PIN file others can read is refused") {
        run_command("chmod 644 " + s.hsm.pin_file());
        CHECK(check(s.config(pki("keys")), out) == 1);
        CHECK_THAT(out, match::contains("is readable or writable by others (chmod o-rwx"));
    }
    SECTION("a missing module is named") {
        CHECK(check(s.config(pki("keys"), "", "/usr/lib/no-such-pkcs11.so"), out) == 1);
        CHECK_THAT(out, match::contains("PKCS#11 module /usr/lib/no-such-pkcs11.so: cannot load"));
    }
    SECTION("a URI that matches no token lists the tokens there are") {
        std::string config = s.config(s.no_key_files.path());
        config.replace(config.find("token=edge;object=www-rsa"), 25, "token=other;object=www-rsa");
        CHECK(check(config, out) == 1);
        CHECK_THAT(out, match::contains("no token in /usr/lib/softhsm/libsofthsm2.so matches "
                                        "(tokens present: 'edge'"));
    }
    SECTION("a token that cannot log in at start costs only its own keys; a reload that fixes "
            "it brings them in") {
        TempDir dir;
        write_file(dir / "pin", "0000\n");
        run_command("chmod 600 " + (dir / "pin"));
        KeyserverFixture keyserver(s.config(pki("keys"), dir / "pin"));
        TestClient edge(keyserver.client());
        CHECK(edge.call(sign_p256("p256")).is(Opcode::Response));
        CHECK(error_of(edge.call(sign_p256("hsm-ec"))) == ErrorCode::KeyNotFound);
        std::string log = keyserver.stderr_text();
        CHECK_THAT(log, match::contains("unavailable (the other keys are served): key 'hsm-ec'"));
        CHECK_THAT(log, match::contains("login failed (CKR_PIN_INCORRECT)"));
        CHECK(admin(keyserver, "GET", "/healthz") ==
              "200\ndegraded: 2 key(s) unavailable: hsm-ec, hsm-rsa\n");
        CHECK_THAT(admin(keyserver, "GET", "/metrics"),
                   match::contains("\nkeyless_keys_unavailable 2\n"));
        auto keys = nlohmann::json::parse(admin(keyserver, "GET", "/keys").substr(4));
        REQUIRE(keys["unavailable"].size() == 2);
        CHECK(keys["unavailable"][0]["name"] == "hsm-ec");
        CHECK_THAT(keys["unavailable"][0]["reason"].get<std::string>(),
                   match::contains("CKR_PIN_INCORRECT"));
        // Fixed, the next reload brings the token's keys in.
        keyserver.rewrite_config(s.config(pki("keys")));
        keyserver.reload_and_wait("keyserver: reloaded", 1);
        CHECK(edge.call(sign_p256("hsm-ec")).is(Opcode::Response));
        CHECK(admin(keyserver, "GET", "/healthz") == "200\nok\n");
        CHECK_THAT(admin(keyserver, "GET", "/metrics"),
                   match::contains("\nkeyless_keys_unavailable 0\n"));
    }
    SECTION("a reload never takes a served token key away: a missing module is refused") {
        KeyserverFixture keyserver(s.config(pki("keys")));
        TestClient edge(keyserver.client());
        REQUIRE(edge.call(sign_p256("hsm-ec")).is(Opcode::Response));
        keyserver.rewrite_config(s.config(pki("keys"), "", "/usr/lib/no-such-pkcs11.so"));
        keyserver.reload_and_wait("reload failed", 1);
        CHECK_THAT(keyserver.stderr_text(),
                   match::contains("PKCS#11 module /usr/lib/no-such-pkcs11.so: cannot load"));
        CHECK(edge.call(sign_p256("hsm-ec")).is(Opcode::Response));
        CHECK(edge.call(sign_p256("p256")).is(Opcode::Response));
        CHECK(admin(keyserver, "GET", "/healthz") == "200\nok\n");
    }
    SECTION("strict_start: a token that cannot log in stops the start, as --check does") {
        TempDir dir;
        write_file(dir / "pin", "0000\n");
        run_command("chmod 600 " + (dir / "pin"));
        std::string config = s.config(pki("keys"), dir / "pin");
        config.replace(0, 1, R"({"strict_start": true, "listen": "127.0.0.1:0", )");
        write_file(dir / "ks.json", config);
        // Bounded: a keyserver that started anyway is ended by timeout (status 124).
        int status =
            run_command("timeout 60 " + keyserver_binary() + " --config " + (dir / "ks.json") +
                            " --admin off --cert " + pki("keyserver.crt") + " --key " +
                            pki("keyserver.key") + " --client-ca " + pki("ca.crt") + " 2>&1",
                        &out);
        CHECK(status == 1);
        CHECK_THAT(out, match::contains("login failed (CKR_PIN_INCORRECT)"));
    }
    SECTION("a token with more operations waiting than pkcs11.max_queue sheds the rest") {
        std::string config = s.config(pki("keys"));
        config.replace(config.find("\"pkcs11\": {"), 11,
                       "\"pkcs11\": {\"max_sessions\": 1, \"max_queue\": 1, ");
        KeyserverFixture keyserver(config);
        TestClient edge(keyserver.client());
        for (int i = 0; i < 64; ++i)
            edge.send(sign_p256("hsm-ec"));
        int signed_ = 0, shed = 0;
        for (int i = 0; i < 64; ++i) {
            auto reply = edge.receive();
            REQUIRE(reply);
            if (reply->second.is(Opcode::Response))
                ++signed_;
            else if (error_of(reply->second) == ErrorCode::Overloaded)
                ++shed;
        }
        CHECK(signed_ >= 1);
        CHECK(shed >= 1);
        CHECK(signed_ + shed == 64);
        CHECK_THAT(keyserver.access_log(), match::contains("too many operations waiting "
                                                           "(pkcs11.max_queue)"));
        // File keys are not queued behind the token.
        CHECK(edge.call(sign_p256("p256")).is(Opcode::Response));
    }
    SECTION("a token that loses its keys: hsm errors for its keys, file keys unaffected") {
        KeyserverFixture keyserver(s.config(pki("keys")));
        TestClient edge(keyserver.client());
        REQUIRE(edge.call(sign_p256("hsm-ec")).is(Opcode::Response));
        s.hsm.lose_objects();
        Operation reply = edge.call(sign_p256("hsm-ec"));
        CHECK(error_of(reply) == ErrorCode::Internal);
        CHECK(edge.call(sign_p256("p256")).is(Opcode::Response));
        std::string log = keyserver.access_log();
        CHECK_THAT(log, match::contains("\"error\":\"hsm error\""));
        CHECK_THAT(log, match::contains("token 'edge'"));
        CHECK_THAT(log, match::contains("(CKR_"));
        std::string metrics = admin(keyserver, "GET", "/metrics");
        CHECK_THAT(metrics, match::contains("key=\"hsm-ec\",result=\"hsm_error\"} 1"));
        CHECK_THAT(metrics, match::contains("key=\"p256\",result=\"ok\"} 1"));
    }
}

TEST_CASE("a token's Ed448 key signs the TLS 1.3 ed448 CertificateVerify, and nothing else") {
    SoftHsm hsm;
    hsm.generate_ed448("www-ed448", 0x07);
    std::string config = R"({"keys_dir": ")" + pki("keys") + R"(", "pkcs11": {"module": ")" +
                         SoftHsm::module() + R"(", "pin_file": ")" + hsm.pin_file() + R"("},
        "keys": {"hsm-ed448": {"pkcs11": "pkcs11:token=edge;id=%07", "allow": ["sign-tls"]}}})";
    std::string out;
    REQUIRE(check(config, out) == 0);
    CHECK_THAT(out, match::contains("mechanisms: EDDSA (sign)"));
    KeyserverFixture keyserver(config);
    TestClient edge(keyserver.client());
    Operation get = Operation::make(Opcode::GetPublicKey);
    get.key_name = "hsm-ed448";
    Operation spki = edge.call(get);
    REQUIRE(spki.is(Opcode::Response));
    auto pub = from_spki(spki.payload);
    REQUIRE(pub);
    CHECK(EVP_PKEY_is_a(pub.get(), "ED448"));
    Operation sign = sign_p256("hsm-ed448");
    sign.signature_scheme = 0x0808;
    Operation reply = edge.call(sign);
    REQUIRE(reply.is(Opcode::Response));
    CHECK(reply.payload.size() == 114);
    CHECK(verify_message(pub.get(), 0x0808, sign.payload, reply.payload));
    // Each scheme only for its own key type.
    for (int other : {0x0807, 0x0403, 0x0905}) {
        sign.signature_scheme = static_cast<uint16_t>(other);
        CHECK(error_of(edge.call(sign)) == ErrorCode::PolicyDenied);
    }
    CHECK_THAT(keyserver.access_log(), match::contains("\"key\":\"hsm-ed448\""));
}

TEST_CASE("a key file this build cannot use costs only itself, --check still fails on it") {
    TempDir keys;
    run_command("cp " + pki("keys/p256.pem") + " " + (keys / "p256.pem") + " && chmod 600 " +
                (keys / "p256.pem") + " && chmod 700 " + keys.path());
    REQUIRE(write_made_up_ml_dsa_65_key(keys / "pq.pem"));
    std::string why = OpenSSL_version_num() >= 0x30500000L
                          ? "cannot decode"
                          : "ML-DSA needs a keyserver built with OpenSSL 3.5 or later";
    std::string config = R"({"keys_dir": ")" + keys.path() + R"("})";
    std::string out;
    CHECK(check(config, out) == 1);
    CHECK_THAT(out, match::contains("key 'pq'") && match::contains(why));
    KeyserverFixture keyserver(config);
    TestClient edge(keyserver.client());
    CHECK(edge.call(sign_p256("p256")).is(Opcode::Response));
    CHECK(error_of(edge.call(sign_p256("pq"))) == ErrorCode::KeyNotFound);
    CHECK_THAT(keyserver.stderr_text(),
               match::contains("unavailable (the other keys are served): key 'pq'") &&
                   match::contains(why));
    CHECK(admin(keyserver, "GET", "/healthz") == "200\ndegraded: 1 key(s) unavailable: pq\n");
}
