#include "ski.hpp"

#include "ossl.hpp"

#include <openssl/x509.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace keyless {

namespace {

using Asn1Integer = std::unique_ptr<ASN1_INTEGER, ossl::Deleter<ASN1_INTEGER_free>>;

// OPENSSL_malloc'd copy, as X509_PUBKEY_set0_param takes ownership of it.
unsigned char* owned_copy(const unsigned char* data, size_t len) {
    auto* out = static_cast<unsigned char*>(OPENSSL_malloc(len));
    if (out) std::memcpy(out, data, len);
    return out;
}

// The subjectPublicKey value and the AlgorithmIdentifier, read from the key's parameters, for
// the key types keyless serves (RSA, EC on a named curve, Ed25519); false for any other. This
// spares i2d_PUBKEY's trip through OpenSSL 3.0's encoder framework (~0.1 ms a key, most of the
// time a keyserver with 10,000 keys took to start).
bool set_public_key(X509_PUBKEY* pub, const EVP_PKEY* pkey) {
    if (EVP_PKEY_is_a(pkey, "ED25519")) {
        unsigned char raw[32];
        size_t len = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1) return false;
        unsigned char* bits = owned_copy(raw, len);
        return bits && X509_PUBKEY_set0_param(pub, OBJ_nid2obj(NID_ED25519), V_ASN1_UNDEF, nullptr,
                                              bits, static_cast<int>(len)) == 1;
    }
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64];
        size_t group_len = 0;
        unsigned char point[256];
        size_t point_len = 0;
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                           &group_len) != 1 ||
            EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                            sizeof point, &point_len) != 1)
            return false;
        int curve = OBJ_sn2nid(group);
        if (curve == NID_undef) curve = EC_curve_nist2nid(group);
        unsigned char* bits = owned_copy(point, point_len);
        if (curve == NID_undef || !bits) {
            OPENSSL_free(bits);
            return false;
        }
        return X509_PUBKEY_set0_param(pub, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                                      OBJ_nid2obj(curve), bits, static_cast<int>(point_len)) == 1;
    }
    if (EVP_PKEY_is_a(pkey, "RSA") && !EVP_PKEY_is_a(pkey, "RSA-PSS")) {
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        BIGNUM* n = nullptr;
        BIGNUM* e = nullptr;
        bool got = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
                   EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1;
        ossl::Bn n_owned(n), e_owned(e);
        if (!got) return false;
        Asn1Integer ni(BN_to_ASN1_INTEGER(n, nullptr)), ei(BN_to_ASN1_INTEGER(e, nullptr));
        if (!ni || !ei) return false;
        int content = i2d_ASN1_INTEGER(ni.get(), nullptr) + i2d_ASN1_INTEGER(ei.get(), nullptr);
        int total = ASN1_object_size(1, content, V_ASN1_SEQUENCE);
        auto* bits = static_cast<unsigned char*>(OPENSSL_malloc(static_cast<size_t>(total)));
        if (!bits) return false;
        unsigned char* p = bits;
        ASN1_put_object(&p, 1, content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
        i2d_ASN1_INTEGER(ni.get(), &p);
        i2d_ASN1_INTEGER(ei.get(), &p);
        return X509_PUBKEY_set0_param(pub, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, nullptr,
                                      bits, total) == 1;
    }
    return false;
}

} // namespace

Bytes spki_der(const EVP_PKEY* pkey) {
    // For the keyserver and keyless-tool, never inside a provider callback (ERR_clear_error
    // below would break the marks OpenSSL's decoder loops rely on).
    ossl::ErrorScope errors;
    ossl::X509PubkeyPtr pub(X509_PUBKEY_new());
    if (pub && set_public_key(pub.get(), pkey)) {
        int len = i2d_X509_PUBKEY(pub.get(), nullptr);
        Bytes der(static_cast<size_t>(std::max(len, 0)));
        unsigned char* p = der.data();
        if (len > 0 && i2d_X509_PUBKEY(pub.get(), &p) == len) return der;
    }
    ERR_clear_error();
    int len = i2d_PUBKEY(pkey, nullptr);
    if (len <= 0) throw std::runtime_error("cannot encode public key: " + errors.text());
    Bytes der(static_cast<size_t>(len));
    unsigned char* p = der.data();
    i2d_PUBKEY(pkey, &p);
    return der;
}

Ski compute_ski_from_spki(ByteView der) {
    ossl::ErrorScope errors; // also runs inside provider callbacks (decoding a stub)
    const unsigned char* p = der.data();
    ossl::X509PubkeyPtr pub(d2i_X509_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
    if (!pub) throw std::runtime_error("not a SubjectPublicKeyInfo: " + errors.text());
    const unsigned char* bits = nullptr;
    int bits_len = 0;
    if (!X509_PUBKEY_get0_param(nullptr, &bits, &bits_len, nullptr, pub.get()))
        throw std::runtime_error("cannot read subjectPublicKey: " + errors.text());
    Ski ski{};
    unsigned int out_len = 0;
    // SHA-1 here is an identifier, not a security boundary; fetched without properties so it
    // works in any library context that has the default provider.
    if (!EVP_Digest(bits, static_cast<size_t>(bits_len), ski.data(), &out_len, EVP_sha1(), nullptr))
        throw std::runtime_error("SHA-1 failed: " + errors.text());
    return ski;
}

Ski compute_ski(const EVP_PKEY* pkey) {
    return compute_ski_from_spki(spki_der(pkey));
}

Ski compute_ski_from_own_spki(ByteView der) {
    // Outer SEQUENCE, the AlgorithmIdentifier SEQUENCE skipped, then the BIT STRING, whose first
    // content byte counts unused bits.
    const unsigned char* p = der.data();
    long len = 0;
    int tag = 0, cls = 0;
    const unsigned char* end = der.data() + der.size();
    auto next = [&](int wanted) {
        int r = ASN1_get_object(&p, &len, &tag, &cls, end - p);
        if ((r & 0x80) || tag != wanted || cls != V_ASN1_UNIVERSAL)
            throw std::runtime_error("not a SubjectPublicKeyInfo");
    };
    next(V_ASN1_SEQUENCE);
    next(V_ASN1_SEQUENCE);
    p += len;
    next(V_ASN1_BIT_STRING);
    if (len < 1 || p + len != end) throw std::runtime_error("not a SubjectPublicKeyInfo");
    Ski ski{};
    unsigned int out_len = 0;
    if (!EVP_Digest(p + 1, static_cast<size_t>(len - 1), ski.data(), &out_len, EVP_sha1(), nullptr))
        throw std::runtime_error("SHA-1 failed: " + ossl::last_error());
    return ski;
}

std::string to_hex(ByteView bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (uint8_t b : bytes) {
        s += digits[b >> 4];
        s += digits[b & 15];
    }
    return s;
}

} // namespace keyless
