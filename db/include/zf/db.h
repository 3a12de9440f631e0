/* The SQLite store: models, images, scan runs, per-unit statistics, top-k examples and stored
 * renderings, plus the dataset scan that fills it. Schema and example queries: docs/db.md. */
#ifndef ZF_DB_H
#define ZF_DB_H

#include <stddef.h>
#include <stdint.h>

#include "zf/io.h"
#include "zf/net.h"
#include "zf/fold.h"
#include "zf/stats.h"
#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The schema version this library creates and reads (PRAGMA user_version). */
#define ZF_DB_SCHEMA_VERSION 4

typedef struct zf_db zf_db; /* opaque: one SQLite connection and its path */

typedef enum { ZF_DB_READWRITE = 0, ZF_DB_READONLY = 1 } zf_db_mode;

/* Called while a write waits for a lock another connection holds: once after about a second and
 * then every few seconds, with how long it has waited and how long it will. */
typedef void (*zf_db_wait_fn)(void *ctx, const char *path, double waited_s, double timeout_s);

typedef struct zf_db_opts {
    zf_db_mode mode;
    double busy_timeout_s; /* how long to wait for another process's lock; <= 0: 30 s */
    zf_db_wait_fn on_wait; /* may be NULL */
    void *wait_ctx;
} zf_db_opts;

/* Opens `path` (read-write mode creates it and its schema, and migrates an older schema). A
 * read-only file or folder, a newer schema, a file that is not a zfviz database, or a lock held
 * longer than the timeout are errors whose message says which. opts NULL: read-write, 30 s. */
zf_status zf_db_open(const char *path, const zf_db_opts *opts, zf_db **out);
void zf_db_close(zf_db *db);
const char *zf_db_path(const zf_db *db);
/* The network filesystem `path` (or, while it does not exist, its folder) lies on ("NFS",
 * "Lustre", "GPFS", "CIFS", ...), or NULL for a local one. WAL mode needs shared memory between
 * the processes that open a database, which these do not give reliably: scans belong on local
 * disk (docs/scale.md). */
const char *zf_db_network_fs(const char *path);
/* The connection, for read queries (tests, reports); writes go through this API. */
struct sqlite3 *zf_db_handle(zf_db *db);

/* A write transaction (BEGIN IMMEDIATE: takes the write lock at once, waiting as opts say). */
zf_status zf_db_begin(zf_db *db);
zf_status zf_db_commit(zf_db *db);
void zf_db_rollback(zf_db *db);

/* SHA-256 of `len` bytes as 64 hex digits and a NUL. */
void zf_db_sha256_hex(const void *data, size_t len, char hex[65]);

/* ---- models ---- */

/* A model's identity: SHA-256 over its layer chain (ops, geometry), input shape, preprocessing
 * and every parameter. Two files with the same weights hash alike. */
zf_status zf_db_model_hash(const zf_net *net, char hex[65]);

typedef struct zf_db_model {
    int64_t id;
    char arch[64];
    char weights[1024]; /* --weights as given (random:SEED) or made absolute; "" for a model file */
    char file[1024];    /* --model file, absolute; "" for a built-in arch */
    char sha256[65];
    int64_t n_params;
    char input[32];     /* "3x224x224" */
    char preproc[256];  /* human-readable: order, scale, mean, std, resize */
} zf_db_model;

/* The id of the row for `net` (matched by hash), inserting it if new. Inside a transaction. */
zf_status zf_db_model_put(zf_db *db, const zf_net *net, const char *weights, const char *file,
                          int64_t *id);
zf_status zf_db_model_get(zf_db *db, int64_t id, zf_db_model *out);

/* ---- receptive fields ---- */

/* A box of input pixels, half-open: columns [x0, x1), rows [y0, y1). */
typedef struct zf_box {
    int x0, y0, x1, y1;
} zf_box;

/* The input pixels that position (y, x) of layer `layer`'s output depends on: every conv and
 * pool window below it composed (padding included, then clipped to the input); LRN, ReLU and
 * dropout keep the box, adaptive pooling uses its bins, and a fully connected layer (or any layer
 * after one) sees the whole input. */
