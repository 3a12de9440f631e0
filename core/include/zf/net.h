/* Networks as a chain of layers over one parameter block, built-in architectures, and the
 * forward pass of the CPU engine. */
#ifndef ZF_NET_H
#define ZF_NET_H

#include <stddef.h>
#include <stdint.h>

#include "zf/ops.h"
#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZF_OP_CONV = 0,
    ZF_OP_RELU,
    ZF_OP_LRN,
    ZF_OP_MAXPOOL,
    ZF_OP_AVGPOOL,
    ZF_OP_ADAPTIVE_AVGPOOL,
    ZF_OP_FLATTEN,
    ZF_OP_FC,
    ZF_OP_DROPOUT,
    ZF_OP_SOFTMAX
} zf_op;

const char *zf_op_name(zf_op op);

/* A window: kernel, stride and padding (top, left, bottom, right). */
typedef struct zf_window {
    int kh, kw, sh, sw, pt, pl, pb, pr;
} zf_window;

/* A square window with symmetric padding. */
static inline zf_window zf_win(int k, int s, int p)
{
    zf_window w = {k, k, s, s, p, p, p, p};
    return w;
}

typedef struct zf_layer {
    char name[32];         /* Caffe-style name (conv1, relu1, ...): names the output of this op */
    char graph_name[128];  /* the source graph's name for this output (ONNX), "" for built-ins */
    zf_op op;
    int in_c, in_h, in_w;  /* per-image input; flattened tensors have h = w = 1 */
    int out_c, out_h, out_w;
    zf_window win;         /* conv and pools */
    int groups;            /* conv */
    int ceil_mode;         /* pools */
    int count_include_pad; /* average pool */
    zf_lrn_params lrn;
    float dropout_p;
    float *weight;         /* into zf_net.params; conv (k, c/groups, kh, kw), fc (out, in) */
    float *bias;
    int64_t weight_count, bias_count;
    int in_place;          /* the output is the input buffer itself (dropout, flatten) */
} zf_layer;

/* Channel order of the net's input; GREY is one plane, the luma of the RGB image. */
typedef enum { ZF_COLOR_RGB = 0, ZF_COLOR_BGR = 1, ZF_COLOR_GREY = 2 } zf_color_order;
typedef enum { ZF_RESIZE_SHORT_CROP = 0, ZF_RESIZE_EXACT = 1 } zf_resize_mode;

/* How an image becomes the net's input: pixel p in [0, 255] of channel c (RGB order) becomes
 * (p / 255 * scale - mean[c]) / std[c], then channels are put in `order`. */
typedef struct zf_preproc {
    zf_color_order order;
    float scale;       /* 1 for inputs in [0,1], 255 for [0,255] */
    float mean[3];     /* R, G, B */
    float std[3];      /* R, G, B */
    zf_resize_mode resize;
    int resize_short;  /* ZF_RESIZE_SHORT_CROP: short side first resized to this, then centre crop */
} zf_preproc;

typedef struct zf_net {
    char arch[64];     /* "alexnet", "alexnet-caffe", "zfnet", or the model file's recognised name */
    int in_c, in_h, in_w;
    zf_preproc pre;
    int n_layers, cap_layers;
    zf_layer *layers;
    float *params;     /* one block; every layer's weight and bias point into it */
    int64_t n_params;
    /* Buffers of the CPU engine, sized by zf_net_reserve() for `batch` images. */
    int batch;
    float *input;      /* (batch, in_c, in_h, in_w) */
    float **acts;      /* acts[i]: output of layer i, (batch, out_c, out_h, out_w) */
    int32_t **switches;/* switches[i]: max-pool layers only, same shape as acts[i] */
    float *ws;         /* convolution scratch */
    size_t ws_floats;
    float *dec[2];     /* deconvnet ping-pong buffers */
    size_t dec_floats;
    float *dec_scratch;/* deconvnet: compacted sub-windows, 2 * dec_floats */
    struct zf_conv_filter_cache *filter_cache; /* per layer: conv layers' Winograd filters, reused */
    struct zf_bf16_weights *bf16; /* set while a cpu engine opened with precision bf16 runs the net:
                                     its conv and fc layers take bfloat16 operands (core/bf16.c) */
    int n_labels;      /* class names carried by the model file (zf_net_set_labels), or 0 */
    char **labels;
} zf_net;

