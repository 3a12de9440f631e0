/* ONNX graph to engine net: walks the nodes in order, folds constants (initializers, Constant,
 * ConstantOfShape and what is computed from them only), and maps each node that reads the
 * activation onto a layer of the chain. Weights are copied into the net's parameter block once
 * its shape is known. Whatever the engine cannot run is refused with one message that names
 * the node, its op and the reason. */
#include "zf/alloc.h"
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

/* V_LRN and V_PAD are values on the way to one engine layer that exporters spell as several ops:
 * PyTorch's LocalResponseNorm (x squared, zero-padded along the channels, averaged over a window of
 * channels, scaled, shifted and raised to a power, then x divided by that), and an activation
 * zero-padded by a Pad node for the Conv or pool that reads it. */
typedef enum { V_ACT, V_CONST, V_DEAD, V_LRN, V_PAD } ox_kind;

typedef enum { L_SQUARE, L_MEAN, L_AFFINE, L_POWER } ox_lrn_stage;

typedef struct ox_part {
    int base;                  /* value index of the activation it is computed from */
    int ndim;
    int64_t dims[OX_MAX_DIMS]; /* the shape the graph sees; dims[0] is the batch, 0 if symbolic */
    ox_lrn_stage stage;        /* V_LRN */
    int cax;                   /* V_LRN: the axis that holds the channels */
    int64_t lo, hi;            /* V_LRN: zero channels padded before and after the squares */
    int size, front;           /* V_LRN from L_MEAN on: the window of the mean */
    double a, b, p;            /* V_LRN from L_MEAN on: the value is (a * mean + b)^p */
    int pads[4];               /* V_PAD: top, left, bottom, right */
} ox_part;

