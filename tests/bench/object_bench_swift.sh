#!/bin/bash
# object_bench against a REAL OpenStack Swift node (Debian packages): starts a private node on
# 127.0.0.1 with tests/swift/start-swift.sh, runs object_bench (SwiftObjectStore vs curl CLI on
# the same objects, medians), and stops every Swift process by its recorded PID (stop-swift.sh),
# also when the benchmark fails or is interrupted.
#
# Usage: tests/bench/object_bench_swift.sh [BUILD_DIR] [object_bench options...]
#   BUILD_DIR   default: build (object_bench and pfsagentd-swift-auth-plugin must be built)
# Environment:
#   PFS_BENCH_SWIFT_PORT   proxy port (default 18480; base+1..+4 are also used)
#   PFS_SWIFT_TOKEN_LIFE   tempauth token life in seconds (default here 3600, so the numbers are
#                          pure throughput; a short value, e.g. 4, makes the agent's transport
#                          renew tokens through the auth plug-in during the run, and the bench
#                          reports how many renewals happened)
# Example: tests/bench/object_bench_swift.sh build --size-mib 64 --runs 5
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-build}
[ $# -gt 0 ] && shift
BENCH="$BUILD/tests/bench/object_bench"
[ -x "$BENCH" ] || { echo "no $BENCH: build the object_bench target first" >&2; exit 2; }
PORT=${PFS_BENCH_SWIFT_PORT:-18480}
export PFS_SWIFT_TOKEN_LIFE=${PFS_SWIFT_TOKEN_LIFE:-3600}
STATE=$(mktemp -d /var/tmp/pfs-object-bench-swift.XXXXXX)
trap '"$HERE/../swift/stop-swift.sh" "$STATE" --purge' EXIT
"$HERE/../swift/start-swift.sh" "$STATE" "$PORT"
# shellcheck disable=SC1091
. "$STATE/env"
"$BENCH" --auth-url "$PFS_SWIFT_AUTH_URL" --user "$PFS_SWIFT_USER" --key "$PFS_SWIFT_KEY" \
  --account "$PFS_SWIFT_ACCOUNT" "$@"
