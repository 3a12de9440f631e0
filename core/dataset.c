/* Training data in memory: IDX files (Fashion-MNIST) read through zlib, image folders decoded and
 * stored small, and the augmented, normalised batches the trainer feeds to a net. */
#include "zf/alloc.h"
#include "zf/dataset.h"
#include "image_internal.h"
#include "util_internal.h"
#include "zf/input.h"
#include "zf/io.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

/* LAPACK's symmetric eigensolver, from OpenBLAS (which carries LAPACK). gfortran passes the length
 * of each character argument after the others. */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                   double *w, double *work, const int *lwork, int *info, size_t jobz_len,
                   size_t uplo_len);

static const char *const fashion_classes[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                 "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                                                 "Ankle boot"};

/* ---- datasets ---- */

zf_dataset *zf_dataset_new(int64_t n, int c, int h, int w, int n_classes)
{
    if (n < 1 || (c != 1 && c != 3) || h < 1 || w < 1 || n_classes < 1) {
        zf_error(ZF_ERR_ARG, "dataset of %lld images of %d x %d x %d, %d classes: bad sizes",
                 (long long)n, c, h, w, n_classes);
        return NULL;
    }
    size_t per = (size_t)c * h * w;
    if ((uint64_t)n > SIZE_MAX / per / 2) {
        zf_error(ZF_ERR_NOMEM, "dataset of %lld images of %d x %d x %d is too large", (long long)n,
                 c, h, w);
        return NULL;
    }
    zf_dataset *ds = zf_calloc(1, sizeof *ds);
    if (ds) {
        ds->pixels = zf_calloc((size_t)n, per);
        ds->labels = zf_calloc((size_t)n, sizeof *ds->labels);
        ds->class_names = zf_calloc((size_t)n_classes, sizeof *ds->class_names);
    }
    if (!ds || !ds->pixels || !ds->labels || !ds->class_names) {
        zf_dataset_free(ds);
        zf_error(ZF_ERR_NOMEM, "out of memory for %lld images of %d x %d x %d", (long long)n, c,
                 h, w);
        return NULL;
    }
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->n_classes = n_classes;
    return ds;
}

void zf_dataset_free(zf_dataset *ds)
{
    if (!ds)
        return;
    if (ds->class_names)
        for (int k = 0; k < ds->n_classes; k++)
            free(ds->class_names[k]);
    free(ds->class_names);
    free(ds->pixels);
    free(ds->labels);
    free(ds);
}

static zf_status set_name(zf_dataset *ds, int k, const char *name)
{
    ds->class_names[k] = zf_strdup(name);
    if (!ds->class_names[k])
        return zf_error(ZF_ERR_NOMEM, "out of memory for class names");
    return ZF_OK;
}

zf_status zf_dataset_slice(const zf_dataset *ds, int64_t first, int64_t count, zf_dataset **out)
{
    *out = NULL;
    if (first < 0 || count < 1 || first > ds->n || count > ds->n - first)
        return zf_error(ZF_ERR_ARG, "%s: rows %lld..%lld are not within its %lld images",
                        ds->source, (long long)first, (long long)(first + count),
                        (long long)ds->n);
    zf_dataset *s = zf_dataset_new(count, ds->c, ds->h, ds->w, ds->n_classes);
    if (!s)
        return zf_error_prefix(ZF_ERR_NOMEM, "%s: ", ds->source);
    size_t per = (size_t)ds->c * ds->h * ds->w;
    memcpy(s->pixels, ds->pixels + (size_t)first * per, (size_t)count * per);
    memcpy(s->labels, ds->labels + first, (size_t)count * sizeof *s->labels);
    for (int k = 0; k < ds->n_classes; k++)
        if (ds->class_names[k] && set_name(s, k, ds->class_names[k])) {
            zf_dataset_free(s);
            return ZF_ERR_NOMEM;
        }
    snprintf(s->source, sizeof s->source, "%.460s[%lld:%lld]", ds->source, (long long)first,
             (long long)(first + count));
    *out = s;
    return ZF_OK;
}

/* ---- IDX files ---- */

/* zlib's message without the "path: " it puts in front. */
static const char *gz_message(gzFile f, const char *path, int *err)
{
    const char *msg = gzerror(f, err);
    size_t n = strlen(path);
    if (!strncmp(msg, path, n) && !strncmp(msg + n, ": ", 2))
        msg += n + 2;
    return msg;
}

/* Reads exactly n bytes; a short read is truncation (or a damaged gzip stream). `what` names the
 * part being read for the message. */
static zf_status gz_read_all(gzFile f, const char *path, void *buf, size_t n, const char *what)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < ((size_t)1 << 26) ? n - got : ((size_t)1 << 26);
        int r = gzread(f, p + got, (unsigned)want);
        int err;
        if (r < 0)
            return zf_error(ZF_ERR_FORMAT, "%s: corrupt gzip stream: %s", path,
                            gz_message(f, path, &err));
        if (r == 0) {
            const char *msg = gz_message(f, path, &err);
            return zf_error(ZF_ERR_FORMAT, "%s: truncated: %s needs %zu bytes, the file ends after "
                            "%zu%s%s", path, what, n, got, err != Z_OK ? ": " : "",
                            err != Z_OK ? msg : "");
        }
        got += (size_t)r;
    }
    return ZF_OK;
}

