/* Occlusion sensitivity maps (Zeiler & Fergus 4.2): a batched brute force, and an incremental
 * method that reuses the unoccluded activations outside each occluder's footprint and recomputes,
 * layer by layer, only the windows it changes (equal to the brute force up to float rounding).
 *
 * The incremental method carries, for a batch of positions, each position's changed rectangle of
 * the current layer's output and its values in one (channels, columns) matrix whose columns are
 * the positions' rectangles one after another, so that a layer over the whole batch is one big
 * sgemm per group. The fully connected tail runs densely on the reassembled vectors. */
#include "zf/occlusion.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zf/ops.h"
#include "zf/tensor.h"
#include "simd_internal.h"
#include "winograd_internal.h"

/* Scratch matrices (im2col columns, Winograd transforms) are cut into chunks of positions of
 * about this many floats (128 MB), which holds a whole batch of AlexNet's: each chunk costs every
 * GEMM a call, its weights a packing and each stage a fork and join. Measured on AlexNet 32:8
 * against 16 MB chunks (of half the last-level cache): conv2 155 -> 111 ms, conv3-5 632 -> 565 ms;
 * larger chunks and batches gained nothing more. */
#define CHUNK_FLOATS ((size_t)1 << 25)
/* Delta convolution: products of one block of output channels per thread, in floats (L2-sized). */
#define DELTA_BLOCK_FLOATS ((size_t)48 << 10)
#define DELTA_MIN_BLOCK 8
/* Changed-region storage per batch is kept under this many floats by shrinking the batch. */
#define REGION_BUDGET ((size_t)48 << 20)
/* Positions whose fully connected tail runs at once (their last spatial layer's regions and the
 * tail's rows kept under this many floats): one sgemm per cell of the map for all of them rather
 * than per batch, so the first fc's weights are packed, and fc7's streamed, once per group. */
#define FC_GROUP_BUDGET ((size_t)16 << 20)
/* Brute force: activations of a batch of images under this many floats. */
#define BRUTE_BUDGET ((size_t)64 << 20)
/* Loops over fewer elements than this run on one thread: a fork and join costs more, and far more
 * on a loaded machine. */
#define BIG(work) ((work) > 32768)
/* Auto picks the incremental method when its estimated work is below this share of brute force. */
#define AUTO_RATIO 0.8

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline size_t zmax(size_t a, size_t b) { return a > b ? a : b; }
static inline int floordiv(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static inline int ceildiv(int a, int b) { return -floordiv(-a, b); }

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Half-open rows [y0, y1) x columns [x0, x1); empty when either extent is zero. */
typedef struct rect {
    int y0, y1, x0, x1;
} rect;

static inline int rect_h(rect r) { return r.y1 - r.y0; }
static inline int rect_w(rect r) { return r.x1 - r.x0; }
static inline int64_t rect_area(rect r) { return (int64_t)rect_h(r) * rect_w(r); }

/* The outputs [*lo, *hi) of a window op (kernel k, stride s, leading padding p, o outputs) whose
 * windows touch inputs [a, b). Output i reads inputs [i*s - p, i*s - p + k). */
static void window_span(int a, int b, int k, int s, int p, int o, int *lo, int *hi)
{
    if (b <= a) {
        *lo = *hi = 0;
        return;
    }
    *lo = imax(0, ceildiv(a - k + 1 + p, s));
    *hi = imin(o, floordiv(b - 1 + p, s) + 1);
    if (*hi < *lo)
        *hi = *lo;
}

/* Adaptive average pooling: bin i spans [floor(i*n/o), ceil((i+1)*n/o)). */
static inline int adaptive_start(int i, int n, int o) { return (int)(((int64_t)i * n) / o); }
static inline int adaptive_end(int i, int n, int o) { return (int)(((int64_t)(i + 1) * n + o - 1) / o); }

static void adaptive_span(int a, int b, int n, int o, int *lo, int *hi)
{
    *lo = *hi = 0;
    if (b <= a)
        return;
    int first = -1, last = -1;
    for (int i = 0; i < o; i++)
        if (adaptive_start(i, n, o) < b && adaptive_end(i, n, o) > a) {
            if (first < 0)
                first = i;
            last = i;
        }
    if (first >= 0) {
        *lo = first;
        *hi = last + 1;
    }
}

/* The rectangle of layer l's output that can differ when its input differs inside r. */
static rect layer_rect(const zf_layer *l, rect r)
{
    rect o = r;
    switch (l->op) {
    case ZF_OP_CONV:
    case ZF_OP_MAXPOOL:
    case ZF_OP_AVGPOOL:
        window_span(r.y0, r.y1, l->win.kh, l->win.sh, l->win.pt, l->out_h, &o.y0, &o.y1);
        window_span(r.x0, r.x1, l->win.kw, l->win.sw, l->win.pl, l->out_w, &o.x0, &o.x1);
        break;
    case ZF_OP_ADAPTIVE_AVGPOOL:
        adaptive_span(r.y0, r.y1, l->in_h, l->out_h, &o.y0, &o.y1);
        adaptive_span(r.x0, r.x1, l->in_w, l->out_w, &o.x0, &o.x1);
        break;
    default:
        break;
    }
    if (rect_area(o) == 0)
        o.y0 = o.y1 = o.x0 = o.x1 = 0;
    return o;
}

/* The changed part of one layer's output for a batch of positions: position b's rectangle r[b]
 * of the (c, h, w) map holds v[ch * cols + off[b] + y * width + x] (row-major in the rectangle). */
typedef struct region {
    int c, h, w;
    int n;
    rect *r;
    int64_t *off;
    int64_t cols;
    float *v;
    size_t cap;
} region;

/* Memory that is written before it is read: no zeroing pass (zf_alloc's) over it (the first fc's
 * rearranged weights alone are 151 MB on AlexNet: their memset took 95 ms of a 1.4 s map). Not
 * on transparent huge pages: where the kernel compacts memory for them on demand, a map's first
 * run waited longer for them (1.46-1.99 s against 1.26-1.65 s on AlexNet 32:8) than later runs
 * gained. */
static void *scratch_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64))
        return NULL;
    return p;
}

static zf_status grow(float **buf, size_t *cap, size_t floats)
{
    if (floats <= *cap)
        return ZF_OK;
    size_t want = floats + floats / 4;
    void *p = scratch_alloc(want * sizeof(float));
    if (!p)
        return zf_error(ZF_ERR_NOMEM, "occlusion: cannot allocate %zu MiB of scratch", want >> 18);
    zf_free(*buf);
    *buf = p;
    *cap = want;
    return ZF_OK;
}

static zf_status grow_int(int **buf, size_t *cap, size_t n)
{
    if (n <= *cap)
        return ZF_OK;
    int *p = realloc(*buf, sizeof(int) * n);
    if (!p)
        return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
    *buf = p;
    *cap = n;
    return ZF_OK;
}

/* Sets the geometry and column offsets from r[] and makes room for the values. */
static zf_status region_layout(region *g, int c, int h, int w, int n)
{
    g->c = c;
    g->h = h;
    g->w = w;
    g->n = n;
    int64_t col = 0;
    for (int b = 0; b < n; b++) {
        g->off[b] = col;
        col += rect_area(g->r[b]);
    }
    g->cols = col;
    return grow(&g->v, &g->cap, (size_t)c * (size_t)col + 1);
}

/* Per conv layer: the chosen way to recompute it and its rearranged weights. */
typedef struct conv_plan {
    zf_occlusion_conv algo;
    float *wt;   /* DELTA: per group (kg*kh*kw, cg), W^T with taps in the rows */
    float *wino[4]; /* WINOGRAD(4): per tile class (k, na*nb, cg), G_a g G_b^T (zf_wino_filters_ab) */
} conv_plan;

