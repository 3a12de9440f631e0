/* Backpropagation through a net on the device, step for step as zf_net_backward (core/attribution.c):
 * the gradient of sum(dtop * a layer's output) down to a lower layer's output or the input, on the
 * activations and switches of the last forward. Input gradients only: the parameters' gradients
 * (training on the GPU) are not here yet. */
#include "internal.h"

extern "C" zf_status zf_cuda_net_backward(zf_cuda_net *cn, float *out, const float *dtop, int top, int bottom, int n,
                                          int rule)
{
    const zf_net *net = cn->net;
    zf_cuda_ctx *ctx = cn->ctx;
    if (n < 1 || n > cn->batch)
        return zf_error(ZF_ERR_ARG, "%s: backpropagation of %d images with device buffers for %d", net->arch, n,
                        cn->batch);
    if (top < 0 || top >= net->n_layers || bottom < -1 || bottom >= top)
        return zf_error(ZF_ERR_ARG, "%s: cannot backpropagate from layer %d down to layer %d", net->arch, top, bottom);
    if (rule < 0 || rule > 2)
        return zf_error(ZF_ERR_ARG, "%s: ReLU rule %d (0 gradient, 1 guided, 2 deconvnet)", net->arch, rule);
    if (cn->precision != ZF_CUDA_FP32)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: the gradients on the GPU are computed in fp32 only (this device net "
                                            "is %s)", net->arch, zf_cuda_precision_name(cn->precision));
    ZF_TRY(zf_cuda_net_enter(cn));
    const zf_layer *tl = &net->layers[top];
    float *a = cn->dec[0], *b = cn->dec[1], *t;
    ZF_TRY(zf_cuda_upload(ctx, a, dtop, sizeof(float) * (size_t)zf_layer_out_size(tl) * n));
    /* `a` holds d target / d (output of layer i); each step leaves its input's gradient there. */
    for (int i = top; i > bottom; i--) {
        const zf_layer *l = &net->layers[i];
        const float *in = zf_cuda_net_in(cn, i - 1);
        const size_t out_count = (size_t)zf_layer_out_size(l) * n;
        zf_status st = ZF_OK;
        int swap = 1;
        switch (l->op) {
        case ZF_OP_CONV:
            st = zf_cuda_conv_run_backward_data(ctx, &cn->plans[i], b, a, zf_cuda_net_weight(cn, i), n, cn->ws,
                                                cn->ws_bytes);
            break;
        case ZF_OP_FC:
            st = zf_cuda_fc_backward_data(ctx, b, a, zf_cuda_net_weight(cn, i), n, (int)zf_layer_in_size(l), l->out_c);
            break;
        case ZF_OP_RELU:
            st = zf_cuda_relu_backward(ctx, a, a, cn->acts[i], out_count, rule);
            swap = 0;
            break;
        case ZF_OP_LRN:
            if (rule == 2) /* the deconvnet's rule: LRN passes the signal unchanged */
                swap = 0;
            else
                st = zf_cuda_lrn_backward(ctx, b, a, in, n, l->in_c, l->in_h * l->in_w, &l->lrn);
            break;
        case ZF_OP_MAXPOOL: {
            const zf_pool_geom g = zf_layer_pool_geom(l, n);
            st = zf_cuda_maxpool_unpool(ctx, b, a, cn->switches[i], &g);
            break;
        }
        case ZF_OP_AVGPOOL: {
            const zf_pool_geom g = zf_layer_pool_geom(l, n);
            st = zf_cuda_avgpool_backward(ctx, b, a, &g, l->count_include_pad);
            break;
        }
        case ZF_OP_ADAPTIVE_AVGPOOL:
            st = zf_cuda_adaptive_avgpool_backward(ctx, b, a, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w);
            break;
        case ZF_OP_SOFTMAX:
            st = zf_cuda_softmax_backward(ctx, a, a, cn->acts[i], n, l->out_c);
            swap = 0;
            break;
        case ZF_OP_DROPOUT: /* the identity at inference */
        case ZF_OP_FLATTEN:
            swap = 0;
            break;
        }
        if (st)
            return zf_error_prefix(st, "layer '%s': ", l->name);
        if (swap)
            t = a, a = b, b = t;
    }
    const size_t bottom_size = bottom < 0 ? (size_t)zf_net_in_size(net) : (size_t)zf_layer_out_size(&net->layers[bottom]);
    return zf_cuda_download(ctx, out, a, sizeof(float) * bottom_size * n);
}
