/* Drawing helpers shared by the figures: colours, rectangles, and images from pixel arrays painted
 * with nearest-neighbour scaling (crisp taps in PNG, /Interpolate false in PDF). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "viz_internal.h"
#include "zf/alloc.h"

const zfv_rgb zfv_ink = {0.13, 0.13, 0.13};
const zfv_rgb zfv_ink_light = {0.42, 0.42, 0.42};
const zfv_rgb zfv_rule = {0.78, 0.78, 0.78};
const zfv_rgb zfv_dead_red = {0.86, 0.08, 0.08};
const zfv_rgb zfv_near_orange = {1.0, 0.58, 0.0};
const zfv_rgb zfv_white = {1, 1, 1};
/* Blue and vermilion (Okabe-Ito), distinguishable with the common colour-vision deficiencies. */
const zfv_rgb zfv_series[2] = {{0.0, 0.447, 0.698}, {0.835, 0.369, 0.0}};
/* Categorical colours for class maps (Tableau 10). */
const zfv_rgb zfv_category[ZFV_CATEGORIES] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
};

zf_status zfv_set_rgb(cairo_t *cr, zfv_rgb c)
{
    ZF_CAIRO(cr, cairo_set_source_rgb(cr, c.r, c.g, c.b));
    return ZF_OK;
}

zf_status zfv_fill_rect(cairo_t *cr, double x, double y, double w, double h, zfv_rgb c)
{
    ZFV_TRY(zfv_set_rgb(cr, c));
    ZF_CAIRO(cr, cairo_rectangle(cr, x, y, w, h));
    ZF_CAIRO(cr, cairo_fill(cr));
    return ZF_OK;
}

zf_status zfv_frame(cairo_t *cr, double x, double y, double w, double h, double lw, zfv_rgb c)
{
    ZFV_TRY(zfv_set_rgb(cr, c));
    ZF_CAIRO(cr, cairo_set_line_width(cr, lw));
    /* The stroke lies wholly outside the rectangle, so it never covers a tile's pixels. */
    ZF_CAIRO(cr, cairo_rectangle(cr, x - lw / 2, y - lw / 2, w + lw, h + lw));
    ZF_CAIRO(cr, cairo_stroke(cr));
    return ZF_OK;
}

zf_status zfv_line(cairo_t *cr, double x0, double y0, double x1, double y1, double lw, zfv_rgb c)
{
    ZFV_TRY(zfv_set_rgb(cr, c));
    ZF_CAIRO(cr, cairo_set_line_width(cr, lw));
    ZF_CAIRO(cr, cairo_move_to(cr, x0, y0));
    ZF_CAIRO(cr, cairo_line_to(cr, x1, y1));
    ZF_CAIRO(cr, cairo_stroke(cr));
    return ZF_OK;
}

uint8_t zfv_unit_byte(float t)
{
    if (!(t > 0))
        return 0;
    if (t >= 1)
        return 255;
    return (uint8_t)lrintf(t * 255.0f);
}

uint8_t zfv_signed_byte(float v, float s)
{
    if (!(s > 0))
        return zfv_unit_byte(0.5f);
    return zfv_unit_byte(0.5f + 0.5f * v / s);
}

zf_status zfv_surface_new(cairo_surface_t **out, int w, int h, uint32_t **px, int *stride)
{
    cairo_surface_t *s;
    *out = NULL;
    /* A failed create returns cairo's static error surface: nothing to free. */
    ZF_CAIRO(s, s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h));
    /* Pixels are written directly: flushed before, marked dirty after (zfv_paint_surface). */
    ZF_CAIRO(s, cairo_surface_flush(s));
    ZF_CAIRO(s, *px = (uint32_t *)cairo_image_surface_get_data(s));
    ZF_CAIRO(s, *stride = cairo_image_surface_get_stride(s) / 4);
    *out = s;
    return ZF_OK;
}

