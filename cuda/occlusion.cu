/* Occlusion sensitivity on the GPU (Zeiler & Fergus 4.2, Fig. 7), with the definitions of
 * core/occlusion.c: a square of value `fill` at top-left corners 0, s, 2s, ... <= size - patch; per
 * position the total of a rectified conv map, the probability of a class and the most probable
 * class (first on ties). Two methods:
 *  - brute force: the occluded batch is built on the device and run through the whole net;
 *  - incremental: an occluder changes only the activations inside its receptive-field footprint,
 *    so each spatial layer computes just a crop around that footprint per position (the same size
 *    for every position, shifted to stay inside the map) and reads everything outside it from the
 *    unoccluded activations. The first non-spatial layer gets the full maps rebuilt from crop and
 *    base, and the classifier runs on them as usual. Equal to brute force up to float rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "zf/clock.h"
#include "reduce.cuh"

extern "C" void zf_cuda_occl_params_default(zf_cuda_occl_params *p)
{
    memset(p, 0, sizeof *p);
    p->cls = -1;
    p->layer = -1;
    p->channel = -1;
    p->method = ZF_CUDA_OCCL_AUTO;
}

extern "C" void zf_cuda_occl_map_free(zf_cuda_occl_map *m)
{
    if (!m)
        return;
    free(m->feature);
    free(m->prob);
    free(m->argmax);
    free(m);
}

/* ---- a layer's output as crop + unoccluded base ---- */

/* The value of one layer's output for batch slot b: inside the slot's crop (origin org[2b], org[2b+1],
 * size hc x wc) from the crop buffer (or `fill` for the input's square, crop == NULL), elsewhere
 * the unoccluded base (c, h, w). */
struct vsrc {
    const float *base;
    const float *crop; /* (B, c, hc, wc) */
    const int *org;    /* (B, 2), already offset to the batch */
    int c, h, w, hc, wc;
    float fill;
};

__device__ static inline float vread(const vsrc &s, int b, int c, int y, int x)
{
    const int dy = y - s.org[2 * b], dx = x - s.org[2 * b + 1];
    if (dy >= 0 && dy < s.hc && dx >= 0 && dx < s.wc)
        return s.crop ? s.crop[(((size_t)b * s.c + c) * s.hc + dy) * s.wc + dx] : s.fill;
    return s.base[((size_t)c * s.h + y) * s.w + x];
}

/* Brute force: n occluded copies of the image, slot b occluded at position p0 + b. */
__global__ static void occlude_kernel(float *out, const float *img, int n, int c, int h, int w, int p0, int cols,
                                      int stride, int patch, float fill)
{
    const size_t per = (size_t)c * h * w, total = per * n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int b = (int)(i / per);
        const size_t j = i % per;
        const int x = (int)(j % w), y = (int)((j / w) % h);
        const int pos = p0 + b, y0 = (pos / cols) * stride, x0 = (pos % cols) * stride;
        out[i] = (y >= y0 && y < y0 + patch && x >= x0 && x < x0 + patch) ? fill : img[j];
    }
}

/* A convolution's input window for each slot's output crop: g (B, c, hin, win), zero outside the
 * map (the convolution's padding). out_org is the conv output crop's origin. */
__global__ static void gather_kernel(float *g, vsrc src, const int *out_org, int nb, int hin, int win, int sh,
                                     int sw, int pt, int pl)
{
    const size_t total = (size_t)nb * src.c * hin * win;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int xx = (int)(i % win), yy = (int)((i / win) % hin);
        const int c = (int)((i / ((size_t)win * hin)) % src.c), b = (int)(i / ((size_t)win * hin * src.c));
        const int y = out_org[2 * b] * sh - pt + yy, x = out_org[2 * b + 1] * sw - pl + xx;
        g[i] = (y >= 0 && y < src.h && x >= 0 && x < src.w) ? vread(src, b, c, y, x) : 0.0f;
    }
}

/* Max or average pooling of the crop (B, c, hc, wc) at out_org, reading the input through src, with
 * core/pool.c's window rules (max: first maximum over the unpadded positions; average: its divisor). */
