/* Opening the store: connection set-up (WAL, foreign keys, bounded lock waits), the schema and its
 * migrations, error messages that say what went wrong in words, and the statement helpers. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "zf/alloc.h"
#include "zf/clock.h"

/* 'zfvz': PRAGMA application_id marks the file as ours. */
#define ZF_DB_APPLICATION_ID 0x7a66767a

/* The view of a ranked list (unit_stats.top or .bottom) one example a row. */
#define RANK_VIEW(name, column)                                                                  \
    "CREATE VIEW " name " AS\n"                                                                   \
    "  SELECT s.run_id, s.layer, s.unit, CAST(e.key AS INTEGER) + 1 AS rank,\n"                   \
    "         json_extract(e.value, '$[0]') AS image_id, json_extract(e.value, '$[1]') AS seq,\n" \
    "         json_extract(e.value, '$[2]') AS score,\n"                                           \
    "         json_extract(e.value, '$[3]') AS y, json_extract(e.value, '$[4]') AS x,\n"           \
    "         json_extract(e.value, '$[5]') AS box_x0, json_extract(e.value, '$[6]') AS box_y0,\n" \
    "         json_extract(e.value, '$[7]') AS box_x1, json_extract(e.value, '$[8]') AS box_y1\n"  \
    "  FROM unit_stats s, json_each(s." column ") e;\n"

/* Each entry brings the schema from version i to i + 1 (index 0 creates version 1). A later
 * version appends an entry; existing databases are migrated on their next read-write open. */
