#!/usr/bin/env bash
# Starts the bundled ProxyFS emulator and pfsagentd on a fresh temporary mount directory, waits
# until the volume is mounted and serving, prints the mount directory and the exact command that
# stops both, and leaves them running.
#
# Usage: scripts/start-volume.sh [BUILD_DIR]        (default: build)
# Environment: PFS_DATA_DIR   keep the emulator's data there (default: a temp dir, kept)
#              PFS_STATUS_PORT status server port (default 0 = any free port)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
EMU=$BUILD/tests/emulator/pfs-emulator
AGENT=$BUILD/agent/pfsagentd
PLUGIN_DIR=$BUILD/plugins
for f in "$EMU" "$AGENT" "$PLUGIN_DIR/pfsagentd-swift-auth-plugin"; do
  [[ -x $f ]] || { echo "start-volume: $f is not built" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/pfsvolume.XXXXXX)
MNT=$WORK/mnt
DATA=${PFS_DATA_DIR:-$WORK/data}
mkdir -p "$MNT" "$DATA"

# 1. Emulator: one JSON line on stdout once ready.
"$EMU" --listen 127.0.0.1:0 --rpc-listen 127.0.0.1:0 --data-dir "$DATA" \
  >"$WORK/emulator.json" 2>"$WORK/emulator.log" &
EMU_PID=$!
for _ in $(seq 1 100); do
  [[ -s $WORK/emulator.json ]] && break
  kill -0 "$EMU_PID" 2>/dev/null || { echo "start-volume: emulator died:" >&2; cat "$WORK/emulator.log" >&2; exit 1; }
  sleep 0.1
done
[[ -s $WORK/emulator.json ]] || { echo "start-volume: emulator did not start" >&2; kill "$EMU_PID"; exit 1; }
HTTP_PORT=$(sed -n 's/.*"http_port":\([0-9]*\).*/\1/p' "$WORK/emulator.json")

# 2. Agent configuration.
cat >"$WORK/volume.conf" <<EOF
[Agent]
FUSEVolumeName: PFSVolume
FUSEMountPointPath: $MNT
PlugInPath: $(cd "$PLUGIN_DIR" && pwd)/pfsagentd-swift-auth-plugin
PlugInEnvName: SwiftAuthBlob
PlugInEnvValue: {"AuthURL":"http://127.0.0.1:$HTTP_PORT/auth/v1.0"\u002C"AuthUser":"test:tester"\u002C"AuthKey":"testing"\u002C"Account":"AUTH_test"}
SwiftTimeout: 60s
SwiftRetryDelay: 100ms
LogFilePath: $WORK/pfsagentd.log
LogToConsole: false
HTTPServerIPAddr: 127.0.0.1
HTTPServerTCPPort: ${PFS_STATUS_PORT:-0}
EntryDuration: 1s
AttrDuration: 1s
FUSEMaxWrite: 1048576
MaxFlushTime: 1s
XAttrEnabled: true
EOF

# 3. Agent.
"$AGENT" "$WORK/volume.conf" >"$WORK/pfsagentd.out" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 150); do
  if grep -qs " $MNT fuse.PFSAgent " /proc/mounts; then break; fi
  kill -0 "$AGENT_PID" 2>/dev/null || {
    echo "start-volume: pfsagentd exited:" >&2; cat "$WORK/pfsagentd.out" "$WORK/pfsagentd.log" >&2 2>/dev/null
    kill "$EMU_PID"; exit 1; }
  sleep 0.1
done
if ! grep -qs " $MNT fuse.PFSAgent " /proc/mounts; then
  echo "start-volume: the volume did not mount" >&2; kill "$AGENT_PID" "$EMU_PID"; exit 1
fi

# The status server's URL, as the agent logged it (the port may have been picked by the kernel).
STATUS_URL=""
for _ in $(seq 1 50); do
  STATUS_URL=$(grep -o 'status server http://[^ ]*/' "$WORK/pfsagentd.log" 2>/dev/null | tail -1 |
               sed 's/^status server //; s#/$##')
  [[ -n $STATUS_URL ]] && break
  sleep 0.1
done

STOP="kill -TERM $AGENT_PID; while kill -0 $AGENT_PID 2>/dev/null; do sleep 0.2; done; kill -TERM $EMU_PID"
echo "$STOP" >"$WORK/stop.sh"
chmod +x "$WORK/stop.sh"
echo "Volume mounted at: $MNT"
if [[ -n $STATUS_URL ]]; then
  echo "Health:            $STATUS_URL/health"
  echo "Metrics:           $STATUS_URL/metrics"
  CTL=$BUILD/ctl/pfsagentctl
  if [[ -x $CTL ]]; then echo "Control:           $CTL --url $STATUS_URL status   (or top, flush, ...)"; fi
else
  echo "Status server:     (URL not found in $WORK/pfsagentd.log)"
fi
echo "Logs and data:     $WORK"
echo "Stop with:         $STOP"
echo "            (or:   $WORK/stop.sh)"
