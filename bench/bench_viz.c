/* Rendering speed of the viz module on synthetic data: a 96-filter conv1 grid (PNG and PDF, in
 * memory) and a 20-page report (PDF), the target being well under a second per page.
 *   bench_viz [--reps N] [--out DIR]   (--out also writes every rendering there to look at) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "zf/viz.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0));
}

/* Filters that look like trained first layers: oriented Gabors, colour blobs, a few dead. */
static float *make_filters(int k, int c, int kh, int kw)
{
    float *w = malloc(sizeof(float) * k * c * kh * kw);
    for (int f = 0; f < k; f++) {
        float th = urand() * 3.14159f, freq = 0.08f + urand() * 0.35f, ph = urand() * 6.28f;
        float sig = kw * (0.18f + urand() * 0.15f);
        int blob = f % 4 == 3;
        float col[3] = {urand() - 0.5f, urand() - 0.5f, urand() - 0.5f};
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++) {
                    float dx = x - (kw - 1) / 2.0f, dy = y - (kh - 1) / 2.0f;
                    float g = expf(-(dx * dx + dy * dy) / (2 * sig * sig));
                    float v = blob ? g * col[ch % 3]
                                   : g * cosf(freq * 6.28f * (dx * cosf(th) + dy * sinf(th)) + ph) *
                                         (ch % 3 == f % 3 ? 1.0f : 0.6f);
                    v = 0.05f * v + 0.004f * (urand() - 0.5f);
                    if (f % 29 == 5)
                        v = 0; /* dead */
                    if (f % 31 == 7)
                        v *= 0.02f; /* near-dead */
                    w[(((int64_t)f * c + ch) * kh + y) * kw + x] = v;
                }
    }
    return w;
}

static void make_image(uint8_t *rgb, int w, int h, int seed)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float dx = x - w * (0.4f + 0.1f * (seed % 3)), dy = y - h * 0.55f;
            float r = sqrtf(dx * dx + dy * dy);
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            int in = r < w * 0.22f;
            p[0] = (uint8_t)(in ? 200 - r * 0.3f : 60 + 100.0f * y / h);
            p[1] = (uint8_t)(in ? 120 + 40 * sinf(x * 0.2f) : 110 + 60.0f * x / w);
            p[2] = (uint8_t)(in ? 40 : 170 - 50.0f * y / h);
        }
}

typedef struct occl_data {
    zf_image img;
    float *feature, *prob, *proj;
    int32_t *argmax;
    zf_viz_occlusion row;
} occl_data;

static const char *const classes[] = {"tabby cat", "tiger cat", "Egyptian cat", "lynx", "golden retriever",
                                      "tennis ball", "window screen", "quilt", "doormat", "bath towel"};

static const char *class_name(int k) { return k < 10 ? classes[k] : NULL; }

static void make_occlusion(occl_data *d, int seed)
{
    int W = 224, P = 32, S = 8, n = (W - P) / S + 1;
    d->img.w = d->img.h = W;
    d->img.rgb = malloc((size_t)W * W * 3);
    make_image(d->img.rgb, W, W, seed);
    d->feature = malloc(sizeof(float) * n * n);
    d->prob = malloc(sizeof(float) * n * n);
    d->argmax = malloc(sizeof(int32_t) * n * n);
    d->proj = malloc(sizeof(float) * 3 * W * W);
    float cx = n * (0.3f + 0.1f * (seed % 3)), cy = n * 0.45f;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float r2 = (i - cy) * (i - cy) + (j - cx) * (j - cx);
            d->feature[i * n + j] = 40.0f - 35.0f * expf(-r2 / 12.0f) + urand();
            d->prob[i * n + j] = 0.85f - 0.8f * expf(-r2 / 20.0f);
            d->argmax[i * n + j] = r2 < 10 ? 5 : r2 < 25 ? (i > cy ? 1 : 7) : (j > n - 4 ? 4 : 0);
        }
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < W; y++)
            for (int x = 0; x < W; x++) {
                float dx = x - 90.0f, dy = y - 110.0f;
                d->proj[(c * W + y) * W + x] = expf(-(dx * dx + dy * dy) / 900.0f) *
                                                sinf(0.3f * x + c) * cosf(0.25f * y);
            }
    /* Designated, so fields added to the row struct later default to zero. */
    zf_viz_occlusion r = {.image = &d->img, .rows = n, .cols = n, .patch = P, .stride = S, .feature = d->feature,
                          .feature_name = "conv5 map 41", .proj = d->proj, .prob = d->prob, .true_class = 0,
                          .argmax = d->argmax, .class_name = class_name, .caption = "sample image"};
    d->row = r;
}

