#include "protocol.hpp"

#include <algorithm>
#include <bitset>

namespace keyless::protocol {

std::string_view to_string(ErrorCode code) {
    switch (code) {
    case ErrorCode::None:
        return "none";
    case ErrorCode::Crypto:
        return "crypto error";
    case ErrorCode::KeyNotFound:
        return "key not found";
    case ErrorCode::Read:
        return "read error";
    case ErrorCode::VersionMismatch:
        return "version mismatch";
    case ErrorCode::BadOpcode:
        return "bad opcode";
    case ErrorCode::UnexpectedOpcode:
        return "unexpected opcode";
    case ErrorCode::Format:
        return "format error";
    case ErrorCode::Internal:
        return "internal error";
    case ErrorCode::CertNotFound:
        return "certificate not found";
    case ErrorCode::Expired:
        return "expired";
    case ErrorCode::RemoteConfiguration:
        return "remote configuration error";
    case ErrorCode::PolicyDenied:
        return "denied by policy";
    case ErrorCode::Overloaded:
        return "overloaded";
    case ErrorCode::KeyMismatch:
        return "key mismatch";
    }
    return "unknown error code";
}

std::string_view to_string(Opcode op) {
    switch (op) {
    case Opcode::RSADecrypt:
        return "rsa-decrypt-raw";
    case Opcode::RSASignMD5SHA1:
        return "rsa-sign-md5sha1";
    case Opcode::RSASignSHA1:
        return "rsa-sign-sha1";
    case Opcode::RSASignSHA224:
        return "rsa-sign-sha224";
    case Opcode::RSASignSHA256:
        return "rsa-sign-sha256";
    case Opcode::RSASignSHA384:
        return "rsa-sign-sha384";
    case Opcode::RSASignSHA512:
        return "rsa-sign-sha512";
    case Opcode::ECDSASignMD5SHA1:
        return "ecdsa-sign-md5sha1";
    case Opcode::ECDSASignSHA1:
        return "ecdsa-sign-sha1";
    case Opcode::ECDSASignSHA224:
        return "ecdsa-sign-sha224";
    case Opcode::ECDSASignSHA256:
        return "ecdsa-sign-sha256";
    case Opcode::ECDSASignSHA384:
        return "ecdsa-sign-sha384";
    case Opcode::ECDSASignSHA512:
        return "ecdsa-sign-sha512";
    case Opcode::Ed25519Sign:
        return "ed25519-sign";
    case Opcode::RSAPSSSignSHA256:
        return "rsa-pss-sign-sha256";
    case Opcode::RSAPSSSignSHA384:
        return "rsa-pss-sign-sha384";
    case Opcode::RSAPSSSignSHA512:
        return "rsa-pss-sign-sha512";
    case Opcode::Response:
        return "response";
    case Opcode::Ping:
        return "ping";
    case Opcode::Pong:
        return "pong";
    case Opcode::Error:
        return "error";
    case Opcode::GetPublicKey:
        return "get-public-key";
    case Opcode::SignTLS:
        return "sign-tls";
    case Opcode::RSADecryptTLS:
        return "rsa-decrypt-tls";
    }
    return "unknown";
}

Operation Operation::make(Opcode op, Bytes payload) {
    Operation o;
    o.opcode = static_cast<uint8_t>(op);
    o.payload = std::move(payload);
    return o;
}

Operation Operation::error(ErrorCode code) {
    return make(Opcode::Error, Bytes{static_cast<uint8_t>(code)});
}

ErrorCode error_of(const Operation& op) {
    if (!op.is(Opcode::Error)) return ErrorCode::None;
    if (op.payload.size() != 1) return ErrorCode::Format;
    return static_cast<ErrorCode>(op.payload[0]);
}

Header decode_header(ByteView b) {
    if (b.size() < kHeaderSize) throw FormatError("header truncated");
    return Header{b[0], b[1], load_be16(b, 2), load_be32(b, 4)};
}

namespace {

std::string hex_tag(uint8_t tag) {
    static constexpr char digits[] = "0123456789abcdef";
    return std::string("0x") + digits[tag >> 4] + digits[tag & 15];
}

template <size_t N> std::array<uint8_t, N> fixed(ByteView v, const char* what) {
    if (v.size() != N)
        throw FormatError(std::string(what) + " must be " + std::to_string(N) + " bytes, got " +
                          std::to_string(v.size()));
    std::array<uint8_t, N> out{};
    std::copy(v.begin(), v.end(), out.begin());
    return out;
}

uint16_t u16_item(ByteView v, const char* what) {
    auto a = fixed<2>(v, what);
    return static_cast<uint16_t>((a[0] << 8) | a[1]);
}

Bytes ip_item(ByteView v, const char* what) {
    if (v.size() != 4 && v.size() != 16)
        throw FormatError(std::string(what) + " must be 4 or 16 bytes, got " +
                          std::to_string(v.size()));
    return Bytes(v.begin(), v.end());
}

void apply_item(Operation& op, uint8_t tag, ByteView v) {
    auto str = [&] { return std::string(v.begin(), v.end()); };
    auto bytes = [&] { return Bytes(v.begin(), v.end()); };
    switch (static_cast<Tag>(tag)) {
    case Tag::CertificateDigest:
        op.cert_digest = fixed<kCertDigestSize>(v, "certificate digest");
        break;
    case Tag::ServerName:
        op.server_name = str();
        break;
    case Tag::ClientIP:
        op.client_ip = ip_item(v, "client IP");
        break;
    case Tag::SubjectKeyIdentifier:
        op.ski = fixed<kSkiSize>(v, "SKI");
        break;
    case Tag::ServerIP:
        op.server_ip = ip_item(v, "server IP");
        break;
    case Tag::CertID:
        op.cert_id = str();
        break;
    case Tag::Opcode:
        op.opcode = fixed<1>(v, "opcode")[0];
        break;
    case Tag::Payload:
        op.payload = bytes();
        break;
    case Tag::CustomFuncName:
        op.custom_func_name = str();
        break;
    case Tag::Extra:
        op.extra = bytes();
        break;
    case Tag::JaegerSpan:
        op.jaeger_span = bytes();
        break;
    case Tag::ReqContext:
        op.req_context = str();
        break;
    case Tag::ComplianceRegion:
        op.compliance_region = fixed<1>(v, "compliance region")[0];
        break;
    case Tag::Padding:
        break;
    case Tag::KeyName:
        op.key_name = str();
        break;
    case Tag::SignatureScheme:
        op.signature_scheme = u16_item(v, "signature scheme");
        break;
    case Tag::ClientVersion:
        op.client_version = u16_item(v, "client version");
        break;
    default:
        break; // unknown tags are skipped, as gokeyless does since 2020
    }
}

bool is_known(uint8_t tag) {
    switch (static_cast<Tag>(tag)) {
    case Tag::CertificateDigest:
    case Tag::ServerName:
    case Tag::ClientIP:
    case Tag::SubjectKeyIdentifier:
    case Tag::ServerIP:
    case Tag::CertID:
    case Tag::Opcode:
    case Tag::Payload:
    case Tag::CustomFuncName:
    case Tag::Extra:
    case Tag::JaegerSpan:
    case Tag::ReqContext:
    case Tag::ComplianceRegion:
    case Tag::Padding:
    case Tag::KeyName:
    case Tag::SignatureScheme:
    case Tag::ClientVersion:
        return true;
    }
    return false;
}

} // namespace

Operation decode_body(ByteView body) {
    Operation op;
    std::bitset<256> seen;
    size_t i = 0;
    while (i < body.size()) {
        if (body.size() - i < kItemHeaderSize)
            throw FormatError("item header truncated at offset " + std::to_string(i));
        uint8_t tag = body[i];
        size_t len = load_be16(body, i + 1);
        i += kItemHeaderSize;
        if (len > body.size() - i)
            throw FormatError("item " + hex_tag(tag) + " length " + std::to_string(len) +
                              " runs past the body");
        if (is_known(tag) && tag != static_cast<uint8_t>(Tag::Padding)) {
            if (seen[tag]) throw FormatError("repeated tag " + hex_tag(tag));
            seen[tag] = true;
        }
        apply_item(op, tag, body.subspan(i, len));
        i += len;
    }
    return op;
}

namespace {

void append_item(Bytes& out, Tag tag, ByteView value) {
    if (value.size() > kMaxBody - kItemHeaderSize) throw std::length_error("item too large");
    out.push_back(static_cast<uint8_t>(tag));
    append_be16(out, static_cast<uint16_t>(value.size()));
    out.insert(out.end(), value.begin(), value.end());
}

ByteView view(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void append_u16_item(Bytes& out, Tag tag, uint16_t v) {
    std::array<uint8_t, 2> b{static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    append_item(out, tag, b);
}

} // namespace

void encode_into(Bytes& out, uint32_t id, const Operation& op) {
    // The header first, its length filled in once the body is there; the body is appended in
    // place (a reply is encoded straight into the connection's write buffer).
    const size_t start = out.size();
    out.push_back(kMajorVersion);
    out.push_back(kMinorVersion);
    append_be16(out, 0);
    append_be32(out, id);
    // Item order follows gokeyless's encoder, our extension tags last.
    if (op.opcode) {
        const uint8_t code = *op.opcode;
        append_item(out, Tag::Opcode, ByteView(&code, 1));
    }
    if (!op.payload.empty()) append_item(out, Tag::Payload, op.payload);
    if (!op.extra.empty()) append_item(out, Tag::Extra, op.extra);
    if (op.ski) append_item(out, Tag::SubjectKeyIdentifier, *op.ski);
    if (op.cert_digest) append_item(out, Tag::CertificateDigest, *op.cert_digest);
    if (!op.client_ip.empty()) append_item(out, Tag::ClientIP, op.client_ip);
    if (!op.server_ip.empty()) append_item(out, Tag::ServerIP, op.server_ip);
    if (!op.server_name.empty()) append_item(out, Tag::ServerName, view(op.server_name));
    if (!op.cert_id.empty()) append_item(out, Tag::CertID, view(op.cert_id));
    if (!op.custom_func_name.empty())
        append_item(out, Tag::CustomFuncName, view(op.custom_func_name));
    if (!op.jaeger_span.empty()) append_item(out, Tag::JaegerSpan, op.jaeger_span);
    if (!op.req_context.empty()) append_item(out, Tag::ReqContext, view(op.req_context));
    if (op.compliance_region != 0)
        append_item(out, Tag::ComplianceRegion, ByteView(&op.compliance_region, 1));
    if (!op.key_name.empty()) append_item(out, Tag::KeyName, view(op.key_name));
    if (op.signature_scheme) append_u16_item(out, Tag::SignatureScheme, *op.signature_scheme);
    if (op.client_version) append_u16_item(out, Tag::ClientVersion, *op.client_version);

    // Pad so that header + body reaches kPaddedLength; within an item header of it, the padding
    // item is empty (the message then ends 1-2 bytes past 1024), exactly as gokeyless does.
    size_t unpadded = out.size() - start;
    if (unpadded < kPaddedLength) {
        size_t pad = kPaddedLength - std::min(kPaddedLength, unpadded + kItemHeaderSize);
        out.push_back(static_cast<uint8_t>(Tag::Padding));
        append_be16(out, static_cast<uint16_t>(pad));
        out.resize(out.size() + pad, 0);
    }
    size_t body_size = out.size() - start - kHeaderSize;
    if (body_size > kMaxBody) {
        out.resize(start);
        throw std::length_error("message body exceeds 65535 bytes");
    }
    out[start + 2] = static_cast<uint8_t>(body_size >> 8);
    out[start + 3] = static_cast<uint8_t>(body_size);
}

Bytes encode(uint32_t id, const Operation& op) {
    Bytes out;
    out.reserve(kPaddedLength + 8);
    encode_into(out, id, op);
    return out;
}

} // namespace keyless::protocol
