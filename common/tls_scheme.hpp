// TLS SignatureScheme values (RFC 8446 §4.2.3) and what each means for a signer, plus the check
// that a message has the shape of a TLS server signature input.
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
};

std::optional<SchemeInfo> scheme_info(uint16_t code);
// The scheme for a (key, padding, digest) combination, e.g. (RSA, PSS, "SHA256") -> 0x0804.
std::optional<uint16_t> scheme_for(KeyKind key, Padding padding, std::string_view digest);

enum class MessageShape {
    None,
    Tls13ServerCertificateVerify, // 64 x 0x20, context string, 0x00, transcript hash
    Tls12ServerKeyExchange,       // client_random, server_random, ECDHE or DHE params
};

// Exactly the two shapes a TLS server signs; anything else is MessageShape::None.
MessageShape classify_message(ByteView tbs);
std::string_view to_string(MessageShape shape);

} // namespace keyless::tls
