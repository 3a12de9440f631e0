/* Fully connected layers, ReLU, softmax on the CPU. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "dnnl_internal.h"
#include "fc_internal.h"
#include "util_internal.h"
#include "gemm_internal.h"
#include "zf/cpu.h"
#include "zf/ops.h"
#include "kernels_internal.h" /* last: this copy's names for the kernel functions */

void zf_fc_forward_blas(float *out, const float *in, const float *w, const float *bias, int n, int in_f,
                        int out_f)
{
    for (int i = 0; i < n; i++) {
        if (bias)
            memcpy(out + (size_t)i * out_f, bias, sizeof(float) * out_f);
        else
            memset(out + (size_t)i * out_f, 0, sizeof(float) * out_f);
    }
    if (n == 1) {
        /* Memory-bound: sgemv reads the weights once at full bandwidth. */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out_f, in_f, 1.0f, w, in_f, in, 1, 1.0f, out, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out_f, in_f, 1.0f, in, in_f, w, in_f,
                    1.0f, out, out_f);
    }
}

void zf_fc_forward_dnnl(float *out, const float *in, const float *w, const float *bias, int n, int in_f,
                        int out_f)
{
    for (int i = 0; i < n; i++) {
        if (bias)
            memcpy(out + (size_t)i * out_f, bias, sizeof(float) * out_f);
        else
            memset(out + (size_t)i * out_f, 0, sizeof(float) * out_f);
    }
    if (zf_dnnl_sgemm('N', 'T', n, out_f, in_f, 1.0f, in, in_f, w, in_f, 1.0f, out, out_f))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out_f, in_f, 1.0f, in, in_f, w, in_f, 1.0f, out,
                    out_f);
}

/* ---------------------------------------------------------------------------------------------
 * The streaming kernel. Each thread takes blocks of OB weight rows; within a block, K is cut so
 * that the batch's inputs over one K block (XBLOCK_FLOATS) stay in L2 while every row of the
 * block runs over them, and the block's weights over that K stay in L2 for every group of B
 * input rows. An R x B micro-kernel keeps R*B dot products in registers. */

#define OB 32
#define XBLOCK_FLOATS ((size_t)32768) /* 128 KB; 16K-32K floats and OB 16-64 measured within 10% */
/* Input rows per pass over the weights; larger batches take several (and OpenBLAS wins there). */
#define FC_STREAM_MAX_BATCH 32

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LANES 8

/* Eight weights as floats: of float32 (F32) or of bfloat16 (BF16: widened exactly, a shift). */
#define LOAD_F32(p) _mm256_loadu_ps(p)
#define LOAD_BF16(p) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))

/* acc (R, lda, LANES) += lane-wise partial sums over k < kb (a multiple of LANES) of
 * w[r*ldw + k] * x[b*ldx + k], for r < R, b < B. The inputs are pinned in registers: left to
 * itself the compiler reloads them as FMA memory operands and the loop waits on loads. */
#define FC_KERNEL(T, WT, R, B)                                                                     \
    static void fc_kernel_##T##_##R##_##B(float *acc, int lda, const void *wv_, size_t ldw, const float *x, \
                                          size_t ldx, int kb)                                      \
    {                                                                                              \
        const WT *w = wv_;                                                                         \
        __m256 s[R][B];                                                                            \
        for (int r = 0; r < R; r++)                                                                \
            for (int b = 0; b < B; b++)                                                            \
                s[r][b] = _mm256_loadu_ps(acc + ((size_t)r * lda + b) * LANES);                    \
        for (int k = 0; k < kb; k += LANES) {                                                      \
            __m256 xv[B];                                                                          \
            for (int b = 0; b < B; b++) {                                                          \
                xv[b] = _mm256_loadu_ps(x + b * ldx + k);                                          \
                __asm__("" : "+x"(xv[b]));                                                         \
            }                                                                                      \
            for (int r = 0; r < R; r++) {                                                          \
                const __m256 wv = LOAD_##T(w + r * ldw + k);                                       \
                for (int b = 0; b < B; b++)                                                        \
                    s[r][b] = _mm256_fmadd_ps(wv, xv[b], s[r][b]);                                 \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < R; r++)                                                                \
            for (int b = 0; b < B; b++)                                                            \
                _mm256_storeu_ps(acc + ((size_t)r * lda + b) * LANES, s[r][b]);                    \
    }
#else
#define LANES 8
#define WEIGHT_F32(w, i) (w)[i]
#define WEIGHT_BF16(w, i) zf_bf16_to_float((w)[i])
/* Portable: the same blocking and lane-wise partial sums, left to the compiler. */
#define FC_KERNEL(T, WT, R, B)                                                                     \
    static void fc_kernel_##T##_##R##_##B(float *acc, int lda, const void *wv_, size_t ldw, const float *x, \
                                          size_t ldx, int kb)                                      \
    {                                                                                              \
        const WT *w = wv_;                                                                         \
        for (int r = 0; r < R; r++)                                                                \
            for (int b = 0; b < B; b++) {                                                          \
                float *a = acc + ((size_t)r * lda + b) * LANES;                                    \
                for (int k = 0; k < kb; k += LANES)                                                \
                    for (int q = 0; q < LANES; q++)                                                \
                        a[q] += WEIGHT_##T(w, r * ldw + k + q) * x[b * ldx + k + q];               \
            }                                                                                      \
    }
