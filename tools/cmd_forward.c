/* zfviz forward: run a network on images or a .npy batch, dump chosen layers, print the top classes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "zf/io.h"

const char zf_cmd_forward_summary[] = "run a network forward, dump layer outputs, print top-5 classes";

#define MAX_DUMPS 64

/* Layers at or after the first flatten/fc hold (N, C) tensors; earlier ones (N, C, H, W). */
static int first_flat_layer(const zf_net *net)
{
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_FLATTEN || net->layers[i].op == ZF_OP_FC)
            return i;
    return net->n_layers;
}

static void print_top(const zf_net *net, const float *probs, int k_out, int img, int top, int is_prob)
{
    int idx[16];
    if (top > 16)
        top = 16;
    if (top > k_out)
        top = k_out;
    for (int t = 0; t < top; t++) {
        int best = -1;
        for (int j = 0; j < k_out; j++) {
            int taken = 0;
            for (int u = 0; u < t; u++)
                taken |= idx[u] == j;
            if (!taken && (best < 0 || probs[j] > probs[best]))
                best = j;
        }
        idx[t] = best;
    }
    printf("image %d:", img);
    for (int t = 0; t < top; t++) {
        char cls[160];
        printf("%s %s %.4f", t ? "," : "", zft_class_text(cls, sizeof cls, net, idx[t]), probs[idx[t]]);
    }
    printf("%s\n", is_prob ? "" : "   (scores: the net has no softmax)");
}

