#!/usr/bin/env bash
# Installs the Debian packages keyless needs to build and test, only when one is missing, with the
# names of the release it runs on (Debian 12 bookworm, 13 trixie, sid): prometheus is there for
# promtool, which checks the /metrics output; scdoc renders the man pages; dpkg-dev and file let
# CPack compute the packages' dependencies; softhsm2 and opensc's pkcs11-tool make the HSM the
# PKCS#11 tests use; clang and its runtime build the fuzzers and sanitizer runs.
# Usage: scripts/install-deps.sh [--build] [--interop] [--bench] [--platforms]
#   --build: only what building the programs needs (not the test tools); --interop adds nginx,
#   haproxy, stunnel4; --bench adds those and gnuplot (scripts/bench.sh);
#   --platforms adds debootstrap (scripts/platforms.sh makes Debian roots with it)
set -euo pipefail
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
case $codename in
bookworm) clang_rt=libclang-rt-14-dev ;;     # Debian 12: clang 14, no unversioned runtime package
*) clang_rt=libclang-rt-dev ;;               # Debian 13 (clang 19), sid (clang 21) and later
esac
# What building the programs needs (the demo: scripts/lib.sh), then what the tests add.
build=(g++ cmake make ccache pkg-config openssl libssl-dev libboost-dev libboost-program-options-dev
       nlohmann-json3-dev
       libp11-kit-dev scdoc curl procps)
testing=(catch2 clang "$clang_rt" prometheus dpkg-dev file softhsm2 opensc)
extra=()
for flag in "$@"; do
    case $flag in
    --build) testing=() ;;
    --interop) extra+=(nginx haproxy stunnel4) ;;
    --bench) extra+=(nginx haproxy stunnel4 gnuplot-nox) ;;
    --platforms) extra+=(debootstrap) ;;
    *) echo "install-deps.sh: unknown flag $flag" >&2; exit 2 ;;
    esac
done
pkgs=("${build[@]}" "${testing[@]}" "${extra[@]}")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
