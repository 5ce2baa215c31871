// One main for Catch2 2 and 3 (3 no longer makes one from CATCH_CONFIG_MAIN).
#define CATCH_CONFIG_RUNNER
#include "catch.hpp"

#include <csignal>

int main(int argc, char* argv[]) {
    // Tests write to connections that servers close on purpose (bad frames, refused clients):
    // that must fail the write, not kill the test binary with SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    return Catch::Session().run(argc, argv);
}
