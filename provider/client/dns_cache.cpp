#include "dns_cache.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>

namespace keyless::client {

namespace {

bool is_ip_literal(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

} // namespace

std::optional<std::vector<Endpoint>> DnsCache::expand(const Endpoint& ep, Clock::time_point now,
                                                      bool may_resolve) {
    if (is_ip_literal(ep.host)) return std::vector<Endpoint>{ep};
    auto it = cache_.find(ep.host);
    if (it == cache_.end() || now >= it->second.expires) {
        if (!may_resolve) return std::nullopt;
        std::string error;
        auto addresses = resolve_(ep.host, error);
        if (addresses.empty()) return std::vector<Endpoint>{ep}; // connecting says why
        it = cache_.insert_or_assign(ep.host, Entry{std::move(addresses), now + kTtl}).first;
    }
    std::vector<Endpoint> out;
    for (const auto& address : it->second.addresses) {
        Endpoint concrete = ep;
        concrete.address = address;
        out.push_back(std::move(concrete));
    }
    return out;
}

std::vector<std::string> resolve_with_system(const std::string& host, std::string& error) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0) {
        error = gai_strerror(rc);
        return {};
    }
    std::vector<std::string> out;
    for (addrinfo* a = res; a; a = a->ai_next) {
        char text[INET6_ADDRSTRLEN] = {};
        const void* raw =
            a->ai_family == AF_INET
                ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
        if (inet_ntop(a->ai_family, raw, text, sizeof text) &&
            std::find(out.begin(), out.end(), text) == out.end())
            out.push_back(text);
    }
    ::freeaddrinfo(res);
    return out;
}

} // namespace keyless::client
