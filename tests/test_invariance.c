/* zfviz invariance (Zeiler & Fergus Fig. 5) against a naive computation written here: the test's
 * own float64 resampling of each transformed image (derived in y-up coordinates, not the
 * library's), one plain forward per image, distances and probabilities summed in double; the
 * transforms' geometry on images whose answer is known; the command's CSV against the same; and
 * the refusals of bad input (exit 2, one line). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/io.h"
#include "zf/net.h"
#include "zf/paper.h"
#include "zf/tensor.h"

/* ---- the test's own resampling ---- */

static double px_at(const float *plane, int h, int w, int y, int x, double fill)
{
    if (y < 0 || y >= h || x < 0 || x >= w)
        return fill;
    return plane[y * w + x];
}

static double bilinear(const float *plane, int h, int w, double sy, double sx, double fill)
{
    const double fy0 = floor(sy), fx0 = floor(sx);
    const int y0 = (int)fy0, x0 = (int)fx0;
    const double ty = sy - fy0, tx = sx - fx0;
    double v = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            v += (a ? ty : 1 - ty) * (b ? tx : 1 - tx) * px_at(plane, h, w, y0 + a, x0 + b, fill);
    return v;
}

/* Where output pixel (y, x) reads from. Rotation: in coordinates u = x - cx, v = cy - y (y up), the
 * content turns by +deg (anticlockwise), so the source is the output point turned by -deg. */
static void source_of(int t, double amount, int h, int w, int y, int x, double *sy, double *sx)
{
    const double cx = 0.5 * (w - 1), cy = 0.5 * (h - 1);
    if (t == ZF_TRANSFORM_TRANSLATE) {
        *sy = y - amount;
        *sx = x;
    } else if (t == ZF_TRANSFORM_SCALE) {
        *sx = cx + (x - cx) / amount;
        *sy = cy + (y - cy) / amount;
    } else {
        const double r = amount / 180.0 * 3.14159265358979323846;
        const double u = x - cx, v = cy - y;
        const double us = u * cos(r) + v * sin(r), vs = -u * sin(r) + v * cos(r);
        *sx = cx + us;
        *sy = cy - vs;
    }
}

static void ref_transform(float *out, const float *in, int c, int h, int w, int t, double amount, double fill)
{
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double sy, sx;
                source_of(t, amount, h, w, y, x, &sy, &sx);
                out[(k * h + y) * w + x] = (float)bilinear(in + k * h * w, h, w, sy, sx, fill);
            }
}

/* ---- nets and inputs ---- */

/* He-uniform conv weights, 1/fan_in for fc layers, small biases: activations that neither vanish
 * nor explode, so the distances and probabilities are far from 0 and 1. */
static void he_init(zf_net *net, uint64_t seed)
{
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_CONV && l->op != ZF_OP_FC)
            continue;
        const double fan_in = (double)l->weight_count / l->out_c;
        const float a = (float)sqrt((l->op == ZF_OP_CONV ? 6.0 : 3.0) / fan_in);
        tu_fill_uniform(l->weight, (size_t)l->weight_count, seed + 2 * i, -a, a);
        tu_fill_uniform(l->bias, (size_t)l->bias_count, seed + 2 * i + 1, -0.05f, 0.05f);
    }
}

static zf_net *mini_net(uint64_t seed)
{
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK, "%s", zf_last_error());
    he_init(net, seed);
    return net;
}

/* A smooth picture with some detail (sinusoids and a disc), so that shifts and turns change it. */
static void picture(float *x, int h, int w, int k)
{
    for (int y = 0; y < h; y++)
        for (int i = 0; i < w; i++) {
            const double dy = y - h * (0.4 + 0.05 * k), dx = i - w * 0.55;
            x[y * w + i] = (float)(0.8 * sin(0.11 * i + 0.7 * k) * cos(0.07 * y) +
                                   (dx * dx + dy * dy < 400 ? 1.2 : -0.3) + 0.3 * sin(0.45 * (i + 2 * y)));
        }
}

