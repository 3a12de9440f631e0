/* Feature visualisation by optimisation: Yosinski et al.'s regularised gradient ascent on pixels and
 * Lucid's decorrelated Fourier parameterisation, on the gradient to the input that the
 * attribution code's backward pass gives; and the small FFT (mixed radix 2, 3, 5, 7, Bluestein for
 * the rest, in double) the parameterisation needs for 224, 112 and 227 pixel images. */
#include "zf/optimize.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "zf/alloc.h"
#include "zf/tensor.h"
#include "util_internal.h"

typedef double complex cplx;

/* ---- FFT ------------------------------------------------------------------------------------ */

/* A forward DFT of n points, X_k = sum_j x_j e^{-2 pi i jk / n}. */
typedef struct fft_plan {
    int n;
    cplx *tw;              /* e^{-2 pi i k / n}, k < n */
    cplx *scratch;         /* n */
    /* Bluestein, for n with a prime factor above 7: a convolution of length m (a power of 2) */
    int m;
    struct fft_plan *sub;
    cplx *chirp, *bhat, *buf; /* n, m, m */
} fft_plan;

static int smallest_factor(int n)
{
    static const int f[] = {4, 2, 3, 5, 7};
    for (int i = 0; i < 5; i++)
        if (n % f[i] == 0)
            return f[i];
    return 0;
}

static int smooth(int n)
{
    while (n > 1) {
        int f = smallest_factor(n);
        if (!f)
            return 0;
        n /= f;
    }
    return 1;
}

static void fft_plan_free(fft_plan *p)
{
    if (!p)
        return;
    fft_plan_free(p->sub);
    free(p->tw);
    free(p->scratch);
    free(p->chirp);
    free(p->bhat);
    free(p->buf);
    free(p);
}

static void fft_exec(fft_plan *p, cplx *x);

static fft_plan *fft_plan_new(int n)
{
    fft_plan *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n = n;
    const double two_pi = 6.283185307179586476925286766559;
    if (smooth(n)) {
        p->tw = malloc(sizeof(cplx) * (size_t)n);
        p->scratch = malloc(sizeof(cplx) * (size_t)n);
        if (!p->tw || !p->scratch) {
            fft_plan_free(p);
            return NULL;
        }
        for (int k = 0; k < n; k++)
            p->tw[k] = cexp(-I * two_pi * k / n);
        return p;
    }
    int m = 1;
    while (m < 2 * n - 1)
        m *= 2;
    p->m = m;
    p->sub = fft_plan_new(m);
    p->chirp = malloc(sizeof(cplx) * (size_t)n);
    p->bhat = calloc((size_t)m, sizeof(cplx));
    p->buf = malloc(sizeof(cplx) * (size_t)m);
    if (!p->sub || !p->chirp || !p->bhat || !p->buf) {
        fft_plan_free(p);
        return NULL;
    }
    /* chirp_k = e^{-pi i k^2 / n}, k^2 taken modulo 2n so that the angle stays exact */
    for (int k = 0; k < n; k++) {
        const long long k2 = (long long)k * k % (2LL * n);
        p->chirp[k] = cexp(-I * (two_pi / 2) * (double)k2 / n);
    }
    p->bhat[0] = conj(p->chirp[0]);
    for (int k = 1; k < n; k++)
        p->bhat[k] = p->bhat[m - k] = conj(p->chirp[k]);
    fft_exec(p->sub, p->bhat);
    return p;
}

/* Decimation in time: out (n points) = the DFT of in[0], in[stride], ..., of a transform whose
 * size divides the plan's. */
static void fft_rec(const fft_plan *p, cplx *out, const cplx *in, int n, int stride)
{
    if (n == 1) {
        out[0] = in[0];
        return;
    }
    const int r = smallest_factor(n), m = n / r, step = p->n / n;
    for (int q = 0; q < r; q++)
        fft_rec(p, out + q * m, in + q * stride, m, stride * r);
    cplx t[7];
    for (int k = 0; k < m; k++) {
        for (int q = 0; q < r; q++)
            t[q] = out[q * m + k] * p->tw[(size_t)q * k * step % (size_t)p->n];
        for (int s = 0; s < r; s++) {
            cplx acc = 0;
            for (int q = 0; q < r; q++)
                acc += t[q] * p->tw[(size_t)(q * s % r) * (size_t)(p->n / r)];
            out[s * m + k] = acc;
        }
    }
}

/* In place: x (n) = its forward DFT. */
static void fft_exec(fft_plan *p, cplx *x)
{
    const int n = p->n;
    if (!p->sub) {
        fft_rec(p, p->scratch, x, n, 1);
        memcpy(x, p->scratch, sizeof(cplx) * (size_t)n);
        return;
    }
    const int m = p->m;
    for (int k = 0; k < m; k++)
        p->buf[k] = k < n ? x[k] * p->chirp[k] : 0;
    fft_exec(p->sub, p->buf);
    /* the inverse transform of the product by conjugation: ifft(a) = conj(fft(conj(a))) / m */
    for (int k = 0; k < m; k++)
        p->buf[k] = conj(p->buf[k] * p->bhat[k]);
    fft_exec(p->sub, p->buf);
    for (int k = 0; k < n; k++)
        x[k] = p->chirp[k] * conj(p->buf[k]) / m;
}

/* The 2-D transforms of (h, w) planes: forward, or (inverse) the unnormalised e^{+i} sum. */
typedef struct fft2 {
    int h, w;
    fft_plan *ph, *pw;
    cplx *col;
} fft2;

static void fft2_free(fft2 *f)
{
    fft_plan_free(f->ph);
    fft_plan_free(f->pw);
    free(f->col);
    f->ph = f->pw = NULL;
    f->col = NULL;
}