static const char *const migrations[ZF_DB_SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE models (\n"
    "  id        INTEGER PRIMARY KEY,\n"
    "  arch      TEXT NOT NULL,\n"
    "  weights   TEXT,\n"
    "  file      TEXT,\n"
    "  sha256    TEXT NOT NULL UNIQUE,\n"
    "  n_params  INTEGER NOT NULL,\n"
    "  input     TEXT NOT NULL,\n"
    "  preproc   TEXT NOT NULL,\n"
    "  created   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))\n"
    ");\n"
    "CREATE TABLE images (\n"
    "  id      INTEGER PRIMARY KEY,\n"
    "  path    TEXT NOT NULL,\n"
    "  sha256  TEXT,\n"
    "  bytes   INTEGER,\n"
    "  width   INTEGER,\n"
    "  height  INTEGER,\n"
    "  status  TEXT NOT NULL CHECK (status IN ('ok', 'error')),\n"
    "  error   TEXT,\n"
    "  CHECK ((status = 'ok') = (error IS NULL))\n"
    ");\n"
    "CREATE UNIQUE INDEX images_path_sha256 ON images (path, ifnull(sha256, ''));\n"
    "CREATE TABLE runs (\n"
    "  id          INTEGER PRIMARY KEY,\n"
    "  model_id    INTEGER NOT NULL REFERENCES models (id),\n"
    "  images      TEXT NOT NULL,\n"
    "  list_sha256 TEXT NOT NULL,\n"
    "  n_images    INTEGER NOT NULL,\n"
    "  layers      TEXT NOT NULL,\n"
    "  top_k       INTEGER NOT NULL CHECK (top_k > 0),\n"
    "  batch       INTEGER NOT NULL CHECK (batch > 0),\n"
    "  chunk       INTEGER NOT NULL CHECK (chunk > 0),\n"
    "  next_seq    INTEGER NOT NULL DEFAULT 0,\n"
    "  n_ok        INTEGER NOT NULL DEFAULT 0,\n"
    "  n_failed    INTEGER NOT NULL DEFAULT 0,\n"
    "  started     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),\n"
    "  updated     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),\n"
    "  finished    TEXT,\n"
    "  UNIQUE (model_id, list_sha256, layers, top_k),\n"
    "  CHECK (next_seq = n_ok + n_failed AND next_seq <= n_images)\n"
    ");\n"
    "CREATE TABLE run_layers (\n"
    "  run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
    "  layer     TEXT NOT NULL,\n"
    "  position  INTEGER NOT NULL,\n"
    "  op        TEXT NOT NULL CHECK (op IN ('conv', 'fc')),\n"
    "  units     INTEGER NOT NULL,\n"
    "  height    INTEGER NOT NULL,\n"
    "  width     INTEGER NOT NULL,\n"
    "  PRIMARY KEY (run_id, layer)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE run_images (\n"
    "  run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
    "  seq       INTEGER NOT NULL,\n"
    "  image_id  INTEGER NOT NULL REFERENCES images (id),\n"
    "  PRIMARY KEY (run_id, seq)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX run_images_image ON run_images (image_id);\n"
    "CREATE TABLE unit_stats (\n"
    "  run_id              INTEGER NOT NULL,\n"
    "  layer               TEXT NOT NULL,\n"
    "  unit                INTEGER NOT NULL,\n"
    "  images              INTEGER NOT NULL,\n"
    "  active_images       INTEGER NOT NULL,\n"
    "  positions           INTEGER NOT NULL,\n"
    "  positive_positions  INTEGER NOT NULL,\n"
    "  sum                 REAL NOT NULL,\n"
    "  max                 REAL,\n"
    "  max_image_id        INTEGER REFERENCES images (id),\n"
    "  max_y               INTEGER,\n"
    "  max_x               INTEGER,\n"
    "  max_seq             INTEGER,\n"
    "  top                 TEXT NOT NULL DEFAULT '[]',\n"
    "  PRIMARY KEY (run_id, layer, unit),\n"
    "  FOREIGN KEY (run_id, layer) REFERENCES run_layers (run_id, layer) ON DELETE CASCADE\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE renderings (\n"
    "  id           INTEGER PRIMARY KEY,\n"
    "  run_id       INTEGER REFERENCES runs (id) ON DELETE CASCADE,\n"
    "  image_id     INTEGER REFERENCES images (id),\n"
    "  layer        TEXT,\n"
    "  unit         INTEGER,\n"
    "  rank         INTEGER,\n"
    "  kind         TEXT NOT NULL,\n"
    "  description  TEXT NOT NULL,\n"
    "  width        INTEGER NOT NULL,\n"
    "  height       INTEGER NOT NULL,\n"
    "  png          BLOB NOT NULL,\n"
    "  created      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))\n"
    ");\n"
    "CREATE INDEX renderings_what ON renderings (run_id, layer, unit, rank, kind);\n"
    "CREATE VIEW unit_summary AS\n"
    "  SELECT run_id, layer, unit, images,\n"
    "         CAST(active_images AS REAL) / NULLIF(images, 0) AS active_fraction,\n"
    "         CAST(positive_positions AS REAL) / NULLIF(positions, 0) AS positive_fraction,\n"
    "         sum / NULLIF(positions, 0) AS mean,\n"
    "         max, max_image_id, max_y, max_x\n"
    "  FROM unit_stats;\n"
    RANK_VIEW("topk", "top")
    "CREATE VIEW layer_summary AS\n"
    "  SELECT s.run_id, s.layer, l.position, count(*) AS units,\n"
    "         sum(s.max <= 0) AS dead_units,\n"
    "         avg(s.active_fraction) AS mean_active_fraction,\n"
    "         avg(s.mean) AS mean_activation, max(s.max) AS max_activation\n"
    "  FROM unit_summary s JOIN run_layers l USING (run_id, layer)\n"
    "  GROUP BY s.run_id, s.layer;\n",
    /* 1 -> 2: training runs (zfviz train): per-epoch metrics and filter snapshots */
    "CREATE TABLE train_runs (\n"
    "  id        INTEGER PRIMARY KEY,\n"
    "  out       TEXT NOT NULL,\n"
    "  arch      TEXT NOT NULL,\n"
    "  data      TEXT NOT NULL,\n"
    "  config    TEXT NOT NULL,\n"
    "  started   TEXT NOT NULL DEFAULT (datetime('now'))\n"
    ");\n"
    "CREATE INDEX train_runs_out ON train_runs (out);\n"
    "CREATE TABLE train_epochs (\n"
    "  run_id       INTEGER NOT NULL REFERENCES train_runs (id) ON DELETE CASCADE,\n"
    "  epoch        INTEGER NOT NULL,\n"
    "  lr           REAL NOT NULL,\n"
    "  train_loss   REAL NOT NULL,\n"
    "  train_acc    REAL NOT NULL,\n"
    "  val_loss     REAL,\n"
    "  val_acc      REAL,\n"
    "  val_top5     REAL,\n"
    "  seconds      REAL NOT NULL,\n"
    "  images_per_s REAL NOT NULL,\n"
    "  PRIMARY KEY (run_id, epoch)\n"
    ");\n"
    "CREATE TABLE train_snapshots (\n"
    "  run_id   INTEGER NOT NULL REFERENCES train_runs (id) ON DELETE CASCADE,\n"
    "  epoch    INTEGER NOT NULL,\n"
    "  layer    TEXT NOT NULL,\n"
    "  shape    TEXT NOT NULL,     -- out,in,kh,kw\n"
    "  weights  BLOB NOT NULL,     -- float32, little-endian, PyTorch layout\n"
    "  png      BLOB,              -- the filter grid as zfviz filters draws it\n"
    "  PRIMARY KEY (run_id, epoch, layer)\n"
    ");\n",
    /* 2 -> 3: exact sums (zf/xsum.h) that merge across shards, and sharded runs (scan --shard,
     * merge). A run begun before keeps its float64 sum until its next commit writes both. */
    "ALTER TABLE unit_stats ADD COLUMN sum_exact BLOB;\n"
    "ALTER TABLE runs ADD COLUMN list_n INTEGER;\n"
    "ALTER TABLE runs ADD COLUMN shard TEXT;\n"
    "ALTER TABLE runs ADD COLUMN seq0 INTEGER NOT NULL DEFAULT 0;\n"
    /* the bottom-k: each image's most negative value, the k lowest (NULL: a run begun before) */
    "ALTER TABLE unit_stats ADD COLUMN bottom TEXT;\n"
    RANK_VIEW("bottomk", "bottom")
    /* the histogram of the values before the ReLU over fixed bins (zf/db.h), and quantiles read
     * from it: the bin each falls in */
    "ALTER TABLE unit_stats ADD COLUMN hist TEXT;\n"
    "CREATE TABLE histogram_bins (bin INTEGER PRIMARY KEY, lo REAL, hi REAL);\n"
    "WITH RECURSIVE o(i, p) AS (SELECT 0, 1.0 / 65536 UNION ALL SELECT i + 1, p * 2 FROM o "
    "WHERE i < 31), m(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM m WHERE j < 3) "
    "INSERT INTO histogram_bins SELECT 130 + i * 4 + j, p * (1 + j / 4.0), p * (1 + (j + 1) / 4.0) "
    "FROM o, m;\n"
    "INSERT INTO histogram_bins SELECT 258 - bin, -hi, -lo FROM histogram_bins;\n"
    "INSERT INTO histogram_bins VALUES (0, NULL, -65536.0), (129, -1.0 / 65536, 1.0 / 65536),\n"
    "  (258, 65536.0, NULL), (259, NULL, NULL);\n"
    "CREATE VIEW histogram AS\n"
    "  SELECT s.run_id, s.layer, s.unit, CAST(e.key AS INTEGER) AS bin, b.lo, b.hi, e.value AS count\n"
    "  FROM unit_stats s, json_each(s.hist) e JOIN histogram_bins b ON b.bin = e.key\n"
    "  WHERE e.value > 0;\n"
    "CREATE VIEW unit_quantiles AS\n"
    "  WITH c AS (SELECT run_id, layer, unit, bin, count,\n"
    "                    sum(count) OVER (PARTITION BY run_id, layer, unit ORDER BY bin) AS cum,\n"
    "                    sum(count) OVER (PARTITION BY run_id, layer, unit) AS total\n"
    "             FROM histogram WHERE bin < 259),\n"
    "  q AS (SELECT run_id, layer, unit, min(CASE WHEN cum >= 0.01 * total THEN bin END) AS b01,\n"
    "               min(CASE WHEN cum >= 0.1 * total THEN bin END) AS b10,\n"
    "               min(CASE WHEN cum >= 0.5 * total THEN bin END) AS b50,\n"
    "               min(CASE WHEN cum >= 0.9 * total THEN bin END) AS b90,\n"
    "               min(CASE WHEN cum >= 0.99 * total THEN bin END) AS b99\n"
    "        FROM c GROUP BY run_id, layer, unit)\n"
    "  SELECT q.run_id, q.layer, q.unit,\n"
    "         b1.lo AS q01_lo, b1.hi AS q01_hi, b2.lo AS q10_lo, b2.hi AS q10_hi,\n"
    "         b3.lo AS q50_lo, b3.hi AS q50_hi, b4.lo AS q90_lo, b4.hi AS q90_hi,\n"
    "         b5.lo AS q99_lo, b5.hi AS q99_hi\n"
    "  FROM q JOIN histogram_bins b1 ON b1.bin = q.b01 JOIN histogram_bins b2 ON b2.bin = q.b10\n"
    "  JOIN histogram_bins b3 ON b3.bin = q.b50 JOIN histogram_bins b4 ON b4.bin = q.b90\n"
    "  JOIN histogram_bins b5 ON b5.bin = q.b99;\n",
    /* 3 -> 4: per-class statistics when the images sit in one folder per class (db/classes.c):
     * each class's images and, per unit, the exact sum of their rectified values, so that shards
     * add up; the class-conditional means and the class selectivity index of Morcos et al. 2018
     * as views. runs.classes is NULL for a run begun before (it keeps no class statistics). */
    "ALTER TABLE runs ADD COLUMN classes INTEGER;\n"
    "ALTER TABLE run_images ADD COLUMN class INTEGER;\n"
    "CREATE TABLE run_classes (\n"
    "  run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
    "  class   INTEGER NOT NULL,\n"
    "  name    TEXT NOT NULL,\n"
    "  images  INTEGER NOT NULL DEFAULT 0,\n"
    "  PRIMARY KEY (run_id, class),\n"
    "  UNIQUE (run_id, name)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE unit_class_stats (\n"
    "  run_id     INTEGER NOT NULL,\n"
    "  layer      TEXT NOT NULL,\n"
    "  unit       INTEGER NOT NULL,\n"
    "  class      INTEGER NOT NULL,\n"
    "  sum        REAL NOT NULL,\n"
    "  sum_exact  BLOB NOT NULL,\n"
    "  PRIMARY KEY (run_id, layer, unit, class),\n"
    "  FOREIGN KEY (run_id, layer) REFERENCES run_layers (run_id, layer) ON DELETE CASCADE\n"
    ") WITHOUT ROWID;\n"
    "CREATE VIEW unit_class_mean AS\n"
    "  SELECT u.run_id, u.layer, u.unit, c.name AS class, c.images AS n,\n"
    "         u.sum / (c.images * l.height * l.width) AS mean\n"
    "  FROM unit_class_stats u JOIN run_classes c ON c.run_id = u.run_id AND c.class = u.class\n"
    "  JOIN run_layers l ON l.run_id = u.run_id AND l.layer = u.layer\n"
    "  WHERE c.images > 0;\n"
    "CREATE VIEW unit_selectivity AS\n"
    "  WITH m AS (SELECT run_id, layer, unit, class, mean, count(*) OVER w AS k,\n"
    "                    sum(mean) OVER w AS total, max(mean) OVER w AS mu_max,\n"
    "                    row_number() OVER (PARTITION BY run_id, layer, unit\n"
    "                                       ORDER BY mean DESC, class) AS r\n"
    "             FROM unit_class_mean WINDOW w AS (PARTITION BY run_id, layer, unit))\n"
    "  SELECT run_id, layer, unit,\n"
    "         CASE WHEN k >= 2 THEN (mu_max - (total - mu_max) / (k - 1))\n"
    "              / NULLIF(mu_max + (total - mu_max) / (k - 1), 0) END AS selectivity,\n"
    "         CASE WHEN mu_max > 0 THEN class END AS best_class\n"
    "  FROM m WHERE r = 1;\n",
};

double zf_db_now(void) { return zf_clock_now(); }

zf_status zf_db_bind_xsum(zf_db *db, sqlite3_stmt *st, int i_sum, int i_exact, const zf_xsum *x)
{
    unsigned char exact[ZF_XSUM_BYTES];
    zf_xsum_pack(x, exact);
    zf_status s = ZF_SQL(db, sqlite3_bind_double(st, i_sum, zf_xsum_double(x)));
    return s ? s : ZF_SQL(db, sqlite3_bind_blob(st, i_exact, exact, sizeof exact, SQLITE_TRANSIENT));
}

int zf_db_column_xsum(sqlite3_stmt *st, int i_sum, int i_exact, zf_xsum *x)
{
    zf_xsum_zero(x);
    if (sqlite3_column_type(st, i_exact) != SQLITE_NULL)
        return zf_xsum_unpack(x, sqlite3_column_blob(st, i_exact),
                              (size_t)sqlite3_column_bytes(st, i_exact));
    zf_xsum_add_double(x, sqlite3_column_double(st, i_sum));
    return 0;
}

int zf_db_hist_parse(const char *json, int64_t *h)
{
    const char *p = json;
    if (!p || *p++ != '[')
        return -1;
    for (int b = 0; b < ZF_DB_HIST_BINS; b++) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || *end != (b + 1 < ZF_DB_HIST_BINS ? ',' : ']'))
            return -1;
        h[b] = v;
        p = end + 1;
    }
    return *p ? -1 : 0;
}

