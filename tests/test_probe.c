/* zfviz probe: the softmax classifier against PyTorch's (tests/fixtures/gen_probe.py, float64
 * L-BFGS on the same standardised features) on a seeded fixture set and on the features zfviz
 * writes for a subset of Fashion-MNIST through alexnet-mini; a one-feature case whose optimum is
 * solved by hand; separable points classified without error; the pooled features against a naive
 * average of the layer's output; and refusals. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/dataset.h"
#include "zf/io.h"
#include "zf/probe.h"

typedef struct ref_row {
    char layer[64];
    double train_acc, test_acc, loss;
} ref_row;

/* torch.tsv: layer, train accuracy, test accuracy, objective. */
static int read_ref(const char *path, ref_row *rows, int max)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    int n = 0;
    while (n < max && fscanf(f, "%63s %lf %lf %lf", rows[n].layer, &rows[n].train_acc, &rows[n].test_acc,
                             &rows[n].loss) == 4)
        n++;
    fclose(f);
    return n;
}

static zf_tensor *npy(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    zf_tensor *t;
    cr_assert_eq(zf_npy_read(path, &t), ZF_OK, "%s", zf_last_error());
    return t;
}

/* Fits the probe on DIR/<layer>.train.npy as zfviz probe does and returns the accuracies. */
static void fit_layer(const char *dir, const char *layer, double l2, double *tr_acc, double *te_acc, double *loss)
{
    char name[256];
    snprintf(name, sizeof name, "%s.train.npy", layer);
    zf_tensor *xtr = npy(dir, name);
    snprintf(name, sizeof name, "%s.test.npy", layer);
    zf_tensor *xte = npy(dir, name), *ytr = npy(dir, "train.labels.npy"), *yte = npy(dir, "test.labels.npy");
    int64_t n = xtr->shape[0], d = xtr->shape[1], m = xte->shape[0];
    int k = 0;
    for (int64_t i = 0; i < n; i++)
        k = zf_tensor_i32(ytr)[i] + 1 > k ? zf_tensor_i32(ytr)[i] + 1 : k;
    float *mean = malloc(sizeof(float) * d), *sd = malloc(sizeof(float) * d);
    double *W = malloc(sizeof(double) * d * k), b[256];
    zf_probe_moments(mean, sd, zf_tensor_f32(xtr), n, d);
    zf_probe_standardize(zf_tensor_f32(xtr), n, d, mean, sd);
    zf_probe_standardize(zf_tensor_f32(xte), m, d, mean, sd);
    zf_probe_opts o = zf_probe_defaults();
    o.l2 = l2;
    zf_probe_fit_info info;
    cr_assert_eq(zf_probe_fit(W, b, zf_tensor_f32(xtr), zf_tensor_i32(ytr), n, d, k, &o, &info), ZF_OK);
    *tr_acc = zf_probe_accuracy(W, b, zf_tensor_f32(xtr), zf_tensor_i32(ytr), n, d, k);
    *te_acc = zf_probe_accuracy(W, b, zf_tensor_f32(xte), zf_tensor_i32(yte), m, d, k);
    *loss = info.loss;
    free(mean);
    free(sd);
    free(W);
    zf_tensor_free(xtr);
    zf_tensor_free(xte);
    zf_tensor_free(ytr);
    zf_tensor_free(yte);
}

Test(probe, classifier_matches_pytorch_on_the_fixture_set)
{
    const char *dir = tu_fixture("probe");
    if (!*dir || access(tu_fixture("probe/torch.tsv"), R_OK))
        cr_skip_test("no fixtures: run tests/fixtures/gen_probe.py (the 'fixtures' CTest test)");
    ref_row ref[4];
    cr_assert_eq(read_ref(tu_fixture("probe/torch.tsv"), ref, 4), 1);
    double tr, te, loss;
    fit_layer(dir, "synth", 1e-3, &tr, &te, &loss);
    /* 600 and 300 points: one point of accuracy is 6 and 3 of them */
    cr_expect(fabs(tr - ref[0].train_acc) <= 0.01, "train accuracy %.4f, PyTorch %.4f", tr, ref[0].train_acc);
    cr_expect(fabs(te - ref[0].test_acc) <= 0.01, "test accuracy %.4f, PyTorch %.4f", te, ref[0].test_acc);
    /* the same minimum: the objective agrees far more closely than the accuracies need */
    cr_expect(fabs(loss - ref[0].loss) <= 1e-5 * ref[0].loss, "objective %.9g, PyTorch %.9g", loss, ref[0].loss);
}

