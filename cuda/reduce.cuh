/* Block-wide reductions shared by the kernels of several files (header-only: device code is not
 * linked across translation units). Every one is deterministic: a fixed tree over fixed shares. */
#ifndef ZF_CUDA_REDUCE_CUH
#define ZF_CUDA_REDUCE_CUH

#include <math.h>
#include <stdint.h>

/* First maximum (S = 1) or minimum (S = -1) of x[0..len) as the CPU scans it (a later element
 * replaces the best only when strictly greater, or less; a NaN at index 0 is never replaced, a
 * later NaN never wins): its index. Every thread of the block must call it; blockDim.x must be a
 * power of two no larger than ZF_RED_MAX. */
#define ZF_RED_MAX 256
template <int S> __device__ static inline int zf_block_first_extreme(const float *x, int len)
{
    __shared__ float sv[ZF_RED_MAX];
    __shared__ int si[ZF_RED_MAX];
    const int t = threadIdx.x;
    float best = 0.0f; /* S * the value: negation is exact, and keeps NaN a NaN */
    int bi = -1;
    for (int j = t; j < len; j += blockDim.x) {
        const float v = S * x[j];
        if ((bi < 0 && !isnan(v)) || v > best) {
            best = v;
            bi = j;
        }
    }
    sv[t] = best;
    si[t] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) {
            const int oi = si[t + s];
            const float ov = sv[t + s];
            if (oi >= 0 && (si[t] < 0 || ov > sv[t] || (ov == sv[t] && oi < si[t]))) {
                sv[t] = ov;
                si[t] = oi;
            }
        }
        __syncthreads();
    }
    const int r = (len > 0 && isnan(x[0])) || si[0] < 0 ? 0 : si[0];
    __syncthreads(); /* the shared arrays may be reused by the caller's next call */
    return r;
}
__device__ static inline int zf_block_first_max(const float *x, int len) { return zf_block_first_extreme<1>(x, len); }

/* Sum over the block of one double per thread (same tree every time). */
__device__ static inline double zf_block_sum(double v)
{
    __shared__ double s[ZF_RED_MAX];
    const int t = threadIdx.x;
    s[t] = v;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (t < k)
            s[t] += s[t + k];
        __syncthreads();
    }
    const double r = s[0];
    __syncthreads();
    return r;
}

#endif
