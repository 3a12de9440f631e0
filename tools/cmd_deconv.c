/* zfviz deconv: project a conv unit or feature map back to pixel space with the deconvnet. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "zf/io.h"

const char zf_cmd_deconv_summary[] = "project a conv unit or feature map to pixel space (deconvnet)";

/* Warns of each image on which the projected unit (or map) does not fire: its projection is all
 * zero, which would otherwise pass for a result. The value before the ReLU comes from a CPU
 * forward as far as the conv layer. *silent gets the number of such images. */
static zf_status warn_silent(zf_net *net, int conv, int channel, int map, const char *input, const zf_tensor *x,
                             const zf_tensor *y, const int *ys, const int *xs, int *silent)
{
    *silent = 0;
    const int n = (int)x->shape[0];
    const size_t in_size = (size_t)zf_net_in_size(net);
    const zf_layer *l = &net->layers[conv];
    const size_t hw = (size_t)l->out_h * l->out_w;
    for (int i = 0; i < n; i++) {
        const float *r = zf_tensor_f32(y) + (size_t)i * in_size;
        size_t k = 0;
        while (k < in_size && r[k] == 0.0f)
            k++;
        if (k < in_size)
            continue;
        (*silent)++;
        memcpy(net->input, zf_tensor_f32(x) + (size_t)i * in_size, in_size * sizeof(float));
        zf_status st = zf_net_forward_range(net, 0, conv, 1);
        if (st)
            return st;
        const float *a = zf_net_act(net, conv) + (size_t)channel * hw;
        float v = a[0];
        if (!map && ys[i] >= 0 && ys[i] < l->out_h && xs[i] >= 0 && xs[i] < l->out_w)
            v = a[(size_t)ys[i] * l->out_w + xs[i]];
        else
            for (size_t p = 1; p < hw; p++)
                v = a[p] > v ? a[p] : v;
        fprintf(stderr, "zfviz deconv: warning: image %d of %s: %s channel %d does not fire on this input "
                "(%s before the ReLU: %.6g): its projection is all zero\n", i, input, l->name, channel,
                map || ys[i] < 0 ? "its largest value" : "its value there", (double)v);
    }
    return ZF_OK;
}

static void usage(void)
{
    printf(
        "usage: zfviz deconv (--arch A --weights W | --model F) --input X --layer convK --channel C\n"
        "                    [--position Y,X | --map] [--lrn-backward] --out Y.npy\n\n"
        "Projects the rectified output of conv layer K back to pixel space (Zeiler & Fergus\n"
        "deconvnet: switches, unpooling, rectification, transposed filters). By default one\n"
        "unit: channel C at its strongest position in each image (first maximum in row-major\n"
        "order); --position picks the unit, --map projects the whole feature map. Writes\n"
        "N x C x H x W, the input's shape (C = 3, or 1 for a grey net's luma plane).\n"
        "A unit (or map) that does not fire on an image (its value before the ReLU <= 0, so\n"
        "its projection is all zero) gets a warning naming the image and that value; when it\n"
        "fires on none of the images nothing is written and the exit status is 1. Input\n"
        "values must be finite (a NaN or Inf is refused, naming the file).\n\n" ZFT_MODEL_HELP ZFT_DEVICE_HELP
        "  --input X         .npy tensor or image file (one; a folder is refused)\n"
        "  --layer L         conv1..conv5 (or relu1..relu5, or a graph name)\n"
        "  --channel C       feature map to project\n"
        "  --position Y,X    the unit's position in the layer's map (default: strongest)\n"
        "  --map             project the whole feature map instead of one unit\n"
        "  --lrn-backward    pass through LRN with its true backward (default: identity)\n"
        "  --out Y.npy       the reconstruction (its folder is created)\n" ZFT_FORCE_HELP
        "  --batch N         images per pass (default 16)\n");
}

