/* Feature visualisation by optimisation (issue 17): images that maximise a unit, a channel or a
 * class, by the regularised gradient ascent of Yosinski et al. 2015 or by Lucid's decorrelated
 * Fourier parameterisation with transformation robustness (Olah et al. 2017). Seeded: the same
 * seed, build and thread count give the same images. */
#ifndef ZF_OPTIMIZE_H
#define ZF_OPTIMIZE_H

#include <stddef.h>
#include <stdint.h>

#include "zf/attribution.h"
#include "zf/net.h"
#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { ZF_OPTIMIZE_YOSINSKI = 0, ZF_OPTIMIZE_FOURIER = 1 } zf_optimize_method;

/* The settings of one optimisation. Pixel values below are in the net's input space (after the
 * preprocessing); R is the width of the valid pixel range of the widest input channel. */
typedef struct zf_optimize_params {
    zf_optimize_method method;
    int steps;            /* >= 1 */
    double lr;            /* Yosinski: each step moves the image by lr * R * g / mean|g|;
                           * Fourier: Adam's step on the spectrum coefficients */
    uint64_t seed;
    /* Yosinski et al. 2015, section 3 (theta_decay, theta_b_width, theta_b_every, theta_n_pct,
     * theta_c_pct), and a jitter of the image before each gradient. */
    double decay;         /* x <- (1 - decay) x after each step (0 is the dataset's mean colour) */
    int blur_every;       /* a Gaussian blur every this many steps (0: never) */
    double blur_sigma;    /* its standard deviation in pixels (0: none) */
    double norm_pct;      /* pixels whose norm over channels is below this percentile are set to 0 */
    double contrib_pct;   /* pixels whose |sum_c x_c dF/dx_c| is below this percentile are set to 0 */
    int jitter;           /* the gradient is taken at the image rolled by up to this many pixels */
    /* Lucid: image = sigmoid(colour matrix . Re(IFFT(s_k Z_k)) / 4), s_k = sqrt(HW) /
     * max(f_k, 1 / max(H, W))^decay_power, under a random jitter, scale and rotation per step. */
    double decay_power;   /* the spectrum's 1/f exponent */
    double init_sd;       /* the start's noise: fourier, the coefficients' standard deviation; yosinski,
                             the pixels' standard deviation as a fraction of the widest channel's range */
    int decorrelate;      /* 1: through Lucid's ImageNet colour decorrelation matrix */
    int clip;             /* 1: clamp(t + 1/2, 0, 1) instead of the sigmoid */
    int tr_jitter;        /* translation: up to this many pixels each way */
    double tr_scale;      /* scale: 1 + tr_scale k / 5, k a whole number in [-5, 5] */
    double tr_rotate;     /* rotation: a whole number of degrees in [-tr_rotate, tr_rotate] */
    /* Lucid's diversity term (Olah et al. 2017, "Diversity"): each image ascends its target minus
     * diversity * D, D the similarity of the Gram matrices of layer diversity_layer's outputs among
     * the images of the batch that share a target (zf_optimize_diversity). 0: off, and then an
     * image does not depend on the others of its batch. */
    double diversity;
    int diversity_layer;  /* -1: the layer the target is ascended at; else at or below it */
} zf_optimize_params;
/* The defaults of `method` (docs/attribution.md lists them). */
zf_optimize_params zf_optimize_defaults(zf_optimize_method method);
/* Checks the settings (steps >= 1, rates and percentiles in range); the message names the field. */
zf_status zf_optimize_check(const zf_optimize_params *p);

/* Called after each step with the steps done and the total; a non-zero return stops the run
 * (ZF_ERR_INTERRUPTED). */
typedef int (*zf_optimize_progress)(void *ctx, int done, int total);

/* images (n, in_c, in_h, in_w): the net's inputs that maximise targets[i] (n <= b's batch, all
 * targets of one layer), optimised together in one batch per step; image i's random stream is
 * keyed by the seed, its target's channel and position and sample[i] (NULL: 0), so an image does
 * not depend on the others of its batch. A ReLU layer's target is ascended through the value
 * before the rectifier (the same unit of the layer below), which has a gradient where the ReLU is
 * 0. trace (n, steps; may be NULL): the value ascended at the image the step's gradient was taken
 * on (jittered or transformed). */
zf_status zf_optimize_run(zf_backprop *b, float *images, double *trace, const zf_attr_target *targets,
                          const int *sample, int n, const zf_optimize_params *p, zf_optimize_progress progress,
                          void *ctx);

/* Lucid's diversity of n images' outputs a (n, c, hw) of one layer: G_i = A_i A_i^T (c x c, summed
 * over the hw positions) normalised to unit Frobenius norm, and D = sum over the groups of images
 * (group[i] == group[j]; NULL: one group) of (1 / the group's size) * sum over ordered pairs i != j
 * of the group of <G_i, G_j> (Lucid's objectives.diversity for one group). Returns D, computed in
 * double; grad (n, c, hw; may be NULL) = dD/da (0 for an image whose outputs are all zero). */
double zf_optimize_diversity(const float *a, int n, int c, int hw, const int *group, float *grad);

/* The Fourier parameterisation's inverse transform: img (c, h, w) = Re(sum_k s_k Z_k e^{2 pi i
 * (ky y / h + kx x / w)}) / (4 h w) for each channel, Z = coef (c, h, w, 2) (re, im), s_k as in
 * zf_optimize_params with f_k = sqrt(fy^2 + fx^2), fy = min(ky, h - ky) / h, fx likewise. */
zf_status zf_optimize_fourier_image(float *img, const float *coef, int c, int h, int w, double decay_power);

/* Gaussian blur of each of c planes (h, w): a separable kernel exp(-d^2 / (2 sigma^2)) over
 * |d| <= ceil(3 sigma), normalised to sum 1, the edges clamped (the nearest pixel repeated).
 * out may equal in. sigma <= 0 copies. */
zf_status zf_optimize_blur(float *out, const float *in, int c, int h, int w, double sigma);

#ifdef __cplusplus
}
#endif
#endif
