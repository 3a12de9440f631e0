/* The SQLite store: schema and its version, locks held by other processes, read-only files and
 * folders, the report queries on hand-made rows, hashes, PNG blobs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/clock.h"
#include "zf/db.h"

static const char *path_in(const char *dir, const char *name)
{
    static char bufs[4][4096];
    static int slot;
    char *b = bufs[slot++ & 3];
    snprintf(b, 4096, "%s/%s", dir, name);
    return b;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    cr_assert(rc == SQLITE_ROW, "%s: no row (%s)", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void query_text(sqlite3 *db, const char *sql, char *out, size_t len)
{
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, err ? err : "");
}

static zf_db *open_rw(const char *path, double timeout)
{
    zf_db_opts o = {ZF_DB_READWRITE, timeout, NULL, NULL};
    zf_db *db = NULL;
    zf_status s = zf_db_open(path, &o, &db);
    cr_assert_eq(s, ZF_OK, "open %s: %s", path, zf_last_error());
    return db;
}

Test(db, new_database_gets_schema_version_wal_and_foreign_keys)
{
    const char *dir = tu_tmpdir("db_schema");
    zf_db *db = open_rw(path_in(dir, "a.db"), 5);
    sqlite3 *h = zf_db_handle(db);
    cr_assert_eq(query_int(h, "PRAGMA user_version"), ZF_DB_SCHEMA_VERSION);
    cr_assert_eq(query_int(h, "PRAGMA foreign_keys"), 1);
    char mode[16];
    query_text(h, "PRAGMA journal_mode", mode, sizeof mode);
    cr_assert_str_eq(mode, "wal");
    const char *tables[] = {"models", "images", "runs", "run_layers", "run_images", "unit_stats",
                            "renderings", "topk", "unit_summary", "layer_summary"};
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_schema WHERE name = '%s'", tables[i]);
        cr_assert_eq(query_int(h, sql), 1, "missing %s", tables[i]);
    }
    zf_db_close(db);
    /* opening again changes nothing */
    db = open_rw(path_in(dir, "a.db"), 5);
    cr_assert_eq(query_int(zf_db_handle(db), "PRAGMA user_version"), ZF_DB_SCHEMA_VERSION);
    zf_db_close(db);
}

Test(db, foreign_keys_are_enforced)
{
    const char *dir = tu_tmpdir("db_fk");
    zf_db *db = open_rw(path_in(dir, "a.db"), 5);
    int rc = sqlite3_exec(zf_db_handle(db),
                          "INSERT INTO run_images (run_id, seq, image_id) VALUES (7, 0, 7)", NULL,
                          NULL, NULL);
    cr_assert_eq(rc & 0xff, SQLITE_CONSTRAINT, "a row pointing at no run was accepted (rc %d)", rc);
    zf_db_close(db);
}

Test(db, newer_schema_and_foreign_files_are_refused_with_a_reason)
{
    const char *dir = tu_tmpdir("db_foreign");
    zf_db *db = open_rw(path_in(dir, "new.db"), 5);
    exec_ok(zf_db_handle(db), "PRAGMA user_version = 99");
    zf_db_close(db);
    zf_db_opts o = {ZF_DB_READWRITE, 1, NULL, NULL};
    cr_assert_eq(zf_db_open(path_in(dir, "new.db"), &o, &db), ZF_ERR_DB);
    cr_assert(strstr(zf_last_error(), "newer"), "message: %s", zf_last_error());
    cr_assert(strstr(zf_last_error(), "new.db"), "message: %s", zf_last_error());

    sqlite3 *h;
    cr_assert_eq(sqlite3_open(path_in(dir, "other.db"), &h), SQLITE_OK);
    exec_ok(h, "CREATE TABLE t (x)");
    sqlite3_close(h);
    cr_assert_eq(zf_db_open(path_in(dir, "other.db"), &o, &db), ZF_ERR_DB);
    cr_assert(strstr(zf_last_error(), "not a zfviz database"), "message: %s", zf_last_error());

    FILE *f = fopen(path_in(dir, "text.db"), "w");
    fputs("this is not a database at all, just some text that is long enough\n", f);
    fclose(f);
    cr_assert_eq(zf_db_open(path_in(dir, "text.db"), &o, &db), ZF_ERR_DB);
    cr_assert(strstr(zf_last_error(), "not a"), "message: %s", zf_last_error());
}

