/* An engine's copies of a scan's accumulators (zf/fold.h): the slots both engines' fold ops keep,
 * in host memory on the CPU and in device memory on a GPU, through the engine's four memory
 * functions. */
#include "zf/fold.h"

#include <stdlib.h>
#include <string.h>

static void slot_free(zf_fold_acc *a, const zf_fold_mem *m)
{
    void **p[ZF_FOLD_ARRAYS];
    size_t b[ZF_FOLD_ARRAYS];
    zf_fold_arrays(a, p, b);
    for (int i = 0; i < ZF_FOLD_ARRAYS; i++) {
        if (*p[i])
            m->free(m->ctx, *p[i]);
        *p[i] = NULL;
    }
}

zf_status zf_fold_slots_open(zf_fold_slots *s, const zf_fold_mem *m, int slot, const zf_fold_acc *host)
{
    if (slot < 0)
        return zf_error(ZF_ERR_ARG, "fold slot %d", slot);
    if (slot >= s->n) {
        zf_fold_acc *f = realloc(s->acc, sizeof *f * (size_t)(slot + 1));
        if (!f)
            return zf_error(ZF_ERR_NOMEM, "out of memory for fold slot %d", slot);
        memset(f + s->n, 0, sizeof *f * (size_t)(slot + 1 - s->n));
        s->acc = f;
        s->n = slot + 1;
    }
    zf_fold_acc *d = &s->acc[slot], src = *host;
    slot_free(d, m);
    void **sp[ZF_FOLD_ARRAYS], **dp[ZF_FOLD_ARRAYS];
    size_t b[ZF_FOLD_ARRAYS];
    zf_fold_arrays(&src, sp, b);
    *d = *host; /* the shape; the arrays are made below */
    zf_fold_arrays(d, dp, b);
    for (int i = 0; i < ZF_FOLD_ARRAYS; i++)
        *dp[i] = NULL;
    zf_status st = ZF_OK;
    for (int i = 0; i < ZF_FOLD_ARRAYS && !st; i++)
        if (b[i] && !(st = m->alloc(m->ctx, dp[i], b[i])))
            st = m->copy(m->ctx, *dp[i], *sp[i], b[i], 1);
    if (st) {
        slot_free(d, m);
        memset(d, 0, sizeof *d);
    }
    return st;
}

zf_fold_acc *zf_fold_slots_get(zf_fold_slots *s, int slot, int units, int n, const int32_t *classes)
{
    if (slot < 0 || slot >= s->n || !s->acc[slot].active) {
        zf_error(ZF_ERR_ARG, "fold slot %d was not opened", slot);
        return NULL;
    }
    zf_fold_acc *d = &s->acc[slot];
    if (units != d->units) {
        zf_error(ZF_ERR_ARG, "a fold of a layer of %d units into slot %d of %d", units, slot, d->units);
        return NULL;
    }
    for (int i = 0; classes && i < n; i++)
        if (classes[i] < -1 || classes[i] >= d->classes) {
            zf_error(ZF_ERR_ARG, "a fold's image %d of class %d (the slot has %d)", i, classes[i], d->classes);
            return NULL;
        }
    return d;
}

zf_status zf_fold_slots_read(zf_fold_slots *s, const zf_fold_mem *m, int slot, zf_fold_acc *host)
{
    zf_fold_acc *d = zf_fold_slots_get(s, slot, host->units, 0, NULL);
    if (!d)
        return ZF_ERR_ARG;
    if (host->k != d->k || host->classes != d->classes)
        return zf_error(ZF_ERR_ARG, "fold slot %d holds top %d and %d classes, not %d and %d", slot, d->k,
                        d->classes, host->k, host->classes);
    zf_fold_acc src = *d;
    void **sp[ZF_FOLD_ARRAYS], **dp[ZF_FOLD_ARRAYS];
    size_t b[ZF_FOLD_ARRAYS];
    zf_fold_arrays(&src, sp, b);
    zf_fold_arrays(host, dp, b);
    zf_status st = ZF_OK;
    for (int i = 0; i < ZF_FOLD_ARRAYS && !st; i++)
        if (b[i])
            st = m->copy(m->ctx, *dp[i], *sp[i], b[i], 0);
    const size_t dirty = sizeof *d->top.dirty * (size_t)d->units;
    if (!st)
        st = m->fill(m->ctx, d->top.dirty, 0xff, dirty); /* ZF_FOLD_CLEAN */
    if (!st)
        st = m->fill(m->ctx, d->bot.dirty, 0xff, dirty);
    return st;
}

void zf_fold_slots_free(zf_fold_slots *s, const zf_fold_mem *m)
{
    for (int i = 0; i < s->n; i++)
        slot_free(&s->acc[i], m);
    free(s->acc);
    s->acc = NULL;
    s->n = 0;
}
