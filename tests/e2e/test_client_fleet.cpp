// The provider's keyserver client against real keyservers, with no terminator: its connection
// pool, a retry on another endpoint within the request's deadline when a connection dies under
// a request, and failing fast (naming every endpoint's failure) when the whole fleet is down.
// Here (keyserver_e2e) it also runs under ASan+UBSan.
#include "client/client.hpp"
#include "frames.hpp"
#include "keyserver_fixture.hpp"

#include "catch.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

using namespace keyless;
using namespace keyless::test;
using Clock = std::chrono::steady_clock;

namespace {

const char* kConfig = R"({"keys": {"p256": {"allow": ["sign-tls"]}}})";

client::Settings edge_settings(size_t connections_per_server = 2) {
    client::Settings s;
    s.client_cert = pki("edge-1.crt");
    s.client_key = pki("edge-1.key");
    s.ca_file = pki("ca.crt");
    s.connections_per_server = connections_per_server;
    return s;
}

protocol::Operation sign() {
    auto op =
        protocol::Operation::make(protocol::Opcode::SignTLS, tls13_certificate_verify_input());
    op.signature_scheme = 0x0403;
    return op;
}

// Runs `n` signatures at once; returns how many got a signature.
int sign_concurrently(client::Client& client, const KeyUri& uri, int n) {
    std::vector<std::shared_ptr<client::Call>> calls;
    for (int i = 0; i < n; ++i)
        calls.push_back(client.start(uri, sign()));
    int ok = 0;
    for (auto& call : calls) {
        call->wait();
        ok += call->failure == client::Failure::None &&
              call->response->is(protocol::Opcode::Response);
    }
    return ok;
}

std::set<std::string> peers(const std::string& access_log) {
    std::set<std::string> out;
    for (size_t at = access_log.find("\"peer\":\""); at != std::string::npos;
         at = access_log.find("\"peer\":\"", at + 1)) {
        size_t from = at + 8;
        out.insert(access_log.substr(from, access_log.find('"', from) - from));
    }
    return out;
}

} // namespace

TEST_CASE("client: requests spread over connections_per_server connections") {
    KeyserverFixture ks(kConfig);
    client::Client client(edge_settings(2));
    KeyUri uri = parse_key_uri("keyless:" + ks.address() + "/p256");
    for (int round = 0; round < 5; ++round)
        REQUIRE(sign_concurrently(client, uri, 16) == 16);
    CHECK(peers(ks.access_log()).size() == 2);

    KeyserverFixture one(kConfig);
    client::Client single(edge_settings(1));
    REQUIRE(sign_concurrently(single, parse_key_uri("keyless:" + one.address() + "/p256"), 16) ==
            16);
    CHECK(peers(one.access_log()).size() == 1);
}

TEST_CASE("client: requests on a keyserver that dies are retried on another within the deadline") {
    // A answers after 1.5 s; B at once. Half the requests wait on A when it is killed.
    KeyserverFixture a(kConfig, {"--test-reply-delay-ms", "1500"}, "127.0.0.1:0");
    KeyserverFixture b(kConfig, {}, "127.0.0.2:0");
    client::Client client(edge_settings(1));
    KeyUri uri = parse_key_uri("keyless:" + a.address() + "," + b.address() + "/p256");
    std::vector<std::shared_ptr<client::Call>> calls;
    for (int i = 0; i < 8; ++i)
        calls.push_back(client.start(uri, sign()));
    // A holds its share, unanswered, when it dies: those are the requests that must move to B.
    double on_a = wait_for_metric(a, "keyless_in_flight", 1);
    CHECK(on_a >= 1);
    a.process().kill(SIGKILL);
    for (auto& call : calls) {
        call->wait();
        INFO(call->message);
        CHECK(call->failure == client::Failure::None);
        CHECK(call->last_endpoint == b.address());
    }
    CHECK(count_of(b.access_log(), "\"result\":\"ok\"") == 8);
}

