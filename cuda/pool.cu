/* Max-pooling with switches, unpooling, average and adaptive average pooling on the GPU: one
 * thread per output (per input for unpooling), each doing exactly what core/pool.c does for it,
 * in the same order, so that the results match the CPU bit for bit. */
#include "internal.h"

__global__ static void maxpool_kernel(float *out, int32_t *switches, const float *in, zf_pool_geom g)
{
    const size_t total = (size_t)g.n * g.c * g.oh * g.ow;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int ox = (int)(i % g.ow), oy = (int)((i / g.ow) % g.oh);
        const size_t p = i / ((size_t)g.oh * g.ow);
        const float *src = in + p * g.h * g.w;
        int y0 = oy * g.sh - g.pt, y1 = y0 + g.kh, x0 = ox * g.sw - g.pl, x1 = x0 + g.kw;
        y0 = y0 < 0 ? 0 : y0;
        y1 = y1 > g.h ? g.h : y1;
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > g.w ? g.w : x1;
        int32_t best_i = -1;
        float best = 0.0f;
        /* First maximum in row-major order over the unpadded positions. */
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                const float v = src[y * g.w + x];
                if (best_i < 0 || v > best) {
                    best = v;
                    best_i = y * g.w + x;
                }
            }
        out[i] = best;
        switches[i] = best_i;
    }
}

extern "C" zf_status zf_cuda_maxpool_forward(zf_cuda_ctx *ctx, float *out, int32_t *switches, const float *in,
                                             const zf_pool_geom *g)
{
    const size_t total = (size_t)g->n * g->c * g->oh * g->ow;
    if (total == 0)
        return ZF_OK;
    maxpool_kernel<<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(out, switches, in, *g);
    ZF_LAUNCHED("maxpool");
    return ZF_OK;
}

/* Smallest o with o * s - pad + k > v (the first window reaching v), and the largest with
 * o * s - pad <= v (the last window starting at or before it). */
__device__ static inline int first_window(int v, int k, int s, int pad)
{
    const int num = v + pad - k + 1;
    return num <= 0 ? 0 : (num + s - 1) / s;
}

/* A gather: each input position adds, in increasing output order as the CPU's scatter does, the
 * outputs whose switch points at it. Only windows that contain the position can. */
__global__ static void unpool_kernel(float *din, const float *dout, const int32_t *switches, zf_pool_geom g)
{
    const size_t total = (size_t)g.n * g.c * g.h * g.w;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int x = (int)(i % g.w), y = (int)((i / g.w) % g.h);
        const size_t p = i / ((size_t)g.h * g.w);
        const int32_t idx = y * g.w + x;
        const float *src = dout + p * g.oh * g.ow;
        const int32_t *sw = switches + p * g.oh * g.ow;
        int oy0 = first_window(y, g.kh, g.sh, g.pt), oy1 = (y + g.pt) / g.sh;
        int ox0 = first_window(x, g.kw, g.sw, g.pl), ox1 = (x + g.pl) / g.sw;
        oy1 = oy1 > g.oh - 1 ? g.oh - 1 : oy1;
        ox1 = ox1 > g.ow - 1 ? g.ow - 1 : ox1;
        float acc = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++) {
                const int o = oy * g.ow + ox;
                if (sw[o] == idx)
                    acc += src[o];
            }
        din[i] = acc;
    }
}

extern "C" zf_status zf_cuda_maxpool_unpool(zf_cuda_ctx *ctx, float *din, const float *dout, const int32_t *switches,
                                            const zf_pool_geom *g)
{
    const size_t total = (size_t)g->n * g->c * g->h * g->w;
    if (total == 0)
        return ZF_OK;
    unpool_kernel<<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(din, dout, switches, *g);
    ZF_LAUNCHED("unpool");
    return ZF_OK;
}

/* Average pooling's window along one axis for output o: the span [lo, hi) clipped to the input and
 * the extent the divisor counts with padding (as PyTorch: the window clipped to the padded input). */
__device__ static inline void avg_span(int o, int s, int k, int pad_lo, int pad_hi, int len, int *lo, int *hi,
                                       int *padded)
{
    const int start = o * s - pad_lo;
    const int end_pad = start + k < len + pad_hi ? start + k : len + pad_hi;
    *lo = start < 0 ? 0 : start;
    *hi = start + k < len ? start + k : len;
    *padded = end_pad - start;
}

__global__ static void avgpool_kernel(float *out, const float *in, zf_pool_geom g, int count_include_pad)
{
    const size_t total = (size_t)g.n * g.c * g.oh * g.ow;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int ox = (int)(i % g.ow), oy = (int)((i / g.ow) % g.oh);
        const size_t p = i / ((size_t)g.oh * g.ow);
        const float *src = in + p * g.h * g.w;
        int y0, y1, yp, x0, x1, xp;
        avg_span(oy, g.sh, g.kh, g.pt, g.pb, g.h, &y0, &y1, &yp);
        avg_span(ox, g.sw, g.kw, g.pl, g.pr, g.w, &x0, &x1, &xp);
        double s = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                s += src[y * g.w + x];
        const int div = count_include_pad ? yp * xp : (y1 - y0) * (x1 - x0);
        out[i] = div > 0 ? (float)(s / div) : 0.0f;
    }
}

