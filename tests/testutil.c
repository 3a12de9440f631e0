/* Shared helpers for the Criterion tests (see testutil.h). */
#include "testutil.h"

#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h> /* after stdio.h */

uint64_t tu_mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)((tu_mix(&s) >> 40) * (1.0 / 16777216.0));
}

double tu_max_rel_err(const float *a, const double *ref, size_t n, double floor, size_t *where)
{
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]) / fmax(fabs(ref[i]), floor);
        if (!(d <= worst)) { /* catches NaN too */
            worst = isnan(d) ? INFINITY : d;
            at = i;
        }
    }
    if (where)
        *where = at;
    return worst;
}

double tu_max_rel_err_f(const float *a, const float *ref, size_t n, double floor, size_t *where)
{
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]) / fmax(fabs((double)ref[i]), floor);
        if (!(d <= worst)) {
            worst = isnan(d) ? INFINITY : d;
            at = i;
        }
    }
    if (where)
        *where = at;
    return worst;
}

double tu_max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

double tu_max_abs_d(const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

static const char *join(const char *env, const char *rel)
{
    static _Thread_local char bufs[8][4096];
    static _Thread_local int slot;
    char *b = bufs[slot++ & 7];
    const char *base = getenv(env);
    snprintf(b, 4096, "%s/%s", base && *base ? base : ".", rel);
    return b;
}

const char *tu_src(const char *rel) { return join("ZF_SOURCE_DIR", rel); }
const char *tu_build(const char *rel) { return join("ZF_BUILD_DIR", rel); }

const char *tu_fixture(const char *rel)
{
    if (getenv("ZF_FIXTURE_DIR"))
        return join("ZF_FIXTURE_DIR", rel);
    char r[1024];
    snprintf(r, sizeof r, "fixtures/%s", rel);
    return join("ZF_BUILD_DIR", r);
}

const char *tu_fixturef(const char *fmt, ...)
{
    char rel[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    return tu_fixture(rel);
}

const char *tu_tmpdir(const char *tag)
{
    char rel[512];
    snprintf(rel, sizeof rel, "test-tmp/%s.%d", tag, (int)getpid());
    const char *p = tu_build(rel);
    tu_system("rm -rf '%s' && mkdir -p '%s'", p, p);
    return p;
}

int tu_system(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc == -1)
        return -1;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

char *tu_read_file(const char *path, size_t *len)
{
    if (len)
        *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) &&
        fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return b;
}

int tu_write_png(const char *path, int w, int h, const uint8_t *rgb)
{
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)w;
    pi.height = (png_uint_32)h;
    pi.format = PNG_FORMAT_RGB;
    if (png_image_write_to_file(&pi, path, 0, rgb, 0, NULL))
        return 0;
    fprintf(stderr, "%s: %s\n", path, pi.message);
    return -1;
}

int tu_write_jpeg(const char *path, int w, int h, const uint8_t *rgb, int quality)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err); /* libjpeg's default: a broken stream ends the process */
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f) ? (perror(path), -1) : 0;
}
