/* The paper's pages of zfviz demo (invariance, correspondence, conv2 in pixels, linear probes,
 * feature evolution): each output equals what the stand-alone command writes for the same files,
 * and one number of each of the first two is computed again here from `zfviz forward`'s dumps.
 * One `zfviz demo --quick` per build serves every test here and the other demo suites (tu_demo_quick). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "testutil.h"
#include "zf/io.h"

static const char *const nets[2] = {"alexnet-mini", "zfnet-mini"};

static const char *missing_prereq(void)
{
    const char *why = tu_demo_missing();
    if (why)
        return why;
    char p[1024];
    snprintf(p, sizeof p, "%s/assets/runs/alexnet-mini.sqlite", tu_src("."));
    if (access(p, R_OK))
        return "this checkout has no training runs to embed (assets/runs/*.sqlite)";
    return NULL;
}

static tu_demo_run demo_run;

/* The demo's output folder (the build's shared --quick run, made by the first test to need it). */
static const char *demo(void)
{
    tu_demo_quick(&demo_run);
    return demo_run.out;
}

/* ---- CSV files as rows of fields (no quoted fields in these files) ---- */

typedef struct table {
    int rows, cols;
    char **cell; /* rows x cols, after the header */
    char *text;
} table;

/* The CSV at path: skip leading lines that are not the header (starting with `head`). */
static table csv_read(const char *path, const char *head)
{
    table t = {0, 0, NULL, tu_read_file(path, NULL)};
    cr_assert(t.text, "cannot read %s", path);
    char *s = strstr(t.text, head);
    cr_assert(s, "%s has no header '%s'", path, head);
    char *save = NULL;
    int cap = 0;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int n = 1;
        for (char *c = line; *c; c++)
            n += *c == ',';
        if (!t.cols)
            t.cols = n;
        cr_assert_eq(n, t.cols, "%s: a row of %d fields under a header of %d: %s", path, n, t.cols, line);
        if ((t.rows + 1) * t.cols > cap) {
            cap = 2 * (t.rows + 1) * t.cols;
            t.cell = realloc(t.cell, sizeof(char *) * (size_t)cap);
        }
        char *f = line;
        for (int k = 0; k < n; k++) {
            char *comma = strchr(f, ',');
            if (comma)
                *comma = '\0';
            t.cell[t.rows * t.cols + k] = f;
            f = comma ? comma + 1 : f + strlen(f);
        }
        t.rows++;
    }
    return t;
}

static void csv_free(table *t)
{
    free(t->cell);
    free(t->text);
}

static const char *at(const table *t, int r, int c) { return t->cell[r * t->cols + c]; }

/* Every row of a equals b's, text fields exactly and numbers within rel (1e-6: the same code). */
static void csv_expect_equal(const table *a, const table *b, const char *what, double rel)
{
    cr_assert_eq(a->rows, b->rows, "%s: %d rows, the command's has %d", what, a->rows - 1, b->rows - 1);
    cr_assert_eq(a->cols, b->cols, "%s: %d columns, the command's has %d", what, a->cols, b->cols);
    for (int r = 0; r < a->rows; r++)
        for (int c = 0; c < a->cols; c++) {
            const char *x = at(a, r, c), *y = at(b, r, c);
            char *ex, *ey;
            double vx = strtod(x, &ex), vy = strtod(y, &ey);
            if (r > 0 && *x && !*ex && *y && !*ey)
                cr_assert(fabs(vx - vy) <= rel * fmax(fabs(vy), 1e-9), "%s row %d column %s: %s, the command gives %s",
                          what, r, at(a, 0, c), x, y);
            else
                cr_assert_str_eq(x, y, "%s row %d column %d", what, r, c);
        }
}

static zf_tensor *npy(const char *path)
{
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(path, &t), ZF_OK, "%s: %s", path, zf_last_error());
    return t;
}

/* ---- invariance ---- */

