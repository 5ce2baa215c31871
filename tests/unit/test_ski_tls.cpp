#include "ossl.hpp"
#include "ski.hpp"
#include "tls_scheme.hpp"

#include <catch2/catch.hpp>
#include <openssl/core_names.h>

using namespace keyless;

namespace {

ossl::Pkey generate(const char* alg, const char* param_name, const char* value) {
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, alg, nullptr));
    EVP_PKEY_keygen_init(ctx.get());
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(param_name, const_cast<char*>(value), 0),
        OSSL_PARAM_construct_end()};
    if (param_name) EVP_PKEY_CTX_set_params(ctx.get(), params);
    EVP_PKEY* key = nullptr;
    EVP_PKEY_generate(ctx.get(), &key);
    return ossl::Pkey(key);
}

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

namespace {

Bytes tls13_cv(size_t hash_len) {
    Bytes m(64, 0x20);
    std::string ctx = "TLS 1.3, server CertificateVerify";
    m.insert(m.end(), ctx.begin(), ctx.end());
    m.push_back(0);
    m.insert(m.end(), hash_len, 0xAB);
    return m;
}

Bytes tls12_ecdhe(uint16_t group, size_t share, uint8_t first = 0x04) {
    Bytes m(64, 0x11);
    m.insert(m.end(), {3, static_cast<uint8_t>(group >> 8), static_cast<uint8_t>(group),
                       static_cast<uint8_t>(share)});
    m.push_back(first);
    m.insert(m.end(), share - 1, 0x22);
    return m;
}

} // namespace

TEST_CASE("TLS message shapes: exactly the server signature inputs") {
    using tls::MessageShape;
    CHECK(tls::classify_message(tls13_cv(32)) == MessageShape::Tls13ServerCertificateVerify);
    CHECK(tls::classify_message(tls13_cv(48)) == MessageShape::Tls13ServerCertificateVerify);
    CHECK(tls::classify_message(tls13_cv(20)) == MessageShape::None);
    Bytes client_cv = tls13_cv(32);
    client_cv[64 + 9] = 'c'; // "client CertificateVerify" context is not a server's
    CHECK(tls::classify_message(client_cv) == MessageShape::None);

    CHECK(tls::classify_message(tls12_ecdhe(0x0017, 65)) == MessageShape::Tls12ServerKeyExchange);
    CHECK(tls::classify_message(tls12_ecdhe(0x0018, 97)) == MessageShape::Tls12ServerKeyExchange);
    CHECK(tls::classify_message(tls12_ecdhe(0x001D, 32, 0x33)) ==
          MessageShape::Tls12ServerKeyExchange);
    CHECK(tls::classify_message(tls12_ecdhe(0x0017, 65, 0x02)) == MessageShape::None);
    CHECK(tls::classify_message(tls12_ecdhe(0x0017, 64)) == MessageShape::None);
    CHECK(tls::classify_message(tls12_ecdhe(0x0042, 65)) == MessageShape::None);
    Bytes trailing = tls12_ecdhe(0x0017, 65);
    trailing.push_back(0);
    CHECK(tls::classify_message(trailing) == MessageShape::None);

    Bytes dhe(64, 0x11);
    for (int i = 0; i < 3; ++i)
        dhe.insert(dhe.end(), {0x00, 0x02, 0x05, 0x06});
    CHECK(tls::classify_message(dhe) == MessageShape::Tls12ServerKeyExchange);
    dhe.pop_back();
    CHECK(tls::classify_message(dhe) == MessageShape::None);

    CHECK(tls::classify_message(Bytes(32, 0)) == MessageShape::None);
    std::string csr = "certificate request info";
    CHECK(tls::classify_message(Bytes(csr.begin(), csr.end())) == MessageShape::None);
}