zf_status zf_db_receptive_field(const zf_net *net, int layer, int y, int x, zf_box *out);

/* ---- scans ---- */

/* The per-unit histogram of the values before the ReLU (unit_stats.hist, a JSON array of counts),
 * over fixed bins so that histograms of parts add up: zf_hist_bin's (zf/stats.h; quarter octaves of
 * magnitudes in [2^-16, 2^16), mirrored for negative values, NaN last). Edges: table histogram_bins. */
#define ZF_DB_HIST_BINS ZF_HIST_BINS

/* The images of a scan, in the order they are processed: a folder is walked recursively and its
 * .jpg/.jpeg/.png files (any case) sorted by path bytewise; any other path is a list file with one
 * image path a line (blank lines and lines starting with # skipped, relative paths taken from
 * the list file's folder), kept in its order. Paths come back absolute. */
zf_status zf_db_scan_list(const char *dir_or_list, char ***paths, int64_t *n);
void zf_db_scan_list_free(char **paths, int64_t n);

/* The layers a scan covers by default: every conv or fc layer that a ReLU follows. Writes their
 * indices into idx (room for net->n_layers) and returns the count. */
int zf_db_scan_default_layers(const zf_net *net, int *idx);
/* Whether the scan has another engine summarise a scanned layer (zf_scan_opts.layer_stats, or keep
 * its accumulators: fold_*) rather than read its output back: every layer of more than one
 * position (conv layers); the others (fc layers, one value a unit) the forward hook must bring to
 * net->acts. The one rule for the scan and the hooks that serve it. */
int zf_db_scan_on_engine(const zf_layer *l);

typedef struct zf_scan_result {
    int64_t run_id;
    int64_t n_images;   /* in the list (in the shard's slice of it, for a shard; start_seq and
                         * next_seq count from the slice's start too) */
    int64_t start_seq;  /* where this call started: 0, or where an earlier scan of the run stopped */
    int64_t next_seq;   /* images committed when it returned */
    int64_t n_ok, n_failed;
    int resumed;        /* the run existed */
    int batch, chunk;   /* as the run uses them */
    int n_classes;      /* the list's classes (images in one folder per class); 0: none, or a
                         * run begun before schema 4, which keeps no class statistics */
    /* where this call's time went, in seconds: decoding images (with the CPU engine, between
     * forwards on every core; with another engine, waiting for the thread that decodes ahead),
     * the forward passes, the statistics and top-k, the commits; and all of it from the first
     * image on (setup such as hashing the model excluded) */
    double secs_wait, secs_forward, secs_stats, secs_commit, secs_images;
    int decode_threads; /* that decoded ahead of another engine; 0 where the batches were decoded
                         * between the CPU engine's forwards, on its threads */
} zf_scan_result;

