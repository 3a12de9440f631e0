/* The incremental occlusion's convolutions over a batch's changed regions, three ways: im2col of
 * the patched windows, the stride-1 delta, and Winograd tiles; and their rearranged weights. */
#include "zf/alloc.h"
#include "occlusion_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "simd_internal.h"
#include "winograd_internal.h"
#include "gemm_internal.h"
#include "kernels_internal.h" /* last: this copy's names for the kernel functions */

/* Scratch matrices (im2col columns, Winograd transforms) are cut into chunks of positions of
 * about this many floats (128 MB), which holds a whole batch of AlexNet's: each chunk costs every
 * GEMM a call, its weights a packing and each stage a fork and join. Measured on AlexNet 32:8
 * against 16 MB chunks (of half the last-level cache): conv2 155 -> 111 ms, conv3-5 632 -> 565 ms;
 * larger chunks and batches gained nothing more. */
#define CHUNK_FLOATS ((size_t)1 << 25)
/* Delta convolution: products of one block of output channels per thread, in floats (L2-sized). */
#define DELTA_BLOCK_FLOATS ((size_t)48 << 10)
#define DELTA_MIN_BLOCK 8

/* Positions [b0, *b1) whose total of per-position floats stays under CHUNK_FLOATS (at least one). */
static int chunk_end_under(int b0, int n, const int64_t *per_pos, int64_t limit)
{
    int64_t sum = 0;
    int b = b0;
    while (b < n && (b == b0 || sum + per_pos[b] <= limit)) {
        sum += per_pos[b];
        b++;
    }
    return b;
}

static int chunk_end(int b0, int n, const int64_t *per_pos)
{
    return chunk_end_under(b0, n, per_pos, (int64_t)CHUNK_FLOATS);
}

/* ---------------------------------------------------------------------------------------------
 * Convolution over the changed windows, three ways. */

/* im2col of each position's patched window, then one sgemm per group over the whole chunk. */
static zf_status conv_im2col(occl *o, const zf_layer *l, const float *base_in, const region *in,
                             region *out, int64_t *scratch_pp)
{
    const int C = l->in_c, K = l->out_c, G = l->groups, cg = C / G, kg = K / G;
    const int kh = l->win.kh, kw = l->win.kw, sh = l->win.sh, sw = l->win.sw;
    const int rows = C * kh * kw;
    for (int b = 0; b < out->n; b++)
        scratch_pp[b] = rect_area(out->r[b]) * rows;
    const size_t tile_max = zf_occl_window_max(out, kh, kw, sh, sw);
    zf_status st = zf_occl_reserve_tiles(o, tile_max);
    if (st)
        return st;
    for (int b0 = 0; b0 < out->n;) {
        int b1 = chunk_end(b0, out->n, scratch_pp);
        int64_t col0 = out->off[b0];
        int64_t ncols = (b1 < out->n ? out->off[b1] : out->cols) - col0;
        if (ncols == 0) {
            b0 = b1;
            continue;
        }
        if ((st = zf_occl_grow(&o->work, &o->work_cap, (size_t)rows * (size_t)ncols)))
            return st;
        float *cols = o->work;
        const int npairs = (b1 - b0) * C;
#pragma omp parallel if (ZF_OCCL_BIG((int64_t)rows * ncols))
        {
            float *tile = o->tiles + tile_max * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 4)
            for (int i = 0; i < npairs; i++) {
                int b = b0 + i / C, c = i % C;
                rect s = out->r[b];
                int rh = rect_h(s), rw = rect_w(s);
                if (!rh || !rw)
                    continue;
                int th = (rh - 1) * sh + kh, tw = (rw - 1) * sw + kw;
                zf_occl_build_tile(tile, in, b, base_in, c, s.y0 * sh - l->win.pt, s.x0 * sw - l->win.pl,
                           th, tw, 0.0f);
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++) {
                        float *dst = cols + ((size_t)(c * kh + ky) * kw + kx) * (size_t)ncols +
                                     (out->off[b] - col0);
                        for (int oy = 0; oy < rh; oy++) {
                            const float *src = tile + (size_t)(oy * sh + ky) * tw + kx;
                            for (int ox = 0; ox < rw; ox++)
                                dst[oy * rw + ox] = src[ox * sw];
                        }
                    }
            }
        }
        const int kk = cg * kh * kw;
        for (int g = 0; g < G; g++)
            zf_sgemm('N', 'N', kg, (int)ncols, kk, 1.0f,
                        l->weight + (size_t)g * kg * kk, kk, cols + (size_t)g * kk * ncols,
                        (int)ncols, 0.0f, out->v + (size_t)g * kg * out->cols + col0,
                        (int)out->cols);
        if (l->bias) {
#pragma omp parallel for schedule(static) if (ZF_OCCL_BIG((int64_t)K * ncols))
            for (int k = 0; k < K; k++) {
                float *row = out->v + (size_t)k * out->cols + col0;
                const float bk = l->bias[k];
                for (int64_t j = 0; j < ncols; j++)
                    row[j] += bk;
            }
        }
        b0 = b1;
    }
    return ZF_OK;
}

