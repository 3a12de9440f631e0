/* The scan report: a multi-page A4-landscape PDF with a linked contents page, the model summary,
 * filter grids, the dead-unit table and chart, top-9 sheets and occlusion figures. */
#include <cairo-pdf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"

#define PAGE_W 842.0 /* A4 landscape in points */
#define PAGE_H 595.0
#define PM 36.0      /* page margin */
#define BODY_Y 58.0
#define BODY_H (PAGE_H - BODY_Y - 40.0)
#define BODY_W (PAGE_W - 2 * PM)
#define LAYER_ROWS 26 /* layer-table rows per page */
#define SHEET_UNITS 4
#define DEAD_ROWS 22
#define OCCL_PER_PAGE 2

typedef enum { SEC_TITLE, SEC_MODEL, SEC_FILTERS, SEC_DEAD, SEC_SHEETS, SEC_OCCL, SEC_COUNT } section;
static const char *const sec_names[SEC_COUNT] = {"Contents", "Model summary", "Filters", "Dead units",
                                                  "Top-9 deconv sheets", "Occlusion sensitivity"};

/* Pages of each section, in order. */
static void section_pages(const zf_viz_report_in *r, int pages[SEC_COUNT])
{
    pages[SEC_TITLE] = 1;
    pages[SEC_MODEL] = r->n_layers > 0 ? (r->n_layers + LAYER_ROWS - 1) / LAYER_ROWS : 1;
    pages[SEC_FILTERS] = r->n_grids;
    pages[SEC_DEAD] = r->n_dead > 0 ? (r->n_dead + DEAD_ROWS - 1) / DEAD_ROWS : 0;
    pages[SEC_SHEETS] = 0;
    for (int s = 0; s < r->n_sheets; s++)
        pages[SEC_SHEETS] += (r->sheets[s].n_units + SHEET_UNITS - 1) / SHEET_UNITS;
    pages[SEC_OCCL] = (r->n_occlusions + OCCL_PER_PAGE - 1) / OCCL_PER_PAGE;
}

int zf_viz_report_pages(const zf_viz_report_in *r)
{
    int p[SEC_COUNT], n = 0;
    section_pages(r, p);
    for (int s = 0; s < SEC_COUNT; s++)
        n += p[s];
    return n;
}

typedef struct page_ctx {
    const zf_viz_report_in *r;
    int page, total;             /* 1-based */
    int first[SEC_COUNT], count[SEC_COUNT];
    section sec;
    int index;                   /* page within the section */
} page_ctx;

static const char *report_title(const zf_viz_report_in *r) { return r->title ? r->title : "zfviz scan report"; }

static zf_status page_frame(cairo_t *cr, const page_ctx *p, const char *heading)
{
    if (heading) {
        ZFV_TRY(zfv_text(cr, PM, PM - 6, heading, 15, ZFV_BOLD, zfv_ink));
        ZFV_TRY(zfv_text_fit(cr, PAGE_W / 2, PM - 4, report_title(p->r), ZFV_SMALL_SIZE, 0, zfv_ink_light,
                             PAGE_W / 2 - PM));
        ZFV_TRY(zfv_line(cr, PM, BODY_Y - 10, PAGE_W - PM, BODY_Y - 10, 0.6, zfv_rule));
    }
    char buf[48];
    snprintf(buf, sizeof buf, "page %d of %d", p->page, p->total);
    ZFV_TRY(zfv_text(cr, PAGE_W / 2, PAGE_H - 26, buf, ZFV_SMALL_SIZE, ZFV_CENTER, zfv_ink_light));
    return ZF_OK;
}

