/* zfviz optimize (feature visualisation by optimisation): the Fourier parameterisation's inverse
 * transform against a naive float64 DFT and the Gaussian blur against a naive float64 convolution,
 * at odd sizes; the optimised target rising and beating 100 random images of the same norm on
 * alexnet-mini and a full-size alexnet with seeded weights, with both methods; the same seed the
 * same bytes, another seed other bytes; the refusals of bad input (exit 2, one line). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/attribution.h"
#include "zf/net.h"
#include "zf/optimize.h"

/* img = Re(sum_k s_k Z_k e^{2 pi i (ky y / h + kx x / w)}) / (4 h w), written out term by term. */
static void naive_fourier(double *img, const float *coef, int c, int h, int w, double decay_power)
{
    const double pi = 3.14159265358979323846;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double acc = 0;
                for (int ky = 0; ky < h; ky++)
                    for (int kx = 0; kx < w; kx++) {
                        const double fy = (double)(ky < h - ky ? ky : h - ky) / h;
                        const double fx = (double)(kx < w - kx ? kx : w - kx) / w;
                        double f = sqrt(fy * fy + fx * fx), fmin = 1.0 / (h > w ? h : w);
                        f = f < fmin ? fmin : f;
                        const double s = sqrt((double)h * w) / pow(f, decay_power);
                        const float *z = coef + (((size_t)ch * h + ky) * w + kx) * 2;
                        const double th = 2 * pi * ((double)ky * y / h + (double)kx * x / w);
                        acc += s * (z[0] * cos(th) - z[1] * sin(th));
                    }
                img[((size_t)ch * h + y) * w + x] = acc / (4.0 * h * w);
            }
}

/* Sizes whose factors are 3, 5 and 7 (the mixed radix), and primes above 7 (Bluestein). */
Test(optimize, fourier_inverse_matches_naive_dft)
{
    const int sizes[][2] = {{9, 15}, {11, 13}, {7, 21}, {1, 5}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int c = 3, h = sizes[s][0], w = sizes[s][1];
        const size_t n = (size_t)c * h * w;
        float *coef = malloc(sizeof(float) * n * 2), *img = malloc(sizeof(float) * n);
        double *ref = malloc(sizeof(double) * n);
        tu_fill_uniform(coef, n * 2, 40 + s, -1, 1);
        for (int pw = 0; pw < 2; pw++) {
            const double dp = pw ? 1.0 : 0.5;
            cr_assert_eq(zf_optimize_fourier_image(img, coef, c, h, w, dp), ZF_OK, "%s", zf_last_error());
            naive_fourier(ref, coef, c, h, w, dp);
            size_t at = 0;
            const double err = tu_max_rel_err(img, ref, n, 1e-3, &at);
            cr_expect(err < 1e-5, "%d x %d, decay power %g: relative error %g at %zu (%g, want %g)", h, w, dp, err,
                      at, img[at], ref[at]);
        }
        free(coef);
        free(img);
        free(ref);
    }
}

/* The blur as one 2-D convolution with the kernel g(dy) g(dx) / (sum g)^2, |d| <= ceil(3 sigma),
 * the nearest edge pixel outside the image. */
static void naive_blur(double *out, const float *in, int c, int h, int w, double sigma)
{
    const int r = (int)ceil(3 * sigma);
    double sum = 0;
    for (int d = -r; d <= r; d++)
        sum += exp(-(double)d * d / (2 * sigma * sigma));
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double acc = 0;
                for (int dy = -r; dy <= r; dy++)
                    for (int dx = -r; dx <= r; dx++) {
                        int yy = y + dy, xx = x + dx;
                        yy = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
                        xx = xx < 0 ? 0 : xx >= w ? w - 1 : xx;
                        const double k = exp(-(double)(dy * dy + dx * dx) / (2 * sigma * sigma)) / (sum * sum);
                        acc += k * in[((size_t)ch * h + yy) * w + xx];
                    }
                out[((size_t)ch * h + y) * w + x] = acc;
            }
}

