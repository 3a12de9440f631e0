/* Activation grids: the feature maps of one layer for one image through a colour map, on one
 * shared scale with a colour bar or each on its own, beside the image the net saw. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "viz_internal.h"

#define MARGIN 16
#define LABEL_SIZE 9.0
#define LABEL_LINE (11 * zfv_font_scale())
#define BAR_W 16

zf_viz_maps_opts zf_viz_maps_defaults(void)
{
    zf_viz_maps_opts o = {0};
    o.cmap = ZF_VIZ_CMAP_VIRIDIS;
    o.gap = 2;
    return o;
}

typedef struct maps_fig {
    const zf_viz_maps_in *in;
    zf_viz_maps_opts opts;
    zf_viz_grid g;
    float lo, hi;
    int image_x, image_y, image_w, image_h;
    int bar_x, bar_y, bar_h;
} maps_fig;

static void subtitle(char *buf, size_t len, const maps_fig *f)
{
    const zf_viz_maps_in *in = f->in;
    char count[48];
    if (f->g.n < in->c)
        snprintf(count, sizeof count, "first %d of %d maps", f->g.n, in->c);
    else
        snprintf(count, sizeof count, "%d maps", in->c);
    if (f->opts.per_map)
        snprintf(buf, len, "%s, %d\xc3\x97%d, %s, each map on its own scale (min to max)", count, in->h, in->w,
                 zf_viz_cmap_name(f->opts.cmap));
    else
        snprintf(buf, len, "%s, %d\xc3\x97%d, %s, one scale for all maps: %.3g to %.3g", count, in->h, in->w,
                 zf_viz_cmap_name(f->opts.cmap), (double)f->lo, (double)f->hi);
}

static zf_status prepare(maps_fig *f, const zf_viz_maps_in *in, const zf_viz_maps_opts *opts)
{
    memset(f, 0, sizeof *f);
    f->in = in;
    f->opts = opts ? *opts : zf_viz_maps_defaults();
    zf_viz_maps_opts *o = &f->opts;
    if (!in || !in->maps)
        return zf_error(ZF_ERR_ARG, "activations: no maps given");
    if (in->c < 1 || in->h < 1 || in->w < 1)
        return zf_error(ZF_ERR_SHAPE, "activations: bad map shape %dx%dx%d", in->c, in->h, in->w);
    if (o->gap < 0 || o->gap > 64 || o->zoom < 0 || o->zoom > 256 || o->cols < 0 || o->max_maps < 0)
        return zf_error(ZF_ERR_ARG, "activations: gap, zoom, columns or map count out of range");
    if (in->image && (!in->image->rgb || in->image->w < 1 || in->image->h < 1))
        return zf_error(ZF_ERR_ARG, "activations: the image has no pixels");
    zf_viz_grid *g = &f->g;
    zf_status st = zfv_grid_tiles(g, in->c, o->max_maps, in->h, in->w, o->zoom, o->cols, "activations");
    if (st)
        return st;
    zfv_range(in->maps, (size_t)g->n * in->h * in->w, &f->lo, &f->hi);

    int cell_w = g->tile_w;
    if (o->labels) {
        char buf[16];
        double tw;
        snprintf(buf, sizeof buf, "%d", g->n - 1);
        zfv_text_size(buf, LABEL_SIZE, 0, &tw, NULL);
        if ((int)ceil(tw) + 2 > cell_w)
            cell_w = (int)ceil(tw) + 2;
    }
    g->tile_dx = (cell_w - g->tile_w) / 2;
    g->pitch_x = cell_w + o->gap;
    g->pitch_y = g->tile_h + o->gap + (o->labels ? (int)ceil(LABEL_LINE) + 1 : 0);
    int grid_w = g->cols * g->pitch_x - o->gap, grid_h = g->rows * g->pitch_y - o->gap;

    double tw = 0, th = 0, sw = 0, sh = 0;
    int no_title = o->style.no_title;
    if (in->title && !no_title)
        zfv_text_size(in->title, ZFV_TITLE_SIZE, ZFV_BOLD, &tw, &th);
    char sub[256];
    subtitle(sub, sizeof sub, f);
    if (!no_title)
        zfv_text_size(sub, ZFV_TEXT_SIZE, 0, &sw, &sh);
    int top = MARGIN + (in->title && !no_title ? (int)ceil(th) + 4 : 0) + (no_title ? 0 : (int)ceil(sh) + 12);
    int x = MARGIN;
    int body_h = grid_h;
    if (in->image) {
        /* The image at its own size (at most 256 wide), captioned, left of the grid. */
        double s = in->image->w > 256 ? 256.0 / in->image->w : 1.0;
        f->image_w = (int)lrint(in->image->w * s);
        f->image_h = (int)lrint(in->image->h * s);
        f->image_x = x;
        f->image_y = top;
        x += f->image_w + 20;
        if (f->image_h + 18 > body_h)
            body_h = f->image_h + 18;
    }
    g->grid_x = x;
    g->grid_y = top;
    x += grid_w;
    if (!o->per_map) {
        /* Far enough right that the bar's centred "activation" label clears the last tile. */
        double lw;
        zfv_text_size("activation", ZFV_SMALL_SIZE, 0, &lw, NULL);
        f->bar_x = x + (int)fmax(16, ceil(lw / 2 - BAR_W / 2.0) + 6);
        f->bar_y = top + 14;
        f->bar_h = grid_h - 14 < 80 ? 80 : (grid_h - 14 > 320 ? 320 : grid_h - 14);
        if (f->bar_y + f->bar_h > top + body_h)
            body_h = f->bar_y + f->bar_h - top;
        x = f->bar_x + (int)ceil(fmax(zfv_colorbar_width(f->lo, f->hi, BAR_W), 60));
    }
    int text_w = (int)ceil(fmax(tw, sw)) + 2 * MARGIN;
    g->width = x + MARGIN > text_w ? x + MARGIN : text_w;
    g->height = top + body_h + MARGIN;
    return ZF_OK;
}

