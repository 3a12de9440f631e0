#!/usr/bin/env bash
# Occlusion-map benchmark: zfviz's incremental method and its own brute force against PyTorch's
# brute force (batched forwards, best configuration of docs/benchmarking.md), all three on the same
# He-normal weights and input, alternating round by round so that machine drift cancels. Both sides
# run with OMP_WAIT_POLICY ACTIVE and PASSIVE and keep the better (docs/benchmarking.md). Prints
# the medians, the ratios and how far the maps agree.
#   bench/run-occlusion.sh [--quick] [--nets alexnet,zfnet] [--pairs 32:8,16:4] [--rounds N]
# BUILD names the build folder (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
nets="alexnet,zfnet"
pairs="32:8,16:4"
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) pairs="32:16"; rounds=1 ;;
    --nets) nets="$2"; shift ;;
    --pairs) pairs="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    *) echo "run-occlusion.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
build="${BUILD:-build}"
[ -x "$build/bench/bench_occlusion" ] || cmake --build "$build" -j"$(nproc)" --target bench_occlusion
py=/usr/bin/python3
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
work=$build/bench-occlusion
mkdir -p "$work"
log="$work/log.jsonl"
: > "$log"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for net in ${nets//,/ }; do
  size=224; [ "$net" = alexnet-caffe ] && size=227
  [ -f "$work/weights/$net/fc8.bias.npy" ] || $py bench/torch_occlusion.py --arch "$net" --save-weights "$work/weights/$net"
  [ -f "$work/x$size.npy" ] || $py -c "import numpy as np; np.save('$work/x$size.npy', \
      np.random.default_rng(1).standard_normal((1, 3, $size, $size)).astype(np.float32))"
  for pair in ${pairs//,/ }; do
    patch=${pair%:*}; stride=${pair#*:}
    for r in $(seq 1 "$rounds"); do
      out=(); tout=()
      if [ "$r" = 1 ]; then
        out=(--out "$work/maps"); tout=(--out "$work/maps/$net-$patch-$stride-torch")
      fi
      for policy in ACTIVE PASSIVE; do
        OMP_WAIT_POLICY=$policy "$build/bench/bench_occlusion" --nets "$net" --pairs "$pair" \
          --weights "$work/weights" --input "$work/x$size.npy" --repeat 1 --methods brute,incremental \
          "${out[@]}" | sed "s/^{/{\"omp_wait_policy\": \"$policy\", /" | tee -a "$log"
        out=()
      done
      for policy in ACTIVE PASSIVE; do
        LD_PRELOAD=$tcmalloc OMP_WAIT_POLICY=$policy $py bench/torch_occlusion.py --arch "$net" \
          --weights "$work/weights/$net" --input "$work/x$size.npy" --patch "$patch" --stride "$stride" \
          "${tout[@]}" | tee -a "$log"
        tout=()
      done
    done
  done
done
$py bench/summarize_occlusion.py "$log" "$work/maps"
