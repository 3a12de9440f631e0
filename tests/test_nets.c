/* The three built-in nets as wholes: their layer tables against SPEC section 1 (typed in here as
 * an independent statement of the architectures), and a forward of every layer and the deconvnet
 * of conv5 (unit and map), conv1 and conv2 against PyTorch float64 references made by
 * tests/fixtures/gen_nets.py on seeded weights and inputs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "zf/io.h"
#include "zf/net.h"
#include "zf/tensor.h"

/* Largest error allowed against the float64 references (issue 2's acceptance). */
#define TOL 1e-4

typedef struct {
    const char *name;
    zf_op op;
    int c, h, w;
} spec_layer;

/* SPEC section 1, per image; flattened tensors are C x 1 x 1. */
static const spec_layer alexnet_spec[] = {
    {"conv1", ZF_OP_CONV, 64, 55, 55},     {"relu1", ZF_OP_RELU, 64, 55, 55},
    {"pool1", ZF_OP_MAXPOOL, 64, 27, 27},  {"conv2", ZF_OP_CONV, 192, 27, 27},
    {"relu2", ZF_OP_RELU, 192, 27, 27},    {"pool2", ZF_OP_MAXPOOL, 192, 13, 13},
    {"conv3", ZF_OP_CONV, 384, 13, 13},    {"relu3", ZF_OP_RELU, 384, 13, 13},
    {"conv4", ZF_OP_CONV, 256, 13, 13},    {"relu4", ZF_OP_RELU, 256, 13, 13},
    {"conv5", ZF_OP_CONV, 256, 13, 13},    {"relu5", ZF_OP_RELU, 256, 13, 13},
    {"pool5", ZF_OP_MAXPOOL, 256, 6, 6},   {"avgpool", ZF_OP_ADAPTIVE_AVGPOOL, 256, 6, 6},
    {"flatten", ZF_OP_FLATTEN, 9216, 1, 1}, {"drop6", ZF_OP_DROPOUT, 9216, 1, 1},
    {"fc6", ZF_OP_FC, 4096, 1, 1},         {"relu6", ZF_OP_RELU, 4096, 1, 1},
    {"drop7", ZF_OP_DROPOUT, 4096, 1, 1},  {"fc7", ZF_OP_FC, 4096, 1, 1},
    {"relu7", ZF_OP_RELU, 4096, 1, 1},     {"fc8", ZF_OP_FC, 1000, 1, 1},
    {"prob", ZF_OP_SOFTMAX, 1000, 1, 1},   {NULL, 0, 0, 0, 0},
};

static const spec_layer alexnet_caffe_spec[] = {
    {"conv1", ZF_OP_CONV, 96, 55, 55},     {"relu1", ZF_OP_RELU, 96, 55, 55},
    {"norm1", ZF_OP_LRN, 96, 55, 55},      {"pool1", ZF_OP_MAXPOOL, 96, 27, 27},
    {"conv2", ZF_OP_CONV, 256, 27, 27},    {"relu2", ZF_OP_RELU, 256, 27, 27},
    {"norm2", ZF_OP_LRN, 256, 27, 27},     {"pool2", ZF_OP_MAXPOOL, 256, 13, 13},
    {"conv3", ZF_OP_CONV, 384, 13, 13},    {"relu3", ZF_OP_RELU, 384, 13, 13},
    {"conv4", ZF_OP_CONV, 384, 13, 13},    {"relu4", ZF_OP_RELU, 384, 13, 13},
    {"conv5", ZF_OP_CONV, 256, 13, 13},    {"relu5", ZF_OP_RELU, 256, 13, 13},
    {"pool5", ZF_OP_MAXPOOL, 256, 6, 6},   {"flatten", ZF_OP_FLATTEN, 9216, 1, 1},
    {"fc6", ZF_OP_FC, 4096, 1, 1},         {"relu6", ZF_OP_RELU, 4096, 1, 1},
    {"drop6", ZF_OP_DROPOUT, 4096, 1, 1},  {"fc7", ZF_OP_FC, 4096, 1, 1},
    {"relu7", ZF_OP_RELU, 4096, 1, 1},     {"drop7", ZF_OP_DROPOUT, 4096, 1, 1},
    {"fc8", ZF_OP_FC, 1000, 1, 1},         {"prob", ZF_OP_SOFTMAX, 1000, 1, 1},
    {NULL, 0, 0, 0, 0},
};

