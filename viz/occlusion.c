/* Occlusion figures (Zeiler & Fergus Fig. 7): per image, the image, the feature-map activation
 * map, its deconv projection, the correct-class probability map and the most-probable-class map,
 * heat maps laid over the image where the occluder's centre was. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"
#include "zf/alloc.h"

#define MARGIN 16
#define PANEL_GAP 14
#define CAPTION_H (32 * zfv_font_scale())
#define ROW_GAP 18
#define LEGEND_W (180 * zfv_font_scale())     /* the legend's least width */
#define LEGEND_W_MAX (480 * zfv_font_scale()) /* and its most; longer names are cut */
#define LEGEND_SIZE 10.0

zf_viz_occlusion_opts zf_viz_occlusion_defaults(void)
{
    zf_viz_occlusion_opts o = {0};
    o.alpha = 0.6f;
    o.legend_max = 8;
    return o;
}

static void subtitle(char *buf, size_t len, const zf_viz_occlusion *r)
{
    snprintf(buf, len,
             "A grey square of %d\xc3\x97%d pixels slides over the image in steps of %d; each map shows, at "
             "the square's centre, the value with the image occluded there.",
             r->patch, r->patch, r->stride);
}

/* Panel scale of a row's image: its own size up to 256 pixels; a small input (the mini nets' 112)
 * is enlarged by a whole factor to at least 128, so its map cells stay legible and crisp. */
static double panel_scale(const zf_viz_occlusion_opts *o, const zf_image *im)
{
    int side = im->w > im->h ? im->w : im->h;
    if (o->panel > 0)
        return (double)o->panel / side;
    if (side < 128)
        return ceil(128.0 / side);
    return side > 256 ? 256.0 / side : 1.0;
}

static int has_proj(const zfv_occl_fig *f) { return f->rows[0].proj != NULL; }

/* x of each column: a, b, bar b, c, d, bar d, e, legend. */
typedef struct cols { double a, b, bar_b, c, d, bar_d, e, legend, end; } cols;

static cols columns(const zfv_occl_fig *f, double pw)
{
    cols c;
    c.a = MARGIN;
    c.b = c.a + pw + PANEL_GAP;
    c.bar_b = c.b + pw + 8;
    c.c = c.bar_b + f->bar_b + 6;
    c.d = has_proj(f) ? c.c + pw + PANEL_GAP : c.c;
    c.bar_d = c.d + pw + 8;
    c.e = c.bar_d + f->bar_d + 6;
    c.legend = c.e + pw + 10;
    c.end = c.legend + f->legend_w;
    return c;
}

static zf_status check_row(const zf_viz_occlusion *r, int i)
{
    if (!r->image || !r->image->rgb || r->image->w < 1 || r->image->h < 1)
        return zf_error(ZF_ERR_ARG, "occlusion figure: row %d has no image", i);
    if (r->rows < 1 || r->cols < 1 || !r->feature || !r->prob || !r->argmax)
        return zf_error(ZF_ERR_ARG, "occlusion figure: row %d needs feature, prob and argmax maps of at least 1x1", i);
    if (r->proj_channels != 0 && r->proj_channels != 1 && r->proj_channels != 3)
        return zf_error(ZF_ERR_SHAPE, "occlusion figure: row %d has a %d-plane projection (1 grey or 3 RGB)", i,
                        r->proj_channels);
    if (r->n_class_names < 0 || (r->n_class_names > 0 && !r->class_names))
        return zf_error(ZF_ERR_ARG, "occlusion figure: row %d has %d class names but no array", i, r->n_class_names);
    if (r->patch < 1 || r->stride < 1)
        return zf_error(ZF_ERR_ARG, "occlusion figure: row %d has patch %d, stride %d (both must be >= 1)", i,
                        r->patch, r->stride);
    if ((int64_t)(r->rows - 1) * r->stride + r->patch > r->image->h ||
        (int64_t)(r->cols - 1) * r->stride + r->patch > r->image->w)
        return zf_error(ZF_ERR_SHAPE,
                        "occlusion figure: row %d: %dx%d positions of a %d-pixel square at stride %d do not fit a "
                        "%dx%d image",
                        i, r->rows, r->cols, r->patch, r->stride, r->image->w, r->image->h);
    return ZF_OK;
}

/* The mean of the greyed image (zfv_paint_rgb's wash) in [0, 1]: the background the heat maps are
 * blended over, on average. */
