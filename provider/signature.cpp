// SIGNATURE for RSA (PKCS#1 v1.5 and PSS), ECDSA, Ed25519, Ed448 and ML-DSA on keyless keys.
// Init, size queries and parameters are local (libssl calls DigestSignInit for every candidate
// sigalg of every handshake); only the final signature goes to the keyserver: a TLS-shaped
// message as sign-TLS (the keyserver sees and checks what it signs), anything else as a
// digest-signing operation, or (Ed448, ML-DSA: no digest, no gokeyless operation) as sign-TLS
// that the keyserver signs only under sign-digest.
#include "algorithms.hpp"
#include "dispatch_entry.hpp"
#include "dispatch_tables.hpp"
#include "key/key_object.hpp"
#include "tls_shape.hpp"

#include <openssl/asn1t.h>
#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstring>

namespace keyless::provider {

using protocol::Opcode;
using protocol::Operation;

namespace {

// Messages up to this size are kept whole so a TLS shape can be recognised; TLS inputs are far
// smaller (TLS 1.2 DHE parameters with an 8192-bit group are the largest, about 3 KiB).
constexpr size_t kMaxBufferedMessage = 16384;

using algorithms::Digest;

const Digest* find_digest(OSSL_LIB_CTX* libctx, const char* name) {
    if (!name || !*name) name = "SHA256";
    ossl::Md md(EVP_MD_fetch(libctx, name, nullptr));
    if (!md) return nullptr;
    for (const auto& d : algorithms::digests())
        if (EVP_MD_is_a(md.get(), d.c_str())) return &d;
    return nullptr;
}

struct SignatureContext {
    ProviderContext* prov = nullptr;
    tls::KeyKind kind = tls::KeyKind::RSA;
    std::shared_ptr<const KeyObject> key;
    const Digest* digest = nullptr; // null until set (plain sign() infers it from the size)
    ossl::MdCtx md_ctx;             // streaming hash for digest_sign_update/final
    Bytes message;                  // the message so far, while it is small enough
    bool message_complete = true;   // false once it outgrew kMaxBufferedMessage
    int pad = RSA_PKCS1_PADDING;
    int saltlen = RSA_PSS_SALTLEN_DIGEST;
    const Digest* mgf1 = nullptr; // null: the signing digest

    OSSL_LIB_CTX* libctx() const { return prov->client->libctx(); }
};

SignatureContext* ctx_of(void* vctx) {
    return static_cast<SignatureContext*>(vctx);
}

template <tls::KeyKind Kind> void* sig_newctx(void* provctx, const char* /*propq*/) {
    auto* prov = static_cast<ProviderContext*>(provctx);
    return guarded(prov, "keyless_signature_newctx", static_cast<void*>(nullptr), [&]() -> void* {
        auto ctx = std::make_unique<SignatureContext>();
        ctx->prov = prov;
        ctx->kind = Kind;
        return ctx.release();
    });
}

void sig_freectx(void* vctx) {
    std::unique_ptr<SignatureContext> reclaim(ctx_of(vctx));
}

void* sig_dupctx(void* vctx) {
    const SignatureContext* src = ctx_of(vctx);
    return guarded(
        src->prov, "keyless_signature_dupctx", static_cast<void*>(nullptr), [&]() -> void* {
            auto dst = std::make_unique<SignatureContext>();
            dst->prov = src->prov;
            dst->kind = src->kind;
            dst->key = src->key;
            dst->digest = src->digest;
            dst->message = src->message;
            dst->message_complete = src->message_complete;
            dst->pad = src->pad;
            dst->saltlen = src->saltlen;
            dst->mgf1 = src->mgf1;
            if (src->md_ctx) {
                dst->md_ctx.reset(EVP_MD_CTX_new());
                if (!dst->md_ctx || !EVP_MD_CTX_copy_ex(dst->md_ctx.get(), src->md_ctx.get()))
                    return nullptr;
            }
            return dst.release();
        });
}

int set_ctx_params_impl(SignatureContext* ctx, const OSSL_PARAM params[]);

int sig_init(SignatureContext* ctx, void* keydata, const OSSL_PARAM params[]) {
    auto* handle = static_cast<KeyHandle*>(keydata);
    if (!handle || !handle->key || handle->key->kind() != ctx->kind) return 0;
    ctx->key = handle->key;
    ctx->message.clear();
    ctx->message_complete = true;
    return set_ctx_params_impl(ctx, params);
}

int sig_sign_init(void* vctx, void* keydata, const OSSL_PARAM params[]) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_sign_init", 0, [&] {
        ctx->md_ctx.reset();
        ctx->digest = nullptr; // set by the "digest" parameter, else inferred from the input size
        return sig_init(ctx, keydata, params);
    });
}

