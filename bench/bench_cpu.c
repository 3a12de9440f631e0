/* Times the CPU engine: forward at batch 1 and 16 and the deconvnet projection of one conv5 unit
 * (forward included) for each built-in net. Prints one JSON line per measurement (medians);
 * bench/run-cpu.sh runs PyTorch in the same session and prints the ratios.
 *   bench_cpu [--quick] [--profile] [--nets alexnet,zfnet] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zf/net.h"
#include "zf/tensor.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Repeats fn until `budget` seconds or `max_reps`, after one warm-up; returns the median in ms. */
#define TIME_MEDIAN(budget, max_reps, stmt)                                                        \
    ({                                                                                             \
        double ts_[256];                                                                           \
        int n_ = 0;                                                                                \
        stmt;                                                                                      \
        double t_end_ = now() + (budget);                                                          \
        while (n_ < (max_reps) && n_ < 256 && (n_ < 3 || now() < t_end_)) {                        \
            double t0_ = now();                                                                    \
            stmt;                                                                                  \
            ts_[n_++] = (now() - t0_) * 1e3;                                                       \
        }                                                                                          \
        median(ts_, n_);                                                                           \
    })

int main(int argc, char **argv)
{
    int quick = 0, profile = 0;
    const char *nets = "alexnet,alexnet-caffe,zfnet";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--profile"))
            profile = 1;
        else if (!strcmp(argv[i], "--nets") && i + 1 < argc)
            nets = argv[++i];
        else {
            fprintf(stderr, "usage: bench_cpu [--quick] [--profile] [--nets a,b]\n");
            return 2;
        }
    }
    const double budget = quick ? 1.0 : 4.0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", nets);
    for (char *save = NULL, *arch = strtok_r(buf, ",", &save); arch; arch = strtok_r(NULL, ",", &save)) {
        zf_net *net = NULL;
        if (zf_net_new_builtin(arch, &net) || zf_net_load_weights(net, "random:1") || zf_net_reserve(net, 16)) {
            fprintf(stderr, "bench_cpu: %s: %s\n", arch, zf_last_error());
            return 1;
        }
        const size_t isz = (size_t)zf_net_in_size(net);
        float *x = zf_alloc(16 * isz * sizeof(float)), *y = zf_alloc(16 * isz * sizeof(float));
        srand(1);
        for (size_t i = 0; i < 16 * isz; i++)
            x[i] = (float)rand() / RAND_MAX - 0.5f;
        const int batches[2] = {1, 16};
        for (int b = 0; b < 2; b++) {
            int n = batches[b];
            double ms = TIME_MEDIAN(budget, 50, zf_net_forward(net, x, n));
            printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"forward\", \"batch\": %d, \"ms\": %.3f, "
                   "\"img_per_s\": %.2f}\n", arch, n, ms, n * 1e3 / ms);
            fflush(stdout);
            if (profile) {
                memcpy(net->input, x, sizeof(float) * n * isz);
                for (int i = 0; i < net->n_layers; i++) {
                    double lms = TIME_MEDIAN(budget / 10, 20, zf_net_forward_range(net, i, i, n));
                    fprintf(stderr, "  %-14s batch %2d  %-8s %8.3f ms\n", arch, n, net->layers[i].name, lms);
                }
            }
        }
        int conv5 = zf_net_find_conv(net, "conv5");
        int chan = 3, py = -1, px = -1;
        zf_deconv_req req = {conv5, ZF_DECONV_UNIT, 0, &chan, &py, &px};
        /* The forward up to conv5's ReLU (all the deconvnet needs), then the projection. */
        const int relu5 = zf_net_rectified(net, conv5);
        double ms = TIME_MEDIAN(budget, 50,
                                (zf_net_forward_upto(net, x, 1, relu5), py = px = -1, zf_net_deconv(net, y, 1, &req)));
        printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"deconv_conv5_unit\", \"batch\": 1, \"ms\": %.3f}\n",
               arch, ms);
        fflush(stdout);
        zf_free(x);
        zf_free(y);
        zf_net_free(net);
    }
    return 0;
}
