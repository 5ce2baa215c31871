// The keyserver's operations surface, driven as an operator would: the admin HTTP listener with
// curl (metrics checked by promtool), signals (drain on SIGTERM, log reopen on SIGUSR1) and
// --version.
#include "frames.hpp"
#include "keyserver_fixture.hpp"
#include "ossl.hpp"

#include <nlohmann/json.hpp>

#include "catch.hpp"
#include <openssl/rand.h>
#include <signal.h>
#include <sys/stat.h>

#include <set>
#include <thread>

using namespace keyless;
using namespace keyless::protocol;
using namespace keyless::test;

namespace {

const char* kConfig = R"({"keys": {"p256": {"allow": ["sign-tls"]}}})";

Operation sign(const std::string& key) {
    Operation op = Operation::make(Opcode::SignTLS, tls13_certificate_verify_input());
    op.key_name = key;
    op.signature_scheme = 0x0403;
    return op;
}

} // namespace

TEST_CASE("admin /metrics: valid Prometheus text whose counters move with real requests") {
    KeyserverFixture ks(kConfig);
    REQUIRE(ks.admin_port() != 0);
    TestClient edge(ks.client());
    for (int i = 0; i < 5; ++i)
        REQUIRE(edge.call(sign("p256")).is(Opcode::Response));
    REQUIRE(error_of(edge.call(sign("no-such-key"))) == ErrorCode::KeyNotFound);

    std::string reply = admin(ks, "GET", "/metrics");
    REQUIRE(reply.rfind("200\n", 0) == 0);
    std::string metrics = reply.substr(4);
    TempDir dir;
    write_file(dir / "metrics.txt", metrics);
    std::string lint;
    CHECK(run_command("promtool check metrics < " + (dir / "metrics.txt"), &lint) == 0);
    INFO(lint);
    CHECK(metric_sample(metrics,
                        "keyless_requests_total{op=\"sign-tls:ecdsa_secp256r1_sha256\",key="
                        "\"p256\",result=\"ok\"}") == 5);
    // A missing (or hidden) key is counted under key="-": hostile names add no series.
    CHECK(metric_sample(metrics,
                        "keyless_requests_total{op=\"sign-tls\",key=\"-\",result=\"key_not_"
                        "found\"}") == 1);
    CHECK(metric_sample(metrics,
                        "keyless_request_duration_seconds_count{op=\"sign-tls:ecdsa_secp256r1_"
                        "sha256\"}") == 5);
    CHECK(metric_sample(metrics, "keyless_connections{state=\"authenticated\"}") == 1);
    CHECK(metric_sample(metrics, "keyless_keys") == static_cast<double>(pki_key_count()));
    CHECK(metric_sample(metrics, "keyless_certificate_expiration_timestamp_seconds{cert=\"server:"
                                 "keyserver\"}") > 1.7e9);
    CHECK(metric_sample(metrics,
                        "keyless_certificate_expiration_timestamp_seconds{cert=\"client_ca:"
                        "keyless test CA\"}") > 1.7e9);
    CHECK(metric_sample(metrics, "process_resident_memory_bytes") > 1e6);
    CHECK(metric_sample(metrics, "process_open_fds") > 3);
    CHECK(metric_sample(metrics, "keyless_reloads_total{result=\"ok\"}") == 1);
}

TEST_CASE("admin /healthz turns 503 on /drain, open connections are still served") {
    KeyserverFixture ks(kConfig);
    TestClient edge(ks.client());
    CHECK(admin(ks, "GET", "/healthz") == "200\nok\n");
    CHECK(admin(ks, "GET", "/drain").rfind("405\n", 0) == 0); // POST only
    CHECK(admin(ks, "POST", "/drain").rfind("200\n", 0) == 0);
    CHECK(admin(ks, "GET", "/healthz") == "503\ndraining\n");
    CHECK(edge.call(sign("p256")).is(Opcode::Response));
    bool refused = false;
    try {
        TestClient late(ks.client());
        refused = !late.call(Operation::make(Opcode::Ping)).is(Opcode::Pong);
    } catch (const std::exception&) {
        refused = true;
    }
    CHECK(refused);
    CHECK(admin(ks, "GET", "/nope").rfind("404\n", 0) == 0);
    // Requests are bounded: a body over 4 KiB is refused, not read.
    TempDir dir;
    write_file(dir / "big", std::string(8192, 'x'));
    CHECK(admin(ks, "POST", "/reload", "--data-binary @" + (dir / "big")).rfind("413\n", 0) == 0);
}