static zf_status fft2_init(fft2 *f, int h, int w)
{
    f->h = h;
    f->w = w;
    f->ph = fft_plan_new(h);
    f->pw = fft_plan_new(w);
    f->col = malloc(sizeof(cplx) * (size_t)h);
    if (!f->ph || !f->pw || !f->col) {
        fft2_free(f);
        return zf_error(ZF_ERR_NOMEM, "out of memory for a %d x %d Fourier transform", h, w);
    }
    return ZF_OK;
}

static void fft2_exec(fft2 *f, cplx *x, int inverse)
{
    const int h = f->h, w = f->w;
    const size_t hw = (size_t)h * w;
    if (inverse)
        for (size_t i = 0; i < hw; i++)
            x[i] = conj(x[i]);
    for (int y = 0; y < h; y++)
        fft_exec(f->pw, x + (size_t)y * w);
    for (int xx = 0; xx < w; xx++) {
        for (int y = 0; y < h; y++)
            f->col[y] = x[(size_t)y * w + xx];
        fft_exec(f->ph, f->col);
        for (int y = 0; y < h; y++)
            x[(size_t)y * w + xx] = f->col[y];
    }
    if (inverse)
        for (size_t i = 0; i < hw; i++)
            x[i] = conj(x[i]);
}

/* s_k of the parameterisation (h, w): sqrt(hw) / max(f_k, 1 / max(h, w))^decay_power. */
static void spectrum_scale(double *s, int h, int w, double decay_power)
{
    const double fmin = 1.0 / (h > w ? h : w);
    for (int ky = 0; ky < h; ky++)
        for (int kx = 0; kx < w; kx++) {
            const double fy = (double)(ky < h - ky ? ky : h - ky) / h;
            const double fx = (double)(kx < w - kx ? kx : w - kx) / w;
            double f = sqrt(fy * fy + fx * fx);
            if (f < fmin)
                f = fmin;
            s[(size_t)ky * w + kx] = sqrt((double)h * w) / pow(f, decay_power);
        }
}

/* out (c, h, w) = Re(IFFT(scale * coef)) / (4 h w) per channel, coef (c, h, w, 2); spec (h w)
 * scratch. The one inverse transform both the public function and the optimisation use. */
static void fourier_planes(fft2 *f, cplx *spec, const double *scale, float *out, const float *coef, int c)
{
    const size_t hw = (size_t)f->h * f->w;
    for (int ch = 0; ch < c; ch++) {
        const float *z = coef + (size_t)ch * hw * 2;
        for (size_t k = 0; k < hw; k++)
            spec[k] = scale[k] * ((double)z[2 * k] + I * (double)z[2 * k + 1]);
        fft2_exec(f, spec, 1);
        for (size_t k = 0; k < hw; k++)
            out[(size_t)ch * hw + k] = (float)(creal(spec[k]) / (4.0 * (double)hw));
    }
}

zf_status zf_optimize_fourier_image(float *img, const float *coef, int c, int h, int w, double decay_power)
{
    if (c < 1 || h < 1 || w < 1)
        return zf_error(ZF_ERR_ARG, "a Fourier image of %d x %d x %d", c, h, w);
    const size_t hw = (size_t)h * w;
    fft2 f = {0};
    double *s = malloc(sizeof(double) * hw);
    cplx *x = malloc(sizeof(cplx) * hw);
    zf_status st = ZF_OK;
    if (!s || !x || (st = fft2_init(&f, h, w))) {
        st = st ? st : zf_error(ZF_ERR_NOMEM, "out of memory for a %d x %d Fourier image", h, w);
        goto done;
    }
    spectrum_scale(s, h, w, decay_power);
    fourier_planes(&f, x, s, img, coef, c);
done:
    fft2_free(&f);
    free(s);
    free(x);
    return st;
}

/* ---- Gaussian blur -------------------------------------------------------------------------- */

zf_status zf_optimize_blur(float *out, const float *in, int c, int h, int w, double sigma)
{
    const size_t hw = (size_t)h * w;
    if (sigma <= 0) {
        if (out != in)
            memmove(out, in, sizeof(float) * hw * (size_t)c);
        return ZF_OK;
    }
    const int r = (int)ceil(3 * sigma);
    double *k = malloc(sizeof(double) * (size_t)(2 * r + 1));
    double *t = malloc(sizeof(double) * hw);
    if (!k || !t) {
        free(k);
        free(t);
        return zf_error(ZF_ERR_NOMEM, "out of memory for a blur of %d x %d", h, w);
    }
    double sum = 0;
    for (int d = -r; d <= r; d++)
        sum += k[d + r] = exp(-(double)d * d / (2 * sigma * sigma));
    for (int d = 0; d <= 2 * r; d++)
        k[d] /= sum;
    for (int ch = 0; ch < c; ch++) {
        const float *p = in + (size_t)ch * hw;
        float *o = out + (size_t)ch * hw;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double a = 0;
                for (int d = -r; d <= r; d++) {
                    int xx = x + d;
                    xx = xx < 0 ? 0 : xx >= w ? w - 1 : xx;
                    a += k[d + r] * p[(size_t)y * w + xx];
                }
                t[(size_t)y * w + x] = a;
            }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double a = 0;
                for (int d = -r; d <= r; d++) {
                    int yy = y + d;
                    yy = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
                    a += k[d + r] * t[(size_t)yy * w + x];
                }
                o[(size_t)y * w + x] = (float)a;
            }
    }
    free(k);
    free(t);
    return ZF_OK;
}

/* ---- Settings ------------------------------------------------------------------------------- */

