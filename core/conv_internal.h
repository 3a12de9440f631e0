/* conv.c's im2col and gradient batching, shared with the weight gradient in backward.c, and its
 * im2col forward for the benchmark's comparison (core only). */
#ifndef ZF_CONV_INTERNAL_H
#define ZF_CONV_INTERNAL_H

#include "zf/ops.h"

/* Winograd's transformed filters of one layer, kept between forwards (zf_net holds one per conv
 * layer): the transform costs more than the convolution itself at small batches (2.5 ms against
 * im2col's 2.1 for AlexNet's conv3 at batch 1) and its result changes only with the weights. It
 * is reused only for the very weights it was made from, compared in full on every call (while the
 * forward multiplies: zf_wino_conv_forward_checked), so weights that the trainer or a caller
 * changed in place are never paired with stale filters. */
typedef struct zf_conv_filter_cache {
    float *w;            /* a copy of the weights u was made from */
    float *u;            /* their Winograd transform (of the phases' filters for polyphase) */
    size_t w_floats, u_floats;
    int m, polyphase;
    const void *maker;   /* the transform function of the kernel set that made u */
} zf_conv_filter_cache;

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

/* zf_conv_forward_own with zf_conv_forward_cached's cache. */
void zf_conv_forward_own_cached(float *out, const float *in, const float *w, const float *bias,
                                const zf_conv_geom *g, float *ws, zf_conv_filter_cache *cache);


/* zf_conv_forward, taking Winograd's filters from `cache` where it holds them for w and keeping
 * them there otherwise (cache may be NULL; memory it cannot get only costs the reuse). The
 * result is the same bits with and without the cache. */
void zf_conv_forward_cached(float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g,
                            float *ws, zf_conv_filter_cache *cache);

/* Frees what the cache holds and empties it (not a kernel: one copy). */
void zf_conv_filter_cache_clear(zf_conv_filter_cache *cache);

/* The path zf_conv_forward takes for g: "winograd-f4", "winograd-f2", "polyphase-f4", "polyphase-f2",
 * "im2col" or "onednn:<its implementation>". */
const char *zf_conv_path_name(const zf_conv_geom *g);

#endif
