#!/usr/bin/env bash
# Metadata benchmark (not a ctest): round trips made visible. Runs the metadata workloads on a
# mounted pfsagentd with pfs-emulator in a latency profile (default `real`: the figures measured
# on a real ProxyFS + Swift, docs/emulator.md), once per agent config, plus libfuse's
# passthrough_ll of a local directory as the baseline. Prints a markdown table (medians of RUNS):
# wall time, ratio to passthrough, server RPCs per op and round trips on the critical path per op,
# then the RPCs per op by method. How each figure is computed: docs/data-path.md, "Metadata
# benchmark".
#
# Usage: tests/bench/meta_bench.sh [BUILD_DIR]     (default: build; needs root and /dev/fuse)
# Env:   META_N or NFILES (files per workload, default 1000)   RUNS (default 3)
#        LATENCY_PROFILE (real|none, default real)   EMU_ARGS (extra pfs-emulator flags, e.g.
#        "--rpc-latency RpcGetStat=5ms")   META_CONFIGS (default "original recommended"; a name may
#        repeat, e.g. "original original" to see the noise)
#        AGENT (pfsagentd binary to measure, default BUILD_DIR/agent/pfsagentd)
#        AGENT_CONF_EXTRA (extra "Key: value" lines for every config's [Agent] section)
# Workloads, in this order, each on N names in a fresh directory per run:
#   create (open O_CREAT + close), stat (by name), ls_l (`ls -l` of the N entries),
#   rename, unlink, mkdir, rmdir (of those directories), write (create + write 4 KiB + close).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
N=${META_N:-${NFILES:-1000}}
RUNS=${RUNS:-3}
PROFILE=${LATENCY_PROFILE:-real}
CONFIGS=${META_CONFIGS:-original recommended}
EMU=$BUILD/tests/emulator/pfs-emulator
AGENT=${AGENT:-$BUILD/agent/pfsagentd}
PLUGIN=$(cd "$BUILD/plugins" 2>/dev/null && pwd)/pfsagentd-swift-auth-plugin
[[ -x $EMU && -x $AGENT && -x $PLUGIN ]] || {
  echo "meta_bench: build pfs-emulator, pfsagentd and pfsagentd-swift-auth-plugin first" >&2
  exit 1
}
[[ $N =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ ]] || {
  echo "meta_bench: META_N/NFILES and RUNS must be positive integers" >&2
  exit 1
}

W=$(mktemp -d /tmp/pfsmeta.XXXXXX)
PIDS=()
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

# The workload driver: python3 DRIVER MOUNTDIR TAG N RUNS CONTROL_URL|- OUT.json (directories
# MOUNTDIR/TAG-<run>, so every config works in its own directories of the one volume).
cat >"$W/driver.py" <<'PY'
import json, os, statistics, subprocess, sys, time, urllib.request

mnt, tag, n, runs, ctl, out = (sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                               sys.argv[5], sys.argv[6])
OPS = ["create", "stat", "ls_l", "rename", "unlink", "mkdir", "rmdir", "write"]

def control(verb):
    req = urllib.request.Request(ctl + "/" + verb, data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)

def activity(c):
    return (c["rpc_executions"], c["object_gets"], c["object_puts"], c["object_heads"],
            c["object_deletes"], c["proxyfs_requests"])

def settle():
    # Waits until the server saw nothing for 0.3 s (at most 5 s): requests the agent sends after
    # the last syscall returned (deferred flushes, lease releases) belong to the workload.
    c = control("counters"); last = activity(c); quiet = 0; t0 = time.time()
    while quiet < 3 and time.time() - t0 < 5:
        time.sleep(0.1)
        c = control("counters"); a = activity(c)
        quiet = quiet + 1 if a == last else 0
        last = a
    return c

