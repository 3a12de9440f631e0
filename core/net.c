/* Networks: building the layer chain, the parameter block, buffers, and the CPU forward pass. */
#include "zf/alloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16_internal.h"
#include "conv_internal.h"
#include "zf/net.h"
#include "zf/tensor.h"

const char *zf_op_name(zf_op op)
{
    switch (op) {
    case ZF_OP_CONV: return "conv";
    case ZF_OP_RELU: return "relu";
    case ZF_OP_LRN: return "lrn";
    case ZF_OP_MAXPOOL: return "maxpool";
    case ZF_OP_AVGPOOL: return "avgpool";
    case ZF_OP_ADAPTIVE_AVGPOOL: return "adaptive-avgpool";
    case ZF_OP_FLATTEN: return "flatten";
    case ZF_OP_FC: return "fc";
    case ZF_OP_DROPOUT: return "dropout";
    case ZF_OP_SOFTMAX: return "softmax";
    }
    return "?";
}

int zf_window_out(int in, int k, int s, int pad_lo, int pad_hi, int ceil_mode)
{
    if (s <= 0 || k <= 0)
        return 0;
    int span = in + pad_lo + pad_hi - k;
    if (span < 0)
        return 0;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    /* PyTorch's rule: the last window must start inside the input or its leading padding. */
    if (ceil_mode && (o - 1) * s >= in + pad_lo)
        o--;
    return o;
}

zf_net *zf_net_new(const char *arch, int in_c, int in_h, int in_w)
{
    zf_net *net = zf_calloc(1, sizeof *net);
    if (!net) {
        zf_error(ZF_ERR_NOMEM, "out of memory for a net");
        return NULL;
    }
    snprintf(net->arch, sizeof net->arch, "%s", arch ? arch : "custom");
    net->in_c = in_c;
    net->in_h = in_h;
    net->in_w = in_w;
    net->pre.order = ZF_COLOR_RGB;
    net->pre.scale = 1.0f;
    for (int i = 0; i < 3; i++)
        net->pre.std[i] = 1.0f;
    net->pre.resize = ZF_RESIZE_EXACT;
    return net;
}

static void free_buffers(zf_net *net)
{
    if (net->acts) {
        for (int i = 0; i < net->n_layers; i++)
            if (!net->layers[i].in_place)
                zf_free(net->acts[i]);
        free(net->acts);
    }
    if (net->switches) {
        for (int i = 0; i < net->n_layers; i++)
            zf_free(net->switches[i]);
        free(net->switches);
    }
    zf_free(net->input);
    zf_free(net->ws);
    zf_free(net->dec[0]);
    zf_free(net->dec[1]);
    zf_free(net->dec_scratch);
    net->dec_scratch = NULL;
    if (net->filter_cache) {
        for (int i = 0; i < net->n_layers; i++)
            zf_conv_filter_cache_clear(&net->filter_cache[i]);
        free(net->filter_cache);
        net->filter_cache = NULL;
    }
    net->acts = NULL;
    net->switches = NULL;
    net->input = net->ws = net->dec[0] = net->dec[1] = NULL;
    net->batch = 0;
    net->ws_floats = net->dec_floats = 0;
}

void zf_conv_filter_cache_clear(zf_conv_filter_cache *c)
{
    free(c->w); /* posix_memalign'd (conv.c) */
    free(c->u);
    memset(c, 0, sizeof *c);
}

void zf_net_free(zf_net *net)
{
    if (!net)
        return;
    free_buffers(net);
    zf_net_set_labels(net, 0, NULL);
    zf_free(net->params);
    free(net->layers);
    free(net);
}

zf_status zf_net_set_labels(zf_net *net, int n, const char *const *names)
{
    for (int i = 0; i < net->n_labels; i++)
        free(net->labels[i]);
    free(net->labels);
    net->labels = NULL;
    net->n_labels = 0;
    if (n <= 0 || !names)
        return ZF_OK;
    net->labels = zf_calloc((size_t)n, sizeof *net->labels);
    if (!net->labels)
        return zf_error(ZF_ERR_NOMEM, "out of memory for %d class names", n);
    net->n_labels = n;
    for (int i = 0; i < n; i++)
        if (!(net->labels[i] = zf_strdup(names[i] ? names[i] : ""))) {
            zf_net_set_labels(net, 0, NULL);
            return zf_error(ZF_ERR_NOMEM, "out of memory for class names");
        }
    return ZF_OK;
}

