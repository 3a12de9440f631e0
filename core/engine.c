/* The engine table's callers' side: choosing an engine for --device, opening it for a net, and the
 * ops through its table with one message for an op an engine lacks. The engines themselves are in
 * core/engine_cpu.c and cuda/engine.cu, listed in core/engine_registry.c. */
#include "zf/engine.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_internal.h"
#include "zf/tensor.h"

struct zf_engine {
    const zf_engine_iface *iface;
    void *ctx;
    zf_net *net;
    int training; /* zf_engine_train_begin has run */
};

const char *zf_engine_op_name(zf_engine_op op)
{
    static const char *const names[ZF_ENGINE_OP_COUNT] = {"forward", "read", "deconv", "occlusion", "backward",
                                                                 "train",   "stats",    "fold"};
    return op >= 0 && op < ZF_ENGINE_OP_COUNT ? names[op] : "?";
}

const zf_engine_iface *zf_engine_find(const char *name)
{
    for (const zf_engine_iface *const *e = zf_engine_list(); *e; e++)
        if (!strcmp((*e)->name, name))
            return *e;
    return NULL;
}

zf_status zf_engine_parse(const char *spec, char *name, size_t len, int *device)
{
    *device = 0;
    if (!spec || !*spec)
        spec = "auto";
    const char *colon = strchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    if (colon) {
        char *end;
        long d = strtol(colon + 1, &end, 10);
        if (colon[1] < '0' || colon[1] > '9' || *end || d > 1024)
            return zf_error(ZF_ERR_ARG, "device '%s': the index after ':' must be a number from 0 to 1024", spec);
        *device = (int)d;
    }
    if (n == 3 && !strncmp(spec, "gpu", 3))
        spec = "cuda", n = 4;
    int known = (n == 4 && !strncmp(spec, "auto", 4)) || (n == 3 && !strncmp(spec, "cpu", 3));
    for (const zf_engine_iface *const *e = zf_engine_list(); *e && !known; e++)
        known = strlen((*e)->name) == n && !strncmp((*e)->name, spec, n);
    /* cuda is a known name in a build without it: zf_engine_select says that it was not built */
    if (!known && !(n == 4 && !strncmp(spec, "cuda", 4)))
        return zf_error(ZF_ERR_ARG, "device '%s': expected auto, cpu, cuda or cuda:N", spec);
    if (colon && ((n == 4 && !strncmp(spec, "auto", 4)) || (n == 3 && !strncmp(spec, "cpu", 3))) && *device)
        return zf_error(ZF_ERR_ARG, "device '%s': %.*s has no device index", spec, (int)n, spec);
    if (n + 1 > len)
        return zf_error(ZF_ERR_ARG, "device '%s': name too long", spec);
    memcpy(name, spec, n);
    name[n] = '\0';
    return ZF_OK;
}

/* An engine's name as messages write it: "CUDA", "CPU". */
static const char *shout(const char *name)
{
    static _Thread_local char buf[32];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof buf; i++)
        buf[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i]);
    buf[i] = '\0';
    return buf;
}

/* The first op of `needs` that `iface` lacks, or -1. */
static int missing_op(const zf_engine_iface *iface, unsigned needs)
{
    for (int op = 0; op < ZF_ENGINE_OP_COUNT; op++)
        if ((needs & ZF_ENGINE_NEEDS(op)) && !iface->supports((zf_engine_op)op))
            return op;
    return -1;
}

