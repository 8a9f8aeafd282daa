#!/bin/sh
# mount.fuse.pfsagentd: mount(8) helper that starts a pfsagentd for one volume.
#
#   mount -t fuse.pfsagentd /etc/pfsagentd/vol1.conf /mnt/vol1
#   /etc/fstab:  /etc/pfsagentd/vol1.conf  /mnt/vol1  fuse.pfsagentd  _netdev,nofail  0 0
#
# mount(8) calls: mount.fuse.pfsagentd <config file> <mount point> [-o opts] [-n] [-s] [-f] [-v]
# The agent is started detached with the mount point as a command-line override
# (Agent.FUSEMountPointPath=<mount point>); its early console output goes to
# $PFSAGENTD_RUNDIR/<name>.console and its PID to $PFSAGENTD_RUNDIR/<name>.pid (default
# /run/pfsagentd, <name> = config file base name). This helper returns 0 once the mount is up, or
# non-zero (32, "mount failure") when the agent exits or the mount does not appear in time.
# Options in -o: Agent.<Key>=<value> (passed on as overrides), pfsagentd=<path> (binary),
# timeout=<seconds> (default 60); the generic ones (rw, defaults, noauto, nofail, _netdev,
# user, users, auto, x-systemd.*, ...) are ignored. Unmount with `umount <mount point>`: the agent
# notices and exits after flushing (see docs/operations.md).
set -eu

prog=mount.fuse.pfsagentd
die() { echo "$prog: $*" >&2; exit 32; }

[ $# -ge 2 ] || { echo "usage: $prog <config file> <mount point> [-o options]" >&2; exit 1; }
conf=$1
mnt=$2
shift 2
opts=""
while [ $# -gt 0 ]; do
  case $1 in
    -o) [ $# -ge 2 ] || die "-o needs an argument"; opts="${opts:+$opts,}$2"; shift 2 ;;
    -o*) opts="${opts:+$opts,}${1#-o}"; shift ;;
    -n|-s|-f|-v|-r|-w) shift ;;
    *) die "unexpected argument '$1'" ;;
  esac
done

agent=${PFSAGENTD:-}
timeout=60
set --  # collect overrides as positional parameters
oldifs=$IFS
IFS=,
for o in $opts; do
  case $o in
    Agent.*=*) set -- "$@" "$o" ;;
    pfsagentd=*) agent=${o#pfsagentd=} ;;
    timeout=*) timeout=${o#timeout=} ;;
    *) ;;  # generic mount options: nothing for the agent
  esac
done
IFS=$oldifs

[ -r "$conf" ] || die "cannot read config file '$conf'"
[ -d "$mnt" ] || die "mount point '$mnt' is not a directory"
conf=$(realpath "$conf")
mnt=$(realpath "$mnt")
case $timeout in ''|*[!0-9]*) die "timeout=$timeout is not a number of seconds" ;; esac

if [ -z "$agent" ]; then
  here=$(dirname "$(realpath "$0")")
  if [ -x "$here/../bin/pfsagentd" ]; then
    agent="$here/../bin/pfsagentd"
  else
    agent=$(command -v pfsagentd) || die "pfsagentd not found (set -o pfsagentd=<path>)"
  fi
fi
[ -x "$agent" ] || die "'$agent' is not executable"

if mountpoint -q "$mnt"; then die "'$mnt' is already a mount point"; fi

# Early console output (before the agent's log file is open) is kept for diagnostics.
rundir=${PFSAGENTD_RUNDIR:-/run/pfsagentd}
mkdir -p "$rundir" 2>/dev/null || rundir=${TMPDIR:-/tmp}
name=$(basename "$conf" .conf)
console="$rundir/$name.console"
setsid "$agent" "$conf" "Agent.FUSEMountPointPath=$mnt" "$@" </dev/null >"$console" 2>&1 &
pid=$!
echo "$pid" >"$rundir/$name.pid" 2>/dev/null || true

ticks=$((timeout * 10))
while [ $ticks -gt 0 ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" && rc=0 || rc=$?
    cat "$console" >&2 || true
    die "pfsagentd exited with status $rc before mounting $mnt"
  fi
  fstype=$(findmnt -n -o FSTYPE --mountpoint "$mnt" 2>/dev/null || true)
  case $fstype in
    fuse*) exit 0 ;;
  esac
  sleep 0.1
  ticks=$((ticks - 1))
done
kill -TERM "$pid" 2>/dev/null || true
cat "$console" >&2 || true
die "timed out after ${timeout}s waiting for $mnt to be mounted (agent pid $pid stopped)"