char *zf_db_put_int(char *o, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *o++ = '-';
    while (n)
        *o++ = tmp[--n];
    return o;
}

zf_status zf_db_unit_stats_put(zf_db *db, sqlite3_stmt *st, const zf_db_unit_stats *u)
{
    zf_status s;
    char hist[ZF_DB_HIST_BINS * 21 + 3];
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, u->run));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, u->layer, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 3, u->unit));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 4, u->images));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 5, u->active));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 6, u->positions));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 7, u->positive));
    if ((s = zf_db_bind_xsum(db, st, 8, 15, u->sum)))
        goto fail;
    if (u->has_max) {
        ZF_SQL_TRY(s, db, sqlite3_bind_double(st, 9, u->max));
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 10, u->max_image_id));
        ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 11, u->max_y));
        ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 12, u->max_x));
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 13, u->max_seq));
    }
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 14, u->top, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 16, u->bottom));
    if (u->hist) {
        char *o = hist;
        *o++ = '[';
        for (int b = 0; b < ZF_DB_HIST_BINS; b++) {
            if (b)
                *o++ = ',';
            o = zf_db_put_int(o, u->hist[b]);
        }
        *o++ = ']';
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 17, hist, (int)(o - hist), SQLITE_TRANSIENT));
    }
    s = zf_db_step(db, st, NULL);
