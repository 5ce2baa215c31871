// Keys and certificates made in memory for unit tests (no files, no keyserver).
#pragma once

#include "bytes.hpp"
#include "ossl.hpp"

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sys/stat.h>

#include <cstring>
#include <memory>

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

// Writes (mode 600) a PEM PKCS#8 private key with ML-DSA-65's OID and made-up contents, which
// no OpenSSL decodes: 3.0 because it has no ML-DSA, 3.5 because the key is not one.
inline bool write_made_up_ml_dsa_65_key(const std::string& path) {
    std::unique_ptr<PKCS8_PRIV_KEY_INFO, ossl::Deleter<PKCS8_PRIV_KEY_INFO_free>> info(
        PKCS8_PRIV_KEY_INFO_new());
    auto* blob = static_cast<unsigned char*>(OPENSSL_malloc(34));
    if (!info || !blob) return false;
    std::memset(blob, 0x42, 34);
    if (PKCS8_pkey_set0(info.get(), OBJ_txt2obj("2.16.840.1.101.3.4.3.18", 1), 0, V_ASN1_UNDEF,
                        nullptr, blob, 34) != 1)
        return false;
    ossl::Bio out(BIO_new_file(path.c_str(), "w"));
    return out && PEM_write_bio_PKCS8_PRIV_KEY_INFO(out.get(), info.get()) == 1 &&
           ::chmod(path.c_str(), 0600) == 0;
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
