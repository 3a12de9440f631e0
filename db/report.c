/* Reading a scan back: runs, the dead-unit report, a unit's top-k; and storing renderings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

zf_status zf_db_run_get(zf_db *db, int64_t id, zf_db_run *r)
{
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st;
    zf_status s = zf_db_get_row(db, &st,
                                "SELECT id, model_id, images, layers, top_k, batch, chunk, "
                                "n_images, next_seq, n_ok, n_failed, finished IS NOT NULL, "
                                "started, updated, list_sha256, ifnull(list_n, n_images), seq0, "
                                "ifnull(shard, ''), ifnull(classes, -1) FROM runs WHERE id = ?",
                                id, "run");
    if (s)
        return s;
    r->id = sqlite3_column_int64(st, 0);
    r->model_id = sqlite3_column_int64(st, 1);
    zf_db_column_text(st, 2, r->images, sizeof r->images);
    zf_db_column_text(st, 3, r->layers, sizeof r->layers);
    r->top_k = sqlite3_column_int(st, 4);
    r->batch = sqlite3_column_int(st, 5);
    r->chunk = sqlite3_column_int(st, 6);
    r->n_images = sqlite3_column_int64(st, 7);
    r->next_seq = sqlite3_column_int64(st, 8);
    r->n_ok = sqlite3_column_int64(st, 9);
    r->n_failed = sqlite3_column_int64(st, 10);
    r->complete = sqlite3_column_int(st, 11);
    zf_db_column_text(st, 12, r->started, sizeof r->started);
    zf_db_column_text(st, 13, r->updated, sizeof r->updated);
    zf_db_column_text(st, 14, r->list_sha256, sizeof r->list_sha256);
    r->list_n = sqlite3_column_int64(st, 15);
    r->seq0 = sqlite3_column_int64(st, 16);
    zf_db_column_text(st, 17, r->shard, sizeof r->shard);
    r->classes = sqlite3_column_int(st, 18);
    sqlite3_finalize(st);
    return ZF_OK;
}

zf_status zf_db_run_latest(zf_db *db, const char *layer, int64_t *id)
{
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare(db, &st,
                                "SELECT max(run_id) FROM run_layers WHERE ?1 IS NULL OR layer = ?1");
    if (s)
        return s;
    int row = 0;
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 1, layer));
    if ((s = zf_db_step(db, st, &row)))
        goto fail;
    if (!row || sqlite3_column_type(st, 0) == SQLITE_NULL) {
        s = layer ? zf_error(ZF_ERR_ARG, "%s: no scan covers layer %s", zf_db_path(db), layer)
                  : zf_error(ZF_ERR_ARG, "%s: no scans yet (run zfviz scan first)", zf_db_path(db));
        goto fail;
    }
    *id = sqlite3_column_int64(st, 0);
fail:
    sqlite3_finalize(st);
    return s;
}

zf_status zf_db_run_errors(zf_db *db, int64_t run,
                           void (*fn)(void *ctx, int64_t seq, const char *path, const char *error),
                           void *ctx)
{
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_id(db, &st,
                                   "SELECT r.seq, i.path, i.error FROM run_images r JOIN images i "
                                   "ON i.id = r.image_id WHERE r.run_id = ? AND i.status = 'error' "
                                   "ORDER BY r.seq",
                                   run);
    if (s)
        return s;
    int row = 0;
    while (!(s = zf_db_step(db, st, &row)) && row)
        fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
           (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    return s;
}

static void fill_id(sqlite3_stmt *st, void *e) { *(int64_t *)e = sqlite3_column_int64(st, 0); }

zf_status zf_db_runs(zf_db *db, void (*fn)(void *ctx, const zf_db_run *run, const zf_db_model *m),
                     void *ctx)
{
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare(db, &st, "SELECT id FROM runs ORDER BY id");
    if (s)
        return s;
    int n = 0;
    int64_t *ids = NULL;
    s = zf_db_rows(db, st, sizeof *ids, fill_id, (void **)&ids, &n);
    zf_db_run r;
    zf_db_model m;
    for (int i = 0; !s && i < n; i++)
        if (!(s = zf_db_run_get(db, ids[i], &r)) && !(s = zf_db_model_get(db, r.model_id, &m)))
            fn(ctx, &r, &m);
    free(ids);
    return s;
}

/* ZF_ERR_ARG naming the run's layers when `layer` is not one of them. */
static zf_status check_layer(zf_db *db, int64_t run, const char *layer)
{
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_unit(db, &st,
                                     "SELECT (SELECT count(*) FROM run_layers WHERE run_id = ?1 AND "
                                     "layer = ?2), (SELECT group_concat(layer, ', ') FROM (SELECT "
                                     "layer FROM run_layers WHERE run_id = ?1 ORDER BY position))",
                                     run, layer, -1);
    if (s)
        return s;
    int row = 0;
    if ((s = zf_db_step(db, st, &row)))
        goto fail;
    if (row && sqlite3_column_int(st, 0) == 0) {
        char have[512];
        zf_db_column_text(st, 1, have, sizeof have);
        s = zf_error(ZF_ERR_ARG, "%s: run %lld did not scan layer %s (it has: %s)", zf_db_path(db),
                     (long long)run, layer, *have ? have : "none");
    }
fail:
    sqlite3_finalize(st);
    return s;
}

