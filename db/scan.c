/* The dataset scan: images decoded on a second thread, forward in batches, per-unit statistics and
 * top-k accumulated in memory and committed chunk by chunk, so that a killed scan resumes to the
 * same numbers an uninterrupted one gives.
 *
 * Why resume is exact: images are processed in one fixed order (their sequence number in the
 * list), in batches that always start at multiples of the batch size, and every accumulator is
 * either an integer count, a float64 sum added to in that order, or a max / top-k decided by
 * (value, then earlier sequence number). A commit writes the accumulators as they stand after the
 * chunk (absolute values, not increments) in the same transaction as the chunk's images and the
 * run's new position; SQLite stores float64 exactly, so loading them back reproduces the memory
 * state of a scan that never stopped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define SCAN_SLOTS 3 /* batches decoded ahead of the forward */

/* ---------------------------------------------------------------- image lists */

typedef struct strvec {
    char **v;
    int64_t n, cap;
} strvec;

static int strvec_push(strvec *s, const char *str)
{
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 256;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(str)))
        return -1;
    s->n++;
    return 0;
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static zf_status walk(const char *dir, strvec *out, int depth)
{
    if (depth > 64)
        return zf_error(ZF_ERR_ARG, "%s: folders nested too deeply (a symbolic link loop?)", dir);
    DIR *d = opendir(dir);
    if (!d)
        return zf_error(ZF_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
    zf_status s = ZF_OK;
    struct dirent *e;
    char path[PATH_MAX];
    errno = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') /* ., .., and hidden files such as ._x.jpg resource forks */
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
            s = zf_error(ZF_ERR_ARG, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        struct stat sb;
        if (stat(path, &sb) != 0)
            continue; /* a dangling link: not an image we could list */
        if (S_ISDIR(sb.st_mode)) {
            if ((s = walk(path, out, depth + 1)))
                break;
        } else if (S_ISREG(sb.st_mode) && is_image_name(e->d_name)) {
            if (strvec_push(out, path)) {
                s = zf_error(ZF_ERR_NOMEM, "%s: out of memory listing images", dir);
                break;
            }
        }
    }
    closedir(d);
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static zf_status read_list(const char *list, strvec *out)
{
    char real[PATH_MAX], dir[PATH_MAX];
    if (!realpath(list, real))
        return zf_error(ZF_ERR_IO, "%s: %s", list, strerror(errno));
    snprintf(dir, sizeof dir, "%s", real);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir] = 0; /* "/a/list" -> "/a", "/list" -> "/" */
    FILE *f = fopen(list, "r");
    if (!f)
        return zf_error(ZF_ERR_IO, "%s: cannot open the list: %s", list, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    zf_status s = ZF_OK;
    int64_t lineno = 0;
    char path[PATH_MAX];
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0 || line[0] == '#')
            continue;
        if (memchr(line, 0, (size_t)len)) {
            s = zf_error(ZF_ERR_FORMAT, "%s:%lld: not a text list of image paths", list,
                         (long long)lineno);
            break;
        }
        int w = line[0] == '/' ? snprintf(path, sizeof path, "%s", line)
                               : snprintf(path, sizeof path, "%s/%s", dir, line);
        if (w >= (int)sizeof path) {
            s = zf_error(ZF_ERR_ARG, "%s:%lld: path too long", list, (long long)lineno);
            break;
        }
        if (strvec_push(out, path)) {
            s = zf_error(ZF_ERR_NOMEM, "%s: out of memory", list);
            break;
        }
    }
    if (!s && ferror(f))
        s = zf_error(ZF_ERR_IO, "%s: read error: %s", list, strerror(errno));
    free(line);
    fclose(f);
    return s;
}

