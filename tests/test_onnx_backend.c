/* The ONNX project's backend tests (Debian's libonnx-testdata: node tests with input and expected
 * output protobufs, and the PyTorch-converted and PyTorch-operator cases) for every op the engine
 * has: each case runs through the engine's ops (core/include/zf/ops.h) with its attributes read
 * here, independently of the loader, and, wherever the loader accepts the graph, also through
 * zf_onnx_load and zf_net_forward. Cases that cannot run are listed with their reason; the list is
 * docs/onnx.md's. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx.pb-c.h"
#include "testutil.h"
#include "zf/net.h"
#include "zf/onnx.h"
#include "zf/ops.h"
#include "zf/tensor.h"

/* As in test_onnx.c: |a - b| / max(|b|, 1e-2 * max|b|). */
#define REL_TOL 1e-4
#define REL_FLOOR 1e-2

static const char *data_root(void)
{
    static const char *const roots[] = {"/usr/share/libonnx-testdata/data",
                                        "/usr/lib/python3/dist-packages/onnx/backend/test/data"};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        struct stat st;
        if (stat(roots[i], &st) == 0)
            return roots[i];
    }
    return NULL;
}

/* ---------------------------------------------------------------- a case */

#define MAXT 8

typedef struct tcase {
    char dir[1024];
    char name[256];
    Onnx__ModelProto *model;
    const Onnx__NodeProto *node;
    int64_t opset;
    /* the node's inputs (borrowed from owned) and expected outputs */
    zf_tensor *in[MAXT];
    int n_in;
    zf_tensor *owned[2 * MAXT];
    int n_owned;
    zf_tensor *data; /* the graph's first input */
    int lift_axis;   /* where a 3-D tensor gets its unit axis: 2 (N, C, 1, L), or 3 from Unsqueeze */
    zf_tensor *out[MAXT];
    int n_out;
} tcase;

static int n_ops, n_loader, n_skipped;
static char skipped[8192];

static void skip(const tcase *t, const char *why)
{
    size_t len = strlen(skipped);
    snprintf(skipped + len, sizeof skipped - len, "  %s: %s\n", t->name, why);
    n_skipped++;
}

static uint8_t *slurp(const char *path, size_t *len) { return (uint8_t *)tu_read_file(path, len); }

/* A float initializer of the model as a tensor (raw_data or float_data); NULL if not float or
 * more than 4-D. Written here from onnx.proto so that the ops path does not use the loader. */
static zf_tensor *initializer(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *tp = g->initializer[i];
        if (strcmp(tp->name, name))
            continue;
        if (tp->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || tp->n_dims > 4 || tp->n_dims == 0)
            return NULL;
        int64_t shape[4];
        for (size_t d = 0; d < tp->n_dims; d++)
            shape[d] = tp->dims[d];
        zf_tensor *t = zf_tensor_new(ZF_DTYPE_F32, (int)tp->n_dims, shape);
        cr_assert(t);
        if (tp->has_raw_data) {
            cr_assert_eq(tp->raw_data.len, (size_t)t->size * 4);
            memcpy(t->data, tp->raw_data.data, tp->raw_data.len);
        } else {
            cr_assert_eq(tp->n_float_data, (size_t)t->size);
            memcpy(t->data, tp->float_data, (size_t)t->size * 4);
        }
        return t;
    }
    return NULL;
}

static int is_initializer(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (!strcmp(g->initializer[i]->name, name))
            return 1;
    return 0;
}

/* Loads model and data set 0: t->node is the one op (NULL when the graph has several), t->in its
 * inputs (graph inputs from input_k.pb, or initializers), t->out the expected outputs. Returns 0
 * (with a skip recorded) when a tensor is not readable here (5-D, strings, ...). */
