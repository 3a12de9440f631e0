/* Occlusion maps proven against a naive loop of one full forward per occluded image (batch 1,
 * written here, independent of the library's batching and of its incremental recomputation):
 * the built-in nets at a few positions, small custom nets densely, every way of recomputing a
 * convolution, and the parameter errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "zf/net.h"
#include "zf/occlusion.h"
#include "zf/tensor.h"
#include "zf/onnx.h"

/* He-uniform conv weights (variance 2 / fan_in) and small biases, so that activations neither
 * vanish nor explode through the layers and the maps are not flat; fully connected layers get
 * variance 1 / fan_in, which keeps the logits within about +-5. (With He gain there too they reach
 * +-15 and float32 alone, in any two summation orders, moves probabilities by ~5e-6 relative, too
 * close to the 1e-5 tolerance to tell a bug from rounding.) */
static void he_init(zf_net *net, uint64_t seed)
{
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_CONV && l->op != ZF_OP_FC)
            continue;
        const double fan_in = (double)l->weight_count / l->out_c;
        const float a = (float)sqrt((l->op == ZF_OP_CONV ? 6.0 : 3.0) / fan_in);
        tu_fill_uniform(l->weight, (size_t)l->weight_count, seed + 2 * i, -a, a);
        if (l->bias)
            tu_fill_uniform(l->bias, (size_t)l->bias_count, seed + 2 * i + 1, -0.05f, 0.05f);
    }
}

static zf_net *builtin(const char *arch, uint64_t seed)
{
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin(arch, &net), ZF_OK, "%s: %s", arch, zf_last_error());
    he_init(net, seed);
    return net;
}

typedef struct ref_maps {
    int rows, cols, channel, cls, feat_layer;
    double *feature, *prob;
    double *probs_all; /* (positions, classes), to judge near ties of the argmax */
    int32_t *argmax;
    int n_classes;
} ref_maps;

static void ref_free(ref_maps *r)
{
    free(r->feature);
    free(r->prob);
    free(r->probs_all);
    free(r->argmax);
}

/* Class probabilities of one output row in float64 (the row is already a softmax when the net
 * ends with one). */
static void row_probs(const zf_net *net, const float *row, int nc, double *p)
{
    if (net->layers[net->n_layers - 1].op == ZF_OP_SOFTMAX) {
        for (int k = 0; k < nc; k++)
            p[k] = row[k];
        return;
    }
    double m = row[0], s = 0;
    for (int k = 1; k < nc; k++)
        m = row[k] > m ? row[k] : m;
    for (int k = 0; k < nc; k++)
        s += exp(row[k] - m);
    for (int k = 0; k < nc; k++)
        p[k] = exp(row[k] - m) / s;
}

/* The naive reference: conv layer `conv` (its ReLU when one follows), channel and class as the
 * parameters say or chosen from the unoccluded forward. */
static void naive_maps(zf_net *net, const float *input, int patch, int stride, float fill, int conv,
                       int channel, int cls, ref_maps *r)
{
    cr_assert_eq(zf_net_reserve(net, 1), ZF_OK);
    const int nc = (int)zf_layer_out_size(&net->layers[net->n_layers - 1]);
    const int fl = conv + 1 < net->n_layers && net->layers[conv + 1].op == ZF_OP_RELU ? conv + 1 : conv;
    const zf_layer *f = &net->layers[fl];
    const size_t plane = (size_t)f->out_h * f->out_w, isz = (size_t)zf_net_in_size(net);
    double *p = malloc(sizeof(double) * nc);
    cr_assert_eq(zf_net_forward(net, input, 1), ZF_OK);
    if (channel < 0) {
        const float *m = net->acts[fl];
        float best = 0;
        size_t at = 0;
        for (size_t i = 0; i < (size_t)zf_layer_out_size(f); i++)
            if (m[i] > best) {
                best = m[i];
                at = i;
            }
        channel = (int)(at / plane);
    }
    if (cls < 0) {
        row_probs(net, net->acts[net->n_layers - 1], nc, p);
        cls = 0;
        for (int k = 1; k < nc; k++)
            if (p[k] > p[cls])
                cls = k;
    }
    r->rows = (net->in_h - patch) / stride + 1;
    r->cols = (net->in_w - patch) / stride + 1;
    r->channel = channel;
    r->cls = cls;
    r->feat_layer = fl;
    r->n_classes = nc;
    const int n = r->rows * r->cols;
    r->feature = malloc(sizeof(double) * n);
    r->prob = malloc(sizeof(double) * n);
    r->probs_all = malloc(sizeof(double) * n * nc);
    r->argmax = malloc(sizeof(int32_t) * n);
    float *img = malloc(sizeof(float) * isz);
    for (int i = 0; i < n; i++) {
        const int py = (i / r->cols) * stride, px = (i % r->cols) * stride;
        memcpy(img, input, sizeof(float) * isz);
        for (int c = 0; c < net->in_c; c++)
            for (int y = py; y < py + patch; y++)
                for (int x = px; x < px + patch; x++)
                    img[((size_t)c * net->in_h + y) * net->in_w + x] = fill;
        cr_assert_eq(zf_net_forward(net, img, 1), ZF_OK);
        const float *m = net->acts[fl] + (size_t)channel * plane;
        double s = 0;
        for (size_t j = 0; j < plane; j++)
            s += m[j] > 0 ? m[j] : 0;
        r->feature[i] = s;
        row_probs(net, net->acts[net->n_layers - 1], nc, r->probs_all + (size_t)i * nc);
        const double *pi = r->probs_all + (size_t)i * nc;
        r->prob[i] = pi[cls];
        int best = 0;
        for (int k = 1; k < nc; k++)
            if (pi[k] > pi[best])
                best = k;
        r->argmax[i] = best;
    }
    free(img);
    free(p);
}

