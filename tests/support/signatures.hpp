// Checking what the keyserver signed, with the default provider.
#pragma once

#include "bytes.hpp"
#include "ossl.hpp"

#include <cstdint>

namespace keyless::test {

// The public key in a DER SubjectPublicKeyInfo (what get-public-key answers); null if it is not.
ossl::Pkey from_spki(const Bytes& der);
// Whether `sig` is `pub`'s signature of `msg` under the TLS SignatureScheme `scheme_code`.
bool verify_message(EVP_PKEY* pub, uint16_t scheme_code, ByteView msg, ByteView sig);

} // namespace keyless::test
