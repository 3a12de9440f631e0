/* The CPU engine's bfloat16 forward (--precision bf16): every convolution and fully connected
 * layer takes its input and its weights rounded to bfloat16 (to nearest, ties to even), multiplies
 * and sums in float32, and adds its float32 bias, as AMX and AVX-512 BF16 compute (and the CUDA
 * engine's bf16: cuDNN's bf16 tensors with float accumulation); every other layer and every value
 * between layers stays float32. The fully connected weights are held in bfloat16, half the memory
 * traffic that bounds those layers at small batches; the convolutions run the float32 kernels on
 * the rounded operands (no bf16 instruction on the CPUs this path was measured on), so they give
 * bf16's numbers without its speed. */
#include "bf16_internal.h"

#include <stdlib.h>
#include <string.h>

#include "conv_internal.h"
#include "fc_internal.h"
#include "util_internal.h"
#include "zf/alloc.h"
#include "zf/ops.h"
#include "zf/tensor.h"

struct zf_bf16_weights {
    int n_layers;
    float **conv_w;              /* per layer: a conv layer's weights rounded to bfloat16, as floats */
    uint16_t **fc_w;             /* per layer: a fully connected layer's weights in bfloat16 */
    zf_conv_filter_cache *cache; /* per layer: Winograd filters of conv_w, kept between forwards */
    float *x;                    /* a layer's input rounded, for the largest batch seen */
    size_t x_floats;
};

void zf_bf16_weights_free(zf_bf16_weights *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->n_layers; i++) {
        zf_free(b->conv_w ? b->conv_w[i] : NULL);
        zf_free(b->fc_w ? b->fc_w[i] : NULL);
        if (b->cache)
            zf_conv_filter_cache_clear(&b->cache[i]);
    }
    zf_free(b->conv_w);
    zf_free(b->fc_w);
    zf_free(b->cache);
    zf_free(b->x);
    zf_free(b);
}

/* dst[i] = src[i] rounded to bfloat16. */
static void round_bf16(float *dst, const float *src, size_t count)
{
#pragma omp parallel for schedule(static) if (count > ((size_t)1 << 18))
    for (size_t i = 0; i < count; i++)
        dst[i] = zf_bf16_to_float(zf_float_to_bf16(src[i]));
}

zf_status zf_bf16_weights_new(const zf_net *net, zf_bf16_weights **out)
{
    *out = NULL;
    zf_bf16_weights *b = zf_calloc(1, sizeof *b);
    if (!b)
        return zf_error(ZF_ERR_NOMEM, "out of memory for the bfloat16 weights of '%s'", net->arch);
    b->n_layers = net->n_layers;
    b->conv_w = zf_calloc((size_t)net->n_layers, sizeof *b->conv_w);
    b->fc_w = zf_calloc((size_t)net->n_layers, sizeof *b->fc_w);
    b->cache = zf_calloc((size_t)net->n_layers, sizeof *b->cache);
    int ok = b->conv_w && b->fc_w && b->cache;
    for (int i = 0; ok && i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        const size_t count = (size_t)l->weight_count;
        if (l->op == ZF_OP_CONV && (b->conv_w[i] = zf_alloc(sizeof(float) * count)))
            round_bf16(b->conv_w[i], l->weight, count);
        else if (l->op == ZF_OP_FC && (b->fc_w[i] = zf_alloc(sizeof(uint16_t) * count)))
            for (size_t k = 0; k < count; k++)
                b->fc_w[i][k] = zf_float_to_bf16(l->weight[k]);
        else if (l->op == ZF_OP_CONV || l->op == ZF_OP_FC)
            ok = 0;
    }
    if (!ok) {
        zf_bf16_weights_free(b);
        return zf_error(ZF_ERR_NOMEM, "out of memory for the bfloat16 weights of '%s'", net->arch);
    }
    *out = b;
    return ZF_OK;
}

zf_status zf_bf16_layer_forward(zf_net *net, int i, float *out, const float *in, int n)
{
    zf_bf16_weights *b = net->bf16;
    const zf_layer *l = &net->layers[i];
    const size_t count = (size_t)n * (size_t)zf_layer_in_size(l);
    if (count > b->x_floats) { /* a larger batch than any before: once per size */
        float *x = zf_alloc(sizeof(float) * count);
        if (!x)
            return zf_error(ZF_ERR_NOMEM, "out of memory for the bfloat16 input of %s at batch %d", l->name, n);
        zf_free(b->x);
        b->x = x;
        b->x_floats = count;
    }
    round_bf16(b->x, in, count);
    if (l->op == ZF_OP_CONV) {
        const zf_conv_geom g = zf_layer_conv_geom(l, n);
        zf_conv_forward_cached(out, b->x, b->conv_w[i], l->bias, &g, net->ws, &b->cache[i]);
    } else {
        zf_fc_forward_bf16(out, b->x, b->fc_w[i], l->bias, n, (int)zf_layer_in_size(l), l->out_c);
    }
    return ZF_OK;
}
