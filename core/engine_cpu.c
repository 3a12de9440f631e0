/* The CPU engine behind the engine table (zf/engine.h): the net's own buffers and core's functions
 * (zf_net_forward_upto, zf_net_deconv, zf_occlusion_run, zf_net_backward), unchanged. With
 * precision bf16 the forward's conv and fc layers take bfloat16 operands (core/bf16.c); the
 * deconvnet projects through that forward's switches in float32; occlusion and gradients, which
 * would mix the two precisions, are refused. */
#include "bf16_internal.h"
#include "zf/attribution.h"
#include "zf/cpu.h"
#include "zf/engine.h"
#include "zf/train.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cpu_ctx {
    zf_net *net;
    zf_backprop *bp;       /* made at the first backward */
    zf_trainer *trainer;   /* made by train_begin */
    zf_bf16_weights *bf16; /* precision bf16: the rounded weights, in net->bf16 while open */
    zf_fold_slots folds;   /* the fold's copies of a scan's accumulators */
    zf_plane_stats *planes; /* fold_add's scratch */
    size_t planes_cap;
    char desc[256];
} cpu_ctx;

/* The fold's slots in host memory. */
static zf_status host_alloc(void *ctx, void **p, size_t bytes)
{
    (void)ctx;
    return (*p = malloc(bytes)) ? ZF_OK : zf_error(ZF_ERR_NOMEM, "out of memory for %zu bytes of accumulators", bytes);
}
static void host_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}
static zf_status host_copy(void *ctx, void *dst, const void *src, size_t bytes, int to_engine)
{
    (void)ctx;
    (void)to_engine;
    memcpy(dst, src, bytes);
    return ZF_OK;
}
static zf_status host_fill(void *ctx, void *p, int byte, size_t bytes)
{
    (void)ctx;
    memset(p, byte, bytes);
    return ZF_OK;
}
static const zf_fold_mem host_mem = {NULL, host_alloc, host_free, host_copy, host_fill};

static zf_status cpu_probe(int device, char *desc, size_t len)
{
    if (device != 0)
        return zf_error(ZF_ERR_DEVICE, "the cpu engine has device 0 only, not %d", device);
    snprintf(desc, len, "%d threads, %s kernels, %s", omp_get_max_threads(), zf_cpu_kernels(), zf_cpu_wait());
    return ZF_OK;
}

static void cpu_versions(char *buf, size_t len) { snprintf(buf, len, "float32 kernels (%s), OpenBLAS", zf_cpu_kernels()); }

static int cpu_supports(zf_engine_op op) { return op >= 0 && op < ZF_ENGINE_OP_COUNT; }

static zf_status cpu_open(zf_net *net, const zf_engine_opts *o, void **out)
{
    *out = NULL;
    const int bf16 = o->precision && !strcmp(o->precision, "bf16");
    if (o->precision && strcmp(o->precision, "fp32") && !bf16)
        return zf_error(ZF_ERR_UNSUPPORTED, "--precision %s: the cpu engine computes in fp32 or bf16", o->precision);
    if (bf16 && net->bf16)
        return zf_error(ZF_ERR_ARG, "'%s' already runs on a bf16 cpu engine", net->arch);
    if (o->device != 0)
        return zf_error(ZF_ERR_DEVICE, "the cpu engine has device 0 only, not %d", o->device);
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return zf_error(ZF_ERR_NOMEM, "out of memory for the cpu engine");
    c->net = net;
    zf_status st = zf_net_reserve(net, o->batch > 0 ? o->batch : 1);
    if (st) {
        free(c);
        return st;
    }
    if (bf16 && (st = zf_bf16_weights_new(net, &c->bf16))) {
        free(c);
        return st;
    }
    net->bf16 = c->bf16;
    char d[160];
    cpu_probe(0, d, sizeof d);
    snprintf(c->desc, sizeof c->desc, "cpu (%s%s)", d,
             bf16 ? "; bf16: conv and fc operands rounded to bfloat16, float32 sums" : "");
    *out = c;
    return ZF_OK;
}