Test(optimize, blur_matches_naive_convolution)
{
    const int c = 2, h = 13, w = 17;
    const size_t n = (size_t)c * h * w;
    float *in = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
    double *ref = malloc(sizeof(double) * n);
    tu_fill_uniform(in, n, 5, -2, 3);
    const double sigmas[] = {0.5, 1.0, 1.7, 3.0};
    for (size_t s = 0; s < sizeof sigmas / sizeof sigmas[0]; s++) {
        cr_assert_eq(zf_optimize_blur(out, in, c, h, w, sigmas[s]), ZF_OK, "%s", zf_last_error());
        naive_blur(ref, in, c, h, w, sigmas[s]);
        size_t at = 0;
        const double err = tu_max_rel_err(out, ref, n, 1e-2, &at);
        cr_expect(err < 1e-5, "sigma %g: relative error %g at %zu (%g, want %g)", sigmas[s], err, at, out[at], ref[at]);
    }
    /* in place gives the same */
    memcpy(out, in, sizeof(float) * n);
    cr_assert_eq(zf_optimize_blur(out, out, c, h, w, 1.0), ZF_OK);
    naive_blur(ref, in, c, h, w, 1.0);
    size_t at = 0;
    cr_expect(tu_max_rel_err(out, ref, n, 1e-2, &at) < 1e-5, "in place: %g, want %g at %zu", out[at], ref[at], at);
    free(in);
    free(out);
    free(ref);
}

/* Optimises `t` on `net` with `p`: the value ascended rises (the means of the trace's four
 * quarters increase; jitter and transformations make single steps noisy), and the final image's
 * value beats each of 100 Gaussian images scaled to its L2 norm (around the mean colour, 0). */
static void check_rises_and_beats_random(zf_net *net, const zf_attr_target *t, const zf_optimize_params *p,
                                         const char *what)
{
    enum { RANDOM = 100, BATCH = 10 };
    zf_backprop *b = NULL;
    cr_assert_eq(zf_backprop_new(net, BATCH, &b), ZF_OK, "%s", zf_last_error());
    const size_t in = (size_t)zf_net_in_size(net);
    float *img = malloc(sizeof(float) * in), *rnd = malloc(sizeof(float) * in * BATCH);
    double *trace = malloc(sizeof(double) * (size_t)p->steps), final = 0;
    cr_assert_eq(zf_optimize_run(b, img, trace, t, NULL, 1, p, NULL, NULL), ZF_OK, "%s: %s", what, zf_last_error());
    double quarter[4] = {0};
    for (int s = 0; s < p->steps; s++)
        quarter[s * 4 / p->steps] += trace[s];
    for (int k = 1; k < 4; k++)
        cr_expect(quarter[k] / (p->steps / 4) > quarter[k - 1] / (p->steps / 4),
                  "%s: quarter %d of the trace has a mean %g, below quarter %d's %g", what, k + 1,
                  quarter[k] / (p->steps / 4), k, quarter[k - 1] / (p->steps / 4));
    cr_assert_eq(zf_attr_value(b, img, t, &final), ZF_OK, "%s", zf_last_error());
    double norm = 0;
    for (size_t k = 0; k < in; k++)
        norm += (double)img[k] * img[k];
    norm = sqrt(norm);
    double best = -INFINITY;
    uint64_t st = 12345;
    const zf_layer *l = &net->layers[t->layer];
    const size_t per = (size_t)zf_layer_out_size(l), hw = (size_t)l->out_h * l->out_w;
    for (int r0 = 0; r0 < RANDOM; r0 += BATCH) {
        for (int j = 0; j < BATCH; j++) {
            float *x = rnd + (size_t)j * in;
            double rn = 0;
            for (size_t k = 0; k < in; k++) {
                /* Box-Muller from the test's own generator */
                const double u1 = ((double)(tu_mix(&st) >> 11) + 0.5) * 0x1p-53, u2 = (double)(tu_mix(&st) >> 11) * 0x1p-53;
                x[k] = (float)(sqrt(-2 * log(u1)) * cos(2 * 3.14159265358979323846 * u2));
                rn += (double)x[k] * x[k];
            }
            for (size_t k = 0; k < in; k++)
                x[k] = (float)(x[k] * norm / sqrt(rn));
        }
        cr_assert_eq(zf_net_forward_upto(net, rnd, BATCH, t->layer), ZF_OK, "%s", zf_last_error());
        for (int j = 0; j < BATCH; j++) {
            const float *a = net->acts[t->layer] + (size_t)j * per + (size_t)t->channel * hw;
            double v = 0;
            if (t->y >= 0)
                v = a[(size_t)t->y * l->out_w + t->x];
            else
                for (size_t q = 0; q < hw; q++)
                    v += a[q];
            best = v > best ? v : best;
        }
    }
    cr_expect(final > best, "%s: the optimised image gives %g, a random image of its norm %g", what, final, best);
    cr_log_info("%s: trace quarters %g %g %g %g, final %g, best of %d random images %g", what,
                quarter[0] / (p->steps / 4), quarter[1] / (p->steps / 4), quarter[2] / (p->steps / 4),
                quarter[3] / (p->steps / 4), final, RANDOM, best);
    free(img);
    free(rnd);
    free(trace);
    zf_backprop_free(b);
}

