/* The grid of zfviz optimize's images with a caption under each tile. The layout does not depend
 * on the text (captions are cut to their tile), so the page's size is known before drawing. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "viz_internal.h"
#include "zf/viz_unit_grid.h"

#define MARGIN 12
#define GAP 8
#define LINE_H 13
#define CAPTION_SIZE 10.0

typedef struct unit_grid_fig {
    const zf_viz_unit_grid_in *in;
    int no_title, rows;
    double fs, tile_w, tile_h, top, cell_w, cell_h, w, h;
} unit_grid_fig;

static zf_status prepare(unit_grid_fig *f, const zf_viz_unit_grid_in *in, const zf_viz_style *style)
{
    if (in->n < 1 || in->cols < 1 || in->w < 1 || in->h < 1 || !in->rgb)
        return zf_error(ZF_ERR_ARG, "a unit grid needs at least one image and a positive tile size");
    memset(f, 0, sizeof *f);
    f->in = in;
    f->no_title = style && style->no_title;
    f->fs = zfv_font_scale();
    f->rows = (in->n + in->cols - 1) / in->cols;
    const int longer = in->w > in->h ? in->w : in->h;
    const int s = longer < 96 ? (96 + longer - 1) / longer : 1;
    f->tile_w = (double)in->w * s;
    f->tile_h = (double)in->h * s;
    double tw = 0, th = 0;
    if (in->title && !f->no_title)
        zfv_text_size(in->title, ZFV_TITLE_SIZE, ZFV_BOLD, &tw, &th);
    f->top = MARGIN + (th > 0 ? ceil(th) + 8 : 0);
    f->cell_w = f->tile_w + GAP;
    f->cell_h = f->tile_h + (in->captions ? ceil(ZF_VIZ_UNIT_GRID_LINES * LINE_H * f->fs) + 2 : 0) + GAP;
    f->w = 2 * MARGIN + in->cols * f->cell_w - GAP;
    if (f->w < 2 * MARGIN + ceil(tw)) /* a narrow grid: as wide as its title */
        f->w = 2 * MARGIN + ceil(tw);
    f->h = f->top + f->rows * f->cell_h + MARGIN - GAP;
    return ZF_OK;
}

static zf_status draw(cairo_t *cr, void *ctx)
{
    const unit_grid_fig *f = ctx;
    const zf_viz_unit_grid_in *in = f->in;
    double y = MARGIN;
    if (in->title && !f->no_title)
        ZFV_TRY(zfv_title(cr, MARGIN, &y, in->title));
    const size_t tile = (size_t)in->w * in->h * 3;
    for (int i = 0; i < in->n; i++) {
        const double x0 = MARGIN + (i % in->cols) * f->cell_w, y0 = f->top + (i / in->cols) * f->cell_h;
        ZFV_TRY(zfv_paint_rgb(cr, in->rgb + i * tile, in->w, in->h, x0, y0, f->tile_w, f->tile_h, 0));
        if (!in->captions || !in->captions[i])
            continue;
        ZFV_TRY(zfv_text_lines(cr, x0, y0 + f->tile_h + 2, in->captions[i], CAPTION_SIZE, 0, ceil(LINE_H * f->fs),
                               ZF_VIZ_UNIT_GRID_LINES, f->tile_w));
    }
    return ZF_OK;
}

zf_status zf_viz_unit_grid(zf_viz_doc *doc, const zf_viz_unit_grid_in *in, const zf_viz_style *style)
{
    unit_grid_fig f;
    const double prev = zfv_style_begin(style);
    zf_status st = prepare(&f, in, style);
    zfv_style_end(prev);
    return st ? st : zfv_page_styled(doc, style, f.w, f.h, draw, &f);
}
