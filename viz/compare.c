/* The first-layer comparison of two models (Zeiler & Fergus section 4.1 made measurable): both
 * conv1 grids at the same size per tap, dead and near-dead counts, the per-filter RMS histogram,
 * the mean radial power spectrum with low/mid/high shares, and the never-firing fraction. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"
#include "zf/alloc.h"

#define MARGIN 16
#define N ZF_VIZ_SPECTRUM_N

zf_status zf_viz_filter_spectrum(zf_viz_spectrum *out, const float *w, int k, int c, int kh, int kw)
{
    return zf_viz_filter_spectrum_n(out, w, k, c, kh, kw, N);
}

zf_status zf_viz_filter_spectrum_n(zf_viz_spectrum *out, const float *w, int k, int c, int kh, int kw, int n)
{
    memset(out, 0, sizeof *out);
    if (!w || k < 1 || c < 1 || kh < 1 || kw < 1 || n < N || n > ZF_VIZ_SPECTRUM_NMAX || n % 2 || kh > n || kw > n)
        return zf_error(ZF_ERR_SHAPE, "spectrum: filters %dx%dx%dx%d padded to %d (kernels up to %dx%d, %d..%d even)", k,
                        c, kh, kw, n, n, n, N, ZF_VIZ_SPECTRUM_NMAX);
    const int nn = n * n;
    double *cs = zf_malloc(sizeof(double) * 2 * n), *sn = cs ? cs + n : NULL;
    /* Band and bin of every frequency sample, and the samples per bin. */
    int *band = zf_malloc(sizeof(int) * 2 * nn), *bin = band ? band + nn : NULL, per_bin[ZF_VIZ_SPECTRUM_BINS] = {0};
    double *re1 = zf_malloc(sizeof(double) * kh * n * 2), *im1 = re1 ? re1 + kh * n : NULL;
    double *pw = zf_malloc(sizeof(double) * nn);
    if (!cs || !band || !re1 || !pw) {
        free(cs);
        free(band);
        free(re1);
        free(pw);
        return zf_error(ZF_ERR_NOMEM, "spectrum: out of memory");
    }
    for (int i = 0; i < n; i++) {
        cs[i] = cos(2 * M_PI * i / n);
        sn[i] = sin(2 * M_PI * i / n);
    }
    for (int u = 0; u < n; u++) {
        for (int v = 0; v < n; v++) {
            double fy = (double)(u < n / 2 ? u : u - n) / n, fx = (double)(v < n / 2 ? v : v - n) / n;
            double r = sqrt(fx * fx + fy * fy);
            band[u * n + v] = r * 6 < 1 ? 0 : r * 3 < 1 ? 1 : 2;
            int b = (int)(r * N); /* bins of 1/32 cycle per pixel whatever the padding */
            bin[u * n + v] = b < ZF_VIZ_SPECTRUM_BINS ? b : ZF_VIZ_SPECTRUM_BINS - 1;
            per_bin[bin[u * n + v]]++;
        }
    }
    double bands[3] = {0};
    for (int f = 0; f < k; f++) {
        memset(pw, 0, sizeof(double) * nn);
        for (int ch = 0; ch < c; ch++) {
            const float *ker = w + ((int64_t)f * c + ch) * kh * kw;
            /* Along x for every kernel row, then along y: the zero-padded n x n DFT. */
            for (int y = 0; y < kh; y++) {
                for (int v = 0; v < n; v++) {
                    double re = 0, im = 0;
                    for (int x = 0; x < kw; x++) {
                        int t = (v * x) % n;
                        re += ker[y * kw + x] * cs[t];
                        im -= ker[y * kw + x] * sn[t];
                    }
                    re1[y * n + v] = re;
                    im1[y * n + v] = im;
                }
            }
            for (int u = 0; u < n; u++) {
                for (int v = 0; v < n; v++) {
                    double re = 0, im = 0;
                    for (int y = 0; y < kh; y++) {
                        int t = (u * y) % n;
                        double a = re1[y * n + v], b = im1[y * n + v];
                        re += a * cs[t] + b * sn[t];
                        im += b * cs[t] - a * sn[t];
                    }
                    pw[u * n + v] += re * re + im * im;
                }
            }
        }
        double total = 0;
        for (int i = 0; i < nn; i++)
            total += pw[i];
        if (!(total > 0))
            continue; /* a dead filter has no spectrum */
        double fb[3] = {0}, fbin[ZF_VIZ_SPECTRUM_BINS] = {0};
        for (int i = 0; i < nn; i++) {
            double p = pw[i] / total;
            fb[band[i]] += p;
            fbin[bin[i]] += p;
        }
        for (int b = 0; b < 3; b++)
            bands[b] += fb[b];
        for (int b = 0; b < ZF_VIZ_SPECTRUM_BINS; b++)
            out->radial[b] += per_bin[b] ? fbin[b] / per_bin[b] : 0;
        out->filters++;
    }
    free(cs);
    free(band);
    free(re1);
    free(pw);
    if (out->filters > 0) {
        out->low = bands[0] / out->filters;
        out->mid = bands[1] / out->filters;
        out->high = bands[2] / out->filters;
        for (int b = 0; b < ZF_VIZ_SPECTRUM_BINS; b++)
            out->radial[b] /= out->filters;
    }
    return ZF_OK;
}