static zf_net *seeded_net(const char *arch, uint64_t seed)
{
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin(arch, &net), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_init_random(net, seed), ZF_OK, "%s", zf_last_error());
    return net;
}

Test(optimize, mini_net_target_rises_and_beats_random_images)
{
    zf_net *net = seeded_net("alexnet-mini", 3);
    const zf_attr_target unit = {zf_net_find(net, "relu3"), 5, -1, -1};
    const zf_attr_target pos = {zf_net_find(net, "conv4"), 7, 3, 2};
    const zf_attr_target cls = {zf_attr_logits_layer(net, 0), 4, -1, -1};
    const zf_attr_target *targets[] = {&unit, &pos, &cls};
    const char *names[] = {"relu3 c5 total", "conv4 c7 at 3,2", "class 4 score"};
    for (int m = 0; m < 2; m++) {
        zf_optimize_params p = zf_optimize_defaults(m ? ZF_OPTIMIZE_FOURIER : ZF_OPTIMIZE_YOSINSKI);
        p.steps = 32; /* quarters of 8 steps: whole periods of the blur (every 4) */
        p.seed = 9;
        for (int k = 0; k < 3; k++) {
            char what[128];
            snprintf(what, sizeof what, "alexnet-mini %s %s", m ? "fourier" : "yosinski", names[k]);
            check_rises_and_beats_random(net, targets[k], &p, what);
        }
    }
    zf_net_free(net);
}

Test(optimize, alexnet_target_rises_and_beats_random_images)
{
    zf_net *net = seeded_net("alexnet", 1);
    const zf_attr_target unit = {zf_net_find(net, "relu2"), 11, -1, -1};
    for (int m = 0; m < 2; m++) {
        zf_optimize_params p = zf_optimize_defaults(m ? ZF_OPTIMIZE_FOURIER : ZF_OPTIMIZE_YOSINSKI);
        /* Fourier starts from an even grey and needs more steps, here at twice Lucid's rate */
        p.steps = m ? 32 : 16;
        p.lr = m ? 0.1 : p.lr;
        p.seed = 2;
        check_rises_and_beats_random(net, &unit, &p, m ? "alexnet fourier relu2 c11" : "alexnet yosinski relu2 c11");
    }
    zf_net_free(net);
}

/* An image's random stream is its own: optimised in a batch of three or alone, the same image. */
Test(optimize, batch_does_not_change_an_image)
{
    zf_net *net = seeded_net("alexnet-mini", 3);
    zf_backprop *b = NULL;
    cr_assert_eq(zf_backprop_new(net, 3, &b), ZF_OK);
    const int l = zf_net_find(net, "relu4");
    const zf_attr_target t[3] = {{l, 1, -1, -1}, {l, 6, -1, -1}, {l, 6, -1, -1}};
    const int sample[3] = {0, 0, 1};
    const size_t in = (size_t)zf_net_in_size(net);
    float *batch = malloc(sizeof(float) * in * 3), *alone = malloc(sizeof(float) * in);
    for (int m = 0; m < 2; m++) {
        zf_optimize_params p = zf_optimize_defaults(m ? ZF_OPTIMIZE_FOURIER : ZF_OPTIMIZE_YOSINSKI);
        p.steps = 6;
        cr_assert_eq(zf_optimize_run(b, batch, NULL, t, sample, 3, &p, NULL, NULL), ZF_OK, "%s", zf_last_error());
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(zf_optimize_run(b, alone, NULL, &t[i], &sample[i], 1, &p, NULL, NULL), ZF_OK);
            size_t at = 0;
            const double err = tu_max_rel_err_f(batch + (size_t)i * in, alone, in, 1e-3, &at);
            cr_expect(err < 1e-3, "method %d image %d: batch and alone differ by %g at %zu", m, i, err, at);
        }
        /* two samples of one unit differ */
        size_t at = 0;
        cr_expect(tu_max_rel_err_f(batch + in, batch + 2 * in, in, 1e-3, &at) > 0.1,
                  "method %d: samples 0 and 1 of one unit are alike", m);
    }
    free(batch);
    free(alone);
    zf_backprop_free(b);
    zf_net_free(net);
}

/* Lucid's diversity written out in float64: each image's Gram matrix over positions, normalised,
 * and (1 / group size) * the sum over ordered pairs of a group of their inner products. */
