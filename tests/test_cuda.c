/* The CUDA engine against the CPU engine (itself checked against float64 loops in test_ops.c): every
 * op, every built-in net's forward layer by layer, the deconvnet, occlusion maps (both methods,
 * against a CPU brute force written out here), the reduced precisions within their documented
 * error, and the error paths. Relative errors are max |gpu - cpu| / max(|cpu|, rms(cpu)): relative
 * to each value, or to the tensor's typical size for values near zero. Without a GPU every GPU
 * test skips, saying so; the error paths for "no GPU" run instead. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "zf/net.h"
#include "zf/occlusion.h"
#include "zf/ops.h"
#include "zf/tensor.h"

#ifndef ZF_CUDA_ENABLED

Test(cuda, skipped_in_a_build_without_cuda)
{
    cr_skip_test("built without the CUDA engine (no nvcc or cuDNN at configure time, or -DZF_CUDA=OFF): no GPU tests");
}

#else
#include <sqlite3.h>

#include "op_cases.h"
#include "zf/attribution.h"
#include "zf/backward.h"
#include "zf/cuda.h"
#include "zf/db.h"
#include "zf/engine.h"
#include "zf/evolve.h"
#include "zf/paper.h"
#include "zf/probe.h"
#include "zf/train.h"

/* ---- helpers ---- */

static int have_gpu(void)
{
    char desc[256];
    return zf_cuda_device_count(desc, sizeof desc) > 0;
}

static zf_cuda_ctx *gpu(void)
{
    char desc[256];
    if (zf_cuda_device_count(desc, sizeof desc) == 0)
        cr_skip_test("no CUDA device here, GPU test skipped (%s)", zf_last_error());
    zf_cuda_ctx *ctx = NULL;
    cr_assert_eq(zf_cuda_ctx_new(0, &ctx), ZF_OK, "zf_cuda_ctx_new: %s", zf_last_error());
    return ctx;
}

static float *falloc(size_t n)
{
    float *p = zf_alloc(n * sizeof(float));
    cr_assert(p);
    return p;
}

static void *dalloc(zf_cuda_ctx *ctx, size_t bytes)
{
    void *p = NULL;
    cr_assert_eq(zf_cuda_malloc(ctx, &p, bytes, "a test buffer"), ZF_OK, "%s", zf_last_error());
    return p;
}

static float *up(zf_cuda_ctx *ctx, const void *host, size_t bytes)
{
    float *d = dalloc(ctx, bytes);
    cr_assert_eq(zf_cuda_upload(ctx, d, host, bytes), ZF_OK, "%s", zf_last_error());
    return d;
}

static void down(zf_cuda_ctx *ctx, void *host, const void *dev, size_t bytes)
{
    cr_assert_eq(zf_cuda_download(ctx, host, dev, bytes), ZF_OK, "%s", zf_last_error());
}

#define OK(call) cr_assert_eq((call), ZF_OK, "%s: %s", #call, zf_last_error())

/* max |a - ref| / max(|ref|, rms(ref)); *at gets the index of the worst. */
/* A whole net on the GPU against the CPU engine: float32 sums of up to 9,216 terms taken in
 * another order (cuDNN's algorithms, cuBLAS's blocking; the emulation's loops against OpenBLAS's
 * AVX2 kernels) drift by more than one op's 1e-5 as they pass through eight layers: 1.45e-5 seen
 * under scripts/cuda-emu-test.sh. One op stays within 1e-5. */
#define NET_TOL 5e-5

static double rel_err(const float *a, const float *ref, size_t n, size_t *at)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)ref[i] * ref[i];
    const double rms = n ? sqrt(ss / n) : 0;
    return tu_max_rel_err_f(a, ref, n, rms > 0 ? rms : 1e-30, at);
}

/* ---- without a GPU (or regardless of one) ---- */

Test(cuda, no_device_is_a_clear_error_and_auto_falls_back_to_the_cpu)
{
    if (have_gpu())
        cr_skip_test("a GPU is present: the no-device path cannot be shown here");
    zf_cuda_ctx *ctx = NULL;
    zf_status st = zf_cuda_ctx_new(0, &ctx);
    cr_assert_eq(st, ZF_ERR_DEVICE);
    cr_assert_null(ctx);
    const char *msg = zf_last_error();
    cr_assert(strstr(msg, "no CUDA device") || strstr(msg, "driver"), "unclear message: %s", msg);
    zf_net *net = NULL;
    OK(zf_net_new_builtin("alexnet", &net));
    zf_cuda_net *cn = (zf_cuda_net *)1;
    OK(zf_cuda_open(ZF_DEVICE_AUTO, net, 4, ZF_CUDA_FP32, &cn));
    cr_assert_null(cn, "auto must fall back to the CPU without a GPU");
    cn = (zf_cuda_net *)1;
    cr_assert_eq(zf_cuda_open(ZF_DEVICE_CUDA, net, 4, ZF_CUDA_FP32, &cn), ZF_ERR_DEVICE);
    cr_assert_null(cn);
    OK(zf_cuda_open(ZF_DEVICE_CPU, net, 4, ZF_CUDA_FP32, &cn));
    cr_assert_null(cn);
    zf_net_free(net);
}

Test(cuda, precision_and_device_names_parse_and_bad_ones_are_refused)
{
    /* each name and the value it parses to */
    static const struct {
        const char *name;
        int want;
    } precisions[] = {{"tf32", ZF_CUDA_TF32}, {"bf16", ZF_CUDA_BF16}, {"fp32", ZF_CUDA_FP32}},
      devices[] = {{"auto", ZF_DEVICE_AUTO}, {"cuda", ZF_DEVICE_CUDA}, {"cpu", ZF_DEVICE_CPU}};
    zf_cuda_precision p;
    zf_device_choice d;
    for (int i = 0; i < 3; i++) {
        OK(zf_cuda_parse_precision(precisions[i].name, &p));
        cr_assert_eq((int)p, precisions[i].want, "%s", precisions[i].name);
        OK(zf_cuda_parse_device(devices[i].name, &d));
        cr_assert_eq((int)d, devices[i].want, "%s", devices[i].name);
    }
    cr_assert_eq(zf_cuda_parse_precision("fp16", &p), ZF_ERR_ARG);
    cr_assert(strstr(zf_last_error(), "fp16"));
    cr_assert_eq(zf_cuda_parse_device("tpu", &d), ZF_ERR_ARG);
}

/* ---- ops ---- */

/* The shared op cases (op_cases.c) on the device against their float64 references, as
 * test_ops.c runs them on the CPU. */
static void check_conv(zf_cuda_ctx *ctx, const tu_conv_case *c)
{
    const zf_conv_geom g = tu_conv_case_geom(c);
    const size_t nin = (size_t)g.n * g.c * g.h * g.w, nout = (size_t)g.n * g.k * g.oh * g.ow;
    const size_t nw = (size_t)g.k * (g.c / g.groups) * g.kh * g.kw;
    float *in = falloc(nin), *w = falloc(nw), *b = falloc(g.k), *dout = falloc(nout);
    float *got = falloc(nout > nin ? nout : nin);
    double *ref = malloc(sizeof(double) * (nout > nin ? nout : nin));
    cr_assert(ref);
    tu_fill_uniform(in, nin, c->seed, -1, 1);
    tu_fill_uniform(w, nw, c->seed + 1, -1, 1);
    tu_fill_uniform(b, g.k, c->seed + 2, -1, 1);
    tu_fill_uniform(dout, nout, c->seed + 3, -1, 1);
    float *d_in = up(ctx, in, nin * 4), *d_w = up(ctx, w, nw * 4), *d_b = up(ctx, b, g.k * 4);
    float *d_dout = up(ctx, dout, nout * 4), *d_out = dalloc(ctx, nout * 4), *d_din = dalloc(ctx, nin * 4);
    OK(zf_cuda_conv_forward(ctx, d_out, d_in, d_w, d_b, &g));
    down(ctx, got, d_out, nout * 4);
    tu_ref_conv_f(ref, in, w, b, &g);
    double mx = tu_max_abs_d(ref, nout);
    size_t at;
    double e = tu_max_rel_err(got, ref, nout, mx, &at);
    cr_expect(e < 1e-5, "conv %s: rel err %g at %zu (%g vs %g)", c->what, e, at, got[at], ref[at]);
    OK(zf_cuda_conv_backward_data(ctx, d_din, d_dout, d_w, &g));
    down(ctx, got, d_din, nin * 4);
    tu_ref_conv_backward(ref, NULL, NULL, dout, w, &g);
    mx = tu_max_abs_d(ref, nin);
    e = tu_max_rel_err(got, ref, nin, mx, &at);
    cr_expect(e < 1e-5, "transposed conv %s: rel err %g at %zu (%g vs %g)", c->what, e, at, got[at], ref[at]);
    zf_cuda_free(d_in); zf_cuda_free(d_w); zf_cuda_free(d_b); zf_cuda_free(d_dout); zf_cuda_free(d_out);
    zf_cuda_free(d_din);
    zf_free(in); zf_free(w); zf_free(b); zf_free(dout); zf_free(got);
    free(ref);
}

Test(cuda_ops, conv_cases_match_float64)
{
    zf_cuda_ctx *ctx = gpu();
    for (size_t i = 0; i < tu_n_conv_cases; i++)
        check_conv(ctx, &tu_conv_cases[i]);
    zf_cuda_ctx_free(ctx);
}

/* The parameters' gradients over the shared convolution cases and a fully connected layer against
 * float64 (the filters' gradient relative to its largest value, as the sums of a whole batch and
 * map), and SGD's step against the update written out in float in the test, to the bit. */
Test(cuda_ops, parameter_gradients_and_the_sgd_step_match)
{
    zf_cuda_ctx *ctx = gpu();
    for (size_t ci = 0; ci < tu_n_conv_cases; ci++) {
        const tu_conv_case *c = &tu_conv_cases[ci];
        const zf_conv_geom g = tu_conv_case_geom(c);
        const size_t nin = (size_t)g.n * g.c * g.h * g.w, nout = (size_t)g.n * g.k * g.oh * g.ow;
        const size_t nw = (size_t)g.k * (g.c / g.groups) * g.kh * g.kw;
        float *in = falloc(nin), *dout = falloc(nout), *w = falloc(nw), *dw = falloc(nw), *db = falloc(g.k);
        double *rdin = malloc(sizeof(double) * nin), *rdw = malloc(sizeof(double) * nw), *rdb = calloc(g.k, 8);
        cr_assert(rdin && rdw && rdb);
        tu_fill_uniform(in, nin, c->seed + 5, -1, 1);
        tu_fill_uniform(dout, nout, c->seed + 6, -1, 1);
        tu_fill_uniform(w, nw, c->seed + 7, -1, 1);
        tu_ref_conv_backward(rdin, rdw, in, dout, w, &g);
        for (int n = 0; n < g.n; n++)
            for (int k = 0; k < g.k; k++)
                for (int q = 0; q < g.oh * g.ow; q++)
                    rdb[k] += dout[((size_t)n * g.k + k) * g.oh * g.ow + q];
        float *d_in = up(ctx, in, nin * 4), *d_dout = up(ctx, dout, nout * 4), *d_dw = dalloc(ctx, nw * 4);
        float *d_db = dalloc(ctx, g.k * 4);
        OK(zf_cuda_conv_backward_weights(ctx, d_dw, d_db, d_in, d_dout, &g));
        down(ctx, dw, d_dw, nw * 4);
        down(ctx, db, d_db, g.k * 4);
        double mx = tu_max_abs_d(rdw, nw);
        size_t at;
        double e = tu_max_rel_err(dw, rdw, nw, mx, &at);
        cr_expect(e < 1e-5, "filters' gradient %s: rel err %g at %zu (%g vs %g)", c->what, e, at, dw[at], rdw[at]);
        e = tu_max_rel_err(db, rdb, g.k, 1.0, &at);
        cr_expect(e < 1e-5, "bias gradient %s: rel err %g at %zu", c->what, e, at);
        zf_cuda_free(d_in); zf_cuda_free(d_dout); zf_cuda_free(d_dw); zf_cuda_free(d_db);
        zf_free(in); zf_free(dout); zf_free(w); zf_free(dw); zf_free(db);
        free(rdin); free(rdw); free(rdb);
    }
    /* fully connected, batches of 1, 2 and 7 */
    const int in_f = 173, out_f = 61;
    float *x = falloc(7 * in_f), *dy = falloc(7 * out_f), *w = falloc((size_t)out_f * in_f);
    float *dx = falloc(7 * in_f), *dw = falloc((size_t)out_f * in_f), *db = falloc(out_f);
    double *rdx = malloc(sizeof(double) * 7 * in_f), *rdw = malloc(sizeof(double) * out_f * in_f);
    double *rdb = malloc(sizeof(double) * out_f);
    cr_assert(rdx && rdw && rdb);
    tu_fill_uniform(x, 7 * in_f, 91, -1, 1);
    tu_fill_uniform(dy, 7 * out_f, 92, -1, 1);
    tu_fill_uniform(w, (size_t)out_f * in_f, 93, -1, 1);
    float *d_x = up(ctx, x, 7 * in_f * 4), *d_dy = up(ctx, dy, 7 * out_f * 4), *d_w = up(ctx, w, out_f * in_f * 4);
    float *d_dx = dalloc(ctx, 7 * in_f * 4), *d_dw = dalloc(ctx, out_f * in_f * 4), *d_db = dalloc(ctx, out_f * 4);
    const int batches[] = {1, 2, 7};
    for (int t = 0; t < 3; t++) {
        const int n = batches[t];
        for (int o = 0; o < out_f; o++) {
            double sb = 0;
            for (int i = 0; i < n; i++)
                sb += dy[i * out_f + o];
            rdb[o] = sb;
            for (int j = 0; j < in_f; j++) {
                double s = 0;
                for (int i = 0; i < n; i++)
                    s += (double)dy[i * out_f + o] * x[i * in_f + j];
                rdw[(size_t)o * in_f + j] = s;
            }
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < in_f; j++) {
                double s = 0;
                for (int o = 0; o < out_f; o++)
                    s += (double)dy[i * out_f + o] * w[(size_t)o * in_f + j];
                rdx[i * in_f + j] = s;
            }
        OK(zf_cuda_fc_backward(ctx, d_dx, d_dw, d_db, d_dy, d_x, d_w, n, in_f, out_f));
        down(ctx, dx, d_dx, (size_t)n * in_f * 4);
        down(ctx, dw, d_dw, (size_t)out_f * in_f * 4);
        down(ctx, db, d_db, out_f * 4);
        size_t at;
        double e = tu_max_rel_err(dw, rdw, (size_t)out_f * in_f, 1.0, &at);
        cr_expect(e < 1e-5, "fc dw batch %d: rel err %g at %zu", n, e, at);
        e = tu_max_rel_err(db, rdb, out_f, 1.0, &at);
        cr_expect(e < 1e-5, "fc db batch %d: rel err %g at %zu", n, e, at);
        e = tu_max_rel_err(dx, rdx, (size_t)n * in_f, 1.0, &at);
        cr_expect(e < 1e-5, "fc din batch %d: rel err %g at %zu", n, e, at);
    }
    /* SGD with momentum and weight decay */
    const size_t cnt = 3001;
    float *pw = falloc(cnt), *pv = falloc(cnt), *pg = falloc(cnt), *ww = falloc(cnt), *wv = falloc(cnt);
    tu_fill_uniform(pw, cnt, 94, -1, 1);
    tu_fill_uniform(pv, cnt, 95, -0.1f, 0.1f);
    tu_fill_uniform(pg, cnt, 96, -1, 1);
    float *d_pw = up(ctx, pw, cnt * 4), *d_pv = up(ctx, pv, cnt * 4), *d_pg = up(ctx, pg, cnt * 4);
    const float lr = 0.01f, mom = 0.9f, wd = 5e-4f;
    for (int step = 0; step < 3; step++) {
        for (size_t j = 0; j < cnt; j++) {
            const float gj = pg[j] + wd * pw[j];
            pv[j] = mom * pv[j] + gj;
            pw[j] -= lr * pv[j];
        }
        OK(zf_cuda_sgd_update(ctx, d_pw, d_pv, d_pg, cnt, lr, mom, wd));
    }
    down(ctx, ww, d_pw, cnt * 4);
    down(ctx, wv, d_pv, cnt * 4);
    cr_expect(!memcmp(ww, pw, cnt * 4) && !memcmp(wv, pv, cnt * 4), "SGD's weights or momentum differ from the float steps");
    zf_cuda_free(d_x); zf_cuda_free(d_dy); zf_cuda_free(d_w); zf_cuda_free(d_dx); zf_cuda_free(d_dw); zf_cuda_free(d_db);
    zf_cuda_free(d_pw); zf_cuda_free(d_pv); zf_cuda_free(d_pg);
    zf_free(x); zf_free(dy); zf_free(w); zf_free(dx); zf_free(dw); zf_free(db);
    zf_free(pw); zf_free(pv); zf_free(pg); zf_free(ww); zf_free(wv);
    free(rdx); free(rdw); free(rdb);
    zf_cuda_ctx_free(ctx);
}