Test(demo_paper, invariance_csv_is_zfviz_invariance_and_a_shift_distance_is_two_forwards)
{
    const char *why = missing_prereq();
    if (why)
        cr_skip_test("%s", why);
    const char *out = demo(), *z = tu_build("tools/zfviz");
    const char *tmp = tu_tmpdir("demo_paper_inv");
    for (int k = 0; k < 2; k++) {
        char p[4096], q[4096], imgs[4096] = "", last[256] = "";
        snprintf(p, sizeof p, "%s/invariance-%s.csv", out, nets[k]);
        table d = csv_read(p, "image,class,");
        /* the images, in their order of appearance */
        int n_img = 0;
        for (int r = 1; r < d.rows && !strcmp(at(&d, r, 2), at(&d, 1, 2)); r++) /* the first sweep's rows */
            if (strcmp(at(&d, r, 0), last)) {
                snprintf(last, sizeof last, "%s", at(&d, r, 0));
                size_t len = strlen(imgs);
                snprintf(imgs + len, sizeof imgs - len, " '%s/images/%s'", out, last);
                n_img++;
            }
        cr_assert_eq(n_img, 4, "%s: %d images, the demo shows 4", p, n_img);
        snprintf(q, sizeof q, "%s/inv-%s", tmp, nets[k]);
        cr_assert_eq(tu_system("'%s' invariance --model %s%s --out '%s' >/dev/null 2>&1", z, nets[k], imgs, q), 0);
        strncat(q, "/invariance.csv", sizeof q - strlen(q) - 1);
        table c = csv_read(q, "image,class,");
        csv_expect_equal(&d, &c, p, 1e-6);
        csv_free(&c);

        /* The first image moved down 10 pixels (an exact shift: the bilinear weights are 1 and 0),
         * both through `zfviz forward`: the Euclidean distances of the two layers. */
        const char *la = at(&d, 0, 4) + 5, *lb = at(&d, 0, 5) + 5; /* "dist_relu1" */
        int row = -1;
        for (int r = 1; r < d.rows && row < 0; r++)
            if (!strcmp(at(&d, r, 2), "translate") && atof(at(&d, r, 3)) == 10 && !strcmp(at(&d, r, 0), at(&d, 1, 0)))
                row = r;
        cr_assert(row > 0, "%s: no row of the first image moved by 10", p);
        char f1[1500], f2[1500], img[4096];
        snprintf(f1, sizeof f1, "%s/fwd-%s-0", tmp, nets[k]);
        snprintf(f2, sizeof f2, "%s/fwd-%s-10", tmp, nets[k]);
        snprintf(img, sizeof img, "%s/images/%s", out, at(&d, 1, 0));
        cr_assert_eq(tu_system("'%s' forward --model %s --input '%s' --dump input,%s,%s --top 0 --out '%s' >/dev/null 2>&1",
                               z, nets[k], img, la, lb, f1), 0);
        snprintf(p, sizeof p, "%s/input.npy", f1);
        zf_tensor *x = npy(p);
        cr_assert(x->ndim == 4 && x->shape[0] == 1 && x->shape[1] == 1, "%s is not (1, 1, H, W)", p);
        const int h = (int)x->shape[2], w = (int)x->shape[3];
        float *moved = calloc((size_t)h * w, sizeof(float));
        for (int y = 10; y < h; y++)
            memcpy(moved + (size_t)y * w, zf_tensor_f32(x) + (size_t)(y - 10) * w, sizeof(float) * w);
        snprintf(p, sizeof p, "%s/moved.npy", tmp);
        const int64_t shape[4] = {1, 1, h, w};
        cr_assert_eq(zf_npy_write_raw(p, ZF_DTYPE_F32, moved, 4, shape), ZF_OK);
        cr_assert_eq(tu_system("'%s' forward --model %s --input '%s' --dump %s,%s --top 0 --out '%s' >/dev/null 2>&1", z,
                               nets[k], p, la, lb, f2),
                     0);
        for (int l = 0; l < 2; l++) {
            char a[4096], b[4096];
            snprintf(a, sizeof a, "%s/%s.npy", f1, l ? lb : la);
            snprintf(b, sizeof b, "%s/%s.npy", f2, l ? lb : la);
            zf_tensor *ta = npy(a), *tb = npy(b);
            cr_assert_eq(ta->size, tb->size);
            double s = 0;
            for (int64_t i = 0; i < ta->size; i++) {
                const double e = (double)zf_tensor_f32(ta)[i] - zf_tensor_f32(tb)[i];
                s += e * e;
            }
            const double want = sqrt(s), got = atof(at(&d, row, 4 + l));
            cr_expect(want > 0, "%s: the shift changed nothing at %s", nets[k], l ? lb : la);
            cr_expect(fabs(got - want) <= 1e-4 * want + 1e-6, "%s %s: the demo's distance %.9g, two forwards give %.9g",
                      nets[k], l ? lb : la, got, want);
            zf_tensor_free(ta);
            zf_tensor_free(tb);
        }
        free(moved);
        zf_tensor_free(x);
        csv_free(&d);
    }
}

