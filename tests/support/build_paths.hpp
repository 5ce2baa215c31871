// Where this build tree's programs and test PKI are. Each is compiled in (one build tree, one
// set of paths), so a single Catch2 test case runs the same from ctest or by hand; an environment
// variable of the same name overrides it (the platform matrix and tools point elsewhere that way).
#pragma once

#include <string>

namespace keyless::test {

std::string test_pki_dir();      // KEYLESS_TEST_PKI: tests/gen-pki.sh's output
std::string keyserver_program(); // KEYLESS_KEYSERVER
std::string test_keyserver();    // KEYLESS_TEST_KEYSERVER: the keyserver with test-only flags
std::string provider_module();   // KEYLESS_PROVIDER: keyless.so
std::string keyless_tool();      // KEYLESS_TOOL
std::string source_dir();        // KEYLESS_SOURCE_DIR: the project's sources

} // namespace keyless::test
