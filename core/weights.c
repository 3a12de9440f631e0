/* Weights of a net: seeded random initialisation, folders of <layer>.weight.npy / .bias.npy in
 * PyTorch's layout, and single-file .safetensors checkpoints. Loaders check every shape and read
 * straight into the net's parameter block. On an error the weights already read stay loaded and
 * the rest are unchanged: callers discard the net. */
#include "zf/alloc.h"
#include "npy_internal.h"
#include "zf/file.h"
#include "zf/io.h"
#include "zf/net.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

/* ---- shapes ---- */

static int has_params(const zf_layer *l) { return l->weight_count > 0; }

/* PyTorch's shape for a layer's weight (bias = 0) or bias (bias = 1); returns ndim. */
static int param_shape(const zf_layer *l, int bias, int64_t shape[4])
{
    if (bias) {
        shape[0] = l->bias_count;
        return 1;
    }
    if (l->op == ZF_OP_CONV) {
        shape[0] = l->out_c;
        shape[1] = l->in_c / (l->groups > 0 ? l->groups : 1);
        shape[2] = l->win.kh;
        shape[3] = l->win.kw;
        return 4;
    }
    if (l->op == ZF_OP_FC) {
        shape[0] = l->out_c;
        shape[1] = zf_layer_in_size(l);
        return 2;
    }
    shape[0] = l->weight_count;
    return 1;
}

static zf_status check_shape(const char *what, const zf_layer *l, int bias, int ndim,
                             const int64_t *shape)
{
    int64_t want[4];
    int wn = param_shape(l, bias, want);
    int same = ndim == wn;
    for (int i = 0; same && i < wn; i++)
        same = shape[i] == want[i];
    if (same)
        return ZF_OK;
    char a[256], b[256];
    return zf_error(ZF_ERR_SHAPE, "%s: %s.%s should have shape %s, got %s", what, l->name,
                    bias ? "bias" : "weight", zf_npy_shape_str(want, wn, a, sizeof a),
                    zf_npy_shape_str(shape, ndim, b, sizeof b));
}

/* Loading and saving need the parameter block in place. */
static zf_status check_finalised(const zf_net *net, const char *what)
{
    for (int i = 0; i < net->n_layers; i++)
        if (has_params(&net->layers[i]) && !net->layers[i].weight)
            return zf_error(ZF_ERR_ARG, "%s: net '%s' is not finalised", what, net->arch);
    return ZF_OK;
}

/* The layer with parameters named `name` (the Caffe-style name), or NULL. */
static zf_layer *param_layer(const zf_net *net, const char *name, size_t len)
{
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (has_params(l) && strlen(l->name) == len && !memcmp(l->name, name, len))
            return l;
    }
    return NULL;
}

/* ---- random initialisation ----
 * Weights are N(0, 0.01^2), biases 0. Each layer's weights are cut into blocks of 65536 values;
 * block b of layer L is filled from its own xoshiro256** generator whose four state words are
 * the first outputs of splitmix64 started at seed ^ FNV-1a-64(L's name) ^ (b * 0xD1B54A32D192ED03).
 * Normal pairs come from Marsaglia's polar form of Box-Muller (no sine or cosine: twice as fast
 * as the trigonometric form, which matters for 61M weights): from two outputs x', y' take
 * x = 2 (x' >> 11) / 2^53 - 1 and y likewise, reject the pair while q = x^2 + y^2 is >= 1 or 0,
 * then f = sqrt(-2 ln(q) / q) and the values are 0.01 (x f) and 0.01 (y f), in double, then
 * rounded to float; an odd block keeps the first of its last pair. A layer's weights depend only
 * on the seed, its name and size; blocks are filled in parallel with the same result; the
 * sequence is reproducible anywhere (tests/fixtures/gen_weights.py has a Python twin). */

