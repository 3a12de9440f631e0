/* Writers killed with SIGKILL at random moments (seeded): a child process rewrites one output
 * over and over, alternating two contents A and B, and is killed after a random delay. The file
 * left must be exactly A or exactly B (the PDF, which records its creation time: a complete PDF),
 * never a torn one; a database must pass SQLite's integrity check, open, and hold only runs whose
 * counts agree with their rows. Children do all the work (OpenMP and fork do not mix). */
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/db.h"
#include "zf/io.h"
#include "zf/net.h"
#include "zf/viz.h"

#define ROUNDS 12

typedef zf_status (*writer_fn)(const char *path, int which);

static zf_status write_npy(const char *path, int which)
{
    int64_t shape[2] = {1024, 2048}; /* 8 MiB: long enough to be killed inside */
    zf_tensor *t = zf_tensor_new(ZF_DTYPE_F32, 2, shape);
    if (!t)
        return ZF_ERR_NOMEM;
    float *x = t->data;
    for (int64_t i = 0; i < shape[0] * shape[1]; i++)
        x[i] = (float)(which + 1) + (float)(i % 1000);
    zf_status st = zf_npy_write(path, t);
    zf_tensor_free(t);
    return st;
}

static zf_status write_safetensors(const char *path, int which)
{
    zf_net *net = NULL;
    zf_status st = zf_net_new_builtin("alexnet-mini", &net);
    if (!st)
        st = zf_net_init_random(net, 100 + (uint64_t)which);
    if (!st)
        st = zf_net_save_safetensors(net, path);
    zf_net_free(net);
    return st;
}

static zf_status write_png(const char *path, int which)
{
    zf_image *img = zf_image_new(1024, 768);
    if (!img)
        return ZF_ERR_NOMEM;
    uint64_t s = 88172645463325252u + (uint64_t)which;
    for (size_t i = 0; i < (size_t)1024 * 768 * 3; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        img->rgb[i] = (uint8_t)s;
    }
    zf_status st = zf_image_save_png(path, img);
    zf_image_free(img);
    return st;
}

static zf_status write_pdf(const char *path, int which)
{
    zf_viz_doc *doc = NULL;
    zf_status st = zf_viz_doc_open(path, &doc);
    char text[4096];
    int k = 0;
    for (int i = 0; i < 60; i++)
        k += snprintf(text + k, sizeof text - (size_t)k, "line %d of version %d. ", i, which);
    zf_viz_text_block b = {"Crash safety", text, 0, 0};
    for (int p = 0; p < 20 && !st; p++)
        st = zf_viz_text_page(doc, "zfviz", &b, 1);
    if (!st)
        st = zf_viz_doc_finish(doc);
    zf_viz_doc_free(doc);
    return st;
}

static unsigned char *slurp(const char *path, size_t *len) { return (unsigned char *)tu_read_file(path, len); }

/* Runs w(path, which) in a child; asserts it exits 0. */
static void run_child(writer_fn w, const char *path, int which)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0)
        _exit(w(path, which) == ZF_OK ? 0 : 1);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writing %s failed", path);
}

/* A child that rewrites path forever (A, B, A, ...), killed after `us` microseconds. */
static void kill_writer(writer_fn w, const char *path, unsigned us)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        for (int i = 1;; i++)
            if (w(path, i & 1) != ZF_OK)
                _exit(1);
    }
    usleep(us);
    kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "the writer of %s stopped by itself (it failed)", path);
}

