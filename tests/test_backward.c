/* Every backward pass against central finite differences of an independent float64 forward
 * written out here from the definitions. The scalar loss is L = sum(out * r) for a random r, so
 * the analytic gradient is the backward applied to dout = r, and every output matters. The float64
 * forwards take the float32 inputs as given (already rounded), so the only differences are the
 * float32 arithmetic of the op and the finite-difference error (~1e-10 here).
 * Set ZF_GRAD_REPORT=1 to print the worst relative error of every check. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "zf/backward.h"
#include "zf/ops.h"

#define FD_H 1e-6
/* float32 analytic vs float64 finite differences; errors are relative to max(|ref|, 1% of the
 * largest |ref| of the array), so that entries near zero are judged on the array's scale. */
#define GRAD_TOL 1e-4

/* Exact-size allocations, so that the sanitizer build catches any overrun. */
static float *falloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    cr_assert(p);
    return p;
}

static double *dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof(double));
    cr_assert(p);
    return p;
}

/* Fills with NaN, so that a backward that forgets to overwrite an output fails its check. */
static void fill_nan(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
}

static double *to_double(const float *x, size_t n)
{
    double *d = dalloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* A float64 loss of the parameters that ctx points at. */
typedef double (*loss_fn)(const void *ctx);

/* Compares got (n) with central differences of f with respect to x (n, part of ctx). Large arrays
 * are checked on a spread of at most max_checks entries (both ends included). Returns the worst
 * relative error; fails with the first index over GRAD_TOL. */
static double check_grad(const char *what, const float *got, loss_fn f, const void *ctx, double *x,
                         size_t n, size_t max_checks)
{
    size_t step = n > max_checks ? (n + max_checks - 1) / max_checks : 1;
    size_t m = 0;
    size_t *idx = malloc(sizeof(size_t) * (n / step + 2));
    double *fd = dalloc(n / step + 2);
    cr_assert(idx && n > 0);
    for (size_t i = 0; i < n; i += step)
        idx[m++] = i;
    if (m == 0 || idx[m - 1] != n - 1)
        idx[m++] = n - 1;
    double scale = 0;
    for (size_t t = 0; t < m; t++) {
        const size_t i = idx[t];
        const double x0 = x[i];
        x[i] = x0 + FD_H;
        const double lp = f(ctx);
        x[i] = x0 - FD_H;
        const double lm = f(ctx);
        x[i] = x0;
        fd[t] = (lp - lm) / (2 * FD_H);
        scale = fmax(scale, fabs(fd[t]));
    }
    cr_assert(scale > 0, "%s: the loss does not depend on this input at all", what);
    double worst = 0;
    size_t worst_i = 0;
    for (size_t t = 0; t < m; t++) {
        const size_t i = idx[t];
        const double e = fabs((double)got[i] - fd[t]) / fmax(fabs(fd[t]), 1e-2 * scale);
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            worst_i = t;
        }
    }
    if (getenv("ZF_GRAD_REPORT"))
        cr_log_info("%-44s worst rel err %.2e (%zu of %zu checked)", what, worst, m, n);
    cr_expect(worst < GRAD_TOL, "%s: rel err %g at %zu: analytic %.9g, finite differences %.9g", what,
              worst, idx[worst_i], got[idx[worst_i]], fd[worst_i]);
    free(idx);
    free(fd);
    return worst;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- convolution: weights, bias and input ---- */

typedef struct conv_ctx {
    zf_conv_geom g;
    double *in, *w, *b, *r, *out;
} conv_ctx;

static double conv_loss(const void *vc)
{
    const conv_ctx *c = vc;
    const zf_conv_geom *g = &c->g;
    tu_ref_conv(c->out, c->in, c->w, c->b, g);
    return dot(c->out, c->r, (size_t)g->n * g->k * g->oh * g->ow);
}

/* Padding pb/pr at the bottom/right fixes oh/ow, as the geometry leaves them implicit. */
static zf_conv_geom conv_geom(int n, int c, int h, int w, int k, int kh, int kw, int sh, int sw, int pt,
                              int pl, int pb, int pr, int groups)
{
    zf_conv_geom g = {n, c, h, w, k, (h + pt + pb - kh) / sh + 1, (w + pl + pr - kw) / sw + 1,
                      kh, kw, sh, sw, pt, pl, groups};
    return g;
}

static void check_conv(const char *name, zf_conv_geom g, uint64_t seed)
{
    const int cg = g.c / g.groups;
    const size_t nin = (size_t)g.n * g.c * g.h * g.w, nout = (size_t)g.n * g.k * g.oh * g.ow;
    const size_t nw = (size_t)g.k * cg * g.kh * g.kw;
    float *in = falloc(nin), *w = falloc(nw), *b = falloc(g.k), *r = falloc(nout);
    float *dw = falloc(nw), *db = falloc(g.k), *din = falloc(nin), *dw2 = falloc(nw);
    float *ws = falloc(zf_conv_backward_weights_ws_floats(&g));
    float *wsd = falloc(zf_conv_workspace_floats(&g));
    tu_fill_uniform(in, nin, seed, -1, 1);
    tu_fill_uniform(w, nw, seed + 1, -0.5f, 0.5f);
    tu_fill_uniform(b, g.k, seed + 2, -0.5f, 0.5f);
    tu_fill_uniform(r, nout, seed + 3, -1, 1);
    fill_nan(dw, nw);
    fill_nan(db, g.k);
    fill_nan(din, nin);
    zf_conv_backward_weights(dw, db, in, r, &g, ws);
    zf_conv_backward_data(din, r, w, &g, wsd);

    conv_ctx c = {g, to_double(in, nin), to_double(w, nw), to_double(b, g.k), to_double(r, nout),
                  dalloc(nout)};
    char what[128];
    snprintf(what, sizeof what, "conv %s dw", name);
    check_grad(what, dw, conv_loss, &c, c.w, nw, 4000);
    snprintf(what, sizeof what, "conv %s db", name);
    check_grad(what, db, conv_loss, &c, c.b, g.k, 4000);
    snprintf(what, sizeof what, "conv %s din", name);
    check_grad(what, din, conv_loss, &c, c.in, nin, 600);

    /* Without db the weight gradient is the same. */
    fill_nan(dw2, nw);
    zf_conv_backward_weights(dw2, NULL, in, r, &g, ws);
    cr_expect(memcmp(dw, dw2, sizeof(float) * nw) == 0, "conv %s: dw differs when db is NULL", name);

    free(in); free(w); free(b); free(r); free(dw); free(db); free(din); free(dw2); free(ws); free(wsd);
    free(c.in); free(c.w); free(c.b); free(c.r); free(c.out);
}

Test(conv_backward, weights_bias_input_symmetric_padding_stride1)
{
    check_conv("3x3/1 pad 1, groups 1", conv_geom(3, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1), 101);
}

Test(conv_backward, weights_bias_input_groups2_stride2_asymmetric_padding)
{
    /* 5x3 kernel; top 2 / bottom 1, left 0 / right 2 */
    check_conv("5x3/2 asym pad, groups 2", conv_geom(3, 4, 11, 10, 6, 5, 3, 2, 2, 2, 0, 1, 2, 2), 102);
}

Test(conv_backward, weights_bias_input_stride4_with_unused_input_rows)
{
    /* alexnet-mini conv1's shape in small: one channel, 11x11/4 pad 2; the last input rows and
     * columns fall in no window, so their gradient is 0 */
    check_conv("11x11/4 pad 2, c=1", conv_geom(3, 1, 23, 21, 4, 11, 11, 4, 4, 2, 2, 2, 2, 1), 103);
    check_conv("7x7/4 asym pad, groups 2", conv_geom(3, 4, 19, 17, 6, 7, 7, 4, 4, 1, 3, 2, 0, 2), 104);
}

Test(conv_backward, weights_one_image_per_gemm_and_a_partial_last_chunk)
{
    /* 33x33 maps: one image per GEMM, dout read in place */
    check_conv("3x3/1 pad 1, 33x33 maps", conv_geom(3, 2, 33, 33, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1), 105);
    /* 28x28 maps: two images per GEMM, then one */
    check_conv("3x3/1 asym pad, 28x28 maps, groups 2", conv_geom(3, 2, 28, 28, 4, 3, 3, 1, 1, 1, 0, 1, 2, 2),
               106);
}

/* ---- fully connected ---- */

typedef struct fc_ctx {
    int n, in_f, out_f;
    double *in, *w, *b, *r;
} fc_ctx;

static double fc_loss(const void *vc)
{
    const fc_ctx *c = vc;
    double l = 0;
    for (int i = 0; i < c->n; i++)
        for (int o = 0; o < c->out_f; o++) {
            double s = c->b[o];
            for (int j = 0; j < c->in_f; j++)
                s += c->in[(size_t)i * c->in_f + j] * c->w[(size_t)o * c->in_f + j];
            l += s * c->r[(size_t)i * c->out_f + o];
        }
    return l;
}

static void check_fc(int n, int in_f, int out_f, uint64_t seed)
{
    const size_t nin = (size_t)n * in_f, nw = (size_t)out_f * in_f, nout = (size_t)n * out_f;
    float *in = falloc(nin), *w = falloc(nw), *b = falloc(out_f), *r = falloc(nout);
    float *din = falloc(nin), *dw = falloc(nw), *db = falloc(out_f), *dw2 = falloc(nw), *db2 = falloc(out_f);
    tu_fill_uniform(in, nin, seed, -1, 1);
    tu_fill_uniform(w, nw, seed + 1, -0.5f, 0.5f);
    tu_fill_uniform(b, out_f, seed + 2, -0.5f, 0.5f);
    tu_fill_uniform(r, nout, seed + 3, -1, 1);
    fill_nan(din, nin);
    fill_nan(dw, nw);
    fill_nan(db, out_f);
    zf_fc_backward(din, dw, db, r, in, w, n, in_f, out_f);
    fc_ctx c = {n, in_f, out_f, to_double(in, nin), to_double(w, nw), to_double(b, out_f), to_double(r, nout)};
    char what[96];
    snprintf(what, sizeof what, "fc batch %d, %d->%d, din", n, in_f, out_f);
    check_grad(what, din, fc_loss, &c, c.in, nin, 4000);
    snprintf(what, sizeof what, "fc batch %d, %d->%d, dw", n, in_f, out_f);
    check_grad(what, dw, fc_loss, &c, c.w, nw, 4000);
    snprintf(what, sizeof what, "fc batch %d, %d->%d, db", n, in_f, out_f);
    check_grad(what, db, fc_loss, &c, c.b, out_f, 4000);
    /* din is optional: the same dw and db without it */
    fill_nan(dw2, nw);
    fill_nan(db2, out_f);
    zf_fc_backward(NULL, dw2, db2, r, in, w, n, in_f, out_f);
    cr_expect(memcmp(dw, dw2, sizeof(float) * nw) == 0 && memcmp(db, db2, sizeof(float) * out_f) == 0,
              "fc batch %d: dw/db differ when din is NULL", n);
    free(in); free(w); free(b); free(r); free(din); free(dw); free(db); free(dw2); free(db2);
    free(c.in); free(c.w); free(c.b); free(c.r);
}

Test(fc_backward, input_weights_bias_batch_1_and_5)
{
    check_fc(1, 37, 13, 201);
    check_fc(5, 37, 13, 202);
    check_fc(5, 300, 70, 203);
}

/* ---- ReLU ---- */

typedef struct ew_ctx {
    size_t count;
    double *in, *r;
} ew_ctx;

static double relu_loss(const void *vc)
{
    const ew_ctx *c = vc;
    double l = 0;
    for (size_t i = 0; i < c->count; i++)
        l += (c->in[i] > 0 ? c->in[i] : 0) * c->r[i];
    return l;
}

Test(relu_backward, passes_gradient_where_output_positive_also_in_place)
{
    const size_t n = 1001;
    float *in = falloc(n), *out = falloc(n), *r = falloc(n), *din = falloc(n);
    tu_fill_uniform(in, n, 301, -1, 1);
    for (size_t i = 0; i < n; i++) /* keep FD_H away from the kink */
        if (fabsf(in[i]) < 1e-3f)
            in[i] = 0.5f;
    in[7] = 0.0f; /* the kink itself: the output is 0, so no gradient (PyTorch's choice) */
    tu_fill_uniform(r, n, 302, -1, 1);
    zf_relu_forward(out, in, n);
    fill_nan(din, n);
    zf_relu_backward(din, r, out, n);
    cr_expect(din[7] == 0.0f, "relu'(0) should be 0, got %g", din[7]);
    in[7] = 0.5f; /* FD at the kink is a half-derivative: check the rest */
    din[7] = r[7];
    ew_ctx c = {n, to_double(in, n), to_double(r, n)};
    check_grad("relu", din, relu_loss, &c, c.in, n, 4000);
    /* in place: din == dout */
    float *g = falloc(n);
    memcpy(g, r, sizeof(float) * n);
    zf_relu_backward(g, g, out, n);
    for (size_t i = 0; i < n; i++)
        if (i != 7)
            cr_assert_eq(g[i], din[i], "relu in place differs at %zu", i);
    free(in); free(out); free(r); free(din); free(g); free(c.in); free(c.r);
}

/* ---- max pool: unpooling with the forward's switches is the gradient ---- */

/* PyTorch's output size: floor or ceil, and in ceil mode no window may start in the bottom/right
 * padding. */
static int pool_out(int in, int k, int s, int pad_lo, int pad_hi, int ceil_mode)
{
    const int span = in + pad_lo + pad_hi - k;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + pad_lo)
        o--;
    return o;
}

