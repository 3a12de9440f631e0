/* Tests of zfviz site, the unit atlas: its tables against the database's own numbers (read with
 * sqlite3 here), the class columns and captions against the class views, its pictures (top-k and
 * bottom-k) decoded with libpng and measured against the stored receptive fields, no reference
 * leaving the page, renderings reused on a second build, output safety, the pages as Debian's
 * chromium renders them (skipped only where chromium is not installed), and zfviz serve: its
 * refusals, and its on-demand projections and occlusion maps against zfviz deconv and occlude. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <math.h>
#include <png.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "testutil.h"

/* The whole of a file as a string (NULL when missing); *len gets its size. */
static char *slurp(const char *path, size_t *len) { return tu_read_file(path, len); }

static int run(const char *dir, const char *args)
{
    return tu_system("cd '%s' && '%s' %s >out 2>err </dev/null", dir, tu_build("tools/zfviz"), args);
}

static char *err_of(const char *dir)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/err", dir);
    char *s = slurp(p, NULL);
    return s ? s : strdup("");
}

/* A w x h RGB PNG of a pattern that differs with seed, written with libpng's own writer. */
static void write_png(const char *path, int w, int h, int seed)
{
    unsigned char *px = malloc((size_t)w * h * 3);
    cr_assert(px);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                px[((size_t)y * w + x) * 3 + c] = (unsigned char)(((x * (seed + 2) + y * (c + 1) * (seed + 3)) * 37) ^ (seed * 91));
    cr_assert_eq(tu_write_png(path, w, h, px), 0, "%s", path);
    free(px);
}

/* A scan of the embedded alexnet-mini over the sample photo and three patterns (conv1 and conv5),
 * and the site built from it: dir/s.db, dir/site. */
static const char *scan_and_site(const char *tag)
{
    static char keep[512]; /* tu_ paths live in rotating buffers */
    snprintf(keep, sizeof keep, "%s", tu_tmpdir(tag));
    const char *dir = keep;
    cr_assert_eq(tu_system("mkdir -p '%s/imgs' && cp '%s' '%s/imgs/a.jpg'", dir, tu_src("assets/sample.jpg"), dir), 0);
    for (int i = 0; i < 3; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/imgs/p%d.png", dir, i);
        write_png(p, 90 + 7 * i, 70 + 5 * i, i);
    }
    cr_assert_eq(run(dir, "scan --images imgs --db s.db --layers conv1,conv5"), 0, "scan: %s", err_of(dir));
    cr_assert_eq(run(dir, "site --db s.db -o site"), 0, "site: %s", err_of(dir));
    return dir;
}

static sqlite3 *db_open(const char *dir)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/s.db", dir);
    sqlite3 *sql = NULL;
    cr_assert_eq(sqlite3_open_v2(p, &sql, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    return sql;
}

static long long query_int(sqlite3 *sql, const char *q)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(sql, q, -1, &st, NULL), SQLITE_OK, "%s: %s", q, sqlite3_errmsg(sql));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", q);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The rows of a units table in HTML as written or as a browser serialises it: per row the unit
 * (data-v of the first cell) and the four numbers of the plain <td> cells. Returns the count. */
typedef struct table_row {
    int unit;
    double v[4];
    int dead_flag;
} table_row;

static int parse_units_table(const char *html, table_row *rows, int max)
{
    const char *p = strstr(html, "<table class=\"sortable units\">");
    cr_assert(p, "no units table");
    const char *end = strstr(p, "</table>");
    cr_assert(end);
    int n = 0;
    while ((p = strstr(p, "<tr><td data-v=\"")) && p < end) {
        cr_assert(n < max);
        table_row *r = &rows[n++];
        r->unit = atoi(p + strlen("<tr><td data-v=\""));
        const char *next = strstr(p + 4, "<tr>");
        if (!next || next > end)
            next = end;
        const char *q = p;
        for (int k = 0; k < 4; k++) {
            q = strstr(q, "<td>");
            cr_assert(q && q < next, "row of unit %d has fewer than 4 numbers", r->unit);
            q += 4;
            r->v[k] = strtod(q, NULL);
        }
        const char *flag = strstr(q, ">dead<");
        r->dead_flag = flag && flag < next;
        p = next;
    }
    return n;
}

/* Every row of unit_summary for the layer matches the table's row of its unit. */
static void check_table_against_db(sqlite3 *sql, const char *layer, const char *html)
{
    static table_row rows[4096];
    int n = parse_units_table(html, rows, 4096);
    char q[512];
    snprintf(q, sizeof q, "SELECT count(*) FROM unit_summary WHERE run_id = 1 AND layer = '%s'", layer);
    cr_assert_eq(n, query_int(sql, q), "%s: %d rows in the table", layer, n);
    sqlite3_stmt *st = NULL;
    snprintf(q, sizeof q,
             "SELECT unit, active_fraction, positive_fraction, mean, max FROM unit_summary WHERE run_id = 1 "
             "AND layer = '%s'",
             layer);
    cr_assert_eq(sqlite3_prepare_v2(sql, q, -1, &st, NULL), SQLITE_OK);
    int seen = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int unit = sqlite3_column_int(st, 0);
        const table_row *r = NULL;
        for (int i = 0; i < n && !r; i++)
            if (rows[i].unit == unit)
                r = &rows[i];
        cr_assert(r, "%s unit %d is not in the table", layer, unit);
        for (int k = 0; k < 4; k++) {
            double want = sqlite3_column_double(st, k + 1), got = r->v[k];
            double tol = 1e-7 * (fabs(want) > 1 ? fabs(want) : 1);
            cr_expect(fabs(got - want) <= tol, "%s unit %d column %d: table %.9g, database %.9g", layer, unit, k,
                      got, want);
        }
        cr_expect_eq(r->dead_flag, sqlite3_column_double(st, 4) <= 0, "%s unit %d: dead flag", layer, unit);
        seen++;
    }
    sqlite3_finalize(st);
    cr_expect_eq(seen, n);
}

/* Decodes a PNG file with libpng; 1 and its size when it decodes. */
static int png_size(const char *path, int *w, int *h)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path))
        return 0;
    im.format = PNG_FORMAT_RGB;
    void *px = malloc(PNG_IMAGE_SIZE(im));
    int ok = px && png_image_finish_read(&im, NULL, px, 0, NULL);
    free(px);
    *w = (int)im.width;
    *h = (int)im.height;
    png_image_free(&im);
    return ok;
}

/* Calls fn on every regular file under dir. */
static void walk(const char *dir, void (*fn)(const char *path, void *ctx), void *ctx)
{
    DIR *d = opendir(dir);
    cr_assert(d, "%s", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        cr_assert_eq(stat(p, &sb), 0);
        if (S_ISDIR(sb.st_mode))
            walk(p, fn, ctx);
        else
            fn(p, ctx);
    }
    closedir(d);
}

typedef struct walk_counts {
    int files, pages;
} walk_counts;

static void check_file(const char *path, void *ctx)
{
    walk_counts *c = ctx;
    size_t len = 0;
    char *s = slurp(path, &len);
    cr_assert(s);
    /* binary files too: a URL inside a PNG would be as bad */
    cr_expect(!memmem(s, len, "http://", 7) && !memmem(s, len, "https://", 8), "%s refers to the network", path);
    cr_expect_lt(len, 1u << 20, "%s: %zu bytes", path, len);
    c->files++;
    if (strstr(path, ".html"))
        c->pages++;
    free(s);
}

