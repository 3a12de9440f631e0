/* The CUDA engine's public face: a context (device, streams, cuDNN and cuBLAS handles), the CPU
 * engine's ops on device buffers, a device copy of a net with its forward pass and deconvnet, and
 * occlusion maps built on the device. Everything mirrors core/ (zf/ops.h, zf/net.h) and is tested
 * against it. Every function works on a machine without a GPU: it returns ZF_ERR_DEVICE with a
 * message that says why (no device, driver older than the runtime, out of memory, ...). */
#ifndef ZF_CUDA_H
#define ZF_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "zf/net.h"
#include "zf/ops.h"
#include "zf/stats.h"
#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- devices and contexts ---- */

/* Number of usable CUDA devices (0 with the reason in zf_last_error() when there is none, e.g. no
 * driver). desc gets "NVIDIA H100 80GB HBM3, 79 GiB, compute 9.0, driver 13.0" for device 0. */
int zf_cuda_device_count(char *desc, size_t len);

/* Versions as "runtime 13.0, driver 13.0, cuDNN 9.19.0 (built with 9.19.0), cuBLAS 13.0.0". */
void zf_cuda_versions(char *buf, size_t len);

/* Arithmetic of convolutions and fully connected layers. FP32 is the default and matches the CPU
 * engine (relative error ~1e-6); TF32 rounds the inputs of products to 10 mantissa bits (relative
 * error ~1e-3); BF16 to 7 bits (~1e-2). Pooling, LRN, ReLU and softmax are float32 always. */
typedef enum { ZF_CUDA_FP32 = 0, ZF_CUDA_TF32 = 1, ZF_CUDA_BF16 = 2 } zf_cuda_precision;
/* "fp32", "tf32", "bf16" -> the enum; ZF_ERR_ARG for anything else. */
zf_status zf_cuda_parse_precision(const char *s, zf_cuda_precision *out);
const char *zf_cuda_precision_name(zf_cuda_precision p);

typedef struct zf_cuda_ctx zf_cuda_ctx;

/* Opens device `device` (0 for the first): streams, cuDNN and cuBLAS handles, FP32 arithmetic.
 * A context is used by one thread at a time. */
zf_status zf_cuda_ctx_new(int device, zf_cuda_ctx **out);
void zf_cuda_ctx_free(zf_cuda_ctx *ctx);
/* Takes effect for plans and nets made afterwards (and for the op-level calls at once). */
zf_status zf_cuda_ctx_set_precision(zf_cuda_ctx *ctx, zf_cuda_precision p);
zf_cuda_precision zf_cuda_ctx_precision(const zf_cuda_ctx *ctx);
/* 1: time cuDNN's candidate algorithms once per convolution (when a net is made) instead of
 * trusting its heuristics. Costs a fraction of a second per net; helps large batches. */
void zf_cuda_ctx_set_autotune(zf_cuda_ctx *ctx, int on);
/* "NVIDIA H100 80GB HBM3 (device 0, 132 SMs)" */
const char *zf_cuda_ctx_name(const zf_cuda_ctx *ctx);
/* Free and total device memory in bytes. */
zf_status zf_cuda_mem_info(zf_cuda_ctx *ctx, size_t *free_bytes, size_t *total_bytes);

/* ---- device memory (the op-level functions below take device pointers) ---- */

/* cudaMalloc with a message on failure that says what it was for, how much was asked and how much
 * is free. */
zf_status zf_cuda_malloc(zf_cuda_ctx *ctx, void **p, size_t bytes, const char *what);
void zf_cuda_free(void *p);
/* Synchronous copies (on the context's stream, then waiting for it). */
zf_status zf_cuda_upload(zf_cuda_ctx *ctx, void *dst_dev, const void *src_host, size_t bytes);
zf_status zf_cuda_download(zf_cuda_ctx *ctx, void *dst_host, const void *src_dev, size_t bytes);
/* Waits for the context's work; reports a kernel fault that happened in it. */
zf_status zf_cuda_sync(zf_cuda_ctx *ctx);

/* ---- ops: the CPU engine's (zf/ops.h) on device buffers, same arguments, same results ----
 * They are enqueued on the context's stream; call zf_cuda_sync (or download) to wait. */
zf_status zf_cuda_conv_forward(zf_cuda_ctx *ctx, float *out, const float *in, const float *w, const float *bias,
                               const zf_conv_geom *g);
zf_status zf_cuda_conv_backward_data(zf_cuda_ctx *ctx, float *din, const float *dout, const float *w,
                                     const zf_conv_geom *g);
