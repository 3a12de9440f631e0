/* The dataset scan: images decoded batch by batch (between forwards on every core, or by a pool
 * of threads ahead of another engine), the forward, per-unit statistics and top-k accumulated in
 * memory and committed chunk by chunk, so that a killed scan resumes to the same numbers an
 * uninterrupted one gives.
 *
 * Why resume is exact: images are processed in one fixed order (their sequence number in the
 * list), in batches that always start at multiples of the batch size, and every accumulator is
 * either an integer count, an exact sum (zf/xsum.h: the same bits in any order), or a max / top-k
 * decided by (value, then earlier sequence number). A commit writes the accumulators as they stand
 * after the chunk (absolute values, not increments) in the same transaction as the chunk's images
 * and the run's new position, so loading them back reproduces the memory state of a scan that
 * never stopped; and since none of them depends on the order of the images, shards of a list
 * scanned apart merge to exactly the numbers of one scan (db/merge.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "zf/alloc.h"
#include "zf/fold.h"
#include "zf/input.h"
#include "zf/stats.h"
#include "zf/xsum.h"

/* ---------------------------------------------------------------- image lists */

/* The images are found as every command finds them (zf_images_find): folders recursively, lists
 * within bounds, devices refused. */
zf_status zf_db_scan_list(const char *arg, char ***paths, int64_t *n)
{
    return zf_images_find(arg, paths, n);
}

void zf_db_scan_list_free(char **paths, int64_t n)
{
    zf_paths_free(paths, n);
}

int zf_db_scan_default_layers(const zf_net *net, int *idx)
{
    int n = 0;
    for (int i = 0; i + 1 < net->n_layers; i++) {
        zf_op op = net->layers[i].op;
        if ((op == ZF_OP_CONV || op == ZF_OP_FC) && net->layers[i + 1].op == ZF_OP_RELU)
            idx[n++] = i;
    }
    return n;
}

int zf_db_scan_on_engine(const zf_layer *l)
{
    return l->out_h * l->out_w > 1;
}

/* ---------------------------------------------------------------- accumulators */

#define CLEAN ZF_FOLD_CLEAN

typedef zf_rank_ent topk_ent; /* its row: seq_image[seq] */

/* The k best images of every unit by one score: zf_rank_list's arrays (zf/fold.h), and the lists
 * as stored. */
typedef struct rank_list {
    zf_rank_ent *ent;
    int32_t *n;
    float *kth;
    uint16_t *dirty;
    char **json;     /* each unit's list as stored (unit_stats.top / bottom), remade when dirty */
} rank_list;

typedef struct scan_layer {
    int li;        /* the conv or fc layer */
    int src;       /* the layer whose output is read: li (before the ReLU) or its in-place ReLU */
    const zf_layer *l;
    int units, hw;
    int64_t *active;   /* images on which some position was > 0 */
    int64_t *positive; /* positions > 0 */
    zf_xsum *sum;      /* of max(value, 0), exact */
    float *max;        /* largest value (before the ReLU) */
    int64_t *max_seq;  /* where: image (-1: none yet) and position */
    int32_t *max_pos;
    int64_t *hist;     /* units x ZF_DB_HIST_BINS: every value's bin (zf/db.h) */
    zf_xsum *csum;     /* units x classes: sum, over each class's images only */
    rank_list top;     /* each image's largest value */
    rank_list bot;     /* each image's smallest value, negated: the most negative rank first */
    zf_fold_acc acc;   /* the same arrays, as zf_fold_plane and an engine's fold take them */
} scan_layer;

/* Adds four copies of a unit's histogram counts into its histogram, and zeroes them. */
static void fold_hist(int64_t *h, uint32_t sub[4][ZF_DB_HIST_BINS])
{
    for (int b = 0; b < ZF_DB_HIST_BINS; b++)
        h[b] += (int64_t)sub[0][b] + sub[1][b] + sub[2][b] + sub[3][b];
    memset(sub, 0, sizeof(uint32_t) * 4 * ZF_DB_HIST_BINS);
}

/* Adds n images' plane summaries (planes[i * units + c]) and their histogram counts (units x
 * ZF_HIST_BINS), as another engine's layer_stats made them: what accumulate() does from the planes
 * themselves, in the same order. */
static void accumulate_planes(scan_layer *L, const zf_plane_stats *planes, const int64_t *hist, int n,
                              const int64_t *seqs, const int32_t *class_of)
{
    const int units = L->units;
#pragma omp parallel for schedule(static) if ((size_t)units * (size_t)n >= 4096)
    for (int c = 0; c < units; c++) {
        for (int b = 0; b < ZF_HIST_BINS; b++)
            L->hist[(size_t)c * ZF_DB_HIST_BINS + b] += hist[(size_t)c * ZF_HIST_BINS + b];
        for (int i = 0; i < n; i++)
            zf_fold_plane(&L->acc, c, seqs[i], class_of ? class_of[seqs[i]] : -1, &planes[(size_t)i * units + c]);
    }
}

/* Adds n images (their outputs in act, (n, units, hw)) in order. A conv layer's units are split
 * over the forward's own OpenMP team: each unit is one thread's, its images in order, so the
 * results do not depend on the split. (With the histogram, exact sums and bottom-k, the pass
 * costs 40-65% of the forward that made the outputs, no longer a few per cent.) */
static void accumulate(scan_layer *L, const float *act, int n, const int64_t *seqs, int k,
                       const int32_t *class_of, int classes)
{
    const int units = L->units, hw = L->hw;
    if (hw == 1) {
        /* Fully connected: one value per unit and image. Image by image over contiguous units
         * (the sums come out the same as plane_stats gives for a single value). */
        for (int i = 0; i < n; i++) {
            const float *a = act + (size_t)i * units;
            const int cl = class_of ? class_of[seqs[i]] : -1;
            for (int c = 0; c < units; c++) {
                float v = a[c];
                int pos = v > 0.0f;
                L->hist[(size_t)c * ZF_DB_HIST_BINS + zf_hist_bin(v)]++;
                if (pos) {
                    zf_xsum_add_float(&L->sum[c], v);
                    if (cl >= 0)
                        zf_xsum_add_float(&L->csum[(size_t)c * classes + cl], v);
                }
                L->positive[c] += pos;
                L->active[c] += pos;
            }
            for (int c = 0; c < units; c++) {
                float v = a[c];
                if (L->max_seq[c] < 0 || v > L->max[c]) {
                    L->max[c] = v;
                    L->max_seq[c] = seqs[i];
                    L->max_pos[c] = 0;
                }
                if (zf_fold_may_enter(&L->acc.top, c, k, v))
                    zf_fold_offer(&L->acc.top, c, k, v, 0, seqs[i]);
                if (zf_fold_may_enter(&L->acc.bot, c, k, -v))
                    zf_fold_offer(&L->acc.bot, c, k, -v, 0, seqs[i]);
            }
        }
        return;
    }
#pragma omp parallel if ((size_t)units * (size_t)n * (size_t)hw >= (size_t)1 << 15)
    {
        zf_xsum_bins bins;
        zf_xsum_bins_init(&bins);
        /* the histogram counted in four interleaved copies, added up once per unit: values of
         * one plane fall in few bins, and one copy makes each count wait for the one before it
         * (3x faster on ZFNet's conv1 planes) */
        uint32_t sub[4][ZF_DB_HIST_BINS];
        memset(sub, 0, sizeof sub); /* and fold_hist leaves them zero */
        const int fold_each = (int64_t)n * hw > (int64_t)UINT32_MAX / 2; /* a count could overflow */
#pragma omp for schedule(static)
        for (int c = 0; c < units; c++) {
            for (int i = 0; i < n; i++) {
                const float *p = act + ((size_t)i * units + c) * (size_t)hw;
                zf_plane_stats ps;
                zf_plane_stats_compute(p, hw, &bins, &ps);
                zf_fold_plane(&L->acc, c, seqs[i], class_of ? class_of[seqs[i]] : -1, &ps);
                int q = 0;
                for (; q + 4 <= hw; q += 4) {
                    sub[0][zf_hist_bin(p[q])]++;
                    sub[1][zf_hist_bin(p[q + 1])]++;
                    sub[2][zf_hist_bin(p[q + 2])]++;
                    sub[3][zf_hist_bin(p[q + 3])]++;
                }
                for (; q < hw; q++)
                    sub[0][zf_hist_bin(p[q])]++;
                if (fold_each)
                    fold_hist(L->hist + (size_t)c * ZF_DB_HIST_BINS, sub);
            }
            fold_hist(L->hist + (size_t)c * ZF_DB_HIST_BINS, sub);
        }
    }
}

