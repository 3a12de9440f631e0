/* Zeiler & Fergus's feature invariance (section 4, Fig. 5): how far a layer's output moves when the
 * image is shifted, scaled or rotated, and what the class probability does meanwhile; the transforms,
 * the layers the paper names and its probability read-out, which the correspondence experiment
 * shares. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "zf/paper.h"
#include "zf/tensor.h"

const char *zf_transform_name(zf_transform t)
{
    switch (t) {
    case ZF_TRANSFORM_TRANSLATE: return "translate";
    case ZF_TRANSFORM_SCALE: return "scale";
    case ZF_TRANSFORM_ROTATE: return "rotate";
    }
    return "?";
}

static float tap(const float *plane, int h, int w, int y, int x, float fill)
{
    return (y < 0 || y >= h || x < 0 || x >= w) ? fill : plane[(size_t)y * w + x];
}

zf_status zf_transform_image(float *out, const float *in, int c, int h, int w, zf_transform t, double amount,
                             float fill)
{
    if (!isfinite(amount))
        return zf_error(ZF_ERR_ARG, "%s: the amount is not a finite number", zf_transform_name(t));
    if (t == ZF_TRANSFORM_SCALE && !(amount > 0))
        return zf_error(ZF_ERR_ARG, "scale: the factor must be positive, got %g", amount);
    if (t != ZF_TRANSFORM_TRANSLATE && t != ZF_TRANSFORM_SCALE && t != ZF_TRANSFORM_ROTATE)
        return zf_error(ZF_ERR_ARG, "unknown transform %d", (int)t);
    const double cy = (h - 1) / 2.0, cx = (w - 1) / 2.0;
    const double a = amount * M_PI / 180.0, ca = cos(a), sa = sin(a);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double sy, sx;
            const double dy = y - cy, dx = x - cx;
            if (t == ZF_TRANSFORM_TRANSLATE) {
                sy = y - amount;
                sx = x;
            } else if (t == ZF_TRANSFORM_SCALE) {
                sy = cy + dy / amount;
                sx = cx + dx / amount;
            } else {
                sx = cx + dx * ca - dy * sa;
                sy = cy + dx * sa + dy * ca;
            }
            /* Far outside, floor() of a huge value would overflow an int: every tap is fill there. */
            if (!(sy > -2 && sy < h + 1 && sx > -2 && sx < w + 1)) {
                for (int k = 0; k < c; k++)
                    out[((size_t)k * h + y) * w + x] = fill;
                continue;
            }
            const int y0 = (int)floor(sy), x0 = (int)floor(sx);
            const double fy = sy - y0, fx = sx - x0;
            for (int k = 0; k < c; k++) {
                const float *p = in + (size_t)k * h * w;
                double v = (1 - fy) * ((1 - fx) * tap(p, h, w, y0, x0, fill) + fx * tap(p, h, w, y0, x0 + 1, fill)) +
                           fy * ((1 - fx) * tap(p, h, w, y0 + 1, x0, fill) + fx * tap(p, h, w, y0 + 1, x0 + 1, fill));
                out[((size_t)k * h + y) * w + x] = (float)v;
            }
        }
    return ZF_OK;
}

static int rectified(const zf_net *net, int i)
{
    return i + 1 < net->n_layers && net->layers[i + 1].op == ZF_OP_RELU ? i + 1 : i;
}

int zf_paper_layer_first(const zf_net *net)
{
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_CONV)
            return rectified(net, i);
    return -1;
}

int zf_paper_layer_last_conv(const zf_net *net)
{
    for (int i = net->n_layers - 1; i >= 0; i--)
        if (net->layers[i].op == ZF_OP_CONV)
            return rectified(net, i);
    return -1;
}

int zf_paper_layer_penultimate(const zf_net *net)
{
    int seen = 0;
    for (int i = net->n_layers - 1; i >= 0; i--)
        if (net->layers[i].op == ZF_OP_FC && seen++)
            return rectified(net, i);
    return -1;
}

void zf_paper_probs(double *prob, int32_t *top, const float *out, int n, int classes, int k, int is_softmax)
{
    for (int i = 0; i < n; i++) {
        const float *row = out + (size_t)i * classes;
        int best = 0;
        for (int j = 1; j < classes; j++)
            if (row[j] > row[best])
                best = j;
        if (top)
            top[i] = best;
        if (is_softmax) {
            prob[i] = row[k];
            continue;
        }
        double sum = 0;
        for (int j = 0; j < classes; j++)
            sum += exp((double)row[j] - row[best]);
        prob[i] = exp((double)row[k] - row[best]) / sum;
    }
}