static zf_pool_geom pool_geom(int n, int c, int h, int w, int k, int s, int pt, int pl, int pb, int pr,
                              int ceil_mode)
{
    zf_pool_geom g = {n, c, h, w, pool_out(h, k, s, pt, pb, ceil_mode), pool_out(w, k, s, pl, pr, ceil_mode),
                      k, k, s, s, pt, pl, pb, pr};
    return g;
}

typedef struct pool_ctx {
    zf_pool_geom g;
    int include_pad;
    double *in, *r;
} pool_ctx;

static double maxpool_loss(const void *vc)
{
    const pool_ctx *c = vc;
    const zf_pool_geom *g = &c->g;
    double l = 0;
    for (int p = 0; p < g->n * g->c; p++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                double m = -INFINITY;
                for (int y = oy * g->sh - g->pt; y < oy * g->sh - g->pt + g->kh; y++)
                    for (int x = ox * g->sw - g->pl; x < ox * g->sw - g->pl + g->kw; x++)
                        if (y >= 0 && y < g->h && x >= 0 && x < g->w)
                            m = fmax(m, c->in[((size_t)p * g->h + y) * g->w + x]);
                l += m * c->r[((size_t)p * g->oh + oy) * g->ow + ox];
            }
    return l;
}

/* Distinct values at least 1/count apart, in random order: no ties anywhere for FD_H to break. */
static void fill_distinct(float *x, size_t count, uint64_t seed)
{
    float *key = falloc(count);
    tu_fill_uniform(key, count, seed, 0, 1);
    for (size_t i = 0; i < count; i++) {
        size_t rank = 0; /* count is small: a quadratic rank is fine */
        for (size_t j = 0; j < count; j++)
            rank += key[j] < key[i] || (key[j] == key[i] && j < i);
        x[i] = (float)(-2.0 + 4.0 * (rank + 0.5) / count);
    }
    free(key);
}

