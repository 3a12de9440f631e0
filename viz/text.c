/* Text through pangocairo: one sans (or mono) face, sizes in pixels, measured the same way with
 * or without a page so that layouts can be computed before drawing. */
#include <math.h>
#include <pango/pangocairo.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"

/* The style's font size over the default, in force while one figure is laid out and drawn
 * (zfv_style_begin/end). Kept per thread beside the thread's measuring context rather than passed
 * to every text call: the figures measure and draw text in many places, and all of them must
 * scale alike for layouts and drawings to agree. */
static _Thread_local double font_scale = 1.0;

double zfv_font_scale(void) { return font_scale; }

double zfv_style_begin(const zf_viz_style *style)
{
    double prev = font_scale;
    font_scale = style && style->font_size > 0 ? style->font_size / ZFV_TEXT_SIZE : 1.0;
    return prev;
}

void zfv_style_end(double prev) { font_scale = prev; }

zf_status zfv_draw_at_font(cairo_t *cr, double font, zfv_draw_fn fn, void *ctx)
{
    double prev = zfv_style_begin(&(zf_viz_style){.font_size = font * ZFV_TEXT_SIZE});
    zf_status st = fn(cr, ctx);
    zfv_style_end(prev);
    return st;
}

static PangoFontDescription *font_for(double size, int flags)
{
    size *= font_scale;
    PangoFontDescription *fd = pango_font_description_new();
    pango_font_description_set_family(fd, (flags & ZFV_MONO) ? "DejaVu Sans Mono,monospace"
                                                             : "DejaVu Sans,sans-serif");
    pango_font_description_set_weight(fd, (flags & ZFV_BOLD) ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
    if (flags & ZFV_ITALIC)
        pango_font_description_set_style(fd, PANGO_STYLE_ITALIC);
    pango_font_description_set_absolute_size(fd, size * PANGO_SCALE);
    return fd;
}

static void layout_set(PangoLayout *lay, const char *text, double size, int flags)
{
    PangoFontDescription *fd = font_for(size, flags);
    pango_layout_set_font_description(lay, fd);
    pango_font_description_free(fd);
    pango_layout_set_text(lay, text, -1);
}

zf_status zfv_font_options_new(cairo_font_options_t **out)
{
    cairo_font_options_t *fo;
    *out = NULL;
    ZF_CAIRO(fo, fo = cairo_font_options_create());
    zf_status st = ZF_OK;
    ZF_CAIRO_GOTO(fo, cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF), st, fail);
    ZF_CAIRO_GOTO(fo, cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE), st, fail);
    ZF_CAIRO_GOTO(fo, cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY), st, fail);
    *out = fo;
    return ZF_OK;
fail:
    cairo_font_options_destroy(fo);
    return st;
}

/* Unhinted metrics, as pages have them (doc.c), so text measures the same with or without a page. */
static zf_status set_measure_options(PangoContext *ctx)
{
    cairo_font_options_t *fo;
    ZFV_TRY(zfv_font_options_new(&fo));
    pango_cairo_context_set_font_options(ctx, fo);
    cairo_font_options_destroy(fo);
    return ZF_OK;
}

/* A pango context for measuring without a page, one per thread. If its font options cannot be set
 * (out of memory) it measures with the defaults: sizes then differ by a fraction of a pixel. */
static PangoContext *measure_context(void)
{
    static _Thread_local PangoContext *ctx;
    if (ctx)
        return ctx;
    ctx = pango_font_map_create_context(pango_cairo_font_map_get_default());
    (void)set_measure_options(ctx);
    return ctx;
}

void zfv_text_size(const char *text, double size, int flags, double *w, double *h)
{
    PangoLayout *lay = pango_layout_new(measure_context());
    layout_set(lay, text, size, flags);
    int pw, ph;
    pango_layout_get_size(lay, &pw, &ph);
    g_object_unref(lay);
    if (flags & ZFV_ROT90) {
        int t = pw;
        pw = ph;
        ph = t;
    }
    if (w)
        *w = (double)pw / PANGO_SCALE;
    if (h)
        *h = (double)ph / PANGO_SCALE;
}