/* A child process that holds the database's write lock until told to let go. */
typedef struct holder {
    pid_t pid;
    int release_fd;
} holder;

static holder hold_lock(const char *path, const char *journal)
{
    int ready[2], release[2];
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(release), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(release[1]);
        sqlite3 *h;
        char sql[128];
        int ok = sqlite3_open(path, &h) == SQLITE_OK;
        snprintf(sql, sizeof sql, "PRAGMA journal_mode = %s", journal);
        ok = ok && sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK;
        ok = ok && sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK;
        ok = ok && sqlite3_exec(h, "CREATE TABLE IF NOT EXISTS held (x)", NULL, NULL, NULL) == SQLITE_OK;
        char c = ok ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1)
            _exit(3);
        while (read(release[0], &c, 1) < 0 && errno == EINTR)
            ;
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(h);
        _exit(ok ? 0 : 1);
    }
    close(ready[1]);
    close(release[0]);
    char c = 0;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    close(ready[0]);
    cr_assert_eq(c, 'y', "the lock holder could not take the lock");
    return (holder){pid, release[1]};
}

static void release_lock(holder h)
{
    close(h.release_fd);
    int st;
    waitpid(h.pid, &st, 0);
}

static int waits_seen;
static void count_wait(void *ctx, const char *path, double waited, double timeout)
{
    (void)ctx;
    (void)path;
    cr_assert(waited < timeout + 0.5);
    waits_seen++;
}

Test(db, write_lock_held_by_another_process_waits_then_fails_clearly)
{
    const char *dir = tu_tmpdir("db_lock");
    const char *path = path_in(dir, "a.db");
    zf_db_close(open_rw(path, 5));
    holder h = hold_lock(path, "WAL");
    zf_db_opts o = {ZF_DB_READWRITE, 1.3, count_wait, NULL};
    zf_db *db = NULL;
    waits_seen = 0;
    /* WAL: opening and reading work while another process writes */
    cr_assert_eq(zf_db_open(path, &o, &db), ZF_OK, "%s", zf_last_error());
    double t0 = zf_clock_now();
    zf_status s = zf_db_begin(db);
    double waited = zf_clock_now() - t0;
    cr_assert_eq(s, ZF_ERR_DB);
    cr_assert(waited >= 1.2 && waited < 5, "waited %.2f s for a 1.3 s timeout", waited);
    cr_assert(strstr(zf_last_error(), "locked by another process"), "message: %s", zf_last_error());
    cr_assert(strstr(zf_last_error(), "a.db"), "message: %s", zf_last_error());
    cr_assert(strstr(zf_last_error(), "waiting 1."), "message: %s", zf_last_error());
    cr_assert_eq(waits_seen, 1, "the wait callback ran %d times in 1.3 s (expected once, at 1 s)",
                 waits_seen);
    release_lock(h);
    /* once the other process lets go, the same connection writes */
    cr_assert_eq(zf_db_begin(db), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_db_commit(db), ZF_OK, "%s", zf_last_error());
    zf_db_close(db);
}

Test(db, exclusive_lock_at_open_waits_then_fails_clearly)
{
    const char *dir = tu_tmpdir("db_lock_open");
    const char *path = path_in(dir, "plain.db");
    holder h = hold_lock(path, "DELETE"); /* a rollback-journal file, exclusively locked */
    zf_db_opts o = {ZF_DB_READWRITE, 0.4, NULL, NULL};
    zf_db *db = NULL;
    double t0 = zf_clock_now();
    zf_status s = zf_db_open(path, &o, &db);
    double waited = zf_clock_now() - t0;
    release_lock(h);
    cr_assert_eq(s, ZF_ERR_DB);
    cr_assert_null(db);
    cr_assert(waited >= 0.35 && waited < 4, "waited %.2f s for a 0.4 s timeout", waited);
    cr_assert(strstr(zf_last_error(), "locked by another process"), "message: %s", zf_last_error());
}

