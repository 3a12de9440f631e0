/* Local response normalisation across channels (Caffe/PyTorch/ONNX convention, see ops.h). */
#include <math.h>
#include <string.h>

#include "zf/ops.h"
#include "kernels_internal.h" /* last: this copy's names for the kernel functions */

/* Positions per chunk: the window sums for one channel live on the stack. */
#define LRN_CHUNK 1024

static inline float inv_pow(float s, float beta)
{
    /* s^-0.75 = 1 / sqrt(s * sqrt(s)): two correctly rounded square roots, and it vectorises. */
    if (beta == 0.75f)
        return 1.0f / sqrtf(s * sqrtf(s));
    return powf(s, -beta);
}

/* The channels [*j0, *j1) of channel i's window (clipped to the c channels), and in sum[0..len)
 * the sum of their squares at each of the len positions from base (channel stride hw). */
static inline void window_sumsq(float *sum, int *j0, int *j1, const float *base, int i, int c, int hw,
                                int len, const zf_lrn_params *p)
{
    int a = i - p->front, b = a + p->size;
    if (a < 0)
        a = 0;
    if (b > c)
        b = c;
    memset(sum, 0, sizeof(float) * len);
    for (int j = a; j < b; j++) {
        const float *x = base + (size_t)j * hw;
        for (int q = 0; q < len; q++)
            sum[q] += x[q] * x[q];
    }
    *j0 = a;
    *j1 = b;
}

void zf_lrn_forward(float *out, const float *in, int n, int c, int hw, const zf_lrn_params *p)
{
    const float a = p->alpha / (float)p->size, k = p->k, beta = p->beta;
    const int chunks = (hw + LRN_CHUNK - 1) / LRN_CHUNK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int img = 0; img < n; img++) {
        for (int ch = 0; ch < chunks; ch++) {
            const int p0 = ch * LRN_CHUNK, len = hw - p0 < LRN_CHUNK ? hw - p0 : LRN_CHUNK;
            const float *base = in + (size_t)img * c * hw + p0;
            float *obase = out + (size_t)img * c * hw + p0;
            float sum[LRN_CHUNK];
            for (int i = 0; i < c; i++) {
                int j0, j1;
                window_sumsq(sum, &j0, &j1, base, i, c, hw, len, p);
                const float *x = base + (size_t)i * hw;
                float *y = obase + (size_t)i * hw;
                for (int q = 0; q < len; q++)
                    y[q] = x[q] * inv_pow(k + a * sum[q], beta);
            }
        }
    }
}

/* y_i = x_i s_i^-b with s_i = k + a sum_{j in W(i)} x_j^2, so
 * dx_j = dy_j s_j^-b - 2 a b x_j sum_{i : j in W(i)} dy_i x_i s_i^(-b-1). */
void zf_lrn_backward(float *din, const float *dout, const float *in, int n, int c, int hw,
                     const zf_lrn_params *p)
{
    const float a = p->alpha / (float)p->size, k = p->k, beta = p->beta;
    const int chunks = (hw + LRN_CHUNK - 1) / LRN_CHUNK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int img = 0; img < n; img++) {
        for (int ch = 0; ch < chunks; ch++) {
            const int p0 = ch * LRN_CHUNK, len = hw - p0 < LRN_CHUNK ? hw - p0 : LRN_CHUNK;
            const size_t off = (size_t)img * c * hw + p0;
            float sum[LRN_CHUNK], t[LRN_CHUNK];
            for (int i = 0; i < c; i++)
                memset(din + off + (size_t)i * hw, 0, sizeof(float) * (size_t)len);
            /* One pass over the channels: channel i's window sums give its direct term
             * dy_i s_i^-b and t = dy_i x_i s_i^(-b-1) = dy_i x_i s_i^-b / s_i, which is subtracted
             * from every j in W(i). */
            for (int i = 0; i < c; i++) {
                int j0, j1;
                window_sumsq(sum, &j0, &j1, in + off, i, c, hw, len, p);
                const float *xi = in + off + (size_t)i * hw;
                const float *dy = dout + off + (size_t)i * hw;
                float *dxi = din + off + (size_t)i * hw;
                for (int q = 0; q < len; q++) {
                    const float s = k + a * sum[q], r = inv_pow(s, beta);
                    dxi[q] += dy[q] * r;
                    t[q] = dy[q] * xi[q] * r / s;
                }
                for (int j = j0; j < j1; j++) {
                    const float *xj = in + off + (size_t)j * hw;
                    float *dx = din + off + (size_t)j * hw;
                    for (int q = 0; q < len; q++)
                        dx[q] -= 2.0f * a * beta * xj[q] * t[q];
                }
            }
        }
    }
}