static int load_case(tcase *t, const char *dir)
{
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "%s", dir);
    const char *base = strrchr(dir, '/');
    snprintf(t->name, sizeof t->name, "%s", base ? base + 1 : dir);
    char path[1200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    size_t len;
    uint8_t *buf = slurp(path, &len);
    cr_assert(buf, "%s missing", path);
    t->model = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    cr_assert(t->model, "%s: not an ONNX model", path);
    const Onnx__GraphProto *g = t->model->graph;
    t->opset = 1;
    for (size_t i = 0; i < t->model->n_opset_import; i++)
        if (!t->model->opset_import[i]->domain || !*t->model->opset_import[i]->domain)
            t->opset = t->model->opset_import[i]->version;
    /* the one node that is not a Constant, Unsqueeze or Squeeze (1-D pools exported as 2-D) */
    int several = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const char *op = g->node[i]->op_type;
        if (strcmp(op, "Constant") && strcmp(op, "Unsqueeze") && strcmp(op, "Squeeze")) {
            several |= t->node != NULL;
            t->node = g->node[i];
        }
    }
    if (several)
        t->node = NULL;
    t->lift_axis = 2;
    for (size_t i = 0; i < g->n_node; i++)
        if (!strcmp(g->node[i]->op_type, "Unsqueeze") && g->node[i]->n_attribute &&
            g->node[i]->attribute[0]->n_ints == 1)
            t->lift_axis = (int)g->node[i]->attribute[0]->ints[0];
    int k = 0;
    for (size_t i = 0; i < g->n_input; i++) {
        if (is_initializer(g, g->input[i]->name))
            continue;
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, k++);
        zf_tensor *x = NULL;
        if (zf_onnx_read_tensor(path, &x)) {
            skip(t, zf_last_error());
            return 0;
        }
        t->owned[t->n_owned++] = x;
        if (i == 0)
            t->data = x;
        for (size_t j = 0; t->node && j < t->node->n_input && j < MAXT; j++)
            if (!strcmp(t->node->input[j], g->input[i]->name))
                t->in[j] = x;
    }
    if (t->node) {
        t->n_in = (int)t->node->n_input;
        if (!t->in[0]) /* fed through Unsqueeze: the graph's data input, lifted by the op's rank */
            t->in[0] = t->data;
        for (int j = 1; j < t->n_in && j < MAXT; j++) {
            if (!t->in[j] && *t->node->input[j]) {
                t->in[j] = initializer(g, t->node->input[j]);
                if (t->in[j])
                    t->owned[t->n_owned++] = t->in[j];
            }
        }
    }
    for (int o = 0; o < MAXT; o++) {
        snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", dir, o);
        struct stat st;
        if (stat(path, &st))
            break;
        if (zf_onnx_read_tensor(path, &t->out[o])) {
            skip(t, zf_last_error());
            return 0;
        }
        t->n_out = o + 1;
    }
    return 1;
}

static void free_case(tcase *t)
{
    for (int i = 0; i < t->n_owned; i++)
        zf_tensor_free(t->owned[i]);
    for (int i = 0; i < MAXT; i++)
        zf_tensor_free(t->out[i]);
    if (t->model)
        protobuf_c_message_free_unpacked(&t->model->base, NULL);
}

/* ---------------------------------------------------------------- attributes */

static const Onnx__AttributeProto *attr(const tcase *t, const char *name)
{
    for (size_t i = 0; i < t->node->n_attribute; i++)
        if (!strcmp(t->node->attribute[i]->name, name))
            return t->node->attribute[i];
    return NULL;
}

static int64_t attr_i(const tcase *t, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = attr(t, name);
    return a ? a->i : def;
}

static float attr_f(const tcase *t, const char *name, float def)
{
    const Onnx__AttributeProto *a = attr(t, name);
    return a ? a->f : def;
}

static int attr_ints(const tcase *t, const char *name, int64_t *v, int max)
{
    const Onnx__AttributeProto *a = attr(t, name);
    if (!a)
        return 0;
    for (size_t i = 0; i < a->n_ints && (int)i < max; i++)
        v[i] = a->ints[i];
    return (int)a->n_ints;
}