#define ZF_RANDOM_BLOCK 65536

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t xoshiro256ss(uint64_t s[4])
{
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static void fill_normal_block(float *out, int64_t n, uint64_t key, uint64_t block)
{
    uint64_t sm = key ^ (block * 0xD1B54A32D192ED03ull), s[4];
    for (int i = 0; i < 4; i++)
        s[i] = zf_splitmix64(&sm);
    const double inv53 = 1.0 / 9007199254740992.0;
    for (int64_t i = 0; i < n; i += 2) {
        double x, y, q;
        do {
            x = 2.0 * ((double)(xoshiro256ss(s) >> 11) * inv53) - 1.0;
            y = 2.0 * ((double)(xoshiro256ss(s) >> 11) * inv53) - 1.0;
            q = x * x + y * y;
        } while (q >= 1.0 || q == 0.0);
        double f = sqrt(-2.0 * log(q) / q);
        out[i] = (float)(0.01 * (x * f));
        if (i + 1 < n)
            out[i + 1] = (float)(0.01 * (y * f));
    }
}

zf_status zf_net_init_random(zf_net *net, uint64_t seed)
{
    zf_status st = check_finalised(net, "random weights");
    if (st)
        return st;
    for (int li = 0; li < net->n_layers; li++) {
        zf_layer *l = &net->layers[li];
        if (!has_params(l))
            continue;
        uint64_t key = seed ^ fnv1a64(l->name);
        int64_t nblocks = (l->weight_count + ZF_RANDOM_BLOCK - 1) / ZF_RANDOM_BLOCK;
        float *w = l->weight;
        int64_t count = l->weight_count;
#pragma omp parallel for schedule(static) if (nblocks > 1)
        for (int64_t b = 0; b < nblocks; b++) {
            int64_t start = b * ZF_RANDOM_BLOCK;
            int64_t n = count - start < ZF_RANDOM_BLOCK ? count - start : ZF_RANDOM_BLOCK;
            fill_normal_block(w + start, n, key, (uint64_t)b);
        }
        if (l->bias_count > 0)
            memset(l->bias, 0, sizeof(float) * (size_t)l->bias_count);
    }
    return ZF_OK;
}

/* ---- folders of .npy ---- */

static zf_status load_npy_param(const char *dir, zf_layer *l, int bias)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s.npy", dir, l->name, bias ? "bias" : "weight");
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT)
        return zf_error(ZF_ERR_IO, "%s: missing (layer %s needs %s.weight.npy and %s.bias.npy)",
                        path, l->name, l->name, l->name);
    FILE *f;
    zf_npy_info info;
    zf_status st = zf_npy_open(path, &f, &info);
    if (st)
        return st;
    if (info.kind != 'f') {
        fclose(f);
        return zf_error(ZF_ERR_FORMAT, "%s: holds '%s' integers; weights must be floats", path,
                        info.descr);
    }
    if ((st = check_shape(path, l, bias, info.ndim, info.shape))) {
        fclose(f);
        return st;
    }
    st = zf_npy_read_f32(f, &info, path, bias ? l->bias : l->weight);
    fclose(f);
    return st;
}

/* Every <x>.weight.npy / <x>.bias.npy in the folder must belong to a layer with parameters:
 * a stray file usually means weights exported for another architecture or naming. */
static zf_status check_npy_dir_names(const zf_net *net, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return zf_error(ZF_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    zf_status st = ZF_OK;
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        const char *suffix[2] = {".weight.npy", ".bias.npy"};
        for (int bias = 0; bias < 2; bias++) {
            size_t sn = strlen(suffix[bias]);
            if (n <= sn || strcmp(e->d_name + n - sn, suffix[bias]))
                continue;
            const zf_layer *l = param_layer(net, e->d_name, n - sn);
            if (!l)
                st = zf_error(ZF_ERR_FORMAT, "%s/%s: %s has no conv or fc layer named '%.*s'", dir,
                              e->d_name, net->arch, (int)(n - sn), e->d_name);
            else if (bias && l->bias_count == 0)
                st = zf_error(ZF_ERR_FORMAT, "%s/%s: layer %s has no bias", dir, e->d_name, l->name);
        }
    }
    closedir(d);
    return st;
}

zf_status zf_net_load_npy_dir(zf_net *net, const char *dir)
{
    zf_status st = check_finalised(net, dir);
    if (!st)
        st = check_npy_dir_names(net, dir);
    for (int i = 0; !st && i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (!has_params(l))
            continue;
        st = load_npy_param(dir, l, 0);
        if (!st && l->bias_count > 0)
            st = load_npy_param(dir, l, 1);
    }
    return st;
}