zf_status zf_db_scan_list(const char *arg, char ***paths, int64_t *n)
{
    *paths = NULL;
    *n = 0;
    struct stat sb;
    if (stat(arg, &sb) != 0)
        return zf_error(ZF_ERR_IO, "%s: %s", arg, strerror(errno));
    strvec v = {0};
    zf_status s;
    if (S_ISDIR(sb.st_mode)) {
        char real[PATH_MAX];
        if (!realpath(arg, real))
            return zf_error(ZF_ERR_IO, "%s: %s", arg, strerror(errno));
        if (!(s = walk(real, &v, 0)))
            qsort(v.v, (size_t)v.n, sizeof *v.v, cmp_str);
    } else if (is_image_name(arg)) {
        char real[PATH_MAX];
        if (!realpath(arg, real))
            return zf_error(ZF_ERR_IO, "%s: %s", arg, strerror(errno));
        s = strvec_push(&v, real) ? zf_error(ZF_ERR_NOMEM, "out of memory") : ZF_OK;
    } else {
        s = read_list(arg, &v);
    }
    if (!s && v.n == 0)
        s = zf_error(ZF_ERR_ARG, "%s: no images (.jpg, .jpeg or .png) found", arg);
    if (s) {
        zf_db_scan_list_free(v.v, v.n);
        return s;
    }
    *paths = v.v;
    *n = v.n;
    return ZF_OK;
}

