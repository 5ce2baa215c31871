#!/usr/bin/env bash
# The platform matrix: builds and tests this tree inside minimal Debian roots (scripts/roots.sh;
# cached under /var/cache/keyless-platforms, remade weekly), and prints per platform the
# versions it tested. Needs root. scripts/test.sh runs it as root; PLATFORMS selects.
#
# Usage: scripts/platforms.sh [PLATFORM...]      (default: all, in this order)
#   debian13   Debian 13 trixie (OpenSSL 3.5, nginx 1.26, haproxy 3.0, stunnel 5.74): the whole
#              suite, as scripts/test.sh runs it (packages: see debian13-packages; the
#              ThreadSanitizer stage runs on the host only)
#   sid        Debian sid (OpenSSL 3.6, nginx 1.30, haproxy 3.2, stunnel 5.82): build, the
#              provider and interop suites (nginx store: URIs, stunnel key = URIs)
#   openssl4   sid with OpenSSL 4.0 from experimental: build (-Werror), the unit, keyserver and
#              provider suites
#   debian12-demo, debian13-demo
#              the README's first command, scripts/demo.sh, on a fresh minimal root (it installs
#              what it needs itself: this is what a new user's machine does)
#   debian12-packages, debian13-packages
#              the .debs built for that release in its root, installed on a fresh minimal root
#              of it, docs/deploy.md followed there to a handshake through nginx
# Environment: JOBS (default: cores), FUZZ_SECONDS for debian13 (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "platforms.sh: needs root (chroot, mount)" >&2; exit 1; }
source scripts/roots.sh
scripts/install-deps.sh --platforms >/dev/null

