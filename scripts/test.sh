#!/usr/bin/env bash
# The README's test command (and CI's, through .ci/run). Installs what is missing, then runs
# these phases, each timed:
#   build            plain RelWithDebInfo build of everything (build-test/)
#   plain tests      every test of every ctest label (and unlabelled ones), one ctest run per label
#   asan build/tests one ASan+UBSan tree (build-address/) for every label but PFS_ASAN_SKIP_LABELS
#   tsan build/tests one TSan tree (build-thread/) for every label but PFS_TSAN_SKIP_LABELS
#   fuzz build/runs  clang + libFuzzer (build-fuzz/, -DPFS_FUZZ=ON): every tests/fuzz target runs
#                    PFS_FUZZ_SECONDS on its committed corpus and must find nothing
# A phase that fails to build, finds no tests or has a failing test is FAILED; a phase that is
# not run (PFS_TEST_SANITIZERS=0, PFS_TEST_FUZZ=0) is NOT RUN. Either makes the exit status
# non-zero. The last line is "<N> passed, <M> failed": every ctest result of every phase plus
# one per fuzz target.
#
# Knobs (CI sets none of them):
#   PFS_TEST_PHASES=plain,asan,tsan,fuzz   which phase groups run (default all); the others are
#                           reported NOT RUN, so a partial local run never exits 0
#   PFS_TEST_SANITIZERS=0   same as leaving asan and tsan out of PFS_TEST_PHASES
#   PFS_TEST_FUZZ=0         same as leaving fuzz out
#   PFS_FUZZ_SECONDS=30     run time per fuzz target
#   PFS_TEST_JOBS=<nproc>   build parallelism
# Labels each sanitizer phase does not run, as a ctest regex: new labels are run by default.
#   swift: Debian's real Swift, exercised plain only (Python server; our side is the wire tier's
#          HTTP code, which both sanitizer phases run against in-test servers and the emulator);
#   package: installs a .deb, nothing sanitizer-specific to find.
#   (e2e runs under TSan too: a mounted TSan agent, plug-in and emulator; the 8 e2e tests took
#          about 6 min with PFS_E2E_STEPS=1000 on a loaded 2-core machine.)
# Sanitizer phases run the e2e random-operations test with PFS_E2E_STEPS=1000 (plain: 4000).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${PFS_TEST_JOBS:-$(nproc)}
fuzz_seconds=${PFS_FUZZ_SECONDS:-30}
asan_skip=${PFS_ASAN_SKIP_LABELS:-^(swift|package)$}
tsan_skip=${PFS_TSAN_SKIP_LABELS:-^(swift|package)$}
phases=",${PFS_TEST_PHASES:-plain,asan,tsan,fuzz},"
[[ ${PFS_TEST_SANITIZERS:-1} == 1 ]] || phases=${phases//,asan,/,}
[[ ${PFS_TEST_SANITIZERS:-1} == 1 ]] || phases=${phases//,tsan,/,}
[[ ${PFS_TEST_FUZZ:-1} == 1 ]] || phases=${phases//,fuzz,/,}
want() { [[ $phases == *",$1,"* ]]; }
t0=$(date +%s)
now() { echo $(( $(date +%s) - t0 )); }
say() { echo "== [$(now)s] $* =="; }

# ccache: paths relative to the clone root, so a second clone (or worktree) on this machine
# hits what the first one compiled; per-phase hit counts come from a stats log.
export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=1
# Sanitizer reports fail the test (non-zero exit); the full report stays in the log.
export ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=4"

total_pass=0
total_fail=0
failed_phases=()
summary=()   # lines of the closing table

# record <phase> <status> <seconds> <detail>
# A phase that did not run, or a build/setup phase that failed, also counts as one failure in
# the closing line (test phases add their own ctest counts), so that line can never read
# "<N> passed, 0 failed" for a run that skipped something.
record() {
  summary+=("$(printf '%-22s %-8s %6ss  %s' "$1" "$2" "$3" "$4")")
  [[ $2 == ok ]] && return
  failed_phases+=("$1 ($2)")
  if [[ $2 == "NOT RUN" || ${5:-} == count ]]; then total_fail=$(( total_fail + 1 )); fi
}

configure() {  # configure <dir> <cmake args...>
  local dir=$1; shift
  rm -rf "$dir"
  mkdir -p "$dir"
  cmake -S "$root" -B "$dir" "$@" >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; return 1; }
}

ccache_note() {  # ccache_note <statslog>: "ccache 812 hits / 3 misses"
  local log=$1
  [[ -s $log ]] && command -v ccache >/dev/null || { echo "ccache: no log"; return; }
  ccache --show-log-stats -v 2>/dev/null | awk -F: '
    /^ *Hits:/ && !h {split($2, a, "/"); hits=a[1]+0; h=1}
    /^ *Misses:/ && !m {split($2, a, "/"); miss=a[1]+0; m=1}
    END {printf "ccache %d hits / %d misses", hits, miss}'
}

# build_phase <name> <dir> <targets...>: builds, records, returns the build status.
build_phase() {
  local name=$1 dir=$2; shift 2
  local start=$(date +%s) rc=0
  say "$name: building ${*:-all}"
  export CCACHE_STATSLOG=$root/$dir.ccache.log
  rm -f "$CCACHE_STATSLOG"
  if [[ $# -gt 0 ]]; then
    cmake --build "$dir" -j"$jobs" --target "$@" || rc=$?
  else
    cmake --build "$dir" -j"$jobs" || rc=$?
  fi
  local note; note=$(CCACHE_STATSLOG=$CCACHE_STATSLOG ccache_note "$CCACHE_STATSLOG")
  unset CCACHE_STATSLOG
  if [[ $rc == 0 ]]; then
    record "$name" ok $(( $(date +%s) - start )) "$note"
  else
    record "$name" FAILED $(( $(date +%s) - start )) "build exit $rc; $note" count
  fi
  return $rc
}

# ctest_group <dir> <what> <ctest filter args...>: runs one ctest, adds its counts to
# group_pass/group_fail and its line to group_lines. A run that finds no test is a failure.
ctest_group() {
  local dir=$1 what=$2; shift 2
  local start=$(date +%s) out rc=0
  out=$(ctest --test-dir "$dir" --output-on-failure "$@" 2>&1) || rc=$?
  echo "$out"
  local line pass=0 fail=0
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' <<<"$out" | tail -1)
  if [[ -n $line ]]; then
    local n_fail n_all
    n_fail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    n_all=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
    pass=$(( n_all - n_fail )); fail=$n_fail
  else
    fail=1  # no tests found, or ctest itself failed: counts as one failure
    echo "ctest for $what in $dir reported no results (exit $rc)"
  fi
  if [[ $rc != 0 && $fail == 0 ]]; then fail=1; fi
  # Sanitizer phases: reports of every process (tests and the daemons, emulators and plug-ins
  # they start, whose exit codes a test may not look at) land in $reports_dir; each new report
  # is one more failure.
  local nrep=0
  if [[ -n ${reports_dir:-} ]]; then
    local f
    for f in "$reports_dir"/*; do
      [[ -f $f ]] || continue
      nrep=$(( nrep + 1 ))
      echo "---- sanitizer report $f ($what) ----"
      head -120 "$f"
      mv "$f" "$reports_dir/seen/$(basename "$f").$what"
    done
  fi
  fail=$(( fail + nrep ))
  group_pass=$(( group_pass + pass )); group_fail=$(( group_fail + fail ))
  group_lines+=("$(printf '%s %d/%d passed%s (%ss)' "$what" "$pass" $(( pass + fail - nrep )) \
    "$( (( nrep == 0 )) || echo ", $nrep sanitizer reports")" $(( $(date +%s) - start )))")
}

# Labels of the tests in <dir>, minus those matching <skip regex>.
labels_of() {
  local dir=$1 skip=$2
  ctest --test-dir "$dir" --print-labels 2>/dev/null | sed -n 's/^ *\([A-Za-z0-9_.-]\+\)$/\1/p' |
    grep -Ev "$skip" || true
}

# test_phase <name> <dir> <skip regex>: one ctest run per label (so counts are per tier), plus
# the unlabelled tests when there are any (plain phase only: skip regex "^$").
test_phase() {
  local name=$1 dir=$2 skip=$3 start=$(date +%s)
  group_pass=0; group_fail=0; group_lines=()
  local labels; labels=$(labels_of "$dir" "$skip")
  say "$name: labels $(echo $labels)"
  if [[ -z $labels ]]; then
    record "$name" FAILED $(( $(date +%s) - start )) "no test labels found" count
    return
  fi
  for l in $labels; do
    say "$name: label $l"
    ctest_group "$dir" "$l" -L "^${l}\$"
  done
  if [[ $skip == '^$' ]] && ctest --test-dir "$dir" -N -LE . | grep -q 'Test *#'; then
    ctest_group "$dir" "(unlabelled)" -LE .
  fi
  total_pass=$(( total_pass + group_pass )); total_fail=$(( total_fail + group_fail ))
  local status=ok
  (( group_fail == 0 )) || status=FAILED
  record "$name" $status $(( $(date +%s) - start )) "$group_pass passed, $group_fail failed: $(IFS=';'; echo "${group_lines[*]}")"
}

# Targets the tests of <dir> need, labels minus <skip regex>.
test_targets() {
  local dir=$1 skip=$2
  ctest --test-dir "$dir" -N -LE "$skip" | awk '/Test +#/ {print $3}'
}

# sanitizer_phases <san> <skip regex>
sanitizer_phases() {
  local san=$1 skip=$2 dir=build-$1 short
  short=$([[ $1 == address ]] && echo asan || echo tsan)
  # -O0 -g1: file:line in reports, half the compile time of -O1; tests still run in seconds.
  # Ninja: it builds the many test targets named on its command line in parallel (CMake's
  # Makefiles build several --target goals one after another, i.e. mostly one TU at a time).
  if ! configure "$dir" -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O0 -g1" \
      -DPFS_SANITIZE="$san"; then
    record "$short build" FAILED 0 "configure failed" count
    record "$short tests" "NOT RUN" 0 "no build"
    return
  fi
  local targets; targets=$(test_targets "$dir" "$skip")
  if [[ -z $targets ]]; then
    record "$short build" FAILED 0 "no tests outside labels $skip" count
    record "$short tests" "NOT RUN" 0 "no build"
    return
  fi
  if build_phase "$short build" "$dir" $targets; then
    reports_dir=$root/$dir/sanitizer-reports
    rm -rf "$reports_dir"; mkdir -p "$reports_dir/seen"
    local saved_asan=$ASAN_OPTIONS saved_ubsan=$UBSAN_OPTIONS saved_tsan=$TSAN_OPTIONS
    export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$reports_dir/asan"
    export UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$reports_dir/ubsan"
    export TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$reports_dir/tsan"
    export PFS_E2E_STEPS=${PFS_E2E_STEPS:-1000}
    test_phase "$short tests" "$dir" "$skip"
    export ASAN_OPTIONS=$saved_asan UBSAN_OPTIONS=$saved_ubsan TSAN_OPTIONS=$saved_tsan
    unset PFS_E2E_STEPS
    reports_dir=
  else
    record "$short tests" "NOT RUN" 0 "build failed"
  fi
}

fuzz_phases() {
  local dir=build-fuzz start
  if ! command -v clang++ >/dev/null; then
    record "fuzz build" FAILED 0 "clang++ not found (scripts/install-deps.sh installs it)" count
    record "fuzz runs" "NOT RUN" 0 "no build"
    return
  fi
  if ! configure "$dir" -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" \
      -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DPFS_FUZZ=ON -DBUILD_TESTING=OFF; then
    record "fuzz build" FAILED 0 "configure failed" count
    record "fuzz runs" "NOT RUN" 0 "no build"
    return
  fi
  if ! build_phase "fuzz build" "$dir" pfs_fuzz; then
    record "fuzz runs" "NOT RUN" 0 "build failed"
    return
  fi
  start=$(date +%s)
  local pass=0 fail=0 lines=() t
  for corpus in "$root"/tests/fuzz/corpus/*/; do
    t=$(basename "$corpus")
    local bin=$dir/tests/fuzz/$t scratch=$dir/fuzz-work/$t
    rm -rf "$scratch"; mkdir -p "$scratch/new" "$scratch/artifacts"
    if [[ ! -x $bin ]]; then
      echo "fuzz target $t: no binary $bin for corpus $corpus"
      fail=$(( fail + 1 )); lines+=("$t: NO BINARY"); continue
    fi
    say "fuzz $t: ${fuzz_seconds}s"
    local rc=0 seeds
    seeds=$(find "$corpus" -type f | wc -l)
    # New inputs go to the scratch dir (first corpus dir); the committed corpus is read-only.
    # One worker, one job: the machine is shared; -timeout catches hangs, -rss_limit_mb blowups.
    "$bin" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
      -print_final_stats=1 -artifact_prefix="$scratch/artifacts/" "$scratch/new" "$corpus" \
      >"$scratch/log" 2>&1 || rc=$?
    local execs eps newunits
    execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$scratch/log")
    eps=$(awk '/stat::average_exec_per_sec:/ {print $2}' "$scratch/log")
    newunits=$(find "$scratch/new" -type f | wc -l)
    local line
    line=$(printf '%s: %s execs, %s exec/s, corpus %s seeds + %s new' "$t" "${execs:-?}" "${eps:-?}" "$seeds" "$newunits")
    if [[ $rc == 0 && -n $execs ]]; then
      pass=$(( pass + 1 ))
      echo "$line"
    else
      fail=$(( fail + 1 )); line="$line, FAILED (exit $rc)"
      echo "$line"; tail -60 "$scratch/log"
      ls "$scratch/artifacts"
    fi
    lines+=("$line")
  done
  if (( pass + fail == 0 )); then
    record "fuzz runs" FAILED $(( $(date +%s) - start )) "no corpus dirs under tests/fuzz/corpus" count
    return
  fi
  total_pass=$(( total_pass + pass )); total_fail=$(( total_fail + fail ))
  local status=ok
  (( fail == 0 )) || status=FAILED
  record "fuzz runs" $status $(( $(date +%s) - start )) "$pass passed, $fail failed: $(IFS=';'; echo "${lines[*]}")"
}

# ---- phases ------------------------------------------------------------------------------
start=$(date +%s)
say "dependencies"
if ./scripts/install-deps.sh; then
  record "dependencies" ok $(( $(date +%s) - start )) ""
else
  record "dependencies" FAILED $(( $(date +%s) - start )) "scripts/install-deps.sh failed" count
fi

# Line tables only (-g1): backtraces keep file:line at a quarter less compile CPU than -g.
if ! want plain; then
  record "build" "NOT RUN" 0 "not in PFS_TEST_PHASES"
  record "plain tests" "NOT RUN" 0 "not in PFS_TEST_PHASES"
elif configure build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"; then
  if build_phase "build" build-test; then
    test_phase "plain tests" build-test '^$'
  else
    record "plain tests" "NOT RUN" 0 "build failed"
  fi
else
  record "build" FAILED 0 "configure failed" count
  record "plain tests" "NOT RUN" 0 "no build"
fi

for san in address thread; do
  short=$([[ $san == address ]] && echo asan || echo tsan)
  if want $short; then
    sanitizer_phases $san "$([[ $san == address ]] && echo "$asan_skip" || echo "$tsan_skip")"
  else
    record "$short build" "NOT RUN" 0 "not in PFS_TEST_PHASES"
    record "$short tests" "NOT RUN" 0 "not in PFS_TEST_PHASES"
  fi
done

if want fuzz; then
  fuzz_phases
else
  record "fuzz build" "NOT RUN" 0 "not in PFS_TEST_PHASES"
  record "fuzz runs" "NOT RUN" 0 "not in PFS_TEST_PHASES"
fi

# ---- summary -----------------------------------------------------------------------------
echo
say "summary (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
for s in "${summary[@]}"; do echo "$s"; done
echo "total $(now)s"
if (( ${#failed_phases[@]} > 0 )); then
  echo "FAILED or NOT RUN: ${failed_phases[*]}"
fi
echo "$total_pass passed, $total_fail failed"
(( ${#failed_phases[@]} == 0 && total_fail == 0 ))