static zf_status draw_title(cairo_t *cr, const page_ctx *p)
{
    const zf_viz_report_in *r = p->r;
    ZFV_TRY(zfv_text(cr, PM, 60, report_title(r), 28, ZFV_BOLD, zfv_ink));
    double y = 104;
    if (r->subtitle) {
        ZFV_TRY(zfv_text_fit(cr, PM, y, r->subtitle, 13, 0, zfv_ink_light, BODY_W));
        y += 22;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "model: %s \xc2\xb7 %lld parameters \xc2\xb7 %lld images scanned",
             r->model ? r->model : "?", (long long)r->params, (long long)r->images);
    ZFV_TRY(zfv_text_fit(cr, PM, y, buf, 13, 0, zfv_ink, BODY_W));
    y += 50;
    ZFV_TRY(zfv_text(cr, PM, y, "Contents", 16, ZFV_BOLD, zfv_ink));
    y += 30;
    for (int s = SEC_MODEL; s < SEC_COUNT; s++) {
        if (!p->count[s])
            continue;
        char link[32];
        snprintf(link, sizeof link, "page=%d", p->first[s]);
        ZF_CAIRO(cr, cairo_tag_begin(cr, CAIRO_TAG_LINK, link));
        ZFV_TRY(zfv_text(cr, PM + 10, y, sec_names[s], 13, 0, zfv_ink));
        double tw;
        zfv_text_size(sec_names[s], 13, 0, &tw, NULL);
        /* Dotted leader to the page number. */
        double x0 = PM + 10 + tw + 8, x1 = PM + 430;
        ZFV_TRY(zfv_set_rgb(cr, zfv_rule));
        for (double x = x0; x < x1; x += 6) {
            ZF_CAIRO(cr, cairo_rectangle(cr, x, y + 11, 1.2, 1.2));
        }
        ZF_CAIRO(cr, cairo_fill(cr));
        snprintf(buf, sizeof buf, "%d", p->first[s]);
        ZFV_TRY(zfv_text(cr, PM + 460, y, buf, 13, ZFV_RIGHT, zfv_ink));
        ZF_CAIRO(cr, cairo_tag_end(cr, CAIRO_TAG_LINK));
        y += 24;
    }
    return ZF_OK;
}

static zf_status draw_model(cairo_t *cr, const page_ctx *p)
{
    const zf_viz_report_in *r = p->r;
    double x[5] = {PM, PM + 40, PM + 170, PM + 330, PM + 520};
    static const char *head[5] = {"#", "layer", "op", "output (C\xc3\x97H\xc3\x97W)", "parameters"};
    double y = BODY_Y;
    for (int i = 0; i < 5; i++)
        ZFV_TRY(zfv_text(cr, x[i] + (i == 4 ? 100 : 0), y, head[i], 11, ZFV_BOLD | (i == 4 ? ZFV_RIGHT : 0), zfv_ink));
    y += 18;
    ZFV_TRY(zfv_line(cr, PM, y - 2, PM + 640, y - 2, 0.6, zfv_rule));
    int first = p->index * LAYER_ROWS;
    int last = first + LAYER_ROWS < r->n_layers ? first + LAYER_ROWS : r->n_layers;
    char buf[96];
    for (int i = first; i < last; i++) {
        const zf_viz_layer_row *l = &r->layers[i];
        snprintf(buf, sizeof buf, "%d", i);
        ZFV_TRY(zfv_text(cr, x[0], y, buf, 11, ZFV_MONO, zfv_ink_light));
        ZFV_TRY(zfv_text_fit(cr, x[1], y, l->name ? l->name : "", 11, ZFV_MONO, zfv_ink, 125));
        ZFV_TRY(zfv_text_fit(cr, x[2], y, l->op ? l->op : "", 11, 0, zfv_ink, 155));
        snprintf(buf, sizeof buf, "%d\xc3\x97%d\xc3\x97%d", l->c, l->h, l->w);
        ZFV_TRY(zfv_text(cr, x[3], y, buf, 11, ZFV_MONO, zfv_ink));
        snprintf(buf, sizeof buf, "%lld", (long long)l->params);
        ZFV_TRY(zfv_text(cr, x[4] + 100, y, buf, 11, ZFV_MONO | ZFV_RIGHT, zfv_ink));
        y += 16.5;
    }
    if (last == r->n_layers) {
        ZFV_TRY(zfv_line(cr, PM, y + 2, PM + 640, y + 2, 0.6, zfv_rule));
        snprintf(buf, sizeof buf, "%lld", (long long)r->params);
        ZFV_TRY(zfv_text(cr, x[1], y + 6, "total", 11, ZFV_BOLD, zfv_ink));
        ZFV_TRY(zfv_text(cr, x[4] + 100, y + 6, buf, 11, ZFV_MONO | ZFV_BOLD | ZFV_RIGHT, zfv_ink));
        if (r->model_notes)
            ZFV_TRY(zfv_text_wrap(cr, PM, y + 34, r->model_notes, 11, zfv_ink_light, 640));
    }
    return ZF_OK;
}

