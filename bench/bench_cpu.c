/* Times the CPU engine: forward at batch 1 and 16 and the deconvnet projection of one conv5 unit
 * (forward included) for each built-in net. Prints one JSON line per measurement (medians);
 * bench/run-cpu.sh runs PyTorch in the same session and prints the ratios.
 * --variants instead times alternatives, interleaved round by round so that a loaded machine
 * slows every variant alike, and prints the medians, their ratios and the largest difference
 * between the variants' outputs: the whole forward against the kernels from before Winograd and
 * the streaming fully connected kernel (--only net), im2col + sgemm against Winograd F(4x4) and
 * F(2x2) for 3x3 and 5x5 layers with the filter transform timed apart (--only conv), OpenBLAS
 * against the streaming kernel for fully connected layers at batch 1 to 64 (--only fc).
 * --dump DIR writes, per net, what the peers' side of bench/run-cpu.sh needs to run the same net on
 * the same inputs and check its outputs against the engine's: DIR/<net>/weights/ (the random:1
 * weights as .npy files), DIR/<net>/x.npy (the inputs, float32, the largest batch) and
 * DIR/<net>/fc8_b<N>.npy (the engine's fc8 output at each batch N), and times nothing.
 *   bench_cpu [--quick] [--profile] [--variants [--only net|conv|fc]] [--cpu-time] [--nets alexnet,zfnet]
 * --peak first prints the machine's SGEMM peak (OpenBLAS and oneDNN, 2048^3, all threads); --layers
 * times each conv layer as the engine runs it (path, ms, effective GFLOP/s) instead of the nets;
 * --bf16 also times the forward on a cpu engine opened with precision bf16 (side "zfviz-bf16").
 *             [--batches 1,16,64] [--dump DIR] [--peak] [--layers] [--bf16] */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench_util.h"
#include "zf/io.h"
#include "zf/cpu.h"
#include "zf/engine.h"
#include "zf/net.h"
#include "zf/ops.h"
#include "zf/tensor.h"
#include "../core/conv_internal.h"
#include "../core/dnnl_internal.h"
#include "../core/fc_internal.h"
#include "../core/winograd_internal.h"

/* --cpu-time: the process's CPU time instead of the wall clock. With OMP_NUM_THREADS=1 it is the
 * kernel's own time even on a machine others load, when the wall clock mostly measures waiting. */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void) { return bench_clock(clock_id); }

/* Repeats fn until `budget` seconds or `max_reps`, after one warm-up; returns the median in ms. */
#define TIME_MEDIAN(budget, max_reps, stmt)                                                        \
    ({                                                                                             \
        double ts_[256];                                                                           \
        int n_ = 0;                                                                                \
        stmt;                                                                                      \
        double t_end_ = now() + (budget);                                                          \
        while (n_ < (max_reps) && n_ < 256 && (n_ < 3 || now() < t_end_)) {                        \
            double t0_ = now();                                                                    \
            stmt;                                                                                  \
            ts_[n_++] = (now() - t0_) * 1e3;                                                       \
        }                                                                                          \
        bench_median(ts_, n_);                                                                           \
    })

/* Runs the nv variants of one kernel round-robin for `rounds` rounds (or `budget` seconds) after
 * one warm-up each, and returns each one's median in ms in ms[]. */
typedef void (*variant_fn)(void *ctx, int v);
static void time_variants(variant_fn fn, void *ctx, int nv, double budget, int rounds, double *ms)
{
    double ts[8][256];
    int n = 0;
    for (int v = 0; v < nv; v++)
        fn(ctx, v);
    double t_end = now() + budget;
    while (n < rounds && n < 256 && (n < 5 || now() < t_end)) {
        for (int v = 0; v < nv; v++) {
            double t0 = now();
            fn(ctx, v);
            ts[v][n] = (now() - t0) * 1e3;
        }
        n++;
    }
    for (int v = 0; v < nv; v++)
        ms[v] = bench_median(ts[v], n);
}

static float max_abs(const float *a, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabsf(a[i]) > m ? fabsf(a[i]) : m;
    return m;
}

