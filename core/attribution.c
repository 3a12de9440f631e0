/* Gradient attributions: backpropagation from any layer's output on the activations of an
 * inference forward (training's backward passes, walked between two chosen layers), the guided
 * ReLU rule, and gradients, Grad-CAM and integrated gradients on top of them. */
#include "zf/attribution.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "zf/alloc.h"
#include "util_internal.h"
#include "zf/backward.h"
#include "zf/engine.h"
#include "zf/tensor.h"
#include "gemm_internal.h"

void zf_relu_backward_guided(float *din, const float *dout, const float *out, size_t count)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++)
        din[i] = out[i] > 0.0f && dout[i] > 0.0f ? dout[i] : 0.0f;
}

void zf_softmax_backward(float *din, const float *dout, const float *p, int n, int k)
{
    for (int i = 0; i < n; i++) {
        const float *pi = p + (size_t)i * k;
        const float *di = dout + (size_t)i * k;
        float *o = din + (size_t)i * k;
        double s = 0;
        for (int j = 0; j < k; j++)
            s += (double)di[j] * pi[j];
        for (int j = 0; j < k; j++)
            o[j] = (float)(pi[j] * ((double)di[j] - s));
    }
}

void zf_backprop_free(zf_backprop *b)
{
    if (!b)
        return;
    zf_free(b->d[0]);
    zf_free(b->d[1]);
    zf_free(b->ws);
    zf_free(b->dtop);
    free(b->targets);
    free(b);
}

zf_status zf_backprop_new(zf_net *net, int batch, zf_backprop **out)
{
    *out = NULL;
    if (batch < 1)
        return zf_error(ZF_ERR_ARG, "%s: backpropagation needs a batch of at least 1", net->arch);
    for (int i = 0; i < net->n_layers; i++)
        if ((net->layers[i].op == ZF_OP_CONV || net->layers[i].op == ZF_OP_FC) && !net->layers[i].weight)
            return zf_error(ZF_ERR_ARG, "%s: net not finalised", net->arch);
    zf_status st = zf_net_reserve(net, batch);
    if (st)
        return st;
    size_t biggest = (size_t)zf_net_in_size(net), ws = 1;
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if ((size_t)zf_layer_out_size(l) > biggest)
            biggest = (size_t)zf_layer_out_size(l);
        if (l->op == ZF_OP_CONV) {
            zf_conv_geom g = zf_layer_conv_geom(l, batch);
            size_t a = zf_conv_workspace_floats(&g);
            if (a > ws)
                ws = a;
        }
    }
    zf_backprop *b = zf_calloc(1, sizeof *b);
    if (!b)
        return zf_error(ZF_ERR_NOMEM, "out of memory for backpropagation through %s", net->arch);
    b->net = net;
    b->batch = batch;
    b->d_floats = biggest * (size_t)batch;
    b->ws_floats = ws;
    b->d[0] = zf_alloc(sizeof(float) * b->d_floats);
    b->d[1] = zf_alloc(sizeof(float) * b->d_floats);
    b->ws = zf_alloc(sizeof(float) * b->ws_floats);
    b->dtop = zf_alloc(sizeof(float) * b->d_floats);
    b->targets = malloc(sizeof *b->targets * (size_t)batch);
    if (!b->d[0] || !b->d[1] || !b->ws || !b->dtop || !b->targets) {
        zf_backprop_free(b);
        return zf_error(ZF_ERR_NOMEM, "out of memory for backpropagation through %s at batch %d",
                        net->arch, batch);
    }
    *out = b;
    return ZF_OK;
}

static size_t act_size(const zf_net *net, int i)
{
    return i < 0 ? (size_t)zf_net_in_size(net) : (size_t)zf_layer_out_size(&net->layers[i]);
}

zf_status zf_backprop_set_engine(zf_backprop *b, zf_engine *engine)
{
    if (engine && zf_engine_net(engine) != b->net)
        return zf_error(ZF_ERR_ARG, "%s: the engine runs another net", b->net->arch);
    if (engine && !zf_engine_supports(engine, ZF_ENGINE_OP_BACKWARD))
        return zf_error(ZF_ERR_UNSUPPORTED, "the %s engine has no backward pass", zf_engine_name(engine));
    zf_status st = engine ? zf_engine_reserve(engine, b->batch) : ZF_OK;
    if (st)
        return st;
    b->engine = engine;
    return ZF_OK;
}

