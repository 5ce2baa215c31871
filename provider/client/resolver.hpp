// Host name lookups off the client's I/O thread: getaddrinfo blocks for as long as the system's
// resolver takes (seconds when a DNS server is slow or gone), and the I/O thread serves every
// keyserver call of the process. Each name is looked up on a thread of its own (one at a time
// per name, at most kMaxLookups at once); the answer is queued for the I/O thread and the
// thread woken. Nothing waits for a lookup: closing the resolver drops the answers of lookups
// still running (their threads end on their own; keyless.so is linked never to be unloaded, so
// their code stays mapped).
#pragma once

#include "dns_cache.hpp"

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace keyless::client {

class Resolver {
  public:
    using Lookup = HostLookup;
    // `wake` is called (from a lookup's thread) when an answer is queued; never after close().
    Resolver(Lookup lookup, std::function<void()> wake);
    ~Resolver() { close(); }
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    // Starts looking `host` up, unless that is under way. When no thread can be made, the answer
    // is that failure (cached briefly like any failed lookup, then asked for again).
    void request(const std::string& host);
    // Answers that arrived since the last take, by host.
    std::vector<std::pair<std::string, DnsAnswer>> take_answers();
    // No more wakes; answers still to come are dropped.
    void close();

    static constexpr size_t kMaxLookups = 16;

  private:
    // Shared with the lookup threads, which may outlive the resolver.
    struct Shared {
        std::mutex mutex;
        Lookup lookup;
        std::function<void()> wake;
        bool closed = false;
        std::set<std::string> running;
        std::deque<std::string> queued; // beyond kMaxLookups
        std::vector<std::pair<std::string, DnsAnswer>> answers;
    };
    static void start(const std::shared_ptr<Shared>& shared, const std::string& host);
    std::shared_ptr<Shared> shared_;
};

} // namespace keyless::client
