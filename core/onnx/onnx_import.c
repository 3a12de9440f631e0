/* ONNX graph to engine net: walks the nodes in order, folds constants (initializers, Constant,
 * ConstantOfShape and what is computed from them only), and maps each node that reads the
 * activation onto a layer of the chain. Weights are copied into the net's parameter block once
 * its shape is known. Whatever the engine cannot run is refused with one message that names
 * the node, its op and the reason. */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

#define T_FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define T_INT64 ONNX__TENSOR_PROTO__DATA_TYPE__INT64

/* Limits on what a file may ask for, far above any real AlexNet/ZFNet-like model. */
#define OX_MAX_SIDE (1 << 16)
#define OX_MAX_CHANNELS (1 << 20)
#define OX_MAX_ACT (INT64_C(1) << 31)
#define OX_MAX_OWNED (1 << 20)

typedef enum { V_ACT, V_CONST, V_DEAD } ox_kind;

typedef struct ox_value {
    const char *name;
    ox_kind kind;
    int layer; /* V_ACT: the layer computing it; -1 for the net's input */
    int rank;  /* V_ACT: 4 for (n, c, h, w), 2 for (n, features) */
    ox_const c;
    const char *why; /* V_DEAD: which output of which op it is */
} ox_value;

typedef struct ox_pending {
    int w;         /* value index of the weight constant, -1 if none */
    int transpose; /* read the weight transposed (on top of its own transposed flag) */
    float w_scale;
    int n_bias;
    int bias[4];
    float b_scale[4];
} ox_pending;

typedef struct ox_ctx {
    const char *path;
    const char *dir;
    const zf_onnx_options *opts;
    const Onnx__GraphProto *g;
    int64_t opset;
    ox_value *vals;
    int n_vals, cap_vals;
    zf_net *net;
    ox_pending *pend;
    int cap_pend;
    int cur;        /* value index of the chain's current activation */
    int batch;      /* the input's declared batch size, 0 if symbolic */
    int n_weighted; /* conv and fc layers so far, for Caffe-style names */
    const Onnx__NodeProto *node;
    int node_idx;
} ox_ctx;

/* ---------------------------------------------------------------- messages */

static const char *str_or_empty(const char *s) { return s ? s : ""; }

static zf_status node_err(ox_ctx *x, zf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static zf_status node_err(ox_ctx *x, zf_status code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const Onnx__NodeProto *n = x->node;
    const char *name = str_or_empty(n->name);
    if (*name)
        return zf_error(code, "%s: node '%s' (%s): %s", x->path, ox_shown(name),
                        ox_shown(str_or_empty(n->op_type)), msg);
    return zf_error(code, "%s: node #%d (%s -> '%s'): %s", x->path, x->node_idx,
                    ox_shown(str_or_empty(n->op_type)),
                    ox_shown(n->n_output ? str_or_empty(n->output[0]) : ""), msg);
}

/* ---------------------------------------------------------------- values */

static int find_val(const ox_ctx *x, const char *name)
{
    for (int i = x->n_vals - 1; i >= 0; i--)
        if (!strcmp(x->vals[i].name, name))
            return i;
    return -1;
}

static ox_value *new_val(ox_ctx *x, const char *name, ox_kind kind)
{
    /* cap_vals is counted before the walk: every value has a slot, so pointers into vals stay valid */
    if (x->n_vals >= x->cap_vals)
        return NULL;
    ox_value *v = &x->vals[x->n_vals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->kind = kind;
    return v;
}

/* Registers a node output; an empty name is an output nobody wants. */
static zf_status def_output(ox_ctx *x, int k, ox_kind kind, ox_value **out)
{
    *out = NULL;
    const Onnx__NodeProto *n = x->node;
    if ((size_t)k >= n->n_output || !n->output[k] || !*n->output[k])
        return k == 0 ? node_err(x, ZF_ERR_FORMAT, "has no output") : ZF_OK;
    if (find_val(x, n->output[k]) >= 0)
        return node_err(x, ZF_ERR_FORMAT, "output '%s' is already defined earlier in the graph",
                        ox_shown(n->output[k]));
    *out = new_val(x, n->output[k], kind);
    if (!*out)
        return node_err(x, ZF_ERR_FORMAT, "too many values");
    return ZF_OK;
}

static const char *input_name(const ox_ctx *x, int k)
{
    const Onnx__NodeProto *n = x->node;
    if ((size_t)k >= n->n_input || !n->input[k])
        return "";
    return n->input[k];
}

/* Value index of input k: -1 when absent (optional), -2 on error (recorded). */
static int input_val(ox_ctx *x, int k)
{
    const char *name = input_name(x, k);
    if (!*name)
        return -1;
    int i = find_val(x, name);
    if (i < 0) {
        node_err(x, ZF_ERR_FORMAT, "input '%s' is not produced by any earlier node, initializer "
                                   "or graph input", ox_shown(name));
        return -2;
    }
    if (x->vals[i].kind == V_DEAD) {
        node_err(x, ZF_ERR_UNSUPPORTED, "reads '%s', %s, which the engine does not compute",
                 ox_shown(name), x->vals[i].why);
        return -2;
    }
    return i;
}

/* Input k must be a constant; its value index, -1 if absent and optional, -2 on error. */
static int const_input(ox_ctx *x, int k, int required, const char *what)
{
    int i = input_val(x, k);
    if (i == -2)
        return -2;
    if (i == -1) {
        if (required) {
            node_err(x, ZF_ERR_FORMAT, "has no %s input", what);
            return -2;
        }
        return -1;
    }
    if (x->vals[i].kind != V_CONST) {
        node_err(x, ZF_ERR_UNSUPPORTED, "its %s '%s' is computed from the image; the engine needs "
                 "it to be a constant", what, ox_shown(x->vals[i].name));
        return -2;
    }
    return i;
}

/* Input 0 must be the chain's current activation. */
static zf_status chain_input(ox_ctx *x)
{
    int i = input_val(x, 0);
    if (i == -2)
        return ZF_ERR_FORMAT;
    if (i == -1)
        return node_err(x, ZF_ERR_FORMAT, "has no data input");
    if (x->vals[i].kind != V_ACT)
        return node_err(x, ZF_ERR_UNSUPPORTED, "its data input '%s' is a constant",
                        ox_shown(x->vals[i].name));
    if (i != x->cur && x->vals[i].layer != x->vals[x->cur].layer)
        return node_err(x, ZF_ERR_UNSUPPORTED,
                        "reads '%s', not the latest activation '%s': the graph branches, and the "
                        "engine runs a single chain of layers", ox_shown(x->vals[i].name),
                        ox_shown(x->vals[x->cur].name));
    return ZF_OK;
}

static zf_layer *cur_layer(ox_ctx *x)
{
    int l = x->vals[x->cur].layer;
    return l >= 0 ? &x->net->layers[l] : NULL;
}

/* Current per-image shape (c, h, w), from the producing layer or the net's input. */
static void cur_shape(ox_ctx *x, int *c, int *h, int *w)
{
    zf_layer *l = cur_layer(x);
    if (l) {
        *c = l->out_c;
        *h = l->out_h;
        *w = l->out_w;
    } else {
        *c = x->net->in_c;
        *h = x->net->in_h;
        *w = x->net->in_w;
    }
}

/* ---------------------------------------------------------------- attributes */

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i] && n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
            return n->attribute[i];
    return NULL;
}

/* Every attribute must be one the handler knows: an unknown one could change the result. */
static zf_status check_attrs(ox_ctx *x, const char *const *allowed)
{
    const Onnx__NodeProto *n = x->node;
    for (size_t i = 0; i < n->n_attribute; i++) {
        const Onnx__AttributeProto *a = n->attribute[i];
        const char *name = a && a->name ? a->name : "";
        int ok = 0;
        for (const char *const *p = allowed; *p && !ok; p++)
            ok = !strcmp(*p, name);
        if (!ok)
            return node_err(x, ZF_ERR_UNSUPPORTED, "attribute '%s' is not supported", ox_shown(name));
        if (a->ref_attr_name && *a->ref_attr_name)
            return node_err(x, ZF_ERR_UNSUPPORTED, "attribute '%s' refers to a function attribute",
                            ox_shown(name));
    }
    return ZF_OK;
}

static zf_status attr_int(ox_ctx *x, const char *name, int64_t def, int64_t *v)
{
    const Onnx__AttributeProto *a = find_attr(x->node, name);
    *v = def;
    if (!a)
        return ZF_OK;
    if (!a->has_i)
        return node_err(x, ZF_ERR_FORMAT, "attribute '%s' is not an integer", name);
    *v = a->i;
    return ZF_OK;
}