Test(probe, one_feature_two_points_reach_the_optimum_solved_by_hand)
{
    /* x = -1 (class 0) and +1 (class 1), already standardised. By symmetry b = 0 and W = (-u/2, u/2),
     * and u minimises log(1 + e^-u) + l2 u^2 / 4: -1 / (1 + e^u) + l2 u / 2 = 0, solved here by
     * bisection. */
    const double l2 = 0.1;
    double lo = 0, hi = 100;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (-1 / (1 + exp(mid)) + l2 * mid / 2 < 0)
            lo = mid;
        else
            hi = mid;
    }
    double u = 0.5 * (lo + hi);
    float x[2] = {-1, 1};
    int32_t y[2] = {0, 1};
    double W[2], b[2];
    zf_probe_opts o = zf_probe_defaults();
    o.l2 = l2;
    o.tol = 1e-9;
    zf_probe_fit_info info;
    cr_assert_eq(zf_probe_fit(W, b, x, y, 2, 1, 2, &o, &info), ZF_OK);
    cr_expect(fabs(W[0] + u / 2) < 1e-5 && fabs(W[1] - u / 2) < 1e-5, "W = (%.7f, %.7f), by hand (%.7f, %.7f)",
              W[0], W[1], -u / 2, u / 2);
    cr_expect(fabs(b[0] - b[1]) < 1e-6, "b = (%.7g, %.7g): the classes are symmetric", b[0], b[1]);
    double f = log(1 + exp(-u)) + l2 * u * u / 4;
    /* the logits are float32 sums: the objective is as good as float32 */
    cr_expect(fabs(info.loss - f) < 1e-7, "objective %.10f, by hand %.10f", info.loss, f);
}

Test(probe, separable_points_are_all_classified)
{
    /* three clusters far apart in 2-D (and a constant third feature): any linear classifier near
     * the optimum separates them */
    enum { N = 90 };
    float x[N * 3];
    int32_t y[N];
    const float cx[3] = {-6, 6, 0}, cy[3] = {0, 0, 8};
    uint64_t s = 7;
    for (int i = 0; i < N; i++) {
        y[i] = i % 3;
        x[3 * i] = cx[y[i]] + (float)((tu_mix(&s) >> 11) * 0x1.0p-53 * 2 - 1);
        x[3 * i + 1] = cy[y[i]] + (float)((tu_mix(&s) >> 11) * 0x1.0p-53 * 2 - 1);
        x[3 * i + 2] = 5;
    }
    float mean[3], sd[3];
    zf_probe_moments(mean, sd, x, N, 3);
    cr_expect_eq(sd[2], 1.0f, "a constant feature is divided by 1, not 0");
    zf_probe_standardize(x, N, 3, mean, sd);
    cr_expect_eq(x[2], 0.0f);
    double W[9], b[3];
    zf_probe_opts o = zf_probe_defaults();
    cr_assert_eq(zf_probe_fit(W, b, x, y, N, 3, 3, &o, NULL), ZF_OK);
    cr_expect_eq(zf_probe_accuracy(W, b, x, y, N, 3, 3), 1.0);
}

static int has_fashion_mnist(void)
{
    const char *d = getenv("ZFVIZ_FASHION_MNIST");
    char p[4200];
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", d ? d : ZF_FASHION_MNIST_DIR);
    return access(p, R_OK) == 0;
}

Test(probe, command_matches_pytorch_on_alexnet_mini_features_of_fashion_mnist)
{
    if (!has_fashion_mnist())
        cr_skip_test("no Fashion-MNIST (Debian's dataset-fashion-mnist)");
    if (access(tu_build("tools/zfviz"), X_OK))
        cr_skip_test("no zfviz program");
    const char *dir = tu_tmpdir("probe_cmd");
    cr_assert_eq(tu_system("cd '%s' && '%s' probe --model alexnet-mini --limit 500 --test-limit 250 --csv "
                           "--layers conv1,relu3,pool5,fc7 --save-features feats --out probe.png >out.csv 2>err",
                           dir, tu_build("tools/zfviz")),
                 0, "zfviz probe failed");
    cr_assert_eq(tu_system("/usr/bin/python3 '%s' '%s/feats' >/dev/null", tu_src("tests/fixtures/gen_probe.py"), dir),
                 0, "gen_probe.py failed");
    char path[4200];
    snprintf(path, sizeof path, "%s/feats/torch.tsv", dir);
    ref_row ref[32];
    int n_ref = read_ref(path, ref, 32);
    cr_expect_eq(n_ref, 4, "%d layers' features written", n_ref);
    snprintf(path, sizeof path, "%s/out.csv", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char line[512];
    cr_assert(fgets(line, sizeof line, f));
    cr_expect_str_eq(line, "layer,features,train_acc,test_acc,iters,loss\n");
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        char layer[64];
        long long d;
        double tr, te, loss;
        int iters;
        cr_assert_eq(sscanf(line, "%63[^,],%lld,%lf,%lf,%d,%lf", layer, &d, &tr, &te, &iters, &loss), 6, "%s", line);
        rows++;
        int found = 0;
        for (int i = 0; i < n_ref; i++) {
            if (strcmp(ref[i].layer, layer))
                continue;
            found = 1;
            cr_expect(fabs(te - ref[i].test_acc) <= 0.01, "%s: test accuracy %.4f, PyTorch %.4f", layer, te,
                      ref[i].test_acc);
            cr_expect(fabs(tr - ref[i].train_acc) <= 0.01, "%s: train accuracy %.4f, PyTorch %.4f", layer, tr,
                      ref[i].train_acc);
            cr_expect(fabs(loss - ref[i].loss) <= 1e-3 * ref[i].loss + 1e-5, "%s: objective %.6g, PyTorch %.6g",
                      layer, loss, ref[i].loss);
        }
        cr_expect(found, "%s: no PyTorch result", layer);
    }
    fclose(f);
    cr_expect_eq(rows, n_ref);
    snprintf(path, sizeof path, "%s/probe.png", dir);
    tu_rgb fig = tu_png_read(path); /* the chart: four pairs of bars */
    cr_expect(fig.w > 4 * 40 && fig.h > 180, "chart %dx%d", fig.w, fig.h);
    free(fig.px);
}

