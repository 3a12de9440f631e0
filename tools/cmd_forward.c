/* zfviz forward: run a network on images or a .npy batch, dump chosen layers, print the top classes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "zf/input.h"
#include "zf/io.h"

const char zf_cmd_forward_summary[] = "run a network forward, dump layer outputs, print top-5 classes";

#define MAX_DUMPS 256

/* Layers at or after the first flatten/fc hold (N, C) tensors; earlier ones (N, C, H, W). */
static int first_flat_layer(const zf_net *net)
{
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_FLATTEN || net->layers[i].op == ZF_OP_FC)
            return i;
    return net->n_layers;
}

/* A dump's file name: the layer's, or "input" (index -1) for the tensor the net was given. */
static const char *dump_name(const zf_net *net, int idx)
{
    return idx < 0 ? "input" : net->layers[idx].name;
}

/* Every image under the folder `dir` (found as scan finds them), each preprocessed for the net,
 * stacked into one (n, c, h, w) tensor; *paths keeps their names. */
static zf_status load_folder(const char *dir, const zf_net *net, zf_tensor **out, char ***paths, int64_t *n)
{
    *out = NULL;
    zf_status st = zf_images_find(dir, paths, n);
    if (st)
        return st;
    if (*n > INT32_MAX / 2)
        return zf_error(ZF_ERR_UNSUPPORTED, "%s: %lld images are too many for one forward run", dir,
                        (long long)*n);
    const size_t in_size = (size_t)zf_net_in_size(net);
    zf_tensor *x = zf_tensor_new4(*n, net->in_c, net->in_h, net->in_w);
    if (!x)
        return zf_error_prefix(ZF_ERR_NOMEM, "%s: ", dir);
    for (int64_t i = 0; i < *n && !st; i++) {
        zf_tensor *one = NULL;
        if (!(st = zf_input_load((*paths)[i], net, &one)))
            memcpy(zf_tensor_f32(x) + (size_t)i * in_size, zf_tensor_f32(one), in_size * sizeof(float));
        zf_tensor_free(one);
    }
    if (st) {
        zf_tensor_free(x);
        return st;
    }
    *out = x;
    return ZF_OK;
}

static void print_top(const zf_net *net, const float *probs, int k_out, int img, const char *name, int top,
                      int is_prob)
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
    if (name)
        printf("image %d (%s):", img, name);
    else
        printf("image %d:", img);
    for (int t = 0; t < top; t++) {
        char cls[160];
        printf("%s %s %.4f", t ? "," : "", zft_class_text(cls, sizeof cls, net, idx[t]), probs[idx[t]]);
    }
    printf("%s\n", is_prob ? "" : "   (scores: the net has no softmax)");
}

static void usage(void)
{
    printf("usage: zfviz forward (--arch A --weights W | --model F) --input X [--dump L1,L2,...]\n"
           "                     [--out DIR] [--top K] [--batch N]\n\n"
           "Runs the net on X (a .npy of N x C x H x W, a JPEG/PNG image preprocessed for the net,\n"
           "or a folder of them), prints the top-K classes of each image and writes DIR/<layer>.npy\n"
           "for each dumped layer (N x C x H x W, or N x C from the flatten on). Input values must\n"
           "be finite: a NaN or Inf is refused, naming the file.\n\n" ZFT_MODEL_HELP ZFT_DEVICE_HELP
           "  --input X         .npy tensor, image file, or a folder (searched recursively for\n"
           "                    .jpg/.jpeg/.png in path order, as zfviz scan does)\n"
           "  --dump L1,L2      layers to write (Caffe-style names: conv1, relu1, pool1, fc6, prob...);\n"
           "                    `input` writes the net's input as it was preprocessed, `all` the input\n"
           "                    and every layer\n"
           "  --out DIR         where the dumps go (created; default: current directory)\n" ZFT_FORCE_HELP
           "  --top K           classes to print per image (default 5, 0 for none)\n"
           "  --batch N         images per forward pass (default 16)\n");
}

