/* Pictures of a network and what it computes: filter grids, activation grids, top-9 deconv sheets,
 * occlusion figures, the first-layer comparison page and the multi-page report. Every renderer
 * takes plain arrays and structs (no net, no database) and adds pages to a zf_viz_doc, which is a
 * PNG or PDF file or an in-memory PNG/PDF buffer. One unit of length is one PNG pixel and one PDF
 * point, so a figure is legible at 100% zoom in both. */
#ifndef ZF_VIZ_H
#define ZF_VIZ_H

#include <stddef.h>
#include <stdint.h>

#include "zf/io.h"
#include "zf/net.h"
#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Documents ------------------------------------------------------------------------------ */

typedef enum { ZF_VIZ_PNG = 0, ZF_VIZ_PDF = 1 } zf_viz_format;

/* A PNG holds one page (a second one is an error); a PDF holds any number, each its own size. */
typedef struct zf_viz_doc zf_viz_doc;

/* The format from a file name's extension (.png or .pdf, any case); ZF_ERR_ARG otherwise. */
zf_status zf_viz_format_of(const char *path, zf_viz_format *out);
/* A document written to `path` by zf_viz_doc_finish; the extension picks the format. */
zf_status zf_viz_doc_open(const char *path, zf_viz_doc **out);
/* A document kept in memory (zf_viz_doc_bytes after zf_viz_doc_finish). */
zf_status zf_viz_doc_open_mem(zf_viz_format format, zf_viz_doc **out);
/* Completes the document: writes the PNG, closes the PDF. An empty document is an error. */
zf_status zf_viz_doc_finish(zf_viz_doc *doc);
/* The finished bytes of an in-memory document (NULL before finish or for files). */
const uint8_t *zf_viz_doc_bytes(const zf_viz_doc *doc, size_t *len);
zf_viz_format zf_viz_doc_format(const zf_viz_doc *doc);
int zf_viz_doc_pages(const zf_viz_doc *doc);
/* The size of the last page added (pixels for PNG, points for PDF); 0 x 0 before the first. */
void zf_viz_doc_page_size(const zf_viz_doc *doc, int *w, int *h);
/* Frees without writing if not finished. zf_viz_doc_free(NULL) is a no-op. */
void zf_viz_doc_free(zf_viz_doc *doc);

/* ---- Figure style (the publication options of every figure command) ----------------------- */

/* Settings shared by every figure; all zero is the default look. Each renderer's options carry one. */
typedef struct zf_viz_style {
    int no_title;              /* leave out the figure's title and explanation line (the report
                                * keeps its page headings) */
    double font_size;          /* body text in pixels (points in a PDF); every text size and the
                                * lines that hold text scale with it (0: 12) */
    double width;              /* page width in pixels (points): the finished figure is scaled to it
                                * as a whole (0: its natural width; the report keeps A4) */
    float clip_percentile;     /* deconv projections shown as 0.5 + 0.5 v / s with s this percentile
                                * of |v| (nearest rank) instead of the largest |v|, so one extreme
                                * pixel does not grey out the rest; 0 or 100: the largest */
    int prob_auto;             /* probability maps on each map's own [min, max] (a change of 1e-7
                                * then fills the whole colour range) instead of a fixed range */
    float prob_lo, prob_hi;    /* the fixed range of probability maps (both 0: [0, 1]) */
} zf_viz_style;

/* The range a probability map is drawn over: [0, 1] by default, the style's fixed range, or the
 * map's own [min, max] with prob_auto (n values). */
void zf_viz_prob_range(const zf_viz_style *style, const float *map, size_t n, float *lo, float *hi);
/* "auto", "0:1" or "LO:HI" (0 <= LO < HI <= 1) into style's prob_* fields. */
zf_status zf_viz_prob_range_parse(const char *s, zf_viz_style *style);
/* The scale s of a projection (n values, all planes): the `percentile` of |v| by nearest rank
 * (the smallest |v| with at least percentile % of the values at or below it), or the largest |v|
 * when percentile is 0 or >= 100. */
float zf_viz_proj_scale(const float *v, size_t n, float percentile);

