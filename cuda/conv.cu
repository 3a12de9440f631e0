/* Convolution with groups on the GPU: cuDNN forward and backward-data (the deconvnet's transposed
 * filtering), with the algorithm chosen once per geometry. FP32 keeps to FMA arithmetic and to the
 * algorithms whose rounding matches a direct sum (no FFT, no non-fused Winograd); TF32 and BF16
 * let cuDNN use the tensor cores. */
#include <string.h>

#include "internal.h"
#include "reduce.cuh"

/* ---- small kernels shared with the rest of the engine ---- */

template <typename S, typename D> __device__ static inline D convert(S v);
template <> __device__ inline float convert<float, float>(float v) { return v; }
template <> __device__ inline __nv_bfloat16 convert<float, __nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <> __device__ inline float convert<__nv_bfloat16, float>(__nv_bfloat16 v) { return __bfloat162float(v); }

/* dst (n, c, hd, wd)[y][x] = src (n, c, hs, ws)[y + dy][x + dx], zero outside src. */
template <typename S, typename D>
__global__ static void window_copy_kernel(D *dst, const S *src, size_t planes, int hd, int wd, int hs, int ws,
                                          int dy, int dx)
{
    const size_t total = planes * (size_t)hd * wd;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int x = (int)(i % wd), y = (int)((i / wd) % hd);
        const size_t p = i / ((size_t)hd * wd);
        const int sy = y + dy, sx = x + dx;
        D v = convert<float, D>(0.0f);
        if (sy >= 0 && sy < hs && sx >= 0 && sx < ws)
            v = convert<S, D>(src[(p * hs + sy) * ws + sx]);
        dst[i] = v;
    }
}

template <typename S, typename D>
static zf_status window_copy(zf_cuda_ctx *ctx, D *dst, const S *src, int n, int c, int hd, int wd, int hs, int ws,
                             int dy, int dx)
{
    const size_t planes = (size_t)n * c, total = planes * hd * wd;
    window_copy_kernel<S, D><<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(dst, src, planes, hd, wd, hs, ws, dy, dx);
    ZF_LAUNCHED("window_copy");
    return ZF_OK;
}

zf_status zf_cuda_window_copy_f2f(zf_cuda_ctx *ctx, float *dst, const float *src, int n, int c, int hd, int wd,
                                  int hs, int ws, int dy, int dx)
{
    return window_copy<float, float>(ctx, dst, src, n, c, hd, wd, hs, ws, dy, dx);
}

zf_status zf_cuda_window_copy_f2b(zf_cuda_ctx *ctx, __nv_bfloat16 *dst, const float *src, int n, int c, int hd,
                                  int wd, int hs, int ws, int dy, int dx)
{
    return window_copy<float, __nv_bfloat16>(ctx, dst, src, n, c, hd, wd, hs, ws, dy, dx);
}

zf_status zf_cuda_window_copy_b2f(zf_cuda_ctx *ctx, float *dst, const __nv_bfloat16 *src, int n, int c, int hd,
                                  int wd, int hs, int ws, int dy, int dx)
{
    return window_copy<__nv_bfloat16, float>(ctx, dst, src, n, c, hd, wd, hs, ws, dy, dx);
}

__global__ static void f2bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t count)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16(src[i]);
}

zf_status zf_cuda_f2bf16(zf_cuda_ctx *ctx, __nv_bfloat16 *dst, const float *src, size_t count)
{
    if (count == 0)
        return ZF_OK;
    f2bf16_kernel<<<zf_grid(count), ZF_THREADS, 0, ctx->stream>>>(dst, src, count);
    ZF_LAUNCHED("f2bf16");
    return ZF_OK;
}

__global__ static void bias_relu_kernel(float *out, float *relu_out, const float *bias, size_t total, int k, int hw)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float v = out[i];
        if (bias) {
            v = v + bias[(i / hw) % k];
            out[i] = v;
        }
        if (relu_out)
            relu_out[i] = v > 0.0f ? v : 0.0f; /* as zf_relu_forward: NaN and -0 become 0 */
    }
}

zf_status zf_cuda_bias_relu(zf_cuda_ctx *ctx, float *out, float *relu_out, const float *bias, int n, int k, int hw)
{
    if (!bias && !relu_out)
        return ZF_OK;
    const size_t total = (size_t)n * k * hw;
    bias_relu_kernel<<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(out, relu_out, bias, total, k, hw);
    ZF_LAUNCHED("bias_relu");
    return ZF_OK;
}