static double washed_mean(const zf_image *im)
{
    double sum = 0;
    size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = im->rgb + i * 3;
        float lum = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
        sum += lrintf(96.0f + 0.5f * lum);
    }
    return n ? sum / n / 255.0 : 0.5;
}

/* The overlays are translucent so the image stays visible under them (the figure's point is where
 * on the image the class depends), and no single flat colour can then match every cell: a cell's
 * colour depends on the image beneath. The colour bars and legend swatches are therefore painted
 * the same way, at the overlay's alpha over the image's mean washed grey. The wash has half the
 * image's contrast, so at alpha 0.6 a cell departs from its bar colour by at most 0.4 x 64 grey
 * levels, against the full map colours an opaque bar would show. */
static double class_alpha(const zf_viz_occlusion_opts *o) { return o->alpha > 0.75f ? o->alpha : 0.75f; }

static zfv_rgb blend(zfv_rgb c, double alpha, double bg)
{
    return (zfv_rgb){alpha * c.r + (1 - alpha) * bg, alpha * c.g + (1 - alpha) * bg, alpha * c.b + (1 - alpha) * bg};
}

/* The legend width row r's class names need (each name with its share, the class of (d)), so that
 * names are shown whole. */
static void class_name(char *buf, size_t len, const zf_viz_occlusion *r, int32_t k);

static double legend_width(const zf_viz_occlusion *r)
{
    char name[96], line[160];
    double w = 0, tw;
    int npos = r->rows * r->cols, nd = 0;
    int32_t *distinct = zf_malloc((size_t)npos * sizeof *distinct);
    if (!distinct) /* out of memory: the least width, names cut as before */
        return LEGEND_W;
    for (int i = 0; i < npos; i++) {
        int seen = 0;
        for (int j = 0; j < nd && !seen; j++)
            seen = distinct[j] == r->argmax[i];
        if (seen)
            continue;
        distinct[nd++] = r->argmax[i];
        class_name(name, sizeof name, r, r->argmax[i]);
        snprintf(line, sizeof line, "%s  100%%", name);
        zfv_text_size(line, LEGEND_SIZE, ZFV_BOLD, &tw, NULL);
        w = fmax(w, tw + 15 * zfv_font_scale());
    }
    free(distinct);
    if (r->true_class >= 0) {
        class_name(name, sizeof name, r, r->true_class);
        snprintf(line, sizeof line, "class of (d): %s (%d)", name, r->true_class);
        zfv_text_size(line, LEGEND_SIZE - 1, ZFV_ITALIC, &tw, NULL);
        w = fmax(w, tw);
    }
    return ceil(w) + 2;
}

zf_status zfv_occl_prepare(zfv_occl_fig *f, const zf_viz_occlusion *rows, int n, const zf_viz_occlusion_opts *opts)
{
    int no_title = f->no_title;
    memset(f, 0, sizeof *f);
    f->no_title = no_title;
    f->font = zfv_font_scale();
    f->rows = rows;
    f->n = n;
    f->opts = opts ? *opts : zf_viz_occlusion_defaults();
    if (!rows || n < 1)
        return zf_error(ZF_ERR_ARG, "occlusion figure: no images given");
    if (!(f->opts.alpha >= 0 && f->opts.alpha <= 1) || f->opts.legend_max < 0 || f->opts.panel < 0 ||
        f->opts.panel > 2048)
        return zf_error(ZF_ERR_ARG, "occlusion figure: alpha must be in [0, 1], legend and panel sizes >= 0");
    if (f->opts.legend_max > ZFV_CATEGORIES)
        f->opts.legend_max = ZFV_CATEGORIES;
    f->legend_w = LEGEND_W;
    double pw = 0, ph = 0;
    f->bar_b = f->bar_d = 48;
    for (int i = 0; i < n; i++) {
        ZFV_TRY(check_row(&rows[i], i));
        float lo, hi;
        size_t npos = (size_t)rows[i].rows * rows[i].cols;
        zfv_range(rows[i].feature, npos, &lo, &hi);
        f->bar_b = fmax(f->bar_b, zfv_colorbar_width(lo, hi, 12));
        zf_viz_prob_range(&f->opts.style, rows[i].prob, npos, &lo, &hi);
        f->bar_d = fmax(f->bar_d, zfv_colorbar_width(lo, hi, 12));
        f->legend_w = fmax(f->legend_w, legend_width(&rows[i]));
        double s = panel_scale(&f->opts, rows[i].image);
        pw = fmax(pw, ceil(rows[i].image->w * s));
        ph = fmax(ph, ceil(rows[i].image->h * s));
    }
    f->legend_w = fmin(f->legend_w, LEGEND_W_MAX);
    cols c = columns(f, pw);
    double tw, th, sh;
    zfv_text_size("Occlusion sensitivity", ZFV_TITLE_SIZE, ZFV_BOLD, &tw, &th);
    f->w = c.end + MARGIN;
    char sub[512];
    subtitle(sub, sizeof sub, &rows[0]);
    zfv_text_wrap_size(sub, ZFV_TEXT_SIZE, f->w - 2 * MARGIN, NULL, &sh);
    int bare = f->opts.style.no_title;
    f->h = MARGIN + (f->no_title || bare ? 0 : ceil(th) + 4) + (bare ? 0 : ceil(sh) + 14) + n * (ph + CAPTION_H) +
           (n - 1) * ROW_GAP + MARGIN;
    return ZF_OK;
}


