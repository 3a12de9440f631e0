#!/usr/bin/env bash
# Scale-out figures for a full AlexNet scan (every conv and fc unit; random:1 weights, which cost
# what trained ones do): images/s of one process, of two processes (two shards side by side,
# one core each; and `mpirun -np 2` when zfviz is built with MPI), the decoding rate alone
# (bench_scan, one thread), and the merge of 64 shards with its wall time and peak memory.
#   bench/run-scale.sh [BUILD_DIR]        N=256 images (500x375 JPEG), SHARDS=64
# Prints a Markdown table; run it on an idle machine (it times whole commands).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
N=${N:-256}
SHARDS=${SHARDS:-64}
ZFVIZ=$PWD/$BUILD/tools/zfviz
[ -x "$ZFVIZ" ] || { echo "run-scale.sh: no $ZFVIZ (build first)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model=(--arch alexnet --weights random:1)

/usr/bin/python3 - "$work/images" "$N" <<'PY'
import os, sys
import numpy as np
from PIL import Image
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
rng = np.random.default_rng(1)
y, x = np.mgrid[0:375, 0:500]
for i in range(n):
    a = rng.uniform(0, 6.28, 3)
    img = np.stack([127 + 90 * np.sin(x / (20 + 9 * k) + y / (31 + 7 * k) + a[k]) for k in range(3)], -1)
    img += rng.normal(0, 18, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(f"{d}/{i:05d}.jpg", quality=90)
PY

# Seconds a command takes, and its peak resident memory in MiB (GNU time).
timed() { /usr/bin/time -f "%e %M" -o "$work/time" "$@" > /dev/null 2> "$work/err" ||
          { cat "$work/err" >&2; exit 1; }; read -r secs kib < "$work/time"; mib=$((kib / 1024)); }

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "CPU: $cpu, $(nproc) cores; $N images of 500x375, AlexNet (all conv and fc layers), batch 16"
echo
echo "| what | seconds | images/s | peak MiB |"
echo "|---|---|---|---|"
timed "$ZFVIZ" scan "${model[@]}" --images "$work/images" --db "$work/one.db"
echo "| scan, 1 process ($(nproc) threads) | $secs | $(echo "$N / $secs" | bc -l | xargs printf %.1f) | $mib |"

start=$(date +%s.%N)
for k in 1 2; do
  OMP_NUM_THREADS=1 "$ZFVIZ" scan "${model[@]}" --images "$work/images" --db "$work/two_$k.db" \
    --shard $k/2 > /dev/null 2>&1 &
done
wait
secs=$(echo "$(date +%s.%N) - $start" | bc -l | xargs printf %.2f)
echo "| scan, 2 processes (--shard k/2, 1 thread each) | $secs | $(echo "$N / $secs" | bc -l | xargs printf %.1f) | |"
timed "$ZFVIZ" merge -o "$work/two.db" "$work/two_1.db" "$work/two_2.db"
echo "| merge of those 2 shards | $secs | | $mib |"

if command -v mpirun > /dev/null && ldd "$ZFVIZ" | grep -q libmpi; then
  TMPDIR=$work OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    timed mpirun --oversubscribe -np 2 "$ZFVIZ" scan "${model[@]}" --images "$work/images" \
    --db "$work/mpi.db"
  echo "| mpirun -np 2 zfviz scan (1 thread each, merge included) | $secs | $(echo "$N / $secs" | bc -l | xargs printf %.1f) | |"
fi

"$BUILD/bench/bench_scan" --images "$work/images" --nets alexnet --reps 1 2> /dev/null |
  sed -n 's/.*"decode_ips_one_thread":\([0-9.]*\).*/| decoding + preprocessing alone, 1 thread (bench_scan) | | \1 | |/p'

# 64 shards of a list of 64 batches: one batch each.
mkdir "$work/shards"
for k in $(seq 1 "$SHARDS"); do
  "$ZFVIZ" scan "${model[@]}" --images "$work/images" --db "$work/shards/s$k.db" --batch $((N / SHARDS)) \
    --shard "$k/$SHARDS" > /dev/null 2>&1
done
size=$(du -sm "$work/shards" | cut -f1)
timed "$ZFVIZ" merge -o "$work/merged.db" "$work"/shards/s*.db
echo "| merge of $SHARDS shards ($size MiB of shard databases) | $secs | | $mib |"
