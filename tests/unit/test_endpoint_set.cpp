// Endpoint selection and health without sockets: least outstanding among healthy endpoints,
// exponential backoff with jitter, background probes, fail-fast reasons.
#include "client/endpoint_set.hpp"

#include "catch.hpp"

#include <map>

using keyless::client::EndpointSet;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kFleet = {"10.0.0.1:2407", "10.0.0.2:2407", "10.0.0.3:2407"};

} // namespace

TEST_CASE("endpoint set: requests go to the healthy endpoint with the fewest outstanding") {
    EndpointSet set([] { return 0.0; });
    // Ties rotate: an idle edge spreads its requests over the whole fleet.
    std::map<std::string, int> chosen;
    for (int i = 0; i < 30; ++i) {
        ++chosen[*set.pick(kFleet, {})];
        set.picked();
    }
    CHECK(chosen == std::map<std::string, int>{{kFleet[0], 10}, {kFleet[1], 10}, {kFleet[2], 10}});
    set.started("10.0.0.2:2407");
    set.started("10.0.0.3:2407");
    set.started("10.0.0.3:2407");
    CHECK(set.pick(kFleet, {}) == "10.0.0.1:2407");
    set.started("10.0.0.1:2407");
    set.finished("10.0.0.3:2407");
    set.finished("10.0.0.3:2407");
    CHECK(set.pick(kFleet, {}) == "10.0.0.3:2407");
    // What a request already tried is skipped.
    CHECK(set.pick(kFleet, {"10.0.0.3:2407", "10.0.0.1:2407"}) == "10.0.0.2:2407");
    CHECK_FALSE(set.pick(kFleet, kFleet));
    set.finished("10.0.0.3:2407"); // never below zero
    CHECK(set.outstanding("10.0.0.3:2407") == 0);
}

TEST_CASE("endpoint set: a failure takes an endpoint out until a probe brings it back") {
    EndpointSet set([] { return 0.0; });
    auto t0 = EndpointSet::Clock::time_point{} + 1h;
    set.failed("10.0.0.2:2407", "cannot connect: Connection refused", t0);
    CHECK_FALSE(set.healthy("10.0.0.2:2407"));
    for (int i = 0; i < 3; ++i)
        set.started("10.0.0.1:2407"); // busier, but the only healthy choice besides .3
    CHECK(set.pick(kFleet, {}) == "10.0.0.3:2407");
    CHECK(set.pick(kFleet, {"10.0.0.3:2407"}) == "10.0.0.1:2407");

    // No probe before the backoff ends; one probe (not two) once it has.
    CHECK(set.take_due_probes(t0 + 249ms).empty());
    CHECK(set.next_probe() == t0 + 250ms);
    CHECK(set.take_due_probes(t0 + 250ms) == std::vector<std::string>{"10.0.0.2:2407"});
    CHECK(set.take_due_probes(t0 + 300ms).empty()); // being probed
    CHECK_FALSE(set.next_probe());
    CHECK_FALSE(set.healthy("10.0.0.2:2407")); // a probe in progress carries no requests
    set.succeeded("10.0.0.2:2407");
    CHECK(set.healthy("10.0.0.2:2407"));
    set.started("10.0.0.3:2407");
    CHECK(set.pick(kFleet, {}) == "10.0.0.2:2407");
}

TEST_CASE("endpoint set: backoff doubles per failed probe, is capped, and has jitter") {
    double jitter = 0.0;
    EndpointSet set([&] { return jitter; });
    auto now = EndpointSet::Clock::time_point{} + 1h;
    std::vector<std::chrono::milliseconds> waits;
    for (int i = 0; i < 6; ++i) {
        set.failed("a:1", "timeout", now);
        auto at = *set.next_probe();
        waits.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(at - now));
        now = at;
        REQUIRE(set.take_due_probes(now).size() == 1);
    }
    CHECK(waits ==
          std::vector<std::chrono::milliseconds>{250ms, 500ms, 1000ms, 2000ms, 2000ms, 2000ms});
    // A success resets the backoff.
    set.succeeded("a:1");
    set.failed("a:1", "reset", now);
    CHECK(*set.next_probe() == now + 250ms);
}

TEST_CASE("endpoint set: a burst of failures counts once, jitter spreads the probes") {
    double jitter = 0.0;
    EndpointSet set([&] { return jitter; });
    auto now = EndpointSet::Clock::time_point{} + 1h;
    // Every request of one dead connection fails at once: that is one failure, not three.
    set.failed("b:1", "reset", now);
    set.failed("b:1", "reset", now + 1ms);
    set.failed("b:1", "reset", now + 2ms);
    CHECK(*set.next_probe() == now + 250ms);
    // Jitter adds up to half the backoff, so a fleet of edges does not come back in step.
    EndpointSet jittered([] { return 0.999; });
    jittered.failed("c:1", "reset", now);
    auto wait = *jittered.next_probe() - now;
    CHECK(wait > 370ms);
    CHECK(wait < 376ms);
}

TEST_CASE("endpoint set: when every endpoint is down, the reason names each one") {
    EndpointSet set([] { return 0.0; });
    auto now = EndpointSet::Clock::time_point{} + 1h;
    set.failed("10.0.0.1:2407", "cannot connect: Connection refused", now);
    set.failed("10.0.0.2:2407", "mTLS handshake with keyserver failed: bad certificate", now);
    set.failed("10.0.0.3:2407", "no reply within 5000 ms", now);
    CHECK_FALSE(set.pick(kFleet, {}));
    std::string why = set.why_all_down(kFleet, now + 100ms);
    CHECK_THAT(why, match::contains("keyserver 10.0.0.1:2407: cannot connect: Connection refused "
                                    "(down; next probe in 0.1 s)"));
    CHECK_THAT(why, match::contains("keyserver 10.0.0.2:2407: mTLS handshake with keyserver "
                                    "failed: bad certificate"));
    CHECK_THAT(why, match::contains("keyserver 10.0.0.3:2407: no reply within 5000 ms"));
}