/* ---- correspondence ---- */

/* The demo's ankle boots: the first (up to 8) of its images of that class, in name order. */
static int boots(const char *out, char names[8][64])
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "ls '%s/images' | grep -- '-Ankle-boot.png$' | sort | head -8", out);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    int n = 0;
    while (n < 8 && fgets(names[n], 64, f)) {
        names[n][strcspn(names[n], "\n")] = '\0';
        n++;
    }
    pclose(f);
    return n;
}

Test(demo_paper, correspond_csv_is_zfviz_correspond_and_its_measure_is_the_hamming_sum)
{
    const char *why = missing_prereq();
    if (why)
        cr_skip_test("%s", why);
    const char *out = demo(), *z = tu_build("tools/zfviz");
    const char *tmp = tu_tmpdir("demo_paper_cor");
    char names[8][64], imgs[4096] = "";
    const int n = boots(out, names);
    cr_assert_eq(n, 5, "--quick's images hold %d ankle boots, not 5", n);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(imgs);
        snprintf(imgs + len, sizeof imgs - len, " '%s/images/%s'", out, names[i]);
    }
    /* the boxes as docs/demo.md gives them */
    const int box[4] = {4, 64, 28, 28};
    for (int k = 0; k < 2; k++) {
        char p[4096], q[4096];
        snprintf(p, sizeof p, "%s/correspond-%s.csv", out, nets[k]);
        snprintf(q, sizeof q, "%s/cor-%s.csv", tmp, nets[k]);
        cr_assert_eq(tu_system("'%s' correspond --model %s --part toe=4,64,28,28 --part heel=80,64,28,28%s --out '%s' "
                               ">/dev/null 2>&1",
                               z, nets[k], imgs, q),
                     0);
        table d = csv_read(p, "part,control,"), c = csv_read(q, "part,control,");
        csv_expect_equal(&d, &c, p, 1e-9);
        cr_assert_eq(d.rows - 1, 2 * 6 * 2, "%s: %d rows, not 2 parts x (1 + 5 draws) x 2 layers", p, d.rows - 1);
        csv_free(&c);

        /* The toe at the penultimate layer by hand: every boot and its occluded copy through
         * `zfviz forward`, then the sum over pairs of the count of elements whose signs differ. */
        int row = -1;
        for (int r = 1; r < d.rows; r++)
            if (!strcmp(at(&d, r, 0), "toe") && !strcmp(at(&d, r, 1), "part"))
                row = r; /* the last: the second layer */
        cr_assert(row > 0);
        const char *layer = at(&d, row, 3);
        char dir[1500], dir2[1500], ip[4096];
        snprintf(dir, sizeof dir, "%s/fwd-%s", tmp, nets[k]);
        snprintf(dir2, sizeof dir2, "%s/fwd-occ-%s", tmp, nets[k]);
        char list[4096];
        snprintf(list, sizeof list, "%s/boots.txt", tmp);
        FILE *lf = fopen(list, "w");
        for (int i = 0; i < n; i++)
            fprintf(lf, "%s/images/%s\n", out, names[i]);
        fclose(lf);
        cr_assert_eq(tu_system("mkdir -p '%s/b' && for f in $(cat '%s'); do ln -sf \"$f\" '%s/b/'; done", tmp, list, tmp), 0);
        cr_assert_eq(tu_system("'%s' forward --model %s --input '%s/b' --dump input,%s --top 0 --out '%s' >/dev/null 2>&1",
                               z, nets[k], tmp, layer, dir),
                     0);
        snprintf(ip, sizeof ip, "%s/input.npy", dir);
        zf_tensor *x = npy(ip);
        cr_assert(x->ndim == 4 && x->shape[0] == n && x->shape[1] == 1, "%s is not (%d, 1, H, W)", ip, n);
        const int h = (int)x->shape[2], w = (int)x->shape[3];
        float *occ = malloc(sizeof(float) * (size_t)x->size);
        memcpy(occ, zf_tensor_f32(x), sizeof(float) * (size_t)x->size);
        for (int i = 0; i < n; i++)
            for (int y = box[1]; y < box[1] + box[3]; y++)
                for (int xx = box[0]; xx < box[0] + box[2]; xx++)
                    occ[((size_t)i * h + y) * w + xx] = 0;
        snprintf(ip, sizeof ip, "%s/occluded.npy", tmp);
        const int64_t shape[4] = {n, 1, h, w};
        cr_assert_eq(zf_npy_write_raw(ip, ZF_DTYPE_F32, occ, 4, shape), ZF_OK);
        cr_assert_eq(tu_system("'%s' forward --model %s --input '%s' --dump %s --top 0 --out '%s' >/dev/null 2>&1", z,
                               nets[k], ip, layer, dir2),
                     0);
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s.npy", dir, layer);
        snprintf(b, sizeof b, "%s/%s.npy", dir2, layer);
        zf_tensor *ta = npy(a), *tb = npy(b);
        const int64_t e = ta->size / n;
        cr_assert_eq(e, atoll(at(&d, row, 4)), "%s has %lld elements an image, the CSV says %s", a, (long long)e,
                     at(&d, row, 4));
        long long delta = 0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                for (int64_t q2 = 0; q2 < e; q2++) {
                    const float ei = zf_tensor_f32(ta)[i * e + q2] - zf_tensor_f32(tb)[i * e + q2];
                    const float ej = zf_tensor_f32(ta)[j * e + q2] - zf_tensor_f32(tb)[j * e + q2];
                    delta += (ei > 0) - (ei < 0) != (ej > 0) - (ej < 0);
                }
        /* A sign may differ where a change is within rounding of 0 (another batch, another sum order). */
        const long long got = atoll(at(&d, row, 6));
        cr_expect(llabs(got - delta) <= 2 + delta / 200, "%s toe at %s: the demo's delta %lld, by hand %lld", nets[k],
                  layer, got, delta);
        zf_tensor_free(ta);
        zf_tensor_free(tb);
        zf_tensor_free(x);
        free(occ);
        csv_free(&d);
    }
}

