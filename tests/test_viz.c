/* Tests of the pictures: pixels of rendered grids decoded with libpng against values computed
 * here from the documented mappings, grid geometry, colour-map end points, PDF page counts
 * (pdfinfo), the filter spectrum against a naive DFT, and argument errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "zf/viz.h"

/* ---- helpers ---- */

static void expect_pixel(const tu_rgb *im, int x, int y, int r, int g, int b, const char *what)
{
    const uint8_t *p = tu_px(im, x, y);
    cr_expect(p[0] == r && p[1] == g && p[2] == b, "%s: pixel (%d, %d) is (%d, %d, %d), expected (%d, %d, %d)",
              what, x, y, p[0], p[1], p[2], r, g, b);
}

/* Expects every pixel of the rectangle to be (r, g, b); reports the first that is not. */
static void expect_rect(const tu_rgb *im, int x0, int y0, int w, int h, int r, int g, int b, const char *what)
{
    for (int y = y0; y < y0 + h; y++)
        for (int x = x0; x < x0 + w; x++) {
            const uint8_t *p = tu_px(im, x, y);
            if (p[0] != r || p[1] != g || p[2] != b) {
                cr_expect(0, "%s: first mismatch at pixel (%d, %d): (%d, %d, %d), expected (%d, %d, %d)", what, x, y,
                          p[0], p[1], p[2], r, g, b);
                return;
            }
        }
}

/* Where the (h, w, 3) block `want` lies in the page, pixel for pixel (the first match in row-major
 * order); 0 when it is nowhere. For pictures whose offset a renderer does not publish. */
static int find_block(const tu_rgb *im, const uint8_t *want, int w, int h, int *bx, int *by)
{
    for (int y = 0; y + h <= im->h; y++)
        for (int x = 0; x + w <= im->w; x++) {
            int ok = 1;
            for (int r = 0; r < h && ok; r++)
                ok = !memcmp(im->px + ((size_t)(y + r) * im->w + x) * 3, want + (size_t)r * w * 3, (size_t)w * 3);
            if (ok) {
                *bx = x;
                *by = y;
                return 1;
            }
        }
    return 0;
}

/* The (h*z, w*z, 3) block of (h, w) grey bytes enlarged z times by nearest neighbour. */
static uint8_t *grey_block(const uint8_t *grey, int w, int h, int z)
{
    uint8_t *b = malloc((size_t)w * z * h * z * 3);
    cr_assert(b);
    for (int y = 0; y < h * z; y++)
        for (int x = 0; x < w * z; x++)
            memset(b + ((size_t)y * w * z + x) * 3, grey[(y / z) * w + x / z], 3);
    return b;
}

/* round(255 t) for t in [0, 1], the documented 8-bit mapping, in double. */
static int byte_of(double t)
{
    if (t < 0)
        t = 0;
    if (t > 1)
        t = 1;
    return (int)floor(255.0 * t + 0.5);
}

static int signed_byte(double v, double s) { return byte_of(s > 0 ? 0.5 + 0.5 * v / s : 0.5); }

/* Pages of a PDF file according to poppler's pdfinfo. */
static int pdf_pages(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "pdfinfo '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run pdfinfo");
    char line[512];
    int pages = -1;
    while (fgets(line, sizeof line, p))
        if (!strncmp(line, "Pages:", 6))
            pages = atoi(line + 6);
    int rc = pclose(p);
    cr_assert(rc == 0 && pages >= 0, "pdfinfo failed on %s (poppler-utils installed?)", path);
    return pages;
}

TU_RENDER_CASE(filters)

/* ---- colour maps ---- */

Test(cmap, end_points_are_the_published_colours)
{
    uint8_t c[3];
    zf_viz_cmap_rgb(ZF_VIZ_CMAP_VIRIDIS, 0.0f, c);
    cr_expect(c[0] == 0x44 && c[1] == 0x01 && c[2] == 0x54, "viridis(0) = #%02x%02x%02x, expected #440154", c[0],
              c[1], c[2]);
    zf_viz_cmap_rgb(ZF_VIZ_CMAP_VIRIDIS, 1.0f, c);
    cr_expect(c[0] == 0xfd && c[1] == 0xe7 && c[2] == 0x25, "viridis(1) = #%02x%02x%02x, expected #fde725", c[0],
              c[1], c[2]);
    zf_viz_cmap_rgb(ZF_VIZ_CMAP_GREY, 0.0f, c);
    cr_expect(c[0] == 0 && c[1] == 0 && c[2] == 0);
    zf_viz_cmap_rgb(ZF_VIZ_CMAP_GREY, 1.0f, c);
    cr_expect(c[0] == 255 && c[1] == 255 && c[2] == 255);
}

Test(cmap, out_of_range_and_nan_clamp_to_the_ends)
{
    uint8_t lo[3], hi[3], c[3];
    zf_viz_cmap_rgb(ZF_VIZ_CMAP_VIRIDIS, 0.0f, lo);
    zf_viz_cmap_rgb(ZF_VIZ_CMAP_VIRIDIS, 1.0f, hi);
    zf_viz_cmap_rgb(ZF_VIZ_CMAP_VIRIDIS, -3.0f, c);
    cr_expect(!memcmp(c, lo, 3));
    zf_viz_cmap_rgb(ZF_VIZ_CMAP_VIRIDIS, NAN, c);
    cr_expect(!memcmp(c, lo, 3));
    zf_viz_cmap_rgb(ZF_VIZ_CMAP_VIRIDIS, 7.0f, c);
    cr_expect(!memcmp(c, hi, 3));
}

Test(cmap, viridis_grows_lighter_along_the_map)
{
    /* Perceptually uniform maps increase in lightness; check luma never drops between entries. */
    double prev = -1;
    for (int i = 0; i < 256; i++) {
        uint8_t c[3];
        zf_viz_cmap_rgb(ZF_VIZ_CMAP_VIRIDIS, i / 255.0f, c);
        double luma = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
        cr_expect(luma >= prev - 0.5, "luma drops at entry %d: %.2f after %.2f", i, luma, prev);
        prev = luma;
    }
}

Test(cmap, names_parse)
{
    zf_viz_cmap m;
    cr_expect_eq(zf_viz_cmap_parse("viridis", &m), ZF_OK);
    cr_expect_eq(m, ZF_VIZ_CMAP_VIRIDIS);
    cr_expect_eq(zf_viz_cmap_parse("gray", &m), ZF_OK);
    cr_expect_eq(m, ZF_VIZ_CMAP_GREY);
    cr_expect_eq(zf_viz_cmap_parse("jet", &m), ZF_ERR_ARG);
    cr_expect(strstr(zf_last_error(), "jet"), "message: %s", zf_last_error());
}

/* ---- filter grids ---- */

Test(filters, bright_tap_lands_at_its_tile_and_pixel)
{
    /* 7 filters of 3x5x3 (rows 5, columns 3: a transposition would move the tap). Filter 4 has one
     * tap, red channel, row 3, column 1; every other weight is 0. */
    enum { K = 7, C = 3, KH = 5, KW = 3, F = 4, TY = 3, TX = 1 };
    float w[K * C * KH * KW] = {0};
    w[((F * C + 0) * KH + TY) * KW + TX] = 1.0f;
    filters_case fc = {{"test", w, K, C, KH, KW, 0}, zf_viz_filters_defaults()};
    fc.opts.zoom = 3;
    fc.opts.gap = 4;
    fc.opts.cols = 3;
    zf_viz_grid g;
    cr_assert_eq(zf_viz_filters_layout(&g, &fc.in, &fc.opts), ZF_OK, "%s", zf_last_error());
    cr_expect_eq(g.tile_w, KW * 3);
    cr_expect_eq(g.tile_h, KH * 3);
    cr_expect_eq(g.cols, 3);
    cr_expect_eq(g.rows, 3);
    cr_expect_eq(g.pitch_x, KW * 3 + 4);
    cr_expect_eq(g.pitch_y, KH * 3 + 4);
    tu_rgb im = tu_render_png(render_filters, &fc);
    cr_expect_eq(im.w, g.width);
    cr_expect_eq(im.h, g.height);
    int x0 = g.grid_x + (F % 3) * g.pitch_x + g.tile_dx, y0 = g.grid_y + (F / 3) * g.pitch_y;
    int hi = signed_byte(1, 1), mid = signed_byte(0, 1);
    cr_expect_eq(hi, 255);
    cr_expect_eq(mid, 128);
    /* The tap's 3x3 block is red on grey, every other pixel of the tile mid grey. */
    expect_rect(&im, x0 + TX * 3, y0 + TY * 3, 3, 3, hi, mid, mid, "the bright tap");
    expect_rect(&im, x0, y0, g.tile_w, TY * 3, mid, mid, mid, "tile rows above the tap");
    expect_rect(&im, x0, y0 + (TY + 1) * 3, g.tile_w, g.tile_h - (TY + 1) * 3, mid, mid, mid, "rows below");
    expect_rect(&im, x0, y0 + TY * 3, TX * 3, 3, mid, mid, mid, "left of the tap");
    expect_rect(&im, x0 + (TX + 1) * 3, y0 + TY * 3, g.tile_w - (TX + 1) * 3, 3, mid, mid, mid, "right of the tap");
    /* Filter 4 is live: the gap just left of it is page white (its dead neighbour's red frame
     * is 2 pixels wide and hugs that neighbour). */
    expect_pixel(&im, x0 - 1, y0 + 5, 255, 255, 255, "gap left of filter 4");
    const uint8_t *fr = tu_px(&im, x0 - 4, y0 + 5);
    cr_expect(fr[0] > 180 && fr[1] < 60 && fr[2] < 60, "dead filter 3's frame is (%d, %d, %d), not red", fr[0],
              fr[1], fr[2]);
    /* Every other (all-zero, dead) filter is mid grey. */
    for (int f = 0; f < K; f++) {
        if (f == F)
            continue;
        char what[32];
        snprintf(what, sizeof what, "dead filter %d", f);
        expect_rect(&im, g.grid_x + (f % 3) * g.pitch_x + g.tile_dx, g.grid_y + (f / 3) * g.pitch_y, g.tile_w,
                    g.tile_h, mid, mid, mid, what);
    }
    free(im.px);
}

