/* ONNX constant tensors: checking a TensorProto's type, shape and data, and reading its values
 * (raw_data, the typed fields, or an external data file) as float32 or int64. */
#include "zf/alloc.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_internal.h"
#include "../util_internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ONNX raw_data is little-endian; this reader copies it as it is"
#endif

/* More elements than any model the engine could hold; keeps products far from overflow. */
#define OX_MAX_COUNT (INT64_C(1) << 40)

/* Conversions that stay defined for every input (NaN, huge values): a fuzzed file can hold any. */
static float to_f32(double v)
{
    if (v > FLT_MAX)
        return INFINITY;
    if (v < -FLT_MAX)
        return -INFINITY;
    return (float)v;
}

static int64_t to_i64(double v)
{
    if (!(v > -9.2e18)) /* and NaN */
        return INT64_MIN;
    if (v > 9.2e18)
        return INT64_MAX;
    return (int64_t)v;
}

static int dtype_size(int t)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
        return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
        return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
        return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        return 1;
    default:
        return 0; /* strings, complex numbers, undefined */
    }
}

const char *ox_dtype_name(int t)
{
    static const char *const names[] = {"undefined", "float", "uint8", "int8", "uint16", "int16",
                                        "int32", "int64", "string", "bool", "float16", "double",
                                        "uint32", "uint64", "complex64", "complex128", "bfloat16"};
    return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "unknown type";
}

static int is_float_type(int t)
{
    return t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || t == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
           t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 || t == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

static const char *ext_value(const Onnx__TensorProto *tp, const char *key)
{
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (e && e->key && !strcmp(e->key, key))
            return e->value ? e->value : "";
    }
    return NULL;
}

static int parse_i64(const char *s, int64_t *v)
{
    if (!s || !*s)
        return 0;
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || x < 0)
        return 0;
    *v = x;
    return 1;
}

/* A location must stay inside the model's folder: relative, no "..". */
static int safe_location(const char *loc)
{
    if (loc[0] == '/')
        return 0;
    for (const char *p = loc; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        if (!slash)
            break;
        p = slash + 1;
    }
    return 1;
}

zf_status ox_const_from_tensor(ox_const *c, const Onnx__TensorProto *tp, const char *what)
{
    memset(c, 0, sizeof *c);
    c->src = OX_SRC_TENSOR;
    c->tp = tp;
    c->dtype = tp->has_data_type ? tp->data_type : 0;
    int es = dtype_size(c->dtype);
    if (!es)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: element type %s (%d) is not supported", what,
                        ox_dtype_name(c->dtype), c->dtype);
    if (tp->segment)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: segmented tensors are not supported", what);
    if (tp->n_dims > OX_MAX_DIMS)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: %zu dimensions (at most %d supported)", what,
                        tp->n_dims, OX_MAX_DIMS);
    c->ndim = (int)tp->n_dims;
    c->count = 1;
    for (int i = 0; i < c->ndim; i++) {
        int64_t d = tp->dims[i];
        if (d < 0 || (d > 0 && c->count > OX_MAX_COUNT / d))
            return zf_error(ZF_ERR_FORMAT, "%s: bad dimension %" PRId64 " at axis %d", what, d, i);
        c->dims[i] = d;
        c->count *= d;
    }
    int64_t bytes = c->count * es;
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        const char *loc = ext_value(tp, "location"), *off = ext_value(tp, "offset"),
                   *len = ext_value(tp, "length");
        int64_t v;
        if (!loc || !*loc)
            return zf_error(ZF_ERR_FORMAT, "%s: external data without a location", what);
        if (!safe_location(loc))
            return zf_error(ZF_ERR_FORMAT, "%s: external data location '%s' leaves the model's folder",
                            what, ox_shown(loc));
        if ((off && !parse_i64(off, &v)) || (len && !parse_i64(len, &v)))
            return zf_error(ZF_ERR_FORMAT, "%s: bad external data offset or length", what);
        if (len && v != bytes)
            return zf_error(ZF_ERR_FORMAT,
                            "%s: external data length %" PRId64 " but the shape needs %" PRId64
                            " bytes", what, v, bytes);
        return ZF_OK;
    }
    if (tp->has_raw_data) {
        if ((int64_t)tp->raw_data.len != bytes)
            return zf_error(ZF_ERR_FORMAT,
                            "%s: raw_data has %zu bytes but shape and type need %" PRId64, what,
                            tp->raw_data.len, bytes);
        return ZF_OK;
    }
    size_t n;
    switch (c->dtype) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: n = tp->n_float_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: n = tp->n_double_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: n = tp->n_int64_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: n = tp->n_uint64_data; break;
    default: n = tp->n_int32_data; break;
    }
    if ((int64_t)n != c->count)
        return zf_error(ZF_ERR_FORMAT, "%s: holds %zu values but its shape has %" PRId64, what, n,
                        c->count);
    return ZF_OK;
}

