/* The CUDA engine behind the engine table (zf/engine.h): a context and a device copy of the net
 * (zf_cuda_ctx, zf_cuda_net), the forward, reads, deconvnet, occlusion and backward pass (input
 * gradients) of this folder's files. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "zf/engine.h"

namespace {

struct cuda_engine {
    zf_net *net;
    zf_cuda_ctx *ctx;
    zf_cuda_net *cn;          /* the forward's: its own, or the trainer's once training began */
    zf_cuda_trainer *trainer; /* train_begin's */
    float *momentum;          /* host copy for train_state */
    zf_plane_stats *st_planes;      /* layer_stats: device buffers, grown as needed */
    uint32_t *st_hist;              /* the batch's counts: 32 bits are enough, and half the copy */
    uint32_t *st_hist_host;
    size_t st_planes_cap, st_hist_cap;
    /* prefetch: a batch copied on the copy stream into pre[i] while the compute stream works; the
     * forward of the same host input then copies it from there on the device. Two, because the
     * scan prefetches batch b + 1 before the forward of batch b, whose images are in the other. */
    float *pre[2];
    size_t pre_cap;           /* floats each */
    const float *pre_host[2]; /* the pending prefetch's input, or NULL */
    int pre_n[2];
    int pre_next;             /* the one the next prefetch takes when neither is free */
    cudaEvent_t pre_copied[2]; /* on the copy stream, after the copy into pre[i] */
    cudaEvent_t pre_taken[2];  /* on the compute stream, after a forward took pre[i]'s images */
    int pre_events;            /* events made */
    /* fold: slots of a scan's accumulators in device memory, and each batch's image places and
     * classes */
    zf_fold_slots folds;
    int64_t *fold_seqs;
    int32_t *fold_classes;
    int fold_cap;
    char desc[320];
};

/* The fold's slots in device memory. */
zf_status dev_alloc(void *ctx, void **p, size_t bytes)
{
    return zf_cuda_malloc((zf_cuda_ctx *)ctx, p, bytes, "a scan's accumulators");
}
void dev_free(void *ctx, void *p)
{
    (void)ctx;
    zf_cuda_free(p);
}
zf_status dev_copy(void *ctx, void *dst, const void *src, size_t bytes, int to_engine)
{
    zf_cuda_ctx *c = (zf_cuda_ctx *)ctx;
    return to_engine ? zf_cuda_upload(c, dst, src, bytes) : zf_cuda_download(c, dst, src, bytes);
}
zf_status dev_fill(void *ctx, void *p, int byte, size_t bytes)
{
    ZF_CU(cudaMemsetAsync(p, byte, bytes, ((zf_cuda_ctx *)ctx)->stream));
    return ZF_OK;
}
zf_fold_mem dev_mem(cuda_engine *e)
{
    zf_fold_mem m = {e->ctx, dev_alloc, dev_free, dev_copy, dev_fill};
    return m;
}

/* Frees the forward's device net unless it is the trainer's. */
void free_forward_net(cuda_engine *e)
{
    if (!e->trainer || e->cn != zf_cuda_trainer_net(e->trainer))
        zf_cuda_net_free(e->cn);
    e->cn = NULL;
}

/* The context the last probe opened, kept for the next open of its device: `--device auto` probes
 * and then opens, and a context (the device's primary context, cuDNN's and cuBLAS's handles) takes a
 * good part of a second to make. */
pthread_mutex_t probed_lock = PTHREAD_MUTEX_INITIALIZER;
zf_cuda_ctx *probed;

/* The probed context of `device`, taken out of the cache, or NULL. */
zf_cuda_ctx *take_probed(int device)
{
    pthread_mutex_lock(&probed_lock);
    zf_cuda_ctx *ctx = NULL;
    if (probed && probed->device == device) {
        ctx = probed;
        probed = NULL;
    }
    pthread_mutex_unlock(&probed_lock);
    return ctx;
}

