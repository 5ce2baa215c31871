// Structure-aware libFuzzer target for the sign-TLS shape classifier and the scheme check after
// it. The input picks a signature scheme and a signer key (kind, curve, allow_sha1), then a real
// TLS signature input (or raw bytes, or a DER structure) and a list of byte edits to apply to it.
// Whatever the classifier accepts must re-parse, by the independent checks below, as exactly one
// valid TLS structure of the kind it claimed, and never as a signed ASN.1 structure; and the
// scheme check must accept exactly what the independent table below allows for that structure
// and key (every RSA, ECDSA, EdDSA and ML-DSA scheme, each only for its own key kind).
#include "ossl.hpp"
#include "test_keys.hpp"
#include "tls_shape.hpp"

#include <openssl/core_names.h>
#include <openssl/ocsp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace keyless;
using keyless::test::encoded_public_key;
using keyless::test::generate;

namespace {

struct Templates {
    std::vector<Bytes> all;
    Templates() {
        for (const char* ctx :
             {"TLS 1.3, server CertificateVerify", "TLS 1.3, client CertificateVerify"}) {
            Bytes m(64, 0x20);
            m.insert(m.end(), ctx, ctx + std::strlen(ctx));
            m.push_back(0);
            m.insert(m.end(), 32, 0x5A);
            all.push_back(m);
        }
        struct G {
            uint16_t code;
            const char* alg;
            const char* group;
        };
        for (auto g : {G{0x17, "EC", "P-256"}, G{0x18, "EC", "P-384"}, G{0x19, "EC", "P-521"},
                       G{0x1D, "X25519", nullptr}, G{0x1E, "X448", nullptr}}) {
            auto key = generate(g.alg, g.group ? OSSL_PKEY_PARAM_GROUP_NAME : nullptr, g.group);
            Bytes share = encoded_public_key(key.get());
            Bytes m(64, 0x11);
            m.insert(m.end(),
                     {3, 0, static_cast<uint8_t>(g.code), static_cast<uint8_t>(share.size())});
            m.insert(m.end(), share.begin(), share.end());
            all.push_back(m);
        }
        auto dh = generate("DH", OSSL_PKEY_PARAM_GROUP_NAME, "ffdhe2048");
        Bytes m(64, 0x11);
        Bytes ys = ossl::bn_param(dh.get(), OSSL_PKEY_PARAM_PUB_KEY);
        ys.insert(ys.begin(), 256 - ys.size(), 0);
        for (const Bytes& v : {ossl::bn_param(dh.get(), OSSL_PKEY_PARAM_FFC_P),
                               ossl::bn_param(dh.get(), OSSL_PKEY_PARAM_FFC_G), ys}) {
            append_be16(m, static_cast<uint16_t>(v.size()));
            m.insert(m.end(), v.begin(), v.end());
        }
        all.push_back(m);
        // A DER SEQUENCE header: edits can grow it into anything.
        all.push_back(Bytes{0x30, 0x81, 0x80, 0xA0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01});
    }
};

// ---- the independent re-parse ----

bool is_signed_asn1(ByteView m) {
    for (auto item : {X509_CINF_it, X509_REQ_INFO_it, X509_CRL_INFO_it, OCSP_RESPDATA_it,
                      OCSP_REQINFO_it, PKCS7_ATTR_SIGN_it}) {
        const unsigned char* p = m.data();
        ASN1_VALUE* v = ASN1_item_d2i(nullptr, &p, static_cast<long>(m.size()), item());
        if (!v) continue;
        ASN1_item_free(v, item());
        if (p == m.data() + m.size()) return true; // the whole message is the structure
    }
    ERR_clear_error();
    return false;
}

bool is_tls13_cv(ByteView m, const char* context) {
    size_t prefix = 64 + std::strlen(context) + 1;
    if (m.size() != prefix + 32 && m.size() != prefix + 48) return false;
    for (size_t i = 0; i < 64; ++i)
        if (m[i] != 0x20) return false;
    return std::memcmp(m.data() + 64, context, std::strlen(context)) == 0 && m[prefix - 1] == 0;
}

bool is_ecdhe(ByteView m) {
    if (m.size() < 69 || m[64] != 3 || m[65] != 0) return false;
    size_t len = m[67];
    if (m.size() != 68 + len) return false;
    ByteView share = m.subspan(68);
    const char* group = m[66] == 0x17   ? "P-256"
                        : m[66] == 0x18 ? "P-384"
                        : m[66] == 0x19 ? "P-521"
                                        : nullptr;
    if (!group) {
        if (!(m[66] == 0x1D && len == 32) && !(m[66] == 0x1E && len == 56)) return false;
        return std::any_of(share.begin(), share.end(), [](uint8_t b) { return b != 0; });
    }
    // A different path than the classifier's: a public key import and OpenSSL's key check.
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group), 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                          const_cast<uint8_t*>(share.data()), share.size()),
        OSSL_PARAM_construct_end()};
    EVP_PKEY* raw = nullptr;
    if (share[0] != 0x04 || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        ERR_clear_error();
        return false;
    }
    ossl::Pkey key(raw);
    ossl::PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    bool ok = EVP_PKEY_public_check(check.get()) == 1;
    ERR_clear_error();
    return ok;
}

