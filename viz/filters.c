/* Filter grids: a conv layer's filters as tiles (RGB for a colour net's first layer, grey for a
 * grey net's, for a channel or the channel mean), scaled up by whole pixels per tap, with dead and near-dead filters marked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"
#include "zf/alloc.h"

#define MARGIN 16
#define LABEL_SIZE 9.0
#define LABEL_LINE (11 * zfv_font_scale())

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int zf_viz_filter_stats(float *rms, zf_viz_filter_state *state, const float *w, int k, int64_t n,
                        float near_dead)
{
    float max = 0;
    for (int f = 0; f < k; f++) {
        double s = 0;
        const float *p = w + (int64_t)f * n;
        for (int64_t i = 0; i < n; i++)
            s += (double)p[i] * p[i];
        rms[f] = n > 0 ? (float)sqrt(s / (double)n) : 0.0f;
        max = fmaxf(max, rms[f]);
    }
    if (!state)
        return 0;
    float *sorted = zf_malloc((size_t)k * sizeof *sorted);
    float median = 0;
    if (sorted) {
        memcpy(sorted, rms, (size_t)k * sizeof *sorted);
        qsort(sorted, (size_t)k, sizeof *sorted, cmp_float);
        median = k % 2 ? sorted[k / 2] : 0.5f * (sorted[k / 2 - 1] + sorted[k / 2]);
        free(sorted);
    }
    int marked = 0;
    for (int f = 0; f < k; f++) {
        if (rms[f] == 0 || rms[f] <= 1e-6f * max)
            state[f] = ZF_VIZ_FILTER_DEAD;
        else if (rms[f] < near_dead * median)
            state[f] = ZF_VIZ_FILTER_NEAR_DEAD;
        else
            state[f] = ZF_VIZ_FILTER_LIVE;
        marked += state[f] != ZF_VIZ_FILTER_LIVE;
    }
    return marked;
}

zf_viz_filters_opts zf_viz_filters_defaults(void)
{
    zf_viz_filters_opts o = {0};
    o.mode = ZF_VIZ_TILE_AUTO;
    o.scale = ZF_VIZ_SCALE_PER_FILTER;
    o.gap = 2;
    o.labels = 0;
    o.near_dead = ZF_VIZ_NEAR_DEAD_DEFAULT;
    return o;
}

static zf_status check_in(const zf_viz_filters_in *in, zf_viz_filters_opts *o)
{
    if (!in || !in->w)
        return zf_error(ZF_ERR_ARG, "filters: no weights given");
    if (in->k < 1 || in->c < 1 || in->kh < 1 || in->kw < 1)
        return zf_error(ZF_ERR_SHAPE, "filters: bad filter shape %dx%dx%dx%d", in->k, in->c, in->kh, in->kw);
    if (o->mode == ZF_VIZ_TILE_AUTO)
        o->mode = in->c == 3 ? ZF_VIZ_TILE_RGB : ZF_VIZ_TILE_MEAN;
    if (o->mode == ZF_VIZ_TILE_RGB && in->c != 3)
        return zf_error(ZF_ERR_SHAPE, "filters: %s has %d input channel%s; RGB tiles need 3 (%s)",
                        in->title ? in->title : "layer", in->c, in->c == 1 ? "" : "s",
                        in->c == 1 ? "a grey net's filters are drawn grey with auto or mean" : "use mean or channel");
    if (o->mode == ZF_VIZ_TILE_CHANNEL && (o->channel < 0 || o->channel >= in->c))
        return zf_error(ZF_ERR_ARG, "filters: input channel %d is out of range 0..%d", o->channel, in->c - 1);
    if (o->gap < 0 || o->gap > 64)
        return zf_error(ZF_ERR_ARG, "filters: gap %d is outside 0..64", o->gap);
    if (o->zoom < 0 || o->zoom > 256)
        return zf_error(ZF_ERR_ARG, "filters: zoom %d is outside 1..256", o->zoom);
    if (o->cols < 0 || o->max_filters < 0)
        return zf_error(ZF_ERR_ARG, "filters: columns and filter counts must not be negative");
    return ZF_OK;
}

/* The values a tile shows: (kh*kw*3) for RGB (R, G, B planes), (kh*kw) otherwise. */
static int tile_planes(const zf_viz_filters_opts *o) { return o->mode == ZF_VIZ_TILE_RGB ? 3 : 1; }