static zf_status attr_float(ox_ctx *x, const char *name, double def, double *v)
{
    const Onnx__AttributeProto *a = find_attr(x->node, name);
    *v = def;
    if (!a)
        return ZF_OK;
    if (!a->has_f)
        return node_err(x, ZF_ERR_FORMAT, "attribute '%s' is not a float", name);
    if (!isfinite(a->f))
        return node_err(x, ZF_ERR_FORMAT, "attribute '%s' is %g", name, a->f);
    *v = a->f;
    return ZF_OK;
}

/* *n = -1 when absent. */
static zf_status attr_ints(ox_ctx *x, const char *name, int64_t *v, int max, int *n)
{
    const Onnx__AttributeProto *a = find_attr(x->node, name);
    *n = -1;
    if (!a)
        return ZF_OK;
    if (a->n_ints == 0 && (a->has_i || a->has_f || a->has_s || a->n_floats))
        return node_err(x, ZF_ERR_FORMAT, "attribute '%s' is not a list of integers", name);
    if (a->n_ints > (size_t)max)
        return node_err(x, ZF_ERR_UNSUPPORTED, "attribute '%s' has %zu values (at most %d expected)",
                        name, a->n_ints, max);
    for (size_t i = 0; i < a->n_ints; i++)
        v[i] = a->ints[i];
    *n = a->n_ints ? (int)a->n_ints : -1;
    return ZF_OK;
}

static zf_status attr_str(ox_ctx *x, const char *name, const char *def, char *buf, size_t len)
{
    const Onnx__AttributeProto *a = find_attr(x->node, name);
    snprintf(buf, len, "%s", def);
    if (!a)
        return ZF_OK;
    if (!a->has_s)
        return node_err(x, ZF_ERR_FORMAT, "attribute '%s' is not a string", name);
    size_t n = a->s.len < len - 1 ? a->s.len : len - 1;
    memcpy(buf, a->s.data, n);
    buf[n] = 0;
    return ZF_OK;
}

/* ---------------------------------------------------------------- layers */

/* Caffe-style name for a new layer: conv/fc numbered by position, the others after them. */
static void layer_name(ox_ctx *x, const char *stem, int numbered, char *buf, size_t len)
{
    char base[64], full[96];
    if (numbered && x->n_weighted > 0)
        snprintf(base, sizeof base, "%s%d", stem, x->n_weighted);
    else
        snprintf(base, sizeof base, "%s", stem);
    snprintf(full, sizeof full, "%s", base);
    for (int k = 2; k < 1000000; k++) {
        size_t n = strlen(full) < len - 1 ? strlen(full) : len - 1;
        memcpy(buf, full, n);
        buf[n] = 0;
        if (zf_net_find(x->net, buf) < 0)
            break;
        snprintf(full, sizeof full, "%s_%d", base, k);
    }
}

/* An average pool takes pool<k> unless a max pool has it (torchvision's pool5 then avgpool). */
static const char *avgpool_stem(ox_ctx *x)
{
    char base[32];
    snprintf(base, sizeof base, "pool%d", x->n_weighted);
    return zf_net_find(x->net, base) >= 0 ? "avgpool" : "pool";
}

/* After a builder call: the new layer computes output 0 of the node. */
static zf_status added(ox_ctx *x, zf_status st, int rank)
{
    if (st)
        return node_err(x, st, "%s", zf_last_error());
    zf_net *net = x->net;
    int li = net->n_layers - 1;
    zf_layer *l = &net->layers[li];
    if ((int64_t)l->out_c * l->out_h * l->out_w > OX_MAX_ACT || l->out_c <= 0 || l->out_h <= 0 ||
        l->out_w <= 0)
        return node_err(x, ZF_ERR_UNSUPPORTED, "output of %dx%dx%d per image is out of range",
                        l->out_c, l->out_h, l->out_w);
    if (li >= x->cap_pend)
        return node_err(x, ZF_ERR_FORMAT, "too many layers");
    x->pend[li].w = -1;
    x->pend[li].w_scale = 1;
    x->pend[li].n_bias = 0;
    ox_value *v;
    st = def_output(x, 0, V_ACT, &v);
    if (st)
        return st;
    snprintf(l->graph_name, sizeof l->graph_name, "%s", v->name);
    v->layer = li;
    v->rank = rank;
    x->cur = (int)(v - x->vals);
    return ZF_OK;
}

/* Output 0 is the current activation under another name (Identity, a reshape that changes nothing). */
static zf_status alias(ox_ctx *x, int rank)
{
    ox_value *v;
    int from = x->cur;
    zf_status st = def_output(x, 0, V_ACT, &v);
    if (st)
        return st;
    v->layer = x->vals[from].layer;
    v->rank = rank;
    x->cur = (int)(v - x->vals);
    return ZF_OK;
}

/* Later outputs (MaxPool's Indices, Dropout's mask) exist but are not computed. */
static zf_status dead_outputs(ox_ctx *x, int from, const char *why)
{
    for (int k = from; (size_t)k < x->node->n_output; k++) {
        ox_value *v;
        zf_status st = def_output(x, k, V_DEAD, &v);
        if (st)
            return st;
        if (v)
            v->why = why;
    }
    return ZF_OK;
}

static zf_status need_rank(ox_ctx *x, int rank)
{
    if (x->vals[x->cur].rank != rank)
        return node_err(x, ZF_ERR_UNSUPPORTED, "expects a %s input but gets a %s one",
                        rank == 4 ? "4-D (N, C, H, W)" : "2-D (N, features)",
                        x->vals[x->cur].rank == 4 ? "4-D" : "2-D");
    return ZF_OK;
}