zf_status zfv_paint_surface(cairo_t *cr, cairo_surface_t *s, double x, double y, double sx, double sy,
                            double alpha)
{
    ZF_CAIRO(s, cairo_surface_mark_dirty(s));
    ZF_CAIRO(cr, cairo_save(cr));
    ZF_CAIRO(cr, cairo_translate(cr, x, y));
    ZF_CAIRO(cr, cairo_scale(cr, sx, sy));
    ZF_CAIRO(cr, cairo_set_source_surface(cr, s, 0, 0));
    cairo_pattern_t *p;
    ZF_CAIRO(cr, p = cairo_get_source(cr));
    /* Crisp taps when enlarging; averaging when shrinking (a patch into a small cell). */
    ZF_CAIRO(p, cairo_pattern_set_filter(p, sx >= 1 && sy >= 1 ? CAIRO_FILTER_NEAREST : CAIRO_FILTER_GOOD));
    /* Pad, not the default none: scaled edges then keep their colour instead of fading out. */
    ZF_CAIRO(p, cairo_pattern_set_extend(p, CAIRO_EXTEND_PAD));
    ZF_CAIRO(cr, cairo_rectangle(cr, 0, 0, cairo_image_surface_get_width(s), cairo_image_surface_get_height(s)));
    ZF_CAIRO(cr, cairo_clip(cr));
    if (alpha >= 1)
        ZF_CAIRO(cr, cairo_paint(cr));
    else
        ZF_CAIRO(cr, cairo_paint_with_alpha(cr, alpha));
    ZF_CAIRO(cr, cairo_restore(cr));
    return ZF_OK;
}

/* The RGB bytes of pixel o (row-major) of an image, for paint_pixels. */
typedef void (*pixel_fn)(const void *ctx, size_t o, uint8_t q[3]);

/* A w x h image made pixel by pixel painted at (x, y), scaled to dw x dh (nearest neighbour), at alpha. */
static zf_status paint_pixels(cairo_t *cr, int w, int h, pixel_fn pixel, const void *ctx, double x, double y,
                              double dw, double dh, double alpha)
{
    uint32_t *px;
    int stride;
    cairo_surface_t *s;
    ZFV_TRY(zfv_surface_new(&s, w, h, &px, &stride));
    for (int i = 0; i < h; i++) {
        for (int j = 0; j < w; j++) {
            uint8_t q[3];
            pixel(ctx, (size_t)i * w + j, q);
            px[(size_t)i * stride + j] = zfv_pack(q);
        }
    }
    zf_status st = zfv_paint_surface(cr, s, x, y, dw / w, dh / h, alpha);
    cairo_surface_destroy(s);
    return st;
}

static void rgb_pixel(const void *ctx, size_t o, uint8_t q[3])
{
    const uint8_t *p = (const uint8_t *)ctx + o * 3;
    q[0] = p[0];
    q[1] = p[1];
    q[2] = p[2];
}

/* Grey at half contrast, so a heat map on top reads as the map. */
static void washed_pixel(const void *ctx, size_t o, uint8_t q[3])
{
    const uint8_t *p = (const uint8_t *)ctx + o * 3;
    float lum = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
    q[0] = q[1] = q[2] = (uint8_t)lrintf(96.0f + 0.5f * lum);
}

zf_status zfv_paint_rgb(cairo_t *cr, const uint8_t *rgb, int w, int h, double x, double y, double dw,
                        double dh, int washed)
{
    return paint_pixels(cr, w, h, washed ? washed_pixel : rgb_pixel, rgb, x, y, dw, dh, 1.0);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

float zf_viz_proj_scale(const float *v, size_t n, float percentile)
{
    float m = 0;
    if (!(percentile > 0 && percentile < 100) || n == 0) {
        for (size_t i = 0; i < n; i++)
            m = fmaxf(m, fabsf(v[i]));
        return m;
    }
    float *a = zf_malloc(n * sizeof *a);
    if (!a) /* out of memory: the unclipped scale still shows the projection */
        return zf_viz_proj_scale(v, n, 0);
    for (size_t i = 0; i < n; i++)
        a[i] = fabsf(v[i]);
    qsort(a, n, sizeof *a, cmp_float);
    size_t rank = (size_t)ceil((double)percentile / 100.0 * (double)n);
    m = a[rank > 0 ? rank - 1 : 0];
    free(a);
    return m;
}

void zfv_range(const float *v, size_t n, float *lo, float *hi)
{
    float a = INFINITY, b = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        a = fminf(a, v[i]);
        b = fmaxf(b, v[i]);
    }
    if (!(a <= b))
        a = b = 0;
    *lo = a;
    *hi = b;
}