typedef struct occl {
    zf_net *net;
    const zf_occlusion_params *p;
    int rows, cols, npos;
    int conv_layer, feat_layer, channel, cls, n_classes;
    int n_spatial;     /* layers [0, n_spatial) are followed as changed regions; the rest run dense */
    int incremental_ok;
    char why_not[160]; /* why the incremental method does not apply */
    float *base_in;    /* the unoccluded input and each layer's unoccluded output */
    float **base;
    float *base_block;
    double base_feat_total;
    conv_plan *cp;
    double cost_brute, cost_inc; /* estimated multiply-adds over the whole map */
    size_t region_pp;  /* largest changed region of one position, in floats */
    int batch;
    region reg[2];
    float *work;       /* im2col columns / Winograd V / delta D */
    size_t work_cap;
    float *work2;      /* Winograd M / delta G */
    size_t work2_cap;
    float *tiles;      /* one patched input window per thread */
    size_t tiles_cap;
    float *dense[2];   /* the fully connected tail, (batch, width) */
    size_t dense_cap[2];
    /* The tail's first fully connected layer as a change of its unoccluded output:
     * y = y0 + sum over changed cells of W[:, cell] (new - old), one sgemm per cell of the map. */
    int fc_delta;      /* its layer index, or -1 */
    float *fc_w;       /* its weights per cell: (cells, channels, out) */
    float *fc_a, *fc_y;
    size_t fc_a_cap, fc_y_cap;
    int *fc_rows;
    /* Inputs that are zero in every row of a product drop out of it (ReLU zeros: half the
     * columns of AlexNet's fc7): the rest of the inputs and their weights, gathered. */
    float *sp_x, *sp_w;
    size_t sp_x_cap, sp_w_cap;
    int *sp_idx;
    size_t sp_idx_cap;
    /* The positions whose fully connected tail is still to run, gathered over batches so that the
     * tail's sgemms are wide: their last spatial layer's regions, channel stride fc_grp.cols. */
    region fc_grp;
    int64_t fc_grp_p0;
    int fc_grp_max;
    zf_occlusion_result *res;
} occl;

/* ---------------------------------------------------------------------------------------------
 * Patched inputs: what a position's layer input holds anywhere. */

/* Writes into t (th, tw) what position b's input of channel c holds over rows [y0, y0 + th) and
 * columns [x0, x0 + tw): its changed values inside its rectangle, the unoccluded ones (base, the
 * (c, h, w) map) elsewhere, and `pad` outside the map. */
static void build_tile(float *restrict t, const region *in, int b, const float *base, int c, int y0,
                       int x0, int th, int tw, float pad)
{
    const int h = in->h, w = in->w;
    const rect r = in->r[b];
    const int rw = rect_w(r);
    const int xs = imax(x0, 0), xe = imin(x0 + tw, w);
    const float *reg = in->v + (size_t)c * in->cols + in->off[b];
    for (int ty = 0; ty < th; ty++) {
        float *dst = t + (size_t)ty * tw;
        const int y = y0 + ty;
        if (y < 0 || y >= h || xs >= xe) {
            for (int x = 0; x < tw; x++)
                dst[x] = pad;
            continue;
        }
        for (int x = x0; x < xs; x++)
            dst[x - x0] = pad;
        const float *brow = base + ((size_t)c * h + y) * w;
        int ra = xs, rb = xs;
        if (y >= r.y0 && y < r.y1) {
            ra = imax(xs, r.x0);
            rb = imin(xe, r.x1);
            if (rb < ra)
                ra = rb = xs;
        }
        if (ra > xs)
            memcpy(dst + (xs - x0), brow + xs, sizeof(float) * (size_t)(ra - xs));
        if (rb > ra)
            memcpy(dst + (ra - x0), reg + (size_t)(y - r.y0) * rw + (ra - r.x0),
                   sizeof(float) * (size_t)(rb - ra));
        int from = rb > ra ? rb : xs;
        if (xe > from)
            memcpy(dst + (from - x0), brow + from, sizeof(float) * (size_t)(xe - from));
        for (int x = xe; x < x0 + tw; x++)
            dst[x - x0] = pad;
    }
}

/* Room for one (th, tw) window per thread. */
static zf_status reserve_tiles(occl *o, size_t floats)
{
    return grow(&o->tiles, &o->tiles_cap, floats * (size_t)omp_get_max_threads());
}

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
    size_t tile_max = 0;
    for (int b = 0; b < out->n; b++) {
        rect s = out->r[b];
        scratch_pp[b] = rect_area(s) * rows;
        if (rect_area(s))
            tile_max = zmax(tile_max, (size_t)((rect_h(s) - 1) * sh + kh) *
                                                  (size_t)((rect_w(s) - 1) * sw + kw));
    }
    zf_status st = reserve_tiles(o, tile_max);
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
        if ((st = grow(&o->work, &o->work_cap, (size_t)rows * (size_t)ncols)))
            return st;
        float *cols = o->work;
        const int npairs = (b1 - b0) * C;