__global__ static void crop_pool_kernel(float *out, vsrc src, const int *out_org, int nb, int hc, int wc,
                                        zf_pool_geom g, int is_max, int count_include_pad)
{
    const size_t total = (size_t)nb * src.c * hc * wc;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int cx = (int)(i % wc), cy = (int)((i / wc) % hc);
        const int c = (int)((i / ((size_t)wc * hc)) % src.c), b = (int)(i / ((size_t)wc * hc * src.c));
        const int oy = out_org[2 * b] + cy, ox = out_org[2 * b + 1] + cx;
        const int ys = oy * g.sh - g.pt, xs = ox * g.sw - g.pl;
        const int y0 = ys < 0 ? 0 : ys, y1 = ys + g.kh < g.h ? ys + g.kh : g.h;
        const int x0 = xs < 0 ? 0 : xs, x1 = xs + g.kw < g.w ? xs + g.kw : g.w;
        if (is_max) {
            int any = 0;
            float best = 0.0f;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    const float v = vread(src, b, c, y, x);
                    if (!any || v > best) {
                        best = v;
                        any = 1;
                    }
                }
            out[i] = best;
        } else {
            const int ye_pad = ys + g.kh < g.h + g.pb ? ys + g.kh : g.h + g.pb;
            const int xe_pad = xs + g.kw < g.w + g.pr ? xs + g.kw : g.w + g.pr;
            double s = 0;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++)
                    s += vread(src, b, c, y, x);
            const int div = count_include_pad ? (ye_pad - ys) * (xe_pad - xs) : (y1 - y0) * (x1 - x0);
            out[i] = div > 0 ? (float)(s / div) : 0.0f;
        }
    }
}

/* Full maps (B, c, h, w) from crop and base. */
__global__ static void materialize_kernel(float *out, vsrc src, int nb)
{
    const size_t total = (size_t)nb * src.c * src.h * src.w;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int x = (int)(i % src.w), y = (int)((i / src.w) % src.h);
        const int c = (int)((i / ((size_t)src.w * src.h)) % src.c), b = (int)(i / ((size_t)src.w * src.h * src.c));
        out[i] = vread(src, b, c, y, x);
    }
}

/* One block per slot: the rectified map's total (double sum over a fixed tree), the class
 * probability and the first maximum of the net's output row. Without a final softmax the
 * probability is computed from the logits in double, as core/occlusion.c does. */
__global__ static void reduce_kernel(float *feature, float *prob, int32_t *argmax, vsrc fsrc, int channel,
                                     const float *last, int k, int cls, int softmax_last, int p0)
{
    const int b = blockIdx.x;
    const int hw = fsrc.h * fsrc.w;
    double s = 0;
    for (int j = threadIdx.x; j < hw; j += blockDim.x) {
        const float v = vread(fsrc, b, channel, j / fsrc.w, j % fsrc.w);
        s += v > 0 ? v : 0;
    }
    const double total = zf_block_sum(s);
    const float *row = last + (size_t)b * k;
    const int am = zf_block_first_max(row, k);
    float pr;
    if (softmax_last) {
        pr = row[cls];
    } else {
        const double top = row[am];
        double e = 0;
        for (int j = threadIdx.x; j < k; j += blockDim.x)
            e += exp((double)row[j] - top);
        const double sum = zf_block_sum(e);
        pr = (float)(exp((double)row[cls] - top) / sum);
    }
    if (threadIdx.x == 0) {
        feature[p0 + b] = (float)total;
        prob[p0 + b] = pr;
        argmax[p0 + b] = am;
    }
}

/* ---- planning the crops ---- */

typedef struct rect {
    int y0, y1, x0, x1; /* [y0, y1) x [x0, x1) */
} rect;

static int is_spatial(zf_op op)
{
    return op == ZF_OP_CONV || op == ZF_OP_RELU || op == ZF_OP_LRN || op == ZF_OP_MAXPOOL || op == ZF_OP_AVGPOOL ||
           op == ZF_OP_DROPOUT;
}