TEST_CASE("admin /reload picks up a new key, leaves out a broken new one, refuses to break a "
          "served one") {
    TempDir dir;
    ::mkdir((dir / "keys").c_str(), 0700);
    auto add_key = [&](const std::string& name, const std::string& content) {
        write_file(dir / ("keys/" + name + ".pem"), content);
        ::chmod((dir / ("keys/" + name + ".pem")).c_str(), 0600);
    };
    add_key("www", read_file(pki("keys/p256.pem")));
    KeyserverFixture ks(R"({"keys_dir": ")" + (dir / "keys") + R"("})");
    TestClient edge(ks.client());

    add_key("api", read_file(pki("keys/p384.pem")));
    std::string ok = admin(ks, "POST", "/reload");
    REQUIRE(ok.rfind("200\n", 0) == 0);
    CHECK(nlohmann::json::parse(ok.substr(4))["keys"] == 2);
    Operation api = Operation::make(Opcode::GetPublicKey);
    api.key_name = "api";
    CHECK(edge.call(api).is(Opcode::Response));

    // A new key that cannot load is left out and named; the rest of the reload applies.
    add_key("broken", "not a key");
    std::string partial = admin(ks, "POST", "/reload");
    REQUIRE(partial.rfind("200\n", 0) == 0);
    auto applied = nlohmann::json::parse(partial.substr(4));
    CHECK(applied["keys"] == 2);
    REQUIRE(applied["unavailable"].size() == 1);
    CHECK(applied["unavailable"][0]["name"] == "broken");
    CHECK_THAT(applied["unavailable"][0]["reason"].get<std::string>(),
               match::contains("not a PEM private key"));
    CHECK(admin(ks, "GET", "/healthz") == "200\ndegraded: 1 key(s) unavailable: broken\n");

    // A served key that breaks fails the reload: nothing changes.
    add_key("api", "not a key either");
    std::string bad = admin(ks, "POST", "/reload");
    REQUIRE(bad.rfind("422\n", 0) == 0);
    auto report = nlohmann::json::parse(bad.substr(4));
    CHECK(report["result"] == "error");
    CHECK_THAT(report["problems"][0].get<std::string>(),
               match::contains("key 'api'") && match::contains("not a PEM private key"));
    CHECK(edge.call(api).is(Opcode::Response)); // the previous keys stay in service
    CHECK_THAT(admin(ks, "GET", "/metrics"),
               match::contains("keyless_reloads_total{result=\"error\"} 1"));
}

TEST_CASE("admin /keys lists public facts only") {
    KeyserverFixture ks(R"({"keys": {"rsa2048": {"allow": ["sign-tls", "rsa-decrypt-tls"],
                                                 "clients": ["cn:edge-1"]}}})");
    std::string reply = admin(ks, "GET", "/keys");
    REQUIRE(reply.rfind("200\n", 0) == 0);
    auto keys = nlohmann::json::parse(reply.substr(4))["keys"];
    REQUIRE(keys.size() == pki_key_count());
    bool found = false;
    for (const auto& k : keys) {
        CHECK(k.contains("spki_sha256"));
        if (k["name"] == "ed448") CHECK(k["type"] == "Ed448");
        if (k["name"] == "mldsa65") CHECK(k["type"] == "ML-DSA-65"); // OpenSSL 3.5 and later
        if (k["name"] != "rsa2048") continue;
        found = true;
        CHECK(k["type"] == "RSA-2048");
        CHECK(k["allow"] == nlohmann::json::array({"sign-tls", "rsa-decrypt-tls"}));
        CHECK(k["clients"] == nlohmann::json::array({"cn:edge-1"}));
    }
    CHECK(found);
    CHECK(reply.find("PRIVATE") == std::string::npos);
    CHECK(reply.find("-----") == std::string::npos);
}

TEST_CASE("admin listener on a non-loopback address needs a bearer token") {
    TempDir dir;
    std::string out;
    CHECK(run_command("timeout 10 " + keyserver_binary() + " --keys " + pki("keys") + " --cert " +
                          pki("keyserver.crt") + " --key " + pki("keyserver.key") +
                          " --client-ca " + pki("ca.crt") +
                          " --listen 127.0.0.1:0 --admin 0.0.0.0:0",
                      &out) != 0);
    CHECK_THAT(out, match::contains("is not a loopback address: set admin.token_file"));

    write_file(dir / "token", "s3cret\n");
    KeyserverFixture ks(R"({"admin": {"listen": "0.0.0.0:0", "token_file": ")" + (dir / "token") +
                            R"("}})",
                        {"--admin", "0.0.0.0:0"});
    CHECK(admin(ks, "GET", "/keys").rfind("401\n", 0) == 0);
    CHECK(admin(ks, "GET", "/keys", "-H 'Authorization: Bearer s3cret'").rfind("200\n", 0) == 0);
    // Load balancers check /healthz without credentials.
    CHECK(admin(ks, "GET", "/healthz") == "200\nok\n");
}

