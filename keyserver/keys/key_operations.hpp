// What performs a key's private operations: this process, for a PEM file (file_key.hpp), or a
// PKCS#11 token (pkcs11_key.hpp). The signer (signer.hpp) checks what is asked against the key's
// kind and then calls these; so a key is served the same way whichever source holds it.
#pragma once

#include "bytes.hpp"
#include "tls_scheme.hpp"

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace keyless::keyserver {

// A private-key operation failed; the message never contains key material.
class CryptoError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The key's source failed (a token that cannot log in, sign or be reached), not the request:
// its own class in the access log ("hsm error") and metrics ("hsm_error").
class KeySourceError : public CryptoError {
  public:
    using CryptoError::CryptoError;
};

class KeyOperations {
  public:
    virtual ~KeyOperations() = default;
    // Signs a precomputed digest of the kind `alg` (its size is checked by the caller).
    virtual Bytes sign_digest(tls::Padding padding, const algorithms::Digest& alg,
                              ByteView digest) const = 0;
    // Hashes and signs a whole message as the TLS SignatureScheme says.
    virtual Bytes sign_message(const tls::SchemeInfo& scheme, ByteView message) const = 0;
    // Textbook RSA: c^d mod n, left-padded to the modulus size (the size is checked by the caller).
    virtual Bytes decrypt_raw(ByteView ciphertext) const = 0;
    // Where an operation on this key runs. Here: on the caller's thread (keys in this process);
    // Queued: `work` was handed to the key's own workers (a token's), which run it later; Full:
    // those workers' queue is full, `work` was not taken.
    enum class Placement { Here, Queued, Full };
    virtual bool has_own_workers() const { return false; }
    virtual Placement place(std::function<void()>& work) const {
        (void)work;
        return Placement::Here;
    }
};

} // namespace keyless::keyserver
