/* Tests of the zfviz program as a user meets it: one model-resolution rule recorded exactly in
 * the scan database (and read back by sheet, topk --deconv, compare and filters), the OpenMP wait
 * policy every command runs with, and messages (plain library errors, `zfviz help CMD`, the same
 * two lines for a bad option in every command). */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "zf/io.h"
#include "testutil.h"

static const char *zfviz(void)
{
    static char path[1024];
    if (!path[0])
        snprintf(path, sizeof path, "%s", tu_build("tools/zfviz"));
    return path;
}

/* The whole of a small file as a string ("" when missing); the caller frees it. */
static char *slurp(const char *path)
{
    char *s = tu_read_file(path, NULL);
    return s ? s : strdup("");
}

/* Runs `zfviz ARGS` in dir with stdout to dir/out and stderr to dir/err; returns the exit status. */
static int run(const char *dir, const char *args)
{
    return tu_system("cd '%s' && env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT '%s' %s >out 2>err </dev/null", dir, zfviz(),
                     args);
}

static char *out_of(const char *dir, const char *which)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, which);
    return slurp(p);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Two copies of the sample photo in a folder of its own: what a scan needs. */
static const char *image_folder(const char *tag)
{
    const char *dir = tu_tmpdir(tag);
    cr_assert_eq(tu_system("mkdir -p '%s/imgs' && cp '%s' '%s/imgs/a.jpg' && cp '%s' '%s/imgs/b.jpg'", dir,
                           tu_src("assets/sample.jpg"), dir, tu_src("assets/sample.jpg"), dir),
                 0);
    return dir;
}

static void models_row(const char *db, char *file, char *weights, size_t len)
{
    sqlite3 *sql = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open_v2(db, &sql, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(sql, "SELECT file, weights FROM models", -1, &st, NULL), SQLITE_OK,
                 "%s", sqlite3_errmsg(sql));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    const char *f = (const char *)sqlite3_column_text(st, 0), *w = (const char *)sqlite3_column_text(st, 1);
    snprintf(file, len, "%s", f ? f : "");
    snprintf(weights, len, "%s", w ? w : "");
    cr_expect_eq(sqlite3_step(st), SQLITE_DONE, "one model row");
    sqlite3_finalize(st);
    sqlite3_close(sql);
}

static void exec_sql(const char *db, const char *stmt)
{
    sqlite3 *sql = NULL;
    cr_assert_eq(sqlite3_open(db, &sql), SQLITE_OK);
    char *err = NULL;
    cr_assert_eq(sqlite3_exec(sql, stmt, NULL, NULL, &err), SQLITE_OK, "%s", err ? err : "");
    sqlite3_close(sql);
}

/* ---------------------------------------------------------------- item 3: provenance */

Test(cli, scan_with_the_embedded_model_records_it_and_the_readers_find_it)
{
    const void *b;
    size_t len;
    if (!zft_embedded_model("alexnet-mini", &b, &len))
        cr_skip_test("this build has no embedded models");
    const char *dir = image_folder("cli_embedded_scan");
    cr_assert_eq(run(dir, "scan --images imgs --db s.db --layers conv5"), 0, "%s", out_of(dir, "err"));
    char file[1024], weights[1024];
    char db[1024];
    snprintf(db, sizeof db, "%s/s.db", dir);
    models_row(db, file, weights, sizeof file);
    cr_expect_str_eq(file, "alexnet-mini", "the scan names the embedded model");
    cr_expect_str_eq(weights, "", "and no random weights");
    cr_expect_eq(run(dir, "topk --db s.db --layer conv5 --unit 3 --deconv"), 0, "topk --deconv: %s",
                 out_of(dir, "err"));
    cr_expect_eq(run(dir, "sheet --db s.db --layer conv5 --top-units 2 -o sheet.png"), 0, "sheet: %s",
                 out_of(dir, "err"));
    cr_expect_eq(run(dir, "report --db s.db -o report.pdf"), 0, "report: %s", out_of(dir, "err"));
}

Test(cli, databases_that_recorded_the_embedded_model_as_random_weights_still_open)
{
    const void *b;
    size_t len;
    if (!zft_embedded_model("alexnet-mini", &b, &len))
        cr_skip_test("this build has no embedded models");
    const char *dir = image_folder("cli_old_provenance");
    cr_assert_eq(run(dir, "scan --images imgs --db s.db --layers conv5"), 0, "%s", out_of(dir, "err"));
    char db[1024];
    snprintf(db, sizeof db, "%s/s.db", dir);
    /* what scans wrote before they named embedded models */
    exec_sql(db, "UPDATE models SET file = '', weights = 'random:0'");
    cr_expect_eq(run(dir, "sheet --db s.db --layer conv5 --top-units 1 -o sheet.png"), 0, "sheet: %s",
                 out_of(dir, "err"));
}