Test(filters, bgr_weights_show_channel_0_as_blue)
{
    enum { K = 3, C = 3, KH = 3, KW = 3 };
    float w[K * C * KH * KW] = {0};
    for (int f = 0; f < K; f++)
        w[((f * C + 0) * KH + 1) * KW + 2] = -0.5f; /* channel 0 (blue), negative */
    filters_case fc = {{NULL, w, K, C, KH, KW, 1}, zf_viz_filters_defaults()};
    fc.opts.zoom = 2;
    zf_viz_grid g;
    cr_assert_eq(zf_viz_filters_layout(&g, &fc.in, &fc.opts), ZF_OK);
    tu_rgb im = tu_render_png(render_filters, &fc);
    int x0 = g.grid_x + g.tile_dx, y0 = g.grid_y;
    expect_rect(&im, x0 + 2 * 2, y0 + 1 * 2, 2, 2, 128, 128, signed_byte(-0.5, 0.5), "blue-channel tap");
    free(im.px);
}

Test(filters, per_filter_and_shared_scales_follow_their_definitions)
{
    /* Two one-channel filters (grey tiles): filter 0 has taps 2 and -1, filter 1 one tap 0.5. */
    enum { K = 2, KH = 3, KW = 5 };
    float w[K * KH * KW] = {0};
    w[0 * KH * KW + 1 * KW + 1] = 2.0f;
    w[0 * KH * KW + 2 * KW + 4] = -1.0f;
    w[1 * KH * KW + 0 * KW + 3] = 0.5f;
    for (int shared = 0; shared < 2; shared++) {
        filters_case fc = {{NULL, w, K, 1, KH, KW, 0}, zf_viz_filters_defaults()};
        fc.opts.zoom = 4;
        fc.opts.scale = shared ? ZF_VIZ_SCALE_SHARED : ZF_VIZ_SCALE_PER_FILTER;
        fc.opts.cols = 2;
        zf_viz_grid g;
        cr_assert_eq(zf_viz_filters_layout(&g, &fc.in, &fc.opts), ZF_OK);
        tu_rgb im = tu_render_png(render_filters, &fc);
        double s0 = 2.0, s1 = shared ? 2.0 : 0.5;
        int x0 = g.grid_x + g.tile_dx, x1 = x0 + g.pitch_x, y = g.grid_y;
        int a = signed_byte(2.0, s0), b = signed_byte(-1.0, s0), c = signed_byte(0.5, s1), z = signed_byte(0, 1);
        const char *mode = shared ? "shared" : "per-filter";
        expect_rect(&im, x0 + 1 * 4, y + 1 * 4, 4, 4, a, a, a, mode);
        expect_rect(&im, x0 + 4 * 4, y + 2 * 4, 4, 4, b, b, b, mode);
        expect_rect(&im, x1 + 3 * 4, y + 0 * 4, 4, 4, c, c, c, mode);
        expect_rect(&im, x1, y + 1 * 4, 4 * KW, 4, z, z, z, mode);
        free(im.px);
    }
    cr_expect_eq(signed_byte(0.5, 2.0), 159); /* the shared-scale value, spelled out */
}

Test(filters, grid_geometry_columns_gaps_and_labels)
{
    enum { K = 13, C = 4, KH = 3, KW = 3 };
    float w[K * C * KH * KW];
    tu_fill_uniform(w, sizeof w / sizeof w[0], 11, -1, 1);
    filters_case fc = {{"geometry", w, K, C, KH, KW, 0}, zf_viz_filters_defaults()};
    zf_viz_grid g;
    cr_assert_eq(zf_viz_filters_layout(&g, &fc.in, &fc.opts), ZF_OK);
    /* 13 has no divisor in [4, 8]: 4 columns, 4 rows; tiles of about 48 pixels. */
    cr_expect_eq(g.cols, 4);
    cr_expect_eq(g.rows, 4);
    cr_expect_eq(g.zoom, 16);
    cr_expect_eq(g.n, 13);
    fc.opts.cols = 5;
    cr_assert_eq(zf_viz_filters_layout(&g, &fc.in, &fc.opts), ZF_OK);
    cr_expect_eq(g.cols, 5);
    cr_expect_eq(g.rows, 3);
    fc.opts.max_filters = 6;
    cr_assert_eq(zf_viz_filters_layout(&g, &fc.in, &fc.opts), ZF_OK);
    cr_expect_eq(g.n, 6);
    cr_expect_eq(g.rows, 2);
    fc.opts.max_filters = 0;

    /* Rendered: the gap columns and rows between tiles are page white over the whole grid. */
    fc.opts.zoom = 5;
    fc.opts.gap = 3;
    cr_assert_eq(zf_viz_filters_layout(&g, &fc.in, &fc.opts), ZF_OK);
    tu_rgb im = tu_render_png(render_filters, &fc);
    int grid_h = g.rows * g.pitch_y - fc.opts.gap, grid_w = g.cols * g.pitch_x - fc.opts.gap;
    for (int c = 1; c < g.cols; c++)
        expect_rect(&im, g.grid_x + c * g.pitch_x - fc.opts.gap, g.grid_y, fc.opts.gap, grid_h, 255, 255, 255,
                    "gap column");
    for (int r = 1; r < g.rows; r++)
        expect_rect(&im, g.grid_x, g.grid_y + r * g.pitch_y - fc.opts.gap, grid_w, fc.opts.gap, 255, 255, 255, "gap row");
    cr_expect(g.grid_x + grid_w <= g.width && g.grid_y + grid_h <= g.height);
    free(im.px);

    /* Labels add one text line per label under each tile and keep tiles where the layout says. */
    zf_viz_grid gl;
    fc.opts.labels = ZF_VIZ_LABEL_INDEX | ZF_VIZ_LABEL_RMS;
    cr_assert_eq(zf_viz_filters_layout(&gl, &fc.in, &fc.opts), ZF_OK);
    cr_expect_gt(gl.pitch_y, g.pitch_y);
    cr_expect_geq(gl.pitch_x, g.pitch_x);
    im = tu_render_png(render_filters, &fc);
    /* Tile 12's top-left tap, recomputed from the weights. */
    const float *f12 = w + 12 * C * KH * KW;
    double m = 0, s = 0;
    for (int i = 0; i < KH * KW; i++) {
        double mean = 0;
        for (int c = 0; c < C; c++)
            mean += f12[c * KH * KW + i];
        s = fmax(s, fabs(mean / C));
        if (i == 0)
            m = mean / C;
    }
    int v = signed_byte(m, s);
    expect_rect(&im, gl.grid_x + (12 % gl.cols) * gl.pitch_x + gl.tile_dx, gl.grid_y + (12 / gl.cols) * gl.pitch_y,
                5, 5, v, v, v, "labelled grid, tile 12 tap (0, 0)");
    free(im.px);
}