/* Max pooling (the first maximum's switch and its value exactly), unpooling, and average pooling
 * forward and backward with the case's divisor. */
static void check_pool(zf_cuda_ctx *ctx, const tu_pool_case *c)
{
    const zf_pool_geom g = tu_pool_case_geom(c);
    const size_t nin = (size_t)g.n * g.c * g.h * g.w, nout = (size_t)g.n * g.c * g.oh * g.ow;
    float *in = falloc(nin), *dout = falloc(nout), *got = falloc(nin > nout ? nin : nout);
    double *ref = malloc(sizeof(double) * (nin > nout ? nin : nout));
    int32_t *sw = zf_alloc(nout * 4), *gsw = zf_alloc(nout * 4);
    cr_assert(ref && sw && gsw);
    tu_pool_case_input(c, in);
    tu_fill_uniform(dout, nout, c->seed + 1, -1, 1);
    float *d_in = up(ctx, in, nin * 4), *d_dout = up(ctx, dout, nout * 4);
    float *d_out = dalloc(ctx, nout * 4), *d_back = dalloc(ctx, nin * 4);
    int32_t *d_sw = dalloc(ctx, nout * 4);
    OK(zf_cuda_maxpool_forward(ctx, d_out, d_sw, d_in, &g));
    down(ctx, got, d_out, nout * 4);
    down(ctx, gsw, d_sw, nout * 4);
    tu_ref_maxpool(ref, sw, in, &g);
    for (size_t i = 0; i < nout; i++) {
        cr_assert_eq(gsw[i], sw[i], "maxpool %s: switch at %zu is %d, the first maximum %d", c->what, i, gsw[i], sw[i]);
        cr_assert_eq(got[i], ref[i], "maxpool %s: value at %zu %g vs %g", c->what, i, got[i], ref[i]);
    }
    OK(zf_cuda_maxpool_unpool(ctx, d_back, d_dout, d_sw, &g));
    down(ctx, got, d_back, nin * 4);
    tu_ref_unpool(ref, dout, sw, &g);
    size_t at;
    double e = tu_max_rel_err(got, ref, nin, 1.0, &at);
    cr_expect(e < 1e-6, "unpool %s: rel err %g at %zu", c->what, e, at);
    OK(zf_cuda_avgpool_forward(ctx, d_out, d_in, &g, c->avg_pad));
    down(ctx, got, d_out, nout * 4);
    tu_ref_avgpool(ref, in, &g, c->avg_pad);
    e = tu_max_rel_err(got, ref, nout, 1.0, &at);
    cr_expect(e < 1e-6, "avgpool %s: rel err %g at %zu", c->what, e, at);
    OK(zf_cuda_avgpool_backward(ctx, d_back, d_dout, &g, c->avg_pad));
    down(ctx, got, d_back, nin * 4);
    tu_ref_avgpool_backward(ref, dout, &g, c->avg_pad);
    e = tu_max_rel_err(got, ref, nin, 1.0, &at);
    cr_expect(e < 1e-6, "avgpool backward %s: rel err %g at %zu", c->what, e, at);
    zf_cuda_free(d_in); zf_cuda_free(d_dout); zf_cuda_free(d_out); zf_cuda_free(d_back); zf_cuda_free(d_sw);
    zf_free(in); zf_free(dout); zf_free(got); zf_free(sw); zf_free(gsw);
    free(ref);
}

Test(cuda_ops, pool_cases_match_float64)
{
    zf_cuda_ctx *ctx = gpu();
    for (size_t i = 0; i < tu_n_pool_cases; i++)
        check_pool(ctx, &tu_pool_cases[i]);
    zf_cuda_ctx_free(ctx);
}

/* Forward and backward; the backward bit for bit (the GPU's gather adds in the order of the CPU's
 * scatter). */
Test(cuda_ops, adaptive_avgpool_forward_and_backward_match_cpu)
{
    zf_cuda_ctx *ctx = gpu();
    const int n = 3, c = 5, h = 13, w = 11, oh = 6, ow = 4;
    const size_t nin = (size_t)n * c * h * w, nout = (size_t)n * c * oh * ow;
    float *in = falloc(nin), *out = falloc(nout), *got = falloc(nout);
    tu_fill_uniform(in, nin, 21, -1, 1);
    zf_adaptive_avgpool_forward(out, in, n, c, h, w, oh, ow);
    float *d_in = up(ctx, in, nin * 4), *d_out = dalloc(ctx, nout * 4);
    OK(zf_cuda_adaptive_avgpool_forward(ctx, d_out, d_in, n, c, h, w, oh, ow));
    down(ctx, got, d_out, nout * 4);
    size_t at;
    double e = rel_err(got, out, nout, &at);
    cr_expect(e <= 1e-7, "adaptive avgpool rel err %g at %zu", e, at);
    zf_cuda_free(d_in); zf_cuda_free(d_out);
    zf_free(in); zf_free(out); zf_free(got);
    /* the backward over overlapping bins */
    float *dout = falloc(nout), *dcpu = falloc(nin), *dgpu = falloc(nin);
    tu_fill_uniform(dout, nout, 90, -1, 1);
    zf_adaptive_avgpool_backward(dcpu, dout, n, c, h, w, oh, ow);
    float *d_dout = up(ctx, dout, nout * 4), *d_din = dalloc(ctx, nin * 4);
    OK(zf_cuda_adaptive_avgpool_backward(ctx, d_din, d_dout, n, c, h, w, oh, ow));
    down(ctx, dgpu, d_din, nin * 4);
    cr_expect(!memcmp(dgpu, dcpu, nin * 4), "adaptive avgpool backward differs from the CPU");
    zf_cuda_free(d_dout); zf_cuda_free(d_din);
    zf_free(dout); zf_free(dcpu); zf_free(dgpu);
    zf_cuda_ctx_free(ctx);
}

Test(cuda_ops, lrn_forward_and_backward_match_cpu_for_every_window_convention)
{
    zf_cuda_ctx *ctx = gpu();
    const zf_lrn_params ps[] = {{5, 2, 1e-4f, 0.75f, 1.0f}, {5, 2, 5e-4f, 0.75f, 2.0f}, {4, 2, 0.3f, 0.6f, 1.5f},
                                {3, 1, 2.0f, 0.75f, 1.0f}, {4, 1, 0.3f, 0.75f, 1.0f}};
    const int n = 2, c = 11, hw = 1517;
    const size_t count = (size_t)n * c * hw;
    float *in = falloc(count), *dy = falloc(count), *out = falloc(count), *got = falloc(count);
    tu_fill_uniform(in, count, 31, -20, 20);
    tu_fill_uniform(dy, count, 32, -1, 1);
    float *d_in = up(ctx, in, count * 4), *d_dy = up(ctx, dy, count * 4), *d_out = dalloc(ctx, count * 4);
    for (size_t t = 0; t < sizeof ps / sizeof ps[0]; t++) {
        zf_lrn_forward(out, in, n, c, hw, &ps[t]);
        OK(zf_cuda_lrn_forward(ctx, d_out, d_in, n, c, hw, &ps[t]));
        down(ctx, got, d_out, count * 4);
        size_t at;
        double e = rel_err(got, out, count, &at);
        cr_expect(e < 1e-6, "lrn size %d front %d beta %g: rel err %g at %zu (%g vs %g)", ps[t].size, ps[t].front,
                  ps[t].beta, e, at, got[at], out[at]);
        zf_lrn_backward(out, dy, in, n, c, hw, &ps[t]);
        OK(zf_cuda_lrn_backward(ctx, d_out, d_dy, d_in, n, c, hw, &ps[t]));
        down(ctx, got, d_out, count * 4);
        e = rel_err(got, out, count, &at);
        cr_expect(e < 1e-5, "lrn backward size %d front %d: rel err %g at %zu (%g vs %g)", ps[t].size, ps[t].front,
                  e, at, got[at], out[at]);
    }
    zf_cuda_free(d_in); zf_cuda_free(d_dy); zf_cuda_free(d_out);
    zf_free(in); zf_free(dy); zf_free(out); zf_free(got);
    zf_cuda_ctx_free(ctx);
}

Test(cuda_ops, fc_relu_and_softmax_match_cpu)
{
    zf_cuda_ctx *ctx = gpu();
    const int in_f = 517, out_f = 301, nmax = 7;
    float *w = falloc((size_t)in_f * out_f), *b = falloc(out_f), *x = falloc(nmax * in_f), *y = falloc(nmax * out_f);
    float *got = falloc(nmax * out_f);
    tu_fill_uniform(w, (size_t)in_f * out_f, 51, -1, 1);
    tu_fill_uniform(b, out_f, 52, -1, 1);
    tu_fill_uniform(x, nmax * in_f, 53, -1, 1);
    float *d_w = up(ctx, w, (size_t)in_f * out_f * 4), *d_b = up(ctx, b, out_f * 4), *d_x = up(ctx, x, nmax * in_f * 4);
    float *d_y = dalloc(ctx, nmax * out_f * 4);
    const int batches[] = {1, 2, nmax};
    for (int t = 0; t < 3; t++) {
        const int n = batches[t];
        zf_fc_forward(y, x, w, b, n, in_f, out_f);
        OK(zf_cuda_fc_forward(ctx, d_y, d_x, d_w, d_b, n, in_f, out_f));
        down(ctx, got, d_y, (size_t)n * out_f * 4);
        size_t at;
        double e = rel_err(got, y, (size_t)n * out_f, &at);
        cr_expect(e < 1e-5, "fc batch %d: rel err %g at %zu (%g vs %g)", n, e, at, got[at], y[at]);
    }
    /* ReLU exactly, softmax rows of 1000 (ImageNet) and of an odd 301 */
    const size_t cnt = (size_t)nmax * out_f;
    zf_relu_forward(y, x, cnt);
    OK(zf_cuda_relu_forward(ctx, d_y, d_x, cnt));
    down(ctx, got, d_y, cnt * 4);
    cr_expect(memcmp(got, y, cnt * 4) == 0, "relu differs from the CPU");
    float *sx = falloc(3 * 1000), *sy = falloc(3 * 1000), *sg = falloc(3 * 1000);
    tu_fill_uniform(sx, 3000, 61, -30, 30);
    float *d_sx = up(ctx, sx, 3000 * 4), *d_sy = dalloc(ctx, 3000 * 4);
    const int ks[] = {1000, 301};
    for (int t = 0; t < 2; t++) {
        const int rows = 3000 / ks[t];
        zf_softmax_forward(sy, sx, rows, ks[t]);
        OK(zf_cuda_softmax_forward(ctx, d_sy, d_sx, rows, ks[t]));
        down(ctx, sg, d_sy, (size_t)rows * ks[t] * 4);
        size_t at;
        double e = tu_max_rel_err_f(sg, sy, (size_t)rows * ks[t], 1e-30, &at);
        cr_expect(e < 1e-5, "softmax of %d: rel err %g at %zu (%g vs %g)", ks[t], e, at, sg[at], sy[at]);
    }
    zf_cuda_free(d_w); zf_cuda_free(d_b); zf_cuda_free(d_x); zf_cuda_free(d_y); zf_cuda_free(d_sx); zf_cuda_free(d_sy);
    zf_free(w); zf_free(b); zf_free(x); zf_free(y); zf_free(got); zf_free(sx); zf_free(sy); zf_free(sg);
    zf_cuda_ctx_free(ctx);
}

/* The scan's plane statistics (zf/stats.h) on the device against core's zf_layer_stats on the same
 * values, to the bit (integer sums and first-position rules), and both against plain loops here:
 * positive counts, first positions of the extremes, and the positive values' sum in long double.
 * The planes hold ties at the maximum and minimum, zeros of both signs, NaN first and in the
 * middle, infinities, subnormals and values across the float range; sizes 1 to 3025 positions. */
Test(cuda_ops, layer_stats_match_the_cpu_to_the_bit)
{
    zf_cuda_ctx *ctx = gpu();
    const int hws[] = {1, 7, 169, 300, 3025};
    for (int t = 0; t < 5; t++) {
        const int n = 3, units = 5, hw = hws[t];
        const size_t count = (size_t)n * units * hw, np = (size_t)n * units, nh = (size_t)units * ZF_HIST_BINS;
        float *x = falloc(count);
        tu_fill_uniform(x, count, 700 + t, -3, 3);
        uint64_t seed = 900 + t;
        for (size_t i = 0; i < count; i++) { /* values across the range: 2^-140 .. 2^100 */
            const int r = (int)(tu_mix(&seed) >> 59);
            if (r < 4)
                x[i] = ldexpf(x[i], (int)(tu_mix(&seed) >> 56) - 140);
        }
        if (hw > 8) {
            float *p = x + (size_t)1 * hw; /* image 0, unit 1: ties at both extremes, zeros */
            p[3] = p[hw - 2] = FLT_MAX;
            p[5] = p[hw - 1] = -FLT_MAX;
            p[6] = 0.0f;
            p[7] = -0.0f;
            p = x + (size_t)2 * hw; /* unit 2: a NaN first */
            p[0] = NAN;
            p = x + (size_t)3 * hw; /* unit 3: a NaN inside, the infinities, a subnormal */
            p[2] = NAN;
            p[4] = INFINITY;
            p[6] = -INFINITY;
            p[8] = 1e-44f;
        }
        zf_plane_stats *want = calloc(np, sizeof *want), *got = calloc(np, sizeof *got);
        int64_t *hw_want = calloc(nh, sizeof *hw_want);
        uint32_t *hw_got = calloc(nh, sizeof *hw_got);
        cr_assert(want && got && hw_want && hw_got);
        zf_layer_stats(x, n, units, hw, want, hw_want);
        float *d_x = up(ctx, x, count * 4);
        zf_plane_stats *d_p = dalloc(ctx, np * sizeof *d_p);
        uint32_t *d_h = (uint32_t *)up(ctx, hw_got, nh * sizeof *hw_got); /* zeros */
        OK(zf_cuda_layer_stats(ctx, d_x, n, units, hw, d_p, d_h));
        down(ctx, got, d_p, np * sizeof *got);
        down(ctx, hw_got, d_h, nh * sizeof *hw_got);
        for (size_t k = 0; k < np; k++) {
            const float *p = x + k * hw;
            const zf_plane_stats *a = &want[k], *b = &got[k];
            cr_expect(!memcmp(a->sum.limb, b->sum.limb, sizeof a->sum.limb) && a->sum.special == b->sum.special,
                      "hw %d plane %zu: sums %.17g and %.17g", hw, k, zf_xsum_double(&a->sum), zf_xsum_double(&b->sum));
            cr_expect(a->positive == b->positive && a->argmax == b->argmax && a->argmin == b->argmin,
                      "hw %d plane %zu: positive %d/%d, argmax %d/%d, argmin %d/%d", hw, k, a->positive, b->positive,
                      a->argmax, b->argmax, a->argmin, b->argmin);
            cr_expect((a->max == b->max || (isnan(a->max) && isnan(b->max))) &&
                          (a->min == b->min || (isnan(a->min) && isnan(b->min))),
                      "hw %d plane %zu: max %g/%g, min %g/%g", hw, k, a->max, b->max, a->min, b->min);
            /* the reference loops */
            int pos = 0, am = 0, an = 0;
            long double ld = 0;
            int inf = 0;
            for (int j = 0; j < hw; j++) {
                pos += p[j] > 0;
                if (p[j] > 0 && isinf(p[j]))
                    inf = 1;
                else if (p[j] > 0)
                    ld += p[j];
                /* m = p[0], then the strictly greater: a NaN never compares greater */
                if (p[j] > p[am])
                    am = j;
                if (p[j] < p[an])
                    an = j;
            }
            cr_expect_eq(a->positive, pos, "hw %d plane %zu: positive values", hw, k);
            cr_expect(a->argmax == am && a->argmin == an, "hw %d plane %zu: argmax %d (loop %d), argmin %d (loop %d)", hw,
                      k, a->argmax, am, a->argmin, an);
            const double sd = zf_xsum_double(&a->sum);
            cr_expect(inf ? isinf(sd) && sd > 0 : fabsl((long double)sd - ld) <= 1e-15L * fabsl(ld) + 1e-300L,
                      "hw %d plane %zu: sum %.17g, loop %.17Lg", hw, k, sd, ld);
        }
        for (int c = 0; c < units; c++) {
            int64_t total = 0;
            for (int b = 0; b < ZF_HIST_BINS; b++) {
                cr_expect_eq(hw_want[(size_t)c * ZF_HIST_BINS + b], (int64_t)hw_got[(size_t)c * ZF_HIST_BINS + b],
                             "hw %d unit %d bin %d", hw, c, b);
                total += hw_want[(size_t)c * ZF_HIST_BINS + b];
            }
            cr_expect_eq(total, (int64_t)n * hw, "hw %d unit %d: every value in a bin", hw, c);
        }
        zf_cuda_free(d_x);
        zf_cuda_free(d_p);
        zf_cuda_free(d_h);
        zf_free(x);
        free(want);
        free(got);
        free(hw_want);
        free(hw_got);
    }
    zf_cuda_ctx_free(ctx);
}

