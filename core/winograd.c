/* Winograd transforms F(2x2, 3x3), F(4x4, 3x3), F(4x4, 5x5), the occlusion's rectangular and 6x6
 * tiles, and the dense convolution by them; see winograd_internal.h. */
#include <string.h>

#include "gemm_internal.h"
#include "simd_internal.h"
#include "winograd_internal.h"
#include "kernels_internal.h" /* last: this copy's names for the kernel functions */

/* Filters are transformed this many input channels at a time, one per lane. */
#define FILTER_LANES 8

/* Three taps (a, b, c) through G of F(m x m, 3x3), lane by lane (the table's zeros and repeats
 * written out: the generic product took twice as long on AlexNet's conv3-5):
 * F(2x2): (a, (a+b+c)/2, (a-b+c)/2, c); F(4x4): (a/4, -(a+b+c)/6, -(a-b+c)/6,
 * a/24 + b/12 + c/6, a/24 - b/12 + c/6, c). */
static inline void g3_apply(double (*o)[FILTER_LANES], const double *a, const double *b, const double *c,
                            int m)
{
    for (int q = 0; q < FILTER_LANES; q++) {
        const double ac = a[q] + c[q];
        if (m == 6) {
            /* F(6x6): the points of F(4x4, 5x5) (same B^T), so G's rows are g5_apply's cut to
             * three taps: (a, -2/9 (a+b+c), -2/9 (a-b+c), a/90 +- b/45 + 2c/45,
             * 32a/45 +- 16b/45 + 8c/45, c) */
            const double e3 = a[q] * (1.0 / 90) + c[q] * (2.0 / 45), o3 = b[q] * (1.0 / 45);
            const double e5 = a[q] * (32.0 / 45) + c[q] * (8.0 / 45), o5 = b[q] * (16.0 / 45);
            o[0][q] = a[q];
            o[1][q] = (ac + b[q]) * (-2.0 / 9);
            o[2][q] = (ac - b[q]) * (-2.0 / 9);
            o[3][q] = e3 + o3;
            o[4][q] = e3 - o3;
            o[5][q] = e5 + o5;
            o[6][q] = e5 - o5;
            o[7][q] = c[q];
        } else if (m == 4) {
            const double e = a[q] * (1.0 / 24) + c[q] * (1.0 / 6), f = b[q] * (1.0 / 12);
            o[0][q] = a[q] * 0.25;
            o[1][q] = (ac + b[q]) * (-1.0 / 6);
            o[2][q] = (ac - b[q]) * (-1.0 / 6);
            o[3][q] = e + f;
            o[4][q] = e - f;
            o[5][q] = c[q];
        } else {
            o[0][q] = a[q];
            o[1][q] = (ac + b[q]) * 0.5;
            o[2][q] = (ac - b[q]) * 0.5;
            o[3][q] = c[q];
        }
    }
}

/* U = G_a g G_b^T: G of F(ma, 3) down the filter's rows, of F(mb, 3) along them (ma = mb for
 * square tiles; 6 x 4, 4 x 6 in the occlusion's mixed tiling). */
static void filters3(float *u, const float *w, int k, int cg, int ma, int mb)
{
    const int na = ma + 2, nb = mb + 2, nn = na * nb;
#pragma omp parallel for schedule(static) if ((size_t)k * cg > 4096)
    for (int f = 0; f < k; f++) {
        const float *wf = w + (size_t)f * cg * 9;
        float *uf = u + (size_t)f * nn * cg;
        for (int c0 = 0; c0 < cg; c0 += FILTER_LANES) {
            const int lanes = cg - c0 < FILTER_LANES ? cg - c0 : FILTER_LANES;
            /* g[tap][lane], t = G_a g (na, 3), v = t G_b^T (na, nb) */
            double g[9][FILTER_LANES], t[3][8][FILTER_LANES], tt[3][FILTER_LANES], v[8][FILTER_LANES];
            for (int j = 0; j < 9; j++)
                for (int q = 0; q < FILTER_LANES; q++)
                    g[j][q] = q < lanes ? wf[(size_t)(c0 + q) * 9 + j] : 0.0;
            for (int j = 0; j < 3; j++) /* column j of g: taps j, 3 + j, 6 + j */
                g3_apply(t[j], g[j], g[3 + j], g[6 + j], ma);
            for (int i = 0; i < na; i++) {
                for (int j = 0; j < 3; j++)
                    for (int q = 0; q < FILTER_LANES; q++)
                        tt[j][q] = t[j][i][q];
                g3_apply(v, tt[0], tt[1], tt[2], mb);
                for (int j = 0; j < nb; j++) {
                    float *dst = uf + (size_t)(i * nb + j) * cg + c0;
                    for (int q = 0; q < lanes; q++)
                        dst[q] = (float)v[j][q];
                }
            }
        }
    }
}

