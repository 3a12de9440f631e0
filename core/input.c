/* Input from the user checked before use (zf/input.h): files by kind and size, bounded lists of
 * image paths, the recursive search for images under a folder, finite values. */
#include "zf/alloc.h"
#include "zf/input.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m))
        return "a folder";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISFIFO(m))
        return "a pipe";
    return "not a regular file";
}

zf_status zf_input_check(const char *path, const char *what, int allow_pipe, int64_t *size)
{
    if (size)
        *size = -1;
    struct stat sb;
    if (!strcmp(path, "-")) {
        if (!allow_pipe)
            return zf_error(ZF_ERR_ARG, "-: standard input cannot be read as %s here", what);
        return ZF_OK;
    }
    if (stat(path, &sb) != 0)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISREG(sb.st_mode)) {
        if (size)
            *size = (int64_t)sb.st_size;
        return ZF_OK;
    }
    if (S_ISFIFO(sb.st_mode) && allow_pipe)
        return ZF_OK;
    return zf_error(ZF_ERR_ARG, "%s: is %s, not %s", path, kind_of(sb.st_mode), what);
}

zf_status zf_input_read(const char *path, const char *what, int allow_pipe, size_t max, uint8_t **out,
                       size_t *len)
{
    *out = NULL;
    *len = 0;
    int64_t size;
    zf_status st = zf_input_check(path, what, allow_pipe, &size);
    if (st)
        return st;
    if (size > 0 && (uint64_t)size > max)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: %lld bytes is more than %zu, too large for %s", path,
                        (long long)size, max, what);
    int std_in = !strcmp(path, "-");
    FILE *f = std_in ? stdin : fopen(path, "rb");
    if (!f)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = size >= 0 ? (size_t)size + 1 : 65536, n = 0;
    uint8_t *buf = zf_malloc(cap);
    while (buf) {
        if (n + 1 == cap) {
            size_t ncap = cap * 2 > max + 2 ? max + 2 : cap * 2;
            uint8_t *nb = ncap > cap ? zf_realloc(buf, ncap) : NULL;
            if (!nb) {
                if (ncap > cap) {
                    free(buf);
                    buf = NULL;
                }
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - 1 - n, f);
        n += r;
        if (r == 0 || n > max)
            break;
    }
    int bad = ferror(f), e = errno;
    if (!std_in)
        fclose(f);
    if (!buf)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
    if (n > max) {
        free(buf);
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: more than %zu bytes, too large for %s", path, max, what);
    }
    if (bad) {
        free(buf);
        return zf_error(ZF_ERR_IO, "%s: cannot read: %s", path, strerror(e));
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return ZF_OK;
}

/* ---- lists of paths ---- */

typedef struct pathvec {
    char **v;
    int64_t n, cap;
} pathvec;

static int push(pathvec *p, const char *s)
{
    if (p->n == p->cap) {
        int64_t cap = p->cap ? 2 * p->cap : 256;
        char **v = zf_realloc(p->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        p->v = v;
        p->cap = cap;
    }
    if (!(p->v[p->n] = zf_strdup(s)))
        return -1;
    p->n++;
    return 0;
}

void zf_paths_free(char **paths, int64_t n)
{
    if (!paths)
        return;
    for (int64_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

/* One line of a list (len bytes, no newline) into p. */
static zf_status list_line(const char *list, int64_t lineno, char *line, size_t len, const char *base,
                           pathvec *p)
{
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = 0;
    if (len == 0 || line[0] == '#')
        return ZF_OK;
    if (memchr(line, 0, len))
        return zf_error(ZF_ERR_FORMAT, "%s:%lld: not a text list of image paths (a NUL byte)", list,
                        (long long)lineno);
    if (p->n >= ZF_LIST_MAX_ENTRIES)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: more than %lld paths, the most a list may hold", list,
                        (long long)ZF_LIST_MAX_ENTRIES);
    char path[PATH_MAX];
    int w = line[0] == '/' || !base ? snprintf(path, sizeof path, "%s", line)
                                    : snprintf(path, sizeof path, "%s/%s", base, line);
    if (w < 0 || w >= (int)sizeof path)
        return zf_error(ZF_ERR_ARG, "%s:%lld: path too long", list, (long long)lineno);
    if (push(p, path))
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", list);
    return ZF_OK;
}

zf_status zf_list_read(const char *path, const char *base, char ***lines, int64_t *n)
{
    *lines = NULL;
    *n = 0;
    int64_t size;
    zf_status st = zf_input_check(path, "a list of image paths", 1, &size);
    if (st)
        return st;
    if (size > ZF_LIST_MAX_BYTES)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: %lld bytes, more than a list may hold (%lld)", path,
                        (long long)size, (long long)ZF_LIST_MAX_BYTES);
    int std_in = !strcmp(path, "-");
    FILE *f = std_in ? stdin : fopen(path, "rb");
    if (!f)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    const char *name = std_in ? "standard input" : path;
    /* Read in blocks; a line is gathered in a buffer of the longest allowed, so nothing read
     * grows without bound. */
    static const size_t block = 1 << 16;
    char *in = zf_malloc(block), *line = zf_malloc(ZF_LIST_MAX_LINE + 1);
    pathvec p = {0};
    size_t len = 0;
    int64_t total = 0, lineno = 1;
    if (!in || !line)
        st = zf_error(ZF_ERR_NOMEM, "%s: out of memory", name);
    while (!st) {
        size_t r = fread(in, 1, block, f);
        if (r == 0)
            break;
        total += (int64_t)r;
        if (total > ZF_LIST_MAX_BYTES) {
            st = zf_error(ZF_ERR_UNSUPPORTED, "%s: more than %lld bytes, more than a list may hold", name,
                          (long long)ZF_LIST_MAX_BYTES);
            break;
        }
        for (size_t i = 0; i < r && !st; i++) {
            if (in[i] == '\n') {
                line[len] = 0;
                st = list_line(name, lineno++, line, len, base, &p);
                len = 0;
            } else if (len == ZF_LIST_MAX_LINE) {
                st = zf_error(ZF_ERR_FORMAT, "%s:%lld: line longer than %d bytes: not a list of image "
                              "paths", name, (long long)lineno, ZF_LIST_MAX_LINE);
            } else {
                line[len++] = in[i];
            }
        }
    }
    if (!st && ferror(f))
        st = zf_error(ZF_ERR_IO, "%s: cannot read: %s", name, strerror(errno));
    if (!st && len > 0) {
        line[len] = 0;
        st = list_line(name, lineno, line, len, base, &p);
    }
    if (!std_in)
        fclose(f);
    free(in);
    free(line);
    if (st) {
        zf_paths_free(p.v, p.n);
        return st;
    }
    *lines = p.v;
    *n = p.n;
    return ZF_OK;
}

/* ---- images under a folder ---- */

int zf_is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static zf_status walk(const char *dir, pathvec *out, int depth)
{
    if (depth > 64)
        return zf_error(ZF_ERR_ARG, "%s: folders nested too deeply (a symbolic link loop?)", dir);
    DIR *d = opendir(dir);
    if (!d)
        return zf_error(ZF_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
    zf_status s = ZF_OK;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') /* ., .., and hidden files such as ._x.jpg resource forks */
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
            s = zf_error(ZF_ERR_ARG, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        struct stat sb;
        if (stat(path, &sb) != 0)
            continue; /* a dangling link: not an image we could list */
        if (S_ISDIR(sb.st_mode)) {
            if ((s = walk(path, out, depth + 1)))
                break;
        } else if (S_ISREG(sb.st_mode) && zf_is_image_name(e->d_name)) {
            if (push(out, path)) {
                s = zf_error(ZF_ERR_NOMEM, "%s: out of memory listing images", dir);
                break;
            }
        }
    }
    closedir(d);
    return s;
}

zf_status zf_images_walk(const char *dir, char ***paths, int64_t *n, int64_t *cap)
{
    pathvec p = {*paths, *n, *cap};
    zf_status st = walk(dir, &p, 0);
    *paths = p.v;
    *n = p.n;
    *cap = p.cap;
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

zf_status zf_images_find(const char *arg, char ***paths, int64_t *n)
{
    *paths = NULL;
    *n = 0;
    struct stat sb;
    int std_in = !strcmp(arg, "-");
    if (!std_in && stat(arg, &sb) != 0)
        return zf_error(ZF_ERR_IO, "%s: %s", arg, strerror(errno));
    pathvec v = {0};
    zf_status s;
    char real[PATH_MAX];
    if (!std_in && S_ISDIR(sb.st_mode)) {
        if (!realpath(arg, real))
            return zf_error(ZF_ERR_IO, "%s: %s", arg, strerror(errno));
        if (!(s = walk(real, &v, 0)) && v.n > 1)
            qsort(v.v, (size_t)v.n, sizeof *v.v, cmp_str);
    } else if (!std_in && S_ISREG(sb.st_mode) && zf_is_image_name(arg)) {
        if (!realpath(arg, real))
            return zf_error(ZF_ERR_IO, "%s: %s", arg, strerror(errno));
        s = push(&v, real) ? zf_error(ZF_ERR_NOMEM, "out of memory") : ZF_OK;
    } else if (!std_in && !S_ISREG(sb.st_mode) && !S_ISFIFO(sb.st_mode)) {
        return zf_error(ZF_ERR_ARG, "%s: is %s, not an image, a folder or a list of images", arg,
                        kind_of(sb.st_mode));
    } else {
        /* Relative paths in a list file are relative to its folder; those from standard input or a
         * pipe to the current folder, where whoever wrote them is. */
        const char *base = NULL;
        char dir[PATH_MAX];
        if (!std_in && S_ISREG(sb.st_mode)) {
            if (!realpath(arg, real))
                return zf_error(ZF_ERR_IO, "%s: %s", arg, strerror(errno));
            snprintf(dir, sizeof dir, "%s", real);
            char *slash = strrchr(dir, '/');
            if (slash)
                slash[slash == dir] = 0; /* "/a/list" -> "/a", "/list" -> "/" */
            base = dir;
        } else if (getcwd(dir, sizeof dir)) {
            base = dir;
        }
        char **lines;
        int64_t nl;
        if (!(s = zf_list_read(arg, base, &lines, &nl))) {
            v.v = lines;
            v.n = v.cap = nl;
        }
    }
    if (!s && v.n == 0)
        s = zf_error(ZF_ERR_ARG, "%s: no images (.jpg, .jpeg or .png) found", std_in ? "standard input" : arg);
    if (s) {
        zf_paths_free(v.v, v.n);
        return s;
    }
    *paths = v.v;
    *n = v.n;
    return ZF_OK;
}

/* ---- values ---- */

zf_status zf_values_check_finite(const float *x, size_t n, const char *name, size_t *where)
{
    /* A float is NaN or Inf when its exponent bits are all ones: an integer OR over the array,
     * which the compiler vectorises, and the search only on failure. */
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    if (!bad)
        return ZF_OK;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            if (where)
                *where = i;
            return zf_error(ZF_ERR_FORMAT, "%s: holds %s at element %zu: the net needs finite values", name,
                            isnan(x[i]) ? "NaN" : x[i] > 0 ? "+Inf" : "-Inf", i);
        }
    return ZF_OK;
}