Test(filters, stats_mark_dead_and_near_dead)
{
    enum { K = 5, N = 9 };
    float w[K * N];
    const float level[K] = {1.0f, 1.2f, 0.9f, 0.05f, 0.0f};
    for (int f = 0; f < K; f++)
        for (int i = 0; i < N; i++)
            w[f * N + i] = (i % 2 ? 1 : -1) * level[f];
    float rms[K];
    zf_viz_filter_state st[K];
    int marked = zf_viz_filter_stats(rms, st, w, K, N, 0.1f);
    for (int f = 0; f < K; f++)
        cr_expect(fabsf(rms[f] - level[f]) < 1e-6f, "rms[%d] = %g, expected %g", f, rms[f], level[f]);
    cr_expect_eq(marked, 2);
    cr_expect_eq(st[0], ZF_VIZ_FILTER_LIVE);
    cr_expect_eq(st[2], ZF_VIZ_FILTER_LIVE);
    cr_expect_eq(st[3], ZF_VIZ_FILTER_NEAR_DEAD, "0.05 < 0.1 x median 0.9");
    cr_expect_eq(st[4], ZF_VIZ_FILTER_DEAD);
}

Test(filters, bad_arguments_name_the_problem)
{
    float w[2 * 5 * 3 * 3] = {0};
    zf_viz_filters_in in = {"conv2", w, 2, 5, 3, 3, 0};
    zf_viz_filters_opts o = zf_viz_filters_defaults();
    zf_viz_grid g;
    o.mode = ZF_VIZ_TILE_RGB;
    cr_expect_eq(zf_viz_filters_layout(&g, &in, &o), ZF_ERR_SHAPE);
    cr_expect(strstr(zf_last_error(), "5 input channels"), "message: %s", zf_last_error());
    o.mode = ZF_VIZ_TILE_CHANNEL;
    o.channel = 5;
    cr_expect_eq(zf_viz_filters_layout(&g, &in, &o), ZF_ERR_ARG);
    cr_expect(strstr(zf_last_error(), "channel 5"), "message: %s", zf_last_error());
    o.channel = 4;
    cr_expect_eq(zf_viz_filters_layout(&g, &in, &o), ZF_OK);
}

/* ---- activation grids ---- */

TU_RENDER_CASE(maps)

Test(maps, colour_map_end_points_land_on_the_extreme_values)
{
    /* 3 maps of 5x7; map 1 is map 0 halved, map 2 constant. */
    enum { C = 3, H = 5, W = 7 };
    float m[C * H * W];
    tu_fill_uniform(m, H * W, 5, 0.5f, 1.5f);
    m[2 * W + 3] = 4.0f; /* the maximum */
    m[4 * W + 6] = -1.0f; /* the minimum */
    for (int i = 0; i < H * W; i++) {
        m[H * W + i] = 0.5f * m[i];
        m[2 * H * W + i] = 1.0f;
    }
    maps_case mc = {{"maps", m, C, H, W, NULL}, zf_viz_maps_defaults()};
    mc.opts.zoom = 3;
    zf_viz_grid g;
    cr_assert_eq(zf_viz_maps_layout(&g, &mc.in, &mc.opts), ZF_OK, "%s", zf_last_error());
    cr_expect_eq(g.tile_w, W * 3);
    tu_rgb im = tu_render_png(render_maps, &mc);
    int x0 = g.grid_x + g.tile_dx, y0 = g.grid_y;
    /* Shared scale over [-1, 4]: the extremes are viridis's end points. */
    expect_rect(&im, x0 + 3 * 3, y0 + 2 * 3, 3, 3, 0xfd, 0xe7, 0x25, "shared max");
    expect_rect(&im, x0 + 6 * 3, y0 + 4 * 3, 3, 3, 0x44, 0x01, 0x54, "shared min");
    free(im.px);

    /* Grey, each map on its own scale: map 1's max is white too, map 2 (constant) black. */
    mc.opts.cmap = ZF_VIZ_CMAP_GREY;
    mc.opts.per_map = 1;
    cr_assert_eq(zf_viz_maps_layout(&g, &mc.in, &mc.opts), ZF_OK);
    im = tu_render_png(render_maps, &mc);
    int x1 = g.grid_x + (1 % g.cols) * g.pitch_x + g.tile_dx, y1 = g.grid_y + (1 / g.cols) * g.pitch_y;
    int x2 = g.grid_x + (2 % g.cols) * g.pitch_x + g.tile_dx, y2 = g.grid_y + (2 / g.cols) * g.pitch_y;
    expect_rect(&im, x1 + 3 * 3, y1 + 2 * 3, 3, 3, 255, 255, 255, "per-map max of map 1");
    expect_rect(&im, x1 + 6 * 3, y1 + 4 * 3, 3, 3, 0, 0, 0, "per-map min of map 1");
    /* A value v of map 1 maps to (v - lo) / (hi - lo). */
    double v = 0.5 * m[0], lo = -0.5, hi = 2.0;
    int b = byte_of((v - lo) / (hi - lo));
    expect_rect(&im, x1, y1, 3, 3, b, b, b, "per-map value of map 1 at (0, 0)");
    expect_rect(&im, x2, y2, g.tile_w, g.tile_h, 0, 0, 0, "constant map");
    free(im.px);
}

/* ---- documents ---- */

static zf_status render_two_unit_sheet(zf_viz_doc *doc, const void *c)
{
    return zf_viz_sheet(doc, c, NULL);
}

Test(doc, format_follows_the_extension)
{
    zf_viz_format f;
    cr_expect_eq(zf_viz_format_of("a/b.PNG", &f), ZF_OK);
    cr_expect_eq(f, ZF_VIZ_PNG);
    cr_expect_eq(zf_viz_format_of("x.pdf", &f), ZF_OK);
    cr_expect_eq(f, ZF_VIZ_PDF);
    cr_expect_eq(zf_viz_format_of("x.svg", &f), ZF_ERR_ARG);
    cr_expect(strstr(zf_last_error(), "x.svg"), "message: %s", zf_last_error());
    zf_viz_doc *d = (zf_viz_doc *)1;
    cr_expect_eq(zf_viz_doc_open("/nonexistent-dir/x.png", &d), ZF_ERR_IO);
    cr_expect_null(d);
    cr_expect(strstr(zf_last_error(), "/nonexistent-dir/x.png"), "message: %s", zf_last_error());
    zf_viz_doc_free(NULL);
}

Test(doc, png_holds_one_page_and_empty_documents_fail)
{
    float w[3 * 3 * 3 * 3] = {0};
    w[4] = 1;
    filters_case fc = {{NULL, w, 3, 3, 3, 3, 0}, zf_viz_filters_defaults()};
    zf_viz_doc *d;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PNG, &d), ZF_OK);
    cr_expect_eq(zf_viz_doc_finish(d), ZF_ERR_ARG, "an empty document must not finish");
    cr_assert_eq(render_filters(d, &fc), ZF_OK);
    cr_expect_eq(render_filters(d, &fc), ZF_ERR_ARG);
    cr_expect(strstr(zf_last_error(), "one page"), "message: %s", zf_last_error());
    cr_expect_eq(zf_viz_doc_finish(d), ZF_OK);
    zf_viz_doc_free(d);
}

Test(doc, files_are_written_and_unfinished_ones_removed)
{
    const char *dir = tu_tmpdir("viz_doc");
    char png[1024], pdf[1024], gone[1024];
    snprintf(png, sizeof png, "%s/grid.png", dir);
    snprintf(pdf, sizeof pdf, "%s/grid.pdf", dir);
    snprintf(gone, sizeof gone, "%s/unfinished.pdf", dir);
    float w[5 * 3 * 7 * 7];
    tu_fill_uniform(w, sizeof w / sizeof w[0], 3, -1, 1);
    filters_case fc = {{"grid", w, 5, 3, 7, 7, 0}, zf_viz_filters_defaults()};
    const char *paths[2] = {png, pdf};
    for (int i = 0; i < 2; i++) {
        zf_viz_doc *d;
        cr_assert_eq(zf_viz_doc_open(paths[i], &d), ZF_OK, "%s", zf_last_error());
        cr_assert_eq(render_filters(d, &fc), ZF_OK, "%s", zf_last_error());
        cr_assert_eq(zf_viz_doc_finish(d), ZF_OK, "%s", zf_last_error());
        zf_viz_doc_free(d);
    }
    FILE *f = fopen(png, "rb");
    cr_assert(f);
    uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    tu_rgb im = tu_png_decode(buf, n);
    zf_viz_grid g;
    cr_assert_eq(zf_viz_filters_layout(&g, &fc.in, &fc.opts), ZF_OK);
    cr_expect(im.w == g.width && im.h == g.height, "decoded %dx%d, layout %dx%d", im.w, im.h, g.width, g.height);
    free(im.px);
    cr_expect_eq(pdf_pages(pdf), 1);

    zf_viz_doc *d;
    cr_assert_eq(zf_viz_doc_open(gone, &d), ZF_OK);
    cr_assert_eq(render_filters(d, &fc), ZF_OK);
    zf_viz_doc_free(d);
    cr_expect_null(fopen(gone, "rb"), "an unfinished document must not leave a file");
}

/* ---- top-9 sheets ---- */

