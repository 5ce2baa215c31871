// The client's router without sockets or threads, on a fake clock: where calls go, what a
// setback (a dead connection, a shed request, a missing operation) does, probes of down
// endpoints, and calls that wait for DNS.
#include "client/router.hpp"

#include "catch.hpp"

using namespace keyless;
using namespace keyless::client;
using namespace std::chrono_literals;
using protocol::ErrorCode;
using protocol::Opcode;
using protocol::Operation;
using Kind = Router::Decision::Kind;

namespace {

const Router::Clock::time_point kStart{std::chrono::hours(1)};
const Endpoint kA{"10.0.0.1", 2407, ""};
const Endpoint kB{"10.0.0.2", 2407, ""};
const std::string kNameA = "10.0.0.1:2407", kNameB = "10.0.0.2:2407";

std::shared_ptr<Call> call_to(std::vector<Endpoint> endpoints,
                              Router::Clock::time_point deadline = kStart + 1s,
                              std::optional<Operation> fallback = std::nullopt) {
    return std::make_shared<Call>(std::move(endpoints), Operation::make(Opcode::Ping), deadline,
                                  std::move(fallback));
}

Router make_router() {
    return Router([] { return 0.0; }, 3000ms); // no jitter: backoffs are exact
}

// Routes `call` and, when it is sent, assigns it there (as the reactor does); returns where.
std::string send(Router& router, const std::shared_ptr<Call>& call,
                 Router::Clock::time_point now = kStart) {
    auto d = router.route(call, now);
    REQUIRE(d.kind == Kind::Send);
    router.assign(*call, d.endpoint.to_string());
    return d.endpoint.to_string();
}

} // namespace

TEST_CASE("router: calls go to the endpoint with the fewest outstanding, counted until finished") {
    Router router = make_router();
    auto first = call_to({kA, kB});
    auto second = call_to({kA, kB});
    std::string a = send(router, first);
    std::string b = send(router, second);
    CHECK(a != b); // the second avoids the endpoint the first is counted at
    CHECK(router.endpoints().outstanding(a) == 1);
    CHECK(first->last_endpoint == a);
    router.finished(*first, Operation::make(Opcode::Response), "", kStart);
    CHECK(router.endpoints().outstanding(a) == 0);
    // A caller's own write picks as route() would.
    auto third = call_to({kA, kB});
    CHECK(router.pick(*third, kStart) == a);
}

TEST_CASE("router: a dead connection moves its calls: unsent ones freely, sent ones once") {
    Router router = make_router();
    auto call = call_to({kA, kB});
    std::string at = send(router, call);
    // Sent, and the connection died: one retry elsewhere, while the deadline allows.
    CHECK(router.retry_elsewhere(*call, Router::Setback::Sent, kStart));
    CHECK(router.endpoints().outstanding(at) == 0); // uncounted where it was
    send(router, call);
    CHECK_FALSE(router.retry_elsewhere(*call, Router::Setback::Sent, kStart)); // no second retry
    // Never sent: it goes where it can, as a new call would, but not past its deadline.
    auto unsent = call_to({kA, kB});
    send(router, unsent);
    CHECK(router.retry_elsewhere(*unsent, Router::Setback::Unsent, kStart));
    send(router, unsent);
    CHECK(router.retry_elsewhere(*unsent, Router::Setback::Unsent, kStart));
    send(router, unsent);
    CHECK_FALSE(router.retry_elsewhere(*unsent, Router::Setback::Unsent, kStart + 2s));
    // A probe tests its own endpoint only.
    auto probe = call_to({kA});
    probe->probe_of = kNameA;
    send(router, probe);
    CHECK_FALSE(router.retry_elsewhere(*probe, Router::Setback::Unsent, kStart));
}

TEST_CASE("router: a shed call goes to another keyserver of its URI, never back to one that shed "
          "it") {
    Router router = make_router();
    auto call = call_to({kA, kB});
    std::string first = send(router, call);
    auto shed = Operation::error(ErrorCode::Overloaded);
    CHECK(router.replied(*call, first, shed, kStart) == Router::AfterReply::Reroute);
    std::string second = send(router, call);
    CHECK(second != first);
    // Shed there too: nowhere left, the Overloaded reply is its answer.
    CHECK(router.replied(*call, second, shed, kStart) == Router::AfterReply::Finish);
    // A shed reply past the deadline is the answer too.
    auto late = call_to({kA, kB});
    std::string at = send(router, late);
    CHECK(router.replied(*late, at, shed, kStart + 2s) == Router::AfterReply::Finish);
    // Both endpoints answered, so both stay healthy.
    CHECK(router.endpoints().healthy(kNameA));
    CHECK(router.endpoints().healthy(kNameB));
}

TEST_CASE("router: a keyserver without keyless's extensions gets gokeyless's form, until its "
          "connection breaks") {
    Router router = make_router();
    auto call = call_to({kA}, kStart + 1s, Operation::make(Opcode::RSASignSHA256));
    send(router, call);
    CHECK_FALSE(call->sent_fallback);
    auto bad = Operation::error(ErrorCode::BadOpcode);
    CHECK(router.replied(*call, kNameA, bad, kStart) == Router::AfterReply::ResendFallback);
    CHECK(call->sent_fallback);
    // The next call to that endpoint starts in gokeyless's form.
    auto next = call_to({kA}, kStart + 1s, Operation::make(Opcode::RSASignSHA256));
    send(router, next);
    CHECK(next->sent_fallback);
    // After a broken connection (a restart, maybe an upgrade) keyless's form is tried again.
    router.connection_died(kNameA);
    auto after = call_to({kA}, kStart + 1s, Operation::make(Opcode::RSASignSHA256));
    send(router, after);
    CHECK_FALSE(after->sent_fallback);
    // An operation with no gokeyless form goes to another keyserver of the URI, if any.
    auto only_ours = call_to({kA, kB});
    std::string at = send(router, only_ours);
    CHECK(router.replied(*only_ours, at, bad, kStart) == Router::AfterReply::Reroute);
    CHECK(send(router, only_ours) != at);
}