/* Five taps (a..e) through G of F(4x4, 5x5), lane by lane: (a, -2/9 (a+b+c+d+e),
 * -2/9 (a-b+c-d+e), a/90 + b/45 + 2c/45 + 4d/45 + 8e/45, the same with b, d negated,
 * 32a/45 + 16b/45 + 8c/45 + 4d/45 + 2e/45, the same with b, d negated, e). */
static inline void g5_apply(double (*o)[FILTER_LANES], const double *a, const double *b, const double *c,
                            const double *d, const double *e)
{
    for (int q = 0; q < FILTER_LANES; q++) {
        const double ev = a[q] + c[q] + e[q], od = b[q] + d[q];
        const double e3 = a[q] * (1.0 / 90) + c[q] * (2.0 / 45) + e[q] * (8.0 / 45);
        const double o3 = b[q] * (1.0 / 45) + d[q] * (4.0 / 45);
        const double e5 = a[q] * (32.0 / 45) + c[q] * (8.0 / 45) + e[q] * (2.0 / 45);
        const double o5 = b[q] * (16.0 / 45) + d[q] * (4.0 / 45);
        o[0][q] = a[q];
        o[1][q] = (ev + od) * (-2.0 / 9);
        o[2][q] = (ev - od) * (-2.0 / 9);
        o[3][q] = e3 + o3;
        o[4][q] = e3 - o3;
        o[5][q] = e5 + o5;
        o[6][q] = e5 - o5;
        o[7][q] = e[q];
    }
}

static void filters45(float *u, const float *w, int k, int cg)
{
#pragma omp parallel for schedule(static) if ((size_t)k * cg > 4096)
    for (int f = 0; f < k; f++) {
        const float *wf = w + (size_t)f * cg * 25;
        float *uf = u + (size_t)f * 64 * cg;
        for (int c0 = 0; c0 < cg; c0 += FILTER_LANES) {
            const int lanes = cg - c0 < FILTER_LANES ? cg - c0 : FILTER_LANES;
            double g[25][FILTER_LANES], t[5][8][FILTER_LANES], tt[5][FILTER_LANES], v[8][FILTER_LANES];
            for (int j = 0; j < 25; j++)
                for (int q = 0; q < FILTER_LANES; q++)
                    g[j][q] = q < lanes ? wf[(size_t)(c0 + q) * 25 + j] : 0.0;
            for (int j = 0; j < 5; j++) /* column j of g */
                g5_apply(t[j], g[j], g[5 + j], g[10 + j], g[15 + j], g[20 + j]);
            for (int i = 0; i < 8; i++) {
                for (int j = 0; j < 5; j++)
                    for (int q = 0; q < FILTER_LANES; q++)
                        tt[j][q] = t[j][i][q];
                g5_apply(v, tt[0], tt[1], tt[2], tt[3], tt[4]);
                for (int j = 0; j < 8; j++) {
                    float *dst = uf + (size_t)(i * 8 + j) * cg + c0;
                    for (int q = 0; q < lanes; q++)
                        dst[q] = (float)v[j][q];
                }
            }
        }
    }
}

void zf_wino_filters(float *u, const float *w, int k, int cg, int m, int r)
{
    if (r == 3)
        filters3(u, w, k, cg, m, m);
    else
        filters45(u, w, k, cg);
}

void zf_wino_filters_ab(float *u, const float *w, int k, int cg, int ma, int mb, int r)
{
    if (r == 3)
        filters3(u, w, k, cg, ma, mb);
    else
        filters45(u, w, k, cg);
}

