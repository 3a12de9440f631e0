#!/usr/bin/env bash
# Attribution benchmark: seconds per image of the gradient, guided backprop, Grad-CAM and
# integrated gradients (50 steps) at batches of 1 and 16, zfviz's engine (bench/bench_attribute.c)
# against the same methods written with PyTorch autograd (bench/torch_attribute.py) in its best
# configuration (docs/benchmarking.md: all cores as threads, tcmalloc, the better of
# OMP_WAIT_POLICY ACTIVE and PASSIVE; zfviz as its program runs: tools/main.c), on the same
# seeded weights and inputs. Each method's output is compared with PyTorch's before it is timed
# (the relative L2 error is printed). The
# sides alternate round by round; the table gives each side's median over the rounds and the
# ratio PyTorch / zfviz (above 1: zfviz is faster).
#   bench/run-attribute.sh [--quick] [--nets alexnet-mini,zfnet-mini,alexnet] [--rounds N]
#                          [--seconds S] [--ig-batches 1,16]
# Run it under flock /tmp/zfviz-bench.lock on a shared machine. BUILD names the build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
nets="alexnet-mini,zfnet-mini,alexnet"
rounds=2
seconds=3
ig_batches="1,16"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) nets="alexnet-mini,zfnet-mini"; rounds=1; seconds=0.5 ;;
    --nets) nets="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --ig-batches) ig_batches="$2"; shift ;;
    *) echo "run-attribute.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
build="${BUILD:-build}"
[ -x "$build/bench/bench_attribute" ] && [ -x "$build/tools/zfviz" ] || cmake --build "$build" -j"$(nproc)" --target bench_attribute zfviz
py=/usr/bin/python3
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
work="$build/bench-attribute"
mkdir -p "$work"
log="$work/log.jsonl"
: > "$log"
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "machine: $machine; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for net in ${nets//,/ }; do
  [ -f "$work/$net/torch-integrated-gradients.npy" ] || $py bench/torch_attribute.py prepare "$work" --nets "$net"
done
grad="gradient,guided-backprop,gradcam"
. bench/zfviz-env.sh
for r in $(seq 1 "$rounds"); do
  for net in ${nets//,/ }; do
    zfviz_env "$build/bench/bench_attribute" "$work" --nets "$net" --methods "$grad" \
      --batches 1,16 --seconds "$seconds" | tee -a "$log"
    zfviz_env "$build/bench/bench_attribute" "$work" --nets "$net" \
      --methods integrated-gradients --batches "$ig_batches" --seconds "$seconds" | tee -a "$log"
    for policy in ACTIVE PASSIVE; do
      LD_PRELOAD=$tcmalloc OMP_WAIT_POLICY=$policy $py bench/torch_attribute.py time "$work" --nets "$net" \
        --methods "$grad" --batches 1,16 --seconds "$seconds" | tee -a "$log"
      LD_PRELOAD=$tcmalloc OMP_WAIT_POLICY=$policy $py bench/torch_attribute.py time "$work" --nets "$net" \
        --methods integrated-gradients --batches "$ig_batches" --seconds "$seconds" | tee -a "$log"
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
$py - "$log" "$machine" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
keys = sorted({(r["net"], r["method"], r["batch"]) for r in rows}, key=lambda k: (k[0], k[1], k[2]))
print(f"\nmachine: {sys.argv[2]}")
print("| net | method | batch | zfviz ms/img | PyTorch ms/img (policy) | PyTorch / zfviz | rel. error vs PyTorch |")
print("|---|---|---|---|---|---|---|")
for net, m, b in keys:
    z = [r for r in rows if r["side"] == "zfviz" and (r["net"], r["method"], r["batch"]) == (net, m, b)]
    t = [r for r in rows if r["side"] == "pytorch" and (r["net"], r["method"], r["batch"]) == (net, m, b)]
    if not z or not t:
        continue
    zt = statistics.median(r["s_per_image"] for r in z)
    best = min({r["policy"] for r in t}, key=lambda p: statistics.median(r["s_per_image"] for r in t if r["policy"] == p))
    tt = statistics.median(r["s_per_image"] for r in t if r["policy"] == best)
    err = max(r["rel_err_vs_torch"] for r in z)
    print(f"| {net} | {m} | {b} | {zt * 1e3:.2f} | {tt * 1e3:.2f} ({best.lower()}) | {tt / zt:.2f} | {err:.1e} |")
PY