static zf_status check_range(ox_ctx *x, const char *what, int64_t v, int64_t lo, int64_t hi)
{
    if (v < lo || v > hi)
        return node_err(x, ZF_ERR_UNSUPPORTED, "%s %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                        what, v, lo, hi);
    return ZF_OK;
}

/* Strides, pads and auto_pad of a conv or pool with kernel kh x kw over the current input. */
static zf_status make_window(ox_ctx *x, int kh, int kw, zf_window *win)
{
    int64_t s[2] = {1, 1}, p[4] = {0, 0, 0, 0}, d[2];
    int ns, np, nd;
    char autopad[32];
    zf_status st;
    if ((st = attr_ints(x, "strides", s, 2, &ns)) || (st = attr_ints(x, "pads", p, 4, &np)) ||
        (st = attr_ints(x, "dilations", d, 2, &nd)) ||
        (st = attr_str(x, "auto_pad", "NOTSET", autopad, sizeof autopad)))
        return st;
    if (ns >= 0 && ns != 2)
        return node_err(x, ZF_ERR_UNSUPPORTED, "strides has %d values; only 2-D windows are supported", ns);
    if (np >= 0 && np != 4)
        return node_err(x, ZF_ERR_UNSUPPORTED, "pads has %d values; only 2-D windows are supported", np);
    if (nd >= 0 && nd != 2)
        return node_err(x, ZF_ERR_UNSUPPORTED, "dilations has %d values; only 2-D windows are supported", nd);
    if (nd == 2 && (d[0] != 1 || d[1] != 1))
        return node_err(x, ZF_ERR_UNSUPPORTED, "dilations [%" PRId64 ",%" PRId64 "] (only 1 is supported)",
                        d[0], d[1]);
    for (int i = 0; i < 2; i++)
        if ((st = check_range(x, "stride", s[i], 1, OX_MAX_SIDE)))
            return st;
    for (int i = 0; i < 4; i++)
        if ((st = check_range(x, "pad", p[i], 0, OX_MAX_SIDE)))
            return st;
    int c, h, w;
    cur_shape(x, &c, &h, &w);
    if (!strcmp(autopad, "VALID")) {
        memset(p, 0, sizeof p);
    } else if (!strcmp(autopad, "SAME_UPPER") || !strcmp(autopad, "SAME_LOWER")) {
        int upper = autopad[5] == 'U';
        int in[2] = {h, w}, k[2] = {kh, kw};
        for (int i = 0; i < 2; i++) {
            int64_t out = (in[i] + s[i] - 1) / s[i];
            int64_t total = (out - 1) * s[i] + k[i] - in[i];
            if (total < 0)
                total = 0;
            int64_t lo = upper ? total / 2 : total - total / 2;
            p[i] = lo;
            p[i + 2] = total - lo;
        }
    } else if (strcmp(autopad, "NOTSET") && autopad[0]) {
        return node_err(x, ZF_ERR_UNSUPPORTED, "auto_pad '%s' is not supported", ox_shown(autopad));
    }
    win->kh = kh;
    win->kw = kw;
    win->sh = (int)s[0];
    win->sw = (int)s[1];
    win->pt = (int)p[0];
    win->pl = (int)p[1];
    win->pb = (int)p[2];
    win->pr = (int)p[3];
    if (kh > h + win->pt + win->pb || kw > w + win->pl + win->pr)
        return node_err(x, ZF_ERR_SHAPE, "window %dx%d is larger than its padded %dx%d input", kh, kw,
                        h + win->pt + win->pb, w + win->pl + win->pr);
    return ZF_OK;
}

static zf_status kernel_shape(ox_ctx *x, int *kh, int *kw, int required)
{
    int64_t k[2];
    int n;
    zf_status st = attr_ints(x, "kernel_shape", k, 2, &n);
    if (st)
        return st;
    if (n < 0 && !required)
        return ZF_OK;
    if (n < 0)
        return node_err(x, ZF_ERR_UNSUPPORTED, "has no kernel_shape");
    if (n != 2)
        return node_err(x, ZF_ERR_UNSUPPORTED, "kernel_shape has %d values; only 2-D windows are supported", n);
    if ((st = check_range(x, "kernel size", k[0], 1, OX_MAX_SIDE)) ||
        (st = check_range(x, "kernel size", k[1], 1, OX_MAX_SIDE)))
        return st;
    *kh = (int)k[0];
    *kw = (int)k[1];
    return ZF_OK;
}

/* ONNX sizes a ceil_mode pool as ceil((in + pads - k) / s) + 1; the engine (PyTorch's rule) drops a
 * last window that would start in the trailing padding. Refuse the shapes where they differ. */
static zf_status check_ceil(ox_ctx *x, const zf_window *w, int ceil_mode)
{
    if (!ceil_mode)
        return ZF_OK;
    int c, h, wd;
    cur_shape(x, &c, &h, &wd);
    int in[2] = {h, wd}, k[2] = {w->kh, w->kw}, s[2] = {w->sh, w->sw};
    int lo[2] = {w->pt, w->pl}, hi[2] = {w->pb, w->pr};
    for (int i = 0; i < 2; i++) {
        int64_t span = (int64_t)in[i] + lo[i] + hi[i] - k[i];
        int64_t onnx_out = (span + s[i] - 1) / s[i] + 1;
        if (onnx_out != zf_window_out(in[i], k[i], s[i], lo[i], hi[i], 1))
            return node_err(x, ZF_ERR_UNSUPPORTED,
                            "ceil_mode with a last window that starts in the padding (ONNX and the "
                            "engine size this output differently)");
    }
    return ZF_OK;
}

static const char *const pool_attrs[] = {"kernel_shape", "strides", "pads", "auto_pad", "ceil_mode",
                                         "dilations", "storage_order", "count_include_pad", NULL};

static zf_status op_pool(ox_ctx *x, int is_max)
{
    zf_status st;
    if ((st = check_attrs(x, pool_attrs)) || (st = chain_input(x)) || (st = need_rank(x, 4)))
        return st;
    if (!is_max && find_attr(x->node, "storage_order"))
        return node_err(x, ZF_ERR_UNSUPPORTED, "attribute 'storage_order' is not supported");
    if (is_max && find_attr(x->node, "count_include_pad"))
        return node_err(x, ZF_ERR_UNSUPPORTED, "attribute 'count_include_pad' is not supported");
    int kh = 0, kw = 0;
    int64_t ceil_mode, cip;
    zf_window win;
    if ((st = kernel_shape(x, &kh, &kw, 1)) || (st = make_window(x, kh, kw, &win)) ||
        (st = attr_int(x, "ceil_mode", 0, &ceil_mode)) ||
        (st = attr_int(x, "count_include_pad", 0, &cip)))
        return st;
    if ((ceil_mode != 0 && ceil_mode != 1) || (cip != 0 && cip != 1))
        return node_err(x, ZF_ERR_UNSUPPORTED, "ceil_mode and count_include_pad must be 0 or 1");
    if ((st = check_ceil(x, &win, (int)ceil_mode)))
        return st;
    char name[32];
    const char *stem = is_max ? "pool" : avgpool_stem(x);
    layer_name(x, stem, strcmp(stem, "avgpool") != 0, name, sizeof name);
    if (is_max) {
        st = added(x, zf_net_add_maxpool(x->net, name, win, (int)ceil_mode), 4);
        return st ? st : dead_outputs(x, 1, "the Indices output of MaxPool");
    }
    return added(x, zf_net_add_avgpool(x->net, name, win, (int)ceil_mode, (int)cip), 4);
}

static zf_status op_global_pool(ox_ctx *x, int is_max)
{
    static const char *const none[] = {NULL};
    zf_status st;
    if ((st = check_attrs(x, none)) || (st = chain_input(x)) || (st = need_rank(x, 4)))
        return st;
    int c, h, w;
    cur_shape(x, &c, &h, &w);
    char name[32];
    const char *stem = is_max ? "pool" : avgpool_stem(x);
    layer_name(x, stem, strcmp(stem, "avgpool") != 0, name, sizeof name);
    if (is_max)
        return added(x, zf_net_add_maxpool(x->net, name, (zf_window){h, w, 1, 1, 0, 0, 0, 0}, 0), 4);
    return added(x, zf_net_add_adaptive_avgpool(x->net, name, 1, 1), 4);
}

static zf_status op_conv(ox_ctx *x)
{
    static const char *const allowed[] = {"kernel_shape", "strides", "pads", "auto_pad",
                                          "dilations", "group", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)) || (st = chain_input(x)) || (st = need_rank(x, 4)))
        return st;
    int wi = const_input(x, 1, 1, "weight"), bi = const_input(x, 2, 0, "bias");
    if (wi == -2 || bi == -2)
        return ZF_ERR_UNSUPPORTED;
    const ox_const *W = &x->vals[wi].c;
    if (W->ndim != 4)
        return node_err(x, ZF_ERR_UNSUPPORTED, "weight '%s' has %d dimensions; only 2-D convolutions "
                        "(4-D weights) are supported", ox_shown(x->vals[wi].name), W->ndim);
    int c, h, w;
    cur_shape(x, &c, &h, &w);
    int64_t group;
    if ((st = attr_int(x, "group", 1, &group)) || (st = check_range(x, "group", group, 1, c)))
        return st;
    if ((st = check_range(x, "output channels", W->dims[0], 1, OX_MAX_CHANNELS)) ||
        (st = check_range(x, "kernel height", W->dims[2], 1, OX_MAX_SIDE)) ||
        (st = check_range(x, "kernel width", W->dims[3], 1, OX_MAX_SIDE)))
        return st;
    int k = (int)W->dims[0], kh = (int)W->dims[2], kw = (int)W->dims[3];
    if (W->dims[1] * group != c || k % group)
        return node_err(x, ZF_ERR_SHAPE, "weight shape %" PRId64 "x%" PRId64 "x%dx%d with group %" PRId64
                        " does not fit %d input channels", W->dims[0], W->dims[1], kh, kw, group, c);
    int akh = kh, akw = kw;
    if ((st = kernel_shape(x, &akh, &akw, 0)))
        return st;
    if (akh != kh || akw != kw)
        return node_err(x, ZF_ERR_SHAPE, "kernel_shape %dx%d does not match the weight's %dx%d", akh, akw, kh, kw);
    if (bi >= 0 && x->vals[bi].c.count != k)
        return node_err(x, ZF_ERR_SHAPE, "bias has %" PRId64 " values for %d output channels",
                        x->vals[bi].c.count, k);
    zf_window win;
    if ((st = make_window(x, kh, kw, &win)))
        return st;
    x->n_weighted++;
    char name[32];
    layer_name(x, "conv", 1, name, sizeof name);
    if ((st = added(x, zf_net_add_conv(x->net, name, k, win, (int)group), 4)))
        return st;
    ox_pending *p = &x->pend[x->net->n_layers - 1];
    p->w = wi;
    if (bi >= 0) {
        p->bias[0] = bi;
        p->b_scale[0] = 1;
        p->n_bias = 1;
    }
    return ZF_OK;
}

static zf_status op_relu(ox_ctx *x)
{
    static const char *const allowed[] = {"consumed_inputs", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)) || (st = chain_input(x)))
        return st;
    char name[32];
    layer_name(x, "relu", 1, name, sizeof name);
    return added(x, zf_net_add_relu(x->net, name), x->vals[x->cur].rank);
}

static zf_status op_lrn(ox_ctx *x)
{
    static const char *const allowed[] = {"size", "alpha", "beta", "bias", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)) || (st = chain_input(x)) || (st = need_rank(x, 4)))
        return st;
    int64_t size;
    double alpha, beta, bias;
    if ((st = attr_int(x, "size", -1, &size)) || (st = attr_float(x, "alpha", 1e-4, &alpha)) ||
        (st = attr_float(x, "beta", 0.75, &beta)) || (st = attr_float(x, "bias", 1.0, &bias)))
        return st;
    if (size == -1)
        return node_err(x, ZF_ERR_FORMAT, "has no size attribute");
    if ((st = check_range(x, "size", size, 1, 1 << 16)))
        return st;
    /* ONNX's alpha is already the per-window one: sum * alpha / size, as the engine takes it. */
    zf_lrn_params p = {.size = (int)size, .front = (int)(size - 1) / 2, .alpha = (float)alpha,
                       .beta = (float)beta, .k = (float)bias};
    char name[32];
    layer_name(x, "norm", 1, name, sizeof name);
    return added(x, zf_net_add_lrn(x->net, name, p), 4);
}