static void check_maxpool(const char *name, zf_pool_geom g, uint64_t seed)
{
    const size_t nin = (size_t)g.n * g.c * g.h * g.w, nout = (size_t)g.n * g.c * g.oh * g.ow;
    float *in = falloc(nin), *out = falloc(nout), *r = falloc(nout), *din = falloc(nin);
    int32_t *sw = malloc(sizeof(int32_t) * nout);
    cr_assert(sw);
    fill_distinct(in, nin, seed);
    tu_fill_uniform(r, nout, seed + 1, -1, 1);
    zf_maxpool_forward(out, sw, in, &g);
    fill_nan(din, nin);
    zf_maxpool_unpool(din, r, sw, &g);
    pool_ctx c = {g, 0, to_double(in, nin), to_double(r, nout)};
    char what[96];
    snprintf(what, sizeof what, "maxpool %s", name);
    check_grad(what, din, maxpool_loss, &c, c.in, nin, 4000);
    free(in); free(out); free(r); free(din); free(sw); free(c.in); free(c.r);
}

Test(maxpool_backward, unpool_with_switches_is_the_gradient)
{
    check_maxpool("3x3/2 no pad 13x13", pool_geom(2, 3, 13, 13, 3, 2, 0, 0, 0, 0, 0), 401);
    check_maxpool("3x3/2 pad 1 12x11", pool_geom(2, 3, 12, 11, 3, 2, 1, 1, 1, 1, 0), 402);
    check_maxpool("3x3/2 ceil 14x11", pool_geom(2, 2, 14, 11, 3, 2, 0, 0, 0, 0, 1), 403);
    check_maxpool("3x3/2 pad 1 ceil 10x9", pool_geom(2, 2, 10, 9, 3, 2, 1, 1, 1, 1, 1), 404);
}

