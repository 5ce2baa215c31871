#include "tls_shape.hpp"

#include "ossl.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ocsp.h>
#include <openssl/pkcs7.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

namespace keyless::tls {

namespace {

using EcGroup = std::unique_ptr<EC_GROUP, ossl::Deleter<EC_GROUP_free>>;
using EcPoint = std::unique_ptr<EC_POINT, ossl::Deleter<EC_POINT_free>>;

constexpr size_t kRandoms = 64; // client_random || server_random
constexpr std::string_view kServerContext = "TLS 1.3, server CertificateVerify";
constexpr std::string_view kClientContext = "TLS 1.3, client CertificateVerify";

Shape refused(ShapeKind kind, std::string name, std::string problem) {
    return Shape{kind, std::move(name), std::move(problem)};
}

// ---- ASN.1: the signed formats a TLS input must never also be ----

struct SignedAsn1 {
    std::string_view name;
    const ASN1_ITEM* (*item)();
};

const SignedAsn1 kSignedAsn1[] = {
    {"x509-tbs-certificate", X509_CINF_it}, {"pkcs10-certification-request-info", X509_REQ_INFO_it},
    {"x509-tbs-crl", X509_CRL_INFO_it},     {"ocsp-response-data", OCSP_RESPDATA_it},
    {"ocsp-request-info", OCSP_REQINFO_it}, {"cms-signed-attributes", PKCS7_ATTR_SIGN_it},
};

// ---- TLS 1.3 CertificateVerify (RFC 8446 §4.4.3) ----

Shape tls13_certificate_verify(ByteView m) {
    // Only reached when the first 64 bytes are 0x20, which no other input starts with.
    ByteView rest = m.subspan(kRandoms);
    auto has_context = [&](std::string_view c) {
        return rest.size() > c.size() && std::memcmp(rest.data(), c.data(), c.size()) == 0;
    };
    bool server = has_context(kServerContext);
    if (!server && !has_context(kClientContext))
        return refused(ShapeKind::None, "not-tls",
                       "64 bytes of 0x20 without a TLS 1.3 CertificateVerify context string");
    Shape s{server ? ShapeKind::Tls13ServerCertificateVerify
                   : ShapeKind::Tls13ClientCertificateVerify,
            server ? "tls13-server-cv" : "tls13-client-cv",
            {}};
    size_t hash = rest.size() - kServerContext.size() - 1; // both contexts have the same length
    if (rest[kServerContext.size()] != 0x00)
        s.problem = "no 0x00 separator after the context string";
    else if (hash != 32 && hash != 48)
        s.problem = "transcript hash of " + std::to_string(hash) + " bytes (expected 32 or 48)";
    return s;
}

// ---- TLS 1.2 ServerKeyExchange with ECDHE (RFC 8422 §5.4) ----

struct NamedGroup {
    uint16_t code;
    std::string_view name;
    size_t share; // bytes: uncompressed point (0x04 || x || y) or raw X25519/X448 key
    int nid;      // NID_undef for X25519/X448 (no point to validate)
};

constexpr NamedGroup kGroups[] = {
    {0x0017, "secp256r1", 65, NID_X9_62_prime256v1},
    {0x0018, "secp384r1", 97, NID_secp384r1},
    {0x0019, "secp521r1", 133, NID_secp521r1},
    {0x001D, "x25519", 32, NID_undef},
    {0x001E, "x448", 56, NID_undef},
};

const NamedGroup* named_group(uint16_t code) {
    for (const auto& g : kGroups)
        if (g.code == code) return &g;
    return nullptr;
}

const EC_GROUP* ec_group(int nid) {
    // Built once and never changed: EC_GROUPs are read-only during point decoding, so every
    // thread may share them.
    static const std::array<EcGroup, 3> groups = {
        EcGroup(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)),
        EcGroup(EC_GROUP_new_by_curve_name(NID_secp384r1)),
        EcGroup(EC_GROUP_new_by_curve_name(NID_secp521r1))};
    for (const auto& g : groups)
        if (g && EC_GROUP_get_curve_name(g.get()) == nid) return g.get();
    return nullptr;
}

// A point of the group other than infinity, given uncompressed.
bool valid_point(int nid, ByteView share) {
    const EC_GROUP* group = ec_group(nid);
    if (!group || share.empty() || share[0] != 0x04) return false;
    EcPoint point(EC_POINT_new(group));
    ossl::ErrorScope errors; // oct2point reports an off-curve point on the error queue
    return point && EC_POINT_oct2point(group, point.get(), share.data(), share.size(), nullptr) &&
           EC_POINT_is_on_curve(group, point.get(), nullptr) == 1 &&
           !EC_POINT_is_at_infinity(group, point.get());
}

Shape tls12_ecdhe(ByteView p) {
    // ServerECDHParams: curve_type (3 = named_curve), NamedGroup, opaque point<1..255>
    if (p.size() < 4) return refused(ShapeKind::None, "not-tls", "ECDHE parameters truncated");
    const NamedGroup* g = named_group(load_be16(p, 1));
    if (!g)
        return refused(ShapeKind::Tls12EcdheServerKeyExchange, "tls12-ske-ecdhe",
                       "named group " + std::to_string(load_be16(p, 1)) +
                           " is not secp256r1/384r1/521r1, x25519 or x448");
    Shape s{ShapeKind::Tls12EcdheServerKeyExchange, "tls12-ske-ecdhe:" + std::string(g->name), {}};
    ByteView share = p.subspan(4);
    if (p[3] != g->share || share.size() != g->share)
        s.problem = "share of " + std::to_string(share.size()) + " bytes (length byte " +
                    std::to_string(p[3]) + "), " + std::string(g->name) + " needs " +
                    std::to_string(g->share);
    else if (g->nid != NID_undef && !valid_point(g->nid, share))
        s.problem = "share is not an uncompressed point on " + std::string(g->name);
    else if (g->nid == NID_undef &&
             std::all_of(share.begin(), share.end(), [](uint8_t b) { return b == 0; }))
        s.problem = "all-zero " + std::string(g->name) + " share";
    return s;
}

// ---- TLS 1.2 ServerKeyExchange with DHE (RFC 5246 §7.4.3, groups of RFC 7919 and 3526) ----

struct FfdheGroup {
    std::string name;
    Bytes p;
    Bytes g;
};

const std::vector<FfdheGroup>& ffdhe_groups() {
    // Taken once from OpenSSL's own copies of the primes; immutable afterwards. RFC 7919's
    // ffdhe groups, plus RFC 3526's MODP groups because OpenSSL 3.0's automatic DH parameters
    // (SSL_CTX_set_dh_auto, the default of s_server) are those.
    static const std::vector<FfdheGroup> groups = [] {
        std::vector<FfdheGroup> out;
        ossl::ErrorScope errors;
        for (const char* name : {"ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192",
                                 "modp_2048", "modp_3072", "modp_4096", "modp_6144", "modp_8192"}) {
            ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr));
            OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                                    const_cast<char*>(name), 0),
                                   OSSL_PARAM_construct_end()};
            EVP_PKEY* raw = nullptr;
            if (!ctx || EVP_PKEY_paramgen_init(ctx.get()) <= 0 ||
                EVP_PKEY_CTX_set_params(ctx.get(), params) <= 0 ||
                EVP_PKEY_paramgen(ctx.get(), &raw) <= 0)
                continue;
            ossl::Pkey pkey(raw);
            FfdheGroup group{name, ossl::bn_param(raw, OSSL_PKEY_PARAM_FFC_P),
                             ossl::bn_param(raw, OSSL_PKEY_PARAM_FFC_G)};
            if (!group.p.empty() && !group.g.empty()) out.push_back(std::move(group));
        }
        return out;
    }();
    return groups;
}

