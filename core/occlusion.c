/* Occlusion sensitivity maps (Zeiler & Fergus 4.2): a batched brute force, and an incremental
 * method that reuses the unoccluded activations outside each occluder's footprint and recomputes,
 * layer by layer, only the windows it changes (equal to the brute force up to float rounding).
 *
 * The incremental method carries, for a batch of positions, each position's changed rectangle of
 * the current layer's output and its values in one (channels, columns) matrix whose columns are
 * the positions' rectangles one after another, so that a layer over the whole batch is one big
 * sgemm per group. The fully connected tail runs densely on the reassembled vectors.
 *
 * This file: the entry points, set-up, the estimates that choose a method, and the two methods'
 * loops; the stages are in occlusion_region.c, occlusion_conv.c and occlusion_fc.c. */
#include "zf/alloc.h"
#include "occlusion_internal.h"
#include "util_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zf/clock.h"
#include "zf/tensor.h"

/* Changed-region storage per batch is kept under this many floats by shrinking the batch. */
#define REGION_BUDGET ((size_t)48 << 20)
/* Positions whose fully connected tail runs at once (their last spatial layer's regions and the
 * tail's rows kept under this many floats): one sgemm per cell of the map for all of them rather
 * than per batch, so the first fc's weights are packed, and fc7's streamed, once per group. */
#define FC_GROUP_BUDGET ((size_t)16 << 20)
/* Brute force: activations of a batch of images under this many floats. */
#define BRUTE_BUDGET ((size_t)64 << 20)
/* Auto picks the incremental method when its estimated work is below this share of brute force. */
#define AUTO_RATIO 0.8

/* Memory that is written before it is read: no zeroing pass (zf_alloc's) over it (the first fc's
 * rearranged weights alone are 151 MB on AlexNet: their memset took 95 ms of a 1.4 s map). Not
 * on transparent huge pages: where the kernel compacts memory for them on demand, a map's first
 * run waited longer for them (1.46-1.99 s against 1.26-1.65 s on AlexNet 32:8) than later runs
 * gained. */
void *zf_occl_scratch_alloc(size_t bytes)
{
    void *p = NULL;
    if (zf_posix_memalign(&p, 64, bytes ? bytes : 64))
        return NULL;
    return p;
}

