/* ONNX import against independent references: the zoo's bvlc_alexnet and zfnet512 graphs and
 * torchvision AlexNet exports (made with seeded random weights by tests/fixtures/gen_onnx.py, whose
 * float64 references come from PyTorch or an evaluator checked against ONNX's node tests), the
 * zoo's light models as they are, refusals with one-line messages, corrupt and truncated files,
 * layer names, preprocessing and model lookup by name. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "zf/net.h"
#include "zf/onnx.h"
#include "zf/tensor.h"

/* Largest |a - ref| / max(|ref|, 1e-2 * max|ref|): elementwise relative error, with values a
 * hundred times below the tensor's largest counted at that floor. A float32 sum of thousands of
 * terms is good to about 1e-7 of the terms' size, not of a small result they cancel to (conv1's
 * outputs near 0.3 are sums of products near 100). The log also gives max|a - ref| / max|ref|. */
#define REL_TOL 1e-4
#define REL_FLOOR 1e-2

/* A file made by gen_onnx.py (in the fixture folder's onnx/). */
static const char *fx(const char *name) { return tu_fixturef("onnx/%s", name); }

static char *read_text(const char *path) { return tu_read_file(path, NULL); }

static uint8_t *read_bytes(const char *path, size_t *len)
{
    char *s = read_text(path);
    cr_assert(s, "cannot read %s", path);
    struct stat st;
    stat(path, &st);
    *len = (size_t)st.st_size;
    return (uint8_t *)s;
}

/* Runs the model on its input and compares every listed value; returns the worst error. */
static double check_ok_case(char **f, int nf)
{
    const char *model = f[1], *input = f[2], *arch = f[3];
    zf_net *net = NULL;
    zf_status st = zf_onnx_load(fx(model), NULL, &net);
    cr_assert_eq(st, ZF_OK, "%s: %s", model, zf_last_error());
    cr_expect_str_eq(net->arch, arch, "%s: recognised as %s, expected %s", model, net->arch, arch);
    zf_tensor *x = NULL;
    cr_assert_eq(zf_onnx_read_tensor(fx(input), &x), ZF_OK, "%s", zf_last_error());
    int n = (int)x->shape[0];
    cr_assert_eq(x->size, n * zf_net_in_size(net), "%s: input size", model);
    cr_assert_eq(zf_net_reserve(net, n), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_forward(net, zf_tensor_f32(x), n), ZF_OK, "%s", zf_last_error());
    double worst = 0;
    for (int k = 4; k < nf; k++) {
        char *eq = strrchr(f[k], '=');
        cr_assert(eq);
        *eq = 0;
        const char *value = f[k], *ref_file = eq + 1;
        int li = zf_net_find(net, value);
        cr_assert_geq(li, 0, "%s: no layer computes graph value '%s'", model, value);
        zf_tensor *ref = NULL;
        cr_assert_eq(zf_onnx_read_tensor(fx(ref_file), &ref), ZF_OK, "%s", zf_last_error());
        size_t cnt = (size_t)(n * zf_layer_out_size(&net->layers[li]));
        cr_assert_eq((size_t)ref->size, cnt, "%s: '%s' (%s) has %zu values, reference %lld", model, value,
                     net->layers[li].name, cnt, (long long)ref->size);
        size_t where;
        const float *r = zf_tensor_f32(ref);
        double floor = REL_FLOOR * tu_max_abs(r, cnt);
        double err = tu_max_rel_err_f(zf_net_act(net, li), r, cnt, floor > 0 ? floor : 1e-30, &where);
        cr_expect_leq(err, REL_TOL, "%s: '%s' (layer %s): relative error %.3g at index %zu (%g vs %g)", model,
                      value, net->layers[li].name, err, where, zf_net_act(net, li)[where], r[where]);
        double scale = 0;
        for (size_t i = 0; i < cnt; i++)
            scale = fmax(scale, fabs((double)zf_net_act(net, li)[i] - r[i]));
        cr_log_info("%s %s (%s): max rel err %.2g, max abs err / max|ref| %.2g", model, value,
                    net->layers[li].name, err, scale / (floor / REL_FLOOR));
        worst = fmax(worst, err);
        zf_tensor_free(ref);
    }
    zf_tensor_free(x);
    zf_net_free(net);
    return worst;
}