static zf_status make_dir(const char *dir)
{
    if (mkdir(dir, 0777) == 0)
        return ZF_OK;
    struct stat sb;
    if (errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
        return ZF_OK;
    return zf_error(ZF_ERR_IO, "%s: cannot create folder: %s", dir,
                    errno == EEXIST ? "a file of that name exists" : strerror(errno));
}

zf_status zf_net_save_npy_dir(const zf_net *net, const char *dir)
{
    zf_status st = check_finalised(net, dir);
    if (!st)
        st = make_dir(dir);
    for (int i = 0; !st && i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if (!has_params(l))
            continue;
        for (int bias = 0; !st && bias < 2; bias++) {
            if (bias && l->bias_count == 0)
                continue;
            char path[4096];
            int64_t shape[4];
            int nd = param_shape(l, bias, shape);
            snprintf(path, sizeof path, "%s/%s.%s.npy", dir, l->name, bias ? "bias" : "weight");
            st = zf_npy_write_raw(path, ZF_DTYPE_F32, bias ? l->bias : l->weight, nd, shape);
        }
    }
    return st;
}

/* ---- safetensors ----
 * An 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a multiple
 * of 8) mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into
 * the data that follows) plus an optional "__metadata__" of strings, then the data. Tensors are
 * named as PyTorch's state_dict would name them with our layer names: conv1.weight, fc8.bias. */

#define ST_MAX_HEADER 100000000 /* the reference implementation's limit */
#define ZF_ST_EXTRA_PREFIX "momentum."

/* Writes the net's tensors (and, when `extra` is given, the same layout again from `extra` with
 * names prefixed by "momentum.") with metadata pairs meta_kv (NULL-terminated key, value, ...).
 * The file appears complete or not at all (zf_file), and its "zfviz.writer" key marks it as ours. */
zf_status zf_net_save_safetensors_ex(const zf_net *net, const char *path, const char *const *meta_kv,
                                     const float *extra)
{
    if (check_finalised(net, path))
        return ZF_ERR_ARG;
    json_t *root = json_object(), *meta = json_object();
    int bad = !root || !meta || json_object_set_new(root, "__metadata__", meta) ||
              json_object_set_new(meta, "arch", json_string(net->arch)) ||
              json_object_set_new(meta, "format", json_string("pt")) ||
              json_object_set_new(meta, "zfviz.writer", json_string("zfviz"));
    for (int i = 0; !bad && meta_kv && meta_kv[i]; i += 2)
        bad = !meta_kv[i + 1] || json_object_set_new(meta, meta_kv[i], json_string(meta_kv[i + 1]));
    if (bad) {
        json_decref(root);
        return zf_error(ZF_ERR_NOMEM, "%s: cannot make the header", path);
    }
    int64_t off = 0;
    for (int pass = 0; pass < 1 + (extra != NULL); pass++)
        for (int i = 0; i < net->n_layers; i++) {
            const zf_layer *l = &net->layers[i];
            if (!has_params(l))
                continue;
            for (int bias = 0; bias < 2; bias++) {
                if (bias && l->bias_count == 0)
                    continue;
                int64_t shape[4];
                int nd = param_shape(l, bias, shape);
                int64_t bytes = 4 * (bias ? l->bias_count : l->weight_count);
                char name[96];
                snprintf(name, sizeof name, "%s%s.%s", pass ? ZF_ST_EXTRA_PREFIX : "", l->name,
                         bias ? "bias" : "weight");
                json_t *t = json_object(), *sh = json_array(), *offs = json_array();
                int bad2 = !t || !sh || !offs;
                for (int k = 0; !bad2 && k < nd; k++)
                    bad2 = json_array_append_new(sh, json_integer(shape[k]));
                bad2 = bad2 || json_array_append_new(offs, json_integer(off)) ||
                       json_array_append_new(offs, json_integer(off + bytes)) ||
                       json_object_set_new(t, "dtype", json_string("F32"));
                if (bad2 || json_object_set_new(t, "shape", sh) ||
                    json_object_set_new(t, "data_offsets", offs) || json_object_set_new(root, name, t)) {
                    json_decref(root);
                    return zf_error(ZF_ERR_NOMEM, "%s: out of memory for the header", path);
                }
                off += bytes;
            }
        }
    char *hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!hdr)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory for the header", path);
    size_t hn = strlen(hdr);
    size_t padded = (hn + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    zf_file *f;
    zf_status st = zf_file_open(path, ZF_FILE_SYNC, &f);
    if (st) {
        free(hdr);
        return st;
    }
    if (!st)
        st = zf_file_write(f, len8, 8);
    if (!st)
        st = zf_file_write(f, hdr, hn);
    if (!st)
        st = zf_file_write(f, "        ", padded - hn);
    free(hdr);
    for (int pass = 0; pass < 1 + (extra != NULL); pass++)
        for (int i = 0; !st && i < net->n_layers; i++) {
            const zf_layer *l = &net->layers[i];
            if (!has_params(l))
                continue;
            const float *w = pass ? extra + (l->weight - net->params) : l->weight;
            st = zf_file_write(f, w, 4 * (size_t)l->weight_count);
            if (!st && l->bias_count) {
                const float *b = pass ? extra + (l->bias - net->params) : l->bias;
                st = zf_file_write(f, b, 4 * (size_t)l->bias_count);
            }
        }
    if (st) {
        zf_file_discard(f);
        return st;
    }
    return zf_file_commit(f);
}

zf_status zf_net_save_safetensors(const zf_net *net, const char *path)
{
    return zf_net_save_safetensors_ex(net, path, NULL, NULL);
}

typedef struct {
    const char *name;
    zf_layer *layer;
    int bias;
    int extra; /* a tensor of the second block (momentum.<layer>.weight) */
    int dtype_size;
    char dtype[8];
    int64_t begin, end;
} st_entry;

static int entry_cmp(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int dtype_size(const char *d)
{
    if (!strcmp(d, "F32"))
        return 4;
    if (!strcmp(d, "F16") || !strcmp(d, "BF16"))
        return 2;
    if (!strcmp(d, "F64"))
        return 8;
    return 0;
}

/* Checks one tensor's entry against the data size and the layer it names. */
static zf_status parse_entry(const char *path, const zf_net *net, const char *key, json_t *v,
                             int64_t data_size, st_entry *e)
{
    e->name = key;
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(sh) || !json_is_array(offs) ||
        json_array_size(offs) != 2 || !json_is_integer(json_array_get(offs, 0)) ||
        !json_is_integer(json_array_get(offs, 1)) || json_array_size(sh) > 8)
        return zf_error(ZF_ERR_FORMAT, "%s: bad safetensors entry for '%s'", path, key);
    snprintf(e->dtype, sizeof e->dtype, "%s", json_string_value(dt));
    e->dtype_size = dtype_size(e->dtype);
    if (!e->dtype_size)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16, BF16 and F64 "
                        "are supported)", path, key, json_string_value(dt));
    int64_t shape[8], count = 1;
    int nd = (int)json_array_size(sh);
    for (int i = 0; i < nd; i++) {
        json_t *d = json_array_get(sh, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0 ||
            (json_integer_value(d) && count > INT64_MAX / 16 / json_integer_value(d)))
            return zf_error(ZF_ERR_FORMAT, "%s: bad shape for tensor '%s'", path, key);
        shape[i] = json_integer_value(d);
        count *= shape[i];
    }
    e->begin = json_integer_value(json_array_get(offs, 0));
    e->end = json_integer_value(json_array_get(offs, 1));
    if (e->begin < 0 || e->end < e->begin || e->end > data_size ||
        e->end - e->begin != count * e->dtype_size)
        return zf_error(ZF_ERR_FORMAT, "%s: tensor '%s' has data offsets [%lld, %lld] that do not "
                        "hold its %lld values of %s within the %lld bytes of data", path, key,
                        (long long)e->begin, (long long)e->end, (long long)count, e->dtype,
                        (long long)data_size);
    size_t pn = strlen(ZF_ST_EXTRA_PREFIX);
    if (!strncmp(key, ZF_ST_EXTRA_PREFIX, pn)) {
        e->extra = 1;
        key += pn;
    }
    size_t kn = strlen(key);
    if (kn > 7 && !strcmp(key + kn - 7, ".weight")) {
        e->bias = 0;
        e->layer = param_layer(net, key, kn - 7);
    } else if (kn > 5 && !strcmp(key + kn - 5, ".bias")) {
        e->bias = 1;
        e->layer = param_layer(net, key, kn - 5);
    }
    if (!e->layer || (e->bias && e->layer->bias_count == 0))
        return zf_error(ZF_ERR_FORMAT, "%s: tensor '%s' matches no parameter of %s (expected "
                        "names like conv1.weight, fc8.bias)", path, key, net->arch);
    char what[4096];
    snprintf(what, sizeof what, "%s", path);
    return check_shape(what, e->layer, e->bias, nd, shape);
}