static const spec_layer zfnet_spec[] = {
    {"conv1", ZF_OP_CONV, 96, 110, 110},   {"relu1", ZF_OP_RELU, 96, 110, 110},
    {"pool1", ZF_OP_MAXPOOL, 96, 55, 55},  {"norm1", ZF_OP_LRN, 96, 55, 55},
    {"conv2", ZF_OP_CONV, 256, 26, 26},    {"relu2", ZF_OP_RELU, 256, 26, 26},
    {"pool2", ZF_OP_MAXPOOL, 256, 13, 13}, {"norm2", ZF_OP_LRN, 256, 13, 13},
    {"conv3", ZF_OP_CONV, 384, 13, 13},    {"relu3", ZF_OP_RELU, 384, 13, 13},
    {"conv4", ZF_OP_CONV, 384, 13, 13},    {"relu4", ZF_OP_RELU, 384, 13, 13},
    {"conv5", ZF_OP_CONV, 256, 13, 13},    {"relu5", ZF_OP_RELU, 256, 13, 13},
    {"pool5", ZF_OP_MAXPOOL, 256, 6, 6},   {"flatten", ZF_OP_FLATTEN, 9216, 1, 1},
    {"fc6", ZF_OP_FC, 4096, 1, 1},         {"relu6", ZF_OP_RELU, 4096, 1, 1},
    {"drop6", ZF_OP_DROPOUT, 4096, 1, 1},  {"fc7", ZF_OP_FC, 4096, 1, 1},
    {"relu7", ZF_OP_RELU, 4096, 1, 1},     {"drop7", ZF_OP_DROPOUT, 4096, 1, 1},
    {"fc8", ZF_OP_FC, 1000, 1, 1},         {"prob", ZF_OP_SOFTMAX, 1000, 1, 1},
    {NULL, 0, 0, 0, 0},
};

typedef struct {
    const char *name;
    int64_t params;
} spec_params;

/* alexnet: SPEC's per-layer counts and total. alexnet-caffe: by hand, out * (in/groups * k * k + 1);
 * its total is SPEC's for the ONNX zoo's bvlc_alexnet, the same layers. zfnet: by hand. */
static const spec_params alexnet_params[] = {
    {"conv1", 23296},    {"conv2", 307392},   {"conv3", 663936},  {"conv4", 884992},
    {"conv5", 590080},   {"fc6", 37752832},   {"fc7", 16781312},  {"fc8", 4097000},
    {NULL, 61100840},
};
static const spec_params alexnet_caffe_params[] = {
    {"conv1", 34944},    {"conv2", 307456},   {"conv3", 885120},  {"conv4", 663936},
    {"conv5", 442624},   {"fc6", 37752832},   {"fc7", 16781312},  {"fc8", 4097000},
    {NULL, 60965224},
};
static const spec_params zfnet_params[] = {
    {"conv1", 14208},    {"conv2", 614656},   {"conv3", 885120},  {"conv4", 1327488},
    {"conv5", 884992},   {"fc6", 37752832},   {"fc7", 16781312},  {"fc8", 4097000},
    {NULL, 62357608},
};

static zf_net *builtin(const char *arch)
{
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin(arch, &net), ZF_OK, "%s: %s", arch, zf_last_error());
    return net;
}