zf_status zf_occl_grow(float **buf, size_t *cap, size_t floats)
{
    if (floats <= *cap)
        return ZF_OK;
    size_t want = floats + floats / 4;
    void *p = zf_occl_scratch_alloc(want * sizeof(float));
    if (!p)
        return zf_error(ZF_ERR_NOMEM, "occlusion: cannot allocate %zu MiB of scratch", want >> 18);
    zf_free(*buf);
    *buf = p;
    *cap = want;
    return ZF_OK;
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

void zf_occl_read_outputs(const occl *o, const float *outp, int n, float *prob, int32_t *argmax)
{
    const zf_net *net = o->net;
    const int nc = o->n_classes;
    const int is_softmax = net->layers[net->n_layers - 1].op == ZF_OP_SOFTMAX;
    for (int i = 0; i < n; i++) {
        const float *row = outp + (size_t)i * nc;
        int best = zf_argmax(row, nc);
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

/* Follows every position's footprint to estimate the work of both methods, picks each conv
 * layer's way of recomputing, and finds the largest per-position region. */
static zf_status estimate(occl *o)
{
    const zf_net *net = o->net;
    const int ns = o->n_spatial;
    double *area_in = zf_calloc((size_t)ns + 1, sizeof(double));
    double *area_out = zf_calloc((size_t)ns + 1, sizeof(double));
    double *tiles = zf_calloc((size_t)ns + 1, sizeof(double));
    double *tiles4 = zf_calloc((size_t)ns + 1, sizeof(double));
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
        int nomem = !area_in || !area_out || !tiles || !tiles4;
        free(area_in);
        free(area_out);
        free(tiles);
        free(tiles4);
        o->cost_inc = o->cost_brute;
        return nomem ? zf_error(ZF_ERR_NOMEM, "occlusion: out of memory estimating the work") : ZF_OK;
    }
    const int P = o->p->patch, S = o->p->stride;
    for (int iy = 0; iy < o->rows; iy++)
        for (int ix = 0; ix < o->cols; ix++) {
            rect r = {iy * S, iy * S + P, ix * S, ix * S + P};
            size_t biggest = (size_t)net->in_c * (size_t)rect_area(r);
            for (int i = 0; i < ns; i++) {
                const zf_layer *l = &net->layers[i];
                rect s = zf_occl_layer_rect(l, r);
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
    return ZF_OK;
}

/* Rearranged weights for the chosen conv methods. */
static zf_status prepare_convs(occl *o)
{
    const zf_net *net = o->net;
    for (int i = 0; i < o->n_spatial; i++) {
        const zf_layer *l = &net->layers[i];
        zf_status st;
        if (l->op == ZF_OP_CONV && (st = zf_occl_conv_prepare(l, &o->cp[i])))
            return st;
    }
    return o->fc_delta >= 0 ? zf_occl_fc_prepare(o) : ZF_OK;
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
#pragma omp parallel for schedule(static) if (ZF_OCCL_BIG((int64_t)n * in_size))
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
        zf_occl_read_outputs(o, zf_net_act(net, net->n_layers - 1), n, o->res->prob + p0, o->res->argmax + p0);
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
        o->reg[k].r = zf_calloc((size_t)bsz, sizeof(rect));
        o->reg[k].off = zf_calloc((size_t)bsz, sizeof(int64_t));
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
        g->r = zf_calloc((size_t)o->fc_grp_max, sizeof(rect));
        g->off = zf_calloc((size_t)o->fc_grp_max, sizeof(int64_t));
        if (!g->r || !g->off || zf_occl_grow(&g->v, &g->cap, (size_t)g->c * (size_t)g->cols))
            return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
    }
    o->fc_rows = zf_calloc((size_t)o->fc_grp_max, sizeof(int));
    int64_t *scratch_pp = zf_calloc((size_t)bsz, sizeof(int64_t));
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
        if ((st = zf_occl_region_layout(cur, net->in_c, net->in_h, net->in_w, n)))
            break;
        for (size_t i = 0; i < (size_t)cur->c * (size_t)cur->cols; i++)
            cur->v[i] = o->p->fill;
        for (int li = 0; li <= last && !st; li++) {
            double tl = zf_clock_now();
            st = zf_occl_region_layer(o, li, &cur, &nxt, scratch_pp);
            if (!st && li == o->feat_layer)
                region_features(o, cur, p0);
            o->res->layer_seconds[li] += zf_clock_now() - tl;
        }
        if (st)
            break;
        if ((st = o->fc_delta >= 0 ? zf_occl_fc_gather(o, cur, p0) : zf_occl_tail_dense(o, cur, p0)))
            break;
        if (o->p->progress)
            o->p->progress(o->p->progress_ctx, p0 + n, o->npos);
    }
    if (!st)
        st = zf_occl_fc_flush(o);
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
        for (int k = 0; k < ZF_OCCL_TILE_CLASSES; k++)
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
    o->base = zf_calloc((size_t)net->n_layers, sizeof(float *));
    o->cp = zf_calloc((size_t)net->n_layers, sizeof(conv_plan));
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
    o->cls = p->cls >= 0 ? p->cls : zf_argmax(outp, o->n_classes);
    zf_occl_read_outputs(o, outp, 1, &res->base_prob, &res->base_argmax);
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
    double t0 = zf_clock_now();
    occl o;
    memset(&o, 0, sizeof o);
    o.net = net;
    o.p = p;
    o.fc_delta = -1;
    o.rows = zf_occlusion_count(net->in_h, p->patch, p->stride);
    o.cols = zf_occlusion_count(net->in_w, p->patch, p->stride);
    o.npos = o.rows * o.cols;
    zf_occlusion_result *res = zf_calloc(1, sizeof *res);
    if (!res)
        return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
    o.res = res;
    res->rows = o.rows;
    res->cols = o.cols;
    res->patch = p->patch;
    res->stride = p->stride;
    res->fill = p->fill;
    res->feature = zf_calloc((size_t)o.npos, sizeof(float));
    res->prob = zf_calloc((size_t)o.npos, sizeof(float));
    res->argmax = zf_calloc((size_t)o.npos, sizeof(int32_t));
    res->n_layers = net->n_layers;
    res->layer_seconds = zf_calloc((size_t)net->n_layers, sizeof(double));
    res->layer_conv = zf_calloc((size_t)net->n_layers, sizeof(zf_occlusion_conv));
    res->fc_delta = -1;
    if (!res->feature || !res->prob || !res->argmax || !res->layer_seconds || !res->layer_conv)
        st = zf_error(ZF_ERR_NOMEM, "occlusion: out of memory for %d positions", o.npos);
    if (!st)
        st = occl_setup(&o, input);
    if (!st) {
        check_incremental(&o);
        st = estimate(&o);
        res->work_ratio = o.cost_brute > 0 ? o.cost_inc / o.cost_brute : 1.0;
        zf_occlusion_method m = p->method;
        if (!st && m == ZF_OCCLUSION_INCREMENTAL && !o.incremental_ok)
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
        res->seconds = zf_clock_now() - t0;
    }
    occl_release(&o);
    if (st) {
        zf_occlusion_result_free(res);
        return st;
    }
    *out = res;
    return ZF_OK;
}