static float max_diff(const float *a, const float *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabsf(a[i] - b[i]) > m ? fabsf(a[i] - b[i]) : m;
    return m;
}

typedef struct conv_ctx {
    const zf_layer *l;
    zf_conv_geom g;
    const float *in;
    float *out[3], *u[2], *ws;
} conv_ctx;

/* 0: im2col + sgemm; 1, 3: Winograd F(4x4), F(2x2) on transformed filters; 2, 4: their filter
 * transforms alone. 5x5 windows have F(4x4) only: 3 and 4 repeat it. */
static void conv_variant(void *p, int v)
{
    conv_ctx *c = p;
    const int m = v <= 2 || c->g.kh == 5 ? 4 : 2, mi = v <= 2 ? 0 : 1;
    if (v == 0)
        zf_conv_forward_im2col(c->out[0], c->in, c->l->weight, c->l->bias, &c->g, c->ws);
    else if (v == 1 || v == 3)
        zf_wino_conv_forward(c->out[1 + mi], c->in, c->u[mi], c->l->bias, &c->g, m, c->ws);
    else
        zf_wino_filters(c->u[mi], c->l->weight, c->g.k, c->g.c / c->g.groups, m, c->g.kh);
}

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

typedef struct fc_ctx {
    const zf_layer *l;
    int n, in_f;
    const float *in;
    float *out[3];
} fc_ctx;

/* 0: OpenBLAS (sgemv / sgemm); 1: the streaming kernel; 2: oneDNN's sgemm. */
static void fc_variant(void *p, int v)
{
    fc_ctx *c = p;
    (v == 2 ? zf_fc_forward_dnnl : v ? zf_fc_forward_stream : zf_fc_forward_blas)(c->out[v], c->in, c->l->weight,
                                                                                  c->l->bias, c->n, c->in_f, c->l->out_c);
}

static void bench_fc_variants(zf_net *net, const char *arch, double budget)
{
    const int batches[] = {1, 2, 4, 8, 16, 32, 64};
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_FC)
            continue;
        const int in_f = (int)zf_layer_in_size(l);
        float *in = zf_alloc(sizeof(float) * 64 * in_f);
        srand(2);
        for (size_t j = 0; j < (size_t)64 * in_f; j++)
            in[j] = (float)rand() / RAND_MAX - 0.5f;
        for (int bi = 0; bi < 7; bi++) {
            fc_ctx c = {.l = l, .n = batches[bi], .in_f = in_f, .in = in};
            const size_t osz = (size_t)c.n * l->out_c;
            c.out[0] = zf_alloc(sizeof(float) * osz);
            c.out[1] = zf_alloc(sizeof(float) * osz);
            c.out[2] = zf_alloc(sizeof(float) * osz);
            double ms[3];
            time_variants(fc_variant, &c, 3, budget, 200, ms);
            printf("{\"net\": \"%s\", \"layer\": \"%s\", \"batch\": %d, \"blas_ms\": %.3f, \"stream_ms\": %.3f, "
                   "\"dnnl_ms\": %.3f, \"ratio\": %.3f, \"dnnl_ratio\": %.3f, \"rel_diff\": %.2e, \"dnnl_rel_diff\": %.2e}\n",
                   arch, l->name, c.n, ms[0], ms[1], ms[2], ms[0] / ms[1], ms[0] / ms[2],
                   max_diff(c.out[0], c.out[1], osz) / max_abs(c.out[0], osz),
                   max_diff(c.out[0], c.out[2], osz) / max_abs(c.out[0], osz));
            fflush(stdout);
            for (int j = 0; j < 3; j++)
                zf_free(c.out[j]);
        }
        zf_free(in);
    }
}

typedef struct net_ctx {
    zf_net *net;
    const float *x;
    int n;
} net_ctx;

/* The whole forward: 0 as the engine runs it, 1 with only the kernels it had before Winograd and
 * the streaming fully connected kernel (im2col + sgemm, sgemv / sgemm). */
