/* ONNX files as torch.onnx.export writes them (tests/fixtures/gen_onnx_export.py, Debian's torch
 * 1.13 at opsets 9, 11, 13 and 17): LocalResponseNorm spelled out as Mul/Pad/AveragePool/Pow/Div
 * with shape subgraphs, Pad nodes before Conv and MaxPool, computed flattens, MatMul + Add, a
 * symbolic batch. Each loads and matches PyTorch layer by layer; the deconvnet and occlusion on
 * them match PyTorch's; graphs with a wrong LRN constant are refused in one line naming the node;
 * the built-in zfnet-pytorch has the rendering's shapes and its LRN matches float64 loops. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/io.h"
#include "zf/net.h"
#include "zf/occlusion.h"
#include "zf/onnx.h"
#include "zf/tensor.h"

/* |a - ref| / max(|ref|, REL_FLOOR * max|ref|) below REL_TOL. The floor: the engine's Winograd and
 * strided-phase convolutions round to a few 1e-6 of a layer's largest value (docs/engine.md), and
 * the convolutions that feed an LRN have outputs near 100 that cancel to values near 1. */
#define REL_TOL 1e-4
#define REL_FLOOR 5e-2

static const char *fx(const char *name) { return tu_fixturef("onnx_export/%s", name); }

static int have_fixtures(void) { return *fx("cases.tsv") && access(fx("cases.tsv"), R_OK) == 0; }

#define NEED_FIXTURES()                                                                            \
    do {                                                                                           \
        if (!have_fixtures())                                                                      \
            cr_skip_test("no fixtures: run tests/fixtures/gen_onnx_export.py into "               \
                         "build-fixtures/onnx_export");                                            \
    } while (0)

/* The lines of cases.tsv whose first field is `kind`, split on tabs. */
typedef struct {
    int n;
    char f[16][256];
} row;

static int read_rows(const char *kind, row *rows, int max)
{
    FILE *f = fopen(fx("cases.tsv"), "r");
    cr_assert(f, "cannot open %s", fx("cases.tsv"));
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        line[strcspn(line, "\n")] = 0;
        row r = {0};
        for (char *save = NULL, *t = strtok_r(line, "\t", &save); t && r.n < 16; t = strtok_r(NULL, "\t", &save))
            snprintf(r.f[r.n++], sizeof r.f[0], "%s", t);
        if (r.n && !strcmp(r.f[0], kind))
            rows[n++] = r;
    }
    fclose(f);
    return n;
}

static zf_tensor *npy(const char *name)
{
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(fx(name), &t), ZF_OK, "%s", zf_last_error());
    return t;
}

static void expect_close(const char *what, const float *a, const float *ref, size_t n)
{
    size_t at = 0;
    double e = tu_max_rel_err_f(a, ref, n, REL_FLOOR * tu_max_abs(ref, n), &at);
    cr_expect(e < REL_TOL, "%s: relative error %g at %zu (%g vs %g)", what, e, at, n ? a[at] : 0.0,
              n ? ref[at] : 0.0);
}

static const zf_layer *layer(const zf_net *net, const char *name)
{
    int i = zf_net_find(net, name);
    cr_assert(i >= 0, "no layer %s", name);
    return &net->layers[i];
}

static zf_net *load(const char *model)
{
    char name[300];
    snprintf(name, sizeof name, "%s.onnx", model);
    zf_net *net = NULL;
    zf_status st = zf_onnx_load(fx(name), NULL, &net);
    cr_assert_eq(st, ZF_OK, "%s: %s", model, zf_last_error());
    return net;
}