static void free_occlusion(occl_data *d)
{
    free(d->img.rgb);
    free(d->feature);
    free(d->prob);
    free(d->argmax);
    free(d->proj);
}

/* Units with 9 patches each, cropped from a synthetic image, with Gabor-like projections. */
typedef struct sheet_data {
    zf_viz_unit *units;
    zf_viz_patch *patches;
    uint8_t *rgb;
    float *proj;
    zf_viz_sheet_in in;
} sheet_data;

static void make_sheet(sheet_data *s, int n_units, int rf, const char *layer)
{
    s->units = calloc((size_t)n_units, sizeof *s->units);
    s->patches = calloc((size_t)n_units * 9, sizeof *s->patches);
    s->rgb = malloc((size_t)rf * rf * 3 * 9);
    s->proj = malloc(sizeof(float) * 3 * rf * rf * 9);
    uint8_t *img = malloc((size_t)224 * 224 * 3);
    for (int e = 0; e < 9; e++) {
        make_image(img, 224, 224, e);
        int ox = (e * 17) % (224 - rf), oy = (e * 29) % (224 - rf);
        for (int y = 0; y < rf; y++)
            memcpy(s->rgb + ((size_t)e * rf * rf + (size_t)y * rf) * 3, img + ((size_t)(oy + y) * 224 + ox) * 3,
                   (size_t)rf * 3);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < rf; y++)
                for (int x = 0; x < rf; x++) {
                    float dx = x - rf / 2.0f, dy = y - rf / 2.0f;
                    s->proj[(((size_t)e * 3 + c) * rf + y) * rf + x] =
                        expf(-(dx * dx + dy * dy) / (rf * rf / 10.0f)) * sinf(0.4f * (x + e) + c * 0.7f) *
                        (0.8f + 0.4f * urand());
                }
    }
    free(img);
    for (int u = 0; u < n_units; u++) {
        for (int e = 0; e < 9; e++) {
            zf_viz_patch *p = &s->patches[u * 9 + e];
            p->w = p->h = rf;
            p->proj = s->proj + (size_t)e * 3 * rf * rf;
            p->rgb = s->rgb + (size_t)e * rf * rf * 3;
            p->score = 30.0f - 2.0f * e - 0.1f * u;
        }
        zf_viz_unit un = {layer, 7 * u + 3, 9, &s->patches[u * 9], rf};
        s->units[u] = un;
    }
    zf_viz_sheet_in in = {"Top 9 activations", n_units, s->units};
    in.title = layer;
    s->in = in;
}

static void free_sheet(sheet_data *s)
{
    free(s->units);
    free(s->patches);
    free(s->rgb);
    free(s->proj);
}

static int check(zf_status st, const char *what)
{
    if (st != ZF_OK) {
        fprintf(stderr, "bench_viz: %s: %s\n", what, zf_last_error());
        return 1;
    }
    return 0;
}

static int render_file(const char *dir, const char *name, zf_status (*fn)(zf_viz_doc *, void *), void *ctx)
{
    if (!dir)
        return 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    zf_viz_doc *doc;
    if (check(zf_viz_doc_open(path, &doc), path))
        return 1;
    int bad = check(fn(doc, ctx), path) || check(zf_viz_doc_finish(doc), path);
    zf_viz_doc_free(doc);
    if (!bad)
        printf("wrote %s\n", path);
    return bad;
}