static void net_variant(void *p, int v)
{
    net_ctx *c = p;
    zf_net *net = c->net;
    if (v == 0) {
        zf_net_forward(net, c->x, c->n);
        return;
    }
    memcpy(net->input, c->x, sizeof(float) * c->n * zf_net_in_size(net));
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if (l->op == ZF_OP_CONV) {
            zf_conv_geom g = zf_layer_conv_geom(l, c->n);
            zf_conv_forward_im2col(net->acts[i], zf_net_act(net, i - 1), l->weight, l->bias, &g, net->ws);
        } else if (l->op == ZF_OP_FC) {
            zf_fc_forward_blas(net->acts[i], zf_net_act(net, i - 1), l->weight, l->bias, c->n,
                               (int)zf_layer_in_size(l), l->out_c);
        } else {
            zf_net_forward_range(net, i, i, c->n);
        }
    }
}

typedef struct dnnl_ctx {
    const zf_layer *l;
    zf_conv_geom g;
    const float *in;
    float *out[4], *ws;
} dnnl_ctx;

/* 0: zfviz's own path (zf_conv_forward before oneDNN: Winograd, polyphase or im2col), then its ReLU
 * pass; 1: oneDNN with bias; 2: oneDNN with bias and ReLU fused. */
static void dnnl_variant(void *p, int v)
{
    dnnl_ctx *c = p;
    const size_t osz = (size_t)c->g.n * c->g.k * c->g.oh * c->g.ow;
    if (v == 0) {
        zf_conv_forward_own(c->out[0], c->in, c->l->weight, c->l->bias, &c->g, c->ws);
        zf_relu_forward(c->out[3], c->out[0], osz);
    } else {
        zf_dnnl_conv_forward(c->out[v], c->in, c->l->weight, c->l->bias, &c->g, v == 2, c->ws);
    }
}

/* Per conv layer and batch: zfviz's own path against oneDNN's primitive (--only dnnl). */
static void bench_dnnl_variants(zf_net *net, const char *arch, const float *x, double budget, const int *batches,
                                int nb)
{
    for (int bi = 0; bi < nb; bi++) {
        const int n = batches[bi];
        zf_net_forward(net, x, n);
        for (int i = 0; i < net->n_layers; i++) {
            const zf_layer *l = &net->layers[i];
            if (l->op != ZF_OP_CONV)
                continue;
            dnnl_ctx c = {.l = l, .g = zf_layer_conv_geom(l, n), .in = zf_net_act(net, i - 1)};
            const size_t osz = (size_t)n * zf_layer_out_size(l);
            const size_t wsz = zmax(zf_conv_workspace_floats(&c.g),
                                    zmax(zf_dnnl_conv_workspace_floats(&c.g, 0), zf_dnnl_conv_workspace_floats(&c.g, 1)));
            for (int j = 0; j < 4; j++)
                c.out[j] = zf_alloc(sizeof(float) * osz);
            c.ws = zf_alloc(sizeof(float) * wsz);
            double ms[3];
            time_variants(dnnl_variant, &c, zf_dnnl_conv_ok(&c.g, 0) ? 3 : 1, budget, 200, ms);
            const float mx = max_abs(c.out[0], osz);
            const double gflop = 2e-6 * osz * (c.g.c / c.g.groups) * c.g.kh * c.g.kw;
            printf("{\"net\": \"%s\", \"layer\": \"%s\", \"batch\": %d, \"own\": \"%s\", \"own_relu_ms\": %.3f, "
                   "\"dnnl\": \"%s\", \"dnnl_ms\": %.3f, \"dnnl_relu_ms\": %.3f, \"ratio\": %.3f, "
                   "\"own_gflops\": %.1f, \"dnnl_relu_gflops\": %.1f, \"rel_diff\": %.2e, \"relu_rel_diff\": %.2e}\n",
                   arch, l->name, n, zf_conv_path_name(&c.g), ms[0],
                   zf_dnnl_conv_impl(&c.g, 1) ? zf_dnnl_conv_impl(&c.g, 1) : "none", ms[1], ms[2], ms[0] / ms[2],
                   gflop / ms[0], gflop / ms[2], max_diff(c.out[0], c.out[1], osz) / mx,
                   max_diff(c.out[3], c.out[2], osz) / mx);
            fflush(stdout);
            for (int j = 0; j < 4; j++)
                zf_free(c.out[j]);
            zf_free(c.ws);
        }
    }
}

