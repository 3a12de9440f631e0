/* Training curves (zfviz train, zfviz demo): loss and accuracy per epoch, training and validation,
 * one or several runs side by side on two panels. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "viz_internal.h"

typedef struct {
    const zf_viz_curves_in *in;
    int n_runs;
    const char *title;
    zf_viz_style style;
} curves_ctx;

#define TOP (ctx->style.no_title ? -30.0 : 0.0) /* the plots move up into a left-out title's band */

static zf_status series(cairo_t *cr, const zfv_axes *ax, const zf_viz_curve *c, int which, zfv_rgb col,
                        int dashed)
{
    ZF_CAIRO(cr, cairo_save(cr));
    ZF_CAIRO(cr, cairo_set_line_width(cr, 2.0));
    double dash[] = {5.0, 3.0};
    ZF_CAIRO(cr, cairo_set_dash(cr, dash, dashed ? 2 : 0, 0));
    ZFV_TRY(zfv_set_rgb(cr, col));
    int started = 0;
    for (int i = 0; i < c->n; i++) {
        double v = which == 0 ? c->train_loss[i] : which == 1 ? c->val_loss[i]
                 : which == 2 ? c->train_acc[i] : c->val_acc[i];
        if (isnan(v))
            continue;
        double x = zfv_axes_px(ax, c->epoch[i]), y = zfv_axes_py(ax, which >= 2 ? 100.0 * v : v);
        if (!started)
            ZF_CAIRO(cr, cairo_move_to(cr, x, y));
        else
            ZF_CAIRO(cr, cairo_line_to(cr, x, y));
        started = 1;
    }
    if (started)
        ZF_CAIRO(cr, cairo_stroke(cr));
    ZF_CAIRO(cr, cairo_set_dash(cr, dash, 0, 0));
    for (int i = 0; i < c->n; i++) {
        double v = which == 0 ? c->train_loss[i] : which == 1 ? c->val_loss[i]
                 : which == 2 ? c->train_acc[i] : c->val_acc[i];
        if (isnan(v))
            continue;
        ZF_CAIRO(cr, cairo_arc(cr, zfv_axes_px(ax, c->epoch[i]), zfv_axes_py(ax, which >= 2 ? 100.0 * v : v),
                               2.5, 0, 2 * M_PI));
        ZF_CAIRO(cr, cairo_fill(cr));
    }
    ZF_CAIRO(cr, cairo_restore(cr));
    return ZF_OK;
}

static zf_status draw_curves(cairo_t *cr, void *vctx)
{
    const curves_ctx *ctx = vctx;
    const zf_viz_curves_in *in = ctx->in;
    if (!ctx->style.no_title)
        ZFV_TRY(zfv_text(cr, 20, 14, ctx->title, ZFV_TITLE_SIZE, ZFV_BOLD, zfv_ink));
    double emax = 1, lmax = 0, amin = 100;
    for (int r = 0; r < in->n_runs; r++)
        for (int i = 0; i < in->runs[r].n; i++) {
            const zf_viz_curve *c = &in->runs[r];
            if (c->epoch[i] > emax)
                emax = c->epoch[i];
            double l[2] = {c->train_loss[i], c->val_loss[i]}, a[2] = {c->train_acc[i], c->val_acc[i]};
            for (int j = 0; j < 2; j++) {
                if (!isnan(l[j]) && l[j] > lmax)
                    lmax = l[j];
                if (!isnan(a[j]) && 100.0 * a[j] < amin)
                    amin = 100.0 * a[j];
            }
        }
    if (lmax <= 0)
        lmax = 1;
    amin = floor(amin / 10.0) * 10.0;
    if (amin > 90)
        amin = 90;
    /* Epochs are whole: ticks at 1, 2, 3, never at 2.5. */
    zfv_axes loss = {70, 60 + TOP, 360, 260, emax > 1 ? 1 : 0, emax, 0, lmax * 1.05, 0, 0, 1};
    zfv_axes acc = {520, 60 + TOP, 360, 260, emax > 1 ? 1 : 0, emax, amin, 100, 0, 0, 1};
    ZFV_TRY(zfv_axes_draw(cr, &loss, "epoch", "cross-entropy loss"));
    ZFV_TRY(zfv_axes_draw(cr, &acc, "epoch", "top-1 accuracy (%)"));
    const char *names[8];
    zfv_rgb cols[8];
    int nl = 0;
    char label[8][96];
    for (int r = 0; r < in->n_runs && r < 4; r++) {
        const zf_viz_curve *c = &in->runs[r];
        zfv_rgb col = zfv_category[r % ZFV_CATEGORIES];
        ZFV_TRY(series(cr, &loss, c, 0, col, 1));
        ZFV_TRY(series(cr, &loss, c, 1, col, 0));
        ZFV_TRY(series(cr, &acc, c, 2, col, 1));
        ZFV_TRY(series(cr, &acc, c, 3, col, 0));
        snprintf(label[nl], sizeof label[nl], "%s", c->name ? c->name : "run");
        names[nl] = label[nl];
        cols[nl++] = col;
    }
    ZFV_TRY(zfv_legend(cr, 560, 240 + TOP, names, cols, nl, ZFV_SMALL_SIZE));
    ZFV_TRY(zfv_text(cr, 70, 360 + TOP, "solid: validation    dashed: training (dropout and augmentation on)",
                     ZFV_SMALL_SIZE, 0, zfv_ink_light));
    return ZF_OK;
}

zf_status zf_viz_curves(zf_viz_doc *doc, const zf_viz_curves_in *in, const char *title)
{
    return zf_viz_curves_styled(doc, in, title, NULL);
}

zf_status zf_viz_curves_styled(zf_viz_doc *doc, const zf_viz_curves_in *in, const char *title,
                               const zf_viz_style *style)
{
    if (!in || in->n_runs < 1)
        return zf_error(ZF_ERR_ARG, "training curves: no runs to draw");
    for (int r = 0; r < in->n_runs; r++)
        if (in->runs[r].n < 1)
            return zf_error(ZF_ERR_ARG, "training curves: run '%s' has no epochs",
                            in->runs[r].name ? in->runs[r].name : "?");
    curves_ctx ctx = {in, in->n_runs, title ? title : "Training curves", style ? *style : (zf_viz_style){0}};
    return zfv_page_styled(doc, &ctx.style, 920, 390 + (ctx.style.no_title ? -30 : 0), draw_curves, &ctx);
}