static zf_status add_flatten(ox_ctx *x)
{
    char name[32];
    layer_name(x, "flatten", 0, name, sizeof name);
    return added(x, zf_net_add_flatten(x->net, name), 2);
}

static zf_status op_flatten(ox_ctx *x)
{
    static const char *const allowed[] = {"axis", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)) || (st = chain_input(x)))
        return st;
    int rank = x->vals[x->cur].rank;
    int64_t axis;
    if ((st = attr_int(x, "axis", 1, &axis)))
        return st;
    if (axis < 0)
        axis += rank;
    if (axis != 1)
        return node_err(x, ZF_ERR_UNSUPPORTED, "axis %" PRId64 ": only flattening to (batch, features) "
                        "(axis 1) is supported", axis);
    int c, h, w;
    cur_shape(x, &c, &h, &w);
    if (h == 1 && w == 1)
        return alias(x, 2);
    return add_flatten(x);
}

/* Reshape: only what keeps the batch axis first and the data in place: flattening to
 * (batch, features), or a shape the activation already has. */
static zf_status op_reshape(ox_ctx *x)
{
    static const char *const allowed[] = {"shape", "allowzero", "consumed_inputs", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)) || (st = chain_input(x)))
        return st;
    int64_t t[OX_MAX_DIMS], allowzero;
    int nt;
    if ((st = attr_int(x, "allowzero", 0, &allowzero)))
        return st;
    int si = const_input(x, 1, 0, "shape");
    if (si == -2)
        return ZF_ERR_UNSUPPORTED;
    if (si >= 0) {
        const ox_const *s = &x->vals[si].c;
        if (s->ndim > 1)
            return node_err(x, ZF_ERR_FORMAT, "shape input is not 1-D");
        if ((st = ox_const_read_i64(s, x->dir, t, OX_MAX_DIMS, x->path)))
            return node_err(x, st, "%s", zf_last_error());
        nt = (int)s->count;
    } else {
        if ((st = attr_ints(x, "shape", t, OX_MAX_DIMS, &nt)))
            return st;
        if (nt < 0)
            return node_err(x, ZF_ERR_FORMAT, "has neither a shape input nor a shape attribute");
    }
    int c, h, w;
    cur_shape(x, &c, &h, &w);
    int rank = x->vals[x->cur].rank;
    int64_t cur[4] = {x->batch ? x->batch : 1, c, h, w};
    if (rank == 2)
        cur[1] = (int64_t)c * h * w;
    int64_t total = cur[0] * (rank == 2 ? cur[1] : cur[1] * cur[2] * cur[3]);
    /* Resolve 0 (copy) and -1 (infer) as ONNX does, with the declared batch. */
    int64_t known = 1;
    int infer = -1;
    for (int i = 0; i < nt; i++) {
        if (t[i] == 0 && !allowzero) {
            if (i >= rank)
                return node_err(x, ZF_ERR_SHAPE, "shape has 0 at axis %d beyond the input's rank", i);
            t[i] = cur[i];
        }
        if (t[i] == -1) {
            if (infer >= 0)
                return node_err(x, ZF_ERR_SHAPE, "shape has more than one -1");
            infer = i;
            continue;
        }
        if (t[i] < 0 || t[i] > OX_MAX_ACT)
            return node_err(x, ZF_ERR_SHAPE, "shape has %" PRId64 " at axis %d", t[i], i);
        if (t[i] && known > (INT64_C(1) << 50) / t[i])
            return node_err(x, ZF_ERR_SHAPE, "shape is too large");
        known *= t[i];
    }
    if (infer >= 0) {
        if (known == 0 || total % known)
            return node_err(x, ZF_ERR_SHAPE, "cannot infer the -1 in the shape");
        t[infer] = total / known;
        known = total;
    }
    if (known != total)
        return node_err(x, ZF_ERR_SHAPE, "shape has %" PRId64 " elements, the input %" PRId64, known, total);
    /* The first axis is the batch: the zoo's graphs were exported for batch 1 and say so. */
    int batch_ok = nt >= 1 && (t[0] == cur[0] || (infer == 0 && x->batch == 0));
    int64_t feat = (int64_t)c * h * w;
    if (batch_ok && nt == 2 && t[1] == feat)
        return (h == 1 && w == 1) ? alias(x, 2) : add_flatten(x);
    if (batch_ok && nt == 4 && t[1] == c && t[2] == h && t[3] == w)
        return alias(x, 4);
    if (batch_ok && nt == 4 && t[1] == feat && t[2] == 1 && t[3] == 1 && h == 1 && w == 1)
        return alias(x, 4);
    char shape[128] = "";
    for (int i = 0, n = 0; i < nt && n < (int)sizeof shape - 24; i++)
        n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRId64, i ? "," : "", t[i]);
    return node_err(x, ZF_ERR_UNSUPPORTED, "reshape to [%s] of a %dx%dx%d activation: only flattening "
                    "to (batch, features) is supported", shape, c, h, w);
}

/* Adds bias contribution `vi` (times scale) to the layer of the current activation. */
static zf_status add_bias(ox_ctx *x, int vi, float scale)
{
    zf_layer *l = cur_layer(x);
    ox_pending *p = &x->pend[x->vals[x->cur].layer];
    if (p->n_bias >= 4)
        return node_err(x, ZF_ERR_UNSUPPORTED, "more than 4 bias terms on one layer");
    int64_t n = x->vals[vi].c.count;
    if (n != 1 && n != l->out_c)
        return node_err(x, ZF_ERR_SHAPE, "bias has %" PRId64 " values for %d outputs", n, l->out_c);
    p->bias[p->n_bias] = vi;
    p->b_scale[p->n_bias] = scale;
    p->n_bias++;
    return ZF_OK;
}

/* Does constant `c` (broadcast from axis `axis` on, or numpy-style from the right when axis < 0)
 * vary only along the channel axis of an output of rank `rank`? */
static int per_channel(const ox_const *c, int rank, int axis)
{
    int start = axis >= 0 ? axis : rank - c->ndim;
    if (start < 0 || start + c->ndim > rank)
        return 0;
    for (int i = 0; i < c->ndim; i++)
        if (c->dims[i] != 1 && start + i != 1)
            return 0;
    return 1;
}

/* Add or Sum of the activation and constants, right after a Conv, Gemm or MatMul: a bias. */
static zf_status op_add(ox_ctx *x)
{
    static const char *const allowed[] = {"broadcast", "axis", "consumed_inputs", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)))
        return st;
    const Onnx__NodeProto *n = x->node;
    int act = -1;
    for (size_t k = 0; k < n->n_input; k++) {
        int i = input_val(x, (int)k);
        if (i == -2)
            return ZF_ERR_FORMAT;
        if (i >= 0 && x->vals[i].kind == V_ACT) {
            if (act >= 0)
                return node_err(x, ZF_ERR_UNSUPPORTED, "adds two activations (a residual branch); "
                                "the engine runs a single chain");
            act = (int)k;
        }
    }
    if (act < 0)
        return node_err(x, ZF_ERR_UNSUPPORTED, "has no activation input");
    int i = input_val(x, act);
    if (i != x->cur && x->vals[i].layer != x->vals[x->cur].layer)
        return node_err(x, ZF_ERR_UNSUPPORTED, "reads '%s', not the latest activation '%s': the graph "
                        "branches", ox_shown(x->vals[i].name), ox_shown(x->vals[x->cur].name));
    zf_layer *l = cur_layer(x);
    if (!l || (l->op != ZF_OP_CONV && l->op != ZF_OP_FC))
        return node_err(x, ZF_ERR_UNSUPPORTED, "adds a constant to the output of %s; only a bias right "
                        "after Conv, Gemm or MatMul is supported", l ? zf_op_name(l->op) : "the input");
    int64_t bcast, axis;
    if ((st = attr_int(x, "broadcast", -1, &bcast)) || (st = attr_int(x, "axis", -1, &axis)))
        return st;
    int rank = x->vals[x->cur].rank;
    if (axis < -1)
        axis += rank;
    for (size_t k = 0; k < n->n_input; k++) {
        if ((int)k == act)
            continue;
        int ci = input_val(x, (int)k);
        if (ci < 0)
            continue;
        const ox_const *c = &x->vals[ci].c;
        /* Before opset 7 Add broadcast only with broadcast=1 (from `axis`, or from the right). */
        int ok = bcast == 0 ? 0 : per_channel(c, rank, bcast == 1 ? (int)axis : -1);
        if (!ok || (c->count != 1 && c->count != l->out_c))
            return node_err(x, ZF_ERR_UNSUPPORTED, "adds constant '%s' that is not a per-channel bias",
                            ox_shown(x->vals[ci].name));
        if ((st = add_bias(x, ci, 1.0f)))
            return st;
    }
    int li = x->vals[x->cur].layer;
    if ((st = alias(x, rank)))
        return st;
    /* Earlier names of this layer's output now stand for the value before the bias. */
    for (int v = 0; v < x->n_vals; v++) {
        if (v != x->cur && x->vals[v].kind == V_ACT && x->vals[v].layer == li) {
            x->vals[v].kind = V_DEAD;
            x->vals[v].why = "the output before a bias that the engine adds inside the layer";
        }
    }
    snprintf(x->net->layers[li].graph_name, sizeof x->net->layers[li].graph_name, "%s",
             x->vals[x->cur].name);
    return ZF_OK;
}