/* The scores of the bottom-k table of a unit page, in its order; returns the count. */
static int parse_bottomk(const char *html, double *scores, int max)
{
    const char *p = strstr(html, "<table class=\"bottomk\">");
    if (!p)
        return 0;
    const char *end = strstr(p, "</table>");
    int n = 0;
    while ((p = strstr(p, "<tr><td>")) && p < end && n < max) {
        const char *q = strstr(p + 8, "<td>");
        cr_assert(q && q < end);
        scores[n++] = strtod(q + 4, NULL);
        p = q;
    }
    return n;
}

/* Each conv1 unit page lists the bottom-k the database holds, in its order, and plots its histogram. */
static void check_bottomk(const char *dir)
{
    sqlite3 *sql = db_open(dir);
    cr_assert_gt(query_int(sql, "SELECT count(*) FROM bottomk WHERE run_id = 1 AND layer = 'conv1'"), 0,
                 "the scan keeps a bottom-k");
    cr_assert_gt(query_int(sql, "SELECT count(*) FROM histogram WHERE run_id = 1 AND layer = 'conv1'"), 0,
                 "the scan keeps histograms");
    for (int unit = 0; unit < 32; unit++) {
        char p[1024], q[256];
        snprintf(p, sizeof p, "%s/site/1/conv1/%d.html", dir, unit);
        char *html = slurp(p, NULL);
        cr_assert(html, "no %s", p);
        double got[64];
        int n = parse_bottomk(html, got, 64);
        free(html);
        snprintf(q, sizeof q, "SELECT count(*) FROM bottomk WHERE run_id = 1 AND layer = 'conv1' AND unit = %d", unit);
        cr_expect_eq(n, query_int(sql, q), "unit %d: %d bottom rows on the page", unit, n);
        sqlite3_stmt *st = NULL;
        snprintf(q, sizeof q,
                 "SELECT score FROM bottomk WHERE run_id = 1 AND layer = 'conv1' AND unit = %d ORDER BY rank", unit);
        cr_assert_eq(sqlite3_prepare_v2(sql, q, -1, &st, NULL), SQLITE_OK);
        for (int i = 0; i < n && sqlite3_step(st) == SQLITE_ROW; i++) {
            double want = sqlite3_column_double(st, 0);
            cr_expect(fabs(got[i] - want) <= 1e-7 * fmax(1, fabs(want)), "unit %d rank %d: page %.9g, database %.9g",
                      unit, i + 1, got[i], want);
        }
        sqlite3_finalize(st);
        /* the histogram: one bar per non-empty bin, with the view's count */
        html = NULL;
        snprintf(p, sizeof p, "%s/site/1/conv1/%d.html", dir, unit);
        html = slurp(p, NULL);
        cr_assert(html);
        int bars = 0;
        for (const char *h = html; (h = strstr(h, "<rect data-bin=\"")); h++) {
            int bin = atoi(h + strlen("<rect data-bin=\""));
            const char *c = strstr(h, "data-count=\"");
            cr_assert(c);
            long long count = atoll(c + strlen("data-count=\""));
            snprintf(q, sizeof q,
                     "SELECT ifnull((SELECT count FROM histogram WHERE run_id = 1 AND layer = 'conv1' AND unit = %d "
                     "AND bin = %d), 0)",
                     unit, bin);
            cr_expect_eq(count, query_int(sql, q), "unit %d bin %d", unit, bin);
            bars++;
        }
        free(html);
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM histogram WHERE run_id = 1 AND layer = 'conv1' AND unit = %d AND bin < 259", unit);
        cr_expect_eq(bars, query_int(sql, q), "unit %d: %d bars", unit, bars);
    }
    sqlite3_close(sql);
}

Test(site, layer_and_unit_pages_show_the_database_numbers_and_nothing_leaves_the_page)
{
    const char *dir = scan_and_site("site_tables");
    char top[1024];
    snprintf(top, sizeof top, "%s/site", dir);
    walk_counts c = {0, 0};
    walk(top, check_file, &c);
    /* index, two layer pages, 32 + 64 unit pages */
    cr_expect_eq(c.pages, 1 + 2 + 32 + 64, "%d pages", c.pages);
    sqlite3 *sql = db_open(dir);
    const char *layers[] = {"conv1", "conv5"};
    for (int i = 0; i < 2; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/site/1/%s/index.html", dir, layers[i]);
        char *html = slurp(p, NULL);
        cr_assert(html, "no %s", p);
        check_table_against_db(sql, layers[i], html);
        free(html);
    }
    sqlite3_close(sql);
    check_bottomk(dir);
}

/* Every unit page of `layer` shows as many bottom patches as the bottomk view holds for the unit,
 * each a PNG that decodes to the size of the example's receptive field. */
static void check_bottom_pictures(const char *dir, const char *layer)
{
    sqlite3 *sql = db_open(dir);
    char q[512];
    snprintf(q, sizeof q, "SELECT count(*) FROM bottomk WHERE run_id = 1 AND layer = '%s'", layer);
    cr_assert_gt(query_int(sql, q), 0, "the scan keeps a bottom-k of %s", layer);
    snprintf(q, sizeof q, "SELECT units FROM run_layers WHERE run_id = 1 AND layer = '%s'", layer);
    int units = (int)query_int(sql, q), pictures = 0;
    for (int unit = 0; unit < units; unit++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/site/1/%s/%d.html", dir, layer, unit);
        char *html = slurp(p, NULL);
        cr_assert(html, "no %s", p);
        int shown = 0;
        for (const char *h = html; (h = strstr(h, "<img class=\"bottom\" src=\"img/")); h++)
            shown++;
        free(html);
        sqlite3_stmt *st = NULL;
        snprintf(q, sizeof q,
                 "SELECT rank, box_x1 - box_x0, box_y1 - box_y0 FROM bottomk WHERE run_id = 1 AND layer = '%s' "
                 "AND unit = %d ORDER BY rank",
                 layer, unit);
        cr_assert_eq(sqlite3_prepare_v2(sql, q, -1, &st, NULL), SQLITE_OK);
        int k = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            int rank = sqlite3_column_int(st, 0), bw = sqlite3_column_int(st, 1), bh = sqlite3_column_int(st, 2);
            snprintf(p, sizeof p, "%s/site/1/%s/img/%d-%d-bottom.png", dir, layer, unit, rank);
            int w = 0, h = 0;
            cr_expect(png_size(p, &w, &h), "%s does not decode", p);
            cr_expect(w == bw && h == bh, "%s: %dx%d, receptive field %dx%d", p, w, h, bw, bh);
            k++;
        }
        sqlite3_finalize(st);
        cr_expect_eq(shown, k, "%s unit %d: %d bottom patches on the page, %d in the database", layer, unit, shown, k);
        pictures += shown;
    }
    cr_expect_gt(pictures, 0);
    sqlite3_close(sql);
}