static void tile_values(float *out, const zf_viz_filters_in *in, const zf_viz_filters_opts *o, int f)
{
    int hw = in->kh * in->kw;
    const float *w = in->w + (int64_t)f * in->c * hw;
    if (o->mode == ZF_VIZ_TILE_RGB) {
        for (int p = 0; p < 3; p++) {
            int src = in->bgr ? 2 - p : p;
            memcpy(out + p * hw, w + src * hw, (size_t)hw * sizeof *out);
        }
    } else if (o->mode == ZF_VIZ_TILE_CHANNEL) {
        memcpy(out, w + o->channel * hw, (size_t)hw * sizeof *out);
    } else {
        for (int i = 0; i < hw; i++) {
            double s = 0;
            for (int c = 0; c < in->c; c++)
                s += w[c * hw + i];
            out[i] = (float)(s / in->c);
        }
    }
}

static void subtitle(char *buf, size_t len, const zf_viz_filters_in *in, const zf_viz_filters_opts *o, int n)
{
    char what[96];
    if (o->mode == ZF_VIZ_TILE_RGB)
        snprintf(what, sizeof what, "RGB");
    else if (o->mode == ZF_VIZ_TILE_CHANNEL && in->c > 1)
        snprintf(what, sizeof what, "input channel %d of %d", o->channel, in->c);
    else if (in->c == 1) /* a grey net's first layer: the tile is the filter itself */
        snprintf(what, sizeof what, "grey");
    else
        snprintf(what, sizeof what, "mean over %d input channels", in->c);
    char count[48];
    if (n < in->k)
        snprintf(count, sizeof count, "first %d of %d filters", n, in->k);
    else
        snprintf(count, sizeof count, "%d filters", n);
    snprintf(buf, len, "%s, %d\xc3\x97%d\xc3\x97%d, %s, %s scale (grey = 0)", count, in->c, in->kh, in->kw,
             what, o->scale == ZF_VIZ_SCALE_SHARED ? "one shared" : "per-filter");
}

static void label_text(char *buf, size_t len, int which, int f, float rms)
{
    if (which == ZF_VIZ_LABEL_INDEX)
        snprintf(buf, len, "%d", f);
    else
        snprintf(buf, len, "%.3g", rms);
}

zf_status zfv_filters_prepare(zfv_filters_fig *fig, const zf_viz_filters_in *in, const zf_viz_filters_opts *opts)
{
    int bare = fig->no_title;
    memset(fig, 0, sizeof *fig);
    fig->no_title = bare;
    fig->in = in;
    fig->opts = opts ? *opts : zf_viz_filters_defaults();
    zf_viz_filters_opts *o = &fig->opts;
    ZFV_TRY(check_in(in, o));
    zf_viz_grid *g = &fig->g;
    ZFV_TRY(zfv_grid_tiles(g, in->k, o->max_filters, in->kh, in->kw, o->zoom, o->cols, "filters"));

    int lines = !!(o->labels & ZF_VIZ_LABEL_INDEX) + !!(o->labels & ZF_VIZ_LABEL_RMS);
    int cell_w = g->tile_w;
    if (lines) {
        float *rms = zf_malloc((size_t)in->k * sizeof *rms);
        if (!rms)
            return zf_error(ZF_ERR_NOMEM, "filters: out of memory");
        zf_viz_filter_stats(rms, NULL, in->w, in->k, (int64_t)in->c * in->kh * in->kw, 0);
        double widest = 0;
        for (int f = 0; f < g->n; f++) {
            for (int which = 1; which <= 2; which++) {
                if (!(o->labels & which))
                    continue;
                char buf[32];
                double tw;
                label_text(buf, sizeof buf, which, f, rms[f]);
                zfv_text_size(buf, LABEL_SIZE, 0, &tw, NULL);
                widest = fmax(widest, tw);
            }
        }
        free(rms);
        if ((int)ceil(widest) + 2 > cell_w)
            cell_w = (int)ceil(widest) + 2;
    }
    g->tile_dx = (cell_w - g->tile_w) / 2;
    g->pitch_x = cell_w + o->gap;
    g->pitch_y = g->tile_h + o->gap + (lines ? (int)ceil(lines * LABEL_LINE) + 2 : 0);
    int grid_w = g->cols * g->pitch_x - o->gap;
    int grid_h = g->rows * g->pitch_y - o->gap;

    if (bare) {
        g->grid_x = g->grid_y = 0;
        g->width = grid_w;
        g->height = grid_h;
        return ZF_OK;
    }
    double tw = 0, th = 0, sw = 0, sh = 0, fw, fh;
    int no_title = o->style.no_title;
    if (in->title && !no_title)
        zfv_text_size(in->title, ZFV_TITLE_SIZE, ZFV_BOLD, &tw, &th);
    char sub[256];
    subtitle(sub, sizeof sub, in, o, g->n);
    if (!no_title)
        zfv_text_size(sub, ZFV_TEXT_SIZE, 0, &sw, &sh);
    zfv_text_size("dead: 00, near-dead: 00 (RMS below 0.1 \xc3\x97 the layer median)   \xe2\x96\xa1 dead  \xe2\x96\xa1 near-dead",
                  ZFV_SMALL_SIZE, 0, &fw, &fh);
    int text_w = (int)ceil(fmax(tw, fmax(sw, fw)));
    int inner = grid_w > text_w ? grid_w : text_w;
    g->width = inner + 2 * MARGIN;
    g->grid_x = MARGIN + (inner - grid_w) / 2;
    g->grid_y = MARGIN + (in->title && !no_title ? (int)ceil(th) + 4 : 0) + (no_title ? 0 : (int)ceil(sh) + 10);
    g->height = g->grid_y + grid_h + 10 + (int)ceil(fh) + MARGIN;
    return ZF_OK;
}