/* ---- plans ---- */

static size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

/* FP32 keeps to algorithms whose sums round like a direct convolution; the others are allowed
 * once the user asked for tensor-core precision anyway. */
static int fwd_allowed(zf_cuda_precision prec, cudnnConvolutionFwdAlgo_t a, cudnnMathType_t m)
{
    if (prec != ZF_CUDA_FP32)
        return 1;
    if (m != CUDNN_FMA_MATH && m != CUDNN_DEFAULT_MATH)
        return 0;
    switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM:
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM:
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT:
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD:
        return 1;
    default:
        return 0;
    }
}

static int bwd_allowed(zf_cuda_precision prec, cudnnConvolutionBwdDataAlgo_t a, cudnnMathType_t m)
{
    if (prec != ZF_CUDA_FP32)
        return 1;
    if (m != CUDNN_FMA_MATH && m != CUDNN_DEFAULT_MATH)
        return 0;
    switch (a) {
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0:
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1:
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD:
        return 1;
    default:
        return 0;
    }
}

static cudnnMathType_t plan_math(zf_cuda_precision prec)
{
    /* CUDNN_DEFAULT_MATH would let cuDNN run FP32 data through TF32 tensor cores on Ampere and
     * later; CUDNN_FMA_MATH forbids it. */
    return prec == ZF_CUDA_FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
}

static zf_status describe_batch(zf_cuda_conv_plan *p, int n)
{
    const zf_conv_geom *g = &p->g;
    const cudnnDataType_t dt = p->bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    ZF_CUDNN(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, dt, n, g->c, p->padded ? p->hp : g->h,
                                        p->padded ? p->wp : g->w));
    ZF_CUDNN(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, dt, n, g->k, g->oh, g->ow));
    p->n = n;
    return ZF_OK;
}

/* Picks the forward algorithm: timed (autotune, with real buffers) or by cuDNN's heuristics, the
 * fastest allowed one whose workspace fits `limit`. */
static zf_status choose_fwd(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, const zf_cuda_conv_bufs *bufs, void *tune_ws,
                            size_t limit)
{
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    if (tune_ws)
        ZF_CUDNN(cudnnFindConvolutionForwardAlgorithmEx(ctx->dnn, p->x, bufs->x, p->w, bufs->w, p->conv_fwd, p->y,
                                                        bufs->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf,
                                                        tune_ws, limit));
    else
        ZF_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(ctx->dnn, p->x, p->w, p->conv_fwd, p->y,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
    for (int i = 0; i < got; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > limit ||
            !fwd_allowed(ctx->precision, perf[i].algo, perf[i].mathType))
            continue;
        ZF_CUDNN(cudnnSetConvolutionMathType(p->conv_fwd, perf[i].mathType));
        size_t bytes = 0;
        if (cudnnGetConvolutionForwardWorkspaceSize(ctx->dnn, p->x, p->w, p->conv_fwd, p->y, perf[i].algo, &bytes) !=
                CUDNN_STATUS_SUCCESS ||
            bytes > limit) {
            ZF_CUDNN(cudnnSetConvolutionMathType(p->conv_fwd, plan_math(ctx->precision)));
            continue;
        }
        p->fwd_algo = perf[i].algo;
        p->fwd_ws = bytes;
        return ZF_OK;
    }
    /* Implicit GEMM needs no workspace and takes every geometry. */
    ZF_CUDNN(cudnnSetConvolutionMathType(p->conv_fwd, plan_math(ctx->precision)));
    p->fwd_algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    ZF_CUDNN(cudnnGetConvolutionForwardWorkspaceSize(ctx->dnn, p->x, p->w, p->conv_fwd, p->y, p->fwd_algo,
                                                     &p->fwd_ws));
    return ZF_OK;
}