/* After the declared data: the file must end there, and a gzip stream's checksum (read at its
 * end) must hold. */
static zf_status gz_expect_end(gzFile f, const char *path, const char *what)
{
    uint8_t extra;
    int r = gzread(f, &extra, 1);
    int err = Z_OK;
    const char *msg = gz_message(f, path, &err);
    if (r < 0 || (err != Z_OK && err != Z_STREAM_END))
        return zf_error(ZF_ERR_FORMAT, "%s: corrupt or truncated gzip stream: %s", path, msg);
    if (r > 0)
        return zf_error(ZF_ERR_FORMAT, "%s: data after the %s the header declares (wrong counts "
                        "in the header?)", path, what);
    return ZF_OK;
}

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Opens an IDX file (gzip'd or plain: zlib reads both) and checks its magic number: unsigned
 * bytes in `ndims` dimensions, whose sizes go into dims. */
static zf_status idx_open(const char *path, int ndims, uint32_t *dims, gzFile *out)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return zf_error(ZF_ERR_IO, "%s: not a regular file", path);
    gzFile f = gzopen(path, "rb");
    if (!f)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path,
                        errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1 << 18);
    uint8_t head[4 + 4 * 3];
    zf_status st = gz_read_all(f, path, head, 4, "the IDX magic number");
    uint32_t magic = st ? 0 : be32(head);
    uint32_t want = 0x00000800u | (uint32_t)ndims;
    if (!st && (head[0] || head[1]))
        st = zf_error(ZF_ERR_FORMAT, "%s: not an IDX file (magic number 0x%08x, expected 0x%08x)",
                      path, magic, want);
    else if (!st && head[2] != 0x08)
        st = zf_error(ZF_ERR_FORMAT, "%s: IDX element type 0x%02x (magic number 0x%08x); only "
                      "unsigned bytes (0x08, magic 0x%08x) are supported", path, head[2], magic,
                      want);
    else if (!st && head[3] != ndims)
        st = zf_error(ZF_ERR_FORMAT, "%s: IDX file of %d dimensions (magic number 0x%08x) where "
                      "%s needs %d (0x%08x)", path, head[3], magic,
                      ndims == 3 ? "an image file" : "a label file", ndims, want);
    if (!st)
        st = gz_read_all(f, path, head + 4, 4 * (size_t)ndims, "the IDX header");
    if (st) {
        gzclose_r(f);
        return st;
    }
    for (int d = 0; d < ndims; d++)
        dims[d] = be32(head + 4 + 4 * d);
    *out = f;
    return ZF_OK;
}

/* Images no larger than this per side: the IDX header is checked before anything is allocated. */
#define ZF_IDX_MAX_SIDE 65536

