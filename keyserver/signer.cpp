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

Bytes sign_message(const Key& key, const tls::SchemeInfo& scheme, ByteView message) {
    check_kind(key, scheme.key);
    ossl::MdCtx mctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr; // owned by mctx
    std::string md = std::string(scheme.digest);
    if (!mctx || EVP_DigestSignInit_ex(mctx.get(), &pctx, md.empty() ? nullptr : md.c_str(),
                                       nullptr, nullptr, key.pkey.get(), nullptr) <= 0)
        fail(key, "cannot start signing");
    set_rsa_padding(key, pctx, scheme.padding);
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

Bytes rsa_decrypt_tls(const Key& key, ByteView ciphertext, uint16_t client_version) {
    check_kind(key, tls::KeyKind::RSA);
    size_t k = modulus_size_for(key, ciphertext);
    // OpenSSL's RSA_PKCS1_WITH_TLS_PADDING mode does the RFC 5246 §7.4.7.1 check in constant
    // time and substitutes random bytes on failure, exactly what a TLS server does locally.
    auto ctx = new_ctx(key);
    unsigned int version = client_version;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, &version),
        OSSL_PARAM_construct_end()};
    if (EVP_PKEY_decrypt_init(ctx.get()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_WITH_TLS_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_params(ctx.get(), params) <= 0)
        fail(key, "cannot start TLS decryption");
    Bytes out(k);
    size_t len = k;
    if (EVP_PKEY_decrypt(ctx.get(), out.data(), &len, ciphertext.data(), ciphertext.size()) <= 0 ||
        len != 48)
        fail(key, "TLS decryption failed"); // only for errors that do not depend on padding
    out.resize(48);
    return out;
}

} // namespace keyless::keyserver
