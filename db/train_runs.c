/* Training runs in the store: zfviz train writes a row per epoch as it goes, so a plot or a report
 * can be drawn during or after a run, and a resumed run carries on in the same rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "zf/db_train.h"

zf_status zf_db_train_run_find(zf_db *db, const char *out, int64_t *run_id)
{
    *run_id = 0;
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare(db, &st, "SELECT max(id) FROM train_runs WHERE out = ?");
    if (s)
        return s;
    int row = 0;
    if (!(s = ZF_SQL(db, zf_db_bind_text(st, 1, out))) && !(s = zf_db_step(db, st, &row)) && row)
        *run_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return s;
}

zf_status zf_db_train_run(zf_db *db, const char *out, const char *arch, const char *data,
                          const char *config, int resume, int64_t *run_id)
{
    zf_status s;
    if (resume) {
        if ((s = zf_db_train_run_find(db, out, run_id)))
            return s;
        if (*run_id)
            return ZF_OK;
    }
    sqlite3_stmt *st;
    if ((s = zf_db_prepare(db, &st, "INSERT INTO train_runs (out, arch, data, config) VALUES (?, ?, ?, ?)")))
        return s;
    int row;
    if (!(s = ZF_SQL(db, zf_db_bind_text(st, 1, out))) && !(s = ZF_SQL(db, zf_db_bind_text(st, 2, arch))) &&
        !(s = ZF_SQL(db, zf_db_bind_text(st, 3, data))) && !(s = ZF_SQL(db, zf_db_bind_text(st, 4, config))) &&
        !(s = zf_db_step(db, st, &row)))
        *run_id = sqlite3_last_insert_rowid(zf_db_handle(db));
    sqlite3_finalize(st);
    return s;
}

static int bind_real_or_null(sqlite3_stmt *st, int i, double v)
{
    return isnan(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}

zf_status zf_db_train_epoch_put(zf_db *db, int64_t run_id, const zf_epoch_stats *e)
{
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_id(db, &st,
                                   "INSERT OR REPLACE INTO train_epochs (run_id, epoch, lr, "
                                   "train_loss, train_acc, val_loss, val_acc, val_top5, seconds, "
                                   "images_per_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   run_id);
    if (s)
        return s;
    int row;
    if (!(s = ZF_SQL(db, sqlite3_bind_int(st, 2, e->epoch))) &&
        !(s = ZF_SQL(db, sqlite3_bind_double(st, 3, e->lr))) &&
        !(s = ZF_SQL(db, sqlite3_bind_double(st, 4, e->train_loss))) &&
        !(s = ZF_SQL(db, sqlite3_bind_double(st, 5, e->train_acc))) &&
        !(s = ZF_SQL(db, bind_real_or_null(st, 6, e->val_loss))) &&
        !(s = ZF_SQL(db, bind_real_or_null(st, 7, e->val_acc))) &&
        !(s = ZF_SQL(db, bind_real_or_null(st, 8, e->val_top5))) &&
        !(s = ZF_SQL(db, sqlite3_bind_double(st, 9, e->seconds))) &&
        !(s = ZF_SQL(db, sqlite3_bind_double(st, 10, e->images_per_s))))
        s = zf_db_step(db, st, &row);
    sqlite3_finalize(st);
    return s;
}

static double col_or_nan(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static void fill_epoch(sqlite3_stmt *st, void *elem)
{
    zf_epoch_stats *e = elem;
    e->epoch = sqlite3_column_int(st, 0);
    e->lr = sqlite3_column_double(st, 1);
    e->train_loss = sqlite3_column_double(st, 2);
    e->train_acc = sqlite3_column_double(st, 3);
    e->val_loss = col_or_nan(st, 4);
    e->val_acc = col_or_nan(st, 5);
    e->val_top5 = col_or_nan(st, 6);
    e->seconds = sqlite3_column_double(st, 7);
    e->images_per_s = sqlite3_column_double(st, 8);
}

zf_status zf_db_train_epochs(zf_db *db, int64_t run_id, zf_epoch_stats **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_id(db, &st,
                                   "SELECT epoch, lr, train_loss, train_acc, val_loss, val_acc, "
                                   "val_top5, seconds, images_per_s FROM train_epochs "
                                   "WHERE run_id = ? ORDER BY epoch",
                                   run_id);
    if (s)
        return s;
    return zf_db_rows(db, st, sizeof **out, fill_epoch, (void **)out, n);
}

zf_status zf_db_train_snapshot_put(zf_db *db, int64_t run_id, int epoch, const zf_layer *l,
                                   const void *png, size_t png_len)
{
    char shape[64];
    snprintf(shape, sizeof shape, "%d,%lld,%d,%d", l->out_c, (long long)(l->weight_count / l->out_c / l->win.kh / l->win.kw),
             l->win.kh, l->win.kw);
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_id(db, &st,
                                   "INSERT OR REPLACE INTO train_snapshots (run_id, epoch, layer, "
                                   "shape, weights, png) VALUES (?, ?, ?, ?, ?, ?)",
                                   run_id);
    if (s)
        return s;
    int row;
    if (!(s = ZF_SQL(db, sqlite3_bind_int(st, 2, epoch))) &&
        !(s = ZF_SQL(db, zf_db_bind_text(st, 3, l->name))) && !(s = ZF_SQL(db, zf_db_bind_text(st, 4, shape))) &&
        !(s = ZF_SQL(db, sqlite3_bind_blob64(st, 5, l->weight, sizeof(float) * (sqlite3_uint64)l->weight_count,
                                             SQLITE_TRANSIENT))) &&
        !(s = ZF_SQL(db, png ? sqlite3_bind_blob64(st, 6, png, png_len, SQLITE_TRANSIENT) : sqlite3_bind_null(st, 6))))
        s = zf_db_step(db, st, &row);
    sqlite3_finalize(st);
    return s;
}