/* Stride 1: the new output is the old one plus the transposed convolution of the input's change,
 * which is nonzero only inside the input rectangle: G = W^T (new - old) as one sgemm, then each
 * product is added where its tap lands. Costs the input's area instead of the output's. */
static zf_status conv_delta(occl *o, const zf_layer *l, const conv_plan *cp, const float *base_in,
                            const float *base_out, const region *in, region *out, int64_t *scratch_pp)
{
    const int C = l->in_c, K = l->out_c, G = l->groups, cg = C / G, kg = K / G;
    const int kh = l->win.kh, kw = l->win.kw, pt = l->win.pt, pl = l->win.pl;
    const int H = in->h, W = in->w, OH = out->h, OW = out->w, taps = kh * kw;
    const int n = out->n;

    /* Start from the unoccluded output over each output rectangle. */
#pragma omp parallel for schedule(dynamic, 8) if (ZF_OCCL_BIG((int64_t)K * out->cols))
    for (int i = 0; i < n * K; i++) {
        int b = i / K, k = i % K;
        rect s = out->r[b];
        int rw = rect_w(s);
        float *dst = out->v + (size_t)k * out->cols + out->off[b];
        for (int y = s.y0; y < s.y1; y++)
            memcpy(dst + (size_t)(y - s.y0) * rw, base_out + ((size_t)k * OH + y) * OW + s.x0,
                   sizeof(float) * (size_t)rw);
    }
    /* Chunks narrow enough that a block of DELTA_MIN_BLOCK output channels fits a thread's
     * buffer: the products then have a useful height. */
    for (int b = 0; b < n; b++)
        scratch_pp[b] = rect_area(in->r[b]) * taps * DELTA_MIN_BLOCK;
    zf_status st;
    for (int b0 = 0; b0 < n;) {
        int b1 = chunk_end_under(b0, n, scratch_pp, (int64_t)DELTA_BLOCK_FLOATS);
        int64_t col0 = in->off[b0];
        int64_t nin = (b1 < n ? in->off[b1] : in->cols) - col0;
        if (nin == 0) {
            b0 = b1;
            continue;
        }
        /* Output channels in blocks whose products fit in a thread's share of L2. */
        const int kb = imax(1, imin(kg, (int)(DELTA_BLOCK_FLOATS / ((size_t)taps * (size_t)nin))));
        const int nblk_g = (kg + kb - 1) / kb;
        const size_t gsz = (size_t)kb * taps * (size_t)nin;
        if ((st = zf_occl_grow(&o->work, &o->work_cap, (size_t)C * (size_t)nin)) ||
            (st = zf_occl_grow(&o->work2, &o->work2_cap, gsz * (size_t)omp_get_max_threads())))
            return st;
        float *d = o->work;
#pragma omp parallel for schedule(dynamic, 8) if (ZF_OCCL_BIG((int64_t)C * nin))
        for (int i = 0; i < (b1 - b0) * C; i++) {
            int b = b0 + i / C, c = i % C;
            rect r = in->r[b];
            int rw = rect_w(r);
            const float *src = in->v + (size_t)c * in->cols + in->off[b];
            float *dst = d + (size_t)c * nin + (in->off[b] - col0);
            for (int y = r.y0; y < r.y1; y++) {
                const float *brow = base_in + ((size_t)c * H + y) * W + r.x0;
                for (int x = 0; x < rw; x++)
                    dst[(y - r.y0) * rw + x] = src[(y - r.y0) * rw + x] - brow[x];
            }
        }
        /* One block per thread at a time: its sgemm (single-threaded inside the parallel region)
         * into the thread's own buffer, then each product added where its tap lands while still
         * in cache. One fork and one join for the whole layer chunk. */
#pragma omp parallel if (ZF_OCCL_BIG((int64_t)K * taps * nin))
        {
            float *gm = o->work2 + gsz * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
            for (int q = 0; q < G * nblk_g; q++) {
                const int g = q / nblk_g, k0 = g * kg + (q % nblk_g) * kb, k1 = imin(k0 + kb, (g + 1) * kg);
                zf_sgemm('N', 'N', (k1 - k0) * taps, (int)nin, cg,
                            1.0f, cp->wt + (size_t)k0 * taps * cg, cg, d + (size_t)g * cg * nin,
                            (int)nin, 0.0f, gm, (int)nin);
                for (int b = b0; b < b1; b++) {
                    const rect r = in->r[b], s = out->r[b];
                    const int rw = rect_w(r), sw_ = rect_w(s);
                    if (!rw || !rect_h(r))
                        continue;
                    for (int k = k0; k < k1; k++) {
                        float *dst = out->v + (size_t)k * out->cols + out->off[b];
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++) {
                                const float *src = gm + ((size_t)(k - k0) * taps + ky * kw + kx) * nin +
                                                   (in->off[b] - col0);
                                /* input x lands on output x + pl - kx */
                                int xa = imax(r.x0, kx - pl), xb = imin(r.x1, OW + kx - pl);
                                if (xb <= xa)
                                    continue;
                                for (int y = r.y0; y < r.y1; y++) {
                                    int oy = y + pt - ky;
                                    if (oy < 0 || oy >= OH)
                                        continue;
                                    float *drow = dst + (size_t)(oy - s.y0) * sw_ + (xa + pl - kx - s.x0);
                                    const float *srow = src + (size_t)(y - r.y0) * rw + (xa - r.x0);
                                    for (int x = 0; x < xb - xa; x++)
                                        drow[x] += srow[x];
                                }
                            }
                    }
                }
            }
        }
        b0 = b1;
    }
    return ZF_OK;
}

