/* What the CUDA engine's files share and the public header hides: the context, the checked-call
 * macros (one per library, carrying the call text, function, file and line), convolution plans
 * and the kernels' launch helpers. Included only by the engine's .cu files. */
#ifndef ZF_CUDA_INTERNAL_H
#define ZF_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stddef.h>
#include <stdint.h>

#include "zf/cuda.h"
#include "zf/net.h"
#include "zf/ops.h"
#include "zf/status.h"

struct zf_cuda_ctx {
    int device;
    cudaStream_t stream;      /* every kernel and library call of this context */
    cudaStream_t copy_stream; /* host-to-device copies from pinned staging, overlapping compute */
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    zf_cuda_precision precision;
    int autotune;             /* time cuDNN's algorithms once per plan instead of asking its heuristics */
    size_t ws_limit;          /* largest cuDNN workspace one convolution may use, bytes */
    void *scratch;            /* grows on demand for the op-level entry points */
    size_t scratch_bytes;
    int sm_count;
    char name[256];
};

/* Recorders behind the macros: they build the message and return ZF_ERR_DEVICE. */
zf_status zf_cuda_fail_rt(cudaError_t e, const char *call, const char *func, const char *file, int line);
zf_status zf_cuda_fail_dnn(cudnnStatus_t e, const char *call, const char *func, const char *file, int line);
zf_status zf_cuda_fail_blas(cublasStatus_t e, const char *call, const char *func, const char *file, int line);

#define ZF_CU(call)                                                                                \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return zf_cuda_fail_rt(e_, #call, __func__, __FILE__, __LINE__);                       \
    } while (0)
