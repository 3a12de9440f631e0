/* The linear-probe chart: training and test accuracy of a softmax classifier on each layer's
 * features, as bars in net order (Zeiler & Fergus's per-layer table). */
#include <math.h>
#include <stdio.h>

#include "viz_internal.h"
#include "zf/viz_probe.h"

#define MARGIN 16
#define PLOT_H 180
#define BAR_W 14
#define PAIR_GAP 14
#define AXIS_W 40

typedef struct {
    const zf_viz_probe_in *in;
    zf_viz_style style;
    double title_h, w, h, plot_x, plot_y, label_h;
} probe_fig;

static const zfv_rgb train_rgb = {0.70, 0.78, 0.90}, test_rgb = {0.16, 0.33, 0.62};

static zf_status probe_draw(cairo_t *cr, void *ctx)
{
    const probe_fig *f = ctx;
    const zf_viz_probe_in *in = f->in;
    double y = MARGIN;
    if (in->title && !f->style.no_title)
        ZFV_TRY(zfv_title(cr, MARGIN, &y, in->title));
    double x0 = f->plot_x, y0 = f->plot_y, pw = in->n * (2 * BAR_W + PAIR_GAP) + PAIR_GAP;
    for (int t = 0; t <= 100; t += 25) {
        double ty = y0 + PLOT_H * (1 - t / 100.0);
        char buf[16];
        snprintf(buf, sizeof buf, "%d%%", t);
        ZFV_TRY(zfv_line(cr, x0, ty, x0 + pw, ty, 0.5, zfv_rule));
        ZFV_TRY(zfv_text(cr, x0 - 4, ty, buf, ZFV_SMALL_SIZE, ZFV_RIGHT | ZFV_MIDDLE, zfv_ink_light));
    }
    for (int i = 0; i < in->n; i++) {
        double bx = x0 + PAIR_GAP + i * (2 * BAR_W + PAIR_GAP);
        double tr = fmin(fmax(in->train_acc[i], 0), 1), te = fmin(fmax(in->test_acc[i], 0), 1);
        ZFV_TRY(zfv_fill_rect(cr, bx, y0 + PLOT_H * (1 - tr), BAR_W, PLOT_H * tr, train_rgb));
        ZFV_TRY(zfv_fill_rect(cr, bx + BAR_W, y0 + PLOT_H * (1 - te), BAR_W, PLOT_H * te, test_rgb));
        char buf[16];
        snprintf(buf, sizeof buf, "%.1f", 100 * in->test_acc[i]);
        ZFV_TRY(zfv_text(cr, bx + BAR_W * 1.5, y0 + PLOT_H * (1 - te) - 2, buf, ZFV_SMALL_SIZE * 0.8,
                         ZFV_CENTER | ZFV_BOTTOM, zfv_ink));
        ZFV_TRY(zfv_text(cr, bx + BAR_W, y0 + PLOT_H + 4, in->layers[i], ZFV_SMALL_SIZE, ZFV_CENTER, zfv_ink));
    }
    double ly = y0 + PLOT_H + 4 + f->label_h + 8;
    ZFV_TRY(zfv_fill_rect(cr, x0, ly, 10, 10, train_rgb));
    ZFV_TRY(zfv_text(cr, x0 + 14, ly + 5, "training", ZFV_SMALL_SIZE, ZFV_MIDDLE, zfv_ink));
    ZFV_TRY(zfv_fill_rect(cr, x0 + 90, ly, 10, 10, test_rgb));
    ZFV_TRY(zfv_text(cr, x0 + 104, ly + 5, "test (value above the bar)", ZFV_SMALL_SIZE, ZFV_MIDDLE, zfv_ink));
    return ZF_OK;
}

zf_status zf_viz_probe(zf_viz_doc *doc, const zf_viz_probe_in *in, const zf_viz_style *style)
{
    if (!in || in->n < 1 || !in->layers || !in->train_acc || !in->test_acc)
        return zf_error(ZF_ERR_ARG, "probe figure: no layers to show");
    probe_fig f = {0};
    f.in = in;
    if (style)
        f.style = *style;
    double prev = zfv_style_begin(&f.style);
    double tw = 0, th = 0;
    if (in->title && !f.style.no_title)
        zfv_text_size(in->title, ZFV_TITLE_SIZE, ZFV_BOLD, &tw, &th);
    zfv_text_size("conv1", ZFV_SMALL_SIZE, 0, NULL, &f.label_h);
    f.title_h = in->title && !f.style.no_title ? ceil(th) + 10 : 0;
    f.plot_x = MARGIN + AXIS_W;
    f.plot_y = MARGIN + f.title_h + 14;
    double pw = in->n * (2 * BAR_W + PAIR_GAP) + PAIR_GAP;
    f.w = ceil(fmax(f.plot_x + pw, MARGIN + 300) + MARGIN);
    f.w = fmax(f.w, ceil(tw) + 2 * MARGIN);
    f.h = ceil(f.plot_y + PLOT_H + 4 + f.label_h + 8 + 12 + MARGIN);
    zfv_style_end(prev);
    return zfv_page_styled(doc, &f.style, f.w, f.h, probe_draw, &f);
}
