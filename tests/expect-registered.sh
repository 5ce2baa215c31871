#!/usr/bin/env bash
# Fails unless every named ctest test is registered in the build tree: for tests that CMake
# registers only where the platform can run them (tests/CMakeLists.txt), so that the platform
# meant to run them cannot pass without them. Usage: tests/expect-registered.sh BUILD_DIR TEST...
set -euo pipefail
build=$1; shift
registered=$(ctest --test-dir "$build" -N | sed -n 's/^ *Test *#[0-9]*: //p')
missing=()
for t in "$@"; do grep -qx "$t" <<<"$registered" || missing+=("$t"); done
if ((${#missing[@]})); then
    echo "not registered in $build: ${missing[*]} (see the configure messages of tests/CMakeLists.txt)" >&2
    exit 1
fi
