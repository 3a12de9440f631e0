/* A net on the device: the parameter block uploaded in one copy, buffers sized once per net and
 * batch, one cuDNN plan per convolution, and the forward pass mirroring zf_net_forward_range. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

extern "C" float *zf_cuda_net_act(zf_cuda_net *cn, int layer)
{
    if (layer < -1 || layer >= cn->net->n_layers)
        return NULL;
    return layer < 0 ? cn->input : cn->acts[layer];
}

extern "C" int32_t *zf_cuda_net_switches(zf_cuda_net *cn, int layer)
{
    if (layer < 0 || layer >= cn->net->n_layers)
        return NULL;
    return cn->switches[layer];
}

extern "C" int zf_cuda_net_batch(const zf_cuda_net *cn) { return cn->batch; }
extern "C" zf_cuda_ctx *zf_cuda_net_ctx(zf_cuda_net *cn) { return cn->ctx; }
extern "C" size_t zf_cuda_net_bytes(const zf_cuda_net *cn) { return cn->bytes; }

extern "C" void zf_cuda_net_free(zf_cuda_net *cn)
{
    if (!cn)
        return;
    cudaSetDevice(cn->ctx->device);
    cudaStreamSynchronize(cn->ctx->stream);
    cudaStreamSynchronize(cn->ctx->copy_stream);
    const zf_net *net = cn->net;
    if (cn->acts) {
        for (int i = 0; i < net->n_layers; i++)
            if (!net->layers[i].in_place)
                zf_cuda_free(cn->acts[i]);
        free(cn->acts);
    }
    if (cn->switches) {
        for (int i = 0; i < net->n_layers; i++)
            zf_cuda_free(cn->switches[i]);
        free(cn->switches);
    }
    if (cn->plans) {
        for (int i = 0; i < net->n_layers; i++)
            zf_cuda_conv_plan_destroy(&cn->plans[i]);
        free(cn->plans);
    }
    for (int s = 0; s < 2; s++) {
        if (cn->stage[s])
            cudaFreeHost(cn->stage[s]);
        if (cn->stage_free[s])
            cudaEventDestroy(cn->stage_free[s]);
        if (cn->staged[s])
            cudaEventDestroy(cn->staged[s]);
        zf_cuda_free(cn->dec[s]);
    }
    zf_cuda_free(cn->params);
    zf_cuda_free(cn->params_bf16);
    zf_cuda_free(cn->input);
    zf_cuda_free(cn->ws);
    zf_cuda_free(cn->small);
    if (cn->owns_ctx)
        zf_cuda_ctx_free(cn->ctx);
    free(cn);
}

/* Bytes of everything but the convolution workspace, for the out-of-memory message. */
static void plan_bytes(const zf_net *net, int batch, zf_cuda_precision prec, size_t *fixed, size_t *per_image,
                       size_t *dec_floats)
{
    size_t per = (size_t)zf_net_in_size(net) * 4, dec = (size_t)zf_net_in_size(net);
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        const size_t out = (size_t)zf_layer_out_size(l);
        if (!l->in_place)
            per += out * 4;
        if (l->op == ZF_OP_MAXPOOL)
            per += out * 4;
        dec = out > dec ? out : dec;
        dec = (size_t)zf_layer_in_size(l) > dec ? (size_t)zf_layer_in_size(l) : dec;
    }
    per += 2 * dec * 4 + 2 * sizeof(int32_t);
    *fixed = (size_t)net->n_params * 4 + (prec == ZF_CUDA_BF16 ? (size_t)net->n_params * 2 : 0);
    *per_image = per;
    *dec_floats = dec;
    (void)batch;
}

static zf_status net_alloc(zf_cuda_net *cn, void **p, size_t bytes, const char *what)
{
    zf_status st = zf_cuda_malloc(cn->ctx, p, bytes, what);
    if (st)
        return zf_error_prefix(st, "%s at batch %d: ", cn->net->arch, cn->batch);
    cn->bytes += bytes;
    return ZF_OK;
}

