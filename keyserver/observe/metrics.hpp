// The keyserver's metrics in Prometheus's text exposition format (served on the admin
// listener's /metrics). Counters and histograms are updated as requests are answered; gauges are
// read when scraped. Label values are bounded: a key that does not exist (or that the client may
// not use) is counted under key="-", so requests for random names cannot grow the series.
#pragma once

#include "ops/outcome.hpp"

#include <openssl/x509.h>

#include <array>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace keyless::keyserver {

// What the scraper reads from the running server at scrape time.
struct MetricsSnapshot {
    size_t in_flight = 0;
    size_t handshaking = 0;
    size_t authenticated = 0;
    size_t keys = 0;
    size_t keys_unavailable = 0;
    size_t buffered_bytes = 0;
    size_t buffer_capacity = 0;
    uint64_t access_log_lost_lines = 0;
    bool draining = false;
    // (label, notAfter as Unix time): the server certificate and each client CA
    std::vector<std::pair<std::string, int64_t>> certificate_expiry;
};

class Metrics {
  public:
    Metrics();
    // One answered request.
    void observe(const Outcome& outcome, std::chrono::microseconds latency);
    // A connection refused, evicted or failed before it could ask anything, or a request shed.
    void count_refusal(const std::string& reason);
    void count_reload(bool ok);
    std::string exposition(const MetricsSnapshot& now) const;

    // The `result` label for a protocol error ("ok", "key_not_found", "policy_denied", ...).
    static std::string result_label(protocol::ErrorCode code);

    static constexpr std::array<double, 15> kBuckets = {25e-6, 50e-6,  100e-6, 250e-6, 500e-6,
                                                        1e-3,  2.5e-3, 5e-3,   10e-3,  25e-3,
                                                        50e-3, 100e-3, 250e-3, 500e-3, 1.0};

    struct Histogram {
        std::array<uint64_t, kBuckets.size()> buckets{}; // non-cumulative; summed when written
        uint64_t count = 0;
        double sum = 0;
    };
    // A request's labels (op, key, result), owned by a series or viewed from an outcome.
    using Labels = std::tuple<std::string, std::string, std::string>;
    using LabelViews = std::tuple<std::string_view, std::string_view, std::string_view>;
    // Orders labels by their text whichever strings hold it: a request finds its series by
    // views of its outcome's strings, which are copied only when a series first appears.
    struct LabelsLess {
        using is_transparent = void;
        template <class A, class B> bool operator()(const A& a, const B& b) const {
            return views(a) < views(b);
        }
        template <class T> static LabelViews views(const T& t) {
            return {std::get<0>(t), std::get<1>(t), std::get<2>(t)};
        }
    };
    // What the counters hold; a scrape copies them out, so requests wait for it only briefly.
    struct Counters {
        std::map<Labels, uint64_t, LabelsLess> requests;
        std::map<std::string, Histogram, std::less<>> durations;
        std::map<std::string, uint64_t> refusals;
        uint64_t reloads_ok = 0, reloads_failed = 0;
        int64_t last_reload_success = 0;
    };

  private:
    mutable std::mutex mutex_; // one short critical section per request and per scrape
    Counters counters_;
    const int64_t start_time_;
};

// A certificate's notAfter as Unix time (0 if unreadable).
int64_t not_after(const X509* cert);
// notAfter of every certificate in a PEM file, labelled by `label` and the subject CN; empty if
// the file cannot be read.
std::vector<std::pair<std::string, int64_t>> certificate_expiry(const std::string& file,
                                                                const std::string& label);

} // namespace keyless::keyserver
