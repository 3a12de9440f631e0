/* The class of each image of a scan's list when the images sit in one folder per class (ImageNet's
 * train layout, torchvision's ImageFolder): the class is the image's folder, named relative to
 * the deepest folder that holds every image's folder. Decided from the whole list, never from a
 * shard's slice, so that every shard of a list has the same classes. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "zf/alloc.h"

typedef struct named {
    const char *s; /* the class name: the image's folder below the root */
    int len;
    int64_t i;     /* the image's place in the list */
} named;

static int cmp_named(const void *x, const void *y)
{
    const named *a = x, *b = y;
    int n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, (size_t)n);
    if (c)
        return c;
    return a->len != b->len ? (a->len < b->len ? -1 : 1) : (a->i > b->i) - (a->i < b->i);
}

static int parent_len(const char *p)
{
    const char *slash = strrchr(p, '/');
    return slash ? (int)(slash - p) : 0;
}

void zf_db_classes_free(zf_db_classes *c)
{
    if (!c)
        return;
    for (int k = 0; k < c->n; k++)
        free(c->names[k]);
    free(c->names);
    free(c->of);
    memset(c, 0, sizeof *c);
}

zf_status zf_db_classes_find(const char *const *paths, int64_t n, zf_db_classes *out)
{
    memset(out, 0, sizeof *out);
    if (n <= 0)
        return ZF_OK;
    /* the root: the longest common prefix of the images' folders, cut back to a whole folder */
    int root = parent_len(paths[0]);
    for (int64_t i = 1; i < n && root > 0; i++) {
        int pl = parent_len(paths[i]), j = 0;
        int lim = pl < root ? pl : root;
        while (j < lim && paths[i][j] == paths[0][j])
            j++;
        root = j;
    }
    for (int64_t i = 0; i < n; i++) {
        int pl = parent_len(paths[i]);
        if (pl != root && paths[i][root] != '/') {
            /* below `root` every folder's name agrees with paths[0]'s: its last slash before */
            do
                root--;
            while (root > 0 && paths[0][root] != '/');
            break;
        }
    }
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        m += parent_len(paths[i]) > root;
    if (m == 0) /* all in one folder: no classes */
        return ZF_OK;
    named *v = zf_malloc((size_t)m * sizeof *v);
    out->of = zf_malloc((size_t)n * sizeof *out->of);
    if (!v || !out->of)
        goto nomem;
    m = 0;
    for (int64_t i = 0; i < n; i++) {
        int pl = parent_len(paths[i]);
        out->of[i] = -1;
        if (pl > root)
            v[m++] = (named){paths[i] + root + 1, pl - root - 1, i};
    }
    qsort(v, (size_t)m, sizeof *v, cmp_named);
    int classes = 0;
    for (int64_t j = 0; j < m; j++)
        classes += j == 0 || v[j].len != v[j - 1].len || memcmp(v[j].s, v[j - 1].s, (size_t)v[j].len);
    if (!(out->names = zf_calloc((size_t)classes, sizeof *out->names)))
        goto nomem;
    int k = -1;
    for (int64_t j = 0; j < m; j++) {
        if (j == 0 || v[j].len != v[j - 1].len || memcmp(v[j].s, v[j - 1].s, (size_t)v[j].len)) {
            k++;
            if (!(out->names[k] = zf_malloc((size_t)v[j].len + 1)))
                goto nomem;
            out->n = k + 1;
            memcpy(out->names[k], v[j].s, (size_t)v[j].len);
            out->names[k][v[j].len] = 0;
        }
        out->of[v[j].i] = k;
    }
    free(v);
    return ZF_OK;
nomem:
    free(v);
    zf_db_classes_free(out);
    return zf_error(ZF_ERR_NOMEM, "scan: out of memory for the classes of %lld images", (long long)n);
}

static void hash_name(zf_sha256 *h, const char *name, size_t len)
{
    zf_sha256_update(h, name, len);
    zf_sha256_update(h, "\n", 1);
}

void zf_db_classes_hash_names(char *const *names, int n, char hex[65])
{
    zf_sha256 h;
    zf_sha256_init(&h);
    for (int k = 0; k < n; k++)
        hash_name(&h, names[k], strlen(names[k]));
    zf_sha256_final_hex(&h, hex);
}

zf_status zf_db_classes_hash(zf_db *db, int64_t run, char hex[65])
{
    sqlite3_stmt *st;
    int row = 0;
    zf_sha256 h;
    zf_sha256_init(&h);
    zf_status s = zf_db_prepare_id(db, &st, "SELECT name FROM run_classes WHERE run_id = ? "
                                            "ORDER BY class", run);
    while (!s && !(s = zf_db_step(db, st, &row)) && row)
        hash_name(&h, (const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    sqlite3_finalize(st);
    zf_sha256_final_hex(&h, hex);
    return s;
}

zf_status zf_db_class_names_put(zf_db *db, int64_t run, char *const *names, int classes)
{
    sqlite3_stmt *st = NULL;
    zf_status s = zf_db_prepare_id(db, &st, "INSERT INTO run_classes (run_id, class, name) "
                                            "VALUES (?, ?, ?)", run);
    for (int cl = 0; !s && cl < classes; cl++) {
        ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 2, cl));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 3, names[cl], -1, SQLITE_STATIC));
        if (!(s = zf_db_step(db, st, NULL)))
            sqlite3_reset(st);
    }
