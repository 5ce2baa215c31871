// keyless.so entry point: reads the provider's openssl.cnf section, registers every operation
// statically (OpenSSL may cache the tables before any key is loaded, e.g. nginx creates its
// SSL_CTX first), and never touches the network here.
#include "dispatch_entry.hpp"
#include "dispatch_tables.hpp"
#include "errors.hpp"
#include "version.hpp"

#include <openssl/core_names.h>
#include <openssl/params.h>

#include <map>

namespace keyless::provider {

namespace {

constexpr const char* kRsaNames = "RSA:rsaEncryption:1.2.840.113549.1.1.1";
constexpr const char* kEcNames = "EC:id-ecPublicKey:1.2.840.10045.2.1";
constexpr const char* kEd25519Names = "ED25519:1.3.101.112";
constexpr const char* kEd448Names = "ED448:1.3.101.113";
// The names OpenSSL 3.5's default provider gives ML-DSA (FIPS 204); older versions never ask.
constexpr const char* kMlDsa44Names = "ML-DSA-44:MLDSA44:2.16.840.1.101.3.4.3.17:id-ml-dsa-44";
constexpr const char* kMlDsa65Names = "ML-DSA-65:MLDSA65:2.16.840.1.101.3.4.3.18:id-ml-dsa-65";
constexpr const char* kMlDsa87Names = "ML-DSA-87:MLDSA87:2.16.840.1.101.3.4.3.19:id-ml-dsa-87";

const OSSL_ALGORITHM kKeymgmt[] = {
    {kRsaNames, kProperties, rsa_keymgmt_functions,
     "keyless RSA key (private half on a keyserver)"},
    {kEcNames, kProperties, ec_keymgmt_functions, "keyless EC key (private half on a keyserver)"},
    {kEd25519Names, kProperties, ed25519_keymgmt_functions,
     "keyless Ed25519 key (private half on a keyserver)"},
    {kEd448Names, kProperties, ed448_keymgmt_functions,
     "keyless Ed448 key (private half on a keyserver)"},
    {kMlDsa44Names, kProperties, mldsa44_keymgmt_functions,
     "keyless ML-DSA-44 key (private half on a keyserver)"},
    {kMlDsa65Names, kProperties, mldsa65_keymgmt_functions,
     "keyless ML-DSA-65 key (private half on a keyserver)"},
    {kMlDsa87Names, kProperties, mldsa87_keymgmt_functions,
     "keyless ML-DSA-87 key (private half on a keyserver)"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kSignature[] = {
    {kRsaNames, kProperties, rsa_signature_functions, "RSA signatures on a keyserver"},
    {"ECDSA", kProperties, ecdsa_signature_functions, "ECDSA signatures on a keyserver"},
    {kEd25519Names, kProperties, ed25519_signature_functions, "Ed25519 signatures on a keyserver"},
    {kEd448Names, kProperties, ed448_signature_functions, "Ed448 signatures on a keyserver"},
    {kMlDsa44Names, kProperties, mldsa44_signature_functions,
     "ML-DSA-44 signatures on a keyserver"},
    {kMlDsa65Names, kProperties, mldsa65_signature_functions,
     "ML-DSA-65 signatures on a keyserver"},
    {kMlDsa87Names, kProperties, mldsa87_signature_functions,
     "ML-DSA-87 signatures on a keyserver"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kAsymCipher[] = {
    {kRsaNames, kProperties, rsa_asym_cipher_functions, "RSA decryption on a keyserver"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kStore[] = {
    {"keyless", kProperties, store_functions, "keyless:HOST:PORT/KEYID key references"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kDecoder[] = {
    {"DER", "provider=keyless,input=pem", pem_to_der_decoder_functions, "KEYLESS KEY PEM"},
    {kRsaNames, "provider=keyless,input=der,structure=keyless-key", der_to_rsa_decoder_functions,
     "keyless RSA key stub"},
    {kEcNames, "provider=keyless,input=der,structure=keyless-key", der_to_ec_decoder_functions,
     "keyless EC key stub"},
    {kEd25519Names, "provider=keyless,input=der,structure=keyless-key",
     der_to_ed25519_decoder_functions, "keyless Ed25519 key stub"},
    {kEd448Names, "provider=keyless,input=der,structure=keyless-key",
     der_to_ed448_decoder_functions, "keyless Ed448 key stub"},
    {kMlDsa44Names, "provider=keyless,input=der,structure=keyless-key",
     der_to_mldsa44_decoder_functions, "keyless ML-DSA-44 key stub"},
    {kMlDsa65Names, "provider=keyless,input=der,structure=keyless-key",
     der_to_mldsa65_decoder_functions, "keyless ML-DSA-65 key stub"},
    {kMlDsa87Names, "provider=keyless,input=der,structure=keyless-key",
     der_to_mldsa87_decoder_functions, "keyless ML-DSA-87 key stub"},
    {nullptr, nullptr, nullptr, nullptr}};

// One entry per key type and private-key output OpenSSL asks for (PEM/DER PKCS#8, encrypted
// PKCS#8, the type-specific form, and text), all refusing with a message.
#define KEYLESS_REFUSE(NAMES, OUTPUT)                                                              \
    {                                                                                              \
        NAMES, "provider=keyless," OUTPUT, private_key_refusal_encoder_functions,                  \
            "refuses to export a keyless private key"                                              \
    }
#define KEYLESS_REFUSE_ALL(NAMES)                                                                  \
    KEYLESS_REFUSE(NAMES, "output=pem,structure=PrivateKeyInfo"),                                  \
        KEYLESS_REFUSE(NAMES, "output=der,structure=PrivateKeyInfo"),                              \
        KEYLESS_REFUSE(NAMES, "output=pem,structure=EncryptedPrivateKeyInfo"),                     \
        KEYLESS_REFUSE(NAMES, "output=der,structure=EncryptedPrivateKeyInfo"),                     \
        KEYLESS_REFUSE(NAMES, "output=pem,structure=type-specific"),                               \
        KEYLESS_REFUSE(NAMES, "output=der,structure=type-specific"),                               \
        KEYLESS_REFUSE(NAMES, "output=text")
const OSSL_ALGORITHM kEncoder[] = {
    KEYLESS_REFUSE_ALL(kRsaNames),     KEYLESS_REFUSE_ALL(kEcNames),
    KEYLESS_REFUSE_ALL(kEd25519Names), KEYLESS_REFUSE_ALL(kEd448Names),
    KEYLESS_REFUSE_ALL(kMlDsa44Names), KEYLESS_REFUSE_ALL(kMlDsa65Names),
    KEYLESS_REFUSE_ALL(kMlDsa87Names), {nullptr, nullptr, nullptr, nullptr}};

const OSSL_ALGORITHM* query_operation(void*, int operation_id, int* no_cache) {
    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_KEYMGMT:
        return kKeymgmt;
    case OSSL_OP_SIGNATURE:
        return kSignature;
    case OSSL_OP_ASYM_CIPHER:
        return kAsymCipher;
    case OSSL_OP_STORE:
        return kStore;
    case OSSL_OP_DECODER:
        return kDecoder;
    case OSSL_OP_ENCODER:
        return kEncoder;
    default:
        return nullptr;
    }
}

const OSSL_PARAM* gettable_params(void*) {
    static const OSSL_PARAM params[] = {OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, nullptr, 0),
                                        OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_VERSION, nullptr, 0),
                                        OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_BUILDINFO, nullptr, 0),
                                        OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, nullptr),
                                        OSSL_PARAM_END};
    return params;
}

int get_params(void*, OSSL_PARAM params[]) {
    OSSL_PARAM* p;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME)) &&
        !OSSL_PARAM_set_utf8_ptr(p, "keyless: private keys on a keyserver"))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION)) &&
        !OSSL_PARAM_set_utf8_ptr(p, keyless::version()))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO)) &&
        !OSSL_PARAM_set_utf8_ptr(p, keyless::version()))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS)) && !OSSL_PARAM_set_int(p, 1))
        return 0;
    return 1;
}