int sig_digest_sign_init(void* vctx, const char* mdname, void* keydata, const OSSL_PARAM params[]) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_digest_sign_init", 0, [&] {
        if (!keydata) return 0; // re-init with the same key is not used by OpenSSL 3.0
        const Digest* d = find_digest(ctx->libctx(), mdname);
        // Refusing here is how EVP_PKEY_digestsign_supports_digest learns what we can do.
        if (!d || (ctx->kind == tls::KeyKind::EC && d->name == "MD5-SHA1")) return 0;
        ctx->digest = d;
        ctx->md_ctx.reset(); // the hash starts at the first update: TLS signs one-shot
        return sig_init(ctx, keydata, params);
    });
}

// Starts the streaming hash. Not done at init, which libssl runs for every candidate sigalg of
// every handshake and which then usually signs one-shot.
bool start_hash(SignatureContext* ctx) {
    ossl::Md md(EVP_MD_fetch(ctx->libctx(), ctx->digest->c_str(), nullptr));
    ctx->md_ctx.reset(EVP_MD_CTX_new());
    return md && ctx->md_ctx && EVP_DigestInit_ex2(ctx->md_ctx.get(), md.get(), nullptr);
}

int sig_digest_sign_update(void* vctx, const unsigned char* data, size_t len) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_digest_sign_update", 0, [&] {
        if (!ctx->digest || (!ctx->md_ctx && !start_hash(ctx))) return 0;
        if (!EVP_DigestUpdate(ctx->md_ctx.get(), data, len)) return 0;
        if (ctx->message_complete && ctx->message.size() + len <= kMaxBufferedMessage) {
            ctx->message.insert(ctx->message.end(), data, data + len);
        } else {
            ctx->message_complete = false;
            ctx->message.clear();
        }
        return 1;
    });
}

// The keyserver signs PSS with salt length = digest length and MGF1 = the signing digest. "digest"
// asks for exactly that; "max" and "auto" leave the choice to the signer (OpenSSL verifies such
// signatures with "auto", and the AlgorithmIdentifier records the length used), so they get it
// too. Any other explicit length is refused here rather than silently signed differently.
void check_pss(const SignatureContext& ctx, const Digest& d) {
    if (d.rsa_pss == Opcode::Error)
        throw KeylessError(KEYLESS_R_UNSUPPORTED, ctx.key->uri_text() + ": RSA-PSS with " +
                                                      std::string(d.name) +
                                                      " is not supported (SHA-256, SHA-384 and "
                                                      "SHA-512 are)");
    bool digest_len = ctx.saltlen == RSA_PSS_SALTLEN_DIGEST || ctx.saltlen == RSA_PSS_SALTLEN_MAX ||
                      ctx.saltlen == RSA_PSS_SALTLEN_AUTO ||
                      (ctx.saltlen >= 0 && static_cast<size_t>(ctx.saltlen) == d.size);
    if (!digest_len)
        throw KeylessError(KEYLESS_R_UNSUPPORTED,
                           ctx.key->uri_text() + ": RSA-PSS salt length " +
                               std::to_string(ctx.saltlen) +
                               " is not supported (keyless signs with " +
                               "salt length = digest length, " + std::to_string(d.size) + " for " +
                               std::string(d.name) + "; use rsa_pss_saltlen:digest)");
    if (ctx.mgf1 && ctx.mgf1 != &d)
        throw KeylessError(KEYLESS_R_UNSUPPORTED,
                           ctx.key->uri_text() + ": RSA-PSS with an MGF1 digest other than the "
                                                 "signing digest is not supported");
}