/* Six inputs through a row of B^T for n = 6 (F(4x4, 3x3)). */
#define WINO_BT6(o, os, d0, d1, d2, d3, d4, d5)                                                    \
    do {                                                                                           \
        const __typeof__((d1) + (d2)) p12_ = (d1) + (d2), m12_ = (d1) - (d2), m13_ = (d1) - (d3);  \
        (o)[0] = 4.0f * (d0) - 5.0f * (d2) + (d4);                                                 \
        (o)[os] = (d3) + (d4) - 4.0f * p12_;                                                       \
        (o)[2 * (os)] = (d4) - (d3) + 4.0f * m12_;                                                 \
        (o)[3 * (os)] = (d4) - (d2) - 2.0f * m13_;                                                 \
        (o)[4 * (os)] = (d4) - (d2) + 2.0f * m13_;                                                 \
        (o)[5 * (os)] = 4.0f * (d1) - 5.0f * (d3) + (d5);                                          \
    } while (0)

/* Four inputs through a row of B^T for n = 4 (F(2x2, 3x3)). */
#define WINO_BT4(o, os, d0, d1, d2, d3)                                                            \
    do {                                                                                           \
        (o)[0] = (d0) - (d2);                                                                      \
        (o)[os] = (d1) + (d2);                                                                     \
        (o)[2 * (os)] = (d2) - (d1);                                                               \
        (o)[3 * (os)] = (d1) - (d3);                                                               \
    } while (0)

/* Eight inputs through a row of B^T for n = 8 (F(4x4, 5x5); points 0, +-1, +-2, +-1/2):
 * (d0 - 21/4 (d2 - d4) - d6, (d2 + d6 - 17/4 d4) +- (d1 + d5 - 17/4 d3),
 * (d2/4 - 5/4 d4 + d6) +- (d1/2 - 5/2 d3 + 2 d5), (4 d2 - 5 d4 + d6) +- (2 d1 - 5/2 d3 + d5/2),
 * d7 - d1 + 21/4 (d3 - d5)). */
#define WINO_BT8(o, os, d0, d1, d2, d3, d4, d5, d6, d7)                                            \
    do {                                                                                           \
        typedef __typeof__((d1) + (d2)) bt8_t_;                                                    \
        const bt8_t_ a_ = (d2) + (d6) - 4.25f * (d4), b_ = (d1) + (d5) - 4.25f * (d3);            \
        const bt8_t_ c_ = 0.25f * (d2) - 1.25f * (d4) + (d6), e_ = 0.5f * (d1) - 2.5f * (d3) + 2.0f * (d5); \
        const bt8_t_ f_ = 4.0f * (d2) - 5.0f * (d4) + (d6), h_ = 2.0f * (d1) - 2.5f * (d3) + 0.5f * (d5); \
        (o)[0] = (d0) - (d6) + 5.25f * ((d4) - (d2));                                              \
        (o)[os] = a_ + b_;                                                                         \
        (o)[2 * (os)] = a_ - b_;                                                                   \
        (o)[3 * (os)] = c_ + e_;                                                                   \
        (o)[4 * (os)] = c_ - e_;                                                                   \
        (o)[5 * (os)] = f_ + h_;                                                                   \
        (o)[6 * (os)] = f_ - h_;                                                                   \
        (o)[7 * (os)] = (d7) - (d1) + 5.25f * ((d3) - (d5));                                       \
    } while (0)

void zf_wino_tiles_in(float *v, size_t ps, const float *restrict d, int ld, int tx_n, int m, int r,
                      float *restrict rows)
{
    const int n = m + r - 1, tw = m * tx_n + r - 1;
    /* B^T down the columns (vectorises along the row) ... */
    if (n == 8) {
        for (int x = 0; x < tw; x++)
            WINO_BT8(rows + x, tw, d[x], d[ld + x], d[2 * ld + x], d[3 * ld + x], d[4 * ld + x],
                     d[5 * ld + x], d[6 * ld + x], d[7 * ld + x]);
    } else if (n == 6) {
        for (int x = 0; x < tw; x++)
            WINO_BT6(rows + x, tw, d[x], d[ld + x], d[2 * ld + x], d[3 * ld + x], d[4 * ld + x],
                     d[5 * ld + x]);
    } else {
        for (int x = 0; x < tw; x++) {
            const float d0 = d[x], d1 = d[ld + x], d2 = d[2 * ld + x], d3 = d[3 * ld + x];
            rows[x] = d0 - d2;
            rows[tw + x] = d1 + d2;
            rows[2 * tw + x] = d2 - d1;
            rows[3 * tw + x] = d1 - d3;
        }
    }
    /* ... then along each tile's n columns. */
    for (int i = 0; i < n; i++) {
        const float *rr = rows + (size_t)i * tw;
        float *v0 = v + (size_t)(i * n) * ps;
        for (int tx = 0; tx < tx_n; tx++) {
            const float *q = rr + m * tx;
            if (n == 8) {
                float o8[8];
                WINO_BT8(o8, 1, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]);
                for (int j = 0; j < 8; j++)
                    v0[j * ps + tx] = o8[j];
            } else if (n == 6) {
                float o6[6];
                WINO_BT6(o6, 1, q[0], q[1], q[2], q[3], q[4], q[5]);
                for (int j = 0; j < 6; j++)
                    v0[j * ps + tx] = o6[j];
            } else {
                v0[tx] = q[0] - q[2];
                v0[ps + tx] = q[1] + q[2];
                v0[2 * ps + tx] = q[2] - q[1];
                v0[3 * ps + tx] = q[1] - q[3];
            }
        }
    }
}