static double diversity_ref(const double *a, int n, int c, int hw, const int *group)
{
    double *g = calloc((size_t)n * c * c, sizeof(double));
    for (int i = 0; i < n; i++) {
        double *gi = g + (size_t)i * c * c, ss = 0;
        for (int p = 0; p < c; p++)
            for (int q = 0; q < c; q++) {
                double v = 0;
                for (int k = 0; k < hw; k++)
                    v += a[((size_t)i * c + p) * hw + k] * a[((size_t)i * c + q) * hw + k];
                gi[p * c + q] = v;
                ss += v * v;
            }
        for (int k = 0; k < c * c && ss > 0; k++)
            gi[k] /= sqrt(ss);
    }
    double d = 0;
    for (int i = 0; i < n; i++) {
        int m = 0;
        for (int j = 0; j < n; j++)
            m += group[j] == group[i];
        for (int j = 0; j < n; j++)
            if (j != i && group[j] == group[i])
                for (int k = 0; k < c * c; k++)
                    d += g[(size_t)i * c * c + k] * g[(size_t)j * c * c + k] / m;
    }
    free(g);
    return d;
}

/* The diversity term and its gradient against the float64 formula and its central differences,
 * with two groups (three images and one alone) and an image of zeros in the first. */
Test(optimize, diversity_and_its_gradient_match_float64)
{
    const int n = 5, c = 4, hw = 7, group[5] = {0, 0, 2, 0, 0};
    const size_t count = (size_t)n * c * hw;
    float *a = malloc(sizeof(float) * count), *g = malloc(sizeof(float) * count);
    double *ad = malloc(sizeof(double) * count);
    tu_fill_uniform(a, count, 41, -1, 1);
    memset(a + 4 * c * hw, 0, sizeof(float) * c * hw); /* image 4: all zero */
    for (size_t k = 0; k < count; k++)
        ad[k] = a[k];
    const double d = zf_optimize_diversity(a, n, c, hw, group, g), want = diversity_ref(ad, n, c, hw, group);
    cr_expect(fabs(d - want) <= 1e-12 * fabs(want) && want > 0.1, "D %.15g, float64 %.15g", d, want);
    double worst = 0, scale = 0;
    for (size_t k = 0; k < count; k++) {
        const double h = 1e-5, x = ad[k];
        ad[k] = x + h;
        const double up = diversity_ref(ad, n, c, hw, group);
        ad[k] = x - h;
        const double dn = diversity_ref(ad, n, c, hw, group);
        ad[k] = x;
        const double fd = k >= (size_t)4 * c * hw ? 0 : (up - dn) / (2 * h); /* at zero: no gradient */
        worst = fmax(worst, fabs(g[k] - fd));
        scale = fmax(scale, fabs(fd));
    }
    cr_expect(scale > 0.01 && worst <= 1e-5 * scale, "gradient off by %g of %g", worst, scale);
    /* one group without a group array: Lucid's term over the whole batch */
    const int one[5] = {0, 0, 0, 0, 0};
    cr_expect(fabs(zf_optimize_diversity(a, n, c, hw, NULL, NULL) - diversity_ref(ad, n, c, hw, one)) <= 1e-12,
              "NULL groups: one group");
    free(a);
    free(g);
    free(ad);
}

/* --diversity sets a unit's images apart: the Gram similarity D of their relu3 outputs falls
 * (1.89 to 0.18 was seen with 3 images of a conv3 channel at weight 200) while each target still
 * rises above its start; a negative weight and a layer above the target's are refused. */