typedef struct ox_value {
    const char *name;
    ox_kind kind;
    int layer; /* V_ACT: the layer computing it; -1 for the net's input */
    int rank;  /* V_ACT: 4 for (n, c, h, w), 2 for (n, features) */
    ox_const c;
    const char *why; /* V_DEAD: which output of which op it is */
    ox_part part;    /* V_LRN, V_PAD */
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
    int xpad[4];    /* zero padding of a V_PAD input, for the window of the node being mapped */
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

/* Input 0, which every node that takes data must have: its value index in *i; ZF_ERR_FORMAT
 * (recorded) where it is missing or not produced by anything before. */
static zf_status data_input(ox_ctx *x, int *i)
{
    *i = input_val(x, 0);
    if (*i == -2)
        return ZF_ERR_FORMAT;
    if (*i == -1)
        return node_err(x, ZF_ERR_FORMAT, "has no data input");
    return ZF_OK;
}

/* Input 0 must be the chain's current activation; with `padded`, also that activation zero-padded
 * by a Pad node (its padding goes to x->xpad). */
static zf_status chain_input_ex(ox_ctx *x, int padded)
{
    int i;
    zf_status st = data_input(x, &i);
    if (st)
        return st;
    if (x->vals[i].kind == V_PAD && padded) {
        memcpy(x->xpad, x->vals[i].part.pads, sizeof x->xpad);
        i = x->vals[i].part.base;
    }
    if (x->vals[i].kind == V_PAD)
        return node_err(x, ZF_ERR_UNSUPPORTED, "reads '%s', an activation zero-padded by a Pad node; "
                        "the engine pads only inside Conv and pooling layers", ox_shown(x->vals[i].name));
    if (x->vals[i].kind == V_LRN)
        return node_err(x, ZF_ERR_UNSUPPORTED, "reads '%s', a step of a LocalResponseNorm written out "
                        "(the squares of an activation averaged over channels), and does not fit that "
                        "computation", ox_shown(x->vals[i].name));
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

static zf_status chain_input(ox_ctx *x) { return chain_input_ex(x, 0); }

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
    int have_xpad = x->xpad[0] || x->xpad[1] || x->xpad[2] || x->xpad[3];
    if (have_xpad && strcmp(autopad, "NOTSET") && autopad[0])
        return node_err(x, ZF_ERR_UNSUPPORTED, "auto_pad '%s' on an input padded by a Pad node",
                        ox_shown(autopad));
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
    /* a Pad node before the op: its zeros are the op's own padding (ONNX pads are begin then end) */
    win->pt += x->xpad[0];
    win->pl += x->xpad[1];
    win->pb += x->xpad[2];
    win->pr += x->xpad[3];
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

/* Is the current activation >= 0 everywhere (a ReLU, or what LRN, pools and dropout make of one)?
 * Then zeros padded before a max-pool never win over the values, as the engine's padding. */
static int nonnegative(ox_ctx *x)
{
    for (int l = x->vals[x->cur].layer; l >= 0; l--) {
        zf_op op = x->net->layers[l].op;
        if (op == ZF_OP_RELU || op == ZF_OP_SOFTMAX)
            return 1;
        if (op != ZF_OP_LRN && op != ZF_OP_MAXPOOL && op != ZF_OP_AVGPOOL && op != ZF_OP_ADAPTIVE_AVGPOOL &&
            op != ZF_OP_DROPOUT && op != ZF_OP_FLATTEN)
            return 0;
    }
    return 0;
}

static const char *const pool_attrs[] = {"kernel_shape", "strides", "pads", "auto_pad", "ceil_mode",
                                         "dilations", "storage_order", "count_include_pad", NULL};

static zf_status op_pool(ox_ctx *x, int is_max)
{
    zf_status st;
    if ((st = check_attrs(x, pool_attrs)) || (st = chain_input_ex(x, 1)) || (st = need_rank(x, 4)))
        return st;
    int have_xpad = x->xpad[0] || x->xpad[1] || x->xpad[2] || x->xpad[3];
    if (have_xpad && is_max && !nonnegative(x))
        return node_err(x, ZF_ERR_UNSUPPORTED, "max-pools an input zero-padded by a Pad node, and the "
                        "values may be negative (the engine's max-pool padding never wins)");
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
    if (have_xpad && !is_max) {
        /* the Pad node's zeros are counted; the pool's own padding must be counted too */
        int own = win.pt != x->xpad[0] || win.pl != x->xpad[1] || win.pb != x->xpad[2] ||
                  win.pr != x->xpad[3];
        if (own && !cip)
            return node_err(x, ZF_ERR_UNSUPPORTED, "averages an input zero-padded by a Pad node with "
                            "padding of its own that is not counted (count_include_pad 0)");
        cip = 1;
    }
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
    if ((st = check_attrs(x, allowed)) || (st = chain_input_ex(x, 1)) || (st = need_rank(x, 4)))
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

/* A computed shape entry as an integer, out-of-range values clamped (they are refused later). */
static int64_t dim_of(double v)
{
    return v < -1e18 ? INT64_MIN : v > 1e18 ? INT64_MAX : (int64_t)v;
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
        if (s->count > OX_MAX_DIMS)
            return node_err(x, ZF_ERR_UNSUPPORTED, "shape has %" PRId64 " axes", s->count);
        double d[OX_MAX_DIMS];
        if ((st = ox_const_read_f64(s, x->dir, d, x->path)))
            return node_err(x, st, "%s", zf_last_error());
        nt = (int)s->count;
        for (int i = 0; i < nt; i++) {
            /* a shape computed from Shape(x) of a symbolic batch: that batch, in the first axis */
            if (isnan(d[i]) && (i > 0 || x->batch))
                return node_err(x, ZF_ERR_UNSUPPORTED, "shape depends on the batch size, which the "
                                "graph leaves symbolic, at axis %d", i);
            t[i] = isnan(d[i]) ? (x->batch ? x->batch : 1) : dim_of(d[i]);
        }
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
    c->owned = zf_calloc((size_t)(n ? n : 1), sizeof(double));
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
                    float *tmp = zf_malloc(sizeof(float) * (size_t)(c.count ? c.count : 1));
                    st = tmp ? ox_const_read_f32(&c, x->dir, tmp, 1, x->path) : ZF_ERR_NOMEM;
                    for (int64_t i = 0; !st && i < c.count; i++)
                        o.owned[i] = trunc(tmp[i]);
                    free(tmp);
                } else {
                    int64_t *tmp = zf_malloc(sizeof(int64_t) * (size_t)(c.count ? c.count : 1));
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

/* ---------------------------------------------------------------- shape arithmetic */

/* Exporters compute shapes and paddings with small integer subgraphs (Shape, Gather, Concat,
 * Slice, ...). With the input's shape known they are constants, folded here on doubles; a batch
 * size the graph leaves symbolic is NaN, and anything that needs its value is refused. */

/* Reads constant `vi` whole (at most OX_MAX_OWNED values) into a new array. */
static zf_status dense_read(ox_ctx *x, int vi, double **out)
{
    const ox_const *c = &x->vals[vi].c;
    *out = NULL;
    if (c->count > OX_MAX_OWNED)
        return node_err(x, ZF_ERR_UNSUPPORTED, "constant '%s' of %" PRId64 " values is too large to "
                        "compute with", ox_shown(x->vals[vi].name), c->count);
    double *d = zf_malloc(sizeof(double) * (size_t)(c->count ? c->count : 1));
    if (!d)
        return node_err(x, ZF_ERR_NOMEM, "out of memory");
    zf_status st = ox_const_read_f64(c, x->dir, d, x->path);
    if (st) {
        free(d);
        return node_err(x, st, "%s", zf_last_error());
    }
    *out = d;
    return ZF_OK;
}

/* Output k becomes the computed constant (dims, vals); vals is taken over in every case. */
static zf_status dense_output(ox_ctx *x, int k, int dtype, int ndim, const int64_t *dims, double *vals)
{
    ox_value *v;
    zf_status st = def_output(x, k, V_CONST, &v);
    if (st || !v) {
        free(vals);
        return st;
    }
    ox_const *c = &v->c;
    memset(c, 0, sizeof *c);
    c->src = OX_SRC_OWNED;
    c->dtype = dtype;
    c->ndim = ndim;
    c->count = 1;
    for (int i = 0; i < ndim; i++) {
        c->dims[i] = dims[i];
        c->count *= dims[i];
    }
    c->owned = vals;
    return ZF_OK;
}

static int is_int_type(int t)
{
    return t != T_FLOAT && t != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE &&
           t != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 && t != ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

/* A list of integers from attribute `attr` (older opsets) or constant input k (newer). *n = -1
 * when neither is there. */
static zf_status int_list(ox_ctx *x, const char *attr, int k, int64_t *v, int max, int *n)
{
    zf_status st;
    *n = -1;
    if (attr && find_attr(x->node, attr))
        return attr_ints(x, attr, v, max, n);
    int i = k >= 0 ? const_input(x, k, 0, attr ? attr : "list") : -1;
    if (i == -2)
        return ZF_ERR_UNSUPPORTED;
    if (i < 0)
        return ZF_OK;
    if ((st = ox_const_read_i64(&x->vals[i].c, x->dir, v, max, x->path)))
        return node_err(x, st, "%s", zf_last_error());
    *n = (int)x->vals[i].c.count;
    return ZF_OK;
}

static int64_t axis_norm(int64_t a, int rank) { return a < 0 ? a + rank : a; }

static int64_t dims_count(const int64_t *d, int from, int to)
{
    int64_t n = 1;
    for (int i = from; i < to; i++)
        n *= d[i];
    return n;
}

/* Shape of any value: a constant's dims, or an activation's (batch NaN when symbolic). */
static zf_status fold_shape(ox_ctx *x)
{
    static const char *const allowed[] = {"start", "end", NULL};
    zf_status st;
    int i;
    if ((st = check_attrs(x, allowed)) || (st = data_input(x, &i)))
        return st;
    const ox_value *v = &x->vals[i];
    double d[OX_MAX_DIMS];
    int nd;
    if (v->kind == V_CONST) {
        nd = v->c.ndim;
        for (int k = 0; k < nd; k++)
            d[k] = (double)v->c.dims[k];
    } else if (v->kind == V_LRN) {
        nd = v->part.ndim;
        for (int k = 0; k < nd; k++)
            d[k] = (double)v->part.dims[k];
    } else {
        int c, h, w;
        const ox_value *a = v->kind == V_PAD ? &x->vals[v->part.base] : v;
        zf_layer *l = a->layer >= 0 ? &x->net->layers[a->layer] : NULL;
        c = l ? l->out_c : x->net->in_c;
        h = l ? l->out_h : x->net->in_h;
        w = l ? l->out_w : x->net->in_w;
        if (v->kind == V_PAD) {
            h += v->part.pads[0] + v->part.pads[2];
            w += v->part.pads[1] + v->part.pads[3];
        }
        nd = a->rank;
        d[1] = a->rank == 2 ? (double)c * h * w : c;
        d[2] = h;
        d[3] = w;
    }
    if (v->kind != V_CONST)
        d[0] = x->batch ? x->batch : NAN;
    int64_t start, end;
    if ((st = attr_int(x, "start", 0, &start)) || (st = attr_int(x, "end", nd, &end)))
        return st;
    start = axis_norm(start, nd);
    end = axis_norm(end, nd);
    start = start < 0 ? 0 : start > nd ? nd : start;
    end = end < start ? start : end > nd ? nd : end;
    int64_t n = end - start;
    double *o = zf_malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!o)
        return node_err(x, ZF_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; k < n; k++)
        o[k] = d[start + k];
    return dense_output(x, 0, T_INT64, 1, &n, o);
}

static zf_status fold_gather(ox_ctx *x)
{
    static const char *const allowed[] = {"axis", NULL};
    zf_status st;
    int di = const_input(x, 0, 1, "data"), ii = const_input(x, 1, 1, "indices");
    if (di == -2 || ii == -2)
        return ZF_ERR_UNSUPPORTED;
    if ((st = check_attrs(x, allowed)))
        return st;
    const ox_const *D = &x->vals[di].c, *I = &x->vals[ii].c;
    int64_t axis;
    if ((st = attr_int(x, "axis", 0, &axis)))
        return st;
    axis = axis_norm(axis, D->ndim);
    if (axis < 0 || axis >= D->ndim || D->ndim + I->ndim - 1 > OX_MAX_DIMS)
        return node_err(x, ZF_ERR_SHAPE, "axis %" PRId64 " does not fit data of rank %d", axis, D->ndim);
    double *d, *ix;
    if ((st = dense_read(x, di, &d)))
        return st;
    if ((st = dense_read(x, ii, &ix))) {
        free(d);
        return st;
    }
    int64_t outer = dims_count(D->dims, 0, (int)axis), n = D->dims[axis];
    int64_t inner = dims_count(D->dims, (int)axis + 1, D->ndim);
    int64_t total = outer * I->count * inner;
    double *o = total <= OX_MAX_OWNED ? zf_malloc(sizeof(double) * (size_t)(total ? total : 1)) : NULL;
    for (int64_t q = 0; o && q < I->count; q++) {
        double f = ix[q];
        if (!(f >= (double)-n && f < (double)n)) {
            free(o);
            free(d);
            free(ix);
            return node_err(x, ZF_ERR_SHAPE, "index %g is out of range for %" PRId64 " values", f, n);
        }
        int64_t k = (int64_t)f;
        k = k < 0 ? k + n : k;
        for (int64_t a = 0; a < outer; a++)
            for (int64_t b = 0; b < inner; b++)
                o[(a * I->count + q) * inner + b] = d[(a * n + k) * inner + b];
    }
    free(d);
    free(ix);
    if (!o)
        return node_err(x, ZF_ERR_NOMEM, "out of memory");
    int64_t dims[OX_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < axis; k++)
        dims[nd++] = D->dims[k];
    for (int k = 0; k < I->ndim; k++)
        dims[nd++] = I->dims[k];
    for (int k = (int)axis + 1; k < D->ndim; k++)
        dims[nd++] = D->dims[k];
    return dense_output(x, 0, D->dtype, nd, dims, o);
}

static zf_status fold_concat(ox_ctx *x)
{
    static const char *const allowed[] = {"axis", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)))
        return st;
    int64_t axis;
    if ((st = attr_int(x, "axis", 0, &axis)))
        return st;
    const Onnx__NodeProto *n = x->node;
    int first = const_input(x, 0, 1, "first");
    if (first < 0)
        return ZF_ERR_UNSUPPORTED;
    const ox_const *F = &x->vals[first].c;
    axis = axis_norm(axis, F->ndim);
    if (axis < 0 || axis >= F->ndim)
        return node_err(x, ZF_ERR_SHAPE, "axis %" PRId64 " does not fit rank %d", axis, F->ndim);
    int64_t dims[OX_MAX_DIMS], along = 0;
    memcpy(dims, F->dims, sizeof dims);
    for (size_t k = 0; k < n->n_input; k++) {
        int i = const_input(x, (int)k, 1, "data");
        if (i < 0)
            return ZF_ERR_UNSUPPORTED;
        const ox_const *c = &x->vals[i].c;
        int ok = c->ndim == F->ndim;
        for (int d = 0; ok && d < c->ndim; d++)
            ok = d == axis || c->dims[d] == F->dims[d];
        if (!ok)
            return node_err(x, ZF_ERR_SHAPE, "input '%s' does not fit the others", ox_shown(x->vals[i].name));
        along += c->dims[axis];
    }
    dims[axis] = along;
    int64_t outer = dims_count(dims, 0, (int)axis), inner = dims_count(dims, (int)axis + 1, F->ndim);
    int64_t total = outer * along * inner;
    if (total > OX_MAX_OWNED)
        return node_err(x, ZF_ERR_UNSUPPORTED, "result is too large to compute");
    double *o = zf_malloc(sizeof(double) * (size_t)(total ? total : 1));
    if (!o)
        return node_err(x, ZF_ERR_NOMEM, "out of memory");
    int64_t at = 0;
    for (size_t k = 0; k < n->n_input; k++) {
        int i = const_input(x, (int)k, 1, "data");
        double *d;
        if ((st = dense_read(x, i, &d))) {
            free(o);
            return st;
        }
        int64_t m = x->vals[i].c.dims[axis];
        for (int64_t a = 0; a < outer; a++)
            memcpy(o + (a * along + at) * inner, d + a * m * inner, sizeof(double) * (size_t)(m * inner));
        at += m;
        free(d);
    }
    return dense_output(x, 0, F->dtype, F->ndim, dims, o);
}

/* Slice (starts/ends/axes as attributes before opset 10, then inputs with steps). */
static zf_status fold_slice(ox_ctx *x)
{
    static const char *const allowed[] = {"starts", "ends", "axes", NULL};
    zf_status st;
    int di = const_input(x, 0, 1, "data");
    if (di < 0)
        return ZF_ERR_UNSUPPORTED;
    if ((st = check_attrs(x, allowed)))
        return st;
    const ox_const *D = &x->vals[di].c;
    int64_t sv[OX_MAX_DIMS], ev[OX_MAX_DIMS], av[OX_MAX_DIMS], pv[OX_MAX_DIMS];
    int ns, ne, na, np;
    if ((st = int_list(x, "starts", 1, sv, OX_MAX_DIMS, &ns)) ||
        (st = int_list(x, "ends", 2, ev, OX_MAX_DIMS, &ne)) ||
        (st = int_list(x, "axes", 3, av, OX_MAX_DIMS, &na)) ||
        (st = int_list(x, NULL, 4, pv, OX_MAX_DIMS, &np)))
        return st;
    if (ns < 0 || ns != ne || (na >= 0 && na != ns) || (np >= 0 && np != ns))
        return node_err(x, ZF_ERR_FORMAT, "starts, ends, axes and steps do not match");
    int64_t lo[OX_MAX_DIMS], step[OX_MAX_DIMS], dims[OX_MAX_DIMS];
    for (int d = 0; d < D->ndim; d++) {
        lo[d] = 0;
        step[d] = 1;
        dims[d] = D->dims[d];
    }
    for (int k = 0; k < ns; k++) {
        int64_t a = axis_norm(na >= 0 ? av[k] : k, D->ndim), p = np >= 0 ? pv[k] : 1;
        if (a < 0 || a >= D->ndim || p == 0 || p == INT64_MIN)
            return node_err(x, ZF_ERR_SHAPE, "slice axis %" PRId64 " or step %" PRId64 " is invalid", a, p);
        int64_t n = D->dims[a], s = sv[k], e = ev[k];
        s = s < 0 ? (s < -n ? -n : s) + n : s;
        e = e < 0 ? (e < -n - 1 ? -n - 1 : e) + n : e;
        if (p > 0) {
            s = s > n ? n : s;
            e = e > n ? n : e;
            dims[a] = e > s ? 1 + (e - s - 1) / p : 0;
        } else {
            s = s > n - 1 ? n - 1 : s;
            e = e > n - 1 ? n - 1 : e;
            e = e < -1 ? -1 : e;
            dims[a] = s > e ? 1 + (s - e - 1) / -p : 0;
        }
        lo[a] = s;
        step[a] = p;
    }
    double *d;
    if ((st = dense_read(x, di, &d)))
        return st;
    int64_t total = dims_count(dims, 0, D->ndim);
    double *o = zf_malloc(sizeof(double) * (size_t)(total ? total : 1));
    if (!o) {
        free(d);
        return node_err(x, ZF_ERR_NOMEM, "out of memory");
    }
    for (int64_t q = 0; q < total; q++) {
        int64_t r = q, src = 0, mul = 1;
        for (int a = D->ndim - 1; a >= 0; a--) {
            int64_t idx = r % dims[a];
            r /= dims[a];
            src += (lo[a] + idx * step[a]) * mul;
            mul *= D->dims[a];
        }
        o[q] = d[src];
    }
    free(d);
    return dense_output(x, 0, D->dtype, D->ndim, dims, o);
}

/* Unsqueeze and Squeeze (axes as an attribute before opset 13, then an input) of a shape: the
 * new dims, or an error. */
static zf_status squeeze_dims(ox_ctx *x, int unsqueeze, const int64_t *in, int nin, int64_t *out, int *nout)
{
    int64_t ax[OX_MAX_DIMS];
    int na;
    zf_status st = int_list(x, "axes", 1, ax, OX_MAX_DIMS, &na);
    if (st)
        return st;
    if (unsqueeze) {
        int r = nin + (na < 0 ? 0 : na);
        if (na < 0 || r > OX_MAX_DIMS)
            return node_err(x, ZF_ERR_UNSUPPORTED, "needs 1 to %d axes", OX_MAX_DIMS - nin);
        int mark[OX_MAX_DIMS] = {0};
        for (int k = 0; k < na; k++) {
            int64_t a = axis_norm(ax[k], r);
            if (a < 0 || a >= r || mark[a])
                return node_err(x, ZF_ERR_SHAPE, "axis %" PRId64 " is invalid", ax[k]);
            mark[a] = 1;
        }
        for (int a = 0, j = 0; a < r; a++)
            out[a] = mark[a] ? 1 : in[j++];
        *nout = r;
        return ZF_OK;
    }
    int mark[OX_MAX_DIMS] = {0};
    for (int k = 0; k < na; k++) {
        int64_t a = axis_norm(ax[k], nin);
        if (a < 0 || a >= nin || in[a] != 1)
            return node_err(x, ZF_ERR_SHAPE, "axis %" PRId64 " is not of size 1", ax[k]);
        mark[a] = 1;
    }
    *nout = 0;
    for (int a = 0; a < nin; a++)
        if (na < 0 ? in[a] != 1 : !mark[a])
            out[(*nout)++] = in[a];
    return ZF_OK;
}

static zf_status fold_squeeze(ox_ctx *x, int unsqueeze)
{
    static const char *const allowed[] = {"axes", NULL};
    zf_status st;
    int di = const_input(x, 0, 1, "data");
    if (di < 0)
        return ZF_ERR_UNSUPPORTED;
    if ((st = check_attrs(x, allowed)))
        return st;
    const ox_const *D = &x->vals[di].c;
    int64_t dims[OX_MAX_DIMS];
    int nd;
    if ((st = squeeze_dims(x, unsqueeze, D->dims, D->ndim, dims, &nd)))
        return st;
    double *d;
    if ((st = dense_read(x, di, &d)))
        return st;
    return dense_output(x, 0, D->dtype, nd, dims, d);
}

/* Reshape, Transpose and Cast of a computed constant (the lazy views of fold_view are for the
 * weights in the file). */
static zf_status fold_dense_view(ox_ctx *x, const char *op)
{
    static const char *const allowed[] = {"perm", "shape", "to", "allowzero", NULL};
    zf_status st;
    int di = const_input(x, 0, 1, "data");
    if (di < 0)
        return ZF_ERR_UNSUPPORTED;
    if ((st = check_attrs(x, allowed)))
        return st;
    const ox_const *D = &x->vals[di].c;
    double *d;
    if ((st = dense_read(x, di, &d)))
        return st;
    int64_t dims[OX_MAX_DIMS];
    int nd = D->ndim, dtype = D->dtype;
    memcpy(dims, D->dims, sizeof dims);
    if (!strcmp(op, "Transpose")) {
        int64_t perm[OX_MAX_DIMS];
        int np;
        if ((st = attr_ints(x, "perm", perm, OX_MAX_DIMS, &np))) {
            free(d);
            return st;
        }
        int used[OX_MAX_DIMS] = {0};
        for (int k = 0; k < nd; k++) {
            perm[k] = np < 0 ? nd - 1 - k : perm[k];
            if ((np >= 0 && np != nd) || perm[k] < 0 || perm[k] >= nd || used[perm[k]]++) {
                free(d);
                return node_err(x, ZF_ERR_SHAPE, "perm does not fit rank %d", nd);
            }
            dims[k] = D->dims[perm[k]];
        }
        double *o = zf_malloc(sizeof(double) * (size_t)(D->count ? D->count : 1));
        if (!o) {
            free(d);
            return node_err(x, ZF_ERR_NOMEM, "out of memory");
        }
        for (int64_t q = 0; q < D->count; q++) {
            int64_t r = q, src = 0;
            for (int a = nd - 1; a >= 0; a--) {
                int64_t idx = r % dims[a], mul = dims_count(D->dims, (int)perm[a] + 1, nd);
                r /= dims[a];
                src += idx * mul;
            }
            o[q] = d[src];
        }
        free(d);
        d = o;
    } else if (!strcmp(op, "Reshape")) {
        int64_t t[OX_MAX_DIMS], allowzero;
        int nt;
        if ((st = attr_int(x, "allowzero", 0, &allowzero)) || (st = int_list(x, "shape", 1, t, OX_MAX_DIMS, &nt))) {
            free(d);
            return st;
        }
        int64_t known = 1;
        int infer = -1;
        for (int k = 0; k < nt && !st; k++) {
            if (t[k] == 0 && !allowzero)
                t[k] = k < nd ? D->dims[k] : 0;
            if (t[k] == -1 && infer < 0)
                infer = k;
            else if (t[k] < 0 || t[k] > OX_MAX_OWNED || (known *= t[k]) > OX_MAX_OWNED)
                st = ZF_ERR_SHAPE;
        }
        if (!st && infer >= 0 && known > 0 && D->count % known == 0) {
            t[infer] = D->count / known;
            known = D->count;
        }
        if (st || nt < 0 || known != D->count) {
            free(d);
            return node_err(x, ZF_ERR_SHAPE, "shape does not hold the constant's %" PRId64 " values", D->count);
        }
        nd = nt;
        memcpy(dims, t, sizeof(int64_t) * (size_t)nt);
    } else { /* Cast */
        int64_t to;
        if ((st = attr_int(x, "to", 0, &to))) {
            free(d);
            return st;
        }
        dtype = (int)to;
        if (to == ONNX__TENSOR_PROTO__DATA_TYPE__STRING) {
            free(d);
            return node_err(x, ZF_ERR_UNSUPPORTED, "cast to %s is not supported", ox_dtype_name((int)to));
        }
        for (int64_t q = 0; q < D->count; q++)
            d[q] = to == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL ? (d[q] != 0) : is_int_type(dtype) ? trunc(d[q]) : d[q];
    }
    return dense_output(x, 0, dtype, nd, dims, d);
}

/* Elementwise ops of constants, with numpy broadcasting. */
static zf_status fold_elementwise(ox_ctx *x, const char *op)
{
    static const char *const none[] = {NULL};
    zf_status st;
    if ((st = check_attrs(x, none)))
        return st;
    int unary = !strcmp(op, "Not") || !strcmp(op, "Neg");
    int ai = const_input(x, 0, 1, "A"), bi = unary ? ai : const_input(x, 1, 1, "B");
    if (ai < 0 || bi < 0)
        return ZF_ERR_UNSUPPORTED;
    const ox_const *A = &x->vals[ai].c, *B = &x->vals[bi].c;
    int nd = A->ndim > B->ndim ? A->ndim : B->ndim;
    int64_t dims[OX_MAX_DIMS], da[OX_MAX_DIMS], db[OX_MAX_DIMS];
    for (int k = 0; k < nd; k++) {
        int ka = k - (nd - A->ndim), kb = k - (nd - B->ndim);
        da[k] = ka >= 0 ? A->dims[ka] : 1;
        db[k] = kb >= 0 ? B->dims[kb] : 1;
        if (da[k] != db[k] && da[k] != 1 && db[k] != 1)
            return node_err(x, ZF_ERR_SHAPE, "shapes do not broadcast");
        dims[k] = da[k] == 1 ? db[k] : da[k];
    }
    int64_t total = dims_count(dims, 0, nd);
    if (total > OX_MAX_OWNED)
        return node_err(x, ZF_ERR_UNSUPPORTED, "result is too large to compute");
    double *a, *b = NULL, *o = zf_malloc(sizeof(double) * (size_t)(total ? total : 1));
    if (!o)
        return node_err(x, ZF_ERR_NOMEM, "out of memory");
    if ((st = dense_read(x, ai, &a)) || (st = dense_read(x, bi, &b))) {
        free(o);
        free(a);
        return st;
    }
    int cmp = !strcmp(op, "Equal") || !strcmp(op, "Greater") || !strcmp(op, "Less") || !strcmp(op, "Not");
    int ints = is_int_type(A->dtype);
    for (int64_t q = 0; q < total && !st; q++) {
        int64_t r = q, ia = 0, ib = 0, ma = 1, mb = 1;
        for (int k = nd - 1; k >= 0; k--) {
            int64_t idx = r % dims[k];
            r /= dims[k];
            ia += (da[k] == 1 ? 0 : idx) * ma;
            ib += (db[k] == 1 ? 0 : idx) * mb;
            ma *= da[k];
            mb *= db[k];
        }
        double u = a[ia], v = b[ib];
        if (cmp && (isnan(u) || isnan(v)))
            st = node_err(x, ZF_ERR_UNSUPPORTED, "its result depends on the batch size, which the graph "
                          "leaves symbolic");
        else if (!strcmp(op, "Add"))
            o[q] = u + v;
        else if (!strcmp(op, "Sub"))
            o[q] = u - v;
        else if (!strcmp(op, "Mul"))
            o[q] = u * v;
        else if (!strcmp(op, "Div"))
            o[q] = ints ? (v == 0 ? NAN : trunc(u / v)) : u / v;
        else if (!strcmp(op, "Neg"))
            o[q] = -u;
        else if (!strcmp(op, "Not"))
            o[q] = u == 0;
        else if (!strcmp(op, "Equal"))
            o[q] = u == v;
        else if (!strcmp(op, "Greater"))
            o[q] = u > v;
        else
            o[q] = u < v;
    }
    free(a);
    free(b);
    if (st) {
        free(o);
        return st;
    }
    return dense_output(x, 0, cmp ? ONNX__TENSOR_PROTO__DATA_TYPE__BOOL : A->dtype, nd, dims, o);
}

/* ---------------------------------------------------------------- If with a constant condition */

static zf_status map_node(ox_ctx *x);

/* Output k of the node names the same value as value `from`. */
static zf_status alias_value(ox_ctx *x, int k, int from)
{
    ox_value *v;
    zf_status st = def_output(x, k, x->vals[from].kind, &v);
    if (st || !v)
        return st;
    const char *name = v->name;
    *v = x->vals[from];
    v->name = name;
    if (v->kind == V_CONST && v->c.src == OX_SRC_OWNED) {
        v->c.owned = zf_malloc(sizeof(double) * (size_t)(v->c.count ? v->c.count : 1));
        if (!v->c.owned)
            return node_err(x, ZF_ERR_NOMEM, "out of memory");
        memcpy(v->c.owned, x->vals[from].c.owned, sizeof(double) * (size_t)v->c.count);
    }
    if (v->kind == V_ACT && from == x->cur)
        x->cur = (int)(v - x->vals);
    return ZF_OK;
}

/* PyTorch guards its Squeezes with If(Shape(x)[axis] == 1): with the shapes known the condition
 * is a constant, and the branch it picks is mapped in place. */
static zf_status op_if(ox_ctx *x)
{
    static const char *const allowed[] = {"then_branch", "else_branch", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)))
        return st;
    int ci = input_val(x, 0);
    if (ci == -2)
        return ZF_ERR_FORMAT;
    if (ci == -1 || x->vals[ci].kind != V_CONST)
        return node_err(x, ZF_ERR_UNSUPPORTED, "its condition is computed from the image; the engine "
                        "needs it to be known when the model loads");
    double *cond;
    if ((st = dense_read(x, ci, &cond)))
        return st;
    int64_t n = x->vals[ci].c.count;
    double cv = n == 1 ? cond[0] : NAN;
    free(cond);
    if (n != 1 || isnan(cv))
        return node_err(x, ZF_ERR_UNSUPPORTED, "condition is not one known boolean");
    const Onnx__AttributeProto *a = find_attr(x->node, cv != 0 ? "then_branch" : "else_branch");
    const Onnx__GraphProto *g = a ? a->g : NULL;
    if (!g)
        return node_err(x, ZF_ERR_FORMAT, "has no %s graph", cv != 0 ? "then_branch" : "else_branch");
    if (g->n_output != x->node->n_output)
        return node_err(x, ZF_ERR_FORMAT, "its branch has %zu outputs for %zu", g->n_output, x->node->n_output);
    if (g->n_initializer || g->n_sparse_initializer)
        return node_err(x, ZF_ERR_UNSUPPORTED, "its branch has initializers of its own");
    const Onnx__NodeProto *self = x->node;
    int self_idx = x->node_idx;
    for (size_t i = 0; i < g->n_node; i++) {
        x->node = g->node[i];
        if (!x->node) {
            x->node = self;
            return node_err(x, ZF_ERR_FORMAT, "its branch has an empty node");
        }
        memset(x->xpad, 0, sizeof x->xpad);
        if ((st = map_node(x)))
            return st;
    }
    x->node = self;
    x->node_idx = self_idx;
    for (size_t k = 0; k < g->n_output; k++) {
        const char *name = g->output[k] ? str_or_empty(g->output[k]->name) : "";
        int from = *name ? find_val(x, name) : -1;
        if (from < 0)
            return node_err(x, ZF_ERR_FORMAT, "branch output '%s' is not computed", ox_shown(name));
        if ((st = alias_value(x, (int)k, from)))
            return st;
    }
    return ZF_OK;
}