zf_status zf_engine_select(const char *spec, unsigned needs, const zf_engine_iface **out, int *device,
                           int *auto_fallback, char *note, size_t len)
{
    char name[32], desc[256];
    *out = NULL;
    *auto_fallback = 0;
    note[0] = '\0';
    zf_status st = zf_engine_parse(spec, name, sizeof name, device);
    if (st)
        return st;
    const zf_engine_iface *cpu = zf_engine_list()[0];
    if (strcmp(name, "auto")) {
        const zf_engine_iface *e = zf_engine_find(name);
        if (!e)
            return zf_error(ZF_ERR_UNSUPPORTED, "--device %s: this zfviz was built without the %s engine", spec,
                            shout(name));
        if ((st = e->probe(*device, desc, sizeof desc)))
            return zf_error_prefix(st, "--device %s: ", spec);
        int op = missing_op(e, needs);
        if (op >= 0)
            return zf_error(ZF_ERR_UNSUPPORTED, "--device %s: the %s engine has no %s (run with --device cpu)", spec,
                            shout(e->name), zf_engine_op_name((zf_engine_op)op));
        snprintf(note, len, "%s: %s", e->name, desc);
        *out = e;
        return ZF_OK;
    }
    /* auto: the first other engine that works and has every op, else the CPU with the reason */
    char why[512] = "";
    for (const zf_engine_iface *const *e = zf_engine_list() + 1; *e; e++) {
        int op = -1;
        if ((*e)->present && (*e)->present()) {
            snprintf(why, sizeof why, "%s: %s", (*e)->name, zf_last_error());
        } else if ((op = missing_op(*e, needs)) >= 0) {
            snprintf(why, sizeof why, "the %s engine has no %s", shout((*e)->name), zf_engine_op_name((zf_engine_op)op));
        } else if ((*e)->probe(0, desc, sizeof desc)) {
            snprintf(why, sizeof why, "%s: %s", (*e)->name, zf_last_error());
        } else {
            snprintf(note, len, "%s: %s (auto)", (*e)->name, desc);
            *out = *e;
            return ZF_OK;
        }
        *auto_fallback = 1;
    }
    cpu->probe(0, desc, sizeof desc);
    if (why[0])
        snprintf(note, len, "cpu: %s (auto; %s)", desc, why);
    else
        snprintf(note, len, "cpu: %s (auto; built without another engine)", desc);
    *out = cpu;
    *device = 0;
    return ZF_OK;
}

zf_status zf_engine_open(const zf_engine_iface *iface, zf_net *net, const zf_engine_opts *o, zf_engine **out)
{
    *out = NULL;
    if (iface->resolve && !(iface = iface->resolve()))
        return ZF_ERR_DEVICE;
    zf_engine *e = calloc(1, sizeof *e);
    if (!e)
        return zf_error(ZF_ERR_NOMEM, "out of memory for the %s engine", iface->name);
    e->iface = iface;
    e->net = net;
    zf_status st = iface->open(net, o, &e->ctx);
    if (st) {
        free(e);
        return st;
    }
    *out = e;
    return ZF_OK;
}

void zf_engine_close(zf_engine *e)
{
    if (!e)
        return;
    e->iface->close(e->ctx);
    free(e);
}

const char *zf_engine_name(const zf_engine *e) { return e->iface->name; }
const char *zf_engine_describe(zf_engine *e) { return e->iface->describe(e->ctx); }
int zf_engine_supports(const zf_engine *e, zf_engine_op op) { return e->iface->supports(op); }
zf_net *zf_engine_net(zf_engine *e) { return e->net; }

static zf_status lacks(const zf_engine *e, zf_engine_op op)
{
    return zf_error(ZF_ERR_UNSUPPORTED, "the %s engine has no %s", shout(e->iface->name), zf_engine_op_name(op));
}

zf_status zf_engine_reserve(zf_engine *e, int batch)
{
    if (batch < 1)
        return zf_error(ZF_ERR_ARG, "%s engine: batch %d", e->iface->name, batch);
    return e->iface->reserve(e->ctx, batch);
}

zf_status zf_engine_weights_changed(zf_engine *e)
{
    return e->iface->weights_changed ? e->iface->weights_changed(e->ctx) : ZF_OK;
}

zf_status zf_engine_reserve_host(zf_engine *e, int batch)
{
    zf_status st = zf_net_reserve(e->net, batch);
    return st ? st : zf_engine_reserve(e, batch);
}