static void rank_free(rank_list *R, int units)
{
    free(R->ent);
    free(R->n);
    free(R->kth);
    free(R->dirty);
    if (R->json)
        for (int c = 0; c < units; c++)
            free(R->json[c]);
    free(R->json);
}

static int rank_alloc(rank_list *R, size_t u, int k)
{
    R->ent = zf_calloc(u * (size_t)k, sizeof *R->ent);
    R->n = zf_calloc(u, sizeof *R->n);
    R->dirty = zf_malloc(u * sizeof *R->dirty);
    R->json = zf_calloc(u, sizeof *R->json);
    R->kth = zf_malloc(u * sizeof *R->kth);
    if (!R->ent || !R->n || !R->dirty || !R->json || !R->kth)
        return -1;
    for (size_t c = 0; c < u; c++) {
        R->dirty[c] = CLEAN;
        R->kth[c] = -INFINITY;
    }
    return 0;
}

static void layer_free(scan_layer *L)
{
    free(L->active);
    free(L->positive);
    free(L->sum);
    free(L->max);
    free(L->max_seq);
    free(L->max_pos);
    free(L->hist);
    free(L->csum);
    rank_free(&L->top, L->units);
    rank_free(&L->bot, L->units);
}

static int layer_alloc(scan_layer *L, int k, int classes)
{
    size_t u = (size_t)L->units;
    if (classes && !(L->csum = zf_calloc(u * (size_t)classes, sizeof *L->csum)))
        return -1;
    L->active = zf_calloc(u, sizeof *L->active);
    L->positive = zf_calloc(u, sizeof *L->positive);
    L->sum = zf_calloc(u, sizeof *L->sum);
    L->max = zf_calloc(u, sizeof *L->max);
    L->max_seq = zf_malloc(u * sizeof *L->max_seq);
    L->max_pos = zf_calloc(u, sizeof *L->max_pos);
    L->hist = zf_calloc(u * ZF_DB_HIST_BINS, sizeof *L->hist);
    if (!L->active || !L->positive || !L->sum || !L->max || !L->max_seq || !L->max_pos ||
        !L->hist || rank_alloc(&L->top, u, k) || rank_alloc(&L->bot, u, k))
        return -1;
    for (size_t c = 0; c < u; c++)
        L->max_seq[c] = -1;
    L->acc = (zf_fold_acc){
        .units = L->units, .k = k, .classes = classes,
        .active = L->active, .positive = L->positive, .sum = L->sum, .max = L->max,
        .max_seq = L->max_seq, .max_pos = L->max_pos, .hist = L->hist, .csum = L->csum,
        .top = {L->top.ent, L->top.n, L->top.kth, L->top.dirty},
        .bot = {L->bot.ent, L->bot.n, L->bot.kth, L->bot.dirty},
    };
    return 0;
}

/* ---------------------------------------------------------------- decoding ahead */

typedef struct img_meta {
    int ok;
    char sha[65];  /* "" when the file could not be read */
    int64_t bytes; /* -1 when unknown */
    int w, h;
    char *error;   /* malloc'd, failed images only */
    int nomem;     /* it failed for lack of memory: the scan stops, the image is not recorded */
} img_meta;

typedef struct slot {
    int64_t b;      /* the batch it holds, or is being filled with (batch b starts at start + b * batch) */
    int64_t seq0;
    int count, n_ok;
    int done;       /* images of the batch decoded so far (the decoding threads) */
    float *input;   /* the n_ok decoded images, packed: (n_ok, c, h, w) */
    int pinned;     /* input came from the engine's host_alloc */
    int64_t *seqs;  /* seq of each packed image */
    img_meta *meta; /* per seq in [seq0, seq0 + count) */
    int ready;
} slot;

typedef struct pipeline {
    pthread_t *threads;
    int n_threads, n_started, inited;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot *slots;
    int n_slots;
    int stop;
    const char *const *paths;
    int64_t start, n;
    int64_t next; /* the next image a decoding thread takes */
    int batch;
    const zf_net *net;
    size_t in_size;
} pipeline;

static void meta_fail(img_meta *m, const char *msg)
{
    m->ok = 0;
    free(m->error);
    m->error = zf_strdup(msg && *msg ? msg : "unknown error");
    if (!m->error)
        m->nomem = 1;
}

/* Reads, hashes, decodes and preprocesses one image into dst. */
static void load_one(pipeline *P, const char *path, float *dst, img_meta *m, uint8_t **buf,
                     size_t *cap)
{
    memset(m, 0, sizeof *m);
    m->bytes = -1;
    /* A listed path that is a pipe or a device would block or never end: refused unopened. */
    if (zf_input_check(path, "an image file", 0, NULL)) {
        meta_fail(m, zf_last_error());
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        char msg[PATH_MAX + 64];
        snprintf(msg, sizeof msg, "%s: cannot open: %s", path, strerror(errno));
        meta_fail(m, msg);
        return;
    }
    struct stat sb;
    size_t len = 0;
    int err = 0;
    if (fstat(fd, &sb) != 0) {
        err = errno;
    } else if (sb.st_size > ((off_t)1 << 30)) {
        err = EFBIG; /* no photo is a gigabyte; do not try to hold one in memory */
    } else {
        size_t want = (size_t)sb.st_size;
        if (want + 1 > *cap) {
            uint8_t *nb = zf_realloc(*buf, want + 1);
            if (!nb)
                err = ENOMEM;
            else {
                *buf = nb;
                *cap = want + 1;
            }
        }
        while (!err && len < want) {
            ssize_t r = read(fd, *buf + len, want - len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                err = errno;
            else if (r == 0)
                break;
            else
                len += (size_t)r;
        }
    }
    close(fd);
    if (err) {
        char msg[PATH_MAX + 64];
        snprintf(msg, sizeof msg, "%s: cannot read: %s", path, strerror(err));
        meta_fail(m, msg);
        m->nomem |= err == ENOMEM;
        return;
    }
    m->bytes = (int64_t)len;
    zf_db_sha256_hex(*buf, len, m->sha);
    zf_image *img = NULL;
    zf_status s = zf_image_decode(*buf, len, path, &img);
    if (!s) {
        m->w = img->w;
        m->h = img->h;
        s = zf_image_to_input(dst, img, &P->net->pre, P->net->in_h, P->net->in_w);
        /* A preprocessing that divides by a tiny std can make Inf or NaN of an 8-bit image; the
         * ReLUs would turn those into normal-looking numbers, so the image is refused instead. */
        if (!s && zf_values_check_finite(dst, P->in_size, "input", NULL)) {
            char why[256];
            snprintf(why, sizeof why, "%s", zf_last_error());
            s = zf_error(ZF_ERR_FORMAT, "%s: non-finite input values after the preprocessing (%s)",
                         path, why);
        }
    }
    zf_image_free(img);
    if (s) {
        meta_fail(m, zf_last_error());
        m->nomem |= s == ZF_ERR_NOMEM;
        return;
    }
    m->ok = 1;
}

/* Gives slot S batch b (empty, not ready). */
static void slot_assign(const pipeline *P, slot *S, int64_t b)
{
    S->b = b;
    S->seq0 = P->start + b * P->batch;
    S->count = (int)(P->n - S->seq0 < P->batch ? P->n - S->seq0 : P->batch);
    if (S->count < 0)
        S->count = 0;
    S->n_ok = 0;
    S->done = 0;
    S->ready = 0;
}

/* Moves the good images of a slot whose images were decoded each into its own place to the
 * front, in order, and lists their seqs. */
static void slot_pack(const pipeline *P, slot *S)
{
    S->n_ok = 0;
    for (int i = 0; i < S->count; i++) {
        if (!S->meta[i].ok)
            continue;
        if (S->n_ok != i)
            memmove(S->input + (size_t)S->n_ok * P->in_size, S->input + (size_t)i * P->in_size,
                    P->in_size * sizeof(float));
        S->seqs[S->n_ok++] = S->seq0 + i;
    }
}

/* Decodes the slot's batch spread over the OpenMP threads (each image into its own place, then
 * the good ones packed in order): the CPU engine's way, between its forwards. */
static void fill_slot(pipeline *P, slot *S)
{
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < S->count; i++) {
        uint8_t *b = NULL;
        size_t c = 0;
        load_one(P, P->paths[S->seq0 + i], S->input + (size_t)i * P->in_size, &S->meta[i], &b, &c);
        free(b);
    }
    slot_pack(P, S);
}