fail:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return s;
}

zf_status zf_db_unit_stats_read(zf_db *db, sqlite3_stmt *st, int64_t run, const char *layer,
                                zf_db_unit_stats *u, zf_xsum *sum, int64_t *hist)
{
    memset(u, 0, sizeof *u);
    u->run = run;
    u->layer = layer;
    u->unit = sqlite3_column_int(st, 0);
    u->images = sqlite3_column_int64(st, 1);
    u->active = sqlite3_column_int64(st, 2);
    u->positions = sqlite3_column_int64(st, 3);
    u->positive = sqlite3_column_int64(st, 4);
    const char *what = "exact sum";
    if (zf_db_column_xsum(st, 5, 6, sum))
        goto bad;
    u->sum = sum;
    if ((u->has_max = sqlite3_column_type(st, 7) != SQLITE_NULL)) {
        u->max = sqlite3_column_double(st, 7);
        u->max_seq = sqlite3_column_int64(st, 8);
        u->max_y = sqlite3_column_int(st, 9);
        u->max_x = sqlite3_column_int(st, 10);
    }
    u->top = (const char *)sqlite3_column_text(st, 11);
    u->bottom = (const char *)sqlite3_column_text(st, 12);
    const char *hj = (const char *)sqlite3_column_text(st, 13);
    what = "histogram";
    if (hj && zf_db_hist_parse(hj, hist))
        goto bad;
    u->hist = hj ? hist : NULL;
    return ZF_OK;
bad:
    return zf_error(ZF_ERR_DB, "%s: run %lld: the %s of %s unit %d is damaged", db->path,
                    (long long)run, what, layer, u->unit);
}

static void dir_of(const char *path, char *dir, size_t len)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(dir, len, "%s", dirname(tmp));
}

/* Why a write to `path` cannot happen, in words, into buf. */
static const char *why_readonly(const char *path, char *buf, size_t len)
{
    char dir[1024];
    dir_of(path, dir, sizeof dir);
    if (access(path, F_OK) == 0 && access(path, W_OK) != 0)
        snprintf(buf, len, "the database file is read-only (no write permission)");
    else if (access(dir, W_OK) != 0)
        snprintf(buf, len,
                 "the folder %.700s is read-only (SQLite needs to create the database's -wal and -shm "
                 "files there)", dir);
    else
        snprintf(buf, len, "the database was opened read-only");
    return buf;
}

zf_status zf_db_check_(zf_db *db, int rc, const char *call, const char *func, const char *file,
                       int line)
{
    if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE)
        return ZF_OK;
    const char *path = db ? db->path : "(database)";
    char what[1536];
    char ro[1024];
    int sys = db && db->sql ? sqlite3_system_errno(db->sql) : 0;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        snprintf(what, sizeof what,
                 "the database is locked by another process; gave up after waiting %.1f s "
                 "(is another zfviz scan writing to it, or a sqlite3 shell holding a transaction?)",
                 db ? db->last_wait_s : 0.0);
        break;
    case SQLITE_READONLY:
        snprintf(what, sizeof what, "cannot write: %s", why_readonly(path, ro, sizeof ro));
        break;
    case SQLITE_CANTOPEN:
        if (access(path, F_OK) == 0 && db && db->mode == ZF_DB_READWRITE &&
            (access(path, W_OK) != 0 || (dir_of(path, ro, sizeof ro), access(ro, W_OK) != 0)))
            snprintf(what, sizeof what, "cannot write: %s", why_readonly(path, ro, sizeof ro));
        else
            snprintf(what, sizeof what, "cannot open the database or its journal: %s",
                     sys ? strerror(sys) : "unable to open");
        break;
    case SQLITE_FULL:
        snprintf(what, sizeof what, "the disk is full");
        break;
    case SQLITE_NOTADB:
        snprintf(what, sizeof what, "not a SQLite database");
        break;
    case SQLITE_CORRUPT:
        snprintf(what, sizeof what, "the database file is corrupt");
        break;
    case SQLITE_IOERR:
        snprintf(what, sizeof what, "I/O error: %s", sys ? strerror(sys) : sqlite3_errstr(rc));
        break;
    default:
        snprintf(what, sizeof what, "%s",
                 db && db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(rc));
        break;
    }
    zf_error(ZF_ERR_DB, "%s: %s", path, what);
    return zf_error_where(ZF_ERR_DB, "sqlite code %d: %s in %s(), %s:%d", rc, call, func, file, line);
}

zf_status zf_db_prepare(zf_db *db, sqlite3_stmt **st, const char *sql)
{
    *st = NULL;
    zf_status s = ZF_SQL(db, sqlite3_prepare_v2(db->sql, sql, -1, st, NULL));
    if (s)
        zf_error_prefix(s, "preparing \"%.60s\": ", sql);
    return s;
}

zf_status zf_db_exec(zf_db *db, const char *sql)
{
    /* the statement itself says more than the sqlite3_exec call would */
    return zf_db_check_(db, sqlite3_exec(db->sql, sql, NULL, NULL, NULL), sql, __func__, __FILE__,
                        __LINE__);
}

zf_status zf_db_step(zf_db *db, sqlite3_stmt *st, int *row)
{
    int rc = sqlite3_step(st);
    if (row)
        *row = rc == SQLITE_ROW;
    return ZF_SQL(db, rc);
}

int zf_db_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

void zf_db_column_text(sqlite3_stmt *st, int i, char *buf, size_t len)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(buf, len, "%s", t ? (const char *)t : "");
}

