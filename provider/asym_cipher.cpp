// ASYM_CIPHER for RSA decryption on keyless keys. TLS 1.2 RSA key exchange
// (RSA_PKCS1_WITH_TLS_PADDING) uses the keyserver's RSA-decrypt-TLS, which always returns 48
// bytes; against a gokeyless keyserver it falls back to raw decryption with the TLS check done
// here in constant time. PKCS#1 v1.5 and OAEP use raw decryption (opt-in per key on the
// keyserver) with the padding removed here.
#define OPENSSL_SUPPRESS_DEPRECATED // RSA_padding_check_*: 3.0 has no replacement for raw blocks

#include "dispatch_entry.hpp"
#include "dispatch_tables.hpp"
#include "key/key_object.hpp"

#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <cstring>

namespace keyless::provider {

using protocol::Opcode;
using protocol::Operation;

namespace {

constexpr size_t kPremasterSize = 48;

struct CipherContext {
    ProviderContext* prov = nullptr;
    std::shared_ptr<const KeyObject> key;
    int pad = RSA_PKCS1_PADDING;
    unsigned int client_version = 0;
    std::string oaep_md = "SHA1";
    std::string mgf1_md; // empty: the OAEP digest
    Bytes oaep_label;
};

CipherContext* ctx_of(void* vctx) {
    return static_cast<CipherContext*>(vctx);
}

void* cipher_newctx(void* provctx) {
    auto* prov = static_cast<ProviderContext*>(provctx);
    return guarded(prov, "keyless_asym_cipher_newctx", static_cast<void*>(nullptr), [&]() -> void* {
        auto ctx = std::make_unique<CipherContext>();
        ctx->prov = prov;
        return ctx.release();
    });
}

void cipher_freectx(void* vctx) {
    std::unique_ptr<CipherContext> reclaim(ctx_of(vctx));
}

void* cipher_dupctx(void* vctx) {
    const CipherContext* src = ctx_of(vctx);
    return guarded(src->prov, "keyless_asym_cipher_dupctx", static_cast<void*>(nullptr),
                   [&]() -> void* { return std::make_unique<CipherContext>(*src).release(); });
}

int set_params_impl(CipherContext* ctx, const OSSL_PARAM params[]);

int cipher_decrypt_init(void* vctx, void* keydata, const OSSL_PARAM params[]) {
    CipherContext* ctx = ctx_of(vctx);
    auto* handle = static_cast<KeyHandle*>(keydata);
    if (!handle || !handle->key || handle->key->kind() != tls::KeyKind::RSA) return 0;
    return guarded(ctx->prov, "keyless_decrypt_init", 0, [&] {
        ctx->key = handle->key;
        ctx->pad = RSA_PKCS1_PADDING;
        return set_params_impl(ctx, params);
    });
}

unsigned char ct_eq(unsigned a, unsigned b) {
    unsigned x = a ^ b;
    return static_cast<unsigned char>(((x | (0u - x)) >> 31) - 1u); // 0xFF if equal, else 0
}

// RFC 5246 §7.4.7.1 on a raw RSA block `em` (k bytes): the 48-byte premaster if the block is
// PKCS#1 type 2 with a 48-byte message starting with the client version, else `random`; in
// constant time (no branch or memory access depends on the block's contents).
void tls_premaster(ByteView em, unsigned client_version, const uint8_t* random, uint8_t* out) {
    size_t k = em.size();
    unsigned char good = ct_eq(em[0], 0) & ct_eq(em[1], 2);
    unsigned char found = 0;
    size_t zero_at = 0;
    for (size_t i = 2; i < k; ++i) {
        unsigned char is_zero = ct_eq(em[i], 0) & static_cast<unsigned char>(~found);
        zero_at |= static_cast<size_t>(static_cast<signed char>(is_zero)) & i;
        found |= is_zero;
    }
    good &= found;
    good &= ct_eq(static_cast<unsigned>(zero_at), static_cast<unsigned>(k - kPremasterSize - 1));
    good &= ct_eq(em[k - kPremasterSize], (client_version >> 8) & 0xFF);
    good &= ct_eq(em[k - kPremasterSize + 1], client_version & 0xFF);
    for (size_t i = 0; i < kPremasterSize; ++i)
        out[i] = static_cast<uint8_t>((em[k - kPremasterSize + i] & good) | (random[i] & ~good));
}

Bytes decrypt_tls(const CipherContext& ctx, ByteView in) {
    if (ctx.client_version == 0)
        throw KeylessError(KEYLESS_R_UNSUPPORTED,
                           ctx.key->uri_text() + ": TLS RSA decryption needs tls-client-version");
    Operation req = Operation::make(Opcode::RSADecryptTLS, Bytes(in.begin(), in.end()));
    req.client_version = static_cast<uint16_t>(ctx.client_version);
    // A gokeyless keyserver gets raw decryption, and the TLS check is made here.
    Operation raw = Operation::make(Opcode::RSADecrypt, Bytes(in.begin(), in.end()));
    raw.ski = ctx.key->ski();
    auto answer = ctx.key->ask(std::move(req), std::move(raw), "TLS RSA decryption");
    if (!answer.by_fallback) {
        if (answer.payload.size() != kPremasterSize)
            throw KeylessError(KEYLESS_R_KEYSERVER_ERROR,
                               ctx.key->uri_text() + ": keyserver returned a premaster of " +
                                   std::to_string(answer.payload.size()) + " bytes");
        return std::move(answer.payload);
    }
    Bytes em = std::move(answer.payload);
    if (em.size() != ctx.key->max_signature_size() || em.size() < kPremasterSize + 11)
        throw KeylessError(KEYLESS_R_KEYSERVER_ERROR,
                           ctx.key->uri_text() +
                               ": raw decryption returned a block of the wrong size");
    uint8_t random[kPremasterSize];
    if (RAND_bytes(random, sizeof random) != 1)
        throw KeylessError(KEYLESS_R_INTERNAL, "no randomness");
    Bytes out(kPremasterSize);
    tls_premaster(em, ctx.client_version, random, out.data());
    OPENSSL_cleanse(em.data(), em.size());
    return out;
}

Bytes decrypt_padded(const CipherContext& ctx, ByteView in) {
    Operation raw = Operation::make(Opcode::RSADecrypt, Bytes(in.begin(), in.end()));
    raw.ski = ctx.key->ski();
    Bytes em = ctx.key->ask(std::move(raw), "RSA decryption");
    int k = static_cast<int>(em.size());
    Bytes out(em.size());
    int len = -1;
    if (ctx.pad == RSA_PKCS1_PADDING) {
        len = RSA_padding_check_PKCS1_type_2(out.data(), k, em.data(), k, k);
    } else if (ctx.pad == RSA_PKCS1_OAEP_PADDING) {
        OSSL_LIB_CTX* libctx = ctx.prov->client->libctx();
        ossl::Md md(EVP_MD_fetch(libctx, ctx.oaep_md.c_str(), nullptr));
        ossl::Md mgf1(EVP_MD_fetch(
            libctx, (ctx.mgf1_md.empty() ? ctx.oaep_md : ctx.mgf1_md).c_str(), nullptr));
        if (!md || !mgf1) throw KeylessError(KEYLESS_R_UNSUPPORTED, "unknown OAEP digest");
        len = RSA_padding_check_PKCS1_OAEP_mgf1(
            out.data(), k, em.data(), k, k, ctx.oaep_label.data(),
            static_cast<int>(ctx.oaep_label.size()), md.get(), mgf1.get());
    } else if (ctx.pad == RSA_NO_PADDING) {
        return em;
    }
    OPENSSL_cleanse(em.data(), em.size());
    if (len < 0)
        throw KeylessError(KEYLESS_R_KEYSERVER_ERROR, ctx.key->uri_text() + ": decryption error");
    out.resize(static_cast<size_t>(len));
    return out;
}

int cipher_decrypt(void* vctx, unsigned char* out, size_t* outlen, size_t outsize,
                   const unsigned char* in, size_t inlen) {
    CipherContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_decrypt", 0, [&] {
        if (!ctx->key) return 0;
        bool tls = ctx->pad == RSA_PKCS1_WITH_TLS_PADDING;
        if (!out) { // size query: never the network
            *outlen = tls ? kPremasterSize : ctx->key->max_signature_size();
            return 1;
        }
        Bytes plain = tls ? decrypt_tls(*ctx, ByteView(in, inlen))
                          : decrypt_padded(*ctx, ByteView(in, inlen));
        if (plain.size() > outsize) {
            OPENSSL_cleanse(plain.data(), plain.size());
            throw KeylessError(KEYLESS_R_INTERNAL, "output buffer too small");
        }
        std::memcpy(out, plain.data(), plain.size());
        *outlen = plain.size();
        OPENSSL_cleanse(plain.data(), plain.size());
        return 1;
    });
}

