#!/usr/bin/env bash
# The main job on a fresh machine (scripts/setup.sh runs it after building): print a network's
# layer table, run a forward pass and a deconvnet projection of the bundled sample image, then the
# demo (every figure of the two embedded mini nets on Fashion-MNIST, as PNGs and one PDF; see
# docs/demo.md), and write the results to out/ (or the folder given as $1).
set -euo pipefail
cd "$(dirname "$0")/.."
Z=build/tools/zfviz
out="${1:-out}"
mkdir -p "$out"

$Z info --arch alexnet
echo
$Z forward --arch zfnet --weights random:0 --input assets/sample.jpg --dump conv1,relu5,prob --out "$out/forward"
$Z deconv --arch zfnet --weights random:0 --input assets/sample.jpg --layer conv5 --channel 0 --out "$out/deconv_conv5_c0.npy"
echo
$Z demo -o "$out/demo"
echo "main job done: results in $out/, the demo's report in $out/demo/demo.pdf"
