/* Top-9 sheets (Zeiler & Fergus Fig. 2): per unit, the deconv projections of its 9 strongest
 * activations in a 3x3 grid beside the image patches under their receptive fields. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "viz_internal.h"

#define MARGIN 16
#define GAP 2
#define SPLIT 12     /* between the projection grid and the patch grid */
#define BLOCK_GAP 28 /* between units */
#define HEAD (20 * zfv_font_scale())       /* the unit's heading */
#define SCORE_LINE (12 * zfv_font_scale()) /* the label under a patch */
#define SCORE_SIZE 8.5
#define KEY_SIZE 9.0
#define KEY_LINE (12 * zfv_font_scale())

zf_viz_sheet_opts zf_viz_sheet_defaults(void)
{
    zf_viz_sheet_opts o = {0};
    o.cell = 64;
    return o;
}

static const char *const sheet_sub =
    "left: deconv projections of the strongest activations; right: the image patches under their "
    "receptive fields (strongest at the top left, activation below)";

static void block_size(const zf_viz_sheet_opts *o, double *w, double *h)
{
    *w = 2 * (3 * o->cell + 2 * GAP) + SPLIT;
    *h = HEAD + 3 * (o->cell + SCORE_LINE + GAP);
}

static void score_text(char *buf, size_t len, const zf_viz_patch *p)
{
    snprintf(buf, len, "%.3g", (double)p->score);
}

/* The label under patch p: its score and caption in full, or with a key its score and number. */
static void patch_label(char *buf, size_t len, const zf_viz_patch *p, int key, int number)
{
    char sc[32];
    score_text(sc, sizeof sc, p);
    if (key && p->caption)
        snprintf(buf, len, "%s \xc2\xb7 #%d", sc, number);
    else if (p->caption)
        snprintf(buf, len, "%s \xc2\xb7 %s", sc, p->caption);
    else
        snprintf(buf, len, "%s", sc);
}

static void key_entry(char *buf, size_t len, int number, const char *caption)
{
    snprintf(buf, len, "#%d  %s", number, caption);
}

/* Whether the units' labels need a key: one caption wider than its cell puts every caption of the
 * page in the key, so that the numbering reads the same all over the page. Sets the key's size. */
static void plan_key(zfv_sheet_fig *f)
{
    const zf_viz_sheet_in *in = f->in;
    char buf[1024];
    double widest = 0;
    f->key = 0;
    f->key_n = 0;
    for (int k = 0; k < f->count; k++) {
        const zf_viz_unit *un = &in->units[f->first + k];
        for (int i = 0; i < un->n; i++) {
            if (!un->top[i].caption)
                continue;
            double w;
            patch_label(buf, sizeof buf, &un->top[i], 0, 0);
            zfv_text_size(buf, SCORE_SIZE, 0, &w, NULL);
            if (w > f->opts.cell)
                f->key = 1;
            f->key_n++;
            key_entry(buf, sizeof buf, f->key_n, un->top[i].caption);
            zfv_text_size(buf, KEY_SIZE, 0, &w, NULL);
            widest = fmax(widest, w);
        }
    }
    if (!f->key) {
        f->key_n = 0;
        f->key_h = 0;
        return;
    }
    f->key_colw = ceil(widest) + 18;
    double avail = f->w - 2 * MARGIN + 18;
    f->key_cols = (int)(avail / f->key_colw);
    if (f->key_cols < 1)
        f->key_cols = 1;
    if (f->key_cols > f->key_n)
        f->key_cols = f->key_n;
    if (f->key_cols == 1)
        f->w = fmax(f->w, 2 * MARGIN + f->key_colw - 18);
    int rows = (f->key_n + f->key_cols - 1) / f->key_cols;
    f->key_h = ceil(14 + KEY_LINE * 1.4 + rows * KEY_LINE); /* whole points: the PNG and the PDF page agree */
}