zf_optimize_params zf_optimize_defaults(zf_optimize_method method)
{
    zf_optimize_params p = {0};
    p.method = method;
    p.steps = 256;
    p.seed = 0;
    /* Yosinski et al. 2015, Table 1: decay 1e-4, blur of width 1.0 every 4 steps, no clipping */
    p.decay = 1e-4;
    p.blur_every = 4;
    p.blur_sigma = 1.0;
    p.norm_pct = 0;
    p.contrib_pct = 0;
    /* the paper has no jitter; on AlexNet (a stride-4 first layer) a few pixels of it early on
     * undo most of what each step gained */
    p.jitter = 0;
    /* Lucid's fft_image and standard_transforms: sd 0.01, 1/f, Adam at 0.05; yosinski's start: noise
     * of 1% of the pixel range */
    p.decay_power = 1.0;
    p.init_sd = 0.01;
    p.decorrelate = 1;
    p.clip = 0;
    p.tr_jitter = 8;
    p.tr_scale = 0.1;
    p.tr_rotate = 10;
    p.lr = method == ZF_OPTIMIZE_FOURIER ? 0.05 : 0.02;
    p.diversity = 0;
    p.diversity_layer = -1;
    return p;
}

zf_status zf_optimize_check(const zf_optimize_params *p)
{
    if (p->method != ZF_OPTIMIZE_YOSINSKI && p->method != ZF_OPTIMIZE_FOURIER)
        return zf_error(ZF_ERR_ARG, "unknown optimisation method %d", (int)p->method);
    if (p->steps < 1)
        return zf_error(ZF_ERR_ARG, "optimisation needs at least 1 step, got %d", p->steps);
    if (!(p->lr > 0) || !isfinite(p->lr))
        return zf_error(ZF_ERR_ARG, "the learning rate must be positive, got %g", p->lr);
    if (!(p->decay >= 0 && p->decay < 1))
        return zf_error(ZF_ERR_ARG, "the decay must be in [0, 1), got %g", p->decay);
    if (p->blur_every < 0 || !(p->blur_sigma >= 0 && p->blur_sigma <= 64))
        return zf_error(ZF_ERR_ARG, "a blur every %d steps of width %g", p->blur_every, p->blur_sigma);
    if (!(p->norm_pct >= 0 && p->norm_pct <= 100) || !(p->contrib_pct >= 0 && p->contrib_pct <= 100))
        return zf_error(ZF_ERR_ARG, "percentiles must be in [0, 100], got %g and %g", p->norm_pct, p->contrib_pct);
    if (p->jitter < 0 || p->tr_jitter < 0 || !(p->tr_scale >= 0 && p->tr_scale < 1) ||
        !(p->tr_rotate >= 0 && p->tr_rotate <= 180))
        return zf_error(ZF_ERR_ARG, "transformations out of range: jitter %d, %d, scale %g, rotation %g",
                        p->jitter, p->tr_jitter, p->tr_scale, p->tr_rotate);
    if (!(p->init_sd >= 0) || !isfinite(p->init_sd))
        return zf_error(ZF_ERR_ARG, "the start's standard deviation must be finite and >= 0, got %g", p->init_sd);
    if (!(p->decay_power >= 0 && p->decay_power <= 4))
        return zf_error(ZF_ERR_ARG, "the spectrum's decay power must be in [0, 4], got %g", p->decay_power);
    if (!(p->diversity >= 0) || !isfinite(p->diversity))
        return zf_error(ZF_ERR_ARG, "the diversity weight must be finite and >= 0, got %g", p->diversity);
    return ZF_OK;
}

/* ---- Lucid's diversity term -------------------------------------------------------------------- */

double zf_optimize_diversity(const float *a, int n, int c, int hw, const int *group, float *grad)
{
    const size_t cc = (size_t)c * c, per = (size_t)c * hw;
    double *g = malloc(sizeof(double) * cc * (size_t)n), *norm = malloc(sizeof(double) * (size_t)n);
    double *s = grad ? malloc(sizeof(double) * cc) : NULL;
    if (!g || !norm || (grad && !s)) {
        free(g), free(norm), free(s);
        return NAN;
    }
    /* each image's Gram matrix, normalised */
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; i++) {
        const float *ai = a + (size_t)i * per;
        double *gi = g + (size_t)i * cc, ss = 0;
        for (int p = 0; p < c; p++)
            for (int q = p; q < c; q++) {
                double v = 0;
                for (int k = 0; k < hw; k++)
                    v += (double)ai[(size_t)p * hw + k] * ai[(size_t)q * hw + k];
                gi[(size_t)p * c + q] = gi[(size_t)q * c + p] = v;
                ss += p == q ? v * v : 2 * v * v;
            }
        norm[i] = sqrt(ss);
        if (norm[i] > 0)
            for (size_t k = 0; k < cc; k++)
                gi[k] /= norm[i];
    }
    double d = 0;
    for (int i = 0; i < n; i++) {
        int m = 0;
        for (int j = 0; j < n; j++)
            m += !group || group[j] == group[i];
        /* s = (2 / m) sum over the others of the group of their G: dD/dG_i (each pair counts twice) */
        if (s)
            memset(s, 0, sizeof(double) * cc);
        for (int j = 0; j < n; j++) {
            if (j == i || (group && group[j] != group[i]))
                continue;
            const double *gi = g + (size_t)i * cc, *gj = g + (size_t)j * cc;
            double dot = 0;
            for (size_t k = 0; k < cc; k++)
                dot += gi[k] * gj[k];
            d += dot / m;
            if (s)
                for (size_t k = 0; k < cc; k++)
                    s[k] += 2.0 / m * gj[k];
        }
        if (!grad)
            continue;
        float *gr = grad + (size_t)i * per;
        const float *ai = a + (size_t)i * per;
        if (!(norm[i] > 0)) {
            memset(gr, 0, sizeof(float) * per);
            continue;
        }
        /* through the normalisation: M = (s - <s, G_i> G_i) / |G_i|, and through G = A A^T: 2 M A */
        const double *gi = g + (size_t)i * cc;
        double sg = 0;
        for (size_t k = 0; k < cc; k++)
            sg += s[k] * gi[k];
        for (size_t k = 0; k < cc; k++)
            s[k] = (s[k] - sg * gi[k]) / norm[i];
#pragma omp parallel for schedule(static) if (per > 65536)
        for (int p = 0; p < c; p++)
            for (int k = 0; k < hw; k++) {
                double v = 0;
                for (int q = 0; q < c; q++)
                    v += s[(size_t)p * c + q] * ai[(size_t)q * hw + k];
                gr[(size_t)p * hw + k] = (float)(2 * v);
            }
    }
    free(g);
    free(norm);
    free(s);
    return d;
}