zf_status zf_engine_forward(zf_engine *e, const float *input, int n, int last)
{
    if (!e->iface->supports(ZF_ENGINE_OP_FORWARD))
        return lacks(e, ZF_ENGINE_OP_FORWARD);
    if (last < 0 || last >= e->net->n_layers)
        return zf_error(ZF_ERR_ARG, "%s: no layer %d to run the forward up to", e->net->arch, last);
    return e->iface->forward(e->ctx, input, n, last);
}

zf_status zf_engine_read(zf_engine *e, int layer, float *out, int n)
{
    if (!e->iface->supports(ZF_ENGINE_OP_READ))
        return lacks(e, ZF_ENGINE_OP_READ);
    if (layer < -1 || layer >= e->net->n_layers)
        return zf_error(ZF_ERR_ARG, "%s: no layer %d to read", e->net->arch, layer);
    return e->iface->read(e->ctx, layer, out, n);
}

zf_status zf_engine_deconv(zf_engine *e, float *out, int n, const zf_deconv_req *req)
{
    return e->iface->supports(ZF_ENGINE_OP_DECONV) ? e->iface->deconv(e->ctx, out, n, req)
                                                   : lacks(e, ZF_ENGINE_OP_DECONV);
}

zf_status zf_engine_occlusion(zf_engine *e, const float *input, const zf_occlusion_params *p,
                              zf_occlusion_result **out)
{
    *out = NULL;
    return e->iface->supports(ZF_ENGINE_OP_OCCLUSION) ? e->iface->occlusion(e->ctx, input, p, out)
                                                      : lacks(e, ZF_ENGINE_OP_OCCLUSION);
}

zf_status zf_engine_backward(zf_engine *e, float *out, const float *dtop, int top, int bottom, int n, int rule)
{
    return e->iface->supports(ZF_ENGINE_OP_BACKWARD) ? e->iface->backward(e->ctx, out, dtop, top, bottom, n, rule)
                                                     : lacks(e, ZF_ENGINE_OP_BACKWARD);
}

zf_status zf_engine_memory(zf_engine *e, size_t *free_bytes, size_t *total_bytes)
{
    return e->iface->memory(e->ctx, free_bytes, total_bytes);
}

zf_status zf_engine_train_begin(zf_engine *e, int batch, const float *momentum)
{
    if (!e->iface->supports(ZF_ENGINE_OP_TRAIN))
        return lacks(e, ZF_ENGINE_OP_TRAIN);
    if (batch < 1)
        return zf_error(ZF_ERR_ARG, "%s engine: training batch %d", e->iface->name, batch);
    zf_status st = e->iface->train_begin(e->ctx, batch, momentum);
    e->training = !st;
    return st;
}

static zf_status not_training(const zf_engine *e)
{
    return e->iface->supports(ZF_ENGINE_OP_TRAIN)
               ? zf_error(ZF_ERR_ARG, "the %s engine has no trainer yet (zf_engine_train_begin)", e->iface->name)
               : lacks(e, ZF_ENGINE_OP_TRAIN);
}

zf_status zf_engine_train_step(zf_engine *e, const float *input, const int32_t *labels, int n, uint64_t seed,
                               double *loss, int *correct)
{
    return e->training ? e->iface->train_step(e->ctx, input, labels, n, seed, loss, correct) : not_training(e);
}

zf_status zf_engine_train_update(zf_engine *e, const zf_sgd *opt)
{
    return e->training ? e->iface->train_update(e->ctx, opt) : not_training(e);
}

zf_status zf_engine_train_state(zf_engine *e, const float **momentum)
{
    *momentum = NULL;
    return e->training ? e->iface->train_state(e->ctx, momentum) : not_training(e);
}

/* Which allocator gave a block: the engine's (page-locked) or zf_alloc's; a header in front of
 * the block says, so that zf_engine_host_free needs no table of its own. 64 bytes keep the
 * caller's block aligned as zf_alloc's are. */
#define HOST_HEAD 64

