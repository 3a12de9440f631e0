/* Shared by the viz sources only: the checked-cairo macro, pages, text, images and plot helpers. */
#ifndef ZF_VIZ_INTERNAL_H
#define ZF_VIZ_INTERNAL_H

#include <cairo.h>
#include <stdint.h>

#include "zf/viz.h"

/* Records "cairo: <status> in <call> (<function>, <file>:<line>)" and returns the zf_status. */
zf_status zfv_cairo_fail(cairo_status_t st, const char *call, const char *func, const char *file, int line);

static inline cairo_status_t zfv_status_value(cairo_status_t st) { return st; }
/* The status a cairo object carries (contexts, surfaces and patterns keep the first error), or a
 * status a call returned. */
#define ZFV_STATUS_OF(obj)                                                   \
    _Generic((obj), cairo_t *: cairo_status, cairo_surface_t *: cairo_surface_status, \
             cairo_pattern_t *: cairo_pattern_status,                  \
             cairo_font_options_t *: cairo_font_options_status, cairo_status_t: zfv_status_value)(obj)

/* Every cairo call goes through this: run `call`, then check the status of `obj` (the context,
 * surface or pattern it acted on, or the cairo_status_t variable it assigned) and return a
 * zf_status naming the call, function, file and line if it failed. Functions that own resources
 * draw through a helper that uses this, and free in one place. */
