#!/usr/bin/env bash
# Builds the Debian packages keyless-provider and keyless-keyserver (CPack, from the one CMake
# build): prefix /usr, keyless.so in OpenSSL's modules directory, dependencies and version
# (0.1.0~deb12u1, 0.1.0~deb13u1) of the release they are built on.
# Usage: scripts/package.sh                    this machine's release, into build-pkg/
#        scripts/package.sh --release NAME     bookworm or trixie, into build-pkg/NAME/: built in
#                                              a minimal root of that release (scripts/roots.sh;
#                                              needs root) unless this machine is that release
# then: apt-get install ./build-pkg/keyless-*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
release=
case ${1:-} in
--release) release=${2:?"package.sh --release: which release (bookworm, trixie)?"} ;;
"") ;;
*) echo "usage: scripts/package.sh [--release bookworm|trixie]" >&2; exit 2 ;;
esac
host=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
# collect DIR: the .debs in DIR become build-pkg/$release/'s.
collect() {
    rm -rf "build-pkg/$release"; mkdir -p "build-pkg/$release"
    cp "$1"/keyless-*.deb "build-pkg/$release/"
    ls "build-pkg/$release"/keyless-*.deb
}

# KEYLESS_PACKAGE_IN_ROOT=1 builds in the release's root even on that release (platforms.sh: the
# packages of a fresh machine, not of this one's installed state).
if [[ -n $release && ($release != "$host" || ${KEYLESS_PACKAGE_IN_ROOT:-0} == 1) ]]; then
    [[ $(id -u) -eq 0 ]] || { echo "package.sh --release $release: needs root (debootstrap, chroot)" >&2; exit 1; }
    source scripts/roots.sh
    trap roots_overlay_done EXIT
    scripts/install-deps.sh --platforms >/dev/null
    roots_packaged "$release-full" "$release" "$roots_setup_full"
    roots_overlay "$roots_cache/$release-full.root" "$release"
    roots_chroot "$roots_root" bash -euo pipefail -c "cd /src; scripts/package.sh >/dev/null"
    collect "$roots_root/src/build-pkg"
    exit 0
fi

scripts/install-deps.sh >/dev/null
cmake -S . -B build-pkg -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF \
    >/dev/null
cmake --build build-pkg -j "$(nproc)" >/dev/null
rm -f build-pkg/keyless-*.deb
(cd build-pkg && cpack -G DEB > cpack.log 2>&1) || { echo "package.sh: cpack failed:" >&2; cat build-pkg/cpack.log >&2; exit 1; }
if [[ -n $release ]]; then
    collect build-pkg
else
    ls build-pkg/keyless-*.deb
fi