bool is_dhe(ByteView m, const std::string& group) {
    if (m.size() < 64) return false;
    size_t at = 64;
    std::vector<ByteView> v;
    for (int i = 0; i < 3; ++i) {
        if (m.size() < at + 2) return false;
        size_t len = load_be16(m, at);
        if (len == 0 || m.size() - at - 2 < len) return false;
        v.push_back(m.subspan(at + 2, len));
        at += 2 + len;
    }
    if (at != m.size()) return false;
    auto params = generate("DH", OSSL_PKEY_PARAM_GROUP_NAME, group.c_str());
    Bytes p = ossl::bn_param(params.get(), OSSL_PKEY_PARAM_FFC_P);
    Bytes g = ossl::bn_param(params.get(), OSSL_PKEY_PARAM_FFC_G);
    if (!std::equal(v[0].begin(), v[0].end(), p.begin(), p.end()) ||
        !std::equal(v[1].begin(), v[1].end(), g.begin(), g.end()) || v[2].size() != p.size())
        return false;
    ossl::Bn ys(BN_bin2bn(v[2].data(), static_cast<int>(v[2].size()), nullptr));
    ossl::Bn pm1(BN_bin2bn(p.data(), static_cast<int>(p.size()), nullptr));
    BN_sub_word(pm1.get(), 1);
    return BN_cmp(ys.get(), BN_value_one()) > 0 && BN_cmp(ys.get(), pm1.get()) < 0;
}

// ---- the independent scheme table (RFC 8446 §4.2.3, draft-ietf-tls-mldsa) ----

struct ExpectedScheme {
    uint16_t code;
    tls::KeyKind kind;
    const char* tls13_curve; // "" where TLS 1.3 allows it for any key of its kind
    bool tls13, tls12, sha1;
};

using KK = tls::KeyKind;
constexpr ExpectedScheme kExpected[] = {
    {0x0401, KK::RSA, "", false, true, false},     {0x0501, KK::RSA, "", false, true, false},
    {0x0601, KK::RSA, "", false, true, false},     {0x0201, KK::RSA, "", false, true, true},
    {0x0301, KK::RSA, "", false, false, false},    {0x0804, KK::RSA, "", true, true, false},
    {0x0805, KK::RSA, "", true, true, false},      {0x0806, KK::RSA, "", true, true, false},
    {0x0403, KK::EC, "P-256", true, true, false},  {0x0503, KK::EC, "P-384", true, true, false},
    {0x0603, KK::EC, "P-521", true, true, false},  {0x0203, KK::EC, "", false, true, true},
    {0x0303, KK::EC, "", false, false, false},     {0x0807, KK::Ed25519, "", true, true, false},
    {0x0808, KK::Ed448, "", true, true, false},    {0x0904, KK::MLDSA44, "", true, false, false},
    {0x0905, KK::MLDSA65, "", true, false, false}, {0x0906, KK::MLDSA87, "", true, false, false},
};
constexpr const char* kCurves[] = {"P-256", "P-384", "P-521", ""};

const ExpectedScheme* expected(uint16_t code) {
    for (const auto& e : kExpected)
        if (e.code == code) return &e;
    return nullptr;
}