/* Eight floats as one vector (GCC/clang vector extension: AVX with -march=x86-64-v3, two SSE
 * halves without), for the transforms of eight tiles at once. */
typedef float v8f __attribute__((vector_size(32)));

/* Rows k of the eight lanes' windows as columns: d[k][j][lane] = p[lane][k * ld[lane] + j], j < 8. */
static inline __attribute__((always_inline)) void gather_rows(v8f (*d)[8], const float *const *p, const int *ld, int n)
{
#ifdef __AVX2__
    for (int k = 0; k < n; k++) {
        __m256 a[8];
        for (int q = 0; q < 8; q++)
            a[q] = _mm256_loadu_ps(p[q] + (size_t)k * ld[q]);
        zf_transpose8x8(a);
        for (int j = 0; j < 8; j++)
            d[k][j] = (v8f)a[j];
    }
#else
    for (int k = 0; k < n; k++)
        for (int j = 0; j < 8; j++)
            for (int q = 0; q < 8; q++)
                d[k][j][q] = p[q][(size_t)k * ld[q] + j];
#endif
}

/* x by address: a 32-byte vector passed by value has another ABI in the SSE copy than in the AVX ones */
static inline void store_lanes(float *dst, const v8f *x, int lanes)
{
    if (lanes == 8)
        memcpy(dst, x, sizeof *x);
    else
        for (int q = 0; q < lanes; q++)
            dst[q] = (*x)[q];
}

/* n values x[0], x[os], ... through B^T of n points into o[0], o[oos], ... (v8f lanes). */
static inline __attribute__((always_inline)) void bt_v8(v8f *o, int oos, const v8f *x, int os, int n)
{
    if (n == 8)
        WINO_BT8(o, oos, x[0], x[os], x[2 * os], x[3 * os], x[4 * os], x[5 * os], x[6 * os], x[7 * os]);
    else if (n == 6)
        WINO_BT6(o, oos, x[0], x[os], x[2 * os], x[3 * os], x[4 * os], x[5 * os]);
    else
        WINO_BT4(o, oos, x[0], x[os], x[2 * os], x[3 * os]);
}

static inline __attribute__((always_inline)) void tiles_in8(float *v, size_t ps, const float *const *p,
                                                            const int *ld, int lanes, int ma, int mb, int r)
{
    const int na = ma + r - 1, nb = mb + r - 1;
    v8f d[8][8], t[8][8];
    gather_rows(d, p, ld, na);
    /* B_a^T down the columns, then B_b along the rows; lanes are tiles throughout */
    for (int j = 0; j < nb; j++)
        bt_v8(&t[0][j], 8, &d[0][j], 8, na);
    for (int i = 0; i < na; i++) {
        v8f o[8];
        bt_v8(o, 1, t[i], 1, nb);
        for (int j = 0; j < nb; j++)
            store_lanes(v + (size_t)(i * nb + j) * ps, &o[j], lanes);
    }
}

void zf_wino_tiles_in8(float *v, size_t ps, const float *const *p, const int *ld, int lanes, int ma, int mb,
                       int r)
{
    if (r == 5)
        tiles_in8(v, ps, p, ld, lanes, 4, 4, 5);
    else if (ma == 6 && mb == 6)
        tiles_in8(v, ps, p, ld, lanes, 6, 6, 3);
    else if (ma == 6 && mb == 4)
        tiles_in8(v, ps, p, ld, lanes, 6, 4, 3);
    else if (ma == 4 && mb == 6)
        tiles_in8(v, ps, p, ld, lanes, 4, 6, 3);
    else if (ma == 4 && mb == 4)
        tiles_in8(v, ps, p, ld, lanes, 4, 4, 3);
    else if (ma == 4)
        tiles_in8(v, ps, p, ld, lanes, 4, 2, 3);
    else if (mb == 4)
        tiles_in8(v, ps, p, ld, lanes, 2, 4, 3);
    else
        tiles_in8(v, ps, p, ld, lanes, 2, 2, 3);
}

