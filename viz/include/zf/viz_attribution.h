/* The figure of zfviz attribute: the image the net saw beside each method's attribution map,
 * with the numbers that define each map written under it. */
#ifndef ZF_VIZ_ATTRIBUTION_H
#define ZF_VIZ_ATTRIBUTION_H

#include "zf/io.h"
#include "zf/viz.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One map: (h, w) values >= 0 (the largest |attribution| over the channels, or Grad-CAM's map),
 * drawn in viridis from 0 to its largest value, with a colour bar. */
typedef struct zf_viz_attr_map {
    const char *method;   /* the heading, e.g. "integrated-gradients" */
    const float *map;
    const char *numbers;  /* lines ('\n' apart) under the map: what defines it and its values */
} zf_viz_attr_map;

typedef struct zf_viz_attribution_in {
    const char *title;    /* e.g. "alexnet: class 281 score of cat.jpg" (NULL: none) */
    const zf_image *image;/* the input as the net saw it, w x h like the maps */
    const char *image_caption; /* under the image (NULL: its size) */
    const zf_viz_attr_map *maps;
    int n_maps;
} zf_viz_attribution_in;

/* One page: the image, then each map with its bar, all at the same size (scaled by a whole
 * factor to at least 224 units on the longer side), the numbers under each. */
zf_status zf_viz_attribution(zf_viz_doc *doc, const zf_viz_attribution_in *in, const zf_viz_style *style);

#ifdef __cplusplus
}
#endif
#endif
