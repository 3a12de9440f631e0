/* A dataset scan's accumulators of one layer (db/scan.c) and how one plane's summary (zf/stats.h)
 * is folded into them: the exact sums (all images, and per class), the counts, the first maximum,
 * and the best k images by their largest and by their smallest value. Inline, so that the CUDA
 * engine folds on the device (cuda/fold.cu) with the code the scan folds with on the host, and a
 * scan's accumulators can stay on a GPU between commits. */
#ifndef ZF_FOLD_H
#define ZF_FOLD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "zf/stats.h"
#include "zf/status.h"
#include "zf/xsum.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __CUDACC__
#define ZF_FOLD_FN static inline __host__ __device__
#else
#define ZF_FOLD_FN static inline
#endif

#define ZF_FOLD_CLEAN UINT16_MAX /* a unit's list unchanged since the last commit */

typedef struct zf_rank_ent {
    float score; /* the image's largest value (before the ReLU), or its smallest negated */
    int32_t pos; /* where: y * w + x */
    int64_t seq; /* the image's place in the list (ties go to the smaller) */
} zf_rank_ent;

/* The k best images of every unit by one score. */
typedef struct zf_rank_list {
    zf_rank_ent *ent; /* units x k, best first: score descending, then seq ascending */
    int32_t *n;       /* entries held */
    float *kth;       /* the score a newcomer must beat: the k-th's, or -inf while not full */
    uint16_t *dirty;  /* lowest rank (0-based) changed since the last commit; ZF_FOLD_CLEAN if none */
} zf_rank_list;

/* One layer's accumulators, arrays over its units (csum: units x classes, hist: units x
 * ZF_HIST_BINS). */
typedef struct zf_fold_acc {
    int units, k, classes;
    int64_t *active;   /* images on which some position was > 0 */
    int64_t *positive; /* positions > 0 */
    zf_xsum *sum;      /* of max(value, 0), exact */
    float *max;        /* largest value */
    int64_t *max_seq;  /* where: image (-1: none yet) and position */
    int32_t *max_pos;
    int64_t *hist;     /* every value's bin */
    zf_xsum *csum;     /* over each class's images only; NULL without classes */
    zf_rank_list top;  /* each image's largest value */
    zf_rank_list bot;  /* each image's smallest value, negated: the most negative first */
} zf_fold_acc;

/* Offers image seq's score to unit c's list. seq is larger than every kept entry's, so an equal
 * score ranks after them. */
ZF_FOLD_FN void zf_fold_offer(const zf_rank_list *L, int c, int k, float score, int32_t pos, int64_t seq)
{
    zf_rank_ent *t = L->ent + (int64_t)c * k;
    int n = L->n[c];
    if (n == k && !(score > t[k - 1].score))
        return;
    int j = n < k ? n : k - 1;
    while (j > 0 && score > t[j - 1].score) {
        t[j] = t[j - 1];
        j--;
    }
    t[j].score = score;
    t[j].pos = pos;
    t[j].seq = seq;
    if (n < k)
        L->n[c] = ++n;
    if (j < L->dirty[c])
        L->dirty[c] = (uint16_t)j;
    L->kth[c] = n == k ? t[k - 1].score : -INFINITY;
}

/* A cheap first look before zf_fold_offer: most values cannot enter once the list is full. */
ZF_FOLD_FN int zf_fold_may_enter(const zf_rank_list *L, int c, int k, float v)
{
    return !(v <= L->kth[c]) || L->n[c] < k;
}

/* Adds image seq's plane of unit c (its summary; cl its class, or -1) into the accumulators. */
ZF_FOLD_FN void zf_fold_plane(const zf_fold_acc *A, int c, int64_t seq, int cl, const zf_plane_stats *ps)
{
    zf_xsum_merge(&A->sum[c], &ps->sum);
    if (cl >= 0)
        zf_xsum_merge(&A->csum[(int64_t)c * A->classes + cl], &ps->sum);
    A->positive[c] += ps->positive;
    A->active[c] += ps->positive > 0;
    if (A->max_seq[c] < 0 || ps->max > A->max[c]) {
        A->max[c] = ps->max;
        A->max_seq[c] = seq;
        A->max_pos[c] = ps->argmax;
    }
    if (zf_fold_may_enter(&A->top, c, A->k, ps->max))
        zf_fold_offer(&A->top, c, A->k, ps->max, ps->argmax, seq);
    if (zf_fold_may_enter(&A->bot, c, A->k, -ps->min))
        zf_fold_offer(&A->bot, c, A->k, -ps->min, ps->argmin, seq);
}

