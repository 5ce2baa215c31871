// Appending JSON text by hand for the access log, which writes one line per request: building a
// JSON object per line cost more than some signatures. Output is byte-identical to nlohmann's
// dump() with error_handler_t::replace (tested against it).
#pragma once

#include <string>
#include <string_view>

namespace keyless::keyserver {

// Appends `text` as a quoted JSON string: control characters, quotes and backslashes escaped,
// each byte that is not part of valid UTF-8 replaced by U+FFFD.
void append_json_string(std::string& out, std::string_view text);

} // namespace keyless::keyserver
