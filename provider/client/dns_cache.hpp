// Keyserver host names for the endpoint set: a name that resolves to several addresses is as
// many endpoints (each dialled at its address, its certificate still checked against the name),
// so a fleet behind DNS is spread over and failed over like a list in the URI. Pure logic: the
// lookups themselves run elsewhere (resolver.hpp, off the I/O thread), and the clock is passed in
// (unit-tested without DNS).
//
// Answers are kept for kTtl; after it, or at once after a connection to one of the name's
// addresses failed, the name is looked up again while the old addresses are still used (a slow
// resolver never stops calls to a known fleet). A failed lookup is remembered for kNegativeTtl:
// calls fail at once naming the reason instead of asking DNS again per call. A temporary failure
// keeps the addresses known before it; a name that DNS says does not exist (or an answer without
// some address) drops them, and the owner forgets those endpoints (no probes of a departed
// server for ever).
#pragma once

#include "uri.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace keyless::client {

// What a lookup of one name found.
struct DnsAnswer {
    std::vector<std::string> addresses; // numeric, in the resolver's order
    std::string error;                  // why there are none
    bool name_gone = false;             // DNS says the name does not exist (not a timeout)
};

// Looks one host name up (blocking).
using HostLookup = std::function<DnsAnswer(const std::string& host)>;

class DnsCache {
  public:
    using Clock = std::chrono::steady_clock;

    // The endpoints a call's URI stands for now.
    struct Expansion {
        std::vector<Endpoint> endpoints;     // usable now: literals, and every known address
        std::vector<std::string> unresolved; // "host:port: cannot resolve host: <why>"
        bool pending = false; // a name has never been answered yet: its lookup is under way
    };
    // Adds what `ep` stands for to `out`: itself for an IP literal, else one endpoint per known
    // address of its name (with `address` set). A name due for a lookup is remembered for
    // take_wanted().
    void expand(const Endpoint& ep, Clock::time_point now, Expansion& out);
    // Names to look up now, each once until answered.
    std::vector<std::string> take_wanted();
    // The lookup of `host` ended: returns the addresses the name no longer has.
    std::vector<std::string> answered(const std::string& host, DnsAnswer answer,
                                      Clock::time_point now);
    // A connection to one of `host`'s addresses failed: look it up again (old addresses stay in
    // use until the answer comes).
    void stale(const std::string& host);

    static constexpr std::chrono::seconds kTtl{30};
    static constexpr std::chrono::seconds kNegativeTtl{5};

  private:
    struct Entry {
        std::vector<std::string> addresses;
        std::string error; // of the last lookup, if it failed
        Clock::time_point expires{};
        bool answered = false;
        bool in_flight = false;
    };
    std::map<std::string, Entry> cache_;
    std::set<std::string> wanted_;
};

bool is_ip_literal(const std::string& host);

// The system resolver (getaddrinfo), numeric addresses in its order. Blocks: resolver.hpp runs it
// on a thread of its own.
DnsAnswer resolve_with_system(const std::string& host);

} // namespace keyless::client