/* The backward ops against float64 loops: ReLU's three rules exactly, the softmax's Jacobian, the
 * fully connected layer's input gradient (the pools' are in pool_cases and adaptive_avgpool). */
Test(cuda_ops, backward_of_relu_softmax_and_fc_match)
{
    zf_cuda_ctx *ctx = gpu();
    const size_t cnt = 4099;
    float *o = falloc(cnt), *d = falloc(cnt), *got = falloc(cnt), *want = falloc(cnt);
    tu_fill_uniform(o, cnt, 71, -1, 1);
    tu_fill_uniform(d, cnt, 72, -1, 1);
    for (size_t i = 0; i < cnt; i += 7)
        o[i] = 0.0f; /* the forward's zeros pass nothing under the gradient and guided rules */
    float *d_o = up(ctx, o, cnt * 4), *d_d = up(ctx, d, cnt * 4), *d_g = dalloc(ctx, cnt * 4);
    for (int rule = 0; rule < 3; rule++) {
        for (size_t i = 0; i < cnt; i++) {
            const int pass = rule == 0 ? o[i] > 0 : rule == 1 ? o[i] > 0 && d[i] > 0 : d[i] > 0;
            want[i] = pass ? d[i] : 0.0f;
        }
        OK(zf_cuda_relu_backward(ctx, d_g, d_d, d_o, cnt, rule));
        down(ctx, got, d_g, cnt * 4);
        cr_expect(!memcmp(got, want, cnt * 4), "relu backward rule %d differs", rule);
    }
    cr_expect_eq(zf_cuda_relu_backward(ctx, d_g, d_d, d_o, cnt, 3), ZF_ERR_ARG);
    /* softmax: rows of 1000 and of an odd 13, p a true softmax output */
    const int ks[] = {1000, 13};
    for (int t = 0; t < 2; t++) {
        const int k = ks[t], rows = 3;
        float *x = falloc((size_t)rows * k), *p = falloc((size_t)rows * k);
        tu_fill_uniform(x, (size_t)rows * k, 73 + t, -8, 8);
        zf_softmax_forward(p, x, rows, k);
        float *d_p = up(ctx, p, (size_t)rows * k * 4), *d_s = dalloc(ctx, (size_t)rows * k * 4);
        OK(zf_cuda_softmax_backward(ctx, d_s, d_d, d_p, rows, k));
        down(ctx, got, d_s, (size_t)rows * k * 4);
        for (int r = 0; r < rows; r++) {
            double s = 0;
            for (int j = 0; j < k; j++)
                s += (double)d[r * k + j] * p[r * k + j];
            for (int j = 0; j < k; j++)
                want[r * k + j] = (float)(p[r * k + j] * ((double)d[r * k + j] - s));
        }
        size_t at;
        double e = rel_err(got, want, (size_t)rows * k, &at);
        cr_expect(e < 1e-6, "softmax backward of %d: rel err %g at %zu", k, e, at);
        zf_cuda_free(d_p); zf_cuda_free(d_s);
        zf_free(x); zf_free(p);
    }
    /* fc: din = dout . w at batches 1, 2, 7 */
    const int in_f = 211, out_f = 97;
    float *w = falloc((size_t)in_f * out_f), *dy = falloc(7 * out_f), *dx = falloc(7 * in_f), *ref = falloc(7 * in_f);
    tu_fill_uniform(w, (size_t)in_f * out_f, 75, -1, 1);
    tu_fill_uniform(dy, 7 * out_f, 76, -1, 1);
    float *d_w = up(ctx, w, (size_t)in_f * out_f * 4), *d_dy = up(ctx, dy, 7 * out_f * 4), *d_dx = dalloc(ctx, 7 * in_f * 4);
    const int batches[] = {1, 2, 7};
    for (int t = 0; t < 3; t++) {
        const int n = batches[t];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < in_f; j++) {
                double s = 0;
                for (int k = 0; k < out_f; k++)
                    s += (double)dy[i * out_f + k] * w[(size_t)k * in_f + j];
                ref[i * in_f + j] = (float)s;
            }
        OK(zf_cuda_fc_backward_data(ctx, d_dx, d_dy, d_w, n, in_f, out_f));
        down(ctx, dx, d_dx, (size_t)n * in_f * 4);
        size_t at;
        double e = rel_err(dx, ref, (size_t)n * in_f, &at);
        cr_expect(e < 1e-5, "fc backward batch %d: rel err %g at %zu", n, e, at);
    }
    zf_cuda_free(d_o); zf_cuda_free(d_d); zf_cuda_free(d_g);
    zf_cuda_free(d_w); zf_cuda_free(d_dy); zf_cuda_free(d_dx);
    zf_free(o); zf_free(d); zf_free(got); zf_free(want);
    zf_free(w); zf_free(dy); zf_free(dx); zf_free(ref);
    zf_cuda_ctx_free(ctx);
}

/* ---- nets ---- */

static const char *const archs[] = {"alexnet", "alexnet-caffe", "zfnet"};

/* A built-in net with He-uniform weights (activations stay of order one through every layer) and
 * small random biases; CPU buffers for `batch`. */
static zf_net *make_net(const char *arch, int batch, uint64_t seed)
{
    zf_net *net = NULL;
    OK(zf_net_new_builtin(arch, &net));
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (!l->weight)
            continue;
        const double fan_in = (double)l->weight_count / l->out_c;
        const float bound = (float)sqrt(6.0 / fan_in);
        tu_fill_uniform(l->weight, (size_t)l->weight_count, seed + 2 * i, -bound, bound);
        tu_fill_uniform(l->bias, (size_t)l->bias_count, seed + 2 * i + 1, -0.1f, 0.1f);
    }
    OK(zf_net_reserve(net, batch));
    return net;
}

static float *random_input(const zf_net *net, int n, uint64_t seed)
{
    const size_t count = (size_t)n * zf_net_in_size(net);
    float *x = falloc(count);
    tu_fill_uniform(x, count, seed, -1, 1);
    return x;
}

/* archs[a] with the random weights of `seed` for batches of `batch`, on the CPU (*net) and on the
 * GPU (returned), and n random inputs (seed + 100) in *x. */
static zf_cuda_net *net_pair(zf_cuda_ctx *ctx, int a, int batch, int n, uint64_t seed, zf_net **net, float **x)
{
    *net = make_net(archs[a], batch, seed);
    *x = random_input(*net, n, seed + 100);
    zf_cuda_net *cn = NULL;
    OK(zf_cuda_net_new(ctx, *net, batch, &cn));
    return cn;
}

/* A max-pool switch may differ from the CPU's only where the window's best values tie to rounding. */
static void check_switches(const zf_net *net, int i, const int32_t *gsw, int n)
{
    const zf_layer *l = &net->layers[i];
    const float *in = zf_net_act(net, i - 1);
    const size_t plane_in = (size_t)l->in_h * l->in_w, plane_out = (size_t)l->out_h * l->out_w;
    const size_t cnt = (size_t)n * l->out_c * plane_out;
    double ss = 0;
    for (size_t j = 0; j < (size_t)n * l->in_c * plane_in; j++)
        ss += (double)in[j] * in[j];
    const double rms = sqrt(ss / ((size_t)n * l->in_c * plane_in));
    for (size_t j = 0; j < cnt; j++) {
        const int32_t c = net->switches[i][j], g = gsw[j];
        if (c == g)
            continue;
        const float *plane = in + (j / plane_out) * plane_in;
        cr_assert(g >= 0 && (size_t)g < plane_in, "%s %s: switch %d at %zu out of the plane", net->arch, l->name, g, j);
        cr_assert(fabs((double)plane[g] - plane[c]) <= 1e-5 * fmax(fabs(plane[c]), rms),
                  "%s %s: switch at %zu is %d (value %g), CPU has %d (value %g)", net->arch, l->name, j, g, plane[g],
                  c, plane[c]);
    }
}

Test(cuda_nets, forward_of_every_builtin_net_matches_cpu_layer_by_layer)
{
    zf_cuda_ctx *ctx = gpu();
    const int n = 3;
    for (int a = 0; a < 3; a++) {
        zf_net *net;
        float *x;
        zf_cuda_net *cn = net_pair(ctx, a, n, n, 100 + a, &net, &x);
        OK(zf_net_forward(net, x, n));
        OK(zf_cuda_net_forward(cn, x, n));
        for (int i = 0; i < net->n_layers; i++) {
            const zf_layer *l = &net->layers[i];
            const size_t cnt = (size_t)n * zf_layer_out_size(l);
            float *got = falloc(cnt);
            OK(zf_cuda_net_read(cn, i, got, n));
            size_t at;
            double e = rel_err(got, net->acts[i], cnt, &at);
            cr_expect(e < NET_TOL, "%s layer %s (%s): rel err %g at %zu (%g vs %g)", net->arch, l->name,
                      zf_op_name(l->op), e, at, got[at], net->acts[i][at]);
            if (l->op == ZF_OP_MAXPOOL) {
                int32_t *gsw = zf_alloc(cnt * 4);
                cr_assert(gsw);
                down(ctx, gsw, zf_cuda_net_switches(cn, i), cnt * 4);
                check_switches(net, i, gsw, n);
                zf_free(gsw);
            }
            zf_free(got);
        }
        zf_cuda_net_free(cn);
        zf_free(x);
        zf_net_free(net);
    }
    zf_cuda_ctx_free(ctx);
}

/* Backpropagation on the device against zf_net_backward on the CPU, for every built-in net (the
 * torchvision AlexNet's adaptive pool and a softmax among them), from the class scores down to the
 * input and from a conv layer's ReLU down to the first pool, under each ReLU rule. The CPU runs its
 * backward on the GPU's forward (activations and switches copied into its buffers): a ReLU whose
 * input is within rounding of zero on one engine and not on the other passes its whole gradient on
 * one side only (seen: one unit of AlexNet's relu3 put the maps 12% apart), which is the forward's
 * rounding, not the backward's. */
Test(cuda_nets, backward_of_every_builtin_net_matches_cpu_for_each_relu_rule)
{
    zf_cuda_ctx *ctx = gpu();
    const char *const names[] = {"alexnet", "alexnet-caffe", "zfnet", "zfnet-pytorch"};
    const int n = 2;
    for (size_t a = 0; a < sizeof names / sizeof names[0]; a++) {
        zf_net *net = make_net(names[a], n, 400 + a);
        float *x = random_input(net, n, 500 + a);
        zf_cuda_net *cn = NULL;
        OK(zf_cuda_net_new(ctx, net, n, &cn));
        zf_backprop *bp = NULL;
        OK(zf_backprop_new(net, n, &bp));
        OK(zf_net_forward(net, x, n));
        OK(zf_cuda_net_forward(cn, x, n));
        for (int i = 0; i < net->n_layers; i++) {
            const zf_layer *l = &net->layers[i];
            OK(zf_cuda_net_read(cn, i, net->acts[i], n));
            if (l->op == ZF_OP_MAXPOOL)
                down(ctx, net->switches[i], zf_cuda_net_switches(cn, i),
                     sizeof(int32_t) * (size_t)n * zf_layer_out_size(l));
        }
        const int last = net->n_layers - 1, relu5 = zf_net_find(net, "relu5"), pool1 = zf_net_find(net, "pool1");
        cr_assert(relu5 > 0 && pool1 > 0, "%s has relu5 and pool1", net->arch);
        const int tops[] = {last, relu5}, bottoms[] = {-1, pool1};
        for (int k = 0; k < 2; k++) {
            const int top = tops[k], bottom = bottoms[k];
            const size_t tsize = (size_t)n * zf_layer_out_size(&net->layers[top]);
            const size_t bsize = (size_t)n * (bottom < 0 ? zf_net_in_size(net) : zf_layer_out_size(&net->layers[bottom]));
            float *dtop = falloc(tsize), *want = falloc(bsize), *got = falloc(bsize);
            tu_fill_uniform(dtop, tsize, 600 + k, -1, 1);
            for (int rule = 0; rule < 3; rule++) {
                OK(zf_net_backward(bp, want, dtop, top, bottom, n, (zf_relu_rule)rule));
                OK(zf_cuda_net_backward(cn, got, dtop, top, bottom, n, rule));
                size_t at;
                const double e = rel_err(got, want, bsize, &at);
                cr_expect(e < NET_TOL, "%s %s -> %s rule %d: rel err %g at %zu (%g vs %g)", net->arch,
                          net->layers[top].name, bottom < 0 ? "input" : net->layers[bottom].name, rule, e, at,
                          got[at], want[at]);
            }
            zf_free(dtop); zf_free(want); zf_free(got);
        }
        float *sink = falloc((size_t)n * zf_net_in_size(net));
        cr_expect_eq(zf_cuda_net_backward(cn, sink, x, 0, 0, n, 0), ZF_ERR_ARG, "bottom must be below top");
        cr_expect_eq(zf_cuda_net_backward(cn, sink, x, last, -1, n + 1, 0), ZF_ERR_ARG, "more images than buffers");
        zf_free(sink);
        zf_backprop_free(bp);
        zf_cuda_net_free(cn);
        zf_free(x);
        zf_net_free(net);
    }
    zf_cuda_ctx_free(ctx);
}

