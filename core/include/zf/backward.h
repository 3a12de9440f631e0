/* Gradients of the CPU ops for training, on the same raw NCHW float32 buffers as ops.h.
 * Every backward overwrites its outputs; weight gradients are summed over the batch.
 * Gradients that ops.h already provides: zf_conv_backward_data (input of a convolution),
 * zf_maxpool_unpool with the forward's switches (max pool), zf_adaptive_avgpool_backward,
 * zf_lrn_backward. */
#ifndef ZF_BACKWARD_H
#define ZF_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

#include "zf/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Floats of scratch that zf_conv_backward_weights needs for this geometry. */
size_t zf_conv_backward_weights_ws_floats(const zf_conv_geom *g);

/* dw (k, c/groups, kh, kw) and db (k; may be NULL) = gradient of a convolution's weights and bias,
 * summed over the batch: in (n,c,h,w), dout (n,k,oh,ow). im2col + sgemm per group, several images
 * per GEMM when maps are small. ws holds zf_conv_backward_weights_ws_floats(g) floats. */
void zf_conv_backward_weights(float *dw, float *db, const float *in, const float *dout,
                              const zf_conv_geom *g, float *ws);

/* Fully connected (out = in . w^T + b, w (out_f, in_f)): din (n, in_f; may be NULL),
 * dw (out_f, in_f), db (out_f) from dout (n, out_f), in (n, in_f), w. */
void zf_fc_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                    const float *w, int n, int in_f, int out_f);

/* din = dout where out > 0, else 0. din may equal dout. */
void zf_relu_backward(float *din, const float *dout, const float *out, size_t count);

/* Inverted dropout for training: mask[i] = 1 keeps (out = in / (1-p)), 0 drops (out = 0). The
 * decision for element i is a hash of (seed, i), so the mask depends on neither the thread count
 * nor the schedule. out may equal in. p in [0, 1). */
void zf_dropout_forward_train(float *out, uint8_t *mask, const float *in, size_t count, float p,
                              uint64_t seed);
/* The key zf_dropout_forward_train draws its mask from for `seed` (the one place of the formula;
 * zf_train_dropout_key gives it to another engine). */
uint64_t zf_dropout_key(uint64_t seed);
/* din = dout * mask / (1-p). din may equal dout. */
void zf_dropout_backward(float *din, const float *dout, const uint8_t *mask, size_t count, float p);

/* Adjoint of zf_avgpool_forward with the same count_include_pad: din (n,c,h,w) from dout
 * (n,c,oh,ow). */
void zf_avgpool_backward(float *din, const float *dout, const zf_pool_geom *g, int count_include_pad);

/* Softmax + cross-entropy of logits (n, k) against labels in [0, k): prob (n, k; may be NULL)
 * = softmax, dlogits (n, k) = (prob - onehot) / n; returns the mean loss, accumulated in double.
 * A label outside [0, k) is a programmer error (asserts). */
double zf_softmax_xent(float *prob, float *dlogits, const float *logits, const int32_t *labels,
                       int n, int k);

#ifdef __cplusplus
}
#endif
#endif