Test(sheet, pages_follow_units_per_page_and_patches_are_checked)
{
    enum { U = 9, P = 11 };
    float proj[3 * P * P];
    uint8_t rgb[P * P * 3];
    tu_fill_uniform(proj, sizeof proj / sizeof proj[0], 2, -1, 1);
    for (int i = 0; i < P * P * 3; i++)
        rgb[i] = (uint8_t)(i * 7);
    zf_viz_patch patches[9];
    for (int i = 0; i < 9; i++) {
        zf_viz_patch p = {P, P - (i % 3), proj, rgb, 9.0f - i, i == 4 ? "an image with a long file name.JPEG" : NULL, 3};
        patches[i] = p;
    }
    zf_viz_unit units[U];
    for (int u = 0; u < U; u++) {
        zf_viz_unit un = {"conv3", u * 5, 9 - u % 4, patches, 0};
        units[u] = un;
    }
    zf_viz_sheet_in in = {"conv3", U, units};
    const char *dir = tu_tmpdir("viz_sheet");
    char path[1024];
    snprintf(path, sizeof path, "%s/sheet.pdf", dir);
    zf_viz_doc *d;
    cr_assert_eq(zf_viz_doc_open(path, &d), ZF_OK);
    zf_viz_sheet_opts o = zf_viz_sheet_defaults();
    o.units_per_page = 4;
    cr_assert_eq(zf_viz_sheet(d, &in, &o), ZF_OK, "%s", zf_last_error());
    cr_expect_eq(zf_viz_doc_pages(d), 3);
    cr_assert_eq(zf_viz_doc_finish(d), ZF_OK);
    zf_viz_doc_free(d);
    cr_expect_eq(pdf_pages(path), 3);

    tu_rgb im = tu_render_png(render_two_unit_sheet, &in);
    cr_expect(im.w > 300 && im.h > 200, "sheet is %dx%d", im.w, im.h);
    free(im.px);

    units[3].n = 10;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PDF, &d), ZF_OK);
    cr_expect_eq(zf_viz_sheet(d, &in, NULL), ZF_ERR_ARG);
    cr_expect(strstr(zf_last_error(), "unit 15"), "message: %s", zf_last_error());
    zf_viz_doc_free(d);
}

/* The grey projection of a grey net as its sheet tile: one plane, shown in all three colours by
 * the RGB rule 0.5 + 0.5 v / max|v|. */
Test(sheet, grey_projection_tile_equals_the_projection)
{
    enum { P = 23, CELL = 23 }; /* a patch as large as its cell: drawn at scale 1, pixel for pixel */
    float proj[P * P], proj3[3 * P * P];
    uint8_t rgb[P * P * 3];
    tu_fill_uniform(proj, P * P, 21, -0.7f, 1.3f);
    for (int c = 0; c < 3; c++)
        memcpy(proj3 + c * P * P, proj, sizeof proj);
    for (int i = 0; i < P * P; i++)
        memset(rgb + i * 3, (uint8_t)(i * 5 + 1), 3);
    double s = 0;
    for (int i = 0; i < P * P; i++)
        s = fmax(s, fabs(proj[i]));
    uint8_t want_grey[P * P];
    for (int i = 0; i < P * P; i++)
        want_grey[i] = (uint8_t)signed_byte(proj[i], s);
    uint8_t *want = grey_block(want_grey, P, P, 1);

    zf_viz_patch grey = {P, P, proj, rgb, 1.0f, NULL, 1};
    zf_viz_unit un = {"conv1", 0, 1, &grey, 0};
    zf_viz_sheet_in in = {"grey", 1, &un};
    zf_viz_sheet_opts o = zf_viz_sheet_defaults();
    o.cell = CELL;
    zf_viz_doc *d;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PNG, &d), ZF_OK);
    cr_assert_eq(zf_viz_sheet(d, &in, &o), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_viz_doc_finish(d), ZF_OK);
    size_t len;
    const uint8_t *bytes = zf_viz_doc_bytes(d, &len);
    tu_rgb im = tu_png_decode(bytes, len);
    zf_viz_doc_free(d);
    int x, y;
    cr_expect(find_block(&im, want, P, P, &x, &y), "no tile of the sheet shows the grey projection");

    /* The same values as three equal RGB planes draw the same page. */
    zf_viz_patch colour = {P, P, proj3, rgb, 1.0f, NULL, 3};
    un.top = &colour;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PNG, &d), ZF_OK);
    cr_assert_eq(zf_viz_sheet(d, &in, &o), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_viz_doc_finish(d), ZF_OK);
    bytes = zf_viz_doc_bytes(d, &len);
    tu_rgb im3 = tu_png_decode(bytes, len);
    zf_viz_doc_free(d);
    cr_assert(im3.w == im.w && im3.h == im.h);
    size_t first = 0, n = (size_t)im.w * im.h * 3;
    while (first < n && im.px[first] == im3.px[first])
        first++;
    cr_expect_eq(first, n, "grey and equal-RGB sheets differ at byte %zu", first);

    /* Two planes are neither. */
    grey.channels = 2;
    un.top = &grey;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PNG, &d), ZF_OK);
    cr_expect_eq(zf_viz_sheet(d, &in, &o), ZF_ERR_SHAPE);
    cr_expect(strstr(zf_last_error(), "2-plane"), "message: %s", zf_last_error());
    zf_viz_doc_free(d);
    free(want);
    free(im.px);
    free(im3.px);
}

/* ---- occlusion figures ---- */

typedef struct occl_ctx {
    zf_viz_occlusion row[2];
    int n;
} occl_ctx;

static zf_status render_occl(zf_viz_doc *doc, const void *c)
{
    const occl_ctx *o = c;
    return zf_viz_occlusion_figure(doc, o->row, o->n, NULL);
}

static const char *small_names(int k)
{
    static const char *const names[3] = {"zero", "one", "two"};
    return k < 3 ? names[k] : NULL;
}

Test(occlusion, figure_renders_and_checks_its_geometry)
{
    enum { S = 37, P = 9, ST = 4, R = (S - P) / ST + 1 };
    uint8_t rgb[S * S * 3];
    for (int i = 0; i < S * S * 3; i++)
        rgb[i] = (uint8_t)(i * 13);
    zf_image img = {S, S, rgb};
    float feat[R * R], prob[R * R], proj[3 * S * S];
    int32_t arg[R * R];
    tu_fill_uniform(feat, R * R, 1, 0, 5);
    tu_fill_uniform(prob, R * R, 2, 0, 1);
    tu_fill_uniform(proj, 3 * S * S, 3, -1, 1);
    for (int i = 0; i < R * R; i++)
        arg[i] = i % 13; /* more classes than colours: an "other" entry */
    occl_ctx oc = {{{&img, R, R, P, ST, feat, "conv5 map 3", proj, prob, 2, arg, small_names, "test image", 3, NULL, 0}},
                   2};
    oc.row[1] = oc.row[0];
    oc.row[1].proj = NULL;
    tu_rgb im = tu_render_png(render_occl, &oc);
    cr_expect(im.w > 5 * S && im.h > 2 * S, "figure is %dx%d", im.w, im.h);
    free(im.px);

    oc.n = 1;
    oc.row[0].patch = S + 1;
    zf_viz_doc *d;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PNG, &d), ZF_OK);
    cr_expect_eq(render_occl(d, &oc), ZF_ERR_SHAPE);
    cr_expect(strstr(zf_last_error(), "do not fit"), "message: %s", zf_last_error());
    oc.row[0].patch = P;
    oc.row[0].stride = 0;
    cr_expect_eq(render_occl(d, &oc), ZF_ERR_ARG);
    zf_viz_doc_free(d);
}

static const char *const grey_names[3] = {"zero", "one", "two"};

/* A grey net's row: its one-plane projection in panel (c), its own class names from the array, and
 * a small image enlarged by a whole factor. */