/* What the sweep must give for one amount: the test's transform, one forward of one image. */
typedef struct naive_row {
    double d1, d7, prob;
    int top;
} naive_row;

static void feats(zf_net *net, const float *x, int l1, int l7, float *f1, float *f7, double *probs, int *top)
{
    cr_assert_eq(zf_net_reserve(net, 1), ZF_OK);
    cr_assert_eq(zf_net_forward(net, x, 1), ZF_OK, "%s", zf_last_error());
    memcpy(f1, net->acts[l1], sizeof(float) * zf_layer_out_size(&net->layers[l1]));
    memcpy(f7, net->acts[l7], sizeof(float) * zf_layer_out_size(&net->layers[l7]));
    const int last = net->n_layers - 1;
    cr_assert_eq(net->layers[last].op, ZF_OP_SOFTMAX);
    *top = 0;
    for (int k = 0; k < net->layers[last].out_c; k++) {
        probs[k] = net->acts[last][k];
        if (probs[k] > probs[*top])
            *top = k;
    }
}

static double dist(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s);
}

/* Rows for `amounts` of transform t of image x; *cls is the original's top class when < 0. */
static void naive_sweep(zf_net *net, const float *x, int t, const double *amounts, int n, int *cls, naive_row *rows)
{
    const int l1 = zf_net_find(net, "relu1"), l7 = zf_net_find(net, "relu7");
    cr_assert(l1 >= 0 && l7 >= 0);
    const int64_t n1 = zf_layer_out_size(&net->layers[l1]), n7 = zf_layer_out_size(&net->layers[l7]);
    const int64_t isz = zf_net_in_size(net);
    float *b1 = malloc(4 * n1), *b7 = malloc(4 * n7), *f1 = malloc(4 * n1), *f7 = malloc(4 * n7);
    float *tx = malloc(4 * isz);
    double probs[16];
    int top;
    feats(net, x, l1, l7, b1, b7, probs, &top);
    if (*cls < 0)
        *cls = top;
    for (int k = 0; k < n; k++) {
        ref_transform(tx, x, net->in_c, net->in_h, net->in_w, t, amounts[k], 0.0);
        feats(net, tx, l1, l7, f1, f7, probs, &top);
        rows[k] = (naive_row){dist(b1, f1, n1), dist(b7, f7, n7), probs[*cls], top};
    }
    free(b1);
    free(b7);
    free(f1);
    free(f7);
    free(tx);
}

static void expect_close(double got, double want, double rel, double floor_, const char *what, int k)
{
    cr_expect(fabs(got - want) <= rel * fmax(fabs(want), floor_), "%s [%d]: got %.9g, want %.9g", what, k, got,
              want);
}

/* ---- geometry ---- */

