/* Every set of kernels this CPU runs (sse, avx2, avx512: zf_cpu_set_kernels) against float64
 * loops written here, at sizes that are multiples of no vector width (channels, widths, groups,
 * strides, batches): convolution by each of its paths (im2col, Winograd F(2x2) and F(4x4), the
 * polyphase 5x5 stride 2), its transpose, pooling, LRN, fully connected, softmax and the
 * occlusion's incremental recomputation; which set runs (CPUID, ZFVIZ_ISA); and the zfviz program
 * under ZFVIZ_ISA=sse giving the same forward as under its widest kernels. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "zf/cpu.h"
#include "zf/engine.h"
#include "zf/io.h"
#include "zf/net.h"
#include "zf/occlusion.h"
#include "zf/ops.h"
#include "zf/tensor.h"
#include "../core/conv_internal.h"
#include "../core/fc_internal.h"
#include "../core/winograd_internal.h"

static const char *const all_isas[] = {"sse", "avx2", "avx512"};
#define N_ISAS 3

static int isa_rank(const char *isa)
{
    for (int i = 0; i < N_ISAS; i++)
        if (!strcmp(all_isas[i], isa))
            return i;
    return -1;
}

/* Makes set i run, and names it. */
static const char *use_isa(int i)
{
    cr_assert_eq(zf_cpu_set_kernels(all_isas[i]), ZF_OK, "%s: %s", all_isas[i], zf_last_error());
    cr_assert_str_eq(zf_cpu_kernels(), all_isas[i]);
    return all_isas[i];
}

/* Runs the statement after it once under each set of kernels the CPU runs, `isa` naming it. */
#define FOR_EACH_ISA(isa)                                                                          \
    for (int isa_i_ = 0; isa_i_ <= isa_rank(zf_cpu_kernels_max()); isa_i_++)                      \
        for (const char *isa = use_isa(isa_i_); isa; isa = NULL)

static float *frand(size_t n, uint64_t seed)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    cr_assert_not_null(x);
    tu_fill_uniform(x, n, seed, -1.0f, 1.0f);
    return x;
}

/* Every element within tol of the reference, relative to the reference's largest magnitude; the
 * first one that is not is reported with its index. */
static void expect_close(const float *got, const double *ref, size_t n, double tol, const char *isa,
                         const char *what)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    cr_assert(scale > 0, "%s: %s: the reference is all zero, the test proves nothing", isa, what);
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - ref[i]) <= tol * scale))
            cr_assert_fail("%s: %s: element %zu is %.9g, float64 gives %.9g (%.2g of the largest %.4g)", isa, what,
                           i, got[i], ref[i], fabs(got[i] - ref[i]) / scale, scale);
}

/* ---- convolution ------------------------------------------------------------------------- */

static zf_conv_geom conv_geom(int n, int c, int h, int w, int k, int kk, int s, int p, int groups)
{
    const zf_conv_geom g = {n, c, h, w, k, (h + 2 * p - kk) / s + 1, (w + 2 * p - kk) / s + 1, kk, kk, s, s, p, p,
                            groups};
    return g;
}

static size_t conv_in_floats(const zf_conv_geom *g) { return (size_t)g->n * g->c * g->h * g->w; }
static size_t conv_out_floats(const zf_conv_geom *g) { return (size_t)g->n * g->k * g->oh * g->ow; }
static size_t conv_w_floats(const zf_conv_geom *g) { return (size_t)g->k * (g->c / g->groups) * g->kh * g->kw; }

/* Geometries that take each path of zf_conv_forward, none a multiple of 8 wide. */
static const struct {
    const char *what;
    int n, c, h, w, k, kk, s, p, groups;
} convs[] = {
    {"11x11 stride 4 (im2col, strided loads)", 2, 3, 45, 71, 5, 11, 4, 2, 1},
    {"7x7 stride 2 (im2col, strided loads)", 2, 5, 31, 45, 7, 7, 2, 1, 1},
    {"3x3 grouped, one image (im2col)", 1, 6, 9, 11, 10, 3, 1, 1, 2},
    {"3x3 grouped (Winograd)", 3, 6, 13, 15, 10, 3, 1, 1, 2},
    {"3x3, many tiles (Winograd F(4x4))", 5, 5, 21, 23, 9, 3, 1, 1, 1},
    {"5x5 grouped (Winograd F(4x4, 5x5))", 2, 4, 17, 19, 6, 5, 1, 2, 2},
    {"5x5 stride 2 (polyphase)", 2, 3, 29, 33, 7, 5, 2, 1, 1},
    {"5x5 stride 3, 3 groups (im2col)", 2, 9, 19, 23, 6, 5, 3, 2, 3},
    {"1x1", 3, 7, 5, 11, 9, 1, 1, 0, 1},
};
#define N_CONVS (sizeof convs / sizeof convs[0])

Test(isa, conv_forward_every_path_matches_float64_loops)
{
    for (size_t t = 0; t < N_CONVS; t++) {
        const zf_conv_geom g = conv_geom(convs[t].n, convs[t].c, convs[t].h, convs[t].w, convs[t].k, convs[t].kk,
                                         convs[t].s, convs[t].p, convs[t].groups);
        float *in = frand(conv_in_floats(&g), 10 + t), *w = frand(conv_w_floats(&g), 20 + t);
        float *b = frand((size_t)g.k, 30 + t);
        double *ref = malloc(sizeof(double) * conv_out_floats(&g));
        tu_ref_conv_f(ref, in, w, b, &g);
        float *out = malloc(sizeof(float) * conv_out_floats(&g));
        FOR_EACH_ISA(isa)
        {
            float *ws = malloc(sizeof(float) * zf_conv_workspace_floats(&g));
            memset(out, 0, sizeof(float) * conv_out_floats(&g));
            zf_conv_forward(out, in, w, b, &g, ws);
            expect_close(out, ref, conv_out_floats(&g), 2e-5, isa, convs[t].what);
            memset(out, 0, sizeof(float) * conv_out_floats(&g));
            zf_conv_forward_im2col(out, in, w, b, &g, ws);
            expect_close(out, ref, conv_out_floats(&g), 2e-5, isa, convs[t].what);
            free(ws);
            /* Winograd by each tile size that applies, whether or not zf_conv_forward takes it */
            for (int m = 2; m <= 4 && zf_wino_conv_applies(&g); m += 2) {
                if (g.kh == 5 && m == 2)
                    continue;
                float *u = malloc(sizeof(float) * zf_wino_conv_filter_floats(&g, m));
                float *wws = malloc(sizeof(float) * zf_wino_conv_workspace_floats(&g, m));
                zf_wino_filters(u, w, g.k, g.c / g.groups, m, g.kh);
                memset(out, 0, sizeof(float) * conv_out_floats(&g));
                zf_wino_conv_forward(out, in, u, b, &g, m, wws);
                char what[128];
                snprintf(what, sizeof what, "%s by F(%dx%d)", convs[t].what, m, m);
                expect_close(out, ref, conv_out_floats(&g), 2e-5, isa, what);
                free(u);
                free(wws);
            }
        }
        free(in);
        free(w);
        free(b);
        free(ref);
        free(out);
    }
}