#define ZF_CUDNN(call)                                                                             \
    do {                                                                                           \
        cudnnStatus_t e_ = (call);                                                                 \
        if (e_ != CUDNN_STATUS_SUCCESS)                                                            \
            return zf_cuda_fail_dnn(e_, #call, __func__, __FILE__, __LINE__);                      \
    } while (0)
#define ZF_CUBLAS(call)                                                                            \
    do {                                                                                           \
        cublasStatus_t e_ = (call);                                                                \
        if (e_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return zf_cuda_fail_blas(e_, #call, __func__, __FILE__, __LINE__);                     \
    } while (0)
/* After every kernel launch: a bad configuration shows up here, a fault at the next sync. */
#define ZF_LAUNCHED(name) ZF_CU(cudaPeekAtLastError())
/* Propagates a zf_status. */
#define ZF_TRY(x)                                                                                  \
    do {                                                                                           \
        zf_status st_ = (x);                                                                       \
        if (st_)                                                                                   \
            return st_;                                                                            \
    } while (0)

/* Threads per block for the elementwise kernels, and a grid that covers `count` items with a
 * grid-stride loop (capped so that huge tensors do not ask for absurd grids). */
#define ZF_THREADS 256
static inline unsigned zf_grid(size_t count)
{
    size_t b = (count + ZF_THREADS - 1) / ZF_THREADS;
    if (b < 1)
        b = 1;
    if (b > 65535u * 8u)
        b = 65535u * 8u;
    return (unsigned)b;
}

/* Scratch owned by the context (op-level entry points only; nets own their workspace). */
zf_status zf_cuda_ctx_scratch(zf_cuda_ctx *ctx, size_t bytes, void **out);

/* ---- convolution plans (cuda/conv.cu) ----
 * cuDNN descriptors and chosen algorithms for one convolution geometry. The batch given at init
 * is the largest; zf_cuda_conv_plan_set_batch re-describes a smaller one. Padding that cuDNN cannot
 * express (bottom/right padding other than the top/left one) goes through an explicitly padded
 * copy of the input in the workspace. */
typedef struct zf_cuda_conv_plan {
    zf_conv_geom g;           /* the geometry at the largest batch */
    int n;                    /* batch the descriptors describe now */
    int padded;               /* input copied into a (hp, wp) buffer padded by (pt, pl) */
    int hp, wp;               /* that buffer's size: (oh-1)*sh + kh, (ow-1)*sw + kw */
    int bf16;                 /* tensors in bfloat16 (ZF_CUDA_BF16): inputs/outputs converted */
    int want_bwd;             /* ZF_CUDA_PLAN_BWD_DATA and/or ZF_CUDA_PLAN_BWD_FILTER */
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv_fwd, conv_bwd;
    cudnnConvolutionFwdAlgo_t fwd_algo;
    cudnnConvolutionBwdDataAlgo_t bwd_algo;
    cudnnConvolutionBwdFilterAlgo_t bwf_algo;
    size_t fwd_ws, bwd_ws, bwf_ws; /* cuDNN workspace bytes at the largest batch */
} zf_cuda_conv_plan;
/* What a plan is made for beyond the forward: the input's gradient, the filters' gradient. */
#define ZF_CUDA_PLAN_BWD_DATA 1
#define ZF_CUDA_PLAN_BWD_FILTER 2

/* Optional device buffers for autotuning (cudnnFind...Ex writes into them); NULL to use the
 * heuristics. They must hold the largest batch. */
typedef struct zf_cuda_conv_bufs {
    float *x, *y;
    const void *w;
} zf_cuda_conv_bufs;

zf_status zf_cuda_conv_plan_init(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, const zf_conv_geom *g, int want_bwd,
                                 const zf_cuda_conv_bufs *bufs);
void zf_cuda_conv_plan_destroy(zf_cuda_conv_plan *p);
/* Bytes of workspace zf_cuda_conv_run_* need at the largest batch (cuDNN's plus padded/bf16 copies). */
size_t zf_cuda_conv_plan_ws_bytes(const zf_cuda_conv_plan *p);
/* out (n,k,oh,ow) = conv(in, w) + bias (NULL: none); relu_out, when not NULL, gets max(out, 0)
 * too (one pass for a conv followed by its ReLU). w is float, or bfloat16 for bf16 plans. */
zf_status zf_cuda_conv_run_forward(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, float *out, float *relu_out,
                                   const float *in, const void *w, const float *bias, int n, void *ws,
                                   size_t ws_bytes);
/* dw (k, c/groups, kh, kw) and db (k; may be NULL) = the gradient of the filters and bias summed
 * over the batch, from the forward's input in and dout (float32 plans only; a plan made with
 * ZF_CUDA_PLAN_BWD_FILTER). Overwrites dw and db. */
zf_status zf_cuda_conv_run_backward_filter(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, float *dw, float *db,
                                           const float *in, const float *dout, int n, void *ws, size_t ws_bytes);
/* din (n,c,h,w) = transposed convolution of dout with w (the deconvnet's filtering); overwrites din. */
zf_status zf_cuda_conv_run_backward_data(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, float *din, const float *dout,
                                         const void *w, int n, void *ws, size_t ws_bytes);

/* ---- kernels launched from more than one file ---- */
/* dst (n, c, hd, wd) = src (n, c, hs, ws) shifted: dst[y][x] = src[y + dy][x + dx], 0 outside src.
 * Converts between float and bfloat16 as the types say. */
zf_status zf_cuda_window_copy_f2f(zf_cuda_ctx *ctx, float *dst, const float *src, int n, int c, int hd, int wd,
                                  int hs, int ws, int dy, int dx);
zf_status zf_cuda_window_copy_f2b(zf_cuda_ctx *ctx, __nv_bfloat16 *dst, const float *src, int n, int c, int hd,
                                  int wd, int hs, int ws, int dy, int dx);
zf_status zf_cuda_window_copy_b2f(zf_cuda_ctx *ctx, float *dst, const __nv_bfloat16 *src, int n, int c, int hd,
                                  int wd, int hs, int ws, int dy, int dx);
zf_status zf_cuda_f2bf16(zf_cuda_ctx *ctx, __nv_bfloat16 *dst, const float *src, size_t count);
/* out[i] += bias[channel of i] over (n, k, hw); relu_out (may be NULL) gets max(out, 0). */
zf_status zf_cuda_bias_relu(zf_cuda_ctx *ctx, float *out, float *relu_out, const float *bias, int n, int k,
                            int hw);

/* zf_cuda_fc_forward with the precision given rather than the context's (nets keep their own). */
zf_status zf_cuda_fc_run(zf_cuda_ctx *ctx, zf_cuda_precision prec, float *out, const float *in, const float *w,
                         const float *bias, int n, int in_f, int out_f);


/* ---- a net on the device (cuda/net.cu) ---- */
struct zf_cuda_net {
    zf_cuda_ctx *ctx;
    int owns_ctx;                /* made by zf_cuda_open */
    const zf_net *net;           /* borrowed */
    int batch;
    zf_cuda_precision precision; /* fixed when made: plans and bf16 weights depend on it */
    float *params;               /* the parameter block, same offsets as net->params */
    __nv_bfloat16 *params_bf16;  /* BF16 only: the same block rounded, for the convolutions */
    float *input;                /* (batch, in_c, in_h, in_w) */
    float **acts;                /* per layer; in-place layers alias the previous buffer */
    int32_t **switches;          /* max-pool layers */
    float *dec[2];               /* deconvnet ping-pong */
    size_t dec_floats;
    void *ws;                    /* largest convolution workspace */
    size_t ws_bytes;
    zf_cuda_conv_plan *plans;    /* per layer; set for conv layers */
    int32_t *small;              /* (batch, 2) ints: deconvnet channels and positions */
    float *stage[2];             /* pinned staging, allocated on first use */
    cudaEvent_t stage_free[2];   /* recorded after each slot's upload */
    cudaEvent_t staged[2];
    size_t bytes;                /* device bytes held */
    int plan_flags;              /* ZF_CUDA_PLAN_BWD_DATA, with ZF_CUDA_PLAN_BWD_FILTER for training */
};
/* zf_cuda_net_new with the convolutions also planned for their filters' gradient (training). */
zf_status zf_cuda_net_new_training(zf_cuda_ctx *ctx, const zf_net *net, int batch, zf_cuda_net **out);
/* The device net a trainer steps (its weights are the ones being trained); the trainer owns it. */
zf_cuda_net *zf_cuda_trainer_net(zf_cuda_trainer *t);

/* Layer i's input on the device: the previous layer's output, or the net's input for i == 0. */
static inline const float *zf_cuda_net_in(const zf_cuda_net *cn, int prev)
{
    return prev < 0 ? cn->input : cn->acts[prev];
}
/* Device pointer to layer i's weights/bias inside the uploaded block (NULL if none). */
static inline const float *zf_cuda_net_weight(const zf_cuda_net *cn, int i)
{
    const zf_layer *l = &cn->net->layers[i];
    return l->weight ? cn->params + (l->weight - cn->net->params) : (const float *)0;
}
static inline const float *zf_cuda_net_bias(const zf_cuda_net *cn, int i)
{
    const zf_layer *l = &cn->net->layers[i];
    return l->bias ? cn->params + (l->bias - cn->net->params) : (const float *)0;
}
/* What the convolution of layer i takes as weights: float, or the bf16 copy. */
static inline const void *zf_cuda_net_conv_weight(const zf_cuda_net *cn, int i)
{
    const zf_layer *l = &cn->net->layers[i];
    if (cn->params_bf16)
        return cn->params_bf16 + (l->weight - cn->net->params);
    return zf_cuda_net_weight(cn, i);
}
static inline zf_status zf_cuda_net_enter(zf_cuda_net *cn)
{
    ZF_CU(cudaSetDevice(cn->ctx->device));
    return ZF_OK;
}

#endif