zf_status cuda_probe(int device, char *desc, size_t len)
{
    /* Opening a context is what finds every reason: no device, a driver older than the runtime,
     * no kernel for this architecture, a cuDNN of another major version. */
    zf_cuda_ctx *ctx = take_probed(device);
    zf_status st = ctx ? ZF_OK : zf_cuda_ctx_new(device, &ctx);
    if (st)
        return st;
    size_t free_b = 0, total_b = 0;
    st = zf_cuda_mem_info(ctx, &free_b, &total_b);
    if (!st)
        snprintf(desc, len, "%s, %.0f MiB free of %.0f MiB, %s arithmetic by default", zf_cuda_ctx_name(ctx),
                 free_b / 1048576.0, total_b / 1048576.0, zf_cuda_precision_name(zf_cuda_ctx_precision(ctx)));
    if (st) {
        zf_cuda_ctx_free(ctx);
        return st;
    }
    pthread_mutex_lock(&probed_lock);
    zf_cuda_ctx *old = probed;
    probed = ctx;
    pthread_mutex_unlock(&probed_lock);
    zf_cuda_ctx_free(old);
    return ZF_OK;
}

void cuda_versions(char *buf, size_t len) { zf_cuda_versions(buf, len); }

int cuda_supports(zf_engine_op op) { return op >= 0 && op < ZF_ENGINE_OP_COUNT; }

void cuda_close(void *p)
{
    cuda_engine *e = (cuda_engine *)p;
    if (!e)
        return;
    free_forward_net(e);
    zf_cuda_trainer_free(e->trainer);
    free(e->momentum);
    zf_cuda_free(e->st_planes);
    zf_cuda_free(e->st_hist);
    free(e->st_hist_host);
    if (e->ctx) {
        cudaSetDevice(e->ctx->device);
        cudaStreamSynchronize(e->ctx->copy_stream);
    }
    for (int i = 0; i < 2; i++)
        zf_cuda_free(e->pre[i]);
    for (int i = 0; i < e->pre_events; i++) {
        cudaEventDestroy(e->pre_copied[i]);
        cudaEventDestroy(e->pre_taken[i]);
    }
    if (e->ctx) {
        const zf_fold_mem m = dev_mem(e);
        zf_fold_slots_free(&e->folds, &m);
    }
    zf_cuda_free(e->fold_seqs);
    zf_cuda_free(e->fold_classes);
    zf_cuda_ctx_free(e->ctx);
    free(e);
}

zf_status cuda_open(zf_net *net, const zf_engine_opts *o, void **out)
{
    *out = NULL;
    zf_cuda_precision prec = ZF_CUDA_FP32;
    if (o->precision)
        ZF_TRY(zf_cuda_parse_precision(o->precision, &prec));
    cuda_engine *e = (cuda_engine *)calloc(1, sizeof *e);
    if (!e)
        return zf_error(ZF_ERR_NOMEM, "out of memory for the cuda engine");
    e->net = net;
    zf_status st = (e->ctx = take_probed(o->device)) ? ZF_OK : zf_cuda_ctx_new(o->device, &e->ctx);
    if (!st)
        st = zf_cuda_ctx_set_precision(e->ctx, prec);
    if (!st)
        st = zf_cuda_net_new(e->ctx, net, o->batch > 0 ? o->batch : 1, &e->cn);
    if (st) {
        cuda_close(e);
        return st;
    }
    snprintf(e->desc, sizeof e->desc, "cuda: %s, %s", zf_cuda_ctx_name(e->ctx), zf_cuda_precision_name(prec));
    *out = e;
    return ZF_OK;
}

const char *cuda_describe(void *p) { return ((cuda_engine *)p)->desc; }

zf_status cuda_memory(void *p, size_t *free_bytes, size_t *total_bytes)
{
    return zf_cuda_mem_info(((cuda_engine *)p)->ctx, free_bytes, total_bytes);
}