TEST_CASE("router: a down endpoint gets no calls, is probed after its backoff, and comes back") {
    Router router = make_router();
    auto call = call_to({kA, kB});
    router.route(call, kStart); // both known to the router
    router.connect_failed(kA, "cannot connect: Connection refused", kStart);
    for (int i = 0; i < 4; ++i)
        CHECK(send(router, call_to({kA, kB})) == kNameB);
    // Only A: the call fails at once, saying why.
    auto d = router.route(call_to({kA}), kStart);
    CHECK(d.kind == Kind::Fail);
    CHECK_THAT(d.why, match::contains("Connection refused"));
    // No probe before the backoff (250 ms without jitter) ends; one after it, to A.
    CHECK(router.due_probes(kStart + 100ms).empty());
    CHECK(router.next_wake() == kStart + EndpointSet::kBaseBackoff);
    auto probes = router.due_probes(kStart + 300ms);
    REQUIRE(probes.size() == 1);
    CHECK(probes[0]->probe_of == kNameA);
    CHECK(probes[0]->request.is(Opcode::Ping));
    CHECK(send(router, probes[0], kStart + 300ms) == kNameA); // a probe goes to a down endpoint
    // A failed probe keeps it down, with a longer backoff; a Pong makes it healthy.
    router.finished(*probes[0], std::nullopt, "cannot connect", kStart + 300ms);
    CHECK_FALSE(router.endpoints().healthy(kNameA));
    CHECK(router.due_probes(kStart + 600ms).empty());
    probes = router.due_probes(kStart + 900ms);
    REQUIRE(probes.size() == 1);
    send(router, probes[0], kStart + 900ms);
    router.finished(*probes[0], Operation::make(Opcode::Pong), "", kStart + 900ms);
    CHECK(router.endpoints().healthy(kNameA));
    CHECK(router.endpoints().outstanding(kNameA) == 0);
}

TEST_CASE("router: a call waits for its name's first answer, then goes to an address, or expires") {
    Router router = make_router();
    const Endpoint named{"ks.example", 2407, ""};
    auto call = call_to({named});
    CHECK(router.route(call, kStart).kind == Kind::AwaitDns);
    CHECK(router.take_lookups() == std::vector<std::string>{"ks.example"});
    CHECK(router.take_lookups().empty()); // asked once
    CHECK(router.next_wake() == call->deadline);
    auto departed = router.answered("ks.example", DnsAnswer{{"10.0.0.7", "10.0.0.8"}, "", false},
                                    kStart + 10ms);
    CHECK(departed.empty());
    auto waiters = router.take_dns_waiters();
    REQUIRE(waiters.size() == 1);
    auto d = router.route(waiters[0], kStart + 10ms);
    REQUIRE(d.kind == Kind::Send);
    CHECK(d.endpoint.host == "ks.example"); // the certificate is checked against the name
    CHECK(d.endpoint.address == "10.0.0.7");

    // A call whose name is never answered fails at its deadline, naming the host.
    auto slow = call_to({Endpoint{"slow.example", 2407, ""}}, kStart + 1s);
    CHECK(router.route(slow, kStart).kind == Kind::AwaitDns);
    CHECK(router.expire_dns_waits(kStart + 500ms).empty());
    auto expired = router.expire_dns_waits(kStart + 1s);
    REQUIRE(expired.size() == 1);
    CHECK(expired[0].first == slow);
    CHECK_THAT(expired[0].second, match::contains("no address for slow.example"));
}

TEST_CASE("router: an address that leaves DNS is forgotten, with its health and probes") {
    Router router = make_router();
    const Endpoint named{"ks.example", 2407, ""};
    router.route(call_to({named}), kStart);
    router.take_lookups();
    router.answered("ks.example", DnsAnswer{{"10.0.0.7", "10.0.0.8"}, "", false}, kStart);
    auto call = call_to({named});
    std::string first = send(router, call);
    router.finished(*call, Operation::make(Opcode::Response), "", kStart);
    Endpoint seven{"ks.example", 2407, "10.0.0.7"};
    router.connect_failed(seven, "cannot connect", kStart);
    CHECK_FALSE(router.endpoints().healthy(seven.to_string()));
    // Looked up again by the next call after the failure (.8 serves it meanwhile); the answer
    // no longer has .7.
    CHECK(send(router, call_to({named}), kStart + 50ms) == "ks.example:2407 (10.0.0.8)");
    CHECK(router.take_lookups() == std::vector<std::string>{"ks.example"});
    auto departed =
        router.answered("ks.example", DnsAnswer{{"10.0.0.8"}, "", false}, kStart + 100ms);
    CHECK(departed == std::vector<std::string>{"10.0.0.7"});
    CHECK(router.endpoints().healthy(seven.to_string())); // no state left: never probed
    CHECK(router.due_probes(kStart + 10s).empty());
    CHECK(send(router, call_to({named}), kStart + 100ms) == "ks.example:2407 (10.0.0.8)");
}