const char *zf_net_label(const zf_net *net, int k)
{
    return net && k >= 0 && k < net->n_labels ? net->labels[k] : NULL;
}

/* Appends a layer whose input is the previous layer's output. */
static zf_layer *push(zf_net *net, const char *name, zf_op op)
{
    if (net->params) {
        zf_error(ZF_ERR_ARG, "net '%s': layer '%s' added after finalize", net->arch, name);
        return NULL;
    }
    if (name && zf_net_find(net, name) >= 0) {
        zf_error(ZF_ERR_ARG, "net '%s': two layers named '%s'", net->arch, name);
        return NULL;
    }
    if (net->n_layers == net->cap_layers) {
        int cap = net->cap_layers ? 2 * net->cap_layers : 32;
        zf_layer *l = zf_realloc(net->layers, sizeof *l * cap);
        if (!l) {
            zf_error(ZF_ERR_NOMEM, "out of memory for layers");
            return NULL;
        }
        net->layers = l;
        net->cap_layers = cap;
    }
    zf_layer *l = &net->layers[net->n_layers];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name ? name : "");
    l->op = op;
    if (net->n_layers == 0) {
        l->in_c = net->in_c;
        l->in_h = net->in_h;
        l->in_w = net->in_w;
    } else {
        const zf_layer *p = &net->layers[net->n_layers - 1];
        l->in_c = p->out_c;
        l->in_h = p->out_h;
        l->in_w = p->out_w;
    }
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    return l;
}

static zf_status commit(zf_net *net, zf_layer *l)
{
    if (l->out_c <= 0 || l->out_h <= 0 || l->out_w <= 0)
        return zf_error(ZF_ERR_SHAPE, "layer '%s' (%s): input %dx%dx%d gives an empty output", l->name,
                        zf_op_name(l->op), l->in_c, l->in_h, l->in_w);
    net->n_layers++;
    return ZF_OK;
}

static zf_status check_window(const zf_layer *l, zf_window w)
{
    if (w.kh <= 0 || w.kw <= 0 || w.sh <= 0 || w.sw <= 0 || w.pt < 0 || w.pl < 0 || w.pb < 0 || w.pr < 0)
        return zf_error(ZF_ERR_ARG, "layer '%s': bad window %dx%d stride %dx%d pads %d,%d,%d,%d",
                        l->name, w.kh, w.kw, w.sh, w.sw, w.pt, w.pl, w.pb, w.pr);
    return ZF_OK;
}

zf_status zf_net_add_conv(zf_net *net, const char *name, int out_c, zf_window win, int groups)
{
    zf_layer *l = push(net, name, ZF_OP_CONV);
    if (!l)
        return ZF_ERR_ARG;
    zf_status st = check_window(l, win);
    if (st)
        return st;
    if (groups < 1 || l->in_c % groups || out_c % groups || out_c <= 0)
        return zf_error(ZF_ERR_SHAPE, "layer '%s': %d input and %d output channels do not split into %d groups",
                        l->name, l->in_c, out_c, groups);
    l->win = win;
    l->groups = groups;
    l->out_c = out_c;
    l->out_h = zf_window_out(l->in_h, win.kh, win.sh, win.pt, win.pb, 0);
    l->out_w = zf_window_out(l->in_w, win.kw, win.sw, win.pl, win.pr, 0);
    l->weight_count = (int64_t)out_c * (l->in_c / groups) * win.kh * win.kw;
    l->bias_count = out_c;
    return commit(net, l);
}

zf_status zf_net_add_relu(zf_net *net, const char *name)
{
    zf_layer *l = push(net, name, ZF_OP_RELU);
    return l ? commit(net, l) : ZF_ERR_ARG;
}