zf_status zf_backprop_forward(zf_backprop *b, const float *input, int n, int last, int also)
{
    zf_net *net = b->net;
    if (!b->engine)
        return zf_net_forward_upto(net, input, n, last);
    zf_status st = zf_engine_forward(b->engine, input ? input : net->input, n, last);
    if (!st)
        st = zf_engine_read(b->engine, last, net->acts[last], n);
    if (!st && also >= 0 && also != last)
        st = zf_engine_read(b->engine, also, net->acts[also], n);
    return st;
}

zf_status zf_net_backward(zf_backprop *b, float *out, const float *dtop, int top, int bottom, int n,
                          zf_relu_rule rule)
{
    zf_net *net = b->net;
    if (n < 1 || n > b->batch || n > net->batch)
        return zf_error(ZF_ERR_ARG, "%s: backpropagation of %d images with buffers for %d", net->arch, n,
                        b->batch);
    if (top < 0 || top >= net->n_layers || bottom < -1 || bottom >= top)
        return zf_error(ZF_ERR_ARG, "%s: cannot backpropagate from layer %d down to layer %d", net->arch,
                        top, bottom);
    if (b->engine)
        return zf_engine_backward(b->engine, out, dtop, top, bottom, n, rule);
    float *dcur = b->d[0], *dother = b->d[1];
    memcpy(dcur, dtop, sizeof(float) * act_size(net, top) * (size_t)n);
    /* dcur holds d target / d (output of layer i). */
    for (int i = top; i > bottom; i--) {
        zf_layer *l = &net->layers[i];
        const float *in = zf_net_act(net, i - 1);
        const float *o = net->acts[i];
        const size_t out_count = (size_t)zf_layer_out_size(l) * (size_t)n;
        int to_other = 1;
        switch (l->op) {
        case ZF_OP_CONV: {
            zf_conv_geom g = zf_layer_conv_geom(l, n);
            zf_conv_backward_data(dother, dcur, l->weight, &g, b->ws);
            break;
        }
        case ZF_OP_FC: {
            const int in_f = (int)zf_layer_in_size(l), out_f = l->out_c;
            /* din (n, in_f) = dout (n, out_f) . w (out_f, in_f) */
            zf_sgemm('N', 'N', n, in_f, out_f, 1.0f, dcur, out_f,
                        l->weight, in_f, 0.0f, dother, in_f);
            break;
        }
        case ZF_OP_RELU:
            if (rule == ZF_RELU_RULE_GUIDED) {
                zf_relu_backward_guided(dcur, dcur, o, out_count);
            } else if (rule == ZF_RELU_RULE_DECONVNET) {
                for (size_t k = 0; k < out_count; k++)
                    dcur[k] = dcur[k] > 0.0f ? dcur[k] : 0.0f;
            } else {
                zf_relu_backward(dcur, dcur, o, out_count);
            }
            to_other = 0;
            break;
        case ZF_OP_DROPOUT:
        case ZF_OP_FLATTEN:
            to_other = 0;
            break;
        case ZF_OP_LRN:
            if (rule == ZF_RELU_RULE_DECONVNET)
                to_other = 0;
            else
                zf_lrn_backward(dother, dcur, in, n, l->in_c, l->in_h * l->in_w, &l->lrn);
            break;
        case ZF_OP_MAXPOOL: {
            zf_pool_geom g = zf_layer_pool_geom(l, n);
            zf_maxpool_unpool(dother, dcur, net->switches[i], &g);
            break;
        }
        case ZF_OP_AVGPOOL: {
            zf_pool_geom g = zf_layer_pool_geom(l, n);
            zf_avgpool_backward(dother, dcur, &g, l->count_include_pad);
            break;
        }
        case ZF_OP_ADAPTIVE_AVGPOOL:
            zf_adaptive_avgpool_backward(dother, dcur, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w);
            break;
        case ZF_OP_SOFTMAX:
            zf_softmax_backward(dcur, dcur, o, n, l->out_c);
            to_other = 0;
            break;
        }
        if (to_other) {
            float *s = dcur;
            dcur = dother;
            dother = s;
        }
    }
    memcpy(out, dcur, sizeof(float) * act_size(net, bottom) * (size_t)n);
    return ZF_OK;
}

int zf_attr_logits_layer(const zf_net *net, int prob)
{
    const int last = net->n_layers - 1;
    if (last < 0)
        return -1;
    if (net->layers[last].op == ZF_OP_SOFTMAX)
        return prob ? last : last - 1;
    return prob ? -1 : last;
}