/* Outputs along one axis whose window [o*s - pad, o*s - pad + k) meets [a, b). */
static void window_span(int a, int b, int k, int s, int pad, int out, int *lo, int *hi)
{
    const int num = a + pad - k + 1;
    *lo = num <= 0 ? 0 : (num + s - 1) / s;
    *hi = (b - 1 + pad) / s + 1;
    if (*hi > out)
        *hi = out;
    if (*lo > *hi)
        *lo = *hi;
}

static rect rect_through(const zf_layer *l, rect r)
{
    if (l->op == ZF_OP_CONV || l->op == ZF_OP_MAXPOOL || l->op == ZF_OP_AVGPOOL) {
        rect o;
        window_span(r.y0, r.y1, l->win.kh, l->win.sh, l->win.pt, l->out_h, &o.y0, &o.y1);
        window_span(r.x0, r.x1, l->win.kw, l->win.sw, l->win.pl, l->out_w, &o.x0, &o.x1);
        return o;
    }
    return r; /* ReLU, LRN, dropout: position by position */
}

typedef struct occl_state {
    zf_cuda_net *cn;
    int npos, npad, rows, cols, B;
    int m;                    /* first non-spatial layer */
    int *hc, *wc;             /* per layer 0..m-1: crop size */
    int *org_host;            /* (m + 1) x npad x 2: layer -1 (the square) then layers 0..m-1 */
    int *org;                 /* the same on the device */
    float **crop;             /* per layer 0..m-1 (aliases for in-place layers) */
    float **base;             /* per layer 0..m-1: the unoccluded output of image 0 */
    float *img;               /* the unoccluded input on the device */
    float *gather;
    size_t gather_floats;
    zf_cuda_conv_plan *plans; /* per layer, conv layers only */
    void *ws;
    size_t ws_bytes;
    int *zero_org;            /* (B, 2) zeros: a full buffer seen as a crop */
    float *feature, *prob;
    int32_t *argmax;
    double conv_full, conv_crop, rest; /* multiply-adds per position */
} occl_state;

static void state_free(occl_state *s)
{
    const zf_net *net = s->cn->net;
    if (s->crop) {
        for (int i = 0; i < s->m; i++)
            if (!net->layers[i].in_place)
                zf_cuda_free(s->crop[i]);
        free(s->crop);
    }
    if (s->base) {
        for (int i = 0; i < s->m; i++)
            zf_cuda_free(s->base[i]);
        free(s->base);
    }
    if (s->plans) {
        for (int i = 0; i < s->m; i++)
            zf_cuda_conv_plan_destroy(&s->plans[i]);
        free(s->plans);
    }
    free(s->hc);
    free(s->wc);
    free(s->org_host);
    zf_cuda_free(s->org);
    zf_cuda_free(s->img);
    zf_cuda_free(s->gather);
    zf_cuda_free(s->ws);
    zf_cuda_free(s->zero_org);
    zf_cuda_free(s->feature);
    zf_cuda_free(s->prob);
    zf_cuda_free(s->argmax);
}

static int *org_at(const occl_state *s, int *base, int layer, int pos)
{
    return base + ((size_t)(layer + 1) * s->npad + pos) * 2;
}

/* Crop sizes and origins of every spatial layer for every position; the work estimate. Returns 0
 * when the net or a footprint does not suit the incremental method. */