static zf_status show(cairo_t *cr, PangoLayout *lay, double x, double y, int flags, zfv_rgb c)
{
    int pw, ph;
    pango_layout_get_size(lay, &pw, &ph);
    double w = (double)pw / PANGO_SCALE, h = (double)ph / PANGO_SCALE;
    /* The box the text occupies on the page, aligned at (x, y). */
    double bw = (flags & ZFV_ROT90) ? h : w, bh = (flags & ZFV_ROT90) ? w : h;
    if (flags & ZFV_CENTER)
        x -= bw / 2;
    else if (flags & ZFV_RIGHT)
        x -= bw;
    if (flags & ZFV_MIDDLE)
        y -= bh / 2;
    else if (flags & ZFV_BOTTOM)
        y -= bh;
    ZF_CAIRO(cr, cairo_save(cr));
    ZFV_TRY(zfv_set_rgb(cr, c));
    if (flags & ZFV_ROT90) {
        /* Reads bottom to top: the text's top edge faces left. */
        ZF_CAIRO(cr, cairo_translate(cr, x, y + bh));
        ZF_CAIRO(cr, cairo_rotate(cr, -G_PI / 2));
    } else {
        ZF_CAIRO(cr, cairo_translate(cr, x, y));
    }
    ZF_CAIRO(cr, pango_cairo_update_layout(cr, lay));
    ZF_CAIRO(cr, pango_cairo_show_layout(cr, lay));
    ZF_CAIRO(cr, cairo_restore(cr));
    return ZF_OK;
}

/* `text` shown in a layout of its own; maxw > 0 limits its width, by "..." or, with `wrap`, by
 * breaking lines between words. */
static zf_status show_text(cairo_t *cr, double x, double y, const char *text, double size, int flags, zfv_rgb c,
                           double maxw, int wrap)
{
    PangoLayout *lay;
    ZF_CAIRO(cr, lay = pango_cairo_create_layout(cr));
    if (!lay)
        return zf_error(ZF_ERR_NOMEM, "viz: pango_cairo_create_layout failed");
    layout_set(lay, text, size, flags);
    if (maxw > 0) {
        pango_layout_set_width(lay, (int)(maxw * PANGO_SCALE));
        if (wrap)
            pango_layout_set_wrap(lay, PANGO_WRAP_WORD);
        else
            pango_layout_set_ellipsize(lay, PANGO_ELLIPSIZE_END);
    }
    zf_status st = show(cr, lay, x, y, flags, c);
    g_object_unref(lay);
    return st;
}

zf_status zfv_text(cairo_t *cr, double x, double y, const char *text, double size, int flags, zfv_rgb c)
{
    return show_text(cr, x, y, text, size, flags, c, 0, 0);
}

zf_status zfv_title(cairo_t *cr, double x, double *y, const char *title)
{
    double th;
    zfv_text_size(title, ZFV_TITLE_SIZE, ZFV_BOLD, NULL, &th);
    ZFV_TRY(zfv_text(cr, x, *y, title, ZFV_TITLE_SIZE, ZFV_BOLD, zfv_ink));
    *y += ceil(th) + 4;
    return ZF_OK;
}

zf_status zfv_text_fit(cairo_t *cr, double x, double y, const char *text, double size, int flags,
                       zfv_rgb c, double maxw)
{
    return show_text(cr, x, y, text, size, flags & ~ZFV_ROT90, c, maxw, 0);
}

zf_status zfv_text_lines(cairo_t *cr, double x, double y, const char *text, double size, int flags, double line_h,
                         int max_lines, double maxw)
{
    char line[256];
    int k = 0;
    for (const char *p = text; p && *p && k < max_lines; k++) {
        const char *nl = strchr(p, '\n');
        const size_t n = nl ? (size_t)(nl - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        if (line[0])
            ZFV_TRY(zfv_text_fit(cr, x, y + k * line_h, line, size, flags, k ? zfv_ink_light : zfv_ink, maxw));
        p = nl ? nl + 1 : NULL;
    }
    return ZF_OK;
}

zf_status zfv_text_wrap(cairo_t *cr, double x, double y, const char *text, double size, zfv_rgb c, double maxw)
{
    return show_text(cr, x, y, text, size, 0, c, maxw, 1);
}

void zfv_text_wrap_size(const char *text, double size, double maxw, double *w, double *h)
{
    PangoLayout *lay = pango_layout_new(measure_context());
    layout_set(lay, text, size, 0);
    pango_layout_set_width(lay, (int)(maxw * PANGO_SCALE));
    pango_layout_set_wrap(lay, PANGO_WRAP_WORD);
    int pw, ph;
    pango_layout_get_size(lay, &pw, &ph);
    g_object_unref(lay);
    if (w)
        *w = (double)pw / PANGO_SCALE;
    if (h)
        *h = (double)ph / PANGO_SCALE;
}

#if defined(__SANITIZE_ADDRESS__)
#define ZFV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ZFV_ASAN 1
#endif
#endif
#ifdef ZFV_ASAN
/* fontconfig keeps the font patterns pango and cairo look up (partly from pango's own loader
 * thread) until the process ends and never frees them; LeakSanitizer would report them for every
 * program that draws text. Only stacks through libfontconfig are silenced. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "print_suppressions=0"; }
#endif
