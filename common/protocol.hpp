// The gokeyless v1.0 wire format and keyless's extensions. Pure functions: no sockets, no crypto.
// Every number here is documented in docs/protocol.md.
#pragma once

#include "bytes.hpp"

#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace keyless::protocol {

inline constexpr uint8_t kMajorVersion = 1;
inline constexpr uint8_t kMinorVersion = 0;
inline constexpr size_t kHeaderSize = 8;
inline constexpr size_t kItemHeaderSize = 3;
inline constexpr size_t kPaddedLength = 1024; // gokeyless pads every message to this size
inline constexpr size_t kMaxBody = 0xFFFF;
inline constexpr size_t kSkiSize = 20;
inline constexpr size_t kCertDigestSize = 32;

enum class Tag : uint8_t {
    CertificateDigest = 0x01,
    ServerName = 0x02,
    ClientIP = 0x03,
    SubjectKeyIdentifier = 0x04,
    ServerIP = 0x05,
    CertID = 0x06,
    Opcode = 0x11,
    Payload = 0x12,
    CustomFuncName = 0x13,
    Extra = 0x14,
    JaegerSpan = 0x15,
    ReqContext = 0x16,
    ComplianceRegion = 0x17,
    Padding = 0x20,
    // keyless extensions (0xC0..0xCF, unused by gokeyless)
    KeyName = 0xC0,
    SignatureScheme = 0xC1,
    ClientVersion = 0xC2,
};

enum class Opcode : uint8_t {
    RSADecrypt = 0x01,
    RSASignMD5SHA1 = 0x02,
    RSASignSHA1 = 0x03,
    RSASignSHA224 = 0x04,
    RSASignSHA256 = 0x05,
    RSASignSHA384 = 0x06,
    RSASignSHA512 = 0x07,
    ECDSASignMD5SHA1 = 0x12,
    ECDSASignSHA1 = 0x13,
    ECDSASignSHA224 = 0x14,
    ECDSASignSHA256 = 0x15,
    ECDSASignSHA384 = 0x16,
    ECDSASignSHA512 = 0x17,
    Ed25519Sign = 0x18,
    RSAPSSSignSHA256 = 0x35,
    RSAPSSSignSHA384 = 0x36,
    RSAPSSSignSHA512 = 0x37,
    Response = 0xF0,
    Ping = 0xF1,
    Pong = 0xF2,
    Error = 0xFF,
    // keyless extensions (0xC0..0xCF, unused by gokeyless)
    GetPublicKey = 0xC0,
    SignTLS = 0xC1,
    RSADecryptTLS = 0xC2,
};

enum class ErrorCode : uint8_t {
    None = 0x00,
    Crypto = 0x01,
    KeyNotFound = 0x02,
    Read = 0x03,
    VersionMismatch = 0x04,
    BadOpcode = 0x05,
    UnexpectedOpcode = 0x06,
    Format = 0x07,
    Internal = 0x08,
    CertNotFound = 0x09,
    Expired = 0x0A,
    RemoteConfiguration = 0x0B,
    // keyless extensions
    PolicyDenied = 0xC0,
    Overloaded = 0xC1,
    KeyMismatch = 0xC2, // the key name resolves to a key whose SKI is not the request's
};

std::string_view to_string(ErrorCode code);
std::string_view to_string(Opcode op);

struct Header {
    uint8_t major = kMajorVersion;
    uint8_t minor = kMinorVersion;
    uint16_t body_length = 0;
    uint32_t id = 0;
};

// One request or response: the items gokeyless defines plus ours. Empty/absent fields are not
// encoded, as gokeyless does.
struct Operation {
    std::optional<uint8_t> opcode; // the raw byte: it may name an opcode we do not know
    Bytes payload;
    Bytes extra;
    std::optional<std::array<uint8_t, kSkiSize>> ski;
    std::optional<std::array<uint8_t, kCertDigestSize>> cert_digest;
    Bytes client_ip; // 4 or 16 bytes when present
    Bytes server_ip;
    std::string server_name;
    std::string cert_id;
    std::string custom_func_name;
    Bytes jaeger_span;
    std::string req_context;
    uint8_t compliance_region = 0;
    std::string key_name;
    std::optional<uint16_t> signature_scheme;
    std::optional<uint16_t> client_version;

    static Operation make(Opcode op, Bytes payload = {});
    static Operation error(ErrorCode code);
    bool is(Opcode op) const { return opcode && *opcode == static_cast<uint8_t>(op); }
};

// Raised by the decoder with a precise reason; never carries payload bytes.
class FormatError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

Header decode_header(ByteView eight_bytes);
// Decodes a body (the bytes after the header). Unknown tags are skipped; a repeated known tag, a
// truncated item, an item past the body or a wrong-sized fixed field throws FormatError.
Operation decode_body(ByteView body);

// Encodes a whole message (header + body, padded to kPaddedLength).
Bytes encode(uint32_t id, const Operation& op);
// The same, appended to `out` (left as it was if the message is too large to encode).
void encode_into(Bytes& out, uint32_t id, const Operation& op);

// The error carried by an Error response, or None for any other message.
ErrorCode error_of(const Operation& op);

} // namespace keyless::protocol