static zf_status read_tensor(FILE *f, const char *path, const st_entry *e, int64_t data_start,
                             const zf_net *net, float *extra)
{
    float *dst = e->bias ? e->layer->bias : e->layer->weight;
    if (e->extra && !extra)
        return ZF_OK;
    if (e->extra)
        dst = extra + (dst - net->params);
    int64_t count = (e->end - e->begin) / e->dtype_size;
    if (fseeko(f, (off_t)(data_start + e->begin), SEEK_SET) != 0)
        return zf_error(ZF_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    if (e->dtype_size == 4) {
        if (fread(dst, 4, (size_t)count, f) != (size_t)count)
            return zf_error(ZF_ERR_IO, "%s: cannot read tensor '%s'", path, e->name);
        return ZF_OK;
    }
    enum { CHUNK = 8192 };
    unsigned char buf[CHUNK * 8];
    for (int64_t done = 0; done < count; done += CHUNK) {
        int64_t n = count - done < CHUNK ? count - done : CHUNK;
        if (fread(buf, (size_t)e->dtype_size, (size_t)n, f) != (size_t)n)
            return zf_error(ZF_ERR_IO, "%s: cannot read tensor '%s'", path, e->name);
        for (int64_t i = 0; i < n; i++) {
            if (e->dtype_size == 8) {
                double d;
                memcpy(&d, buf + 8 * i, 8);
                dst[done + i] = (float)d;
            } else {
                uint16_t h;
                memcpy(&h, buf + 2 * i, 2);
                dst[done + i] = e->dtype[0] == 'B' ? zf_bf16_to_float(h) : zf_half_to_float(h);
            }
        }
    }
    return ZF_OK;
}

/* Reads a safetensors stream: the metadata strings go to meta_fn (when given), the tensors into
 * net (when given) and, for momentum.* tensors, into extra at the same offsets as net->params. */
static zf_status st_read(FILE *f, const char *path, zf_net *net, float *extra,
                         void (*meta_fn)(void *ctx, const char *key, const char *value), void *ctx)
{
    zf_status st = ZF_OK;
    char *hdr = NULL;
    json_t *root = NULL;
    st_entry *ents = NULL;
    unsigned char len8[8];
    struct {
        int64_t st_size;
    } sb = {0};
    if (fseeko(f, 0, SEEK_END) == 0)
        sb.st_size = (int64_t)ftello(f);
    if (fseeko(f, 0, SEEK_SET) != 0 || fread(len8, 1, 8, f) != 8) {
        st = zf_error(ZF_ERR_FORMAT, "%s: not a safetensors file (too short)", path);
        goto done;
    }
    uint64_t hn = 0;
    for (int i = 0; i < 8; i++)
        hn |= (uint64_t)len8[i] << (8 * i);
    if (hn > ST_MAX_HEADER) {
        st = zf_error(ZF_ERR_FORMAT, "%s: not a safetensors file (header length %llu is more than "
                      "the %d a header may have)", path, (unsigned long long)hn, ST_MAX_HEADER);
        goto done;
    }
    if ((int64_t)(8 + hn) > (int64_t)sb.st_size) {
        st = zf_error(ZF_ERR_FORMAT, "%s: not a safetensors file (header length %llu for a file "
                      "of %lld bytes)", path, (unsigned long long)hn, (long long)sb.st_size);
        goto done;
    }
    hdr = zf_malloc(hn + 1);
    if (!hdr) {
        st = zf_error(ZF_ERR_NOMEM, "%s: out of memory for the header", path);
        goto done;
    }
    if (fread(hdr, 1, hn, f) != hn) {
        st = zf_error(ZF_ERR_IO, "%s: cannot read the header", path);
        goto done;
    }
    if (hn == 0 || hdr[0] != '{') {
        st = zf_error(ZF_ERR_FORMAT, "%s: not a safetensors file (header is not a JSON object)",
                      path);
        goto done;
    }
    json_error_t jerr;
    root = json_loadb(hdr, hn, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        st = zf_error(ZF_ERR_FORMAT, "%s: bad safetensors header: %s (at byte %d)", path,
                      root ? "not an object" : jerr.text, root ? 0 : jerr.position);
        goto done;
    }
    int64_t data_start = 8 + (int64_t)hn, data_size = sb.st_size - data_start;
    size_t n = 0, cap = json_object_size(root);
    ents = zf_calloc(cap ? cap : 1, sizeof *ents);
    if (!ents) {
        st = zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            const char *mk;
            json_t *mv;
            int ok = json_is_object(v);
            json_object_foreach(v, mk, mv) ok = ok && json_is_string(mv);
            if (!ok) {
                st = zf_error(ZF_ERR_FORMAT, "%s: __metadata__ is not a map of strings", path);
                goto done;
            }
            if (meta_fn)
                json_object_foreach(v, mk, mv) meta_fn(ctx, mk, json_string_value(mv));
            continue;
        }
        if (!net)
            continue;
        if ((st = parse_entry(path, net, key, v, data_size, &ents[n])))
            goto done;
        for (size_t j = 0; j < n; j++)
            if (ents[j].layer == ents[n].layer && ents[j].bias == ents[n].bias &&
                ents[j].extra == ents[n].extra) {
                st = zf_error(ZF_ERR_FORMAT, "%s: two tensors for %s.%s", path, ents[n].layer->name,
                              ents[n].bias ? "bias" : "weight");
                goto done;
            }
        n++;
    }
    if (!net)
        goto done;
    /* As the reference reader: the tensors tile the data exactly, in offset order. */
    qsort(ents, n, sizeof *ents, entry_cmp);
    int64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (ents[i].begin != at) {
            st = zf_error(ZF_ERR_FORMAT, "%s: tensor '%s' starts at %lld where %lld was expected "
                          "(overlapping or gapped data)", path, ents[i].name,
                          (long long)ents[i].begin, (long long)at);
            goto done;
        }
        at = ents[i].end;
    }
    if (at != data_size) {
        st = zf_error(ZF_ERR_FORMAT, "%s: the tensors hold %lld bytes but the file has %lld after "
                      "its header", path, (long long)at, (long long)data_size);
        goto done;
    }
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if (!has_params(l))
            continue;
        for (int x = 0; x < 1 + (extra != NULL); x++)
            for (int bias = 0; bias < 1 + (l->bias_count > 0); bias++) {
                size_t j = 0;
                while (j < n && !(ents[j].layer == l && ents[j].bias == bias && ents[j].extra == x))
                    j++;
                if (j == n) {
                    st = zf_error(ZF_ERR_FORMAT, "%s: no tensor '%s%s.%s' (%s needs a weight and a "
                                  "bias for every conv and fc layer)", path, x ? ZF_ST_EXTRA_PREFIX : "",
                                  l->name, bias ? "bias" : "weight", net->arch);
                    goto done;
                }
            }
    }
    for (size_t i = 0; i < n && !st; i++)
        st = read_tensor(f, path, &ents[i], data_start, net, extra);