/* Map cell (i, j) is drawn over the stride x stride square centred where the occluder's centre
 * was: from (j * stride + patch / 2 - stride / 2) on, in image pixels; clipped to the panel. */
static zf_status overlay_begin(cairo_t *cr, const zf_viz_occlusion *r, double x, double y, double s,
                               double *mx, double *my, double *mw, double *mh)
{
    *mx = x + (r->patch / 2.0 - r->stride / 2.0) * s;
    *my = y + (r->patch / 2.0 - r->stride / 2.0) * s;
    *mw = (double)r->cols * r->stride * s;
    *mh = (double)r->rows * r->stride * s;
    ZF_CAIRO(cr, cairo_save(cr));
    ZF_CAIRO(cr, cairo_rectangle(cr, x, y, r->image->w * s, r->image->h * s));
    ZF_CAIRO(cr, cairo_clip(cr));
    return ZF_OK;
}

static zf_status heat_panel(cairo_t *cr, const zf_viz_occlusion *r, const float *map, double x, double y,
                            double s, float alpha, float lo, float hi)
{
    const zf_image *im = r->image;
    ZFV_TRY(zfv_paint_rgb(cr, im->rgb, im->w, im->h, x, y, im->w * s, im->h * s, 1));
    double mx, my, mw, mh;
    ZFV_TRY(overlay_begin(cr, r, x, y, s, &mx, &my, &mw, &mh));
    ZFV_TRY(zfv_paint_map(cr, map, r->cols, r->rows, lo, hi, ZF_VIZ_CMAP_VIRIDIS, mx, my, mw, mh, alpha));
    ZF_CAIRO(cr, cairo_restore(cr));
    return ZF_OK;
}

typedef struct class_count { int32_t cls; int count; } class_count;

static int cmp_count(const void *a, const void *b)
{
    const class_count *x = a, *y = b;
    if (x->count != y->count)
        return y->count - x->count;
    return (x->cls > y->cls) - (x->cls < y->cls);
}

/* The name of class k from the row's names, else its callback; NULL when it has none. */
static const char *name_of(const zf_viz_occlusion *r, int32_t k)
{
    if (k < 0)
        return NULL;
    if (r->class_names)
        return k < r->n_class_names ? r->class_names[k] : NULL;
    return r->class_name ? r->class_name(k) : NULL;
}

static void class_name(char *buf, size_t len, const zf_viz_occlusion *r, int32_t k)
{
    const char *name = name_of(r, k);
    if (name)
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "class %d", (int)k);
}