zf_status zf_db_prepare_unit(zf_db *db, sqlite3_stmt **st, const char *sql, int64_t run,
                             const char *layer, int unit)
{
    zf_status s = zf_db_prepare(db, st, sql);
    if (s)
        return s;
    if ((s = ZF_SQL(db, sqlite3_bind_int64(*st, 1, run))) ||
        (sqlite3_bind_parameter_count(*st) >= 2 && (s = ZF_SQL(db, zf_db_bind_text(*st, 2, layer)))) ||
        (unit >= 0 && (s = ZF_SQL(db, sqlite3_bind_int(*st, 3, unit))))) {
        sqlite3_finalize(*st);
        *st = NULL;
    }
    return s;
}

zf_status zf_db_prepare_id(zf_db *db, sqlite3_stmt **st, const char *sql, int64_t id)
{
    return zf_db_prepare_unit(db, st, sql, id, NULL, -1);
}

zf_status zf_db_get_row(zf_db *db, sqlite3_stmt **st, const char *sql, int64_t id, const char *what)
{
    int row = 0;
    zf_status s = zf_db_prepare_id(db, st, sql, id);
    if (s)
        return s;
    if (!(s = zf_db_step(db, *st, &row)) && !row)
        s = zf_error(ZF_ERR_ARG, "%s: no %s %lld", db->path, what, (long long)id);
    if (s) {
        sqlite3_finalize(*st);
        *st = NULL;
    }
    return s;
}

zf_status zf_db_grow(zf_db *db, void **v, int *cap, int n, size_t size)
{
    if (n < *cap)
        return ZF_OK;
    int c = *cap ? 2 * *cap : 16;
    void *nv = zf_realloc(*v, (size_t)c * size);
    if (!nv)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", db->path);
    *v = nv;
    *cap = c;
    return ZF_OK;
}

zf_status zf_db_rows(zf_db *db, sqlite3_stmt *st, size_t size,
                     void (*fill)(sqlite3_stmt *st, void *elem), void **out, int *n)
{
    char *v = NULL;
    int cap = 0, count = 0, row = 0;
    zf_status s;
    while (!(s = zf_db_step(db, st, &row)) && row &&
           !(s = zf_db_grow(db, (void **)&v, &cap, count, size))) {
        void *e = v + (size_t)count++ * size;
        memset(e, 0, size);
        fill(st, e);
    }
    sqlite3_finalize(st);
    if (s) {
        free(v);
        v = NULL;
        count = 0;
    }
    *out = v;
    *n = count;
    return s;
}

zf_status zf_db_column_copy(zf_db *db, sqlite3_stmt *st, int i, void **out, size_t *len)
{
    const void *b = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    void *copy = zf_malloc(n > 0 ? (size_t)n : 1);
    if (!copy)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", db->path);
    if (n > 0)
        memcpy(copy, b, (size_t)n);
    *out = copy;
    *len = (size_t)(n > 0 ? n : 0);
    return ZF_OK;
}

zf_status zf_db_image_stmts_prepare(zf_db *db, zf_db_image_stmts *q)
{
    zf_status s;
    memset(q, 0, sizeof *q);
    if ((s = zf_db_prepare(db, &q->find,
                           "SELECT id FROM images WHERE path = ?1 AND ifnull(sha256, '') = "
                           "ifnull(?2, '')")) ||
        (s = zf_db_prepare(db, &q->insert,
                           "INSERT INTO images (path, sha256, bytes, width, height, status, error) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)")) ||
        (s = zf_db_prepare(db, &q->insert_run,
                           "INSERT INTO run_images (run_id, seq, image_id, class) "
                           "VALUES (?, ?, ?, ?)")))
        zf_db_image_stmts_free(q);
    return s;
}

void zf_db_image_stmts_free(zf_db_image_stmts *q)
{
    sqlite3_finalize(q->find);
    sqlite3_finalize(q->insert);
    sqlite3_finalize(q->insert_run);
    memset(q, 0, sizeof *q);
}

zf_status zf_db_image_lookup(zf_db *db, zf_db_image_stmts *q, int64_t *id)
{
    int row = 0;
    zf_status s = zf_db_step(db, q->find, &row);
    *id = !s && row ? sqlite3_column_int64(q->find, 0) : 0;
    sqlite3_reset(q->find);
    sqlite3_clear_bindings(q->find);
    return s;
}

zf_status zf_db_image_insert(zf_db *db, zf_db_image_stmts *q, int64_t *id)
{
    zf_status s = zf_db_step(db, q->insert, NULL);
    *id = s ? 0 : sqlite3_last_insert_rowid(db->sql);
    sqlite3_reset(q->insert);
    sqlite3_clear_bindings(q->insert);
    return s;
}

zf_status zf_db_run_image_put(zf_db *db, zf_db_image_stmts *q, int64_t run, int64_t seq,
                              int64_t image_id, int cls)
{
    sqlite3_stmt *st = q->insert_run;
    zf_status s;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, run));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 2, seq));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 3, image_id));
    ZF_SQL_TRY(s, db, cls >= 0 ? sqlite3_bind_int(st, 4, cls) : sqlite3_bind_null(st, 4));
    s = zf_db_step(db, st, NULL);
fail:
    sqlite3_reset(st);
    return s;
}

zf_status zf_db_run_layer_put(zf_db *db, int64_t run, const char *name, int position, const char *op,
                              int units, int height, int width)
{
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare_unit(db, &st,
                                     "INSERT INTO run_layers (run_id, layer, position, op, units, "
                                     "height, width) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     run, name, position);
    if (s)
        return s;
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 4, op, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 5, units));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 6, height));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 7, width));
    s = zf_db_step(db, st, NULL);
fail:
    sqlite3_finalize(st);
    return s;
}

zf_status zf_db_has_view(zf_db *db, const char *name, int *found)
{
    sqlite3_stmt *st;
    *found = 0;
    zf_status s = zf_db_prepare(db, &st, "SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = ?");
    if (!s && !(s = ZF_SQL(db, sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC))))
        s = zf_db_step(db, st, found);
    sqlite3_finalize(st);
    return s;
}