zf_status zf_cuda_maxpool_forward(zf_cuda_ctx *ctx, float *out, int32_t *switches, const float *in,
                                  const zf_pool_geom *g);
zf_status zf_cuda_maxpool_unpool(zf_cuda_ctx *ctx, float *din, const float *dout, const int32_t *switches,
                                 const zf_pool_geom *g);
zf_status zf_cuda_avgpool_forward(zf_cuda_ctx *ctx, float *out, const float *in, const zf_pool_geom *g,
                                  int count_include_pad);
zf_status zf_cuda_adaptive_avgpool_forward(zf_cuda_ctx *ctx, float *out, const float *in, int n, int c, int h,
                                           int w, int oh, int ow);
zf_status zf_cuda_lrn_forward(zf_cuda_ctx *ctx, float *out, const float *in, int n, int c, int hw,
                              const zf_lrn_params *p);
zf_status zf_cuda_lrn_backward(zf_cuda_ctx *ctx, float *din, const float *dout, const float *in, int n, int c,
                               int hw, const zf_lrn_params *p);
zf_status zf_cuda_fc_forward(zf_cuda_ctx *ctx, float *out, const float *in, const float *w, const float *bias,
                             int n, int in_f, int out_f);
zf_status zf_cuda_relu_forward(zf_cuda_ctx *ctx, float *out, const float *in, size_t count);
zf_status zf_cuda_softmax_forward(zf_cuda_ctx *ctx, float *out, const float *in, int n, int k);
/* The backward passes of zf/backward.h and zf/attribution.h (input gradients only). din may equal
 * dout for the ReLU and the softmax. rule: a zf_relu_rule (gradient, guided, deconvnet); out is
 * the ReLU's forward output. */
zf_status zf_cuda_relu_backward(zf_cuda_ctx *ctx, float *din, const float *dout, const float *out, size_t count,
                                int rule);
zf_status zf_cuda_softmax_backward(zf_cuda_ctx *ctx, float *din, const float *dout, const float *p, int n, int k);
/* din (n, in_f) = dout (n, out_f) . w (out_f, in_f) */
zf_status zf_cuda_fc_backward_data(zf_cuda_ctx *ctx, float *din, const float *dout, const float *w, int n, int in_f,
                                   int out_f);
zf_status zf_cuda_avgpool_backward(zf_cuda_ctx *ctx, float *din, const float *dout, const zf_pool_geom *g,
                                   int count_include_pad);
/* The parameters' gradients (zf_conv_backward_weights, zf_fc_backward of zf/backward.h), summed
 * over the batch, float32 only: dw (k, c/groups, kh, kw), db (k; may be NULL) of a convolution from
 * its input and dout; a fully connected layer's din (may be NULL), dw (out_f, in_f), db (out_f; may
 * be NULL). Deterministic: the same bits on every run. */
zf_status zf_cuda_conv_backward_weights(zf_cuda_ctx *ctx, float *dw, float *db, const float *in, const float *dout,
                                        const zf_conv_geom *g);
zf_status zf_cuda_fc_backward(zf_cuda_ctx *ctx, float *din, float *dw, float *db, const float *dout, const float *in,
                              const float *w, int n, int in_f, int out_f);
/* One step of SGD with momentum over count parameters, as zf_trainer_update (zf/train.h) does:
 * v = momentum v + g + weight_decay w, w -= lr v, in float, to the bit. */
zf_status zf_cuda_sgd_update(zf_cuda_ctx *ctx, float *w, float *v, const float *g, size_t count, float lr,
                             float momentum, float weight_decay);
zf_status zf_cuda_adaptive_avgpool_backward(zf_cuda_ctx *ctx, float *din, const float *dout, int n, int c, int h,
                                            int w, int oh, int ow);
/* zf_layer_stats (zf/stats.h) on the device: the planes of act (n x units x hw) summarised into
 * planes (n * units) and every value's bin counted into hist (units x ZF_HIST_BINS 32-bit counts,
 * added to; n * hw must stay below 2^32), all device memory; the same numbers, bit for bit, as the
 * CPU's. */
zf_status zf_cuda_layer_stats(zf_cuda_ctx *ctx, const float *act, int n, int units, int hw, zf_plane_stats *planes,
                              uint32_t *hist);

struct zf_fold_acc;
/* zf_fold_plane (zf/fold.h) on the device: the n images' plane summaries (planes[i * units + c],
 * from zf_cuda_layer_stats) folded in image order (seqs[i], classes[i] or NULL) into acc, whose
 * arrays are device memory, and the batch's 32-bit histogram counts added into acc->hist. */