/* ---- Axes and ticks ------------------------------------------------------------------------- */

#define ZF_VIZ_TICK_LEN 32
/* Up to `max` round values (steps of 1, 2, 2.5 or 5 times a power of ten; only whole steps with
 * `integer`, for counts and epochs) covering [lo, hi]; returns the count (one, lo, when hi <= lo). */
int zf_viz_ticks(double lo, double hi, int max, int integer, double *ticks);
/* A tick label with as many digits as the step between ticks needs and no more: "0", "0.25",
 * "0.5", "1", "0.9999996"; trailing zeros dropped; exponent form only beyond 1e6 or below 1e-4. */
void zf_viz_tick_label(char *buf, size_t len, double v, double step);
/* The axis range of a histogram of data in [dmin, dmax]: the data's own range with a margin of 5%
 * of its span each side, so the bars fill the axis; the axis starts at 0 instead when 0 is near
 * (dmin below a third of the span) and, with `nonneg`, never goes below 0. */
void zf_viz_data_range(double dmin, double dmax, int nonneg, double *lo, double *hi);

/* ---- Colour maps ---------------------------------------------------------------------------- */

typedef enum { ZF_VIZ_CMAP_VIRIDIS = 0, ZF_VIZ_CMAP_GREY = 1 } zf_viz_cmap;

/* The colour of t in [0, 1] (clamped; NaN is 0): the nearest of 256 entries, so t = 0 and t = 1
 * give the map's published end points exactly (viridis #440154 and #fde725; grey black, white). */
void zf_viz_cmap_rgb(zf_viz_cmap cmap, float t, uint8_t rgb[3]);
/* "viridis" or "grey"/"gray". */
zf_status zf_viz_cmap_parse(const char *name, zf_viz_cmap *out);
const char *zf_viz_cmap_name(zf_viz_cmap cmap);

/* ---- Filter statistics ---------------------------------------------------------------------- */

/* Filters whose weights are all (near) zero are dead; those whose RMS is below `near_dead` times
 * the median RMS of their layer are near-dead. Both are marked in every picture of filters. */
typedef enum { ZF_VIZ_FILTER_LIVE = 0, ZF_VIZ_FILTER_NEAR_DEAD = 1, ZF_VIZ_FILTER_DEAD = 2 } zf_viz_filter_state;
#define ZF_VIZ_NEAR_DEAD_DEFAULT 0.1f

/* rms[f] (k entries) of each filter of w (k, n) and, if state is not NULL, its state: dead when
 * rms <= 1e-6 * the largest rms (or exactly 0), near-dead when rms < near_dead * median rms.
 * Returns the number of dead plus near-dead filters. */
int zf_viz_filter_stats(float *rms, zf_viz_filter_state *state, const float *w, int k, int64_t n,
                        float near_dead);

/* The radially averaged power spectrum of a layer's filters. Each filter's kernel (kh, kw), one
 * per input channel, is zero-padded to ZF_VIZ_SPECTRUM_N x ZF_VIZ_SPECTRUM_N and transformed; the
 * power |F|^2 is summed over channels and divided by its total, so every filter weighs the same.
 * Radial frequency r = sqrt(fx^2 + fy^2) in cycles per input pixel (tap), fx, fy in [-1/2, 1/2).
 * Bands (thirds of the Nyquist frequency 1/2): low r < 1/6 (DC and colour blobs), mid 1/6 <= r <
 * 1/3, high r >= 1/3 (which includes the corners beyond 1/2). Shares are means over filters of
 * each filter's power fraction in the band; dead filters (no power) are left out. */
#define ZF_VIZ_SPECTRUM_N 32
#define ZF_VIZ_SPECTRUM_BINS 23 /* bins of width 1/32 over r in [0, sqrt(2)/2] */
typedef struct zf_viz_spectrum {
    double low, mid, high;                 /* shares, summing to 1 */
    double radial[ZF_VIZ_SPECTRUM_BINS];   /* mean power per frequency sample in bin b (r in
                                            * [b/32, (b+1)/32)), averaged over filters */
    int filters;                           /* filters counted */
} zf_viz_spectrum;
zf_status zf_viz_filter_spectrum(zf_viz_spectrum *out, const float *w, int k, int c, int kh, int kw);
/* The same zero-padded to n x n (n even, ZF_VIZ_SPECTRUM_N..ZF_VIZ_SPECTRUM_NMAX) for kernels
 * larger than 32 x 32, such as conv2's pixel-space projections (zfviz compare --layer conv2);
 * bands and bins are in cycles per pixel as above. */
