/* A training step on the device, step for step as zf_trainer_backprop and zf_trainer_update
 * (core/train.c): the forward with dropout masks drawn as the CPU draws them, softmax
 * cross-entropy, the backward pass with the parameters' gradients into a device copy laid out
 * like net->params, and SGD with momentum (and ZF's filter renormalisation) on the device. The
 * weights and momentum cross to the host only when asked (checkpoints). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "reduce.cuh"
#include "zf/train.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL

struct zf_cuda_trainer {
    zf_cuda_net *cn;
    const zf_net *net;
    int batch, logits;
    float *grad, *momentum;  /* device, laid out like net->params */
    uint8_t **masks;         /* dropout layers' keep masks (device) */
    int32_t *labels;         /* device (batch) */
    double *row_loss;        /* device (batch) */
    int32_t *row_hit;        /* device (batch): the top class is the label */
    double *host_loss;       /* the same on the host, for the step's sums */
    int32_t *host_hit;
};

/* core's zf_mix64 (SplitMix64's finaliser), on the device. */
__device__ static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* zf_dropout_forward_train in place: element i keeps where the top 32 bits of its word reach the
 * threshold, scaled by 1 / (1 - p). */
__global__ static void dropout_kernel(float *x, uint8_t *mask, size_t count, uint64_t key, uint64_t thr, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        const uint64_t r = mix64(key + (uint64_t)i * GOLDEN) >> 32;
        const int keep = r >= thr;
        mask[i] = (uint8_t)keep;
        x[i] = keep ? x[i] * scale : 0.0f;
    }
}

__global__ static void dropout_backward_kernel(float *d, const uint8_t *mask, size_t count, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        d[i] = mask[i] ? d[i] * scale : 0.0f;
}

/* zf_softmax_xent, one thread per row: the row's loss log(s) + m - x_y in double, d = (p - onehot) / n,
 * and whether the first maximum is the label. */
__global__ static void xent_kernel(float *d, double *loss, int32_t *hit, const float *logits, const int32_t *labels,
                                   int n, int k)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const float *x = logits + (size_t)i * k;
        float *di = d + (size_t)i * k;
        const int y = labels[i];
        float m = x[0];
        int best = 0;
        for (int j = 1; j < k; j++)
            if (x[j] > m) {
                m = x[j];
                best = j;
            }
        double s = 0;
        for (int j = 0; j < k; j++)
            s += exp((double)x[j] - m);
        const double inv_s = 1.0 / s, inv_n = 1.0 / n;
        loss[i] = log(s) + ((double)m - x[y]);
        hit[i] = best == y;
        for (int j = 0; j < k; j++)
            di[j] = (float)((exp((double)x[j] - m) * inv_s - (j == y)) * inv_n);
    }
}

/* zf_net_renorm_filters: one block per filter, its RMS from a double sum. */
__global__ static void renorm_kernel(float *w, size_t per, float radius)
{
    float *f = w + (size_t)blockIdx.x * per;
    double ss = 0;
    for (size_t j = threadIdx.x; j < per; j += blockDim.x)
        ss += (double)f[j] * f[j];
    ss = zf_block_sum(ss);
    const double rms = sqrt(ss / (double)per);
    if (rms > radius) {
        const float s = (float)(radius / rms);
        for (size_t j = threadIdx.x; j < per; j += blockDim.x)
            f[j] *= s;
    }
}

extern "C" void zf_cuda_trainer_free(zf_cuda_trainer *t)
{
    if (!t)
        return;
    if (t->masks)
        for (int i = 0; i < t->net->n_layers; i++)
            cudaFree(t->masks[i]);
    free(t->masks);
    cudaFree(t->grad);
    cudaFree(t->momentum);
    cudaFree(t->labels);
    cudaFree(t->row_loss);
    cudaFree(t->row_hit);
    free(t->host_loss);
    free(t->host_hit);
    zf_cuda_net_free(t->cn);
    free(t);
}

