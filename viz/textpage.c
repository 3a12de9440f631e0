/* Text pages (zfviz demo's cover and dead-unit pages): a title and blocks of wrapped prose or
 * monospaced tables on one A4-landscape page, the fonts shrunk as far as legible to fit. */
#include <string.h>

#include "viz_internal.h"

#define PAGE_W 842.0 /* A4 landscape in points, as the report's pages */
#define PAGE_H 595.0
#define PM 36.0
#define GAP 16.0     /* between the two halves of a pair of blocks */

typedef struct text_ctx {
    const char *title;
    const zf_viz_text_block *blocks;
    int n;
    double scale;    /* of every font size */
    double bottom;   /* where the text ended (set by the layout) */
} text_ctx;

/* One mono line, cut with "..." if it is wider than the column. */
static zf_status mono_lines(cairo_t *cr, double x, double y, const char *text, double size, double maxw,
                            double *h)
{
    double line_h;
    zfv_text_size("M", size, ZFV_MONO, NULL, &line_h);
    const char *p = text;
    double dy = 0;
    char buf[1024];
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len >= sizeof buf)
            len = sizeof buf - 1;
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (cr && len)
            ZFV_TRY(zfv_text_fit(cr, x, y + dy, buf, size, ZFV_MONO, zfv_ink, maxw));
        dy += line_h;
        p = e ? e + 1 : p + strlen(p);
    }
    *h = dy;
    return ZF_OK;
}

/* Lays out (cr NULL) or draws the page; c->bottom is where the last block ended. */
static zf_status layout(cairo_t *cr, text_ctx *c)
{
    const double s = c->scale, full = PAGE_W - 2 * PM, half = (full - GAP) / 2;
    /* The title on one line: smaller for a long one, down to 15 pt, then cut. */
    double y = PM, th, tw, ts = 22 * s;
    zfv_text_size(c->title, ts, ZFV_BOLD, &tw, &th);
    while (tw > full && ts > 15) {
        ts -= 1;
        zfv_text_size(c->title, ts, ZFV_BOLD, &tw, &th);
    }
    if (cr)
        ZFV_TRY(zfv_text_fit(cr, PM, y, c->title, ts, ZFV_BOLD, zfv_ink, full));
    y += th + 10 * s;
    double row_top = y, left_bottom = y;
    for (int i = 0; i < c->n; i++) {
        const zf_viz_text_block *b = &c->blocks[i];
        /* A right half starts beside the left half before it. */
        double x = PM, w = full, y0 = b->column == 2 ? row_top : y;
        if (b->column == 1)
            row_top = y;
        if (b->column == 2)
            x = PM + half + GAP;
        if (b->column)
            w = half;
        double by = y0, h;
        if (b->heading) {
            zfv_text_size(b->heading, 13 * s, ZFV_BOLD, NULL, &h);
            if (cr)
                ZFV_TRY(zfv_text_fit(cr, x, by, b->heading, 13 * s, ZFV_BOLD, zfv_ink, w));
            by += h + 3 * s;
        }
        if (b->text && b->mono) {
            ZFV_TRY(mono_lines(cr, x, by, b->text, 10.5 * s, w, &h));
            by += h;
        } else if (b->text) {
            zfv_text_wrap_size(b->text, 11 * s, w, NULL, &h);
            if (cr)
                ZFV_TRY(zfv_text_wrap(cr, x, by, b->text, 11 * s, zfv_ink, w));
            by += h;
        }
        by += 12 * s;
        if (b->column == 1) {
            left_bottom = by;
            y = by;
        } else if (b->column == 2) {
            y = by > left_bottom ? by : left_bottom;
        } else {
            y = by;
        }
    }
    c->bottom = y;
    return ZF_OK;
}

static zf_status draw(cairo_t *cr, void *ctx) { return layout(cr, ctx); }

zf_status zf_viz_text_page(zf_viz_doc *doc, const char *title, const zf_viz_text_block *blocks, int n)
{
    if (n < 0 || (n > 0 && !blocks))
        return zf_error(ZF_ERR_ARG, "text page: %d blocks and no array", n);
    text_ctx c = {title ? title : "", blocks, n, 1.0, 0};
    /* The largest font scale (in steps of 5%, down to 70%: 10.5 pt tables at 100% are 7.4 pt,
     * still readable printed) at which the text fits above the bottom margin. */
    for (int step = 0; step <= 6; step++) {
        c.scale = 1.0 - 0.05 * step;
        ZFV_TRY(layout(NULL, &c));
        if (c.bottom <= PAGE_H - PM)
            return zfv_page(doc, PAGE_W, PAGE_H, draw, &c);
    }
    return zf_error(ZF_ERR_ARG, "text page '%s': the text does not fit one page even at 70%% size", c.title);
}
