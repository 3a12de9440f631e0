#!/usr/bin/env bash
# Runs every test: the Release build's Criterion suites through CTest, then the same suites built
# with -fsanitize=address,undefined (CUDA off there: its runtime and ASan do not mix), failing on
# any sanitizer report. Both builds are incremental.
#   scripts/test.sh            every job below but clone
#   scripts/test.sh release    the Release job only
#   scripts/test.sh sanitize   the sanitizer job only
#   scripts/test.sh fuzz       every libFuzzer target for 20 s (scripts/fuzz.sh ci; needs clang)
#   scripts/test.sh cuda-emu   the CUDA engine's kernels run on the CPU (scripts/cuda-emu-test.sh):
#                              test_cuda against the CPU engine, under ASan and UBSan, no GPU needed
#   scripts/test.sh clone      the Release job in a fresh clone of HEAD, in a temporary folder with
#                              nothing beside it (what a stranger's `git clone` gets)
# ZF_CTEST_JOBS=N sets how many suites CTest runs at once (2 by default).
# Every job first checks that no tracked file refers to a folder outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${1:-all}"
n=$(nproc)
# Suites CTest runs at once (each runs its own tests 2 at a time under Criterion). Two at once fill
# the stretches where a suite waits on one long test or on a zfviz child, and share nothing that
# could clash: each test's folder is named for its process, the demo suites' shared run is made
# under a lock (tests/testutil_cr.c), and the fixtures are made before any suite starts.
ctest_jobs="${ZF_CTEST_JOBS:-2}"

# The repository carries everything its tests, docs and benches need: a tracked file that names the
# shared folder beside the checkout (relative or absolute) works here and fails in a clone.
check_self_contained() {
  if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "== not a git checkout: self-containment not checked"
    return 0
  fi
  local hits
  hits=$(git grep -n -I -e '\.\./shared' -e '/work/[s]hared' -- . || true)
  if [ -n "$hits" ]; then
    echo "test.sh: tracked files refer to folders outside the repository:" >&2
    echo "$hits" >&2
    return 1
  fi
  echo "== self-contained: no tracked file refers to a folder outside the repository"
}

run_release() {
  echo "== test job 1: Release build"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$n"
  (cd build && ctest --output-on-failure -j"$ctest_jobs")
}

run_sanitize() {
  echo "== test job 2: -fsanitize=address,undefined"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZF_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$n"
  # Criterion runs each test in a child process whose sanitizer exit status it does not check (a
  # leak report leaves the test "passing"), so the job also fails on any report in the output.
  # ZFVIZ_ISA=sse: this job runs every suite on the SSE copy of the kernels, the Release job on the
  # widest the CPU runs (test_isa runs each set in both), so that both are covered (docs/engine.md).
  local log=build-asan/test-output.log
  set +e
  (cd build-asan && ZFVIZ_ISA=sse ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
     UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -j"$ctest_jobs" -V) >"$log" 2>&1
  local rc=$?
  set -e
  grep -E "tests passed|tests failed|Synthesis|Total Test time" "$log" || true
  if grep -qE "ERROR: (Leak|Address)Sanitizer|runtime error:" "$log"; then
    echo "sanitizer job: reports found:" >&2
    grep -E -A12 "ERROR: (Leak|Address)Sanitizer|runtime error:" "$log" | head -80 >&2
    return 1
  fi
  [ $rc = 0 ] || { tail -60 "$log" >&2; return $rc; }
}

# A short bounded run of each fuzz target, one at a time, from the committed corpora (a longer one
# by hand: scripts/fuzz.sh run TARGET SECONDS).
run_fuzz() {
  echo "== test job 3: libFuzzer targets, ${ZF_FUZZ_SECONDS:-20} s each"
  JOBS="$n" scripts/fuzz.sh ci "${ZF_FUZZ_SECONDS:-20}"
}

# No machine that runs CI has a GPU: the CUDA sources are translated to host C++ with fake CUDA,
# cuDNN and cuBLAS libraries, and test_cuda compares what they compute with the CPU engine.
run_cuda_emu() {
  echo "== test job 4: the CUDA engine under host emulation"
  if [ ! -f /usr/local/cuda/include/cudnn.h ] && [ -z "${CUDA_INC:-}" ]; then
    echo "cuda-emu: no CUDA headers in /usr/local/cuda/include: skipped"
    return 0
  fi
  local log
  log=$(mktemp)
  local rc=0
  scripts/cuda-emu-test.sh > "$log" 2>&1 || rc=$?
  grep -E '^\[====\] Synthesis' "$log" || true
  [ $rc = 0 ] || { tail -60 "$log" >&2; rm -f "$log"; return $rc; }
  rm -f "$log"
}

run_clone() {
  echo "== clone job: the Release job in a fresh clone with nothing beside it"
  local tmp
  tmp=$(mktemp -d)
  git clone -q . "$tmp/zfviz"
  local rc=0
  "$tmp/zfviz/scripts/test.sh" release || rc=$?
  if [ $rc = 0 ]; then
    rm -rf "$tmp"
  else
    echo "clone job: failed (exit $rc); the clone is kept in $tmp" >&2
  fi
  return $rc
}

check_self_contained
case "$jobs" in
  all) run_release; run_sanitize; run_fuzz; run_cuda_emu ;;
  release) run_release ;;
  sanitize) run_sanitize ;;
  fuzz) run_fuzz ;;
  cuda-emu) run_cuda_emu ;;
  clone) run_clone ;;
  *) echo "test.sh: unknown job '$jobs' (all, release, sanitize, fuzz, cuda-emu, clone)" >&2; exit 2 ;;
esac