Test(transform, moves_content_as_documented)
{
    enum { H = 9, W = 9 };
    float in[H * W] = {0}, out[H * W];
    in[0 * W + 4] = 1; /* top centre */
    /* A quarter turn anticlockwise takes the top centre to the left centre. */
    cr_assert_eq(zf_transform_image(out, in, 1, H, W, ZF_TRANSFORM_ROTATE, 90, 0), ZF_OK);
    cr_expect(fabsf(out[4 * W + 0] - 1) < 1e-6f, "rotate 90: left centre %g, not 1", out[4 * W]);
    cr_expect(fabsf(out[0 * W + 4]) < 1e-6f, "rotate 90: top centre %g, not 0", out[4]);
    /* A shift of +2 moves it two rows down; what comes in from above is the fill. */
    cr_assert_eq(zf_transform_image(out, in, 1, H, W, ZF_TRANSFORM_TRANSLATE, 2, -5), ZF_OK);
    cr_expect_eq(out[2 * W + 4], 1.0f);
    cr_expect_eq(out[0 * W + 0], -5.0f);
    cr_expect_eq(out[1 * W + 8], -5.0f);
    cr_expect_eq(out[8 * W + 8], 0.0f);
    /* Scale 2 about the centre (4, 4): the pixel 2 above the centre lands 4 above it. */
    float in2[H * W] = {0};
    in2[2 * W + 4] = 1;
    cr_assert_eq(zf_transform_image(out, in2, 1, H, W, ZF_TRANSFORM_SCALE, 2, 0), ZF_OK);
    cr_expect(fabsf(out[0 * W + 4] - 1) < 1e-6f, "scale 2: %g at the top centre, not 1", out[4]);
    /* A full turn and amounts that change nothing give the image back. */
    float x[H * W];
    tu_fill_uniform(x, H * W, 5, -1, 1);
    const int ts[] = {ZF_TRANSFORM_ROTATE, ZF_TRANSFORM_ROTATE, ZF_TRANSFORM_TRANSLATE, ZF_TRANSFORM_SCALE};
    const double am[] = {0, 360, 0, 1};
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(zf_transform_image(out, x, 1, H, W, ts[k], am[k], 0), ZF_OK);
        for (int i = 0; i < H * W; i++)
            cr_assert(fabsf(out[i] - x[i]) < 1e-6f, "%s %g: pixel %d %g, not %g", zf_transform_name(ts[k]), am[k],
                      i, out[i], x[i]);
    }
    cr_expect_eq(zf_transform_image(out, x, 1, H, W, ZF_TRANSFORM_SCALE, 0, 0), ZF_ERR_ARG);
    cr_expect_eq(zf_transform_image(out, x, 1, H, W, ZF_TRANSFORM_ROTATE, NAN, 0), ZF_ERR_ARG);
}

/* Odd sizes, three planes, fractional amounts and ones that reach far outside. */
Test(transform, matches_float64_resampling)
{
    enum { C = 3, H = 13, W = 17 };
    float x[C * H * W], got[C * H * W], want[C * H * W];
    tu_fill_uniform(x, C * H * W, 11, -2, 2);
    const struct {
        int t;
        double a;
    } cases[] = {{ZF_TRANSFORM_TRANSLATE, -3.25}, {ZF_TRANSFORM_TRANSLATE, 7.5},  {ZF_TRANSFORM_TRANSLATE, 40},
                 {ZF_TRANSFORM_SCALE, 0.63},      {ZF_TRANSFORM_SCALE, 1.37},      {ZF_TRANSFORM_SCALE, 3.1},
                 {ZF_TRANSFORM_ROTATE, 17},       {ZF_TRANSFORM_ROTATE, -123.4},  {ZF_TRANSFORM_ROTATE, 271}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cr_assert_eq(zf_transform_image(got, x, C, H, W, cases[c].t, cases[c].a, 0.25f), ZF_OK);
        ref_transform(want, x, C, H, W, cases[c].t, cases[c].a, 0.25);
        size_t where = 0;
        const double err = tu_max_rel_err_f(got, want, C * H * W, 1.0, &where);
        cr_expect(err < 1e-6, "%s %g: error %.3g at %zu (%g, not %g)", zf_transform_name(cases[c].t), cases[c].a, err,
                  where, got[where], want[where]);
    }
}

/* ---- the sweep ---- */