static void bench_variants(zf_net *net, const char *arch, const float *x, double budget, const char *only)
{
    if (!only || !strcmp(only, "net")) {
        const int nbs[] = {1, 16};
        for (int bi = 0; bi < 2; bi++) {
            net_ctx c = {net, x, nbs[bi]};
            double ms[2];
            time_variants(net_variant, &c, 2, budget, 100, ms);
            printf("{\"net\": \"%s\", \"what\": \"forward\", \"batch\": %d, \"now_ms\": %.3f, \"before_ms\": %.3f, "
                   "\"ratio\": %.3f}\n", arch, c.n, ms[0], ms[1], ms[1] / ms[0]);
            fflush(stdout);
        }
    }
    if (!only || !strcmp(only, "fc"))
        bench_fc_variants(net, arch, budget);
    if (only && strcmp(only, "conv"))
        return;
    const int batches[] = {1, 2, 4, 8, 16};
    for (int bi = 0; bi < 5; bi++) {
        const int n = batches[bi];
        zf_net_forward(net, x, n);
        for (int i = 0; i < net->n_layers; i++) {
            const zf_layer *l = &net->layers[i];
            const float *in = zf_net_act(net, i - 1);
            if (l->op == ZF_OP_CONV) {
                conv_ctx c = {.l = l, .g = zf_layer_conv_geom(l, n), .in = in};
                if (!zf_wino_conv_applies(&c.g))
                    continue;
                size_t osz = (size_t)n * zf_layer_out_size(l);
                size_t wsz = zmax(zf_conv_workspace_floats(&c.g),
                                  zmax(zf_wino_conv_workspace_floats(&c.g, 4), zf_wino_conv_workspace_floats(&c.g, 2)));
                for (int j = 0; j < 3; j++)
                    c.out[j] = zf_alloc(sizeof(float) * osz);
                c.u[0] = zf_alloc(sizeof(float) * zf_wino_conv_filter_floats(&c.g, 4));
                c.u[1] = zf_alloc(sizeof(float) * zf_wino_conv_filter_floats(&c.g, c.g.kh == 5 ? 4 : 2));
                c.ws = zf_alloc(sizeof(float) * wsz);
                double ms[5];
                time_variants(conv_variant, &c, 5, budget, 200, ms);
                const float mx = max_abs(c.out[0], osz);
                printf("{\"net\": \"%s\", \"layer\": \"%s\", \"batch\": %d, \"im2col_ms\": %.3f, "
                       "\"f4_ms\": %.3f, \"f4_filters_ms\": %.3f, \"f2_ms\": %.3f, \"f2_filters_ms\": %.3f, "
                       "\"f4_ratio\": %.3f, \"f4_ratio_with_filters\": %.3f, "
                       "\"f2_ratio\": %.3f, \"f2_ratio_with_filters\": %.3f, \"f4_rel_diff\": %.2e, \"f2_rel_diff\": %.2e}\n",
                       arch, l->name, n, ms[0], ms[1], ms[2], ms[3], ms[4], ms[0] / ms[1],
                       ms[0] / (ms[1] + ms[2]), ms[0] / ms[3], ms[0] / (ms[3] + ms[4]),
                       max_diff(c.out[0], c.out[1], osz) / mx, max_diff(c.out[0], c.out[2], osz) / mx);
                fflush(stdout);
                for (int j = 0; j < 3; j++)
                    zf_free(c.out[j]);
                zf_free(c.u[0]);
                zf_free(c.u[1]);
                zf_free(c.ws);
            }
        }
    }
}

/* The machine's SGEMM peak: OpenBLAS's and oneDNN's sgemm on square 2048 matrices with all
 * threads, best of a few runs, in GFLOP/s (--peak). */