Test(isa, conv_transpose_matches_float64_loops)
{
    for (size_t t = 0; t < N_CONVS; t++) {
        const zf_conv_geom g = conv_geom(convs[t].n, convs[t].c, convs[t].h, convs[t].w, convs[t].k, convs[t].kk,
                                         convs[t].s, convs[t].p, convs[t].groups);
        float *dout = frand(conv_out_floats(&g), 40 + t), *w = frand(conv_w_floats(&g), 50 + t);
        double *ref = malloc(sizeof(double) * conv_in_floats(&g));
        tu_ref_conv_backward(ref, NULL, NULL, dout, w, &g);
        float *din = malloc(sizeof(float) * conv_in_floats(&g));
        FOR_EACH_ISA(isa)
        {
            float *ws = malloc(sizeof(float) * zf_conv_workspace_floats(&g));
            zf_conv_backward_data(din, dout, w, &g, ws);
            expect_close(din, ref, conv_in_floats(&g), 2e-5, isa, convs[t].what);
            free(ws);
        }
        free(dout);
        free(w);
        free(ref);
        free(din);
    }
}

/* The net keeps each conv layer's Winograd filters between forwards (zf_conv_filter_cache): a
 * forward with kept filters gives the bits of one that makes them anew, and weights changed in
 * place between two forwards (as the trainer changes them) are used, never the filters of the
 * old ones; under each kernel set, whose filters are its own. */
Test(isa, net_reuses_winograd_filters_only_for_the_weights_they_came_from)
{
    zf_net *net = zf_net_new("isa-cache", 4, 30, 30);
    cr_assert_not_null(net);
    cr_assert_eq(zf_net_add_conv(net, "conv1", 8, zf_win(3, 1, 1), 1), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_conv(net, "conv2", 6, zf_win(5, 2, 0), 2), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_finalize(net), ZF_OK, "%s", zf_last_error());
    zf_layer *l1 = &net->layers[0], *l2 = &net->layers[1];
    tu_fill_uniform(net->params, (size_t)net->n_params, 150, -0.3f, 0.3f);
    const int n = 4;
    cr_assert_eq(zf_net_reserve(net, n), ZF_OK, "%s", zf_last_error());
    const zf_conv_geom g1 = zf_layer_conv_geom(l1, n), g2 = zf_layer_conv_geom(l2, n);
    cr_assert(!strncmp(zf_conv_path_name(&g1), "winograd", 8), "conv1 takes %s", zf_conv_path_name(&g1));
    cr_assert(!strncmp(zf_conv_path_name(&g2), "polyphase", 9), "conv2 takes %s", zf_conv_path_name(&g2));
    float *x = frand((size_t)n * zf_net_in_size(net), 151);
    const size_t n1 = (size_t)n * zf_layer_out_size(l1), n2 = (size_t)n * zf_layer_out_size(l2);
    float *e1 = malloc(sizeof(float) * n1), *e2 = malloc(sizeof(float) * n2);
    const size_t wsn = zf_conv_workspace_floats(&g1) > zf_conv_workspace_floats(&g2) ? zf_conv_workspace_floats(&g1)
                                                                                      : zf_conv_workspace_floats(&g2);
    float *ws = malloc(sizeof(float) * wsn);
    FOR_EACH_ISA(isa)
    {
        for (int round = 0; round < 3; round++) {
            if (round == 2) { /* in place, telling nobody */
                l1->weight[5] = -l1->weight[5];
                l2->weight[7] += 0.25f;
            }
            cr_assert_eq(zf_net_forward(net, x, n), ZF_OK, "%s", zf_last_error());
            zf_conv_forward(e1, x, l1->weight, l1->bias, &g1, ws);
            zf_conv_forward(e2, e1, l2->weight, l2->bias, &g2, ws);
            cr_assert(!memcmp(zf_net_act(net, 0), e1, sizeof(float) * n1), "%s: conv1, forward %d differs", isa, round);
            cr_assert(!memcmp(zf_net_act(net, 1), e2, sizeof(float) * n2), "%s: conv2, forward %d differs", isa, round);
            cr_assert(net->filter_cache[0].u && net->filter_cache[1].u, "%s: no filters were kept", isa);
        }
        /* and the last forward is the changed weights' in float64 (image 0) */
        zf_conv_geom r1 = zf_layer_conv_geom(l1, 1), r2 = zf_layer_conv_geom(l2, 1);
        double *h = malloc(sizeof(double) * zf_layer_out_size(l1)), *y = malloc(sizeof(double) * zf_layer_out_size(l2));
        tu_ref_conv_f(h, x, l1->weight, l1->bias, &r1);
        float *hf = malloc(sizeof(float) * zf_layer_out_size(l1));
        for (int64_t i = 0; i < zf_layer_out_size(l1); i++)
            hf[i] = (float)h[i];
        tu_ref_conv_f(y, hf, l2->weight, l2->bias, &r2);
        expect_close(zf_net_act(net, 1), y, (size_t)zf_layer_out_size(l2), 2e-5, isa, "conv2 after the change");
        free(h), free(y), free(hf);
    }
    free(x), free(e1), free(e2), free(ws);
    zf_net_free(net);
}

/* The comparison of kept filters' weights with the layer's runs in pieces among the products
 * (zf_wino_conv_forward_checked): a change at either end of any piece, the weights' last float
 * included, is seen, on a layer of three pieces at two batch sizes. */