Test(optimize, diversity_sets_a_units_images_apart)
{
    zf_net *net = seeded_net("alexnet-mini", 3);
    zf_backprop *b = NULL;
    cr_assert_eq(zf_backprop_new(net, 3, &b), ZF_OK);
    const int l = zf_net_find(net, "relu3");
    const zf_attr_target t[3] = {{l, 5, -1, -1}, {l, 5, -1, -1}, {l, 5, -1, -1}};
    const int sample[3] = {0, 1, 2}, group[3] = {0, 0, 0};
    const zf_layer *ly = &net->layers[l];
    const size_t in = (size_t)zf_net_in_size(net), per = (size_t)zf_layer_out_size(ly);
    float *img = malloc(sizeof(float) * in * 3);
    double *acts = malloc(sizeof(double) * per * 3), d[2], start[3], trace[3 * 40];
    for (int k = 0; k < 2; k++) {
        zf_optimize_params p = zf_optimize_defaults(ZF_OPTIMIZE_YOSINSKI);
        p.steps = 40;
        p.init_sd = 0.1;
        p.diversity = k ? 200 : 0;
        cr_assert_eq(zf_optimize_run(b, img, trace, t, sample, 3, &p, NULL, NULL), ZF_OK, "%s", zf_last_error());
        cr_assert_eq(zf_net_forward_upto(net, img, 3, l), ZF_OK);
        for (size_t q = 0; q < per * 3; q++)
            acts[q] = net->acts[l][q];
        d[k] = diversity_ref(acts, 3, ly->out_c, ly->out_h * ly->out_w, group);
        for (int i = 0; i < 3; i++) {
            double v = 0;
            for (int q = 0; q < ly->out_h * ly->out_w; q++)
                v += net->acts[l][(size_t)i * per + (size_t)5 * ly->out_h * ly->out_w + q];
            if (!k)
                start[i] = trace[(size_t)i * 40];
            cr_expect(v > trace[(size_t)i * 40], "weight %g, image %d: %g, not above its start %g", p.diversity, i, v,
                      trace[(size_t)i * 40]);
        }
    }
    cr_expect(d[1] < 0.5 * d[0], "D %g with the term, %g without", d[1], d[0]);
    cr_log_info("diversity of relu3 c5's images: %g without the term, %g at 200 (starts %g %g %g)", d[0], d[1],
                start[0], start[1], start[2]);
    /* refused: a weight below 0, a layer above the target's */
    zf_optimize_params p = zf_optimize_defaults(ZF_OPTIMIZE_YOSINSKI);
    p.diversity = -1;
    cr_expect_eq(zf_optimize_run(b, img, NULL, t, sample, 3, &p, NULL, NULL), ZF_ERR_ARG);
    p.diversity = 1;
    p.diversity_layer = zf_net_find(net, "conv5");
    cr_expect_eq(zf_optimize_run(b, img, NULL, t, sample, 3, &p, NULL, NULL), ZF_ERR_ARG);
    free(img);
    free(acts);
    zf_backprop_free(b);
    zf_net_free(net);
}

/* Yosinski's start is noise of init_sd of the pixel range: with the steps made negligible (a
 * rate of 1e-12, no blur, no decay), the image at 0.05 is five times the image at 0.01, pixel by
 * pixel (the same random stream), and at 0 it is the mean colour, 0 everywhere. */
Test(optimize, yosinski_start_noise_scales_with_init_sd)
{
    zf_net *net = seeded_net("alexnet-mini", 3);
    zf_backprop *b = NULL;
    cr_assert_eq(zf_backprop_new(net, 1, &b), ZF_OK);
    const zf_attr_target t = {zf_net_find(net, "relu4"), 1, -1, -1};
    const size_t in = (size_t)zf_net_in_size(net);
    float *img[3];
    const double sd[3] = {0.01, 0.05, 0};
    for (int k = 0; k < 3; k++) {
        zf_optimize_params p = zf_optimize_defaults(ZF_OPTIMIZE_YOSINSKI);
        p.steps = 1;
        p.lr = 1e-12;
        p.blur_every = 0;
        p.decay = 0;
        p.init_sd = sd[k];
        img[k] = malloc(sizeof(float) * in);
        cr_assert_eq(zf_optimize_run(b, img[k], NULL, &t, NULL, 1, &p, NULL, NULL), ZF_OK, "%s", zf_last_error());
    }
    double big = 0;
    for (size_t i = 0; i < in; i++) {
        big = fmax(big, fabs(img[0][i]));
        cr_assert(fabs(img[1][i] - 5.0 * img[0][i]) <= 1e-5 * fabs(img[1][i]) + 1e-9,
                  "pixel %zu: %g at sd 0.05, %g at 0.01", i, img[1][i], img[0][i]);
        cr_assert(fabs(img[2][i]) <= 1e-9, "pixel %zu: %g at sd 0", i, img[2][i]);
    }
    cr_assert(big > 0, "the start at sd 0.01 is all zero");
    for (int k = 0; k < 3; k++)
        free(img[k]);
    zf_optimize_params bad = zf_optimize_defaults(ZF_OPTIMIZE_YOSINSKI);
    bad.init_sd = -1;
    cr_assert_eq(zf_optimize_check(&bad), ZF_ERR_ARG);
    zf_backprop_free(b);
    zf_net_free(net);
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Yosinski's clipping of small norms: one step with --norm-pct 50 is the same step without it, the
 * pixels whose norm over channels is below that image's median norm set to 0 (the clipping comes
 * last, before the range, which only big pixels reach); with --contrib-pct 30 at least 30% of the
 * pixels end at 0. */
