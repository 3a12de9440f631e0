/* Winograd F(m x m, 3x3) convolution pieces (Lavin & Gray 2016), shared by the dense
 * convolution (conv.c) and the incremental occlusion (occlusion.c); core only.
 *
 * Per m x m output tile an n x n input tile (n = m + 2) is transformed (V = B^T d B), multiplied
 * elementwise with the transformed filters (U = G g G^T), summed over input channels (n^2 GEMMs)
 * and transformed back (Y = A^T M A). m = 2 (4 multiplies per output instead of 9) only adds and
 * halves, so it rounds like direct convolution; m = 4 (2.25 multiplies) has larger transform
 * coefficients and rounds a few times worse, still far below 1e-5 relative on AlexNet's layers. */
#ifndef ZF_WINOGRAD_INTERNAL_H
#define ZF_WINOGRAD_INTERNAL_H

#include <stddef.h>

#include "zf/ops.h"

/* Tiles are transformed back this many at a time, one per SIMD lane. */
#define ZF_WINO_LANES 8

/* U for every filter of a convolution: w (k, cg, 3, 3) gives u (k, n*n, cg). The GEMM of
 * group gi and element xi reads rows u + ((gi*kg)*n*n + xi)*cg with stride n*n*cg. Computed in
 * float64 and rounded once. */
void zf_wino_filters(float *u, const float *w, int k, int cg, int m);

/* One row of tiles through B^T d B: the window d (n rows of width tw = m*tx_n + 2, row stride ld)
 * holds the inputs of tiles 0..tx_n-1; tile tx's n*n values go to v[xi*ps + tx]. rows is scratch
 * of n*tw floats. */
void zf_wino_tiles_in(float *v, size_t ps, const float *d, int ld, int tx_n, int m, float *rows);

/* A^T M A for ZF_WINO_LANES tiles at once: mt[xi][lane] gives y[dy*m + dx][lane]. */
void zf_wino_tiles_out(float y[16][ZF_WINO_LANES], const float mt[36][ZF_WINO_LANES], int m);

/* Dense convolution by F(m x m, 3x3), m = 2 or 4: whether it applies (3x3 windows, stride 1),
 * the floats of transformed filters it reads and of scratch it needs, and the forward itself
 * with filters u from zf_wino_filters(u, w, g->k, g->c / g->groups, m). Same result as
 * zf_conv_forward up to float rounding. */
int zf_wino_conv_applies(const zf_conv_geom *g);
size_t zf_wino_conv_tiles(const zf_conv_geom *g, int m); /* m x m output tiles of all n images */
size_t zf_wino_conv_filter_floats(const zf_conv_geom *g, int m);
size_t zf_wino_conv_workspace_floats(const zf_conv_geom *g, int m);
void zf_wino_conv_forward(float *out, const float *in, const float *u, const float *bias,
                          const zf_conv_geom *g, int m, float *ws);

#endif