/* Each map within 1e-5 relative of the reference (values below 1e-3 of the map's largest are
 * compared against that floor), argmax equal unless the two classes tie to within 1e-5. */
static void expect_maps(const zf_occlusion_result *res, const ref_maps *r, const char *what)
{
    cr_assert_eq(res->rows, r->rows, "%s: rows", what);
    cr_assert_eq(res->cols, r->cols, "%s: cols", what);
    cr_expect_eq(res->channel, r->channel, "%s: channel %d, expected %d", what, res->channel, r->channel);
    cr_expect_eq(res->cls, r->cls, "%s: class %d, expected %d", what, res->cls, r->cls);
    cr_expect_eq(res->layer, r->feat_layer, "%s: layer", what);
    const int n = r->rows * r->cols;
    double fmax = 0, pmax = 0;
    for (int i = 0; i < n; i++) {
        fmax = fmax > fabs(r->feature[i]) ? fmax : fabs(r->feature[i]);
        pmax = pmax > r->prob[i] ? pmax : r->prob[i];
    }
    size_t at;
    double e = tu_max_rel_err(res->feature, r->feature, (size_t)n, fmax * 1e-3 + 1e-30, &at);
    cr_expect(e <= 1e-5, "%s: feature map off by %.3g relative at position %zu (row %zu col %zu): %.9g vs %.9g",
              what, e, at, at / r->cols, at % r->cols, res->feature[at], r->feature[at]);
    e = tu_max_rel_err(res->prob, r->prob, (size_t)n, pmax * 1e-3 + 1e-30, &at);
    cr_expect(e <= 1e-5, "%s: probability map off by %.3g relative at position %zu: %.9g vs %.9g", what, e,
              at, res->prob[at], r->prob[at]);
    for (int i = 0; i < n; i++) {
        if (res->argmax[i] == r->argmax[i])
            continue;
        const double *pi = r->probs_all + (size_t)i * r->n_classes;
        int got = res->argmax[i];
        int ok = got >= 0 && got < r->n_classes &&
                 fabs(pi[got] - pi[r->argmax[i]]) <= 1e-5 * pi[r->argmax[i]];
        cr_expect(ok, "%s: argmax at position %d is %d, expected %d (p %.9g vs %.9g)", what, i, got,
                  r->argmax[i], got >= 0 && got < r->n_classes ? pi[got] : -1.0, pi[r->argmax[i]]);
        if (!ok)
            break;
    }
}

static zf_occlusion_result *run(zf_net *net, const float *input, const zf_occlusion_params *p)
{
    zf_occlusion_result *res = NULL;
    zf_status st = zf_occlusion_run(net, input, p, &res);
    cr_assert_eq(st, ZF_OK, "zf_occlusion_run: %s", zf_last_error());
    cr_assert_not_null(res);
    return res;
}

/* The default parameters with a patch x patch square moved by stride. */
static zf_occlusion_params square(int patch, int stride)
{
    zf_occlusion_params p;
    zf_occlusion_params_default(&p);
    p.patch = patch;
    p.stride = stride;
    return p;
}

