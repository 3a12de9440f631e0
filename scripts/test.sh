#!/usr/bin/env bash
# Runs every test: the Release build's Criterion suites through CTest, then the same suites built
# with -fsanitize=address,undefined (CUDA off there: its runtime and ASan do not mix), failing on
# any sanitizer report. Both builds are incremental.
#   scripts/test.sh            both jobs
#   scripts/test.sh release    the Release job only
#   scripts/test.sh sanitize   the sanitizer job only
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${1:-all}"
n=$(nproc)

run_release() {
  echo "== test job 1: Release build"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$n"
  (cd build && ctest --output-on-failure -j1)
}

run_sanitize() {
  echo "== test job 2: -fsanitize=address,undefined"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZF_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$n"
  # halt_on_error: a report fails the test instead of scrolling by.
  (cd build-asan && ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 \
     UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -j1)
}

case "$jobs" in
  all) run_release; run_sanitize ;;
  release) run_release ;;
  sanitize) run_sanitize ;;
  *) echo "test.sh: unknown job '$jobs' (all, release, sanitize)" >&2; exit 2 ;;
esac