Test(optimize, clipping_of_small_norms_and_contributions)
{
    zf_net *net = seeded_net("alexnet-mini", 3);
    zf_backprop *b = NULL;
    cr_assert_eq(zf_backprop_new(net, 1, &b), ZF_OK);
    const zf_attr_target t = {zf_net_find(net, "relu4"), 3, -1, -1};
    const size_t in = (size_t)zf_net_in_size(net), hw = (size_t)net->in_h * net->in_w;
    float *plain = malloc(sizeof(float) * in), *clipped = malloc(sizeof(float) * in);
    float *norms = malloc(sizeof(float) * hw), *sorted = malloc(sizeof(float) * hw);
    zf_optimize_params p = zf_optimize_defaults(ZF_OPTIMIZE_YOSINSKI);
    p.steps = 1;
    p.decay = 0;
    cr_assert_eq(zf_optimize_run(b, plain, NULL, &t, NULL, 1, &p, NULL, NULL), ZF_OK, "%s", zf_last_error());
    p.norm_pct = 50;
    cr_assert_eq(zf_optimize_run(b, clipped, NULL, &t, NULL, 1, &p, NULL, NULL), ZF_OK, "%s", zf_last_error());
    for (size_t q = 0; q < hw; q++) {
        double s2 = 0;
        for (int c = 0; c < net->in_c; c++)
            s2 += (double)plain[c * hw + q] * plain[c * hw + q];
        norms[q] = sorted[q] = (float)sqrt(s2);
    }
    qsort(sorted, hw, sizeof(float), cmp_float);
    const float cut = sorted[(hw + 1) / 2 - 1];
    size_t wrong = 0, zeros = 0, first = hw;
    for (size_t q = 0; q < hw; q++)
        for (int c = 0; c < net->in_c; c++) {
            const float want = norms[q] < cut ? 0.0f : plain[c * hw + q];
            zeros += clipped[c * hw + q] == 0.0f;
            if (clipped[c * hw + q] != want && !wrong++)
                first = q;
        }
    cr_expect(wrong == 0, "%zu pixels differ from the step without clipping, the first %zu (norm %g, median %g)",
              wrong, first, first < hw ? norms[first] : 0.0, cut);
    cr_expect(zeros >= hw / 2 - 1, "only %zu of %zu pixels at 0", zeros, hw);
    p.norm_pct = 0;
    p.contrib_pct = 30;
    p.steps = 3;
    cr_assert_eq(zf_optimize_run(b, clipped, NULL, &t, NULL, 1, &p, NULL, NULL), ZF_OK, "%s", zf_last_error());
    zeros = 0;
    for (size_t k = 0; k < in; k++)
        zeros += clipped[k] == 0.0f;
    cr_expect(zeros >= (size_t)(0.3 * (double)in) - 1, "contributions: only %zu of %zu pixels at 0", zeros, in);
    free(plain);
    free(clipped);
    free(norms);
    free(sorted);
    zf_backprop_free(b);
    zf_net_free(net);
}

static char zfviz[4096];

/* zfviz optimize on alexnet-mini with seeded weights, `opts` and --out dir; the exit status.
 * stdout and stderr go to log/out.txt and log/err.txt. */
static int run_optimize(const char *dir, const char *log, const char *opts)
{
    snprintf(zfviz, sizeof zfviz, "%s", tu_build("tools/zfviz"));
    return tu_system("%s optimize --arch alexnet-mini --weights random:3 --out %s %s >%s/out.txt 2>%s/err.txt", zfviz,
                     dir, opts, log, log);
}

static int same_file(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *x = tu_slurp(a, &la), *y = tu_slurp(b, &lb);
    const int same = la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

Test(optimize, same_seed_same_bytes_other_seed_other_bytes)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("optimize-seed"));
    const char *methods[] = {"yosinski", "fourier"};
    for (int m = 0; m < 2; m++) {
        char a[2300], b[2300], c[2300], opts[256];
        snprintf(a, sizeof a, "%s/%s-a", dir, methods[m]);
        snprintf(b, sizeof b, "%s/%s-b", dir, methods[m]);
        snprintf(c, sizeof c, "%s/%s-c", dir, methods[m]);
        snprintf(opts, sizeof opts, "--method %s --layer relu3 --units 2-3 --count 2 --steps 5 --seed 4", methods[m]);
        cr_assert_eq(run_optimize(a, dir, opts), 0, "%s: exit not 0", opts);
        cr_assert_eq(run_optimize(b, dir, opts), 0, "%s: exit not 0", opts);
        snprintf(opts, sizeof opts, "--method %s --layer relu3 --units 2-3 --count 2 --steps 5 --seed 5", methods[m]);
        cr_assert_eq(run_optimize(c, dir, opts), 0);
        const char *files[] = {"relu3-c2-s0.png", "relu3-c2-s1.png", "relu3-c3-s1.npy", "relu3-grid.png"};
        for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
            char pa[2600], pb[2600], pc[2600];
            snprintf(pa, sizeof pa, "%s/%s", a, files[f]);
            snprintf(pb, sizeof pb, "%s/%s", b, files[f]);
            snprintf(pc, sizeof pc, "%s/%s", c, files[f]);
            cr_expect(same_file(pa, pb), "%s %s: seed 4 twice gave other bytes", methods[m], files[f]);
            cr_expect(!same_file(pa, pc), "%s %s: seeds 4 and 5 gave the same bytes", methods[m], files[f]);
        }
    }
}

