/* oneDNN inside the CPU engine (core/dnnl.c) against float64 loops written here, at sizes that are
 * multiples of no vector or block width: its convolution primitives with bias, with the fused
 * ReLU, grouped, strided, padded (a bottom padding that the output size leaves short of the
 * top's), under the widest kernel set and under sse (oneDNN limited to SSE4.1 alike); the paths
 * zf_conv_forward then takes; oneDNN's sgemm for the fully connected layers; zf_sgemm taking it
 * for every GEMM of the convolution paths (im2col, Winograd, polyphase, the backward passes) where
 * OpenBLAS runs Prescott's kernels, OpenBLAS where it runs Haswell's; and `zfviz info` naming
 * what runs under each ZFVIZ_ISA. Skipped, with the reason, where zfviz is built without
 * oneDNN. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/backward.h"
#include "zf/cpu.h"
#include "zf/ops.h"
#include "../core/conv_internal.h"
#include "../core/dnnl_internal.h"
#include "../core/fc_internal.h"
#include "../core/gemm_internal.h"

static void need_dnnl(void)
{
    if (!zf_dnnl_version())
        cr_skip_test("zfviz is built without oneDNN (libdnnl-dev)");
}

static float *frand(size_t n, uint64_t seed)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    cr_assert_not_null(x);
    tu_fill_uniform(x, n, seed, -1.0f, 1.0f);
    return x;
}

/* Every element within tol of the reference, relative to its largest magnitude; the first that is
 * not is reported with its index. */
static void expect_close(const float *got, const double *ref, size_t n, double tol, const char *what)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    cr_assert(scale > 0, "%s: the reference is all zero, the test proves nothing", what);
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - ref[i]) <= tol * scale))
            cr_assert_fail("%s: element %zu is %.9g, float64 gives %.9g (%.2g of the largest %.4g)", what, i, got[i],
                           ref[i], fabs(got[i] - ref[i]) / scale, scale);
}

/* out (n, k, oh, ow) in float64 from the definition, then max(0, .) when relu. */
static void ref_conv(double *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g, int relu)
{
    tu_ref_conv_f(out, in, w, bias, g);
    for (size_t i = 0; relu && i < (size_t)g->n * g->k * g->oh * g->ow; i++)
        out[i] = out[i] < 0 ? 0 : out[i];
}

static zf_conv_geom geom(int n, int c, int h, int w, int k, int kk, int s, int p, int groups)
{
    const zf_conv_geom g = {n, c, h, w, k, (h + 2 * p - kk) / s + 1, (w + 2 * p - kk) / s + 1, kk, kk, s, s, p, p,
                            groups};
    return g;
}

static const struct {
    const char *what;
    int n, c, h, w, k, kk, s, p, groups;
} convs[] = {
    {"11x11 stride 4, 3 channels (a first layer)", 2, 3, 46, 71, 13, 11, 4, 2, 1},
    {"11x11 stride 4, no padding", 1, 3, 39, 39, 9, 11, 4, 0, 1},
    {"7x7 stride 2, 3 channels", 3, 3, 31, 45, 11, 7, 2, 1, 1},
    {"5x5 stride 2", 2, 5, 29, 33, 7, 5, 2, 0, 1},
    {"3x3, 13x13 maps", 1, 19, 13, 13, 21, 3, 1, 1, 1},
    {"3x3, 2 groups", 3, 10, 11, 9, 14, 3, 1, 1, 2},
    {"5x5 stride 3, 3 groups", 2, 9, 19, 23, 6, 5, 3, 2, 3},
    {"1x1", 3, 7, 5, 11, 9, 1, 1, 0, 1},
};
#define N_CONVS (sizeof convs / sizeof convs[0])

static size_t in_floats(const zf_conv_geom *g) { return (size_t)g->n * g->c * g->h * g->w; }
static size_t out_floats(const zf_conv_geom *g) { return (size_t)g->n * g->k * g->oh * g->ow; }
static size_t w_floats(const zf_conv_geom *g) { return (size_t)g->k * (g->c / g->groups) * g->kh * g->kw; }

