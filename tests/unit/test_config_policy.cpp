#include "config/config.hpp"
#include "keyserver_fixture.hpp"
#include "ops/dispatch.hpp"
#include "ops/signer.hpp"
#include "test_keys.hpp"

#include <optional>

#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "catch.hpp"
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <tuple>

using namespace keyless;
using namespace keyless::keyserver;
using keyless::test::TempDir;
using keyless::test::write_file;
using keyless::test::write_made_up_ml_dsa_65_key;

namespace {

std::string config_error(const std::string& json) {
    TempDir dir;
    write_file(dir / "c.json", json);
    Config c;
    try {
        load_config_file(dir / "c.json", c);
    } catch (const ConfigError& e) {
        std::string what = e.what();
        return what.substr(what.find(": ") + 2); // drop the temp path
    }
    return "accepted";
}

// What a dispatcher serves: the test PKI's keys under `config`.
std::shared_ptr<const ServingState> serving(const Config& config) {
    auto state = std::make_shared<ServingState>();
    state->keys = KeyStore::load_directory(test::pki("keys"), false);
    state->policies = config.policies;
    state->max_ping_payload = config.limits.max_ping_payload;
    return state;
}

ClientIdentity identity(const std::string& cn) {
    ClientIdentity id;
    id.common_name = cn;
    id.sans = {cn + ".example"};
    id.spki_sha256 = std::string(64, 'a');
    return id;
}

} // namespace

TEST_CASE("config: a full file is read") {
    TempDir dir;
    write_file(dir / "c.json", R"({
        "listen": "127.0.0.1:9999", "threads": 3, "keys_dir": "/k", "access_log": "-",
        "tls": {"cert": "c.pem", "key": "k.pem", "client_ca": "ca.pem"},
        "limits": {"max_connections": 10, "idle_timeout_ms": 1000},
        "default_policy": {"allow": ["sign-tls", "sign-digest"]},
        "keys": {"rsa": {"allow": ["rsa-decrypt-tls"], "clients": ["cn:edge-1", "san:x.example"]}}
    })");
    Config c;
    load_config_file(dir / "c.json", c);
    CHECK(c.listen == "127.0.0.1:9999");
    CHECK(c.threads == 3);
    CHECK(c.cert_file == "c.pem");
    CHECK(c.limits.max_connections == 10);
    CHECK(c.limits.idle_timeout == std::chrono::milliseconds(1000));
    CHECK(c.policies.default_policy.allow.count(Permission::SignDigest) == 1);
    CHECK(c.policies.policy_for("rsa").allow == std::set<Permission>{Permission::RSADecryptTLS});
    CHECK(c.policies.policy_for("other").allow.count(Permission::SignTLS) == 1);
    CHECK(missing_settings(c).empty());
    CHECK(missing_settings(Config{}).size() == 4);
}

TEST_CASE("config: every error names the offending key") {
    CHECK_THAT(config_error("{"), match::contains("invalid JSON"));
    CHECK(config_error(R"({"listne": "x"})") == "'listne' is not a known setting");
    CHECK(config_error(R"({"threads": -1})") == "'threads' must be a whole number from 0 to 256");
    CHECK(config_error(R"({"tls": {"cert": 5}})") == "'tls.cert' must be a string");
    CHECK(config_error(R"({"limits": {"max_frame_bytes": 10}})") ==
          "'limits.max_frame_bytes' must be a whole number from 1032 to 65543");
    CHECK_THAT(config_error(R"({"keys": {"rsa": {"allow": ["sign-tls", "sign-everything"]}}})"),
               match::starts_with("'keys.rsa.allow[1]' unknown operation 'sign-everything'"));
    CHECK_THAT(config_error(R"({"keys": {"rsa": {"clients": ["nobody"]}}})"),
               match::starts_with("'keys.rsa.clients[0]' client selector 'nobody'"));
    CHECK_THAT(config_error(R"({"keys": {"rsa": {"clients": []}}})"),
               match::starts_with("'keys.rsa.clients' must be a non-empty list"));
    CHECK(config_error(R"({"keys": {"rsa": {"alow": []}}})") ==
          "'keys.rsa.alow' is not a known setting");
    CHECK_THAT(config_error(R"({"default_policy": {"clients": ["spki-sha256:abc"]}})"),
               match::contains("needs 64 hex digits"));
}

