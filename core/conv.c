/* Convolution with groups on the CPU: im2col into a column buffer, then one sgemm per group (zf_sgemm).
 * Layers with small output maps (conv3-5 at 13x13) put several images side by side in the column
 * buffer, so each GEMM is wide enough to run near the BLAS peak. 3x3 and 5x5 stride-1 layers with
 * enough output tiles go through Winograd instead (winograd.c), and 5x5 stride-2 ones as a 3x3
 * Winograd convolution of the input's phases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_internal.h"
#include "dnnl_internal.h"
#include "gemm_internal.h"
#include "simd_internal.h"
#include "winograd_internal.h"
#include "zf/alloc.h"
#include "zf/ops.h"
#include "kernels_internal.h" /* last: this copy's names for the kernel functions */

/* Winograd's filter transform is made on every call by callers without a zf_conv_filter_cache, and
 * once per set of weights by the net, which keeps it. The thresholds below 64 tiles were measured
 * with the transform made on every call (bench_cpu --variants, one thread, CPU time, transform
 * included, on AlexNet's and the mini nets' layers): 3x3 by F(4x4) on 13x13 maps is 0.6x im2col's
 * speed at 16 tiles (batch 1), 0.85x at 32, 1.2x at 64, 1.5x at 256; by F(2x2) on 6x6 maps 1.0x at
 * 36 tiles and 1.2-1.4x at 72. 5x5 by F(4x4) is 1.1x at 16 tiles (the mini net's 13x13 map at
 * batch 1), 1.6-2x at 49 (AlexNet's 27x27), 2-2.4x at 784. With the filters kept, F(2x2) pays on the
 * 13x13 layers at batch 1 too (49 tiles; the net's conv3-5, bench_cpu --cpu-time --layers, one
 * thread: AlexNet 7.6-8.0 ms against im2col's 8.9-9.4, ZFNet 10.2-11.8 against 13.1-13.9), and it
 * rounds as well as im2col (5e-7 to 7e-7 of the layer's largest value); so a 3x3 layer with at least
 * WINO_MIN_TILES_3X3_F2 F(2x2) tiles takes F(2x2) below 64. A caller that makes the filters anew
 * each time pays 1.1-1.6 ms more per layer there (a one-image zfviz forward: a few ms against the
 * model's loading). */
#define WINO_MIN_TILES_3X3 64
#define WINO_MIN_TILES_3X3_F2 32
#define WINO_MIN_TILES_5X5 16

/* 0 for im2col, else the m of the F(m x m, r x r) to use. 5x5: F(4x4). 3x3: of F(2x2) and F(4x4)
 * the one with fewer multiplies, F(4x4) only when clearly fewer: its transforms cost more and
 * round worse; below 64 tiles F(2x2) where `small` allows (not for the polyphase path's phases,
 * whose batch-1 speed was not measured). */
static int winograd_m_of(const zf_conv_geom *g, int small)
{
    if (!zf_wino_conv_applies(g))
        return 0;
    if (g->kh == 5)
        return zf_wino_conv_tiles(g, 4) >= WINO_MIN_TILES_5X5 ? 4 : 0;
    int m = 2;
    if (36 * zf_wino_conv_tiles(g, 4) * 5 < 16 * zf_wino_conv_tiles(g, 2) * 4)
        m = 4;
    if (zf_wino_conv_tiles(g, m) >= WINO_MIN_TILES_3X3)
        return m;
    return small && zf_wino_conv_tiles(g, 2) >= WINO_MIN_TILES_3X3_F2 ? 2 : 0;
}

static int winograd_m(const zf_conv_geom *g) { return winograd_m_of(g, 1); }

/* A 5x5 stride-2 convolution (ZFNet's conv2) is a 3x3 stride-1 one on the input's four phases:
 * phase (py, px) of channel c is the padded input's pixels (2i + py, 2j + px), and its filter
 * holds taps (2a + py, 2b + px) of the 5x5 one, zero where that is past the edge. Channel c's
 * phases are channels 4c..4c+3 (groups stay contiguous). 36 taps instead of 25, but Winograd
 * then takes it: F(4x4, 3x3) multiplies 2.4x less than direct 5x5 stride 2. */
