// TLS SignatureScheme values (RFC 8446 §4.2.3) and what each means for a signer. What a message
// given to sign-TLS may be is in tls_shape.hpp.
#pragma once

#include "bytes.hpp"

#include <optional>
#include <string_view>

namespace keyless::tls {

enum class KeyKind { RSA, EC, Ed25519 };
enum class Padding { None, PKCS1, PSS };

struct SchemeInfo {
    uint16_t code;
    std::string_view name;
    KeyKind key;
    Padding padding;
    std::string_view digest; // empty for Ed25519
    std::string_view curve;  // the curve a TLS 1.3 ECDSA scheme is bound to, e.g. "P-256"
};

std::optional<SchemeInfo> scheme_info(uint16_t code);
// Every scheme has a fixed slot in [0, kSchemeCount), for per-scheme tables.
inline constexpr size_t kSchemeCount = 14;
std::optional<size_t> scheme_slot(uint16_t code);
// The scheme for a (key, padding, digest) combination, e.g. (RSA, PSS, "SHA256") -> 0x0804.
std::optional<uint16_t> scheme_for(KeyKind key, Padding padding, std::string_view digest);

} // namespace keyless::tls
