// Catch2 2 (Debian 12) and Catch2 3 (Debian 13 and later) behind one include: the tests use only
// what both have, and the two matchers whose names differ are spelled once here.
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <string>

namespace match {
#if __has_include(<catch2/catch_all.hpp>)
inline auto contains(const std::string& text) {
    return Catch::Matchers::ContainsSubstring(text);
}
inline auto starts_with(const std::string& text) {
    return Catch::Matchers::StartsWith(text);
}
#else
inline auto contains(const std::string& text) {
    return Catch::Contains(text);
}
inline auto starts_with(const std::string& text) {
    return Catch::StartsWith(text);
}
#endif
} // namespace match