static float *random_input(const zf_net *net, uint64_t seed)
{
    const size_t isz = (size_t)zf_net_in_size(net);
    float *x = malloc(sizeof(float) * isz);
    tu_fill_uniform(x, isz, seed, -1.5f, 1.5f);
    return x;
}

/* Every method and every way of recomputing a convolution against the naive loop. */
#define ALL_WAYS 0x3f
#define BRUTE_AND_AUTO 0x3
#define AUTO_ONLY 0x2

/* fc_group for the runs of check_methods (0: the default). */
static int fc_group;

static void check_methods(zf_net *net, const float *x, int patch, int stride, float fill, int layer,
                          int channel, int cls, int batch, unsigned ways_mask)
{
    ref_maps r;
    int conv = layer;
    if (conv < 0)
        for (int i = 0; i < net->n_layers; i++)
            if (net->layers[i].op == ZF_OP_CONV)
                conv = i;
    if (net->layers[conv].op == ZF_OP_RELU)
        conv--;
    naive_maps(net, x, patch, stride, fill, conv, channel, cls, &r);
    const struct {
        zf_occlusion_method m;
        zf_occlusion_conv c;
    } ways[] = {{ZF_OCCLUSION_BRUTE, ZF_OCCLUSION_CONV_AUTO},
                {ZF_OCCLUSION_INCREMENTAL, ZF_OCCLUSION_CONV_AUTO},
                {ZF_OCCLUSION_INCREMENTAL, ZF_OCCLUSION_CONV_IM2COL},
                {ZF_OCCLUSION_INCREMENTAL, ZF_OCCLUSION_CONV_DELTA},
                {ZF_OCCLUSION_INCREMENTAL, ZF_OCCLUSION_CONV_WINOGRAD},
                {ZF_OCCLUSION_INCREMENTAL, ZF_OCCLUSION_CONV_WINOGRAD4}};
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        if (!(ways_mask >> w & 1))
            continue;
        zf_occlusion_params p = square(patch, stride);
        p.fill = fill;
        p.layer = layer;
        p.channel = channel;
        p.cls = cls;
        p.method = ways[w].m;
        p.conv = ways[w].c;
        p.batch = batch;
        p.fc_group = fc_group;
        zf_occlusion_result *res = run(net, x, &p);
        char what[160];
        snprintf(what, sizeof what, "%s patch %d stride %d %s/%s", net->arch, patch, stride,
                 zf_occlusion_method_name(ways[w].m), zf_occlusion_conv_name(ways[w].c));
        cr_expect_eq(res->method, ways[w].m, "%s: ran %s", what, zf_occlusion_method_name(res->method));
        cr_expect(!fc_group || ways[w].c != ZF_OCCLUSION_CONV_DELTA || res->fc_delta >= 0,
                  "%s: delta runs the first fc as a change, which the gathered tail needs", what);
        expect_maps(res, &r, what);
        zf_occlusion_result_free(res);
    }
    ref_free(&r);
}

/* The channel of `conv`'s rectified map with the second largest total on the unoccluded input,
 * and the second most probable class. */
static void runner_up(zf_net *net, const float *x, int conv, int *channel, int *cls)
{
    cr_assert_eq(zf_net_reserve(net, 1), ZF_OK);
    cr_assert_eq(zf_net_forward(net, x, 1), ZF_OK);
    const zf_layer *l = &net->layers[conv + 1];
    cr_assert_eq(l->op, ZF_OP_RELU);
    double best[2] = {-1, -1};
    int at[2] = {0, 0};
    for (int c = 0; c < l->out_c; c++) {
        double s = 0;
        for (int i = 0; i < l->out_h * l->out_w; i++)
            s += net->acts[conv + 1][(size_t)c * l->out_h * l->out_w + i];
        if (s > best[0]) {
            best[1] = best[0];
            at[1] = at[0];
            best[0] = s;
            at[0] = c;
        } else if (s > best[1]) {
            best[1] = s;
            at[1] = c;
        }
    }
    *channel = at[1];
    const float *p = net->acts[net->n_layers - 1];
    const int nc = (int)zf_layer_out_size(&net->layers[net->n_layers - 1]);
    int first = 0, second = 1;
    for (int k = 1; k < nc; k++)
        if (p[k] > p[first]) {
            second = first;
            first = k;
        } else if (k != first && p[k] > p[second]) {
            second = k;
        }
    *cls = second;
}

