/* zfviz evolve (Zeiler & Fergus Fig. 4) on a run of zfviz train over a tiny Fashion-MNIST-shaped
 * set: each unit's strongest activation at each snapshot against a naive scan (one forward per
 * image, the snapshot's parameters read from SQLite here, row by row), the snapshots against the
 * checkpoints of those epochs, and the refusals (a snapshot of filters only, an epoch not stored,
 * a layer the net lacks). */
#include <criterion/criterion.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/dataset.h"
#include "zf/net.h"

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* An IDX pair of n 28x28 images (bright bars on noise, the bar's place set by the class) under the
 * Fashion-MNIST names for `split` (train or t10k). */
static void write_idx(const char dir[4200], const char *split, int n, uint64_t seed)
{
    size_t isz = 16 + (size_t)n * 784, lsz = 8 + (size_t)n;
    uint8_t *im = calloc(isz, 1), *lb = calloc(lsz, 1);
    put_be32(im, 0x803), put_be32(im + 4, (uint32_t)n), put_be32(im + 8, 28), put_be32(im + 12, 28);
    put_be32(lb, 0x801), put_be32(lb + 4, (uint32_t)n);
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        int k = i % 10;
        lb[8 + i] = (uint8_t)k;
        uint8_t *p = im + 16 + (size_t)i * 784;
        for (int j = 0; j < 784; j++)
            p[j] = (uint8_t)(tu_mix(&s) >> 58);
        for (int y = 3; y < 25; y++)
            for (int x = 2 + 2 * k; x < 5 + 2 * k; x++)
                p[y * 28 + x] = (uint8_t)(150 + (tu_mix(&s) >> 58));
    }
    char path[4300];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, split);
    tu_write_file(path, im, isz);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, split);
    tu_write_file(path, lb, lsz);
    free(im);
    free(lb);
}

static const char *zfviz(void) { return tu_build("tools/zfviz"); }

/* dir/data holds the set; dir/m.safetensors the run: epoch 1 (its checkpoint copied to e1.ckpt),
 * then resumed to epoch 2, snapshots after both. */
static void make_run(const char *dir, int epochs)
{
    if (access(zfviz(), X_OK))
        cr_skip_test("no zfviz program");
    char data[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    cr_assert_eq(tu_system("mkdir -p '%s'", data), 0);
    write_idx(data, "train", 48, 1);
    write_idx(data, "t10k", 30, 2);
    cr_assert_eq(tu_system("cd '%s' && ZFVIZ_FASHION_MNIST=data '%s' train --arch alexnet-mini --data fashion-mnist "
                           "--val 0 --epochs 1 --batch 16 --snapshots 1,2 --out m.safetensors >train.out 2>&1 && "
                           "cp m.safetensors.ckpt e1.ckpt",
                           dir, zfviz()),
                 0, "zfviz train failed (see %s/train.out)", dir);
    if (epochs > 1)
        cr_assert_eq(tu_system("cd '%s' && ZFVIZ_FASHION_MNIST=data '%s' train --arch alexnet-mini --data "
                               "fashion-mnist --val 0 --epochs 2 --batch 16 --snapshots 1,2 --out m.safetensors "
                               "--resume >>train.out 2>&1",
                               dir, zfviz()),
                     0, "zfviz train --resume failed (see %s/train.out)", dir);
}

/* Every row of the snapshot of `epoch` into net, by name ("conv3" its weights, "conv3.bias" its
 * biases); returns how many floats were filled. */
static int64_t load_snapshot(const char *db_path, int epoch, zf_net *net)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT layer, weights FROM train_snapshots WHERE epoch = ?", -1, &st, NULL),
                 SQLITE_OK);
    sqlite3_bind_int(st, 1, epoch);
    int64_t filled = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char name[64];
        snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(st, 0));
        char *dot = strstr(name, ".bias");
        if (dot)
            *dot = 0;
        int li = zf_net_find(net, name);
        cr_assert(li >= 0, "snapshot row %s names no layer", name);
        zf_layer *l = &net->layers[li];
        float *to = dot ? l->bias : l->weight;
        int64_t count = dot ? l->bias_count : l->weight_count;
        cr_assert_eq(sqlite3_column_bytes(st, 1), 4 * count, "%s%s: %d bytes for %lld floats", name,
                     dot ? ".bias" : "", sqlite3_column_bytes(st, 1), (long long)count);
        memcpy(to, sqlite3_column_blob(st, 1), 4 * (size_t)count);
        filled += count;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return filled;
}