Test(cuda_nets, autotuned_plans_partial_batches_staged_uploads_and_host_copies_match)
{
    zf_cuda_ctx *ctx = gpu();
    zf_cuda_ctx_set_autotune(ctx, 1); /* algorithms timed on the net's own buffers */
    zf_net *net = make_net("alexnet-caffe", 5, 300);
    float *x = random_input(net, 5, 301);
    zf_cuda_net *cn = NULL;
    OK(zf_cuda_net_new(ctx, net, 5, &cn));
    const int last = net->n_layers - 1;
    const size_t k = (size_t)zf_layer_out_size(&net->layers[last]), isz = (size_t)zf_net_in_size(net);
    float *ref = falloc(5 * k), *got = falloc(5 * k);
    OK(zf_net_forward(net, x, 5));
    memcpy(ref, net->acts[last], 5 * k * 4);
    /* a smaller batch than planned, then the full one again: descriptors follow */
    const int sizes[] = {3, 1, 5};
    for (int t = 0; t < 3; t++) {
        OK(zf_cuda_net_forward(cn, x, sizes[t]));
        OK(zf_cuda_net_read(cn, last, got, sizes[t]));
        size_t at;
        double e = rel_err(got, ref, (size_t)sizes[t] * k, &at);
        cr_expect(e < NET_TOL, "batch %d of 5: rel err %g at %zu", sizes[t], e, at);
    }
    /* two staging slots in turn: images 0-1 then 2-4 */
    float *s0 = zf_cuda_net_staging(cn, 0);
    cr_assert(s0, "%s", zf_last_error());
    memcpy(s0, x, 2 * isz * 4);
    OK(zf_cuda_net_forward_staged(cn, 0, 2));
    OK(zf_cuda_net_read(cn, last, got, 2));
    float *s1 = zf_cuda_net_staging(cn, 1);
    cr_assert(s1, "%s", zf_last_error());
    memcpy(s1, x + 2 * isz, 3 * isz * 4);
    OK(zf_cuda_net_forward_staged(cn, 1, 3));
    OK(zf_cuda_net_read(cn, last, got + 2 * k, 3));
    size_t at;
    double e = rel_err(got, ref, 5 * k, &at);
    cr_expect(e < NET_TOL, "staged forward: rel err %g at %zu", e, at);
    /* the tools' drop-in: outputs land in net->acts */
    memset(net->acts[last], 0, 5 * k * 4);
    const int conv1 = zf_net_find(net, "conv1");
    OK(zf_cuda_net_forward_to_host(cn, net, x, 5, &conv1, 1));
    e = rel_err(net->acts[last], ref, 5 * k, &at);
    cr_expect(e < NET_TOL, "forward_to_host: rel err %g at %zu", e, at);
    zf_cuda_net_free(cn);
    zf_free(x); zf_free(ref); zf_free(got);
    zf_net_free(net);
    zf_cuda_ctx_free(ctx);
}

/* The deconvnet from the GPU's own forward state, copied to the CPU net (activations and switches),
 * so that the CPU's deconvnet walks the same switches: a rounding-level tie in a pooling window
 * would otherwise send a signal to another pixel on one side only. */
Test(cuda_nets, deconv_matches_cpu_for_units_maps_and_lrn_backward)
{
    zf_cuda_ctx *ctx = gpu();
    const int n = 3;
    for (int a = 0; a < 3; a++) {
        zf_net *net;
        float *x;
        zf_cuda_net *cn = net_pair(ctx, a, n, n, 400 + a, &net, &x);
        OK(zf_cuda_net_forward_to_host(cn, net, x, n, NULL, 0));
        const size_t isz = (size_t)zf_net_in_size(net);
        float *ref = falloc(n * isz), *got = falloc(n * isz);
        const char *layers[] = {"conv1", "conv2", "relu5"};
        for (int li = 0; li < 3; li++) {
            const int layer = zf_net_find(net, layers[li]);
            cr_assert(layer >= 0);
            for (int mode = 0; mode < 2; mode++)
                for (int lrnb = 0; lrnb < 2; lrnb++) {
                    int ch[3] = {0, 7, 13}, y1[3] = {-1, -1, 2}, x1[3] = {-1, -1, 3}, y2[3], x2[3];
                    memcpy(y2, y1, sizeof y1);
                    memcpy(x2, x1, sizeof x1);
                    zf_deconv_req rc = {layer, mode ? ZF_DECONV_MAP : ZF_DECONV_UNIT, lrnb, ch, y1, x1};
                    zf_deconv_req rg = {layer, mode ? ZF_DECONV_MAP : ZF_DECONV_UNIT, lrnb, ch, y2, x2};
                    OK(zf_net_deconv(net, ref, n, &rc));
                    OK(zf_cuda_net_deconv(cn, got, n, &rg));
                    for (int i = 0; i < n && !mode; i++)
                        cr_expect(y1[i] == y2[i] && x1[i] == x2[i], "%s %s image %d: unit (%d,%d), CPU (%d,%d)",
                                  net->arch, layers[li], i, y2[i], x2[i], y1[i], x1[i]);
                    size_t at;
                    double e = rel_err(got, ref, n * isz, &at);
                    cr_expect(e < NET_TOL, "%s deconv from %s (%s, lrn backward %d): rel err %g at %zu (%g vs %g)",
                              net->arch, layers[li], mode ? "map" : "unit", lrnb, e, at, got[at], ref[at]);
                }
        }
        zf_cuda_net_free(cn);
        zf_free(x); zf_free(ref); zf_free(got);
        zf_net_free(net);
    }
    zf_cuda_ctx_free(ctx);
}

/* ---- occlusion ---- */

typedef struct cpu_map {
    int rows, cols, channel, cls;
    float *feature, *prob, *probs_all; /* probs_all: (positions, k) for judging argmax ties */
    int32_t *argmax;
} cpu_map;

/* The definitions, brute force on the CPU: first in (channel, y, x) order for the channel, top
 * class for the class, a full forward per occluded image. */
static cpu_map cpu_occlusion(zf_net *net, const float *img, int patch, int stride, float fill)
{
    cpu_map m;
    const int c5 = zf_net_find(net, "conv5"), f = zf_net_rectified(net, c5), last = net->n_layers - 1;
    const zf_layer *fl = &net->layers[f];
    const int hw = fl->out_h * fl->out_w, k = (int)zf_layer_out_size(&net->layers[last]);
    const size_t isz = (size_t)zf_net_in_size(net);
    OK(zf_net_forward(net, img, 1));
    int best = 0;
    for (int i = 1; i < fl->out_c * hw; i++)
        if (net->acts[f][i] > net->acts[f][best])
            best = i;
    m.channel = best / hw;
    int top = 0;
    for (int j = 1; j < k; j++)
        if (net->acts[last][j] > net->acts[last][top])
            top = j;
    m.cls = top;
    m.rows = (net->in_h - patch) / stride + 1;
    m.cols = (net->in_w - patch) / stride + 1;
    const int npos = m.rows * m.cols;
    m.feature = falloc(npos);
    m.prob = falloc(npos);
    m.probs_all = falloc((size_t)npos * k);
    m.argmax = zf_alloc(npos * 4);
    float *batch = falloc((size_t)net->batch * isz);
    for (int p0 = 0; p0 < npos; p0 += net->batch) {
        const int nb = npos - p0 < net->batch ? npos - p0 : net->batch;
        for (int b = 0; b < nb; b++) {
            const int p = p0 + b, y0 = (p / m.cols) * stride, x0 = (p % m.cols) * stride;
            float *dst = batch + (size_t)b * isz;
            memcpy(dst, img, isz * 4);
            for (int ch = 0; ch < net->in_c; ch++)
                for (int y = y0; y < y0 + patch; y++)
                    for (int x = x0; x < x0 + patch; x++)
                        dst[((size_t)ch * net->in_h + y) * net->in_w + x] = fill;
        }
        OK(zf_net_forward(net, batch, nb));
        for (int b = 0; b < nb; b++) {
            const float *map = net->acts[f] + ((size_t)b * fl->out_c + m.channel) * hw;
            double s = 0;
            for (int i = 0; i < hw; i++)
                s += map[i];
            const float *row = net->acts[last] + (size_t)b * k;
            int am = 0;
            for (int j = 1; j < k; j++)
                if (row[j] > row[am])
                    am = j;
            m.feature[p0 + b] = (float)s;
            m.prob[p0 + b] = row[m.cls];
            m.argmax[p0 + b] = am;
            memcpy(m.probs_all + (size_t)(p0 + b) * k, row, k * 4);
        }
    }
    zf_free(batch);
    return m;
}

static void check_map(const char *what, const zf_cuda_occl_map *g, const cpu_map *c, int k)
{
    cr_assert_eq(g->rows, c->rows, "%s: %d rows, CPU %d", what, g->rows, c->rows);
    cr_assert_eq(g->cols, c->cols, "%s: %d cols, CPU %d", what, g->cols, c->cols);
    cr_assert_eq(g->channel, c->channel, "%s: channel %d, CPU %d", what, g->channel, c->channel);
    cr_assert_eq(g->cls, c->cls, "%s: class %d, CPU %d", what, g->cls, c->cls);
    const size_t npos = (size_t)c->rows * c->cols;
    size_t at;
    double e = rel_err(g->feature, c->feature, npos, &at);
    cr_expect(e < NET_TOL, "%s: feature map rel err %g at %zu (%g vs %g)", what, e, at, g->feature[at], c->feature[at]);
    e = rel_err(g->prob, c->prob, npos, &at);
    cr_expect(e < NET_TOL, "%s: probability map rel err %g at %zu (%g vs %g)", what, e, at, g->prob[at], c->prob[at]);
    for (size_t p = 0; p < npos; p++) {
        if (g->argmax[p] == c->argmax[p])
            continue;
        const float *row = c->probs_all + p * k;
        cr_expect(fabsf(row[g->argmax[p]] - row[c->argmax[p]]) <= 1e-5f * row[c->argmax[p]],
                  "%s: position %zu: argmax %d, CPU %d (probabilities %g vs %g)", what, p, g->argmax[p],
                  c->argmax[p], row[g->argmax[p]], row[c->argmax[p]]);
    }
}

Test(cuda_nets, occlusion_maps_match_cpu_brute_force_with_both_methods)
{
    zf_cuda_ctx *ctx = gpu();
    /* patch/stride pairs: one that divides 224 - patch, one that does not (and not 227 - patch) */
    const int pairs[][2] = {{64, 40}, {48, 50}};
    for (int a = 0; a < 3; a++) {
        zf_net *net;
        float *img;
        zf_cuda_net *cn = net_pair(ctx, a, 8, 1, 600 + a, &net, &img);
        const int k = (int)zf_layer_out_size(&net->layers[net->n_layers - 1]);
        for (int t = 0; t < 2; t++) {
            cpu_map ref = cpu_occlusion(net, img, pairs[t][0], pairs[t][1], 0.25f);
            for (int method = ZF_CUDA_OCCL_BRUTE; method <= ZF_CUDA_OCCL_INCREMENTAL; method++) {
                zf_cuda_occl_params p;
                zf_cuda_occl_params_default(&p);
                p.patch = pairs[t][0];
                p.stride = pairs[t][1];
                p.fill = 0.25f;
                p.method = (zf_cuda_occl_method)method;
                p.batch = 5; /* positions do not fill the last batch */
                zf_cuda_occl_map *m = NULL;
                OK(zf_cuda_occlusion(cn, img, &p, &m));
                char what[128];
                snprintf(what, sizeof what, "%s patch %d stride %d %s", net->arch, p.patch, p.stride,
                         method == ZF_CUDA_OCCL_BRUTE ? "brute force" : "incremental");
                cr_expect_eq(m->method, (zf_cuda_occl_method)method, "%s ran as method %d", what, m->method);
                check_map(what, m, &ref, k);
                zf_cuda_occl_map_free(m);
            }
            zf_free(ref.feature); zf_free(ref.prob); zf_free(ref.probs_all); zf_free(ref.argmax);
        }
        zf_cuda_net_free(cn);
        zf_free(img);
        zf_net_free(net);
    }
    zf_cuda_ctx_free(ctx);
}

/* A small net with what the built-in ones lack: odd sizes, a conv without a ReLU as the mapped
 * layer (its map is rectified before summing), average pooling, ceil-mode pooling and no final
 * softmax (probabilities from the logits). */
static zf_net *odd_net(void)
{
    zf_net *net = zf_net_new("odd", 3, 37, 41);
    cr_assert(net);
    const zf_lrn_params lrn = {5, 2, 1e-4f, 0.75f, 1.0f};
    const zf_window ceil2 = {2, 2, 2, 2, 0, 0, 0, 0};
    OK(zf_net_add_conv(net, "conv1", 8, zf_win(5, 2, 1), 1));
    OK(zf_net_add_relu(net, "relu1"));
    OK(zf_net_add_maxpool(net, "pool1", zf_win(3, 2, 1), 0));
    OK(zf_net_add_lrn(net, "norm1", lrn));
    OK(zf_net_add_conv(net, "conv2", 12, zf_win(3, 1, 1), 2));
    OK(zf_net_add_avgpool(net, "avg2", zf_win(3, 1, 1), 0, 1));
    OK(zf_net_add_conv(net, "conv3", 10, zf_win(3, 1, 0), 1));
    OK(zf_net_add_maxpool(net, "pool3", ceil2, 1));
    OK(zf_net_add_flatten(net, "flatten"));
    OK(zf_net_add_fc(net, "fc", 7));
    OK(zf_net_finalize(net));
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (!l->weight)
            continue;
        const float bound = (float)sqrt(6.0 / ((double)l->weight_count / l->out_c));
        tu_fill_uniform(l->weight, (size_t)l->weight_count, 1000 + 2 * i, -bound, bound);
        tu_fill_uniform(l->bias, (size_t)l->bias_count, 1001 + 2 * i, -0.1f, 0.1f);
    }
    OK(zf_net_reserve(net, 1));
    return net;
}

static void check_against_core(zf_cuda_ctx *ctx, zf_net *net, int patch, int stride, float fill)
{
    float *img = random_input(net, 1, 1100);
    zf_occlusion_params cp;
    zf_occlusion_params_default(&cp);
    cp.patch = patch, cp.stride = stride, cp.fill = fill, cp.method = ZF_OCCLUSION_BRUTE;
    zf_occlusion_result *ref = NULL;
    OK(zf_occlusion_run(net, img, &cp, &ref));
    zf_cuda_net *cn = NULL;
    OK(zf_cuda_net_new(ctx, net, 6, &cn));
    for (int method = ZF_CUDA_OCCL_BRUTE; method <= ZF_CUDA_OCCL_INCREMENTAL; method++) {
        zf_cuda_occl_params p;
        zf_cuda_occl_params_default(&p);
        p.patch = patch, p.stride = stride, p.fill = fill, p.method = (zf_cuda_occl_method)method;
        zf_cuda_occl_map *m = NULL;
        OK(zf_cuda_occlusion(cn, img, &p, &m));
        const char *what = method == ZF_CUDA_OCCL_BRUTE ? "brute force" : "incremental";
        cr_expect_eq(m->method, (zf_cuda_occl_method)method, "%s %s ran as method %d", net->arch, what, m->method);
        cr_assert_eq(m->rows, ref->rows);
        cr_assert_eq(m->cols, ref->cols);
        cr_assert_eq(m->layer, ref->layer, "%s: mapped layer %d, core %d", net->arch, m->layer, ref->layer);
        cr_assert_eq(m->channel, ref->channel, "%s: channel %d, core %d", net->arch, m->channel, ref->channel);
        cr_assert_eq(m->cls, ref->cls, "%s: class %d, core %d", net->arch, m->cls, ref->cls);
        cr_expect(fabsf(m->base_feature - ref->base_feature) <= 1e-5f * fabsf(ref->base_feature) + 1e-6f,
                  "%s: unoccluded total %g, core %g", net->arch, m->base_feature, ref->base_feature);
        cr_expect(fabsf(m->base_prob - ref->base_prob) <= 1e-5f * ref->base_prob, "%s: unoccluded probability %g, core %g",
                  net->arch, m->base_prob, ref->base_prob);
        const size_t npos = (size_t)ref->rows * ref->cols;
        size_t at;
        double e = rel_err(m->feature, ref->feature, npos, &at);
        cr_expect(e < NET_TOL, "%s %s: feature rel err %g at %zu (%g vs %g)", net->arch, what, e, at, m->feature[at],
                  ref->feature[at]);
        e = rel_err(m->prob, ref->prob, npos, &at);
        cr_expect(e < NET_TOL, "%s %s: probability rel err %g at %zu (%g vs %g)", net->arch, what, e, at, m->prob[at],
                  ref->prob[at]);
        int differ = 0;
        for (size_t i = 0; i < npos; i++)
            differ += m->argmax[i] != ref->argmax[i];
        cr_expect(differ == 0, "%s %s: %d positions with another most probable class than core's", net->arch, what,
                  differ);
        zf_cuda_occl_map_free(m);
    }
    zf_occlusion_result_free(ref);
    zf_cuda_net_free(cn);
    zf_free(img);
}