zf_status zf_net_add_lrn(zf_net *net, const char *name, zf_lrn_params p)
{
    zf_layer *l = push(net, name, ZF_OP_LRN);
    if (!l)
        return ZF_ERR_ARG;
    if (p.size < 1 || p.front < 0 || p.front >= p.size || !(p.k > 0.0f) || p.alpha < 0.0f)
        return zf_error(ZF_ERR_ARG, "layer '%s': bad LRN parameters size %d alpha %g beta %g k %g",
                        l->name, p.size, p.alpha, p.beta, p.k);
    l->lrn = p;
    return commit(net, l);
}

static zf_status add_pool(zf_net *net, const char *name, zf_op op, zf_window win, int ceil_mode,
                          int count_include_pad)
{
    zf_layer *l = push(net, name, op);
    if (!l)
        return ZF_ERR_ARG;
    zf_status st = check_window(l, win);
    if (st)
        return st;
    if (win.pt >= win.kh || win.pb >= win.kh || win.pl >= win.kw || win.pr >= win.kw)
        return zf_error(ZF_ERR_ARG, "layer '%s': padding must be smaller than the %dx%d window",
                        l->name, win.kh, win.kw);
    l->win = win;
    l->ceil_mode = ceil_mode;
    l->count_include_pad = count_include_pad;
    l->out_h = zf_window_out(l->in_h, win.kh, win.sh, win.pt, win.pb, ceil_mode);
    l->out_w = zf_window_out(l->in_w, win.kw, win.sw, win.pl, win.pr, ceil_mode);
    return commit(net, l);
}

zf_status zf_net_add_maxpool(zf_net *net, const char *name, zf_window win, int ceil_mode)
{
    return add_pool(net, name, ZF_OP_MAXPOOL, win, ceil_mode, 0);
}

zf_status zf_net_add_avgpool(zf_net *net, const char *name, zf_window win, int ceil_mode,
                             int count_include_pad)
{
    return add_pool(net, name, ZF_OP_AVGPOOL, win, ceil_mode, count_include_pad);
}

zf_status zf_net_add_adaptive_avgpool(zf_net *net, const char *name, int oh, int ow)
{
    zf_layer *l = push(net, name, ZF_OP_ADAPTIVE_AVGPOOL);
    if (!l)
        return ZF_ERR_ARG;
    l->out_h = oh;
    l->out_w = ow;
    return commit(net, l);
}

zf_status zf_net_add_flatten(zf_net *net, const char *name)
{
    zf_layer *l = push(net, name, ZF_OP_FLATTEN);
    if (!l)
        return ZF_ERR_ARG;
    l->out_c = l->in_c * l->in_h * l->in_w;
    l->out_h = l->out_w = 1;
    l->in_place = 1;
    return commit(net, l);
}

zf_status zf_net_add_fc(zf_net *net, const char *name, int out_features)
{
    zf_layer *l = push(net, name, ZF_OP_FC);
    if (!l)
        return ZF_ERR_ARG;
    l->out_c = out_features;
    l->out_h = l->out_w = 1;
    l->weight_count = (int64_t)out_features * l->in_c * l->in_h * l->in_w;
    l->bias_count = out_features;
    return commit(net, l);
}

zf_status zf_net_add_dropout(zf_net *net, const char *name, float p)
{
    zf_layer *l = push(net, name, ZF_OP_DROPOUT);
    if (!l)
        return ZF_ERR_ARG;
    if (!(p >= 0.0f && p < 1.0f))
        return zf_error(ZF_ERR_ARG, "layer '%s': dropout probability %g outside [0, 1)", l->name, p);
    l->dropout_p = p;
    l->in_place = 1;
    return commit(net, l);
}

zf_status zf_net_add_softmax(zf_net *net, const char *name)
{
    zf_layer *l = push(net, name, ZF_OP_SOFTMAX);
    if (!l)
        return ZF_ERR_ARG;
    if (l->in_h != 1 || l->in_w != 1)
        return zf_error(ZF_ERR_SHAPE, "layer '%s': softmax needs a flat input, got %dx%dx%d", l->name,
                        l->in_c, l->in_h, l->in_w);
    return commit(net, l);
}