static void cpu_close(void *ctx)
{
    cpu_ctx *c = ctx;
    if (!c)
        return;
    zf_backprop_free(c->bp);
    zf_trainer_free(c->trainer);
    if (c->bf16 && c->net->bf16 == c->bf16)
        c->net->bf16 = NULL;
    zf_bf16_weights_free(c->bf16);
    zf_fold_slots_free(&c->folds, &host_mem);
    free(c->planes);
    free(c);
}

static const char *cpu_describe(void *ctx) { return ((cpu_ctx *)ctx)->desc; }

static zf_status cpu_memory(void *ctx, size_t *free_bytes, size_t *total_bytes)
{
    (void)ctx;
    *free_bytes = *total_bytes = 0;
    return zf_error(ZF_ERR_UNSUPPORTED, "the cpu engine does not report memory");
}

static zf_status cpu_reserve(void *ctx, int batch)
{
    cpu_ctx *c = ctx;
    if (c->bp && batch > c->bp->batch) {
        zf_backprop_free(c->bp);
        c->bp = NULL;
    }
    return zf_net_reserve(c->net, batch);
}

static zf_status cpu_forward(void *ctx, const float *input, int n, int last)
{
    return zf_net_forward_upto(((cpu_ctx *)ctx)->net, input, n, last);
}

static zf_status cpu_read(void *ctx, int layer, float *out, int n)
{
    zf_net *net = ((cpu_ctx *)ctx)->net;
    if (n < 1 || n > net->batch)
        return zf_error(ZF_ERR_ARG, "read of %d images with buffers for %d", n, net->batch);
    const float *src = zf_net_act(net, layer);
    const size_t count = (size_t)n * (size_t)(layer < 0 ? zf_net_in_size(net) : zf_layer_out_size(&net->layers[layer]));
    if (out != src)
        memcpy(out, src, sizeof(float) * count);
    return ZF_OK;
}

static zf_status cpu_deconv(void *ctx, float *out, int n, const zf_deconv_req *req)
{
    return zf_net_deconv(((cpu_ctx *)ctx)->net, out, n, req);
}

static zf_status cpu_occlusion(void *ctx, const float *input, const zf_occlusion_params *p, zf_occlusion_result **out)
{
    if (((cpu_ctx *)ctx)->bf16)
        return zf_error(ZF_ERR_UNSUPPORTED, "--precision bf16: the cpu engine computes occlusion maps in fp32 only");
    return zf_occlusion_run(((cpu_ctx *)ctx)->net, input, p, out);
}

static zf_status cpu_backward(void *ctx, float *out, const float *dtop, int top, int bottom, int n, int rule)
{
    cpu_ctx *c = ctx;
    if (c->bf16)
        return zf_error(ZF_ERR_UNSUPPORTED, "--precision bf16: the cpu engine computes gradients in fp32 only");
    if (!c->bp) {
        zf_status st = zf_backprop_new(c->net, c->net->batch > 0 ? c->net->batch : 1, &c->bp);
        if (st)
            return st;
    }
    if (rule < ZF_RELU_RULE_GRADIENT || rule > ZF_RELU_RULE_DECONVNET)
        return zf_error(ZF_ERR_ARG, "ReLU rule %d (0 gradient, 1 guided, 2 deconvnet)", rule);
    return zf_net_backward(c->bp, out, dtop, top, bottom, n, (zf_relu_rule)rule);
}

/* Training: core's zf_trainer on the net's own weights, which the forward then runs. */
static zf_status cpu_train_begin(void *ctx, int batch, const float *momentum)
{
    cpu_ctx *c = ctx;
    if (c->bf16)
        return zf_error(ZF_ERR_UNSUPPORTED, "--precision bf16: the cpu engine trains in fp32 only");
    zf_trainer_free(c->trainer);
    c->trainer = NULL;
    zf_status st = zf_trainer_new(c->net, batch, &c->trainer);
    if (!st && momentum)
        memcpy(c->trainer->momentum, momentum, sizeof(float) * (size_t)c->net->n_params);
    return st;
}

static zf_status cpu_train_step(void *ctx, const float *input, const int32_t *labels, int n, uint64_t seed,
                                double *loss, int *correct)
{
    return zf_trainer_backprop(((cpu_ctx *)ctx)->trainer, input, labels, n, seed, loss, correct);
}

