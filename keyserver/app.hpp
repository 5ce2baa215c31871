// The keyserver program: flags, config, key loading, the listener, signals. main() runs it as
// is; a test build of the keyserver (tests/support/keyserver_for_tests.cpp) adds hooks.
#pragma once

#include "ops/dispatch.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace keyless::keyserver {

struct AppHooks {
    // Wraps the dispatcher made at start and at every reload; none: the dispatcher serves as is.
    std::function<std::shared_ptr<const RequestHandler>(std::shared_ptr<const Dispatcher>)> wrap;
};

// Runs the keyserver with `args` (argv without the program name); returns the exit status.
int run_keyserver(const std::vector<std::string>& args, const AppHooks& hooks = {});

} // namespace keyless::keyserver
