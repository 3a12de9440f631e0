/* zfviz optimize: images that maximise a unit, a channel or a class (feature visualisation by
 * optimisation: Yosinski et al.'s regularised gradient ascent or Lucid's Fourier parameterisation),
 * several per unit on request, and a grid of them over many units of a layer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "figure_opts.h"
#include "zf/attribution.h"
#include "zf/io.h"
#include "zf/optimize.h"
#include "zf/viz.h"
#include "zf/viz_unit_grid.h"

const char zf_cmd_optimize_summary[] = "images that maximise a unit, channel or class (Yosinski et al., Lucid's Fourier)";

static void usage(void)
{
    printf(
        "usage: zfviz optimize (--arch A --weights W | --model F) --out DIR [--layer L] [--units LIST]\n"
        "                      [--position Y,X] [--prob] [--method yosinski|fourier] [--steps N] ...\n\n"
        "Synthesises images that maximise a target by gradient ascent on the input (docs/attribution.md).\n"
        "The target is channel C of layer L summed over its map (or at --position), or without --layer\n"
        "a class's score before the softmax (--prob: its probability). For each unit and each of --count\n"
        "images writes DIR/<layer>-c<C>[-y<Y>x<X>]-s<K>.npy (the net's input, C x H x W) and .png, and\n"
        "with more than one image DIR/<layer>-grid.png (one row per unit with --count > 1; each tile\n"
        "captioned with its unit, sample and value). Prints each image's target value. The same seed,\n"
        "build and thread count give the same bytes.\n\n" ZFT_MODEL_HELP
        "  --layer L         the layer whose channels are maximised (default: the logits, or the\n"
        "                    softmax with --prob)\n"
        "  --units LIST      channels (classes without --layer): 5, 0-15, 1,4,9-12 (default 0)\n"
        "  --position Y,X    maximise the unit at (Y, X) of each channel's map instead of its total\n"
        "  --prob            classes: the probability after the softmax instead of the score\n"
        "  --method M        yosinski (default): gradient ascent on the pixels with L2 decay, blur,\n"
        "                    clipping and jitter (Yosinski et al. 2015); fourier: Adam on a 1/f-scaled\n"
        "                    spectrum through a colour decorrelation and a sigmoid, under random\n"
        "                    jitter, scale and rotation each step (Olah et al. 2017, Lucid)\n"
        "  --steps N         steps (default 256)\n"
        "  --lr X            yosinski: each step moves the image by X times the pixel range times\n"
        "                    g / mean|g| (default 0.02); fourier: Adam's rate (default 0.05)\n"
        "  --seed N          seed of the initial images and the random transformations (default 0)\n"
        "  --count K         images per unit, each from its own random stream (default 1)\n"
        "  --batch N         images optimised together per forward and backward pass (default 8)\n"
        "  --diversity W     ascend each target minus W times the similarity of the Gram matrices of\n"
        "                    a layer's outputs among the --count images of its unit (Lucid's diversity\n"
        "                    term): images that differ in style; 0 (default): off, each image alone\n"
        "  --diversity-layer L  that layer (default: the target's; at or below it)\n"
        "  --init-sd S       the start's noise (default 0.01): yosinski, the pixels' standard deviation\n"
        "                    as a fraction of the pixel range (raise it for a target that does not respond\n"
        "                    to so faint a start: the image then does not move); fourier, the\n"
        "                    coefficients' standard deviation\n"
        "  yosinski:\n"
        "  --decay D         L2 decay: x <- (1 - D) x after each step (default 0.0001)\n"
        "  --blur-every N    a Gaussian blur every N steps (default 4; 0: never)\n"
        "  --blur-width S    its standard deviation in pixels (default 1.0)\n"
        "  --norm-pct P      set pixels whose norm is below the P-th percentile to 0 (default 0)\n"
        "  --contrib-pct P   set pixels whose |sum_c x dF/dx| is below the P-th percentile to 0\n"
        "                    (default 0)\n"
        "  --jitter J        take each gradient at the image rolled by up to J pixels (default 0)\n"
        "  fourier:\n"
        "  --decay-power E   the spectrum's scale 1 / f^E (default 1)\n"
        "  --no-decorrelate  leave out the colour decorrelation matrix\n"
        "  --clip            clamp to [0, 1] instead of the sigmoid\n"
        "  --tr-jitter J     translation by up to J pixels each step (default 8)\n"
        "  --tr-scale S      scale by 1 + S * k / 5, k in -5..5, each step (default 0.1)\n"
        "  --tr-rotate D     rotation by a whole number of degrees in [-D, D] each step (default 10)\n"
        "  --out DIR         output folder (created)\n" ZFT_FIGURE_HELP
        "                    (--no-title: the grid's tiles only, 4 pixels apart, no text)\n" ZFT_FORCE_HELP
        ZFT_DEVICE_HELP "                    (fp32 only: the gradients are compared with PyTorch's)\n");
}

enum { OPT_LAYER = 256, OPT_UNITS, OPT_POSITION, OPT_PROB, OPT_METHOD, OPT_STEPS, OPT_LR, OPT_SEED, OPT_COUNT,
       OPT_BATCH, OPT_DECAY, OPT_BLUR_EVERY, OPT_BLUR_WIDTH, OPT_NORM_PCT, OPT_CONTRIB_PCT, OPT_JITTER,
       OPT_DECAY_POWER, OPT_INIT_SD, OPT_NO_DECORRELATE, OPT_CLIP, OPT_TR_JITTER, OPT_TR_SCALE, OPT_TR_ROTATE,
       OPT_DIVERSITY, OPT_DIVERSITY_LAYER };

#define MAX_UNITS 65536
#define CAPTION_LEN 200 /* a grid tile's caption */

