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
/* Stores (or replaces) a conv or fc layer's parameters after `epoch`: its weights in the row named
 * for the layer (shape "out,in,kh,kw" or "out,in"), with an optional PNG of them, and its biases in
 * the row "<layer>.bias" (shape "out"). */
zf_status zf_db_train_snapshot_put(zf_db *db, int64_t run_id, int epoch, const zf_layer *l,
                                   const void *png, size_t png_len);
/* The epochs the run has snapshots of, ascending (malloc'd; the caller frees *epochs). */
zf_status zf_db_train_snapshot_epochs(zf_db *db, int64_t run_id, int **epochs, int *n);
/* Every parameter of net (each conv and fc layer's weights and biases) from the run's snapshot of
 * `epoch`. A missing row or one whose shape differs from the net's is an error naming it; a snapshot
 * with filters but no biases (written before they were recorded) is refused as such. */
zf_status zf_db_train_snapshot_get(zf_db *db, int64_t run_id, int epoch, zf_net *net);
/* Training run `run_id` (0: the latest in the store): its id, model file and architecture. */
zf_status zf_db_train_run_info(zf_db *db, int64_t run_id, int64_t *id, char *out, size_t out_len, char *arch,
                               size_t arch_len);
/* The latest training run of model file `out` (0 when there is none). */
zf_status zf_db_train_run_find(zf_db *db, const char *out, int64_t *run_id);

#ifdef __cplusplus
}
#endif
#endif