/* oneDNN's primitive with and without the fused ReLU, and zf_conv_forward by whatever path it takes,
 * against float64 for every geometry above, under the kernel set that runs. */
static void check_convs(const char *set)
{
    for (size_t t = 0; t < N_CONVS; t++) {
        const zf_conv_geom g = geom(convs[t].n, convs[t].c, convs[t].h, convs[t].w, convs[t].k, convs[t].kk,
                                    convs[t].s, convs[t].p, convs[t].groups);
        float *in = frand(in_floats(&g), 10 + t), *w = frand(w_floats(&g), 20 + t), *b = frand((size_t)g.k, 30 + t);
        double *ref = malloc(sizeof(double) * out_floats(&g));
        float *out = malloc(sizeof(float) * out_floats(&g));
        for (int relu = 0; relu < 2; relu++) {
            char what[160];
            snprintf(what, sizeof what, "%s: %s%s", set, convs[t].what, relu ? ", ReLU fused" : "");
            cr_assert(zf_dnnl_conv_ok(&g, relu), "%s: oneDNN cannot run it", what);
            ref_conv(ref, in, w, b, &g, relu);
            const size_t wsn = zf_dnnl_conv_workspace_floats(&g, relu);
            float *ws = malloc(sizeof(float) * (wsn ? wsn : 1));
            for (size_t i = 0; i < out_floats(&g); i++)
                out[i] = NAN;
            cr_assert_eq(zf_dnnl_conv_forward(out, in, w, b, &g, relu, ws), 0, "%s: oneDNN declined", what);
            expect_close(out, ref, out_floats(&g), 2e-5, what);
            /* a second call (the plan kept) gives the same */
            cr_assert_eq(zf_dnnl_conv_forward(out, in, w, b, &g, relu, ws), 0);
            expect_close(out, ref, out_floats(&g), 2e-5, what);
            free(ws);
        }
        ref_conv(ref, in, w, b, &g, 0);
        float *ws = malloc(sizeof(float) * zf_conv_workspace_floats(&g));
        for (size_t i = 0; i < out_floats(&g); i++)
            out[i] = NAN;
        zf_conv_forward(out, in, w, b, &g, ws);
        char what[160];
        snprintf(what, sizeof what, "%s: %s by zf_conv_forward (%s)", set, convs[t].what, zf_conv_path_name(&g));
        expect_close(out, ref, out_floats(&g), 2e-5, what);
        free(ws);
        free(in);
        free(w);
        free(b);
        free(ref);
        free(out);
    }
}

Test(dnnl, conv_primitives_match_float64_loops_under_the_widest_kernels)
{
    need_dnnl();
    /* the widest set even where ZFVIZ_ISA asks for a narrower one (the sanitizer job runs sse) */
    cr_assert_eq(zf_cpu_set_kernels(NULL), ZF_OK);
    cr_assert_str_eq(zf_cpu_kernels(), zf_cpu_kernels_max());
    check_convs(zf_cpu_kernels());
}

/* Criterion runs each test in its own process: oneDNN is first used here under sse. */
Test(dnnl, conv_primitives_match_float64_loops_under_sse)
{
    need_dnnl();
    cr_assert_eq(zf_cpu_set_kernels("sse"), ZF_OK);
    cr_assert_str_eq(zf_dnnl_isa(), "sse41");
    check_convs("sse");
}