tls::Padding padding_of(const SignatureContext& ctx) {
    if (ctx.kind != tls::KeyKind::RSA) return tls::Padding::None;
    if (ctx.pad == RSA_PKCS1_PSS_PADDING) return tls::Padding::PSS;
    if (ctx.pad == RSA_PKCS1_PADDING) return tls::Padding::PKCS1;
    throw KeylessError(KEYLESS_R_UNSUPPORTED, ctx.key->uri_text() + ": RSA padding mode " +
                                                  std::to_string(ctx.pad) +
                                                  " is not supported for signing");
}

// gokeyless's digest-signing request for `digest`.
Operation digest_request(const SignatureContext& ctx, const Digest& d, ByteView digest) {
    tls::Padding padding = padding_of(ctx);
    if (padding == tls::Padding::PSS) check_pss(ctx, d);
    Operation req = Operation::make(d.opcode(padding), Bytes(digest.begin(), digest.end()));
    req.ski = ctx.key->ski();
    return req;
}

Bytes sign_digest(const SignatureContext& ctx, const Digest& d, ByteView digest) {
    return ctx.key->ask(digest_request(ctx, d, digest), "signing");
}

// A TLS handshake signature input goes whole to the keyserver as sign-TLS (it checks what it
// signs); a keyserver without sign-TLS (gokeyless) gets `fallback`, the same signature in its
// form, in the same call. nullopt when the message is no such input.
std::optional<Bytes> sign_as_tls(const SignatureContext& ctx, ByteView message, uint16_t scheme,
                                 std::optional<Operation> fallback) {
    if (!tls::parse_shape(message).valid()) return std::nullopt;
    Operation req = Operation::make(Opcode::SignTLS, Bytes(message.begin(), message.end()));
    req.signature_scheme = scheme;
    return ctx.key->ask(std::move(req), std::move(fallback), "signing").payload;
}

Bytes hash(const SignatureContext& ctx, ByteView message) {
    Bytes digest(EVP_MAX_MD_SIZE);
    unsigned int len = 0;
    ossl::ErrorScope errors;
    ossl::Md md(EVP_MD_fetch(ctx.libctx(), ctx.digest->c_str(), nullptr));
    if (!md || !EVP_Digest(message.data(), message.size(), digest.data(), &len, md.get(), nullptr))
        throw KeylessError(KEYLESS_R_INTERNAL, "hashing failed: " + errors.text());
    digest.resize(len);
    return digest;
}

// Signs a whole message: as sign-TLS when it is a TLS handshake signature input (by digest on a
// gokeyless keyserver), else by digest.
Bytes sign_message(const SignatureContext& ctx, ByteView message, const Bytes* digest_if_known) {
    tls::Padding padding = padding_of(ctx);
    if (padding == tls::Padding::PSS) check_pss(ctx, *ctx.digest); // what the keyserver can do
    Bytes digest = digest_if_known ? *digest_if_known : hash(ctx, message);
    if (auto scheme = tls::scheme_for(ctx.kind, padding, ctx.digest))
        if (auto sig = sign_as_tls(ctx, message, *scheme, digest_request(ctx, *ctx.digest, digest)))
            return *sig;
    return sign_digest(ctx, *ctx.digest, digest);
}

// A null output buffer asks for the largest signature size: answered here, never by the keyserver.
bool answer_size_query(const SignatureContext& ctx, const unsigned char* sig, size_t* siglen) {
    if (sig) return false;
    *siglen = ctx.key->max_signature_size();
    return true;
}

int output(const SignatureContext& ctx, const Bytes& sig, unsigned char* out, size_t* outlen,
           size_t outsize) {
    if (sig.size() > outsize)
        throw KeylessError(KEYLESS_R_KEYSERVER_ERROR,
                           ctx.key->uri_text() + ": signature larger than expected");
    std::memcpy(out, sig.data(), sig.size());
    *outlen = sig.size();
    return 1;
}

int sig_digest_sign_final(void* vctx, unsigned char* sig, size_t* siglen, size_t sigsize) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_digest_sign_final", 0, [&] {
        if (!ctx->key || !ctx->digest) return 0;
        if (answer_size_query(*ctx, sig, siglen)) return 1;
        if (!ctx->md_ctx && !start_hash(ctx)) return 0; // an empty message
        Bytes digest(EVP_MAX_MD_SIZE);
        unsigned int len = 0;
        if (!EVP_DigestFinal_ex(ctx->md_ctx.get(), digest.data(), &len)) return 0;
        digest.resize(len);
        Bytes out = ctx->message_complete ? sign_message(*ctx, ctx->message, &digest)
                                          : sign_digest(*ctx, *ctx->digest, digest);
        return output(*ctx, out, sig, siglen, sigsize);
    });
}

