#include "tls_scheme.hpp"

#include <array>

namespace keyless::tls {

namespace {

constexpr const algorithms::Digest* kSha1 = &algorithms::entry("SHA1");
constexpr const algorithms::Digest* kSha224 = &algorithms::entry("SHA224");
constexpr const algorithms::Digest* kSha256 = &algorithms::entry("SHA256");
constexpr const algorithms::Digest* kSha384 = &algorithms::entry("SHA384");
constexpr const algorithms::Digest* kSha512 = &algorithms::entry("SHA512");

constexpr std::array kSchemes{
    SchemeInfo{0x0401, "rsa_pkcs1_sha256", KeyKind::RSA, Padding::PKCS1, kSha256, ""},
    SchemeInfo{0x0501, "rsa_pkcs1_sha384", KeyKind::RSA, Padding::PKCS1, kSha384, ""},
    SchemeInfo{0x0601, "rsa_pkcs1_sha512", KeyKind::RSA, Padding::PKCS1, kSha512, ""},
    SchemeInfo{0x0201, "rsa_pkcs1_sha1", KeyKind::RSA, Padding::PKCS1, kSha1, ""},
    SchemeInfo{0x0301, "rsa_pkcs1_sha224", KeyKind::RSA, Padding::PKCS1, kSha224, ""},
    SchemeInfo{0x0804, "rsa_pss_rsae_sha256", KeyKind::RSA, Padding::PSS, kSha256, ""},
    SchemeInfo{0x0805, "rsa_pss_rsae_sha384", KeyKind::RSA, Padding::PSS, kSha384, ""},
    SchemeInfo{0x0806, "rsa_pss_rsae_sha512", KeyKind::RSA, Padding::PSS, kSha512, ""},
    SchemeInfo{0x0403, "ecdsa_secp256r1_sha256", KeyKind::EC, Padding::None, kSha256, "P-256"},
    SchemeInfo{0x0503, "ecdsa_secp384r1_sha384", KeyKind::EC, Padding::None, kSha384, "P-384"},
    SchemeInfo{0x0603, "ecdsa_secp521r1_sha512", KeyKind::EC, Padding::None, kSha512, "P-521"},
    SchemeInfo{0x0203, "ecdsa_sha1", KeyKind::EC, Padding::None, kSha1, ""},
    SchemeInfo{0x0303, "ecdsa_sha224", KeyKind::EC, Padding::None, kSha224, ""},
    SchemeInfo{0x0807, "ed25519", KeyKind::Ed25519, Padding::None, nullptr, ""},
    SchemeInfo{0x0808, "ed448", KeyKind::Ed448, Padding::None, nullptr, ""},
    // FIPS 204 ML-DSA in TLS 1.3 (draft-ietf-tls-mldsa; OpenSSL 3.5's mldsa44/65/87).
    SchemeInfo{0x0904, "mldsa44", KeyKind::MLDSA44, Padding::None, nullptr, ""},
    SchemeInfo{0x0905, "mldsa65", KeyKind::MLDSA65, Padding::None, nullptr, ""},
    SchemeInfo{0x0906, "mldsa87", KeyKind::MLDSA87, Padding::None, nullptr, ""},
};

} // namespace

std::optional<SchemeInfo> scheme_info(uint16_t code) {
    for (const auto& s : kSchemes)
        if (s.code == code) return s;
    return std::nullopt;
}

static_assert(kSchemes.size() == kSchemeCount);

std::optional<size_t> scheme_slot(uint16_t code) {
    for (size_t i = 0; i < kSchemes.size(); ++i)
        if (kSchemes[i].code == code) return i;
    return std::nullopt;
}

std::optional<KeyKind> ml_dsa_of_oid(std::string_view oid) {
    for (KeyKind k : {KeyKind::MLDSA44, KeyKind::MLDSA65, KeyKind::MLDSA87})
        if (oid == whole_message_oid(k)) return k;
    return std::nullopt;
}

std::optional<uint16_t> scheme_for(KeyKind key, Padding padding, const algorithms::Digest* wanted) {
    for (const auto& s : kSchemes)
        if (s.key == key && s.padding == padding && s.digest == wanted) return s.code;
    return std::nullopt;
}

} // namespace keyless::tls
