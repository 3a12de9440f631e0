/* Backpropagation through a chain net, SGD with momentum, ZF's filter renormalisation, and the
 * epoch loop with exact resume. The forward runs the engine's own layers (zf_net_forward_range)
 * except dropout, which here keeps a mask; the backward walks the chain once, ping-ponging two
 * gradient buffers, and skips the data gradient of the first layer (nothing needs it). */
#include "zf/alloc.h"
#include "zf/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_internal.h"
#include "zf/backward.h"
#include "zf/clock.h"
#include "zf/engine.h"
#include "zf/model.h"
#include "zf/tensor.h"

/* The first output of SplitMix64 started at x (the golden increment, then the mixer). */
static uint64_t mix64(uint64_t x) { return zf_splitmix64(&x); }

static uint64_t seed_of(uint64_t seed, uint64_t a, uint64_t b) { return mix64(mix64(seed ^ mix64(a)) ^ b); }

/* The seed zf_trainer_backprop gives dropout layer `layer`'s zf_dropout_forward_train. */
static uint64_t dropout_seed(uint64_t seed, int layer) { return seed_of(seed, (uint64_t)layer, 0); }

uint64_t zf_train_dropout_key(uint64_t seed, int layer) { return zf_dropout_key(dropout_seed(seed, layer)); }

void zf_trainer_free(zf_trainer *t)
{
    if (!t)
        return;
    zf_free(t->grad);
    zf_free(t->momentum);
    zf_free(t->d[0]);
    zf_free(t->d[1]);
    zf_free(t->ws);
    if (t->masks)
        for (int i = 0; i < t->net->n_layers; i++)
            free(t->masks[i]);
    free(t->masks);
    free(t);
}

zf_status zf_trainer_new(zf_net *net, int batch, zf_trainer **out)
{
    *out = NULL;
    int last = net->n_layers - 1;
    if (last < 0 || net->layers[last].op != ZF_OP_SOFTMAX || last < 1 ||
        net->layers[last - 1].op != ZF_OP_FC)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: training needs a net ending in fc + softmax", net->arch);
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_CONV && net->layers[i].weight_count == 0)
            return zf_error(ZF_ERR_ARG, "%s: net not finalised", net->arch);
    zf_status st = zf_net_reserve(net, batch);
    if (st)
        return st;
    zf_trainer *t = zf_calloc(1, sizeof *t);
    if (!t)
        return zf_error(ZF_ERR_NOMEM, "out of memory for a trainer");
    t->net = net;
    t->batch = batch;
    t->logits = last - 1;
    size_t biggest = (size_t)zf_net_in_size(net), ws = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if ((size_t)zf_layer_out_size(l) > biggest)
            biggest = (size_t)zf_layer_out_size(l);
        if (l->op == ZF_OP_CONV) {
            zf_conv_geom g = zf_layer_conv_geom(l, batch);
            size_t a = zf_conv_backward_weights_ws_floats(&g), b = zf_conv_workspace_floats(&g);
            if (a > ws)
                ws = a;
            if (b > ws)
                ws = b;
        }
    }
    t->d_floats = biggest * (size_t)batch;
    t->ws_floats = ws ? ws : 1;
    t->grad = zf_alloc(sizeof(float) * (size_t)net->n_params);
    t->momentum = zf_alloc(sizeof(float) * (size_t)net->n_params);
    t->d[0] = zf_alloc(sizeof(float) * t->d_floats);
    t->d[1] = zf_alloc(sizeof(float) * t->d_floats);
    t->ws = zf_alloc(sizeof(float) * t->ws_floats);
    t->masks = zf_calloc((size_t)net->n_layers, sizeof *t->masks);
    int bad = !t->grad || !t->momentum || !t->d[0] || !t->d[1] || !t->ws || !t->masks;
    for (int i = 0; !bad && i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_DROPOUT)
            bad = !(t->masks[i] = zf_malloc((size_t)zf_layer_out_size(&net->layers[i]) * (size_t)batch));
    if (bad) {
        zf_trainer_free(t);
        return zf_error(ZF_ERR_NOMEM, "out of memory for training %s at batch %d", net->arch, batch);
    }
    memset(t->grad, 0, sizeof(float) * (size_t)net->n_params);
    memset(t->momentum, 0, sizeof(float) * (size_t)net->n_params);
    *out = t;
    return ZF_OK;
}