Test(cuda_nets, occlusion_maps_match_core_occlusion_on_an_odd_net_without_softmax_and_on_zfnet)
{
    zf_cuda_ctx *ctx = gpu();
    zf_net *net = odd_net();
    check_against_core(ctx, net, 9, 7, -0.5f);
    zf_net_free(net);
    net = make_net("zfnet", 1, 1200);
    check_against_core(ctx, net, 48, 50, 0.0f);
    zf_net_free(net);
    zf_cuda_ctx_free(ctx);
}

Test(cuda_nets, occlusion_refuses_bad_parameters_clearly)
{
    zf_cuda_ctx *ctx = gpu();
    zf_net *net = make_net("alexnet", 1, 800);
    float *img = random_input(net, 1, 801);
    zf_cuda_net *cn = NULL;
    OK(zf_cuda_net_new(ctx, net, 4, &cn));
    zf_cuda_occl_params p;
    zf_cuda_occl_map *m = NULL;
    zf_cuda_occl_params_default(&p);
    p.patch = 300, p.stride = 8;
    cr_assert_eq(zf_cuda_occlusion(cn, img, &p, &m), ZF_ERR_ARG);
    cr_assert(strstr(zf_last_error(), "larger than"), "%s", zf_last_error());
    p.patch = 32, p.stride = 0;
    cr_assert_eq(zf_cuda_occlusion(cn, img, &p, &m), ZF_ERR_ARG);
    p.stride = 8, p.cls = 1000;
    cr_assert_eq(zf_cuda_occlusion(cn, img, &p, &m), ZF_ERR_ARG);
    cr_assert(strstr(zf_last_error(), "class 1000"), "%s", zf_last_error());
    cr_assert_null(m);
    zf_cuda_net_free(cn);
    zf_free(img);
    zf_net_free(net);
    zf_cuda_ctx_free(ctx);
}

/* ---- precision and errors ---- */

/* TF32 and BF16 against the FP32 CPU engine: the relative L2 error of the logits (fc8) stays under
 * what docs/cuda.md promises. */
Test(cuda_nets, tf32_and_bf16_stay_within_their_documented_error)
{
    zf_cuda_ctx *ctx = gpu();
    const double bound[3] = {0, 1e-2, 5e-2};
    for (int a = 0; a < 3; a++) {
        zf_net *net = make_net(archs[a], 2, 900 + a);
        float *x = random_input(net, 2, 950 + a);
        OK(zf_net_forward(net, x, 2));
        const int fc8 = zf_net_find(net, "fc8");
        const size_t k = (size_t)zf_layer_out_size(&net->layers[fc8]);
        float *got = falloc(2 * k);
        for (int prec = ZF_CUDA_TF32; prec <= ZF_CUDA_BF16; prec++) {
            OK(zf_cuda_ctx_set_precision(ctx, (zf_cuda_precision)prec));
            zf_cuda_net *cn = NULL;
            OK(zf_cuda_net_new(ctx, net, 2, &cn));
            OK(zf_cuda_net_forward(cn, x, 2));
            OK(zf_cuda_net_read(cn, fc8, got, 2));
            double num = 0, den = 0;
            for (size_t i = 0; i < 2 * k; i++) {
                num += ((double)got[i] - net->acts[fc8][i]) * ((double)got[i] - net->acts[fc8][i]);
                den += (double)net->acts[fc8][i] * net->acts[fc8][i];
            }
            const double e = sqrt(num / den);
            cr_expect(e < bound[prec], "%s %s: relative L2 error of fc8 %g (documented bound %g)", net->arch,
                      zf_cuda_precision_name((zf_cuda_precision)prec), e, bound[prec]);
            cr_log_info("%s %s: relative L2 error of fc8 %.3g", net->arch,
                        zf_cuda_precision_name((zf_cuda_precision)prec), e);
            zf_cuda_net_free(cn);
        }
        OK(zf_cuda_ctx_set_precision(ctx, ZF_CUDA_FP32));
        zf_free(x); zf_free(got);
        zf_net_free(net);
    }
    zf_cuda_ctx_free(ctx);
}

Test(cuda_nets, out_of_memory_says_how_much_and_suggests_a_batch)
{
    zf_cuda_ctx *ctx = gpu();
    zf_net *net = NULL;
    OK(zf_net_new_builtin("zfnet", &net));
    zf_cuda_net *cn = NULL;
    zf_status st = zf_cuda_net_new(ctx, net, 1 << 22, &cn); /* ~4 million images: terabytes */
    cr_assert_eq(st, ZF_ERR_DEVICE);
    cr_assert_null(cn);
    const char *msg = zf_last_error();
    cr_assert(strstr(msg, "out of GPU memory") && strstr(msg, "MiB") && strstr(msg, "--batch"), "%s", msg);
    zf_net_free(net);
    zf_cuda_ctx_free(ctx);
}

/* ---- the engine table: the cuda engine's ops against the cpu engine's, and the scan through it ---- */

static zf_net *mini_net(uint64_t seed)
{
    zf_net *net = NULL;
    OK(zf_net_new_builtin("alexnet-mini", &net));
    OK(zf_net_init_random(net, seed));
    return net;
}

/* --device auto probes the device and then opens it, and the next open takes over the context the
 * probe kept (which context an engine runs on cannot be seen from here): two probes, then two
 * engines open at once, give the same outputs, and closing the first (perhaps the probed context)
 * leaves the other running. */
Test(cuda_engine, engines_opened_after_probes_run_and_outlive_each_other)
{
    zf_cuda_ctx_free(gpu()); /* skips without a GPU */
    const zf_engine_iface *gi = zf_engine_find("cuda");
    char desc[512] = "";
    OK(gi->probe(0, desc, sizeof desc));
    OK(gi->probe(0, desc, sizeof desc)); /* again: the kept one answers, or a new one replaces it */
    cr_expect(strstr(desc, "MiB free"), "probe: %s", desc);
    zf_net *net = mini_net(4);
    const int n = 2;
    const size_t in_size = (size_t)zf_net_in_size(net), out = (size_t)zf_layer_out_size(&net->layers[net->n_layers - 1]);
    float *x = falloc(n * in_size), *y[2] = {falloc(n * out), falloc(n * out)};
    tu_fill_uniform(x, n * in_size, 5, -1, 1);
    zf_engine *e[2] = {NULL, NULL};
    const zf_engine_opts o = {.device = 0, .batch = n};
    for (int k = 0; k < 2; k++) {
        OK(zf_engine_open(gi, net, &o, &e[k]));
        OK(zf_engine_forward(e[k], x, n, net->n_layers - 1));
        OK(zf_engine_read(e[k], net->n_layers - 1, y[k], n));
    }
    zf_engine_close(e[0]);
    OK(zf_engine_forward(e[1], x, n, net->n_layers - 1)); /* the other context still runs */
    zf_engine_close(e[1]);
    cr_expect(!memcmp(y[0], y[1], sizeof(float) * n * out), "two contexts, two answers");
    zf_free(x);
    zf_free(y[0]);
    zf_free(y[1]);
    zf_net_free(net);
}

/* What the device's input holds after a forward of `x` (n images): the prefetched copy or x as it
 * is now. */
static void expect_device_input(zf_engine *e, const float *x, int n, const float *want, const char *what)
{
    const size_t cnt = (size_t)n * (size_t)zf_net_in_size(zf_engine_net(e));
    float *got = falloc(cnt);
    OK(zf_engine_forward(e, x, n, zf_engine_net(e)->n_layers - 1));
    OK(zf_engine_read(e, -1, got, n));
    cr_expect(!memcmp(got, want, sizeof(float) * cnt), "%s: the forward ran other images", what);
    zf_free(got);
}

/* Host arrays for a layer's accumulators (zf/fold.h) as a scan starts them. */
static zf_fold_acc fold_acc_new(int units, int k, int classes)
{
    zf_fold_acc a = {.units = units, .k = k, .classes = classes};
    void **p[ZF_FOLD_ARRAYS];
    size_t b[ZF_FOLD_ARRAYS];
    zf_fold_arrays(&a, p, b);
    for (int i = 0; i < ZF_FOLD_ARRAYS; i++) {
        *p[i] = b[i] ? calloc(1, b[i]) : NULL;
        cr_assert(*p[i] || !b[i]);
    }
    for (int c = 0; c < units; c++) {
        a.max_seq[c] = -1;
        a.top.kth[c] = a.bot.kth[c] = -INFINITY;
        a.top.dirty[c] = a.bot.dirty[c] = ZF_FOLD_CLEAN;
    }
    return a;
}

static void fold_acc_free(zf_fold_acc *a)
{
    void **p[ZF_FOLD_ARRAYS];
    size_t b[ZF_FOLD_ARRAYS];
    zf_fold_arrays(a, p, b);
    for (int i = 0; i < ZF_FOLD_ARRAYS; i++)
        free(*p[i]);
}

/* Every array of two accumulators the same, byte for byte. */
static void expect_same_acc(zf_fold_acc *x, zf_fold_acc *y, const char *what)
{
    static const char *const names[ZF_FOLD_ARRAYS] = {
        "active", "positive", "sum", "max", "max_seq", "max_pos", "hist", "csum",
        "top.ent", "top.n", "top.kth", "top.dirty", "bot.ent", "bot.n", "bot.kth", "bot.dirty"};
    void **p[ZF_FOLD_ARRAYS], **q[ZF_FOLD_ARRAYS];
    size_t b[ZF_FOLD_ARRAYS], b2[ZF_FOLD_ARRAYS];
    zf_fold_arrays(x, p, b);
    zf_fold_arrays(y, q, b2);
    for (int i = 0; i < ZF_FOLD_ARRAYS; i++) {
        cr_assert_eq(b[i], b2[i]);
        cr_expect(!b[i] || !memcmp(*p[i], *q[i], b[i]), "%s: %s differs", what, names[i]);
    }
}

/* The scan's fold on the device (cuda/fold.cu) against zf_fold_plane on the host, over the same
 * plane summaries (the engine's layer_stats), to the bit: two layers (relu1's output, whose many
 * all-zero planes tie at the top and at the bottom, with two classes; conv2's before its ReLU,
 * without classes), top 13 and 3 of 4 images a batch, a state folded on the host first and handed over,
 * then two batches on the device, each read back (and the device's lists marked unchanged, as a
 * commit does). */
Test(cuda_engine, the_fold_on_the_device_equals_the_hosts_to_the_bit)
{
    zf_cuda_ctx_free(gpu()); /* skips without a GPU */
    zf_net *net = mini_net(8);
    const int n = 4, relu1 = zf_net_find(net, "relu1"), conv2 = zf_net_find(net, "conv2");
    cr_assert(relu1 >= 0 && conv2 > relu1);
    /* relu1's lists hold every image (their ties at zero then keep entering), conv2's the best 3 */
    const int layers[2] = {relu1, conv2}, classes[2] = {2, 0}, tops[2] = {13, 3};
    zf_engine *e = NULL;
    const zf_engine_opts o = {.device = 0, .batch = n};
    OK(zf_engine_open(zf_engine_find("cuda"), net, &o, &e));
    const size_t in_size = (size_t)zf_net_in_size(net);
    float *x = falloc(n * in_size);
    zf_fold_acc host[2], dev[2];
    for (int j = 0; j < 2; j++) {
        const int units = net->layers[layers[j]].out_c;
        host[j] = fold_acc_new(units, tops[j], classes[j]);
        dev[j] = fold_acc_new(units, tops[j], classes[j]);
    }
    int ties = 0;
    for (int r = 0; r < 3; r++) {
        tu_fill_uniform(x, n * in_size, 40 + r, -1.5f, 1.5f);
        OK(zf_engine_forward(e, x, n, conv2));
        int64_t seqs[4];
        int32_t cls[4];
        for (int i = 0; i < n; i++) {
            seqs[i] = (int64_t)r * n + i;
            cls[i] = (i + r) % 3 - 1;
        }
        for (int j = 0; j < 2; j++) {
            zf_fold_acc *A = &host[j];
            const int units = A->units;
            zf_plane_stats *planes = calloc((size_t)n * units, sizeof *planes);
            int64_t *hist = calloc((size_t)units * ZF_HIST_BINS, sizeof *hist);
            OK(zf_engine_layer_stats(e, layers[j], n, planes, hist));
            for (size_t i = 0; i < (size_t)units * ZF_HIST_BINS; i++)
                A->hist[i] += hist[i];
            for (int c = 0; c < units; c++)
                for (int i = 0; i < n; i++) {
                    ties += j == 0 && planes[(size_t)i * units + c].min == 0; /* relu1: bottom-k ties */
                    zf_fold_plane(A, c, seqs[i], A->classes ? cls[i] : -1, &planes[(size_t)i * units + c]);
                }
            free(planes);
            free(hist);
            if (r == 0) { /* the state so far, committed and handed to the device as a resumed scan's */
                for (int c = 0; c < units; c++)
                    A->top.dirty[c] = A->bot.dirty[c] = ZF_FOLD_CLEAN;
                OK(zf_engine_fold_open(e, j, A));
            } else {
                OK(zf_engine_fold_add(e, j, layers[j], n, seqs, A->classes ? cls : NULL));
                OK(zf_engine_fold_read(e, j, &dev[j]));
                char what[64];
                snprintf(what, sizeof what, "%s after batch %d", net->layers[layers[j]].name, r);
                expect_same_acc(&dev[j], A, what);
            }
            for (int c = 0; c < units; c++) /* committed */
                A->top.dirty[c] = A->bot.dirty[c] = ZF_FOLD_CLEAN;
        }
    }
    cr_expect_gt(ties, 8, "relu1's planes tie at zero at the bottom (%d)", ties);
    /* a slot never opened, a fold of another layer's shape, a class out of range: refused */
    cr_expect_eq(zf_engine_fold_add(e, 5, relu1, n, (int64_t[4]){0, 1, 2, 3}, NULL), ZF_ERR_ARG);
    cr_expect_eq(zf_engine_fold_add(e, 0, conv2, n, (int64_t[4]){0, 1, 2, 3}, NULL), ZF_ERR_ARG);
    cr_expect_eq(zf_engine_fold_add(e, 0, relu1, n, (int64_t[4]){0, 1, 2, 3}, (int32_t[4]){0, 2, 0, 0}), ZF_ERR_ARG);
    for (int j = 0; j < 2; j++) {
        fold_acc_free(&host[j]);
        fold_acc_free(&dev[j]);
    }
    zf_free(x);
    zf_engine_close(e);
    zf_net_free(net);
}

/* The scan's prefetch (batch b + 1 copied to the device before the forward of batch b) and the
 * engine's page-locked host memory. To see which copy a forward runs, the test changes the host
 * images after their prefetch (which the engine's contract forbids a caller): a forward that takes
 * its prefetch runs the images as they were, one that copies anew runs them as they are. */
