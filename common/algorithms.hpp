// The one table of signing algorithm facts both sides use: each digest keyless signs with, its
// size, the gokeyless digest-signing opcode for each padding, and its PKCS#11 hash and MGF1
// constants. TLS SignatureSchemes point at these entries (tls_scheme.hpp).
#pragma once

#include "protocol.hpp"

#include <optional>
#include <span>
#include <string_view>

namespace keyless::algorithms {

// How an RSA signature is padded; None for ECDSA, EdDSA and ML-DSA.
enum class Padding { None, PKCS1, PSS };
inline constexpr size_t kPaddingCount = static_cast<size_t>(Padding::PSS) + 1;

struct Digest {
    std::string_view name; // OpenSSL's name: "SHA256", "MD5-SHA1" (a NUL-terminated literal)
    size_t size;
    // The gokeyless opcodes that sign a digest of this kind; Opcode::Error where there is none.
    protocol::Opcode rsa_pkcs1, rsa_pss, ecdsa;
    // PKCS#11's CKM_SHA* hash mechanism and CKG_MGF1_SHA* generator for RSA-PSS (checked against
    // pkcs11.h where the keyserver uses them); 0 for MD5-SHA1, which has neither.
    unsigned long p11_hash, p11_mgf1;

    constexpr const char* c_str() const { return name.data(); }
    constexpr protocol::Opcode opcode(Padding padding) const {
        return padding == Padding::PSS ? rsa_pss : padding == Padding::PKCS1 ? rsa_pkcs1 : ecdsa;
    }
};

using protocol::Opcode;
inline constexpr Digest kDigests[] = {
    {"MD5-SHA1", 36, Opcode::RSASignMD5SHA1, Opcode::Error, Opcode::ECDSASignMD5SHA1, 0, 0},
    {"SHA1", 20, Opcode::RSASignSHA1, Opcode::Error, Opcode::ECDSASignSHA1, 0x220, 0x1},
    {"SHA224", 28, Opcode::RSASignSHA224, Opcode::Error, Opcode::ECDSASignSHA224, 0x255, 0x5},
    {"SHA256", 32, Opcode::RSASignSHA256, Opcode::RSAPSSSignSHA256, Opcode::ECDSASignSHA256, 0x250,
     0x2},
    {"SHA384", 48, Opcode::RSASignSHA384, Opcode::RSAPSSSignSHA384, Opcode::ECDSASignSHA384, 0x260,
     0x3},
    {"SHA512", 64, Opcode::RSASignSHA512, Opcode::RSAPSSSignSHA512, Opcode::ECDSASignSHA512, 0x270,
     0x4},
};

// The entry of an exact OpenSSL name, at compile time (a name not in the table does not compile).
consteval const Digest& entry(std::string_view name) {
    for (const auto& d : kDigests)
        if (d.name == name) return d;
    throw "keyless: no such digest in algorithms::kDigests";
}

std::span<const Digest> digests();
// The index of `digest` in kDigests (for per-digest caches); nullopt for a Digest not in it.
std::optional<size_t> digest_slot(const Digest& digest);
// By name, ignoring case and dashes ("sha-256", "SHA256"); nullptr if keyless does not sign it.
const Digest* digest_named(std::string_view name);

// What a gokeyless digest-signing opcode means.
struct DigestSigning {
    const Digest* digest;
    Padding padding; // None: ECDSA
};
std::optional<DigestSigning> digest_signing(uint8_t opcode);

} // namespace keyless::algorithms
