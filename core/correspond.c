/* Zeiler & Fergus section 4.3 (Fig. 8): does occluding the same object part in different images
 * change a layer's output the same way? The sum over image pairs of the Hamming distance between
 * the signs of the changes, for boxes over a part and for random boxes of the same size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_internal.h"
#include "zf/paper.h"
#include "zf/tensor.h"

zf_status zf_box_check(const zf_part_box *b, int h, int w, const char *what)
{
    if (b->w < 1 || b->h < 1)
        return zf_error(ZF_ERR_ARG, "%s: the box %d,%d,%d,%d (x,y,w,h) is empty", what, b->x, b->y, b->w, b->h);
    if (b->x < 0 || b->y < 0 || b->x > w - b->w || b->y > h - b->h)
        return zf_error(ZF_ERR_ARG, "%s: the box %d,%d,%d,%d (x,y,w,h) is not inside the %dx%d input", what,
                        b->x, b->y, b->w, b->h, w, h);
    return ZF_OK;
}

void zf_box_random(zf_part_box *out, const zf_part_box *like, int n, int h, int w, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        zf_part_box b = like[i];
        const uint64_t nx = (uint64_t)(w - b.w + 1), ny = (uint64_t)(h - b.h + 1);
        b.x = (int)(zf_splitmix64(&s) % nx);
        b.y = (int)(zf_splitmix64(&s) % ny);
        out[i] = b;
    }
}

static void occlude(float *x, const zf_net *net, const zf_part_box *b, float fill)
{
    for (int c = 0; c < net->in_c; c++)
        for (int y = b->y; y < b->y + b->h; y++)
            for (int i = 0; i < b->w; i++)
                x[((size_t)c * net->in_h + y) * net->in_w + b->x + i] = fill;
}

static int8_t sign_of(float v) { return (int8_t)((v > 0) - (v < 0)); }

zf_status zf_correspond_run(zf_engine *e, const float *inputs, int n, const zf_part_box *const *sets, int n_sets,
                            const int *layers, int n_layers, float fill, double *delta, double *norm)
{
    zf_net *net = zf_engine_net(e);
    if (n < 2)
        return zf_error(ZF_ERR_ARG, "correspondence needs at least 2 images, got %d", n);
    if (n_sets < 1 || n_layers < 1)
        return zf_error(ZF_ERR_ARG, "correspondence: no boxes or no layers");
    int64_t total = 0;
    for (int l = 0; l < n_layers; l++) {
        if (layers[l] < 0 || layers[l] >= net->n_layers)
            return zf_error(ZF_ERR_ARG, "correspondence: layer %d out of range for %s", layers[l], net->arch);
        total += zf_layer_out_size(&net->layers[layers[l]]);
    }
    for (int s = 0; s < n_sets; s++)
        for (int i = 0; i < n; i++) {
            char what[64];
            snprintf(what, sizeof what, "box set %d, image %d", s + 1, i + 1);
            zf_status st = zf_box_check(&sets[s][i], net->in_h, net->in_w, what);
            if (st)
                return st;
        }
    /* signs[(s * n + i) * total + offset of layer l + k]: the sign of eps_i at element k. Every
     * image goes through the net alone, the occluded ones as the original: an element the box
     * cannot reach then comes out bit for bit the same, eps exactly 0, and not a sign of rounding
     * that another batch size's order of summation would give. */
    const int64_t isz = zf_net_in_size(net);
    int8_t *signs = malloc((size_t)n_sets * n * total);
    float *base = malloc(sizeof(float) * (size_t)total);
    float *xs = zf_alloc(sizeof(float) * (size_t)isz);
    zf_status st = ZF_OK;
    if (!signs || !base || !xs) {
        st = zf_error(ZF_ERR_NOMEM, "correspondence: out of memory for %d images x %d box sets x %lld features",
                      n, n_sets, (long long)total);
        goto done;
    }
    if ((st = zf_engine_reserve_host(e, 1)))
        goto done;
    for (int i = 0; i < n; i++) {
        const float *x = inputs + isz * i;
        if ((st = zf_engine_forward_layers(e, x, 1, net->n_layers - 1, layers, n_layers)))
            goto done;
        int64_t off = 0;
        for (int l = 0; l < n_layers; l++) {
            const int64_t sz = zf_layer_out_size(&net->layers[layers[l]]);
            memcpy(base + off, net->acts[layers[l]], sizeof(float) * (size_t)sz);
            off += sz;
        }
        for (int s = 0; s < n_sets; s++) {
            memcpy(xs, x, sizeof(float) * (size_t)isz);
            occlude(xs, net, &sets[s][i], fill);
            if (zf_interrupted) {
                st = zf_error(ZF_ERR_INTERRUPTED, "correspondence interrupted");
                goto done;
            }
            if ((st = zf_engine_forward_layers(e, xs, 1, net->n_layers - 1, layers, n_layers)))
                goto done;
            int8_t *sg = signs + ((size_t)s * n + i) * total;
            off = 0;
            for (int l = 0; l < n_layers; l++) {
                const int64_t sz = zf_layer_out_size(&net->layers[layers[l]]);
                const float *occ = net->acts[layers[l]];
                for (int64_t e = 0; e < sz; e++)
                    sg[off + e] = sign_of(base[off + e] - occ[e]);
                off += sz;
            }
        }
    }
    const double pairs = (double)n * (n - 1) / 2;
    for (int s = 0; s < n_sets; s++) {
        int64_t off = 0;
        for (int l = 0; l < n_layers; l++) {
            const int64_t sz = zf_layer_out_size(&net->layers[layers[l]]);
            double sum = 0;
            for (int i = 0; i < n; i++)
                for (int j = i + 1; j < n; j++) {
                    const int8_t *a = signs + ((size_t)s * n + i) * total + off;
                    const int8_t *b = signs + ((size_t)s * n + j) * total + off;
                    int64_t h = 0;
                    for (int64_t e = 0; e < sz; e++)
                        h += a[e] != b[e];
                    sum += (double)h;
                }
            delta[s * n_layers + l] = sum;
            if (norm)
                norm[s * n_layers + l] = sum / (pairs * (double)sz);
            off += sz;
        }
    }
done:
    free(signs);
    free(base);
    zf_free(xs);
    return st;
}
