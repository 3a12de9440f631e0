/* The CPU engine's bfloat16 forward (core/bf16.c; core only): the rounded copies of a net's
 * weights that a cpu engine opened with precision bf16 makes when it opens (the engine's contract:
 * weights are read when a context is opened) and puts in net->bf16, and the layer forward that
 * zf_net_forward_range calls for conv and fc layers while it is there. */
#ifndef ZF_BF16_INTERNAL_H
#define ZF_BF16_INTERNAL_H

#include "zf/net.h"
#include "zf/status.h"

typedef struct zf_bf16_weights zf_bf16_weights;

zf_status zf_bf16_weights_new(const zf_net *net, zf_bf16_weights **out);
void zf_bf16_weights_free(zf_bf16_weights *b);
/* Layer i (conv or fc) of n images: out from in, both float32, through bfloat16 operands. */
zf_status zf_bf16_layer_forward(zf_net *net, int i, float *out, const float *in, int n);

#endif
