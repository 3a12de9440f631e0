/* Winograd convolution pieces (Lavin & Gray 2016), shared by the dense convolution (conv.c) and
 * the incremental occlusion (occlusion_conv.c); core only.
 *
 * F(m x m, r x r) computes an m x m output tile of an r x r filter from an n x n input tile
 * (n = m + r - 1): the input tile is transformed (V = B^T d B), multiplied elementwise with the
 * transformed filter (U = G g G^T), summed over input channels (n^2 GEMMs) and transformed back
 * (Y = A^T M A). Three kinds: F(2x2, 3x3) (n = 4, points 0, +-1 and infinity: 4 multiplies per
 * output instead of 9; only adds and halves, so it rounds like direct convolution), F(4x4, 3x3)
 * (n = 6, points also +-2: 2.25 instead of 9) and F(4x4, 5x5) (n = 8, points also +-1/2: 4
 * instead of 25). The larger coefficients of the last two round a few times worse than direct
 * convolution, a few 1e-6 of the largest output on AlexNet's layers. (F(2x2, 5x5) measured
 * slower than im2col: 9 products per output kept it waiting on memory.) The occlusion also runs
 * rectangular and 6x6 tiles for 3x3 windows (F(6x6, 3x3): F(4x4, 5x5)'s eight points, 1.78
 * multiplies per output), see zf_wino_filters_ab. */
#ifndef ZF_WINOGRAD_INTERNAL_H
#define ZF_WINOGRAD_INTERNAL_H

#include <stddef.h>

#include "zf/ops.h"

/* Tiles are transformed back this many at a time, one per SIMD lane. */
#define ZF_WINO_LANES 8

/* In what follows (m, r) is (2, 3), (4, 3) or (4, 5). */

/* U for every filter of a convolution: w (k, cg, r, r) gives u (k, n*n, cg). The GEMM of group
 * gi and element xi reads rows u + ((gi*kg)*n*n + xi)*cg with stride n*n*cg. Computed in float64
 * and rounded once. */
void zf_wino_filters(float *u, const float *w, int k, int cg, int m, int r);

/* One row of tiles through B^T d B: the window d (n rows of width tw = m*tx_n + r - 1, row
 * stride ld) holds the inputs of tiles 0..tx_n-1 (tile tx starts at column m*tx); tile tx's n*n
 * values go to v[xi*ps + tx]. rows is scratch of n*tw floats. */
void zf_wino_tiles_in(float *v, size_t ps, const float *d, int ld, int tx_n, int m, int r, float *rows);

/* Rectangular tiles F(ma x mb, r x r) (ma, mb in {2, 4, 6} for r = 3, not 2 with 6; 4 x 4 for
 * r = 5), in the occlusion's mixed tilings: na = ma + r - 1 input rows, nb = mb + r - 1 columns,
 * U (k, na*nb, cg) = G_a g G_b^T, Y (ma, mb) = A_a^T M A_b. F(6, 3) shares F(4, 5)'s eight points
 * (0, +-1, +-2, +-1/2, infinity) and rounds like it. */
void zf_wino_filters_ab(float *u, const float *w, int k, int cg, int ma, int mb, int r);

/* Eight tiles at once, one per lane, from anywhere: lane q's na x nb input starts at p[q] with
 * row stride ld[q]; its na*nb values go to v[xi*ps + q] for q < lanes. Each of the na rows is
 * read as eight floats (p[q] + k*ld[q] + [0, 8)), so windows need 8 - nb readable floats past
 * their last tile; lanes from `lanes` on are read the same way but not stored (point them at a
 * zero block). */
void zf_wino_tiles_in8(float *v, size_t ps, const float *const *p, const int *ld, int lanes, int ma, int mb,
                       int r);

/* A_a^T M A_b for ZF_WINO_LANES tiles at once: mt[xi][lane] (na*nb rows, at most 64) gives
 * y[dy*mb + dx][lane] (at most 36 rows). */
void zf_wino_tiles_out_ab(float (*y)[ZF_WINO_LANES], const float (*mt)[ZF_WINO_LANES], int ma, int mb, int r);

/* Dense convolution by F(m x m, r x r), r = the window (3x3 or 5x5, stride 1, whether it applies
 * says; m = 4 for 5x5): the output tiles of all n images, the floats of transformed filters it reads and of
 * scratch it needs, and the forward itself with filters u from
 * zf_wino_filters(u, w, g->k, g->c / g->groups, m, g->kh). Same result as zf_conv_forward up to
 * float rounding. */
int zf_wino_conv_applies(const zf_conv_geom *g);
size_t zf_wino_conv_tiles(const zf_conv_geom *g, int m);
size_t zf_wino_conv_filter_floats(const zf_conv_geom *g, int m);
size_t zf_wino_conv_workspace_floats(const zf_conv_geom *g, int m);
void zf_wino_conv_forward(float *out, const float *in, const float *u, const float *bias,
                          const zf_conv_geom *g, int m, float *ws);

/* Whether a and b, `floats` floats each, hold the same bytes: the question whether filters made
 * earlier still belong to a layer's weights, answered by zf_wino_conv_forward_checked. */
typedef struct zf_wino_check {
    const float *a, *b;
    size_t floats;
    int differs; /* out: 1 when they differ */
} zf_wino_check;

/* zf_wino_conv_forward that also compares check's arrays (when check is not NULL), in pieces that
 * the threads take between the products of the first images, where the comparison's memory reads
 * overlap the arithmetic instead of running alone before it (the weights of AlexNet's conv2-5 and
 * their copy are 20 MB that the fully connected layers pushed out of the cache: 1.2 ms of a 19 ms
 * forward at batch 1 when compared first on one thread). When they differ it sets
 * check->differs and returns early, leaving out unfinished, for the caller to make new filters
 * and run again. */
void zf_wino_conv_forward_checked(float *out, const float *in, const float *u, const float *bias,
                                  const zf_conv_geom *g, int m, float *ws, zf_wino_check *check);

#endif