static int attr_is(const tcase *t, const char *name, const char *s)
{
    const Onnx__AttributeProto *a = attr(t, name);
    return a && a->s.len == strlen(s) && !memcmp(a->s.data, s, a->s.len);
}

/* ---------------------------------------------------------------- comparison */

static double compare(const tcase *t, const float *got, const zf_tensor *want, const char *path)
{
    const float *w = zf_tensor_f32(want);
    size_t n = (size_t)want->size, where;
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(w[i]));
    double err = tu_max_rel_err_f(got, w, n, m > 0 ? REL_FLOOR * m : 1e-30, &where);
    cr_expect_leq(err, REL_TOL, "%s (%s): relative error %.3g at index %zu: %g, expected %g", t->name, path,
                  err, where, got[where], w[where]);
    return err;
}

/* 1-D cases (N, C, L) run as 2-D with height 1. */
/* The op's rank: 2 + the kernel_shape's length when given (a 1-D input fed through Unsqueeze to a
 * 2-D op counts as 2-D), else the input's. */
static int op_rank(const tcase *t, const zf_tensor *x)
{
    int64_t k[4];
    int nk = attr_ints(t, "kernel_shape", k, 4);
    return nk ? nk + 2 : x->ndim;
}

static void dims4(const tcase *t, const zf_tensor *x, int d[4])
{
    if (x->ndim == 3) {
        d[0] = (int)x->shape[0], d[1] = (int)x->shape[1];
        d[2] = t->lift_axis == 3 ? (int)x->shape[2] : 1;
        d[3] = t->lift_axis == 3 ? 1 : (int)x->shape[2];
    } else {
        d[0] = (int)x->shape[0], d[1] = (int)x->shape[1], d[2] = (int)x->shape[2], d[3] = (int)x->shape[3];
    }
}

/* kernel, strides, begin pads pb and end pads pe of a 1-D or 2-D window, lifted to 2-D. 0 if
 * unsupported. */