/* Loads `model`, runs it on its input, compares every reference layer; returns the net. */
static zf_net *run_model(const char *model, const char *layers, zf_tensor **input)
{
    zf_net *net = load(model);
    char name[300];
    snprintf(name, sizeof name, "%s.x.npy", model);
    zf_tensor *x = npy(name);
    int n = (int)x->shape[0];
    cr_assert_eq(x->size, n * zf_net_in_size(net), "%s: input size", model);
    cr_assert_eq(zf_net_reserve(net, n), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_forward(net, zf_tensor_f32(x), n), ZF_OK, "%s", zf_last_error());
    char list[2048];
    snprintf(list, sizeof list, "%s", layers);
    int checked = 0;
    for (char *save = NULL, *l = strtok_r(list, ",", &save); l; l = strtok_r(NULL, ",", &save)) {
        int li = zf_net_find(net, l);
        cr_assert(li >= 0, "%s: no layer %s", model, l);
        snprintf(name, sizeof name, "%s.%s.npy", model, l);
        zf_tensor *ref = npy(name);
        cr_assert_eq(ref->size, n * zf_layer_out_size(&net->layers[li]), "%s: %s has %lld values, the "
                     "reference %lld", model, l, (long long)(n * zf_layer_out_size(&net->layers[li])),
                     (long long)ref->size);
        char what[400];
        snprintf(what, sizeof what, "%s %s", model, l);
        expect_close(what, net->acts[li], zf_tensor_f32(ref), (size_t)ref->size);
        zf_tensor_free(ref);
        checked++;
    }
    cr_expect(checked >= 5, "%s: only %d layers compared", model, checked);
    if (input)
        *input = x;
    else
        zf_tensor_free(x);
    return net;
}

static void run_all(const char *prefix, int min)
{
    NEED_FIXTURES();
    row rows[64];
    int n = read_rows("ok", rows, 64), done = 0;
    for (int i = 0; i < n; i++) {
        if (strncmp(rows[i].f[1], prefix, strlen(prefix)))
            continue;
        zf_net_free(run_model(rows[i].f[1], rows[i].f[2], NULL));
        done++;
    }
    cr_expect(done >= min, "%d %s* models, expected %d", done, prefix, min);
}

Test(onnx_export, zfnet_rendering_at_opsets_9_to_17_matches_pytorch) { run_all("zfnet_op", 4); }
Test(onnx_export, alexnet_with_lrn_at_opsets_9_to_17_matches_pytorch) { run_all("alexnet_lrn_op", 4); }
Test(onnx_export, pad_nodes_computed_flatten_matmul_add_match_pytorch) { run_all("spell_op", 4); }
Test(onnx_export, symbolic_batch_export_matches_pytorch) { run_all("spell_dyn", 1); }

/* The LRN layers take PyTorch's window (size/2 channels before the centre) and constants. */
Test(onnx_export, lrn_parameters_read_from_the_graph)
{
    NEED_FIXTURES();
    zf_net *net = load("zfnet_op13");
    const zf_layer *n1 = layer(net, "norm1"), *n2 = layer(net, "norm2");
    cr_expect(n1->op == ZF_OP_LRN && n1->lrn.size == 30 && n1->lrn.front == 15 && n1->lrn.k == 1.0f &&
              n1->lrn.beta == 0.75f && fabsf(n1->lrn.alpha - 1e-4f) < 1e-10f,
              "norm1: size %d front %d alpha %g beta %g k %g", n1->lrn.size, n1->lrn.front, n1->lrn.alpha,
              n1->lrn.beta, n1->lrn.k);
    cr_expect(n2->op == ZF_OP_LRN && n2->lrn.size == 50 && n2->lrn.front == 25, "norm2: size %d front %d",
              n2->lrn.size, n2->lrn.front);
    zf_net_free(net);
    net = load("alexnet_lrn_op9");
    n1 = layer(net, "norm1");
    cr_expect(n1->lrn.size == 5 && n1->lrn.front == 2 && n1->lrn.k == 2.0f, "alexnet norm1: size %d front %d k %g",
              n1->lrn.size, n1->lrn.front, n1->lrn.k);
    zf_net_free(net);
}

/* alpha 3e-4 written into the graph: loaded as such, matching PyTorch's LRN with alpha 3e-4. */
Test(onnx_export, edited_alpha_is_read_not_assumed) { run_all("alpha3_op11", 1); }