/* Building: layers are appended in order; each computes its output shape from the previous one. */
zf_net *zf_net_new(const char *arch, int in_c, int in_h, int in_w);
zf_status zf_net_add_conv(zf_net *net, const char *name, int out_c, zf_window win, int groups);
zf_status zf_net_add_relu(zf_net *net, const char *name);
zf_status zf_net_add_lrn(zf_net *net, const char *name, zf_lrn_params p);
zf_status zf_net_add_maxpool(zf_net *net, const char *name, zf_window win, int ceil_mode);
zf_status zf_net_add_avgpool(zf_net *net, const char *name, zf_window win, int ceil_mode,
                             int count_include_pad);
zf_status zf_net_add_adaptive_avgpool(zf_net *net, const char *name, int oh, int ow);
zf_status zf_net_add_flatten(zf_net *net, const char *name);
zf_status zf_net_add_fc(zf_net *net, const char *name, int out_features);
zf_status zf_net_add_dropout(zf_net *net, const char *name, float p);
zf_status zf_net_add_softmax(zf_net *net, const char *name);
/* Allocates the parameter block (zeros) and points each layer into it. */
zf_status zf_net_finalize(zf_net *net);
void zf_net_free(zf_net *net);

/* Output size of a pooling or convolution window along one axis (PyTorch's rule for ceil mode:
 * the last window must start inside the input or its leading padding); <= 0 if none fits. */
int zf_window_out(int in, int k, int s, int pad_lo, int pad_hi, int ceil_mode);

/* Built-in architectures: "alexnet", "alexnet-caffe", "zfnet", "zfnet-pytorch" (3 x 224/227, 1000 classes) and the
 * mini nets "alexnet-mini", "zfnet-mini" (1 x 112 x 112, 10 classes). NULL-terminated list. */
extern const char *const zf_builtin_archs[];
zf_status zf_net_new_builtin(const char *arch, zf_net **out);
/* The same with in_c input channels (1 or 3) and `classes` outputs; 0 takes the arch's default. */
zf_status zf_net_new_builtin_ex(const char *arch, int in_c, int classes, zf_net **out);
/* The same, refusing (ZF_ERR_FORMAT, before the parameter block is allocated) a net of more than
 * max_params parameters: a loader passes what its file can hold, so that a header that lies
 * about the class count cannot make it allocate gigabytes. */
zf_status zf_net_new_builtin_bounded(const char *arch, int in_c, int classes, int64_t max_params,
                                     zf_net **out);
/* 1 for "alexnet-mini" and "zfnet-mini". */
int zf_arch_is_mini(const char *arch);

/* Class names (a model file's "zfviz.classes"); the net owns a copy. NULL/0 clears them. */
zf_status zf_net_set_labels(zf_net *net, int n, const char *const *names);
/* The name of class k from the net's own labels, or NULL when it has none for k. */
const char *zf_net_label(const zf_net *net, int k);

/* Index of the layer named `name` (Caffe-style or graph name), or -1. */
int zf_net_find(const zf_net *net, const char *name);
static inline int64_t zf_layer_out_size(const zf_layer *l) { return (int64_t)l->out_c * l->out_h * l->out_w; }
static inline int64_t zf_layer_in_size(const zf_layer *l) { return (int64_t)l->in_c * l->in_h * l->in_w; }
static inline int64_t zf_net_in_size(const zf_net *net) { return (int64_t)net->in_c * net->in_h * net->in_w; }
/* Total parameters (weights and biases). */
int64_t zf_net_param_count(const zf_net *net);

