/* zfviz compare --layer conv2 (Zeiler & Fergus Fig. 6's conv2 panels): the low/mid/high-frequency
 * shares the command prints against a naive float64 DFT of the very projections it writes with
 * --npy, computed here from the definition; the dead count against the projections written; and
 * bad layers refused with one line and exit 2, no figure written. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/dataset.h"
#include "zf/io.h"
#include "zf/net.h"

typedef struct printed {
    int units, dead, rf, pad;
    double low, mid, high;
} printed;

/* One stdout line of the command for the model whose name starts with `model`. */
static printed read_line(const char *out_txt, const char *model)
{
    char *txt = tu_slurp(out_txt, NULL);
    printed p;
    memset(&p, 0, sizeof p);
    char *line = strstr(txt, model);
    cr_assert(line, "no line for %s in:\n%s", model, txt);
    line = strstr(line, "conv2, ");
    cr_assert(line, "no conv2 line for %s", model);
    int got = sscanf(line, "conv2, %d units, dead %d", &p.units, &p.dead);
    char *pr = strstr(line, "projections ");
    cr_assert(got == 2 && pr, "cannot read %s", line);
    int rf2;
    got = sscanf(pr, "projections %dx%d padded to %d, frequency shares low %lf%% mid %lf%% high %lf%%", &p.rf, &rf2,
                 &p.pad, &p.low, &p.mid, &p.high);
    cr_assert_eq(got, 6, "cannot read %s", pr);
    free(txt);
    return p;
}

/* Mean over projections of the share of |DFT|^2 (the rf x rf crop zero-padded to pad x pad, summed
 * over channels, normalised per projection) in r < 1/6, 1/6 <= r < 1/3 and r >= 1/3, r in cycles
 * per pixel; each DFT coefficient summed from its definition. */
static void naive_shares(const float *x, int64_t n, int64_t c, int rf, int pad, double share[3])
{
    double *pw = malloc(sizeof(double) * pad * pad);
    double *are = malloc(sizeof(double) * rf * pad), *aim = malloc(sizeof(double) * rf * pad);
    share[0] = share[1] = share[2] = 0;
    int counted = 0;
    for (int64_t f = 0; f < n; f++) {
        memset(pw, 0, sizeof(double) * pad * pad);
        for (int64_t ch = 0; ch < c; ch++) {
            const float *p = x + (f * c + ch) * rf * rf;
            for (int y = 0; y < rf; y++)
                for (int v = 0; v < pad; v++) {
                    double re = 0, im = 0;
                    for (int xx = 0; xx < rf; xx++) {
                        double ang = -2 * M_PI * (double)v * xx / pad;
                        re += p[y * rf + xx] * cos(ang);
                        im += p[y * rf + xx] * sin(ang);
                    }
                    are[y * pad + v] = re;
                    aim[y * pad + v] = im;
                }
            for (int u = 0; u < pad; u++)
                for (int v = 0; v < pad; v++) {
                    double re = 0, im = 0;
                    for (int y = 0; y < rf; y++) {
                        double ang = -2 * M_PI * (double)u * y / pad, cs = cos(ang), sn = sin(ang);
                        re += are[y * pad + v] * cs - aim[y * pad + v] * sn;
                        im += are[y * pad + v] * sn + aim[y * pad + v] * cs;
                    }
                    pw[u * pad + v] += re * re + im * im;
                }
        }
        double total = 0, b[3] = {0};
        for (int i = 0; i < pad * pad; i++)
            total += pw[i];
        if (!(total > 0))
            continue;
        for (int u = 0; u < pad; u++)
            for (int v = 0; v < pad; v++) {
                double fy = (u < pad / 2 ? u : u - pad) / (double)pad, fx = (v < pad / 2 ? v : v - pad) / (double)pad;
                double r = sqrt(fx * fx + fy * fy);
                b[r < 1.0 / 6 ? 0 : r < 1.0 / 3 ? 1 : 2] += pw[u * pad + v] / total;
            }
        for (int i = 0; i < 3; i++)
            share[i] += b[i];
        counted++;
    }
    cr_assert_gt(counted, 0, "every projection is zero");
    for (int i = 0; i < 3; i++)
        share[i] /= counted;
    free(pw);
    free(are);
    free(aim);
}

static void check_side(const char *dir, const char *npy, const char *model)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    printed p = read_line(path, model);
    snprintf(path, sizeof path, "%s/npy/%s", dir, npy);
    zf_tensor *t;
    cr_assert_eq(zf_npy_read(path, &t), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(t->ndim, 4);
    /* Live units = all units less the dead ones; the crops are rf x rf. */
    cr_assert_eq(t->shape[0], p.units - p.dead, "%s: %lld projections, %d units %d dead", model,
                 (long long)t->shape[0], p.units, p.dead);
    cr_assert_eq(t->shape[2], p.rf);
    cr_assert_eq(t->shape[3], p.rf);
    cr_assert(p.pad >= 2 * p.rf && p.pad % 32 == 0, "padded to %d for %d", p.pad, p.rf);
    double s[3];
    naive_shares(zf_tensor_f32(t), t->shape[0], t->shape[1], p.rf, p.pad, s);
    cr_expect(fabs(100 * s[0] - p.low) < 0.051, "%s low %.3f%% printed %.1f%%", model, 100 * s[0], p.low);
    cr_expect(fabs(100 * s[1] - p.mid) < 0.051, "%s mid %.3f%% printed %.1f%%", model, 100 * s[1], p.mid);
    cr_expect(fabs(100 * s[2] - p.high) < 0.051, "%s high %.3f%% printed %.1f%%", model, 100 * s[2], p.high);
    zf_tensor_free(t);
}