#define ZF_CAIRO(obj, call)                                                           \
    do {                                                                              \
        call;                                                                         \
        cairo_status_t zfv_st_ = ZFV_STATUS_OF(obj);                                  \
        if (zfv_st_ != CAIRO_STATUS_SUCCESS)                                          \
            return zfv_cairo_fail(zfv_st_, #call, __func__, __FILE__, __LINE__);      \
    } while (0)

/* Like ZF_CAIRO, for a call made where the caller must clean up: sets `st` and jumps to `label`. */
#define ZF_CAIRO_GOTO(obj, call, st, label)                                           \
    do {                                                                              \
        call;                                                                         \
        cairo_status_t zfv_st_ = ZFV_STATUS_OF(obj);                                  \
        if (zfv_st_ != CAIRO_STATUS_SUCCESS) {                                        \
            st = zfv_cairo_fail(zfv_st_, #call, __func__, __FILE__, __LINE__);        \
            goto label;                                                               \
        }                                                                             \
    } while (0)

#define ZFV_TRY(expr)                 \
    do {                              \
        zf_status zfv_s_ = (expr);    \
        if (zfv_s_ != ZF_OK)          \
            return zfv_s_;            \
    } while (0)

/* ---- pages (doc.c) ---- */
typedef zf_status (*zfv_draw_fn)(cairo_t *cr, void *ctx);
/* Adds one page of w x h (rounded up to whole pixels for PNG), white, and draws it with fn. */
zf_status zfv_page(zf_viz_doc *doc, double w, double h, zfv_draw_fn fn, void *ctx);
/* The PDF surface of a PDF document once it has a page (outlines, metadata), else NULL. */
cairo_surface_t *zfv_doc_pdf_surface(zf_viz_doc *doc);

/* ---- colours ---- */
typedef struct zfv_rgb { double r, g, b; } zfv_rgb;
extern const zfv_rgb zfv_ink, zfv_ink_light, zfv_rule, zfv_dead_red, zfv_near_orange, zfv_white;
extern const zfv_rgb zfv_series[2];   /* the two models of a comparison */
#define ZFV_CATEGORIES 10
extern const zfv_rgb zfv_category[ZFV_CATEGORIES];
/* Tiles of a grid: n of `total` items (at most `max` when > 0), each tile_h x tile_w pixels after
 * zoom (`zoom` > 0, else enough to make the longer side about 48 pixels), `cols` columns (> 0, else
 * about square, preferring a count that divides n). `what` names the picture in errors. */
zf_status zfv_grid_tiles(zf_viz_grid *g, int total, int max, int h, int w, int zoom, int cols, const char *what);

zf_status zfv_set_rgb(cairo_t *cr, zfv_rgb c);
zf_status zfv_fill_rect(cairo_t *cr, double x, double y, double w, double h, zfv_rgb c);
/* A 1-unit outline just outside the integer rectangle (x, y, w, h). */
zf_status zfv_frame(cairo_t *cr, double x, double y, double w, double h, double lw, zfv_rgb c);
zf_status zfv_line(cairo_t *cr, double x0, double y0, double x1, double y1, double lw, zfv_rgb c);

/* ---- text (text.c), sizes in pixels/points, (x, y) the top-left of the text box ---- */
enum {
    ZFV_BOLD = 1, ZFV_MONO = 2, ZFV_CENTER = 4, ZFV_RIGHT = 8, ZFV_MIDDLE = 16, ZFV_BOTTOM = 32,
    ZFV_ROT90 = 64, ZFV_ITALIC = 128
};
#define ZFV_TITLE_SIZE 17.0
#define ZFV_TEXT_SIZE 12.0
#define ZFV_SMALL_SIZE 10.0
zf_status zfv_text(cairo_t *cr, double x, double y, const char *text, double size, int flags, zfv_rgb c);
/* Every text size is multiplied by the style's font size over ZFV_TEXT_SIZE between
 * zfv_style_begin (which returns the factor before, for zfv_style_end) and zfv_style_end; layout
 * lines that hold text scale by zfv_font_scale() too. */
double zfv_style_begin(const zf_viz_style *style);
void zfv_style_end(double prev);
double zfv_font_scale(void);
/* A page of natural size w x h drawn by fn, scaled as a whole to the style's width (if set), with
 * the style's font size in force for fn (and for the layout, which the caller computes between
 * its own zfv_style_begin/end). */
zf_status zfv_page_styled(zf_viz_doc *doc, const zf_viz_style *style, double w, double h, zfv_draw_fn fn,
                          void *ctx);
/* Like zfv_text, but the text is cut with "..." to fit `maxw`. */
zf_status zfv_text_fit(cairo_t *cr, double x, double y, const char *text, double size, int flags,
                       zfv_rgb c, double maxw);
/* Up to max_lines lines of `text` (split at '\n') from (x, y), line_h apart, each cut to maxw:
 * the first in ink, the others lighter (a caption's name, then its numbers). */
zf_status zfv_text_lines(cairo_t *cr, double x, double y, const char *text, double size, int flags, double line_h,
                         int max_lines, double maxw);
/* Wrapped at word boundaries to `maxw`, left aligned. */
zf_status zfv_text_wrap(cairo_t *cr, double x, double y, const char *text, double size, zfv_rgb c, double maxw);
void zfv_text_wrap_size(const char *text, double size, double maxw, double *w, double *h);
/* The text's logical width and height, measured without a page. */
void zfv_text_size(const char *text, double size, int flags, double *w, double *h);
/* A figure's bold title with its top-left at (x, *y); *y moves to just below it. */
zf_status zfv_title(cairo_t *cr, double x, double *y, const char *title);
/* New font options with the unhinted metrics text is measured with, on a page and off it (so text
 * comes out the size it was measured at). The caller destroys them. */
zf_status zfv_font_options_new(cairo_font_options_t **out);
/* Runs fn at the font scale `font` (zfv_font_scale() when a figure was laid out): a figure drawn
 * inside another's page (the report's) comes out as it was measured. */
zf_status zfv_draw_at_font(cairo_t *cr, double font, zfv_draw_fn fn, void *ctx);

/* ---- images (draw.c) ---- */
/* A new RGB24 surface of w x h in *out; *px and *stride (in uint32) give its pixels (0x00RRGGBB). */
zf_status zfv_surface_new(cairo_surface_t **out, int w, int h, uint32_t **px, int *stride);
static inline uint32_t zfv_pack(const uint8_t rgb[3])
{
    return ((uint32_t)rgb[0] << 16) | ((uint32_t)rgb[1] << 8) | rgb[2];
}
/* Paints surface s with its top-left at (x, y), scaled by (sx, sy), nearest neighbour, at alpha. */
zf_status zfv_paint_surface(cairo_t *cr, cairo_surface_t *s, double x, double y, double sx, double sy,
                            double alpha);
/* Paints an (h, w, 3) RGB image at (x, y) scaled to dw x dh (nearest neighbour), optionally grey
 * and lightened (for heat-map backgrounds). */
zf_status zfv_paint_rgb(cairo_t *cr, const uint8_t *rgb, int w, int h, double x, double y, double dw,
                        double dh, int washed);
/* Paints a (c, h, w) signed float image, c = 3 RGB planes or c = 1 grey plane, as
 * 0.5 + 0.5 v / s at (x, y) scaled to dw x dh, s = zf_viz_proj_scale over all planes at `clip`. */
zf_status zfv_paint_signed(cairo_t *cr, const float *planes, int c, int w, int h, double x, double y,
                           double dw, double dh, float clip);
/* Paints an (h, w) map through a colour map over [lo, hi] at (x, y) scaled to dw x dh. */
zf_status zfv_paint_map(cairo_t *cr, const float *map, int w, int h, float lo, float hi,
                        zf_viz_cmap cmap, double x, double y, double dw, double dh, double alpha);
/* The smallest and largest of n values, NaNs passed over; 0 and 0 when there are none. */
void zfv_range(const float *v, size_t n, float *lo, float *hi);
/* 0.5 + 0.5 v / s clamped to [0, 1] and to 8 bits by round(255 t) (s <= 0: mid grey). */
uint8_t zfv_signed_byte(float v, float s);
uint8_t zfv_unit_byte(float t);

/* ---- plots (plot.c) ---- */
/* The width a vertical colour bar of width bar_w over [lo, hi] needs with its tick labels. */
double zfv_colorbar_width(double lo, double hi, double bar_w);
/* A vertical bar (w wide, h high) at (x, y) with lo at the bottom and labelled ticks at the right.
 * Its colours are painted at `alpha` over the grey `bg` (0..1), as an overlay at that alpha over a
 * background of that grey shows them; alpha 1 gives the map's own colours. */
zf_status zfv_colorbar(cairo_t *cr, double x, double y, double w, double h, zf_viz_cmap cmap, double lo,
                       double hi, const char *label, double alpha, double bg);
/* Up to `max` round tick values covering [lo, hi]; returns the count. */
int zfv_ticks(double lo, double hi, int max, double *ticks);
/* With `integer`, only whole steps (for counts). */
int zfv_ticks_ex(double lo, double hi, int max, int integer, double *ticks);
/* "%g" with a precision that suits the tick spacing. */
void zfv_format_tick(char *buf, size_t len, double v, double step);

typedef struct zfv_axes {
    double x, y, w, h;           /* the plot area */
    double xlo, xhi, ylo, yhi;
    int ylog;                    /* log10 y axis (ylo, yhi are then powers of ten) */
    int yint;                    /* whole-number y ticks (counts) */
    int xint;                    /* whole-number x ticks (epochs) */
} zfv_axes;
/* Frame, ticks and labels of the axes. */
zf_status zfv_axes_draw(cairo_t *cr, const zfv_axes *ax, const char *xlabel, const char *ylabel);
double zfv_axes_px(const zfv_axes *ax, double x);
double zfv_axes_py(const zfv_axes *ax, double y);
/* A legend box with coloured swatches at (x, y); returns nothing drawn beyond its height. */
zf_status zfv_legend(cairo_t *cr, double x, double y, const char *const *names, const zfv_rgb *colors,
                     int n, double size);

/* ---- figures, for the report to draw inside its pages (each at natural size) ---- */
typedef struct zfv_figure {
    double w, h;
    zfv_draw_fn draw;
    void *ctx;
} zfv_figure;

/* Draws figure f scaled to fit the box (never above scale `max_scale`), centred horizontally. */
zf_status zfv_draw_fitted(cairo_t *cr, const zfv_figure *f, double x, double y, double w, double h,
                          double max_scale);

/* Filter grid internals (filters.c): the layout and a draw closure. */
typedef struct zfv_filters_fig {
    const zf_viz_filters_in *in;
    zf_viz_filters_opts opts;
    zf_viz_grid g;
    const char *caption;         /* override of the subtitle line */
    int no_title;
} zfv_filters_fig;
zf_status zfv_filters_prepare(zfv_filters_fig *f, const zf_viz_filters_in *in, const zf_viz_filters_opts *opts);
zf_status zfv_filters_draw(cairo_t *cr, void *ctx);

typedef struct zfv_sheet_fig {
    const zf_viz_sheet_in *in;
    zf_viz_sheet_opts opts;
    int first, count;            /* units on this page */
    double w, h;
    int key;                     /* captions too wide for their cells: numbers and a key instead */
    int key_n, key_cols;         /* key entries, columns */
    double key_colw, key_h;      /* a key column's width, the key's height with its heading */
    double font;                 /* the font scale the layout was made at */
} zfv_sheet_fig;
void zfv_sheet_prepare(zfv_sheet_fig *f, const zf_viz_sheet_in *in, const zf_viz_sheet_opts *opts,
                       int first, int count);
zf_status zfv_sheet_draw(cairo_t *cr, void *ctx);

typedef struct zfv_occl_fig {
    const zf_viz_occlusion *rows;
    int n;
    zf_viz_occlusion_opts opts;
    double w, h;
    double bar_b, bar_d;         /* widths of the colour bars of (b) and (d) with their labels */
    double font;                 /* the font scale the layout was made at */
    double legend_w;             /* the legend of (e): wide enough for its longest class name */
    int no_title;                /* set before prepare: leave out the figure's title line */
} zfv_occl_fig;
zf_status zfv_occl_prepare(zfv_occl_fig *f, const zf_viz_occlusion *rows, int n, const zf_viz_occlusion_opts *opts);
zf_status zfv_occl_draw(cairo_t *cr, void *ctx);

#endif