Test(site, unit_pages_show_k_patches_and_projections_of_the_receptive_fields)
{
    const char *dir = scan_and_site("site_units");
    check_bottom_pictures(dir, "conv5");
    sqlite3 *sql = db_open(dir);
    sqlite3_stmt *st = NULL;
    /* every example of every conv5 unit, with its box: its two pictures are that size */
    cr_assert_eq(sqlite3_prepare_v2(sql,
                                    "SELECT unit, rank, box_x1 - box_x0, box_y1 - box_y0, "
                                    "(SELECT count(*) FROM topk k WHERE k.run_id = 1 AND k.layer = t.layer AND "
                                    "k.unit = t.unit) FROM topk t WHERE run_id = 1 AND layer = 'conv5' "
                                    "ORDER BY unit, rank",
                                    -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(sql));
    int examples = 0, last_unit = -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int unit = sqlite3_column_int(st, 0), rank = sqlite3_column_int(st, 1);
        int bw = sqlite3_column_int(st, 2), bh = sqlite3_column_int(st, 3), k = sqlite3_column_int(st, 4);
        if (unit != last_unit) {
            char p[1024];
            snprintf(p, sizeof p, "%s/site/1/conv5/%d.html", dir, unit);
            char *html = slurp(p, NULL);
            cr_assert(html, "no page %s", p);
            int patches = 0, projs = 0;
            for (const char *q = html; (q = strstr(q, "class=\"patch\" src=\"img/")); q++)
                patches++;
            for (const char *q = html; (q = strstr(q, "class=\"deconv\" src=\"img/")); q++)
                projs++;
            cr_expect_eq(patches, k, "unit %d: %d patches, %d examples stored", unit, patches, k);
            cr_expect_eq(projs, k, "unit %d: %d projections, %d examples stored", unit, projs, k);
            last_unit = unit;
            free(html);
        }
        const char *kinds[2] = {"patch", "deconv"};
        for (int j = 0; j < 2; j++) {
            char p[1024];
            snprintf(p, sizeof p, "%s/site/1/conv5/img/%d-%d-%s.png", dir, unit, rank, kinds[j]);
            int w = 0, h = 0;
            cr_assert(png_size(p, &w, &h), "%s does not decode", p);
            cr_expect(w == bw && h == bh, "%s: %dx%d, receptive field %dx%d", p, w, h, bw, bh);
        }
        examples++;
    }
    sqlite3_finalize(st);
    cr_assert_gt(examples, 0);
    sqlite3_close(sql);
}

Test(site, a_second_build_reuses_the_stored_renderings)
{
    const char *dir = scan_and_site("site_again");
    sqlite3 *sql = db_open(dir);
    long long examples = query_int(sql, "SELECT count(*) FROM topk WHERE run_id = 1");
    long long rows = query_int(sql, "SELECT count(*) FROM renderings");
    long long last = query_int(sql, "SELECT max(id) FROM renderings");
    long long bottoms = query_int(sql, "SELECT count(*) FROM bottomk WHERE run_id = 1");
    cr_expect_eq(rows, 2 * examples + bottoms,
                 "a patch and a projection per example and a patch per bottom example: %lld rows, %lld and %lld "
                 "examples",
                 rows, examples, bottoms);
    sqlite3_close(sql);
    char p[1024];
    snprintf(p, sizeof p, "%s/site/1/conv5/3.html", dir);
    char *before = slurp(p, NULL);
    cr_assert_eq(run(dir, "site --db s.db -o site"), 0, "second build: %s", err_of(dir));
    sql = db_open(dir);
    cr_expect_eq(query_int(sql, "SELECT count(*) FROM renderings"), rows, "no rendering added");
    cr_expect_eq(query_int(sql, "SELECT max(id) FROM renderings"), last, "none replaced");
    sqlite3_close(sql);
    char *after = slurp(p, NULL);
    cr_expect_str_eq(after, before, "the same page");
    free(before);
    free(after);
}

Test(site, refuses_a_foreign_site_and_removes_a_failed_one)
{
    char keep[512]; /* tu_ paths live in rotating buffers */
    snprintf(keep, sizeof keep, "%s", tu_tmpdir("site_safety"));
    const char *dir = keep;
    cr_assert_eq(tu_system("mkdir -p '%s/imgs' && cp '%s' '%s/imgs/a.jpg'", dir, tu_src("assets/sample.jpg"), dir), 0);
    cr_assert_eq(run(dir, "scan --images imgs --db s.db --layers conv1"), 0, "scan: %s", err_of(dir));
    /* a folder holding someone's index.html: refused, untouched, one line */
    cr_assert_eq(tu_system("mkdir -p '%s/theirs' && printf 'my page\\n' > '%s/theirs/index.html'", dir, dir), 0);
    cr_expect_neq(run(dir, "site --db s.db -o theirs"), 0);
    char *err = err_of(dir);
    cr_expect(strstr(err, "theirs/index.html") && strstr(err, "--force"), "%s", err);
    cr_expect_eq(strchr(err, '\n') - err + 1, (long)strlen(err), "one line: %s", err);
    free(err);
    char p[1024];
    snprintf(p, sizeof p, "%s/theirs/index.html", dir);
    char *s = slurp(p, NULL);
    cr_expect_str_eq(s, "my page\n");
    free(s);
    snprintf(p, sizeof p, "%s/theirs/1", dir);
    cr_expect_neq(access(p, F_OK), 0, "nothing written beside it");
    /* with --force it is replaced */
    cr_expect_eq(run(dir, "site --db s.db -o theirs --force"), 0, "%s", err_of(dir));
    /* a build that fails (no such run) leaves no folder behind */
    cr_expect_neq(run(dir, "site --db s.db -o new/site --run 7"), 0);
    err = err_of(dir);
    cr_expect(strstr(err, "run 7"), "%s", err);
    free(err);
    snprintf(p, sizeof p, "%s/new", dir);
    cr_expect_neq(access(p, F_OK), 0, "the failed build's folder is removed");
    /* --device cuda where no GPU is: one line saying so, nothing built, no fallback to the CPU
     * (the device is opened for the first projection: a database without stored renderings) */
    if (access("/dev/nvidia0", F_OK) != 0) {
        cr_assert_eq(tu_system("cd '%s' && cp s.db bare.db && sqlite3 bare.db 'DELETE FROM renderings'", dir), 0);
        cr_expect_neq(run(dir, "site --db bare.db -o gpu --device cuda"), 0);
        err = err_of(dir);
        cr_expect(strstr(err, "CUDA") && strchr(err, '\n') - err + 1 == (long)strlen(err), "%s", err);
        free(err);
        snprintf(p, sizeof p, "%s/gpu", dir);
        cr_expect_neq(access(p, F_OK), 0, "a site was built without its device");
    }
    /* --top-units 2: projections of the two units whose best example is strongest, and no others */
    cr_assert_eq(run(dir, "site --db s.db -o top --top-units 2"), 0, "%s", err_of(dir));
    sqlite3 *sql = db_open(dir);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(sql,
                                    "SELECT unit FROM topk WHERE run_id = 1 AND layer = 'conv1' AND rank = 1 "
                                    "ORDER BY score DESC, unit LIMIT 2",
                                    -1, &st, NULL),
                 SQLITE_OK);
    int strongest[2] = {-1, -1};
    for (int i = 0; i < 2 && sqlite3_step(st) == SQLITE_ROW; i++)
        strongest[i] = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(sql);
    for (int u = 0; u < 32; u++) {
        snprintf(p, sizeof p, "%s/top/1/conv1/img/%d-1-deconv.png", dir, u);
        int want = u == strongest[0] || u == strongest[1];
        cr_expect_eq(access(p, F_OK) == 0, want, "unit %d: projection %s", u, want ? "missing" : "not asked for");
    }
    /* two runs (alexnet-mini, zfnet-mini): a page with their first layers side by side */
    cr_assert_eq(run(dir, "scan --images imgs --db s.db --layers conv1 --model zfnet-mini"), 0, "%s", err_of(dir));
    cr_assert_eq(run(dir, "site --db s.db -o two"), 0, "%s", err_of(dir));
    snprintf(p, sizeof p, "%s/two/compare.html", dir);
    char *cmp = slurp(p, NULL);
    cr_assert(cmp, "no compare.html");
    for (int r = 1; r <= 2; r++) {
        char ref[64];
        snprintf(ref, sizeof ref, "src=\"%d/first-filters.png\"", r);
        cr_expect(strstr(cmp, ref), "compare.html does not show run %d", r);
        snprintf(p, sizeof p, "%s/two/%d/first-filters.png", dir, r);
        int w = 0, h = 0;
        cr_expect(png_size(p, &w, &h) && w > 0 && h > 0, "%s does not decode", p);
    }
    cr_expect(strstr(cmp, "alexnet-mini") && strstr(cmp, "zfnet-mini"), "both models named");
    free(cmp);
    /* usage */
    cr_expect_eq(run(dir, "site --db s.db"), 2);
    cr_expect_eq(run(dir, "site --help"), 0);
}