def workload(op):
    # Relative names from inside the directory (the cwd), as `touch`, `ls`, `rm` in a shell use
    # them: the counts are those of the operation, not of resolving a longer path.
    data = b"x" * 4096
    if op == "create":
        for i in range(n): os.close(os.open(f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    elif op == "stat":
        for i in range(n): os.stat(f"f{i}")
    elif op == "ls_l":
        subprocess.run(["ls", "-l"], stdout=subprocess.DEVNULL, check=True)
    elif op == "rename":
        for i in range(n): os.rename(f"f{i}", f"g{i}")
    elif op == "unlink":
        for i in range(n): os.unlink(f"g{i}")
    elif op == "mkdir":
        for i in range(n): os.mkdir(f"d{i}")
    elif op == "rmdir":
        for i in range(n): os.rmdir(f"d{i}")
    elif op == "write":
        for i in range(n):
            fd = os.open(f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, data)
            os.close(fd)

res = {op: [] for op in OPS}
for r in range(runs):
    b = f"{mnt}/{tag}-{r}"
    for d in ("", "/c", "/m", "/w"): os.mkdir(b + d)
    for op in OPS:
        os.chdir(b + {"mkdir": "/m", "rmdir": "/m", "write": "/w"}.get(op, "/c"))  # not counted
        if ctl != "-":
            settle()
            control("reset_counters")
        t = time.time()
        workload(op)
        wall = time.time() - t
        one = {"wall": wall}
        if ctl != "-":
            c = settle()
            one["rpcs"] = {k: v for k, v in c["rpcs"].items() if v}
            one["rpc_total"] = c["rpc_executions"]
            one["objects"] = {k: c["object_" + k] for k in ("gets", "puts", "heads", "deletes")}
            one["critical_path"] = c["critical_path"]
            one["max_in_flight"] = c["max_in_flight"]
        res[op].append(one)
        os.chdir("/")
json.dump({"n": n, "runs": runs, "results": res}, open(out, "w"))
PY

# --- passthrough_ll (baseline) ---
SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
if [[ ! -f $SRC && -f $SRC.gz ]]; then gunzip -c "$SRC.gz" >"$W/passthrough_ll.c"; SRC=$W/passthrough_ll.c; fi
[[ -f $SRC ]] || { echo "meta_bench: $SRC not found (libfuse3-dev examples)" >&2; exit 1; }
gcc -O2 -I/usr/share/doc/libfuse3-dev/examples -o "$W/passthrough_ll" "$SRC" \
  $(pkg-config fuse3 --cflags --libs)
mkdir -p "$W/local" "$W/pt" "$W/agentmnt"
"$W/passthrough_ll" -f -o source="$W/local" "$W/pt" 2>"$W/pt.log" &
PIDS+=("$!"); MOUNTS+=("$W/pt")
for _ in $(seq 50); do grep -qs " $W/pt fuse" /proc/mounts && break; sleep 0.1; done
grep -qs " $W/pt fuse" /proc/mounts || { echo "meta_bench: passthrough_ll did not mount" >&2; exit 1; }

# --- emulator in the latency profile ---
# shellcheck disable=SC2086
"$EMU" --listen 127.0.0.1:0 --rpc-listen 127.0.0.1:0 --log-level warn \
  --latency-profile "$PROFILE" ${EMU_ARGS:-} >"$W/emu.json" 2>"$W/emu.log" &
EMU_PID=$!; PIDS+=("$EMU_PID")
for _ in $(seq 100); do [[ -s $W/emu.json ]] && break; sleep 0.1; done
PORT=$(sed -n 's/.*"http_port":\([0-9]*\).*/\1/p' "$W/emu.json")
[[ -n $PORT ]] || { echo "meta_bench: pfs-emulator did not start" >&2; cat "$W/emu.log" >&2; exit 1; }
CTL=http://127.0.0.1:$PORT/__emulator

config_lines() {  # $1 config name
  case $1 in
    original) printf '%s\n' "EntryDuration: 0s" "AttrDuration: 0s" \
                "ReadDirPlusEnabled: false" "XAttrEnabled: false" ;;
    recommended) printf '%s\n' "EntryDuration: 1s" "AttrDuration: 1s" "ReadDirPlusEnabled: true" ;;
    *) echo "meta_bench: unknown config '$1' (original, recommended)" >&2; exit 1 ;;
  esac
}

AGENT_PID=
start_agent() {  # $1 config name
  cat >"$W/agent.conf" <<EOF
[Agent]
FUSEVolumeName: MetaBench
FUSEMountPointPath: $W/agentmnt
PlugInPath: $PLUGIN
PlugInEnvName: SwiftAuthBlob
PlugInEnvValue: {"AuthURL":"http://127.0.0.1:$PORT/auth/v1.0"\u002C"AuthUser":"test:tester"\u002C"AuthKey":"testing"\u002C"Account":"AUTH_test"}
LogFilePath: $W/agent-$1.log
LogToConsole: false
HTTPServerTCPPort: 0
$(config_lines "$1")
${AGENT_CONF_EXTRA:-}
EOF
  "$AGENT" "$W/agent.conf" >>"$W/agent.out" 2>&1 &
  AGENT_PID=$!; PIDS+=("$AGENT_PID")
  for _ in $(seq 300); do
    grep -qs " $W/agentmnt fuse.PFSAgent " /proc/mounts && return 0
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "meta_bench: agent did not mount ($1)" >&2; cat "$W/agent.out" >&2; exit 1
}
stop_agent() {
  kill -TERM "$AGENT_PID"
  for _ in $(seq 300); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  umount -l "$W/agentmnt" 2>/dev/null || true
}

