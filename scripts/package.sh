#!/usr/bin/env bash
# Builds the Debian packages keyless-provider and keyless-keyserver (CPack, from the one CMake
# build) into build-pkg/: prefix /usr, keyless.so in OpenSSL's modules directory.
# Usage: scripts/package.sh            then: apt-get install ./build-pkg/keyless-*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cmake -S . -B build-pkg -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF \
    >/dev/null
cmake --build build-pkg -j "$(nproc)" >/dev/null
rm -f build-pkg/keyless-*.deb
(cd build-pkg && cpack -G DEB > cpack.log 2>&1) || { echo "package.sh: cpack failed:" >&2; cat build-pkg/cpack.log >&2; exit 1; }
ls build-pkg/keyless-*.deb