/* ---------------------------------------------------------------- ops spelled as several nodes */

static zf_status def_part(ox_ctx *x, ox_kind kind, const ox_part *p)
{
    ox_value *v;
    zf_status st = def_output(x, 0, kind, &v);
    if (st)
        return st;
    v->part = *p;
    return ZF_OK;
}

/* Pad of constant zeros on an activation: the next Conv or pool takes it as its own padding. */
static zf_status op_pad_act(ox_ctx *x, int vi)
{
    static const char *const allowed[] = {"mode", "pads", "value", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)))
        return st;
    char mode[32];
    double value;
    int64_t p[2 * OX_MAX_DIMS];
    int np;
    if ((st = attr_str(x, "mode", "constant", mode, sizeof mode)) || (st = attr_float(x, "value", 0, &value)) ||
        (st = int_list(x, "pads", 1, p, 2 * OX_MAX_DIMS, &np)))
        return st;
    if (*input_name(x, 3))
        return node_err(x, ZF_ERR_UNSUPPORTED, "pads chosen axes only");
    int vk = const_input(x, 2, 0, "constant_value");
    if (vk == -2)
        return ZF_ERR_UNSUPPORTED;
    if (vk >= 0) {
        double *v;
        if ((st = dense_read(x, vk, &v)))
            return st;
        value = x->vals[vk].c.count == 1 ? v[0] : NAN;
        free(v);
    }
    if (strcmp(mode, "constant") || value != 0)
        return node_err(x, ZF_ERR_UNSUPPORTED, "pads with mode '%s' and value %g: the engine pads "
                        "with zeros only", ox_shown(mode), value);
    ox_part part;
    memset(&part, 0, sizeof part);
    const ox_value *in = &x->vals[vi];
    if (in->kind == V_PAD) {
        part = in->part;
        vi = part.base;
    }
    if (vi != x->cur && x->vals[vi].layer != x->vals[x->cur].layer)
        return node_err(x, ZF_ERR_UNSUPPORTED, "reads '%s', not the latest activation: the graph branches",
                        ox_shown(x->vals[vi].name));
    if (x->vals[vi].rank != 4 || np != 8)
        return node_err(x, ZF_ERR_UNSUPPORTED, "pads a %d-D activation with %d values; only the height "
                        "and width of (N, C, H, W) can be padded", x->vals[vi].rank, np);
    if (p[0] || p[1] || p[4] || p[5])
        return node_err(x, ZF_ERR_UNSUPPORTED, "pads the batch or channel axis");
    for (int k = 2; k < 8; k++)
        if (p[k] < 0 || p[k] > OX_MAX_SIDE)
            return node_err(x, ZF_ERR_UNSUPPORTED, "pad %" PRId64 " is out of range (crops are not "
                            "supported)", p[k]);
    part.base = vi;
    part.pads[0] += (int)p[2];
    part.pads[1] += (int)p[3];
    part.pads[2] += (int)p[6];
    part.pads[3] += (int)p[7];
    return def_part(x, V_PAD, &part);
}

