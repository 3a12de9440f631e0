/* Training on the CPU engine: backpropagation through a net, SGD with momentum and weight decay,
 * Zeiler & Fergus's filter renormalisation, and the epoch loop with checkpoints and resume. */
#ifndef ZF_TRAIN_H
#define ZF_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "zf/dataset.h"
#include "zf/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The update, as PyTorch's SGD does it: g' = g + weight_decay * w (weights only; biases are not
 * decayed, as in Caffe's bvlc_alexnet), v = momentum * v + g', w = w - lr * v. Then, when
 * renorm > 0, every conv filter whose RMS exceeds renorm is scaled back to RMS renorm (ZF 2014,
 * section 3: radius 1e-1). */
typedef struct zf_sgd {
    float lr, momentum, weight_decay, renorm;
} zf_sgd;

/* Buffers for backpropagation through `net` at batches of up to `batch` images. */
typedef struct zf_trainer {
    zf_net *net;
    int batch;
    int logits;         /* the layer whose output the loss reads (the fc before the softmax) */
    float *grad;        /* dL/dparams, laid out like net->params */
    float *momentum;    /* SGD velocity, laid out like net->params */
    float *d[2];        /* gradients w.r.t. activations, ping-pong */
    size_t d_floats;
    uint8_t **masks;    /* dropout layers: the batch's keep mask */
    float *ws;          /* conv scratch for the weight gradient */
    size_t ws_floats;
} zf_trainer;

zf_status zf_trainer_new(zf_net *net, int batch, zf_trainer **out);
void zf_trainer_free(zf_trainer *t);

/* Forward n images with dropout on (masks from `seed`), softmax cross-entropy against labels,
 * and backward: t->grad holds the gradient of the mean loss. loss (mean) and correct (top-1
 * count) may be NULL. */
zf_status zf_trainer_backprop(zf_trainer *t, const float *input, const int32_t *labels, int n,
                              uint64_t seed, double *loss, int *correct);
/* The key of dropout layer `layer`'s mask in a step seeded `seed`: element i of the mask keeps
 * where the top 32 bits of SplitMix64's finaliser of key + i * 0x9e3779b97f4a7c15 reach
 * p * 2^32 (zf_dropout_forward_train). For another engine's training step to draw the same masks. */
uint64_t zf_train_dropout_key(uint64_t seed, int layer);
/* One SGD update of net's parameters from t->grad (see zf_sgd). */
void zf_trainer_update(zf_trainer *t, const zf_sgd *opt);

/* ZF's rule on its own: scales each conv filter (one output channel's weights) whose RMS exceeds
 * radius down to RMS radius. Returns how many filters were scaled. */
int zf_net_renorm_filters(zf_net *net, float radius);

/* The training initialisation: He et al. (2015) normal weights, std sqrt(2 / fan_in), for conv and
 * fc layers, except the last fc at N(0, 0.01) so the first losses are near log(classes); zero
 * biases. Deterministic for a seed (the generator of random:SEED). */
zf_status zf_net_init_he(zf_net *net, uint64_t seed);

/* The AlexNet paper's initialisation (Krizhevsky et al. 2012, section 5): every conv and fc weight
 * N(0, std) (0.01 in the paper), biases 1 in the second, fourth and fifth conv layers and in the fc
 * layers before the last (the paper's conv2, conv4, conv5, fc6, fc7), 0 elsewhere. Deterministic for
 * a seed. */
zf_status zf_net_init_gauss(zf_net *net, uint64_t seed, float std);

/* Redraws the first conv layer's weights from N(0, std) (the same generator, so deterministic for
 * a seed) and zeroes its bias: a small start for the first layer, whose filters then hold little of
 * the initial noise once training has grown them. */
zf_status zf_net_init_first_conv(zf_net *net, uint64_t seed, float std);

/* The epoch loop. */
typedef struct zf_train_config {
    int epochs, batch;
    zf_sgd sgd;                  /* sgd.lr is the starting rate */
    int lr_steps[16], n_lr_steps;/* the rate is multiplied by lr_gamma at the start of each listed epoch (1-based) */
    float lr_gamma;
    uint64_t seed;
    zf_augment aug;              /* augmentation of training batches */
    const char *checkpoint;      /* written at every epoch end, every checkpoint_s seconds and when
                                    stopped; NULL: none */
    double checkpoint_s;
    const char *const *meta_kv;  /* extra metadata for checkpoints (the command line, ...) */
} zf_train_config;

typedef struct zf_epoch_stats {
    int epoch;                   /* 1-based */
    double lr;
    double train_loss, train_acc;/* over the epoch's training batches (dropout and augmentation on) */
    double val_loss, val_acc, val_top5;
    double seconds, images_per_s;
} zf_epoch_stats;

typedef struct zf_train_hooks {
    void *ctx;
    /* After each step; a nonzero return stops training (a checkpoint is written first). */
    int (*on_step)(void *ctx, int epoch, int64_t step, int64_t steps, double loss, double acc,
                   double images_per_s);
    /* After each epoch's validation (and after its checkpoint). */
    zf_status (*on_epoch)(void *ctx, const zf_epoch_stats *s, const zf_net *net);
    /* After each checkpoint is written. */
    void (*on_checkpoint)(void *ctx, int epoch, int64_t step);
} zf_train_hooks;

/* Trains net (its weights as they are: zf_net_init_he first for a fresh run) on `train`, validating on
 * `val` (may be NULL) after each epoch. With `resume`, the state is read back from cfg->checkpoint
 * (weights, momentum, epoch and step, the epoch's running loss) and training goes on from there,
 * producing the same weights as an uninterrupted run. Returns ZF_ERR_INTERRUPTED when a hook or
 * zf_interrupted stopped it (after writing the checkpoint). */
zf_status zf_train_run(zf_net *net, const zf_dataset *train, const zf_dataset *val,
                       const zf_train_config *cfg, int resume, const zf_train_hooks *hooks);
/* zf_train_run on an open engine (zf/engine.h) that has training: the steps, updates and validation
 * run there, and the weights and momentum come to the host for checkpoints and for each epoch's
 * hook. A checkpoint written on one engine resumes on another. The engine's net is the one
 * trained; on return net->params holds the weights trained so far. */
struct zf_engine;
zf_status zf_train_run_on(struct zf_engine *e, const zf_dataset *train, const zf_dataset *val,
                          const zf_train_config *cfg, int resume, const zf_train_hooks *hooks);

/* Top-1/top-5 accuracy and mean cross-entropy of net on ds (no augmentation), in batches: the CPU
 * engine's zf_engine_evaluate (zf/engine.h). */
typedef int (*zf_eval_progress)(void *ctx, int64_t done, int64_t total);
zf_status zf_evaluate(zf_net *net, const zf_dataset *ds, int batch, double *top1, double *top5,
                      double *loss, zf_eval_progress progress, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
