/* Fully connected layers (cuBLAS), ReLU and softmax on the GPU. */
#include <math.h>

#include "internal.h"
#include "reduce.cuh"

__global__ static void fill_rows_kernel(float *out, const float *bias, size_t total, int cols)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        out[i] = bias ? bias[i % cols] : 0.0f;
}

static cublasComputeType_t gemm_compute(zf_cuda_precision p)
{
    switch (p) {
    case ZF_CUDA_TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case ZF_CUDA_BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    default: return CUBLAS_COMPUTE_32F; /* plain FP32 FMA: no tensor-core rounding */
    }
}

/* out (n, out_f) = in (n, in_f) . w^T + bias; w (out_f, in_f) row-major is, to column-major cuBLAS,
 * a (in_f, out_f) matrix, so out^T (out_f, n) = op_T(w) . in^T. As the CPU: the output starts as
 * the bias and the product is added to it. */
zf_status zf_cuda_fc_run(zf_cuda_ctx *ctx, zf_cuda_precision prec, float *out, const float *in, const float *w,
                         const float *bias, int n, int in_f, int out_f)
{
    const size_t total = (size_t)n * out_f;
    if (total == 0)
        return ZF_OK;
    fill_rows_kernel<<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(out, bias, total, out_f);
    ZF_LAUNCHED("fill_rows");
    const float one = 1.0f;
    if (n == 1 && prec == ZF_CUDA_FP32) {
        /* Memory-bound: gemv streams the weights once. */
        ZF_CUBLAS(cublasSgemv(ctx->blas, CUBLAS_OP_T, in_f, out_f, &one, w, in_f, in, 1, &one, out, 1));
    } else {
        ZF_CUBLAS(cublasGemmEx(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, out_f, n, in_f, &one, w, CUDA_R_32F, in_f, in,
                               CUDA_R_32F, in_f, &one, out, CUDA_R_32F, out_f, gemm_compute(prec),
                               CUBLAS_GEMM_DEFAULT));
    }
    return ZF_OK;
}

extern "C" zf_status zf_cuda_fc_forward(zf_cuda_ctx *ctx, float *out, const float *in, const float *w,
                                        const float *bias, int n, int in_f, int out_f)
{
    return zf_cuda_fc_run(ctx, ctx->precision, out, in, w, bias, n, in_f, out_f);
}

__global__ static void relu_kernel(float *out, const float *in, size_t count)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

extern "C" zf_status zf_cuda_relu_forward(zf_cuda_ctx *ctx, float *out, const float *in, size_t count)
{
    if (count == 0)
        return ZF_OK;
    relu_kernel<<<zf_grid(count), ZF_THREADS, 0, ctx->stream>>>(out, in, count);
    ZF_LAUNCHED("relu");
    return ZF_OK;
}

/* One block per row, as zf_softmax_forward: m = max (starting from x[0]), y = expf(x - m), the sum
 * in double, then y *= (float)(1 / sum). */
__global__ static void softmax_kernel(float *out, const float *in, int k)
{
    __shared__ float smax[ZF_THREADS];
    __shared__ double ssum[ZF_THREADS];
    const float *x = in + (size_t)blockIdx.x * k;
    float *y = out + (size_t)blockIdx.x * k;
    const int t = threadIdx.x;
    float m = x[0];
    for (int j = t; j < k; j += blockDim.x)
        m = x[j] > m ? x[j] : m;
    smax[t] = m;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s)
            smax[t] = smax[t + s] > smax[t] ? smax[t + s] : smax[t];
        __syncthreads();
    }
    m = smax[0];
    double sum = 0;
    for (int j = t; j < k; j += blockDim.x) {
        const float e = expf(x[j] - m);
        y[j] = e;
        sum += e;
    }
    ssum[t] = sum;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s)
            ssum[t] += ssum[t + s];
        __syncthreads();
    }
    const float inv = (float)(1.0 / ssum[0]);
    for (int j = t; j < k; j += blockDim.x)
        y[j] *= inv;
}

extern "C" zf_status zf_cuda_softmax_forward(zf_cuda_ctx *ctx, float *out, const float *in, int n, int k)
{
    if (n <= 0 || k <= 0)
        return ZF_OK;
    softmax_kernel<<<n, ZF_THREADS, 0, ctx->stream>>>(out, in, k);
    ZF_LAUNCHED("softmax");
    return ZF_OK;
}

/* The ReLU's backward under each rule of zf_relu_rule: 0 the gradient (where the forward output is
 * positive), 1 guided (and only positive gradients), 2 the deconvnet's (the positive part of the
 * signal, whatever the forward was). */
__global__ static void relu_backward_kernel(float *din, const float *dout, const float *out, size_t count, int rule)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        const float d = dout[i];
        const int pass = rule == 2 ? d > 0.0f : rule == 1 ? out[i] > 0.0f && d > 0.0f : out[i] > 0.0f;
        din[i] = pass ? d : 0.0f;
    }
}