int zf_cmd_deconv(int argc, char **argv)
{
    zft_model_opts mo = {0};
    zft_device dev = {.needs = ZF_ENGINE_NEEDS(ZF_ENGINE_OP_DECONV), .cpu_bf16 = 1};
    const char *input = NULL, *layer = NULL, *out = NULL, *position = NULL;
    long channel = -1, batch = 16;
    int map = 0, lrn_backward = 0;
    const zft_opt opts[] = {ZFT_STR("input", 'i', &input), ZFT_STR("layer", 'l', &layer),
                            ZFT_LONG("channel", 'c', 0, 1e18, "a channel number", &channel),
                            ZFT_STR("position", 'p', &position), ZFT_FLAG("map", 'm', &map),
                            ZFT_FLAG("lrn-backward", 'L', &lrn_backward), ZFT_STR("out", 'o', &out),
                            ZFT_LONG("batch", 'b', 1, 1e18, "a positive number", &batch), {0}};
    zft_args a = {.cmd = "deconv", .argc = argc, .argv = argv, .shortopts = "hi:l:c:o:", .opts = opts,
                  .usage = usage, .model = &mo, .device = &dev, .shared = ZFT_WITH_FORCE};
    if (zft_args_parse(&a))
        return a.rc;
    if (!input || !layer || channel < 0 || !out)
        return zft_usage_error("deconv", "--input, --layer, --channel and --out are required");
    int py = -1, px = -1;
    if (position) {
        if (map)
            return zft_usage_error("deconv", "--position and --map exclude each other");
        char extra;
        if (sscanf(position, "%d,%d%c", &py, &px, &extra) != 2 || py < 0 || px < 0)
            return zft_usage_error("deconv", "--position needs Y,X (two non-negative numbers), got '%s'", position);
    }
    if (zft_output_check(out)) /* before any work: a file zfviz may not replace */
        return zft_fail("deconv", ZF_ERR_IO);

    zf_net *net = NULL;
    zf_tensor *x = NULL, *y = NULL;
    int *chan = NULL, *ys = NULL, *xs = NULL, rc = 1;
    zf_status st = zft_load_model(&mo, &net);
    if (st)
        goto fail;
    const int conv = zf_net_find_conv(net, layer);
    if (conv < 0) {
        st = zf_error(ZF_ERR_ARG, "'%s' is not a conv layer of %s (see zfviz info)", layer, net->arch);
        goto fail;
    }
    if (channel >= net->layers[conv].out_c) {
        st = zf_error(ZF_ERR_ARG, "channel %ld out of range: %s has %d channels", channel,
                      net->layers[conv].name, net->layers[conv].out_c);
        goto fail;
    }
    if ((st = zf_input_load(input, net, &x)))
        goto fail;
    const int n = (int)x->shape[0], b = batch < n ? (int)batch : n;
    y = zf_tensor_new4(n, net->in_c, net->in_h, net->in_w);
    chan = malloc(sizeof(int) * n);
    ys = malloc(sizeof(int) * n);
    xs = malloc(sizeof(int) * n);
    if (!y || !chan || !ys || !xs) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for %d reconstructions", n);
        goto fail;
    }
    if ((st = zf_net_reserve(net, b)) || (st = zft_device_open(&dev, net, b)))
        goto fail;
    const size_t in_size = (size_t)zf_net_in_size(net);
    for (int i = 0; i < n; i++) {
        chan[i] = (int)channel;
        ys[i] = py;
        xs[i] = px;
    }
    for (int i0 = 0; i0 < n; i0 += b) {
        const int nb = n - i0 < b ? n - i0 : b;
        zf_deconv_req req = {conv, map ? ZF_DECONV_MAP : ZF_DECONV_UNIT, lrn_backward, chan + i0, ys + i0, xs + i0};
        if ((st = zft_device_deconv(&dev, net, zf_tensor_f32(x) + (size_t)i0 * in_size, nb, &req,
                                    zf_tensor_f32(y) + (size_t)i0 * in_size)))
            goto fail;
        if (zf_interrupted) {
            st = zf_error(ZF_ERR_INTERRUPTED, "interrupted after %d of %d images", i0 + nb, n);
            goto fail;
        }
    }
    for (int i = 0; i < n; i++) {
        if (map)
            printf("image %d: %s channel %ld, whole map\n", i, net->layers[conv].name, channel);
        else
            printf("image %d: %s channel %ld at y=%d x=%d\n", i, net->layers[conv].name, channel, ys[i], xs[i]);
    }
    int silent = 0;
    if ((st = warn_silent(net, conv, (int)channel, map, input, x, y, ys, xs, &silent)))
        goto fail;
    if (silent == n) {
        st = zf_error(ZF_ERR_ARG, "nothing to project: %s channel %ld does not fire on %s%s; %s not written",
                      net->layers[conv].name, channel, n == 1 ? "the image of " : "any image of ", input, out);
        goto fail;
    }
    if ((st = zft_output_prepare(out)) || (st = zf_npy_write(out, y)))
        goto fail;
    fprintf(stderr, "wrote %s\n", out);
    rc = 0;
fail:
    if (rc)
        rc = zft_fail("deconv", st);
    zft_device_close(&dev);
    free(chan);
    free(ys);
    free(xs);
    zf_tensor_free(x);
    zf_tensor_free(y);
    zf_net_free(net);
    return rc;
}