void zfv_sheet_prepare(zfv_sheet_fig *f, const zf_viz_sheet_in *in, const zf_viz_sheet_opts *opts,
                       int first, int count)
{
    memset(f, 0, sizeof *f);
    f->in = in;
    f->opts = opts ? *opts : zf_viz_sheet_defaults();
    if (f->opts.cell <= 0)
        f->opts.cell = 64;
    if (f->opts.units_per_row <= 0) /* about square: 1, 2, 2, 2, 3, 3, 3, 3, 3, 4, ... up to 4 */
        f->opts.units_per_row = count <= 1 ? 1 : count <= 4 ? 2 : count <= 9 ? 3 : 4;
    f->first = first;
    f->count = count;
    f->font = zfv_font_scale();
    int bare = f->opts.style.no_title;
    double bw, bh;
    block_size(&f->opts, &bw, &bh);
    int per_row = f->opts.units_per_row < count ? f->opts.units_per_row : (count > 0 ? count : 1);
    int rows = (count + per_row - 1) / per_row;
    double tw = 0, th = 0, sw, sh = 0;
    if (in->title && !bare)
        zfv_text_size(in->title, ZFV_TITLE_SIZE, ZFV_BOLD, &tw, &th);
    double grid_w = per_row * bw + (per_row - 1) * BLOCK_GAP;
    f->w = 2 * MARGIN + fmax(grid_w, tw);
    plan_key(f);
    /* The explanation wraps to the page's width. */
    if (!bare)
        zfv_text_wrap_size(sheet_sub, ZFV_SMALL_SIZE, f->w - 2 * MARGIN, &sw, &sh);
    f->h = MARGIN + (in->title && !bare ? ceil(th) + 4 : 0) + (bare ? 0 : ceil(sh) + 12) + rows * bh +
           (rows - 1) * BLOCK_GAP + f->key_h + MARGIN;
}

static zf_status check(const zf_viz_sheet_in *in)
{
    if (!in || (in->n_units > 0 && !in->units))
        return zf_error(ZF_ERR_ARG, "sheet: no units given");
    if (in->n_units < 1)
        return zf_error(ZF_ERR_ARG, "sheet: no units to show");
    for (int u = 0; u < in->n_units; u++) {
        const zf_viz_unit *un = &in->units[u];
        if (un->n < 0 || un->n > 9 || (un->n > 0 && !un->top))
            return zf_error(ZF_ERR_ARG, "sheet: unit %d of %s has %d examples (0..9)", un->channel,
                            un->layer ? un->layer : "?", un->n);
        for (int i = 0; i < un->n; i++) {
            if (un->top[i].w < 1 || un->top[i].h < 1)
                return zf_error(ZF_ERR_SHAPE, "sheet: example %d of %s unit %d has size %dx%d", i,
                                un->layer ? un->layer : "?", un->channel, un->top[i].w, un->top[i].h);
            int c = un->top[i].channels;
            if (c != 0 && c != 1 && c != 3)
                return zf_error(ZF_ERR_SHAPE, "sheet: example %d of %s unit %d has a %d-plane projection "
                                "(1 grey or 3 RGB)", i, un->layer ? un->layer : "?", un->channel, c);
        }
    }
    return ZF_OK;
}

static zf_status draw_unit(cairo_t *cr, const zf_viz_unit *un, const zf_viz_sheet_opts *o, double x, double y,
                           int key, int *number)
{
    char buf[160];
    int cell = o->cell;
    snprintf(buf, sizeof buf, "%s unit %d", un->layer ? un->layer : "layer", un->channel);
    ZFV_TRY(zfv_text(cr, x, y, buf, ZFV_TEXT_SIZE, ZFV_BOLD, zfv_ink));
    if (un->n > 0) {
        snprintf(buf, sizeof buf, "max %.3g", (double)un->top[0].score);
        ZFV_TRY(zfv_text(cr, x + 2 * (3 * cell + 2 * GAP) + SPLIT, y + 1, buf, ZFV_SMALL_SIZE, ZFV_RIGHT,
                         zfv_ink_light));
    }
    int rf = un->rf;
    for (int i = 0; i < un->n; i++) {
        if (un->top[i].w > rf)
            rf = un->top[i].w;
        if (un->top[i].h > rf)
            rf = un->top[i].h;
    }
    double s = rf > 0 ? (double)cell / rf : 1;
    double gy = y + HEAD;
    double px0 = x, ix0 = x + 3 * cell + 2 * GAP + SPLIT;
    static const zfv_rgb blank = {0.93, 0.93, 0.93};
    for (int i = 0; i < 9; i++) {
        double cx = (i % 3) * (cell + GAP), cy = gy + (i / 3) * (cell + SCORE_LINE + GAP);
        ZFV_TRY(zfv_fill_rect(cr, px0 + cx, cy, cell, cell, blank));
        ZFV_TRY(zfv_fill_rect(cr, ix0 + cx, cy, cell, cell, blank));
        if (i >= un->n)
            continue;
        const zf_viz_patch *p = &un->top[i];
        double dw = p->w * s, dh = p->h * s;
        double ox = (cell - dw) / 2, oy = (cell - dh) / 2;
        if (p->proj)
            ZFV_TRY(zfv_paint_signed(cr, p->proj, p->channels ? p->channels : 3, p->w, p->h, px0 + cx + ox,
                                     cy + oy, dw, dh, o->style.clip_percentile));
        if (p->rgb)
            ZFV_TRY(zfv_paint_rgb(cr, p->rgb, p->w, p->h, ix0 + cx + ox, cy + oy, dw, dh, 0));
        if (p->caption)
            ++*number;
        patch_label(buf, sizeof buf, p, key, *number);
        /* Cut only if even the number does not fit (cells under about 40 pixels). */
        ZFV_TRY(zfv_text_fit(cr, ix0 + cx, cy + cell + 1, buf, SCORE_SIZE, 0, zfv_ink_light, key ? cell + GAP : 1e6));
    }
    return ZF_OK;
}

