/* Joining sharded scans (zfviz scan --shard K/N) into the database one scan of the whole list
 * writes: the shards are checked to belong together and to cover the list once, then folded in
 * one at a time (memory holds one net's accumulators, whatever the number of shards), and the
 * output is written beside its path and renamed into place.
 *
 * Why the result is the one-process scan's, row for row: every per-unit accumulator is
 * order-free (integer counts, exact sums, a max decided by (value, then seq), a top-k ordered by
 * (score, then seq)), the shards keep the whole list's seqs, and the images are entered in seq
 * order, so they get the ids a single scan would give them. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "zf/alloc.h"
#include "zf/xsum.h"

/* What a shard's run says about itself. */
typedef struct shard_meta {
    const char *path;
    zf_db_run run;
    zf_db_model model;
    char geometry[1024];  /* the layers: "name:position:op:UxHxW,..." */
    char classes_sha[65]; /* of the class names in order */
} shard_meta;

typedef struct top_ent {
    double score; /* for ordering; the text is what is written back */
    int64_t seq;
    char text[96]; /* the entry after its image id: "seq,score,y,x,box_x0,box_y0,box_x1,box_y1" */
} top_ent;

typedef struct unit_acc {
    int64_t active, positive;
    zf_xsum sum;
    int has_max;
    double max;
    int64_t max_seq;
    int max_y, max_x;
    int top_n, bot_n;
    int no_bottom; /* some shard began before bottom-k was kept */
    int no_hist;   /* likewise for the histogram */
} unit_acc;

typedef struct merge_layer {
    char name[32], op[8];
    int position, units, height, width;
    int64_t hw; /* positions per image */
    unit_acc *u;
    top_ent *top; /* units x k */
    top_ent *bot; /* units x k: the bottom-k, ordered by the negated score */
    int64_t *hist; /* units x ZF_DB_HIST_BINS */
    zf_xsum *csum; /* units x classes */
    top_ent *tmp; /* room for k + k: the two lists merged */
} merge_layer;

static zf_status read_meta(const char *path, shard_meta *m)
{
    memset(m, 0, sizeof *m);
    m->path = path;
    zf_db *db = NULL;
    sqlite3_stmt *st = NULL;
    zf_db_opts o = {ZF_DB_READONLY, 30.0, NULL, NULL};
    zf_status s = zf_db_open(path, &o, &db);
    if (s)
        return s;
    int row = 0;
    if ((s = zf_db_prepare(db, &st, "SELECT count(*), min(id) FROM runs")) ||
        (s = zf_db_step(db, st, &row)))
        goto fail;
    int64_t runs = sqlite3_column_int64(st, 0), id = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    if (runs != 1) {
        s = runs ? zf_error(ZF_ERR_ARG, "%s: holds %lld scans; merge takes one scan (a shard) a "
                            "database", path, (long long)runs)
                 : zf_error(ZF_ERR_ARG, "%s: holds no scan", path);
        goto fail;
    }
    if ((s = zf_db_run_get(db, id, &m->run)) ||
        (s = zf_db_model_get(db, m->run.model_id, &m->model)))
        goto fail;
    if (m->run.next_seq != m->run.n_images) {
        s = zf_error(ZF_ERR_ARG,
                     "%s: the scan is unfinished (%lld of %lld images); run its scan command "
                     "again to finish it",
                     path, (long long)m->run.next_seq, (long long)m->run.n_images);
        goto fail;
    }
    if ((s = zf_db_get_row(db, &st,
                           "SELECT group_concat(layer || ':' || position || ':' || op || ':' || "
                           "units || 'x' || height || 'x' || width, ',') FROM "
                           "(SELECT * FROM run_layers WHERE run_id = ? ORDER BY position)",
                           id, "run")))
        goto fail;
    zf_db_column_text(st, 0, m->geometry, sizeof m->geometry);
    sqlite3_finalize(st);
    st = NULL;
    s = zf_db_classes_hash(db, id, m->classes_sha);
fail:
    sqlite3_finalize(st);
    zf_db_close(db);
    return s;
}