/* n values through A^T (n points to m outputs), lane by lane: x[i*os][lane] into o[i*oos][lane].
 * A^T's columns are the powers of the points 0, +-1, +-2, +-1/2 (and infinity, the last one). */
static inline __attribute__((always_inline)) void at_lanes(float (*o)[ZF_WINO_LANES], int oos,
                                                           const float (*x)[ZF_WINO_LANES], int os, int n,
                                                           int m)
{
    enum { L = ZF_WINO_LANES };
    for (int q = 0; q < L; q++) {
        if (n == 8) {
            const float a = x[os][q] + x[2 * os][q], b = x[os][q] - x[2 * os][q];
            const float c = x[3 * os][q] + x[4 * os][q], d = x[3 * os][q] - x[4 * os][q];
            const float e = x[5 * os][q] + x[6 * os][q], f = x[5 * os][q] - x[6 * os][q];
            o[0][q] = x[0][q] + a + c + e;
            o[oos][q] = b + 2.0f * d + 0.5f * f;
            o[2 * oos][q] = a + 4.0f * c + 0.25f * e;
            if (m == 6) {
                o[3 * oos][q] = b + 8.0f * d + 0.125f * f;
                o[4 * oos][q] = a + 16.0f * c + 0.0625f * e;
                o[5 * oos][q] = b + 32.0f * d + 0.03125f * f + x[7 * os][q];
            } else {
                o[3 * oos][q] = b + 8.0f * d + 0.125f * f + x[7 * os][q];
            }
        } else if (n == 6) {
            const float a = x[os][q] + x[2 * os][q], b = x[os][q] - x[2 * os][q];
            const float c = x[3 * os][q] + x[4 * os][q], d = x[3 * os][q] - x[4 * os][q];
            o[0][q] = x[0][q] + a + c;
            o[oos][q] = b + 2.0f * d;
            o[2 * oos][q] = a + 4.0f * c;
            o[3 * oos][q] = b + 8.0f * d + x[5 * os][q];
        } else {
            o[0][q] = x[0][q] + x[os][q] + x[2 * os][q];
            o[oos][q] = x[os][q] - x[2 * os][q] - x[3 * os][q];
        }
    }
}

/* With the sizes as constants (each call below), the lane loops vectorise and the branches go. */
static inline __attribute__((always_inline)) void tiles_out_ab(float (*y)[ZF_WINO_LANES],
                                                               const float (*mt)[ZF_WINO_LANES], int ma,
                                                               int mb, int r)
{
    const int na = ma + r - 1, nb = mb + r - 1;
    float u[6 * 8][ZF_WINO_LANES]; /* (ma, nb) */
    for (int j = 0; j < nb; j++)
        at_lanes(u + j, nb, mt + j, nb, na, ma);
    for (int i = 0; i < ma; i++)
        at_lanes(y + i * mb, 1, (const float(*)[ZF_WINO_LANES])(u + i * nb), 1, nb, mb);
}

void zf_wino_tiles_out_ab(float (*y)[ZF_WINO_LANES], const float (*mt)[ZF_WINO_LANES], int ma, int mb, int r)
{
    if (r == 5)
        tiles_out_ab(y, mt, 4, 4, 5);
    else if (ma == 6 && mb == 6)
        tiles_out_ab(y, mt, 6, 6, 3);
    else if (ma == 6 && mb == 4)
        tiles_out_ab(y, mt, 6, 4, 3);
    else if (ma == 4 && mb == 6)
        tiles_out_ab(y, mt, 4, 6, 3);
    else if (ma == 4 && mb == 4)
        tiles_out_ab(y, mt, 4, 4, 3);
    else if (ma == 4)
        tiles_out_ab(y, mt, 4, 2, 3);
    else if (mb == 4)
        tiles_out_ab(y, mt, 2, 4, 3);
    else
        tiles_out_ab(y, mt, 2, 2, 3);
}

