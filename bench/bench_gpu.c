/* Times the CUDA engine: forward throughput at batch 1, 64 and 256 (input already on the device),
 * the deconvnet projection of one conv5 unit (the forward up to it included, result on the host), and
 * a 224 occlusion map with patch 32 and stride 8 (incremental and brute force). One JSON line per
 * measurement (medians); bench/torch_gpu.py prints the same for PyTorch + cuDNN and
 * scripts/gpu-check.sh puts them side by side.
 *   bench_gpu [--quick] [--nets alexnet,zfnet] [--precisions fp32,tf32] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "zf/net.h"
#include "zf/tensor.h"

#ifndef ZF_CUDA_ENABLED
int main(void)
{
    fprintf(stderr, "bench_gpu: built without the CUDA engine (no nvcc or cuDNN at configure time, or -DZF_CUDA=OFF)\n");
    return 0;
}
#else
#include <math.h>

#include "zf/cuda.h"

static int fail(const char *what)
{
    fprintf(stderr, "bench_gpu: %s: %s\n", what, zf_last_error());
    return 1;
}

/* Runs `stmt` (which must leave the GPU idle when it returns) after warm-ups until `budget`
 * seconds or 200 repetitions; the median in ms, or -1 if it failed. */
#define TIME_MEDIAN(budget, stmt)                                                                  \
    ({                                                                                             \
        double ts_[200];                                                                           \
        int n_ = 0, bad_ = 0;                                                                      \
        for (int w_ = 0; w_ < 3 && !bad_; w_++)                                                    \
            bad_ = (stmt) != ZF_OK;                                                                \
        double t_end_ = bench_now() + (budget);                                                    \
        while (!bad_ && n_ < 200 && (n_ < 5 || bench_now() < t_end_)) {                            \
            double t0_ = bench_now();                                                              \
            bad_ = (stmt) != ZF_OK;                                                                \
            ts_[n_++] = (bench_now() - t0_) * 1e3;                                                 \
        }                                                                                          \
        bad_ ? -1.0 : bench_median(ts_, n_);                                                             \
    })

/* He-uniform weights from a small generator: timings on zeros would flatter the GPU. */
static void fill_weights(zf_net *net)
{
    uint64_t s = 12345;
    for (int64_t i = 0; i < net->n_params; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        net->params[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
    }
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (!l->weight)
            continue;
        const float scale = (float)(2.0 * sqrt(6.0 / ((double)l->weight_count / l->out_c)));
        for (int64_t j = 0; j < l->weight_count; j++)
            l->weight[j] *= scale;
    }
}

static zf_status forward_synced(zf_cuda_net *cn, const float *x, int n)
{
    zf_status st = zf_cuda_net_forward_dev(cn, x, n);
    return st ? st : zf_cuda_sync(zf_cuda_net_ctx(cn));
}

/* The forward up to conv5's ReLU (what the deconvnet needs, as on the PyTorch side), then the
 * projection of channel 3's strongest unit, downloaded. */
static zf_status deconv_once(zf_cuda_net *cn, float *out, int conv5, int top)
{
    int chan = 3, py = -1, px = -1;
    zf_deconv_req req = {conv5, ZF_DECONV_UNIT, 0, &chan, &py, &px};
    zf_status st = zf_cuda_net_forward_range(cn, 0, top, 1);
    return st ? st : zf_cuda_net_deconv(cn, out, 1, &req);
}

