/* Feature evolution during training (Zeiler & Fergus Fig. 4): each chosen unit's strongest
 * activation over a set of images, to be projected to pixels by the deconvnet at every snapshot. */
#ifndef ZF_EVOLVE_H
#define ZF_EVOLVE_H

#include <stdint.h>

#include "zf/engine.h"
#include "zf/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a feature map's strongest activation is. */
typedef struct zf_unit_max {
    int64_t image;  /* index into the inputs */
    int y, x;       /* position in the map */
    float value;    /* the rectified activation there */
} zf_unit_max;

/* For each channel channels[u] of conv layer `conv`'s rectified output (the ReLU after it, as the
 * deconvnet takes it), the largest value over every position of the n inputs (n, in_c, in_h, in_w),
 * run on the engine in batches of `batch`: out[u]. Ties go to the first image, then the first position in
 * row-major order; a unit never above 0 gets image 0 at (0, 0) with value 0. */
zf_status zf_units_strongest(zf_engine *e, const float *inputs, int64_t n, int batch, int conv,
                             const int *channels, int n_units, zf_unit_max *out);

#ifdef __cplusplus
}
#endif
#endif
