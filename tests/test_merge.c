/* Exact sums and sharded scans: the accumulator against Python's rational arithmetic on
 * adversarial floats and across orders and cuts; scans cut into shards (--shard K/N), one killed
 * and resumed, merged (zfviz merge) and compared with a one-process scan of the same list through
 * sqlite3; shards that do not belong together refused; per-class means and the selectivity index of
 * images in class folders against a float64 forward of the same net. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "world.h"
#include "testutil.h"
#include "zf/alloc.h"
#include "zf/db.h"
#include "zf/io.h"
#include "zf/net.h"
#include "zf/xsum.h"

/* A float with a random sign, significand and exponent over the whole range (subnormals too). */
static float any_float(uint64_t *s)
{
    union {
        uint32_t u;
        float f;
    } x;
    do
        x.u = (uint32_t)tu_mix(s);
    while ((x.u >> 23 & 0xff) == 0xff);
    return x.f;
}

/* The sum of v[0..n) as Python's fractions.Fraction computes it, rounded once to a double. */
static double rational_sum(const float *v, size_t n, const char *tag)
{
    const char *dir = tu_tmpdir(tag);
    char in[4096], out[4096];
    snprintf(in, sizeof in, "%s/values.txt", dir);
    snprintf(out, sizeof out, "%s/sum.txt", dir);
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%a\n", (double)v[i]);
    fclose(f);
    cr_assert_eq(tu_system("/usr/bin/python3 -c \"import sys; from fractions import Fraction as F; "
                           "s = sum((F(float.fromhex(l)) for l in open(sys.argv[1])), F(0)); "
                           "open(sys.argv[2], 'w').write(float(s).hex())\" '%s' '%s'",
                           in, out),
                 0, "python3 did not run");
    f = fopen(out, "r");
    cr_assert_not_null(f);
    char buf[64] = "";
    cr_assert(fgets(buf, sizeof buf, f));
    fclose(f);
    return strtod(buf, NULL);
}

static double xsum_of(const float *v, size_t n)
{
    zf_xsum a;
    zf_xsum_zero(&a);
    for (size_t i = 0; i < n; i++)
        zf_xsum_add_float(&a, v[i]);
    return zf_xsum_double(&a);
}

static void expect_same_double(double got, double want, const char *what)
{
    cr_assert(memcmp(&got, &want, sizeof got) == 0, "%s: %a, the rational sum rounds to %a", what,
              got, want);
}

Test(xsum, adversarial_sums_equal_the_rational_sum_rounded_once)
{
    /* cancellation: the largest floats cancel and leave the tiny ones (float64 arithmetic in any
     * order loses them all) */
    float a[] = {3.4e38f, 1e-45f, -3.4e38f, 3e-39f, 1.0f, 3.4e38f, -1.0f, -3.4e38f, 7e-45f};
    expect_same_double(xsum_of(a, 9), rational_sum(a, 9, "xsum_cancel"), "cancellation");
    cr_assert(xsum_of(a, 9) > 0 && xsum_of(a, 9) < 1e-37);
    /* huge and tiny mixed: 2^127 with halves of the last place below it, so the rounding is a tie
     * decided by the sticky tiny values */
    float b[] = {0x1p127f, 0x1p73f, 1e-45f, 0x1p73f, -1e-45f, 1e-45f};
    expect_same_double(xsum_of(b, 6), rational_sum(b, 6, "xsum_tie"), "tie and sticky bit");
    /* a sum that is exactly zero */
    float c[] = {1e30f, -1e-30f, -1e30f, 1e-30f};
    cr_assert(xsum_of(c, 4) == 0.0);
    /* many values over the whole float range, and many small positive ones (the scan's case) */
    size_t n = 20000;
    float *v = malloc(n * sizeof *v);
    uint64_t s = 42;
    for (size_t i = 0; i < n; i++)
        v[i] = any_float(&s);
    expect_same_double(xsum_of(v, n), rational_sum(v, n, "xsum_wide"), "whole range");
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(tu_mix(&s) % 1000000) * 1e-3f * (i % 3 ? 1.0f : 1e-6f);
    expect_same_double(xsum_of(v, n), rational_sum(v, n, "xsum_small"), "small positive");
    free(v);
}

Test(xsum, the_sum_does_not_depend_on_order_or_on_the_cut)
{
    size_t n = 5000;
    float *v = malloc(n * sizeof *v);
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++)
        v[i] = any_float(&s);
    zf_xsum ref;
    zf_xsum_zero(&ref);
    for (size_t i = 0; i < n; i++)
        zf_xsum_add_float(&ref, v[i]);
    unsigned char want[ZF_XSUM_BYTES], got[ZF_XSUM_BYTES];
    zf_xsum_pack(&ref, want);
    for (int trial = 0; trial < 5; trial++) {
        for (size_t i = n - 1; i > 0; i--) { /* shuffle */
            size_t j = (size_t)(tu_mix(&s) % (i + 1));
            float t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        /* cut into pieces of random sizes, each summed apart (bins or single adds), stored and
         * read back, then merged */
        zf_xsum total;
        zf_xsum_zero(&total);
        for (size_t i = 0; i < n;) {
            size_t len = 1 + (size_t)(tu_mix(&s) % 700);
            if (len > n - i)
                len = n - i;
            zf_xsum part;
            zf_xsum_zero(&part);
            if (trial & 1) {
                zf_xsum_bins b;
                zf_xsum_bins_init(&b);
                for (size_t j = 0; j < len; j++)
                    zf_xsum_bins_add(&b, v[i + j]);
                zf_xsum_bins_flush(&b, &part);
            } else {
                for (size_t j = 0; j < len; j++)
                    zf_xsum_add_float(&part, v[i + j]);
            }
            unsigned char blob[ZF_XSUM_BYTES];
            zf_xsum_pack(&part, blob);
            zf_xsum back;
            cr_assert_eq(zf_xsum_unpack(&back, blob, sizeof blob), 0);
            zf_xsum_merge(&total, &back);
            i += len;
        }
        zf_xsum_pack(&total, got);
        cr_assert(memcmp(got, want, sizeof got) == 0, "trial %d: the limbs differ", trial);
    }
    free(v);
}