bool expect_allowed(const ExpectedScheme& e, tls::ShapeKind shape, const tls::SignerKey& key,
                    bool allow_sha1) {
    if (e.kind != key.kind) return false;
    bool tls13 = shape == tls::ShapeKind::Tls13ServerCertificateVerify ||
                 shape == tls::ShapeKind::Tls13ClientCertificateVerify;
    if (tls13) return e.tls13 && (*e.tls13_curve == 0 || key.curve == e.tls13_curve);
    return (e.tls12 && !e.sha1) || (e.sha1 && allow_sha1);
}

// The scheme and signer the input asks for: a known scheme by index, or any 16-bit code.
struct Signer {
    uint16_t code;
    tls::SignerKey key;
    bool allow_sha1;
};
constexpr size_t kSignerBytes = 4;

Signer read_signer(const uint8_t* d) {
    constexpr size_t n = std::size(kExpected);
    uint16_t code = d[0] % (n + 1) < n ? kExpected[d[0] % (n + 1)].code
                                       : static_cast<uint16_t>(d[1] << 8 | d[2]);
    auto kind = tls::kAllKeyKinds[d[3] % std::size(tls::kAllKeyKinds)];
    const char* curve = kCurves[(d[3] >> 3) % std::size(kCurves)];
    return {code, {kind, curve}, (d[3] & 0x80) != 0};
}

void check_scheme(const tls::Shape& shape, const Signer& signer) {
    const ExpectedScheme* want = expected(signer.code);
    auto info = tls::scheme_info(signer.code);
    if (!want != !info) std::abort(); // both tables know the same codes
    if (!info) return;
    if (info->key != want->kind) std::abort();
    bool allowed = tls::scheme_problem(shape, *info, signer.key, signer.allow_sha1).empty();
    if (allowed != expect_allowed(*want, shape.kind, signer.key, signer.allow_sha1)) std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const Templates templates;
    if (size < kSignerBytes + 1) return 0;
    Signer signer = read_signer(data);
    data += kSignerBytes;
    size -= kSignerBytes;
    size_t pick = data[0] % (templates.all.size() + 1);
    Bytes m;
    size_t at = 1;
    if (pick == templates.all.size()) { // raw bytes
        m.assign(data + 1, data + size);
        at = size;
    } else {
        m = templates.all[pick];
    }
    // Edits: (kind, position, value) triples.
    for (; at + 3 <= size; at += 3) {
        size_t pos = m.empty() ? 0 : (size_t{data[at + 1]} * 7) % (m.size() + 1);
        uint8_t value = data[at + 2];
        switch (data[at] % 5) {
        case 0:
            if (pos < m.size()) m[pos] = value;
            break;
        case 1:
            m.insert(m.begin() + static_cast<long>(pos), value);
            break;
        case 2:
            if (pos < m.size()) m.erase(m.begin() + static_cast<long>(pos));
            break;
        case 3:
            m.resize(pos);
            break;
        default:
            if (pos < m.size()) m[pos] ^= static_cast<uint8_t>(1u << (value % 8));
            break;
        }
    }

    tls::Shape shape = tls::parse_shape(m);
    if (!shape.valid()) return 0;
    if (is_signed_asn1(m)) std::abort();
    bool dhe_claim = shape.kind == tls::ShapeKind::Tls12DheServerKeyExchange;
    bool server_cv = is_tls13_cv(m, "TLS 1.3, server CertificateVerify");
    bool client_cv = is_tls13_cv(m, "TLS 1.3, client CertificateVerify");
    bool ecdhe = is_ecdhe(m);
    bool dhe = is_dhe(m, dhe_claim ? shape.name.substr(shape.name.find(':') + 1) : "ffdhe2048");
    int kinds = server_cv + client_cv + ecdhe + dhe;
    using K = tls::ShapeKind;
    bool claimed = (shape.kind == K::Tls13ServerCertificateVerify && server_cv) ||
                   (shape.kind == K::Tls13ClientCertificateVerify && client_cv) ||
                   (shape.kind == K::Tls12EcdheServerKeyExchange && ecdhe) ||
                   (shape.kind == K::Tls12DheServerKeyExchange && dhe);
    if (!claimed || kinds != 1) std::abort();
    check_scheme(shape, signer);
    return 0;
}