/* "5", "0-15", "1,4,9-12" into units (sorted as given, at most max); the count, or -1. */
static int parse_units(const char *s, int *units, int max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        if (*p < '0' || *p > '9')
            return -1;
        long a = strtol(p, &end, 10), b = a;
        p = end;
        if (*p == '-') {
            p++;
            if (*p < '0' || *p > '9')
                return -1;
            b = strtol(p, &end, 10);
            p = end;
        }
        if (a > b || b >= (1L << 30) || n + (b - a + 1) > max)
            return -1;
        for (long u = a; u <= b; u++)
            units[n++] = (int)u;
        if (*p == ',') {
            p++;
            if (!*p)
                return -1;
        } else if (*p) {
            return -1;
        }
    }
    return n ? n : -1;
}

typedef struct prog {
    zft_progress bar;
    int64_t before; /* steps of the batches before this one */
    int n;          /* images in this batch */
} prog;

static int on_step(void *ctx, int done, int total)
{
    prog *p = ctx;
    (void)total;
    zft_progress_update(&p->bar, p->before + (int64_t)done * p->n);
    return zf_interrupted;
}

/* Whether the value ascended ever went above where it began by more than float32's rounding of
 * it: trace holds one value per step, each at the image that step's gradient was taken on (the
 * first at the start), end the value at the final image. */
static int rose(const double *trace, int steps, double end)
{
    const double tol = 1e-6 * fabs(trace[0]);
    if (end - trace[0] > tol)
        return 1;
    for (int s = 1; s < steps; s++)
        if (trace[s] - trace[0] > tol)
            return 1;
    return 0;
}

/* The grid: tile i of `n` images (in rgb, h x w each) at row i / cols, column i % cols, 4 white
 * pixels apart; scaled to `width` pixels wide when width > 0. */