/* One step of a LocalResponseNorm written out does not fit: one line naming the node. */
static zf_status lrn_misfit(ox_ctx *x, int vi, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static zf_status lrn_misfit(ox_ctx *x, int vi, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return node_err(x, ZF_ERR_UNSUPPORTED, "reads '%s', the squares of an activation on their way to a "
                    "LocalResponseNorm, but %s: not a LocalResponseNorm", ox_shown(x->vals[vi].name), msg);
}

/* x * x or Pow(x, 2) of the chain's activation starts a LocalResponseNorm. */
static zf_status lrn_start(ox_ctx *x, int vi)
{
    const ox_value *v = &x->vals[vi];
    if (vi != x->cur && v->layer != x->vals[x->cur].layer)
        return node_err(x, ZF_ERR_UNSUPPORTED, "reads '%s', not the latest activation: the graph branches",
                        ox_shown(v->name));
    if (v->rank != 4)
        return node_err(x, ZF_ERR_UNSUPPORTED, "squares a 2-D activation; only the squares of a "
                        "LocalResponseNorm over (N, C, H, W) are supported");
    ox_part p;
    memset(&p, 0, sizeof p);
    int c, h, w;
    cur_shape(x, &c, &h, &w);
    p.base = vi;
    p.ndim = 4;
    p.dims[0] = x->batch;
    p.dims[1] = c;
    p.dims[2] = h;
    p.dims[3] = w;
    p.cax = 1;
    p.stage = L_SQUARE;
    return def_part(x, V_LRN, &p);
}

/* The one-value constant of input k, of no more axes than the value it acts on. */
static zf_status scalar_input(ox_ctx *x, int k, int lrn, const char *what, double *out)
{
    int i = const_input(x, k, 1, what);
    if (i < 0)
        return ZF_ERR_UNSUPPORTED;
    if (x->vals[i].c.count != 1)
        return lrn_misfit(x, lrn, "its %s '%s' has %" PRId64 " values, not one for all channels", what,
                          ox_shown(x->vals[i].name), x->vals[i].c.count);
    if (x->vals[i].c.ndim > x->vals[lrn].part.ndim)
        return lrn_misfit(x, lrn, "its %s '%s' has more axes than it (%d), which broadcasting adds",
                          what, ox_shown(x->vals[i].name), x->vals[i].c.ndim);
    double *d;
    zf_status st = dense_read(x, i, &d);
    if (st)
        return st;
    *out = d[0];
    free(d);
    if (!isfinite(*out))
        return lrn_misfit(x, lrn, "its %s is %g", what, *out);
    return ZF_OK;
}

/* Reshape of the squares: the batch stays first, the channels one axis, the positions after it. */
static zf_status lrn_reshape(ox_ctx *x, int vi, ox_part *p)
{
    int64_t t[OX_MAX_DIMS], allowzero;
    int nt;
    zf_status st;
    if ((st = attr_int(x, "allowzero", 0, &allowzero)))
        return st;
    int si = const_input(x, 1, 0, "shape");
    if (si == -2)
        return ZF_ERR_UNSUPPORTED;
    double *d = NULL;
    if (si >= 0) {
        if (x->vals[si].c.count > OX_MAX_DIMS || x->vals[si].c.count < 1)
            return lrn_misfit(x, vi, "the new shape has %" PRId64 " axes", x->vals[si].c.count);
        if ((st = dense_read(x, si, &d)))
            return st;
        nt = (int)x->vals[si].c.count;
        for (int k = 0; k < nt; k++)
            t[k] = isnan(d[k]) ? (k == 0 ? -2 : -3) : dim_of(d[k]);
        free(d);
    } else if ((st = attr_ints(x, "shape", t, OX_MAX_DIMS, &nt)) || nt < 1) {
        return st ? st : node_err(x, ZF_ERR_FORMAT, "has no shape");
    }
    int64_t ch = p->dims[p->cax], pos = dims_count(p->dims, p->cax + 1, p->ndim);
    int64_t per = ch * pos, known = 1;
    int infer = -1;
    for (int k = 0; k < nt; k++) {
        if (t[k] == 0 && !allowzero && k < p->ndim)
            t[k] = p->dims[k];
        if (k == 0 && (t[0] == -2 || t[0] == -1 || (x->batch == 0 && t[0] == 0)))
            continue; /* the batch: symbolic, or inferred */
        if (k == 0) {
            if (t[0] != x->batch)
                return lrn_misfit(x, vi, "the new shape moves the batch axis");
            continue;
        }
        if (t[k] == -1 && infer < 0) {
            infer = k;
            continue;
        }
        if (t[k] < 1 || t[k] > OX_MAX_ACT || (known *= t[k]) > OX_MAX_ACT)
            return lrn_misfit(x, vi, "the new shape has %" PRId64 " at axis %d", t[k], k);
    }
    if (infer > 0 && t[0] == -1)
        return lrn_misfit(x, vi, "the new shape has more than one -1");
    if (infer > 0 && per % known == 0) {
        t[infer] = per / known;
        known = per;
    }
    if (known != per)
        return lrn_misfit(x, vi, "the new shape has %" PRId64 " values per image, not %" PRId64, known, per);
    t[0] = p->dims[0];
    for (int k = 1; k < nt; k++) {
        if (dims_count(t, 1, k) == 1 && t[k] == ch && dims_count(t, k + 1, nt) == pos) {
            p->ndim = nt;
            memcpy(p->dims, t, sizeof(int64_t) * (size_t)nt);
            p->cax = k;
            return ZF_OK;
        }
    }
    return lrn_misfit(x, vi, "the new shape mixes channels with positions");
}

static zf_status lrn_pad(ox_ctx *x, int vi, ox_part *p)
{
    static const char *const allowed[] = {"mode", "pads", "value", NULL};
    zf_status st;
    if ((st = check_attrs(x, allowed)))
        return st;
    if (p->stage != L_SQUARE)
        return lrn_misfit(x, vi, "it pads after the mean");
    char mode[32];
    double value;
    int64_t q[2 * OX_MAX_DIMS];
    int nq;
    if ((st = attr_str(x, "mode", "constant", mode, sizeof mode)) || (st = attr_float(x, "value", 0, &value)) ||
        (st = int_list(x, "pads", 1, q, 2 * OX_MAX_DIMS, &nq)))
        return st;
    if (*input_name(x, 3))
        return lrn_misfit(x, vi, "it pads chosen axes only");
    if (*input_name(x, 2) && (st = scalar_input(x, 2, vi, "padding value", &value)))
        return st;
    if (strcmp(mode, "constant") || value != 0)
        return lrn_misfit(x, vi, "it pads with mode '%s' and value %g, not zeros", ox_shown(mode), value);
    if (nq != 2 * p->ndim)
        return lrn_misfit(x, vi, "it has %d pads for %d axes", nq, p->ndim);
    for (int k = 0; k < p->ndim; k++) {
        int64_t a = q[k], b = q[p->ndim + k];
        if (k != p->cax && (a || b))
            return lrn_misfit(x, vi, "it pads axis %d, not only the channels", k);
        if (k == p->cax && (a < 0 || b < 0 || a > (1 << 16) || b > (1 << 16)))
            return lrn_misfit(x, vi, "it pads the channels by %" PRId64 " and %" PRId64, a, b);
    }
    p->lo += q[p->cax];
    p->hi += q[p->ndim + p->cax];
    p->dims[p->cax] += q[p->cax] + q[p->ndim + p->cax];
    return ZF_OK;
}

/* AveragePool of the padded squares over `size` channels, stride 1: the window mean. */
static zf_status lrn_mean(ox_ctx *x, int vi, ox_part *p)
{
    zf_status st;
    if ((st = check_attrs(x, pool_attrs)))
        return st;
    if (p->stage != L_SQUARE)
        return lrn_misfit(x, vi, "it averages twice");
    int64_t k[OX_MAX_DIMS], s[OX_MAX_DIMS], q[2 * OX_MAX_DIMS], dl[OX_MAX_DIMS], cip, ceil_mode;
    int nk, ns, nq, nd;
    char autopad[32];
    if ((st = attr_ints(x, "kernel_shape", k, OX_MAX_DIMS, &nk)) ||
        (st = attr_ints(x, "strides", s, OX_MAX_DIMS, &ns)) ||
        (st = attr_ints(x, "pads", q, 2 * OX_MAX_DIMS, &nq)) ||
        (st = attr_ints(x, "dilations", dl, OX_MAX_DIMS, &nd)) ||
        (st = attr_int(x, "count_include_pad", 0, &cip)) || (st = attr_int(x, "ceil_mode", 0, &ceil_mode)) ||
        (st = attr_str(x, "auto_pad", "NOTSET", autopad, sizeof autopad)))
        return st;
    int sp = p->ndim - 2;
    if (p->cax < 2 || nk != sp || (ns >= 0 && ns != sp) || (nq >= 0 && nq != 2 * sp) || (nd >= 0 && nd != sp))
        return lrn_misfit(x, vi, "its window does not run along the channel axis");
    if (strcmp(autopad, "NOTSET") && strcmp(autopad, "VALID") && autopad[0])
        return lrn_misfit(x, vi, "auto_pad is '%s'", ox_shown(autopad));
    int c = p->cax - 2;
    for (int a = 0; a < sp; a++) {
        int64_t lo = nq >= 0 ? q[a] : 0, hi = nq >= 0 ? q[sp + a] : 0;
        if (lo < 0 || hi < 0 || lo > (1 << 16) || hi > (1 << 16))
            return lrn_misfit(x, vi, "its pads are %" PRId64 " and %" PRId64, lo, hi);
        if ((ns >= 0 && s[a] != 1) || (nd >= 0 && dl[a] != 1) || (a != c && (k[a] != 1 || lo || hi)))
            return lrn_misfit(x, vi, "its window is not %" PRId64 " channels by one position with stride 1",
                              k[c]);
        if (a == c && (lo || hi) && !cip)
            return lrn_misfit(x, vi, "its own channel padding is left out of the mean (count_include_pad 0)");
        if (a == c && !strcmp(autopad, "VALID") && (lo || hi))
            lo = hi = 0;
        if (a == c) {
            p->lo += lo;
            p->hi += hi;
            p->dims[p->cax] += lo + hi;
        }
    }
    int64_t size = k[c], ch = p->dims[p->cax] - p->lo - p->hi;
    if (size < 1 || size > (1 << 16) || p->lo + p->hi != size - 1)
        return lrn_misfit(x, vi, "it averages %" PRId64 " channels with %" PRId64 " + %" PRId64 " zero "
                          "channels padded, which does not give one mean per channel", size, p->lo, p->hi);
    p->dims[p->cax] = ch;
    p->size = (int)size;
    p->front = (int)p->lo;
    p->a = 1;
    p->b = 0;
    p->p = 1;
    p->stage = L_MEAN;
    return ZF_OK;
}

/* x / (k + alpha * mean)^beta: the engine's LRN layer, after its constants are checked. */
static zf_status lrn_finish(ox_ctx *x, int vi, const ox_part *p, int act, double beta)
{
    const ox_value *b = &x->vals[p->base];
    if (act != p->base && x->vals[act].layer != b->layer)
        return lrn_misfit(x, vi, "it normalises '%s', not the activation it squared ('%s')",
                          ox_shown(x->vals[act].name), ox_shown(b->name));
    if (p->stage == L_SQUARE)
        return lrn_misfit(x, vi, "the squares are not averaged over channels");
    const zf_layer *bl = b->layer >= 0 ? &x->net->layers[b->layer] : NULL;
    int64_t want[4] = {x->batch, bl ? bl->out_c : x->net->in_c, bl ? bl->out_h : x->net->in_h,
                       bl ? bl->out_w : x->net->in_w};
    if (p->ndim != 4 || memcmp(p->dims, want, sizeof want))
        return lrn_misfit(x, vi, "it is not back in the activation's shape (N, %" PRId64 ", %" PRId64
                          ", %" PRId64 ")", want[1], want[2], want[3]);
    if (!(p->a > 0) || !(p->b > 0) || !(beta > 0) || !isfinite(beta) || p->a > 1e30 || p->b > 1e30 || beta > 1e3)
        return lrn_misfit(x, vi, "its constants are alpha %g, k %g, beta %g (a LocalResponseNorm has all "
                          "three positive)", p->a, p->b, beta);
    if (act != x->cur && x->vals[act].layer != x->vals[x->cur].layer)
        return node_err(x, ZF_ERR_UNSUPPORTED, "reads '%s', not the latest activation: the graph branches",
                        ox_shown(x->vals[act].name));
    /* The mean over `size` channels is the sum times 1/size: the engine's alpha, like ONNX's. */
    zf_lrn_params lp = {.size = p->size, .front = p->front, .alpha = (float)p->a, .beta = (float)beta,
                        .k = (float)p->b};
    char name[32];
    layer_name(x, "norm", 1, name, sizeof name);
    return added(x, zf_net_add_lrn(x->net, name, lp), 4);
}

/* A node that reads a step of a LocalResponseNorm written out (value `vi`): moves it one step on,
 * or finishes it, or refuses. */
static zf_status op_lrn_step(ox_ctx *x, int vi, const char *op)
{
    static const char *const none[] = {NULL};
    static const char *const axes[] = {"axes", NULL};
    static const char *const reshape[] = {"shape", "allowzero", NULL};
    ox_part p = x->vals[vi].part;
    zf_status st;
    int k0 = input_val(x, 0), k1 = input_val(x, 1);
    if (k0 == -2 || k1 == -2)
        return ZF_ERR_FORMAT;
    int other = k0 == vi ? k1 : k0, first = k0 == vi;
    ox_kind ok = other >= 0 ? x->vals[other].kind : V_DEAD;
    double v;
    if (!strcmp(op, "Identity")) {
        if ((st = check_attrs(x, none)))
            return st;
    } else if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) {
        int unsq = op[0] == 'U', nd;
        int64_t dims[OX_MAX_DIMS];
        if (!first)
            return lrn_misfit(x, vi, "it is not the data input");
        if ((st = check_attrs(x, axes)) || (st = squeeze_dims(x, unsq, p.dims, p.ndim, dims, &nd)))
            return st;
        /* where did the channel axis go: the axes before it that are not 1 stay in order */
        int64_t ax[OX_MAX_DIMS];
        int na;
        if ((st = int_list(x, "axes", 1, ax, OX_MAX_DIMS, &na)))
            return st;
        if (na < 0)
            return lrn_misfit(x, vi, "it squeezes without naming the axes");
        int mark[OX_MAX_DIMS] = {0}, r = unsq ? nd : p.ndim;
        for (int k = 0; k < na; k++)
            mark[axis_norm(ax[k], r)] = 1;
        if (!unsq && (mark[0] || mark[p.cax]))
            return lrn_misfit(x, vi, "it squeezes the batch or channel axis");
        if (unsq && mark[0])
            return lrn_misfit(x, vi, "it puts an axis before the batch");
        int cax = -1;
        if (unsq) {
            for (int a = 0, j = 0; a < nd; a++)
                if (!mark[a] && j++ == p.cax)
                    cax = a;
        } else {
            cax = p.cax;
            for (int a = 0; a < p.cax; a++)
                cax -= mark[a];
        }
        p.ndim = nd;
        memcpy(p.dims, dims, sizeof dims);
        p.cax = cax;
    } else if (!strcmp(op, "Reshape")) {
        if (!first)
            return lrn_misfit(x, vi, "it is not the data input");
        if ((st = check_attrs(x, reshape)) || (st = lrn_reshape(x, vi, &p)))
            return st;
    } else if (!strcmp(op, "Pad")) {
        if (!first)
            return lrn_misfit(x, vi, "it is not the data input");
        if ((st = lrn_pad(x, vi, &p)))
            return st;
    } else if (!strcmp(op, "AveragePool")) {
        if ((st = lrn_mean(x, vi, &p)))
            return st;
    } else if ((!strcmp(op, "Mul") || !strcmp(op, "Div")) && ok == V_CONST) {
        if ((st = check_attrs(x, none)))
            return st;
        if (p.stage != L_MEAN && p.stage != L_AFFINE)
            return lrn_misfit(x, vi, "it %s by a constant %s", op[0] == 'M' ? "multiplies" : "divides",
                              p.stage == L_SQUARE ? "before the mean" : "after the power");
        if (op[0] == 'D' && !first)
            return lrn_misfit(x, vi, "it divides a constant by it");
        if ((st = scalar_input(x, first ? 1 : 0, vi, op[0] == 'M' ? "factor (alpha)" : "divisor", &v)))
            return st;
        if (op[0] == 'D')
            v = 1 / v;
        p.a *= v;
        p.b *= v;
        p.stage = L_AFFINE;
    } else if ((!strcmp(op, "Add") || !strcmp(op, "Sub")) && ok == V_CONST) {
        if ((st = check_attrs(x, none)))
            return st;
        if (p.stage != L_MEAN && p.stage != L_AFFINE)
            return lrn_misfit(x, vi, "it adds a constant %s",
                              p.stage == L_SQUARE ? "before the mean" : "after the power");
        if (op[0] == 'S' && !first)
            return lrn_misfit(x, vi, "it is subtracted from a constant");
        if ((st = scalar_input(x, first ? 1 : 0, vi, "term (k)", &v)))
            return st;
        p.b += op[0] == 'S' ? -v : v;
        p.stage = L_AFFINE;
    } else if (!strcmp(op, "Pow") || !strcmp(op, "Sqrt")) {
        if ((st = check_attrs(x, none)))
            return st;
        if (!first)
            return lrn_misfit(x, vi, "it is the exponent");
        if (p.stage != L_MEAN && p.stage != L_AFFINE)
            return lrn_misfit(x, vi, "it raises to a power %s",
                              p.stage == L_SQUARE ? "before the mean" : "twice");
        if (op[0] == 'S')
            v = 0.5;
        else if ((st = scalar_input(x, 1, vi, "exponent (beta)", &v)))
            return st;
        p.p = v;
        p.stage = L_POWER;
    } else if (!strcmp(op, "Div") && ok == V_ACT && !first) {
        if ((st = check_attrs(x, none)))
            return st;
        return lrn_finish(x, vi, &p, other, p.p);
    } else if (!strcmp(op, "Mul") && ok == V_ACT) {
        if ((st = check_attrs(x, none)))
            return st;
        if (p.stage != L_POWER)
            return lrn_misfit(x, vi, "it multiplies the activation by the normaliser itself, not a "
                              "power of it");
        return lrn_finish(x, vi, &p, other, -p.p);
    } else {
        return lrn_misfit(x, vi, "%s does not fit that computation here", ox_shown(op));
    }
    return def_part(x, V_LRN, &p);
}