static zf_status draw_fitted(cairo_t *cr, zfv_draw_fn fn, void *ctx, double w, double h)
{
    zfv_figure fig = {w, h, fn, ctx};
    return zfv_draw_fitted(cr, &fig, PM, BODY_Y, BODY_W, BODY_H, 1.0);
}

static zf_status draw_filters(cairo_t *cr, const page_ctx *p)
{
    const zf_viz_filters_in *in = &p->r->grids[p->index];
    zf_viz_filters_opts o = zf_viz_filters_defaults();
    o.style = p->r->style;
    if (in->k <= 128)
        o.labels = ZF_VIZ_LABEL_INDEX;
    zfv_filters_fig f = {0};
    ZFV_TRY(zfv_filters_prepare(&f, in, &o));
    return draw_fitted(cr, zfv_filters_draw, &f, f.g.width, f.g.height);
}

static zf_status draw_dead(cairo_t *cr, const page_ctx *p)
{
    const zf_viz_report_in *r = p->r;
    int first = p->index * DEAD_ROWS;
    int last = first + DEAD_ROWS < r->n_dead ? first + DEAD_ROWS : r->n_dead;
    double x[5] = {PM, PM + 90, PM + 150, PM + 210, PM + 290};
    char buf[256];
    const char *head[5] = {"layer", "units", "dead", "rare", "dead share"};
    double y = BODY_Y;
    for (int i = 0; i < 5; i++)
        ZFV_TRY(zfv_text(cr, x[i] + (i ? 45 : 0), y, head[i], 11, ZFV_BOLD | (i ? ZFV_RIGHT : 0), zfv_ink));
    y += 18;
    ZFV_TRY(zfv_line(cr, PM, y - 2, PM + 340, y - 2, 0.6, zfv_rule));
    double top = 0;
    for (int i = first; i < last; i++) {
        const zf_viz_dead_row *d = &r->dead[i];
        double frac = d->units > 0 ? (double)(d->dead + d->rare) / d->units : 0;
        top = fmax(top, frac);
        ZFV_TRY(zfv_text_fit(cr, x[0], y, d->layer ? d->layer : "", 11, ZFV_MONO, zfv_ink, 85));
        int vals[3] = {d->units, d->dead, d->rare};
        for (int k = 0; k < 3; k++) {
            snprintf(buf, sizeof buf, "%d", vals[k]);
            ZFV_TRY(zfv_text(cr, x[k + 1] + 45, y, buf, 11, ZFV_MONO | ZFV_RIGHT,
                             k == 1 && vals[k] ? zfv_dead_red : zfv_ink));
        }
        snprintf(buf, sizeof buf, "%.1f%%", d->units > 0 ? 100.0 * d->dead / d->units : 0.0);
        ZFV_TRY(zfv_text(cr, x[4] + 45, y, buf, 11, ZFV_MONO | ZFV_RIGHT, zfv_ink));
        y += 16.5;
    }
    snprintf(buf, sizeof buf,
             "dead: never positive on any of the %lld images (max \xe2\x89\xa4 0); rare: positive on fewer than "
             "%.3g%% of them.",
             (long long)r->images, 100.0 * r->min_active);
    ZFV_TRY(zfv_text_wrap(cr, PM, y + 12, buf, 10, zfv_ink_light, 340));

    /* The chart: dead and rare shares per layer, stacked. */
    double cx = PM + 430, cw = PAGE_W - PM - cx - 10, ch = 300, cy = BODY_Y + 30;
    double hi = top > 0 ? fmin(1.0, top * 1.15) : 0.1;
    double ticks[8];
    int nt = zfv_ticks(0, hi, 6, ticks);
    if (nt > 1 && ticks[nt - 1] < hi)
        hi = ticks[nt - 1] + (ticks[1] - ticks[0]);
    zfv_axes ax = {cx, cy, cw, ch, 0, last - first, 0, hi, 0, 0, 0};
    ZFV_TRY(zfv_text(cr, cx, cy - 24, "Share of units dead or rare, per layer", 12, ZFV_BOLD, zfv_ink));
    int n = last - first;
    double slot = cw / (n > 0 ? n : 1), bw = fmin(slot * 0.7, 48);
    for (int i = 0; i < n; i++) {
        const zf_viz_dead_row *d = &r->dead[first + i];
        double fd = d->units > 0 ? (double)d->dead / d->units : 0;
        double fr = d->units > 0 ? (double)d->rare / d->units : 0;
        double bx = cx + i * slot + (slot - bw) / 2;
        double y0 = zfv_axes_py(&ax, 0), y1 = zfv_axes_py(&ax, fd), y2 = zfv_axes_py(&ax, fd + fr);
        ZFV_TRY(zfv_fill_rect(cr, bx, y1, bw, y0 - y1, zfv_dead_red));
        ZFV_TRY(zfv_fill_rect(cr, bx, y2, bw, y1 - y2, zfv_near_orange));
        ZFV_TRY(zfv_text_fit(cr, cx + (i + 0.5) * slot, cy + ch + 5, d->layer ? d->layer : "", 9, ZFV_CENTER,
                             zfv_ink, slot));
    }
    /* The x axis is categorical: draw only the y axis and the baseline. */
    zfv_axes yax = ax;
    ZFV_TRY(zfv_line(cr, cx, cy + ch, cx + cw, cy + ch, 1, zfv_ink));
    nt = zfv_ticks(0, hi, 6, ticks);
    double step = nt > 1 ? ticks[1] - ticks[0] : hi;
    for (int i = 0; i < nt; i++) {
        double py = zfv_axes_py(&yax, ticks[i]);
        ZFV_TRY(zfv_line(cr, cx - 4, py, cx, py, 1, zfv_ink));
        char tb[32];
        zfv_format_tick(tb, sizeof tb, ticks[i] * 100, step * 100);
        snprintf(buf, sizeof buf, "%s%%", tb);
        ZFV_TRY(zfv_text(cr, cx - 6, py, buf, ZFV_SMALL_SIZE, ZFV_RIGHT | ZFV_MIDDLE, zfv_ink));
    }
    ZFV_TRY(zfv_line(cr, cx, cy, cx, cy + ch, 1, zfv_ink));
    const char *names[2] = {"dead (never fired)", "rare"};
    const zfv_rgb cols[2] = {zfv_dead_red, zfv_near_orange};
    return zfv_legend(cr, cx + cw - 140, cy - 4, names, cols, 2, 10);
}