static void bench_peak(double budget)
{
    const int n = 2048;
    float *a = zf_alloc(sizeof(float) * n * n), *b = zf_alloc(sizeof(float) * n * n), *c = zf_alloc(sizeof(float) * n * n);
    srand(3);
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)rand() / RAND_MAX - 0.5f;
        b[i] = (float)rand() / RAND_MAX - 0.5f;
    }
    const double flop = 2.0 * n * n * n;
    for (int lib = 0; lib < 2; lib++) {
        if (lib && !zf_cpu_dnnl())
            continue;
        double best = 1e30;
        double t_end = now() + budget;
        for (int r = 0; r < 3 || (r < 20 && now() < t_end); r++) {
            double t0 = now();
            if (lib)
                zf_dnnl_sgemm('N', 'N', n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("{\"what\": \"sgemm_peak\", \"lib\": \"%s\", \"n\": %d, \"threads\": %d, \"gflops\": %.1f}\n",
               lib ? zf_cpu_dnnl() : zf_blas_core(), n, omp_get_max_threads(), flop / best * 1e-9);
        fflush(stdout);
    }
    zf_free(a);
    zf_free(b);
    zf_free(c);
}

/* Each conv layer as the engine runs it (zf_conv_forward: its path named) at each batch: median
 * ms and effective GFLOP/s (the direct convolution's 2 * multiply-adds over the time, so Winograd
 * can exceed the SGEMM peak) (--layers). */
static void bench_layers(zf_net *net, const char *arch, const float *x, double budget, const int *batches, int nb)
{
    for (int bi = 0; bi < nb; bi++) {
        const int n = batches[bi];
        zf_net_forward(net, x, n);
        for (int i = 0; i < net->n_layers; i++) {
            const zf_layer *l = &net->layers[i];
            if (l->op != ZF_OP_CONV)
                continue;
            const zf_conv_geom g = zf_layer_conv_geom(l, n);
            const double ms = TIME_MEDIAN(budget / 5, 30, zf_net_forward_range(net, i, i, n));
            const double gflop = 2e-9 * n * zf_layer_out_size(l) * (g.c / g.groups) * g.kh * g.kw;
            printf("{\"net\": \"%s\", \"layer\": \"%s\", \"batch\": %d, \"path\": \"%s\", \"ms\": %.3f, "
                   "\"gflop\": %.3f, \"gflops\": %.1f, \"threads\": %d}\n",
                   arch, l->name, n, zf_cpu_conv_path(&g), ms, gflop, gflop / ms * 1e3, omp_get_max_threads());
            fflush(stdout);
        }
    }
}

/* "conv1 path, conv2 path, ..." of the net at batch n. */
static const char *conv_paths(const zf_net *net, int n)
{
    static char buf[512];
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < net->n_layers && at < sizeof buf; i++)
        if (net->layers[i].op == ZF_OP_CONV) {
            const zf_conv_geom g = zf_layer_conv_geom(&net->layers[i], n);
            at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s %s", at ? ", " : "", net->layers[i].name,
                                   zf_cpu_conv_path(&g));
        }
    return buf;
}

/* The weights, inputs and fc8 outputs of `net` for the peers' side (see --dump above). */
static int dump_net(zf_net *net, const char *arch, const float *x, const int *batches, int nb, int max_b,
                    const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, arch);
    mkdir(dir, 0777);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/%s/weights", dir, arch);
    mkdir(path, 0777);
    if (zf_net_save_npy_dir(net, path))
        return 1;
    const int64_t xs[4] = {max_b, net->in_c, net->in_h, net->in_w};
    snprintf(path, sizeof path, "%s/%s/x.npy", dir, arch);
    if (zf_npy_write_raw(path, ZF_DTYPE_F32, x, 4, xs))
        return 1;
    const int fc8 = zf_net_find(net, "fc8");
    if (fc8 < 0) {
        zf_error(ZF_ERR_ARG, "%s: no layer fc8", arch);
        return 1;
    }
    for (int b = 0; b < nb; b++) {
        if (zf_net_forward(net, x, batches[b]))
            return 1;
        const int64_t ys[2] = {batches[b], net->layers[fc8].out_c};
        snprintf(path, sizeof path, "%s/%s/fc8_b%d.npy", dir, arch, batches[b]);
        if (zf_npy_write_raw(path, ZF_DTYPE_F32, zf_net_act(net, fc8), 2, ys))
            return 1;
    }
    return 0;
}

/* The forward on a cpu engine opened with precision bf16 (core/bf16.c), a net of the same weights,
 * as side "zfviz-bf16", with the relative L2 difference of its last fully connected layer from
 * net's float32 one (--bf16). */