Test(occlusion, grey_projection_and_named_classes)
{
    enum { S = 37, P = 9, ST = 4, R = (S - P) / ST + 1, Z = 4 /* ceil(128 / 37) */ };
    uint8_t rgb[S * S * 3];
    for (int i = 0; i < S * S; i++)
        memset(rgb + i * 3, (uint8_t)(i * 13), 3);
    zf_image img = {S, S, rgb};
    float feat[R * R], prob[R * R], proj[S * S], proj3[3 * S * S];
    int32_t arg[R * R];
    tu_fill_uniform(feat, R * R, 1, 0, 5);
    tu_fill_uniform(prob, R * R, 2, 0, 1);
    tu_fill_uniform(proj, S * S, 3, -1, 2);
    for (int c = 0; c < 3; c++)
        memcpy(proj3 + c * S * S, proj, sizeof proj);
    for (int i = 0; i < R * R; i++)
        arg[i] = i % 3;
    occl_ctx oc = {{{&img, R, R, P, ST, feat, "conv5 map 3", proj, prob, 1, arg, NULL, "grey image", 1, grey_names,
                     3}},
                   1};
    tu_rgb im = tu_render_png(render_occl, &oc);
    double s = 0;
    for (int i = 0; i < S * S; i++)
        s = fmax(s, fabs(proj[i]));
    uint8_t want_grey[S * S];
    for (int i = 0; i < S * S; i++)
        want_grey[i] = (uint8_t)signed_byte(proj[i], s);
    uint8_t *want = grey_block(want_grey, S, S, Z);
    int x, y;
    cr_expect(find_block(&im, want, S * Z, S * Z, &x, &y), "panel (c) does not show the grey projection at %dx", Z);
    free(want);
    /* (a): the image itself, enlarged Z times. */
    uint8_t grey_img[S * S];
    for (int i = 0; i < S * S; i++)
        grey_img[i] = rgb[i * 3];
    want = grey_block(grey_img, S, S, Z);
    cr_expect(find_block(&im, want, S * Z, S * Z, &x, &y), "panel (a) does not show the image at %dx", Z);
    free(want);
    free(im.px);

    /* Three equal planes and the names from a callback draw the same page. */
    occl_ctx o3 = oc;
    o3.row[0].proj = proj3;
    o3.row[0].proj_channels = 3;
    o3.row[0].class_names = NULL;
    o3.row[0].n_class_names = 0;
    o3.row[0].class_name = small_names;
    im = tu_render_png(render_occl, &oc);
    tu_rgb im3 = tu_render_png(render_occl, &o3);
    cr_assert(im3.w == im.w && im3.h == im.h);
    size_t first = 0, n = (size_t)im.w * im.h * 3;
    while (first < n && im.px[first] == im3.px[first])
        first++;
    cr_expect_eq(first, n, "grey row with named classes differs from the equal-RGB row at byte %zu", first);
    free(im.px);
    free(im3.px);

    zf_viz_doc *d;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PNG, &d), ZF_OK);
    oc.row[0].proj_channels = 2;
    cr_expect_eq(render_occl(d, &oc), ZF_ERR_SHAPE);
    oc.row[0].proj_channels = 1;
    oc.row[0].class_names = NULL;
    cr_expect_eq(render_occl(d, &oc), ZF_ERR_ARG, "names counted but not given");
    zf_viz_doc_free(d);
}

/* ---- the first-layer comparison ---- */

/* Band shares of one filter by a direct 2-D DFT of the zero-padded kernel, in double. */
static void naive_bands(double out[3], const float *w, int c, int kh, int kw)
{
    const int n = ZF_VIZ_SPECTRUM_N;
    double p[ZF_VIZ_SPECTRUM_N][ZF_VIZ_SPECTRUM_N] = {{0}}, total = 0;
    for (int u = 0; u < n; u++)
        for (int v = 0; v < n; v++) {
            for (int ch = 0; ch < c; ch++) {
                double re = 0, im = 0;
                for (int y = 0; y < kh; y++)
                    for (int x = 0; x < kw; x++) {
                        double a = -2 * M_PI * ((double)u * y / n + (double)v * x / n);
                        re += w[(ch * kh + y) * kw + x] * cos(a);
                        im += w[(ch * kh + y) * kw + x] * sin(a);
                    }
                p[u][v] += re * re + im * im;
            }
            total += p[u][v];
        }
    out[0] = out[1] = out[2] = 0;
    for (int u = 0; u < n; u++)
        for (int v = 0; v < n; v++) {
            double fy = (u < n / 2 ? u : u - n) / (double)n, fx = (v < n / 2 ? v : v - n) / (double)n;
            double r = sqrt(fx * fx + fy * fy);
            out[r < 1.0 / 6 ? 0 : r < 1.0 / 3 ? 1 : 2] += p[u][v] / total;
        }
}

Test(compare, spectrum_bands_match_a_direct_dft)
{
    enum { K = 3, C = 3, KH = 7, KW = 5 };
    float w[K * C * KH * KW];
    tu_fill_uniform(w, sizeof w / sizeof w[0], 9, -1, 1);
    for (int i = 0; i < C * KH * KW; i++) {
        int x = i % KW, y = (i / KW) % KH;
        w[C * KH * KW + i] = 1.0f;                            /* filter 1: constant */
        w[2 * C * KH * KW + i] = ((x + y) % 2) ? 1.0f : -1.0f; /* filter 2: checkerboard */
    }
    zf_viz_spectrum s;
    cr_assert_eq(zf_viz_filter_spectrum(&s, w, K, C, KH, KW), ZF_OK);
    cr_expect_eq(s.filters, K);
    double mean[3] = {0};
    double bands[K][3];
    for (int f = 0; f < K; f++) {
        naive_bands(bands[f], w + f * C * KH * KW, C, KH, KW);
        for (int b = 0; b < 3; b++)
            mean[b] += bands[f][b] / K;
    }
    cr_expect(fabs(s.low - mean[0]) < 1e-9 && fabs(s.mid - mean[1]) < 1e-9 && fabs(s.high - mean[2]) < 1e-9,
              "shares %.12f %.12f %.12f, direct DFT %.12f %.12f %.12f", s.low, s.mid, s.high, mean[0], mean[1],
              mean[2]);
    cr_expect(fabs(s.low + s.mid + s.high - 1) < 1e-9);
    cr_expect_gt(bands[1][0], 0.8, "a constant filter is mostly low frequency (%.3f)", bands[1][0]);
    cr_expect_gt(bands[2][2], 0.8, "a checkerboard is mostly high frequency (%.3f)", bands[2][2]);
    double sum = 0;
    for (int b = 0; b < ZF_VIZ_SPECTRUM_BINS; b++)
        sum += s.radial[b];
    cr_expect_gt(sum, 0);
}

Test(compare, dead_filters_are_left_out_of_the_spectrum_and_counted)
{
    enum { K = 4, C = 3, KH = 5, KW = 5 };
    float w[K * C * KH * KW];
    tu_fill_uniform(w, sizeof w / sizeof w[0], 4, -1, 1);
    memset(w + 2 * C * KH * KW, 0, sizeof(float) * C * KH * KW);
    zf_viz_compare_model m = {"m", w, K, C, KH, KW, 2, 0, -1, 0};
    zf_viz_compare_stats st;
    cr_assert_eq(zf_viz_compare_stats_of(&st, &m, 0.1f), ZF_OK);
    cr_expect_eq(st.filters, K);
    cr_expect_eq(st.dead, 1);
    cr_expect_eq(st.spectrum.filters, K - 1);
}

Test(compare, page_renders_two_models_of_different_kernels)
{
    static float a[96 * 3 * 11 * 11], b[96 * 3 * 7 * 7];
    tu_fill_uniform(a, sizeof a / sizeof a[0], 21, -0.02f, 0.02f);
    tu_fill_uniform(b, sizeof b / sizeof b[0], 22, -0.02f, 0.02f);
    zf_viz_compare_model c[2] = {{"alexnet", a, 96, 3, 11, 11, 4, 0, 0.25f, 17},
                                 {"zfnet", b, 96, 3, 7, 7, 2, 0, -1, 0}};
    tu_rgb im = tu_render_compare(c);
    cr_expect(im.w > 800 && im.h > 500, "page is %dx%d", im.w, im.h);
    free(im.px);
}

/* ---- the report ---- */