zf_viz_compare_opts zf_viz_compare_defaults(void)
{
    zf_viz_compare_opts o = {0};
    o.zoom = 4;
    o.near_dead = ZF_VIZ_NEAR_DEAD_DEFAULT;
    return o;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

zf_status zf_viz_compare_stats_of(zf_viz_compare_stats *out, const zf_viz_compare_model *m, float near_dead)
{
    memset(out, 0, sizeof *out);
    if (!m || !m->w || m->k < 1 || m->c < 1 || m->kh < 1 || m->kw < 1)
        return zf_error(ZF_ERR_ARG, "compare: model %s has no filters", m && m->name ? m->name : "?");
    float *rms = zf_malloc((size_t)m->k * sizeof *rms);
    zf_viz_filter_state *state = zf_malloc((size_t)m->k * sizeof *state);
    if (!rms || !state) {
        free(rms);
        free(state);
        return zf_error(ZF_ERR_NOMEM, "compare: out of memory");
    }
    zf_viz_filter_stats(rms, state, m->w, m->k, (int64_t)m->c * m->kh * m->kw, near_dead);
    out->filters = m->k;
    for (int f = 0; f < m->k; f++) {
        out->dead += state[f] == ZF_VIZ_FILTER_DEAD;
        out->near_dead += state[f] == ZF_VIZ_FILTER_NEAR_DEAD;
        out->rms_max = fmaxf(out->rms_max, rms[f]);
    }
    qsort(rms, (size_t)m->k, sizeof *rms, cmp_float);
    out->rms_median = m->k % 2 ? rms[m->k / 2] : 0.5f * (rms[m->k / 2 - 1] + rms[m->k / 2]);
    free(rms);
    free(state);
    return zf_viz_filter_spectrum(&out->spectrum, m->w, m->k, m->c, m->kh, m->kw);
}

typedef struct cmp_fig {
    const zf_viz_compare_model *m[2];
    zf_viz_compare_opts opts;
    zf_viz_compare_stats st[2];
    zf_viz_filters_in in[2];
    zfv_filters_fig grid[2];
    double w, h;
    double grid_y, grid_x[2], grid_h, plots_y;
    double table_w, col2;        /* the table's width and its second model's column, wide enough
                                  * for both model names whole */
    float *rms[2];
} cmp_fig;

#define HEAD_H (34 * zfv_font_scale()) /* model heading above each grid */
#define FS zfv_font_scale()
#define PLOT_W 300
#define PLOT_H 190
#define TABLE_W (370 * zfv_font_scale())

static const char *const footnote =
    "Each tile is one filter on its own scale (grey = 0); both grids use the same pixels per tap. Near-dead: "
    "RMS below the given fraction of the layer's median. Power spectrum: each filter's kernels zero-padded to "
    "32\xc3\x97" "32, |DFT|\xc2\xb2 summed over input channels and normalised to 1 per filter, then averaged over "
    "filters; r in cycles per input pixel, bands low r < 1/6, mid 1/6 \xe2\x80\x93 1/3, high r \xe2\x89\xa5 1/3 "
    "(Nyquist 1/2). Never fire: conv1 maps whose ReLU output is 0 at every position of every image.";

static zf_status cmp_prepare(cmp_fig *f, const zf_viz_compare_model *a, const zf_viz_compare_model *b,
                             const zf_viz_compare_opts *opts)
{
    memset(f, 0, sizeof *f);
    f->m[0] = a;
    f->m[1] = b;
    f->opts = opts ? *opts : zf_viz_compare_defaults();
    if (f->opts.zoom <= 0)
        f->opts.zoom = 4;
    double x = MARGIN, gh = 0;
    for (int i = 0; i < 2; i++) {
        const zf_viz_compare_model *m = f->m[i];
        ZFV_TRY(zf_viz_compare_stats_of(&f->st[i], m, f->opts.near_dead));
        zf_viz_filters_in in = {m->name, m->w, m->k, m->c, m->kh, m->kw, m->bgr};
        f->in[i] = in;
        zf_viz_filters_opts fo = zf_viz_filters_defaults();
        fo.mode = m->c == 3 ? ZF_VIZ_TILE_RGB : ZF_VIZ_TILE_MEAN;
        fo.zoom = f->opts.zoom;
        fo.near_dead = f->opts.near_dead;
        f->grid[i].no_title = 1;
        ZFV_TRY(zfv_filters_prepare(&f->grid[i], &f->in[i], &fo));
        f->grid_x[i] = x;
        double hw;
        zfv_text_size(m->name ? m->name : "model", ZFV_TEXT_SIZE + 1, ZFV_BOLD, &hw, NULL);
        x += fmax(f->grid[i].g.width, hw) + 40;
        gh = fmax(gh, f->grid[i].g.height);
    }
    double th = 0;
    if (!f->opts.style.no_title)
        zfv_text_size("First layer", ZFV_TITLE_SIZE, ZFV_BOLD, NULL, &th);
    f->grid_y = MARGIN + (f->opts.style.no_title ? 0 : ceil(th) + 8) + HEAD_H;
    f->grid_h = gh;
    f->plots_y = f->grid_y + gh + 34 * FS;
    double nw[2];
    for (int i = 0; i < 2; i++)
        zfv_text_size(f->m[i]->name ? f->m[i]->name : "model", ZFV_TEXT_SIZE - 1, ZFV_BOLD, &nw[i], NULL);
    f->col2 = 150 * FS + fmax(110 * FS, ceil(nw[0]) + 12);
    f->table_w = fmax(TABLE_W, f->col2 + fmax(110 * FS, ceil(nw[1])) + 10);
    double plots_w = f->table_w + 60 * FS + PLOT_W + 90 * FS + PLOT_W + 30 * FS;
    f->w = fmax(x - 40, MARGIN + plots_w) + MARGIN;
    double fh;
    zfv_text_wrap_size(footnote, ZFV_SMALL_SIZE, f->w - 2 * MARGIN, NULL, &fh);
    f->h = f->plots_y + 18 * FS + PLOT_H + 52 * FS + ceil(fh) + MARGIN;
    return ZF_OK;
}

static zf_status draw_table(cairo_t *cr, const cmp_fig *f, double x, double y)
{
    char v[2][64];
    const char *rows[] = {"filters", "kernel, stride", "dead", "near-dead", "median RMS", "low-frequency share",
                          "mid-frequency share", "high-frequency share", "never fire"};
    double col0 = x, col1 = x + 150 * FS, col2 = x + f->col2, line = 19 * FS;
    for (int i = 0; i < 2; i++)
        ZFV_TRY(zfv_text(cr, i ? col2 : col1, y, f->m[i]->name ? f->m[i]->name : "model", ZFV_TEXT_SIZE - 1,
                         ZFV_BOLD, zfv_series[i]));
    ZFV_TRY(zfv_line(cr, x, y + line - 2, x + f->table_w - 10, y + line - 2, 1, zfv_rule));
    for (int r = 0; r < 9; r++) {
        double ry = y + (r + 1) * line + 2;
        if (r == 8 && f->m[0]->never_fire >= 0) {
            char lab[64];
            snprintf(lab, sizeof lab, "never fire (%d image%s)", f->m[0]->images, f->m[0]->images == 1 ? "" : "s");
            ZFV_TRY(zfv_text(cr, col0, ry, lab, ZFV_TEXT_SIZE - 1, 0, zfv_ink));
        } else {
            ZFV_TRY(zfv_text(cr, col0, ry, rows[r], ZFV_TEXT_SIZE - 1, 0, zfv_ink));
        }
        for (int i = 0; i < 2; i++) {
            const zf_viz_compare_stats *s = &f->st[i];
            const zf_viz_compare_model *m = f->m[i];
            switch (r) {
            case 0: snprintf(v[i], 64, "%d", s->filters); break;
            case 1: snprintf(v[i], 64, "%d\xc3\x97%d, %d", m->kh, m->kw, m->stride); break;
            case 2: snprintf(v[i], 64, "%d", s->dead); break;
            case 3: snprintf(v[i], 64, "%d", s->near_dead); break;
            case 4: snprintf(v[i], 64, "%.3g", (double)s->rms_median); break;
            case 5: snprintf(v[i], 64, "%.1f%%", 100 * s->spectrum.low); break;
            case 6: snprintf(v[i], 64, "%.1f%%", 100 * s->spectrum.mid); break;
            case 7: snprintf(v[i], 64, "%.1f%%", 100 * s->spectrum.high); break;
            default:
                if (m->never_fire < 0)
                    snprintf(v[i], 64, "no images");
                else
                    snprintf(v[i], 64, "%.1f%% of %d", 100.0 * m->never_fire, m->k);
            }
            ZFV_TRY(zfv_text(cr, i ? col2 : col1, ry, v[i], ZFV_TEXT_SIZE - 1, ZFV_MONO, zfv_ink));
        }
    }
    return ZF_OK;
}

static zf_status draw_hist(cairo_t *cr, const cmp_fig *f, double x, double y)
{
    enum { BINS = 20 };
    /* The axis spans the data (trained filters' RMS often lies far from 0, and an axis from 0 left
     * it in a corner); it reaches 0 only when the data come near it (zf_viz_data_range). */
    double dmin = INFINITY, dmax = 0;
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < f->m[i]->k; k++) {
            dmin = fmin(dmin, f->rms[i][k]);
            dmax = fmax(dmax, f->rms[i][k]);
        }
    double lo, hi;
    zf_viz_data_range(dmin, dmax, 1, &lo, &hi);
    int count[2][BINS] = {{0}};
    int top = 1;
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < f->m[i]->k; k++) {
            int b = (int)((f->rms[i][k] - lo) / (hi - lo) * BINS);
            if (b < 0)
                b = 0;
            if (b >= BINS)
                b = BINS - 1;
            count[i][b]++;
            if (count[i][b] > top)
                top = count[i][b];
        }
    }
    zfv_axes ax = {x, y, PLOT_W, PLOT_H, lo, hi, 0, top, 0, 1, 0};
    ZFV_TRY(zfv_text(cr, x, y - 20 * FS, "Per-filter RMS", ZFV_TEXT_SIZE, ZFV_BOLD, zfv_ink));
    double bw = PLOT_W / (double)BINS;
    for (int b = 0; b < BINS; b++) {
        for (int i = 0; i < 2; i++) {
            if (!count[i][b])
                continue;
            double py = zfv_axes_py(&ax, count[i][b]);
            ZFV_TRY(zfv_fill_rect(cr, x + b * bw + 1 + i * (bw - 2) / 2, py, (bw - 2) / 2, y + PLOT_H - py,
                                  zfv_series[i]));
        }
    }
    return zfv_axes_draw(cr, &ax, "filter RMS", "filters");
}