static zf_status choose_bwd(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, const zf_cuda_conv_bufs *bufs, void *tune_ws,
                            size_t limit)
{
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int got = 0;
    if (tune_ws)
        ZF_CUDNN(cudnnFindConvolutionBackwardDataAlgorithmEx(ctx->dnn, p->w, bufs->w, p->y, bufs->y, p->conv_bwd,
                                                             p->x, bufs->x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                             &got, perf, tune_ws, limit));
    else
        ZF_CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx->dnn, p->w, p->y, p->conv_bwd, p->x,
                                                             CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf));
    for (int i = 0; i < got; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > limit ||
            !bwd_allowed(ctx->precision, perf[i].algo, perf[i].mathType))
            continue;
        ZF_CUDNN(cudnnSetConvolutionMathType(p->conv_bwd, perf[i].mathType));
        size_t bytes = 0;
        if (cudnnGetConvolutionBackwardDataWorkspaceSize(ctx->dnn, p->w, p->y, p->conv_bwd, p->x, perf[i].algo,
                                                         &bytes) != CUDNN_STATUS_SUCCESS ||
            bytes > limit) {
            ZF_CUDNN(cudnnSetConvolutionMathType(p->conv_bwd, plan_math(ctx->precision)));
            continue;
        }
        p->bwd_algo = perf[i].algo;
        p->bwd_ws = bytes;
        return ZF_OK;
    }
    ZF_CUDNN(cudnnSetConvolutionMathType(p->conv_bwd, plan_math(ctx->precision)));
    p->bwd_algo = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
    ZF_CUDNN(cudnnGetConvolutionBackwardDataWorkspaceSize(ctx->dnn, p->w, p->y, p->conv_bwd, p->x, p->bwd_algo,
                                                          &p->bwd_ws));
    return ZF_OK;
}

/* The filters' gradient: cuDNN's deterministic algorithm 1 (0 and 3 add with atomics, in another
 * order on every run), with its heuristics' math type where that is plain FP32. */
static zf_status choose_bwf(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, size_t limit)
{
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int got = 0;
    ZF_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7(ctx->dnn, p->x, p->y, p->conv_bwd, p->w,
                                                           CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf));
    p->bwf_algo = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
    ZF_CUDNN(cudnnGetConvolutionBackwardFilterWorkspaceSize(ctx->dnn, p->x, p->y, p->conv_bwd, p->w, p->bwf_algo,
                                                            &p->bwf_ws));
    if (p->bwf_ws > limit)
        return zf_error(ZF_ERR_DEVICE, "the filters' gradient of a %dx%d convolution needs %zu bytes of workspace, "
                                       "more than the %zu allowed", p->g.kh, p->g.kw, p->bwf_ws, limit);
    return ZF_OK;
}

