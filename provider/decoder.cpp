// DECODERs for key stub files (PEM label "KEYLESS KEY"): PEM -> DER for our label only (OpenSSL
// 3.0's own PEM decoder drops labels it does not know), then DER -> an RSA, EC or Ed25519 keyless
// key. No network: the stub carries the public key, so a terminator starts while the keyserver is
// down.
#include "dispatch_entry.hpp"
#include "dispatch_tables.hpp"
#include "key/key_reference.hpp"
#include "key_stub.hpp"

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/pem.h>

namespace keyless::provider {

namespace {

constexpr const char* kStructure = "keyless-key";

struct DecoderContext {
    ProviderContext* prov = nullptr;
    tls::KeyKind kind = tls::KeyKind::RSA; // for the DER decoders
};

template <tls::KeyKind Kind> void* decoder_newctx(void* provctx) {
    auto* prov = static_cast<ProviderContext*>(provctx);
    return guarded(prov, "keyless_decoder_newctx", static_cast<void*>(nullptr), [&]() -> void* {
        auto ctx = std::make_unique<DecoderContext>();
        ctx->prov = prov;
        ctx->kind = Kind;
        return ctx.release();
    });
}

void decoder_freectx(void* vctx) {
    std::unique_ptr<DecoderContext> reclaim(static_cast<DecoderContext*>(vctx));
}

int does_selection(void*, int selection) {
    return selection == 0 || (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0;
}

ossl::Bio core_bio(const DecoderContext* ctx, OSSL_CORE_BIO* cin) {
    return ossl::Bio(BIO_new_from_core_bio(ctx->prov->core_libctx.get(), cin));
}

Bytes read_all(const DecoderContext* ctx, OSSL_CORE_BIO* cin) {
    ossl::Bio in = core_bio(ctx, cin);
    Bytes all;
    if (!in) return all;
    uint8_t buf[4096];
    int n;
    // Key files are small; the bound keeps a wrong input (a device, a huge file) harmless.
    while (all.size() < (1u << 20) && (n = BIO_read(in.get(), buf, sizeof buf)) > 0)
        all.insert(all.end(), buf, buf + n);
    return all;
}

// Looks for a KEYLESS KEY block anywhere in the input, so a stub may follow a certificate in the
// same file (haproxy's crt bundles). The whole input is read: the core BIO offers no line
// reads, and reading to the end is also what lets OpenSSL's file loops see EOF.
// Returning 1 with nothing passed on means "not mine": the other decoders carry on.
int pem_decode(void* vctx, OSSL_CORE_BIO* cin, int, OSSL_CALLBACK* data_cb, void* data_cbarg,
               OSSL_PASSPHRASE_CALLBACK*, void*) {
    auto* ctx = static_cast<DecoderContext*>(vctx);
    return guarded(ctx->prov, "keyless_pem_decode", 0, [&] {
        Bytes text = read_all(ctx, cin);
        if (text.empty()) return 1;
        ossl::Bio mem(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
        if (!mem) return 0;
        ossl::ErrorScope errors; // "no PEM here" is not an error for the caller's loop
        while (true) {
            char* name = nullptr;
            char* header = nullptr;
            unsigned char* data = nullptr;
            long len = 0;
            if (PEM_read_bio(mem.get(), &name, &header, &data, &len) <= 0) return 1;
            bool ours = kStubPemLabel == name;
            int ok = 1;
            if (ours) {
                OSSL_PARAM params[] = {
                    OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, data,
                                                      static_cast<size_t>(len)),
                    OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE,
                                                     const_cast<char*>(kStructure), 0),
                    OSSL_PARAM_construct_end()};
                ok = data_cb(params, data_cbarg);
            }
            OPENSSL_free(name);
            OPENSSL_free(header);
            OPENSSL_free(data);
            if (ours) return ok;
        }
    });
}

int der_decode(void* vctx, OSSL_CORE_BIO* cin, int, OSSL_CALLBACK* data_cb, void* data_cbarg,
               OSSL_PASSPHRASE_CALLBACK*, void*) {
    auto* ctx = static_cast<DecoderContext*>(vctx);
    return guarded(ctx->prov, "keyless_der_decode", 0, [&] {
        Bytes der = read_all(ctx, cin);
        KeyStub stub;
        try {
            stub = decode_stub_der(der);
        } catch (const StubError&) {
            return 1; // not a keyless stub
        }
        auto key = KeyObject::create(ctx->prov, stub.uri, stub.spki_der, KeyObject::Origin::Stub);
        if (key->kind() != ctx->kind) return 1; // the other type's decoder takes it
        return pass_key(key, data_cb, data_cbarg);
    });
}

} // namespace

const OSSL_DISPATCH pem_to_der_decoder_functions[] = {
    KEYLESS_FN(DECODER_NEWCTX, decoder_newctx, decoder_newctx<tls::KeyKind::RSA>),
    KEYLESS_FN(DECODER_FREECTX, decoder_freectx, decoder_freectx),
    KEYLESS_FN(DECODER_DECODE, decoder_decode, pem_decode),
    {0, nullptr}};

#define DER_DECODER_TABLE(NAME, KIND)                                                              \
    const OSSL_DISPATCH NAME[] = {                                                                 \
        KEYLESS_FN(DECODER_NEWCTX, decoder_newctx, decoder_newctx<KIND>),                          \
        KEYLESS_FN(DECODER_FREECTX, decoder_freectx, decoder_freectx),                             \
        KEYLESS_FN(DECODER_DOES_SELECTION, decoder_does_selection, does_selection),                \
        KEYLESS_FN(DECODER_DECODE, decoder_decode, der_decode),                                    \
        {0, nullptr}};

DER_DECODER_TABLE(der_to_rsa_decoder_functions, tls::KeyKind::RSA)
DER_DECODER_TABLE(der_to_ec_decoder_functions, tls::KeyKind::EC)
DER_DECODER_TABLE(der_to_ed25519_decoder_functions, tls::KeyKind::Ed25519)
DER_DECODER_TABLE(der_to_ed448_decoder_functions, tls::KeyKind::Ed448)
DER_DECODER_TABLE(der_to_mldsa44_decoder_functions, tls::KeyKind::MLDSA44)
DER_DECODER_TABLE(der_to_mldsa65_decoder_functions, tls::KeyKind::MLDSA65)
DER_DECODER_TABLE(der_to_mldsa87_decoder_functions, tls::KeyKind::MLDSA87)

} // namespace keyless::provider