Test(xsum, double_sums_of_floats_enter_exactly_and_non_finite_values_are_kept)
{
    zf_xsum a, b;
    zf_xsum_zero(&a);
    zf_xsum_zero(&b);
    double d = 0;
    uint64_t s = 3;
    for (int i = 0; i < 1000; i++) {
        float f = (float)(tu_mix(&s) % 100000) * 1e-5f;
        d += f;
        zf_xsum_add_float(&a, f);
    }
    zf_xsum_add_double(&b, d);
    cr_assert(zf_xsum_double(&b) == d, "%a came back as %a", d, zf_xsum_double(&b));
    /* and exactly: taking away the float64 sum of the floats leaves its rounding error */
    zf_xsum_add_double(&b, -d);
    cr_assert(zf_xsum_double(&b) == 0.0);
    zf_xsum_add_float(&a, INFINITY);
    cr_assert(isinf(zf_xsum_double(&a)) && zf_xsum_double(&a) > 0);
    zf_xsum_add_float(&a, -INFINITY);
    cr_assert(isnan(zf_xsum_double(&a)));
    unsigned char bad[ZF_XSUM_BYTES] = {0};
    bad[ZF_XSUM_BYTES - 1] = 1;
    cr_assert_eq(zf_xsum_unpack(&a, bad, sizeof bad), -1);
    cr_assert_eq(zf_xsum_unpack(&a, bad, 10), -1);
}

/* ---------------------------------------------------------------- sharded scans and merge */

/* n small PNG pictures (smooth colours, a few blobs, noise: activations vary) and one broken file
 * that sorts among them. */
static void make_images(const char *dir, int n, uint64_t seed)
{
    char path[8192];
    for (int i = 0; i < n; i++) {
        uint64_t s = seed + (uint64_t)i * 7919;
        int w = 24 + (int)(tu_mix(&s) % 40), h = 20 + (int)(tu_mix(&s) % 40);
        uint8_t *rgb = malloc((size_t)w * h * 3);
        int bx = (int)(tu_mix(&s) % (uint64_t)w), by = (int)(tu_mix(&s) % (uint64_t)h);
        int base[3] = {(int)(tu_mix(&s) % 256), (int)(tu_mix(&s) % 256), (int)(tu_mix(&s) % 256)};
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < 3; k++) {
                    int v = base[k] + (x * (k + 1) * 3 - y * (3 - k) * 2) + (int)(tu_mix(&s) % 31) - 15;
                    if ((x - bx) * (x - bx) + (y - by) * (y - by) < 40)
                        v += k == i % 3 ? 150 : -100;
                    rgb[((size_t)y * w + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
        cr_assert_lt(snprintf(path, sizeof path, "%s/img_%03d.png", dir, i), (int)sizeof path);
        cr_assert_eq(tu_write_png(path, w, h, rgb), 0, "%s", path);
        free(rgb);
    }
    cr_assert_lt(snprintf(path, sizeof path, "%s/img_002_broken.png", dir), (int)sizeof path);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("\x89PNG\r\n\x1a\nnot really", f);
    fclose(f);
}

static const char *zfviz(void) { return tu_build("tools/zfviz"); }

/* The one integer a query prints through the sqlite3 shell (-1 if it printed none). */
static long long sql_int(const char *db, const char *sql)
{
    char cmd[8192];
    /* read-only, so that polling a scan's database before the scan makes it creates nothing */
    snprintf(cmd, sizeof cmd, "sqlite3 -readonly -cmd '.timeout 5000' '%s' \"%s\" 2> /dev/null", db,
             sql);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    long long v = -1;
    if (fscanf(p, "%lld", &v) != 1)
        v = -1;
    pclose(p);
    return v;
}

/* Rows of `what` (a table or view, or a SELECT) in one database and not the other, both ways. */
static long long rows_differing(const char *a, const char *b, const char *what)
{
    char sql[8192];
    snprintf(sql, sizeof sql,
             "ATTACH '%s' AS o; SELECT (SELECT count(*) FROM (SELECT * FROM main.%s EXCEPT "
             "SELECT * FROM o.%s)) + (SELECT count(*) FROM (SELECT * FROM o.%s EXCEPT SELECT * "
             "FROM main.%s));",
             b, what, what, what, what);
    return sql_int(a, sql);
}

/* The merged database holds, row for row, what the one-process scan wrote. */
static void expect_same_scan(const char *merged, const char *ref, const char *what)
{
    static const char *const tables[] = {"images", "run_images", "run_layers", "unit_stats",
                                         "topk", "bottomk", "unit_summary", "histogram",
                                         "unit_quantiles", "run_classes", "unit_class_stats",
                                         "unit_class_mean", "unit_selectivity"};
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++)
        cr_assert_eq(rows_differing(merged, ref, tables[i]), 0, "%s: %s differs from the one-process scan",
                     what, tables[i]);
    /* the run: the same list, counts, settings, finished (not when it ran) */
    char sql[8192];
    snprintf(sql, sizeof sql,
             "ATTACH '%s' AS o; SELECT count(*) FROM runs a JOIN o.runs b USING (id, list_sha256, "
             "n_images, layers, top_k, batch, next_seq, n_ok, n_failed, list_n, seq0) WHERE "
             "a.shard IS NULL AND b.shard IS NULL AND a.finished IS NOT NULL AND b.finished IS "
             "NOT NULL",
             ref);
    cr_assert_eq(sql_int(merged, sql), 1, "%s: the run differs", what);
    cr_assert(sql_int(ref, "SELECT count(*) FROM unit_stats") > 500);
}

/* Scans the K-th of N shards of imgs into dir/tag_K.db (batch 2), and returns 0 on success. */
static int scan_shard(const char *dir, const char *imgs, const char *tag, int k, int n,
                      const char *extra)
{
    return tu_system("'%s' scan --images '%s' --db '%s/%s_%d.db' --batch 2 --shard %d/%d %s "
                     "> /dev/null 2>&1",
                     zfviz(), imgs, dir, tag, k, k, n, extra ? extra : "");
}

Test(merge, one_two_three_and_seven_shards_merge_to_the_one_process_scan)
{
    char dir[2048], imgs[4096], ref[4096];
    tu_tmpdir_sub(dir, imgs, "merge_n", "images");
    snprintf(ref, sizeof ref, "%s/ref.db", dir);
    make_images(imgs, 14, 5); /* 15 files: 8 batches of 2 */
    cr_assert_eq(tu_system("'%s' scan --images '%s' --db '%s' --batch 2 > /dev/null 2>&1",
                           zfviz(), imgs, ref), 0);
    cr_assert_eq(sql_int(ref, "SELECT n_failed FROM runs"), 1);
    const int ns[] = {1, 2, 3, 7};
    for (int t = 0; t < 4; t++) {
        int n = ns[t];
        char tag[16], list[8192] = "", out[4096];
        snprintf(tag, sizeof tag, "n%d", n);
        /* scanned last shard first, and listed to merge in a shuffled order */
        for (int k = n; k >= 1; k--)
            cr_assert_eq(scan_shard(dir, imgs, tag, k, n, NULL), 0, "shard %d/%d", k, n);
        for (int i = 0; i < n; i++) {
            int k = 1 + (i * 3) % n;
            if (n % 3 == 0)
                k = n - i;
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, " '%s/%s_%d.db'", dir, tag, k);
        }
        snprintf(out, sizeof out, "%s/merged_%d.db", dir, n);
        cr_assert_eq(tu_system("'%s' merge -o '%s' %s > /dev/null", zfviz(), out, list), 0,
                     "merge of %d shards failed", n);
        expect_same_scan(out, ref, tag);
    }
    /* shards really are slices: 7 shards of 8 batches, their images contiguous and apart */
    char s7[4096];
    snprintf(s7, sizeof s7, "%s/n7_7.db", dir);
    cr_assert_eq(sql_int(s7, "SELECT min(seq) * 100 + max(seq) FROM run_images"), 1214);
    cr_assert_eq(sql_int(s7, "SELECT (shard = '7/7') + 10 * list_n + 1000 * n_images FROM runs"),
                 3151);
}