Test(isa, kept_filters_see_a_change_anywhere_in_the_weights)
{
    zf_net *net = zf_net_new("isa-cache-pieces", 64, 14, 14);
    cr_assert_not_null(net);
    cr_assert_eq(zf_net_add_conv(net, "conv1", 300, zf_win(3, 1, 1), 1), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_finalize(net), ZF_OK, "%s", zf_last_error());
    zf_layer *l = &net->layers[0];
    const size_t wn = (size_t)l->weight_count;
    cr_assert_gt(wn, 2 * 65536, "the weights (%zu floats) should span three pieces", wn);
    tu_fill_uniform(net->params, (size_t)net->n_params, 152, -0.3f, 0.3f);
    cr_assert_eq(zf_net_reserve(net, 3), ZF_OK, "%s", zf_last_error());
    float *x = frand((size_t)3 * zf_net_in_size(net), 153);
    /* the ends of pieces of 65536 floats and of thirds (three pieces of equal size) */
    const size_t at[] = {0, 65535, 65536, 131071, 131072, wn / 3 - 1, wn / 3, 2 * wn / 3 - 1, 2 * wn / 3, wn - 1};
    FOR_EACH_ISA(isa)
    {
        for (int n = 1; n <= 3; n += 2) {
            const zf_conv_geom g = zf_layer_conv_geom(l, n);
            cr_assert(!strncmp(zf_conv_path_name(&g), "winograd", 8), "batch %d takes %s", n, zf_conv_path_name(&g));
            const size_t on = (size_t)n * zf_layer_out_size(l);
            float *e = malloc(sizeof(float) * on), *ws = malloc(sizeof(float) * zf_conv_workspace_floats(&g));
            for (size_t k = 0; k <= sizeof at / sizeof at[0]; k++) {
                if (k > 0) /* in place, telling nobody */
                    l->weight[at[k - 1]] += 0.125f;
                cr_assert_eq(zf_net_forward(net, x, n), ZF_OK, "%s", zf_last_error());
                zf_conv_forward(e, x, l->weight, l->bias, &g, ws);
                cr_assert(!memcmp(zf_net_act(net, 0), e, sizeof(float) * on),
                          "%s, batch %d: the forward after changing weight %zu used stale filters", isa, n,
                          k ? at[k - 1] : 0);
            }
            free(e), free(ws);
        }
    }
    free(x);
    zf_net_free(net);
}

/* ---- bfloat16 ------------------------------------------------------------------------------ */

/* f rounded to bfloat16 (8 significant bits, to nearest, ties to even), by frexp and nearbyint:
 * another route than core's bit arithmetic. Normal numbers and zero only. */
static double ref_bf16(double f)
{
    if (f == 0)
        return 0;
    int e;
    const double m = frexp((float)f, &e); /* [0.5, 1) */
    return ldexp(nearbyint(m * 256.0) / 256.0, e);
}

/* The bf16 fully connected kernel is the float64 product of the inputs with the weights rounded
 * to bfloat16, at sizes that are multiples of no block (columns, rows, batch past the stream's 32). */
Test(isa, fc_with_bf16_weights_matches_float64_of_the_rounded_weights)
{
    static const int sizes[][3] = {{1, 1003, 37}, {2, 515, 70}, {5, 9, 33}, {33, 130, 19}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        const int n = sizes[t][0], in_f = sizes[t][1], out_f = sizes[t][2];
        float *x = frand((size_t)n * in_f, 160 + t), *w = frand((size_t)out_f * in_f, 170 + t),
              *b = frand((size_t)out_f, 180 + t), *out = malloc(sizeof(float) * n * out_f);
        uint16_t *w16 = malloc(sizeof(uint16_t) * out_f * in_f);
        double *ref = malloc(sizeof(double) * n * out_f);
        for (size_t i = 0; i < (size_t)out_f * in_f; i++) {
            const float r = (float)ref_bf16(w[i]);
            uint32_t bits;
            memcpy(&bits, &r, sizeof bits);
            cr_assert_eq(bits & 0xffff, 0u, "rounded weight %zu keeps low bits", i);
            w16[i] = (uint16_t)(bits >> 16);
        }
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out_f; o++) {
                double acc = b[o];
                for (int k = 0; k < in_f; k++)
                    acc += ref_bf16(w[(size_t)o * in_f + k]) * x[(size_t)i * in_f + k];
                ref[(size_t)i * out_f + o] = acc;
            }
        char what[64];
        snprintf(what, sizeof what, "fc bf16 %dx%d batch %d", out_f, in_f, n);
        FOR_EACH_ISA(isa)
        {
            zf_fc_forward_bf16(out, x, w16, b, n, in_f, out_f);
            expect_close(out, ref, (size_t)n * out_f, 1e-5, isa, what);
        }
        free(x), free(w), free(b), free(out), free(w16), free(ref);
    }
}

/* One layer of bf16_net_reference: y = f(rounded x) for a conv (g) or, when g is NULL, an fc. */
static double *ref_layer(const double *x, size_t xn, const float *w, const float *bias, const zf_conv_geom *g,
                         int n, int in_f, int out_f, int round)
{
    double *xr = malloc(sizeof(double) * xn), *wr;
    for (size_t i = 0; i < xn; i++)
        xr[i] = round ? ref_bf16(x[i]) : x[i];
    const size_t wn = g ? (size_t)g->k * (g->c / g->groups) * g->kh * g->kw : (size_t)out_f * in_f;
    wr = malloc(sizeof(double) * wn);
    double *b = malloc(sizeof(double) * (g ? g->k : out_f));
    for (size_t i = 0; i < wn; i++)
        wr[i] = round ? ref_bf16(w[i]) : w[i];
    for (int i = 0; i < (g ? g->k : out_f); i++)
        b[i] = bias[i];
    double *y;
    if (g) {
        y = malloc(sizeof(double) * (size_t)g->n * g->k * g->oh * g->ow);
        tu_ref_conv(y, xr, wr, b, g);
    } else {
        y = malloc(sizeof(double) * (size_t)n * out_f);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out_f; o++) {
                double acc = b[o];
                for (int k = 0; k < in_f; k++)
                    acc += wr[(size_t)o * in_f + k] * xr[(size_t)i * in_f + k];
                y[(size_t)i * out_f + o] = acc;
            }
    }
    free(xr), free(wr), free(b);
    return y;
}

/* conv 3x3 (Winograd), ReLU, conv 5x5 stride 2 (polyphase), ReLU, fc, ReLU, fc in float64, with
 * every conv and fc operand rounded to bfloat16 (round) or not. */
static double *bf16_net_reference(zf_net *net, const float *x, int n, int round)
{
    size_t cur_n = (size_t)n * zf_net_in_size(net);
    double *cur = malloc(sizeof(double) * cur_n);
    for (size_t i = 0; i < cur_n; i++)
        cur[i] = x[i];
    for (int li = 0; li < net->n_layers; li++) {
        const zf_layer *l = &net->layers[li];
        const size_t out_n = (size_t)n * zf_layer_out_size(l);
        if (l->op == ZF_OP_CONV || l->op == ZF_OP_FC) {
            const zf_conv_geom g = l->op == ZF_OP_CONV ? zf_layer_conv_geom(l, n) : (zf_conv_geom){0};
            double *y = ref_layer(cur, cur_n, l->weight, l->bias, l->op == ZF_OP_CONV ? &g : NULL, n,
                                  (int)zf_layer_in_size(l), l->out_c, round);
            free(cur);
            cur = y;
        } else if (l->op == ZF_OP_RELU) {
            for (size_t i = 0; i < out_n; i++)
                cur[i] = cur[i] > 0 ? cur[i] : 0;
        }
        cur_n = out_n;
    }
    return cur;
}