static zf_status net_init(zf_cuda_net *cn)
{
    const zf_net *net = cn->net;
    zf_cuda_ctx *ctx = cn->ctx;
    const int batch = cn->batch;
    if (!net->params)
        return zf_error(ZF_ERR_ARG, "net '%s' is not finalized", net->arch);
    if (batch < 1)
        return zf_error(ZF_ERR_ARG, "batch size %d (must be at least 1)", batch);

    size_t fixed, per, dec;
    plan_bytes(net, batch, cn->precision, &fixed, &per, &dec);
    size_t free_b = 0, total_b = 0;
    ZF_TRY(zf_cuda_mem_info(ctx, &free_b, &total_b));
    const size_t need = fixed + per * (size_t)batch;
    if (need > free_b) {
        /* Keep a tenth of what is free for cuDNN's workspace and the libraries. */
        const double room = (double)free_b * 0.9 - (double)fixed;
        const long fits = room > 0 ? (long)(room / (double)per) : 0;
        return zf_error(ZF_ERR_DEVICE,
                        "out of GPU memory: %s at batch %d needs %.1f MiB on the device (%.1f MiB of weights, "
                        "%.2f MiB per image) but %.1f MiB of %.1f MiB are free on %s: %s%ld",
                        net->arch, batch, need / 1048576.0, fixed / 1048576.0, per / 1048576.0, free_b / 1048576.0,
                        total_b / 1048576.0, ctx->name, fits > 0 ? "try --batch " : "not even one image fits, batch ",
                        fits);
    }

    ZF_TRY(net_alloc(cn, (void **)&cn->params, (size_t)net->n_params * 4, "the weights"));
    if (cn->precision == ZF_CUDA_BF16)
        ZF_TRY(net_alloc(cn, (void **)&cn->params_bf16, (size_t)net->n_params * 2, "the bf16 weights"));
    ZF_TRY(zf_cuda_net_upload_weights(cn));
    ZF_TRY(net_alloc(cn, (void **)&cn->input, (size_t)batch * zf_net_in_size(net) * 4, "the input batch"));
    cn->acts = (float **)calloc((size_t)net->n_layers, sizeof *cn->acts);
    cn->switches = (int32_t **)calloc((size_t)net->n_layers, sizeof *cn->switches);
    cn->plans = (zf_cuda_conv_plan *)calloc((size_t)net->n_layers, sizeof *cn->plans);
    if (!cn->acts || !cn->switches || !cn->plans)
        return zf_error(ZF_ERR_NOMEM, "out of memory for the device net's tables");
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        const size_t out = (size_t)zf_layer_out_size(l) * batch;
        char what[96];
        snprintf(what, sizeof what, "the output of layer '%s'", l->name);
        if (l->in_place)
            cn->acts[i] = i ? cn->acts[i - 1] : cn->input;
        else
            ZF_TRY(net_alloc(cn, (void **)&cn->acts[i], out * 4, what));
        if (l->op == ZF_OP_MAXPOOL) {
            snprintf(what, sizeof what, "the switches of layer '%s'", l->name);
            ZF_TRY(net_alloc(cn, (void **)&cn->switches[i], out * 4, what));
        }
    }
    cn->dec_floats = dec * batch;
    for (int s = 0; s < 2; s++)
        ZF_TRY(net_alloc(cn, (void **)&cn->dec[s], cn->dec_floats * 4, "the deconvnet buffers"));
    ZF_TRY(net_alloc(cn, (void **)&cn->small, (size_t)batch * 2 * sizeof(int32_t), "the deconvnet seeds"));

    /* Plans after the buffers: autotuning times the algorithms on them. */
    size_t ws = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_CONV)
            continue;
        const zf_conv_geom g = zf_layer_conv_geom(l, batch);
        zf_cuda_conv_bufs bufs = {(float *)zf_cuda_net_in(cn, i - 1), cn->acts[i], zf_cuda_net_conv_weight(cn, i)};
        zf_status st = zf_cuda_conv_plan_init(ctx, &cn->plans[i], &g, cn->plan_flags, &bufs);
        if (st)
            return zf_error_prefix(st, "layer '%s': ", l->name);
        const size_t b = zf_cuda_conv_plan_ws_bytes(&cn->plans[i]);
        ws = b > ws ? b : ws;
    }
    ZF_TRY(net_alloc(cn, &cn->ws, ws, "the convolution workspace"));
    cn->ws_bytes = ws;
    for (int s = 0; s < 2; s++) {
        ZF_CU(cudaEventCreateWithFlags(&cn->stage_free[s], cudaEventDisableTiming));
        ZF_CU(cudaEventCreateWithFlags(&cn->staged[s], cudaEventDisableTiming));
    }
    ZF_CU(cudaStreamSynchronize(ctx->stream));
    return ZF_OK;
}

