/* Linear probes: a frozen net's features at chosen layers (pooled to a small grid) and a softmax
 * classifier trained on them by full-batch L-BFGS, for Zeiler & Fergus's per-layer table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "zf/probe.h"
#include "zf/tensor.h"
#include "gemm_internal.h"

int zf_probe_resolve(const zf_net *net, const char *name)
{
    int i = zf_net_find(net, name);
    if (i < 0)
        return -1;
    const zf_layer *l = &net->layers[i];
    if ((l->op == ZF_OP_CONV || l->op == ZF_OP_FC) && i + 1 < net->n_layers &&
        net->layers[i + 1].op == ZF_OP_RELU)
        return i + 1;
    return i;
}

int zf_probe_default_layers(const zf_net *net, int *layers, int max)
{
    int last_fc = -1, n = 0;
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_FC)
            last_fc = i;
    for (int i = 0; i < net->n_layers && n < max; i++) {
        zf_op op = net->layers[i].op;
        if (op == ZF_OP_CONV || op == ZF_OP_MAXPOOL || (op == ZF_OP_FC && i != last_fc))
            layers[n++] = i;
    }
    return n;
}

static void grid_of(const zf_layer *l, int grid, int *gh, int *gw)
{
    *gh = grid <= 0 || grid > l->out_h ? l->out_h : grid;
    *gw = grid <= 0 || grid > l->out_w ? l->out_w : grid;
}

int64_t zf_probe_dim(const zf_net *net, int layer, int grid)
{
    int gh, gw;
    grid_of(&net->layers[layer], grid, &gh, &gw);
    return (int64_t)net->layers[layer].out_c * gh * gw;
}

/* One image's map (c, h, w) averaged into (c, gh, gw) bins. */
static void pool_bins(float *out, const float *map, int c, int h, int w, int gh, int gw)
{
    for (int ch = 0; ch < c; ch++) {
        const float *m = map + (size_t)ch * h * w;
        for (int i = 0; i < gh; i++) {
            int y0 = i * h / gh, y1 = ((i + 1) * h + gh - 1) / gh;
            for (int j = 0; j < gw; j++) {
                int x0 = j * w / gw, x1 = ((j + 1) * w + gw - 1) / gw;
                double s = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        s += m[(size_t)y * w + x];
                *out++ = (float)(s / ((y1 - y0) * (x1 - x0)));
            }
        }
    }
}

zf_status zf_probe_features(zf_engine *e, const zf_dataset *ds, const int *layers, int n_layers, int grid,
                            int batch, float **out, zf_probe_progress progress, void *ctx)
{
    zf_net *net = zf_engine_net(e);
    int top = -1;
    for (int k = 0; k < n_layers; k++) {
        out[k] = NULL;
        if (layers[k] < 0 || layers[k] >= net->n_layers)
            return zf_error(ZF_ERR_ARG, "%s: no layer %d to probe", net->arch, layers[k]);
        if (layers[k] > top)
            top = layers[k];
    }
    if (batch < 1)
        return zf_error(ZF_ERR_ARG, "probe: batch %d is not positive", batch);
    zf_status st = zf_engine_reserve_host(e, batch);
    float *input = NULL;
    int64_t *idx = NULL;
    if (!st) {
        input = zf_alloc(sizeof(float) * (size_t)batch * (size_t)zf_net_in_size(net));
        idx = malloc(sizeof *idx * (size_t)batch);
        if (!input || !idx)
            st = zf_error(ZF_ERR_NOMEM, "probe: out of memory for a batch of %d", batch);
    }
    for (int k = 0; k < n_layers && !st; k++) {
        out[k] = zf_alloc(sizeof(float) * (size_t)ds->n * (size_t)zf_probe_dim(net, layers[k], grid));
        if (!out[k])
            st = zf_error(ZF_ERR_NOMEM, "probe: out of memory for %lld images' features of %s",
                          (long long)ds->n, net->layers[layers[k]].name);
    }
    for (int64_t at = 0; at < ds->n && !st; at += batch) {
        int n = ds->n - at < batch ? (int)(ds->n - at) : batch;
        for (int i = 0; i < n; i++)
            idx[i] = at + i;
        if ((st = zf_dataset_batch(input, NULL, ds, idx, n, net, NULL, 0)) ||
            (st = zf_engine_forward_layers(e, input, n, top, layers, n_layers)))
            break;
        for (int k = 0; k < n_layers; k++) {
            const zf_layer *l = &net->layers[layers[k]];
            int gh, gw;
            grid_of(l, grid, &gh, &gw);
            int64_t d = (int64_t)l->out_c * gh * gw, size = zf_layer_out_size(l);
            for (int i = 0; i < n; i++)
                pool_bins(out[k] + (size_t)(at + i) * d, net->acts[layers[k]] + (size_t)i * size, l->out_c,
                          l->out_h, l->out_w, gh, gw);
        }
        if (progress && progress(ctx, at + n, ds->n))
            st = zf_error(ZF_ERR_INTERRUPTED, "probe: stopped");
    }
    zf_free(input);
    free(idx);
    if (st)
        for (int k = 0; k < n_layers; k++) {
            zf_free(out[k]);
            out[k] = NULL;
        }
    return st;
}