done:
    free(ents);
    json_decref(root);
    free(hdr);
    return st;
}

zf_status zf_net_load_safetensors_ex(zf_net *net, const char *path, float *extra)
{
    if (check_finalised(net, path))
        return ZF_ERR_ARG;
    FILE *f = fopen(path, "rb");
    if (!f)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    zf_status st = st_read(f, path, net, extra, NULL, NULL);
    fclose(f);
    return st;
}

zf_status zf_net_load_safetensors(zf_net *net, const char *path)
{
    return zf_net_load_safetensors_ex(net, path, NULL);
}

zf_status zf_safetensors_stream_read(FILE *f, const char *name, zf_net *net, float *extra,
                                     void (*meta_fn)(void *ctx, const char *key, const char *value),
                                     void *ctx)
{
    if (net && check_finalised(net, name))
        return ZF_ERR_ARG;
    return st_read(f, name, net, extra, meta_fn, ctx);
}



/* ---- dispatch ---- */

zf_status zf_net_load_weights(zf_net *net, const char *spec)
{
    if (!spec || !*spec)
        return zf_error(ZF_ERR_ARG, "no weights given (random:SEED, a folder of .npy files or a "
                        ".safetensors file)");
    if (!strncmp(spec, "random:", 7)) {
        const char *s = spec + 7;
        char *end;
        errno = 0;
        unsigned long long seed = strtoull(s, &end, 10);
        if (*s < '0' || *s > '9' || *end || errno)
            return zf_error(ZF_ERR_ARG, "%s: bad seed (random:SEED takes a non-negative integer)",
                            spec);
        return zf_net_init_random(net, (uint64_t)seed);
    }
    struct stat sb;
    if (stat(spec, &sb) != 0)
        return zf_error(ZF_ERR_IO, "%s: cannot open weights: %s", spec, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return zf_net_load_npy_dir(net, spec);
    size_t n = strlen(spec);
    if (n > 12 && !strcmp(spec + n - 12, ".safetensors"))
        return zf_net_load_safetensors(net, spec);
    return zf_error(ZF_ERR_ARG, "%s: weights must be random:SEED, a folder of .npy files or a "
                    ".safetensors file", spec);
}
