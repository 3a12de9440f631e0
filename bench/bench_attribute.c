/* Attribution benchmark, engine side (bench/run-attribute.sh): seconds per image of the gradient,
 * guided backprop, Grad-CAM (at the last conv layer's ReLU) and integrated gradients (50 midpoint
 * steps, zero baseline) of class 1's score, at batches of 1 and 16 images, on the weights and
 * inputs bench/torch_attribute.py prepared; each method's output is first compared with
 * PyTorch's (relative L2 error over the batch, printed with the timing).
 *   bench_attribute DIR [--nets alexnet-mini,...] [--batches 1,16] [--methods M,...] [--seconds S]
 *                       [--ig-batch N]
 * One JSON line per net, method and batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "zf/attribution.h"
#include "zf/io.h"
#include "zf/net.h"
#include "zf/tensor.h"

#define CLASS 1
#define STEPS 50
#define MAX_TIMES 50

static const char *const methods[] = {"gradient", "guided-backprop", "gradcam", "integrated-gradients"};

typedef struct run {
    zf_net *net;
    zf_backprop *bp;
    const float *x, *zero;
    float *out;
    int m, n, cam_layer;
    zf_attr_target t[16];
} run;

/* Whether `name` is one of the comma-separated words of `list` (not a part of one: "gradient" is
 * in "integrated-gradients"). */
static int listed(const char *list, const char *name)
{
    const size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
            return 1;
    return 0;
}

static int once(run *r)
{
    const size_t in = (size_t)zf_net_in_size(r->net);
    zf_attr_target t = {zf_attr_logits_layer(r->net, 0), CLASS, -1, 0};
    for (int i = 0; i < r->n; i++)
        r->t[i] = t;
    switch (r->m) {
    case 0:
    case 1:
        return zf_attr_gradient(r->bp, r->out, NULL, r->x, r->n, &t, r->m ? ZF_RELU_RULE_GUIDED : ZF_RELU_RULE_GRADIENT);
    case 2:
        return zf_attr_gradcam_each(r->bp, r->out, NULL, NULL, NULL, r->x, r->n, r->cam_layer, r->t);
    default:
        for (int i = 0; i < r->n; i++) {
            zf_status st = zf_attr_integrated_gradients(r->bp, r->out + (size_t)i * in, NULL, NULL, r->x + (size_t)i * in,
                                                        r->zero, &t, STEPS, ZF_IG_MIDPOINT);
            if (st)
                return st;
        }
        return 0;
    }
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *nets = "alexnet-mini,zfnet-mini,alexnet", *batches = "1,16",
               *which = "gradient,guided-backprop,gradcam,integrated-gradients";
    double seconds = 3;
    int ig_batch = 16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--nets"))
            nets = argv[++i];
        else if (v && !strcmp(a, "--batches"))
            batches = argv[++i];
        else if (v && !strcmp(a, "--methods"))
            which = argv[++i];
        else if (v && !strcmp(a, "--seconds"))
            seconds = atof(argv[++i]);
        else if (v && !strcmp(a, "--ig-batch"))
            ig_batch = atoi(argv[++i]);
        else if (a[0] != '-' && !dir)
            dir = a;
        else {
            fprintf(stderr, "usage: bench_attribute DIR [--nets N,...] [--batches 1,16] [--methods M,...] "
                            "[--seconds S] [--ig-batch N]\n");
            return 2;
        }
    }
    if (!dir || ig_batch < 1) {
        fprintf(stderr, "bench_attribute: DIR (from bench/torch_attribute.py prepare) is required\n");
        return 2;
    }
    char list[256];
    snprintf(list, sizeof list, "%s", nets);
    for (char *save = NULL, *arch = strtok_r(list, ",", &save); arch; arch = strtok_r(NULL, ",", &save)) {
        char path[4096];
        zf_net *net = NULL;
        zf_tensor *x = NULL;
        snprintf(path, sizeof path, "%s/%s/weights", dir, arch);
        if (zf_net_new_builtin(arch, &net) || zf_net_load_weights(net, path)) {
            fprintf(stderr, "bench_attribute: %s: %s\n", arch, zf_last_error());
            return 1;
        }
        snprintf(path, sizeof path, "%s/%s/x.npy", dir, arch);
        if (zf_input_load(path, net, &x)) {
            fprintf(stderr, "bench_attribute: %s\n", zf_last_error());
            return 1;
        }
        const size_t in = (size_t)zf_net_in_size(net);
        int last_conv = -1;
        for (int i = 0; i < net->n_layers; i++)
            if (net->layers[i].op == ZF_OP_CONV)
                last_conv = i;
        float *zero = calloc(in, sizeof *zero), *out = malloc(sizeof(float) * in * 16);
        for (int m = 0; m < 4; m++) {
            if (!listed(which, methods[m]))
                continue;
            char bl[64];
            snprintf(bl, sizeof bl, "%s", batches);
            for (char *s2 = NULL, *b = strtok_r(bl, ",", &s2); b; b = strtok_r(NULL, ",", &s2)) {
                const int n = atoi(b);
                zf_backprop *bp = NULL;
                if (n < 1 || n > 16 || n > x->shape[0] || zf_backprop_new(net, m == 3 ? ig_batch : n, &bp)) {
                    fprintf(stderr, "bench_attribute: %s batch %d: %s\n", arch, n, zf_last_error());
                    return 1;
                }
                run r = {net, bp, zf_tensor_f32(x), zero, out, m, n, zf_net_rectified(net, last_conv), {{0}}};
                if (once(&r)) {
                    fprintf(stderr, "bench_attribute: %s %s: %s\n", arch, methods[m], zf_last_error());
                    return 1;
                }
                /* against PyTorch's output for the same images */
                zf_tensor *ref = NULL;
                snprintf(path, sizeof path, "%s/%s/torch-%s.npy", dir, arch, methods[m]);
                double num = 0, den = 0;
                if (!zf_npy_read(path, &ref)) {
                    const size_t per = (size_t)(ref->size / ref->shape[0]);
                    for (size_t i = 0; i < per * (size_t)n; i++) {
                        const double d = (double)out[i] - zf_tensor_f32(ref)[i];
                        num += d * d;
                        den += (double)zf_tensor_f32(ref)[i] * zf_tensor_f32(ref)[i];
                    }
                    zf_tensor_free(ref);
                }
                double times[MAX_TIMES];
                int k = 0;
                const double start = bench_now();
                while (k < 2 || (bench_now() - start < seconds && k < MAX_TIMES)) {
                    const double t0 = bench_now();
                    if (once(&r))
                        return 1;
                    times[k++] = bench_now() - t0;
                }
                const double med = bench_median(times, k);
                printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"method\": \"%s\", \"batch\": %d, \"ig_batch\": %d, "
                       "\"s_per_image\": %.6g, \"calls\": %d, \"rel_err_vs_torch\": %.3g}\n",
                       arch, methods[m], n, ig_batch, med / n, k, den > 0 ? sqrt(num / den) : -1.0);
                fflush(stdout);
                zf_backprop_free(bp);
            }
        }
        free(zero);
        free(out);
        zf_tensor_free(x);
        zf_net_free(net);
    }
    return 0;
}