/* Winograd F(m x m, r x r) (winograd_internal.h): m = 2 or 4 for 3x3 windows, 4 for 5x5. */
static int wino_m(zf_occlusion_conv algo) { return algo == ZF_OCCLUSION_CONV_WINOGRAD4 ? 4 : 2; }

/* Tilings of a changed rectangle. F(4x4) tiles alone cover a side of n outputs with ceil(n/4)
 * fours, up to three rows or columns of them wasted (AlexNet's conv3-5 computed 40% more outputs
 * than changed). For 3x3 windows each side is covered instead by sixes and fours, as few points
 * (six outputs take eight, four take six) as cover it; tiles F(6x6), F(6x4), F(4x6) and F(4x4)
 * by where they lie: 24-30% fewer multiplies than fours alone on AlexNet's conv3-5 at 32:8.
 * Class k: bit 1 set for the small size down, bit 0 across; other layers use class 0 alone,
 * m x m. */
#define TILE_CLASSES ZF_OCCL_TILE_CLASSES /* conv_plan's wino[] */
typedef struct tiling {
    int big, small; /* output sizes of a tile side; small = 0: one size */
} tiling;

static tiling plan_tiling(const conv_plan *cp, const zf_layer *l)
{
    if (cp->algo == ZF_OCCLUSION_CONV_WINOGRAD4 && l->win.kh == 3)
        return (tiling){6, 4};
    return (tiling){wino_m(cp->algo), 0};
}

static int class_rows(tiling tl, int k) { return k & 2 ? tl.small : tl.big; }
static int class_cols(tiling tl, int k) { return k & 1 ? tl.small : tl.big; }