/* Runs fn in a child without root's power to write anything (as nobody when we are root),
 * returning its exit status; the child writes its error message into msg. */
static int as_unprivileged(int (*fn)(const char *arg, char *msg), const char *arg, char *msg,
                           size_t len)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(99);
        char m[1024] = "";
        int rc = fn(arg, m);
        if (write(p[1], m, strlen(m)) < 0)
            _exit(98);
        _exit(rc);
    }
    close(p[1]);
    ssize_t got = read(p[0], msg, len - 1);
    msg[got > 0 ? got : 0] = 0;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* 0 when opening for writing fails with a message that mentions `arg`'s expectation. */
static int try_write_open(const char *path, char *msg)
{
    zf_db_opts o = {ZF_DB_READWRITE, 0.5, NULL, NULL};
    zf_db *db = NULL;
    zf_status s = zf_db_open(path, &o, &db);
    if (s == ZF_OK) {
        /* the open may succeed only if writing also works */
        s = zf_db_begin(db);
        if (!s)
            s = zf_db_commit(db);
        zf_db_close(db);
        if (s == ZF_OK) {
            snprintf(msg, 1024, "opened and wrote");
            return 1;
        }
    }
    snprintf(msg, 1024, "%s", zf_last_error());
    return 0;
}

static int try_read_open(const char *path, char *msg)
{
    zf_db_opts o = {ZF_DB_READONLY, 0.5, NULL, NULL};
    zf_db *db = NULL;
    zf_status s = zf_db_open(path, &o, &db);
    if (s) {
        snprintf(msg, 1024, "%s", zf_last_error());
        return 1;
    }
    int64_t run = 0;
    s = zf_db_run_latest(db, NULL, &run);
    snprintf(msg, 1024, "%s", s ? zf_last_error() : "");
    zf_db_close(db);
    /* the database is empty: "no scans yet" is the expected, clean answer */
    return s == ZF_ERR_ARG && strstr(msg, "no scans") ? 0 : 1;
}

static const char *world_tmpdir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/zf_db_ro.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    chmod(dir, 0755);
    return dir;
}

Test(db, read_only_file_gives_a_clear_error)
{
    const char *dir = world_tmpdir();
    const char *path = path_in(dir, "ro.db");
    zf_db_close(open_rw(path, 5));
    chmod(path, 0444);
    char msg[1024];
    int rc = as_unprivileged(try_write_open, path, msg, sizeof msg);
    cr_assert_eq(rc, 0, "child %d: %s", rc, msg);
    cr_assert(strstr(msg, "read-only"), "message: %s", msg);
    cr_assert(strstr(msg, "ro.db"), "message: %s", msg);
    /* reading still works */
    rc = as_unprivileged(try_read_open, path, msg, sizeof msg);
    cr_assert_eq(rc, 0, "read-only open: child %d: %s", rc, msg);
    tu_system("rm -rf '%s'", dir);
}

Test(db, read_only_folder_gives_a_clear_error)
{
    const char *dir = world_tmpdir();
    const char *path = path_in(dir, "rodir.db");
    zf_db_close(open_rw(path, 5));
    chmod(path, 0666);
    chmod(dir, 0555);
    char msg[1024];
    int rc = as_unprivileged(try_write_open, path, msg, sizeof msg);
    cr_assert_eq(rc, 0, "child %d: %s", rc, msg);
    cr_assert(strstr(msg, "folder") && strstr(msg, "read-only"), "message: %s", msg);
    /* a new database in that folder */
    rc = as_unprivileged(try_write_open, path_in(dir, "new.db"), msg, sizeof msg);
    cr_assert_eq(rc, 0, "child %d: %s", rc, msg);
    cr_assert(strstr(msg, "cannot create") && strstr(msg, "read-only"), "message: %s", msg);
    /* reports read it all the same */
    rc = as_unprivileged(try_read_open, path, msg, sizeof msg);
    cr_assert_eq(rc, 0, "read-only open: child %d: %s", rc, msg);
    chmod(dir, 0755);
    tu_system("rm -rf '%s'", dir);
}