/* ---- average pool ---- */

static double avgpool_loss(const void *vc)
{
    const pool_ctx *c = vc;
    const zf_pool_geom *g = &c->g;
    double l = 0;
    for (int p = 0; p < g->n * g->c; p++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                double s = 0;
                int inside = 0, padded = 0;
                for (int y = oy * g->sh - g->pt; y < oy * g->sh - g->pt + g->kh; y++)
                    for (int x = ox * g->sw - g->pl; x < ox * g->sw - g->pl + g->kw; x++) {
                        /* PyTorch's divisor with padding counts the window within the padded
                         * input (a ceil-mode window may overhang even that) */
                        if (y < g->h + g->pb && x < g->w + g->pr)
                            padded++;
                        if (y >= 0 && y < g->h && x >= 0 && x < g->w) {
                            s += c->in[((size_t)p * g->h + y) * g->w + x];
                            inside++;
                        }
                    }
                const int div = c->include_pad ? padded : inside;
                l += s / div * c->r[((size_t)p * g->oh + oy) * g->ow + ox];
            }
    return l;
}

static void check_avgpool(const char *name, zf_pool_geom g, uint64_t seed)
{
    const size_t nin = (size_t)g.n * g.c * g.h * g.w, nout = (size_t)g.n * g.c * g.oh * g.ow;
    float *in = falloc(nin), *r = falloc(nout), *din = falloc(nin);
    tu_fill_uniform(in, nin, seed, -1, 1);
    tu_fill_uniform(r, nout, seed + 1, -1, 1);
    pool_ctx c = {g, 0, to_double(in, nin), to_double(r, nout)};
    for (int inc = 0; inc < 2; inc++) {
        fill_nan(din, nin);
        zf_avgpool_backward(din, r, &g, inc);
        c.include_pad = inc;
        char what[96];
        snprintf(what, sizeof what, "avgpool %s, include_pad %d", name, inc);
        check_grad(what, din, avgpool_loss, &c, c.in, nin, 4000);
    }
    free(in); free(r); free(din); free(c.in); free(c.r);
}