/* Starts `zfviz scan` on a shard in a child process. */
static pid_t spawn_shard(const char *db, const char *imgs, int k, int n)
{
    char shard[32];
    snprintf(shard, sizeof shard, "%d/%d", k, n);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execl(zfviz(), "zfviz", "scan", "--images", imgs, "--db", db, "--batch", "2", "--chunk",
              "2", "--shard", shard, (char *)NULL);
        _exit(127);
    }
    return pid;
}

Test(merge, a_shard_killed_and_resumed_merges_to_the_same_result)
{
    char dir[2048], imgs[4096], ref[4096], s1[4096], s2[4096], out[4096];
    tu_tmpdir_sub(dir, imgs, "merge_kill", "images");
    /* 60 files in two class folders, so that the resumed shard's class sums are checked too */
    char sub[8192];
    for (int c = 0; c < 2; c++) {
        cr_assert_lt(snprintf(sub, sizeof sub, "%s/%c", imgs, 'x' + c), (int)sizeof sub);
        mkdir(sub, 0755);
        make_images(sub, 29, 9 + (uint64_t)c * 1000);
    }
    snprintf(ref, sizeof ref, "%s/ref.db", dir);
    snprintf(s1, sizeof s1, "%s/s1.db", dir);
    snprintf(s2, sizeof s2, "%s/s2.db", dir);
    snprintf(out, sizeof out, "%s/merged.db", dir);
    cr_assert_eq(tu_system("'%s' scan --images '%s' --db '%s' --batch 2 > /dev/null 2>&1",
                           zfviz(), imgs, ref), 0);
    cr_assert_eq(scan_shard(dir, imgs, "s", 1, 2, NULL), 0);
    snprintf(s1, sizeof s1, "%s/s_1.db", dir);
    /* shard 2 killed with -9 once it has committed something, before it ends */
    pid_t pid = spawn_shard(s2, imgs, 2, 2);
    long long seq = -1;
    for (int i = 0; i < 20000 && (seq = sql_int(s2, "SELECT next_seq FROM runs")) < 2; i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the shard's scan ended before the kill");
    seq = sql_int(s2, "SELECT next_seq FROM runs");
    cr_assert(seq >= 2 && seq < 30, "killed at %lld of 30", seq);
    /* an unfinished shard is refused, naming it */
    char err[4096];
    snprintf(err, sizeof err, "%s/err.txt", dir);
    cr_assert_neq(tu_system("'%s' merge -o '%s' '%s' '%s' 2> '%s'", zfviz(), out, s1, s2, err), 0);
    cr_assert_eq(tu_system("test $(wc -l < '%s') -eq 1 && grep -q 's2.db: the scan is unfinished' '%s'",
                           err, err), 0);
    cr_assert_neq(access(out, F_OK), 0, "a refused merge left %s", out);
    /* resumed by running the same command again */
    pid = spawn_shard(s2, imgs, 2, 2);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_assert_eq(tu_system("'%s' merge -o '%s' '%s' '%s' > /dev/null", zfviz(), out, s2, s1), 0);
    expect_same_scan(out, ref, "killed and resumed");
}

/* The merge fails with one line on stderr that names `file` and contains `what`. */
static void expect_refused(const char *dir, const char *shards, const char *file, const char *what)
{
    char out[4096], err[4096];
    snprintf(out, sizeof out, "%s/refused.db", dir);
    snprintf(err, sizeof err, "%s/refused.txt", dir);
    int rc = tu_system("'%s' merge -o '%s' %s 2> '%s' > /dev/null", zfviz(), out, shards, err);
    cr_assert(rc != 0, "merge of %s was not refused", shards);
    cr_assert_eq(tu_system("test $(wc -l < '%s') -eq 1 && grep -q -F '%s' '%s' && grep -q -F '%s' '%s'",
                           err, file, err, what, err),
                 0, "merge of %s: the message does not name %s and '%s'", shards, file, what);
    cr_assert_neq(access(out, F_OK), 0, "a refused merge left its output");
    cr_assert_eq(tu_system("ls '%s' | grep -q merge-", dir), 1, "a refused merge left a temporary file");
}

Test(merge, shards_that_do_not_belong_together_are_refused)
{
    char dir[2048], imgs[4096], other[4096], sh[8192];
    tu_tmpdir_sub(dir, imgs, "merge_refuse", "images");
    snprintf(other, sizeof other, "%s/other", dir);
    make_images(imgs, 13, 21); /* 14 files: 7 batches */
    cr_assert_eq(tu_system("cp -r '%s' '%s' && rm '%s/img_005.png'", imgs, other, other), 0);
    cr_assert_eq(scan_shard(dir, imgs, "a", 1, 2, NULL), 0);
    cr_assert_eq(scan_shard(dir, imgs, "a", 2, 2, NULL), 0);
    cr_assert_eq(scan_shard(dir, imgs, "model", 2, 2, "--arch zfnet-mini"), 0);
    cr_assert_eq(scan_shard(dir, other, "list", 2, 2, NULL), 0);
    cr_assert_eq(scan_shard(dir, imgs, "layers", 2, 2, "--layers conv1,conv2"), 0);
    cr_assert_eq(scan_shard(dir, imgs, "topk", 2, 2, "--top 4"), 0);
    for (int k = 1; k <= 3; k++)
        cr_assert_eq(scan_shard(dir, imgs, "t", k, 3, NULL), 0);
#define SH(...) (snprintf(sh, sizeof sh, __VA_ARGS__), sh)
    expect_refused(dir, SH("'%s/a_1.db' '%s/model_2.db'", dir, dir), "model_2.db", "the model");
    expect_refused(dir, SH("'%s/a_1.db' '%s/list_2.db'", dir, dir), "list_2.db", "the image list");
    expect_refused(dir, SH("'%s/a_1.db' '%s/layers_2.db'", dir, dir), "layers_2.db", "the layers");
    expect_refused(dir, SH("'%s/a_1.db' '%s/topk_2.db'", dir, dir), "topk_2.db", "the top-k");
    /* overlapping: 1/2 holds images 0-5, 2/3 starts at 4 */
    expect_refused(dir, SH("'%s/a_1.db' '%s/t_2.db' '%s/t_3.db'", dir, dir, dir), "t_2.db", "overlap");
    expect_refused(dir, SH("'%s/a_1.db' '%s/a_1.db' '%s/a_2.db'", dir, dir, dir), "a_1.db", "twice");
    /* a gap: images 4-7 are in no shard */
    expect_refused(dir, SH("'%s/t_1.db' '%s/t_3.db'", dir, dir), "t_3.db", "images 4-7");
    expect_refused(dir, SH("'%s/t_1.db' '%s/t_2.db'", dir, dir), "t_2.db", "images 8-13");
    expect_refused(dir, SH("'%s/a_1.db' '%s/images/img_000.png'", dir, dir), "img_000.png", "not");
    /* a file zfviz did not make is not replaced without --force, and is with it */
    char out[4096];
    snprintf(out, sizeof out, "%s/notes.db", dir);
    cr_assert_eq(tu_system("printf 'my notes\\n' > '%s'", out), 0);
    cr_assert_neq(tu_system("'%s' merge -o '%s' '%s/a_1.db' '%s/a_2.db' 2> /dev/null", zfviz(),
                            out, dir, dir), 0);
    cr_assert_eq(tu_system("printf 'my notes\\n' | cmp -s - '%s'", out), 0, "the file was changed");
    cr_assert_eq(tu_system("'%s' merge --force -o '%s' '%s/a_1.db' '%s/a_2.db' > /dev/null", zfviz(),
                           out, dir, dir), 0);
    cr_assert_eq(sql_int(out, "SELECT next_seq * (n_images = 14) FROM runs"), 14);
    /* and a zfviz database there is replaced without it */
    cr_assert_eq(tu_system("'%s' merge -o '%s' '%s/t_1.db' '%s/t_2.db' '%s/t_3.db' > /dev/null",
                           zfviz(), out, dir, dir, dir), 0);
    cr_assert_eq(sql_int(out, "SELECT count(*) FROM runs"), 1);
    /* the output may not be one of the shards (it would be replaced while it is read) */
    cr_assert_eq(tu_system("cp '%s/a_1.db' '%s/refused.db'", dir, dir), 0);
    cr_assert_neq(tu_system("'%s' merge -o '%s/refused.db' '%s/refused.db' '%s/a_2.db' 2> '%s/err.txt'",
                            zfviz(), dir, dir, dir, dir), 0);
    cr_assert_eq(tu_system("grep -q 'both the output and a shard' '%s/err.txt' && cmp -s '%s/a_1.db' "
                           "'%s/refused.db'", dir, dir, dir), 0);
#undef SH
}

Test(merge, a_schema_2_database_migrates_and_its_float64_sums_carry_over)
{
    char dir[2048], imgs[4096], db[4096], out[4096];
    tu_tmpdir_sub(dir, imgs, "merge_migrate", "images");
    snprintf(db, sizeof db, "%s/old.db", dir);
    snprintf(out, sizeof out, "%s/merged.db", dir);
    make_images(imgs, 5, 33);
    cr_assert_eq(tu_system("'%s' scan --images '%s' --db '%s' --batch 2 > /dev/null 2>&1", zfviz(),
                           imgs, db), 0);
    /* back to what a version-2 zfviz wrote: no exact sums, no bottom-k, no shard columns */
    cr_assert_eq(tu_system("sqlite3 '%s' 'ALTER TABLE unit_stats DROP COLUMN sum_exact; "
                           "DROP VIEW bottomk; ALTER TABLE unit_stats DROP COLUMN bottom; "
                           "DROP VIEW unit_quantiles; DROP VIEW histogram; DROP TABLE histogram_bins; "
                           "ALTER TABLE unit_stats DROP COLUMN hist; "
                           "ALTER TABLE runs DROP COLUMN list_n; ALTER TABLE runs DROP COLUMN shard; "
                           "ALTER TABLE runs DROP COLUMN seq0; DROP VIEW unit_selectivity; "
                           "DROP VIEW unit_class_mean; DROP TABLE unit_class_stats; "
                           "DROP TABLE run_classes; ALTER TABLE run_images DROP COLUMN class; "
                           "ALTER TABLE runs DROP COLUMN classes; PRAGMA user_version = 2; "
                           "CREATE TABLE sums AS SELECT layer, unit, sum FROM unit_stats;'", db), 0);
    /* the same command again migrates it and finds the run complete */
    cr_assert_eq(tu_system("'%s' scan --images '%s' --db '%s' --batch 2 | grep -q 'already complete'",
                           zfviz(), imgs, db), 0);
    cr_assert_eq(sql_int(db, "PRAGMA user_version"), ZF_DB_SCHEMA_VERSION);
    /* a run begun before schema 4 keeps no class statistics, and its merge none either */
    cr_assert_eq(sql_int(db, "SELECT classes IS NULL FROM runs"), 1);
    cr_assert_eq(sql_int(db, "SELECT count(*) FROM unit_stats WHERE sum_exact IS NULL"),
                 sql_int(db, "SELECT count(*) FROM sums"));
    /* a merge of it alone takes each float64 sum exactly */
    cr_assert_eq(tu_system("'%s' merge -o '%s' '%s' > /dev/null", zfviz(), out, db), 0);
    char sql[8192];
    snprintf(sql, sizeof sql, "ATTACH '%s' AS o; SELECT count(*) FROM unit_stats u JOIN o.sums s "
             "USING (layer, unit) WHERE u.sum = s.sum AND length(u.sum_exact) = 56", db);
    cr_assert(sql_int(out, sql) > 500);
    cr_assert_eq(sql_int(out, sql), sql_int(db, "SELECT count(*) FROM sums"));
    /* the bottom-k of images scanned before it was kept is unknown: left NULL, not made up */
    cr_assert_eq(sql_int(db, "SELECT count(*) FROM unit_stats WHERE bottom IS NOT NULL"), 0);
    cr_assert_eq(sql_int(out, "SELECT count(*) FROM unit_stats WHERE bottom IS NOT NULL"), 0);
    cr_assert_eq(sql_int(out, "SELECT count(*) FROM unit_stats WHERE hist IS NOT NULL"), 0);
    cr_assert_eq(sql_int(out, "SELECT (classes IS NULL) + (SELECT count(*) FROM run_classes) FROM runs"),
                 1);
}
/* ---------------------------------------------------------------- the net, run as a scan runs it */

/* The default model over the images of a folder, in the scan's order and batches of 2 from the
 * list's start (as `scan --batch 2` runs them, images that do not load left out), with the layers
 * a scan covers. */
typedef struct ref_net {
    zf_net *net;
    char **paths;
    int64_t n;
    int layers[64], nl;
} ref_net;

static void ref_net_open(ref_net *r, const char *imgs, int64_t want_n)
{
    zft_model_opts mo = {0};
    zft_model_ref mref;
    r->net = NULL;
    cr_assert_eq(zft_load_model_ref(&mo, &r->net, &mref), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_db_scan_list(imgs, &r->paths, &r->n), ZF_OK);
    cr_assert_eq(r->n, want_n);
    r->nl = zf_db_scan_default_layers(r->net, r->layers);
    cr_assert_eq(zf_net_reserve(r->net, 2), ZF_OK);
}

/* What ref_net_forward hands on: the values p[0..hw) of unit c of the j-th scanned layer for the
 * image at `seq` of the list. */
typedef void (*plane_fn)(void *ctx, const ref_net *r, int j, int c, const float *p, int hw,
                         int64_t seq);

/* Calls fn for every plane of every image that loads, right after its batch's forward. */
static void ref_net_forward(ref_net *r, plane_fn fn, void *ctx)
{
    zf_net *net = r->net;
    size_t in_size = (size_t)zf_net_in_size(net);
    for (int64_t b0 = 0; b0 < r->n; b0 += 2) {
        int m = 0;
        int64_t seqs[2];
        for (int64_t i = b0; i < b0 + 2 && i < r->n; i++) {
            zf_image *img = NULL;
            if (zf_image_load(r->paths[i], &img) == ZF_OK &&
                zf_image_to_input(net->input + m * in_size, img, &net->pre, net->in_h,
                                  net->in_w) == ZF_OK)
                seqs[m++] = i;
            zf_image_free(img);
        }
        if (!m)
            continue;
        cr_assert_eq(zf_net_forward(net, NULL, m), ZF_OK, "%s", zf_last_error());
        for (int i = 0; i < m; i++)
            for (int j = 0; j < r->nl; j++) {
                const zf_layer *l = &net->layers[r->layers[j]];
                int units = l->out_c, hw = l->out_h * l->out_w;
                for (int c = 0; c < units; c++)
                    fn(ctx, r, j, c, net->acts[r->layers[j]] + ((size_t)i * units + c) * hw, hw,
                       seqs[i]);
            }
    }
}

static void ref_net_close(ref_net *r)
{
    zf_db_scan_list_free(r->paths, r->n);
    zf_net_free(r->net);
}

/* ---------------------------------------------------------------- classes */

/* What a query prints through the sqlite3 shell: rows a line, columns split by '|'. */
static char *sql_text(const char *db, const char *sql)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "sqlite3 -readonly '%s' \"%s\"", db, sql);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, len = 0, r;
    char *buf = malloc(cap);
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0)
        if ((len += r) + 4096 > cap)
            buf = realloc(buf, cap *= 2);
    buf[len] = 0;
    cr_assert_eq(pclose(p), 0, "%s: %s", db, sql);
    return buf;
}