extern "C" zf_status zf_cuda_trainer_new(zf_cuda_ctx *ctx, const zf_net *net, int batch, const float *momentum,
                                         zf_cuda_trainer **out)
{
    *out = NULL;
    const int last = net->n_layers - 1;
    if (last < 1 || net->layers[last].op != ZF_OP_SOFTMAX || net->layers[last - 1].op != ZF_OP_FC)
        return zf_error(ZF_ERR_ARG, "%s: training needs a net that ends in fc + softmax", net->arch);
    if (ctx->precision != ZF_CUDA_FP32)
        return zf_error(ZF_ERR_UNSUPPORTED, "training on the GPU is in fp32 only, not %s",
                        zf_cuda_precision_name(ctx->precision));
    zf_cuda_trainer *t = (zf_cuda_trainer *)calloc(1, sizeof *t);
    if (!t)
        return zf_error(ZF_ERR_NOMEM, "out of memory for a device trainer");
    t->net = net;
    t->batch = batch;
    t->logits = last - 1;
    const size_t pbytes = sizeof(float) * (size_t)net->n_params;
    zf_status st = zf_cuda_net_new_training(ctx, net, batch, &t->cn);
    if (!st)
        st = zf_cuda_malloc(ctx, (void **)&t->grad, pbytes, "the gradients");
    if (!st)
        st = zf_cuda_malloc(ctx, (void **)&t->momentum, pbytes, "the momentum");
    if (!st)
        st = zf_cuda_malloc(ctx, (void **)&t->labels, sizeof(int32_t) * batch, "the labels");
    if (!st)
        st = zf_cuda_malloc(ctx, (void **)&t->row_loss, sizeof(double) * batch, "the losses");
    if (!st)
        st = zf_cuda_malloc(ctx, (void **)&t->row_hit, sizeof(int32_t) * batch, "the hits");
    if (!st && (!(t->masks = (uint8_t **)calloc((size_t)net->n_layers, sizeof *t->masks)) ||
                !(t->host_loss = (double *)malloc(sizeof(double) * batch)) ||
                !(t->host_hit = (int32_t *)malloc(sizeof(int32_t) * batch))))
        st = zf_error(ZF_ERR_NOMEM, "out of memory for a device trainer");
    for (int i = 0; !st && i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_DROPOUT)
            st = zf_cuda_malloc(ctx, (void **)&t->masks[i], (size_t)zf_layer_out_size(&net->layers[i]) * batch,
                                "a dropout mask");
    if (!st && momentum)
        st = zf_cuda_upload(ctx, t->momentum, momentum, pbytes);
    else if (!st) {
        if (cudaMemsetAsync(t->momentum, 0, pbytes, ctx->stream) != cudaSuccess)
            st = zf_cuda_fail_rt(cudaGetLastError(), "cudaMemsetAsync", __func__, __FILE__, __LINE__);
        else
            st = zf_cuda_sync(ctx);
    }
    if (st) {
        zf_cuda_trainer_free(t);
        return st;
    }
    *out = t;
    return ZF_OK;
}

extern "C" zf_status zf_cuda_trainer_step(zf_cuda_trainer *t, const float *input, const int32_t *labels, int n,
                                          uint64_t seed, double *loss, int *correct)
{
    zf_cuda_net *cn = t->cn;
    zf_cuda_ctx *ctx = cn->ctx;
    const zf_net *net = t->net;
    if (n < 1 || n > t->batch)
        return zf_error(ZF_ERR_ARG, "batch of %d for a device trainer of %d", n, t->batch);
    ZF_TRY(zf_cuda_net_enter(cn));
    for (int b = 0; b < n; b++)
        if (labels[b] < 0 || labels[b] >= net->layers[t->logits].out_c)
            return zf_error(ZF_ERR_ARG, "label %d of image %d outside the %d classes", labels[b], b,
                            net->layers[t->logits].out_c);
    ZF_TRY(zf_cuda_upload(ctx, cn->input, input, sizeof(float) * (size_t)zf_net_in_size(net) * n));
    ZF_TRY(zf_cuda_upload(ctx, t->labels, labels, sizeof(int32_t) * n));
    /* the forward to the logits, dropout on */
    for (int i = 0; i <= t->logits; i++) {
        const zf_layer *l = &net->layers[i];
        if (l->op == ZF_OP_DROPOUT) {
            const size_t count = (size_t)zf_layer_out_size(l) * n;
            const float p = l->dropout_p;
            dropout_kernel<<<zf_grid(count), ZF_THREADS, 0, ctx->stream>>>(
                cn->acts[i], t->masks[i], count, zf_train_dropout_key(seed, i), (uint64_t)((double)p * 4294967296.0),
                (float)(1.0 / (1.0 - (double)p)));
            ZF_LAUNCHED("dropout");
        } else {
            ZF_TRY(zf_cuda_net_forward_range(cn, i, i, n));
        }
    }
    const int k = net->layers[t->logits].out_c;
    float *dcur = cn->dec[0], *dother = cn->dec[1];
    xent_kernel<<<zf_grid((size_t)n), ZF_THREADS, 0, ctx->stream>>>(dcur, t->row_loss, t->row_hit,
                                                                  cn->acts[t->logits], t->labels, n, k);
    ZF_LAUNCHED("xent");
    /* the backward pass: dcur holds dL/d(output of layer i) */
    for (int i = t->logits; i >= 0; i--) {
        const zf_layer *l = &net->layers[i];
        const float *in = zf_cuda_net_in(cn, i - 1);
        const size_t out_count = (size_t)zf_layer_out_size(l) * n;
        const int need_din = i > 0;
        float *gw = l->weight ? t->grad + (l->weight - net->params) : NULL;
        float *gb = l->bias ? t->grad + (l->bias - net->params) : NULL;
        zf_status st = ZF_OK;
        int swap = 0;
        switch (l->op) {
        case ZF_OP_CONV:
            st = zf_cuda_conv_run_backward_filter(ctx, &cn->plans[i], gw, gb, in, dcur, n, cn->ws, cn->ws_bytes);
            if (!st && need_din)
                st = zf_cuda_conv_run_backward_data(ctx, &cn->plans[i], dother, dcur, zf_cuda_net_weight(cn, i), n,
                                                    cn->ws, cn->ws_bytes);
            swap = need_din;
            break;
        case ZF_OP_FC:
            st = zf_cuda_fc_backward(ctx, need_din ? dother : NULL, gw, gb, dcur, in, zf_cuda_net_weight(cn, i), n,
                                     (int)zf_layer_in_size(l), l->out_c);
            swap = need_din;
            break;
        case ZF_OP_RELU:
            st = zf_cuda_relu_backward(ctx, dcur, dcur, cn->acts[i], out_count, 0);
            break;
        case ZF_OP_DROPOUT:
            dropout_backward_kernel<<<zf_grid(out_count), ZF_THREADS, 0, ctx->stream>>>(
                dcur, t->masks[i], out_count, (float)(1.0 / (1.0 - (double)l->dropout_p)));
            ZF_LAUNCHED("dropout_backward");
            break;
        case ZF_OP_FLATTEN:
            break;
        case ZF_OP_LRN:
            if (need_din)
                st = zf_cuda_lrn_backward(ctx, dother, dcur, in, n, l->in_c, l->in_h * l->in_w, &l->lrn);
            swap = need_din;
            break;
        case ZF_OP_MAXPOOL:
            if (need_din) {
                const zf_pool_geom g = zf_layer_pool_geom(l, n);
                st = zf_cuda_maxpool_unpool(ctx, dother, dcur, cn->switches[i], &g);
            }
            swap = need_din;
            break;
        case ZF_OP_AVGPOOL:
            if (need_din) {
                const zf_pool_geom g = zf_layer_pool_geom(l, n);
                st = zf_cuda_avgpool_backward(ctx, dother, dcur, &g, l->count_include_pad);
            }
            swap = need_din;
            break;
        case ZF_OP_ADAPTIVE_AVGPOOL:
            if (need_din)
                st = zf_cuda_adaptive_avgpool_backward(ctx, dother, dcur, n, l->in_c, l->in_h, l->in_w, l->out_h,
                                                       l->out_w);
            swap = need_din;
            break;
        case ZF_OP_SOFTMAX:
            return zf_error(ZF_ERR_UNSUPPORTED, "%s: a softmax inside the net (layer %s)", net->arch, l->name);
        }
        if (st)
            return zf_error_prefix(st, "layer '%s': ", l->name);
        if (swap) {
            float *s = dcur;
            dcur = dother;
            dother = s;
        }
    }
    /* the loss and hits of the batch, summed on the host in the CPU's order */
    ZF_TRY(zf_cuda_download(ctx, t->host_loss, t->row_loss, sizeof(double) * n));
    ZF_TRY(zf_cuda_download(ctx, t->host_hit, t->row_hit, sizeof(int32_t) * n));
    double sum = 0;
    int hits = 0;
    for (int b = 0; b < n; b++) {
        sum += t->host_loss[b];
        hits += t->host_hit[b];
    }
    if (loss)
        *loss = sum / n;
    if (correct)
        *correct = hits;
    return ZF_OK;
}

