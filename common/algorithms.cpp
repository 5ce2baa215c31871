#include "algorithms.hpp"

#include <array>
#include <cctype>

namespace keyless::algorithms {

namespace {

using protocol::Opcode;

constexpr std::array kDigests{
    Digest{"MD5-SHA1", 36, Opcode::RSASignMD5SHA1, Opcode::Error, Opcode::ECDSASignMD5SHA1},
    Digest{"SHA1", 20, Opcode::RSASignSHA1, Opcode::Error, Opcode::ECDSASignSHA1},
    Digest{"SHA224", 28, Opcode::RSASignSHA224, Opcode::Error, Opcode::ECDSASignSHA224},
    Digest{"SHA256", 32, Opcode::RSASignSHA256, Opcode::RSAPSSSignSHA256, Opcode::ECDSASignSHA256},
    Digest{"SHA384", 48, Opcode::RSASignSHA384, Opcode::RSAPSSSignSHA384, Opcode::ECDSASignSHA384},
    Digest{"SHA512", 64, Opcode::RSASignSHA512, Opcode::RSAPSSSignSHA512, Opcode::ECDSASignSHA512},
};

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

const Digest* digest_named(std::string_view name) {
    for (const auto& d : kDigests)
        if (same_name(d.name, name)) return &d;
    return nullptr;
}

std::optional<DigestSigning> digest_signing(uint8_t opcode) {
    for (const auto& d : kDigests)
        for (auto padding : {tls::Padding::PKCS1, tls::Padding::PSS, tls::Padding::None})
            if (d.opcode(padding) != Opcode::Error &&
                static_cast<uint8_t>(d.opcode(padding)) == opcode)
                return DigestSigning{&d, padding};
    return std::nullopt;
}

} // namespace keyless::algorithms