void zf_probe_moments(float *mean, float *std, const float *x, int64_t n, int64_t d)
{
    for (int64_t j = 0; j < d; j++) {
        double s = 0, ss = 0;
        for (int64_t i = 0; i < n; i++)
            s += x[i * d + j];
        double m = n ? s / n : 0;
        for (int64_t i = 0; i < n; i++) {
            double e = x[i * d + j] - m;
            ss += e * e;
        }
        double sd = n ? sqrt(ss / n) : 0;
        mean[j] = (float)m;
        std[j] = sd < 1e-6 ? 1.0f : (float)sd;
    }
}

void zf_probe_standardize(float *x, int64_t n, int64_t d, const float *mean, const float *std)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = (x[i * d + j] - mean[j]) / std[j];
}

zf_probe_opts zf_probe_defaults(void)
{
    zf_probe_opts o = {1e-3, 500, 1e-5};
    return o;
}

/* The problem and its scratch: theta = (W row-major (k, d), b (k)). */
typedef struct {
    const float *x;
    const int32_t *y;
    int64_t n, d;
    int k;
    double l2;
    float *wf, *z, *gf; /* W in float (k, d), logits (n, k), float gradient of W (k, d) */
} lin_problem;

/* The objective at theta and its gradient g. */
static double objective(lin_problem *p, const double *theta, double *g)
{
    int64_t n = p->n, d = p->d, kd = (int64_t)p->k * d;
    int k = p->k;
    for (int64_t i = 0; i < kd; i++)
        p->wf[i] = (float)theta[i];
    zf_sgemm('N', 'T', (int)n, k, (int)d, 1.0f, p->x, (int)d, p->wf, (int)d,
                0.0f, p->z, k);
    double loss = 0, zd[256] = {0};
    memset(g + kd, 0, sizeof(double) * (size_t)k);
    for (int64_t i = 0; i < n; i++) {
        float *z = p->z + i * k;
        double m = -INFINITY, s = 0;
        for (int c = 0; c < k; c++) {
            zd[c] = (double)z[c] + theta[kd + c];
            m = zd[c] > m ? zd[c] : m;
        }
        for (int c = 0; c < k; c++)
            s += exp(zd[c] - m);
        loss += log(s) + m - zd[p->y[i]];
        for (int c = 0; c < k; c++) {
            double r = (exp(zd[c] - m) / s - (c == p->y[i])) / (double)n;
            z[c] = (float)r;
            g[kd + c] += r;
        }
    }
    zf_sgemm('T', 'N', k, (int)d, (int)n, 1.0f, p->z, k, p->x, (int)d, 0.0f,
                p->gf, (int)d);
    double reg = 0;
    for (int64_t i = 0; i < kd; i++) {
        g[i] = (double)p->gf[i] + p->l2 * theta[i];
        reg += theta[i] * theta[i];
    }
    return loss / (double)n + 0.5 * p->l2 * reg;
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

#define LBFGS_M 10

zf_status zf_probe_fit(double *W, double *b, const float *x, const int32_t *y, int64_t n, int64_t d, int k,
                       const zf_probe_opts *opts, zf_probe_fit_info *info)
{
    zf_probe_opts o = opts ? *opts : zf_probe_defaults();
    if (n < 1 || d < 1 || k < 2 || k > 256)
        return zf_error(ZF_ERR_ARG, "probe: %lld samples of %lld features in %d classes cannot be fitted "
                                    "(1 sample, 1 feature and 2 to 256 classes at least)",
                        (long long)n, (long long)d, k);
    if ((int64_t)(int)n != n || (int64_t)(int)d != d)
        return zf_error(ZF_ERR_ARG, "probe: %lld x %lld features are too many", (long long)n, (long long)d);
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= k)
            return zf_error(ZF_ERR_ARG, "probe: sample %lld has label %d, outside 0..%d", (long long)i, y[i], k - 1);
    int64_t kd = (int64_t)k * d, D = kd + k;
    lin_problem p = {x, y, n, d, k, o.l2, NULL, NULL, NULL};
    p.wf = malloc(sizeof(float) * (size_t)kd);
    p.gf = malloc(sizeof(float) * (size_t)kd);
    p.z = malloc(sizeof(float) * (size_t)n * (size_t)k);
    double *buf = calloc((size_t)D * (5 + 2 * LBFGS_M), sizeof(double));
    if (!p.wf || !p.gf || !p.z || !buf) {
        free(p.wf);
        free(p.gf);
        free(p.z);
        free(buf);
        return zf_error(ZF_ERR_NOMEM, "probe: out of memory for a classifier of %lld x %d", (long long)d, k);
    }
    double *theta = buf, *g = buf + D, *dir = buf + 2 * D, *theta2 = buf + 3 * D, *g2 = buf + 4 * D;
    double *S = buf + 5 * D, *Y = S + LBFGS_M * D, rho[LBFGS_M], alpha[LBFGS_M];
    int used = 0, head = 0, it = 0;
    double f = objective(&p, theta, g);
    for (; it < o.iters && max_abs(g, D) > o.tol; it++) {
        /* two-loop recursion: dir = -H g */
        for (int64_t i = 0; i < D; i++)
            dir[i] = -g[i];
        for (int j = 0; j < used; j++) {
            int q = (head - 1 - j + LBFGS_M) % LBFGS_M;
            alpha[q] = rho[q] * dot(S + q * D, dir, D);
            for (int64_t i = 0; i < D; i++)
                dir[i] -= alpha[q] * Y[q * D + i];
        }
        double gamma = 1;
        if (used) {
            int q = (head - 1 + LBFGS_M) % LBFGS_M;
            gamma = dot(S + q * D, Y + q * D, D) / dot(Y + q * D, Y + q * D, D);
        }
        for (int64_t i = 0; i < D; i++)
            dir[i] *= gamma;
        for (int j = used - 1; j >= 0; j--) {
            int q = (head - 1 - j + LBFGS_M) % LBFGS_M;
            double beta = rho[q] * dot(Y + q * D, dir, D);
            for (int64_t i = 0; i < D; i++)
                dir[i] += (alpha[q] - beta) * S[q * D + i];
        }
        double slope = dot(g, dir, D);
        if (slope >= 0) { /* not a descent direction: start over from the gradient */
            used = 0;
            for (int64_t i = 0; i < D; i++)
                dir[i] = -g[i];
            slope = dot(g, dir, D);
        }
        double t = used ? 1.0 : 1.0 / sqrt(dot(g, g, D)), f2 = f;
        int found = 0;
        for (int ls = 0; ls < 40 && !found; ls++, t *= 0.5) {
            for (int64_t i = 0; i < D; i++)
                theta2[i] = theta[i] + t * dir[i];
            f2 = objective(&p, theta2, g2);
            found = f2 <= f + 1e-4 * t * slope;
        }
        if (!found)
            break; /* no decrease left at float precision: as converged as it gets */
        double *s = S + head * D, *yv = Y + head * D;
        for (int64_t i = 0; i < D; i++) {
            s[i] = theta2[i] - theta[i];
            yv[i] = g2[i] - g[i];
        }
        double sy = dot(s, yv, D);
        if (sy > 1e-12) {
            rho[head] = 1 / sy;
            head = (head + 1) % LBFGS_M;
            used += used < LBFGS_M;
        }
        memcpy(theta, theta2, sizeof(double) * (size_t)D);
        memcpy(g, g2, sizeof(double) * (size_t)D);
        f = f2;
    }
    memcpy(W, theta, sizeof(double) * (size_t)kd);
    memcpy(b, theta + kd, sizeof(double) * (size_t)k);
    if (info) {
        info->iters = it;
        info->loss = f;
        info->grad = max_abs(g, D);
    }
    free(p.wf);
    free(p.gf);
    free(p.z);
    free(buf);
    return ZF_OK;
}

double zf_probe_accuracy(const double *W, const double *b, const float *x, const int32_t *y, int64_t n,
                         int64_t d, int k)
{
    if (n < 1)
        return NAN;
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double bz = -INFINITY;
        for (int c = 0; c < k; c++) {
            double z = b[c];
            const double *w = W + (int64_t)c * d;
            const float *xi = x + i * d;
            for (int64_t j = 0; j < d; j++)
                z += w[j] * xi[j];
            if (z > bz) {
                bz = z;
                best = c;
            }
        }
        right += best == y[i];
    }
    return (double)right / (double)n;
}
