#include "keys/file_key.hpp"

#include <openssl/rsa.h>

namespace keyless::keyserver {

FileKey::FileKey(ossl::Pkey pkey, std::string name)
    : pkey_(std::move(pkey)), name_(std::move(name)), rsa_(EVP_PKEY_is_a(pkey_.get(), "RSA")) {}

void FileKey::fail(std::string_view what) const {
    throw CryptoError(std::string(what) + " with key '" + name_ + "': " + ossl::last_error());
}

void FileKey::set_rsa_padding(EVP_PKEY_CTX* ctx, tls::Padding padding) const {
    if (!rsa_) return;
    int mode = padding == tls::Padding::PSS ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING;
    if (EVP_PKEY_CTX_set_rsa_padding(ctx, mode) <= 0) fail("cannot set RSA padding");
    if (padding == tls::Padding::PSS &&
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) <= 0)
        fail("cannot set PSS salt length");
}

ossl::PkeyCtx FileKey::new_digest_context(tls::Padding padding,
                                          const algorithms::Digest& alg) const {
    ossl::Md md(EVP_MD_fetch(nullptr, alg.c_str(), nullptr));
    if (!md) fail("unknown digest");
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_.get(), nullptr));
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) <= 0) fail("cannot start signing");
    set_rsa_padding(ctx.get(), padding);
    if (EVP_PKEY_CTX_set_signature_md(ctx.get(), md.get()) <= 0) fail("cannot set digest");
    return ctx;
}

// As sign_context(): a context made once per digest and padding, duplicated per signature.
ossl::PkeyCtx FileKey::digest_context(tls::Padding padding, const algorithms::Digest& alg) const {
    auto slot = algorithms::digest_slot(alg);
    if (!slot) return new_digest_context(padding, alg);
    DigestTemplate& t =
        digest_templates_[*slot * algorithms::kPaddingCount + static_cast<size_t>(padding)];
    std::call_once(t.once, [&] { t.ctx = new_digest_context(padding, alg); });
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_dup(t.ctx.get()));
    if (!ctx) fail("cannot start signing");
    return ctx;
}

Bytes FileKey::sign_digest(tls::Padding padding, const algorithms::Digest& alg,
                           ByteView digest) const {
    if (alg.size != digest.size())
        throw CryptoError("digest length " + std::to_string(digest.size()) + " does not fit " +
                          std::string(alg.name));
    ossl::PkeyCtx ctx = digest_context(padding, alg);
    size_t len = 0;
    if (EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) <= 0)
        fail("cannot size signature");
    Bytes sig(len);
    if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()) <= 0)
        fail("signing failed");
    sig.resize(len);
    return sig;
}

ossl::MdCtx FileKey::new_sign_context(const tls::SchemeInfo& scheme) const {
    ossl::MdCtx mctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr; // owned by mctx
    if (!mctx || EVP_DigestSignInit_ex(mctx.get(), &pctx, scheme.digest_name(), nullptr, nullptr,
                                       pkey_.get(), nullptr) <= 0)
        fail("cannot start signing");
    set_rsa_padding(pctx, scheme.padding);
    return mctx;
}

ossl::MdCtx FileKey::sign_context(const tls::SchemeInfo& scheme) const {
    auto slot = tls::scheme_slot(scheme.code);
    if (!slot) return new_sign_context(scheme);
    SignTemplate& t = templates_[*slot];
    std::call_once(t.once, [&] { t.ctx = new_sign_context(scheme); });
    ossl::MdCtx mctx(EVP_MD_CTX_new());
    if (!mctx || EVP_MD_CTX_copy_ex(mctx.get(), t.ctx.get()) != 1) fail("cannot start signing");
    return mctx;
}

Bytes FileKey::sign_message(const tls::SchemeInfo& scheme, ByteView message) const {
    ossl::MdCtx mctx = sign_context(scheme);
    size_t len = 0;
    if (EVP_DigestSign(mctx.get(), nullptr, &len, message.data(), message.size()) <= 0)
        fail("cannot size signature");
    Bytes sig(len);
    if (EVP_DigestSign(mctx.get(), sig.data(), &len, message.data(), message.size()) <= 0)
        fail("signing failed");
    sig.resize(len);
    return sig;
}

Bytes FileKey::decrypt_raw(ByteView ciphertext) const {
    size_t k = static_cast<size_t>(EVP_PKEY_get_size(pkey_.get()));
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_.get(), nullptr));
    if (!ctx || EVP_PKEY_decrypt_init(ctx.get()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_NO_PADDING) <= 0)
        fail("cannot start decryption");
    Bytes out(k);
    size_t len = k;
    if (EVP_PKEY_decrypt(ctx.get(), out.data(), &len, ciphertext.data(), ciphertext.size()) <= 0)
        fail("decryption failed");
    // Left-pad to the modulus size, as gokeyless returns it.
    out.resize(len);
    out.insert(out.begin(), k - len, 0);
    return out;
}

} // namespace keyless::keyserver