/* ---------------------------------------------------------------------------------------------
 * Dense convolution. Images are taken in chunks whose transformed inputs V and products M stay
 * under CHUNK_FLOATS together. V is (c, n*n, tiles) and M (k, n*n, tiles): each GEMM reads and
 * writes every (n*n)-th row block, so that a channel's n*n planes lie together for the transforms
 * on either side (36 planes apart by whole layers made the back transform wait on memory). */

#define CHUNK_FLOATS ((size_t)4 << 20) /* 16 MB; 1 to 32M floats measured within 5% on conv3 */
/* Widest output handled: the window of one row of tiles and its transform live on the stack
 * (2 x 8 x 520 floats, 33 KB); wider maps take im2col. */
#define MAX_OW 512

int zf_wino_conv_applies(const zf_conv_geom *g)
{
    return (g->kh == 3 || g->kh == 5) && g->kw == g->kh && g->sh == 1 && g->sw == 1 && g->ow <= MAX_OW &&
           g->oh > 0 && g->ow > 0;
}

static int points(const zf_conv_geom *g, int m) { return m + g->kh - 1; }

size_t zf_wino_conv_filter_floats(const zf_conv_geom *g, int m)
{
    const int n = points(g, m);
    return (size_t)n * n * g->k * (g->c / g->groups);
}

static size_t tiles_per_image(const zf_conv_geom *g, int m)
{
    return (size_t)((g->oh + m - 1) / m) * ((g->ow + m - 1) / m);
}

size_t zf_wino_conv_tiles(const zf_conv_geom *g, int m) { return (size_t)g->n * tiles_per_image(g, m); }

static size_t floats_per_image(const zf_conv_geom *g, int m)
{
    const int n = points(g, m);
    return (size_t)n * n * (g->c + g->k) * tiles_per_image(g, m);
}

/* Images per chunk: as many as fit CHUNK_FLOATS (at least one), in chunks of even size. */
static int images_per_chunk(const zf_conv_geom *g, int m)
{
    const size_t per = floats_per_image(g, m);
    int chunks = (int)(((size_t)g->n * per + CHUNK_FLOATS - 1) / CHUNK_FLOATS);
    if (chunks < 1)
        chunks = 1;
    if (chunks > g->n)
        chunks = g->n;
    return (g->n + chunks - 1) / chunks;
}

size_t zf_wino_conv_workspace_floats(const zf_conv_geom *g, int m)
{
    /* images_per_chunk is at most both n and ceil(CHUNK_FLOATS / per): this bound grows with n,
     * so scratch sized for a batch serves every smaller one. */
    const size_t per = floats_per_image(g, m), fit = (CHUNK_FLOATS + per - 1) / per;
    return per * ((size_t)g->n < fit ? (size_t)g->n : fit);
}

void zf_wino_conv_forward(float *out, const float *in, const float *u, const float *bias,
                          const zf_conv_geom *g, int m, float *ws)
{
    zf_wino_conv_forward_checked(out, in, u, bias, g, m, ws, NULL);
}

/* Floats of each array per piece of a zf_wino_check: 256 KiB, several pieces per layer to spread
 * over the threads, few enough to cost nothing to hand out. */
#define CHECK_PIECE_FLOATS 65536

