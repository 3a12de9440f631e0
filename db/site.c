/* Reads for the unit atlas (see zf/db_site.h). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "zf/db_site.h"

zf_status zf_db_layer_units(zf_db *db, int64_t run, const char *layer, zf_db_unit_row **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    zf_db_unit_row *rows = NULL;
    int cap = 0, count = 0, row = 0;
    zf_status s = zf_db_prepare_unit(db, &st,
                                     "SELECT unit, images, active_fraction, positive_fraction, "
                                     "mean, max, max_image_id, max_y, max_x FROM unit_summary "
                                     "WHERE run_id = ?1 AND layer = ?2 ORDER BY unit",
                                     run, layer, -1);
    if (s)
        return s;
    while (!(s = zf_db_step(db, st, &row)) && row &&
           !(s = zf_db_grow(db, (void **)&rows, &cap, count, sizeof *rows))) {
        zf_db_unit_row r = {sqlite3_column_int(st, 0),
                            sqlite3_column_int64(st, 1),
                            sqlite3_column_double(st, 2),
                            sqlite3_column_double(st, 3),
                            sqlite3_column_double(st, 4),
                            sqlite3_column_double(st, 5),
                            sqlite3_column_int64(st, 6),
                            sqlite3_column_int(st, 7),
                            sqlite3_column_int(st, 8)};
        rows[count++] = r;
    }
    sqlite3_finalize(st);
    if (s) {
        free(rows);
        return s;
    }
    *out = rows;
    *n = count;
    return ZF_OK;
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
    sqlite3_stmt *st = NULL;
    int row = 0;
    zf_status s = zf_db_has_view(db, "bottomk", &row);
    if (s || !row) /* a database from before the bottom-k */
        return s;
    if ((s = zf_db_prepare_unit(db, &st,
                                "SELECT b.rank, b.image_id, b.seq, b.score, b.y, b.x, i.path, i.sha256, "
                                "b.box_x0, b.box_y0, b.box_x1, b.box_y1 FROM "
                                "bottomk b JOIN images i ON i.id = b.image_id WHERE b.run_id = ?1 "
                                "AND b.layer = ?2 AND b.unit = ?3 ORDER BY b.rank",
                                run, layer, unit)))
        return s;
    zf_db_example *ex = NULL;
    int count = 0, cap = 0;
    while (!(s = zf_db_step(db, st, &row)) && row &&
           !(s = zf_db_grow(db, (void **)&ex, &cap, count, sizeof *ex))) {
        zf_db_example *e = &ex[count++];
        memset(e, 0, sizeof *e);
        e->rank = sqlite3_column_int(st, 0);
        e->image_id = sqlite3_column_int64(st, 1);
        e->seq = sqlite3_column_int64(st, 2);
        e->score = sqlite3_column_double(st, 3);
        e->y = sqlite3_column_int(st, 4);
        e->x = sqlite3_column_int(st, 5);
        zf_db_column_text(st, 6, e->path, sizeof e->path);
        zf_db_column_text(st, 7, e->sha256, sizeof e->sha256);
        e->box.x0 = sqlite3_column_int(st, 8);
        e->box.y0 = sqlite3_column_int(st, 9);
        e->box.x1 = sqlite3_column_int(st, 10);
        e->box.y1 = sqlite3_column_int(st, 11);
    }
    sqlite3_finalize(st);
    if (s) {
        free(ex);
        return s;
    }
    *out = ex;
    *n = count;
    return ZF_OK;
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
    zf_db_selectivity *v = NULL;
    int cap = 0, count = 0;
    while (!(s = zf_db_step(db, st, &row)) && row &&
           !(s = zf_db_grow(db, (void **)&v, &cap, count, sizeof *v))) {
        zf_db_selectivity *e = &v[count++];
        memset(e, 0, sizeof *e);
        e->unit = sqlite3_column_int(st, 0);
        e->has_index = sqlite3_column_type(st, 1) != SQLITE_NULL;
        e->selectivity = sqlite3_column_double(st, 1);
        zf_db_column_text(st, 2, e->best_class, sizeof e->best_class);
    }
    sqlite3_finalize(st);
    if (s) {
        free(v);
        return s;
    }
    *out = v;
    *n = count;
    return ZF_OK;
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
    zf_db_class_mean *v = NULL;
    int cap = 0, count = 0;
    while (!(s = zf_db_step(db, st, &row)) && row &&
           !(s = zf_db_grow(db, (void **)&v, &cap, count, sizeof *v))) {
        zf_db_class_mean *e = &v[count++];
        zf_db_column_text(st, 0, e->name, sizeof e->name);
        e->images = sqlite3_column_int64(st, 1);
        e->mean = sqlite3_column_double(st, 2);
    }
    sqlite3_finalize(st);
    if (s) {
        free(v);
        return s;
    }
    *out = v;
    *n = count;
    return ZF_OK;
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