zf_status zf_dataset_load_idx(const char *images, const char *labels, zf_dataset **out)
{
    *out = NULL;
    uint32_t idim[3], ldim[1];
    gzFile fi, fl;
    zf_status st = idx_open(images, 3, idim, &fi);
    if (st)
        return st;
    st = idx_open(labels, 1, ldim, &fl);
    if (st) {
        gzclose_r(fi);
        return st;
    }
    if (idim[0] == 0 || idim[1] == 0 || idim[2] == 0 || idim[1] > ZF_IDX_MAX_SIDE ||
        idim[2] > ZF_IDX_MAX_SIDE)
        st = zf_error(ZF_ERR_FORMAT, "%s: header declares %u images of %u x %u pixels", images,
                      idim[0], idim[1], idim[2]);
    else if (ldim[0] != idim[0])
        st = zf_error(ZF_ERR_FORMAT, "%s: %u labels, but %s holds %u images", labels, ldim[0],
                      images, idim[0]);
    zf_dataset *ds = NULL;
    if (!st) {
        ds = zf_dataset_new(idim[0], 1, (int)idim[1], (int)idim[2], 1);
        if (!ds)
            st = zf_error_prefix(ZF_ERR_NOMEM, "%s: ", images);
    }
    uint8_t *lab = NULL;
    if (!st) {
        lab = zf_malloc(idim[0]);
        if (!lab)
            st = zf_error(ZF_ERR_NOMEM, "%s: out of memory", labels);
    }
    char what[96];
    snprintf(what, sizeof what, "%u images of %u x %u", idim[0], idim[1], idim[2]);
    if (!st)
        st = gz_read_all(fi, images, ds->pixels, (size_t)idim[0] * idim[1] * idim[2], what);
    if (!st)
        st = gz_expect_end(fi, images, what);
    snprintf(what, sizeof what, "%u labels", ldim[0]);
    if (!st)
        st = gz_read_all(fl, labels, lab, idim[0], what);
    if (!st)
        st = gz_expect_end(fl, labels, what);
    gzclose_r(fi);
    gzclose_r(fl);
    if (st) {
        free(lab);
        zf_dataset_free(ds);
        return st;
    }
    int max = 0;
    for (uint32_t i = 0; i < idim[0]; i++) {
        ds->labels[i] = lab[i];
        if (lab[i] > max)
            max = lab[i];
    }
    free(lab);
    /* Classes 0..max, named by number; the one class zf_dataset_new made is replaced. */
    free(ds->class_names);
    ds->n_classes = max + 1;
    ds->class_names = zf_calloc((size_t)ds->n_classes, sizeof *ds->class_names);
    if (!ds->class_names) {
        ds->n_classes = 0;
        zf_dataset_free(ds);
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", labels);
    }
    for (int k = 0; k < ds->n_classes; k++) {
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        if (set_name(ds, k, num)) {
            zf_dataset_free(ds);
            return ZF_ERR_NOMEM;
        }
    }
    snprintf(ds->source, sizeof ds->source, "%s", images);
    *out = ds;
    return ZF_OK;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

zf_status zf_dataset_load_fashion_mnist(const char *dir, int train, zf_dataset **out)
{
    *out = NULL;
    if (!dir) {
        dir = getenv("ZFVIZ_FASHION_MNIST");
        if (!dir || !*dir)
            dir = ZF_FASHION_MNIST_DIR;
    }
    const char *set = train ? "train" : "t10k";
    char paths[2][4096];
    const char *kinds[2] = {"images-idx3", "labels-idx1"};
    for (int k = 0; k < 2; k++) {
        snprintf(paths[k], sizeof paths[k], "%s/%s-%s-ubyte.gz", dir, set, kinds[k]);
        if (file_exists(paths[k]))
            continue;
        snprintf(paths[k], sizeof paths[k], "%s/%s-%s-ubyte", dir, set, kinds[k]);
        if (!file_exists(paths[k]))
            return zf_error(ZF_ERR_IO, "%s: no Fashion-MNIST %s file %s-%s-ubyte[.gz] (install "
                            "Debian's dataset-fashion-mnist or point $ZFVIZ_FASHION_MNIST at the "
                            "folder)", dir, train ? "training" : "test", set, kinds[k]);
    }
    zf_dataset *ds;
    zf_status st = zf_dataset_load_idx(paths[0], paths[1], &ds);
    if (st)
        return st;
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] >= 10) {
            st = zf_error(ZF_ERR_FORMAT, "%s: label %d of image %lld is not a Fashion-MNIST class "
                          "(0 to 9)", paths[1], (int)ds->labels[i], (long long)i);
            zf_dataset_free(ds);
            return st;
        }
    /* Every class gets its name even if this file lacks some classes. */
    char **names = zf_calloc(10, sizeof *names);
    if (!names) {
        zf_dataset_free(ds);
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", paths[1]);
    }
    for (int k = 0; k < ds->n_classes; k++)
        free(ds->class_names[k]);
    free(ds->class_names);
    ds->class_names = names;
    ds->n_classes = 10;
    for (int k = 0; k < 10; k++)
        if (set_name(ds, k, fashion_classes[k])) {
            zf_dataset_free(ds);
            return ZF_ERR_NOMEM;
        }
    *out = ds;
    return ZF_OK;
}

/* ---- image folders ---- */

typedef struct {
    char **v;
    size_t n, cap;
} str_list;

static int str_push(str_list *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = zf_realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = zf_strdup(s);
    if (!l->v[l->n])
        return -1;
    l->n++;
    return 0;
}