TEST_CASE("client: one slow key times out alone, the keyserver's other keys keep working") {
    // p384's replies take 3 s (a key in a busy token); p256's come at once.
    KeyserverFixture ks(
        R"({"keys": {"p256": {"allow": ["sign-tls"]}, "p384": {"allow": ["sign-tls"]}}})",
        {"--test-reply-delay-ms", "3000", "--test-slow-key", "p384"});
    auto settings = edge_settings(1);
    settings.request_timeout = std::chrono::milliseconds(1000);
    client::Client client(settings);
    KeyUri fast = parse_key_uri("keyless:" + ks.address() + "/p256");
    auto slow_op = sign();
    slow_op.signature_scheme = 0x0503; // ecdsa_secp384r1_sha384
    auto slow = client.start(parse_key_uri("keyless:" + ks.address() + "/p384"), slow_op);
    // The fast key is used throughout, so the keyserver answers while the slow call waits.
    int fast_ok = 0, fast_calls = 0;
    while (!slow->done()) {
        fast_ok += sign_concurrently(client, fast, 1);
        ++fast_calls;
    }
    slow->wait();
    INFO(slow->message);
    CHECK(slow->failure == client::Failure::Timeout);
    CHECK_THAT(slow->message, match::contains("this key's operation is slow"));
    CHECK(fast_ok == fast_calls);
    // Right after the timeout the endpoint is still up: the fast key is served at once.
    CHECK(sign_concurrently(client, fast, 16) == 16);
}

