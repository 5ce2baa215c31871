// The unauthenticated handshake budget: per-source shares and eviction of the oldest.
#include "net/handshake_budget.hpp"

#include "catch.hpp"

using keyless::keyserver::HandshakeBudget;

TEST_CASE("handshake budget: a full budget evicts the oldest, a source cannot take it all") {
    HandshakeBudget<int> budget(4, 2);
    std::vector<int> evicted;
    auto a1 = budget.admit("10.0.0.1", 1, evicted);
    auto a2 = budget.admit("10.0.0.1", 2, evicted);
    REQUIRE(a1);
    REQUIRE(a2);
    CHECK_FALSE(budget.admit("10.0.0.1", 3, evicted)); // its share is used
    CHECK(evicted.empty());
    auto b1 = budget.admit("10.0.0.2", 4, evicted);
    auto b2 = budget.admit("10.0.0.2", 5, evicted);
    CHECK(budget.size() == 4);
    CHECK(evicted.empty());

    // Full: an edge's handshake evicts the oldest (1), not the newcomer.
    auto edge = budget.admit("10.0.0.9", 6, evicted);
    REQUIRE(edge);
    CHECK(evicted == std::vector<int>{1});
    CHECK(budget.size() == 4);
    // The evicted one's share is free again; leaving twice is harmless.
    budget.leave(*a1);
    CHECK(budget.admit("10.0.0.1", 7, evicted));
    CHECK(evicted == std::vector<int>{1, 2});

    budget.leave(*edge);
    budget.leave(*edge);
    budget.leave(*b1);
    budget.leave(*b2);
    CHECK(budget.size() == 1);
}
