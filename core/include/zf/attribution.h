/* Gradient attributions (issue 17): backpropagation from any layer's output down to the input or
 * to another layer's output, on the activations of the last inference forward, with the plain or
 * the guided ReLU rule; and the methods built on it: gradients (saliency), guided backpropagation,
 * Grad-CAM and integrated gradients. */
#ifndef ZF_ATTRIBUTION_H
#define ZF_ATTRIBUTION_H

#include <stddef.h>
#include <stdint.h>

#include "zf/net.h"
#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a ReLU passes a gradient down. GRADIENT: where its forward output was positive (the true
 * gradient). GUIDED (Springenberg et al. 2015): only positive gradients, and only where its
 * forward output was positive. DECONVNET (Zeiler & Fergus 2.1): the positive part of the signal,
 * whatever the forward was; under this rule LRN passes the signal unchanged, as zf_net_deconv
 * does by default. */
typedef enum { ZF_RELU_RULE_GRADIENT = 0, ZF_RELU_RULE_GUIDED = 1, ZF_RELU_RULE_DECONVNET = 2 } zf_relu_rule;

/* din = dout where out > 0 and dout > 0, else 0. din may equal dout. */
void zf_relu_backward_guided(float *din, const float *dout, const float *out, size_t count);

/* Softmax's backward: din = p * (dout - sum(dout * p)) per row, p (n, k) the forward's output.
 * din may equal dout. */
void zf_softmax_backward(float *din, const float *dout, const float *p, int n, int k);

/* What an attribution explains: the output of `layer`, channel `channel` (a class when the
 * layer is the logits or the softmax), at (y, x) of its map, or its total over the map when
 * y < 0. */
typedef struct zf_attr_target {
    int layer, channel, y, x;
} zf_attr_target;

/* Scratch for backpropagation through `net` at batches of up to `batch` images. */
typedef struct zf_backprop {
    zf_net *net;
    int batch;
    float *d[2];   /* gradients w.r.t. activations, ping-pong */
    size_t d_floats;
    float *ws;     /* convolution scratch */
    size_t ws_floats;
    float *dtop;   /* the targets' seed gradients (d_floats) */
    zf_attr_target *targets; /* batch: one target per image */
    struct zf_engine *engine; /* NULL: the CPU engine's functions on the net directly */
} zf_backprop;
/* Also reserves the net's own buffers for `batch`. */
zf_status zf_backprop_new(zf_net *net, int batch, zf_backprop **out);
void zf_backprop_free(zf_backprop *b);
/* Runs the forwards and backward passes of every method below on `engine` (zf/engine.h: opened on
 * b's net for at least b's batch, with the backward op; borrowed), reading the layers a method
 * looks at into the net's own buffers; NULL: the CPU engine's functions on the net, as before. */
zf_status zf_backprop_set_engine(zf_backprop *b, struct zf_engine *engine);

/* out (n, size of layer `bottom`'s output, or of the input for bottom = -1) = the gradient of
 * sum(dtop * output of layer `top`) with respect to that output, through layers top..bottom+1,
 * for the n images of the last forward (which must have run at least to `top`). Dropout is the
 * identity (inference), LRN its true backward, max pooling through the forward's switches, a
 * softmax by its Jacobian. bottom < top, -1 <= bottom. */
zf_status zf_net_backward(zf_backprop *b, float *out, const float *dtop, int top, int bottom, int n,
                          zf_relu_rule rule);
/* The forward of n images of `input` (NULL: the net's input buffer) to layer `last`, on b's engine
 * when it has one, leaving that layer's output, and layer `also`'s when also >= 0, in the net's own
 * buffers (net->acts) where the methods read them. */
zf_status zf_backprop_forward(zf_backprop *b, const float *input, int n, int last, int also);

/* Checks the target against the net: the layer exists, the channel and position are in range. */
zf_status zf_attr_target_check(const zf_net *net, const zf_attr_target *t);
/* The class target: the net's logits (the fc before its softmax), or the softmax when prob. */
int zf_attr_logits_layer(const zf_net *net, int prob);