TEST_CASE("client: with every keyserver down, requests fail at once naming each one's failure") {
    uint16_t dead1, dead2;
    {
        KeyserverFixture x(kConfig), y(kConfig);
        dead1 = x.port();
        dead2 = y.port();
    } // both stopped: their ports refuse connections
    client::Client client(edge_settings());
    KeyUri uri = parse_key_uri("keyless:127.0.0.1:" + std::to_string(dead1) +
                               ",127.0.0.1:" + std::to_string(dead2) + "/p256");
    auto first = client.run(uri, sign());
    CHECK(first->failure == client::Failure::Unreachable);
    // Both are now down: the next request is refused without waiting for anything.
    auto start = Clock::now();
    auto second = client.run(uri, sign());
    // (Generous for sanitizer builds on a busy machine; trying would take connect_timeout_ms.)
    CHECK(Clock::now() - start < std::chrono::milliseconds(1000));
    CHECK(second->failure == client::Failure::Unreachable);
    INFO(second->message);
    CHECK_THAT(second->message, match::contains("keyserver 127.0.0.1:" + std::to_string(dead1) +
                                                ": cannot connect: Connection refused (down"));
    CHECK_THAT(second->message, match::contains("keyserver 127.0.0.1:" + std::to_string(dead2) +
                                                ": cannot connect: Connection refused (down"));
    // One comes back: the background probe finds it, and requests flow again within seconds.
    KeyserverFixture back(kConfig, {}, "127.0.0.1:" + std::to_string(dead1));
    bool recovered = false;
    for (int i = 0; i < 100 && !recovered; ++i) {
        recovered = client.run(uri, sign())->failure == client::Failure::None;
        if (!recovered) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(recovered);
}

TEST_CASE("client: a keyserver named by DNS is dialled at its addresses, checked by its name") {
    KeyserverFixture ks(kConfig);
    client::Client client(edge_settings());
    auto call = client.run(
        parse_key_uri("keyless:localhost:" + std::to_string(ks.port()) + "/p256"), sign());
    INFO(call->message);
    CHECK(call->failure == client::Failure::None);
    // One endpoint per address of the name, named with both.
    CHECK(call->last_endpoint == "localhost:" + std::to_string(ks.port()) + " (127.0.0.1)");
}

TEST_CASE("client: a slow DNS lookup delays no call to the URI's other keyservers") {
    KeyserverFixture ks(kConfig);
    const std::string port = std::to_string(ks.port());
    // A resolver that takes 2 s for "localhost" (what a DNS server that stopped answering costs,
    // before the resolver's own timeout), or less when the test is done with it.
    std::mutex mutex;
    std::condition_variable cv;
    bool released = false;
    std::atomic<bool> looking{false}, answered{false};
    std::atomic<int> lookups{0};
    auto slow = [&](const std::string& host) {
        ++lookups;
        if (host != "localhost") return client::DnsAnswer{{}, "Name or service not known", true};
        looking = true;
        std::unique_lock lock(mutex);
        cv.wait_for(lock, std::chrono::seconds(2), [&] { return released; });
        answered = true;
        return client::DnsAnswer{{"127.0.0.1"}, "", false};
    };
    client::Client client(edge_settings(1), false, slow);
    auto uri = parse_key_uri("keyless:localhost:" + port + ",127.0.0.1:" + port + "/p256");

    // Every call made while the lookup is under way completes, on the endpoint already known.
    int during = 0;
    Clock::duration slowest{};
    while (!answered) {
        auto started = Clock::now();
        auto call = client.run(uri, sign());
        REQUIRE(call->failure == client::Failure::None);
        if (answered) break; // this call may have waited for the answer (it must not have)
        CHECK(call->last_endpoint == "127.0.0.1:" + port);
        slowest = std::max(slowest, Clock::now() - started);
        if (++during == 200) { // enough: the lookup is still blocked, no call waited for it
            std::lock_guard lock(mutex);
            released = true;
            cv.notify_all();
        }
    }
    CHECK(looking);
    CHECK(during >= 1);
    WARN(during << " calls during the lookup, the slowest in "
                << std::chrono::duration_cast<std::chrono::microseconds>(slowest).count() << " us");
    // Once answered, the name's address is an endpoint like the literal (spread over both).
    std::set<std::string> used;
    for (int i = 0; i < 20 && used.size() < 2; ++i)
        used.insert(client.run(uri, sign())->last_endpoint);
    CHECK(used.count("localhost:" + port + " (127.0.0.1)") == 1);

    // A name that does not exist fails at once, naming it, and is not asked again per call.
    int before = lookups;
    auto gone = parse_key_uri("keyless:gone.invalid:" + port + "/p256");
    for (int i = 0; i < 5; ++i) {
        auto call = client.run(gone, sign());
        CHECK(call->failure == client::Failure::Unreachable);
        CHECK_THAT(call->message,
                   match::contains("gone.invalid:" + port +
                                   ": cannot resolve host: Name or service not known"));
    }
    CHECK(lookups == before + 1);
}

// [no-tsan]: ThreadSanitizer cannot run a child that starts threads after a multi-threaded
// process forked ("starting new threads after multi-threaded fork is not supported"); the
// release and ASan builds run it.
TEST_CASE("client: a fork while another thread is inside the client leaves the child a working "
          "client",
          "[no-tsan]") {
    KeyserverFixture ks(kConfig);
    KeyUri uri = parse_key_uri("keyless:" + ks.address() + "/p256");
    // A thread makes fresh clients and calls through each: a client's first call holds its lock
    // while it loads the certificate, key and CA (milliseconds), the window a fork must not split.
    std::atomic<client::Client*> current{nullptr};
    std::atomic<bool> done{false};
    std::thread worker([&] {
        for (int i = 0; i < 40; ++i) {
            // On the heap, as the provider's client is: in the child this thread's stack is free
            // memory, which glibc gives to the next thread made there (the child's I/O thread).
            auto c = std::make_unique<client::Client>(edge_settings(1));
            current = c.get();
            c->run(uri, sign());
            current = nullptr;
        }
        done = true;
    });
    int children = 0, with_client = 0, timed_out = 0, hung = 0, failed = 0;
    // Made before the fork: the test's own OpenSSL calls (random bytes from the default library
    // context, which the worker uses too) are not the client's to make fork-safe.
    const protocol::Operation request = sign();
    while (!done) {
        pid_t pid = ::fork();
        if (pid == 0) {
            // The child: one call through the client as it was at the fork, bounded by alarm()
            // because a lock left held would make it wait for ever.
            ::alarm(20);
            client::Client* inherited = current.load();
            if (!inherited) ::_exit(0);
            auto call = inherited->run(uri, request);
            if (call->failure == client::Failure::None) ::_exit(10);
            std::fprintf(stderr, "child's call failed: %s\n", call->message.c_str());
            // Bounded by the request deadline (under ASan, with ~40 processes on 2 cores, a call
            // may take longer than that): failing in time is what a child must never fail to do.
            ::_exit(call->failure == client::Failure::Timeout ? 12 : 11);
        }
        REQUIRE(pid > 0);
        int status = 0;
        ::waitpid(pid, &status, 0);
        ++children;
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
            ++hung;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 10)
            ++with_client;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 12)
            ++timed_out;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            ++failed;
    }
    worker.join();
    INFO(children << " children, " << with_client << " called through an inherited client, "
                  << timed_out << " timed out");
    // What the fork handlers guarantee: no child waits for ever on a lock of the client. A child
    // may still time out (bounded) when another thread of the process held one of OpenSSL's own
    // locks at the fork (seen under ASan: "no reply from the client I/O thread").
    CHECK(children > 0);
    CHECK(hung == 0);
    CHECK(failed == 0);
}