Test(avgpool_backward, adjoint_of_forward_with_and_without_pad_in_divisor)
{
    check_avgpool("3x3/2 pad 1 9x8", pool_geom(2, 3, 9, 8, 3, 2, 1, 1, 1, 1, 0), 501);
    /* ceil mode: the last windows overhang the padded input, so the divisor is clipped */
    check_avgpool("3x3/2 pad 1 ceil 8x10", pool_geom(2, 2, 8, 10, 3, 2, 1, 1, 1, 1, 1), 502);
    check_avgpool("3x3/2 asym pad ceil 11x7", pool_geom(1, 3, 11, 7, 3, 2, 0, 1, 1, 0, 1), 503);
    check_avgpool("2x2/2 no pad 6x7", pool_geom(2, 2, 6, 7, 2, 2, 0, 0, 0, 0, 0), 504);
}

/* ---- adaptive average pool ---- */

typedef struct adapt_ctx {
    int planes, h, w, oh, ow;
    double *in, *r;
} adapt_ctx;

static double adaptive_loss(const void *vc)
{
    const adapt_ctx *c = vc;
    double l = 0;
    for (int p = 0; p < c->planes; p++)
        for (int i = 0; i < c->oh; i++)
            for (int j = 0; j < c->ow; j++) {
                const int y0 = (int)floor((double)i * c->h / c->oh), y1 = (int)ceil((double)(i + 1) * c->h / c->oh);
                const int x0 = (int)floor((double)j * c->w / c->ow), x1 = (int)ceil((double)(j + 1) * c->w / c->ow);
                double s = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        s += c->in[((size_t)p * c->h + y) * c->w + x];
                l += s / ((y1 - y0) * (x1 - x0)) * c->r[((size_t)p * c->oh + i) * c->ow + j];
            }
    return l;
}

