/* The feature-evolution figure (Zeiler & Fergus Fig. 4): units in rows, training snapshots in
 * columns, each cell the deconv projection of the unit's strongest activation at that snapshot. */
#include <math.h>
#include <stdio.h>

#include "viz_internal.h"
#include "zf/viz_evolve.h"

#define MARGIN 16
#define GAP 6
#define SCORE_SIZE 8.5

static const char *const evolve_sub =
    "each cell: the deconv projection of the unit's strongest activation over the images, with the "
    "parameters of that snapshot; the activation under it";

typedef struct {
    const zf_viz_evolve_in *in;
    zf_viz_evolve_opts o;
    double label_w, head_h, score_h, sub_h, title_h, grid_x, grid_y, w, h;
} evolve_fig;

static void layout(evolve_fig *f)
{
    const zf_viz_evolve_in *in = f->in;
    int bare = f->o.style.no_title;
    f->label_w = 0;
    for (int r = 0; r < in->rows; r++) {
        double w;
        zfv_text_size(in->row_labels[r], ZFV_TEXT_SIZE, ZFV_BOLD, &w, NULL);
        f->label_w = fmax(f->label_w, w);
    }
    f->label_w = ceil(f->label_w) + 10;
    double th = 0, tw = 0, hh = 0;
    if (in->title && !bare)
        zfv_text_size(in->title, ZFV_TITLE_SIZE, ZFV_BOLD, &tw, &th);
    zfv_text_size("epoch", ZFV_TEXT_SIZE, 0, NULL, &hh);
    f->head_h = ceil(hh) + 4;
    zfv_text_size("0.5", SCORE_SIZE, 0, NULL, &f->score_h);
    f->score_h = ceil(f->score_h) + 2;
    double grid_w = in->cols * (f->o.cell + GAP) - GAP;
    f->w = 2 * MARGIN + fmax(f->label_w + grid_w, tw);
    f->sub_h = 0;
    if (!bare) {
        double sw;
        zfv_text_wrap_size(evolve_sub, ZFV_SMALL_SIZE, f->w - 2 * MARGIN, &sw, &f->sub_h);
        f->sub_h = ceil(f->sub_h) + 10;
    }
    f->title_h = in->title && !bare ? ceil(th) + 4 : 0;
    f->grid_x = MARGIN + f->label_w;
    f->grid_y = MARGIN + f->title_h + f->sub_h + f->head_h;
    f->h = f->grid_y + in->rows * (f->o.cell + f->score_h + GAP) + MARGIN;
}

static zf_status evolve_draw(cairo_t *cr, void *ctx)
{
    const evolve_fig *f = ctx;
    const zf_viz_evolve_in *in = f->in;
    double y = MARGIN;
    if (in->title && !f->o.style.no_title)
        ZFV_TRY(zfv_title(cr, MARGIN, &y, in->title));
    if (!f->o.style.no_title)
        ZFV_TRY(zfv_text_wrap(cr, MARGIN, y, evolve_sub, ZFV_SMALL_SIZE, zfv_ink_light, f->w - 2 * MARGIN));
    double pitch_y = f->o.cell + f->score_h + GAP;
    for (int c = 0; c < in->cols; c++)
        ZFV_TRY(zfv_text(cr, f->grid_x + c * (f->o.cell + GAP) + f->o.cell / 2.0, f->grid_y - f->head_h,
                         in->col_labels[c], ZFV_TEXT_SIZE, ZFV_CENTER, zfv_ink));
    for (int r = 0; r < in->rows; r++) {
        double ry = f->grid_y + r * pitch_y;
        ZFV_TRY(zfv_text(cr, MARGIN, ry + f->o.cell / 2.0, in->row_labels[r], ZFV_TEXT_SIZE, ZFV_BOLD | ZFV_MIDDLE,
                         zfv_ink));
        for (int c = 0; c < in->cols; c++) {
            const zf_viz_patch *p = &in->cells[r * in->cols + c];
            double x = f->grid_x + c * (f->o.cell + GAP);
            if (p->proj && p->w > 0 && p->h > 0) {
                double s = (double)f->o.cell / (p->w > p->h ? p->w : p->h);
                double dw = p->w * s, dh = p->h * s;
                ZFV_TRY(zfv_paint_signed(cr, p->proj, p->channels ? p->channels : 3, p->w, p->h,
                                         x + (f->o.cell - dw) / 2, ry + (f->o.cell - dh) / 2, dw, dh,
                                         f->o.style.clip_percentile));
            }
            ZFV_TRY(zfv_frame(cr, x, ry, f->o.cell, f->o.cell, 1, zfv_rule));
            char buf[32];
            snprintf(buf, sizeof buf, "%.3g", (double)p->score);
            ZFV_TRY(zfv_text(cr, x + f->o.cell / 2.0, ry + f->o.cell + 1, buf, SCORE_SIZE, ZFV_CENTER,
                             zfv_ink_light));
        }
    }
    return ZF_OK;
}

zf_status zf_viz_evolve(zf_viz_doc *doc, const zf_viz_evolve_in *in, const zf_viz_evolve_opts *opts)
{
    if (!in || in->rows < 1 || in->cols < 1 || !in->cells || !in->row_labels || !in->col_labels)
        return zf_error(ZF_ERR_ARG, "evolve figure: no units or no snapshots to show");
    evolve_fig f = {0};
    f.in = in;
    if (opts)
        f.o = *opts;
    if (f.o.cell <= 0)
        f.o.cell = 64;
    double prev = zfv_style_begin(&f.o.style);
    layout(&f);
    zfv_style_end(prev);
    return zfv_page_styled(doc, &f.o.style, f.w, f.h, evolve_draw, &f);
}
