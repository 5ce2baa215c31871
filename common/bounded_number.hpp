// Whole decimal numbers from text that people type (command-line flags): all of the text is the
// number, with no sign, space or suffix ("5x", "-1", " 5" and "" are not numbers).
#pragma once

#include <charconv>
#include <optional>
#include <string_view>

namespace keyless {

inline std::optional<unsigned long> bounded_number(std::string_view text, unsigned long min,
                                                   unsigned long max) {
    unsigned long n = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || error != std::errc() || end != text.data() + text.size() || n < min ||
        n > max)
        return std::nullopt;
    return n;
}

} // namespace keyless
