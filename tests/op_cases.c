/* The shared op cases and their float64 references (op_cases.h). */
#include "op_cases.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* n, c, h, w, k, oh, ow (from the pads), kh, kw, sh, sw, pt, pl, groups; then pb, pr */
const tu_conv_case tu_conv_cases[] = {
    {"11x11/4 pad 2", {1, 3, 23, 19, 5, 0, 0, 11, 11, 4, 4, 2, 2, 1}, 2, 2, 1},
    {"5x5/1 groups 2", {2, 6, 13, 13, 10, 0, 0, 5, 5, 1, 1, 2, 2, 2}, 2, 2, 2},
    {"3x3/1 odd map, groups 2", {3, 4, 9, 11, 6, 0, 0, 3, 3, 1, 1, 1, 1, 2}, 1, 1, 3},
    {"7x7/2", {2, 3, 17, 15, 7, 0, 0, 7, 7, 2, 2, 1, 1, 1}, 1, 1, 4},
    {"3x3/2 no pad, groups 3", {5, 6, 7, 7, 9, 0, 0, 3, 3, 2, 2, 0, 0, 3}, 0, 0, 5},
    {"kernel as big as the input", {1, 2, 5, 6, 3, 0, 0, 5, 5, 1, 1, 0, 0, 1}, 0, 0, 6},
    {"37 small images", {37, 4, 9, 9, 6, 0, 0, 3, 3, 1, 1, 1, 1, 2}, 1, 1, 7},
    /* rows wide enough for im2col's eight-at-a-time strided copies, with ragged ends */
    {"wide rows 11x11/4", {2, 3, 41, 83, 4, 0, 0, 11, 11, 4, 4, 2, 2, 1}, 2, 2, 61},
    {"wide rows 7x7/2", {1, 3, 30, 57, 5, 0, 0, 7, 7, 2, 2, 1, 1, 1}, 1, 1, 62},
    {"wide rows 3x3/2", {2, 4, 21, 44, 6, 0, 0, 3, 3, 2, 2, 0, 0, 2}, 0, 0, 63},
    /* padding unequal at the bottom and right (ONNX pads): less, and more */
    {"3x3/2 less pad at the end", {2, 4, 13, 13, 6, 0, 0, 3, 3, 2, 2, 1, 1, 2}, 0, 0, 8},
    {"5x5/1 more pad at the end", {1, 3, 14, 15, 5, 0, 0, 5, 5, 1, 1, 0, 0, 1}, 2, 3, 9},
    /* the built-in nets' layers (one image: the float64 loops take seconds) */
    {"alexnet conv1", {1, 3, 224, 224, 64, 0, 0, 11, 11, 4, 4, 2, 2, 1}, 2, 2, 10},
    {"alexnet-caffe conv2", {1, 96, 27, 27, 256, 0, 0, 5, 5, 1, 1, 2, 2, 2}, 2, 2, 11},
    {"zfnet conv1", {1, 3, 224, 224, 96, 0, 0, 7, 7, 2, 2, 1, 1, 1}, 1, 1, 12},
    {"alexnet-caffe conv4", {1, 384, 13, 13, 256, 0, 0, 3, 3, 1, 1, 1, 1, 2}, 1, 1, 13},
};
const size_t tu_n_conv_cases = sizeof tu_conv_cases / sizeof tu_conv_cases[0];

zf_conv_geom tu_conv_case_geom(const tu_conv_case *c)
{
    zf_conv_geom g = c->g;
    g.oh = zf_window_out(g.h, g.kh, g.sh, g.pt, c->pb, 0);
    g.ow = zf_window_out(g.w, g.kw, g.sw, g.pl, c->pr, 0);
    return g;
}

