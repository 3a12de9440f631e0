// The CUDA runtime, cuDNN and cuBLAS functions the engine calls, on the host, for the emulated test
// run (scripts/cuda-emu-test.sh). They check what a GPU would only show as a crash or garbage:
// pointers handed to the libraries must lie inside cudaMalloc'd blocks (with the extent the
// descriptors imply), copies must go the way their kind says, convolution descriptors must agree,
// workspaces must be as large as the chosen algorithm needs, FP32 convolutions and GEMMs must not
// allow tensor-core math (EMU_EXPECT_MATH=fma). Device memory is poisoned when allocated.
// Convolutions run through the CPU engine (core/conv.c), GEMMs through OpenBLAS; the heuristics
// offer FFT first (FP32 must refuse it), then implicit precomputed GEMM with a workspace that grows
// with the batch, then implicit GEMM.
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cudnn.h>
#include <cublas_v2.h>
#include <cblas.h>
#include <map>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include "zf/backward.h"
#include "zf/ops.h"
#include "zf/tensor.h"
}


thread_local emu_dim emu_threadIdx, emu_blockIdx, emu_blockDim, emu_gridDim;

#define FAIL(...) do { fprintf(stderr, "EMU CHECK FAILED: " __VA_ARGS__); fprintf(stderr, "\n"); abort(); } while (0)

void emu_kernel_launched(unsigned grid)
{
    if (grid == 0 || grid > 2147483647u)
        FAIL("kernel launched with grid %u", grid);
}

static std::map<const char *, size_t> allocs;
static std::map<const char *, size_t> pinned;

static bool find_alloc(const std::map<const char *, size_t> &m, const void *p, size_t bytes)
{
    const char *c = (const char *)p;
    auto it = m.upper_bound(c);
    if (it == m.begin())
        return false;
    --it;
    return c >= it->first && c + bytes <= it->first + it->second;
}
static bool is_dev(const void *p, size_t bytes) { return find_alloc(allocs, p, bytes); }
static void need_dev(const void *p, size_t bytes, const char *what)
{
    if (!is_dev(p, bytes))
        FAIL("%s: %p (+%zu bytes) is not inside a device allocation", what, p, bytes);
}