/* ---- conv2 in pixels ---- */

/* The line of stdout text that starts with `start`, into buf; 0 when there is none. */
static int line_of(const char *text, const char *start, char *buf, size_t len)
{
    for (const char *s = text; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL)
        if (!strncmp(s, start, strlen(start))) {
            size_t n = strcspn(s, "\n");
            snprintf(buf, len, "%.*s", (int)n, s);
            return 1;
        }
    return 0;
}

Test(demo_paper, conv2_numbers_are_zfviz_compare_layer_conv2_and_its_dead_units_the_dumps)
{
    const char *why = missing_prereq();
    if (why)
        cr_skip_test("%s", why);
    const char *out = demo(), *z = tu_build("tools/zfviz");
    const char *tmp = tu_tmpdir("demo_paper_conv2");
    char log[4096];
    snprintf(log, sizeof log, "%s/compare.txt", tmp);
    cr_assert_eq(tu_system("'%s' compare alexnet-mini zfnet-mini --layer conv2 --images '%s/images' --max-images 64 -o "
                           "'%s/c.png' > '%s' 2>/dev/null",
                           z, out, tmp, log),
                 0);
    char *mine = tu_read_file(demo_run.log, NULL), *theirs = tu_read_file(log, NULL);
    cr_assert(mine && theirs);
    for (int k = 0; k < 2; k++) {
        char start[64], a[1024], b[1024];
        snprintf(start, sizeof start, "%s (embedded): conv2,", nets[k]);
        cr_assert(line_of(mine, start, a, sizeof a), "the demo printed no line '%s...'", start);
        cr_assert(line_of(theirs, start, b, sizeof b), "zfviz compare printed no line '%s...'", start);
        cr_expect_str_eq(a, b, "the demo's conv2 numbers differ from zfviz compare's");

        /* dead: the conv2 maps that are 0 after the ReLU everywhere on all 50 images */
        char dir[1500], p[4096];
        snprintf(dir, sizeof dir, "%s/fwd-%s", tmp, nets[k]);
        cr_assert_eq(tu_system("'%s' forward --model %s --input '%s/images' --dump relu2 --top 0 --out '%s' >/dev/null 2>&1",
                               z, nets[k], out, dir),
                     0);
        snprintf(p, sizeof p, "%s/relu2.npy", dir);
        zf_tensor *t = npy(p);
        cr_assert(t->ndim == 4 && t->shape[0] == 50, "%s is not (50, C, H, W)", p);
        const int64_t c = t->shape[1], hw = t->shape[2] * t->shape[3];
        int dead = 0;
        for (int64_t u = 0; u < c; u++) {
            int fired = 0;
            for (int64_t i = 0; i < t->shape[0] && !fired; i++)
                for (int64_t q = 0; q < hw && !fired; q++)
                    fired = zf_tensor_f32(t)[(i * c + u) * hw + q] > 0;
            dead += !fired;
        }
        char want[128];
        snprintf(want, sizeof want, ", %lld units, dead %d (", (long long)c, dead);
        cr_expect(strstr(a, want), "the demo says '%s'; the dumps have %lld units, %d dead", a, (long long)c, dead);
        zf_tensor_free(t);
    }
    free(mine);
    free(theirs);
}