/* (e): the most probable class per position in categorical colours, legend by area. */
static zf_status class_panel(cairo_t *cr, const zf_viz_occlusion *r, double x, double y, double s,
                             const zf_viz_occlusion_opts *o, double lx, double lw)
{
    int npos = r->rows * r->cols;
    class_count *cc = zf_calloc((size_t)npos, sizeof *cc);
    if (!cc)
        return zf_error(ZF_ERR_NOMEM, "occlusion figure: out of memory");
    int nc = 0;
    for (int i = 0; i < npos; i++) {
        int j = 0;
        while (j < nc && cc[j].cls != r->argmax[i])
            j++;
        if (j == nc)
            cc[nc++].cls = r->argmax[i];
        cc[j].count++;
    }
    qsort(cc, (size_t)nc, sizeof *cc, cmp_count);
    int shown = nc < o->legend_max ? nc : o->legend_max;
    /* With more classes than colours the last colour is "other". */
    if (nc > shown && shown > 0)
        shown--;
    static const zfv_rgb other = {0.75, 0.75, 0.75};
    zf_status st = ZF_OK;
    cairo_surface_t *sf = NULL;
    uint32_t *px;
    int stride;
    st = zfv_surface_new(&sf, r->cols, r->rows, &px, &stride);
    if (st)
        goto done;
    for (int i = 0; i < npos; i++) {
        zfv_rgb c = other;
        for (int j = 0; j < shown; j++)
            if (cc[j].cls == r->argmax[i])
                c = zfv_category[j];
        uint8_t q[3] = {(uint8_t)lrint(c.r * 255), (uint8_t)lrint(c.g * 255), (uint8_t)lrint(c.b * 255)};
        px[(size_t)(i / r->cols) * stride + i % r->cols] = zfv_pack(q);
    }
    const zf_image *im = r->image;
    st = zfv_paint_rgb(cr, im->rgb, im->w, im->h, x, y, im->w * s, im->h * s, 1);
    if (st)
        goto done;
    double mx, my, mw, mh;
    st = overlay_begin(cr, r, x, y, s, &mx, &my, &mw, &mh);
    if (st)
        goto done;
    st = zfv_paint_surface(cr, sf, mx, my, mw / r->cols, mh / r->rows, class_alpha(o));
    ZF_CAIRO_GOTO(cr, cairo_restore(cr), st, done);
    if (st)
        goto done;
    /* Legend: swatch, name, share of positions; the true class in bold. */
    double ly = y;
    char name[96], line[160];
    for (int j = 0; j < shown + (nc > shown ? 1 : 0); j++) {
        int is_other = j == shown;
        zfv_rgb c = is_other ? other : zfv_category[j];
        int count = 0;
        if (is_other) {
            for (int t = shown; t < nc; t++)
                count += cc[t].count;
            snprintf(line, sizeof line, "%d other classes  %.0f%%", nc - shown, 100.0 * count / npos);
        } else {
            class_name(name, sizeof name, r, cc[j].cls);
            snprintf(line, sizeof line, "%s  %.0f%%", name, 100.0 * cc[j].count / npos);
        }
        st = zfv_fill_rect(cr, lx, ly + 2, 10 * zfv_font_scale(), 10 * zfv_font_scale(),
                           blend(c, class_alpha(o), washed_mean(r->image)));
        if (st)
            goto done;
        int bold = !is_other && cc[j].cls == r->true_class;
        st = zfv_text_fit(cr, lx + 15 * zfv_font_scale(), ly, line, LEGEND_SIZE, bold ? ZFV_BOLD : 0, zfv_ink,
                          lw - 15 * zfv_font_scale());
        if (st)
            goto done;
        ly += LEGEND_SIZE * 1.5 * zfv_font_scale();
    }
    if (r->true_class >= 0) {
        class_name(name, sizeof name, r, r->true_class);
        if (name_of(r, r->true_class))
            snprintf(line, sizeof line, "class of (d): %s (%d)", name, r->true_class);
        else
            snprintf(line, sizeof line, "class of (d): %s", name);
        st = zfv_text_fit(cr, lx, ly + 4, line, LEGEND_SIZE - 1, ZFV_ITALIC, zfv_ink_light, lw);
    }
done:
    if (sf)
        cairo_surface_destroy(sf);
    free(cc);
    return st;
}

static zf_status caption(cairo_t *cr, double x, double y, double w, const char *text)
{
    return zfv_text_wrap(cr, x, y + 4, text, ZFV_SMALL_SIZE, zfv_ink, w);
}