#endif

#define FC_KERNELS(T, WT)                                                                          \
    FC_KERNEL(T, WT, 8, 1)                                                                         \
    FC_KERNEL(T, WT, 4, 2)                                                                         \
    FC_KERNEL(T, WT, 4, 3)                                                                         \
    FC_KERNEL(T, WT, 1, 1)                                                                         \
    FC_KERNEL(T, WT, 1, 2)                                                                         \
    FC_KERNEL(T, WT, 1, 3)
FC_KERNELS(F32, float)
FC_KERNELS(BF16, uint16_t)

typedef void (*fc_kernel)(float *, int, const void *, size_t, const float *, size_t, int);
/* Input rows per micro-kernel: 3 (R = 4, 12 accumulators) measured 5-10% faster than 4 (R = 2). */
#define BMAX 3
/* One weight type's micro-kernels, by B - 1: the widest R that fits the 16 registers, and R = 1
 * for the block's last rows. */
typedef struct fc_kernels {
    fc_kernel wide[BMAX], one[BMAX];
    size_t size; /* bytes per weight */
} fc_kernels;
static const int kernel_rows[BMAX] = {8, 4, 4};
static const fc_kernels kernels_f32 = {{fc_kernel_F32_8_1, fc_kernel_F32_4_2, fc_kernel_F32_4_3},
                                       {fc_kernel_F32_1_1, fc_kernel_F32_1_2, fc_kernel_F32_1_3},
                                       sizeof(float)};
static const fc_kernels kernels_bf16 = {{fc_kernel_BF16_8_1, fc_kernel_BF16_4_2, fc_kernel_BF16_4_3},
                                        {fc_kernel_BF16_1_1, fc_kernel_BF16_1_2, fc_kernel_BF16_1_3},
                                        sizeof(uint16_t)};

/* Weight i of w, of either type, as a float. */
static inline float weight_at(const void *w, size_t i, const fc_kernels *kk)
{
    return kk->size == sizeof(float) ? ((const float *)w)[i] : zf_bf16_to_float(((const uint16_t *)w)[i]);
}

