/* What occlusion.c and its stages (occlusion_region.c, occlusion_conv.c, occlusion_fc.c) share:
 * the changed regions, the run's state and the zf_occl_* functions called across files (core only). */
#ifndef ZF_OCCLUSION_INTERNAL_H
#define ZF_OCCLUSION_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "zf/occlusion.h"
#include "zf/ops.h"

/* Loops over fewer elements than this run on one thread: a fork and join costs more, and far more
 * on a loaded machine. */
#define ZF_OCCL_BIG(work) ((work) > 32768)

/* Tile classes of the Winograd tilings (occlusion_conv.c: plan_tiling). */
#define ZF_OCCL_TILE_CLASSES 4

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* Half-open rows [y0, y1) x columns [x0, x1); empty when either extent is zero. */
typedef struct rect {
    int y0, y1, x0, x1;
} rect;

static inline int rect_h(rect r) { return r.y1 - r.y0; }
static inline int rect_w(rect r) { return r.x1 - r.x0; }
static inline int64_t rect_area(rect r) { return (int64_t)rect_h(r) * rect_w(r); }

/* The changed part of one layer's output for a batch of positions: position b's rectangle r[b]
 * of the (c, h, w) map holds v[ch * cols + off[b] + y * width + x] (row-major in the rectangle). */
typedef struct region {
    int c, h, w;
    int n;
    rect *r;
    int64_t *off;
    int64_t cols;
    float *v;
    size_t cap;
} region;

/* Per conv layer: the chosen way to recompute it and its rearranged weights. */
typedef struct conv_plan {
    zf_occlusion_conv algo;
    float *wt;   /* DELTA: per group (kg*kh*kw, cg), W^T with taps in the rows */
    /* WINOGRAD(4): per tile class (k, na*nb, cg), G_a g G_b^T (zf_wino_filters_ab) */
    float *wino[ZF_OCCL_TILE_CLASSES];
} conv_plan;

typedef struct occl {
    zf_net *net;
    const zf_occlusion_params *p;
    int rows, cols, npos;
    int conv_layer, feat_layer, channel, cls, n_classes;
    int n_spatial;     /* layers [0, n_spatial) are followed as changed regions; the rest run dense */
    int incremental_ok;
    char why_not[160]; /* why the incremental method does not apply */
    float *base_in;    /* the unoccluded input and each layer's unoccluded output */
    float **base;
    float *base_block;
    double base_feat_total;
    conv_plan *cp;
    double cost_brute, cost_inc; /* estimated multiply-adds over the whole map */
    size_t region_pp;  /* largest changed region of one position, in floats */
    int batch;
    region reg[2];
    float *work;       /* im2col columns / Winograd V / delta D */
    size_t work_cap;
    float *work2;      /* Winograd M / delta G */
    size_t work2_cap;
    float *tiles;      /* one patched input window per thread */
    size_t tiles_cap;
    float *dense[2];   /* the fully connected tail, (batch, width) */
    size_t dense_cap[2];
    /* The tail's first fully connected layer as a change of its unoccluded output:
     * y = y0 + sum over changed cells of W[:, cell] (new - old), one sgemm per cell of the map. */
    int fc_delta;      /* its layer index, or -1 */
    float *fc_w;       /* its weights per cell: (cells, channels, out) */
    float *fc_a, *fc_y;
    size_t fc_a_cap, fc_y_cap;
    int *fc_rows;
    /* Inputs that are zero in every row of a product drop out of it (ReLU zeros: half the
     * columns of AlexNet's fc7): the rest of the inputs and their weights, gathered. */
    float *sp_x, *sp_w;
    size_t sp_x_cap, sp_w_cap;
    int *sp_idx;
    size_t sp_idx_cap;
    /* The positions whose fully connected tail is still to run, gathered over batches so that the
     * tail's sgemms are wide: their last spatial layer's regions, channel stride fc_grp.cols. */
    region fc_grp;
    int64_t fc_grp_p0;
    int fc_grp_max;
    zf_occlusion_result *res;
} occl;

/* occlusion.c */

/* 64-byte aligned memory that is written before it is read: not zeroed (zf_free releases it). */
void *zf_occl_scratch_alloc(size_t bytes);

/* Makes *buf (capacity *cap floats) hold at least `floats`, with a quarter more room; its contents
 * are not kept. */
zf_status zf_occl_grow(float **buf, size_t *cap, size_t floats);

/* Probability of o->cls and the most probable class for each of n output rows (probabilities
 * when the net ends with a softmax, else logits). */
void zf_occl_read_outputs(const occl *o, const float *outp, int n, float *prob, int32_t *argmax);

/* occlusion_region.c */

/* The rectangle of layer l's output that can differ when its input differs inside r. */
rect zf_occl_layer_rect(const zf_layer *l, rect r);

/* Sets the geometry and column offsets from r[] and makes room for the values. */
zf_status zf_occl_region_layout(region *g, int c, int h, int w, int n);

/* The floats of the largest input window that one of out's rectangles reads through (kh, kw)
 * windows at strides (sh, sw). */
size_t zf_occl_window_max(const region *out, int kh, int kw, int sh, int sw);

/* Room for one (th, tw) window per thread. */
zf_status zf_occl_reserve_tiles(occl *o, size_t floats);

/* Writes into t (th, tw) what position b's input of channel c holds over rows [y0, y0 + th) and
 * columns [x0, x0 + tw): its changed values inside its rectangle, the unoccluded ones (base, the
 * (c, h, w) map) elsewhere, and `pad` outside the map. */
void zf_occl_build_tile(float *restrict t, const region *in, int b, const float *base, int c, int y0,
                        int x0, int th, int tw, float pad);

/* Layers [0, n_spatial) of one batch: region in, region out. */
zf_status zf_occl_region_layer(occl *o, int li, region **cur, region **nxt, int64_t *scratch_pp);

/* occlusion_conv.c */

/* The rearranged weights of conv layer l for the way cp->algo recomputes it. */
zf_status zf_occl_conv_prepare(const zf_layer *l, conv_plan *cp);

/* Conv layer li over the changed regions in -> out (laid out), by o->cp[li].algo; base_in is
 * the layer's unoccluded input, scratch_pp per-position scratch (n entries). */
zf_status zf_occl_conv_region(occl *o, int li, const float *base_in, const region *in, region *out,
                              int64_t *scratch_pp);

/* occlusion_fc.c */

/* The first fully connected layer's weights rearranged for o->fc_delta (o->fc_w). */
zf_status zf_occl_fc_prepare(occl *o);

/* Adds a batch's last spatial layer regions (positions p0.. of cur) to the group, running the
 * group's tail first when they would not fit. */
zf_status zf_occl_fc_gather(occl *o, const region *cur, int64_t p0);

/* The tail of the gathered positions: maps' prob and argmax for them. */
zf_status zf_occl_fc_flush(occl *o);

/* Without fc_delta: the dense tail of one batch's last spatial layer regions (positions p0.. of
 * cur), its prob and argmax. */
zf_status zf_occl_tail_dense(occl *o, const region *cur, int64_t p0);

#endif
