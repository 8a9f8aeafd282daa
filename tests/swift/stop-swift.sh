#!/bin/bash
# Stops what start-swift.sh started, by recorded PID only (TERM, then KILL after 10 s).
# Usage: stop-swift.sh <state-dir> [component...]   (default: all components)
# With --purge as the last argument the state directory is removed after stopping everything.
set -uo pipefail
DIR=${1:?usage: stop-swift.sh <state-dir> [component...] [--purge]}
shift
PURGE=0
ARGS=()
for a in "$@"; do if [ "$a" = --purge ]; then PURGE=1; else ARGS+=("$a"); fi; done
[ ${#ARGS[@]} -eq 0 ] && ARGS=(proxy object container account memcached)
for c in "${ARGS[@]}"; do
  pidfile="$DIR/pids/$c.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
done
if [ $PURGE -eq 1 ] && [ ${#ARGS[@]} -ge 5 ]; then rm -rf "$DIR"; fi
exit 0
