#!/usr/bin/env bash
# Builds the Debian package pfsagent_<version>_<arch>.deb with CPack from the build tree
# (packaging/CMakeLists.txt says why CPack): configures BUILD_DIR if needed, builds only what the
# package contains, runs `cpack -G DEB`, then lintian when installed. Prints the .deb's path.
#
# Usage: scripts/build-deb.sh [BUILD_DIR]          (default: build)
# Environment: PFS_BUILD_JOBS  parallel compile jobs (default: nproc)
#              PFS_LINTIAN=0   skip lintian
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
JOBS=${PFS_BUILD_JOBS:-$(nproc)}
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j"$JOBS" --target pfsagentd pfsagentd-swift-auth-plugin pfsagentctl pfs_man
rm -f "$BUILD"/packages/pfsagent_*.deb
cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$BUILD/packages" >/dev/null
deb=$(ls "$BUILD"/packages/pfsagent_*.deb)
if [[ ${PFS_LINTIAN:-1} == 1 ]] && command -v lintian >/dev/null; then
  # Remaining tags and why they stay: packaging/lintian-overrides.md.
  lintian --suppress-tags-from-file packaging/lintian-suppressed "$deb" >&2 || true
fi
echo "$deb"
