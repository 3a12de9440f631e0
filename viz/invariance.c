/* Zeiler & Fergus Fig. 5: per transform, thumbnails of the transformed image and three line plots
 * against the amount (two layers' distances to the untransformed image, the class probability). */
#include <math.h>
#include <stdio.h>

#include "viz_internal.h"
#include "zf/viz_paper.h"

#define THUMB 64.0
#define THUMB_COLS 3
#define EX_W (THUMB_COLS * (THUMB + 8))
#define PLOT_W 230.0
#define PLOT_H 130.0
#define PANEL_W (60.0 + PLOT_W + 24.0)
#define ROW_H 200.0
#define LEGEND_W 170.0
#define MAX_LEGEND 10

typedef struct {
    const zf_viz_invariance_in *in;
    zf_viz_style style;
    double top;
} inv_ctx;

static zf_status series(cairo_t *cr, const zfv_axes *ax, const double *x, const double *y, int n, zfv_rgb col)
{
    ZF_CAIRO(cr, cairo_save(cr));
    ZF_CAIRO(cr, cairo_set_line_width(cr, 1.5));
    ZFV_TRY(zfv_set_rgb(cr, col));
    int started = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            started = 0;
            continue;
        }
        const double px = zfv_axes_px(ax, x[i]), py = zfv_axes_py(ax, y[i]);
        if (started)
            ZF_CAIRO(cr, cairo_line_to(cr, px, py));
        else
            ZF_CAIRO(cr, cairo_move_to(cr, px, py));
        started = 1;
    }
    ZF_CAIRO(cr, cairo_stroke(cr));
    for (int i = 0; i < n && n <= 40; i++)
        if (isfinite(y[i])) {
            ZF_CAIRO(cr, cairo_arc(cr, zfv_axes_px(ax, x[i]), zfv_axes_py(ax, y[i]), 2.0, 0, 2 * M_PI));
            ZF_CAIRO(cr, cairo_fill(cr));
        }
    ZF_CAIRO(cr, cairo_restore(cr));
    return ZF_OK;
}

static zf_status panel(cairo_t *cr, double x, double y, const zf_viz_invariance_row *r, int n_images,
                       const double *v, int is_prob, const char *heading)
{
    double hi = 1;
    if (!is_prob) {
        hi = 0;
        for (int i = 0; i < n_images * r->n; i++)
            if (isfinite(v[i]) && v[i] > hi)
                hi = v[i];
        hi = hi > 0 ? hi * 1.05 : 1;
    }
    double xlo = r->amounts[0], xhi = r->amounts[r->n - 1];
    if (!(xhi > xlo)) {
        xlo -= 0.5;
        xhi += 0.5;
    }
    zfv_axes ax = {x + 60, y + 22, PLOT_W, PLOT_H, xlo, xhi, 0, hi, 0, 0, 0};
    ZFV_TRY(zfv_text(cr, ax.x + PLOT_W / 2, y, heading, ZFV_TEXT_SIZE, ZFV_CENTER | ZFV_BOLD, zfv_ink));
    ZFV_TRY(zfv_axes_draw(cr, &ax, r->xlabel, is_prob ? "probability" : "Euclidean distance"));
    for (int i = 0; i < n_images; i++)
        ZFV_TRY(series(cr, &ax, r->amounts, v + (size_t)i * r->n, r->n, zfv_category[i % ZFV_CATEGORIES]));
    return ZF_OK;
}