int zf_cmd_forward(int argc, char **argv)
{
    zft_model_opts mo = {0};
    zft_device dev = {.cpu_bf16 = 1};
    const char *input = NULL, *dump = NULL, *outdir = NULL;
    long top = 5, batch = 16;
    const zft_opt opts[] = {ZFT_STR("input", 'i', &input), ZFT_STR("dump", 'd', &dump),
                            ZFT_STR("out", 'o', &outdir), ZFT_LONG("top", 't', 0, 1e18, "a number", &top),
                            ZFT_LONG("batch", 'b', 1, 1e18, "a positive number", &batch), {0}};
    zft_args a = {.cmd = "forward", .argc = argc, .argv = argv, .shortopts = "hi:o:", .opts = opts,
                  .usage = usage, .model = &mo, .device = &dev, .shared = ZFT_WITH_FORCE};
    if (zft_args_parse(&a))
        return a.rc;
    if (!input)
        return zft_usage_error("forward", "--input is required");

    zf_net *net = NULL;
    zf_tensor *x = NULL;
    zf_tensor *dumps[MAX_DUMPS] = {0};
    int dump_idx[MAX_DUMPS], fwd_idx[MAX_DUMPS]; /* -1: the input; fwd_idx: the layers alone */
    char listbuf[2048];
    const char *names[MAX_DUMPS];
    char **paths = NULL;
    int64_t n_paths = 0;
    int n_dumps = 0, n_fwd = 0, rc = 1;
    zf_status st = zft_load_model(&mo, &net);
    if (st)
        goto fail;
    struct stat sb;
    if (stat(input, &sb) == 0 && S_ISDIR(sb.st_mode))
        st = load_folder(input, net, &x, &paths, &n_paths);
    else
        st = zf_input_load(input, net, &x);
    if (st)
        goto fail;
    const int n = (int)x->shape[0];
    int k_names = dump ? zft_split_list(dump, listbuf, sizeof listbuf, names, MAX_DUMPS) : 0;
    for (int k = 0; k < k_names; k++) {
        int all = !strcmp(names[k], "all");
        int first = all || !strcmp(names[k], "input") ? -1 : zf_net_find(net, names[k]);
        int last = all ? net->n_layers - 1 : first;
        if (first < 0 && !all && strcmp(names[k], "input")) {
            st = zf_error(ZF_ERR_ARG, "no layer named '%s' in %s (see zfviz info; or input, all)", names[k],
                          net->arch);
            goto fail;
        }
        for (int li = first; li <= last; li++) {
            int seen = 0;
            for (int d = 0; d < n_dumps; d++)
                seen |= dump_idx[d] == li;
            if (seen)
                continue;
            if (n_dumps == MAX_DUMPS) {
                st = zf_error(ZF_ERR_ARG, "more than %d dumps", MAX_DUMPS);
                goto fail;
            }
            dump_idx[n_dumps++] = li;
            if (li >= 0)
                fwd_idx[n_fwd++] = li;
        }
    }
    const int flat_from = first_flat_layer(net);
    for (int d = 0; d < n_dumps; d++) {
        if (dump_idx[d] < 0)
            continue; /* written from x itself */
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
        snprintf(path, sizeof path, "%s/%s.npy", outdir ? outdir : ".", dump_name(net, dump_idx[d]));
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
        if ((st = zft_device_forward(&dev, net, zf_tensor_f32(x) + (size_t)i0 * in_size, nb, fwd_idx, n_fwd)))
            goto fail;
        for (int d = 0; d < n_dumps; d++) {
            if (dump_idx[d] < 0)
                continue;
            size_t per = (size_t)zf_layer_out_size(&net->layers[dump_idx[d]]);
            memcpy(zf_tensor_f32(dumps[d]) + (size_t)i0 * per, net->acts[dump_idx[d]], sizeof(float) * per * nb);
        }
        for (int j = 0; j < nb && top > 0; j++)
            print_top(net, net->acts[net->n_layers - 1] + (size_t)j * k_out, k_out, i0 + j,
                      paths ? paths[i0 + j] : NULL, (int)top,
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
        snprintf(path, sizeof path, "%s/%s.npy", outdir ? outdir : ".", dump_name(net, dump_idx[d]));
        if ((st = zf_npy_write(path, dump_idx[d] < 0 ? x : dumps[d])))
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
    zf_paths_free(paths, n_paths);
    return rc;
}