Test(dnnl, first_layers_take_onednn_and_winograd_keeps_its_layers)
{
    need_dnnl();
    /* AlexNet's (Caffe) conv1 and ZFNet's conv1: a direct JIT primitive runs them */
    const zf_conv_geom c1 = geom(1, 3, 227, 227, 96, 11, 4, 0, 1), z1 = geom(1, 3, 224, 224, 96, 7, 2, 1, 1);
    cr_assert(!strncmp(zf_conv_path_name(&c1), "onednn:jit:", 11), "caffe conv1 takes %s", zf_conv_path_name(&c1));
    cr_assert(!strncmp(zf_conv_path_name(&z1), "onednn:jit:", 11), "zfnet conv1 takes %s", zf_conv_path_name(&z1));
    /* deeper layers keep zfviz's paths: oneDNN's direct kernel sums long dot products less
     * accurately (core/conv.c); zfnet512's conv5 and ZFNet's conv2 at batch 1 */
    const zf_conv_geom d5 = geom(1, 512, 13, 13, 512, 3, 1, 1, 1), z2 = geom(1, 96, 55, 55, 256, 5, 2, 0, 1);
    cr_assert(strncmp(zf_conv_path_name(&d5), "onednn:", 7), "zfnet512 conv5 takes %s", zf_conv_path_name(&d5));
    cr_assert(strncmp(zf_conv_path_name(&z2), "onednn:", 7), "zfnet conv2 takes %s", zf_conv_path_name(&z2));
    /* 3x3 layers at batch 16 stay with Winograd, which measured faster */
    const zf_conv_geom c3 = geom(16, 256, 13, 13, 384, 3, 1, 1, 1);
    cr_assert_str_eq(zf_conv_path_name(&c3), "winograd-f4");
    /* the choice is the same each time it is asked */
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(zf_conv_path_name(&c3), "winograd-f4");
}

Test(dnnl, fully_connected_by_onednn_sgemm_matches_float64_loops)
{
    need_dnnl();
    const int sizes[][3] = {{1, 37, 29}, {3, 257, 101}, {17, 131, 67}, {33, 61, 1001}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        const int n = sizes[t][0], in_f = sizes[t][1], out_f = sizes[t][2];
        float *in = frand((size_t)n * in_f, 40 + t), *w = frand((size_t)out_f * in_f, 50 + t);
        float *b = frand((size_t)out_f, 60 + t), *out = malloc(sizeof(float) * n * out_f);
        double *ref = malloc(sizeof(double) * n * out_f);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out_f; o++) {
                double s = b[o];
                for (int j = 0; j < in_f; j++)
                    s += (double)in[(size_t)i * in_f + j] * w[(size_t)o * in_f + j];
                ref[(size_t)i * out_f + o] = s;
            }
        zf_fc_forward_dnnl(out, in, w, b, n, in_f, out_f);
        char what[96];
        snprintf(what, sizeof what, "fc %d x %d -> %d", n, in_f, out_f);
        expect_close(out, ref, (size_t)n * out_f, 1e-5, what);
        free(in);
        free(w);
        free(b);
        free(out);
        free(ref);
    }
}

/* `zfviz info` under a kernel set: its kernels line and conv1's path. */
static char *info_under(const char *dir, const char *isa)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/info", dir);
    if (isa)
        cr_assert_eq(tu_system("ZFVIZ_ISA=%s '%s' info --arch zfnet > '%s' 2>&1", isa, tu_build("tools/zfviz"), path), 0);
    else
        cr_assert_eq(tu_system("unset ZFVIZ_ISA; '%s' info --arch zfnet > '%s' 2>&1", tu_build("tools/zfviz"), path), 0);
    char *s = tu_read_file(path, NULL);
    cr_assert_not_null(s);
    return s;
}

Test(dnnl, info_names_onednn_and_each_convolution_path)
{
    need_dnnl();
    const char *dir = tu_tmpdir("dnnl_info");
    char *wide = info_under(dir, NULL), *sse = info_under(dir, "sse");
    char want[128];
    snprintf(want, sizeof want, "oneDNN %s (", zf_dnnl_version());
    cr_assert(strstr(wide, want), "no '%s' in:\n%s", want, wide);
    cr_assert(strstr(sse, "oneDNN") && strstr(sse, "(sse41)"), "under sse oneDNN is not limited to SSE4.1:\n%s", sse);
    cr_assert(strstr(sse, "conv1 onednn:jit:sse41"), "under sse conv1 does not run oneDNN's SSE4.1 kernel:\n%s", sse);
    cr_assert(strstr(wide, "conv1 onednn:jit:"), "conv1's path is not named:\n%s", wide);
    free(wide);
    free(sse);
}