void zf_viz_prob_range(const zf_viz_style *style, const float *map, size_t n, float *lo, float *hi)
{
    if (style && style->prob_auto) {
        zfv_range(map, n, lo, hi);
    } else if (style && style->prob_hi > style->prob_lo) {
        *lo = style->prob_lo;
        *hi = style->prob_hi;
    } else {
        *lo = 0;
        *hi = 1;
    }
}

zf_status zf_viz_prob_range_parse(const char *s, zf_viz_style *style)
{
    if (!strcmp(s, "auto")) {
        style->prob_auto = 1;
        style->prob_lo = style->prob_hi = 0;
        return ZF_OK;
    }
    char *end;
    double lo = strtod(s, &end), hi = -1;
    if (end != s && *end == ':') {
        const char *t = end + 1;
        hi = strtod(t, &end);
        if (end == t || *end)
            hi = -1;
    }
    if (!(lo >= 0 && hi <= 1 && lo < hi))
        return zf_error(ZF_ERR_ARG, "probability range '%s' is not auto or LO:HI with 0 <= LO < HI <= 1", s);
    style->prob_auto = 0;
    style->prob_lo = (float)lo;
    style->prob_hi = (float)hi;
    return ZF_OK;
}

typedef struct signed_img {
    const float *r, *g, *b;
    float s;
} signed_img;

static void signed_pixel(const void *ctx, size_t o, uint8_t q[3])
{
    const signed_img *m = ctx;
    q[0] = zfv_signed_byte(m->r[o], m->s);
    q[1] = zfv_signed_byte(m->g[o], m->s);
    q[2] = zfv_signed_byte(m->b[o], m->s);
}

zf_status zfv_paint_signed(cairo_t *cr, const float *planes, int c, int w, int h, double x, double y,
                           double dw, double dh, float clip)
{
    size_t hw = (size_t)w * h;
    /* A grey plane is shown in all three colours, so grey and RGB follow one contrast rule. */
    signed_img m = {planes, c == 3 ? planes + hw : planes, c == 3 ? planes + 2 * hw : planes,
                    zf_viz_proj_scale(planes, (size_t)c * hw, clip)};
    return paint_pixels(cr, w, h, signed_pixel, &m, x, y, dw, dh, 1.0);
}

typedef struct map_img {
    const float *map;
    float lo, range;
    zf_viz_cmap cmap;
} map_img;

static void map_pixel(const void *ctx, size_t o, uint8_t q[3])
{
    const map_img *m = ctx;
    zf_viz_cmap_rgb(m->cmap, m->range > 0 ? (m->map[o] - m->lo) / m->range : 0.0f, q);
}

zf_status zfv_paint_map(cairo_t *cr, const float *map, int w, int h, float lo, float hi,
                        zf_viz_cmap cmap, double x, double y, double dw, double dh, double alpha)
{
    map_img m = {map, lo, hi - lo, cmap};
    return paint_pixels(cr, w, h, map_pixel, &m, x, y, dw, dh, alpha);
}

zf_status zfv_draw_fitted(cairo_t *cr, const zfv_figure *f, double x, double y, double w, double h,
                          double max_scale)
{
    double s = fmin(w / f->w, h / f->h);
    if (s > max_scale)
        s = max_scale;
    double ox = x + (w - f->w * s) / 2;
    ZF_CAIRO(cr, cairo_save(cr));
    ZF_CAIRO(cr, cairo_translate(cr, ox, y));
    ZF_CAIRO(cr, cairo_scale(cr, s, s));
    ZF_CAIRO(cr, cairo_rectangle(cr, 0, 0, f->w, f->h));
    ZF_CAIRO(cr, cairo_clip(cr));
    ZFV_TRY(f->draw(cr, f->ctx));
    ZF_CAIRO(cr, cairo_restore(cr));
    return ZF_OK;
}

