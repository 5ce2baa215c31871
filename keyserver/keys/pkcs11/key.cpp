#include "keys/pkcs11/key.hpp"

#include "keys/pkcs11/mechanisms.hpp"
#include "ossl.hpp"

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>

namespace keyless::keyserver {

namespace {

// The digest table's PKCS#11 numbers are pkcs11.h's.
static_assert(algorithms::entry("SHA1").p11_hash == CKM_SHA_1 &&
              algorithms::entry("SHA224").p11_hash == CKM_SHA224 &&
              algorithms::entry("SHA256").p11_hash == CKM_SHA256 &&
              algorithms::entry("SHA384").p11_hash == CKM_SHA384 &&
              algorithms::entry("SHA512").p11_hash == CKM_SHA512);
static_assert(algorithms::entry("SHA1").p11_mgf1 == CKG_MGF1_SHA1 &&
              algorithms::entry("SHA224").p11_mgf1 == CKG_MGF1_SHA224 &&
              algorithms::entry("SHA256").p11_mgf1 == CKG_MGF1_SHA256 &&
              algorithms::entry("SHA384").p11_mgf1 == CKG_MGF1_SHA384 &&
              algorithms::entry("SHA512").p11_mgf1 == CKG_MGF1_SHA512);

// DigestInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING digest }, what CKM_RSA_PKCS signs
// for PKCS#1 v1.5 (TLS's MD5-SHA1 signs the 36 bytes bare).
Bytes digest_info(const algorithms::Digest& kind, ByteView digest) {
    if (kind.name == "MD5-SHA1") return Bytes(digest.begin(), digest.end());
    ossl::Md md(EVP_MD_fetch(nullptr, kind.c_str(), nullptr));
    if (!md) throw CryptoError("unknown digest " + std::string(kind.name));
    std::unique_ptr<X509_SIG, ossl::Deleter<X509_SIG_free>> info(X509_SIG_new());
    X509_ALGOR* alg = nullptr;
    ASN1_OCTET_STRING* octets = nullptr;
    X509_SIG_getm(info.get(), &alg, &octets);
    if (!X509_ALGOR_set0(alg, OBJ_nid2obj(EVP_MD_get_type(md.get())), V_ASN1_NULL, nullptr) ||
        !ASN1_OCTET_STRING_set(octets, digest.data(), static_cast<int>(digest.size())))
        throw CryptoError("cannot encode DigestInfo: " + ossl::last_error());
    int len = i2d_X509_SIG(info.get(), nullptr);
    Bytes out(static_cast<size_t>(std::max(len, 0)));
    unsigned char* p = out.data();
    if (len <= 0 || i2d_X509_SIG(info.get(), &p) != len)
        throw CryptoError("cannot encode DigestInfo: " + ossl::last_error());
    return out;
}

// The token's ECDSA signature (r||s, each `half` bytes) as the DER ECDSA-Sig-Value TLS sends.
Bytes ecdsa_der(const Bytes& raw, size_t half) {
    if (raw.size() != 2 * half)
        throw CryptoError("token returned an ECDSA signature of " + std::to_string(raw.size()) +
                          " bytes, expected " + std::to_string(2 * half));
    std::unique_ptr<ECDSA_SIG, ossl::Deleter<ECDSA_SIG_free>> sig(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(raw.data(), static_cast<int>(half), nullptr);
    BIGNUM* s = BN_bin2bn(raw.data() + half, static_cast<int>(half), nullptr);
    if (!sig || !r || !s || !ECDSA_SIG_set0(sig.get(), r, s)) {
        BN_free(r);
        BN_free(s);
        throw CryptoError("cannot encode an ECDSA signature");
    }
    int len = i2d_ECDSA_SIG(sig.get(), nullptr);
    Bytes out(static_cast<size_t>(std::max(len, 0)));
    unsigned char* p = out.data();
    i2d_ECDSA_SIG(sig.get(), &p);
    return out;
}

} // namespace

CK_OBJECT_HANDLE find_object(const Pkcs11Token& token, CK_SESSION_HANDLE session,
                             CK_OBJECT_CLASS object_class, const Bytes& id,
                             const std::string& label) {
    std::vector<CK_ATTRIBUTE> match = {{CKA_CLASS, &object_class, sizeof object_class}};
    if (!id.empty()) match.push_back({CKA_ID, const_cast<uint8_t*>(id.data()), id.size()});
    if (!label.empty()) match.push_back({CKA_LABEL, const_cast<char*>(label.data()), label.size()});
    CK_FUNCTION_LIST* f = token.fn();
    CK_RV rv = f->C_FindObjectsInit(session, match.data(), match.size());
    if (rv != CKR_OK) throw HsmError(token.name() + ": cannot search objects", rv);
    std::array<CK_OBJECT_HANDLE, 2> found{};
    CK_ULONG count = 0;
    rv = f->C_FindObjects(session, found.data(), found.size(), &count);
    f->C_FindObjectsFinal(session);
    if (rv != CKR_OK) throw HsmError(token.name() + ": cannot search objects", rv);
    if (count > 1)
        throw HsmError(token.name() + ": several objects match; add id= or object= to the URI");
    return count == 1 ? found[0] : CK_INVALID_HANDLE;
}

Pkcs11Key::Pkcs11Key(std::shared_ptr<Pkcs11Token> token, std::string uri, Bytes id,
                     std::string label, tls::KeyKind kind, size_t signature_half)
    : token_(std::move(token)), uri_(std::move(uri)), id_(std::move(id)), label_(std::move(label)),
      kind_(kind), signature_half_(signature_half) {}

KeyOperations::Placement Pkcs11Key::place(std::function<void()>& work) const {
    return token_->submit(std::move(work)) ? Placement::Queued : Placement::Full;
}

CK_OBJECT_HANDLE Pkcs11Key::find(CK_SESSION_HANDLE session) const {
    CK_OBJECT_HANDLE key = find_object(*token_, session, CKO_PRIVATE_KEY, id_, label_);
    // Gone from a token that is there: the session is fine, the key is not.
    if (key == CK_INVALID_HANDLE)
        throw HsmError(token_->name() + ": private key " + uri_ + " not found",
                       CKR_KEY_HANDLE_INVALID);
    return key;
}

Bytes Pkcs11Key::run(CK_MECHANISM& mechanism, ByteView data, bool decrypt) const {
    Bytes out(p11::signature_capacity(kind_)); // or an RSA-8192 plaintext: 1024 bytes
    token_->with_session([&](CK_SESSION_HANDLE session) {
        CK_OBJECT_HANDLE key = find(session);
        CK_FUNCTION_LIST* f = token_->fn();
        CK_RV rv = decrypt ? f->C_DecryptInit(session, &mechanism, key)
                           : f->C_SignInit(session, &mechanism, key);
        if (rv != CKR_OK)
            throw HsmError(token_->name() + ": " + (decrypt ? "C_DecryptInit" : "C_SignInit") +
                               " failed for " + uri_,
                           rv);
        CK_ULONG len = out.size();
        auto* in = const_cast<uint8_t*>(data.data());
        rv = decrypt ? f->C_Decrypt(session, in, data.size(), out.data(), &len)
                     : f->C_Sign(session, in, data.size(), out.data(), &len);
        if (rv != CKR_OK)
            throw HsmError(token_->name() + ": " + (decrypt ? "C_Decrypt" : "C_Sign") +
                               " failed for " + uri_,
                           rv);
        out.resize(len);
    });
    return out;
}

Bytes Pkcs11Key::sign_digest(tls::Padding padding, const algorithms::Digest& alg,
                             ByteView digest) const {
    if (kind_ == tls::KeyKind::EC) {
        CK_MECHANISM ecdsa{CKM_ECDSA, nullptr, 0};
        return ecdsa_der(run(ecdsa, digest, false), signature_half_);
    }
    if (padding == tls::Padding::PSS) {
        if (!alg.p11_hash)
            throw CryptoError("RSA-PSS with digest " + std::string(alg.name) + " is not supported");
        CK_RSA_PKCS_PSS_PARAMS params{alg.p11_hash, alg.p11_mgf1, digest.size()};
        CK_MECHANISM pss{CKM_RSA_PKCS_PSS, &params, sizeof params};
        return run(pss, digest, false);
    }
    CK_MECHANISM pkcs1{CKM_RSA_PKCS, nullptr, 0};
    Bytes info = digest_info(alg, digest);
    return run(pkcs1, info, false);
}

Bytes Pkcs11Key::sign_message(const tls::SchemeInfo& scheme, ByteView message) const {
    if (tls::signs_whole_messages(kind_)) {
        p11::MessageMechanism mechanism(kind_);
        return run(mechanism.get(), message, false);
    }
    // The keyserver hashes; the token signs the digest.
    const algorithms::Digest& alg = *scheme.digest;
    ossl::Md md(EVP_MD_fetch(nullptr, alg.c_str(), nullptr));
    Bytes digest(EVP_MAX_MD_SIZE);
    unsigned int len = 0;
    if (!md || !EVP_Digest(message.data(), message.size(), digest.data(), &len, md.get(), nullptr))
        throw CryptoError("cannot hash with " + std::string(alg.name) + ": " + ossl::last_error());
    digest.resize(len);
    return sign_digest(scheme.padding, alg, digest);
}

Bytes Pkcs11Key::decrypt_raw(ByteView ciphertext) const {
    CK_MECHANISM raw{CKM_RSA_X_509, nullptr, 0};
    Bytes out = run(raw, ciphertext, true);
    if (out.size() < ciphertext.size()) out.insert(out.begin(), ciphertext.size() - out.size(), 0);
    return out;
}

} // namespace keyless::keyserver