static zf_status draw_sheet(cairo_t *cr, const page_ctx *p)
{
    int k = p->index;
    for (int s = 0; s < p->r->n_sheets; s++) {
        const zf_viz_sheet_in *in = &p->r->sheets[s];
        int pages = (in->n_units + SHEET_UNITS - 1) / SHEET_UNITS;
        if (k >= pages) {
            k -= pages;
            continue;
        }
        int first = k * SHEET_UNITS;
        int count = in->n_units - first < SHEET_UNITS ? in->n_units - first : SHEET_UNITS;
        zf_viz_sheet_opts o = zf_viz_sheet_defaults();
        o.style = p->r->style;
        zfv_sheet_fig f;
        zfv_sheet_prepare(&f, in, &o, first, count);
        return draw_fitted(cr, zfv_sheet_draw, &f, f.w, f.h);
    }
    return ZF_OK;
}

static zf_status draw_occl(cairo_t *cr, const page_ctx *p)
{
    zf_viz_occlusion_opts o = zf_viz_occlusion_defaults();
    o.style = p->r->style;
    o.panel = 150;
    zfv_occl_fig f = {0};
    f.no_title = 1;
    int first = p->index * OCCL_PER_PAGE;
    int n = p->r->n_occlusions - first < OCCL_PER_PAGE ? p->r->n_occlusions - first : OCCL_PER_PAGE;
    ZFV_TRY(zfv_occl_prepare(&f, &p->r->occlusions[first], n, &o));
    return draw_fitted(cr, zfv_occl_draw, &f, f.w, f.h);
}