/* Value i of little-endian raw bytes of type t, as double. */
static double raw_get(const uint8_t *p, int t, int64_t i)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: { int64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: { uint64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: { uint32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: { int16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return zf_half_to_float(v); }
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return zf_bf16_to_float(v); }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return (int8_t)p[i];
    default: return p[i]; /* uint8, bool */
    }
}

/* Value i from the typed fields. */
static double typed_get(const Onnx__TensorProto *tp, int t, int64_t i)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return tp->float_data[i];
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return tp->double_data[i];
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return (double)tp->int64_data[i];
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: return (double)tp->uint64_data[i];
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return zf_half_to_float((uint16_t)tp->int32_data[i]);
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return zf_bf16_to_float((uint16_t)tp->int32_data[i]);
    default: return tp->int32_data[i];
    }
}

/* Reads the external bytes of c into buf (count * element size bytes). */
static zf_status read_external(const ox_const *c, const char *dir, void *buf, const char *what)
{
    const Onnx__TensorProto *tp = c->tp;
    const char *loc = ext_value(tp, "location"), *off_s = ext_value(tp, "offset");
    int64_t off = 0, bytes = c->count * dtype_size(c->tp->data_type);
    if (!dir)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: external data '%s' needs the model's folder", what,
                        ox_shown(loc));
    if (!safe_location(loc))
        return zf_error(ZF_ERR_FORMAT, "%s: external data location '%s' leaves the model's folder",
                        what, ox_shown(loc));
    if (off_s)
        parse_i64(off_s, &off);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, loc) >= (int)sizeof path)
        return zf_error(ZF_ERR_IO, "%s: external data path too long", what);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return zf_error(ZF_ERR_IO, "%s: external data '%s': %s", what, ox_shown(loc), strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || off > st.st_size || bytes > st.st_size - off) {
        close(fd);
        return zf_error(ZF_ERR_FORMAT,
                        "%s: external data '%s' is too short for %" PRId64 " bytes at offset %" PRId64,
                        what, ox_shown(loc), bytes, off);
    }
    int64_t done = 0;
    while (done < bytes) {
        size_t chunk = (size_t)(bytes - done > (1 << 30) ? (1 << 30) : bytes - done);
        ssize_t r = pread(fd, (uint8_t *)buf + done, chunk, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            close(fd);
            return zf_error(ZF_ERR_IO, "%s: reading external data '%s': %s", what, ox_shown(loc),
                            strerror(e));
        }
        done += r;
    }
    close(fd);
    return ZF_OK;
}

