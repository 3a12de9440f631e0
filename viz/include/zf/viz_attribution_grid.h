/* A grid of attribution maps: one row per (net, image), the input first and then one column per
 * method, each map in viridis from 0 to its own largest value, with a few numbers under it. The
 * page of zfviz demo that compares the attribution methods. */
#ifndef ZF_VIZ_ATTRIBUTION_GRID_H
#define ZF_VIZ_ATTRIBUTION_GRID_H

#include "zf/io.h"
#include "zf/viz.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zf_viz_attr_grid_in {
    const char *title;              /* NULL: none */
    int rows, cols;                 /* rows of (image, maps), map columns */
    int w, h;                       /* every image's and map's size */
    const char *const *methods;     /* cols headings */
    const char *const *row_labels;  /* rows, lines '\n' apart, left of each row */
    const zf_image *const *images;  /* rows inputs as the nets saw them */
    const float *maps;              /* (rows, cols, h, w), values >= 0 */
    const char *const *numbers;     /* rows * cols, at most ZF_VIZ_ATTR_GRID_LINES lines each (NULL: none) */
} zf_viz_attr_grid_in;

#define ZF_VIZ_ATTR_GRID_LINES 2

/* The page's size at the style's font (before any width scaling), for the documentation and
 * the tests: w = 32 + 150 f + (cols + 1) (p + 8) - 8, h = 16 + title + 18 f + rows (p + 26 f + 8),
 * p the panel side (the image scaled by a whole factor to at least 96), f the font scale. */
zf_status zf_viz_attr_grid(zf_viz_doc *doc, const zf_viz_attr_grid_in *in, const zf_viz_style *style);

#ifdef __cplusplus
}
#endif
#endif