/* The layout at the style's font size, which the page is then drawn at. */
static zf_status prepare_styled(zfv_filters_fig *fig, const zf_viz_filters_in *in, const zf_viz_filters_opts *opts)
{
    double prev = zfv_style_begin(opts ? &opts->style : NULL);
    zf_status st = zfv_filters_prepare(fig, in, opts);
    zfv_style_end(prev);
    return st;
}

zf_status zf_viz_filters_layout(zf_viz_grid *out, const zf_viz_filters_in *in, const zf_viz_filters_opts *opts)
{
    zfv_filters_fig fig = {0};
    zf_status st = prepare_styled(&fig, in, opts);
    if (!st)
        *out = fig.g;
    return st;
}

/* One tile: a kw x kh surface painted at zoom with nearest-neighbour scaling. */
static zf_status draw_tile(cairo_t *cr, const float *vals, int planes, int kh, int kw, float s, int zoom,
                           double x, double y)
{
    cairo_surface_t *sf;
    uint32_t *px;
    int stride;
    ZFV_TRY(zfv_surface_new(&sf, kw, kh, &px, &stride));
    int hw = kh * kw;
    for (int i = 0; i < kh; i++) {
        for (int j = 0; j < kw; j++) {
            uint8_t q[3];
            for (int p = 0; p < 3; p++)
                q[p] = zfv_signed_byte(vals[(planes == 3 ? p * hw : 0) + i * kw + j], s);
            px[(size_t)i * stride + j] = zfv_pack(q);
        }
    }
    zf_status st = zfv_paint_surface(cr, sf, x, y, zoom, zoom, 1.0);
    cairo_surface_destroy(sf);
    return st;
}

static float max_abs(const float *v, int n)
{
    float m = 0;
    for (int i = 0; i < n; i++)
        m = fmaxf(m, fabsf(v[i]));
    return m;
}

/* Frames, tiles and labels of the grid, at the layout's positions. `rms` and `state` hold k entries. */
static zf_status draw_grid(cairo_t *cr, const zfv_filters_fig *fig, float *vals, const float *rms,
                           const zf_viz_filter_state *state)
{
    const zf_viz_filters_in *in = fig->in;
    const zf_viz_filters_opts *o = &fig->opts;
    const zf_viz_grid *g = &fig->g;
    int planes = tile_planes(o), nv = planes * in->kh * in->kw;
    float shared = 0;
    if (o->scale == ZF_VIZ_SCALE_SHARED) {
        for (int f = 0; f < g->n; f++) {
            tile_values(vals, in, o, f);
            shared = fmaxf(shared, max_abs(vals, nv));
        }
    }
    double lw = o->gap >= 2 ? 2 : o->gap;
    for (int f = 0; f < g->n; f++) {
        double x = g->grid_x + (f % g->cols) * g->pitch_x + g->tile_dx;
        double y = g->grid_y + (f / g->cols) * g->pitch_y;
        if (state[f] != ZF_VIZ_FILTER_LIVE && lw > 0)
            ZFV_TRY(zfv_frame(cr, x, y, g->tile_w, g->tile_h, lw,
                              state[f] == ZF_VIZ_FILTER_DEAD ? zfv_dead_red : zfv_near_orange));
        tile_values(vals, in, o, f);
        float s = o->scale == ZF_VIZ_SCALE_SHARED ? shared : max_abs(vals, nv);
        ZFV_TRY(draw_tile(cr, vals, planes, in->kh, in->kw, s, g->zoom, x, y));
        double ly = y + g->tile_h + 1;
        for (int which = 1; which <= 2; which++) {
            if (!(o->labels & which))
                continue;
            char buf[32];
            label_text(buf, sizeof buf, which, f, rms[f]);
            zfv_rgb c = state[f] == ZF_VIZ_FILTER_DEAD        ? zfv_dead_red
                        : state[f] == ZF_VIZ_FILTER_NEAR_DEAD ? zfv_near_orange
                                                              : zfv_ink_light;
            ZFV_TRY(zfv_text(cr, x + g->tile_w / 2.0, ly, buf, LABEL_SIZE, ZFV_CENTER, c));
            ly += LABEL_LINE;
        }
    }
    return ZF_OK;
}