static zf_status plan_init(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, const zf_conv_geom *g, int want_bwd,
                           const zf_cuda_conv_bufs *bufs)
{
    if (g->n < 1 || g->groups < 1 || g->c % g->groups || g->k % g->groups || g->oh < 1 || g->ow < 1 || g->kh < 1 ||
        g->kw < 1 || g->sh < 1 || g->sw < 1 || g->pt < 0 || g->pl < 0)
        return zf_error(ZF_ERR_SHAPE, "convolution %dx%dx%d -> %dx%dx%d (%dx%d/%d, groups %d) cannot be planned",
                        g->c, g->h, g->w, g->k, g->oh, g->ow, g->kh, g->kw, g->sh, g->groups);
    p->g = *g;
    p->want_bwd = want_bwd;
    p->bf16 = ctx->precision == ZF_CUDA_BF16;
    /* cuDNN pads both sides alike; when the output size implies other bottom/right padding, the
     * input goes through a copy padded by (pt, pl) and sized exactly for the output. */
    const int sym_h = g->h + 2 * g->pt >= g->kh ? (g->h + 2 * g->pt - g->kh) / g->sh + 1 : 0;
    const int sym_w = g->w + 2 * g->pl >= g->kw ? (g->w + 2 * g->pl - g->kw) / g->sw + 1 : 0;
    p->padded = sym_h != g->oh || sym_w != g->ow;
    p->hp = (g->oh - 1) * g->sh + g->kh;
    p->wp = (g->ow - 1) * g->sw + g->kw;
    const cudnnDataType_t dt = p->bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;

    ZF_CUDNN(cudnnCreateTensorDescriptor(&p->x));
    ZF_CUDNN(cudnnCreateTensorDescriptor(&p->y));
    ZF_CUDNN(cudnnCreateFilterDescriptor(&p->w));
    ZF_CUDNN(cudnnCreateConvolutionDescriptor(&p->conv_fwd));
    ZF_CUDNN(cudnnCreateConvolutionDescriptor(&p->conv_bwd));
    ZF_TRY(describe_batch(p, g->n));
    ZF_CUDNN(cudnnSetFilter4dDescriptor(p->w, dt, CUDNN_TENSOR_NCHW, g->k, g->c / g->groups, g->kh, g->kw));
    const int ph = p->padded ? 0 : g->pt, pw = p->padded ? 0 : g->pl;
    cudnnConvolutionDescriptor_t convs[2] = {p->conv_fwd, p->conv_bwd};
    for (int i = 0; i < 2; i++) {
        /* Accumulation in float whatever the tensors hold (PSEUDO_BFLOAT16 for bf16). */
        ZF_CUDNN(cudnnSetConvolution2dDescriptor(convs[i], ph, pw, g->sh, g->sw, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT));
        ZF_CUDNN(cudnnSetConvolutionGroupCount(convs[i], g->groups));
        ZF_CUDNN(cudnnSetConvolutionMathType(convs[i], plan_math(ctx->precision)));
    }
    int dn, dk, dh, dw;
    ZF_CUDNN(cudnnGetConvolution2dForwardOutputDim(p->conv_fwd, p->x, p->w, &dn, &dk, &dh, &dw));
    if (dn != g->n || dk != g->k || dh != g->oh || dw != g->ow)
        return zf_error(ZF_ERR_SHAPE, "convolution %dx%dx%d -> %dx%dx%d: cuDNN computes %dx%dx%d", g->c, g->h, g->w,
                        g->k, g->oh, g->ow, dk, dh, dw);

    size_t limit = ctx->ws_limit;
    void *tune_ws = NULL;
    /* Timing needs buffers of the descriptors' shapes: not for the padded copy. */
    if (ctx->autotune && bufs && !p->padded) {
        if (cudaMalloc(&tune_ws, limit) != cudaSuccess) {
            cudaGetLastError();
            tune_ws = NULL;
        }
    }
    zf_status st = choose_fwd(ctx, p, bufs, tune_ws, limit);
    if (!st && (want_bwd & ZF_CUDA_PLAN_BWD_DATA))
        st = choose_bwd(ctx, p, bufs, tune_ws, limit);
    if (!st && (want_bwd & ZF_CUDA_PLAN_BWD_FILTER)) {
        if (p->bf16 || ctx->precision != ZF_CUDA_FP32)
            st = zf_error(ZF_ERR_UNSUPPORTED, "the filters' gradient on the GPU is computed in fp32 only");
        else
            st = choose_bwf(ctx, p, limit);
    }
    if (tune_ws) {
        cudaStreamSynchronize(ctx->stream);
        cudaFree(tune_ws);
    }
    return st;
}

zf_status zf_cuda_conv_plan_init(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, const zf_conv_geom *g, int want_bwd,
                                 const zf_cuda_conv_bufs *bufs)
{
    memset(p, 0, sizeof *p);
    zf_status st = plan_init(ctx, p, g, want_bwd, bufs);
    if (st)
        zf_cuda_conv_plan_destroy(p);
    return st;
}

void zf_cuda_conv_plan_destroy(zf_cuda_conv_plan *p)
{
    if (!p)
        return;
    if (p->x)
        cudnnDestroyTensorDescriptor(p->x);
    if (p->y)
        cudnnDestroyTensorDescriptor(p->y);
    if (p->w)
        cudnnDestroyFilterDescriptor(p->w);
    if (p->conv_fwd)
        cudnnDestroyConvolutionDescriptor(p->conv_fwd);
    if (p->conv_bwd)
        cudnnDestroyConvolutionDescriptor(p->conv_bwd);
    memset(p, 0, sizeof *p);
}

/* Bytes of the converted/padded copies next to cuDNN's workspace. */
static size_t in_copy_bytes(const zf_cuda_conv_plan *p, int n)
{
    if (!p->padded && !p->bf16)
        return 0;
    const int h = p->padded ? p->hp : p->g.h, w = p->padded ? p->wp : p->g.w;
    return align256((size_t)n * p->g.c * h * w * (p->bf16 ? 2 : 4));
}

static size_t out_copy_bytes(const zf_cuda_conv_plan *p, int n)
{
    return p->bf16 ? align256((size_t)n * p->g.k * p->g.oh * p->g.ow * 2) : 0;
}