static int polyphase_applies(const zf_conv_geom *g)
{
    return g->kh == 5 && g->kw == 5 && g->sh == 2 && g->sw == 2;
}

/* The 3x3 stride-1 convolution on the phases: their maps are oh + 2 by ow + 2. */
static zf_conv_geom polyphase_geom(const zf_conv_geom *g)
{
    zf_conv_geom p = *g;
    p.c = 4 * g->c;
    p.h = g->oh + 2;
    p.w = g->ow + 2;
    p.kh = p.kw = 3;
    p.sh = p.sw = 1;
    p.pt = p.pl = 0;
    return p;
}

/* 0 for im2col, else the Winograd m for the phases' convolution. */
static int polyphase_m(const zf_conv_geom *g)
{
    if (!polyphase_applies(g))
        return 0;
    const zf_conv_geom p = polyphase_geom(g);
    return winograd_m_of(&p, 0);
}

/* oneDNN where zfviz's own path would be im2col and oneDNN runs a direct JIT convolution for the
 * shape ("jit:avx2", "brgconv:avx512_core", ...): measured (bench_cpu --variants --only dnnl, one
 * thread, CPU time, its filter reorder included) 1.5-1.6x faster on the first layers (3 input
 * channels, 7x7 and 11x11 windows), 1.1x on ZFNet's conv2 at batch 1, even to 1.2x on the 13x13
 * layers at batch 1; slower (0.6-0.85x) than Winograd wherever that applies, and its GEMM-based
 * implementation ("gemm:jit", AlexNet's 64-filter conv1 with padding on AVX2) slower than
 * im2col + OpenBLAS (0.64x). Only layers of at most 4 input channels a group (the first layer:
 * grey or RGB pixels) take it: deeper ones gained at most 1.2x, within the noise of those runs, and
 * its direct kernel sums their long dot products (512 x 3 x 3 in zfnet512) less accurately than
 * OpenBLAS's blocked GEMM: zfnet512's pool5 drifted from float64 by 1.4e-4 relative (2.2e-6 of the
 * layer's largest value) against 4.7e-5 (6.6e-7) through im2col, past test_onnx's bound. The choice
 * depends only on the CPU, the kernel set, the shape and oneDNN's own (deterministic) pick of
 * implementation for them. */
#define DNNL_MAX_GROUP_CHANNELS 4
static int use_dnnl(const zf_conv_geom *g)
{
    if (g->c / g->groups > DNNL_MAX_GROUP_CHANNELS || polyphase_m(g) || winograd_m(g))
        return 0;
    const char *impl = zf_dnnl_conv_impl(g, 0);
    return impl && !strncmp(impl, "jit:", 4);
}

/* Scratch of the polyphase path: the phases, their 3x3 filters, then Winograd's filters and
 * scratch. */
static size_t polyphase_floats(const zf_conv_geom *g, int m)
{
    const zf_conv_geom p = polyphase_geom(g);
    return (size_t)p.n * p.c * p.h * p.w + (size_t)p.k * (p.c / p.groups) * 9 + zf_wino_conv_filter_floats(&p, m) +
           zf_wino_conv_workspace_floats(&p, m);
}

static int cache_fits(const zf_conv_filter_cache *c, size_t w_floats, int m, int poly);
static void cache_keep(zf_conv_filter_cache *c, const float *w, size_t w_floats, const float *u, size_t u_floats,
                       int m, int poly);