TEST_CASE("policy: selectors match CN, SAN and SPKI fingerprint") {
    auto id = identity("edge-1");
    CHECK(ClientSelector::parse("*").matches(id));
    CHECK(ClientSelector::parse("cn:edge-1").matches(id));
    CHECK_FALSE(ClientSelector::parse("cn:edge-2").matches(id));
    CHECK(ClientSelector::parse("san:edge-1.example").matches(id));
    CHECK_FALSE(ClientSelector::parse("san:edge-1").matches(id));
    CHECK(ClientSelector::parse("spki-sha256:" + std::string(64, 'A')).matches(id));
    CHECK_FALSE(ClientSelector::parse("spki-sha256:" + std::string(64, 'b')).matches(id));

    KeyPolicy defaults;
    CHECK(defaults.permits(id, Permission::SignTLS));
    CHECK_FALSE(defaults.permits(id, Permission::SignDigest));
    CHECK_FALSE(defaults.permits(id, Permission::RSADecryptTLS));
    CHECK_FALSE(defaults.permits(id, Permission::RSADecryptRaw));
}

TEST_CASE("key store: loads the test keys, indexes by name and SKI, refuses loose permissions") {
    auto store = KeyStore::load_directory(test::pki("keys"), false);
    auto rsa = store.by_name("rsa2048");
    REQUIRE(rsa);
    CHECK(rsa->description == "RSA-2048");
    CHECK(store.by_ski(rsa->ski) == rsa);
    CHECK(store.by_name("p384")->description == "EC P-384");
    CHECK_FALSE(store.by_name("nope"));

    TempDir dir;
    test::run_command("cp " + test::pki("keys/p256.pem") + " " + (dir / "loose.pem") +
                      " && chmod 644 " + (dir / "loose.pem"));
    write_file(dir / "junk.pem", "not a key");
    ::chmod((dir / "junk.pem").c_str(), 0600);
    try {
        KeyStore::load_directory(dir.path(), false);
        FAIL("loaded a bad directory");
    } catch (const KeyStoreError& e) {
        REQUIRE(e.problems().size() == 2);
        CHECK_THAT(e.problems()[0],
                   match::starts_with("key 'junk'") && match::contains("not a PEM private key"));
        CHECK_THAT(e.problems()[1],
                   match::starts_with("key 'loose'") && match::contains("group or others"));
    }
    // With the operator's explicit consent the loose key loads.
    ::unlink((dir / "junk.pem").c_str());
    CHECK(KeyStore::load_directory(dir.path(), true).by_name("loose"));
}

TEST_CASE("key store: Ed448 and ML-DSA keys, or why this OpenSSL cannot use them") {
    auto store = KeyStore::load_directory(test::pki("keys"), false);
    REQUIRE(store.by_name("ed448"));
    CHECK(store.by_name("ed448")->description == "Ed448");
    CHECK(store.by_name("ed448")->kind == tls::KeyKind::Ed448);
    bool has_ml_dsa = OpenSSL_version_num() >= 0x30500000L;
    if (has_ml_dsa) {
        for (auto [name, description, kind] :
             {std::tuple{"mldsa44", "ML-DSA-44", tls::KeyKind::MLDSA44},
              std::tuple{"mldsa65", "ML-DSA-65", tls::KeyKind::MLDSA65},
              std::tuple{"mldsa87", "ML-DSA-87", tls::KeyKind::MLDSA87}}) {
            auto key = store.by_name(name);
            REQUIRE(key);
            CHECK(key->description == description);
            CHECK(key->kind == kind);
            CHECK(store.by_ski(key->ski) == key);
        }
    }
    // OpenSSL 3.0 cannot read any ML-DSA key and the message says what is needed; 3.5 cannot
    // decode this made-up one.
    TempDir dir;
    REQUIRE(write_made_up_ml_dsa_65_key(dir / "pq.pem"));
    try {
        KeyStore::load_directory(dir.path(), false);
        FAIL("loaded a made-up ML-DSA key");
    } catch (const KeyStoreError& e) {
        CHECK_THAT(e.what(), match::starts_with("key 'pq'") && match::contains("ML-DSA-65"));
        CHECK_THAT(e.what(), match::contains(has_ml_dsa ? "cannot decode"
                                                        : "ML-DSA needs a keyserver built with "
                                                          "OpenSSL 3.5 or later"));
    }
}

