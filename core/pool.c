/* Max-pooling with switches, unpooling, average and adaptive average pooling on the CPU. */
#include <string.h>

#include "zf/ops.h"

void zf_maxpool_forward(float *out, int32_t *switches, const float *in, const zf_pool_geom *g)
{
    const int planes = g->n * g->c;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        const float *src = in + (size_t)p * g->h * g->w;
        float *dst = out + (size_t)p * g->oh * g->ow;
        int32_t *sw = switches + (size_t)p * g->oh * g->ow;
        for (int oy = 0; oy < g->oh; oy++) {
            int y0 = oy * g->sh - g->pt, y1 = y0 + g->kh;
            if (y0 < 0)
                y0 = 0;
            if (y1 > g->h)
                y1 = g->h;
            for (int ox = 0; ox < g->ow; ox++) {
                int x0 = ox * g->sw - g->pl, x1 = x0 + g->kw;
                if (x0 < 0)
                    x0 = 0;
                if (x1 > g->w)
                    x1 = g->w;
                if (y0 >= y1 || x0 >= x1) {
                    dst[oy * g->ow + ox] = 0.0f;
                    sw[oy * g->ow + ox] = -1;
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
                dst[oy * g->ow + ox] = best;
                sw[oy * g->ow + ox] = best_i;
            }
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
            const int ys = oy * g->sh - g->pt;
            /* As PyTorch: the divisor counts the window clipped to the padded input. */
            const int ye_pad = ys + g->kh < g->h + g->pb ? ys + g->kh : g->h + g->pb;
            const int y0 = ys < 0 ? 0 : ys, y1 = ys + g->kh < g->h ? ys + g->kh : g->h;
            for (int ox = 0; ox < g->ow; ox++) {
                const int xs = ox * g->sw - g->pl;
                const int xe_pad = xs + g->kw < g->w + g->pr ? xs + g->kw : g->w + g->pr;
                const int x0 = xs < 0 ? 0 : xs, x1 = xs + g->kw < g->w ? xs + g->kw : g->w;
                double s = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        s += src[y * g->w + x];
                const int div = count_include_pad ? (ye_pad - ys) * (xe_pad - xs) : (y1 - y0) * (x1 - x0);
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