static zf_status draw_spectrum(cairo_t *cr, const cmp_fig *f, double x, double y)
{
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < 2; i++) {
        for (int b = 0; b < ZF_VIZ_SPECTRUM_BINS; b++) {
            double v = f->st[i].spectrum.radial[b];
            if (v > 0) {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
            }
        }
    }
    if (!(hi > 0)) {
        lo = 1e-4;
        hi = 1;
    }
    lo = pow(10, floor(log10(lo)));
    hi = pow(10, ceil(log10(hi)));
    if (hi <= lo)
        hi = lo * 10;
    double rmax = (ZF_VIZ_SPECTRUM_BINS) / (double)N;
    zfv_axes ax = {x, y, PLOT_W, PLOT_H, 0, rmax, lo, hi, 1, 0, 0};
    ZFV_TRY(zfv_text(cr, x, y - 20 * FS, "Mean radial power spectrum", ZFV_TEXT_SIZE, ZFV_BOLD, zfv_ink));
    /* Band backgrounds. */
    static const double edges[4] = {0, 1.0 / 6, 1.0 / 3, 0};
    static const char *names[3] = {"low", "mid", "high"};
    static const zfv_rgb shade[3] = {{0.97, 0.97, 0.97}, {0.92, 0.92, 0.92}, {0.97, 0.97, 0.97}};
    for (int b = 0; b < 3; b++) {
        double x0 = zfv_axes_px(&ax, edges[b]), x1 = zfv_axes_px(&ax, b == 2 ? rmax : edges[b + 1]);
        ZFV_TRY(zfv_fill_rect(cr, x0, y, x1 - x0, PLOT_H, shade[b]));
        ZFV_TRY(zfv_text(cr, (x0 + x1) / 2, y + 3, names[b], ZFV_SMALL_SIZE, ZFV_CENTER, zfv_ink_light));
    }
    double nyq = zfv_axes_px(&ax, 0.5);
    ZFV_TRY(zfv_line(cr, nyq, y + 18, nyq, y + PLOT_H, 0.8, zfv_ink_light));
    ZFV_TRY(zfv_text(cr, nyq + 3, y + 32, "Nyquist", ZFV_SMALL_SIZE - 1, 0, zfv_ink_light));
    ZFV_TRY(zfv_axes_draw(cr, &ax, "r (cycles per pixel)", "power per sample"));
    for (int i = 0; i < 2; i++) {
        ZFV_TRY(zfv_set_rgb(cr, zfv_series[i]));
        ZF_CAIRO(cr, cairo_set_line_width(cr, 2));
        int started = 0;
        for (int b = 0; b < ZF_VIZ_SPECTRUM_BINS; b++) {
            double v = f->st[i].spectrum.radial[b];
            if (!(v > 0))
                continue;
            double px = zfv_axes_px(&ax, (b + 0.5) / N), py = zfv_axes_py(&ax, v);
            if (started)
                ZF_CAIRO(cr, cairo_line_to(cr, px, py));
            else
                ZF_CAIRO(cr, cairo_move_to(cr, px, py));
            started = 1;
        }
        ZF_CAIRO(cr, cairo_stroke(cr));
    }
    return ZF_OK;
}

