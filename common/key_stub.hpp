// The key stub: a PEM block "KEYLESS KEY" whose DER body is
//   KeylessKey ::= SEQUENCE { version INTEGER (1), uri UTF8String, publicKey SubjectPublicKeyInfo }
// It lets terminators that only read PEM files (nginx, haproxy, stunnel) load a keyless key, and
// start without the keyserver, because the public key travels with the reference.
#pragma once

#include "bytes.hpp"

#include <stdexcept>
#include <string>
#include <string_view>

namespace keyless {

inline constexpr std::string_view kStubPemLabel = "KEYLESS KEY";
inline constexpr long kStubVersion = 1;

struct KeyStub {
    std::string uri;
    Bytes spki_der;
};

class StubError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

Bytes encode_stub_der(const KeyStub& stub);
KeyStub decode_stub_der(ByteView der); // throws StubError
std::string encode_stub_pem(const KeyStub& stub);

} // namespace keyless
