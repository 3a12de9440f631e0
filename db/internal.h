/* What the db/ sources share and nobody else sees: the connection struct, the one macro every
 * SQLite call goes through, and small statement helpers. */
#ifndef ZF_DB_INTERNAL_H
#define ZF_DB_INTERNAL_H

#include <nettle/sha2.h>
#include <sqlite3.h>
#include <stdint.h>

#include "zf/db.h"

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
/* Reads a histogram as unit_stats.hist stores it (ZF_DB_HIST_BINS counts); 0, or -1 if damaged. */
int zf_db_hist_parse(const char *json, int64_t *h);
/* Seconds since the epoch, monotonic not needed: for lock-wait bookkeeping. */
double zf_db_now(void);

/* SHA-256, streaming (nettle's; final_hex resets it for reuse, as nettle's digest does). */
typedef struct zf_sha256 {
    struct sha256_ctx ctx;
} zf_sha256;
void zf_sha256_init(zf_sha256 *s);
void zf_sha256_update(zf_sha256 *s, const void *data, size_t len);
void zf_sha256_final_hex(zf_sha256 *s, char hex[65]);

#endif
