#!/usr/bin/env bash
# CPU benchmark: the engine against PyTorch (best configuration, docs/benchmarking.md) on this machine,
# the two sides alternating net by net so that machine drift cancels. Prints both sides' medians
# and the ratios (PyTorch time / zfviz time: above 1 means zfviz is faster).
#   bench/run-cpu.sh [--quick] [--nets alexnet,alexnet-caffe,zfnet]
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
nets="alexnet,alexnet-caffe,zfnet"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=--quick ;;
    --nets) nets="$2"; shift ;;
    *) echo "run-cpu.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
[ -x build/bench/bench_cpu ] || cmake --build build -j"$(nproc)" --target bench_cpu
log=$(mktemp)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for net in ${nets//,/ }; do
  build/bench/bench_cpu $quick --nets "$net" | tee -a "$log"
  /usr/bin/python3 bench/torch_cpu.py $quick --nets "$net" | tee -a "$log"
done
/usr/bin/python3 bench/summarize.py "$log"
rm -f "$log"