static void check_shapes(const char *arch, const spec_layer *spec, int in_hw)
{
    zf_net *net = builtin(arch);
    cr_expect_eq(net->in_c, 3, "%s: input has %d channels", arch, net->in_c);
    cr_expect(net->in_h == in_hw && net->in_w == in_hw, "%s: input %dx%d, SPEC says %d", arch,
              net->in_h, net->in_w, in_hw);
    int n = 0;
    while (spec[n].name)
        n++;
    cr_expect_eq(net->n_layers, n, "%s: %d layers, SPEC's table has %d", arch, net->n_layers, n);
    for (int i = 0; i < n && i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        cr_expect_str_eq(l->name, spec[i].name, "%s: layer %d is '%s', SPEC says '%s'", arch, i, l->name,
                         spec[i].name);
        cr_expect_eq(l->op, spec[i].op, "%s %s: op %s, SPEC says %s", arch, l->name, zf_op_name(l->op),
                     zf_op_name(spec[i].op));
        cr_expect(l->out_c == spec[i].c && l->out_h == spec[i].h && l->out_w == spec[i].w,
                  "%s %s: output %dx%dx%d, SPEC says %dx%dx%d", arch, l->name, l->out_c, l->out_h, l->out_w,
                  spec[i].c, spec[i].h, spec[i].w);
    }
    zf_net_free(net);
}

Test(nets, layer_shapes_match_spec_tables)
{
    check_shapes("alexnet", alexnet_spec, 224);
    check_shapes("alexnet-caffe", alexnet_caffe_spec, 227);
    check_shapes("zfnet", zfnet_spec, 224);
}

static void check_params(const char *arch, const spec_params *spec)
{
    zf_net *net = builtin(arch);
    int i = 0;
    for (; spec[i].name; i++) {
        int li = zf_net_find(net, spec[i].name);
        cr_expect(li >= 0, "%s: no layer '%s'", arch, spec[i].name);
        if (li < 0)
            continue;
        const zf_layer *l = &net->layers[li];
        cr_expect_eq(l->weight_count + l->bias_count, spec[i].params,
                     "%s %s: %lld parameters, SPEC says %lld", arch, spec[i].name,
                     (long long)(l->weight_count + l->bias_count), (long long)spec[i].params);
    }
    cr_expect_eq(zf_net_param_count(net), spec[i].params, "%s: %lld parameters in all, SPEC says %lld", arch,
                 (long long)zf_net_param_count(net), (long long)spec[i].params);
    zf_net_free(net);
}

Test(nets, parameter_counts_match_spec)
{
    check_params("alexnet", alexnet_params);
    check_params("alexnet-caffe", alexnet_caffe_params);
    check_params("zfnet", zfnet_params);
}

/* ---------------------------------------------------------------------------------------------- */
/* Against PyTorch */

static const char *fixture(const char *arch, const char *rel)
{
    char r[512];
    snprintf(r, sizeof r, "nets/%s/%s", arch, rel);
    return tu_fixture(r);
}

static zf_tensor *read_npy(const char *path)
{
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(path, &t), ZF_OK, "%s", zf_last_error());
    return t;
}

/* The net with the fixture's weights, after a forward of the fixture's two images repeated `reps`
 * times (batch 2 * reps: at batch 4 the 3x3 layers on 13x13 maps have enough tiles for Winograd). */
static zf_net *net_after_forward_reps(const char *arch, int reps)
{
    struct stat st;
    const char *stamp = tu_fixture("nets/.stamp");
    cr_assert(stat(stamp, &st) == 0,
              "no PyTorch fixtures (%s missing): tests/fixtures/gen_nets.py makes them with Debian's "
              "python3-torch through the 'fixtures' CTest test (run ctest, not this program alone)",
              stamp);
    zf_net *net = builtin(arch);
    cr_assert_eq(zf_net_load_npy_dir(net, fixture(arch, "weights")), ZF_OK, "%s", zf_last_error());
    zf_tensor *x = read_npy(fixture(arch, "input.npy"));
    cr_assert(x->dtype == ZF_DTYPE_F32 && x->ndim == 4 && x->shape[0] == 2 && x->shape[1] == net->in_c &&
                  x->shape[2] == net->in_h && x->shape[3] == net->in_w,
              "%s: input.npy is not 2x%dx%dx%d float32", arch, net->in_c, net->in_h, net->in_w);
    const int n = 2 * reps;
    float *in = zf_alloc((size_t)x->size * reps * sizeof(float));
    for (int r = 0; r < reps; r++)
        memcpy(in + (size_t)r * x->size, zf_tensor_f32(x), (size_t)x->size * sizeof(float));
    cr_assert_eq(zf_net_reserve(net, n), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_forward(net, in, n), ZF_OK, "%s", zf_last_error());
    zf_free(in);
    zf_tensor_free(x);
    return net;
}