/* Big and small tiles covering n outputs, in that order, with the fewest points. */
static void side_cover(int n, tiling tl, int *nbig, int *nsmall)
{
    *nbig = (n + tl.big - 1) / tl.big;
    *nsmall = 0;
    if (!tl.small)
        return;
    int best = INT32_MAX;
    for (int b = 0; b <= (n + tl.big - 1) / tl.big; b++) {
        const int rest = n - b * tl.big, s = rest > 0 ? (rest + tl.small - 1) / tl.small : 0;
        const int points = b * (tl.big + 2) + s * (tl.small + 2);
        if (points < best) {
            best = points;
            *nbig = b;
            *nsmall = s;
        }
    }
}

static zf_status conv_winograd(occl *o, const zf_layer *l, const conv_plan *cp, const float *base_in,
                               const region *in, region *out, int64_t *scratch_pp)
{
    const int r = l->win.kh;
    const tiling tl = plan_tiling(cp, l);
    const int C = l->in_c, K = l->out_c, G = l->groups, cg = C / G, kg = K / G;
    const int n = out->n;
    int nn[TILE_CLASSES];
    for (int k = 0; k < TILE_CLASSES; k++)
        nn[k] = (class_rows(tl, k) + r - 1) * (class_cols(tl, k) + r - 1);
    /* per class and position: its first tile; per position: its window's width and place in the
     * window scratch; per tile: its position and top-left output in the rectangle */
    int64_t *tcol = zf_malloc(sizeof(int64_t) * (size_t)TILE_CLASSES * (n + 1));
    int64_t *woff = zf_malloc(sizeof(int64_t) * (size_t)n);
    int *wtw = zf_malloc(sizeof(int) * (size_t)n), *wth = zf_malloc(sizeof(int) * (size_t)n);
    int (*cover)[4] = zf_malloc(sizeof(int[4]) * (size_t)n); /* big, small tiles down; across */
    int32_t *tmap[TILE_CLASSES] = {NULL};
    zf_status st = ZF_OK;
    if (!tcol || !woff || !wtw || !wth || !cover) {
        st = zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
        goto done;
    }
    for (int k = 0; k < TILE_CLASSES; k++)
        tcol[k * (n + 1)] = 0;
    for (int b = 0; b < n; b++) {
        rect s = out->r[b];
        int *cv = cover[b];
        side_cover(rect_h(s), tl, &cv[0], &cv[1]);
        side_cover(rect_w(s), tl, &cv[2], &cv[3]);
        if (!rect_area(s))
            cv[0] = cv[1] = cv[2] = cv[3] = 0;
        const int y4 = cv[0], y2 = cv[1], x4 = cv[2], x2 = cv[3];
        const int64_t cnt[TILE_CLASSES] = {(int64_t)y4 * x4, (int64_t)y4 * x2, (int64_t)y2 * x4, (int64_t)y2 * x2};
        scratch_pp[b] = 0;
        for (int k = 0; k < TILE_CLASSES; k++) {
            int64_t *tc = tcol + k * (n + 1);
            tc[b + 1] = tc[b] + cnt[k];
            scratch_pp[b] += cnt[k] * nn[k] * (C + K);
        }
        wth[b] = tl.big * y4 + tl.small * y2 + r - 1;
        wtw[b] = tl.big * x4 + tl.small * x2 + r - 1;
    }
    for (int k = 0; k < TILE_CLASSES && !st; k++) {
        const int64_t *tc = tcol + k * (n + 1);
        if (!(tmap[k] = zf_malloc(sizeof(int32_t) * 3 * (size_t)(tc[n] + 1)))) {
            st = zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
            break;
        }
        for (int b = 0; b < n; b++) {
            const int *cv = cover[b];
            const int ny = cv[k & 2 ? 1 : 0], nx = cv[k & 1 ? 3 : 2];
            /* small tiles follow the big ones */
            const int oy = k & 2 ? tl.big * cv[0] : 0, ox = k & 1 ? tl.big * cv[2] : 0;
            const int sy = class_rows(tl, k), sx = class_cols(tl, k);
            int64_t t = tc[b];
            for (int ty = 0; ty < ny; ty++)
                for (int tx = 0; tx < nx; tx++, t++) {
                    tmap[k][3 * t] = b;
                    tmap[k][3 * t + 1] = oy + sy * ty;
                    tmap[k][3 * t + 2] = ox + sx * tx;
                }
        }
    }
    static const float zeros[8] = {0};
    for (int b0 = 0; !st && b0 < n;) {
        int b1 = chunk_end(b0, n, scratch_pp);
        int64_t t0[TILE_CLASSES], T[TILE_CLASSES], vat[TILE_CLASSES], mat[TILE_CLASSES];
        int64_t vsum = 0, msum = 0, tsum = 0;
        for (int k = 0; k < TILE_CLASSES; k++) {
            const int64_t *tc = tcol + k * (n + 1);
            t0[k] = tc[b0];
            T[k] = tc[b1] - tc[b0];
            vat[k] = vsum;
            mat[k] = msum;
            vsum += (int64_t)nn[k] * C * T[k];
            msum += (int64_t)nn[k] * K * T[k];
            tsum += T[k];
        }
        if (tsum == 0) {
            b0 = b1;
            continue;
        }
        /* the chunk's patched windows of one channel, one after another, per thread; the
         * transform reads up to 8 - (its tile's columns) floats past a window's last tile */
        size_t wsum = 0;
        for (int b = b0; b < b1; b++) {
            woff[b] = (int64_t)wsum;
            if (rect_area(out->r[b]))
                wsum += (size_t)wth[b] * (size_t)wtw[b];
        }
        const size_t per_thread = wsum + 8;
        if ((st = zf_occl_reserve_tiles(o, per_thread)) ||
            (st = zf_occl_grow(&o->work, &o->work_cap, (size_t)vsum)) ||
            (st = zf_occl_grow(&o->work2, &o->work2_cap, (size_t)msum)))
            break;
        float *V = o->work, *M = o->work2;
        /* Channel by channel: the chunk's windows, then each class's tiles eight at a time, so
         * that each plane of V gets whole vectors. */
#pragma omp parallel if (ZF_OCCL_BIG(vsum))
        {
            float *win = o->tiles + per_thread * (size_t)omp_get_thread_num();
            memset(win + wsum, 0, sizeof(float) * 8);
#pragma omp for schedule(dynamic, 2)
            for (int c = 0; c < C; c++) {
                for (int b = b0; b < b1; b++) {
                    rect s = out->r[b];
                    if (!rect_area(s))
                        continue;
                    zf_occl_build_tile(win + woff[b], in, b, base_in, c, s.y0 - l->win.pt, s.x0 - l->win.pl,
                                       wth[b], wtw[b], 0.0f);
                }
                for (int k = 0; k < TILE_CLASSES; k++) {
                    float *vc = V + vat[k] + (size_t)c * T[k];
                    for (int64_t t = 0; t < T[k]; t += 8) {
                        const int lanes = T[k] - t < 8 ? (int)(T[k] - t) : 8;
                        const float *ptr[8];
                        int ld[8];
                        for (int q = 0; q < 8; q++) {
                            if (q < lanes) {
                                const int32_t *tm = tmap[k] + 3 * (t0[k] + t + q);
                                const int b = tm[0];
                                ptr[q] = win + woff[b] + (size_t)tm[1] * wtw[b] + tm[2];
                                ld[q] = wtw[b];
                            } else {
                                ptr[q] = zeros;
                                ld[q] = 0;
                            }
                        }
                        zf_wino_tiles_in8(vc + t, (size_t)C * T[k], ptr, ld, lanes, class_rows(tl, k),
                                          class_cols(tl, k), r);
                    }
                }
            }
        }
        /* The products of every class, group and element are independent: one per thread at a
         * time (OpenBLAS runs single-threaded inside a parallel region), one fork and one join. */
        int nq = 0, qk[TILE_CLASSES + 1];
        for (int k = 0; k < TILE_CLASSES; k++) {
            qk[k] = nq;
            nq += T[k] ? G * nn[k] : 0;
        }
        qk[TILE_CLASSES] = nq;
#pragma omp parallel for schedule(dynamic, 1) if (ZF_OCCL_BIG((int64_t)kg * cg * tsum / 64))
        for (int q = 0; q < nq; q++) {
            int k = 0;
            while (q >= qk[k + 1])
                k++;
            const int g = (q - qk[k]) / nn[k], xi = (q - qk[k]) % nn[k];
            const int Tk = (int)T[k];
            zf_sgemm('N', 'N', kg, Tk, cg, 1.0f,
                        cp->wino[k] + ((size_t)g * kg * nn[k] + xi) * cg, nn[k] * cg,
                        V + vat[k] + ((size_t)xi * C + (size_t)g * cg) * Tk, Tk, 0.0f,
                        M + mat[k] + ((size_t)xi * K + (size_t)g * kg) * Tk, Tk);
        }
        /* Back transform, output-channel-major: each M plane is read front to back. */
#pragma omp parallel for schedule(dynamic, 2) if (ZF_OCCL_BIG(msum))
        for (int kk = 0; kk < K; kk++) {
            const float bk = l->bias ? l->bias[kk] : 0.0f;
            float *dk = out->v + (size_t)kk * out->cols;
            for (int k = 0; k < TILE_CLASSES; k++) {
                const int ma = class_rows(tl, k), mb = class_cols(tl, k), nk = nn[k];
                const int64_t Tk = T[k];
                const float *mk = M + mat[k] + (size_t)kk * Tk;
                for (int64_t t = 0; t < Tk; t += ZF_WINO_LANES) {
                    const int lanes = Tk - t < ZF_WINO_LANES ? (int)(Tk - t) : ZF_WINO_LANES;
                    float mt[64][ZF_WINO_LANES], y[36][ZF_WINO_LANES];
                    if (lanes == ZF_WINO_LANES) {
                        for (int xi = 0; xi < nk; xi++)
                            memcpy(mt[xi], mk + (size_t)xi * K * Tk + t, sizeof mt[xi]);
                    } else {
                        for (int xi = 0; xi < nk; xi++)
                            for (int q = 0; q < ZF_WINO_LANES; q++)
                                mt[xi][q] = q < lanes ? mk[(size_t)xi * K * Tk + t + q] : 0.0f;
                    }
                    zf_wino_tiles_out_ab(y, (const float(*)[ZF_WINO_LANES])mt, ma, mb, r);
                    float *dst[ZF_WINO_LANES];
                    int ld[ZF_WINO_LANES], hy[ZF_WINO_LANES], hx[ZF_WINO_LANES];
                    unsigned whole = 0; /* lanes whose tile lies inside the rectangle */
                    for (int q = 0; q < lanes; q++) {
                        const int32_t *tm = tmap[k] + 3 * (t0[k] + t + q);
                        const rect s = out->r[tm[0]];
                        ld[q] = rect_w(s);
                        dst[q] = dk + out->off[tm[0]] + (size_t)tm[1] * ld[q] + tm[2];
                        hy[q] = imin(ma, rect_h(s) - tm[1]);
                        hx[q] = imin(mb, ld[q] - tm[2]);
                        if (hy[q] == ma && hx[q] == mb)
                            whole |= 1u << q;
                    }
#if defined(__AVX2__) && ZF_WINO_LANES == 8
                    if (whole && (mb == 4 || mb == 6)) {
                        /* four columns of a tile row at a time: four vectors of eight lanes into
                         * eight rows of four (or two, the last of six) */
                        const __m256 bv = _mm256_set1_ps(bk), zero = _mm256_setzero_ps();
                        for (int dy = 0; dy < ma; dy++)
                            for (int dx = 0; dx < mb; dx += 4) {
                                const float(*yr)[ZF_WINO_LANES] = y + dy * mb + dx;
                                const int two = mb - dx == 2;
                                const __m256 a0 = _mm256_add_ps(_mm256_loadu_ps(yr[0]), bv);
                                const __m256 a1 = _mm256_add_ps(_mm256_loadu_ps(yr[1]), bv);
                                const __m256 a2 = two ? zero : _mm256_add_ps(_mm256_loadu_ps(yr[2]), bv);
                                const __m256 a3 = two ? zero : _mm256_add_ps(_mm256_loadu_ps(yr[3]), bv);
                                const __m256 t01l = _mm256_unpacklo_ps(a0, a1), t01h = _mm256_unpackhi_ps(a0, a1);
                                const __m256 t23l = _mm256_unpacklo_ps(a2, a3), t23h = _mm256_unpackhi_ps(a2, a3);
                                const __m256 u[4] = {_mm256_shuffle_ps(t01l, t23l, _MM_SHUFFLE(1, 0, 1, 0)),
                                                     _mm256_shuffle_ps(t01l, t23l, _MM_SHUFFLE(3, 2, 3, 2)),
                                                     _mm256_shuffle_ps(t01h, t23h, _MM_SHUFFLE(1, 0, 1, 0)),
                                                     _mm256_shuffle_ps(t01h, t23h, _MM_SHUFFLE(3, 2, 3, 2))};
                                for (int q = 0; q < 8; q++) { /* u[q & 3]: lanes q & 3 low, (q & 3) + 4 high */
                                    if (!(whole >> q & 1))
                                        continue;
                                    const __m128 v = q < 4 ? _mm256_castps256_ps128(u[q])
                                                           : _mm256_extractf128_ps(u[q - 4], 1);
                                    float *d = dst[q] + (size_t)dy * ld[q] + dx;
                                    if (two)
                                        _mm_storel_pi((__m64 *)d, v);
                                    else
                                        _mm_storeu_ps(d, v);
                                }
                            }
                    } else {
                        whole = 0;
                    }
#else
                    whole = 0;
#endif
                    for (int q = 0; q < lanes; q++) {
                        if (whole >> q & 1)
                            continue;
                        for (int dy = 0; dy < hy[q]; dy++)
                            for (int dx = 0; dx < hx[q]; dx++)
                                dst[q][(size_t)dy * ld[q] + dx] = y[dy * mb + dx][q] + bk;
                    }
                }
            }
        }
        b0 = b1;
    }
done:
    for (int k = 0; k < TILE_CLASSES; k++)
        free(tmap[k]);
    free(cover);
    free(wth);
    free(wtw);
    free(woff);
    free(tcol);
    return st;
}