static zf_status write_grid(const char *path, const uint8_t *rgb, int n, int cols, int h, int w, double width)
{
    const int gap = 4, rows = (n + cols - 1) / cols;
    const int gw = cols * w + (cols + 1) * gap, gh = rows * h + (rows + 1) * gap;
    zf_image *img = zf_image_new(gw, gh), *scaled = NULL;
    float *plane = NULL, *plane_out = NULL;
    zf_status st = ZF_OK;
    if (!img) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for %s", path);
        goto done;
    }
    memset(img->rgb, 255, (size_t)gw * gh * 3);
    for (int i = 0; i < n; i++) {
        const int ox = gap + (i % cols) * (w + gap), oy = gap + (i / cols) * (h + gap);
        for (int y = 0; y < h; y++)
            memcpy(img->rgb + ((size_t)(oy + y) * gw + ox) * 3, rgb + ((size_t)i * h * w + (size_t)y * w) * 3,
                   (size_t)w * 3);
    }
    if (width > 0 && (int)lround(width) != gw) {
        const int ow = (int)lround(width), oh = (int)lround((double)gh * ow / gw) > 0 ? (int)lround((double)gh * ow / gw) : 1;
        scaled = zf_image_new(ow, oh);
        plane = malloc(sizeof(float) * (size_t)gw * gh);
        plane_out = malloc(sizeof(float) * (size_t)ow * oh);
        if (!scaled || !plane || !plane_out) {
            st = zf_error(ZF_ERR_NOMEM, "out of memory for %s", path);
            goto done;
        }
        for (int c = 0; c < 3; c++) {
            for (size_t q = 0; q < (size_t)gw * gh; q++)
                plane[q] = img->rgb[q * 3 + c];
            zf_resize_bilinear(plane_out, plane, gh, gw, oh, ow);
            for (size_t q = 0; q < (size_t)ow * oh; q++) {
                const long v = lroundf(plane_out[q]);
                scaled->rgb[q * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    if (!(st = zft_output_prepare(path)))
        st = zf_image_save_png(path, scaled ? scaled : img);
done:
    zf_image_free(img);
    zf_image_free(scaled);
    free(plane);
    free(plane_out);
    return st;
}

int zf_cmd_optimize(int argc, char **argv)
{
    zft_model_opts mo = {0};
    zf_viz_style style = {0};
    zf_optimize_params p = zf_optimize_defaults(ZF_OPTIMIZE_YOSINSKI);
    const char *out = NULL, *layer = NULL, *units_s = NULL, *position = NULL, *div_layer = NULL;
    int prob = 0, count = 1, batch = 8, no_decorrelate = 0, clip = 0, method = 0, steps = p.steps;
    int blur_every = p.blur_every, jitter = p.jitter, tr_jitter = p.tr_jitter;
    double lr = -1, decay = p.decay, blur_width = p.blur_sigma, norm_pct = 0, contrib_pct = 0,
           decay_power = p.decay_power, init_sd = p.init_sd, tr_scale = p.tr_scale, tr_rotate = p.tr_rotate,
           diversity = 0;
    long seed = 0;
    const zft_opt opts[] = {
        ZFT_STR("out", 'o', &out), ZFT_STR("layer", OPT_LAYER, &layer), ZFT_STR("units", OPT_UNITS, &units_s),
        ZFT_STR("position", OPT_POSITION, &position), ZFT_FLAG("prob", OPT_PROB, &prob),
        ZFT_OWN("method", OPT_METHOD, required_argument),
        ZFT_INT("steps", OPT_STEPS, 1, 1 << 20, "a positive number", &steps),
        ZFT_REAL("lr", OPT_LR, 1e-12, 1e6, "a positive number", &lr),
        ZFT_LONG("seed", OPT_SEED, 0, 9e18, "a non-negative number", &seed),
        ZFT_INT("count", OPT_COUNT, 1, 1024, "1..1024 images", &count),
        ZFT_INT("batch", OPT_BATCH, 1, 256, "1..256 images", &batch),
        ZFT_REAL("decay", OPT_DECAY, 0, 0.999999, "a number in [0, 1)", &decay),
        ZFT_INT("blur-every", OPT_BLUR_EVERY, 0, 1 << 20, "a number of steps (0: never)", &blur_every),
        ZFT_REAL("blur-width", OPT_BLUR_WIDTH, 0, 64, "0..64 pixels", &blur_width),
        ZFT_REAL("norm-pct", OPT_NORM_PCT, 0, 100, "a percentile in [0, 100]", &norm_pct),
        ZFT_REAL("contrib-pct", OPT_CONTRIB_PCT, 0, 100, "a percentile in [0, 100]", &contrib_pct),
        ZFT_INT("jitter", OPT_JITTER, 0, 1024, "0..1024 pixels", &jitter),
        ZFT_REAL("decay-power", OPT_DECAY_POWER, 0, 4, "a number in [0, 4]", &decay_power),
        ZFT_REAL("init-sd", OPT_INIT_SD, 0, 10, "a number in [0, 10]", &init_sd),
        ZFT_FLAG("no-decorrelate", OPT_NO_DECORRELATE, &no_decorrelate), ZFT_FLAG("clip", OPT_CLIP, &clip),
        ZFT_INT("tr-jitter", OPT_TR_JITTER, 0, 1024, "0..1024 pixels", &tr_jitter),
        ZFT_REAL("tr-scale", OPT_TR_SCALE, 0, 0.9, "a number in [0, 0.9]", &tr_scale),
        ZFT_REAL("tr-rotate", OPT_TR_ROTATE, 0, 180, "0..180 degrees", &tr_rotate),
        ZFT_REAL("diversity", OPT_DIVERSITY, 0, 1e12, "a weight >= 0", &diversity),
        ZFT_STR("diversity-layer", OPT_DIVERSITY_LAYER, &div_layer), {0}};
    zft_device dev = {.needs = ZF_ENGINE_NEEDS(ZF_ENGINE_OP_FORWARD) | ZF_ENGINE_NEEDS(ZF_ENGINE_OP_BACKWARD)};
    zft_args a = {.cmd = "optimize", .argc = argc, .argv = argv, .shortopts = "ho:", .opts = opts,
                  .usage = usage, .model = &mo, .style = &style, .device = &dev, .shared = ZFT_WITH_FORCE};
    int c;
    while ((c = zft_args_next(&a)) != -1) {
        if (c != OPT_METHOD)
            return a.rc;
        if ((method = zft_args_choice(&a, "yosinski|fourier")) < 0)
            return ZFT_EXIT_USAGE;
    }
    if (!out)
        return zft_usage_error("optimize", "--out is required");
    if (dev.precision && strcmp(dev.precision, "fp32"))
        return zft_usage_error("optimize", "--precision %s: the gradients are computed in fp32", dev.precision);
    if (layer && prob)
        return zft_usage_error("optimize", "--prob is for classes, not --layer");
    if (diversity > 0 && count < 2)
        return zft_usage_error("optimize", "--diversity sets the --count images of a unit apart: it needs --count 2 "
                               "or more");
    if (diversity > 0 && count > batch)
        return zft_usage_error("optimize", "--diversity needs a unit's %d images in one batch: --batch %d or more",
                               count, count);
    if (div_layer && !(diversity > 0))
        return zft_usage_error("optimize", "--diversity-layer needs --diversity");
    int *units = malloc(sizeof(int) * MAX_UNITS);
    if (!units)
        return zft_fail("optimize", zf_error(ZF_ERR_NOMEM, "out of memory"));
    int n_units = 1;
    units[0] = 0;
    if (units_s && (n_units = parse_units(units_s, units, MAX_UNITS)) < 0) {
        free(units);
        return zft_usage_error("optimize", "--units needs channels like 5, 0-15 or 1,4,9-12 (at most %d), got '%s'",
                               MAX_UNITS, units_s);
    }
    int py = -1, px = -1;
    if (position) {
        char extra;
        if (sscanf(position, "%d,%d%c", &py, &px, &extra) != 2 || py < 0 || px < 0) {
            free(units);
            return zft_usage_error("optimize", "--position needs Y,X (two non-negative numbers), got '%s'", position);
        }
    }
    const zf_optimize_params def = zf_optimize_defaults((zf_optimize_method)method);
    p = def;
    p.steps = steps;
    p.lr = lr > 0 ? lr : def.lr;
    p.seed = (uint64_t)seed;
    p.decay = decay;
    p.blur_every = blur_every;
    p.blur_sigma = blur_width;
    p.norm_pct = norm_pct;
    p.contrib_pct = contrib_pct;
    p.jitter = jitter;
    p.decay_power = decay_power;
    p.init_sd = init_sd;
    p.decorrelate = !no_decorrelate;
    p.clip = clip;
    p.tr_jitter = tr_jitter;
    p.tr_scale = tr_scale;
    p.tr_rotate = tr_rotate;
    p.diversity = diversity;

    zf_net *net = NULL;
    zf_backprop *bp = NULL;
    zf_attr_target *t = NULL;
    int *sample = NULL;
    float *imgs = NULL;
    double *trace = NULL;
    uint8_t *rgb = NULL;
    char (*captions)[CAPTION_LEN] = NULL;
    int rc = 1;
    zf_status st = zft_load_model(&mo, &net);
    if (st)
        goto fail;
    int li;
    if (layer) {
        if ((li = zf_net_find(net, layer)) < 0) {
            rc = zft_usage_error("optimize", "%s has no layer '%s' (see zfviz info)", net->arch, layer);
            goto fail;
        }
    } else if ((li = zf_attr_logits_layer(net, prob)) < 0) {
        rc = zft_usage_error("optimize", "%s ends in no %s to maximise", net->arch, prob ? "softmax" : "layer");
        goto fail;
    }
    if (div_layer) {
        const int ascended = net->layers[li].op == ZF_OP_RELU && li > 0 ? li - 1 : li;
        if ((p.diversity_layer = zf_net_find(net, div_layer)) < 0 || p.diversity_layer > ascended) {
            rc = zft_usage_error("optimize", "--diversity-layer '%s': %s", div_layer,
                                 p.diversity_layer < 0 ? "no such layer (see zfviz info)"
                                                       : "it must be at or below the target's layer");
            goto fail;
        }
    }
    const int total = n_units * count;
    t = malloc(sizeof(zf_attr_target) * (size_t)total);
    sample = malloc(sizeof(int) * (size_t)total);
    if (!t || !sample) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for %d images", total);
        goto fail;
    }
    for (int u = 0; u < n_units; u++)
        for (int k = 0; k < count; k++) {
            const int i = u * count + k;
            t[i] = (zf_attr_target){li, units[u], py, px};
            sample[i] = k;
            if (k == 0 && (st = zf_attr_target_check(net, &t[i]))) {
                rc = zft_usage_error("optimize", "%s", zf_last_error());
                goto fail;
            }
        }
    if ((st = zf_optimize_check(&p))) {
        rc = zft_usage_error("optimize", "%s", zf_last_error());
        goto fail;
    }
    if (zf_viz_planes(&net->pre) != net->in_c) {
        rc = zft_usage_error("optimize", "%s has %d input channels but its preprocessing makes %d: cannot show "
                             "its input as an image", net->arch, net->in_c, zf_viz_planes(&net->pre));
        goto fail;
    }
    const size_t in = (size_t)zf_net_in_size(net), hw = (size_t)net->in_h * net->in_w;
    /* with the diversity term a unit's images share a batch: whole units per batch */
    const int per_batch = diversity > 0 ? batch / count * count : batch;
    const int nb = per_batch < total ? per_batch : total;
    imgs = malloc(sizeof(float) * in * (size_t)nb);
    trace = malloc(sizeof(double) * (size_t)p.steps * (size_t)nb);
    rgb = malloc(hw * 3 * (size_t)total);
    captions = calloc((size_t)total, sizeof *captions);
    if (!imgs || !trace || !rgb || !captions) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for %d images of %s", total, net->arch);
        goto fail;
    }
    if ((st = zf_backprop_new(net, nb, &bp)) || (st = zft_mkdirs(out)))
        goto fail;
    /* another engine than the cpu's runs the forwards and backward passes */
    if (dev.iface != zf_engine_list()[0] &&
        ((st = zft_device_open(&dev, net, nb)) || (st = zf_backprop_set_engine(bp, dev.eng))))
        goto fail;

    const zf_layer *l = &net->layers[li];
    const int is_class = !layer;
    prog pr = {0};
    zft_progress_start(&pr.bar, "optimize", (int64_t)total * p.steps, "step");
    for (int i0 = 0; i0 < total && !st; i0 += nb) {
        const int n = total - i0 < nb ? total - i0 : nb;
        pr.before = (int64_t)i0 * p.steps;
        pr.n = n;
        if ((st = zf_optimize_run(bp, imgs, trace, t + i0, sample + i0, n, &p, on_step, &pr)))
            break;
        for (int j = 0; j < n && !st; j++) {
            const int i = i0 + j;
            const float *x = imgs + (size_t)j * in;
            char name[256], path[4096];
            if (py >= 0)
                snprintf(name, sizeof name, "%s-c%d-y%dx%d-s%d", l->name, t[i].channel, py, px, sample[i]);
            else
                snprintf(name, sizeof name, "%s-c%d-s%d", l->name, t[i].channel, sample[i]);
            const int64_t shape[3] = {net->in_c, net->in_h, net->in_w};
            snprintf(path, sizeof path, "%s/%s.npy", out, name);
            if ((st = zft_output_prepare(path)) || (st = zf_npy_write_raw(path, ZF_DTYPE_F32, x, 3, shape)))
                break;
            uint8_t *px_rgb = rgb + (size_t)i * hw * 3;
            zf_viz_input_to_rgb(px_rgb, x, &net->pre, net->in_h, net->in_w);
            zf_image *img = zf_image_new(net->in_w, net->in_h);
            if (!img) {
                st = zf_error(ZF_ERR_NOMEM, "out of memory for %s", name);
                break;
            }
            memcpy(img->rgb, px_rgb, hw * 3);
            snprintf(path, sizeof path, "%s/%s.png", out, name);
            if (!(st = zft_output_prepare(path)))
                st = zf_image_save_png(path, img);
            zf_image_free(img);
            double v = 0;
            if (!st)
                st = zf_attr_value(bp, x, &t[i], &v);
            if (st)
                break;
            char what[256], cname[160];
            if (is_class)
                snprintf(what, sizeof what, "class %s %s", zft_class_text(cname, sizeof cname, net, t[i].channel),
                         prob ? "probability" : "score");
            else if (py >= 0)
                snprintf(what, sizeof what, "%s channel %d at %d,%d", l->name, t[i].channel, py, px);
            else
                snprintf(what, sizeof what, "%s channel %d total", l->name, t[i].channel);
            printf("%s: %s = %.9g (%s, %d steps, seed %ld)\n", name, what, v,
                   method == ZF_OPTIMIZE_FOURIER ? "fourier" : "yosinski", p.steps, seed);
            if (!rose(trace + (size_t)j * p.steps, p.steps, v)) {
                fflush(stdout);
                fprintf(stderr,
                        "zfviz optimize: warning: %s: the target never rose above its start's value (%.6g) "
                        "in %d steps; %s\n",
                        name, trace[(size_t)j * p.steps], p.steps,
                        method == ZF_OPTIMIZE_FOURIER ? "another --seed or a larger --init-sd may start it"
                                                      : "a larger --init-sd (0.1, say) may start it");
            }
            char cap[CAPTION_LEN];
            if (is_class)
                snprintf(cap, sizeof cap, "%s #%d\n%s %.4g", cname, sample[i], prob ? "p" : "score", v);
            else
                snprintf(cap, sizeof cap, "channel %d #%d\nvalue %.4g", t[i].channel, sample[i], v);
            memcpy(captions[i], cap, sizeof cap);
        }
    }
    zft_progress_finish(&pr.bar);
    if (!st && total > 1) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s-grid.png", out, l->name);
        const int cols = count > 1 ? count : (int)ceil(sqrt((double)total));
        if (style.no_title) {
            st = write_grid(path, rgb, total, cols, net->in_h, net->in_w, style.width);
        } else {
            char title[512], target[160];
            if (is_class)
                snprintf(target, sizeof target, "classes (%s)", prob ? "probability" : "score");
            else if (py >= 0)
                snprintf(target, sizeof target, "%s channels at %d,%d", l->name, py, px);
            else
                snprintf(target, sizeof target, "%s channels (totals)", l->name);
            snprintf(title, sizeof title, "%s: %s, %s, %d steps, seed %ld", net->arch, target,
                     method == ZF_OPTIMIZE_FOURIER ? "fourier" : "yosinski", p.steps, seed);
            const char **caps = malloc(sizeof *caps * (size_t)total);
            zf_viz_doc *doc = NULL;
            if (!caps) {
                st = zf_error(ZF_ERR_NOMEM, "out of memory for %s", path);
            } else {
                for (int i = 0; i < total; i++)
                    caps[i] = captions[i];
                const zf_viz_unit_grid_in gin = {title, total, cols, net->in_w, net->in_h, rgb, caps};
                if (!(st = zft_output_prepare(path)) && !(st = zf_viz_doc_open(path, &doc)) &&
                    !(st = zf_viz_unit_grid(doc, &gin, &style)))
                    st = zf_viz_doc_finish(doc);
            }
            zf_viz_doc_free(doc);
            free(caps);
        }
    }
    if (st)
        goto fail;
    rc = 0;
fail:
    if (rc == 1)
        rc = zft_fail("optimize", st);
    zf_backprop_free(bp);
    zft_device_close(&dev);
    free(units);
    free(t);
    free(sample);
    free(imgs);
    free(trace);
    free(rgb);
    free(captions);
    zf_net_free(net);
    return rc;
}
