#include "access_log.hpp"

#include "log.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace keyless::keyserver {

namespace {

// Created 0640: the log names clients and keys, not for everyone's eyes.
FILE* open_for_append(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    FILE* f = fd >= 0 ? ::fdopen(fd, "a") : nullptr;
    if (!f) {
        int err = errno;
        if (fd >= 0) ::close(fd);
        throw std::runtime_error("cannot open access log " + path + ": " + std::strerror(err));
    }
    return f;
}

} // namespace

AccessLog::AccessLog(const std::string& path) : enabled_(!path.empty()) {
    if (path.empty()) return;
    if (path == "-") {
        out_ = stdout;
        return;
    }
    path_ = path;
    out_ = open_for_append(path);
    owned_ = true;
}

void AccessLog::reopen() {
    if (!owned_) return;
    FILE* fresh = open_for_append(path_);
    std::lock_guard lock(mutex_);
    std::fclose(out_);
    out_ = fresh;
}

AccessLog::~AccessLog() {
    if (owned_) std::fclose(out_);
}

void AccessLog::record(uint32_t request_id, const std::string& client, const std::string& peer,
                       const Outcome& o, std::chrono::microseconds latency, size_t in_flight) {
    if (!enabled_) return;
    nlohmann::json line = {
        {"time", utc_timestamp()},
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
