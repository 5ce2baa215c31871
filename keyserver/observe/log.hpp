// The keyserver's standard-error log: one line per event, "TIME LEVEL keyserver: message", with
// an RFC 3339 UTC timestamp (milliseconds). Whole lines are written at once, so lines from
// different threads never interleave.
#pragma once

#include <string>

namespace keyless::keyserver {

enum class Level { Info, Warn, Error };

void log_line(Level level, const std::string& message); // message without the "keyserver: "
// The current UTC time as "2026-11-24T21:40:00.123Z".
std::string utc_timestamp();

} // namespace keyless::keyserver
