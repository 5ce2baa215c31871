// DNS names as keyserver fleets, without DNS: a name with several addresses is several
// endpoints; answers are kept for a TTL and looked up again (in the background) after it or
// after a failure; failed lookups are remembered briefly; addresses that left are reported.
#include "client/dns_cache.hpp"

#include "catch.hpp"

using keyless::Endpoint;
using keyless::client::DnsAnswer;
using keyless::client::DnsCache;
using namespace std::chrono_literals;

namespace {

DnsCache::Expansion expand(DnsCache& dns, const Endpoint& ep, DnsCache::Clock::time_point now) {
    DnsCache::Expansion out;
    dns.expand(ep, now, out);
    return out;
}

} // namespace

TEST_CASE("dns cache: a name with several addresses is several endpoints, kept for a TTL") {
    DnsCache dns;
    auto t0 = DnsCache::Clock::time_point{} + 1h;
    const Endpoint keys{"keys.internal", 2407, ""};

    // IP literals are used as they are, without a lookup.
    auto literal = expand(dns, {"10.0.0.9", 2407, ""}, t0);
    REQUIRE(literal.endpoints.size() == 1);
    CHECK(literal.endpoints[0].address.empty());
    CHECK(dns.take_wanted().empty());

    // A name never looked up: nothing usable yet, one lookup wanted however often it is asked.
    auto first = expand(dns, keys, t0);
    CHECK(first.pending);
    CHECK(first.endpoints.empty());
    expand(dns, keys, t0);
    CHECK(dns.take_wanted() == std::vector<std::string>{"keys.internal"});
    expand(dns, keys, t0);
    CHECK(dns.take_wanted().empty()); // in flight

    CHECK(
        dns.answered("keys.internal", DnsAnswer{{"10.0.0.5", "10.0.0.6"}, "", false}, t0).empty());
    auto fleet = expand(dns, keys, t0);
    CHECK_FALSE(fleet.pending);
    REQUIRE(fleet.endpoints.size() == 2);
    CHECK(fleet.endpoints[0].host == "keys.internal"); // the certificate is checked against it
    CHECK(fleet.endpoints[0].address == "10.0.0.5");
    CHECK(fleet.endpoints[1].to_string() == "keys.internal:2407 (10.0.0.6)");

    // Within the TTL: cached, no lookup.
    CHECK(expand(dns, keys, t0 + 29s).endpoints.size() == 2);
    CHECK(dns.take_wanted().empty());
    // After it: the old addresses serve while the name is looked up again.
    CHECK(expand(dns, keys, t0 + 31s).endpoints.size() == 2);
    CHECK(dns.take_wanted() == std::vector<std::string>{"keys.internal"});
    // The fleet moved: the address that left is reported (its endpoint is forgotten).
    auto left =
        dns.answered("keys.internal", DnsAnswer{{"10.0.0.6", "10.0.0.7"}, "", false}, t0 + 31s);
    CHECK(left == std::vector<std::string>{"10.0.0.5"});
    CHECK(expand(dns, keys, t0 + 32s).endpoints[1].address == "10.0.0.7");

    // After a connection failure: looked up again at once, the addresses still in use meanwhile.
    dns.stale("keys.internal");
    CHECK(expand(dns, keys, t0 + 33s).endpoints.size() == 2);
    CHECK(dns.take_wanted() == std::vector<std::string>{"keys.internal"});
}

TEST_CASE("dns cache: failed lookups are remembered briefly, a timeout keeps the fleet") {
    DnsCache dns;
    auto t0 = DnsCache::Clock::time_point{} + 1h;
    const Endpoint gone{"nowhere.invalid", 2407, ""};

    expand(dns, gone, t0);
    REQUIRE(dns.take_wanted().size() == 1);
    dns.answered("nowhere.invalid", DnsAnswer{{}, "Name or service not known", true}, t0);
    // Calls fail at once, naming the reason, without asking DNS again within kNegativeTtl.
    auto lost = expand(dns, gone, t0 + 4s);
    CHECK_FALSE(lost.pending);
    CHECK(lost.endpoints.empty());
    REQUIRE(lost.unresolved.size() == 1);
    CHECK(lost.unresolved[0] ==
          "nowhere.invalid:2407: cannot resolve host: Name or service not known");
    CHECK(dns.take_wanted().empty());
    // After it, asked again (calls still fail fast with the last reason meanwhile).
    CHECK(expand(dns, gone, t0 + 6s).unresolved.size() == 1);
    CHECK(dns.take_wanted().size() == 1);

    // A resolver that times out says nothing about the fleet: its addresses stay in use, and the
    // name is asked again after kNegativeTtl, not kTtl.
    const Endpoint keys{"keys.internal", 2407, ""};
    expand(dns, keys, t0);
    dns.take_wanted();
    dns.answered("keys.internal", DnsAnswer{{"10.0.0.5"}, "", false}, t0);
    dns.stale("keys.internal");
    expand(dns, keys, t0 + 1s);
    dns.take_wanted();
    CHECK(dns.answered("keys.internal",
                       DnsAnswer{{}, "Temporary failure in name resolution", false}, t0 + 3s)
              .empty());
    CHECK(expand(dns, keys, t0 + 4s).endpoints.size() == 1);
    CHECK(dns.take_wanted().empty());
    expand(dns, keys, t0 + 9s);
    CHECK(dns.take_wanted().size() == 1);
    // DNS says the name is gone: its addresses left with it.
    CHECK(dns.answered("keys.internal", DnsAnswer{{}, "Name or service not known", true},
                       t0 + 9s) == std::vector<std::string>{"10.0.0.5"});
    CHECK(expand(dns, keys, t0 + 10s).endpoints.empty());
}