Test(cuda_engine, a_forward_takes_its_prefetched_images_and_only_those)
{
    zf_cuda_ctx_free(gpu()); /* skips without a GPU */
    zf_net *net = mini_net(6), *ref = mini_net(6);
    const int n = 3, last = net->n_layers - 1;
    const size_t in_size = (size_t)zf_net_in_size(net), cnt = n * in_size;
    zf_engine *ge = NULL, *ce = NULL;
    const zf_engine_opts o = {.device = 0, .batch = n};
    OK(zf_engine_open(zf_engine_find("cuda"), net, &o, &ge));
    OK(zf_engine_open(zf_engine_find("cpu"), ref, &o, &ce));
    float *x[3], *was[3];
    for (int k = 0; k < 3; k++) {
        x[k] = zf_engine_host_alloc(ge, sizeof(float) * cnt);
        was[k] = falloc(cnt);
        cr_assert(x[k] && ((uintptr_t)x[k] & 63) == 0, "host memory %p", (void *)x[k]);
        tu_fill_uniform(x[k], cnt, 30 + k, -1, 1);
    }
    /* changes image k's values where they were prefetched from, keeping what was sent */
    const struct timespec settle = {0, 100 * 1000 * 1000}; /* a GPU's copies of 3 small images are done */
#define CHANGE(k)                                                                                  \
    do {                                                                                           \
        nanosleep(&settle, NULL);                                                                  \
        memcpy(was[k], x[k], sizeof(float) * cnt);                                                 \
        for (size_t i_ = 0; i_ < cnt; i_++)                                                        \
            x[k][i_] = -x[k][i_] + 0.25f;                                                          \
    } while (0)

    /* the scan's order: the next batch prefetched before this one's forward, which took its own */
    OK(zf_engine_prefetch(ge, x[0], n));
    OK(zf_engine_prefetch(ge, x[1], n));
    CHANGE(0);
    CHANGE(1);
    expect_device_input(ge, x[0], n, was[0], "batch b, prefetched before b + 1");
    /* its outputs are the images' as they were sent */
    float *want = falloc((size_t)n * zf_layer_out_size(&net->layers[last])), *got = falloc((size_t)n * zf_layer_out_size(&net->layers[last]));
    OK(zf_engine_read(ge, last, got, n));
    OK(zf_engine_forward(ce, was[0], n, last));
    OK(zf_engine_read(ce, last, want, n));
    size_t at = 0;
    const double err = rel_err(got, want, (size_t)n * zf_layer_out_size(&net->layers[last]), &at);
    cr_expect(err <= NET_TOL, "prefetched forward: rel err %g at %zu", err, at);
    OK(zf_engine_prefetch(ge, x[2], n));
    CHANGE(2);
    expect_device_input(ge, x[1], n, was[1], "batch b + 1");
    expect_device_input(ge, x[2], n, was[2], "batch b + 2");
    /* a forward of memory not prefetched copies it (x[0] now holds the changed images) */
    expect_device_input(ge, x[0], n, x[0], "no prefetch");
    /* a third prefetch before either is taken replaces the older */
    for (int k = 0; k < 3; k++)
        OK(zf_engine_prefetch(ge, x[k], n));
    for (int k = 0; k < 3; k++)
        CHANGE(k);
    expect_device_input(ge, x[0], n, x[0], "a replaced prefetch");
    expect_device_input(ge, x[1], n, was[1], "the second of three");
    expect_device_input(ge, x[2], n, was[2], "the third of three");
    /* a prefetch of fewer images is not a forward's of more */
    OK(zf_engine_prefetch(ge, x[1], n - 1));
    CHANGE(1);
    expect_device_input(ge, x[1], n, x[1], "a prefetch of other count");
    OK(zf_engine_prefetch(ge, NULL, 0));
    /* forgotten (the memory about to be freed or rewritten): not taken */
    OK(zf_engine_prefetch(ge, x[0], n));
    OK(zf_engine_prefetch(ge, NULL, 0));
    CHANGE(0);
    expect_device_input(ge, x[0], n, x[0], "a forgotten prefetch");
    /* freeing the memory forgets it too */
    OK(zf_engine_prefetch(ge, x[2], n));
    zf_engine_host_free(ge, x[2]);
    x[2] = zf_engine_host_alloc(ge, sizeof(float) * cnt);
    tu_fill_uniform(x[2], cnt, 77, -1, 1);
    expect_device_input(ge, x[2], n, x[2], "a prefetch from freed memory");
#undef CHANGE
    for (int k = 0; k < 3; k++) {
        zf_engine_host_free(ge, x[k]);
        zf_free(was[k]);
    }
    zf_free(want);
    zf_free(got);
    zf_engine_close(ge);
    zf_engine_close(ce);
    zf_net_free(net);
    zf_net_free(ref);
}

Test(cuda_engine, forward_read_deconv_occlusion_through_the_table_match_the_cpu_engine)
{
    zf_cuda_ctx_free(gpu()); /* skips without a GPU */
    const zf_engine_iface *gi = zf_engine_find("cuda"), *ci = zf_engine_find("cpu");
    cr_assert(gi && ci, "both engines are registered in a CUDA build");
    cr_expect(gi->supports(ZF_ENGINE_OP_BACKWARD) && gi->supports(ZF_ENGINE_OP_OCCLUSION));
    zf_net *a = mini_net(3), *b = mini_net(3);
    const int n = 3;
    const size_t in_size = (size_t)zf_net_in_size(a);
    float *x = falloc(n * in_size);
    tu_fill_uniform(x, n * in_size, 17, -1.5f, 1.5f);
    zf_engine *ce = NULL, *ge = NULL;
    zf_engine_opts o = {.device = 0, .batch = n};
    OK(zf_engine_open(ci, a, &o, &ce));
    OK(zf_engine_open(gi, b, &o, &ge));
    cr_expect(!strcmp(zf_engine_name(ge), "cuda") && strstr(zf_engine_describe(ge), "cuda: "));
    const int last = a->n_layers - 1;
    OK(zf_engine_forward(ce, x, n, last));
    OK(zf_engine_forward(ge, x, n, last));
    for (int l = -1; l <= last; l++) {
        const size_t cnt = (size_t)n * (l < 0 ? in_size : (size_t)zf_layer_out_size(&a->layers[l]));
        float *want = falloc(cnt), *got = falloc(cnt);
        OK(zf_engine_read(ce, l, want, n));
        OK(zf_engine_read(ge, l, got, n));
        size_t at = 0;
        const double e = rel_err(got, want, cnt, &at);
        cr_expect(e <= NET_TOL, "layer %d (%s): rel err %g at %zu", l, l < 0 ? "input" : a->layers[l].name, e, at);
        zf_free(want);
        zf_free(got);
    }
    /* the deconvnet after a forward only as far as its layer */
    const int conv4 = zf_net_find(a, "conv4");
    int ch[3] = {1, 4, 7}, yc[3] = {-1, -1, -1}, xc[3] = {-1, -1, -1}, yg[3] = {-1, -1, -1}, xg[3] = {-1, -1, -1};
    zf_deconv_req rc = {conv4, ZF_DECONV_UNIT, 0, ch, yc, xc}, rg = {conv4, ZF_DECONV_UNIT, 0, ch, yg, xg};
    float *pc = falloc(n * in_size), *pg = falloc(n * in_size);
    OK(zf_engine_forward(ce, x, n, zf_engine_deconv_last(a, &rc)));
    OK(zf_engine_forward(ge, x, n, zf_engine_deconv_last(b, &rg)));
    OK(zf_engine_deconv(ce, pc, n, &rc));
    OK(zf_engine_deconv(ge, pg, n, &rg));
    size_t at = 0;
    double e = rel_err(pg, pc, n * in_size, &at);
    cr_expect(e <= NET_TOL, "deconv rel err %g at %zu", e, at);
    cr_expect(!memcmp(yc, yg, sizeof yc) && !memcmp(xc, xg, sizeof xc), "same strongest positions");
    /* occlusion, brute force and incremental, of one image */
    for (int m = 0; m < 2; m++) {
        zf_occlusion_params p;
        zf_occlusion_params_default(&p);
        p.patch = 21;
        p.stride = 15;
        p.method = m ? ZF_OCCLUSION_INCREMENTAL : ZF_OCCLUSION_BRUTE;
        zf_occlusion_result *rcpu = NULL, *rgpu = NULL;
        OK(zf_engine_occlusion(ce, x, &p, &rcpu));
        OK(zf_engine_occlusion(ge, x, &p, &rgpu));
        cr_assert(rcpu->rows == rgpu->rows && rcpu->cols == rgpu->cols);
        const size_t cells = (size_t)rcpu->rows * rcpu->cols;
        e = rel_err(rgpu->feature, rcpu->feature, cells, &at);
        cr_expect(e <= NET_TOL, "occlusion %d feature rel err %g at %zu", m, e, at);
        e = rel_err(rgpu->prob, rcpu->prob, cells, &at);
        cr_expect(e <= NET_TOL, "occlusion %d prob rel err %g at %zu", m, e, at);
        cr_expect(rgpu->channel == rcpu->channel && rgpu->cls == rcpu->cls && rgpu->layer == rcpu->layer);
        zf_occlusion_result_free(rcpu);
        zf_occlusion_result_free(rgpu);
    }
    /* the gradient of the class scores (weights from x) down to the input */
    OK(zf_engine_forward(ce, x, n, last));
    OK(zf_engine_forward(ge, x, n, last));
    OK(zf_engine_backward(ce, pc, x, last, -1, n, ZF_RELU_RULE_GRADIENT));
    OK(zf_engine_backward(ge, pg, x, last, -1, n, ZF_RELU_RULE_GRADIENT));
    e = rel_err(pg, pc, n * in_size, &at);
    cr_expect(e <= NET_TOL && tu_max_abs(pc, n * in_size) > 0, "backward rel err %g at %zu", e, at);
    OK(zf_engine_reserve(ge, n + 2)); /* a larger batch: a new device copy of the net */
    OK(zf_engine_forward(ge, NULL, n + 2, last));
    zf_free(pc);
    zf_free(pg);
    zf_free(x);
    zf_engine_close(ce);
    zf_engine_close(ge);
    zf_net_free(a);
    zf_net_free(b);
}

/* The attribution methods (core/attribution.c) with their forwards and backward passes on the CUDA
 * engine against the same methods on the CPU: gradients under the true and the guided rule, Grad-CAM
 * at relu5 and integrated gradients, on a mini net with fixed inputs (the CPU and GPU forwards put
 * no ReLU input of these within rounding of zero: a flip would show as a whole unit's difference). */
Test(cuda_engine, attribution_methods_on_the_cuda_engine_match_the_cpu)
{
    zf_cuda_ctx_free(gpu()); /* skips without a GPU */
    zf_net *a = mini_net(21), *b = mini_net(21);
    const int n = 3;
    const size_t in_size = (size_t)zf_net_in_size(a), hw = (size_t)a->in_h * a->in_w;
    float *x = falloc(n * in_size), *ga = falloc(n * in_size), *gb = falloc(n * in_size);
    tu_fill_uniform(x, n * in_size, 23, -1.5f, 1.5f);
    zf_backprop *pa = NULL, *pb = NULL;
    OK(zf_backprop_new(a, n, &pa));
    OK(zf_backprop_new(b, n, &pb));
    zf_engine *ge = NULL;
    zf_engine_opts o = {.device = 0, .batch = n};
    OK(zf_engine_open(zf_engine_find("cuda"), b, &o, &ge));
    OK(zf_backprop_set_engine(pb, ge));
    const int logits = zf_attr_logits_layer(a, 0), relu5 = zf_net_find(a, "relu5");
    size_t at;
    double e;
    for (int rule = 0; rule < 2; rule++) {
        zf_attr_target ta[3], tb[3];
        for (int i = 0; i < n; i++)
            ta[i] = tb[i] = (zf_attr_target){logits, -1, -1, -1}; /* each image's top class */
        double va[3], vb[3];
        OK(zf_attr_gradient_each(pa, ga, va, x, n, ta, (zf_relu_rule)rule));
        OK(zf_attr_gradient_each(pb, gb, vb, x, n, tb, (zf_relu_rule)rule));
        e = rel_err(gb, ga, n * in_size, &at);
        cr_expect(e <= NET_TOL, "rule %d: gradient rel err %g at %zu", rule, e, at);
        for (int i = 0; i < n; i++) {
            cr_expect_eq(ta[i].channel, tb[i].channel, "image %d: the same top class", i);
            cr_expect(fabs(va[i] - vb[i]) <= 1e-4 * fmax(1.0, fabs(va[i])), "image %d: score %g vs %g", i, vb[i], va[i]);
        }
    }
    const zf_attr_target t = {logits, 3, -1, -1};
    float *ca = falloc(hw), *cb = falloc(hw);
    float wa[256], wb[256];
    cr_assert(a->layers[relu5].out_c <= 256);
    OK(zf_attr_gradcam(pa, ca, wa, NULL, NULL, x, relu5, &t));
    OK(zf_attr_gradcam(pb, cb, wb, NULL, NULL, x, relu5, &t));
    e = rel_err(cb, ca, hw, &at);
    cr_expect(e <= NET_TOL, "Grad-CAM map rel err %g at %zu", e, at);
    e = rel_err(wb, wa, (size_t)a->layers[relu5].out_c, &at);
    cr_expect(e <= NET_TOL, "Grad-CAM weights rel err %g at %zu", e, at);
    float *base = falloc(in_size);
    double fxa, fba, fxb, fbb;
    OK(zf_attr_integrated_gradients(pa, ga, &fxa, &fba, x, base, &t, 8, ZF_IG_MIDPOINT));
    OK(zf_attr_integrated_gradients(pb, gb, &fxb, &fbb, x, base, &t, 8, ZF_IG_MIDPOINT));
    e = rel_err(gb, ga, in_size, &at);
    cr_expect(e <= NET_TOL, "integrated gradients rel err %g at %zu", e, at);
    cr_expect(fabs(fxa - fxb) <= 1e-4 * fmax(1.0, fabs(fxa)) && fabs(fba - fbb) <= 1e-4 * fmax(1.0, fabs(fba)),
              "F(x) %g vs %g, F(x') %g vs %g", fxb, fxa, fbb, fba);
    zf_engine *other = NULL;
    zf_net *c = mini_net(21);
    OK(zf_engine_open(zf_engine_find("cuda"), c, &o, &other));
    cr_expect_eq(zf_backprop_set_engine(pa, other), ZF_ERR_ARG, "an engine of another net is refused");
    zf_engine_close(other);
    zf_net_free(c);
    zf_backprop_free(pa);
    zf_backprop_free(pb);
    zf_engine_close(ge);
    zf_free(x); zf_free(ga); zf_free(gb); zf_free(ca); zf_free(cb); zf_free(base);
    zf_net_free(a);
    zf_net_free(b);
}

/* The largest difference between two parameter blocks laid out like net->params, tensor by tensor,
 * relative to each tensor's largest value; *where names the worst tensor. */
static double worst_tensor_err(const zf_net *net, const float *got, const float *want, const char **where)
{
    double worst = 0;
    *where = "";
    for (int i = 0; i < net->n_layers; i++)
        for (int b = 0; b < 2; b++) {
            const zf_layer *l = &net->layers[i];
            const float *w = b ? l->bias : l->weight;
            const int64_t cnt = b ? l->bias_count : l->weight_count;
            if (!w || !cnt)
                continue;
            const size_t off = (size_t)(w - net->params);
            double mx = 0, d = 0;
            for (int64_t j = 0; j < cnt; j++) {
                mx = fmax(mx, fabs(want[off + j]));
                d = fmax(d, fabs((double)got[off + j] - want[off + j]));
            }
            if (mx > 0 && d / mx > worst) {
                worst = d / mx;
                *where = l->name;
            }
        }
    return worst;
}

