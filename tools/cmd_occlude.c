/* zfviz occlude: occlusion sensitivity maps (Zeiler & Fergus Fig. 7) for one image: per position
 * of a grey square, the strongest conv5 map's total, the class probability and the top class. */
#include <float.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "figure_opts.h"
#include "zf/file.h"
#include "zf/io.h"
#include "zf/occlusion.h"
#include "zf/viz.h"

const char zf_cmd_occlude_summary[] = "occlusion sensitivity maps: feature, class probability, top class";

static const char usage_text[] =
    "usage: zfviz occlude (--arch A --weights W | --model F) --input X [--patch P] [--stride S]\n"
    "                     [--fill V] [--class K] [--layer convK] [--channel C] --out DIR\n"
    "                     [--method auto|brute|incremental] [--png FIG.png] [--pdf FIG.pdf]\n"
    "                     [--prob-range auto|0:1|LO:HI] [--clip-percentile P] [--no-title]\n"
    "                     [--font-size PT] [--width W]\n\n"
    "Slides a P x P square of value V over the input (top-left corner at 0, S, 2S, ... while the\n"
    "square stays inside, both axes) and maps, per position: the total of the rectified map of\n"
    "conv layer K's channel C (default: the last conv layer, and the channel holding the largest\n"
    "single activation on the unoccluded input), the probability of class K (default: the top class\n"
    "of the unoccluded input) and the most probable class.\n\n"
    "Writes DIR/feature.npy and DIR/prob.npy (float32, rows x cols), DIR/argmax.npy (int32) and\n"
    "DIR/summary.json (parameters, choices, unoccluded values, timings).\n\n" ZFT_MODEL_HELP ZFT_DEVICE_HELP
    "  --input X         .npy tensor (1 x C x H x W or C x H x W) or image file\n"
    "  --patch P         side of the square in input pixels (default: 1/7 of the input's shorter\n"
    "                    side: 32 for 224x224, 16 for the mini nets' 112x112)\n"
    "  --stride S        step between positions in input pixels (default: 1/28 of that side: 8 for\n"
    "                    224, 4 for 112; both give a 25 x 25 map)\n"
    "  --fill V          value of the square in the net's normalised input (default 0, the mean)\n"
    "  --class K         class whose probability is mapped (default: top class)\n"
    "  --layer L         conv layer whose rectified map is summed: conv1..conv5, relu1..relu5 or a\n"
    "                    graph name (default: the last conv layer)\n"
    "  --channel C       its channel (default: the strongest on the unoccluded input)\n"
    "  --out DIR         output folder (created)\n" ZFT_FORCE_HELP
    "  --method M        auto (default): incremental where it saves work, else brute;\n"
    "                    brute: a full forward per position; incremental: recompute only each\n"
    "                    square's receptive-field footprint (same results to float rounding)\n"
    "  --batch N         positions per batch (default: chosen from the method and the net)\n"
    "  --conv M          incremental method's convolutions: auto, im2col, delta, winograd (2x2\n"
    "                    tiles, 3x3 windows), winograd4 (6x6 and 4x4 tiles for 3x3 windows, 4x4\n"
    "                    for 5x5); each where it applies, the others by im2col\n"
    "  --png F, --pdf F  also draw Zeiler & Fergus Fig. 7: the image, the feature map's total, its\n"
    "                    deconv projection, the class probability and the most probable class\n"
    "  options of the figure:\n" ZFT_FIGURE_PROB_HELP ZFT_FIGURE_PROJ_HELP ZFT_FIGURE_HELP;

typedef struct progress_ctx {
    zft_progress bar;
} progress_ctx;

static void on_progress(void *ctx, int64_t done, int64_t total)
{
    (void)total;
    zft_progress_update(&((progress_ctx *)ctx)->bar, done);
}

static zf_status write_map(const char *dir, const char *name, zf_dtype dtype, const void *data,
                           int rows, int cols)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    const int64_t shape[2] = {rows, cols};
    return zf_npy_write_raw(path, dtype, data, 2, shape);
}

static json_t *class_json(const zf_net *net, int k)
{
    const char *name = zft_class_name(net, k);
    return name ? json_string(name) : json_null();
}

