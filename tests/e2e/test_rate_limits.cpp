// Fair share between clients and keys: token buckets and in-flight caps over real mTLS.
#include "frames.hpp"
#include "keyserver_fixture.hpp"

#include "catch.hpp"
#include <openssl/rand.h>
#include <signal.h>

#include <thread>

using namespace keyless;
using namespace keyless::protocol;
using namespace keyless::test;

namespace {

Operation sign(const std::string& key, uint16_t scheme) {
    Operation op = Operation::make(Opcode::SignTLS, tls13_certificate_verify_input());
    op.key_name = key;
    op.signature_scheme = scheme;
    return op;
}

struct Tally {
    int ok = 0, overloaded = 0, other = 0;
};

// Pipelines `n` requests at once, then reads every answer.
Tally burst(TestClient& c, int n, const Operation& op) {
    for (int i = 0; i < n; ++i)
        c.send(static_cast<uint32_t>(1000 + i), op);
    Tally t;
    for (int i = 0; i < n; ++i) {
        auto reply = c.receive();
        REQUIRE(reply);
        if (reply->second.is(Opcode::Response) || reply->second.is(Opcode::Pong))
            ++t.ok;
        else if (error_of(reply->second) == ErrorCode::Overloaded)
            ++t.overloaded;
        else
            ++t.other;
    }
    return t;
}

} // namespace

TEST_CASE("rate limits: a client over its rate is shed, another client on the same key is not") {
    KeyserverFixture ks(R"({"clients": {"cn:edge-1": {"limits": {"ops_per_second": 1,
                                                                 "burst": 5}}}})");
    TestClient edge1(ks.client("edge-1"));
    TestClient edge2(ks.client("edge-2"));
    Tally limited = burst(edge1, 40, sign("p256", 0x0403));
    Tally free = burst(edge2, 40, sign("p256", 0x0403));
    INFO(limited.ok << " ok, " << limited.overloaded << " overloaded");
    CHECK(limited.ok >= 5);
    CHECK(limited.ok <= 7); // the burst, plus what 1 op/s refills during the test
    CHECK(limited.overloaded == 40 - limited.ok);
    CHECK(free.ok == 40);
    // The access log counts exactly what the client saw, with the reason.
    std::string log = ks.access_log();
    CHECK(count_of(log, "\"error\":\"overloaded\"") == static_cast<size_t>(limited.overloaded));
    CHECK(count_of(log, "client cn:edge-1 over 1 ops/s") ==
          static_cast<size_t>(limited.overloaded));
    // A requested name that matches no key is never echoed (log, metrics), whether the request
    // is shed or answered.
    REQUIRE(error_of(edge1.call(sign("someone-elses-key", 0x0403))) == ErrorCode::Overloaded);
    CHECK_THAT(ks.access_log(), match::contains("(for a name that matches no key)"));
    REQUIRE(error_of(edge2.call(sign("someone-elses-key", 0x0403))) == ErrorCode::KeyNotFound);
    CHECK_THAT(ks.access_log(), match::contains("no key of the requested name (17 bytes)"));
    CHECK(ks.access_log().find("someone-elses-key") == std::string::npos);
}

TEST_CASE("rate limits: a key over its rate does not slow another key") {
    KeyserverFixture ks(
        R"({"keys": {"p256": {"allow": ["sign-tls"], "limits": {"ops_per_second": 2, "burst": 3}}}})");
    TestClient edge(ks.client());
    Tally hot = burst(edge, 30, sign("p256", 0x0403));
    Tally cool = burst(edge, 30, sign("p384", 0x0503));
    CHECK(hot.ok >= 3);
    CHECK(hot.ok <= 5);
    CHECK(cool.ok == 30);
    CHECK_THAT(ks.access_log(), match::contains("key p256 over 2 ops/s"));
}

TEST_CASE("rate limits: max_in_flight per client holds under a pipelined burst") {
    // Replies are held 300 ms, so the whole burst is in flight at once.
    KeyserverFixture ks(R"({"default_limits": {"max_in_flight": 3}})",
                        {"--test-reply-delay-ms", "300"});
    TestClient edge1(ks.client("edge-1"));
    Tally t = burst(edge1, 10, Operation::make(Opcode::Ping, {1}));
    CHECK(t.ok == 3);
    CHECK(t.overloaded == 7);
    CHECK_THAT(ks.access_log(), match::contains("client edge-1 over 3 in flight"));
    // Once they are answered, the client has its slots back.
    CHECK(burst(edge1, 3, Operation::make(Opcode::Ping, {2})).ok == 3);
}

TEST_CASE("rate limits: a reload that raises a limit applies without a restart") {
    const char* tight =
        R"({"clients": {"cn:edge-1": {"limits": {"ops_per_second": 1, "burst": 2}}}})";
    KeyserverFixture ks(tight);
    TestClient edge1(ks.client("edge-1"));
    Tally before = burst(edge1, 20, sign("p256", 0x0403));
    CHECK(before.ok >= 2); // the burst, and at most a refill or two while the 20 are answered
    CHECK(before.ok <= 4);
    CHECK(before.overloaded == 20 - before.ok);
    ks.rewrite_config(
        R"({"clients": {"cn:edge-1": {"limits": {"ops_per_second": 100000, "burst": 1000}}}})");
    ks.reload_and_wait("reloaded");
    CHECK(burst(edge1, 50, sign("p256", 0x0403)).ok == 50); // the same connection, no restart
}

TEST_CASE("rate limits: the config names what is wrong") {
    TempDir dir;
    write_file(dir / "c.json", R"({"clients": {"cn:edge-1": {"limits": {"ops_per_second": -1}}}})");
    std::string out;
    CHECK(run_command(keyserver_binary() + " --config " + (dir / "c.json") + " --keys " +
                          pki("keys") + " --cert " + pki("keyserver.crt") + " --key " +
                          pki("keyserver.key") + " --client-ca " + pki("ca.crt") + " --check",
                      &out) == 1);
    CHECK_THAT(out, match::contains("'clients.cn:edge-1.limits.ops_per_second' must be a whole "
                                    "number"));
    write_file(dir / "c.json", R"({"clients": {"edge-1": {}}})");
    CHECK(run_command(keyserver_binary() + " --config " + (dir / "c.json") + " --check", &out) ==
          1);
    CHECK_THAT(out, match::contains("client selector 'edge-1' must be"));
}
