/* A grid of images made for units (zfviz optimize: one tile per image, one row per unit when a
 * unit has several), each with its caption under it: which unit, which sample, the value it
 * reached. */
#ifndef ZF_VIZ_UNIT_GRID_H
#define ZF_VIZ_UNIT_GRID_H

#include <stdint.h>

#include "zf/viz.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zf_viz_unit_grid_in {
    const char *title;             /* or NULL */
    int n, cols;                   /* n tiles, cols to a row */
    int w, h;                      /* each tile's size in pixels */
    const uint8_t *rgb;            /* n images of h x w RGB, one after another */
    const char *const *captions;   /* n captions of up to ZF_VIZ_UNIT_GRID_LINES lines, or NULL */
} zf_viz_unit_grid_in;

#define ZF_VIZ_UNIT_GRID_LINES 2

/* One page: the title, then the tiles at their own size (small ones scaled up to 96 pixels) with
 * their captions cut to the tile's width. */
zf_status zf_viz_unit_grid(zf_viz_doc *doc, const zf_viz_unit_grid_in *in, const zf_viz_style *style);

#ifdef __cplusplus
}
#endif

#endif