/* The numbers compare prints for a model: "... frequency shares low A% mid B% high C%". */
static void shares(const char *line_start, double v[3])
{
    const char *p = strstr(line_start, "low ");
    cr_assert(p, "no frequency shares in '%s'", line_start);
    cr_assert_eq(sscanf(p, "low %lf%% mid %lf%% high %lf%%", &v[0], &v[1], &v[2]), 3);
}

Test(cli, compare_of_mini_arch_names_uses_their_trained_models)
{
    const char *dir = tu_tmpdir("cli_compare");
    const char *a = tu_src("assets/models/alexnet-mini.safetensors"), *z = tu_src("assets/models/zfnet-mini.safetensors");
    if (access(a, R_OK) || access(z, R_OK))
        cr_skip_test("no trained models in assets/models");
    char args[4096];
    snprintf(args, sizeof args, "compare alexnet-mini='%s' zfnet-mini='%s' -o files.png", a, z);
    cr_assert_eq(run(dir, args), 0, "%s", out_of(dir, "err"));
    char *files = out_of(dir, "out");
    cr_assert_eq(run(dir, "compare alexnet-mini zfnet-mini -o names.png"), 0, "%s", out_of(dir, "err"));
    char *names = out_of(dir, "out");
    const char *f2 = strchr(files, '\n'), *n2 = strchr(names, '\n');
    cr_assert(f2 && n2, "two lines each: '%s' / '%s'", files, names);
    double fa[3], fz[3], na[3], nz[3];
    shares(files, fa);
    shares(f2 + 1, fz);
    shares(names, na);
    shares(n2 + 1, nz);
    for (int i = 0; i < 3; i++) {
        cr_expect_float_eq(na[i], fa[i], 1e-9, "alexnet-mini share %d: %g by name, %g from the file", i, na[i], fa[i]);
        cr_expect_float_eq(nz[i], fz[i], 1e-9, "zfnet-mini share %d: %g by name, %g from the file", i, nz[i], fz[i]);
    }
    cr_expect_null(strstr(names, "random"), "no random weights named: %s", names);
    free(files);
    free(names);
}

Test(cli, filters_of_the_embedded_model_are_not_titled_random)
{
    const void *b;
    size_t len;
    if (!zft_embedded_model("zfnet-mini", &b, &len))
        cr_skip_test("this build has no embedded models");
    const char *dir = tu_tmpdir("cli_filters_title");
    cr_assert_eq(run(dir, "filters --arch zfnet-mini -o f.pdf"), 0, "%s", out_of(dir, "err"));
    cr_assert_eq(tu_system("cd '%s' && pdftotext f.pdf f.txt", dir), 0, "pdftotext (poppler-utils)");
    char *text = out_of(dir, "f.txt");
    cr_expect_null(strstr(text, "random"), "title: %s", text);
    cr_expect_not_null(strstr(text, "zfnet-mini (embedded)"), "title: %s", text);
    free(text);
}

/* ---------------------------------------------------------------- item 6: threads under load */

/* How the threads wait (main.c): a short spin where the other runnable tasks leave the command's
 * threads a core each, else passive (a spinning thread collapses beside a busy core); what the
 * user chose is kept. */
Test(cli, threads_spin_a_little_only_where_the_cores_are_free)
{
    const char *dir = tu_tmpdir("cli_wait_policy");
    cr_assert_eq(run(dir, "info --arch alexnet"), 0, "%s", out_of(dir, "err"));
    char *out = out_of(dir, "out");
    cr_expect(strstr(out, "CPU engine: ") && (strstr(out, "waiting threads spin 3000 times, then sleep") ||
                                              strstr(out, "wait policy passive")),
              "info says: %s", out);
    free(out);
    /* every CPU busy with another task: passive, for the engine's description too */
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cr_assert_eq(tu_system("cd '%s' && for i in $(seq %ld); do (while :; do :; done) & echo $! >> busy.pids; done; "
                           "sleep 0.3; env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT '%s' info --arch alexnet >out 2>err; "
                           "rc=$?; kill $(cat busy.pids); exit $rc",
                           dir, cpus, zfviz()),
                 0);
    out = out_of(dir, "out");
    cr_expect_not_null(strstr(out, "wait policy passive"), "info beside %ld busy tasks says: %s", cpus, out);
    free(out);
    /* what the user chose is kept: a policy, or a spin count */
    cr_assert_eq(tu_system("cd '%s' && env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=active '%s' info --arch alexnet >out 2>err",
                           dir, zfviz()),
                 0);
    out = out_of(dir, "out");
    cr_expect_not_null(strstr(out, "wait policy active"), "info says: %s", out);
    free(out);
    float *x = calloc(112 * 112, sizeof(float));
    char path[4096];
    snprintf(path, sizeof path, "%s/x.npy", dir);
    const int64_t shape[4] = {1, 1, 112, 112};
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, x, 4, shape), ZF_OK, "%s", zf_last_error());
    free(x);
    cr_assert_eq(tu_system("cd '%s' && env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=50 '%s' forward --input x.npy --top 1 "
                           "--device auto >out 2>err",
                           dir, zfviz()),
                 0);
    char *err = out_of(dir, "err");
    cr_expect_not_null(strstr(err, "device cpu: "), "forward says: %s", err);
    cr_expect_not_null(strstr(err, "waiting threads spin 50 times"), "forward says: %s", err);
    free(err);
}

