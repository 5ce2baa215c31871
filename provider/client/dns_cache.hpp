// Keyserver host names for the endpoint set: a name that resolves to several addresses is as
// many endpoints (each dialled at its address, its certificate still checked against the name),
// so a fleet behind DNS is spread over and failed over like a list in the URI. Answers are kept
// for kTtl and resolved again after that, and at once after a connection to one of the name's
// addresses fails, so a fleet can move without restarting edges. Pure logic: the resolver and
// the clock are passed in (unit-tested without DNS).
#pragma once

#include "uri.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace keyless::client {

class DnsCache {
  public:
    using Clock = std::chrono::steady_clock;
    // Returns the addresses of `host` (numeric, as text), or none and sets `error`.
    using Resolver =
        std::function<std::vector<std::string>(const std::string& host, std::string& error)>;
    explicit DnsCache(Resolver resolve) : resolve_(std::move(resolve)) {}

    // The endpoints `ep` stands for: itself for an IP literal (or a name that does not resolve:
    // connecting to it then says why), else one per address, with `address` set. With
    // `may_resolve` false, a name not in the cache gives nullopt instead of a lookup.
    std::optional<std::vector<Endpoint>> expand(const Endpoint& ep, Clock::time_point now,
                                                bool may_resolve = true);
    // Forgets `host`'s addresses: the next expand() resolves it again.
    void forget(const std::string& host) { cache_.erase(host); }

    static constexpr std::chrono::seconds kTtl{30};

  private:
    struct Entry {
        std::vector<std::string> addresses;
        Clock::time_point expires;
    };
    Resolver resolve_;
    std::map<std::string, Entry> cache_;
};

// The system resolver (getaddrinfo), numeric addresses in its order.
std::vector<std::string> resolve_with_system(const std::string& host, std::string& error);

} // namespace keyless::client