static void str_free(str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "a/b" into buf; a path too long for it is an error. */
static zf_status join_path(char *buf, size_t size, const char *a, const char *b)
{
    int n = snprintf(buf, size, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= size)
        return zf_error(ZF_ERR_ARG, "%s/%s: path too long", a, b);
    return ZF_OK;
}

/* The names in `dir` (sorted, byte order) that are directories: the classes. */
static zf_status list_dirs(const char *dir, str_list *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return zf_error(ZF_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    char path[4096];
    zf_status st = ZF_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        struct stat sb;
        if ((st = join_path(path, sizeof path, dir, e->d_name)))
            break;
        if (stat(path, &sb) != 0) {
            st = zf_error(ZF_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
            break;
        }
        if (!S_ISDIR(sb.st_mode))
            continue;
        if (str_push(out, e->d_name)) {
            st = zf_error(ZF_ERR_NOMEM, "%s: out of memory listing the folder", dir);
            break;
        }
    }
    closedir(d);
    if (st)
        return st;
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return ZF_OK;
}

/* Decodes `path` and stores it resized and centre-cropped to s x s, interleaved RGB. */
static zf_status load_one(uint8_t *dst, const char *path, int s, float *buf)
{
    zf_image *img;
    zf_status st = zf_image_load(path, &img);
    if (st)
        return st;
    zf_preproc pre = {.order = ZF_COLOR_RGB, .scale = 255.0f, .mean = {0, 0, 0},
                      .std = {1, 1, 1}, .resize = ZF_RESIZE_SHORT_CROP, .resize_short = s};
    st = zf_image_to_input(buf, img, &pre, s, s);
    zf_image_free(img);
    if (st)
        return zf_error_prefix(st, "%s: ", path);
    size_t plane = (size_t)s * s;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) {
            float v = buf[c * plane + p];
            dst[3 * p + c] = (uint8_t)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)(v + 0.5f));
        }
    return ZF_OK;
}

zf_status zf_dataset_load_folder_ex(const char *dir, int store_short, zf_dataset_progress progress,
                                    void *progress_ctx, zf_dataset **out)
{
    *out = NULL;
    if (store_short < 1 || store_short > 4096)
        return zf_error(ZF_ERR_ARG, "%s: stored size %d px is out of range (1 to 4096)", dir,
                        store_short);
    str_list classes = {0}, files = {0};
    int32_t *labels = NULL;
    size_t cap_labels = 0;
    zf_dataset *ds = NULL;
    zf_status st = list_dirs(dir, &classes);
    if (!st && classes.n == 0)
        st = zf_error(ZF_ERR_FORMAT, "%s: no class sub-folders (one folder of images per class "
                      "expected)", dir);
    if (!st && classes.n > INT32_MAX)
        st = zf_error(ZF_ERR_UNSUPPORTED, "%s: too many class folders", dir);
    char path[4096];
    for (size_t k = 0; !st && k < classes.n; k++) {
        size_t before = files.n;
        /* A class's images anywhere under its folder, found as every command finds images
         * (zf_images_walk), in byte order of their paths. */
        char **names = NULL;
        int64_t n_names = 0, cap_names = 0;
        st = join_path(path, sizeof path, dir, classes.v[k]);
        if (!st)
            st = zf_images_walk(path, &names, &n_names, &cap_names);
        if (!st && n_names > 1)
            qsort(names, (size_t)n_names, sizeof *names, cmp_str);
        for (int64_t i = 0; !st && i < n_names; i++)
            if (str_push(&files, names[i]))
                st = zf_error(ZF_ERR_NOMEM, "%s: out of memory listing images", dir);
        zf_paths_free(names, n_names);
        if (!st && files.n == before)
            st = zf_error(ZF_ERR_FORMAT, "%s: class folder holds no JPEG or PNG images (*.jpg, "
                          "*.jpeg, *.png, searched recursively)", path);
        if (!st && files.n > cap_labels) {
            size_t cap = files.cap;
            int32_t *l = zf_realloc(labels, cap * sizeof *l);
            if (!l)
                st = zf_error(ZF_ERR_NOMEM, "%s: out of memory listing images", dir);
            else {
                labels = l;
                cap_labels = cap;
            }
        }
        for (size_t i = before; !st && i < files.n; i++)
            labels[i] = (int32_t)k;
    }
    if (!st) {
        ds = zf_dataset_new((int64_t)files.n, 3, store_short, store_short, (int)classes.n);
        if (!ds)
            st = zf_error_prefix(ZF_ERR_NOMEM, "%s: ", dir);
    }
    for (size_t k = 0; !st && k < classes.n; k++)
        st = set_name(ds, (int)k, classes.v[k]);
    if (!st)
        memcpy(ds->labels, labels, files.n * sizeof *labels);
    /* Decoding in chunks, in parallel within each: between chunks the caller hears of progress
     * and an interrupt is noticed. The first failure in file order is the one reported; the error
     * message is thread-local, so the failing thread copies it out. */
    const int64_t chunk = 256;
    size_t per = (size_t)3 * store_short * store_short;
    for (int64_t c0 = 0; !st && c0 < (int64_t)files.n; c0 += chunk) {
        int64_t c1 = c0 + chunk < (int64_t)files.n ? c0 + chunk : (int64_t)files.n;
        int64_t bad = INT64_MAX;
        zf_status bad_st = ZF_OK;
        char bad_msg[1024] = "";
        #pragma omp parallel
        {
            /* taken by a thread when it gets its first image, so that one left without work
             * allocates nothing (a failure here is then always one that is reported) */
            float *buf = NULL;
            #pragma omp for schedule(dynamic, 1)
            for (int64_t i = c0; i < c1; i++) {
                if (!buf)
                    buf = zf_malloc(sizeof(float) * per);
                zf_status s1 = buf ? load_one(ds->pixels + (size_t)i * per, files.v[i],
                                              store_short, buf)
                                   : zf_error(ZF_ERR_NOMEM, "%s: out of memory", files.v[i]);
                if (s1) {
                    #pragma omp critical(zf_dataset_folder_error)
                    if (i < bad) {
                        bad = i;
                        bad_st = s1;
                        snprintf(bad_msg, sizeof bad_msg, "%s", zf_last_error());
                    }
                }
            }
            free(buf);
        }
        if (bad_st)
            st = zf_error(bad_st, "%s", bad_msg);
        else if (zf_interrupted)
            st = zf_error(ZF_ERR_INTERRUPTED, "%s: interrupted after %lld of %zu images", dir,
                          (long long)c1, files.n);
        else if (progress && progress(progress_ctx, c1, (int64_t)files.n))
            st = zf_error(ZF_ERR_INTERRUPTED, "%s: stopped after %lld of %zu images", dir,
                          (long long)c1, files.n);
    }
    str_free(&classes);
    str_free(&files);
    free(labels);
    if (st) {
        zf_dataset_free(ds);
        return st;
    }
    snprintf(ds->source, sizeof ds->source, "%s", dir);
    *out = ds;
    return ZF_OK;
}

