#include "signer.hpp"

#include <openssl/core_names.h>
#include <openssl/rsa.h>

namespace keyless::keyserver {

namespace {

[[noreturn]] void fail(const Key& key, std::string_view what) {
    throw CryptoError(std::string(what) + " with key '" + key.name + "': " + ossl::last_error());
}

ossl::PkeyCtx new_ctx(const Key& key) {
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.pkey.get(), nullptr));
    if (!ctx) fail(key, "cannot create context");
    return ctx;
}

void set_rsa_padding(const Key& key, EVP_PKEY_CTX* ctx, tls::Padding padding) {
    if (key.kind != tls::KeyKind::RSA) return;
    int mode = padding == tls::Padding::PSS ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING;
    if (EVP_PKEY_CTX_set_rsa_padding(ctx, mode) <= 0) fail(key, "cannot set RSA padding");
    if (padding == tls::Padding::PSS &&
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) <= 0)
        fail(key, "cannot set PSS salt length");
}

void check_kind(const Key& key, tls::KeyKind wanted) {
    if (key.kind != wanted)
        throw CryptoError("operation does not fit key '" + key.name + "' (" + key.description +
                          ")");
}

// The modulus size in bytes, after checking that the ciphertext has exactly that size.
size_t modulus_size_for(const Key& key, ByteView ciphertext) {
    size_t k = static_cast<size_t>(EVP_PKEY_get_size(key.pkey.get()));
    if (ciphertext.size() != k)
        throw CryptoError("ciphertext is " + std::to_string(ciphertext.size()) + " bytes, key '" +
                          key.name + "' needs " + std::to_string(k));
    return k;
}

} // namespace

Bytes sign_digest(const Key& key, tls::Padding padding, std::string_view digest_name,
                  ByteView digest) {
    check_kind(key, padding == tls::Padding::None ? tls::KeyKind::EC : tls::KeyKind::RSA);
    ossl::Md md(EVP_MD_fetch(nullptr, std::string(digest_name).c_str(), nullptr));
    if (!md) fail(key, "unknown digest");
    if (static_cast<size_t>(EVP_MD_get_size(md.get())) != digest.size())
        throw CryptoError("digest length " + std::to_string(digest.size()) + " does not fit " +
                          std::string(digest_name));
    auto ctx = new_ctx(key);
    if (EVP_PKEY_sign_init(ctx.get()) <= 0) fail(key, "cannot start signing");
    set_rsa_padding(key, ctx.get(), padding);
    if (EVP_PKEY_CTX_set_signature_md(ctx.get(), md.get()) <= 0) fail(key, "cannot set digest");
    size_t len = 0;
    if (EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) <= 0)
        fail(key, "cannot size signature");
    Bytes sig(len);
    if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()) <= 0)
        fail(key, "signing failed");
    sig.resize(len);
    return sig;
}

namespace {

ossl::MdCtx new_sign_context(const Key& key, const tls::SchemeInfo& scheme) {
    ossl::MdCtx mctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr; // owned by mctx
    std::string md = std::string(scheme.digest);
    if (!mctx || EVP_DigestSignInit_ex(mctx.get(), &pctx, md.empty() ? nullptr : md.c_str(),
                                       nullptr, nullptr, key.pkey.get(), nullptr) <= 0)
        fail(key, "cannot start signing");
    set_rsa_padding(key, pctx, scheme.padding);
    return mctx;
}

// A fresh copy of the key's context for `scheme`, made once (threads may sign with the same
// key at once: each signs with its own copy; the template is only read).
ossl::MdCtx sign_context(const Key& key, const tls::SchemeInfo& scheme) {
    auto slot = tls::scheme_slot(scheme.code);
    if (!slot) return new_sign_context(key, scheme);
    Key::SignTemplate& t = key.sign_templates[*slot];
    std::call_once(t.once, [&] { t.ctx = new_sign_context(key, scheme); });
    ossl::MdCtx mctx(EVP_MD_CTX_new());
    if (!mctx || EVP_MD_CTX_copy_ex(mctx.get(), t.ctx.get()) != 1)
        fail(key, "cannot start signing");
    return mctx;
}

} // namespace

Bytes sign_message(const Key& key, const tls::SchemeInfo& scheme, ByteView message) {
    check_kind(key, scheme.key);
    ossl::MdCtx mctx = sign_context(key, scheme);
    size_t len = 0;
    if (EVP_DigestSign(mctx.get(), nullptr, &len, message.data(), message.size()) <= 0)
        fail(key, "cannot size signature");
    Bytes sig(len);
    if (EVP_DigestSign(mctx.get(), sig.data(), &len, message.data(), message.size()) <= 0)
        fail(key, "signing failed");
    sig.resize(len);
    return sig;
}

Bytes rsa_decrypt_raw(const Key& key, ByteView ciphertext) {
    check_kind(key, tls::KeyKind::RSA);
    size_t k = modulus_size_for(key, ciphertext);
    auto ctx = new_ctx(key);
    if (EVP_PKEY_decrypt_init(ctx.get()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_NO_PADDING) <= 0)
        fail(key, "cannot start decryption");
    Bytes out(k);
    size_t len = k;
    if (EVP_PKEY_decrypt(ctx.get(), out.data(), &len, ciphertext.data(), ciphertext.size()) <= 0)
        fail(key, "decryption failed");
    // Left-pad to the modulus size, as gokeyless returns it.
    out.resize(len);
    out.insert(out.begin(), k - len, 0);
    return out;
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
    return sha256(sign_digest(key, tls::Padding::PKCS1, "SHA256", label_hash));
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
