#include "algorithms.hpp"

#include <cctype>

namespace keyless::algorithms {

namespace {

bool same_name(std::string_view a, std::string_view b) {
    size_t i = 0, j = 0;
    while (true) {
        while (i < a.size() && a[i] == '-')
            ++i;
        while (j < b.size() && b[j] == '-')
            ++j;
        if (i == a.size() || j == b.size()) return i == a.size() && j == b.size();
        if (std::toupper(static_cast<unsigned char>(a[i++])) !=
            std::toupper(static_cast<unsigned char>(b[j++])))
            return false;
    }
}

} // namespace

std::span<const Digest> digests() {
    return kDigests;
}

std::optional<size_t> digest_slot(const Digest& digest) {
    for (size_t i = 0; i < std::size(kDigests); ++i)
        if (&kDigests[i] == &digest) return i;
    return std::nullopt;
}

const Digest* digest_named(std::string_view name) {
    for (const auto& d : kDigests)
        if (same_name(d.name, name)) return &d;
    return nullptr;
}

std::optional<DigestSigning> digest_signing(uint8_t opcode) {
    for (const auto& d : kDigests)
        for (auto padding : {Padding::PKCS1, Padding::PSS, Padding::None})
            if (d.opcode(padding) != Opcode::Error &&
                static_cast<uint8_t>(d.opcode(padding)) == opcode)
                return DigestSigning{&d, padding};
    return std::nullopt;
}

} // namespace keyless::algorithms
