/* zfviz's own kernels, compiled once per instruction set (core only). The kernel files (conv.c,
 * fc.c, lrn.c, pool.c, winograd.c, occlusion_conv.c, occlusion_fc.c) are built three times
 * (core/CMakeLists.txt): for x86-64 (ZF_ISA=sse), x86-64-v3 (avx2) and x86-64-v4 (avx512). Each
 * copy names its functions with its suffix (zf_conv_forward_avx2), so that inside a copy every
 * call stays in that copy; kernels.c defines the plain names, which call the chosen copy's
 * functions through one table. ZF_KERNELS lists every function the kernel files define for other
 * files: R(type, name, params, args) for those that return a value, V(...) for void ones. */
#ifndef ZF_KERNELS_INTERNAL_H
#define ZF_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "conv_internal.h"
#include "fc_internal.h"
#include "occlusion_internal.h"
#include "winograd_internal.h"
#include "zf/ops.h"

#define ZF_KERNELS(R, V)                                                                                    \
    R(size_t, zf_conv_workspace_floats, (const zf_conv_geom *g), (g))                                       \
    R(size_t, zf_conv_workspace_floats_bound, (const zf_conv_geom *g), (g))                                 \
    R(int, zf_conv_images_per_gemm, (const zf_conv_geom *g), (g))                                           \
    V(void, zf_conv_im2col, (float *col, const float *in, int nb, const zf_conv_geom *g), (col, in, nb, g)) \
    V(void, zf_conv_forward,                                                                                \
      (float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g, float *ws),   \
      (out, in, w, bias, g, ws))                                                                            \
    V(void, zf_conv_forward_im2col,                                                                         \
      (float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g, float *ws),   \
      (out, in, w, bias, g, ws))                                                                            \
    V(void, zf_conv_forward_own,                                                                            \
      (float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g, float *ws),   \
      (out, in, w, bias, g, ws))                                                                            \
    V(void, zf_conv_forward_cached,                                                                         \
      (float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g, float *ws,    \
       zf_conv_filter_cache *cache),                                                                        \
      (out, in, w, bias, g, ws, cache))                                                                     \
    V(void, zf_conv_forward_own_cached,                                                                     \
      (float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g, float *ws,    \
       zf_conv_filter_cache *cache),                                                                        \
      (out, in, w, bias, g, ws, cache))                                                                     \
    R(const char *, zf_conv_path_name, (const zf_conv_geom *g), (g))                                        \
    R(const float *, zf_conv_gather_dout, (float *tmp, const float *dout, int n0, int nb, const zf_conv_geom *g), \
      (tmp, dout, n0, nb, g))                                                                               \
    V(void, zf_conv_backward_data, (float *din, const float *dout, const float *w, const zf_conv_geom *g, float *ws), \
      (din, dout, w, g, ws))                                                                                \
    V(void, zf_fc_forward_blas,                                                                             \
      (float *out, const float *in, const float *w, const float *bias, int n, int in_f, int out_f),         \
      (out, in, w, bias, n, in_f, out_f))                                                                   \
    V(void, zf_fc_forward_stream,                                                                           \
      (float *out, const float *in, const float *w, const float *bias, int n, int in_f, int out_f),         \
      (out, in, w, bias, n, in_f, out_f))                                                                   \
    V(void, zf_fc_forward_bf16,                                                                             \
      (float *out, const float *in, const uint16_t *w16, const float *bias, int n, int in_f, int out_f),    \
      (out, in, w16, bias, n, in_f, out_f))                                                                 \
    V(void, zf_fc_forward_dnnl,                                                                             \
      (float *out, const float *in, const float *w, const float *bias, int n, int in_f, int out_f),         \
      (out, in, w, bias, n, in_f, out_f))                                                                   \
    V(void, zf_fc_forward,                                                                                  \
      (float *out, const float *in, const float *w, const float *bias, int n, int in_f, int out_f),         \
      (out, in, w, bias, n, in_f, out_f))                                                                   \
    V(void, zf_relu_forward, (float *out, const float *in, size_t count), (out, in, count))                 \
    V(void, zf_softmax_forward, (float *out, const float *in, int n, int k), (out, in, n, k))               \
    V(void, zf_lrn_forward, (float *out, const float *in, int n, int c, int hw, const zf_lrn_params *p),    \
      (out, in, n, c, hw, p))                                                                               \
    V(void, zf_lrn_backward,                                                                                \
      (float *din, const float *dout, const float *in, int n, int c, int hw, const zf_lrn_params *p),       \
      (din, dout, in, n, c, hw, p))                                                                         \
    V(void, zf_maxpool_forward, (float *out, int32_t *switches, const float *in, const zf_pool_geom *g),    \
      (out, switches, in, g))                                                                               \
    V(void, zf_maxpool_unpool, (float *din, const float *dout, const int32_t *switches, const zf_pool_geom *g), \
      (din, dout, switches, g))                                                                             \
    V(void, zf_avgpool_forward, (float *out, const float *in, const zf_pool_geom *g, int count_include_pad), \
      (out, in, g, count_include_pad))                                                                      \
    V(void, zf_adaptive_avgpool_forward, (float *out, const float *in, int n, int c, int h, int w, int oh, int ow), \
      (out, in, n, c, h, w, oh, ow))                                                                        \
    V(void, zf_adaptive_avgpool_backward,                                                                   \
      (float *din, const float *dout, int n, int c, int h, int w, int oh, int ow), (din, dout, n, c, h, w, oh, ow)) \
    V(void, zf_wino_filters, (float *u, const float *w, int k, int cg, int m, int r), (u, w, k, cg, m, r))  \
    V(void, zf_wino_filters_ab, (float *u, const float *w, int k, int cg, int ma, int mb, int r),           \
      (u, w, k, cg, ma, mb, r))                                                                             \
    V(void, zf_wino_tiles_in,                                                                               \
      (float *v, size_t ps, const float *d, int ld, int tx_n, int m, int r, float *rows),                   \
      (v, ps, d, ld, tx_n, m, r, rows))                                                                     \
    V(void, zf_wino_tiles_in8,                                                                              \
      (float *v, size_t ps, const float *const *p, const int *ld, int lanes, int ma, int mb, int r),        \
      (v, ps, p, ld, lanes, ma, mb, r))                                                                     \
    V(void, zf_wino_tiles_out_ab,                                                                           \
      (float (*y)[ZF_WINO_LANES], const float (*mt)[ZF_WINO_LANES], int ma, int mb, int r), (y, mt, ma, mb, r)) \
    R(int, zf_wino_conv_applies, (const zf_conv_geom *g), (g))                                              \
    R(size_t, zf_wino_conv_tiles, (const zf_conv_geom *g, int m), (g, m))                                   \
    R(size_t, zf_wino_conv_filter_floats, (const zf_conv_geom *g, int m), (g, m))                           \
    R(size_t, zf_wino_conv_workspace_floats, (const zf_conv_geom *g, int m), (g, m))                        \
    V(void, zf_wino_conv_forward,                                                                           \
      (float *out, const float *in, const float *u, const float *bias, const zf_conv_geom *g, int m, float *ws), \
      (out, in, u, bias, g, m, ws))                                                                         \
    V(void, zf_wino_conv_forward_checked,                                                                   \
      (float *out, const float *in, const float *u, const float *bias, const zf_conv_geom *g, int m, float *ws, \
       zf_wino_check *check),                                                                               \
      (out, in, u, bias, g, m, ws, check))                                                                  \
    R(zf_status, zf_occl_conv_region,                                                                       \
      (occl *o, int li, const float *base_in, const region *in, region *out, int64_t *scratch_pp),          \
      (o, li, base_in, in, out, scratch_pp))                                                                \
    R(zf_status, zf_occl_conv_prepare, (const zf_layer *l, conv_plan *cp), (l, cp))                         \
    R(zf_status, zf_occl_fc_flush, (occl *o), (o))                                                          \
    R(zf_status, zf_occl_fc_gather, (occl *o, const region *cur, int64_t p0), (o, cur, p0))                 \
    R(zf_status, zf_occl_tail_dense, (occl *o, const region *cur, int64_t p0), (o, cur, p0))                \
    R(zf_status, zf_occl_fc_prepare, (occl *o), (o))

#define ZF_KERNEL_STR2(x) #x
#define ZF_KERNEL_STR(x) ZF_KERNEL_STR2(x)

/* In a kernel file: each function's symbol is its name with this copy's suffix (a GNU asm label
 * on its declaration, which the definition and every call in the file then use). */
#ifdef ZF_ISA
#define ZF_KERNEL_LABEL(type, name, params, args)                                                           \
    type name params __asm__(ZF_KERNEL_STR(__USER_LABEL_PREFIX__) #name "_" ZF_KERNEL_STR(ZF_ISA));
ZF_KERNELS(ZF_KERNEL_LABEL, ZF_KERNEL_LABEL)
#endif

#endif