/* Training on the device against the CPU trainer (zf_trainer_backprop + zf_trainer_update: dropout
 * masks from the same seeds, SGD with momentum, weight decay and ZF's filter renormalisation), from
 * the same He initialisation, inputs and labels:
 * - every one of 20 steps, started from the device's weights and momentum copied to the CPU, gives
 *   the CPU's weights and momentum to 1e-5 of each tensor's largest value, the same loss to 1e-6
 *   and the same hits, on both mini nets;
 * - run freely, alexnet-mini's weights after 20 steps are the CPU run's to 1e-4 and every loss to
 *   1e-4. A free run agrees only until a ReLU or a pooling window of one run decides otherwise than
 *   the other's within rounding: zfnet-mini's conv2 did at step 18 (its weights then 7.5e-4 apart,
 *   2e-6 before), after which the runs are two trainings, equally valid. */
Test(cuda_train, device_steps_equal_the_cpu_trainer)
{
    zf_cuda_ctx *ctx = gpu();
    const char *const archs_[] = {"alexnet-mini", "zfnet-mini"};
    const int n = 4, steps = 20;
    const zf_sgd opt = {0.01f, 0.9f, 5e-4f, 0.1f};
    for (int free_run = 0; free_run < 2; free_run++)
        for (int a = 0; a < (free_run ? 1 : 2); a++) {
            zf_net *net = NULL;
            OK(zf_net_new_builtin(archs_[a], &net));
            OK(zf_net_init_he(net, 7 + a));
            zf_trainer *ct = NULL;
            OK(zf_trainer_new(net, n, &ct));
            zf_cuda_trainer *gt = NULL;
            OK(zf_cuda_trainer_new(ctx, net, n, NULL, &gt)); /* uploads the initial weights */
            const size_t in_size = (size_t)zf_net_in_size(net), np = (size_t)net->n_params;
            float *x = falloc(n * in_size), *params = falloc(np), *mom = falloc(np);
            int32_t labels[4];
            for (int s = 0; s < steps; s++) {
                tu_fill_uniform(x, n * in_size, 1000 + s, -1, 1);
                for (int i = 0; i < n; i++)
                    labels[i] = (s * 3 + i * 7) % 10;
                if (!free_run) /* the CPU starts the step where the device is */
                    OK(zf_cuda_trainer_download(gt, net->params, ct->momentum));
                double lc = 0, lg = 0;
                int cc = -1, cg = -2;
                OK(zf_trainer_backprop(ct, x, labels, n, 500 + s, &lc, &cc));
                zf_trainer_update(ct, &opt);
                OK(zf_cuda_trainer_step(gt, x, labels, n, 500 + s, &lg, &cg));
                OK(zf_cuda_trainer_update(gt, &opt));
                const double ltol = free_run ? 1e-4 : 1e-6;
                cr_expect(fabs(lg - lc) <= ltol * fmax(1.0, fabs(lc)), "%s step %d: loss %.9g on the GPU, %.9g on the CPU",
                          archs_[a], s, lg, lc);
                cr_expect_eq(cg, cc, "%s step %d: hits", archs_[a], s);
                if (!free_run || s == steps - 1) {
                    OK(zf_cuda_trainer_download(gt, params, mom));
                    const char *where;
                    const double tol = free_run ? 1e-4 : 1e-5;
                    double e = worst_tensor_err(net, params, net->params, &where);
                    cr_expect(e <= tol, "%s%s step %d: weights %g apart (%s)", archs_[a], free_run ? " free run" : "", s,
                              e, where);
                    if (!free_run) {
                        e = worst_tensor_err(net, mom, ct->momentum, &where);
                        cr_expect(e <= tol, "%s step %d: momentum %g apart (%s)", archs_[a], s, e, where);
                    }
                }
            }
            zf_free(params);
            zf_free(mom);
            zf_free(x);
            zf_cuda_trainer_free(gt);
            zf_trainer_free(ct);
            zf_net_free(net);
        }
    zf_cuda_ctx_free(ctx);
}

/* n grey 28x28 images of noise labelled i % classes (Fashion-MNIST's shape), in memory. */
static zf_dataset *tiny_set(int n, int classes, uint64_t seed)
{
    zf_dataset *d = calloc(1, sizeof *d);
    cr_assert(d);
    d->n = n;
    d->c = 1;
    d->h = d->w = 28;
    d->pixels = malloc((size_t)n * 28 * 28);
    d->labels = malloc(sizeof(int32_t) * (size_t)n);
    cr_assert(d->pixels && d->labels);
    for (size_t i = 0; i < (size_t)n * 28 * 28; i++)
        d->pixels[i] = (uint8_t)(tu_mix(&seed) >> 56);
    for (int i = 0; i < n; i++)
        d->labels[i] = i % classes;
    d->n_classes = classes;
    snprintf(d->source, sizeof d->source, "noise");
    return d;
}

Test(cuda_engine, evaluate_on_the_cuda_engine_matches_zf_evaluate)
{
    zf_cuda_ctx_free(gpu()); /* skips without a GPU */
    zf_net *a = mini_net(8), *b = mini_net(8);
    zf_dataset *ds = tiny_set(23, 10, 5);
    zf_engine *e = NULL;
    zf_engine_opts o = {.device = 0, .batch = 2};
    OK(zf_engine_open(zf_engine_find("cuda"), a, &o, &e));
    double t1 = -1, t5 = -1, loss = -1, r1 = -2, r5 = -2, rloss = -2;
    OK(zf_engine_evaluate(e, ds, 6, &t1, &t5, &loss, NULL, NULL)); /* a larger batch than opened */
    OK(zf_evaluate(b, ds, 6, &r1, &r5, &rloss, NULL, NULL));
    cr_expect(t1 == r1 && t5 == r5, "top-1 %g against %g, top-5 %g against %g", t1, r1, t5, r5);
    cr_expect(fabs(loss - rloss) <= 1e-5 * fabs(rloss), "loss %.9g against %.9g", loss, rloss);
    cr_expect(rloss > 0 && r5 > 0);
    zf_dataset_free(ds);
    zf_engine_close(e);
    zf_net_free(a);
    zf_net_free(b);
}

/* zf_scan_opts.forward on an engine: the forward up to the last scanned layer, each scanned
 * layer read into net->acts for the statistics (as zfviz scan --device does). */
typedef struct scan_hook {
    zf_engine *e;
    int idx[64], n_idx, last;
} scan_hook;

static zf_status scan_hook_forward(void *ctx, zf_net *net, const float *input, int n)
{
    scan_hook *h = ctx;
    (void)net; /* the engine's */
    return zf_engine_forward_layers(h->e, input, n, h->last, h->idx, h->n_idx);
}

/* zf_scan_opts.layer_stats on the engine (as zfviz scan --device does for conv layers). */
static zf_status scan_hook_stats(void *ctx, int layer, int n, zf_plane_stats *planes, int64_t *hist)
{
    return zf_engine_layer_stats(((scan_hook *)ctx)->e, layer, n, planes, hist);
}

/* zf_scan_opts' host memory and prefetch on the engine (as zfviz scan --device sets them). */
static void *scan_hook_alloc(void *ctx, size_t bytes) { return zf_engine_host_alloc(((scan_hook *)ctx)->e, bytes); }
static void scan_hook_free(void *ctx, void *p) { zf_engine_host_free(((scan_hook *)ctx)->e, p); }
static zf_status scan_hook_prefetch(void *ctx, const float *input, int n)
{
    return zf_engine_prefetch(((scan_hook *)ctx)->e, input, n);
}

static zf_status scan_hook_fold_open(void *ctx, int slot, const zf_fold_acc *acc)
{
    return zf_engine_fold_open(((scan_hook *)ctx)->e, slot, acc);
}
static zf_status scan_hook_fold_add(void *ctx, int slot, int layer, int n, const int64_t *seqs, const int32_t *classes)
{
    return zf_engine_fold_add(((scan_hook *)ctx)->e, slot, layer, n, seqs, classes);
}
static zf_status scan_hook_fold_read(void *ctx, int slot, zf_fold_acc *acc)
{
    return zf_engine_fold_read(((scan_hook *)ctx)->e, slot, acc);
}

/* device_stats 1: the conv layers' statistics reduced by the engine, only the fc layers read back,
 * the images decoded by three threads into the engine's host memory and prefetched; 2: the same
 * with the conv layers' accumulators kept by the engine (its fold) between commits. */
static void scan_into(const char *dbpath, const char *images, const zf_engine_iface *engine, int device_stats)
{
    zf_net *net = mini_net(5);
    char **paths = NULL;
    int64_t n = 0;
    OK(zf_db_scan_list(images, &paths, &n));
    zf_db *db = NULL;
    OK(zf_db_open(dbpath, NULL, &db));
    scan_hook h = {0};
    zf_scan_opts so = {.top_k = 3, .batch = 4, .chunk = 4, .images_arg = images, .weights = "random:5"};
    if (engine) {
        h.n_idx = zf_db_scan_default_layers(net, h.idx);
        for (int i = 0; i < h.n_idx; i++)
            h.last = h.idx[i] > h.last ? h.idx[i] : h.last;
        zf_engine_opts o = {.device = 0, .batch = 4};
        OK(zf_engine_open(engine, net, &o, &h.e));
        so.forward = scan_hook_forward;
        so.forward_ctx = &h;
        if (device_stats) {
            int k = 0;
            for (int i = 0; i < h.n_idx; i++)
                if (!zf_db_scan_on_engine(&net->layers[h.idx[i]]))
                    h.idx[k++] = h.idx[i];
            cr_assert(k > 0 && k < h.n_idx, "the scan has conv and fc layers (%d of %d read back)", k, h.n_idx);
            h.n_idx = k;
            so.layer_stats = scan_hook_stats;
            so.host_alloc = scan_hook_alloc;
            so.host_free = scan_hook_free;
            so.prefetch = scan_hook_prefetch;
            so.decode_threads = 3;
        }
        if (device_stats == 2) {
            so.fold_open = scan_hook_fold_open;
            so.fold_add = scan_hook_fold_add;
            so.fold_read = scan_hook_fold_read;
        }
    }
    zf_scan_result res;
    OK(zf_db_scan(db, net, (const char *const *)paths, n, &so, &res));
    cr_assert(res.n_ok == n && n == 7, "%lld of %lld images scanned", (long long)res.n_ok, (long long)n);
    zf_engine_close(h.e);
    zf_db_close(db);
    zf_db_scan_list_free(paths, n);
    zf_net_free(net);
}


/* Half the sum of |a - b| over the bins of two unit_stats.hist arrays (the values moved to another
 * bin); the totals must be equal. */
static int hist_distance(const char *layer, int unit, const char *a, const char *b)
{
    cr_assert(a && b && a[0] == '[' && b[0] == '[', "%s unit %d: histograms %s, %s", layer, unit, a, b);
    long long ta = 0, tb = 0, d = 0;
    int bins = 0;
    for (a++, b++; *a && *b; bins++) {
        char *ea, *eb;
        const long long x = strtoll(a, &ea, 10), y = strtoll(b, &eb, 10);
        ta += x;
        tb += y;
        d += llabs(x - y);
        a = *ea ? ea + 1 : ea;
        b = *eb ? eb + 1 : eb;
    }
    cr_expect_eq(bins, ZF_HIST_BINS, "%s unit %d: %d bins", layer, unit, bins);
    cr_expect_eq(ta, tb, "%s unit %d: histogram totals %lld, %lld", layer, unit, ta, tb);
    return (int)(d / 2);
}

/* Whether two ranked lists (unit_stats.top or .bottom JSON: [[image, seq, score, y, x, box...], ...])
 * name the same images and positions in the same order (the scores apart). */
static int same_seqs(const char *a, const char *b)
{
    cr_assert(a && b);
    for (int i = 0;; i++) {
        while (*a && !(*a == '-' || (*a >= '0' && *a <= '9')))
            a++;
        while (*b && !(*b == '-' || (*b >= '0' && *b <= '9')))
            b++;
        if (!*a || !*b)
            return !*a && !*b;
        char *ea, *eb;
        const double x = strtod(a, &ea), y = strtod(b, &eb);
        if (i % 9 != 2 && x != y)
            return 0;
        a = ea;
        b = eb;
    }
}

static void compare_scans(const char *cpu_db, const char *gpu_db);

/* The scan with its forward on the CUDA engine, the statistics reduced on the host from the layers
 * read back (every layer) or on the device (conv layers: zf_engine_layer_stats), equals the CPU
 * scan: counts, sums and maxima to 1e-5, the strongest positions, bottom-k, histograms and the
 * top-k images; and a fourth with the conv layers' accumulators kept on the device. */
Test(cuda_scan, the_scan_with_the_cuda_engine_forward_equals_the_cpu_scan)
{
    zf_cuda_ctx_free(gpu()); /* skips without a GPU */
    char dir[2048], imgs[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("cuda_scan"));
    snprintf(imgs, sizeof imgs, "%s/images", dir);
    cr_assert_eq(tu_system("mkdir -p '%s'", imgs), 0);
    /* seven images of odd sizes: two batches of 4, the second partial */
    for (int i = 0; i < 7; i++) {
        const int w = 37 + 9 * i, h = 29 + 13 * i;
        uint8_t *rgb = malloc((size_t)w * h * 3);
        uint64_t s = 1000 + (uint64_t)i;
        for (int k = 0; k < w * h * 3; k++)
            rgb[k] = (uint8_t)(tu_mix(&s) >> 56);
        char path[4200];
        snprintf(path, sizeof path, "%s/im%d.png", imgs, i);
        cr_assert_eq(tu_write_png(path, w, h, rgb), 0);
        free(rgb);
    }
    char cpu_db[2100], gpu_db[2100], dev_db[2100], fold_db[2100];
    snprintf(cpu_db, sizeof cpu_db, "%s/cpu.db", dir);
    snprintf(gpu_db, sizeof gpu_db, "%s/gpu.db", dir);
    snprintf(dev_db, sizeof dev_db, "%s/gpu-stats.db", dir);
    snprintf(fold_db, sizeof fold_db, "%s/gpu-fold.db", dir);
    scan_into(cpu_db, imgs, NULL, 0);
    scan_into(gpu_db, imgs, zf_engine_find("cuda"), 0);
    scan_into(dev_db, imgs, zf_engine_find("cuda"), 1);
    scan_into(fold_db, imgs, zf_engine_find("cuda"), 2);
    compare_scans(cpu_db, gpu_db);
    compare_scans(cpu_db, dev_db);
    compare_scans(cpu_db, fold_db);
}

