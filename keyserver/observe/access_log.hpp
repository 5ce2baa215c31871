// One JSON line per operation: time, request id, client identity, key, operation, result,
// latency. A connection formats the lines of the replies it is about to send into one batch and
// writes the batch (one write(2), no stdio buffering) before the replies leave, so every answer an
// edge received is on record, and `tail -f` and tests see it at once. Thread-safe.
#pragma once

#include "ops/outcome.hpp"

#include <chrono>
#include <mutex>
#include <string>

namespace keyless::keyserver {

class AccessLog {
  public:
    // path: empty for none, "-" for standard output, else a file opened for appending.
    explicit AccessLog(const std::string& path);
    ~AccessLog();
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    // Opens the file again (after logrotate moved it); throws naming the file on failure, and
    // then keeps writing to the old one.
    void reopen();

    // Appends one line to `batch` (nothing when the log is off).
    void format(std::string& batch, uint32_t request_id, const std::string& client,
                const std::string& peer, const Outcome& outcome, std::chrono::microseconds latency,
                size_t in_flight) const;
    // Writes whole lines; a failing write is reported on stderr (at most once per 10 s) and the
    // lines are counted in lost_lines().
    void write(const std::string& batch);
    uint64_t lost_lines() const;

  private:
    mutable std::mutex mutex_; // guards fd_ (replaced by reopen()), lost_ and the write position
    const bool enabled_;
    int fd_ = -1;
    bool owned_ = false;
    std::string path_;
    uint64_t lost_ = 0;
    std::chrono::steady_clock::time_point last_complaint_{};
};

} // namespace keyless::keyserver
