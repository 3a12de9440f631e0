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

/* One row of train_snapshots: a tensor's float32 values under `name`. */
static zf_status put_tensor(zf_db *db, int64_t run_id, int epoch, const char *name, const char *shape,
                            const float *v, int64_t count, const void *png, size_t png_len)
{
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_id(db, &st,
                                   "INSERT OR REPLACE INTO train_snapshots (run_id, epoch, layer, "
                                   "shape, weights, png) VALUES (?, ?, ?, ?, ?, ?)",
                                   run_id);
    if (s)
        return s;
    int row;
    if (!(s = ZF_SQL(db, sqlite3_bind_int(st, 2, epoch))) &&
        !(s = ZF_SQL(db, zf_db_bind_text(st, 3, name))) && !(s = ZF_SQL(db, zf_db_bind_text(st, 4, shape))) &&
        !(s = ZF_SQL(db, sqlite3_bind_blob64(st, 5, v, sizeof(float) * (sqlite3_uint64)count, SQLITE_TRANSIENT))) &&
        !(s = ZF_SQL(db, png ? sqlite3_bind_blob64(st, 6, png, png_len, SQLITE_TRANSIENT) : sqlite3_bind_null(st, 6))))
        s = zf_db_step(db, st, &row);
    sqlite3_finalize(st);
    return s;
}

/* The shape a layer's weights are recorded with: "out,in,kh,kw" for conv (in per group), "out,in"
 * for fc. */
static void weight_shape(char *buf, size_t len, const zf_layer *l)
{
    if (l->op == ZF_OP_CONV)
        snprintf(buf, len, "%d,%lld,%d,%d", l->out_c,
                 (long long)(l->weight_count / l->out_c / l->win.kh / l->win.kw), l->win.kh, l->win.kw);
    else
        snprintf(buf, len, "%d,%lld", l->out_c, (long long)(l->weight_count / l->out_c));
}

zf_status zf_db_train_snapshot_put(zf_db *db, int64_t run_id, int epoch, const zf_layer *l,
                                   const void *png, size_t png_len)
{
    if (l->op != ZF_OP_CONV && l->op != ZF_OP_FC)
        return zf_error(ZF_ERR_ARG, "%s: a %s layer has no parameters to snapshot", l->name, zf_op_name(l->op));
    char shape[64], bias_name[48];
    weight_shape(shape, sizeof shape, l);
    zf_status s = put_tensor(db, run_id, epoch, l->name, shape, l->weight, l->weight_count, png, png_len);
    if (s || !l->bias_count)
        return s;
    snprintf(shape, sizeof shape, "%lld", (long long)l->bias_count);
    snprintf(bias_name, sizeof bias_name, "%s.bias", l->name);
    return put_tensor(db, run_id, epoch, bias_name, shape, l->bias, l->bias_count, NULL, 0);
}

static void fill_int(sqlite3_stmt *st, void *elem) { *(int *)elem = sqlite3_column_int(st, 0); }

zf_status zf_db_train_snapshot_epochs(zf_db *db, int64_t run_id, int **epochs, int *n)
{
    *epochs = NULL;
    *n = 0;
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_id(db, &st,
                                   "SELECT DISTINCT epoch FROM train_snapshots WHERE run_id = ? ORDER BY epoch",
                                   run_id);
    return s ? s : zf_db_rows(db, st, sizeof **epochs, fill_int, (void **)epochs, n);
}

/* The row `name` of the snapshot into v (count floats): 1 when found and of that size, 0 when
 * there is no such row; an error when its size or shape differs. */
static zf_status get_tensor(zf_db *db, int64_t run_id, int epoch, const char *name, const char *want_shape,
                            float *v, int64_t count, int *found)
{
    *found = 0;
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_id(db, &st,
                                   "SELECT shape, weights FROM train_snapshots WHERE run_id = ? AND epoch = ? "
                                   "AND layer = ?",
                                   run_id);
    if (s)
        return s;
    int row = 0;
    if (!(s = ZF_SQL(db, sqlite3_bind_int(st, 2, epoch))) && !(s = ZF_SQL(db, zf_db_bind_text(st, 3, name))) &&
        !(s = zf_db_step(db, st, &row)) && row) {
        const char *shape = (const char *)sqlite3_column_text(st, 0);
        const void *blob = sqlite3_column_blob(st, 1);
        int64_t bytes = sqlite3_column_bytes(st, 1);
        if (!shape || strcmp(shape, want_shape) || bytes != (int64_t)sizeof(float) * count || (count && !blob))
            s = zf_error(ZF_ERR_FORMAT,
                         "%s: training run %lld's snapshot of epoch %d: %s has shape %s and %lld bytes, "
                         "the net's is %s (%lld bytes)",
                         zf_db_path(db), (long long)run_id, epoch, name, shape ? shape : "(none)", (long long)bytes,
                         want_shape, (long long)(sizeof(float) * count));
        else {
            memcpy(v, blob, sizeof(float) * (size_t)count);
            *found = 1;
        }
    }
    sqlite3_finalize(st);
    return s;
}

zf_status zf_db_train_snapshot_get(zf_db *db, int64_t run_id, int epoch, zf_net *net)
{
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_CONV && l->op != ZF_OP_FC)
            continue;
        char shape[64], name[48];
        int found;
        weight_shape(shape, sizeof shape, l);
        zf_status s = get_tensor(db, run_id, epoch, l->name, shape, l->weight, l->weight_count, &found);
        if (!s && !found)
            s = zf_error(ZF_ERR_FORMAT, "%s: training run %lld has no snapshot of %s at epoch %d", zf_db_path(db),
                         (long long)run_id, l->name, epoch);
        if (s)
            return s;
        if (!l->bias_count)
            continue;
        snprintf(shape, sizeof shape, "%lld", (long long)l->bias_count);
        snprintf(name, sizeof name, "%s.bias", l->name);
        if ((s = get_tensor(db, run_id, epoch, name, shape, l->bias, l->bias_count, &found)))
            return s;
        if (!found)
            return zf_error(ZF_ERR_FORMAT,
                            "%s: training run %lld's snapshot of epoch %d holds the conv filters only, without "
                            "biases or fc layers (recorded by an older zfviz train), so activations cannot be "
                            "computed from it; train again to record whole snapshots",
                            zf_db_path(db), (long long)run_id, epoch);
    }
    return ZF_OK;
}

zf_status zf_db_train_run_info(zf_db *db, int64_t run_id, int64_t *id, char *out, size_t out_len, char *arch,
                               size_t arch_len)
{
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_id(db, &st,
                                   "SELECT id, out, arch FROM train_runs WHERE id = ?1 OR (?1 = 0 AND id = "
                                   "(SELECT max(id) FROM train_runs))",
                                   run_id);
    if (s)
        return s;
    int row = 0;
    if (!(s = zf_db_step(db, st, &row))) {
        if (!row)
            s = run_id ? zf_error(ZF_ERR_ARG, "%s: no training run %lld", zf_db_path(db), (long long)run_id)
                       : zf_error(ZF_ERR_ARG, "%s: no training runs (zfviz train records them)", zf_db_path(db));
        else {
            *id = sqlite3_column_int64(st, 0);
            snprintf(out, out_len, "%s", (const char *)sqlite3_column_text(st, 1));
            snprintf(arch, arch_len, "%s", (const char *)sqlite3_column_text(st, 2));
        }
    }
    sqlite3_finalize(st);
    return s;
}
