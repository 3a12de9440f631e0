#!/usr/bin/env bash
# Sets zfviz up on a fresh Debian machine: installs the Debian packages it needs (only those
# missing), configures and builds in build/, then runs the main job (unless --no-run).
#   scripts/setup.sh              install, build, run the main job
#   scripts/setup.sh --deps-only  install what is missing, nothing else (what .ci/run uses)
#   scripts/setup.sh --no-run     install and build
set -euo pipefail
cd "$(dirname "$0")/.."

# Build and run: compiler, CMake, BLAS, image codecs, SQLite, cairo/pango (DejaVu: the face the
# pictures are drawn in), protobuf-c + ONNX schema, Fashion-MNIST (training, the demo), Open MPI
# (mpirun -np N zfviz scan; a build without it refuses to run as one rank of several).
# Tests only: Criterion, poppler-utils (pdfinfo), clang + libFuzzer (scripts/fuzz.sh), and Debian's PyTorch/ONNX to make fixtures.
PACKAGES=(
  build-essential cmake pkg-config
  libopenblas-dev libopenblas-openmp-dev libjpeg-dev libturbojpeg0-dev libpng-dev zlib1g-dev
  libsqlite3-dev sqlite3 libjansson-dev nettle-dev libdnnl-dev
  libcairo2-dev libpango1.0-dev fonts-dejavu-core dataset-fashion-mnist
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev libonnx-testdata
  libcriterion-dev poppler-utils chromium libmicrohttpd-dev
  libopenmpi-dev openmpi-bin
  clang libclang-rt-14-dev
  dataset-fashion-mnist
  python3-torch python3-torchvision python3-onnx python3-numpy python3-pil libtcmalloc-minimal4
)

mode=run
case "${1:-}" in
  --deps-only) mode=deps ;;
  --no-run) mode=build ;;
  "") ;;
  -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
  *) echo "setup.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi
[ "$mode" = deps ] && exit 0

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
[ "$mode" = build ] && exit 0

exec scripts/main-job.sh
