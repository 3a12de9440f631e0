/* Tests of zfviz demo: a --quick run writes every file it promises (PNGs decoded with libpng, the
 * PDF's pages read by poppler), its accuracy equals `zfviz eval` on the same image files, its dead
 * units equal `zfviz dead` on its scans, and bad requests fail with one line; and of the text page
 * renderer behind its cover. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "testutil.h"
#include "zf/dataset.h"
#include "zf/viz.h"

/* Fashion-MNIST's classes as the demo names its image files (written out here, not taken from
 * the code under test). */
static const char *const class_file[10] = {"T-shirt-top", "Trouser", "Pullover", "Dress",   "Coat",
                                           "Sandal",      "Shirt",   "Sneaker",  "Bag",     "Ankle-boot"};

/* The whole of a small file as a string. */
static char *slurp(const char *path)
{
    char *s = tu_read_file(path, NULL);
    cr_assert(s, "cannot open %s", path);
    return s;
}

/* Page sizes (points) of a PDF according to poppler's pdfinfo; returns the page count, or -1
 * when pdfinfo is not installed. */
static int pdf_page_sizes(const char *path, double *w, double *h, int max)
{
    if (tu_system("command -v pdfinfo >/dev/null 2>&1"))
        return -1;
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "pdfinfo -f 1 -l %d '%s' 2>&1", max, path);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run pdfinfo");
    char line[512];
    int pages = -1, k;
    double pw, ph;
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, "Pages:", 6))
            pages = atoi(line + 6);
        else if (sscanf(line, "Page %d size: %lf x %lf", &k, &pw, &ph) == 3 && k >= 1 && k <= max) {
            w[k - 1] = pw;
            h[k - 1] = ph;
        }
    }
    cr_assert_eq(pclose(p), 0, "pdfinfo failed on %s", path);
    return pages;
}

/* Without poppler: the page objects in the file ("/Type /Page", not "/Type /Pages"). */
static int pdf_page_objects(const char *path)
{
    char *s = slurp(path);
    int n = 0;
    for (const char *p = strstr(s, "/Type /Page"); p; p = strstr(p + 1, "/Type /Page"))
        n += p[11] != 's';
    free(s);
    return n;
}

/* "top-1 X%  top-5 Y%" of the first stdout line that contains `key`. */
static void read_acc(const char *path, const char *key, char *top1, char *top5)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, key);
        const char *t = p ? strstr(p, "top-1 ") : NULL;
        found = t && sscanf(t, "top-1 %31s top-5 %31s", top1, top5) == 2;
    }
    fclose(f);
    cr_assert(found, "%s has no line with '%s' and top-1/top-5", path, key);
}

/* The stderr file holds exactly one non-empty line containing `says`. */
static void expect_one_line(const char *path, const char *says, const char *what)
{
    char *s = slurp(path);
    int lines = 0;
    for (const char *p = s; *p; p++)
        lines += *p == '\n';
    cr_expect(lines == 1 && s[strlen(s) - 1] == '\n', "%s: stderr has %d lines: '%s'", what, lines, s);
    cr_expect(strstr(s, says), "%s: stderr '%s' does not say '%s'", what, s, says);
    free(s);
}