TEST_CASE("key store: refuses key files of another user and directories others can write") {
    TempDir dir;
    test::run_command("cp " + test::pki("keys/p256.pem") + " " + (dir / "www.pem") +
                      " && chmod 600 " + (dir / "www.pem"));
    CHECK(KeyStore::load_directory(dir.path(), false).by_name("www"));

    ::chmod(dir.path().c_str(), 0777);
    try {
        KeyStore::load_directory(dir.path(), false);
        FAIL("loaded keys from a world-writable directory");
    } catch (const KeyStoreError& e) {
        CHECK_THAT(e.what(), match::contains("writable by group or others"));
    }
    ::chmod(dir.path().c_str(), 0700);

    // Another user's file (the tests run as root; as anyone else chown needs root: skip then).
    if (::geteuid() == 0 && ::chown((dir / "www.pem").c_str(), 12345, 12345) == 0) {
        try {
            KeyStore::load_directory(dir.path(), false);
            FAIL("loaded a key file owned by another user");
        } catch (const KeyStoreError& e) {
            CHECK_THAT(e.what(), match::contains("owned by uid 12345"));
        }
        CHECK(KeyStore::load_directory(dir.path(), true).by_name("www"));
    }
}

TEST_CASE("dispatcher: policy decisions and error codes") {
    Config config;
    config.policies.key_policies["rsa2048"].allow = {Permission::SignDigest};
    config.policies.key_policies["ec-restricted"].clients = {ClientSelector::parse("cn:edge-2")};
    auto state = serving(config);
    Dispatcher d(state);
    auto edge1 = identity("edge-1");
    using protocol::ErrorCode;
    using protocol::Opcode;
    using protocol::Operation;

    auto req = [](Opcode op, const std::string& key, Bytes payload) {
        Operation o = Operation::make(op, std::move(payload));
        o.key_name = key;
        return o;
    };
    CHECK(d.handle(edge1, req(Opcode::RSASignSHA256, "rsa2048", Bytes(32, 1))).error ==
          ErrorCode::None);
    CHECK(d.handle(edge1, req(Opcode::RSASignSHA256, "rsa2048", Bytes(31, 1))).error ==
          ErrorCode::Format);
    CHECK(d.handle(edge1, req(Opcode::RSASignSHA256, "rsa-default", Bytes(32, 1))).error ==
          ErrorCode::PolicyDenied);
    CHECK(d.handle(edge1, req(Opcode::ECDSASignSHA256, "rsa2048", Bytes(32, 1))).error ==
          ErrorCode::Crypto);
    CHECK(d.handle(edge1, req(Opcode::GetPublicKey, "missing", {})).error ==
          ErrorCode::KeyNotFound);
    // A key the client may not use looks exactly like a missing one; the log knows better.
    auto restricted = d.handle(edge1, req(Opcode::GetPublicKey, "ec-restricted", {}));
    auto missing = d.handle(edge1, req(Opcode::GetPublicKey, "missing", {}));
    CHECK(restricted.error == ErrorCode::KeyNotFound);
    CHECK(protocol::encode(7, restricted.response) == protocol::encode(7, missing.response));
    CHECK_THAT(restricted.reason, match::contains("client 'edge-1' may not use this key"));
    Operation restricted_by_ski = Operation::make(Opcode::GetPublicKey);
    restricted_by_ski.ski = state->keys.by_name("ec-restricted")->ski;
    CHECK(d.handle(edge1, restricted_by_ski).error == ErrorCode::KeyNotFound);
    CHECK(d.handle(identity("edge-2"), req(Opcode::GetPublicKey, "ec-restricted", {})).error ==
          ErrorCode::None);
    Operation no_key = Operation::make(Opcode::GetPublicKey);
    CHECK(d.handle(edge1, no_key).error == ErrorCode::Format);
    Operation mismatch = req(Opcode::GetPublicKey, "rsa2048", {});
    mismatch.ski = state->keys.by_name("p256")->ski;
    auto stale = d.handle(edge1, mismatch);
    CHECK(stale.error == ErrorCode::KeyMismatch);
    CHECK_THAT(stale.reason, match::contains("stale stub"));
    mismatch.ski = state->keys.by_name("rsa2048")->ski;
    CHECK(d.handle(edge1, mismatch).error == ErrorCode::None);
    Operation unknown;
    unknown.opcode = 0x77;
    CHECK(d.handle(edge1, unknown).error == ErrorCode::BadOpcode);
    CHECK(d.handle(edge1, Operation::make(Opcode::Response)).error == ErrorCode::UnexpectedOpcode);
    CHECK(d.handle(edge1, Operation{}).error == ErrorCode::Format);
    auto pong = d.handle(edge1, Operation::make(Opcode::Ping, {1, 2}));
    CHECK(pong.response.is(Opcode::Pong));
    CHECK(pong.response.payload == Bytes{1, 2});
}

