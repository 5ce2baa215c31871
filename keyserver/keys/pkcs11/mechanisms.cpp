#include "keys/pkcs11/mechanisms.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace keyless::keyserver::p11 {

CK_MECHANISM_TYPE signing_mechanism(tls::KeyKind kind) {
    switch (kind) {
    case tls::KeyKind::RSA:
        return CKM_RSA_PKCS;
    case tls::KeyKind::EC:
        return CKM_ECDSA;
    case tls::KeyKind::Ed25519:
    case tls::KeyKind::Ed448:
        return CKM_EDDSA;
    case tls::KeyKind::MLDSA44:
    case tls::KeyKind::MLDSA65:
    case tls::KeyKind::MLDSA87:
        return mechanism_ml_dsa;
    }
    return CKM_VENDOR_DEFINED;
}

std::optional<tls::KeyKind> ml_dsa_kind(CK_ULONG parameter_set) {
    switch (parameter_set) {
    case parameter_set_ml_dsa_44:
        return tls::KeyKind::MLDSA44;
    case parameter_set_ml_dsa_65:
        return tls::KeyKind::MLDSA65;
    case parameter_set_ml_dsa_87:
        return tls::KeyKind::MLDSA87;
    default:
        return std::nullopt;
    }
}

std::string mechanism_name(CK_MECHANISM_TYPE mechanism) {
    switch (mechanism) {
    case CKM_RSA_PKCS:
        return "RSA-PKCS";
    case CKM_RSA_PKCS_PSS:
        return "RSA-PKCS-PSS";
    case CKM_RSA_X_509:
        return "RSA-X-509";
    case CKM_ECDSA:
        return "ECDSA";
    case CKM_EDDSA:
        return "EDDSA";
    case mechanism_ml_dsa:
        return "ML-DSA";
    default:
        char hex[24];
        std::snprintf(hex, sizeof hex, "0x%lx", static_cast<unsigned long>(mechanism));
        return hex;
    }
}

size_t signature_capacity(tls::KeyKind kind) {
    switch (kind) {
    case tls::KeyKind::MLDSA44:
        return 2420; // FIPS 204, table 2
    case tls::KeyKind::MLDSA65:
        return 3309;
    case tls::KeyKind::MLDSA87:
        return 4627;
    default:
        return 1024; // an RSA-8192 signature; EC and EdDSA ones are smaller
    }
}

std::string cannot_sign(tls::KeyKind kind, const std::vector<CK_MECHANISM_TYPE>& signing) {
    CK_MECHANISM_TYPE needed = signing_mechanism(kind);
    if (std::find(signing.begin(), signing.end(), needed) != signing.end()) return {};
    std::string offered;
    for (CK_MECHANISM_TYPE m : signing)
        offered += (offered.empty() ? "" : ", ") + mechanism_name(m);
    std::string why = std::string("the token cannot sign with this ") + tls::key_type_name(kind) +
                      " key: it offers no " + mechanism_name(needed) + " mechanism";
    if (needed == mechanism_ml_dsa) why += " (PKCS#11 3.2 CKM_ML_DSA)";
    return why + "; its signing mechanisms: " + (offered.empty() ? "none" : offered);
}

MessageMechanism::MessageMechanism(tls::KeyKind kind) {
    mechanism_.mechanism = signing_mechanism(kind);
    if (tls::is_ml_dsa(kind)) {
        mechanism_.pParameter = &ml_dsa_;
        mechanism_.ulParameterLen = sizeof ml_dsa_;
    } else if (kind == tls::KeyKind::Ed448) {
        mechanism_.pParameter = &eddsa_;
        mechanism_.ulParameterLen = sizeof eddsa_;
    } else if (kind != tls::KeyKind::Ed25519) {
        throw std::invalid_argument(std::string("a ") + tls::key_type_name(kind) +
                                    " key signs digests, not whole messages");
    }
}

} // namespace keyless::keyserver::p11