/* ---- linear probes ---- */

Test(demo_paper, probe_csv_is_zfviz_probe_with_the_documented_sizes)
{
    const char *why = missing_prereq();
    if (why)
        cr_skip_test("%s", why);
    const char *out = demo(), *z = tu_build("tools/zfviz");
    const char *tmp = tu_tmpdir("demo_paper_probe");
    for (int k = 0; k < 2; k++) {
        char p[4096], q[4096];
        snprintf(p, sizeof p, "%s/probe-%s.csv", out, nets[k]);
        snprintf(q, sizeof q, "%s/probe-%s.csv", tmp, nets[k]);
        /* docs/demo.md: with --quick, 300 training and 100 test images, 30 iterations */
        cr_assert_eq(tu_system("'%s' probe --model %s --layers conv1,conv2,conv3,conv4,conv5,fc6,fc7 --limit 300 "
                               "--test-limit 100 --iters 30 --csv > '%s' 2>/dev/null",
                               z, nets[k], q),
                     0);
        table d = csv_read(p, "layer,features,"), c = csv_read(q, "layer,features,");
        cr_expect_eq(d.rows - 1, 7, "%s: %d layers, not the paper's 7", p, d.rows - 1);
        csv_expect_equal(&d, &c, p, 1e-6);
        /* a probe of 100 test images: accuracies are whole percents */
        for (int r = 1; r < d.rows; r++) {
            const double acc = atof(at(&d, r, 3)) * 100;
            cr_expect(fabs(acc - round(acc)) < 1e-9 && acc > 10, "%s %s: test accuracy %g%%", p, at(&d, r, 0), acc);
        }
        csv_free(&d);
        csv_free(&c);
    }
}

/* ---- feature evolution ---- */

