/* The deconvnet (Zeiler & Fergus section 2.1): from one unit or one feature map of a rectified
 * conv layer down to pixels through unpooling at the forward pass's switches, rectification,
 * transposed filtering (no bias) and LRN as the identity (or its true backward on request). */
#include <string.h>

#include "util_internal.h"
#include "zf/net.h"

int zf_net_rectified(const zf_net *net, int conv)
{
    if (conv + 1 < net->n_layers && net->layers[conv + 1].op == ZF_OP_RELU)
        return conv + 1;
    return conv;
}

int zf_net_find_conv(const zf_net *net, const char *name)
{
    int i = zf_net_find(net, name);
    if (i < 0)
        return -1;
    if (net->layers[i].op == ZF_OP_CONV)
        return i;
    if (net->layers[i].op == ZF_OP_RELU && i > 0 && net->layers[i - 1].op == ZF_OP_CONV)
        return i - 1;
    return -1;
}

/* A half-open window [y0, y1) x [x0, x1) of a feature map. */
typedef struct box {
    int y0, y1, x0, x1;
} box;

static void box_add(box *b, int y, int x)
{
    b->y0 = y < b->y0 ? y : b->y0;
    b->y1 = y + 1 > b->y1 ? y + 1 : b->y1;
    b->x0 = x < b->x0 ? x : b->x0;
    b->x1 = x + 1 > b->x1 ? x + 1 : b->x1;
}

/* The inputs of a window layer that the outputs in `b` see, clipped to the input. */
static box box_below(box b, const zf_layer *l)
{
    box r = {b.y0 * l->win.sh - l->win.pt, (b.y1 - 1) * l->win.sh - l->win.pt + l->win.kh,
             b.x0 * l->win.sw - l->win.pl, (b.x1 - 1) * l->win.sw - l->win.pl + l->win.kw};
    r.y0 = r.y0 < 0 ? 0 : r.y0;
    r.x0 = r.x0 < 0 ? 0 : r.x0;
    r.y1 = r.y1 > l->in_h ? l->in_h : r.y1;
    r.x1 = r.x1 > l->in_w ? l->in_w : r.x1;
    return r;
}

/* din = transposed filtering of dout, computed on the sub-window of dout inside *bx only (the
 * rest of dout is zero); *bx becomes the window of din that can be non-zero. Falls back to the
 * whole map when the window covers most of it. */
static void conv_transpose_box(zf_net *net, const zf_layer *l, float *din, const float *dout, int n, box *bx)
{
    const box in = box_below(*bx, l);
    const int oh = bx->y1 - bx->y0, ow = bx->x1 - bx->x0;
    zf_conv_geom g = zf_layer_conv_geom(l, n);
    if ((double)oh * ow > 0.6 * l->out_h * l->out_w) {
        zf_conv_backward_data(din, dout, l->weight, &g, net->ws);
        *bx = in;
        return;
    }
    /* The same filters over the sub-window: output rows oy0.., input rows from in.y0, with the
     * top padding that the window's first row still has. */
    zf_conv_geom s = g;
    s.oh = oh;
    s.ow = ow;
    s.h = in.y1 - in.y0;
    s.w = in.x1 - in.x0;
    s.pt = in.y0 - (bx->y0 * l->win.sh - l->win.pt);
    s.pl = in.x0 - (bx->x0 * l->win.sw - l->win.pl);
    float *src = net->dec_scratch, *dst = net->dec_scratch + (size_t)n * l->out_c * oh * ow;
    for (int p = 0; p < n * l->out_c; p++)
        for (int y = 0; y < oh; y++)
            memcpy(src + ((size_t)p * oh + y) * ow,
                   dout + ((size_t)p * l->out_h + bx->y0 + y) * l->out_w + bx->x0, sizeof(float) * ow);
    zf_conv_backward_data(dst, src, l->weight, &s, net->ws);
    memset(din, 0, sizeof(float) * (size_t)n * zf_layer_in_size(l));
    for (int p = 0; p < n * l->in_c; p++)
        for (int y = 0; y < s.h; y++)
            memcpy(din + ((size_t)p * l->in_h + in.y0 + y) * l->in_w + in.x0, dst + ((size_t)p * s.h + y) * s.w,
                   sizeof(float) * s.w);
    *bx = in;
}