void *zf_engine_host_alloc(zf_engine *e, size_t bytes)
{
    if (bytes > SIZE_MAX - HOST_HEAD)
        return NULL;
    unsigned char *p = e->iface->host_alloc ? e->iface->host_alloc(e->ctx, bytes + HOST_HEAD) : NULL;
    const int pinned = p != NULL;
    if (!p && !(p = zf_alloc(bytes + HOST_HEAD)))
        return NULL;
    p[0] = (unsigned char)pinned;
    return p + HOST_HEAD;
}

void zf_engine_host_free(zf_engine *e, void *q)
{
    if (!q)
        return;
    unsigned char *p = (unsigned char *)q - HOST_HEAD;
    if (e->iface->prefetch)
        (void)e->iface->prefetch(e->ctx, NULL, 0); /* nothing pending may point into it */
    if (p[0])
        e->iface->host_free(e->ctx, p);
    else
        zf_free(p);
}

zf_status zf_engine_prefetch(zf_engine *e, const float *input, int n)
{
    if (!e->iface->prefetch)
        return ZF_OK;
    if (input && n < 1)
        return zf_error(ZF_ERR_ARG, "%s engine: a prefetch of %d images", e->iface->name, n);
    return e->iface->prefetch(e->ctx, input, n);
}

#define FOLD_SLOTS 4096 /* more layers than any net has */

zf_status zf_engine_fold_open(zf_engine *e, int slot, const zf_fold_acc *acc)
{
    if (!e->iface->supports(ZF_ENGINE_OP_FOLD))
        return lacks(e, ZF_ENGINE_OP_FOLD);
    if (slot < 0 || slot >= FOLD_SLOTS || acc->units < 1 || acc->k < 1 || acc->k >= ZF_FOLD_CLEAN || acc->classes < 0)
        return zf_error(ZF_ERR_ARG, "%s engine: fold slot %d of %d units, top %d, %d classes", e->iface->name, slot,
                        acc->units, acc->k, acc->classes);
    return e->iface->fold_open(e->ctx, slot, acc);
}

zf_status zf_engine_fold_add(zf_engine *e, int slot, int layer, int n, const int64_t *seqs, const int32_t *classes)
{
    if (!e->iface->supports(ZF_ENGINE_OP_FOLD))
        return lacks(e, ZF_ENGINE_OP_FOLD);
    if (layer < 0 || layer >= e->net->n_layers || n < 1 || slot < 0 || slot >= FOLD_SLOTS)
        return zf_error(ZF_ERR_ARG, "%s: a fold of layer %d's %d images into slot %d", e->net->arch, layer, n, slot);
    return e->iface->fold_add(e->ctx, slot, layer, n, seqs, classes);
}

zf_status zf_engine_fold_read(zf_engine *e, int slot, zf_fold_acc *acc)
{
    if (!e->iface->supports(ZF_ENGINE_OP_FOLD))
        return lacks(e, ZF_ENGINE_OP_FOLD);
    if (slot < 0 || slot >= FOLD_SLOTS)
        return zf_error(ZF_ERR_ARG, "%s engine: fold slot %d", e->iface->name, slot);
    return e->iface->fold_read(e->ctx, slot, acc);
}

zf_status zf_engine_layer_stats(zf_engine *e, int layer, int n, zf_plane_stats *planes, int64_t *hist)
{
    if (!e->iface->supports(ZF_ENGINE_OP_STATS))
        return lacks(e, ZF_ENGINE_OP_STATS);
    if (layer < 0 || layer >= e->net->n_layers)
        return zf_error(ZF_ERR_ARG, "%s: no layer %d for statistics", e->net->arch, layer);
    if (n < 1)
        return zf_error(ZF_ERR_ARG, "%s: statistics of %d images", e->net->arch, n);
    return e->iface->layer_stats(e->ctx, layer, n, planes, hist);
}

