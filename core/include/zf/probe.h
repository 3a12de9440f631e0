/* Linear probes (Zeiler & Fergus section 5.3, the per-layer table): a frozen net's features at
 * chosen layers, and a multinomial logistic regression (softmax) classifier trained on them. */
#ifndef ZF_PROBE_H
#define ZF_PROBE_H

#include <stdint.h>

#include "zf/dataset.h"
#include "zf/engine.h"
#include "zf/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The layer whose output stands for `name` in a probe: a conv or fc layer followed by a ReLU
 * gives the ReLU (its rectified output, as the deconvnet takes it); any other layer is itself.
 * -1 when the net has no such layer. */
int zf_probe_resolve(const zf_net *net, const char *name);
/* The default layers (net layer names, in net order): every conv, every max-pool and every fc
 * but the last (the classifier). Writes up to max names' layer indices; returns the count. */
int zf_probe_default_layers(const zf_net *net, int *layers, int max);

/* Features of layer `layer` (an index from zf_probe_resolve): a map of c x h x w is averaged
 * over a gh x gw grid of bins, gh = min(grid, h) and gw = min(grid, w), bin i spanning rows
 * floor(i h / gh) .. ceil((i + 1) h / gh) - 1 (PyTorch's adaptive average pooling), and
 * flattened (c, gh, gw); grid 0 keeps the whole map. Flat outputs (fc) are taken as they are.
 * Returns the feature count. */
int64_t zf_probe_dim(const zf_net *net, int layer, int grid);

typedef int (*zf_probe_progress)(void *ctx, int64_t done, int64_t total);
/* Runs ds through the engine's net on the engine (no augmentation: the centre window, as
 * zf_evaluate) in batches of `batch` and writes each layer's features, out[k] being
 * (ds->n, zf_probe_dim(net, layers[k], grid)), allocated here (zf_alloc; the caller zf_free's each). */
zf_status zf_probe_features(zf_engine *e, const zf_dataset *ds, const int *layers, int n_layers, int grid,
                            int batch, float **out, zf_probe_progress progress, void *ctx);

/* Feature standardisation: mean and population standard deviation of each column of x (n, d)
 * over its rows, a deviation below 1e-6 taken as 1 (a constant feature becomes 0). */
void zf_probe_moments(float *mean, float *std, const float *x, int64_t n, int64_t d);
/* x[i][j] = (x[i][j] - mean[j]) / std[j] in place. */
void zf_probe_standardize(float *x, int64_t n, int64_t d, const float *mean, const float *std);

/* The classifier: logits z = W x + b on standardised features, W (k, d), b (k). Trained to the
 * minimum of mean softmax cross-entropy + l2 / 2 * |W|^2 (b not penalised) from W = b = 0 by
 * full-batch L-BFGS (10 pairs, backtracking Armijo line search): deterministic, and for l2 > 0 the
 * minimum is unique, so any converged optimiser reaches the same classifier. */
typedef struct zf_probe_opts {
    double l2;      /* default 1e-3 */
    int iters;      /* L-BFGS iterations at most (default 500) */
    double tol;     /* stop when the largest gradient component is below this (default 1e-5) */
} zf_probe_opts;
zf_probe_opts zf_probe_defaults(void);

typedef struct zf_probe_fit_info {
    int iters;      /* iterations done */
    double loss;    /* the objective at the end */
    double grad;    /* its largest gradient component */
} zf_probe_fit_info;

/* Trains on x (n, d), already standardised, labels y in [0, k). W (k, d) and b (k) are written
 * (float64). info may be NULL. */
zf_status zf_probe_fit(double *W, double *b, const float *x, const int32_t *y, int64_t n, int64_t d, int k,
                       const zf_probe_opts *opts, zf_probe_fit_info *info);
/* Top-1 accuracy of the classifier on x (n, d), standardised as in training (first on ties). */
double zf_probe_accuracy(const double *W, const double *b, const float *x, const int32_t *y, int64_t n,
                         int64_t d, int k);

#ifdef __cplusplus
}
#endif
#endif