/* Where the image `tile` lies unchanged in `g`; 0 if nowhere. */
static int find_tile(const tu_rgb *g, const tu_rgb *tile, int *at_x, int *at_y)
{
    for (int y = 0; y + tile->h <= g->h; y++)
        for (int x = 0; x + tile->w <= g->w; x++) {
            int same = 1;
            for (int r = 0; r < tile->h && same; r++)
                same = !memcmp(g->px + ((size_t)(y + r) * g->w + x) * 3, tile->px + (size_t)r * tile->w * 3,
                               (size_t)tile->w * 3);
            if (same) {
                *at_x = x;
                *at_y = y;
                return 1;
            }
        }
    return 0;
}

/* The grid: each unit's images in a row, every tile the image's own PNG unchanged, with a caption
 * under it (ink below each tile); with --no-title the bare tiles 4 pixels apart and no text. */
Test(optimize, grid_has_every_image_and_a_caption_under_each)
{
    char dir[2048], a[2300], b[2300], path[2600];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("optimize-grid"));
    snprintf(a, sizeof a, "%s/captioned", dir);
    snprintf(b, sizeof b, "%s/bare", dir);
    const char *opts = "--layer relu3 --units 2-3 --count 2 --steps 3 --seed 4";
    cr_assert_eq(run_optimize(a, dir, opts), 0, "%s: exit not 0", opts);
    char bare_opts[256];
    snprintf(bare_opts, sizeof bare_opts, "%s --no-title", opts);
    cr_assert_eq(run_optimize(b, dir, bare_opts), 0, "%s: exit not 0", bare_opts);
    snprintf(path, sizeof path, "%s/relu3-grid.png", b);
    tu_rgb bare = tu_png_read(path);
    cr_expect(bare.w == 2 * 112 + 3 * 4 && bare.h == 2 * 112 + 3 * 4, "bare grid is %d x %d", bare.w, bare.h);
    snprintf(path, sizeof path, "%s/relu3-grid.png", a);
    tu_rgb g = tu_png_read(path);
    const char *tiles[] = {"relu3-c2-s0", "relu3-c2-s1", "relu3-c3-s0", "relu3-c3-s1"};
    int xs[4], ys[4];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s.png", a, tiles[i]);
        tu_rgb t = tu_png_read(path);
        cr_assert(t.w == 112 && t.h == 112, "%s is %d x %d", path, t.w, t.h);
        cr_assert(find_tile(&g, &t, &xs[i], &ys[i]), "%s is not in the grid unchanged", tiles[i]);
        free(t.px);
    }
    /* a row per unit, its samples side by side */
    cr_assert(ys[0] == ys[1] && ys[2] == ys[3] && ys[2] > ys[0] && xs[1] > xs[0] && xs[0] == xs[2],
              "tiles at (%d,%d) (%d,%d) (%d,%d) (%d,%d)", xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], xs[3], ys[3]);
    /* ink between each tile and what lies below it: its caption */
    for (int i = 0; i < 4; i++) {
        const int end = i < 2 ? ys[2] : g.h;
        int dark = 0;
        for (int y = ys[i] + 112; y < end; y++)
            for (int x = xs[i]; x < xs[i] + 112; x++)
                dark += g.px[((size_t)y * g.w + x) * 3] < 100;
        cr_expect(dark > 20, "%s: no caption under its tile (%d dark pixels)", tiles[i], dark);
    }
    /* the bare grid has no ink between its tiles */
    int dark = 0;
    for (int y = 112 + 4; y < 112 + 8; y++)
        for (int x = 0; x < bare.w; x++)
            dark += bare.px[((size_t)y * bare.w + x) * 3] < 250;
    cr_expect(dark == 0, "the bare grid has %d non-white pixels in its gap", dark);
    free(g.px);
    free(bare.px);
}