#pragma omp parallel if (BIG((int64_t)rows * ncols))
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
                build_tile(tile, in, b, base_in, c, s.y0 * sh - l->win.pt, s.x0 * sw - l->win.pl,
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kg, (int)ncols, kk, 1.0f,
                        l->weight + (size_t)g * kg * kk, kk, cols + (size_t)g * kk * ncols,
                        (int)ncols, 0.0f, out->v + (size_t)g * kg * out->cols + col0,
                        (int)out->cols);
        if (l->bias) {
#pragma omp parallel for schedule(static) if (BIG((int64_t)K * ncols))
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
#pragma omp parallel for schedule(dynamic, 8) if (BIG((int64_t)K * out->cols))
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
        if ((st = grow(&o->work, &o->work_cap, (size_t)C * (size_t)nin)) ||
            (st = grow(&o->work2, &o->work2_cap, gsz * (size_t)omp_get_max_threads())))
            return st;
        float *d = o->work;
#pragma omp parallel for schedule(dynamic, 8) if (BIG((int64_t)C * nin))
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
#pragma omp parallel if (BIG((int64_t)K * taps * nin))
        {
            float *gm = o->work2 + gsz * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
            for (int q = 0; q < G * nblk_g; q++) {
                const int g = q / nblk_g, k0 = g * kg + (q % nblk_g) * kb, k1 = imin(k0 + kb, (g + 1) * kg);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (k1 - k0) * taps, (int)nin, cg,
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
#define TILE_CLASSES 4
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
    int64_t *tcol = malloc(sizeof(int64_t) * (size_t)TILE_CLASSES * (n + 1));
    int64_t *woff = malloc(sizeof(int64_t) * (size_t)n);
    int *wtw = malloc(sizeof(int) * (size_t)n), *wth = malloc(sizeof(int) * (size_t)n);
    int (*cover)[4] = malloc(sizeof(int[4]) * (size_t)n); /* big, small tiles down; across */
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
        if (!(tmap[k] = malloc(sizeof(int32_t) * 3 * (size_t)(tc[n] + 1)))) {
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
        if ((st = reserve_tiles(o, per_thread)) || (st = grow(&o->work, &o->work_cap, (size_t)vsum)) ||
            (st = grow(&o->work2, &o->work2_cap, (size_t)msum)))
            break;
        float *V = o->work, *M = o->work2;
        /* Channel by channel: the chunk's windows, then each class's tiles eight at a time, so
         * that each plane of V gets whole vectors. */
#pragma omp parallel if (BIG(vsum))
        {
            float *win = o->tiles + per_thread * (size_t)omp_get_thread_num();
            memset(win + wsum, 0, sizeof(float) * 8);
#pragma omp for schedule(dynamic, 2)
            for (int c = 0; c < C; c++) {
                for (int b = b0; b < b1; b++) {
                    rect s = out->r[b];
                    if (!rect_area(s))
                        continue;
                    build_tile(win + woff[b], in, b, base_in, c, s.y0 - l->win.pt, s.x0 - l->win.pl, wth[b],
                               wtw[b], 0.0f);
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
#pragma omp parallel for schedule(dynamic, 1) if (BIG((int64_t)kg * cg * tsum / 64))
        for (int q = 0; q < nq; q++) {
            int k = 0;
            while (q >= qk[k + 1])
                k++;
            const int g = (q - qk[k]) / nn[k], xi = (q - qk[k]) % nn[k];
            const int Tk = (int)T[k];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kg, Tk, cg, 1.0f,
                        cp->wino[k] + ((size_t)g * kg * nn[k] + xi) * cg, nn[k] * cg,
                        V + vat[k] + ((size_t)xi * C + (size_t)g * cg) * Tk, Tk, 0.0f,
                        M + mat[k] + ((size_t)xi * K + (size_t)g * kg) * Tk, Tk);
        }
        /* Back transform, output-channel-major: each M plane is read front to back. */
#pragma omp parallel for schedule(dynamic, 2) if (BIG(msum))
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

/* ---------------------------------------------------------------------------------------------
 * Pooling over the changed windows. */

static zf_status pool_region(occl *o, const zf_layer *l, const float *base_in, const region *in,
                             region *out)
{
    const int kh = l->win.kh, kw = l->win.kw, sh = l->win.sh, sw = l->win.sw;
    const int C = out->c, H = in->h, W = in->w;
    const int is_max = l->op == ZF_OP_MAXPOOL;
    size_t tile_max = 0;
    for (int b = 0; b < out->n; b++) {
        rect s = out->r[b];
        if (rect_area(s))
            tile_max = zmax(tile_max, (size_t)((rect_h(s) - 1) * sh + kh) *
                                                  (size_t)((rect_w(s) - 1) * sw + kw));
    }
    zf_status st = reserve_tiles(o, tile_max);
    if (st)
        return st;
#pragma omp parallel if (BIG((int64_t)out->cols * C * kh * kw))
    {
        float *tile = o->tiles + tile_max * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 8)
        for (int i = 0; i < out->n * C; i++) {
            int b = i / C, c = i % C;
            rect s = out->r[b];
            int rh = rect_h(s), rw = rect_w(s);
            if (!rh || !rw)
                continue;
            int th = (rh - 1) * sh + kh, tw = (rw - 1) * sw + kw;
            int y0 = s.y0 * sh - l->win.pt, x0 = s.x0 * sw - l->win.pl;
            build_tile(tile, in, b, base_in, c, y0, x0, th, tw, is_max ? -INFINITY : 0.0f);
            float *dst = out->v + (size_t)c * out->cols + out->off[b];
            for (int oy = 0; oy < rh; oy++)
                for (int ox = 0; ox < rw; ox++) {
                    const float *win = tile + (size_t)(oy * sh) * tw + ox * sw;
                    if (is_max) {
                        float acc = -INFINITY;
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++) {
                                float v = win[ky * tw + kx];
                                acc = v > acc ? v : acc;
                            }
                        /* a window over padding only gives 0, as the engine's */
                        dst[oy * rw + ox] = acc == -INFINITY ? 0.0f : acc;
                    } else {
                        double acc = 0;
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++)
                                acc += win[ky * tw + kx];
                        /* PyTorch's divisor: the window clipped to the padded map, or to the map. */
                        int ys = (s.y0 + oy) * sh - l->win.pt, xs = (s.x0 + ox) * sw - l->win.pl;
                        int ye = imin(ys + kh, H + l->win.pb), xe = imin(xs + kw, W + l->win.pr);
                        int div = (ye - ys) * (xe - xs);
                        if (!l->count_include_pad)
                            div = (imin(ys + kh, H) - imax(ys, 0)) * (imin(xs + kw, W) - imax(xs, 0));
                        dst[oy * rw + ox] = div > 0 ? (float)(acc / div) : 0.0f;
                    }
                }
        }
    }
    return ZF_OK;
}

/* A position's input value anywhere in the map (adaptive pooling's bins vary in size). */
static inline float patched_at(const region *in, int b, const float *base, int c, int y, int x)
{
    rect r = in->r[b];
    if (y >= r.y0 && y < r.y1 && x >= r.x0 && x < r.x1)
        return in->v[(size_t)c * in->cols + in->off[b] + (size_t)(y - r.y0) * rect_w(r) + (x - r.x0)];
    return base[((size_t)c * in->h + y) * in->w + x];
}

static void adaptive_region(const float *base_in, const region *in, region *out)
{
    const int C = out->c, H = in->h, W = in->w, OH = out->h, OW = out->w;
#pragma omp parallel for schedule(dynamic, 8) if (BIG((int64_t)out->cols * C * 4))
    for (int i = 0; i < out->n * C; i++) {
        int b = i / C, c = i % C;
        rect s = out->r[b];
        float *dst = out->v + (size_t)c * out->cols + out->off[b];
        for (int oy = s.y0; oy < s.y1; oy++)
            for (int ox = s.x0; ox < s.x1; ox++) {
                int ys = adaptive_start(oy, H, OH), ye = adaptive_end(oy, H, OH);
                int xs = adaptive_start(ox, W, OW), xe = adaptive_end(ox, W, OW);
                double acc = 0;
                for (int y = ys; y < ye; y++)
                    for (int x = xs; x < xe; x++)
                        acc += patched_at(in, b, base_in, c, y, x);
                dst[(oy - s.y0) * rect_w(s) + (ox - s.x0)] = (float)(acc / ((ye - ys) * (xe - xs)));
            }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Set-up: which layers, which channel and class, what the unoccluded input gives. */

static int is_spatial(zf_op op)
{
    return op == ZF_OP_CONV || op == ZF_OP_RELU || op == ZF_OP_LRN || op == ZF_OP_MAXPOOL ||
           op == ZF_OP_AVGPOOL || op == ZF_OP_ADAPTIVE_AVGPOOL || op == ZF_OP_DROPOUT;
}

static int is_dense_ok(zf_op op)
{
    return op == ZF_OP_FLATTEN || op == ZF_OP_FC || op == ZF_OP_RELU || op == ZF_OP_DROPOUT ||
           op == ZF_OP_SOFTMAX;
}

/* The most probable class of an output row (first on ties). */
static int top_class(const float *row, int nc)
{
    int best = 0;
    for (int k = 1; k < nc; k++)
        if (row[k] > row[best])
            best = k;
    return best;
}

/* Probability of o->cls and the most probable class for each of n output rows (probabilities
 * when the net ends with a softmax, else logits). */
static void read_outputs(const occl *o, const float *outp, int n, float *prob, int32_t *argmax)
{
    const zf_net *net = o->net;
    const int nc = o->n_classes;
    const int is_softmax = net->layers[net->n_layers - 1].op == ZF_OP_SOFTMAX;
    for (int i = 0; i < n; i++) {
        const float *row = outp + (size_t)i * nc;
        int best = top_class(row, nc);
        if (is_softmax) {
            prob[i] = row[o->cls];
        } else {
            double sum = 0;
            for (int k = 0; k < nc; k++)
                sum += exp((double)row[k] - (double)row[best]);
            prob[i] = (float)(exp((double)row[o->cls] - (double)row[best]) / sum);
        }
        argmax[i] = best;
    }
}

/* Sum of the rectified channel over a (c, h, w) map. */
static double channel_total(const float *map, const zf_layer *l, int ch)
{
    const float *p = map + (size_t)ch * l->out_h * l->out_w;
    double sum = 0;
    for (int i = 0; i < l->out_h * l->out_w; i++)
        sum += p[i] > 0 ? p[i] : 0;
    return sum;
}

static zf_status resolve_layer(occl *o, int layer)
{
    const zf_net *net = o->net;
    int conv = -1;
    if (layer < 0) {
        for (int i = net->n_layers - 1; i >= 0 && conv < 0; i--)
            if (net->layers[i].op == ZF_OP_CONV)
                conv = i;
        if (conv < 0)
            return zf_error(ZF_ERR_ARG, "occlusion: %s has no convolution layer", net->arch);
    } else if (layer >= net->n_layers) {
        return zf_error(ZF_ERR_ARG, "occlusion: layer index %d out of range (%s has %d layers)",
                        layer, net->arch, net->n_layers);
    } else if (net->layers[layer].op == ZF_OP_CONV) {
        conv = layer;
    } else if (net->layers[layer].op == ZF_OP_RELU && layer > 0 &&
               net->layers[layer - 1].op == ZF_OP_CONV) {
        conv = layer - 1;
    } else {
        return zf_error(ZF_ERR_ARG, "occlusion: layer %s is a %s, not a convolution or its ReLU",
                        net->layers[layer].name, zf_op_name(net->layers[layer].op));
    }
    o->conv_layer = conv;
    o->feat_layer = conv + 1 < net->n_layers && net->layers[conv + 1].op == ZF_OP_RELU ? conv + 1 : conv;
    return ZF_OK;
}

/* Decides whether the incremental method applies: a prefix of window and pointwise layers
 * followed by a dense tail, with the summed feature map inside the prefix. */
static void check_incremental(occl *o)
{
    const zf_net *net = o->net;
    int i = 0;
    while (i < net->n_layers && is_spatial(net->layers[i].op))
        i++;
    o->n_spatial = i;
    o->incremental_ok = 0;
    if (i == 0) {
        snprintf(o->why_not, sizeof o->why_not, "the first layer (%s) is not a window or pointwise op",
                 net->n_layers ? net->layers[0].name : "none");
        return;
    }
    if (o->feat_layer >= i) {
        snprintf(o->why_not, sizeof o->why_not, "layer %s comes after the dense part",
                 net->layers[o->feat_layer].name);
        return;
    }
    int64_t width = zf_layer_out_size(&net->layers[i - 1]);
    for (int j = i; j < net->n_layers; j++) {
        const zf_layer *l = &net->layers[j];
        if (!is_dense_ok(l->op) || zf_layer_in_size(l) != width) {
            snprintf(o->why_not, sizeof o->why_not, "layer %s (%s) after the convolutions", l->name,
                     zf_op_name(l->op));
            return;
        }
        width = zf_layer_out_size(l);
    }
    for (int j = 0; j < i; j++) {
        const zf_layer *l = &net->layers[j];
        if (l->op == ZF_OP_CONV && (l->groups < 1 || l->in_c % l->groups || l->out_c % l->groups)) {
            snprintf(o->why_not, sizeof o->why_not, "layer %s has %d groups", l->name, l->groups);
            return;
        }
    }
    o->incremental_ok = 1;
}

/* Follows every position's footprint to estimate the work of both methods, picks each conv
 * layer's way of recomputing, and finds the largest per-position region. */
/* Estimated cost of F(4x4, r x r) over `tiles` tiles, in im2col multiply-adds (measured on
 * AlexNet's conv2-5: the transforms and narrower sgemms cost 1.8x per product). */
static double wino4_cost(double tiles, int r, double kc) { return 1.8 * tiles * (r == 3 ? 36.0 : 64.0) * kc; }

/* Multiply-adds of one image through a conv layer as the dense forward (conv.c) runs it, in the
 * same units as the incremental method's estimates below: 3x3 and 5x5 stride-1 layers by
 * F(4x4) Winograd, 5x5 stride-2 ones by F(4x4, 3x3) on the input's four phases (36 taps), the
 * rest by im2col. */
static double dense_conv_cost(const zf_layer *l)
{
    const int cg = l->in_c / imax(l->groups, 1), kh = l->win.kh, kw = l->win.kw;
    const double direct = (double)zf_layer_out_size(l) * cg * kh * kw;
    const double tiles4 = (double)((l->out_h + 3) / 4) * ((l->out_w + 3) / 4), kc = (double)l->out_c * cg;
    double wino = INFINITY;
    if (kh == kw && l->win.sh == 1 && l->win.sw == 1 && (kh == 3 || kh == 5))
        wino = wino4_cost(tiles4, kh, kc);
    else if (kh == 5 && kw == 5 && l->win.sh == 2 && l->win.sw == 2)
        wino = wino4_cost(tiles4, 3, 4.0 * kc); /* four phases per input channel */
    return wino < direct ? wino : direct;
}

static void estimate(occl *o)
{
    const zf_net *net = o->net;
    const int ns = o->n_spatial;
    double *area_in = calloc((size_t)ns + 1, sizeof(double));
    double *area_out = calloc((size_t)ns + 1, sizeof(double));
    double *tiles = calloc((size_t)ns + 1, sizeof(double));
    double *tiles4 = calloc((size_t)ns + 1, sizeof(double));
    double per_image = 0, tail = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if (l->op == ZF_OP_CONV)
            per_image += dense_conv_cost(l);
        else if (l->op == ZF_OP_FC) {
            per_image += (double)zf_layer_in_size(l) * l->out_c;
            if (i >= ns)
                tail += (double)zf_layer_in_size(l) * l->out_c;
        }
    }
    o->cost_brute = per_image * o->npos;
    o->region_pp = 1;
    if (!o->incremental_ok || !area_in || !area_out || !tiles || !tiles4) {
        free(area_in);
        free(area_out);
        free(tiles);
        free(tiles4);
        o->cost_inc = o->cost_brute;
        return;
    }
    const int P = o->p->patch, S = o->p->stride;
    for (int iy = 0; iy < o->rows; iy++)
        for (int ix = 0; ix < o->cols; ix++) {
            rect r = {iy * S, iy * S + P, ix * S, ix * S + P};
            size_t biggest = (size_t)net->in_c * (size_t)rect_area(r);
            for (int i = 0; i < ns; i++) {
                const zf_layer *l = &net->layers[i];
                rect s = layer_rect(l, r);
                area_in[i] += (double)rect_area(r);
                area_out[i] += (double)rect_area(s);
                tiles[i] += (double)((rect_h(s) + 1) / 2) * ((rect_w(s) + 1) / 2);
                tiles4[i] += (double)((rect_h(s) + 3) / 4) * ((rect_w(s) + 3) / 4);
                size_t f = (size_t)l->out_c * (size_t)rect_area(s);
                if (f > biggest)
                    biggest = f;
                r = s;
            }
            if (biggest > o->region_pp)
                o->region_pp = biggest;
        }
    double inc = tail * o->npos;
    for (int i = 0; i < ns; i++) {
        const zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_CONV)
            continue;
        const double per_px = (double)l->out_c * (l->in_c / l->groups) * l->win.kh * l->win.kw;
        const int s1 = l->win.sh == 1 && l->win.sw == 1;
        const int w3 = s1 && l->win.kh == 3 && l->win.kw == 3;
        const int w5 = s1 && l->win.kh == 5 && l->win.kw == 5; /* F(4x4, 5x5) only */
        /* Time per multiply-add relative to im2col's, as measured on AlexNet's conv2-5 (one
         * thread, patch 32): the scatter, the transforms and their narrower sgemms cost extra,
         * and the delta's sgemm is as deep as the input channels (64 in AlexNet's conv2). */
        const int cg = l->in_c / l->groups;
        double c_im2col = area_out[i] * per_px;
        double c_delta = s1 ? (cg >= 128 ? 1.05 : 1.6) * area_in[i] * per_px : INFINITY;
        const double kc = (double)l->out_c * cg;
        double c_wino = w3 ? 1.4 * tiles[i] * 16.0 * kc : INFINITY;
        double c_wino4 = w3 || w5 ? wino4_cost(tiles4[i], l->win.kh, kc) : INFINITY;
        zf_occlusion_conv algo = ZF_OCCLUSION_CONV_IM2COL;
        double c = c_im2col;
        switch (o->p->conv) {
        case ZF_OCCLUSION_CONV_AUTO:
            if (c_delta < c) {
                algo = ZF_OCCLUSION_CONV_DELTA;
                c = c_delta;
            }
            if (c_wino < c) {
                algo = ZF_OCCLUSION_CONV_WINOGRAD;
                c = c_wino;
            }
            if (c_wino4 < c) {
                algo = ZF_OCCLUSION_CONV_WINOGRAD4;
                c = c_wino4;
            }
            break;
        case ZF_OCCLUSION_CONV_DELTA:
            if (s1) {
                algo = ZF_OCCLUSION_CONV_DELTA;
                c = c_delta;
            }
            break;
        case ZF_OCCLUSION_CONV_WINOGRAD:
            if (w3) {
                algo = ZF_OCCLUSION_CONV_WINOGRAD;
                c = c_wino;
            }
            break;
        case ZF_OCCLUSION_CONV_WINOGRAD4:
            if (w3 || w5) {
                algo = ZF_OCCLUSION_CONV_WINOGRAD4;
                c = c_wino4;
            }
            break;
        default:
            break;
        }
        o->cp[i].algo = algo;
        inc += c;
    }
    /* The first fully connected layer of the tail, as a change, when that saves work. */
    int fi = ns;
    while (fi < net->n_layers && (net->layers[fi].op == ZF_OP_FLATTEN || net->layers[fi].op == ZF_OP_DROPOUT))
        fi++;
    if (fi < net->n_layers && net->layers[fi].op == ZF_OP_FC && o->p->conv != ZF_OCCLUSION_CONV_IM2COL) {
        const zf_layer *fl = &net->layers[fi], *ll = &net->layers[ns - 1];
        const double in_f = (double)zf_layer_in_size(fl), out_f = fl->out_c;
        const double full = in_f * out_f * o->npos;
        /* per-cell sgemms are only as wide as the channels: weigh them a third more */
        const double delta = 1.3 * area_out[ns - 1] * ll->out_c * out_f + 2.0 * in_f * out_f;
        const int fits = in_f * out_f * sizeof(float) <= (double)((size_t)1 << 30);
        if (fits && (delta < full || o->p->conv == ZF_OCCLUSION_CONV_DELTA)) {
            o->fc_delta = fi;
            inc += delta - full;
        }
    }
    o->cost_inc = inc;
    free(area_in);
    free(area_out);
    free(tiles);
    free(tiles4);
}

/* Rearranged weights for the chosen conv methods. */
static zf_status prepare_convs(occl *o)
{
    const zf_net *net = o->net;
    for (int i = 0; i < o->n_spatial; i++) {
        const zf_layer *l = &net->layers[i];
        conv_plan *cp = &o->cp[i];
        if (l->op != ZF_OP_CONV)
            continue;
        const int C = l->in_c, K = l->out_c, G = l->groups, cg = C / G;
        const int taps = l->win.kh * l->win.kw;
        if (cp->algo == ZF_OCCLUSION_CONV_DELTA) {
            cp->wt = scratch_alloc(sizeof(float) * (size_t)K * cg * taps);
            if (!cp->wt)
                return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory for %s", l->name);
#pragma omp parallel for schedule(static) if (BIG((int64_t)K * cg * taps))
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
                cp->wino[k] = scratch_alloc(sizeof(float) * (size_t)nn * K * cg);
                if (!cp->wino[k])
                    return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory for %s", l->name);
                zf_wino_filters_ab(cp->wino[k], l->weight, K, cg, ma, mb, r);
            }
        }
    }
    if (o->fc_delta >= 0) {
        const zf_layer *fl = &net->layers[o->fc_delta], *ll = &net->layers[o->n_spatial - 1];
        const int C = ll->out_c, cells = ll->out_h * ll->out_w, out_f = fl->out_c;
        const int64_t in_f = zf_layer_in_size(fl);
        o->fc_w = scratch_alloc(sizeof(float) * (size_t)in_f * out_f);
        if (!o->fc_w)
            return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory for %s", fl->name);
        /* W^T with its rows in cell-major order: eight weight rows by eight columns at a time
         * (one 8 x 8 transpose), each column's eight values stored past the caches where aligned
         * (151 MB on AlexNet, written once and read back much later) */
        const float *w = fl->weight;
        float *fw = o->fc_w;
#pragma omp parallel
        {
#pragma omp for schedule(static)
        for (int f0 = 0; f0 < out_f; f0 += 8) {
            const int fn = imin(8, out_f - f0);
            const float *rows = w + (size_t)f0 * in_f;
            int64_t j = 0;
#ifdef __AVX2__
            if (fn == 8)
                for (; j + 8 <= in_f; j += 8) {
                    __m256 a[8];
                    for (int q = 0; q < 8; q++)
                        a[q] = _mm256_loadu_ps(rows + (size_t)q * in_f + j);
                    zf_transpose8x8(a);
                    for (int q = 0; q < 8; q++) { /* column j + q of the eight rows */
                        const __m256 col = a[q];
                        const int64_t jj = j + q, c = jj / cells, cell = jj % cells;
                        float *dst = fw + ((size_t)cell * C + c) * out_f + f0;
                        if (((uintptr_t)dst & 31) == 0)
                            _mm256_stream_ps(dst, col);
                        else
                            _mm256_storeu_ps(dst, col);
                    }
                }
#endif
            for (; j < in_f; j++) {
                const int64_t c = j / cells, cell = j % cells;
                float *dst = fw + ((size_t)cell * C + c) * out_f + f0;
                for (int f = 0; f < fn; f++)
                    dst[f] = rows[(size_t)f * in_f + j];
            }
        }
#ifdef __AVX2__
        _mm_sfence(); /* this thread's streamed stores, before the barrier that ends the region */
#endif
        }
    }
    return ZF_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The two methods. */

static void position_of(const occl *o, int64_t idx, int *py, int *px)
{
    *py = (int)(idx / o->cols) * o->p->stride;
    *px = (int)(idx % o->cols) * o->p->stride;
}

static zf_status interrupted(int64_t done, int64_t total)
{
    return zf_error(ZF_ERR_INTERRUPTED, "occlusion: interrupted after %lld of %lld positions",
                    (long long)done, (long long)total);
}

static zf_status run_brute(occl *o)
{
    zf_net *net = o->net;
    const int P = o->p->patch;
    const int64_t in_size = zf_net_in_size(net);
    int bsz = o->p->batch;
    if (bsz <= 0) {
        size_t per_image = (size_t)in_size;
        for (int i = 0; i < net->n_layers; i++)
            if (!net->layers[i].in_place)
                per_image += (size_t)zf_layer_out_size(&net->layers[i]);
        bsz = (int)(BRUTE_BUDGET / per_image);
        bsz = imax(1, imin(bsz, 32));
    }
    bsz = (int)imin(bsz, o->npos);
    zf_status st = zf_net_reserve(net, bsz);
    if (st)
        return st;
    const zf_layer *fl = &net->layers[o->feat_layer];
    const int64_t fsize = zf_layer_out_size(fl);
    for (int64_t p0 = 0; p0 < o->npos; p0 += bsz) {
        if (zf_interrupted)
            return interrupted(p0, o->npos);
        int n = (int)(o->npos - p0 < bsz ? o->npos - p0 : bsz);
#pragma omp parallel for schedule(static) if (BIG((int64_t)n * in_size))
        for (int i = 0; i < n; i++) {
            int py, px;
            position_of(o, p0 + i, &py, &px);
            float *img = net->input + (size_t)i * in_size;
            memcpy(img, o->base_in, sizeof(float) * (size_t)in_size);
            for (int c = 0; c < net->in_c; c++)
                for (int y = py; y < py + P; y++) {
                    float *row = img + ((size_t)c * net->in_h + y) * net->in_w + px;
                    for (int x = 0; x < P; x++)
                        row[x] = o->p->fill;
                }
        }
        if ((st = zf_net_forward(net, NULL, n)))
            return st;
        const float *fm = zf_net_act(net, o->feat_layer);
        for (int i = 0; i < n; i++)
            o->res->feature[p0 + i] = (float)channel_total(fm + (size_t)i * fsize, fl, o->channel);
        read_outputs(o, zf_net_act(net, net->n_layers - 1), n, o->res->prob + p0, o->res->argmax + p0);
        if (o->p->progress)
            o->p->progress(o->p->progress_ctx, p0 + n, o->npos);
    }
    return ZF_OK;
}

/* The rectified channel's total for each position, from the feature layer's region. */
static void region_features(occl *o, const region *g, int64_t p0)
{
    const zf_layer *fl = &o->net->layers[o->feat_layer];
    const float *bm = o->base[o->feat_layer] + (size_t)o->channel * fl->out_h * fl->out_w;
    for (int b = 0; b < g->n; b++) {
        rect r = g->r[b];
        const float *v = g->v + (size_t)o->channel * g->cols + g->off[b];
        double sum = o->base_feat_total;
        for (int y = r.y0; y < r.y1; y++)
            for (int x = r.x0; x < r.x1; x++) {
                float old = bm[y * fl->out_w + x];
                float nv = v[(y - r.y0) * rect_w(r) + (x - r.x0)];
                sum += (nv > 0 ? nv : 0) - (old > 0 ? old : 0);
            }
        o->res->feature[p0 + b] = (float)sum;
    }
}

/* Layers [0, n_spatial) of one batch: region in, region out. */
static zf_status run_region_layer(occl *o, int li, region **cur, region **nxt, int64_t *scratch_pp)
{
    const zf_layer *l = &o->net->layers[li];
    const float *base_in = li == 0 ? o->base_in : o->base[li - 1];
    region *in = *cur, *out = *nxt;
    zf_status st = ZF_OK;
    switch (l->op) {
    case ZF_OP_DROPOUT:
        return ZF_OK;
    case ZF_OP_RELU:
        zf_relu_forward(in->v, in->v, (size_t)in->c * (size_t)in->cols);
        return ZF_OK;
    case ZF_OP_ADAPTIVE_AVGPOOL:
        /* to its input's size (torchvision AlexNet's 6x6 at 224): one value per bin, the identity */
        if (l->out_h == l->in_h && l->out_w == l->in_w)
            return ZF_OK;
        break;
    default:
        break;
    }
    for (int b = 0; b < in->n; b++)
        out->r[b] = layer_rect(l, in->r[b]);
    if ((st = region_layout(out, l->out_c, l->out_h, l->out_w, in->n)))
        return st;
    switch (l->op) {
    case ZF_OP_CONV:
        switch (o->cp[li].algo) {
        case ZF_OCCLUSION_CONV_DELTA:
            st = conv_delta(o, l, &o->cp[li], base_in, o->base[li], in, out, scratch_pp);
            break;
        case ZF_OCCLUSION_CONV_WINOGRAD:
        case ZF_OCCLUSION_CONV_WINOGRAD4:
            st = conv_winograd(o, l, &o->cp[li], base_in, in, out, scratch_pp);
            break;
        default:
            st = conv_im2col(o, l, base_in, in, out, scratch_pp);
            break;
        }
        break;
    case ZF_OP_LRN:
        if (in->cols)
            zf_lrn_forward(out->v, in->v, 1, in->c, (int)in->cols, &l->lrn);
        break;
    case ZF_OP_MAXPOOL:
    case ZF_OP_AVGPOOL:
        st = pool_region(o, l, base_in, in, out);
        break;
    case ZF_OP_ADAPTIVE_AVGPOOL:
        adaptive_region(base_in, in, out);
        break;
    default:
        return zf_error(ZF_ERR_UNSUPPORTED, "occlusion: layer %s (%s) in the incremental path",
                        l->name, zf_op_name(l->op));
    }
    *cur = out;
    *nxt = in;
    return st;
}

/* Products by inputs that are zero in a whole column (a ReLU's zeros, the same in every row:
 * half of fc7's inputs over AlexNet's 625 positions) skip those columns and their weights. */
#define SPARSE_MIN_ROWS 16 /* below, gathering the weights costs about what it saves */
#define SPARSE_MAX_KEPT 0.9

/* y (n, out_f) = beta y + x (n, k) W^T, W given per input (w_per_input: (k, out_f), a row per
 * input) or per output ((out_f, k), a layer's weights), over only the columns of x that hold a
 * nonzero. Equal to the full product: the dropped terms are exact zeros. */
static zf_status sparse_product(occl *o, float *y, float beta, const float *x, int n, int k,
                                const float *w, int out_f, int w_per_input)
{
    zf_status st;
    int nnz = k;
    if (n >= SPARSE_MIN_ROWS) {
        if ((st = grow_int(&o->sp_idx, &o->sp_idx_cap, (size_t)k)))
            return st;
        int *idx = o->sp_idx;
        for (int c = 0; c < k; c++)
            idx[c] = 0;
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * k;
            for (int c = 0; c < k; c++)
                idx[c] |= xi[c] != 0.0f;
        }
        nnz = 0;
        for (int c = 0; c < k; c++)
            if (idx[c])
                idx[nnz++] = c;
    }
    if (nnz > SPARSE_MAX_KEPT * k) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, w_per_input ? CblasNoTrans : CblasTrans, n, out_f, k, 1.0f,
                    x, k, w, w_per_input ? out_f : k, beta, y, out_f);
        return ZF_OK;
    }
    if (nnz == 0) {
        if (beta == 0.0f)
            memset(y, 0, sizeof(float) * (size_t)n * out_f);
        return ZF_OK;
    }
    if ((st = grow(&o->sp_x, &o->sp_x_cap, (size_t)n * nnz)) ||
        (st = grow(&o->sp_w, &o->sp_w_cap, (size_t)nnz * out_f)))
        return st;
    const int *idx = o->sp_idx;
    float *xs = o->sp_x, *ws = o->sp_w;
#pragma omp parallel if (BIG((int64_t)(n + out_f) * nnz))
    {
#pragma omp for schedule(static) nowait
        for (int i = 0; i < n; i++)
            for (int j = 0; j < nnz; j++)
                xs[(size_t)i * nnz + j] = x[(size_t)i * k + idx[j]];
        if (w_per_input) {
#pragma omp for schedule(static)
            for (int j = 0; j < nnz; j++)
                memcpy(ws + (size_t)j * out_f, w + (size_t)idx[j] * out_f, sizeof(float) * out_f);
        } else {
#pragma omp for schedule(static)
            for (int f = 0; f < out_f; f++)
                for (int j = 0; j < nnz; j++)
                    ws[(size_t)f * nnz + j] = w[(size_t)f * k + idx[j]];
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, w_per_input ? CblasNoTrans : CblasTrans, n, out_f, nnz, 1.0f,
                xs, nnz, ws, w_per_input ? out_f : nnz, beta, y, out_f);
    return ZF_OK;
}

/* The first fully connected layer's output for each position into o->dense[1], from the last
 * spatial layer's region g: the unoccluded output plus, cell by cell of the map, the change of
 * the cell's channels times their rows of the weights, over the positions whose region holds
 * the cell. */
static zf_status fc_from_region(occl *o, const region *g)
{
    const zf_layer *fl = &o->net->layers[o->fc_delta];
    const int C = g->c, cells = g->h * g->w, out_f = fl->out_c, n = g->n;
    const float *y0 = o->base[o->fc_delta], *old = o->base[o->n_spatial - 1];
    zf_status st;
    if ((st = grow(&o->dense[1], &o->dense_cap[1], (size_t)n * out_f)) ||
        (st = grow(&o->fc_a, &o->fc_a_cap, (size_t)n * C)) ||
        (st = grow(&o->fc_y, &o->fc_y_cap, (size_t)n * out_f)))
        return st;
    float *y = o->dense[1];
    for (int b = 0; b < n; b++)
        memcpy(y + (size_t)b * out_f, y0, sizeof(float) * out_f);
    int *rows = o->fc_rows;
    for (int cell = 0; cell < cells; cell++) {
        const int cy = cell / g->w, cx = cell % g->w;
        int ns = 0;
        for (int b = 0; b < n; b++) {
            rect r = g->r[b];
            if (cy >= r.y0 && cy < r.y1 && cx >= r.x0 && cx < r.x1)
                rows[ns++] = b;
        }
        if (!ns)
            continue;
        /* every position holds the cell (the map's middle, mostly): add straight into y */
        const int all = ns == n;
#pragma omp parallel for schedule(static) if (BIG((int64_t)ns * C))
        for (int j = 0; j < ns; j++) {
            const int b = rows[j];
            const rect r = g->r[b];
            const float *v = g->v + g->off[b] + (size_t)(cy - r.y0) * rect_w(r) + (cx - r.x0);
            float *a = o->fc_a + (size_t)j * C;
            for (int c = 0; c < C; c++)
                a[c] = v[(size_t)c * g->cols] - old[(size_t)c * cells + cell];
        }
        if ((st = sparse_product(o, all ? y : o->fc_y, all ? 1.0f : 0.0f, o->fc_a, ns, C,
                                 o->fc_w + (size_t)cell * C * out_f, out_f, 1)))
            return st;
        if (all)
            continue;
#pragma omp parallel for schedule(static) if (BIG((int64_t)ns * out_f))
        for (int j = 0; j < ns; j++) {
            float *dst = y + (size_t)rows[j] * out_f;
            const float *src = o->fc_y + (size_t)j * out_f;
            for (int f = 0; f < out_f; f++)
                dst[f] += src[f];
        }
    }
    return ZF_OK;
}

/* The dense tail on (n, width) rows, in place between two buffers, from layer `first` on;
 * returns the output rows. */
static float *run_tail(occl *o, int first, int cur, int n, zf_status *st)
{
    const zf_net *net = o->net;
    for (int li = first; li < net->n_layers; li++) {
        const zf_layer *l = &net->layers[li];
        const int64_t in_f = zf_layer_in_size(l), out_f = zf_layer_out_size(l);
        float *x = o->dense[cur];
        switch (l->op) {
        case ZF_OP_FC:
            if ((*st = grow(&o->dense[!cur], &o->dense_cap[!cur], (size_t)n * (size_t)out_f)))
                return NULL;
            if (n >= SPARSE_MIN_ROWS) {
                float *y = o->dense[!cur];
                for (int i = 0; i < n; i++) {
                    if (l->bias)
                        memcpy(y + (size_t)i * out_f, l->bias, sizeof(float) * (size_t)out_f);
                    else
                        memset(y + (size_t)i * out_f, 0, sizeof(float) * (size_t)out_f);
                }
                if ((*st = sparse_product(o, y, 1.0f, x, n, (int)in_f, l->weight, (int)out_f, 0)))
                    return NULL;
            } else {
                zf_fc_forward(o->dense[!cur], x, l->weight, l->bias, n, (int)in_f, (int)out_f);
            }
            cur = !cur;
            break;
        case ZF_OP_RELU:
            zf_relu_forward(x, x, (size_t)n * (size_t)in_f);
            break;
        case ZF_OP_SOFTMAX:
            zf_softmax_forward(x, x, n, (int)in_f);
            break;
        default: /* flatten, dropout: the identity at inference */
            break;
        }
    }
    *st = ZF_OK;
    return o->dense[cur];
}

/* Full vectors into o->dense[0]: the unoccluded map with each position's region laid over it. */
static zf_status assemble_dense(occl *o, const region *g, const float *base)
{
    const int64_t width = (int64_t)g->c * g->h * g->w;
    zf_status st = grow(&o->dense[0], &o->dense_cap[0], (size_t)g->n * (size_t)width);
    if (st)
        return st;
#pragma omp parallel for schedule(static) if (BIG((int64_t)g->n * width))
    for (int b = 0; b < g->n; b++) {
        float *dst = o->dense[0] + (size_t)b * width;
        memcpy(dst, base, sizeof(float) * (size_t)width);
        rect r = g->r[b];
        for (int c = 0; c < g->c; c++)
            for (int y = r.y0; y < r.y1; y++)
                memcpy(dst + ((size_t)c * g->h + y) * g->w + r.x0,
                       g->v + (size_t)c * g->cols + g->off[b] + (size_t)(y - r.y0) * rect_w(r),
                       sizeof(float) * (size_t)rect_w(r));
    }
    return ZF_OK;
}

/* The tail of the gathered positions: maps' prob and argmax for them. */
static zf_status flush_fc_group(occl *o)
{
    region *g = &o->fc_grp;
    if (!g->n)
        return ZF_OK;
    const zf_net *net = o->net;
    double tt = now_s();
    zf_status st = fc_from_region(o, g);
    const float *outp = st ? NULL : run_tail(o, o->fc_delta + 1, 1, g->n, &st);
    o->res->layer_seconds[net->n_layers - 1] += now_s() - tt;
    if (st)
        return st;
    read_outputs(o, outp, g->n, o->res->prob + o->fc_grp_p0, o->res->argmax + o->fc_grp_p0);
    o->fc_grp_p0 += g->n;
    g->n = 0;
    return ZF_OK;
}

/* Adds a batch's last spatial layer regions (positions p0.. of cur) to the group, running the
 * group's tail first when they would not fit. */
static zf_status gather_fc_group(occl *o, const region *cur, int64_t p0)
{
    region *g = &o->fc_grp;
    zf_status st;
    if (g->n + cur->n > o->fc_grp_max && (st = flush_fc_group(o)))
        return st;
    if (!g->n)
        o->fc_grp_p0 = p0;
    const int64_t at = g->n ? g->off[g->n - 1] + rect_area(g->r[g->n - 1]) : 0;
    for (int b = 0; b < cur->n; b++) {
        g->r[g->n + b] = cur->r[b];
        g->off[g->n + b] = at + cur->off[b];
    }
    for (int c = 0; c < cur->c; c++)
        memcpy(g->v + (size_t)c * g->cols + at, cur->v + (size_t)c * cur->cols, sizeof(float) * (size_t)cur->cols);
    g->n += cur->n;
    return ZF_OK;
}

static zf_status run_incremental(occl *o)
{
    const zf_net *net = o->net;
    const int P = o->p->patch;
    int bsz = o->p->batch;
    if (bsz <= 0)
        bsz = (int)imax(1, imin(128, (int)(REGION_BUDGET / o->region_pp)));
    bsz = (int)imin(bsz, o->npos);
    o->batch = bsz;
    for (int k = 0; k < 2; k++) {
        o->reg[k].r = calloc((size_t)bsz, sizeof(rect));
        o->reg[k].off = calloc((size_t)bsz, sizeof(int64_t));
        if (!o->reg[k].r || !o->reg[k].off)
            return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
    }
    const int last = o->n_spatial - 1;
    o->fc_grp_max = bsz;
    if (o->fc_delta >= 0) {
        /* per position: its region at the last spatial layer (at most the whole map) and two rows
         * of the widest fully connected layer */
        const zf_layer *ll = &net->layers[last];
        int64_t widest = 0;
        for (int li = o->n_spatial; li < net->n_layers; li++)
            if (net->layers[li].op == ZF_OP_FC && net->layers[li].out_c > widest)
                widest = net->layers[li].out_c;
        const size_t cells = (size_t)ll->out_h * ll->out_w;
        const size_t per = (size_t)ll->out_c * cells + 2 * (size_t)widest;
        const int want = o->p->fc_group > 0 ? o->p->fc_group : (int)(FC_GROUP_BUDGET / per);
        o->fc_grp_max = (int)imin(o->npos, imax(bsz, want));
        region *g = &o->fc_grp;
        g->c = ll->out_c;
        g->h = ll->out_h;
        g->w = ll->out_w;
        g->cols = (int64_t)o->fc_grp_max * (int64_t)cells;
        g->r = calloc((size_t)o->fc_grp_max, sizeof(rect));
        g->off = calloc((size_t)o->fc_grp_max, sizeof(int64_t));
        if (!g->r || !g->off || grow(&g->v, &g->cap, (size_t)g->c * (size_t)g->cols))
            return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
    }
    o->fc_rows = calloc((size_t)o->fc_grp_max, sizeof(int));
    int64_t *scratch_pp = calloc((size_t)bsz, sizeof(int64_t));
    if (!scratch_pp || !o->fc_rows) {
        free(scratch_pp);
        return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
    }
    zf_status st = ZF_OK;
    for (int64_t p0 = 0; p0 < o->npos && !st; p0 += bsz) {
        if (zf_interrupted) {
            st = interrupted(p0, o->npos);
            break;
        }
        int n = (int)(o->npos - p0 < bsz ? o->npos - p0 : bsz);
        region *cur = &o->reg[0], *nxt = &o->reg[1];
        for (int b = 0; b < n; b++) {
            int py, px;
            position_of(o, p0 + b, &py, &px);
            cur->r[b] = (rect){py, py + P, px, px + P};
        }
        if ((st = region_layout(cur, net->in_c, net->in_h, net->in_w, n)))
            break;
        for (size_t i = 0; i < (size_t)cur->c * (size_t)cur->cols; i++)
            cur->v[i] = o->p->fill;
        for (int li = 0; li <= last && !st; li++) {
            double tl = now_s();
            st = run_region_layer(o, li, &cur, &nxt, scratch_pp);
            if (!st && li == o->feat_layer)
                region_features(o, cur, p0);
            o->res->layer_seconds[li] += now_s() - tl;
        }
        if (st)
            break;
        if (o->fc_delta >= 0) {
            st = gather_fc_group(o, cur, p0);
        } else {
            double tt = now_s();
            st = assemble_dense(o, cur, o->base[last]);
            const float *outp = st ? NULL : run_tail(o, o->n_spatial, 0, n, &st);
            o->res->layer_seconds[net->n_layers - 1] += now_s() - tt;
            if (!st)
                read_outputs(o, outp, n, o->res->prob + p0, o->res->argmax + p0);
        }
        if (st)
            break;
        if (o->p->progress)
            o->p->progress(o->p->progress_ctx, p0 + n, o->npos);
    }
    if (!st)
        st = flush_fc_group(o);
    free(scratch_pp);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Public entry points. */

void zf_occlusion_params_default(zf_occlusion_params *p)
{
    memset(p, 0, sizeof *p);
    p->cls = -1;
    p->layer = -1;
    p->channel = -1;
    p->method = ZF_OCCLUSION_AUTO;
    p->conv = ZF_OCCLUSION_CONV_AUTO;
}

int zf_occlusion_count(int size, int patch, int stride)
{
    if (patch < 1 || stride < 1 || patch > size)
        return 0;
    return (size - patch) / stride + 1;
}

const char *zf_occlusion_method_name(zf_occlusion_method m)
{
    switch (m) {
    case ZF_OCCLUSION_AUTO: return "auto";
    case ZF_OCCLUSION_BRUTE: return "brute";
    case ZF_OCCLUSION_INCREMENTAL: return "incremental";
    }
    return "?";
}

const char *zf_occlusion_conv_name(zf_occlusion_conv c)
{
    switch (c) {
    case ZF_OCCLUSION_CONV_AUTO: return "auto";
    case ZF_OCCLUSION_CONV_IM2COL: return "im2col";
    case ZF_OCCLUSION_CONV_DELTA: return "delta";
    case ZF_OCCLUSION_CONV_WINOGRAD: return "winograd";
    case ZF_OCCLUSION_CONV_WINOGRAD4: return "winograd4";
    }
    return "?";
}

void zf_occlusion_result_free(zf_occlusion_result *r)
{
    if (!r)
        return;
    free(r->feature);
    free(r->prob);
    free(r->argmax);
    free(r->layer_seconds);
    free(r->layer_conv);
    free(r);
}

static void occl_release(occl *o)
{
    for (int i = 0; o->cp && i < o->net->n_layers; i++) {
        zf_free(o->cp[i].wt);
        for (int k = 0; k < TILE_CLASSES; k++)
            zf_free(o->cp[i].wino[k]);
    }
    free(o->cp);
    for (int k = 0; k < 2; k++) {
        free(o->reg[k].r);
        free(o->reg[k].off);
        zf_free(o->reg[k].v);
        zf_free(o->dense[k]);
    }
    zf_free(o->work);
    zf_free(o->work2);
    zf_free(o->fc_w);
    zf_free(o->fc_a);
    zf_free(o->fc_y);
    free(o->fc_rows);
    zf_free(o->sp_x);
    zf_free(o->sp_w);
    free(o->sp_idx);
    free(o->fc_grp.r);
    free(o->fc_grp.off);
    zf_free(o->fc_grp.v);
    zf_free(o->tiles);
    zf_free(o->base_in);
    zf_free(o->base_block);
    free(o->base);
}

static zf_status check_params(const zf_net *net, const float *input, const zf_occlusion_params *p)
{
    if (!net || !input || !p)
        return zf_error(ZF_ERR_ARG, "occlusion: no net, input or parameters");
    if (net->n_layers < 1)
        return zf_error(ZF_ERR_ARG, "occlusion: %s has no layers", net->arch);
    if (p->patch < 1)
        return zf_error(ZF_ERR_ARG, "occlusion: patch size %d must be at least 1", p->patch);
    if (p->patch > net->in_h || p->patch > net->in_w)
        return zf_error(ZF_ERR_ARG, "occlusion: patch %d is larger than the %dx%d input of %s",
                        p->patch, net->in_h, net->in_w, net->arch);
    if (p->stride < 1)
        return zf_error(ZF_ERR_ARG, "occlusion: stride %d must be at least 1", p->stride);
    if (!isfinite(p->fill))
        return zf_error(ZF_ERR_ARG, "occlusion: fill value is not finite");
    if (p->method < ZF_OCCLUSION_AUTO || p->method > ZF_OCCLUSION_INCREMENTAL)
        return zf_error(ZF_ERR_ARG, "occlusion: unknown method %d", (int)p->method);
    if (p->conv < ZF_OCCLUSION_CONV_AUTO || p->conv > ZF_OCCLUSION_CONV_WINOGRAD4)
        return zf_error(ZF_ERR_ARG, "occlusion: unknown convolution method %d", (int)p->conv);
    if (p->batch < 0)
        return zf_error(ZF_ERR_ARG, "occlusion: batch %d is negative", p->batch);
    return ZF_OK;
}

static zf_status occl_setup(occl *o, const float *input)
{
    zf_net *net = o->net;
    const zf_occlusion_params *p = o->p;
    zf_status st = resolve_layer(o, p->layer);
    if (st)
        return st;
    const zf_layer *conv = &net->layers[o->conv_layer];
    if (p->channel < -1 || p->channel >= conv->out_c)
        return zf_error(ZF_ERR_ARG, "occlusion: channel %d out of range for %s (%d channels)",
                        p->channel, conv->name, conv->out_c);
    o->n_classes = (int)zf_layer_out_size(&net->layers[net->n_layers - 1]);
    if (p->cls < -1 || p->cls >= o->n_classes)
        return zf_error(ZF_ERR_ARG, "occlusion: class %d out of range (%s has %d classes)", p->cls,
                        net->arch, o->n_classes);

    /* The unoccluded forward: every layer's output is kept. */
    const int64_t in_size = zf_net_in_size(net);
    o->base_in = zf_alloc(sizeof(float) * (size_t)in_size);
    o->base = calloc((size_t)net->n_layers, sizeof(float *));
    o->cp = calloc((size_t)net->n_layers, sizeof(conv_plan));
    size_t total = 0;
    for (int i = 0; i < net->n_layers; i++)
        total += (size_t)zf_layer_out_size(&net->layers[i]);
    o->base_block = zf_alloc(sizeof(float) * total);
    if (!o->base_in || !o->base || !o->cp || !o->base_block)
        return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
    memcpy(o->base_in, input, sizeof(float) * (size_t)in_size);
    if ((st = zf_net_reserve(net, imax(net->batch, 1))) || (st = zf_net_forward(net, o->base_in, 1)))
        return st;
    size_t at = 0;
    for (int i = 0; i < net->n_layers; i++) {
        size_t sz = (size_t)zf_layer_out_size(&net->layers[i]);
        o->base[i] = o->base_block + at;
        memcpy(o->base[i], zf_net_act(net, i), sizeof(float) * sz);
        at += sz;
    }

    const zf_layer *fl = &net->layers[o->feat_layer];
    o->channel = p->channel;
    if (o->channel < 0) {
        const float *m = o->base[o->feat_layer];
        int64_t best = 0;
        float bv = m[0] > 0 ? m[0] : 0;
        for (int64_t i = 1; i < zf_layer_out_size(fl); i++)
            if (m[i] > bv) {
                bv = m[i];
                best = i;
            }
        o->channel = (int)(best / ((int64_t)fl->out_h * fl->out_w));
    }
    o->base_feat_total = channel_total(o->base[o->feat_layer], fl, o->channel);

    /* The top class and the unoccluded probability. */
    zf_occlusion_result *res = o->res;
    const float *outp = o->base[net->n_layers - 1];
    o->cls = p->cls >= 0 ? p->cls : top_class(outp, o->n_classes);
    read_outputs(o, outp, 1, &res->base_prob, &res->base_argmax);
    res->base_feature = (float)o->base_feat_total;
    return ZF_OK;
}

zf_status zf_occlusion_run(zf_net *net, const float *input, const zf_occlusion_params *p,
                           zf_occlusion_result **out)
{
    *out = NULL;
    zf_status st = check_params(net, input, p);
    if (st)
        return st;
    double t0 = now_s();
    occl o;
    memset(&o, 0, sizeof o);
    o.net = net;
    o.p = p;
    o.fc_delta = -1;
    o.rows = zf_occlusion_count(net->in_h, p->patch, p->stride);
    o.cols = zf_occlusion_count(net->in_w, p->patch, p->stride);
    o.npos = o.rows * o.cols;
    zf_occlusion_result *res = calloc(1, sizeof *res);
    if (!res)
        return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
    o.res = res;
    res->rows = o.rows;
    res->cols = o.cols;
    res->patch = p->patch;
    res->stride = p->stride;
    res->fill = p->fill;
    res->feature = calloc((size_t)o.npos, sizeof(float));
    res->prob = calloc((size_t)o.npos, sizeof(float));
    res->argmax = calloc((size_t)o.npos, sizeof(int32_t));
    res->n_layers = net->n_layers;
    res->layer_seconds = calloc((size_t)net->n_layers, sizeof(double));
    res->layer_conv = calloc((size_t)net->n_layers, sizeof(zf_occlusion_conv));
    res->fc_delta = -1;
    if (!res->feature || !res->prob || !res->argmax || !res->layer_seconds || !res->layer_conv)
        st = zf_error(ZF_ERR_NOMEM, "occlusion: out of memory for %d positions", o.npos);
    if (!st)
        st = occl_setup(&o, input);
    if (!st) {
        check_incremental(&o);
        estimate(&o);
        res->work_ratio = o.cost_brute > 0 ? o.cost_inc / o.cost_brute : 1.0;
        zf_occlusion_method m = p->method;
        if (m == ZF_OCCLUSION_INCREMENTAL && !o.incremental_ok)
            st = zf_error(ZF_ERR_UNSUPPORTED, "occlusion: the incremental method does not apply to %s: %s",
                          net->arch, o.why_not);
        if (m == ZF_OCCLUSION_AUTO)
            m = o.incremental_ok && res->work_ratio < AUTO_RATIO ? ZF_OCCLUSION_INCREMENTAL
                                                                  : ZF_OCCLUSION_BRUTE;
        res->method = m;
        if (!st && m == ZF_OCCLUSION_INCREMENTAL) {
            for (int i = 0; i < o.n_spatial; i++)
                res->layer_conv[i] = net->layers[i].op == ZF_OP_CONV ? o.cp[i].algo : ZF_OCCLUSION_CONV_AUTO;
            res->fc_delta = o.fc_delta;
            if (!(st = prepare_convs(&o)))
                st = run_incremental(&o);
        }
        else if (!st && m == ZF_OCCLUSION_BRUTE)
            st = run_brute(&o);
    }
    if (!st) {
        res->layer = o.feat_layer;
        res->conv_layer = o.conv_layer;
        res->channel = o.channel;
        res->cls = o.cls;
        res->n_classes = o.n_classes;
        res->seconds = now_s() - t0;
    }
    occl_release(&o);
    if (st) {
        zf_occlusion_result_free(res);
        return st;
    }
    *out = res;
    return ZF_OK;
}
