/* Feature evolution (Zeiler & Fergus Fig. 4): the strongest activation of chosen units over a set
 * of images, found by one scan of the rectified maps. */
#include <string.h>

#include "zf/evolve.h"

zf_status zf_units_strongest(zf_engine *e, const float *inputs, int64_t n, int batch, int conv,
                             const int *channels, int n_units, zf_unit_max *out)
{
    zf_net *net = zf_engine_net(e);
    if (conv < 0 || conv >= net->n_layers || net->layers[conv].op != ZF_OP_CONV)
        return zf_error(ZF_ERR_ARG, "%s: layer %d is not a conv layer", net->arch, conv);
    const zf_layer *l = &net->layers[conv];
    for (int u = 0; u < n_units; u++) {
        if (channels[u] < 0 || channels[u] >= l->out_c)
            return zf_error(ZF_ERR_ARG, "%s: %s has channels 0..%d, not %d", net->arch, l->name, l->out_c - 1,
                            channels[u]);
        out[u] = (zf_unit_max){0, 0, 0, 0.0f};
    }
    if (batch < 1)
        return zf_error(ZF_ERR_ARG, "batch %d is not positive", batch);
    zf_status st = zf_engine_reserve_host(e, batch);
    if (st)
        return st;
    const int top = zf_net_rectified(net, conv);
    int64_t plane = (int64_t)l->out_h * l->out_w, in_size = zf_net_in_size(net);
    for (int64_t at = 0; at < n; at += batch) {
        int m = n - at < batch ? (int)(n - at) : batch;
        if ((st = zf_engine_forward_layers(e, inputs + at * in_size, m, top, &top, 1)))
            return st;
        const float *act = net->acts[top];
        for (int u = 0; u < n_units; u++)
            for (int i = 0; i < m; i++) {
                const float *map = act + ((int64_t)i * l->out_c + channels[u]) * plane;
                for (int64_t p = 0; p < plane; p++) {
                    float v = map[p] > 0 ? map[p] : 0; /* rectified even where no ReLU follows */
                    if (v > out[u].value) {
                        out[u] = (zf_unit_max){at + i, (int)(p / l->out_w), (int)(p % l->out_w), v};
                    }
                }
            }
    }
    return ZF_OK;
}