// Reads one u16-length-prefixed non-empty vector at `at`; nullopt if it does not fit.
std::optional<ByteView> vector16(ByteView p, size_t& at) {
    if (p.size() - at < 2) return std::nullopt;
    size_t len = load_be16(p, at);
    if (len == 0 || len > p.size() - at - 2) return std::nullopt;
    ByteView v = p.subspan(at + 2, len);
    at += 2 + len;
    return v;
}

bool equal(ByteView a, ByteView b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// 1 < y < p - 1, with y and p big-endian of the same length.
bool in_open_range(ByteView y, ByteView p) {
    Bytes p_minus_1(p.begin(), p.end());
    for (size_t i = p_minus_1.size(); i-- > 0;)
        if (p_minus_1[i]-- != 0) break; // p is odd, so no borrow past the last byte in practice
    bool above_one =
        std::any_of(y.begin(), y.end() - 1, [](uint8_t b) { return b != 0; }) || y.back() > 1;
    return above_one &&
           std::lexicographical_compare(y.begin(), y.end(), p_minus_1.begin(), p_minus_1.end());
}

Shape tls12_dhe(ByteView p) {
    // ServerDHParams: dh_p<1..2^16-1>, dh_g<1..2^16-1>, dh_Ys<1..2^16-1>
    size_t at = 0;
    auto dh_p = vector16(p, at);
    auto dh_g = dh_p ? vector16(p, at) : std::nullopt;
    auto dh_ys = dh_g ? vector16(p, at) : std::nullopt;
    if (!dh_ys || at != p.size())
        return refused(ShapeKind::None, "not-tls",
                       "neither TLS 1.2 ECDHE nor DHE parameters follow the randoms");
    for (const auto& group : ffdhe_groups()) {
        if (!equal(*dh_p, group.p) || !equal(*dh_g, group.g)) continue;
        Shape s{ShapeKind::Tls12DheServerKeyExchange, "tls12-ske-dhe:" + group.name, {}};
        if (dh_ys->size() != group.p.size())
            s.problem = "Ys of " + std::to_string(dh_ys->size()) + " bytes, " + group.name +
                        " needs " + std::to_string(group.p.size());
        else if (!in_open_range(*dh_ys, group.p))
            s.problem = "Ys is not between 1 and p-1";
        return s;
    }
    return refused(ShapeKind::Tls12DheServerKeyExchange, "tls12-ske-dhe",
                   "p and g are not an RFC 7919 ffdhe or RFC 3526 MODP group (" +
                       std::to_string(dh_p->size()) + "-byte p)");
}

bool is_sha1(const SchemeInfo& s) {
    return s.digest == &algorithms::entry("SHA1");
}

} // namespace