zf_status zf_attr_target_check(const zf_net *net, const zf_attr_target *t)
{
    if (t->layer < 0 || t->layer >= net->n_layers)
        return zf_error(ZF_ERR_ARG, "%s: no layer %d to explain", net->arch, t->layer);
    const zf_layer *l = &net->layers[t->layer];
    if (t->channel < 0 || t->channel >= l->out_c)
        return zf_error(ZF_ERR_ARG, "%s: channel %d out of range: %s has %d", net->arch, t->channel,
                        l->name, l->out_c);
    if (t->y >= 0 && (t->y >= l->out_h || t->x < 0 || t->x >= l->out_w))
        return zf_error(ZF_ERR_ARG, "%s: position %d,%d out of range: %s's maps are %d x %d", net->arch,
                        t->y, t->x, l->name, l->out_h, l->out_w);
    return ZF_OK;
}

/* The target's value on image i's activations at layer t->layer. */
static double target_value(const zf_net *net, const zf_attr_target *t, int i)
{
    const zf_layer *l = &net->layers[t->layer];
    const size_t per = (size_t)zf_layer_out_size(l), hw = (size_t)l->out_h * l->out_w;
    const float *a = net->acts[t->layer] + (size_t)i * per + (size_t)t->channel * hw;
    if (t->y >= 0)
        return a[(size_t)t->y * l->out_w + t->x];
    double v = 0;
    for (size_t p = 0; p < hw; p++)
        v += a[p];
    return v;
}

/* Checks n targets, all at one layer (a channel < 0 stands for the top one). */
static zf_status check_targets(const zf_net *net, const zf_attr_target *t, int n)
{
    for (int i = 0; i < n; i++) {
        if (t[i].layer != t[0].layer)
            return zf_error(ZF_ERR_ARG, "%s: targets at layers %d and %d in one batch", net->arch, t[0].layer,
                            t[i].layer);
        zf_attr_target probe = t[i];
        if (probe.channel < 0)
            probe.channel = 0;
        zf_status st = zf_attr_target_check(net, &probe);
        if (st)
            return st;
    }
    return ZF_OK;
}

/* A target whose channel is < 0 gets image i's top channel (the largest value at its position,
 * or total), from the forward that has run to its layer. */
static void choose_top(const zf_net *net, zf_attr_target *t, int n)
{
    for (int i = 0; i < n; i++) {
        if (t[i].channel >= 0)
            continue;
        zf_attr_target c = t[i];
        double best = 0;
        for (c.channel = 0; c.channel < net->layers[t[i].layer].out_c; c.channel++) {
            const double v = target_value(net, &c, i);
            if (c.channel == 0 || v > best) {
                best = v;
                t[i].channel = c.channel;
            }
        }
    }
}

/* dtop (n images of the targets' layer's output) = each target's derivative with respect to that
 * output: 1 at the unit, or at every position of the channel for its total; value[i] the target. */
static void seed_target(float *dtop, double *value, const zf_net *net, const zf_attr_target *t, int n)
{
    const zf_layer *l = &net->layers[t[0].layer];
    const size_t per = (size_t)zf_layer_out_size(l), hw = (size_t)l->out_h * l->out_w;
    memset(dtop, 0, sizeof(float) * per * (size_t)n);
    for (int i = 0; i < n; i++) {
        float *d = dtop + (size_t)i * per + (size_t)t[i].channel * hw;
        if (t[i].y >= 0)
            d[(size_t)t[i].y * l->out_w + t[i].x] = 1.0f;
        else
            for (size_t p = 0; p < hw; p++)
                d[p] = 1.0f;
        if (value)
            value[i] = target_value(net, &t[i], i);
    }
}

zf_status zf_attr_gradient_each(zf_backprop *b, float *grad, double *value, const float *input, int n,
                                zf_attr_target *t, zf_relu_rule rule)
{
    zf_net *net = b->net;
    if (n < 1 || n > b->batch)
        return zf_error(ZF_ERR_ARG, "%s: %d images for buffers of %d", net->arch, n, b->batch);
    zf_status st = check_targets(net, t, n);
    if (st || (st = zf_backprop_forward(b, input, n, t[0].layer, -1)))
        return st;
    choose_top(net, t, n);
    seed_target(b->dtop, value, net, t, n);
    return zf_net_backward(b, grad, b->dtop, t[0].layer, -1, n, rule);
}

zf_status zf_attr_gradient(zf_backprop *b, float *grad, double *value, const float *input, int n,
                           const zf_attr_target *t, zf_relu_rule rule)
{
    zf_net *net = b->net;
    zf_status st = zf_attr_target_check(net, t);
    if (st)
        return st;
    if (n < 1 || n > b->batch)
        return zf_error(ZF_ERR_ARG, "%s: %d images for buffers of %d", net->arch, n, b->batch);
    for (int i = 0; i < n; i++)
        b->targets[i] = *t;
    return zf_attr_gradient_each(b, grad, value, input, n, b->targets, rule);
}

