// Subject Key Identifier as gokeyless computes it: SHA-1 of the subjectPublicKey BIT STRING value.
#pragma once

#include "bytes.hpp"

#include <openssl/evp.h>

#include <array>
#include <string>

namespace keyless {

using Ski = std::array<uint8_t, 20>;

// Throws std::runtime_error when the key cannot be encoded.
Ski compute_ski(const EVP_PKEY* pkey);
// From a DER SubjectPublicKeyInfo (checked by decoding the key it holds).
Ski compute_ski_from_spki(ByteView spki_der);
// The same from a SubjectPublicKeyInfo this process encoded itself with spki_der(): only its
// structure is read, not the key (decoding one costs OpenSSL 3.0 ~0.08 ms).
Ski compute_ski_from_own_spki(ByteView spki_der);
// DER SubjectPublicKeyInfo of a key (public part only).
Bytes spki_der(const EVP_PKEY* pkey);
std::string to_hex(ByteView bytes);

} // namespace keyless
