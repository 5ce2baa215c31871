#include "observe/access_log.hpp"

#include "observe/json_text.hpp"
#include "observe/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace keyless::keyserver {

namespace {

// Created 0640: the log names clients and keys, not for everyone's eyes.
int open_for_append(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        throw std::runtime_error("cannot open access log " + path + ": " + std::strerror(errno));
    return fd;
}

void append_number(std::string& out, uint64_t n) {
    char digits[24];
    size_t len = 0;
    do {
        digits[len++] = static_cast<char>('0' + n % 10);
        n /= 10;
    } while (n);
    std::reverse(digits, digits + len);
    out.append(digits, len);
}

// ,"name":
void append_key(std::string& out, std::string_view name, bool first = false) {
    if (!first) out.push_back(',');
    out.push_back('"');
    out.append(name);
    out.append("\":");
}

} // namespace

AccessLog::AccessLog(const std::string& path) : enabled_(!path.empty()) {
    if (path.empty()) return;
    if (path == "-") {
        fd_ = STDOUT_FILENO;
        return;
    }
    path_ = path;
    fd_ = open_for_append(path);
    owned_ = true;
}

void AccessLog::reopen() {
    if (!owned_) return;
    int fresh = open_for_append(path_);
    std::lock_guard lock(mutex_);
    ::close(fd_);
    fd_ = fresh;
}

AccessLog::~AccessLog() {
    if (owned_) ::close(fd_);
}

// Keys in alphabetical order, as the log has always had them (nlohmann's default object order).
void AccessLog::format(std::string& out, uint32_t request_id, const std::string& client,
                       const std::string& peer, const Outcome& o, std::chrono::microseconds latency,
                       size_t in_flight) const {
    if (!enabled_) return;
    bool failed = o.error != protocol::ErrorCode::None;
    out.push_back('{');
    append_key(out, "client", true);
    append_json_string(out, client);
    if (failed) {
        append_key(out, "error");
        append_json_string(out, o.hsm_failure && o.error != protocol::ErrorCode::Overloaded
                                    ? "hsm error"
                                    : protocol::to_string(o.error));
    }
    append_key(out, "id");
    append_number(out, request_id);
    append_key(out, "in_flight");
    append_number(out, in_flight);
    append_key(out, "key");
    append_json_string(out, o.key_name);
    append_key(out, "latency_us");
    append_number(out, static_cast<uint64_t>(std::max<int64_t>(0, latency.count())));
    append_key(out, "op");
    append_json_string(out, o.operation);
    append_key(out, "peer");
    append_json_string(out, peer);
    if (failed) {
        append_key(out, "reason");
        append_json_string(out, o.reason);
    }
    append_key(out, "result");
    out.append(failed ? "\"error\"" : "\"ok\"");
    if (!o.shape.empty()) {
        append_key(out, "shape");
        append_json_string(out, o.shape);
        append_key(out, "size");
        append_number(out, o.size);
    }
    append_key(out, "time");
    append_json_string(out, utc_timestamp());
    out.append("}\n");
}

void AccessLog::write(const std::string& batch) {
    if (!enabled_ || batch.empty()) return;
    std::lock_guard lock(mutex_);
    size_t done = 0;
    while (done < batch.size()) {
        ssize_t n = ::write(fd_, batch.data() + done, batch.size() - done);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        int err = n < 0 ? errno : ENOSPC;
        uint64_t lines = static_cast<uint64_t>(
            std::count(batch.begin() + static_cast<long>(done), batch.end(), '\n'));
        lost_ += lines;
        auto now = std::chrono::steady_clock::now();
        if (now - last_complaint_ >= std::chrono::seconds(10)) {
            last_complaint_ = now;
            log_line(Level::Error, "access log " + (path_.empty() ? "(stdout)" : path_) +
                                       ": write failed: " + std::strerror(err) + "; " +
                                       std::to_string(lost_) + " lines lost so far");
        }
        return;
    }
}

uint64_t AccessLog::lost_lines() const {
    std::lock_guard lock(mutex_);
    return lost_;
}

} // namespace keyless::keyserver