namespace {

Bytes tls13_input(std::string_view context) {
    Bytes m(64, 0x20);
    for (char c : context)
        m.push_back(static_cast<uint8_t>(c));
    m.push_back(0);
    m.insert(m.end(), 32, 0xAB);
    return m;
}

} // namespace

TEST_CASE("dispatcher: a request is resolved once, and answered from that resolution") {
    Config config;
    config.policies.key_policies["rsa2048"].allow = {Permission::SignDigest};
    config.policies.key_policies["ec-restricted"].clients = {ClientSelector::parse("cn:edge-2")};
    auto state = serving(config);
    auto edge1 = identity("edge-1");
    using protocol::Opcode;
    auto req = [](Opcode op, const std::string& key, Bytes payload) {
        auto o = protocol::Operation::make(op, std::move(payload));
        o.key_name = key;
        return o;
    };
    Dispatcher full(state);
    auto sign = req(Opcode::RSASignSHA256, "rsa2048", Bytes(32, 1));
    Resolution resolved = full.resolve(edge1, sign);
    REQUIRE(resolved.key);
    CHECK(resolved.allowed);
    CHECK(resolved.usable_name() == "rsa2048");
    CHECK(resolved.policy == &state->policies.policy_for("rsa2048"));

    // A dispatcher serving no key at all answers from the resolution it is handed: it looks
    // nothing up again (any second lookup would answer KeyNotFound), inline or queued.
    Dispatcher empty(std::make_shared<const ServingState>());
    CHECK(empty.handle(edge1, sign).error == protocol::ErrorCode::KeyNotFound);
    CHECK(empty.handle(edge1, sign, resolved).error == protocol::ErrorCode::None);
    CHECK_FALSE(empty.runs_inline(sign, resolved)); // RSA in a file: the pool, as resolved
    std::optional<Outcome> answered;
    empty.answer(edge1, sign, resolved, [&](Outcome o) { answered = std::move(o); });
    REQUIRE(answered);
    CHECK(answered->error == protocol::ErrorCode::None);
    CHECK(answered->key_name == "rsa2048");

    // What rate limits charge: only a key that exists and that the client may use.
    auto restricted = full.resolve(edge1, req(Opcode::GetPublicKey, "ec-restricted", {}));
    CHECK(restricted.key);
    CHECK_FALSE(restricted.allowed);
    CHECK(restricted.usable_name().empty());
    CHECK(full.resolve(edge1, req(Opcode::GetPublicKey, "missing", {})).usable_name().empty());
}

