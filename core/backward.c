/* Backward passes of the CPU ops for training: convolution weights, fully connected, ReLU,
 * dropout, average pooling, softmax with cross-entropy. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "conv_internal.h"
#include "gemm_internal.h"
#include "pool_internal.h"
#include "util_internal.h"
#include "zf/backward.h"

/* The weight gradient batches images per GEMM exactly as the forward does (zf_conv_images_per_gemm):
 * it reduces over the columns, so wider chunks only lengthen the reduction (4096 to 16384 columns
 * measured no faster at alexnet-mini's conv1 and conv2) and cost more scratch. */
size_t zf_conv_backward_weights_ws_floats(const zf_conv_geom *g) { return zf_conv_workspace_floats(g); }

/* Sum of n floats in 8 interleaved partial sums: the compiler may not reorder a float sum itself,
 * but this order it can vectorise, and it rounds no worse than the sequential sum. */
static float sum_f32(const float *x, int n)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += x[i + j];
    float s = 0.0f;
    for (; i < n; i++)
        s += x[i];
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}

void zf_conv_backward_weights(float *dw, float *db, const float *in, const float *dout,
                              const zf_conv_geom *g, float *ws)
{
    const int nb_max = zf_conv_images_per_gemm(g);
    const int ohw = g->oh * g->ow;
    const int cg = g->c / g->groups, kg = g->k / g->groups;
    const int kdim = cg * g->kh * g->kw;
    const size_t in_img = (size_t)g->c * g->h * g->w, out_img = (size_t)g->k * ohw;

    if (g->n == 0)
        memset(dw, 0, sizeof(float) * g->k * kdim);
    for (int n0 = 0; n0 < g->n; n0 += nb_max) {
        const int nb = g->n - n0 < nb_max ? g->n - n0 : nb_max;
        const size_t cols = (size_t)nb * ohw;
        float *col = ws;
        zf_conv_im2col(col, in + n0 * in_img, nb, g);
        const float *src = zf_conv_gather_dout(ws + (size_t)g->c * g->kh * g->kw * cols, dout, n0, nb, g);
        /* The first chunk overwrites dw, later ones add to it. */
        const float beta = n0 == 0 ? 0.0f : 1.0f;
        for (int gi = 0; gi < g->groups; gi++) {
            /* dw_g (kg, kdim) += dout_g (kg, cols) . col_g^T (cols, kdim) */
            zf_sgemm('N', 'T', kg, kdim, (int)cols, 1.0f, src + (size_t)gi * kg * cols, (int)cols,
                     col + (size_t)gi * kdim * cols, (int)cols, beta, dw + (size_t)gi * kg * kdim, kdim);
        }
    }
    if (db) {
#pragma omp parallel for schedule(static)
        for (int ch = 0; ch < g->k; ch++) {
            double s = 0;
            for (int img = 0; img < g->n; img++) {
                const float *d = dout + img * out_img + (size_t)ch * ohw;
                s += sum_f32(d, ohw);
            }
            db[ch] = (float)s;
        }
    }
}

void zf_fc_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                    const float *w, int n, int in_f, int out_f)
{
    if (n == 0) {
        memset(dw, 0, sizeof(float) * out_f * in_f);
        memset(db, 0, sizeof(float) * out_f);
        return;
    }
    /* dw (out_f, in_f) = dout^T (out_f, n) . in (n, in_f) */
    zf_sgemm('T', 'N', out_f, in_f, n, 1.0f, dout, out_f, in, in_f, 0.0f, dw, in_f);
    if (din) {
        if (n == 1) {
            /* din = w^T dout: memory-bound, sgemv reads the weights once */
            cblas_sgemv(CblasRowMajor, CblasTrans, out_f, in_f, 1.0f, w, in_f, dout, 1, 0.0f, din, 1);
        } else {
            /* din (n, in_f) = dout (n, out_f) . w (out_f, in_f) */
            zf_sgemm('N', 'N', n, in_f, out_f, 1.0f, dout, out_f, w, in_f, 0.0f, din, in_f);
        }
    }
    memcpy(db, dout, sizeof(float) * out_f);
    for (int i = 1; i < n; i++) {
        const float *d = dout + (size_t)i * out_f;
        for (int j = 0; j < out_f; j++)
            db[j] += d[j];
    }
}