Test(probe, features_are_the_layers_output_averaged_over_the_grid)
{
    /* pool1 of alexnet-mini is 32 x 13 x 13: a 4 x 4 grid has bins of 4 rows and columns that
     * overlap (0-3, 3-6, 6-9, 9-12); fc7 is taken after its ReLU */
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    cr_assert_eq(zf_net_init_random(net, 3), ZF_OK);
    zf_dataset *ds = zf_dataset_new(3, 1, 28, 28, 10);
    uint64_t s = 11;
    for (int i = 0; i < 3 * 28 * 28; i++)
        ds->pixels[i] = (uint8_t)(tu_mix(&s) >> 56);
    int layers[2] = {zf_probe_resolve(net, "pool1"), zf_probe_resolve(net, "fc7")};
    cr_assert_eq(layers[1], zf_net_find(net, "relu7"));
    float *out[2];
    zf_engine *e = tu_cpu_engine(net);
    cr_assert_eq(zf_probe_features(e, ds, layers, 2, 4, 2, out, NULL, NULL), ZF_OK);
    zf_engine_close(e);
    cr_expect_eq(zf_probe_dim(net, layers[0], 4), 32 * 16);
    cr_expect_eq(zf_probe_dim(net, layers[1], 4), 256);
    /* naive: one forward per image, bins by hand */
    static const int lo[4] = {0, 3, 6, 9}, hi[4] = {4, 7, 10, 13};
    float in[112 * 112];
    for (int img = 0; img < 3; img++) {
        int64_t idx = img;
        cr_assert_eq(zf_dataset_batch(in, NULL, ds, &idx, 1, net, NULL, 0), ZF_OK);
        cr_assert_eq(zf_net_forward(net, in, 1), ZF_OK);
        const float *p1 = net->acts[layers[0]], *f7 = net->acts[layers[1]];
        for (int c = 0; c < 32; c++)
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    double sum = 0;
                    for (int y = lo[i]; y < hi[i]; y++)
                        for (int x = lo[j]; x < hi[j]; x++)
                            sum += p1[(c * 13 + y) * 13 + x];
                    float want = (float)(sum / 16), got = out[0][img * 512 + c * 16 + i * 4 + j];
                    cr_assert(fabsf(got - want) <= 1e-5f * fmaxf(1, fabsf(want)),
                              "image %d pool1 channel %d bin (%d, %d): %.7g, by hand %.7g", img, c, i, j, got, want);
                }
        for (int c = 0; c < 256; c++)
            cr_assert(f7[c] >= 0 && fabsf(out[1][img * 256 + c] - f7[c]) <= 1e-5f * fmaxf(1e-3f, f7[c]),
                      "image %d fc7 %d: %g, by hand %g", img, c, out[1][img * 256 + c], f7[c]);
    }
    zf_free(out[0]);
    zf_free(out[1]);
    zf_dataset_free(ds);
    zf_net_free(net);
}

Test(probe, bad_layers_and_options_are_refused_in_one_line)
{
    if (access(tu_build("tools/zfviz"), X_OK))
        cr_skip_test("no zfviz program");
    const char *dir = tu_tmpdir("probe_bad");
    cr_expect_eq(tu_system("cd '%s' && '%s' probe --model alexnet-mini --layers conv1,nosuch 2>err >/dev/null", dir,
                           tu_build("tools/zfviz")),
                 2);
    char path[4200];
    snprintf(path, sizeof path, "%s/err", dir);
    char *err = tu_read_file(path, NULL);
    cr_assert(err);
    cr_expect(strstr(err, "nosuch") && strchr(err, '\n') == err + strlen(err) - 1, "%s", err);
    free(err);
    cr_expect_eq(tu_system("cd '%s' && '%s' probe --data fashion-mnist --test-data x 2>err >/dev/null", dir,
                           tu_build("tools/zfviz")),
                 2);
    cr_expect_eq(tu_system("cd '%s' && '%s' probe --data /nonexistent 2>err >/dev/null", dir, tu_build("tools/zfviz")),
                 1);
    err = tu_read_file(path, NULL);
    cr_expect(err && strstr(err, "/nonexistent"), "%s", err ? err : "");
    free(err);
}