Test(demo, quick_run_writes_every_promised_file_and_its_accuracy_matches_eval)
{
    const char *why = tu_demo_missing();
    if (why)
        cr_skip_test("%s", why);
    tu_demo_run run;
    tu_demo_quick(&run);
    const char *dir = tu_tmpdir("demo_quick"), *out = run.out, *log = run.log;
    const char *z = tu_build("tools/zfviz");
    char p[1400];

    /* A progress line per stage, then where the files are, the PDF first. */
    char *text = slurp(log);
    for (int k = 1; k <= 15; k++) {
        char tag[16];
        snprintf(tag, sizeof tag, "[%d/15 ", k);
        cr_expect(strstr(text, tag), "no progress line %s in:\n%s", tag, text);
    }
    const char *done = strstr(text, "done in ");
    cr_assert(done, "no closing 'done in' line:\n%s", text);
    const char *first_file = strchr(done, '\n');
    char want_pdf[1100];
    snprintf(want_pdf, sizeof want_pdf, "  %s/demo.pdf ", out);
    cr_expect(first_file && !strncmp(first_file + 1, want_pdf, strlen(want_pdf)),
              "the first file listed after 'done' is not the PDF:\n%s", done);
    free(text);

    /* The images: 50 by default with --quick, 5 of each class, 28 x 28, the test set's pixels. */
    zf_dataset *test = NULL;
    cr_assert_eq(zf_dataset_load_fashion_mnist(NULL, 0, &test), ZF_OK, "%s", zf_last_error());
    snprintf(p, sizeof p, "%s/images", out);
    DIR *dd = opendir(p);
    cr_assert(dd, "no %s", p);
    int per_class[10] = {0}, n_images = 0;
    struct dirent *e;
    while ((e = readdir(dd))) {
        if (e->d_name[0] == '.')
            continue;
        int idx = -1, used = 0;
        char cls[64] = "";
        cr_assert(sscanf(e->d_name, "%5d-%63[^.].png%n", &idx, cls, &used) == 2 && used == (int)strlen(e->d_name),
                  "image file %s is not NNNNN-Class.png", e->d_name);
        cr_assert(idx >= 0 && idx < test->n, "%s: no test image %d", e->d_name, idx);
        cr_expect_str_eq(cls, class_file[test->labels[idx]], "%s: test image %d is a %s", e->d_name, idx,
                         class_file[test->labels[idx]]);
        per_class[test->labels[idx]]++;
        n_images++;
        char f[1700];
        snprintf(f, sizeof f, "%s/%s", p, e->d_name);
        tu_rgb im = tu_png_read(f);
        cr_assert(im.w == 28 && im.h == 28, "%s is %dx%d, not 28x28", e->d_name, im.w, im.h);
        for (int i = 0; i < 28 * 28; i++) {
            const uint8_t v = test->pixels[(size_t)idx * 28 * 28 + i], *px = im.px + 3 * i;
            if (px[0] != v || px[1] != v || px[2] != v) {
                cr_expect_fail("%s pixel %d is (%d,%d,%d), the test image has %d", e->d_name, i, px[0], px[1],
                               px[2], v);
                break;
            }
        }
        free(im.px);
    }
    closedir(dd);
    cr_expect_eq(n_images, 50, "%d images written, --quick promises 50", n_images);
    for (int k = 0; k < 10; k++)
        cr_expect_eq(per_class[k], 5, "class %d has %d images, not 5", k, per_class[k]);
    zf_dataset_free(test);

    /* Every figure: a PNG the size of its page in the PDF (one PNG pixel is one PDF point), the
     * training curves at the renderer's documented 920 x 390 and the text pages A4 landscape. */
    static const char *const figs[16] = {NULL,
                                        "training-curves.png",
                                        "conv1-compare.png",
                                        "conv5-top9-alexnet-mini.png",
                                        "conv5-top9-zfnet-mini.png",
                                        "occlusion-alexnet-mini.png",
                                        "occlusion-zfnet-mini.png",
                                        NULL,
                                        "attribution.png",
                                        "invariance-alexnet-mini.png",
                                        "invariance-zfnet-mini.png",
                                        "correspondence.png",
                                        "conv2-compare.png",
                                        "probes.png",
                                        "evolve-alexnet-mini.png",
                                        "evolve-zfnet-mini.png"};
    char pdf[1200];
    snprintf(pdf, sizeof pdf, "%s/demo.pdf", out);
    double pw[16] = {0}, ph[16] = {0};
    int pages = pdf_page_sizes(pdf, pw, ph, 16);
    if (pages < 0)
        pages = pdf_page_objects(pdf);
    cr_expect_eq(pages, 16,
                 "%s has %d pages, expected 16 (cover, curves, compare, 2 sheets, 2 occlusion, dead, attribution, 2 "
                 "invariance, correspondence, conv2, probes, 2 evolution)", pdf, pages);
    for (int i = 0; i < 16; i++) {
        if (!figs[i]) {
            if (pw[i] > 0)
                cr_expect(pw[i] == 842 && ph[i] == 595, "page %d is %gx%g, not A4 landscape", i + 1, pw[i], ph[i]);
            continue;
        }
        snprintf(p, sizeof p, "%s/%s", out, figs[i]);
        tu_rgb im = tu_png_read(p);
        cr_expect(im.w >= 300 && im.h >= 200, "%s is only %dx%d", figs[i], im.w, im.h);
        if (pw[i] > 0)
            cr_expect(im.w == (int)pw[i] && im.h == (int)ph[i], "%s is %dx%d, its PDF page %d is %gx%g", figs[i], im.w,
                      im.h, i + 1, pw[i], ph[i]);
        if (i == 1)
            cr_expect(im.w == 920 && im.h == 390, "training-curves.png is %dx%d, not 920x390", im.w, im.h);
        free(im.px);
    }
    /* Four occlusion rows make the figure taller than it is wide (5 panels a row). */
    snprintf(p, sizeof p, "%s/occlusion-zfnet-mini.png", out);
    tu_rgb occ = tu_png_read(p);
    cr_expect(occ.h > occ.w / 2, "occlusion-zfnet-mini.png is %dx%d: fewer rows than promised?", occ.w, occ.h);
    free(occ.px);

    /* The accuracy it prints is what zfviz eval finds on the same image files, read back from the
     * PNGs through a class-folder tree (folders 0..9 sort as Fashion-MNIST numbers its classes). */
    char tree[1200];
    snprintf(tree, sizeof tree, "%s/eval", dir);
    for (int k = 0; k < 10; k++) {
        cr_assert_eq(tu_system("mkdir -p '%s/%d' && for f in '%s'/images/*-%s.png; do ln -s \"$f\" '%s/%d/'; done",
                               tree, k, out, class_file[k], tree, k),
                     0);
    }
    static const char *const nets[2] = {"alexnet-mini", "zfnet-mini"};
    for (int i = 0; i < 2; i++) {
        char key[64], evlog[1300], d1[32], d5[32], e1[32], e5[32];
        snprintf(key, sizeof key, "%s on the 50 demo images:", nets[i]);
        read_acc(log, key, d1, d5);
        snprintf(evlog, sizeof evlog, "%s/eval-%s.txt", dir, nets[i]);
        cr_assert_eq(tu_system("'%s' eval --model %s --data '%s' --size 28 > '%s' 2>/dev/null", z, nets[i], tree, evlog),
                     0, "zfviz eval failed");
        read_acc(evlog, "(50 images)", e1, e5);
        cr_expect_str_eq(d1, e1, "%s: the demo says top-1 %s, zfviz eval %s", nets[i], d1, e1);
        cr_expect_str_eq(d5, e5, "%s: the demo says top-5 %s, zfviz eval %s", nets[i], d5, e5);

        /* Its dead-unit file holds what zfviz dead says about its scan. */
        char db[1200], dead[1300];
        snprintf(db, sizeof db, "%s/%s.db", out, nets[i]);
        snprintf(dead, sizeof dead, "%s/dead-%s.txt", dir, nets[i]);
        cr_assert_eq(tu_system("'%s' dead --db '%s' --min-active 0.01 > '%s'", z, db, dead), 0, "zfviz dead failed");
        char *want = slurp(dead);
        snprintf(p, sizeof p, "%s/dead-units.txt", out);
        char *got = slurp(p);
        char head[64];
        snprintf(head, sizeof head, "== %s:", nets[i]);
        char *sec = strstr(got, head);
        sec = sec ? strchr(sec, '\n') : NULL;
        cr_expect(sec && !strncmp(sec + 1, want, strlen(want)),
                  "dead-units.txt's %s section differs from zfviz dead:\n%s\n--- zfviz dead:\n%s", nets[i], got, want);
        free(want);
        free(got);
    }
}