#define ZF_VIZ_SPECTRUM_NMAX 512
zf_status zf_viz_filter_spectrum_n(zf_viz_spectrum *out, const float *w, int k, int c, int kh, int kw, int n);

/* ---- Filter grids (zfviz filters) ----------------------------------------------------------- */

typedef enum {
    ZF_VIZ_TILE_AUTO = 0, /* RGB when the layer has 3 input channels, else the channel mean (for
                           * one input channel, a grey net's first layer, that is the filter) */
    ZF_VIZ_TILE_RGB,      /* the 3 input channels as colour (first-layer filters) */
    ZF_VIZ_TILE_MEAN,     /* the mean over input channels, grey */
    ZF_VIZ_TILE_CHANNEL   /* one input channel (opts.channel), grey */
} zf_viz_tile_mode;

typedef enum {
    ZF_VIZ_SCALE_PER_FILTER = 0, /* each tile on its own scale: +-max|w| of the tile */
    ZF_VIZ_SCALE_SHARED = 1      /* one scale for the whole grid: +-max|w| of the layer */
} zf_viz_scale;

enum { ZF_VIZ_LABEL_INDEX = 1, ZF_VIZ_LABEL_RMS = 2 };

/* A conv layer's filters w (k, c, kh, kw) as PyTorch stores them (c per group). */
typedef struct zf_viz_filters_in {
    const char *title;   /* e.g. "alexnet conv1"; NULL for none */
    const float *w;
    int k, c, kh, kw;
    int bgr;             /* RGB tiles: input channel 0 is blue (Caffe / ONNX zoo models) */
} zf_viz_filters_in;

typedef struct zf_viz_filters_opts {
    zf_viz_tile_mode mode;
    int channel;         /* ZF_VIZ_TILE_CHANNEL */
    zf_viz_scale scale;
    int zoom;            /* pixels per tap, 0: enough for tiles of about 48 px */
    int gap;             /* pixels between tiles (2) */
    int cols;            /* 0: about square, preferring a count that divides k */
    int labels;          /* ZF_VIZ_LABEL_* bits */
    int max_filters;     /* 0: all */
    float near_dead;     /* see zf_viz_filter_stats; 0 marks only dead filters */
    zf_viz_style style;
} zf_viz_filters_opts;
zf_viz_filters_opts zf_viz_filters_defaults(void);

/* Where everything in a grid figure lies (pixels from the top-left corner of the page). Tile i
 * (row i / cols, column i % cols) has its top-left pixel at
 *   (grid_x + (i % cols) * pitch_x + tile_dx, grid_y + (i / cols) * pitch_y). */
typedef struct zf_viz_grid {
    int width, height;          /* the page */
    int n, cols, rows;
    int zoom, tile_w, tile_h;   /* tile_w = kw * zoom (filters) */
    int grid_x, grid_y, pitch_x, pitch_y, tile_dx;
} zf_viz_grid;
zf_status zf_viz_filters_layout(zf_viz_grid *out, const zf_viz_filters_in *in,
                                const zf_viz_filters_opts *opts);
/* The grid as one page. Tile pixel (y, x) of a filter shows tap (y / zoom, x / zoom), mapped as
 * v -> 0.5 + 0.5 v / s (s the scale's max |w|; 0 is mid grey) then to 8 bits as round(255 t).
 * Dead filters get a red frame in the gap around the tile, near-dead ones an orange frame. */
zf_status zf_viz_filters(zf_viz_doc *doc, const zf_viz_filters_in *in, const zf_viz_filters_opts *opts);

/* ---- Activation grids (zfviz activations) --------------------------------------------------- */

