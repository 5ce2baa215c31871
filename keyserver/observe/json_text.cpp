#include "observe/json_text.hpp"

#include <cstdint>

namespace keyless::keyserver {

namespace {

// At text[at], a byte of 0x80 or above: how many bytes form a well-formed UTF-8 sequence there
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or, when none does, how
// many bytes form the broken start of one (at least 1), which is replaced as a whole.
struct Utf8Run {
    size_t length;
    bool valid;
};

Utf8Run utf8_run(std::string_view text, size_t at) {
    auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
    uint8_t lead = byte(at);
    size_t len = lead >= 0xC2 && lead <= 0xDF   ? 2
                 : lead >= 0xE0 && lead <= 0xEF ? 3
                 : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                : 0;
    if (len == 0) return {1, false};
    uint8_t lo = 0x80, hi = 0xBF; // the range of the second byte
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
    size_t fit = 1;
    while (fit < len && at + fit < text.size()) {
        uint8_t b = byte(at + fit);
        if (fit == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
        ++fit;
    }
    return {fit, fit == len};
}

} // namespace

void append_json_string(std::string& out, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out.push_back('"');
    size_t i = 0;
    while (i < text.size()) {
        // The common case, printable ASCII, is copied in runs.
        size_t run = i;
        while (run < text.size()) {
            auto c = static_cast<uint8_t>(text[run]);
            if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
            ++run;
        }
        out.append(text.data() + i, run - i);
        i = run;
        if (i == text.size()) break;
        auto c = static_cast<uint8_t>(text[i]);
        if (c >= 0x80) {
            Utf8Run r = utf8_run(text, i);
            if (r.valid)
                out.append(text.data() + i, r.length);
            else
                out.append("\xEF\xBF\xBD"); // U+FFFD
            i += r.length;
            continue;
        }
        switch (c) {
        case '"':
            out.append("\\\"");
            break;
        case '\\':
            out.append("\\\\");
            break;
        case '\b':
            out.append("\\b");
            break;
        case '\f':
            out.append("\\f");
            break;
        case '\n':
            out.append("\\n");
            break;
        case '\r':
            out.append("\\r");
            break;
        case '\t':
            out.append("\\t");
            break;
        default:
            out.append("\\u00");
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0xF]);
        }
        ++i;
    }
    out.push_back('"');
}

} // namespace keyless::keyserver
