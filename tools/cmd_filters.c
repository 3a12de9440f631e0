/* zfviz filters: the filter grid of one or more conv layers as a PNG or PDF. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "figure_opts.h"
#include "viz_db.h"
#include "zf/viz.h"

const char zf_cmd_filters_summary[] = "draw the filters of conv layers as a grid (PNG or PDF)";

static void usage(void)
{
    printf("usage: zfviz filters (--arch A --weights W | --model F) [--layer L[,L...]|all] -o FILE.png|FILE.pdf\n"
           "                     [--mode auto|rgb|mean|channel:N] [--scale per-filter|shared] [--zoom N]\n"
           "                     [--gap N] [--cols N] [--labels index,rms|none] [--max N] [--near-dead F]\n"
           "                     [--no-title] [--font-size PT] [--width W]\n\n"
           "Draws each filter of a conv layer as a tile: the first layer in colour (RGB, whatever order the\n"
           "net's input has; a grey net's one-channel filters in grey), deeper layers as the mean over input\n"
           "channels or one input channel, in grey. Each tile maps w to 0.5 + 0.5 w / max|w| (max over its\n"
           "filter, or the layer with --scale shared), the same rule for grey and colour tiles.\n"
           "Taps are enlarged by whole pixels (nearest neighbour); grey is 0. Dead filters (all weights ~0)\n"
           "get a red frame, near-dead ones (RMS below F times the layer's median, default 0.1) an orange one.\n"
           "Several layers (or all) need a .pdf: one page each.\n\n" ZFT_MODEL_HELP
           "  --layer L         conv layer(s), comma-separated, or 'all' (default conv1)\n"
           "  --mode M          auto (RGB for 3 input channels, else mean: for 1, the filter), rgb, mean,\n"
           "                    channel:N\n"
           "  --scale S         per-filter (each tile on its own +-max|w|, default) or shared (one scale)\n"
           "  --zoom N          pixels per tap (default: tiles of about 48 pixels)\n"
           "  --gap N           pixels between tiles (default 2)\n"
           "  --cols N          tiles per row (default: about square)\n"
           "  --labels L        index, rms, both (index,rms) or none (default none)\n"
           "  --max N           only the first N filters\n"
           "  --near-dead F     near-dead threshold as a fraction of the median RMS (default 0.1)\n" ZFT_FIGURE_HELP
           "  -o, --out FILE    .png (one layer) or .pdf (its folder is created)\n" ZFT_FORCE_HELP
           "  --store DB        also store each layer's grid as a PNG in the database DB (table\n"
           "                    renderings, kind 'filters'); -o is then optional\n" ZFT_WAIT_HELP);
}

static int parse_mode(const char *s, zf_viz_filters_opts *o)
{
    if (!strcmp(s, "auto"))
        o->mode = ZF_VIZ_TILE_AUTO;
    else if (!strcmp(s, "rgb"))
        o->mode = ZF_VIZ_TILE_RGB;
    else if (!strcmp(s, "mean"))
        o->mode = ZF_VIZ_TILE_MEAN;
    else if (!strncmp(s, "channel:", 8) && zft_parse_long(s + 8) >= 0) {
        o->mode = ZF_VIZ_TILE_CHANNEL;
        o->channel = (int)zft_parse_long(s + 8);
    } else
        return -1;
    return 0;
}

static int parse_labels(const char *s)
{
    char buf[64];
    const char *items[4];
    int n = zft_split_list(s, buf, sizeof buf, items, 4), bits = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(items[i], "index"))
            bits |= ZF_VIZ_LABEL_INDEX;
        else if (!strcmp(items[i], "rms"))
            bits |= ZF_VIZ_LABEL_RMS;
        else if (!strcmp(items[i], "both"))
            bits |= ZF_VIZ_LABEL_INDEX | ZF_VIZ_LABEL_RMS;
        else if (strcmp(items[i], "none"))
            return -1;
    }
    return bits;
}

/* The first conv layer reads the image: its input channels are in the net's colour order. */
static int reads_image(const zf_net *net, int conv)
{
    for (int i = 0; i < conv; i++)
        if (net->layers[i].op == ZF_OP_CONV)
            return 0;
    return 1;
}

typedef struct layer_ctx {
    const zf_net *net;
    int conv;
    const char *model_name;
    const zf_viz_filters_opts *o;
} layer_ctx;

static zf_status draw_layer(zf_viz_doc *doc, void *ctx)
{
    const layer_ctx *c = ctx;
    const zf_net *net = c->net;
    const zf_layer *l = &net->layers[c->conv];
    char title[1400];
    snprintf(title, sizeof title, "%s of %s", l->name, c->model_name);
    zf_viz_filters_in in = {title,      l->weight,  l->out_c, l->in_c / (l->groups > 0 ? l->groups : 1),
                            l->win.kh, l->win.kw, reads_image(net, c->conv) && net->pre.order == ZF_COLOR_BGR};
    zf_status st = zf_viz_filters(doc, &in, c->o);
    return st ? zf_error_prefix(st, "%s: ", l->name) : ZF_OK;
}