extern "C" {

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    if (bytes > ((size_t)80 << 30))
        return cudaErrorMemoryAllocation;
    *p = malloc(bytes);
    memset(*p, 0xCD, bytes); /* poison: unwritten outputs show up */
    allocs[(const char *)*p] = bytes;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p)
{
    if (!p)
        return cudaSuccess;
    auto it = allocs.find((const char *)p);
    if (it == allocs.end())
        FAIL("cudaFree of %p that cudaMalloc did not return", p);
    allocs.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    *p = malloc(bytes);
    pinned[(const char *)*p] = bytes;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p)
{
    if (pinned.erase((const char *)p) != 1)
        FAIL("cudaFreeHost of %p", p);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind, cudaStream_t)
{
    switch (kind) {
    case cudaMemcpyHostToDevice:
        need_dev(dst, bytes, "H2D dst");
        if (is_dev(src, 1))
            FAIL("H2D from device memory");
        break;
    case cudaMemcpyDeviceToHost:
        need_dev(src, bytes, "D2H src");
        if (is_dev(dst, 1))
            FAIL("D2H into device memory");
        break;
    case cudaMemcpyDeviceToDevice:
        need_dev(src, bytes, "D2D src");
        need_dev(dst, bytes, "D2D dst");
        break;
    default:
        FAIL("memcpy kind %d", (int)kind);
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t)
{
    need_dev(p, bytes, "memset");
    memset(p, v, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *f, size_t *t)
{
    *f = (size_t)79 << 30;
    *t = (size_t)80 << 30;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int)
{
    memset(p, 0, sizeof *p);
    strcpy(p->name, "Emulated H100");
    p->totalGlobalMem = (size_t)80 << 30;
    p->major = 9;
    p->multiProcessorCount = 132;
    return cudaSuccess;
}
cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *a, const void *) { memset(a, 0, sizeof *a); return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int *v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int *v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = (cudaStream_t)malloc(8); return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t s) { free(s); return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { *e = (cudaEvent_t)malloc(8); return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { free(e); return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
cudaError_t cudaPeekAtLastError(void) { return cudaSuccess; }
const char *cudaGetErrorName(cudaError_t) { return "cudaErrorEmulated"; }
const char *cudaGetErrorString(cudaError_t) { return "emulated error"; }

/* ---- cuDNN ---- */
struct cudnnContext { int x; };
struct cudnnTensorStruct { cudnnDataType_t dt; int n, c, h, w; };
struct cudnnFilterStruct { cudnnDataType_t dt; int k, c, h, w; };
struct cudnnConvolutionStruct { int ph, pw, u, v, groups; cudnnMathType_t math; };

size_t cudnnGetVersion(void) { return 91900; }
const char *cudnnGetErrorString(cudnnStatus_t) { return "emulated cuDNN error"; }
void cudnnGetLastErrorString(char *m, size_t n) { if (n) m[0] = 0; }
cudnnStatus_t cudnnCreate(cudnnHandle_t *h) { *h = new cudnnContext; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) { delete h; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t) { return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d) { *d = new cudnnTensorStruct(); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d) { *d = new cudnnFilterStruct(); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d) { *d = new cudnnConvolutionStruct(); (*d)->groups = 1; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t dt, int n, int c, int h, int w)
{
    if (f != CUDNN_TENSOR_NCHW || n < 1 || c < 1 || h < 1 || w < 1)
        return CUDNN_STATUS_BAD_PARAM;
    *d = {dt, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t dt, cudnnTensorFormat_t f, int k, int c, int h, int w)
{
    if (f != CUDNN_TENSOR_NCHW)
        return CUDNN_STATUS_BAD_PARAM;
    *d = {dt, k, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u, int v, int dh, int dw, cudnnConvolutionMode_t mode, cudnnDataType_t ct)
{
    if (dh != 1 || dw != 1 || mode != CUDNN_CROSS_CORRELATION || ct != CUDNN_DATA_FLOAT)
        FAIL("conv descriptor: dilation %d,%d mode %d compute %d", dh, dw, mode, ct);
    d->ph = ph, d->pw = pw, d->u = u, d->v = v;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int g) { d->groups = g; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) { d->math = m; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, int *n, int *k, int *h, int *ww)
{
    *n = x->n;
    *k = w->k;
    *h = (x->h + 2 * c->ph - w->h) / c->u + 1;
    *ww = (x->w + 2 * c->pw - w->w) / c->v + 1;
    return CUDNN_STATUS_SUCCESS;
}

static void check_geom(cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y)
{
    int n, k, h, ww;
    cudnnGetConvolution2dForwardOutputDim(c, x, w, &n, &k, &h, &ww);
    if (y->n != n || y->c != k || y->h != h || y->w != ww || x->c != w->c * c->groups || w->k % c->groups)
        FAIL("conv shapes: x %dx%dx%dx%d w %dx%dx%dx%d groups %d y %dx%dx%dx%d", x->n, x->c, x->h, x->w, w->k, w->c,
             w->h, w->w, c->groups, y->n, y->c, y->h, y->w);
    if (x->dt != w->dt || x->dt != y->dt)
        FAIL("conv data types differ");
}

static size_t fwd_ws(cudnnConvolutionFwdAlgo_t a, int n)
{
    return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ? 4096 * (size_t)n : a == CUDNN_CONVOLUTION_FWD_ALGO_FFT ? 1000 : 0;
}
static size_t bwd_ws(cudnnConvolutionBwdDataAlgo_t a, int n)
{
    return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 ? 2048 * (size_t)n : a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT ? 1000 : 0;
}

/* The three algorithms of `order` as cuDNN's Get and Find list them: each with its workspace for a
 * batch of n and the descriptor's math mode (the default one for `plain`, an FFT, where given). */
extern "C++" { /* a template, inside the file's extern "C" */
template <typename Perf, typename Algo>
static int perf_list(const Algo (&order)[3], size_t (*ws)(Algo, int), const Algo *plain, cudnnConvolutionDescriptor_t c,
                     int n, Perf *p)
{
    for (int i = 0; i < 3; i++) {
        memset(&p[i], 0, sizeof p[i]);
        p[i].algo = order[i];
        p[i].status = CUDNN_STATUS_SUCCESS;
        p[i].memory = ws(order[i], n);
        p[i].mathType = plain && order[i] == *plain ? CUDNN_DEFAULT_MATH : c->math;
    }
    return 3;
}
}
static int fwd_perf(cudnnConvolutionDescriptor_t c, int n, cudnnConvolutionFwdAlgoPerf_t *p)
{
    static const cudnnConvolutionFwdAlgo_t order[3] = {CUDNN_CONVOLUTION_FWD_ALGO_FFT,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM};
    return perf_list(order, fwd_ws, &order[0], c, n, p);
}
static int bwd_perf(cudnnConvolutionDescriptor_t c, int n, cudnnConvolutionBwdDataAlgoPerf_t *p)
{
    static const cudnnConvolutionBwdDataAlgo_t order[3] = {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT,
                                                           CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                                                           CUDNN_CONVOLUTION_BWD_DATA_ALGO_0};
    return perf_list(order, bwd_ws, (const cudnnConvolutionBwdDataAlgo_t *)NULL, c, n, p);
}

static size_t elt(cudnnDataType_t dt) { return dt == CUDNN_DATA_BFLOAT16 ? 2 : 4; }
static size_t tbytes(cudnnTensorDescriptor_t t) { return (size_t)t->n * t->c * t->h * t->w * elt(t->dt); }
static size_t fbytes(cudnnFilterDescriptor_t f) { return (size_t)f->k * f->c * f->h * f->w * elt(f->dt); }

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y, int req, int *got, cudnnConvolutionFwdAlgoPerf_t *p)
{
    check_geom(x, w, c, y);
    if (req < 3)
        FAIL("asked for %d algorithms", req);
    *got = fwd_perf(c, x->n, p);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t, cudnnTensorDescriptor_t x, const void *xp, cudnnFilterDescriptor_t w, const void *wp, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y, void *yp, int req, int *got, cudnnConvolutionFwdAlgoPerf_t *p, void *ws, size_t wsb)
{
    check_geom(x, w, c, y);
    need_dev(xp, tbytes(x), "find fwd x");
    need_dev(wp, fbytes(w), "find fwd w");
    need_dev(yp, tbytes(y), "find fwd y");
    need_dev(ws, wsb, "find fwd workspace");
    (void)req;
    *got = fwd_perf(c, x->n, p);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t dx, int req, int *got, cudnnConvolutionBwdDataAlgoPerf_t *p)
{
    check_geom(dx, w, c, dy);
    if (req < 3)
        FAIL("asked for %d algorithms", req);
    *got = bwd_perf(c, dx->n, p);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t, cudnnFilterDescriptor_t w, const void *wp, cudnnTensorDescriptor_t dy, const void *dyp, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t dx, void *dxp, int, int *got, cudnnConvolutionBwdDataAlgoPerf_t *p, void *ws, size_t wsb)
{
    check_geom(dx, w, c, dy);
    need_dev(wp, fbytes(w), "find bwd w");
    need_dev(dyp, tbytes(dy), "find bwd dy");
    need_dev(dxp, tbytes(dx), "find bwd dx");
    need_dev(ws, wsb, "find bwd workspace");
    *got = bwd_perf(c, dx->n, p);
    return CUDNN_STATUS_SUCCESS;
}
/* The filters' gradient: algorithms 1 (a workspace growing with the batch) and 0 listed; the
 * engine takes 1. */
static size_t bwf_ws(cudnnConvolutionBwdFilterAlgo_t a, int n)
{
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ? 1024 * (size_t)n : 0;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t c, cudnnFilterDescriptor_t dw, int req, int *got, cudnnConvolutionBwdFilterAlgoPerf_t *p)
{
    check_geom(x, dw, c, dy);
    if (req < 2)
        FAIL("asked for %d algorithms", req);
    static const cudnnConvolutionBwdFilterAlgo_t order[2] = {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
                                                             CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1};
    for (int i = 0; i < 2; i++) {
        memset(&p[i], 0, sizeof p[i]);
        p[i].algo = order[i];
        p[i].status = CUDNN_STATUS_SUCCESS;
        p[i].memory = bwf_ws(order[i], x->n);
        p[i].mathType = c->math;
    }
    *got = 2;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t c, cudnnFilterDescriptor_t dw, cudnnConvolutionBwdFilterAlgo_t a, size_t *b)
{
    check_geom(x, dw, c, dy);
    *b = bwf_ws(a, x->n);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t a, size_t *b)
{
    check_geom(x, w, c, y);
    *b = fwd_ws(a, x->n);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t dx, cudnnConvolutionBwdDataAlgo_t a, size_t *b)
{
    check_geom(dx, w, c, dy);
    *b = bwd_ws(a, dx->n);
    return CUDNN_STATUS_SUCCESS;
}

static std::vector<float> to_f(const void *p, size_t count, cudnnDataType_t dt)
{
    std::vector<float> v(count);
    if (dt == CUDNN_DATA_BFLOAT16)
        for (size_t i = 0; i < count; i++)
            v[i] = __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    else
        memcpy(v.data(), p, count * 4);
    return v;
}
static void from_f(void *p, const std::vector<float> &v, cudnnDataType_t dt)
{
    if (dt == CUDNN_DATA_BFLOAT16)
        for (size_t i = 0; i < v.size(); i++)
            ((__nv_bfloat16 *)p)[i] = __float2bfloat16(v[i]);
    else
        memcpy(p, v.data(), v.size() * 4);
}

static zf_conv_geom geom(cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y)
{
    zf_conv_geom g = {x->n, x->c, x->h, x->w, y->c, y->h, y->w, w->h, w->w, c->u, c->v, c->ph, c->pw, c->groups};
    return g;
}

static void check_math(cudnnConvolutionDescriptor_t c, cudnnDataType_t dt)
{
    const char *e = getenv("EMU_EXPECT_MATH"); /* "fma" in FP32 runs */
    if (e && !strcmp(e, "fma") && dt == CUDNN_DATA_FLOAT && c->math != CUDNN_FMA_MATH)
        FAIL("FP32 convolution ran with math type %d, not FMA", c->math);
}

/* What the stand-ins for cudnnConvolutionForward and cudnnConvolutionBackwardData check alike, on
 * the convolution from x to y (backward: from dx to dy): shapes and math mode, alpha 1 and beta 0,
 * a workspace of at least `need` bytes for the algorithm (in device memory where any), x, w and y
 * in device memory;
 * then the geometry, the weights as floats and the engine's scratch. */
struct emu_conv {
    zf_conv_geom g;
    std::vector<float> wf, scratch;
    emu_conv(cudnnTensorDescriptor_t x, const void *xp, cudnnFilterDescriptor_t w, const void *wp,
             cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y, const void *yp, const void *alpha,
             const void *beta, void *ws, size_t wsb, int algo, size_t need, const char *dir)
    {
        char what[64];
        check_geom(x, w, c, y);
        check_math(c, x->dt);
        if (*(const float *)alpha != 1.0f || *(const float *)beta != 0.0f)
            FAIL("%s alpha/beta", dir);
        if (wsb < need)
            FAIL("%s workspace %zu < %zu for algo %d", dir, wsb, need, algo);
        snprintf(what, sizeof what, "%s workspace", dir);
        if (need)
            need_dev(ws, need, what);
        snprintf(what, sizeof what, "%s x (input side)", dir);
        need_dev(xp, tbytes(x), what);
        snprintf(what, sizeof what, "%s w", dir);
        need_dev(wp, fbytes(w), what);
        snprintf(what, sizeof what, "%s y (output side)", dir);
        need_dev(yp, tbytes(y), what);
        g = geom(x, w, c, y);
        wf = to_f(wp, fbytes(w) / elt(w->dt), w->dt);
        scratch.resize(zf_conv_workspace_floats(&g) + 16);
    }
    /* The tensor the call reads, as floats. */
    std::vector<float> in(const void *p, cudnnTensorDescriptor_t t) const { return to_f(p, tbytes(t) / elt(t->dt), t->dt); }
};

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t, const void *alpha, cudnnTensorDescriptor_t x, const void *xp, cudnnFilterDescriptor_t w, const void *wp, cudnnConvolutionDescriptor_t c, cudnnConvolutionFwdAlgo_t a, void *ws, size_t wsb, const void *beta, cudnnTensorDescriptor_t y, void *yp)
{
    emu_conv conv(x, xp, w, wp, c, y, yp, alpha, beta, ws, wsb, a, fwd_ws(a, x->n), "fwd");
    std::vector<float> xf = conv.in(xp, x), yf(tbytes(y) / elt(y->dt));
    zf_conv_forward(yf.data(), xf.data(), conv.wf.data(), NULL, &conv.g, conv.scratch.data());
    from_f(yp, yf, y->dt);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t, const void *alpha, cudnnFilterDescriptor_t w, const void *wp, cudnnTensorDescriptor_t dy, const void *dyp, cudnnConvolutionDescriptor_t c, cudnnConvolutionBwdDataAlgo_t a, void *ws, size_t wsb, const void *beta, cudnnTensorDescriptor_t dx, void *dxp)
{
    emu_conv conv(dx, dxp, w, wp, c, dy, dyp, alpha, beta, ws, wsb, a, bwd_ws(a, dx->n), "bwd");
    std::vector<float> dyf = conv.in(dyp, dy), dxf(tbytes(dx) / elt(dx->dt));
    zf_conv_backward_data(dxf.data(), dyf.data(), conv.wf.data(), &conv.g, conv.scratch.data());
    from_f(dxp, dxf, dx->dt);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t, const void *alpha, cudnnTensorDescriptor_t x, const void *xp, cudnnTensorDescriptor_t dy, const void *dyp, cudnnConvolutionDescriptor_t c, cudnnConvolutionBwdFilterAlgo_t a, void *ws, size_t wsb, const void *beta, cudnnFilterDescriptor_t dw, void *dwp)
{
    if (a != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1)
        FAIL("filters' gradient with the non-deterministic algorithm %d", a);
    if (x->dt != CUDNN_DATA_FLOAT)
        FAIL("filters' gradient of data type %d", x->dt);
    emu_conv conv(x, xp, dw, dwp, c, dy, dyp, alpha, beta, ws, wsb, a, bwf_ws(a, x->n), "bwf");
    std::vector<float> xf = conv.in(xp, x), dyf = conv.in(dyp, dy), dwf(fbytes(dw) / 4);
    std::vector<float> scratch(zf_conv_backward_weights_ws_floats(&conv.g) + 16);
    zf_conv_backward_weights(dwf.data(), NULL, xf.data(), dyf.data(), &conv.g, scratch.data());
    memcpy(dwp, dwf.data(), dwf.size() * 4);
    return CUDNN_STATUS_SUCCESS;
}

/* ---- cuBLAS ---- */
struct cublasContext { int x; };
cublasStatus_t cublasCreate_v2(cublasHandle_t *h) { *h = new cublasContext; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGetProperty(libraryPropertyType t, int *v) { *v = t == MAJOR_VERSION ? 13 : 0; return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t) { return "emulated cuBLAS error"; }

cublasStatus_t cublasSgemv_v2(cublasHandle_t, cublasOperation_t tr, int m, int n, const float *alpha, const float *A, int lda, const float *x, int incx, const float *beta, float *y, int incy)
{
    need_dev(A, (size_t)lda * n * 4, "gemv A");
    const int xl = tr == CUBLAS_OP_N ? n : m, yl = tr == CUBLAS_OP_N ? m : n;
    need_dev(x, (size_t)xl * incx * 4, "gemv x");
    need_dev(y, (size_t)yl * incy * 4, "gemv y");
    cblas_sgemv(CblasColMajor, tr == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, *alpha, A, lda, x, incx, *beta, y, incy);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb, const void *beta, void *C, cudaDataType ct, int ldc, cublasComputeType_t comp, cublasGemmAlgo_t)
{
    if (at != CUDA_R_32F || bt != CUDA_R_32F || ct != CUDA_R_32F)
        FAIL("gemm types");
    if (comp != CUBLAS_COMPUTE_32F && comp != CUBLAS_COMPUTE_32F_FAST_TF32 && comp != CUBLAS_COMPUTE_32F_FAST_16BF)
        FAIL("gemm compute type %d", comp);
    const char *e = getenv("EMU_EXPECT_MATH");
    if (e && !strcmp(e, "fma") && comp != CUBLAS_COMPUTE_32F)
        FAIL("FP32 gemm with compute type %d", comp);
    need_dev(A, (size_t)lda * (ta == CUBLAS_OP_N ? k : m) * 4, "gemm A");
    need_dev(B, (size_t)ldb * (tb == CUBLAS_OP_N ? n : k) * 4, "gemm B");
    need_dev(C, (size_t)ldc * n * 4, "gemm C");
    cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                m, n, k, *(const float *)alpha, (const float *)A, lda, (const float *)B, ldb, *(const float *)beta, (float *)C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