static void fc_stream(float *out, const float *in, const void *w, const fc_kernels *kk, const float *bias, int n,
                      int in_f, int out_f)
{
    for (; n > FC_STREAM_MAX_BATCH; n -= FC_STREAM_MAX_BATCH) {
        fc_stream(out, in, w, kk, bias, FC_STREAM_MAX_BATCH, in_f, out_f);
        in += (size_t)FC_STREAM_MAX_BATCH * in_f;
        out += (size_t)FC_STREAM_MAX_BATCH * out_f;
    }
    /* K block: the batch's inputs over it fill XBLOCK_FLOATS, a multiple of LANES */
    int kb = (int)(XBLOCK_FLOATS / (size_t)n) & ~(LANES - 1);
    if (kb < 64)
        kb = 64;
    const int kmain = in_f & ~(LANES - 1); /* the last in_f % LANES columns: scalar, at the end */
    if (kb > kmain)
        kb = kmain;
    const int nblocks = (out_f + OB - 1) / OB;
    const char *wb = w;
#pragma omp parallel for schedule(static)
    for (int ob = 0; ob < nblocks; ob++) {
        const int o0 = ob * OB, rows = out_f - o0 < OB ? out_f - o0 : OB;
        float acc[OB * FC_STREAM_MAX_BATCH * LANES]; /* (rows, n, LANES): 32 KB */
        memset(acc, 0, sizeof(float) * (size_t)rows * n * LANES);
        for (int k0 = 0; k0 < kmain; k0 += kb) {
            const int kl = kmain - k0 < kb ? kmain - k0 : kb;
            for (int b0 = 0; b0 < n; b0 += BMAX) {
                const int bl = n - b0 < BMAX ? n - b0 : BMAX, R = kernel_rows[bl - 1];
                const float *x = in + (size_t)b0 * in_f + k0;
                int r = 0;
                for (; r + R <= rows; r += R)
                    kk->wide[bl - 1](acc + ((size_t)r * n + b0) * LANES, n,
                                     wb + ((size_t)(o0 + r) * in_f + k0) * kk->size, in_f, x, in_f, kl);
                for (; r < rows; r++)
                    kk->one[bl - 1](acc + ((size_t)r * n + b0) * LANES, n,
                                    wb + ((size_t)(o0 + r) * in_f + k0) * kk->size, in_f, x, in_f, kl);
            }
        }
        for (int b = 0; b < n; b++)
            for (int r = 0; r < rows; r++) {
                const float *a = acc + ((size_t)r * n + b) * LANES;
                const size_t row = (size_t)(o0 + r) * in_f;
                const float *xr = in + (size_t)b * in_f;
                float t = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
                for (int k = kmain; k < in_f; k++)
                    t += weight_at(w, row + k, kk) * xr[k];
                out[(size_t)b * out_f + o0 + r] = t + (bias ? bias[o0 + r] : 0.0f);
            }
    }
}

void zf_fc_forward_stream(float *out, const float *in, const float *w, const float *bias, int n, int in_f,
                          int out_f)
{
    fc_stream(out, in, w, &kernels_f32, bias, n, in_f, out_f);
}

/* The same blocks over weights in bfloat16, widened in registers as they are loaded. */
void zf_fc_forward_bf16(float *out, const float *in, const uint16_t *w16, const float *bias, int n, int in_f,
                        int out_f)
{
    fc_stream(out, in, w16, &kernels_bf16, bias, n, in_f, out_f);
}

/* Measured with bench_cpu --variants (one thread, AlexNet's fc6-8 and the mini nets'): against
 * OpenBLAS the streaming kernel is 1.0-1.2x at batch 1, 3.4x at 2, 2.4x at 4, 2x at 8, 1.8x at 16,
 * 1.3-1.5x at 32 and about even at 64 on weights far larger than the caches; on weights that fit
 * them (the mini nets' 256 x 256) it wins only up to batch 8. */
#define STREAM_BIG_WEIGHTS ((size_t)1 << 20)

void zf_fc_forward(float *out, const float *in, const float *w, const float *bias, int n, int in_f,
                   int out_f)
{
    const int big = (size_t)in_f * out_f >= STREAM_BIG_WEIGHTS;
    if (big ? n <= FC_STREAM_MAX_BATCH : n >= 2 && n <= 8)
        zf_fc_forward_stream(out, in, w, bias, n, in_f, out_f);
    else if (zf_sgemm_onednn())
        /* zf_sgemm's rule (gemm.c): oneDNN's sgemm where OpenBLAS runs kernels older than the CPU */
        zf_fc_forward_dnnl(out, in, w, bias, n, in_f, out_f);
    else
        zf_fc_forward_blas(out, in, w, bias, n, in_f, out_f);
}

void zf_relu_forward(float *out, const float *in, size_t count)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++)
        out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void zf_softmax_forward(float *out, const float *in, int n, int k)
{
    for (int i = 0; i < n; i++) {
        const float *x = in + (size_t)i * k;
        float *y = out + (size_t)i * k;
        float m = x[0];
        for (int j = 1; j < k; j++)
            m = x[j] > m ? x[j] : m;
        double s = 0;
        for (int j = 0; j < k; j++) {
            y[j] = expf(x[j] - m);
            s += y[j];
        }
        const float inv = (float)(1.0 / s);
        for (int j = 0; j < k; j++)
            y[j] *= inv;
    }
}