static void check_sha256_vectors(void)
{
    char hex[65];
    zf_db_sha256_hex("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    zf_db_sha256_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    zf_db_sha256_hex(m, strlen(m), hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    size_t n = 1000000;
    char *a = malloc(n);
    memset(a, 'a', n);
    zf_db_sha256_hex(a, n, hex);
    free(a);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* 55, 56 and 64 bytes: the padding's edge cases */
    static const char *const edge[3] = {
        "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
        "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
        "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"};
    const int lens[3] = {55, 56, 64};
    for (int i = 0; i < 3; i++) {
        zf_db_sha256_hex("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                         (size_t)lens[i], hex);
        cr_assert_str_eq(hex, edge[i], "%d bytes of 'a'", lens[i]);
    }
}

Test(db, sha256_matches_the_standard_test_vectors) { check_sha256_vectors(); }

/* Pseudo-random buffers of odd sizes around the block and padding boundaries and of a few MB,
 * against coreutils' sha256sum of the same bytes written to a file. */
Test(db, sha256_matches_sha256sum_on_odd_sizes)
{
    const char *dir = tu_tmpdir("sha256sum");
    const size_t sizes[] = {1, 63, 65, 119, 120, 1000003, 3 * 1048576 + 17};
    size_t max = sizes[sizeof sizes / sizeof *sizes - 1];
    uint8_t *buf = malloc(max);
    cr_assert(buf);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < max; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)(x >> 24);
    }
    char path[1024], want[65], hex[65];
    snprintf(path, sizeof path, "%s/data", dir);
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        FILE *f = fopen(path, "wb");
        cr_assert(f && fwrite(buf, 1, sizes[k], f) == sizes[k] && fclose(f) == 0);
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
        FILE *p = popen(cmd, "r");
        cr_assert(p && fscanf(p, "%64s", want) == 1, "sha256sum did not run");
        cr_assert_eq(pclose(p), 0);
        zf_db_sha256_hex(buf, sizes[k], hex);
        cr_expect_str_eq(hex, want, "%zu bytes", sizes[k]);
    }
    free(buf);
    tu_system("rm -rf '%s'", dir);
}

Test(db, png_encoding_decodes_to_the_same_pixels)
{
    int w = 13, h = 7;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        rgb[i] = (uint8_t)(i * 37 + 11);
    zf_image img = {w, h, rgb};
    void *png = NULL;
    size_t len = 0;
    cr_assert_eq(zf_db_png_encode(&img, &png, &len), ZF_OK, "%s", zf_last_error());
    tu_rgb back = tu_png_decode(png, len);
    cr_assert_eq(back.w, w);
    cr_assert_eq(back.h, h);
    for (int i = 0; i < w * h * 3; i++)
        cr_assert_eq(back.px[i], rgb[i], "byte %d: %d, expected %d", i, back.px[i], rgb[i]);
    free(back.px);
    free(png);
    free(rgb);
}

