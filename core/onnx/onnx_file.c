/* Reading ONNX files into protobuf-c messages: mapping the file, bounding message nesting, and
 * ONNX TensorProto files (the backend tests' input/output .pb). */
#include "zf/alloc.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_internal.h"

/* protobuf's own C++, Java and Python readers stop at 100 nested messages. */
#define OX_MAX_DEPTH 100

/* A name fit for a one-line message: printable, at most 60 characters. */
const char *ox_shown(const char *s)
{
    static _Thread_local char bufs[4][64];
    static _Thread_local int slot;
    char *b = bufs[slot++ & 3];
    size_t n = 0;
    for (; s && *s && n < 60; s++)
        b[n++] = (*s >= 32 && *s < 127) ? *s : '?';
    if (s && *s) {
        b[57] = b[58] = b[59] = '.';
        n = 60;
    }
    b[n] = 0;
    return b;
}

static int read_varint(const uint8_t *p, const uint8_t *end, uint64_t *v, const uint8_t **next)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && p < end; shift += 7) {
        uint8_t b = *p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            *next = p;
            return 1;
        }
    }
    return 0;
}

/* Largest nesting depth of known message fields, stopping early past `limit`. Only the tags
 * and lengths are looked at: the contents are left to protobuf-c, which reports any error in
 * them, so malformed bytes here simply end the scan. */
static int nesting_depth(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                         int limit)
{
    struct {
        const ProtobufCMessageDescriptor *desc;
        const uint8_t *end;
    } stack[OX_MAX_DEPTH + 2];
    int depth = 0, deepest = 0;
    const uint8_t *p = buf;
    stack[0].desc = desc;
    stack[0].end = buf + len;
    for (;;) {
        while (depth > 0 && p >= stack[depth].end)
            depth--;
        if (p >= stack[depth].end)
            return deepest;
        const uint8_t *end = stack[depth].end;
        uint64_t tag, n;
        if (!read_varint(p, end, &tag, &p))
            return deepest;
        switch (tag & 7) {
        case PROTOBUF_C_WIRE_TYPE_VARINT:
            if (!read_varint(p, end, &n, &p))
                return deepest;
            break;
        case PROTOBUF_C_WIRE_TYPE_64BIT:
            p += 8;
            break;
        case PROTOBUF_C_WIRE_TYPE_32BIT:
            p += 4;
            break;
        case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
            if (!read_varint(p, end, &n, &p) || n > (uint64_t)(end - p))
                return deepest;
            uint64_t field = tag >> 3;
            const ProtobufCFieldDescriptor *f =
                field <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(stack[depth].desc,
                                                                             (unsigned)field)
                                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (++depth > deepest)
                    deepest = depth;
                if (depth > limit)
                    return deepest;
                stack[depth].desc = f->descriptor;
                stack[depth].end = p + n;
            } else {
                p += n;
            }
            break;
        }
        default: /* groups (never used by ONNX) and invalid wire types: protobuf-c rejects them */
            return deepest;
        }
        if (p > end)
            return deepest;
    }
}

/* protobuf-c copies every bytes field (the weights' raw_data) into memory from its allocator.
 * Large blocks come from their own mappings with transparent huge pages asked for: a 250 MB model
 * then costs a few hundred page faults instead of sixty thousand, which is most of the time a
 * load takes beyond reading the file. */
#define OX_BIG (1u << 20)
#define OX_HUGE ((size_t)2 << 20)

typedef struct ox_block {
    void *base; /* the mapping for large blocks, NULL for small ones from malloc */
    size_t len;
    size_t pad[2]; /* keeps the data 32-byte aligned */
} ox_block;

/* Set when an allocation for protobuf-c fails, so that a failed unpack says it ran out of memory
 * rather than calling the file corrupt. */
static _Thread_local int ox_nomem;