static zf_net *net_after_forward(const char *arch) { return net_after_forward_reps(arch, 1); }

/* Largest |a - b| / max(|b|, floor) over a tensor shaped like `shape` (n, c, h, w); cr_expect
 * < TOL, naming the first worst element. With by_max, floor is max |b| (the error relative to the
 * largest value); otherwise it is the RMS of b, so that elements near zero (float32 rounding of a
 * cancelling sum) do not dominate. */
static double compare(const char *what, const float *got, const zf_tensor *ref, const int64_t shape[4],
                      int by_max)
{
    size_t n = (size_t)ref->size, at = 0;
    const float *b = zf_tensor_f32(ref);
    double ss = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        ss += (double)b[i] * b[i];
        mx = fmax(mx, fabs((double)b[i]));
    }
    double floor = by_max ? mx : sqrt(ss / (double)n);
    if (floor == 0)
        floor = 1e-30;
    double err = tu_max_rel_err_f(got, b, n, floor, &at);
    size_t hw = (size_t)(shape[2] * shape[3]), chw = (size_t)shape[1] * hw;
    cr_expect(err < TOL, "%s: relative error %.2e at [%zu,%zu,%zu,%zu]: got %.9g, PyTorch %.9g (%s %.3g)", what,
              err, at / chw, at % chw / hw, at % hw / (size_t)shape[3], at % (size_t)shape[3], got[at], b[at],
              by_max ? "max" : "rms", floor);
    return err;
}

/* Every layer's output, relative to its RMS: PyTorch's own float32 forward is within 5e-6. Each
 * of the `reps` copies of the batch against PyTorch's outputs of the two images. */
static void check_forward(const char *arch, int reps)
{
    zf_net *net = net_after_forward_reps(arch, reps);
    double worst = 0;
    const char *worst_at = "";
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        char rel[128];
        snprintf(rel, sizeof rel, "out/%s.npy", l->name);
        const char *path = fixture(arch, rel);
        struct stat st;
        cr_expect(stat(path, &st) == 0, "%s: layer '%s' has no PyTorch reference (%s)", arch, l->name, path);
        if (stat(path, &st) != 0)
            continue;
        zf_tensor *ref = read_npy(path);
        const int64_t shape[4] = {2, l->out_c, l->out_h, l->out_w};
        cr_assert_eq(ref->size, 2 * zf_layer_out_size(l), "%s %s: reference has %lld values, the layer %lld",
                     arch, l->name, (long long)ref->size, (long long)(2 * zf_layer_out_size(l)));
        for (int r = 0; r < reps; r++) {
            char what[96];
            snprintf(what, sizeof what, "%s %s (images %d-%d of %d)", arch, l->name, 2 * r, 2 * r + 1, 2 * reps);
            double e = compare(what, net->acts[i] + (size_t)r * 2 * zf_layer_out_size(l), ref, shape, 0);
            if (e > worst) {
                worst = e;
                worst_at = l->name;
            }
        }
        zf_tensor_free(ref);
    }
    /* and the other way: every layer PyTorch has, the engine has, in the same order */
    FILE *f = fopen(fixture(arch, "layers.tsv"), "r");
    cr_assert(f, "%s: cannot open %s", arch, fixture(arch, "layers.tsv"));
    char line[256], name[64];
    int k = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || sscanf(line, "%63s", name) != 1)
            continue;
        cr_expect(zf_net_find(net, name) == k, "%s: PyTorch's layer %d '%s' is layer %d here", arch, k, name,
                  zf_net_find(net, name));
        k++;
    }
    fclose(f);
    cr_expect_eq(k, net->n_layers, "%s: PyTorch has %d layers, the engine %d", arch, k, net->n_layers);
    cr_log_info("%s forward: worst relative error %.2e (%s)", arch, worst, worst_at);
    zf_net_free(net);
}

