#include "frames.hpp"
#include "protocol.hpp"

#include "catch.hpp"

using namespace keyless;
using namespace keyless::protocol;

namespace {

// Builds a frame by hand from the spec (no use of the encoder): header, items in gokeyless order,
// then the padding item that brings the message to 1024 bytes.
Bytes frame(uint32_t id, std::initializer_list<Bytes> items) {
    Bytes body = test::cat(items);
    size_t pad = 1024 - 8 - body.size() - 3;
    body.push_back(0x20);
    body.push_back(static_cast<uint8_t>(pad >> 8));
    body.push_back(static_cast<uint8_t>(pad));
    body.insert(body.end(), pad, 0x00);
    return test::raw_frame(0x01, id, body);
}

Bytes item(uint8_t tag, const Bytes& value) {
    return test::tlv(tag, value);
}

Bytes body_of(const Bytes& message) {
    return Bytes(message.begin() + 8, message.end());
}

const Bytes kSki = {0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13,
                    0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d};

} // namespace

TEST_CASE("ping encodes byte-exactly as gokeyless does") {
    Bytes msg = encode(0x01020304, Operation::make(Opcode::Ping, {'h', 'i'}));
    REQUIRE(msg.size() == 1024);
    // header: version 1.0, body length 1016 (0x03F8), id 0x01020304
    CHECK(Bytes(msg.begin(), msg.begin() + 8) ==
          Bytes{0x01, 0x00, 0x03, 0xF8, 0x01, 0x02, 0x03, 0x04});
    // opcode item, payload item, padding item of 1004 zero bytes
    CHECK(Bytes(msg.begin() + 8, msg.begin() + 25) == Bytes{0x11, 0x00, 0x01, 0xF1, 0x12, 0x00,
                                                            0x02, 'h', 'i', 0x20, 0x03, 0xEC, 0, 0,
                                                            0, 0, 0});
    CHECK(std::all_of(msg.begin() + 20, msg.end(), [](uint8_t b) { return b == 0; }));
}

TEST_CASE("every opcode encodes and decodes byte-exactly") {
    const uint8_t opcodes[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x12,
                               0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x35, 0x36,
                               0x37, 0xF0, 0xF1, 0xF2, 0xFF, 0xC0, 0xC1, 0xC2};
    for (uint8_t code : opcodes) {
        CAPTURE(int(code));
        Operation op;
        op.opcode = code;
        op.payload = Bytes{0xde, 0xad, 0xbe, 0xef};
        op.ski = std::array<uint8_t, 20>{};
        std::copy(kSki.begin(), kSki.end(), op.ski->begin());
        Bytes expected =
            frame(7, {item(0x11, {code}), item(0x12, {0xde, 0xad, 0xbe, 0xef}), item(0x04, kSki)});
        CHECK(encode(7, op) == expected);
        Operation back = decode_body(body_of(expected));
        CHECK(back.opcode == code);
        CHECK(back.payload == op.payload);
        CHECK(back.ski == op.ski);
    }
}

TEST_CASE("extension items: key name, signature scheme, client version") {
    Operation op = Operation::make(Opcode::SignTLS, {1, 2, 3});
    op.key_name = "rsa2048";
    op.signature_scheme = 0x0804;
    op.client_version = 0x0303;
    Bytes expected = frame(0xFFFFFFFF, {item(0x11, {0xC1}), item(0x12, {1, 2, 3}),
                                        item(0xC0, {'r', 's', 'a', '2', '0', '4', '8'}),
                                        item(0xC1, {0x08, 0x04}), item(0xC2, {0x03, 0x03})});
    CHECK(encode(0xFFFFFFFF, op) == expected);
    Operation back = decode_body(body_of(expected));
    CHECK(back.key_name == "rsa2048");
    CHECK(back.signature_scheme == 0x0804);
    CHECK(back.client_version == 0x0303);
}

TEST_CASE("gokeyless items: SNI, IPs, cert id, digest round-trip in gokeyless order") {
    Operation op = Operation::make(Opcode::ECDSASignSHA256, Bytes(32, 0x55));
    op.server_name = "example.com";
    op.client_ip = {127, 0, 0, 1};
    op.server_ip = Bytes(16, 1);
    op.cert_id = "c1";
    op.cert_digest = std::array<uint8_t, 32>{};
    Bytes expected =
        frame(9, {item(0x11, {0x15}), item(0x12, Bytes(32, 0x55)), item(0x01, Bytes(32, 0)),
                  item(0x03, {127, 0, 0, 1}), item(0x05, Bytes(16, 1)),
                  item(0x02, {'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm'}),
                  item(0x06, {'c', '1'})});
    CHECK(encode(9, op) == expected);
    Operation back = decode_body(body_of(expected));
    CHECK(back.server_name == "example.com");
    CHECK(back.client_ip == op.client_ip);
    CHECK(back.server_ip == op.server_ip);
    CHECK(back.cert_id == "c1");
}