zf_status zf_trainer_backprop(zf_trainer *t, const float *input, const int32_t *labels, int n,
                              uint64_t seed, double *loss, int *correct)
{
    zf_net *net = t->net;
    if (n < 1 || n > t->batch)
        return zf_error(ZF_ERR_ARG, "batch of %d for a trainer of %d", n, t->batch);
    if (input != net->input)
        memcpy(net->input, input, sizeof(float) * (size_t)zf_net_in_size(net) * (size_t)n);
    /* Forward up to the logits, dropout with masks. */
    for (int i = 0; i <= t->logits; i++) {
        zf_layer *l = &net->layers[i];
        if (l->op == ZF_OP_DROPOUT) {
            size_t count = (size_t)zf_layer_out_size(l) * (size_t)n;
            zf_dropout_forward_train(net->acts[i], t->masks[i], zf_net_act(net, i - 1), count,
                                     l->dropout_p, dropout_seed(seed, i));
        } else {
            zf_status st = zf_net_forward_range(net, i, i, n);
            if (st)
                return st;
        }
    }
    const zf_layer *ll = &net->layers[t->logits];
    int k = ll->out_c;
    float *dcur = t->d[0], *dother = t->d[1];
    double L = zf_softmax_xent(NULL, dcur, net->acts[t->logits], labels, n, k);
    if (correct) {
        int c = 0;
        for (int b = 0; b < n; b++)
            c += zf_argmax(net->acts[t->logits] + (size_t)b * k, k) == labels[b];
        *correct = c;
    }
    if (loss)
        *loss = L;
    /* Backward. dcur holds dL/d(output of layer i). */
    for (int i = t->logits; i >= 0; i--) {
        zf_layer *l = &net->layers[i];
        const float *in = zf_net_act(net, i - 1);
        const float *out = net->acts[i];
        size_t out_count = (size_t)zf_layer_out_size(l) * (size_t)n;
        int need_din = i > 0;
        float *gw = l->weight ? t->grad + (l->weight - net->params) : NULL;
        float *gb = l->bias ? t->grad + (l->bias - net->params) : NULL;
        int to_other = 0; /* the data gradient went into dother */
        switch (l->op) {
        case ZF_OP_CONV: {
            zf_conv_geom g = zf_layer_conv_geom(l, n);
            zf_conv_backward_weights(gw, gb, in, dcur, &g, t->ws);
            if (need_din)
                zf_conv_backward_data(dother, dcur, l->weight, &g, t->ws);
            to_other = need_din;
            break;
        }
        case ZF_OP_FC:
            zf_fc_backward(need_din ? dother : NULL, gw, gb, dcur, in, l->weight, n,
                           (int)zf_layer_in_size(l), l->out_c);
            to_other = need_din;
            break;
        case ZF_OP_RELU:
            zf_relu_backward(dcur, dcur, out, out_count);
            break;
        case ZF_OP_DROPOUT:
            zf_dropout_backward(dcur, dcur, t->masks[i], out_count, l->dropout_p);
            break;
        case ZF_OP_FLATTEN:
            break;
        case ZF_OP_LRN:
            if (need_din)
                zf_lrn_backward(dother, dcur, in, n, l->in_c, l->in_h * l->in_w, &l->lrn);
            to_other = need_din;
            break;
        case ZF_OP_MAXPOOL:
            if (need_din) {
                zf_pool_geom g = zf_layer_pool_geom(l, n);
                zf_maxpool_unpool(dother, dcur, net->switches[i], &g);
            }
            to_other = need_din;
            break;
        case ZF_OP_AVGPOOL:
            if (need_din) {
                zf_pool_geom g = zf_layer_pool_geom(l, n);
                zf_avgpool_backward(dother, dcur, &g, l->count_include_pad);
            }
            to_other = need_din;
            break;
        case ZF_OP_ADAPTIVE_AVGPOOL:
            if (need_din)
                zf_adaptive_avgpool_backward(dother, dcur, n, l->in_c, l->in_h, l->in_w, l->out_h,
                                             l->out_w);
            to_other = need_din;
            break;
        case ZF_OP_SOFTMAX:
            return zf_error(ZF_ERR_UNSUPPORTED, "%s: a softmax inside the net (layer %s)", net->arch,
                            l->name);
        }
        if (to_other) {
            float *s = dcur;
            dcur = dother;
            dother = s;
        }
    }
    return ZF_OK;
}

