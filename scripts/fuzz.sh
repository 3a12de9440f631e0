#!/usr/bin/env bash
# libFuzzer targets for every loader (clang, ASan + UBSan), built and run at the lowest CPU
# priority, one target at a time:
#   scripts/fuzz.sh build                 configure and build build-fuzz/ (-DZF_FUZZ=ON)
#   scripts/fuzz.sh run TARGET [SECONDS]  fuzz one target (default 600 s)
#   scripts/fuzz.sh ci [SECONDS]          build, then each target for SECONDS (default 20) in turn
#   scripts/fuzz.sh list                  the targets
# Targets: npy safetensors image list scandb onnx (fuzz/fuzz_*.c, core/onnx/fuzz_onnx.c).
# The seeds are fuzz/corpus/TARGET/ (for onnx also tests/onnx-corpus/); what a run finds new goes
# to build-fuzz/corpus/TARGET/ (copy the small ones back to fuzz/corpus/TARGET/ to keep them), and
# crash-*/leak-*/timeout-*/oom-* reproducers to build-fuzz/artifacts/TARGET/. A run that finds one
# exits non-zero. BUILD_DIR overrides build-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build-fuzz}"
targets=(npy safetensors image list scandb onnx)

bin_of() {
  if [ "$1" = onnx ]; then echo "$build/core/onnx/zf_fuzz_onnx"; else echo "$build/fuzz/zf_fuzz_$1"; fi
}

do_build() {
  command -v clang >/dev/null || { echo "fuzz.sh: clang not found (apt-get install clang)" >&2; exit 2; }
  # -Wno-psabi: clang warns that winograd.c's AVX helpers pass vectors in a way that depends on
  # -mavx; every object here is built with the same flags, so the ABI cannot differ.
  cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZF_CUDA=OFF \
    -DZF_SANITIZE=ON -DZF_FUZZ=ON -DZF_TESTS=OFF -DCMAKE_C_FLAGS=-Wno-psabi >/dev/null
  local t names=()
  for t in "${targets[@]}"; do names+=("$(basename "$(bin_of "$t")")"); done
  cmake --build "$build" -j"${JOBS:-2}" --target "${names[@]}"
}

do_run() {
  local t="$1" secs="${2:-600}" bin max_len=65536 seeds=()
  bin="$(bin_of "$t")"
  [ -x "$bin" ] || { echo "fuzz.sh: $bin not built (scripts/fuzz.sh build); targets: ${targets[*]}" >&2; exit 2; }
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  [ -d "fuzz/corpus/$t" ] && seeds+=("fuzz/corpus/$t")
  case "$t" in
    onnx) seeds+=(tests/onnx-corpus); max_len=8192 ;;
    scandb) max_len=131072 ;;
    list) max_len=16384 ;;
  esac
  # The malloc limit: a loader must refuse what a header claims itself, not run out of memory
  # (images may claim up to 2^28 pixels, 768 MiB).
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    nice -n 19 "$bin" -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2560 \
    -malloc_limit_mb=1024 -timeout=10 -artifact_prefix="$build/artifacts/$t/" -print_final_stats=1 \
    "$build/corpus/$t" "${seeds[@]}"
}

case "${1:-}" in
  build) do_build ;;
  run) [ $# -ge 2 ] || { echo "usage: scripts/fuzz.sh run TARGET [SECONDS]" >&2; exit 2; }; do_run "$2" "${3:-600}" ;;
  ci) do_build; for t in "${targets[@]}"; do echo "== fuzz $t (${2:-20} s)"; do_run "$t" "${2:-20}"; done ;;
  list) printf '%s\n' "${targets[@]}" ;;
  -h|--help|"") sed -n '2,13p' "$0"; [ -n "${1:-}" ] ;;
  *) echo "fuzz.sh: unknown command '$1' (see --help)" >&2; exit 2 ;;
esac