/* Folders a, b and c under imgs, with 4, 3 and 5 pictures and a broken file each, and one loose
 * picture beside them, in no class: 16 files, 8 batches of 2. */
static void make_class_images(const char *imgs)
{
    static const int count[3] = {4, 3, 5};
    char sub[8192];
    for (int c = 0; c < 3; c++) {
        cr_assert_lt(snprintf(sub, sizeof sub, "%s/%c", imgs, 'a' + c), (int)sizeof sub);
        mkdir(sub, 0755);
        make_images(sub, count[c], 100 + (uint64_t)c * 31);
    }
    cr_assert_eq(tu_system("cp '%s/b/img_001.png' '%s/loose.png'", imgs, imgs), 0);
}

/* The class of a listed image as a test reads it off the path: its folder's name, 0-2 for a-c,
 * -1 for one directly in root. */
static int class_of_path(const char *path, const char *root)
{
    const char *slash = strrchr(path, '/');
    size_t rl = strlen(root);
    if ((size_t)(slash - path) == rl && !strncmp(path, root, rl))
        return -1;
    cr_assert(slash - path >= 2 && slash[-2] == '/', "%s", path);
    return slash[-1] - 'a';
}

typedef struct class_sums {
    const char *root;
    double **sum; /* per layer: units x 3, the rectified values summed over each class */
    int64_t cnt[3];
} class_sums;