static void polyphase_forward(float *out, const float *in, const float *w, const float *bias,
                              const zf_conv_geom *g, int m, float *ws, zf_conv_filter_cache *cache)
{
    const zf_conv_geom p = polyphase_geom(g);
    const int cg = g->c / g->groups;
    float *x = ws, *wp = x + (size_t)p.n * p.c * p.h * p.w, *u = wp + (size_t)p.k * (p.c / p.groups) * 9;
    float *wino_ws = u + zf_wino_conv_filter_floats(&p, m);
    /* phases of the zero-padded input */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < g->n * g->c; i++) {
        const float *plane = in + (size_t)i * g->h * g->w;
        for (int ph = 0; ph < 4; ph++) {
            const int py = ph / 2, px = ph % 2;
            float *dst = x + ((size_t)i * 4 + ph) * p.h * p.w;
            for (int y = 0; y < p.h; y++) {
                const int iy = 2 * y + py - g->pt;
                float *d = dst + (size_t)y * p.w;
                if (iy < 0 || iy >= g->h) {
                    memset(d, 0, sizeof(float) * p.w);
                    continue;
                }
                const float *src = plane + (size_t)iy * g->w;
                for (int xx = 0; xx < p.w; xx++) {
                    const int ix = 2 * xx + px - g->pl;
                    d[xx] = ix >= 0 && ix < g->w ? src[ix] : 0.0f;
                }
            }
        }
    }
    const size_t w_floats = (size_t)g->k * cg * 25;
    if (cache_fits(cache, w_floats, m, 1)) {
        zf_wino_check same = {cache->w, w, w_floats, 0};
        zf_wino_conv_forward_checked(out, x, cache->u, bias, &p, m, wino_ws, &same);
        if (!same.differs)
            return;
    }
    /* w (k, cg, 5, 5) -> wp (k, 4 cg, 3, 3) */
    for (int k = 0; k < g->k; k++)
        for (int c = 0; c < cg; c++)
            for (int ph = 0; ph < 4; ph++) {
                const int py = ph / 2, px = ph % 2;
                float *d = wp + (((size_t)k * cg + c) * 4 + ph) * 9;
                const float *src = w + ((size_t)k * cg + c) * 25;
                for (int a = 0; a < 3; a++)
                    for (int b = 0; b < 3; b++) {
                        const int ky = 2 * a + py, kx = 2 * b + px;
                        d[a * 3 + b] = ky < 5 && kx < 5 ? src[ky * 5 + kx] : 0.0f;
                    }
            }
    zf_wino_filters(u, wp, p.k, p.c / p.groups, m, 3);
    cache_keep(cache, w, w_floats, u, zf_wino_conv_filter_floats(&p, m), m, 1);
    zf_wino_conv_forward(out, x, u, bias, &p, m, wino_ws);
}

/* Columns per GEMM we aim for when batching images; a wider buffer gains little and costs cache. */
#define ZF_CONV_TARGET_COLS 2048

int zf_conv_images_per_gemm(const zf_conv_geom *g)
{
    int64_t hw = (int64_t)g->oh * g->ow;
    if (hw >= ZF_CONV_TARGET_COLS / 2)
        return 1;
    int nb = (int)(ZF_CONV_TARGET_COLS / hw);
    if (nb > g->n)
        nb = g->n;
    return nb < 1 ? 1 : nb;
}

size_t zf_conv_workspace_floats(const zf_conv_geom *g)
{
    int nb = zf_conv_images_per_gemm(g);
    size_t cols = (size_t)nb * g->oh * g->ow;
    size_t rows = (size_t)g->c * g->kh * g->kw;
    size_t im2col = rows * cols + (nb > 1 ? (size_t)g->k * cols : 0);
    if (use_dnnl(g)) {
        /* the backward passes still use im2col; oneDNN's blocked copies grow with n, so the
         * scratch for the batch a net reserves serves every smaller batch */
        const size_t d = zf_dnnl_conv_workspace_floats(g, 0);
        return d > im2col ? d : im2col;
    }
    const int pm = polyphase_m(g);
    if (pm) {
        const size_t poly = polyphase_floats(g, pm);
        return poly > im2col ? poly : im2col;
    }
    const int m = winograd_m(g);
    if (!m)
        return im2col;
    /* the backward passes still use im2col */
    size_t wino = zf_wino_conv_filter_floats(g, m) + zf_wino_conv_workspace_floats(g, m);
    return wino > im2col ? wino : im2col;
}

size_t zf_conv_workspace_floats_bound(const zf_conv_geom *g)
{
    /* A sub-window's GEMM has at most max(oh*ow, ZF_CONV_TARGET_COLS) columns (zf_conv_images_per_gemm). */
    size_t cols = (size_t)g->oh * g->ow;
    if (cols < ZF_CONV_TARGET_COLS)
        cols = ZF_CONV_TARGET_COLS;
    size_t bound = ((size_t)g->c * g->kh * g->kw + (size_t)g->k) * cols;
    size_t full = zf_conv_workspace_floats(g);
    return bound > full ? bound : full;
}