/* The summary: everything needed to read the maps without the command line that made them. */
static zf_status write_summary(const char *dir, const zft_model_opts *mo, const char *input,
                               const zf_net *net, const zf_occlusion_params *p,
                               const zf_occlusion_result *r, double t_load, double t_total)
{
    json_t *pos_y = json_array(), *pos_x = json_array();
    for (int i = 0; i < r->rows; i++)
        json_array_append_new(pos_y, json_integer((json_int_t)i * r->stride));
    for (int j = 0; j < r->cols; j++)
        json_array_append_new(pos_x, json_integer((json_int_t)j * r->stride));
    /* The position where the class probability drops the most, the paper's point. */
    int lo = 0;
    for (int i = 1; i < r->rows * r->cols; i++)
        if (r->prob[i] < r->prob[lo])
            lo = i;
    json_t *root = json_pack(
        "{s:s, s:s, s:o, s:o, s:s, s:[i,i,i], s:i, s:i, s:f, s:i, s:i, s:{s:o, s:o},"
        " s:{s:s, s:s, s:i, s:b}, s:{s:i, s:o, s:b},"
        " s:{s:f, s:f, s:i, s:o},"
        " s:{s:i, s:i, s:i, s:i, s:f},"
        " s:s, s:s, s:f, s:{s:f, s:f, s:f}}",
        "software", "zfviz", /* first: marks the file as zfviz's (zf_file_is_ours) */
        "arch", net->arch,
        "weights", mo->weights ? json_string(mo->weights) : json_null(),
        "model", mo->model ? json_string(mo->model) : json_null(),
        "input", input,
        "input_shape", net->in_c, net->in_h, net->in_w,
        "patch", r->patch, "stride", r->stride, "fill", (double)r->fill,
        "rows", r->rows, "cols", r->cols,
        "positions", "y", pos_y, "x", pos_x,
        "feature", "layer", net->layers[r->layer].name, "conv_layer", net->layers[r->conv_layer].name,
        "channel", r->channel, "channel_chosen", p->channel < 0,
        "class", "index", r->cls, "name", class_json(net, r->cls), "chosen", p->cls < 0,
        "unoccluded", "feature", (double)r->base_feature, "prob", (double)r->base_prob,
        "argmax", (int)r->base_argmax, "argmax_name", class_json(net, r->base_argmax),
        "lowest_prob", "row", lo / r->cols, "col", lo % r->cols, "y", (lo / r->cols) * r->stride,
        "x", (lo % r->cols) * r->stride, "prob", (double)r->prob[lo],
        "method", zf_occlusion_method_name(r->method),
        "method_requested", zf_occlusion_method_name(p->method),
        "work_ratio", r->work_ratio,
        "seconds", "load", t_load, "map", r->seconds, "total", t_total);
    if (!root)
        return zf_error(ZF_ERR_NOMEM, "occlude: cannot build the JSON summary");
    if (r->method == ZF_OCCLUSION_INCREMENTAL) {
        /* How each layer was recomputed: what the timings depend on. */
        json_t *convs = json_object();
        for (int i = 0; i < r->n_layers; i++)
            if (net->layers[i].op == ZF_OP_CONV && r->layer_conv[i] != ZF_OCCLUSION_CONV_AUTO)
                json_object_set_new(convs, net->layers[i].name, json_string(zf_occlusion_conv_name(r->layer_conv[i])));
        json_object_set_new(root, "conv_methods", convs);
        json_object_set_new(root, "fc_as_change", r->fc_delta >= 0 ? json_string(net->layers[r->fc_delta].name) : json_null());
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
    zf_status st = zf_file_save(path, text, strlen(text), 0);
    free(text);
    return st;
}

/* Long-only options, numbered clear of the letters the shared model options use. */
enum { OPT_PATCH = 256, OPT_STRIDE, OPT_FILL, OPT_CLASS, OPT_LAYER, OPT_CHANNEL, OPT_METHOD, OPT_BATCH, OPT_CONV,
       OPT_PNG, OPT_PDF };

/* Zeiler & Fergus Fig. 7 as one figure: the image, the feature map's total, the deconv projection
 * of that map, the class probability, the most probable class. */
static zf_status write_figure(const char *path, zf_net *net, const float *input, const zf_occlusion_result *r,
                              const char *input_path, const zf_viz_style *style)
{
    const int h = net->in_h, w = net->in_w, planes = zf_viz_planes(&net->pre);
    if (net->in_c != planes)
        return zf_error(ZF_ERR_SHAPE, "%s: %s has %d input channels but its preprocessing (order) makes %d: "
                        "cannot show its input as an image", path, net->arch, net->in_c, planes);
    uint8_t *rgb = malloc((size_t)h * w * 3);
    float *proj = malloc(sizeof(float) * planes * (size_t)h * w);
    int n_names = 0;
    const char **names = zft_class_names_new(net, &n_names);
    zf_viz_doc *doc = NULL;
    zf_status st;
    if (!rgb || !proj || !names) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for the occlusion figure");
        goto done;
    }
    zf_viz_input_to_rgb(rgb, input, &net->pre, h, w);
    zf_image img = {w, h, rgb};
    int ch = r->channel;
    zf_deconv_req req = {r->conv_layer, ZF_DECONV_MAP, 0, &ch, NULL, NULL};
    if ((st = zf_net_reserve(net, 1)) || (st = zf_net_forward_upto(net, input, 1, r->layer)) ||
        (st = zf_net_deconv(net, proj, 1, &req)))
        goto done;
    zf_viz_proj_to_rgb(proj, &net->pre, h, w);
    char fname[96];
    snprintf(fname, sizeof fname, "%s map %d", net->layers[r->conv_layer].name, r->channel);
    const char *base = strrchr(input_path, '/');
    zf_viz_occlusion row = {&img, r->rows, r->cols, r->patch, r->stride, r->feature, fname, proj,
                            r->prob, r->cls, r->argmax, NULL, base ? base + 1 : input_path, planes,
                            names, n_names};
    zf_viz_occlusion_opts vo = zf_viz_occlusion_defaults();
    vo.style = *style;
    if (!(st = zft_output_prepare(path)) && !(st = zf_viz_doc_open(path, &doc)) &&
        !(st = zf_viz_occlusion_figure(doc, &row, 1, &vo)))
        st = zf_viz_doc_finish(doc);
done:
    zf_viz_doc_free(doc);
    free(names);
    free(rgb);
    free(proj);
    return st;
}