/* A decoding thread ahead of another engine: takes the images one at a time in list order, each
 * into its place in its batch's slot once the scan has handed that slot back; whoever decodes a
 * batch's last image packs it and marks it ready. */
static void *decoder(void *arg)
{
    pipeline *P = arg;
    uint8_t *buf = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&P->mu);
    while (!P->stop && P->next < P->n) {
        const int64_t g = P->next, b = (g - P->start) / P->batch;
        slot *S = &P->slots[b % P->n_slots];
        if (S->b != b) { /* the scan still holds the slot's earlier batch */
            pthread_cond_wait(&P->cv, &P->mu);
            continue;
        }
        P->next++;
        pthread_mutex_unlock(&P->mu);
        const int i = (int)(g - S->seq0);
        load_one(P, P->paths[g], S->input + (size_t)i * P->in_size, &S->meta[i], &buf, &cap);
        pthread_mutex_lock(&P->mu);
        if (++S->done == S->count) {
            /* nobody else touches a slot whose images are all taken until the scan hands it back */
            pthread_mutex_unlock(&P->mu);
            slot_pack(P, S);
            pthread_mutex_lock(&P->mu);
            S->ready = 1;
            pthread_cond_broadcast(&P->cv);
        }
    }
    pthread_mutex_unlock(&P->mu);
    free(buf);
    return NULL;
}

static void pipeline_stop(pipeline *P)
{
    if (P->n_started) {
        pthread_mutex_lock(&P->mu);
        P->stop = 1;
        pthread_cond_broadcast(&P->cv);
        pthread_mutex_unlock(&P->mu);
        for (int i = 0; i < P->n_started; i++)
            pthread_join(P->threads[i], NULL);
        P->n_started = 0;
    }
}

static void pipeline_free(pipeline *P, const zf_scan_opts *o)
{
    if (!P->inited)
        return;
    pipeline_stop(P);
    for (int i = 0; i < P->n_slots; i++) {
        slot *S = &P->slots[i];
        if (S->pinned)
            o->host_free(o->forward_ctx, S->input);
        else
            zf_free(S->input);
        free(S->seqs);
        if (S->meta)
            for (int j = 0; j < P->batch; j++)
                free(S->meta[j].error);
        free(S->meta);
    }
    free(P->slots);
    free(P->threads);
    pthread_mutex_destroy(&P->mu);
    pthread_cond_destroy(&P->cv);
}

/* ---------------------------------------------------------------- the scan */

typedef struct scan {
    zf_db *db;
    zf_net *net;
    int64_t run_id;
    int k, batch, chunk;
    int n_layers;
    scan_layer *layers;
    int64_t n_images;  /* in this run's slice of the list */
    int64_t list_n;    /* in the whole list */
    int64_t seq0, seq_end; /* the slice: [seq0, seq_end); the whole list unless sharded */
    char shard[32];    /* "K/N", or "" for the whole list */
    int shard_k, shard_n;
    int64_t committed; /* seq0 + next_seq in the database: seqs are the whole list's */
    int64_t n_ok, n_failed;
    /* the chunk in progress: images [committed, committed + chunk_n) */
    img_meta *chunk_meta;
    int64_t *seq_image; /* the images row of every committed seq (n_images entries) */
    int chunk_n, chunk_cap;
    double last_commit, last_commit_cost; /* when the last commit ended, how long it took */
    int no_bottom; /* the run began before bottom-k was kept: unit_stats.bottom stays NULL */
    int no_hist;   /* likewise for the histogram */
    const char *const *paths;
    zf_db_classes cls;  /* the whole list's classes */
    int n_classes;      /* kept by this run: cls.n, or 0 for a run begun before schema 4 */
    zf_db_class_acc cacc; /* over the layers' csum */
    uint8_t *class_dirty; /* classes with images since the last commit: their rows are rewritten */
    zf_db_image_stmts q;
    sqlite3_stmt *upsert_stats, *update_run, *check_run;
    /* another engine's plane summaries of one layer (zf_scan_opts.layer_stats): made at first use */
    zf_plane_stats *planes;
    int64_t *plane_hist;
    size_t planes_cap, hist_cap;
    /* another engine keeps the accumulators of the layers of more than one position
     * (zf_scan_opts.fold_*): each batch's images' classes for it */
    int dev_fold;
    int32_t *batch_cls;
} scan;

static void scan_free(scan *S)
{
    for (int i = 0; i < S->n_layers; i++)
        layer_free(&S->layers[i]);
    free(S->layers);
    if (S->chunk_meta)
        for (int i = 0; i < S->chunk_cap; i++)
            free(S->chunk_meta[i].error);
    free(S->chunk_meta);
    free(S->seq_image);
    free(S->batch_cls);
    zf_db_classes_free(&S->cls);
    free(S->cacc.n);
    free(S->cacc.layer);
    free((void *)S->cacc.units);
    free(S->cacc.sum);
    free(S->class_dirty);
    zf_db_image_stmts_free(&S->q);
    sqlite3_finalize(S->upsert_stats);
    sqlite3_finalize(S->update_run);
    sqlite3_finalize(S->check_run);
    free(S->planes);
    free(S->plane_hist);
}

static zf_status prepare_all(scan *S)
{
    zf_db *db = S->db;
    zf_status s;
    if ((s = zf_db_image_stmts_prepare(db, &S->q)) ||
        (s = zf_db_prepare(
             db, &S->upsert_stats,
             ZF_DB_UNIT_STATS_INSERT " ON CONFLICT (run_id, layer, unit) DO UPDATE SET images = excluded.images, "
             "active_images = excluded.active_images, positions = excluded.positions, "
             "positive_positions = excluded.positive_positions, sum = excluded.sum, "
             "sum_exact = excluded.sum_exact, "
             "max = excluded.max, max_image_id = excluded.max_image_id, max_y = excluded.max_y, "
             "max_x = excluded.max_x, max_seq = excluded.max_seq, top = excluded.top, "
             "bottom = excluded.bottom, hist = excluded.hist")) ||
        (s = zf_db_prepare(db, &S->update_run,
                           "UPDATE runs SET next_seq = ?1, n_ok = ?2, n_failed = ?3, "
                           "updated = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), "
                           "finished = CASE WHEN ?1 = n_images "
                           "THEN strftime('%Y-%m-%dT%H:%M:%SZ', 'now') END WHERE id = ?4")) ||
        (s = zf_db_prepare(db, &S->check_run, "SELECT next_seq FROM runs WHERE id = ?")))
        return s;
    return ZF_OK;
}