size_t zf_cuda_conv_plan_ws_bytes(const zf_cuda_conv_plan *p)
{
    const int n = p->g.n;
    size_t f = align256(p->fwd_ws) + in_copy_bytes(p, n) + out_copy_bytes(p, n);
    size_t b = p->want_bwd & ZF_CUDA_PLAN_BWD_DATA ? align256(p->bwd_ws) + in_copy_bytes(p, n) + out_copy_bytes(p, n)
                                                   : 0;
    size_t wf = p->want_bwd & ZF_CUDA_PLAN_BWD_FILTER ? align256(p->bwf_ws) + in_copy_bytes(p, n) : 0;
    b = b > wf ? b : wf;
    return f > b ? f : b;
}

/* Re-describes the plan for a batch of n (<= the planned batch). The algorithms chosen for the
 * planned batch take every smaller one in practice; if cuDNN says otherwise for one, or wants more
 * workspace than was reserved, implicit GEMM (no workspace) is used for that call. */
static zf_status set_batch(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, int n, int bwd, size_t ws_avail,
                           cudnnConvolutionFwdAlgo_t *fa, cudnnConvolutionBwdDataAlgo_t *ba, size_t *need)
{
    if (n < 1 || n > p->g.n)
        return zf_error(ZF_ERR_ARG, "convolution of %d images planned for at most %d", n, p->g.n);
    if (n != p->n)
        ZF_TRY(describe_batch(p, n));
    size_t bytes = 0;
    if (!bwd) {
        *fa = p->fwd_algo;
        if (cudnnGetConvolutionForwardWorkspaceSize(ctx->dnn, p->x, p->w, p->conv_fwd, p->y, *fa, &bytes) !=
                CUDNN_STATUS_SUCCESS ||
            bytes > ws_avail) {
            *fa = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
            ZF_CUDNN(cudnnGetConvolutionForwardWorkspaceSize(ctx->dnn, p->x, p->w, p->conv_fwd, p->y, *fa, &bytes));
        }
    } else {
        *ba = p->bwd_algo;
        if (cudnnGetConvolutionBackwardDataWorkspaceSize(ctx->dnn, p->w, p->y, p->conv_bwd, p->x, *ba, &bytes) !=
                CUDNN_STATUS_SUCCESS ||
            bytes > ws_avail) {
            *ba = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
            ZF_CUDNN(cudnnGetConvolutionBackwardDataWorkspaceSize(ctx->dnn, p->w, p->y, p->conv_bwd, p->x, *ba,
                                                                  &bytes));
        }
    }
    if (bytes > ws_avail)
        return zf_error(ZF_ERR_DEVICE, "convolution needs %zu bytes of workspace, %zu reserved", bytes, ws_avail);
    *need = bytes;
    return ZF_OK;
}

zf_status zf_cuda_conv_run_forward(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, float *out, float *relu_out,
                                   const float *in, const void *w, const float *bias, int n, void *ws,
                                   size_t ws_bytes)
{
    const zf_conv_geom *g = &p->g;
    const size_t copies = in_copy_bytes(p, n) + out_copy_bytes(p, n);
    if (ws_bytes < copies)
        return zf_error(ZF_ERR_DEVICE, "convolution workspace of %zu bytes is too small", ws_bytes);
    cudnnConvolutionFwdAlgo_t algo;
    size_t dnn_bytes = 0;
    ZF_TRY(set_batch(ctx, p, n, 0, ws_bytes - copies, &algo, NULL, &dnn_bytes));
    char *base = (char *)ws;
    void *dnn_ws = dnn_bytes ? base : NULL;
    char *in_copy = base + align256(dnn_bytes);
    char *out_copy = in_copy + in_copy_bytes(p, n);

    const void *x = in;
    if (p->bf16) {
        __nv_bfloat16 *xb = (__nv_bfloat16 *)in_copy;
        if (p->padded)
            ZF_TRY(zf_cuda_window_copy_f2b(ctx, xb, in, n, g->c, p->hp, p->wp, g->h, g->w, -g->pt, -g->pl));
        else
            ZF_TRY(zf_cuda_f2bf16(ctx, xb, in, (size_t)n * g->c * g->h * g->w));
        x = xb;
    } else if (p->padded) {
        ZF_TRY(zf_cuda_window_copy_f2f(ctx, (float *)in_copy, in, n, g->c, p->hp, p->wp, g->h, g->w, -g->pt, -g->pl));
        x = in_copy;
    }
    void *y = p->bf16 ? (void *)out_copy : (void *)out;
    const float one = 1.0f, zero = 0.0f;
    ZF_CUDNN(cudnnConvolutionForward(ctx->dnn, &one, p->x, x, p->w, w, p->conv_fwd, algo, dnn_ws, dnn_bytes, &zero,
                                     p->y, y));
    if (p->bf16)
        ZF_TRY(zf_cuda_window_copy_b2f(ctx, out, (const __nv_bfloat16 *)out_copy, n, g->k, g->oh, g->ow, g->oh, g->ow,
                                       0, 0));
    return zf_cuda_bias_relu(ctx, out, relu_out, bias, n, g->k, g->oh * g->ow);
}

