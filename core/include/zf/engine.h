/* The engines a net runs on (the CPU engine; the CUDA engine where it was built) behind one table of
 * functions, in the spirit of ggml's backends: a caller opens an engine for a net and a device, runs
 * forward, read, deconvnet, occlusion and backward through the table, and asks supports() before an
 * op that an engine may lack, so that it can fall back or refuse. The engines are listed in one
 * place (core/engine_registry.c); nothing else names them. */
#ifndef ZF_ENGINE_H
#define ZF_ENGINE_H

#include <stddef.h>

#include "zf/dataset.h"
#include "zf/fold.h"
#include "zf/net.h"
#include "zf/occlusion.h"
#include "zf/stats.h"
#include "zf/status.h"
#include "zf/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZF_ENGINE_OP_FORWARD = 0, /* the forward pass up to a layer */
    ZF_ENGINE_OP_READ,        /* a layer's activations into host memory */
    ZF_ENGINE_OP_DECONV,      /* Zeiler & Fergus's deconvnet projection (unit or map) */
    ZF_ENGINE_OP_OCCLUSION,   /* occlusion sensitivity maps (brute and incremental) */
    ZF_ENGINE_OP_BACKWARD,    /* the gradient of a layer's output with respect to a lower one */
    ZF_ENGINE_OP_TRAIN,       /* training steps: parameters' gradients and the SGD update */
    ZF_ENGINE_OP_STATS,       /* a layer's per-plane statistics for the scan (zf/stats.h) */
    ZF_ENGINE_OP_FOLD,        /* the scan's per-unit accumulators kept by the engine (zf/fold.h) */
    ZF_ENGINE_OP_COUNT
} zf_engine_op;

/* "forward", "read", "deconv", "occlusion", "backward", "train", "stats", "fold". */
const char *zf_engine_op_name(zf_engine_op op);
/* A set of ops, for zf_engine_select. */
#define ZF_ENGINE_NEEDS(op) (1u << (op))

typedef struct zf_engine_opts {
    int device;            /* the device's index (cuda:N); 0 for the CPU */
    int batch;             /* images per forward to reserve for (>= 1) */
    const char *precision; /* NULL or "fp32": float32; others ("tf32", "bf16") where the engine has them */
} zf_engine_opts;

/* One engine's functions. ctx is what open made. Ops take host memory. An op the engine lacks is
 * NULL, and supports() says 0 for it. */