/* Resets a statement for reuse; its error (if any) was reported by the step. */
static void reuse(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static zf_status image_row(scan *S, const char *path, const img_meta *m, int64_t *id)
{
    zf_db *db = S->db;
    zf_status s;
    const char *sha = m->sha[0] ? m->sha : NULL;
    sqlite3_stmt *st = S->q.find;
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 2, sha));
    if ((s = zf_db_image_lookup(db, &S->q, id)) || *id)
        return s;
    st = S->q.insert;
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 2, sha));
    ZF_SQL_TRY(s, db, m->bytes >= 0 ? sqlite3_bind_int64(st, 3, m->bytes) : sqlite3_bind_null(st, 3));
    ZF_SQL_TRY(s, db, m->w > 0 ? sqlite3_bind_int(st, 4, m->w) : sqlite3_bind_null(st, 4));
    ZF_SQL_TRY(s, db, m->h > 0 ? sqlite3_bind_int(st, 5, m->h) : sqlite3_bind_null(st, 5));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 6, m->ok ? "ok" : "error", -1, SQLITE_STATIC));
    /* (the message itself could not be copied where memory ran out) */
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 7, m->ok ? NULL : m->error ? m->error : "out of memory"));
    return zf_db_image_insert(db, &S->q, id);
fail:
    reuse(st);
    return s;
}

/* Nine significant digits give back the same float; JSON has no NaN or infinity. */
static char *put_score(char *o, float f)
{
    if (isnan(f))
        return memcpy(o, "null", 4), o + 4;
    if (isinf(f))
        return o + sprintf(o, "%s", f > 0 ? "1e999" : "-1e999");
    return o + sprintf(o, "%.9g", (double)f);
}

/* A unit's top-k as unit_stats.top stores it (or its bottom-k as unit_stats.bottom: R = &L->bot,
 * neg = 1, the scores given back their sign): a JSON array, best first, of
 * [image_id, seq, score, y, x, box_x0, box_y0, box_x1, box_y1]. */
static zf_status format_top(scan *S, scan_layer *L, rank_list *R, int neg, int c)
{
    const topk_ent *t = R->ent + (size_t)c * S->k;
    char *buf = zf_realloc(R->json[c], (size_t)R->n[c] * 160 + 3);
    if (!buf)
        return zf_error(ZF_ERR_NOMEM, "scan: out of memory");
    R->json[c] = buf;
    char *o = buf;
    const int w = L->l->out_w;
    *o++ = '[';
    for (int r = 0; r < R->n[c]; r++) {
        zf_box b;
        int y = t[r].pos / w, x = t[r].pos % w;
        zf_status s = zf_db_receptive_field(S->net, L->li, y, x, &b);
        if (s)
            return s;
        if (r)
            *o++ = ',';
        *o++ = '[';
        const int64_t v[9] = {S->seq_image[t[r].seq], t[r].seq, 0, y, x, b.x0, b.y0, b.x1, b.y1};
        for (int i = 0; i < 9; i++) {
            if (i)
                *o++ = ',';
            o = i == 2 ? put_score(o, neg ? -t[r].score : t[r].score) : zf_db_put_int(o, v[i]);
        }
        *o++ = ']';
    }
    *o++ = ']';
    *o = 0;
    return ZF_OK;
}

/* Reads back what format_top wrote. */
static zf_status parse_top(scan *S, scan_layer *L, rank_list *R, int neg, int c, const char *json)
{
    topk_ent *t = R->ent + (size_t)c * S->k;
    const char *p = json;
    int n = 0;
    if (*p++ != '[')
        goto bad;
    while (*p == '[') {
        if (n >= S->k)
            goto bad;
        p++;
        double v[9];
        for (int i = 0; i < 9; i++) {
            char *end;
            if (i == 2 && !strncmp(p, "null", 4)) {
                v[i] = NAN;
                end = (char *)p + 4;
            } else {
                v[i] = strtod(p, &end);
            }
            if (end == p || *end != (i < 8 ? ',' : ']'))
                goto bad;
            p = end + 1;
        }
        int64_t seq = (int64_t)v[1];
        if (seq < S->seq0 || seq >= S->committed || S->seq_image[seq] != (int64_t)v[0])
            goto bad;
        float score = (float)v[2];
        t[n++] = (topk_ent){neg ? -score : score, (int32_t)v[3] * L->l->out_w + (int32_t)v[4], seq};
        if (*p == ',')
            p++;
    }
    if (*p != ']')
        goto bad;
    R->n[c] = n;
    R->kth[c] = n == S->k ? t[n - 1].score : -INFINITY;
    return ZF_OK;
bad:
    return zf_error(ZF_ERR_DB, "%s: run %lld: the %s of %s unit %d is damaged: %.60s",
                    zf_db_path(S->db), (long long)S->run_id, neg ? "bottom-k" : "top-k",
                    L->l->name, c, json);
}

static zf_status write_stats(scan *S, scan_layer *L)
{
    zf_status s;
    const int w = L->l->out_w;
    for (int c = 0; c < L->units; c++) {
        zf_db_unit_stats u = {.run = S->run_id, .layer = L->l->name, .unit = c,
                              .images = S->n_ok, .active = L->active[c],
                              .positions = S->n_ok * L->hw, .positive = L->positive[c],
                              .sum = &L->sum[c]};
        if (L->max_seq[c] >= 0) {
            u.has_max = 1;
            u.max = (double)L->max[c];
            u.max_image_id = S->seq_image[L->max_seq[c]];
            u.max_seq = L->max_seq[c];
            u.max_y = L->max_pos[c] / w;
            u.max_x = L->max_pos[c] % w;
        }
        if ((L->top.dirty[c] != CLEAN || !L->top.json[c]) && (s = format_top(S, L, &L->top, 0, c)))
            return s;
        u.top = L->top.json[c];
        /* a run begun before bottom-k was kept has none for the images it scanned then */
        if (!S->no_bottom) {
            if ((L->bot.dirty[c] != CLEAN || !L->bot.json[c]) &&
                (s = format_top(S, L, &L->bot, 1, c)))
                return s;
            u.bottom = L->bot.json[c];
        }
        u.hist = S->no_hist ? NULL : L->hist + (size_t)c * ZF_DB_HIST_BINS;
        if ((s = zf_db_unit_stats_put(S->db, S->upsert_stats, &u)))
            return s;
    }
    return ZF_OK;
}

/* Room for n images in the chunk in progress. */
static int chunk_grow(scan *S, int n)
{
    if (n <= S->chunk_cap)
        return 0;
    int cap = S->chunk_cap ? S->chunk_cap : 64;
    while (cap < n)
        cap *= 2;
    img_meta *m = zf_realloc(S->chunk_meta, (size_t)cap * sizeof *m);
    if (!m)
        return -1;
    memset(m + S->chunk_cap, 0, (size_t)(cap - S->chunk_cap) * sizeof *m);
    S->chunk_meta = m;
    S->chunk_cap = cap;
    return 0;
}

/* Commits the chunk in progress: its images, every accumulator as it now stands and the run's
 * new position, in one transaction. */
/* The accumulators that another engine keeps (zf_scan_opts.fold_*), brought back before a commit. */
static zf_status fold_back(scan *S, const zf_scan_opts *o)
{
    for (int i = 0; S->dev_fold && i < S->n_layers; i++) {
        scan_layer *L = &S->layers[i];
        if (zf_db_scan_on_engine(L->l)) {
            zf_status s = o->fold_read(o->forward_ctx, i, &L->acc);
            if (s)
                return zf_error_prefix(s, "scan: accumulators of %s from the engine: ", L->l->name);
        }
    }
    return ZF_OK;
}