/* One line naming the file and what differs from the first shard, or ZF_OK. */
static zf_status check_alike(const shard_meta *a, const shard_meta *b)
{
#define DIFF(cond, what, fmt, x, y)                                                              \
    if (cond)                                                                                    \
        return zf_error(ZF_ERR_ARG, "%s: " what " differs from %s's (" fmt " vs " fmt ")", b->path, \
                        a->path, y, x);
    DIFF(strcmp(a->model.sha256, b->model.sha256), "the model", "%.12s", a->model.sha256, b->model.sha256)
    DIFF(strcmp(a->model.preproc, b->model.preproc), "the preprocessing", "%s", a->model.preproc, b->model.preproc)
    DIFF(strcmp(a->run.list_sha256, b->run.list_sha256) || a->run.list_n != b->run.list_n, "the image list",
         "%.12s", a->run.list_sha256, b->run.list_sha256)
    DIFF(strcmp(a->run.layers, b->run.layers), "the layers", "%s", a->run.layers, b->run.layers)
    DIFF(strcmp(a->geometry, b->geometry), "the layers' shapes", "%s", a->geometry, b->geometry)
    DIFF(a->run.top_k != b->run.top_k, "the top-k", "%d", a->run.top_k, b->run.top_k)
    DIFF(a->run.batch != b->run.batch, "the batch", "%d", a->run.batch, b->run.batch)
    /* -1: a run begun before schema 4, which kept no class statistics */
    DIFF(a->run.classes != b->run.classes || strcmp(a->classes_sha, b->classes_sha), "the classes", "%d",
         a->run.classes, b->run.classes)
#undef DIFF
    return ZF_OK;
}

static int by_seq0(const void *x, const void *y)
{
    const shard_meta *a = x, *b = y;
    return a->run.seq0 < b->run.seq0 ? -1 : a->run.seq0 > b->run.seq0;
}

/* Better first: higher score, then the earlier image. */
static int top_before(const top_ent *a, const top_ent *b)
{
    return a->score > b->score || (a->score == b->score && a->seq < b->seq);
}

/* Parses a stored top-k (unit_stats.top; or bottom-k, neg = 1, its scores negated for the order)
 * into entries: the seq and score are read for ordering, the rest after the image id is kept as
 * written. */
static int parse_top(const char *json, top_ent *out, int k, int neg)
{
    const char *p = json;
    int n = 0;
    if (!p || *p++ != '[')
        return -1;
    while (*p == '[') {
        if (n >= k)
            return -1;
        p++;
        const char *comma = strchr(p, ',');
        const char *end = strchr(p, ']');
        if (!comma || !end || comma > end || (size_t)(end - comma - 1) >= sizeof out->text)
            return -1;
        top_ent *t = &out[n++];
        memcpy(t->text, comma + 1, (size_t)(end - comma - 1));
        t->text[end - comma - 1] = 0;
        char *e;
        t->seq = strtoll(t->text, &e, 10);
        if (*e != ',')
            return -1;
        const char *sc = e + 1;
        t->score = !strncmp(sc, "null", 4) ? NAN : strtod(sc, &e);
        if (neg)
            t->score = -t->score;
        p = end + 1;
        if (*p == ',')
            p++;
    }
    return *p == ']' ? n : -1;
}

