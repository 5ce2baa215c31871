#include "algorithms.hpp"
#include "ossl.hpp"
#include "ski.hpp"
#include "test_keys.hpp"
#include "tls_scheme.hpp"

#include "catch.hpp"
#include <openssl/core_names.h>

using namespace keyless;
using keyless::test::generate;

namespace {

Ski sha1(const Bytes& data) {
    Ski out{};
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha1(), nullptr);
    return out;
}

} // namespace

TEST_CASE("SKI of an EC key is SHA-1 of the uncompressed point") {
    auto key = generate("EC", OSSL_PKEY_PARAM_GROUP_NAME, "P-256");
    Bytes point(65);
    size_t len = 0;
    REQUIRE(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                            point.data(), point.size(), &len));
    REQUIRE(len == 65);
    CHECK(compute_ski(key.get()) == sha1(point));
}

TEST_CASE("SKI of an RSA key is SHA-1 of the DER RSAPublicKey") {
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    EVP_PKEY_keygen_init(ctx.get());
    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 2048);
    EVP_PKEY* raw = nullptr;
    REQUIRE(EVP_PKEY_generate(ctx.get(), &raw) == 1);
    ossl::Pkey key(raw);
    unsigned char* der = nullptr;
    int len = i2d_PublicKey(key.get(), &der);
    REQUIRE(len > 0);
    Bytes rsa_public(der, der + len);
    OPENSSL_free(der);
    CHECK(compute_ski(key.get()) == sha1(rsa_public));
    CHECK(compute_ski_from_spki(spki_der(key.get())) == compute_ski(key.get()));
    CHECK_THROWS(compute_ski_from_spki(Bytes{0x30, 0x00}));
}

TEST_CASE("spki_der builds exactly what i2d_PUBKEY encodes, for every key type served") {
    std::vector<ossl::Pkey> keys;
    for (const char* curve : {"P-256", "P-384", "P-521"})
        keys.push_back(generate("EC", OSSL_PKEY_PARAM_GROUP_NAME, curve));
    keys.push_back(generate("ED25519", nullptr, nullptr));
    keys.push_back(generate("RSA", nullptr, nullptr));
    for (const auto& key : keys) {
        INFO(EVP_PKEY_get0_type_name(key.get()) << " " << EVP_PKEY_get_bits(key.get()));
        unsigned char* der = nullptr;
        int len = i2d_PUBKEY(key.get(), &der);
        REQUIRE(len > 0);
        Bytes reference(der, der + len);
        OPENSSL_free(der);
        CHECK(spki_der(key.get()) == reference);
        CHECK(compute_ski_from_own_spki(reference) == compute_ski_from_spki(reference));
    }
    // Anything else still gets a SubjectPublicKeyInfo, the slow way.
    auto x25519 = generate("X25519", nullptr, nullptr);
    CHECK(compute_ski_from_spki(spki_der(x25519.get())) == compute_ski(x25519.get()));
    // Structure is checked: truncated, trailing bytes, wrong tags.
    Bytes good = spki_der(keys[0].get());
    CHECK_THROWS(compute_ski_from_own_spki(Bytes(good.begin(), good.end() - 1)));
    Bytes trailing = good;
    trailing.push_back(0);
    CHECK_THROWS(compute_ski_from_own_spki(trailing));
    CHECK_THROWS(compute_ski_from_own_spki(Bytes{0x30, 0x03, 0x02, 0x01, 0x00}));
}

TEST_CASE("TLS signature schemes map both ways") {
    auto pss = tls::scheme_info(0x0804);
    REQUIRE(pss);
    CHECK(pss->padding == tls::Padding::PSS);
    CHECK(pss->digest->name == "SHA256");
    CHECK(tls::scheme_for(tls::KeyKind::EC, tls::Padding::None,
                          algorithms::digest_named("sha-384")) == 0x0503);
    CHECK(tls::scheme_for(tls::KeyKind::RSA, tls::Padding::PKCS1, &algorithms::entry("SHA512")) ==
          0x0601);
    CHECK(tls::scheme_for(tls::KeyKind::Ed448, tls::Padding::None, nullptr) == 0x0808);
    CHECK_FALSE(tls::scheme_info(0x1234));
}

TEST_CASE("one digest table: names, sizes and gokeyless opcodes agree both ways") {
    using protocol::Opcode;
    for (size_t i = 0; i < algorithms::digests().size(); ++i)
        CHECK(algorithms::digest_slot(algorithms::digests()[i]) == i);
    algorithms::Digest copy = algorithms::entry("SHA256"); // equal, but not the table's entry
    CHECK_FALSE(algorithms::digest_slot(copy));
    REQUIRE(algorithms::digest_named("sha-256"));
    CHECK(algorithms::digest_named("SHA256")->size == 32);
    CHECK(algorithms::digest_named("md5-sha1")->size == 36);
    CHECK_FALSE(algorithms::digest_named("SHA3-256"));
    for (const auto& d : algorithms::digests()) {
        INFO(d.name);
        ossl::Md md(EVP_MD_fetch(nullptr, d.c_str(), nullptr));
        REQUIRE(md);
        CHECK(static_cast<size_t>(EVP_MD_get_size(md.get())) == d.size);
        for (auto padding : {tls::Padding::PKCS1, tls::Padding::PSS, tls::Padding::None}) {
            if (d.opcode(padding) == Opcode::Error) continue;
            auto back = algorithms::digest_signing(static_cast<uint8_t>(d.opcode(padding)));
            REQUIRE(back);
            CHECK(back->digest == &d);
            CHECK(back->padding == padding);
        }
    }
    CHECK_FALSE(algorithms::digest_signing(static_cast<uint8_t>(Opcode::Ping)));
    CHECK(algorithms::digest_signing(0x36)->digest->name == "SHA384"); // RSAPSSSignSHA384
}
