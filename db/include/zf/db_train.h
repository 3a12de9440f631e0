/* Training runs in the SQLite store: one row per run, its per-epoch metrics and filter snapshots
 * (tables train_runs, train_epochs, train_snapshots; docs/db.md). */
#ifndef ZF_DB_TRAIN_H
#define ZF_DB_TRAIN_H

#include "zf/db.h"
#include "zf/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A new run for model file `out`, or with resume the latest run recorded for `out` (a new one when
 * there is none). config is a JSON object of the settings. */
zf_status zf_db_train_run(zf_db *db, const char *out, const char *arch, const char *data,
                          const char *config, int resume, int64_t *run_id);
/* Stores (or replaces) an epoch's metrics. */
zf_status zf_db_train_epoch_put(zf_db *db, int64_t run_id, const zf_epoch_stats *s);
/* The run's epochs in order (malloc'd; the caller frees *out). */
zf_status zf_db_train_epochs(zf_db *db, int64_t run_id, zf_epoch_stats **out, int *n);
/* Stores (or replaces) a conv layer's filters after `epoch`, with an optional PNG of them. */
zf_status zf_db_train_snapshot_put(zf_db *db, int64_t run_id, int epoch, const zf_layer *l,
                                   const void *png, size_t png_len);
/* The latest training run of model file `out` (0 when there is none). */
zf_status zf_db_train_run_find(zf_db *db, const char *out, int64_t *run_id);

#ifdef __cplusplus
}
#endif
#endif