int zf_net_renorm_filters(zf_net *net, float radius)
{
    int scaled = 0;
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_CONV)
            continue;
        int64_t per = l->weight_count / l->out_c;
        for (int f = 0; f < l->out_c; f++) {
            float *w = l->weight + (size_t)f * per;
            double ss = 0;
            for (int64_t j = 0; j < per; j++)
                ss += (double)w[j] * w[j];
            double rms = sqrt(ss / (double)per);
            if (rms > radius) {
                float s = (float)(radius / rms);
                for (int64_t j = 0; j < per; j++)
                    w[j] *= s;
                scaled++;
            }
        }
    }
    return scaled;
}

void zf_trainer_update(zf_trainer *t, const zf_sgd *opt)
{
    zf_net *net = t->net;
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        for (int b = 0; b < 2; b++) {
            float *w = b ? l->bias : l->weight;
            int64_t count = b ? l->bias_count : l->weight_count;
            if (!w || count == 0)
                continue;
            const float *g = t->grad + (w - net->params);
            float *v = t->momentum + (w - net->params);
            float wd = b ? 0.0f : opt->weight_decay, mom = opt->momentum, lr = opt->lr;
#pragma omp parallel for schedule(static) if (count > 65536)
            for (int64_t j = 0; j < count; j++) {
                float gj = g[j] + wd * w[j];
                v[j] = mom * v[j] + gj;
                w[j] -= lr * v[j];
            }
        }
    }
    if (opt->renorm > 0)
        zf_net_renorm_filters(net, opt->renorm);
}

zf_status zf_net_init_he(zf_net *net, uint64_t seed)
{
    zf_status st = zf_net_init_random(net, seed);
    if (st)
        return st;
    int last_fc = -1;
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_FC)
            last_fc = i;
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if ((l->op != ZF_OP_CONV && l->op != ZF_OP_FC) || i == last_fc)
            continue;
        double fan_in = (double)l->weight_count / l->out_c;
        float s = (float)(sqrt(2.0 / fan_in) / 0.01);
        for (int64_t j = 0; j < l->weight_count; j++)
            l->weight[j] *= s;
    }
    return ZF_OK;
}

/* The layers the AlexNet paper starts with bias 1: conv layers 2, 4 and 5 (1-based, counting conv
 * layers) and every fc layer but the last. */
static int alexnet_bias_one(const zf_net *net, int layer)
{
    const zf_layer *l = &net->layers[layer];
    int conv = 0, last_fc = -1;
    for (int i = 0; i < net->n_layers; i++) {
        if (net->layers[i].op == ZF_OP_FC)
            last_fc = i;
        if (net->layers[i].op == ZF_OP_CONV && i <= layer)
            conv++;
    }
    if (l->op == ZF_OP_CONV)
        return conv == 2 || conv == 4 || conv == 5;
    return l->op == ZF_OP_FC && layer != last_fc;
}

zf_status zf_net_init_gauss(zf_net *net, uint64_t seed, float std)
{
    if (!(std > 0) || !isfinite(std))
        return zf_error(ZF_ERR_ARG, "initialisation: the weights' standard deviation must be positive, got %g",
                        (double)std);
    zf_status st = zf_net_init_random(net, seed);
    if (st)
        return st;
    float s = std / 0.01f;
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_CONV && l->op != ZF_OP_FC)
            continue;
        for (int64_t j = 0; j < l->weight_count; j++)
            l->weight[j] *= s;
        if (alexnet_bias_one(net, i))
            for (int64_t j = 0; j < l->bias_count; j++)
                l->bias[j] = 1.0f;
    }
    return ZF_OK;
}

zf_status zf_net_init_first_conv(zf_net *net, uint64_t seed, float std)
{
    if (!(std > 0) || !isfinite(std))
        return zf_error(ZF_ERR_ARG, "initialisation: the first layer's standard deviation must be positive, got %g",
                        (double)std);
    int first = -1;
    for (int i = 0; i < net->n_layers && first < 0; i++)
        if (net->layers[i].op == ZF_OP_CONV)
            first = i;
    if (first < 0)
        return zf_error(ZF_ERR_ARG, "initialisation: the net has no conv layer");
    /* zf_net_init_random draws every layer (keyed by seed and layer name); the other layers keep
     * what they had from a copy. */
    zf_layer *l = &net->layers[first];
    size_t bytes = sizeof(float) * (size_t)(net->n_params);
    float *keep = malloc(bytes);
    if (!keep)
        return zf_error(ZF_ERR_NOMEM, "initialisation: out of memory");
    memcpy(keep, net->params, bytes);
    zf_status st = zf_net_init_random(net, seed);
    if (!st) {
        int64_t off = l->weight - net->params, n = l->weight_count;
        float s = std / 0.01f;
        for (int64_t j = 0; j < n; j++)
            keep[off + j] = l->weight[j] * s;
        if (l->bias_count)
            memset(keep + (l->bias - net->params), 0, sizeof(float) * (size_t)l->bias_count);
    }
    memcpy(net->params, keep, bytes);
    free(keep);
    return st;
}