zf_status zf_net_finalize(zf_net *net)
{
    if (net->n_layers == 0)
        return zf_error(ZF_ERR_ARG, "net '%s' has no layers", net->arch);
    int64_t total = 0;
    for (int i = 0; i < net->n_layers; i++) {
        /* keep every tensor 16-float aligned inside the block */
        total += (net->layers[i].weight_count + 15) / 16 * 16;
        total += (net->layers[i].bias_count + 15) / 16 * 16;
    }
    zf_free(net->params);
    net->params = zf_alloc(sizeof(float) * (size_t)(total ? total : 1));
    if (!net->params)
        return zf_error(ZF_ERR_NOMEM, "out of memory for %lld parameters", (long long)total);
    float *p = net->params;
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        l->weight = l->weight_count ? p : NULL;
        p += (l->weight_count + 15) / 16 * 16;
        l->bias = l->bias_count ? p : NULL;
        p += (l->bias_count + 15) / 16 * 16;
    }
    net->n_params = total;
    return ZF_OK;
}

int64_t zf_net_param_count(const zf_net *net)
{
    int64_t n = 0;
    for (int i = 0; i < net->n_layers; i++)
        n += net->layers[i].weight_count + net->layers[i].bias_count;
    return n;
}

int zf_net_find(const zf_net *net, const char *name)
{
    if (!name || !*name)
        return -1;
    for (int i = 0; i < net->n_layers; i++)
        if (!strcmp(net->layers[i].name, name))
            return i;
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].graph_name[0] && !strcmp(net->layers[i].graph_name, name))
            return i;
    return -1;
}

zf_conv_geom zf_layer_conv_geom(const zf_layer *l, int n)
{
    zf_conv_geom g = {n, l->in_c, l->in_h, l->in_w, l->out_c, l->out_h, l->out_w,
                      l->win.kh, l->win.kw, l->win.sh, l->win.sw, l->win.pt, l->win.pl, l->groups};
    return g;
}

zf_pool_geom zf_layer_pool_geom(const zf_layer *l, int n)
{
    zf_pool_geom g = {n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w, l->win.kh, l->win.kw,
                      l->win.sh, l->win.sw, l->win.pt, l->win.pl, l->win.pb, l->win.pr};
    return g;
}

zf_status zf_net_reserve(zf_net *net, int batch)
{
    if (batch < 1)
        return zf_error(ZF_ERR_ARG, "batch size %d (must be at least 1)", batch);
    if (!net->params)
        return zf_error(ZF_ERR_ARG, "net '%s' is not finalized", net->arch);
    if (net->batch >= batch)
        return ZF_OK;
    free_buffers(net);
    net->acts = zf_calloc((size_t)net->n_layers, sizeof *net->acts);
    net->switches = zf_calloc((size_t)net->n_layers, sizeof *net->switches);
    net->input = zf_alloc(sizeof(float) * (size_t)batch * (size_t)zf_net_in_size(net));
    net->filter_cache = zf_calloc((size_t)net->n_layers, sizeof *net->filter_cache);
    if (!net->acts || !net->switches || !net->input || !net->filter_cache)
        goto nomem;
    size_t ws = 0, dec = (size_t)zf_net_in_size(net);
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        size_t out = (size_t)zf_layer_out_size(l);
        if (l->in_place) {
            net->acts[i] = i ? net->acts[i - 1] : net->input;
        } else {
            net->acts[i] = zf_alloc(sizeof(float) * (size_t)batch * out);
            if (!net->acts[i])
                goto nomem;
        }
        if (l->op == ZF_OP_MAXPOOL) {
            net->switches[i] = zf_alloc(sizeof(int32_t) * (size_t)batch * out);
            if (!net->switches[i])
                goto nomem;
        }
        if (l->op == ZF_OP_CONV) {
            zf_conv_geom g = zf_layer_conv_geom(l, batch);
            size_t w = zf_conv_workspace_floats_bound(&g);
            ws = w > ws ? w : ws;
        }
        if (out > dec)
            dec = out;
        if ((size_t)zf_layer_in_size(l) > dec)
            dec = (size_t)zf_layer_in_size(l);
    }
    net->ws = zf_alloc(sizeof(float) * (ws ? ws : 1));
    net->dec[0] = zf_alloc(sizeof(float) * dec * batch);
    net->dec[1] = zf_alloc(sizeof(float) * dec * batch);
    net->dec_scratch = zf_alloc(sizeof(float) * dec * batch * 2);
    if (!net->ws || !net->dec[0] || !net->dec[1] || !net->dec_scratch)
        goto nomem;
    net->ws_floats = ws;
    net->dec_floats = dec * batch;
    net->batch = batch;
    return ZF_OK;
