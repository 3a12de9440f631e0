/* The paper's experiments on units in pixels as zfviz runs them (compare --layer above conv1, evolve):
 * the computation and the figures, shared by those commands and zfviz demo. Apart from paper_exp.h
 * because they use the database's receptive fields (zf/db.h). */
#ifndef ZF_TOOLS_PAPER_UNITS_H
#define ZF_TOOLS_PAPER_UNITS_H

#include <stdint.h>
#include <stdio.h>

#include "zf/engine.h"
#include "zf/net.h"
#include "zf/viz.h"
#include "zf/viz_evolve.h"

/* ---- a conv layer above the first in pixels (Fig. 6's conv2 panels) ---- */

#define ZFT_DEEP_SHOW 9

typedef struct zft_deep {
    int units, live, rf, pad, images;
    zf_viz_spectrum sp;       /* of the live units' projections */
    float *proj;              /* (live, in_c, rf, rf), raw deconv output, cropped top left */
    float *show;              /* (ZFT_DEEP_SHOW, in_c, rf, rf), the strongest units as the figure shows them */
    uint8_t *rgb;             /* (ZFT_DEEP_SHOW, rf, rf, 3), the image patches under them */
    zf_viz_patch patch[ZFT_DEEP_SHOW];
    char caption[ZFT_DEEP_SHOW][32];
    int n_show;
} zft_deep;

/* Each unit of conv's strongest activation over the images (the first `limit` of paths, or of
 * Fashion-MNIST's test set when paths is NULL; limit 0: all), projected to pixels and cropped. */
zf_status zft_deep_side(zf_engine *e, int conv, char *const *paths, int64_t n_paths, int limit, zft_deep *d);
void zft_deep_free(zft_deep *d);

/* The page: both nets' nine strongest units beside their patches, the numbers in the title. */
typedef struct zft_deep_fig {
    zf_viz_unit units[2];
    char label[2][1300], title[3400];
    zf_viz_sheet_in in;
    zf_viz_sheet_opts o;
} zft_deep_fig;
/* names: the models as zfviz compare names them; layer: the layer as asked for. f must stay put
 * (it points into itself) and d outlive it. */
void zft_deep_fig_init(zft_deep_fig *f, const char *layer, const char *const names[2], const zf_net *const nets[2],
                       const int conv[2], const zft_deep d[2], const zf_viz_style *style);
zf_status zft_deep_draw(zf_viz_doc *doc, void *fig);
/* zfviz compare --layer's line for one net. */
void zft_deep_print(FILE *f, const char *name, const char *layer, const zft_deep *d);

/* ---- feature evolution (Fig. 4) ---- */

#define ZFT_EVOLVE_MAX_UNITS 64
#define ZFT_EVOLVE_MAX_EPOCHS 64
#define ZFT_EVOLVE_MAX_LAYERS 16

typedef struct zft_evolve_opts {
    const char *db_path;          /* the training run's SQLite file */
    long run;                     /* 0: the latest */
    const char *model;            /* NULL: the run's --out file */
    const char *images;           /* "fashion-mnist" or a folder, image or list */
    long limit;                   /* the first N images (0: all) */
    const char *const *layers;    /* conv layers, a block of rows each */
    int n_layers;
    const int *units;             /* channels of every layer; n_units 0: 0-5 */
    int n_units;
    const int *epochs;            /* snapshots; n_epochs 0: every one stored */
    int n_epochs;
    int lrn_backward, csv;
    long batch;
    FILE *lines;                  /* a line per unit and snapshot (CSV with csv) */
    struct zft_device *dev;       /* where to run (opened on the run's model); NULL: the CPU engine */
} zft_evolve_opts;

typedef struct zft_evolve {
    char title[256];
    int rows, cols;
    int64_t n_images;
    char **row_labels, **col_labels;
    zf_viz_patch *cells;          /* (rows, cols) */
    float *proj;
} zft_evolve;

/* zfviz evolve's computation. *usage is set when the layers or units do not fit the net
 * (zfviz evolve's usage errors). */
zf_status zft_evolve_run(zft_evolve *e, const zft_evolve_opts *o, int *usage);
zf_status zft_evolve_draw(zf_viz_doc *doc, const zft_evolve *e, int cell, const zf_viz_style *style);
void zft_evolve_free(zft_evolve *e);

#endif
