#include "access_log.hpp"

#include <nlohmann/json.hpp>

#include <ctime>
#include <stdexcept>

namespace keyless::keyserver {

AccessLog::AccessLog(const std::string& path) {
    if (path.empty()) return;
    if (path == "-") {
        out_ = stdout;
        return;
    }
    out_ = std::fopen(path.c_str(), "a");
    if (!out_) throw std::runtime_error("cannot open access log " + path);
    owned_ = true;
}

AccessLog::~AccessLog() {
    if (owned_) std::fclose(out_);
}

namespace {

std::string utc_now() {
    auto now = std::chrono::system_clock::now();
    std::time_t secs = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms.count()));
    return out;
}

} // namespace

void AccessLog::record(uint32_t request_id, const std::string& client, const std::string& peer,
                       const Outcome& o, std::chrono::microseconds latency, size_t in_flight) {
    if (!out_) return;
    nlohmann::json line = {
        {"time", utc_now()},
        {"id", request_id},
        {"client", client},
        {"peer", peer},
        {"key", o.key_name},
        {"op", o.operation},
        {"result", o.error == protocol::ErrorCode::None ? "ok" : "error"},
        {"latency_us", latency.count()},
        {"in_flight", in_flight},
    };
    if (!o.shape.empty()) {
        line["shape"] = o.shape;
        line["size"] = o.size;
    }
    if (o.error != protocol::ErrorCode::None) {
        line["error"] = protocol::to_string(o.error);
        line["reason"] = o.reason;
    }
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::lock_guard lock(mutex_);
    std::fwrite(text.data(), 1, text.size(), out_);
    std::fflush(out_);
}

} // namespace keyless::keyserver