/* The built-in nets: few positions (large strides) so that the naive loop stays short; patch and
 * stride pairs that divide the input and pairs that leave a remainder, squares at the borders. */
static void check_builtin(const char *arch)
{
    zf_net *net = builtin(arch, 11);
    float *x = random_input(net, 5);
    const int n = net->in_h;
    check_methods(net, x, 48, 88, 0.0f, -1, -1, -1, 0, ALL_WAYS);        /* 3x3, remainder */
    check_methods(net, x, 29, n - 29, 0.5f, -1, -1, -1, 3, BRUTE_AND_AUTO); /* the four corners */
    /* conv3 and a class given: the runner-up channel and class, alive enough that float32
     * rounding stays far below the tolerance (a nearly dead channel's total is ill-conditioned) */
    int conv3 = zf_net_find(net, "conv3"), channel, cls;
    runner_up(net, x, conv3, &channel, &cls);
    check_methods(net, x, 64, 100, -0.25f, conv3, channel, cls, 3, AUTO_ONLY);
    free(x);
    zf_net_free(net);
}

Test(occlusion, alexnet_matches_naive_forward_per_position) { check_builtin("alexnet"); }
Test(occlusion, alexnet_caffe_matches_naive_forward_per_position) { check_builtin("alexnet-caffe"); }
Test(occlusion, zfnet_matches_naive_forward_per_position) { check_builtin("zfnet"); }

/* The ONNX model zoo's graphs (the light models tests/fixtures/gen_light.py makes: bvlc_alexnet with
 * its asymmetric pool5 padding, zfnet512 with 512-map conv3-5, a 2/2 pool5 and a 1024-wide fc7),
 * weights replaced by He-uniform ones as for the built-in nets. */
static const char *light_model(const char *file)
{
    const char *path = tu_fixturef("light/%s", file);
    struct stat sb;
    return stat(path, &sb) == 0 ? path : NULL;
}

Test(occlusion, onnx_zoo_graphs_match_naive_forward_per_position)
{
    const char *files[] = {"light_bvlc_alexnet.onnx", "light_zfnet512.onnx"};
    for (int i = 0; i < 2; i++) {
        const char *path = light_model(files[i]);
        cr_assert_not_null(path, "light/%s: the fixtures were not generated (ctest runs tests/fixtures/gen_light.py)",
                           files[i]);
        zf_net *net = NULL;
        cr_assert_eq(zf_onnx_load(path, NULL, &net), ZF_OK, "%s: %s", path, zf_last_error());
        he_init(net, 21 + i);
        float *x = random_input(net, 6 + i);
        check_methods(net, x, 48, 88, 0.0f, -1, -1, -1, 0, BRUTE_AND_AUTO);
        check_methods(net, x, 37, 187, 0.0f, -1, -1, -1, 0, i == 0 ? ALL_WAYS : AUTO_ONLY); /* corners */
        free(x);
        zf_net_free(net);
    }
}

/* A small net with every op the incremental method follows: strided, padded, grouped and
 * asymmetric windows, LRN, ceil-mode max-pool, average pools with and without the padding in the
 * divisor, adaptive pooling to a size that does not divide, a non-square input, and a dense tail
 * without softmax. */