static zf_status plan_crops(occl_state *s, int patch, int stride, int feature_layer, int *usable)
{
    const zf_net *net = s->cn->net;
    *usable = 0;
    int m = 0;
    while (m < net->n_layers && is_spatial(net->layers[m].op))
        m++;
    s->m = m;
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        const double per_out = l->op == ZF_OP_CONV ? (double)(l->in_c / l->groups) * l->win.kh * l->win.kw : 0;
        if (l->op == ZF_OP_CONV && i >= m)
            s->rest += per_out * zf_layer_out_size(l);
        else if (l->op == ZF_OP_CONV)
            s->conv_full += per_out * zf_layer_out_size(l);
        else if (l->op == ZF_OP_FC)
            s->rest += (double)zf_layer_in_size(l) * l->out_c;
    }
    if (m == 0 || feature_layer >= m)
        return ZF_OK;
    s->hc = (int *)calloc((size_t)m, sizeof(int));
    s->wc = (int *)calloc((size_t)m, sizeof(int));
    s->org_host = (int *)calloc((size_t)(m + 1) * s->npad * 2, sizeof(int));
    rect *r = (rect *)malloc(sizeof(rect) * (size_t)s->npos * (m + 1));
    if (!s->hc || !s->wc || !s->org_host || !r) {
        free(r);
        return zf_error(ZF_ERR_NOMEM, "out of memory for the occlusion plan");
    }
    int ok = 1;
    for (int p = 0; p < s->npos; p++) {
        rect q = {(p / s->cols) * stride, (p / s->cols) * stride + patch, (p % s->cols) * stride,
                  (p % s->cols) * stride + patch};
        r[p] = q;
        for (int i = 0; i < m; i++) {
            q = rect_through(&net->layers[i], q);
            if (q.y1 <= q.y0 || q.x1 <= q.x0)
                ok = 0; /* nothing changes below here: unusual geometry, left to brute force */
            r[(size_t)(i + 1) * s->npos + p] = q;
            if (q.y1 - q.y0 > s->hc[i])
                s->hc[i] = q.y1 - q.y0;
            if (q.x1 - q.x0 > s->wc[i])
                s->wc[i] = q.x1 - q.x0;
        }
    }
    for (int p = 0; p < s->npad; p++) {
        const int pp = p < s->npos ? p : s->npos - 1; /* padding slots repeat the last position */
        int *o = org_at(s, s->org_host, -1, p);
        o[0] = r[pp].y0;
        o[1] = r[pp].x0;
        for (int i = 0; i < m; i++) {
            const zf_layer *l = &net->layers[i];
            const rect q = r[(size_t)(i + 1) * s->npos + pp];
            o = org_at(s, s->org_host, i, p);
            o[0] = q.y0 < l->out_h - s->hc[i] ? q.y0 : l->out_h - s->hc[i];
            o[1] = q.x0 < l->out_w - s->wc[i] ? q.x0 : l->out_w - s->wc[i];
        }
    }
    free(r);
    for (int i = 0; i < m; i++) {
        const zf_layer *l = &net->layers[i];
        if (l->op == ZF_OP_CONV)
            s->conv_crop += (double)(l->in_c / l->groups) * l->win.kh * l->win.kw * l->out_c * s->hc[i] * s->wc[i];
    }
    *usable = ok;
    return ZF_OK;
}

/* Device buffers, base activations and crop plans for the incremental method. */
static zf_status setup_incremental(occl_state *s)
{
    zf_cuda_net *cn = s->cn;
    zf_cuda_ctx *ctx = cn->ctx;
    const zf_net *net = cn->net;
    const int m = s->m, B = s->B;
    s->crop = (float **)calloc((size_t)m, sizeof(float *));
    s->base = (float **)calloc((size_t)m, sizeof(float *));
    s->plans = (zf_cuda_conv_plan *)calloc((size_t)m, sizeof(zf_cuda_conv_plan));
    if (!s->crop || !s->base || !s->plans)
        return zf_error(ZF_ERR_NOMEM, "out of memory for the occlusion buffers");
    const size_t org_bytes = sizeof(int) * (size_t)(m + 1) * s->npad * 2;
    ZF_TRY(zf_cuda_malloc(ctx, (void **)&s->org, org_bytes, "the occluders' crop origins"));
    ZF_TRY(zf_cuda_upload(ctx, s->org, s->org_host, org_bytes));
    for (int i = 0; i < m; i++) {
        const zf_layer *l = &net->layers[i];
        const size_t out = (size_t)zf_layer_out_size(l);
        ZF_TRY(zf_cuda_malloc(ctx, (void **)&s->base[i], out * 4, "the unoccluded activations"));
        ZF_CU(cudaMemcpyAsync(s->base[i], cn->acts[i], out * 4, cudaMemcpyDeviceToDevice, ctx->stream));
        if (l->in_place)
            s->crop[i] = i ? s->crop[i - 1] : NULL;
        else
            ZF_TRY(zf_cuda_malloc(ctx, (void **)&s->crop[i], sizeof(float) * B * l->out_c * s->hc[i] * s->wc[i],
                                  "the occlusion crops"));
        if (l->op == ZF_OP_CONV) {
            const size_t g = (size_t)B * l->in_c * ((s->hc[i] - 1) * l->win.sh + l->win.kh) *
                             ((s->wc[i] - 1) * l->win.sw + l->win.kw);
            s->gather_floats = g > s->gather_floats ? g : s->gather_floats;
        }
    }
    ZF_TRY(zf_cuda_malloc(ctx, (void **)&s->gather, s->gather_floats * 4, "the occlusion convolution windows"));
    size_t ws = 0;
    for (int i = 0; i < m; i++) {
        const zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_CONV)
            continue;
        const zf_conv_geom g = {B, l->in_c, (s->hc[i] - 1) * l->win.sh + l->win.kh,
                                (s->wc[i] - 1) * l->win.sw + l->win.kw, l->out_c, s->hc[i], s->wc[i], l->win.kh,
                                l->win.kw, l->win.sh, l->win.sw, 0, 0, l->groups};
        zf_cuda_conv_bufs bufs = {s->gather, s->crop[i], zf_cuda_net_conv_weight(cn, i)};
        zf_status st = zf_cuda_conv_plan_init(ctx, &s->plans[i], &g, 0, &bufs);
        if (st)
            return zf_error_prefix(st, "occlusion crop of layer '%s': ", l->name);
        const size_t b = zf_cuda_conv_plan_ws_bytes(&s->plans[i]);
        ws = b > ws ? b : ws;
    }
    ZF_TRY(zf_cuda_malloc(ctx, &s->ws, ws, "the occlusion convolution workspace"));
    s->ws_bytes = ws;
    return ZF_OK;
}