static zf_status net_new(zf_cuda_ctx *ctx, const zf_net *net, int batch, int plan_flags, zf_cuda_net **out)
{
    *out = NULL;
    zf_cuda_net *cn = (zf_cuda_net *)calloc(1, sizeof *cn);
    if (!cn)
        return zf_error(ZF_ERR_NOMEM, "out of memory for a device net");
    cn->ctx = ctx;
    cn->net = net;
    cn->batch = batch;
    cn->precision = ctx->precision;
    cn->plan_flags = plan_flags;
    zf_status st = zf_cuda_net_enter(cn);
    if (!st)
        st = net_init(cn);
    if (st) {
        zf_cuda_net_free(cn);
        return st;
    }
    *out = cn;
    return ZF_OK;
}

extern "C" zf_status zf_cuda_net_new(zf_cuda_ctx *ctx, const zf_net *net, int batch, zf_cuda_net **out)
{
    return net_new(ctx, net, batch, ZF_CUDA_PLAN_BWD_DATA, out);
}

zf_status zf_cuda_net_new_training(zf_cuda_ctx *ctx, const zf_net *net, int batch, zf_cuda_net **out)
{
    return net_new(ctx, net, batch, ZF_CUDA_PLAN_BWD_DATA | ZF_CUDA_PLAN_BWD_FILTER, out);
}

extern "C" zf_status zf_cuda_net_upload_weights(zf_cuda_net *cn)
{
    ZF_TRY(zf_cuda_net_enter(cn));
    const zf_net *net = cn->net;
    ZF_TRY(zf_cuda_upload(cn->ctx, cn->params, net->params, (size_t)net->n_params * 4));
    if (cn->params_bf16) {
        ZF_TRY(zf_cuda_f2bf16(cn->ctx, cn->params_bf16, cn->params, (size_t)net->n_params));
        ZF_TRY(zf_cuda_sync(cn->ctx));
    }
    return ZF_OK;
}

/* Enqueues layers first..last for n images. */
static zf_status forward_range(zf_cuda_net *cn, int first, int last, int n)
{
    const zf_net *net = cn->net;
    zf_cuda_ctx *ctx = cn->ctx;
    for (int i = first; i <= last; i++) {
        const zf_layer *l = &net->layers[i];
        const float *in = zf_cuda_net_in(cn, i - 1);
        float *out = cn->acts[i];
        zf_status st = ZF_OK;
        switch (l->op) {
        case ZF_OP_CONV: {
            /* A ReLU right after the convolution is written in the same pass as the bias. */
            float *relu_out = NULL;
            if (i + 1 <= last && net->layers[i + 1].op == ZF_OP_RELU)
                relu_out = cn->acts[i + 1];
            st = zf_cuda_conv_run_forward(ctx, &cn->plans[i], out, relu_out, in, zf_cuda_net_conv_weight(cn, i),
                                          zf_cuda_net_bias(cn, i), n, cn->ws, cn->ws_bytes);
            if (relu_out)
                i++;
            break;
        }
        case ZF_OP_RELU:
            st = zf_cuda_relu_forward(ctx, out, in, (size_t)n * zf_layer_out_size(l));
            break;
        case ZF_OP_LRN:
            st = zf_cuda_lrn_forward(ctx, out, in, n, l->in_c, l->in_h * l->in_w, &l->lrn);
            break;
        case ZF_OP_MAXPOOL: {
            const zf_pool_geom g = zf_layer_pool_geom(l, n);
            st = zf_cuda_maxpool_forward(ctx, out, cn->switches[i], in, &g);
            break;
        }
        case ZF_OP_AVGPOOL: {
            const zf_pool_geom g = zf_layer_pool_geom(l, n);
            st = zf_cuda_avgpool_forward(ctx, out, in, &g, l->count_include_pad);
            break;
        }
        case ZF_OP_ADAPTIVE_AVGPOOL:
            st = zf_cuda_adaptive_avgpool_forward(ctx, out, in, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w);
            break;
        case ZF_OP_FC:
            st = zf_cuda_fc_run(ctx, cn->precision, out, in, zf_cuda_net_weight(cn, i), zf_cuda_net_bias(cn, i), n,
                                (int)zf_layer_in_size(l), l->out_c);
            break;
        case ZF_OP_SOFTMAX:
            st = zf_cuda_softmax_forward(ctx, out, in, n, l->out_c);
            break;
        case ZF_OP_FLATTEN:
        case ZF_OP_DROPOUT:
            break; /* in place: identity at inference */
        }
        if (st)
            return zf_error_prefix(st, "layer '%s': ", l->name);
    }
    return ZF_OK;
}

