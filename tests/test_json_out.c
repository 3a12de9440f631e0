/* JSON that zfviz writes is JSON whatever the user's paths hold: `zfviz train` with its data and
 * output in folders whose names carry a quote, a backslash and a tab, its model file's header and
 * metadata and its SQLite run record parsed back with jansson, the exact path found in them. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *zfviz(void) { return tu_build("tools/zfviz"); }

/* The safetensors header of `path` (8-byte little-endian length, then JSON), parsed. */
static json_t *read_header(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    uint8_t len8[8];
    cr_assert_eq(fread(len8, 1, 8, f), 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | len8[i];
    cr_assert(n > 2 && n < (1u << 24), "header length %llu", (unsigned long long)n);
    char *h = malloc(n);
    cr_assert_eq(fread(h, 1, n, f), n);
    fclose(f);
    json_error_t err;
    json_t *root = json_loadb(h, n, 0, &err);
    cr_assert(root, "%s: header is not JSON: %s at %d", path, err.text, err.position);
    free(h);
    return root;
}

/* A metadata entry that is itself JSON, parsed. */
static json_t *meta_json(json_t *meta, const char *key)
{
    const char *text = json_string_value(json_object_get(meta, key));
    cr_assert(text, "no metadata entry %s", key);
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    cr_assert(v, "%s is not JSON (%s at %d): %s", key, err.text, err.position, text);
    return v;
}

Test(json_out, train_writes_valid_json_for_paths_with_quotes_and_backslashes)
{
    const char *dir = tu_tmpdir("json-out");
    char data[600], outdir[600], out[700], dbp[700], err[600];
    snprintf(data, sizeof data, "%s/da\"ta\\set\tx", dir);
    snprintf(outdir, sizeof outdir, "%s/o\"u\\t", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", outdir);
    snprintf(dbp, sizeof dbp, "%s/m.sqlite", outdir);
    snprintf(err, sizeof err, "%s/err", dir);
    /* two classes of two images each, from the dataset fixtures */
    cr_assert_eq(tu_system("mkdir -p '%s/ant' '%s/bee' && cp '%s' '%s' '%s/ant/' && cp '%s' '%s/bee/b1.png' && "
                           "cp '%s' '%s/bee/b2.png'",
                           data, data, tu_fixture("dataset/folder/ant/a1.jpeg"),
                           tu_fixture("dataset/folder/ant/a2.png"), data, tu_fixture("dataset/folder/bee/b1.png"),
                           data, tu_fixture("dataset/folder/bee/b1.png"), data),
                 0, "dataset fixtures missing (ctest runs tests/fixtures/gen_dataset.py)");
    int rc = tu_system("'%s' train --arch alexnet-mini --data '%s' --out '%s' --epochs 1 --batch 2 --val 2 "
                       "--snapshots 1 >/dev/null 2>'%s'",
                       zfviz(), data, out, err);
    cr_assert_eq(rc, 0, "zfviz train failed (stderr in %s)", err);

    json_t *hdr = read_header(out);
    json_t *meta = json_object_get(hdr, "__metadata__");
    cr_assert(json_is_object(meta));
    cr_expect_str_eq(json_string_value(json_object_get(meta, "zfviz.train.data")), data);

    json_t *config = meta_json(meta, "zfviz.train.config");
    cr_assert(json_is_object(config));
    cr_expect_str_eq(json_string_value(json_object_get(config, "data")), data, "config's data path");
    cr_expect_str_eq(json_string_value(json_object_get(config, "arch")), "alexnet-mini");
    cr_expect_eq(json_integer_value(json_object_get(config, "epochs")), 1);
    cr_expect_eq(json_integer_value(json_object_get(config, "batch")), 2);
    cr_expect_eq(json_integer_value(json_object_get(config, "train_images")), 2);
    cr_expect(json_is_number(json_object_get(config, "lr")) &&
                  json_number_value(json_object_get(config, "lr")) == 0.01,
              "lr");

    /* the curves: one row per epoch of [epoch, lr, train_loss, train_acc, val_loss, val_acc,
     * val_top5, seconds, images_per_s], numbers or null */
    json_t *hist = meta_json(meta, "zfviz.train.history");
    cr_assert(json_is_array(hist) && json_array_size(hist) == 1, "history has %zu rows", json_array_size(hist));
    json_t *row = json_array_get(hist, 0);
    cr_assert(json_is_array(row) && json_array_size(row) == 9);
    for (size_t i = 0; i < 9; i++) {
        json_t *v = json_array_get(row, i);
        cr_expect(json_is_number(v) || json_is_null(v), "history[0][%zu] is neither a number nor null", i);
    }
    cr_expect_eq(json_integer_value(json_array_get(row, 0)), 1);
    json_decref(hist);
    json_decref(config);
    json_decref(hdr);

    /* the run as the SQLite file records it */
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(dbp, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "%s", dbp);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT config FROM train_runs", -1, &st, NULL), SQLITE_OK,
                 "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    json_error_t jerr;
    const char *text = (const char *)sqlite3_column_text(st, 0);
    json_t *dbconf = json_loads(text ? text : "", 0, &jerr);
    cr_assert(dbconf, "train_runs.config is not JSON (%s): %s", jerr.text, text ? text : "(null)");
    cr_expect_str_eq(json_string_value(json_object_get(dbconf, "data")), data);
    json_decref(dbconf);
    sqlite3_finalize(st);
    sqlite3_close(db);
    tu_system("rm -rf '%s'", dir);
}
