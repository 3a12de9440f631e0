/* Devices and contexts: is there a GPU and what is it, the context's streams and library handles,
 * device memory with errors that say how much was asked and how much is free, and the one place
 * where CUDA, cuDNN and cuBLAS failures become zf_error messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* "cuda/device.cu" from an absolute __FILE__: the last two components are enough to find it. */
static const char *short_path(const char *file)
{
    const char *last = strrchr(file, '/');
    if (!last)
        return file;
    const char *p = last;
    while (p > file && p[-1] != '/')
        p--;
    return p > file ? p : file;
}

static void driver_runtime(int *drv, int *rt)
{
    *drv = *rt = 0;
    if (cudaDriverGetVersion(drv) != cudaSuccess)
        *drv = 0;
    if (cudaRuntimeGetVersion(rt) != cudaSuccess)
        *rt = 0;
}

zf_status zf_cuda_fail_rt(cudaError_t e, const char *call, const char *func, const char *file, int line)
{
    int drv, rt;
    switch (e) {
    case cudaErrorInsufficientDriver:
        driver_runtime(&drv, &rt);
        return zf_error(ZF_ERR_DEVICE,
                        "the NVIDIA driver is older than the CUDA runtime: the driver supports CUDA %d.%d, "
                        "zfviz uses runtime %d.%d (update the driver, or run with --device cpu)",
                        drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
    case cudaErrorNoDevice:
        return zf_error(ZF_ERR_DEVICE, "no CUDA-capable GPU is present (run with --device cpu)");
    case cudaErrorNoKernelImageForDevice:
        return zf_error(ZF_ERR_DEVICE,
                        "%s: this build has no kernels for this GPU's architecture (rebuild with "
                        "-DZF_CUDA_ARCHS=<its compute capability, e.g. 80>)",
                        call);
    default:
        break;
    }
    zf_error(ZF_ERR_DEVICE, "CUDA: %s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
    return zf_error_where(ZF_ERR_DEVICE, "%s in %s(), %s:%d", call, func, short_path(file), line);
}

zf_status zf_cuda_fail_dnn(cudnnStatus_t e, const char *call, const char *func, const char *file, int line)
{
    char detail[512];
    detail[0] = '\0';
    cudnnGetLastErrorString(detail, sizeof detail);
    zf_error(ZF_ERR_DEVICE, "cuDNN: %s%s%.400s", cudnnGetErrorString(e), detail[0] ? ": " : "", detail);
    return zf_error_where(ZF_ERR_DEVICE, "%s in %s(), %s:%d", call, func, short_path(file), line);
}

zf_status zf_cuda_fail_blas(cublasStatus_t e, const char *call, const char *func, const char *file, int line)
{
    zf_error(ZF_ERR_DEVICE, "cuBLAS: %s", cublasGetStatusString(e));
    return zf_error_where(ZF_ERR_DEVICE, "%s in %s(), %s:%d", call, func, short_path(file), line);
}

/* Why cudaGetDeviceCount found nothing, in words a user can act on. */
static zf_status no_device(cudaError_t e)
{
    int drv, rt;
    switch (e) {
    case cudaErrorInsufficientDriver:
        driver_runtime(&drv, &rt);
        if (drv == 0)
            return zf_error(ZF_ERR_DEVICE, "no CUDA device: the NVIDIA driver is not installed or not loaded");
        return zf_error(ZF_ERR_DEVICE,
                        "no CUDA device: the NVIDIA driver supports CUDA %d.%d but zfviz needs %d.%d (update the driver)",
                        drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
    case cudaErrorNoDevice:
        return zf_error(ZF_ERR_DEVICE, "no CUDA device: no NVIDIA GPU is visible (CUDA_VISIBLE_DEVICES?)");
    default:
        return zf_error(ZF_ERR_DEVICE, "no CUDA device: %s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
    }
}

extern "C" int zf_cuda_device_count(char *desc, size_t len)
{
    int count = 0;
    if (desc && len)
        desc[0] = '\0';
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        no_device(e);
        return 0;
    }
    if (count == 0) {
        zf_error(ZF_ERR_DEVICE, "no CUDA device: none found");
        return 0;
    }
    if (desc && len) {
        cudaDeviceProp p;
        int drv = 0;
        if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) {
            cudaDriverGetVersion(&drv);
            snprintf(desc, len, "%s, %.0f GiB, compute %d.%d, driver %d.%d", p.name,
                     (double)p.totalGlobalMem / 1073741824.0, p.major, p.minor, drv / 1000, (drv % 1000) / 10);
        }
    }
    return count;
}

extern "C" void zf_cuda_versions(char *buf, size_t len)
{
    int drv, rt;
    driver_runtime(&drv, &rt);
    size_t dnn = cudnnGetVersion();
    int bmaj = 0, bmin = 0, bpatch = 0;
    cublasGetProperty(MAJOR_VERSION, &bmaj);
    cublasGetProperty(MINOR_VERSION, &bmin);
    cublasGetProperty(PATCH_LEVEL, &bpatch);
    snprintf(buf, len, "runtime %d.%d, driver %d.%d, cuDNN %zu.%zu.%zu (built with %d.%d.%d), cuBLAS %d.%d.%d",
             rt / 1000, (rt % 1000) / 10, drv / 1000, (drv % 1000) / 10, dnn / 10000, (dnn % 10000) / 100, dnn % 100,
             CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL, bmaj, bmin, bpatch);
}

extern "C" zf_status zf_cuda_parse_precision(const char *s, zf_cuda_precision *out)
{
    if (s && !strcmp(s, "fp32"))
        *out = ZF_CUDA_FP32;
    else if (s && !strcmp(s, "tf32"))
        *out = ZF_CUDA_TF32;
    else if (s && !strcmp(s, "bf16"))
        *out = ZF_CUDA_BF16;
    else
        return zf_error(ZF_ERR_ARG, "precision '%s': expected fp32, tf32 or bf16", s ? s : "");
    return ZF_OK;
}

extern "C" const char *zf_cuda_precision_name(zf_cuda_precision p)
{
    switch (p) {
    case ZF_CUDA_FP32: return "fp32";
    case ZF_CUDA_TF32: return "tf32";
    case ZF_CUDA_BF16: return "bf16";
    }
    return "?";
}

extern "C" zf_status zf_cuda_parse_device(const char *s, zf_device_choice *out)
{
    if (s && !strcmp(s, "auto"))
        *out = ZF_DEVICE_AUTO;
    else if (s && (!strcmp(s, "cuda") || !strcmp(s, "gpu")))
        *out = ZF_DEVICE_CUDA;
    else if (s && !strcmp(s, "cpu"))
        *out = ZF_DEVICE_CPU;
    else
        return zf_error(ZF_ERR_ARG, "device '%s': expected auto, cuda or cpu", s ? s : "");
    return ZF_OK;
}

/* Any kernel of this library: asking for its attributes tells whether the build has code for
 * the device (sm_90 machine code, or compute_90 PTX the driver can compile for newer chips). */
__global__ static void probe_kernel(int *p)
{
    if (p)
        *p = 0;
}

static void ctx_destroy(zf_cuda_ctx *ctx)
{
    if (ctx->scratch)
        cudaFree(ctx->scratch);
    if (ctx->blas)
        cublasDestroy(ctx->blas);
    if (ctx->dnn)
        cudnnDestroy(ctx->dnn);
    if (ctx->copy_stream)
        cudaStreamDestroy(ctx->copy_stream);
    if (ctx->stream)
        cudaStreamDestroy(ctx->stream);
    free(ctx);
}

static zf_status ctx_init(zf_cuda_ctx *ctx, int device)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
        return no_device(e);
    if (count == 0)
        return zf_error(ZF_ERR_DEVICE, "no CUDA device: none found");
    if (device < 0 || device >= count)
        return zf_error(ZF_ERR_DEVICE, "CUDA device %d asked for, but %d %s present", device, count,
                        count == 1 ? "is" : "are");
    ctx->device = device;
    ZF_CU(cudaSetDevice(device));
    cudaDeviceProp prop;
    ZF_CU(cudaGetDeviceProperties(&prop, device));
    cudaFuncAttributes fa;
    ZF_CU(cudaFuncGetAttributes(&fa, (const void *)probe_kernel));
    ctx->sm_count = prop.multiProcessorCount;
    snprintf(ctx->name, sizeof ctx->name, "%.180s (device %d, compute %d.%d, %d SMs)", prop.name, device, prop.major,
             prop.minor, prop.multiProcessorCount);
    const size_t dnn_version = cudnnGetVersion();
    if (dnn_version / 10000 != CUDNN_MAJOR)
        return zf_error(ZF_ERR_DEVICE, "cuDNN %zu.%zu was loaded but zfviz was built with cuDNN %d: install cuDNN %d",
                        dnn_version / 10000, (dnn_version % 10000) / 100, CUDNN_MAJOR, CUDNN_MAJOR);
    ZF_CU(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    ZF_CU(cudaStreamCreateWithFlags(&ctx->copy_stream, cudaStreamNonBlocking));
    ZF_CUDNN(cudnnCreate(&ctx->dnn));
    ZF_CUDNN(cudnnSetStream(ctx->dnn, ctx->stream));
    ZF_CUBLAS(cublasCreate(&ctx->blas));
    ZF_CUBLAS(cublasSetStream(ctx->blas, ctx->stream));
    /* FP32 products stay FP32: the compute type of each GEMM says so explicitly (fc.cu). */
    ZF_CUBLAS(cublasSetMathMode(ctx->blas, CUBLAS_DEFAULT_MATH));
    ctx->precision = ZF_CUDA_FP32;
    /* A convolution may take up to 1 GiB or an eighth of the card for its workspace. */
    ctx->ws_limit = (size_t)1 << 30;
    if (prop.totalGlobalMem / 8 < ctx->ws_limit)
        ctx->ws_limit = prop.totalGlobalMem / 8;
    return ZF_OK;
}

extern "C" zf_status zf_cuda_ctx_new(int device, zf_cuda_ctx **out)
{
    *out = NULL;
    zf_cuda_ctx *ctx = (zf_cuda_ctx *)calloc(1, sizeof *ctx);
    if (!ctx)
        return zf_error(ZF_ERR_NOMEM, "out of memory for a CUDA context");
    zf_status st = ctx_init(ctx, device);
    if (st) {
        ctx_destroy(ctx);
        return st;
    }
    *out = ctx;
    return ZF_OK;
}

extern "C" void zf_cuda_ctx_free(zf_cuda_ctx *ctx)
{
    if (!ctx)
        return;
    cudaSetDevice(ctx->device);
    cudaStreamSynchronize(ctx->stream);
    ctx_destroy(ctx);
}

extern "C" zf_status zf_cuda_ctx_set_precision(zf_cuda_ctx *ctx, zf_cuda_precision p)
{
    if (p != ZF_CUDA_FP32 && p != ZF_CUDA_TF32 && p != ZF_CUDA_BF16)
        return zf_error(ZF_ERR_ARG, "unknown precision %d", (int)p);
    ctx->precision = p;
    return ZF_OK;
}

extern "C" zf_cuda_precision zf_cuda_ctx_precision(const zf_cuda_ctx *ctx) { return ctx->precision; }
extern "C" void zf_cuda_ctx_set_autotune(zf_cuda_ctx *ctx, int on) { ctx->autotune = on != 0; }
extern "C" const char *zf_cuda_ctx_name(const zf_cuda_ctx *ctx) { return ctx->name; }

extern "C" zf_status zf_cuda_mem_info(zf_cuda_ctx *ctx, size_t *free_bytes, size_t *total_bytes)
{
    ZF_CU(cudaSetDevice(ctx->device));
    ZF_CU(cudaMemGetInfo(free_bytes, total_bytes));
    return ZF_OK;
}

extern "C" zf_status zf_cuda_malloc(zf_cuda_ctx *ctx, void **p, size_t bytes, const char *what)
{
    *p = NULL;
    if (bytes == 0)
        bytes = 256;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* not sticky: clear it */
        size_t f = 0, t = 0;
        cudaMemGetInfo(&f, &t);
        *p = NULL;
        return zf_error(ZF_ERR_DEVICE,
                        "out of GPU memory: %s needs %.1f MiB but %.1f MiB of %.1f MiB are free on %s "
                        "(try a smaller --batch)",
                        what, bytes / 1048576.0, f / 1048576.0, t / 1048576.0, ctx->name);
    }
    if (e != cudaSuccess) {
        *p = NULL;
        return zf_cuda_fail_rt(e, "cudaMalloc", __func__, __FILE__, __LINE__);
    }
    return ZF_OK;
}

extern "C" void zf_cuda_free(void *p)
{
    if (p)
        cudaFree(p);
}

extern "C" zf_status zf_cuda_upload(zf_cuda_ctx *ctx, void *dst_dev, const void *src_host, size_t bytes)
{
    ZF_CU(cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyHostToDevice, ctx->stream));
    ZF_CU(cudaStreamSynchronize(ctx->stream));
    return ZF_OK;
}

extern "C" zf_status zf_cuda_download(zf_cuda_ctx *ctx, void *dst_host, const void *src_dev, size_t bytes)
{
    ZF_CU(cudaMemcpyAsync(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    ZF_CU(cudaStreamSynchronize(ctx->stream));
    return ZF_OK;
}

extern "C" zf_status zf_cuda_sync(zf_cuda_ctx *ctx)
{
    ZF_CU(cudaStreamSynchronize(ctx->stream));
    ZF_CU(cudaGetLastError());
    return ZF_OK;
}

zf_status zf_cuda_ctx_scratch(zf_cuda_ctx *ctx, size_t bytes, void **out)
{
    if (bytes > ctx->scratch_bytes) {
        /* The old buffer may still be read by queued work. */
        ZF_CU(cudaStreamSynchronize(ctx->stream));
        zf_cuda_free(ctx->scratch);
        ctx->scratch = NULL;
        ctx->scratch_bytes = 0;
        ZF_TRY(zf_cuda_malloc(ctx, &ctx->scratch, bytes, "the workspace"));
        ctx->scratch_bytes = bytes;
    }
    *out = ctx->scratch;
    return ZF_OK;
}