void zf_invariance_params_default(zf_invariance_params *p)
{
    for (int i = 0; i < ZF_INVARIANCE_LAYERS; i++)
        p->layers[i] = -1;
    p->cls = -1;
    p->fill = 0;
    p->batch = 0;
}

static double distance(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        s += d * d;
    }
    return sqrt(s);
}

zf_status zf_invariance_sweep(zf_engine *e, const float *input, zf_transform t, const double *amounts, int n,
                              const zf_invariance_params *p, zf_invariance_row *rows, int *layers_used,
                              int *cls_used)
{
    zf_net *net = zf_engine_net(e);
    if (n < 1)
        return zf_error(ZF_ERR_ARG, "%s: no amounts to sweep", zf_transform_name(t));
    int layers[ZF_INVARIANCE_LAYERS] = {p->layers[0], p->layers[1]};
    if (layers[0] < 0)
        layers[0] = zf_paper_layer_first(net);
    if (layers[1] < 0)
        layers[1] = zf_paper_layer_penultimate(net);
    for (int l = 0; l < ZF_INVARIANCE_LAYERS; l++)
        if (layers[l] < 0 || layers[l] >= net->n_layers)
            return zf_error(ZF_ERR_ARG, "%s has no %s layer to compare", net->arch,
                            l == 0 ? "convolution (layer 1)" : "penultimate fully connected (layer 7)");
    const zf_layer *last = &net->layers[net->n_layers - 1];
    const int classes = (int)zf_layer_out_size(last), is_softmax = last->op == ZF_OP_SOFTMAX;
    if (p->cls >= classes)
        return zf_error(ZF_ERR_ARG, "class %d out of range: %s has %d classes", p->cls, net->arch, classes);
    const int batch = p->batch > 0 ? p->batch : 1;
    const int64_t isz = zf_net_in_size(net);
    int64_t fsz[ZF_INVARIANCE_LAYERS];
    for (int l = 0; l < ZF_INVARIANCE_LAYERS; l++)
        fsz[l] = zf_layer_out_size(&net->layers[layers[l]]);
    float *base = malloc(sizeof(float) * (size_t)(fsz[0] + fsz[1]));
    float *xs = zf_alloc(sizeof(float) * (size_t)(isz * batch));
    double *prob = malloc(sizeof(double) * batch);
    int32_t *top = malloc(sizeof(int32_t) * batch);
    zf_status st = ZF_OK;
    if (!base || !xs || !prob || !top) {
        st = zf_error(ZF_ERR_NOMEM, "%s sweep: out of memory", zf_transform_name(t));
        goto done;
    }
    const int read[3] = {layers[0], layers[1], net->n_layers - 1}; /* what the sweep looks at */
    if ((st = zf_engine_reserve_host(e, batch)) ||
        (st = zf_engine_forward_layers(e, input, 1, net->n_layers - 1, read, 3)))
        goto done;
    memcpy(base, net->acts[layers[0]], sizeof(float) * (size_t)fsz[0]);
    memcpy(base + fsz[0], net->acts[layers[1]], sizeof(float) * (size_t)fsz[1]);
    int cls = p->cls;
    if (cls < 0) {
        zf_paper_probs(prob, top, net->acts[net->n_layers - 1], 1, classes, 0, is_softmax);
        cls = top[0];
    }
    for (int first = 0; first < n; first += batch) {
        const int m = n - first < batch ? n - first : batch;
        for (int i = 0; i < m; i++)
            if ((st = zf_transform_image(xs + isz * i, input, net->in_c, net->in_h, net->in_w, t,
                                         amounts[first + i], p->fill)))
                goto done;
        if (zf_interrupted) {
            st = zf_error(ZF_ERR_INTERRUPTED, "%s sweep interrupted", zf_transform_name(t));
            goto done;
        }
        if ((st = zf_engine_forward_layers(e, xs, m, net->n_layers - 1, read, 3)))
            goto done;
        zf_paper_probs(prob, top, net->acts[net->n_layers - 1], m, classes, cls, is_softmax);
        for (int i = 0; i < m; i++) {
            zf_invariance_row *r = &rows[first + i];
            r->dist[0] = distance(base, net->acts[layers[0]] + fsz[0] * i, fsz[0]);
            r->dist[1] = distance(base + fsz[0], net->acts[layers[1]] + fsz[1] * i, fsz[1]);
            r->prob = prob[i];
            r->top = top[i];
        }
    }
    if (layers_used)
        memcpy(layers_used, layers, sizeof layers);
    if (cls_used)
        *cls_used = cls;
done:
    free(base);
    zf_free(xs);
    free(prob);
    free(top);
    return st;
}
