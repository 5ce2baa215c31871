// KEYMGMT for "RSA", "EC", "ED25519", "ED448" and "ML-DSA-44/65/87" (OpenSSL 3.5 and later):
// key objects that hold a keyless URI and a cached public
// key. Private export always fails: that is what makes OpenSSL route private-key operations for
// these keys to this provider instead of the default one. Nothing here touches the network.
#include "dispatch_entry.hpp"
#include "dispatch_tables.hpp"
#include "key/key_object.hpp"

#include <openssl/core_names.h>
#include <openssl/core_object.h>

#include <cstring>

namespace keyless::provider {

namespace {

const KeyObject* key_of(const void* keydata) {
    return keydata ? static_cast<const KeyHandle*>(keydata)->key.get() : nullptr;
}

// `new` and `import` exist only so that OpenSSL's attempts to copy a foreign key into this
// keymgmt (X509_check_private_key does it first, operation fetches may too) fail quietly: without
// `new`, OpenSSL 3.0 reports a bogus "malloc failure" that stays on the error queue, and nginx
// then logs "ignoring stale global SSL error" at the first handshake. Foreign keys are never
// imported: a keyless key is made only by our store and decoders, which know its URI.
void* keymgmt_new(void* provctx) {
    return guarded(static_cast<ProviderContext*>(provctx), "keyless_keymgmt_new",
                   static_cast<void*>(nullptr),
                   []() -> void* { return std::make_unique<KeyHandle>().release(); });
}
int keymgmt_import(void*, int, const OSSL_PARAM[]) {
    return 0;
}
const OSSL_PARAM* keymgmt_import_types(int) {
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    return none;
}

void keymgmt_free(void* keydata) {
    std::unique_ptr<KeyHandle> reclaim(static_cast<KeyHandle*>(keydata));
}

int keymgmt_has(const void* keydata, int /*selection*/) {
    // A keyless key has its public half here and its private half on the keyserver.
    return key_of(keydata) != nullptr;
}

int keymgmt_match(const void* keydata1, const void* keydata2, int /*selection*/) {
    const KeyObject* a = key_of(keydata1);
    const KeyObject* b = key_of(keydata2);
    if (!a || !b) return 0;
    return a == b || EVP_PKEY_eq(a->public_key(), b->public_key()) == 1;
}

int keymgmt_get_params(void* keydata, OSSL_PARAM params[]) {
    const KeyObject* key = key_of(keydata);
    if (!key) return 0;
    // The cached public key answers bits, security bits, max size, n/e, group and point.
    // (For EdDSA and ML-DSA that includes the empty mandatory digest: they sign messages.)
    if (!EVP_PKEY_get_params(key->public_key(), params)) return 0;
    if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST))
        if (!tls::signs_whole_messages(key->kind()) && !OSSL_PARAM_set_utf8_string(p, "SHA256"))
            return 0;
    return 1;
}

const OSSL_PARAM* keymgmt_gettable_params(void*) {
    static const OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, nullptr, 0),
        OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
        OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
        OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_PUB_X, nullptr, 0),
        OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_PUB_Y, nullptr, 0),
        OSSL_PARAM_END};
    return params;
}

int keymgmt_export(void* keydata, int selection, OSSL_CALLBACK* cb, void* cbarg) {
    const KeyObject* key = key_of(keydata);
    if (!key || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)) return 0;
    int what = (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) ? EVP_PKEY_PUBLIC_KEY
                                                            : EVP_PKEY_KEY_PARAMETERS;
    OSSL_PARAM* params = nullptr;
    if (EVP_PKEY_todata(key->public_key(), what, &params) != 1) return 0;
    int ok = cb(params, cbarg);
    OSSL_PARAM_free(params);
    return ok;
}

const OSSL_PARAM* rsa_export_types(int selection) {
    static const OSSL_PARAM params[] = {OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                        OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
                                        OSSL_PARAM_END};
    return (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) ? params : nullptr;
}

const OSSL_PARAM* ec_export_types(int selection) {
    static const OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0), OSSL_PARAM_END};
    return (selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS))
               ? params
               : nullptr;
}

// EdDSA and ML-DSA public keys are one octet string.
const OSSL_PARAM* raw_public_export_types(int selection) {
    static const OSSL_PARAM params[] = {
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0), OSSL_PARAM_END};
    return (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) ? params : nullptr;
}