zf_status cuda_reserve(void *p, int batch)
{
    cuda_engine *e = (cuda_engine *)p;
    if (batch <= zf_cuda_net_batch(e->cn))
        return ZF_OK;
    if (e->trainer)
        return zf_error(ZF_ERR_ARG, "the cuda engine trains at batches of %d, not %d", zf_cuda_net_batch(e->cn),
                        batch);
    zf_cuda_net *cn = NULL;
    free_forward_net(e); /* first, so that the old buffers' memory can be reused */
    ZF_TRY(zf_cuda_net_new(e->ctx, e->net, batch, &cn));
    e->cn = cn;
    return ZF_OK;
}

zf_status cuda_forward(void *p, const float *input, int n, int last)
{
    cuda_engine *e = (cuda_engine *)p;
    if (n < 1 || n > zf_cuda_net_batch(e->cn))
        return zf_error(ZF_ERR_ARG, "forward of %d images with device buffers for %d", n, zf_cuda_net_batch(e->cn));
    const size_t bytes = sizeof(float) * (size_t)n * (size_t)zf_net_in_size(e->net);
    const int pi = !input ? -1 : input == e->pre_host[0] && n == e->pre_n[0] ? 0
                                 : input == e->pre_host[1] && n == e->pre_n[1] ? 1 : -1;
    if (pi >= 0) {
        e->pre_host[pi] = NULL;
        ZF_TRY(zf_cuda_net_enter(e->cn));
        cudaStream_t st = e->ctx->stream;
        ZF_CU(cudaStreamWaitEvent(st, e->pre_copied[pi], 0));
        ZF_CU(cudaMemcpyAsync(zf_cuda_net_act(e->cn, -1), e->pre[pi], bytes, cudaMemcpyDeviceToDevice, st));
        ZF_CU(cudaEventRecord(e->pre_taken[pi], st));
    } else if (input) {
        ZF_TRY(zf_cuda_upload(e->ctx, zf_cuda_net_act(e->cn, -1), input, bytes));
    }
    ZF_TRY(zf_cuda_net_forward_range(e->cn, 0, last, n));
    return zf_cuda_sync(e->ctx);
}

zf_status cuda_read(void *p, int layer, float *out, int n)
{
    return zf_cuda_net_read(((cuda_engine *)p)->cn, layer, out, n);
}

zf_status cuda_deconv(void *p, float *out, int n, const zf_deconv_req *req)
{
    return zf_cuda_net_deconv(((cuda_engine *)p)->cn, out, n, req);
}

