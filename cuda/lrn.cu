/* Local response normalisation across channels on the GPU, in the convention of zf/ops.h
 * (alpha divided by the window size, `front` channels before the centre). Own kernels rather than
 * cudnnLRNCrossChannelForward: cuDNN's LRN shares the convention (its lrnAlpha is divided by lrnN
 * inside, Caffe passes its own alpha straight to it; its window starts floor((n-1)/2) channels
 * before the centre, which is Caffe's and ONNX's front but not PyTorch's for even sizes) but it
 * takes no other front, needs n <= 16 and k >= 1e-5, and rounds differently from the CPU. One
 * thread per (image, position) walks the channels exactly as core/lrn.c does. */
#include "internal.h"

__device__ static inline float inv_pow(float s, float beta)
{
    /* as core/lrn.c: two correctly rounded square roots for the common beta */
    if (beta == 0.75f)
        return 1.0f / sqrtf(s * sqrtf(s));
    return powf(s, -beta);
}

__global__ static void lrn_forward_kernel(float *out, const float *in, int n, int c, int hw, zf_lrn_params p)
{
    const float a = p.alpha / (float)p.size, k = p.k, beta = p.beta;
    const size_t total = (size_t)n * hw;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        const size_t img = t / hw, q = t % hw;
        const float *x = in + img * c * hw + q;
        float *y = out + img * c * hw + q;
        for (int i = 0; i < c; i++) {
            int j0 = i - p.front, j1 = j0 + p.size;
            j0 = j0 < 0 ? 0 : j0;
            j1 = j1 > c ? c : j1;
            float sum = 0.0f;
            for (int j = j0; j < j1; j++) {
                const float v = x[(size_t)j * hw];
                sum += v * v;
            }
            y[(size_t)i * hw] = x[(size_t)i * hw] * inv_pow(k + a * sum, beta);
        }
    }
}

extern "C" zf_status zf_cuda_lrn_forward(zf_cuda_ctx *ctx, float *out, const float *in, int n, int c, int hw,
                                         const zf_lrn_params *p)
{
    const size_t total = (size_t)n * hw;
    if (total == 0)
        return ZF_OK;
    lrn_forward_kernel<<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(out, in, n, c, hw, *p);
    ZF_LAUNCHED("lrn_forward");
    return ZF_OK;
}

/* dx_j = dy_j s_j^-b - 2 a b x_j sum_{i : j in W(i)} dy_i x_i s_i^(-b-1), in core/lrn.c's order:
 * first the direct term for every channel, then each i subtracts its share from its window. */
__global__ static void lrn_backward_kernel(float *din, const float *dout, const float *in, int n, int c, int hw,
                                           zf_lrn_params p)
{
    const float a = p.alpha / (float)p.size, k = p.k, beta = p.beta;
    const size_t total = (size_t)n * hw;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        const size_t img = t / hw, q = t % hw;
        const size_t off = img * c * hw + q;
        const float *x = in + off, *dy = dout + off;
        float *dx = din + off;
        for (int i = 0; i < c; i++) {
            int j0 = i - p.front, j1 = j0 + p.size;
            j0 = j0 < 0 ? 0 : j0;
            j1 = j1 > c ? c : j1;
            float sum = 0.0f;
            for (int j = j0; j < j1; j++) {
                const float v = x[(size_t)j * hw];
                sum += v * v;
            }
            dx[(size_t)i * hw] = dy[(size_t)i * hw] * inv_pow(k + a * sum, beta);
        }
        for (int i = 0; i < c; i++) {
            int j0 = i - p.front, j1 = j0 + p.size;
            j0 = j0 < 0 ? 0 : j0;
            j1 = j1 > c ? c : j1;
            float sum = 0.0f;
            for (int j = j0; j < j1; j++) {
                const float v = x[(size_t)j * hw];
                sum += v * v;
            }
            const float s = k + a * sum;
            const float tt = dy[(size_t)i * hw] * x[(size_t)i * hw] * powf(s, -beta - 1.0f);
            for (int j = j0; j < j1; j++)
                dx[(size_t)j * hw] -= 2.0f * a * beta * x[(size_t)j * hw] * tt;
        }
    }
}

extern "C" zf_status zf_cuda_lrn_backward(zf_cuda_ctx *ctx, float *din, const float *dout, const float *in, int n,
                                          int c, int hw, const zf_lrn_params *p)
{
    const size_t total = (size_t)n * hw;
    if (total == 0)
        return ZF_OK;
    lrn_backward_kernel<<<zf_grid(total), ZF_THREADS, 0, ctx->stream>>>(din, dout, in, n, c, hw, *p);
    ZF_LAUNCHED("lrn_backward");
    return ZF_OK;
}
