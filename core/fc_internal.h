/* fc.c's fully connected kernels, for the benchmark's comparison (core only). Each computes
 * out (n, out_f) = in (n, in_f) . w (out_f, in_f)^T + bias (out_f, or NULL); zf_fc_forward picks
 * one by batch size. */
#ifndef ZF_FC_INTERNAL_H
#define ZF_FC_INTERNAL_H

#include <stdint.h>

/* OpenBLAS: sgemv for one row, sgemm for more. */
void zf_fc_forward_blas(float *out, const float *in, const float *w, const float *bias, int n,
                        int in_f, int out_f);

/* Streams each weight row once from memory and applies it to every input row. */
void zf_fc_forward_stream(float *out, const float *in, const float *w, const float *bias, int n,
                          int in_f, int out_f);

/* zf_fc_forward_stream with the weights in bfloat16 (w16, out_f rows of in_f): half the memory
 * traffic, which is what bounds the fully connected layers at small batches; products and sums
 * in float32, as bf16 hardware accumulates. */
void zf_fc_forward_bf16(float *out, const float *in, const uint16_t *w16, const float *bias, int n,
                        int in_f, int out_f);

/* oneDNN's sgemm (dnnl_sgemm, its kernels chosen by the CPU's features); OpenBLAS where zfviz is
 * built without oneDNN. */
void zf_fc_forward_dnnl(float *out, const float *in, const float *w, const float *bias, int n,
                        int in_f, int out_f);

#endif