/* ---- Random streams ------------------------------------------------------------------------- */

/* Word `counter` of the stream keyed by `key`. */
static inline uint64_t word(uint64_t key, uint64_t counter) { return zf_mix64(key + (counter + 1) * ZF_GOLDEN); }
/* A standard normal value (Box-Muller of words 2j and 2j + 1). */
static double normal(uint64_t key, uint64_t j)
{
    const double u1 = ((double)(word(key, 2 * j) >> 11) + 0.5) * 0x1p-53;
    const double u2 = (double)(word(key, 2 * j + 1) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925286766559 * u2);
}
/* A whole number in [-r, r]. */
static int uniform_int(uint64_t key, uint64_t counter, int r)
{
    return r <= 0 ? 0 : (int)(word(key, counter) % (uint64_t)(2 * r + 1)) - r;
}
/* Per-step draws start here, clear of the initial image's counters. */
#define STEP_BASE (1ULL << 48)

static uint64_t image_key(uint64_t seed, const zf_attr_target *t, int sample)
{
    uint64_t h = zf_mix64(seed + ZF_GOLDEN);
    h = zf_mix64(h ^ (uint32_t)t->channel);
    h = zf_mix64(h ^ ((uint64_t)(uint32_t)(t->y + 1) << 32 | (uint32_t)(t->x + 1)));
    return zf_mix64(h ^ (uint64_t)(uint32_t)sample);
}

/* ---- The pixel range and the colour space --------------------------------------------------- */

/* The RGB channel (0..2) behind input channel c. */
static int rgb_of(const zf_net *net, int c)
{
    return net->pre.order == ZF_COLOR_GREY ? 0 : net->pre.order == ZF_COLOR_BGR ? 2 - c : c;
}

/* Input channel c's value for pixel fraction u in [0, 1]: (u * scale - mean) / std. */
static inline float pre_value(const zf_net *net, int c, double u)
{
    const int k = rgb_of(net, c);
    return (float)((u * net->pre.scale - net->pre.mean[k]) / net->pre.std[k]);
}

/* Lucid's colour_correlation_svd_sqrt divided by its largest column norm. */
static void colour_matrix(double m[3][3])
{
    static const double svd_sqrt[3][3] = {{0.26, 0.09, 0.02}, {0.27, 0.00, -0.05}, {0.27, -0.09, 0.03}};
    double top = 0;
    for (int j = 0; j < 3; j++) {
        double n = 0;
        for (int i = 0; i < 3; i++)
            n += svd_sqrt[i][j] * svd_sqrt[i][j];
        top = sqrt(n) > top ? sqrt(n) : top;
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            m[i][j] = svd_sqrt[i][j] / top;
}

/* ---- The run -------------------------------------------------------------------------------- */

typedef struct run {
    zf_net *net;
    const zf_optimize_params *p;
    int n, c, h, w;
    size_t hw, in;
    float *x;        /* (n, in): the images (Yosinski) or the RGB fractions u (Fourier) */
    float *xin;      /* (n, in): the batch the net sees */
    float *g;        /* (n, in): its gradient */
    float *dtop;
    float *tmp;      /* in */
    /* Fourier */
    float *coef, *adam_m, *adam_v; /* (n, c, h, w, 2) */
    double *scale;   /* hw */
    cplx *spec;      /* (n, hw) */
    fft2 *f;         /* n: each image its own plans and scratch, so that images run in parallel */
    double cm[3][3];
    uint64_t *key;
} run;

static void run_free(run *r)
{
    zf_free(r->x);
    zf_free(r->xin);
    zf_free(r->g);
    zf_free(r->dtop);
    free(r->tmp);
    zf_free(r->coef);
    zf_free(r->adam_m);
    zf_free(r->adam_v);
    free(r->scale);
    free(r->spec);
    for (int i = 0; r->f && i < r->n; i++)
        fft2_free(&r->f[i]);
    free(r->f);
    free(r->key);
}

/* The targets' units in `layer` (theirs or the one below): their values of the last forward into
 * value (n), and d value / d (the layer's output) into dtop: 1 at the unit, or at every position of
 * the channel for its total. */
static void seed_targets(float *dtop, double *value, const zf_net *net, const zf_attr_target *t, int layer,
                         int n)
{
    const zf_layer *l = &net->layers[layer];
    const size_t per = (size_t)zf_layer_out_size(l), hw = (size_t)l->out_h * l->out_w;
    memset(dtop, 0, sizeof(float) * per * (size_t)n);
    for (int i = 0; i < n; i++) {
        float *d = dtop + (size_t)i * per + (size_t)t[i].channel * hw;
        const float *a = net->acts[layer] + (size_t)i * per + (size_t)t[i].channel * hw;
        double v = 0;
        if (t[i].y >= 0) {
            const size_t at = (size_t)t[i].y * l->out_w + t[i].x;
            d[at] = 1.0f;
            v = a[at];
        } else {
            for (size_t q = 0; q < hw; q++) {
                d[q] = 1.0f;
                v += a[q];
            }
        }
        value[i] = v;
    }
}

/* The value at the nearest rank `pct` percent of v (n values; sorted in place). */
static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}
static float percentile(float *v, size_t n, double pct)
{
    qsort(v, n, sizeof(float), cmp_float);
    size_t rank = (size_t)ceil(pct / 100.0 * (double)n);
    return v[rank ? rank - 1 : 0];
}

