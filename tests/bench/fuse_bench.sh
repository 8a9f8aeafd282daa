#!/usr/bin/env bash
# FUSE benchmark (not a ctest): the same workloads on pfsagentd over pfs-emulator and on libfuse's
# passthrough_ll of a local directory (FUSE's own ceiling), medians of RUNS runs, with ratios.
#
# Usage: tests/bench/fuse_bench.sh [BUILD_DIR]     (default: build; needs root and /dev/fuse)
# Env:   SIZE_MB (default 1024)  RUNS (default 3)  NFILES (default 10000)  RANDREADS (default 4000)
#        READ_CACHE_MB (agent ReadCacheLineCount of 1 MiB lines, default 256)
#        AGENT_CONF_EXTRA (extra "Key: value" lines for the agent's [Agent] section, e.g.
#        $'ReadDirPlusEnabled: true')
#        PT_OPTS (extra passthrough_ll options, e.g. "-o cache=always" so the ceiling also keeps
#        the page cache across opens, as the agent does for unchanged files)
#        META (default 1: afterwards run tests/bench/meta_bench.sh, the metadata workloads with
#        the emulator's `real` latency profile, with META_N files, default 1000; 0 skips it)
# Besides the table it prints, per agent workload, the server RPCs one run made (emulator
# counters), e.g. to see how many RPCs a close or an `ls -l` costs.
# Targets (ratio agent/passthrough): warm seq read >= 0.7, cold >= 0.5, seq write >= 0.5,
# stat of a cached file >= 0.8; agent peak RSS <= read-cache budget + 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
NFILES=${NFILES:-10000}
RANDREADS=${RANDREADS:-4000}
EMU=$BUILD/tests/emulator/pfs-emulator
AGENT=${AGENT:-$BUILD/agent/pfsagentd}  # AGENT=... compares another build
PLUGIN=$(cd "$BUILD/plugins" && pwd)/pfsagentd-swift-auth-plugin
[[ -x $EMU && -x $AGENT && -x $PLUGIN ]] || { echo "fuse_bench: build pfs-emulator, pfsagentd and the plug-in first" >&2; exit 1; }

W=$(mktemp -d /tmp/pfsbench.XXXXXX)
PIDS=()
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 2
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

# --- passthrough_ll ---
SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
if [[ ! -f $SRC && -f $SRC.gz ]]; then gunzip -c "$SRC.gz" >"$W/passthrough_ll.c"; SRC=$W/passthrough_ll.c; fi
[[ -f $SRC ]] || { echo "fuse_bench: $SRC not found (libfuse3-dev examples)" >&2; exit 1; }
gcc -O2 -o "$W/passthrough_ll" "$SRC" $(pkg-config fuse3 --cflags --libs)
mkdir -p "$W/local" "$W/pt" "$W/agentmnt" "$W/data"
# shellcheck disable=SC2086
"$W/passthrough_ll" -f -o source="$W/local" ${PT_OPTS:-} "$W/pt" 2>"$W/pt.log" &
PT_PID=$!; PIDS+=("$PT_PID"); MOUNTS+=("$W/pt")

# --- emulator + agent ---
"$EMU" --listen 127.0.0.1:0 --rpc-listen 127.0.0.1:0 --data-dir "$W/data" --log-level warn \
  >"$W/emu.json" 2>"$W/emu.log" &