static zf_status draw_key(cairo_t *cr, const zfv_sheet_fig *f, double y)
{
    ZFV_TRY(zfv_text(cr, MARGIN, y, "Key: the numbers under the patches", ZFV_SMALL_SIZE, ZFV_BOLD, zfv_ink));
    y += KEY_LINE * 1.4;
    int rows = (f->key_n + f->key_cols - 1) / f->key_cols, number = 0;
    char buf[1024];
    for (int k = 0; k < f->count; k++) {
        const zf_viz_unit *un = &f->in->units[f->first + k];
        for (int i = 0; i < un->n; i++) {
            if (!un->top[i].caption)
                continue;
            int e = number++;
            key_entry(buf, sizeof buf, number, un->top[i].caption);
            /* Down the columns, so the numbers run in reading order within each column. */
            double x = MARGIN + (e / rows) * f->key_colw;
            ZFV_TRY(zfv_text(cr, x, y + (e % rows) * KEY_LINE, buf, KEY_SIZE, 0, zfv_ink));
        }
    }
    return ZF_OK;
}

static zf_status sheet_draw_body(cairo_t *cr, void *ctx);

zf_status zfv_sheet_draw(cairo_t *cr, void *ctx)
{
    const zfv_sheet_fig *f = ctx;
    return zfv_draw_at_font(cr, f->font, sheet_draw_body, ctx);
}

static zf_status sheet_draw_body(cairo_t *cr, void *ctx)
{
    const zfv_sheet_fig *f = ctx;
    const zf_viz_sheet_in *in = f->in;
    int bare = f->opts.style.no_title;
    double y = MARGIN;
    if (in->title && !bare)
        ZFV_TRY(zfv_title(cr, MARGIN, &y, in->title));
    if (!bare) {
        double sh;
        zfv_text_wrap_size(sheet_sub, ZFV_SMALL_SIZE, f->w - 2 * MARGIN, NULL, &sh);
        ZFV_TRY(zfv_text_wrap(cr, MARGIN, y, sheet_sub, ZFV_SMALL_SIZE, zfv_ink_light, f->w - 2 * MARGIN));
        y += ceil(sh) + 12;
    }
    double bw, bh;
    block_size(&f->opts, &bw, &bh);
    int per_row = f->opts.units_per_row < f->count ? f->opts.units_per_row : f->count;
    int number = 0;
    for (int k = 0; k < f->count; k++) {
        double x = MARGIN + (k % per_row) * (bw + BLOCK_GAP);
        double by = y + (k / per_row) * (bh + BLOCK_GAP);
        ZFV_TRY(draw_unit(cr, &in->units[f->first + k], &f->opts, x, by, f->key, &number));
    }
    if (f->key) {
        int rows = (f->count + per_row - 1) / per_row;
        ZFV_TRY(draw_key(cr, f, y + rows * bh + (rows - 1) * BLOCK_GAP + 14));
    }
    return ZF_OK;
}

zf_status zf_viz_sheet(zf_viz_doc *doc, const zf_viz_sheet_in *in, const zf_viz_sheet_opts *opts)
{
    ZFV_TRY(check(in));
    zf_viz_sheet_opts o = opts ? *opts : zf_viz_sheet_defaults();
    if (o.cell < 0 || o.cell > 1024 || o.units_per_row < 0 || o.units_per_page < 0)
        return zf_error(ZF_ERR_ARG, "sheet: cell size or units per row/page out of range");
    int per_page = o.units_per_page > 0 ? o.units_per_page : in->n_units;
    for (int first = 0; first < in->n_units; first += per_page) {
        int count = in->n_units - first < per_page ? in->n_units - first : per_page;
        zfv_sheet_fig f;
        double prev = zfv_style_begin(&o.style);
        zfv_sheet_prepare(&f, in, &o, first, count);
        zfv_style_end(prev);
        ZFV_TRY(zfv_page_styled(doc, &o.style, f.w, f.h, zfv_sheet_draw, &f));
    }
    return ZF_OK;
}