/* ---- zf_sgemm (core/gemm.c): every GEMM of the convolution paths takes oneDNN where OpenBLAS runs
 * kernels older than the CPU. OpenBLAS reads OPENBLAS_CORETYPE when it loads, so the checks run
 * in a process of this program started with it set (sgemm_child below, skipped otherwise). */

/* The convolution paths that call zf_sgemm, each against float64 at sizes that are multiples of
 * no vector or block width; oneDNN must have run (onednn) or not run (!onednn) their GEMMs. */
static void check_gemm_paths(int onednn)
{
    static const struct {
        const char *what, *path; /* path: what zf_conv_path_name must say ("" for im2col forced) */
        int n, c, h, w, k, kk, s, p, groups;
        double tol;
    } cases[] = {
        {"im2col 11x11 stride 4", "", 2, 3, 47, 39, 13, 11, 4, 2, 1, 2e-5},
        {"im2col 3x3, 2 groups, images batched", "", 3, 10, 11, 9, 14, 3, 1, 1, 2, 2e-5},
        {"winograd F(2x2, 3x3), 2 groups", "winograd-f2", 8, 6, 6, 5, 10, 3, 1, 1, 2, 1e-4},
        {"winograd F(4x4, 3x3)", "winograd-f4", 5, 7, 29, 31, 11, 3, 1, 1, 1, 1e-4},
        {"winograd F(4x4, 5x5)", "winograd-f4", 2, 5, 27, 25, 9, 5, 1, 2, 1, 1e-4},
        {"polyphase 5x5 stride 2", "polyphase-f4", 2, 3, 57, 55, 7, 5, 2, 1, 1, 1e-4},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const zf_conv_geom g = geom(cases[t].n, cases[t].c, cases[t].h, cases[t].w, cases[t].k, cases[t].kk,
                                    cases[t].s, cases[t].p, cases[t].groups);
        const double tol = cases[t].tol;
        float *in = frand(in_floats(&g), 70 + t), *w = frand(w_floats(&g), 80 + t), *b = frand((size_t)g.k, 90 + t);
        float *dout = frand(out_floats(&g), 100 + t), *out = malloc(sizeof(float) * out_floats(&g));
        float *din = malloc(sizeof(float) * in_floats(&g)), *dw = malloc(sizeof(float) * w_floats(&g));
        double *ref = malloc(sizeof(double) * out_floats(&g)), *rdin = malloc(sizeof(double) * in_floats(&g));
        double *rdw = malloc(sizeof(double) * w_floats(&g));
        const size_t wsn = zf_conv_workspace_floats(&g), wsb = zf_conv_backward_weights_ws_floats(&g);
        float *ws = malloc(sizeof(float) * (wsn > wsb ? wsn : wsb));
        char what[160];
        ref_conv(ref, in, w, b, &g, 0);
        tu_ref_conv_backward(rdin, rdw, in, dout, w, &g);

        unsigned long calls = zf_sgemm_onednn_calls();
        if (*cases[t].path) {
            cr_assert(!strcmp(zf_conv_path_name(&g), cases[t].path), "%s takes %s", cases[t].what,
                      zf_conv_path_name(&g));
            zf_conv_forward_own(out, in, w, b, &g, ws);
        } else {
            zf_conv_forward_im2col(out, in, w, b, &g, ws);
        }
        cr_assert(onednn ? zf_sgemm_onednn_calls() > calls : zf_sgemm_onednn_calls() == 0,
                  "%s: oneDNN ran %lu GEMMs of the forward", cases[t].what, zf_sgemm_onednn_calls() - calls);
        snprintf(what, sizeof what, "%s (%s), forward", cases[t].what, zf_sgemm_library());
        expect_close(out, ref, out_floats(&g), tol, what);
        /* the same threads and kernels give the same bits */
        float *again = malloc(sizeof(float) * out_floats(&g));
        if (*cases[t].path)
            zf_conv_forward_own(again, in, w, b, &g, ws);
        else
            zf_conv_forward_im2col(again, in, w, b, &g, ws);
        cr_assert(!memcmp(again, out, sizeof(float) * out_floats(&g)), "%s: a second run differs", what);
        free(again);

        calls = zf_sgemm_onednn_calls();
        zf_conv_backward_data(din, dout, w, &g, ws);
        zf_conv_backward_weights(dw, NULL, in, dout, &g, ws);
        cr_assert(onednn ? zf_sgemm_onednn_calls() >= calls + 2 * (unsigned long)g.groups
                         : zf_sgemm_onednn_calls() == 0,
                  "%s: oneDNN ran %lu GEMMs of the backward passes", cases[t].what, zf_sgemm_onednn_calls() - calls);
        snprintf(what, sizeof what, "%s (%s), input gradient", cases[t].what, zf_sgemm_library());
        expect_close(din, rdin, in_floats(&g), 2e-5, what);
        snprintf(what, sizeof what, "%s (%s), weight gradient", cases[t].what, zf_sgemm_library());
        expect_close(dw, rdw, w_floats(&g), 2e-5, what);
        free(in), free(w), free(b), free(dout), free(out), free(din), free(dw);
        free(ref), free(rdin), free(rdw), free(ws);
    }
}