typedef struct zf_engine_iface {
    const char *name; /* "cpu", "cuda": what --device names */
    /* Whether device `device` can be used: ZF_OK with a one-line description in desc, or
     * ZF_ERR_DEVICE with the reason in zf_last_error() (no device, driver too old, no kernel for
     * this architecture). May keep what it opened for the next open of that device. */
    zf_status (*probe)(int device, char *desc, size_t len);
    /* The libraries the engine runs on, in one line. */
    void (*versions)(char *buf, size_t len);
    int (*supports)(zf_engine_op op);
    /* A context for `net` (borrowed: it must outlive the context and keep its layers; its weights
     * are read when the context is opened) on o->device, reserved for o->batch images. */
    zf_status (*open)(zf_net *net, const zf_engine_opts *o, void **ctx);
    void (*close)(void *ctx);
    /* "cpu (2 threads)", "NVIDIA H100 80GB HBM3 (device 0, compute 9.0, 132 SMs)" */
    const char *(*describe)(void *ctx);
    /* Free and total memory of the device, bytes. */
    zf_status (*memory)(void *ctx, size_t *free_bytes, size_t *total_bytes);
    /* Buffers for batches of up to `batch` images (more than opened with: reallocated). */
    zf_status (*reserve)(void *ctx, int batch);
    /* Layers 0..last on n images of `input` (n, in_c, in_h, in_w). */
    zf_status (*forward)(void *ctx, const float *input, int n, int last);
    /* Output of layer `layer` (-1: the input) of the last forward's first n images into `out`
     * (n, out_c, out_h, out_w). out may be the net's own net->acts[layer]. */
    zf_status (*read)(void *ctx, int layer, float *out, int n);
    /* zf_net_deconv after a forward through at least the request's layer. */
    zf_status (*deconv)(void *ctx, float *out, int n, const zf_deconv_req *req);
    /* zf_occlusion_run on one input (in_c, in_h, in_w). */
    zf_status (*occlusion)(void *ctx, const float *input, const zf_occlusion_params *p,
                           zf_occlusion_result **out);
    /* zf_net_backward (attribution.h): out = d sum(dtop * layer top's output) / d layer bottom's
     * output (-1: the input), for the last forward's n images, each ReLU passing the gradient by
     * `rule` (a zf_relu_rule: the true gradient, guided, the deconvnet's). */
    zf_status (*backward)(void *ctx, float *out, const float *dtop, int top, int bottom, int n, int rule);
    /* NULL, or whether this machine may have the engine's device, told without loading or opening
     * anything: ZF_ERR_DEVICE with the reason where it cannot. `--device auto` asks it first. */
    zf_status (*present)(void);
    /* NULL, or the table that opens and runs this engine's contexts (an entry that loads its
     * engine on first use answers with the loaded one; NULL, with the reason in zf_last_error(),
     * where it cannot be loaded). zf_engine_open runs every op through it. */
    const struct zf_engine_iface *(*resolve)(void);
    /* Training (ZF_ENGINE_OP_TRAIN), step for step as zf_trainer (zf/train.h). train_begin makes
     * the context's trainer for batches of up to `batch` images, from the net's host weights as
     * they are now and `momentum` (host, laid out like net->params; NULL: zero); from then on the
     * context's forward runs the weights being trained. train_step is zf_trainer_backprop (the
     * input and labels in host memory), train_update zf_trainer_update. train_state brings the
     * trained weights into net->params and points *momentum at a host copy of the velocity,
     * valid until the next step or update (checkpoints, evaluation on the host). */
    zf_status (*train_begin)(void *ctx, int batch, const float *momentum);
    zf_status (*train_step)(void *ctx, const float *input, const int32_t *labels, int n, uint64_t seed,
                            double *loss, int *correct);
    zf_status (*train_update)(void *ctx, const zf_sgd *opt);
    zf_status (*train_state)(void *ctx, const float **momentum);
    /* The scan's statistics (ZF_ENGINE_OP_STATS) of layer `layer`'s output (layer >= 0) for the
     * last forward's first n images: planes[i * out_c + c] for image i's channel c, and every
     * value's histogram bin counted into hist (out_c x ZF_HIST_BINS, added to), as core's
     * zf_layer_stats makes them, on the device where the forward ran. */
    zf_status (*layer_stats)(void *ctx, int layer, int n, zf_plane_stats *planes, int64_t *hist);
    /* The net's host weights changed (a snapshot loaded, a model edited): the engine takes them for
     * its next forward. NULL: the engine reads the host's weights in place. */
    zf_status (*weights_changed)(void *ctx);
    /* NULL, or host memory that the engine copies from beside its work (page-locked), for a
     * caller's input batches: NULL where it cannot give `bytes` (the caller then uses its own).
     * host_free takes it back, after the copies from it are done. */
    void *(*host_alloc)(void *ctx, size_t bytes);
    void (*host_free)(void *ctx, void *p);
    /* NULL, or: starts copying n images of `input` (host, as forward takes them) to the device
     * beside the work in progress; a later forward of the same input and n takes them from there
     * instead of copying again. Two may wait to be taken (the next batch's and the one after);
     * `input` must not change until its forward has returned. input NULL: forget every prefetch
     * not taken, and finish reading from the caller's memory (it is about to be freed). */
    zf_status (*prefetch)(void *ctx, const float *input, int n);
    /* The scan's accumulators of a layer kept where the engine runs (ZF_ENGINE_OP_FOLD), so that
     * only they cross to the host, at each commit. fold_open makes slot `slot`'s copy of acc's
     * arrays (their shapes and values as they stand: a resumed scan's too; again: replaced).
     * fold_add summarises layer `layer`'s output for the last forward's n images (as layer_stats)
     * and folds them in image order (seqs[i]; classes[i], or -1, NULL without classes) into the
     * slot with zf_fold_plane, and their values' bins into its histogram. fold_read copies the
     * slot into acc's arrays and marks the engine's copy unchanged (ZF_FOLD_CLEAN): the host
     * commits what changed. Slots live until the context closes. */
    zf_status (*fold_open)(void *ctx, int slot, const zf_fold_acc *acc);
    zf_status (*fold_add)(void *ctx, int slot, int layer, int n, const int64_t *seqs, const int32_t *classes);
    zf_status (*fold_read)(void *ctx, int slot, zf_fold_acc *acc);
} zf_engine_iface;

/* The engines this program was built with, the CPU engine first, NULL-terminated. */
const zf_engine_iface *const *zf_engine_list(void);
/* The engine called `name`, or NULL. */
const zf_engine_iface *zf_engine_find(const char *name);

/* A device as --device names it: "auto", "cpu", "cuda", "cuda:N" ("gpu" is "cuda"). name gets the
 * engine's name ("auto" for auto), device the index (0 when none is given). ZF_ERR_ARG for
 * anything else, naming what is accepted. */
zf_status zf_engine_parse(const char *spec, char *name, size_t len, int *device);

/* Chooses the engine and device for `spec` (NULL: auto) and the ops in `needs`
 * (ZF_ENGINE_NEEDS bits), opening nothing that stays:
 *  - a named engine that this build lacks, whose device cannot be used, or that lacks one of the
 *    ops: an error whose message says which (ZF_ERR_UNSUPPORTED, ZF_ERR_DEVICE);
 *  - auto: the first engine after the CPU whose device 0 works and that has every op, else the
 *    CPU. *auto_fallback is set to 1 when auto took the CPU while another engine was built.
 * note gets one line that says what was chosen and, for auto on the CPU, why no other engine. */
