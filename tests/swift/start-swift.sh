#!/bin/bash
# Brings up a private single-node OpenStack Swift (Debian packages) on 127.0.0.1 for the real-Swift
# test tier. Facts behind every choice: /work/shared/notes/real-swift.md.
#
# Usage: start-swift.sh <state-dir> [port-base] [component...]
#   state-dir   created if needed (configs, rings, storage, logs, PIDs); must be on ext4 (xattrs)
#   port-base   proxy port (default 18080); container/account/object/memcached use base+1..+4
#   component   any of memcached proxy account container object (default: all); components
#               already running (PID file + live process) are left alone, so this also restarts
#               a component stopped with stop-swift.sh.
# Writes <state-dir>/env with PFS_SWIFT_AUTH_URL, PFS_SWIFT_STORAGE_URL, PFS_SWIFT_USER, ...
# Tempauth users: test:tester/testing (.admin). Tokens live `token_life` = 4 s
# (PFS_SWIFT_TOKEN_LIFE overrides) so renewal is really exercised.
# Exit status 0 when the proxy answers an authenticated request, 1 otherwise (logs in state-dir).
set -euo pipefail

DIR=${1:?usage: start-swift.sh <state-dir> [port-base] [component...]}
BASE=${2:-18080}
shift $(( $# >= 2 ? 2 : 1 ))
COMPONENTS=("$@")
[ ${#COMPONENTS[@]} -eq 0 ] && COMPONENTS=(memcached account container object proxy)
PY=/usr/bin/python3   # Debian's python: Swift's modules (xattr, eventlet) live there only
TOKEN_LIFE=${PFS_SWIFT_TOKEN_LIFE:-4}

PROXY=$BASE; CONT=$((BASE + 1)); ACCT=$((BASE + 2)); OBJ=$((BASE + 3)); MC=$((BASE + 4))
mkdir -p "$DIR"/{etc,srv/d1,log,pids,run}
DIR=$(cd "$DIR" && pwd)

write_configs() {
  local common="[DEFAULT]
bind_ip = 127.0.0.1
swift_dir = $DIR/etc
devices = $DIR/srv
mount_check = false
workers = 0
log_level = INFO
"
  cat > "$DIR/etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $PROXY
swift_dir = $DIR/etc
workers = 0
log_level = INFO

[pipeline:main]
pipeline = catch_errors proxy-logging cache tempauth proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
error_suppression_interval = 1
conn_timeout = 1
node_timeout = 5

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
token_life = $TOKEN_LIFE

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MC

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:proxy-logging]
use = egg:swift#proxy_logging
CONF
  for kind in account container object; do
    local port
    case $kind in account) port=$ACCT ;; container) port=$CONT ;; object) port=$OBJ ;; esac
    cat > "$DIR/etc/$kind-server.conf" <<CONF
${common}bind_port = $port

[pipeline:main]
pipeline = $kind-server

[app:$kind-server]
use = egg:swift#$kind
CONF
  done
}

build_rings() {
  for kind in account container object; do
    local port
    case $kind in account) port=$ACCT ;; container) port=$CONT ;; object) port=$OBJ ;; esac
    if [ ! -f "$DIR/etc/$kind.ring.gz" ]; then
      swift-ring-builder "$DIR/etc/$kind.builder" create 10 1 1 >/dev/null
      swift-ring-builder "$DIR/etc/$kind.builder" add "r1z1-127.0.0.1:$port/d1" 100 >/dev/null
      swift-ring-builder "$DIR/etc/$kind.builder" rebalance >/dev/null || true
    fi
  done
}

running() {
  local pidfile="$DIR/pids/$1.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start_one() {
  local c=$1
  running "$c" && return 0
  case $c in
    memcached)
      setsid memcached -l 127.0.0.1 -p "$MC" -U 0 -m 64 -u "$(id -un)" \
        >"$DIR/log/memcached.log" 2>&1 </dev/null &
      ;;
    proxy | account | container | object)
      setsid "$PY" "/usr/bin/swift-$c-server" "$DIR/etc/$c-server.conf" -v \
        >>"$DIR/log/$c.log" 2>&1 </dev/null &
      ;;
    *) echo "unknown component $c" >&2; exit 2 ;;
  esac
  echo $! > "$DIR/pids/$c.pid"
}

wait_port() {
  local port=$1 deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then echo "port $port not listening after 60 s" >&2; return 1; fi
    sleep 0.2
  done
}

[ -f "$DIR/etc/proxy-server.conf" ] || write_configs
build_rings
for c in "${COMPONENTS[@]}"; do start_one "$c"; done
for c in "${COMPONENTS[@]}"; do
  case $c in
    memcached) wait_port "$MC" ;; proxy) wait_port "$PROXY" ;; account) wait_port "$ACCT" ;;
    container) wait_port "$CONT" ;; object) wait_port "$OBJ" ;;
  esac
done

cat > "$DIR/env" <<ENV
PFS_SWIFT_AUTH_URL=http://127.0.0.1:$PROXY/auth/v1.0
PFS_SWIFT_STORAGE_URL=http://127.0.0.1:$PROXY/v1/AUTH_test
PFS_SWIFT_USER=test:tester
PFS_SWIFT_KEY=testing
PFS_SWIFT_ACCOUNT=AUTH_test
PFS_SWIFT_TOKEN_LIFE=$TOKEN_LIFE
ENV

# Ready = an authenticated account HEAD works end to end (proxy + memcached + account server).
deadline=$((SECONDS + 60))
while :; do
  tok=$(curl -s -m 5 -o /dev/null -D - -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' \
        "http://127.0.0.1:$PROXY/auth/v1.0" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}')
  if [ -n "$tok" ]; then
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X PUT -H "X-Auth-Token: $tok" \
           "http://127.0.0.1:$PROXY/v1/AUTH_test/pfs-ready") || code=000
    case $code in 201 | 202) break ;; esac
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "swift not ready after 60 s; logs in $DIR/log" >&2
    exit 1
  fi
  sleep 0.3
done
echo "swift ready on 127.0.0.1:$PROXY (state $DIR)"
