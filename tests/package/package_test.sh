#!/usr/bin/env bash
# Package test (ctest label "package"): the Debian package made by CPack from the built tree is
# installed with apt into a clean Debian 12 root (mmdebstrap --variant=minbase, cached as a
# tarball), a volume of the pfs-emulator (running outside the chroot on 127.0.0.1) is mounted
# inside it through `mount -a` and an fstab line, written, unmounted, mounted again and read
# back; `systemd-analyze verify` checks the installed units against that root.
#
# Usage: package_test.sh BUILD_DIR SOURCE_DIR
# Cache: /var/cache/pfsagent-test (or $TMPDIR/pfsagent-test-cache) holds the bootstrapped root
# (bookworm-minbase.tar, rebuilt when older than 7 days) and apt's downloaded .debs. Cold, the
# bootstrap downloads ~100 MB from the Debian mirror; warm runs take seconds.
# Every process started here is stopped by PID, every mount undone, the work dir removed.
set -euo pipefail
BUILD=$(realpath "$1")
SRC=$(realpath "$2")
T0=$SECONDS
log() { echo "[package_test +$((SECONDS - T0))s] $*"; }
fail() { echo "[package_test] FAIL: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "needs root (chroot, mount)"
[[ -c /dev/fuse ]] || fail "/dev/fuse missing"
for f in agent/pfsagentd plugins/pfsagentd-swift-auth-plugin ctl/pfsagentctl \
         tests/emulator/pfs-emulator CPackConfig.cmake; do
  [[ -e $BUILD/$f ]] || fail "$BUILD/$f is not built"
done
command -v mmdebstrap >/dev/null || fail "mmdebstrap is not installed (scripts/install-deps.sh)"

if [[ -d /var/cache && -w /var/cache ]]; then CACHE=/var/cache/pfsagent-test
else CACHE=${TMPDIR:-/tmp}/pfsagent-test-cache; fi
mkdir -p "$CACHE/archives/partial"
WORK=$(mktemp -d /tmp/pfs_pkgtest.XXXXXX)
ROOT=$WORK/root
MOUNTS=()
EMU_PID=""
AGENT_PID=""

stop_pid() {  # pid, seconds
  local pid=$1 t=$(( $2 * 10 ))
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && (( t-- > 0 )); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  set +e
  if mountpoint -q "$ROOT/mnt/vol" 2>/dev/null; then umount "$ROOT/mnt/vol" || umount -l "$ROOT/mnt/vol"; fi
  [[ -n $AGENT_PID ]] && stop_pid "$AGENT_PID" 30
  if [[ -n $EMU_PID ]]; then stop_pid "$EMU_PID" 10; wait "$EMU_PID" 2>/dev/null; fi
  for (( i = ${#MOUNTS[@]} - 1; i >= 0; i-- )); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"
  done
  if grep -q " $WORK/" /proc/mounts; then
    echo "[package_test] leaving $WORK: something is still mounted under it" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# 1. The package, from the already-built tree.
cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/pkg" >"$WORK/cpack.log" 2>&1 ||
  { cat "$WORK/cpack.log"; fail "cpack failed"; }
DEB=$(ls "$WORK"/pkg/pfsagent_*.deb)
log "built $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"
depends=$(dpkg-deb -f "$DEB" Depends)
log "Depends: $depends"
for d in fuse3 procps libfuse3-3 libcurl4 libssl3; do
  grep -Eq "(^|, )$d( |,|\$)" <<<"$depends" || fail "Depends lacks $d"
done
dpkg-deb -c "$DEB" >"$WORK/contents.txt"
for f in ./usr/bin/pfsagentd ./usr/bin/pfsagentd-swift-auth-plugin ./usr/bin/pfsagentctl \
         ./usr/sbin/mount.fuse.pfsagentd ./lib/systemd/system/pfsagentd@.service \
         ./lib/systemd/system/pfsagentd.target ./etc/pfsagentd/pfsagent.conf.sample \
         ./usr/share/man/man8/pfsagentd.8.gz ./usr/share/man/man5/pfsagent.conf.5.gz \
         ./usr/share/man/man8/pfsagentctl.8.gz ./usr/share/doc/pfsagent/copyright; do
  grep -q " $f\$" "$WORK/contents.txt" || fail "the package lacks $f"
done

# 2. A clean Debian 12 root (cached tarball; one bootstrap at a time).
exec 9>"$CACHE/lock"
flock -w 1200 9 || fail "could not lock $CACHE/lock"
TARBALL=$CACHE/bookworm-minbase.tar
if [[ ! -s $TARBALL ]] || [[ -n $(find "$TARBALL" -mtime +7 2>/dev/null) ]]; then
  log "bootstrapping Debian 12 (mmdebstrap, cold cache: downloads from the mirror)"
  timeout 1000 mmdebstrap --quiet --variant=minbase --mode=root --skip=cleanup/apt/lists \
    --format=tar bookworm "$TARBALL.tmp" >"$WORK/mmdebstrap.log" 2>&1 ||
    { tail -20 "$WORK/mmdebstrap.log"; rm -f "$TARBALL.tmp"; fail "mmdebstrap failed"; }
  mv "$TARBALL.tmp" "$TARBALL"
fi
# The root lives on a tmpfs: extraction and dpkg's many fsyncs cost nothing, and removing it is
# one umount (an rm -rf of ~400 MB took 30 s on a busy 2-core machine).
mkdir -p "$ROOT"
mount -t tmpfs -o size=3g,mode=0755 pfs-pkgtest-root "$ROOT"; MOUNTS+=("$ROOT")
tar -C "$ROOT" -xf "$TARBALL"
log "root extracted"
mount -t proc proc "$ROOT/proc"; MOUNTS+=("$ROOT/proc")
mount --bind /dev "$ROOT/dev"; MOUNTS+=("$ROOT/dev")
mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run"; MOUNTS+=("$ROOT/run")
mount --bind "$CACHE/archives" "$ROOT/var/cache/apt/archives"; MOUNTS+=("$ROOT/var/cache/apt/archives")
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp "$DEB" "$ROOT/tmp/"
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

# 3. apt install ./pfsagent_*.deb (dependencies from the mirror; lists refreshed if stale).
# systemd comes along (recommended; every Debian 12 host has it; systemd-analyze verify needs
# its units in the root); other recommends are left out to keep the root small.
install_pkg() {
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "/tmp/$(basename "$DEB")" systemd >"$WORK/apt.log" 2>&1
}
if ! install_pkg; then
  log "apt-get install failed; refreshing the package lists and retrying"
  in_root apt-get update -q >>"$WORK/apt.log" 2>&1 || true
  install_pkg || { tail -30 "$WORK/apt.log"; fail "apt-get install of the package failed"; }
fi
log "installed: $(grep -c '^Setting up' "$WORK/apt.log") packages set up"
in_root dpkg -s fuse3 >/dev/null || fail "fuse3 was not installed as a dependency"
conffiles=$(in_root dpkg-query -W -f='${Conffiles}' pfsagent)
[[ $conffiles == *"/etc/pfsagentd/pfsagent.conf.sample"* ]] || fail "sample config is not a conffile"
[[ $conffiles == *"/etc/logrotate.d/pfsagentd"* ]] || fail "logrotate file is not a conffile"
in_root pfsagentd --version | grep -q '^pfsagentd ' || fail "pfsagentd --version"
in_root pfsagentctl --version | grep -q '^pfsagentctl ' || fail "pfsagentctl --version"

# 4. The installed units pass systemd-analyze verify (in the root: ExecStart, paths).
mkdir -p "$ROOT/etc/pfsagentd"
if ! out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no --root="$ROOT" \
             pfsagentd@vol.service pfsagentd.target 2>&1) || [[ -n $out ]]; then
  echo "$out"; fail "systemd-analyze verify reported problems"
fi
log "systemd-analyze verify: clean"

# 5. The emulator on 127.0.0.1, outside the root.
"$BUILD/tests/emulator/pfs-emulator" --listen 127.0.0.1:0 --rpc-listen 127.0.0.1:0 \
  --data-dir "$WORK/emu-data" >"$WORK/emulator.json" 2>"$WORK/emulator.log" &
EMU_PID=$!
for _ in $(seq 1 100); do [[ -s $WORK/emulator.json ]] && break; sleep 0.1; done
[[ -s $WORK/emulator.json ]] || { cat "$WORK/emulator.log"; fail "the emulator did not start"; }
HTTP_PORT=$(sed -n 's/.*"http_port":\([0-9]*\).*/\1/p' "$WORK/emulator.json")
STATUS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# 6. A volume configured from the installed sample, mounted by `mount -a` from fstab.
cp "$ROOT/etc/pfsagentd/pfsagent.conf.sample" "$ROOT/etc/pfsagentd/vol.conf"
cat >>"$ROOT/etc/pfsagentd/vol.conf" <<CONF
# package test: later keys replace the sample's values
FUSEVolumeName: vol
FUSEMountPointPath: /mnt/vol
PlugInPath: /usr/bin/pfsagentd-swift-auth-plugin
PlugInEnvValue: {"AuthURL":"http://127.0.0.1:$HTTP_PORT/auth/v1.0"\u002C"AuthUser":"test:tester"\u002C"AuthKey":"testing"\u002C"Account":"AUTH_test"}
SwiftTimeout: 20s
SwiftRetryDelay: 50ms
HTTPServerIPAddr: 127.0.0.1
HTTPServerTCPPort: $STATUS_PORT
LogFilePath: /var/log/pfsagentd-vol.log
LogToConsole: false
CONF
chmod 600 "$ROOT/etc/pfsagentd/vol.conf"
in_root pfsagentd --check-config /etc/pfsagentd/vol.conf >"$WORK/check.json" 2>"$WORK/check.err" ||
  { cat "$WORK/check.err"; fail "--check-config rejected the sample-based config"; }
grep -q '"SwiftTimeout": "20s"' "$WORK/check.json" || fail "--check-config does not print 20s"
grep -q 'testing' "$WORK/check.json" && fail "--check-config printed the AuthKey"
echo "/etc/pfsagentd/vol.conf /mnt/vol fuse.pfsagentd _netdev,nofail 0 0" >"$ROOT/etc/fstab"
mkdir -p "$ROOT/mnt/vol"

mount_all() {
  timeout 90 chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin mount -a ||
    { cat "$ROOT/run/pfsagentd/vol.console" "$ROOT/var/log/pfsagentd-vol.log" 2>/dev/null | tail -20
      fail "mount -a failed"; }
  [[ $(findmnt -n -o FSTYPE --mountpoint "$ROOT/mnt/vol") == fuse* ]] || fail "/mnt/vol is not a FUSE mount"
  AGENT_PID=$(cat "$ROOT/run/pfsagentd/vol.pid")
  kill -0 "$AGENT_PID" || fail "no agent process"
}
unmount_vol() {
  in_root umount /mnt/vol || fail "umount /mnt/vol failed"
  local t=300
  while kill -0 "$AGENT_PID" 2>/dev/null && (( t-- > 0 )); do sleep 0.1; done
  kill -0 "$AGENT_PID" 2>/dev/null && fail "the agent did not exit within 30 s of umount"
  AGENT_PID=""
  grep -q 'stopped (exit 0)' "$ROOT/var/log/pfsagentd-vol.log" || fail "the agent did not exit 0"
}

mount_all
log "mounted by mount -a (agent pid $AGENT_PID)"
head -c $((3 * 1024 * 1024 + 12345)) /dev/urandom >"$WORK/data.bin"
cp "$WORK/data.bin" "$ROOT/mnt/vol/data.bin"
in_root mkdir /mnt/vol/dir
echo "written inside the chroot" | in_root tee /mnt/vol/dir/note.txt >/dev/null
in_root pfsagentctl -c vol status >"$WORK/status.txt" || { cat "$WORK/status.txt"; fail "pfsagentctl status"; }
grep -q '^health        OK' "$WORK/status.txt" || fail "pfsagentctl status is not OK"
in_root pfsagentctl -c vol flush >"$WORK/flush.txt" || fail "pfsagentctl flush"
cmp "$WORK/data.bin" "$ROOT/mnt/vol/data.bin" || fail "read-back differs before unmount"
unmount_vol
log "unmounted; mounting again to read back from the emulator"
mount_all
cmp "$WORK/data.bin" "$ROOT/mnt/vol/data.bin" || fail "read-back differs after a remount"
[[ $(cat "$ROOT/mnt/vol/dir/note.txt") == "written inside the chroot" ]] || fail "note.txt differs"
unmount_vol
log "PASS: apt install, mount -a, write, read, unmount, remount, read back, units verified"
