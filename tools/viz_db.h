/* Scan databases for the commands: opening them (--wait), the model a scan recorded, and the glue
 * between the store (zf_db) and the viz renderers behind zfviz sheet and zfviz report, and storing
 * renderings as PNG blobs (--store). */
#ifndef ZF_TOOLS_VIZ_DB_H
#define ZF_TOOLS_VIZ_DB_H

#include "common.h"
#include "zf/db.h"
#include "zf/viz.h"

/* --reroot OLD=NEW: a stored image path under folder OLD is read from the same place under NEW
 * (a dataset moved or mounted elsewhere since the scan). */
typedef struct zft_reroot {
    char from[2048], to[2048];
    int set;
} zft_reroot;
#define ZFT_OPT_REROOT 0x5200
#define ZFT_REROOT_OPT(r) ZFT_PARSE("reroot", ZFT_OPT_REROOT, zft_reroot_set, (r))
#define ZFT_REROOT_HELP \
    "  --reroot OLD=NEW  read the scanned images under folder OLD from folder NEW instead (the\n" \
    "                    dataset moved since the scan; the database keeps the old paths)\n"
/* Parses "OLD=NEW" (both non-empty; trailing slashes ignored). */
zf_status zft_reroot_parse(zft_reroot *r, const char *spec);
/* zft_reroot_parse for an option table (ZFT_PARSE): r is a zft_reroot. */
zf_status zft_reroot_set(void *r, const char *spec);
/* Where to read a stored `path` from: under NEW when it lies under OLD, else itself. */
const char *zft_reroot_path(const zft_reroot *r, const char *path, char *buf, size_t len);
/* The scanned file of example `e` (rerooted by r, which may be NULL), checked unchanged since the
 * scan by its hash, preprocessed into `in`. Errors name the file and say whether it is missing. */
zf_status zft_example_load(const zf_net *net, const zf_db_example *e, const zft_reroot *r, float *in);

/* A scan opened for pictures: the run, its model, and the net rebuilt from what the run recorded
 * (or from the model options given), checked against the recorded hash. Set reroot after opening
 * to read moved images. */
typedef struct zft_scan {
    zf_db *db;
    zf_db_run run;
    zf_db_model model;
    zf_net *net;
    zft_reroot reroot;
    char **missing; /* images found missing so far (each is warned of once) */
    int n_missing;
    /* where the sheets' projections run (--device, --precision; auto: a GPU when there is one),
     * opened for batches of 9 when the first sheet is built */
    zft_device device;
    int device_open;
} zft_scan;

/* The scan's forward (zf_scan_opts.forward) on an engine other than the CPU's: the forward up to
 * the last scanned layer on the device; the conv layers' statistics reduced there
 * (zf_scan_opts.layer_stats, where the engine has ZF_ENGINE_OP_STATS) and the other scanned layers
 * read back into net->acts for the scan to reduce on the host. */
typedef struct zft_scan_forward {
    zft_device *dev;
    const int *layers; /* the scanned layers; NULL: zf_db_scan_default_layers */
    int n_layers;
    int *idx, n_idx, last, batch; /* what open resolved: idx the layers read back */
    int device_stats;             /* the engine summarises the layers of more than one position */
} zft_scan_forward;
/* Resolves the layers and opens f->dev's engine for `net` at batches of `batch`. */
zf_status zft_scan_forward_open(zft_scan_forward *f, zf_net *net, int batch);
/* Where the chosen engine is not the CPU's: opens f for `net` (zft_scan_forward_open) and points
 * so's forward, layer_stats or fold, host memory, prefetch and forward_ctx at it (viz_db.c's
 * hooks, each the engine's zf_engine_* op). On the CPU engine so is left as it is: the scan's own
 * layer-by-layer forward. One rule for zfviz scan and the demo's scans. */
zf_status zft_scan_forward_attach(zft_scan_forward *f, zf_net *net, int batch, zf_scan_opts *so);
/* Frees what open made and closes the engine; a zeroed f is a no-op. */
void zft_scan_forward_close(zft_scan_forward *f);