/* Waits with growing sleeps, up to the timeout, telling the caller now and then. */
static int busy_wait(void *ctx, int count)
{
    zf_db *db = ctx;
    double now = zf_db_now();
    if (count == 0) {
        db->wait_start = now;
        db->wait_told = now;
    }
    double waited = now - db->wait_start;
    db->last_wait_s = waited;
    if (waited >= db->timeout_s)
        return 0;
    double gap = db->wait_told == db->wait_start ? 1.0 : 5.0;
    if (db->on_wait && now - db->wait_told >= gap) {
        db->on_wait(db->wait_ctx, db->path, waited, db->timeout_s);
        db->wait_told = now;
    }
    static const int ms[] = {1, 2, 5, 10, 20, 50, 100};
    double sleep_s = ms[count < 6 ? count : 6] * 1e-3;
    if (sleep_s > db->timeout_s - waited)
        sleep_s = db->timeout_s - waited;
    if (sleep_s > 0) {
        struct timespec ts = {(time_t)sleep_s, (long)((sleep_s - (double)(time_t)sleep_s) * 1e9)};
        nanosleep(&ts, NULL);
    }
    db->last_wait_s = zf_db_now() - db->wait_start;
    return 1;
}

static zf_status pragma_int(zf_db *db, const char *sql, int64_t *v)
{
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare(db, &st, sql);
    if (s)
        return s;
    int row = 0;
    s = zf_db_step(db, st, &row);
    *v = row ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return s;
}

/* Creates or migrates the schema; inside one write transaction so that two processes opening a
 * new file at once do not both create it. */
static zf_status ensure_schema(zf_db *db)
{
    int64_t ver, app, tables;
    zf_status s;
    if ((s = pragma_int(db, "PRAGMA user_version", &ver)))
        return s;
    if (ver == ZF_DB_SCHEMA_VERSION)
        goto check_app;
    if (ver > ZF_DB_SCHEMA_VERSION)
        return zf_error(ZF_ERR_DB,
                        "%s: the database has schema version %lld, newer than this zfviz "
                        "understands (%d); use a newer zfviz",
                        db->path, (long long)ver, ZF_DB_SCHEMA_VERSION);
    if (db->mode == ZF_DB_READONLY) {
        if (ver == 0)
            return zf_error(ZF_ERR_DB, "%s: not a zfviz database (no schema)", db->path);
        return zf_error(ZF_ERR_DB,
                        "%s: the database has the older schema version %lld; open it read-write "
                        "once (any zfviz scan) to migrate it to version %d",
                        db->path, (long long)ver, ZF_DB_SCHEMA_VERSION);
    }
    if ((s = zf_db_begin(db)))
        return s;
    /* another process may have done it while we waited for the lock */
    if ((s = pragma_int(db, "PRAGMA user_version", &ver)))
        goto fail;
    if (ver == 0) {
        if ((s = pragma_int(db, "SELECT count(*) FROM sqlite_schema", &tables)))
            goto fail;
        if (tables) {
            s = zf_error(ZF_ERR_DB, "%s: not a zfviz database (it has other tables)", db->path);
            goto fail;
        }
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d", ZF_DB_APPLICATION_ID);
        if ((s = zf_db_exec(db, sql)))
            goto fail;
    }
    for (; ver < ZF_DB_SCHEMA_VERSION; ver++) {
        if ((s = zf_db_exec(db, migrations[ver]))) {
            zf_error_prefix(s, "migrating the schema to version %lld: ", (long long)ver + 1);
            goto fail;
        }
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", ZF_DB_SCHEMA_VERSION);
    if ((s = zf_db_exec(db, sql)) || (s = zf_db_commit(db)))
        goto fail;
check_app:
    if ((s = pragma_int(db, "PRAGMA application_id", &app)))
        return s;
    if (app != ZF_DB_APPLICATION_ID)
        return zf_error(ZF_ERR_DB, "%s: not a zfviz database (application id %#llx)", db->path,
                        (unsigned long long)app);
    return ZF_OK;
fail:
    zf_db_rollback(db);
    return s;
}

static zf_status open_conn(zf_db *db, const char *uri, int flags)
{
    int rc = sqlite3_open_v2(uri, &db->sql, flags | SQLITE_OPEN_URI, NULL);
    if (rc != SQLITE_OK)
        return ZF_SQL(db, rc);
    zf_status s = ZF_SQL(db, sqlite3_extended_result_codes(db->sql, 1));
    return s ? s : ZF_SQL(db, sqlite3_busy_handler(db->sql, busy_wait, db));
}

/* file:PATH?params with PATH percent-encoded as URI filenames need. */
static void make_uri(char *buf, size_t len, const char *path, const char *params)
{
    size_t o = 0;
    o += (size_t)snprintf(buf, len, "file:");
    for (const char *p = path; *p && o + 4 < len; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '%' || c == '?' || c == '#' || c < 0x20 || c >= 0x7f)
            o += (size_t)snprintf(buf + o, len - o, "%%%02X", c);
        else
            buf[o++] = (char)c;
    }
    buf[o < len ? o : len - 1] = 0;
    if (params && *params)
        snprintf(buf + o, len > o ? len - o : 0, "?%s", params);
}

/* Closes db's connection and opens PATH?params with flags instead; v its user_version. */
static zf_status reopen(zf_db *db, const char *path, const char *params, int flags, int64_t *v)
{
    char uri[2100];
    sqlite3_close(db->sql);
    db->sql = NULL;
    make_uri(uri, sizeof uri, path, params);
    zf_status s = open_conn(db, uri, flags);
    return s ? s : pragma_int(db, "PRAGMA user_version", v);
}

