// TLS SignatureScheme values (RFC 8446 §4.2.3) and what each means for a signer. What a message
// given to sign-TLS may be is in tls_shape.hpp.
#pragma once

#include "algorithms.hpp"
#include "bytes.hpp"

#include <optional>
#include <string_view>

namespace keyless::tls {

// ML-DSA's three parameter sets are three kinds: a scheme fits one of them only.
enum class KeyKind { RSA, EC, Ed25519, Ed448, MLDSA44, MLDSA65, MLDSA87 };
// EdDSA and ML-DSA sign whole messages (no digest, no pre-hash in TLS).
constexpr bool signs_whole_messages(KeyKind k) {
    return k != KeyKind::RSA && k != KeyKind::EC;
}
constexpr bool is_ml_dsa(KeyKind k) {
    return k == KeyKind::MLDSA44 || k == KeyKind::MLDSA65 || k == KeyKind::MLDSA87;
}
// OpenSSL's key type name (EVP_PKEY_is_a, keymgmt): "RSA", "EC", "ED25519", "ML-DSA-65", ...
constexpr const char* key_type_name(KeyKind k) {
    switch (k) {
    case KeyKind::RSA:
        return "RSA";
    case KeyKind::EC:
        return "EC";
    case KeyKind::Ed25519:
        return "ED25519";
    case KeyKind::Ed448:
        return "ED448";
    case KeyKind::MLDSA44:
        return "ML-DSA-44";
    case KeyKind::MLDSA65:
        return "ML-DSA-65";
    case KeyKind::MLDSA87:
        return "ML-DSA-87";
    }
    return "?";
}
// The key's (and, for EdDSA and ML-DSA, its signature's) OID; "" for RSA and EC, whose
// signature OIDs depend on the digest.
constexpr const char* whole_message_oid(KeyKind k) {
    switch (k) {
    case KeyKind::Ed25519:
        return "1.3.101.112";
    case KeyKind::Ed448:
        return "1.3.101.113";
    case KeyKind::MLDSA44:
        return "2.16.840.1.101.3.4.3.17";
    case KeyKind::MLDSA65:
        return "2.16.840.1.101.3.4.3.18";
    case KeyKind::MLDSA87:
        return "2.16.840.1.101.3.4.3.19";
    default:
        return "";
    }
}
// The ML-DSA parameter set whose OID is `oid` (dotted), if it is one: how a keyserver or an edge
// on an OpenSSL without ML-DSA still names the key it cannot read.
std::optional<KeyKind> ml_dsa_of_oid(std::string_view oid);
// Every kind, for lookups by OpenSSL type name.
inline constexpr KeyKind kAllKeyKinds[] = {KeyKind::RSA,    KeyKind::EC,      KeyKind::Ed25519,
                                           KeyKind::Ed448,  KeyKind::MLDSA44, KeyKind::MLDSA65,
                                           KeyKind::MLDSA87};
using algorithms::Padding;

struct SchemeInfo {
    uint16_t code;
    std::string_view name;
    KeyKind key;
    Padding padding;
    const algorithms::Digest* digest; // null for EdDSA and ML-DSA (whole messages)
    std::string_view curve;           // the curve a TLS 1.3 ECDSA scheme is bound to, e.g. "P-256"

    // The digest's name for EVP_DigestSignInit_ex and the like: null for whole-message schemes.
    const char* digest_name() const { return digest ? digest->c_str() : nullptr; }
};

std::optional<SchemeInfo> scheme_info(uint16_t code);
// Every scheme has a fixed slot in [0, kSchemeCount), for per-scheme tables.
inline constexpr size_t kSchemeCount = 18;
std::optional<size_t> scheme_slot(uint16_t code);
// The scheme for a (key, padding, digest) combination, e.g. (RSA, PSS, SHA256) -> 0x0804; the
// digest is null for EdDSA and ML-DSA.
std::optional<uint16_t> scheme_for(KeyKind key, Padding padding, const algorithms::Digest* digest);

} // namespace keyless::tls
