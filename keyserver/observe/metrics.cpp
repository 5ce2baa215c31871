#include "observe/metrics.hpp"

#include "ops/policy.hpp"
#include "ossl.hpp"

#include <openssl/pem.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace keyless::keyserver {

namespace {

int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string escape(const std::string& value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

class Writer {
  public:
    void header(const char* name, const char* type, const char* help) {
        out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
    }
    template <typename V>
    void sample(const std::string& name,
                const std::vector<std::pair<const char*, std::string>>& labels, V value) {
        out_ << name;
        if (!labels.empty()) {
            out_ << '{';
            for (size_t i = 0; i < labels.size(); ++i)
                out_ << (i ? "," : "") << labels[i].first << "=\"" << escape(labels[i].second)
                     << '"';
            out_ << '}';
        }
        out_ << ' ' << value << '\n';
    }
    std::string str() const { return out_.str(); }

  private:
    std::ostringstream out_;
};

void process_metrics(Writer& w, int64_t start_time) {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                 static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    w.header("process_cpu_seconds_total", "counter", "Total user and system CPU time spent.");
    w.sample("process_cpu_seconds_total", {}, cpu);
    long page = ::sysconf(_SC_PAGESIZE);
    std::ifstream statm("/proc/self/statm");
    unsigned long pages_virtual = 0, pages_resident = 0;
    statm >> pages_virtual >> pages_resident;
    w.header("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    w.sample("process_virtual_memory_bytes", {}, pages_virtual * static_cast<unsigned long>(page));
    w.header("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    w.sample("process_resident_memory_bytes", {},
             pages_resident * static_cast<unsigned long>(page));
    std::error_code ec;
    size_t fds = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++fds;
    w.header("process_open_fds", "gauge", "Number of open file descriptors.");
    w.sample("process_open_fds", {}, fds);
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    w.header("process_max_fds", "gauge", "Maximum number of open file descriptors.");
    w.sample("process_max_fds", {}, lim.rlim_cur);
    w.header("process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.");
    w.sample("process_start_time_seconds", {}, start_time);
}

} // namespace

Metrics::Metrics() : start_time_(unix_now()) {}

std::string Metrics::result_label(protocol::ErrorCode code) {
    if (code == protocol::ErrorCode::None) return "ok";
    if (code == protocol::ErrorCode::PolicyDenied) return "policy_denied"; // not "denied_by_policy"
    std::string out;
    for (char c : protocol::to_string(code))
        out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return out;
}

void Metrics::observe(const Outcome& o, std::chrono::microseconds latency) {
    // Unknown (or hidden) keys share one series, so hostile names cannot grow the set.
    // (Views of both sides: a conditional of a literal and a std::string would be a temporary.)
    std::string_view key =
        o.error == protocol::ErrorCode::KeyNotFound ? std::string_view("-") : o.key_name;
    std::string_view op = o.operation.empty() ? std::string_view("unknown") : o.operation;
    double seconds = static_cast<double>(latency.count()) / 1e6;
    std::string result = o.hsm_failure && o.error != protocol::ErrorCode::Overloaded
                             ? "hsm_error"
                             : result_label(o.error);
    size_t bucket = 0;
    while (bucket < kBuckets.size() && seconds > kBuckets[bucket])
        ++bucket;
    std::lock_guard lock(mutex_);
    LabelViews labels(op, key, result);
    auto series = counters_.requests.find(labels);
    if (series == counters_.requests.end())
        series = counters_.requests.emplace(Labels(labels), 0).first;
    ++series->second;
    auto histogram = counters_.durations.find(op);
    if (histogram == counters_.durations.end())
        histogram = counters_.durations.emplace(std::string(op), Histogram{}).first;
    Histogram& h = histogram->second;
    if (bucket < kBuckets.size()) ++h.buckets[bucket];
    ++h.count;
    h.sum += seconds;
}

void Metrics::count_refusal(const std::string& reason) {
    std::lock_guard lock(mutex_);
    ++counters_.refusals[reason];
}

void Metrics::count_reload(bool ok) {
    std::lock_guard lock(mutex_);
    ++(ok ? counters_.reloads_ok : counters_.reloads_failed);
    if (ok) counters_.last_reload_success = unix_now();
}

namespace {

void write_requests(Writer& w, const Metrics::Counters& c) {
    w.header("keyless_requests_total", "counter",
             "Requests answered, by operation, key and result.");
    for (const auto& [labels, n] : c.requests)
        w.sample("keyless_requests_total",
                 {{"op", std::get<0>(labels)},
                  {"key", std::get<1>(labels)},
                  {"result", std::get<2>(labels)}},
                 n);
    w.header("keyless_request_duration_seconds", "histogram",
             "Time from reading a request to queueing its reply, by operation.");
    for (const auto& [op, h] : c.durations) {
        uint64_t cumulative = 0;
        for (size_t i = 0; i < Metrics::kBuckets.size(); ++i) {
            cumulative += h.buckets[i];
            std::ostringstream le;
            le << Metrics::kBuckets[i];
            w.sample("keyless_request_duration_seconds_bucket", {{"op", op}, {"le", le.str()}},
                     cumulative);
        }
        w.sample("keyless_request_duration_seconds_bucket", {{"op", op}, {"le", "+Inf"}}, h.count);
        w.sample("keyless_request_duration_seconds_sum", {{"op", op}}, h.sum);
        w.sample("keyless_request_duration_seconds_count", {{"op", op}}, h.count);
    }
}

void write_events(Writer& w, const Metrics::Counters& c, int64_t start_time) {
    w.header("keyless_connection_refusals_total", "counter",
             "Connections refused, evicted or failed before a request, and requests shed, "
             "by reason.");
    for (const auto& [reason, n] : c.refusals)
        w.sample("keyless_connection_refusals_total", {{"reason", reason}}, n);
    w.header("keyless_reloads_total", "counter", "Reloads (SIGHUP or POST /reload) by result.");
    w.sample("keyless_reloads_total", {{"result", "ok"}}, c.reloads_ok);
    w.sample("keyless_reloads_total", {{"result", "error"}}, c.reloads_failed);
    w.header("keyless_last_reload_success_timestamp_seconds", "gauge",
             "When keys and trust were last loaded successfully (start or reload).");
    w.sample("keyless_last_reload_success_timestamp_seconds", {},
             c.last_reload_success ? c.last_reload_success : start_time);
}

void write_gauges(Writer& w, const MetricsSnapshot& now) {
    w.header("keyless_in_flight", "gauge", "Requests being worked on.");
    w.sample("keyless_in_flight", {}, now.in_flight);
    w.header("keyless_connections", "gauge", "Open connections by state.");
    w.sample("keyless_connections", {{"state", "handshaking"}}, now.handshaking);
    w.sample("keyless_connections", {{"state", "authenticated"}}, now.authenticated);
    w.header("keyless_buffered_bytes", "gauge",
             "Bytes of requests in flight and replies not yet written.");
    w.sample("keyless_buffered_bytes", {}, now.buffered_bytes);
    w.header("keyless_buffer_capacity_bytes", "gauge",
             "Bytes the connections' buffers hold allocated, in use or not.");
    w.sample("keyless_buffer_capacity_bytes", {}, now.buffer_capacity);
    w.header("keyless_access_log_lost_lines_total", "counter",
             "Access-log lines that could not be written (disk full, I/O error).");
    w.sample("keyless_access_log_lost_lines_total", {}, now.access_log_lost_lines);
    w.header("keyless_keys", "gauge", "Keys being served.");
    w.sample("keyless_keys", {}, now.keys);
    w.header("keyless_keys_unavailable", "gauge",
             "Configured keys not served: their source failed (see /healthz and the log).");
    w.sample("keyless_keys_unavailable", {}, now.keys_unavailable);
    w.header("keyless_draining", "gauge", "1 while the keyserver drains (no new connections).");
    w.sample("keyless_draining", {}, now.draining ? 1 : 0);
    w.header("keyless_certificate_expiration_timestamp_seconds", "gauge",
             "notAfter of the keyserver's certificate and of each client CA certificate.");
    for (const auto& [label, t] : now.certificate_expiry)
        w.sample("keyless_certificate_expiration_timestamp_seconds", {{"cert", label}}, t);
}

} // namespace

std::string Metrics::exposition(const MetricsSnapshot& now) const {
    Counters counters;
    {
        std::lock_guard lock(mutex_);
        counters = counters_;
    }
    Writer w;
    write_requests(w, counters);
    write_events(w, counters, start_time_);
    write_gauges(w, now);
    process_metrics(w, start_time_);
    return w.str();
}

int64_t not_after(const X509* cert) {
    std::tm tm{};
    return ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) ? static_cast<int64_t>(::timegm(&tm)) : 0;
}

std::vector<std::pair<std::string, int64_t>> certificate_expiry(const std::string& file,
                                                                const std::string& label) {
    std::vector<std::pair<std::string, int64_t>> out;
    ossl::Bio bio(BIO_new_file(file.c_str(), "r"));
    while (bio) {
        ossl::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        if (!cert) break;
        int64_t expires = not_after(cert.get());
        if (!expires) continue;
        std::string cn = subject_common_name(cert.get());
        out.emplace_back(label + ":" + (cn.empty() ? "?" : cn), expires);
    }
    ERR_clear_error(); // the end of the file reads as an error
    return out;
}

} // namespace keyless::keyserver