std::string_view signed_asn1_structure(ByteView m) {
    // Every structure listed is a SEQUENCE or SET: universal class, tag 16 or 17, with or without
    // the constructed bit (OpenSSL's parser takes both), or in the long tag form (first byte
    // 0x1F/0x3F, which BER allows for any number). Anything else skips the parsers.
    if (m.empty() || (m[0] & 0xC0) != 0) return {};
    uint8_t tag = m[0] & 0x1F;
    if (tag != 0x10 && tag != 0x11 && tag != 0x1F) return {};
    ossl::ErrorScope errors;
    for (const auto& t : kSignedAsn1) {
        const unsigned char* p = m.data();
        ASN1_VALUE* v = ASN1_item_d2i(nullptr, &p, static_cast<long>(m.size()), t.item());
        if (!v) continue;
        ASN1_item_free(v, t.item());
        // Each of these formats signs exactly the encoding of its structure, so only a message
        // that is one, to its last byte, could stand in for it. A structure that merely starts
        // the message does not: a client random starting 0x31 0x00 (an empty SET of CMS
        // attributes) made one TLS 1.2 ServerKeyExchange in about 30,000 look like one.
        if (p == m.data() + m.size()) return t.name;
    }
    return {};
}

Shape parse_shape(ByteView m) {
    if (auto asn1 = signed_asn1_structure(m); !asn1.empty())
        return refused(ShapeKind::None, "asn1:" + std::string(asn1),
                       "message is a DER " + std::string(asn1) + ", not a TLS signature input");
    if (m.size() <= kRandoms)
        return refused(ShapeKind::None, "not-tls", "too short for a TLS signature input");
    if (std::all_of(m.begin(), m.begin() + kRandoms, [](uint8_t b) { return b == 0x20; }))
        return tls13_certificate_verify(m);
    ByteView params = m.subspan(kRandoms);
    if (params[0] == 3) return tls12_ecdhe(params);
    return tls12_dhe(params);
}

std::string scheme_problem(const Shape& shape, const SchemeInfo& scheme, const SignerKey& key,
                           bool allow_sha1) {
    if (scheme.key != key.kind) return std::string(scheme.name) + " does not fit this key type";
    switch (shape.kind) {
    case ShapeKind::Tls13ServerCertificateVerify:
    case ShapeKind::Tls13ClientCertificateVerify:
        if (scheme.key == KeyKind::RSA && scheme.padding != Padding::PSS)
            return std::string(scheme.name) + " is not a TLS 1.3 scheme (RSA needs rsa_pss_rsae)";
        if (scheme.key == KeyKind::EC && (scheme.curve.empty() || scheme.curve != key.curve))
            return std::string(scheme.name) + " is not the TLS 1.3 scheme of a " +
                   std::string(key.curve) + " key";
        return {};
    case ShapeKind::Tls12EcdheServerKeyExchange:
    case ShapeKind::Tls12DheServerKeyExchange:
        if (is_ml_dsa(scheme.key)) return std::string(scheme.name) + " is a TLS 1.3 scheme only";
        if (is_sha1(scheme))
            return allow_sha1 ? "" : std::string(scheme.name) + " needs allow_sha1 on the key";
        if (scheme.digest != &algorithms::entry("SHA256") &&
            scheme.digest != &algorithms::entry("SHA384") &&
            scheme.digest != &algorithms::entry("SHA512") && !signs_whole_messages(scheme.key))
            return std::string(scheme.name) + " is not allowed (SHA-256, SHA-384 or SHA-512)";
        return {};
    case ShapeKind::None:
        break;
    }
    return "not a TLS signature input";
}

} // namespace keyless::tls