static void check_adaptive(int n, int ch, int h, int w, int oh, int ow, uint64_t seed)
{
    const size_t nin = (size_t)n * ch * h * w, nout = (size_t)n * ch * oh * ow;
    float *in = falloc(nin), *r = falloc(nout), *din = falloc(nin);
    tu_fill_uniform(in, nin, seed, -1, 1);
    tu_fill_uniform(r, nout, seed + 1, -1, 1);
    fill_nan(din, nin);
    zf_adaptive_avgpool_backward(din, r, n, ch, h, w, oh, ow);
    adapt_ctx c = {n * ch, h, w, oh, ow, to_double(in, nin), to_double(r, nout)};
    char what[96];
    snprintf(what, sizeof what, "adaptive avgpool %dx%d -> %dx%d", h, w, oh, ow);
    check_grad(what, din, adaptive_loss, &c, c.in, nin, 4000);
    free(in); free(r); free(din); free(c.in); free(c.r);
}

Test(adaptive_avgpool_backward, overlapping_bins_are_the_gradient)
{
    check_adaptive(2, 3, 5, 5, 3, 3, 601);
    check_adaptive(2, 2, 13, 13, 6, 6, 602);
    check_adaptive(1, 2, 7, 5, 3, 2, 603);
    check_adaptive(1, 1, 4, 4, 6, 6, 604); /* upsampling: bins repeat inputs */
}

/* ---- LRN ---- */

typedef struct lrn_ctx {
    int n, c, hw;
    zf_lrn_params p;
    double *in, *r;
} lrn_ctx;

static double lrn_loss(const void *vc)
{
    const lrn_ctx *c = vc;
    const double a = (double)c->p.alpha / c->p.size;
    double l = 0;
    for (int img = 0; img < c->n; img++)
        for (int i = 0; i < c->c; i++)
            for (int q = 0; q < c->hw; q++) {
                double s = 0;
                for (int j = i - c->p.front; j < i - c->p.front + c->p.size; j++)
                    if (j >= 0 && j < c->c) {
                        const double x = c->in[((size_t)img * c->c + j) * c->hw + q];
                        s += x * x;
                    }
                const size_t o = ((size_t)img * c->c + i) * c->hw + q;
                l += c->in[o] * pow(c->p.k + a * s, -(double)c->p.beta) * c->r[o];
            }
    return l;
}

static void check_lrn(const char *name, zf_lrn_params p, uint64_t seed)
{
    const int n = 2, ch = 7, hw = 15;
    const size_t cnt = (size_t)n * ch * hw;
    float *in = falloc(cnt), *r = falloc(cnt), *din = falloc(cnt);
    tu_fill_uniform(in, cnt, seed, -2, 2);
    tu_fill_uniform(r, cnt, seed + 1, -1, 1);
    fill_nan(din, cnt);
    zf_lrn_backward(din, r, in, n, ch, hw, &p);
    lrn_ctx c = {n, ch, hw, p, to_double(in, cnt), to_double(r, cnt)};
    char what[96];
    snprintf(what, sizeof what, "lrn %s", name);
    check_grad(what, din, lrn_loss, &c, c.in, cnt, 4000);
    free(in); free(r); free(din); free(c.in); free(c.r);
}

Test(lrn_backward, cross_channel_terms_match_finite_differences)
{
    /* alpha large enough that the cross-channel term is a sizeable part of the gradient */
    check_lrn("size 5 (Caffe = PyTorch), beta 0.75", (zf_lrn_params){5, 2, 2.0f, 0.75f, 1.0f}, 701);
    check_lrn("size 5, beta 0.6, k 2", (zf_lrn_params){5, 2, 1.5f, 0.6f, 2.0f}, 702);
    check_lrn("size 4, Caffe front 1", (zf_lrn_params){4, 1, 2.0f, 0.75f, 1.0f}, 703);
    check_lrn("size 4, PyTorch front 2", (zf_lrn_params){4, 2, 2.0f, 0.75f, 1.0f}, 704);
}

