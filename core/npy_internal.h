/* The .npy reader split into header and data steps, so that weights can be read straight into
 * the net's parameter block after their shape is checked (used by npy.c and weights.c only). */
#ifndef ZF_NPY_INTERNAL_H
#define ZF_NPY_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "util_internal.h" /* zf_half_to_float, zf_bf16_to_float */
#include "zf/status.h"

#define ZF_NPY_MAX_DIMS 32 /* numpy's own limit (NPY_MAXDIMS) */

typedef struct zf_npy_info {
    char kind;        /* 'f' float, 'i' signed, 'u' unsigned, 'b' bool */
    int itemsize;     /* bytes per element */
    char descr[16];   /* as written in the header, for messages ("<f8") */
    int ndim;
    int64_t shape[ZF_NPY_MAX_DIMS];
    int64_t count;    /* product of shape */
    long data_offset; /* where the data starts */
} zf_npy_info;

/* Opens `path`, parses and checks its header (magic, version, dict, dtype, C order) and that the
 * file holds exactly the data the header promises. On success *f is positioned at the data. */
zf_status zf_npy_open(const char *path, FILE **f, zf_npy_info *info);

/* Reads the whole array into dst as float32 (float dtypes only) or int32 (integer and bool
 * dtypes; values out of int32 range are an error). `path` is for messages. */
zf_status zf_npy_read_f32(FILE *f, const zf_npy_info *info, const char *path, float *dst);
zf_status zf_npy_read_i32(FILE *f, const zf_npy_info *info, const char *path, int32_t *dst);

/* "(2, 3, 5)" into buf; returns buf. */
const char *zf_npy_shape_str(const int64_t *shape, int ndim, char *buf, size_t len);

#endif