static void add_class_sums(void *ctx, const ref_net *r, int j, int c, const float *p, int hw,
                           int64_t seq)
{
    class_sums *cs = ctx;
    int cl = class_of_path(r->paths[seq], cs->root);
    if (cl < 0)
        return;
    cs->cnt[cl] += j == 0 && c == 0; /* an image once */
    double s = 0;
    for (int q = 0; q < hw; q++)
        s += p[q] > 0 ? p[q] : 0;
    cs->sum[j][(size_t)c * 3 + cl] += s;
}

Test(merge, class_means_and_selectivity_match_a_direct_computation_and_merge_exactly)
{
    char dir[2048], imgs[4096], ref[4096], root[4096];
    tu_tmpdir_sub(dir, imgs, "merge_classes", "images");
    snprintf(ref, sizeof ref, "%s/ref.db", dir);
    make_class_images(imgs);
    cr_assert_eq(tu_system("'%s' scan --images '%s' --db '%s' --batch 2 2> /dev/null | grep -q "
                           "'in 3 class folders'", zfviz(), imgs, ref), 0);
    /* the classes, their images that loaded, the loose one in none */
    char *t = sql_text(ref, "SELECT group_concat(name || ':' || images, ',') FROM "
                            "(SELECT * FROM run_classes ORDER BY class)");
    cr_assert_str_eq(t, "a:4,b:3,c:5\n");
    free(t);
    cr_assert_eq(sql_int(ref, "SELECT classes FROM runs"), 3);
    cr_assert_eq(sql_int(ref, "SELECT count(*) FROM run_images WHERE class IS NULL"), 1);
    cr_assert_eq(sql_int(ref, "SELECT count(*) FROM run_images r JOIN images i ON i.id = "
                              "r.image_id WHERE r.class IS NULL AND i.path LIKE '%/loose.png'"), 1);
    /* 1, 2 and 3 shards merge to the same rows */
    for (int n = 1; n <= 3; n++) {
        char tag[16], list[8192] = "", out[4096];
        snprintf(tag, sizeof tag, "c%d", n);
        for (int k = 1; k <= n; k++) {
            cr_assert_eq(scan_shard(dir, imgs, tag, k, n, NULL), 0, "shard %d/%d", k, n);
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, " '%s/%s_%d.db'", dir, tag, n + 1 - k);
        }
        snprintf(out, sizeof out, "%s/merged_%d.db", dir, n);
        cr_assert_eq(tu_system("'%s' merge -o '%s' %s > /dev/null", zfviz(), out, list), 0,
                     "merge of %d shards failed", n);
        expect_same_scan(out, ref, tag);
        cr_assert(sql_int(out, "SELECT count(*) FROM unit_class_stats") > 1500);
    }

    /* each class's mean of every unit, from the activations of the same net over the same
     * batches, in float64 */
    cr_assert_not_null(realpath(imgs, root));
    ref_net r;
    ref_net_open(&r, imgs, 16);
    zf_net *net = r.net;
    const int nl = r.nl, *layers = r.layers;
    class_sums cs = {root, calloc((size_t)nl, sizeof *cs.sum), {0}};
    for (int j = 0; j < nl; j++)
        cs.sum[j] = calloc((size_t)net->layers[layers[j]].out_c * 3, sizeof **cs.sum);
    ref_net_forward(&r, add_class_sums, &cs);
    double **sum = cs.sum;
    const int64_t *cnt = cs.cnt;
    cr_assert(cnt[0] == 4 && cnt[1] == 3 && cnt[2] == 5);
    int units_all = 0;
    for (int j = 0; j < nl; j++) {
        const zf_layer *l = &net->layers[layers[j]];
        units_all += l->out_c;
        for (size_t x = 0; x < (size_t)l->out_c * 3; x++)
            sum[j][x] /= (double)cnt[x % 3] * l->out_h * l->out_w;
    }
    /* the view's means */
    char *rows = sql_text(ref, "SELECT layer, unit, class, n, printf('%.17g', mean) FROM "
                               "unit_class_mean WHERE run_id = 1");
    int seen = 0;
    for (char *line = strtok(rows, "\n"); line; line = strtok(NULL, "\n")) {
        char name[32], cl;
        int unit;
        long long nn;
        double mean;
        cr_assert_eq(sscanf(line, "%31[^|]|%d|%c|%lld|%lf", name, &unit, &cl, &nn, &mean), 5,
                     "%s", line);
        int j = 0;
        while (j < nl && strcmp(net->layers[layers[j]].name, name))
            j++;
        cr_assert(j < nl && cl >= 'a' && cl <= 'c', "%s", line);
        cr_assert_eq(nn, cnt[cl - 'a'], "%s", line);
        double want = sum[j][(size_t)unit * 3 + (cl - 'a')];
        cr_assert(fabs(mean - want) <= 1e-9 * fabs(want) + 1e-300, "%s unit %d class %c: mean %.17g, "
                  "float64 from the activations %.17g", name, unit, cl, mean, want);
        seen++;
    }
    free(rows);
    cr_assert_eq(seen, units_all * 3);
    /* the selectivity index from those float64 means */
    rows = sql_text(ref, "SELECT layer, unit, CASE WHEN selectivity IS NULL THEN 'NULL' ELSE "
                         "printf('%.17g', selectivity) END, ifnull(best_class, '-') FROM "
                         "unit_selectivity WHERE run_id = 1");
    seen = 0;
    int defined = 0;
    for (char *line = strtok(rows, "\n"); line; line = strtok(NULL, "\n")) {
        char name[32], sel[64], best;
        int unit;
        cr_assert_eq(sscanf(line, "%31[^|]|%d|%63[^|]|%c", name, &unit, sel, &best), 4, "%s", line);
        int j = 0;
        while (j < nl && strcmp(net->layers[layers[j]].name, name))
            j++;
        cr_assert(j < nl, "%s", line);
        const double *mu = sum[j] + (size_t)unit * 3;
        int top = 0;
        for (int c = 1; c < 3; c++)
            if (mu[c] > mu[top])
                top = c;
        double rest = 0;
        for (int c = 0; c < 3; c++)
            rest += c == top ? 0 : mu[c] / 2;
        if (mu[top] + rest == 0) {
            cr_assert_str_eq(sel, "NULL", "%s", line);
        } else {
            double want = (mu[top] - rest) / (mu[top] + rest), got = strtod(sel, NULL);
            cr_assert(fabs(got - want) <= 1e-9, "%s unit %d: selectivity %s, from the float64 "
                      "means %.17g", name, unit, sel, want);
            defined++;
        }
        cr_assert_eq(best, mu[top] > 0 ? 'a' + top : '-', "%s unit %d: best class %c", name, unit,
                     best);
        seen++;
    }
    free(rows);
    cr_assert_eq(seen, units_all);
    cr_assert(defined > units_all / 2, "%d of %d units with a selectivity", defined, units_all);
    for (int j = 0; j < nl; j++)
        free(sum[j]);
    free(sum);
    ref_net_close(&r);
}