int set_params_impl(CipherContext* ctx, const OSSL_PARAM params[]) {
    if (!params) return 1;
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) {
        int mode = 0;
        if (p->data_type == OSSL_PARAM_INTEGER) {
            if (!OSSL_PARAM_get_int(p, &mode)) return 0;
        } else {
            const char* s = nullptr;
            if (!OSSL_PARAM_get_utf8_string_ptr(p, &s)) return 0;
            if (!std::strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15))
                mode = RSA_PKCS1_PADDING;
            else if (!std::strcmp(s, OSSL_PKEY_RSA_PAD_MODE_OAEP) || !std::strcmp(s, "oeap"))
                mode = RSA_PKCS1_OAEP_PADDING;
            else if (!std::strcmp(s, OSSL_PKEY_RSA_PAD_MODE_NONE))
                mode = RSA_NO_PADDING;
            else
                return 0;
        }
        if (mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_OAEP_PADDING && mode != RSA_NO_PADDING &&
            mode != RSA_PKCS1_WITH_TLS_PADDING)
            return 0;
        ctx->pad = mode;
    }
    if (const OSSL_PARAM* p =
            OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION))
        if (!OSSL_PARAM_get_uint(p, &ctx->client_version)) return 0;
    // tls-negotiated-version (set only with SSL_OP_TLS_ROLLBACK_BUG) is accepted and not used:
    // the premaster must carry the client's version.
    auto string_param = [&](const char* name, std::string& out) {
        const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, name);
        const char* s = nullptr;
        if (p && OSSL_PARAM_get_utf8_string_ptr(p, &s)) out = s;
        return !p || s;
    };
    if (!string_param(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, ctx->oaep_md)) return 0;
    if (!string_param(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, ctx->mgf1_md)) return 0;
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL)) {
        const void* label = nullptr;
        size_t len = 0;
        if (!OSSL_PARAM_get_octet_string_ptr(p, &label, &len)) return 0;
        ctx->oaep_label.assign(static_cast<const uint8_t*>(label),
                               static_cast<const uint8_t*>(label) + len);
    }
    return 1;
}

