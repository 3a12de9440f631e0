/* zfviz info: the layer table of a network (name, op, output shape, parameters) and its input. */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "zf/cpu.h"

const char zf_cmd_info_summary[] = "print a network's layers, shapes, parameters and preprocessing";

static void describe_op(const zf_layer *l, char *buf, size_t len)
{
    const zf_window *w = &l->win;
    switch (l->op) {
    case ZF_OP_CONV:
        snprintf(buf, len, "conv %dx%d/%d pad %d,%d,%d,%d%s", w->kh, w->kw, w->sh, w->pt, w->pl, w->pb,
                 w->pr, l->groups > 1 ? (l->groups == 2 ? " groups 2" : " grouped") : "");
        break;
    case ZF_OP_MAXPOOL:
    case ZF_OP_AVGPOOL:
        snprintf(buf, len, "%s %dx%d/%d pad %d,%d,%d,%d%s", l->op == ZF_OP_MAXPOOL ? "maxpool" : "avgpool",
                 w->kh, w->kw, w->sh, w->pt, w->pl, w->pb, w->pr, l->ceil_mode ? " ceil" : "");
        break;
    case ZF_OP_LRN:
        snprintf(buf, len, "lrn size %d alpha %g beta %g k %g", l->lrn.size, l->lrn.alpha, l->lrn.beta,
                 l->lrn.k);
        break;
    case ZF_OP_DROPOUT:
        snprintf(buf, len, "dropout %g (identity at inference)", l->dropout_p);
        break;
    default:
        snprintf(buf, len, "%s", zf_op_name(l->op));
    }
}

static void group_digits(long long v, char *buf, size_t len)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", v);
    size_t n = strlen(raw), o = 0;
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        buf[o++] = raw[i];
        if ((n - i - 1) % 3 == 0 && i + 1 < n)
            buf[o++] = ',';
    }
    buf[o] = '\0';
}

/* The class count and where names come from; the net's own names are listed, wrapped. */
static void print_classes(const zf_net *net)
{
    const int n = zft_net_classes(net);
    if (net->n_labels > 0) {
        printf("classes: %d, named by the model:\n ", n);
        int col = 1;
        for (int k = 0; k < net->n_labels; k++) {
            char item[160];
            int len = snprintf(item, sizeof item, " %d %s%s", k, zf_net_label(net, k), k + 1 < net->n_labels ? "," : "");
            if (col > 1 && col + len > 100) {
                printf("\n ");
                col = 1;
            }
            fputs(item, stdout);
            col += len;
        }
        printf("\n");
        if (net->n_labels != n)
            printf("  (%d names for %d outputs)\n", net->n_labels, n);
    } else if (zft_class_name(net, 0)) {
        printf("classes: %d, ImageNet names (e.g. 0 %s)\n", n, zft_class_name(net, 0));
    } else {
        printf("classes: %d, unnamed (shown by index)\n", n);
    }
}

static void usage(void)
{
    printf("usage: zfviz info (--arch A | --model F)\n\n"
           "Prints the layer table (name, op, output shape, parameters), the total parameter\n"
           "count, how images are preprocessed for the net (grey nets: one luma plane) and its\n"
           "classes, listed by name when the model carries names.\n\n" ZFT_MODEL_HELP);
}

int zf_cmd_info(int argc, char **argv)
{
    zft_model_opts mo = {0};
    const zft_opt opts[] = {{0}};
    zft_args a = {.cmd = "info", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .model = &mo};
    if (zft_args_parse(&a))
        return a.rc;
    zf_net *net = NULL;
    zf_status st;
    if (mo.model || mo.weights || !mo.arch || zf_arch_is_mini(mo.arch)) {
        /* the default and the mini nets are the embedded trained models */
        st = zft_load_model(&mo, &net);
    } else {
        st = zf_net_new_builtin(mo.arch ? mo.arch : "alexnet", &net);
    }
    if (st)
        return zft_fail("info", st);

    const zf_preproc *p = &net->pre;
    printf("network: %s   input %dx%dx%d\n", net->arch, net->in_c, net->in_h, net->in_w);
    /* A grey net normalises one plane with the first mean and std (zf_image_to_input), as
     * zf_onnx_preproc_format says it. */
    if (p->order == ZF_COLOR_GREY)
        printf("preprocessing: grey (luma 0.299 R + 0.587 G + 0.114 B), pixels scaled to [0, %g], mean %g, "
               "std %g, ", p->scale, p->mean[0], p->std[0]);
    else
        printf("preprocessing: %s, pixels scaled to [0, %g], mean %g %g %g, std %g %g %g (R G B), ",
               p->order == ZF_COLOR_BGR ? "BGR" : "RGB", p->scale, p->mean[0], p->mean[1], p->mean[2], p->std[0],
               p->std[1], p->std[2]);
    if (p->resize == ZF_RESIZE_SHORT_CROP)
        printf("short side resized to %d, centre crop %dx%d\n", p->resize_short, net->in_h, net->in_w);
    else
        printf("resized to %dx%d\n", net->in_h, net->in_w);
    print_classes(net);
    printf("\n");
    printf("%3s  %-10s %-38s %-14s %12s\n", "#", "layer", "op", "output", "parameters");
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        char op[96], shape[48], params[32] = "";
        describe_op(l, op, sizeof op);
        if (l->out_h == 1 && l->out_w == 1 && l->op != ZF_OP_CONV)
            snprintf(shape, sizeof shape, "%d", l->out_c);
        else
            snprintf(shape, sizeof shape, "%dx%dx%d", l->out_c, l->out_h, l->out_w);
        if (l->weight_count + l->bias_count)
            group_digits(l->weight_count + l->bias_count, params, sizeof params);
        printf("%3d  %-10s %-38s %-14s %12s", i, l->name, op, shape, params);
        if (l->graph_name[0])
            printf("   (%s)", l->graph_name);
        printf("\n");
    }
    char total[32];
    group_digits(zf_net_param_count(net), total, sizeof total);
    printf("\ntotal parameters: %s\n", total);
    /* How the CPU engine's threads behave: spinning waits collapse on a shared machine (main.c) */
    printf("CPU engine: %d OpenMP threads, %s\n", omp_get_max_threads(), zf_cpu_wait());
    /* zfviz's own kernels (ZFVIZ_ISA may force narrower ones) and the BLAS ones (main.c) */
    const char *guess = getenv("ZFVIZ_BLAS_GUESS"), *core = getenv("OPENBLAS_CORETYPE");
    char why[96] = "";
    if (guess && core)
        snprintf(why, sizeof why, ", set by zfviz: OpenBLAS alone chose %s", guess);
    else if (core)
        snprintf(why, sizeof why, ", as OPENBLAS_CORETYPE asks");
    const char *dnnl = zf_cpu_dnnl();
    printf("kernels: %s (CPU: %s; OpenBLAS: %s%s; %s; GEMM: %s)\n", zf_cpu_kernels(), zf_cpu_kernels_max(),
           zf_blas_core(), why, dnnl ? dnnl : "no oneDNN", zf_cpu_gemm());
    /* each convolution's path at batch 1 (larger batches may take Winograd where batch 1 does not) */
    printf("convolutions at batch 1:");
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_CONV) {
            zf_conv_geom g = zf_layer_conv_geom(&net->layers[i], 1);
            printf(" %s %s", net->layers[i].name, zf_cpu_conv_path(&g));
        }
    printf("\n");
    zf_net_free(net);
    return 0;
}