EMU_PID=$!; PIDS+=("$EMU_PID")
for _ in $(seq 100); do [[ -s $W/emu.json ]] && break; sleep 0.1; done
PORT=$(sed -n 's/.*"http_port":\([0-9]*\).*/\1/p' "$W/emu.json")
LINE_COUNT=${READ_CACHE_MB:-256}
cat >"$W/agent.conf" <<EOF
[Agent]
FUSEVolumeName: Bench
FUSEMountPointPath: $W/agentmnt
PlugInPath: $PLUGIN
PlugInEnvName: SwiftAuthBlob
PlugInEnvValue: {"AuthURL":"http://127.0.0.1:$PORT/auth/v1.0"\u002C"AuthUser":"test:tester"\u002C"AuthKey":"testing"\u002C"Account":"AUTH_test"}
LogFilePath: $W/agent.log
LogToConsole: false
HTTPServerTCPPort: 0
FUSEMaxWrite: 1048576
ReadCacheLineCount: $LINE_COUNT
EntryDuration: 1s
AttrDuration: 1s
${AGENT_CONF_EXTRA:-}
EOF
AGENT_PID=
start_agent() {
  "$AGENT" "$W/agent.conf" >>"$W/agent.out" 2>&1 &
  AGENT_PID=$!; PIDS+=("$AGENT_PID")
  for _ in $(seq 200); do grep -qs " $W/agentmnt fuse.PFSAgent " /proc/mounts && return 0; sleep 0.1; done
  echo "fuse_bench: agent did not mount" >&2; cat "$W/agent.out" >&2; exit 1
}
stop_agent() {
  kill -TERM "$AGENT_PID"; while kill -0 "$AGENT_PID" 2>/dev/null; do sleep 0.1; done
  wait "$AGENT_PID" 2>/dev/null || true
}
start_agent
MOUNTS+=("$W/agentmnt")
for _ in $(seq 50); do grep -qs " $W/pt fuse" /proc/mounts && break; sleep 0.1; done

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# Each workload prints one number per run (seconds or MB/s as named).
seq_write() {  # $1 dir -> MB/s
  local t0 t1; t0=$(now)
  dd if=/dev/zero of="$1/seq" bs=1M count="$SIZE_MB" conv=fsync status=none
  t1=$(now); echo "$SIZE_MB / ($t1 - $t0)" | bc -l
}
seq_read() {  # $1 dir -> MB/s
  local t0 t1; t0=$(now)
  dd if="$1/seq" of=/dev/null bs=1M status=none
  t1=$(now); echo "$SIZE_MB / ($t1 - $t0)" | bc -l
}
rand_read() {  # $1 dir -> reads/s
  python3 - "$1/seq" "$RANDREADS" <<'PY'
import os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY); n = int(sys.argv[2]); size = os.fstat(fd).st_size
random.seed(1); offs = [random.randrange(0, size // 4096) * 4096 for _ in range(n)]
t = time.time()
for o in offs: os.pread(fd, 4096, o)
print(n / (time.time() - t))
PY
}
small_files() {  # $1 dir -> ops/s (create+stat+unlink counted as 3 ops per file)
  python3 - "$1/small" "$NFILES" <<'PY'
import os, sys, time
d = sys.argv[1]; n = int(sys.argv[2]); os.makedirs(d, exist_ok=True)
t = time.time()
for i in range(n):
    with open(f"{d}/f{i}", "wb") as f: f.write(b"x" * 100)
for i in range(n): os.stat(f"{d}/f{i}")
for i in range(n): os.unlink(f"{d}/f{i}")
print(3 * n / (time.time() - t))
PY
}
ls_l() {  # $1 dir -> entries/s
  python3 - "$1/many" "$NFILES" <<'PY'
import os, sys
d = sys.argv[1]; n = int(sys.argv[2])
if not os.path.isdir(d):
    os.makedirs(d)
    for i in range(n): open(f"{d}/e{i}", "wb").close()
PY
  local t0 t1; t0=$(now); ls -l "$1/many" >/dev/null; t1=$(now)
  echo "$NFILES / ($t1 - $t0)" | bc -l
}
stat_cached() {  # $1 dir -> stats/s
  python3 - "$1/seq" <<'PY'
import os, sys, time
p = sys.argv[1]; os.stat(p); n = 20000; t = time.time()
for _ in range(n): os.stat(p)
print(n / (time.time() - t))
PY
}

emu() { curl -sf "http://127.0.0.1:$PORT/__emulator/$1"; }
declare -A R RPCS
run() {  # $1 name $2 target(agent|pt) $3 command...
  local name=$1 target=$2; shift 2
  local vals=()
  if [[ $target == agent ]]; then emu reset_counters >/dev/null || true; fi
  # Not in a subshell: cold_read_agent restarts the agent and must update AGENT_PID here.
  for _ in $(seq "$RUNS"); do "$@" >"$W/val"; vals+=("$(cat "$W/val")"); done
  R[$name.$target]=$(printf '%s\n' "${vals[@]}" | median)
  if [[ $target == agent ]]; then
    RPCS[$name]=$(emu counters | python3 -c '
import json, sys
c = json.load(sys.stdin); runs = int(sys.argv[1])
parts = []
for k, v in sorted(c.get("rpcs", {}).items()):
    if v: parts.append("%s=%g" % (k[3:] if k.startswith("Rpc") else k, v / runs))
parts.append("GET=%g PUT=%g" % (c.get("object_gets", 0) / runs, c.get("object_puts", 0) / runs))
print(" ".join(parts))' "$RUNS" 2>/dev/null || echo "(counters unavailable)")
  fi
}
cold_read_agent() { stop_agent; drop; start_agent; seq_read "$W/agentmnt"; }
cold_read_pt() { drop; seq_read "$W/pt"; }

echo "pfsagentd benchmark: SIZE_MB=$SIZE_MB RUNS=$RUNS NFILES=$NFILES RANDREADS=$RANDREADS READ_CACHE_MB=$LINE_COUNT PT_OPTS='${PT_OPTS:-}' (medians)"
for t in agent pt; do
  dir=$W/agentmnt; [[ $t == pt ]] && dir=$W/pt
  run seq_write "$t" seq_write "$dir"
  if [[ $t == agent ]]; then run cold_read agent cold_read_agent; else run cold_read pt cold_read_pt; fi
  seq_read "$dir" >/dev/null
  run warm_read "$t" seq_read "$dir"
  run rand_read "$t" rand_read "$dir"
  run stat_cached "$t" stat_cached "$dir"
  run small_files "$t" small_files "$dir"
  run ls_l "$t" ls_l "$dir"
done
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$AGENT_PID/status")

printf '%-28s %14s %14s %8s %8s\n' workload pfsagentd passthrough ratio target
row() {  # name unit target
  local a=${R[$1.agent]} p=${R[$1.pt]}
  printf '%-28s %14.1f %14.1f %8.2f %8s\n' "$1 ($2)" "$a" "$p" "$(echo "$a / $p" | bc -l)" "$3"
}
row seq_write MB/s ">=0.5"
row cold_read MB/s ">=0.5"
row warm_read MB/s ">=0.7"
row rand_read reads/s "-"
row stat_cached stats/s ">=0.8"
row small_files ops/s "-"
row ls_l entries/s "-"
echo "server RPCs and object requests per run of each agent workload (emulator counters):"
for n in seq_write cold_read warm_read rand_read stat_cached small_files ls_l; do
  printf '  %-12s %s\n' "$n" "${RPCS[$n]:-}"
done
BUDGET_KB=$(( LINE_COUNT * 1024 + 64 * 1024 ))
echo "pfsagentd peak RSS (VmHWM, last agent process): ${HWM} kB; budget (read cache $LINE_COUNT MiB + 64 MiB): ${BUDGET_KB} kB"
stop_agent

# Metadata workloads with server latency (tests/bench/meta_bench.sh; META=0 skips them). Its own
# N is META_N (default 1000), not this script's NFILES.
if [[ ${META:-1} != 0 ]]; then
  echo
  META_N=${META_N:-1000} RUNS=$RUNS AGENT=$AGENT tests/bench/meta_bench.sh "$BUILD"
fi
