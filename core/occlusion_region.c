/* The changed regions of a batch of positions through the spatial layers: which rectangle of
 * each layer's output a position can change, its patched input windows, and pooling, LRN and ReLU
 * over the regions (convolutions in occlusion_conv.c). */
#include "occlusion_internal.h"
#include "pool_internal.h"

#include <math.h>
#include <omp.h>
#include <string.h>

static inline int floordiv(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static inline int ceildiv(int a, int b) { return -floordiv(-a, b); }

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

rect zf_occl_layer_rect(const zf_layer *l, rect r)
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

zf_status zf_occl_region_layout(region *g, int c, int h, int w, int n)
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
    return zf_occl_grow(&g->v, &g->cap, (size_t)c * (size_t)col + 1);
}

/* ---------------------------------------------------------------------------------------------
 * Patched inputs: what a position's layer input holds anywhere. */

void zf_occl_build_tile(float *restrict t, const region *in, int b, const float *base, int c, int y0,
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

size_t zf_occl_window_max(const region *out, int kh, int kw, int sh, int sw)
{
    size_t tile_max = 0;
    for (int b = 0; b < out->n; b++) {
        rect s = out->r[b];
        if (rect_area(s))
            tile_max = zmax(tile_max, (size_t)((rect_h(s) - 1) * sh + kh) *
                                                  (size_t)((rect_w(s) - 1) * sw + kw));
    }
    return tile_max;
}

zf_status zf_occl_reserve_tiles(occl *o, size_t floats)
{
    return zf_occl_grow(&o->tiles, &o->tiles_cap, floats * (size_t)omp_get_max_threads());
}

/* ---------------------------------------------------------------------------------------------
 * Pooling over the changed windows. */

static zf_status pool_region(occl *o, const zf_layer *l, const float *base_in, const region *in,
                             region *out)
{
    const int kh = l->win.kh, kw = l->win.kw, sh = l->win.sh, sw = l->win.sw;
    const int C = out->c, H = in->h, W = in->w;
    const int is_max = l->op == ZF_OP_MAXPOOL;
    const size_t tile_max = zf_occl_window_max(out, kh, kw, sh, sw);
    zf_status st = zf_occl_reserve_tiles(o, tile_max);
    if (st)
        return st;
#pragma omp parallel if (ZF_OCCL_BIG((int64_t)out->cols * C * kh * kw))
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
            zf_occl_build_tile(tile, in, b, base_in, c, y0, x0, th, tw, is_max ? -INFINITY : 0.0f);
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
                        /* PyTorch's divisor, as the engine's (pool_internal.h) */
                        const int div = zf_avgpool_div(
                            zf_avgpool_span(s.y0 + oy, sh, kh, l->win.pt, l->win.pb, H),
                            zf_avgpool_span(s.x0 + ox, sw, kw, l->win.pl, l->win.pr, W), l->count_include_pad);
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
#pragma omp parallel for schedule(dynamic, 8) if (ZF_OCCL_BIG((int64_t)out->cols * C * 4))
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
 * One layer of a batch: the changed rectangles, then the op over them. */

zf_status zf_occl_region_layer(occl *o, int li, region **cur, region **nxt, int64_t *scratch_pp)
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
        out->r[b] = zf_occl_layer_rect(l, in->r[b]);
    if ((st = zf_occl_region_layout(out, l->out_c, l->out_h, l->out_w, in->n)))
        return st;
    switch (l->op) {
    case ZF_OP_CONV:
        st = zf_occl_conv_region(o, li, base_in, in, out, scratch_pp);
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