// A reference is the address of a KeyHandle owned by the store or decoder that hands it out,
// alive for the duration of the callback in which OpenSSL calls load.
template <tls::KeyKind Kind> void* keymgmt_load(const void* reference, size_t size) {
    if (!reference || size != sizeof(KeyHandle)) return nullptr;
    const auto* handle = static_cast<const KeyHandle*>(reference);
    if (!handle->key || handle->key->kind() != Kind) return nullptr;
    return guarded(
        handle->key->provider(), "keyless_keymgmt_load", static_cast<void*>(nullptr),
        [&]() -> void* { return std::make_unique<KeyHandle>(KeyHandle{handle->key}).release(); });
}

void* keymgmt_dup(const void* keydata, int /*selection*/) {
    // Key objects are immutable, so a duplicate is another reference to the same one.
    const auto* handle = static_cast<const KeyHandle*>(keydata);
    if (!handle) return nullptr;
    return guarded(handle->key ? handle->key->provider() : nullptr, "keyless_keymgmt_dup",
                   static_cast<void*>(nullptr),
                   [&]() -> void* { return std::make_unique<KeyHandle>(*handle).release(); });
}

const char* rsa_query_operation_name(int) {
    return "RSA";
}
template <tls::KeyKind Kind> const char* own_query_operation_name(int) {
    return tls::key_type_name(Kind); // EdDSA and ML-DSA: the signature has the key's name
}
const char* ec_query_operation_name(int operation_id) {
    return operation_id == OSSL_OP_SIGNATURE ? "ECDSA" : "EC";
}

#define KEYMGMT_COMMON                                                                             \
    KEYLESS_FN(KEYMGMT_NEW, keymgmt_new, keymgmt_new),                                             \
        KEYLESS_FN(KEYMGMT_IMPORT, keymgmt_import, keymgmt_import),                                \
        KEYLESS_FN(KEYMGMT_IMPORT_TYPES, keymgmt_import_types, keymgmt_import_types),              \
        KEYLESS_FN(KEYMGMT_FREE, keymgmt_free, keymgmt_free),                                      \
        KEYLESS_FN(KEYMGMT_HAS, keymgmt_has, keymgmt_has),                                         \
        KEYLESS_FN(KEYMGMT_MATCH, keymgmt_match, keymgmt_match),                                   \
        KEYLESS_FN(KEYMGMT_GET_PARAMS, keymgmt_get_params, keymgmt_get_params),                    \
        KEYLESS_FN(KEYMGMT_GETTABLE_PARAMS, keymgmt_gettable_params, keymgmt_gettable_params),     \
        KEYLESS_FN(KEYMGMT_EXPORT, keymgmt_export, keymgmt_export),                                \
        KEYLESS_FN(KEYMGMT_DUP, keymgmt_dup, keymgmt_dup)

} // namespace

#define KEYMGMT_TABLE(NAME, KIND, EXPORT_TYPES, OPERATION_NAME)                                    \
    const OSSL_DISPATCH NAME[] = {                                                                 \
        KEYMGMT_COMMON,                                                                            \
        KEYLESS_FN(KEYMGMT_EXPORT_TYPES, keymgmt_export_types, EXPORT_TYPES),                      \
        KEYLESS_FN(KEYMGMT_LOAD, keymgmt_load, keymgmt_load<KIND>),                                \
        KEYLESS_FN(KEYMGMT_QUERY_OPERATION_NAME, keymgmt_query_operation_name, OPERATION_NAME),    \
        {0, nullptr}};

KEYMGMT_TABLE(rsa_keymgmt_functions, tls::KeyKind::RSA, rsa_export_types, rsa_query_operation_name)
KEYMGMT_TABLE(ec_keymgmt_functions, tls::KeyKind::EC, ec_export_types, ec_query_operation_name)
KEYMGMT_TABLE(ed25519_keymgmt_functions, tls::KeyKind::Ed25519, raw_public_export_types,
              own_query_operation_name<tls::KeyKind::Ed25519>)
KEYMGMT_TABLE(ed448_keymgmt_functions, tls::KeyKind::Ed448, raw_public_export_types,
              own_query_operation_name<tls::KeyKind::Ed448>)
KEYMGMT_TABLE(mldsa44_keymgmt_functions, tls::KeyKind::MLDSA44, raw_public_export_types,
              own_query_operation_name<tls::KeyKind::MLDSA44>)
KEYMGMT_TABLE(mldsa65_keymgmt_functions, tls::KeyKind::MLDSA65, raw_public_export_types,
              own_query_operation_name<tls::KeyKind::MLDSA65>)
KEYMGMT_TABLE(mldsa87_keymgmt_functions, tls::KeyKind::MLDSA87, raw_public_export_types,
              own_query_operation_name<tls::KeyKind::MLDSA87>)

} // namespace keyless::provider
