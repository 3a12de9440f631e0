/* The CPU engine's layer operations: free functions on raw NCHW float32 buffers.
 * Each takes outputs first, then inputs, then a geometry struct; every shape is per image
 * unless it says otherwise. These are the reference the CUDA engine is checked against. */
#ifndef ZF_OPS_H
#define ZF_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Convolution: input (n, c, h, w), weights (k, c/groups, kh, kw), output (n, k, oh, ow).
 * Padding is pt/pl at the top/left; bottom/right padding is whatever oh/ow imply. */
typedef struct zf_conv_geom {
    int n, c, h, w;
    int k, oh, ow;
    int kh, kw, sh, sw, pt, pl;
    int groups;
} zf_conv_geom;

/* Floats of scratch that zf_conv_forward / zf_conv_backward_data need for this geometry. */
size_t zf_conv_workspace_floats(const zf_conv_geom *g);

/* Scratch enough for any sub-problem of g: the same filters over a sub-window of the output
 * (the deconvnet computes only where its signal is non-zero). */
size_t zf_conv_workspace_floats_bound(const zf_conv_geom *g);

/* out (n,k,oh,ow) = conv(in (n,c,h,w), w (k,c/g,kh,kw)) + bias (k, or NULL). im2col + sgemm. */
void zf_conv_forward(float *out, const float *in, const float *w, const float *bias,
                     const zf_conv_geom *g, float *ws);

/* din (n,c,h,w) = transposed convolution of dout (n,k,oh,ow) with the same filters: the
 * deconvnet's filtering step and the gradient with respect to the input. Overwrites din. */
void zf_conv_backward_data(float *din, const float *dout, const float *w, const zf_conv_geom *g,
                           float *ws);

/* Pooling windows: input (n, c, h, w), output (n, c, oh, ow). */
typedef struct zf_pool_geom {
    int n, c, h, w;
    int oh, ow;
    int kh, kw, sh, sw, pt, pl, pb, pr;
} zf_pool_geom;

/* Max-pool recording switches: switches[i] is the flat index (y*w + x) within the input plane of
 * the first maximum in row-major order over the window's unpadded positions (Caffe and PyTorch
 * break ties the same way); -1 when a window holds no input position. */
void zf_maxpool_forward(float *out, int32_t *switches, const float *in, const zf_pool_geom *g);

/* Unpooling: din is zeroed, then each dout value is added at its switch (overlapping windows
 * that picked the same input add up). */
void zf_maxpool_unpool(float *din, const float *dout, const int32_t *switches, const zf_pool_geom *g);

/* Average pool; count_include_pad divides by the full window (ONNX's attribute). */
void zf_avgpool_forward(float *out, const float *in, const zf_pool_geom *g, int count_include_pad);

/* torchvision's AdaptiveAvgPool2d: bin i spans [floor(i*h/oh), ceil((i+1)*h/oh)). */
void zf_adaptive_avgpool_forward(float *out, const float *in, int n, int c, int h, int w, int oh, int ow);
/* Its adjoint: spreads each output evenly over its bin (adds; din is overwritten). */
void zf_adaptive_avgpool_backward(float *din, const float *dout, int n, int c, int h, int w, int oh,
                                  int ow);

/* Local response normalisation across channels, in the convention Caffe, PyTorch and ONNX share:
 *   out_i = in_i / (k + alpha/size * sum_{j=i-front}^{i-front+size-1} in_j^2)^beta
 * (alpha is divided by the window size; the 2012 paper's alpha is alpha/size here).
 * front is the number of channels before i in the window: (size-1)/2 for Caffe and ONNX,
 * size/2 for PyTorch (the two differ only for even sizes). Channels outside [0, c) count as 0. */
typedef struct zf_lrn_params {
    int size, front;
    float alpha, beta, k;
} zf_lrn_params;
void zf_lrn_forward(float *out, const float *in, int n, int c, int hw, const zf_lrn_params *p);
/* The true LRN backward (gradient): din = d out / d in applied to dout, given the forward in; din
 * is written whole and may not alias dout or in. */
void zf_lrn_backward(float *din, const float *dout, const float *in, int n, int c, int hw,
                     const zf_lrn_params *p);

/* Fully connected: out (n, out_f) = in (n, in_f) . w^T + bias, w is (out_f, in_f) as PyTorch
 * stores it. Batch 1 streams the weights once (sgemv). */
void zf_fc_forward(float *out, const float *in, const float *w, const float *bias, int n, int in_f,
                   int out_f);

/* out = max(in, 0); out may equal in. */
void zf_relu_forward(float *out, const float *in, size_t count);
/* Row-wise softmax of (n, k), max-subtracted; out may equal in. */
void zf_softmax_forward(float *out, const float *in, int n, int k);

#ifdef __cplusplus
}
#endif
#endif