/* --precision bf16 on the cpu engine: the forward is the float64 one of bfloat16 operands (to the
 * float32 sums' rounding), visibly not the float32 forward, under every kernel set; occlusion and
 * gradients are refused; closed, the net computes in float32 again. */
Test(isa, bf16_engine_forward_is_float64_of_bf16_operands)
{
    zf_net *net = zf_net_new("isa-bf16", 3, 31, 31);
    cr_assert_not_null(net);
    cr_assert_eq(zf_net_add_conv(net, "conv1", 13, zf_win(3, 1, 1), 1), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_relu(net, "relu1"), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_conv(net, "conv2", 10, zf_win(5, 2, 0), 1), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_relu(net, "relu2"), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_fc(net, "fc1", 37), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_relu(net, "relu3"), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_fc(net, "fc2", 11), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_finalize(net), ZF_OK, "%s", zf_last_error());
    tu_fill_uniform(net->params, (size_t)net->n_params, 190, -0.2f, 0.2f);
    const int n = 3, last = net->n_layers - 1;
    const size_t on = (size_t)n * zf_layer_out_size(&net->layers[last]);
    float *x = frand((size_t)n * zf_net_in_size(net), 191), *out = malloc(sizeof(float) * on);
    double *ref = bf16_net_reference(net, x, n, 1), *ref32 = bf16_net_reference(net, x, n, 0);
    double scale = 0, apart = 0;
    for (size_t i = 0; i < on; i++)
        scale = fmax(scale, fabs(ref32[i]));
    for (size_t i = 0; i < on; i++)
        apart = fmax(apart, fabs(ref[i] - ref32[i]) / scale);
    cr_assert(apart > 1e-3, "bf16 operands move the output by only %.2g: the test could not tell", apart);
    const zf_engine_iface *cpu = zf_engine_find("cpu");
    cr_assert_not_null(cpu);
    FOR_EACH_ISA(isa)
    {
        zf_engine *e = NULL;
        const zf_engine_opts o = {.device = 0, .batch = n, .precision = "bf16"};
        cr_assert_eq(zf_engine_open(cpu, net, &o, &e), ZF_OK, "%s", zf_last_error());
        cr_assert(strstr(zf_engine_describe(e), "bf16"), "%s: %s", isa, zf_engine_describe(e));
        for (int round = 0; round < 2; round++) { /* the second with the Winograd filters kept */
            cr_assert_eq(zf_engine_forward(e, x, n, last), ZF_OK, "%s", zf_last_error());
            cr_assert_eq(zf_engine_read(e, last, out, n), ZF_OK, "%s", zf_last_error());
            expect_close(out, ref, on, 1e-4, isa, "bf16 forward");
        }
        float *g = malloc(sizeof(float) * (size_t)n * zf_net_in_size(net));
        cr_assert_eq(zf_engine_backward(e, g, out, last, -1, n, 0 /* the gradient rule */), ZF_ERR_UNSUPPORTED);
        cr_assert(strstr(zf_last_error(), "bf16"), "%s", zf_last_error());
        free(g);
        zf_engine_close(e);
        cr_assert_null(net->bf16, "%s: the closed engine left its weights in the net", isa);
        cr_assert_eq(zf_net_forward(net, x, n), ZF_OK, "%s", zf_last_error());
        expect_close(zf_net_act(net, last), ref32, on, 2e-5, isa, "float32 forward after the bf16 engine");
    }
    const zf_engine_opts tf = {.device = 0, .batch = n, .precision = "tf32"};
    zf_engine *e = NULL;
    cr_assert_eq(zf_engine_open(cpu, net, &tf, &e), ZF_ERR_UNSUPPORTED);
    free(x), free(out), free(ref), free(ref32);
    zf_net_free(net);
}

/* ---- pooling ----------------------------------------------------------------------------- */

static zf_pool_geom pool_geom(int n, int c, int h, int w, int k, int s, int p)
{
    const zf_pool_geom g = {n, c, h, w, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1, k, k, s, s, p, p, p, p};
    return g;
}

static const struct {
    const char *what;
    int n, c, h, w, k, s, p;
} pools[] = {
    {"3x3 stride 2", 2, 5, 27, 29, 3, 2, 0},   /* AlexNet's, odd sizes */
    {"3x3 stride 2 padded", 3, 3, 55, 37, 3, 2, 1},
    {"2x2 stride 2", 1, 7, 13, 23, 2, 2, 0},
    {"3x3 stride 1 padded", 2, 4, 9, 19, 3, 1, 1},
    {"5x5 stride 3", 1, 3, 17, 41, 5, 3, 2},
};

Test(isa, pooling_matches_float64_loops)
{
    for (size_t t = 0; t < sizeof pools / sizeof pools[0]; t++) {
        const zf_pool_geom g = pool_geom(pools[t].n, pools[t].c, pools[t].h, pools[t].w, pools[t].k, pools[t].s,
                                         pools[t].p);
        const size_t in_n = (size_t)g.n * g.c * g.h * g.w, out_n = (size_t)g.n * g.c * g.oh * g.ow;
        float *in = frand(in_n, 60 + t), *dout = frand(out_n, 70 + t);
        /* a few ties, which the first maximum in row-major order breaks */
        for (size_t i = 0; i + 1 < in_n; i += 7)
            in[i + 1] = in[i];
        double *ref_max = malloc(sizeof(double) * out_n), *ref_avg[2], *ref_unpool = calloc(in_n, sizeof(double));
        int32_t *ref_sw = malloc(sizeof(int32_t) * out_n);
        ref_avg[0] = malloc(sizeof(double) * out_n);
        ref_avg[1] = malloc(sizeof(double) * out_n);
        for (int pl = 0; pl < g.n * g.c; pl++)
            for (int oy = 0; oy < g.oh; oy++)
                for (int ox = 0; ox < g.ow; ox++) {
                    const size_t o = ((size_t)pl * g.oh + oy) * g.ow + ox;
                    const int y0 = oy * g.sh - g.pt, x0 = ox * g.sw - g.pl;
                    double best = -INFINITY, sum = 0;
                    int at = -1, count = 0;
                    for (int y = y0; y < y0 + g.kh; y++)
                        for (int x = x0; x < x0 + g.kw; x++) {
                            if (y < 0 || y >= g.h || x < 0 || x >= g.w)
                                continue;
                            const double v = in[((size_t)pl * g.h + y) * g.w + x];
                            if (v > best) {
                                best = v;
                                at = y * g.w + x;
                            }
                            sum += v;
                            count++;
                        }
                    const int ye = y0 + g.kh < g.h + g.pb ? y0 + g.kh : g.h + g.pb;
                    const int xe = x0 + g.kw < g.w + g.pr ? x0 + g.kw : g.w + g.pr;
                    ref_max[o] = best;
                    ref_sw[o] = at;
                    ref_avg[0][o] = sum / count;
                    ref_avg[1][o] = sum / ((ye - y0) * (xe - x0));
                    ref_unpool[(size_t)pl * g.h * g.w + at] += dout[o];
                }
        float *out = malloc(sizeof(float) * out_n), *din = malloc(sizeof(float) * in_n);
        int32_t *sw = malloc(sizeof(int32_t) * out_n);
        FOR_EACH_ISA(isa)
        {
            zf_maxpool_forward(out, sw, in, &g);
            for (size_t o = 0; o < out_n; o++) {
                cr_assert_eq(out[o], (float)ref_max[o], "%s: max-pool %s: output %zu is %g, want %g", isa,
                             pools[t].what, o, out[o], ref_max[o]);
                cr_assert_eq(sw[o], ref_sw[o], "%s: max-pool %s: switch %zu is %d, want %d", isa, pools[t].what, o,
                             sw[o], ref_sw[o]);
            }
            zf_maxpool_unpool(din, dout, sw, &g);
            expect_close(din, ref_unpool, in_n, 1e-6, isa, "unpool");
            for (int cip = 0; cip < 2; cip++) {
                zf_avgpool_forward(out, in, &g, cip);
                expect_close(out, ref_avg[cip], out_n, 1e-6, isa, cip ? "avg-pool counting padding" : "avg-pool");
            }
        }
        free(in);
        free(dout);
        free(ref_max);
        free(ref_avg[0]);
        free(ref_avg[1]);
        free(ref_unpool);
        free(ref_sw);
        free(out);
        free(din);
        free(sw);
    }
}