static zf_status cmp_draw_body(cairo_t *cr, cmp_fig *f)
{
    if (!f->opts.style.no_title)
        ZFV_TRY(zfv_text(cr, MARGIN, MARGIN, "First layer", ZFV_TITLE_SIZE, ZFV_BOLD, zfv_ink));
    for (int i = 0; i < 2; i++) {
        const zf_viz_compare_model *m = f->m[i];
        double hx = f->grid_x[i], hy = f->grid_y - HEAD_H;
        ZFV_TRY(zfv_text(cr, hx, hy, m->name ? m->name : "model", ZFV_TEXT_SIZE + 1, ZFV_BOLD, zfv_series[i]));
        char buf[160];
        /* A grey net's filters are grey tiles beside the other's colour ones: say so. */
        snprintf(buf, sizeof buf, "conv1: %d %sfilters %d\xc3\x97%d\xc3\x97%d, stride %d, %d px per tap", m->k,
                 m->c == 1 ? "grey " : "", m->c, m->kh, m->kw, m->stride, f->opts.zoom);
        ZFV_TRY(zfv_text(cr, hx, hy + 16 * FS, buf, ZFV_SMALL_SIZE, 0, zfv_ink_light));
        ZF_CAIRO(cr, cairo_save(cr));
        ZF_CAIRO(cr, cairo_translate(cr, f->grid_x[i], f->grid_y));
        ZFV_TRY(zfv_filters_draw(cr, &f->grid[i]));
        ZF_CAIRO(cr, cairo_restore(cr));
    }
    double y = f->plots_y + 18 * FS;
    ZFV_TRY(draw_table(cr, f, MARGIN, y - 18 * FS));
    ZFV_TRY(draw_hist(cr, f, MARGIN + f->table_w + 60 * FS, y));
    ZFV_TRY(draw_spectrum(cr, f, MARGIN + f->table_w + 60 * FS + PLOT_W + 90 * FS, y));
    return zfv_text_wrap(cr, MARGIN, y + PLOT_H + 46 * FS, footnote, ZFV_SMALL_SIZE, zfv_ink_light, f->w - 2 * MARGIN);
}