/* n, c, h, w, window (kh, kw, sh, sw, pt, pl, pb, pr), ceil mode, ties, the average counts the pad */
const tu_pool_case tu_pool_cases[] = {
    {"3x3/2", 2, 3, 13, 13, {3, 3, 2, 2, 0, 0, 0, 0}, 0, 0, 0, 11},
    {"3x3/2 ties", 2, 3, 13, 13, {3, 3, 2, 2, 0, 0, 0, 0}, 0, 1, 1, 12},
    {"zfnet pool1", 1, 4, 110, 110, {3, 3, 2, 2, 1, 1, 1, 1}, 0, 1, 1, 13},
    {"zfnet pool1 without the pad", 1, 4, 110, 110, {3, 3, 2, 2, 1, 1, 1, 1}, 0, 0, 0, 20},
    {"ceil mode", 3, 2, 14, 11, {3, 3, 2, 2, 0, 0, 0, 0}, 1, 1, 1, 14},
    {"bvlc_alexnet pool5 (ONNX pads)", 2, 2, 13, 13, {3, 3, 2, 2, 0, 0, 1, 1}, 0, 1, 0, 15},
    {"2x2/2", 1, 1, 6, 6, {2, 2, 2, 2, 0, 0, 0, 0}, 0, 1, 1, 16},
    {"rectangular, ceil mode, pads", 1, 2, 14, 11, {3, 2, 2, 1, 0, 1, 0, 1}, 1, 0, 0, 21},
    /* the vectorised paths (stride 1 and 2, eight outputs at a time) with ragged ends */
    {"3x3/1 pad 1", 1, 3, 37, 45, {3, 3, 1, 1, 1, 1, 1, 1}, 0, 1, 1, 17},
    {"5x5/2 pad 2 ceil, ties", 2, 2, 30, 41, {5, 5, 2, 2, 2, 2, 2, 2}, 1, 1, 0, 18},
    {"5x5/2 pad 2 ceil", 1, 2, 30, 41, {5, 5, 2, 2, 2, 2, 2, 2}, 1, 0, 1, 19},
    {"alexnet pool1 at batch 5", 5, 7, 55, 55, {3, 3, 2, 2, 0, 0, 0, 0}, 0, 0, 0, 22},
};
const size_t tu_n_pool_cases = sizeof tu_pool_cases / sizeof tu_pool_cases[0];

zf_pool_geom tu_pool_case_geom(const tu_pool_case *c)
{
    const zf_window w = c->win;
    zf_pool_geom g = {c->n, c->c, c->h, c->w, zf_window_out(c->h, w.kh, w.sh, w.pt, w.pb, c->ceil_mode),
                      zf_window_out(c->w, w.kw, w.sw, w.pl, w.pr, c->ceil_mode), w.kh, w.kw, w.sh, w.sw, w.pt, w.pl,
                      w.pb, w.pr};
    return g;
}

void tu_pool_case_input(const tu_pool_case *c, float *in)
{
    const size_t count = (size_t)c->n * c->c * c->h * c->w;
    tu_fill_uniform(in, count, c->seed, -2, 2);
    if (c->ties)
        for (size_t i = 0; i < count; i++)
            in[i] = in[i] < 0 ? 0.0f : floorf(in[i]);
}

double *tu_doubles(const float *x, size_t n)
{
    double *d = malloc(sizeof(double) * (n ? n : 1));
    cr_assert_not_null(d);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}


void tu_ref_conv(double *out, const double *in, const double *w, const double *bias, const zf_conv_geom *g)
{
    const int cg = g->c / g->groups, kg = g->k / g->groups;
    for (int n = 0; n < g->n; n++)
        for (int k = 0; k < g->k; k++)
            for (int oy = 0; oy < g->oh; oy++)
                for (int ox = 0; ox < g->ow; ox++) {
                    double s = bias ? bias[k] : 0.0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int ky = 0; ky < g->kh; ky++)
                            for (int kx = 0; kx < g->kw; kx++) {
                                const int iy = oy * g->sh - g->pt + ky, ix = ox * g->sw - g->pl + kx;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                    continue;
                                const int c = k / kg * cg + ci;
                                s += in[(((size_t)n * g->c + c) * g->h + iy) * g->w + ix] *
                                     w[(((size_t)k * cg + ci) * g->kh + ky) * g->kw + kx];
                            }
                    out[(((size_t)n * g->k + k) * g->oh + oy) * g->ow + ox] = s;
                }
}


void tu_ref_conv_f(double *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g)
{
    const size_t nin = (size_t)g->n * g->c * g->h * g->w, nw = (size_t)g->k * (g->c / g->groups) * g->kh * g->kw;
    double *din = tu_doubles(in, nin), *dw = tu_doubles(w, nw), *db = bias ? tu_doubles(bias, (size_t)g->k) : NULL;
    tu_ref_conv(out, din, dw, db, g);
    free(din);
    free(dw);
    free(db);
}