Test(isa, adaptive_pooling_matches_float64_loops)
{
    const int n = 2, c = 3, h = 13, w = 11, oh = 6, ow = 5;
    const size_t in_n = (size_t)n * c * h * w, out_n = (size_t)n * c * oh * ow;
    float *in = frand(in_n, 80), *dout = frand(out_n, 81);
    double *ref = malloc(sizeof(double) * out_n), *ref_back = calloc(in_n, sizeof(double));
    for (int pl = 0; pl < n * c; pl++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                const int y0 = i * h / oh, y1 = ((i + 1) * h + oh - 1) / oh;
                const int x0 = j * w / ow, x1 = ((j + 1) * w + ow - 1) / ow;
                const size_t o = ((size_t)pl * oh + i) * ow + j;
                double s = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        s += in[((size_t)pl * h + y) * w + x];
                const int count = (y1 - y0) * (x1 - x0);
                ref[o] = s / count;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        ref_back[((size_t)pl * h + y) * w + x] += dout[o] / count;
            }
    float *out = malloc(sizeof(float) * out_n), *din = malloc(sizeof(float) * in_n);
    FOR_EACH_ISA(isa)
    {
        zf_adaptive_avgpool_forward(out, in, n, c, h, w, oh, ow);
        expect_close(out, ref, out_n, 1e-6, isa, "adaptive avg-pool");
        zf_adaptive_avgpool_backward(din, dout, n, c, h, w, oh, ow);
        expect_close(din, ref_back, in_n, 1e-6, isa, "adaptive avg-pool backward");
    }
    free(in);
    free(dout);
    free(ref);
    free(ref_back);
    free(out);
    free(din);
}

/* ---- LRN --------------------------------------------------------------------------------- */

Test(isa, lrn_matches_float64_loops)
{
    const zf_lrn_params ps[] = {{5, 2, 1e-4f * 5, 0.75f, 1.0f}, {4, 2, 0.3f, 0.75f, 2.0f}, {3, 1, 0.5f, 0.6f, 1.5f}};
    const int n = 2, c = 11, hw = 13 * 17;
    const size_t cnt = (size_t)n * c * hw;
    float *in = frand(cnt, 90), *dout = frand(cnt, 91);
    double *ref = malloc(sizeof(double) * cnt), *ref_back = malloc(sizeof(double) * cnt);
    double *s = malloc(sizeof(double) * cnt);
    float *out = malloc(sizeof(float) * cnt), *din = malloc(sizeof(float) * cnt);
    for (size_t t = 0; t < sizeof ps / sizeof ps[0]; t++) {
        const zf_lrn_params *p = &ps[t];
        const double a = (double)p->alpha / p->size;
        /* window of channel i: [i - front, i - front + size) within [0, c) */
        for (int b = 0; b < n; b++)
            for (int i = 0; i < c; i++)
                for (int q = 0; q < hw; q++) {
                    double sq = 0;
                    for (int j = i - p->front; j < i - p->front + p->size; j++)
                        if (j >= 0 && j < c) {
                            const double v = in[((size_t)b * c + j) * hw + q];
                            sq += v * v;
                        }
                    const size_t at = ((size_t)b * c + i) * hw + q;
                    s[at] = p->k + a * sq;
                    ref[at] = in[at] * pow(s[at], -p->beta);
                }
        /* d out_i / d in_m = [i = m] s_i^-beta - 2 a beta in_i in_m s_i^(-beta-1) for m in i's window */
        for (int b = 0; b < n; b++)
            for (int m = 0; m < c; m++)
                for (int q = 0; q < hw; q++) {
                    const size_t at = ((size_t)b * c + m) * hw + q;
                    double g = dout[at] * pow(s[at], -p->beta);
                    for (int i = 0; i < c; i++) {
                        if (m < i - p->front || m >= i - p->front + p->size)
                            continue;
                        const size_t ai = ((size_t)b * c + i) * hw + q;
                        g -= 2 * a * p->beta * dout[ai] * in[ai] * in[at] * pow(s[ai], -p->beta - 1);
                    }
                    ref_back[at] = g;
                }
        FOR_EACH_ISA(isa)
        {
            zf_lrn_forward(out, in, n, c, hw, p);
            expect_close(out, ref, cnt, 1e-6, isa, "LRN");
            zf_lrn_backward(din, dout, in, n, c, hw, p);
            expect_close(din, ref_back, cnt, 1e-5, isa, "LRN backward");
        }
    }
    free(in);
    free(dout);
    free(ref);
    free(ref_back);
    free(s);
    free(out);
    free(din);
}

/* ---- fully connected, ReLU, softmax ------------------------------------------------------ */