static int window(const tcase *t, int rank, const int *kernel_from_w, int in_h, int in_w, int *k, int *s,
                  int *pb, int *pe)
{
    int64_t kv[4] = {0}, sv[4] = {1, 1}, pv[4] = {0}, dv[4] = {1, 1};
    int nk = attr_ints(t, "kernel_shape", kv, 4);
    int sp = rank - 2;
    attr_ints(t, "strides", sv, 4);
    attr_ints(t, "pads", pv, 4);
    int nd = attr_ints(t, "dilations", dv, 4);
    for (int i = 0; i < nd; i++)
        if (dv[i] != 1)
            return 0;
    if (sp == 1) { /* lift [L] to [1, L] */
        kv[1] = nk ? kv[0] : kernel_from_w[1];
        kv[0] = 1;
        sv[1] = sv[0];
        sv[0] = 1;
        pv[3] = pv[1]; /* [begin, end] -> [top 0, left begin, bottom 0, right end] */
        pv[1] = pv[0];
        pv[0] = pv[2] = 0;
    } else if (!nk) {
        kv[0] = kernel_from_w[0];
        kv[1] = kernel_from_w[1];
    }
    for (int i = 0; i < 2; i++) {
        k[i] = (int)kv[i];
        s[i] = (int)sv[i];
        pb[i] = (int)pv[i];
        pe[i] = (int)pv[i + 2];
    }
    if (attr_is(t, "auto_pad", "SAME_UPPER") || attr_is(t, "auto_pad", "SAME_LOWER")) {
        int in[2] = {in_h, in_w};
        for (int i = 0; i < 2; i++) {
            int out = (in[i] + s[i] - 1) / s[i];
            int total = (out - 1) * s[i] + k[i] - in[i];
            total = total < 0 ? 0 : total;
            pb[i] = attr_is(t, "auto_pad", "SAME_UPPER") ? total / 2 : total - total / 2;
            pe[i] = total - pb[i];
        }
    } else if (attr_is(t, "auto_pad", "VALID")) {
        pb[0] = pb[1] = pe[0] = pe[1] = 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- ops */

/* A (transposed) convolution's input X (1-D or 2-D, with batch and channels) and weights W (a
 * float initializer): 1 with the dims of X and of the output as 4-D, else 0 with the case
 * skipped, `what` saying why. */
static int conv_operands(tcase *t, const char *what, int d[4], int od[4])
{
    if (!t->in[1] || (t->in[0]->ndim != 3 && t->in[0]->ndim != 4)) {
        skip(t, what);
        return 0;
    }
    dims4(t, t->in[0], d);
    dims4(t, t->out[0], od);
    return 1;
}

static void run_conv(tcase *t)
{
    zf_tensor *x = t->in[0], *w = t->in[1], *b = t->n_in > 2 ? t->in[2] : NULL;
    int d[4], od[4];
    if (!conv_operands(t, "3-D convolution (or weights that are not a float initializer)", d, od))
        return;
    int kw[2] = {w->ndim == 3 ? 1 : (int)w->shape[2], (int)w->shape[w->ndim - 1]};
    int k[2], s[2], p[2], pe[2];
    if (!window(t, op_rank(t, x), kw, d[2], d[3], k, s, p, pe)) {
        skip(t, "dilation > 1 (the engine's convolutions are not dilated)");
        return;
    }
    zf_conv_geom g = {d[0], d[1], d[2], d[3], (int)w->shape[0], od[2], od[3],
                      k[0], k[1], s[0], s[1], p[0], p[1], (int)attr_i(t, "group", 1)};
    float *ws = zf_alloc(zf_conv_workspace_floats(&g) * sizeof(float) + 64);
    float *out = zf_alloc((size_t)t->out[0]->size * sizeof(float));
    zf_conv_forward(out, zf_tensor_f32(x), zf_tensor_f32(w), b ? zf_tensor_f32(b) : NULL, &g, ws);
    compare(t, out, t->out[0], "ops");
    n_ops++;
    zf_free(ws);
    zf_free(out);
}

static void run_convtranspose(tcase *t)
{
    zf_tensor *x = t->in[0], *w = t->in[1], *b = t->n_in > 2 ? t->in[2] : NULL;
    int d[4], od[4];
    if (!conv_operands(t, "3-D transposed convolution", d, od))
        return;
    int64_t dv[2] = {1, 1}, pv[4] = {0}, sv[2] = {1, 1};
    int nd = attr_ints(t, "dilations", dv, 2);
    for (int i = 0; i < nd; i++)
        if (dv[i] != 1) {
            skip(t, "dilation > 1 (the deconvnet filters with the forward's undilated kernels)");
            return;
        }
    int kh = w->ndim == 3 ? 1 : (int)w->shape[2], kw = (int)w->shape[w->ndim - 1];
    int np = attr_ints(t, "pads", pv, 4), ns = attr_ints(t, "strides", sv, 2);
    int sh = 1, sw = (int)sv[0], pt = 0, pl = (int)pv[0];
    if (x->ndim == 4) {
        sh = (int)sv[0];
        sw = ns > 1 ? (int)sv[1] : 1;
        pt = (int)pv[0];
        pl = np > 1 ? (int)pv[1] : 0;
    }
    int64_t osh[2];
    int has_os = attr_ints(t, "output_shape", osh, 2) > 0;
    if (attr_is(t, "auto_pad", "SAME_UPPER") || attr_is(t, "auto_pad", "SAME_LOWER") || has_os) {
        /* total padding = s (in - 1) + output_padding + k - out, split as the spec says */
        int64_t opad[2] = {0, 0};
        attr_ints(t, "output_padding", opad, 2);
        int in[2] = {d[2], d[3]}, out[2] = {od[2], od[3]}, st[2] = {sh, sw}, kk[2] = {kh, kw}, beg[2];
        for (int i = 0; i < 2; i++) {
            int total = st[i] * (in[i] - 1) + (int)opad[i] + kk[i] - out[i];
            if (total < 0)
                total = 0;
            beg[i] = attr_is(t, "auto_pad", "SAME_UPPER") ? total / 2 : total - total / 2;
        }
        pt = beg[0];
        pl = beg[1];
    }
    /* the transposed convolution is the conv whose output is X: din = od, dout = x */
    zf_conv_geom g = {od[0], od[1], od[2], od[3], d[1], d[2], d[3], kh, kw, sh, sw, pt, pl,
                      (int)attr_i(t, "group", 1)};
    float *ws = zf_alloc(zf_conv_workspace_floats(&g) * sizeof(float) + 64);
    float *out = zf_alloc((size_t)t->out[0]->size * sizeof(float));
    zf_conv_backward_data(out, zf_tensor_f32(x), zf_tensor_f32(w), &g, ws);
    if (b)
        for (int n = 0; n < od[0]; n++)
            for (int c = 0; c < od[1]; c++)
                for (int i = 0; i < od[2] * od[3]; i++)
                    out[((size_t)n * od[1] + c) * od[2] * od[3] + i] += zf_tensor_f32(b)[c];
    compare(t, out, t->out[0], "ops");
    n_ops++;
    zf_free(ws);
    zf_free(out);
}

static void run_pool(tcase *t, int is_max, int global)
{
    zf_tensor *x = t->in[0];
    if (x->ndim != 3 && x->ndim != 4) {
        skip(t, "3-D pooling");
        return;
    }
    if (x->dtype != ZF_DTYPE_F32) {
        skip(t, "uint8 data (the engine computes in float32)");
        return;
    }
    int d[4], od[4];
    dims4(t, x, d);
    dims4(t, t->out[0], od);
    int k[2] = {d[2], d[3]}, s[2] = {1, 1}, p[2] = {0, 0}, pe[2] = {0, 0}, none[2] = {0, 0};
    if (!global && !window(t, op_rank(t, x), none, d[2], d[3], k, s, p, pe)) {
        skip(t, "dilation > 1 (the engine's pools are not dilated)");
        return;
    }
    zf_pool_geom g = {d[0], d[1], d[2], d[3], od[2], od[3], k[0], k[1], s[0], s[1], p[0], p[1], pe[0], pe[1]};
    size_t n = (size_t)t->out[0]->size;
    float *out = zf_alloc(n * sizeof(float));
    int32_t *sw = zf_alloc(n * sizeof(int32_t));
    if (is_max)
        zf_maxpool_forward(out, sw, zf_tensor_f32(x), &g);
    else if (global)
        zf_adaptive_avgpool_forward(out, zf_tensor_f32(x), d[0], d[1], d[2], d[3], 1, 1);
    else
        zf_avgpool_forward(out, zf_tensor_f32(x), &g, (int)attr_i(t, "count_include_pad", 0));
    compare(t, out, t->out[0], "ops");
    if (is_max && t->n_out > 1) {
        /* Indices: flat over (N, C, H, W), row-major, or column-major per plane with storage_order 1 */
        const zf_tensor *want = t->out[1];
        int storage = (int)attr_i(t, "storage_order", 0), plane = d[2] * d[3];
        size_t bad = n;
        for (size_t i = 0; i < n && bad == n; i++) {
            int32_t sidx = sw[i], y = sidx / d[3], xx = sidx % d[3];
            int64_t onnx = (int64_t)(i / ((size_t)od[2] * od[3])) * plane +
                           (storage ? (int64_t)xx * d[2] + y : sidx);
            if (onnx != zf_tensor_i32(want)[i])
                bad = i;
        }
        cr_expect_eq(bad, n, "%s: switch %zu is %d, ONNX's index %d", t->name, bad, bad < n ? sw[bad] : 0,
                     bad < n ? zf_tensor_i32(want)[bad] : 0);
    }
    n_ops++;
    zf_free(out);
    zf_free(sw);
}

static void run_lrn(tcase *t)
{
    zf_tensor *x = t->in[0];
    int size = (int)attr_i(t, "size", 1);
    zf_lrn_params p = {.size = size, .front = (size - 1) / 2, .alpha = attr_f(t, "alpha", 1e-4f),
                       .beta = attr_f(t, "beta", 0.75f), .k = attr_f(t, "bias", 1.0f)};
    float *out = zf_alloc((size_t)x->size * sizeof(float));
    zf_lrn_forward(out, zf_tensor_f32(x), (int)x->shape[0], (int)x->shape[1], (int)(x->shape[2] * x->shape[3]), &p);
    compare(t, out, t->out[0], "ops");
    n_ops++;
    zf_free(out);
}

static void run_gemm(tcase *t)
{
    zf_tensor *a = t->in[0], *b = t->in[1], *c = t->n_in > 2 ? t->in[2] : NULL;
    int ta = (int)attr_i(t, "transA", 0), tb = (int)attr_i(t, "transB", 0);
    float alpha = attr_f(t, "alpha", 1), beta = attr_f(t, "beta", 1);
    if (!b || a->ndim != 2 || b->ndim != 2) {
        skip(t, "operands are not 2-D float matrices");
        return;
    }
    int m = (int)a->shape[ta ? 1 : 0], kk = (int)a->shape[ta ? 0 : 1], nn = (int)b->shape[tb ? 0 : 1];
    if (c && c->size != 1 && c->size != nn) {
        skip(t, "a bias per row (C of shape (M, N)): the engine's FC has one bias per output");
        return;
    }
    /* the engine's FC: out (m, n) = in (m, k) . w^T + bias, w (n, k) = alpha B^T; bias = beta C */
    float *in = malloc(sizeof(float) * (size_t)m * kk), *w = malloc(sizeof(float) * (size_t)nn * kk);
    float *bias = malloc(sizeof(float) * (size_t)nn), *out = malloc(sizeof(float) * (size_t)m * nn);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < kk; j++)
            in[i * kk + j] = zf_tensor_f32(a)[ta ? j * m + i : i * kk + j]; /* transA: layout only */
    for (int o = 0; o < nn; o++)
        for (int j = 0; j < kk; j++)
            w[o * kk + j] = alpha * zf_tensor_f32(b)[tb ? o * kk + j : j * nn + o];
    for (int o = 0; o < nn; o++)
        bias[o] = c ? beta * zf_tensor_f32(c)[c->size == 1 ? 0 : o] : 0.0f;
    zf_fc_forward(out, in, w, bias, m, kk, nn);
    compare(t, out, t->out[0], "ops");
    n_ops++;
    free(in);
    free(w);
    free(bias);
    free(out);
}

static void run_softmax(tcase *t)
{
    zf_tensor *x = t->in[0];
    int rank = x->ndim;
    int axis = (int)attr_i(t, "axis", t->opset >= 13 ? -1 : 1);
    if (axis < 0)
        axis += rank;
    if (t->opset >= 13 && axis != rank - 1) {
        skip(t, "softmax along an axis that is not the innermost (the engine's softmax is per row)");
        return;
    }
    /* before opset 13 the input is coerced to 2-D at `axis`: rows of the trailing dims */
    int64_t rows = 1, cols = 1;
    for (int i = 0; i < rank; i++)
        *(i < axis ? &rows : &cols) *= x->shape[i];
    float *out = zf_alloc((size_t)x->size * sizeof(float));
    zf_softmax_forward(out, zf_tensor_f32(x), (int)rows, (int)cols);
    compare(t, out, t->out[0], "ops");
    n_ops++;
    zf_free(out);
}

static void run_relu(tcase *t)
{
    zf_tensor *x = t->in[0];
    float *out = zf_alloc((size_t)x->size * sizeof(float));
    zf_relu_forward(out, zf_tensor_f32(x), (size_t)x->size);
    compare(t, out, t->out[0], "ops");
    n_ops++;
    zf_free(out);
}

/* Flatten, Reshape and inference Dropout leave an NCHW buffer as it is (the engine runs them in
 * place): the expected output holds the input's values in the same order. */
static void run_layout(tcase *t, const char *op)
{
    if (!strcmp(op, "Dropout") && (t->n_in > 2 && t->in[2])) {
        skip(t, "training mode (the engine only infers)");
        return;
    }
    if (t->in[0]->dtype != ZF_DTYPE_F32) {
        skip(t, "not float data");
        return;
    }
    cr_assert_eq(t->in[0]->size, t->out[0]->size, "%s: element count", t->name);
    compare(t, zf_tensor_f32(t->in[0]), t->out[0], "in place");
    if (t->n_out > 1)
        skip(t, "(partly) the mask output: the engine computes no dropout mask");
    n_ops++;
}

/* ---------------------------------------------------------------- through the loader */

static void run_loader(tcase *t)
{
    const Onnx__GraphProto *g = t->model->graph;
    zf_onnx_binding bind[MAXT];
    int nb = 0, k = 0;
    zf_tensor *keep[MAXT] = {0};
    char path[1200];
    for (size_t i = 0; i < g->n_input; i++) {
        if (is_initializer(g, g->input[i]->name))
            continue;
        if (k > 0 && nb < MAXT) {
            snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", t->dir, k);
            if (zf_onnx_read_tensor(path, &keep[nb]) == ZF_OK) {
                bind[nb].name = g->input[i]->name;
                bind[nb].value = keep[nb];
                nb++;
            }
        }
        k++;
    }
    zf_onnx_options o = {.bindings = bind, .n_bindings = nb};
    snprintf(path, sizeof path, "%s/model.onnx", t->dir);
    zf_net *net = NULL;
    zf_status st = zf_onnx_load(path, &o, &net);
    if (st == ZF_OK) {
        /* the first graph input is the data: its first dimension is the batch */
        snprintf(path, sizeof path, "%s/test_data_set_0/input_0.pb", t->dir);
        zf_tensor *x = NULL;
        cr_assert_eq(zf_onnx_read_tensor(path, &x), ZF_OK);
        int n = (int)x->shape[0];
        cr_assert_eq(zf_net_reserve(net, n), ZF_OK, "%s", zf_last_error());
        cr_assert_eq(zf_net_forward(net, zf_tensor_f32(x), n), ZF_OK, "%s: %s", t->name, zf_last_error());
        const zf_layer *last = &net->layers[net->n_layers - 1];
        cr_assert_eq(n * zf_layer_out_size(last), t->out[0]->size, "%s: output size via the loader", t->name);
        compare(t, zf_net_act(net, net->n_layers - 1), t->out[0], "loader");
        n_loader++;
        zf_tensor_free(x);
    } else {
        const char *msg = zf_last_error();
        cr_expect_null(strchr(msg, '\n'), "%s: %s", t->name, msg);
        cr_log_info("%s: the loader refuses it: %s", t->name, strstr(msg, "model.onnx: ") ? strstr(msg, "model.onnx: ") + 12 : msg);
    }
    zf_net_free(net);
    for (int i = 0; i < nb; i++)
        zf_tensor_free(keep[i]);
}

/* ---------------------------------------------------------------- the suites */

static const char *const families[] = {
    "node/test_basic_conv", "node/test_conv_with", "node/test_convtranspose", "node/test_lrn",
    "node/test_maxpool", "node/test_averagepool", "node/test_globalaveragepool", "node/test_globalmaxpool",
    "node/test_relu", "node/test_gemm", "node/test_softmax", "node/test_flatten", "node/test_reshape",
    "node/test_dropout", "node/test_training_dropout",
    "pytorch-converted/test_Conv1d", "pytorch-converted/test_Conv2d", "pytorch-converted/test_ConvTranspose2d",
    "pytorch-converted/test_MaxPool1d", "pytorch-converted/test_MaxPool2d", "pytorch-converted/test_AvgPool1d",
    "pytorch-converted/test_AvgPool2d", "pytorch-converted/test_ReLU", "pytorch-converted/test_Softmax",
    "pytorch-converted/test_softmax_", "pytorch-converted/test_Linear",
    "pytorch-operator/test_operator_conv", "pytorch-operator/test_operator_convtranspose",
    "pytorch-operator/test_operator_maxpool", "pytorch-operator/test_operator_flatten",
    "pytorch-operator/test_operator_view", "pytorch-operator/test_operator_mm", "pytorch-operator/test_operator_addmm",
    NULL};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void run_one(const char *dir)
{
    tcase t;
    if (!load_case(&t, dir)) {
        free_case(&t);
        return;
    }
    const char *op = t.node ? t.node->op_type : "";
    if (!t.node) {
        skip(&t, "a graph of several ops (an expanded function), not one node: ops path not run");
    } else if (!t.in[0] || !t.n_out) {
        skip(&t, "no input or output data");
    } else if (!strcmp(op, "Conv")) {
        run_conv(&t);
    } else if (!strcmp(op, "ConvTranspose")) {
        run_convtranspose(&t);
    } else if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool")) {
        run_pool(&t, op[0] == 'M', 0);
    } else if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "GlobalMaxPool")) {
        run_pool(&t, op[6] == 'M', 1);
    } else if (!strcmp(op, "LRN")) {
        run_lrn(&t);
    } else if (!strcmp(op, "Gemm") || !strcmp(op, "MatMul")) {
        run_gemm(&t);
    } else if (!strcmp(op, "Softmax")) {
        run_softmax(&t);
    } else if (!strcmp(op, "Relu")) {
        run_relu(&t);
    } else if (!strcmp(op, "Flatten") || !strcmp(op, "Reshape") || !strcmp(op, "Dropout")) {
        run_layout(&t, op);
    } else {
        skip(&t, "op outside the engine");
    }
    if (t.n_out && t.data && t.data->dtype == ZF_DTYPE_F32)
        run_loader(&t);
    free_case(&t);
}