/* Zeroes the pixels (every channel) of x (c, h, w) whose score is below the pct-th percentile of the
 * scores: with g NULL a pixel's norm over the channels, else the absolute value of its contribution
 * x . g (Yosinski et al.'s two clippings). */
static void clip_pixels(run *r, float *x, const float *g, double pct)
{
    const size_t hw = r->hw;
    for (size_t q = 0; q < hw; q++) {
        double s = 0;
        for (int c = 0; c < r->c; c++)
            s += (double)x[c * hw + q] * (g ? g : x)[c * hw + q];
        r->tmp[q] = (float)(g ? fabs(s) : sqrt(s));
    }
    float *sorted = r->tmp + hw;
    memcpy(sorted, r->tmp, sizeof(float) * hw);
    const float cut = percentile(sorted, hw, pct);
    for (size_t q = 0; q < hw; q++)
        if (r->tmp[q] < cut)
            for (int c = 0; c < r->c; c++)
                x[c * hw + q] = 0;
}

/* Yosinski et al.'s regulariser r_theta on image x (c, h, w) after a step with gradient g, at step
 * t (counted from 1): decay, blur every blur_every steps, clipping of pixels of small norm and of
 * small contribution, then the valid pixel range. */
static zf_status regularise(run *r, float *x, const float *g, int t)
{
    const zf_optimize_params *p = r->p;
    const size_t hw = r->hw;
    zf_status st;
    if (p->decay > 0)
        for (size_t i = 0; i < r->in; i++)
            x[i] = (float)((1.0 - p->decay) * x[i]);
    if (p->blur_every > 0 && p->blur_sigma > 0 && t % p->blur_every == 0 &&
        (st = zf_optimize_blur(x, x, r->c, r->h, r->w, p->blur_sigma)))
        return st;
    if (p->norm_pct > 0)
        clip_pixels(r, x, NULL, p->norm_pct);
    if (p->contrib_pct > 0)
        clip_pixels(r, x, g, p->contrib_pct);
    for (int c = 0; c < r->c; c++) {
        const float lo = pre_value(r->net, c, 0.0), hi = pre_value(r->net, c, 1.0);
        float *xc = x + c * hw;
        for (size_t q = 0; q < hw; q++)
            xc[q] = xc[q] < lo ? lo : xc[q] > hi ? hi : xc[q];
    }
    return ZF_OK;
}

/* Input (c, h, w) rolled by (dy, dx) (circularly) into out; dy = dx = 0 copies. */
static void roll(float *out, const float *in, int c, int h, int w, int dy, int dx)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++) {
            const int sy = ((y - dy) % h + h) % h;
            for (int x = 0; x < w; x++) {
                const int sx = ((x - dx) % w + w) % w;
                out[((size_t)ch * h + y) * w + x] = in[((size_t)ch * h + sy) * w + sx];
            }
        }
}

/* One affine transformation: output pixel p samples the source at c0 + A (p - c0 - t). */
typedef struct affine {
    double a00, a01, a10, a11, ty, tx, cy, cx;
} affine;

static affine affine_draw(const run *r, uint64_t key, int step)
{
    const zf_optimize_params *p = r->p;
    const uint64_t base = STEP_BASE + (uint64_t)step * 8;
    const int dy = uniform_int(key, base, p->tr_jitter), dx = uniform_int(key, base + 1, p->tr_jitter);
    const double s = 1.0 + p->tr_scale * uniform_int(key, base + 2, 5) / 5.0;
    const int deg = uniform_int(key, base + 3, (int)floor(p->tr_rotate));
    const double th = deg * 3.14159265358979323846 / 180.0;
    /* the inverse map: rotate by -th, scale by 1/s */
    affine a = {cos(th) / s, sin(th) / s, -sin(th) / s, cos(th) / s, dy, dx, (r->h - 1) / 2.0, (r->w - 1) / 2.0};
    return a;
}

/* Bilinear sampling of the planes `src` (c, h, w) through a; outside is `fill[c]`. With `back`,
 * the transpose instead: dsrc += the gradient dout scattered to the source pixels. */
static void warp(const run *r, const affine *a, float *out, const float *src, const float *fill, float *dsrc,
                 const float *dout)
{
    const int h = r->h, w = r->w;
    const size_t hw = r->hw;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const double py = y - a->cy - a->ty, px = x - a->cx - a->tx;
            const double sy = a->cy + a->a00 * py + a->a01 * px, sx = a->cx + a->a10 * py + a->a11 * px;
            const double fy = floor(sy), fx = floor(sx);
            const int y0 = (int)fy, x0 = (int)fx;
            const double ly = sy - fy, lx = sx - fx;
            const double wt[4] = {(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx};
            const int yy[4] = {y0, y0, y0 + 1, y0 + 1}, xx[4] = {x0, x0 + 1, x0, x0 + 1};
            const size_t o = (size_t)y * w + x;
            for (int ch = 0; ch < r->c; ch++) {
                if (dsrc) {
                    const double gq = dout[ch * hw + o];
                    for (int k = 0; k < 4; k++)
                        if (yy[k] >= 0 && yy[k] < h && xx[k] >= 0 && xx[k] < w)
                            dsrc[ch * hw + (size_t)yy[k] * w + xx[k]] += (float)(wt[k] * gq);
                } else {
                    double v = 0;
                    for (int k = 0; k < 4; k++)
                        v += wt[k] * (yy[k] >= 0 && yy[k] < h && xx[k] >= 0 && xx[k] < w
                                          ? src[ch * hw + (size_t)yy[k] * w + xx[k]]
                                          : fill[ch]);
                    out[ch * hw + o] = (float)v;
                }
            }
        }
}