static int is_external(const ox_const *c)
{
    return c->src == OX_SRC_TENSOR && c->tp->has_data_location &&
           c->tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

/* The element type of the stored data: a folded Cast changes c->dtype, not the bytes. */
static int stored_type(const ox_const *c)
{
    return c->src == OX_SRC_TENSOR ? c->tp->data_type : c->dtype;
}

/* All values in source order, converted to float, into dst. */
static zf_status read_plain_f32(const ox_const *c, const char *dir, float *dst, const char *what)
{
    int t = stored_type(c);
    if (c->src == OX_SRC_FILL) {
        for (int64_t i = 0; i < c->count; i++)
            dst[i] = to_f32(c->fill);
        return ZF_OK;
    }
    if (c->src == OX_SRC_OWNED) {
        for (int64_t i = 0; i < c->count; i++)
            dst[i] = to_f32(c->owned[i]);
        return ZF_OK;
    }
    const Onnx__TensorProto *tp = c->tp;
    if (is_external(c)) {
        if (t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
            return read_external(c, dir, dst, what);
        uint8_t *tmp = zf_malloc((size_t)(c->count * dtype_size(t)) + 1);
        if (!tmp)
            return zf_error(ZF_ERR_NOMEM, "%s: out of memory", what);
        zf_status st = read_external(c, dir, tmp, what);
        for (int64_t i = 0; !st && i < c->count; i++)
            dst[i] = to_f32(raw_get(tmp, t, i));
        free(tmp);
        return st;
    }
    if (tp->has_raw_data) {
        if (t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
            if (c->count)
                memcpy(dst, tp->raw_data.data, (size_t)c->count * 4);
        } else {
            for (int64_t i = 0; i < c->count; i++)
                dst[i] = to_f32(raw_get(tp->raw_data.data, t, i));
        }
        return ZF_OK;
    }
    if (t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        if (c->count)
            memcpy(dst, tp->float_data, (size_t)c->count * 4);
    } else {
        for (int64_t i = 0; i < c->count; i++)
            dst[i] = to_f32(typed_get(tp, t, i));
    }
    return ZF_OK;
}

zf_status ox_const_read_f32(const ox_const *c, const char *dir, float *dst, float scale,
                            const char *what)
{
    if (!is_float_type(stored_type(c)) && c->src == OX_SRC_TENSOR)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: %s values where floats are needed", what,
                        ox_dtype_name(stored_type(c)));
    zf_status st;
    if (c->transposed && c->ndim == 2 && c->dims[0] > 1 && c->dims[1] > 1) {
        float *tmp = zf_malloc((size_t)c->count * sizeof(float));
        if (!tmp)
            return zf_error(ZF_ERR_NOMEM, "%s: out of memory", what);
        st = read_plain_f32(c, dir, tmp, what);
        /* logical (r, q) of dims (rows, cols) is source (q, r) of dims (cols, rows) */
        int64_t rows = c->dims[0], cols = c->dims[1];
        for (int64_t r = 0; !st && r < rows; r++)
            for (int64_t q = 0; q < cols; q++)
                dst[r * cols + q] = tmp[q * rows + r];
        free(tmp);
    } else {
        st = read_plain_f32(c, dir, dst, what);
    }
    if (!st && scale != 1.0f)
        for (int64_t i = 0; i < c->count; i++)
            dst[i] *= scale;
    return st;
}

zf_status ox_const_read_i64(const ox_const *c, const char *dir, int64_t *dst, int64_t max,
                            const char *what)
{
    if (c->count > max)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: %" PRId64 " values where at most %" PRId64
                        " are expected", what, c->count, max);
    if (c->src == OX_SRC_FILL || c->src == OX_SRC_OWNED) {
        for (int64_t i = 0; i < c->count; i++) {
            double v = c->src == OX_SRC_FILL ? c->fill : c->owned[i];
            if (isnan(v))
                return zf_error(ZF_ERR_UNSUPPORTED, "%s: depends on the batch size, which the graph "
                                "leaves symbolic", what);
            dst[i] = to_i64(v);
        }
        return ZF_OK;
    }
    int t = stored_type(c);
    if (is_float_type(t))
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: %s values where integers are needed", what,
                        ox_dtype_name(t));
    const Onnx__TensorProto *tp = c->tp;
    if (is_external(c)) {
        uint8_t *tmp = zf_malloc((size_t)(c->count * dtype_size(t)) + 1);
        if (!tmp)
            return zf_error(ZF_ERR_NOMEM, "%s: out of memory", what);
        zf_status st = read_external(c, dir, tmp, what);
        for (int64_t i = 0; !st && i < c->count; i++) {
            if (t == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
                memcpy(&dst[i], tmp + 8 * i, 8);
            else
                dst[i] = to_i64(raw_get(tmp, t, i));
        }
        free(tmp);
        return st;
    }
    for (int64_t i = 0; i < c->count; i++) {
        if (tp->has_raw_data) {
            if (t == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
                memcpy(&dst[i], tp->raw_data.data + 8 * i, 8);
            else
                dst[i] = to_i64(raw_get(tp->raw_data.data, t, i));
        } else if (t == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
            dst[i] = tp->int64_data[i];
        } else if (t == ONNX__TENSOR_PROTO__DATA_TYPE__UINT64 || t == ONNX__TENSOR_PROTO__DATA_TYPE__UINT32) {
            dst[i] = tp->uint64_data[i] > INT64_MAX ? INT64_MAX : (int64_t)tp->uint64_data[i];
        } else {
            dst[i] = tp->int32_data[i];
        }
    }
    return ZF_OK;
}

zf_status ox_const_read_f64(const ox_const *c, const char *dir, double *dst, const char *what)
{
    if (c->src == OX_SRC_FILL) {
        for (int64_t i = 0; i < c->count; i++)
            dst[i] = c->fill;
        return ZF_OK;
    }
    int swap = c->transposed && c->ndim == 2 && c->dims[0] > 1 && c->dims[1] > 1;
    if (c->src == OX_SRC_OWNED) {
        /* logical (r, q) of dims (rows, cols) is source (q, r) */
        for (int64_t i = 0; i < c->count; i++)
            dst[i] = swap ? c->owned[(i % c->dims[1]) * c->dims[0] + i / c->dims[1]] : c->owned[i];
        return ZF_OK;
    }
    if (is_float_type(stored_type(c))) {
        float *tmp = zf_malloc(sizeof(float) * (size_t)(c->count ? c->count : 1));
        if (!tmp)
            return zf_error(ZF_ERR_NOMEM, "%s: out of memory", what);
        zf_status st = ox_const_read_f32(c, dir, tmp, 1.0f, what);
        for (int64_t i = 0; !st && i < c->count; i++)
            dst[i] = tmp[i];
        free(tmp);
        return st;
    }
    if (swap)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: a transposed integer constant", what);
    int64_t *tmp = zf_malloc(sizeof(int64_t) * (size_t)(c->count ? c->count : 1));
    if (!tmp)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", what);
    zf_status st = ox_const_read_i64(c, dir, tmp, c->count, what);
    for (int64_t i = 0; !st && i < c->count; i++)
        dst[i] = (double)tmp[i];
    free(tmp);
    return st;
}
