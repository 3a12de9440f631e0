/* Times occlusion maps: the project's brute force and the incremental method on the built-in nets,
 * for patch:stride pairs. Prints one JSON line per (net, pair, method) with the median seconds;
 * bench/run-occlusion.sh runs PyTorch's batched brute force in the same session for the ratios.
 *   bench_occlusion [--nets alexnet,zfnet] [--pairs 32:8,16:4] [--methods brute,incremental]
 *                   [--weights DIR] [--input X.npy] [--repeat N] [--out DIR] [--profile]
 *                   [--conv auto|im2col|delta|winograd|winograd4] [--batch N]
 * --weights DIR reads DIR/<net>/ (<layer>.weight.npy ...); without it the weights are He-uniform
 * from a fixed seed. --out DIR writes each map to DIR/<net>-<patch>-<stride>-<method>/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "testutil.h"
#include "zf/io.h"
#include "zf/net.h"
#include "zf/occlusion.h"
#include "zf/tensor.h"

/* He-uniform weights: activations keep their scale, so the timings see no denormals. */
static void he_init(zf_net *net)
{
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (l->op == ZF_OP_CONV || l->op == ZF_OP_FC) {
            float a = (float)sqrt(6.0 * l->out_c / (double)l->weight_count);
            tu_fill_uniform(l->weight, (size_t)l->weight_count, 100 + (uint64_t)i, -a, a);
            tu_fill_uniform(l->bias, (size_t)l->bias_count, 200 + (uint64_t)i, -0.05f, 0.05f);
        }
    }
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_occlusion: %s: %s\n", what, zf_last_error());
    return 1;
}

static zf_status write_map(const char *dir, const char *name, zf_dtype dtype, const void *data,
                           const int64_t *shape)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return zf_error(ZF_ERR_ARG, "%s: path too long", dir);
    return zf_npy_write_raw(path, dtype, data, 2, shape);
}

static zf_status write_maps(const char *dir, const zf_occlusion_result *r)
{
    char cmd[4200];
    const int64_t shape[2] = {r->rows, r->cols};
    zf_status st;
    if (snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir) >= (int)sizeof cmd || system(cmd))
        return zf_error(ZF_ERR_IO, "%s: cannot create", dir);
    if ((st = write_map(dir, "feature.npy", ZF_DTYPE_F32, r->feature, shape)) ||
        (st = write_map(dir, "prob.npy", ZF_DTYPE_F32, r->prob, shape)))
        return st;
    return write_map(dir, "argmax.npy", ZF_DTYPE_I32, r->argmax, shape);
}