Test(demo, unusable_output_folder_or_data_fail_with_one_line)
{
    const char *why = tu_demo_missing();
    if (why && strstr(why, "embedded"))
        cr_skip_test("%s", why);
    const char *dir = tu_tmpdir("demo_bad");
    const char *z = tu_build("tools/zfviz");
    char err[1100], file[1100];
    snprintf(err, sizeof err, "%s/err.txt", dir);
    snprintf(file, sizeof file, "%s/a-file", dir);
    cr_assert_eq(tu_system("echo x > '%s'", file), 0);
    /* A parent that is a file: no one, root included, can make a folder under it. */
    int rc = tu_system("'%s' demo --quick -o '%s/sub' > /dev/null 2> '%s'", z, file, err);
    cr_expect_eq(rc, 1, "-o under a file: exit %d", rc);
    expect_one_line(err, "output folder", "-o under a file");
    if (geteuid() != 0) {
        /* A read-only folder (root would write into it anyway). */
        char ro[1100];
        snprintf(ro, sizeof ro, "%s/ro", dir);
        cr_assert_eq(tu_system("mkdir -p '%s' && chmod 0555 '%s'", ro, ro), 0);
        rc = tu_system("'%s' demo --quick -o '%s' > /dev/null 2> '%s'", z, ro, err);
        tu_system("chmod 0755 '%s'", ro);
        cr_expect_eq(rc, 1, "-o a read-only folder: exit %d", rc);
        expect_one_line(err, "output folder", "-o a read-only folder");
    }
    /* No Fashion-MNIST: says how to get it. */
    rc = tu_system("ZFVIZ_FASHION_MNIST='%s/none' '%s' demo --quick -o '%s/o' > /dev/null 2> '%s'", dir, z, dir, err);
    cr_expect_eq(rc, 1, "no Fashion-MNIST: exit %d", rc);
    expect_one_line(err, "apt-get install dataset-fashion-mnist", "no Fashion-MNIST");
    /* Usage errors. */
    rc = tu_system("'%s' demo --images 5 -o '%s/o' > /dev/null 2> '%s'", z, dir, err);
    cr_expect_eq(rc, 2, "--images 5: exit %d", rc);
    expect_one_line(err, "--images", "--images 5");
}