/* ---- dropout ---- */

Test(dropout, kept_fraction_scale_and_backward)
{
    const size_t n = 200003;
    float *in = falloc(n), *out = falloc(n), *r = falloc(n), *din = falloc(n);
    uint8_t *mask = malloc(n);
    cr_assert(mask);
    tu_fill_uniform(in, n, 801, -1, 1);
    tu_fill_uniform(r, n, 802, -1, 1);
    const float ps[] = {0.0f, 0.1f, 0.5f, 0.8f};
    for (size_t t = 0; t < sizeof ps / sizeof ps[0]; t++) {
        const float p = ps[t];
        const double scale = 1.0 / (1.0 - (double)p);
        memset(mask, 7, n); /* neither 0 nor 1: every entry must be written */
        zf_dropout_forward_train(out, mask, in, n, p, 1234 + t);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            cr_assert(mask[i] == 0 || mask[i] == 1, "p=%g: mask[%zu] = %d", p, i, mask[i]);
            kept += mask[i];
            const double want = mask[i] ? in[i] * scale : 0.0;
            cr_assert(fabs(out[i] - want) <= 1e-6 * fabs(want), "p=%g: out[%zu] = %g, want %g", p, i, out[i],
                      want);
        }
        /* binomial: within 5 standard deviations of n(1-p) */
        const double mean = n * (1.0 - p), sd = sqrt(n * p * (1.0 - p));
        cr_expect(fabs(kept - mean) <= 5 * sd + 1e-9, "p=%g: kept %zu of %zu, expected %.0f +- %.0f", p, kept,
                  n, mean, sd);
        fill_nan(din, n);
        zf_dropout_backward(din, r, mask, n, p);
        for (size_t i = 0; i < n; i++) {
            const double want = mask[i] ? r[i] * scale : 0.0;
            cr_assert(fabs(din[i] - want) <= 1e-6 * fabs(want), "p=%g: din[%zu] = %g, want %g", p, i, din[i],
                      want);
        }
    }
    free(in); free(out); free(r); free(din); free(mask);
}

Test(dropout, mask_depends_on_seed_only_not_threads_or_aliasing)
{
    const size_t n = 300007;
    const float p = 0.5f;
    float *in = falloc(n), *out = falloc(n), *io = falloc(n);
    uint8_t *m1 = malloc(n), *m2 = malloc(n), *m3 = malloc(n);
    cr_assert(m1 && m2 && m3);
    tu_fill_uniform(in, n, 811, -1, 1);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    zf_dropout_forward_train(out, m1, in, n, p, 42);
    omp_set_num_threads(threads > 1 ? threads : 2);
    memcpy(io, in, sizeof(float) * n);
    zf_dropout_forward_train(io, m2, io, n, p, 42); /* in place, more threads */
    omp_set_num_threads(threads);
    cr_expect(memcmp(m1, m2, n) == 0, "same seed, different thread count: different masks");
    cr_expect(memcmp(out, io, sizeof(float) * n) == 0, "in-place output differs");
    /* the next seed gives an unrelated mask, not the same stream shifted: agreement near
     * p^2 + (1-p)^2 = 1/2 at every small shift */
    zf_dropout_forward_train(out, m3, in, n, p, 43);
    for (int shift = -3; shift <= 3; shift++) {
        size_t same = 0, pairs = 0;
        for (size_t i = 3; i + 3 < n; i++, pairs++)
            same += m1[i] == m3[i + shift];
        const double sd = sqrt(pairs * 0.25);
        cr_expect(fabs(same - 0.5 * pairs) <= 5 * sd, "seed 42 and seed 43 shifted by %d agree on %zu of %zu",
                  shift, same, pairs);
    }
    /* consecutive elements are not correlated: pairs (keep, keep) near n/4 */
    size_t both = 0;
    for (size_t i = 0; i + 1 < n; i++)
        both += m1[i] && m1[i + 1];
    cr_expect(fabs(both - 0.25 * (n - 1)) <= 5 * sqrt((n - 1) * 0.25 * 0.75 * 3), "kept pairs %zu of %zu", both,
              n - 1);
    free(in); free(out); free(io); free(m1); free(m2); free(m3);
}