zf_status zf_deconv_resolve(const zf_net *net, const zf_deconv_req *req, int n, zf_deconv_start *out)
{
    if (req->layer < 0 || req->layer >= net->n_layers)
        return zf_error(ZF_ERR_ARG, "deconv from layer index %d of %d", req->layer, net->n_layers);
    int conv = req->layer;
    if (net->layers[conv].op == ZF_OP_RELU && conv > 0 && net->layers[conv - 1].op == ZF_OP_CONV)
        conv--;
    if (net->layers[conv].op != ZF_OP_CONV)
        return zf_error(ZF_ERR_ARG, "layer '%s' is a %s layer: the deconvnet starts at a conv layer",
                        net->layers[req->layer].name, zf_op_name(net->layers[req->layer].op));
    const int top = zf_net_rectified(net, conv);
    for (int img = 0; img < n; img++)
        if (req->channel[img] < 0 || req->channel[img] >= net->layers[top].out_c)
            return zf_error(ZF_ERR_ARG, "channel %d out of range for layer '%s' (%d channels)",
                            req->channel[img], net->layers[conv].name, net->layers[top].out_c);
    out->conv = conv;
    out->top = top;
    return ZF_OK;
}

zf_status zf_net_deconv(zf_net *net, float *out, int n, const zf_deconv_req *req)
{
    if (n < 1 || n > net->batch)
        return zf_error(ZF_ERR_ARG, "deconv of %d images with buffers for %d", n, net->batch);
    zf_deconv_start start;
    zf_status st = zf_deconv_resolve(net, req, n, &start);
    if (st)
        return st;
    const int conv = start.conv, top = start.top;
    const zf_layer *tl = &net->layers[top];
    const int hw = tl->out_h * tl->out_w;
    const size_t top_size = (size_t)zf_layer_out_size(tl);

    float *a = net->dec[0], *b = net->dec[1];
    memset(a, 0, sizeof(float) * top_size * n);
    for (int img = 0; img < n; img++) {
        const int c = req->channel[img];
        const float *act = net->acts[top] + img * top_size + (size_t)c * hw;
        float *sig = a + img * top_size + (size_t)c * hw;
        if (req->mode == ZF_DECONV_MAP) {
            memcpy(sig, act, sizeof(float) * hw);
            continue;
        }
        int pos;
        if (req->y[img] < 0 || req->x[img] < 0) {
            pos = zf_argmax(act, hw); /* first maximum in row-major order */
            req->y[img] = pos / tl->out_w;
            req->x[img] = pos % tl->out_w;
        } else {
            if (req->y[img] >= tl->out_h || req->x[img] >= tl->out_w)
                return zf_error(ZF_ERR_ARG, "position %d,%d outside the %dx%d map of layer '%s'",
                                req->y[img], req->x[img], tl->out_h, tl->out_w, net->layers[conv].name);
            pos = req->y[img] * tl->out_w + req->x[img];
        }
        sig[pos] = act[pos];
    }

    /* The signal is zero outside a box (the union over the batch of what the chosen units see),
     * tracked layer by layer, so the transposed filtering runs only where it can be non-zero. */
    box bx = {0, tl->out_h, 0, tl->out_w};
    if (req->mode == ZF_DECONV_UNIT) {
        bx = (box){req->y[0], req->y[0] + 1, req->x[0], req->x[0] + 1};
        for (int img = 1; img < n; img++)
            box_add(&bx, req->y[img], req->x[img]);
    }

    /* Walk down: the signal in `a` has layer i's output shape; each step leaves its input shape. */
    for (int i = top; i >= 0; i--) {
        const zf_layer *l = &net->layers[i];
        const size_t in_size = (size_t)zf_layer_in_size(l);
        switch (l->op) {
        case ZF_OP_RELU:
            zf_relu_forward(a, a, in_size * n);
            break;
        case ZF_OP_CONV: {
            conv_transpose_box(net, l, b, a, n, &bx);
            float *t = a;
            a = b;
            b = t;
            break;
        }
        case ZF_OP_LRN:
            if (req->lrn_backward) {
                zf_lrn_backward(b, a, zf_net_act(net, i - 1), n, l->in_c, l->in_h * l->in_w, &l->lrn);
                float *t = a;
                a = b;
                b = t;
            }
            break;
        case ZF_OP_MAXPOOL: {
            zf_pool_geom g = zf_layer_pool_geom(l, n);
            zf_maxpool_unpool(b, a, net->switches[i], &g);
            bx = box_below(bx, l);
            float *t = a;
            a = b;
            b = t;
            break;
        }
        case ZF_OP_DROPOUT:
        case ZF_OP_FLATTEN:
            break;
        default:
            return zf_error(ZF_ERR_UNSUPPORTED, "the deconvnet cannot pass down through layer '%s' (%s)",
                            l->name, zf_op_name(l->op));
        }
    }
    memcpy(out, a, sizeof(float) * (size_t)zf_net_in_size(net) * n);
    return ZF_OK;
}
