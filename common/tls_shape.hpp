// What a message given to sign-TLS is: exactly one of the inputs a TLS 1.2 or 1.3 handshake
// signs, checked strictly enough that it cannot also be an X.509, CSR, CRL, OCSP or CMS
// to-be-signed structure, and whether a signature scheme may sign it. Pure: no sockets; OpenSSL is
// used only to validate curve points, to know the RFC 7919 groups and to parse ASN.1.
#pragma once

#include "tls_scheme.hpp"

#include <string>

namespace keyless::tls {

enum class ShapeKind {
    None,                         // no TLS signature input (or one we refuse to recognise)
    Tls13ServerCertificateVerify, // 64 x 0x20, "TLS 1.3, server CertificateVerify", 0, hash
    Tls13ClientCertificateVerify, // the same with "TLS 1.3, client CertificateVerify"
    Tls12EcdheServerKeyExchange,  // randoms, named_curve, group, share (a valid point)
    Tls12DheServerKeyExchange,    // randoms, a well-known group's p and g, 1 < Ys < p-1
};

struct Shape {
    ShapeKind kind = ShapeKind::None;
    // For logs: "tls13-server-cv", "tls13-client-cv", "tls12-ske-ecdhe:x25519",
    // "tls12-ske-dhe:ffdhe2048", "tls12-ske-dhe:modp_2048", "asn1:x509-tbs-certificate" or
    // "not-tls".
    std::string name = "not-tls";
    // Empty when the message is a well-formed input of `kind`; otherwise why it is refused.
    std::string problem;
    bool valid() const { return kind != ShapeKind::None && problem.empty(); }
};

// Classifies by structure alone (no policy).
Shape parse_shape(ByteView message);

// What the signer knows about its key. `curve` is "P-256", "P-384" or "P-521" for EC keys.
struct SignerKey {
    KeyKind kind;
    std::string_view curve;
};

// Empty when `scheme` may sign a valid `shape` with `key`, else why not: the scheme must be of
// the key's own kind (an ML-DSA parameter set is a kind); TLS 1.3 only allows RSA-PSS, the ECDSA
// scheme of the key's own curve, Ed25519, Ed448 and ML-DSA; TLS 1.2 allows SHA-256/384/512 (and
// EdDSA), SHA-1 only when `allow_sha1`, never SHA-224, MD5 or ML-DSA (TLS 1.3 only).
std::string scheme_problem(const Shape& shape, const SchemeInfo& scheme, const SignerKey& key,
                           bool allow_sha1);

// The name of the signed ASN.1 structure the whole message is (e.g. "x509-tbs-certificate"), or
// empty. Exposed for tests and the fuzz target.
std::string_view signed_asn1_structure(ByteView message);

} // namespace keyless::tls
