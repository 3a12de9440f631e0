/* The dataset scan: statistics and top-k against a direct float64 computation over the same
 * activations, planted dead units, a scan killed (SIGKILL) and resumed against an uninterrupted
 * one, broken images, receptive fields against brute force, two models in one database, a real
 * architecture, and the zfviz commands.
 *
 * The scans that the kill test compares run in forked children before this process uses OpenMP
 * (a child of a process whose OpenMP pool is running cannot start its own). */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
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
#include "zf/alloc.h"
#include "zf/db.h"
#include "zf/engine.h"
#include "zf/io.h"
#include "zf/net.h"

/* ---------------------------------------------------------------- images the tests make */

/* Smooth colour gradients with a few bright and dark blobs: activations vary across images. */
static uint8_t *picture(int w, int h, uint64_t seed)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    uint64_t s = seed;
    double a[3], b[3], c[3];
    for (int k = 0; k < 3; k++) {
        a[k] = (double)(tu_mix(&s) % 256);
        b[k] = ((double)(tu_mix(&s) % 200) - 100) / w;
        c[k] = ((double)(tu_mix(&s) % 200) - 100) / h;
    }
    int nb = 2 + (int)(tu_mix(&s) % 4);
    double bx[6], by[6], br[6], bv[6];
    for (int i = 0; i < nb; i++) {
        bx[i] = (double)(tu_mix(&s) % (uint64_t)w);
        by[i] = (double)(tu_mix(&s) % (uint64_t)h);
        br[i] = 2 + (double)(tu_mix(&s) % (uint64_t)(w / 3 + 1));
        bv[i] = (tu_mix(&s) & 1) ? 200 : -200;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) {
                double v = a[k] + b[k] * x * 3 + c[k] * y * 3 + (double)(tu_mix(&s) % 21) - 10;
                for (int i = 0; i < nb; i++) {
                    double d2 = (x - bx[i]) * (x - bx[i]) + (y - by[i]) * (y - by[i]);
                    if (d2 < br[i] * br[i])
                        v += bv[i] * (k == i % 3 ? 1 : 0.3);
                }
                rgb[((size_t)y * w + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return rgb;
}

static const char *path_in(const char *dir, const char *name)
{
    static char bufs[8][8192];
    static int slot;
    char tmp[8192];
    snprintf(tmp, sizeof tmp, "%s/%s", dir, name); /* dir may be an earlier result */
    char *b = bufs[slot++ & 7];
    memcpy(b, tmp, sizeof tmp);
    return b;
}

/* n images of odd sizes, alternately JPEG and PNG, named img_NNN.*, plus three broken files that
 * sort among them: random bytes, a truncated JPEG, an empty PNG. */
static void make_images(const char *dir, int n, uint64_t seed, int broken)
{
    char name[64];
    for (int i = 0; i < n; i++) {
        uint64_t s = seed + (uint64_t)i * 7919;
        int w = 23 + (int)(tu_mix(&s) % 41), h = 21 + (int)(tu_mix(&s) % 37);
        uint8_t *rgb = picture(w, h, s);
        snprintf(name, sizeof name, "img_%03d.%s", i, i % 2 ? "png" : "jpg");
        const char *path = path_in(dir, name);
        cr_assert_eq(i % 2 ? tu_write_png(path, w, h, rgb) : tu_write_jpeg(path, w, h, rgb, 90), 0,
                     "%s", path);
        free(rgb);
    }
    if (!broken)
        return;
    FILE *f = fopen(path_in(dir, "img_002_noise.jpg"), "wb");
    uint64_t s = seed;
    for (int i = 0; i < 3000; i++)
        fputc((int)(tu_mix(&s) & 0xff), f);
    fclose(f);
    cr_assert_eq(tu_system("head -c 400 '%s' > '%s'", path_in(dir, "img_000.jpg"),
                           path_in(dir, "img_005_cut.jpg")), 0);
    f = fopen(path_in(dir, "img_007_empty.png"), "wb");
    fclose(f);
}

/* A fresh folder for the test `tag` (in dir) with make_images(n, seed, broken) in its images/
 * (in imgs). */
static void image_folder(char dir[2048], char imgs[4096], const char *tag, int n, uint64_t seed,
                         int broken)
{
    tu_tmpdir_sub(dir, imgs, tag, "images");
    make_images(imgs, n, seed, broken);
}

/* ---------------------------------------------------------------- a small net */

#define TOY_H 29
#define TOY_W 31

/* conv1 (6, 5/2/2) relu pool (3/2/1) conv2 (7, 3/1/1) relu flatten fc3 (5) relu fc4 (3).
 * plant: bias -100 on conv1 unit 2, conv2 unit 5 and fc3 unit 1, which then never fire. */
static zf_net *toy_net_c(uint64_t seed, int plant, int in_c)
{
    zf_net *net = zf_net_new(in_c == 1 ? "toy-grey" : "toy", in_c, TOY_H, TOY_W);
    cr_assert_not_null(net);
    zf_status s = zf_net_add_conv(net, "conv1", 6, zf_win(5, 2, 2), 1);
    s = s ? s : zf_net_add_relu(net, "relu1");
    s = s ? s : zf_net_add_maxpool(net, "pool1", zf_win(3, 2, 1), 0);
    s = s ? s : zf_net_add_conv(net, "conv2", 7, zf_win(3, 1, 1), 1);
    s = s ? s : zf_net_add_relu(net, "relu2");
    s = s ? s : zf_net_add_flatten(net, "flat");
    s = s ? s : zf_net_add_fc(net, "fc3", 5);
    s = s ? s : zf_net_add_relu(net, "relu3");
    s = s ? s : zf_net_add_fc(net, "fc4", 3);
    s = s ? s : zf_net_finalize(net);
    cr_assert_eq(s, ZF_OK, "%s", zf_last_error());
    /* weights uniform in +-0.3 and biases in +-0.05: most units fire on some images, not all */
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (l->weight_count) {
            tu_fill_uniform(l->weight, (size_t)l->weight_count, seed + (uint64_t)i, -0.3f, 0.3f);
            tu_fill_uniform(l->bias, (size_t)l->bias_count, seed + 100 + (uint64_t)i, -0.05f, 0.05f);
        }
    }
    if (plant) {
        net->layers[zf_net_find(net, "conv1")].bias[2] = -100;
        net->layers[zf_net_find(net, "conv2")].bias[5] = -100;
        net->layers[zf_net_find(net, "fc3")].bias[1] = -100;
    }
    net->pre = (zf_preproc){ZF_COLOR_RGB, 1.0f, {0.485f, 0.456f, 0.406f},
                            {0.229f, 0.224f, 0.225f}, ZF_RESIZE_SHORT_CROP, 33};
    if (in_c == 1) /* one luma plane, normalised with the first mean and std */
        net->pre = (zf_preproc){ZF_COLOR_GREY, 1.0f, {0.3f, 0.3f, 0.3f}, {0.35f, 0.35f, 0.35f},
                                ZF_RESIZE_SHORT_CROP, 33};
    return net;
}

static zf_net *toy_net(uint64_t seed, int plant) { return toy_net_c(seed, plant, 3); }

static zf_db *open_db(const char *path)
{
    zf_db_opts o = {ZF_DB_READWRITE, 10, NULL, NULL};
    zf_db *db = NULL;
    cr_assert_eq(zf_db_open(path, &o, &db), ZF_OK, "%s", zf_last_error());
    return db;
}

static zf_status scan_dir(zf_db *db, zf_net *net, const char *dir, int batch, int chunk, int k,
                          zf_scan_result *res)
{
    char **paths;
    int64_t n;
    zf_status s = zf_db_scan_list(dir, &paths, &n);
    cr_assert_eq(s, ZF_OK, "%s", zf_last_error());
    zf_scan_opts o = {.top_k = k, .batch = batch, .chunk = chunk, .images_arg = dir,
                      .weights = "test"};
    s = zf_db_scan(db, net, (const char *const *)paths, n, &o, res);
    zf_db_scan_list_free(paths, n);
    return s;
}

/* ---------------------------------------------------------------- the direct computation */

typedef struct ref_ex {
    double score;
    int64_t seq;
    int pos;
} ref_ex;

typedef struct ref_unit {
    int64_t images, active, positions, positive;
    double sum, max;
    int64_t max_seq;
    int max_pos;
    ref_ex *ex; /* one per ok image */
    int n_ex;
} ref_unit;

typedef struct ref_layer {
    const char *name;
    int li, units, h, w;
    ref_unit *u;
} ref_layer;

static int cmp_ex(const void *a, const void *b)
{
    const ref_ex *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Loads every image of `paths` itself, forwards them in the scan's batches (batch-aligned groups
 * of list positions, so the activations are bit for bit the scan's), and computes every number
 * with plain float64 loops. ok[i] says which images loaded. */
static ref_layer *direct(zf_net *net, char **paths, int64_t n, int batch, const char **names,
                         int nl, int *ok)
{
    ref_layer *R = calloc((size_t)nl, sizeof *R);
    for (int j = 0; j < nl; j++) {
        R[j].name = names[j];
        R[j].li = zf_net_find(net, names[j]);
        cr_assert(R[j].li >= 0);
        const zf_layer *l = &net->layers[R[j].li];
        R[j].units = l->out_c;
        R[j].h = l->out_h;
        R[j].w = l->out_w;
        R[j].u = calloc((size_t)l->out_c, sizeof *R[j].u);
        for (int c = 0; c < l->out_c; c++) {
            R[j].u[c].ex = calloc((size_t)n, sizeof(ref_ex));
            R[j].u[c].max = -INFINITY;
            R[j].u[c].max_seq = -1;
        }
    }
    cr_assert_eq(zf_net_reserve(net, batch), ZF_OK);
    size_t in_size = (size_t)zf_net_in_size(net);
    int64_t *seqs = malloc((size_t)batch * sizeof *seqs);
    for (int64_t b0 = 0; b0 < n; b0 += batch) {
        int m = 0;
        for (int64_t i = b0; i < n && i < b0 + batch; i++) {
            zf_image *img = NULL;
            ok[i] = zf_image_load(paths[i], &img) == ZF_OK &&
                    zf_image_to_input(net->input + m * in_size, img, &net->pre, net->in_h,
                                      net->in_w) == ZF_OK;
            zf_image_free(img);
            if (ok[i])
                seqs[m++] = i;
        }
        if (!m)
            continue;
        cr_assert_eq(zf_net_forward(net, NULL, m), ZF_OK, "%s", zf_last_error());
        for (int j = 0; j < nl; j++) {
            int hw = R[j].h * R[j].w;
            const float *act = net->acts[R[j].li];
            for (int i = 0; i < m; i++)
                for (int c = 0; c < R[j].units; c++) {
                    ref_unit *u = &R[j].u[c];
                    const float *p = act + ((size_t)i * R[j].units + c) * hw;
                    double best = -INFINITY;
                    int at = 0, pos = 0;
                    for (int q = 0; q < hw; q++) {
                        double v = p[q];
                        if (v > 0) {
                            u->sum += v;
                            pos++;
                        }
                        if (v > best) {
                            best = v;
                            at = q;
                        }
                    }
                    u->images++;
                    u->positions += hw;
                    u->positive += pos;
                    u->active += pos > 0;
                    if (best > u->max) {
                        u->max = best;
                        u->max_seq = seqs[i];
                        u->max_pos = at;
                    }
                    u->ex[u->n_ex++] = (ref_ex){best, seqs[i], at};
                }
        }
    }
    for (int j = 0; j < nl; j++)
        for (int c = 0; c < R[j].units; c++)
            qsort(R[j].u[c].ex, (size_t)R[j].u[c].n_ex, sizeof(ref_ex), cmp_ex);
    free(seqs);
    return R;
}

static void direct_free(ref_layer *R, int nl)
{
    for (int j = 0; j < nl; j++) {
        for (int c = 0; c < R[j].units; c++)
            free(R[j].u[c].ex);
        free(R[j].u);
    }
    free(R);
}

/* The receptive field of the toy net in closed form: conv1 row r sees input rows 2r-2..2r+2;
 * pool1 row p sees conv1 rows 2p-1..2p+1; conv2 row y sees pool rows y-1..y+1. */
static zf_box toy_box(const char *layer, int y, int x)
{
    int lo_y, hi_y, lo_x, hi_x;
    if (!strcmp(layer, "conv1")) {
        lo_y = 2 * y - 2, hi_y = 2 * y + 2, lo_x = 2 * x - 2, hi_x = 2 * x + 2;
    } else { /* conv2: pool rows y-1..y+1 clipped to the 8 pool rows, then down */
        int py0 = y - 1 < 0 ? 0 : y - 1, py1 = y + 1 > 7 ? 7 : y + 1;
        int px0 = x - 1 < 0 ? 0 : x - 1, px1 = x + 1 > 7 ? 7 : x + 1;
        int cy0 = 2 * py0 - 1 < 0 ? 0 : 2 * py0 - 1, cy1 = 2 * py1 + 1 > 14 ? 14 : 2 * py1 + 1;
        int cx0 = 2 * px0 - 1 < 0 ? 0 : 2 * px0 - 1, cx1 = 2 * px1 + 1 > 15 ? 15 : 2 * px1 + 1;
        lo_y = 2 * cy0 - 2, hi_y = 2 * cy1 + 2, lo_x = 2 * cx0 - 2, hi_x = 2 * cx1 + 2;
    }
    zf_box b = {lo_x < 0 ? 0 : lo_x, lo_y < 0 ? 0 : lo_y, hi_x + 1 > TOY_W ? TOY_W : hi_x + 1,
                hi_y + 1 > TOY_H ? TOY_H : hi_y + 1};
    if (!strcmp(layer, "fc3"))
        b = (zf_box){0, 0, TOY_W, TOY_H};
    return b;
}

static const char *toy_layers[] = {"conv1", "conv2", "fc3"};

/* Checks every unit_stats and topk row of `run` against the direct computation. */
static void check_against_direct(zf_db *db, int64_t run, ref_layer *R, int nl, char **paths, int k)
{
    sqlite3 *h = zf_db_handle(db);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(h,
                                    "SELECT s.images, s.active_images, s.positions, "
                                    "s.positive_positions, s.sum, s.max, i.path, s.max_y, s.max_x "
                                    "FROM unit_stats s JOIN images i ON i.id = s.max_image_id "
                                    "WHERE s.run_id = ? AND s.layer = ? AND s.unit = ?",
                                    -1, &st, NULL),
                 SQLITE_OK);
    sqlite3_stmt *tk;
    cr_assert_eq(sqlite3_prepare_v2(h,
                                    "SELECT t.rank, i.path, t.seq, t.score, t.y, t.x, t.box_x0, "
                                    "t.box_y0, t.box_x1, t.box_y1 FROM topk t JOIN images i ON "
                                    "i.id = t.image_id WHERE t.run_id = ? AND t.layer = ? AND "
                                    "t.unit = ? ORDER BY t.rank",
                                    -1, &tk, NULL),
                 SQLITE_OK);
    for (int j = 0; j < nl; j++)
        for (int c = 0; c < R[j].units; c++) {
            const ref_unit *u = &R[j].u[c];
            const char *L = R[j].name;
            sqlite3_bind_int64(st, 1, run);
            sqlite3_bind_text(st, 2, L, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 3, c);
            cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s unit %d: no statistics row", L, c);
            cr_assert_eq(sqlite3_column_int64(st, 0), u->images, "%s unit %d: images", L, c);
            cr_assert_eq(sqlite3_column_int64(st, 1), u->active, "%s unit %d: active images", L, c);
            cr_assert_eq(sqlite3_column_int64(st, 2), u->positions, "%s unit %d: positions", L, c);
            cr_assert_eq(sqlite3_column_int64(st, 3), u->positive, "%s unit %d: positive", L, c);
            double sum = sqlite3_column_double(st, 4);
            cr_assert(fabs(sum - u->sum) <= 1e-12 * fmax(1, fabs(u->sum)),
                      "%s unit %d: sum %.17g, direct %.17g", L, c, sum, u->sum);
            cr_assert_eq(sqlite3_column_double(st, 5), u->max, "%s unit %d: max %.9g, direct %.9g",
                         L, c, sqlite3_column_double(st, 5), u->max);
            cr_assert_str_eq((const char *)sqlite3_column_text(st, 6), paths[u->max_seq],
                             "%s unit %d: max image", L, c);
            cr_assert_eq(sqlite3_column_int(st, 7) * R[j].w + sqlite3_column_int(st, 8), u->max_pos,
                         "%s unit %d: max position", L, c);
            cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
            sqlite3_reset(st);

            sqlite3_bind_int64(tk, 1, run);
            sqlite3_bind_text(tk, 2, L, -1, SQLITE_STATIC);
            sqlite3_bind_int(tk, 3, c);
            int want = u->n_ex < k ? u->n_ex : k;
            for (int r = 0; r < want; r++) {
                const ref_ex *e = &u->ex[r];
                cr_assert_eq(sqlite3_step(tk), SQLITE_ROW, "%s unit %d: rank %d missing", L, c, r + 1);
                cr_assert_eq(sqlite3_column_int(tk, 0), r + 1);
                cr_assert_str_eq((const char *)sqlite3_column_text(tk, 1), paths[e->seq],
                                 "%s unit %d rank %d: image", L, c, r + 1);
                cr_assert_eq(sqlite3_column_int64(tk, 2), e->seq);
                /* stored with nine digits: the same float */
                cr_assert_eq((float)sqlite3_column_double(tk, 3), (float)e->score,
                             "%s unit %d rank %d: score %.9g, direct %.9g", L, c, r + 1,
                             sqlite3_column_double(tk, 3), e->score);
                int y = sqlite3_column_int(tk, 4), x = sqlite3_column_int(tk, 5);
                cr_assert_eq(y * R[j].w + x, e->pos, "%s unit %d rank %d: position", L, c, r + 1);
                zf_box b = toy_box(L, y, x);
                cr_assert(sqlite3_column_int(tk, 6) == b.x0 && sqlite3_column_int(tk, 7) == b.y0 &&
                              sqlite3_column_int(tk, 8) == b.x1 && sqlite3_column_int(tk, 9) == b.y1,
                          "%s unit %d rank %d at (%d,%d): box %d,%d-%d,%d, expected %d,%d-%d,%d", L,
                          c, r + 1, y, x, sqlite3_column_int(tk, 6), sqlite3_column_int(tk, 7),
                          sqlite3_column_int(tk, 8), sqlite3_column_int(tk, 9), b.x0, b.y0, b.x1,
                          b.y1);
            }
            cr_assert_eq(sqlite3_step(tk), SQLITE_DONE, "%s unit %d: more than %d examples", L, c,
                         want);
            sqlite3_reset(tk);
        }
    sqlite3_finalize(st);
    sqlite3_finalize(tk);
}

static int64_t query_int(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(h));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

Test(scan, statistics_and_topk_match_a_direct_float64_computation)
{
    char dir[2048], imgs[4096];
    image_folder(dir, imgs, "scan_direct", 23, 11, 1);
    zf_net *net = toy_net(5, 0);
    zf_db *db = open_db(path_in(dir, "s.db"));
    zf_scan_result res;
    /* batch 4, chunk 8: several commits, a last partial batch, broken images inside batches */
    cr_assert_eq(scan_dir(db, net, imgs, 4, 8, 5, &res), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(res.n_images, 26);
    cr_assert_eq(res.n_ok, 23);
    cr_assert_eq(res.n_failed, 3);
    cr_assert_eq(res.next_seq, 26);

    char **paths;
    int64_t n;
    cr_assert_eq(zf_db_scan_list(imgs, &paths, &n), ZF_OK);
    int *ok = calloc((size_t)n, sizeof *ok);
    ref_layer *R = direct(net, paths, n, 4, toy_layers, 3, ok);
    check_against_direct(db, res.run_id, R, 3, paths, 5);

    /* the failed images are recorded with their errors and left out of every count */
    sqlite3 *h = zf_db_handle(db);
    cr_assert_eq(query_int(h, "SELECT count(*) FROM images WHERE status = 'error' AND error LIKE "
                              "'%img_00%' AND sha256 IS NOT NULL"), 3);
    cr_assert_eq(query_int(h, "SELECT count(*) FROM images WHERE status = 'ok' AND width > 0 AND "
                              "sha256 IS NOT NULL"), 23);
    cr_assert_eq(query_int(h, "SELECT count(*) FROM run_images"), 26);
    for (int64_t i = 0; i < n; i++) {
        char sql[4200];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM run_images r JOIN images i ON i.id = r.image_id "
                 "WHERE r.seq = %lld AND i.path = '%s' AND i.status = '%s'",
                 (long long)i, paths[i], ok[i] ? "ok" : "error");
        cr_assert_eq(query_int(h, sql), 1, "image %lld (%s) recorded wrongly", (long long)i, paths[i]);
    }
    cr_assert_eq(query_int(h, "SELECT count(*) FROM runs WHERE finished IS NOT NULL AND n_ok = 23"), 1);

    /* running it again finds the run complete and changes nothing */
    int64_t before = query_int(h, "SELECT total_changes()");
    cr_assert_eq(scan_dir(db, net, imgs, 4, 8, 5, &res), ZF_OK, "%s", zf_last_error());
    cr_assert(res.resumed && res.start_seq == 26 && res.next_seq == 26);
    cr_assert_eq(query_int(h, "SELECT total_changes()"), before);
    direct_free(R, 3);
    free(ok);
    zf_db_scan_list_free(paths, n);
    zf_db_close(db);
    zf_net_free(net);
}

Test(scan, planted_dead_units_are_all_reported_and_no_live_unit)
{
    char dir[2048], imgs[4096];
    image_folder(dir, imgs, "scan_dead", 19, 23, 0);
    zf_net *net = toy_net(9, 1);
    zf_db *db = open_db(path_in(dir, "d.db"));
    zf_scan_result res;
    cr_assert_eq(scan_dir(db, net, imgs, 5, 5, 9, &res), ZF_OK, "%s", zf_last_error());

    char **paths;
    int64_t n;
    cr_assert_eq(zf_db_scan_list(imgs, &paths, &n), ZF_OK);
    int *ok = calloc((size_t)n, sizeof *ok);
    ref_layer *R = direct(net, paths, n, 5, toy_layers, 3, ok);
    /* the fixture: exactly the planted units are dead, the rest fire somewhere */
    int planted[3] = {2, 5, 1};
    for (int j = 0; j < 3; j++)
        for (int c = 0; c < R[j].units; c++)
            cr_assert_eq(R[j].u[c].max <= 0, c == planted[j],
                         "fixture: %s unit %d has max %g", R[j].name, c, R[j].u[c].max);

    const double thresholds[] = {0, 0.3, 0.7, 1.0};
    for (int t = 0; t < 4; t++) {
        zf_db_dead *d = NULL;
        int nd = 0;
        cr_assert_eq(zf_db_dead_units(db, res.run_id, NULL, thresholds[t], &d, &nd), ZF_OK, "%s",
                     zf_last_error());
        int at = 0;
        for (int j = 0; j < 3; j++)
            for (int c = 0; c < R[j].units; c++) {
                const ref_unit *u = &R[j].u[c];
                double frac = (double)u->active / (double)u->images;
                int want = u->max <= 0 || frac < thresholds[t];
                if (!want)
                    continue;
                cr_assert(at < nd, "min-active %g: %s unit %d not reported", thresholds[t],
                          R[j].name, c);
                cr_assert(!strcmp(d[at].layer, R[j].name) && d[at].unit == c,
                          "min-active %g: report #%d is %s unit %d, expected %s unit %d",
                          thresholds[t], at, d[at].layer, d[at].unit, R[j].name, c);
                cr_assert_eq(d[at].active_fraction, frac);
                cr_assert_eq(d[at].max_activation, u->max);
                at++;
            }
        cr_assert_eq(at, nd, "min-active %g: %d units reported, %d expected", thresholds[t], nd, at);
        if (thresholds[t] == 0)
            cr_assert_eq(nd, 3);
        free(d);
    }
    direct_free(R, 3);
    free(ok);
    zf_db_scan_list_free(paths, n);
    zf_db_close(db);
    zf_net_free(net);
}

/* ---------------------------------------------------------------- killed and resumed */

static void slow_down(void *ctx, int64_t done, int64_t total)
{
    (void)ctx;
    (void)done;
    (void)total;
    struct timespec ts = {0, 15 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* A child process that scans `imgs` into `dbpath` (batch as given: a resumed run keeps its own). */
static pid_t spawn_scan(const char *dbpath, const char *imgs, int batch, int slow)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid)
        return pid;
    zf_net *net = toy_net(5, 0);
    zf_db_opts dbo = {ZF_DB_READWRITE, 10, NULL, NULL};
    zf_db *db = NULL;
    char **paths;
    int64_t n;
    if (zf_db_open(dbpath, &dbo, &db) || zf_db_scan_list(imgs, &paths, &n))
        _exit(3);
    zf_scan_opts o = {.top_k = 4, .batch = batch, .chunk = 6, .images_arg = imgs,
                      .progress = slow ? slow_down : NULL, .weights = "test"};
    zf_scan_result res;
    zf_status s = zf_db_scan(db, net, (const char *const *)paths, n, &o, &res);
    if (s)
        fprintf(stderr, "child scan: %s\n", zf_last_error());
    zf_db_close(db);
    _exit(s ? 4 : 0);
}

static int wait_child(pid_t pid)
{
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static int64_t next_seq_of(const char *dbpath)
{
    sqlite3 *h;
    if (sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(h);
        return -1;
    }
    sqlite3_busy_timeout(h, 2000);
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(h, "SELECT next_seq FROM runs", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return v;
}

/* Every row of the tables a scan writes, with floats as exact hex, in key order. */
static char *dump(const char *dbpath)
{
    static const char *const queries[] = {
        "SELECT id, path, sha256, bytes, width, height, status, error FROM images ORDER BY id",
        "SELECT run_id, seq, image_id FROM run_images ORDER BY run_id, seq",
        "SELECT run_id, layer, position, op, units, height, width FROM run_layers ORDER BY 1, 2",
        "SELECT id, n_images, next_seq, n_ok, n_failed, batch, chunk, top_k, layers, finished IS "
        "NOT NULL FROM runs ORDER BY id",
        "SELECT run_id, layer, unit, images, active_images, positions, positive_positions, "
        "printf('%!.17g', sum), printf('%!.17g', max), max_image_id, max_y, max_x, max_seq, top "
        "FROM unit_stats "
        "ORDER BY 1, 2, 3",
        "SELECT run_id, layer, unit, rank, image_id, seq, printf('%!.17g', score), y, x, box_x0, "
        "box_y0, box_x1, box_y1 FROM topk ORDER BY 1, 2, 3, 4",
        /* the exact sums, the histograms, the bottom-k and the class statistics */
        "SELECT run_id, layer, unit, hex(sum_exact), hist, bottom FROM unit_stats ORDER BY 1, 2, 3",
        "SELECT run_id, class, name, images FROM run_classes ORDER BY 1, 2",
        "SELECT run_id, layer, unit, class, printf('%!.17g', sum), hex(sum_exact) FROM unit_class_stats "
        "ORDER BY 1, 2, 3, 4",
    };
    sqlite3 *h;
    cr_assert_eq(sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (size_t q = 0; q < sizeof queries / sizeof *queries; q++) {
        sqlite3_stmt *st;
        cr_assert_eq(sqlite3_prepare_v2(h, queries[q], -1, &st, NULL), SQLITE_OK, "%s",
                     sqlite3_errmsg(h));
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const char *t = (const char *)sqlite3_column_text(st, c);
                size_t need = strlen(t ? t : "NULL") + 2;
                if (len + need + 1 > cap) {
                    cap = 2 * (cap + need);
                    out = realloc(out, cap);
                }
                len += (size_t)sprintf(out + len, "%s%c", t ? t : "NULL",
                                       c + 1 < sqlite3_column_count(st) ? '|' : '\n');
            }
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return out;
}

/* The first line where two dumps differ, for the failure message. */
static const char *first_difference(const char *a, const char *b, char *buf, size_t len)
{
    int line = 1;
    const char *la = a, *lb = b;
    while (*a && *a == *b) {
        if (*a == '\n') {
            line++;
            la = a + 1;
            lb = b + 1;
        }
        a++;
        b++;
    }
    snprintf(buf, len, "line %d: '%.*s' vs '%.*s'", line, (int)strcspn(la, "\n"), la,
             (int)strcspn(lb, "\n"), lb);
    return buf;
}

/* Fails, naming `what` and the first differing line, unless the databases at a and b hold the
 * same rows; the dump of a must have at least min_len bytes. */
static void expect_same_rows(const char *a, const char *b, size_t min_len, const char *what)
{
    char *da = dump(a), *db = dump(b), diff[512];
    cr_assert(strlen(da) >= min_len, "the dump of %s is too small to mean anything", a);
    cr_assert(!strcmp(da, db), "%s at %s", what, first_difference(da, db, diff, sizeof diff));
    free(da);
    free(db);
}

/* One image folder (three of its files broken) listed once, to be scanned into a.db and b.db in
 * two ways that must give the same rows. */
typedef struct scan_twice {
    char dir[2048], imgs[4096], a[4096], b[4096];
    char **paths;
    int64_t n;
} scan_twice;

static void scan_twice_init(scan_twice *t, const char *tag, int n_images, uint64_t seed)
{
    image_folder(t->dir, t->imgs, tag, n_images, seed, 1);
    snprintf(t->a, sizeof t->a, "%s", path_in(t->dir, "a.db"));
    snprintf(t->b, sizeof t->b, "%s", path_in(t->dir, "b.db"));
    cr_assert_eq(zf_db_scan_list(t->imgs, &t->paths, &t->n), ZF_OK, "%s", zf_last_error());
}

/* Scans paths into a fresh database at `path` with the options o; asserts success. */
static void scan_into(const char *path, zf_net *net, char **paths, int64_t n, const zf_scan_opts *o)
{
    zf_db *db = open_db(path);
    zf_scan_result res;
    cr_assert_eq(zf_db_scan(db, net, (const char *const *)paths, n, o, &res), ZF_OK, "%s: %s", path,
                 zf_last_error());
    zf_db_close(db);
}

Test(scan, killed_and_resumed_scan_gives_exactly_the_rows_of_an_uninterrupted_one)
{
    char dir[2048], imgs[4096];
    image_folder(dir, imgs, "scan_kill", 37, 3, 1); /* 40 files, 3 broken */
    char ref[4096], cut[4096];
    snprintf(ref, sizeof ref, "%s", path_in(dir, "ref.db"));
    snprintf(cut, sizeof cut, "%s", path_in(dir, "cut.db"));

    cr_assert_eq(wait_child(spawn_scan(ref, imgs, 3, 0)), 0, "uninterrupted scan failed");

    /* killed once right after its first commit (6 images: the first chunk, before commit spacing
     * starts), then at arbitrary moments (mid-batch or mid-commit) */
    pid_t pid = spawn_scan(cut, imgs, 3, 1);
    int64_t seq = -1;
    for (int i = 0; i < 20000 && (seq = next_seq_of(cut)) < 6; i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    cr_assert_eq(wait_child(pid), 128 + SIGKILL);
    int64_t after_first = next_seq_of(cut);
    cr_assert(after_first >= 6 && after_first < 40, "first kill landed at %lld of 40",
              (long long)after_first);
    const int delays_ms[] = {37, 5, 61, 90};
    for (int i = 0; i < 4 && next_seq_of(cut) < 40; i++) {
        /* a different --batch on resume must not change anything: the run keeps its own */
        pid = spawn_scan(cut, imgs, 5, 1);
        struct timespec ts = {0, delays_ms[i] * 1000 * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        wait_child(pid);
        int64_t now = next_seq_of(cut);
        cr_assert(now >= after_first, "committed work lost: %lld after %lld", (long long)now,
                  (long long)after_first);
        after_first = now;
    }
    cr_assert_eq(wait_child(spawn_scan(cut, imgs, 5, 0)), 0, "resumed scan failed");
    cr_assert_eq(next_seq_of(cut), 40);

    expect_same_rows(ref, cut, 1001, "resumed scan differs from the uninterrupted one");
}

static void interrupt_after_two(void *ctx, int64_t done, int64_t total)
{
    int *calls = ctx;
    (void)done;
    (void)total;
    if (++*calls == 2)
        zf_abort_request();
}

Test(scan, ctrl_c_commits_what_is_done_and_the_rerun_finishes_the_same)
{
    scan_twice t;
    scan_twice_init(&t, "scan_sigint", 14, 8);
    zf_net *net = toy_net(4, 0);
    char **paths = t.paths;
    int64_t n = t.n;
    zf_db *db = open_db(t.a);
    int calls = 0;
    zf_scan_opts o = {.top_k = 3, .batch = 3, .chunk = 100, .weights = "test",
                      .progress = interrupt_after_two, .progress_ctx = &calls};
    zf_scan_result res;
    zf_status s = zf_db_scan(db, net, (const char *const *)paths, n, &o, &res);
    zf_abort_clear();
    cr_assert_eq(s, ZF_ERR_INTERRUPTED, "%s", zf_last_error());
    cr_assert(strstr(zf_last_error(), "6 of 17"), "message: %s", zf_last_error());
    cr_assert_eq(res.next_seq, 6, "the two batches done are committed");
    o.progress = NULL;
    cr_assert_eq(zf_db_scan(db, net, (const char *const *)paths, n, &o, &res), ZF_OK, "%s",
                 zf_last_error());
    cr_assert(res.resumed && res.start_seq == 6 && res.next_seq == 17);
    zf_db_close(db);
    scan_into(t.b, net, paths, n, &o);
    expect_same_rows(t.a, t.b, 0, "interrupted and resumed differs");
    zf_db_scan_list_free(paths, n);
    zf_net_free(net);
}

/* Another engine's hooks as zfviz scan --device sets them, on the CPU: the forward (slowed, so
 * that the decoding threads get ahead and prefetches happen), the engine's host memory (counted
 * blocks) and its prefetch, which must be handed exactly the images of a forward to come. */
typedef struct pool_hooks {
    int forwards, allocs, frees, prefetches, prefetch_hits;
    const float *blocks[64];
    size_t block_bytes[64];
    const float *pre[2]; /* the prefetches not taken yet, and copies of what they held then */
    int pre_n[2];
    float *pre_copy[2];
    size_t in_size;
    int bad;            /* a forward outside the blocks, or a prefetch whose images changed */
} pool_hooks;

static void *pool_alloc(void *ctx, size_t bytes)
{
    pool_hooks *h = ctx;
    cr_assert(h->allocs < 64);
    float *p = zf_alloc(bytes);
    h->blocks[h->allocs] = p;
    h->block_bytes[h->allocs++] = bytes;
    return p;
}

static void pool_free(void *ctx, void *p)
{
    pool_hooks *h = ctx;
    int known = 0;
    for (int i = 0; i < h->allocs; i++)
        known |= h->blocks[i] == p;
    cr_expect(known, "host_free of a block host_alloc did not give");
    h->frees++;
    zf_free(p);
}

static zf_status pool_prefetch(void *ctx, const float *input, int n)
{
    pool_hooks *h = ctx;
    h->prefetches++;
    /* the scan prefetches batch b + 1 before the forward of batch b: at most two wait */
    int i = !h->pre[0] ? 0 : !h->pre[1] ? 1 : -1;
    cr_assert(i >= 0, "a third prefetch before the first two were taken");
    h->pre[i] = input;
    h->pre_n[i] = n;
    free(h->pre_copy[i]);
    h->pre_copy[i] = malloc(sizeof(float) * h->in_size * (size_t)n);
    cr_assert_not_null(h->pre_copy[i]);
    memcpy(h->pre_copy[i], input, sizeof(float) * h->in_size * (size_t)n);
    return ZF_OK;
}

static zf_status pool_forward(void *ctx, zf_net *net, const float *input, int n)
{
    pool_hooks *h = ctx;
    h->forwards++;
    int inside = 0;
    for (int i = 0; i < h->allocs; i++)
        inside |= (const char *)input >= (const char *)h->blocks[i] &&
                  (const char *)(input + h->in_size * (size_t)n) <= (const char *)h->blocks[i] + h->block_bytes[i];
    h->bad += !inside;
    for (int i = 0; i < 2; i++) /* a prefetch is taken by the forward of its images, unchanged */
        if (h->pre[i] == input) {
            if (h->pre_n[i] != n || memcmp(h->pre_copy[i], input, sizeof(float) * h->in_size * (size_t)n))
                h->bad++;
            else
                h->prefetch_hits++;
            h->pre[i] = NULL;
        }
    struct timespec ts = {0, 15 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return zf_net_forward(net, input, n);
}

/* A pool of 1 to 8 decoding threads ahead of another engine (each image decoded by whichever
 * thread takes it, batches packed by the last one) gives the rows of the CPU path's scan, at
 * batches of 1 and 4, with broken files among the images; the batches are written into the
 * engine's host memory, and each prefetch is of a later forward's images, unchanged when it runs. */
Test(scan, a_pool_of_decoding_threads_and_prefetches_give_the_same_rows)
{
    scan_twice t;
    scan_twice_init(&t, "scan_pool", 17, 21);
    zf_net *net = toy_net(8, 1);
    int hits = 0;
    for (int batch = 1; batch <= 4; batch += 3) {
        zf_scan_opts o = {.top_k = 3, .batch = batch, .chunk = 8, .weights = "test"};
        scan_into(t.a, net, t.paths, t.n, &o);
        const int threads[] = {1, 2, 3, 8};
        for (int ti = 0; ti < 4; ti++) {
            pool_hooks h = {.in_size = (size_t)zf_net_in_size(net)};
            o.forward = pool_forward;
            o.host_alloc = pool_alloc;
            o.host_free = pool_free;
            o.prefetch = pool_prefetch;
            o.forward_ctx = &h;
            o.decode_threads = threads[ti];
            remove(t.b);
            zf_db *db = open_db(t.b);
            zf_scan_result res;
            cr_assert_eq(zf_db_scan(db, net, (const char *const *)t.paths, t.n, &o, &res), ZF_OK, "%s",
                         zf_last_error());
            zf_db_close(db);
            char what[96];
            snprintf(what, sizeof what, "batch %d, %d decoding threads", batch, threads[ti]);
            expect_same_rows(t.a, t.b, 0, what);
            cr_expect_eq(res.decode_threads, threads[ti], "%s: %d threads ran", what, res.decode_threads);
            cr_expect_eq(h.bad, 0, "%s: %d forwards outside the engine's memory or prefetches of other images",
                         what, h.bad);
            /* 20 files, 3 broken: batch 1 runs 17 forwards; batch 4, 5 (no batch is all broken) */
            cr_expect_eq(h.forwards, batch == 1 ? 17 : 5, "%s: %d forwards", what, h.forwards);
            cr_expect(h.allocs >= 3 && h.frees == h.allocs, "%s: %d blocks given, %d taken back", what, h.allocs,
                      h.frees);
            cr_expect_eq(h.prefetches, h.prefetch_hits, "%s: %d prefetches, %d taken by the next forward", what,
                         h.prefetches, h.prefetch_hits);
            hits += h.prefetch_hits;
            free(h.pre_copy[0]);
            free(h.pre_copy[1]);
        }
        remove(t.a);
    }
    /* forwards of 15 ms leave the threads time to decode the next batch before this one's */
    cr_expect(hits > 0, "no batch was prefetched");
    zf_db_scan_list_free(t.paths, t.n);
    zf_net_free(net);
}

/* zf_scan_opts.fold_* on the CPU engine (zf_engine_fold_*), counted. */
typedef struct fold_hooks {
    zf_engine *e;
    int opens, adds, reads;
} fold_hooks;

static zf_status fold_forward(void *ctx, zf_net *net, const float *input, int n)
{
    (void)ctx;
    return zf_net_forward(net, input, n);
}

static zf_status fold_open_hook(void *ctx, int slot, const zf_fold_acc *acc)
{
    fold_hooks *h = ctx;
    h->opens++;
    return zf_engine_fold_open(h->e, slot, acc);
}

static zf_status fold_add_hook(void *ctx, int slot, int layer, int n, const int64_t *seqs, const int32_t *classes)
{
    fold_hooks *h = ctx;
    h->adds++;
    return zf_engine_fold_add(h->e, slot, layer, n, seqs, classes);
}

static zf_status fold_read_hook(void *ctx, int slot, zf_fold_acc *acc)
{
    fold_hooks *h = ctx;
    h->reads++;
    return zf_engine_fold_read(h->e, slot, acc);
}

/* The conv layers' accumulators kept by an engine between commits (the CUDA engine keeps them on
 * the device; this is the CPU engine's twin of its fold) give the rows of the scan's own, bit for
 * bit: three class folders (class sums), broken files, a run stopped after two batches and
 * resumed (the engine then starts from the accumulators loaded from the database). */
Test(scan, accumulators_kept_by_the_engine_give_the_same_rows)
{
    char dir[2048], imgs[4096], sub[8192], a[4096], b[4096];
    tu_tmpdir_sub(dir, imgs, "scan_fold", "images");
    for (int c = 0; c < 3; c++) {
        cr_assert_lt(snprintf(sub, sizeof sub, "%s/%c", imgs, 'a' + c), (int)sizeof sub);
        mkdir(sub, 0755);
        make_images(sub, 5, 90 + (uint64_t)c, c == 1);
    }
    snprintf(a, sizeof a, "%s", path_in(dir, "a.db"));
    snprintf(b, sizeof b, "%s", path_in(dir, "b.db"));
    char **paths;
    int64_t n;
    cr_assert_eq(zf_db_scan_list(imgs, &paths, &n), ZF_OK, "%s", zf_last_error());
    zf_net *net = toy_net(12, 1);
    zf_scan_opts o = {.top_k = 3, .batch = 3, .chunk = 3, .images_arg = imgs, .weights = "test"};
    scan_into(a, net, paths, n, &o);

    fold_hooks h = {0};
    zf_engine_opts eo = {.device = 0, .batch = 3};
    cr_assert_eq(zf_engine_open(zf_engine_find("cpu"), net, &eo, &h.e), ZF_OK, "%s", zf_last_error());
    int calls = 0;
    o.forward = fold_forward;
    o.fold_open = fold_open_hook;
    o.fold_add = fold_add_hook;
    o.fold_read = fold_read_hook;
    o.forward_ctx = &h;
    o.progress = interrupt_after_two;
    o.progress_ctx = &calls;
    zf_db *db = open_db(b);
    zf_scan_result res;
    zf_status st = zf_db_scan(db, net, (const char *const *)paths, n, &o, &res);
    zf_abort_clear();
    cr_assert_eq(st, ZF_ERR_INTERRUPTED, "%s", zf_last_error());
    cr_assert_eq(res.next_seq, 6, "two batches committed");
    cr_expect_eq(h.opens, 2, "conv1 and conv2 handed to the engine (fc3 stays with the scan)");
    cr_expect_eq(h.adds, 4, "two batches of two layers");
    cr_expect(h.reads >= 2 && h.reads % 2 == 0, "%d reads", h.reads);
    o.progress = NULL;
    h.opens = h.adds = 0;
    cr_assert_eq(zf_db_scan(db, net, (const char *const *)paths, n, &o, &res), ZF_OK, "%s", zf_last_error());
    cr_assert(res.resumed && res.start_seq == 6 && res.next_seq == n);
    cr_expect_eq(h.opens, 2, "the resumed run's accumulators handed over");
    zf_db_close(db);
    cr_expect_eq(res.n_classes, 3);
    expect_same_rows(a, b, 0, "the engine's accumulators and the scan's own differ");
    zf_engine_close(h.e);
    zf_db_scan_list_free(paths, n);
    zf_net_free(net);
}

/* ---------------------------------------------------------------- receptive fields */

Test(scan, receptive_fields_match_the_pixels_that_move_each_output)
{
    /* positive weights, zero biases, no ReLU: an output depends on an input pixel exactly when
     * a large value there makes it positive */
    const int H = 23, W = 27;
    zf_net *net = zf_net_new("rf", 1, H, W);
    zf_status s = zf_net_add_conv(net, "conv1", 2, zf_win(5, 2, 2), 1);
    s = s ? s : zf_net_add_maxpool(net, "pool1", zf_win(3, 2, 1), 0);
    s = s ? s : zf_net_add_conv(net, "conv2", 2, (zf_window){3, 2, 1, 1, 0, 1, 1, 0}, 1);
    s = s ? s : zf_net_add_avgpool(net, "pool2", zf_win(2, 1, 0), 1, 1);
    s = s ? s : zf_net_add_adaptive_avgpool(net, "ada", 2, 3);
    s = s ? s : zf_net_add_flatten(net, "flat");
    s = s ? s : zf_net_add_fc(net, "fc", 2);
    s = s ? s : zf_net_finalize(net);
    cr_assert_eq(s, ZF_OK, "%s", zf_last_error());
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].weight_count)
            tu_fill_uniform(net->layers[i].weight, (size_t)net->layers[i].weight_count, 7 + i, 0.1f,
                            1.0f);
    /* One image per pixel, one forward each: at batch 1 every layer here runs as direct
     * convolution, whose outputs are exactly zero where no large pixel reaches (Winograd, which
     * larger batches take, leaves rounding-sized values there). */
    const int n = H * W;
    cr_assert_eq(zf_net_reserve(net, 1), ZF_OK);
    zf_box *want = malloc(sizeof(zf_box) * (size_t)net->n_layers * n);
    for (int i = 0; i < net->n_layers * n; i++)
        want[i] = (zf_box){W, H, 0, 0};
    for (int p = 0; p < n; p++) {
        memset(net->input, 0, sizeof(float) * (size_t)H * W);
        net->input[p] = 1000;
        cr_assert_eq(zf_net_forward(net, NULL, 1), ZF_OK);
        const int y = p / W, x = p % W;
        for (int li = 0; li < net->n_layers; li++) {
            const zf_layer *l = &net->layers[li];
            for (int q = 0; q < l->out_h * l->out_w; q++)
                if (net->acts[li][q] > 0) {
                    zf_box *w = &want[(size_t)li * n + q];
                    w->x0 = x < w->x0 ? x : w->x0;
                    w->y0 = y < w->y0 ? y : w->y0;
                    w->x1 = x + 1 > w->x1 ? x + 1 : w->x1;
                    w->y1 = y + 1 > w->y1 ? y + 1 : w->y1;
                }
        }
    }
    int checked = 0;
    for (int li = 0; li < net->n_layers; li++) {
        const zf_layer *l = &net->layers[li];
        if (l->op == ZF_OP_FLATTEN)
            continue;
        int hw = l->out_h * l->out_w;
        for (int q = 0; q < hw; q++) {
            const zf_box wb = want[(size_t)li * n + q];
            zf_box got;
            cr_assert_eq(zf_db_receptive_field(net, li, q / l->out_w, q % l->out_w, &got), ZF_OK);
            cr_assert(got.x0 == wb.x0 && got.y0 == wb.y0 && got.x1 == wb.x1 && got.y1 == wb.y1,
                      "%s (%d,%d): box x %d-%d y %d-%d, the pixels that move it x %d-%d y %d-%d",
                      l->name, q / l->out_w, q % l->out_w, got.x0, got.x1, got.y0, got.y1, wb.x0,
                      wb.x1, wb.y0, wb.y1);
            checked++;
        }
    }
    free(want);
    cr_assert(checked > 200);
    zf_box b;
    cr_assert_eq(zf_db_receptive_field(net, 0, 99, 0, &b), ZF_ERR_ARG);
    zf_net_free(net);
}

/* ---------------------------------------------------------------- two models, one database */

Test(scan, two_models_over_the_same_images_share_image_rows_and_compare)
{
    char dir[2048], imgs[4096];
    image_folder(dir, imgs, "scan_two", 9, 41, 0);
    zf_db *db = open_db(path_in(dir, "two.db"));
    zf_net *a = toy_net(1, 0), *b = toy_net(2, 1);
    zf_scan_result ra, rb;
    cr_assert_eq(scan_dir(db, a, imgs, 4, 4, 3, &ra), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(scan_dir(db, b, imgs, 2, 4, 3, &rb), ZF_OK, "%s", zf_last_error());
    cr_assert_neq(ra.run_id, rb.run_id);
    sqlite3 *h = zf_db_handle(db);
    cr_assert_eq(query_int(h, "SELECT count(*) FROM models"), 2);
    cr_assert_eq(query_int(h, "SELECT count(*) FROM images"), 9, "the images are stored once");
    cr_assert_eq(query_int(h, "SELECT count(*) FROM run_images a JOIN run_images b "
                              "ON a.seq = b.seq AND a.image_id = b.image_id "
                              "WHERE a.run_id = 1 AND b.run_id = 2"), 9);
    /* per layer, side by side, the dead counts agree with each run's dead-unit report, and
     * model b's planted units are among its dead */
    cr_assert_eq(query_int(h, "SELECT count(*) FROM layer_summary a JOIN layer_summary b "
                              "USING (layer) WHERE a.run_id = 1 AND b.run_id = 2"), 3);
    for (int run = 1; run <= 2; run++) {
        zf_db_dead *d;
        int nd;
        cr_assert_eq(zf_db_dead_units(db, run, NULL, 0, &d, &nd), ZF_OK);
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT sum(dead_units) FROM layer_summary WHERE run_id = %d", run);
        cr_assert_eq(query_int(h, sql), nd, "run %d", run);
        int planted = 0;
        for (int i = 0; i < nd; i++)
            planted += (!strcmp(d[i].layer, "conv1") && d[i].unit == 2) ||
                       (!strcmp(d[i].layer, "conv2") && d[i].unit == 5) ||
                       (!strcmp(d[i].layer, "fc3") && d[i].unit == 1);
        if (run == 2)
            cr_assert_eq(planted, 3);
        free(d);
    }
    zf_db_close(db);
    zf_net_free(a);
    zf_net_free(b);
}

Test(scan, image_lists_keep_their_order_and_resolve_relative_paths)
{
    char dir[2048], imgs[4096];
    image_folder(dir, imgs, "scan_list", 4, 77, 0);
    FILE *f = fopen(path_in(dir, "list.txt"), "w");
    fprintf(f, "# a comment\nimages/img_003.png\n\n%s/img_000.jpg\r\nimages/missing.jpg\n", imgs);
    fclose(f);
    char **paths;
    int64_t n;
    cr_assert_eq(zf_db_scan_list(path_in(dir, "list.txt"), &paths, &n), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(n, 3);
    char want[8192], real[4096];
    cr_assert_not_null(realpath(dir, real));
    snprintf(want, sizeof want, "%s/images/img_003.png", real);
    cr_assert_str_eq(paths[0], want);
    snprintf(want, sizeof want, "%s/img_000.jpg", imgs);
    cr_assert_str_eq(paths[1], want);
    snprintf(want, sizeof want, "%s/images/missing.jpg", real);
    cr_assert_str_eq(paths[2], want);
    zf_db *db = open_db(path_in(dir, "l.db"));
    zf_net *net = toy_net(3, 0);
    zf_scan_opts o = {.top_k = 2, .batch = 2};
    zf_scan_result res;
    cr_assert_eq(zf_db_scan(db, net, (const char *const *)paths, n, &o, &res), ZF_OK, "%s",
                 zf_last_error());
    cr_assert(res.n_ok == 2 && res.n_failed == 1);
    cr_assert_eq(query_int(zf_db_handle(db), "SELECT count(*) FROM images WHERE status = 'error' "
                                             "AND sha256 IS NULL AND error LIKE '%missing.jpg%'"), 1);
    zf_db_scan_list_free(paths, n);
    cr_assert_eq(zf_db_scan_list(path_in(dir, "nothing-here"), &paths, &n), ZF_ERR_IO);
    zf_db_close(db);
    zf_net_free(net);
}

/* ---------------------------------------------------------------- a real architecture */

Test(scan, alexnet_scan_of_two_photos_fills_every_layer)
{
    char dir[2048], imgs[4096];
    image_folder(dir, imgs, "scan_alexnet", 0, 0, 0);
    uint8_t *rgb = picture(301, 257, 5);
    cr_assert_eq(tu_write_jpeg(path_in(imgs, "a.jpg"), 301, 257, rgb, 90), 0);
    free(rgb);
    rgb = picture(240, 320, 6);
    cr_assert_eq(tu_write_png(path_in(imgs, "b.png"), 240, 320, rgb), 0);
    free(rgb);
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("alexnet", &net), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_init_random(net, 1), ZF_OK, "%s", zf_last_error());
    zf_db *db = open_db(path_in(dir, "a.db"));
    zf_scan_result res;
    cr_assert_eq(scan_dir(db, net, imgs, 2, 2, 9, &res), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(res.n_ok, 2);
    sqlite3 *h = zf_db_handle(db);
    cr_assert_eq(query_int(h, "SELECT group_concat(layer) = 'conv1,conv2,conv3,conv4,conv5,fc6,fc7' "
                              "FROM (SELECT layer FROM run_layers ORDER BY position)"), 1);
    cr_assert_eq(query_int(h, "SELECT count(*) FROM unit_stats WHERE images = 2"),
                 64 + 192 + 384 + 256 + 256 + 4096 + 4096);
    cr_assert_eq(query_int(h, "SELECT count(*) FROM topk"), 2 * (64 + 192 + 384 + 256 + 256 + 4096 + 4096));
    cr_assert_eq(query_int(h, "SELECT count(*) FROM unit_stats WHERE layer = 'conv5' AND positions = 2 * 169"), 256);
    /* a conv5 unit against the direct computation on the same batch */
    char **paths;
    int64_t n;
    cr_assert_eq(zf_db_scan_list(imgs, &paths, &n), ZF_OK);
    int ok[2];
    const char *names[] = {"conv5"};
    ref_layer *R = direct(net, paths, n, 2, names, 1, ok);
    for (int c = 0; c < 256; c += 51) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT max = %.17g AND active_images = %lld AND positive_positions = %lld "
                 "FROM unit_stats WHERE layer = 'conv5' AND unit = %d",
                 R[0].u[c].max, (long long)R[0].u[c].active, (long long)R[0].u[c].positive, c);
        cr_assert_eq(query_int(h, sql), 1, "conv5 unit %d", c);
    }
    /* conv5 position (6, 6): conv4 5..7, conv3 4..8, pool2 3..9, conv2 6..20, pool1 4..22,
     * conv1 8..46, input 4*8-2 .. 4*46-2+10 = 30..192 (163 pixels) */
    zf_box b;
    cr_assert_eq(zf_db_receptive_field(net, zf_net_find(net, "conv5"), 6, 6, &b), ZF_OK);
    cr_assert(b.x0 == 30 && b.x1 == 193 && b.y0 == 30 && b.y1 == 193, "box %d-%d", b.x0, b.x1);
    direct_free(R, 1);
    zf_db_scan_list_free(paths, n);
    zf_db_close(db);
    zf_net_free(net);
}

/* A grey net (one input channel, order grey) scans colour and grey files alike: each becomes its
 * luma plane, and every number and box matches the direct computation on those planes. */
Test(scan, grey_net_scans_the_luma_of_every_image)
{
    char dir[2048], imgs[4096];
    image_folder(dir, imgs, "scan_grey", 9, 41, 0);
    zf_net *net = toy_net_c(8, 0, 1);
    zf_db *db = open_db(path_in(dir, "g.db"));
    zf_scan_result res;
    cr_assert_eq(scan_dir(db, net, imgs, 4, 8, 3, &res), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(res.n_ok, 9);
    char **paths;
    int64_t n;
    cr_assert_eq(zf_db_scan_list(imgs, &paths, &n), ZF_OK);
    int *ok = calloc((size_t)n, sizeof *ok);
    ref_layer *R = direct(net, paths, n, 4, toy_layers, 3, ok);
    check_against_direct(db, res.run_id, R, 3, paths, 3);
    /* The model row says grey, and the grey net hashes apart from the same net fed otherwise. */
    cr_assert_eq(query_int(zf_db_handle(db), "SELECT count(*) FROM models WHERE input = '1x29x31' AND "
                                             "preproc LIKE 'grey scale=1 mean=0.3 std=0.35 %'"),
                 1, "the model row does not record the grey preprocessing");
    char grey_hash[65], rgb_hash[65];
    cr_assert_eq(zf_db_model_hash(net, grey_hash), ZF_OK);
    net->pre.order = ZF_COLOR_RGB;
    cr_assert_eq(zf_db_model_hash(net, rgb_hash), ZF_OK);
    cr_expect_str_neq(grey_hash, rgb_hash);
    /* One channel with a colour order makes 3 planes of 1: refused, saying how to fix it. */
    zf_db *db2 = open_db(path_in(dir, "bad.db"));
    cr_expect_eq(scan_dir(db2, net, imgs, 4, 8, 3, &res), ZF_ERR_UNSUPPORTED);
    cr_expect(strstr(zf_last_error(), "order=grey"), "message: %s", zf_last_error());
    zf_db_close(db2);
    direct_free(R, 3);
    free(ok);
    zf_db_scan_list_free(paths, n);
    zf_db_close(db);
    zf_net_free(net);
}

/* ---------------------------------------------------------------- the commands */

static const char *zfviz(void)
{
    const char *p = tu_build("tools/zfviz");
    return access(p, X_OK) == 0 ? p : NULL;
}

Test(scan, zfviz_scan_dead_topk_and_runs_work_end_to_end)
{
    const char *bin = zfviz();
    if (!bin)
        cr_skip_test("tools/zfviz is not built");
    char dir[2048], imgs[4096];
    image_folder(dir, imgs, "scan_cli", 3, 99, 0);
    char db[4096];
    snprintf(db, sizeof db, "%s", path_in(dir, "c.db"));
    cr_assert_eq(tu_system("'%s' scan --arch zfnet --weights random:3 --images '%s' --db '%s' "
                           "--layers conv1,relu5 --top 2 --batch 2 > '%s' 2> '%s'",
                           bin, imgs, db, path_in(dir, "scan.out"), path_in(dir, "scan.err")),
                 0);
    /* CSV: four fields a line and nothing else */
    cr_assert_eq(tu_system("'%s' dead --db '%s' --csv --min-active 0.9 > '%s'", bin, db,
                           path_in(dir, "dead.csv")), 0);
    cr_assert_eq(tu_system("grep -v -E '^(conv1|conv5),[0-9]+,[-+.0-9e]+,[-+.0-9e]+$' '%s'",
                           path_in(dir, "dead.csv")), 1, "a line of the CSV is malformed");
    zf_db *h = NULL;
    zf_db_opts o = {ZF_DB_READONLY, 5, NULL, NULL};
    cr_assert_eq(zf_db_open(db, &o, &h), ZF_OK, "%s", zf_last_error());
    zf_db_dead *d;
    int nd;
    cr_assert_eq(zf_db_dead_units(h, 1, NULL, 0.9, &d, &nd), ZF_OK);
    free(d);
    zf_db_close(h);
    cr_assert_eq(tu_system("test $(wc -l < '%s') -eq %d", path_in(dir, "dead.csv"), nd), 0);
    cr_assert_eq(tu_system("'%s' topk --db '%s' --layer conv5 --unit 7 > '%s'", bin, db,
                           path_in(dir, "topk.out")), 0);
    cr_assert_eq(tu_system("grep -c 'img_00' '%s' | grep -qx 2", path_in(dir, "topk.out")), 0);
    cr_assert_eq(tu_system("'%s' topk --db '%s' --layer conv5 --unit 7 --deconv > /dev/null", bin,
                           db), 0);
    cr_assert_eq(tu_system("sqlite3 '%s' \"SELECT count(*) FROM renderings WHERE layer = 'conv5' "
                           "AND unit = 7 AND length(png) > 8\" | grep -qx 4", db), 0);
    cr_assert_eq(tu_system("'%s' runs --db '%s' | grep -q 'run 1: zfnet'", bin, db), 0);
    /* bad input: one line on stderr, non-zero exit */
    cr_assert_neq(tu_system("'%s' dead --db '%s' --layer conv9 2> '%s'", bin, db,
                            path_in(dir, "bad.err")), 0);
    cr_assert_eq(tu_system("test $(wc -l < '%s') -eq 1 && grep -q conv9 '%s'",
                           path_in(dir, "bad.err"), path_in(dir, "bad.err")), 0);
    cr_assert_neq(tu_system("'%s' scan --arch zfnet --images '%s' 2> /dev/null", bin, imgs), 0);
    cr_assert_neq(tu_system("'%s' topk --db '%s' --layer conv5 --unit 9999 2> /dev/null", bin, db), 0);
}

/* Decodes a stored rendering (PNG) as RGB. */
static uint8_t *rendering_rgb(zf_db *db, int64_t id, int *w, int *h)
{
    void *png = NULL;
    size_t len = 0;
    cr_assert_eq(zf_db_rendering_png(db, id, &png, &len), ZF_OK, "%s", zf_last_error());
    tu_rgb im = tu_png_decode(png, len);
    *w = im.w;
    *h = im.h;
    free(png);
    return im.px;
}

/* The renderings zfviz topk --deconv stores for a grey mini net: the input patch is the image's
 * own grey pixels under the receptive field, the projection the deconvnet's one plane mapped to
 * grey (zero mid-grey, the largest |value| of the crop 0 or 255). */
Test(scan, zfviz_topk_of_a_grey_mini_net_stores_grey_crops)
{
    const char *bin = zfviz();
    if (!bin)
        cr_skip_test("tools/zfviz is not built");
    char dir[2048], imgs[4096];
    image_folder(dir, imgs, "scan_cli_grey", 0, 0, 0);
    enum { N = 3, S = 112 };
    uint8_t *grey[N];
    for (int i = 0; i < N; i++) {
        /* 112 x 112 (the net's input: taken as is) grey pictures, stored as RGB PNGs */
        uint8_t *rgb = picture(S, S, 70 + (uint64_t)i);
        grey[i] = malloc(S * S);
        for (int p = 0; p < S * S; p++) {
            grey[i][p] = (uint8_t)((rgb[p * 3] + rgb[p * 3 + 1] + rgb[p * 3 + 2]) / 3);
            memset(rgb + p * 3, grey[i][p], 3);
        }
        char name[32];
        snprintf(name, sizeof name, "g%d.png", i);
        cr_assert_eq(tu_write_png(path_in(imgs, name), S, S, rgb), 0, "%s", name);
        free(rgb);
    }
    char db[4096];
    snprintf(db, sizeof db, "%s", path_in(dir, "m.db"));
    cr_assert_eq(tu_system("'%s' scan --arch zfnet-mini --weights random:2 --images '%s' --db '%s' "
                           "--layers conv1,conv5 > /dev/null 2> '%s'",
                           bin, imgs, db, path_in(dir, "scan.err")),
                 0, "zfviz scan of a grey net failed");
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("zfnet-mini", &net), ZF_OK);
    cr_assert_eq(zf_net_load_weights(net, "random:2"), ZF_OK, "%s", zf_last_error());
    const char *layers[2] = {"conv1", "conv5"};
    const int units[2] = {3, 5};
    for (int li = 0; li < 2; li++) {
        cr_assert_eq(tu_system("'%s' topk --db '%s' --layer %s --unit %d --deconv > /dev/null 2>&1", bin, db,
                               layers[li], units[li]),
                     0, "zfviz topk --deconv failed on %s", layers[li]);
        zf_db *h = NULL;
        zf_db_opts o = {ZF_DB_READONLY, 5, NULL, NULL};
        cr_assert_eq(zf_db_open(db, &o, &h), ZF_OK, "%s", zf_last_error());
        zf_db_example *ex = NULL;
        int n = 0;
        cr_assert_eq(zf_db_topk_get(h, 1, layers[li], units[li], &ex, &n), ZF_OK, "%s", zf_last_error());
        cr_assert_eq(n, N);
        const int conv = zf_net_find(net, layers[li]);
        /* The projections, here: the examples' files preprocessed by the engine (its luma, bit for
         * bit, in the batch topk runs, so near-tied max-pool switches fall as they did there),
         * forward, one deconv. */
        float *in = malloc(sizeof(float) * N * S * S), *rec = malloc(sizeof(float) * N * S * S);
        int ch[N], ys[N], xs[N], img[N];
        cr_assert(in && rec);
        for (int r = 0; r < n; r++) {
            img[r] = ex[r].path[strlen(ex[r].path) - 5] - '0'; /* .../gK.png */
            zf_image *im = NULL;
            cr_assert_eq(zf_image_load(ex[r].path, &im), ZF_OK, "%s", zf_last_error());
            cr_assert_eq(zf_image_to_input(in + (size_t)r * S * S, im, &net->pre, S, S), ZF_OK);
            zf_image_free(im);
            ch[r] = units[li];
            ys[r] = ex[r].y;
            xs[r] = ex[r].x;
        }
        zf_deconv_req req = {conv, ZF_DECONV_UNIT, 0, ch, ys, xs};
        cr_assert_eq(zf_net_reserve(net, n), ZF_OK);
        cr_assert_eq(zf_net_forward(net, in, n), ZF_OK, "%s", zf_last_error());
        cr_assert_eq(zf_net_deconv(net, rec, n, &req), ZF_OK, "%s", zf_last_error());
        for (int r = 0; r < n; r++) {
            const zf_db_example *e = &ex[r];
            zf_box b = e->box, want;
            cr_assert_eq(zf_db_receptive_field(net, conv, e->y, e->x, &want), ZF_OK);
            cr_assert(b.x0 == want.x0 && b.y0 == want.y0 && b.x1 == want.x1 && b.y1 == want.y1);
            const int bw = b.x1 - b.x0, bh = b.y1 - b.y0;
            char sql[512];
            snprintf(sql, sizeof sql,
                     "SELECT id FROM renderings WHERE layer = '%s' AND unit = %d AND rank = %d AND kind = 'patch'",
                     layers[li], units[li], e->rank);
            int pw, ph;
            uint8_t *px = rendering_rgb(h, query_int(zf_db_handle(h), sql), &pw, &ph);
            cr_assert(pw == bw && ph == bh, "%s rank %d: patch %dx%d, box %dx%d", layers[li], e->rank, pw, ph, bw, bh);
            for (int y = 0; y < bh; y++)
                for (int x = 0; x < bw; x++) {
                    const uint8_t *q = px + ((size_t)y * bw + x) * 3;
                    uint8_t g = grey[img[r]][(b.y0 + y) * S + b.x0 + x];
                    cr_assert(q[0] == g && q[1] == g && q[2] == g,
                              "%s rank %d patch pixel (%d, %d): (%d, %d, %d), image %d", layers[li], e->rank, y, x,
                              q[0], q[1], q[2], g);
                }
            free(px);

            const float *rc = rec + (size_t)r * S * S;
            double amax = 0;
            for (int y = b.y0; y < b.y1; y++)
                for (int x = b.x0; x < b.x1; x++)
                    amax = fmax(amax, fabs(rc[y * S + x]));
            snprintf(sql, sizeof sql,
                     "SELECT id FROM renderings WHERE layer = '%s' AND unit = %d AND rank = %d AND kind = 'deconv'",
                     layers[li], units[li], e->rank);
            px = rendering_rgb(h, query_int(zf_db_handle(h), sql), &pw, &ph);
            cr_assert(pw == bw && ph == bh);
            for (int y = 0; y < bh; y++)
                for (int x = 0; x < bw; x++) {
                    const uint8_t *q = px + ((size_t)y * bw + x) * 3;
                    double v = amax > 0 ? 127.5 + 127.5 * rc[(b.y0 + y) * S + b.x0 + x] / amax : 127.5;
                    cr_assert(q[0] == q[1] && q[1] == q[2] && fabs(q[0] - v) <= 0.5 + 1e-3,
                              "%s rank %d projection pixel (%d, %d): (%d, %d, %d), expected grey %.3f", layers[li],
                              e->rank, y, x, q[0], q[1], q[2], v);
                }
            free(px);
        }
        free(in);
        free(rec);
        free(ex);
        zf_db_close(h);
    }
    zf_net_free(net);
    for (int i = 0; i < N; i++)
        free(grey[i]);
}

/* ---------------------------------------------------------------- out of memory */

Test(scan, every_allocation_that_fails_in_a_scan_is_a_clean_error)
{
    char dir[2048], imgs[4096], sub[8192], path[4096];
    tu_tmpdir_sub(dir, imgs, "scan_nomem", "images");
    for (int c = 0; c < 2; c++) { /* two class folders, so the class statistics are tried too */
        cr_assert_lt(snprintf(sub, sizeof sub, "%s/%c", imgs, 'a' + c), (int)sizeof sub);
        mkdir(sub, 0755);
        make_images(sub, 3, 70 + (uint64_t)c, 0);
    }
    zf_net *net = toy_net(5, 0);
    char **paths;
    int64_t n;
    cr_assert_eq(zf_db_scan_list(imgs, &paths, &n), ZF_OK);
    zf_scan_opts o = {.top_k = 2, .batch = 2, .chunk = 2, .images_arg = imgs, .weights = "test"};
    /* the n-th allocation fails, for every n until none is left to fail: the scan reports it
     * (an image's decoding too: lack of memory is not a bad image), and frees the rest */
    char empty[4096];
    size_t len;
    snprintf(empty, sizeof empty, "%s/empty.db", dir);
    snprintf(path, sizeof path, "%s/nomem.db", dir);
    zf_db_close(open_db(empty)); /* the schema made once; each try starts from a copy */
    void *bytes = tu_slurp(empty, &len);
    int64_t k = 0, errors = 0;
    for (;; k++) {
        cr_assert_lt(k, 100000);
        tu_write_file(path, bytes, len);
        zf_db *db = open_db(path);
        zf_scan_result res;
        zf_alloc_fail_after(k);
        zf_status st = zf_db_scan(db, net, (const char *const *)paths, n, &o, &res);
        int hit = zf_alloc_fault_hit();
        zf_alloc_fail_after(-1);
        zf_db_close(db);
        unlink(path);
        if (!hit) {
            cr_assert_eq(st, ZF_OK, "%s", zf_last_error());
            cr_assert_eq(res.n_ok, 6);
            cr_assert_eq(res.n_classes, 2);
            break;
        }
        cr_assert_neq(st, ZF_OK, "allocation %lld failed, yet the scan went on (%lld ok, %lld "
                      "failed)", (long long)k, (long long)res.n_ok, (long long)res.n_failed);
        errors++;
        cr_assert(strstr(zf_last_error(), "out of memory") ||
                  strstr(zf_last_error(), "cannot allocate"),
                  "allocation %lld: %s", (long long)k, zf_last_error());
    }
    cr_log_info("scan: %lld allocations made to fail, %lld failed the scan", (long long)k,
                (long long)errors);
    free(bytes);
    zf_db_scan_list_free(paths, n);
    zf_net_free(net);
}