void zf_db_scan_list_free(char **paths, int64_t n)
{
    if (!paths)
        return;
    for (int64_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
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

/* ---------------------------------------------------------------- accumulators */

typedef struct topk_ent {
    float score;      /* the value before the ReLU at the image's strongest position */
    int32_t pos;      /* y * w + x */
    int64_t seq;      /* the image's place in the list; ties go to the smaller */
    int64_t image_id; /* 0 until the image's row is committed */
} topk_ent;

typedef struct scan_layer {
    int li;        /* the conv or fc layer */
    int src;       /* the layer whose output is read: li (before the ReLU) or its in-place ReLU */
    const zf_layer *l;
    int units, hw;
    int64_t *active;   /* images on which some position was > 0 */
    int64_t *positive; /* positions > 0 */
    double *sum;       /* of max(value, 0), in image order */
    float *max;        /* largest value (before the ReLU) */
    int64_t *max_seq;  /* where: image (-1: none yet), position, image row id (0: unresolved) */
    int32_t *max_pos;
    int64_t *max_image;
    topk_ent *top;     /* units x k, best first: score descending, then seq ascending */
    int *top_n;
    unsigned char *dirty; /* top-k changed since the last commit */
} scan_layer;

/* Over one plane of n values: sum of the positive ones (float64, eight lanes combined in a fixed
 * order), how many are positive, the largest, and the first position holding it (row-major). */
static void plane_stats(const float *p, int n, double *sum, int64_t *npos, float *max, int *arg)
{
    double s8[8] = {0};
    int c8[8] = {0};
    float m8[8];
    for (int l = 0; l < 8; l++)
        m8[l] = p[0];
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        for (int l = 0; l < 8; l++) {
            float v = p[j + l];
            s8[l] += v > 0.0f ? (double)v : 0.0;
            c8[l] += v > 0.0f;
            m8[l] = v > m8[l] ? v : m8[l];
        }
    }
    for (int l = 0; j < n; j++, l++) {
        float v = p[j];
        s8[l] += v > 0.0f ? (double)v : 0.0;
        c8[l] += v > 0.0f;
        m8[l] = v > m8[l] ? v : m8[l];
    }
    double s = ((s8[0] + s8[1]) + (s8[2] + s8[3])) + ((s8[4] + s8[5]) + (s8[6] + s8[7]));
    int c = c8[0] + c8[1] + c8[2] + c8[3] + c8[4] + c8[5] + c8[6] + c8[7];
    float m = m8[0];
    for (int l = 1; l < 8; l++)
        m = m8[l] > m ? m8[l] : m;
    int a = 0;
    while (a < n && !(p[a] == m))
        a++;
    *sum = s;
    *npos = c;
    *max = m;
    *arg = a < n ? a : 0;
}

static void offer(scan_layer *L, int c, int k, float score, int pos, int64_t seq)
{
    topk_ent *t = L->top + (size_t)c * k;
    int n = L->top_n[c];
    /* seq is larger than every kept entry's, so an equal score ranks after them */
    if (n == k && !(score > t[k - 1].score))
        return;
    int j = n < k ? n : k - 1;
    while (j > 0 && score > t[j - 1].score) {
        t[j] = t[j - 1];
        j--;
    }
    t[j] = (topk_ent){score, pos, seq, 0};
    if (n < k)
        L->top_n[c] = n + 1;
    L->dirty[c] = 1;
}

/* Adds n images (their outputs in act, (n, units, hw)) in order. Units are independent, so they
 * are split across threads; each unit still sees its images in sequence order. */
static void accumulate(scan_layer *L, const float *act, int n, const int64_t *seqs, int k)
{
    const int units = L->units, hw = L->hw;
#pragma omp parallel for schedule(static) if ((int64_t)units * hw * n > 65536)
    for (int c = 0; c < units; c++) {
        for (int i = 0; i < n; i++) {
            const float *p = act + ((size_t)i * units + c) * (size_t)hw;
            double s;
            int64_t npos;
            float m;
            int arg;
            plane_stats(p, hw, &s, &npos, &m, &arg);
            L->sum[c] += s;
            L->positive[c] += npos;
            L->active[c] += npos > 0;
            if (L->max_seq[c] < 0 || m > L->max[c]) {
                L->max[c] = m;
                L->max_seq[c] = seqs[i];
                L->max_pos[c] = arg;
                L->max_image[c] = 0;
            }
            offer(L, c, k, m, arg, seqs[i]);
        }
    }
}

static void layer_free(scan_layer *L)
{
    free(L->active);
    free(L->positive);
    free(L->sum);
    free(L->max);
    free(L->max_seq);
    free(L->max_pos);
    free(L->max_image);
    free(L->top);
    free(L->top_n);
    free(L->dirty);
}

static int layer_alloc(scan_layer *L, int k)
{
    size_t u = (size_t)L->units;
    L->active = calloc(u, sizeof *L->active);
    L->positive = calloc(u, sizeof *L->positive);
    L->sum = calloc(u, sizeof *L->sum);
    L->max = calloc(u, sizeof *L->max);
    L->max_seq = malloc(u * sizeof *L->max_seq);
    L->max_pos = calloc(u, sizeof *L->max_pos);
    L->max_image = calloc(u, sizeof *L->max_image);
    L->top = calloc(u * (size_t)k, sizeof *L->top);
    L->top_n = calloc(u, sizeof *L->top_n);
    L->dirty = calloc(u, 1);
    if (!L->active || !L->positive || !L->sum || !L->max || !L->max_seq || !L->max_pos ||
        !L->max_image || !L->top || !L->top_n || !L->dirty)
        return -1;
    for (size_t c = 0; c < u; c++)
        L->max_seq[c] = -1;
    return 0;
}

/* ---------------------------------------------------------------- decoding ahead */

typedef struct img_meta {
    int ok;
    char sha[65];  /* "" when the file could not be read */
    int64_t bytes; /* -1 when unknown */
    int w, h;
    char *error;   /* malloc'd, failed images only */
} img_meta;

typedef struct slot {
    int64_t seq0;
    int count, n_ok;
    float *input;   /* the n_ok decoded images, packed: (n_ok, c, h, w) */
    int64_t *seqs;  /* seq of each packed image */
    img_meta *meta; /* per seq in [seq0, seq0 + count) */
    int ready;
} slot;

typedef struct pipeline {
    pthread_t thread;
    int inited, started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot slots[SCAN_SLOTS];
    int stop;
    const char *const *paths;
    int64_t start, n;
    int batch;
    const zf_net *net;
    size_t in_size;
} pipeline;

static void meta_fail(img_meta *m, const char *msg)
{
    m->ok = 0;
    free(m->error);
    m->error = strdup(msg && *msg ? msg : "unknown error");
}

/* Reads, hashes, decodes and preprocesses one image into dst. */
static void load_one(pipeline *P, const char *path, float *dst, img_meta *m, uint8_t **buf,
                     size_t *cap)
{
    memset(m, 0, sizeof *m);
    m->bytes = -1;
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
    } else {
        size_t want = (size_t)sb.st_size;
        if (want + 1 > *cap) {
            uint8_t *nb = realloc(*buf, want + 1);
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
    }
    zf_image_free(img);
    if (s) {
        meta_fail(m, zf_last_error());
        return;
    }
    m->ok = 1;
}

static void *producer(void *arg)
{
    pipeline *P = arg;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (int64_t seq0 = P->start, b = 0; seq0 < P->n; seq0 += P->batch, b++) {
        slot *S = &P->slots[b % SCAN_SLOTS];
        pthread_mutex_lock(&P->mu);
        while (S->ready && !P->stop)
            pthread_cond_wait(&P->cv, &P->mu);
        int stop = P->stop;
        pthread_mutex_unlock(&P->mu);
        if (stop)
            break;
        S->seq0 = seq0;
        S->count = (int)(P->n - seq0 < P->batch ? P->n - seq0 : P->batch);
        S->n_ok = 0;
        for (int i = 0; i < S->count; i++) {
            img_meta *m = &S->meta[i];
            load_one(P, P->paths[seq0 + i], S->input + (size_t)S->n_ok * P->in_size, m, &buf,
                     &cap);
            if (m->ok)
                S->seqs[S->n_ok++] = seq0 + i;
        }
        pthread_mutex_lock(&P->mu);
        S->ready = 1;
        pthread_cond_broadcast(&P->cv);
        pthread_mutex_unlock(&P->mu);
    }
    free(buf);
    return NULL;
}

static void pipeline_stop(pipeline *P)
{
    if (P->started) {
        pthread_mutex_lock(&P->mu);
        P->stop = 1;
        pthread_cond_broadcast(&P->cv);
        pthread_mutex_unlock(&P->mu);
        pthread_join(P->thread, NULL);
        P->started = 0;
    }
}

static void pipeline_free(pipeline *P)
{
    if (!P->inited)
        return;
    pipeline_stop(P);
    for (int i = 0; i < SCAN_SLOTS; i++) {
        zf_free(P->slots[i].input);
        free(P->slots[i].seqs);
        if (P->slots[i].meta)
            for (int j = 0; j < P->batch; j++)
                free(P->slots[i].meta[j].error);
        free(P->slots[i].meta);
    }
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
    int64_t n_images;
    int64_t committed; /* next_seq in the database */
    int64_t n_ok, n_failed;
    /* the chunk in progress: images [committed, committed + chunk_n) */
    img_meta *chunk_meta;
    int64_t *chunk_ids;
    int chunk_n;
    const char *const *paths;
    sqlite3_stmt *find_image, *insert_image, *insert_run_image, *upsert_stats, *delete_topk,
        *insert_topk, *update_run, *check_run;
} scan;

static void scan_free(scan *S)
{
    for (int i = 0; i < S->n_layers; i++)
        layer_free(&S->layers[i]);
    free(S->layers);
    if (S->chunk_meta)
        for (int i = 0; i < S->chunk; i++)
            free(S->chunk_meta[i].error);
    free(S->chunk_meta);
    free(S->chunk_ids);
    sqlite3_finalize(S->find_image);
    sqlite3_finalize(S->insert_image);
    sqlite3_finalize(S->insert_run_image);
    sqlite3_finalize(S->upsert_stats);
    sqlite3_finalize(S->delete_topk);
    sqlite3_finalize(S->insert_topk);
    sqlite3_finalize(S->update_run);
    sqlite3_finalize(S->check_run);
}

static zf_status prepare_all(scan *S)
{
    zf_db *db = S->db;
    zf_status s;
    if ((s = zf_db_prepare(db, &S->find_image,
                           "SELECT id FROM images WHERE path = ?1 AND ifnull(sha256, '') = "
                           "ifnull(?2, '')")) ||
        (s = zf_db_prepare(db, &S->insert_image,
                           "INSERT INTO images (path, sha256, bytes, width, height, status, error) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)")) ||
        (s = zf_db_prepare(db, &S->insert_run_image,
                           "INSERT INTO run_images (run_id, seq, image_id) VALUES (?, ?, ?)")) ||
        (s = zf_db_prepare(
             db, &S->upsert_stats,
             "INSERT INTO unit_stats (run_id, layer, unit, images, active_images, positions, "
             "positive_positions, sum, max, max_image_id, max_y, max_x) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
             "ON CONFLICT (run_id, layer, unit) DO UPDATE SET images = excluded.images, "
             "active_images = excluded.active_images, positions = excluded.positions, "
             "positive_positions = excluded.positive_positions, sum = excluded.sum, "
             "max = excluded.max, max_image_id = excluded.max_image_id, max_y = excluded.max_y, "
             "max_x = excluded.max_x")) ||
        (s = zf_db_prepare(db, &S->delete_topk,
                           "DELETE FROM topk WHERE run_id = ? AND layer = ? AND unit = ?")) ||
        (s = zf_db_prepare(db, &S->insert_topk,
                           "INSERT INTO topk (run_id, layer, unit, rank, image_id, seq, score, y, "
                           "x, box_x0, box_y0, box_x1, box_y1) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) ||
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
    int row = 0;
    const char *sha = m->sha[0] ? m->sha : NULL;
    sqlite3_stmt *st = S->find_image;
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 2, sha));
    if ((s = zf_db_step(db, st, &row)))
        goto fail;
    if (row) {
        *id = sqlite3_column_int64(st, 0);
        reuse(st);
        return ZF_OK;
    }
    reuse(st);
    st = S->insert_image;
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 2, sha));
    ZF_SQL_TRY(s, db, m->bytes >= 0 ? sqlite3_bind_int64(st, 3, m->bytes) : sqlite3_bind_null(st, 3));
    ZF_SQL_TRY(s, db, m->w > 0 ? sqlite3_bind_int(st, 4, m->w) : sqlite3_bind_null(st, 4));
    ZF_SQL_TRY(s, db, m->h > 0 ? sqlite3_bind_int(st, 5, m->h) : sqlite3_bind_null(st, 5));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 6, m->ok ? "ok" : "error", -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 7, m->ok ? NULL : m->error));
    if ((s = zf_db_step(db, st, NULL)))
        goto fail;
    *id = sqlite3_last_insert_rowid(zf_db_handle(db));