zf_status zf_cuda_fold(zf_cuda_ctx *ctx, const struct zf_fold_acc *acc, const zf_plane_stats *planes, int n,
                       const int64_t *seqs, const int32_t *classes, const uint32_t *hist);

/* ---- a net on the device ---- */

typedef struct zf_cuda_net zf_cuda_net;

/* Uploads `net`'s parameter block in one copy and sizes every activation, switch, deconvnet and
 * workspace buffer for batches of up to `batch`, plus two pinned staging buffers. `net` is
 * borrowed: it must outlive the device copy, and its layers must not change (weights may: call
 * zf_cuda_net_upload_weights). Out of memory says how much was needed and suggests a batch that
 * fits. */
zf_status zf_cuda_net_new(zf_cuda_ctx *ctx, const zf_net *net, int batch, zf_cuda_net **out);
void zf_cuda_net_free(zf_cuda_net *cn);
zf_status zf_cuda_net_upload_weights(zf_cuda_net *cn);
int zf_cuda_net_batch(const zf_cuda_net *cn);
zf_cuda_ctx *zf_cuda_net_ctx(zf_cuda_net *cn);
/* Device bytes this net holds. */
size_t zf_cuda_net_bytes(const zf_cuda_net *cn);

/* zf_net_forward on the device: n <= batch images from host `input` (n, in_c, in_h, in_w); every
 * layer's output stays on the device. Waits for the result. */
zf_status zf_cuda_net_forward(zf_cuda_net *cn, const float *input, int n);
/* The same from device memory (n images already on the device), without waiting. */
zf_status zf_cuda_net_forward_dev(zf_cuda_net *cn, const float *input_dev, int n);
/* Layers first..last only, on the buffers already there (as zf_net_forward_range). */
zf_status zf_cuda_net_forward_range(zf_cuda_net *cn, int first, int last, int n);
/* Output of layer i (-1: the input) for the first n images, into host memory
 * (n * out_c * out_h * out_w floats). */
zf_status zf_cuda_net_read(zf_cuda_net *cn, int layer, float *host, int n);
/* Device pointer to layer i's output (-1: the input) and its switches (max-pool layers, else NULL). */
float *zf_cuda_net_act(zf_cuda_net *cn, int layer);
int32_t *zf_cuda_net_switches(zf_cuda_net *cn, int layer);

/* Overlapping host work (image decoding) with the GPU: fill a pinned staging slot (0 or 1) with
 * up to `batch` images, then start its forward without waiting. zf_cuda_net_staging waits until
 * the slot's previous upload has finished before handing it out. Reading results
 * (zf_cuda_net_read) waits for the forward. */
float *zf_cuda_net_staging(zf_cuda_net *cn, int slot);
zf_status zf_cuda_net_forward_staged(zf_cuda_net *cn, int slot, int n);

/* zf_net_deconv on the device, same request semantics (y/x of -1 pick the first maximum and are
 * written back). Needs zf_cuda_net_forward of the same n images first. out is host memory
 * (n, in_c, in_h, in_w). */
zf_status zf_cuda_net_deconv(zf_cuda_net *cn, float *out, int n, const zf_deconv_req *req);

/* zf_net_backward on the device, same arguments: out (host; n x the output size of layer `bottom`,
 * or of the input for -1) = the gradient of sum(dtop * output of layer `top`) (dtop host, n x that
 * layer's output size) with respect to that output, through layers top..bottom+1, with ReLU rule
 * `rule` (a zf_relu_rule), for the n images of the last forward (which reached `top`). */
zf_status zf_cuda_net_backward(zf_cuda_net *cn, float *out, const float *dtop, int top, int bottom, int n, int rule);

/* ---- training on the device (zf_trainer of zf/train.h) ---- */

struct zf_sgd;
typedef struct zf_cuda_trainer zf_cuda_trainer;
/* A device copy of `net` (borrowed; its weights are uploaded now) for training steps of up to
 * `batch` images, with the gradients and the momentum (host `momentum` laid out like net->params,
 * or NULL for zeros: a checkpoint's, to resume) on the device. fp32 only. */
zf_status zf_cuda_trainer_new(zf_cuda_ctx *ctx, const zf_net *net, int batch, const float *momentum,
                              zf_cuda_trainer **out);
