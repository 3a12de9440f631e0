/* The attribution page of zfviz demo: the gradient methods of zfviz attribute side by side on the
 * same images through both embedded nets (tools/demo_attribution.c). */
#ifndef ZFT_DEMO_ATTRIBUTION_H
#define ZFT_DEMO_ATTRIBUTION_H

#include "zf/engine.h"
#include "zf/net.h"
#include "zf/viz.h"
#include "zf/viz_attribution_grid.h"

#define ZFT_DEMO_ATTR_METHODS 7

typedef struct zft_demo_attr {
    int rows, w, h;          /* rows: nets x images, net-major */
    zf_image **images;       /* rows */
    char **labels, **numbers;/* rows; rows x methods */
    float *maps;             /* (rows, methods, h, w): max over channels of |attribution|, Grad-CAM's map */
    zf_viz_attr_grid_in in;
} zft_demo_attr;

/* The methods in column order, as zfviz attribute --method names them. */
extern const char *const zft_demo_attr_methods[ZFT_DEMO_ATTR_METHODS];

/* Both files it writes into dir (attribution.png, attribution.npy), checked as zf_file_check does. */
zf_status zft_demo_attr_check(const char *dir);
/* Every method on each image file (loaded as zfviz attribute loads it) through each engine's net
 * (on that engine), for the
 * image's top class with zfviz attribute's defaults; writes DIR/attribution.png and
 * DIR/attribution.npy (the maps) and prints the rows' images. */
zf_status zft_demo_attr_run(zft_demo_attr *a, zf_engine *const *engines, const char *const *net_names, int n_nets,
                            char *const *paths, int n_img, const char *dir, const zf_viz_style *style);
/* The page, for the PDF. */
zf_status zft_demo_attr_figure(zf_viz_doc *doc, const zft_demo_attr *a, const zf_viz_style *style);
void zft_demo_attr_free(zft_demo_attr *a);

#endif