fail:
    reuse(st);
    return s;
}

static zf_status write_stats(scan *S, const scan_layer *L)
{
    zf_db *db = S->db;
    sqlite3_stmt *st = S->upsert_stats;
    zf_status s = ZF_OK;
    const int w = L->l->out_w;
    for (int c = 0; c < L->units; c++) {
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, S->run_id));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, L->l->name, -1, SQLITE_STATIC));
        ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 3, c));
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 4, S->n_ok));
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 5, L->active[c]));
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 6, S->n_ok * L->hw));
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 7, L->positive[c]));
        ZF_SQL_TRY(s, db, sqlite3_bind_double(st, 8, L->sum[c]));
        if (L->max_seq[c] >= 0) {
            ZF_SQL_TRY(s, db, sqlite3_bind_double(st, 9, (double)L->max[c]));
            ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 10, L->max_image[c]));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 11, L->max_pos[c] / w));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 12, L->max_pos[c] % w));
        }
        if ((s = zf_db_step(db, st, NULL)))
            goto fail;
        reuse(st);
    }
    return ZF_OK;
fail:
    reuse(st);
    return s;
}

static zf_status write_topk(scan *S, const scan_layer *L)
{
    zf_db *db = S->db;
    zf_status s = ZF_OK;
    sqlite3_stmt *st = NULL;
    const int w = L->l->out_w;
    for (int c = 0; c < L->units; c++) {
        if (!L->dirty[c])
            continue;
        st = S->delete_topk;
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, S->run_id));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, L->l->name, -1, SQLITE_STATIC));
        ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 3, c));
        if ((s = zf_db_step(db, st, NULL)))
            goto fail;
        reuse(st);
        st = S->insert_topk;
        const topk_ent *t = L->top + (size_t)c * S->k;
        for (int r = 0; r < L->top_n[c]; r++) {
            zf_box box;
            int y = t[r].pos / w, x = t[r].pos % w;
            if ((s = zf_db_receptive_field(S->net, L->li, y, x, &box)))
                goto fail;
            ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, S->run_id));
            ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, L->l->name, -1, SQLITE_STATIC));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 3, c));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 4, r + 1));
            ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 5, t[r].image_id));
            ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 6, t[r].seq));
            ZF_SQL_TRY(s, db, sqlite3_bind_double(st, 7, (double)t[r].score));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 8, y));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 9, x));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 10, box.x0));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 11, box.y0));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 12, box.x1));
            ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 13, box.y1));
            if ((s = zf_db_step(db, st, NULL)))
                goto fail;
            reuse(st);
        }
    }
    return ZF_OK;