typedef struct zf_scan_opts {
    const int *layers; int n_layers; /* conv/fc layer indices; NULL: zf_db_scan_default_layers */
    int top_k;                       /* examples kept per unit; <= 0: 9 */
    int batch;                       /* images per forward; <= 0: 16 (a resumed run keeps its own) */
    int chunk;                       /* images per commit, rounded up to a multiple of batch; <= 0: 512 */
    const char *images_arg;          /* recorded with the run: the folder or list as given */
    const char *weights, *model_file;/* recorded with the model (zf_db_model_put) */
    /* Called once the run is found or made (before any image is decoded), with res filled as far
     * as it is known: run id, start_seq, batch, chunk. */
    void (*started)(void *ctx, const zf_scan_result *res);
    /* Called after each batch with the images done so far (of the whole list; the last ones may
     * not be committed yet) and the total. */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
    /* The forward pass, for another engine (CUDA); NULL: the CPU engine, run up to the last
     * scanned layer. Must leave each scanned layer's output (before its ReLU) in net->acts for
     * the n images. */
    zf_status (*forward)(void *ctx, zf_net *net, const float *input, int n);
    void *forward_ctx;
    /* With `forward`: NULL, or the summaries of a scanned layer's output for the last forward's n
     * images made where it ran (zf_engine_layer_stats: planes[i * units + c] and the units x
     * ZF_HIST_BINS histogram counts, added into hist, which the scan zeroes), called with
     * forward_ctx for each scanned layer whose output has more than one position (conv layers;
     * `layer` is the one whose output is read: the conv or its in-place ReLU). `forward` need not
     * bring those layers to net->acts, only the others (fc layers). */
    zf_status (*layer_stats)(void *ctx, int layer, int n, zf_plane_stats *planes, int64_t *hist);
    /* With `forward`, each NULL or as the engine's (zf_engine_host_alloc, zf_engine_prefetch),
     * called with forward_ctx: host_alloc gives the memory the decoded batches are written into
     * (page-locked: the engine copies from it beside its work; NULL where it cannot, and the scan
     * takes its own) and host_free takes it back; prefetch is called with the next batch, where it
     * is decoded already, before this batch's forward, which then need not wait for its copy. */
    void *(*host_alloc)(void *ctx, size_t bytes);
    void (*host_free)(void *ctx, void *p);
    zf_status (*prefetch)(void *ctx, const float *input, int n);
    /* With `forward`: NULL, or the accumulators of the scanned layers of more than one position
     * kept where the forward ran (zf_engine_fold_open, _add, _read), so that only they cross, at
     * each commit: fold_open(ctx, i, acc) once for the i-th scanned layer with its accumulators as
     * they stand (a resumed run's loaded), fold_add(ctx, i, layer, n, seqs, classes) after each
     * forward instead of layer_stats (`layer` as there; classes NULL without class folders), and
     * fold_read(ctx, i, acc) before each commit. All three or none. */
    zf_status (*fold_open)(void *ctx, int slot, const zf_fold_acc *acc);
    zf_status (*fold_add)(void *ctx, int slot, int layer, int n, const int64_t *seqs, const int32_t *classes);
    zf_status (*fold_read)(void *ctx, int slot, zf_fold_acc *acc);
    /* With `forward`: the threads that decode ahead; <= 0: as many as OpenMP would run (every core
     * this process may use, or OMP_NUM_THREADS). */
    int decode_threads;
    /* For timing the pipeline: decode and forward every image, store and accumulate nothing
     * (db may be NULL; res gets the counts and times). */
    int dry_run;
    /* A shard: the K-th of N contiguous runs of whole batches of the list (batch b starts at
     * image b * batch, as in a scan of the whole list), seqs kept as the whole list's, into a run
     * of its own that records the whole list's hash and "K/N" (zf_db_merge joins the shards).
     * shard_n <= 1: the whole list. */
    int shard_k, shard_n;
} zf_scan_opts;

/* Scans the images through `net` and accumulates, for every unit of the chosen layers, the
 * statistics and the top-k examples into the run identified by (model, image list, layers, top_k),
 * creating it or continuing it where an earlier call stopped. Each chunk of images is committed in
 * one transaction together with the statistics and top-k as they stand after it, so a process
 * killed at any moment loses at most the chunk in progress and a later call finishes with exactly
 * the numbers of an uninterrupted scan. Images that cannot be read or decoded are recorded with
 * their error and skipped. zf_interrupted makes it commit what is done and return
 * ZF_ERR_INTERRUPTED. `res` is filled on success and on interruption. */
zf_status zf_db_scan(zf_db *db, zf_net *net, const char *const *paths, int64_t n,
                     const zf_scan_opts *opts, zf_scan_result *res);

/* ---- merging shards ---- */

typedef struct zf_merge_result {
    int64_t run_id;           /* in the output */
    int64_t n_images, n_ok, n_failed;
    int n_shards;
} zf_merge_result;