typedef struct scaled_page {
    zfv_draw_fn fn;
    void *ctx;
    double s;
} scaled_page;

static zf_status draw_scaled(cairo_t *cr, void *vctx)
{
    const scaled_page *p = vctx;
    ZF_CAIRO(cr, cairo_scale(cr, p->s, p->s));
    return p->fn(cr, p->ctx);
}

zf_status zfv_page_styled(zf_viz_doc *doc, const zf_viz_style *style, double w, double h, zfv_draw_fn fn,
                          void *ctx)
{
    double prev = zfv_style_begin(style);
    zf_status st;
    if (style && style->width > 0 && w > 0) {
        scaled_page p = {fn, ctx, style->width / w};
        st = zfv_page(doc, style->width, h * p.s, draw_scaled, &p);
    } else {
        st = zfv_page(doc, w, h, fn, ctx);
    }
    zfv_style_end(prev);
    return st;
}

void zf_viz_input_to_rgb(uint8_t *rgb, const float *input, const zf_preproc *pre, int h, int w)
{
    size_t hw = (size_t)h * w;
    float scale = pre->scale > 0 ? pre->scale : 1.0f;
    if (pre->order == ZF_COLOR_GREY) {
        /* One luma plane, normalised with the first mean and std (zf_image_to_input). */
        float sd = pre->std[0] != 0 ? pre->std[0] : 1.0f;
        for (size_t i = 0; i < hw; i++) {
            float p = (input[i] * sd + pre->mean[0]) / scale * 255.0f;
            uint8_t v = p <= 0 ? 0 : p >= 255 ? 255 : (uint8_t)lrintf(p);
            rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = v;
        }
        return;
    }
    for (int c = 0; c < 3; c++) {
        /* Plane c of the input holds colour `rc` (R=0, G=1, B=2). */
        int rc = pre->order == ZF_COLOR_BGR ? 2 - c : c;
        float sd = pre->std[rc] != 0 ? pre->std[rc] : 1.0f;
        const float *plane = input + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++) {
            float p = (plane[i] * sd + pre->mean[rc]) / scale * 255.0f;
            rgb[i * 3 + rc] = p <= 0 ? 0 : p >= 255 ? 255 : (uint8_t)lrintf(p);
        }
    }
}

void zf_viz_proj_to_rgb(float *proj, const zf_preproc *pre, int h, int w)
{
    if (pre->order != ZF_COLOR_BGR)
        return;
    size_t hw = (size_t)h * w;
    for (size_t i = 0; i < hw; i++) {
        float t = proj[i];
        proj[i] = proj[2 * hw + i];
        proj[2 * hw + i] = t;
    }
}

/* About square, preferring a column count in [sqrt n, 2 sqrt n] that divides n (96 -> 12 x 8). */
static int auto_cols(int n)
{
    int lo = (int)ceil(sqrt((double)n));
    for (int c = lo; c <= 2 * lo && c <= n; c++)
        if (n % c == 0)
            return c;
    return lo;
}

zf_status zfv_grid_tiles(zf_viz_grid *g, int total, int max, int h, int w, int zoom, int cols, const char *what)
{
    g->n = max > 0 && max < total ? max : total;
    int longest = h > w ? h : w;
    g->zoom = zoom > 0 ? zoom : (int)ceil(48.0 / longest);
    g->tile_w = w * g->zoom;
    g->tile_h = h * g->zoom;
    g->cols = cols > 0 ? (cols < g->n ? cols : g->n) : auto_cols(g->n);
    g->rows = (g->n + g->cols - 1) / g->cols;
    if ((int64_t)g->tile_w * g->cols > 30000 || (int64_t)g->tile_h * g->rows > 30000)
        return zf_error(ZF_ERR_ARG, "%s: a %d x %d grid of %d-pixel tiles is too large; lower the zoom", what,
                        g->cols, g->rows, g->tile_w);
    return ZF_OK;
}