static void check_sweep(int batch)
{
    zf_net *net = mini_net(21);
    zf_engine *e = tu_cpu_engine(net);
    const int64_t isz = zf_net_in_size(net);
    float *x = malloc(4 * isz);
    picture(x, net->in_h, net->in_w, 0);
    const double amounts[3][5] = {{-7.5, 0, 3, 12, -30}, {0.8, 1, 1.37, 1.8, 0.5}, {0, 33, 90, 200, 359}};
    for (int t = 0; t < 3; t++) {
        zf_invariance_params p;
        zf_invariance_params_default(&p);
        p.batch = batch;
        zf_invariance_row rows[5];
        int layers[2], cls = -2;
        cr_assert_eq(zf_invariance_sweep(e, x, t, amounts[t], 5, &p, rows, layers, &cls), ZF_OK, "%s",
                     zf_last_error());
        cr_expect_str_eq(net->layers[layers[0]].name, "relu1");
        cr_expect_str_eq(net->layers[layers[1]].name, "relu7");
        naive_row want[5];
        int wcls = -1;
        naive_sweep(net, x, t, amounts[t], 5, &wcls, want);
        cr_expect_eq(cls, wcls, "class %d, not the original's top class %d", cls, wcls);
        for (int k = 0; k < 5; k++) {
            char what[64];
            snprintf(what, sizeof what, "%s %g", zf_transform_name(t), amounts[t][k]);
            /* Batches sum in another order: at the identity that leaves ~1e-5 of rounding against
             * distances of tens, hence the floor of 1. */
            expect_close(rows[k].dist[0], want[k].d1, 1e-4, 1.0, what, 0);
            expect_close(rows[k].dist[1], want[k].d7, 1e-4, 1.0, what, 1);
            expect_close(rows[k].prob, want[k].prob, 1e-4, 1e-6, what, 2);
            cr_expect_eq(rows[k].top, want[k].top, "%s: top %d, not %d", what, rows[k].top, want[k].top);
        }
        /* The amount that changes nothing: one image alone through the same arithmetic. */
        if (batch == 1)
            for (int k = 0; k < 5; k++)
                if (amounts[t][k] == (t == ZF_TRANSFORM_SCALE ? 1 : 0))
                    cr_expect(rows[k].dist[0] == 0 && rows[k].dist[1] == 0, "%s identity: distances %g, %g",
                              zf_transform_name(t), rows[k].dist[0], rows[k].dist[1]);
        /* The distances grow away from the identity: a shift of 30 rows moves relu1 further than 3. */
        if (t == ZF_TRANSFORM_TRANSLATE)
            cr_expect(rows[4].dist[0] > rows[2].dist[0], "relu1: shift 30 %g <= shift 3 %g", rows[4].dist[0],
                      rows[2].dist[0]);
    }
    free(x);
    zf_engine_close(e);
    zf_net_free(net);
}

Test(invariance, sweep_matches_naive_forward) { check_sweep(0); }
Test(invariance, sweep_in_batches_matches_naive_forward) { check_sweep(3); }

Test(invariance, given_layers_and_class)
{
    zf_net *net = mini_net(4);
    zf_engine *e = tu_cpu_engine(net);
    float *x = malloc(4 * zf_net_in_size(net));
    picture(x, net->in_h, net->in_w, 1);
    zf_invariance_params p;
    zf_invariance_params_default(&p);
    p.layers[0] = zf_net_find(net, "pool2");
    p.layers[1] = zf_net_find(net, "fc8");
    /* The least probable class of the original: not the top class of either image. */
    cr_assert_eq(zf_net_reserve(net, 1), ZF_OK);
    cr_assert_eq(zf_net_forward(net, x, 1), ZF_OK);
    int least = 0;
    for (int k = 1; k < 10; k++)
        if (net->acts[net->n_layers - 1][k] < net->acts[net->n_layers - 1][least])
            least = k;
    p.cls = least;
    const double am[2] = {0, 45};
    zf_invariance_row rows[2];
    cr_assert_eq(zf_invariance_sweep(e, x, ZF_TRANSFORM_ROTATE, am, 2, &p, rows, NULL, NULL), ZF_OK);
    /* By hand: that class's probability and the fc8 distance of the 45-degree image. */
    float *tx = malloc(4 * zf_net_in_size(net));
    ref_transform(tx, x, 1, net->in_h, net->in_w, ZF_TRANSFORM_ROTATE, 45, 0);
    const int l8 = zf_net_find(net, "fc8"), lp = net->n_layers - 1;
    float base[10], moved[10];
    cr_assert_eq(zf_net_forward(net, x, 1), ZF_OK);
    memcpy(base, net->acts[l8], sizeof base);
    cr_assert_eq(zf_net_forward(net, tx, 1), ZF_OK);
    memcpy(moved, net->acts[l8], sizeof moved);
    expect_close(rows[1].dist[1], dist(base, moved, 10), 1e-4, 1e-6, "fc8 distance", 1);
    expect_close(rows[1].prob, net->acts[lp][least], 1e-4, 1e-6, "p(least probable class)", 1);
    p.cls = 10;
    cr_expect_eq(zf_invariance_sweep(e, x, ZF_TRANSFORM_ROTATE, am, 2, &p, rows, NULL, NULL), ZF_ERR_ARG);
    p.cls = -1;
    cr_expect_eq(zf_invariance_sweep(e, x, ZF_TRANSFORM_ROTATE, am, 0, &p, rows, NULL, NULL), ZF_ERR_ARG);
    free(x);
    free(tx);
    zf_engine_close(e);
    zf_net_free(net);
}