extern "C" zf_status zf_cuda_net_forward_range(zf_cuda_net *cn, int first, int last, int n)
{
    if (n < 1 || n > cn->batch)
        return zf_error(ZF_ERR_ARG, "forward of %d images with device buffers for %d", n, cn->batch);
    if (first < 0 || last >= cn->net->n_layers || first > last)
        return zf_error(ZF_ERR_ARG, "forward over layers %d..%d of %d", first, last, cn->net->n_layers);
    ZF_TRY(zf_cuda_net_enter(cn));
    return forward_range(cn, first, last, n);
}

extern "C" zf_status zf_cuda_net_forward_dev(zf_cuda_net *cn, const float *input_dev, int n)
{
    if (n < 1 || n > cn->batch)
        return zf_error(ZF_ERR_ARG, "forward of %d images with device buffers for %d (make the device net with a "
                                    "larger batch)", n, cn->batch);
    ZF_TRY(zf_cuda_net_enter(cn));
    if (input_dev && input_dev != cn->input)
        ZF_CU(cudaMemcpyAsync(cn->input, input_dev, sizeof(float) * n * (size_t)zf_net_in_size(cn->net),
                              cudaMemcpyDeviceToDevice, cn->ctx->stream));
    return forward_range(cn, 0, cn->net->n_layers - 1, n);
}

extern "C" zf_status zf_cuda_net_forward(zf_cuda_net *cn, const float *input, int n)
{
    if (n < 1 || n > cn->batch)
        return zf_error(ZF_ERR_ARG, "forward of %d images with device buffers for %d (make the device net with a "
                                    "larger batch)", n, cn->batch);
    ZF_TRY(zf_cuda_net_enter(cn));
    if (input)
        ZF_CU(cudaMemcpyAsync(cn->input, input, sizeof(float) * n * (size_t)zf_net_in_size(cn->net),
                              cudaMemcpyHostToDevice, cn->ctx->stream));
    ZF_TRY(forward_range(cn, 0, cn->net->n_layers - 1, n));
    return zf_cuda_sync(cn->ctx);
}

extern "C" zf_status zf_cuda_net_read(zf_cuda_net *cn, int layer, float *host, int n)
{
    if (layer < -1 || layer >= cn->net->n_layers)
        return zf_error(ZF_ERR_ARG, "no layer %d in '%s' (%d layers)", layer, cn->net->arch, cn->net->n_layers);
    if (n < 1 || n > cn->batch)
        return zf_error(ZF_ERR_ARG, "read of %d images with device buffers for %d", n, cn->batch);
    ZF_TRY(zf_cuda_net_enter(cn));
    const size_t per = layer < 0 ? (size_t)zf_net_in_size(cn->net) : (size_t)zf_layer_out_size(&cn->net->layers[layer]);
    return zf_cuda_download(cn->ctx, host, zf_cuda_net_in(cn, layer), sizeof(float) * per * n);
}

extern "C" float *zf_cuda_net_staging(zf_cuda_net *cn, int slot)
{
    if (slot < 0 || slot > 1) {
        zf_error(ZF_ERR_ARG, "staging slot %d (0 or 1)", slot);
        return NULL;
    }
    if (zf_cuda_net_enter(cn))
        return NULL;
    if (!cn->stage[slot]) {
        const size_t bytes = sizeof(float) * cn->batch * (size_t)zf_net_in_size(cn->net);
        cudaError_t e = cudaMallocHost((void **)&cn->stage[slot], bytes);
        if (e != cudaSuccess) {
            cudaGetLastError();
            cn->stage[slot] = NULL;
            zf_error(ZF_ERR_NOMEM, "cannot pin %.1f MiB of host memory for staging: %s", bytes / 1048576.0,
                     cudaGetErrorString(e));
            return NULL;
        }
        return cn->stage[slot];
    }
    /* The slot's previous upload must be done before the caller writes into it again. */
    cudaError_t e = cudaEventSynchronize(cn->stage_free[slot]);
    if (e != cudaSuccess) {
        zf_cuda_fail_rt(e, "cudaEventSynchronize(stage_free)", __func__, __FILE__, __LINE__);
        return NULL;
    }
    return cn->stage[slot];
}