Test(isa, fully_connected_relu_softmax_match_float64_loops)
{
    const int batches[] = {1, 2, 3, 5, 17, 33}, in_fs[] = {1031, 9, 4099}, out_fs[] = {77, 13, 3};
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++)
        for (size_t si = 0; si < sizeof in_fs / sizeof in_fs[0]; si++) {
            const int n = batches[bi], in_f = in_fs[si], out_f = out_fs[si];
            float *in = frand((size_t)n * in_f, 100 + bi), *w = frand((size_t)out_f * in_f, 110 + si);
            float *b = frand((size_t)out_f, 120 + si), *out = malloc(sizeof(float) * n * out_f);
            double *ref = malloc(sizeof(double) * n * out_f);
            for (int r = 0; r < n; r++)
                for (int o = 0; o < out_f; o++) {
                    double s = b[o];
                    for (int k = 0; k < in_f; k++)
                        s += (double)in[(size_t)r * in_f + k] * w[(size_t)o * in_f + k];
                    ref[(size_t)r * out_f + o] = s;
                }
            char what[96];
            FOR_EACH_ISA(isa)
            {
                void (*const fns[])(float *, const float *, const float *, const float *, int, int, int) = {
                    zf_fc_forward, zf_fc_forward_stream, zf_fc_forward_blas};
                for (int f = 0; f < 3; f++) {
                    memset(out, 0, sizeof(float) * n * out_f);
                    fns[f](out, in, w, b, n, in_f, out_f);
                    snprintf(what, sizeof what, "fully connected %s, batch %d, %d -> %d",
                             f == 0 ? "as chosen" : f == 1 ? "streaming" : "OpenBLAS", n, in_f, out_f);
                    expect_close(out, ref, (size_t)n * out_f, 1e-5, isa, what);
                }
            }
            free(in);
            free(w);
            free(b);
            free(out);
            free(ref);
        }
    const int n = 3, k = 1001, cnt = n * k;
    float *x = frand(cnt, 130), *y = malloc(sizeof(float) * cnt);
    for (int i = 0; i < cnt; i++)
        x[i] *= 8;
    double *relu = malloc(sizeof(double) * cnt), *soft = malloc(sizeof(double) * cnt);
    for (int r = 0; r < n; r++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < k; j++)
            m = fmax(m, x[r * k + j]);
        for (int j = 0; j < k; j++)
            s += exp(x[r * k + j] - m);
        for (int j = 0; j < k; j++)
            soft[r * k + j] = exp(x[r * k + j] - m) / s;
    }
    for (int i = 0; i < cnt; i++)
        relu[i] = x[i] > 0 ? x[i] : 0;
    FOR_EACH_ISA(isa)
    {
        zf_relu_forward(y, x, (size_t)cnt);
        expect_close(y, relu, (size_t)cnt, 0, isa, "ReLU");
        zf_softmax_forward(y, x, n, k);
        for (int r = 0; r < n; r++) /* each row to its own largest probability */
            expect_close(y + r * k, soft + r * k, (size_t)k, 1e-5, isa, "softmax");
    }
    free(x);
    free(y);
    free(relu);
    free(soft);
}

/* ---- occlusion --------------------------------------------------------------------------- */

/* A net of the ops ref_forward knows: convolutions that the occlusion recomputes by each of its
 * ways (5x5 stride 2, 3x3 grouped, 5x5), max-pooling and a fully connected tail. */
static zf_net *small_net(void)
{
    zf_net *net = zf_net_new("isa-small", 3, 31, 37);
    cr_assert_not_null(net);
    cr_assert_eq(zf_net_add_conv(net, "conv1", 6, zf_win(5, 2, 2), 1), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_relu(net, "relu1"), ZF_OK);
    cr_assert_eq(zf_net_add_maxpool(net, "pool1", zf_win(3, 2, 1), 0), ZF_OK);
    cr_assert_eq(zf_net_add_conv(net, "conv2", 10, zf_win(3, 1, 1), 2), ZF_OK);
    cr_assert_eq(zf_net_add_relu(net, "relu2"), ZF_OK);
    cr_assert_eq(zf_net_add_conv(net, "conv3", 7, zf_win(5, 1, 2), 1), ZF_OK);
    cr_assert_eq(zf_net_add_relu(net, "relu3"), ZF_OK);
    cr_assert_eq(zf_net_add_flatten(net, "flatten"), ZF_OK);
    cr_assert_eq(zf_net_add_fc(net, "fc4", 13), ZF_OK);
    cr_assert_eq(zf_net_add_relu(net, "relu4"), ZF_OK);
    cr_assert_eq(zf_net_add_fc(net, "fc5", 7), ZF_OK);
    cr_assert_eq(zf_net_finalize(net), ZF_OK, "%s", zf_last_error());
    for (int i = 0; i < net->n_layers; i++) { /* He-uniform, so activations keep their scale */
        zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_CONV && l->op != ZF_OP_FC)
            continue;
        const float a = (float)sqrt((l->op == ZF_OP_CONV ? 6.0 : 3.0) / ((double)l->weight_count / l->out_c));
        tu_fill_uniform(l->weight, (size_t)l->weight_count, 140 + 2 * i, -a, a);
        tu_fill_uniform(l->bias, (size_t)l->bias_count, 141 + 2 * i, -0.05f, 0.05f);
    }
    return net;
}

/* One image through layers [0, last] in float64; returns the last layer's output (malloc'd). */
static double *ref_forward(const zf_net *net, const double *x, int last)
{
    size_t n = (size_t)zf_net_in_size(net);
    double *cur = malloc(sizeof(double) * n);
    memcpy(cur, x, sizeof(double) * n);
    for (int i = 0; i <= last; i++) {
        const zf_layer *l = &net->layers[i];
        const size_t out_n = (size_t)zf_layer_out_size(l);
        double *nxt = malloc(sizeof(double) * out_n);
        if (l->op == ZF_OP_CONV) {
            const zf_conv_geom g = zf_layer_conv_geom(l, 1);
            double *w = tu_doubles(l->weight, (size_t)l->weight_count), *b = tu_doubles(l->bias, (size_t)l->bias_count);
            tu_ref_conv(nxt, cur, w, b, &g);
            free(w);
            free(b);
        } else if (l->op == ZF_OP_RELU) {
            for (size_t j = 0; j < out_n; j++)
                nxt[j] = cur[j] > 0 ? cur[j] : 0;
        } else if (l->op == ZF_OP_MAXPOOL) {
            const zf_pool_geom g = zf_layer_pool_geom(l, 1);
            for (int c = 0; c < g.c; c++)
                for (int oy = 0; oy < g.oh; oy++)
                    for (int ox = 0; ox < g.ow; ox++) {
                        double m = -INFINITY;
                        for (int y = oy * g.sh - g.pt; y < oy * g.sh - g.pt + g.kh; y++)
                            for (int xx = ox * g.sw - g.pl; xx < ox * g.sw - g.pl + g.kw; xx++)
                                if (y >= 0 && y < g.h && xx >= 0 && xx < g.w)
                                    m = fmax(m, cur[((size_t)c * g.h + y) * g.w + xx]);
                        nxt[((size_t)c * g.oh + oy) * g.ow + ox] = m;
                    }
        } else if (l->op == ZF_OP_FLATTEN) {
            memcpy(nxt, cur, sizeof(double) * out_n);
        } else {
            cr_assert_eq(l->op, ZF_OP_FC, "layer %s: an op the reference does not know", l->name);
            const size_t in_f = (size_t)zf_layer_in_size(l);
            for (size_t o = 0; o < out_n; o++) {
                double s = l->bias[o];
                for (size_t k = 0; k < in_f; k++)
                    s += cur[k] * l->weight[o * in_f + k];
                nxt[o] = s;
            }
        }
        free(cur);
        cur = nxt;
    }
    return cur;
}