/* Runs every case of cases.txt whose model name passes `want`. */
static int run_cases(const char *kind, int (*want)(const char *model))
{
    char *text = read_text(tu_fixture("onnx/cases.txt"));
    cr_assert(text, "no %s: the fixtures were not generated (ctest runs tests/fixtures/gen_onnx.py)",
              tu_fixture("onnx/cases.txt"));
    int count = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[32];
        int nf = 0;
        char *s2 = NULL;
        for (char *t = strtok_r(line, "\t", &s2); t && nf < 32; t = strtok_r(NULL, "\t", &s2))
            f[nf++] = t;
        if (nf < 2 || strcmp(f[0], kind) || !want(f[1]))
            continue;
        if (!strcmp(kind, "ok")) {
            check_ok_case(f, nf);
        } else {
            zf_net *net = NULL;
            zf_status st = zf_onnx_load(fx(f[1]), NULL, &net);
            const char *msg = zf_last_error();
            cr_expect_neq(st, ZF_OK, "%s: loaded, but the engine cannot run it", f[1]);
            cr_expect_null(strchr(msg, '\n'), "%s: message is not one line: %s", f[1], msg);
            for (int k = 2; k < nf; k++)
                cr_expect(strstr(msg, f[k]), "%s: message lacks \"%s\": %s", f[1], f[k], msg);
            cr_log_info("%s: %s", f[1], msg);
            zf_net_free(net);
        }
        count++;
    }
    free(text);
    return count;
}


static int is_full(const char *m) { return strstr(m, "_full.") != NULL; }
static int is_small(const char *m) { return !is_full(m); }
static int any(const char *m) { (void)m; return 1; }

Test(onnx, zoo_graphs_full_size_match_float64_references)
{
    cr_assert_eq(run_cases("ok", is_full), 3, "expected the three full-size models");
}

Test(onnx, every_zoo_opset_and_converter_form_matches_references)
{
    cr_assert_geq(run_cases("ok", is_small), 20);
}

Test(onnx, unsupported_graphs_are_refused_with_one_line_naming_node_op_reason)
{
    cr_assert_geq(run_cases("refuse", any), 13);
}

/* ---------------------------------------------------------------- the light models */

/* A file made by gen_light.py (in the fixture folder's light/): the ONNX project's light zoo models,
 * rebuilt byte for byte, with float64 references for a seeded input. */
static const char *light_fx(const char *stem, const char *suffix)
{
    return tu_fixturef("light/light_%s%s", stem, suffix);
}

/* Compares layer `li`'s output with the reference in `ref_file`; returns the relative error. */
static double light_compare(const zf_net *net, int li, const char *ref_file)
{
    zf_tensor *ref = NULL;
    cr_assert_eq(zf_onnx_read_tensor(ref_file, &ref), ZF_OK, "%s", zf_last_error());
    size_t n = (size_t)zf_layer_out_size(&net->layers[li]);
    cr_assert_eq((size_t)ref->size, n, "%s: %lld values, layer %s has %zu", ref_file, (long long)ref->size,
                 net->layers[li].name, n);
    const float *r = zf_tensor_f32(ref);
    double floor = REL_FLOOR * tu_max_abs(r, n);
    size_t where;
    double err = tu_max_rel_err_f(zf_net_act(net, li), r, n, floor > 0 ? floor : 1e-30, &where);
    cr_expect_leq(err, REL_TOL, "%s: relative error %.3g at %zu (%g vs %g)", ref_file, err, where,
                  zf_net_act(net, li)[where], r[where]);
    zf_tensor_free(ref);
    return err;
}

