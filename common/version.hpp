// What the binaries print for --version: the project version, and the git revision the build
// was configured from ("not from git" otherwise). Defined in a file CMake generates, so a new
// revision recompiles only that file.
#pragma once

namespace keyless {

const char* version();
const char* revision();

} // namespace keyless