/* A fully connected layer with weight value `wi` ((out, in) after `transpose`), times alpha. */
static zf_status add_fc(ox_ctx *x, int wi, int transpose, float alpha)
{
    const ox_const *W = &x->vals[wi].c;
    int64_t out = transpose ? W->dims[1] : W->dims[0], in = transpose ? W->dims[0] : W->dims[1];
    int c, h, w;
    cur_shape(x, &c, &h, &w);
    zf_status st;
    if ((st = check_range(x, "output features", out, 1, OX_MAX_ACT)))
        return st;
    if (in != (int64_t)c * h * w)
        return node_err(x, ZF_ERR_SHAPE, "weight '%s' takes %" PRId64 " inputs but the activation has %" PRId64,
                        ox_shown(x->vals[wi].name), in, (int64_t)c * h * w);
    x->n_weighted++;
    char name[32];
    layer_name(x, "fc", 1, name, sizeof name);
    if ((st = added(x, zf_net_add_fc(x->net, name, (int)out), 2)))
        return st;
    ox_pending *p = &x->pend[x->net->n_layers - 1];
    p->w = wi;
    p->transpose = transpose;
    p->w_scale = alpha;
    return ZF_OK;
}

static zf_status op_gemm(ox_ctx *x)
{
    static const char *const allowed[] = {"alpha", "beta", "transA", "transB", "broadcast", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)) || (st = chain_input(x)) || (st = need_rank(x, 2)))
        return st;
    double alpha, beta;
    int64_t ta, tb;
    if ((st = attr_float(x, "alpha", 1, &alpha)) || (st = attr_float(x, "beta", 1, &beta)) ||
        (st = attr_int(x, "transA", 0, &ta)) || (st = attr_int(x, "transB", 0, &tb)))
        return st;
    if (ta)
        return node_err(x, ZF_ERR_UNSUPPORTED, "transA=1: the activation must be (batch, features)");
    int wi = const_input(x, 1, 1, "B"), ci = const_input(x, 2, 0, "C");
    if (wi == -2 || ci == -2)
        return ZF_ERR_UNSUPPORTED;
    if (x->vals[wi].c.ndim != 2)
        return node_err(x, ZF_ERR_SHAPE, "B is not 2-D");
    /* Gemm's B is (in, out), or (out, in) with transB: the engine's layout. */
    if ((st = add_fc(x, wi, !tb, (float)alpha)))
        return st;
    if (ci >= 0) {
        const ox_const *c = &x->vals[ci].c;
        int ok = c->ndim <= 2;
        for (int i = 0; ok && i < c->ndim - 1; i++)
            ok = c->dims[i] == 1;
        if (!ok)
            return node_err(x, ZF_ERR_UNSUPPORTED, "C of shape %s is not a bias row: a bias per "
                            "batch row is not supported", c->ndim > 2 ? "rank > 2" : "(M, N)");
        if ((st = add_bias(x, ci, (float)beta)))
            return st;
    }
    return ZF_OK;
}

static zf_status op_matmul(ox_ctx *x)
{
    static const char *const none[] = {NULL};
    zf_status st;
    if ((st = check_attrs(x, none)) || (st = chain_input(x)) || (st = need_rank(x, 2)))
        return st;
    int wi = const_input(x, 1, 1, "B");
    if (wi == -2)
        return ZF_ERR_UNSUPPORTED;
    if (x->vals[wi].c.ndim != 2)
        return node_err(x, ZF_ERR_UNSUPPORTED, "B is not 2-D");
    return add_fc(x, wi, 1, 1.0f);
}

static zf_status op_dropout(ox_ctx *x)
{
    static const char *const allowed[] = {"ratio", "is_test", "seed", "consumed_inputs", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)) || (st = chain_input(x)))
        return st;
    double ratio;
    if ((st = attr_float(x, "ratio", 0.5, &ratio)))
        return st;
    int ri = const_input(x, 1, 0, "ratio"), ti = const_input(x, 2, 0, "training_mode");
    if (ri == -2 || ti == -2)
        return ZF_ERR_UNSUPPORTED;
    if (ri >= 0) {
        float r;
        if (x->vals[ri].c.count != 1 || ox_const_read_f32(&x->vals[ri].c, x->dir, &r, 1, x->path))
            return node_err(x, ZF_ERR_FORMAT, "ratio is not one float");
        ratio = r;
    }
    if (ti >= 0) {
        int64_t t;
        if (x->vals[ti].c.count != 1 || ox_const_read_i64(&x->vals[ti].c, x->dir, &t, 1, x->path))
            return node_err(x, ZF_ERR_FORMAT, "training_mode is not one boolean");
        if (t)
            return node_err(x, ZF_ERR_UNSUPPORTED, "training_mode is true: the engine only infers");
    }
    if (!(ratio >= 0 && ratio < 1))
        return node_err(x, ZF_ERR_FORMAT, "ratio %g is not in [0, 1)", ratio);
    char name[32];
    layer_name(x, "drop", 1, name, sizeof name);
    st = added(x, zf_net_add_dropout(x->net, name, (float)ratio), x->vals[x->cur].rank);
    return st ? st : dead_outputs(x, 1, "the mask output of Dropout");
}

static zf_status op_softmax(ox_ctx *x)
{
    static const char *const allowed[] = {"axis", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)) || (st = chain_input(x)))
        return st;
    int rank = x->vals[x->cur].rank;
    int64_t axis;
    if ((st = attr_int(x, "axis", x->opset >= 13 ? -1 : 1, &axis)))
        return st;
    if (axis < 0)
        axis += rank;
    int c, h, w;
    cur_shape(x, &c, &h, &w);
    /* Before opset 13 the input is coerced to 2-D at `axis`; from 13 on it is the one axis. With a
     * (batch, features) activation, or spatial size 1, both are the engine's row softmax. */
    if (axis != 1)
        return node_err(x, ZF_ERR_UNSUPPORTED, "axis %" PRId64 ": only a softmax over the features "
                        "of each image is supported", axis);
    if (h != 1 || w != 1)
        return node_err(x, ZF_ERR_UNSUPPORTED, "softmax over a %dx%dx%d map: only over "
                        "(batch, features) is supported", c, h, w);
    char name[32];
    layer_name(x, "prob", 0, name, sizeof name);
    return added(x, zf_net_add_softmax(x->net, name), rank);
}

static zf_status op_identity(ox_ctx *x)
{
    static const char *const none[] = {NULL};
    zf_status st;
    if ((st = check_attrs(x, none)) || (st = chain_input(x)))
        return st;
    return alias(x, x->vals[x->cur].rank);
}

/* ---------------------------------------------------------------- constant folding */

static zf_status const_output(ox_ctx *x, ox_const *c)
{
    ox_value *v;
    zf_status st = def_output(x, 0, V_CONST, &v);
    if (st)
        return st;
    v->c = *c;
    return ZF_OK;
}

static zf_status owned_const(ox_ctx *x, ox_const *c, int dtype, int ndim, int64_t n)
{
    memset(c, 0, sizeof *c);
    if (n > OX_MAX_OWNED)
        return node_err(x, ZF_ERR_UNSUPPORTED, "constant of %" PRId64 " values is too large to compute", n);
    c->src = OX_SRC_OWNED;
    c->dtype = dtype;
    c->ndim = ndim;
    c->dims[0] = n;
    c->count = n;
    c->owned = calloc((size_t)(n ? n : 1), sizeof(double));
    if (!c->owned)
        return node_err(x, ZF_ERR_NOMEM, "out of memory");
    return ZF_OK;
}

