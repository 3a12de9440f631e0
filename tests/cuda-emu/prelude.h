/* Forced first include of the emulated CUDA engine (scripts/cuda-emu-test.sh): the real CUDA, cuDNN
 * and cuBLAS headers for types and prototypes (fakes.cpp implements them), the CUDA keywords
 * emptied, and kernels run one block after another with one thread each. Every kernel of the engine
 * is a grid-stride or block-stride loop, so this computes the same result as the GPU; what it
 * cannot show is races between threads (compute-sanitizer racecheck does, on a GPU). */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cudnn.h>
#include <cublas_v2.h>
#include <cmath>
#include <math.h>
#undef __global__
#undef __device__
#undef __shared__
#undef __host__
#define __global__
#define __device__
#define __host__
#define __shared__
#undef threadIdx
#undef blockIdx
#undef blockDim
#undef gridDim
struct emu_dim { unsigned x, y, z; };
extern thread_local emu_dim emu_threadIdx, emu_blockIdx, emu_blockDim, emu_gridDim;
#define threadIdx emu_threadIdx
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim
#define gridDim emu_gridDim
static inline void __syncthreads(void) {}
/* One thread at a time: the atomics are the plain operations, returning the old value. */
template <typename T> static inline T atomicAdd(T *p, T v)
{
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> static inline T atomicOr(T *p, T v)
{
    T old = *p;
    *p = old | v;
    return old;
}
using std::isnan;
void emu_kernel_launched(unsigned grid);
template <typename F> static void emu_launch(unsigned grid, F f)
{
    emu_kernel_launched(grid);
    emu_gridDim = {grid, 1, 1};
    emu_blockDim = {1, 1, 1};
    emu_threadIdx = {0, 0, 0};
    for (unsigned b = 0; b < grid; b++) {
        emu_blockIdx = {b, 0, 0};
        f();
    }
}