zf_status zf_db_open(const char *path, const zf_db_opts *opts, zf_db **out)
{
    *out = NULL;
    zf_db_opts def = {ZF_DB_READWRITE, 30.0, NULL, NULL};
    if (!opts)
        opts = &def;
    if (!path || !*path)
        return zf_error(ZF_ERR_ARG, "no database path given");
    zf_db *db = zf_calloc(1, sizeof *db);
    if (!db)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
    snprintf(db->path, sizeof db->path, "%s", path);
    db->mode = opts->mode;
    db->timeout_s = opts->busy_timeout_s > 0 ? opts->busy_timeout_s : 30.0;
    db->on_wait = opts->on_wait;
    db->wait_ctx = opts->wait_ctx;
    zf_status s;
    char uri[2100];
    char dir[1024];
    dir_of(path, dir, sizeof dir);
    struct stat sb;
    int exists = stat(path, &sb) == 0;

    if (db->mode == ZF_DB_READONLY) {
        if (!exists) {
            s = zf_error(ZF_ERR_IO, "%s: no such database", path);
            goto fail;
        }
        make_uri(uri, sizeof uri, path, "mode=ro");
        if ((s = open_conn(db, uri, SQLITE_OPEN_READONLY)))
            goto fail;
        int64_t v;
        s = pragma_int(db, "PRAGMA user_version", &v);
        int rc = s ? sqlite3_extended_errcode(db->sql) : SQLITE_OK;
        if (rc == SQLITE_READONLY_ROLLBACK) {
            /* A writer killed in the middle of a transaction before the file was in WAL mode (a
             * scan stopped as it made its schema) left a hot journal: SQLite rolls it back, to the
             * last commit, on the next open that may write; a read-only one cannot read past it. */
            if (access(dir, W_OK) != 0 || access(path, W_OK) != 0) {
                s = zf_error(ZF_ERR_DB, "%s: a write to it was interrupted and must be rolled back, which "
                             "needs write access to it and its folder %s", path, dir);
                goto fail;
            }
            if ((s = reopen(db, path, NULL, SQLITE_OPEN_READWRITE, &v)))
                goto fail;
            s = reopen(db, path, "mode=ro", SQLITE_OPEN_READONLY, &v);
            rc = s ? sqlite3_extended_errcode(db->sql) : SQLITE_OK;
        }
        rc &= 0xff;
        if (rc == SQLITE_CANTOPEN || rc == SQLITE_READONLY)
            /* A WAL database in a folder we cannot write: nobody can be writing to it either, so
             * read it as an immutable file. */
            s = reopen(db, path, "mode=ro&immutable=1", SQLITE_OPEN_READONLY, &v);
        if (s)
            goto fail;
    } else {
        if (!exists && access(dir, W_OK) != 0) {
            s = zf_error(ZF_ERR_IO, "%s: cannot create the database: the folder %s is %s", path,
                         dir, access(dir, F_OK) ? "missing" : "read-only");
            goto fail;
        }
        make_uri(uri, sizeof uri, path, NULL);
        if ((s = open_conn(db, uri, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)))
            goto fail;
        if (sqlite3_db_readonly(db->sql, "main") == 1) {
            char ro[1024];
            s = zf_error(ZF_ERR_DB, "%s: cannot write: %s", path, why_readonly(path, ro, sizeof ro));
            goto fail;
        }
        if (exists && access(dir, W_OK) != 0) {
            char ro[1024];
            s = zf_error(ZF_ERR_DB, "%s: cannot write: %s", path, why_readonly(path, ro, sizeof ro));
            goto fail;
        }
        /* Larger pages: a scan rewrites every unit's row at each commit (a fifth faster). Only
         * a new file can take it; WAL fixes the page size. */
        if (!exists && (s = zf_db_exec(db, "PRAGMA page_size = 16384")))
            goto fail;
        /* WAL: readers (reports, a second scan's look-ups) never block the scan's commits, and a
         * killed writer leaves nothing half-written. NORMAL sync keeps every commit across a
         * process crash; a power cut may lose the last commits, never consistency. */
        sqlite3_stmt *st;
        if ((s = zf_db_prepare(db, &st, "PRAGMA journal_mode = WAL")))
            goto fail;
        int row = 0;
        s = zf_db_step(db, st, &row);
        char mode[16] = "";
        if (!s && row)
            zf_db_column_text(st, 0, mode, sizeof mode);
        sqlite3_finalize(st);
        if (s)
            goto fail;
        if (strcmp(mode, "wal") != 0) {
            s = zf_error(ZF_ERR_DB, "%s: cannot switch the database to WAL mode (it stays in %s)",
                         path, mode);
            goto fail;
        }
        if ((s = zf_db_exec(db, "PRAGMA synchronous = NORMAL")))
            goto fail;
    }
    if ((s = zf_db_exec(db, "PRAGMA foreign_keys = ON")))
        goto fail;
    if ((s = ensure_schema(db)))
        goto fail;
    *out = db;
    return ZF_OK;
fail:
    zf_db_close(db);
    return s;
}

void zf_db_close(zf_db *db)
{
    if (!db)
        return;
    if (db->sql) {
        if (db->in_tx)
            sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(db->sql);
    }
    free(db);
}

const char *zf_db_path(const zf_db *db) { return db->path; }

const char *zf_db_network_fs(const char *path)
{
    static const struct {
        unsigned long magic;
        const char *name;
    } fs[] = {
        {0x6969, "NFS"},           {0x517B, "SMB"},        {0xFF534D42, "CIFS"},
        {0xFE534D42, "SMB2"},      {0x0BD00BD0, "Lustre"}, {0x47504653, "GPFS"},
        {0x00C36400, "CephFS"},    {0x5346414F, "AFS"},    {0x01021997, "9p"},
        {0x19830326, "BeeGFS"},    {0x564C, "NCP"},        {0x6B414653, "AFS (kAFS)"},
    };
    struct statfs sf;
    char dir[1024];
    if (statfs(path, &sf) != 0) {
        dir_of(path, dir, sizeof dir);
        if (statfs(dir, &sf) != 0)
            return NULL;
    }
    unsigned long magic = (unsigned long)sf.f_type & 0xFFFFFFFFul;
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++)
        if (magic == fs[i].magic)
            return fs[i].name;
    return NULL;
}
sqlite3 *zf_db_handle(zf_db *db) { return db->sql; }

zf_status zf_db_begin(zf_db *db)
{
    if (db->mode == ZF_DB_READONLY)
        return zf_error(ZF_ERR_DB, "%s: opened read-only; cannot write", db->path);
    zf_status s = zf_db_exec(db, "BEGIN IMMEDIATE");
    if (!s)
        db->in_tx = 1;
    return s;
}

zf_status zf_db_commit(zf_db *db)
{
    zf_status s = zf_db_exec(db, "COMMIT");
    if (!s)
        db->in_tx = 0;
    return s;
}

void zf_db_rollback(zf_db *db)
{
    if (db && db->sql && !sqlite3_get_autocommit(db->sql))
        sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
    if (db)
        db->in_tx = 0;
}

