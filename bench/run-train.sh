#!/usr/bin/env bash
# Training benchmark: a training step of zfviz's CPU engine (bench_train) against PyTorch's CPU
# training of the same nets (torch_train.py, its best configuration per docs/benchmarking.md) on this
# machine, the two sides alternating net by net and batch by batch (which side goes first swaps
# each time) so that machine drift cancels. Prints both sides' medians in images/s and the ratios
# (zfviz img/s / PyTorch img/s: above 1 means zfviz trains faster).
#   bench/run-train.sh [--quick] [--check] [--nets alexnet-mini,zfnet-mini[,alexnet,zfnet]]
#                      [--batches 16,64,128] [--full-batches 16] [--zfviz-policy ACTIVE|PASSIVE]
# --check first verifies that the two sides run the same nets (torch_train.py --check).
# The full nets (alexnet, zfnet) run at --full-batches only: a step of them takes seconds.
# zfviz runs as `zfviz train` does, with OpenMP's default wait policy, unless --zfviz-policy sets
# OMP_WAIT_POLICY for it (PyTorch's side tries both policies itself).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
check=0
nets="alexnet-mini,zfnet-mini"
batches="16,64,128"
full_batches="16"
zf_env=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=--quick ;;
    --check) check=1 ;;
    --nets) nets="$2"; shift ;;
    --batches) batches="$2"; shift ;;
    --full-batches) full_batches="$2"; shift ;;
    --zfviz-policy) zf_env=(env OMP_WAIT_POLICY="$2"); shift ;;
    *) echo "run-train.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
[ -x build/bench/bench_train ] || cmake --build build -j"$(nproc)" --target bench_train
if [ "$check" = 1 ]; then
  [ -x build/tools/zfviz ] || cmake --build build -j"$(nproc)" --target zfviz
  /usr/bin/python3 bench/torch_train.py --check --nets "$nets"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
load=$(cut -d' ' -f1 /proc/loadavg)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  echo "warning: the machine is not idle (load $load): these numbers are not a measurement"
fi
first=0
for net in ${nets//,/ }; do
  case "$net" in *-mini) bs="$batches" ;; *) bs="$full_batches" ;; esac
  for b in ${bs//,/ }; do
    zf=("${zf_env[@]}" build/bench/bench_train $quick --nets "$net" --batches "$b")
    pt=(/usr/bin/python3 bench/torch_train.py $quick --nets "$net" --batches "$b")
    if [ "$first" = 0 ]; then
      "${zf[@]}" | tee -a "$log"; "${pt[@]}" | tee -a "$log"
    else
      "${pt[@]}" | tee -a "$log"; "${zf[@]}" | tee -a "$log"
    fi
    first=$((1 - first))
  done
done
/usr/bin/python3 bench/summarize.py --rate "$log"