Test(isa, occlusion_every_way_matches_float64_forward)
{
    zf_net *net = small_net();
    const int conv = zf_net_find(net, "conv3"), relu = zf_net_find(net, "relu3"), channel = 4, cls = 2;
    const int patch = 7, stride = 3, last = net->n_layers - 1, classes = net->layers[last].out_c;
    const size_t isz = (size_t)zf_net_in_size(net);
    float *x = frand(isz, 150);
    const int rows = (net->in_h - patch) / stride + 1, cols = (net->in_w - patch) / stride + 1;
    double *feat = malloc(sizeof(double) * rows * cols), *prob = malloc(sizeof(double) * rows * cols);
    double *img = malloc(sizeof(double) * isz);
    const zf_layer *fl = &net->layers[relu];
    const size_t plane = (size_t)fl->out_h * fl->out_w;
    for (int i = 0; i < rows * cols; i++) {
        const int py = i / cols * stride, px = i % cols * stride;
        for (size_t j = 0; j < isz; j++) {
            const int y = (int)(j / net->in_w % net->in_h), xx = (int)(j % net->in_w);
            img[j] = y >= py && y < py + patch && xx >= px && xx < px + patch ? 0.0 : x[j];
        }
        double *f = ref_forward(net, img, relu), *logits = ref_forward(net, img, last);
        feat[i] = 0;
        for (size_t j = 0; j < plane; j++)
            feat[i] += f[channel * plane + j];
        double m = -INFINITY, s = 0;
        for (int k = 0; k < classes; k++)
            m = fmax(m, logits[k]);
        for (int k = 0; k < classes; k++)
            s += exp(logits[k] - m);
        prob[i] = exp(logits[cls] - m) / s;
        free(f);
        free(logits);
    }
    const zf_occlusion_conv ways[] = {ZF_OCCLUSION_CONV_IM2COL, ZF_OCCLUSION_CONV_DELTA, ZF_OCCLUSION_CONV_WINOGRAD,
                                      ZF_OCCLUSION_CONV_WINOGRAD4};
    FOR_EACH_ISA(isa)
    {
        for (size_t wi = 0; wi < sizeof ways / sizeof ways[0]; wi++) {
            zf_occlusion_params p;
            zf_occlusion_params_default(&p);
            p.patch = patch;
            p.stride = stride;
            p.fill = 0.0f;
            p.layer = conv;
            p.channel = channel;
            p.cls = cls;
            p.method = ZF_OCCLUSION_INCREMENTAL;
            p.conv = ways[wi];
            p.batch = 5;
            zf_occlusion_result *res = NULL;
            cr_assert_eq(zf_occlusion_run(net, x, &p, &res), ZF_OK, "%s: %s", isa, zf_last_error());
            cr_assert_eq(res->method, ZF_OCCLUSION_INCREMENTAL, "%s: ran %s", isa, zf_occlusion_method_name(res->method));
            cr_assert_eq(res->rows * res->cols, rows * cols);
            char what[96];
            snprintf(what, sizeof what, "occlusion by %s: feature map", zf_occlusion_conv_name(ways[wi]));
            expect_close(res->feature, feat, (size_t)rows * cols, 2e-5, isa, what);
            snprintf(what, sizeof what, "occlusion by %s: probability", zf_occlusion_conv_name(ways[wi]));
            expect_close(res->prob, prob, (size_t)rows * cols, 2e-5, isa, what);
            zf_occlusion_result_free(res);
        }
    }
    free(x);
    free(feat);
    free(prob);
    free(img);
    zf_net_free(net);
}

/* ---- which kernels run ------------------------------------------------------------------- */

/* The CPU's flags as the kernel reports them (/proc/cpuinfo), apart from CPUID as zfviz reads it. */
static int cpuinfo_has(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    cr_assert_not_null(f, "/proc/cpuinfo");
    static char line[65536];
    int has = -1;
    while (has < 0 && fgets(line, sizeof line - 1, f)) {
        if (strncmp(line, "flags", 5))
            continue;
        line[strcspn(line, "\n")] = ' '; /* every flag between spaces */
        char pat[64];
        snprintf(pat, sizeof pat, " %s ", flag);
        has = strstr(line, pat) != NULL;
    }
    fclose(f);
    cr_assert(has >= 0, "/proc/cpuinfo has no flags line");
    return has;
}

Test(isa, widest_set_follows_the_cpu_and_wider_ones_are_refused)
{
    const int avx512 = cpuinfo_has("avx512f") && cpuinfo_has("avx512bw") && cpuinfo_has("avx512cd") &&
                       cpuinfo_has("avx512dq") && cpuinfo_has("avx512vl");
    const int avx2 = cpuinfo_has("avx2") && cpuinfo_has("fma") && cpuinfo_has("bmi2") && cpuinfo_has("movbe");
    const char *want = avx512 && avx2 ? "avx512" : avx2 ? "avx2" : "sse";
    cr_assert_str_eq(zf_cpu_kernels_max(), want);
    cr_assert_eq(zf_cpu_set_kernels(NULL), ZF_OK);
    cr_assert_str_eq(zf_cpu_kernels(), want);
    for (int i = isa_rank(want) + 1; i < N_ISAS; i++) {
        cr_assert_eq(zf_cpu_set_kernels(all_isas[i]), ZF_ERR_UNSUPPORTED, "%s accepted on a CPU without it",
                     all_isas[i]);
        cr_assert(strstr(zf_last_error(), all_isas[i]), "%s", zf_last_error());
        cr_assert_str_eq(zf_cpu_kernels(), want, "a refused set changed the kernels");
    }
    cr_assert_eq(zf_cpu_set_kernels("avx3"), ZF_ERR_ARG);
    cr_assert_eq(zf_cpu_set_kernels("sse"), ZF_OK);
    cr_assert_str_eq(zf_cpu_kernels(), "sse");
    cr_assert_eq(zf_cpu_set_kernels(""), ZF_OK);
    cr_assert_str_eq(zf_cpu_kernels(), want);
}

