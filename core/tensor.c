/* Tensor allocation and the aligned allocator used by every engine buffer. */
#include "zf/alloc.h"
#include "zf/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *zf_alloc(size_t bytes)
{
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded == 0)
        rounded = 64;
    if (zf_posix_memalign(&p, 64, rounded) != 0)
        return NULL;
    memset(p, 0, rounded);
    return p;
}

void zf_free(void *p) { free(p); }

static zf_tensor *tensor_header(zf_dtype dtype, int ndim, const int64_t *shape)
{
    if (ndim < 1 || ndim > ZF_TENSOR_MAX_DIMS) {
        zf_error(ZF_ERR_SHAPE, "tensor with %d dimensions (1 to %d supported)", ndim, ZF_TENSOR_MAX_DIMS);
        return NULL;
    }
    int64_t size = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && size > INT64_MAX / 4 / shape[i])) {
            zf_error(ZF_ERR_SHAPE, "tensor dimension %d has bad size %lld", i, (long long)shape[i]);
            return NULL;
        }
        size *= shape[i];
    }
    zf_tensor *t = zf_calloc(1, sizeof *t);
    if (!t) {
        zf_error(ZF_ERR_NOMEM, "out of memory for a tensor header");
        return NULL;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->size = size;
    return t;
}

zf_tensor *zf_tensor_new(zf_dtype dtype, int ndim, const int64_t *shape)
{
    zf_tensor *t = tensor_header(dtype, ndim, shape);
    if (!t)
        return NULL;
    t->data = zf_alloc((size_t)t->size * 4);
    if (!t->data) {
        zf_error(ZF_ERR_NOMEM, "out of memory for a tensor of %lld elements", (long long)t->size);
        free(t);
        return NULL;
    }
    t->owns_data = 1;
    return t;
}

zf_tensor *zf_tensor_new4(int64_t n, int64_t c, int64_t h, int64_t w)
{
    int64_t s[4] = {n, c, h, w};
    return zf_tensor_new(ZF_DTYPE_F32, 4, s);
}

zf_tensor *zf_tensor_new2(int64_t rows, int64_t cols)
{
    int64_t s[2] = {rows, cols};
    return zf_tensor_new(ZF_DTYPE_F32, 2, s);
}

zf_tensor *zf_tensor_wrap(zf_dtype dtype, void *data, int ndim, const int64_t *shape)
{
    zf_tensor *t = tensor_header(dtype, ndim, shape);
    if (t)
        t->data = data;
    return t;
}

void zf_tensor_free(zf_tensor *t)
{
    if (!t)
        return;
    if (t->owns_data)
        zf_free(t->data);
    free(t);
}

const char *zf_tensor_shape_str(const zf_tensor *t, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? "x%lld" : "%lld", (long long)t->shape[i]);
    return buf;
}
