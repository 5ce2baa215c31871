// DNS names as keyserver fleets, without DNS: a name with several addresses is several
// endpoints, answers are kept for a TTL and looked up again after it or after a failure.
#include "client/dns_cache.hpp"

#include "catch.hpp"

using keyless::Endpoint;
using keyless::client::DnsCache;
using namespace std::chrono_literals;

TEST_CASE("dns cache: a name with several addresses is several endpoints, kept for a TTL") {
    int lookups = 0;
    std::vector<std::string> answer = {"10.0.0.5", "10.0.0.6"};
    DnsCache dns([&](const std::string& host, std::string& error) {
        ++lookups;
        if (host == "nowhere.invalid") {
            error = "Name or service not known";
            return std::vector<std::string>{};
        }
        return answer;
    });
    auto t0 = DnsCache::Clock::time_point{} + 1h;

    // IP literals are used as they are, without a lookup.
    auto literal = dns.expand({"10.0.0.9", 2407, ""}, t0);
    REQUIRE(literal->size() == 1);
    CHECK((*literal)[0].address.empty());
    CHECK(lookups == 0);

    auto fleet = *dns.expand({"keys.internal", 2407, ""}, t0);
    REQUIRE(fleet.size() == 2);
    CHECK(fleet[0].host == "keys.internal"); // the certificate is checked against the name
    CHECK(fleet[0].address == "10.0.0.5");
    CHECK(fleet[1].to_string() == "keys.internal:2407 (10.0.0.6)");
    CHECK(lookups == 1);

    // Within the TTL: cached; a caller that may not look up gets it too.
    answer = {"10.0.0.7"};
    CHECK(dns.expand({"keys.internal", 2407, ""}, t0 + 29s)->size() == 2);
    CHECK(dns.expand({"keys.internal", 2407, ""}, t0 + 29s, false)->size() == 2);
    CHECK(lookups == 1);
    // After it, the fleet has moved.
    CHECK_FALSE(dns.expand({"keys.internal", 2407, ""}, t0 + 31s, false));
    auto moved = *dns.expand({"keys.internal", 2407, ""}, t0 + 31s);
    REQUIRE(moved.size() == 1);
    CHECK(moved[0].address == "10.0.0.7");
    // After a failure, at once.
    answer = {"10.0.0.8"};
    dns.forget("keys.internal");
    CHECK((*dns.expand({"keys.internal", 2407, ""}, t0 + 32s))[0].address == "10.0.0.8");
    CHECK(lookups == 3);

    // A name that does not resolve stays itself: connecting to it says why.
    auto lost = *dns.expand({"nowhere.invalid", 2407, ""}, t0);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].address.empty());
}