int sig_digest_sign(void* vctx, unsigned char* sig, size_t* siglen, size_t sigsize,
                    const unsigned char* tbs, size_t tbslen) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_digest_sign", 0, [&] {
        if (!ctx->key || !ctx->digest) return 0;
        if (answer_size_query(*ctx, sig, siglen)) return 1;
        Bytes out = sign_message(*ctx, ByteView(tbs, tbslen), nullptr);
        return output(*ctx, out, sig, siglen, sigsize);
    });
}

int sig_sign(void* vctx, unsigned char* sig, size_t* siglen, size_t sigsize,
             const unsigned char* tbs, size_t tbslen) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_sign", 0, [&] {
        if (!ctx->key) return 0;
        if (answer_size_query(*ctx, sig, siglen)) return 1;
        const Digest* d = ctx->digest;
        if (!d) // no digest set: infer it from the size of what we are asked to sign
            for (const auto& candidate : algorithms::digests())
                if (candidate.size == tbslen &&
                    (ctx->kind == tls::KeyKind::RSA || candidate.name != "MD5-SHA1"))
                    d = &candidate;
        if (!d || d->size != tbslen)
            throw KeylessError(KEYLESS_R_UNSUPPORTED,
                               ctx->key->uri_text() + ": cannot sign " + std::to_string(tbslen) +
                                   " bytes: keyless signs digests of SHA-1/SHA-2 sizes");
        Bytes out = sign_digest(*ctx, *d, ByteView(tbs, tbslen));
        return output(*ctx, out, sig, siglen, sigsize);
    });
}

// ---- parameters ----

int parse_pad_mode(const OSSL_PARAM* p, int& out) {
    if (p->data_type == OSSL_PARAM_INTEGER) return OSSL_PARAM_get_int(p, &out);
    const char* s = nullptr;
    if (!OSSL_PARAM_get_utf8_string_ptr(p, &s)) return 0;
    static const std::pair<const char*, int> modes[] = {
        {OSSL_PKEY_RSA_PAD_MODE_NONE, RSA_NO_PADDING},
        {OSSL_PKEY_RSA_PAD_MODE_PKCSV15, RSA_PKCS1_PADDING},
        {OSSL_PKEY_RSA_PAD_MODE_OAEP, RSA_PKCS1_OAEP_PADDING},
        {OSSL_PKEY_RSA_PAD_MODE_X931, RSA_X931_PADDING},
        {OSSL_PKEY_RSA_PAD_MODE_PSS, RSA_PKCS1_PSS_PADDING}};
    for (auto [name, mode] : modes)
        if (std::strcmp(s, name) == 0) return out = mode, 1;
    return 0;
}

int parse_saltlen(const OSSL_PARAM* p, int& out) {
    if (p->data_type == OSSL_PARAM_INTEGER) return OSSL_PARAM_get_int(p, &out);
    const char* s = nullptr;
    if (!OSSL_PARAM_get_utf8_string_ptr(p, &s)) return 0;
    if (!std::strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST)) return out = RSA_PSS_SALTLEN_DIGEST, 1;
    if (!std::strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX)) return out = RSA_PSS_SALTLEN_MAX, 1;
    if (!std::strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO)) return out = RSA_PSS_SALTLEN_AUTO, 1;
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 1024) return 0;
    out = static_cast<int>(v);
    return 1;
}

int set_ctx_params_impl(SignatureContext* ctx, const OSSL_PARAM params[]) {
    if (!params) return 1;
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST)) {
        const char* name = nullptr;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name)) return 0;
        const Digest* d = find_digest(ctx->libctx(), name);
        if (!d) return 0;
        ctx->digest = d;
    }
    if (ctx->kind != tls::KeyKind::RSA) return 1;
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) {
        int mode = 0;
        if (!parse_pad_mode(p, mode) ||
            (mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_PSS_PADDING))
            return 0;
        ctx->pad = mode;
    }
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN))
        if (!parse_saltlen(p, ctx->saltlen)) return 0;
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) {
        const char* name = nullptr;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name)) return 0;
        ctx->mgf1 = find_digest(ctx->libctx(), name);
        if (!ctx->mgf1) return 0;
    }
    return 1;
}