/* core's occlusion request and result around the device's. */
zf_status cuda_occlusion(void *p, const float *input, const zf_occlusion_params *q, zf_occlusion_result **out)
{
    cuda_engine *e = (cuda_engine *)p;
    *out = NULL;
    if (q->conv != ZF_OCCLUSION_CONV_AUTO)
        return zf_error(ZF_ERR_UNSUPPORTED, "the cuda engine's incremental occlusion chooses its own convolutions "
                                            "(the convolution method '%s' is the cpu engine's)",
                        zf_occlusion_conv_name(q->conv));
    zf_cuda_occl_params cp;
    zf_cuda_occl_params_default(&cp);
    cp.patch = q->patch;
    cp.stride = q->stride;
    cp.fill = q->fill;
    cp.cls = q->cls;
    cp.layer = q->layer;
    cp.channel = q->channel;
    cp.method = q->method == ZF_OCCLUSION_BRUTE         ? ZF_CUDA_OCCL_BRUTE
                : q->method == ZF_OCCLUSION_INCREMENTAL ? ZF_CUDA_OCCL_INCREMENTAL
                                                        : ZF_CUDA_OCCL_AUTO;
    cp.batch = q->batch;
    cp.progress = q->progress;
    cp.progress_ctx = q->progress_ctx;
    zf_cuda_occl_map *m = NULL;
    ZF_TRY(zf_cuda_occlusion(e->cn, input, &cp, &m));
    const size_t cells = (size_t)m->rows * (size_t)m->cols;
    const int nl = e->net->n_layers;
    zf_occlusion_result *r = (zf_occlusion_result *)calloc(1, sizeof *r);
    if (r) {
        r->feature = (float *)malloc(sizeof(float) * (cells ? cells : 1));
        r->prob = (float *)malloc(sizeof(float) * (cells ? cells : 1));
        r->argmax = (int32_t *)malloc(sizeof(int32_t) * (cells ? cells : 1));
        r->layer_seconds = (double *)calloc((size_t)nl, sizeof(double));
        r->layer_conv = (zf_occlusion_conv *)calloc((size_t)nl, sizeof(zf_occlusion_conv));
    }
    if (!r || !r->feature || !r->prob || !r->argmax || !r->layer_seconds || !r->layer_conv) {
        zf_occlusion_result_free(r);
        zf_cuda_occl_map_free(m);
        return zf_error(ZF_ERR_NOMEM, "out of memory for an occlusion map of %zu positions", cells);
    }
    memcpy(r->feature, m->feature, sizeof(float) * cells);
    memcpy(r->prob, m->prob, sizeof(float) * cells);
    memcpy(r->argmax, m->argmax, sizeof(int32_t) * cells);
    r->rows = m->rows;
    r->cols = m->cols;
    r->patch = q->patch;
    r->stride = q->stride;
    r->fill = q->fill;
    r->layer = m->layer;
    r->conv_layer = m->conv_layer;
    r->channel = m->channel;
    r->cls = m->cls;
    r->n_classes = m->n_classes;
    r->base_feature = m->base_feature;
    r->base_prob = m->base_prob;
    r->base_argmax = m->base_argmax;
    r->method = m->method == ZF_CUDA_OCCL_INCREMENTAL ? ZF_OCCLUSION_INCREMENTAL : ZF_OCCLUSION_BRUTE;
    r->work_ratio = m->work_ratio;
    r->seconds = m->seconds;
    r->n_layers = nl;
    r->fc_delta = -1;
    zf_cuda_occl_map_free(m);
    *out = r;
    return ZF_OK;
}

zf_status cuda_backward(void *p, float *out, const float *dtop, int top, int bottom, int n, int rule)
{
    return zf_cuda_net_backward(((cuda_engine *)p)->cn, out, dtop, top, bottom, n, rule);
}

/* Training: the device trainer (cuda/train.cu), whose net the forward runs from then on. */
zf_status cuda_train_begin(void *p, int batch, const float *momentum)
{
    cuda_engine *e = (cuda_engine *)p;
    if (!e->momentum && !(e->momentum = (float *)malloc(sizeof(float) * (size_t)e->net->n_params)))
        return zf_error(ZF_ERR_NOMEM, "out of memory for a host copy of the momentum");
    /* made from the host's weights as they are now; the forward's own net stays until it is made */
    zf_cuda_trainer *t = NULL;
    ZF_TRY(zf_cuda_trainer_new(e->ctx, e->net, batch, momentum, &t));
    free_forward_net(e);
    zf_cuda_trainer_free(e->trainer);
    e->trainer = t;
    e->cn = zf_cuda_trainer_net(t);
    return ZF_OK;
}

zf_status cuda_train_step(void *p, const float *input, const int32_t *labels, int n, uint64_t seed, double *loss,
                          int *correct)
{
    return zf_cuda_trainer_step(((cuda_engine *)p)->trainer, input, labels, n, seed, loss, correct);
}

zf_status cuda_train_update(void *p, const zf_sgd *opt)
{
    return zf_cuda_trainer_update(((cuda_engine *)p)->trainer, opt);
}