/* ---- the command ---- */

static char zfviz[4096];

/* A model file of He weights and two pictures as a .npy, in dir. */
static void write_case(const char *dir, zf_net **out)
{
    snprintf(zfviz, sizeof zfviz, "%s", tu_build("tools/zfviz"));
    zf_net *net = mini_net(9);
    char path[4096];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    cr_assert_eq(zf_net_save_safetensors(net, path), ZF_OK, "%s", zf_last_error());
    const int64_t isz = zf_net_in_size(net);
    float *x = malloc(8 * isz);
    picture(x, net->in_h, net->in_w, 0);
    picture(x + isz, net->in_h, net->in_w, 2);
    snprintf(path, sizeof path, "%s/in.npy", dir);
    const int64_t shape[4] = {2, 1, net->in_h, net->in_w};
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, x, 4, shape), ZF_OK);
    free(x);
    *out = net;
}

Test(invariance, command_csv_matches_naive_forward)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("invariance-cli"));
    zf_net *net;
    write_case(dir, &net);
    const int rc = tu_system("%s invariance --arch alexnet-mini --weights %s/w.safetensors %s/in.npy --out %s/out "
                             "--translate -8:8:5 --scale 1:1.5:3 --rotate 0:90:4 >%s/stdout.txt 2>%s/stderr.txt",
                             zfviz, dir, dir, dir, dir, dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    cr_assert_eq(rc, 0, "zfviz invariance: exit %d: %s", rc, tu_read_file(path, NULL));
    snprintf(path, sizeof path, "%s/out/invariance.csv", dir);
    char *csv = tu_read_file(path, NULL);
    cr_assert(csv, "%s: missing", path);
    cr_expect(!strncmp(csv, "zfviz invariance", 16), "first line: %.40s", csv);
    char *line = strchr(csv, '\n') + 1;
    cr_expect(!strncmp(line, "image,class,transform,amount,dist_relu1,dist_relu7,prob,top\n", 60), "header: %.60s",
              line);
    line = strchr(line, '\n') + 1;
    const int64_t isz = zf_net_in_size(net);
    float *x = malloc(8 * isz);
    picture(x, net->in_h, net->in_w, 0);
    picture(x + isz, net->in_h, net->in_w, 2);
    const double amounts[3][4] = {{-8, -4, 0, 4}, {1, 1.25, 1.5}, {0, 30, 60, 90}};
    const int counts[3] = {5, 3, 4};
    int rows_seen = 0;
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 2; i++) {
            double am[5];
            for (int k = 0; k < counts[t]; k++)
                am[k] = t == 0 ? -8 + 4 * k : amounts[t][k];
            naive_row want[5];
            int cls = -1;
            naive_sweep(net, x + isz * i, t, am, counts[t], &cls, want);
            for (int k = 0; k < counts[t]; k++) {
                char name[64], tname[32];
                int c, top;
                double a, d1, d7, pr;
                cr_assert(sscanf(line, "%63[^,],%d,%31[^,],%lf,%lf,%lf,%lf,%d", name, &c, tname, &a, &d1, &d7, &pr,
                                 &top) == 8, "row %d: %.80s", rows_seen, line);
                char want_name[32];
                snprintf(want_name, sizeof want_name, "in.npy[%d]", i);
                cr_expect_str_eq(name, want_name);
                cr_expect_str_eq(tname, zf_transform_name(t));
                cr_expect(fabs(a - am[k]) < 1e-9, "row %d: amount %g, not %g", rows_seen, a, am[k]);
                cr_expect_eq(c, cls);
                expect_close(d1, want[k].d1, 1e-4, 1e-3, "csv relu1", rows_seen);
                expect_close(d7, want[k].d7, 1e-4, 1e-3, "csv relu7", rows_seen);
                expect_close(pr, want[k].prob, 1e-4, 1e-6, "csv prob", rows_seen);
                cr_expect_eq(top, want[k].top);
                line = strchr(line, '\n') + 1;
                rows_seen++;
            }
        }
    cr_expect_eq(*line, 0, "more rows than the sweeps: %.60s", line);
    free(csv);
    /* The arrays: (images, N, 3) and the amounts, and a figure. */
    zf_tensor *t = NULL;
    snprintf(path, sizeof path, "%s/out/rotate.npy", dir);
    cr_assert_eq(zf_npy_read(path, &t), ZF_OK, "%s", zf_last_error());
    cr_expect(t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 4 && t->shape[2] == 3);
    zf_tensor_free(t);
    snprintf(path, sizeof path, "%s/out/scale_amounts.npy", dir);
    cr_assert_eq(zf_npy_read(path, &t), ZF_OK, "%s", zf_last_error());
    cr_expect(t->ndim == 1 && t->shape[0] == 3 && zf_tensor_f32(t)[2] == 1.5f);
    zf_tensor_free(t);
    snprintf(path, sizeof path, "%s/out/invariance.png", dir);
    tu_rgb im = tu_png_read(path);
    cr_expect(im.w > 800 && im.h > 500, "figure %dx%d", im.w, im.h);
    free(im.px);
    free(x);
    zf_net_free(net);
}