int cipher_set_ctx_params(void* vctx, const OSSL_PARAM params[]) {
    return set_params_impl(ctx_of(vctx), params);
}

const OSSL_PARAM* cipher_settable_ctx_params(void*, void*) {
    static const OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST_PROPS, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST_PROPS, nullptr, 0),
        OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, nullptr, 0),
        OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, nullptr),
        OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, nullptr),
        OSSL_PARAM_END};
    return params;
}

int cipher_get_ctx_params(void* vctx, OSSL_PARAM params[]) {
    CipherContext* ctx = ctx_of(vctx);
    if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE))
        if (p->data_type == OSSL_PARAM_INTEGER && !OSSL_PARAM_set_int(p, ctx->pad)) return 0;
    return 1;
}

const OSSL_PARAM* cipher_gettable_ctx_params(void*, void*) {
    static const OSSL_PARAM params[] = {OSSL_PARAM_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, nullptr),
                                        OSSL_PARAM_END};
    return params;
}

} // namespace

const OSSL_DISPATCH rsa_asym_cipher_functions[] = {
    KEYLESS_FN(ASYM_CIPHER_NEWCTX, asym_cipher_newctx, cipher_newctx),
    KEYLESS_FN(ASYM_CIPHER_FREECTX, asym_cipher_freectx, cipher_freectx),
    KEYLESS_FN(ASYM_CIPHER_DUPCTX, asym_cipher_dupctx, cipher_dupctx),
    KEYLESS_FN(ASYM_CIPHER_DECRYPT_INIT, asym_cipher_decrypt_init, cipher_decrypt_init),
    KEYLESS_FN(ASYM_CIPHER_DECRYPT, asym_cipher_decrypt, cipher_decrypt),
    KEYLESS_FN(ASYM_CIPHER_SET_CTX_PARAMS, asym_cipher_set_ctx_params, cipher_set_ctx_params),
    KEYLESS_FN(ASYM_CIPHER_SETTABLE_CTX_PARAMS, asym_cipher_settable_ctx_params,
               cipher_settable_ctx_params),
    KEYLESS_FN(ASYM_CIPHER_GET_CTX_PARAMS, asym_cipher_get_ctx_params, cipher_get_ctx_params),
    KEYLESS_FN(ASYM_CIPHER_GETTABLE_CTX_PARAMS, asym_cipher_gettable_ctx_params,
               cipher_gettable_ctx_params),
    {0, nullptr}};

} // namespace keyless::provider
