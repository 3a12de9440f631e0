/* What the db/ sources share and nobody else sees: the connection struct, the one macro every
 * SQLite call goes through, and small statement helpers. */
#ifndef ZF_DB_INTERNAL_H
#define ZF_DB_INTERNAL_H

#include <nettle/sha2.h>
#include <sqlite3.h>
#include <stdint.h>

#include "zf/db.h"
#include "zf/xsum.h"

struct zf_db {
    sqlite3 *sql;
    char path[1024];
    zf_db_mode mode;
    double timeout_s;
    zf_db_wait_fn on_wait;
    void *wait_ctx;
    /* the current lock wait: when it began, when the wait callback last ran, how long it lasted */
    double wait_start, wait_told, last_wait_s;
    int in_tx;
};

/* Turns a SQLite result code into a zf_status: SQLITE_OK, SQLITE_ROW and SQLITE_DONE are
 * success; anything else records a message naming the database, the problem in words (locks,
 * read-only files and folders, a full disk get their own), the call, function, file and line. */
zf_status zf_db_check_(zf_db *db, int rc, const char *call, const char *func, const char *file,
                       int line);
#define ZF_SQL(db, call) zf_db_check_((db), (call), #call, __func__, __FILE__, __LINE__)

/* ZF_SQL for the common shape "st = ...; if (st) goto fail;". */
#define ZF_SQL_TRY(st, db, call)               \
    do {                                      \
        if (((st) = ZF_SQL(db, call)) != 0)   \
            goto fail;                        \
    } while (0)

/* Prepares `sql` into *st (NULL on error). */
zf_status zf_db_prepare(zf_db *db, sqlite3_stmt **st, const char *sql);
/* Runs statements that return no rows. */
zf_status zf_db_exec(zf_db *db, const char *sql);
/* Steps a statement: *row = 1 for SQLITE_ROW, 0 for SQLITE_DONE. */
zf_status zf_db_step(zf_db *db, sqlite3_stmt *st, int *row);
/* Binds text, or NULL when s is NULL. */
int zf_db_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Copies column i as text into buf ("" for NULL). */
void zf_db_column_text(sqlite3_stmt *st, int i, char *buf, size_t len);
/* Prepares `sql` with ?1 bound to run, ?2 to layer (NULL binds NULL) where the statement has a
 * second parameter, and ?3 to unit where unit >= 0 (*st NULL on error). */
zf_status zf_db_prepare_unit(zf_db *db, sqlite3_stmt **st, const char *sql, int64_t run,
                             const char *layer, int unit);
/* Prepares `sql` with its first parameter bound to id (*st NULL on error). */
zf_status zf_db_prepare_id(zf_db *db, sqlite3_stmt **st, const char *sql, int64_t id);
/* The same, stepped to its row: ZF_ERR_ARG "no WHAT ID" where there is none. On success *st is
 * on the row (the caller reads it and finalizes it); on failure it is finalized. */
zf_status zf_db_get_row(zf_db *db, sqlite3_stmt **st, const char *sql, int64_t id, const char *what);
/* Room in *v (elements of `size`, *cap of them) for element n: doubles it when full. */
zf_status zf_db_grow(zf_db *db, void **v, int *cap, int n, size_t size);
/* Steps st to its end (and finalizes it), fill(st, elem) making one zeroed element of `size`
 * bytes a row: *out (the caller frees it) holds *n of them; none on failure. */
zf_status zf_db_rows(zf_db *db, sqlite3_stmt *st, size_t size,
                     void (*fill)(sqlite3_stmt *st, void *elem), void **out, int *n);
/* Every example of a unit in the ranked view `view` ("topk" or "bottomk") with its image's path
 * and hash, by rank (zf_db_rows). */
zf_status zf_db_examples(zf_db *db, const char *view, int64_t run, const char *layer, int unit,
                         zf_db_example **out, int *n);
/* A copy of blob column i (zf_malloc'd, at least one byte). */
zf_status zf_db_column_copy(zf_db *db, sqlite3_stmt *st, int i, void **out, size_t *len);
/* *found = 1 when the database has view `name` (0 in one from before it). */
zf_status zf_db_has_view(zf_db *db, const char *name, int *found);
/* The statements that enter a run's images, as a scan and a merge enter them: find an image
 * row by (path, sha256) ?1, ?2; insert one (path, sha256, bytes, width, height, status, error);
 * insert a run_images row (run_id, seq, image_id, class). */
typedef struct zf_db_image_stmts {
    sqlite3_stmt *find, *insert, *insert_run;
} zf_db_image_stmts;
zf_status zf_db_image_stmts_prepare(zf_db *db, zf_db_image_stmts *q);
void zf_db_image_stmts_free(zf_db_image_stmts *q);
/* Steps q->find or q->insert, their parameters bound by the caller (and cleared after): *id the
 * image row found (0: none) or made. */
zf_status zf_db_image_lookup(zf_db *db, zf_db_image_stmts *q, int64_t *id);
zf_status zf_db_image_insert(zf_db *db, zf_db_image_stmts *q, int64_t *id);
/* Enters image `image_id` at `seq` of run `run`, in class cls (-1: none). */
zf_status zf_db_run_image_put(zf_db *db, zf_db_image_stmts *q, int64_t run, int64_t seq,
                              int64_t image_id, int cls);
/* Enters a scanned layer of a run (run_layers). */
zf_status zf_db_run_layer_put(zf_db *db, int64_t run, const char *name, int position, const char *op,
                              int units, int height, int width);