static zf_status fold_constant(ox_ctx *x)
{
    const Onnx__NodeProto *n = x->node;
    ox_const c;
    zf_status st;
    if (n->n_attribute != 1 || !n->attribute[0] || !n->attribute[0]->name)
        return node_err(x, ZF_ERR_UNSUPPORTED, "needs exactly one value attribute");
    const Onnx__AttributeProto *a = n->attribute[0];
    const char *an = a->name;
    if (!strcmp(an, "value") && a->t) {
        char what[128];
        snprintf(what, sizeof what, "%s: Constant '%s'", x->path,
                 ox_shown(n->n_output ? str_or_empty(n->output[0]) : ""));
        if ((st = ox_const_from_tensor(&c, a->t, what)))
            return node_err(x, st, "%s", zf_last_error());
    } else if ((!strcmp(an, "value_float") && a->has_f) || (!strcmp(an, "value_int") && a->has_i)) {
        int is_f = an[6] == 'f';
        if ((st = owned_const(x, &c, is_f ? T_FLOAT : T_INT64, 0, 1)))
            return st;
        c.owned[0] = is_f ? (double)a->f : (double)a->i;
    } else if (!strcmp(an, "value_floats") || !strcmp(an, "value_ints")) {
        int is_f = an[6] == 'f';
        size_t cnt = is_f ? a->n_floats : a->n_ints;
        if ((st = owned_const(x, &c, is_f ? T_FLOAT : T_INT64, 1, (int64_t)cnt)))
            return st;
        for (size_t i = 0; i < cnt; i++)
            c.owned[i] = is_f ? (double)a->floats[i] : (double)a->ints[i];
    } else {
        return node_err(x, ZF_ERR_UNSUPPORTED, "attribute '%s' is not supported", ox_shown(an));
    }
    st = const_output(x, &c);
    if (st && c.owned)
        free(c.owned);
    return st;
}

static zf_status fold_constant_of_shape(ox_ctx *x)
{
    static const char *const allowed[] = {"value", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)))
        return st;
    int si = const_input(x, 0, 1, "shape");
    if (si == -2)
        return ZF_ERR_UNSUPPORTED;
    const ox_const *s = &x->vals[si].c;
    ox_const c;
    memset(&c, 0, sizeof c);
    c.src = OX_SRC_FILL;
    c.dtype = T_FLOAT;
    if (s->ndim != 1)
        return node_err(x, ZF_ERR_FORMAT, "shape input is not 1-D");
    if ((st = ox_const_read_i64(s, x->dir, c.dims, OX_MAX_DIMS, x->path)))
        return node_err(x, st, "%s", zf_last_error());
    c.ndim = (int)s->count;
    c.count = 1;
    for (int i = 0; i < c.ndim; i++) {
        if (c.dims[i] < 0 || (c.dims[i] > 0 && c.count > (INT64_C(1) << 40) / c.dims[i]))
            return node_err(x, ZF_ERR_SHAPE, "shape has %" PRId64 " at axis %d", c.dims[i], i);
        c.count *= c.dims[i];
    }
    const Onnx__AttributeProto *a = find_attr(x->node, "value");
    if (a) {
        ox_const v;
        if (!a->t)
            return node_err(x, ZF_ERR_FORMAT, "value is not a tensor");
        if ((st = ox_const_from_tensor(&v, a->t, x->path)))
            return node_err(x, st, "value: %s", zf_last_error());
        if (v.count != 1)
            return node_err(x, ZF_ERR_FORMAT, "value has %" PRId64 " elements, not 1", v.count);
        c.dtype = v.dtype;
        if (v.dtype == T_FLOAT || v.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
            v.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
            v.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16) {
            float f;
            st = ox_const_read_f32(&v, NULL, &f, 1, x->path);
            c.fill = f;
        } else {
            int64_t i;
            st = ox_const_read_i64(&v, NULL, &i, 1, x->path);
            c.fill = (double)i;
        }
        if (st)
            return node_err(x, st, "value: %s", zf_last_error());
    }
    return const_output(x, &c);
}

/* Reshape, Transpose, Identity and Cast of constants: only the view changes (Cast of non-float
 * data to float or back is computed when small). */
static zf_status fold_view(ox_ctx *x, const char *op)
{
    zf_status st;
    int di = const_input(x, 0, 1, "data");
    if (di == -2)
        return ZF_ERR_UNSUPPORTED;
    ox_const c = x->vals[di].c;
    c.owned = NULL; /* a view: the data stays with the source value */
    if (x->vals[di].c.src == OX_SRC_OWNED) {
        ox_const o;
        if ((st = owned_const(x, &o, c.dtype, c.ndim, c.count)))
            return st;
        memcpy(o.owned, x->vals[di].c.owned, sizeof(double) * (size_t)c.count);
        memcpy(o.dims, c.dims, sizeof o.dims);
        o.transposed = c.transposed;
        c = o;
    }
    if (!strcmp(op, "Transpose")) {
        int64_t perm[OX_MAX_DIMS];
        int np;
        if ((st = attr_ints(x, "perm", perm, OX_MAX_DIMS, &np)))
            goto fail;
        int swap = c.ndim == 2 && (np < 0 || (np == 2 && perm[0] == 1 && perm[1] == 0));
        int keep = c.ndim <= 1 || (np == 2 && perm[0] == 0 && perm[1] == 1 && c.ndim == 2);
        if (!swap && !keep) {
            st = node_err(x, ZF_ERR_UNSUPPORTED, "only transposing 2-D constants is supported");
            goto fail;
        }
        if (swap) {
            int64_t d = c.dims[0];
            c.dims[0] = c.dims[1];
            c.dims[1] = d;
            c.transposed ^= 1;
        }
    } else if (!strcmp(op, "Reshape")) {
        int si = const_input(x, 1, 0, "shape");
        int64_t t[OX_MAX_DIMS];
        int nt;
        if (si == -2) {
            st = ZF_ERR_UNSUPPORTED;
            goto fail;
        }
        if (si >= 0) {
            if ((st = ox_const_read_i64(&x->vals[si].c, x->dir, t, OX_MAX_DIMS, x->path))) {
                st = node_err(x, st, "%s", zf_last_error());
                goto fail;
            }
            nt = (int)x->vals[si].c.count;
        } else if ((st = attr_ints(x, "shape", t, OX_MAX_DIMS, &nt)) || nt < 0) {
            if (!st)
                st = node_err(x, ZF_ERR_FORMAT, "has no shape");
            goto fail;
        }
        if (c.transposed && c.dims[0] > 1 && c.dims[1] > 1) {
            st = node_err(x, ZF_ERR_UNSUPPORTED, "reshaping a transposed constant is not supported");
            goto fail;
        }
        int64_t known = 1;
        int infer = -1;
        for (int i = 0; i < nt; i++) {
            if (t[i] == 0)
                t[i] = i < c.ndim ? c.dims[i] : 0;
            if (t[i] == -1 && infer < 0) {
                infer = i;
                continue;
            }
            if (t[i] < 0 || t[i] > (INT64_C(1) << 40) || (t[i] && known > (INT64_C(1) << 40) / t[i])) {
                st = node_err(x, ZF_ERR_SHAPE, "bad shape");
                goto fail;
            }
            known *= t[i];
        }
        if (infer >= 0 && known > 0 && c.count % known == 0) {
            t[infer] = c.count / known;
            known = c.count;
        }
        if (known != c.count) {
            st = node_err(x, ZF_ERR_SHAPE, "shape does not hold the constant's %" PRId64 " values", c.count);
            goto fail;
        }
        c.ndim = nt;
        memcpy(c.dims, t, sizeof(int64_t) * (size_t)nt);
        c.transposed = 0;
    } else if (!strcmp(op, "Cast")) {
        int64_t to;
        if ((st = attr_int(x, "to", 0, &to)))
            goto fail;
        int to_f = to == T_FLOAT || to == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
        int to_i = to == T_INT64 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
        int from_f = c.dtype == T_FLOAT || c.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
                     c.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
        if (!to_f && !to_i) {
            st = node_err(x, ZF_ERR_UNSUPPORTED, "cast to %s is not supported", ox_dtype_name((int)to));
            goto fail;
        }
        if (to_f != from_f || c.src == OX_SRC_FILL) {
            /* Convert the values: ints to floats, floats to ints (towards zero). */
            if (c.src == OX_SRC_FILL) {
                c.fill = to_i ? trunc(c.fill) : c.fill;
            } else {
                ox_const o;
                if ((st = owned_const(x, &o, (int)to, c.ndim, c.count)))
                    goto fail;
                memcpy(o.dims, c.dims, sizeof o.dims);
                if (from_f) {
                    float *tmp = malloc(sizeof(float) * (size_t)(c.count ? c.count : 1));
                    st = tmp ? ox_const_read_f32(&c, x->dir, tmp, 1, x->path) : ZF_ERR_NOMEM;
                    for (int64_t i = 0; !st && i < c.count; i++)
                        o.owned[i] = trunc(tmp[i]);
                    free(tmp);
                } else {
                    int64_t *tmp = malloc(sizeof(int64_t) * (size_t)(c.count ? c.count : 1));
                    st = tmp ? ox_const_read_i64(&c, x->dir, tmp, c.count, x->path) : ZF_ERR_NOMEM;
                    for (int64_t i = 0; !st && i < c.count; i++)
                        o.owned[i] = (double)tmp[i];
                    free(tmp);
                }
                if (c.owned)
                    free(c.owned);
                c = o;
                if (st) {
                    st = node_err(x, st, "%s", zf_last_error());
                    goto fail;
                }
            }
        }
        c.dtype = (int)to;
    }
    if ((st = const_output(x, &c)))
        goto fail;
    return ZF_OK;
fail:
    free(c.owned);
    return st;
}