static zf_status cmp_draw(cairo_t *cr, void *ctx)
{
    cmp_fig *f = ctx;
    zf_status st = ZF_OK;
    for (int i = 0; i < 2; i++) {
        f->rms[i] = zf_malloc((size_t)f->m[i]->k * sizeof(float));
        if (!f->rms[i]) {
            st = zf_error(ZF_ERR_NOMEM, "compare: out of memory");
            goto done;
        }
        zf_viz_filter_stats(f->rms[i], NULL, f->m[i]->w, f->m[i]->k,
                            (int64_t)f->m[i]->c * f->m[i]->kh * f->m[i]->kw, 0);
    }
    st = cmp_draw_body(cr, f);
done:
    for (int i = 0; i < 2; i++) {
        free(f->rms[i]);
        f->rms[i] = NULL;
    }
    return st;
}

zf_status zf_viz_compare(zf_viz_doc *doc, const zf_viz_compare_model *a, const zf_viz_compare_model *b,
                         const zf_viz_compare_opts *opts)
{
    cmp_fig f;
    double prev = zfv_style_begin(opts ? &opts->style : NULL);
    zf_status st = cmp_prepare(&f, a, b, opts);
    zfv_style_end(prev);
    if (st)
        return st;
    return zfv_page_styled(doc, &f.opts.style, f.w, f.h, cmp_draw, &f);
}
