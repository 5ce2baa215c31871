#include "build_paths.hpp"

#include <cstdlib>

namespace keyless::test {

namespace {
// The compiled-in path (tests/CMakeLists.txt) unless the environment names another.
std::string setting(const char* name, const char* built) {
    const char* v = std::getenv(name);
    return v && *v ? v : built;
}
} // namespace

std::string test_pki_dir() {
    return setting("KEYLESS_TEST_PKI", KEYLESS_BUILT_TEST_PKI);
}
std::string keyserver_program() {
    return setting("KEYLESS_KEYSERVER", KEYLESS_BUILT_KEYSERVER);
}
std::string test_keyserver() {
    return setting("KEYLESS_TEST_KEYSERVER", KEYLESS_BUILT_TEST_KEYSERVER);
}
std::string provider_module() {
    return setting("KEYLESS_PROVIDER", KEYLESS_BUILT_PROVIDER);
}
std::string keyless_tool() {
    return setting("KEYLESS_TOOL", KEYLESS_BUILT_TOOL);
}
std::string source_dir() {
    return setting("KEYLESS_SOURCE_DIR", KEYLESS_BUILT_SOURCE_DIR);
}

} // namespace keyless::test