/* Layout in conv_internal.h. */
void zf_conv_im2col(float *col, const float *in, int nb, const zf_conv_geom *g)
{
    const int rows = g->c * g->kh * g->kw;
    const int ohw = g->oh * g->ow;
    const size_t cols = (size_t)nb * ohw;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const int kx = r % g->kw, ky = (r / g->kw) % g->kh, ci = r / (g->kw * g->kh);
        for (int img = 0; img < nb; img++) {
            const float *plane = in + ((size_t)img * g->c + ci) * g->h * g->w;
            float *dst = col + (size_t)r * cols + (size_t)img * ohw;
            for (int oy = 0; oy < g->oh; oy++) {
                const int iy = oy * g->sh - g->pt + ky;
                float *d = dst + (size_t)oy * g->ow;
                if (iy < 0 || iy >= g->h) {
                    memset(d, 0, sizeof(float) * g->ow);
                    continue;
                }
                const float *srow = plane + (size_t)iy * g->w;
                /* ox range whose ix = ox*sw - pl + kx falls inside [0, w) */
                int lo = 0, hi = g->ow;
                int off = kx - g->pl;
                while (lo < hi && lo * g->sw + off < 0)
                    d[lo++] = 0.0f;
                while (hi > lo && (hi - 1) * g->sw + off >= g->w)
                    d[--hi] = 0.0f;
                if (g->sw == 1) {
                    memcpy(d + lo, srow + lo + off, sizeof(float) * (size_t)(hi - lo));
                } else {
                    int ox = lo;
#ifdef __AVX2__
                    /* eight outputs at a time while their loads stay inside the row */
                    if (g->sw == 2)
                        for (; ox + 8 <= hi && (ox + 8) * 2 + off <= g->w; ox += 8)
                            _mm256_storeu_ps(d + ox, zf_load8_stride2(srow + ox * 2 + off));
                    else if (g->sw == 4)
                        for (; ox + 8 <= hi && (ox + 8) * 4 + off <= g->w; ox += 8)
                            _mm256_storeu_ps(d + ox, zf_load8_stride4(srow + ox * 4 + off));
#endif
                    for (; ox < hi; ox++)
                        d[ox] = srow[ox * g->sw + off];
                }
            }
        }
    }
}

/* Adds col (c*kh*kw, nb*oh*ow) back into din (nb, c, h, w), which the caller zeroed. */
static void col2im(float *din, const float *col, int nb, const zf_conv_geom *g)
{
    const int ohw = g->oh * g->ow;
    const size_t cols = (size_t)nb * ohw;
#pragma omp parallel for collapse(2) schedule(static)
    for (int img = 0; img < nb; img++) {
        for (int ci = 0; ci < g->c; ci++) {
            float *plane = din + ((size_t)img * g->c + ci) * g->h * g->w;
            for (int ky = 0; ky < g->kh; ky++) {
                for (int kx = 0; kx < g->kw; kx++) {
                    const int r = (ci * g->kh + ky) * g->kw + kx;
                    const float *s = col + (size_t)r * cols + (size_t)img * ohw;
                    const int off = kx - g->pl;
                    int lo = 0, hi = g->ow;
                    while (lo < hi && lo * g->sw + off < 0)
                        lo++;
                    while (hi > lo && (hi - 1) * g->sw + off >= g->w)
                        hi--;
                    for (int oy = 0; oy < g->oh; oy++) {
                        const int iy = oy * g->sh - g->pt + ky;
                        if (iy < 0 || iy >= g->h)
                            continue;
                        float *drow = plane + (size_t)iy * g->w + off;
                        const float *srow = s + (size_t)oy * g->ow;
                        if (g->sw == 1) {
                            for (int ox = lo; ox < hi; ox++)
                                drow[ox] += srow[ox];
                        } else {
                            for (int ox = lo; ox < hi; ox++)
                                drow[ox * g->sw] += srow[ox];
                        }
                    }
                }
            }
        }
    }
}

