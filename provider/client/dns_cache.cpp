#include "dns_cache.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>

namespace keyless::client {

bool is_ip_literal(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

void DnsCache::expand(const Endpoint& ep, Clock::time_point now, Expansion& out) {
    if (is_ip_literal(ep.host)) {
        out.endpoints.push_back(ep);
        return;
    }
    Entry& entry = cache_[ep.host];
    if (!entry.in_flight && (!entry.answered || now >= entry.expires)) wanted_.insert(ep.host);
    if (!entry.answered) {
        out.pending = true;
        return;
    }
    if (entry.addresses.empty()) {
        out.unresolved.push_back(ep.to_string() + ": cannot resolve host: " + entry.error);
        return;
    }
    for (const auto& address : entry.addresses) {
        Endpoint concrete = ep;
        concrete.address = address;
        out.endpoints.push_back(std::move(concrete));
    }
}

std::vector<std::string> DnsCache::take_wanted() {
    std::vector<std::string> out(wanted_.begin(), wanted_.end());
    for (const auto& host : out)
        cache_[host].in_flight = true;
    wanted_.clear();
    return out;
}

std::vector<std::string> DnsCache::answered(const std::string& host, DnsAnswer answer,
                                            Clock::time_point now) {
    Entry& entry = cache_[host];
    entry.in_flight = false;
    entry.answered = true;
    std::vector<std::string> left;
    if (answer.addresses.empty() && !answer.name_gone) {
        // A timeout or a resolver that is down says nothing about the fleet: keep what was known.
        entry.error = answer.error;
        entry.expires = now + kNegativeTtl;
        return left;
    }
    for (const auto& old : entry.addresses)
        if (std::find(answer.addresses.begin(), answer.addresses.end(), old) ==
            answer.addresses.end())
            left.push_back(old);
    entry.addresses = std::move(answer.addresses);
    entry.error = answer.error;
    entry.expires = now + (entry.addresses.empty() ? Clock::duration(kNegativeTtl) : kTtl);
    return left;
}

void DnsCache::stale(const std::string& host) {
    auto it = cache_.find(host);
    if (it != cache_.end()) it->second.expires = Clock::time_point{};
}

DnsAnswer resolve_with_system(const std::string& host) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0) {
        DnsAnswer failed;
        failed.error = rc == EAI_SYSTEM ? std::string("system error") : gai_strerror(rc);
        failed.name_gone = rc == EAI_NONAME;
        return failed;
    }
    DnsAnswer found;
    for (addrinfo* a = res; a; a = a->ai_next) {
        char text[INET6_ADDRSTRLEN] = {};
        const void* raw =
            a->ai_family == AF_INET
                ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
        if (inet_ntop(a->ai_family, raw, text, sizeof text) &&
            std::find(found.addresses.begin(), found.addresses.end(), text) ==
                found.addresses.end())
            found.addresses.push_back(text);
    }
    ::freeaddrinfo(res);
    return found;
}

} // namespace keyless::client
