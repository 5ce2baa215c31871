#include "log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace keyless::keyserver {

std::string utc_timestamp() {
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

void log_line(Level level, const std::string& message) {
    const char* name = level == Level::Info ? "info" : level == Level::Warn ? "warn" : "error";
    std::string line = utc_timestamp() + " " + name + " keyserver: " + message + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr); // stderr is unbuffered: one write
}

} // namespace keyless::keyserver
