/* oneDNN's convolutions and SGEMM (core only): dnnl.c where CMake found libdnnl, dnnl_none.c (every
 * call declines) where it did not. oneDNN picks its kernels by the CPU's features when it runs,
 * whatever BLAS thinks of the CPU; the convolution paths (conv.c) take its primitives where they
 * measured faster, and zf_sgemm (gemm.c), which every GEMM of core goes through, its sgemm where
 * OpenBLAS runs kernels older than the CPU (docs/engine.md). */
#ifndef ZF_DNNL_INTERNAL_H
#define ZF_DNNL_INTERNAL_H

#include <stddef.h>

#include "zf/ops.h"

/* oneDNN's version and the widest instruction set it dispatches to here ("avx2", ...), or NULL
 * where zfviz is built without it. */
const char *zf_dnnl_version(void);
const char *zf_dnnl_isa(void);

/* 1 when oneDNN can run this convolution with the kernels zf_cpu_kernels() names (it is limited to
 * the set first used: a later zf_cpu_set_kernels to another set turns it off), else 0. */
int zf_dnnl_conv_ok(const zf_conv_geom *g, int relu);

/* Floats of scratch zf_dnnl_conv_forward needs: the blocked copies of input, filters and output
 * and oneDNN's own scratchpad. 0 when it cannot run g. Plans the primitive (kept for later calls of
 * the same geometry: a forward creates nothing once each batch size has run). */
size_t zf_dnnl_conv_workspace_floats(const zf_conv_geom *g, int relu);

/* out (n,k,oh,ow) = conv(in, w) + bias, then max(0, .) when relu; in, w and out NCHW as in
 * zf_conv_forward. 0 on success; non-zero (nothing written) when oneDNN declined, for the caller
 * to take its own path. */
int zf_dnnl_conv_forward(float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g,
                         int relu, float *ws);

/* The implementation oneDNN runs for g ("brgconv:avx2", "jit:avx2", "gemm:jit", ...), or NULL. */
const char *zf_dnnl_conv_impl(const zf_conv_geom *g, int relu);

/* Row-major C (m, n) = alpha A B^T-or-not + beta C through dnnl_sgemm; 0 on success. */
int zf_dnnl_sgemm(char transa, char transb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);

#endif