/* Merges a shard's stored list (json) into a unit's: the k best of both. */
static zf_status merge_list(const shard_meta *m, merge_layer *L, int c, int k, const char *json,
                            int neg, top_ent *mine, int *mine_n)
{
    top_ent *theirs = L->tmp + k;
    int tn = parse_top(json, theirs, k, neg);
    for (int r = 0; r < tn; r++)
        if (theirs[r].seq < m->run.seq0 || theirs[r].seq >= m->run.seq0 + m->run.n_images)
            tn = -1;
    if (tn < 0)
        return zf_error(ZF_ERR_DB, "%s: the %s of %s unit %d is damaged", m->path,
                        neg ? "bottom-k" : "top-k", L->name, c);
    int a = 0, b = 0, n = 0;
    while (n < k && (a < *mine_n || b < tn)) {
        if (b >= tn || (a < *mine_n && top_before(&mine[a], &theirs[b])))
            L->tmp[n++] = mine[a++];
        else
            L->tmp[n++] = theirs[b++];
    }
    memcpy(mine, L->tmp, (size_t)n * sizeof *mine);
    *mine_n = n;
    return ZF_OK;
}

static zf_status fold_shard(zf_db *out, const shard_meta *m, merge_layer *ml, int nl, int k,
                            int64_t *seq_image, zf_db_image_stmts *q, int64_t out_run,
                            zf_db_class_acc *cacc)
{
    zf_db *db = NULL;
    sqlite3_stmt *st = NULL;
    zf_db_opts o = {ZF_DB_READONLY, 30.0, NULL, NULL};
    zf_status s = zf_db_open(m->path, &o, &db);
    if (s)
        return s;
    int row = 0;
    /* the images, in seq order: the ids a single scan gives */
    if ((s = zf_db_prepare(db, &st,
                           "SELECT r.seq, i.path, i.sha256, i.bytes, i.width, i.height, i.status, "
                           "i.error, r.class FROM run_images r JOIN images i ON i.id = r.image_id "
                           "WHERE r.run_id = ? ORDER BY r.seq")))
        goto fail;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, m->run.id));
    int64_t want = m->run.seq0;
    while (!(s = zf_db_step(db, st, &row)) && row) {
        int64_t seq = sqlite3_column_int64(st, 0);
        if (seq != want || seq >= m->run.seq0 + m->run.n_images) {
            s = zf_error(ZF_ERR_DB, "%s: the scan's image list is damaged at image %lld", m->path,
                         (long long)seq);
            goto fail;
        }
        want++;
        ZF_SQL_TRY(s, out, sqlite3_bind_value(q->find, 1, sqlite3_column_value(st, 1)));
        ZF_SQL_TRY(s, out, sqlite3_bind_value(q->find, 2, sqlite3_column_value(st, 2)));
        if ((s = zf_db_image_lookup(out, q, &seq_image[seq])))
            goto fail;
        if (!seq_image[seq]) {
            for (int c = 0; c < 7; c++)
                ZF_SQL_TRY(s, out, sqlite3_bind_value(q->insert, c + 1, sqlite3_column_value(st, c + 1)));
            if ((s = zf_db_image_insert(out, q, &seq_image[seq])))
                goto fail;
        }
        int cls = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 8);
        if ((s = zf_db_run_image_put(out, q, out_run, seq, seq_image[seq], cls)))
            goto fail;
    }
    if (s)
        goto fail;
    if (want != m->run.seq0 + m->run.n_images) {
        s = zf_error(ZF_ERR_DB, "%s: the scan records %lld of its %lld images", m->path,
                     (long long)(want - m->run.seq0), (long long)m->run.n_images);
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((s = zf_db_prepare(db, &st, ZF_DB_UNIT_STATS_SELECT)))
        goto fail;
    for (int li = 0; li < nl; li++) {
        merge_layer *L = &ml[li];
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, m->run.id));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, L->name, -1, SQLITE_STATIC));
        while (!(s = zf_db_step(db, st, &row)) && row) {
            zf_db_unit_stats r;
            int64_t h[ZF_DB_HIST_BINS];
            zf_xsum part;
            if ((s = zf_db_unit_stats_read(db, st, m->run.id, L->name, &r, &part, h)))
                goto fail;
            const int c = r.unit;
            if (c < 0 || c >= L->units) {
                s = zf_error(ZF_ERR_DB, "%s: %s has no unit %d", m->path, L->name, c);
                goto fail;
            }
            unit_acc *u = &L->u[c];
            u->active += r.active;
            u->positive += r.positive;
            zf_xsum_merge(&u->sum, &part);
            if (r.has_max) {
                if (r.max_seq < m->run.seq0 || r.max_seq >= m->run.seq0 + m->run.n_images) {
                    s = zf_error(ZF_ERR_DB, "%s: %s unit %d has its max at image %lld, outside "
                                 "the shard", m->path, L->name, c, (long long)r.max_seq);
                    goto fail;
                }
                if (!u->has_max || r.max > u->max || (r.max == u->max && r.max_seq < u->max_seq)) {
                    u->has_max = 1;
                    u->max = r.max;
                    u->max_seq = r.max_seq;
                    u->max_y = r.max_y;
                    u->max_x = r.max_x;
                }
            }
            if ((s = merge_list(m, L, c, k, r.top, 0, L->top + (size_t)c * k, &u->top_n)))
                goto fail;
            if (!r.hist) {
                u->no_hist = 1;
            } else {
                int64_t *mine = L->hist + (size_t)c * ZF_DB_HIST_BINS;
                for (int b = 0; b < ZF_DB_HIST_BINS; b++)
                    mine[b] += h[b];
            }
            if (!r.bottom)
                u->no_bottom = 1;
            else if ((s = merge_list(m, L, c, k, r.bottom, 1, L->bot + (size_t)c * k, &u->bot_n)))
                goto fail;
        }
        if (s)
            goto fail;
        sqlite3_reset(st);
    }
    /* the shard's classes are the first's (check_alike) */
    if (m->run.classes > 0)
        s = zf_db_class_acc_add(db, cacc, m->run.id);