int sig_set_ctx_params(void* vctx, const OSSL_PARAM params[]) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_set_ctx_params", 0,
                   [&] { return set_ctx_params_impl(ctx, params); });
}

const OSSL_PARAM* rsa_settable_ctx_params(void*, void*) {
    static const OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES, nullptr, 0),
        OSSL_PARAM_END};
    return params;
}

const OSSL_PARAM* ecdsa_settable_ctx_params(void*, void*) {
    static const OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, nullptr, 0), OSSL_PARAM_END};
    return params;
}

using Algor = std::unique_ptr<X509_ALGOR, ossl::Deleter<X509_ALGOR_free>>;

Bytes der_of(const X509_ALGOR* alg) {
    unsigned char* der = nullptr;
    int len = i2d_X509_ALGOR(alg, &der);
    if (len <= 0) return {};
    Bytes out(der, der + len);
    OPENSSL_free(der);
    return out;
}

// AlgorithmIdentifier of a digest, as RFC 4055 writes it inside RSASSA-PSS parameters.
Algor digest_algor(const Digest& d) {
    Algor alg(X509_ALGOR_new());
    const EVP_MD* md = EVP_get_digestbyname(d.c_str()); // the built-in table: names and OIDs only
    if (!alg || !md) return nullptr;
    X509_ALGOR_set_md(alg.get(), md);
    return alg;
}

// RSASSA-PSS-params (RFC 4055 §3.1) for what the keyserver signs: hash = MGF1 hash = `d`,
// salt length = the digest length, trailer 1. Encoded with OpenSSL's ASN.1 templates.
Bytes pss_algorithm_id(const Digest& d) {
    std::unique_ptr<RSA_PSS_PARAMS, ossl::Deleter<RSA_PSS_PARAMS_free>> pss(RSA_PSS_PARAMS_new());
    Algor hash = digest_algor(d);
    Algor mgf1_hash = digest_algor(d);
    if (!pss || !hash || !mgf1_hash) return {};
    ASN1_STRING* mgf1_param = nullptr;
    if (!ASN1_item_pack(mgf1_hash.get(), ASN1_ITEM_rptr(X509_ALGOR), &mgf1_param)) return {};
    pss->maskGenAlgorithm = X509_ALGOR_new();
    pss->saltLength = ASN1_INTEGER_new();
    if (!pss->maskGenAlgorithm || !pss->saltLength ||
        !X509_ALGOR_set0(pss->maskGenAlgorithm, OBJ_nid2obj(NID_mgf1), V_ASN1_SEQUENCE,
                         mgf1_param)) {
        ASN1_STRING_free(mgf1_param);
        return {};
    }
    pss->hashAlgorithm = hash.release();
    if (!ASN1_INTEGER_set(pss->saltLength, static_cast<long>(d.size))) return {};
    ASN1_STRING* params = nullptr;
    if (!ASN1_item_pack(pss.get(), ASN1_ITEM_rptr(RSA_PSS_PARAMS), &params)) return {};
    Algor alg(X509_ALGOR_new());
    if (!alg || !X509_ALGOR_set0(alg.get(), OBJ_nid2obj(NID_rsassaPss), V_ASN1_SEQUENCE, params)) {
        ASN1_STRING_free(params);
        return {};
    }
    return der_of(alg.get());
}

