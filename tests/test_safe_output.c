/* Tests that zfviz never loses a user's file: outputs are checked before any work, written whole or
 * not at all (a failed run leaves the previous file byte for byte and no temporary file), a file
 * zfviz did not make is replaced only with --force (training: --force or --resume), a failed write
 * names the file, and output folders are created and removed again when the command fails. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/io.h"

static const char *zfviz(void) { return tu_build("tools/zfviz"); }

/* The whole file, or NULL (and *len = 0) when it cannot be read. */
static char *slurp(const char *path, size_t *len) { return tu_read_file(path, len); }

/* Asserts that `path` holds exactly `want` (n bytes). */
static void assert_same(const char *path, const char *want, size_t n, const char *why)
{
    size_t len;
    char *got = slurp(path, &len);
    cr_assert(got, "%s: %s is gone", why, path);
    cr_assert(len == n && !memcmp(got, want, n), "%s: %s changed (%zu bytes, was %zu)", why, path, len, n);
    free(got);
}

/* No ".NAME.*.tmp" (zfviz's temporary files) left in dir. */
static void assert_no_temp(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d, "%s: cannot list", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        cr_assert(!(e->d_name[0] == '.' && n > 4 && !strcmp(e->d_name + n - 4, ".tmp")),
                  "%s: a temporary file was left: %s", dir, e->d_name);
    }
    closedir(d);
}

/* stderr of the last command: one line, containing every `need` (NULL-terminated). */
static void assert_one_line(const char *err, const char *const *need)
{
    size_t len;
    char *t = slurp(err, &len);
    cr_assert(t, "no stderr file");
    /* the notice about the embedded model is not part of the error */
    const char *msg = t;
    if (!strncmp(msg, "zfviz: no model given", 21) && strchr(msg, '\n'))
        msg = strchr(msg, '\n') + 1;
    const char *nl = strchr(msg, '\n');
    cr_assert(nl && !nl[1], "expected one line on stderr, got:\n%s", t);
    for (int i = 0; need[i]; i++)
        cr_assert(strstr(msg, need[i]), "stderr lacks '%s':\n%s", need[i], t);
    free(t);
}

/* `what` (exit status rc) refused to replace `path`: it failed, `path` still holds the n bytes `want`,
 * and stderr (err) is one line holding each of `need`. */
static void expect_kept(int rc, const char *what, const char *path, const char *want, size_t n, const char *err,
                        const char *const *need)
{
    cr_assert_neq(rc, 0, "%s replaced %s", what, path);
    assert_same(path, want, n, what);
    assert_one_line(err, need);
}

/* A small grey PNG (written by this test's own code, not through zfviz's output rules). */
static void make_image(const char *path, int seed)
{
    zf_image *img = zf_image_new(40, 32);
    cr_assert(img);
    for (int i = 0; i < 40 * 32 * 3; i++)
        img->rgb[i] = (uint8_t)((i * 7 + seed * 31) & 0xff);
    cr_assert_eq(zf_image_save_png(path, img), 0, "%s", path);
    zf_image_free(img);
}