static void expect_same_params(const zf_net *a, const zf_net *b, const char *what)
{
    int64_t diff = 0, first = -1;
    for (int64_t i = 0; i < a->n_params; i++)
        if (a->params[i] != b->params[i] && diff++ == 0)
            first = i;
    cr_expect_eq(diff, 0, "%s: %lld of %lld parameters differ, first at %lld", what, (long long)diff,
                 (long long)a->n_params, (long long)first);
}

typedef struct found {
    int unit, epoch, y, x;
    long long image;
    double value;
} found;

Test(evolve, strongest_activation_equals_a_naive_scan_with_the_snapshot_loaded_independently)
{
    const char *dir = tu_tmpdir("evolve_scan");
    make_run(dir, 2);
    cr_assert_eq(tu_system("cd '%s' && ZFVIZ_FASHION_MNIST=data '%s' evolve --db m.sqlite --layer conv3 --units 5,17 "
                           "--limit 0 --csv --out fig.png >out.csv 2>err",
                           dir, zfviz()),
                 0, "zfviz evolve failed");
    char path[4200];
    snprintf(path, sizeof path, "%s/out.csv", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char line[512];
    cr_assert(fgets(line, sizeof line, f));
    cr_expect_str_eq(line, "layer,unit,epoch,image,y,x,activation\n");
    found got[8];
    int n = 0;
    while (n < 8 && fgets(line, sizeof line, f)) {
        found *g = &got[n++];
        cr_assert_eq(sscanf(line, "conv3,%d,%d,%lld,%d,%d,%lf", &g->unit, &g->epoch, &g->image, &g->y, &g->x, &g->value),
                     6, "%s", line);
    }
    fclose(f);
    cr_assert_eq(n, 4, "2 units x 2 snapshots, got %d lines", n);

    /* the test images, prepared as the net takes them */
    zf_dataset *ds;
    char im[4200], lb[4200];
    snprintf(im, sizeof im, "%s/data/t10k-images-idx3-ubyte", dir);
    snprintf(lb, sizeof lb, "%s/data/t10k-labels-idx1-ubyte", dir);
    cr_assert_eq(zf_dataset_load_idx(im, lb, &ds), ZF_OK, "%s", zf_last_error());
    snprintf(path, sizeof path, "%s/m.sqlite", dir);
    for (int epoch = 1; epoch <= 2; epoch++) {
        zf_net *net, *ck;
        cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
        int64_t filled = load_snapshot(path, epoch, net);
        /* (net->n_params also counts the gaps that align each tensor) */
        cr_assert_eq(filled, zf_net_param_count(net), "epoch %d: the snapshot has %lld of %lld parameters", epoch,
                     (long long)filled, (long long)zf_net_param_count(net));
        /* the snapshot is the checkpoint written at the end of that epoch */
        cr_assert_eq(zf_net_new_builtin("alexnet-mini", &ck), ZF_OK);
        float *mom = malloc(sizeof(float) * (size_t)ck->n_params);
        char ckp[4200];
        snprintf(ckp, sizeof ckp, "%s/%s", dir, epoch == 1 ? "e1.ckpt" : "m.safetensors.ckpt");
        cr_assert_eq(zf_net_load_safetensors_ex(ck, ckp, mom), ZF_OK, "%s", zf_last_error());
        expect_same_params(net, ck, epoch == 1 ? "epoch 1 vs e1.ckpt" : "epoch 2 vs the last checkpoint");
        free(mom);
        zf_net_free(ck);
        /* naive scan: one image at a time, the rectified map of conv3 (relu3) */
        int relu3 = zf_net_find(net, "relu3");
        const zf_layer *l = &net->layers[relu3];
        float in[112 * 112];
        cr_assert_eq(zf_net_reserve(net, 1), ZF_OK);
        for (int k = 0; k < n; k++) {
            if (got[k].epoch != epoch)
                continue;
            double best = 0;
            long long bi = 0;
            int by = 0, bx = 0;
            for (int64_t i = 0; i < ds->n; i++) {
                cr_assert_eq(zf_dataset_batch(in, NULL, ds, &i, 1, net, NULL, 0), ZF_OK);
                cr_assert_eq(zf_net_forward(net, in, 1), ZF_OK);
                const float *map = net->acts[relu3] + (size_t)got[k].unit * l->out_h * l->out_w;
                for (int y = 0; y < l->out_h; y++)
                    for (int x = 0; x < l->out_w; x++)
                        if (map[y * l->out_w + x] > best) {
                            best = map[y * l->out_w + x];
                            bi = i, by = y, bx = x;
                        }
            }
            cr_expect(best > 0, "unit %d never fires at epoch %d: a weak test", got[k].unit, epoch);
            cr_expect(got[k].image == bi && got[k].y == by && got[k].x == bx,
                      "unit %d epoch %d: evolve found image %lld at (%d, %d), the scan image %lld at (%d, %d)",
                      got[k].unit, epoch, got[k].image, got[k].y, got[k].x, bi, by, bx);
            cr_expect(fabs(got[k].value - best) <= 1e-5 * best, "unit %d epoch %d: %.9g, the scan %.9g", got[k].unit,
                      epoch, got[k].value, best);
        }
        zf_net_free(net);
    }
    /* epochs 1 and 2 differ: the comparison above saw two different nets */
    zf_net *a, *b;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &a), ZF_OK);
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &b), ZF_OK);
    load_snapshot(path, 1, a);
    load_snapshot(path, 2, b);
    int64_t moved = 0;
    for (int64_t i = 0; i < a->n_params; i++)
        moved += a->params[i] != b->params[i];
    cr_expect(moved > a->n_params / 2);
    zf_net_free(a);
    zf_net_free(b);
    zf_dataset_free(ds);
    /* the figure: a PNG, two rows of two cells */
    snprintf(path, sizeof path, "%s/fig.png", dir);
    tu_rgb fig = tu_png_read(path);
    cr_expect(fig.w > 2 * 64 && fig.h > 2 * 64, "figure %dx%d", fig.w, fig.h);
    free(fig.px);
}