Test(merge, a_list_in_one_folder_has_no_classes_and_shards_of_other_classes_are_refused)
{
    char dir[2048], imgs[4096], flat[4096], sh[8192];
    tu_tmpdir_sub(dir, imgs, "merge_class_refuse", "images");
    snprintf(flat, sizeof flat, "%s/flat", dir);
    make_class_images(imgs);
    mkdir(flat, 0755);
    make_images(flat, 15, 3); /* 16 files, in one folder */
    for (int k = 1; k <= 3; k++)
        cr_assert_eq(scan_shard(dir, imgs, "c", k, 3, NULL), 0);
    cr_assert_eq(scan_shard(dir, flat, "flat", 2, 3, NULL), 0);
    /* all in one folder: no classes, no class rows */
    snprintf(sh, sizeof sh, "%s/flat_2.db", dir);
    cr_assert_eq(sql_int(sh, "SELECT classes FROM runs"), 0);
    cr_assert_eq(sql_int(sh, "SELECT (SELECT count(*) FROM run_classes) + (SELECT count(*) FROM "
                             "unit_class_stats) + (SELECT count(*) FROM run_images WHERE class IS "
                             "NOT NULL) + (SELECT count(*) FROM unit_selectivity)"), 0);
    /* a shard begun before schema 4 (no class statistics) and one whose class names differ */
    cr_assert_eq(tu_system("cp '%s/c_2.db' '%s/old_2.db' && sqlite3 '%s/old_2.db' 'DELETE FROM "
                           "unit_class_stats; DELETE FROM run_classes; UPDATE run_images SET class "
                           "= NULL; UPDATE runs SET classes = NULL'", dir, dir, dir), 0);
    cr_assert_eq(tu_system("cp '%s/c_3.db' '%s/renamed_3.db' && sqlite3 '%s/renamed_3.db' "
                           "\"UPDATE run_classes SET name = 'z' WHERE class = 2\"", dir, dir, dir), 0);
#define SH(...) (snprintf(sh, sizeof sh, __VA_ARGS__), sh)
    expect_refused(dir, SH("'%s/c_1.db' '%s/old_2.db' '%s/c_3.db'", dir, dir, dir), "old_2.db",
                   "the classes");
    expect_refused(dir, SH("'%s/c_1.db' '%s/c_2.db' '%s/renamed_3.db'", dir, dir, dir),
                   "renamed_3.db", "the classes");
    /* the same pictures laid out in one folder are another list */
    expect_refused(dir, SH("'%s/c_1.db' '%s/flat_2.db' '%s/c_3.db'", dir, dir, dir), "flat_2.db",
                   "the image list");
#undef SH
    /* and the three that belong together merge */
    cr_assert_eq(tu_system("'%s' merge -o '%s/ok.db' '%s/c_1.db' '%s/c_2.db' '%s/c_3.db' > /dev/null",
                           zfviz(), dir, dir, dir, dir), 0);
}

