// The access log's hand-written JSON strings must be exactly what nlohmann's dump() with
// replacement of invalid UTF-8 writes: any string a client can put in a log line (key names,
// identities) stays one valid JSON string.
#include "observe/json_text.hpp"

#include "catch.hpp"
#include <nlohmann/json.hpp>

#include <random>

using keyless::keyserver::append_json_string;

namespace {

std::string reference(const std::string& s) {
    return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ours(const std::string& s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

} // namespace

TEST_CASE("access-log JSON strings match nlohmann on crafted input") {
    for (std::string s :
         {std::string(""), std::string("plain edge-1"), std::string("q\"b\\s/"),
          std::string("\n\r\t\b\f\x01\x1f\x7f", 8), std::string("\0x", 2),
          std::string("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\x91"), std::string("\xC3"),
          std::string("\xE2\x82"), std::string("\xE2\x82X"), std::string("\xC0\xAF"),
          std::string("\xE0\x80\x80"), std::string("\xED\xA0\x80"), std::string("\xF4\x90\x80\x80"),
          std::string("\xF5\xFF\x80"), std::string("\xF0\x9F\x94")}) {
        INFO(reference(s));
        CHECK(ours(s) == reference(s));
    }
}

TEST_CASE("access-log JSON strings match nlohmann on random bytes") {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> len(0, 24), byte(0, 255), pick(0, 3);
    // Biased towards UTF-8 lead and continuation bytes, where the edge cases are.
    const uint8_t interesting[] = {0x80, 0xBF, 0xC2, 0xDF, 0xE0, 0xED, 0xEF,
                                   0xF0, 0xF4, 0xA0, 0x9F, 0x8F, 0x90};
    for (int i = 0; i < 200000; ++i) {
        std::string s;
        for (int n = len(rng); n > 0; --n)
            s.push_back(static_cast<char>(
                pick(rng) == 0 ? interesting[static_cast<size_t>(byte(rng)) % sizeof interesting]
                               : byte(rng)));
        if (ours(s) != reference(s)) {
            FAIL_CHECK("differs for input of " << s.size() << " bytes: " << reference(s));
            break;
        }
    }
}