void zf_relu_backward(float *din, const float *dout, const float *out, size_t count)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++)
        din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

uint64_t zf_dropout_key(uint64_t seed) { return zf_mix64(seed + ZF_GOLDEN); }

void zf_dropout_forward_train(float *out, uint8_t *mask, const float *in, size_t count, float p,
                              uint64_t seed)
{
    assert(p >= 0.0f && p < 1.0f);
    /* Element i keeps when the top 32 bits of its word are >= p * 2^32: probability 1-p to within
     * 2^-32. The key is mixed first so that nearby seeds give unrelated streams. */
    const uint64_t key = zf_dropout_key(seed);
    const uint64_t thr = (uint64_t)((double)p * 4294967296.0);
    const float scale = (float)(1.0 / (1.0 - (double)p));
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) {
        const uint64_t r = zf_mix64(key + (uint64_t)i * ZF_GOLDEN) >> 32;
        const int keep = r >= thr;
        mask[i] = (uint8_t)keep;
        out[i] = keep ? in[i] * scale : 0.0f;
    }
}

void zf_dropout_backward(float *din, const float *dout, const uint8_t *mask, size_t count, float p)
{
    const float scale = (float)(1.0 / (1.0 - (double)p));
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++)
        din[i] = mask[i] ? dout[i] * scale : 0.0f;
}

void zf_avgpool_backward(float *din, const float *dout, const zf_pool_geom *g, int count_include_pad)
{
    const int planes = g->n * g->c;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        float *dst = din + (size_t)p * g->h * g->w;
        const float *src = dout + (size_t)p * g->oh * g->ow;
        memset(dst, 0, sizeof(float) * g->h * g->w);
        for (int oy = 0; oy < g->oh; oy++) {
            /* The same windows and divisors as zf_avgpool_forward (pool.c). */
            const zf_avg_span ys = zf_avgpool_span(oy, g->sh, g->kh, g->pt, g->pb, g->h);
            for (int ox = 0; ox < g->ow; ox++) {
                const zf_avg_span xs = zf_avgpool_span(ox, g->sw, g->kw, g->pl, g->pr, g->w);
                const int div = zf_avgpool_div(ys, xs, count_include_pad);
                if (div <= 0 || ys.lo >= ys.hi || xs.lo >= xs.hi)
                    continue;
                const float v = src[oy * g->ow + ox] / (float)div;
                for (int y = ys.lo; y < ys.hi; y++)
                    for (int x = xs.lo; x < xs.hi; x++)
                        dst[y * g->w + x] += v;
            }
        }
    }
}

double zf_softmax_xent(float *prob, float *dlogits, const float *logits, const int32_t *labels,
                       int n, int k)
{
    double loss = 0;
    const double inv_n = 1.0 / n;
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * k;
        float *d = dlogits + (size_t)i * k;
        const int32_t y = labels[i];
        assert(y >= 0 && y < k);
        /* Subtracting the maximum keeps exp finite for any logits; double keeps the sum exact
         * enough that log(s) loses nothing when one class dominates. */
        float m = x[0];
        for (int j = 1; j < k; j++)
            m = x[j] > m ? x[j] : m;
        double s = 0;
        for (int j = 0; j < k; j++)
            s += exp((double)x[j] - m);
        const double inv_s = 1.0 / s;
        /* loss_i = log sum exp(x) - x_y = log(s) + m - x_y */
        loss += log(s) + ((double)m - x[y]);
        for (int j = 0; j < k; j++) {
            const double pj = exp((double)x[j] - m) * inv_s;
            if (prob)
                prob[(size_t)i * k + j] = (float)pj;
            d[j] = (float)((pj - (j == y)) * inv_n);
        }
    }
    return n > 0 ? loss / n : 0.0;
}