extern "C" zf_status zf_cuda_avgpool_forward(zf_cuda_ctx *ctx, float *out, const float *in, const zf_pool_geom *g,
                                             int count_include_pad)
{
    const size_t total = (size_t)g->n * g->c * g->oh * g->ow;
    if (total == 0)
        return ZF_OK;
    avgpool_kernel<<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(out, in, *g, count_include_pad);
    ZF_LAUNCHED("avgpool");
    return ZF_OK;
}

__device__ static inline int bin_start(int i, int in, int out) { return (int)(((long long)i * in) / out); }
__device__ static inline int bin_end(int i, int in, int out) { return (int)(((long long)(i + 1) * in + out - 1) / out); }

__global__ static void adaptive_avgpool_kernel(float *out, const float *in, size_t planes, int h, int w, int oh,
                                               int ow)
{
    const size_t total = planes * oh * ow;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int ox = (int)(i % ow), oy = (int)((i / ow) % oh);
        const size_t p = i / ((size_t)oh * ow);
        const float *src = in + p * h * w;
        const int y0 = bin_start(oy, h, oh), y1 = bin_end(oy, h, oh);
        const int x0 = bin_start(ox, w, ow), x1 = bin_end(ox, w, ow);
        double s = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                s += src[y * w + x];
        out[i] = (float)(s / ((y1 - y0) * (x1 - x0)));
    }
}

extern "C" zf_status zf_cuda_adaptive_avgpool_forward(zf_cuda_ctx *ctx, float *out, const float *in, int n, int c,
                                                      int h, int w, int oh, int ow)
{
    const size_t planes = (size_t)n * c, total = planes * oh * ow;
    if (total == 0)
        return ZF_OK;
    adaptive_avgpool_kernel<<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(out, in, planes, h, w, oh, ow);
    ZF_LAUNCHED("adaptive_avgpool");
    return ZF_OK;
}

/* A gather: each input position adds dout / divisor of every window that holds it, in increasing
 * output order as the CPU's scatter (zf_avgpool_backward) does, so the sums are the same. */
__global__ static void avgpool_backward_kernel(float *din, const float *dout, zf_pool_geom g, int count_include_pad)
{
    const size_t total = (size_t)g.n * g.c * g.h * g.w;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int x = (int)(i % g.w), y = (int)((i / g.w) % g.h);
        const size_t p = i / ((size_t)g.h * g.w);
        const float *src = dout + p * g.oh * g.ow;
        int oy0 = first_window(y, g.kh, g.sh, g.pt), oy1 = (y + g.pt) / g.sh;
        int ox0 = first_window(x, g.kw, g.sw, g.pl), ox1 = (x + g.pl) / g.sw;
        oy1 = oy1 > g.oh - 1 ? g.oh - 1 : oy1;
        ox1 = ox1 > g.ow - 1 ? g.ow - 1 : ox1;
        float acc = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++) {
            int ylo, yhi, yp;
            avg_span(oy, g.sh, g.kh, g.pt, g.pb, g.h, &ylo, &yhi, &yp);
            if (y < ylo || y >= yhi)
                continue;
            for (int ox = ox0; ox <= ox1; ox++) {
                int xlo, xhi, xp;
                avg_span(ox, g.sw, g.kw, g.pl, g.pr, g.w, &xlo, &xhi, &xp);
                if (x < xlo || x >= xhi)
                    continue;
                const int div = count_include_pad ? yp * xp : (yhi - ylo) * (xhi - xlo);
                if (div > 0)
                    acc += src[oy * g.ow + ox] / (float)div;
            }
        }
        din[i] = acc;
    }
}

extern "C" zf_status zf_cuda_avgpool_backward(zf_cuda_ctx *ctx, float *din, const float *dout, const zf_pool_geom *g,
                                              int count_include_pad)
{
    const size_t total = (size_t)g->n * g->c * g->h * g->w;
    if (total == 0)
        return ZF_OK;
    avgpool_backward_kernel<<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(din, dout, *g, count_include_pad);
    ZF_LAUNCHED("avgpool_backward");
    return ZF_OK;
}

/* The same gather for adaptive average pooling (zf_adaptive_avgpool_backward). */
__global__ static void adaptive_avgpool_backward_kernel(float *din, const float *dout, size_t planes, int h, int w,
                                                        int oh, int ow)
{
    const size_t total = planes * h * w;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int x = (int)(i % w), y = (int)((i / w) % h);
        const size_t p = i / ((size_t)h * w);
        const float *src = dout + p * oh * ow;
        float acc = 0.0f;
        for (int oy = 0; oy < oh; oy++) {
            const int y0 = bin_start(oy, h, oh), y1 = bin_end(oy, h, oh);
            if (y < y0 || y >= y1)
                continue;
            for (int ox = 0; ox < ow; ox++) {
                const int x0 = bin_start(ox, w, ow), x1 = bin_end(ox, w, ow);
                if (x >= x0 && x < x1)
                    acc += src[oy * ow + ox] / (float)((y1 - y0) * (x1 - x0));
            }
        }
        din[i] = acc;
    }
}

extern "C" zf_status zf_cuda_adaptive_avgpool_backward(zf_cuda_ctx *ctx, float *din, const float *dout, int n, int c,
                                                       int h, int w, int oh, int ow)
{
    const size_t planes = (size_t)n * c, total = planes * h * w;
    if (total == 0)
        return ZF_OK;
    adaptive_avgpool_backward_kernel<<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(din, dout, planes, h, w, oh, ow);
    ZF_LAUNCHED("adaptive_avgpool_backward");
    return ZF_OK;
}