/* ---------------------------------------------------------------- the walk */

static int is_const_input(ox_ctx *x, int k)
{
    const char *name = input_name(x, k);
    int i = *name ? find_val(x, name) : -1;
    return i >= 0 && x->vals[i].kind == V_CONST;
}

static zf_status map_node(ox_ctx *x)
{
    const Onnx__NodeProto *n = x->node;
    const char *op = str_or_empty(n->op_type);
    const char *dom = str_or_empty(n->domain);
    if (*dom && strcmp(dom, "ai.onnx"))
        return node_err(x, ZF_ERR_UNSUPPORTED, "operator domain '%s' is not supported", ox_shown(dom));
    if (!strcmp(op, "Constant"))
        return fold_constant(x);
    if (!strcmp(op, "ConstantOfShape"))
        return fold_constant_of_shape(x);
    /* Nodes that only read constants are folded, whatever the op: a few are understood. */
    int all_const = n->n_input > 0;
    for (size_t k = 0; k < n->n_input && all_const; k++)
        all_const = !*input_name(x, (int)k) || is_const_input(x, (int)k);
    if (all_const && *input_name(x, 0)) {
        if (!strcmp(op, "Identity") || !strcmp(op, "Reshape") || !strcmp(op, "Transpose") ||
            !strcmp(op, "Cast")) {
            static const char *const allowed[] = {"perm", "shape", "to", "allowzero", NULL};
            zf_status st = check_attrs(x, allowed);
            return st ? st : fold_view(x, op);
        }
        return node_err(x, ZF_ERR_UNSUPPORTED, "computing %s on constants is not supported", ox_shown(op));
    }
    if (!strcmp(op, "Conv"))
        return op_conv(x);
    if (!strcmp(op, "Relu"))
        return op_relu(x);
    if (!strcmp(op, "LRN"))
        return op_lrn(x);
    if (!strcmp(op, "MaxPool"))
        return op_pool(x, 1);
    if (!strcmp(op, "AveragePool"))
        return op_pool(x, 0);
    if (!strcmp(op, "GlobalAveragePool"))
        return op_global_pool(x, 0);
    if (!strcmp(op, "GlobalMaxPool"))
        return op_global_pool(x, 1);
    if (!strcmp(op, "Flatten"))
        return op_flatten(x);
    if (!strcmp(op, "Reshape"))
        return op_reshape(x);
    if (!strcmp(op, "Gemm"))
        return op_gemm(x);
    if (!strcmp(op, "MatMul"))
        return op_matmul(x);
    if (!strcmp(op, "Add") || !strcmp(op, "Sum"))
        return op_add(x);
    if (!strcmp(op, "Dropout"))
        return op_dropout(x);
    if (!strcmp(op, "Softmax"))
        return op_softmax(x);
    if (!strcmp(op, "Identity"))
        return op_identity(x);
    if (!strcmp(op, "BatchNormalization"))
        return node_err(x, ZF_ERR_UNSUPPORTED, "operator is not supported (fold it into the "
                        "convolution before export)");
    return node_err(x, ZF_ERR_UNSUPPORTED, "operator is not supported by the engine");
}

/* The one graph input that is not a constant: the image batch (N, C, H, W) or (N, features). */
static zf_status make_input(ox_ctx *x)
{
    const Onnx__GraphProto *g = x->g;
    const Onnx__ValueInfoProto *in = NULL;
    int n_free = 0;
    char names[256] = "";
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *v = g->input[i];
        const char *name = v ? str_or_empty(v->name) : "";
        if (!*name)
            return zf_error(ZF_ERR_FORMAT, "%s: graph input #%zu has no name", x->path, i);
        if (find_val(x, name) >= 0)
            continue; /* an initializer listed as an input too (IR version 3), or bound */
        if (n_free++ == 0)
            in = v;
        size_t len = strlen(names);
        if (len < sizeof names - 70)
            snprintf(names + len, sizeof names - len, "%s'%s'", len ? ", " : "", ox_shown(name));
    }
    if (n_free != 1)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: graph has %d inputs without a value (%s); the engine "
                        "takes one image input", x->path, n_free, names);
    const char *name = in->name;
    const Onnx__TypeProto *t = in->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: input '%s' is not a tensor", x->path, ox_shown(name));
    const Onnx__TypeProto__Tensor *tt = t->tensor_type;
    if (tt->has_elem_type && tt->elem_type != T_FLOAT)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: input '%s' holds %s, not float", x->path, ox_shown(name),
                        ox_dtype_name(tt->elem_type));
    const Onnx__TensorShapeProto *sh = tt->shape;
    int rank = sh ? (int)sh->n_dim : -1;
    if (rank != 4 && rank != 2) {
        char what[32];
        if (rank < 0)
            snprintf(what, sizeof what, "no shape");
        else
            snprintf(what, sizeof what, "%d dimension%s", rank, rank == 1 ? "" : "s");
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: input '%s' has %s; the engine takes (N, C, H, W) "
                        "images or (N, features)", x->path, ox_shown(name), what);
    }
    int64_t d[4] = {0, 0, 1, 1};
    for (int i = 0; i < rank; i++) {
        const Onnx__TensorShapeProto__Dimension *dim = sh->dim[i];
        if (dim && dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            d[i] = dim->dim_value;
        else
            d[i] = -1; /* symbolic */
    }
    if (rank == 4 && x->opts->in_h > 0)
        d[2] = x->opts->in_h;
    if (rank == 4 && x->opts->in_w > 0)
        d[3] = x->opts->in_w;
    x->batch = d[0] > 0 && d[0] <= INT_MAX ? (int)d[0] : 0;
    const char *axis[4] = {"batch", rank == 4 ? "channels" : "features", "height", "width"};
    for (int i = 1; i < 4; i++) {
        if (d[i] < 0)
            return zf_error(ZF_ERR_UNSUPPORTED, "%s: input '%s' has a symbolic %s: give the input "
                            "size (in_h/in_w)", x->path, ox_shown(name), axis[i]);
        int64_t max = i == 1 ? OX_MAX_CHANNELS : OX_MAX_SIDE;
        if (d[i] < 1 || d[i] > max)
            return zf_error(ZF_ERR_UNSUPPORTED, "%s: input '%s' has %s %" PRId64 " (1 to %" PRId64
                            " supported)", x->path, ox_shown(name), axis[i], d[i], max);
    }
    if (d[1] * d[2] * d[3] > OX_MAX_ACT)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: input '%s' is too large", x->path, ox_shown(name));
    x->net = zf_net_new("onnx", (int)d[1], (int)d[2], (int)d[3]);
    if (!x->net)
        return zf_error_prefix(ZF_ERR_NOMEM, "%s: ", x->path);
    ox_value *v = new_val(x, name, V_ACT);
    v->layer = -1;
    v->rank = rank;
    x->cur = (int)(v - x->vals);
    return ZF_OK;
}

static zf_status bind_inputs(ox_ctx *x)
{
    const zf_onnx_options *o = x->opts;
    for (int b = 0; b < o->n_bindings; b++) {
        const zf_onnx_binding *bd = &o->bindings[b];
        int found = 0;
        for (size_t i = 0; i < x->g->n_input && !found; i++)
            found = x->g->input[i] && x->g->input[i]->name && !strcmp(x->g->input[i]->name, bd->name);
        if (!found)
            return zf_error(ZF_ERR_ARG, "%s: no graph input is named '%s'", x->path, ox_shown(bd->name));
        if (find_val(x, bd->name) >= 0)
            continue; /* an initializer already gives it a value; the binding overrides nothing */
        const zf_tensor *t = bd->value;
        ox_value *v = new_val(x, bd->name, V_CONST);
        if (!v)
            return zf_error(ZF_ERR_ARG, "%s: too many bindings", x->path);
        ox_const *c = &v->c;
        c->src = OX_SRC_OWNED;
        c->dtype = t->dtype == ZF_DTYPE_F32 ? T_FLOAT : T_INT64;
        c->ndim = t->ndim;
        for (int i = 0; i < t->ndim; i++)
            c->dims[i] = t->shape[i];
        c->count = t->size;
        c->owned = malloc(sizeof(double) * (size_t)(t->size ? t->size : 1));
        if (!c->owned)
            return zf_error(ZF_ERR_NOMEM, "%s: out of memory", x->path);
        for (int64_t i = 0; i < t->size; i++)
            c->owned[i] = t->dtype == ZF_DTYPE_F32 ? (double)zf_tensor_f32(t)[i] : zf_tensor_i32(t)[i];
    }
    return ZF_OK;
}