all=(debian13 sid openssl4 debian12-demo debian13-demo debian12-packages debian13-packages)
wanted=("$@")
((${#wanted[@]})) || wanted=("${all[@]}")
jobs=${JOBS:-$(nproc)}
trap roots_overlay_done EXIT
trap 'exit 130' INT TERM

# Packages of each platform's root: the project's own list, plus what the platform adds.
setup_full=$roots_setup_full
setup_openssl4='scripts/install-deps.sh --interop
echo "deb '"$roots_mirror"' experimental main" > /etc/apt/sources.list.d/experimental.list
apt-get update -qq
apt-get install -y -qq --no-install-recommends -t experimental libssl-dev openssl'

# What each platform tested, printed at the end.
summary=()
versions() { # in the root: the versions a reader needs to judge the run
    roots_chroot "$roots_root" bash -c '
        v() { dpkg-query -W -f="\${Version}" "$1" 2>/dev/null || echo none; }
        printf "%s; OpenSSL %s (libssl-dev %s); nginx %s; haproxy %s; stunnel %s; g++ %s" \
            "$(. /etc/os-release; echo "$PRETTY_NAME")" "$(openssl version | cut -d" " -f2)" \
            "$(v libssl-dev)" "$(v nginx)" "$(v haproxy)" "$(v stunnel4)" "$(g++ -dumpversion 2>/dev/null || echo none)"'
}

# run_platform NAME STARTED WHAT COMMAND: runs COMMAND (bash, in /src) in the overlay that
# roots_overlay made; records "NAME (seconds): WHAT versions" or fails; removes the overlay.
run_platform() {
    local name=$1 started=$2 what=$3 command=$4
    if ! roots_chroot "$roots_root" bash -euo pipefail -c "cd /src; $command"; then
        echo "== platform $name: FAILED" >&2
        roots_leftovers "$roots_root" || true
        roots_overlay_done
        return 1
    fi
    # Every test stops what it started: anything still running in the root is a failure.
    if ! roots_leftovers "$roots_root"; then
        echo "== platform $name: FAILED (processes left running)" >&2
        roots_overlay_done
        return 1
    fi
    summary+=("$name ($((SECONDS - started)) s): $what$(versions)")
    roots_overlay_done
}

# in_root NAME SUITE SETUP COMMAND: runs COMMAND in an overlay on the root with SETUP's packages.
in_root() {
    local name=$1 suite=$2 setup=$3 command=$4 started=$SECONDS
    roots_packaged "$name" "$suite" "$setup"
    roots_overlay "$roots_cache/$name.root" "$suite"
    echo "== platform $name: $(versions)"
    roots_env=(JOBS="$jobs" PLATFORMS=host FUZZ_SECONDS="${FUZZ_SECONDS:-20}")
    run_platform "$name" "$started" "" "$command"
}

# Build and the chosen ctest suites, by label (tests/CMakeLists.txt: a suite's label is its
# tests' name prefix; ctest adds the PKI fixture they need).
build_and_test() { # CTEST_LABEL_REGEX
    echo "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON >/dev/null
          cmake --build build -j $jobs
          ctest --test-dir build --output-on-failure -j $jobs -L '$1'"
}

# packages_for RELEASE VERSION_ID NAME: builds the .debs of RELEASE in its root (scripts/package.sh
# --release, which installs what it needs there), then installs them on a fresh minimal root of
# it and follows docs/deploy.md there (scripts/test-deploy-guide.sh --debs).
packages_for() {
    local release=$1 id=$2 name=$3 out=build-pkg/$1 started=$SECONDS
    KEYLESS_PACKAGE_IN_ROOT=1 scripts/package.sh --release "$release" >/dev/null
    ls "$out"/*~deb"${id}"u*.deb >/dev/null || { echo "platforms: $release packages are not versioned ~deb${id}" >&2; return 1; }
    roots_base "$release"
    roots_overlay "$roots_cache/$release.base" "$release"
    echo "== platform $name: $(ls "$out" | tr '\n' ' ')on a fresh $release root"
    mkdir -p "$roots_root/debs"; cp "$out"/*.deb "$roots_root/debs/"
    # As in any chroot: package scripts must not start services (nginx's would bind :80 here);
    # the guide starts what it needs (test-deploy-guide.sh's systemctl stand-in).
    printf '#!/bin/sh\nexit 101\n' > "$roots_root/usr/sbin/policy-rc.d"; chmod 755 "$roots_root/usr/sbin/policy-rc.d"
    # The test's own tools: curl, and systemd-analyze with man (it checks the units' Documentation=
    # pages); the guide itself installs nginx and the packages.
    roots_env=()
    run_platform "$name" "$started" "$(ls "$out" | tr '\n' ' ')on " "apt-get update -qq
        apt-get install -y -qq --no-install-recommends curl systemd man-db ca-certificates >/dev/null
        scripts/test-deploy-guide.sh --debs /debs"
}

# demo_on RELEASE NAME: scripts/demo.sh as written, on a fresh minimal root of RELEASE.
demo_on() {
    local release=$1 name=$2 started=$SECONDS
    roots_base "$release"
    roots_overlay "$roots_cache/$release.base" "$release"
    echo "== platform $name: scripts/demo.sh on a fresh $release root"
    roots_env=()
    run_platform "$name" "$started" "the demo on " "scripts/demo.sh > /tmp/demo.log 2>&1 ||
        { tail -40 /tmp/demo.log; exit 1; }
        grep -q 'the edges never held a private key' /tmp/demo.log"
}

for platform in "${wanted[@]}"; do
    case $platform in
    # packages: debian13-packages; ThreadSanitizer: the host's run of scripts/test.sh (CI's time)
    debian13) in_root trixie-full trixie "$setup_full" "PACKAGES=0 TSAN=0 scripts/test.sh" ;;
    sid) in_root sid-full sid "$setup_full" "$(build_and_test '^(provider|interop.*|nginx store|stunnel uri|examples)$')
          # nginx 1.30 and stunnel 5.82 take URIs: their cases must have been registered and run.
          tests/expect-registered.sh build 'nginx store' 'stunnel uri'" ;;
    openssl4) in_root sid-openssl4 sid "$setup_openssl4" "$(build_and_test '^(unit|keyserver|provider)$')" ;;
    debian12-demo) demo_on bookworm "$platform" ;;
    debian13-demo) demo_on trixie "$platform" ;;
    debian12-packages) packages_for bookworm 12 "$platform" ;;
    debian13-packages) packages_for trixie 13 "$platform" ;;
    *) echo "platforms.sh: unknown platform '$platform' (known: ${all[*]})" >&2; exit 2 ;;
    esac
done
echo "== platforms tested"
printf '  %s\n' "${summary[@]}"