// The DER AlgorithmIdentifier of the signature, which X.509, CSR, CRL and CMS signing ask
// providers for. Throws when it cannot be written: returning success with nothing makes OpenSSL
// read an uninitialised buffer.
Bytes algorithm_id(const SignatureContext& ctx) {
    auto fail = [&](const std::string& why) -> Bytes {
        throw KeylessError(KEYLESS_R_UNSUPPORTED,
                           (ctx.key ? ctx.key->uri_text() + ": " : std::string()) +
                               "no signature AlgorithmIdentifier for " + why);
    };
    if (tls::signs_whole_messages(ctx.kind)) { // RFC 8410, RFC 9881: the OID, no parameters
        Algor alg(X509_ALGOR_new());
        ASN1_OBJECT* oid = OBJ_txt2obj(tls::whole_message_oid(ctx.kind), 1);
        if (!alg || !oid || !X509_ALGOR_set0(alg.get(), oid, V_ASN1_UNDEF, nullptr)) {
            ASN1_OBJECT_free(oid);
            return fail(tls::key_type_name(ctx.kind));
        }
        return der_of(alg.get());
    }
    if (!ctx.digest) return fail("a signature without a digest");
    if (ctx.kind == tls::KeyKind::RSA && ctx.pad == RSA_PKCS1_PSS_PADDING) {
        if (ctx.key) check_pss(ctx, *ctx.digest); // the parameters the keyserver will use
        Bytes der = pss_algorithm_id(*ctx.digest);
        return der.empty() ? fail("RSA-PSS with " + std::string(ctx.digest->name)) : der;
    }
    if (ctx.kind == tls::KeyKind::RSA && ctx.pad != RSA_PKCS1_PADDING)
        return fail("RSA padding mode " + std::to_string(ctx.pad));
    ossl::Md md(EVP_MD_fetch(ctx.libctx(), ctx.digest->c_str(), nullptr));
    int sig_nid = NID_undef;
    int pkey_nid = ctx.kind == tls::KeyKind::RSA ? NID_rsaEncryption : NID_X9_62_id_ecPublicKey;
    if (!md || !OBJ_find_sigid_by_algs(&sig_nid, EVP_MD_get_type(md.get()), pkey_nid))
        return fail(std::string(ctx.digest->name) + " with this key type");
    Algor alg(X509_ALGOR_new());
    X509_ALGOR_set0(alg.get(), OBJ_nid2obj(sig_nid),
                    ctx.kind == tls::KeyKind::RSA ? V_ASN1_NULL : V_ASN1_UNDEF, nullptr);
    Bytes der = der_of(alg.get());
    return der.empty() ? fail(std::string(ctx.digest->name)) : der;
}

int sig_get_ctx_params(void* vctx, OSSL_PARAM params[]) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_get_ctx_params", 0, [&] {
        if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID)) {
            Bytes der = algorithm_id(*ctx);
            if (!OSSL_PARAM_set_octet_string(p, der.data(), der.size())) return 0;
        }
        if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST))
            if (ctx->digest && !OSSL_PARAM_set_utf8_string(p, ctx->digest->c_str())) return 0;
        if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE))
            if (ctx->kind == tls::KeyKind::RSA) {
                if (p->data_type == OSSL_PARAM_INTEGER
                        ? !OSSL_PARAM_set_int(p, ctx->pad)
                        : !OSSL_PARAM_set_utf8_string(p, ctx->pad == RSA_PKCS1_PSS_PADDING
                                                             ? OSSL_PKEY_RSA_PAD_MODE_PSS
                                                             : OSSL_PKEY_RSA_PAD_MODE_PKCSV15))
                    return 0;
            }
        if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN))
            if (p->data_type == OSSL_PARAM_INTEGER && !OSSL_PARAM_set_int(p, ctx->saltlen))
                return 0;
        return 1;
    });
}

// ---- EdDSA and ML-DSA: one-shot signatures over whole messages (no digest, no streaming) ----

Bytes sign_whole_message(const SignatureContext& ctx, ByteView message) {
    uint16_t scheme = *tls::scheme_for(ctx.kind, tls::Padding::None, nullptr);
    if (ctx.kind == tls::KeyKind::Ed25519) {
        // gokeyless's Ed25519 operation signs the whole message too: what a gokeyless keyserver
        // gets, and anything but a TLS input (which needs sign-digest on our keyserver).
        Operation ed25519 =
            Operation::make(Opcode::Ed25519Sign, Bytes(message.begin(), message.end()));
        ed25519.ski = ctx.key->ski();
        if (auto sig = sign_as_tls(ctx, message, scheme, ed25519)) return *sig;
        return ctx.key->ask(std::move(ed25519), "signing");
    }
    // Ed448 and ML-DSA have no gokeyless operation: sign-TLS carries every message, and the
    // keyserver signs a TLS input under sign-tls, anything else (CSRs, certificates, CMS) only
    // under sign-digest. ML-DSA signs with an empty context string, as X.509 and TLS use it.
    Operation req = Operation::make(Opcode::SignTLS, Bytes(message.begin(), message.end()));
    req.signature_scheme = scheme;
    return ctx.key->ask(std::move(req), std::nullopt, "signing").payload;
}

