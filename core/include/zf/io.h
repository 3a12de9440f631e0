/* Files in and out of the engine: .npy tensors, JPEG/PNG images and their preprocessing. */
#ifndef ZF_IO_H
#define ZF_IO_H

#include <stdint.h>

#include "zf/net.h"
#include "zf/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* .npy (format 1.0-3.0, little-endian, C order). Reads float32 and int32 as they are; float64,
 * int64 and other common numeric dtypes are converted (to float32, or int32 when in range).
 * Errors name the file and the problem (truncated data, Fortran order, unsupported dtype). */
zf_status zf_npy_read(const char *path, zf_tensor **out);
zf_status zf_npy_write(const char *path, const zf_tensor *t);
zf_status zf_npy_write_raw(const char *path, zf_dtype dtype, const void *data, int ndim,
                           const int64_t *shape);

/* An 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B. */
typedef struct zf_image {
    int w, h;
    uint8_t *rgb;
} zf_image;

/* Decodes JPEG (libjpeg-turbo) or PNG (libpng), told apart by their magic bytes; grey and
 * palette images become RGB, alpha is dropped. A truncated or corrupt file is an error. */
zf_status zf_image_load(const char *path, zf_image **out);
zf_status zf_image_decode(const uint8_t *bytes, size_t len, const char *name, zf_image **out);
zf_image *zf_image_new(int w, int h);
void zf_image_free(zf_image *img);
/* Writes a PNG (with a tEXt Software=zfviz chunk) through zf_file: whole or not at all, and never
 * over a file zfviz did not make unless forced. */
zf_status zf_image_save_png(const char *path, const zf_image *img);
/* The image as PNG bytes (libpng's simplified writer) in a buffer the caller frees. */
zf_status zf_image_encode_png(const zf_image *img, void **out, size_t *out_len);

/* Resizes and crops as `pre` says (antialiased bilinear, as PIL and torchvision do) and writes the
 * normalised (3, out_h, out_w) input in the net's channel order into out. */
zf_status zf_image_to_input(float *out, const zf_image *img, const zf_preproc *pre, int out_h,
                            int out_w);

/* An input for `net` from a path: a .npy of (n, c, h, w) or (c, h, w) that matches the net's input
 * shape, or an image file (one image, preprocessed for the net). Returns (n, c, h, w). */
zf_status zf_input_load(const char *path, const zf_net *net, zf_tensor **out);

#ifdef __cplusplus
}
#endif
#endif