Test(merge, local_folders_are_not_taken_for_network_filesystems)
{
    /* this machine's test folder is local: no warning; a path that does not exist yet is judged
     * by its folder */
    const char *dir = tu_tmpdir("merge_netfs");
    char path[4096];
    snprintf(path, sizeof path, "%s/new.db", dir);
    cr_assert_null(zf_db_network_fs(path));
    FILE *m = fopen("/proc/mounts", "r");
    cr_assert_not_null(m);
    char dev[512], mnt[512], type[64];
    int nfs = 0;
    while (fscanf(m, "%511s %511s %63s %*[^\n]", dev, mnt, type) == 3)
        if (!strncmp(type, "nfs", 3) && !nfs) {
            /* where a network mount exists, it is named */
            cr_assert_not_null(zf_db_network_fs(mnt), "%s (%s) not taken for NFS", mnt, type);
            nfs = 1;
        }
    fclose(m);
}

/* ---------------------------------------------------------------- bottom-k */

/* The histogram bin of v (zf/db.h's layout), from frexp rather than the bits. */
static int ref_bin(float v)
{
    if (isnan(v))
        return 259;
    double a = fabs((double)v);
    if (a < 0x1p-16)
        return 129;
    if (a >= 0x1p16)
        return v < 0 ? 0 : 258;
    int e;
    double f = frexp(a, &e);            /* a = f 2^e, f in [0.5, 1) */
    int o = e - 1;                      /* a = 2^o (1 + t), t in [0, 1) */
    int m = (int)floor((2 * f - 1) * 4); /* the quarter of the octave */
    int j = (o + 16) * 4 + m;
    return v < 0 ? 128 - j : 130 + j;
}

typedef struct low_ex {
    float score;
    int64_t seq;
    int pos;
} low_ex;