static int bench_net(zf_cuda_ctx *ctx, const char *arch, zf_cuda_precision prec, int quick)
{
    const double budget = quick ? 0.5 : 2.0;
    const char *pname = zf_cuda_precision_name(prec);
    zf_net *net = NULL;
    if (zf_net_new_builtin(arch, &net))
        return fail(arch);
    fill_weights(net);
    const size_t isz = (size_t)zf_net_in_size(net);
    const int batches[3] = {1, 64, 256};
    float *x = zf_alloc(256 * isz * sizeof(float)), *y = zf_alloc(isz * sizeof(float));
    uint64_t s = 777;
    for (size_t i = 0; i < 256 * isz; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / 16777216.0 * 2.0 - 1.0);
    }
    if (zf_cuda_ctx_set_precision(ctx, prec))
        return fail("precision");
    zf_cuda_net *cn = NULL;
    if (zf_cuda_net_new(ctx, net, 256, &cn))
        return fail(arch);
    float *dx = zf_cuda_net_act(cn, -1); /* the device input buffer holds the batch */
    if (zf_cuda_upload(ctx, dx, x, 256 * isz * sizeof(float)))
        return fail("upload");
    for (int b = 0; b < 3; b++) {
        const int n = batches[b];
        const double ms = TIME_MEDIAN(budget, forward_synced(cn, NULL, n));
        if (ms < 0)
            return fail("forward");
        printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"forward\", \"batch\": %d, \"precision\": \"%s\", "
               "\"ms\": %.4f, \"img_per_s\": %.1f}\n",
               arch, n, pname, ms, n * 1e3 / ms);
        fflush(stdout);
    }
    const int conv5 = zf_net_find_conv(net, "conv5");
    double ms = TIME_MEDIAN(budget, deconv_once(cn, y, conv5, zf_net_rectified(net, conv5)));
    if (ms < 0)
        return fail("deconv");
    printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"deconv_conv5_unit\", \"batch\": 1, \"precision\": \"%s\", "
           "\"ms\": %.4f}\n",
           arch, pname, ms);
    fflush(stdout);
    for (int method = ZF_CUDA_OCCL_INCREMENTAL; method >= ZF_CUDA_OCCL_BRUTE; method--) {
        zf_cuda_occl_params p;
        zf_cuda_occl_params_default(&p);
        p.patch = 32;
        p.stride = 8;
        p.method = (zf_cuda_occl_method)method;
        zf_cuda_occl_map *m = NULL;
        double ts[20];
        int reps = quick ? 2 : 5;
        for (int r = -1; r < reps; r++) { /* one warm-up */
            const double t0 = bench_now();
            if (zf_cuda_occlusion(cn, x, &p, &m))
                return fail("occlusion");
            if (r >= 0)
                ts[r] = (bench_now() - t0) * 1e3;
            if (r < reps - 1) {
                zf_cuda_occl_map_free(m);
                m = NULL;
            }
        }
        printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"occlusion_p32_s8_%s\", \"batch\": 256, "
               "\"precision\": \"%s\", \"positions\": %d, \"work_ratio\": %.3f, \"ms\": %.2f}\n",
               arch, method == ZF_CUDA_OCCL_BRUTE ? "brute" : "incremental", pname, m->rows * m->cols,
               m->work_ratio, bench_median(ts, reps));
        fflush(stdout);
        zf_cuda_occl_map_free(m);
    }
    zf_cuda_net_free(cn);
    zf_free(x);
    zf_free(y);
    zf_net_free(net);
    return 0;
}

int main(int argc, char **argv)
{
    int quick = 0;
    const char *nets = "alexnet,zfnet", *precs = "fp32";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--nets") && i + 1 < argc)
            nets = argv[++i];
        else if (!strcmp(argv[i], "--precisions") && i + 1 < argc)
            precs = argv[++i];
        else {
            fprintf(stderr, "usage: bench_gpu [--quick] [--nets a,b] [--precisions fp32,tf32,bf16]\n");
            return 2;
        }
    }
    zf_cuda_ctx *ctx = NULL;
    if (zf_cuda_ctx_new(0, &ctx))
        return fail("no GPU");
    zf_cuda_ctx_set_autotune(ctx, 1); /* as torch.backends.cudnn.benchmark on the PyTorch side */
    char vers[256];
    zf_cuda_versions(vers, sizeof vers);
    fprintf(stderr, "bench_gpu: %s; %s\n", zf_cuda_ctx_name(ctx), vers);
    char pbuf[64];
    snprintf(pbuf, sizeof pbuf, "%s", precs);
    for (char *ps = NULL, *pn = strtok_r(pbuf, ",", &ps); pn; pn = strtok_r(NULL, ",", &ps)) {
        zf_cuda_precision prec;
        if (zf_cuda_parse_precision(pn, &prec))
            return fail("--precisions");
        char buf[256];
        snprintf(buf, sizeof buf, "%s", nets);
        for (char *save = NULL, *arch = strtok_r(buf, ",", &save); arch; arch = strtok_r(NULL, ",", &save))
            if (bench_net(ctx, arch, prec, quick))
                return 1;
    }
    zf_cuda_ctx_free(ctx);
    return 0;
}
#endif