/* Joins the databases of a sharded scan (zf_scan_opts.shard_k/shard_n; one scan each, finished)
 * into `out_path`, which then holds what one scan of the whole list writes: the same images,
 * counts, maxima and where, top-k and exact sums, row for row. Refused, naming the file and what
 * differs, unless every shard has the same model, preprocessing, image list, layers, top-k and
 * batch and together they cover the list exactly once. The output is written beside out_path and
 * renamed into place (the caller decides whether what is there may be replaced); memory holds one
 * set of the net's accumulators whatever the number of shards. */
zf_status zf_db_merge(const char *out_path, const char *const *shards, int n,
                      zf_merge_result *res);

/* ---- runs and reports ---- */

typedef struct zf_db_run {
    int64_t id, model_id;
    char images[1024];     /* as given to the scan */
    char layers[512];      /* "conv1,conv2,..." */
    int top_k, batch, chunk;
    int64_t n_images, next_seq, n_ok, n_failed;
    int complete;
    char started[32], updated[32];
    char list_sha256[65];  /* of the whole list */
    int64_t list_n, seq0;  /* the whole list's images; the first seq of the run's slice */
    char shard[32];        /* "K/N", or "" for the whole list */
    int classes;           /* the list's classes; -1 for a run begun before schema 4 */
} zf_db_run;
zf_status zf_db_run_get(zf_db *db, int64_t id, zf_db_run *out);
/* The newest run (highest id) that scanned `layer` (any run if NULL); ZF_ERR_ARG if none. */
zf_status zf_db_run_latest(zf_db *db, const char *layer, int64_t *id);
/* Calls fn for each image of the run that failed (in list order), with its error text. */
zf_status zf_db_run_errors(zf_db *db, int64_t run,
                           void (*fn)(void *ctx, int64_t seq, const char *path, const char *error),
                           void *ctx);
/* Calls fn for each run, oldest first. */
zf_status zf_db_runs(zf_db *db, void (*fn)(void *ctx, const zf_db_run *run, const zf_db_model *m),
                     void *ctx);

/* Units that never fired: max <= 0 over every image; with min_active > 0 also those active (some
 * position > 0) on fewer than that fraction of the images. In layer order, then unit. layer NULL:
 * every layer of the run. The caller frees *out with free(). */
typedef struct zf_db_dead {
    char layer[32];
    int unit;
    double active_fraction;
    double max_activation; /* the largest pre-activation (before the ReLU) seen */
} zf_db_dead;
zf_status zf_db_dead_units(zf_db *db, int64_t run, const char *layer, double min_active,
                           zf_db_dead **out, int *n);

/* The stored top-k of one unit, best first. The caller frees *out with free(). */
typedef struct zf_db_example {
    int rank;          /* 1 = strongest */
    int64_t image_id, seq;
    char path[1024];
    char sha256[65];   /* of the file when it was scanned */
    double score;      /* the unit's value at (y, x) before the ReLU */
    int y, x;          /* position in the layer's output */
    zf_box box;        /* its receptive field in input pixels */
} zf_db_example;
zf_status zf_db_topk_get(zf_db *db, int64_t run, const char *layer, int unit,
                         zf_db_example **out, int *n);

/* ---- renderings ---- */

/* What a stored picture shows. Numeric fields < 0 and NULL strings are stored as NULL. */
typedef struct zf_db_rendering {
    int64_t run_id, image_id;
    const char *layer;
    int unit, rank;
    const char *kind;        /* "deconv", "patch", "filters", ... */
    const char *description; /* one sentence: what it is and how it was made */
    int width, height;
} zf_db_rendering;
/* Stores a PNG; a rendering with the same run, layer, unit, rank and kind is replaced. Runs in its
 * own transaction unless one is open. */
zf_status zf_db_rendering_put(zf_db *db, const zf_db_rendering *r, const void *png, size_t len,
                              int64_t *id);
/* The PNG bytes of rendering `id` (malloc'd; the caller frees them). */
zf_status zf_db_rendering_png(zf_db *db, int64_t id, void **png, size_t *len);

/* An 8-bit RGB image as PNG bytes in memory (malloc'd; the caller frees them). */
zf_status zf_db_png_encode(const zf_image *img, void **png, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
