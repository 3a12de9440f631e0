/* Shared helpers for the Criterion tests (and the benchmarks' inputs): deterministic random data,
 * float64 comparison that reports the first mismatch, paths to sources, build outputs and
 * generated fixtures, and PNG/JPEG files written and read with the image libraries directly. */
#ifndef ZF_TESTUTIL_H
#define ZF_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "zf/engine.h"

/* splitmix64: the next of a fixed-seed sequence independent of the engine's own generator. */
uint64_t tu_mix(uint64_t *state);
/* Uniform floats in [lo, hi) from tu_mix. */
void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
/* Largest |a-b| / max(|b|, floor) over the arrays; *where gets its index. */
double tu_max_rel_err(const float *a, const double *ref, size_t n, double floor, size_t *where);
double tu_max_rel_err_f(const float *a, const float *ref, size_t n, double floor, size_t *where);
/* Largest |x[i]| (0 for none). */
double tu_max_abs(const float *x, size_t n);
/* The same over a float64 reference. */
double tu_max_abs_d(const double *x, size_t n);
/* "$ZF_SOURCE_DIR/rel" (falls back to the current directory). Static buffer per call slot. */
const char *tu_src(const char *rel);
/* "$ZF_BUILD_DIR/rel". */
const char *tu_build(const char *rel);
/* A fresh empty directory under the build tree's test-tmp folder, named for `tag`. */
const char *tu_tmpdir(const char *tag);
/* Runs a shell command, returns its exit status (-1 if it could not run). */
int tu_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The whole of a file, with a '\0' after it (so text can be read as a string); *len (when not
 * NULL) gets its size. NULL, and *len 0, when it cannot be read. The caller frees it. */
char *tu_read_file(const char *path, size_t *len);
/* (h, w, 3) RGB bytes written with libpng's simplified writer / libjpeg (quality 0-100), not with
 * the engine's own writers. 0 on success; -1, with the library's reason on stderr, on failure. */
int tu_write_png(const char *path, int w, int h, const uint8_t *rgb);
int tu_write_jpeg(const char *path, int w, int h, const uint8_t *rgb, int quality);
/* The fixtures made from PyTorch by tests/fixtures/make_fixtures.py ("" if not generated). */
const char *tu_fixture(const char *rel);
/* tu_fixture of the relative path that fmt and its arguments make ("onnx/%s", name). */
const char *tu_fixturef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));


/* ---- testutil_cr.c: helpers that fail the running Criterion test themselves (tests only; the
 * benchmarks link testutil.c alone) ---- */

/* tu_read_file, but the test fails (naming the file) where it cannot be read. */
void *tu_slurp(const char *path, size_t *len);
/* Writes the n bytes at p as the whole of `path`; the test fails where it cannot. */
void tu_write_file(const char *path, const void *p, size_t n);

/* NULL when what zfviz demo needs is here (the embedded models and Fashion-MNIST's test set), else
 * why not, for cr_skip_test. */
const char *tu_demo_missing(void);
/* One `zfviz demo --quick` that every demo suite of a build reads and none writes into: out is its
 * folder, log and err its stdout and stderr. Made once per zfviz binary and set of ZFVIZ_* variables
 * into the build tree's test-tmp/demo-quick (which holds the key of the run that made it, written
 * only once the run has succeeded), under a lock on which a suite that needs it at the same time
 * waits; the lock is then held shared until the calling test's process ends, so that no suite
 * remakes the folder under a reader. The test fails, with the demo's stderr, where the run fails. */
typedef struct tu_demo_run {
    char out[1024], log[1024], err[1024];
} tu_demo_run;
void tu_demo_quick(tu_demo_run *r);
/* x as float64 (malloc'd; the test fails where it cannot be). */
double *tu_doubles(const float *x, size_t n);
/* A convolution in float64 straight from its definition (groups, strides, padding): out (n, k, oh,
 * ow) from in (n, c, h, w), w (k, c / groups, kh, kw) and bias (k; NULL for none). The reference
 * the op tests hold every kernel path to. */
struct zf_conv_geom;
void tu_ref_conv(double *out, const double *in, const double *w, const double *bias, const struct zf_conv_geom *g);
/* The backward of tu_ref_conv in float64 from the definition: din (n, c, h, w) from the output
 * gradient dout (n, k, oh, ow) and, when dw is not NULL, dw (k, c / groups, kh, kw), which needs the
 * forward's input in. */
void tu_ref_conv_backward(double *din, double *dw, const float *in, const float *dout, const float *w,
                          const struct zf_conv_geom *g);
/* tu_ref_conv of float arguments. */
void tu_ref_conv_f(double *out, const float *in, const float *w, const float *bias, const struct zf_conv_geom *g);

/* tu_tmpdir(tag) copied into dir, and a new folder `name` in it, its path in sub. */
void tu_tmpdir_sub(char dir[2048], char sub[4096], const char *tag, const char *name);

/* A picture decoded as RGB with libpng (not with the engine's decoder or cairo). */
typedef struct tu_rgb {
    int w, h;
    uint8_t *px; /* (h, w, 3); the caller frees it */
} tu_rgb;
/* Decodes PNG bytes / a PNG file; the test fails, with libpng's reason, where it cannot. */
tu_rgb tu_png_decode(const void *bytes, size_t len);
tu_rgb tu_png_read(const char *path);
/* The pixel (x, y) of im; the test fails where it lies outside. */
const uint8_t *tu_px(const tu_rgb *im, int x, int y);
/* What fn draws into an in-memory PNG document (zf_viz_doc_open_mem), decoded; the test fails,
 * with zf_last_error(), where a step fails. fn returns a zf_status. */
struct zf_viz_doc;
typedef int (*tu_render_fn)(struct zf_viz_doc *doc, const void *ctx);
tu_rgb tu_render_png(tu_render_fn fn, const void *ctx);
/* tu_render_png of the comparison page of models m[0] and m[1] (zf_viz_compare). */
struct zf_viz_compare_model;
tu_rgb tu_render_compare(const struct zf_viz_compare_model *m);
/* <what>_case, the inputs and options of a zf_viz_<what>(doc, &in, &opts) call, and
 * render_<what>, the tu_render_fn that makes it (the file includes zf/viz.h). */
#define TU_RENDER_CASE(what)                                                                        \
    typedef struct what##_case {                                                                    \
        zf_viz_##what##_in in;                                                                      \
        zf_viz_##what##_opts opts;                                                                  \
    } what##_case;                                                                                  \
    static zf_status render_##what(zf_viz_doc *doc, const void *c)                                  \
    {                                                                                               \
        return zf_viz_##what(doc, &((const what##_case *)c)->in, &((const what##_case *)c)->opts);  \
    }

/* The CPU engine on net (zf/engine.h), opened at batch 1; the caller closes it (zf_engine_close)
 * before freeing net. Asserts that it opens. */
zf_engine *tu_cpu_engine(zf_net *net);

#endif