zf_status cuda_train_state(void *p, const float **momentum)
{
    cuda_engine *e = (cuda_engine *)p;
    ZF_TRY(zf_cuda_trainer_download(e->trainer, e->net->params, e->momentum));
    *momentum = e->momentum;
    return ZF_OK;
}

/* The scan's statistics: device buffers for np plane summaries and nh histogram counts. */
zf_status stats_buffers(cuda_engine *e, size_t np, size_t nh)
{
    if (np > e->st_planes_cap) {
        zf_cuda_free(e->st_planes);
        e->st_planes = NULL;
        e->st_planes_cap = 0;
        ZF_TRY(zf_cuda_malloc(e->ctx, (void **)&e->st_planes, sizeof(zf_plane_stats) * np, "the plane statistics"));
        e->st_planes_cap = np;
    }
    if (nh > e->st_hist_cap) {
        zf_cuda_free(e->st_hist);
        free(e->st_hist_host);
        e->st_hist = NULL;
        e->st_hist_cap = 0;
        if (!(e->st_hist_host = (uint32_t *)malloc(sizeof(uint32_t) * nh)))
            return zf_error(ZF_ERR_NOMEM, "out of memory for %zu histogram counts", nh);
        ZF_TRY(zf_cuda_malloc(e->ctx, (void **)&e->st_hist, sizeof(uint32_t) * nh, "the histograms"));
        e->st_hist_cap = nh;
    }
    return ZF_OK;
}

/* The scan's statistics of a layer, reduced on the device: a plane's summary (80 bytes) and the
 * batch's histogram counts cross to the host instead of the plane. */
zf_status cuda_layer_stats(void *p, int layer, int n, zf_plane_stats *planes, int64_t *hist)
{
    cuda_engine *e = (cuda_engine *)p;
    if (n > zf_cuda_net_batch(e->cn))
        return zf_error(ZF_ERR_ARG, "statistics of %d images with device buffers for %d", n, zf_cuda_net_batch(e->cn));
    ZF_TRY(zf_cuda_net_enter(e->cn));
    const zf_layer *l = &e->net->layers[layer];
    const int units = l->out_c, hw = l->out_h * l->out_w;
    const size_t np = (size_t)n * (size_t)units, nh = (size_t)units * ZF_HIST_BINS;
    ZF_TRY(stats_buffers(e, np, nh));
    ZF_CU(cudaMemsetAsync(e->st_hist, 0, sizeof(uint32_t) * nh, e->ctx->stream));
    ZF_TRY(zf_cuda_layer_stats(e->ctx, zf_cuda_net_act(e->cn, layer), n, units, hw, e->st_planes, e->st_hist));
    ZF_TRY(zf_cuda_download(e->ctx, planes, e->st_planes, sizeof(zf_plane_stats) * np));
    ZF_TRY(zf_cuda_download(e->ctx, e->st_hist_host, e->st_hist, sizeof(uint32_t) * nh));
    for (size_t i = 0; i < nh; i++)
        hist[i] += e->st_hist_host[i];
    return ZF_OK;
}

/* The scan's fold on the device (cuda/fold.cu): slots of accumulators shaped and filled like the
 * host's, each batch's planes summarised and folded there; at a commit the slot comes back whole
 * (for AlexNet's conv layers some 3 MB, and 56 bytes a unit and class with classes). */
zf_status cuda_fold_open(void *p, int slot, const zf_fold_acc *acc)
{
    cuda_engine *e = (cuda_engine *)p;
    ZF_TRY(zf_cuda_net_enter(e->cn));
    const zf_fold_mem m = dev_mem(e);
    return zf_fold_slots_open(&e->folds, &m, slot, acc);
}