/* Allocates (or grows) the CPU buffers for batches of up to `batch` images. */
zf_status zf_net_reserve(zf_net *net, int batch);
/* Forward of n <= batch images from `input` (n, in_c, in_h, in_w); NULL uses net->input as filled
 * by the caller. Every layer's output stays in net->acts. */
zf_status zf_net_forward(zf_net *net, const float *input, int n);
/* Forward of layers 0..last only (what the deconvnet of a layer at or below `last` needs). */
zf_status zf_net_forward_upto(zf_net *net, const float *input, int n, int last);
/* Runs layers first..last (inclusive) on the buffers already there (net->input or acts[first-1]). */
zf_status zf_net_forward_range(zf_net *net, int first, int last, int n);
/* Output buffer of layer i for the batch, or the input for i == -1. */
static inline float *zf_net_act(const zf_net *net, int i) { return i < 0 ? net->input : net->acts[i]; }
/* Geometry of a conv or pool layer for a batch of n. */
zf_conv_geom zf_layer_conv_geom(const zf_layer *l, int n);
zf_pool_geom zf_layer_pool_geom(const zf_layer *l, int n);

/* Weights. `spec` is "random:SEED" (N(0, 0.01) weights, zero biases, deterministic for a seed),
 * a folder of <layer>.weight.npy / <layer>.bias.npy (PyTorch layout), or a .safetensors file. */
zf_status zf_net_load_weights(zf_net *net, const char *spec);
zf_status zf_net_init_random(zf_net *net, uint64_t seed);
zf_status zf_net_load_npy_dir(zf_net *net, const char *dir);
zf_status zf_net_save_npy_dir(const zf_net *net, const char *dir);
zf_status zf_net_save_safetensors(const zf_net *net, const char *path);
zf_status zf_net_load_safetensors(zf_net *net, const char *path);
/* The same with metadata pairs meta_kv (NULL-terminated key, value, ...) and, when `extra` is not
 * NULL, a second block laid out like net->params saved as "momentum.<layer>.weight" tensors (the
 * trainer's checkpoints). Written beside `path` and renamed over it: complete or not at all. */
zf_status zf_net_save_safetensors_ex(const zf_net *net, const char *path, const char *const *meta_kv,
                                     const float *extra);
/* Loads the tensors and, when extra is given, the momentum.* block into it (all must be there). */
zf_status zf_net_load_safetensors_ex(zf_net *net, const char *path, float *extra);

/* The deconvnet (Zeiler & Fergus 2.1): project the rectified output of a conv layer back to
 * pixel space through switches, unpooling, rectification and transposed filtering. */
typedef enum { ZF_DECONV_UNIT = 0, ZF_DECONV_MAP = 1 } zf_deconv_mode;
typedef struct zf_deconv_req {
    int layer;              /* a conv layer, or the ReLU that follows it; its ReLU output is used */
    zf_deconv_mode mode;
    int lrn_backward;       /* 0: LRN is the identity on the way down (default); 1: true backward */
    const int *channel;     /* per image */
    int *y, *x;             /* per image, UNIT mode: the position, or -1 for the strongest (first
                             * maximum in row-major order); the position used is written back */
} zf_deconv_req;
/* What a request starts from, checked once for every engine: the conv layer and the layer that
 * rectifies it (its top), every image's channel in range. */
typedef struct zf_deconv_start {
    int conv, top;
} zf_deconv_start;
zf_status zf_deconv_resolve(const zf_net *net, const zf_deconv_req *req, int n, zf_deconv_start *out);
/* Needs a forward of the same n images first (the switches). out is (n, in_c, in_h, in_w). */
zf_status zf_net_deconv(zf_net *net, float *out, int n, const zf_deconv_req *req);
/* The conv layer whose rectified output `name` means ("conv5", "relu5" or a graph name), or -1. */
int zf_net_find_conv(const zf_net *net, const char *name);
/* Index of the ReLU that rectifies conv layer `conv` (the next layer), or `conv` if none. */
int zf_net_rectified(const zf_net *net, int conv);

#ifdef __cplusplus
}
#endif
#endif