extern "C" zf_status zf_cuda_trainer_update(zf_cuda_trainer *t, const zf_sgd *opt)
{
    zf_cuda_net *cn = t->cn;
    zf_cuda_ctx *ctx = cn->ctx;
    const zf_net *net = t->net;
    ZF_TRY(zf_cuda_net_enter(cn));
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        for (int b = 0; b < 2; b++) {
            const float *w = b ? l->bias : l->weight;
            const int64_t count = b ? l->bias_count : l->weight_count;
            if (!w || count == 0)
                continue;
            const size_t off = (size_t)(w - net->params);
            ZF_TRY(zf_cuda_sgd_update(ctx, cn->params + off, t->momentum + off, t->grad + off, (size_t)count, opt->lr,
                                      opt->momentum, b ? 0.0f : opt->weight_decay));
        }
    }
    if (opt->renorm > 0)
        for (int i = 0; i < net->n_layers; i++) {
            const zf_layer *l = &net->layers[i];
            if (l->op != ZF_OP_CONV)
                continue;
            renorm_kernel<<<l->out_c, ZF_RED_MAX, 0, ctx->stream>>>(cn->params + (l->weight - net->params),
                                                                     (size_t)(l->weight_count / l->out_c), opt->renorm);
            ZF_LAUNCHED("renorm");
        }
    return zf_cuda_sync(ctx);
}

zf_cuda_net *zf_cuda_trainer_net(zf_cuda_trainer *t) { return t->cn; }

extern "C" zf_status zf_cuda_trainer_download(zf_cuda_trainer *t, float *params, float *momentum)
{
    const size_t pbytes = sizeof(float) * (size_t)t->net->n_params;
    ZF_TRY(zf_cuda_net_enter(t->cn));
    if (params)
        ZF_TRY(zf_cuda_download(t->cn->ctx, params, t->cn->params, pbytes));
    if (momentum)
        ZF_TRY(zf_cuda_download(t->cn->ctx, momentum, t->momentum, pbytes));
    return ZF_OK;
}