static zf_status check_outputs(ox_ctx *x)
{
    const Onnx__GraphProto *g = x->g;
    int last = x->net->n_layers - 1, has_last = 0;
    if (last < 0)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: the graph has no layers", x->path);
    for (size_t i = 0; i < g->n_output; i++) {
        const char *name = g->output[i] ? str_or_empty(g->output[i]->name) : "";
        int v = find_val(x, name);
        if (v < 0)
            return zf_error(ZF_ERR_FORMAT, "%s: graph output '%s' is not computed by any node", x->path,
                            ox_shown(name));
        if (x->vals[v].kind == V_CONST)
            return zf_error(ZF_ERR_UNSUPPORTED, "%s: graph output '%s' is a constant", x->path, ox_shown(name));
        if (x->vals[v].kind == V_DEAD)
            return zf_error(ZF_ERR_UNSUPPORTED, "%s: graph output '%s' is %s, which the engine does "
                            "not compute", x->path, ox_shown(name), x->vals[v].why);
        has_last |= x->vals[v].layer == last;
    }
    if (!has_last)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: the last layer's output '%s' is not a graph output",
                        x->path, ox_shown(x->vals[x->cur].name));
    return ZF_OK;
}

/* Copies every weight and bias into the finalized net. */
static zf_status copy_params(ox_ctx *x)
{
    zf_net *net = x->net;
    for (int li = 0; li < net->n_layers; li++) {
        zf_layer *l = &net->layers[li];
        ox_pending *p = &x->pend[li];
        if (p->w < 0)
            continue;
        ox_value *wv = &x->vals[p->w];
        ox_const w = wv->c;
        if (p->transpose) {
            int64_t d = w.dims[0];
            w.dims[0] = w.dims[1];
            w.dims[1] = d;
            w.transposed ^= 1;
        }
        char what[200];
        snprintf(what, sizeof what, "%s: weight '%s' of %s", x->path, ox_shown(wv->name), l->name);
        if (w.count != l->weight_count)
            return zf_error(ZF_ERR_SHAPE, "%s: %" PRId64 " values for %" PRId64, what, w.count,
                            l->weight_count);
        zf_status st = ox_const_read_f32(&w, x->dir, l->weight, p->w_scale, what);
        if (st)
            return st;
        for (int b = 0; b < p->n_bias; b++) {
            ox_value *bv = &x->vals[p->bias[b]];
            snprintf(what, sizeof what, "%s: bias '%s' of %s", x->path, ox_shown(bv->name), l->name);
            int64_t n = bv->c.count;
            if (n != l->bias_count && n != 1)
                return zf_error(ZF_ERR_SHAPE, "%s: %" PRId64 " values for %" PRId64, what, n, l->bias_count);
            float one, *tmp = n == 1 ? &one : malloc(sizeof(float) * (size_t)n);
            if (!tmp)
                return zf_error(ZF_ERR_NOMEM, "%s: out of memory", what);
            st = ox_const_read_f32(&bv->c, x->dir, tmp, p->b_scale[b], what);
            for (int64_t i = 0; !st && i < l->bias_count; i++)
                l->bias[i] += tmp[n == 1 ? 0 : i];
            if (n != 1)
                free(tmp);
            if (st)
                return st;
        }
    }
    return ZF_OK;
}

/* Parameters the net will hold, from the layers' shapes. */
static int64_t param_count(const zf_net *net)
{
    int64_t n = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if (l->op == ZF_OP_CONV)
            n += (int64_t)l->out_c * (l->in_c / (l->groups ? l->groups : 1)) * l->win.kh * l->win.kw + l->out_c;
        else if (l->op == ZF_OP_FC)
            n += (int64_t)l->out_c * l->in_c * l->in_h * l->in_w + l->out_c;
    }
    return n;
}

static zf_status import_graph(ox_ctx *x, const Onnx__ModelProto *m)
{
    const Onnx__GraphProto *g = m->graph;
    if (!g)
        return zf_error(ZF_ERR_FORMAT, "%s: the model has no graph", x->path);
    x->g = g;
    x->opset = 1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        const char *d = o ? str_or_empty(o->domain) : "x";
        if ((!*d || !strcmp(d, "ai.onnx")) && o->has_version)
            x->opset = o->version;
    }
    /* One slot per value the graph can define. */
    size_t cap = g->n_input + g->n_initializer + (size_t)x->opts->n_bindings + 1;
    for (size_t i = 0; i < g->n_node; i++)
        cap += g->node[i] ? g->node[i]->n_output : 0;
    if (cap > INT_MAX / 2)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: graph too large", x->path);
    x->cap_vals = (int)cap;
    x->vals = calloc(cap, sizeof *x->vals);
    x->cap_pend = (int)g->n_node + 1;
    x->pend = calloc((size_t)x->cap_pend, sizeof *x->pend);
    if (!x->vals || !x->pend)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", x->path);
    zf_status st;
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *tp = g->initializer[i];
        const char *name = tp ? str_or_empty(tp->name) : "";
        char what[160];
        snprintf(what, sizeof what, "%s: initializer '%s'", x->path, ox_shown(name));
        if (!*name)
            return zf_error(ZF_ERR_FORMAT, "%s: initializer #%zu has no name", x->path, i);
        if (find_val(x, name) >= 0)
            return zf_error(ZF_ERR_FORMAT, "%s defined twice", what);
        ox_value *v = new_val(x, name, V_CONST);
        if ((st = ox_const_from_tensor(&v->c, tp, what)))
            return st;
    }
    if (g->n_sparse_initializer)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: sparse initializers are not supported", x->path);
    if ((st = bind_inputs(x)) || (st = make_input(x)))
        return st;
    for (size_t i = 0; i < g->n_node; i++) {
        x->node = g->node[i];
        x->node_idx = (int)i;
        if (!x->node)
            return zf_error(ZF_ERR_FORMAT, "%s: node #%zu is empty", x->path, i);
        if ((st = map_node(x)))
            return st;
    }
    if ((st = check_outputs(x)))
        return st;
    int64_t max = x->opts->max_params > 0 ? x->opts->max_params : INT64_C(1) << 30;
    int64_t np = param_count(x->net);
    if (np > max)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: %" PRId64 " parameters, more than the limit of %" PRId64,
                        x->path, np, max);
    if ((st = zf_net_finalize(x->net)))
        return zf_error_prefix(st, "%s: ", x->path);
    if ((st = copy_params(x)))
        return st;
    ox_recognise(x->net);
    if (x->opts->preproc && (st = zf_onnx_preproc_parse(x->opts->preproc, &x->net->pre)))
        return st;
    return ZF_OK;
}

/* Imports an unpacked model; the file's bytes are no longer needed. */
static zf_status import_model(Onnx__ModelProto *m, const char *name, const char *dir,
                              const zf_onnx_options *opts, zf_net **out)
{
    static const zf_onnx_options defaults;
    ox_ctx x = {.path = name, .dir = dir, .opts = opts ? opts : &defaults};
    zf_status st = import_graph(&x, m);
    for (int i = 0; i < x.n_vals; i++)
        free(x.vals[i].c.owned);
    free(x.vals);
    free(x.pend);
    protobuf_c_message_free_unpacked(&m->base, &ox_allocator);
    if (st) {
        zf_net_free(x.net);
        return st;
    }
    *out = x.net;
    return ZF_OK;
}

zf_status zf_onnx_load_buffer(const void *data, size_t len, const char *name,
                              const zf_onnx_options *opts, zf_net **out)
{
    *out = NULL;
    name = name ? name : "(buffer)";
    Onnx__ModelProto *m = (Onnx__ModelProto *)ox_unpack(&onnx__model_proto__descriptor, data, len, name);
    return m ? import_model(m, name, NULL, opts, out) : ZF_ERR_FORMAT;
}

zf_status zf_onnx_load(const char *path, const zf_onnx_options *opts, zf_net **out)
{
    *out = NULL;
    uint8_t *data;
    size_t len;
    int mapped;
    zf_status st = ox_file_map(path, &data, &len, &mapped);
    if (st)
        return st;
    /* protobuf-c copies what it keeps: the file is needed only while unpacking. */
    Onnx__ModelProto *m = (Onnx__ModelProto *)ox_unpack(&onnx__model_proto__descriptor, data, len, path);
    ox_file_release(data, len, mapped);
    if (!m)
        return ZF_ERR_FORMAT;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    else
        snprintf(dir, sizeof dir, ".");
    return import_model(m, path, dir, opts, out);
}