/* ---- evaluation ---- */

zf_status zf_evaluate(zf_net *net, const zf_dataset *ds, int batch, double *top1, double *top5,
                      double *loss, zf_eval_progress progress, void *ctx)
{
    /* the CPU engine through the table: one evaluation loop for every engine */
    zf_engine *e;
    const zf_engine_opts o = {.batch = batch};
    zf_status st = zf_engine_open(zf_engine_list()[0], net, &o, &e);
    if (st)
        return st;
    st = zf_engine_evaluate(e, ds, batch, top1, top5, loss, progress, ctx);
    zf_engine_close(e);
    return st;
}

/* ---- the epoch loop ---- */

static double lr_at(const zf_train_config *cfg, int epoch)
{
    double lr = cfg->sgd.lr;
    for (int i = 0; i < cfg->n_lr_steps; i++)
        if (epoch >= cfg->lr_steps[i])
            lr *= cfg->lr_gamma;
    return lr;
}

/* What a checkpoint records beyond weights and momentum: where the run is and the running sums
 * of the epoch in progress, and the settings that must match on resume. */
typedef struct {
    int epoch;      /* 1-based epoch in progress (epochs done + 1) */
    int64_t step;   /* steps of it done */
    double loss_sum;
    int64_t correct, seen;
    double seconds; /* training time spent in this epoch so far */
} run_state;

/* Brings the engine's weights and momentum to the host and writes the checkpoint. */
static zf_status save_checkpoint(zf_engine *e, const zf_train_config *cfg, const run_state *rs)
{
    const float *momentum;
    zf_status st = zf_engine_train_state(e, &momentum);
    if (st)
        return st;
    char epoch[32], step[32], loss[64], correct[32], seen[32], secs[64], seed[32], batch[32], lr[64];
    snprintf(epoch, sizeof epoch, "%d", rs->epoch);
    snprintf(step, sizeof step, "%lld", (long long)rs->step);
    snprintf(loss, sizeof loss, "%.17g", rs->loss_sum);
    snprintf(correct, sizeof correct, "%lld", (long long)rs->correct);
    snprintf(seen, sizeof seen, "%lld", (long long)rs->seen);
    snprintf(secs, sizeof secs, "%.17g", rs->seconds);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)cfg->seed);
    snprintf(batch, sizeof batch, "%d", cfg->batch);
    snprintf(lr, sizeof lr, "%.9g", cfg->sgd.lr);
    int extra = 0;
    while (cfg->meta_kv && cfg->meta_kv[extra])
        extra += 2;
    const char *kv[40];
    int k = 0;
    const char *base[] = {"zfviz.train.epoch", epoch, "zfviz.train.step", step,
                          "zfviz.train.loss_sum", loss, "zfviz.train.correct", correct,
                          "zfviz.train.seen", seen, "zfviz.train.seconds", secs,
                          "zfviz.train.seed", seed, "zfviz.train.batch", batch, "zfviz.train.lr", lr};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        kv[k++] = base[i];
    for (int i = 0; i < extra && k < 38; i++)
        kv[k++] = cfg->meta_kv[i];
    kv[k] = NULL;
    return zf_model_save(zf_engine_net(e), cfg->checkpoint, kv, momentum);
}