/* The virtual output of layer i (-1: the occluded input) for the batch starting at position p0. */
static vsrc layer_src(const occl_state *s, int i, int p0, float fill, int patch)
{
    const zf_net *net = s->cn->net;
    vsrc v;
    v.org = org_at(s, s->org, i, p0);
    v.fill = fill;
    if (i < 0) {
        v.base = s->img;
        v.crop = NULL;
        v.c = net->in_c, v.h = net->in_h, v.w = net->in_w;
        v.hc = v.wc = patch;
    } else {
        const zf_layer *l = &net->layers[i];
        v.base = s->base[i];
        v.crop = s->crop[i];
        v.c = l->out_c, v.h = l->out_h, v.w = l->out_w;
        v.hc = s->hc[i], v.wc = s->wc[i];
    }
    return v;
}

/* One batch of positions p0.. through the spatial layers on crops, then the classifier. */
static zf_status run_incremental(occl_state *s, int p0, int nb, float fill, int patch)
{
    zf_cuda_net *cn = s->cn;
    zf_cuda_ctx *ctx = cn->ctx;
    const zf_net *net = cn->net;
    const int B = s->B;
    for (int i = 0; i < s->m; i++) {
        const zf_layer *l = &net->layers[i];
        const vsrc prev = layer_src(s, i - 1, p0, fill, patch);
        const int *oorg = org_at(s, s->org, i, p0);
        const size_t crop_count = (size_t)B * l->out_c * s->hc[i] * s->wc[i];
        switch (l->op) {
        case ZF_OP_CONV: {
            const zf_cuda_conv_plan *pl = &s->plans[i];
            gather_kernel<<<zf_grid((size_t)B * l->in_c * pl->g.h * pl->g.w), ZF_THREADS, 0, ctx->stream>>>(
                s->gather, prev, oorg, B, pl->g.h, pl->g.w, l->win.sh, l->win.sw, l->win.pt, l->win.pl);
            ZF_LAUNCHED("gather");
            float *relu_out = NULL;
            if (i + 1 < s->m && net->layers[i + 1].op == ZF_OP_RELU)
                relu_out = s->crop[i + 1];
            ZF_TRY(zf_cuda_conv_run_forward(ctx, &s->plans[i], s->crop[i], relu_out, s->gather,
                                            zf_cuda_net_conv_weight(cn, i), zf_cuda_net_bias(cn, i), B, s->ws,
                                            s->ws_bytes));
            if (relu_out)
                i++;
            break;
        }
        case ZF_OP_RELU:
            ZF_TRY(zf_cuda_relu_forward(ctx, s->crop[i], s->crop[i - 1], crop_count));
            break;
        case ZF_OP_LRN:
            ZF_TRY(zf_cuda_lrn_forward(ctx, s->crop[i], s->crop[i - 1], B, l->in_c, s->hc[i] * s->wc[i], &l->lrn));
            break;
        case ZF_OP_MAXPOOL:
        case ZF_OP_AVGPOOL: {
            const zf_pool_geom g = zf_layer_pool_geom(l, B);
            crop_pool_kernel<<<zf_grid(crop_count), ZF_THREADS, 0, ctx->stream>>>(
                s->crop[i], prev, oorg, B, s->hc[i], s->wc[i], g, l->op == ZF_OP_MAXPOOL, l->count_include_pad);
            ZF_LAUNCHED("crop_pool");
            break;
        }
        default:
            break; /* dropout: the crop of the layer before */
        }
    }
    /* ReLU and LRN on layer 0 would read the input as a crop: plan_crops puts a conv or pool first
     * in every net it accepts (checked by the caller). */
    const vsrc last_spatial = layer_src(s, s->m - 1, p0, fill, patch);
    materialize_kernel<<<zf_grid((size_t)nb * last_spatial.c * last_spatial.h * last_spatial.w), ZF_THREADS, 0,
                         ctx->stream>>>(cn->acts[s->m - 1], last_spatial, nb);
    ZF_LAUNCHED("materialize");
    if (s->m <= net->n_layers - 1)
        ZF_TRY(zf_cuda_net_forward_range(cn, s->m, net->n_layers - 1, nb));
    return ZF_OK;
}

