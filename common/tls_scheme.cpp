#include "tls_scheme.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <string>

namespace keyless::tls {

namespace {

constexpr std::array kSchemes{
    SchemeInfo{0x0401, "rsa_pkcs1_sha256", KeyKind::RSA, Padding::PKCS1, "SHA256"},
    SchemeInfo{0x0501, "rsa_pkcs1_sha384", KeyKind::RSA, Padding::PKCS1, "SHA384"},
    SchemeInfo{0x0601, "rsa_pkcs1_sha512", KeyKind::RSA, Padding::PKCS1, "SHA512"},
    SchemeInfo{0x0201, "rsa_pkcs1_sha1", KeyKind::RSA, Padding::PKCS1, "SHA1"},
    SchemeInfo{0x0301, "rsa_pkcs1_sha224", KeyKind::RSA, Padding::PKCS1, "SHA224"},
    SchemeInfo{0x0804, "rsa_pss_rsae_sha256", KeyKind::RSA, Padding::PSS, "SHA256"},
    SchemeInfo{0x0805, "rsa_pss_rsae_sha384", KeyKind::RSA, Padding::PSS, "SHA384"},
    SchemeInfo{0x0806, "rsa_pss_rsae_sha512", KeyKind::RSA, Padding::PSS, "SHA512"},
    SchemeInfo{0x0403, "ecdsa_secp256r1_sha256", KeyKind::EC, Padding::None, "SHA256"},
    SchemeInfo{0x0503, "ecdsa_secp384r1_sha384", KeyKind::EC, Padding::None, "SHA384"},
    SchemeInfo{0x0603, "ecdsa_secp521r1_sha512", KeyKind::EC, Padding::None, "SHA512"},
    SchemeInfo{0x0203, "ecdsa_sha1", KeyKind::EC, Padding::None, "SHA1"},
    SchemeInfo{0x0303, "ecdsa_sha224", KeyKind::EC, Padding::None, "SHA224"},
    SchemeInfo{0x0807, "ed25519", KeyKind::Ed25519, Padding::None, ""},
};

bool same_digest(std::string_view a, std::string_view b) {
    auto norm = [](std::string_view s) {
        std::string out;
        for (char c : s)
            if (c != '-') out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return out;
    };
    return norm(a) == norm(b);
}

constexpr std::string_view kServerContext = "TLS 1.3, server CertificateVerify";

bool is_tls13_certificate_verify(ByteView m) {
    constexpr size_t prefix = 64 + kServerContext.size() + 1;
    if (m.size() != prefix + 32 && m.size() != prefix + 48) // SHA-256 or SHA-384 transcript
        return false;
    if (!std::all_of(m.begin(), m.begin() + 64, [](uint8_t b) { return b == 0x20; })) return false;
    if (std::memcmp(m.data() + 64, kServerContext.data(), kServerContext.size()) != 0) return false;
    return m[64 + kServerContext.size()] == 0x00;
}

// The uncompressed point or raw key size of each named group a TLS 1.2 ECDHE share can use.
std::optional<size_t> ecdhe_share_size(uint16_t group) {
    switch (group) {
    case 0x0017:
        return 65; // secp256r1
    case 0x0018:
        return 97; // secp384r1
    case 0x0019:
        return 133; // secp521r1
    case 0x001D:
        return 32; // x25519
    case 0x001E:
        return 56; // x448
    default:
        return std::nullopt;
    }
}

bool is_ecdhe_params(ByteView p);
bool is_dhe_params(ByteView p);

bool is_tls12_server_key_exchange(ByteView m) {
    constexpr size_t randoms = 64;
    if (m.size() <= randoms) return false;
    ByteView p = m.subspan(randoms);
    return is_ecdhe_params(p) || is_dhe_params(p);
}

// ServerECDHParams: curve_type named_curve(3), NamedCurve, opaque point<1..255>
bool is_ecdhe_params(ByteView p) {
    if (p.size() < 5 || p[0] != 3) return false;
    auto expected = ecdhe_share_size(load_be16(p, 1));
    if (!expected || p[3] != *expected || p.size() != 4 + *expected) return false;
    bool nist = load_be16(p, 1) <= 0x0019;
    return !nist || p[4] == 0x04; // NIST curves: uncompressed points only
}

bool is_dhe_params(ByteView p) {
    // ServerDHParams: dh_p<1..2^16-1>, dh_g<1..2^16-1>, dh_Ys<1..2^16-1>
    size_t at = 0;
    for (int field = 0; field < 3; ++field) {
        if (p.size() - at < 2) return false;
        size_t len = load_be16(p, at);
        if (len == 0 || len > p.size() - at - 2) return false;
        at += 2 + len;
    }
    return at == p.size();
}

} // namespace

std::optional<SchemeInfo> scheme_info(uint16_t code) {
    for (const auto& s : kSchemes)
        if (s.code == code) return s;
    return std::nullopt;
}

std::optional<uint16_t> scheme_for(KeyKind key, Padding padding, std::string_view digest) {
    for (const auto& s : kSchemes)
        if (s.key == key && s.padding == padding && same_digest(s.digest, digest)) return s.code;
    return std::nullopt;
}

MessageShape classify_message(ByteView tbs) {
    if (is_tls13_certificate_verify(tbs)) return MessageShape::Tls13ServerCertificateVerify;
    if (is_tls12_server_key_exchange(tbs)) return MessageShape::Tls12ServerKeyExchange;
    return MessageShape::None;
}

std::string_view to_string(MessageShape shape) {
    switch (shape) {
    case MessageShape::Tls13ServerCertificateVerify:
        return "tls13-certificate-verify";
    case MessageShape::Tls12ServerKeyExchange:
        return "tls12-server-key-exchange";
    case MessageShape::None:
        break;
    }
    return "not-tls";
}

} // namespace keyless::tls