Test(demo_paper, evolve_is_zfviz_evolve_on_the_written_run_over_every_snapshot)
{
    const char *why = missing_prereq();
    if (why)
        cr_skip_test("%s", why);
    const char *out = demo(), *z = tu_build("tools/zfviz");
    const char *tmp = tu_tmpdir("demo_paper_evolve");
    for (int k = 0; k < 2; k++) {
        char db[4096], p[4096], q[4096];
        snprintf(db, sizeof db, "%s/%s-training.sqlite", out, nets[k]);
        /* the snapshots the run holds, read by sqlite3 */
        snprintf(q, sizeof q, "%s/epochs-%s.txt", tmp, nets[k]);
        cr_assert_eq(tu_system("sqlite3 -readonly '%s' 'SELECT DISTINCT epoch FROM train_snapshots ORDER BY epoch' > '%s'",
                               db, q),
                     0, "sqlite3 cannot read %s", db);
        char *ep = tu_read_file(q, NULL);
        int epochs[64], n_ep = 0;
        for (char *s = ep; s && *s && n_ep < 64;) {
            epochs[n_ep++] = (int)strtol(s, &s, 10);
            while (*s == '\n')
                s++;
        }
        free(ep);
        cr_assert(n_ep >= 2, "%s holds %d snapshots", db, n_ep);

        snprintf(p, sizeof p, "%s/evolve-%s.csv", out, nets[k]);
        table d = csv_read(p, "layer,unit,epoch,");
        /* docs/demo.md: units 0 and 1 of conv1..conv5, every snapshot */
        cr_assert_eq(d.rows - 1, 5 * 2 * n_ep, "%s: %d rows, not 5 layers x 2 units x %d snapshots", p, d.rows - 1, n_ep);
        for (int l = 1; l <= 5; l++) {
            snprintf(q, sizeof q, "%s/evolve-%s-conv%d.csv", tmp, nets[k], l);
            cr_assert_eq(tu_system("'%s' evolve --db '%s' --model %s --images '%s/images' --limit 100 --layer conv%d "
                                   "--units 0,1 --csv --out '%s/e.png' --force > '%s' 2>/dev/null",
                                   z, db, nets[k], out, l, tmp, q),
                         0);
            table c = csv_read(q, "layer,unit,epoch,");
            cr_assert_eq(c.rows - 1, 2 * n_ep);
            for (int r = 1; r < c.rows; r++) {
                int found = 0;
                for (int s = 1; s < d.rows && !found; s++) {
                    if (strcmp(at(&d, s, 0), at(&c, r, 0)) || strcmp(at(&d, s, 1), at(&c, r, 1)) ||
                        strcmp(at(&d, s, 2), at(&c, r, 2)))
                        continue;
                    found = 1;
                    for (int col = 3; col < 7; col++)
                        cr_expect_str_eq(at(&d, s, col), at(&c, r, col), "%s conv%d unit %s epoch %s: %s differs",
                                         nets[k], l, at(&c, r, 1), at(&c, r, 2), at(&c, 0, col));
                }
                cr_expect(found, "%s: no row for %s unit %s epoch %s", p, at(&c, r, 0), at(&c, r, 1), at(&c, r, 2));
            }
            /* every snapshot, in order */
            for (int e = 0; e < n_ep; e++)
                cr_expect_eq(atoi(at(&c, 1 + 2 * e, 2)), epochs[e], "snapshot %d of %s is epoch %s, sqlite3 says %d",
                             e + 1, db, at(&c, 1 + 2 * e, 2), epochs[e]);
            csv_free(&c);
        }
        csv_free(&d);
    }
}

/* ---- a second run ---- */

Test(demo_paper, ten_images_run_twice_into_the_same_folder)
{
    const char *why = missing_prereq();
    if (why)
        cr_skip_test("%s", why);
    const char *z = tu_build("tools/zfviz");
    const char *tmp = tu_tmpdir("demo_paper_again");
    char log[1100], p[1200];
    snprintf(log, sizeof log, "%s/stdout.txt", tmp);
    /* one boot of each class: no pair to measure correspondence on, a page that says so */
    for (int run = 0; run < 2; run++) {
        int rc = tu_system("'%s' demo --quick --images 10 -o '%s/out' > '%s' 2>&1", z, tmp, log);
        char *text = tu_read_file(log, NULL);
        cr_assert_eq(rc, 0, "run %d of zfviz demo --quick --images 10 into one folder exited %d:\n%s", run + 1, rc,
                     text ? text : "");
        free(text);
    }
    snprintf(p, sizeof p, "%s/out/correspond-alexnet-mini.csv", tmp);
    cr_expect(access(p, F_OK) != 0, "%s written from one image", p);
    snprintf(p, sizeof p, "%s/out/evolve-zfnet-mini.csv", tmp);
    cr_expect(access(p, F_OK) == 0, "no %s", p);
}

/* ---- the PDF ---- */

Test(demo_paper, the_pdf_has_sixteen_pages)
{
    const char *why = missing_prereq();
    if (why)
        cr_skip_test("%s", why);
    if (tu_system("command -v pdfinfo >/dev/null 2>&1"))
        cr_skip_test("no pdfinfo (poppler-utils) to count the pages");
    const char *out = demo();
    const char *tmp = tu_tmpdir("demo_paper_pdf");
    char info[4096];
    snprintf(info, sizeof info, "%s/info.txt", tmp);
    cr_assert_eq(tu_system("pdfinfo '%s/demo.pdf' > '%s'", out, info), 0);
    char *text = tu_read_file(info, NULL);
    const char *pages = strstr(text, "Pages:");
    cr_assert(pages, "pdfinfo gave no page count");
    cr_expect_eq(atoi(pages + 6), 16, "demo.pdf has %d pages, not 16", atoi(pages + 6));
    free(text);
}