typedef struct zf_viz_maps_in {
    const char *title;
    const float *maps;         /* (c, h, w) */
    int c, h, w;
    const zf_image *image;     /* the input as the net saw it, shown beside the grid; NULL: none */
} zf_viz_maps_in;

typedef struct zf_viz_maps_opts {
    zf_viz_cmap cmap;
    int per_map;               /* 0: one scale [min, max] over all maps (with a colour bar);
                                * 1: each map on its own [min, max] */
    int zoom;                  /* 0: tiles of about 56 px */
    int gap, cols, labels, max_maps;
    zf_viz_style style;
} zf_viz_maps_opts;
zf_viz_maps_opts zf_viz_maps_defaults(void);
zf_status zf_viz_maps_layout(zf_viz_grid *out, const zf_viz_maps_in *in, const zf_viz_maps_opts *opts);
/* Pixel (y, x) of tile i shows maps[i][y / zoom][x / zoom] through the colour map at
 * t = (v - lo) / (hi - lo) (t = 0 when hi == lo). */
zf_status zf_viz_maps(zf_viz_doc *doc, const zf_viz_maps_in *in, const zf_viz_maps_opts *opts);

/* ---- Top-9 sheets (zfviz sheet; Zeiler & Fergus Fig. 2) ------------------------------------- */

/* One strong activation: its deconv projection and the image patch under its receptive field,
 * both (h, w), cropped to the receptive field (smaller at image borders). */
typedef struct zf_viz_patch {
    int w, h;
    const float *proj;         /* (channels, h, w): RGB planes, or one grey plane; shown as
                                * 0.5 + 0.5 v / max|v| (max over all planes); NULL: blank */
    const uint8_t *rgb;        /* (h, w, 3) RGB (R = G = B for a grey net); NULL: blank */
    float score;               /* the activation */
    const char *caption;       /* e.g. the image's file name; NULL: none */
    int channels;              /* planes of proj: 3 (RGB) or 1 (a grey net's, shown grey); 0 is 3 */
} zf_viz_patch;

typedef struct zf_viz_unit {
    const char *layer;
    int channel;
    int n;                     /* <= 9 */
    const zf_viz_patch *top;   /* strongest first */
    int rf;                    /* receptive field size in pixels (0: the largest patch) */
} zf_viz_unit;

typedef struct zf_viz_sheet_in {
    const char *title;
    int n_units;
    const zf_viz_unit *units;
} zf_viz_sheet_in;

typedef struct zf_viz_sheet_opts {
    int cell;                  /* pixels per patch (0: 64) */
    int units_per_row;         /* 0: about square, at most 4 */
    int units_per_page;        /* 0: all on one page (file output); the report uses 4 */
    zf_viz_style style;        /* clip_percentile scales the projections */
} zf_viz_sheet_opts;
zf_viz_sheet_opts zf_viz_sheet_defaults(void);
/* One page per units_per_page units: per unit a 3x3 grid of projections beside a 3x3 grid of
 * patches, strongest at the top left, scores and captions under the patches. Captions are shown
 * whole: where one is wider than its cell, every patch of the page gets a number under it instead
 * and a key below the units lists number -> caption. */
zf_status zf_viz_sheet(zf_viz_doc *doc, const zf_viz_sheet_in *in, const zf_viz_sheet_opts *opts);

/* ---- Occlusion figures (zfviz occlude --png/--pdf; Zeiler & Fergus Fig. 7) ------------------ */

/* One image's occlusion maps over the positions of the grey square: position (i, j) has the
 * square's top-left corner at (i * stride, j * stride) of the image. */
