/* The scan's fold on the device, the twin of the CPU engine's (cpu_fold_* in core/engine_cpu.c): a
 * scan's per-unit accumulators (zf/fold.h) kept on the device between commits, each batch's plane
 * summaries (cuda/stats.cu) folded into them in image order by zf_fold_plane, the code the host
 * folds with, one thread a unit; the batch's histogram counts added into the units' 64-bit ones.
 * Nothing crosses to the host but the images' places and classes, until a commit reads it all. */
#include "internal.h"
#include "zf/fold.h"

__global__ static void fold_kernel(zf_fold_acc a, const zf_plane_stats *planes, int n, const int64_t *seqs,
                                   const int32_t *classes)
{
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < a.units; c += gridDim.x * blockDim.x)
        for (int i = 0; i < n; i++)
            zf_fold_plane(&a, c, seqs[i], classes ? classes[i] : -1, &planes[(size_t)i * a.units + c]);
}

__global__ static void hist_add_kernel(int64_t *acc, const uint32_t *batch, size_t count)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        acc[i] += batch[i];
}

extern "C" zf_status zf_cuda_fold(zf_cuda_ctx *ctx, const zf_fold_acc *acc, const zf_plane_stats *planes, int n,
                                  const int64_t *seqs, const int32_t *classes, const uint32_t *hist)
{
    if (n < 1 || acc->units < 1)
        return zf_error(ZF_ERR_ARG, "a fold of %d images into %d units", n, acc->units);
    const int threads = 128, blocks = (acc->units + threads - 1) / threads;
    fold_kernel<<<blocks, threads, 0, ctx->stream>>>(*acc, planes, n, seqs, classes);
    ZF_LAUNCHED("fold");
    const size_t count = (size_t)acc->units * ZF_HIST_BINS;
    const unsigned hb = (unsigned)((count + 255) / 256 < 4096 ? (count + 255) / 256 : 4096);
    hist_add_kernel<<<hb, 256, 0, ctx->stream>>>(acc->hist, hist, count);
    ZF_LAUNCHED("hist_add");
    return ZF_OK;
}
