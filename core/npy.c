/* .npy files (numpy format 1.0-3.0): a strict reader for little-endian C-order numeric arrays
 * and a writer that produces numpy.save's layout (plus a comment marking the file as zfviz's). */
#include "zf/alloc.h"
#include "npy_internal.h"
#include "zf/file.h"
#include "zf/io.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "zfviz reads and writes little-endian data in place: a little-endian host is required"
#endif

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
/* Larger headers are certainly not numpy's (it writes ~128 bytes); refusing them bounds the
 * allocation a hostile file can cause. */
#define NPY_MAX_HEADER (1u << 20)
/* The most data (bytes) a header may claim, checked before anything is allocated or the file's
 * size consulted: 4 GiB, ten times AlexNet's largest weight in float64 and 1700 images of 224 x 224
 * in float32; a larger input is better given in pieces. */
#define NPY_MAX_DATA ((int64_t)1 << 32)
#define NPY_CHUNK 16384 /* elements converted per read when the dtype is not the target's */

const char *zf_npy_shape_str(const int64_t *shape, int ndim, char *buf, size_t len)
{
    size_t off = 0;
    off += (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (off < len)
        snprintf(buf + off, len - off, ndim == 1 ? ",)" : ")");
    return buf;
}

/* ---- header dict parser ----
 * The header is a Python dict literal with exactly the keys 'descr', 'fortran_order' and 'shape',
 * e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }. Anything else is refused. */

typedef struct {
    const char *s, *end;
    const char *path;
} hparser;

static void skip_ws(hparser *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int accept(hparser *p, char c)
{
    skip_ws(p);
    if (p->s < p->end && *p->s == c) {
        p->s++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes into buf. */
static zf_status parse_str(hparser *p, char *buf, size_t len, const char *what)
{
    skip_ws(p);
    if (p->s >= p->end || (*p->s != '\'' && *p->s != '"'))
        return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: expected a string for %s", p->path, what);
    char q = *p->s++;
    size_t n = 0;
    while (p->s < p->end && *p->s != q && *p->s != '\n') {
        if (*p->s == '\\' || n + 1 >= len)
            return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: unexpected string for %s", p->path,
                            what);
        buf[n++] = *p->s++;
    }
    if (p->s >= p->end || *p->s != q)
        return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: unterminated string", p->path);
    p->s++;
    buf[n] = '\0';
    return ZF_OK;
}

static int accept_word(hparser *p, const char *w)
{
    skip_ws(p);
    size_t n = strlen(w);
    if ((size_t)(p->end - p->s) >= n && !memcmp(p->s, w, n)) {
        const char *after = p->s + n;
        if (after < p->end && ((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z') ||
                               (*after >= '0' && *after <= '9') || *after == '_'))
            return 0;
        p->s = after;
        return 1;
    }
    return 0;
}

/* A Python tuple of non-negative ints: (), (3,), (2, 3) or (2, 3,); Python 2's 3L is accepted. */
static zf_status parse_shape(hparser *p, zf_npy_info *info)
{
    if (!accept(p, '('))
        return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: 'shape' is not a tuple", p->path);
    info->ndim = 0;
    int trailing_comma = 0;
    while (!accept(p, ')')) {
        skip_ws(p);
        if (p->s >= p->end || *p->s < '0' || *p->s > '9')
            return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: 'shape' holds something other "
                            "than non-negative integers", p->path);
        int64_t v = 0;
        while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: dimension too large", p->path);
            v = v * 10 + (*p->s++ - '0');
        }
        if (p->s < p->end && (*p->s == 'L' || *p->s == 'l'))
            p->s++;
        if (info->ndim == ZF_NPY_MAX_DIMS)
            return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: more than %d dimensions", p->path,
                            ZF_NPY_MAX_DIMS);
        info->shape[info->ndim++] = v;
        trailing_comma = accept(p, ',');
        if (!trailing_comma) {
            if (!accept(p, ')'))
                return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: malformed 'shape' tuple",
                                p->path);
            break;
        }
    }
    /* (3) is the integer 3 in Python, not a tuple: numpy refuses it too. */
    if (info->ndim == 1 && !trailing_comma)
        return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: 'shape' (n) is not a tuple", p->path);
    return ZF_OK;
}