Test(invariance, refuses_bad_input)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("invariance-bad"));
    zf_net *net;
    write_case(dir, &net);
    zf_net_free(net);
    const struct {
        const char *opts, *says;
    } cases[] = {
        {"%s/missing.png", "missing.png"},
        {"%s/in.npy --rotate 0:90:0", "--rotate"},
        {"%s/in.npy --translate 1:2", "--translate"},
        {"%s/in.npy --scale 0:2:3", "--scale"},
        {"%s/in.npy --layers relu1,nosuch", "no layer 'nosuch'"},
        {"%s/in.npy --layers relu1", "--layers"},
        {"%s/in.npy --class 10", "class 10"},
        {"%s/in.npy --transforms translate,skew", "skew"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char opts[4096];
        snprintf(opts, sizeof opts, cases[i].opts, dir);
        const int rc = tu_system("%s invariance --arch alexnet-mini --weights %s/w.safetensors --out %s/out %s "
                                 ">%s/stdout.txt 2>%s/err.txt",
                                 zfviz, dir, dir, opts, dir, dir);
        char path[4096];
        snprintf(path, sizeof path, "%s/err.txt", dir);
        char *msg = tu_read_file(path, NULL);
        cr_assert(msg, "%s: missing", path);
        const char *nl = strchr(msg, '\n');
        cr_expect(nl && nl[1] == 0, "%s: not one line on stderr: %s", opts, msg);
        cr_expect(strstr(msg, cases[i].says), "%s: stderr does not say '%s': %s", opts, cases[i].says, msg);
        cr_expect_eq(rc, 2, "%s: exit %d, not 2", opts, rc);
        snprintf(path, sizeof path, "%s/out", dir);
        cr_expect(access(path, F_OK) != 0, "%s: the output folder was made", opts);
        free(msg);
    }
}