static void *ox_alloc(void *ctx, size_t size)
{
    (void)ctx;
    if (size > SIZE_MAX - OX_HUGE - sizeof(ox_block))
        return NULL;
    if (size < OX_BIG) {
        ox_block *h = zf_malloc(sizeof(ox_block) + size);
        if (!h) {
            ox_nomem = 1;
            return NULL;
        }
        h->base = NULL;
        return h + 1;
    }
    size_t len = size + sizeof(ox_block) + OX_HUGE;
    uint8_t *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        ox_nomem = 1;
        return NULL;
    }
    /* the data starts on a 2 MB boundary so that the kernel can back it with huge pages */
    uintptr_t data = ((uintptr_t)base + sizeof(ox_block) + OX_HUGE - 1) & ~(uintptr_t)(OX_HUGE - 1);
#ifdef MADV_HUGEPAGE
    madvise((void *)data, size, MADV_HUGEPAGE);
#endif
    ox_block *h = (ox_block *)data - 1;
    h->base = base;
    h->len = len;
    return (void *)data;
}

static void ox_free(void *ctx, void *p)
{
    (void)ctx;
    if (!p)
        return;
    ox_block *h = (ox_block *)p - 1;
    if (h->base)
        munmap(h->base, h->len);
    else
        free(h);
}

ProtobufCAllocator ox_allocator = {ox_alloc, ox_free, NULL};

ProtobufCMessage *ox_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
                            size_t len, const char *name)
{
    if (nesting_depth(desc, buf, len, OX_MAX_DEPTH) > OX_MAX_DEPTH) {
        zf_error(ZF_ERR_FORMAT, "%s: messages nested more than %d deep: not an ONNX file or corrupt",
                 name, OX_MAX_DEPTH);
        return NULL;
    }
    ox_nomem = 0;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &ox_allocator, len, buf);
    if (!m && ox_nomem)
        zf_error(ZF_ERR_NOMEM, "%s: out of memory unpacking the %s protobuf", name, desc->short_name);
    else if (!m)
        zf_error(ZF_ERR_FORMAT, "%s: not a valid %s protobuf (truncated or corrupt file)", name,
                 desc->short_name);
    return m;
}

/* Reads a whole file: mapped read-only when possible (*mapped = 1), else read into memory.
 * Release with ox_file_release. */
