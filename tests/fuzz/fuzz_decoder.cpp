// libFuzzer target: the frame decoder must never crash, hang or read out of bounds, and whatever
// it accepts must re-encode and decode to the same operation.
#include "protocol.hpp"

#include <cstdlib>

using namespace keyless::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    keyless::ByteView in(data, size);
    if (size < kHeaderSize) return 0;
    Header h = decode_header(in);
    auto body = in.subspan(kHeaderSize);
    if (body.size() > h.body_length) body = body.first(h.body_length);
    try {
        Operation op = decode_body(body);
        auto again = encode(h.id, op);
        Operation back = decode_body(keyless::ByteView(again).subspan(kHeaderSize));
        if (back.opcode != op.opcode || back.payload != op.payload || back.ski != op.ski ||
            back.key_name != op.key_name || back.signature_scheme != op.signature_scheme)
            std::abort();
    } catch (const FormatError&) {
    } catch (const std::length_error&) {
    }
    return 0;
}