TEST_CASE("admin listener refuses what a web page could send: Origin, a foreign Host") {
    KeyserverFixture ks(R"({"keys": {"p256": {"allow": ["sign-tls"]}},
                            "admin": {"token_file": ""}})");
    // A cross-origin "simple" request, as any page open in a browser on this host may send.
    std::string drain = admin(ks, "POST", "/drain",
                              "-H 'Origin: http://evil.example' -H 'Content-Type: text/plain'");
    CHECK(drain.rfind("403\n", 0) == 0);
    CHECK_THAT(drain, match::contains("Origin: http://evil.example"));
    CHECK(admin(ks, "GET", "/healthz") == "200\nok\n"); // not drained
    // A DNS-rebinding page reaches 127.0.0.1 under its own name.
    std::string rebound = admin(ks, "GET", "/keys",
                                "-H 'Host: evil.example:" + std::to_string(ks.admin_port()) + "'");
    CHECK(rebound.rfind("403\n", 0) == 0);
    CHECK_THAT(rebound, match::contains("is not this admin listener's address"));
    CHECK(rebound.find("spki_sha256") == std::string::npos);
    // The listener's own names are served.
    std::string port = std::to_string(ks.admin_port());
    CHECK(admin(ks, "GET", "/healthz", "-H 'Host: localhost:" + port + "'") == "200\nok\n");
    CHECK(admin(ks, "GET", "/healthz", "-H 'Host: 127.0.0.1:" + port + "'") == "200\nok\n");
}

TEST_CASE("admin listener without a token: anyone local may read, nobody may drain or reload") {
    KeyserverFixture ks(R"({"keys": {"p256": {"allow": ["sign-tls"]}},
                            "admin": {"token_file": ""}})");
    for (const char* action : {"/drain", "/reload"}) {
        std::string refused = admin(ks, "POST", action);
        CHECK(refused.rfind("403\n", 0) == 0);
        CHECK_THAT(refused, match::contains("needs the admin bearer token: set admin.token_file"));
    }
    CHECK(admin(ks, "GET", "/healthz") == "200\nok\n"); // not drained
    CHECK(admin(ks, "GET", "/metrics").rfind("200\n", 0) == 0);
    CHECK(admin(ks, "GET", "/keys").rfind("200\n", 0) == 0);
    CHECK_THAT(admin(ks, "GET", "/metrics"),
               match::contains("keyless_reloads_total{result=\"ok\"} 1"));
}

TEST_CASE("admin bearer token: right, wrong, shorter, longer and prefixed tokens") {
    TempDir dir;
    write_file(dir / "token", "s3cret\n");
    KeyserverFixture ks(R"({"admin": {"listen": "0.0.0.0:0", "token_file": ")" + (dir / "token") +
                            R"("}})",
                        {"--admin", "0.0.0.0:0"});
    for (const char* wrong : {"s3cre", "s3cret0", "S3cret", "", "s3cret s3cret"})
        CHECK(admin(ks, "GET", "/metrics", std::string("-H 'Authorization: Bearer ") + wrong + "'")
                  .rfind("401\n", 0) == 0);
    CHECK(admin(ks, "GET", "/metrics", "-H 'Authorization: Bearer s3cret'").rfind("200\n", 0) == 0);
    CHECK(admin(ks, "POST", "/drain",
                "-H 'Authorization: Bearer s3cret' -H 'Origin: http://evil.example'")
              .rfind("403\n", 0) == 0);
}