/* ---------------------------------------------------------------- item 7: messages */

Test(cli, database_errors_are_one_plain_line_and_locations_only_when_debugging)
{
    const char *dir = tu_tmpdir("cli_db_message");
    cr_assert_eq(tu_system("cd '%s' && printf 'not a database, just text that is long enough to be read as a "
                           "header by sqlite3 when it opens the file\\n%%.0s' 1 2 3 > bad.db",
                           dir),
                 0);
    cr_expect_neq(run(dir, "runs --db bad.db"), 0);
    char *err = out_of(dir, "err");
    cr_expect_eq(count_lines(err), 1, "one line: %s", err);
    cr_expect_not_null(strstr(err, "bad.db"), "names the file: %s", err);
    cr_expect_null(strstr(err, "db.c:"), "no source location: %s", err);
    cr_expect_null(strstr(err, "sqlite3_"), "no C call: %s", err);
    free(err);
    cr_expect_neq(tu_system("cd '%s' && ZFVIZ_DEBUG=1 '%s' runs --db bad.db >out 2>err", dir, zfviz()), 0);
    err = out_of(dir, "err");
    cr_expect_not_null(strstr(err, "db.c:"), "ZFVIZ_DEBUG adds the location: %s", err);
    free(err);
}

static const char *const commands[] = {
    "activations", "attribute", "compare", "correspond", "dead",   "deconv", "demo",  "eval",
    "evolve",      "filters",   "forward", "info",       "invariance", "merge", "occlude", "optimize",
    "probe",       "report",    "runs",    "scan",       "serve",  "sheet",  "site",  "topk",
    "train",       NULL};

Test(cli, help_cmd_shows_the_commands_own_help)
{
    const char *dir = tu_tmpdir("cli_help");
    for (int i = 0; commands[i]; i++) {
        char args[128];
        snprintf(args, sizeof args, "%s --help", commands[i]);
        cr_assert_eq(run(dir, args), 0, "%s", args);
        char *own = out_of(dir, "out");
        snprintf(args, sizeof args, "help %s", commands[i]);
        cr_expect_eq(run(dir, args), 0, "%s", args);
        char *via = out_of(dir, "out");
        cr_expect(strlen(own) > 40 && !strcmp(own, via), "zfviz help %s differs from its --help", commands[i]);
        free(own);
        free(via);
    }
    cr_expect_eq(run(dir, "help nosuch"), 2);
}

Test(cli, a_bad_option_gets_the_same_two_lines_in_every_command)
{
    const char *dir = tu_tmpdir("cli_bad_option");
    for (int i = 0; commands[i]; i++) {
        char args[128], want1[128], want2[128];
        snprintf(args, sizeof args, "%s --no-such-option", commands[i]);
        cr_expect_eq(run(dir, args), 2, "%s exits 2", commands[i]);
        char *err = out_of(dir, "err");
        snprintf(want1, sizeof want1, "zfviz %s: unrecognized option '--no-such-option'\n", commands[i]);
        snprintf(want2, sizeof want2, "zfviz %s: see 'zfviz help %s' for its options\n", commands[i], commands[i]);
        char both[300];
        snprintf(both, sizeof both, "%s%s", want1, want2);
        cr_expect_str_eq(err, both, "%s", commands[i]);
        free(err);
    }
}

Test(cli, writers_wait_for_a_locked_database_as_long_as_wait_says_and_say_so)
{
    const void *b;
    size_t len;
    if (!zft_embedded_model("alexnet-mini", &b, &len))
        cr_skip_test("this build has no embedded models");
    const char *dir = image_folder("cli_wait");
    cr_assert_eq(run(dir, "scan --images imgs --db s.db --layers conv5"), 0, "%s", out_of(dir, "err"));
    /* another process holds the write lock for 8 s */
    cr_assert_eq(tu_system("cd '%s' && (/usr/bin/python3 -c \"import sqlite3, time; c = sqlite3.connect('s.db', "
                           "isolation_level=None); c.execute('BEGIN IMMEDIATE'); c.execute('CREATE TABLE held(x)'); "
                           "open('locked', 'w').close(); time.sleep(8)\" &) && for i in $(seq 100); do "
                           "[ -e locked ] && break; sleep 0.05; done",
                           dir),
                 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_expect_eq(run(dir, "filters --store s.db --wait 2"), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char *err = out_of(dir, "err");
    cr_expect_not_null(strstr(err, "zfviz filters: s.db is locked by another process"), "%s", err);
    cr_expect_geq(s, 2.0, "gave up after %.2f s, before --wait's 2 s", s);
    cr_expect_lt(s, 7.0, "waited %.2f s, past --wait's 2 s", s);
    free(err);
    cr_expect_eq(run(dir, "runs --db s.db --wait 0"), 2, "--wait 0 is a usage error");
}