static int have_chromium(void) { return tu_system("command -v chromium >/dev/null 2>&1") == 0; }

/* chromium, headless, with a profile of its own under dir; its log (console included) in dir/log. */
static int chromium(const char *dir, const char *args)
{
    return tu_system("cd '%s' && timeout 90 chromium --headless --no-sandbox --disable-gpu --no-first-run "
                     "--user-data-dir='%s/profile' --enable-logging=stderr --v=0 %s 2>>log",
                     dir, dir, args);
}

Test(site, chromium_shows_the_units_and_the_pictures_without_console_errors)
{
    if (!have_chromium())
        cr_skip_test("chromium is not installed (Debian package chromium, see scripts/setup.sh)");
    const char *dir = scan_and_site("site_browser");
    /* the layer page's DOM after the script ran */
    char args[2048];
    snprintf(args, sizeof args, "--dump-dom 'file://%s/site/1/conv5/index.html' > dom.html", dir);
    cr_assert_eq(chromium(dir, args), 0);
    char p[1024];
    snprintf(p, sizeof p, "%s/dom.html", dir);
    char *dom = slurp(p, NULL);
    cr_assert(dom && strstr(dom, "data-atlas=\"ready\""), "the atlas script did not run");
    sqlite3 *sql = db_open(dir);
    check_table_against_db(sql, "conv5", dom);
    sqlite3_close(sql);
    free(dom);
    /* a unit page: not blank */
    snprintf(args, sizeof args, "--window-size=1000,900 --screenshot='%s/unit.png' 'file://%s/site/1/conv1/3.html'",
             dir, dir);
    cr_assert_eq(chromium(dir, args), 0);
    snprintf(p, sizeof p, "%s/unit.png", dir);
    tu_rgb im = tu_png_read(p);
    const unsigned char *px = im.px;
    /* distinct colours, counted in a 2^15-entry table of 5-bit channels */
    static unsigned char seen[1 << 15];
    memset(seen, 0, sizeof seen);
    int colours = 0;
    for (size_t i = 0; i < (size_t)im.w * im.h; i++) {
        int k = (px[3 * i] >> 3) << 10 | (px[3 * i + 1] >> 3) << 5 | px[3 * i + 2] >> 3;
        colours += !seen[k];
        seen[k] = 1;
    }
    free(im.px);
    cr_expect_gt(colours, 64, "the unit page shows %d colours: blank?", colours);
    /* what the pages said on the console: nothing (a missing picture or a script error says so) */
    snprintf(p, sizeof p, "%s/log", dir);
    char *log = slurp(p, NULL);
    cr_assert(log);
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"))
        cr_expect(!strstr(line, "CONSOLE") && !strstr(line, "Uncaught") && !strstr(line, "ERR_FILE_NOT_FOUND"),
                  "console: %s", line);
    free(log);
}

/* The images of scan_and_site in two class folders (a, p0 in "cats"; p1, p2 in "dogs") and one
 * loose image, scanned (conv1, conv5) and built: dir/s.db, dir/site. */
static const char *class_scan_and_site(const char *tag)
{
    static char keep[512];
    snprintf(keep, sizeof keep, "%s", tu_tmpdir(tag));
    const char *dir = keep;
    cr_assert_eq(tu_system("mkdir -p '%s/imgs/cats' '%s/imgs/dogs' && cp '%s' '%s/imgs/cats/a.jpg'", dir, dir,
                           tu_src("assets/sample.jpg"), dir),
                 0);
    const char *where[4] = {"cats/p0", "dogs/p1", "dogs/p2", "loose"};
    for (int i = 0; i < 4; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/imgs/%s.png", dir, where[i]);
        write_png(p, 90 + 7 * i, 70 + 5 * i, i);
    }
    cr_assert_eq(run(dir, "scan --images imgs --db s.db --layers conv1,conv5"), 0, "scan: %s", err_of(dir));
    cr_assert_eq(run(dir, "site --db s.db -o site"), 0, "site: %s", err_of(dir));
    return dir;
}

/* The text of the first element after `from` that starts with `open` (up to the next '<'), in buf. */
static const char *text_after(const char *from, const char *end, const char *open, char *buf, size_t len)
{
    const char *p = strstr(from, open);
    if (!p || (end && p >= end))
        return NULL;
    p += strlen(open);
    size_t n = strcspn(p, "<");
    snprintf(buf, len, "%.*s", (int)(n < len - 1 ? n : len - 1), p);
    return p + n;
}

/* Each row of the units table of `html` shows the unit's selectivity and best class as the view
 * unit_selectivity holds them ("none" where the index is NULL). */
static void check_selectivity(sqlite3 *sql, const char *layer, const char *html)
{
    char q[512];
    snprintf(q, sizeof q,
             "SELECT u.unit, s.selectivity, ifnull(s.best_class, '') FROM unit_summary u LEFT JOIN unit_selectivity s "
             "ON s.run_id = u.run_id AND s.layer = u.layer AND s.unit = u.unit WHERE u.run_id = 1 AND u.layer = '%s' "
             "ORDER BY u.unit",
             layer);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(sql, q, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(sql));
    int seen = 0, with_index = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int unit = sqlite3_column_int(st, 0);
        char row[64], sel[64], best[256];
        snprintf(row, sizeof row, "<tr><td data-v=\"%d\">", unit);
        const char *r = strstr(html, row);
        cr_assert(r, "%s unit %d: no row", layer, unit);
        const char *next = strstr(r + 4, "<tr>");
        const char *at = text_after(r, next, "class=\"sel\">", sel, sizeof sel);
        cr_assert(at, "%s unit %d: no selectivity cell", layer, unit);
        cr_assert(text_after(at, next, "class=\"l best\">", best, sizeof best), "%s unit %d: no best class", layer, unit);
        if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
            cr_expect_str_eq(sel, "none", "%s unit %d: the view has no index", layer, unit);
        } else {
            double want = sqlite3_column_double(st, 1), got = strtod(sel, NULL);
            cr_expect(fabs(got - want) <= 1e-8 * fmax(1, fabs(want)), "%s unit %d: selectivity %s, view %.12g", layer,
                      unit, sel, want);
            with_index++;
        }
        cr_expect_str_eq(best, (const char *)sqlite3_column_text(st, 2), "%s unit %d: best class", layer, unit);
        seen++;
    }
    sqlite3_finalize(st);
    cr_expect_gt(seen, 0);
    cr_expect_gt(with_index, 0, "%s: no unit has a selectivity index", layer);
}