Test(onnx_backend, node_tests_of_every_engine_op_pass)
{
    const char *root = data_root();
    if (!root)
        cr_skip_test("ONNX backend test data not installed (Debian: libonnx-testdata)");
    char *dirs[1024];
    int nd = 0;
    for (const char *const *f = families; *f; f++) {
        char folder[1024];
        snprintf(folder, sizeof folder, "%s/%s", root, *f);
        char *slash = strrchr(folder, '/');
        char prefix[256];
        snprintf(prefix, sizeof prefix, "%s", slash + 1);
        *slash = 0;
        DIR *d = opendir(folder);
        cr_assert(d, "%s missing", folder);
        for (struct dirent *e; (e = readdir(d)) && nd < 1024;) {
            if (strncmp(e->d_name, prefix, strlen(prefix)))
                continue;
            char *p = malloc(2048);
            snprintf(p, 2048, "%s/%s", folder, e->d_name);
            dirs[nd++] = p;
        }
        closedir(d);
    }
    qsort(dirs, (size_t)nd, sizeof dirs[0], cmp_str);
    for (int i = 0; i < nd; i++) {
        if (i > 0 && !strcmp(dirs[i], dirs[i - 1]))
            continue;
        run_one(dirs[i]);
    }
    cr_log_info("%d cases run through the engine's ops, %d also through the loader; skipped:\n%s", n_ops,
                n_loader, skipped);
    cr_expect_geq(n_ops, 100, "only %d cases ran", n_ops);
    cr_expect_geq(n_loader, 40, "only %d cases ran through the loader", n_loader);
    for (int i = 0; i < nd; i++)
        free(dirs[i]);
}