Test(onnx_export, full_size_zfnet_rendering_matches_pytorch_and_the_builtin_shapes)
{
    NEED_FIXTURES();
    row rows[64];
    int n = read_rows("ok", rows, 64), found = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].f[1], "zfnet_full"))
            continue;
        found = 1;
        zf_net *net = run_model("zfnet_full", rows[i].f[2], NULL), *b = NULL;
        cr_expect_str_eq(net->arch, "zfnet-pytorch", "recognised as %s", net->arch);
        cr_assert_eq(zf_net_new_builtin("zfnet-pytorch", &b), ZF_OK, "%s", zf_last_error());
        /* the export's layers are the built-in's, in the same order and shapes */
        cr_assert_eq(net->n_layers, b->n_layers, "%d layers vs %d", net->n_layers, b->n_layers);
        for (int l = 0; l < b->n_layers; l++) {
            const zf_layer *p = &net->layers[l], *q = &b->layers[l];
            cr_expect(p->op == q->op && !strcmp(p->name, q->name) && p->out_c == q->out_c &&
                          p->out_h == q->out_h && p->out_w == q->out_w,
                      "layer %d: %s %dx%dx%d vs built-in %s %dx%dx%d", l, p->name, p->out_c, p->out_h, p->out_w,
                      q->name, q->out_c, q->out_h, q->out_w);
            if (p->op == ZF_OP_LRN)
                cr_expect(!memcmp(&p->lrn, &q->lrn, sizeof p->lrn), "%s: LRN parameters differ", p->name);
        }
        cr_expect_eq(zf_net_param_count(net), zf_net_param_count(b));
        zf_net_free(b);
        zf_net_free(net);
    }
    cr_expect(found, "no zfnet_full case");
}

Test(onnx_export, deconv_matches_pytorch)
{
    NEED_FIXTURES();
    row rows[16];
    int n = read_rows("deconv", rows, 16);
    cr_expect(n >= 3, "%d deconv cases", n);
    for (int i = 0; i < n; i++) {
        zf_tensor *x;
        const char *model = rows[i].f[1];
        zf_net *net = load(model);
        char name[300];
        snprintf(name, sizeof name, "%s.x.npy", model);
        x = npy(name);
        int b = (int)x->shape[0];
        cr_assert_eq(zf_net_reserve(net, b), ZF_OK);
        cr_assert_eq(zf_net_forward(net, zf_tensor_f32(x), b), ZF_OK, "%s", zf_last_error());
        int conv = zf_net_find_conv(net, rows[i].f[2]);
        cr_assert(conv >= 0, "%s: no %s", model, rows[i].f[2]);
        int ch[8], ys[8], xs[8];
        for (int k = 0; k < b; k++) {
            ch[k] = atoi(rows[i].f[3]);
            ys[k] = xs[k] = -1;
        }
        zf_deconv_req req = {.layer = conv, .mode = ZF_DECONV_UNIT, .channel = ch, .y = ys, .x = xs};
        float *out = malloc(sizeof(float) * (size_t)x->size);
        cr_assert_eq(zf_net_deconv(net, out, b, &req), ZF_OK, "%s", zf_last_error());
        zf_tensor *ref = npy(rows[i].f[4]);
        cr_assert_eq(ref->size, x->size);
        char what[300];
        snprintf(what, sizeof what, "%s deconv %s channel %s", model, rows[i].f[2], rows[i].f[3]);
        cr_expect(tu_max_abs(zf_tensor_f32(ref), (size_t)ref->size) > 0, "%s: empty reference", what);
        expect_close(what, out, zf_tensor_f32(ref), (size_t)ref->size);
        free(out);
        zf_tensor_free(ref);
        zf_tensor_free(x);
        zf_net_free(net);
    }
}