fail:
    if (st)
        reuse(st);
    return s;
}

/* Commits the chunk in progress: its images, every accumulator as it now stands and the run's
 * new position, in one transaction. */
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
    int64_t next = row ? sqlite3_column_int64(st, 0) : -1;
    reuse(st);
    if (next != start) {
        s = zf_error(ZF_ERR_DB,
                     "%s: run %lld moved from image %lld to %lld behind this scan's back: is "
                     "another zfviz scan of the same images and model running?",
                     zf_db_path(db), (long long)S->run_id, (long long)start, (long long)next);
        goto fail;
    }
    for (int i = 0; i < S->chunk_n; i++) {
        if ((s = image_row(S, S->paths[start + i], &S->chunk_meta[i], &S->chunk_ids[i])))
            goto fail;
        st = S->insert_run_image;
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, S->run_id));
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 2, start + i));
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 3, S->chunk_ids[i]));
        if ((s = zf_db_step(db, st, NULL)))
            goto fail;
        reuse(st);
    }
    for (int li = 0; li < S->n_layers; li++) {
        scan_layer *L = &S->layers[li];
        for (int c = 0; c < L->units; c++) {
            if (L->max_seq[c] >= 0 && !L->max_image[c])
                L->max_image[c] = S->chunk_ids[L->max_seq[c] - start];
            topk_ent *t = L->top + (size_t)c * S->k;
            for (int r = 0; r < L->top_n[c]; r++)
                if (!t[r].image_id)
                    t[r].image_id = S->chunk_ids[t[r].seq - start];
        }
        if ((s = write_stats(S, L)) || (s = write_topk(S, L)))
            goto fail;
    }
    st = S->update_run;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, end));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 2, S->n_ok));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 3, S->n_failed));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 4, S->run_id));
    if ((s = zf_db_step(db, st, NULL)))
        goto fail;
    reuse(st);
    if ((s = zf_db_commit(db)))
        goto fail;
    for (int li = 0; li < S->n_layers; li++)
        memset(S->layers[li].dirty, 0, (size_t)S->layers[li].units);
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
    if ((s = zf_db_prepare(db, &st,
                           "SELECT unit, images, active_images, positions, positive_positions, "
                           "sum, max, max_image_id, max_y, max_x FROM unit_stats "
                           "WHERE run_id = ? AND layer = ? ORDER BY unit")))
        return s;
    for (int li = 0; li < S->n_layers; li++) {
        scan_layer *L = &S->layers[li];
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, S->run_id));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, L->l->name, -1, SQLITE_STATIC));
        int got = 0;
        while (!(s = zf_db_step(db, st, &row)) && row) {
            int c = sqlite3_column_int(st, 0);
            if (c < 0 || c >= L->units || sqlite3_column_int64(st, 1) != S->n_ok) {
                s = zf_error(ZF_ERR_DB,
                             "%s: run %lld: statistics of %s unit %d do not match the run's "
                             "progress (%lld images, run says %lld)",
                             zf_db_path(db), (long long)S->run_id, L->l->name, c,
                             (long long)sqlite3_column_int64(st, 1), (long long)S->n_ok);
                goto fail;
            }
            L->active[c] = sqlite3_column_int64(st, 2);
            L->positive[c] = sqlite3_column_int64(st, 4);
            L->sum[c] = sqlite3_column_double(st, 5);
            if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
                L->max[c] = (float)sqlite3_column_double(st, 6);
                L->max_seq[c] = 0; /* present and resolved; only its image row id is kept */
                L->max_image[c] = sqlite3_column_int64(st, 7);
                L->max_pos[c] = sqlite3_column_int(st, 8) * L->l->out_w + sqlite3_column_int(st, 9);
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
    if ((s = zf_db_prepare(db, &st,
                           "SELECT unit, rank, image_id, seq, score, y, x FROM topk "
                           "WHERE run_id = ? AND layer = ? ORDER BY unit, rank")))
        return s;
    for (int li = 0; li < S->n_layers; li++) {
        scan_layer *L = &S->layers[li];
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, S->run_id));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, L->l->name, -1, SQLITE_STATIC));
        while (!(s = zf_db_step(db, st, &row)) && row) {
            int c = sqlite3_column_int(st, 0), r = sqlite3_column_int(st, 1);
            if (c < 0 || c >= L->units || r != L->top_n[c] + 1 || r > S->k) {
                s = zf_error(ZF_ERR_DB, "%s: run %lld: top-k of %s unit %d is damaged (rank %d)",
                             zf_db_path(db), (long long)S->run_id, L->l->name, c, r);
                goto fail;
            }
            topk_ent *t = &L->top[(size_t)c * S->k + (size_t)(r - 1)];
            t->image_id = sqlite3_column_int64(st, 2);
            t->seq = sqlite3_column_int64(st, 3);
            t->score = (float)sqlite3_column_double(st, 4);
            t->pos = sqlite3_column_int(st, 5) * L->l->out_w + sqlite3_column_int(st, 6);
            L->top_n[c] = r;
        }
        if (s)
            goto fail;
        reuse(st);
    }
