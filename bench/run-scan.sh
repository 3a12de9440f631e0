#!/usr/bin/env bash
# Scan benchmark: `zfviz scan` against what a PyTorch user writes for the same per-unit statistics
# (bench/torch_scan.py: a DataLoader with 2 worker processes decoding with PIL, the forward, the
# same reductions in torch), over the same synthetic photos (500x375 JPEGs, bench_scan --make) and
# the same nets (the engine's random:1 weights, as .npy files that both sides load), in one run.
# Before anything is timed, PyTorch's statistics are checked against the database zfviz wrote of
# the same images.
# zfviz's figure is the command's wall time, start to last commit (loading the weights, model hash,
# database, decoding on its worker thread, forward, statistics, commits); PyTorch's runs from the first batch
# asked of the DataLoader (its workers' start included) to the last reduction, its imports and
# weights' loading not counted, and nothing written. Both report their decoding alone (zfviz: one
# thread, bench_scan; PyTorch: the DataLoader's workers) and their forward alone over images
# already in memory. The sides take turns, in an order that rotates each round; medians over the
# rounds; ratio = zfviz img/s / PyTorch img/s (above 1: zfviz is faster).
#   bench/run-scan.sh [--quick] [--nets alexnet,zfnet] [--images N] [--rounds N] [--busy]
# BUILD names the build folder (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
nets="alexnet,zfnet"
n=""
rounds=""
quick=0
busy=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --nets) nets="$2"; shift ;;
    --images) n="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --busy) busy=1 ;;
    *) echo "run-scan.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
# --quick checks that everything runs: 48 images, one round
[ -n "$n" ] || { [ "$quick" = 1 ] && n=48 || n=300; }
[ -n "$rounds" ] || { [ "$quick" = 1 ] && rounds=1 || rounds=2; }
build="${BUILD:-build}"
[ -x "$build/bench/bench_scan" ] && [ -x "$build/bench/bench_cpu" ] && [ -x "$build/tools/zfviz" ] ||
  cmake --build "$build" -j"$(nproc)" --target bench_scan bench_cpu zfviz
work=$(mktemp -d)
busy_pid=""
trap '[ -z "$busy_pid" ] || kill "$busy_pid"; rm -rf "$work"' EXIT
if [ "$busy" = 1 ]; then
  sh -c 'while :; do :; done' &
  busy_pid=$!
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, a busy process: $([ "$busy" = 1 ] && echo yes || echo no);" \
     "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/bench_scan" --make "$n" --to "$work/images"
"$build/bench/bench_cpu" --nets "$nets" --batches 1 --dump "$work/data" > /dev/null
log="$work/log"
zfviz_scan() { # net round: the command's wall time into a fresh database
  local db="$work/$1.$2.db" t0 t1
  t0=$(date +%s.%N)
  "$build/tools/zfviz" scan --arch "$1" --weights "$work/data/$1/weights" --images "$work/images" --db "$db" \
    --batch 16 > /dev/null 2> "$work/scan.err" || { cat "$work/scan.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "{\"side\": \"zfviz\", \"net\": \"$1\", \"images\": $n, \"secs\": $(echo "$t1 - $t0" | bc -l)}"
}
# zfviz first, once per net: the database PyTorch's statistics are checked against
checks=()
for net in ${nets//,/ }; do
  zfviz_scan "$net" check > /dev/null
  checks+=(--check "$net=$work/$net.check.db")
done
/usr/bin/python3 bench/torch_scan.py --images "$work/images" --data "$work/data" --nets "$nets" \
  --reps 1 "${checks[@]}" | sed 's/^{/{"round": "check", /' | tee -a "$log"
. bench/zfviz-env.sh
for ((r = 0; r < rounds; r++)); do
  echo "round $((r + 1)) of $rounds; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  for net in ${nets//,/ }; do
    sides=(zfviz pytorch)
    for ((i = 0; i < 2; i++)); do
      case ${sides[$(((i + r) % 2))]} in
        zfviz) zfviz_scan "$net" "$r" ;;
        pytorch) /usr/bin/python3 bench/torch_scan.py --images "$work/images" --data "$work/data" --nets "$net" ;;
      esac | sed "s/^{/{\"round\": $r, /" | tee -a "$log"
      rm -f "$work/$net.$r.db"*
    done
  done
done
# zfviz's decoding alone (one thread) and forward alone, over the same images
zfviz_env "$build/bench/bench_scan" --images "$work/images" --nets "$nets" --weights random:1 \
  --reps "$rounds" 2> /dev/null | tee -a "$log"
echo "end; load: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$log" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
nets = list(dict.fromkeys(r["net"] for r in rows))
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("\n| net | zfviz scan img/s | PyTorch scan img/s | ratio | decoding img/s: zfviz (1 thread) / PyTorch "
      "(2 workers) | forward img/s: zfviz / PyTorch | check: max, mean, top-9 same |")
print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
for net in nets:
    z = med([r["images"] / r["secs"] for r in rows if r.get("side") == "zfviz" and r["net"] == net])
    p = [r for r in rows if r.get("side") == "pytorch" and r["net"] == net and r["round"] != "check"]
    b = [r for r in rows if r.get("bench") == "scan" and r["net"] == net]
    c = next((r["check"] for r in rows if r.get("side") == "pytorch" and r["net"] == net and r["round"] == "check"), None)
    pt = med([r["scan_ips"] for r in p])
    chk = f"{c['max']:.1e}, {c['mean']:.1e}, {100 * c['top9_same']:.1f}%" if c else "-"
    print(f"| {net} | {z:.1f} | {pt:.1f} | {z / pt:.2f}x | {b[0]['decode_ips_one_thread'] if b else float('nan'):.1f} / "
          f"{med([r['decode_ips'] for r in p]):.1f} | {b[0]['forward_ips'] if b else float('nan'):.1f} / "
          f"{med([r['forward_ips'] for r in p]):.1f} | {chk} |")
EOF
