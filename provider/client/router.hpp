// Where each call to a keyserver goes, and what follows a setback: the routing half of the
// provider's client, apart from the reactor (io_core.hpp) that owns the thread and the sockets.
// Pure logic: no sockets, no threads, the clock passed in, so routing, retries, shedding, probes
// and waits for DNS are unit-tested with a fake clock (tests/unit/test_router.cpp).
//
// It owns the endpoint set (health, load and probes: endpoint_set.hpp), the DNS cache (which
// names to look up; the reactor's resolver looks them up: dns_cache.hpp), each endpoint's
// connection epoch and extension support (extension_support.hpp), and each call's routing state
// (endpoints it tried, the retry it has left, where it is counted) from its first assign() or
// setback until finished(). The reactor carries out what it says. Used on the reactor's thread
// or under its I/O lock, like everything the reactor owns.
#pragma once

#include "call.hpp"
#include "dns_cache.hpp"
#include "endpoint_set.hpp"
#include "extension_support.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace keyless::client {

class Router {
  public:
    using Clock = std::chrono::steady_clock;
    // `jitter` for the endpoint set's backoff; `request_timeout` bounds probes and DNS waits.
    Router(std::function<double()> jitter, std::chrono::milliseconds request_timeout);

    struct Decision {
        enum class Kind {
            Send,     // to `endpoint`: the reactor puts it on a connection and assign()s it
            AwaitDns, // no endpoint of its URI is known yet: kept until answered or expired
            Fail,     // no endpoint can take it: `why` names each one's reason
        };
        Kind kind;
        Endpoint endpoint;
        std::string why;
    };
    // To the healthy endpoint of the call's URI with the fewest requests outstanding (a probe: to
    // the endpoint it probes); DNS names stand for their known addresses.
    Decision route(const std::shared_ptr<Call>& call, Clock::time_point now);
    // The endpoint route() would send `call` to now, if one is known and healthy (for a caller
    // writing its own request: no wait and no failure).
    std::optional<std::string> pick(const Call& call, Clock::time_point now);
    // `call` goes to `endpoint` now: counted there, in the form that endpoint knows (sets
    // call.last_endpoint and call.sent_fallback), and the next tie-break moves on.
    void assign(Call& call, const std::string& endpoint);

    enum class Setback {
        Unsent,         // its connection died before it was sent
        Sent,           // its connection died after it was sent (a retry is allowed once)
        Shed,           // the keyserver answered Overloaded
        LacksOperation, // the keyserver has no such operation, in either form
    };
    // The one "another endpoint, or finish" decision: true when `call` should be routed again
    // (its deadline allows and another endpoint of its URI can take it now, or will once its
    // name is looked up); false when the setback is its answer. Never true for a probe.
    bool retry_elsewhere(Call& call, Setback setback, Clock::time_point now);

    enum class AfterReply { Finish, ResendFallback, Reroute };
    // A reply to `call` came from `endpoint`: it proves the endpoint works; BadOpcode from a
    // keyserver without keyless's extensions has the call resent in gokeyless's form on the
    // same connection (when it has one), else tried elsewhere, as a shed call is.
    AfterReply replied(Call& call, const std::string& endpoint, const protocol::Operation& reply,
                       Clock::time_point now);

    // A connection to `endpoint` died: calls sent later go out in keyless's form again.
    void connection_died(const std::string& endpoint) { ++epochs_[endpoint]; }
    // A connection to `ep` could not be made (refused, TLS, silent): the endpoint is down, and
    // its name is looked up again (its addresses serve meanwhile).
    void connect_failed(const Endpoint& ep, const std::string& why, Clock::time_point now);
    // A call sent to `endpoint` got no reply in time and nothing else was answered: it is down.
    void timed_out(const std::string& endpoint, const std::string& why, Clock::time_point now) {
        endpoints_.failed(endpoint, why, now);
    }
    // `call` completes: its count is released, a probe's result updates its endpoint's health,
    // and its routing state is dropped.
    void finished(const Call& call, const std::optional<protocol::Operation>& response,
                  const std::string& message, Clock::time_point now);

    // Pings for the down endpoints whose backoff has ended, to route like any call.
    std::vector<std::shared_ptr<Call>> due_probes(Clock::time_point now);
    // Names due for a lookup (each once until answered).
    std::vector<std::string> take_lookups() { return dns_.take_wanted(); }
    // The lookup of `host` ended: returns the addresses it no longer has, whose endpoints are
    // forgotten here (health, probes, epochs, extension support); the reactor closes their idle
    // connections.
    std::vector<std::string> answered(const std::string& host, DnsAnswer answer,
                                      Clock::time_point now);
    // The calls that waited for DNS, to route again (after answered()).
    std::vector<std::shared_ptr<Call>> take_dns_waiters() {
        return std::exchange(awaiting_dns_, {});
    }
    // The calls whose deadline passed while they waited for DNS, each with its message.
    std::vector<std::pair<std::shared_ptr<Call>, std::string>>
    expire_dns_waits(Clock::time_point now);
    // When the reactor must look again without any I/O: the next probe or DNS wait deadline.
    std::optional<Clock::time_point> next_wake() const;

    // Read by tests and the reactor's logs.
    const EndpointSet& endpoints() const { return endpoints_; }

  private:
    // A call's routing state, from its first assign() or setback until finished().
    struct Ticket {
        std::vector<std::string> tried; // endpoints that failed it or shed it
        int retries_left = 1;           // once more, elsewhere, if a connection dies under it
        uint64_t epoch = 0;             // of its endpoint's connections when it was sent
        std::string counted_at;         // the endpoint whose outstanding count includes it
    };
    DnsCache::Expansion expand(const Call& call, Clock::time_point now);
    bool can_move(const Call& call, Clock::time_point now);
    const std::vector<std::string>& tried(const Call& call) const;
    void uncount(Ticket& ticket);

    const std::chrono::milliseconds request_timeout_;
    EndpointSet endpoints_;
    DnsCache dns_;
    std::map<std::string, Endpoint> known_;  // by name: what probes dial
    std::map<std::string, uint64_t> epochs_; // per endpoint: connections to it that died
    ExtensionSupport extensions_;            // endpoints that refused keyless's extensions
    std::map<const Call*, Ticket> tickets_;
    std::vector<std::shared_ptr<Call>> awaiting_dns_;
};

std::vector<std::string> names_of(const std::vector<Endpoint>& endpoints);

} // namespace keyless::client
