// The PKCS#11 mechanism each kind of key signs with, and the parameters of the whole-message
// ones. PKCS#11 3.2's ML-DSA names are spelled out here (with our own names, so they never clash
// with a header that has them): the p11-kit headers of Debian 12 and 13 predate them.
#pragma once

#include "tls_scheme.hpp"

#include <p11-kit/pkcs11.h>

#include <optional>
#include <string>
#include <vector>

namespace keyless::keyserver::p11 {

// PKCS#11 3.2: CKK_ML_DSA, CKA_PARAMETER_SET, CKM_ML_DSA, CKP_ML_DSA_*, CKH_HEDGE_PREFERRED.
inline constexpr CK_KEY_TYPE key_type_ml_dsa = 0x4aUL;
inline constexpr CK_ATTRIBUTE_TYPE attribute_parameter_set = 0x61dUL;
inline constexpr CK_MECHANISM_TYPE mechanism_ml_dsa = 0x1dUL;
inline constexpr CK_ULONG parameter_set_ml_dsa_44 = 1, parameter_set_ml_dsa_65 = 2,
                          parameter_set_ml_dsa_87 = 3;
inline constexpr CK_ULONG hedge_preferred = 0;

// CK_SIGN_ADDITIONAL_CONTEXT (PKCS#11 3.2): CKM_ML_DSA's parameter.
struct SignAdditionalContext {
    CK_ULONG hedge_variant;
    CK_BYTE* context;
    CK_ULONG context_length;
};
// CK_EDDSA_PARAMS (PKCS#11 3.0): CKM_EDDSA's parameter, which Ed448 needs (without one a token
// signs Ed25519).
struct EddsaParams {
    CK_BBOOL prehash;
    CK_ULONG context_length;
    CK_BYTE* context;
};

// The mechanism that signs for a key of `kind`: RSA PKCS#1 v1.5, ECDSA, EdDSA or ML-DSA.
CK_MECHANISM_TYPE signing_mechanism(tls::KeyKind kind);
// The ML-DSA kind of a CKA_PARAMETER_SET value; none for a parameter set we do not know.
std::optional<tls::KeyKind> ml_dsa_kind(CK_ULONG parameter_set);
// "ECDSA", "ML-DSA", ... for the mechanisms we use; "0x..." for the others.
std::string mechanism_name(CK_MECHANISM_TYPE mechanism);
// The largest signature a key of `kind` makes (the output buffer of C_Sign).
size_t signature_capacity(tls::KeyKind kind);
// Why a token that offers `signing` (the mechanisms it can sign with) cannot serve a key of
// `kind`; empty when it can.
std::string cannot_sign(tls::KeyKind kind, const std::vector<CK_MECHANISM_TYPE>& signing);

// The mechanism that signs a whole message with an EdDSA or ML-DSA key: pure EdDSA without
// context; ML-DSA with the empty context (what TLS 1.3 signs, see docs/protocol.md) and the
// token's preferred hedging. Holds its parameter, so it is neither copied nor moved.
class MessageMechanism {
  public:
    explicit MessageMechanism(tls::KeyKind kind); // throws std::invalid_argument for RSA and EC
    MessageMechanism(const MessageMechanism&) = delete;
    MessageMechanism& operator=(const MessageMechanism&) = delete;
    CK_MECHANISM& get() { return mechanism_; }

  private:
    SignAdditionalContext ml_dsa_{hedge_preferred, nullptr, 0};
    EddsaParams eddsa_{CK_FALSE, 0, nullptr};
    CK_MECHANISM mechanism_{};
};

} // namespace keyless::keyserver::p11