Test(report, page_count_contents_and_pdf_agree)
{
    enum { NL = 30 };
    zf_viz_layer_row layers[NL];
    for (int i = 0; i < NL; i++) {
        zf_viz_layer_row l = {"layer", "conv", 8, 5, 5, 100 + i};
        layers[i] = l;
    }
    float w1[16 * 3 * 5 * 5], w2[9 * 16 * 3 * 3];
    tu_fill_uniform(w1, sizeof w1 / sizeof w1[0], 1, -1, 1);
    tu_fill_uniform(w2, sizeof w2 / sizeof w2[0], 2, -1, 1);
    zf_viz_filters_in grids[2] = {{"conv1", w1, 16, 3, 5, 5, 0}, {"conv2", w2, 9, 16, 3, 3, 0}};
    zf_viz_dead_row dead[3] = {{"relu1", 16, 2, 1}, {"relu2", 9, 0, 0}, {"relu6", 4096, 100, 10}};
    float proj[3 * 9 * 9];
    uint8_t rgb[9 * 9 * 3] = {0};
    tu_fill_uniform(proj, sizeof proj / sizeof proj[0], 3, -1, 1);
    zf_viz_patch patches[9];
    for (int i = 0; i < 9; i++) {
        zf_viz_patch p = {9, 9, proj, rgb, 5.0f - i, NULL, 3};
        patches[i] = p;
    }
    zf_viz_unit units[5];
    for (int u = 0; u < 5; u++) {
        zf_viz_unit un = {"conv2", u, 9, patches, 9};
        units[u] = un;
    }
    zf_viz_sheet_in sheet = {"conv2", 5, units};
    enum { S = 31, P = 7, ST = 6, R = (S - P) / ST + 1 };
    uint8_t img_px[S * S * 3] = {0};
    zf_image img = {S, S, img_px};
    float feat[R * R], prob[R * R];
    int32_t arg[R * R] = {0};
    tu_fill_uniform(feat, R * R, 5, 0, 1);
    tu_fill_uniform(prob, R * R, 6, 0, 1);
    zf_viz_occlusion occ = {&img, R, R, P, ST, feat, "conv5 map 0", NULL, prob, 0, arg, NULL, NULL, 0, NULL, 0};
    zf_viz_occlusion occs[3] = {occ, occ, occ};

    zf_viz_report_in r = {0};
    r.model = "test";
    r.n_layers = NL;
    r.layers = layers;
    r.n_grids = 2;
    r.grids = grids;
    r.n_dead = 3;
    r.dead = dead;
    r.min_active = 0.01f;
    r.n_sheets = 1;
    r.sheets = &sheet;
    r.n_occlusions = 3;
    r.occlusions = occs;
    /* contents 1, model 2 (26 rows a page), grids 2, dead 1, sheet 2 (4 units a page), occlusion 2 (2 a page) */
    int expected = 1 + 2 + 2 + 1 + 2 + 2;
    cr_expect_eq(zf_viz_report_pages(&r), expected);

    const char *dir = tu_tmpdir("viz_report");
    char path[1024];
    snprintf(path, sizeof path, "%s/report.pdf", dir);
    zf_viz_doc *d;
    cr_assert_eq(zf_viz_doc_open(path, &d), ZF_OK);
    cr_assert_eq(zf_viz_report(d, &r), ZF_OK, "%s", zf_last_error());
    cr_expect_eq(zf_viz_doc_pages(d), expected);
    cr_assert_eq(zf_viz_doc_finish(d), ZF_OK, "%s", zf_last_error());
    zf_viz_doc_free(d);
    cr_expect_eq(pdf_pages(path), expected);

    /* A PNG cannot hold it. */
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PNG, &d), ZF_OK);
    cr_expect_eq(zf_viz_report(d, &r), ZF_ERR_ARG);
    cr_expect(strstr(zf_last_error(), ".pdf"), "message: %s", zf_last_error());
    zf_viz_doc_free(d);

    /* Bad data fails before the first page. */
    occs[1].stride = 0;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PDF, &d), ZF_OK);
    cr_expect_eq(zf_viz_report(d, &r), ZF_ERR_ARG);
    cr_expect_eq(zf_viz_doc_pages(d), 0);
    zf_viz_doc_free(d);
}

/* ---- helpers for callers ---- */

Test(helpers, input_to_rgb_inverts_the_preprocessing)
{
    enum { H = 3, W = 5 };
    uint8_t rgb[H * W * 3], back[H * W * 3];
    for (int i = 0; i < H * W * 3; i++)
        rgb[i] = (uint8_t)(i * 17 + 3);
    zf_preproc pre = {ZF_COLOR_BGR, 255.0f, {123.68f, 116.779f, 103.939f}, {1, 1, 1}, ZF_RESIZE_EXACT, 0};
    zf_preproc tv = {ZF_COLOR_RGB, 1.0f, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, ZF_RESIZE_SHORT_CROP, 256};
    const zf_preproc *pres[2] = {&pre, &tv};
    for (int k = 0; k < 2; k++) {
        const zf_preproc *p = pres[k];
        float in[3 * H * W];
        /* The documented forward mapping: plane c holds colour (BGR: 2 - c). */
        for (int c = 0; c < 3; c++) {
            int rc = p->order == ZF_COLOR_BGR ? 2 - c : c;
            for (int i = 0; i < H * W; i++)
                in[c * H * W + i] = (rgb[i * 3 + rc] / 255.0f * p->scale - p->mean[rc]) / p->std[rc];
        }
        zf_viz_input_to_rgb(back, in, p, H, W);
        for (int i = 0; i < H * W * 3; i++)
            cr_assert_eq(back[i], rgb[i], "preproc %d: byte %d is %d, expected %d", k, i, back[i], rgb[i]);
    }
    float proj[3 * H * W];
    for (int i = 0; i < 3 * H * W; i++)
        proj[i] = (float)(i / (H * W));
    zf_viz_proj_to_rgb(proj, &pre, H, W);
    cr_expect(proj[0] == 2.0f && proj[H * W] == 1.0f && proj[2 * H * W] == 0.0f);
}

Test(helpers, input_to_rgb_of_a_grey_net_reads_one_plane)
{
    enum { H = 7, W = 5 };
    zf_preproc pre = {ZF_COLOR_GREY, 1.0f, {0.286f, 0.9f, 0.1f}, {0.353f, 3.0f, 0.2f}, ZF_RESIZE_EXACT, 0};
    /* Exactly one plane: reading a second (the RGB path) is a heap overflow the sanitizer build sees. */
    float *in = malloc(sizeof(float) * H * W);
    uint8_t grey[H * W], back[H * W * 3];
    cr_assert(in);
    for (int i = 0; i < H * W; i++) {
        grey[i] = (uint8_t)(i * 7 + 2);
        in[i] = (float)((grey[i] / 255.0 - 0.286) / 0.353);
    }
    in[3] = -50.0f; /* below black: clamps to 0 */
    in[4] = 50.0f;  /* above white: 255 */
    grey[3] = 0;
    grey[4] = 255;
    zf_viz_input_to_rgb(back, in, &pre, H, W);
    for (int i = 0; i < H * W; i++)
        cr_assert(back[i * 3] == grey[i] && back[i * 3 + 1] == grey[i] && back[i * 3 + 2] == grey[i],
                  "pixel %d is (%d, %d, %d), expected grey %d", i, back[i * 3], back[i * 3 + 1], back[i * 3 + 2],
                  grey[i]);
    /* A grey projection keeps its one plane. */
    float proj[H * W];
    for (int i = 0; i < H * W; i++)
        proj[i] = (float)i;
    zf_viz_proj_to_rgb(proj, &pre, H, W);
    for (int i = 0; i < H * W; i++)
        cr_assert_eq(proj[i], (float)i);
    cr_expect_eq(zf_viz_planes(&pre), 1);
    free(in);
}

/* ---- the commands ---- */

/* What `zfviz filters --arch ARCH --weights WEIGHTS EXTRA` draws (conv1), decoded; *net gets the
 * same net and weights loaded here, *l its conv1 and *g the layout of those filters under the
 * options o, whose size the picture must have. */
static tu_rgb cli_filters(const char *tag, const char *arch, const char *weights, const char *extra,
                          const zf_viz_filters_opts *o, zf_net **net, const zf_layer **l, zf_viz_grid *g)
{
    const char *dir = tu_tmpdir(tag);
    char out[1024], title[256];
    snprintf(out, sizeof out, "%s/f.png", dir);
    cr_assert_eq(tu_system("'%s' filters --arch %s --weights %s %s -o '%s' 2>/dev/null", tu_build("tools/zfviz"),
                           arch, weights, extra, out),
                 0, "zfviz filters failed");
    cr_assert_eq(zf_net_new_builtin(arch, net), ZF_OK);
    cr_assert_eq(zf_net_load_weights(*net, weights), ZF_OK, "%s", zf_last_error());
    const zf_layer *c1 = *l = &(*net)->layers[zf_net_find(*net, "conv1")];
    snprintf(title, sizeof title, "%s conv1 (%s)", arch, weights);
    zf_viz_filters_in in = {title, c1->weight, c1->out_c, c1->in_c, c1->win.kh, c1->win.kw, 0};
    cr_assert_eq(zf_viz_filters_layout(g, &in, o), ZF_OK);
    tu_rgb im = tu_png_read(out);
    cr_assert(im.w == g->width && im.h == g->height, "PNG %dx%d, layout %dx%d", im.w, im.h, g->width, g->height);
    return im;
}

Test(cli, filters_draws_the_nets_conv1_weights_tap_for_tap)
{
    /* The same weights, loaded here; every tap of filter 5 recomputed from the documented mapping. */
    zf_net *net;
    const zf_layer *l;
    zf_viz_filters_opts o = zf_viz_filters_defaults();
    o.zoom = 2;
    zf_viz_grid g;
    tu_rgb im = cli_filters("viz_cli_filters", "zfnet", "random:1", "--layer conv1 --zoom 2", &o, &net, &l, &g);
    const int f = 5, kh = l->win.kh, kw = l->win.kw;
    const float *w = l->weight + (size_t)f * 3 * kh * kw;
    double s = tu_max_abs(w, (size_t)3 * kh * kw);
    int x0 = g.grid_x + (f % g.cols) * g.pitch_x + g.tile_dx, y0 = g.grid_y + (f / g.cols) * g.pitch_y;
    for (int y = 0; y < kh; y++)
        for (int x = 0; x < kw; x++) {
            char what[64];
            snprintf(what, sizeof what, "filter %d tap (%d, %d)", f, y, x);
            expect_rect(&im, x0 + 2 * x, y0 + 2 * y, 2, 2, signed_byte(w[y * kw + x], s),
                        signed_byte(w[kh * kw + y * kw + x], s), signed_byte(w[2 * kh * kw + y * kw + x], s), what);
        }
    free(im.px);
    zf_net_free(net);
}

