// The private-key operations, each on one loaded key. Failures throw CryptoError with a reason
// that never contains key material.
#pragma once

#include "key_store.hpp"
#include "tls_scheme.hpp"

#include <stdexcept>
#include <string_view>

namespace keyless::keyserver {

class CryptoError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Signs a precomputed digest. `digest_name` is an OpenSSL name ("SHA256", "MD5-SHA1", ...).
Bytes sign_digest(const Key& key, tls::Padding padding, std::string_view digest_name,
                  ByteView digest);
// Hashes and signs a whole message as the TLS SignatureScheme says.
Bytes sign_message(const Key& key, const tls::SchemeInfo& scheme, ByteView message);
// Textbook RSA: c^d mod n, left-padded to the modulus size.
Bytes rsa_decrypt_raw(const Key& key, ByteView ciphertext);
// TLS 1.2 RSA key exchange (RFC 5246 §7.4.7.1): always 48 bytes; a bad padding or version
// yields random bytes, decided in constant time, and no error.
Bytes rsa_decrypt_tls(const Key& key, ByteView ciphertext, uint16_t client_version);

} // namespace keyless::keyserver