int whole_message_digest_sign_init(void* vctx, const char* mdname, void* keydata,
                                   const OSSL_PARAM params[]) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_message_digest_sign_init", 0, [&] {
        // No digest: refusing one quietly is how callers probing digests learn it.
        if (!keydata || (mdname && *mdname)) return 0;
        ctx->digest = nullptr;
        return sig_init(ctx, keydata, params);
    });
}

int whole_message_digest_sign(void* vctx, unsigned char* sig, size_t* siglen, size_t sigsize,
                              const unsigned char* tbs, size_t tbslen) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_message_digest_sign", 0, [&] {
        if (!ctx->key) return 0;
        if (answer_size_query(*ctx, sig, siglen)) return 1;
        return output(*ctx, sign_whole_message(*ctx, ByteView(tbs, tbslen)), sig, siglen, sigsize);
    });
}

#ifdef OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_INIT
// OpenSSL 3.5's message-signing API (EVP_PKEY_sign_message_init, then EVP_PKEY_sign with the
// message, or _update/_final): the same whole-message signature. Streamed messages are collected
// up to kMaxSignedMessage, what one keyserver frame carries.
constexpr size_t kMaxSignedMessage = 60 * 1024;

int whole_message_sign_message_init(void* vctx, void* keydata, const OSSL_PARAM params[]) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_sign_message_init", 0, [&] {
        ctx->digest = nullptr;
        return sig_init(ctx, keydata, params);
    });
}

int whole_message_sign(void* vctx, unsigned char* sig, size_t* siglen, size_t sigsize,
                       const unsigned char* tbs, size_t tbslen) {
    return whole_message_digest_sign(vctx, sig, siglen, sigsize, tbs, tbslen);
}

int whole_message_sign_message_update(void* vctx, const unsigned char* data, size_t len) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_sign_message_update", 0, [&] {
        if (!ctx->key) return 0;
        if (ctx->message.size() + len > kMaxSignedMessage)
            throw KeylessError(KEYLESS_R_UNSUPPORTED,
                               ctx->key->uri_text() + ": a message of more than " +
                                   std::to_string(kMaxSignedMessage) +
                                   " bytes cannot be signed by the keyserver");
        ctx->message.insert(ctx->message.end(), data, data + len);
        return 1;
    });
}

int whole_message_sign_message_final(void* vctx, unsigned char* sig, size_t* siglen,
                                     size_t sigsize) {
    SignatureContext* ctx = ctx_of(vctx);
    return guarded(ctx->prov, "keyless_sign_message_final", 0, [&] {
        if (!ctx->key) return 0;
        if (answer_size_query(*ctx, sig, siglen)) return 1;
        return output(*ctx, sign_whole_message(*ctx, ctx->message), sig, siglen, sigsize);
    });
}
#define KEYLESS_MESSAGE_SIGNING                                                                    \
    KEYLESS_FN(SIGNATURE_SIGN_MESSAGE_INIT, signature_sign_message_init,                           \
               whole_message_sign_message_init),                                                   \
        KEYLESS_FN(SIGNATURE_SIGN, signature_sign, whole_message_sign),                            \
        KEYLESS_FN(SIGNATURE_SIGN_MESSAGE_UPDATE, signature_sign_message_update,                   \
                   whole_message_sign_message_update),                                             \
        KEYLESS_FN(SIGNATURE_SIGN_MESSAGE_FINAL, signature_sign_message_final,                     \
                   whole_message_sign_message_final),
#else
#define KEYLESS_MESSAGE_SIGNING // OpenSSL before 3.5 has no message-signing API
#endif

const OSSL_PARAM* whole_message_gettable_ctx_params(void*, void*) {
    static const OSSL_PARAM params[] = {
        OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0), OSSL_PARAM_END};
    return params;
}

const OSSL_PARAM* sig_gettable_ctx_params(void*, void*) {
    static const OSSL_PARAM params[] = {
        OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr, 0),
        OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr), OSSL_PARAM_END};
    return params;
}