zf_status zf_engine_select(const char *spec, unsigned needs, const zf_engine_iface **out, int *device,
                           int *auto_fallback, char *note, size_t len);

/* An open engine: the table, its context, the net it runs. */
typedef struct zf_engine zf_engine;
zf_status zf_engine_open(const zf_engine_iface *iface, zf_net *net, const zf_engine_opts *o, zf_engine **out);
void zf_engine_close(zf_engine *e);
const char *zf_engine_name(const zf_engine *e);
const char *zf_engine_describe(zf_engine *e);
int zf_engine_supports(const zf_engine *e, zf_engine_op op);
zf_net *zf_engine_net(zf_engine *e);
/* The ops through the table; an op the engine lacks is ZF_ERR_UNSUPPORTED naming it. */
zf_status zf_engine_reserve(zf_engine *e, int batch);
zf_status zf_engine_forward(zf_engine *e, const float *input, int n, int last);
zf_status zf_engine_read(zf_engine *e, int layer, float *out, int n);
zf_status zf_engine_deconv(zf_engine *e, float *out, int n, const zf_deconv_req *req);
zf_status zf_engine_occlusion(zf_engine *e, const float *input, const zf_occlusion_params *p,
                              zf_occlusion_result **out);
zf_status zf_engine_backward(zf_engine *e, float *out, const float *dtop, int top, int bottom, int n, int rule);
zf_status zf_engine_memory(zf_engine *e, size_t *free_bytes, size_t *total_bytes);
/* Training through the table (see train_begin above); ZF_ERR_UNSUPPORTED where the engine has no
 * training, ZF_ERR_ARG for a step or update before zf_engine_train_begin. */
zf_status zf_engine_train_begin(zf_engine *e, int batch, const float *momentum);
zf_status zf_engine_train_step(zf_engine *e, const float *input, const int32_t *labels, int n, uint64_t seed,
                               double *loss, int *correct);
zf_status zf_engine_train_update(zf_engine *e, const zf_sgd *opt);
zf_status zf_engine_train_state(zf_engine *e, const float **momentum);
/* After a change of the net's host weights: the engine runs the new ones from its next op. */
zf_status zf_engine_weights_changed(zf_engine *e);
/* host_alloc and host_free through the table: the engine's page-locked memory where it has it,
 * else zf_alloc's (never NULL for lack of the engine's: NULL only where no memory is left). */
void *zf_engine_host_alloc(zf_engine *e, size_t bytes);
void zf_engine_host_free(zf_engine *e, void *p);
/* prefetch through the table (input NULL: forget those not taken); nothing where the engine has
 * none (its forward copies then). zf_engine_host_free forgets them before it frees. */
zf_status zf_engine_prefetch(zf_engine *e, const float *input, int n);
/* The fold through the table (see above); ZF_ERR_UNSUPPORTED where the engine has none. */
zf_status zf_engine_fold_open(zf_engine *e, int slot, const zf_fold_acc *acc);
zf_status zf_engine_fold_add(zf_engine *e, int slot, int layer, int n, const int64_t *seqs, const int32_t *classes);
zf_status zf_engine_fold_read(zf_engine *e, int slot, zf_fold_acc *acc);
/* layer_stats through the table (see above). */
zf_status zf_engine_layer_stats(zf_engine *e, int layer, int n, zf_plane_stats *planes, int64_t *hist);
/* The engine's buffers and the net's host buffers (zf_net_reserve) for batches of `batch`: what a
 * caller that reads layers into the host buffers (zf_engine_forward_layers) reserves. */
zf_status zf_engine_reserve_host(zf_engine *e, int batch);
/* The forward up to `last`, then the outputs of `layers` (NULL: the input and every layer up to
 * `last` that is not computed in place) read into the net's own host buffers (zf_net_act), for a
 * caller that works on them there (the scan's statistics, a tool's dumps). The net must be
 * reserved for n images. */
zf_status zf_engine_forward_layers(zf_engine *e, const float *input, int n, int last, const int *layers,
                                   int n_layers);

/* zf_evaluate (zf/train.h) with the forward on the engine: top-1/top-5 accuracy and mean
 * cross-entropy of the engine's net on ds, in batches (images prepared on the host in the net's
 * own input buffer). progress may be NULL; it returns nonzero to stop (ZF_ERR_INTERRUPTED). */
zf_status zf_engine_evaluate(zf_engine *e, const zf_dataset *ds, int batch, double *top1, double *top5,
                             double *loss, int (*progress)(void *ctx, int64_t done, int64_t total), void *ctx);

/* The layer up to which the deconvnet of `req` needs a forward: the request's conv layer's ReLU. */
int zf_engine_deconv_last(const zf_net *net, const zf_deconv_req *req);

#ifdef __cplusplus
}
#endif
#endif
