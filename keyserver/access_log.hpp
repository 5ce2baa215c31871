// One JSON line per operation: time, request id, client identity, key, operation, result,
// latency. Thread-safe; flushed per line so `tail -f` and tests see it at once.
#pragma once

#include "dispatch.hpp"

#include <chrono>
#include <cstdio>
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

    void record(uint32_t request_id, const std::string& client, const std::string& peer,
                const Outcome& outcome, std::chrono::microseconds latency, size_t in_flight);

  private:
    std::mutex mutex_; // serialises lines from the worker threads
    const bool enabled_;
    FILE* out_ = nullptr; // replaced by reopen(), under mutex_
    bool owned_ = false;
    std::string path_;
};

} // namespace keyless::keyserver