zf_status zf_cuda_conv_run_backward_data(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, float *din, const float *dout,
                                         const void *w, int n, void *ws, size_t ws_bytes)
{
    const zf_conv_geom *g = &p->g;
    if (!(p->want_bwd & ZF_CUDA_PLAN_BWD_DATA))
        return zf_error(ZF_ERR_ARG, "convolution plan made without its backward pass");
    const size_t copies = in_copy_bytes(p, n) + out_copy_bytes(p, n);
    if (ws_bytes < copies)
        return zf_error(ZF_ERR_DEVICE, "convolution workspace of %zu bytes is too small", ws_bytes);
    cudnnConvolutionBwdDataAlgo_t algo;
    size_t dnn_bytes = 0;
    ZF_TRY(set_batch(ctx, p, n, 1, ws_bytes - copies, NULL, &algo, &dnn_bytes));
    char *base = (char *)ws;
    void *dnn_ws = dnn_bytes ? base : NULL;
    char *in_copy = base + align256(dnn_bytes);
    char *out_copy = in_copy + in_copy_bytes(p, n);

    const void *dy = dout;
    if (p->bf16) {
        ZF_TRY(zf_cuda_f2bf16(ctx, (__nv_bfloat16 *)out_copy, dout, (size_t)n * g->k * g->oh * g->ow));
        dy = out_copy;
    }
    void *dx = (p->bf16 || p->padded) ? (void *)in_copy : (void *)din;
    const float one = 1.0f, zero = 0.0f;
    ZF_CUDNN(cudnnConvolutionBackwardData(ctx->dnn, &one, p->w, w, p->y, dy, p->conv_bwd, algo, dnn_ws, dnn_bytes,
                                          &zero, p->x, dx));
    /* Back from the padded frame: input positions no window reached get 0, as col2im leaves them. */
    const int hs = p->padded ? p->hp : g->h, wsz = p->padded ? p->wp : g->w;
    const int oy = p->padded ? g->pt : 0, ox = p->padded ? g->pl : 0;
    if (p->bf16)
        ZF_TRY(zf_cuda_window_copy_b2f(ctx, din, (const __nv_bfloat16 *)in_copy, n, g->c, g->h, g->w, hs, wsz, oy,
                                       ox));
    else if (p->padded)
        ZF_TRY(zf_cuda_window_copy_f2f(ctx, din, (const float *)in_copy, n, g->c, g->h, g->w, hs, wsz, oy, ox));
    return ZF_OK;
}

/* db[k] = the sum of dout's channel k over the batch and the map: one block per channel, a fixed
 * tree over double sums. */
__global__ static void bias_grad_kernel(float *db, const float *dout, int n, int k, int hw)
{
    const int ch = blockIdx.x;
    double s = 0;
    for (int img = 0; img < n; img++)
        for (int q = threadIdx.x; q < hw; q += blockDim.x)
            s += dout[((size_t)img * k + ch) * hw + q];
    s = zf_block_sum(s);
    if (threadIdx.x == 0)
        db[ch] = (float)s;
}