fail:
    sqlite3_finalize(st);
    zf_db_close(db);
    return s;
}

/* A list as the scan stores it, the image ids the output's. */
static void format_list(char *o, const top_ent *t, int n, const int64_t *seq_image)
{
    *o++ = '[';
    for (int r = 0; r < n; r++)
        o += sprintf(o, "%s[%lld,%s]", r ? "," : "", (long long)seq_image[t[r].seq], t[r].text);
    *o++ = ']';
    *o = 0;
}

static zf_status write_units(zf_db *out, int64_t run, merge_layer *ml, int nl, int k,
                             int64_t n_ok, const int64_t *seq_image)
{
    sqlite3_stmt *st = NULL;
    /* room for the top-k and the bottom-k lists */
    char *json = zf_malloc(2 * ((size_t)k * 128 + 3));
    zf_status s;
    if (!json)
        return zf_error(ZF_ERR_NOMEM, "merge: out of memory");
    char *bottom = json + (size_t)k * 128 + 3;
    if ((s = zf_db_prepare(out, &st, ZF_DB_UNIT_STATS_INSERT)))
        goto fail;
    for (int li = 0; li < nl; li++) {
        merge_layer *L = &ml[li];
        for (int c = 0; c < L->units && !s; c++) {
            unit_acc *a = &L->u[c];
            zf_db_unit_stats u = {.run = run, .layer = L->name, .unit = c, .images = n_ok,
                                  .active = a->active, .positions = n_ok * L->hw,
                                  .positive = a->positive, .sum = &a->sum, .has_max = a->has_max,
                                  .max = a->max, .max_seq = a->max_seq, .max_y = a->max_y,
                                  .max_x = a->max_x, .top = json};
            if (a->has_max)
                u.max_image_id = seq_image[a->max_seq];
            format_list(json, L->top + (size_t)c * k, a->top_n, seq_image);
            if (!a->no_bottom) {
                format_list(bottom, L->bot + (size_t)c * k, a->bot_n, seq_image);
                u.bottom = bottom;
            }
            if (!a->no_hist)
                u.hist = L->hist + (size_t)c * ZF_DB_HIST_BINS;
            s = zf_db_unit_stats_put(out, st, &u);
        }
    }
fail:
    sqlite3_finalize(st);
    free(json);
    return s;
}