/* '<f4' and friends: byte order, kind, size. */
static zf_status parse_descr(const hparser *p, const char *d, zf_npy_info *info)
{
    snprintf(info->descr, sizeof info->descr, "%s", d);
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: unsupported .npy dtype '%s'", p->path, d);
    char kind = d[1];
    char *endp;
    errno = 0;
    long size = kind ? strtol(d + 2, &endp, 10) : 0;
    if (!kind || d[2] < '0' || d[2] > '9' || *endp || errno) {
        if (kind == 'O')
            return zf_error(ZF_ERR_UNSUPPORTED, "%s: .npy holds Python objects (dtype '%s'); only "
                            "numeric arrays are supported", p->path, d);
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: unsupported .npy dtype '%s'", p->path, d);
    }
    int ok = (kind == 'f' && (size == 2 || size == 4 || size == 8)) ||
             ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
             (kind == 'b' && size == 1);
    if (!ok)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: unsupported .npy dtype '%s' (float16/32/64, "
                        "int8-64, uint8-64 and bool are supported)", p->path, d);
    if (order == '>' && size > 1)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: big-endian .npy data (dtype '%s') is not "
                        "supported; save it little-endian (arr.astype('<%c%ld'))", p->path, d, kind,
                        size);
    info->kind = kind;
    info->itemsize = (int)size;
    return ZF_OK;
}

static zf_status parse_header(const char *path, const char *h, size_t len, zf_npy_info *info)
{
    hparser p = {h, h + len, path};
    if (!accept(&p, '{'))
        return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: not a dict", path);
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    zf_status st;
    while (!accept(&p, '}')) {
        char key[32];
        if ((st = parse_str(&p, key, sizeof key, "a key")))
            return st;
        if (!accept(&p, ':'))
            return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: expected ':' after '%s'", path, key);
        if (!strcmp(key, "descr")) {
            if (seen_descr++)
                return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: 'descr' twice", path);
            skip_ws(&p);
            if (p.s < p.end && *p.s == '[')
                return zf_error(ZF_ERR_UNSUPPORTED, "%s: .npy holds a structured array (record "
                                "dtype); only plain numeric arrays are supported", path);
            char d[16];
            if ((st = parse_str(&p, d, sizeof d, "'descr'")))
                return st;
            if ((st = parse_descr(&p, d, info)))
                return st;
        } else if (!strcmp(key, "fortran_order")) {
            if (seen_fortran++)
                return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: 'fortran_order' twice", path);
            if (accept_word(&p, "True"))
                return zf_error(ZF_ERR_UNSUPPORTED, "%s: .npy array is in Fortran order; save it "
                                "in C order (np.ascontiguousarray)", path);
            if (!accept_word(&p, "False"))
                return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: 'fortran_order' is not "
                                "True or False", path);
        } else if (!strcmp(key, "shape")) {
            if (seen_shape++)
                return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: 'shape' twice", path);
            if ((st = parse_shape(&p, info)))
                return st;
        } else {
            return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: unexpected key '%s'", path, key);
        }
        if (!accept(&p, ',')) {
            if (!accept(&p, '}'))
                return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: expected ',' or '}'", path);
            break;
        }
    }
    skip_ws(&p);
    if (p.s < p.end && *p.s == '#') { /* a Python comment, as zfviz's own mark */
        while (p.s < p.end && *p.s != '\n')
            p.s++;
        skip_ws(&p);
    }
    if (p.s != p.end)
        return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: text after the dict", path);
    if (!seen_descr || !seen_fortran || !seen_shape)
        return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: missing '%s'", path,
                        !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    info->count = 1;
    for (int i = 0; i < info->ndim; i++) {
        if (info->shape[i] && info->count > INT64_MAX / 16 / info->shape[i])
            return zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: shape too large", path);
        info->count *= info->shape[i];
    }
    return ZF_OK;
}

