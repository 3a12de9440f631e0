/* Occlusion sensitivity (Zeiler & Fergus 4.2, Fig. 7): slide a square of constant value over the
 * input and map, per position, a conv feature map's total, the probability of a class and the
 * most probable class. Brute force (one forward per occluded image, batched) or incremental
 * (recompute only the activations inside each occluder's receptive-field footprint). */
#ifndef ZF_OCCLUSION_H
#define ZF_OCCLUSION_H

#include <stdint.h>

#include "zf/net.h"
#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZF_OCCLUSION_AUTO = 0,    /* incremental where its estimated work is clearly below brute force */
    ZF_OCCLUSION_BRUTE,       /* a full forward of every occluded image, in batches */
    ZF_OCCLUSION_INCREMENTAL  /* reuse the unoccluded activations outside each footprint */
} zf_occlusion_method;

/* How the incremental method recomputes a convolution's changed window (tests force each). */
typedef enum {
    ZF_OCCLUSION_CONV_AUTO = 0, /* the cheapest by estimated work, per layer */
    ZF_OCCLUSION_CONV_IM2COL,   /* im2col of the patched window + one sgemm per group */
    ZF_OCCLUSION_CONV_DELTA,    /* stride 1: scatter W^T (changed - unoccluded) onto the old output */
    ZF_OCCLUSION_CONV_WINOGRAD, /* 3x3 stride 1: Winograd F(2x2, 3x3) on the patched window */
    ZF_OCCLUSION_CONV_WINOGRAD4 /* stride 1: 3x3 by F(6x6), F(4x4) and mixed tiles, 5x5 by F(4x4, 5x5) */
} zf_occlusion_conv;

typedef struct zf_occlusion_params {
    int patch;        /* side of the square, in input pixels */
    int stride;       /* step between positions; top-left corners at 0, s, 2s, ... <= size - patch */
    float fill;       /* value of the square in the net's normalised input space (0: the mean) */
    int cls;          /* class whose probability is mapped; -1: top class of the unoccluded input */
    int layer;        /* a conv layer (or the ReLU after it) whose rectified map is summed;
                       * -1: the last conv layer */
    int channel;      /* its channel; -1: the one holding the largest single activation on the
                       * unoccluded input (first in (channel, y, x) order on ties) */
    zf_occlusion_method method;
    zf_occlusion_conv conv; /* incremental only */
    int batch;        /* positions per batch; 0: chosen from the method and the net */
    int fc_group;     /* incremental with the first fc as a change: positions whose fully connected
                       * tail runs at once, gathered over batches (at least a batch); 0: as many as
                       * 64 MB hold */
    /* Called after each batch from the calling thread; may be NULL. */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} zf_occlusion_params;

/* patch 0 (must be set), stride 0 (must be set), fill 0, cls -1, layer -1, channel -1, auto. */
void zf_occlusion_params_default(zf_occlusion_params *p);

typedef struct zf_occlusion_result {
    int rows, cols;         /* positions: row i has its top edge at i * stride, column j at j * stride */
    int patch, stride;
    float fill;
    float *feature;         /* (rows, cols): sum over the map of the rectified channel */
    float *prob;            /* (rows, cols): probability of class `cls` */
    int32_t *argmax;        /* (rows, cols): most probable class (first on ties) */
    int layer;              /* the layer whose output is summed (the conv's ReLU, or the conv) */
    int conv_layer;         /* the conv layer itself */
    int channel, cls;       /* as used (chosen when the params said -1) */
    int n_classes;
    float base_feature, base_prob; /* on the unoccluded input */
    int32_t base_argmax;
    zf_occlusion_method method;    /* BRUTE or INCREMENTAL, as run */
    double work_ratio;      /* estimated multiply-adds, incremental over brute force */
    double seconds;         /* the whole map, including the unoccluded forward */
    int n_layers;
    double *layer_seconds;  /* (n_layers) incremental: seconds in each layer over all batches, the
                             * dense tail counted at the last layer; zeros for brute force */
    zf_occlusion_conv *layer_conv; /* (n_layers) incremental: how each conv layer was recomputed
                                    * (AUTO for other layers) */
    int fc_delta;           /* incremental: the fully connected layer run as a change, or -1 */
} zf_occlusion_result;

void zf_occlusion_result_free(zf_occlusion_result *r);

/* Number of positions along an axis of `size` pixels, or 0 when the patch does not fit. */
int zf_occlusion_count(int size, int patch, int stride);

/* Maps occlusion sensitivity for one input (in_c, in_h, in_w), normalised as the net expects.
 * Uses the net's CPU buffers (zf_net_reserve is called as needed). Polls zf_interrupted between
 * batches and returns ZF_ERR_INTERRUPTED, with nothing allocated, when it is set. Errors: a patch
 * larger than the input, stride < 1, class, layer or channel out of range (ZF_ERR_ARG). */
zf_status zf_occlusion_run(zf_net *net, const float *input, const zf_occlusion_params *p,
                           zf_occlusion_result **out);

const char *zf_occlusion_method_name(zf_occlusion_method m);
const char *zf_occlusion_conv_name(zf_occlusion_conv c);

#ifdef __cplusplus
}
#endif
#endif
