/* Shared helpers for the Criterion tests: deterministic random data, float64 comparison that
 * reports the first mismatch, and paths to sources, build outputs and generated fixtures. */
#ifndef ZF_TESTUTIL_H
#define ZF_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Uniform floats in [lo, hi) from a fixed-seed generator independent of the engine's own. */
void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
/* Largest |a-b| / max(|b|, floor) over the arrays; *where gets its index. */
double tu_max_rel_err(const float *a, const double *ref, size_t n, double floor, size_t *where);
double tu_max_rel_err_f(const float *a, const float *ref, size_t n, double floor, size_t *where);
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
/* The fixtures made from PyTorch by tests/fixtures/make_fixtures.py ("" if not generated). */
const char *tu_fixture(const char *rel);

#endif