Test(site, class_folders_give_selectivity_class_means_and_the_classes_of_the_examples)
{
    const char *dir = class_scan_and_site("site_classes");
    sqlite3 *sql = db_open(dir);
    cr_assert_eq(query_int(sql, "SELECT count(*) FROM run_classes WHERE run_id = 1"), 2, "two class folders");
    char p[1024];
    snprintf(p, sizeof p, "%s/site/1/conv5/index.html", dir);
    char *html = slurp(p, NULL);
    cr_assert(html);
    check_selectivity(sql, "conv5", html);
    free(html);
    if (have_chromium()) { /* and as the browser shows it, after the script ran */
        char args[2048];
        snprintf(args, sizeof args, "--dump-dom 'file://%s/site/1/conv5/index.html' > dom.html", dir);
        cr_assert_eq(chromium(dir, args), 0);
        snprintf(p, sizeof p, "%s/dom.html", dir);
        char *dom = slurp(p, NULL);
        cr_assert(dom && strstr(dom, "data-atlas=\"ready\""), "the atlas script did not run");
        check_selectivity(sql, "conv5", dom);
        check_table_against_db(sql, "conv5", dom);
        free(dom);
    }
    /* every conv5 unit page: the classes of its top examples (topk joined to run_images.class and
     * run_classes), its class means, and its bottom patches */
    int units = (int)query_int(sql, "SELECT units FROM run_layers WHERE run_id = 1 AND layer = 'conv5'");
    int examples = 0, loose = 0;
    for (int unit = 0; unit < units; unit++) {
        snprintf(p, sizeof p, "%s/site/1/conv5/%d.html", dir, unit);
        html = slurp(p, NULL);
        cr_assert(html, "no %s", p);
        char q[512];
        snprintf(q, sizeof q,
                 "SELECT t.rank, ifnull(c.name, '(no class)') FROM topk t JOIN run_images r ON r.run_id = t.run_id "
                 "AND r.seq = t.seq LEFT JOIN run_classes c ON c.run_id = r.run_id AND c.class = r.class WHERE "
                 "t.run_id = 1 AND t.layer = 'conv5' AND t.unit = %d ORDER BY t.rank",
                 unit);
        sqlite3_stmt *st = NULL;
        cr_assert_eq(sqlite3_prepare_v2(sql, q, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(sql));
        while (sqlite3_step(st) == SQLITE_ROW) {
            int rank = sqlite3_column_int(st, 0);
            char fig[64], cls[256];
            snprintf(fig, sizeof fig, "<figure class=\"example\" data-rank=\"%d\">", rank);
            const char *f = strstr(html, fig);
            cr_assert(f, "unit %d: no example %d", unit, rank);
            cr_assert(text_after(f, strstr(f, "</figure>"), "<span class=\"class\">", cls, sizeof cls),
                      "unit %d example %d: no class", unit, rank);
            cr_expect_str_eq(cls, (const char *)sqlite3_column_text(st, 1), "unit %d example %d", unit, rank);
            loose += !strcmp(cls, "(no class)");
            examples++;
        }
        sqlite3_finalize(st);
        /* the class means chart: each bar's class and mean as unit_class_mean holds them */
        int bars = 0;
        for (const char *h = html; (h = strstr(h, "<rect data-class=\"")); h++) {
            char name[256];
            h += strlen("<rect data-class=\"");
            snprintf(name, sizeof name, "%.*s", (int)strcspn(h, "\""), h);
            const char *m = strstr(h, "data-mean=\"");
            cr_assert(m);
            double got = strtod(m + strlen("data-mean=\""), NULL);
            snprintf(q, sizeof q,
                     "SELECT mean FROM unit_class_mean WHERE run_id = 1 AND layer = 'conv5' AND unit = %d AND "
                     "class = '%s'",
                     unit, name);
            cr_assert_eq(sqlite3_prepare_v2(sql, q, -1, &st, NULL), SQLITE_OK);
            cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "unit %d: no class '%s' in the view", unit, name);
            double want = sqlite3_column_double(st, 0);
            sqlite3_finalize(st);
            cr_expect(fabs(got - want) <= 1e-8 * fmax(1, fabs(want)), "unit %d class %s: %.9g, view %.12g", unit, name,
                      got, want);
            bars++;
        }
        snprintf(q, sizeof q, "SELECT count(*) FROM unit_class_mean WHERE run_id = 1 AND layer = 'conv5' AND unit = %d",
                 unit);
        cr_expect_eq(bars, query_int(sql, q), "unit %d: %d class bars", unit, bars);
        free(html);
    }
    cr_expect_gt(examples, 0);
    cr_expect_gt(examples - loose, 0, "no example in a class folder");
    sqlite3_close(sql);
    check_bottom_pictures(dir, "conv5");
}

Test(site, a_scan_without_class_folders_shows_no_class_data)
{
    const char *dir = scan_and_site("site_noclass");
    const char *pages[] = {"1/conv5/index.html", "1/conv5/0.html", "1/conv1/3.html"};
    for (int i = 0; i < 3; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/site/%s", dir, pages[i]);
        char *html = slurp(p, NULL);
        cr_assert(html, "no %s", p);
        cr_expect(!strstr(html, "selectivity") && !strstr(html, "class=\"class\"") && !strstr(html, "data-class="),
                  "%s shows class data", pages[i]);
        free(html);
    }
}

/* ---- zfviz serve ---- */