void tu_ref_conv_backward(double *din, double *dw, const float *in, const float *dout, const float *w,
                          const zf_conv_geom *g)
{
    const int cg = g->c / g->groups, kg = g->k / g->groups;
    memset(din, 0, sizeof(double) * (size_t)g->n * g->c * g->h * g->w);
    if (dw)
        memset(dw, 0, sizeof(double) * (size_t)g->k * cg * g->kh * g->kw);
    for (int n = 0; n < g->n; n++)
        for (int k = 0; k < g->k; k++)
            for (int oy = 0; oy < g->oh; oy++)
                for (int ox = 0; ox < g->ow; ox++) {
                    const double d = dout[(((size_t)n * g->k + k) * g->oh + oy) * g->ow + ox];
                    for (int ci = 0; ci < cg; ci++)
                        for (int ky = 0; ky < g->kh; ky++)
                            for (int kx = 0; kx < g->kw; kx++) {
                                const int iy = oy * g->sh - g->pt + ky, ix = ox * g->sw - g->pl + kx;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                    continue;
                                const size_t ii = (((size_t)n * g->c + k / kg * cg + ci) * g->h + iy) * g->w + ix;
                                const size_t wi = (((size_t)k * cg + ci) * g->kh + ky) * g->kw + kx;
                                din[ii] += d * w[wi];
                                if (dw)
                                    dw[wi] += d * in[ii];
                            }
                }
}

void tu_ref_maxpool(double *out, int32_t *switches, const float *in, const zf_pool_geom *g)
{
    for (int p = 0; p < g->n * g->c; p++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                int best = -1;
                for (int y = oy * g->sh - g->pt; y < oy * g->sh - g->pt + g->kh; y++)
                    for (int x = ox * g->sw - g->pl; x < ox * g->sw - g->pl + g->kw; x++)
                        if (y >= 0 && y < g->h && x >= 0 && x < g->w &&
                            (best < 0 || in[(size_t)p * g->h * g->w + y * g->w + x] >
                                             in[(size_t)p * g->h * g->w + best]))
                            best = y * g->w + x;
                const size_t o = ((size_t)p * g->oh + oy) * g->ow + ox;
                switches[o] = best;
                out[o] = best < 0 ? 0 : in[(size_t)p * g->h * g->w + best];
            }
}

void tu_ref_unpool(double *din, const float *dout, const int32_t *switches, const zf_pool_geom *g)
{
    memset(din, 0, sizeof(double) * g->n * g->c * g->h * g->w);
    for (int p = 0; p < g->n * g->c; p++)
        for (int i = 0; i < g->oh * g->ow; i++)
            din[(size_t)p * g->h * g->w + switches[(size_t)p * g->oh * g->ow + i]] +=
                dout[(size_t)p * g->oh * g->ow + i];
}

/* A window of the average along one axis: clipped to the input [lo, hi), and the extent that the
 * divisor counts with the padding. */
static void avg_axis(int o, int s, int k, int pad_lo, int pad_hi, int len, int *lo, int *hi, int *padded)
{
    const int start = o * s - pad_lo, end = start + k;
    *lo = start < 0 ? 0 : start;
    *hi = end < len ? end : len;
    *padded = (end < len + pad_hi ? end : len + pad_hi) - start;
}

/* Output (oy, ox)'s window, clipped to the input, and its divisor. */
static int avg_window(const zf_pool_geom *g, int oy, int ox, int count_include_pad, int *y0, int *y1, int *x0,
                      int *x1)
{
    int yp, xp;
    avg_axis(oy, g->sh, g->kh, g->pt, g->pb, g->h, y0, y1, &yp);
    avg_axis(ox, g->sw, g->kw, g->pl, g->pr, g->w, x0, x1, &xp);
    return count_include_pad ? yp * xp : (*y1 - *y0) * (*x1 - *x0);
}

void tu_ref_avgpool(double *out, const float *in, const zf_pool_geom *g, int count_include_pad)
{
    for (int p = 0; p < g->n * g->c; p++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                int y0, y1, x0, x1;
                const int div = avg_window(g, oy, ox, count_include_pad, &y0, &y1, &x0, &x1);
                double s = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        s += in[((size_t)p * g->h + y) * g->w + x];
                out[((size_t)p * g->oh + oy) * g->ow + ox] = div > 0 ? s / div : 0;
            }
}

void tu_ref_avgpool_backward(double *din, const float *dout, const zf_pool_geom *g, int count_include_pad)
{
    memset(din, 0, sizeof(double) * g->n * g->c * g->h * g->w);
    for (int p = 0; p < g->n * g->c; p++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                int y0, y1, x0, x1;
                const int div = avg_window(g, oy, ox, count_include_pad, &y0, &y1, &x0, &x1);
                const double d = div > 0 ? (double)dout[((size_t)p * g->oh + oy) * g->ow + ox] / div : 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        din[((size_t)p * g->h + y) * g->w + x] += d;
            }
}
