/* Tests that the figures do not mislead: plain tick labels, probability maps on a fixed [0, 1]
 * scale, colour bars that show the overlay's colours, top-9 captions in full (or a numbered key),
 * histogram axes from the data, whole-number epoch ticks, and the publication options (no title,
 * percentile-clipped projections). Pixels are decoded with libpng and compared with values worked
 * out here from the published colour-map end points and the documented mappings. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/viz.h"

/* viridis' published end points (matplotlib's table, #440154 and #fde725). */
static const uint8_t VIRIDIS_LO[3] = {0x44, 0x01, 0x54}, VIRIDIS_HI[3] = {0xfd, 0xe7, 0x25};

static int near(const uint8_t *p, const double c[3], double tol)
{
    return fabs(p[0] - c[0]) <= tol && fabs(p[1] - c[1]) <= tol && fabs(p[2] - c[2]) <= tol;
}

static long count_colour(const tu_rgb *im, const double c[3], double tol)
{
    long n = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            n += near(tu_px(im, x, y), c, tol);
    return n;
}

/* ---- ticks ---------------------------------------------------------------------------------- */

/* A probability map that barely moves (0.9999996 to 1, as a confident net's is) on the default
 * scale: the range is [0, 1] and the labels are the plain quarters, "0" .. "1". */
Test(ticks, prob_scale_is_fixed_with_plain_labels)
{
    const float map[4] = {0.9999996f, 1.0f, 0.9999998f, 1.0f};
    zf_viz_style style = {0};
    float lo, hi;
    zf_viz_prob_range(&style, map, 4, &lo, &hi);
    cr_assert(lo == 0.0f && hi == 1.0f, "default probability range is [%g, %g], not [0, 1]", lo, hi);
    double t[8];
    int n = zf_viz_ticks(lo, hi, 5, 0, t);
    cr_assert_eq(n, 5, "%d ticks over [0, 1]", n);
    for (int k = 0; k < n; k++) {
        char want[32], got[ZF_VIZ_TICK_LEN];
        snprintf(want, sizeof want, "%g", k * 0.25); /* 0, 0.25, 0.5, 0.75, 1 */
        zf_viz_tick_label(got, sizeof got, t[k], t[1] - t[0]);
        cr_assert_str_eq(got, want, "tick %d: '%s', expected '%s'", k, got, want);
    }
}