static void remove_db_files(const char *path)
{
    static const char *const ext[] = {"", "-wal", "-shm", "-journal"};
    char p[1100];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, ext[i]);
        unlink(p);
    }
}

zf_status zf_db_merge(const char *out_path, const char *const *shards, int n,
                      zf_merge_result *res)
{
    memset(res, 0, sizeof *res);
    if (n < 1)
        return zf_error(ZF_ERR_ARG, "merge: no shard databases given");
    /* A database at out_path with a write-ahead log that holds data is open in another process
     * (or one was killed while writing it): the log would be replayed onto the new file. */
    char wal[1100];
    struct stat sb;
    snprintf(wal, sizeof wal, "%s-wal", out_path);
    int stale_wal = stat(wal, &sb) == 0;
    if (stale_wal && sb.st_size > 0)
        return zf_error(ZF_ERR_IO,
                        "%s: its -wal file holds data: the database is open in another process (or "
                        "one was killed while writing it); close it (or open it once with zfviz "
                        "runs) before replacing it",
                        out_path);
    char out_real[PATH_MAX];
    int out_exists = realpath(out_path, out_real) != NULL;
    for (int i = 0; i < n && out_exists; i++) {
        char r[PATH_MAX];
        if (realpath(shards[i], r) && !strcmp(r, out_real))
            return zf_error(ZF_ERR_ARG, "%s: is both the output and a shard to merge", out_path);
    }
    shard_meta *meta = zf_calloc((size_t)n, sizeof *meta);
    if (!meta)
        return zf_error(ZF_ERR_NOMEM, "merge: out of memory");
    zf_status s = ZF_OK;
    zf_db *out = NULL;
    merge_layer *ml = NULL;
    int nl = 0;
    int64_t *seq_image = NULL;
    zf_db_class_acc cacc = {0};
    int *merge_units = NULL;
    sqlite3_stmt *st = NULL;
    zf_db_image_stmts q = {0};
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.merge-%ld", out_path, (long)getpid());
    int made_tmp = 0;

    for (int i = 0; i < n; i++) {
        if ((s = read_meta(shards[i], &meta[i])) || (i && (s = check_alike(&meta[0], &meta[i]))))
            goto fail;
        for (int j = 0; j < i; j++)
            if (!strcmp(meta[j].path, meta[i].path)) {
                s = zf_error(ZF_ERR_ARG, "%s: given twice", meta[i].path);
                goto fail;
            }
    }
    qsort(meta, (size_t)n, sizeof *meta, by_seq0);
    /* the shards cover the list exactly once */
    int64_t next = 0;
    for (int i = 0; i < n; i++) {
        const shard_meta *m = &meta[i];
        if (m->run.seq0 < next) {
            s = zf_error(ZF_ERR_ARG, "%s: its images %lld-%lld overlap %s's (shard %s, images up "
                         "to %lld)", m->path, (long long)m->run.seq0,
                         (long long)(m->run.seq0 + m->run.n_images - 1), meta[i - 1].path,
                         meta[i - 1].run.shard, (long long)(next - 1));
            goto fail;
        }
        if (m->run.seq0 > next) {
            s = zf_error(ZF_ERR_ARG, "%s: images %lld-%lld of the list are in no shard given "
                         "(this one starts at %lld)", m->path, (long long)next,
                         (long long)(m->run.seq0 - 1), (long long)m->run.seq0);
            goto fail;
        }
        next = m->run.seq0 + m->run.n_images;
        res->n_ok += m->run.n_ok;
        res->n_failed += m->run.n_failed;
    }
    if (next != meta[0].run.list_n) {
        s = zf_error(ZF_ERR_ARG, "%s: images %lld-%lld of the list are in no shard given",
                     meta[n - 1].path, (long long)next, (long long)(meta[0].run.list_n - 1));
        goto fail;
    }
    const shard_meta *m0 = &meta[0];
    const int k = m0->run.top_k;
    const int classes = m0->run.classes > 0 ? m0->run.classes : 0;
    res->n_images = m0->run.list_n;
    res->n_shards = n;

    /* the layers, from "name:position:op:UxHxW,..." */
    for (const char *p = m0->geometry; *p; nl++) {
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    nl = *m0->geometry ? nl + 1 : 0;
    ml = zf_calloc((size_t)(nl ? nl : 1), sizeof *ml);
    seq_image = zf_calloc((size_t)m0->run.list_n, sizeof *seq_image);
    cacc.classes = classes;
    cacc.nl = nl;
    cacc.layer = zf_calloc((size_t)(nl ? nl : 1), sizeof *cacc.layer);
    cacc.units = merge_units = zf_calloc((size_t)(nl ? nl : 1), sizeof *merge_units);
    cacc.sum = zf_calloc((size_t)(nl ? nl : 1), sizeof *cacc.sum);
    cacc.n = zf_calloc((size_t)(classes ? classes : 1), sizeof *cacc.n);
    cacc.names = zf_calloc((size_t)(classes ? classes : 1), sizeof *cacc.names);
    if (!ml || !seq_image || !cacc.layer || !merge_units || !cacc.sum || !cacc.n || !cacc.names) {
        s = zf_error(ZF_ERR_NOMEM, "merge: out of memory for %lld images", (long long)m0->run.list_n);
        goto fail;
    }
    {
        const char *p = m0->geometry;
        for (int i = 0; i < nl; i++) {
            merge_layer *L = &ml[i];
            if (sscanf(p, "%31[^:]:%d:%7[^:]:%dx%dx%d", L->name, &L->position, L->op, &L->units,
                       &L->height, &L->width) != 6 ||
                L->units <= 0) {
                s = zf_error(ZF_ERR_DB, "%s: the scan's layers are damaged", m0->path);
                goto fail;
            }
            const int units = L->units;
            L->hw = (int64_t)L->height * L->width;
            ml[i].u = zf_calloc((size_t)units, sizeof *ml[i].u);
            ml[i].top = zf_calloc((size_t)units * (size_t)k, sizeof *ml[i].top);
            ml[i].bot = zf_calloc((size_t)units * (size_t)k, sizeof *ml[i].bot);
            ml[i].hist = zf_calloc((size_t)units * ZF_DB_HIST_BINS, sizeof *ml[i].hist);
            ml[i].tmp = zf_calloc((size_t)k * 2, sizeof *ml[i].tmp);
            ml[i].csum = classes ? zf_calloc((size_t)units * (size_t)classes, sizeof *ml[i].csum)
                                 : NULL;
            if (!ml[i].u || !ml[i].top || !ml[i].bot || !ml[i].hist || !ml[i].tmp ||
                (classes && !ml[i].csum)) {
                s = zf_error(ZF_ERR_NOMEM, "merge: out of memory for %s", L->name);
                goto fail;
            }
            cacc.layer[i] = ml[i].name;
            merge_units[i] = units;
            cacc.sum[i] = ml[i].csum;
            p = strchr(p, ',');
            p = p ? p + 1 : "";
        }
    }

    remove_db_files(tmp);
    made_tmp = 1;
    if ((s = zf_db_open(tmp, NULL, &out)))
        goto fail;
    if ((s = zf_db_begin(out)))
        goto fail;
    int64_t model_id;
    if ((s = zf_db_model_insert(out, &m0->model, &model_id)))
        goto fail;
    if ((s = zf_db_prepare(out, &st,
                           "INSERT INTO runs (model_id, images, list_sha256, n_images, layers, "
                           "top_k, batch, chunk, next_seq, n_ok, n_failed, finished, list_n, seq0, "
                           "classes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?4, ?9, ?10, "
                           "strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?4, 0, ?11)")))
        goto fail;
    ZF_SQL_TRY(s, out, sqlite3_bind_int64(st, 1, model_id));
    ZF_SQL_TRY(s, out, sqlite3_bind_text(st, 2, m0->run.images, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, out, sqlite3_bind_text(st, 3, m0->run.list_sha256, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, out, sqlite3_bind_int64(st, 4, m0->run.list_n));
    ZF_SQL_TRY(s, out, sqlite3_bind_text(st, 5, m0->run.layers, -1, SQLITE_STATIC));
    ZF_SQL_TRY(s, out, sqlite3_bind_int(st, 6, k));
    ZF_SQL_TRY(s, out, sqlite3_bind_int(st, 7, m0->run.batch));
    ZF_SQL_TRY(s, out, sqlite3_bind_int(st, 8, m0->run.chunk));
    ZF_SQL_TRY(s, out, sqlite3_bind_int64(st, 9, res->n_ok));
    ZF_SQL_TRY(s, out, sqlite3_bind_int64(st, 10, res->n_failed));
    if (m0->run.classes >= 0)
        ZF_SQL_TRY(s, out, sqlite3_bind_int(st, 11, m0->run.classes));
    if ((s = zf_db_step(out, st, NULL)))
        goto fail;
    res->run_id = sqlite3_last_insert_rowid(zf_db_handle(out));
    sqlite3_finalize(st);
    st = NULL;
    for (int i = 0; i < nl; i++)
        if ((s = zf_db_run_layer_put(out, res->run_id, ml[i].name, ml[i].position, ml[i].op,
                                     ml[i].units, ml[i].height, ml[i].width)))
            goto fail;
    if ((s = zf_db_image_stmts_prepare(out, &q)))
        goto fail;
    for (int i = 0; i < n; i++)
        if ((s = fold_shard(out, &meta[i], ml, nl, k, seq_image, &q, res->run_id, &cacc)))
            goto fail;
    if ((s = write_units(out, res->run_id, ml, nl, k, res->n_ok, seq_image)) ||
        (classes && ((s = zf_db_class_names_put(out, res->run_id, cacc.names, classes)) ||
                     (s = zf_db_class_acc_put(out, &cacc, res->run_id, NULL)))))
        goto fail;
    if ((s = zf_db_commit(out)))
        goto fail;
    sqlite3_finalize(st);
    st = NULL;
    zf_db_image_stmts_free(&q);
    /* one self-contained file to rename: the WAL folded in and gone (the next read-write open
     * turns WAL mode back on) */
    if ((s = zf_db_exec(out, "PRAGMA journal_mode = DELETE")))
        goto fail;
    zf_db_close(out);
    out = NULL;
    if (rename(tmp, out_path) != 0) {
        s = zf_error(ZF_ERR_IO, "%s: cannot rename the merged database into place: %s", out_path,
                     strerror(errno));
        goto fail;
    }
    made_tmp = 0;
    if (stale_wal) { /* an empty log and its index, left by the file just replaced */
        unlink(wal);
        snprintf(wal, sizeof wal, "%s-shm", out_path);
        unlink(wal);
    }
fail:
    sqlite3_finalize(st);
    zf_db_image_stmts_free(&q);
    zf_db_close(out);
    if (made_tmp)
        remove_db_files(tmp);
    for (int i = 0; i < nl && ml; i++) {
        free(ml[i].u);
        free(ml[i].top);
        free(ml[i].bot);
        free(ml[i].hist);
        free(ml[i].tmp);
        free(ml[i].csum);
    }
    free(ml);
    free(seq_image);
    for (int cl = 0; cacc.names && cl < cacc.classes; cl++)
        free(cacc.names[cl]);
    free(cacc.names);
    free(cacc.n);
    free(cacc.layer);
    free(merge_units);
    free(cacc.sum);
    free(meta);
    return s;
}