fail:
    sqlite3_finalize(st);
    return s;
}

zf_status zf_db_class_acc_put(zf_db *db, const zf_db_class_acc *a, int64_t run, const uint8_t *which)
{
    sqlite3_stmt *up = NULL, *st = NULL;
    zf_status s;
    if ((s = zf_db_prepare(db, &up, "UPDATE run_classes SET images = ?1 WHERE run_id = ?2 AND "
                                    "class = ?3")) ||
        (s = zf_db_prepare(db, &st, "INSERT INTO unit_class_stats (run_id, layer, unit, class, "
                                    "sum, sum_exact) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, "
                                    "layer, unit, class) DO UPDATE SET sum = excluded.sum, "
                                    "sum_exact = excluded.sum_exact")))
        goto fail;
    for (int cl = 0; cl < a->classes; cl++) {
        if (which ? !which[cl] : !a->n[cl])
            continue;
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(up, 1, a->n[cl]));
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(up, 2, run));
        ZF_SQL_TRY(s, db, sqlite3_bind_int(up, 3, cl));
        if ((s = zf_db_step(db, up, NULL)))
            goto fail;
        sqlite3_reset(up);
        for (int li = 0; li < a->nl; li++)
            for (int c = 0; c < a->units[li]; c++) {
                ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, run));
                ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, a->layer[li], -1, SQLITE_STATIC));
                ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 3, c));
                ZF_SQL_TRY(s, db, sqlite3_bind_int(st, 4, cl));
                if ((s = zf_db_bind_xsum(db, st, 5, 6, &a->sum[li][(size_t)c * a->classes + cl])) ||
                    (s = zf_db_step(db, st, NULL)))
                    goto fail;
                sqlite3_reset(st);
            }
    }
fail:
    sqlite3_finalize(up);
    sqlite3_finalize(st);
    return s;
}

zf_status zf_db_class_acc_add(zf_db *db, zf_db_class_acc *a, int64_t run)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    zf_status s;
    if ((s = zf_db_prepare(db, &st, "SELECT class, images, name FROM run_classes WHERE run_id = ?")))
        return s;
    ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, run));
    while (!(s = zf_db_step(db, st, &row)) && row) {
        int cl = sqlite3_column_int(st, 0);
        if (cl < 0 || cl >= a->classes) {
            s = zf_error(ZF_ERR_DB, "%s: run %lld: its classes are damaged (class %d of %d)",
                         zf_db_path(db), (long long)run, cl, a->classes);
            goto fail;
        }
        a->n[cl] += sqlite3_column_int64(st, 1);
        const char *name = (const char *)sqlite3_column_text(st, 2);
        if (a->names && !a->names[cl] && !(a->names[cl] = zf_strdup(name ? name : ""))) {
            s = zf_error(ZF_ERR_NOMEM, "%s: out of memory for its classes", zf_db_path(db));
            goto fail;
        }
    }
    if (s)
        goto fail;
    sqlite3_finalize(st);
    if ((s = zf_db_prepare(db, &st, "SELECT unit, class, sum, sum_exact FROM unit_class_stats "
                                    "WHERE run_id = ? AND layer = ?")))
        return s;
    for (int li = 0; li < a->nl; li++) {
        ZF_SQL_TRY(s, db, sqlite3_bind_int64(st, 1, run));
        ZF_SQL_TRY(s, db, sqlite3_bind_text(st, 2, a->layer[li], -1, SQLITE_STATIC));
        while (!(s = zf_db_step(db, st, &row)) && row) {
            int c = sqlite3_column_int(st, 0), cl = sqlite3_column_int(st, 1);
            zf_xsum part;
            if (c < 0 || c >= a->units[li] || cl < 0 || cl >= a->classes ||
                sqlite3_column_type(st, 3) == SQLITE_NULL || zf_db_column_xsum(st, 2, 3, &part)) {
                s = zf_error(ZF_ERR_DB, "%s: run %lld: the class sums of %s unit %d are damaged",
                             zf_db_path(db), (long long)run, a->layer[li], c);
                goto fail;
            }
            zf_xsum_merge(&a->sum[li][(size_t)c * a->classes + cl], &part);
        }
        if (s)
            goto fail;
        sqlite3_reset(st);
    }
fail:
    sqlite3_finalize(st);
    return s;
}