typedef struct zf_viz_occlusion {
    const zf_image *image;     /* (a): the input as the net saw it (after resize and crop) */
    int rows, cols;            /* positions */
    int patch, stride;         /* the square's side and step in image pixels */
    const float *feature;      /* (b) (rows, cols): total of the rectified feature map */
    const char *feature_name;  /* e.g. "conv5 map 123" */
    const float *proj;         /* (c) (proj_channels, image h, image w) deconv projection of that
                                * map on the unoccluded image, RGB planes or one grey plane; NULL
                                * leaves (c) out */
    const float *prob;         /* (d) (rows, cols): probability of the correct class */
    int true_class;            /* the class of (d): the correct one, or the top class unoccluded */
    const int32_t *argmax;     /* (e) (rows, cols): the most probable class */
    const char *(*class_name)(int k); /* the name of class k or NULL; NULL: classes are shown by
                                       * number (class_names, when given, come first) */
    const char *caption;       /* e.g. the image's file name */
    int proj_channels;         /* planes of proj: 3 (RGB) or 1 (grey); 0 is 3 */
    const char *const *class_names; /* names of classes 0 .. n_class_names - 1 (an entry may be
                                     * NULL); NULL: class_name decides */
    int n_class_names;
} zf_viz_occlusion;

typedef struct zf_viz_occlusion_opts {
    float alpha;               /* opacity of heat maps over the image (0.6) */
    int legend_max;            /* classes named in the legend of (e), by area (8, at most 10) */
    int panel;                 /* longest side of a panel in pixels (0: the image's own size, at most
                                * 256; one under 128 enlarged by a whole factor to 128 or more) */
    zf_viz_style style;        /* prob_* set the scale of (d), clip_percentile that of (c) */
} zf_viz_occlusion_opts;
zf_viz_occlusion_opts zf_viz_occlusion_defaults(void);
/* One page, one row per image: (a) the image, (b) the feature map's total, (c) its deconv
 * projection, (d) p(true class), (e) the most probable class with a legend of names. (b) and (d)
 * are viridis heat maps over a greyed image with colour bars; each map cell covers the stride x
 * stride square around the centre of its square. (b) spans its map's [min, max]; (d) spans [0, 1]
 * unless the style says otherwise. Colour bars and legend swatches are blended at the overlay's
 * alpha over the mean grey of the image beneath, so they show the colours the panels show. */
zf_status zf_viz_occlusion_figure(zf_viz_doc *doc, const zf_viz_occlusion *rows, int n,
                                  const zf_viz_occlusion_opts *opts);

/* ---- The first-layer comparison (zfviz compare; ZF section 4.1) ----------------------------- */

typedef struct zf_viz_compare_model {
    const char *name;          /* e.g. "alexnet (random:0)" */
    const float *w;            /* conv1 (k, c, kh, kw) */
    int k, c, kh, kw, stride;
    int bgr;
    float never_fire;          /* fraction of conv1 maps that never fired on the images; <0: no images */
    int images;
} zf_viz_compare_model;

typedef struct zf_viz_compare_opts {
    int zoom;                  /* pixels per tap, the same for both grids (0: 4) */
    float near_dead;
    zf_viz_style style;
} zf_viz_compare_opts;
zf_viz_compare_opts zf_viz_compare_defaults(void);
/* Numbers the page shows, for tools and tests. */
typedef struct zf_viz_compare_stats {
    int filters, dead, near_dead;
    float rms_median, rms_max;
    zf_viz_spectrum spectrum;
} zf_viz_compare_stats;
zf_status zf_viz_compare_stats_of(zf_viz_compare_stats *out, const zf_viz_compare_model *m,
                                  float near_dead);
/* One page: both conv1 grids (per-filter scale) at the same size per tap, a table of numbers,
 * a per-filter RMS histogram and the mean radial power spectrum of both. */
zf_status zf_viz_compare(zf_viz_doc *doc, const zf_viz_compare_model *a, const zf_viz_compare_model *b,
                         const zf_viz_compare_opts *opts);

/* ---- The report (zfviz report) -------------------------------------------------------------- */

typedef struct zf_viz_layer_row {
    const char *name, *op;
    int c, h, w;
    int64_t params;
} zf_viz_layer_row;

typedef struct zf_viz_dead_row {
    const char *layer;
    int units;
    int dead;                  /* never fired (max <= 0) */
    int rare;                  /* fired on fewer than min_active of the images, dead excluded */
} zf_viz_dead_row;