static void compare_scans(const char *cpu_db, const char *gpu_db)
{

    sqlite3 *a = NULL, *b = NULL;
    cr_assert_eq(sqlite3_open_v2(cpu_db, &a, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_open_v2(gpu_db, &b, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    const char *q = "SELECT layer, unit, images, active_images, positions, positive_positions, sum, max, max_seq, "
                    "max_y, max_x, bottom, hist FROM unit_stats ORDER BY layer, unit";
    sqlite3_stmt *sa = NULL, *sb = NULL;
    cr_assert_eq(sqlite3_prepare_v2(a, q, -1, &sa, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(b, q, -1, &sb, NULL), SQLITE_OK);
    int rows = 0, count_diffs = 0, hist_diffs = 0, bottom_same = 0;
    double worst = 0;
    while (sqlite3_step(sa) == SQLITE_ROW) {
        cr_assert_eq(sqlite3_step(sb), SQLITE_ROW, "the gpu scan has fewer units (%d)", rows);
        const char *la = (const char *)sqlite3_column_text(sa, 0), *lb = (const char *)sqlite3_column_text(sb, 0);
        const int unit = sqlite3_column_int(sa, 1);
        cr_assert(!strcmp(la, lb) && unit == sqlite3_column_int(sb, 1), "row %d: %s/%d against %s", rows, la, unit, lb);
        cr_expect_eq(sqlite3_column_int64(sa, 2), sqlite3_column_int64(sb, 2), "%s unit %d images", la, unit);
        cr_expect_eq(sqlite3_column_int64(sa, 4), sqlite3_column_int64(sb, 4), "%s unit %d positions", la, unit);
        /* counts of values above zero may differ only for a value within rounding of zero */
        for (int c = 3; c <= 5; c += 2)
            if (sqlite3_column_int64(sa, c) != sqlite3_column_int64(sb, c)) {
                cr_expect_leq(llabs(sqlite3_column_int64(sa, c) - sqlite3_column_int64(sb, c)), 1,
                              "%s unit %d column %d: %lld against %lld", la, unit, c,
                              (long long)sqlite3_column_int64(sa, c), (long long)sqlite3_column_int64(sb, c));
                count_diffs++;
            }
        for (int c = 6; c <= 7; c++) {
            const double x = sqlite3_column_double(sa, c), y = sqlite3_column_double(sb, c);
            const double e = fabs(x - y) / fmax(fmax(fabs(x), fabs(y)), 1e-6);
            worst = fmax(worst, e);
            cr_expect_leq(e, 1e-5, "%s unit %d %s: %.9g against %.9g (rel %g)", la, unit, c == 6 ? "sum" : "max", x,
                          y, e);
        }
        for (int c = 8; c <= 10; c++)
            cr_expect_eq(sqlite3_column_int64(sa, c), sqlite3_column_int64(sb, c), "%s unit %d: strongest (col %d)",
                         la, unit, c);
        hist_diffs += hist_distance(la, unit, (const char *)sqlite3_column_text(sa, 12),
                                    (const char *)sqlite3_column_text(sb, 12));
        bottom_same += same_seqs((const char *)sqlite3_column_text(sa, 11), (const char *)sqlite3_column_text(sb, 11));
        rows++;
    }
    cr_expect_neq(sqlite3_step(sb), SQLITE_ROW, "the gpu scan has more units");
    cr_expect_gt(rows, 100, "every unit of the scanned layers (%d)", rows);
    cr_expect_leq(count_diffs, rows / 100, "%d of %d units count another number of positive values", count_diffs, rows);
    /* a value may fall on the other side of a bin edge, or the bottom-k order swap two images, only
     * within rounding */
    cr_expect_leq(hist_diffs, rows / 50 + 1, "%d values of %d units in another histogram bin", hist_diffs, rows);
    cr_expect_geq(bottom_same, rows - rows / 100, "%d of %d units have the same bottom-k images", bottom_same, rows);
    cr_log_info("scan: %d units, worst relative difference of sums and maxima %.3g, %d counts and %d histogram "
                "counts differ", rows, worst, count_diffs, hist_diffs);
    sqlite3_finalize(sa);
    sqlite3_finalize(sb);
    /* the same top-k images, in the same order, for every unit */
    q = "SELECT group_concat(seq) FROM (SELECT seq FROM topk ORDER BY layer, unit, rank)";
    cr_assert_eq(sqlite3_prepare_v2(a, q, -1, &sa, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(b, q, -1, &sb, NULL), SQLITE_OK);
    cr_assert(sqlite3_step(sa) == SQLITE_ROW && sqlite3_step(sb) == SQLITE_ROW);
    const char *ta = (const char *)sqlite3_column_text(sa, 0), *tb = (const char *)sqlite3_column_text(sb, 0);
    cr_assert(ta && tb && strlen(ta) > 100);
    size_t k = 0;
    while (ta[k] && ta[k] == tb[k])
        k++;
    cr_expect(!ta[k] && !tb[k], "top-k images differ from character %zu: ...%.40s against ...%.40s", k, ta + k,
              tb + k);
    sqlite3_finalize(sa);
    sqlite3_finalize(sb);
    sqlite3_close(a);
    sqlite3_close(b);
}


/* zfviz train --device cuda: the epoch loop (zf_train_run_on) on the CUDA engine against the same
 * loop on the CPU engine, from the same initialisation and data (20 steps in two epochs, crops and
 * flips, validation after each epoch): the weights within 1e-4 of each tensor's largest value and
 * every epoch's losses within 1e-4; and a run stopped on the CPU at step 5 of its first epoch goes on
 * from the CPU's checkpoint on the GPU to the same weights. */
typedef struct train_log {
    double train_loss[4], val_loss[4], val_acc[4];
    int epochs;
    int stop_at; /* on_step stops the run at this step of epoch 1 (0: never) */
} train_log;

static zf_status log_epoch(void *ctx, const zf_epoch_stats *es, const zf_net *net)
{
    train_log *g = ctx;
    (void)net;
    if (g->epochs < 4) {
        g->train_loss[g->epochs] = es->train_loss;
        g->val_loss[g->epochs] = es->val_loss;
        g->val_acc[g->epochs] = es->val_acc;
    }
    g->epochs++;
    return ZF_OK;
}

static int stop_step(void *ctx, int epoch, int64_t step, int64_t steps, double loss, double acc, double ips)
{
    (void)steps, (void)loss, (void)acc, (void)ips;
    const train_log *g = ctx;
    return g->stop_at && epoch == 1 && step == g->stop_at;
}

static zf_status train_on(const char *engine, zf_net *net, const zf_dataset *tr, const zf_dataset *va,
                          const zf_train_config *cfg, int resume, train_log *g)
{
    zf_engine *e = NULL;
    const zf_engine_opts o = {.device = 0, .batch = cfg->batch};
    OK(zf_engine_open(zf_engine_find(engine), net, &o, &e));
    const zf_train_hooks hooks = {g, stop_step, log_epoch, NULL};
    zf_status st = zf_train_run_on(e, tr, va, cfg, resume, &hooks);
    zf_engine_close(e);
    return st;
}

Test(cuda_train, the_epoch_loop_on_the_cuda_engine_equals_the_cpu_and_resumes_a_cpu_checkpoint)
{
    zf_cuda_ctx_free(gpu()); /* skips without a GPU */
    zf_dataset *tr = tiny_set(30, 10, 11), *va = tiny_set(9, 10, 12);
    char dir[2048], ck_cpu[2100], ck_gpu[2100], ck_mix[2100];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("cuda_train_loop"));
    snprintf(ck_cpu, sizeof ck_cpu, "%s/cpu.ckpt", dir);
    snprintf(ck_gpu, sizeof ck_gpu, "%s/gpu.ckpt", dir);
    snprintf(ck_mix, sizeof ck_mix, "%s/mix.ckpt", dir);
    zf_train_config cfg = {.epochs = 2, .batch = 3, .sgd = {0.01f, 0.9f, 5e-4f, 0.1f}, .lr_gamma = 0.1f, .seed = 4};
    cfg.aug.crop = 2;
    cfg.aug.flip = 1;
    zf_net *nets[3];
    train_log logs[3] = {{.stop_at = 0}, {.stop_at = 0}, {.stop_at = 5}};
    for (int r = 0; r < 3; r++) {
        OK(zf_net_new_builtin("alexnet-mini", &nets[r]));
        OK(zf_net_init_he(nets[r], 21));
    }
    cfg.checkpoint = ck_cpu;
    OK(train_on("cpu", nets[0], tr, va, &cfg, 0, &logs[0]));
    cfg.checkpoint = ck_gpu;
    OK(train_on("cuda", nets[1], tr, va, &cfg, 0, &logs[1]));
    cfg.checkpoint = ck_mix; /* stopped on the CPU, then resumed on the GPU */
    cr_assert_eq(train_on("cpu", nets[2], tr, va, &cfg, 0, &logs[2]), ZF_ERR_INTERRUPTED);
    cr_assert_eq(logs[2].epochs, 0);
    OK(zf_net_init_he(nets[2], 99)); /* the checkpoint, not these weights, is where it goes on */
    logs[2].stop_at = 0;
    OK(train_on("cuda", nets[2], tr, va, &cfg, 1, &logs[2]));
    for (int r = 1; r < 3; r++) {
        const char *what = r == 1 ? "the gpu run" : "the cpu run resumed on the gpu";
        cr_expect_eq(logs[r].epochs, 2, "%s: %d epochs", what, logs[r].epochs);
        for (int ep = 0; ep < 2; ep++) {
            cr_expect(fabs(logs[r].train_loss[ep] - logs[0].train_loss[ep]) <= 1e-4, "%s epoch %d: loss %.9g, cpu %.9g",
                      what, ep + 1, logs[r].train_loss[ep], logs[0].train_loss[ep]);
            cr_expect(fabs(logs[r].val_loss[ep] - logs[0].val_loss[ep]) <= 1e-4,
                      "%s epoch %d: validation loss %.9g, cpu %.9g", what, ep + 1, logs[r].val_loss[ep],
                      logs[0].val_loss[ep]);
            cr_expect_eq(logs[r].val_acc[ep], logs[0].val_acc[ep], "%s epoch %d: validation accuracy", what, ep + 1);
        }
        const char *where;
        const double e = worst_tensor_err(nets[0], nets[r]->params, nets[0]->params, &where);
        cr_expect(e <= 1e-4, "%s: weights %g apart after 20 steps (%s)", what, e, where);
        cr_log_info("%s: weights %.3g apart after 20 steps (%s)", what, e, where);
    }
    /* the trained weights moved: the comparison is not of two initialisations */
    zf_net *init = NULL;
    OK(zf_net_new_builtin("alexnet-mini", &init));
    OK(zf_net_init_he(init, 21));
    const char *where;
    cr_expect_gt(worst_tensor_err(init, nets[0]->params, init->params, &where), 1e-3);
    cr_expect(logs[0].train_loss[1] < logs[0].train_loss[0] + 1, "losses are finite and sane");
    zf_net_free(init);
    for (int r = 0; r < 3; r++)
        zf_net_free(nets[r]);
    zf_dataset_free(tr);
    zf_dataset_free(va);
}


/* The paper's experiments on the CUDA engine against the CPU engine (zfviz invariance, correspond,
 * probe, compare --layer and evolve run them through the table): the invariance sweep's distances
 * and probabilities, the correspondence measure, the probe's features and the units' strongest
 * activations; and weights changed on the host (evolve's snapshots) reach the device's forward
 * through zf_engine_weights_changed. */
Test(cuda_engine, the_papers_experiments_on_the_cuda_engine_match_the_cpu)
{
    zf_cuda_ctx_free(gpu()); /* skips without a GPU */
    zf_net *nets[2] = {mini_net(6), mini_net(6)};
    zf_engine *e[2] = {NULL, NULL};
    const zf_engine_opts o = {.device = 0, .batch = 2};
    OK(zf_engine_open(zf_engine_find("cpu"), nets[0], &o, &e[0]));
    OK(zf_engine_open(zf_engine_find("cuda"), nets[1], &o, &e[1]));
    zf_net *net = nets[0];
    const int64_t isz = zf_net_in_size(net);
    enum { N = 3 };
    float *x = falloc((size_t)(N * isz));
    tu_fill_uniform(x, (size_t)(N * isz), 41, -1.5f, 1.5f);
    /* invariance: five rotations, in batches of 2 */
    zf_invariance_params p;
    zf_invariance_params_default(&p);
    p.batch = 2;
    const double am[5] = {0, 10, 45, 90, 200};
    zf_invariance_row rows[2][5];
    int layers[2][2], cls[2];
    for (int k = 0; k < 2; k++)
        OK(zf_invariance_sweep(e[k], x, ZF_TRANSFORM_ROTATE, am, 5, &p, rows[k], layers[k], &cls[k]));
    cr_expect(cls[0] == cls[1] && layers[0][0] == layers[1][0] && layers[0][1] == layers[1][1]);
    for (int i = 0; i < 5; i++) {
        for (int l = 0; l < 2; l++)
            cr_expect(fabs(rows[1][i].dist[l] - rows[0][i].dist[l]) <= 1e-4 * fmax(1.0, rows[0][i].dist[l]),
                      "rotation %g layer %d: distance %.9g, cpu %.9g", am[i], l, rows[1][i].dist[l], rows[0][i].dist[l]);
        cr_expect(fabs(rows[1][i].prob - rows[0][i].prob) <= 1e-5, "rotation %g: p %.9g, cpu %.9g", am[i],
                  rows[1][i].prob, rows[0][i].prob);
    }
    cr_expect_gt(rows[0][2].dist[0], 0.0, "a rotation moves the first layer's output");
    /* correspondence: one box and a shifted one over three images */
    const zf_part_box b0[N] = {{10, 12, 20, 20}, {12, 10, 20, 20}, {11, 11, 20, 20}};
    const zf_part_box b1[N] = {{60, 60, 16, 16}, {58, 62, 16, 16}, {61, 59, 16, 16}};
    const zf_part_box *sets[2] = {b0, b1};
    const int cl[2] = {zf_paper_layer_last_conv(net), zf_paper_layer_penultimate(net)};
    double delta[2][4], norm[2][4];
    for (int k = 0; k < 2; k++)
        OK(zf_correspond_run(e[k], x, N, sets, 2, cl, 2, 0.0f, delta[k], norm[k]));
    for (int j = 0; j < 4; j++)
        cr_expect(fabs(norm[1][j] - norm[0][j]) <= 0.01, "correspondence %d: %.6f, cpu %.6f", j, norm[1][j], norm[0][j]);
    /* probe features of pool2 and fc7 over seven images in batches of 2 */
    zf_dataset *ds = tiny_set(7, 10, 9);
    const int pl[2] = {zf_probe_resolve(net, "pool2"), zf_probe_resolve(net, "fc7")};
    float *feat[2][2];
    for (int k = 0; k < 2; k++)
        OK(zf_probe_features(e[k], ds, pl, 2, 3, 2, feat[k], NULL, NULL));
    for (int l = 0; l < 2; l++) {
        const size_t cnt = (size_t)(7 * zf_probe_dim(net, pl[l], 3));
        size_t at;
        const double err = rel_err(feat[1][l], feat[0][l], cnt, &at);
        cr_expect(err <= NET_TOL, "probe layer %d: rel err %g at %zu", pl[l], err, at);
        zf_free(feat[0][l]);
        zf_free(feat[1][l]);
    }
    zf_dataset_free(ds);
    /* the strongest activations of six units of conv2, then of conv2 with weights changed on the
     * host (scaled by -1: other units and images) */
    const int conv2 = zf_net_find(net, "conv2"), ch[6] = {0, 1, 2, 5, 8, 13};
    for (int round = 0; round < 2; round++) {
        zf_unit_max m[2][6];
        for (int k = 0; k < 2; k++)
            OK(zf_units_strongest(e[k], x, N, 2, conv2, ch, 6, m[k]));
        for (int u = 0; u < 6; u++) {
            cr_expect(m[1][u].image == m[0][u].image && m[1][u].y == m[0][u].y && m[1][u].x == m[0][u].x,
                      "round %d unit %d: image %lld (%d, %d), cpu %lld (%d, %d)", round, ch[u], (long long)m[1][u].image,
                      m[1][u].y, m[1][u].x, (long long)m[0][u].image, m[0][u].y, m[0][u].x);
            cr_expect(fabs(m[1][u].value - m[0][u].value) <= 1e-4 * fmax(1.0, m[0][u].value),
                      "round %d unit %d: %.9g, cpu %.9g", round, ch[u], m[1][u].value, m[0][u].value);
        }
        if (round == 0)
            for (int k = 0; k < 2; k++) {
                zf_layer *l = &nets[k]->layers[conv2];
                for (int64_t j = 0; j < l->weight_count; j++)
                    l->weight[j] = -l->weight[j];
                OK(zf_engine_weights_changed(e[k]));
            }
    }
    zf_free(x);
    for (int k = 0; k < 2; k++) {
        zf_engine_close(e[k]);
        zf_net_free(nets[k]);
    }
}

#endif
