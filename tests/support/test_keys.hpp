// Keys and certificates made in memory for unit tests (no files, no keyserver).
#pragma once

#include "bytes.hpp"
#include "ossl.hpp"

#include <openssl/core_names.h>

#include <string>

namespace keyless::test {

// A fresh key: generate("EC", "group", "P-256"), generate("RSA", nullptr, nullptr),
// generate("X25519", nullptr, nullptr), ...
inline ossl::Pkey generate(const char* alg, const char* param_name, const char* value) {
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

// The encoded public key: an uncompressed point for EC, the raw key for X25519/X448.
inline Bytes encoded_public_key(EVP_PKEY* key) {
    Bytes out(256);
    size_t len = 0;
    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out.data(), out.size(),
                                    &len);
    out.resize(len);
    return out;
}

// A self-signed certificate for `key` with subject CN=`cn`, valid for a day.
// Subject and issuer CN=cn (a name built apart: from OpenSSL 4.0 on, a certificate's own name
// is const).
inline void name_self_issued(X509* cert, const std::string& cn) {
    ossl::X509NamePtr name(X509_NAME_new());
    X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_subject_name(cert, name.get());
    X509_set_issuer_name(cert, name.get());
}

inline ossl::X509Ptr self_signed(EVP_PKEY* key, const std::string& cn) {
    ossl::X509Ptr cert(X509_new());
    X509_set_version(cert.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
    name_self_issued(cert.get(), cn);
    X509_set_pubkey(cert.get(), key);
    bool no_digest = EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448");
    X509_sign(cert.get(), key, no_digest ? nullptr : EVP_sha256());
    return cert;
}

} // namespace keyless::test