static zf_status commit_chunk(scan *S)
{
    zf_db *db = S->db;
    zf_status s;
    int row = 0;
    const int64_t start = S->committed, end = S->committed + S->chunk_n;
    if ((s = zf_db_begin(db)))
        return s;
    /* A second scan of the same run in another process would count images twice: refuse. */
    sqlite3_stmt *st = S->check_run;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, S->run_id));
    if ((s = zf_db_step(db, st, &row)))
        goto fail;
    int64_t next = row ? S->seq0 + sqlite3_column_int64(st, 0) : -1;
    reuse(st);
    if (next != start) {
        s = zf_error(ZF_ERR_DB,
                     "%s: run %lld moved from image %lld to %lld behind this scan's back: is "
                     "another zfviz scan of the same images and model running?",
                     zf_db_path(db), (long long)S->run_id, (long long)start, (long long)next);
        goto fail;
    }
    for (int i = 0; i < S->chunk_n; i++) {
        if ((s = image_row(S, S->paths[start + i], &S->chunk_meta[i], &S->seq_image[start + i])) ||
            (s = zf_db_run_image_put(db, &S->q, S->run_id, start + i, S->seq_image[start + i],
                                     S->n_classes ? S->cls.of[start + i] : -1)))
            goto fail;
    }
    for (int li = 0; li < S->n_layers; li++) {
        scan_layer *L = &S->layers[li];
        if ((s = write_stats(S, L)))
            goto fail;
    }
    /* the classes that had images since the last commit (a list in folder order touches one or
     * two a chunk; the others' rows stand) */
    if (S->n_classes && (s = zf_db_class_acc_put(db, &S->cacc, S->run_id, S->class_dirty)))
        goto fail;
    st = S->update_run;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, end - S->seq0));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 2, S->n_ok));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 3, S->n_failed));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 4, S->run_id));
    if ((s = zf_db_step(db, st, NULL)))
        goto fail;
    reuse(st);
    if ((s = zf_db_commit(db)))
        goto fail;
    for (int li = 0; li < S->n_layers; li++)
        for (int c = 0; c < S->layers[li].units; c++)
            S->layers[li].top.dirty[c] = S->layers[li].bot.dirty[c] = CLEAN;
    if (S->n_classes)
        memset(S->class_dirty, 0, (size_t)S->n_classes);
    for (int i = 0; i < S->chunk_n; i++) {
        free(S->chunk_meta[i].error);
        S->chunk_meta[i].error = NULL;
    }
    S->committed = end;
    S->chunk_n = 0;
    return ZF_OK;
fail:
    reuse(st);
    zf_db_rollback(db);
    return zf_error_prefix(s, "committing images %lld-%lld of run %lld: ", (long long)start,
                           (long long)end - 1, (long long)S->run_id);
}

/* Loads the accumulators of a run that stopped part way: exactly what was committed. */
static zf_status load_state(scan *S)
{
    zf_db *db = S->db;
    zf_status s;
    sqlite3_stmt *st = NULL;
    int row = 0;
    int64_t got_images = S->seq0;
    if ((s = zf_db_prepare_id(db, &st, "SELECT seq, image_id FROM run_images WHERE run_id = ? "
                                       "ORDER BY seq", S->run_id)))
        return s;
    while (!(s = zf_db_step(db, st, &row)) && row) {
        int64_t seq = sqlite3_column_int64(st, 0);
        if (seq != got_images || seq >= S->committed) {
            s = zf_error(ZF_ERR_DB, "%s: run %lld: its image list is damaged at image %lld",
                         zf_db_path(db), (long long)S->run_id, (long long)seq);
            goto fail;
        }
        S->seq_image[got_images++] = sqlite3_column_int64(st, 1);
    }
    if (s)
        goto fail;
    if (got_images != S->committed) {
        s = zf_error(ZF_ERR_DB, "%s: run %lld: %lld images recorded, the run says %lld",
                     zf_db_path(db), (long long)S->run_id, (long long)(got_images - S->seq0),
                     (long long)(S->committed - S->seq0));
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((s = zf_db_prepare(db, &st, ZF_DB_UNIT_STATS_SELECT)))
        return s;
    for (int li = 0; li < S->n_layers; li++) {
        scan_layer *L = &S->layers[li];
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, S->run_id));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, L->l->name, -1, SQLITE_STATIC));
        int got = 0;
        while (!(s = zf_db_step(db, st, &row)) && row) {
            zf_db_unit_stats u;
            int64_t h[ZF_DB_HIST_BINS];
            zf_xsum sum;
            if ((s = zf_db_unit_stats_read(db, st, S->run_id, L->l->name, &u, &sum, h)))
                goto fail;
            const int c = u.unit;
            if (c < 0 || c >= L->units || u.images != S->n_ok) {
                s = zf_error(ZF_ERR_DB,
                             "%s: run %lld: statistics of %s unit %d do not match the run's "
                             "progress (%lld images, run says %lld)",
                             zf_db_path(db), (long long)S->run_id, L->l->name, c,
                             (long long)u.images, (long long)S->n_ok);
                goto fail;
            }
            L->active[c] = u.active;
            L->positive[c] = u.positive;
            L->sum[c] = sum;
            if (u.has_max) {
                L->max[c] = (float)u.max;
                L->max_seq[c] = u.max_seq;
                L->max_pos[c] = u.max_y * L->l->out_w + u.max_x;
                if (L->max_seq[c] < S->seq0 || L->max_seq[c] >= S->committed) {
                    s = zf_error(ZF_ERR_DB, "%s: run %lld: %s unit %d has its max at image %lld "
                                 "of %lld committed", zf_db_path(db), (long long)S->run_id,
                                 L->l->name, c, (long long)L->max_seq[c], (long long)S->committed);
                    goto fail;
                }
            }
            const char *top = u.top ? u.top : "";
            if ((s = parse_top(S, L, &L->top, 0, c, top)))
                goto fail;
            if (!u.hist)
                S->no_hist = 1;
            else
                memcpy(L->hist + (size_t)c * ZF_DB_HIST_BINS, h, sizeof h);
            const char *bot = u.bottom;
            if (!bot)
                S->no_bottom = 1;
            else if ((s = parse_top(S, L, &L->bot, 1, c, bot)))
                goto fail;
            else if (!(L->bot.json[c] = zf_strdup(bot))) {
                s = zf_error(ZF_ERR_NOMEM, "scan: out of memory");
                goto fail;
            }
            if (!(L->top.json[c] = zf_strdup(top))) {
                s = zf_error(ZF_ERR_NOMEM, "scan: out of memory");
                goto fail;
            }
            got++;
        }
        if (s)
            goto fail;
        if (got != L->units && S->n_ok > 0) {
            s = zf_error(ZF_ERR_DB, "%s: run %lld: %s has statistics for %d of %d units",
                         zf_db_path(db), (long long)S->run_id, L->l->name, got, L->units);
            goto fail;
        }
        reuse(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (S->n_classes)
        s = zf_db_class_acc_add(db, &S->cacc, S->run_id);
fail:
    sqlite3_finalize(st);
    return s;
}

/* The shard's slice: the K-th of N runs of whole batches (batches start at multiples of the batch
 * size from the list's start, as in a scan of the whole list: a net's output for an image can
 * differ in its last bits with the batch it shares, so a shard must see the same batches). */
static zf_status shard_slice(scan *S)
{
    if (S->shard_n <= 1)
        return ZF_OK;
    const int64_t n = S->list_n, nb = (n + S->batch - 1) / S->batch;
    if (S->shard_n > nb)
        return zf_error(ZF_ERR_ARG,
                        "scan: %d shards of %lld images in batches of %d (%lld batches): some "
                        "would be empty; use fewer shards or a smaller --batch",
                        S->shard_n, (long long)n, S->batch, (long long)nb);
    int64_t b0 = nb * (S->shard_k - 1) / S->shard_n, b1 = nb * S->shard_k / S->shard_n;
    S->seq0 = b0 * S->batch;
    S->seq_end = b1 * S->batch < n ? b1 * S->batch : n;
    S->n_images = S->seq_end - S->seq0;
    S->committed = S->seq0;
    return ZF_OK;
}

