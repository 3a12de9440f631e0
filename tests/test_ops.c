/* Every CPU op against naive float64 loops written out here from the definitions: convolution
 * with groups/stride/padding and its transpose, the Winograd convolutions, LRN and its backward, max-pool switches and
 * unpooling, average and adaptive pooling, fully connected, softmax. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/fc_internal.h"
#include "../core/winograd_internal.h"
#include "op_cases.h"
#include "testutil.h"
#include "zf/backward.h"
#include "zf/net.h"
#include "zf/ops.h"
#include "zf/tensor.h"

static float *falloc(size_t n)
{
    float *p = zf_alloc(n * sizeof(float));
    cr_assert(p);
    return p;
}

static double *dalloc(size_t n)
{
    double *p = calloc(n, sizeof(double));
    cr_assert(p);
    return p;
}

/* ---- convolution ---- */

/* The shared op cases (op_cases.c, which test_cuda.c runs on the GPU too) against float64. */
static void check_conv(const tu_conv_case *c)
{
    const zf_conv_geom g = tu_conv_case_geom(c);
    const size_t nin = (size_t)g.n * g.c * g.h * g.w, nout = (size_t)g.n * g.k * g.oh * g.ow;
    const size_t nw = (size_t)g.k * (g.c / g.groups) * g.kh * g.kw;
    float *in = falloc(nin), *w = falloc(nw), *b = falloc(g.k), *out = falloc(nout), *dout = falloc(nout);
    float *din = falloc(nin), *ws = falloc(zf_conv_workspace_floats(&g));
    double *ref = dalloc(nout), *dref = dalloc(nin);
    tu_fill_uniform(in, nin, c->seed, -1, 1);
    tu_fill_uniform(w, nw, c->seed + 1, -1, 1);
    tu_fill_uniform(b, g.k, c->seed + 2, -1, 1);
    tu_fill_uniform(dout, nout, c->seed + 3, -1, 1);
    zf_conv_forward(out, in, w, b, &g, ws);
    tu_ref_conv_f(ref, in, w, b, &g);
    /* relative to the largest output: 3x3 and 5x5 windows may go through Winograd, whose
     * rounding follows the scale of the whole map rather than of each value */
    double mx = tu_max_abs_d(ref, nout);
    size_t at;
    double e = tu_max_rel_err(out, ref, nout, mx, &at);
    cr_expect(e < 1e-5, "conv %s: rel err %g at %zu (%g vs %g)", c->what, e, at, out[at], ref[at]);
    zf_conv_backward_data(din, dout, w, &g, ws);
    tu_ref_conv_backward(dref, NULL, NULL, dout, w, &g);
    mx = tu_max_abs_d(dref, nin);
    e = tu_max_rel_err(din, dref, nin, mx, &at);
    cr_expect(e < 1e-5, "conv transpose %s: rel err %g at %zu (%g vs %g)", c->what, e, at, din[at], dref[at]);
    zf_free(in); zf_free(w); zf_free(b); zf_free(out); zf_free(dout); zf_free(din); zf_free(ws);
    free(ref);
    free(dref);
}

Test(conv, cases_match_float64_with_stride_padding_and_groups)
{
    for (size_t i = 0; i < tu_n_conv_cases; i++)
        check_conv(&tu_conv_cases[i]);
}

/* Winograd F(2x2, 3x3), F(4x4, 3x3) and F(4x4, 5x5) against the float64 loops, relative to
 * the output's largest value: odd map sizes (partial tiles on the right and bottom), padding 0 to
 * more than the window needs, groups, several images, and a batch spread over several chunks. */
