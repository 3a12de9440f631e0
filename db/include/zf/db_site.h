/* Reads for the unit atlas (zfviz site, zfviz serve): a layer's unit statistics in one query and
 * the stored rendering of one example, found by what it shows. */
#ifndef ZF_DB_SITE_H
#define ZF_DB_SITE_H

#include <stddef.h>
#include <stdint.h>

#include "zf/db.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One row of the view unit_summary. */
typedef struct zf_db_unit_row {
    int unit;
    int64_t images;
    double active_fraction, positive_fraction, mean, max;
    int64_t max_image_id;
    int max_y, max_x;
} zf_db_unit_row;

/* Every unit of `layer` in run `run`, in unit order. The caller frees *out with free(). */
zf_status zf_db_layer_units(zf_db *db, int64_t run, const char *layer, zf_db_unit_row **out, int *n);

/* The newest stored rendering of `kind` for (run, layer, unit, rank) made from image `image_id`:
 * its PNG bytes (malloc'd, the caller frees them) in *png, or *png = NULL when there is none. */
zf_status zf_db_rendering_find(zf_db *db, int64_t run, const char *layer, int unit, int rank,
                               const char *kind, int64_t image_id, void **png, size_t *len);

/* The stored bottom-k of a unit (view bottomk: each image's most negative value, the k lowest,
 * lowest first) with rank, image, seq, score, position, receptive field, path and hash; none (*n = 0) in a database
 * from before the bottom-k or for a run that did not keep it. The caller frees *out. */
zf_status zf_db_bottomk_get(zf_db *db, int64_t run, const char *layer, int unit, zf_db_example **out, int *n);

/* A unit's class selectivity (view unit_selectivity): the index, or has_index 0 where the view
 * holds NULL (fewer than two classes, a unit that never fired), and the class of the largest class
 * mean ("" when it is 0). */
typedef struct zf_db_selectivity {
    int unit;
    int has_index;
    double selectivity;
    char best_class[256];
} zf_db_selectivity;
/* The rows of `layer` in run `run`, in unit order; none (*n = 0) for a run whose images are not in
 * class folders or a database from before the class statistics. The caller frees *out. */
zf_status zf_db_layer_selectivity(zf_db *db, int64_t run, const char *layer, zf_db_selectivity **out, int *n);

/* One class's mean activation of a unit (view unit_class_mean). */
typedef struct zf_db_class_mean {
    char name[256];
    int64_t images;
    double mean;
} zf_db_class_mean;
/* Every class's mean of a unit, the largest first (ties by name); none without class statistics.
 * The caller frees *out. */
zf_status zf_db_unit_class_means(zf_db *db, int64_t run, const char *layer, int unit, zf_db_class_mean **out,
                                 int *n);

/* The class (run_classes.name) of the image at `seq` in run `run`, or "" for one in no class folder. */
zf_status zf_db_image_class(zf_db *db, int64_t run, int64_t seq, char *name, size_t len);

/* The image at `seq` of run `run` (image_id, seq, path, sha256 of *e): *found 1, 2 when it failed to
 * load in the scan, 0 when the run has no such seq. */
zf_status zf_db_run_image(zf_db *db, int64_t run, int64_t seq, zf_db_example *e, int *found);

/* A unit's histogram of values before the ReLU (view histogram, ZF_DB_HIST_BINS bins as the
 * table histogram_bins defines them): counts[bin], and *found = 1 when the run kept one (0 for a
 * database or run from before the histograms). */
zf_status zf_db_unit_hist_get(zf_db *db, int64_t run, const char *layer, int unit, int64_t *counts, int *found);

#ifdef __cplusplus
}
#endif
#endif
