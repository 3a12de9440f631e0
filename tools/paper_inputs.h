/* The images zfviz invariance and zfviz correspond take as operands, loaded as one batch of the
 * net's preprocessed inputs with a short name for each. */
#ifndef ZF_TOOLS_PAPER_INPUTS_H
#define ZF_TOOLS_PAPER_INPUTS_H

#include "zf/net.h"
#include "zf/status.h"

typedef struct zft_image_set {
    int n;
    float *x;     /* (n, in_c, in_h, in_w) */
    char **names; /* the file's base name; "f.npy[3]" for one image of a .npy batch */
} zft_image_set;

/* Every operand is an image file, a .npy of (n, c, h, w) or (c, h, w) inputs, a folder of images
 * or a list of image paths (zf_images_find). A path that does not exist or cannot be read as
 * such is ZF_ERR_ARG (the commands' usage error), checked for all operands before any is decoded. */
zf_status zft_image_set_load(const zf_net *net, char *const *args, int n_args, zft_image_set *out);
void zft_image_set_free(zft_image_set *s);

#endif
