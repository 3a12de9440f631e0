/* zfviz activations: the feature maps of one layer for one image as a colour-mapped grid. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "figure_opts.h"
#include "viz_db.h"
#include "zf/io.h"
#include "zf/viz.h"

const char zf_cmd_activations_summary[] = "draw one layer's feature maps for an image (PNG or PDF)";

static void usage(void)
{
    printf("usage: zfviz activations (--arch A --weights W | --model F) --input X --layer L -o FILE.png|FILE.pdf\n"
           "                         [--image I] [--cmap viridis|grey] [--scale shared|per-map] [--zoom N]\n"
           "                         [--gap N] [--cols N] [--max N] [--labels] [--no-title] [--font-size PT]\n"
           "                         [--width W]\n\n"
           "Runs the image through the net and draws every feature map of layer L (any layer with a\n"
           "spatial output: conv, relu, norm, pool) through a colour map, beside the input as the net\n"
           "saw it (grey for a grey net). On one shared scale (default) a colour bar gives the values; with --scale per-map\n"
           "each map spans the whole colour map.\n\n" ZFT_MODEL_HELP
           "  --input X         image file (JPEG, PNG) or .npy of (n, c, h, w)\n"
           "  --image I         which image of a .npy batch (default 0)\n"
           "  --layer L         e.g. relu1, conv5, pool2, norm1\n"
           "  --cmap C          viridis (default) or grey\n"
           "  --scale S         shared (default) or per-map\n"
           "  --zoom N          pixels per activation (default: tiles of about 48 pixels)\n"
           "  --gap N           pixels between tiles (default 2)\n"
           "  --cols N          tiles per row (default: about square)\n"
           "  --max N           only the first N maps\n"
           "  --labels          the map index under each tile\n" ZFT_FIGURE_HELP
           "  -o, --out FILE    .png or .pdf (its folder is created)\n" ZFT_FORCE_HELP
           "  --store DB        also store the picture as a PNG in the database DB (table renderings,\n"
           "                    kind 'activations'); -o is then optional\n" ZFT_WAIT_HELP ZFT_DEVICE_HELP);
}

typedef struct maps_ctx {
    const zf_viz_maps_in *in;
    const zf_viz_maps_opts *o;
} maps_ctx;

static zf_status draw_maps(zf_viz_doc *doc, void *ctx)
{
    const maps_ctx *m = ctx;
    return zf_viz_maps(doc, m->in, m->o);
}

int zf_cmd_activations(int argc, char **argv)
{
    zft_model_opts mo = {0};
    zf_viz_maps_opts vo = zf_viz_maps_defaults();
    const char *input = NULL, *layer = NULL, *out = NULL, *store = NULL;
    long image = 0;
    const zft_opt opts[] = {ZFT_STR("input", 'i', &input),
                            ZFT_LONG("image", 'I', 0, 1e18, "an image index", &image),
                            ZFT_STR("layer", 'l', &layer), ZFT_OWN("cmap", 'C', required_argument),
                            ZFT_OWN("scale", 's', required_argument),
                            ZFT_GRID_OPTS("1..256 pixels", &vo.zoom, &vo.gap, &vo.cols, &vo.max_maps),
                            ZFT_FLAG("labels", 'L', &vo.labels), ZFT_STR("out", 'o', &out),
                            ZFT_STR("store", 'S', &store), {0}};
    zft_device dev = {.cpu_bf16 = 1};
    zft_args a = {.cmd = "activations", .argc = argc, .argv = argv, .shortopts = "hi:l:o:", .opts = opts,
                  .usage = usage, .model = &mo, .style = &vo.style, .device = &dev,
                  .shared = ZFT_WITH_FORCE | ZFT_WITH_WAIT};
    int c;
    while ((c = zft_args_next(&a)) != -1) {
        switch (c) {
        case 'C':
            if (zf_viz_cmap_parse(optarg, &vo.cmap))
                return zft_usage_error("activations", "%s", zf_last_error());
            break;
        case 's':
            if ((vo.per_map = zft_args_choice(&a, "shared|per-map")) < 0)
                return ZFT_EXIT_USAGE;
            break;
        default: return a.rc;
        }
    }
    if (!input || !layer || (!out && !store))
        return zft_usage_error("activations", "--input, --layer and -o (or --store DB) are required");
    zf_viz_format fmt;
    if (out && zf_viz_format_of(out, &fmt))
        return zft_usage_error("activations", "%s", zf_last_error());
    if (out && zft_output_check(out)) /* before any work: a file zfviz may not replace */
        return zft_fail("activations", ZF_ERR_IO);

    zf_net *net = NULL;
    zf_tensor *x = NULL;
    zf_viz_doc *doc = NULL;
    uint8_t *rgb = NULL;
    int rc = 1;
    zf_status st = zft_load_model(&mo, &net);
    if (st)
        goto fail;
    const int li = zf_net_find(net, layer);
    if (li < 0) {
        st = zf_error(ZF_ERR_ARG, "'%s' is not a layer of %s (see zfviz info)", layer, net->arch);
        goto fail;
    }
    const zf_layer *l = &net->layers[li];
    if (l->out_h == 1 && l->out_w == 1) {
        st = zf_error(ZF_ERR_ARG, "%s has no spatial maps (%d x 1 x 1): pick a conv, relu, norm or pool layer",
                      l->name, l->out_c);
        goto fail;
    }
    if ((st = zf_input_load(input, net, &x)))
        goto fail;
    if (image >= x->shape[0]) {
        st = zf_error(ZF_ERR_ARG, "%s: --image %ld is out of range: it holds %lld images", input, image,
                      (long long)x->shape[0]);
        goto fail;
    }
    const size_t in_size = (size_t)zf_net_in_size(net);
    if ((st = zf_net_reserve(net, 1)) || (st = zft_device_open(&dev, net, 1)) ||
        (st = zft_device_forward(&dev, net, zf_tensor_f32(x) + (size_t)image * in_size, 1, &li, 1)))
        goto fail;

    zf_image img = {net->in_w, net->in_h, NULL};
    /* The input as the net saw it: colour, or grey for a grey net (a .npy input whose channels
     * its preprocessing does not describe is left out). */
    if (net->in_c == zf_viz_planes(&net->pre)) {
        rgb = malloc((size_t)net->in_w * net->in_h * 3);
        if (!rgb) {
            st = zf_error(ZF_ERR_NOMEM, "out of memory");
            goto fail;
        }
        zf_viz_input_to_rgb(rgb, zf_tensor_f32(x) + (size_t)image * in_size, &net->pre, net->in_h, net->in_w);
        img.rgb = rgb;
    }
    char title[512];
    const char *base = strrchr(input, '/');
    snprintf(title, sizeof title, "%s %s of %s", net->arch, l->name, base ? base + 1 : input);
    zf_viz_maps_in in = {title, zf_net_act(net, li), l->out_c, l->out_h, l->out_w, rgb ? &img : NULL};
    maps_ctx mc = {&in, &vo};
    if (out) {
        if ((st = zft_output_prepare(out)) || (st = zf_viz_doc_open(out, &doc)) || (st = draw_maps(doc, &mc)) || (st = zf_viz_doc_finish(doc)))
            goto fail;
        fprintf(stderr, "wrote %s\n", out);
    }
    if (store) {
        char what[1024];
        snprintf(what, sizeof what, "feature maps of %s %s for %s (image %ld), %s, %s scale", net->arch, l->name,
                 input, image, zf_viz_cmap_name(vo.cmap), vo.per_map ? "per-map" : "one shared");
        zf_db_rendering r = {-1, -1, l->name, -1, -1, "activations", what, 0, 0};
        if ((st = zft_store_rendering_at(store, &r, draw_maps, &mc)))
            goto fail;
    }
    rc = 0;
fail:
    if (rc)
        rc = zft_fail("activations", st);
    zft_device_close(&dev);
    zf_viz_doc_free(doc);
    free(rgb);
    zf_tensor_free(x);
    zf_net_free(net);
    return rc;
}