static int child_mode(const char *mode)
{
    const char *m = getenv("ZF_TEST_SGEMM_CHILD");
    return m && !strcmp(m, mode);
}

Test(sgemm_child, prescott)
{
    if (!child_mode("prescott"))
        cr_skip_test("run by dnnl/every_gemm_takes_onednn_where_openblas_runs_prescott");
    cr_assert(!strcasecmp(zf_blas_core(), "Prescott"), "OPENBLAS_CORETYPE=Prescott gave OpenBLAS %s", zf_blas_core());
    cr_assert_str_eq(zf_sgemm_library(), "oneDNN");
    check_gemm_paths(1);
}

Test(sgemm_child, haswell)
{
    if (!child_mode("haswell"))
        cr_skip_test("run by dnnl/every_gemm_takes_onednn_where_openblas_runs_prescott");
    cr_assert(!strcasecmp(zf_blas_core(), "Haswell"), "OPENBLAS_CORETYPE=Haswell gave OpenBLAS %s", zf_blas_core());
    cr_assert_str_eq(zf_sgemm_library(), "OpenBLAS");
    check_gemm_paths(0);
}

/* This program again, with OPENBLAS_CORETYPE=core, running sgemm_child/mode alone: it must pass
 * (not be skipped). BXFI_MAP, set by Criterion's sandbox in this worker, would make it act as one. */
static void run_child(const char *core, const char *mode)
{
    char exe[4096], log[4200];
    const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(len > 0);
    exe[len] = '\0';
    snprintf(log, sizeof log, "%s/%s.log", tu_tmpdir(mode), mode);
    const int rc = tu_system("env -u BXFI_MAP OPENBLAS_CORETYPE=%s ZF_TEST_SGEMM_CHILD=%s '%s' --filter 'sgemm_child/%s' --jobs 1 > '%s' 2>&1",
                             core, mode, exe, mode, log);
    char *out = tu_read_file(log, NULL);
    cr_assert_not_null(out);
    cr_assert_eq(rc, 0, "OPENBLAS_CORETYPE=%s: the checks failed (exit %d):\n%s", core, rc, out);
    cr_assert(strstr(out, "Passing: 1"), "OPENBLAS_CORETYPE=%s: the checks did not run:\n%s", core, out);
    free(out);
}

Test(dnnl, every_gemm_takes_onednn_where_openblas_runs_prescott)
{
    need_dnnl();
    if (strcmp(zf_cpu_isa(), "avx2") && strcmp(zf_cpu_isa(), "avx512"))
        cr_skip_test("the CPU has no AVX2 and FMA: Prescott's kernels are not older than it");
    run_child("Prescott", "prescott");
    /* where OpenBLAS runs kernels as new as the CPU's, OpenBLAS stays */
    run_child("Haswell", "haswell");
}
