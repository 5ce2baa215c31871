// Lookups off the I/O thread: one at a time per name, at most kMaxLookups at once, every answer
// delivered with a wake-up, none after close(). Real threads, a lookup function instead of DNS.
#include "client/resolver.hpp"

#include "catch.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

using keyless::client::DnsAnswer;
using keyless::client::Resolver;

namespace {

// A lookup that holds every caller until release(), counting how many it holds at once.
struct HeldLookups {
    std::mutex mutex;
    std::condition_variable cv;
    bool released = false;
    int running = 0, most = 0, calls = 0;

    DnsAnswer lookup(const std::string& host) {
        std::unique_lock lock(mutex);
        ++calls;
        most = std::max(most, ++running);
        cv.notify_all();
        cv.wait_for(lock, std::chrono::seconds(30), [&] { return released; });
        --running;
        cv.notify_all();
        return DnsAnswer{{"10.0.0.1"}, "", host == "gone"};
    }
    // Waits (bounded) until `n` lookups are held at once.
    bool wait_running(int n) {
        std::unique_lock lock(mutex);
        return cv.wait_for(lock, std::chrono::seconds(10), [&] { return running >= n; });
    }
    void release() {
        std::lock_guard lock(mutex);
        released = true;
        cv.notify_all();
    }
};

} // namespace

TEST_CASE("resolver: at most kMaxLookups at once, one per name, every answer delivered") {
    auto held = std::make_shared<HeldLookups>();
    std::mutex woken_mutex;
    std::condition_variable woken;
    size_t answered = 0;
    Resolver resolver([held](const std::string& host) { return held->lookup(host); },
                      [&] {
                          std::lock_guard lock(woken_mutex);
                          ++answered;
                          woken.notify_all();
                      });
    const size_t names = Resolver::kMaxLookups + 4;
    for (size_t i = 0; i < names; ++i) {
        resolver.request("host-" + std::to_string(i));
        resolver.request("host-" + std::to_string(i)); // under way: not asked again
    }
    REQUIRE(held->wait_running(static_cast<int>(Resolver::kMaxLookups)));
    {
        std::lock_guard lock(held->mutex);
        CHECK(held->calls == static_cast<int>(Resolver::kMaxLookups)); // the rest wait their turn
    }
    held->release();
    {
        std::unique_lock lock(woken_mutex);
        REQUIRE(woken.wait_for(lock, std::chrono::seconds(10), [&] { return answered == names; }));
    }
    auto answers = resolver.take_answers();
    CHECK(answers.size() == names);
    CHECK(held->most == static_cast<int>(Resolver::kMaxLookups));
    CHECK(held->calls == static_cast<int>(names));
    CHECK(resolver.take_answers().empty());
}

TEST_CASE("resolver: after close() no answer and no wake-up arrive") {
    auto held = std::make_shared<HeldLookups>();
    std::atomic<int> wakes{0};
    {
        Resolver resolver([held](const std::string& host) { return held->lookup(host); },
                          [&] { ++wakes; });
        resolver.request("keys.internal");
        REQUIRE(held->wait_running(1));
        resolver.close();
        held->release();
    } // destroyed while its lookup thread may still be finishing: the thread owns what it uses
    // The lookup has returned its answer to a closed resolver: dropped, nobody woken.
    {
        std::unique_lock lock(held->mutex);
        REQUIRE(
            held->cv.wait_for(lock, std::chrono::seconds(10), [&] { return held->running == 0; }));
    }
    CHECK(wakes == 0);
}
