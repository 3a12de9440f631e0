/* The scan's per-plane statistics on the device, the twin of core/stats.c (zf/stats.h): one block
 * per plane (one channel of one image) makes what zf_plane_stats_compute makes on the CPU, to the
 * bit: the positive values' exact sum (their significands added by exponent in 64-bit integers,
 * then folded into the fixed-point sum as core/xsum.c folds its bins), how many are positive, the
 * first maximum and minimum as the CPU's scan finds them, and every value's histogram bin, added
 * into the channel's counts over the batch. Integer sums and first-index rules: nothing depends on
 * the order the threads run in. */
#include <string.h>

#include "internal.h"
#include "reduce.cuh"
#include "zf/stats.h"

__global__ static void plane_stats_kernel(const float *act, int hw, int units, zf_plane_stats *out,
                                          uint32_t *hist)
{
    __shared__ unsigned long long bins[256]; /* by biased exponent: the significands of values > 0 */
    __shared__ unsigned int counts[ZF_HIST_BINS];
    __shared__ unsigned int special;
    const int t = threadIdx.x, plane = blockIdx.x, c = plane % units;
    const float *p = act + (size_t)plane * hw;
    for (int j = t; j < 256; j += blockDim.x)
        bins[j] = 0;
    for (int j = t; j < ZF_HIST_BINS; j += blockDim.x)
        counts[j] = 0;
    if (t == 0)
        special = 0;
    __syncthreads();
    int npos = 0;
    for (int j = t; j < hw; j += blockDim.x) {
        const float v = p[j];
        atomicAdd(&counts[zf_hist_bin(v)], 1u);
        if (v > 0.0f) {
            npos++;
            int64_t m;
            const int e = zf_xsum_split(v, &m);
            if (e == 0xff)
                atomicOr(&special, (unsigned int)m);
            else
                atomicAdd(&bins[e], (unsigned long long)m); /* m < 2^24, hw < 2^31: no overflow */
        }
    }
    const double positive = zf_block_sum((double)npos); /* exact: a count below 2^53 */
    const int argmax = zf_block_first_extreme<1>(p, hw), argmin = zf_block_first_extreme<-1>(p, hw);
    __syncthreads();
    for (int j = t; j < ZF_HIST_BINS; j += blockDim.x)
        if (counts[j])
            atomicAdd(&hist[(size_t)c * ZF_HIST_BINS + j], counts[j]);
    if (t == 0) {
        zf_plane_stats r;
        memset(&r, 0, sizeof r);
        for (int e = 0; e < 256; e++)
            zf_xsum_add_shifted(&r.sum, (int64_t)bins[e], e ? e - 1 : 0);
        r.sum.special = special;
        r.positive = (int32_t)positive;
        /* the CPU's m = p[0], then the strictly greater: p[0] where it is a NaN, whose position
         * no value equals (0) */
        r.argmax = argmax;
        r.argmin = argmin;
        r.max = p[argmax];
        r.min = p[argmin];
        out[plane] = r;
    }
}

extern "C" zf_status zf_cuda_layer_stats(zf_cuda_ctx *ctx, const float *act, int n, int units, int hw,
                                         zf_plane_stats *planes, uint32_t *hist)
{
    if (n < 1 || units < 1 || hw < 1)
        return zf_error(ZF_ERR_ARG, "plane statistics of %d images x %d units x %d positions", n, units, hw);
    if ((uint64_t)n * (uint64_t)hw > UINT32_MAX)
        return zf_error(ZF_ERR_ARG, "plane statistics of %d images x %d positions at once: a count could overflow",
                        n, hw);
    const size_t blocks = (size_t)n * (size_t)units;
    if (blocks > 0x7fffffffu)
        return zf_error(ZF_ERR_ARG, "plane statistics of %zu planes at once", blocks);
    plane_stats_kernel<<<(unsigned)blocks, ZF_RED_MAX, 0, ctx->stream>>>(act, hw, units, planes, hist);
    ZF_LAUNCHED("plane_stats");
    return ZF_OK;
}