int zf_cmd_forward(int argc, char **argv)
{
    static const struct option opts[] = {ZFT_MODEL_LONGOPTS,
                                         ZFT_DEVICE_LONGOPTS,
                                         {"input", required_argument, 0, 'i'},
                                         {"dump", required_argument, 0, 'd'},
                                         {"out", required_argument, 0, 'o'},
                                         {"top", required_argument, 0, 't'},
                                         {"batch", required_argument, 0, 'b'},
                                         ZFT_FORCE_LONGOPT,
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    zft_model_opts mo = {0};
    zft_device dev = {0};
    const char *input = NULL, *dump = NULL, *outdir = NULL;
    long top = 5, batch = 16;
    int c;
    while ((c = getopt_long(argc, argv, "hi:o:", opts, NULL)) != -1) {
        if (zft_force_option(c))
            continue;
        if (zft_model_option(&mo, c, optarg) || zft_device_option(&dev, c, optarg))
            continue;
        switch (c) {
        case 'i': input = optarg; break;
        case 'd': dump = optarg; break;
        case 'o': outdir = optarg; break;
        case 't':
            if ((top = zft_parse_long(optarg)) < 0)
                return zft_usage_error("forward", "--top needs a number, got '%s'", optarg);
            break;
        case 'b':
            if ((batch = zft_parse_long(optarg)) < 1)
                return zft_usage_error("forward", "--batch needs a positive number, got '%s'", optarg);
            break;
        case 'h':
            printf("usage: zfviz forward (--arch A --weights W | --model F) --input X [--dump L1,L2,...]\n"
                   "                     [--out DIR] [--top K] [--batch N]\n\n"
                   "Runs the net on X (a .npy of N x C x H x W, or a JPEG/PNG image preprocessed for the\n"
                   "net), prints the top-K classes of each image and writes DIR/<layer>.npy for each\n"
                   "dumped layer (N x C x H x W, or N x C from the flatten on).\n\n" ZFT_MODEL_HELP ZFT_DEVICE_HELP
                   "  --input X         .npy tensor or image file\n"
                   "  --dump L1,L2      layers to write (Caffe-style names: conv1, relu1, pool1, fc6, prob...)\n"
                   "  --out DIR         where the dumps go (created; default: current directory)\n" ZFT_FORCE_HELP
                   "  --top K           classes to print per image (default 5, 0 for none)\n"
                   "  --batch N         images per forward pass (default 16)\n");
            return 0;
        default:
            return zft_usage_error("forward", "unknown option");
        }
    }
    if (optind < argc)
        return zft_usage_error("forward", "unexpected argument '%s'", argv[optind]);
    if (!input)
        return zft_usage_error("forward", "--input is required");

    zf_net *net = NULL;
    zf_tensor *x = NULL;
    zf_tensor *dumps[MAX_DUMPS] = {0};
    int dump_idx[MAX_DUMPS];
    char listbuf[2048];
    const char *names[MAX_DUMPS];
    int n_dumps = 0, rc = 1;
    zf_status st = zft_load_model(&mo, &net);
    if (st)
        goto fail;
    if ((st = zf_input_load(input, net, &x)))
        goto fail;
    const int n = (int)x->shape[0];
    if (dump)
        n_dumps = zft_split_list(dump, listbuf, sizeof listbuf, names, MAX_DUMPS);
    const int flat_from = first_flat_layer(net);
    for (int d = 0; d < n_dumps; d++) {
        dump_idx[d] = zf_net_find(net, names[d]);
        if (dump_idx[d] < 0) {
            st = zf_error(ZF_ERR_ARG, "no layer named '%s' in %s (see zfviz info)", names[d], net->arch);
            goto fail;
        }
        const zf_layer *l = &net->layers[dump_idx[d]];
        dumps[d] = dump_idx[d] >= flat_from ? zf_tensor_new2(n, zf_layer_out_size(l))
                                            : zf_tensor_new4(n, l->out_c, l->out_h, l->out_w);
        if (!dumps[d]) {
            st = ZF_ERR_NOMEM;
            goto fail;
        }
    }
    /* Every dump's file checked before any work: a file zfviz may not replace stops the run. */
    for (int d = 0; d < n_dumps; d++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", outdir ? outdir : ".", net->layers[dump_idx[d]].name);
        if ((st = zft_output_check(path)))
            goto fail;
    }
    const int b = batch < n ? (int)batch : n;
    if ((st = zf_net_reserve(net, b)) || (st = zft_device_open(&dev, net, b)))
        goto fail;
    const zf_layer *last = &net->layers[net->n_layers - 1];
    const int k_out = (int)zf_layer_out_size(last);
    const size_t in_size = (size_t)zf_net_in_size(net);
    for (int i0 = 0; i0 < n; i0 += b) {
        const int nb = n - i0 < b ? n - i0 : b;
        if ((st = zft_device_forward(&dev, net, zf_tensor_f32(x) + (size_t)i0 * in_size, nb, dump_idx, n_dumps)))
            goto fail;
        for (int d = 0; d < n_dumps; d++) {
            size_t per = (size_t)zf_layer_out_size(&net->layers[dump_idx[d]]);
            memcpy(zf_tensor_f32(dumps[d]) + (size_t)i0 * per, net->acts[dump_idx[d]], sizeof(float) * per * nb);
        }
        for (int j = 0; j < nb && top > 0; j++)
            print_top(net, net->acts[net->n_layers - 1] + (size_t)j * k_out, k_out, i0 + j, (int)top,
                      last->op == ZF_OP_SOFTMAX);
        if (zf_interrupted) {
            st = zf_error(ZF_ERR_INTERRUPTED, "interrupted after %d of %d images", i0 + nb, n);
            goto fail;
        }
    }
    if (n_dumps && (st = zft_mkdirs(outdir ? outdir : ".")))
        goto fail;
    for (int d = 0; d < n_dumps; d++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", outdir ? outdir : ".", net->layers[dump_idx[d]].name);
        if ((st = zf_npy_write(path, dumps[d])))
            goto fail;
        fprintf(stderr, "wrote %s\n", path);
    }
    rc = 0;
fail:
    if (rc)
        rc = zft_fail("forward", st);
    for (int d = 0; d < n_dumps; d++)
        zf_tensor_free(dumps[d]);
    zft_device_close(&dev);
    zf_tensor_free(x);
    zf_net_free(net);
    return rc;
}