void zf_cuda_trainer_free(zf_cuda_trainer *t);
/* zf_trainer_backprop on the device: n images (host) with their labels, dropout masks drawn from
 * `seed` as the CPU draws them; the gradients stay on the device. loss (mean) and correct may be NULL. */
zf_status zf_cuda_trainer_step(zf_cuda_trainer *t, const float *input, const int32_t *labels, int n, uint64_t seed,
                               double *loss, int *correct);
/* zf_trainer_update on the device's weights and momentum. */
zf_status zf_cuda_trainer_update(zf_cuda_trainer *t, const struct zf_sgd *opt);
/* The device's weights and momentum into host blocks laid out like net->params (either may be NULL). */
zf_status zf_cuda_trainer_download(zf_cuda_trainer *t, float *params, float *momentum);

/* ---- for the command-line tools: --device auto|cuda|cpu ---- */

typedef enum { ZF_DEVICE_AUTO = 0, ZF_DEVICE_CUDA = 1, ZF_DEVICE_CPU = 2 } zf_device_choice;
zf_status zf_cuda_parse_device(const char *s, zf_device_choice *out);

/* Opens device 0 and a device copy of `net` for batches of `batch`, with `precision`. With
 * ZF_DEVICE_AUTO and no usable GPU it returns ZF_OK with *out = NULL (run on the CPU; the reason
 * is in zf_last_error()); with ZF_DEVICE_CUDA that is an error; with ZF_DEVICE_CPU it opens
 * nothing. The returned net owns its context. */
zf_status zf_cuda_open(zf_device_choice choice, const zf_net *net, int batch, zf_cuda_precision precision,
                       zf_cuda_net **out);

/* Drop-in for zf_net_forward(net, input, n) in a tool: runs on the device and leaves the outputs
 * of the listed layers (all of them when layers is NULL) in net->acts, as the CPU engine would
 * have; net must be reserved for n images. The last layer is always copied. */
zf_status zf_cuda_net_forward_to_host(zf_cuda_net *cn, zf_net *net, const float *input, int n, const int *layers,
                                      int n_layers);

/* ---- occlusion sensitivity on the device (Zeiler & Fergus 4.2; mirrors core/occlusion.c) ---- */

typedef enum {
    ZF_CUDA_OCCL_AUTO = 0,        /* incremental where its estimated work is clearly below brute force */
    ZF_CUDA_OCCL_BRUTE = 1,       /* a full forward of every occluded image, batched */
    ZF_CUDA_OCCL_INCREMENTAL = 2  /* recompute only each occluder's receptive-field footprint */
} zf_cuda_occl_method;

typedef struct zf_cuda_occl_params {
    int patch, stride; /* square side and step; top-left corners at 0, s, 2s, ... <= size - patch */
    float fill;        /* value of the square in the net's normalised input space (0: the mean) */
    int cls;           /* class whose probability is mapped; -1: top class of the unoccluded input */
    int layer;         /* conv layer (or its ReLU) whose rectified map is summed; -1: the last conv */
    int channel;       /* -1: the channel holding the largest single activation on the unoccluded
                        * input (first in (channel, y, x) order) */
    zf_cuda_occl_method method;
    int batch;         /* positions per batch; 0: the device net's batch */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} zf_cuda_occl_params;

/* patch and stride 0 (must be set), fill 0, cls/layer/channel -1, auto, batch 0. */
void zf_cuda_occl_params_default(zf_cuda_occl_params *p);

typedef struct zf_cuda_occl_map {
    int rows, cols;    /* row i has the square's top edge at i * stride, column j at j * stride */
    float *feature;    /* (rows, cols): sum over the map of the rectified channel */
    float *prob;       /* (rows, cols): probability of class cls */
    int32_t *argmax;   /* (rows, cols): most probable class, first on ties */
    int layer, conv_layer, channel, cls, n_classes;
    float base_feature, base_prob;
    int32_t base_argmax;
    zf_cuda_occl_method method; /* as run */
    double work_ratio;          /* estimated multiply-adds, incremental over brute force */
    double seconds;
} zf_cuda_occl_map;

/* One map for one input (in_c, in_h, in_w) in host memory. Uses the device net's buffers. Polls
 * zf_interrupted between batches (ZF_ERR_INTERRUPTED, nothing returned). */
zf_status zf_cuda_occlusion(zf_cuda_net *cn, const float *input, const zf_cuda_occl_params *p,
                            zf_cuda_occl_map **out);
void zf_cuda_occl_map_free(zf_cuda_occl_map *m);

#ifdef __cplusplus
}
#endif
#endif