/* A run under ZFVIZ_ISA (CI's way to cover the narrower sets) runs those kernels: a misspelt or
 * unrunnable value fails here rather than silently testing the widest set. */
Test(isa, environment_names_the_kernels_that_run)
{
    const char *env = getenv("ZFVIZ_ISA");
    if (env && *env)
        cr_assert_str_eq(zf_cpu_kernels(), env, "ZFVIZ_ISA=%s", env);
    else
        cr_assert_str_eq(zf_cpu_kernels(), zf_cpu_kernels_max());
}

/* ---- the program ------------------------------------------------------------------------- */

static int run_zfviz(const char *dir, const char *isa, const char *args)
{
    return tu_system("cd '%s' && env %s%s '%s' %s >out 2>err </dev/null", dir, isa ? "ZFVIZ_ISA=" : "-u ZFVIZ_ISA",
                     isa ? isa : "", tu_build("tools/zfviz"), args);
}

static zf_tensor *read_npy(const char *dir, const char *sub, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(path, &t), ZF_OK, "%s: %s", path, zf_last_error());
    return t;
}

Test(isa, program_forward_under_sse_matches_the_widest_kernels)
{
    const char *dir = tu_tmpdir("isa_program");
    zf_tensor *x = zf_tensor_new4(2, 3, 224, 224);
    cr_assert_not_null(x);
    tu_fill_uniform(x->data, (size_t)x->size, 160, -2.0f, 2.0f);
    char path[4096];
    snprintf(path, sizeof path, "%s/x.npy", dir);
    cr_assert_eq(zf_npy_write(path, x), ZF_OK);
    zf_tensor_free(x);
    const char *sets[2] = {"sse", NULL};
    for (int s = 0; s < 2; s++) {
        char args[256];
        snprintf(args, sizeof args, "forward --arch zfnet --weights random:7 --device cpu --input x.npy --top 0 "
                                    "--dump all --out %s", s ? "wide" : "sse");
        cr_assert_eq(run_zfviz(dir, sets[s], args), 0, "zfviz %s under %s failed", args, sets[s] ? sets[s] : "default");
        cr_assert_eq(run_zfviz(dir, sets[s], "info --arch zfnet"), 0);
        snprintf(path, sizeof path, "%s/out", dir);
        char *info = tu_read_file(path, NULL), want[64];
        snprintf(want, sizeof want, "kernels: %s (CPU: %s;", s ? zf_cpu_kernels_max() : "sse", zf_cpu_kernels_max());
        cr_assert(info && strstr(info, want), "zfviz info does not say '%s':\n%s", want, info ? info : "");
        free(info);
    }
    /* every layer's dump agrees, to float rounding of a different summation order */
    snprintf(path, sizeof path, "%s/sse", dir);
    DIR *d = opendir(path);
    cr_assert_not_null(d, "%s", path);
    int compared = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strstr(e->d_name, ".npy"))
            continue;
        zf_tensor *a = read_npy(dir, "sse", e->d_name), *b = read_npy(dir, "wide", e->d_name);
        cr_assert_eq(a->size, b->size, "%s", e->d_name);
        double *ref = tu_doubles(b->data, (size_t)b->size);
        expect_close(a->data, ref, (size_t)a->size, 2e-5, "sse against the widest", e->d_name);
        free(ref);
        zf_tensor_free(a);
        zf_tensor_free(b);
        compared++;
    }
    closedir(d);
    cr_assert_geq(compared, 20, "only %d layers dumped", compared);
}

Test(isa, program_refuses_kernels_the_cpu_lacks_or_that_do_not_exist)
{
    const char *dir = tu_tmpdir("isa_refuse");
    char path[4096];
    snprintf(path, sizeof path, "%s/err", dir);
    cr_assert_eq(run_zfviz(dir, "avx3", "info --arch zfnet"), 2);
    char *err = tu_read_file(path, NULL);
    cr_assert(err && !strcmp(err, "zfviz: ZFVIZ_ISA: 'avx3' is not a kernel set (sse, avx2 or avx512)\n"), "%s", err);
    free(err);
    if (!strcmp(zf_cpu_kernels_max(), "avx512"))
        cr_skip_test("this CPU runs every kernel set: none to refuse");
    cr_assert_eq(run_zfviz(dir, "avx512", "info --arch zfnet"), 2);
    err = tu_read_file(path, NULL);
    char want[160];
    snprintf(want, sizeof want, "zfviz: ZFVIZ_ISA: this CPU cannot run the avx512 kernels (the widest it runs: %s)\n",
             zf_cpu_kernels_max());
    cr_assert(err && !strcmp(err, want), "%s", err);
    free(err);
}

/* On a CPU without AVX (QEMU's user emulation of a Nehalem) the program starts (built for
 * x86-64-v3 it died there with SIGILL), runs the SSE kernels and refuses ZFVIZ_ISA=avx2.
 * OMP_WAIT_POLICY is set so that zfviz does not run itself again (main.c), which would leave the
 * emulator. */
Test(isa, program_runs_on_a_cpu_without_avx)
{
    if (tu_system("command -v qemu-x86_64 >/dev/null 2>&1"))
        cr_skip_test("qemu-x86_64 (Debian's qemu-user) is not installed");
    if (dlsym(RTLD_DEFAULT, "__asan_init"))
        cr_skip_test("AddressSanitizer does not run under QEMU's user emulation");
    const char *dir = tu_tmpdir("isa_nehalem");
    const char *run = "cd '%s' && env -u ZFVIZ_ISA -u OPENBLAS_CORETYPE OMP_WAIT_POLICY=passive %s timeout 250 "
                      "qemu-x86_64 -cpu Nehalem '%s' info --arch alexnet-mini >out 2>err </dev/null";
    cr_assert_eq(tu_system(run, dir, "", tu_build("tools/zfviz")), 0, "zfviz info failed on an emulated Nehalem");
    char path[4096];
    snprintf(path, sizeof path, "%s/out", dir);
    char *out = tu_read_file(path, NULL);
    cr_assert(out && strstr(out, "kernels: sse (CPU: sse;"), "%s", out ? out : "");
    free(out);
    cr_assert_eq(tu_system(run, dir, "ZFVIZ_ISA=avx2", tu_build("tools/zfviz")), 2);
    snprintf(path, sizeof path, "%s/err", dir);
    char *err = tu_read_file(path, NULL);
    cr_assert(err && strstr(err, "cannot run the avx2 kernels (the widest it runs: sse)"), "%s", err ? err : "");
    free(err);
}
