#!/usr/bin/env bash
# Makes the benchmark's own virtual environment with OpenVINO and onnxruntime from PyPI (the peers
# of bench/run-cpu.sh). Nothing of zfviz or its tests uses it.
#   bench/peers-venv.sh [DIR]   (default: $ZF_PEERS_VENV or build-peers/venv; prints DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-${ZF_PEERS_VENV:-build-peers/venv}}"
if ! "$dir/bin/python" -c 'import openvino, onnxruntime, numpy' 2>/dev/null; then
  /usr/bin/python3 -m venv "$dir" >&2
  "$dir/bin/pip" install --quiet --upgrade pip >&2
  "$dir/bin/pip" install --quiet openvino onnxruntime numpy >&2
fi
echo "$dir"
