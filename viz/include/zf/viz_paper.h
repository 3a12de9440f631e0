/* Figures of Zeiler & Fergus's experiments that zfviz's own renderers do not cover: Fig. 5, the
 * invariance of layer outputs and of the class probability to shifts, scaling and rotation. */
#ifndef ZF_VIZ_PAPER_H
#define ZF_VIZ_PAPER_H

#include "zf/viz.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZF_VIZ_INVARIANCE_EXAMPLES 6

/* One transform's row of Fig. 5. */
typedef struct zf_viz_invariance_row {
    const char *xlabel;              /* e.g. "vertical translation (pixels)" */
    int n;                           /* amounts */
    const double *amounts;           /* (n), increasing */
    const double *dist[2];           /* (n_images, n): distance at the two layers */
    const double *prob;              /* (n_images, n): probability of each image's class */
    int n_examples;                  /* thumbnails shown, at most ZF_VIZ_INVARIANCE_EXAMPLES */
    const zf_image *examples;        /* the first image transformed by example_amounts[k] */
    const double *example_amounts;
} zf_viz_invariance_row;

typedef struct zf_viz_invariance_in {
    const char *title;
    const char *subtitle;            /* e.g. the model; NULL: none */
    const char *layer_names[2];      /* panel headings, e.g. "layer 1 (relu1)" */
    int n_images;
    const char *const *image_names;  /* the legend, one colour per image (up to 10 shown) */
    int n_rows;
    const zf_viz_invariance_row *rows;
} zf_viz_invariance_in;

/* One page, one row per transform: (1) thumbnails of the first image transformed, (2) the
 * Euclidean distance of the first layer's output to the untransformed image's, (3) the same at the
 * second layer, (4) the probability of the image's class, each against the amount, one line per
 * image. */
zf_status zf_viz_invariance(zf_viz_doc *doc, const zf_viz_invariance_in *in, const zf_viz_style *style);

#ifdef __cplusplus
}
#endif
#endif
