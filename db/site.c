/* Reads for the unit atlas (see zf/db_site.h). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "zf/db_site.h"

static void fill_unit_row(sqlite3_stmt *st, void *elem)
{
    zf_db_unit_row *r = elem;
    r->unit = sqlite3_column_int(st, 0);
    r->images = sqlite3_column_int64(st, 1);
    r->active_fraction = sqlite3_column_double(st, 2);
    r->positive_fraction = sqlite3_column_double(st, 3);
    r->mean = sqlite3_column_double(st, 4);
    r->max = sqlite3_column_double(st, 5);
    r->max_image_id = sqlite3_column_int64(st, 6);
    r->max_y = sqlite3_column_int(st, 7);
    r->max_x = sqlite3_column_int(st, 8);
}

zf_status zf_db_layer_units(zf_db *db, int64_t run, const char *layer, zf_db_unit_row **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_unit(db, &st,
                                     "SELECT unit, images, active_fraction, positive_fraction, "
                                     "mean, max, max_image_id, max_y, max_x FROM unit_summary "
                                     "WHERE run_id = ?1 AND layer = ?2 ORDER BY unit",
                                     run, layer, -1);
    return s ? s : zf_db_rows(db, st, sizeof **out, fill_unit_row, (void **)out, n);
}

zf_status zf_db_rendering_find(zf_db *db, int64_t run, const char *layer, int unit, int rank,
                               const char *kind, int64_t image_id, void **png, size_t *len)
{
    *png = NULL;
    *len = 0;
    sqlite3_stmt *st = NULL;
    int row = 0;
    zf_status s = zf_db_prepare_unit(db, &st,
                                     "SELECT png FROM renderings WHERE run_id = ?1 AND layer = ?2 "
                                     "AND unit = ?3 AND rank = ?4 AND kind = ?5 AND image_id = ?6 "
                                     "ORDER BY id DESC LIMIT 1",
                                     run, layer, unit);
    if (s)
        return s;
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 4, rank));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 5, kind));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 6, image_id));
    if (!(s = zf_db_step(db, st, &row)) && row && sqlite3_column_bytes(st, 0) > 0)
        s = zf_db_column_copy(db, st, 0, png, len);
fail:
    sqlite3_finalize(st);
    return s;
}

zf_status zf_db_bottomk_get(zf_db *db, int64_t run, const char *layer, int unit, zf_db_example **out, int *n)
{
    *out = NULL;
    *n = 0;
    int found = 0;
    zf_status s = zf_db_has_view(db, "bottomk", &found);
    if (s || !found) /* a database from before the bottom-k */
        return s;
    return zf_db_examples(db, "bottomk", run, layer, unit, out, n);
}

zf_status zf_db_unit_hist_get(zf_db *db, int64_t run, const char *layer, int unit, int64_t *counts, int *found)
{
    *found = 0;
    memset(counts, 0, sizeof *counts * ZF_DB_HIST_BINS);
    sqlite3_stmt *st = NULL;
    int row = 0;
    zf_status s = zf_db_has_view(db, "histogram", &row);
    if (s || !row) /* a database from before the histograms */
        return s;
    if ((s = zf_db_prepare_unit(db, &st,
                                "SELECT bin, count FROM histogram WHERE run_id = ?1 AND layer = ?2 "
                                "AND unit = ?3",
                                run, layer, unit)))
        return s;
    while (!(s = zf_db_step(db, st, &row)) && row) {
        int bin = sqlite3_column_int(st, 0);
        if (bin >= 0 && bin < ZF_DB_HIST_BINS) {
            counts[bin] = sqlite3_column_int64(st, 1);
            *found = 1;
        }
    }
    sqlite3_finalize(st);
    return s;
}

static void fill_selectivity(sqlite3_stmt *st, void *elem)
{
    zf_db_selectivity *e = elem;
    e->unit = sqlite3_column_int(st, 0);
    e->has_index = sqlite3_column_type(st, 1) != SQLITE_NULL;
    e->selectivity = sqlite3_column_double(st, 1);
    zf_db_column_text(st, 2, e->best_class, sizeof e->best_class);
}

zf_status zf_db_layer_selectivity(zf_db *db, int64_t run, const char *layer, zf_db_selectivity **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    int row = 0;
    zf_status s = zf_db_has_view(db, "unit_selectivity", &row);
    if (s || !row) /* a database from before the class statistics */
        return s;
    if ((s = zf_db_prepare_unit(db, &st,
                                "SELECT unit, selectivity, best_class FROM unit_selectivity WHERE run_id = ?1 "
                                "AND layer = ?2 ORDER BY unit",
                                run, layer, -1)))
        return s;
    return zf_db_rows(db, st, sizeof **out, fill_selectivity, (void **)out, n);
}

static void fill_class_mean(sqlite3_stmt *st, void *elem)
{
    zf_db_class_mean *e = elem;
    zf_db_column_text(st, 0, e->name, sizeof e->name);
    e->images = sqlite3_column_int64(st, 1);
    e->mean = sqlite3_column_double(st, 2);
}

zf_status zf_db_unit_class_means(zf_db *db, int64_t run, const char *layer, int unit, zf_db_class_mean **out,
                                 int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    int row = 0;
    zf_status s = zf_db_has_view(db, "unit_class_mean", &row);
    if (s || !row)
        return s;
    if ((s = zf_db_prepare_unit(db, &st,
                                "SELECT class, n, mean FROM unit_class_mean WHERE run_id = ?1 AND layer = ?2 "
                                "AND unit = ?3 ORDER BY mean DESC, class",
                                run, layer, unit)))
        return s;
    return zf_db_rows(db, st, sizeof **out, fill_class_mean, (void **)out, n);
}

zf_status zf_db_image_class(zf_db *db, int64_t run, int64_t seq, char *name, size_t len)
{
    name[0] = 0;
    sqlite3_stmt *st = NULL;
    int row = 0;
    zf_status s = zf_db_has_view(db, "unit_class_mean", &row);
    if (s || !row)
        return s;
    if ((s = zf_db_prepare_id(db, &st,
                              "SELECT c.name FROM run_images r JOIN run_classes c ON c.run_id = r.run_id AND "
                              "c.class = r.class WHERE r.run_id = ?1 AND r.seq = ?2", run)))
        return s;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 2, seq));
    if (!(s = zf_db_step(db, st, &row)) && row)
        zf_db_column_text(st, 0, name, len);
fail:
    sqlite3_finalize(st);
    return s;
}

zf_status zf_db_run_image(zf_db *db, int64_t run, int64_t seq, zf_db_example *e, int *found)
{
    memset(e, 0, sizeof *e);
    *found = 0;
    sqlite3_stmt *st = NULL;
    int row = 0;
    zf_status s = zf_db_prepare_id(db, &st,
                                   "SELECT i.id, i.path, i.sha256, i.status FROM run_images r JOIN images i ON "
                                   "i.id = r.image_id WHERE r.run_id = ?1 AND r.seq = ?2", run);
    if (s)
        return s;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 2, seq));
    if (!(s = zf_db_step(db, st, &row)) && row) {
        char status[8];
        e->seq = seq;
        e->image_id = sqlite3_column_int64(st, 0);
        zf_db_column_text(st, 1, e->path, sizeof e->path);
        zf_db_column_text(st, 2, e->sha256, sizeof e->sha256);
        zf_db_column_text(st, 3, status, sizeof status);
        *found = strcmp(status, "ok") ? 2 : 1;
    }
fail:
    sqlite3_finalize(st);
    return s;
}