typedef struct zf_viz_report_in {
    const char *title;         /* "zfviz scan report" when NULL */
    const char *subtitle;      /* e.g. the database and date */
    const char *model;         /* model name */
    const char *model_notes;   /* free text under the layer table (preprocessing, weights) */
    int n_layers;
    const zf_viz_layer_row *layers;
    int64_t params;
    int64_t images;            /* images scanned */
    int n_grids;
    const zf_viz_filters_in *grids;
    int n_dead;
    const zf_viz_dead_row *dead;
    float min_active;
    int n_sheets;
    const zf_viz_sheet_in *sheets;
    int n_occlusions;
    const zf_viz_occlusion *occlusions;
    zf_viz_style style;        /* width is ignored: the pages stay A4 */
} zf_viz_report_in;

/* Number of pages zf_viz_report will add. */
int zf_viz_report_pages(const zf_viz_report_in *r);
/* A PDF: title page with contents (linked) and page numbers, model summary, filter grids, the
 * dead-unit table with a bar chart of dead fractions per layer, top-9 sheets (4 units a page),
 * occlusion figures (2 a page). Every page is A4 landscape with its number in the footer. */
zf_status zf_viz_report(zf_viz_doc *doc, const zf_viz_report_in *r);

/* ---- Helpers for callers -------------------------------------------------------------------- */

/* The 8-bit RGB image a net saw, from its preprocessed input in the net's channel order: (3, h, w),
 * or (1, h, w) for a grey net (pre->order ZF_COLOR_GREY), which gives R = G = B. Inverts `pre`
 * ((v * std + mean) / scale * 255, rounded and clamped; a grey plane uses mean[0] and std[0], as
 * zf_image_to_input does). rgb is (h, w, 3). */
void zf_viz_input_to_rgb(uint8_t *rgb, const float *input, const zf_preproc *pre, int h, int w);
/* Reorders a (3, h, w) projection from the net's channel order to RGB in place; a grey net's
 * (1, h, w) projection (and an RGB one) is left as it is. */
void zf_viz_proj_to_rgb(float *proj, const zf_preproc *pre, int h, int w);
/* Planes of a net's input and deconv projections as the renderers take them: 1 for a grey net,
 * else 3. */
static inline int zf_viz_planes(const zf_preproc *pre) { return pre->order == ZF_COLOR_GREY ? 1 : 3; }

/* ---- Training curves (zfviz train, zfviz demo) -------------------------------------------- */

/* One run's per-epoch values; accuracies in [0, 1]; NaN where there is none (no validation set). */
typedef struct zf_viz_curve {
    const char *name;
    int n;
    const double *epoch, *train_loss, *val_loss, *train_acc, *val_acc;
} zf_viz_curve;
typedef struct zf_viz_curves_in {
    const zf_viz_curve *runs;
    int n_runs; /* up to 4 are drawn */
} zf_viz_curves_in;
/* One page: loss (left) and top-1 accuracy (right) against whole epochs, validation solid, training
 * dashed, one colour per run. */
zf_status zf_viz_curves(zf_viz_doc *doc, const zf_viz_curves_in *in, const char *title);
/* The same in a style (NULL: the default). */
zf_status zf_viz_curves_styled(zf_viz_doc *doc, const zf_viz_curves_in *in, const char *title,
                               const zf_viz_style *style);

/* ---- Text pages (zfviz demo) ----------------------------------------------------------------- */

/* A block of a text page: a bold heading over prose (wrapped at words; '\n' breaks a line) or a
 * monospaced table (one line per '\n', each cut with "..." if wider than the block). */
typedef struct zf_viz_text_block {
    const char *heading;       /* NULL: none */
    const char *text;          /* NULL: none */
    int mono;
    int column;                /* 0: the full width; 1: the left half; 2: the right half, beside the
                                * left-half block before it */
} zf_viz_text_block;
/* One A4-landscape page (842 x 595): the title, then the blocks top to bottom. Fonts shrink (to 70%
 * at least) until the text fits; text that still does not fit is an error, not a cut page. */
zf_status zf_viz_text_page(zf_viz_doc *doc, const char *title, const zf_viz_text_block *blocks, int n);

#ifdef __cplusplus
}
#endif
#endif