static int bench_bf16(zf_net *net, const char *arch, const float *x, double budget, const int *batches, int nb)
{
    zf_net *lowp = NULL;
    zf_engine *e = NULL;
    const zf_engine_opts o = {.device = 0, .batch = net->batch, .precision = "bf16"};
    if (zf_net_new_builtin(arch, &lowp) || zf_net_load_weights(lowp, "random:1") ||
        zf_engine_open(zf_engine_find("cpu"), lowp, &o, &e)) {
        fprintf(stderr, "bench_cpu: %s bf16: %s\n", arch, zf_last_error());
        zf_net_free(lowp);
        return 1;
    }
    int fc = net->n_layers - 1;
    while (fc > 0 && net->layers[fc].op != ZF_OP_FC)
        fc--;
    for (int b = 0; b < nb; b++) {
        const int n = batches[b];
        double ms = TIME_MEDIAN(budget, 50, zf_engine_forward(e, x, n, lowp->n_layers - 1));
        zf_net_forward(net, x, n);
        const float *a = zf_net_act(net, fc), *c = zf_net_act(lowp, fc);
        double se = 0, sr = 0;
        for (size_t i = 0; i < (size_t)n * net->layers[fc].out_c; i++) {
            se += ((double)a[i] - c[i]) * ((double)a[i] - c[i]);
            sr += (double)a[i] * a[i];
        }
        printf("{\"side\": \"zfviz-bf16\", \"net\": \"%s\", \"what\": \"forward\", \"batch\": %d, \"ms\": %.3f, "
               "\"img_per_s\": %.2f, \"kernels\": \"%s: bf16 operands, float32 sums\", \"rel_err_fp32\": %.2e}\n",
               arch, n, ms, n * 1e3 / ms, zf_cpu_kernels(), sr > 0 ? sqrt(se / sr) : 0.0);
        fflush(stdout);
    }
    zf_engine_close(e);
    zf_net_free(lowp);
    return 0;
}