const char *zf_conv_path_name(const zf_conv_geom *g)
{
    static const char *const poly[] = {"polyphase-f2", "polyphase-f4"}, *const wino[] = {"winograd-f2", "winograd-f4"};
    static _Thread_local char buf[80];
    if (use_dnnl(g)) {
        snprintf(buf, sizeof buf, "onednn:%s", zf_dnnl_conv_impl(g, 0));
        return buf;
    }
    const int pm = polyphase_m(g);
    if (pm)
        return poly[pm == 4];
    const int m = winograd_m(g);
    return m ? wino[m == 4] : "im2col";
}

void zf_conv_forward(float *out, const float *in, const float *w, const float *bias,
                     const zf_conv_geom *g, float *ws)
{
    zf_conv_forward_cached(out, in, w, bias, g, ws, NULL);
}

void zf_conv_forward_cached(float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g,
                            float *ws, zf_conv_filter_cache *cache)
{
    /* oneDNN declines only when it cannot run at all (then its own path runs) */
    if (use_dnnl(g) && !zf_dnnl_conv_forward(out, in, w, bias, g, 0, ws))
        return;
    zf_conv_forward_own_cached(out, in, w, bias, g, ws, cache);
}

void zf_conv_forward_own(float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g,
                         float *ws)
{
    zf_conv_forward_own_cached(out, in, w, bias, g, ws, NULL);
}

/* Whether the cache holds this kernel set's transform, at this m and path, of weights of this
 * size: whether they are exactly the layer's weights, the forward that uses the transform finds out
 * (zf_wino_conv_forward_checked compares them with c->w while it computes). */
static int cache_fits(const zf_conv_filter_cache *c, size_t w_floats, int m, int poly)
{
    return c && c->u && c->maker == (const void *)zf_wino_filters && c->m == m && c->polyphase == poly &&
           c->w_floats == w_floats;
}

/* Memory for the cache: plain posix_memalign, not zf_alloc, whose failures the fault-injection
 * tests require to be reported as errors; without this memory a forward only runs slower. */
static float *cache_alloc(size_t floats)
{
    void *p = NULL;
    return posix_memalign(&p, 64, sizeof(float) * (floats ? floats : 1)) ? NULL : p;
}

/* Keeps u (made from w) in the cache; without the memory, the cache stays empty. */
static void cache_keep(zf_conv_filter_cache *c, const float *w, size_t w_floats, const float *u, size_t u_floats,
                       int m, int poly)
{
    if (!c)
        return;
    if (c->w_floats != w_floats || c->u_floats != u_floats || !c->w || !c->u) {
        zf_conv_filter_cache_clear(c);
        c->w = cache_alloc(w_floats);
        c->u = cache_alloc(u_floats);
        if (!c->w || !c->u) {
            zf_conv_filter_cache_clear(c);
            return;
        }
        c->w_floats = w_floats;
        c->u_floats = u_floats;
    }
    memcpy(c->w, w, sizeof(float) * w_floats);
    memcpy(c->u, u, sizeof(float) * u_floats);
    c->m = m;
    c->polyphase = poly;
    c->maker = (const void *)zf_wino_filters;
}

void zf_conv_forward_own_cached(float *out, const float *in, const float *w, const float *bias,
                                const zf_conv_geom *g, float *ws, zf_conv_filter_cache *cache)
{
    const size_t w_floats = (size_t)g->k * (g->c / g->groups) * g->kh * g->kw;
    const int pm = polyphase_m(g);
    if (pm) {
        polyphase_forward(out, in, w, bias, g, pm, ws, cache);
        return;
    }
    const int m = winograd_m(g);
    if (m) {
        const size_t uf = zf_wino_conv_filter_floats(g, m);
        if (cache_fits(cache, w_floats, m, 0)) {
            zf_wino_check same = {cache->w, w, w_floats, 0};
            zf_wino_conv_forward_checked(out, in, cache->u, bias, g, m, ws + uf, &same);
            if (!same.differs)
                return;
        }
        zf_wino_filters(ws, w, g->k, g->c / g->groups, m, g->kh);
        cache_keep(cache, w, w_floats, ws, uf, m, 0);
        zf_wino_conv_forward(out, in, ws, bias, g, m, ws + uf);
        return;
    }
    zf_conv_forward_im2col(out, in, w, bias, g, ws);
}