static char *read_text(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = tu_read_file(path, NULL);
    cr_assert(s, "cannot read %s", path);
    return s;
}

static int one_line(const char *s) { return *s && strchr(s, '\n') == s + strlen(s) - 1; }

Test(evolve, filters_only_snapshots_and_bad_requests_are_refused_in_one_line)
{
    const char *dir = tu_tmpdir("evolve_refuse");
    make_run(dir, 1);
    /* a snapshot as zfviz train wrote it before biases and fc layers were recorded */
    char path[4200];
    snprintf(path, sizeof path, "%s/m.sqlite", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "DELETE FROM train_snapshots WHERE layer LIKE '%.bias' OR layer LIKE 'fc%'", NULL,
                              NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    /* run from another folder: the run's model (recorded as m.safetensors) is found beside its database */
    cr_expect_eq(tu_system("cd / && ZFVIZ_FASHION_MNIST='%s/data' '%s' evolve --db '%s/m.sqlite' --layer conv2 "
                           "--out '%s/f.png' >'%s/out' 2>'%s/err'",
                           dir, zfviz(), dir, dir, dir, dir),
                 1);
    char *err = read_text(dir, "err");
    cr_expect(one_line(err) && strstr(err, "conv filters only") && strstr(err, "m.sqlite"), "%s", err);
    free(err);
    snprintf(path, sizeof path, "%s/f.png", dir);
    cr_expect_neq(access(path, F_OK), 0, "no figure after a refusal");
    cr_expect_eq(tu_system("cd '%s' && ZFVIZ_FASHION_MNIST=data '%s' evolve --db m.sqlite --layer conv2 --epochs 3 "
                           "--out f.png >out 2>err",
                           dir, zfviz()),
                 1);
    err = read_text(dir, "err");
    cr_expect(one_line(err) && strstr(err, "epoch 3"), "%s", err);
    free(err);
    cr_expect_eq(tu_system("cd '%s' && ZFVIZ_FASHION_MNIST=data '%s' evolve --db m.sqlite --layer fc9 --out f.png "
                           ">out 2>err",
                           dir, zfviz()),
                 2);
    err = read_text(dir, "err");
    cr_expect(one_line(err) && strstr(err, "fc9"), "%s", err);
    free(err);
    cr_expect_eq(tu_system("cd '%s' && '%s' evolve --db m.sqlite --layer conv2 --units 64 --out f.png >out 2>err",
                           dir, zfviz()),
                 2);
    err = read_text(dir, "err");
    cr_expect(one_line(err) && strstr(err, "64"), "%s", err);
    free(err);
}
