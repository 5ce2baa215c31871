// A private key read from a PEM file: its operations run in this process with OpenSSL.
#pragma once

#include "keys/key_operations.hpp"
#include "ossl.hpp"

#include <array>
#include <mutex>

namespace keyless::keyserver {

class FileKey : public KeyOperations {
  public:
    // `pkey` holds the private key; `name` is for errors.
    FileKey(ossl::Pkey pkey, std::string name);
    Bytes sign_digest(tls::Padding padding, const algorithms::Digest& alg,
                      ByteView digest) const override;
    Bytes sign_message(const tls::SchemeInfo& scheme, ByteView message) const override;
    Bytes decrypt_raw(ByteView ciphertext) const override;

  private:
    [[noreturn]] void fail(std::string_view what) const;
    ossl::MdCtx new_sign_context(const tls::SchemeInfo& scheme) const;
    ossl::MdCtx sign_context(const tls::SchemeInfo& scheme) const;
    ossl::PkeyCtx new_digest_context(tls::Padding padding, const algorithms::Digest& alg) const;
    ossl::PkeyCtx digest_context(tls::Padding padding, const algorithms::Digest& alg) const;
    void set_rsa_padding(EVP_PKEY_CTX* ctx, tls::Padding padding) const;

    ossl::Pkey pkey_; // never logged, never serialised except as its public part
    std::string name_;
    bool rsa_;
    // Per signature scheme, a signing context initialised on first use and copied for every
    // signature: initialising one fetches algorithms, which costs OpenSSL 3.0 more than a
    // quarter of a P-256 signature; copying does not. Threads sign with their own copies.
    struct SignTemplate {
        std::once_flag once;
        ossl::MdCtx ctx;
    };
    mutable std::array<SignTemplate, tls::kSchemeCount> templates_;
    // The same for digest signing (gokeyless clients, openssl req), per digest and padding.
    struct DigestTemplate {
        std::once_flag once;
        ossl::PkeyCtx ctx;
    };
    mutable std::array<DigestTemplate, std::size(algorithms::kDigests) * algorithms::kPaddingCount>
        digest_templates_;
};

} // namespace keyless::keyserver