/* Labels never carry zeros or exponents the step does not need. */
Test(ticks, labels_have_the_digits_the_step_needs)
{
    static const struct { double v, step; const char *want; } cases[] = {
        {0.9999996, 1e-7, "0.9999996"}, {1.0, 1e-7, "1"},    {0.5, 0.1, "0.5"},    {0.0, 0.25, "0"},
        {-0.0, 0.5, "0"},                {12.5, 2.5, "12.5"}, {100, 50, "100"},      {0.25, 0.25, "0.25"},
        {3e-6, 1e-6, "3e-6"},            {2.5e6, 5e5, "2.5e6"}, {0.075, 0.005, "0.075"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char got[ZF_VIZ_TICK_LEN];
        zf_viz_tick_label(got, sizeof got, cases[i].v, cases[i].step);
        cr_assert_str_eq(got, cases[i].want, "label of %g at step %g: '%s', expected '%s'", cases[i].v,
                         cases[i].step, got, cases[i].want);
    }
}

Test(ticks, prob_range_option)
{
    zf_viz_style s = {0};
    cr_assert_eq(zf_viz_prob_range_parse("0.2:0.8", &s), ZF_OK);
    const float map[2] = {0.5f, 0.6f};
    float lo, hi;
    zf_viz_prob_range(&s, map, 2, &lo, &hi);
    cr_assert(lo == 0.2f && hi == 0.8f);
    cr_assert_eq(zf_viz_prob_range_parse("auto", &s), ZF_OK);
    zf_viz_prob_range(&s, map, 2, &lo, &hi);
    cr_assert(lo == 0.5f && hi == 0.6f);
    cr_assert_neq(zf_viz_prob_range_parse("2:3", &s), ZF_OK);
    cr_assert_neq(zf_viz_prob_range_parse("0.5:0.5", &s), ZF_OK);
    cr_assert_neq(zf_viz_prob_range_parse("0:1x", &s), ZF_OK);
}

/* ---- occlusion figure ----------------------------------------------------------------------- */

/* A 128 x 128 uniform grey image (panel scale 1), 16-pixel square at stride 8: 15 x 15 positions,
 * each map covering 120 x 120 pixels of its panel. */
#define OIMG 128
#define OPOS 15
#define OMAP_PX (OPOS * 8 * OPOS * 8)

typedef struct occl_case {
    zf_viz_occlusion row;
    zf_viz_occlusion_opts opts;
} occl_case;

static zf_status render_occl(zf_viz_doc *doc, const void *ctx)
{
    const occl_case *c = ctx;
    return zf_viz_occlusion_figure(doc, &c->row, 1, &c->opts);
}

static void occl_setup(occl_case *c, zf_image *img, uint8_t *rgb, float *feature, float *prob, int32_t *argmax,
                       uint8_t grey)
{
    memset(rgb, grey, (size_t)OIMG * OIMG * 3);
    *img = (zf_image){OIMG, OIMG, rgb};
    for (int i = 0; i < OPOS * OPOS; i++) {
        feature[i] = 5.0f;
        argmax[i] = 3;
    }
    zf_viz_occlusion row = {img, OPOS, OPOS, 16, 8, feature, "conv5 map 1", NULL, prob, 3, argmax, NULL, "grey", 0,
                            NULL, 0};
    c->row = row;
    c->opts = zf_viz_occlusion_defaults();
}

/* Panel (d) of a map that changes by 4e-7: on the default [0, 1] scale p = 1 and p = 0.9999996 are
 * one colour, the top of viridis, over all of (d); only (b) (a constant map, drawn at its bottom
 * colour) shows viridis' bottom. Drawn opaque (alpha 1) so the colours are the map's own. */
Test(occlusion, prob_map_fixed_scale_same_colour)
{
    static uint8_t rgb[OIMG * OIMG * 3];
    static float feature[OPOS * OPOS], prob[OPOS * OPOS];
    static int32_t argmax[OPOS * OPOS];
    zf_image img;
    occl_case c;
    occl_setup(&c, &img, rgb, feature, prob, argmax, 120);
    for (int i = 0; i < OPOS * OPOS; i++)
        prob[i] = (i % OPOS) < OPOS / 2 ? 1.0f : 0.9999996f;
    c.opts.alpha = 1.0f;
    tu_rgb im = tu_render_png(render_occl, &c);
    const double hi[3] = {VIRIDIS_HI[0], VIRIDIS_HI[1], VIRIDIS_HI[2]};
    const double lo[3] = {VIRIDIS_LO[0], VIRIDIS_LO[1], VIRIDIS_LO[2]};
    long n_hi = count_colour(&im, hi, 1), n_lo = count_colour(&im, lo, 1);
    cr_assert_geq(n_hi, OMAP_PX, "(d) should be all top-of-scale: %ld such pixels, map area %d", n_hi, OMAP_PX);
    cr_assert_lt(n_lo, OMAP_PX + OMAP_PX / 10,
                 "%ld bottom-of-scale pixels: more than (b)'s %d, so (d) spreads 4e-7 over the colour range", n_lo,
                 OMAP_PX);
    free(im.px);
}

/* At the default alpha 0.6 the overlay never shows a map colour as it is: over the uniform grey g
 * (washed to round(96 + g / 2)) p = 1 shows as 0.6 top + 0.4 wash. The colour bar must show that
 * colour, and nowhere the unblended top of viridis. */
Test(occlusion, colour_bar_matches_translucent_overlay)
{
    static uint8_t rgb[OIMG * OIMG * 3];
    static float feature[OPOS * OPOS], prob[OPOS * OPOS];
    static int32_t argmax[OPOS * OPOS];
    zf_image img;
    occl_case c;
    const uint8_t grey = 100;
    occl_setup(&c, &img, rgb, feature, prob, argmax, grey);
    for (int i = 0; i < OPOS * OPOS; i++)
        prob[i] = 1.0f;
    cr_assert_float_eq(c.opts.alpha, 0.6f, 1e-6);
    tu_rgb im = tu_render_png(render_occl, &c);
    const double a = 0.6, wash = round(96.0 + 0.5 * grey);
    const double blended[3] = {a * VIRIDIS_HI[0] + (1 - a) * wash, a * VIRIDIS_HI[1] + (1 - a) * wash,
                               a * VIRIDIS_HI[2] + (1 - a) * wash};
    const double pure[3] = {VIRIDIS_HI[0], VIRIDIS_HI[1], VIRIDIS_HI[2]};
    long n_pure = count_colour(&im, pure, 3), n_blend = count_colour(&im, blended, 3);
    cr_assert_eq(n_pure, 0, "%ld pixels show viridis' top unblended (a colour bar the overlay never shows)", n_pure);
    /* (d) itself, plus at least the top rows of its 12-pixel-wide bar. */
    cr_assert_geq(n_blend, OMAP_PX + 12, "%ld pixels of the overlay's p = 1 colour: the bar does not show it",
                  n_blend);
    free(im.px);
}

/* ---- top-9 sheets --------------------------------------------------------------------------- */

/* The words of a PDF with their widths on the page, by poppler's pdftotext -bbox (an HTML file). A
 * text cut with an ellipsis may still extract whole (cairo tags the ellipsis with the text it
 * replaces), so a word counts as shown only with a width that could hold it. */
static char *pdf_words(const char *pdf)
{
    char out[4096];
    snprintf(out, sizeof out, "%s.html", pdf);
    cr_assert_eq(tu_system("pdftotext -bbox '%s' '%s'", pdf, out), 0, "pdftotext failed (poppler-utils?)");
    FILE *f = fopen(out, "rb");
    cr_assert(f);
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* The widest drawing of `word` in pdftotext -bbox output (0 when it is not there). */
static double word_width(const char *html, const char *word)
{
    double best = 0;
    char tail[512];
    snprintf(tail, sizeof tail, ">%s</word>", word);
    for (const char *p = strstr(html, tail); p; p = strstr(p + 1, tail)) {
        const char *w = p;
        while (w > html && strncmp(w, "<word", 5))
            w--;
        double x0, y0, x1, y1;
        if (sscanf(w, "<word xMin=\"%lf\" yMin=\"%lf\" xMax=\"%lf\" yMax=\"%lf\"", &x0, &y0, &x1, &y1) == 4)
            best = fmax(best, x1 - x0);
    }
    return best;
}

static void write_sheet(const char *path, const char *const *captions, int n)
{
    zf_viz_patch p[9];
    memset(p, 0, sizeof p);
    for (int i = 0; i < n; i++) {
        p[i].w = p[i].h = 32;
        p[i].score = 9.0f - i;
        p[i].caption = captions[i];
    }
    zf_viz_unit u = {"conv5", 7, n, p, 32};
    zf_viz_sheet_in in = {"sheet", 1, &u};
    zf_viz_doc *doc;
    cr_assert_eq(zf_viz_doc_open(path, &doc), ZF_OK);
    cr_assert_eq(zf_viz_sheet(doc, &in, NULL), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_viz_doc_finish(doc), ZF_OK);
    zf_viz_doc_free(doc);
}

/* Long file names under 64-pixel patches: every one appears whole on the page (in a key), at a
 * width that holds its characters (at least 0.35 em each, DejaVu Sans' narrowest are wider), not
 * squeezed into a cell's 64 points behind an ellipsis. */
Test(sheet, long_captions_in_full_through_a_key)
{
    const char *dir = tu_tmpdir("figures-sheet-long");
    char path[4096];
    snprintf(path, sizeof path, "%s/sheet.pdf", dir);
    const char *caps[3] = {"n01440764_10026_tench_in_a_net.JPEG", "n01440764_10027_tench_on_grass.JPEG",
                           "n01440764_10028_tench_held_up.JPEG"};
    write_sheet(path, caps, 3);
    const char *html = pdf_words(path);
    for (int i = 0; i < 3; i++) {
        double w = word_width(html, caps[i]), need = 0.35 * 8.5 * strlen(caps[i]);
        cr_assert_geq(w, need, "caption '%s' is %.1f points wide on the page (at least %.1f to be whole)", caps[i],
                      w, need);
    }
}

/* Short captions fit under their patches: they stay there whole, with no key. */
Test(sheet, short_captions_under_the_patches)
{
    const char *dir = tu_tmpdir("figures-sheet-short");
    char path[4096];
    snprintf(path, sizeof path, "%s/sheet.pdf", dir);
    const char *caps[2] = {"a.png", "b.png"};
    write_sheet(path, caps, 2);
    const char *html = pdf_words(path);
    cr_assert(word_width(html, "a.png") > 0 && word_width(html, "b.png") > 0, "captions missing:\n%s", html);
    cr_assert(!strstr(html, ">Key:</word>"), "a key for captions that fit");
}

/* ---- the RMS histogram ---------------------------------------------------------------------- */

/* Data in [0.9, 1.0]: the axis spans the data with a small margin, not [0, 1] with the data in
 * its last tenth. Data reaching near 0 keep 0 (a dead filter's RMS), never below it. */
Test(compare, histogram_axis_from_data)
{
    double lo, hi;
    zf_viz_data_range(0.9, 1.0, 1, &lo, &hi);
    cr_assert(lo < 0.9 && lo > 0.85 && hi > 1.0 && hi < 1.05, "axis [%g, %g] for data [0.9, 1.0]", lo, hi);
    cr_assert_geq((1.0 - 0.9) / (hi - lo), 0.8, "the data fill only %.0f%% of the axis", 100 * 0.1 / (hi - lo));
    zf_viz_data_range(0.01, 0.5, 1, &lo, &hi);
    cr_assert(lo == 0 && hi > 0.5, "axis [%g, %g] for data [0.01, 0.5]: 0 is near and should show", lo, hi);
    zf_viz_data_range(0.0, 0.0, 1, &lo, &hi);
    cr_assert(lo == 0 && hi > 0, "axis [%g, %g] for all-zero data", lo, hi);
}

/* The comparison page's histogram, drawn: filters whose RMS lies in [0.9, 1] put bars across the
 * plot's width, the leftmost in its left quarter (the plot spans x 446..746 of the page). */
Test(compare, histogram_bars_fill_the_axis)
{
    enum { K = 16, N = 3 * 5 * 5 };
    static float w[K * N];
    for (int f = 0; f < K; f++) /* RMS of filter f: 0.9 + 0.1 f / (K - 1) */
        for (int i = 0; i < N; i++)
            w[f * N + i] = (float)((i % 2 ? 1 : -1) * (0.9 + 0.1 * f / (K - 1)));
    zf_viz_compare_model c[2] = {{"a", w, K, 3, 5, 5, 1, 0, -1, 0}, {"b", w, K, 3, 5, 5, 1, 0, -1, 0}};
    tu_rgb im = tu_render_compare(c);
    const double blue[3] = {0, 0.447 * 255, 0.698 * 255};
    int left = im.w;
    for (int y = im.h / 2; y < im.h; y++)
        for (int x = 440; x < 750 && x < im.w; x++)
            if (near(tu_px(&im, x, y), blue, 2) && x < left)
                left = x;
    cr_assert_lt(left, 446 + 75, "leftmost bar at x %d: the bars sit in the right of a plot from 0", left);
    free(im.px);
}

/* ---- training curves ------------------------------------------------------------------------ */

typedef struct curves_case {
    zf_viz_curves_in in;
} curves_case;

static zf_status render_curves(zf_viz_doc *doc, const void *ctx)
{
    return zf_viz_curves(doc, &((const curves_case *)ctx)->in, "t");
}

/* Three epochs: ticks at 1, 2 and 3 under the loss plot, not at 1.5 and 2.5 too. The tick marks
 * hang 4 pixels below the x axis, found as the darkest long row of the loss plot's lower part. */
Test(curves, integer_epoch_ticks)
{
    const double ep[3] = {1, 2, 3}, tl[3] = {1.0, 0.7, 0.5}, vl[3] = {0.9, 0.8, 0.6}, ta[3] = {0.5, 0.6, 0.7},
                 va[3] = {0.55, 0.6, 0.65};
    zf_viz_curve run = {"r", 3, ep, tl, vl, ta, va};
    curves_case c = {{&run, 1}};
    tu_rgb im = tu_render_png(render_curves, &c);
    /* The x axis: a row dark from x 100 to 400. */
    int axis = -1;
    for (int y = im.h / 2; y < im.h && axis < 0; y++) {
        int dark = 1;
        for (int x = 100; x <= 400 && dark; x += 10)
            dark = tu_px(&im, x, y)[0] < 180;
        if (dark)
            axis = y;
    }
    cr_assert_geq(axis, 0, "no x axis found");
    int ty = axis + 3, marks = 0, in_mark = 0;
    for (int x = 66; x < 440; x++) { /* right of the y labels ("0" ends at x 64) */
        int dark = tu_px(&im, x, ty)[0] < 160;
        marks += dark && !in_mark;
        in_mark = dark;
    }
    cr_assert_eq(marks, 3, "%d tick marks under the epoch axis of 3 epochs (row %d)", marks, ty);
    free(im.px);
}

/* ---- publication options -------------------------------------------------------------------- */

/* `--no-title`: the page loses its title band; the top rows are background. */
Test(style, no_title_removes_the_title_band)
{
    const char *dir = tu_tmpdir("figures-no-title");
    const char *zfviz = tu_build("tools/zfviz");
    cr_assert_eq(tu_system("'%s' filters -o '%s/a.png' 2>/dev/null", zfviz, dir), 0);
    cr_assert_eq(tu_system("'%s' filters --no-title -o '%s/b.png' 2>/dev/null", zfviz, dir), 0,
                 "zfviz filters --no-title failed");
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s/a.png", dir);
    snprintf(pb, sizeof pb, "%s/b.png", dir);
    tu_rgb a = tu_png_read(pa), b = tu_png_read(pb);
    cr_assert_lt(b.h, a.h - 20, "height %d without the title, %d with", b.h, a.h);
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < b.w; x++) {
            const uint8_t *p = tu_px(&b, x, y);
            cr_assert(p[0] == 255 && p[1] == 255 && p[2] == 255, "pixel (%d, %d) of the top band is not background",
                      x, y);
        }
    free(a.px);
    free(b.px);
}

static int cmp_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

TU_RENDER_CASE(sheet)

/* A grey projection of 64 x 64 values in [-1, 1] with 1% outliers at 50: scaled by the largest
 * |v| the rest would be mid grey; at --clip-percentile 95 pixel v shows as
 * round(255 (0.5 + 0.5 v / s)) clamped, s the 95th percentile of |v| by nearest rank, worked out
 * here. Without a title, the projection cell is at (16, 36) (margin, unit heading) at one pixel per
 * value (cell 64 for a 64-pixel receptive field). */
Test(style, clip_percentile_scales_the_projection)
{
    enum { S = 64, NV = S * S };
    static float proj[NV], sorted[NV];
    for (int i = 0; i < NV; i++)
        proj[i] = (i % 97 == 5) ? 50.0f : (float)((i * 37 % 201) - 100) / 100.0f;
    for (int i = 0; i < NV; i++)
        sorted[i] = fabsf(proj[i]);
    qsort(sorted, NV, sizeof *sorted, cmp_float);
    const float P = 95.0f;
    int rank = (int)ceil(P / 100.0 * NV);
    double s = sorted[rank - 1];
    cr_assert(s > 0.9 && s < 1.0, "test data: the 95th percentile is %g", s);

    zf_viz_patch p = {S, S, proj, NULL, 1.0f, NULL, 1};
    zf_viz_unit u = {"conv5", 0, 1, &p, S};
    sheet_case c = {{NULL, 1, &u}, zf_viz_sheet_defaults()};
    c.opts.cell = S;
    c.opts.style.no_title = 1;
    c.opts.style.clip_percentile = P;
    tu_rgb im = tu_render_png(render_sheet, &c);
    int bad = 0, first = -1;
    for (int i = 0; i < NV; i++) {
        double t = 0.5 + 0.5 * proj[i] / s;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        int want = (int)lrint(255 * t), got = tu_px(&im, 16 + i % S, 36 + i / S)[0];
        if (abs(got - want) > 1 && bad++ == 0)
            first = i;
    }
    cr_assert_eq(bad, 0, "%d pixels off; first: value %g shows %d, expected %d at scale %g", bad,
                 first >= 0 ? proj[first] : 0, first >= 0 ? tu_px(&im, 16 + first % S, 36 + first / S)[0] : 0,
                 first >= 0 ? (int)lrint(255 * fmin(1, fmax(0, 0.5 + 0.5 * proj[first] / s))) : 0, s);
    free(im.px);
}

/* `--width W` scales the whole page to W pixels, the height in proportion; `--font-size` makes
 * the text, and so the page, larger. */
Test(style, width_and_font_size)
{
    const char *dir = tu_tmpdir("figures-width");
    const char *zfviz = tu_build("tools/zfviz");
    cr_assert_eq(tu_system("'%s' filters -o '%s/a.png' 2>/dev/null", zfviz, dir), 0);
    cr_assert_eq(tu_system("'%s' filters --width 300 -o '%s/w.png' 2>/dev/null", zfviz, dir), 0,
                 "zfviz filters --width 300 failed");
    cr_assert_eq(tu_system("'%s' filters --font-size 20 -o '%s/f.png' 2>/dev/null", zfviz, dir), 0,
                 "zfviz filters --font-size 20 failed");
    char p[4096];
    snprintf(p, sizeof p, "%s/a.png", dir);
    tu_rgb a = tu_png_read(p);
    snprintf(p, sizeof p, "%s/w.png", dir);
    tu_rgb w = tu_png_read(p);
    snprintf(p, sizeof p, "%s/f.png", dir);
    tu_rgb f = tu_png_read(p);
    cr_assert_eq(w.w, 300, "--width 300 gave a page %d wide", w.w);
    double want_h = (double)a.h * 300 / a.w;
    cr_assert(fabs(w.h - want_h) <= 1, "--width 300: height %d, the natural page in proportion is %.1f", w.h, want_h);
    cr_assert(f.h > a.h && f.w >= a.w, "--font-size 20 page %dx%d is not larger than the default %dx%d", f.w, f.h,
              a.w, a.h);
    free(a.px);
    free(w.px);
    free(f.px);
}

/* Bad values are refused in one line on stderr with the usage exit code, before any work. */
Test(style, bad_values_refused)
{
    const char *dir = tu_tmpdir("figures-bad");
    const char *zfviz = tu_build("tools/zfviz");
    static const char *const cases[] = {"filters --width 0", "filters --font-size big", "sheet --clip-percentile 101",
                                        "occlude --prob-range 2:3", "occlude --prob-range 0.5"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = tu_system("'%s' %s -o '%s/x.png' > '%s/out' 2> '%s/err'", zfviz, cases[i], dir, dir, dir);
        cr_assert_eq(rc, 2, "zfviz %s: exit %d, expected 2", cases[i], rc);
        char p[4096];
        snprintf(p, sizeof p, "%s/err", dir);
        FILE *fe = fopen(p, "r");
        cr_assert(fe);
        char line[1024];
        int lines = 0;
        while (fgets(line, sizeof line, fe))
            lines++;
        fclose(fe);
        cr_assert_eq(lines, 1, "zfviz %s: %d lines on stderr", cases[i], lines);
        snprintf(p, sizeof p, "%s/x.png", dir);
        cr_assert(access(p, F_OK) != 0, "zfviz %s wrote %s", cases[i], p);
    }
}