zf_status zf_attr_gradcam_check(const zf_net *net, int layer, const zf_attr_target *t)
{
    if (layer < 0 || layer >= net->n_layers)
        return zf_error(ZF_ERR_ARG, "%s: no layer %d for Grad-CAM", net->arch, layer);
    for (int i = 0; i <= layer; i++)
        if (net->layers[i].op == ZF_OP_FLATTEN || net->layers[i].op == ZF_OP_FC)
            return zf_error(ZF_ERR_ARG, "%s: Grad-CAM needs a layer with spatial maps; %s (a %s) comes after "
                            "the flatten (take a conv layer, e.g. the last one)", net->arch,
                            net->layers[layer].name, zf_op_name(net->layers[layer].op));
    if (t && t->layer <= layer)
        return zf_error(ZF_ERR_ARG, "%s: Grad-CAM at %s needs a target above it, not %s", net->arch,
                        net->layers[layer].name, net->layers[t->layer].name);
    return ZF_OK;
}

/* Where output index o of n_out samples falls among n input samples (half-pixel centres, clamped to
 * the edges): the two neighbours and the weight of the second. */
static void bilinear_coord(int o, int n, int n_out, int *i0, int *i1, double *frac)
{
    double f = (o + 0.5) * ((double)n / n_out) - 0.5;
    if (f < 0)
        f = 0;
    *i0 = (int)f < n - 1 ? (int)f : n - 1;
    *i1 = *i0 < n - 1 ? *i0 + 1 : *i0;
    *frac = f - *i0;
}

void zf_resize_bilinear(float *out, const float *in, int h, int w, int oh, int ow)
{
    for (int y = 0; y < oh; y++) {
        int y0, y1;
        double ly;
        bilinear_coord(y, h, oh, &y0, &y1, &ly);
        for (int x = 0; x < ow; x++) {
            int x0, x1;
            double lx;
            bilinear_coord(x, w, ow, &x0, &x1, &lx);
            const double top = (1 - lx) * in[y0 * w + x0] + lx * in[y0 * w + x1];
            const double bot = (1 - lx) * in[y1 * w + x0] + lx * in[y1 * w + x1];
            out[(size_t)y * ow + x] = (float)((1 - ly) * top + ly * bot);
        }
    }
}

zf_status zf_attr_gradcam_each(zf_backprop *b, float *cam, float *weights, float *low, double *value,
                               const float *input, int n, int layer, zf_attr_target *t)
{
    zf_net *net = b->net;
    if (n < 1 || n > b->batch)
        return zf_error(ZF_ERR_ARG, "%s: %d images for buffers of %d", net->arch, n, b->batch);
    zf_status st = check_targets(net, t, n);
    if (st || (st = zf_attr_gradcam_check(net, layer, t)))
        return st;
    if ((st = zf_backprop_forward(b, input, n, t[0].layer, layer)))
        return st;
    choose_top(net, t, n);
    const zf_layer *l = &net->layers[layer];
    const int k = l->out_c, hw = l->out_h * l->out_w;
    const size_t in_hw = (size_t)net->in_h * net->in_w;
    float *dA = zf_alloc(sizeof(float) * (size_t)k * hw * (size_t)n);
    float *map = zf_alloc(sizeof(float) * (size_t)hw);
    double *m = zf_calloc((size_t)hw, sizeof *m);
    if (!dA || !map || !m) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for Grad-CAM of %s", net->arch);
        goto done;
    }
    seed_target(b->dtop, value, net, t, n);
    if ((st = zf_net_backward(b, dA, b->dtop, t[0].layer, layer, n, ZF_RELU_RULE_GRADIENT)))
        goto done;
    for (int i = 0; i < n; i++) {
        const float *A = net->acts[layer] + (size_t)i * k * hw, *dAi = dA + (size_t)i * k * hw;
        memset(m, 0, sizeof *m * (size_t)hw);
        for (int c = 0; c < k; c++) {
            double s = 0;
            for (int p = 0; p < hw; p++)
                s += dAi[(size_t)c * hw + p];
            const double wc = s / hw;
            if (weights)
                weights[(size_t)i * k + c] = (float)wc;
            for (int p = 0; p < hw; p++)
                m[p] += wc * A[(size_t)c * hw + p];
        }
        for (int p = 0; p < hw; p++)
            map[p] = m[p] > 0 ? (float)m[p] : 0.0f;
        if (low)
            memcpy(low + (size_t)i * hw, map, sizeof(float) * hw);
        zf_resize_bilinear(cam + (size_t)i * in_hw, map, l->out_h, l->out_w, net->in_h, net->in_w);
    }
