// Wire frames built by hand, byte by byte from the spec (never with the codec under test).
#pragma once

#include "bytes.hpp"

#include <openssl/rand.h>

#include <initializer_list>
#include <string_view>

namespace keyless::test {

// One item: tag, u16 length, value.
inline Bytes tlv(uint8_t tag, const Bytes& value) {
    Bytes out{tag, static_cast<uint8_t>(value.size() >> 8), static_cast<uint8_t>(value.size())};
    out.insert(out.end(), value.begin(), value.end());
    return out;
}

inline Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

// Header (major, minor 0, u16 body length, u32 id) followed by `body`, unpadded.
inline Bytes raw_frame(uint8_t major, uint32_t id, const Bytes& body) {
    Bytes out{major,
              0,
              static_cast<uint8_t>(body.size() >> 8),
              static_cast<uint8_t>(body.size()),
              static_cast<uint8_t>(id >> 24),
              static_cast<uint8_t>(id >> 16),
              static_cast<uint8_t>(id >> 8),
              static_cast<uint8_t>(id)};
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

// What a TLS 1.3 server signs in its CertificateVerify: 64 spaces, the context string, 0x00, and
// a random transcript hash of `hash_len` bytes.
inline Bytes tls13_certificate_verify_input(size_t hash_len = 32) {
    Bytes m(64, 0x20);
    for (char c : std::string_view("TLS 1.3, server CertificateVerify"))
        m.push_back(static_cast<uint8_t>(c));
    m.push_back(0);
    Bytes hash(hash_len);
    RAND_bytes(hash.data(), static_cast<int>(hash.size()));
    m.insert(m.end(), hash.begin(), hash.end());
    return m;
}

} // namespace keyless::test