static zf_net *small_net(int with_softmax)
{
    zf_net *net = zf_net_new("small", 3, 37, 41);
    cr_assert_not_null(net);
    const zf_lrn_params lrn = {3, 1, 1e-2f, 0.75f, 1.0f};
    const zf_window asym = {3, 3, 1, 1, 0, 1, 2, 1};
    cr_assert_eq(zf_net_add_conv(net, "conv1", 8, zf_win(5, 2, 2), 1), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_relu(net, "relu1"), ZF_OK);
    cr_assert_eq(zf_net_add_lrn(net, "norm1", lrn), ZF_OK);
    cr_assert_eq(zf_net_add_maxpool(net, "pool1", zf_win(3, 2, 1), 1), ZF_OK);
    cr_assert_eq(zf_net_add_conv(net, "conv2", 12, zf_win(5, 1, 2), 2), ZF_OK);
    cr_assert_eq(zf_net_add_relu(net, "relu2"), ZF_OK);
    cr_assert_eq(zf_net_add_avgpool(net, "pool2", zf_win(3, 1, 1), 0, 0), ZF_OK);
    cr_assert_eq(zf_net_add_conv(net, "conv3", 10, zf_win(3, 1, 1), 2), ZF_OK);
    cr_assert_eq(zf_net_add_relu(net, "relu3"), ZF_OK);
    cr_assert_eq(zf_net_add_conv(net, "conv4", 9, asym, 1), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_relu(net, "relu4"), ZF_OK);
    cr_assert_eq(zf_net_add_avgpool(net, "pool4", zf_win(2, 2, 1), 0, 1), ZF_OK);
    cr_assert_eq(zf_net_add_dropout(net, "drop4", 0.5f), ZF_OK);
    cr_assert_eq(zf_net_add_adaptive_avgpool(net, "apool", 3, 2), ZF_OK);
    cr_assert_eq(zf_net_add_flatten(net, "flatten"), ZF_OK);
    cr_assert_eq(zf_net_add_fc(net, "fc5", 17), ZF_OK);
    cr_assert_eq(zf_net_add_relu(net, "relu5"), ZF_OK);
    cr_assert_eq(zf_net_add_dropout(net, "drop5", 0.5f), ZF_OK);
    cr_assert_eq(zf_net_add_fc(net, "fc6", 11), ZF_OK);
    if (with_softmax)
        cr_assert_eq(zf_net_add_softmax(net, "prob"), ZF_OK);
    cr_assert_eq(zf_net_finalize(net), ZF_OK, "%s", zf_last_error());
    he_init(net, 3);
    return net;
}

Test(occlusion, small_net_dense_maps_match_naive_forward)
{
    zf_net *net = small_net(0);
    float *x = random_input(net, 9);
    check_methods(net, x, 5, 2, 0.0f, -1, -1, -1, 0, ALL_WAYS);  /* 17 x 19 positions */
    check_methods(net, x, 7, 3, 1.0f, -1, -1, -1, 13, ALL_WAYS); /* remainder in both axes, odd batch */
    check_methods(net, x, 1, 3, -2.0f, zf_net_find(net, "relu2"), 3, 4, 64, ALL_WAYS); /* single pixels */
    check_methods(net, x, 36, 5, 0.0f, zf_net_find(net, "conv1"), -1, -1, 0, ALL_WAYS); /* one row */
    free(x);
    zf_net_free(net);
}

Test(occlusion, small_net_with_softmax_matches_naive_forward)
{
    zf_net *net = small_net(1);
    float *x = random_input(net, 10);
    check_methods(net, x, 6, 4, 0.0f, -1, -1, -1, 0, ALL_WAYS);
    check_methods(net, x, 37, 1, 0.0f, -1, -1, -1, 0, ALL_WAYS); /* the whole height: one row of positions */
    free(x);
    zf_net_free(net);
}

/* The fully connected tail gathered over batches and run in groups (the delta way forces the
 * first fc as a change, which the groups need): batches of 3 positions in groups of at most 7 (a
 * group of 6, flushed before the batch that would overflow it), a last group that is not full,
 * and groups the size of one batch. */
Test(occlusion, fc_tail_in_groups_matches_naive_forward)
{
    zf_net *net = small_net(1);
    float *x = random_input(net, 14);
    fc_group = 7;
    check_methods(net, x, 6, 5, 0.0f, -1, -1, -1, 3, 1u << 3);
    fc_group = 1;
    check_methods(net, x, 9, 4, 0.0f, -1, -1, -1, 4, 1u << 3);
    fc_group = 0;
    free(x);
    zf_net_free(net);
}

/* Units silenced for every input: output channel/unit u of layer `name` gets zero weights and a
 * negative bias, so its ReLU gives exactly 0 whatever the occluder does. */
static void silence(zf_net *net, const char *name, int from, int to)
{
    zf_layer *l = &net->layers[zf_net_find(net, name)];
    const int64_t per = l->weight_count / l->out_c;
    for (int u = from; u < to; u++) {
        memset(l->weight + (size_t)u * per, 0, sizeof(float) * (size_t)per);
        l->bias[u] = -1.0f;
    }
}

/* Products over hundreds of positions skip the inputs that are zero in every row: conv4's
 * silenced channels (zero at pool4 for every position: the first fc, taken as a change, drops
 * them) and fc5's silenced units (zero after relu5: fc6 drops them). 323 positions: groups far
 * above the few rows where the skipping starts. */