/* Fourier: image i's RGB fractions u (c, h, w) from its coefficients, through the colour matrix
 * and the sigmoid (or the clamp); z (c, h, w) keeps the values before the squashing. */
static void fourier_render(run *r, int i, float *z)
{
    const size_t hw = r->hw;
    float *u = r->x + (size_t)i * r->in;
    fourier_planes(&r->f[i], r->spec + (size_t)i * hw, r->scale, z, r->coef + (size_t)i * r->in * 2, r->c);
    if (r->c == 3 && r->p->decorrelate)
        for (size_t q = 0; q < hw; q++) {
            const double t0 = z[q], t1 = z[hw + q], t2 = z[2 * hw + q];
            for (int ch = 0; ch < 3; ch++)
                z[ch * hw + q] = (float)(r->cm[ch][0] * t0 + r->cm[ch][1] * t1 + r->cm[ch][2] * t2);
        }
    for (size_t k = 0; k < r->in; k++)
        u[k] = r->p->clip ? (z[k] + 0.5f < 0 ? 0.0f : z[k] + 0.5f > 1 ? 1.0f : z[k] + 0.5f)
                          : (float)(1.0 / (1.0 + exp(-(double)z[k])));
}

/* Fourier: the gradient du (c, h, w) of the RGB fractions back to the coefficients' gradient
 * dcoef (c, h, w, 2); z as fourier_render left it. du is overwritten. */
static void fourier_backward(run *r, int i, float *dcoef, float *du, const float *z)
{
    const size_t hw = r->hw;
    const float *u = r->x + (size_t)i * r->in;
    for (size_t k = 0; k < r->in; k++) {
        const double zk = z[k] + 0.5;
        du[k] = r->p->clip ? (zk > 0 && zk < 1 ? du[k] : 0.0f) : (float)(du[k] * (double)u[k] * (1.0 - u[k]));
    }
    if (r->c == 3 && r->p->decorrelate)
        for (size_t q = 0; q < hw; q++) {
            const double d0 = du[q], d1 = du[hw + q], d2 = du[2 * hw + q];
            for (int ch = 0; ch < 3; ch++)
                du[ch * hw + q] = (float)(r->cm[0][ch] * d0 + r->cm[1][ch] * d1 + r->cm[2][ch] * d2);
        }
    /* t = Re(sum_k s_k Z_k e^{+i theta}) / (4 hw): dZ_k = s_k / (4 hw) * (sum dt e^{-i theta}) */
    for (int ch = 0; ch < r->c; ch++) {
        cplx *spec = r->spec + (size_t)i * hw;
        for (size_t k = 0; k < hw; k++)
            spec[k] = du[ch * hw + k];
        fft2_exec(&r->f[i], spec, 0);
        float *dc = dcoef + (size_t)ch * hw * 2;
        for (size_t k = 0; k < hw; k++) {
            const cplx v = spec[k] * (r->scale[k] / (4.0 * (double)hw));
            dc[2 * k] = (float)creal(v);
            dc[2 * k + 1] = (float)cimag(v);
        }
    }
}

/* Fourier: one step of image i: its gradient (in r->g) through the preprocessing and the warp
 * `a` back to its coefficients, and Adam's ascent on them; z the values fourier_render left, du and
 * dcoef its scratch (in, 2 in). */
static void fourier_step(run *r, int i, int t, const affine *a, const float *z, float *du, float *dcoef)
{
    const zf_net *net = r->net;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    float *gi = r->g + (size_t)i * r->in;
    /* d input / d u = scale / std */
    for (int c = 0; c < r->c; c++) {
        const double k = net->pre.scale / net->pre.std[rgb_of(net, c)];
        for (size_t q = 0; q < r->hw; q++)
            gi[c * r->hw + q] = (float)(gi[c * r->hw + q] * k);
    }
    memset(du, 0, sizeof(float) * r->in);
    warp(r, a, NULL, NULL, NULL, du, gi);
    fourier_backward(r, i, dcoef, du, z);
    /* Adam, ascending */
    float *cf = r->coef + (size_t)i * r->in * 2, *m = r->adam_m + (size_t)i * r->in * 2,
          *v = r->adam_v + (size_t)i * r->in * 2;
    const double c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t);
    for (size_t k = 0; k < r->in * 2; k++) {
        const double gk = dcoef[k];
        m[k] = (float)(b1 * m[k] + (1 - b1) * gk);
        v[k] = (float)(b2 * v[k] + (1 - b2) * gk * gk);
        cf[k] = (float)(cf[k] + r->p->lr * (m[k] / c1) / (sqrt(v[k] / c2) + eps));
    }
}