Test(cli, bad_requests_fail_with_one_line_naming_the_problem)
{
    const char *dir = tu_tmpdir("viz_cli_bad");
    const char *z = tu_build("tools/zfviz");
    char err[1024];
    snprintf(err, sizeof err, "%s/err.txt", dir);
    struct {
        const char *args, *says;
        int rc;
    } cases[] = {
        {"filters --arch zfnet --weights random:0 --layer fc6 -o %s/a.png", "'fc6' is not a conv layer", 1},
        {"filters --arch zfnet --weights random:0 --layer conv1,conv2 -o %s/a.png", "write a .pdf", 2},
        {"filters --arch zfnet --weights random:0 -o %s/a.svg", ".png or .pdf", 2},
        {"filters --arch zfnet --weights random:0 --scale wide -o %s/a.png", "--scale", 2},
        {"activations --arch zfnet --weights random:0 --input %s/none.jpg --layer relu1 -o x.png", "none.jpg", 1},
        {"compare nosuchnet zfnet -o %s/a.png", "nosuchnet", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1024];
        snprintf(args, sizeof args, cases[i].args, dir);
        int rc = tu_system("'%s' %s 2>'%s'", z, args, err);
        cr_expect_eq(rc, cases[i].rc, "zfviz %s: exit %d, expected %d", args, rc, cases[i].rc);
        FILE *f = fopen(err, "r");
        cr_assert(f);
        char line[1024] = "", extra[1024];
        while (fgets(extra, sizeof extra, f))
            if (strncmp(extra, "zfviz: no --weights", 19))
                snprintf(line, sizeof line, "%s", extra);
        fclose(f);
        cr_expect(strstr(line, cases[i].says), "zfviz %s: stderr '%s' does not say '%s'", args, line, cases[i].says);
    }
}

/* A 112 x 112 grey PNG (the mini nets' input size: resized exactly, it reaches the net as is). */
static void write_grey_112(const char *path, uint8_t *grey)
{
    zf_image *img = zf_image_new(112, 112);
    cr_assert(img);
    for (int y = 0; y < 112; y++)
        for (int x = 0; x < 112; x++) {
            uint8_t v = (uint8_t)((x * 7 + y * 3 + (x * y) % 23) & 255);
            grey[y * 112 + x] = v;
            memset(img->rgb + ((size_t)y * 112 + x) * 3, v, 3);
        }
    cr_assert_eq(zf_image_save_png(path, img), ZF_OK, "%s", zf_last_error());
    zf_image_free(img);
}

Test(cli, mini_net_occlusion_scales_its_defaults_shows_grey_and_no_imagenet_names)
{
    const char *dir = tu_tmpdir("viz_cli_mini_occlude");
    const char *z = tu_build("tools/zfviz");
    char in[1024], fig[1024], sum[1024], txt[1024];
    snprintf(in, sizeof in, "%s/g.png", dir);
    snprintf(fig, sizeof fig, "%s/fig.png", dir);
    snprintf(sum, sizeof sum, "%s/o/summary.json", dir);
    snprintf(txt, sizeof txt, "%s/out.txt", dir);
    uint8_t grey[112 * 112];
    write_grey_112(in, grey);
    cr_assert_eq(tu_system("'%s' occlude --arch zfnet-mini --weights random:1 --input '%s' --out '%s/o' --png '%s' "
                           "> '%s' 2>/dev/null",
                           z, in, dir, fig, txt),
                 0, "zfviz occlude failed");
    /* 224's 32 and 8 scaled to 112: 16 and 4, (112 - 16) / 4 + 1 = 25 positions a side. */
    cr_expect_eq(tu_system("grep -q '\"patch\": 16,' '%s' && grep -q '\"stride\": 4,' '%s' && "
                           "grep -q '\"rows\": 25,' '%s'", sum, sum, sum),
                 0, "summary.json does not say patch 16, stride 4, 25 rows");
    /* Ten unnamed classes: no ImageNet name anywhere. */
    cr_expect_eq(tu_system("grep -q '\"name\": null' '%s'", sum), 0, "the class got a name");
    cr_expect_eq(tu_system("grep -Eq '^class: [0-9]+, unoccluded' '%s'", txt), 0, "class line is not 'class: K, ...'");
    /* Panel (a) is the grey input, enlarged twice (112 < 128). */
    tu_rgb im = tu_png_read(fig);
    uint8_t *want = grey_block(grey, 112, 112, 2);
    int x, y;
    cr_expect(find_block(&im, want, 224, 224, &x, &y), "the figure does not show the grey input at 2x");
    free(want);
    free(im.px);
}

Test(cli, info_describes_grey_preprocessing_and_classes)
{
    const char *dir = tu_tmpdir("viz_cli_info");
    const char *z = tu_build("tools/zfviz");
    char out[1024];
    snprintf(out, sizeof out, "%s/info.txt", dir);
    cr_assert_eq(tu_system("'%s' info --arch alexnet-mini --weights random:1 > '%s'", z, out), 0);
    cr_expect_eq(tu_system("grep -q '^preprocessing: grey (luma 0.299 R + 0.587 G + 0.114 B), pixels scaled to "
                           "\\[0, 1\\], mean 0.286, std 0.353, resized to 112x112$' '%s'", out),
                 0, "no grey preprocessing line");
    cr_expect_eq(tu_system("grep -q '^classes: 10, unnamed' '%s'", out), 0, "no class line");
    /* the embedded trained model (the default) carries Fashion-MNIST's names */
    cr_assert_eq(tu_system("'%s' info > '%s' 2>/dev/null", z, out), 0);
    cr_expect_eq(tu_system("grep -q '^network: alexnet-mini' '%s' && grep -q '9 Ankle boot' '%s'", out, out), 0,
                 "the default is not the embedded alexnet-mini with its class names");
    cr_assert_eq(tu_system("'%s' info --arch zfnet > '%s'", z, out), 0);
    cr_expect_eq(tu_system("grep -q '^classes: 1000, ImageNet names' '%s'", out), 0, "no ImageNet class line");
}

Test(cli, filters_draws_a_grey_nets_conv1_in_grey_tap_for_tap)
{
    zf_net *net;
    const zf_layer *l;
    zf_viz_filters_opts o = zf_viz_filters_defaults();
    zf_viz_grid g;
    tu_rgb im = cli_filters("viz_cli_grey_filters", "alexnet-mini", "random:4", "", &o, &net, &l, &g);
    cr_assert_eq(l->in_c, 1);
    /* Every tap of every filter: grey, 0.5 + 0.5 w / max|w| over its filter, as an RGB tile's. */
    const int kh = l->win.kh, kw = l->win.kw, zm = g.zoom;
    for (int f = 0; f < l->out_c; f++) {
        const float *w = l->weight + (size_t)f * kh * kw;
        double s = tu_max_abs(w, (size_t)kh * kw);
        int x0 = g.grid_x + (f % g.cols) * g.pitch_x + g.tile_dx, y0 = g.grid_y + (f / g.cols) * g.pitch_y;
        for (int y = 0; y < kh; y++)
            for (int x = 0; x < kw; x++) {
                char what[64];
                snprintf(what, sizeof what, "filter %d tap (%d, %d)", f, y, x);
                int v = signed_byte(w[y * kw + x], s);
                expect_rect(&im, x0 + zm * x, y0 + zm * y, zm, zm, v, v, v, what);
            }
    }
    free(im.px);
    zf_net_free(net);
}

#include "common.h"

/* Line k of assets/imagenet_classes.txt (comment lines skipped), read here. */
static void imagenet_line(int k, char *buf, size_t len)
{
    FILE *f = fopen(tu_src("assets/imagenet_classes.txt"), "r");
    cr_assert(f, "cannot open assets/imagenet_classes.txt");
    char line[512];
    int i = 0;
    buf[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        if (i++ == k) {
            line[strcspn(line, "\r\n")] = '\0';
            cr_assert_lt(strlen(line), len);
            memcpy(buf, line, strlen(line) + 1);
            break;
        }
    }
    fclose(f);
}

