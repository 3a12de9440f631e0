/* Max-pooling with switches, unpooling, average and adaptive average pooling on the CPU. */
#include <string.h>

#include "pool_internal.h"
#include "simd_internal.h"
#include "zf/ops.h"
#include "kernels_internal.h" /* last: this copy's names for the kernel functions */

/* One output row's windows clamped to the map (borders, or any row when the interior is empty). */
static void maxpool_row_clamped(float *dst, int32_t *sw, const float *src, const zf_pool_geom *g, int y0, int y1,
                                int ox_begin, int ox_end)
{
    for (int ox = ox_begin; ox < ox_end; ox++) {
        int x0 = ox * g->sw - g->pl, x1 = x0 + g->kw;
        if (x0 < 0)
            x0 = 0;
        if (x1 > g->w)
            x1 = g->w;
        if (y0 >= y1 || x0 >= x1) {
            dst[ox] = 0.0f;
            sw[ox] = -1;
            continue;
        }
        /* First maximum in row-major order: only a strictly greater value replaces it. */
        int32_t best_i = y0 * g->w + x0;
        float best = src[best_i];
        for (int y = y0; y < y1; y++) {
            const float *row = src + y * g->w;
            for (int x = x0; x < x1; x++) {
                /* branch-free select: on random data the branch mispredicts */
                const int gt = row[x] > best;
                best = gt ? row[x] : best;
                best_i = gt ? y * g->w + x : best_i;
            }
        }
        dst[ox] = best;
        sw[ox] = best_i;
    }
}

/* Outputs [ox_lo, ox_hi) of one row whose windows lie inside the map. rows is the window's top
 * row; output ox's window starts at column ox * sx + off of it, base is that row's index in the
 * plane. With AVX2 and stride 1 or 2, eight outputs at a time keep their running maximum and its
 * index in registers while the window is visited in row-major order (one output at a time is a
 * chain of dependent selects, and the compiler does not vectorise the strided loads itself). */
static void maxpool_row_interior(float *dst, int32_t *sw, const float *rows, int32_t base, int w, int kh, int kw,
                                 int sx, int off, int ox_lo, int ox_hi)
{
    int ox = ox_lo;
#ifdef __AVX2__
    if (sx == 1 || sx == 2) {
        const __m256i lane = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(sx));
        /* a block's loads reach column (ox + 7) * sx + off + kw - 1, plus one more for stride 2 */
        for (; ox + 8 <= ox_hi && (ox + 7) * sx + off + kw - 1 + (sx == 2) < w; ox += 8) {
            const int x0 = ox * sx + off;
            __m256 best = _mm256_set1_ps(0.0f);
            __m256i bi = _mm256_setzero_si256();
            for (int y = 0; y < kh; y++) {
                for (int kx = 0; kx < kw; kx++) {
                    const float *p = rows + (size_t)y * w + x0 + kx;
                    __m256 v;
                    if (sx == 1) {
                        v = _mm256_loadu_ps(p);
                    } else {
                        v = zf_load8_stride2(p);
                    }
                    const __m256i vi = _mm256_add_epi32(_mm256_set1_epi32(base + y * w + x0 + kx), lane);
                    if (y == 0 && kx == 0) {
                        best = v;
                        bi = vi;
                        continue;
                    }
                    /* first maximum: only a strictly greater value replaces it */
                    const __m256 gt = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
                    best = _mm256_blendv_ps(best, v, gt);
                    bi = _mm256_castps_si256(
                        _mm256_blendv_ps(_mm256_castsi256_ps(bi), _mm256_castsi256_ps(vi), gt));
                }
            }
            _mm256_storeu_ps(dst + ox, best);
            _mm256_storeu_si256((__m256i *)(sw + ox), bi);
        }
    }
#endif
    for (; ox < ox_hi; ox++) {
        const int x0 = ox * sx + off;
        int32_t best_i = base + x0;
        float best = rows[x0];
        for (int y = 0; y < kh; y++) {
            for (int kx = 0; kx < kw; kx++) {
                const float v = rows[(size_t)y * w + x0 + kx];
                const int gt = v > best;
                best = gt ? v : best;
                best_i = gt ? base + y * w + x0 + kx : best_i;
            }
        }
        dst[ox] = best;
        sw[ox] = best_i;
    }
}

