// The PKCS#11 mechanisms and parameters a token key signs with, without a token: SoftHSM2 2.6
// has no ML-DSA, so CKM_ML_DSA's parameter is checked here against PKCS#11 3.2's layout.
#include "keys/pkcs11/mechanisms.hpp"

#include "catch.hpp"

#include <cstddef>

using namespace keyless;
using namespace keyless::keyserver;
using tls::KeyKind;

TEST_CASE("pkcs11: each kind of key signs with its own mechanism") {
    CHECK(p11::signing_mechanism(KeyKind::RSA) == CKM_RSA_PKCS);
    CHECK(p11::signing_mechanism(KeyKind::EC) == CKM_ECDSA);
    CHECK(p11::signing_mechanism(KeyKind::Ed25519) == CKM_EDDSA);
    CHECK(p11::signing_mechanism(KeyKind::Ed448) == CKM_EDDSA);
    for (auto kind : {KeyKind::MLDSA44, KeyKind::MLDSA65, KeyKind::MLDSA87})
        CHECK(p11::signing_mechanism(kind) == 0x1dUL); // CKM_ML_DSA
    CHECK(p11::ml_dsa_kind(1) == KeyKind::MLDSA44);
    CHECK(p11::ml_dsa_kind(2) == KeyKind::MLDSA65);
    CHECK(p11::ml_dsa_kind(3) == KeyKind::MLDSA87);
    CHECK_FALSE(p11::ml_dsa_kind(0));
    CHECK_FALSE(p11::ml_dsa_kind(4));
    CHECK(p11::signature_capacity(KeyKind::MLDSA87) == 4627);
    CHECK(p11::signature_capacity(KeyKind::MLDSA65) == 3309);
    CHECK(p11::signature_capacity(KeyKind::MLDSA44) == 2420);
    CHECK(p11::signature_capacity(KeyKind::RSA) == 1024);
}

TEST_CASE(
    "pkcs11: ML-DSA signs with CK_SIGN_ADDITIONAL_CONTEXT, empty context, hedging preferred") {
    // PKCS#11 3.2: { CK_HEDGE_TYPE hedgeVariant; CK_BYTE_PTR pContext; CK_ULONG ulContextLen; }
    static_assert(sizeof(p11::SignAdditionalContext) == 3 * sizeof(CK_ULONG));
    static_assert(offsetof(p11::SignAdditionalContext, context) == sizeof(CK_ULONG));
    for (auto kind : {KeyKind::MLDSA44, KeyKind::MLDSA65, KeyKind::MLDSA87}) {
        p11::MessageMechanism m(kind);
        CK_MECHANISM& mech = m.get();
        CHECK(mech.mechanism == 0x1dUL);
        REQUIRE(mech.ulParameterLen == sizeof(p11::SignAdditionalContext));
        REQUIRE(mech.pParameter != nullptr);
        const auto* params = static_cast<const p11::SignAdditionalContext*>(mech.pParameter);
        CHECK(params->hedge_variant == 0); // CKH_HEDGE_PREFERRED
        CHECK(params->context == nullptr);
        CHECK(params->context_length == 0);
    }
}

TEST_CASE("pkcs11: EdDSA is pure and without context, Ed448 says so, Ed25519 takes the default") {
    // PKCS#11 3.0: { CK_BBOOL phFlag; CK_ULONG ulContextDataLen; CK_BYTE_PTR pContextData; }
    static_assert(offsetof(p11::EddsaParams, context_length) == sizeof(CK_ULONG));
    p11::MessageMechanism ed448(KeyKind::Ed448);
    CHECK(ed448.get().mechanism == CKM_EDDSA);
    REQUIRE(ed448.get().ulParameterLen == sizeof(p11::EddsaParams));
    const auto* params = static_cast<const p11::EddsaParams*>(ed448.get().pParameter);
    CHECK(params->prehash == CK_FALSE);
    CHECK(params->context_length == 0);
    CHECK(params->context == nullptr);
    p11::MessageMechanism ed25519(KeyKind::Ed25519);
    CHECK(ed25519.get().mechanism == CKM_EDDSA);
    CHECK(ed25519.get().pParameter == nullptr);
    CHECK(ed25519.get().ulParameterLen == 0);
    CHECK_THROWS_AS(p11::MessageMechanism(KeyKind::EC), std::invalid_argument);
    CHECK_THROWS_AS(p11::MessageMechanism(KeyKind::RSA), std::invalid_argument);
}

TEST_CASE("pkcs11: a token without the key's mechanism is named with what it offers") {
    // SoftHSM2 2.6's signing mechanisms, in part.
    std::vector<CK_MECHANISM_TYPE> softhsm = {CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_ECDSA, CKM_EDDSA,
                                              CKM_SHA256_HMAC};
    CHECK(p11::cannot_sign(KeyKind::EC, softhsm).empty());
    CHECK(p11::cannot_sign(KeyKind::Ed448, softhsm).empty());
    std::string why = p11::cannot_sign(KeyKind::MLDSA65, softhsm);
    CHECK(why == "the token cannot sign with this ML-DSA-65 key: it offers no ML-DSA mechanism "
                 "(PKCS#11 3.2 CKM_ML_DSA); its signing mechanisms: RSA-PKCS, RSA-PKCS-PSS, "
                 "ECDSA, EDDSA, 0x251");
    CHECK(p11::cannot_sign(KeyKind::MLDSA44, {0x1dUL}).empty());
    CHECK(p11::cannot_sign(KeyKind::EC, {}) ==
          "the token cannot sign with this EC key: it offers no ECDSA mechanism; its signing "
          "mechanisms: none");
}
