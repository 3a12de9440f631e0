/* The paper's experiments as zfviz runs them (invariance, correspond, probe): the computation, the
 * files and the figures, shared by those commands and by zfviz demo, so the demo's pages are what
 * the commands give for the same inputs (paper_units.h has compare --layer and evolve). */
#ifndef ZF_TOOLS_PAPER_EXP_H
#define ZF_TOOLS_PAPER_EXP_H

#include <stdint.h>
#include <stdio.h>

#include "paper_inputs.h"
#include "zf/dataset.h"
#include "zf/net.h"
#include "zf/paper.h"
#include "zf/probe.h"
#include "zf/viz.h"

/* ---- invariance (Fig. 5) ---- */

typedef struct zft_sweep {
    int on, given;
    double lo, hi;
    int n;
    double *amounts;
    zf_invariance_row *rows; /* (images, n) */
} zft_sweep;

/* The ranges of the sweeps not given: vertical translation by +-60 px at a 224-pixel height (the
 * same fraction at others) in 13 steps, scale 1 to 1.8 in 9, rotation 0 to 360 degrees in 37. */
void zft_invariance_ranges(zft_sweep *sw, const zf_net *net);
/* Every sweep that is on, for every image of im, on the engine; layers[2] and cls[im->n] receive the layers and
 * classes used. */
zf_status zft_invariance_run(zf_engine *e, const zft_image_set *im, zft_sweep *sw, const zf_invariance_params *p,
                             int *layers, int *cls);
/* zfviz invariance's CSV and DIR/<transform>.npy, DIR/<transform>_amounts.npy. */
zf_status zft_invariance_write_csv(const char *path, const zf_net *net, const char *model, const zft_image_set *im,
                                   const zft_sweep *sw, const int *cls, const int *layers);
zf_status zft_invariance_write_npys(const char *dir, const zft_image_set *im, const zft_sweep *sw);
/* Fig. 5 as one page. */
zf_status zft_invariance_draw(zf_viz_doc *doc, const zf_net *net, const char *model, const zft_image_set *im,
                              const zft_sweep *sw, const int *layers, float fill, const zf_viz_style *style);
/* The largest distances and the lowest probability per sweep, as zfviz invariance prints them. */
void zft_invariance_print(FILE *f, const zf_net *net, const char *model, const zft_image_set *im,
                          const zft_sweep *sw, const int *layers, double secs);
void zft_invariance_free(zft_sweep *sw);

/* ---- correspondence (Fig. 8) ---- */

#define ZFT_CORRESPOND_MAX_LAYERS 16

typedef struct zft_part {
    char name[128];
    int n;       /* boxes given: 1 (every image) or one per image */
    zf_part_box *box; /* (n) */
} zft_part;

typedef struct zft_correspond {
    int n_parts, random, n_images, n_layers;
    long seed;
    float fill;
    int layers[ZFT_CORRESPOND_MAX_LAYERS];
    zf_part_box **sets;        /* (n_parts * (1 + random)): each part's boxes, then its random draws */
    double *delta, *norm; /* (sets, n_layers) */
    double secs;
} zft_correspond;

/* The paper's layers 5 and 7 (the last conv's and the penultimate fc's rectified outputs). */
zf_status zft_correspond_default_layers(const zf_net *net, int *layers, int *n_layers);
/* c->random, seed, fill, layers and n_layers set: the parts' boxes checked against the input, the
 * random draws, the measure. */
zf_status zft_correspond_run(zft_correspond *c, zf_engine *e, const zft_image_set *im, const zft_part *parts,
                             int n_parts);
/* zfviz correspond's CSV and its table. */
zf_status zft_correspond_write_csv(const char *path, const zft_correspond *c, const zf_net *net, const char *model,
                                   const zft_part *parts);
void zft_correspond_print(FILE *o, const zft_correspond *c, const zf_net *net, const char *model,
                          const zft_part *parts);
void zft_correspond_free(zft_correspond *c);

/* ---- linear probes (the per-layer table) ---- */

typedef struct zft_probe_row {
    int64_t dim;
    double train_acc, test_acc, loss;
    int iters;
} zft_probe_row;

typedef void (*zft_probe_row_fn)(void *ctx, int k, const zft_probe_row *row);
/* Features of the n_layers layers for train and test, a standardised softmax probe per layer;
 * rows[k] for each, on_row (may be NULL) called as each is done. save_dir (may be NULL): the raw
 * features and labels as zfviz probe --save-features writes them. */
zf_status zft_probe_run(zf_engine *e, const zf_dataset *train, const zf_dataset *test, const int *layers,
                        const char (*names)[32], int n_layers, int grid, int batch, const zf_probe_opts *po,
                        const char *save_dir, zft_probe_row *rows, zft_probe_row_fn on_row, void *ctx);
/* zfviz probe's table: the heading, then a line per layer (csv: its CSV). */
void zft_probe_print_head(FILE *f, int csv, const char *model, int64_t n_train, int64_t n_test, const char *data,
                          int classes, int grid, double l2);
void zft_probe_print_row(FILE *f, int csv, const char *name, const zft_probe_row *r);

#endif