void zf_maxpool_forward(float *out, int32_t *switches, const float *in, const zf_pool_geom *g)
{
    const int planes = g->n * g->c;
    /* Outputs [ox_lo, ox_hi) have their whole window inside the row (maxpool_row_interior). */
    int ox_lo = g->pl > 0 ? (g->pl + g->sw - 1) / g->sw : 0;
    int ox_hi = g->w >= g->kw - g->pl ? (g->w - g->kw + g->pl) / g->sw + 1 : 0;
    if (ox_hi > g->ow)
        ox_hi = g->ow;
    if (ox_lo > ox_hi)
        ox_lo = ox_hi;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        const float *src = in + (size_t)p * g->h * g->w;
        for (int oy = 0; oy < g->oh; oy++) {
            float *dst = out + ((size_t)p * g->oh + oy) * g->ow;
            int32_t *sw = switches + ((size_t)p * g->oh + oy) * g->ow;
            int y0 = oy * g->sh - g->pt, y1 = y0 + g->kh;
            if (y0 < 0)
                y0 = 0;
            if (y1 > g->h)
                y1 = g->h;
            if (y0 >= y1 || ox_lo >= ox_hi) {
                maxpool_row_clamped(dst, sw, src, g, y0, y1, 0, g->ow);
                continue;
            }
            maxpool_row_clamped(dst, sw, src, g, y0, y1, 0, ox_lo);
            maxpool_row_clamped(dst, sw, src, g, y0, y1, ox_hi, g->ow);
            const float *rows = src + (size_t)y0 * g->w;
            const int32_t base = y0 * g->w;
            const int off = -g->pl;
            maxpool_row_interior(dst, sw, rows, base, g->w, y1 - y0, g->kw, g->sw, off, ox_lo, ox_hi);
        }
    }
}

void zf_maxpool_unpool(float *din, const float *dout, const int32_t *switches, const zf_pool_geom *g)
{
    const int planes = g->n * g->c;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        float *dst = din + (size_t)p * g->h * g->w;
        const float *src = dout + (size_t)p * g->oh * g->ow;
        const int32_t *sw = switches + (size_t)p * g->oh * g->ow;
        memset(dst, 0, sizeof(float) * g->h * g->w);
        for (int i = 0; i < g->oh * g->ow; i++)
            if (sw[i] >= 0)
                dst[sw[i]] += src[i];
    }
}

void zf_avgpool_forward(float *out, const float *in, const zf_pool_geom *g, int count_include_pad)
{
    const int planes = g->n * g->c;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        const float *src = in + (size_t)p * g->h * g->w;
        float *dst = out + (size_t)p * g->oh * g->ow;
        for (int oy = 0; oy < g->oh; oy++) {
            /* As PyTorch: the divisor counts the window clipped to the padded input. */
            const zf_avg_span ys = zf_avgpool_span(oy, g->sh, g->kh, g->pt, g->pb, g->h);
            for (int ox = 0; ox < g->ow; ox++) {
                const zf_avg_span xs = zf_avgpool_span(ox, g->sw, g->kw, g->pl, g->pr, g->w);
                double s = 0;
                for (int y = ys.lo; y < ys.hi; y++)
                    for (int x = xs.lo; x < xs.hi; x++)
                        s += src[y * g->w + x];
                const int div = zf_avgpool_div(ys, xs, count_include_pad);
                dst[oy * g->ow + ox] = div > 0 ? (float)(s / div) : 0.0f;
            }
        }
    }
}

static inline int bin_start(int i, int in, int out) { return (int)(((long long)i * in) / out); }
static inline int bin_end(int i, int in, int out)
{
    return (int)(((long long)(i + 1) * in + out - 1) / out);
}

void zf_adaptive_avgpool_forward(float *out, const float *in, int n, int c, int h, int w, int oh, int ow)
{
    const int planes = n * c;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        const float *src = in + (size_t)p * h * w;
        float *dst = out + (size_t)p * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            int y0 = bin_start(oy, h, oh), y1 = bin_end(oy, h, oh);
            for (int ox = 0; ox < ow; ox++) {
                int x0 = bin_start(ox, w, ow), x1 = bin_end(ox, w, ow);
                double s = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        s += src[y * w + x];
                dst[oy * ow + ox] = (float)(s / ((y1 - y0) * (x1 - x0)));
            }
        }
    }
}

void zf_adaptive_avgpool_backward(float *din, const float *dout, int n, int c, int h, int w, int oh,
                                  int ow)
{
    const int planes = n * c;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        float *dst = din + (size_t)p * h * w;
        const float *src = dout + (size_t)p * oh * ow;
        memset(dst, 0, sizeof(float) * h * w);
        for (int oy = 0; oy < oh; oy++) {
            int y0 = bin_start(oy, h, oh), y1 = bin_end(oy, h, oh);
            for (int ox = 0; ox < ow; ox++) {
                int x0 = bin_start(ox, w, ow), x1 = bin_end(ox, w, ow);
                float v = src[oy * ow + ox] / (float)((y1 - y0) * (x1 - x0));
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        dst[y * w + x] += v;
            }
        }
    }
}