Test(tools, class_names_are_the_nets_own_then_imagenet_for_1000_way_nets)
{
    zf_net *mini, *full;
    cr_assert_eq(zf_net_new_builtin("zfnet-mini", &mini), ZF_OK);
    cr_assert_eq(zf_net_new_builtin("alexnet", &full), ZF_OK);
    /* No labels, 10 outputs: no names (callers print the index). */
    cr_expect_eq(zft_net_classes(mini), 10);
    cr_expect_null(zft_class_name(mini, 3));
    char buf[160];
    cr_expect_str_eq(zft_class_text(buf, sizeof buf, mini, 3), "3");
    /* No labels, 1000 outputs: ImageNet's, line for line. */
    const int ks[3] = {0, 417, 999};
    for (int i = 0; i < 3; i++) {
        char want[256];
        imagenet_line(ks[i], want, sizeof want);
        cr_assert(want[0]);
        const char *got = zft_class_name(full, ks[i]);
        cr_expect(got && !strcmp(got, want), "class %d: '%s', expected '%s'", ks[i], got ? got : "(null)", want);
    }
    cr_expect_null(zft_class_name(full, 1000));
    cr_expect_null(zft_class_name(full, -1));
    /* Labels of its own: those, for either net; none borrowed from ImageNet, empty ones unnamed. */
    const char *fashion[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                               "Sandal",      "Shirt",   "Sneaker",  "",      "Ankle boot"};
    cr_assert_eq(zf_net_set_labels(mini, 10, fashion), ZF_OK);
    cr_expect_str_eq(zft_class_name(mini, 3), "Dress");
    cr_expect_str_eq(zft_class_text(buf, sizeof buf, mini, 3), "3 (Dress)");
    cr_expect_null(zft_class_name(mini, 8));
    cr_expect_null(zft_class_name(mini, 10));
    const char *two[2] = {"cat", "dog"};
    cr_assert_eq(zf_net_set_labels(full, 2, two), ZF_OK);
    cr_expect_str_eq(zft_class_name(full, 1), "dog");
    cr_expect_null(zft_class_name(full, 5), "a labelled 1000-way net borrowed an ImageNet name");
    /* The array the figures take. */
    int n = 0;
    const char **names = zft_class_names_new(mini, &n);
    cr_assert(names);
    cr_expect_eq(n, 10);
    cr_expect_str_eq(names[9], "Ankle boot");
    cr_expect_null(names[8]);
    free(names);
    zf_net_free(mini);
    zf_net_free(full);
}

Test(tools, occlusion_defaults_scale_with_the_input)
{
    const struct {
        const char *arch;
        int patch, stride;
    } cases[] = {{"zfnet", 32, 8}, {"alexnet-caffe", 32, 8}, {"alexnet-mini", 16, 4}, {"zfnet-mini", 16, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zf_net *net;
        cr_assert_eq(zf_net_new_builtin(cases[i].arch, &net), ZF_OK);
        int p = 0, s = 0;
        zft_occlusion_defaults(net, &p, &s);
        cr_expect(p == cases[i].patch && s == cases[i].stride, "%s: patch %d stride %d, expected %d and %d",
                  cases[i].arch, p, s, cases[i].patch, cases[i].stride);
        zf_net_free(net);
    }
}

#include "zf/db.h"

/* ---- stored renderings (the SQLite store) ---- */

Test(store, renderings_round_trip_byte_for_byte)
{
    const char *dir = tu_tmpdir("viz_store");
    char path[1024];
    snprintf(path, sizeof path, "%s/r.db", dir);
    zf_db *db;
    cr_assert_eq(zf_db_open(path, NULL, &db), ZF_OK, "%s", zf_last_error());
    float w[9 * 3 * 5 * 5];
    tu_fill_uniform(w, sizeof w / sizeof w[0], 8, -1, 1);
    filters_case fc = {{"stored", w, 9, 3, 5, 5, 0}, zf_viz_filters_defaults()};
    zf_viz_doc *doc;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PNG, &doc), ZF_OK);
    cr_assert_eq(render_filters(doc, &fc), ZF_OK);
    cr_assert_eq(zf_viz_doc_finish(doc), ZF_OK);
    size_t len;
    const uint8_t *png = zf_viz_doc_bytes(doc, &len);
    int pw, ph;
    zf_viz_doc_page_size(doc, &pw, &ph);
    zf_db_rendering r = {-1, -1, "conv1", -1, -1, "filters", "conv1 filters of a test", pw, ph};
    int64_t id;
    cr_assert_eq(zf_db_rendering_put(db, &r, png, len, &id), ZF_OK, "%s", zf_last_error());
    zf_db_close(db);

    cr_assert_eq(zf_db_open(path, NULL, &db), ZF_OK);
    void *back = NULL;
    size_t blen = 0;
    cr_assert_eq(zf_db_rendering_png(db, id, &back, &blen), ZF_OK, "%s", zf_last_error());
    cr_expect_eq(blen, len);
    size_t first = 0;
    while (first < len && first < blen && ((const uint8_t *)back)[first] == png[first])
        first++;
    cr_expect(first == len && blen == len, "stored PNG differs from byte %zu (of %zu)", first, len);
    tu_rgb im = tu_png_decode(back, blen);
    cr_expect(im.w == pw && im.h == ph);
    free(im.px);
    free(back);
    zf_db_close(db);
    zf_viz_doc_free(doc);
}

static void write_test_images(const char *dir, int n)
{
    for (int i = 0; i < n; i++) {
        zf_image *img = zf_image_new(67 + 9 * i, 59 + 5 * i);
        cr_assert(img);
        float v[3 * 200 * 200];
        size_t px = (size_t)img->w * img->h * 3;
        tu_fill_uniform(v, px, 100 + i, 0, 255);
        for (size_t k = 0; k < px; k++)
            img->rgb[k] = (uint8_t)v[k];
        char path[1024];
        snprintf(path, sizeof path, "%s/im%d.png", dir, i);
        cr_assert_eq(zf_image_save_png(path, img), ZF_OK, "%s", zf_last_error());
        zf_image_free(img);
    }
}

Test(cli, sheet_and_report_read_a_scan_and_store_renderings)
{
    const char *dir = tu_tmpdir("viz_cli_scan");
    const char *z = tu_build("tools/zfviz");
    char imgs[1024], dbp[1024];
    snprintf(imgs, sizeof imgs, "%s/images", dir);
    snprintf(dbp, sizeof dbp, "%s/scan.db", dir);
    cr_assert_eq(tu_system("mkdir -p '%s'", imgs), 0);
    write_test_images(imgs, 3);
    cr_assert_eq(tu_system("'%s' scan --arch zfnet --weights random:2 --images '%s' --db '%s' --layers conv1,conv2 "
                           ">/dev/null 2>&1",
                           z, imgs, dbp),
                 0, "zfviz scan failed");
    cr_assert_eq(tu_system("cd '%s' && '%s' sheet --db scan.db --layer conv2 --top-units 2 --per-page 1 --store "
                           "-o sheet.pdf 2>/dev/null",
                           dir, z),
                 0, "zfviz sheet failed");
    char out[1024];
    snprintf(out, sizeof out, "%s/sheet.pdf", dir);
    cr_expect_eq(pdf_pages(out), 2, "two units, one a page");
    cr_assert_eq(tu_system("cd '%s' && '%s' filters --arch zfnet --weights random:2 --layer conv2 --store scan.db "
                           "2>/dev/null",
                           dir, z),
                 0, "zfviz filters --store failed");
    zf_db *db;
    zf_db_opts ro = {ZF_DB_READONLY, 5, NULL, NULL};
    cr_assert_eq(zf_db_open(dbp, &ro, &db), ZF_OK, "%s", zf_last_error());
    for (int64_t id = 1; id <= 3; id++) {
        void *png = NULL;
        size_t len = 0;
        cr_assert_eq(zf_db_rendering_png(db, id, &png, &len), ZF_OK, "rendering %lld: %s", (long long)id,
                     zf_last_error());
        tu_rgb im = tu_png_decode(png, len);
        cr_expect(im.w > 200 && im.h > 200, "stored rendering %lld is %dx%d", (long long)id, im.w, im.h);
        free(im.px);
        free(png);
    }
    zf_db_close(db);

    /* With occlusion maps in the build, one image's figure too (a coarse grid keeps it quick). */
    const char *occl = "--occlude images/im1.png --patch 64 --stride 40";
    const int occl_pages = 1;
    cr_assert_eq(tu_system("cd '%s' && '%s' report --db scan.db --top-units 1 %s -o report.pdf 2>/dev/null", dir, z,
                           occl),
                 0, "zfviz report failed");
    snprintf(out, sizeof out, "%s/report.pdf", dir);
    /* contents, model summary (24 layers: one page), 5 conv grids, dead units, one sheet page per
     * scanned layer, the occlusion page */
    cr_expect_eq(pdf_pages(out), 1 + 1 + 5 + 1 + 2 + occl_pages);
}