/* The target's value on one image (a forward as far as its layer); value may be NULL. */
zf_status zf_attr_value(zf_backprop *b, const float *input, const zf_attr_target *t, double *value);
/* A forward of the n images of `input` to the targets' layer, where a target whose channel is < 0
 * gets that image's top channel (as zf_attr_gradient_each does). */
zf_status zf_attr_choose(zf_backprop *b, const float *input, int n, zf_attr_target *t);

/* grad (n, in_c, in_h, in_w) = d target / d input for each of the n images of `input` (n <= the
 * batch of b), with the ReLU rule given; value (n; may be NULL) the target's value per image. */
zf_status zf_attr_gradient(zf_backprop *b, float *grad, double *value, const float *input, int n,
                           const zf_attr_target *t, zf_relu_rule rule);
/* The same with one target per image, t[0..n-1], all at one layer: a target whose channel is < 0
 * gets that image's top channel there (the largest value at its position, or total), written
 * back into t. One forward and one backward for the n images. */
zf_status zf_attr_gradient_each(zf_backprop *b, float *grad, double *value, const float *input, int n,
                                zf_attr_target *t, zf_relu_rule rule);

/* The layer whose output Grad-CAM reads: `layer` when it has a spatial map (it comes before the
 * net's first flatten or fc), else an error naming it. */
zf_status zf_attr_gradcam_check(const zf_net *net, int layer, const zf_attr_target *t);
/* Grad-CAM (Selvaraju et al. 2017) of one image at `layer` (A, K maps of h x w): weights (K; may
 * be NULL) = mean over positions of d target / d A_k, cam (in_h, in_w) = ReLU(sum_k w_k A_k)
 * upsampled bilinearly (half-pixel centres, PyTorch's align_corners=False); low (h * w; may be
 * NULL) the map before upsampling. */
zf_status zf_attr_gradcam(zf_backprop *b, float *cam, float *weights, float *low, double *value,
                          const float *input, int layer, const zf_attr_target *t);
/* Grad-CAM of n images in one forward and backward, one target each as zf_attr_gradient_each
 * takes them: cam (n, in_h, in_w), weights (n, K), low (n, h * w), value (n); the last three may
 * be NULL. */
zf_status zf_attr_gradcam_each(zf_backprop *b, float *cam, float *weights, float *low, double *value,
                               const float *input, int n, int layer, zf_attr_target *t);
/* Bilinear resize of a (h, w) map to (oh, ow), half-pixel centres, edges clamped. */
void zf_resize_bilinear(float *out, const float *in, int h, int w, int oh, int ow);

/* Riemann rules of integrated gradients: MIDPOINT alphas (k + 1/2) / steps, k < steps, weight
 * 1/steps each; TRAPEZOID alphas k / steps, k <= steps, weights 1/steps, the two ends half. */
typedef enum { ZF_IG_MIDPOINT = 0, ZF_IG_TRAPEZOID = 1 } zf_ig_rule;
/* Integrated gradients (Sundararajan et al. 2017) of one image: attr (in size) = (x - x') *
 * sum_k w_k d target / d input at x' + alpha_k (x - x'), the path in batches of b's size;
 * f_x and f_base (may be NULL: those forwards are then skipped) the target at x and at x'.
 * steps >= 1. */
zf_status zf_attr_integrated_gradients(zf_backprop *b, float *attr, double *f_x, double *f_base,
                                       const float *input, const float *baseline, const zf_attr_target *t,
                                       int steps, zf_ig_rule rule);

/* SmoothGrad's noise (Smilkov et al. 2017): out (count) = standard normal values for sample
 * `sample` of `seed`, element i from two words of SplitMix64's finaliser at counters 2j and 2j + 1
 * (j = sample * count + i, the key mixed from seed + the golden increment) by Box-Muller:
 * u1 = (w1 >> 11 + 1/2) / 2^53, u2 = (w2 >> 11) / 2^53, z = sqrt(-2 ln u1) cos(2 pi u2), computed in
 * double. The same for any thread count. */
void zf_attr_noise(float *out, size_t count, uint64_t seed, int sample);

#ifdef __cplusplus
}
#endif
#endif