zf_status zf_engine_forward_layers(zf_engine *e, const float *input, int n, int last, const int *layers,
                                   int n_layers)
{
    zf_net *net = e->net;
    if (n < 1 || n > net->batch)
        return zf_error(ZF_ERR_ARG, "forward of %d images with host buffers for %d (call zf_net_reserve)", n,
                        net->batch);
    zf_status st = zf_engine_forward(e, input, n, last);
    /* on the cpu engine the reads are into the buffers themselves: nothing is copied */
    for (int i = layers ? 0 : -1; !st && i < (layers ? n_layers : last + 1); i++) {
        const int l = layers ? layers[i] : i;
        if (layers || l < 0 || !net->layers[l].in_place)
            st = zf_engine_read(e, l, zf_net_act(net, l), n);
    }
    return st;
}

/* One image's logits z (k) against its label, added into the counts of an evaluation: top-1, top-5
 * (ties ranked by index) and the cross-entropy, in double (zf_engine_evaluate, which zf_evaluate runs on the CPU engine). */
static void zf_eval_score(const float *z, int k, int label, int64_t *top1, int64_t *top5, double *nll)
{
    float zl = z[label], m = z[0];
    int above = 0;
    for (int j = 0; j < k; j++) {
        above += z[j] > zl || (z[j] == zl && j < label);
        if (z[j] > m)
            m = z[j];
    }
    double s = 0;
    for (int j = 0; j < k; j++)
        s += exp((double)z[j] - m);
    *top1 += above == 0;
    *top5 += above < 5;
    *nll += log(s) + m - zl;
}

zf_status zf_engine_evaluate(zf_engine *e, const zf_dataset *ds, int batch, double *top1, double *top5,
                             double *loss, int (*progress)(void *ctx, int64_t done, int64_t total), void *ctx)
{
    zf_net *net = e->net;
    const int last = net->n_layers - 1;
    const int logits = net->layers[last].op == ZF_OP_SOFTMAX ? last - 1 : last;
    const int k = net->layers[logits].out_c;
    if (k != ds->n_classes)
        return zf_error(ZF_ERR_SHAPE, "%s has %d classes but %s has %d", net->arch, k, ds->source, ds->n_classes);
    if (ds->n < 1 || batch < 1)
        return zf_error(ZF_ERR_ARG, "evaluation of %lld images in batches of %d", (long long)ds->n, batch);
    zf_status st = zf_net_reserve(net, batch);
    if (!st)
        st = zf_engine_reserve(e, batch);
    int64_t *idx = malloc(sizeof *idx * (size_t)batch);
    int32_t *lab = malloc(sizeof *lab * (size_t)batch);
    if (!st && (!idx || !lab))
        st = zf_error(ZF_ERR_NOMEM, "out of memory");
    int64_t c1 = 0, c5 = 0;
    double nll = 0;
    for (int64_t at = 0; at < ds->n && !st; at += batch) {
        const int n = (int)(ds->n - at < batch ? ds->n - at : batch);
        for (int b = 0; b < n; b++)
            idx[b] = at + b;
        st = zf_dataset_batch(net->input, lab, ds, idx, n, net, NULL, 0);
        if (!st)
            st = zf_engine_forward_layers(e, net->input, n, logits, &logits, 1);
        for (int b = 0; !st && b < n; b++)
            zf_eval_score(net->acts[logits] + (size_t)b * (size_t)k, k, lab[b], &c1, &c5, &nll);
        if (!st && zf_interrupted)
            st = zf_error(ZF_ERR_INTERRUPTED, "interrupted");
        if (!st && progress && progress(ctx, at + n, ds->n))
            st = zf_error(ZF_ERR_INTERRUPTED, "interrupted");
    }
    free(idx);
    free(lab);
    if (st)
        return st;
    if (top1)
        *top1 = (double)c1 / (double)ds->n;
    if (top5)
        *top5 = (double)c5 / (double)ds->n;
    if (loss)
        *loss = nll / (double)ds->n;
    return ZF_OK;
}

int zf_engine_deconv_last(const zf_net *net, const zf_deconv_req *req)
{
    if (req->layer < 0 || req->layer >= net->n_layers)
        return net->n_layers - 1; /* the deconvnet then names the bad layer */
    int conv = net->layers[req->layer].op == ZF_OP_CONV ? req->layer : req->layer - 1;
    return zf_net_rectified(net, conv);
}
