#!/usr/bin/env bash
# Fuzzes the ONNX loader with libFuzzer (clang, ASan + UBSan) at the lowest CPU priority, one job.
#   scripts/fuzz-onnx.sh [SECONDS (default 600)]
# Builds build-fuzz/ with -DZF_FUZZ=ON, copies tests/onnx-corpus (the seeds, see
# scripts/make-onnx-seeds.py, and any crash reproducers) into build-fuzz/corpus, fuzzes for the
# given time, and leaves crash-*/leak-*/timeout-*/oom-* reproducers in build-fuzz/artifacts/.
# A reproducer fixed in the loader goes into tests/onnx-corpus/ so test_onnx keeps loading it.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
command -v clang >/dev/null || { echo "fuzz-onnx.sh: clang not found (apt-get install clang)" >&2; exit 2; }
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZF_CUDA=OFF \
  -DZF_SANITIZE=ON -DZF_FUZZ=ON -DZF_TESTS=OFF >/dev/null
cmake --build build-fuzz -j2 --target zf_fuzz_onnx
mkdir -p build-fuzz/corpus build-fuzz/artifacts
cp -n tests/onnx-corpus/*.onnx build-fuzz/corpus/ 2>/dev/null || true
# rss/malloc limits: the loader must refuse huge weights itself (max_params), not run out of memory.
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  nice -n 19 build-fuzz/core/onnx/zf_fuzz_onnx -max_total_time="$secs" \
  -max_len=8192 -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
  -artifact_prefix=build-fuzz/artifacts/ -print_final_stats=1 build-fuzz/corpus
