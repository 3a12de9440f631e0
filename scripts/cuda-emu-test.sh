#!/usr/bin/env bash
# Runs the CUDA engine's tests (tests/test_cuda.c) on a machine without a GPU: the engine's .cu files
# are rewritten into host C++ (kernels run block after block, tests/cuda-emu/launch2host.py), linked
# with host stand-ins for the CUDA runtime, cuDNN and cuBLAS that check pointers, extents, copy
# directions, descriptors, workspaces and math modes (tests/cuda-emu/fakes.cpp), and built with
# -fsanitize=address,undefined. The stand-in convolution is the CPU engine's, so this proves the
# engine's own kernels, indexing, buffer sizes, plans, deconvnet and occlusion crops, not cuDNN's
# numbers or anything about speed, and nothing about races. A GPU run (scripts/gpu-check.sh) is
# still the real check. About 5 minutes on 2 busy cores.
#   scripts/cuda-emu-test.sh [extra Criterion options]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
B="$ROOT/build-emu"
E="$ROOT/tests/cuda-emu"
CUDA_INC=${CUDA_INC:-/usr/local/cuda/include}
[ -f "$CUDA_INC/cudnn.h" ] || { echo "cuda-emu-test: needs the CUDA and cuDNN headers in $CUDA_INC" >&2; exit 1; }
BLAS_INC=/usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
INC=(-I"$ROOT/cuda/include" -I"$ROOT/core/include" -I"$ROOT/db/include" -I"$CUDA_INC" -I"$BLAS_INC")
rm -rf "$B" && mkdir -p "$B/src" "$B/obj"
python3 "$E/launch2host.py" "$ROOT/cuda" "$B/src"

pids=()
compile() { "$@" & pids+=($!); if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi; }
for f in "$B"/src/*.cpp "$E/fakes.cpp"; do
  compile g++ -std=c++17 -O1 -g $SAN -Wall -Wextra -Wno-unused-parameter -include "$E/prelude.h" -I"$B/src" \
    "${INC[@]}" -c "$f" -o "$B/obj/emu_$(basename "$f" .cpp).o"
done
# core as core/CMakeLists.txt builds it: the kernel files once per instruction set, with their
# ISA's suffix (kernels_internal.h), everything else once; kernels.c dispatches between them. The
# engine registry lists the CUDA engine linked into the program (ZF_CUDA_LINKED), not as the module
# that cuda/CMakeLists.txt builds.
KERNELS=" conv fc lrn pool winograd occlusion_conv occlusion_fc "
for f in "$ROOT"/core/*.c; do
  n=$(basename "$f" .c)
  # no oneDNN in the emulation: core's stub that declines every call stands in for it
  [ "$n" = dnnl ] && [ -f "$ROOT/core/dnnl_none.c" ] && continue
  if [[ "$KERNELS" == *" $n "* ]]; then
    for ia in sse=x86-64 avx2=x86-64-v3 avx512=x86-64-v4; do
      compile gcc -std=c11 -D_GNU_SOURCE -O1 -g $SAN -fopenmp -march="${ia#*=}" -DZF_ISA="${ia%%=*}" \
        "${INC[@]}" -c "$f" -o "$B/obj/core_${n}_${ia%%=*}.o"
    done
  else
    compile gcc -std=c11 -D_GNU_SOURCE -O1 -g $SAN -fopenmp -DZF_CUDA_LINKED=1 "${INC[@]}" -c "$f" \
      -o "$B/obj/core_$n.o"
  fi
done
# db, for the scan whose forward runs on the CUDA engine (test_cuda's cuda_scan)
for f in "$ROOT"/db/*.c; do
  compile gcc -std=c11 -D_GNU_SOURCE -O1 -g $SAN -fopenmp "${INC[@]}" -c "$f" -o "$B/obj/db_$(basename "$f" .c).o"
done
for f in "$ROOT/tests/test_cuda.c" "$ROOT/tests/testutil.c" "$ROOT/tests/op_cases.c"; do
  compile gcc -std=c11 -D_GNU_SOURCE -O1 -g $SAN -DZF_CUDA_ENABLED=1 "${INC[@]}" -I"$ROOT/tests" -c "$f" \
    -o "$B/obj/test_$(basename "$f" .c).o"
done
wait
g++ $SAN -fopenmp "$B"/obj/*.o -o "$B/test_cuda_emu" "$BLAS_LIB" -lcriterion -ljpeg -lpng -lz -ljansson -lsqlite3 -lnettle \
  -lpthread -lm

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# FP32 everywhere except the test that asks for TF32/BF16 on purpose.
EMU_EXPECT_MATH=fma "$B/test_cuda_emu" --jobs 2 --filter '!(cuda_nets/tf32*)' "$@"
"$B/test_cuda_emu" --jobs 1 --filter 'cuda_nets/tf32*' "$@"
