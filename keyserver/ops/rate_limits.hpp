// Fair share on a keyserver shared by many edges and keys: per client identity and per key, a
// token bucket (ops_per_second with a burst) and a cap on requests in flight. A request must pass
// its client's gate and its key's gate; one that does not is answered Overloaded at once (never
// queued). Unconfigured limits make no gate: a request only reads the policy (under a shared
// lock) and passes.
#pragma once

#include "ops/policy.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

namespace keyless::keyserver {

struct RateLimit {
    double ops_per_second = 0; // 0: no rate limit
    double burst = 0;          // bucket size; 0: ops_per_second (one second's worth)
    size_t max_in_flight = 0;  // 0: no cap
    bool any() const { return ops_per_second > 0 || max_in_flight > 0; }
};

// The three levels of the config, the most specific winning: a key's own limits, else
// default_limits, apply to the key; a client's own limits (the first `clients` entry whose
// selector matches), else default_limits, apply to the client.
struct RateLimitPolicy {
    RateLimit defaults;
    std::map<std::string, RateLimit> keys;
    std::vector<std::pair<ClientSelector, RateLimit>> clients;
};

class RateLimiter {
  public:
    using Clock = std::chrono::steady_clock;
    struct Gate;
    // What an admitted request holds until it is answered.
    struct Ticket {
        std::shared_ptr<Gate> client, key;
    };

    // Applies a (re)loaded policy. Existing gates keep their tokens and in-flight counts; only
    // their limits change, so a reload resets nobody.
    void configure(const RateLimitPolicy& policy);
    // Admits a request from `client` for `key` ("" when none, or when the client may not use
    // it); on refusal returns nullopt and sets `why` (e.g. "client edge-1 over 500 ops/s").
    std::optional<Ticket> admit(const ClientIdentity& client, const std::string& key,
                                Clock::time_point now, std::string& why);
    // The request is answered.
    static void release(const Ticket& ticket);
    // Whether any limit is configured (else admit() always passes and nothing need be looked up).
    bool active() const { return active_.load(std::memory_order_relaxed); }

  private:
    std::shared_ptr<Gate> gate(bool is_key, const std::string& subject, const RateLimit& limit);

    mutable std::shared_mutex mutex_; // guards the maps; gates lock themselves
    std::shared_ptr<const RateLimitPolicy> policy_ = std::make_shared<RateLimitPolicy>();
    std::map<std::string, std::shared_ptr<Gate>> gates_;
    std::atomic<bool> active_{false};
};

} // namespace keyless::keyserver
