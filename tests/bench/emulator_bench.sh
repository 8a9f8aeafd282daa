#!/usr/bin/env bash
# Builds and runs the pfs-emulator loopback benchmark (object GET throughput with 1 and 4
# connections and RpcGetStat round trips per second, each next to a curl baseline).
# Usage: tests/bench/emulator_bench.sh [build-dir] [seconds-per-row]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
secs=${2:-3}
cmake -S . -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" --target pfs-emulator emulator_bench >/dev/null
exec "$build/tests/bench/emulator_bench" "$secs"