extern "C" zf_status zf_cuda_net_forward_staged(zf_cuda_net *cn, int slot, int n)
{
    if (slot < 0 || slot > 1 || !cn->stage[slot])
        return zf_error(ZF_ERR_ARG, "staging slot %d was not handed out by zf_cuda_net_staging", slot);
    if (n < 1 || n > cn->batch)
        return zf_error(ZF_ERR_ARG, "forward of %d images with device buffers for %d", n, cn->batch);
    ZF_TRY(zf_cuda_net_enter(cn));
    zf_cuda_ctx *ctx = cn->ctx;
    /* The copy waits for the compute stream to be done with the input buffer of the previous
     * batch, runs on the copy stream, and the compute stream waits for the copy. */
    ZF_CU(cudaEventRecord(cn->staged[slot], ctx->stream));
    ZF_CU(cudaStreamWaitEvent(ctx->copy_stream, cn->staged[slot], 0));
    ZF_CU(cudaMemcpyAsync(cn->input, cn->stage[slot], sizeof(float) * n * (size_t)zf_net_in_size(cn->net),
                          cudaMemcpyHostToDevice, ctx->copy_stream));
    ZF_CU(cudaEventRecord(cn->stage_free[slot], ctx->copy_stream));
    ZF_CU(cudaStreamWaitEvent(ctx->stream, cn->stage_free[slot], 0));
    return forward_range(cn, 0, cn->net->n_layers - 1, n);
}

extern "C" zf_status zf_cuda_net_forward_to_host(zf_cuda_net *cn, zf_net *net, const float *input, int n,
                                                 const int *layers, int n_layers)
{
    if (net != cn->net)
        return zf_error(ZF_ERR_ARG, "device net was made from another net than '%s'", net->arch);
    if (n < 1 || n > net->batch)
        return zf_error(ZF_ERR_ARG, "forward of %d images with host buffers for %d (call zf_net_reserve)", n,
                        net->batch);
    ZF_TRY(zf_cuda_net_forward(cn, input, n));
    const int last = net->n_layers - 1;
    if (!layers) {
        ZF_TRY(zf_cuda_net_read(cn, -1, net->input, n));
        for (int i = 0; i <= last; i++) {
            if (!net->layers[i].in_place)
                ZF_TRY(zf_cuda_net_read(cn, i, net->acts[i], n));
            if (net->layers[i].op == ZF_OP_MAXPOOL)
                ZF_TRY(zf_cuda_download(cn->ctx, net->switches[i], cn->switches[i],
                                        sizeof(int32_t) * n * (size_t)zf_layer_out_size(&net->layers[i])));
        }
        return ZF_OK;
    }
    for (int j = 0; j < n_layers; j++) {
        if (layers[j] < -1 || layers[j] > last)
            return zf_error(ZF_ERR_ARG, "no layer %d in '%s'", layers[j], net->arch);
        ZF_TRY(zf_cuda_net_read(cn, layers[j], layers[j] < 0 ? net->input : net->acts[layers[j]], n));
    }
    return zf_cuda_net_read(cn, last, net->acts[last], n);
}

extern "C" zf_status zf_cuda_open(zf_device_choice choice, const zf_net *net, int batch, zf_cuda_precision precision,
                                  zf_cuda_net **out)
{
    *out = NULL;
    if (choice == ZF_DEVICE_CPU)
        return ZF_OK;
    zf_cuda_ctx *ctx = NULL;
    zf_status st = zf_cuda_ctx_new(0, &ctx);
    if (st)
        return choice == ZF_DEVICE_AUTO ? ZF_OK : st; /* auto: the CPU, with the reason recorded */
    if ((st = zf_cuda_ctx_set_precision(ctx, precision))) {
        zf_cuda_ctx_free(ctx);
        return st;
    }
    zf_cuda_net *cn = NULL;
    if ((st = zf_cuda_net_new(ctx, net, batch, &cn))) {
        zf_cuda_ctx_free(ctx);
        return st;
    }
    cn->owns_ctx = 1;
    *out = cn;
    return ZF_OK;
}