nomem:
    free_buffers(net);
    return zf_error(ZF_ERR_NOMEM, "out of memory for the buffers of '%s' at batch %d", net->arch, batch);
}

zf_status zf_net_forward_range(zf_net *net, int first, int last, int n)
{
    if (n < 1 || n > net->batch)
        return zf_error(ZF_ERR_ARG, "forward of %d images with buffers for %d", n, net->batch);
    if (first < 0 || last >= net->n_layers || first > last)
        return zf_error(ZF_ERR_ARG, "forward over layers %d..%d of %d", first, last, net->n_layers);
    for (int i = first; i <= last; i++) {
        zf_layer *l = &net->layers[i];
        const float *in = zf_net_act(net, i - 1);
        float *out = net->acts[i];
        if (net->bf16 && (l->op == ZF_OP_CONV || l->op == ZF_OP_FC)) {
            zf_status st = zf_bf16_layer_forward(net, i, out, in, n);
            if (st)
                return st;
            continue;
        }
        switch (l->op) {
        case ZF_OP_CONV: {
            zf_conv_geom g = zf_layer_conv_geom(l, n);
            zf_conv_forward_cached(out, in, l->weight, l->bias, &g, net->ws, &net->filter_cache[i]);
            break;
        }
        case ZF_OP_RELU:
            zf_relu_forward(out, in, (size_t)n * zf_layer_out_size(l));
            break;
        case ZF_OP_LRN:
            zf_lrn_forward(out, in, n, l->in_c, l->in_h * l->in_w, &l->lrn);
            break;
        case ZF_OP_MAXPOOL: {
            zf_pool_geom g = zf_layer_pool_geom(l, n);
            zf_maxpool_forward(out, net->switches[i], in, &g);
            break;
        }
        case ZF_OP_AVGPOOL: {
            zf_pool_geom g = zf_layer_pool_geom(l, n);
            zf_avgpool_forward(out, in, &g, l->count_include_pad);
            break;
        }
        case ZF_OP_ADAPTIVE_AVGPOOL:
            zf_adaptive_avgpool_forward(out, in, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w);
            break;
        case ZF_OP_FC:
            zf_fc_forward(out, in, l->weight, l->bias, n, (int)zf_layer_in_size(l), l->out_c);
            break;
        case ZF_OP_SOFTMAX:
            zf_softmax_forward(out, in, n, l->out_c);
            break;
        case ZF_OP_FLATTEN:
        case ZF_OP_DROPOUT:
            break; /* in place: identity at inference */
        }
    }
    return ZF_OK;
}

zf_status zf_net_forward_upto(zf_net *net, const float *input, int n, int last)
{
    if (n < 1 || n > net->batch)
        return zf_error(ZF_ERR_ARG, "forward of %d images with buffers for %d (call zf_net_reserve)", n,
                        net->batch);
    if (input && input != net->input)
        memcpy(net->input, input, sizeof(float) * (size_t)n * (size_t)zf_net_in_size(net));
    return zf_net_forward_range(net, 0, last, n);
}

zf_status zf_net_forward(zf_net *net, const float *input, int n)
{
    return zf_net_forward_upto(net, input, n, net->n_layers - 1);
}
