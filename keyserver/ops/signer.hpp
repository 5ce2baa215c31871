// The private-key operations, each on one loaded key. Failures throw CryptoError with a reason
// that never contains key material.
#pragma once

#include "keys/key_operations.hpp"
#include "keys/key_store.hpp"
#include "tls_scheme.hpp"

#include <stdexcept>
#include <string_view>

namespace keyless::keyserver {

// Signs a precomputed digest of the kind `alg`.
Bytes sign_digest(const Key& key, tls::Padding padding, const algorithms::Digest& alg,
                  ByteView digest);
// Hashes and signs a whole message as the TLS SignatureScheme says.
Bytes sign_message(const Key& key, const tls::SchemeInfo& scheme, ByteView message);
// Textbook RSA: c^d mod n, left-padded to the modulus size.
Bytes rsa_decrypt_raw(const Key& key, ByteView ciphertext);
// TLS 1.2 RSA key exchange (RFC 5246 §7.4.7.1): always 48 bytes. A bad padding or version yields
// "implicit rejection" bytes instead of an error: HMAC-SHA384 keyed by the key's rejection
// secret over the client version and the ciphertext, so the same bad ciphertext always gets the
// same answer and nobody without the private key can tell it from a real premaster secret. The
// choice is made in constant time.
Bytes rsa_decrypt_tls(const Key& key, ByteView ciphertext, uint16_t client_version);
// The key's secret for implicit rejection: SHA-256 of its deterministic PKCS#1 v1.5 signature
// over a fixed label. Only the private key can compute it, and it needs nothing but a signature
// (so an HSM key gets one too).
Bytes derive_rejection_secret(const Key& key);
// derive_rejection_secret(), once per key (thread-safe); throws CryptoError if it cannot.
const Bytes& rejection_secret(const Key& key);

} // namespace keyless::keyserver
