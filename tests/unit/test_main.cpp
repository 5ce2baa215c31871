#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <csignal>

// Tests write to connections that servers close on purpose (bad frames, refused clients): that
// must fail the write, not kill the test binary with SIGPIPE.
static const auto ignore_sigpipe = std::signal(SIGPIPE, SIG_IGN);