Test(db, renderings_round_trip_byte_for_byte_and_replace_their_predecessor)
{
    const char *dir = tu_tmpdir("db_render");
    zf_db *db = open_rw(path_in(dir, "a.db"), 5);
    size_t len = 3001;
    uint8_t *blob = malloc(len);
    for (size_t i = 0; i < len; i++)
        blob[i] = (uint8_t)(i * 131 + 7);
    zf_db_rendering r = {-1, -1, "conv5", 3, 1, "deconv", "a test", 5, 4};
    int64_t id1 = 0, id2 = 0;
    cr_assert_eq(zf_db_rendering_put(db, &r, blob, len, &id1), ZF_OK, "%s", zf_last_error());
    blob[0] ^= 0xff;
    cr_assert_eq(zf_db_rendering_put(db, &r, blob, len, &id2), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(query_int(zf_db_handle(db), "SELECT count(*) FROM renderings"), 1,
                 "the second rendering of the same thing should replace the first");
    void *back = NULL;
    size_t blen = 0;
    cr_assert_eq(zf_db_rendering_png(db, id2, &back, &blen), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(blen, len);
    cr_assert_eq(memcmp(back, blob, len), 0);
    free(back);
    free(blob);
    zf_db_close(db);
}

/* Rows as a finished scan leaves them, written by hand: the report must pick exactly the units
 * the numbers say. */
Test(db, dead_report_and_topk_read_back_hand_made_rows)
{
    const char *dir = tu_tmpdir("db_report");
    zf_db *db = open_rw(path_in(dir, "a.db"), 5);
    sqlite3 *h = zf_db_handle(db);
    exec_ok(h,
            "INSERT INTO models (id, arch, sha256, n_params, input, preproc) "
            "  VALUES (1, 'toy', 'abc', 10, '3x9x9', 'rgb');"
            "INSERT INTO images (id, path, sha256, status, error) VALUES "
            "  (1, '/a.png', 'x', 'ok', NULL), (2, '/b.png', 'y', 'ok', NULL),"
            "  (3, '/c.png', NULL, 'error', 'broken');"
            "INSERT INTO runs (id, model_id, images, list_sha256, n_images, layers, top_k, batch,"
            "  chunk, next_seq, n_ok, n_failed, finished) VALUES (1, 1, 'dir', 'l', 3, "
            "  'conv1,fc2', 2, 1, 1, 3, 2, 1, 'now');"
            "INSERT INTO run_layers VALUES (1, 'conv1', 0, 'conv', 3, 2, 2), (1, 'fc2', 3, 'fc', 2, 1, 1);"
            "INSERT INTO run_images (run_id, seq, image_id) VALUES (1, 0, 1), (1, 1, 3), (1, 2, 2);"
            /* conv1: unit 0 dead, unit 1 active on 1 of 2 images, unit 2 on both;
             * fc2: unit 0 active on both, unit 1 dead with max exactly 0 */
            "INSERT INTO unit_stats (run_id, layer, unit, images, active_images, positions, "
            "positive_positions, sum, max, max_image_id, max_y, max_x, max_seq, top) VALUES "
            "  (1, 'conv1', 0, 2, 0, 8, 0, 0, -1.5, 1, 0, 1, 0, '[]'),"
            "  (1, 'conv1', 1, 2, 1, 8, 1, 0.25, 0.25, 2, 1, 1, 2,"
            "   '[[2,2,0.25,1,1,0,0,5,5],[1,0,-0.5,0,1,0,0,5,4]]'),"
            "  (1, 'conv1', 2, 2, 2, 8, 5, 3.0, 2.0, 1, 0, 0, 0, '[]'),"
            "  (1, 'fc2', 0, 2, 2, 2, 2, 1.0, 0.75, 2, 0, 0, 2, '[]'),"
            "  (1, 'fc2', 1, 2, 0, 2, 0, 0, 0, 1, 0, 0, 0, '[]');"
            "INSERT INTO runs (id, model_id, images, list_sha256, n_images, layers, top_k, batch, "
            "  chunk) VALUES (2, 1, 'dir2', 'l2', 5, 'conv1', 2, 1, 1);"
            "INSERT INTO run_layers VALUES (2, 'conv1', 0, 'conv', 3, 2, 2);");
    zf_db_dead *d = NULL;
    int n = 0;
    cr_assert_eq(zf_db_dead_units(db, 1, NULL, 0, &d, &n), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(n, 2);
    cr_assert(!strcmp(d[0].layer, "conv1") && d[0].unit == 0 && d[0].max_activation == -1.5);
    cr_assert(!strcmp(d[1].layer, "fc2") && d[1].unit == 1 && d[1].active_fraction == 0);
    free(d);
    cr_assert_eq(zf_db_dead_units(db, 1, NULL, 0.75, &d, &n), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(n, 3, "min-active 0.75 adds conv1 unit 1 (active on 0.5)");
    cr_assert(!strcmp(d[1].layer, "conv1") && d[1].unit == 1 && d[1].active_fraction == 0.5);
    free(d);
    cr_assert_eq(zf_db_dead_units(db, 1, "fc2", 0, &d, &n), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(n, 1);
    free(d);
    cr_assert_eq(zf_db_dead_units(db, 1, "conv9", 0, &d, &n), ZF_ERR_ARG);
    cr_assert(strstr(zf_last_error(), "conv1, fc2"), "message: %s", zf_last_error());

    zf_db_example *ex = NULL;
    cr_assert_eq(zf_db_topk_get(db, 1, "conv1", 1, &ex, &n), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(n, 2);
    cr_assert(ex[0].rank == 1 && !strcmp(ex[0].path, "/b.png") && ex[0].score == 0.25 &&
              ex[0].box.x1 == 5 && ex[0].y == 1);
    cr_assert(ex[1].rank == 2 && !strcmp(ex[1].path, "/a.png") && ex[1].score == -0.5);
    free(ex);
    cr_assert_eq(zf_db_topk_get(db, 1, "conv1", 3, &ex, &n), ZF_ERR_ARG);

    int64_t run = 0;
    cr_assert_eq(zf_db_run_latest(db, "fc2", &run), ZF_OK);
    cr_assert_eq(run, 1);
    cr_assert_eq(zf_db_run_latest(db, NULL, &run), ZF_OK);
    cr_assert_eq(run, 2);
    zf_db_run r;
    cr_assert_eq(zf_db_run_get(db, 1, &r), ZF_OK);
    cr_assert(r.complete && r.n_ok == 2 && r.n_failed == 1 && !strcmp(r.layers, "conv1,fc2"));
    cr_assert_eq(zf_db_run_get(db, 2, &r), ZF_OK);
    cr_assert(!r.complete);
    zf_db_close(db);
}

/* A writer killed in the middle of a transaction while the file is not in WAL mode (as when a scan
 * is stopped while it switches a new file to WAL, or another program wrote to it) leaves a hot
 * rollback journal, with uncommitted pages already in the file. A read-only open rolls it back, as
 * the next writer would, and reads the last commit: rows 1..20,000, not the killed transaction's
 * negated ones (what reading the file as it lies gives). */
Test(db, read_only_open_after_an_interrupted_write_reads_the_last_commit)
{
    const char *path = path_in(tu_tmpdir("db-hot-journal"), "hot.db");
    zf_db_close(open_rw(path, 5));
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        sqlite3 *c = NULL;
        if (sqlite3_open(path, &c) != SQLITE_OK ||
            sqlite3_exec(c, "PRAGMA journal_mode = DELETE; CREATE TABLE t (x); WITH RECURSIVE n(i) AS "
                            "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) INSERT INTO t SELECT i FROM n;",
                         NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(c, "PRAGMA cache_size = 1; BEGIN; UPDATE t SET x = -x; WITH RECURSIVE n(i) AS "
                            "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
                            "INSERT INTO t SELECT randomblob(300) FROM n;",
                         NULL, NULL, NULL) != SQLITE_OK)
            _exit(1);
        raise(SIGKILL);
        _exit(2);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer was not killed (status %d)", status);
    char journal[4200];
    snprintf(journal, sizeof journal, "%s-journal", path);
    struct stat sb;
    cr_assert(stat(journal, &sb) == 0 && sb.st_size > 0, "no hot journal left behind");
    zf_db_opts o = {ZF_DB_READONLY, 5, NULL, NULL};
    zf_db *db = NULL;
    cr_assert_eq(zf_db_open(path, &o, &db), ZF_OK, "%s", zf_last_error());
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(zf_db_handle(db), "SELECT count(*), sum(x) FROM t", -1, &s, NULL), SQLITE_OK,
                 "%s", sqlite3_errmsg(zf_db_handle(db)));
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_expect_eq(sqlite3_column_int64(s, 0), 20000);
    cr_expect_eq(sqlite3_column_int64(s, 1), (sqlite3_int64)20000 * 20001 / 2);
    sqlite3_finalize(s);
    zf_db_close(db);
    cr_expect(stat(journal, &sb) != 0 || sb.st_size == 0, "the journal is still hot");
}