/* A server on a free port of 127.0.0.1 for dir/s.db: its pid and port. */
static int serve_start(const char *dir, int *port)
{
    cr_assert_eq(tu_system("cd '%s' && ('%s' serve --db s.db --port 0 2>serve.err >/dev/null & echo $! > serve.pid)",
                           dir, tu_build("tools/zfviz")),
                 0);
    char p[1024];
    snprintf(p, sizeof p, "%s/serve.pid", dir);
    char *pid = slurp(p, NULL);
    cr_assert(pid);
    int id = atoi(pid);
    free(pid);
    snprintf(p, sizeof p, "%s/serve.err", dir);
    *port = 0;
    for (int i = 0; i < 300 && !*port; i++) { /* up to 30 s: it loads the model first */
        char *err = slurp(p, NULL);
        const char *q = err ? strstr(err, " port ") : NULL;
        if (q)
            *port = atoi(q + 6);
        free(err);
        if (!*port)
            usleep(100 * 1000);
    }
    cr_assert_gt(*port, 0, "the server did not say its port");
    return id;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const char *req)
{
    size_t n = strlen(req);
    cr_assert_eq(send(fd, req, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* The whole response (the server closes the connection: HTTP/1.0 requests); *len its size. */
static char *recv_all(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    cr_assert(buf);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            cr_assert(buf);
        }
        ssize_t got = recv(fd, buf + n, cap - n, 0);
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* The server's answer on fd (closed after it): its status; the body (with a '\0' after it) in
 * *body and its size in *blen, where they are not NULL. */
static int response(int fd, char **body, size_t *blen)
{
    size_t n;
    char *resp = recv_all(fd, &n);
    close(fd);
    int status = 0;
    sscanf(resp, "HTTP/1.%*d %d", &status);
    char *b = strstr(resp, "\r\n\r\n");
    if (body) {
        size_t off = b ? (size_t)(b + 4 - resp) : n;
        *body = malloc(n - off + 1);
        memcpy(*body, resp + off, n - off);
        (*body)[n - off] = 0;
        if (blen)
            *blen = n - off;
    }
    free(resp);
    return status;
}

/* One raw request line (sent as written: no client tidies the path); the status, the body in *body. */
static int get(int port, const char *path, char **body, size_t *blen)
{
    int fd = connect_to(port);
    char req[2048];
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    send_all(fd, req);
    return response(fd, body, blen);
}

/* POST /forward with `len` bytes of `data` as the multipart field `field`; the status and body. */
static int post_image(int port, const char *field, const void *data, size_t len, char **body)
{
    const char *bnd = "zfvizTestBoundary7";
    char head[512], tail[64];
    int hn = snprintf(head, sizeof head,
                      "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"x.jpg\"\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n",
                      bnd, field);
    int tn = snprintf(tail, sizeof tail, "\r\n--%s--\r\n", bnd);
    char req[512];
    snprintf(req, sizeof req,
             "POST /forward HTTP/1.0\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %zu\r\n\r\n",
             bnd, (size_t)hn + len + (size_t)tn);
    int fd = connect_to(port);
    send_all(fd, req);
    send_all(fd, head);
    cr_assert_eq(send(fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
    send_all(fd, tail);
    return response(fd, body, NULL);
}

Test(serve, the_pages_and_pictures_of_the_database_and_nothing_else)
{
    const char *dir = scan_and_site("serve_pages");
    char dbp[1024];
    snprintf(dbp, sizeof dbp, "%s/s.db", dir);
    size_t db_len = 0;
    char *db_before = slurp(dbp, &db_len);
    int port = 0, pid = serve_start(dir, &port);
    char *body = NULL;
    size_t blen = 0;
    /* the layer page: every unit with the database's numbers */
    cr_assert_eq(get(port, "/1/conv5/index.html", &body, &blen), 200);
    sqlite3 *sql = db_open(dir);
    check_table_against_db(sql, "conv5", body);
    free(body);
    /* a picture: the stored rendering's bytes, as sqlite3 reads them */
    cr_assert_eq(get(port, "/1/conv1/img/3-1-deconv.png", &body, &blen), 200);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(sql,
                                    "SELECT png FROM renderings r JOIN topk t ON t.run_id = r.run_id AND t.layer = "
                                    "r.layer AND t.unit = r.unit AND t.rank = r.rank AND t.image_id = r.image_id "
                                    "WHERE r.run_id = 1 AND r.layer = 'conv1' AND r.unit = 3 AND r.rank = 1 AND "
                                    "r.kind = 'deconv'",
                                    -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_expect(blen == (size_t)sqlite3_column_bytes(st, 0) && !memcmp(body, sqlite3_column_blob(st, 0), blen),
              "the served picture differs from the stored one");
    sqlite3_finalize(st);
    free(body);
    cr_expect_eq(get(port, "/1/conv1/3.html", NULL, NULL), 200);
    /* the served layer page as chromium renders it, when it is installed */
    if (have_chromium()) {
        char args[2048], p[1024];
        snprintf(args, sizeof args, "--dump-dom 'http://127.0.0.1:%d/1/conv5/index.html' > dom.html", port);
        cr_assert_eq(chromium(dir, args), 0);
        snprintf(p, sizeof p, "%s/dom.html", dir);
        char *dom = slurp(p, NULL);
        cr_assert(dom && strstr(dom, "data-atlas=\"ready\""), "the atlas script did not run");
        check_table_against_db(sql, "conv5", dom);
        free(dom);
        snprintf(p, sizeof p, "%s/log", dir);
        char *log = slurp(p, NULL);
        cr_assert(log);
        for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"))
            cr_expect(!strstr(line, "CONSOLE") && !strstr(line, "Uncaught"), "console: %s", line);
        free(log);
    }
    sqlite3_close(sql);
    /* paths that lead out of the atlas, or nowhere: 4xx with a one-line reason, no file's content */
    const char *bad[] = {"/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/1/conv1/..%2f..%2f..%2fetc/passwd",
                         "//etc/passwd", "/etc/passwd", "/1/conv1/img/../../../s.db", "/s.db",
                         "/1/conv1/%00.html", "/1/conv9/0.html", "/1/conv1/999.html", "/1/conv1/img/3-1-x.png",
                         "http://127.0.0.1/etc/passwd", "/1/conv1/img/3-99-deconv.png"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int s = get(port, bad[i], &body, &blen);
        cr_expect(s >= 400 && s < 500, "%s: status %d", bad[i], s);
        cr_expect(!strstr(body, "root:") && !strstr(body, "SQLite"), "%s: a file's content came back", bad[i]);
        cr_expect(blen > 0 && strchr(body, '\n') == body + blen - 1, "%s: not one line: %s", bad[i], body);
        free(body);
    }
    int fd = connect_to(port);
    send_all(fd, "POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello");
    size_t n;
    char *resp = recv_all(fd, &n);
    close(fd);
    cr_expect(strstr(resp, " 405 "), "POST: %s", resp);
    free(resp);
    /* uploads: a photo runs through the model; a non-image, a cut JPEG, a wrong field, 100 MB and a
     * body that never arrives are refused or dropped, and the server carries on */
    size_t jlen = 0;
    char *jpeg = slurp(tu_src("assets/sample.jpg"), &jlen);
    cr_assert(jpeg && jlen > 4000);
    cr_expect_eq(post_image(port, "image", jpeg, jlen, &body), 200, "%s", body);
    cr_expect(strstr(body, "Top classes") && strstr(body, "conv5: strongest units"), "%s", body);
    free(body);
    cr_expect_eq(post_image(port, "image", "GIF89a not a picture at all", 27, &body), 415, "%s", body);
    free(body);
    int s2 = post_image(port, "image", jpeg, 2000, &body);
    cr_expect(s2 >= 400 && s2 < 500, "a cut JPEG: %d %s", s2, body);
    free(body);
    cr_expect_eq(post_image(port, "photo", jpeg, jlen, &body), 400, "%s", body);
    free(body);
    free(jpeg);
    fd = connect_to(port);
    send_all(fd, "POST /forward HTTP/1.0\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 "Content-Length: 104857600\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n");
    resp = recv_all(fd, &n);
    close(fd);
    cr_expect(strstr(resp, " 413 "), "100 MB: %s", resp);
    free(resp);
    fd = connect_to(port); /* truncated: the client gives up half way */
    send_all(fd, "POST /forward HTTP/1.0\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 "Content-Length: 5000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc");
    close(fd);
    cr_expect_eq(get(port, "/", NULL, NULL), 200, "the server after the uploads");
    /* 200 requests at once: every one answered */
    enum { N = 200 };
    static int fds[N];
    double t0 = zft_now();
    for (int i = 0; i < N; i++) {
        fds[i] = connect_to(port);
        send_all(fds[i], i % 2 ? "GET /1/conv5/7.html HTTP/1.0\r\n\r\n" : "GET /1/conv1/img/3-1-patch.png HTTP/1.0\r\n\r\n");
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        char *r = recv_all(fds[i], &n);
        ok += !strncmp(r, "HTTP/1.1 200", 12) || !strncmp(r, "HTTP/1.0 200", 12);
        free(r);
        close(fds[i]);
    }
    double secs = zft_now() - t0;
    cr_expect_eq(ok, N, "%d of %d concurrent requests answered 200", ok, N);
    cr_expect_lt(secs, 30.0, "%d concurrent requests took %.1f s", N, secs);
    /* still alive; the database untouched; Ctrl-C stops it */
    cr_expect_eq(kill(pid, 0), 0, "the server died");
    cr_expect_eq(get(port, "/", NULL, NULL), 200);
    cr_assert_eq(kill(pid, SIGINT), 0);
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = kill(pid, 0) != 0;
        if (!gone)
            usleep(100 * 1000);
    }
    cr_expect(gone, "Ctrl-C did not stop the server");
    if (!gone)
        kill(pid, SIGKILL);
    size_t db_len2 = 0;
    char *db_after = slurp(dbp, &db_len2);
    cr_expect(db_len == db_len2 && !memcmp(db_before, db_after, db_len), "the database changed");
    free(db_before);
    free(db_after);

    /* a copy without renderings: the pictures are projected on demand, as the site build made them */
    sqlite3 *w = NULL;
    cr_assert_eq(sqlite3_open(dbp, &w), SQLITE_OK);
    char sqlbuf[1200];
    snprintf(sqlbuf, sizeof sqlbuf, "VACUUM INTO '%s/bare.db'", dir);
    cr_assert_eq(sqlite3_exec(w, sqlbuf, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(w));
    sqlite3_close(w);
    snprintf(sqlbuf, sizeof sqlbuf, "%s/bare.db", dir);
    cr_assert_eq(sqlite3_open(sqlbuf, &w), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(w, "DELETE FROM renderings", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(w);
    cr_assert_eq(tu_system("cd '%s' && ('%s' serve --db bare.db --port 0 2>serve.err >/dev/null & echo $! > serve.pid)",
                           dir, tu_build("tools/zfviz")),
                 0);
    snprintf(sqlbuf, sizeof sqlbuf, "%s/serve.err", dir);
    port = 0;
    for (int i = 0; i < 300 && !port; i++) {
        usleep(100 * 1000);
        char *e = slurp(sqlbuf, NULL);
        const char *q = e ? strstr(e, "bare.db on 127.0.0.1 port ") : NULL;
        if (q)
            port = atoi(q + strlen("bare.db on 127.0.0.1 port "));
        free(e);
    }
    cr_assert_gt(port, 0);
    snprintf(sqlbuf, sizeof sqlbuf, "%s/serve.pid", dir);
    char *pids = slurp(sqlbuf, NULL);
    int pid2 = pids ? atoi(pids) : 0;
    free(pids);
    cr_assert_eq(get(port, "/1/conv5/3.html", &body, &blen), 200);
    cr_expect(strstr(body, "class=\"deconv\" src=\"img/3-1-deconv.png\""), "no projection on the page");
    free(body);
    const char *kinds2[2] = {"deconv", "patch"};
    for (int k = 0; k < 2; k++) {
        char path[128];
        snprintf(path, sizeof path, "/1/conv5/img/3-1-%s.png", kinds2[k]);
        cr_assert_eq(get(port, path, &body, &blen), 200, "%s", path);
        char file[1024];
        snprintf(file, sizeof file, "%s/site/1/conv5/img/3-1-%s.png", dir, kinds2[k]);
        tu_rgb a = tu_png_decode(body, blen), b = tu_png_read(file);
        cr_assert(a.w == b.w && a.h == b.h, "%s: %dx%d, the site's %dx%d", path, a.w, a.h, b.w, b.h);
        cr_expect(!memcmp(a.px, b.px, (size_t)a.w * a.h * 3), "%s differs from the site build's picture", path);
        free(a.px);
        free(b.px);
        free(body);
    }
    snprintf(sqlbuf, sizeof sqlbuf, "%s/bare.db", dir);
    sqlite3 *bare = NULL;
    cr_assert_eq(sqlite3_open_v2(sqlbuf, &bare, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_expect_eq(query_int(bare, "SELECT count(*) FROM renderings"), 0, "serve stored a rendering");
    sqlite3_close(bare);
    kill(pid2, SIGINT);
}

/* A float32 little-endian .npy (version 1 or 2) as written by zfviz: its values (malloc'd) and shape. */
static float *read_npy(const char *path, int64_t *shape, int *ndim)
{
    size_t len = 0;
    char *s = slurp(path, &len);
    cr_assert(s && len > 12 && !memcmp(s, "\x93NUMPY", 6), "%s is not a .npy file", path);
    size_t hlen = (unsigned char)s[8] | (size_t)(unsigned char)s[9] << 8, off = 10;
    if (s[6] >= 2) {
        hlen = (unsigned char)s[8] | (size_t)(unsigned char)s[9] << 8 | (size_t)(unsigned char)s[10] << 16 |
               (size_t)(unsigned char)s[11] << 24;
        off = 12;
    }
    cr_assert(off + hlen <= len);
    char *head = strndup(s + off, hlen);
    cr_assert(strstr(head, "'<f4'"), "%s: not float32: %s", path, head);
    const char *q = strstr(head, "'shape': (");
    cr_assert(q);
    q += strlen("'shape': (");
    *ndim = 0;
    size_t count = 1;
    while (*q && *q != ')') {
        shape[*ndim] = strtoll(q, (char **)&q, 10);
        count *= (size_t)shape[(*ndim)++];
        while (*q == ',' || *q == ' ')
            q++;
    }
    free(head);
    cr_assert_eq(len - off - hlen, count * 4, "%s: %zu bytes of data for %zu values", path, len - off - hlen, count);
    float *v = malloc(count * 4);
    memcpy(v, s + off + hlen, count * 4);
    free(s);
    return v;
}

/* A served map PNG (rows x cols, grey) against an occlusion map of zfviz occlude: the same size, and
 * each pixel the map's value with its lowest 0 and its highest 255 (within one level). */
static void check_map(const char *what, const char *body, size_t blen, const float *map, int rows, int cols)
{
    tu_rgb im = tu_png_decode(body, blen);
    cr_assert(im.px, "%s does not decode", what);
    cr_expect(im.w == cols && im.h == rows, "%s: %dx%d, zfviz occlude's map %dx%d", what, im.w, im.h, cols, rows);
    float lo = map[0], hi = map[0];
    for (int i = 1; i < rows * cols; i++) {
        lo = fminf(lo, map[i]);
        hi = fmaxf(hi, map[i]);
    }
    cr_assert_gt(hi, lo, "%s: zfviz occlude's map is flat", what);
    int bad = 0;
    for (int i = 0; i < rows * cols && im.w == cols && im.h == rows; i++) {
        double want = 255.0 * (map[i] - lo) / (hi - lo);
        if (fabs(im.px[3 * i] - want) > 1.01 && bad++ < 3)
            cr_expect(0, "%s: position %d: %d, zfviz occlude gives %.2f", what, i, im.px[3 * i], want);
    }
    cr_expect_eq(bad, 0, "%s: %d positions differ", what, bad);
    free(im.px);
}

Test(serve, projects_and_occludes_any_scanned_image_on_demand)
{
    const char *dir = scan_and_site("serve_work");
    sqlite3 *sql = db_open(dir);
    /* the conv5 unit with the strongest example */
    int unit = (int)query_int(sql, "SELECT unit FROM topk WHERE run_id = 1 AND layer = 'conv5' AND rank = 1 "
                                   "ORDER BY score DESC, unit LIMIT 1");
    int images = (int)query_int(sql, "SELECT count(*) FROM run_images WHERE run_id = 1");
    cr_assert_eq(images, 4);
    int port = 0, pid = serve_start(dir, &port);
    char *body = NULL;
    size_t blen = 0;
    /* the unit page links the work on its examples */
    char path[256];
    snprintf(path, sizeof path, "/1/conv5/%d.html", unit);
    cr_assert_eq(get(port, path, &body, &blen), 200);
    snprintf(path, sizeof path, "href=\"%d/deconv/", unit);
    cr_expect(strstr(body, path), "the served unit page links no projection");
    snprintf(path, sizeof path, "href=\"%d/occlude/", unit);
    cr_expect(strstr(body, path), "the served unit page links no occlusion map");
    free(body);
    /* the projection on every scanned image, against zfviz deconv's reconstruction of the same file */
    int fired = 0;
    for (int seq = 0; seq < images; seq++) {
        char q[256], file[1100];
        snprintf(q, sizeof q,
                 "SELECT i.path FROM run_images r JOIN images i ON i.id = r.image_id WHERE r.run_id = 1 AND r.seq = %d",
                 seq);
        sqlite3_stmt *st = NULL;
        cr_assert_eq(sqlite3_prepare_v2(sql, q, -1, &st, NULL), SQLITE_OK);
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
        snprintf(file, sizeof file, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        char args[2400];
        snprintf(args, sizeof args, "deconv --arch alexnet-mini --input '%s' --layer conv5 --channel %d --out d%d.npy",
                 file, unit, seq);
        int rc = run(dir, args);
        snprintf(path, sizeof path, "/1/conv5/%d/deconv/%d.png", unit, seq);
        cr_assert_eq(get(port, path, &body, &blen), 200, "%s: %s", path, body);
        tu_rgb im = tu_png_decode(body, blen);
        free(body);
        cr_assert(im.px, "%s does not decode", path);
        if (rc != 0) { /* the unit fires nowhere on this image: zfviz deconv writes nothing, serve grey */
            for (size_t i = 0; i < (size_t)im.w * im.h * 3; i++)
                cr_assert(im.px[i] == 127 || im.px[i] == 128, "%s: a silent unit's projection is not flat grey", path);
            free(im.px);
            continue;
        }
        fired++;
        snprintf(file, sizeof file, "%s/d%d.npy", dir, seq);
        int64_t shape[8];
        int nd = 0;
        float *y = read_npy(file, shape, &nd);
        cr_assert(nd == 4 && shape[0] == 1 && (shape[1] == 1 || shape[1] == 3), "%s: shape", file);
        const int C = (int)shape[1], H = (int)shape[2], W = (int)shape[3];
        cr_assert(im.w == W && im.h == H, "%s: %dx%d, zfviz deconv's %dx%d", path, im.w, im.h, W, H);
        float amax = 0;
        for (size_t i = 0; i < (size_t)C * H * W; i++)
            amax = fmaxf(amax, fabsf(y[i]));
        int bad = 0;
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < (size_t)H * W; i++) {
                double want = 127.5 + 127.5 * y[(C == 1 ? 0 : (size_t)c) * H * W + i] / amax;
                if (fabs(im.px[i * 3 + c] - want) > 1.01 && bad++ < 3)
                    cr_expect(0, "%s: pixel %zu plane %d: %d, zfviz deconv gives %.2f", path, i, c, im.px[i * 3 + c],
                              want);
            }
        cr_expect_eq(bad, 0, "%s: %d values differ from zfviz deconv's", path, bad);
        free(y);
        free(im.px);
    }
    cr_expect_gt(fired, 0, "conv5 unit %d fires on none of the images", unit);
    /* occlusion maps: the unit's map total and a class's probability, against zfviz occlude */
    int best_seq = (int)query_int(sql, "SELECT seq FROM topk WHERE run_id = 1 AND layer = 'conv5' AND rank = 1 "
                                       "ORDER BY score DESC, unit LIMIT 1");
    char file[1100], q[256];
    snprintf(q, sizeof q,
             "SELECT i.path FROM run_images r JOIN images i ON i.id = r.image_id WHERE r.run_id = 1 AND r.seq = %d",
             best_seq);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(sql, q, -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    snprintf(file, sizeof file, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(sql);
    char args[2400];
    snprintf(args, sizeof args,
             "occlude --arch alexnet-mini --input '%s' --layer conv5 --channel %d --class 3 --patch 20 --stride 7 "
             "--out occ",
             file, unit);
    cr_assert_eq(run(dir, args), 0, "occlude: %s", err_of(dir));
    const char *maps[2] = {"feature.npy", "prob.npy"};
    for (int m = 0; m < 2; m++) {
        char npy[1200];
        snprintf(npy, sizeof npy, "%s/occ/%s", dir, maps[m]);
        int64_t shape[8];
        int nd = 0;
        float *map = read_npy(npy, shape, &nd);
        cr_assert_eq(nd, 2);
        /* (112 - 20) / 7 + 1 positions a side, computed here */
        cr_assert(shape[0] == 14 && shape[1] == 14, "%s: %lldx%lld", npy, (long long)shape[0], (long long)shape[1]);
        if (m == 0)
            snprintf(path, sizeof path, "/1/conv5/%d/occlude/%d.png?patch=20&stride=7", unit, best_seq);
        else
            snprintf(path, sizeof path, "/1/class/3/occlude/%d.png?stride=7&patch=20", best_seq);
        cr_assert_eq(get(port, path, &body, &blen), 200, "%s: %s", path, body);
        check_map(path, body, blen, map, 14, 14);
        free(body);
        free(map);
    }
    /* bad requests: 4xx with one line, the server carries on */
    const char *bad[] = {"/1/conv5/0/deconv/4.png", "/1/conv5/0/deconv/99999.png", "/1/conv5/0/deconv/-1.png",
                         "/1/conv5/0/deconv/x.png", "/1/conv5/64/deconv/0.png", "/1/conv5/0/occlude/0.png?patch=0",
                         "/1/conv5/0/occlude/0.png?patch=113", "/1/conv5/0/occlude/0.png?patch=2&stride=1",
                         "/1/conv5/0/occlude/0.png?stride=abc", "/1/conv5/0/deconv/0.png?patch=5",
                         "/1/class/99999/occlude/0.png", "/1/class/3/deconv/0.png", "/1/conv5/0/occlude/7.png",
                         "/2/conv5/0/deconv/0.png"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int s = get(port, bad[i], &body, &blen);
        cr_expect(s == 400 || s == 404, "%s: status %d", bad[i], s);
        cr_expect(blen > 0 && strchr(body, '\n') == body + blen - 1, "%s: not one line: %s", bad[i], body);
        free(body);
    }
    cr_expect_eq(kill(pid, 0), 0, "the server died");
    cr_expect_eq(get(port, "/", NULL, NULL), 200);
    kill(pid, SIGINT);
}

Test(serve, binds_loopback_by_default_and_refuses_bad_options)
{
    char keep[512]; /* tu_ paths live in rotating buffers */
    snprintf(keep, sizeof keep, "%s", tu_tmpdir("serve_opts"));
    const char *dir = keep;
    cr_expect_eq(run(dir, "serve"), 2, "no --db");
    cr_expect_eq(run(dir, "serve --db s.db --bind nowhere"), 2);
    cr_expect_eq(run(dir, "serve --db s.db --port 70000"), 2);
    cr_expect_neq(run(dir, "serve --db missing.db --port 0"), 0, "a missing database");
    cr_expect_eq(run(dir, "serve --help"), 0);
    char p[1024];
    snprintf(p, sizeof p, "%s/out", dir);
    char *help = slurp(p, NULL);
    cr_expect(help && strstr(help, "default 127.0.0.1"), "%s", help);
    free(help);
}
