/* The feature-evolution figure (zfviz evolve; Zeiler & Fergus Fig. 4): one row per unit, one
 * column per training snapshot, each cell the deconv projection of the unit's strongest activation
 * at that snapshot. */
#ifndef ZF_VIZ_EVOLVE_H
#define ZF_VIZ_EVOLVE_H

#include "zf/viz.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zf_viz_evolve_in {
    const char *title;         /* NULL: none */
    int rows, cols;            /* units, snapshots */
    const char *const *row_labels; /* rows of them, e.g. "conv2 #7" */
    const char *const *col_labels; /* cols of them, e.g. "epoch 5" */
    const zf_viz_patch *cells; /* (rows, cols): the projection (proj, w, h, channels) and the
                                * activation (score), shown under the cell; rgb is not drawn */
} zf_viz_evolve_in;

typedef struct zf_viz_evolve_opts {
    int cell;                  /* pixels per cell (0: 64); projections are scaled to fit it */
    zf_viz_style style;        /* clip_percentile scales the projections */
} zf_viz_evolve_opts;

/* One page: the title and an explanation line, column headings above, row labels at the left,
 * each cell's projection shown as 0.5 + 0.5 v / s (s over that cell's planes) and its activation
 * under it. */
zf_status zf_viz_evolve(zf_viz_doc *doc, const zf_viz_evolve_in *in, const zf_viz_evolve_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