/* ---- models ---- */

static void describe_preproc(const zf_preproc *p, char *buf, size_t len)
{
    /* A grey net uses one mean and std (zf_image_to_input); naming it "grey" also tells its hash
     * from a one-channel net fed otherwise. RGB and BGR keep their old text: stored hashes stay. */
    if (p->order == ZF_COLOR_GREY) {
        char resize[64];
        if (p->resize == ZF_RESIZE_EXACT)
            snprintf(resize, sizeof resize, "exact");
        else
            snprintf(resize, sizeof resize, "short:%d,centre-crop", p->resize_short);
        snprintf(buf, len, "grey scale=%g mean=%g std=%g resize=%s", p->scale, p->mean[0], p->std[0], resize);
        return;
    }
    if (p->resize == ZF_RESIZE_EXACT)
        snprintf(buf, len, "%s scale=%g mean=%g,%g,%g std=%g,%g,%g resize=exact",
                 p->order == ZF_COLOR_BGR ? "bgr" : "rgb", p->scale, p->mean[0], p->mean[1],
                 p->mean[2], p->std[0], p->std[1], p->std[2]);
    else
        snprintf(buf, len, "%s scale=%g mean=%g,%g,%g std=%g,%g,%g resize=short:%d,centre-crop",
                 p->order == ZF_COLOR_BGR ? "bgr" : "rgb", p->scale, p->mean[0], p->mean[1],
                 p->mean[2], p->std[0], p->std[1], p->std[2], p->resize_short);
}

zf_status zf_db_model_hash(const zf_net *net, char hex[65])
{
    zf_sha256 h;
    zf_sha256_init(&h);
    char line[512];
    int n = snprintf(line, sizeof line, "zfviz-model 1\ninput %dx%dx%d\n", net->in_c, net->in_h,
                     net->in_w);
    zf_sha256_update(&h, line, (size_t)n);
    describe_preproc(&net->pre, line, sizeof line);
    zf_sha256_update(&h, line, strlen(line));
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        n = snprintf(line, sizeof line,
                     "\n%s %d in %dx%dx%d out %dx%dx%d win %d,%d,%d,%d,%d,%d,%d,%d g %d ceil %d "
                     "cip %d lrn %d,%d,%.9g,%.9g,%.9g w %lld b %lld",
                     zf_op_name(l->op), (int)l->op, l->in_c, l->in_h, l->in_w, l->out_c, l->out_h,
                     l->out_w, l->win.kh, l->win.kw, l->win.sh, l->win.sw, l->win.pt, l->win.pl,
                     l->win.pb, l->win.pr, l->groups, l->ceil_mode, l->count_include_pad,
                     l->lrn.size, l->lrn.front, l->lrn.alpha, l->lrn.beta, l->lrn.k,
                     (long long)l->weight_count, (long long)l->bias_count);
        zf_sha256_update(&h, line, (size_t)n);
    }
    /* the parameters as little-endian float32 (the only byte order the engine runs on) */
    zf_sha256_update(&h, net->params, (size_t)net->n_params * sizeof(float));
    zf_sha256_final_hex(&h, hex);
    return ZF_OK;
}

zf_status zf_db_model_put(zf_db *db, const zf_net *net, const char *weights, const char *file,
                          int64_t *id)
{
    char hex[65];
    zf_status s = zf_db_model_hash(net, hex);
    if (s)
        return s;
    sqlite3_stmt *st = NULL;
    int row = 0;
    if ((s = zf_db_prepare(db, &st, "SELECT id FROM models WHERE sha256 = ?")))
        return s;
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC));
    if ((s = zf_db_step(db, st, &row)))
        goto fail;
    if (row) {
        *id = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return ZF_OK;
    }
    sqlite3_finalize(st);
    zf_db_model m = {0};
    snprintf(m.arch, sizeof m.arch, "%s", net->arch);
    snprintf(m.weights, sizeof m.weights, "%s", weights ? weights : "");
    snprintf(m.file, sizeof m.file, "%s", file ? file : "");
    snprintf(m.sha256, sizeof m.sha256, "%s", hex);
    m.n_params = zf_net_param_count(net);
    snprintf(m.input, sizeof m.input, "%dx%dx%d", net->in_c, net->in_h, net->in_w);
    describe_preproc(&net->pre, m.preproc, sizeof m.preproc);
    return zf_db_model_insert(db, &m, id);
fail:
    sqlite3_finalize(st);
    return s;
}

zf_status zf_db_model_insert(zf_db *db, const zf_db_model *m, int64_t *id)
{
    sqlite3_stmt *st;
    zf_status s = zf_db_prepare(db, &st,
                                "INSERT INTO models (arch, weights, file, sha256, n_params, input, "
                                "preproc) VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (s)
        return s;
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 1, m->arch, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 2, *m->weights ? m->weights : NULL));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 3, *m->file ? m->file : NULL));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 4, m->sha256, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 5, m->n_params));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 6, m->input, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 7, m->preproc, -1, SQLITE_STATIC));
    if (!(s = zf_db_step(db, st, NULL)))
        *id = sqlite3_last_insert_rowid(db->sql);
fail:
    sqlite3_finalize(st);
    return s;
}

zf_status zf_db_model_get(zf_db *db, int64_t id, zf_db_model *m)
{
    memset(m, 0, sizeof *m);
    sqlite3_stmt *st;
    zf_status s = zf_db_get_row(db, &st,
                                "SELECT id, arch, weights, file, sha256, n_params, input, preproc "
                                "FROM models WHERE id = ?",
                                id, "model");
    if (s)
        return s;
    m->id = sqlite3_column_int64(st, 0);
    zf_db_column_text(st, 1, m->arch, sizeof m->arch);
    zf_db_column_text(st, 2, m->weights, sizeof m->weights);
    zf_db_column_text(st, 3, m->file, sizeof m->file);
    zf_db_column_text(st, 4, m->sha256, sizeof m->sha256);
    m->n_params = sqlite3_column_int64(st, 5);
    zf_db_column_text(st, 6, m->input, sizeof m->input);
    zf_db_column_text(st, 7, m->preproc, sizeof m->preproc);
    sqlite3_finalize(st);
    return ZF_OK;
}
