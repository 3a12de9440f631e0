/* Output files: written to a temporary file beside the path and renamed into place when whole, so a
 * failure leaves the previous file; a file zfviz did not make is replaced only when forced. */
#include "zf/alloc.h"
#include "zf/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define ZF_SQLITE_APPLICATION_ID 0x7a66767au /* 'zfvz', as db/db.c sets it */

struct zf_file {
    char *path;   /* where the file will be */
    char *tmp;    /* the temporary file beside it; NULL when writing a device directly */
    FILE *f;
    unsigned flags;
    int created;  /* nothing was at path before */
    zf_status st; /* the first failed write */
};

static int force_replace;
static pthread_mutex_t created_lock = PTHREAD_MUTEX_INITIALIZER;
static char **created;
static int n_created, cap_created;

void zf_file_set_force(int force) { force_replace = force != 0; }
int zf_file_force(void) { return force_replace; }

static void record_created(const char *path)
{
    pthread_mutex_lock(&created_lock);
    if (n_created == cap_created) {
        int cap = cap_created ? 2 * cap_created : 64;
        char **p = zf_realloc(created, sizeof *p * (size_t)cap);
        if (p) {
            created = p;
            cap_created = cap;
        }
    }
    char *copy = n_created < cap_created ? zf_strdup(path) : NULL;
    if (copy) /* out of memory: the file is kept, which is the safe side */
        created[n_created++] = copy;
    pthread_mutex_unlock(&created_lock);
}

static void clear_created(int remove_files)
{
    pthread_mutex_lock(&created_lock);
    for (int i = n_created - 1; i >= 0; i--) {
        if (remove_files)
            unlink(created[i]);
        free(created[i]);
    }
    free(created);
    created = NULL;
    n_created = cap_created = 0;
    pthread_mutex_unlock(&created_lock);
}

void zf_file_remove_created(void) { clear_created(1); }
void zf_file_forget_created(void) { clear_created(0); }

/* ---- recognising zfviz's own files by their content ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
static const char png_text[] = "Software\0zfviz"; /* keyword, NUL, text */

/* A tEXt Software=zfviz chunk before the image data. */
static int png_is_ours(FILE *f)
{
    unsigned char h[8];
    if (fseek(f, 8, SEEK_SET))
        return 0;
    for (int chunks = 0; chunks < 64 && fread(h, 1, 8, f) == 8; chunks++) {
        uint32_t len = be32(h);
        if (!memcmp(h + 4, "IDAT", 4) || !memcmp(h + 4, "IEND", 4) || len > (1u << 24))
            return 0;
        if (!memcmp(h + 4, "tEXt", 4) && len == sizeof png_text - 1) {
            char t[sizeof png_text];
            if (fread(t, 1, len, f) != len)
                return 0;
            if (!memcmp(t, png_text, len))
                return 1;
            len = 0;
        }
        if (fseek(f, (long)len + 4, SEEK_CUR))
            return 0;
    }
    return 0;
}

/* cairo writes the document information (Creator) near the end; the whole file is searched. */
static int pdf_is_ours(FILE *f)
{
    static const char key[] = "/Creator (zfviz)";
    const size_t klen = sizeof key - 1, chunk = 1 << 20;
    char *buf = zf_malloc(chunk + klen);
    if (!buf)
        return 0;
    size_t keep = 0, n;
    int found = 0;
    rewind(f);
    while (!found && (n = fread(buf + keep, 1, chunk, f)) > 0) {
        found = memmem(buf, keep + n, key, klen) != NULL;
        size_t tail = keep + n < klen ? keep + n : klen - 1;
        memmove(buf, buf + keep + n - tail, tail);
        keep = tail;
    }
    free(buf);
    return found;
}

static int npy_is_ours(FILE *f, const unsigned char *head, size_t n)
{
    if (n < 12)
        return 0;
    size_t hlen = head[6] == 1 ? (size_t)head[8] | (size_t)head[9] << 8
                               : (size_t)head[8] | (size_t)head[9] << 8 | (size_t)head[10] << 16;
    size_t off = head[6] == 1 ? 10 : 12;
    if (hlen < 8 || hlen > 65536)
        return 0;
    char *h = zf_malloc(hlen);
    int ours = h && !fseek(f, (long)off, SEEK_SET) && fread(h, 1, hlen, f) == hlen &&
               memmem(h, hlen, "# zfviz", 7) != NULL;
    free(h);
    return ours;
}