zf_status zf_occl_conv_region(occl *o, int li, const float *base_in, const region *in, region *out,
                              int64_t *scratch_pp)
{
    const zf_layer *l = &o->net->layers[li];
    switch (o->cp[li].algo) {
    case ZF_OCCLUSION_CONV_DELTA:
        return conv_delta(o, l, &o->cp[li], base_in, o->base[li], in, out, scratch_pp);
    case ZF_OCCLUSION_CONV_WINOGRAD:
    case ZF_OCCLUSION_CONV_WINOGRAD4:
        return conv_winograd(o, l, &o->cp[li], base_in, in, out, scratch_pp);
    default:
        return conv_im2col(o, l, base_in, in, out, scratch_pp);
    }
}

zf_status zf_occl_conv_prepare(const zf_layer *l, conv_plan *cp)
{
    const int C = l->in_c, K = l->out_c, G = l->groups, cg = C / G;
    const int taps = l->win.kh * l->win.kw;
    if (cp->algo == ZF_OCCLUSION_CONV_DELTA) {
        cp->wt = zf_occl_scratch_alloc(sizeof(float) * (size_t)K * cg * taps);
        if (!cp->wt)
            return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory for %s", l->name);
#pragma omp parallel for schedule(static) if (ZF_OCCL_BIG((int64_t)K * cg * taps))
        for (int k = 0; k < K; k++)
            for (int c = 0; c < cg; c++)
                for (int t = 0; t < taps; t++)
                    cp->wt[((size_t)k * taps + t) * cg + c] = l->weight[((size_t)k * cg + c) * taps + t];
    } else if (cp->algo == ZF_OCCLUSION_CONV_WINOGRAD || cp->algo == ZF_OCCLUSION_CONV_WINOGRAD4) {
        /* the classes the tiling uses: F(m x m) alone, or all four when mixed */
        const int r = l->win.kh;
        const tiling tl = plan_tiling(cp, l);
        for (int k = 0; k < (tl.small ? TILE_CLASSES : 1); k++) {
            const int ma = class_rows(tl, k), mb = class_cols(tl, k);
            const int nn = (ma + r - 1) * (mb + r - 1);
            cp->wino[k] = zf_occl_scratch_alloc(sizeof(float) * (size_t)nn * K * cg);
            if (!cp->wino[k])
                return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory for %s", l->name);
            zf_wino_filters_ab(cp->wino[k], l->weight, K, cg, ma, mb, r);
        }
    }
    return ZF_OK;
}
