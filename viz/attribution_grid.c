/* The grid of attribution maps of zfviz demo: rows of (net, image), the input and then one map
 * per method, each in viridis from 0 to its own largest value, short numbers under each. The
 * layout does not depend on the text (it is cut to its cell), so the page's size is known. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "viz_internal.h"
#include "zf/viz_attribution_grid.h"

#define MARGIN 16
#define GAP 8
#define LABEL_W 150
#define HEAD_H 18
#define LINE_H 13
#define NUM_SIZE 9.0

typedef struct grid_fig {
    const zf_viz_attr_grid_in *in;
    int no_title;
    double fs, panel, label_w, top, row_h, w, h;
} grid_fig;

static zf_status prepare(grid_fig *f, const zf_viz_attr_grid_in *in, const zf_viz_style *style)
{
    if (in->rows < 1 || in->cols < 1 || in->w < 1 || in->h < 1 || !in->images || !in->maps || !in->methods)
        return zf_error(ZF_ERR_ARG, "an attribution grid needs at least one row, one map and the images");
    memset(f, 0, sizeof *f);
    f->in = in;
    f->no_title = style && style->no_title;
    f->fs = zfv_font_scale();
    const int longer = in->w > in->h ? in->w : in->h;
    const int s = longer < 96 ? (96 + longer - 1) / longer : 1;
    f->panel = (double)longer * s;
    f->label_w = ceil(LABEL_W * f->fs);
    double th = 0;
    if (in->title && !f->no_title)
        zfv_text_size(in->title, ZFV_TITLE_SIZE, ZFV_BOLD, NULL, &th);
    f->top = MARGIN + (th > 0 ? ceil(th) + 8 : 0) + ceil(HEAD_H * f->fs);
    f->row_h = f->panel + ceil(ZF_VIZ_ATTR_GRID_LINES * LINE_H * f->fs) + GAP;
    f->w = 2 * MARGIN + f->label_w + (in->cols + 1) * (f->panel + GAP) - GAP;
    f->h = f->top + in->rows * f->row_h + MARGIN - GAP;
    return ZF_OK;
}

static zf_status grid_draw(cairo_t *cr, void *ctx)
{
    const grid_fig *f = ctx;
    const zf_viz_attr_grid_in *in = f->in;
    double y = MARGIN;
    if (in->title && !f->no_title)
        ZFV_TRY(zfv_title(cr, MARGIN, &y, in->title));
    const double x0 = MARGIN + f->label_w, step = f->panel + GAP, head_y = f->top - ceil(HEAD_H * f->fs);
    const double dw = f->panel * in->w / (in->w > in->h ? in->w : in->h);
    const double dh = f->panel * in->h / (in->w > in->h ? in->w : in->h);
    ZFV_TRY(zfv_text_fit(cr, x0, head_y, "input", ZFV_SMALL_SIZE, ZFV_BOLD, zfv_ink, f->panel));
    for (int c = 0; c < in->cols; c++)
        ZFV_TRY(zfv_text_fit(cr, x0 + (c + 1) * step, head_y, in->methods[c], ZFV_SMALL_SIZE, ZFV_BOLD, zfv_ink,
                             f->panel));
    const size_t hw = (size_t)in->w * in->h;
    for (int r = 0; r < in->rows; r++) {
        const double ry = f->top + r * f->row_h;
        if (in->row_labels && in->row_labels[r])
            ZFV_TRY(zfv_text_lines(cr, MARGIN, ry, in->row_labels[r], ZFV_SMALL_SIZE, 0, ceil(LINE_H * f->fs + 1), 6,
                               f->label_w - GAP));
        const zf_image *im = in->images[r];
        if (!im || im->w != in->w || im->h != in->h)
            return zf_error(ZF_ERR_SHAPE, "attribution grid: row %d's image is not %dx%d", r, in->w, in->h);
        ZFV_TRY(zfv_paint_rgb(cr, im->rgb, im->w, im->h, x0, ry, dw, dh, 0));
        for (int c = 0; c < in->cols; c++) {
            const float *m = in->maps + ((size_t)r * in->cols + c) * hw;
            float lo, hi;
            zfv_range(m, hw, &lo, &hi);
            const double x = x0 + (c + 1) * step;
            ZFV_TRY(zfv_paint_map(cr, m, in->w, in->h, 0, hi > 0 ? hi : 1, ZF_VIZ_CMAP_VIRIDIS, x, ry, dw, dh, 1.0));
            if (in->numbers && in->numbers[(size_t)r * in->cols + c])
                ZFV_TRY(zfv_text_lines(cr, x, ry + f->panel + 2, in->numbers[(size_t)r * in->cols + c], NUM_SIZE, 0,
                                   ceil(LINE_H * f->fs), ZF_VIZ_ATTR_GRID_LINES, f->panel + GAP - 2));
        }
    }
    return ZF_OK;
}

zf_status zf_viz_attr_grid(zf_viz_doc *doc, const zf_viz_attr_grid_in *in, const zf_viz_style *style)
{
    grid_fig f;
    const double prev = zfv_style_begin(style);
    zf_status st = prepare(&f, in, style);
    zfv_style_end(prev);
    return st ? st : zfv_page_styled(doc, style, f.w, f.h, grid_draw, &f);
}