static void check_light(const char *stem, const char *first_weight_layer)
{
    const char *mp = light_fx(stem, ".onnx");
    struct stat st;
    cr_assert(stat(mp, &st) == 0, "no %s: the fixtures were not generated (ctest runs tests/fixtures/gen_light.py)",
              mp);
    zf_net *net = NULL;
    cr_assert_eq(zf_onnx_load(mp, NULL, &net), ZF_OK, "%s", zf_last_error());
    cr_expect_str_eq(net->arch, stem, "the light graph is recognised as %s", stem);
    /* ConstantOfShape(value 0.02) feeds every weight and bias */
    int li = zf_net_find(net, first_weight_layer);
    cr_assert_geq(li, 0);
    const zf_layer *l = &net->layers[li];
    int64_t bad = -1;
    for (int64_t i = 0; i < l->weight_count && bad < 0; i++)
        if (l->weight[i] != 0.02f)
            bad = i;
    cr_expect_eq(bad, -1, "%s weight %lld is %g, not 0.02", first_weight_layer, (long long)bad,
                 bad >= 0 ? l->weight[bad] : 0.0f);
    for (int64_t i = 0; i < l->bias_count; i++)
        cr_assert_eq(l->bias[i], 0.02f, "bias %lld", (long long)i);
    zf_tensor *x = NULL;
    cr_assert_eq(zf_onnx_read_tensor(light_fx(stem, "_input_0.pb"), &x), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(x->size, zf_net_in_size(net));
    cr_assert_eq(zf_net_reserve(net, 1), ZF_OK);
    cr_assert_eq(zf_net_forward(net, zf_tensor_f32(x), 1), ZF_OK, "%s", zf_last_error());
    /* the softmax is 1/1000 whatever the input; relu1 is where the input shows */
    light_compare(net, zf_net_find(net, "relu1"), light_fx(stem, "_relu1.pb"));
    light_compare(net, net->n_layers - 1, light_fx(stem, "_output_0.pb"));
    zf_tensor_free(x);
    zf_net_free(net);
}

Test(onnx, light_models_load_as_they_are_and_give_their_expected_outputs)
{
    check_light("bvlc_alexnet", "conv1");
    check_light("zfnet512", "fc8");
}

/* ---------------------------------------------------------------- names and preprocessing */

Test(onnx, layers_get_caffe_names_by_position_and_keep_graph_names)
{
    static const char *const alex[] = {"conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2",
                                       "pool2", "conv3", "relu3", "conv4", "relu4", "conv5", "relu5",
                                       "pool5", "flatten", "fc6", "relu6", "drop6", "fc7", "relu7",
                                       "drop7", "fc8", "prob"};
    static const char *const graph[] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9",
                                        "r10", "r11", "r12", "r13", "r14", "r15", "r16", "r17", "r18",
                                        "r20", "r21", "r22", "r24", "prob_1"};
    zf_net *net = NULL;
    cr_assert_eq(zf_onnx_load(fx("bvlc_alexnet_op9.onnx"), NULL, &net), ZF_OK, "%s", zf_last_error());
    zf_onnx_name names[32];
    int n = zf_onnx_names(net, names, 32);
    cr_assert_eq(n, 24);
    for (int i = 0; i < n; i++) {
        cr_expect_str_eq(names[i].caffe, alex[i], "layer %d", i);
        cr_expect_str_eq(names[i].graph, graph[i], "layer %d", i);
    }
    cr_expect_eq(zf_net_find(net, "conv5"), zf_net_find(net, "r12"));
    cr_expect_eq(zf_net_find(net, "relu5"), zf_net_find(net, "r13"));
    cr_expect_eq(zf_net_find_conv(net, "conv5"), 12);
    /* asymmetric pads [0,0,1,1] of pool5 */
    const zf_layer *p5 = &net->layers[zf_net_find(net, "pool5")];
    cr_expect(p5->win.pt == 0 && p5->win.pl == 0 && p5->win.pb == 1 && p5->win.pr == 1);
    cr_expect_eq(p5->out_h, 6);
    const zf_layer *n1 = &net->layers[zf_net_find(net, "norm1")];
    cr_expect(n1->lrn.size == 5 && n1->lrn.front == 2 && n1->lrn.k == 1.0f &&
              fabsf(n1->lrn.alpha - 1e-4f) < 1e-10f && n1->lrn.beta == 0.75f);
    cr_expect_eq(net->layers[zf_net_find(net, "conv2")].groups, 2);
    zf_net_free(net);

    /* torchvision: max pool 5, then the adaptive pool exported as AveragePool, Flatten, no dropout */
    cr_assert_eq(zf_onnx_load(fx("torchvision_alexnet_op11.onnx"), NULL, &net), ZF_OK, "%s", zf_last_error());
    static const char *const tv[] = {"conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3",
                                     "relu3", "conv4", "relu4", "conv5", "relu5", "pool5", "avgpool",
                                     "flatten", "fc6", "relu6", "fc7", "relu7", "fc8"};
    cr_assert_eq(net->n_layers, 20);
    for (int i = 0; i < 20; i++)
        cr_expect_str_eq(net->layers[i].name, tv[i], "layer %d", i);
    cr_expect_str_eq(net->layers[0].graph_name, "/features/features.0/Conv_output_0");
    zf_net_free(net);
}