static zf_status draw_row(cairo_t *cr, const zfv_occl_fig *f, const zf_viz_occlusion *r, cols c, double pw,
                          double y)
{
    const zf_image *im = r->image;
    double s = panel_scale(&f->opts, im);
    double ih = im->h * s;
    char buf[256];
    size_t npos = (size_t)r->rows * r->cols;
    const char *fname = r->feature_name ? r->feature_name : "feature map";

    ZFV_TRY(zfv_paint_rgb(cr, im->rgb, im->w, im->h, c.a, y, im->w * s, ih, 0));
    snprintf(buf, sizeof buf, "(a) %s", r->caption ? r->caption : "input image");
    ZFV_TRY(caption(cr, c.a, y + ih, pw, buf));

    float lo, hi;
    double bg = washed_mean(im);
    zfv_range(r->feature, npos, &lo, &hi);
    ZFV_TRY(heat_panel(cr, r, r->feature, c.b, y, s, f->opts.alpha, lo, hi));
    ZFV_TRY(zfv_colorbar(cr, c.bar_b, y + 12, 12, ih - 12, ZF_VIZ_CMAP_VIRIDIS, lo, hi, NULL, f->opts.alpha, bg));
    snprintf(buf, sizeof buf, "(b) total activation of %s", fname);
    ZFV_TRY(caption(cr, c.b, y + ih, pw + 60, buf));

    if (has_proj(f)) {
        if (r->proj)
            ZFV_TRY(zfv_paint_signed(cr, r->proj, r->proj_channels ? r->proj_channels : 3, im->w, im->h, c.c, y,
                                     im->w * s, ih, f->opts.style.clip_percentile));
        else
            ZFV_TRY(zfv_fill_rect(cr, c.c, y, im->w * s, ih, (zfv_rgb){0.93, 0.93, 0.93}));
        snprintf(buf, sizeof buf, "(c) deconv projection of %s", fname);
        ZFV_TRY(caption(cr, c.c, y + ih, pw, buf));
    }

    /* A fixed scale by default: p = 0.9999996 and p = 1 are one colour, as they are one answer. */
    zf_viz_prob_range(&f->opts.style, r->prob, npos, &lo, &hi);
    ZFV_TRY(heat_panel(cr, r, r->prob, c.d, y, s, f->opts.alpha, lo, hi));
    ZFV_TRY(zfv_colorbar(cr, c.bar_d, y + 12, 12, ih - 12, ZF_VIZ_CMAP_VIRIDIS, lo, hi, NULL, f->opts.alpha, bg));
    char name[96];
    class_name(name, sizeof name, r, r->true_class);
    snprintf(buf, sizeof buf, "(d) p(%s)", name);
    ZFV_TRY(caption(cr, c.d, y + ih, pw + 60, buf));

    ZFV_TRY(class_panel(cr, r, c.e, y, s, &f->opts, c.legend, f->legend_w));
    ZFV_TRY(caption(cr, c.e, y + ih, pw + 60, "(e) most probable class"));
    return ZF_OK;
}

static zf_status occl_draw_body(cairo_t *cr, void *ctx);

zf_status zfv_occl_draw(cairo_t *cr, void *ctx)
{
    const zfv_occl_fig *f = ctx;
    return zfv_draw_at_font(cr, f->font, occl_draw_body, ctx);
}

static zf_status occl_draw_body(cairo_t *cr, void *ctx)
{
    const zfv_occl_fig *f = ctx;
    double pw = 0, ph = 0;
    for (int i = 0; i < f->n; i++) {
        double s = panel_scale(&f->opts, f->rows[i].image);
        pw = fmax(pw, ceil(f->rows[i].image->w * s));
        ph = fmax(ph, ceil(f->rows[i].image->h * s));
    }
    cols c = columns(f, pw);
    double sh;
    double y = MARGIN;
    if (!f->no_title && !f->opts.style.no_title)
        ZFV_TRY(zfv_title(cr, MARGIN, &y, "Occlusion sensitivity"));
    if (!f->opts.style.no_title) {
        char sub[512];
        subtitle(sub, sizeof sub, &f->rows[0]);
        zfv_text_wrap_size(sub, ZFV_TEXT_SIZE, f->w - 2 * MARGIN, NULL, &sh);
        ZFV_TRY(zfv_text_wrap(cr, MARGIN, y, sub, ZFV_TEXT_SIZE, zfv_ink_light, f->w - 2 * MARGIN));
        y += ceil(sh) + 14;
    }
    for (int i = 0; i < f->n; i++) {
        ZFV_TRY(draw_row(cr, f, &f->rows[i], c, pw, y));
        y += ph + CAPTION_H + ROW_GAP;
    }
    return ZF_OK;
}

zf_status zf_viz_occlusion_figure(zf_viz_doc *doc, const zf_viz_occlusion *rows, int n,
                                  const zf_viz_occlusion_opts *opts)
{
    zfv_occl_fig f = {0};
    double prev = zfv_style_begin(opts ? &opts->style : NULL);
    zf_status st = zfv_occl_prepare(&f, rows, n, opts);
    zfv_style_end(prev);
    if (st)
        return st;
    return zfv_page_styled(doc, &f.opts.style, f.w, f.h, zfv_occl_draw, &f);
}