static zf_status draw(cairo_t *cr, void *vctx)
{
    const inv_ctx *ctx = vctx;
    const zf_viz_invariance_in *in = ctx->in;
    double y = 14;
    if (!ctx->style.no_title) {
        ZFV_TRY(zfv_title(cr, 20, &y, in->title ? in->title : "Feature invariance (Zeiler & Fergus Fig. 5)"));
        if (in->subtitle)
            ZFV_TRY(zfv_text(cr, 20, y, in->subtitle, ZFV_SMALL_SIZE, 0, zfv_ink_light));
    }
    y = ctx->top;
    for (int r = 0; r < in->n_rows; r++, y += ROW_H) {
        const zf_viz_invariance_row *row = &in->rows[r];
        const int ne = row->n_examples < ZF_VIZ_INVARIANCE_EXAMPLES ? row->n_examples : ZF_VIZ_INVARIANCE_EXAMPLES;
        ZFV_TRY(zfv_text(cr, 20, y, row->xlabel, ZFV_TEXT_SIZE, ZFV_BOLD, zfv_ink));
        for (int k = 0; k < ne; k++) {
            const zf_image *im = &row->examples[k];
            const double tx = 20 + (k % THUMB_COLS) * (THUMB + 8), ty = y + 22 + (k / THUMB_COLS) * (THUMB + 18);
            ZFV_TRY(zfv_paint_rgb(cr, im->rgb, im->w, im->h, tx, ty, THUMB, THUMB, 0));
            ZFV_TRY(zfv_frame(cr, tx, ty, THUMB, THUMB, 1.0, zfv_rule));
            char buf[32];
            snprintf(buf, sizeof buf, "%g", row->example_amounts[k]);
            ZFV_TRY(zfv_text(cr, tx + THUMB / 2, ty + THUMB + 2, buf, ZFV_SMALL_SIZE, ZFV_CENTER, zfv_ink_light));
        }
        double x = 20 + EX_W;
        for (int p = 0; p < 3; p++, x += PANEL_W)
            ZFV_TRY(panel(cr, x, y, row, in->n_images, p < 2 ? row->dist[p] : row->prob, p == 2,
                          p < 2 ? in->layer_names[p] : "probability of the class"));
    }
    const int nl = in->n_images < MAX_LEGEND ? in->n_images : MAX_LEGEND;
    const double lx = 20 + EX_W + 3 * PANEL_W + 10;
    ZFV_TRY(zfv_text(cr, lx, ctx->top + 22, "images", ZFV_SMALL_SIZE, ZFV_BOLD, zfv_ink));
    for (int i = 0; i < nl; i++) {
        const double ly = ctx->top + 40 + i * 16;
        ZFV_TRY(zfv_fill_rect(cr, lx, ly + 3, 10, 10, zfv_category[i % ZFV_CATEGORIES]));
        ZFV_TRY(zfv_text_fit(cr, lx + 15, ly + 8, in->image_names && in->image_names[i] ? in->image_names[i] : "?",
                             ZFV_SMALL_SIZE, ZFV_MIDDLE, zfv_ink, LEGEND_W - 25));
    }
    if (in->n_images > nl) {
        char buf[48];
        snprintf(buf, sizeof buf, "and %d more (not drawn)", in->n_images - nl);
        ZFV_TRY(zfv_text(cr, lx, ctx->top + 40 + nl * 16, buf, ZFV_SMALL_SIZE, 0, zfv_ink_light));
    }
    return ZF_OK;
}

zf_status zf_viz_invariance(zf_viz_doc *doc, const zf_viz_invariance_in *in, const zf_viz_style *style)
{
    if (!in || in->n_rows < 1 || in->n_images < 1)
        return zf_error(ZF_ERR_ARG, "invariance figure: no transforms or no images to draw");
    for (int r = 0; r < in->n_rows; r++)
        if (in->rows[r].n < 1 || !in->rows[r].amounts || !in->rows[r].dist[0] || !in->rows[r].dist[1] ||
            !in->rows[r].prob)
            return zf_error(ZF_ERR_ARG, "invariance figure: row %d has no values", r + 1);
    inv_ctx ctx = {in, style ? *style : (zf_viz_style){0}, 0};
    ctx.top = ctx.style.no_title ? 14 : (in->subtitle ? 60 : 44);
    const double w = 20 + EX_W + 3 * PANEL_W + LEGEND_W, h = ctx.top + in->n_rows * ROW_H + 10;
    return zfv_page_styled(doc, &ctx.style, w, h, draw, &ctx);
}