const OSSL_ITEM* get_reason_strings(void*) {
    return reason_strings();
}

void teardown(void* provctx) {
    std::unique_ptr<ProviderContext> reclaim(static_cast<ProviderContext*>(provctx));
}

const OSSL_DISPATCH kProviderFunctions[] = {
    KEYLESS_FN(PROVIDER_TEARDOWN, provider_teardown, teardown),
    KEYLESS_FN(PROVIDER_GETTABLE_PARAMS, provider_gettable_params, gettable_params),
    KEYLESS_FN(PROVIDER_GET_PARAMS, provider_get_params, get_params),
    KEYLESS_FN(PROVIDER_QUERY_OPERATION, provider_query_operation, query_operation),
    KEYLESS_FN(PROVIDER_GET_REASON_STRINGS, provider_get_reason_strings, get_reason_strings),
    {0, nullptr}};

// The provider's openssl.cnf section, as strings (empty when unset).
std::map<std::string, std::string> read_config(const OSSL_CORE_HANDLE* handle,
                                               OSSL_FUNC_core_get_params_fn* core_get_params) {
    static const char* const keys[] = {"client_cert",
                                       "client_key",
                                       "ca_file",
                                       "connect_timeout_ms",
                                       "request_timeout_ms",
                                       "connections_per_server",
                                       "servers"};
    constexpr size_t n = sizeof keys / sizeof keys[0];
    char* values[n] = {};
    OSSL_PARAM params[n + 1];
    for (size_t i = 0; i < n; ++i)
        params[i] = OSSL_PARAM_construct_utf8_ptr(keys[i], &values[i], 0);
    params[n] = OSSL_PARAM_construct_end();
    std::map<std::string, std::string> out;
    if (core_get_params && core_get_params(handle, params))
        for (size_t i = 0; i < n; ++i)
            if (values[i]) out[keys[i]] = values[i];
    return out;
}

} // namespace

} // namespace keyless::provider