/* Inserts a models row as m describes it (m->id ignored). */
zf_status zf_db_model_insert(zf_db *db, const zf_db_model *m, int64_t *id);
/* One unit_stats row, as a scan and a merge write it. */
typedef struct zf_db_unit_stats {
    int64_t run;
    const char *layer;
    int unit;
    int64_t images, active, positions, positive;
    const zf_xsum *sum;
    int has_max;        /* the max and where: none before the unit saw an image */
    double max;
    int64_t max_image_id, max_seq;
    int max_y, max_x;
    const char *top;    /* the top-k as stored */
    const char *bottom; /* the bottom-k; NULL: not kept (a run begun before schema 3) */
    const int64_t *hist; /* ZF_DB_HIST_BINS counts; NULL: not kept */
} zf_db_unit_stats;
/* The statement zf_db_unit_stats_put binds: an insert, and (scan) an update of a row there. */
#define ZF_DB_UNIT_STATS_INSERT                                                                   \
    "INSERT INTO unit_stats (run_id, layer, unit, images, active_images, positions, "            \
    "positive_positions, sum, max, max_image_id, max_y, max_x, max_seq, top, sum_exact, bottom, " \
    "hist) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
/* Binds u to st (made from ZF_DB_UNIT_STATS_INSERT), steps it and resets it. */
zf_status zf_db_unit_stats_put(zf_db *db, sqlite3_stmt *st, const zf_db_unit_stats *u);
/* A layer's unit_stats rows (?1 run, ?2 layer) in unit order, as zf_db_unit_stats_read reads them. */
#define ZF_DB_UNIT_STATS_SELECT                                                                  \
    "SELECT unit, images, active_images, positions, positive_positions, sum, sum_exact, max, "  \
    "max_seq, max_y, max_x, top, bottom, hist FROM unit_stats WHERE run_id = ?1 AND layer = ?2 " \
    "ORDER BY unit"
/* Reads the row st is on into u: its exact sum into *sum (from the float64 sum in a row from
 * before schema 3), its histogram into hist (u->hist NULL when the row has none); u->top and
 * u->bottom stay valid until st moves. ZF_ERR_DB naming the file, run, layer and unit when the
 * sum or the histogram is damaged. */
zf_status zf_db_unit_stats_read(zf_db *db, sqlite3_stmt *st, int64_t run, const char *layer,
                                zf_db_unit_stats *u, zf_xsum *sum, int64_t *hist);
/* Writes v in decimal at o; returns the end. */
char *zf_db_put_int(char *o, int64_t v);
/* Reads a histogram as unit_stats.hist stores it (ZF_DB_HIST_BINS counts); 0, or -1 if damaged. */
int zf_db_hist_parse(const char *json, int64_t *h);
/* Seconds since the epoch, monotonic not needed: for lock-wait bookkeeping. */
double zf_db_now(void);

/* The classes of a scan's images when they sit in one folder per class (db/classes.c): an
 * image's class is its folder, named by its path below the deepest folder holding every image's
 * folder; images directly in that folder have none, so a list all in one folder has no classes. */
typedef struct zf_db_classes {
    int n;        /* classes; 0 when no image is in a class folder */
    char **names; /* n names sorted bytewise: a class's number is its place here */
    int32_t *of;  /* per image of the list: its class, or -1; NULL when n = 0 */
} zf_db_classes;
zf_status zf_db_classes_find(const char *const *paths, int64_t n, zf_db_classes *out);
void zf_db_classes_free(zf_db_classes *c);
/* The class names in order, as one SHA-256: of a run's (run_classes) or of names[0..n). */
zf_status zf_db_classes_hash(zf_db *db, int64_t run, char hex[65]);
void zf_db_classes_hash_names(char *const *names, int n, char hex[65]);
/* Inserts a run's class names (run_classes, no images yet). */
zf_status zf_db_class_names_put(zf_db *db, int64_t run, char *const *names, int classes);

/* Per-class image counts and per-unit exact sums, as a scan and a merge hold them. */
typedef struct zf_db_class_acc {
    int classes, nl;
    const char **layer; /* nl layer names */
    const int *units;   /* nl unit counts */
    zf_xsum **sum;      /* nl arrays of units x classes */
    int64_t *n;         /* classes: images that loaded */
    char **names;       /* NULL, or room for the classes' names, filled by zf_db_class_acc_add */
} zf_db_class_acc;
/* Writes the counts and sums of the classes marked in `which` (NULL: those with images) into
 * run_classes (rows already there) and unit_class_stats. */
zf_status zf_db_class_acc_put(zf_db *db, const zf_db_class_acc *a, int64_t run, const uint8_t *which);
/* Adds the stored counts and sums of `run` to a. */
zf_status zf_db_class_acc_add(zf_db *db, zf_db_class_acc *a, int64_t run);

/* Binds an exact sum as the pair a row stores it in: rounded once (column i_sum), and whole. */
zf_status zf_db_bind_xsum(zf_db *db, sqlite3_stmt *st, int i_sum, int i_exact, const zf_xsum *x);
/* Reads that pair back: the exact form, or the rounded sum where a row from before schema 3 has
 * none (a float64 sum of floats enters exactly). 0, or -1 when the exact form is damaged. */
int zf_db_column_xsum(sqlite3_stmt *st, int i_sum, int i_exact, zf_xsum *x);

/* SHA-256, streaming (nettle's; final_hex resets it for reuse, as nettle's digest does). */
typedef struct zf_sha256 {
    struct sha256_ctx ctx;
} zf_sha256;
void zf_sha256_init(zf_sha256 *s);
void zf_sha256_update(zf_sha256 *s, const void *data, size_t len);
void zf_sha256_final_hex(zf_sha256 *s, char hex[65]);

#endif
