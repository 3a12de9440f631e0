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
#define HEAD 20      /* the unit's heading */
#define SCORE_LINE 12

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
    double bw, bh;
    block_size(&f->opts, &bw, &bh);
    int per_row = f->opts.units_per_row < count ? f->opts.units_per_row : (count > 0 ? count : 1);
    int rows = (count + per_row - 1) / per_row;
    double tw = 0, th = 0, sw, sh;
    if (in->title)
        zfv_text_size(in->title, ZFV_TITLE_SIZE, ZFV_BOLD, &tw, &th);
    double grid_w = per_row * bw + (per_row - 1) * BLOCK_GAP;
    f->w = 2 * MARGIN + fmax(grid_w, tw);
    /* The explanation wraps to the page's width. */
    zfv_text_wrap_size(sheet_sub, ZFV_SMALL_SIZE, f->w - 2 * MARGIN, &sw, &sh);
    f->h = MARGIN + (in->title ? ceil(th) + 4 : 0) + ceil(sh) + 12 + rows * bh + (rows - 1) * BLOCK_GAP + MARGIN;
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

static zf_status draw_unit(cairo_t *cr, const zf_viz_unit *un, const zf_viz_sheet_opts *o, double x, double y)
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
                                     cy + oy, dw, dh));
        if (p->rgb)
            ZFV_TRY(zfv_paint_rgb(cr, p->rgb, p->w, p->h, ix0 + cx + ox, cy + oy, dw, dh, 0));
        if (p->caption)
            snprintf(buf, sizeof buf, "%.3g \xc2\xb7 %s", (double)p->score, p->caption);
        else
            snprintf(buf, sizeof buf, "%.3g", (double)p->score);
        ZFV_TRY(zfv_text_fit(cr, ix0 + cx, cy + cell + 1, buf, 8.5, 0, zfv_ink_light, cell));
    }
    return ZF_OK;
}

zf_status zfv_sheet_draw(cairo_t *cr, void *ctx)
{
    const zfv_sheet_fig *f = ctx;
    const zf_viz_sheet_in *in = f->in;
    double y = MARGIN;
    if (in->title) {
        double th;
        zfv_text_size(in->title, ZFV_TITLE_SIZE, ZFV_BOLD, NULL, &th);
        ZFV_TRY(zfv_text(cr, MARGIN, y, in->title, ZFV_TITLE_SIZE, ZFV_BOLD, zfv_ink));
        y += ceil(th) + 4;
    }
    double sh;
    zfv_text_wrap_size(sheet_sub, ZFV_SMALL_SIZE, f->w - 2 * MARGIN, NULL, &sh);
    ZFV_TRY(zfv_text_wrap(cr, MARGIN, y, sheet_sub, ZFV_SMALL_SIZE, zfv_ink_light, f->w - 2 * MARGIN));
    y += ceil(sh) + 12;
    double bw, bh;
    block_size(&f->opts, &bw, &bh);
    int per_row = f->opts.units_per_row < f->count ? f->opts.units_per_row : f->count;
    for (int k = 0; k < f->count; k++) {
        double x = MARGIN + (k % per_row) * (bw + BLOCK_GAP);
        double by = y + (k / per_row) * (bh + BLOCK_GAP);
        ZFV_TRY(draw_unit(cr, &in->units[f->first + k], &f->opts, x, by));
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
        zfv_sheet_prepare(&f, in, &o, first, count);
        ZFV_TRY(zfv_page(doc, f.w, f.h, zfv_sheet_draw, &f));
    }
    return ZF_OK;
}