static void check_winograd(zf_conv_geom g, int r, uint64_t seed)
{
    g.kh = g.kw = r;
    g.sh = g.sw = 1;
    g.oh = zf_window_out(g.h, r, 1, g.pt, g.pt, 0);
    g.ow = zf_window_out(g.w, r, 1, g.pl, g.pl, 0);
    cr_assert(zf_wino_conv_applies(&g));
    const size_t nin = (size_t)g.n * g.c * g.h * g.w, nout = (size_t)g.n * g.k * g.oh * g.ow;
    const size_t nw = (size_t)g.k * (g.c / g.groups) * r * r;
    float *in = falloc(nin), *w = falloc(nw), *b = falloc(g.k), *out = falloc(nout);
    double *ref = dalloc(nout);
    tu_fill_uniform(in, nin, seed, -1, 1);
    tu_fill_uniform(w, nw, seed + 1, -1, 1);
    tu_fill_uniform(b, g.k, seed + 2, -1, 1);
    tu_ref_conv_f(ref, in, w, b, &g);
    double mx = tu_max_abs_d(ref, nout);
    for (int m = r == 3 ? 2 : 4; m <= 4; m += 2) {
        float *u = falloc(zf_wino_conv_filter_floats(&g, m)), *ws = falloc(zf_wino_conv_workspace_floats(&g, m));
        for (size_t i = 0; i < nout; i++)
            out[i] = NAN; /* every output must be written */
        zf_wino_filters(u, w, g.k, g.c / g.groups, m, r);
        zf_wino_conv_forward(out, in, u, b, &g, m, ws);
        size_t at;
        double e = tu_max_rel_err(out, ref, nout, mx, &at);
        cr_expect(e < 1e-4, "F(%dx%d, %dx%d) n%d c%d %dx%d k%d pad %d,%d groups %d: rel err %g at %zu (%g vs %g)", m,
                  m, r, r, g.n, g.c, g.h, g.w, g.k, g.pt, g.pl, g.groups, e, at, out[at], ref[at]);
        zf_free(u);
        zf_free(ws);
    }
    zf_free(in); zf_free(w); zf_free(b); zf_free(out);
    free(ref);
}