/* The weights into net->params, the momentum into `momentum` (net->n_params floats). */
static zf_status load_checkpoint(zf_net *net, float *momentum, const zf_train_config *cfg, run_state *rs)
{
    zf_meta m;
    zf_status st = zf_model_load_checkpoint(net, cfg->checkpoint, momentum, &m);
    if (st)
        return st;
    const char *e = zf_meta_get(&m, "zfviz.train.epoch"), *s = zf_meta_get(&m, "zfviz.train.step");
    const char *seed = zf_meta_get(&m, "zfviz.train.seed"), *batch = zf_meta_get(&m, "zfviz.train.batch");
    const char *arch = zf_meta_get(&m, "arch");
    if (!e || !s || !seed || !batch || !arch) {
        st = zf_error(ZF_ERR_FORMAT, "%s: not a zfviz training checkpoint", cfg->checkpoint);
    } else if (strcmp(arch, net->arch) || strtoull(seed, NULL, 10) != cfg->seed ||
               atoi(batch) != cfg->batch) {
        st = zf_error(ZF_ERR_ARG, "%s: the checkpoint is of a run with arch %s, seed %s, batch %s; "
                      "resume with the same settings (this run: %s, seed %llu, batch %d)",
                      cfg->checkpoint, arch, seed, batch, net->arch,
                      (unsigned long long)cfg->seed, cfg->batch);
    } else {
        rs->epoch = atoi(e);
        rs->step = atoll(s);
        const char *v;
        rs->loss_sum = (v = zf_meta_get(&m, "zfviz.train.loss_sum")) ? strtod(v, NULL) : 0;
        rs->correct = (v = zf_meta_get(&m, "zfviz.train.correct")) ? atoll(v) : 0;
        rs->seen = (v = zf_meta_get(&m, "zfviz.train.seen")) ? atoll(v) : 0;
        rs->seconds = (v = zf_meta_get(&m, "zfviz.train.seconds")) ? strtod(v, NULL) : 0;
        if (rs->epoch < 1 || rs->step < 0)
            st = zf_error(ZF_ERR_FORMAT, "%s: bad training position", cfg->checkpoint);
    }
    zf_meta_free(&m);
    return st;
}

zf_status zf_train_run(zf_net *net, const zf_dataset *train, const zf_dataset *val,
                       const zf_train_config *cfg, int resume, const zf_train_hooks *hooks)
{
    zf_engine *e;
    const zf_engine_opts o = {.batch = cfg->batch > 0 ? cfg->batch : 1};
    zf_status st = zf_engine_open(zf_engine_list()[0], net, &o, &e);
    if (st)
        return st;
    st = zf_train_run_on(e, train, val, cfg, resume, hooks);
    zf_engine_close(e);
    return st;
}