/* zf_db_open with --wait's timeout, telling the user while it waits for another process's lock. */
zf_status zft_db_open(const char *path, int readwrite, zf_db **out);

/* The model a scan recorded (`m`, of run `run_id`), or the one `given` names, loaded and checked
 * against the recorded hash: one rule for every command that reads a scan. */
zf_status zft_load_recorded_model(const zf_db_model *m, int64_t run_id, const zft_model_opts *given,
                                  zf_net **out);

/* Opens `dbpath` and reads run `run_id` (0: the newest run covering `layer`, or any run if NULL)
 * and its model record, without building the net. zft_scan_close frees what was opened, also
 * after a failure. */
zf_status zft_run_open(zft_scan *s, const char *dbpath, int64_t run_id, const char *layer, int readwrite);
/* zft_run_open, and the net the run scanned (zft_load_recorded_model). */
zf_status zft_scan_open(zft_scan *s, const char *dbpath, int64_t run_id, const char *layer,
                        const zft_model_opts *given, int readwrite);
void zft_scan_close(zft_scan *s);

/* Up to n units of `layer` with the strongest single activation over the scan, strongest first. */
zf_status zft_scan_strongest_units(zft_scan *s, const char *layer, int n, int *units, int *got);

/* A top-9 sheet of `units` of `layer`: each unit's stored examples (up to 9), projected with the
 * deconvnet at their positions and cropped, with the input patches, to their receptive fields. An
 * example whose image is missing or changed is drawn as a grey crossed-out placeholder captioned
 * "missing: NAME" (one warning per image on stderr); only a sheet none of whose images could be
 * read is an error. */
typedef struct zft_sheet {
    zf_viz_sheet_in in;
    zf_viz_unit *units;
    zf_viz_patch *patches;  /* 9 per unit */
    void **bufs;            /* everything the patches point to */
    int n_bufs, cap_bufs;
    int n_examples, n_missing; /* examples drawn, and those drawn as placeholders */
    char title[128];
} zft_sheet;
zf_status zft_sheet_build(zft_sheet *out, zft_scan *s, const char *layer, const int *units, int n,
                          int lrn_backward);
void zft_sheet_free(zft_sheet *sh);

/* The report of a run (refused for a run in which no image could be read): model summary, filter grids of every conv layer, the dead-unit table
 * (min_active as zfviz dead takes it) and top-9 sheets of the `top_units` strongest units of each
 * scanned conv layer. */
typedef struct zft_report {
    zf_viz_report_in in;
    zf_viz_layer_row *layers;
    zf_viz_filters_in *grids;
    zf_viz_dead_row *dead;
    zft_sheet *sheets;
    int n_sheets;
    char **strings;
    int n_strings, cap_strings;
    zf_viz_occlusion *occl;     /* rows of in.occlusions */
    void **bufs;                /* what the rows point to */
    int n_bufs, cap_bufs;
} zft_report;
zf_status zft_report_build(zft_report *out, zft_scan *s, double min_active, int top_units);
/* Adds the occlusion figure of the image at `path` (ZF Fig. 7: a patch x patch grey square at
 * `stride`, the strongest map of the last conv layer, the top class of the unoccluded image). */
zf_status zft_report_add_occlusion(zft_report *r, zft_scan *s, const char *path, int patch, int stride);
void zft_report_free(zft_report *r);

/* Renders one page with fn into a PNG in memory and stores it in the database (table renderings)
 * with what it shows; its width and height are filled in. */
typedef zf_status (*zft_render_fn)(zf_viz_doc *doc, void *ctx);
zf_status zft_store_rendering(zf_db *db, const zf_db_rendering *what, zft_render_fn fn, void *ctx, int64_t *id);
/* The same into the database at `dbpath` (created if missing); prints where it went. */
zf_status zft_store_rendering_at(const char *dbpath, const zf_db_rendering *what, zft_render_fn fn, void *ctx);

#endif