zf_status zf_optimize_run(zf_backprop *b, float *images, double *trace, const zf_attr_target *targets,
                          const int *sample, int n, const zf_optimize_params *p, zf_optimize_progress progress,
                          void *ctx)
{
    zf_net *net = b->net;
    zf_status st = zf_optimize_check(p);
    if (st)
        return st;
    if (n < 1 || n > b->batch)
        return zf_error(ZF_ERR_ARG, "%s: %d images to optimise with buffers for %d", net->arch, n, b->batch);
    for (int i = 0; i < n; i++) {
        if ((st = zf_attr_target_check(net, &targets[i])))
            return st;
        if (targets[i].layer != targets[0].layer)
            return zf_error(ZF_ERR_ARG, "%s: the images of one batch must share their target's layer (%s, %s)",
                            net->arch, net->layers[targets[0].layer].name, net->layers[targets[i].layer].name);
    }
    const int fourier = p->method == ZF_OPTIMIZE_FOURIER;
    if (fourier && net->in_c != 1 && net->in_c != 3)
        return zf_error(ZF_ERR_ARG, "%s: the Fourier parameterisation needs 1 or 3 input channels, not %d",
                        net->arch, net->in_c);
    if (fourier && zf_net_in_size(net) != (int64_t)(net->pre.order == ZF_COLOR_GREY ? 1 : 3) * net->in_h * net->in_w)
        return zf_error(ZF_ERR_ARG, "%s: %d input channels do not match its colour order", net->arch, net->in_c);
    /* A ReLU's target is ascended through its input, the value before the rectifier (as Lucid
     * optimises "_pre_relu" layers): the ReLU is monotone, and a unit rectified to 0 everywhere
     * has no gradient of its own to start from. */
    const int layer = net->layers[targets[0].layer].op == ZF_OP_RELU && targets[0].layer > 0
                          ? targets[0].layer - 1
                          : targets[0].layer;
    /* the diversity term's layer, and each image's group: the first image with its target */
    const int dl = p->diversity_layer < 0 || p->diversity_layer >= net->n_layers ? layer : p->diversity_layer;
    if (p->diversity > 0 && p->diversity_layer >= net->n_layers)
        return zf_error(ZF_ERR_ARG, "%s: no layer %d for the diversity term", net->arch, p->diversity_layer);
    if (p->diversity > 0 && dl > layer)
        return zf_error(ZF_ERR_ARG, "%s: the diversity term's layer %s is above the target's %s", net->arch,
                        net->layers[dl].name, net->layers[layer].name);
    const size_t dl_size = (size_t)zf_layer_out_size(&net->layers[dl]);
    int *group = p->diversity > 0 ? malloc(sizeof(int) * (size_t)n) : NULL;
    float *dgrad = p->diversity > 0 ? zf_alloc(sizeof(float) * dl_size * (size_t)n) : NULL;
    float *dsig = p->diversity > 0 && dl != layer ? zf_alloc(sizeof(float) * dl_size * (size_t)n) : NULL;
    if (p->diversity > 0 && (!group || !dgrad || (dl != layer && !dsig))) {
        free(group);
        zf_free(dgrad);
        zf_free(dsig);
        return zf_error(ZF_ERR_NOMEM, "out of memory for the diversity term of %d images", n);
    }
    for (int i = 0; group && i < n; i++) {
        group[i] = i;
        for (int j = 0; j < i && group[i] == i; j++)
            if (targets[j].channel == targets[i].channel && targets[j].y == targets[i].y &&
                targets[j].x == targets[i].x)
                group[i] = j;
    }
    run r = {.net = net, .p = p, .n = n, .c = net->in_c, .h = net->in_h, .w = net->in_w};
    r.hw = (size_t)r.h * r.w;
    r.in = r.hw * (size_t)r.c;
    const size_t all = r.in * (size_t)n;
    r.x = zf_alloc(sizeof(float) * all);
    r.xin = zf_alloc(sizeof(float) * all);
    r.g = zf_alloc(sizeof(float) * all);
    r.dtop = zf_alloc(sizeof(float) * (size_t)zf_layer_out_size(&net->layers[layer]) * (size_t)n);
    r.tmp = malloc(sizeof(float) * r.in * 2);
    r.key = malloc(sizeof(uint64_t) * (size_t)n);
    double *value = malloc(sizeof(double) * (size_t)n);
    int ok = r.x && r.xin && r.g && r.dtop && r.tmp && r.key && value;
    if (ok && fourier) {
        r.coef = zf_alloc(sizeof(float) * all * 2);
        r.adam_m = zf_alloc(sizeof(float) * all * 2);
        r.adam_v = zf_alloc(sizeof(float) * all * 2);
        r.scale = malloc(sizeof(double) * r.hw);
        r.spec = malloc(sizeof(cplx) * r.hw * (size_t)n);
        r.f = calloc((size_t)n, sizeof(fft2));
        ok = r.coef && r.adam_m && r.adam_v && r.scale && r.spec && r.f;
        for (int i = 0; ok && i < n; i++)
            if ((st = fft2_init(&r.f[i], r.h, r.w)))
                goto done;
    }
    if (!ok) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory to optimise %d images for %s", n, net->arch);
        goto done;
    }

    for (int i = 0; i < n; i++)
        r.key[i] = image_key(p->seed, &targets[i], sample ? sample[i] : 0);
    double range = 0; /* R: the widest channel's valid range */
    for (int c = 0; c < r.c; c++) {
        const double w = fabs((double)pre_value(net, c, 1.0) - pre_value(net, c, 0.0));
        range = w > range ? w : range;
    }
    if (fourier) {
        spectrum_scale(r.scale, r.h, r.w, p->decay_power);
        colour_matrix(r.cm);
        for (int i = 0; i < n; i++) {
            float *cf = r.coef + (size_t)i * r.in * 2;
            for (size_t k = 0; k < r.in * 2; k++)
                cf[k] = (float)(p->init_sd * normal(r.key[i], k));
        }
        memset(r.adam_m, 0, sizeof(float) * all * 2);
        memset(r.adam_v, 0, sizeof(float) * all * 2);
    } else {
        /* the mean colour (0) plus noise of init_sd (1%) of the range, so that no unit starts dead
         * everywhere; a net whose first layers stay silent at that little noise needs more */
        for (int i = 0; i < n; i++) {
            float *x = r.x + (size_t)i * r.in;
            for (size_t k = 0; k < r.in; k++)
                x[k] = (float)(p->init_sd * range * normal(r.key[i], k));
        }
    }

    float *z = NULL, *du = NULL, *dcoef = NULL;
    if (fourier) {
        z = malloc(sizeof(float) * all);
        du = malloc(sizeof(float) * all);
        dcoef = malloc(sizeof(float) * all * 2);
        if (!z || !du || !dcoef) {
            st = zf_error(ZF_ERR_NOMEM, "out of memory to optimise %d images for %s", n, net->arch);
            goto done_f;
        }
    }
    affine *af = malloc(sizeof(affine) * (size_t)n);
    int *jit = malloc(sizeof(int) * 2 * (size_t)n);
    if (!af || !jit) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory to optimise %d images for %s", n, net->arch);
        goto done_t;
    }
    for (int t = 1; t <= p->steps && !st; t++) {
        /* the batch the net sees; each image's work touches only its own buffers */
#pragma omp parallel for schedule(static) if (n > 1)
        for (int i = 0; i < n; i++) {
            float *xin = r.xin + (size_t)i * r.in;
            if (fourier) {
                fourier_render(&r, i, z + (size_t)i * r.in);
                af[i] = affine_draw(&r, r.key[i], t);
                const float grey[3] = {0.5f, 0.5f, 0.5f};
                warp(&r, &af[i], xin, r.x + (size_t)i * r.in, grey, NULL, NULL);
                for (int c = 0; c < r.c; c++)
                    for (size_t q = 0; q < r.hw; q++)
                        xin[c * r.hw + q] = pre_value(net, c, xin[c * r.hw + q]);
            } else {
                const uint64_t base = STEP_BASE + (uint64_t)t * 8;
                jit[2 * i] = uniform_int(r.key[i], base, p->jitter);
                jit[2 * i + 1] = uniform_int(r.key[i], base + 1, p->jitter);
                roll(xin, r.x + (size_t)i * r.in, r.c, r.h, r.w, jit[2 * i], jit[2 * i + 1]);
            }
        }
        if ((st = zf_backprop_forward(b, r.xin, n, layer, group ? dl : -1)))
            break;
        seed_targets(r.dtop, value, net, targets, layer, n);
        if (trace)
            for (int i = 0; i < n; i++)
                trace[(size_t)i * p->steps + (t - 1)] = value[i];
        if (group) {
            /* ascend target - diversity * D: its gradient at layer dl joins the target's there */
            const zf_layer *d = &net->layers[dl];
            if (isnan(zf_optimize_diversity(net->acts[dl], n, d->out_c, d->out_h * d->out_w, group, dgrad))) {
                st = zf_error(ZF_ERR_NOMEM, "out of memory for the diversity term of %d images", n);
                break;
            }
            float *sig = r.dtop;
            if (dl != layer && (st = zf_net_backward(b, sig = dsig, r.dtop, layer, dl, n, ZF_RELU_RULE_GRADIENT)))
                break;
            for (size_t k = 0; k < dl_size * (size_t)n; k++)
                sig[k] = (float)(sig[k] - p->diversity * dgrad[k]);
            if ((st = zf_net_backward(b, r.g, sig, dl, -1, n, ZF_RELU_RULE_GRADIENT)))
                break;
        } else if ((st = zf_net_backward(b, r.g, r.dtop, layer, -1, n, ZF_RELU_RULE_GRADIENT))) {
            break;
        }
        if (fourier) {
#pragma omp parallel for schedule(static) if (n > 1)
            for (int i = 0; i < n; i++)
                fourier_step(&r, i, t, &af[i], z + (size_t)i * r.in, du + (size_t)i * r.in,
                             dcoef + (size_t)i * r.in * 2);
        }
        for (int i = 0; i < n && !st && !fourier; i++) {
            float *gi = r.g + (size_t)i * r.in, *xi = r.x + (size_t)i * r.in;
            /* the gradient at the rolled image, rolled back */
            roll(r.tmp, gi, r.c, r.h, r.w, -jit[2 * i], -jit[2 * i + 1]);
            memcpy(gi, r.tmp, sizeof(float) * r.in);
            double mean = 0;
            for (size_t k = 0; k < r.in; k++)
                mean += fabs(gi[k]);
            mean /= (double)r.in;
            if (mean > 0) {
                const double step = p->lr * range / mean;
                for (size_t k = 0; k < r.in; k++)
                    xi[k] = (float)(xi[k] + step * gi[k]);
            }
            st = regularise(&r, xi, gi, t);
        }
        if (!st && progress && progress(ctx, t, p->steps))
            st = zf_error(ZF_ERR_INTERRUPTED, "%s: optimisation interrupted after %d of %d steps", net->arch, t,
                          p->steps);
    }
    if (!st) {
        for (int i = 0; i < n; i++) {
            float *out = images + (size_t)i * r.in;
            if (fourier) {
                fourier_render(&r, i, z);
                const float *u = r.x + (size_t)i * r.in;
                for (int c = 0; c < r.c; c++)
                    for (size_t q = 0; q < r.hw; q++)
                        out[c * r.hw + q] = pre_value(net, c, u[c * r.hw + q]);
            } else {
                memcpy(out, r.x + (size_t)i * r.in, sizeof(float) * r.in);
            }
        }
    }
done_t:
    free(af);
    free(jit);
done_f:
    free(z);
    free(du);
    free(dcoef);
done:
    free(value);
    free(group);
    zf_free(dgrad);
    zf_free(dsig);
    run_free(&r);
    return st;
}