static zf_status ox_file_map(const char *path, uint8_t **data, size_t *len, int *mapped)
{
    *data = NULL;
    *len = 0;
    *mapped = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return zf_error(ZF_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return zf_error(ZF_ERR_IO, "%s: is a directory, not a file", path);
    }
    if (S_ISREG(st.st_mode) && st.st_size == 0) {
        close(fd);
        return zf_error(ZF_ERR_FORMAT, "%s: empty file", path);
    }
    if (S_ISREG(st.st_mode)) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (m != MAP_FAILED) {
            close(fd);
            *data = m;
            *len = (size_t)st.st_size;
            *mapped = 1;
            return ZF_OK;
        }
    }
    /* Pipes and file systems without mmap: read it all. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size : 1 << 20, n = 0;
    uint8_t *buf = zf_malloc(cap);
    for (;;) {
        if (!buf) {
            close(fd);
            return zf_error(ZF_ERR_NOMEM, "%s: out of memory reading the file", path);
        }
        if (n == cap) {
            uint8_t *b2 = zf_realloc(buf, cap * 2);
            if (!b2)
                free(buf);
            buf = b2;
            cap *= 2;
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return zf_error(ZF_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n == 0) {
        free(buf);
        return zf_error(ZF_ERR_FORMAT, "%s: empty file", path);
    }
    *data = buf;
    *len = n;
    return ZF_OK;
}

static void ox_file_release(uint8_t *data, size_t len, int mapped)
{
    if (!data)
        return;
    if (mapped)
        munmap(data, len);
    else
        free(data);
}

zf_status ox_unpack_file(const ProtobufCMessageDescriptor *desc, const char *path,
                         ProtobufCMessage **out)
{
    *out = NULL;
    uint8_t *data;
    size_t len;
    int mapped;
    zf_status st = ox_file_map(path, &data, &len, &mapped);
    if (st)
        return st;
    *out = ox_unpack(desc, data, len, path);
    ox_file_release(data, len, mapped);
    return *out ? ZF_OK : ZF_ERR_FORMAT;
}

zf_status zf_onnx_read_tensor(const char *path, zf_tensor **out)
{
    *out = NULL;
    ProtobufCMessage *msg;
    zf_status st = ox_unpack_file(&onnx__tensor_proto__descriptor, path, &msg);
    if (st)
        return st;
    Onnx__TensorProto *tp = (Onnx__TensorProto *)msg;
    ox_const c;
    st = ox_const_from_tensor(&c, tp, path);
    if (!st && c.ndim > ZF_TENSOR_MAX_DIMS)
        st = zf_error(ZF_ERR_UNSUPPORTED, "%s: tensor has %d dimensions (at most %d supported)",
                      path, c.ndim, ZF_TENSOR_MAX_DIMS);
    int is_float = c.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
                   c.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    zf_tensor *t = NULL;
    if (!st) {
        int64_t shape[ZF_TENSOR_MAX_DIMS] = {1};
        int nd = c.ndim ? c.ndim : 1;
        for (int i = 0; i < c.ndim; i++)
            shape[i] = c.dims[i];
        t = zf_tensor_new(is_float ? ZF_DTYPE_F32 : ZF_DTYPE_I32, nd, shape);
        if (!t)
            st = zf_error_prefix(ZF_ERR_NOMEM, "%s: ", path);
    }
    if (!st && is_float) {
        st = ox_const_read_f32(&c, NULL, zf_tensor_f32(t), 1.0f, path);
    } else if (!st) {
        int64_t *tmp = zf_malloc(sizeof(int64_t) * (size_t)(c.count ? c.count : 1));
        if (!tmp)
            st = zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
        if (!st)
            st = ox_const_read_i64(&c, NULL, tmp, c.count, path);
        for (int64_t i = 0; !st && i < c.count; i++) {
            if (tmp[i] < INT32_MIN || tmp[i] > INT32_MAX)
                st = zf_error(ZF_ERR_UNSUPPORTED, "%s: value %lld at index %lld does not fit int32",
                              path, (long long)tmp[i], (long long)i);
            else
                zf_tensor_i32(t)[i] = (int32_t)tmp[i];
        }
        free(tmp);
    }
    protobuf_c_message_free_unpacked(&tp->base, &ox_allocator);
    if (st) {
        zf_tensor_free(t);
        return st;
    }
    *out = t;
    return ZF_OK;
}

zf_status zf_onnx_write_tensor(const char *path, const char *name, const zf_tensor *t)
{
    if (t->dtype != ZF_DTYPE_F32)
        return zf_error(ZF_ERR_ARG, "%s: only float32 tensors can be written as ONNX tensors", path);
    Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
    int64_t dims[ZF_TENSOR_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
        dims[i] = t->shape[i];
    tp.n_dims = (size_t)t->ndim;
    tp.dims = dims;
    tp.has_data_type = 1;
    tp.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tp.name = (char *)(name ? name : "");
    tp.has_raw_data = 1;
    tp.raw_data.len = (size_t)t->size * sizeof(float);
    tp.raw_data.data = t->data;
    size_t n = onnx__tensor_proto__get_packed_size(&tp);
    uint8_t *buf = zf_malloc(n ? n : 1);
    if (!buf)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
    onnx__tensor_proto__pack(&tp, buf);
    FILE *f = fopen(path, "wb");
    if (!f) {
        int e = errno;
        free(buf);
        return zf_error(ZF_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    int ok = fwrite(buf, 1, n, f) == n;
    free(buf);
    if (fclose(f) != 0)
        ok = 0;
    return ok ? ZF_OK : zf_error(ZF_ERR_IO, "%s: write failed", path);
}
