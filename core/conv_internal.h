/* conv.c's im2col and gradient batching, shared with the weight gradient in backward.c, and its
 * im2col forward for the benchmark's comparison (core only). */
#ifndef ZF_CONV_INTERNAL_H
#define ZF_CONV_INTERNAL_H

#include "zf/ops.h"

/* col (c*kh*kw, nb*oh*ow): row r = (ci*kh + ky)*kw + kx, column img*oh*ow + oy*ow + ox.
 * in holds nb images (c, h, w); positions in the padding are 0. */
void zf_conv_im2col(float *col, const float *in, int nb, const zf_conv_geom *g);

/* dout (n, k, oh, ow) of images n0..n0+nb-1 as one (k, nb*oh*ow) matrix, image after image in
 * each row, as the batched GEMMs of both gradients read it: dout itself for one image, else
 * copied into tmp (k * nb*oh*ow floats), which is returned. */
const float *zf_conv_gather_dout(float *tmp, const float *dout, int n0, int nb, const zf_conv_geom *g);

/* Images side by side in one GEMM for this geometry (about 2048 columns; 1 for large maps). The
 * scratch of zf_conv_workspace_floats holds that many images' columns. */
int zf_conv_images_per_gemm(const zf_conv_geom *g);

/* zf_conv_forward by im2col + sgemm whatever the geometry (zf_conv_forward may take Winograd). */
void zf_conv_forward_im2col(float *out, const float *in, const float *w, const float *bias,
                            const zf_conv_geom *g, float *ws);

/* zf_conv_forward by zfviz's own kernels only (Winograd, polyphase Winograd or im2col + sgemm, as
 * the geometry decides), never oneDNN. */
void zf_conv_forward_own(float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g,
                         float *ws);

/* The path zf_conv_forward takes for g: "winograd-f4", "winograd-f2", "polyphase-f4", "polyphase-f2",
 * "im2col" or "onednn:<its implementation>". */
const char *zf_conv_path_name(const zf_conv_geom *g);

#endif
