#!/usr/bin/env bash
# Runs every test: installs missing Debian packages, builds (Release, ccache), runs ctest, then
# runs the libFuzzer targets for a bounded time when clang is available.
# Environment: JOBS (parallel build/test jobs, default: cores), FUZZ_SECONDS (default 20; 0 skips),
# SANITIZE (default 1: also run the codec, policy and keyserver tests under ASan+UBSan; 0 skips),
# TSAN (default 1: the keyserver and client tests, keyserver_e2e, under ThreadSanitizer; 0 skips),
# PACKAGES (default 1: as root, build the .deb files, install them and follow docs/deploy.md
# through to a handshake via nginx, then purge; 0 skips), PLATFORMS (as root: the platform
# matrix of scripts/platforms.sh, default "all"; "host" skips it, or name platforms, e.g.
# PLATFORMS="sid openssl4").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --interop
scripts/check-layers.sh

jobs=${JOBS:-$(nproc)}
# ccache hits across checkouts at other paths (CI clones afresh): paths under here are hashed
# relative to it.
export CCACHE_BASEDIR=$PWD
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON >/dev/null
cmake --build build -j "$jobs"

fuzz_seconds=${FUZZ_SECONDS:-20}
if [[ "$fuzz_seconds" != 0 ]] && command -v clang++ >/dev/null; then
    echo "== fuzzing the codec, the request handler and the TLS shape classifier for ${fuzz_seconds}s each"
    cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DKEYLESS_FUZZ=ON -DBUILD_TESTING=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build-fuzz -j "$jobs" --target fuzz_decoder fuzz_dispatch fuzz_tls_shape
    tests/gen-pki.sh build/test-pki
    for target in fuzz_decoder fuzz_dispatch fuzz_tls_shape; do
        mkdir -p "build-fuzz/corpus/$target"
        KEYLESS_TEST_PKI=$PWD/build/test-pki "build-fuzz/tests/fuzz/$target" \
            -max_total_time="$fuzz_seconds" -print_final_stats=0 "build-fuzz/corpus/$target" \
            2> "build-fuzz/$target.log" || { tail -50 "build-fuzz/$target.log"; exit 1; }
        echo "$target: $(grep -E "^Done [0-9]+ runs" "build-fuzz/$target.log")"
    done
fi

if [[ "${SANITIZE:-1}" != 0 ]]; then
    echo "== unit and keyserver tests under AddressSanitizer + UndefinedBehaviorSanitizer"
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEYLESS_SANITIZE=ON >/dev/null
    cmake --build build-asan -j "$jobs" --target unit_tests keyserver_e2e keyserver
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        ctest --test-dir build-asan --output-on-failure -j "$jobs" -L '^(unit|keyserver)$'
fi

if [[ "${TSAN:-1}" != 0 ]]; then
    echo "== keyserver and client tests under ThreadSanitizer (halting at the first race)"
    cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEYLESS_TSAN=ON >/dev/null
    cmake --build build-tsan -j "$jobs" --target keyserver_e2e keyserver keyserver-test
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        ctest --test-dir build-tsan --output-on-failure -j "$jobs" -L '^tsan$'
fi

echo "== every test (release build)"
ctest --test-dir build --output-on-failure -j "$jobs"

platforms=${PLATFORMS:-all}
if [[ "${PACKAGES:-1}" != 0 && $(id -u) -eq 0 && ($platforms == all || " $platforms " == *" debian12-packages "*) ]] &&
    [[ $(. /etc/os-release && echo "${VERSION_CODENAME:-}") == bookworm ]]; then
    echo "== Debian packages: in the platform matrix below (debian12-packages: a fresh Debian 12 root)"
elif [[ "${PACKAGES:-1}" != 0 && $(id -u) -eq 0 ]]; then
    echo "== Debian packages: build, install, follow docs/deploy.md to a handshake, purge"
    scripts/test-deploy-guide.sh
elif [[ "${PACKAGES:-1}" != 0 ]]; then
    echo "== NOT RUN: the packages and deploy-guide test needs root (it installs packages)"
fi

if [[ $platforms != host && $(id -u) -eq 0 ]]; then
    echo "== the platform matrix (scripts/platforms.sh; PLATFORMS=host skips it)"
    [[ $platforms == all ]] && platforms=
    # shellcheck disable=SC2086 # a list of platform names
    scripts/platforms.sh $platforms
elif [[ $platforms != host ]]; then
    echo "== NOT RUN: the platform matrix needs root (debootstrap, chroot); PLATFORMS=host skips it"
fi
