#include "endpoint_set.hpp"

#include <algorithm>
#include <cstdio>

namespace keyless::client {

EndpointSet::EndpointSet(std::function<double()> jitter) : jitter_(std::move(jitter)) {}

const EndpointSet::State* EndpointSet::find(const std::string& name) const {
    auto it = states_.find(name);
    return it == states_.end() ? nullptr : &it->second;
}

bool EndpointSet::healthy(const std::string& name) const {
    const State* s = find(name);
    return !s || !s->down;
}

size_t EndpointSet::outstanding(const std::string& name) const {
    const State* s = find(name);
    return s ? s->outstanding : 0;
}

void EndpointSet::finished(const std::string& name) {
    State& s = state(name);
    if (s.outstanding > 0) --s.outstanding;
}

std::optional<std::string> EndpointSet::pick(const std::vector<std::string>& candidates,
                                             const std::vector<std::string>& tried) const {
    // Ties (an idle edge has nothing outstanding anywhere) rotate, so load spreads over the
    // fleet instead of always going to the first endpoint.
    size_t start = rotation_;
    std::optional<std::string> best;
    size_t best_load = 0;
    for (size_t i = 0; i < candidates.size(); ++i) {
        const std::string& name = candidates[(start + i) % candidates.size()];
        if (!healthy(name) || std::find(tried.begin(), tried.end(), name) != tried.end()) continue;
        size_t load = outstanding(name);
        if (!best || load < best_load) {
            best = name;
            best_load = load;
        }
    }
    return best;
}

void EndpointSet::failed(const std::string& name, const std::string& why, Clock::time_point now) {
    State& s = state(name);
    s.last_failure = why;
    s.probing = false;
    // Only the first failure of a burst counts: requests in flight on one dead connection all
    // fail at once, and must not multiply the backoff.
    if (s.down && now < s.probe_at) return;
    s.down = true;
    ++s.failures;
    auto backoff = kBaseBackoff * (1LL << std::min(s.failures - 1, 16));
    backoff = std::min<std::chrono::milliseconds>(backoff, kMaxBackoff);
    auto extra = std::chrono::milliseconds(
        static_cast<long long>(static_cast<double>(backoff.count()) * 0.5 * jitter_()));
    s.probe_at = now + backoff + extra;
}

void EndpointSet::succeeded(const std::string& name) {
    State& s = state(name);
    s.down = false;
    s.probing = false;
    s.failures = 0;
}

std::vector<std::string> EndpointSet::take_due_probes(Clock::time_point now) {
    std::vector<std::string> due;
    for (auto& [name, s] : states_)
        if (s.down && !s.probing && now >= s.probe_at) {
            s.probing = true;
            due.push_back(name);
        }
    return due;
}

void EndpointSet::probe_ended(const std::string& name) {
    state(name).probing = false;
}

std::optional<EndpointSet::Clock::time_point> EndpointSet::next_probe() const {
    std::optional<Clock::time_point> next;
    for (const auto& [name, s] : states_)
        if (s.down && !s.probing && (!next || s.probe_at < *next)) next = s.probe_at;
    return next;
}

std::string EndpointSet::why_all_down(const std::vector<std::string>& candidates,
                                      Clock::time_point now) const {
    std::string out;
    for (const auto& name : candidates) {
        const State* s = find(name);
        if (!out.empty()) out += "; ";
        out += "keyserver " + name + ": ";
        if (!s || !s->down) {
            out += "tried";
            continue;
        }
        auto wait = std::chrono::duration<double>(s->probe_at - now).count();
        char next[48];
        std::snprintf(next, sizeof next, "%.1f s", std::max(0.0, wait));
        out += s->last_failure + " (down; " +
               (s->probing ? std::string("being probed") : "next probe in " + std::string(next)) +
               ")";
    }
    return out;
}

} // namespace keyless::client