Test(onnx, preprocessing_comes_from_the_model_table_and_can_be_overridden)
{
    zf_preproc p;
    cr_assert_eq(zf_onnx_preproc_for("zfnet512", &p), 1);
    cr_expect(p.order == ZF_COLOR_BGR && p.scale == 255.0f && p.resize == ZF_RESIZE_EXACT);
    cr_expect(p.mean[0] == 123.68f && p.mean[1] == 116.779f && p.mean[2] == 103.939f);
    cr_expect(p.std[0] == 1.0f && p.std[2] == 1.0f);
    cr_assert_eq(zf_onnx_preproc_for("torchvision-alexnet", &p), 1);
    cr_expect(p.order == ZF_COLOR_RGB && p.scale == 1.0f && p.resize == ZF_RESIZE_SHORT_CROP &&
              p.resize_short == 256 && p.mean[0] == 0.485f && p.std[2] == 0.225f);
    cr_assert_eq(zf_onnx_preproc_for("something-else", &p), 0);
    cr_expect(p.resize_short == 256);

    cr_assert_eq(zf_onnx_preproc_parse("zoo,resize=short:240,std=2:3:4", &p), ZF_OK, "%s", zf_last_error());
    cr_expect(p.order == ZF_COLOR_BGR && p.resize == ZF_RESIZE_SHORT_CROP && p.resize_short == 240);
    cr_expect(p.std[0] == 2.0f && p.std[1] == 3.0f && p.std[2] == 4.0f && p.mean[0] == 123.68f);
    cr_assert_eq(zf_onnx_preproc_parse("order=rgb,scale=1,mean=0.5/0.5/0.5", &p), ZF_OK);
    cr_expect(p.order == ZF_COLOR_RGB && p.scale == 1.0f && p.mean[1] == 0.5f);
    zf_preproc before = p;
    cr_expect_neq(zf_onnx_preproc_parse("order=rgb,scale=7", &p), ZF_OK);
    cr_expect(strstr(zf_last_error(), "scale=7"), "%s", zf_last_error());
    cr_expect_neq(zf_onnx_preproc_parse("mean=1:2", &p), ZF_OK);
    cr_expect_neq(zf_onnx_preproc_parse("std=1:0:1", &p), ZF_OK);
    cr_expect_eq(memcmp(&p, &before, sizeof p), 0, "a bad spec leaves the preprocessing alone");

    zf_net *net = NULL;
    zf_onnx_options o = {.preproc = "torchvision,resize=exact"};
    cr_assert_eq(zf_onnx_load(fx("bvlc_alexnet_full.onnx"), &o, &net), ZF_OK, "%s", zf_last_error());
    cr_expect_str_eq(net->arch, "bvlc_alexnet");
    cr_expect(net->pre.order == ZF_COLOR_RGB && net->pre.resize == ZF_RESIZE_EXACT && net->pre.scale == 1.0f);
    char line[256];
    zf_onnx_preproc_format(&net->pre, net->in_h, net->in_w, line, sizeof line);
    cr_expect(strstr(line, "RGB, 0-1, mean 0.485 0.456 0.406") && strstr(line, "224x224 (no crop)"), "%s", line);
    zf_net_free(net);
    o.preproc = "bgr";
    cr_expect_neq(zf_onnx_load(fx("bvlc_alexnet_op9.onnx"), &o, &net), ZF_OK);
    cr_expect_null(net);
}

