#!/usr/bin/env bash
# The unit atlas of a full AlexNet scan (every conv and fc layer a ReLU follows: conv1-5, fc6, fc7;
# random:1 weights, which cost what trained ones do): zfviz site's first build (every top-k
# example projected with the deconvnet and stored, every bottom-k patch cut) and second build
# (everything copied from the database), with the time spent in deconv rendering and the size of
# the largest page. The images are synthetic 500x375 JPEGs in four class folders, so the class
# columns and charts are built too.
#   bench/run-site.sh [BUILD_DIR]          N=32 images, ARCH=alexnet
#   ARCH=alexnet-mini N=8 bench/run-site.sh build   a quick check that the script works
# Prints a Markdown table; run it on an idle machine (it times whole commands).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
N=${N:-32}
ARCH=${ARCH:-alexnet}
ZFVIZ=$PWD/$BUILD/tools/zfviz
[ -x "$ZFVIZ" ] || { echo "run-site.sh: no $ZFVIZ (build first)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case $ARCH in
  alexnet-mini|zfnet-mini) model=(--arch "$ARCH") ;;  # embedded weights
  *) model=(--arch "$ARCH" --weights random:1) ;;
esac

/usr/bin/python3 - "$work/images" "$N" <<'PY'
import os, sys
import numpy as np
from PIL import Image
d, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(1)
y, x = np.mgrid[0:375, 0:500]
for i in range(n):
    c = f"{d}/class{i % 4}"
    os.makedirs(c, exist_ok=True)
    a = rng.uniform(0, 6.28, 3)
    img = np.stack([127 + 90 * np.sin(x / (20 + 9 * k + 6 * (i % 4)) + y / (31 + 7 * k) + a[k]) for k in range(3)], -1)
    img += rng.normal(0, 18, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(f"{c}/{i:05d}.jpg", quality=90)
PY

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
"$ZFVIZ" scan "${model[@]}" --images "$work/images" --db "$work/s.db" > /dev/null 2> "$work/scan.err" ||
  { cat "$work/scan.err" >&2; exit 1; }
units=$(sqlite3 "$work/s.db" "SELECT group_concat(layer || ' ' || units, ', ') FROM run_layers WHERE run_id = 1")
echo "CPU: $cpu, $(nproc) cores; $ARCH, $N images of 500x375 in 4 class folders; scanned layers: $units"
echo
echo "| build | seconds | deconv rendering (s) | examples projected | bottom patches cut (s) | pictures copied | pages | largest page (bytes) |"
echo "|---|---|---|---|---|---|---|---|"
# One build: its wall time and what its summary line says (see zfviz site).
build() {
  local start secs line
  start=$(date +%s.%N)
  "$ZFVIZ" site --db "$work/s.db" -o "$work/site" --force > /dev/null 2> "$work/site.err" ||
    { cat "$work/site.err" >&2; exit 1; }
  secs=$(echo "$(date +%s.%N) - $start" | bc -l | xargs printf %.1f)
  line=$(grep '^wrote ' "$work/site.err")
  # wrote DIR: P pages, I images in T s; E examples projected now (R s), B bottom-k patches cut now (S s),
  # C pictures copied from the database; largest page L bytes (PATH)
  echo "$line" | sed -E "s/^wrote [^:]*: ([0-9]+) pages, [0-9]+ images in [0-9.]+ s; ([0-9]+) examples projected now \(([0-9.]+) s\), ([0-9]+) bottom-k patches cut now \(([0-9.]+) s\), ([0-9]+) pictures copied from the database; largest page ([0-9]+) bytes \((.*)\)$/| $1 | $secs | \3 | \2 | \4 (\5) | \6 | \1 | \7 (\8) |/" |
    sed "s|$work/site/||"
}
build first
build second
echo
echo "The site: $(du -sh "$work/site" | cut -f1) in $(find "$work/site" -type f | wc -l) files."