int main(int argc, char **argv)
{
    const char *nets = "alexnet,zfnet", *pairs = "32:8,16:4", *methods = "brute,incremental";
    const char *weights = NULL, *input = NULL, *out = NULL;
    int repeat = 3, profile = 0, batch = 0;
    zf_occlusion_conv conv = ZF_OCCLUSION_CONV_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--profile"))
            profile = 1;
        else if (v && !strcmp(a, "--nets"))
            nets = argv[++i];
        else if (v && !strcmp(a, "--pairs"))
            pairs = argv[++i];
        else if (v && !strcmp(a, "--methods"))
            methods = argv[++i];
        else if (v && !strcmp(a, "--weights"))
            weights = argv[++i];
        else if (v && !strcmp(a, "--input"))
            input = argv[++i];
        else if (v && !strcmp(a, "--batch"))
            batch = atoi(argv[++i]);
        else if (v && !strcmp(a, "--out"))
            out = argv[++i];
        else if (v && !strcmp(a, "--conv")) {
            const char *c = argv[++i];
            conv = !strcmp(c, "im2col") ? ZF_OCCLUSION_CONV_IM2COL
                   : !strcmp(c, "delta") ? ZF_OCCLUSION_CONV_DELTA
                   : !strcmp(c, "winograd") ? ZF_OCCLUSION_CONV_WINOGRAD
                   : !strcmp(c, "winograd4") ? ZF_OCCLUSION_CONV_WINOGRAD4
                                            : ZF_OCCLUSION_CONV_AUTO;
        } else if (v && !strcmp(a, "--repeat"))
            repeat = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_occlusion [--nets a,b] [--pairs P:S,...] [--methods brute,incremental]\n"
                            "                       [--weights DIR] [--input X.npy] [--repeat N] [--out DIR] [--profile]\n"
                            "                       [--conv auto|im2col|delta|winograd|winograd4] [--batch N]\n");
            return 2;
        }
    }
    if (repeat < 1 || repeat > 64)
        repeat = 3;
    char nbuf[256];
    snprintf(nbuf, sizeof nbuf, "%s", nets);
    for (char *s1 = NULL, *arch = strtok_r(nbuf, ",", &s1); arch; arch = strtok_r(NULL, ",", &s1)) {
        zf_net *net = NULL;
        if (zf_net_new_builtin(arch, &net))
            return fail(arch);
        if (weights) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/%s", weights, arch);
            if (zf_net_load_weights(net, dir))
                return fail(dir);
        } else {
            he_init(net);
        }
        zf_tensor *x = NULL;
        if (input) {
            if (zf_input_load(input, net, &x))
                return fail(input);
        } else {
            x = zf_tensor_new4(1, net->in_c, net->in_h, net->in_w);
            if (!x)
                return fail("input");
            tu_fill_uniform(zf_tensor_f32(x), (size_t)x->size, 7, -1.5f, 1.5f);
        }
        char pbuf[256];
        snprintf(pbuf, sizeof pbuf, "%s", pairs);
        for (char *s2 = NULL, *pr = strtok_r(pbuf, ",", &s2); pr; pr = strtok_r(NULL, ",", &s2)) {
            int patch, stride;
            if (sscanf(pr, "%d:%d", &patch, &stride) != 2) {
                fprintf(stderr, "bench_occlusion: bad pair '%s' (PATCH:STRIDE)\n", pr);
                return 2;
            }
            char mbuf[128];
            snprintf(mbuf, sizeof mbuf, "%s", methods);
            for (char *s3 = NULL, *m = strtok_r(mbuf, ",", &s3); m; m = strtok_r(NULL, ",", &s3)) {
                zf_occlusion_params p;
                zf_occlusion_params_default(&p);
                p.patch = patch;
                p.stride = stride;
                p.conv = conv;
                p.batch = batch > 0 ? batch : 0;
                p.method = !strcmp(m, "brute") ? ZF_OCCLUSION_BRUTE
                           : !strcmp(m, "auto") ? ZF_OCCLUSION_AUTO
                                                : ZF_OCCLUSION_INCREMENTAL;
                double t[64];
                zf_occlusion_result *res = NULL;
                for (int r = 0; r < repeat; r++) {
                    zf_occlusion_result_free(res);
                    if (zf_occlusion_run(net, zf_tensor_f32(x), &p, &res))
                        return fail(arch);
                    t[r] = res->seconds;
                }
                qsort(t, (size_t)repeat, sizeof t[0], bench_cmp_double);
                printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"occlusion_%s\", \"patch\": %d, "
                       "\"stride\": %d, \"positions\": %d, \"seconds\": %.4f, \"min_seconds\": %.4f, "
                       "\"work_ratio\": %.3f, \"channel\": %d, \"class\": %d}\n",
                       arch, zf_occlusion_method_name(res->method), patch, stride, res->rows * res->cols,
                       t[repeat / 2], t[0], res->work_ratio, res->channel, res->cls);
                fflush(stdout);
                if (profile && res->method == ZF_OCCLUSION_INCREMENTAL)
                    for (int i = 0; i < res->n_layers; i++)
                        if (res->layer_seconds[i] > 0)
                            fprintf(stderr, "  %-14s %3d:%-3d %-8s %8.1f ms %s%s\n", arch, patch, stride,
                                    net->layers[i].name, 1e3 * res->layer_seconds[i],
                                    net->layers[i].op == ZF_OP_CONV ? zf_occlusion_conv_name(res->layer_conv[i]) : "",
                                    i == net->n_layers - 1 && res->fc_delta >= 0 ? "(first fc as a change)" : "");
                if (out) {
                    char dir[2048];
                    if (snprintf(dir, sizeof dir, "%s/%s-%d-%d-%s", out, arch, patch, stride, m) >= (int)sizeof dir)
                        return fail("--out path too long");
                    if (write_maps(dir, res))
                        return fail(dir);
                }
                zf_occlusion_result_free(res);
            }
        }
        zf_tensor_free(x);
        zf_net_free(net);
    }
    return 0;
}