/* ---------------------------------------------------------------- robustness */

static void load_or_fail_cleanly(const uint8_t *data, size_t len, const char *what)
{
    zf_net *net = NULL;
    zf_onnx_options o = {.max_params = 1 << 24};
    zf_status st = zf_onnx_load_buffer(data, len, what, &o, &net);
    if (st == ZF_OK) {
        cr_assert(net);
        zf_net_free(net);
    } else {
        cr_assert_null(net, "%s: failed (%s) but returned a net", what, zf_last_error());
        cr_assert(zf_last_error()[0], "%s: failed without a message", what);
        cr_assert_null(strchr(zf_last_error(), '\n'), "%s: %s", what, zf_last_error());
    }
}

Test(onnx, truncated_and_corrupted_files_are_errors_never_crashes)
{
    size_t len;
    uint8_t *data = read_bytes(fx("zfnet512_op7.onnx"), &len);
    char what[64];
    /* every cut in the header, then 300 spread over the file */
    for (size_t cut = 0; cut < 256 && cut < len; cut++) {
        snprintf(what, sizeof what, "cut at %zu", cut);
        load_or_fail_cleanly(data, cut, what);
    }
    for (int k = 1; k < 300; k++) {
        size_t cut = (size_t)((double)len * k / 300);
        snprintf(what, sizeof what, "cut at %zu", cut);
        zf_net *net = NULL;
        cr_expect_neq(zf_onnx_load_buffer(data, cut, what, NULL, &net), ZF_OK, "%s loaded", what);
        zf_net_free(net);
    }
    /* flipped bytes in the graph part (the weights are at the end) */
    uint64_t s = 12345;
    for (int k = 0; k < 400; k++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, data, len);
        for (int j = 0; j < 3; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)((s >> 33) % (len < 4096 ? len : 4096));
            copy[at] ^= (uint8_t)(1u << ((s >> 20) & 7));
        }
        snprintf(what, sizeof what, "flip set %d", k);
        load_or_fail_cleanly(copy, len, what);
        free(copy);
    }
    free(data);
    /* deep nesting: a TypeProto inside a TypeProto ... */
    size_t n = 200000;
    uint8_t *deep = malloc(n);
    for (size_t i = 0; i + 1 < n; i += 2) {
        deep[i] = 0x3a; /* field 7 (graph), length-delimited: nested junk */
        deep[i + 1] = 0x80;
    }
    load_or_fail_cleanly(deep, n, "deep");
    free(deep);
    load_or_fail_cleanly((const uint8_t *)"", 0, "empty");
    zf_net *net = NULL;
    cr_expect_neq(zf_onnx_load(tu_src("tests/onnx-corpus"), NULL, &net), ZF_OK, "a directory is not a model");
    cr_expect_neq(zf_onnx_load("/nonexistent/model.onnx", NULL, &net), ZF_OK);
    cr_expect(strstr(zf_last_error(), "/nonexistent/model.onnx"));
}

Test(onnx, fuzzing_corpus_and_crash_reproducers_load_or_fail_cleanly)
{
    const char *dir = tu_src("tests/onnx-corpus");
    DIR *d = opendir(dir);
    cr_assert(d, "%s missing", dir);
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "README.md"))
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        uint8_t *data = read_bytes(path, &len);
        load_or_fail_cleanly(data, len, e->d_name);
        free(data);
        count++;
    }
    closedir(d);
    cr_expect_geq(count, 10, "corpus has %d files", count);
}

