/* Dense tensors of up to four dimensions (NCHW), float32 or int32, owned or borrowed. */
#ifndef ZF_TENSOR_H
#define ZF_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZF_TENSOR_MAX_DIMS 4

typedef enum { ZF_DTYPE_F32 = 0, ZF_DTYPE_I32 = 1 } zf_dtype;

typedef struct zf_tensor {
    zf_dtype dtype;
    int ndim;
    int64_t shape[ZF_TENSOR_MAX_DIMS];
    int64_t size;  /* product of shape[0..ndim) */
    void *data;    /* float * or int32_t *, 64-byte aligned when owned */
    int owns_data; /* zf_tensor_free releases data only when set */
} zf_tensor;

/* A new zero-filled tensor; NULL (with zf_last_error set) on a bad shape or no memory. */
zf_tensor *zf_tensor_new(zf_dtype dtype, int ndim, const int64_t *shape);
/* Convenience for float32 NCHW and 2-D: zf_tensor_new4(n, c, h, w). */
zf_tensor *zf_tensor_new4(int64_t n, int64_t c, int64_t h, int64_t w);
zf_tensor *zf_tensor_new2(int64_t rows, int64_t cols);
/* Wraps caller-owned memory; the tensor does not free it. */
zf_tensor *zf_tensor_wrap(zf_dtype dtype, void *data, int ndim, const int64_t *shape);
void zf_tensor_free(zf_tensor *t);

static inline float *zf_tensor_f32(const zf_tensor *t) { return (float *)t->data; }
static inline int32_t *zf_tensor_i32(const zf_tensor *t) { return (int32_t *)t->data; }
/* "2x3x224x224" into buf; returns buf. */
const char *zf_tensor_shape_str(const zf_tensor *t, char *buf, size_t len);

/* Aligned allocation used for every large buffer (64-byte alignment, zeroed). */
void *zf_alloc(size_t bytes);
void zf_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
