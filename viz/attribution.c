/* The figure of zfviz attribute: the image, each method's map with a colour bar, and the numbers
 * that define each map under it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "viz_internal.h"
#include "zf/viz_attribution.h"

#define MARGIN 16
#define GAP 24
#define BAR_W 12

typedef struct attr_fig {
    const zf_viz_attribution_in *in;
    int no_title;
    double panel_w, panel_h;  /* each panel */
    double col_w;             /* a map's column: panel, bar and its labels */
    double top;               /* the panels' top */
    double text_h;            /* the numbers' block */
    double w, h;
} attr_fig;

/* The size of `text`'s lines at `size` (one line each, no wrapping). */
static void lines_size(const char *text, double size, double *w, double *h)
{
    *w = 0;
    *h = 0;
    char line[512];
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        const size_t n = nl ? (size_t)(nl - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        double lw = 0, lh = 0;
        zfv_text_size(line[0] ? line : " ", size, 0, &lw, &lh);
        *w = fmax(*w, lw);
        *h += ceil(lh) + 1;
        p = nl ? nl + 1 : NULL;
    }
}

static zf_status draw_lines(cairo_t *cr, double x, double y, const char *text, double size, zfv_rgb c)
{
    char line[512];
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        const size_t n = nl ? (size_t)(nl - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        double lw = 0, lh = 0;
        zfv_text_size(line[0] ? line : " ", size, 0, &lw, &lh);
        if (line[0])
            ZFV_TRY(zfv_text(cr, x, y, line, size, 0, c));
        y += ceil(lh) + 1;
        p = nl ? nl + 1 : NULL;
    }
    return ZF_OK;
}

static zf_status prepare(attr_fig *f, const zf_viz_attribution_in *in, const zf_viz_style *style)
{
    if (!in->image || in->image->w < 1 || in->image->h < 1 || in->n_maps < 1)
        return zf_error(ZF_ERR_ARG, "an attribution figure needs the image and at least one map");
    memset(f, 0, sizeof *f);
    f->in = in;
    f->no_title = style && style->no_title;
    const int longer = in->image->w > in->image->h ? in->image->w : in->image->h;
    const int s = longer < 224 ? (224 + longer - 1) / longer : 1;
    f->panel_w = in->image->w * s;
    f->panel_h = in->image->h * s;
    const double fs = zfv_font_scale();
    double tw = 0, th = 0;
    if (in->title && !f->no_title)
        zfv_text_size(in->title, ZFV_TITLE_SIZE, ZFV_BOLD, &tw, &th);
    f->top = MARGIN + (th > 0 ? ceil(th) + 8 : 0);
    double bar = 0;
    for (int i = 0; i < in->n_maps; i++) {
        float lo, hi;
        zfv_range(in->maps[i].map, (size_t)in->image->w * in->image->h, &lo, &hi);
        bar = fmax(bar, zfv_colorbar_width(0, hi > 0 ? hi : 1, BAR_W));
    }
    f->col_w = f->panel_w + 8 * fs + bar;
    double text_w = 0, text_h = 0;
    for (int i = 0; i < in->n_maps; i++) {
        double w, h, hw_, hh;
        zfv_text_size(in->maps[i].method, ZFV_TEXT_SIZE, ZFV_BOLD, &hw_, &hh);
        lines_size(in->maps[i].numbers, ZFV_SMALL_SIZE, &w, &h);
        text_w = fmax(text_w, fmax(w, hw_));
        text_h = fmax(text_h, ceil(hh) + 2 + h);
    }
    f->col_w = fmax(f->col_w, text_w);
    double cap_w, cap_h;
    zfv_text_size(in->image_caption ? in->image_caption : "input", ZFV_SMALL_SIZE, 0, &cap_w, &cap_h);
    f->text_h = fmax(text_h, cap_h);
    f->w = MARGIN + fmax(f->panel_w, cap_w) + GAP + in->n_maps * f->col_w + (in->n_maps - 1) * GAP + MARGIN;
    f->w = fmax(f->w, 2 * MARGIN + tw);
    f->h = f->top + f->panel_h + 6 + f->text_h + MARGIN;
    f->w = ceil(f->w);
    f->h = ceil(f->h);
    return ZF_OK;
}

static zf_status attr_draw(cairo_t *cr, void *ctx)
{
    const attr_fig *f = ctx;
    const zf_viz_attribution_in *in = f->in;
    double y = MARGIN;
    if (in->title && !f->no_title)
        ZFV_TRY(zfv_title(cr, MARGIN, &y, in->title));
    const int w = in->image->w, h = in->image->h;
    ZFV_TRY(zfv_paint_rgb(cr, in->image->rgb, w, h, MARGIN, f->top, f->panel_w, f->panel_h, 0));
    char cap[64];
    snprintf(cap, sizeof cap, "input %d\xc3\x97%d", w, h);
    ZFV_TRY(zfv_text(cr, MARGIN, f->top + f->panel_h + 6, in->image_caption ? in->image_caption : cap,
                     ZFV_SMALL_SIZE, 0, zfv_ink_light));
    double x = MARGIN + f->panel_w + GAP;
    {
        double cw;
        zfv_text_size(in->image_caption ? in->image_caption : cap, ZFV_SMALL_SIZE, 0, &cw, NULL);
        if (MARGIN + cw + GAP > x)
            x = MARGIN + cw + GAP;
    }
    for (int i = 0; i < in->n_maps; i++) {
        const zf_viz_attr_map *m = &in->maps[i];
        float lo, hi;
        zfv_range(m->map, (size_t)w * h, &lo, &hi);
        const float top = hi > 0 ? hi : 1;
        ZFV_TRY(zfv_paint_map(cr, m->map, w, h, 0, top, ZF_VIZ_CMAP_VIRIDIS, x, f->top, f->panel_w, f->panel_h,
                              1.0));
        ZFV_TRY(zfv_colorbar(cr, x + f->panel_w + 8 * zfv_font_scale(), f->top, BAR_W, f->panel_h,
                             ZF_VIZ_CMAP_VIRIDIS, 0, top, NULL, 1.0, 1.0));
        double ty = f->top + f->panel_h + 6, hh;
        ZFV_TRY(zfv_text(cr, x, ty, m->method, ZFV_TEXT_SIZE, ZFV_BOLD, zfv_ink));
        zfv_text_size(m->method, ZFV_TEXT_SIZE, ZFV_BOLD, NULL, &hh);
        ZFV_TRY(draw_lines(cr, x, ty + ceil(hh) + 2, m->numbers, ZFV_SMALL_SIZE, zfv_ink));
        x += f->col_w + GAP;
    }
    return ZF_OK;
}

zf_status zf_viz_attribution(zf_viz_doc *doc, const zf_viz_attribution_in *in, const zf_viz_style *style)
{
    attr_fig f;
    const double prev = zfv_style_begin(style);
    zf_status st = prepare(&f, in, style);
    zfv_style_end(prev);
    return st ? st : zfv_page_styled(doc, style, f.w, f.h, attr_draw, &f);
}