typedef struct grid_ctx { zf_viz_filters_in in; zf_viz_filters_opts o; } grid_ctx;
static zf_status do_grid(zf_viz_doc *d, void *c)
{
    grid_ctx *g = c;
    return zf_viz_filters(d, &g->in, &g->o);
}
static zf_status do_report(zf_viz_doc *d, void *c) { return zf_viz_report(d, c); }
static zf_status do_occl(zf_viz_doc *d, void *c) { return zf_viz_occlusion_figure(d, c, 2, NULL); }
static zf_status do_sheet(zf_viz_doc *d, void *c) { return zf_viz_sheet(d, c, NULL); }
typedef struct cmp_ctx { zf_viz_compare_model a, b; } cmp_ctx;
static zf_status do_compare(zf_viz_doc *d, void *c)
{
    cmp_ctx *m = c;
    return zf_viz_compare(d, &m->a, &m->b, NULL);
}
typedef struct maps_ctx { zf_viz_maps_in in; zf_viz_maps_opts o; } maps_ctx;
static zf_status do_maps(zf_viz_doc *d, void *c)
{
    maps_ctx *m = c;
    return zf_viz_maps(d, &m->in, &m->o);
}

/* Best of `reps` timings of rendering with fn into a fresh in-memory document. */
static double time_mem(zf_viz_format fmt, zf_status (*fn)(zf_viz_doc *, void *), void *ctx, int reps,
                       size_t *bytes, int *pages)
{
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        zf_viz_doc *doc;
        double t0 = bench_now();
        if (check(zf_viz_doc_open_mem(fmt, &doc), "open") || check(fn(doc, ctx), "render") ||
            check(zf_viz_doc_finish(doc), "finish"))
            exit(1);
        double t = bench_now() - t0;
        zf_viz_doc_bytes(doc, bytes);
        *pages = zf_viz_doc_pages(doc);
        zf_viz_doc_free(doc);
        if (t < best)
            best = t;
    }
    return best;
}

