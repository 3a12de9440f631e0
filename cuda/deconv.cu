/* The deconvnet on the GPU, step for step as core/deconv.c: keep one unit (or one map) of a
 * rectified conv layer, then down through unpooling at the forward pass's switches, rectification,
 * transposed filtering (no bias) and LRN as the identity or its true backward. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "reduce.cuh"

/* One block per image: seeds[img] = {channel, position or -1}. The signal (zeroed before) gets the
 * chosen map, or the chosen unit (the first maximum of the map when the position is -1; the
 * position used is written back). */
__global__ static void seed_kernel(float *sig, int32_t *seeds, const float *act, size_t top_size, int hw, int map)
{
    const int img = blockIdx.x;
    const int c = seeds[2 * img];
    const float *a = act + img * top_size + (size_t)c * hw;
    float *s = sig + img * top_size + (size_t)c * hw;
    if (map) {
        for (int j = threadIdx.x; j < hw; j += blockDim.x)
            s[j] = a[j];
        return;
    }
    int pos = seeds[2 * img + 1];
    if (pos < 0)
        pos = zf_block_first_max(a, hw); /* every thread of the block takes this branch alike */
    if (threadIdx.x == 0) {
        seeds[2 * img + 1] = pos;
        s[pos] = a[pos];
    }
}

extern "C" zf_status zf_cuda_net_deconv(zf_cuda_net *cn, float *out, int n, const zf_deconv_req *req)
{
    const zf_net *net = cn->net;
    zf_cuda_ctx *ctx = cn->ctx;
    if (n < 1 || n > cn->batch)
        return zf_error(ZF_ERR_ARG, "deconv of %d images with device buffers for %d", n, cn->batch);
    zf_deconv_start start;
    zf_status rst = zf_deconv_resolve(net, req, n, &start);
    if (rst)
        return rst;
    const int conv = start.conv, top = start.top;
    const zf_layer *tl = &net->layers[top];
    const int hw = tl->out_h * tl->out_w;
    const size_t top_size = (size_t)zf_layer_out_size(tl);
    for (int i = top; i >= 0; i--) {
        const zf_op op = net->layers[i].op;
        if (op != ZF_OP_RELU && op != ZF_OP_CONV && op != ZF_OP_LRN && op != ZF_OP_MAXPOOL && op != ZF_OP_DROPOUT &&
            op != ZF_OP_FLATTEN)
            return zf_error(ZF_ERR_UNSUPPORTED, "the deconvnet cannot pass down through layer '%s' (%s)",
                            net->layers[i].name, zf_op_name(op));
    }

    int32_t *seeds = (int32_t *)malloc(sizeof(int32_t) * 2 * n);
    if (!seeds)
        return zf_error(ZF_ERR_NOMEM, "out of memory for %d deconvnet seeds", n);
    for (int img = 0; img < n; img++) {
        seeds[2 * img] = req->channel[img];
        seeds[2 * img + 1] = -1;
        if (req->mode == ZF_DECONV_UNIT && req->y[img] >= 0 && req->x[img] >= 0) {
            if (req->y[img] >= tl->out_h || req->x[img] >= tl->out_w) {
                free(seeds);
                return zf_error(ZF_ERR_ARG, "position %d,%d outside the %dx%d map of layer '%s'", req->y[img],
                                req->x[img], tl->out_h, tl->out_w, net->layers[conv].name);
            }
            seeds[2 * img + 1] = req->y[img] * tl->out_w + req->x[img];
        }
    }
    zf_status st = zf_cuda_net_enter(cn);
    if (!st)
        st = zf_cuda_upload(ctx, cn->small, seeds, sizeof(int32_t) * 2 * n);
    if (st) {
        free(seeds);
        return st;
    }

    float *a = cn->dec[0], *b = cn->dec[1];
    ZF_CU(cudaMemsetAsync(a, 0, sizeof(float) * top_size * n, ctx->stream));
    seed_kernel<<<n, ZF_RED_MAX, 0, ctx->stream>>>(a, cn->small, cn->acts[top], top_size, hw,
                                                    req->mode == ZF_DECONV_MAP);
    ZF_LAUNCHED("seed");
    if (req->mode == ZF_DECONV_UNIT) {
        st = zf_cuda_download(ctx, seeds, cn->small, sizeof(int32_t) * 2 * n);
        if (st) {
            free(seeds);
            return st;
        }
        for (int img = 0; img < n; img++) {
            req->y[img] = seeds[2 * img + 1] / tl->out_w;
            req->x[img] = seeds[2 * img + 1] % tl->out_w;
        }
    }
    free(seeds);

    /* Walk down: the signal in `a` has layer i's output shape; each step leaves its input shape. */
    for (int i = top; i >= 0; i--) {
        const zf_layer *l = &net->layers[i];
        const size_t in_size = (size_t)zf_layer_in_size(l);
        float *t;
        switch (l->op) {
        case ZF_OP_RELU:
            ZF_TRY(zf_cuda_relu_forward(ctx, a, a, in_size * n));
            break;
        case ZF_OP_CONV:
            st = zf_cuda_conv_run_backward_data(ctx, &cn->plans[i], b, a, zf_cuda_net_conv_weight(cn, i), n, cn->ws,
                                                cn->ws_bytes);
            if (st)
                return zf_error_prefix(st, "layer '%s': ", l->name);
            t = a, a = b, b = t;
            break;
        case ZF_OP_LRN:
            if (req->lrn_backward) {
                ZF_TRY(zf_cuda_lrn_backward(ctx, b, a, zf_cuda_net_in(cn, i - 1), n, l->in_c, l->in_h * l->in_w,
                                            &l->lrn));
                t = a, a = b, b = t;
            }
            break;
        case ZF_OP_MAXPOOL: {
            const zf_pool_geom g = zf_layer_pool_geom(l, n);
            ZF_TRY(zf_cuda_maxpool_unpool(ctx, b, a, cn->switches[i], &g));
            t = a, a = b, b = t;
            break;
        }
        default:
            break; /* dropout, flatten: identity; the rest was refused above */
        }
    }
    return zf_cuda_download(ctx, out, a, sizeof(float) * (size_t)zf_net_in_size(net) * n);
}