zf_status zf_npy_open(const char *path, FILE **out, zf_npy_info *info)
{
    *out = NULL;
    memset(info, 0, sizeof *info);
    FILE *f = fopen(path, "rb");
    if (!f)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[12];
    size_t got = fread(pre, 1, 10, f);
    zf_status st = ZF_OK;
    char *h = NULL;
    if (got < 6 || memcmp(pre, npy_magic, 6)) {
        st = zf_error(ZF_ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
        goto fail;
    }
    if (got < 10) {
        st = zf_error(ZF_ERR_FORMAT, "%s: truncated .npy header", path);
        goto fail;
    }
    int major = pre[6];
    size_t hlen, prefix;
    if (major == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        prefix = 10;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            st = zf_error(ZF_ERR_FORMAT, "%s: truncated .npy header", path);
            goto fail;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        prefix = 12;
    } else {
        st = zf_error(ZF_ERR_UNSUPPORTED, "%s: .npy format version %d.%d is not supported (1.0 to "
                      "3.0 are)", path, major, pre[7]);
        goto fail;
    }
    if (hlen > NPY_MAX_HEADER) {
        st = zf_error(ZF_ERR_FORMAT, "%s: bad .npy header: length %zu is implausible", path, hlen);
        goto fail;
    }
    h = zf_malloc(hlen + 1);
    if (!h) {
        st = zf_error(ZF_ERR_NOMEM, "%s: out of memory for the .npy header", path);
        goto fail;
    }
    if (fread(h, 1, hlen, f) != hlen) {
        st = zf_error(ZF_ERR_FORMAT, "%s: truncated .npy header", path);
        goto fail;
    }
    if ((st = parse_header(path, h, hlen, info)))
        goto fail;
    info->data_offset = (long)(prefix + hlen);
    int64_t bytes = info->count * info->itemsize;
    if (bytes > NPY_MAX_DATA) {
        char sh[256];
        zf_npy_shape_str(info->shape, info->ndim, sh, sizeof sh);
        st = zf_error(ZF_ERR_UNSUPPORTED, "%s: the .npy header claims shape %s of '%s', %lld bytes "
                      "of data: more than the %lld an array may hold", path, sh, info->descr,
                      (long long)bytes, (long long)NPY_MAX_DATA);
        goto fail;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size - info->data_offset != bytes) {
        char sh[256];
        zf_npy_shape_str(info->shape, info->ndim, sh, sizeof sh);
        int64_t have = sb.st_size - info->data_offset;
        st = zf_error(ZF_ERR_FORMAT, "%s: %s .npy: the header says shape %s of '%s' (%lld bytes of "
                      "data) but the file holds %lld", path, have < bytes ? "truncated" : "oversized",
                      sh, info->descr, (long long)bytes, (long long)have);
        goto fail;
    }
    free(h);
    *out = f;
    return ZF_OK;
fail:
    free(h);
    fclose(f);
    return st;
}

static zf_status read_exact(FILE *f, void *dst, size_t bytes, const char *path)
{
    if (fread(dst, 1, bytes, f) != bytes)
        return zf_error(ferror(f) ? ZF_ERR_IO : ZF_ERR_FORMAT, "%s: %s", path,
                        ferror(f) ? strerror(errno) : "truncated .npy data");
    return ZF_OK;
}

zf_status zf_npy_read_f32(FILE *f, const zf_npy_info *info, const char *path, float *dst)
{
    if (info->kind != 'f')
        return zf_error(ZF_ERR_FORMAT, "%s: .npy holds '%s' integers where floats are needed", path,
                        info->descr);
    if (info->itemsize == 4)
        return read_exact(f, dst, (size_t)info->count * 4, path);
    unsigned char *buf = zf_malloc((size_t)NPY_CHUNK * 8);
    if (!buf)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
    zf_status st = ZF_OK;
    for (int64_t done = 0; done < info->count && !st; done += NPY_CHUNK) {
        int64_t n = info->count - done < NPY_CHUNK ? info->count - done : NPY_CHUNK;
        if ((st = read_exact(f, buf, (size_t)(n * info->itemsize), path)))
            break;
        for (int64_t i = 0; i < n; i++) {
            if (info->itemsize == 8) {
                double d;
                memcpy(&d, buf + 8 * i, 8);
                dst[done + i] = (float)d;
            } else {
                uint16_t hb;
                memcpy(&hb, buf + 2 * i, 2);
                dst[done + i] = zf_half_to_float(hb);
            }
        }
    }
    free(buf);
    return st;
}

zf_status zf_npy_read_i32(FILE *f, const zf_npy_info *info, const char *path, int32_t *dst)
{
    if (info->kind == 'f')
        return zf_error(ZF_ERR_FORMAT, "%s: .npy holds '%s' floats where integers are needed", path,
                        info->descr);
    if (info->kind == 'i' && info->itemsize == 4)
        return read_exact(f, dst, (size_t)info->count * 4, path);
    unsigned char *buf = zf_malloc((size_t)NPY_CHUNK * 8);
    if (!buf)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
    zf_status st = ZF_OK;
    int sz = info->itemsize;
    int is_signed = info->kind == 'i';
    for (int64_t done = 0; done < info->count && !st; done += NPY_CHUNK) {
        int64_t n = info->count - done < NPY_CHUNK ? info->count - done : NPY_CHUNK;
        if ((st = read_exact(f, buf, (size_t)(n * sz), path)))
            break;
        for (int64_t i = 0; i < n; i++) {
            const unsigned char *b = buf + sz * i;
            int64_t v;
            if (sz == 1) {
                v = is_signed ? (int64_t)(int8_t)b[0] : (int64_t)b[0];
            } else if (sz == 2) {
                uint16_t u;
                memcpy(&u, b, 2);
                v = is_signed ? (int64_t)(int16_t)u : (int64_t)u;
            } else if (sz == 4) {
                uint32_t u;
                memcpy(&u, b, 4);
                v = is_signed ? (int64_t)(int32_t)u : (int64_t)u;
            } else {
                uint64_t u;
                memcpy(&u, b, 8);
                if (!is_signed && u > (uint64_t)INT64_MAX)
                    v = INT64_MAX; /* out of range either way */
                else
                    v = (int64_t)u;
            }
            if (info->kind == 'b' && v > 1)
                v = 1;
            if (v < INT32_MIN || v > INT32_MAX) {
                st = zf_error(ZF_ERR_UNSUPPORTED, "%s: value at index %lld of the '%s' array does "
                              "not fit in int32", path, (long long)(done + i), info->descr);
                break;
            }
            dst[done + i] = (int32_t)v;
        }
    }
    free(buf);
    return st;
}

zf_status zf_npy_read(const char *path, zf_tensor **out)
{
    *out = NULL;
    FILE *f;
    zf_npy_info info;
    zf_status st = zf_npy_open(path, &f, &info);
    if (st)
        return st;
    /* Leading unit dimensions are dropped until the shape fits a tensor; a scalar becomes (1). */
    int first = 0;
    while (info.ndim - first > ZF_TENSOR_MAX_DIMS && info.shape[first] == 1)
        first++;
    int ndim = info.ndim - first;
    if (ndim > ZF_TENSOR_MAX_DIMS) {
        char sh[512];
        fclose(f);
        return zf_error(ZF_ERR_SHAPE, "%s: .npy shape %s has %d dimensions; at most %d are "
                        "supported", path, zf_npy_shape_str(info.shape, info.ndim, sh, sizeof sh),
                        info.ndim, ZF_TENSOR_MAX_DIMS);
    }
    int64_t one = 1;
    const int64_t *shape = ndim ? info.shape + first : &one;
    zf_tensor *t = zf_tensor_new(info.kind == 'f' ? ZF_DTYPE_F32 : ZF_DTYPE_I32, ndim ? ndim : 1,
                                 shape);
    if (!t) {
        fclose(f);
        return zf_error_prefix(ZF_ERR_NOMEM, "%s: ", path);
    }
    st = t->dtype == ZF_DTYPE_F32 ? zf_npy_read_f32(f, &info, path, t->data)
                                  : zf_npy_read_i32(f, &info, path, t->data);
    fclose(f);
    if (st) {
        zf_tensor_free(t);
        return st;
    }
    *out = t;
    return ZF_OK;
}

zf_status zf_npy_write(const char *path, const zf_tensor *t)
{
    return zf_npy_write_raw(path, t->dtype, t->data, t->ndim, t->shape);
}

zf_status zf_npy_write_raw(const char *path, zf_dtype dtype, const void *data, int ndim,
                           const int64_t *shape)
{
    if (ndim < 0 || ndim > ZF_NPY_MAX_DIMS)
        return zf_error(ZF_ERR_ARG, "%s: cannot write a .npy of %d dimensions", path, ndim);
    if (dtype != ZF_DTYPE_F32 && dtype != ZF_DTYPE_I32)
        return zf_error(ZF_ERR_ARG, "%s: unknown dtype %d", path, (int)dtype);
    int64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] && count > INT64_MAX / 8 / shape[i]))
            return zf_error(ZF_ERR_ARG, "%s: bad dimension %lld", path, (long long)shape[i]);
        count *= shape[i];
    }
    /* As numpy 1.24's np.save writes it: the sorted dict, room for the first axis to
     * grow to 21 digits, then spaces and '\n' up to a multiple of 64 bytes. */
    char h[64 + 24 * ZF_NPY_MAX_DIMS + 128];
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtype == ZF_DTYPE_F32 ? "<f4" : "<i4");
    for (int i = 0; i < ndim; i++)
        n += snprintf(h + n, sizeof h - (size_t)n, i ? ", %lld" : "%lld", (long long)shape[i]);
    n += snprintf(h + n, sizeof h - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    if (ndim > 0) {
        char first[24];
        int digits = snprintf(first, sizeof first, "%lld", (long long)shape[0]);
        for (int i = digits; i < 21; i++)
            h[n++] = ' ';
    }
    /* At most 32 dimensions keep the header under 1 KiB: version 1.0 (2-byte length) always
     * suffices, as numpy itself decides. The header ends in a Python comment that marks the file
     * as zfviz's (numpy ignores it), in place of the last spaces of numpy's padding: an output
     * zfviz made may be written again, another file is not replaced (zf_file_check). */
    static const char mark[] = " # zfviz";
    size_t mlen = sizeof mark - 1;
    size_t pad = 64 - (10 + (size_t)n + 1) % 64; /* numpy's, which the mark takes the end of */
    pad = pad >= mlen ? pad - mlen : pad + 64 - mlen;
    if ((size_t)n + pad + mlen + 1 > sizeof h)
        return zf_error(ZF_ERR_ARG, "%s: .npy header too long", path);
    memset(h + n, ' ', pad);
    n += (int)pad;
    memcpy(h + n, mark, mlen);
    n += (int)mlen;
    h[n++] = '\n';
    unsigned char pre[10];
    memcpy(pre, npy_magic, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(n & 0xff);
    pre[9] = (unsigned char)(n >> 8);

    zf_file *f;
    zf_status st = zf_file_open(path, 0, &f);
    if (st)
        return st;
    if ((st = zf_file_write(f, pre, sizeof pre)) || (st = zf_file_write(f, h, (size_t)n)) ||
        (st = zf_file_write(f, data, 4 * (size_t)count))) {
        zf_file_discard(f);
        return st;
    }
    return zf_file_commit(f);
}