int main(int argc, char **argv)
{
    int reps = 5;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else {
            fprintf(stderr, "usage: bench_viz [--reps N] [--out DIR]\n");
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;

    float *conv1 = make_filters(96, 3, 11, 11), *zf1 = make_filters(96, 3, 7, 7);
    float *conv2 = make_filters(256, 48, 5, 5), *conv3 = make_filters(384, 256, 3, 3);
    grid_ctx g = {{"conv1 (synthetic)", conv1, 96, 3, 11, 11, 0}, zf_viz_filters_defaults()};
    g.o.labels = ZF_VIZ_LABEL_INDEX | ZF_VIZ_LABEL_RMS;

    occl_data od[6];
    zf_viz_occlusion orows[6];
    for (int i = 0; i < 6; i++) {
        make_occlusion(&od[i], i);
        orows[i] = od[i].row;
    }
    sheet_data s2, s5;
    make_sheet(&s2, 16, 59, "conv2");
    make_sheet(&s5, 16, 163, "conv5");

    /* 20 pages: contents, model, 6 grids, dead units, 4 + 4 sheet pages, 3 occlusion pages (2 images each). */
    zf_viz_layer_row layers[] = {
        {"conv1", "conv 11/4/0", 96, 55, 55, 34944}, {"relu1", "relu", 96, 55, 55, 0},
        {"norm1", "lrn", 96, 55, 55, 0},             {"pool1", "maxpool 3/2", 96, 27, 27, 0},
        {"conv2", "conv 5/1/2 g2", 256, 27, 27, 307456}, {"relu2", "relu", 256, 27, 27, 0},
        {"norm2", "lrn", 256, 27, 27, 0},            {"pool2", "maxpool 3/2", 256, 13, 13, 0},
        {"conv3", "conv 3/1/1", 384, 13, 13, 885120}, {"relu3", "relu", 384, 13, 13, 0},
        {"conv4", "conv 3/1/1 g2", 384, 13, 13, 663936}, {"relu4", "relu", 384, 13, 13, 0},
        {"conv5", "conv 3/1/1 g2", 256, 13, 13, 442624}, {"relu5", "relu", 256, 13, 13, 0},
        {"pool5", "maxpool 3/2", 256, 6, 6, 0},      {"fc6", "fc", 4096, 1, 1, 37752832},
        {"relu6", "relu", 4096, 1, 1, 0},            {"fc7", "fc", 4096, 1, 1, 16781312},
        {"relu7", "relu", 4096, 1, 1, 0},            {"fc8", "fc", 1000, 1, 1, 4097000},
        {"prob", "softmax", 1000, 1, 1, 0},
    };
    zf_viz_dead_row dead[] = {{"relu1", 96, 5, 3},  {"relu2", 256, 12, 9}, {"relu3", 384, 2, 4},
                              {"relu4", 384, 7, 11}, {"relu5", 256, 3, 6},  {"relu6", 4096, 410, 120},
                              {"relu7", 4096, 250, 300}};
    zf_viz_filters_in grids[6] = {
        {"conv1", conv1, 96, 3, 11, 11, 0},   {"zfnet conv1", zf1, 96, 3, 7, 7, 0},
        {"conv2", conv2, 256, 48, 5, 5, 0},   {"conv3", conv3, 384, 256, 3, 3, 0},
        {"conv2 (first 96)", conv2, 96, 48, 5, 5, 0}, {"conv3 (first 128)", conv3, 128, 256, 3, 3, 0},
    };
    zf_viz_sheet_in sheets[2] = {s2.in, s5.in};
    zf_viz_report_in rep = {0};
    rep.title = "zfviz scan report (synthetic)";
    rep.subtitle = "bench: synthetic filters, units and maps";
    rep.model = "alexnet-caffe";
    rep.model_notes = "227 input, BGR 0-255 minus the mean; weights synthetic.";
    rep.n_layers = (int)(sizeof layers / sizeof layers[0]);
    rep.layers = layers;
    rep.params = 60965224;
    rep.images = 5000;
    rep.n_grids = 6;
    rep.grids = grids;
    rep.n_dead = 7;
    rep.dead = dead;
    rep.min_active = 0.01f;
    rep.n_sheets = 2;
    rep.sheets = sheets;
    rep.n_occlusions = 6;
    rep.occlusions = orows;

    cmp_ctx cm = {{"alexnet (synthetic)", conv1, 96, 3, 11, 11, 4, 0, 0.083f, 500},
                  {"zfnet (synthetic)", zf1, 96, 3, 7, 7, 2, 0, 0.021f, 500}};
    float *maps = malloc(sizeof(float) * 64 * 27 * 27);
    for (int i = 0; i < 64 * 27 * 27; i++)
        maps[i] = fmaxf(0, sinf(i * 0.013f) * 3 + urand() - 0.5f);
    maps_ctx mc = {{"conv2 activations (synthetic)", maps, 64, 27, 27, &od[0].img}, zf_viz_maps_defaults()};

    int bad = render_file(out, "grid96.png", do_grid, &g) || render_file(out, "grid96.pdf", do_grid, &g) ||
              render_file(out, "report.pdf", do_report, &rep) || render_file(out, "occlusion.png", do_occl, orows) ||
              render_file(out, "sheet.png", do_sheet, &s5.in) || render_file(out, "compare.png", do_compare, &cm) ||
              render_file(out, "maps.png", do_maps, &mc);
    if (bad)
        return 1;

    size_t bytes;
    int pages;
    printf("bench_viz: best of %d runs, rendering into memory\n", reps);
    double t = time_mem(ZF_VIZ_PNG, do_grid, &g, reps, &bytes, &pages);
    printf("  96-filter conv1 grid, PNG   %8.1f ms  (%zu bytes)\n", t * 1e3, bytes);
    t = time_mem(ZF_VIZ_PDF, do_grid, &g, reps, &bytes, &pages);
    printf("  96-filter conv1 grid, PDF   %8.1f ms  (%zu bytes)\n", t * 1e3, bytes);
    t = time_mem(ZF_VIZ_PDF, do_report, &rep, reps, &bytes, &pages);
    printf("  %d-page report, PDF         %8.1f ms  (%.1f ms per page, %zu bytes)\n", pages, t * 1e3,
           t * 1e3 / pages, bytes);

    for (int i = 0; i < 6; i++)
        free_occlusion(&od[i]);
    free_sheet(&s2);
    free_sheet(&s5);
    free(conv1);
    free(zf1);
    free(conv2);
    free(conv3);
    free(maps);
    return 0;
}
