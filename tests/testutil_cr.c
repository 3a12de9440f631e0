/* Shared helpers for the Criterion tests that fail the test themselves (see testutil.h). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "testutil.h"
#include "zf/dataset.h"
#include "zf/ops.h"
#include "zf/viz.h"

extern char **environ;

void *tu_slurp(const char *path, size_t *len)
{
    char *b = tu_read_file(path, len);
    cr_assert(b, "cannot read %s (fixtures not generated?)", path);
    return b;
}

void tu_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot create %s", path);
    cr_assert(fwrite(p, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

void tu_tmpdir_sub(char dir[2048], char sub[4096], const char *tag, const char *name)
{
    snprintf(dir, 2048, "%s", tu_tmpdir(tag));
    snprintf(sub, 4096, "%s/%s", dir, name);
    cr_assert_eq(mkdir(sub, 0755), 0, "cannot make %s", sub);
}

tu_rgb tu_png_decode(const void *bytes, size_t len)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    cr_assert(png_image_begin_read_from_memory(&im, bytes, len), "libpng cannot read the PNG: %s",
              im.message);
    im.format = PNG_FORMAT_RGB;
    tu_rgb out = {(int)im.width, (int)im.height, malloc(PNG_IMAGE_SIZE(im))};
    cr_assert(out.px);
    cr_assert(png_image_finish_read(&im, NULL, out.px, 0, NULL), "libpng failed: %s", im.message);
    return out;
}

tu_rgb tu_png_read(const char *path)
{
    size_t len;
    char *bytes = tu_read_file(path, &len);
    cr_assert(bytes, "cannot read %s (not written?)", path);
    tu_rgb im = tu_png_decode(bytes, len);
    free(bytes);
    return im;
}

const uint8_t *tu_px(const tu_rgb *im, int x, int y)
{
    cr_assert(x >= 0 && y >= 0 && x < im->w && y < im->h, "pixel (%d, %d) outside %dx%d", x, y, im->w,
              im->h);
    return im->px + ((size_t)y * im->w + x) * 3;
}

tu_rgb tu_render_png(tu_render_fn fn, const void *ctx)
{
    zf_viz_doc *doc;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PNG, &doc), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(fn(doc, ctx), ZF_OK, "render failed: %s", zf_last_error());
    cr_assert_eq(zf_viz_doc_finish(doc), ZF_OK, "%s", zf_last_error());
    size_t len;
    const uint8_t *bytes = zf_viz_doc_bytes(doc, &len);
    cr_assert(bytes && len > 8, "no PNG was written");
    tu_rgb im = tu_png_decode(bytes, len);
    zf_viz_doc_free(doc);
    return im;
}

static zf_status render_compare(zf_viz_doc *doc, const void *m)
{
    const zf_viz_compare_model *two = m;
    return zf_viz_compare(doc, &two[0], &two[1], NULL);
}

tu_rgb tu_render_compare(const zf_viz_compare_model *m) { return tu_render_png(render_compare, m); }

const char *tu_demo_missing(void)
{
    const void *b;
    size_t len;
    if (!zft_embedded_model("alexnet-mini", &b, &len) || !zft_embedded_model("zfnet-mini", &b, &len))
        return "this build has no embedded models (assets/models/*.safetensors)";
    const char *env = getenv("ZFVIZ_FASHION_MNIST");
    char p[1024];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", env && *env ? env : ZF_FASHION_MNIST_DIR);
    if (access(p, R_OK))
        return "Fashion-MNIST is not installed (dataset-fashion-mnist)";
    return NULL;
}

/* What names the demo a run made: the zfviz binary (device, inode, size, modification time) and
 * every ZFVIZ_* setting it ran under (kernel set, data folder). */
static void demo_key(char *key, size_t cap, const char *zfviz)
{
    struct stat st;
    cr_assert_eq(stat(zfviz, &st), 0, "no %s (build the zfviz target)", zfviz);
    size_t n = (size_t)snprintf(key, cap, "%s %llu:%llu %lld %lld.%09ld\n", zfviz, (unsigned long long)st.st_dev,
                                (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                                st.st_mtim.tv_nsec);
    for (char **e = environ; *e && n < cap; e++)
        if (!strncmp(*e, "ZFVIZ_", 6))
            n += (size_t)snprintf(key + n, cap - n, "%s\n", *e);
    cr_assert(n < cap, "the demo run's key does not fit %zu bytes", cap);
}

/* The key file reads `key` exactly. */
static int demo_done(const char *path, const char *key)
{
    char *s = tu_read_file(path, NULL);
    const int same = s && !strcmp(s, key);
    free(s);
    return same;
}

void tu_demo_quick(tu_demo_run *r)
{
    char dir[1000], lock[1100], done[1100], tmp[1100], z[1024], key[4096];
    snprintf(dir, sizeof dir, "%s", tu_build("test-tmp/demo-quick"));
    snprintf(z, sizeof z, "%s", tu_build("tools/zfviz"));
    snprintf(r->out, sizeof r->out, "%s/out", dir);
    snprintf(r->log, sizeof r->log, "%s/stdout.txt", dir);
    snprintf(r->err, sizeof r->err, "%s/stderr.txt", dir);
    snprintf(lock, sizeof lock, "%s.lock", dir);
    snprintf(done, sizeof done, "%s.done", dir);
    snprintf(tmp, sizeof tmp, "%s.done.%d", dir, (int)getpid());
    demo_key(key, sizeof key, z);
    tu_system("mkdir -p '%s'", tu_build("test-tmp"));
    /* Left open on purpose: the shared lock lasts until this test's process ends, so that no
     * suite remakes the folder while this one reads it. */
    const int fd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    cr_assert(fd >= 0, "cannot open %s", lock);
    for (;;) {
        cr_assert_eq(flock(fd, LOCK_SH), 0, "cannot lock %s", lock);
        if (demo_done(done, key))
            return;
        flock(fd, LOCK_UN);
        cr_assert_eq(flock(fd, LOCK_EX), 0, "cannot lock %s", lock);
        if (!demo_done(done, key)) {
            unlink(done);
            int rc = tu_system("rm -rf '%s' && mkdir -p '%s'", dir, dir);
            if (!rc)
                rc = tu_system("'%s' demo --quick -o '%s' > '%s' 2> '%s'", z, r->out, r->log, r->err);
            if (rc) {
                flock(fd, LOCK_UN);
                close(fd);
                char *e = tu_read_file(r->err, NULL);
                cr_assert_fail("zfviz demo --quick exited %d: %s", rc, e ? e : "(no stderr)");
            }
            FILE *f = fopen(tmp, "w");
            const int wrote = f && fputs(key, f) >= 0;
            cr_assert(f && !fclose(f) && wrote && !rename(tmp, done), "cannot write %s", done);
        }
        flock(fd, LOCK_UN);
    }
}

zf_engine *tu_cpu_engine(zf_net *net)
{
    zf_engine *e = NULL;
    const zf_engine_opts o = {.batch = 1};
    cr_assert_eq(zf_engine_open(zf_engine_find("cpu"), net, &o, &e), ZF_OK, "cpu engine: %s", zf_last_error());
    return e;
}