static void fill_dead(sqlite3_stmt *st, void *elem)
{
    zf_db_dead *d = elem;
    zf_db_column_text(st, 0, d->layer, sizeof d->layer);
    d->unit = sqlite3_column_int(st, 1);
    d->active_fraction = sqlite3_column_double(st, 2);
    d->max_activation = sqlite3_column_double(st, 3);
}

zf_status zf_db_dead_units(zf_db *db, int64_t run, const char *layer, double min_active,
                           zf_db_dead **out, int *n)
{
    *out = NULL;
    *n = 0;
    zf_status s;
    if (layer && (s = check_layer(db, run, layer)))
        return s;
    sqlite3_stmt *st;
    /* A unit that never saw an image has no max and is not reported. */
    if ((s = zf_db_prepare_unit(db, &st,
                                "SELECT s.layer, s.unit, s.active_fraction, s.max "
                                "FROM unit_summary s JOIN run_layers l USING (run_id, layer) "
                                "WHERE s.run_id = ?1 AND (?2 IS NULL OR s.layer = ?2) AND "
                                "s.images > 0 AND (s.max <= 0 OR s.active_fraction < ?3) "
                                "ORDER BY l.position, s.unit",
                                run, layer, -1)))
        return s;
    if ((s = ZF_SQL(db, sqlite3_bind_double(st, 3, min_active)))) {
        sqlite3_finalize(st);
        return s;
    }
    return zf_db_rows(db, st, sizeof **out, fill_dead, (void **)out, n);
}

static void fill_example(sqlite3_stmt *st, void *elem)
{
    zf_db_example *e = elem;
    e->rank = sqlite3_column_int(st, 0);
    e->image_id = sqlite3_column_int64(st, 1);
    e->seq = sqlite3_column_int64(st, 2);
    zf_db_column_text(st, 3, e->path, sizeof e->path);
    e->score = sqlite3_column_double(st, 4);
    e->y = sqlite3_column_int(st, 5);
    e->x = sqlite3_column_int(st, 6);
    e->box.x0 = sqlite3_column_int(st, 7);
    e->box.y0 = sqlite3_column_int(st, 8);
    e->box.x1 = sqlite3_column_int(st, 9);
    e->box.y1 = sqlite3_column_int(st, 10);
    zf_db_column_text(st, 11, e->sha256, sizeof e->sha256);
}

zf_status zf_db_examples(zf_db *db, const char *view, int64_t run, const char *layer, int unit,
                         zf_db_example **out, int *n)
{
    char sql[512];
    sqlite3_stmt *st;
    *out = NULL;
    *n = 0;
    snprintf(sql, sizeof sql,
             "SELECT t.rank, t.image_id, t.seq, i.path, t.score, t.y, t.x, t.box_x0, t.box_y0, "
             "t.box_x1, t.box_y1, i.sha256 FROM %s t JOIN images i ON i.id = t.image_id "
             "WHERE t.run_id = ?1 AND t.layer = ?2 AND t.unit = ?3 ORDER BY t.rank",
             view);
    zf_status s = zf_db_prepare_unit(db, &st, sql, run, layer, unit);
    return s ? s : zf_db_rows(db, st, sizeof **out, fill_example, (void **)out, n);
}

