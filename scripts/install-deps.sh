#!/usr/bin/env bash
# Installs every Debian package pfsagent needs to build, test and run. Idempotent and
# non-interactive; runs `apt-get update` only when a package is missing from the lists.
set -euo pipefail

PACKAGES=(
  # build
  cmake g++ make ninja-build pkg-config ccache
  libfuse3-dev libcurl4-openssl-dev nlohmann-json3-dev libboost-dev
  libssl-dev libspdlog-dev catch2
  # run and test
  fuse3 openssl curl procps psmisc python3 systemd
  # Debian package (CPack: dpkg-shlibdeps, file) and its test (a clean Debian 12 root), lintian
  dpkg-dev file mmdebstrap lintian iproute2
  # fuzz phase of scripts/test.sh: clang with libFuzzer (libclang_rt.fuzzer lives in
  # libclang-rt-14-dev, which clang-14 does not depend on; installed with --no-install-recommends)
  clang libclang-rt-14-dev
)
# Real-Swift tier (spec: shared/notes/real-swift.md).
SWIFT_PACKAGES=(swift swift-proxy swift-account swift-container swift-object python3-swift memcached)
if [[ "${PFS_WITH_SWIFT:-1}" == 1 ]]; then PACKAGES+=("${SWIFT_PACKAGES[@]}"); fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
# Update the lists only when one of the missing packages is unknown to them.
need_update=0
for p in "${missing[@]}"; do
  if ! apt-cache show "$p" >/dev/null 2>&1; then need_update=1; break; fi
done
if [[ $need_update -eq 1 ]]; then $SUDO apt-get update -qq; fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
