#include "algorithms.hpp"
#include "ossl.hpp"
#include "ski.hpp"
#include "test_keys.hpp"
#include "tls_scheme.hpp"

#include <catch2/catch.hpp>
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

TEST_CASE("TLS signature schemes map both ways") {
    auto pss = tls::scheme_info(0x0804);
    REQUIRE(pss);
    CHECK(pss->padding == tls::Padding::PSS);
    CHECK(pss->digest == "SHA256");
    CHECK(tls::scheme_for(tls::KeyKind::EC, tls::Padding::None, "sha-384") == 0x0503);
    CHECK(tls::scheme_for(tls::KeyKind::RSA, tls::Padding::PKCS1, "SHA512") == 0x0601);
    CHECK_FALSE(tls::scheme_info(0x1234));
}

TEST_CASE("one digest table: names, sizes and gokeyless opcodes agree both ways") {
    using protocol::Opcode;
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