static zf_status draw_page(cairo_t *cr, void *ctx)
{
    const page_ctx *p = ctx;
    ZFV_TRY(page_frame(cr, p, p->sec == SEC_TITLE ? NULL : sec_names[p->sec]));
    switch (p->sec) {
    case SEC_TITLE: return draw_title(cr, p);
    case SEC_MODEL: return draw_model(cr, p);
    case SEC_FILTERS: return draw_filters(cr, p);
    case SEC_DEAD: return draw_dead(cr, p);
    case SEC_SHEETS: return draw_sheet(cr, p);
    case SEC_OCCL: return draw_occl(cr, p);
    default: return ZF_OK;
    }
}

static zf_status check(const zf_viz_report_in *r)
{
    if ((r->n_layers > 0 && !r->layers) || (r->n_grids > 0 && !r->grids) || (r->n_dead > 0 && !r->dead) ||
        (r->n_sheets > 0 && !r->sheets) || (r->n_occlusions > 0 && !r->occlusions))
        return zf_error(ZF_ERR_ARG, "report: a section has a count but no data");
    if (r->n_layers < 0 || r->n_grids < 0 || r->n_dead < 0 || r->n_sheets < 0 || r->n_occlusions < 0)
        return zf_error(ZF_ERR_ARG, "report: negative section size");
    for (int s = 0; s < r->n_sheets; s++)
        if (r->sheets[s].n_units < 1 || !r->sheets[s].units)
            return zf_error(ZF_ERR_ARG, "report: top-9 sheet %d has no units", s);
    /* Fail before the first page on data a later page could not draw. */
    for (int g = 0; g < r->n_grids; g++) {
        zf_viz_grid gr;
        ZFV_TRY(zf_viz_filters_layout(&gr, &r->grids[g], NULL));
    }
    for (int o = 0; o < r->n_occlusions; o++) {
        zfv_occl_fig f = {0};
        ZFV_TRY(zfv_occl_prepare(&f, &r->occlusions[o], 1, NULL));
    }
    return ZF_OK;
}

zf_status zf_viz_report(zf_viz_doc *doc, const zf_viz_report_in *r)
{
    if (!r)
        return zf_error(ZF_ERR_ARG, "report: no contents");
    ZFV_TRY(check(r));
    page_ctx p = {0};
    p.r = r;
    p.total = zf_viz_report_pages(r);
    if (zf_viz_doc_format(doc) != ZF_VIZ_PDF || zf_viz_doc_pages(doc) != 0)
        return zf_error(ZF_ERR_ARG, "report: it has %d pages and needs a new .pdf document", p.total);
    section_pages(r, p.count);
    int page = 1;
    for (int s = 0; s < SEC_COUNT; s++) {
        p.first[s] = page;
        page += p.count[s];
    }
    for (int s = 0; s < SEC_COUNT; s++) {
        for (int i = 0; i < p.count[s]; i++) {
            p.sec = (section)s;
            p.index = i;
            p.page = p.first[s] + i;
            if (zf_interrupted)
                return zf_error(ZF_ERR_INTERRUPTED, "report: interrupted at page %d", p.page);
            zf_viz_style style = r->style;
            style.width = 0; /* A4 */
            ZFV_TRY(zfv_page_styled(doc, &style, PAGE_W, PAGE_H, draw_page, &p));
            if (i == 0 && s != SEC_TITLE) {
                cairo_surface_t *pdf = zfv_doc_pdf_surface(doc);
                char link[32];
                snprintf(link, sizeof link, "page=%d", p.page);
                ZF_CAIRO(pdf, cairo_pdf_surface_add_outline(pdf, CAIRO_PDF_OUTLINE_ROOT, sec_names[s], link, 0));
            }
        }
    }
    return ZF_OK;
}