zf_status zf_cuda_conv_run_backward_filter(zf_cuda_ctx *ctx, zf_cuda_conv_plan *p, float *dw, float *db,
                                           const float *in, const float *dout, int n, void *ws, size_t ws_bytes)
{
    const zf_conv_geom *g = &p->g;
    if (!(p->want_bwd & ZF_CUDA_PLAN_BWD_FILTER))
        return zf_error(ZF_ERR_ARG, "convolution plan made without the filters' gradient");
    if (n < 1 || n > g->n)
        return zf_error(ZF_ERR_ARG, "convolution of %d images planned for at most %d", n, g->n);
    if (n != p->n)
        ZF_TRY(describe_batch(p, n));
    const size_t copies = in_copy_bytes(p, n);
    size_t dnn_bytes = 0;
    ZF_CUDNN(cudnnGetConvolutionBackwardFilterWorkspaceSize(ctx->dnn, p->x, p->y, p->conv_bwd, p->w, p->bwf_algo,
                                                            &dnn_bytes));
    if (ws_bytes < copies + align256(dnn_bytes))
        return zf_error(ZF_ERR_DEVICE, "the filters' gradient needs %zu bytes of workspace, %zu reserved",
                        copies + align256(dnn_bytes), ws_bytes);
    char *base = (char *)ws;
    void *dnn_ws = dnn_bytes ? base : NULL;
    char *in_copy = base + align256(dnn_bytes);
    const void *x = in;
    if (p->padded) {
        ZF_TRY(zf_cuda_window_copy_f2f(ctx, (float *)in_copy, in, n, g->c, p->hp, p->wp, g->h, g->w, -g->pt, -g->pl));
        x = in_copy;
    }
    const float one = 1.0f, zero = 0.0f;
    ZF_CUDNN(cudnnConvolutionBackwardFilter(ctx->dnn, &one, p->x, x, p->y, dout, p->conv_bwd, p->bwf_algo, dnn_ws,
                                            dnn_bytes, &zero, p->w, dw));
    if (db) {
        bias_grad_kernel<<<g->k, ZF_RED_MAX, 0, ctx->stream>>>(db, dout, n, g->k, g->oh * g->ow);
        ZF_LAUNCHED("bias_grad");
    }
    return ZF_OK;
}

/* ---- op-level entry points (zf/cuda.h): one plan per call ---- */

static zf_status op_conv(zf_cuda_ctx *ctx, int bwd, float *dst, const float *src, const float *w, const float *bias,
                         const zf_conv_geom *g)
{
    ZF_CU(cudaSetDevice(ctx->device));
    zf_cuda_conv_plan p;
    ZF_TRY(zf_cuda_conv_plan_init(ctx, &p, g, bwd, NULL));
    const size_t wcount = (size_t)g->k * (g->c / g->groups) * g->kh * g->kw;
    const size_t wbytes = p.bf16 ? align256(wcount * 2) : 0;
    const size_t ws_bytes = zf_cuda_conv_plan_ws_bytes(&p);
    void *scratch = NULL;
    zf_status st = zf_cuda_ctx_scratch(ctx, wbytes + ws_bytes, &scratch);
    const void *wp = w;
    if (!st && p.bf16) {
        st = zf_cuda_f2bf16(ctx, (__nv_bfloat16 *)scratch, w, wcount);
        wp = scratch;
    }
    if (!st) {
        void *ws = (char *)scratch + wbytes;
        st = bwd ? zf_cuda_conv_run_backward_data(ctx, &p, dst, src, wp, g->n, ws, ws_bytes)
                 : zf_cuda_conv_run_forward(ctx, &p, dst, NULL, src, wp, bias, g->n, ws, ws_bytes);
    }
    zf_cuda_conv_plan_destroy(&p);
    return st;
}

extern "C" zf_status zf_cuda_conv_forward(zf_cuda_ctx *ctx, float *out, const float *in, const float *w,
                                          const float *bias, const zf_conv_geom *g)
{
    return op_conv(ctx, 0, out, in, w, bias, g);
}

extern "C" zf_status zf_cuda_conv_backward_data(zf_cuda_ctx *ctx, float *din, const float *dout, const float *w,
                                                const zf_conv_geom *g)
{
    return op_conv(ctx, 1, din, dout, w, NULL, g);
}

extern "C" zf_status zf_cuda_conv_backward_weights(zf_cuda_ctx *ctx, float *dw, float *db, const float *in,
                                                   const float *dout, const zf_conv_geom *g)
{
    ZF_CU(cudaSetDevice(ctx->device));
    zf_cuda_conv_plan p;
    ZF_TRY(zf_cuda_conv_plan_init(ctx, &p, g, ZF_CUDA_PLAN_BWD_FILTER, NULL));
    const size_t ws_bytes = zf_cuda_conv_plan_ws_bytes(&p);
    void *scratch = NULL;
    zf_status st = zf_cuda_ctx_scratch(ctx, ws_bytes, &scratch);
    if (!st)
        st = zf_cuda_conv_run_backward_filter(ctx, &p, dw, db, in, dout, g->n, scratch, ws_bytes);
    zf_cuda_conv_plan_destroy(&p);
    return st;
}
