#include "ops/rate_limits.hpp"

#include <algorithm>
#include <sstream>

namespace keyless::keyserver {

struct RateLimiter::Gate {
    std::mutex mutex; // one short critical section per request on this client or key
    std::string name; // "client edge-1", "key www"
    bool is_key = false;
    std::string subject; // the key name, or the client's selector text or display identity
    RateLimit limit;
    double tokens = 0;
    Clock::time_point refilled{};
    size_t in_flight = 0;

    double capacity() const {
        return limit.burst > 0 ? limit.burst : std::max(1.0, limit.ops_per_second);
    }

    // Takes a token and an in-flight slot, or says why not.
    bool take(Clock::time_point now, std::string& why) {
        std::lock_guard lock(mutex);
        if (limit.max_in_flight > 0 && in_flight >= limit.max_in_flight) {
            why = name + " over " + std::to_string(limit.max_in_flight) + " in flight";
            return false;
        }
        if (limit.ops_per_second > 0) {
            if (refilled == Clock::time_point{}) {
                tokens = capacity();
            } else {
                double elapsed = std::chrono::duration<double>(now - refilled).count();
                tokens = std::min(capacity(), tokens + elapsed * limit.ops_per_second);
            }
            refilled = now;
            if (tokens < 1) {
                std::ostringstream rate;
                rate << limit.ops_per_second;
                why = name + " over " + rate.str() + " ops/s";
                return false;
            }
            tokens -= 1;
        }
        ++in_flight;
        return true;
    }

    void give_back() {
        std::lock_guard lock(mutex);
        if (in_flight) --in_flight;
    }
};

namespace {

const RateLimit& key_limit(const RateLimitPolicy& p, const std::string& key) {
    auto own = p.keys.find(key);
    return own != p.keys.end() ? own->second : p.defaults;
}

// A client gate named by a selector takes that entry's limit; one named by an identity, or
// whose selector is gone, the defaults.
const RateLimit& client_limit_by_subject(const RateLimitPolicy& p, const std::string& subject) {
    for (const auto& [selector, limit] : p.clients)
        if (selector.text() == subject) return limit;
    return p.defaults;
}

} // namespace

void RateLimiter::configure(const RateLimitPolicy& policy) {
    auto next = std::make_shared<const RateLimitPolicy>(policy);
    std::unique_lock lock(mutex_);
    policy_ = next;
    bool any = policy.defaults.any();
    for (const auto& [key, limit] : policy.keys)
        any = any || limit.any();
    for (const auto& [selector, limit] : policy.clients)
        any = any || limit.any();
    active_ = any;
    // Gates keep their tokens and in-flight counts and take their new limits; a gate no longer
    // limited is dropped (requests holding it still give it back).
    for (auto it = gates_.begin(); it != gates_.end();) {
        Gate& g = *it->second;
        const RateLimit& limit =
            g.is_key ? key_limit(*next, g.subject) : client_limit_by_subject(*next, g.subject);
        std::lock_guard gate_lock(g.mutex);
        g.limit = limit;
        g.tokens = std::min(g.tokens, g.capacity());
        it = limit.any() ? std::next(it) : gates_.erase(it);
    }
}

std::shared_ptr<RateLimiter::Gate> RateLimiter::gate(bool is_key, const std::string& subject,
                                                     const RateLimit& limit) {
    std::string name = (is_key ? "key " : "client ") + subject;
    {
        std::shared_lock lock(mutex_);
        auto it = gates_.find(name);
        if (it != gates_.end()) return it->second;
    }
    std::unique_lock lock(mutex_);
    auto& slot = gates_[name];
    if (!slot) {
        slot = std::make_shared<Gate>();
        slot->name = name;
        slot->is_key = is_key;
        slot->subject = subject;
        slot->limit = limit;
    }
    return slot;
}

std::optional<RateLimiter::Ticket> RateLimiter::admit(const ClientIdentity& client,
                                                      const std::string& key, Clock::time_point now,
                                                      std::string& why) {
    std::shared_ptr<const RateLimitPolicy> policy;
    {
        std::shared_lock lock(mutex_);
        policy = policy_;
    }
    Ticket ticket;
    // The client's gate: its first matching `clients` entry, else the defaults per identity.
    const RateLimit* client_limit = &policy->defaults;
    std::string subject = client.display();
    for (const auto& [selector, limit] : policy->clients)
        if (selector.matches(client)) {
            client_limit = &limit;
            subject = selector.text();
            break;
        }
    if (client_limit->any()) {
        ticket.client = gate(false, subject, *client_limit);
        if (!ticket.client->take(now, why)) return std::nullopt;
    }
    if (!key.empty()) {
        const RateLimit& limit = key_limit(*policy, key);
        if (limit.any()) {
            ticket.key = gate(true, key, limit);
            if (!ticket.key->take(now, why)) {
                if (ticket.client) ticket.client->give_back();
                return std::nullopt;
            }
        }
    }
    return ticket;
}

void RateLimiter::release(const Ticket& ticket) {
    if (ticket.client) ticket.client->give_back();
    if (ticket.key) ticket.key->give_back();
}

} // namespace keyless::keyserver
