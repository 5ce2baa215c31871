// A private key inside a PKCS#11 token: every operation is a mechanism run by the token, on the
// token's own workers. ECDSA signs the digest the keyserver computed (CKM_ECDSA, r||s converted
// to DER), RSA PKCS#1 v1.5 signs the DigestInfo (CKM_RSA_PKCS), RSA-PSS uses CKM_RSA_PKCS_PSS,
// EdDSA CKM_EDDSA and ML-DSA CKM_ML_DSA over the message (keys/pkcs11/mechanisms.hpp), raw RSA
// decryption CKM_RSA_X_509.
#pragma once

#include "keys/pkcs11/token.hpp"

#include <memory>

namespace keyless::keyserver {

class Pkcs11Key : public KeyOperations {
  public:
    // The private key object is found by `id` (CKA_ID) and/or `label` (CKA_LABEL) for each
    // operation, so a token that was removed and put back is used again.
    Pkcs11Key(std::shared_ptr<Pkcs11Token> token, std::string uri, Bytes id, std::string label,
              tls::KeyKind kind, size_t signature_half);
    Bytes sign_digest(tls::Padding padding, const algorithms::Digest& alg,
                      ByteView digest) const override;
    Bytes sign_message(const tls::SchemeInfo& scheme, ByteView message) const override;
    Bytes decrypt_raw(ByteView ciphertext) const override;
    Placement place(std::function<void()>& work) const override;
    bool has_own_workers() const override { return true; }

  private:
    // Runs `mechanism` over `data` with the private key: a signature, or a decryption.
    Bytes run(CK_MECHANISM& mechanism, ByteView data, bool decrypt) const;
    CK_OBJECT_HANDLE find(CK_SESSION_HANDLE session) const;

    std::shared_ptr<Pkcs11Token> token_;
    std::string uri_;
    Bytes id_;
    std::string label_;
    tls::KeyKind kind_;
    size_t signature_half_; // EC: bytes of r (and of s) in the token's r||s
};

// Finds the one object of `object_class` with `id` and/or `label` in the token; returns
// CK_INVALID_HANDLE if there is none, throws HsmError if several match or the search fails.
CK_OBJECT_HANDLE find_object(const Pkcs11Token& token, CK_SESSION_HANDLE session,
                             CK_OBJECT_CLASS object_class, const Bytes& id,
                             const std::string& label);

} // namespace keyless::keyserver