static zf_status store_layer(const char *dbpath, layer_ctx *c)
{
    const zf_layer *l = &c->net->layers[c->conv];
    char what[1600];
    snprintf(what, sizeof what, "filters of %s of %s: %d filters %dx%dx%d, %s scale, grey = 0, dead/near-dead framed",
             l->name, c->model_name, l->out_c, l->in_c / (l->groups > 0 ? l->groups : 1), l->win.kh,
             l->win.kw, c->o->scale == ZF_VIZ_SCALE_SHARED ? "one shared" : "per-filter");
    zf_db_rendering r = {-1, -1, l->name, -1, -1, "filters", what, 0, 0};
    return zft_store_rendering_at(dbpath, &r, draw_layer, c);
}

int zf_cmd_filters(int argc, char **argv)
{
    zft_model_opts mo = {0};
    zf_viz_filters_opts fo = zf_viz_filters_defaults();
    const char *layers = "conv1", *out = NULL, *store = NULL;
    const zft_opt opts[] = {ZFT_STR("layer", 'l', &layers), ZFT_OWN("mode", 'm', required_argument),
                            ZFT_OWN("scale", 's', required_argument),
                            ZFT_GRID_OPTS("1..256 pixels per tap", &fo.zoom, &fo.gap, &fo.cols, &fo.max_filters),
                            ZFT_OWN("labels", 'L', required_argument), ZFT_NEAR_DEAD_OPT(&fo.near_dead),
                            ZFT_STR("out", 'o', &out), ZFT_STR("store", 'S', &store), {0}};
    zft_args a = {.cmd = "filters", .argc = argc, .argv = argv, .shortopts = "ho:l:", .opts = opts,
                  .usage = usage, .model = &mo, .style = &fo.style, .shared = ZFT_WITH_FORCE | ZFT_WITH_WAIT};
    int c;
    while ((c = zft_args_next(&a)) != -1) {
        switch (c) {
        case 'm':
            if (parse_mode(optarg, &fo))
                return zft_usage_error("filters", "--mode is auto, rgb, mean or channel:N, got '%s'", optarg);
            break;
        case 's': {
            static const zf_viz_scale scales[] = {ZF_VIZ_SCALE_PER_FILTER, ZF_VIZ_SCALE_SHARED};
            int k = zft_args_choice(&a, "per-filter|shared");
            if (k < 0)
                return ZFT_EXIT_USAGE;
            fo.scale = scales[k];
            break;
        }
        case 'L':
            if ((fo.labels = parse_labels(optarg)) < 0)
                return zft_usage_error("filters", "--labels takes index, rms, both or none, got '%s'", optarg);
            break;
        default: return a.rc;
        }
    }
    if (!out && !store)
        return zft_usage_error("filters", "-o FILE.png or FILE.pdf (or --store DB) is required");
    zf_viz_format fmt = ZF_VIZ_PDF;
    if (out && zf_viz_format_of(out, &fmt))
        return zft_usage_error("filters", "%s", zf_last_error());
    if (out && fmt == ZF_VIZ_PNG && (!strcmp(layers, "all") || strchr(layers, ',')))
        return zft_usage_error("filters", "%s: several layers need one page each: write a .pdf", out);
    if (out && zft_output_check(out)) /* before any work: a file zfviz may not replace */
        return zft_fail("filters", ZF_ERR_IO);

    zf_net *net = NULL;
    zf_viz_doc *doc = NULL;
    int rc = 1;
    zft_model_ref ref;
    zf_status st = zft_load_model_ref(&mo, &net, &ref);
    if (st)
        goto fail;
    const char *model_name = ref.label;
    int convs[256], n = 0;
    if (!strcmp(layers, "all")) {
        for (int i = 0; i < net->n_layers && n < 256; i++)
            if (net->layers[i].op == ZF_OP_CONV)
                convs[n++] = i;
    } else {
        char buf[1024];
        const char *items[256];
        int k = zft_split_list(layers, buf, sizeof buf, items, 256);
        for (int i = 0; i < k; i++) {
            int conv = zf_net_find_conv(net, items[i]);
            if (conv < 0) {
                st = zf_error(ZF_ERR_ARG, "'%s' is not a conv layer of %s (see zfviz info)", items[i], net->arch);
                goto fail;
            }
            convs[n++] = conv;
        }
    }
    if (n == 0) {
        st = zf_error(ZF_ERR_ARG, "no conv layers to draw");
        goto fail;
    }
    if (out && n > 1 && fmt == ZF_VIZ_PNG) {
        st = zf_error(ZF_ERR_ARG, "%s: %d layers need one page each: write a .pdf", out, n);
        goto fail;
    }
    if (out) {
        if ((st = zft_output_prepare(out)) || (st = zf_viz_doc_open(out, &doc)))
            goto fail;
        for (int i = 0; i < n; i++) {
            layer_ctx lc = {net, convs[i], model_name, &fo};
            if ((st = draw_layer(doc, &lc)))
                goto fail;
        }
        if ((st = zf_viz_doc_finish(doc)))
            goto fail;
        fprintf(stderr, "wrote %s\n", out);
    }
    for (int i = 0; store && i < n; i++) {
        layer_ctx lc = {net, convs[i], model_name, &fo};
        if ((st = store_layer(store, &lc)))
            goto fail;
    }
    rc = 0;
fail:
    if (rc)
        rc = zft_fail("filters", st);
    zf_viz_doc_free(doc);
    zf_net_free(net);
    return rc;
}