TEST_CASE("error responses carry one code byte") {
    Bytes expected = frame(3, {item(0x11, {0xFF}), item(0x12, {0xC0})});
    CHECK(encode(3, Operation::error(ErrorCode::PolicyDenied)) == expected);
    CHECK(error_of(decode_body(body_of(expected))) == ErrorCode::PolicyDenied);
    CHECK(error_of(Operation::make(Opcode::Response)) == ErrorCode::None);
}

TEST_CASE("padding: large messages are not padded, near-1024 ones get an empty padding item") {
    Bytes big = encode(1, Operation::make(Opcode::Ping, Bytes(2000, 7)));
    CHECK(big.size() == 8 + 4 + 3 + 2000);
    // header 8 + opcode 4 + payload item (3 + n): 1022 bytes leaves no room for padding data
    Bytes near = encode(1, Operation::make(Opcode::Ping, Bytes(1022 - 8 - 4 - 3, 7)));
    CHECK(near.size() == 1025);
    CHECK(Bytes(near.end() - 3, near.end()) == Bytes{0x20, 0x00, 0x00});
}

TEST_CASE("decode_header reads version, length and id big-endian") {
    Bytes h{0x01, 0x00, 0x12, 0x34, 0xA0, 0xB0, 0xC0, 0xD0};
    Header header = decode_header(h);
    CHECK(header.major == 1);
    CHECK(header.minor == 0);
    CHECK(header.body_length == 0x1234);
    CHECK(header.id == 0xA0B0C0D0);
    CHECK_THROWS_WITH(decode_header(Bytes{1, 0, 0}), "header truncated");
}

TEST_CASE("unknown tags are skipped") {
    Bytes body = item(0x99, {1, 2, 3});
    Bytes op = item(0x11, {0xF1});
    body.insert(body.end(), op.begin(), op.end());
    CHECK(decode_body(body).is(Opcode::Ping));
}

TEST_CASE("decoder rejections carry a precise reason") {
    auto reason = [](Bytes body) {
        try {
            decode_body(body);
        } catch (const FormatError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK(reason({0x11, 0x00}) == "item header truncated at offset 0");
    CHECK(reason({0x11, 0x00, 0x05, 0xF1}) == "item 0x11 length 5 runs past the body");
    CHECK(reason({0x11, 0x00, 0x01, 0xF1, 0x11, 0x00, 0x01, 0xF1}) == "repeated tag 0x11");
    CHECK(reason({0x11, 0x00, 0x02, 0xF1, 0xF1}) == "opcode must be 1 bytes, got 2");
    CHECK(reason(item(0x04, Bytes(19, 0))) == "SKI must be 20 bytes, got 19");
    CHECK(reason(item(0x01, Bytes(31, 0))) == "certificate digest must be 32 bytes, got 31");
    CHECK(reason(item(0x03, Bytes(5, 0))) == "client IP must be 4 or 16 bytes, got 5");
    CHECK(reason(item(0x05, Bytes(3, 0))) == "server IP must be 4 or 16 bytes, got 3");
    CHECK(reason(item(0xC1, Bytes(3, 0))) == "signature scheme must be 2 bytes, got 3");
    CHECK(reason(item(0xC2, Bytes(1, 0))) == "client version must be 2 bytes, got 1");
    CHECK(reason(item(0x17, Bytes(2, 0))) == "compliance region must be 1 bytes, got 2");
    // repeated padding is harmless and accepted
    Bytes two_pads = item(0x20, {0});
    two_pads.insert(two_pads.end(), two_pads.begin(), two_pads.end());
    CHECK(reason(two_pads) == "accepted");
}

TEST_CASE("error code and opcode names") {
    CHECK(to_string(ErrorCode::PolicyDenied) == "denied by policy");
    CHECK(to_string(ErrorCode::KeyNotFound) == "key not found");
    CHECK(to_string(Opcode::SignTLS) == "sign-tls");
}