fail:
    sqlite3_finalize(st);
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
                           "SELECT id, batch, chunk, next_seq, n_ok, n_failed, n_images FROM runs "
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
        S->committed = sqlite3_column_int64(st, 3);
        S->n_ok = sqlite3_column_int64(st, 4);
        S->n_failed = sqlite3_column_int64(st, 5);
        if (sqlite3_column_int64(st, 6) != S->n_images) {
            s = zf_error(ZF_ERR_DB, "%s: run %lld lists %lld images, this scan %lld",
                         zf_db_path(db), (long long)S->run_id,
                         (long long)sqlite3_column_int64(st, 6), (long long)S->n_images);
            goto fail;
        }
        res->resumed = 1;
        sqlite3_finalize(st);
        st = NULL;
        return zf_db_commit(db);
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((s = zf_db_prepare(db, &st,
                           "INSERT INTO runs (model_id, images, list_sha256, n_images, layers, "
                           "top_k, batch, chunk) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")))
        goto fail;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, model_id));
    ZF_SQL_TRY(s, db, zf_db_bind_text(st, 2, o->images_arg ? o->images_arg : ""));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 3, list_sha, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 4, S->n_images));
    ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 5, layers, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 6, S->k));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 7, S->batch));
    ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 8, S->chunk));
    if ((s = zf_db_step(db, st, NULL)))
        goto fail;
    S->run_id = sqlite3_last_insert_rowid(zf_db_handle(db));
    sqlite3_finalize(st);
    st = NULL;
    if ((s = zf_db_prepare(db, &st,
                           "INSERT INTO run_layers (run_id, layer, position, op, units, height, "
                           "width) VALUES (?, ?, ?, ?, ?, ?, ?)")))
        goto fail;
    for (int i = 0; i < S->n_layers; i++) {
        const zf_layer *l = S->layers[i].l;
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, S->run_id));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, l->name, -1, SQLITE_STATIC));
        ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 3, S->layers[i].li));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 4, l->op == ZF_OP_CONV ? "conv" : "fc", -1,
                                            SQLITE_STATIC));
        ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 5, l->out_c));
        ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 6, l->out_h));
        ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 7, l->out_w));
        if ((s = zf_db_step(db, st, NULL)))
            goto fail;
        reuse(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    return zf_db_commit(db);
fail:
    sqlite3_finalize(st);
    zf_db_rollback(db);
    return s;
}

