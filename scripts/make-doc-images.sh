#!/usr/bin/env bash
# Renders the pictures README.md shows into docs/images/ with the built zfviz: conv1 filter grids
# of AlexNet and ZFNet, their first-layer comparison, an activation grid, an occlusion figure and a
# top-9 sheet. Rerun it after training or importing real weights; until then random weights are
# used and the pictures show the layout, not learned features.
#   scripts/make-doc-images.sh [OUT_DIR]          (default docs/images)
# Environment (each optional):
#   ALEXNET=alexnet=random:0   ZFNET=zfnet=random:0   models as ARCH=WEIGHTS or an .onnx file
#   IMAGE=assets/sample.jpg    the input for the activation and occlusion pictures
#   IMAGES=DIR_OR_LIST         images for the never-fire count and the top-9 scan (default: IMAGE)
set -euo pipefail
cd "$(dirname "$0")/.."
Z=${ZFVIZ:-build/tools/zfviz}
out="${1:-docs/images}"
ALEXNET="${ALEXNET:-alexnet=random:0}"
ZFNET="${ZFNET:-zfnet=random:0}"
IMAGE="${IMAGE:-assets/sample.jpg}"
IMAGES="${IMAGES:-$IMAGE}"
[ -x "$Z" ] || { echo "make-doc-images: $Z not found: build first (cmake --build build)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "alexnet=W" -> --arch alexnet --weights W; "f.onnx" -> --model f.onnx
model_args() {
  case "$1" in
    *.onnx) echo "--model $1" ;;
    *=*) echo "--arch ${1%%=*} --weights ${1#*=}" ;;
    *) echo "--arch $1 --weights random:0" ;;
  esac
}
has_command() { "$Z" "$1" --help >/dev/null 2>&1; }
skipped=()

# shellcheck disable=SC2046
"$Z" filters $(model_args "$ALEXNET") --layer conv1 --labels index -o "$out/filters-alexnet-conv1.png"
# shellcheck disable=SC2046
"$Z" filters $(model_args "$ZFNET") --layer conv1 --labels index -o "$out/filters-zfnet-conv1.png"
"$Z" compare "$ALEXNET" "$ZFNET" --images "$IMAGES" -o "$out/compare-conv1.png"
# shellcheck disable=SC2046
"$Z" activations $(model_args "$ZFNET") --input "$IMAGE" --layer relu1 --max 48 -o "$out/activations-zfnet-relu1.png"

# The occlusion figure (ZF Fig. 7), written by zfviz occlude itself.
if has_command occlude && "$Z" occlude --help | grep -q -- '--png'; then
  # shellcheck disable=SC2046
  "$Z" occlude $(model_args "$ZFNET") --input "$IMAGE" --patch 32 --stride 8 --out "$tmp/occl" \
    --png "$out/occlusion-zfnet.png"
else
  skipped+=("occlusion figure (zfviz occlude --png is not in this build)")
fi

# A top-9 sheet (ZF Fig. 2) from a scan of IMAGES (one example per image: give a folder for nine).
if has_command scan && has_command sheet; then
  scan_images="$IMAGES"
  if [ -f "$IMAGES" ] && [[ "${IMAGES,,}" =~ \.(jpe?g|png)$ ]]; then
    realpath "$IMAGES" > "$tmp/images.txt"
    scan_images="$tmp/images.txt"
  fi
  # shellcheck disable=SC2046
  "$Z" scan $(model_args "$ZFNET") --images "$scan_images" --db "$tmp/scan.db" --layers conv5 >/dev/null
  "$Z" sheet --db "$tmp/scan.db" --layer conv5 --top-units 4 -o "$out/top9-zfnet-conv5.png"
else
  skipped+=("top-9 sheet (zfviz scan/sheet are not in this build)")
fi

# Zeiler & Fergus Fig. 5 (zfviz invariance) on the embedded zfnet-mini over five Fashion-MNIST test
# images of different classes, which zfviz demo --quick writes out (it needs Fashion-MNIST).
if has_command invariance && has_command demo && "$Z" demo --quick -o "$tmp/demo" >/dev/null 2>&1; then
  d="$tmp/demo/images"
  "$Z" invariance --model zfnet-mini "$d/00009-Sneaker.png" "$d/00000-Ankle-boot.png" "$d/00002-Trouser.png" \
    "$d/00001-Pullover.png" "$d/00018-Bag.png" --out "$tmp/invariance" --width 1100 >/dev/null
  cp "$tmp/invariance/invariance.png" "$out/invariance-zfnet-mini.png"
else
  skipped+=("invariance figure (zfviz invariance or Fashion-MNIST for zfviz demo is missing)")
fi

ls -l "$out"
for s in "${skipped[@]}"; do echo "make-doc-images: skipped the $s" >&2; done
