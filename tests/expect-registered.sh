#!/usr/bin/env bash
# Fails unless each named ctest label has tests registered in the build tree: for suites that CMake
# registers only where the platform can run them (tests/CMakeLists.txt), so that the platform
# meant to run them cannot pass without them. Usage: tests/expect-registered.sh BUILD_DIR LABEL...
set -euo pipefail
build=$1; shift
missing=()
for label in "$@"; do
    count=$(ctest --test-dir "$build" -N -L "^$label\$" | sed -n 's/^Total Tests: //p')
    [[ ${count:-0} -gt 0 ]] || missing+=("'$label'")
done
if ((${#missing[@]})); then
    echo "no tests labelled ${missing[*]} in $build (see the configure messages of tests/CMakeLists.txt)" >&2
    exit 1
fi