static void kill_loop(const char *name, writer_fn w, int exact, unsigned seed)
{
    const char *dir = tu_tmpdir("crash");
    char path[512], ref[2][512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len[2];
    unsigned char *want[2];
    for (int k = 0; k < 2; k++) {
        snprintf(ref[k], sizeof ref[k], "%s/ref%d-%s", dir, k, name);
        run_child(w, ref[k], k);
        want[k] = slurp(ref[k], &len[k]);
        cr_assert(want[k]);
    }
    run_child(w, path, 0); /* the previous file */
    srand(seed);
    for (int r = 0; r < ROUNDS; r++) {
        unsigned us = 2000 + (unsigned)(rand() % 150000);
        kill_writer(w, path, us);
        size_t n;
        unsigned char *got = slurp(path, &n);
        cr_assert(got, "%s: round %d (killed after %u us): the file is gone", name, r, us);
        if (exact) {
            int same = (n == len[0] && !memcmp(got, want[0], n)) || (n == len[1] && !memcmp(got, want[1], n));
            cr_assert(same, "%s: round %d (killed after %u us): %zu bytes, neither the previous "
                      "file nor the new one", name, r, us, n);
        } else {
            cr_assert(n > 16 && !memcmp(got, "%PDF-", 5) && strstr((char *)got + n - 16, "%%EOF"),
                      "%s: round %d (killed after %u us): not a complete PDF (%zu bytes)", name, r,
                      us, n);
        }
        free(got);
    }
    free(want[0]);
    free(want[1]);
}

Test(crash_safety, npy_is_previous_or_new) { kill_loop("x.npy", write_npy, 1, 21); }
Test(crash_safety, safetensors_is_previous_or_new) { kill_loop("w.safetensors", write_safetensors, 1, 22); }
Test(crash_safety, png_is_previous_or_new) { kill_loop("x.png", write_png, 1, 23); }
Test(crash_safety, pdf_is_complete) { kill_loop("x.pdf", write_pdf, 0, 24); }

/* ---- the database ---- */

static const char *scan_images[3];

/* Scans the same images again and again, each time as a new run (top_k differs). */
static zf_status scan_forever(const char *path, int which)
{
    (void)which;
    zf_net *net = NULL;
    zf_status st = zf_net_new_builtin("alexnet-mini", &net);
    if (!st)
        st = zf_net_init_random(net, 3);
    for (int k = 1; !st; k++) {
        zf_db *db = NULL;
        if ((st = zf_db_open(path, NULL, &db)))
            break;
        zf_scan_opts o = {.top_k = k, .batch = 1, .chunk = 1, .images_arg = "images"};
        zf_scan_result res;
        st = zf_db_scan(db, net, scan_images, 3, &o, &res);
        zf_db_close(db);
    }
    zf_net_free(net);
    return st;
}

static void check_db(const char *path, int r, unsigned us, int *with_runs)
{
    /* read-write, as the next command opens it: a writer killed while it made the schema (before
     * the file is in WAL mode) leaves a hot rollback journal, which only a connection that may
     * write rolls back; a read-only one refuses with SQLITE_READONLY_ROLLBACK, which says nothing
     * of the file's consistency */
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK, "round %d (%u us): %s", r,
                 us, sqlite3_errmsg(db));
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK,
                 "round %d (%u us): %s (%d)", r, us, sqlite3_errmsg(db), sqlite3_extended_errcode(db));
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "ok", "round %d (%u us)", r, us);
    sqlite3_finalize(s);
    /* every run's committed count is the number of its image rows (once the schema is there: the
     * first round may kill the child before it made it) */
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM runs WHERE next_seq != (SELECT count(*) FROM "
                               "run_images WHERE run_id = runs.id)", -1, &s, NULL) == SQLITE_OK) {
        cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
        cr_assert_eq(sqlite3_column_int(s, 0), 0, "round %d (%u us): a run's count disagrees with "
                     "its rows", r, us);
        sqlite3_finalize(s);
        (*with_runs)++;
    }
    sqlite3_close(db);
    zf_db *zdb = NULL;
    cr_assert_eq(zf_db_open(path, NULL, &zdb), ZF_OK, "round %d (%u us): %s", r, us, zf_last_error());
    zf_db_close(zdb);
}

Test(crash_safety, database_stays_consistent)
{
    scan_images[0] = tu_fixture("image/baseline.jpg");
    scan_images[1] = tu_fixture("image/rgb.png");
    scan_images[2] = tu_fixture("image/grey.png");
    char path[512];
    snprintf(path, sizeof path, "%s/scan.db", tu_tmpdir("crash-db"));
    srand(25);
    int with_runs = 0;
    for (int r = 0; r < ROUNDS; r++) {
        unsigned us = 20000 + (unsigned)(rand() % 300000);
        kill_writer(scan_forever, path, us);
        check_db(path, r, us, &with_runs);
    }
    cr_assert_gt(with_runs, ROUNDS / 2, "the scans were killed before they wrote anything");
}
