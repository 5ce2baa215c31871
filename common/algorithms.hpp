// The one table of signing algorithm facts both sides use: each digest keyless signs with, its
// size, and the gokeyless digest-signing opcode for each padding. TLS SignatureSchemes, which name
// these digests, are in tls_scheme.hpp.
#pragma once

#include "protocol.hpp"
#include "tls_scheme.hpp"

#include <optional>
#include <span>
#include <string_view>

namespace keyless::algorithms {

struct Digest {
    std::string_view name; // OpenSSL's name: "SHA256", "MD5-SHA1" (a NUL-terminated literal)
    size_t size;
    // The gokeyless opcodes that sign a digest of this kind; Opcode::Error where there is none.
    protocol::Opcode rsa_pkcs1, rsa_pss, ecdsa;

    const char* c_str() const { return name.data(); }
    protocol::Opcode opcode(tls::Padding padding) const {
        return padding == tls::Padding::PSS     ? rsa_pss
               : padding == tls::Padding::PKCS1 ? rsa_pkcs1
                                                : ecdsa;
    }
};

std::span<const Digest> digests();
// By name, ignoring case and dashes ("sha-256", "SHA256"); nullptr if keyless does not sign it.
const Digest* digest_named(std::string_view name);

// What a gokeyless digest-signing opcode means.
struct DigestSigning {
    const Digest* digest;
    tls::Padding padding; // None: ECDSA
};
std::optional<DigestSigning> digest_signing(uint8_t opcode);

} // namespace keyless::algorithms
