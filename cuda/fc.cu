/* Fully connected layers (cuBLAS), ReLU and softmax on the GPU. */
#include <math.h>

#include "internal.h"

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
