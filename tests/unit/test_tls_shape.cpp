// The sign-TLS shape classifier: every input a real OpenSSL 3.0 handshake signs is accepted, and
// nothing else, in particular no DER structure that another format signs.
#include "test_keys.hpp"
#include "tls_shape.hpp"

#include "catch.hpp"
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <map>
#include <optional>

using namespace keyless;
using keyless::test::encoded_public_key;
using keyless::test::generate;
using keyless::test::self_signed;
using tls::ShapeKind;

namespace {

Bytes random_bytes(size_t n) {
    Bytes b(n);
    RAND_bytes(b.data(), static_cast<int>(n));
    return b;
}

Bytes tls13_cv(std::string_view context, size_t hash_len) {
    Bytes m(64, 0x20);
    for (char c : context) // (not insert: g++ 12 reports a false -Warray-bounds for it)
        m.push_back(static_cast<uint8_t>(c));
    m.push_back(0);
    Bytes hash = random_bytes(hash_len);
    m.insert(m.end(), hash.begin(), hash.end());
    return m;
}

Bytes ecdhe(uint16_t group, const Bytes& share) {
    Bytes m = random_bytes(64);
    m.insert(m.end(), {3, static_cast<uint8_t>(group >> 8), static_cast<uint8_t>(group),
                       static_cast<uint8_t>(share.size())});
    m.insert(m.end(), share.begin(), share.end());
    return m;
}

void append_vector16(Bytes& m, const Bytes& v) {
    append_be16(m, static_cast<uint16_t>(v.size()));
    m.insert(m.end(), v.begin(), v.end());
}

ossl::Pkey ffdhe(const char* group) {
    return generate("DH", OSSL_PKEY_PARAM_GROUP_NAME, group);
}

Bytes dhe(const Bytes& p, const Bytes& g, const Bytes& ys) {
    Bytes m = random_bytes(64);
    append_vector16(m, p);
    append_vector16(m, g);
    append_vector16(m, ys);
    return m;
}

const tls::SchemeInfo& scheme(uint16_t code) {
    static std::map<uint16_t, tls::SchemeInfo> cache;
    return cache.emplace(code, *tls::scheme_info(code)).first->second;
}

std::string problem(const Bytes& m, uint16_t code, tls::SignerKey key, bool sha1 = false) {
    return tls::scheme_problem(tls::parse_shape(m), scheme(code), key, sha1);
}

constexpr tls::SignerKey kRsa{tls::KeyKind::RSA, ""};
constexpr tls::SignerKey kP256{tls::KeyKind::EC, "P-256"};
constexpr tls::SignerKey kP384{tls::KeyKind::EC, "P-384"};
constexpr tls::SignerKey kEd25519{tls::KeyKind::Ed25519, ""};
constexpr tls::SignerKey kEd448{tls::KeyKind::Ed448, ""};
constexpr tls::SignerKey kMlDsa44{tls::KeyKind::MLDSA44, ""};
constexpr tls::SignerKey kMlDsa65{tls::KeyKind::MLDSA65, ""};
constexpr tls::SignerKey kMlDsa87{tls::KeyKind::MLDSA87, ""};

// ---- a tiny DER writer, to build hostile structures byte by byte ----

Bytes der(uint8_t tag, const Bytes& content) {
    Bytes out{tag};
    size_t n = content.size();
    if (n < 0x80) {
        out.push_back(static_cast<uint8_t>(n));
    } else if (n < 0x100) {
        out.insert(out.end(), {0x81, static_cast<uint8_t>(n)});
    } else {
        out.insert(out.end(), {0x82, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
    }
    out.insert(out.end(), content.begin(), content.end());
    return out;
}

Bytes join(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

// The DER an OpenSSL i2d function writes for `obj`.
template <typename T> Bytes der_encoded(T* obj, int (*i2d)(T*, unsigned char**)) {
    unsigned char* buf = nullptr;
    int len = i2d(obj, &buf);
    Bytes out(buf, buf + std::max(len, 0));
    OPENSSL_free(buf);
    return out;
}

Bytes spki_of(EVP_PKEY* key) {
    return der_encoded<const EVP_PKEY>(key, i2d_PUBKEY);
}

// A TBSCertificate (a CA certificate for the attacker's Ed25519 key) whose bytes after the first
// 64 also read as three u16-length-prefixed vectors: what the old, loose DHE check accepted.
Bytes tbs_certificate_disguised_as_dhe(EVP_PKEY* attacker_key) {
    size_t serial_at = 0; // where the serial's value starts in the message
    auto build = [&](uint16_t len1) {
        Bytes serial(64, 0x11); // it covers bytes 64-65: the first DHE length is in here
        serial[0] = 0x01;
        if (serial_at) {
            serial[64 - serial_at] = static_cast<uint8_t>(len1 >> 8);
            serial[65 - serial_at] = static_cast<uint8_t>(len1);
        }
        Bytes utc = {'2', '6', '0', '1', '0', '1', '0', '0', '0', '0', '0', '0', 'Z'};
        Bytes ext_value = {0x00, 0x01, 0x02, 0x00, 0x01, 0x05}; // "g" = 2, "Ys" = 5
        Bytes extension = der(0x30, join({der(0x06, {0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37}),
                                          der(0x04, ext_value)}));
        return der(0x30, join({der(0xA0, der(0x02, {0x02})), der(0x02, serial),
                               der(0x30, der(0x06, {0x2B, 0x65, 0x70})), der(0x30, {}),
                               der(0x30, join({der(0x17, utc), der(0x17, utc)})), der(0x30, {}),
                               spki_of(attacker_key), der(0xA3, der(0x30, extension))}));
    };
    Bytes probe = build(0);
    Bytes serial_header = {0x02, 0x40, 0x01};
    serial_at = static_cast<size_t>(
        std::search(probe.begin(), probe.end(), serial_header.begin(), serial_header.end()) -
        probe.begin() + 2);
    // p runs from byte 66 to where "g" starts, the last 6 bytes.
    return build(static_cast<uint16_t>(probe.size() - 6 - 66));
}

// The old check: after 64 bytes, three non-empty u16 vectors that end exactly at the end.
bool loose_dhe(const Bytes& m) {
    size_t at = 64;
    for (int i = 0; i < 3; ++i) {
        if (m.size() < at + 2) return false;
        size_t len = load_be16(m, at);
        if (len == 0 || m.size() - at - 2 < len) return false;
        at += 2 + len;
    }
    return at == m.size();
}

} // namespace

TEST_CASE("TLS 1.3 CertificateVerify: exact prefix, 32/48-byte hash, TLS 1.3 schemes only") {
    auto server = tls::parse_shape(tls13_cv("TLS 1.3, server CertificateVerify", 32));
    CHECK(server.valid());
    CHECK(server.kind == ShapeKind::Tls13ServerCertificateVerify);
    CHECK(server.name == "tls13-server-cv");
    CHECK(tls::parse_shape(tls13_cv("TLS 1.3, server CertificateVerify", 48)).valid());
    auto client = tls::parse_shape(tls13_cv("TLS 1.3, client CertificateVerify", 48));
    CHECK(client.valid());
    CHECK(client.kind == ShapeKind::Tls13ClientCertificateVerify);

    CHECK_FALSE(tls::parse_shape(tls13_cv("TLS 1.3, server CertificateVerify", 20)).valid());
    CHECK_FALSE(tls::parse_shape(tls13_cv("TLS 1.3, server CertificateVerify", 64)).valid());
    CHECK_FALSE(tls::parse_shape(tls13_cv("TLS 1.3, other! CertificateVerify", 32)).valid());
    Bytes no_zero = tls13_cv("TLS 1.3, server CertificateVerify", 32);
    no_zero[64 + 33] = 0x01;
    CHECK_FALSE(tls::parse_shape(no_zero).valid());

    Bytes cv = tls13_cv("TLS 1.3, server CertificateVerify", 32);
    CHECK(problem(cv, 0x0804, kRsa).empty()); // rsa_pss_rsae_sha256
    CHECK(problem(cv, 0x0806, kRsa).empty());
    CHECK_FALSE(problem(cv, 0x0401, kRsa).empty()); // rsa_pkcs1_sha256 is TLS 1.2 only
    CHECK_FALSE(problem(cv, 0x0201, kRsa).empty()); // rsa_pkcs1_sha1
    CHECK(problem(cv, 0x0403, kP256).empty());
    CHECK_FALSE(problem(cv, 0x0503, kP256).empty()); // the P-384 scheme on a P-256 key
    CHECK_FALSE(problem(cv, 0x0203, kP256).empty()); // ecdsa_sha1
    CHECK(problem(cv, 0x0503, kP384).empty());
    CHECK(problem(cv, 0x0807, kEd25519).empty());
    CHECK_FALSE(problem(cv, 0x0403, kRsa).empty()); // scheme of another key type
    // Ed448 and ML-DSA: each scheme for its own key (an ML-DSA parameter set is a key type).
    CHECK(problem(cv, 0x0808, kEd448).empty());
    CHECK_FALSE(problem(cv, 0x0807, kEd448).empty());
    CHECK_FALSE(problem(cv, 0x0808, kEd25519).empty());
    CHECK(problem(cv, 0x0904, kMlDsa44).empty());
    CHECK(problem(cv, 0x0905, kMlDsa65).empty());
    CHECK(problem(cv, 0x0906, kMlDsa87).empty());
    CHECK_FALSE(problem(cv, 0x0904, kMlDsa65).empty());
    CHECK_FALSE(problem(cv, 0x0906, kMlDsa44).empty());
    CHECK_FALSE(problem(cv, 0x0905, kP256).empty());    // ML-DSA scheme on an EC key
    CHECK_FALSE(problem(cv, 0x0403, kMlDsa65).empty()); // and the reverse
    CHECK_FALSE(problem(cv, 0x0804, kMlDsa65).empty());
    for (uint16_t code : std::initializer_list<uint16_t>{0x0808, 0x0904, 0x0905, 0x0906}) {
        auto info = tls::scheme_info(code);
        REQUIRE(info);
        CHECK(info->digest == nullptr); // whole messages, no pre-hash
        CHECK(tls::signs_whole_messages(info->key));
        CHECK(tls::scheme_slot(code));
    }
    CHECK(tls::scheme_info(0x0905)->name == "mldsa65");
}

TEST_CASE("TLS 1.2 ECDHE: named group, exact share size, a point on the curve") {
    struct Case {
        uint16_t code;
        const char* alg;
        const char* group;
        const char* name;
    };
    for (auto c : {Case{0x0017, "EC", "P-256", "tls12-ske-ecdhe:secp256r1"},
                   Case{0x0018, "EC", "P-384", "tls12-ske-ecdhe:secp384r1"},
                   Case{0x0019, "EC", "P-521", "tls12-ske-ecdhe:secp521r1"},
                   Case{0x001D, "X25519", nullptr, "tls12-ske-ecdhe:x25519"},
                   Case{0x001E, "X448", nullptr, "tls12-ske-ecdhe:x448"}}) {
        INFO(c.name);
        auto key = generate(c.alg, c.group ? OSSL_PKEY_PARAM_GROUP_NAME : nullptr, c.group);
        Bytes share = encoded_public_key(key.get());
        auto shape = tls::parse_shape(ecdhe(c.code, share));
        CHECK(shape.valid());
        CHECK(shape.kind == ShapeKind::Tls12EcdheServerKeyExchange);
        CHECK(shape.name == c.name);

        Bytes trailing = ecdhe(c.code, share);
        trailing.push_back(0);
        CHECK_FALSE(tls::parse_shape(trailing).valid());
        Bytes short_share(share.begin(), share.end() - 1);
        CHECK_FALSE(tls::parse_shape(ecdhe(c.code, short_share)).valid());
        CHECK_FALSE(tls::parse_shape(ecdhe(c.code, Bytes(share.size(), 0))).valid());
    }

    SECTION("points off the curve, compressed points and unknown groups are refused") {
        Bytes off_curve = encoded_public_key(generate("EC", "group", "P-256").get());
        off_curve[64] ^= 0x01; // y changed: no longer on the curve
        auto shape = tls::parse_shape(ecdhe(0x0017, off_curve));
        CHECK_FALSE(shape.valid());
        CHECK(shape.problem.find("not an uncompressed point on secp256r1") != std::string::npos);
        Bytes junk(65, 0x5A);
        junk[0] = 0x04; // any 65 bytes starting 0x04: accepted before
        CHECK_FALSE(tls::parse_shape(ecdhe(0x0017, junk)).valid());
        Bytes compressed(33, 0x01);
        compressed[0] = 0x02;
        CHECK_FALSE(tls::parse_shape(ecdhe(0x0017, compressed)).valid());
        CHECK_FALSE(tls::parse_shape(ecdhe(0x0042, Bytes(65, 0x04))).valid());
        Bytes wrong_curve_type = ecdhe(0x001D, random_bytes(32));
        wrong_curve_type[64] = 1; // explicit_prime: never
        CHECK_FALSE(tls::parse_shape(wrong_curve_type).valid());
    }

    SECTION("schemes: SHA-2 by default, SHA-1 only when allowed, never SHA-224") {
        Bytes m = ecdhe(0x001D, encoded_public_key(generate("X25519", nullptr, nullptr).get()));
        CHECK(problem(m, 0x0401, kRsa).empty());
        CHECK(problem(m, 0x0804, kRsa).empty());
        CHECK(problem(m, 0x0601, kRsa).empty());
        CHECK(problem(m, 0x0403, kP384).empty()); // TLS 1.2 ECDSA is not bound to the curve
        CHECK(problem(m, 0x0807, kEd25519).empty());
        CHECK(problem(m, 0x0808, kEd448).empty()); // RFC 8422: EdDSA in TLS 1.2 too
        CHECK_THAT(problem(m, 0x0905, kMlDsa65), match::contains("TLS 1.3 scheme only"));
        CHECK_FALSE(problem(m, 0x0201, kRsa).empty());
        CHECK(problem(m, 0x0201, kRsa, true).empty());
        CHECK_FALSE(problem(m, 0x0203, kP256).empty());
        CHECK(problem(m, 0x0203, kP256, true).empty());
        CHECK_FALSE(problem(m, 0x0301, kRsa, true).empty()); // SHA-224
    }
}

TEST_CASE("TLS 1.2 DHE: RFC 7919/3526 groups byte for byte, 1 < Ys < p-1 of p's length") {
    auto params = ffdhe("ffdhe2048");
    Bytes p = ossl::bn_param(params.get(), OSSL_PKEY_PARAM_FFC_P);
    Bytes g = ossl::bn_param(params.get(), OSSL_PKEY_PARAM_FFC_G);
    Bytes ys = ossl::bn_param(params.get(), OSSL_PKEY_PARAM_PUB_KEY);
    ys.insert(ys.begin(), p.size() - ys.size(), 0); // TLS pads Ys to p's length
    auto shape = tls::parse_shape(dhe(p, g, ys));
    CHECK(shape.valid());
    CHECK(shape.kind == ShapeKind::Tls12DheServerKeyExchange);
    CHECK(shape.name == "tls12-ske-dhe:ffdhe2048");
    CHECK(problem(dhe(p, g, ys), 0x0401, kRsa).empty());

    Bytes one(p.size(), 0);
    one.back() = 1;
    CHECK_FALSE(tls::parse_shape(dhe(p, g, one)).valid());
    Bytes p_minus_1 = p;
    p_minus_1.back() ^= 1;
    CHECK_FALSE(tls::parse_shape(dhe(p, g, p_minus_1)).valid());
    CHECK_FALSE(tls::parse_shape(dhe(p, g, p)).valid());
    CHECK_FALSE(tls::parse_shape(dhe(p, g, Bytes(ys.begin() + 1, ys.end()))).valid());
    Bytes other_p = p;
    other_p[100] ^= 0x10;
    CHECK_FALSE(tls::parse_shape(dhe(other_p, g, ys)).valid());
    CHECK_FALSE(tls::parse_shape(dhe({0x17}, {0x02}, {0x05})).valid()); // 1-byte "group"
    CHECK_FALSE(tls::parse_shape(dhe(random_bytes(50'000), {0x02}, {0x05})).valid());
    CHECK(tls::parse_shape(dhe(ossl::bn_param(ffdhe("ffdhe3072").get(), OSSL_PKEY_PARAM_FFC_P), g,
                               Bytes(384, 0x42)))
              .name == "tls12-ske-dhe:ffdhe3072");
}

TEST_CASE("DER structures other formats sign are never TLS inputs") {
    auto attacker = generate("ED25519", nullptr, nullptr);

    SECTION("a TBSCertificate that the old DHE check accepted") {
        Bytes tbs = tbs_certificate_disguised_as_dhe(attacker.get());
        REQUIRE(loose_dhe(tbs)); // what the old classifier took for DHE parameters
        const unsigned char* p = tbs.data();
        X509_CINF* cinf = d2i_X509_CINF(nullptr, &p, static_cast<long>(tbs.size()));
        REQUIRE(cinf); // it really is a certificate body
        X509_CINF_free(cinf);
        auto shape = tls::parse_shape(tbs);
        CHECK_FALSE(shape.valid());
        CHECK(shape.name == "asn1:x509-tbs-certificate");
    }

    SECTION("real TBSCertificate, CSR and CRL bodies") {
        auto cert = self_signed(attacker.get(), "Attacker CA");
        Bytes tbs = der_encoded(cert.get(), i2d_re_X509_tbs);
        CHECK(tls::parse_shape(tbs).name == "asn1:x509-tbs-certificate");
        // The same in BER's long tag form (0x3F 0x10 for SEQUENCE), which OpenSSL also parses:
        // the fuzz target found a TLS-shaped message that does this.
        Bytes long_form = {0x3F, 0x10};
        long_form.insert(long_form.end(), tbs.begin() + 1, tbs.end());
        CHECK(tls::parse_shape(long_form).name == "asn1:x509-tbs-certificate");

        std::unique_ptr<X509_REQ, ossl::Deleter<X509_REQ_free>> req(X509_REQ_new());
        X509_REQ_set_pubkey(req.get(), attacker.get());
        X509_REQ_sign(req.get(), attacker.get(), nullptr);
        CHECK(tls::parse_shape(der_encoded(req.get(), i2d_re_X509_REQ_tbs)).name ==
              "asn1:pkcs10-certification-request-info");

        std::unique_ptr<X509_CRL, ossl::Deleter<X509_CRL_free>> crl(X509_CRL_new());
        X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(cert.get()));
        X509_CRL_set1_lastUpdate(crl.get(), X509_get0_notBefore(cert.get()));
        X509_CRL_sign(crl.get(), attacker.get(), nullptr);
        CHECK(tls::parse_shape(der_encoded(crl.get(), i2d_re_X509_CRL_tbs)).name ==
              "asn1:x509-tbs-crl");
    }

    SECTION("only a message that is a structure to its last byte, not one that starts with one") {
        // A client random is the client's choice: starting 0x31 0x00 (an empty SET, which parses
        // as CMS signed attributes) or 0x11 0x00 it must not turn a real ServerKeyExchange away.
        auto key = generate("EC", OSSL_PKEY_PARAM_GROUP_NAME, "P-384");
        for (uint8_t first : {uint8_t{0x31}, uint8_t{0x11}, uint8_t{0x30}}) {
            Bytes m = ecdhe(0x0018, encoded_public_key(key.get()));
            m[0] = first;
            m[1] = 0x00;
            INFO("client random starting " << int(first) << " 00");
            CHECK(tls::signed_asn1_structure(m).empty());
            CHECK(tls::parse_shape(m).valid());
        }
        Bytes empty_set = {0x31, 0x00};
        CHECK(tls::signed_asn1_structure(empty_set) == "cms-signed-attributes");
        auto cert = self_signed(attacker.get(), "Attacker CA");
        Bytes tbs = der_encoded(cert.get(), i2d_re_X509_tbs);
        CHECK(tls::signed_asn1_structure(tbs) == "x509-tbs-certificate");
        tbs.push_back(0x00);
        CHECK(tls::signed_asn1_structure(tbs).empty());
        CHECK_FALSE(tls::parse_shape(tbs).valid()); // and no TLS input either
    }

    SECTION("DER in the ECDHE share position is not a point") {
        Bytes octet_string = der(0x04, random_bytes(63)); // 65 bytes starting 0x04
        REQUIRE(octet_string.size() == 65);
        CHECK_FALSE(tls::parse_shape(ecdhe(0x0017, octet_string)).valid());
    }
}

namespace {

// What a real TLS 1.2 handshake signed in its ServerKeyExchange, read off the wire by the
// client: client_random || server_random || params, and the scheme it used.
struct SignedParams {
    Bytes message;
    uint16_t scheme = 0;
};

std::optional<SignedParams> handshake_tls12(EVP_PKEY* server_key, const char* groups,
                                            const char* sigalgs, const char* ciphers,
                                            EVP_PKEY* dh_params = nullptr, bool dh_auto = false) {
    auto cert = self_signed(server_key, "server");
    ossl::SslCtx sctx(SSL_CTX_new(TLS_server_method()));
    ossl::SslCtx cctx(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_use_certificate(sctx.get(), cert.get());
    SSL_CTX_use_PrivateKey(sctx.get(), server_key);
    SSL_CTX_set_max_proto_version(sctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(cctx.get(), ciphers);
    SSL_CTX_set1_groups_list(cctx.get(), groups);
    SSL_CTX_set1_sigalgs_list(cctx.get(), sigalgs);
    if (dh_params) {
        EVP_PKEY_up_ref(dh_params);
        SSL_CTX_set0_tmp_dh_pkey(sctx.get(), dh_params);
    }
    if (dh_auto) SSL_CTX_set_dh_auto(sctx.get(), 1);
    ossl::Ssl server(SSL_new(sctx.get()));
    ossl::Ssl client(SSL_new(cctx.get()));
    BIO *sbio = nullptr, *cbio = nullptr;
    BIO_new_bio_pair(&sbio, 0, &cbio, 0);
    SSL_set_bio(server.get(), sbio, sbio);
    SSL_set_bio(client.get(), cbio, cbio);
    SSL_set_accept_state(server.get());
    SSL_set_connect_state(client.get());

    Bytes ske;
    auto on_message = [](int write_p, int, int content_type, const void* buf, size_t len, SSL*,
                         void* arg) {
        const auto* b = static_cast<const uint8_t*>(buf);
        if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 4 &&
            b[0] == SSL3_MT_SERVER_KEY_EXCHANGE)
            static_cast<Bytes*>(arg)->assign(b + 4, b + len);
    };
    SSL_set_msg_callback(client.get(), on_message);
    SSL_set_msg_callback_arg(client.get(), &ske);
    bool server_done = false, client_done = false;
    for (int i = 0; i < 50 && !(server_done && client_done); ++i) {
        client_done = client_done || SSL_do_handshake(client.get()) == 1;
        server_done = server_done || SSL_do_handshake(server.get()) == 1;
    }
    if (!server_done || !client_done || ske.empty()) return std::nullopt;

    // params end where the signature's scheme begins: ECDHE 4 + point, DHE three vectors.
    size_t params = 0;
    if (ske[0] == 3) {
        params = 4 + ske[3];
    } else {
        for (int v = 0; v < 3; ++v)
            params += 2 + load_be16(ske, params);
    }
    SignedParams out;
    out.message.resize(64);
    SSL_get_client_random(client.get(), out.message.data(), 32);
    SSL_get_server_random(client.get(), out.message.data() + 32, 32);
    out.message.insert(out.message.end(), ske.begin(), ske.begin() + params);
    out.scheme = load_be16(ske, params);
    return out;
}

} // namespace

TEST_CASE("every TLS 1.2 ServerKeyExchange a real OpenSSL 3.0 handshake signs is accepted") {
    auto rsa = generate("RSA", nullptr, nullptr);
    auto p256 = generate("EC", OSSL_PKEY_PARAM_GROUP_NAME, "P-256");
    auto p384 = generate("EC", OSSL_PKEY_PARAM_GROUP_NAME, "P-384");
    struct Case {
        EVP_PKEY* key;
        tls::SignerKey signer;
        const char* groups;
        const char* sigalgs;
        const char* ciphers;
        const char* shape;
    };
    const char* rsa_ecdhe = "ECDHE-RSA-AES128-GCM-SHA256";
    const char* ec_ecdhe = "ECDHE-ECDSA-AES128-GCM-SHA256";
    for (auto c : {
             Case{rsa.get(), kRsa, "P-256", "RSA+SHA256", rsa_ecdhe, "tls12-ske-ecdhe:secp256r1"},
             Case{rsa.get(), kRsa, "P-384", "rsa_pss_rsae_sha256", rsa_ecdhe,
                  "tls12-ske-ecdhe:secp384r1"},
             Case{rsa.get(), kRsa, "X25519", "RSA+SHA384", rsa_ecdhe, "tls12-ske-ecdhe:x25519"},
             Case{rsa.get(), kRsa, "P-521", "rsa_pss_rsae_sha512", rsa_ecdhe,
                  "tls12-ske-ecdhe:secp521r1"},
             Case{rsa.get(), kRsa, "X448", "RSA+SHA512", rsa_ecdhe, "tls12-ske-ecdhe:x448"},
             Case{p256.get(), kP256, "P-256", "ECDSA+SHA256", ec_ecdhe,
                  "tls12-ske-ecdhe:secp256r1"},
             Case{p256.get(), kP256, "X25519:P-256", "ECDSA+SHA256", ec_ecdhe,
                  "tls12-ske-ecdhe:x25519"},
             Case{p384.get(), kP384, "P-384", "ECDSA+SHA384", ec_ecdhe,
                  "tls12-ske-ecdhe:secp384r1"},
         }) {
        INFO(c.shape << " signed with " << c.sigalgs);
        auto signed_params = handshake_tls12(c.key, c.groups, c.sigalgs, c.ciphers);
        REQUIRE(signed_params);
        auto shape = tls::parse_shape(signed_params->message);
        CHECK(shape.problem == "");
        CHECK(shape.name == c.shape);
        CHECK(tls::scheme_problem(shape, scheme(signed_params->scheme), c.signer, false) == "");
    }

    SECTION("DHE with an RFC 7919 group") {
        auto params = ffdhe("ffdhe2048");
        auto signed_params = handshake_tls12(rsa.get(), "P-256", "RSA+SHA256",
                                             "DHE-RSA-AES128-GCM-SHA256", params.get());
        REQUIRE(signed_params);
        auto shape = tls::parse_shape(signed_params->message);
        CHECK(shape.problem == "");
        CHECK(shape.name == "tls12-ske-dhe:ffdhe2048");
    }

    SECTION("DHE with OpenSSL's automatic parameters (s_server's default)") {
        auto signed_params = handshake_tls12(rsa.get(), "P-256", "RSA+SHA256",
                                             "DHE-RSA-AES128-GCM-SHA256", nullptr, true);
        REQUIRE(signed_params);
        auto shape = tls::parse_shape(signed_params->message);
        CHECK(shape.problem == "");
        CHECK(shape.name == "tls12-ske-dhe:modp_2048");
    }
}

TEST_CASE("nothing short or free-form is a TLS input") {
    CHECK_FALSE(tls::parse_shape({}).valid());
    CHECK_FALSE(tls::parse_shape(Bytes(32, 0)).valid());
    CHECK_FALSE(tls::parse_shape(Bytes(64, 0x20)).valid());
    std::string text = "certificate request info, please sign me";
    CHECK_FALSE(tls::parse_shape(Bytes(text.begin(), text.end())).valid());
    CHECK(tls::parse_shape(random_bytes(200)).name == "not-tls");
}