static zf_status occlusion(zf_cuda_net *cn, const float *input, const zf_cuda_occl_params *p, zf_cuda_occl_map *res,
                           occl_state *s)
{
    const zf_net *net = cn->net;
    zf_cuda_ctx *ctx = cn->ctx;
    const double t0 = zf_clock_now();
    if (p->patch < 1 || p->stride < 1)
        return zf_error(ZF_ERR_ARG, "occlusion patch %d and stride %d must both be at least 1", p->patch, p->stride);
    if (p->patch > net->in_h || p->patch > net->in_w)
        return zf_error(ZF_ERR_ARG, "occlusion patch %d is larger than the %dx%d input of '%s'", p->patch, net->in_h,
                        net->in_w, net->arch);
    int conv = -1;
    if (p->layer < 0) {
        for (int i = net->n_layers - 1; i >= 0 && conv < 0; i--)
            if (net->layers[i].op == ZF_OP_CONV)
                conv = i;
        if (conv < 0)
            return zf_error(ZF_ERR_ARG, "'%s' has no conv layer to map", net->arch);
    } else {
        if (p->layer >= net->n_layers)
            return zf_error(ZF_ERR_ARG, "layer index %d out of range (%d layers)", p->layer, net->n_layers);
        conv = p->layer;
        if (net->layers[conv].op == ZF_OP_RELU && conv > 0 && net->layers[conv - 1].op == ZF_OP_CONV)
            conv--;
        if (net->layers[conv].op != ZF_OP_CONV)
            return zf_error(ZF_ERR_ARG, "layer '%s' is not a conv layer or its ReLU", net->layers[p->layer].name);
    }
    const int f = zf_net_rectified(net, conv);
    const zf_layer *fl = &net->layers[f], *last = &net->layers[net->n_layers - 1];
    const int k = (int)zf_layer_out_size(last), fhw = fl->out_h * fl->out_w;
    if (p->cls >= k)
        return zf_error(ZF_ERR_ARG, "class %d out of range ('%s' has %d classes)", p->cls, net->arch, k);
    if (p->channel >= fl->out_c)
        return zf_error(ZF_ERR_ARG, "channel %d out of range for layer '%s' (%d channels)", p->channel,
                        net->layers[conv].name, fl->out_c);

    s->cn = cn;
    s->rows = (net->in_h - p->patch) / p->stride + 1;
    s->cols = (net->in_w - p->patch) / p->stride + 1;
    s->npos = s->rows * s->cols;
    s->B = p->batch > 0 && p->batch < cn->batch ? p->batch : cn->batch;
    s->npad = (s->npos + s->B - 1) / s->B * s->B;

    /* The unoccluded input: its forward gives the channel, class and base values. */
    ZF_TRY(zf_cuda_net_forward(cn, input, 1));
    const size_t in_size = (size_t)zf_net_in_size(net);
    ZF_TRY(zf_cuda_malloc(ctx, (void **)&s->img, in_size * 4, "the input image"));
    ZF_CU(cudaMemcpyAsync(s->img, cn->input, in_size * 4, cudaMemcpyDeviceToDevice, ctx->stream));
    float *host = (float *)malloc(sizeof(float) * ((size_t)fl->out_c * fhw + (size_t)k));
    if (!host)
        return zf_error(ZF_ERR_NOMEM, "out of memory for the unoccluded outputs");
    float *hf = host, *hl = host + (size_t)fl->out_c * fhw;
    zf_status st = zf_cuda_net_read(cn, f, hf, 1);
    if (!st)
        st = zf_cuda_net_read(cn, net->n_layers - 1, hl, 1);
    if (st) {
        free(host);
        return st;
    }
    /* As core/occlusion.c: the first maximum of the rectified map, in (channel, y, x) order. */
    int channel = p->channel;
    if (channel < 0) {
        int best = 0;
        float bv = hf[0] > 0 ? hf[0] : 0;
        for (int i = 1; i < fl->out_c * fhw; i++)
            if (hf[i] > bv) {
                bv = hf[i];
                best = i;
            }
        channel = best / fhw;
    }
    int am = 0;
    for (int i = 1; i < k; i++)
        if (hl[i] > hl[am])
            am = i;
    const int cls = p->cls < 0 ? am : p->cls;
    const int softmax_last = last->op == ZF_OP_SOFTMAX;
    if (softmax_last) {
        res->base_prob = hl[cls];
    } else {
        double sum = 0;
        for (int i = 0; i < k; i++)
            sum += exp((double)hl[i] - (double)hl[am]);
        res->base_prob = (float)(exp((double)hl[cls] - (double)hl[am]) / sum);
    }
    double bf = 0;
    for (int i = 0; i < fhw; i++)
        bf += hf[(size_t)channel * fhw + i] > 0 ? hf[(size_t)channel * fhw + i] : 0;
    res->base_feature = (float)bf;
    res->base_argmax = am;
    free(host);

    int usable = 0;
    ZF_TRY(plan_crops(s, p->patch, p->stride, f, &usable));
    /* The crops start at a window (conv or pool) reading the input; see run_incremental. */
    if (usable && net->layers[0].op != ZF_OP_CONV && net->layers[0].op != ZF_OP_MAXPOOL &&
        net->layers[0].op != ZF_OP_AVGPOOL)
        usable = 0;
    const double full = s->conv_full + s->rest, incr = s->conv_crop + s->rest;
    res->work_ratio = usable && full > 0 ? incr / full : 1.0;
    zf_cuda_occl_method method = p->method;
    if (method == ZF_CUDA_OCCL_AUTO)
        method = usable && res->work_ratio < 0.8 ? ZF_CUDA_OCCL_INCREMENTAL : ZF_CUDA_OCCL_BRUTE;
    if (method == ZF_CUDA_OCCL_INCREMENTAL && !usable)
        method = ZF_CUDA_OCCL_BRUTE; /* this net or footprint does not allow it */
    if (method == ZF_CUDA_OCCL_INCREMENTAL)
        ZF_TRY(setup_incremental(s));

    ZF_TRY(zf_cuda_malloc(ctx, (void **)&s->zero_org, sizeof(int) * 2 * s->B, "occlusion scratch"));
    ZF_CU(cudaMemsetAsync(s->zero_org, 0, sizeof(int) * 2 * s->B, ctx->stream));
    ZF_TRY(zf_cuda_malloc(ctx, (void **)&s->feature, sizeof(float) * s->npos, "the occlusion maps"));
    ZF_TRY(zf_cuda_malloc(ctx, (void **)&s->prob, sizeof(float) * s->npos, "the occlusion maps"));
    ZF_TRY(zf_cuda_malloc(ctx, (void **)&s->argmax, sizeof(int32_t) * s->npos, "the occlusion maps"));

    for (int p0 = 0; p0 < s->npos; p0 += s->B) {
        const int nb = s->npos - p0 < s->B ? s->npos - p0 : s->B;
        vsrc fsrc;
        if (method == ZF_CUDA_OCCL_BRUTE) {
            occlude_kernel<<<zf_grid((size_t)nb * in_size), ZF_THREADS, 0, ctx->stream>>>(
                cn->input, s->img, nb, net->in_c, net->in_h, net->in_w, p0, s->cols, p->stride, p->patch, p->fill);
            ZF_LAUNCHED("occlude");
            ZF_TRY(zf_cuda_net_forward_range(cn, 0, net->n_layers - 1, nb));
            fsrc.base = NULL;
            fsrc.crop = cn->acts[f];
            fsrc.org = s->zero_org;
            fsrc.c = fl->out_c, fsrc.h = fl->out_h, fsrc.w = fl->out_w;
            fsrc.hc = fl->out_h, fsrc.wc = fl->out_w;
            fsrc.fill = 0.0f;
        } else {
            ZF_TRY(run_incremental(s, p0, nb, p->fill, p->patch));
            fsrc = layer_src(s, f, p0, p->fill, p->patch);
        }
        reduce_kernel<<<nb, ZF_RED_MAX, 0, ctx->stream>>>(s->feature, s->prob, s->argmax, fsrc, channel,
                                                         cn->acts[net->n_layers - 1], k, cls, softmax_last, p0);
        ZF_LAUNCHED("occlusion reduce");
        ZF_TRY(zf_cuda_sync(ctx));
        if (p->progress)
            p->progress(p->progress_ctx, p0 + nb, s->npos);
        if (zf_interrupted)
            return zf_error(ZF_ERR_INTERRUPTED, "interrupted after %d of %d occluder positions", p0 + nb, s->npos);
    }

    res->rows = s->rows;
    res->cols = s->cols;
    res->layer = f;
    res->conv_layer = conv;
    res->channel = channel;
    res->cls = cls;
    res->n_classes = k;
    res->method = method;
    res->feature = (float *)malloc(sizeof(float) * s->npos);
    res->prob = (float *)malloc(sizeof(float) * s->npos);
    res->argmax = (int32_t *)malloc(sizeof(int32_t) * s->npos);
    if (!res->feature || !res->prob || !res->argmax)
        return zf_error(ZF_ERR_NOMEM, "out of memory for %d occlusion positions", s->npos);
    ZF_TRY(zf_cuda_download(ctx, res->feature, s->feature, sizeof(float) * s->npos));
    ZF_TRY(zf_cuda_download(ctx, res->prob, s->prob, sizeof(float) * s->npos));
    ZF_TRY(zf_cuda_download(ctx, res->argmax, s->argmax, sizeof(int32_t) * s->npos));
    res->seconds = zf_clock_now() - t0;
    return ZF_OK;
}

extern "C" zf_status zf_cuda_occlusion(zf_cuda_net *cn, const float *input, const zf_cuda_occl_params *p,
                                       zf_cuda_occl_map **out)
{
    *out = NULL;
    zf_cuda_occl_map *res = (zf_cuda_occl_map *)calloc(1, sizeof *res);
    if (!res)
        return zf_error(ZF_ERR_NOMEM, "out of memory for an occlusion map");
    occl_state s;
    memset(&s, 0, sizeof s);
    s.cn = cn;
    /* The crops' convolution plans take the precision the net was made with. */
    const zf_cuda_precision saved = cn->ctx->precision;
    cn->ctx->precision = cn->precision;
    zf_status st = zf_cuda_net_enter(cn);
    if (!st)
        st = occlusion(cn, input, p, res, &s);
    cn->ctx->precision = saved;
    if (s.cn)
        cudaStreamSynchronize(cn->ctx->stream); /* nothing queued may still read what is freed */
    state_free(&s);
    if (st) {
        zf_cuda_occl_map_free(res);
        return st;
    }
    *out = res;
    return ZF_OK;
}