static void usage(void)
{
    fputs(usage_text, stdout);
}

int zf_cmd_occlude(int argc, char **argv)
{
    zft_model_opts mo = {0};
    zft_device dev = {.needs = ZF_ENGINE_NEEDS(ZF_ENGINE_OP_OCCLUSION)};
    const char *input = NULL, *layer = NULL, *out = NULL, *png = NULL, *pdf = NULL;
    zf_occlusion_params p;
    zf_occlusion_params_default(&p);
    zf_viz_style style = {0};
    const zft_opt opts[] = {ZFT_STR("input", 'i', &input),
                            ZFT_INT("patch", OPT_PATCH, 1, 1 << 20, "a positive number of pixels", &p.patch),
                            ZFT_INT("stride", OPT_STRIDE, 1, 1 << 20, "a positive number of pixels", &p.stride),
                            ZFT_FLOAT("fill", OPT_FILL, -FLT_MAX, FLT_MAX, "a finite number", &p.fill),
                            ZFT_INT("class", OPT_CLASS, 0, 1 << 30, "a class index", &p.cls),
                            ZFT_STR("layer", OPT_LAYER, &layer),
                            ZFT_INT("channel", OPT_CHANNEL, 0, 1 << 30, "a channel number", &p.channel),
                            ZFT_STR("out", 'o', &out), ZFT_OWN("method", OPT_METHOD, required_argument),
                            ZFT_INT("batch", OPT_BATCH, 1, 1 << 16, "a positive number", &p.batch),
                            ZFT_OWN("conv", OPT_CONV, required_argument), ZFT_STR("png", OPT_PNG, &png),
                            ZFT_STR("pdf", OPT_PDF, &pdf), {0}};
    zft_args a = {.cmd = "occlude", .argc = argc, .argv = argv, .shortopts = "hi:o:", .opts = opts,
                  .usage = usage, .model = &mo, .style = &style, .device = &dev,
                  .shared = ZFT_WITH_FORCE | ZFT_WITH_PROJ | ZFT_WITH_PROB};
    int c;
    while ((c = zft_args_next(&a)) != -1) {
        switch (c) {
        case OPT_METHOD: {
            static const zf_occlusion_method methods[] = {ZF_OCCLUSION_AUTO, ZF_OCCLUSION_BRUTE,
                                                          ZF_OCCLUSION_INCREMENTAL};
            int k = zft_args_choice(&a, "auto|brute|incremental");
            if (k < 0)
                return ZFT_EXIT_USAGE;
            p.method = methods[k];
            break;
        }
        case OPT_CONV: {
            static const zf_occlusion_conv convs[] = {ZF_OCCLUSION_CONV_AUTO, ZF_OCCLUSION_CONV_IM2COL,
                                                      ZF_OCCLUSION_CONV_DELTA, ZF_OCCLUSION_CONV_WINOGRAD,
                                                      ZF_OCCLUSION_CONV_WINOGRAD4};
            int k = zft_args_choice(&a, "auto|im2col|delta|winograd|winograd4");
            if (k < 0)
                return ZFT_EXIT_USAGE;
            p.conv = convs[k];
            break;
        }
        default:
            return a.rc;
        }
    }
    if (!input || !out)
        return zft_usage_error("occlude", "--input and --out are required");
    /* Every output checked before any work: a file zfviz may not replace stops the run. */
    static const char *const outputs[] = {"feature.npy", "prob.npy", "argmax.npy", "summary.json"};
    for (int i = 0; i < 4; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", out, outputs[i]);
        if (zft_output_check(path))
            return zft_fail("occlude", ZF_ERR_IO);
    }
    if ((png && zft_output_check(png)) || (pdf && zft_output_check(pdf)))
        return zft_fail("occlude", ZF_ERR_IO);

    const double t0 = zft_now();
    zf_net *net = NULL;
    zf_tensor *x = NULL;
    zf_occlusion_result *res = NULL;
    int rc = 1;
    zf_status st = zft_load_model(&mo, &net);
    if (st)
        goto fail;
    if (layer) {
        p.layer = zf_net_find_conv(net, layer);
        if (p.layer < 0) {
            int any = zf_net_find(net, layer);
            st = any >= 0 ? zf_error(ZF_ERR_ARG, "layer '%s' of %s is a %s, not a convolution (see zfviz info)",
                                     layer, net->arch, zf_op_name(net->layers[any].op))
                          : zf_error(ZF_ERR_ARG, "%s has no layer '%s' (see zfviz info)", net->arch, layer);
            goto fail;
        }
    }
    if ((st = zf_input_load(input, net, &x)))
        goto fail;
    if (x->shape[0] != 1) {
        st = zf_error(ZF_ERR_SHAPE, "%s: holds %lld images; occlude maps one", input, (long long)x->shape[0]);
        goto fail;
    }
    int def_patch, def_stride;
    zft_occlusion_defaults(net, &def_patch, &def_stride);
    if (!p.patch)
        p.patch = def_patch;
    if (!p.stride)
        p.stride = def_stride;
    if (p.patch > net->in_h || p.patch > net->in_w) {
        st = zf_error(ZF_ERR_ARG, "--patch %d is larger than the %dx%d input of %s", p.patch, net->in_h,
                      net->in_w, net->arch);
        goto fail;
    }
    if ((st = zft_mkdirs(out)))
        goto fail;
    const double t_load = zft_now() - t0;

    progress_ctx prog;
    const int64_t npos = (int64_t)zf_occlusion_count(net->in_h, p.patch, p.stride) *
                         zf_occlusion_count(net->in_w, p.patch, p.stride);
    zft_progress_start(&prog.bar, "occlude", npos, "pos");
    p.progress = on_progress;
    p.progress_ctx = &prog;
    /* the cpu engine reserves what each method needs; another engine's batch is its positions per batch */
    if (!(st = zft_device_open(&dev, net, strcmp(dev.iface->name, "cpu") ? (p.batch ? p.batch : 32) : 1)))
        st = zft_device_occlusion(&dev, net, zf_tensor_f32(x), &p, &res);
    zft_progress_finish(&prog.bar);
    if (st)
        goto fail;

    if ((st = write_map(out, "feature.npy", ZF_DTYPE_F32, res->feature, res->rows, res->cols)) ||
        (st = write_map(out, "prob.npy", ZF_DTYPE_F32, res->prob, res->rows, res->cols)) ||
        (st = write_map(out, "argmax.npy", ZF_DTYPE_I32, res->argmax, res->rows, res->cols)))
        goto fail;
    if ((png && (st = write_figure(png, net, zf_tensor_f32(x), res, input, &style))) ||
        (pdf && (st = write_figure(pdf, net, zf_tensor_f32(x), res, input, &style))))
        goto fail;
    if ((st = write_summary(out, &mo, input, net, &p, res, t_load, zft_now() - t0)))
        goto fail;

    char cname[160];
    printf("%s: %d x %d positions (patch %d, stride %d), %s in %.2f s (estimated work %.0f%% of brute force)\n",
           net->arch, res->rows, res->cols, res->patch, res->stride, zf_occlusion_method_name(res->method),
           res->seconds, 100.0 * res->work_ratio);
    printf("feature: %s channel %d%s, unoccluded total %.6g\n", net->layers[res->layer].name, res->channel,
           p.channel < 0 ? " (strongest)" : "", res->base_feature);
    printf("class: %s, unoccluded probability %.6g\n", zft_class_text(cname, sizeof cname, net, res->cls),
           res->base_prob);
    fprintf(stderr, "wrote %s/{feature,prob,argmax}.npy and summary.json\n", out);
    rc = 0;
fail:
    if (rc)
        rc = zft_fail("occlude", st);
    zf_occlusion_result_free(res);
    zft_device_close(&dev);
    zf_tensor_free(x);
    zf_net_free(net);
    return rc;
}
