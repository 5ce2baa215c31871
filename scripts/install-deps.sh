#!/usr/bin/env bash
# Installs the Debian 12 packages keyless needs to build and test, only when one is missing
# (prometheus is there for promtool, which checks the /metrics output; scdoc renders the man
# pages; dpkg-dev lets CPack compute the packages' dependencies; softhsm2 and opensc's pkcs11-tool
# make the HSM the PKCS#11 tests use).
# Usage: scripts/install-deps.sh [--interop] [--bench]
#   --interop adds nginx, haproxy, stunnel4; --bench adds those and gnuplot (scripts/bench.sh)
set -euo pipefail
pkgs=(g++ cmake make ccache pkg-config openssl libssl-dev libboost-dev nlohmann-json3-dev catch2 curl procps
      clang libclang-rt-14-dev prometheus scdoc dpkg-dev libp11-kit-dev softhsm2 opensc)
for flag in "$@"; do
    case $flag in
    --interop) pkgs+=(nginx haproxy stunnel4) ;;
    --bench) pkgs+=(nginx haproxy stunnel4 gnuplot-nox) ;;
    *) echo "install-deps.sh: unknown flag $flag" >&2; exit 2 ;;
    esac
done
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