static zf_status draw_texts(cairo_t *cr, const zfv_filters_fig *fig, int dead, int near)
{
    const zf_viz_filters_in *in = fig->in;
    const zf_viz_grid *g = &fig->g;
    double y = MARGIN;
    int no_title = fig->opts.style.no_title;
    if (in->title && !no_title)
        ZFV_TRY(zfv_title(cr, MARGIN, &y, in->title));
    char buf[256];
    subtitle(buf, sizeof buf, in, &fig->opts, g->n);
    if (!no_title)
        ZFV_TRY(zfv_text(cr, MARGIN, y, buf, ZFV_TEXT_SIZE, 0, zfv_ink_light));

    double fy = g->grid_y + g->rows * g->pitch_y - fig->opts.gap + 10;
    snprintf(buf, sizeof buf, "dead: %d, near-dead: %d (RMS below %.2g \xc3\x97 the layer median)", dead, near,
             (double)fig->opts.near_dead);
    ZFV_TRY(zfv_text(cr, MARGIN, fy, buf, ZFV_SMALL_SIZE, 0, zfv_ink_light));
    double w;
    zfv_text_size(buf, ZFV_SMALL_SIZE, 0, &w, NULL);
    double fs = zfv_font_scale();
    double x = MARGIN + w + 14 * fs;
    static const char *names[2] = {"dead", "near-dead"};
    const zfv_rgb cols[2] = {zfv_dead_red, zfv_near_orange};
    for (int i = 0; i < 2; i++) {
        ZFV_TRY(zfv_frame(cr, x + 1, fy + 3 * fs, 8 * fs, 8 * fs, 2, cols[i]));
        ZFV_TRY(zfv_text(cr, x + 14 * fs, fy, names[i], ZFV_SMALL_SIZE, 0, zfv_ink_light));
        double nw;
        zfv_text_size(names[i], ZFV_SMALL_SIZE, 0, &nw, NULL);
        x += (14 + 12) * fs + nw;
    }
    return ZF_OK;
}

zf_status zfv_filters_draw(cairo_t *cr, void *ctx)
{
    const zfv_filters_fig *fig = ctx;
    const zf_viz_filters_in *in = fig->in;
    int64_t per = (int64_t)in->c * in->kh * in->kw;
    float *rms = zf_malloc((size_t)in->k * sizeof *rms);
    zf_viz_filter_state *state = zf_malloc((size_t)in->k * sizeof *state);
    float *vals = zf_malloc((size_t)3 * in->kh * in->kw * sizeof *vals);
    zf_status st = ZF_OK;
    if (!rms || !state || !vals) {
        st = zf_error(ZF_ERR_NOMEM, "filters: out of memory");
        goto done;
    }
    zf_viz_filter_stats(rms, state, in->w, in->k, per, fig->opts.near_dead);
    int dead = 0, near = 0;
    for (int f = 0; f < fig->g.n; f++) {
        dead += state[f] == ZF_VIZ_FILTER_DEAD;
        near += state[f] == ZF_VIZ_FILTER_NEAR_DEAD;
    }
    st = draw_grid(cr, fig, vals, rms, state);
    if (st == ZF_OK && !fig->no_title)
        st = draw_texts(cr, fig, dead, near);
done:
    free(rms);
    free(state);
    free(vals);
    return st;
}

zf_status zf_viz_filters(zf_viz_doc *doc, const zf_viz_filters_in *in, const zf_viz_filters_opts *opts)
{
    zfv_filters_fig fig = {0};
    zf_status st = prepare_styled(&fig, in, opts);
    return st ? st : zfv_page_styled(doc, &fig.opts.style, fig.g.width, fig.g.height, zfv_filters_draw, &fig);
}