echo "meta_bench: N=$N RUNS=$RUNS LATENCY_PROFILE=$PROFILE EMU_ARGS='${EMU_ARGS:-}' AGENT=$AGENT" >&2
python3 "$W/driver.py" "$W/pt" pt "$N" "$RUNS" - "$W/res-passthrough.json"
i=0
for cfg in $CONFIGS; do  # a config may repeat (a fresh mount each time), e.g. to see order effects
  config_lines "$cfg" >/dev/null
  start_agent "$cfg"
  MOUNTS+=("$W/agentmnt")
  python3 "$W/driver.py" "$W/agentmnt" "$cfg$i" "$N" "$RUNS" "$CTL" "$W/res-$i.json"
  stop_agent
  i=$((i + 1))
done

python3 - "$W" "$PROFILE" "$AGENT" $CONFIGS <<'PY'
import json, statistics, sys
w, profile, agent, cfgs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
OPS = ["create", "stat", "ls_l", "rename", "unlink", "mkdir", "rmdir", "write"]
LABEL = {"create": "create (O_CREAT+close)", "stat": "stat by name", "ls_l": "`ls -l`",
         "rename": "rename", "unlink": "unlink", "mkdir": "mkdir", "rmdir": "rmdir",
         "write": "write 4 KiB + close"}
pt = json.load(open(f"{w}/res-passthrough.json"))
res = {f"{c}#{i}": json.load(open(f"{w}/res-{i}.json")) for i, c in enumerate(cfgs)}
if len(set(cfgs)) == len(cfgs):
    res = {k.split("#")[0]: v for k, v in res.items()}
cfgs = list(res)
n, runs = pt["n"], pt["runs"]
med = statistics.median
def g(x): return f"{x:.3g}" if x < 1000 else f"{x:.0f}"

print(f"metadata bench: N={n} per op, medians of RUNS={runs}, latency profile {profile}, "
      f"agent {agent}")
print("(s = wall seconds for N ops; x pt = agent time / passthrough_ll time; RPCs/op = server "
      "RPCs per op; obj/op = object requests per op; crit/op = sequential round trips per op)")
print()
hdr = "| op | passthrough s |"; sep = "|---|---|"
for c in cfgs:
    hdr += f" {c} s | x pt | RPCs/op | obj/op | crit/op |"; sep += "---|---|---|---|---|"
print(hdr); print(sep)
for op in OPS:
    ptw = med(r["wall"] for r in pt["results"][op])
    row = f"| {LABEL[op]} | {ptw:.3f} |"
    for c in cfgs:
        rs = res[c]["results"][op]
        aw = med(r["wall"] for r in rs)
        rpc = med(r["rpc_total"] for r in rs) / n
        obj = med(sum(r["objects"].values()) for r in rs) / n
        crit = med(r["critical_path"] for r in rs) / n
        row += f" {aw:.3f} | {g(aw / ptw if ptw > 0 else float('inf'))} | {rpc:.2f} | {obj:.2f} | {crit:.2f} |"
    print(row)
print()
print("| op | config | RPCs and object requests per op, by kind (medians) |")
print("|---|---|---|")
for op in OPS:
    for c in cfgs:
        rs = res[c]["results"][op]
        kinds = sorted({k for r in rs for k in r["rpcs"]})
        parts = [f"{k[3:] if k.startswith('Rpc') else k} {med(r['rpcs'].get(k, 0) for r in rs) / n:.2f}"
                 for k in kinds]
        for k in ("gets", "puts", "heads", "deletes"):
            v = med(r["objects"][k] for r in rs) / n
            if v: parts.append(f"{k[:-1].upper()} {v:.2f}")
        print(f"| {LABEL[op]} | {c} | {', '.join(parts) or '-'} |")
if runs > 1:
    print()
    print("wall s of each run (passthrough; " + "; ".join(cfgs) + "):")
    for op in OPS:
        cols = [" ".join(f"{r['wall']:.3f}" for r in pt["results"][op])]
        cols += [" ".join(f"{r['wall']:.3f}" for r in res[c]["results"][op]) for c in cfgs]
        print(f"  {op:7s} " + " | ".join(cols))
PY