Test(nets, alexnet_forward_matches_pytorch_at_every_layer) { check_forward("alexnet", 1); }
Test(nets, alexnet_caffe_forward_matches_pytorch_at_every_layer) { check_forward("alexnet-caffe", 1); }
Test(nets, zfnet_forward_matches_pytorch_at_every_layer) { check_forward("zfnet", 1); }
/* Batch 6: the Winograd paths of the 3x3 layers (batch 2 stays below their tile threshold; the
 * 5x5 conv2 takes Winograd at any batch). */
Test(nets, alexnet_forward_at_batch_6_matches_pytorch) { check_forward("alexnet", 3); }
Test(nets, alexnet_caffe_forward_at_batch_6_matches_pytorch) { check_forward("alexnet-caffe", 3); }
Test(nets, zfnet_forward_at_batch_6_matches_pytorch) { check_forward("zfnet", 3); }

/* Each line of deconv.tsv: layer, mode, channel, file, then the (y, x) per image PyTorch used.
 * Errors are relative to the reconstruction's largest pixel: a whole-map reconstruction sums
 * thousands of terms of both signs per pixel, and PyTorch's own float32 deconvnet is within 4e-6
 * of the float64 one by this measure (but up to 8e-5 relative to the RMS). */
static void check_deconv(const char *arch)
{
    zf_net *net = net_after_forward(arch);
    const size_t isz = (size_t)zf_net_in_size(net);
    float *out = zf_alloc(2 * isz * sizeof(float));
    FILE *f = fopen(fixture(arch, "deconv.tsv"), "r");
    cr_assert(f, "%s: cannot open %s", arch, fixture(arch, "deconv.tsv"));
    char line[512], layer[32], mode[16], file[128];
    int chan, pos[4], cases = 0;
    int seen_map = 0;
    double worst = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        cr_assert_eq(sscanf(line, "%31s %15s %d %127s %d %d %d %d", layer, mode, &chan, file, &pos[0], &pos[1],
                            &pos[2], &pos[3]),
                     8, "%s: bad line in deconv.tsv: %s", arch, line);
        const int is_map = !strcmp(mode, "map");
        seen_map |= is_map;
        int conv = zf_net_find_conv(net, layer);
        cr_assert(conv >= 0, "%s: no conv layer '%s'", arch, layer);
        int chans[2] = {chan, chan}, ys[2] = {-1, -1}, xs[2] = {-1, -1};
        zf_deconv_req req = {conv, is_map ? ZF_DECONV_MAP : ZF_DECONV_UNIT, 0, chans, ys, xs};
        cr_assert_eq(zf_net_deconv(net, out, 2, &req), ZF_OK, "%s %s: %s", arch, layer, zf_last_error());
        if (!is_map)
            for (int img = 0; img < 2; img++)
                cr_expect(ys[img] == pos[2 * img] && xs[img] == pos[2 * img + 1],
                          "%s %s channel %d image %d: strongest position (%d,%d), PyTorch's (%d,%d)", arch, layer,
                          chan, img, ys[img], xs[img], pos[2 * img], pos[2 * img + 1]);
        zf_tensor *ref = read_npy(fixture(arch, file));
        cr_assert_eq(ref->size, (int64_t)(2 * isz), "%s: %s has %lld values", arch, file, (long long)ref->size);
        const int64_t shape[4] = {2, net->in_c, net->in_h, net->in_w};
        char what[160];
        snprintf(what, sizeof what, "%s deconv %s %s channel %d", arch, layer, mode, chan);
        double e = compare(what, out, ref, shape, 1);
        worst = fmax(worst, e);
        zf_tensor_free(ref);
        cases++;
    }
    fclose(f);
    cr_expect(cases >= 4 && seen_map, "%s: deconv.tsv lists %d cases (expected conv5 unit and map, conv1, conv2)",
              arch, cases);
    cr_log_info("%s deconv: %d cases, worst relative error %.2e", arch, cases, worst);
    zf_free(out);
    zf_net_free(net);
}

Test(nets, alexnet_deconv_matches_pytorch) { check_deconv("alexnet"); }
Test(nets, alexnet_caffe_deconv_matches_pytorch) { check_deconv("alexnet-caffe"); }
Test(nets, zfnet_deconv_matches_pytorch) { check_deconv("zfnet"); }