static int safetensors_is_ours(FILE *f, const unsigned char *head, size_t n)
{
    if (n < 9 || head[8] != '{')
        return 0;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | head[i];
    if (hlen < 2 || hlen > 100000000)
        return 0;
    char *h = zf_malloc(hlen);
    int ours = h && !fseek(f, 8, SEEK_SET) && fread(h, 1, hlen, f) == hlen &&
               memmem(h, hlen, "\"__metadata__\"", 14) && memmem(h, hlen, "\"zfviz.", 7);
    free(h);
    return ours;
}

int zf_file_is_ours(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char head[100];
    size_t n = fread(head, 1, sizeof head, f);
    int ours = 0;
    if (n >= 8 && !memcmp(head, png_sig, 8))
        ours = png_is_ours(f);
    else if (n >= 5 && !memcmp(head, "%PDF-", 5))
        ours = pdf_is_ours(f);
    else if (n >= 10 && !memcmp(head, "\x93NUMPY", 6))
        ours = npy_is_ours(f, head, n);
    else if (n >= 72 && !memcmp(head, "SQLite format 3", 16))
        ours = be32(head + 68) == ZF_SQLITE_APPLICATION_ID;
    else if (n >= 23 && !memcmp(head, "{\n  \"software\": \"zfviz\"", 23))
        ours = 1; /* JSON zfviz wrote: "software": "zfviz" is its first key */
    else if (n >= 6 && !memcmp(head, "zfviz ", 6))
        ours = 1; /* a text report: its first line starts with the program's name */
    else if ((n >= 27 && !memcmp(head, "<!DOCTYPE html>\n<!-- zfviz ", 27)) || (n >= 9 && !memcmp(head, "/* zfviz ", 9)))
        ours = 1; /* a web page, stylesheet or script of zfviz site: a comment naming the program first */
    else
        ours = safetensors_is_ours(f, head, n);
    fclose(f);
    return ours;
}

zf_status zf_file_check(const char *path)
{
    struct stat sb;
    if (!path || !*path)
        return zf_error(ZF_ERR_ARG, "no output file named");
    if (stat(path, &sb) != 0)
        return ZF_OK;
    if (S_ISDIR(sb.st_mode))
        return zf_error(ZF_ERR_IO, "%s: is a folder, not a file", path);
    if (!S_ISREG(sb.st_mode) || sb.st_size == 0 || force_replace || zf_file_is_ours(path))
        return ZF_OK;
    return zf_error(ZF_ERR_IO, "%s: exists and was not made by zfviz; not replaced (--force replaces it)", path);
}

/* ---- writing ---- */

static zf_status io_error(const char *path, int err)
{
    return zf_error(ZF_ERR_IO, "%s: cannot write: %s", path, strerror(err));
}

/* A new file in path's folder: "<folder>/.<name>.<pid>-<n>.tmp", created exclusively. */
static int open_temp(const char *path, char **tmp_out)
{
    static unsigned counter;
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    size_t cap = strlen(path) + 48;
    char *tmp = zf_malloc(cap);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        unsigned k = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        snprintf(tmp, cap, "%.*s.%s.%ld-%u.tmp", (int)dirlen, path, base, (long)getpid(), k);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int e = errno;
        free(tmp);
        errno = e;
        return -1;
    }
    *tmp_out = tmp;
    return fd;
}

zf_status zf_file_open(const char *path, unsigned flags, zf_file **out)
{
    *out = NULL;
    zf_status st = zf_file_check(path);
    if (st)
        return st;
    zf_file *f = zf_calloc(1, sizeof *f);
    if (!f || !(f->path = zf_strdup(path))) {
        free(f);
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
    }
    f->flags = flags;
    struct stat sb;
    int exists = stat(path, &sb) == 0;
    f->created = !exists;
    int fd;
    if (exists && !S_ISREG(sb.st_mode)) {
        /* A device or pipe (/dev/null, /dev/stdout): nothing to rename over, written directly. */
        fd = open(path, O_WRONLY | O_CLOEXEC);
    } else {
        /* A symbolic link keeps pointing where it did: the file it names is replaced. */
        char real[PATH_MAX];
        const char *target = path;
        struct stat lsb;
        if (exists && lstat(path, &lsb) == 0 && S_ISLNK(lsb.st_mode) && realpath(path, real))
            target = real;
        fd = open_temp(target, &f->tmp);
        if (fd >= 0 && exists)
            (void)fchmod(fd, sb.st_mode & 07777);
        if (fd >= 0 && target != path) {
            free(f->path);
            f->path = zf_strdup(target);
            if (!f->path) {
                close(fd);
                unlink(f->tmp);
                free(f->tmp);
                free(f);
                return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
            }
        }
    }
    if (fd < 0 || !(f->f = fdopen(fd, "wb"))) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (f->tmp)
            unlink(f->tmp);
        st = zf_error(ZF_ERR_IO, "%s: cannot create: %s", path, strerror(e));
        free(f->tmp);
        free(f->path);
        free(f);
        return st;
    }
    *out = f;
    return ZF_OK;
}