Test(onnx_export, occlusion_matches_pytorch_brute_force)
{
    NEED_FIXTURES();
    row rows[16];
    int n = read_rows("occl", rows, 16);
    cr_expect(n >= 2, "%d occlusion cases", n);
    for (int i = 0; i < n; i++) {
        const char *model = rows[i].f[1];
        zf_net *net = load(model);
        char name[300];
        snprintf(name, sizeof name, "%s.x.npy", model);
        zf_tensor *x = npy(name), *feat = npy(rows[i].f[7]), *prob = npy(rows[i].f[8]);
        for (int method = 0; method < 2; method++) {
            zf_occlusion_params p;
            zf_occlusion_params_default(&p);
            p.patch = atoi(rows[i].f[2]);
            p.stride = atoi(rows[i].f[3]);
            p.layer = zf_net_find_conv(net, rows[i].f[4]);
            p.channel = atoi(rows[i].f[5]);
            p.cls = atoi(rows[i].f[6]);
            p.method = method ? ZF_OCCLUSION_INCREMENTAL : ZF_OCCLUSION_BRUTE;
            zf_occlusion_result *r = NULL;
            cr_assert_eq(zf_occlusion_run(net, zf_tensor_f32(x), &p, &r), ZF_OK, "%s", zf_last_error());
            cr_assert_eq((int64_t)r->rows * r->cols, feat->size, "%s: %dx%d positions", model, r->rows, r->cols);
            char what[300];
            snprintf(what, sizeof what, "%s occlusion (%s) feature", model, method ? "incremental" : "brute");
            expect_close(what, r->feature, zf_tensor_f32(feat), (size_t)feat->size);
            snprintf(what, sizeof what, "%s occlusion (%s) probability", model, method ? "incremental" : "brute");
            expect_close(what, r->prob, zf_tensor_f32(prob), (size_t)prob->size);
            zf_occlusion_result_free(r);
        }
        zf_tensor_free(x);
        zf_tensor_free(feat);
        zf_tensor_free(prob);
        zf_net_free(net);
    }
}

/* Each edited copy: refused, the message one line that names the file and the node. */
Test(onnx_export, wrong_lrn_constant_is_refused_in_one_line_naming_the_node)
{
    NEED_FIXTURES();
    row rows[16];
    int n = read_rows("refuse", rows, 16);
    cr_expect(n >= 6, "%d refusal cases", n);
    for (int i = 0; i < n; i++) {
        char name[300];
        snprintf(name, sizeof name, "%s.onnx", rows[i].f[1]);
        zf_net *net = NULL;
        zf_status st = zf_onnx_load(fx(name), NULL, &net);
        cr_expect_neq(st, ZF_OK, "%s loaded", name);
        cr_expect_null(net);
        const char *msg = zf_last_error();
        char quoted[300];
        snprintf(quoted, sizeof quoted, "node '%s'", rows[i].f[2]);
        cr_expect(strstr(msg, quoted) && strstr(msg, name) && !strchr(msg, '\n'),
                  "%s: message does not name %s in one line: %s", name, quoted, msg);
        zf_net_free(net);
    }
    /* and through the program: exit status 1, one line on stderr */
    const char *dir = tu_tmpdir("onnx_export_refuse");
    char model[300];
    snprintf(model, sizeof model, "%s", fx("bad_alpha_per_channel.onnx"));
    int rc = tu_system("'%s' info --model '%s' >'%s/out' 2>'%s/err'", tu_build("tools/zfviz"), model, dir, dir);
    cr_expect(rc != 0, "zfviz info accepted the edited graph");
    char path[600], line[2048];
    snprintf(path, sizeof path, "%s/err", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    int lines = 0;
    while (fgets(line, sizeof line, f))
        lines++;
    fclose(f);
    cr_expect_eq(lines, 1, "%d lines on stderr", lines);
}

/* PyTorch's LocalResponseNorm, written from its definition in float64: x over (k + alpha *
 * avg_pool(x^2 over `size` channels zero-padded size/2 before and (size-1)/2 after))^beta. */
static double torch_lrn(const float *x, int c, int hw, int ch, int q, int size, double alpha, double beta, double k)
{
    double s = 0;
    for (int j = ch - size / 2; j <= ch + (size - 1) / 2; j++)
        if (j >= 0 && j < c)
            s += (double)x[(size_t)j * hw + q] * x[(size_t)j * hw + q];
    return x[(size_t)ch * hw + q] / pow(k + alpha * s / size, beta);
}

Test(onnx_export, builtin_lrn_of_sizes_30_and_50_matches_pytorch_formula_in_float64)
{
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("zfnet-pytorch", &net), ZF_OK, "%s", zf_last_error());
    const char *names[2] = {"norm1", "norm2"};
    const int sizes[2] = {30, 50}; /* nn.LocalResponseNorm(size=30) after conv1, (size=50) after conv2 */
    for (int t = 0; t < 2; t++) {
        const zf_layer *l = layer(net, names[t]);
        int n = 2, c = l->in_c, hw = 7 * 5;
        size_t count = (size_t)n * c * hw;
        float *x = malloc(sizeof(float) * count), *y = malloc(sizeof(float) * count);
        double *ref = malloc(sizeof(double) * count);
        tu_fill_uniform(x, count, 41 + (uint64_t)t, -300, 300);
        zf_lrn_forward(y, x, n, c, hw, &l->lrn);
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++)
                for (int q = 0; q < hw; q++)
                    ref[((size_t)i * c + ch) * hw + q] =
                        torch_lrn(x + (size_t)i * c * hw, c, hw, ch, q, sizes[t], 1e-4, 0.75, 1);
        size_t at;
        double e = tu_max_rel_err(y, ref, count, 1e-6, &at);
        cr_expect(e < 1e-5, "%s (%d channels, size %d): relative error %g at %zu", names[t], c, l->lrn.size, e, at);
        free(x);
        free(y);
        free(ref);
    }
    zf_net_free(net);
}

