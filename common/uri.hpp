// keyless:HOST:PORT[,HOST:PORT...]/KEYID — the key references users write in configs.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace keyless {

inline constexpr std::string_view kUriScheme = "keyless";

struct Endpoint {
    std::string host; // DNS name, IPv4 literal, or IPv6 literal without brackets
    uint16_t port = 0;
    // One of a DNS name's addresses (the client's resolver sets it): dialled instead of
    // `host`, whose name the certificate must still carry. Empty in URIs.
    std::string address;
    // "host:port" (brackets IPv6 literals), and " (address)" when one is set.
    std::string to_string() const;
    bool operator==(const Endpoint&) const = default;
};

struct KeyUri {
    // Empty for keyless:/KEYID: the keyservers the provider's `servers` setting names.
    std::vector<Endpoint> endpoints;
    std::string key_id;
    std::string to_string() const;
};

class UriError : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

// Throws UriError whose message quotes the URI and says what is wrong with it.
KeyUri parse_key_uri(std::string_view uri);
// One "HOST:PORT" (IPv6 as "[addr]:PORT").
Endpoint parse_endpoint(std::string_view text);
// "HOST:PORT,HOST:PORT"; throws UriError naming `context` (the URI or setting it came from).
std::vector<Endpoint> parse_endpoint_list(std::string_view hosts, std::string_view context);
// A key id: 1-128 of letters, digits, '.', '_', '-'.
bool is_valid_key_id(std::string_view id);

} // namespace keyless