extern "C" __attribute__((visibility("default"))) int
OSSL_provider_init(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in,
                   const OSSL_DISPATCH** out, void** provctx) {
    using namespace keyless::provider;
    try {
        auto prov = std::make_unique<ProviderContext>();
        prov->handle = handle;
        OSSL_FUNC_core_get_params_fn* core_get_params = nullptr;
        const OSSL_DISPATCH* in_start = in;
        for (; in && in->function_id != 0; ++in) {
            switch (in->function_id) {
            case OSSL_FUNC_CORE_GET_PARAMS:
                core_get_params = OSSL_FUNC_core_get_params(in);
                break;
            case OSSL_FUNC_CORE_NEW_ERROR:
                prov->core_new_error = OSSL_FUNC_core_new_error(in);
                break;
            case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
                prov->core_set_error_debug = OSSL_FUNC_core_set_error_debug(in);
                break;
            case OSSL_FUNC_CORE_VSET_ERROR:
                prov->core_vset_error = OSSL_FUNC_core_vset_error(in);
                break;
            default:
                break;
            }
        }
        // A library context wired to the core, so decoders can read the core's BIOs.
        prov->core_libctx.reset(OSSL_LIB_CTX_new_from_dispatch(handle, in_start));
        if (!prov->core_libctx) return 0;
        auto config = read_config(handle, core_get_params);
        keyless::client::Settings settings;
        try {
            settings = keyless::client::resolve_settings([&](const char* key) {
                auto it = config.find(key);
                return it == config.end() ? std::string() : it->second;
            });
        } catch (const keyless::client::SettingsError& e) {
            // Reported on first use: failing init would break every program using this
            // openssl.cnf, even those that never touch a keyless key.
            prov->settings_error = e.what();
        }
        prov->client = std::make_unique<keyless::client::Client>(std::move(settings),
                                                                 /*process_exit_teardown=*/true);
        *out = kProviderFunctions;
        *provctx = prov.release();
        return 1;
    } catch (...) {
        return 0;
    }
}
