// The keyserver's command line. Each flag is defined once (Boost.Program_options): the parser and
// --help come from the same definitions, and tests/check-man-pages.sh compares --help with
// keyserver(8).
#pragma once

#include "config/config.hpp"

#include <string>
#include <vector>

namespace keyless::keyserver {

struct Flags {
    Config config; // the config file's settings (--config), with the flags' values over them
    std::string config_file;
    bool check = false;
    bool allow_core_dumps = false;
};

// Parses `args` (argv without the program name). --help and --version print and exit 0. An unknown
// flag, a missing or malformed value, or a stray argument throws ConfigError naming it.
Flags parse_flags(const std::vector<std::string>& args);

} // namespace keyless::keyserver