static zf_status default_forward(void *ctx, zf_net *net, const float *input, int n)
{
    (void)ctx;
    return zf_net_forward(net, input, n);
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
    if (net->in_c != 3)
        return zf_error(ZF_ERR_UNSUPPORTED, "scan: %s takes %d input channels; images have 3",
                        net->arch, net->in_c);
    scan S = {0};
    pipeline P = {0};
    zf_status s = ZF_OK;
    S.db = db;
    S.net = net;
    S.paths = paths;
    S.n_images = n;
    S.k = o->top_k > 0 ? o->top_k : 9;
    S.batch = o->batch > 0 ? o->batch : 16;
    S.chunk = o->chunk > 0 ? o->chunk : 512;
    if (S.k > 1000 || S.batch > 4096 || S.chunk > 1 << 20)
        return zf_error(ZF_ERR_ARG, "scan: top-k %d, batch %d or chunk %d out of range", S.k,
                        S.batch, S.chunk);
    S.chunk = (S.chunk + S.batch - 1) / S.batch * S.batch;

    /* the layers, in net order, as the run records them */
    int *idx = malloc((size_t)net->n_layers * sizeof *idx);
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
    S.layers = calloc((size_t)nl, sizeof *S.layers);
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
    if ((s = open_run(&S, o, list_sha, layers, res)))
        goto out;
    res->run_id = S.run_id;
    res->n_images = n;
    res->start_seq = S.committed;
    res->batch = S.batch;
    res->chunk = S.chunk;
    res->next_seq = S.committed;
    res->n_ok = S.n_ok;
    res->n_failed = S.n_failed;
    if (o->started)
        o->started(o->progress_ctx, res);
    for (int i = 0; i < nl; i++)
        if (layer_alloc(&S.layers[i], S.k)) {
            s = zf_error(ZF_ERR_NOMEM, "scan: out of memory for the accumulators");
            goto out;
        }
    if (S.committed > 0 && (s = load_state(&S)))
        goto out;
    if (S.committed >= n)
        goto done;
    if ((s = prepare_all(&S)))
        goto out;
    S.chunk_meta = calloc((size_t)S.chunk, sizeof *S.chunk_meta);
    S.chunk_ids = calloc((size_t)S.chunk, sizeof *S.chunk_ids);
    if (!S.chunk_meta || !S.chunk_ids) {
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
    P.n = n;
    P.batch = S.batch;
    P.net = net;
    P.in_size = (size_t)zf_net_in_size(net);
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv, NULL);
    P.inited = 1;
    for (int i = 0; i < SCAN_SLOTS; i++) {
        slot *sl = &P.slots[i];
        sl->input = zf_alloc((size_t)S.batch * P.in_size * sizeof(float));
        sl->seqs = calloc((size_t)S.batch, sizeof *sl->seqs);
        sl->meta = calloc((size_t)S.batch, sizeof *sl->meta);
        if (!sl->input || !sl->seqs || !sl->meta) {
            s = zf_error(ZF_ERR_NOMEM, "scan: out of memory for %d decoded images", S.batch);
            goto out;
        }
    }
    if (pthread_create(&P.thread, NULL, producer, &P) != 0) {
        s = zf_error(ZF_ERR_NOMEM, "scan: cannot start the decoding thread");
        goto out;
    }
    P.started = 1;
    zf_status (*fwd)(void *, zf_net *, const float *, int) = o->forward ? o->forward : default_forward;

    for (int64_t b = 0, seq = S.committed; seq < n; b++) {
        slot *sl = &P.slots[b % SCAN_SLOTS];
        pthread_mutex_lock(&P.mu);
        while (!sl->ready)
            pthread_cond_wait(&P.cv, &P.mu);
        pthread_mutex_unlock(&P.mu);
        if (sl->n_ok > 0) {
            if ((s = fwd(o->forward_ctx, net, sl->input, sl->n_ok))) {
                zf_error_prefix(s, "scan: forward of images %lld-%lld: ", (long long)sl->seq0,
                                (long long)(sl->seq0 + sl->count - 1));
                goto out;
            }
            for (int i = 0; i < nl; i++)
                accumulate(&S.layers[i], net->acts[S.layers[i].src], sl->n_ok, sl->seqs, S.k);
        }
        for (int i = 0; i < sl->count; i++) {
            img_meta *m = &S.chunk_meta[S.chunk_n + i];
            free(m->error);
            *m = sl->meta[i];
            sl->meta[i].error = NULL;
            if (m->ok)
                S.n_ok++;
            else
                S.n_failed++;
        }
        S.chunk_n += sl->count;
        seq += sl->count;
        pthread_mutex_lock(&P.mu);
        sl->ready = 0;
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
        int stop = zf_interrupted != 0;
        if (S.chunk_n >= S.chunk || seq >= n || stop) {
            if ((s = commit_chunk(&S)))
                goto out;
        }
        if (o->progress)
            o->progress(o->progress_ctx, seq, n);
        if (stop) {
            s = zf_error(ZF_ERR_INTERRUPTED,
                         "scan interrupted after %lld of %lld images (all committed; run the "
                         "same command again to continue)",
                         (long long)seq, (long long)n);
            break;
        }
    }
done:
    res->next_seq = S.committed;
    res->n_ok = S.n_ok;
    res->n_failed = S.n_failed;
out:
    pipeline_free(&P);
    scan_free(&S);
    return s;
}