extern "C" zf_status zf_cuda_relu_backward(zf_cuda_ctx *ctx, float *din, const float *dout, const float *out,
                                           size_t count, int rule)
{
    if (rule < 0 || rule > 2)
        return zf_error(ZF_ERR_ARG, "ReLU backward rule %d (0 gradient, 1 guided, 2 deconvnet)", rule);
    if (count == 0)
        return ZF_OK;
    relu_backward_kernel<<<zf_grid(count), ZF_THREADS, 0, ctx->stream>>>(din, dout, out, count, rule);
    ZF_LAUNCHED("relu_backward");
    return ZF_OK;
}

/* One block per row, as zf_softmax_backward: s = sum(dout * p) in double, din = p * (dout - s). */
__global__ static void softmax_backward_kernel(float *din, const float *dout, const float *p, int k)
{
    const size_t row = (size_t)blockIdx.x * k;
    double s = 0;
    for (int j = threadIdx.x; j < k; j += blockDim.x)
        s += (double)dout[row + j] * p[row + j];
    s = zf_block_sum(s);
    for (int j = threadIdx.x; j < k; j += blockDim.x)
        din[row + j] = (float)(p[row + j] * ((double)dout[row + j] - s));
}

extern "C" zf_status zf_cuda_softmax_backward(zf_cuda_ctx *ctx, float *din, const float *dout, const float *p, int n,
                                              int k)
{
    if (n <= 0 || k <= 0)
        return ZF_OK;
    softmax_backward_kernel<<<n, ZF_RED_MAX, 0, ctx->stream>>>(din, dout, p, k);
    ZF_LAUNCHED("softmax_backward");
    return ZF_OK;
}

/* din (n, in_f) = dout (n, out_f) . w (out_f, in_f): to column-major cuBLAS, din^T (in_f, n) =
 * w' (in_f, out_f) . dout^T (out_f, n), w' being w row-major read as column-major. Plain FP32 (the
 * gradients are compared with the CPU's). */
extern "C" zf_status zf_cuda_fc_backward_data(zf_cuda_ctx *ctx, float *din, const float *dout, const float *w, int n,
                                              int in_f, int out_f)
{
    if ((size_t)n * in_f == 0)
        return ZF_OK;
    const float one = 1.0f, zero = 0.0f;
    ZF_CUBLAS(cublasGemmEx(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, in_f, n, out_f, &one, w, CUDA_R_32F, in_f, dout,
                           CUDA_R_32F, out_f, &zero, din, CUDA_R_32F, in_f, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return ZF_OK;
}

/* db[o] = the sum over the batch of dout[., o], in double, in the batch's order. */
__global__ static void column_sum_kernel(float *db, const float *dout, int n, int out_f)
{
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < out_f; o += gridDim.x * blockDim.x) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += dout[(size_t)i * out_f + o];
        db[o] = (float)s;
    }
}

/* dw (out_f, in_f) = dout^T (out_f, n) . in (n, in_f): to column-major cuBLAS, dw^T (in_f, out_f) =
 * in' (in_f, n) . op_T(dout') with dout' (out_f, n); db the column sums; din as zf_cuda_fc_backward_data. */
extern "C" zf_status zf_cuda_fc_backward(zf_cuda_ctx *ctx, float *din, float *dw, float *db, const float *dout,
                                         const float *in, const float *w, int n, int in_f, int out_f)
{
    if (n < 1 || in_f < 1 || out_f < 1)
        return zf_error(ZF_ERR_ARG, "fully connected backward of %d x %d -> %d", n, in_f, out_f);
    if (din)
        ZF_TRY(zf_cuda_fc_backward_data(ctx, din, dout, w, n, in_f, out_f));
    const float one = 1.0f, zero = 0.0f;
    ZF_CUBLAS(cublasGemmEx(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, in_f, out_f, n, &one, in, CUDA_R_32F, in_f, dout,
                           CUDA_R_32F, out_f, &zero, dw, CUDA_R_32F, in_f, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (db) {
        column_sum_kernel<<<zf_grid((size_t)out_f), ZF_THREADS, 0, ctx->stream>>>(db, dout, n, out_f);
        ZF_LAUNCHED("column_sum");
    }
    return ZF_OK;
}

/* SGD with momentum as zf_trainer_update, element by element in float: g' = g + wd w, v = m v + g',
 * w -= lr v (no contraction into fused multiply-adds: --fmad=false). */
__global__ static void sgd_kernel(float *w, float *v, const float *g, size_t count, float lr, float mom, float wd)
{
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < count; j += (size_t)gridDim.x * blockDim.x) {
        const float gj = g[j] + wd * w[j];
        v[j] = mom * v[j] + gj;
        w[j] -= lr * v[j];
    }
}

extern "C" zf_status zf_cuda_sgd_update(zf_cuda_ctx *ctx, float *w, float *v, const float *g, size_t count, float lr,
                                        float momentum, float weight_decay)
{
    if (count == 0)
        return ZF_OK;
    sgd_kernel<<<zf_grid(count), ZF_THREADS, 0, ctx->stream>>>(w, v, g, count, lr, momentum, weight_decay);
    ZF_LAUNCHED("sgd");
    return ZF_OK;
}