Test(safe_output, filters_bad_mode_keeps_png_and_pdf)
{
    const char *dir = tu_tmpdir("safe-filters");
    char png[512], pdf[512], err[512];
    snprintf(png, sizeof png, "%s/g.png", dir);
    snprintf(pdf, sizeof pdf, "%s/g.pdf", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    cr_assert_eq(tu_system("'%s' filters -o '%s' 2>/dev/null", zfviz(), png), 0);
    cr_assert_eq(tu_system("'%s' filters --layer all -o '%s' 2>/dev/null", zfviz(), pdf), 0);
    size_t np, nd;
    char *p = slurp(png, &np), *d = slurp(pdf, &nd);
    cr_assert(p && d && np > 100 && nd > 1000);
    /* --mode channel:7 passes the option parser and fails on conv1 (one input channel) */
    cr_assert_neq(tu_system("'%s' filters --mode channel:7 -o '%s' 2>'%s'", zfviz(), png, err), 0);
    assert_same(png, p, np, "a failed filters run");
    cr_assert_neq(tu_system("'%s' filters --layer all --mode channel:7 -o '%s' 2>'%s'", zfviz(), pdf, err), 0);
    assert_same(pdf, d, nd, "a failed filters run");
    assert_no_temp(dir);
    free(p);
    free(d);
}

Test(safe_output, foreign_file_refused_own_rewritten_force_replaces)
{
    const char *dir = tu_tmpdir("safe-force");
    char out[512], own[512], err[512];
    snprintf(out, sizeof out, "%s/mine.png", dir);
    snprintf(own, sizeof own, "%s/own.png", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    static const char text[] = "notes the user keeps under a .png name\n";
    tu_write_file(out, text, strlen(text));
    expect_kept(tu_system("'%s' filters -o '%s' 2>'%s'", zfviz(), out, err), "filters without --force", out, text,
                strlen(text), err, (const char *const[]){out, "--force", NULL});
    /* zfviz's own output is written again without --force: re-running a command works */
    cr_assert_eq(tu_system("'%s' filters -o '%s' 2>/dev/null", zfviz(), own), 0);
    cr_assert_eq(tu_system("'%s' filters --layer conv2 -o '%s' 2>'%s'", zfviz(), own, err), 0);
    /* --force replaces the foreign file with a PNG */
    cr_assert_eq(tu_system("'%s' filters --force -o '%s' 2>/dev/null", zfviz(), out), 0);
    size_t n;
    char *b = slurp(out, &n);
    cr_assert(b && n > 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8), "--force did not write a PNG");
    free(b);
}

Test(safe_output, failed_write_keeps_old_file_and_no_temp)
{
    const char *dir = tu_tmpdir("safe-fsize");
    char pdf[512], err[512];
    snprintf(pdf, sizeof pdf, "%s/g.pdf", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    cr_assert_eq(tu_system("'%s' filters -o '%s' 2>/dev/null", zfviz(), pdf), 0);
    size_t n;
    char *old = slurp(pdf, &n);
    cr_assert(old);
    /* A file-size limit of 20 KiB makes the 5-page PDF's write fail part way (EFBIG). */
    int rc = tu_system("sh -c \"trap '' XFSZ; ulimit -f 20; exec '%s' filters --layer all -o '%s'\" 2>'%s'",
                       zfviz(), pdf, err);
    cr_assert_neq(rc, 0, "the write under a 20 KiB limit did not fail");
    assert_same(pdf, old, n, "a failed write");
    assert_no_temp(dir);
    assert_one_line(err, (const char *const[]){"g.pdf", "File too large", NULL});
    free(old);
}

Test(safe_output, full_disk_names_the_file)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no writable /dev/full");
    const char *dir = tu_tmpdir("safe-full");
    char png[512], pdf[512], npy[512], err[512];
    snprintf(png, sizeof png, "%s/full.png", dir);
    snprintf(pdf, sizeof pdf, "%s/full.pdf", dir);
    snprintf(npy, sizeof npy, "%s/in.npy", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    cr_assert_eq(symlink("/dev/full", png), 0);
    cr_assert_eq(symlink("/dev/full", pdf), 0);
    cr_assert_neq(tu_system("'%s' filters -o '%s' 2>'%s'", zfviz(), png, err), 0);
    assert_one_line(err, (const char *const[]){"full.png", "No space left on device", NULL});
    cr_assert_neq(tu_system("'%s' filters --layer all -o '%s' 2>'%s'", zfviz(), pdf, err), 0);
    assert_one_line(err, (const char *const[]){"full.pdf", "No space left on device", NULL});
    /* a .npy */
    char out[512];
    snprintf(out, sizeof out, "%s/full.npy", dir);
    cr_assert_eq(symlink("/dev/full", out), 0);
    make_image(npy, 1); /* any input image; zfviz tells the kind by content */
    cr_assert_neq(tu_system("'%s' deconv --input '%s' --layer conv1 --channel 0 --out '%s' 2>'%s' >/dev/null",
                            zfviz(), npy, out, err), 0);
    assert_one_line(err, (const char *const[]){"full.npy", "No space left on device", NULL});
}

Test(safe_output, forward_activations_occlude_refuse_foreign_files)
{
    const char *dir = tu_tmpdir("safe-dumps");
    char img[512], dumps[512], dump[512], act[512], occl[512], summary[512], err[512];
    snprintf(img, sizeof img, "%s/x.png", dir);
    snprintf(dumps, sizeof dumps, "%s/dumps", dir);
    snprintf(dump, sizeof dump, "%s/dumps/conv1.npy", dir);
    snprintf(act, sizeof act, "%s/act.png", dir);
    snprintf(occl, sizeof occl, "%s/occl", dir);
    snprintf(summary, sizeof summary, "%s/occl/summary.json", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    make_image(img, 2);
    cr_assert_eq(mkdir(dumps, 0777), 0);
    cr_assert_eq(mkdir(occl, 0777), 0);
    static const char text[] = "{\"a file\": \"the user's\"}\n";
    tu_write_file(dump, text, strlen(text));
    tu_write_file(act, text, strlen(text));
    tu_write_file(summary, text, strlen(text));

    expect_kept(tu_system("'%s' forward --input '%s' --dump conv1 --out '%s' 2>'%s' >/dev/null", zfviz(), img, dumps,
                          err),
                "forward --dump", dump, text, strlen(text), err, (const char *const[]){dump, "--force", NULL});

    expect_kept(tu_system("'%s' activations --input '%s' --layer conv1 -o '%s' 2>'%s'", zfviz(), img, act, err),
                "activations -o", act, text, strlen(text), err, (const char *const[]){act, "--force", NULL});

    expect_kept(tu_system("'%s' occlude --input '%s' --out '%s' 2>'%s' >/dev/null", zfviz(), img, occl, err),
                "occlude --out", summary, text, strlen(text), err, (const char *const[]){summary, "--force", NULL});
    struct stat sb;
    cr_assert_neq(stat(dump, &sb), -1);
    char feature[600];
    snprintf(feature, sizeof feature, "%s/feature.npy", occl);
    cr_assert_eq(stat(feature, &sb), -1, "occlude wrote %s although it refused to run", feature);

    /* with --force all of them run, and the dumps are .npy files again */
    cr_assert_eq(tu_system("'%s' forward --force --input '%s' --dump conv1 --out '%s' 2>/dev/null >/dev/null",
                           zfviz(), img, dumps), 0);
    size_t n;
    char *b = slurp(dump, &n);
    cr_assert(b && n > 10 && !memcmp(b, "\x93NUMPY", 6), "forward --force did not write a .npy");
    free(b);
    /* and a second run writes its own dump again without --force */
    cr_assert_eq(tu_system("'%s' forward --input '%s' --dump conv1 --out '%s' 2>/dev/null >/dev/null", zfviz(), img,
                           dumps), 0);
}

Test(safe_output, report_refuses_foreign_pdf)
{
    const char *dir = tu_tmpdir("safe-report");
    char imgs[512], db[512], pdf[512], err[512], p[600];
    snprintf(imgs, sizeof imgs, "%s/imgs", dir);
    snprintf(db, sizeof db, "%s/scan.db", dir);
    snprintf(pdf, sizeof pdf, "%s/report.pdf", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    cr_assert_eq(mkdir(imgs, 0777), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%d.png", imgs, i);
        make_image(p, i);
    }
    cr_assert_eq(tu_system("'%s' scan --arch alexnet-mini --weights random:1 --images '%s' --db '%s' >/dev/null 2>&1",
                           zfviz(), imgs, db), 0);
    static const char text[] = "%PDF-1.4 a paper the user wrote\n";
    tu_write_file(pdf, text, strlen(text));
    expect_kept(tu_system("'%s' report --db '%s' -o '%s' 2>'%s' >/dev/null", zfviz(), db, pdf, err), "report -o", pdf,
                text, strlen(text), err, (const char *const[]){pdf, "--force", NULL});
}

Test(safe_output, train_refuses_existing_out)
{
    const char *dir = tu_tmpdir("safe-train");
    char out[512], err[512];
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    /* zfviz's own embedded model stands for an hour of training: zfviz made it, and still it is kept */
    cr_assert_eq(tu_system("cp '%s' '%s'", tu_src("assets/models/alexnet-mini.safetensors"), out), 0);
    size_t n;
    char *old = slurp(out, &n);
    cr_assert(old && n > 1000);
    const char *args = "--arch alexnet-mini --data fashion-mnist --epochs 1 --limit 64 --val 64 --batch 32 "
                       "--snapshots 1";
    expect_kept(tu_system("'%s' train %s --out '%s' >/dev/null 2>'%s'", zfviz(), args, out, err),
                "train without --force or --resume", out, old, n, err,
                (const char *const[]){out, "--resume", "--force", NULL});
    /* --resume does not go on from a file zfviz did not make */
    char other[512];
    snprintf(other, sizeof other, "%s/other.safetensors", dir);
    static const char text[] = "a user's file under a model's name\n";
    tu_write_file(other, text, strlen(text));
    cr_assert_neq(tu_system("'%s' train %s --resume --out '%s' >/dev/null 2>'%s'", zfviz(), args, other, err), 0);
    assert_same(other, text, strlen(text), "train --resume");
    if (tu_system("'%s' train %s --force --out '%s' >/dev/null 2>'%s'", zfviz(), args, out, err) != 0) {
        size_t el;
        char *e = slurp(err, &el);
        if (e && strstr(e, "fashion"))
            cr_skip_test("no Fashion-MNIST here: %s", e);
        cr_assert_fail("train --force failed: %s", e ? e : "");
    }
    size_t n2;
    char *now = slurp(out, &n2);
    cr_assert(now && !(n2 == n && !memcmp(now, old, n)), "train --force did not replace --out");
    free(now);
    free(old);
}

Test(safe_output, demo_refuses_a_database_it_did_not_make)
{
    const char *dir = tu_tmpdir("safe-demo");
    char out[512], db[512], err[512], imgs[512], p[600];
    snprintf(out, sizeof out, "%s/demo", dir);
    snprintf(db, sizeof db, "%s/demo/alexnet-mini.db", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    snprintf(imgs, sizeof imgs, "%s/imgs", dir);
    cr_assert_eq(mkdir(out, 0777), 0);
    cr_assert_eq(mkdir(imgs, 0777), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%d.png", imgs, i);
        make_image(p, i);
    }
    /* a zfviz database, but of the user's own scan of other images */
    cr_assert_eq(tu_system("'%s' scan --images '%s' --db '%s' >/dev/null 2>&1", zfviz(), imgs, db), 0);
    size_t n;
    char *old = slurp(db, &n);
    cr_assert(old && n > 1000);
    expect_kept(tu_system("'%s' demo --quick --images 10 -o '%s' >/dev/null 2>'%s'", zfviz(), out, err), "zfviz demo",
                db, old, n, err, (const char *const[]){db, "--force", NULL});
    free(old);
    /* nothing else was written */
    snprintf(p, sizeof p, "%s/images", out);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), -1, "the demo wrote %s before refusing", p);
    /* --force replaces it; the demo's own databases are then replaced by a second run without
     * --force, even one started from another folder with a relative DIR */
    cr_assert_eq(tu_system("'%s' demo --quick --images 10 --force -o '%s' >/dev/null 2>'%s'", zfviz(), out, err), 0);
    cr_assert_eq(tu_system("cd '%s' && '%s' demo --quick --images 10 -o demo >/dev/null 2>'%s'", dir, zfviz(), err), 0,
                 "a second demo run refused the demo's own files");
}

Test(safe_output, output_folder_created_and_removed_on_failure)
{
    const char *dir = tu_tmpdir("safe-mkdir");
    char ok[512], bad[512], badtop[512], err[512];
    snprintf(ok, sizeof ok, "%s/new/sub/g.png", dir);
    snprintf(bad, sizeof bad, "%s/gone/sub/g.png", dir);
    snprintf(badtop, sizeof badtop, "%s/gone", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    cr_assert_eq(tu_system("'%s' filters -o '%s' 2>'%s'", zfviz(), ok, err), 0, "filters did not create the folder");
    struct stat sb;
    cr_assert_eq(stat(ok, &sb), 0);
    /* a run that fails after creating the folders removes them again */
    cr_assert_neq(tu_system("'%s' filters --mode channel:7 -o '%s' 2>'%s'", zfviz(), bad, err), 0);
    cr_assert_eq(stat(badtop, &sb), -1, "a failed run left the folder %s it made", badtop);
    /* a folder that was there before stays, with what it held */
    char keep[512];
    snprintf(keep, sizeof keep, "%s/new/sub/other.png", dir);
    cr_assert_neq(tu_system("'%s' filters --mode channel:7 -o '%s' 2>'%s'", zfviz(), keep, err), 0);
    cr_assert_eq(stat(ok, &sb), 0);
}