done:
    zf_free(dA);
    zf_free(map);
    free(m);
    return st;
}

zf_status zf_attr_gradcam(zf_backprop *b, float *cam, float *weights, float *low, double *value,
                          const float *input, int layer, const zf_attr_target *t)
{
    zf_status st = zf_attr_target_check(b->net, t);
    if (st)
        return st;
    zf_attr_target one = *t;
    return zf_attr_gradcam_each(b, cam, weights, low, value, input, 1, layer, &one);
}

zf_status zf_attr_value(zf_backprop *b, const float *input, const zf_attr_target *t, double *value)
{
    zf_status st = zf_backprop_forward(b, input, 1, t->layer, -1);
    if (!st && value)
        *value = target_value(b->net, t, 0);
    return st;
}

zf_status zf_attr_choose(zf_backprop *b, const float *input, int n, zf_attr_target *t)
{
    zf_net *net = b->net;
    if (n < 1 || n > b->batch)
        return zf_error(ZF_ERR_ARG, "%s: %d images for buffers of %d", net->arch, n, b->batch);
    zf_status st = check_targets(net, t, n);
    if (st || (st = zf_backprop_forward(b, input, n, t[0].layer, -1)))
        return st;
    choose_top(net, t, n);
    return ZF_OK;
}

zf_status zf_attr_integrated_gradients(zf_backprop *b, float *attr, double *f_x, double *f_base,
                                       const float *input, const float *baseline, const zf_attr_target *t,
                                       int steps, zf_ig_rule rule)
{
    zf_net *net = b->net;
    zf_status st = zf_attr_target_check(net, t);
    if (st)
        return st;
    if (steps < 1)
        return zf_error(ZF_ERR_ARG, "integrated gradients need at least 1 step, got %d", steps);
    const size_t in = (size_t)zf_net_in_size(net);
    const int points = rule == ZF_IG_TRAPEZOID ? steps + 1 : steps;
    float *x = zf_alloc(sizeof(float) * in * (size_t)b->batch);
    float *g = zf_alloc(sizeof(float) * in * (size_t)b->batch);
    double *sum = zf_calloc(in, sizeof *sum);
    double *val = zf_malloc(sizeof(double) * (size_t)b->batch);
    if (!x || !g || !sum || !val) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for integrated gradients of %s", net->arch);
        goto done;
    }
    /* The two ends, for the completeness check: F(x) - F(x') is what the attributions sum to. */
    if ((f_x && (st = zf_attr_value(b, input, t, f_x))) || (f_base && (st = zf_attr_value(b, baseline, t, f_base))))
        goto done;
    for (int k0 = 0; k0 < points; k0 += b->batch) {
        const int nb = points - k0 < b->batch ? points - k0 : b->batch;
        for (int j = 0; j < nb; j++) {
            const int k = k0 + j;
            const double alpha = rule == ZF_IG_TRAPEZOID ? (double)k / steps : (k + 0.5) / steps;
            float *xj = x + (size_t)j * in;
            for (size_t i = 0; i < in; i++)
                xj[i] = (float)(baseline[i] + alpha * ((double)input[i] - baseline[i]));
        }
        if ((st = zf_attr_gradient(b, g, val, x, nb, t, ZF_RELU_RULE_GRADIENT)))
            goto done;
        for (int j = 0; j < nb; j++) {
            const int k = k0 + j;
            const double wk = rule == ZF_IG_TRAPEZOID && (k == 0 || k == steps) ? 0.5 / steps : 1.0 / steps;
            const float *gj = g + (size_t)j * in;
            for (size_t i = 0; i < in; i++)
                sum[i] += wk * gj[i];
        }
    }
    for (size_t i = 0; i < in; i++)
        attr[i] = (float)(((double)input[i] - baseline[i]) * sum[i]);
done:
    zf_free(x);
    zf_free(g);
    free(sum);
    free(val);
    return st;
}

void zf_attr_noise(float *out, size_t count, uint64_t seed, int sample)
{
    const uint64_t key = zf_mix64(seed + ZF_GOLDEN);
    const double two_pi = 6.283185307179586476925286766559;
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++) {
        const uint64_t j = (uint64_t)sample * count + i;
        const uint64_t w1 = zf_mix64(key + 2 * j * ZF_GOLDEN), w2 = zf_mix64(key + (2 * j + 1) * ZF_GOLDEN);
        const double u1 = ((double)(w1 >> 11) + 0.5) * 0x1p-53, u2 = (double)(w2 >> 11) * 0x1p-53;
        out[i] = (float)(sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
    }
}