/* A node that reads no constant-only inputs and is not an engine op by itself: the start or a
 * step of a multi-node spelling, or a refusal. ZF_ERR_NOT_FOUND when it is none of those. */
static zf_status map_part(ox_ctx *x, const char *op, int *handled)
{
    const Onnx__NodeProto *n = x->node;
    *handled = 1;
    int lrn = -1, pad = -1, acts = 0;
    for (size_t k = 0; k < n->n_input; k++) {
        const char *name = input_name(x, (int)k);
        int i = *name ? find_val(x, name) : -1;
        if (i < 0)
            continue;
        if (x->vals[i].kind == V_LRN) {
            if (lrn >= 0 && lrn != i)
                return lrn_misfit(x, i, "it is combined with another such value");
            lrn = i;
        }
        if (x->vals[i].kind == V_PAD)
            pad = i;
        acts += x->vals[i].kind == V_ACT;
    }
    if (!strcmp(op, "Shape"))
        return fold_shape(x);
    if (lrn >= 0)
        return op_lrn_step(x, lrn, op);
    int i0 = input_val(x, 0);
    if (i0 == -2)
        return ZF_ERR_FORMAT;
    if (!strcmp(op, "Pad") && i0 >= 0 && (x->vals[i0].kind == V_ACT || x->vals[i0].kind == V_PAD))
        return op_pad_act(x, i0);
    if (pad >= 0 && strcmp(op, "Conv") && strcmp(op, "MaxPool") && strcmp(op, "AveragePool"))
        return node_err(x, ZF_ERR_UNSUPPORTED, "reads '%s', an activation zero-padded by a Pad node; the "
                        "engine pads only inside Conv and pooling layers", ox_shown(x->vals[pad].name));
    if (!strcmp(op, "Mul") && acts == 2 && n->n_input == 2) {
        int i1 = input_val(x, 1);
        if (i1 < 0)
            return ZF_ERR_FORMAT;
        if (i0 != i1 && x->vals[i0].layer != x->vals[i1].layer)
            return node_err(x, ZF_ERR_UNSUPPORTED, "multiplies two different activations");
        return lrn_start(x, i0);
    }
    if (!strcmp(op, "Pow") && acts == 1 && i0 >= 0 && x->vals[i0].kind == V_ACT) {
        static const char *const none[] = {NULL};
        zf_status st;
        int e = const_input(x, 1, 1, "exponent");
        if (e < 0)
            return ZF_ERR_UNSUPPORTED;
        double *d;
        if ((st = check_attrs(x, none)) || (st = dense_read(x, e, &d)))
            return st;
        double v = x->vals[e].c.count == 1 ? d[0] : NAN;
        free(d);
        if (v != 2)
            return node_err(x, ZF_ERR_UNSUPPORTED, "raises the activation to the power %g: only the "
                            "squares of a LocalResponseNorm are supported", v);
        return lrn_start(x, i0);
    }
    *handled = 0;
    return ZF_OK;
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
    memset(x->xpad, 0, sizeof x->xpad);
    if (!strcmp(op, "Constant"))
        return fold_constant(x);
    if (!strcmp(op, "ConstantOfShape"))
        return fold_constant_of_shape(x);
    if (!strcmp(op, "If"))
        return op_if(x);
    /* Nodes that only read constants are folded, whatever the op: a few are understood. */
    int all_const = n->n_input > 0;
    for (size_t k = 0; k < n->n_input && all_const; k++)
        all_const = !*input_name(x, (int)k) || is_const_input(x, (int)k);
    if (all_const && *input_name(x, 0)) {
        const ox_const *c0 = &x->vals[find_val(x, input_name(x, 0))].c;
        /* values the loader computed, and integers (shapes): materialised; weights stay lazy views */
        int computed = c0->src == OX_SRC_OWNED || (is_int_type(c0->dtype) && c0->count <= OX_MAX_OWNED);
        if (computed && (!strcmp(op, "Reshape") || !strcmp(op, "Transpose") || !strcmp(op, "Cast")))
            return fold_dense_view(x, op);
        if (!strcmp(op, "Shape"))
            return fold_shape(x);
        if (!strcmp(op, "Gather"))
            return fold_gather(x);
        if (!strcmp(op, "Concat"))
            return fold_concat(x);
        if (!strcmp(op, "Slice"))
            return fold_slice(x);
        if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze"))
            return fold_squeeze(x, op[0] == 'U');
        if (!strcmp(op, "Equal") || !strcmp(op, "Greater") || !strcmp(op, "Less") || !strcmp(op, "Not") ||
            !strcmp(op, "Neg") || !strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") ||
            !strcmp(op, "Div"))
            return fold_elementwise(x, op);
        if (!strcmp(op, "Identity") || !strcmp(op, "Reshape") || !strcmp(op, "Transpose") ||
            !strcmp(op, "Cast")) {
            static const char *const allowed[] = {"perm", "shape", "to", "allowzero", NULL};
            zf_status st = check_attrs(x, allowed);
            return st ? st : fold_view(x, op);
        }
        return node_err(x, ZF_ERR_UNSUPPORTED, "computing %s on constants is not supported", ox_shown(op));
    }
    int handled;
    zf_status pst = map_part(x, op, &handled);
    if (handled)
        return pst;
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
        c->owned = zf_malloc(sizeof(double) * (size_t)(t->size ? t->size : 1));
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
        if (x->vals[v].kind == V_LRN || x->vals[v].kind == V_PAD)
            return zf_error(ZF_ERR_UNSUPPORTED, "%s: graph output '%s' is a step inside one of the "
                            "engine's layers (%s), which the engine does not keep", x->path, ox_shown(name),
                            x->vals[v].kind == V_LRN ? "a LocalResponseNorm" : "padding");
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
            float one, *tmp = n == 1 ? &one : zf_malloc(sizeof(float) * (size_t)n);
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

/* Outputs of the nodes of g and of the graphs in their attributes (If branches); *nodes counts
 * the nodes the same way. */
static size_t count_outputs(const Onnx__GraphProto *g, size_t *nodes, int depth)
{
    size_t n = 0;
    for (size_t i = 0; g && depth < 8 && i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        if (!nd)
            continue;
        n += nd->n_output;
        (*nodes)++;
        for (size_t k = 0; k < nd->n_attribute; k++)
            if (nd->attribute[k] && nd->attribute[k]->g)
                n += count_outputs(nd->attribute[k]->g, nodes, depth + 1);
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
    /* One slot per value the graph can define, the branches of If nodes included. */
    size_t n_nodes = 0, cap = g->n_input + g->n_initializer + (size_t)x->opts->n_bindings + 1;
    cap += count_outputs(g, &n_nodes, 0);
    if (cap > INT_MAX / 2 || n_nodes > INT_MAX / 2)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: graph too large", x->path);
    x->cap_vals = (int)cap;
    x->vals = zf_calloc(cap, sizeof *x->vals);
    x->cap_pend = (int)n_nodes + 1;
    x->pend = zf_calloc((size_t)x->cap_pend, sizeof *x->pend);
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
    ProtobufCMessage *msg;
    zf_status st = ox_unpack_file(&onnx__model_proto__descriptor, path, &msg);
    if (st)
        return st;
    Onnx__ModelProto *m = (Onnx__ModelProto *)msg;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    else
        snprintf(dir, sizeof dir, ".");
    return import_model(m, path, dir, opts, out);
}
