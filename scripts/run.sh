#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, starts the bundled ProxyFS
# emulator and pfsagentd, and leaves the volume mounted at a directory it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
if [[ ! -x build/tests/emulator/pfs-emulator || ! -x build/agent/pfsagentd ]]; then
  echo "run: not there yet: the bundled emulator (build/tests/emulator/pfs-emulator) and/or the" >&2
  echo "     mounting agent (build/agent/pfsagentd) are not built by this version." >&2
  exit 1
fi
exec ./scripts/start-volume.sh