static int cmp_low(const void *a, const void *b)
{
    const low_ex *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

typedef struct low_all {
    low_ex **ex;    /* per layer: units x n, each image's lowest value and where */
    int *n_ex;      /* per layer: entries so far */
    int64_t **hist; /* per layer: units x 260 */
} low_all;

static void add_lows(void *ctx, const ref_net *r, int j, int c, const float *p, int hw,
                     int64_t seq)
{
    low_all *la = ctx;
    int units = r->net->layers[r->layers[j]].out_c;
    int at = 0;
    for (int q = 1; q < hw; q++)
        if (p[q] < p[at])
            at = q;
    for (int q = 0; q < hw; q++)
        la->hist[j][(size_t)c * 260 + ref_bin(p[q])]++;
    la->ex[j][(size_t)c * r->n + la->n_ex[j] / units] = (low_ex){p[at], seq, at};
    la->n_ex[j]++;
}

Test(merge, bottom_k_and_histogram_match_a_direct_computation_and_merge_exactly)
{
    char dir[2048], imgs[4096], ref[4096], out[4096];
    tu_tmpdir_sub(dir, imgs, "merge_bottom", "images");
    snprintf(ref, sizeof ref, "%s/ref.db", dir);
    snprintf(out, sizeof out, "%s/merged.db", dir);
    make_images(imgs, 11, 77); /* 12 files: 6 batches of 2 */
    const int k = 4;
    cr_assert_eq(tu_system("'%s' scan --images '%s' --db '%s' --batch 2 --top %d > /dev/null 2>&1",
                           zfviz(), imgs, ref, k), 0);
    for (int s = 1; s <= 3; s++)
        cr_assert_eq(scan_shard(dir, imgs, "b", s, 3, "--top 4"), 0);
    cr_assert_eq(tu_system("'%s' merge -o '%s' '%s/b_2.db' '%s/b_3.db' '%s/b_1.db' > /dev/null",
                           zfviz(), out, dir, dir, dir), 0);
    cr_assert_eq(rows_differing(out, ref, "bottomk"), 0);
    cr_assert_eq(rows_differing(out, ref, "unit_stats"), 0);

    /* each image's smallest value and where, the k lowest images, ties to the earlier: from the
     * activations of the same net over the same batches */
    ref_net r;
    ref_net_open(&r, imgs, 12);
    zf_net *net = r.net;
    const int nl = r.nl, *layers = r.layers;
    const int64_t n = r.n;
    low_ex **ex = calloc((size_t)nl, sizeof *ex);
    int *n_ex = calloc((size_t)nl, sizeof *n_ex);
    int64_t **hist = calloc((size_t)nl, sizeof *hist);
    for (int j = 0; j < nl; j++)
        hist[j] = calloc((size_t)net->layers[layers[j]].out_c * 260, sizeof **hist);
    for (int j = 0; j < nl; j++)
        ex[j] = calloc((size_t)net->layers[layers[j]].out_c * (size_t)n, sizeof **ex);
    low_all la = {ex, n_ex, hist};
    ref_net_forward(&r, add_lows, &la);
    int checked = 0;
    for (int j = 0; j < nl; j++) {
        const zf_layer *l = &net->layers[layers[j]];
        int per_unit = n_ex[j] / l->out_c;
        cr_assert_eq(per_unit, 11, "%s: %d images", l->name, per_unit);
        for (int c = 0; c < l->out_c; c += 1 + l->out_c / 16) {
            low_ex *e = ex[j] + (size_t)c * n;
            qsort(e, (size_t)per_unit, sizeof *e, cmp_low);
            for (int r = 0; r < k; r++) {
                char sql[1024];
                snprintf(sql, sizeof sql,
                         "SELECT count(*) FROM bottomk WHERE layer = '%s' AND unit = %d AND rank "
                         "= %d AND seq = %lld AND y = %d AND x = %d AND CAST(score AS REAL) = %.9g",
                         l->name, c, r + 1, (long long)e[r].seq, e[r].pos / l->out_w,
                         e[r].pos % l->out_w, (double)e[r].score);
                cr_assert_eq(sql_int(ref, sql), 1, "%s unit %d rank %d: want image %lld, %.9g at "
                             "(%d, %d)", l->name, c, r + 1, (long long)e[r].seq,
                             (double)e[r].score, e[r].pos / l->out_w, e[r].pos % l->out_w);
                checked++;
            }
        }
    }
    cr_assert(checked > 100);
    /* every unit's histogram, as stored */
    for (int j = 0; j < nl; j++) {
        const zf_layer *l = &net->layers[layers[j]];
        for (int c = 0; c < l->out_c; c += 1 + l->out_c / 8) {
            char want[260 * 21 + 3], sql[8192];
            char *o = want;
            for (int b = 0; b < 260; b++)
                o += sprintf(o, "%c%lld", b ? ',' : '[', (long long)hist[j][(size_t)c * 260 + b]);
            sprintf(o, "]");
            snprintf(sql, sizeof sql, "SELECT count(*) FROM unit_stats WHERE layer = '%s' AND "
                     "unit = %d AND hist = '%s'", l->name, c, want);
            cr_assert_eq(sql_int(ref, sql), 1, "%s unit %d: histogram differs", l->name, c);
        }
    }
    /* and the median read from it is a bin that holds the middle value: at most half below it,
     * at least half up to its end */
    cr_assert_eq(sql_int(ref, "SELECT count(*) FROM unit_quantiles q JOIN unit_stats s USING "
                              "(run_id, layer, unit) WHERE (SELECT sum(count) FROM histogram h "
                              "WHERE h.run_id = q.run_id AND h.layer = q.layer AND h.unit = q.unit "
                              "AND h.hi <= q.q50_lo) > s.positions / 2.0"), 0);
    cr_assert_eq(sql_int(ref, "SELECT count(*) FROM unit_quantiles"),
                 sql_int(ref, "SELECT count(*) FROM unit_stats"));
    for (int j = 0; j < nl; j++) {
        free(ex[j]);
        free(hist[j]);
    }
    free(ex);
    free(hist);
    free(n_ex);
    ref_net_close(&r);
}

Test(merge, every_allocation_that_fails_in_a_merge_is_a_clean_error)
{
    char dir[2048], imgs[4096], out[4096], a[4096], b[4096];
    tu_tmpdir_sub(dir, imgs, "merge_nomem", "images");
    make_images(imgs, 5, 41); /* 6 files: 3 batches */
    cr_assert_eq(scan_shard(dir, imgs, "m", 1, 2, NULL), 0);
    cr_assert_eq(scan_shard(dir, imgs, "m", 2, 2, NULL), 0);
    snprintf(a, sizeof a, "%s/m_1.db", dir);
    snprintf(b, sizeof b, "%s/m_2.db", dir);
    snprintf(out, sizeof out, "%s/merged.db", dir);
    const char *shards[2] = {a, b};
    /* the n-th of the merge's own allocations fails, for every n until none is left to fail */
    int64_t k = 0;
    for (;; k++) {
        cr_assert_lt(k, 100000);
        zf_merge_result r;
        zf_alloc_fail_after(k);
        zf_status st = zf_db_merge(out, shards, 2, &r);
        int hit = zf_alloc_fault_hit();
        zf_alloc_fail_after(-1);
        if (!hit) {
            cr_assert_eq(st, ZF_OK, "%s", zf_last_error());
            break;
        }
        cr_assert_neq(st, ZF_OK, "allocation %lld failed, yet the merge succeeded", (long long)k);
        cr_assert(strstr(zf_last_error(), "out of memory"), "allocation %lld: %s", (long long)k,
                  zf_last_error());
        cr_assert_neq(access(out, F_OK), 0, "allocation %lld: a failed merge left its output",
                      (long long)k);
        cr_assert_eq(tu_system("ls '%s' | grep -q merge-", dir), 1,
                     "allocation %lld: a failed merge left its temporary file", (long long)k);
    }
    cr_assert_gt(k, 20, "only %lld allocations went through zf/alloc.h", (long long)k);
    cr_assert_eq(sql_int(out, "SELECT next_seq FROM runs"), 6);
}

/* mpirun's ranks: each scans its shard on "node-local" disk (TMPDIR), rank 0 merges; the result
 * is the one-process scan, and the same command again finds the shards done and merges again. A
 * build without MPI (the sanitizer build) refuses to run as one rank of several. */
Test(merge, mpirun_three_ranks_give_the_one_process_scan)
{
    if (tu_system("command -v mpirun > /dev/null 2>&1") != 0)
        cr_skip_test("no mpirun (Debian's openmpi-bin)");
    char dir[2048], imgs[4096], ref[4096], out[4096], local[4096];
    tu_tmpdir_sub(dir, imgs, "merge_mpi", "images");
    snprintf(ref, sizeof ref, "%s/ref.db", dir);
    snprintf(out, sizeof out, "%s/out.db", dir);
    snprintf(local, sizeof local, "%s/local", dir);
    mkdir(local, 0755);
    make_images(imgs, 14, 17); /* 15 files: 8 batches of 2 */
    /* as root in CI (Open MPI refuses root unless told), more ranks than cores, and shared memory
     * copied through a buffer rather than by cross-process reads, which containers often forbid */
    const char *mpirun = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                         "OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun --oversubscribe -np 3";
    if (!zft_world_library()) {
        cr_assert_neq(tu_system("%s '%s' scan --images '%s' --db '%s' --batch 2 > '%s/log' 2>&1",
                                mpirun, zfviz(), imgs, out, dir), 0);
        char log[4096];
        snprintf(log, sizeof log, "%s/log", dir);
        char *text = tu_slurp(log, NULL);
        cr_assert(strstr(text, "built without MPI"), "%s", text);
        free(text);
        cr_assert_neq(access(out, F_OK), 0, "a refused job made %s", out);
        return;
    }
    cr_assert_eq(tu_system("'%s' scan --images '%s' --db '%s' --batch 2 > /dev/null 2>&1", zfviz(),
                           imgs, ref), 0);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(tu_system("TMPDIR='%s' %s '%s' scan --images '%s' --db '%s' --batch 2 "
                               "> '%s/log' 2>&1",
                               local, mpirun, zfviz(), imgs, out, dir),
                     0, "mpirun -np 3, round %d", round + 1);
        expect_same_scan(out, ref, "mpirun -np 3");
    }
    /* three shard databases of the right slices stayed on the ranks' disk, nothing else */
    cr_assert_eq(tu_system("test $(ls '%s' | wc -l) -eq 3 && ls '%s'/out.db.*.shard-3-of-3.db > /dev/null",
                           local, local),
                 0, "the shard databases are not as expected");
    cr_assert_eq(sql_int(out, "SELECT count(*) FROM runs"), 1);
    /* --shard is mpirun's to give */
    cr_assert_neq(tu_system("%s '%s' scan --images '%s' --db '%s' --shard 1/2 > '%s/log' 2>&1",
                            mpirun, zfviz(), imgs, out, dir),
                  0);
    char log[4096];
    snprintf(log, sizeof log, "%s/log", dir);
    char *text = tu_slurp(log, NULL);
    cr_assert(strstr(text, "--shard cannot be combined with mpirun's ranks"), "%s", text);
    free(text);
}