Test(compare_conv2, shares_against_naive_dft)
{
    const char *dir = tu_tmpdir("compare_conv2");
    cr_assert_eq(tu_system("cd '%s' && '%s' compare alexnet-mini zfnet-mini --layer conv2 --max-images 12 --npy npy "
                           "-o c.png >out.txt 2>err",
                           dir, tu_build("tools/zfviz")),
                 0, "zfviz compare --layer conv2 failed");
    check_side(dir, "a.npy", "alexnet-mini");
    check_side(dir, "b.npy", "zfnet-mini");
    char path[4200];
    snprintf(path, sizeof path, "%s/c.png", dir);
    size_t len = 0;
    free(tu_slurp(path, &len));
    cr_expect_gt(len, 1000, "the figure is %zu bytes", len);
}

/* A seeded random pair: the same measure on other projections (and a net whose units can die). */
Test(compare_conv2, seeded_nets)
{
    const char *dir = tu_tmpdir("compare_conv2_seeded");
    cr_assert_eq(tu_system("cd '%s' && '%s' compare alexnet-mini=random:7 zfnet-mini=random:7 --layer relu2 "
                           "--max-images 4 --npy npy -o c.png >out.txt 2>err",
                           dir, tu_build("tools/zfviz")),
                 0, "zfviz compare --layer relu2 failed");
    check_side(dir, "a.npy", "alexnet-mini");
    check_side(dir, "b.npy", "zfnet-mini");

    /* alexnet-mini=random:7 rebuilt here through the public API: the dead units are the conv2 maps
     * whose ReLU is 0 everywhere on the 4 images, and the first projection is the deconvnet's of the
     * strongest activation of all, cropped without losing any of it (same sum of |v|). */
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_load_weights(net, "random:7"), ZF_OK, "%s", zf_last_error());
    zf_dataset *ds;
    cr_assert_eq(zf_dataset_load_fashion_mnist(NULL, 0, &ds), ZF_OK, "%s", zf_last_error());
    const int64_t in_size = zf_net_in_size(net), idx[4] = {0, 1, 2, 3};
    float *x = malloc(sizeof(float) * 4 * in_size);
    cr_assert_eq(zf_dataset_batch(x, NULL, ds, idx, 4, net, NULL, 0), ZF_OK, "%s", zf_last_error());
    zf_dataset_free(ds);
    const int conv = zf_net_find_conv(net, "conv2"), relu = zf_net_rectified(net, conv);
    const zf_layer *l = &net->layers[conv];
    const int k = l->out_c, hw = l->out_h * l->out_w;
    cr_assert_eq(zf_net_reserve(net, 4), ZF_OK);
    cr_assert_eq(zf_net_forward_upto(net, x, 4, relu), ZF_OK, "%s", zf_last_error());
    const float *a = zf_net_act(net, relu);
    int dead = 0, best_c = -1, best_i = 0, best_p = 0;
    float best = 0;
    for (int c = 0; c < k; c++) {
        int fired = 0;
        for (int i = 0; i < 4; i++)
            for (int p = 0; p < hw; p++) {
                float v = a[((size_t)i * k + c) * hw + p];
                fired |= v > 0;
                if (v > best) {
                    best = v;
                    best_c = c;
                    best_i = i;
                    best_p = p;
                }
            }
        dead += !fired;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    printed pa = read_line(path, "alexnet-mini");
    cr_expect_eq(pa.dead, dead, "dead: printed %d, counted %d", pa.dead, dead);
    cr_assert_geq(best_c, 0, "nothing fires");
    cr_assert_eq(zf_net_forward_upto(net, x + best_i * in_size, 1, relu), ZF_OK);
    int y = best_p / l->out_w, xx = best_p % l->out_w;
    zf_deconv_req req = {conv, ZF_DECONV_UNIT, 0, &best_c, &y, &xx};
    float *full = malloc(sizeof(float) * in_size);
    cr_assert_eq(zf_net_deconv(net, full, 1, &req), ZF_OK, "%s", zf_last_error());
    double want = 0, got = 0;
    for (int64_t i = 0; i < in_size; i++)
        want += fabs(full[i]);
    snprintf(path, sizeof path, "%s/npy/a.npy", dir);
    zf_tensor *t;
    cr_assert_eq(zf_npy_read(path, &t), ZF_OK, "%s", zf_last_error());
    const int64_t tile = t->shape[1] * t->shape[2] * t->shape[3];
    for (int64_t i = 0; i < tile; i++)
        got += fabs(zf_tensor_f32(t)[i]);
    cr_expect(want > 0 && fabs(got - want) <= 1e-5 * want, "first projection: sum |v| %.9g, deconvnet's %.9g", got,
              want);
    zf_tensor_free(t);
    free(full);
    free(x);
    zf_net_free(net);
}

static void refused(const char *layer)
{
    const char *dir = tu_tmpdir("compare_conv2_bad");
    cr_assert_eq(tu_system("cd '%s' && '%s' compare alexnet-mini zfnet-mini --layer %s -o c.png >out.txt 2>err", dir,
                           tu_build("tools/zfviz"), layer),
                 2, "--layer %s not refused with exit 2", layer);
    char path[4200];
    snprintf(path, sizeof path, "%s/err", dir);
    char *err = tu_slurp(path, NULL);
    int lines = 0;
    for (const char *p = err; *p; p++)
        lines += *p == '\n';
    cr_expect_eq(lines, 1, "stderr: %s", err);
    cr_expect(strstr(err, layer), "stderr does not name %s: %s", layer, err);
    free(err);
    snprintf(path, sizeof path, "%s/c.png", dir);
    cr_expect_neq(access(path, F_OK), 0, "a figure was written");
}

Test(compare_conv2, fc6_refused) { refused("fc6"); }
Test(compare_conv2, unknown_layer_refused) { refused("conv9"); }