void zf_conv_forward_im2col(float *out, const float *in, const float *w, const float *bias,
                            const zf_conv_geom *g, float *ws)
{
    const int nb_max = zf_conv_images_per_gemm(g);
    const int ohw = g->oh * g->ow;
    const int cg = g->c / g->groups, kg = g->k / g->groups;
    const int kdim = cg * g->kh * g->kw;
    const size_t in_img = (size_t)g->c * g->h * g->w, out_img = (size_t)g->k * ohw;

    for (int n0 = 0; n0 < g->n; n0 += nb_max) {
        const int nb = g->n - n0 < nb_max ? g->n - n0 : nb_max;
        const size_t cols = (size_t)nb * ohw;
        float *col = ws;
        zf_conv_im2col(col, in + n0 * in_img, nb, g);
        /* With one image the GEMM writes straight into the output; otherwise into tmp
         * (k, nb*ohw), which is then scattered to NCHW. */
        float *dst = nb == 1 ? out + n0 * out_img : ws + (size_t)g->c * g->kh * g->kw * cols;
        const int ldc = (int)cols;
        for (int ch = 0; ch < g->k; ch++) {
            float b = bias ? bias[ch] : 0.0f;
            float *row = dst + (size_t)ch * cols;
            for (size_t j = 0; j < cols; j++)
                row[j] = b;
        }
        for (int gi = 0; gi < g->groups; gi++) {
            zf_sgemm('N', 'N', kg, (int)cols, kdim, 1.0f, w + (size_t)gi * kg * kdim, kdim,
                     col + (size_t)gi * kdim * cols, (int)cols, 1.0f, dst + (size_t)gi * kg * cols, ldc);
        }
        if (nb > 1) {
#pragma omp parallel for collapse(2) schedule(static)
            for (int img = 0; img < nb; img++)
                for (int ch = 0; ch < g->k; ch++)
                    memcpy(out + (n0 + img) * out_img + (size_t)ch * ohw,
                           dst + (size_t)ch * cols + (size_t)img * ohw, sizeof(float) * ohw);
        }
    }
}

const float *zf_conv_gather_dout(float *tmp, const float *dout, int n0, int nb, const zf_conv_geom *g)
{
    const int ohw = g->oh * g->ow;
    const size_t out_img = (size_t)g->k * ohw, cols = (size_t)nb * ohw;
    if (nb == 1)
        return dout + n0 * out_img;
#pragma omp parallel for collapse(2) schedule(static)
    for (int img = 0; img < nb; img++)
        for (int ch = 0; ch < g->k; ch++)
            memcpy(tmp + (size_t)ch * cols + (size_t)img * ohw,
                   dout + (n0 + img) * out_img + (size_t)ch * ohw, sizeof(float) * ohw);
    return tmp;
}

void zf_conv_backward_data(float *din, const float *dout, const float *w, const zf_conv_geom *g,
                           float *ws)
{
    const int nb_max = zf_conv_images_per_gemm(g);
    const int ohw = g->oh * g->ow;
    const int cg = g->c / g->groups, kg = g->k / g->groups;
    const int kdim = cg * g->kh * g->kw;
    const size_t in_img = (size_t)g->c * g->h * g->w;

    memset(din, 0, sizeof(float) * in_img * g->n);
    for (int n0 = 0; n0 < g->n; n0 += nb_max) {
        const int nb = g->n - n0 < nb_max ? g->n - n0 : nb_max;
        const size_t cols = (size_t)nb * ohw;
        float *col = ws;
        const float *src = zf_conv_gather_dout(ws + (size_t)g->c * g->kh * g->kw * cols, dout, n0, nb, g);
        for (int gi = 0; gi < g->groups; gi++) {
            /* col_g (kdim, cols) = W_g^T (kdim, kg) . dout_g (kg, cols) */
            zf_sgemm('T', 'N', kdim, (int)cols, kg, 1.0f, w + (size_t)gi * kg * kdim, kdim,
                     src + (size_t)gi * kg * cols, (int)cols, 0.0f, col + (size_t)gi * kdim * cols, (int)cols);
        }
        col2im(din + n0 * in_img, col, nb, g);
    }
}