TEST_CASE("idle connections give back what a burst grew their buffers to") {
    KeyserverFixture ks(kConfig);
    ClientOptions o = ks.client();
    o.timeout_ms = 10000;
    o.receive_buffer = 4096;
    constexpr int kClients = 20, kPings = 200; // 800 KB of 4 KiB pings each, under the budget
    std::vector<std::unique_ptr<TestClient>> clients;
    for (int i = 0; i < kClients; ++i)
        clients.push_back(std::make_unique<TestClient>(o));
    // Pipelined without reading: replies pile up in the keyserver once the socket buffers fill.
    for (auto& c : clients)
        for (int i = 0; i < kPings; ++i)
            c->send(Operation::make(Opcode::Ping, Bytes(4096, 0x5A)));
    for (auto& c : clients)
        for (int i = 0; i < kPings; ++i)
            REQUIRE(c->receive());
    // A frame near the 64 KiB maximum grows the receive buffer to hold it whole (a ping that
    // large is refused, after it was read).
    for (auto& c : clients)
        CHECK(error_of(c->call(Operation::make(Opcode::Ping, Bytes(60000, 0x5A)))) ==
              ErrorCode::Format);
    // Every reply was read: the clients are idle, still connected.
    auto metrics = admin(ks, "GET", "/metrics");
    REQUIRE(metrics.rfind("200\n", 0) == 0);
    CHECK(metric_sample(metrics, "keyless_buffered_bytes") == 0);
    CHECK(metric_sample(metrics, "keyless_connections{state=\"authenticated\"}") == kClients);
    double held = metric_sample(metrics, "keyless_buffer_capacity_bytes");
    INFO("buffers held by " << kClients << " idle connections: " << held << " bytes");
    CHECK(held > 0);
    CHECK(held <= kClients * 64.0 * 1024); // documented: at most 64 KiB per idle connection
}

TEST_CASE("SIGTERM drains: every request already read is answered, then exit 0") {
    // Replies are held 500 ms, so the requests are in flight when the signal comes.
    KeyserverFixture ks(kConfig, {"--test-reply-delay-ms", "500"});
    TestClient edge(ks.client());
    std::set<uint32_t> sent, answered;
    for (uint32_t i = 0; i < 100; ++i) {
        edge.send(100 + i, sign("p256"));
        sent.insert(100 + i);
    }
    // Once the keyserver has read every one (its replies take 500 ms), the signal.
    wait_for_metric(ks, "keyless_in_flight", 100);
    ks.process().kill(SIGTERM);
    while (auto reply = edge.receive()) {
        CHECK(reply->second.is(Opcode::Response));
        answered.insert(reply->first);
    }
    CHECK(answered == sent);
    CHECK(ks.process().wait(std::chrono::seconds(10)) == 0);
    CHECK_THAT(ks.stderr_text(), match::contains("signal 15: stopping once open connections"));
}

TEST_CASE("SIGUSR1 reopens the access log after logrotate moved it") {
    KeyserverFixture ks(kConfig);
    TestClient edge(ks.client());
    CHECK(edge.call(Operation::make(Opcode::Ping)).is(Opcode::Pong));
    std::string log = ks.access_log_path();
    struct stat st {};
    REQUIRE(::stat(log.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
    REQUIRE(::rename(log.c_str(), (log + ".1").c_str()) == 0);
    ks.process().kill(SIGUSR1);
    for (int i = 0; i < 200 && ks.stderr_text().find("access log reopened") == std::string::npos;
         ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(edge.call(Operation::make(Opcode::Ping, {7})).is(Opcode::Pong));
    CHECK_THAT(read_file(log), match::contains("\"op\":\"ping\""));
    CHECK(read_file(log + ".1").find("\"id\":2") == std::string::npos);
}

TEST_CASE(
    "keyserver --version names the version and the revision, stderr lines carry time and level") {
    std::string out;
    CHECK(run_command(keyserver_binary() + " --version", &out) == 0);
    CHECK_THAT(out, match::starts_with("keyserver 0.") && match::contains("("));
    KeyserverFixture ks(kConfig);
    std::string text = ks.stderr_text();
    auto at = text.find(" info keyserver: listening on");
    REQUIRE(at != std::string::npos);
    std::string line = text.substr(text.rfind('\n', at) + 1 == 0 ? 0 : text.rfind('\n', at) + 1);
    // "2026-11-24T21:40:00.123Z info keyserver: ..."
    CHECK(line.size() > 30);
    CHECK(line[4] == '-');
    CHECK(line[10] == 'T');
    CHECK(line[23] == 'Z');
}

TEST_CASE("an access log that cannot be written is counted and reported, never silently lost") {
    // /dev/full accepts the open and fails every write with ENOSPC, as a full disk would.
    KeyserverFixture ks(kConfig, {"--access-log", "/dev/full"});
    TestClient edge(ks.client());
    for (int i = 0; i < 3; ++i)
        REQUIRE(edge.call(sign("p256")).is(Opcode::Response)); // serving goes on
    std::string reply = admin(ks, "GET", "/metrics");
    REQUIRE(reply.rfind("200\n", 0) == 0);
    CHECK(metric_sample(reply.substr(4), "keyless_access_log_lost_lines_total") == 3);
    // One complaint for the first failure, then at most one per 10 s.
    CHECK(count_of(ks.stderr_text(),
                   "access log /dev/full: write failed: No space left on device") == 1);
}