FILE *zf_file_stream(zf_file *f) { return f->f; }

zf_status zf_file_write(zf_file *f, const void *data, size_t n)
{
    if (!f->st && n && fwrite(data, 1, n, f->f) != n)
        f->st = io_error(f->path, errno);
    return f->st;
}

static void file_free(zf_file *f)
{
    free(f->path);
    free(f->tmp);
    free(f);
}

void zf_file_discard(zf_file *f)
{
    if (!f)
        return;
    if (f->f)
        fclose(f->f);
    if (f->tmp)
        unlink(f->tmp);
    file_free(f);
}

zf_status zf_file_commit(zf_file *f)
{
    zf_status st = f->st;
    if (!st && (fflush(f->f) != 0 || ferror(f->f)))
        st = io_error(f->path, errno ? errno : EIO);
    if (!st && (f->flags & ZF_FILE_SYNC) && f->tmp && fsync(fileno(f->f)) != 0)
        st = io_error(f->path, errno);
    int closed = fclose(f->f);
    f->f = NULL;
    if (!st && closed != 0)
        st = io_error(f->path, errno);
    if (!st && f->tmp && rename(f->tmp, f->path) != 0)
        st = zf_error(ZF_ERR_IO, "%s: cannot put the new file in place: %s", f->path, strerror(errno));
    if (st) {
        if (f->tmp)
            unlink(f->tmp);
    } else if (f->created && f->tmp) {
        record_created(f->path);
    }
    file_free(f);
    return st;
}

zf_status zf_file_save(const char *path, const void *data, size_t n, unsigned flags)
{
    zf_file *f;
    zf_status st = zf_file_open(path, flags, &f);
    if (st)
        return st;
    if ((st = zf_file_write(f, data, n))) {
        zf_file_discard(f);
        return st;
    }
    return zf_file_commit(f);
}

/* ---- marking PNGs ---- */

zf_status zf_png_mark(const void *png, size_t len, void **out, size_t *out_len)
{
    const unsigned char *p = png;
    *out = NULL;
    *out_len = 0;
    if (len < 8 + 12 + 13 || memcmp(p, png_sig, 8) || memcmp(p + 12, "IHDR", 4))
        return zf_error(ZF_ERR_FORMAT, "PNG encoding: not a PNG with an IHDR chunk");
    size_t at = 8 + 12 + (size_t)be32(p + 8); /* after IHDR */
    if (at > len)
        return zf_error(ZF_ERR_FORMAT, "PNG encoding: truncated IHDR chunk");
    const size_t tlen = sizeof png_text - 1;
    unsigned char chunk[12 + sizeof png_text];
    chunk[0] = chunk[1] = chunk[2] = 0;
    chunk[3] = (unsigned char)tlen;
    memcpy(chunk + 4, "tEXt", 4);
    memcpy(chunk + 8, png_text, tlen);
    uLong crc = crc32(0L, chunk + 4, (uInt)(4 + tlen));
    for (int i = 0; i < 4; i++)
        chunk[8 + tlen + (size_t)i] = (unsigned char)(crc >> (24 - 8 * i));
    size_t clen = 12 + tlen;
    unsigned char *b = zf_malloc(len + clen);
    if (!b)
        return zf_error(ZF_ERR_NOMEM, "PNG encoding: out of memory");
    memcpy(b, p, at);
    memcpy(b + at, chunk, clen);
    memcpy(b + at + clen, p + at, len - at);
    *out = b;
    *out_len = len + clen;
    return ZF_OK;
}