zf_status cuda_fold_add(void *p, int slot, int layer, int n, const int64_t *seqs, const int32_t *classes)
{
    cuda_engine *e = (cuda_engine *)p;
    const zf_layer *l = &e->net->layers[layer];
    zf_fold_acc *d = zf_fold_slots_get(&e->folds, slot, l->out_c, n, classes);
    if (!d)
        return ZF_ERR_ARG;
    if (n > zf_cuda_net_batch(e->cn))
        return zf_error(ZF_ERR_ARG, "a fold of %d images with device buffers for %d", n, zf_cuda_net_batch(e->cn));
    ZF_TRY(zf_cuda_net_enter(e->cn));
    const size_t np = (size_t)n * (size_t)d->units, nh = (size_t)d->units * ZF_HIST_BINS;
    ZF_TRY(stats_buffers(e, np, nh));
    if (n > e->fold_cap) {
        ZF_CU(cudaStreamSynchronize(e->ctx->stream)); /* the last fold may still read them */
        zf_cuda_free(e->fold_seqs);
        zf_cuda_free(e->fold_classes);
        e->fold_seqs = NULL;
        e->fold_classes = NULL;
        e->fold_cap = 0;
        ZF_TRY(zf_cuda_malloc(e->ctx, (void **)&e->fold_seqs, sizeof(int64_t) * (size_t)n, "the images' places"));
        ZF_TRY(zf_cuda_malloc(e->ctx, (void **)&e->fold_classes, sizeof(int32_t) * (size_t)n, "the images' classes"));
        e->fold_cap = n;
    }
    cudaStream_t st = e->ctx->stream;
    /* from pageable memory: the copies are made before these calls return, in stream order */
    ZF_CU(cudaMemcpyAsync(e->fold_seqs, seqs, sizeof(int64_t) * (size_t)n, cudaMemcpyHostToDevice, st));
    if (classes)
        ZF_CU(cudaMemcpyAsync(e->fold_classes, classes, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice, st));
    ZF_CU(cudaMemsetAsync(e->st_hist, 0, sizeof(uint32_t) * nh, st));
    ZF_TRY(zf_cuda_layer_stats(e->ctx, zf_cuda_net_act(e->cn, layer), n, d->units, l->out_h * l->out_w,
                               e->st_planes, e->st_hist));
    return zf_cuda_fold(e->ctx, d, e->st_planes, n, e->fold_seqs, classes ? e->fold_classes : NULL, e->st_hist);
}

zf_status cuda_fold_read(void *p, int slot, zf_fold_acc *acc)
{
    cuda_engine *e = (cuda_engine *)p;
    ZF_TRY(zf_cuda_net_enter(e->cn));
    const zf_fold_mem m = dev_mem(e);
    return zf_fold_slots_read(&e->folds, &m, slot, acc);
}

/* A later batch on its way: copied on the copy stream from the caller's (page-locked) memory into
 * pre[i] while the compute stream runs the current one, so that its forward starts with a copy on
 * the device instead of one over the bus. A prefetch waits until the forward that took its buffer's
 * last images has copied them out; a third before either is taken replaces the older. */
