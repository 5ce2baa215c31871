#include "observe/log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace keyless::keyserver {

std::string utc_timestamp() {
    auto now = std::chrono::system_clock::now();
    std::time_t secs = std::chrono::system_clock::to_time_t(now);
    auto ms = static_cast<int>(
        (std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000)
            .count());
    // The date and time to the second are formatted once per second per thread (the access log
    // stamps every request): thread-local, so no lock, and each thread's own.
    thread_local std::time_t cached_secs = -1;
    thread_local char cached[24];
    if (secs != cached_secs) {
        std::tm tm{};
        gmtime_r(&secs, &tm);
        std::strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_secs = secs;
    }
    std::string out(cached);
    out += '.';
    out += static_cast<char>('0' + ms / 100);
    out += static_cast<char>('0' + ms / 10 % 10);
    out += static_cast<char>('0' + ms % 10);
    out += 'Z';
    return out;
}

void log_line(Level level, const std::string& message) {
    const char* name = level == Level::Info ? "info" : level == Level::Warn ? "warn" : "error";
    std::string line = utc_timestamp() + " " + name + " keyserver: " + message + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr); // stderr is unbuffered: one write
}

} // namespace keyless::keyserver
