/* PIL's bilinear resampling weights from image.c, shared with dataset.c so that training batches
 * are resized exactly as zf_image_to_input resizes single images. */
#ifndef ZF_IMAGE_INTERNAL_H
#define ZF_IMAGE_INTERNAL_H

#include "zf/status.h"

typedef struct {
    int ksize;
    int *first; /* [n] first input index */
    int *count; /* [n] taps used */
    float *w;   /* [n][ksize] */
} zf_taps;

/* Taps for outputs start..start+n-1 of a resize from in_size to out_size (PIL's
 * precompute_coeffs: triangle filter widened by the scale when shrinking). */
zf_status zf_taps_make(zf_taps *t, int in_size, int out_size, int start, int n);
void zf_taps_free(zf_taps *t);

#endif