zf_status zf_db_topk_get(zf_db *db, int64_t run, const char *layer, int unit, zf_db_example **out,
                         int *n)
{
    *out = NULL;
    *n = 0;
    zf_status s;
    if ((s = check_layer(db, run, layer)))
        return s;
    sqlite3_stmt *st;
    if ((s = zf_db_prepare_unit(db, &st,
                                "SELECT (SELECT units FROM run_layers WHERE run_id = ?1 AND "
                                "layer = ?2)",
                                run, layer, -1)))
        return s;
    int row = 0;
    s = zf_db_step(db, st, &row);
    int units = !s && row ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (s)
        return s;
    if (unit < 0 || unit >= units)
        return zf_error(ZF_ERR_ARG, "%s: %s has units 0-%d; no unit %d", zf_db_path(db), layer,
                        units - 1, unit);
    return zf_db_examples(db, "topk", run, layer, unit, out, n);
}

zf_status zf_db_rendering_put(zf_db *db, const zf_db_rendering *r, const void *png, size_t len,
                              int64_t *id)
{
    if (!r->kind || !r->description || !png || len == 0)
        return zf_error(ZF_ERR_ARG, "%s: a rendering needs a kind, a description and PNG bytes",
                        zf_db_path(db));
    zf_status s;
    int own = sqlite3_get_autocommit(zf_db_handle(db));
    if (own && (s = zf_db_begin(db)))
        return s;
    sqlite3_stmt *st = NULL;
    if ((s = zf_db_prepare(db, &st,
                           "DELETE FROM renderings WHERE run_id IS ?1 AND layer IS ?2 AND unit IS "
                           "?3 AND rank IS ?4 AND kind = ?5 AND image_id IS ?6")))
        goto fail;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            sqlite3_finalize(st);
            st = NULL;
            if ((s = zf_db_prepare(db, &st,
                                   "INSERT INTO renderings (run_id, layer, unit, rank, kind, "
                                   "image_id, description, width, height, png) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")))
                goto fail;
        }
        ZF_SQL_TRY(s, db, r->run_id > 0 ? sqlite3_bind_int64(st, 1, r->run_id) : sqlite3_bind_null(st, 1));
        ZF_SQL_TRY(s, db, zf_db_bind_text(st, 2, r->layer));
        ZF_SQL_TRY(s, db, r->unit >= 0 ? sqlite3_bind_int(st, 3, r->unit) : sqlite3_bind_null(st, 3));
        ZF_SQL_TRY(s, db, r->rank >= 0 ? sqlite3_bind_int(st, 4, r->rank) : sqlite3_bind_null(st, 4));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 5, r->kind, -1, SQLITE_STATIC));
        ZF_SQL_TRY(s, db, r->image_id > 0 ? sqlite3_bind_int64(st, 6, r->image_id)
                                          : sqlite3_bind_null(st, 6));
        if (pass == 1) {
            ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 7, r->description, -1, SQLITE_STATIC));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 8, r->width));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 9, r->height));
            ZF_SQL_TRY(s, db, sqlite3_bind_blob64(st, 10, png, len, SQLITE_STATIC));
        }
        if ((s = zf_db_step(db, st, NULL)))
            goto fail;
    }
    if (id)
        *id = sqlite3_last_insert_rowid(zf_db_handle(db));
    sqlite3_finalize(st);
    st = NULL;
    if (own && (s = zf_db_commit(db)))
        goto fail;
    return ZF_OK;
fail:
    sqlite3_finalize(st);
    if (own)
        zf_db_rollback(db);
    return s;
}

zf_status zf_db_rendering_png(zf_db *db, int64_t id, void **png, size_t *len)
{
    *png = NULL;
    *len = 0;
    sqlite3_stmt *st;
    zf_status s = zf_db_get_row(db, &st, "SELECT png FROM renderings WHERE id = ?", id, "rendering");
    if (s)
        return s;
    s = zf_db_column_copy(db, st, 0, png, len);
    sqlite3_finalize(st);
    return s;
}