/* ---- softmax + cross-entropy ---- */

typedef struct xent_ctx {
    int n, k;
    const int32_t *labels;
    double *x;
} xent_ctx;

/* Mean cross-entropy through a stable float64 log-sum-exp. */
static double xent_loss(const void *vc)
{
    const xent_ctx *c = vc;
    double l = 0;
    for (int i = 0; i < c->n; i++) {
        const double *x = c->x + (size_t)i * c->k;
        double m = x[0];
        for (int j = 1; j < c->k; j++)
            m = fmax(m, x[j]);
        double s = 0;
        for (int j = 0; j < c->k; j++)
            s += exp(x[j] - m);
        l += m + log(s) - x[c->labels[i]];
    }
    return l / c->n;
}

static void check_xent(const char *name, int n, int k, float lo, float hi, uint64_t seed)
{
    const size_t cnt = (size_t)n * k;
    float *x = falloc(cnt), *prob = falloc(cnt), *dx = falloc(cnt), *dx2 = falloc(cnt), *u = falloc(n);
    int32_t *labels = malloc(sizeof(int32_t) * n);
    cr_assert(labels);
    tu_fill_uniform(x, cnt, seed, lo, hi);
    tu_fill_uniform(u, n, seed + 1, 0, 1);
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)(u[i] * k) % k;
    fill_nan(prob, cnt);
    fill_nan(dx, cnt);
    const double loss = zf_softmax_xent(prob, dx, x, labels, n, k);
    xent_ctx c = {n, k, labels, to_double(x, cnt)};
    const double ref = xent_loss(&c);
    cr_expect(isfinite(loss) && fabs(loss - ref) <= 1e-9 * fmax(1.0, fabs(ref)), "xent %s: loss %.12g, want %.12g",
              name, loss, ref);
    if (getenv("ZF_GRAD_REPORT"))
        cr_log_info("xent %-39s loss rel err %.2e", name, fabs(loss - ref) / fmax(1.0, fabs(ref)));
    /* prob is the softmax */
    for (int i = 0; i < n; i++) {
        const double *xi = c.x + (size_t)i * k;
        double m = xi[0], s = 0;
        for (int j = 1; j < k; j++)
            m = fmax(m, xi[j]);
        for (int j = 0; j < k; j++)
            s += exp(xi[j] - m);
        for (int j = 0; j < k; j++) {
            const double want = exp(xi[j] - m) / s;
            cr_assert(fabs(prob[(size_t)i * k + j] - want) <= 1e-6 * want + 1e-30, "xent %s: prob[%d,%d] = %g, want %g",
                      name, i, j, prob[(size_t)i * k + j], want);
        }
    }
    char what[96];
    snprintf(what, sizeof what, "xent %s dlogits", name);
    check_grad(what, dx, xent_loss, &c, c.x, cnt, 4000);
    /* prob is optional */
    fill_nan(dx2, cnt);
    const double loss2 = zf_softmax_xent(NULL, dx2, x, labels, n, k);
    cr_expect(loss2 == loss && memcmp(dx, dx2, sizeof(float) * cnt) == 0, "xent %s: differs without prob", name);
    free(x); free(prob); free(dx); free(dx2); free(u); free(labels); free(c.x);
}

Test(softmax_xent, loss_is_log_sum_exp_and_gradient_matches_finite_differences)
{
    check_xent("batch 5, 7 classes", 5, 7, -3, 3, 901);
    check_xent("batch 1, 10 classes", 1, 10, -3, 3, 902);
    check_xent("batch 8, 1000 classes", 8, 1000, -5, 5, 903);
}

Test(softmax_xent, large_logits_do_not_overflow)
{
    /* exp(1000) overflows even in double: only a max-subtracted softmax survives */
    check_xent("logits 1000..1030", 4, 6, 1000, 1030, 911);
    check_xent("logits -1e4..1e4", 3, 5, -1e4f, 1e4f, 912);
}