/* ---- the text pages the cover and the dead-unit page are made of ---- */

Test(text_page, is_a4_landscape_and_refuses_text_that_cannot_fit)
{
    zf_viz_doc *doc = NULL;
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PNG, &doc), ZF_OK);
    zf_viz_text_block b[] = {{"Heading", "Some prose that wraps at word boundaries. ", 0, 0},
                             {"Left", "a  1\nb  2\n", 1, 1},
                             {"Right", "c  3\n", 1, 2}};
    cr_assert_eq(zf_viz_text_page(doc, "Title", b, 3), ZF_OK, "%s", zf_last_error());
    int w, h;
    zf_viz_doc_page_size(doc, &w, &h);
    cr_expect(w == 842 && h == 595, "a text page is %dx%d, not A4 landscape 842x595", w, h);
    zf_viz_doc_free(doc);

    /* 200 table lines cannot fit at any legible size: an error, no page. */
    size_t cap = 200 * 12 + 1;
    char *many = malloc(cap);
    cr_assert(many);
    many[0] = '\0';
    for (int i = 0; i < 200; i++)
        snprintf(many + strlen(many), cap - strlen(many), "line %5d\n", i);
    zf_viz_text_block big = {"Too long", many, 1, 0};
    cr_assert_eq(zf_viz_doc_open_mem(ZF_VIZ_PDF, &doc), ZF_OK);
    cr_expect_neq(zf_viz_text_page(doc, "Overflow", &big, 1), ZF_OK, "200 lines fitted one page");
    cr_expect_eq(zf_viz_doc_pages(doc), 0, "a page was added for text that does not fit");
    cr_expect(strstr(zf_last_error(), "does not fit"), "error '%s' does not say the text does not fit", zf_last_error());
    zf_viz_doc_free(doc);
    free(many);
}