int main(int argc, char **argv)
{
    int quick = 0, profile = 0, variants = 0, peak = 0, layers = 0, bf16 = 0;
    const char *only = NULL;
    const char *nets = "alexnet,alexnet-caffe,zfnet", *dump = NULL;
    int batches[8] = {1, 16}, nb = 2, max_b = 16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--profile"))
            profile = 1;
        else if (!strcmp(argv[i], "--variants"))
            variants = 1;
        else if (!strcmp(argv[i], "--peak"))
            peak = 1;
        else if (!strcmp(argv[i], "--layers"))
            layers = 1;
        else if (!strcmp(argv[i], "--bf16"))
            bf16 = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--cpu-time"))
            clock_id = CLOCK_PROCESS_CPUTIME_ID;
        else if (!strcmp(argv[i], "--nets") && i + 1 < argc)
            nets = argv[++i];
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            dump = argv[++i];
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            char *s = argv[++i], *end;
            for (nb = 0, max_b = 1; *s && nb < 8; s = *end ? end + 1 : end) {
                long b = strtol(s, &end, 10);
                if (end == s || b < 1 || b > 256 || (*end && *end != ',')) {
                    fprintf(stderr, "bench_cpu: --batches: '%s' is not a list of sizes 1 to 256\n", argv[i]);
                    return 2;
                }
                batches[nb++] = (int)b;
                max_b = b > max_b ? (int)b : max_b;
            }
        } else {
            fprintf(stderr, "usage: bench_cpu [--quick] [--profile] [--variants [--only net|conv|fc|dnnl]] [--cpu-time] "
                            "[--nets a,b] [--batches 1,16,64] [--dump DIR] [--peak] [--layers] [--bf16]\n");
            return 2;
        }
    }
    /* the kernels as zfviz would run them: ZFVIZ_ISA forces a narrower set (tools/main.c) */
    if (zf_cpu_set_kernels(getenv("ZFVIZ_ISA"))) {
        fprintf(stderr, "bench_cpu: ZFVIZ_ISA: %s\n", zf_last_error());
        return 2;
    }
    fprintf(stderr, "bench_cpu: kernels %s (CPU: %s; OpenBLAS: %s)\n", zf_cpu_kernels(), zf_cpu_kernels_max(),
            zf_blas_core());
    const double budget = quick ? 1.0 : 4.0;
    if (peak)
        bench_peak(budget);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", nets);
    for (char *save = NULL, *arch = strtok_r(buf, ",", &save); arch; arch = strtok_r(NULL, ",", &save)) {
        zf_net *net = NULL;
        if (zf_net_new_builtin(arch, &net) || zf_net_load_weights(net, "random:1") || zf_net_reserve(net, max_b)) {
            fprintf(stderr, "bench_cpu: %s: %s\n", arch, zf_last_error());
            return 1;
        }
        const size_t isz = (size_t)zf_net_in_size(net);
        float *x = zf_alloc(max_b * isz * sizeof(float)), *y = zf_alloc(max_b * isz * sizeof(float));
        srand(1);
        for (size_t i = 0; i < max_b * isz; i++)
            x[i] = (float)rand() / RAND_MAX - 0.5f;
        if (dump) {
            if (dump_net(net, arch, x, batches, nb, max_b, dump)) {
                fprintf(stderr, "bench_cpu: --dump %s: %s\n", dump, zf_last_error());
                return 1;
            }
            zf_free(x);
            zf_free(y);
            zf_net_free(net);
            continue;
        }
        if (layers) {
            bench_layers(net, arch, x, budget, batches, nb);
            zf_free(x);
            zf_free(y);
            zf_net_free(net);
            continue;
        }
        if (variants && only && !strcmp(only, "dnnl")) {
            bench_dnnl_variants(net, arch, x, budget, batches, nb);
            zf_free(x);
            zf_free(y);
            zf_net_free(net);
            continue;
        }
        if (variants) {
            bench_variants(net, arch, x, budget, only);
            zf_free(x);
            zf_free(y);
            zf_net_free(net);
            continue;
        }
        for (int b = 0; b < nb; b++) {
            int n = batches[b];
            double ms = TIME_MEDIAN(budget, 50, zf_net_forward(net, x, n));
            const char *wait = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
            printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"forward\", \"batch\": %d, \"ms\": %.3f, "
                   "\"img_per_s\": %.2f, \"kernels\": \"%s; %s; conv at batch %d: %s\", \"blas\": \"%s\", "
                   "\"threads\": %d, \"omp_wait_policy\": \"%s\", \"gomp_spincount\": \"%s\"}\n",
                   arch, n, ms, n * 1e3 / ms, zf_cpu_kernels(), zf_cpu_dnnl() ? zf_cpu_dnnl() : "no oneDNN", n,
                   conv_paths(net, n), zf_blas_core(), omp_get_max_threads(), wait ? wait : "", spin ? spin : "");
            fflush(stdout);
            if (profile) {
                memcpy(net->input, x, sizeof(float) * n * isz);
                for (int i = 0; i < net->n_layers; i++) {
                    double lms = TIME_MEDIAN(budget / 10, 20, zf_net_forward_range(net, i, i, n));
                    fprintf(stderr, "  %-14s batch %2d  %-8s %8.3f ms\n", arch, n, net->layers[i].name, lms);
                }
            }
        }
        if (bf16 && bench_bf16(net, arch, x, budget, batches, nb))
            return 1;
        int conv5 = zf_net_find_conv(net, "conv5");
        int chan = 3, py = -1, px = -1;
        zf_deconv_req req = {conv5, ZF_DECONV_UNIT, 0, &chan, &py, &px};
        /* The forward up to conv5's ReLU (all the deconvnet needs), then the projection. */
        const int relu5 = zf_net_rectified(net, conv5);
        double ms = TIME_MEDIAN(budget, 50,
                                (zf_net_forward_upto(net, x, 1, relu5), py = px = -1, zf_net_deconv(net, y, 1, &req)));
        printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"deconv_conv5_unit\", \"batch\": 1, \"ms\": %.3f}\n",
               arch, ms);
        fflush(stdout);
        zf_free(x);
        zf_free(y);
        zf_net_free(net);
    }
    return 0;
}