Test(onnx, external_data_is_read_from_the_model_folder_only)
{
    zf_net *net = NULL;
    zf_status st = zf_onnx_load(fx("refuse_external_escape.onnx"), NULL, &net);
    cr_expect_neq(st, ZF_OK);
    cr_expect(strstr(zf_last_error(), "leaves the model's folder"), "%s", zf_last_error());
    /* the same bytes from memory have no folder to read from */
    size_t len;
    uint8_t *data = read_bytes(fx("zfnet512_external.onnx"), &len);
    st = zf_onnx_load_buffer(data, len, "mem", NULL, &net);
    cr_expect_eq(st, ZF_ERR_UNSUPPORTED, "%s", zf_last_error());
    cr_expect(strstr(zf_last_error(), "needs the model's folder"), "%s", zf_last_error());
    free(data);
}

Test(onnx, tensor_files_round_trip)
{
    int64_t shape[3] = {2, 3, 5};
    zf_tensor *t = zf_tensor_new(ZF_DTYPE_F32, 3, shape);
    tu_fill_uniform(zf_tensor_f32(t), 30, 3, -2, 2);
    char path[1024];
    snprintf(path, sizeof path, "%s/t.pb", tu_tmpdir("onnx_tensor"));
    cr_assert_eq(zf_onnx_write_tensor(path, "t", t), ZF_OK, "%s", zf_last_error());
    zf_tensor *u = NULL;
    cr_assert_eq(zf_onnx_read_tensor(path, &u), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(u->ndim, 3);
    cr_assert(u->shape[0] == 2 && u->shape[1] == 3 && u->shape[2] == 5);
    cr_assert_eq(memcmp(u->data, t->data, 30 * sizeof(float)), 0);
    zf_tensor_free(t);
    zf_tensor_free(u);
}

Test(onnx, models_are_found_by_name_in_the_model_folder)
{
    const char *dir = tu_tmpdir("onnx_models");
    char src[1024];
    snprintf(src, sizeof src, "%s", fx("zfnet512_op9.onnx"));
    cr_assert_eq(tu_system("cp '%s' '%s/zfnet512-3.onnx' && cp '%s' '%s/zfnet512-12.onnx' && "
                           "cp '%s' '%s/bvlcalexnet-9.onnx'", src, dir, src, dir, src, dir), 0);
    setenv("ZFVIZ_MODELS", dir, 1);
    char path[4096], want[4096];
    cr_assert_eq(zf_onnx_resolve_model("zfnet512", path, sizeof path), ZF_OK, "%s", zf_last_error());
    snprintf(want, sizeof want, "%s/zfnet512-12.onnx", dir);
    cr_expect_str_eq(path, want, "the highest opset is picked");
    cr_assert_eq(zf_onnx_resolve_model("bvlc_alexnet", path, sizeof path), ZF_OK, "%s", zf_last_error());
    snprintf(want, sizeof want, "%s/bvlcalexnet-9.onnx", dir);
    cr_expect_str_eq(path, want);
    cr_expect_neq(zf_onnx_resolve_model("vgg16", path, sizeof path), ZF_OK);
    cr_expect(strstr(zf_last_error(), dir), "the message says where it looked: %s", zf_last_error());
    zf_net *net = NULL;
    cr_assert_eq(zf_onnx_open_model("zfnet512", NULL, &net), ZF_OK, "%s", zf_last_error());
    cr_expect_eq(net->n_layers, 22);
    zf_net_free(net);
    unsetenv("ZFVIZ_MODELS");
    char buf[1024];
    setenv("HOME", "/home/someone", 1);
    unsetenv("XDG_CACHE_HOME");
    cr_expect_str_eq(zf_onnx_model_dir(buf, sizeof buf), "/home/someone/.cache/zfviz/models");
}