/* A resumed run's classes are the ones its images' folders give now. */
static zf_status check_classes(scan *S, int classes)
{
    char stored[65], now[65];
    zf_status s = zf_db_classes_hash(S->db, S->run_id, stored);
    zf_db_classes_hash_names(S->cls.names, S->cls.n, now);
    if (!s && (classes != S->cls.n || strcmp(stored, now)))
        s = zf_error(ZF_ERR_DB, "%s: run %lld was begun with %d classes of images, its images' "
                     "folders now give %d others", zf_db_path(S->db), (long long)S->run_id, classes,
                     S->cls.n);
    return s;
}

/* Finds the run this scan continues, or creates it; fills S->run_id and the run's settings. */
static zf_status open_run(scan *S, const zf_scan_opts *o, const char *list_sha, const char *layers,
                          zf_scan_result *res)
{
    zf_db *db = S->db;
    zf_status s;
    sqlite3_stmt *st = NULL;
    int row = 0;
    int64_t model_id;
    if ((s = zf_db_begin(db)))
        return s;
    if ((s = zf_db_model_put(db, S->net, o->weights, o->model_file, &model_id)))
        goto fail;
    if ((s = zf_db_prepare(db, &st,
                           "SELECT id, batch, chunk, next_seq, n_ok, n_failed, n_images, "
                           "ifnull(shard, ''), seq0, classes FROM runs "
                           "WHERE model_id = ? AND list_sha256 = ? AND layers = ? AND top_k = ?")))
        goto fail;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, model_id));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, list_sha, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 3, layers, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 4, S->k));
    if ((s = zf_db_step(db, st, &row)))
        goto fail;
    if (row) {
        S->run_id = sqlite3_column_int64(st, 0);
        S->batch = sqlite3_column_int(st, 1);
        S->chunk = sqlite3_column_int(st, 2);
        if ((s = shard_slice(S))) /* with the run's own batch */
            goto fail;
        S->committed = S->seq0 + sqlite3_column_int64(st, 3);
        S->n_ok = sqlite3_column_int64(st, 4);
        S->n_failed = sqlite3_column_int64(st, 5);
        char shard[32];
        zf_db_column_text(st, 7, shard, sizeof shard);
        if (strcmp(shard, S->shard) != 0 || sqlite3_column_int64(st, 8) != S->seq0) {
            s = zf_error(ZF_ERR_DB,
                         "%s: run %lld scans %s%s of these images with this model; %s%s goes "
                         "into a database of its own",
                         zf_db_path(db), (long long)S->run_id, *shard ? "shard " : "the whole list",
                         shard, *S->shard ? "shard " : "the whole list", S->shard);
            goto fail;
        }
        if (sqlite3_column_int64(st, 6) != S->n_images) {
            s = zf_error(ZF_ERR_DB, "%s: run %lld lists %lld images, this scan %lld",
                         zf_db_path(db), (long long)S->run_id,
                         (long long)sqlite3_column_int64(st, 6), (long long)S->n_images);
            goto fail;
        }
        res->resumed = 1;
        /* a run begun before schema 4 keeps no class statistics (its first images were never
         * counted by class) */
        int classes = sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 9);
        sqlite3_finalize(st);
        st = NULL;
        S->n_classes = classes < 0 ? 0 : classes;
        if (classes >= 0 && (s = check_classes(S, classes)))
            goto fail;
        return zf_db_commit(db);
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((s = zf_db_prepare(db, &st,
                           "INSERT INTO runs (model_id, images, list_sha256, n_images, layers, "
                           "top_k, batch, chunk, list_n, shard, seq0, classes) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")))
        goto fail;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, model_id));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 2, o->images_arg ? o->images_arg : ""));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 3, list_sha, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 4, S->n_images));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 5, layers, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 6, S->k));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 7, S->batch));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 8, S->chunk));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 9, S->list_n));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 10, *S->shard ? S->shard : NULL));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 11, S->seq0));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 12, S->cls.n));
    if ((s = zf_db_step(db, st, NULL)))
        goto fail;
    S->run_id = sqlite3_last_insert_rowid(zf_db_handle(db));
    sqlite3_finalize(st);
    st = NULL;
    S->n_classes = S->cls.n;
    if ((s = zf_db_class_names_put(db, S->run_id, S->cls.names, S->cls.n)))
        goto fail;
    for (int i = 0; i < S->n_layers; i++) {
        const zf_layer *l = S->layers[i].l;
        if ((s = zf_db_run_layer_put(db, S->run_id, l->name, S->layers[i].li,
                                     l->op == ZF_OP_CONV ? "conv" : "fc", l->out_c, l->out_h,
                                     l->out_w)))
            goto fail;
    }
    return zf_db_commit(db);
fail:
    sqlite3_finalize(st);
    zf_db_rollback(db);
    return s;
}

/* The per-class accumulators over the layers' csum. */
static zf_status class_acc_init(scan *S)
{
    zf_db_class_acc *a = &S->cacc;
    int *units = zf_calloc((size_t)S->n_layers, sizeof *units);
    a->classes = S->n_classes;
    a->nl = S->n_layers;
    a->units = units;
    a->layer = zf_calloc((size_t)S->n_layers, sizeof *a->layer);
    a->sum = zf_calloc((size_t)S->n_layers, sizeof *a->sum);
    a->n = zf_calloc((size_t)S->n_classes, sizeof *a->n);
    S->class_dirty = zf_calloc((size_t)S->n_classes, 1);
    if (!units || !a->layer || !a->sum || !a->n || !S->class_dirty)
        return zf_error(ZF_ERR_NOMEM, "scan: out of memory for %d classes", S->n_classes);
    for (int i = 0; i < S->n_layers; i++) {
        units[i] = S->layers[i].units;
        a->layer[i] = S->layers[i].l->name;
        a->sum[i] = S->layers[i].csum;
    }
    return ZF_OK;
}

/* The forward pass of n images and the statistics of every scanned layer. With the CPU engine
 * the net runs layer range by layer range, each scanned layer's output read right after it is
 * made (while it is still in cache; after the whole forward, fc6's 150 MB of weights have pushed
 * it out), and nothing past the last scanned layer runs. */
static zf_status forward_and_accumulate(scan *S, const zf_scan_opts *o, const float *input, int n,
                                        const int64_t *seqs, zf_scan_result *res)
{
    zf_net *net = S->net;
    zf_status s;
    double t = zf_db_now(), t1;
    if (o->forward) {
        if ((s = o->forward(o->forward_ctx, net, input, n)))
            return s;
        t1 = zf_db_now();
        res->secs_forward += t1 - t;
        for (int i = 0; i < S->n_layers && !o->dry_run; i++) {
            scan_layer *L = &S->layers[i];
            const int on_engine = zf_db_scan_on_engine(L->l);
            if (S->dev_fold && on_engine) {
                for (int j = 0; j < n && S->n_classes; j++)
                    S->batch_cls[j] = S->cls.of[seqs[j]];
                if ((s = o->fold_add(o->forward_ctx, i, L->src, n, seqs, S->n_classes ? S->batch_cls : NULL)))
                    return s;
                continue;
            }
            if (!o->layer_stats || !on_engine) {
                accumulate(L, net->acts[L->src], n, seqs, S->k, S->n_classes ? S->cls.of : NULL, S->n_classes);
                continue;
            }
            const size_t np = (size_t)n * (size_t)L->units, nh = (size_t)L->units * ZF_HIST_BINS;
            if (np > S->planes_cap) {
                free(S->planes);
                if (!(S->planes = malloc(sizeof *S->planes * np)))
                    return zf_error(ZF_ERR_NOMEM, "scan: out of memory for %zu plane summaries", np);
                S->planes_cap = np;
            }
            if (nh > S->hist_cap) {
                free(S->plane_hist);
                if (!(S->plane_hist = malloc(sizeof *S->plane_hist * nh)))
                    return zf_error(ZF_ERR_NOMEM, "scan: out of memory for %d units' histograms", L->units);
                S->hist_cap = nh;
            }
            memset(S->plane_hist, 0, sizeof *S->plane_hist * nh);
            if ((s = o->layer_stats(o->forward_ctx, L->src, n, S->planes, S->plane_hist)))
                return s;
            accumulate_planes(L, S->planes, S->plane_hist, n, seqs, S->n_classes ? S->cls.of : NULL);
        }
        res->secs_stats += zf_db_now() - t1;
        return ZF_OK;
    }
    memcpy(net->input, input, sizeof(float) * (size_t)n * (size_t)zf_net_in_size(net));
    int done = -1;
    for (int i = 0; i < S->n_layers; i++) {
        scan_layer *L = &S->layers[i];
        if (L->src > done) {
            if ((s = zf_net_forward_range(net, done + 1, L->src, n)))
                return s;
            done = L->src;
        }
        t1 = zf_db_now();
        res->secs_forward += t1 - t;
        if (!o->dry_run)
            accumulate(L, net->acts[L->src], n, seqs, S->k, S->n_classes ? S->cls.of : NULL,
                       S->n_classes);
        t = zf_db_now();
        res->secs_stats += t - t1;
    }
    return ZF_OK;
}