/* The layer table of `zfviz info --arch zfnet-pytorch` against the rendering's known shapes. */
Test(onnx_export, info_of_zfnet_pytorch_prints_the_rendering_shapes)
{
    const char *dir = tu_tmpdir("onnx_export_info");
    int rc = tu_system("'%s' info --arch zfnet-pytorch >'%s/out' 2>&1", tu_build("tools/zfviz"), dir);
    cr_assert_eq(rc, 0, "zfviz info --arch zfnet-pytorch failed");
    char path[600];
    snprintf(path, sizeof path, "%s/out", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    static const struct {
        const char *name, *shape;
    } want[] = {{"conv1", "conv 7x7/2 pad 1,1,1,1"}, {"conv1", "96x110x110"},
                {"norm1", "lrn size 30 alpha 0.0001 beta 0.75 k 1"}, {"norm1", "96x110x110"},
                {"pool1", "maxpool 3x3/2 pad 1,1,1,1"}, {"pool1", "96x55x55"},
                {"conv2", "conv 5x5/2 pad 0,0,0,0"}, {"conv2", "256x26x26"},
                {"norm2", "lrn size 50"}, {"norm2", "256x26x26"}, {"pool2", "256x13x13"},
                {"conv3", "384x13x13"}, {"conv4", "384x13x13"}, {"conv5", "256x13x13"},
                {"pool5", "maxpool 3x3/2 pad 0,0,0,0"}, {"pool5", "256x6x6"}, {"flatten", "9216"},
                {"fc6", "37,752,832"}, {"fc7", "4096"}, {"fc8", "1000"}, {"total", "62,357,608"}};
    int seen[sizeof want / sizeof want[0]] = {0};
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char first[64] = "";
        if (sscanf(line, "%*d %63s", first) != 1)
            sscanf(line, "%63s", first);
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            if (!strcmp(first, want[i].name) && strstr(line, want[i].shape))
                seen[i] = 1;
    }
    fclose(f);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(seen[i], "no line for %s with %s in the table", want[i].name, want[i].shape);
}