Test(conv, winograd_matches_direct_loops)
{
    /* n, c, h, w, k, oh, ow, kh, kw, sh, sw, pt, pl, groups (window and outputs set by the check) */
    check_winograd((zf_conv_geom){1, 5, 13, 13, 7, 0, 0, 0, 0, 0, 0, 1, 1, 1}, 3, 11);
    check_winograd((zf_conv_geom){3, 6, 9, 11, 4, 0, 0, 0, 0, 0, 0, 1, 1, 2}, 3, 12);
    check_winograd((zf_conv_geom){2, 9, 7, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 3}, 3, 13);
    check_winograd((zf_conv_geom){4, 4, 6, 10, 8, 0, 0, 0, 0, 0, 0, 2, 0, 2}, 3, 14);
    check_winograd((zf_conv_geom){2, 3, 3, 3, 2, 0, 0, 0, 0, 0, 0, 0, 2, 1}, 3, 15);   /* one output row */
    check_winograd((zf_conv_geom){5, 16, 1, 17, 9, 0, 0, 0, 0, 0, 0, 1, 1, 1}, 3, 16); /* one input row */
    /* 36 * (16 + 16) * 16 * 16 floats a 64x64 image at F(4x4), 16 images: several chunks */
    check_winograd((zf_conv_geom){16, 16, 64, 64, 16, 0, 0, 0, 0, 0, 0, 1, 1, 1}, 3, 17);
    check_winograd((zf_conv_geom){2, 6, 27, 27, 8, 0, 0, 0, 0, 0, 0, 2, 2, 2}, 5, 18); /* AlexNet's conv2 */
    check_winograd((zf_conv_geom){3, 5, 10, 7, 4, 0, 0, 0, 0, 0, 0, 1, 3, 1}, 5, 19);
    check_winograd((zf_conv_geom){1, 4, 5, 9, 6, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 5, 20);   /* one output row */
    check_winograd((zf_conv_geom){9, 12, 48, 40, 10, 0, 0, 0, 0, 0, 0, 2, 2, 1}, 5, 21); /* several chunks */
    /* the widest output it takes (its row window lives on the stack), and one wider */
    check_winograd((zf_conv_geom){1, 2, 5, 514, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 3, 22);
    check_winograd((zf_conv_geom){1, 2, 6, 516, 3, 0, 0, 0, 0, 0, 0, 1, 0, 1}, 5, 23);
    zf_conv_geom wide = {1, 2, 5, 515, 3, 3, 513, 3, 3, 1, 1, 0, 0, 1};
    cr_expect(!zf_wino_conv_applies(&wide), "a 513-wide output is past the stack window");
}

/* The occlusion's rectangular tiles F(ma x mb, r x r), one tile per lane from its own window
 * (rows of different strides, windows at odd offsets), against float64 correlation: filters
 * through G_a, G_b (zf_wino_filters_ab), inputs through B_a, B_b (zf_wino_tiles_in8), the products
 * summed over channels, back through A_a, A_b (zf_wino_tiles_out_ab). Relative to the largest
 * output. Lanes past the count must be left alone. */
static void check_wino_tile(int ma, int mb, int r, int lanes, uint64_t seed)
{
    enum { C = 5, K = 3, L = ZF_WINO_LANES };
    const int na = ma + r - 1, nb = mb + r - 1, nn = na * nb;
    float w[K * C * 25], u[K * 64 * C];
    tu_fill_uniform(w, (size_t)K * C * r * r, seed, -1, 1);
    zf_wino_filters_ab(u, w, K, C, ma, mb, r);
    /* per lane and channel, a window of na rows of stride ld = nb + 3 + lane, the tile at column 1 */
    float *win = falloc((size_t)L * C * 8 * 16 + 16);
    tu_fill_uniform(win, (size_t)L * C * 8 * 16 + 16, seed + 1, -1, 1);
    float *v = falloc((size_t)nn * C * L);
    for (size_t i = 0; i < (size_t)nn * C * L; i++)
        v[i] = NAN;
    static const float zero[8];
    for (int c = 0; c < C; c++) {
        const float *p[L];
        int ld[L];
        for (int q = 0; q < L; q++) {
            p[q] = q < lanes ? win + ((size_t)q * C + c) * 8 * 16 + 1 : zero;
            ld[q] = q < lanes ? nb + 3 + q : 0;
        }
        /* v (nn, C, L): plane xi, channel c, lane q */
        zf_wino_tiles_in8(v + (size_t)c * L, (size_t)C * L, p, ld, lanes, ma, mb, r);
    }
    for (int xi = 0; xi < nn; xi++)
        for (int c = 0; c < C; c++)
            for (int q = lanes; q < L; q++)
                cr_expect(isnan(v[((size_t)xi * C + c) * L + q]), "F(%dx%d, %d): lane %d of %d written", ma, mb,
                          r, q, lanes);
    for (int k = 0; k < K; k++) {
        float mt[64][L], y[36][L];
        for (int xi = 0; xi < nn; xi++)
            for (int q = 0; q < L; q++) {
                double acc = 0;
                for (int c = 0; c < C; c++)
                    acc += (double)u[((size_t)k * nn + xi) * C + c] * (q < lanes ? v[((size_t)xi * C + c) * L + q] : 0.0);
                mt[xi][q] = (float)acc;
            }
        zf_wino_tiles_out_ab(y, (const float(*)[L])mt, ma, mb, r);
        double ref[36][L], mx = 0;
        for (int q = 0; q < lanes; q++)
            for (int dy = 0; dy < ma; dy++)
                for (int dx = 0; dx < mb; dx++) {
                    double acc = 0;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < r; ky++)
                            for (int kx = 0; kx < r; kx++)
                                acc += (double)w[((size_t)k * C + c) * r * r + ky * r + kx] *
                                       win[((size_t)q * C + c) * 8 * 16 + 1 + (size_t)(dy + ky) * (nb + 3 + q) + dx + kx];
                    ref[dy * mb + dx][q] = acc;
                    mx = fmax(mx, fabs(acc));
                }
        for (int q = 0; q < lanes; q++)
            for (int i = 0; i < ma * mb; i++)
                cr_expect(fabs(y[i][q] - ref[i][q]) <= 1e-5 * mx, "F(%dx%d, %dx%d) filter %d lane %d output %d: %g vs %g",
                          ma, mb, r, r, k, q, i, y[i][q], ref[i][q]);
    }
    zf_free(win);
    zf_free(v);
}

Test(conv, winograd_rectangular_tiles_match_direct_loops)
{
    check_wino_tile(4, 4, 3, 8, 31);
    check_wino_tile(4, 2, 3, 8, 32);
    check_wino_tile(2, 4, 3, 5, 33);
    check_wino_tile(2, 2, 3, 1, 34);
    check_wino_tile(6, 6, 3, 8, 36);
    check_wino_tile(6, 4, 3, 3, 37);
    check_wino_tile(4, 6, 3, 8, 38);
    check_wino_tile(4, 4, 5, 7, 35);
}

/* 5x5 stride-2 layers (ZFNet's conv2) through zf_conv_forward, which runs them as a 3x3
 * convolution of the input's four phases by Winograd once there are enough tiles, against the
 * float64 loops: odd and even sizes, padding, groups, and smaller batches in the first's scratch. */
static void check_stride2_5x5(zf_conv_geom g, uint64_t seed)
{
    g.kh = g.kw = 5;
    g.sh = g.sw = 2;
    g.oh = zf_window_out(g.h, 5, 2, g.pt, g.pt, 0);
    g.ow = zf_window_out(g.w, 5, 2, g.pl, g.pl, 0);
    const size_t in_img = (size_t)g.c * g.h * g.w, out_img = (size_t)g.k * g.oh * g.ow;
    const size_t nw = (size_t)g.k * (g.c / g.groups) * 25;
    float *in = falloc(g.n * in_img), *w = falloc(nw), *b = falloc(g.k), *out = falloc(g.n * out_img);
    float *ws = falloc(zf_conv_workspace_floats(&g));
    double *ref = dalloc(g.n * out_img);
    tu_fill_uniform(in, g.n * in_img, seed, -1, 1);
    tu_fill_uniform(w, nw, seed + 1, -1, 1);
    tu_fill_uniform(b, g.k, seed + 2, -1, 1);
    tu_ref_conv_f(ref, in, w, b, &g);
    double mx = tu_max_abs_d(ref, g.n * out_img);
    for (int n = g.n; n >= 1; n = n > 1 ? n / 3 : 0) {
        zf_conv_geom gn = g;
        gn.n = n;
        for (size_t i = 0; i < n * out_img; i++)
            out[i] = NAN; /* every output must be written */
        zf_conv_forward(out, in, w, b, &gn, ws);
        size_t at;
        double e = tu_max_rel_err(out, ref, n * out_img, mx, &at);
        cr_expect(e < 1e-4, "5x5/2 n%d c%d %dx%d k%d pad %d,%d groups %d: rel err %g at %zu (%g vs %g)", n, g.c, g.h,
                  g.w, g.k, g.pt, g.pl, g.groups, e, at, out[at], ref[at]);
    }
    zf_free(in); zf_free(w); zf_free(b); zf_free(out); zf_free(ws);
    free(ref);
}

Test(conv, stride2_5x5_matches_direct_loops)
{
    /* n, c, h, w, k, oh, ow, kh, kw, sh, sw, pt, pl, groups (window and outputs set by the check) */
    check_stride2_5x5((zf_conv_geom){9, 6, 27, 27, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 31); /* the mini net's conv2 */
    check_stride2_5x5((zf_conv_geom){4, 4, 34, 29, 6, 0, 0, 0, 0, 0, 0, 2, 1, 2}, 32);
    check_stride2_5x5((zf_conv_geom){6, 3, 40, 40, 5, 0, 0, 0, 0, 0, 0, 1, 2, 1}, 33);
    check_stride2_5x5((zf_conv_geom){2, 8, 55, 55, 4, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 34); /* ZFNet's conv2 maps */
}

/* Through zf_conv_forward, which takes Winograd for enough tiles, with scratch sized for the
 * largest batch (as zf_net_reserve does) and smaller batches run in it. */
Test(conv, winograd_dispatch_in_scratch_for_a_larger_batch)
{
    zf_conv_geom big = {24, 12, 13, 13, 10, 13, 13, 3, 3, 1, 1, 1, 1, 2};
    const size_t in_img = 12 * 13 * 13, out_img = 10 * 13 * 13, nw = 10 * 6 * 9;
    float *in = falloc(24 * in_img), *w = falloc(nw), *b = falloc(10), *out = falloc(24 * out_img);
    float *ws = falloc(zf_conv_workspace_floats_bound(&big));
    double *ref = dalloc(24 * out_img);
    tu_fill_uniform(in, 24 * in_img, 21, -1, 1);
    tu_fill_uniform(w, nw, 22, -1, 1);
    tu_fill_uniform(b, 10, 23, -1, 1);
    tu_ref_conv_f(ref, in, w, b, &big);
    double mx = tu_max_abs_d(ref, 24 * out_img);
    const int batches[] = {24, 17, 4, 1}; /* 384 to 16 tiles of 4x4: Winograd down to 4 */
    for (int t = 0; t < 4; t++) {
        zf_conv_geom g = big;
        g.n = batches[t];
        zf_conv_forward(out, in, w, b, &g, ws);
        size_t at;
        double e = tu_max_rel_err(out, ref, g.n * out_img, mx, &at);
        cr_expect(e < 1e-4, "batch %d: rel err %g at %zu (%g vs %g)", g.n, e, at, out[at], ref[at]);
    }
    zf_free(in); zf_free(w); zf_free(b); zf_free(out); zf_free(ws);
    free(ref);
}

/* ---- max-pool and switches ---- */

/* The shared pool cases: the switches are the first maximum, unpooling adds at them, average
 * pooling forward and backward with the case's divisor. */
static void check_pool(const tu_pool_case *c)
{
    const zf_pool_geom g = tu_pool_case_geom(c);
    const size_t nin = (size_t)g.n * g.c * g.h * g.w, nout = (size_t)g.n * g.c * g.oh * g.ow;
    float *in = falloc(nin), *out = falloc(nout), *back = falloc(nin), *dout = falloc(nout);
    int32_t *sw = zf_alloc(nout * sizeof(int32_t)), *rsw = zf_alloc(nout * sizeof(int32_t));
    double *ref = dalloc(nin > nout ? nin : nout);
    cr_assert(sw && rsw);
    tu_pool_case_input(c, in);
    tu_fill_uniform(dout, nout, c->seed + 9, -1, 1);
    zf_maxpool_forward(out, sw, in, &g);
    tu_ref_maxpool(ref, rsw, in, &g);
    for (size_t o = 0; o < nout; o++) {
        cr_assert_eq(sw[o], rsw[o], "maxpool %s: switch at %zu is %d, the first maximum %d", c->what, o, sw[o], rsw[o]);
        cr_assert_eq(out[o], ref[o], "maxpool %s: value at %zu", c->what, o);
    }
    zf_maxpool_unpool(back, dout, sw, &g);
    tu_ref_unpool(ref, dout, rsw, &g);
    size_t at;
    double e = tu_max_rel_err(back, ref, nin, 1.0, &at);
    cr_expect(e < 1e-6, "unpool %s: rel err %g at %zu", c->what, e, at);
    zf_avgpool_forward(out, in, &g, c->avg_pad);
    tu_ref_avgpool(ref, in, &g, c->avg_pad);
    e = tu_max_rel_err(out, ref, nout, 1.0, &at);
    cr_expect(e < 1e-6, "avgpool %s: rel err %g at %zu", c->what, e, at);
    zf_avgpool_backward(back, dout, &g, c->avg_pad);
    tu_ref_avgpool_backward(ref, dout, &g, c->avg_pad);
    e = tu_max_rel_err(back, ref, nin, 1.0, &at);
    cr_expect(e < 1e-6, "avgpool backward %s: rel err %g at %zu", c->what, e, at);
    zf_free(in); zf_free(out); zf_free(back); zf_free(dout); zf_free(sw); zf_free(rsw);
    free(ref);
}

Test(maxpool, cases_switches_unpool_and_average_pools_match_float64)
{
    for (size_t i = 0; i < tu_n_pool_cases; i++)
        check_pool(&tu_pool_cases[i]);
}

Test(maxpool, output_sizes_follow_pytorch_ceil_rule)
{
    cr_assert_eq(zf_window_out(55, 3, 2, 0, 0, 0), 27);
    cr_assert_eq(zf_window_out(110, 3, 2, 1, 1, 0), 55);
    cr_assert_eq(zf_window_out(26, 3, 2, 1, 1, 0), 13);
    cr_assert_eq(zf_window_out(14, 3, 2, 0, 0, 1), 7);  /* ceil((14-3)/2)+1 = 7 */
    cr_assert_eq(zf_window_out(6, 2, 2, 0, 0, 1), 3);
    cr_assert_eq(zf_window_out(5, 2, 2, 1, 1, 1), 3);   /* a 4th window would start in the padding */
}

/* ---- average pooling ---- */

Test(avgpool, adaptive_bins_match_direct_average)
{
    const int n = 2, c = 3, h = 13, w = 11, oh = 6, ow = 4;
    float *in = falloc(n * c * h * w), *out = falloc(n * c * oh * ow);
    tu_fill_uniform(in, n * c * h * w, 21, -1, 1);
    zf_adaptive_avgpool_forward(out, in, n, c, h, w, oh, ow);
    for (int p = 0; p < n * c; p++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                int y0 = (int)floor((double)i * h / oh), y1 = (int)ceil((double)(i + 1) * h / oh);
                int x0 = (int)floor((double)j * w / ow), x1 = (int)ceil((double)(j + 1) * w / ow);
                double s = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        s += in[(size_t)p * h * w + y * w + x];
                s /= (y1 - y0) * (x1 - x0);
                float got = out[(size_t)p * oh * ow + i * ow + j];
                cr_assert(fabs(got - s) < 1e-6, "bin (%d,%d) plane %d: %g vs %g", i, j, p, got, s);
            }
    zf_free(in);
    zf_free(out);
}

Test(avgpool, padded_windows_with_and_without_pad_in_divisor)
{
    const int h = 7, w = 8;
    zf_pool_geom g = {1, 2, h, w, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1};
    g.oh = zf_window_out(h, 3, 2, 1, 1, 0);
    g.ow = zf_window_out(w, 3, 2, 1, 1, 0);
    float *in = falloc(2 * h * w), *out = falloc(2 * g.oh * g.ow);
    tu_fill_uniform(in, 2 * h * w, 22, -1, 1);
    for (int inc = 0; inc < 2; inc++) {
        zf_avgpool_forward(out, in, &g, inc);
        for (int p = 0; p < 2; p++)
            for (int oy = 0; oy < g.oh; oy++)
                for (int ox = 0; ox < g.ow; ox++) {
                    double s = 0;
                    int cnt = 0;
                    for (int y = oy * 2 - 1; y < oy * 2 + 2; y++)
                        for (int x = ox * 2 - 1; x < ox * 2 + 2; x++)
                            if (y >= 0 && y < h && x >= 0 && x < w) {
                                s += in[p * h * w + y * w + x];
                                cnt++;
                            }
                    /* every window lies inside the padded input here, so with padding it is 9 */
                    double ref = s / (inc ? 9 : cnt);
                    float got = out[(p * g.oh + oy) * g.ow + ox];
                    cr_assert(fabs(got - ref) < 1e-6, "avgpool include_pad=%d at (%d,%d): %g vs %g", inc, oy, ox,
                              got, ref);
                }
    }
    zf_free(in);
    zf_free(out);
}

/* ---- LRN ---- */

static double lrn_ref(const float *x, int c, int hw, int i, int q, const zf_lrn_params *p)
{
    double s = 0;
    for (int j = i - p->front; j < i - p->front + p->size; j++)
        if (j >= 0 && j < c)
            s += (double)x[(size_t)j * hw + q] * x[(size_t)j * hw + q];
    return x[(size_t)i * hw + q] / pow(p->k + p->alpha / p->size * s, p->beta);
}

Test(lrn, matches_formula_with_alpha_over_size)
{
    const zf_lrn_params ps[] = {{5, 2, 1e-4f, 0.75f, 1.0f}, {5, 2, 5e-4f, 0.75f, 2.0f}, {4, 2, 0.3f, 0.6f, 1.5f},
                                {3, 1, 2.0f, 0.75f, 1.0f}};
    const int n = 2, c = 11, hw = 1500; /* spans two chunks of positions */
    float *in = falloc(n * c * hw), *out = falloc(n * c * hw);
    tu_fill_uniform(in, n * c * hw, 31, -20, 20);
    for (size_t t = 0; t < sizeof ps / sizeof ps[0]; t++) {
        zf_lrn_forward(out, in, n, c, hw, &ps[t]);
        for (int img = 0; img < n; img++)
            for (int i = 0; i < c; i++)
                for (int q = 0; q < hw; q++) {
                    double ref = lrn_ref(in + (size_t)img * c * hw, c, hw, i, q, &ps[t]);
                    float got = out[((size_t)img * c + i) * hw + q];
                    cr_assert(fabs(got - ref) <= 1e-5 * fmax(fabs(ref), 1e-3),
                              "lrn params %zu at image %d channel %d pos %d: %g vs %g", t, img, i, q, got, ref);
                }
    }
    zf_free(in);
    zf_free(out);
}

Test(lrn, backward_matches_finite_differences)
{
    const zf_lrn_params p = {5, 2, 0.5f, 0.75f, 1.0f};
    const int c = 7, hw = 3;
    float *x = falloc(c * hw), *dy = falloc(c * hw), *dx = falloc(c * hw);
    tu_fill_uniform(x, c * hw, 41, -2, 2);
    tu_fill_uniform(dy, c * hw, 42, -1, 1);
    zf_lrn_backward(dx, dy, x, 1, c, hw, &p);
    for (int j = 0; j < c * hw; j++) {
        /* d/dx_j of sum_i dy_i y_i(x), central differences on the float64 formula */
        const double h = 1e-4;
        double plus = 0, minus = 0;
        float save = x[j];
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            float xs[64];
            memcpy(xs, x, sizeof(float) * c * hw);
            double acc = 0;
            /* evaluate with x_j shifted in double precision */
            for (int i = 0; i < c; i++)
                for (int q = 0; q < hw; q++) {
                    double s = 0;
                    for (int jj = i - p.front; jj < i - p.front + p.size; jj++)
                        if (jj >= 0 && jj < c) {
                            double v = xs[jj * hw + q] + (jj * hw + q == j ? sgn * h : 0.0);
                            s += v * v;
                        }
                    double xi = xs[i * hw + q] + (i * hw + q == j ? sgn * h : 0.0);
                    acc += dy[i * hw + q] * xi / pow(p.k + p.alpha / p.size * s, p.beta);
                }
            if (sgn < 0)
                minus = acc;
            else
                plus = acc;
        }
        x[j] = save;
        double num = (plus - minus) / (2 * h);
        cr_assert(fabs(dx[j] - num) < 1e-4 * fmax(1.0, fabs(num)), "lrn backward at %d: %g vs %g", j, dx[j], num);
    }
    zf_free(x);
    zf_free(dy);
    zf_free(dx);
}

/* ---- fully connected, ReLU, softmax ---- */

Test(fc, batch_one_and_many_match_direct_dot_products)
{
    const int in_f = 517, out_f = 301;
    float *w = falloc((size_t)in_f * out_f), *b = falloc(out_f), *x = falloc(5 * in_f), *y = falloc(5 * out_f);
    tu_fill_uniform(w, (size_t)in_f * out_f, 51, -1, 1);
    tu_fill_uniform(b, out_f, 52, -1, 1);
    tu_fill_uniform(x, 5 * in_f, 53, -1, 1);
    const int batches[] = {1, 2, 5};
    for (int t = 0; t < 3; t++) {
        int n = batches[t];
        zf_fc_forward(y, x, w, b, n, in_f, out_f);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out_f; o++) {
                double s = b[o];
                for (int k = 0; k < in_f; k++)
                    s += (double)x[i * in_f + k] * w[(size_t)o * in_f + k];
                cr_assert(fabs(y[i * out_f + o] - s) < 1e-5 * fmax(1, fabs(s)), "fc n=%d at (%d,%d): %g vs %g", n, i,
                          o, y[i * out_f + o], s);
            }
    }
    zf_free(w); zf_free(b); zf_free(x); zf_free(y);
}

/* y (n, out_f) from fn against float64 dot products, each within 1e-5 of the sum of its terms'
 * magnitudes (the scale its float rounding is relative to). */
typedef void (*fc_fn)(float *, const float *, const float *, const float *, int, int, int);
static void check_fc(fc_fn fn, const char *name, int n, int in_f, int out_f, int with_bias, uint64_t seed)
{
    float *w = falloc((size_t)in_f * out_f), *b = falloc(out_f), *x = falloc((size_t)n * in_f);
    float *y = falloc((size_t)n * out_f);
    tu_fill_uniform(w, (size_t)in_f * out_f, seed, -1, 1);
    tu_fill_uniform(b, out_f, seed + 1, -1, 1);
    tu_fill_uniform(x, (size_t)n * in_f, seed + 2, -1, 1);
    fn(y, x, w, with_bias ? b : NULL, n, in_f, out_f);
    int bad = 0;
    for (int i = 0; i < n && bad < 3; i++)
        for (int o = 0; o < out_f && bad < 3; o++) {
            double s = with_bias ? b[o] : 0.0, mag = fabs(s);
            for (int k = 0; k < in_f; k++) {
                const double t = (double)x[(size_t)i * in_f + k] * w[(size_t)o * in_f + k];
                s += t;
                mag += fabs(t);
            }
            const double got = y[(size_t)i * out_f + o];
            if (!(fabs(got - s) <= 1e-5 * fmax(mag, 1e-30))) {
                cr_expect(0, "%s n=%d in %d out %d at (%d,%d): %.9g vs %.9g", name, n, in_f, out_f, i, o, got, s);
                bad++;
            }
        }
    zf_free(w); zf_free(b); zf_free(x); zf_free(y);
}

Test(fc, streaming_kernel_matches_direct_dot_products)
{
    /* odd sizes: rows left over after the micro-kernels' 8 and 4, columns after the SIMD width,
     * batches not a multiple of 3, more than one pass over the weights (n > 32), tiny in_f */
    const int batches[] = {1, 2, 3, 4, 7, 16, 32, 33, 70};
    for (int t = 0; t < 9; t++)
        check_fc(zf_fc_forward_stream, "stream", batches[t], 1031, 77, t % 2, 60 + t);
    check_fc(zf_fc_forward_stream, "stream", 5, 7, 9, 1, 70);
    check_fc(zf_fc_forward_stream, "stream", 3, 8, 1, 1, 71);
    check_fc(zf_fc_forward_stream, "stream", 2, 40000, 33, 1, 72); /* K cut into blocks */
}

Test(fc, dispatch_on_weights_larger_than_the_caches)
{
    /* 1031 x 1037 weights (over a million): the streaming kernel up to batch 32, OpenBLAS above */
    const int batches[] = {1, 2, 16, 32, 37};
    for (int t = 0; t < 5; t++)
        check_fc(zf_fc_forward, "zf_fc_forward", batches[t], 1031, 1037, 1, 80 + t);
    check_fc(zf_fc_forward_blas, "blas", 3, 1031, 77, 1, 90);
}

Test(activation, relu_and_softmax_match_definitions)
{
    const int n = 3, k = 1000;
    float *x = falloc(n * k), *y = falloc(n * k);
    tu_fill_uniform(x, n * k, 61, -30, 30);
    zf_relu_forward(y, x, (size_t)n * k);
    for (int i = 0; i < n * k; i++)
        cr_assert_eq(y[i], x[i] > 0 ? x[i] : 0.0f, "relu at %d", i);
    zf_softmax_forward(y, x, n, k);
    for (int i = 0; i < n; i++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < k; j++)
            m = fmax(m, x[i * k + j]);
        for (int j = 0; j < k; j++)
            s += exp((double)x[i * k + j] - m);
        for (int j = 0; j < k; j++) {
            double ref = exp((double)x[i * k + j] - m) / s;
            cr_assert(fabs(y[i * k + j] - ref) <= 1e-5 * ref + 1e-12, "softmax (%d,%d): %g vs %g", i, j, y[i * k + j],
                      ref);
        }
    }
    zf_free(x);
    zf_free(y);
}