void zf_wino_conv_forward_checked(float *out, const float *in, const float *u, const float *bias,
                                  const zf_conv_geom *g, int m, float *ws, zf_wino_check *check)
{
    enum { L = ZF_WINO_LANES };
    const int r = g->kh, n = points(g, m), nn = n * n;
    const int C = g->c, K = g->k, G = g->groups, cg = C / G, kg = K / G;
    const int oh = g->oh, ow = g->ow, ty_n = (oh + m - 1) / m, tx_n = (ow + m - 1) / m;
    const int tpi = ty_n * tx_n, tw = m * tx_n + r - 1;
    const int nb_max = images_per_chunk(g, m);
    const size_t in_img = (size_t)C * g->h * g->w, ohw = (size_t)oh * ow;

    for (int n0 = 0; n0 < g->n; n0 += nb_max) {
        const int nb = g->n - n0 < nb_max ? g->n - n0 : nb_max;
        const int T = nb * tpi;
        const size_t cs = (size_t)nn * T; /* from one channel's planes to the next */
        float *V = ws, *M = ws + (size_t)C * cs;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < nb * C; i++) {
            const int c = i / nb, img = i % nb;
            const float *plane = in + (n0 + img) * in_img + (size_t)c * g->h * g->w;
            float band[8 * (MAX_OW + 8)], rows[8 * (MAX_OW + 8)];
            /* input columns [x0, x1) of the window's tw, the rest padding */
            const int x0 = g->pl < tw ? g->pl : tw;
            const int x1 = g->w + g->pl < tw ? g->w + g->pl : tw;
            for (int ty = 0; ty < ty_n; ty++) {
                /* the zero-padded window of this row of tiles: input rows ty*m - pt + [0, n) */
                for (int rw = 0; rw < n; rw++) {
                    float *d = band + (size_t)rw * tw;
                    const int iy = ty * m - g->pt + rw;
                    if (iy < 0 || iy >= g->h || x1 <= x0) {
                        memset(d, 0, sizeof(float) * tw);
                        continue;
                    }
                    memset(d, 0, sizeof(float) * x0);
                    memcpy(d + x0, plane + (size_t)iy * g->w + (x0 - g->pl), sizeof(float) * (x1 - x0));
                    memset(d + x1, 0, sizeof(float) * (tw - x1));
                }
                zf_wino_tiles_in(V + c * cs + (size_t)img * tpi + (size_t)ty * tx_n, T, band, tw, tx_n,
                                 m, r, rows);
            }
        }
        /* The nn * G products are independent: one per thread at a time (OpenBLAS and oneDNN run
         * single-threaded inside a parallel region), one fork and join for the stage. With the
         * first images come the check's P pieces, every other item of the first 2P, so that a
         * thread reads memory for one while the other computes. */
        const int items = G * nn;
        int pieces = 0;
        if (check && n0 == 0) {
            const size_t want = (check->floats + CHECK_PIECE_FLOATS - 1) / CHECK_PIECE_FLOATS;
            pieces = want < (size_t)items ? (int)want : items;
        }
        int differs = 0;
#pragma omp parallel for schedule(dynamic, 1)
        for (int it = 0; it < items + pieces; it++) {
            int q = it;
            if (it < 2 * pieces) {
                q = it / 2;
                if (it % 2) {
                    const size_t lo = check->floats * q / pieces, hi = check->floats * (q + 1) / pieces;
                    if (memcmp(check->a + lo, check->b + lo, sizeof(float) * (hi - lo))) {
#pragma omp atomic write
                        differs = 1;
                    }
                    continue;
                }
            } else {
                q = it - pieces;
            }
            const int gi = q / nn, xi = q % nn;
            zf_sgemm('N', 'N', kg, T, cg, 1.0f, u + ((size_t)gi * kg * nn + xi) * cg, nn * cg,
                     V + gi * cg * cs + (size_t)xi * T, (int)cs, 0.0f, M + gi * kg * cs + (size_t)xi * T, (int)cs);
        }
        if (differs) {
            check->differs = 1;
            return;
        }
        /* Output transform, L tiles at a time. */
#pragma omp parallel for schedule(static)
        for (int k = 0; k < K; k++) {
            const float bk = bias ? bias[k] : 0.0f;
            const float *mk = M + k * cs;
            int img = 0, ty = 0, tx = 0; /* of tile t */
            for (int t = 0; t < T; t += L) {
                const int lanes = T - t < L ? T - t : L;
                float mt[64][L], y[16][L];
                if (lanes == L) {
                    for (int xi = 0; xi < nn; xi++)
                        for (int q = 0; q < L; q++)
                            mt[xi][q] = mk[(size_t)xi * T + t + q];
                } else {
                    for (int xi = 0; xi < nn; xi++)
                        for (int q = 0; q < L; q++)
                            mt[xi][q] = q < lanes ? mk[(size_t)xi * T + t + q] : 0.0f;
                }
                zf_wino_tiles_out_ab(y, (const float(*)[L])mt, m, m, r);
                for (int q = 0; q < lanes; q++) {
                    float *dst = out + ((size_t)(n0 + img) * K + k) * ohw + (size_t)(m * ty) * ow + m * tx;
                    const int hy = oh - m * ty < m ? oh - m * ty : m, hx = ow - m * tx < m ? ow - m * tx : m;
                    for (int dy = 0; dy < hy; dy++)
                        for (int dx = 0; dx < hx; dx++)
                            dst[(size_t)dy * ow + dx] = y[dy * m + dx][q] + bk;
                    if (++tx == tx_n) {
                        tx = 0;
                        if (++ty == ty_n) {
                            ty = 0;
                            img++;
                        }
                    }
                }
            }
        }
    }
}