zf_status zf_dataset_load_folder(const char *dir, int store_short, zf_dataset **out)
{
    return zf_dataset_load_folder_ex(dir, store_short, NULL, NULL, out);
}

/* ---- counter-based random numbers ----
 * SplitMix64's output function applied to a counter: draw k of the stream with key `key` depends
 * on (key, k) alone, so any image's or step's numbers can be made in any order on any thread. */

/* A stream key for (seed, what, id); `what` keeps the batch and shuffle streams apart. */
static uint64_t rng_key(uint64_t seed, uint64_t what, uint64_t id)
{
    return zf_mix64(zf_mix64(seed + what * ZF_GOLDEN) ^ zf_mix64(id + 0x632be59bd9b4e019ULL));
}

static uint64_t rng_draw(uint64_t key, uint64_t k)
{
    return zf_mix64(key + (k + 1) * ZF_GOLDEN);
}

/* Uniform in [0, 1) from the top 53 bits. */
static double rng_unit(uint64_t r)
{
    return (double)(r >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, m), m >= 1. */
static int64_t rng_below(uint64_t r, int64_t m)
{
    int64_t j = (int64_t)(rng_unit(r) * (double)m);
    return j < m ? j : m - 1;
}

void zf_dataset_shuffle(int64_t *perm, int64_t n, uint64_t seed, int epoch)
{
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    uint64_t key = rng_key(seed, 2, (uint64_t)(int64_t)epoch);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = rng_below(rng_draw(key, (uint64_t)i), i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---- statistics ---- */

/* Every pixel of m evenly spaced images, m chosen so about `budget` pixels are visited:
 * sums of each channel and of products of channel pairs (exact, in integers). */
static void pixel_sums(const zf_dataset *ds, int64_t budget, uint64_t s[3], uint64_t q[3][3],
                       uint64_t *count)
{
    int64_t hw = (int64_t)ds->h * ds->w;
    int64_t m = budget / hw;
    if (m < 1)
        m = 1;
    if (m > ds->n)
        m = ds->n;
    int c = ds->c;
    uint64_t s0 = 0, s1 = 0, s2 = 0, q00 = 0, q01 = 0, q02 = 0, q11 = 0, q12 = 0, q22 = 0;
    #pragma omp parallel for schedule(static) \
        reduction(+ : s0, s1, s2, q00, q01, q02, q11, q12, q22)
    for (int64_t j = 0; j < m; j++) {
        int64_t i = j * ds->n / m;
        const uint8_t *p = ds->pixels + (size_t)i * hw * c;
        uint64_t a0 = 0, a1 = 0, a2 = 0, b00 = 0, b01 = 0, b02 = 0, b11 = 0, b12 = 0, b22 = 0;
        if (c == 1) {
            for (int64_t k = 0; k < hw; k++) {
                uint32_t v = p[k];
                a0 += v;
                b00 += v * v;
            }
        } else {
            for (int64_t k = 0; k < hw; k++) {
                uint32_t r = p[3 * k], g = p[3 * k + 1], b = p[3 * k + 2];
                a0 += r;
                a1 += g;
                a2 += b;
                b00 += r * r;
                b01 += r * g;
                b02 += r * b;
                b11 += g * g;
                b12 += g * b;
                b22 += b * b;
            }
        }
        s0 += a0;
        s1 += a1;
        s2 += a2;
        q00 += b00;
        q01 += b01;
        q02 += b02;
        q11 += b11;
        q12 += b12;
        q22 += b22;
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    q[0][0] = q00;
    q[0][1] = q[1][0] = q01;
    q[0][2] = q[2][0] = q02;
    q[1][1] = q11;
    q[1][2] = q[2][1] = q12;
    q[2][2] = q22;
    *count = (uint64_t)m * (uint64_t)hw;
}

/* Covariance in 0-1 scale from the integer sums. */
static double cov_of(const uint64_t s[3], const uint64_t q[3][3], uint64_t n, int a, int b)
{
    double N = (double)n;
    return ((double)q[a][b] / N - ((double)s[a] / N) * ((double)s[b] / N)) / (255.0 * 255.0);
}

void zf_dataset_stats(const zf_dataset *ds, float mean[3], float std[3])
{
    if (!ds || ds->n < 1) {
        for (int c = 0; c < 3; c++) {
            mean[c] = 0.0f;
            std[c] = 1.0f;
        }
        return;
    }
    uint64_t s[3], q[3][3], n;
    pixel_sums(ds, (int64_t)1 << 26, s, q, &n);
    for (int c = 0; c < 3; c++) {
        int k = ds->c == 1 ? 0 : c;
        double var = cov_of(s, q, n, k, k);
        mean[c] = (float)((double)s[k] / (double)n / 255.0);
        std[c] = (float)sqrt(var > 0.0 ? var : 0.0);
    }
}

zf_status zf_dataset_pca(const zf_dataset *ds, float eigval[3], float eigvec[3][3])
{
    if (ds->c != 3)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: PCA colour noise needs RGB data; these images "
                        "are grey", ds->source);
    uint64_t s[3], q[3][3], n;
    pixel_sums(ds, (int64_t)1 << 24, s, q, &n);
    double a[9], w[3], work[64];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            a[i + 3 * j] = cov_of(s, q, n, i, j);
    int three = 3, lwork = 64, info = 0;
    dsyev_("V", "U", &three, a, &three, w, work, &lwork, &info, 1, 1);
    if (info != 0)
        return zf_error(ZF_ERR_FORMAT, "%s: eigen-decomposition of the colour covariance failed "
                        "(LAPACK dsyev info %d)", ds->source, info);
    /* dsyev gives ascending eigenvalues, eigenvectors in the columns of a. */
    for (int k = 0; k < 3; k++) {
        const double *v = a + 3 * (2 - k);
        int big = 0;
        for (int c = 1; c < 3; c++)
            if (fabs(v[c]) > fabs(v[big]))
                big = c;
        double sign = v[big] < 0 ? -1.0 : 1.0;
        eigval[k] = (float)w[2 - k];
        for (int c = 0; c < 3; c++)
            eigvec[c][k] = (float)(sign * v[c]);
    }
    return ZF_OK;
}

/* ---- batches ---- */

/* The window a net keeps of a stored side of `stored` px: all of it for exact-resize nets, the
 * net's crop fraction (in / resize_short) of it for short-side-crop nets. */
static int window_side(int stored, int in, const zf_preproc *pre)
{
    if (pre->resize == ZF_RESIZE_EXACT)
        return stored;
    long w = lround((double)stored * in / pre->resize_short);
    return w < 1 ? 1 : w > stored ? stored : (int)w;
}

/* Where the window starts along one side: random over the stored image (window smaller) or over
 * the image padded by `pad` (window the whole image); centred without augmentation. */
static int window_start(int stored, int win, int random, int pad, uint64_t r)
{
    if (!random)
        return zf_half_round_even(stored - win);
    if (win < stored)
        return (int)rng_below(r, stored - win + 1);
    return (int)rng_below(r, 2 * (int64_t)pad + 1) - pad;
}

/* Everything one batch call shares. */
typedef struct {
    const zf_dataset *ds;
    const zf_net *net;
    const zf_augment *aug;
    uint64_t seed;
    int wc;          /* channels resized: 1 (grey data, or a grey net) or 3 */
    int win_h, win_w;
    zf_taps hx, vy;  /* win_w -> in_w, win_h -> in_h */
} batch_ctx;

/* Image `id` into out (in_c, in_h, in_w). scratch: wc * win_h * win_w + win_h * in_w +
 * wc * in_h * in_w floats. */
static void batch_one(float *out, const batch_ctx *b, int64_t id, float *scratch)
{
    const zf_dataset *ds = b->ds;
    const zf_net *net = b->net;
    const zf_preproc *pre = &net->pre;
    const zf_augment *aug = b->aug;
    int wh = b->win_h, ww = b->win_w, oh = net->in_h, ow = net->in_w, wc = b->wc;
    uint64_t key = rng_key(b->seed, 1, (uint64_t)id);
    int random_crop = aug && aug->crop > 0;
    int pad = random_crop ? aug->crop : 0;
    int top = window_start(ds->h, wh, random_crop, pad, rng_draw(key, 0));
    int left = window_start(ds->w, ww, random_crop, pad, rng_draw(key, 1));
    int flip = aug && aug->flip && (rng_draw(key, 2) >> 63);
    /* PCA noise in 0-1 scale, per RGB channel. */
    double noise[3] = {0, 0, 0};
    if (aug && aug->pca_std > 0.0f && ds->c == 3) {
        double alpha[3];
        for (int k = 0; k < 3; k++) {
            double u1 = 1.0 - rng_unit(rng_draw(key, 3 + 2 * (uint64_t)k));
            double u2 = rng_unit(rng_draw(key, 4 + 2 * (uint64_t)k));
            alpha[k] = aug->pca_std * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
        }
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 3; k++)
                noise[c] += (double)aug->eigvec[c][k] * alpha[k] * aug->eigval[k];
    }

    /* The window, planar, zero outside the stored image; a grey net takes luma here. */
    float *win = scratch;
    float *tmp = win + (size_t)wc * wh * ww;
    float *res = tmp + (size_t)wh * ow;
    const uint8_t *img = ds->pixels + (size_t)id * ds->h * ds->w * ds->c;
    size_t wplane = (size_t)wh * ww;
    for (int y = 0; y < wh; y++) {
        int sy = top + y;
        for (int x = 0; x < ww; x++) {
            int sx = left + x;
            size_t o = (size_t)y * ww + x;
            if (sy < 0 || sy >= ds->h || sx < 0 || sx >= ds->w) {
                for (int c = 0; c < wc; c++)
                    win[c * wplane + o] = 0.0f;
                continue;
            }
            const uint8_t *p = img + ((size_t)sy * ds->w + sx) * ds->c;
            if (ds->c == 1)
                win[o] = p[0];
            else if (wc == 1)
                win[o] = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
            else
                for (int c = 0; c < 3; c++)
                    win[c * wplane + o] = p[c];
        }
    }
    /* Horizontal pass, then vertical, per plane (as zf_image_to_input). A window of the input's
     * size (AlexNet's 224 of 256) has taps of weight 1 and 0: the window itself, exactly. */
    size_t oplane = (size_t)oh * ow;
    if (wh == oh && ww == ow)
        res = win;
    for (int c = 0; res != win && c < wc; c++) {
        const float *src = win + c * wplane;
        for (int y = 0; y < wh; y++) {
            const float *row = src + (size_t)y * ww;
            float *dst = tmp + (size_t)y * ow;
            for (int x = 0; x < ow; x++) {
                const float *w = b->hx.w + (size_t)x * b->hx.ksize;
                const float *p = row + b->hx.first[x];
                float v = 0;
                for (int k = 0; k < b->hx.count[x]; k++)
                    v += w[k] * p[k];
                dst[x] = v;
            }
        }
        float *dst = res + c * oplane;
        for (int y = 0; y < oh; y++) {
            const float *w = b->vy.w + (size_t)y * b->vy.ksize;
            const float *rows = tmp + (size_t)b->vy.first[y] * ow;
            int cnt = b->vy.count[y];
            float *d = dst + (size_t)y * ow;
            for (int x = 0; x < ow; x++)
                d[x] = 0.0f;
            for (int k = 0; k < cnt; k++) {
                const float *r = rows + (size_t)k * ow;
                float wk = w[k];
                for (int x = 0; x < ow; x++)
                    d[x] += wk * r[x];
            }
        }
    }
    /* Normalise into the net's channel order: output channel j holds RGB channel src_c[j]. */
    int src_c[3] = {0, 1, 2};
    if (pre->order == ZF_COLOR_BGR) {
        src_c[0] = 2;
        src_c[2] = 0;
    }
    for (int j = 0; j < net->in_c; j++) {
        int c = net->in_c == 1 ? 0 : src_c[j];
        double nz = net->in_c == 1 ? 0.299 * noise[0] + 0.587 * noise[1] + 0.114 * noise[2]
                                   : noise[c];
        float a = pre->scale / 255.0f / pre->std[c];
        float bb = (float)((nz * pre->scale - pre->mean[c]) / pre->std[c]);
        const float *src = res + (wc == 1 ? 0 : c) * oplane;
        float *dst = out + (size_t)j * oplane;
        for (int y = 0; y < oh; y++) {
            const float *s = src + (size_t)y * ow;
            float *d = dst + (size_t)y * ow;
            if (flip)
                for (int x = 0; x < ow; x++)
                    d[x] = s[ow - 1 - x] * a + bb;
            else
                for (int x = 0; x < ow; x++)
                    d[x] = s[x] * a + bb;
        }
    }
}

zf_status zf_dataset_batch(float *input, int32_t *labels, const zf_dataset *ds, const int64_t *idx,
                           int n, const zf_net *net, const zf_augment *aug, uint64_t seed)
{
    if (n < 0)
        return zf_error(ZF_ERR_ARG, "%s: batch of %d images", ds->source, n);
    const zf_preproc *pre = &net->pre;
    int grey_net = pre->order == ZF_COLOR_GREY;
    if (net->in_c != (grey_net ? 1 : 3))
        return zf_error(ZF_ERR_SHAPE, "%s has %d input channels but its preprocessing makes %s",
                        net->arch, net->in_c, grey_net ? "1" : "3");
    if (net->in_h < 1 || net->in_w < 1)
        return zf_error(ZF_ERR_SHAPE, "%s: input of %d x %d", net->arch, net->in_h, net->in_w);
    for (int c = 0; c < (grey_net ? 1 : 3); c++)
        if (!(pre->std[c] != 0.0f))
            return zf_error(ZF_ERR_ARG, "%s: preprocessing std[%d] is %g", net->arch, c,
                            (double)pre->std[c]);
    if (pre->resize == ZF_RESIZE_SHORT_CROP &&
        (pre->resize_short < net->in_h || pre->resize_short < net->in_w))
        return zf_error(ZF_ERR_ARG, "%s: resize_short %d is smaller than its %d x %d input",
                        net->arch, pre->resize_short, net->in_w, net->in_h);
    if (pre->resize != ZF_RESIZE_SHORT_CROP && pre->resize != ZF_RESIZE_EXACT)
        return zf_error(ZF_ERR_ARG, "%s: unknown resize mode %d", net->arch, (int)pre->resize);
    if (aug && (aug->crop < 0 || aug->crop > 4096 || !(aug->pca_std >= 0.0f) ||
                !isfinite(aug->pca_std)))
        return zf_error(ZF_ERR_ARG, "augmentation: crop %d px (0 to 4096) or PCA std %g (>= 0) "
                        "out of range", aug->crop, (double)aug->pca_std);
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= ds->n)
            return zf_error(ZF_ERR_ARG, "%s: image %lld (batch position %d) is not among its %lld "
                            "images", ds->source, (long long)idx[i], i, (long long)ds->n);
    if (n == 0)
        return ZF_OK;

    batch_ctx b = {.ds = ds, .net = net, .aug = aug, .seed = seed};
    b.wc = ds->c == 1 || grey_net ? 1 : 3;
    b.win_h = window_side(ds->h, net->in_h, pre);
    b.win_w = window_side(ds->w, net->in_w, pre);
    /* One set of taps for the whole batch: every window has the same size. */
    zf_status st = zf_taps_make(&b.hx, b.win_w, net->in_w, 0, net->in_w);
    if (!st)
        st = zf_taps_make(&b.vy, b.win_h, net->in_h, 0, net->in_h);
    if (st) {
        zf_taps_free(&b.hx);
        return st;
    }
    size_t scratch = (size_t)b.wc * b.win_h * b.win_w + (size_t)b.win_h * net->in_w +
                     (size_t)b.wc * net->in_h * net->in_w;
    size_t per = (size_t)net->in_c * net->in_h * net->in_w;
    int nomem = 0;
    #pragma omp parallel
    {
        float *buf = zf_malloc(sizeof(float) * scratch);
        if (!buf) {
            #pragma omp atomic write
            nomem = 1;
        }
        #pragma omp for schedule(static)
        for (int i = 0; i < n; i++)
            if (buf)
                batch_one(input + (size_t)i * per, &b, idx[i], buf);
        free(buf);
    }
    zf_taps_free(&b.hx);
    zf_taps_free(&b.vy);
    if (nomem)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory for a batch", ds->source);
    if (labels)
        for (int i = 0; i < n; i++)
            labels[i] = ds->labels[idx[i]];
    return ZF_OK;
}