zf_status cuda_prefetch(void *p, const float *input, int n)
{
    cuda_engine *e = (cuda_engine *)p;
    if (!input) { /* the caller's memory is about to go: nothing may be taken from it, or read */
        e->pre_host[0] = e->pre_host[1] = NULL;
        ZF_TRY(zf_cuda_net_enter(e->cn));
        ZF_CU(cudaStreamSynchronize(e->ctx->copy_stream));
        return ZF_OK;
    }
    if (n > zf_cuda_net_batch(e->cn))
        return zf_error(ZF_ERR_ARG, "a prefetch of %d images with device buffers for %d", n, zf_cuda_net_batch(e->cn));
    ZF_TRY(zf_cuda_net_enter(e->cn));
    for (; e->pre_events < 2; e->pre_events++) {
        ZF_CU(cudaEventCreateWithFlags(&e->pre_copied[e->pre_events], cudaEventDisableTiming));
        const cudaError_t made = cudaEventCreateWithFlags(&e->pre_taken[e->pre_events], cudaEventDisableTiming);
        if (made != cudaSuccess)
            cudaEventDestroy(e->pre_copied[e->pre_events]);
        ZF_CU(made);
    }
    const size_t floats = (size_t)zf_cuda_net_batch(e->cn) * (size_t)zf_net_in_size(e->net);
    if (floats > e->pre_cap) {
        ZF_CU(cudaStreamSynchronize(e->ctx->copy_stream));
        ZF_CU(cudaStreamSynchronize(e->ctx->stream));
        e->pre_cap = 0;
        for (int i = 0; i < 2; i++) {
            zf_cuda_free(e->pre[i]);
            e->pre[i] = NULL;
            e->pre_host[i] = NULL;
        }
        for (int i = 0; i < 2; i++)
            ZF_TRY(zf_cuda_malloc(e->ctx, (void **)&e->pre[i], sizeof(float) * floats, "a prefetched batch"));
        e->pre_cap = floats;
    }
    int i = !e->pre_host[0] ? 0 : !e->pre_host[1] ? 1 : e->pre_next;
    if (input == e->pre_host[0] || input == e->pre_host[1]) /* the same memory again: its images changed */
        i = input == e->pre_host[0] ? 0 : 1;
    e->pre_next = !i;
    e->pre_host[i] = NULL;
    cudaStream_t cs = e->ctx->copy_stream;
    ZF_CU(cudaStreamWaitEvent(cs, e->pre_taken[i], 0));
    ZF_CU(cudaMemcpyAsync(e->pre[i], input, sizeof(float) * (size_t)n * (size_t)zf_net_in_size(e->net),
                          cudaMemcpyHostToDevice, cs));
    ZF_CU(cudaEventRecord(e->pre_copied[i], cs));
    e->pre_host[i] = input;
    e->pre_n[i] = n;
    return ZF_OK;
}

/* Page-locked host memory: the copy stream copies from it without a staging copy of the driver's,
 * and beside the compute stream's work. */
void *cuda_host_alloc(void *p, size_t bytes)
{
    cuda_engine *e = (cuda_engine *)p;
    if (zf_cuda_net_enter(e->cn))
        return NULL;
    void *q = NULL;
    if (cudaMallocHost(&q, bytes) != cudaSuccess) {
        cudaGetLastError(); /* the caller takes pageable memory instead */
        return NULL;
    }
    return q;
}

void cuda_host_free(void *p, void *q)
{
    cuda_engine *e = (cuda_engine *)p;
    if (!q)
        return;
    cudaSetDevice(e->ctx->device); /* zf_engine_host_free forgot the prefetches from it first */
    cudaStreamSynchronize(e->ctx->copy_stream); /* no copy may still read it */
    cudaFreeHost(q);
}

zf_status cuda_weights_changed(void *p)
{
    cuda_engine *e = (cuda_engine *)p;
    if (e->trainer)
        return zf_error(ZF_ERR_ARG, "the cuda engine is training: its weights are the trainer's");
    return zf_cuda_net_upload_weights(e->cn);
}

} // namespace

extern "C" {
extern const zf_engine_iface zf_engine_cuda;
const zf_engine_iface zf_engine_cuda = {
    "cuda",         cuda_probe,   cuda_versions, cuda_supports, cuda_open,    cuda_close,     cuda_describe,
    cuda_memory,    cuda_reserve, cuda_forward,  cuda_read,     cuda_deconv,  cuda_occlusion, cuda_backward,
    NULL, /* present: the registry's entry for this module asks for the driver */
    NULL, /* resolve: this is the table that runs */
    cuda_train_begin, cuda_train_step, cuda_train_update, cuda_train_state,
    cuda_layer_stats,
    cuda_weights_changed,
    cuda_host_alloc, cuda_host_free, cuda_prefetch,
    cuda_fold_open, cuda_fold_add, cuda_fold_read,
};
}
