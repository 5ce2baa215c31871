#include "ops/signer.hpp"

#include <openssl/evp.h>

namespace keyless::keyserver {

namespace {

void check_kind(const Key& key, tls::KeyKind wanted) {
    if (key.kind != wanted)
        throw CryptoError("operation does not fit key '" + key.name + "' (" + key.description +
                          ")");
}

} // namespace

Bytes sign_digest(const Key& key, tls::Padding padding, const algorithms::Digest& alg,
                  ByteView digest) {
    check_kind(key, padding == tls::Padding::None ? tls::KeyKind::EC : tls::KeyKind::RSA);
    return key.ops->sign_digest(padding, alg, digest);
}

Bytes sign_message(const Key& key, const tls::SchemeInfo& scheme, ByteView message) {
    check_kind(key, scheme.key);
    return key.ops->sign_message(scheme, message);
}

Bytes rsa_decrypt_raw(const Key& key, ByteView ciphertext) {
    check_kind(key, tls::KeyKind::RSA);
    size_t k = static_cast<size_t>(EVP_PKEY_get_size(key.pkey.get()));
    if (ciphertext.size() != k)
        throw CryptoError("ciphertext is " + std::to_string(ciphertext.size()) + " bytes, key '" +
                          key.name + "' needs " + std::to_string(k));
    return key.ops->decrypt_raw(ciphertext);
}

namespace {

// Constant-time byte predicates: 0xFF for true, 0x00 for false, with no data-dependent branch.
uint8_t ct_is_zero(uint8_t x) {
    return static_cast<uint8_t>((static_cast<unsigned>(x) - 1u) >> 8);
}
uint8_t ct_equal(uint8_t a, uint8_t b) {
    return ct_is_zero(static_cast<uint8_t>(a ^ b));
}

Bytes sha256(ByteView data) {
    Bytes out(32);
    unsigned int len = 0;
    if (!EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr))
        throw CryptoError("SHA-256 failed: " + ossl::last_error());
    return out;
}

constexpr std::string_view kRejectionLabel = "keyless implicit rejection v1";
constexpr size_t kPremasterSize = 48;

} // namespace

Bytes derive_rejection_secret(const Key& key) {
    check_kind(key, tls::KeyKind::RSA);
    Bytes label_hash = sha256(
        ByteView(reinterpret_cast<const uint8_t*>(kRejectionLabel.data()), kRejectionLabel.size()));
    return sha256(sign_digest(key, tls::Padding::PKCS1, algorithms::entry("SHA256"), label_hash));
}

const Bytes& rejection_secret(const Key& key) {
    std::call_once(key.rejection_once,
                   [&] { key.rejection_secret = derive_rejection_secret(key); });
    return key.rejection_secret;
}

Bytes rsa_decrypt_tls(const Key& key, ByteView ciphertext, uint16_t client_version) {
    const Bytes& secret = rejection_secret(key);
    // Raw RSA (blinded, constant time in OpenSSL); the padding is checked here, also in constant
    // time. An error here depends only on the ciphertext's size or range, never its padding.
    Bytes em = rsa_decrypt_raw(key, ciphertext);
    const size_t k = em.size();

    Bytes message;
    message.reserve(2 + ciphertext.size());
    append_be16(message, client_version);
    message.insert(message.end(), ciphertext.begin(), ciphertext.end());
    Bytes synthetic(EVP_MAX_MD_SIZE);
    size_t synthetic_len = 0;
    if (!EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA384", nullptr, secret.data(), secret.size(),
                   message.data(), message.size(), synthetic.data(), synthetic.size(),
                   &synthetic_len) ||
        synthetic_len != kPremasterSize)
        throw CryptoError("implicit rejection HMAC failed: " + ossl::last_error());

    // EM = 0x00 || 0x02 || PS (k-51 non-zero bytes) || 0x00 || version (2) || random (46)
    const size_t sep = k - kPremasterSize - 1;
    uint8_t good = static_cast<uint8_t>(ct_is_zero(em[0]) & ct_equal(em[1], 0x02));
    for (size_t i = 2; i < sep; ++i)
        good &= static_cast<uint8_t>(~ct_is_zero(em[i]));
    good &= ct_is_zero(em[sep]);
    good &= ct_equal(em[sep + 1], static_cast<uint8_t>(client_version >> 8));
    good &= ct_equal(em[sep + 2], static_cast<uint8_t>(client_version));

    Bytes out(kPremasterSize);
    for (size_t i = 0; i < kPremasterSize; ++i)
        out[i] = static_cast<uint8_t>((em[sep + 1 + i] & good) | (synthetic[i] & ~good));
    OPENSSL_cleanse(em.data(), em.size());
    return out;
}

} // namespace keyless::keyserver