#define SIGNATURE_TABLE(NAME, KIND, SETTABLE)                                                      \
    const OSSL_DISPATCH NAME[] = {                                                                 \
        KEYLESS_FN(SIGNATURE_NEWCTX, signature_newctx, sig_newctx<KIND>),                          \
        KEYLESS_FN(SIGNATURE_FREECTX, signature_freectx, sig_freectx),                             \
        KEYLESS_FN(SIGNATURE_DUPCTX, signature_dupctx, sig_dupctx),                                \
        KEYLESS_FN(SIGNATURE_SIGN_INIT, signature_sign_init, sig_sign_init),                       \
        KEYLESS_FN(SIGNATURE_SIGN, signature_sign, sig_sign),                                      \
        KEYLESS_FN(SIGNATURE_DIGEST_SIGN_INIT, signature_digest_sign_init, sig_digest_sign_init),  \
        KEYLESS_FN(SIGNATURE_DIGEST_SIGN_UPDATE, signature_digest_sign_update,                     \
                   sig_digest_sign_update),                                                        \
        KEYLESS_FN(SIGNATURE_DIGEST_SIGN_FINAL, signature_digest_sign_final,                       \
                   sig_digest_sign_final),                                                         \
        KEYLESS_FN(SIGNATURE_DIGEST_SIGN, signature_digest_sign, sig_digest_sign),                 \
        KEYLESS_FN(SIGNATURE_SET_CTX_PARAMS, signature_set_ctx_params, sig_set_ctx_params),        \
        KEYLESS_FN(SIGNATURE_SETTABLE_CTX_PARAMS, signature_settable_ctx_params, SETTABLE),        \
        KEYLESS_FN(SIGNATURE_GET_CTX_PARAMS, signature_get_ctx_params, sig_get_ctx_params),        \
        KEYLESS_FN(SIGNATURE_GETTABLE_CTX_PARAMS, signature_gettable_ctx_params,                   \
                   sig_gettable_ctx_params),                                                       \
        {0, nullptr}};

} // namespace

SIGNATURE_TABLE(rsa_signature_functions, tls::KeyKind::RSA, rsa_settable_ctx_params)
SIGNATURE_TABLE(ecdsa_signature_functions, tls::KeyKind::EC, ecdsa_settable_ctx_params)

#define WHOLE_MESSAGE_SIGNATURE_TABLE(NAME, KIND)                                                  \
    const OSSL_DISPATCH NAME[] = {                                                                 \
        KEYLESS_FN(SIGNATURE_NEWCTX, signature_newctx, sig_newctx<KIND>),                          \
        KEYLESS_FN(SIGNATURE_FREECTX, signature_freectx, sig_freectx),                             \
        KEYLESS_FN(SIGNATURE_DUPCTX, signature_dupctx, sig_dupctx),                                \
        KEYLESS_FN(SIGNATURE_DIGEST_SIGN_INIT, signature_digest_sign_init,                         \
                   whole_message_digest_sign_init),                                                \
        KEYLESS_FN(SIGNATURE_DIGEST_SIGN, signature_digest_sign, whole_message_digest_sign),       \
        KEYLESS_MESSAGE_SIGNING KEYLESS_FN(SIGNATURE_GET_CTX_PARAMS, signature_get_ctx_params,     \
                                           sig_get_ctx_params),                                    \
        KEYLESS_FN(SIGNATURE_GETTABLE_CTX_PARAMS, signature_gettable_ctx_params,                   \
                   whole_message_gettable_ctx_params),                                             \
        {0, nullptr}};

WHOLE_MESSAGE_SIGNATURE_TABLE(ed25519_signature_functions, tls::KeyKind::Ed25519)
WHOLE_MESSAGE_SIGNATURE_TABLE(ed448_signature_functions, tls::KeyKind::Ed448)
WHOLE_MESSAGE_SIGNATURE_TABLE(mldsa44_signature_functions, tls::KeyKind::MLDSA44)
WHOLE_MESSAGE_SIGNATURE_TABLE(mldsa65_signature_functions, tls::KeyKind::MLDSA65)
WHOLE_MESSAGE_SIGNATURE_TABLE(mldsa87_signature_functions, tls::KeyKind::MLDSA87)

} // namespace keyless::provider