static zf_status cpu_train_update(void *ctx, const zf_sgd *opt)
{
    zf_trainer_update(((cpu_ctx *)ctx)->trainer, opt);
    return ZF_OK;
}

static zf_status cpu_train_state(void *ctx, const float **momentum)
{
    *momentum = ((cpu_ctx *)ctx)->trainer->momentum; /* the weights are net->params already */
    return ZF_OK;
}

static zf_status cpu_layer_stats(void *ctx, int layer, int n, zf_plane_stats *planes, int64_t *hist)
{
    zf_net *net = ((cpu_ctx *)ctx)->net;
    if (n > net->batch)
        return zf_error(ZF_ERR_ARG, "statistics of %d images with buffers for %d", n, net->batch);
    const zf_layer *l = &net->layers[layer];
    zf_layer_stats(zf_net_act(net, layer), n, l->out_c, l->out_h * l->out_w, planes, hist);
    return ZF_OK;
}

/* The scan's fold (zf/fold.h) on this engine: copies of the scan's accumulators in the engine's
 * memory, each batch's planes summarised by core (zf_layer_stats) and folded by zf_fold_plane: the
 * CUDA engine's fold (cuda/fold.cu) with the host for the device, so that a caller drives either
 * engine alike and the CPU's answers are the ones the device's are held to. */
static zf_status cpu_fold_open(void *ctx, int slot, const zf_fold_acc *acc)
{
    return zf_fold_slots_open(&((cpu_ctx *)ctx)->folds, &host_mem, slot, acc);
}

static zf_status cpu_fold_add(void *ctx, int slot, int layer, int n, const int64_t *seqs, const int32_t *classes)
{
    cpu_ctx *c = ctx;
    zf_net *net = c->net;
    const zf_layer *l = &net->layers[layer];
    zf_fold_acc *d = zf_fold_slots_get(&c->folds, slot, l->out_c, n, classes);
    if (!d)
        return ZF_ERR_ARG;
    if (n > net->batch)
        return zf_error(ZF_ERR_ARG, "a fold of %d images with buffers for %d", n, net->batch);
    const size_t np = (size_t)n * (size_t)d->units;
    if (np > c->planes_cap) {
        free(c->planes);
        c->planes_cap = 0;
        if (!(c->planes = malloc(sizeof *c->planes * np)))
            return zf_error(ZF_ERR_NOMEM, "out of memory for %zu plane summaries", np);
        c->planes_cap = np;
    }
    zf_layer_stats(zf_net_act(net, layer), n, d->units, l->out_h * l->out_w, c->planes, d->hist);
    const zf_plane_stats *ps = c->planes;
    const int units = d->units;
#pragma omp parallel for schedule(static) if (np >= 4096)
    for (int u = 0; u < units; u++)
        for (int i = 0; i < n; i++)
            zf_fold_plane(d, u, seqs[i], classes ? classes[i] : -1, &ps[(size_t)i * units + u]);
    return ZF_OK;
}

static zf_status cpu_fold_read(void *ctx, int slot, zf_fold_acc *acc)
{
    return zf_fold_slots_read(&((cpu_ctx *)ctx)->folds, &host_mem, slot, acc);
}

const zf_engine_iface zf_engine_cpu = {
    .name = "cpu",
    .probe = cpu_probe,
    .versions = cpu_versions,
    .supports = cpu_supports,
    .open = cpu_open,
    .close = cpu_close,
    .describe = cpu_describe,
    .memory = cpu_memory,
    .reserve = cpu_reserve,
    .forward = cpu_forward,
    .read = cpu_read,
    .deconv = cpu_deconv,
    .occlusion = cpu_occlusion,
    .backward = cpu_backward,
    .train_begin = cpu_train_begin,
    .train_step = cpu_train_step,
    .train_update = cpu_train_update,
    .train_state = cpu_train_state,
    .layer_stats = cpu_layer_stats,
    .fold_open = cpu_fold_open,
    .fold_add = cpu_fold_add,
    .fold_read = cpu_fold_read,
};