Test(occlusion, inputs_zero_in_every_row_drop_out_of_the_products)
{
    zf_net *net = small_net(1);
    silence(net, "conv4", 0, 4); /* 4 of 9 channels */
    silence(net, "fc5", 3, 12);  /* 9 of 17 units */
    float *x = random_input(net, 15);
    check_methods(net, x, 5, 2, 0.0f, -1, -1, -1, 0, ALL_WAYS);
    check_methods(net, x, 8, 2, 0.5f, -1, -1, -1, 40, 1u << 3);
    free(x);
    zf_net_free(net);
}

static void progress_cb(void *ctx, int64_t done, int64_t total)
{
    int64_t *last = ctx;
    cr_expect(done > last[0] && done <= total, "progress went from %lld to %lld of %lld",
              (long long)last[0], (long long)done, (long long)total);
    last[0] = done;
    last[1] = total;
}

Test(occlusion, progress_reaches_total_and_auto_picks_by_footprint)
{
    zf_net *net = small_net(0);
    float *x = random_input(net, 12);
    zf_occlusion_params p = square(3, 2);
    p.batch = 10;
    int64_t last[2] = {0, 0};
    p.progress = progress_cb;
    p.progress_ctx = last;
    zf_occlusion_result *res = run(net, x, &p);
    cr_expect_eq(last[0], (int64_t)res->rows * res->cols);
    cr_expect_eq(last[1], (int64_t)res->rows * res->cols);
    cr_expect_eq(res->method, ZF_OCCLUSION_INCREMENTAL, "a 3x3 square on 37x41: work ratio %.2f", res->work_ratio);
    zf_occlusion_result_free(res);
    /* A square covering nearly all of the input changes everything: brute force is cheaper. */
    p.patch = 35;
    p.progress = NULL;
    res = run(net, x, &p);
    cr_expect_eq(res->method, ZF_OCCLUSION_BRUTE, "work ratio %.2f", res->work_ratio);
    zf_occlusion_result_free(res);
    free(x);
    zf_net_free(net);
}

Test(occlusion, interrupt_stops_cleanly)
{
    zf_net *net = small_net(0);
    float *x = random_input(net, 13);
    zf_occlusion_params p = square(4, 3);
    for (int m = ZF_OCCLUSION_BRUTE; m <= ZF_OCCLUSION_INCREMENTAL; m++) {
        p.method = (zf_occlusion_method)m;
        zf_occlusion_result *res = (zf_occlusion_result *)1;
        zf_abort_request();
        zf_status st = zf_occlusion_run(net, x, &p, &res);
        zf_abort_clear();
        cr_expect_eq(st, ZF_ERR_INTERRUPTED, "%s: status %d", zf_occlusion_method_name(p.method), st);
        cr_expect_null(res);
        cr_expect(strstr(zf_last_error(), "interrupted") != NULL, "message: %s", zf_last_error());
    }
    free(x);
    zf_net_free(net);
}

static void expect_arg_error(zf_net *net, const float *x, const zf_occlusion_params *p, const char *needle)
{
    zf_occlusion_result *res = NULL;
    zf_status st = zf_occlusion_run(net, x, p, &res);
    cr_expect_eq(st, ZF_ERR_ARG, "expected a bad-argument error about '%s', got %d (%s)", needle, st,
                 zf_last_error());
    cr_expect_null(res);
    cr_expect(strstr(zf_last_error(), needle) != NULL, "message '%s' should mention '%s'", zf_last_error(),
              needle);
}

Test(occlusion, bad_parameters_are_rejected_with_a_reason)
{
    zf_net *net = small_net(0);
    float *x = random_input(net, 14);
    zf_occlusion_params p = square(38, 2); /* taller than 37 */
    expect_arg_error(net, x, &p, "larger than");
    p.patch = 4;
    p.stride = 0;
    expect_arg_error(net, x, &p, "stride");
    p.stride = 2;
    p.cls = 11;
    expect_arg_error(net, x, &p, "class 11");
    p.cls = -1;
    p.layer = zf_net_find(net, "pool1");
    expect_arg_error(net, x, &p, "not a convolution");
    p.layer = zf_net_find(net, "conv2");
    p.channel = 12;
    expect_arg_error(net, x, &p, "channel 12");
    p.layer = 99;
    p.channel = -1;
    expect_arg_error(net, x, &p, "out of range");
    cr_expect_eq(zf_occlusion_count(41, 5, 2), 19);
    cr_expect_eq(zf_occlusion_count(41, 42, 2), 0);
    cr_expect_eq(zf_occlusion_count(41, 41, 7), 1);
    free(x);
    zf_net_free(net);
}