TEST_CASE("dispatcher: sign-TLS takes strict shapes, each with its own permission") {
    Config config;
    config.policies.key_policies["rsa2048"].allow = {Permission::SignTLS,
                                                     Permission::SignTLSClient};
    config.policies.key_policies["rsa3072"].allow = {Permission::SignDigest};
    auto state = serving(config);
    Dispatcher d(state);
    auto edge1 = identity("edge-1");
    using protocol::ErrorCode;
    using protocol::Opcode;
    auto sign_tls = [&](const std::string& key, Bytes message, uint16_t scheme) {
        auto o = protocol::Operation::make(Opcode::SignTLS, std::move(message));
        o.key_name = key;
        o.signature_scheme = scheme;
        return d.handle(edge1, o);
    };
    Bytes server_cv = tls13_input("TLS 1.3, server CertificateVerify");
    Bytes client_cv = tls13_input("TLS 1.3, client CertificateVerify");

    auto ok = sign_tls("rsa-default", server_cv, 0x0804);
    CHECK(ok.error == ErrorCode::None);
    CHECK(ok.shape == "tls13-server-cv");
    CHECK(ok.size == server_cv.size());
    auto pkcs1 = sign_tls("rsa-default", server_cv, 0x0401);
    CHECK(pkcs1.error == ErrorCode::PolicyDenied);
    CHECK_THAT(pkcs1.reason, match::contains("not a TLS 1.3 scheme"));
    // The client CertificateVerify needs its own permission.
    auto client = sign_tls("rsa-default", client_cv, 0x0804);
    CHECK(client.error == ErrorCode::PolicyDenied);
    CHECK_THAT(client.reason, match::contains("sign-tls-client"));
    CHECK(sign_tls("rsa2048", client_cv, 0x0804).error == ErrorCode::None);
    // Free-form bytes: refused under sign-tls, signed under sign-digest.
    Bytes free_form(100, 0x30);
    auto refused = sign_tls("rsa-default", free_form, 0x0401);
    CHECK(refused.error == ErrorCode::PolicyDenied);
    CHECK(refused.shape == "not-tls");
    CHECK(sign_tls("rsa3072", free_form, 0x0401).error == ErrorCode::None);
    // An ECDSA scheme bound to another curve.
    CHECK(sign_tls("p256", server_cv, 0x0503).error == ErrorCode::PolicyDenied);
    CHECK(sign_tls("p256", server_cv, 0x0403).error == ErrorCode::None);
}

TEST_CASE("rsa-decrypt-tls: implicit rejection is deterministic, per key and per ciphertext") {
    auto keys = KeyStore::load_directory(test::pki("keys"), false);
    auto key = keys.by_name("rsa2048");
    REQUIRE(rejection_secret(*key).size() == 32);
    CHECK(rejection_secret(*key) != rejection_secret(*keys.by_name("rsa3072")));
    // Reloading the same file derives the same secret: answers survive a restart.
    CHECK(
        rejection_secret(*KeyStore::load_directory(test::pki("keys"), false).by_name("rsa2048")) ==
        rejection_secret(*key));

    auto encrypt = [&](ByteView plain, int padding) {
        ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key->pkey.get(), nullptr));
        EVP_PKEY_encrypt_init(ctx.get());
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), padding);
        Bytes out(256);
        size_t len = out.size();
        EVP_PKEY_encrypt(ctx.get(), out.data(), &len, plain.data(), plain.size());
        out.resize(len);
        return out;
    };
    Bytes premaster(48, 0x42);
    premaster[0] = 0x03;
    premaster[1] = 0x03;
    Bytes good = encrypt(premaster, RSA_PKCS1_PADDING);
    CHECK(rsa_decrypt_tls(*key, good, 0x0303) == premaster);

    Bytes wrong_version = rsa_decrypt_tls(*key, good, 0x0302);
    CHECK(wrong_version != premaster);
    CHECK(wrong_version == rsa_decrypt_tls(*key, good, 0x0302));
    Bytes short_secret = encrypt(Bytes(47, 0x03), RSA_PKCS1_PADDING);
    Bytes bad1 = rsa_decrypt_tls(*key, short_secret, 0x0303);
    CHECK(bad1.size() == 48);
    CHECK(bad1 == rsa_decrypt_tls(*key, short_secret, 0x0303));
    Bytes raw(256, 0x00);
    raw[1] = 0x05; // below the modulus, padding type 5: bad
    Bytes bad2 = rsa_decrypt_tls(*key, raw, 0x0303);
    CHECK(bad2 != bad1);
    CHECK(bad2 != wrong_version);
    CHECK(bad2 == rsa_decrypt_tls(*key, raw, 0x0303));
}