zf_status zf_train_run_on(zf_engine *e, const zf_dataset *train, const zf_dataset *val,
                          const zf_train_config *cfg, int resume, const zf_train_hooks *hooks)
{
    static const zf_train_hooks none = {0};
    if (!hooks)
        hooks = &none;
    zf_net *net = zf_engine_net(e);
    int classes = net->layers[net->n_layers - 1].out_c;
    if (classes != train->n_classes)
        return zf_error(ZF_ERR_SHAPE, "%s has %d classes but %s has %d", net->arch, classes,
                        train->source, train->n_classes);
    if (cfg->batch < 1 || cfg->epochs < 1 || train->n < 1)
        return zf_error(ZF_ERR_ARG, "training needs a batch and epochs of at least 1 and some images");
    if (resume && !cfg->checkpoint)
        return zf_error(ZF_ERR_ARG, "resume needs a checkpoint path");
    if (!zf_engine_supports(e, ZF_ENGINE_OP_TRAIN))
        return zf_engine_train_begin(e, cfg->batch, NULL); /* the one-line refusal */
    zf_status st = zf_net_reserve(net, cfg->batch); /* the batches are made in net->input */
    if (st)
        return st;
    run_state rs = {1, 0, 0, 0, 0, 0};
    float *momentum = NULL;
    if (resume) { /* the checkpoint's weights and momentum, then the trainer from them */
        if (!(momentum = zf_alloc(sizeof(float) * (size_t)net->n_params)))
            return zf_error(ZF_ERR_NOMEM, "out of memory for the momentum of %s", net->arch);
        st = load_checkpoint(net, momentum, cfg, &rs);
    }
    if (!st)
        st = zf_engine_train_begin(e, cfg->batch, momentum);
    zf_free(momentum);
    if (st)
        return st;
    int64_t steps = (train->n + cfg->batch - 1) / cfg->batch;
    int64_t *perm = zf_malloc(sizeof *perm * (size_t)train->n);
    int32_t *labels = zf_malloc(sizeof *labels * (size_t)cfg->batch);
    if (!perm || !labels) {
        free(perm);
        free(labels);
        return zf_error(ZF_ERR_NOMEM, "out of memory for %lld images", (long long)train->n);
    }
    double last_ckpt = zf_clock_now();
    for (; rs.epoch <= cfg->epochs && !st; rs.epoch++, rs.step = 0, rs.loss_sum = 0, rs.correct = 0,
                                          rs.seen = 0, rs.seconds = 0) {
        zf_sgd opt = cfg->sgd;
        opt.lr = (float)lr_at(cfg, rs.epoch);
        zf_dataset_shuffle(perm, train->n, cfg->seed, rs.epoch);
        uint64_t aug_seed = seed_of(cfg->seed, (uint64_t)rs.epoch, 1);
        double t0 = zf_clock_now() - rs.seconds;
        while (rs.step < steps) {
            int64_t first = rs.step * cfg->batch;
            int n = (int)(train->n - first < cfg->batch ? train->n - first : cfg->batch);
            double loss;
            int correct;
            st = zf_dataset_batch(net->input, labels, train, perm + first, n, net, &cfg->aug, aug_seed);
            if (!st)
                st = zf_engine_train_step(e, net->input, labels, n,
                                          seed_of(cfg->seed, (uint64_t)rs.epoch, 2 + (uint64_t)rs.step),
                                          &loss, &correct);
            if (!st)
                st = zf_engine_train_update(e, &opt);
            if (st)
                break;
            rs.step++;
            rs.loss_sum += loss * n;
            rs.correct += correct;
            rs.seen += n;
            double now = zf_clock_now();
            rs.seconds = now - t0;
            int stop = zf_interrupted != 0;
            if (hooks->on_step &&
                hooks->on_step(hooks->ctx, rs.epoch, rs.step, steps, rs.loss_sum / (double)rs.seen,
                               (double)rs.correct / (double)rs.seen, (double)rs.seen / rs.seconds))
                stop = 1;
            int periodic = cfg->checkpoint_s > 0 && now - last_ckpt >= cfg->checkpoint_s;
            if (cfg->checkpoint && (stop || (periodic && rs.step < steps))) {
                if ((st = save_checkpoint(e, cfg, &rs)))
                    break;
                last_ckpt = now;
                if (hooks->on_checkpoint)
                    hooks->on_checkpoint(hooks->ctx, rs.epoch, rs.step);
            }
            if (stop) {
                st = zf_error(ZF_ERR_INTERRUPTED, "training stopped in epoch %d at step %lld of %lld",
                              rs.epoch, (long long)rs.step, (long long)steps);
                break;
            }
        }
        if (st)
            break;
        zf_epoch_stats es = {0};
        es.epoch = rs.epoch;
        es.lr = opt.lr;
        es.train_loss = rs.loss_sum / (double)rs.seen;
        es.train_acc = (double)rs.correct / (double)rs.seen;
        es.seconds = rs.seconds;
        es.images_per_s = (double)rs.seen / rs.seconds;
        es.val_loss = es.val_acc = es.val_top5 = NAN;
        if (val && (st = zf_engine_evaluate(e, val, cfg->batch, &es.val_acc, &es.val_top5, &es.val_loss,
                                            NULL, NULL))) {
            /* Stopped while validating: keep the finished epoch (a resume validates it again). */
            if (st == ZF_ERR_INTERRUPTED && cfg->checkpoint && !save_checkpoint(e, cfg, &rs))
                st = zf_error(ZF_ERR_INTERRUPTED, "training stopped while validating epoch %d", rs.epoch);
            break;
        }
        /* Metrics first (the hook replaces an epoch's row), then the checkpoint: a run killed in
         * between repeats nothing but that row. The hook reads the epoch's weights on the host. */
        const float *momentum_now;
        if (hooks->on_epoch && ((st = zf_engine_train_state(e, &momentum_now)) ||
                                (st = hooks->on_epoch(hooks->ctx, &es, net))))
            break;
        if (cfg->checkpoint) {
            /* The next epoch's start is the state to come back to. */
            run_state next = {rs.epoch + 1, 0, 0, 0, 0, 0};
            if ((st = save_checkpoint(e, cfg, &next)))
                break;
            last_ckpt = zf_clock_now();
            if (hooks->on_checkpoint)
                hooks->on_checkpoint(hooks->ctx, rs.epoch + 1, 0);
        }
    }
    free(perm);
    free(labels);
    /* the weights trained so far on the host, whatever stopped the run */
    const float *momentum_end;
    zf_status sync = zf_engine_train_state(e, &momentum_end);
    return st ? st : sync;
}
