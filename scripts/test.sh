#!/usr/bin/env bash
# The README's test command: installs what is missing, builds from scratch and runs every
# test tier (unit, component, wire, e2e, swift).
#   PFS_TEST_SANITIZERS=1  also build and run the unit tier under ASan+UBSan and under TSan.
#     Off by default: on this 2-core machine each sanitizer build takes more than 15 minutes
#     (the unit tier links the whole daemon through config_cli_test), which would push CI past
#     30 minutes, and the phase has not yet been seen green end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)

./scripts/install-deps.sh

build() {  # build <dir> <cmake args...>
  local dir=$1; shift
  rm -rf "$dir"
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; exit 1; }
}

echo "== build (RelWithDebInfo) =="
build build-test
cmake --build build-test -j"$jobs"
echo "== tests: all tiers =="
ctest --test-dir build-test --output-on-failure --timeout 600

if [[ "${PFS_TEST_SANITIZERS:-0}" == 1 ]]; then
  for san in address thread; do
    echo "== unit tests under PFS_SANITIZE=$san =="
    build "build-$san" -DPFS_SANITIZE=$san
    # Only what the unit tier needs.
    targets=$(ctest --test-dir "build-$san" -L unit -N | awk '/Test +#/ {print $3}')
    cmake --build "build-$san" -j"$jobs" --target $targets
    ctest --test-dir "build-$san" -L unit --output-on-failure --timeout 600
  done
fi
echo "== all tests passed =="