zf_status zf_db_scan(zf_db *db, zf_net *net, const char *const *paths, int64_t n,
                     const zf_scan_opts *o, zf_scan_result *res)
{
    memset(res, 0, sizeof *res);
    zf_scan_opts def = {0};
    if (!o)
        o = &def;
    if (n <= 0)
        return zf_error(ZF_ERR_ARG, "scan: no images");
    /* Images become 3 planes, or 1 (luma) for a grey net: the net must take what its
     * preprocessing makes (zf_image_to_input). */
    if (net->in_c != (net->pre.order == ZF_COLOR_GREY ? 1 : 3))
        return zf_error(ZF_ERR_UNSUPPORTED,
                        "scan: %s takes %d input channels but its preprocessing makes %d from an image "
                        "(set order=grey or order=rgb with --preproc)",
                        net->arch, net->in_c, net->pre.order == ZF_COLOR_GREY ? 1 : 3);
    scan S = {0};
    pipeline P = {0};
    zf_status s = ZF_OK;
    S.db = db;
    S.net = net;
    S.paths = paths;
    S.list_n = n;
    S.seq0 = 0;
    S.seq_end = n;
    S.n_images = n;
    if (o->shard_n > 1) {
        if (o->shard_k < 1 || o->shard_k > o->shard_n)
            return zf_error(ZF_ERR_ARG, "scan: shard %d/%d: K must be 1 to %d", o->shard_k,
                            o->shard_n, o->shard_n);
        S.shard_k = o->shard_k;
        S.shard_n = o->shard_n;
        snprintf(S.shard, sizeof S.shard, "%d/%d", o->shard_k, o->shard_n);
    }
    S.k = o->top_k > 0 ? o->top_k : 9;
    S.batch = o->batch > 0 ? o->batch : 16;
    S.chunk = o->chunk > 0 ? o->chunk : 512;
    if (S.k > 1000 || S.batch > 4096 || S.chunk > 1 << 20)
        return zf_error(ZF_ERR_ARG, "scan: top-k %d, batch %d or chunk %d out of range", S.k,
                        S.batch, S.chunk);
    S.chunk = (S.chunk + S.batch - 1) / S.batch * S.batch;
    if ((s = shard_slice(&S)))
        return s;

    /* the layers, in net order, as the run records them */
    int *idx = zf_malloc((size_t)net->n_layers * sizeof *idx);
    if (!idx)
        return zf_error(ZF_ERR_NOMEM, "scan: out of memory");
    int nl = 0;
    if (o->layers) {
        for (int i = 0; i < net->n_layers; i++)
            for (int j = 0; j < o->n_layers; j++)
                if (o->layers[j] == i) {
                    idx[nl++] = i;
                    break;
                }
        for (int j = 0; j < o->n_layers; j++) {
            int li = o->layers[j];
            if (li < 0 || li >= net->n_layers ||
                (net->layers[li].op != ZF_OP_CONV && net->layers[li].op != ZF_OP_FC)) {
                free(idx);
                return zf_error(ZF_ERR_ARG, "scan: layer %d of %s is not a conv or fc layer", li,
                                net->arch);
            }
        }
    } else {
        nl = zf_db_scan_default_layers(net, idx);
    }
    if (nl == 0) {
        free(idx);
        return zf_error(ZF_ERR_ARG, "scan: %s has no conv or fc layer followed by a ReLU to scan",
                        net->arch);
    }
    char layers[512] = "";
    S.layers = zf_calloc((size_t)nl, sizeof *S.layers);
    if (!S.layers) {
        free(idx);
        return zf_error(ZF_ERR_NOMEM, "scan: out of memory");
    }
    S.n_layers = nl;
    for (int i = 0; i < nl; i++) {
        scan_layer *L = &S.layers[i];
        L->li = idx[i];
        L->l = &net->layers[idx[i]];
        L->units = L->l->out_c;
        L->hw = L->l->out_h * L->l->out_w;
        size_t used = strlen(layers);
        snprintf(layers + used, sizeof layers - used, "%s%s", i ? "," : "", L->l->name);
    }
    free(idx);

    /* the list's identity: every path, in order */
    char list_sha[65];
    {
        zf_sha256 h;
        zf_sha256_init(&h);
        for (int64_t i = 0; i < n; i++) {
            zf_sha256_update(&h, paths[i], strlen(paths[i]));
            zf_sha256_update(&h, "\n", 1);
        }
        zf_sha256_final_hex(&h, list_sha);
    }
    if ((s = zf_db_classes_find(paths, n, &S.cls)))
        goto out;
    S.n_classes = S.cls.n;
    if (!o->dry_run && (s = open_run(&S, o, list_sha, layers, res)))
        goto out;
    res->n_classes = S.n_classes;
    res->run_id = S.run_id;
    res->n_images = S.n_images;
    res->start_seq = S.committed - S.seq0;
    res->batch = S.batch;
    res->chunk = S.chunk;
    res->next_seq = S.committed - S.seq0;
    res->n_ok = S.n_ok;
    res->n_failed = S.n_failed;
    if (o->started)
        o->started(o->progress_ctx, res);
    for (int i = 0; i < nl; i++)
        if (layer_alloc(&S.layers[i], S.k, S.n_classes)) {
            s = zf_error(ZF_ERR_NOMEM, "scan: out of memory for the accumulators");
            goto out;
        }
    if (S.n_classes && (s = class_acc_init(&S)))
        goto out;
    if (!(S.seq_image = zf_calloc((size_t)n, sizeof *S.seq_image))) {
        s = zf_error(ZF_ERR_NOMEM, "scan: out of memory for %lld images", (long long)n);
        goto out;
    }
    if (S.committed > S.seq0 && (s = load_state(&S)))
        goto out;
    if (S.committed >= S.seq_end)
        goto done;
    /* another engine takes the accumulators as they stand (a resumed run's included) */
    S.dev_fold = o->forward && o->fold_open && o->fold_add && o->fold_read && !o->dry_run;
    if (S.dev_fold && !(S.batch_cls = zf_calloc((size_t)S.batch, sizeof *S.batch_cls))) {
        s = zf_error(ZF_ERR_NOMEM, "scan: out of memory");
        goto out;
    }
    for (int i = 0; S.dev_fold && i < nl; i++)
        if (zf_db_scan_on_engine(S.layers[i].l) && (s = o->fold_open(o->forward_ctx, i, &S.layers[i].acc))) {
            zf_error_prefix(s, "scan: accumulators of %s to the engine: ", S.layers[i].l->name);
            goto out;
        }
    /* The whole top-k and statistics of a big net stay in the page cache between commits. */
    if (!o->dry_run &&
        ((s = zf_db_exec(db, "PRAGMA cache_size = -262144")) || (s = prepare_all(&S))))
        goto out;
    if (chunk_grow(&S, S.chunk)) {
        s = zf_error(ZF_ERR_NOMEM, "scan: out of memory");
        goto out;
    }
    if ((s = zf_net_reserve(net, S.batch)))
        goto out;
    /* where each scanned layer's values are read: its own output holds them before the ReLU
     * unless the ReLU works in place */
    for (int i = 0; i < nl; i++) {
        scan_layer *L = &S.layers[i];
        L->src = L->li;
        if (L->li + 1 < net->n_layers && net->layers[L->li + 1].op == ZF_OP_RELU &&
            net->acts[L->li + 1] == net->acts[L->li])
            L->src = L->li + 1;
    }

    P.paths = paths;
    P.start = S.committed;
    P.next = S.committed;
    P.n = S.seq_end;
    P.batch = S.batch;
    P.net = net;
    P.in_size = (size_t)zf_net_in_size(net);
    /* With the CPU engine every core already runs the forward: a decoding thread beside it only
     * takes a core from one of the forward's OpenMP threads, and the others then wait at its
     * barriers. So each batch is decoded between forwards, spread over the same OpenMP threads.
     * Another engine (a GPU) leaves the cores free: there a pool of threads decodes ahead, in
     * enough slots that every thread has an image while the scan holds one batch and the next. */
    const int inline_decode = o->forward == NULL;
    if (!inline_decode) {
        int64_t todo = S.seq_end - S.committed;
        P.n_threads = o->decode_threads > 0 ? o->decode_threads : omp_get_max_threads();
        if (P.n_threads > 256)
            P.n_threads = 256;
        if (P.n_threads > todo)
            P.n_threads = (int)todo;
        if (P.n_threads < 1)
            P.n_threads = 1;
    }
    P.n_slots = inline_decode ? 1 : 3 + (P.n_threads - 1) / S.batch;
    P.slots = zf_calloc((size_t)P.n_slots, sizeof *P.slots);
    P.threads = zf_calloc((size_t)(P.n_threads ? P.n_threads : 1), sizeof *P.threads);
    if (!P.slots || !P.threads) {
        free(P.slots);
        free(P.threads);
        s = zf_error(ZF_ERR_NOMEM, "scan: out of memory");
        goto out;
    }
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv, NULL);
    P.inited = 1;
    const size_t in_bytes = (size_t)S.batch * P.in_size * sizeof(float);
    for (int i = 0; i < P.n_slots; i++) {
        slot *sl = &P.slots[i];
        /* the engine's page-locked memory where it has it (copies from it run beside its work);
         * else, or where it cannot give that much, the scan's own */
        if (o->forward && o->host_alloc && (sl->input = o->host_alloc(o->forward_ctx, in_bytes)))
            sl->pinned = 1;
        else
            sl->input = zf_alloc(in_bytes);
        sl->seqs = zf_calloc((size_t)S.batch, sizeof *sl->seqs);
        sl->meta = zf_calloc((size_t)S.batch, sizeof *sl->meta);
        if (!sl->input || !sl->seqs || !sl->meta) {
            s = zf_error(ZF_ERR_NOMEM, "scan: out of memory for %d decoded images", S.batch);
            goto out;
        }
        slot_assign(&P, sl, i);
    }
    for (; P.n_started < P.n_threads; P.n_started++)
        if (pthread_create(&P.threads[P.n_started], NULL, decoder, &P) != 0) {
            s = zf_error(ZF_ERR_NOMEM, "scan: cannot start decoding thread %d of %d", P.n_started + 1,
                         P.n_threads);
            goto out;
        }
    res->decode_threads = P.n_threads;

    const double t_start = zf_db_now();
    S.last_commit = t_start;
    for (int64_t b = 0, seq = S.committed; seq < S.seq_end; b++) {
        slot *sl = &P.slots[b % P.n_slots];
        double t0 = zf_db_now();
        if (inline_decode) {
            slot_assign(&P, sl, b);
            fill_slot(&P, sl);
            sl->ready = 1;
        }
        pthread_mutex_lock(&P.mu);
        while (!sl->ready)
            pthread_cond_wait(&P.cv, &P.mu);
        /* The next batch, where it is decoded already, starts on its way to the engine while this
         * one computes (it stays in its slot until its own forward). */
        const slot *nx = &P.slots[(b + 1) % P.n_slots];
        const int next_ready = !inline_decode && nx != sl && nx->b == b + 1 && nx->ready && nx->n_ok > 0;
        pthread_mutex_unlock(&P.mu);
        double t1 = zf_db_now();
        res->secs_wait += t1 - t0;
        if (next_ready && o->prefetch && (s = o->prefetch(o->forward_ctx, nx->input, nx->n_ok))) {
            zf_error_prefix(s, "scan: copy of images %lld-%lld to the engine: ", (long long)nx->seq0,
                            (long long)(nx->seq0 + nx->count - 1));
            goto out;
        }
        if (sl->n_ok > 0) {
            if ((s = forward_and_accumulate(&S, o, sl->input, sl->n_ok, sl->seqs, res))) {
                zf_error_prefix(s, "scan: forward of images %lld-%lld: ", (long long)sl->seq0,
                                (long long)(sl->seq0 + sl->count - 1));
                goto out;
            }
        }
        if (chunk_grow(&S, S.chunk_n + sl->count)) {
            s = zf_error(ZF_ERR_NOMEM, "scan: out of memory");
            goto out;
        }
        /* An image that failed for lack of memory is not a bad image: the scan stops, and the
         * same command continues it from the last commit. */
        for (int i = 0; i < sl->count; i++)
            if (sl->meta[i].nomem) {
                s = zf_error(ZF_ERR_NOMEM, "scan: out of memory decoding image %lld (%s)",
                             (long long)(sl->seq0 + i), sl->meta[i].error ? sl->meta[i].error : "");
                goto out;
            }
        for (int i = 0; i < sl->count; i++) {
            img_meta *m = &S.chunk_meta[S.chunk_n + i];
            free(m->error);
            *m = sl->meta[i];
            sl->meta[i].error = NULL;
            if (m->ok) {
                S.n_ok++;
                int cl = S.n_classes ? S.cls.of[sl->seq0 + i] : -1;
                if (cl >= 0) {
                    S.cacc.n[cl]++;
                    S.class_dirty[cl] = 1;
                }
            } else {
                S.n_failed++;
            }
        }
        S.chunk_n += sl->count;
        seq += sl->count;
        pthread_mutex_lock(&P.mu);
        slot_assign(&P, sl, b + P.n_slots);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
        if (o->progress)
            o->progress(o->progress_ctx, seq - S.seq0, S.n_images);
        int stop = zf_interrupted != 0;
        /* At least `chunk` images a commit, and commits spaced so that they take at most ~3% of
         * the time (the first ones rewrite nearly every unit's top-k), yet never more than a
         * minute apart: that much work is all a kill can lose. */
        double t3 = zf_db_now(), since = t3 - S.last_commit;
        if (o->dry_run) {
            for (int i = 0; i < S.chunk_n; i++) {
                free(S.chunk_meta[i].error);
                S.chunk_meta[i].error = NULL;
            }
            S.committed += S.chunk_n;
            S.chunk_n = 0;
        } else if ((S.chunk_n >= S.chunk &&
                    (since * 0.03 >= S.last_commit_cost || since >= 60)) ||
                   seq >= S.seq_end || stop) {
            if ((s = fold_back(&S, o)) || (s = commit_chunk(&S)))
                goto out;
            S.last_commit = zf_db_now();
            S.last_commit_cost = S.last_commit - t3;
            res->secs_commit += S.last_commit_cost;
        }
        res->secs_images = zf_db_now() - t_start;
        if (stop) {
            s = zf_error(ZF_ERR_INTERRUPTED,
                         "scan interrupted after %lld of %lld images (all committed; run the "
                         "same command again to continue)",
                         (long long)(seq - S.seq0), (long long)S.n_images);
            break;
        }
    }
done:
    res->next_seq = S.committed - S.seq0;
    res->n_ok = S.n_ok;
    res->n_failed = S.n_failed;
out:
    pipeline_free(&P, o);
    scan_free(&S);
    return s;
}
