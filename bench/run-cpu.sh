#!/usr/bin/env bash
# CPU benchmark: the engine against the engines a user would pick instead, on the same nets (the
# engine's random:1 weights), the same inputs, in one run: PyTorch (best configuration,
# docs/benchmarking.md), OpenVINO f32 (bf16 apart, where the CPU has it) and onnxruntime (both from
# PyPI in the benchmark's own virtual environment, bench/peers-venv.sh). Every engine's fc8 is
# checked against a float64 reference and against the engine's before it is timed. The sides take
# turns net by net, in an order that rotates each round, so that machine drift spreads over all;
# summarize.py prints each side's median over the rounds and the ratio to the best peer
# (peer time / zfviz time: above 1 means zfviz is faster). zfviz's bf16 forward (--precision bf16:
# bfloat16 operands, float32 sums) is a column apart, with its difference from zfviz's float32.
# zfviz's threads wait as the zfviz program has them wait (a short spin where the cores are free,
# else passive: tools/main.c), unless the caller set OMP_WAIT_POLICY or GOMP_SPINCOUNT; PyTorch
# reports the better of both policies; --busy keeps one core busy with another process throughout
# (the shared-machine case).
#   bench/run-cpu.sh [--quick] [--nets alexnet,alexnet-caffe,zfnet] [--batches 1,16,64] [--rounds N]
#                    [--no-peers] [--busy]
# BUILD names the build folder (default build); ZF_PEERS_VENV the virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
nets="alexnet,alexnet-caffe,zfnet"
batches=""
rounds=""
peers=1
busy=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=--quick ;;
    --nets) nets="$2"; shift ;;
    --batches) batches="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --no-peers) peers=0 ;;
    --busy) busy=1 ;;
    *) echo "run-cpu.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
# --quick checks that everything runs: one round, batches 1 and 16, short timings
[ -n "$batches" ] || { [ -n "$quick" ] && batches=1,16 || batches=1,16,64; }
[ -n "$rounds" ] || { [ -n "$quick" ] && rounds=1 || rounds=2; }
build="${BUILD:-build}"
[ -x "$build/bench/bench_cpu" ] && [ -x "$build/tools/zfviz" ] || cmake --build "$build" -j"$(nproc)" --target bench_cpu zfviz
work=$(mktemp -d)
busy_pid=""
trap '[ -z "$busy_pid" ] || kill "$busy_pid"; rm -rf "$work"' EXIT
if [ "$busy" = 1 ]; then
  sh -c 'while :; do :; done' &
  busy_pid=$!
fi
log="$work/log"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}," \
     "GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-unset}," \
     "a busy process: $([ "$busy" = 1 ] && echo yes || echo no);" \
     "load: $(cut -d' ' -f1-3 /proc/loadavg)"
sides="zfviz pytorch"
if [ "$peers" = 1 ]; then
  venv=$(bench/peers-venv.sh)
  sides="zfviz pytorch peers"
fi
"$build/bench/bench_cpu" --nets "$nets" --batches "$batches" --dump "$work/data"
/usr/bin/python3 bench/peers_export.py "$work/data" --nets "$nets"
. bench/zfviz-env.sh
run_side() { # side net
  case "$1" in
    zfviz) zfviz_env "$build/bench/bench_cpu" $quick --bf16 --nets "$2" --batches "$batches" ;;
    pytorch) /usr/bin/python3 bench/torch_cpu.py $quick --nets "$2" --batches "$batches" --data "$work/data" ;;
    peers) "$venv/bin/python" bench/peers_cpu.py "$work/data" $quick --nets "$2" --batches "$batches" ;;
  esac
}
read -r -a order <<< "$sides"
for ((r = 0; r < rounds; r++)); do
  echo "round $((r + 1)) of $rounds; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  for net in ${nets//,/ }; do
    for ((i = 0; i < ${#order[@]}; i++)); do
      side=${order[$(((i + r) % ${#order[@]}))]}
      run_side "$side" "$net" | sed "s/^{/{\"round\": $r, /" | tee -a "$log"
    done
  done
done
echo "end; load: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 bench/summarize.py "$log"
