// Which keyserver endpoint a request goes to, and which are down. Pure logic (no sockets, the
// clock and the jitter are passed in), so selection and backoff are unit-tested.
//
// An endpoint that fails (connect error, TLS error, timeout, reset) is down for a backoff that
// doubles with each consecutive failure (base 250 ms, at most 2 s, with up to 50 % jitter so a
// fleet of edges does not come back in step). Requests never go to a down endpoint: when its
// backoff ends it is due for a background probe (a Ping on a fresh connection); a success makes
// it healthy again. Among healthy endpoints a request goes to the one with the fewest requests
// outstanding (ties rotate). When every endpoint of a request is down, it fails at
// once with each endpoint's last failure.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace keyless::client {

class EndpointSet {
  public:
    using Clock = std::chrono::steady_clock;
    // `jitter()` returns a fraction in [0, 1): the share of the backoff added at random.
    explicit EndpointSet(std::function<double()> jitter);

    // The healthy endpoint of `candidates` with the fewest outstanding requests (ties rotate
    // from one call to the next), skipping `tried`; nullopt when none is healthy.
    std::optional<std::string> pick(const std::vector<std::string>& candidates,
                                    const std::vector<std::string>& tried) const;
    // The request went where pick() said: the next tie-break starts one further on.
    void picked() { ++rotation_; }
    // "keyserver A: <why> (down, next probe in 2.1 s); keyserver B: ..." for `candidates`.
    std::string why_all_down(const std::vector<std::string>& candidates,
                             Clock::time_point now) const;

    void failed(const std::string& name, const std::string& why, Clock::time_point now);
    void succeeded(const std::string& name);
    bool healthy(const std::string& name) const;
    // Down endpoints whose backoff has ended and that no probe is testing yet; marks them probing.
    std::vector<std::string> take_due_probes(Clock::time_point now);
    // The probe of `name` ended without proving it healthy (failed() was called, or it was
    // abandoned): it may be probed again when its next backoff ends.
    void probe_ended(const std::string& name);
    // When the next probe is due (for the I/O thread's sleep), if any endpoint is down.
    std::optional<Clock::time_point> next_probe() const;

    // `name` left the fleet (DNS no longer gives its address): no health, no probes.
    void forget(const std::string& name) { states_.erase(name); }
    void started(const std::string& name) { ++state(name).outstanding; }
    void finished(const std::string& name);
    size_t outstanding(const std::string& name) const;

    static constexpr std::chrono::milliseconds kBaseBackoff{250};
    static constexpr std::chrono::milliseconds kMaxBackoff{2000};

  private:
    struct State {
        bool down = false;
        bool probing = false;
        int failures = 0; // consecutive
        Clock::time_point probe_at{};
        std::string last_failure;
        size_t outstanding = 0;
    };
    State& state(const std::string& name) { return states_[name]; }
    const State* find(const std::string& name) const;

    std::function<double()> jitter_;
    size_t rotation_ = 0; // where the next tie-break starts
    std::map<std::string, State> states_;
};

} // namespace keyless::client
