#include "uri.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace keyless {

namespace {

bool is_dns_name(std::string_view h) {
    if (h.empty() || h.size() > 253) return false;
    size_t label = 0;
    for (size_t i = 0; i < h.size(); ++i) {
        char c = h[i];
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        if (!ok || ++label > 63) return false;
        if (c == '-' && (label == 1 || i + 1 == h.size() || h[i + 1] == '.')) return false;
    }
    return label != 0;
}

uint16_t parse_port(std::string_view p, std::string_view endpoint) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || value == 0 || value > 65535)
        throw UriError("invalid port '" + std::string(p) + "' in '" + std::string(endpoint) +
                       "' (expected 1-65535)");
    return static_cast<uint16_t>(value);
}

} // namespace

std::string Endpoint::to_string() const {
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) +
           (address.empty() ? "" : " (" + address + ")");
}

std::string KeyUri::to_string() const {
    std::string s = std::string(kUriScheme) + ":";
    for (size_t i = 0; i < endpoints.size(); ++i)
        s += (i ? "," : "") + endpoints[i].to_string();
    return s + "/" + key_id;
}

bool is_valid_key_id(std::string_view id) {
    return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    });
}

Endpoint parse_endpoint(std::string_view text) {
    Endpoint ep;
    std::string_view rest;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos)
            throw UriError("unterminated '[' in '" + std::string(text) + "'");
        ep.host = std::string(text.substr(1, close - 1));
        in6_addr a6{};
        if (inet_pton(AF_INET6, ep.host.c_str(), &a6) != 1)
            throw UriError("'" + ep.host + "' is not an IPv6 address");
        rest = text.substr(close + 1);
        if (rest.empty() || rest.front() != ':')
            throw UriError("missing ':PORT' after '[" + ep.host + "]'");
        rest.remove_prefix(1);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos)
            throw UriError("missing ':PORT' in '" + std::string(text) + "'");
        ep.host = std::string(text.substr(0, colon));
        rest = text.substr(colon + 1);
        if (ep.host.find(':') != std::string::npos)
            throw UriError("IPv6 address '" + ep.host + "' must be written in brackets");
        in_addr a4{};
        bool ipv4 = inet_pton(AF_INET, ep.host.c_str(), &a4) == 1;
        if (!ipv4 && !is_dns_name(ep.host))
            throw UriError("'" + ep.host + "' is not a host name or IP address");
    }
    ep.port = parse_port(rest, text);
    return ep;
}

namespace {

std::vector<Endpoint> split_endpoints(std::string_view hosts) {
    std::vector<Endpoint> out;
    while (true) {
        auto comma = hosts.find(',');
        out.push_back(parse_endpoint(hosts.substr(0, comma)));
        if (comma == std::string_view::npos) return out;
        hosts.remove_prefix(comma + 1);
    }
}

} // namespace

KeyUri parse_key_uri(std::string_view uri) {
    auto fail = [&](const std::string& why) -> UriError {
        return UriError("bad key URI '" + std::string(uri) + "': " + why +
                        " (expected keyless:HOST:PORT/KEYID)");
    };
    std::string prefix = std::string(kUriScheme) + ":";
    if (uri.substr(0, prefix.size()) != prefix) throw fail("scheme is not 'keyless:'");
    std::string_view rest = uri.substr(prefix.size());
    if (rest.substr(0, 2) == "//") rest.remove_prefix(2); // tolerate keyless://host:port/id
    auto slash = rest.rfind('/');
    if (slash == std::string_view::npos) throw fail("missing '/KEYID'");
    KeyUri out;
    out.key_id = std::string(rest.substr(slash + 1));
    if (!is_valid_key_id(out.key_id))
        throw fail("key id '" + out.key_id + "' must be 1-128 of letters, digits, '.', '_', '-'");
    std::string_view hosts = rest.substr(0, slash);
    if (hosts.empty()) return out; // keyless:/KEYID: the provider's configured servers
    try {
        out.endpoints = split_endpoints(hosts);
    } catch (const UriError& e) {
        throw fail(e.what());
    }
    return out;
}

std::vector<Endpoint> parse_endpoint_list(std::string_view hosts, std::string_view context) {
    try {
        if (hosts.empty()) throw UriError("empty");
        return split_endpoints(hosts);
    } catch (const UriError& e) {
        throw UriError("bad keyserver list '" + std::string(context) + "': " + e.what() +
                       " (expected HOST:PORT[,HOST:PORT...])");
    }
}

} // namespace keyless
