/* libFuzzer target: a scan database that is corrupt, truncated or from a newer schema, opened
 * read-only and then read-write (which migrates an older schema), with the queries the commands
 * run on it: SQLite's own checks and the project's code must both fail cleanly. */
#include <string.h>

#include "fuzz_util.h"
#include "zf/db.h"

static void on_run(void *ctx, const zf_db_run *run, const zf_db_model *m)
{
    (void)ctx;
    (void)run;
    (void)m;
}

static void on_error(void *ctx, int64_t seq, const char *path, const char *error)
{
    (void)ctx;
    (void)seq;
    (void)path;
    (void)error;
}

static void queries(zf_db *db)
{
    zf_db_runs(db, on_run, NULL);
    int64_t run = 0;
    if (zf_db_run_latest(db, NULL, &run) != ZF_OK)
        return;
    zf_db_run r;
    zf_db_run_get(db, run, &r);
    zf_db_run_errors(db, run, on_error, NULL);
    zf_db_dead *dead = NULL;
    int nd = 0;
    if (zf_db_dead_units(db, run, NULL, 0.01, &dead, &nd) == ZF_OK)
        free(dead);
    zf_db_example *ex = NULL;
    int ne = 0;
    if (zf_db_topk_get(db, run, "conv1", 0, &ex, &ne) == ZF_OK)
        free(ex);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fz_write(data, size, ".db");
    char path[256], side[300];
    snprintf(path, sizeof path, "%s", p);
    for (int mode = ZF_DB_READONLY; mode >= ZF_DB_READWRITE; mode--) {
        zf_db_opts o = {.mode = (zf_db_mode)mode, .busy_timeout_s = 0.01};
        zf_db *db = NULL;
        if (zf_db_open(path, &o, &db) == ZF_OK) {
            queries(db);
            zf_db_close(db);
        }
    }
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-journal", path);
    unlink(side);
    return 0;
}
