#include "ski.hpp"

#include "ossl.hpp"

#include <openssl/x509.h>

#include <stdexcept>

namespace keyless {

Bytes spki_der(const EVP_PKEY* pkey) {
    ossl::ErrorScope errors; // also used inside provider callbacks
    int len = i2d_PUBKEY(pkey, nullptr);
    if (len <= 0) throw std::runtime_error("cannot encode public key: " + errors.text());
    Bytes der(static_cast<size_t>(len));
    unsigned char* p = der.data();
    i2d_PUBKEY(pkey, &p);
    return der;
}

Ski compute_ski_from_spki(ByteView der) {
    ossl::ErrorScope errors; // also used inside provider callbacks
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