/* Each is refused with exit 2 and one line on stderr that says what is wrong, and makes nothing. */
Test(optimize, refuses_bad_input)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("optimize-bad"));
    const struct {
        const char *opts, *says;
    } cases[] = {
        {"--layer relu3 --units 384", "channel 384 out of range"},
        {"--units 10", "channel 10 out of range"},
        {"--layer conv5 --units 0 --position 7,0", "position 7,0 out of range"},
        {"--steps 0", "--steps"},
        {"--layer nosuch", "no layer 'nosuch'"},
        {"--layer relu3 --units 3-1", "--units"},
        {"--layer relu3 --units 1,,2", "--units"},
        {"--layer relu3 --units x", "--units"},
        {"--method deepdream", "--method"},
        {"--lr 0", "--lr"},
        {"--layer relu3 --prob", "--prob"},
        {"--layer relu3 --diversity 10", "--count 2 or more"},
        {"--layer relu3 --count 9 --diversity 10", "--batch 9 or more"},
        {"--layer relu3 --count 2 --diversity-layer conv1", "--diversity-layer needs --diversity"},
        {"--layer relu3 --count 2 --diversity 10 --diversity-layer conv4", "at or below the target's layer"},
        {"--layer relu3 --count 2 --diversity 10 --diversity-layer nosuch", "no such layer"},
        {"--layer relu3 --count 2 --diversity -1", "--diversity"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[2300], path[4096];
        snprintf(out, sizeof out, "%s/out", dir);
        const int rc = run_optimize(out, dir, cases[i].opts);
        snprintf(path, sizeof path, "%s/err.txt", dir);
        char *msg = tu_read_file(path, NULL);
        cr_assert(msg, "%s: missing", path);
        const char *nl = strchr(msg, '\n');
        cr_expect(nl && nl[1] == 0, "%s: not one line on stderr: %s", cases[i].opts, msg);
        cr_expect(strstr(msg, cases[i].says), "%s: stderr does not say '%s': %s", cases[i].opts, cases[i].says, msg);
        cr_expect(access(out, F_OK) != 0, "%s: the output folder was made", cases[i].opts);
        cr_expect(rc == 2, "%s: exit %d, not 2", cases[i].opts, rc);
        free(msg);
    }
}

/* The value a run printed for `name` (stdout: "NAME: ... = V (...)"); NAN where it is missing. */
static double printed_value(const char *out, const char *name)
{
    const char *p = strstr(out, name);
    const char *eq = p ? strstr(p, " = ") : NULL;
    return eq ? strtod(eq + 3, NULL) : NAN;
}

/* A target that no gradient moves from the faint default start (class 1 of the embedded
 * alexnet-mini: its score stays where it began) gets a warning on stderr naming the start's value,
 * which is the score of the start itself (a run of one step too small to move the image); the
 * same target from a larger start rises, and no warning is given. */
Test(optimize, warns_when_the_target_never_rises)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("optimize-stuck"));
    snprintf(zfviz, sizeof zfviz, "%s", tu_build("tools/zfviz"));
    const char *runs[] = {"--steps 1 --lr 1e-12", "--steps 30", "--steps 30 --init-sd 0.1"};
    double value[3], warned_start[3];
    for (int r = 0; r < 3; r++) {
        char path[4096];
        cr_assert_eq(tu_system("%s optimize --arch alexnet-mini --units 1 %s --out %s/o%d >%s/out%d.txt 2>%s/err%d.txt",
                               zfviz, runs[r], dir, r, dir, r, dir, r),
                     0, "%s: exit not 0", runs[r]);
        snprintf(path, sizeof path, "%s/out%d.txt", dir, r);
        char *out = tu_read_file(path, NULL);
        snprintf(path, sizeof path, "%s/err%d.txt", dir, r);
        char *err = tu_read_file(path, NULL);
        cr_assert(out && err);
        value[r] = printed_value(out, "fc8-c1-s0");
        const char *w = strstr(err, "fc8-c1-s0: the target never rose above its start's value (");
        warned_start[r] = w ? strtod(strchr(w, '(') + 1, NULL) : NAN;
        cr_assert(!isnan(value[r]), "%s: no value printed: %s", runs[r], out);
        free(out);
        free(err);
    }
    cr_expect(!isnan(warned_start[0]), "one step that cannot move the image: no warning");
    cr_assert(!isnan(warned_start[1]), "the default start: no warning");
    cr_expect(fabs(warned_start[1] - value[0]) <= 1e-5 * fabs(value[0]),
              "the warning's start %g is not the start's score %g", warned_start[1], value[0]);
    cr_expect(value[1] <= warned_start[1] + 1e-5 * fabs(warned_start[1]), "warned, but the score rose from %g to %g",
              warned_start[1], value[1]);
    cr_expect(isnan(warned_start[2]), "--init-sd 0.1 warned (start %g, end %g)", warned_start[2], value[2]);
    cr_expect(value[2] > value[1] + 1, "--init-sd 0.1 ends at %g, the default at %g", value[2], value[1]);
}