/* acc's arrays one by one, for an engine that keeps a copy of them (allocating each, copying each
 * way): where each pointer is and its size in bytes (csum's 0 without classes). */
#define ZF_FOLD_ARRAYS 16
static inline void zf_fold_arrays(zf_fold_acc *a, void **ptr[ZF_FOLD_ARRAYS], size_t bytes[ZF_FOLD_ARRAYS])
{
    const size_t u = (size_t)a->units, uk = u * (size_t)a->k;
    void **p[ZF_FOLD_ARRAYS] = {
        (void **)&a->active,    (void **)&a->positive, (void **)&a->sum,       (void **)&a->max,
        (void **)&a->max_seq,   (void **)&a->max_pos,  (void **)&a->hist,      (void **)&a->csum,
        (void **)&a->top.ent,   (void **)&a->top.n,    (void **)&a->top.kth,   (void **)&a->top.dirty,
        (void **)&a->bot.ent,   (void **)&a->bot.n,    (void **)&a->bot.kth,   (void **)&a->bot.dirty,
    };
    const size_t b[ZF_FOLD_ARRAYS] = {
        u * sizeof(int64_t), u * sizeof(int64_t), u * sizeof(zf_xsum), u * sizeof(float),
        u * sizeof(int64_t), u * sizeof(int32_t), u * ZF_HIST_BINS * sizeof(int64_t),
        a->classes > 0 ? u * (size_t)a->classes * sizeof(zf_xsum) : 0,
        uk * sizeof(zf_rank_ent), u * sizeof(int32_t), u * sizeof(float), u * sizeof(uint16_t),
        uk * sizeof(zf_rank_ent), u * sizeof(int32_t), u * sizeof(float), u * sizeof(uint16_t),
    };
    for (int i = 0; i < ZF_FOLD_ARRAYS; i++) {
        ptr[i] = p[i];
        bytes[i] = b[i];
    }
}

/* ---- an engine's copies of a scan's accumulators (the engine table's fold) ---- */

/* The engine's memory, as the slots below use it. */
typedef struct zf_fold_mem {
    void *ctx;
    zf_status (*alloc)(void *ctx, void **p, size_t bytes);
    void (*free)(void *ctx, void *p);
    /* bytes from host memory into the engine's (to_engine), or back */
    zf_status (*copy)(void *ctx, void *dst, const void *src, size_t bytes, int to_engine);
    /* bytes of the engine's memory set to `byte` */
    zf_status (*fill)(void *ctx, void *p, int byte, size_t bytes);
} zf_fold_mem;

/* Slots of accumulators whose arrays are the engine's memory; zeroed: none. */
typedef struct zf_fold_slots {
    zf_fold_acc *acc;
    int n;
} zf_fold_slots;

/* Slot `slot` shaped and filled like `host` (replacing what it held). */
zf_status zf_fold_slots_open(zf_fold_slots *s, const zf_fold_mem *m, int slot, const zf_fold_acc *host);
/* The slot, for a fold of n images of a layer of `units` units (classes[i]: -1 or a class of the
 * slot's; NULL: none); NULL, with the error, for a slot never opened or a fold that does not fit. */
zf_fold_acc *zf_fold_slots_get(zf_fold_slots *s, int slot, int units, int n, const int32_t *classes);
/* The slot's arrays into host's (of the same shape), and the slot's lists marked unchanged. */
zf_status zf_fold_slots_read(zf_fold_slots *s, const zf_fold_mem *m, int slot, zf_fold_acc *host);
void zf_fold_slots_free(zf_fold_slots *s, const zf_fold_mem *m);

#ifdef __cplusplus
}
#endif
#endif
