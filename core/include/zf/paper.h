/* Two of Zeiler & Fergus's experiments on a trained net: feature invariance to translation, scale
 * and rotation (section 4, Fig. 5) and correspondence of object parts under occlusion (section 4.3,
 * Fig. 8 and its table), with the image transforms they need. */
#ifndef ZF_PAPER_H
#define ZF_PAPER_H

#include <stdint.h>

#include "zf/engine.h"
#include "zf/net.h"
#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Image transforms ---------------------------------------------------------------------- */

typedef enum {
    ZF_TRANSFORM_TRANSLATE = 0, /* vertical shift in pixels, positive moves the content down */
    ZF_TRANSFORM_SCALE = 1,     /* zoom about the centre by a factor (> 1 enlarges) */
    ZF_TRANSFORM_ROTATE = 2     /* rotation about the centre in degrees, anticlockwise on screen */
} zf_transform;
#define ZF_TRANSFORM_COUNT 3
/* "translate", "scale", "rotate". */
const char *zf_transform_name(zf_transform t);

/* out (c, h, w) is in (c, h, w) transformed: each output pixel (y, x) reads the input at the point
 * the inverse transform maps it to, with pixel centres at whole coordinates and the centre of the
 * image at ((w - 1) / 2, (h - 1) / 2):
 *   translate t: (y - t, x);  scale s: centre + (p - centre) / s;
 *   rotate a:    x' = cx + dx cos a - dy sin a,  y' = cy + dx sin a + dy cos a  (dx = x - cx, ...)
 * by bilinear interpolation of the four nearest pixels, a pixel outside the image reading `fill`
 * (0 is the mean colour of a normalised input). ZF_ERR_ARG for a scale <= 0 or a non-finite
 * amount. out must not overlap in. */
zf_status zf_transform_image(float *out, const float *in, int c, int h, int w, zf_transform t, double amount,
                             float fill);

/* ---- Layers the paper names ----------------------------------------------------------------- */

/* The output a "layer k" of the paper means in `net`: the rectified output (the ReLU after it, when
 * there is one) of the first convolution (layer 1), of the last convolution (layer 5) and of the
 * fully connected layer before the last one (layer 7, the penultimate layer). -1 when the net has
 * no such layer. */
int zf_paper_layer_first(const zf_net *net);
int zf_paper_layer_last_conv(const zf_net *net);
int zf_paper_layer_penultimate(const zf_net *net);
/* The probability of class k for each of n outputs of the net's last layer (n, classes): the
 * value itself after a softmax, else the softmax of the logits in double. */
void zf_paper_probs(double *prob, int32_t *top, const float *out, int n, int classes, int k, int is_softmax);

/* ---- Invariance (Fig. 5) --------------------------------------------------------------------- */

#define ZF_INVARIANCE_LAYERS 2
typedef struct zf_invariance_params {
    int layers[ZF_INVARIANCE_LAYERS]; /* layers whose outputs are compared (-1: the paper's layer 1
                                       * and penultimate layer) */
    int cls;                          /* class whose probability is recorded; -1: the top class of
                                       * the untransformed image */
    float fill;                       /* what the transform shows outside the image (0: the mean) */
    int batch;                        /* transformed images per forward (0: 1, which runs each
                                       * through the same arithmetic as the original, so that an
                                       * amount that changes nothing gives a distance of exactly 0) */
} zf_invariance_params;
void zf_invariance_params_default(zf_invariance_params *p);

/* One transformed image's numbers. */
typedef struct zf_invariance_row {
    double dist[ZF_INVARIANCE_LAYERS]; /* Euclidean distance between the layer's output for the
                                        * untransformed and the transformed image */
    double prob;                       /* probability of the class */
    int32_t top;                       /* most probable class */
} zf_invariance_row;

/* Transforms `input` (net->in_c, in_h, in_w), a preprocessed image, by each of the n amounts and
 * records rows[i] for amount i. The layers and class used are written to *layers_used and *cls_used
 * (either may be NULL). Runs the engine's net on the engine (it reserves the batch it needs). */
zf_status zf_invariance_sweep(zf_engine *e, const float *input, zf_transform t, const double *amounts, int n,
                              const zf_invariance_params *p, zf_invariance_row *rows, int *layers_used,
                              int *cls_used);

/* ---- Correspondence (Fig. 8) ------------------------------------------------------------------ */

/* A box in the net's input pixels: x, y its top-left corner, w, h its size. */
typedef struct zf_part_box {
    int x, y, w, h;
} zf_part_box;

/* ZF_ERR_ARG, naming `what` (e.g. "image 3 of part 'eye'"), unless the box is non-empty and lies
 * wholly inside an h x w input. */
zf_status zf_box_check(const zf_part_box *b, int h, int w, const char *what);

/* For each of n boxes, a box of the same size at a random place inside the h x w input (uniform
 * over the places it fits; the same seed gives the same boxes). */
void zf_box_random(zf_part_box *out, const zf_part_box *like, int n, int h, int w, uint64_t seed);

/* The paper's consistency measure over n images (inputs (n, in_c, in_h, in_w), preprocessed), for
 * n_sets sets of boxes (sets[s] has one box per image) at n_layers layers: with x_i the layer's
 * output for image i and x~_i that for image i with its box filled with `fill`, eps_i = x_i - x~_i,
 *   delta[s * n_layers + l] = sum over pairs i < j of H(sign(eps_i), sign(eps_j)),
 * H counting the elements whose signs (-1, 0 or +1) differ. Lower is more consistent. The same
 * sum divided by (pairs * elements) goes to norm (may be NULL): the mean fraction of elements
 * whose signs differ between two images. */
zf_status zf_correspond_run(zf_engine *e, const float *inputs, int n, const zf_part_box *const *sets, int n_sets,
                            const int *layers, int n_layers, float fill, double *delta, double *norm);

#ifdef __cplusplus
}
#endif
#endif