/* The layout at the style's font size, which the page is then drawn at. */
static zf_status prepare_styled(maps_fig *f, const zf_viz_maps_in *in, const zf_viz_maps_opts *opts)
{
    double prev = zfv_style_begin(opts ? &opts->style : NULL);
    zf_status st = prepare(f, in, opts);
    zfv_style_end(prev);
    return st;
}

zf_status zf_viz_maps_layout(zf_viz_grid *out, const zf_viz_maps_in *in, const zf_viz_maps_opts *opts)
{
    maps_fig f;
    zf_status st = prepare_styled(&f, in, opts);
    if (!st)
        *out = f.g;
    return st;
}

static zf_status maps_draw(cairo_t *cr, void *ctx)
{
    const maps_fig *f = ctx;
    const zf_viz_maps_in *in = f->in;
    const zf_viz_grid *g = &f->g;
    double y = MARGIN;
    int no_title = f->opts.style.no_title;
    if (in->title && !no_title)
        ZFV_TRY(zfv_title(cr, MARGIN, &y, in->title));
    char buf[256];
    subtitle(buf, sizeof buf, f);
    if (!no_title)
        ZFV_TRY(zfv_text(cr, MARGIN, y, buf, ZFV_TEXT_SIZE, 0, zfv_ink_light));
    if (in->image) {
        ZFV_TRY(zfv_paint_rgb(cr, in->image->rgb, in->image->w, in->image->h, f->image_x, f->image_y,
                              f->image_w, f->image_h, 0));
        snprintf(buf, sizeof buf, "input %d\xc3\x97%d", in->image->w, in->image->h);
        ZFV_TRY(zfv_text(cr, f->image_x + f->image_w / 2.0, f->image_y + f->image_h + 3, buf, ZFV_SMALL_SIZE,
                         ZFV_CENTER, zfv_ink_light));
    }
    size_t hw = (size_t)in->h * in->w;
    for (int i = 0; i < g->n; i++) {
        double x = g->grid_x + (i % g->cols) * g->pitch_x + g->tile_dx;
        double ty = g->grid_y + (i / g->cols) * g->pitch_y;
        float lo = f->lo, hi = f->hi;
        if (f->opts.per_map)
            zfv_range(in->maps + i * hw, hw, &lo, &hi);
        ZFV_TRY(zfv_paint_map(cr, in->maps + i * hw, in->w, in->h, lo, hi, f->opts.cmap, x, ty, g->tile_w,
                              g->tile_h, 1.0));
        if (f->opts.labels) {
            snprintf(buf, sizeof buf, "%d", i);
            ZFV_TRY(zfv_text(cr, x + g->tile_w / 2.0, ty + g->tile_h + 1, buf, LABEL_SIZE, ZFV_CENTER,
                             zfv_ink_light));
        }
    }
    if (!f->opts.per_map)
        ZFV_TRY(zfv_colorbar(cr, f->bar_x, f->bar_y, BAR_W, f->bar_h, f->opts.cmap, f->lo, f->hi, "activation",
                             1.0, 1.0));
    return ZF_OK;
}

zf_status zf_viz_maps(zf_viz_doc *doc, const zf_viz_maps_in *in, const zf_viz_maps_opts *opts)
{
    maps_fig f;
    zf_status st = prepare_styled(&f, in, opts);
    return st ? st : zfv_page_styled(doc, &f.opts.style, f.g.width, f.g.height, maps_draw, &f);
}
