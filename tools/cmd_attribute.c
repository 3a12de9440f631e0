/* zfviz attribute: gradient attributions of a class or a unit for one image or a folder of images
 * (saliency, input x gradient, guided backpropagation, Grad-CAM, integrated gradients). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "figure_opts.h"
#include "zf/attribution.h"
#include "zf/file.h"
#include "zf/input.h"
#include "zf/io.h"
#include "zf/viz.h"
#include "zf/viz_attribution.h"

const char zf_cmd_attribute_summary[] = "gradient attributions of a class or unit (saliency, guided backprop, Grad-CAM, IG)";

typedef enum { M_GRADIENT = 0, M_INPUT_X_GRADIENT, M_GUIDED, M_GRADCAM, M_GUIDED_GRADCAM, M_IG, M_SMOOTHGRAD,
               M_DECONVNET } method;
#define METHOD_CHOICES "gradient|input-x-gradient|guided-backprop|gradcam|guided-gradcam|integrated-gradients|smoothgrad|deconvnet"
static const char *const method_names[] = {"gradient", "input-x-gradient", "guided-backprop", "gradcam",
                                           "guided-gradcam", "integrated-gradients", "smoothgrad", "deconvnet"};

static void usage(void)
{
    printf(
        "usage: zfviz attribute (--arch A --weights W | --model F) --input X --method M --out DIR\n"
        "                       [--class K [--prob] | --layer L --channel C [--position Y,X]]\n\n"
        "Attributes a target to the input pixels with the net's gradients (docs/attribution.md).\n"
        "The target is a class's score before the softmax (default: each image's top class;\n"
        "--prob: its probability after the softmax) or a unit: channel C of layer L summed over\n"
        "its map, or at one position. For each image writes DIR/<image>.<method>.npy (C x H x W in\n"
        "the net's input layout; H x W for gradcam) and DIR/<image>.<method>.png (the image\n"
        "beside the map: the largest |value| over the colour channels, or the Grad-CAM map,\n"
        "scaled by its maximum, with the numbers that define it; --format pdf for a PDF). Prints the target's value per image, and for integrated\n"
        "gradients the completeness error |sum(attr) - (F(x) - F(baseline))|.\n\n" ZFT_MODEL_HELP
        "  --input X         an image, a folder of images (searched recursively), a list file, or\n"
        "                    a .npy of (N, C, H, W) preprocessed inputs\n"
        "  --method M        gradient: d target / d input (Simonyan et al. saliency);\n"
        "                    input-x-gradient: input times that gradient;\n"
        "                    guided-backprop: every ReLU passes only positive gradients where its\n"
        "                    input was positive (Springenberg et al.);\n"
        "                    gradcam: ReLU(sum_k w_k A_k) at a conv layer's output A, w_k the mean of\n"
        "                    d target / d A_k, upsampled bilinearly (Selvaraju et al.);\n"
        "                    integrated-gradients: (x - x') times the mean gradient on the straight\n"
        "                    path from the baseline x' to x (Sundararajan et al.);\n"
        "                    guided-gradcam: guided-backprop times the gradcam map;\n"
        "                    smoothgrad: the mean of --over's method over --samples copies of the\n"
        "                    image with Gaussian noise (Smilkov et al.);\n"
        "                    deconvnet: the same path with Zeiler & Fergus's rule: every ReLU passes\n"
        "                    the positive part of the signal, LRN passes it unchanged\n"
        "  --class K         class to explain (default: the top class of each image)\n"
        "  --prob            explain the class's probability (after the softmax), not its score\n"
        "  --layer L         explain a unit of layer L (any layer: conv3, relu3, pool5, fc6, ...)\n"
        "  --channel C       its channel (required with --layer); its total over the map unless\n"
        "  --position Y,X    a position in the layer's map is given\n"
        "  --cam-layer L     gradcam, guided-gradcam: the layer whose maps are weighted (default: the last conv\n"
        "                    layer's ReLU output); a layer after the flatten is refused\n"
        "  --baseline B      integrated-gradients: black (default: pixel value 0 preprocessed, i.e.\n"
        "                    -mean/std per channel), zero (zeros of the net's input: the training\n"
        "                    set's mean colour its preprocessing subtracts), mean (the mean colour\n"
        "                    of the images given, over all of them) or a .npy of the input's shape\n"
        "                    (C, H, W) or (1, C, H, W)\n"
        "  --steps N         integrated-gradients: steps of the path (default 50)\n"
        "  --rule R          integrated-gradients: midpoint (default) or trapezoid\n"
        "  --batch N         images per forward and backward pass (integrated-gradients: path\n"
        "                    points; smoothgrad: one image at a time), default 16\n"
        "  --over M          smoothgrad: gradient (default), input-x-gradient, guided-backprop or\n"
        "                    integrated-gradients; files are named <image>.smoothgrad-M.*\n"
        "  --samples N       smoothgrad: noisy copies (default 50)\n"
        "  --noise S         smoothgrad: the noise's standard deviation as a fraction of the image's\n"
        "                    value range, max - min of the input (default 0.15)\n"
        "  --seed N          smoothgrad: the noise's seed (default 0; the same seed, the same noise)\n"
        "  --format F        the figures: png (default) or pdf\n"
        "  --out DIR         output folder (created); an image found under a subfolder of the\n"
        "                    input folder writes to the same subfolder of DIR. A run stopped\n"
        "                    (Ctrl-C, killed, failed) keeps the images it finished: the same command\n"
        "                    again skips them and gives the bytes one uninterrupted run gives\n"
        "                    (DIR/<method>.settings.txt records the settings; a run with other\n"
        "                    settings, or --force, recomputes every image)\n" ZFT_FIGURE_HELP ZFT_FORCE_HELP
        ZFT_DEVICE_HELP "                    (fp32 only: the gradients are compared with PyTorch's)\n");
}

enum { OPT_CLASS = 256, OPT_PROB, OPT_LAYER, OPT_CHANNEL, OPT_POSITION, OPT_CAM_LAYER, OPT_BASELINE,
       OPT_STEPS, OPT_RULE, OPT_METHOD, OPT_BATCH, OPT_OVER, OPT_SAMPLES, OPT_NOISE, OPT_SEED, OPT_FORMAT };

/* The output name of each input (DIR/<name>.<method>.*): an image's path relative to the folder
 * given (or, for a list, to the folder all its images share) without its extension, so that
 * images of the same name in different subfolders keep apart in mirrored subfolders; two images
 * whose names differ only in the extension (a.jpg, a.png) keep it. An N-image .npy gives
 * <stem>-<i>. */
static int cmp_name(const void *a, const void *b)
{
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

static zf_status name_inputs(char **names, char *const *paths, int64_t n, const char *input)
{
    /* the folder every path lies in: the input folder itself, else the paths' common folder */
    size_t root = 0;
    char real[4096];
    if (n > 0 && realpath(input, real) && !strncmp(paths[0], real, strlen(real)) &&
        paths[0][strlen(real)] == '/') {
        root = strlen(real) + 1;
        for (int64_t i = 1; i < n && root; i++)
            if (strncmp(paths[i], real, root - 1) || paths[i][root - 1] != '/')
                root = 0;
    }
    if (!root && n > 0) {
        const char *slash = strrchr(paths[0], '/');
        root = slash ? (size_t)(slash - paths[0]) + 1 : 0;
        for (int64_t i = 1; i < n && root; i++)
            while (root && strncmp(paths[i], paths[0], root))
                for (root--; root && paths[0][root - 1] != '/'; root--)
                    ;
    }
    for (int64_t i = 0; i < n; i++) {
        const char *rel = paths[i] + root;
        const char *base = strrchr(rel, '/');
        base = base ? base + 1 : rel;
        const char *dot = strrchr(base, '.');
        const size_t keep = dot && dot != base ? (size_t)(dot - rel) : strlen(rel);
        if (!(names[i] = strndup(rel, keep)))
            return zf_error(ZF_ERR_NOMEM, "out of memory for %lld names", (long long)n);
    }
    char ***order = malloc(sizeof *order * (size_t)(n > 0 ? n : 1));
    if (!order)
        return zf_error(ZF_ERR_NOMEM, "out of memory for %lld names", (long long)n);
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < n; i++)
            order[i] = &names[i];
        qsort(order, (size_t)n, sizeof *order, cmp_name);
        for (int64_t i = 0; i + 1 < n; i++) {
            if (strcmp(*order[i], *order[i + 1]))
                continue;
            const int64_t a = order[i] - names, b = order[i + 1] - names;
            if (pass == 1) {
                zf_status st = zf_error(ZF_ERR_ARG, "%s and %s would both write %s.*: rename one", paths[a],
                                        paths[b], names[a]);
                free(order);
                return st;
            }
            for (int k = 0; k < 2; k++) {
                const int64_t at = k ? b : a;
                char *full = strdup(paths[at] + root);
                if (!full) {
                    free(order);
                    return zf_error(ZF_ERR_NOMEM, "out of memory for %lld names", (long long)n);
                }
                free(names[at]);
                names[at] = full;
            }
        }
    }
    free(order);
    return ZF_OK;
}

/* The figure: the image the net saw beside the map (viridis, 0 to the map's maximum, with a colour
 * bar) and under it the numbers that define the map (zf_viz_attribution). */
static zf_status write_figure(const char *path, const zf_net *net, const float *input, const float *map,
                              const char *title, const char *method, const char *numbers, const zf_viz_style *style)
{
    const int h = net->in_h, w = net->in_w;
    const int planes = zf_viz_planes(&net->pre);
    if (planes != net->in_c)
        return zf_error(ZF_ERR_SHAPE, "%s: %s has %d input channels but its preprocessing makes %d: "
                        "cannot show its input as an image", path, net->arch, net->in_c, planes);
    zf_image *img = zf_image_new(w, h);
    zf_viz_doc *doc = NULL;
    zf_status st = ZF_OK;
    if (!img) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for %s", path);
        goto done;
    }
    zf_viz_input_to_rgb(img->rgb, input, &net->pre, h, w);
    char cap[96];
    snprintf(cap, sizeof cap, "input %d\xc3\x97%d as %s sees it", w, h, net->arch);
    const zf_viz_attr_map m = {method, map, numbers};
    const zf_viz_attribution_in in = {title, img, cap, &m, 1};
    if (!(st = zft_output_prepare(path)) && !(st = zf_viz_doc_open(path, &doc)) &&
        !(st = zf_viz_attribution(doc, &in, style)))
        st = zf_viz_doc_finish(doc);
done:
    zf_viz_doc_free(doc);
    zf_image_free(img);
    return st;
}

typedef struct job {
    method m, over;        /* over: the method SmoothGrad averages */
    zf_net *net;
    zf_backprop *bp;
    zf_attr_target t;      /* t.channel < 0: each image's top class */
    int prob, cam_layer, steps, samples;
    double noise;
    unsigned long long seed;
    zf_ig_rule rule;
    const float *baseline; /* integrated-gradients: the baseline (in size) */
    const char *out;
    const char *fig_ext;   /* "png" or "pdf" */
    const zf_viz_style *style;
    const char *baseline_name; /* integrated-gradients: black, zero, mean or the file */
    char mname[64];        /* the method's part of the file names */
    float *attr, *pic, *cam, *xs, *z; /* batch x in size; h * w; batch x h * w; in size; in size */
    float *weights;        /* batch x K: Grad-CAM's channel weights */
    double *acc;           /* in size */
} job;

static zf_relu_rule rule_of(method m)
{
    return m == M_GUIDED ? ZF_RELU_RULE_GUIDED : m == M_DECONVNET ? ZF_RELU_RULE_DECONVNET : ZF_RELU_RULE_GRADIENT;
}

/* Method m of the n images x (n x in size) into attr (n x in size, or n x h * w for gradcam), one
 * target each (a channel < 0 becomes the image's top one); the targets' values and, for
 * integrated gradients, their values at the baseline. */
static zf_status compute(job *j, method m, const float *x, int n, zf_attr_target *t, float *attr, double *value,
                         double *f_base)
{
    const size_t in = (size_t)zf_net_in_size(j->net), hw = (size_t)j->net->in_h * j->net->in_w;
    zf_status st = ZF_OK;
    switch (m) {
    case M_GRADIENT:
    case M_INPUT_X_GRADIENT:
    case M_GUIDED:
    case M_DECONVNET:
        st = zf_attr_gradient_each(j->bp, attr, value, x, n, t, rule_of(m));
        if (!st && m == M_INPUT_X_GRADIENT)
            for (size_t i = 0; i < in * (size_t)n; i++)
                attr[i] *= x[i];
        break;
    case M_GRADCAM:
        st = zf_attr_gradcam_each(j->bp, attr, j->weights, NULL, value, x, n, j->cam_layer, t);
        break;
    case M_GUIDED_GRADCAM:
        if ((st = zf_attr_gradcam_each(j->bp, j->cam, j->weights, NULL, value, x, n, j->cam_layer, t)) ||
            (st = zf_attr_gradient_each(j->bp, attr, NULL, x, n, t, ZF_RELU_RULE_GUIDED)))
            break;
        for (int i = 0; i < n; i++)
            for (int c = 0; c < j->net->in_c; c++)
                for (size_t p = 0; p < hw; p++)
                    attr[((size_t)i * j->net->in_c + c) * hw + p] *= j->cam[(size_t)i * hw + p];
        break;
    case M_IG:
        for (int i = 0; i < n && !st; i++)
            if (!(st = zf_attr_choose(j->bp, x + (size_t)i * in, 1, &t[i])))
                st = zf_attr_integrated_gradients(j->bp, attr + (size_t)i * in, &value[i], &f_base[i],
                                                  x + (size_t)i * in, j->baseline, &t[i], j->steps, j->rule);
        break;
    case M_SMOOTHGRAD:
        for (int i = 0; i < n && !st; i++) {
            /* Smilkov et al.: the mean of the method over noisy copies x + N(0, sigma^2), sigma =
             * noise times the image's value range; the target is chosen on the clean image */
            const float *xi = x + (size_t)i * in;
            float *ai = attr + (size_t)i * in;
            if ((st = zf_attr_choose(j->bp, xi, 1, &t[i])) || (st = zf_attr_value(j->bp, xi, &t[i], &value[i])))
                break;
            float lo = xi[0], hi = xi[0];
            for (size_t k = 1; k < in; k++) {
                lo = xi[k] < lo ? xi[k] : lo;
                hi = xi[k] > hi ? xi[k] : hi;
            }
            const float sigma = (float)(j->noise * ((double)hi - lo));
            memset(j->acc, 0, sizeof(double) * in);
            for (int s = 0; s < j->samples && !st; s++) {
                zf_attr_noise(j->z, in, j->seed, s);
                for (size_t k = 0; k < in; k++)
                    j->xs[k] = xi[k] + sigma * j->z[k];
                double v0, f0;
                if (!(st = compute(j, j->over, j->xs, 1, &t[i], ai, &v0, &f0)))
                    for (size_t k = 0; k < in; k++)
                        j->acc[k] += ai[k];
            }
            for (size_t k = 0; k < in && !st; k++)
                ai[k] = (float)(j->acc[k] / j->samples);
        }
        break;
    }
    return st;
}

/* The two files of image `name`: DIR/<name>.<method>.npy and .png. */
static void out_path(char *buf, size_t len, const job *j, const char *name, const char *ext)
{
    snprintf(buf, len, "%s/%s.%s.%s", j->out, name, j->mname, ext);
}

/* Whether both files of the image are there and zfviz's own: a finished image of an earlier run. */
static int already_done(const job *j, const char *name)
{
    char path[4096];
    out_path(path, sizeof path, j, name, "npy");
    if (!zf_file_is_ours(path))
        return 0;
    out_path(path, sizeof path, j, name, j->fig_ext);
    return zf_file_is_ours(path);
}

/* One image's results: its .npy and figure, and a line on stdout. */
static zf_status write_one(job *j, const float *x, const float *attr, const float *weights, const zf_attr_target *t,
                           double value, double f_base, const char *name)
{
    zf_net *net = j->net;
    const size_t in = (size_t)zf_net_in_size(net), hw = (size_t)net->in_h * net->in_w;
    zf_status st;
    if (j->m == M_GRADCAM) {
        memcpy(j->pic, attr, sizeof(float) * hw);
    } else {
        for (size_t p = 0; p < hw; p++) {
            float v = 0;
            for (int c = 0; c < net->in_c; c++)
                v = fmaxf(v, fabsf(attr[(size_t)c * hw + p]));
            j->pic[p] = v;
        }
    }
    char path[4096];
    out_path(path, sizeof path, j, name, "npy");
    int64_t shape[3] = {net->in_c, net->in_h, net->in_w};
    if (j->m == M_GRADCAM) {
        shape[0] = net->in_h;
        shape[1] = net->in_w;
    }
    if ((st = zft_output_prepare(path)) ||
        (st = zf_npy_write_raw(path, ZF_DTYPE_F32, attr, j->m == M_GRADCAM ? 2 : 3, shape)))
        return st;
    const zf_layer *l = &net->layers[t->layer];
    char what[256], cname[160];
    if (j->t.layer == zf_attr_logits_layer(net, j->prob) && j->t.y < 0 &&
        (l->op == ZF_OP_FC || l->op == ZF_OP_SOFTMAX))
        snprintf(what, sizeof what, "class %s %s", zft_class_text(cname, sizeof cname, net, t->channel),
                 j->prob ? "probability" : "score");
    else if (t->y >= 0)
        snprintf(what, sizeof what, "%s channel %d at %d,%d", l->name, t->channel, t->y, t->x);
    else
        snprintf(what, sizeof what, "%s channel %d total", l->name, t->channel);
    double sum = 0, top = 0;
    for (size_t i = 0; i < (j->m == M_GRADCAM ? hw : in); i++)
        sum += attr[i];
    for (size_t p = 0; p < hw; p++)
        top = j->pic[p] > top ? j->pic[p] : top;
    /* the numbers that define the map, under it in the figure */
    char nums[1024];
    int at = snprintf(nums, sizeof nums, "F = %.9g: %s\n", value, what);
    if (j->m == M_GRADCAM || j->m == M_GUIDED_GRADCAM) {
        const zf_layer *c = &net->layers[j->cam_layer];
        int best = 0;
        for (int k = 1; k < c->out_c; k++)
            if (fabsf(weights[k]) > fabsf(weights[best]))
                best = k;
        at += snprintf(nums + at, sizeof nums - at,
                       "at %s: %d maps A_k of %d\xc3\x97%d, w_k = mean of dF/dA_k\nlargest |w_k|: w_%d = %.6g\n"
                       "map = ReLU(sum_k w_k A_k), upsampled\n",
                       c->name, c->out_c, c->out_h, c->out_w, best, weights[best]);
        if (j->m == M_GUIDED_GRADCAM)
            at += snprintf(nums + at, sizeof nums - at, "times guided backpropagation\n");
    }
    if (j->m == M_IG || (j->m == M_SMOOTHGRAD && j->over == M_IG)) {
        at += snprintf(nums + at, sizeof nums - at, "baseline %s, %d steps, %s rule\n", j->baseline_name, j->steps,
                       j->rule == ZF_IG_TRAPEZOID ? "trapezoid" : "midpoint");
        if (j->m == M_IG)
            at += snprintf(nums + at, sizeof nums - at,
                           "F(baseline) = %.9g\nsum of attributions = %.9g\ncompleteness error = %.3g\n", f_base, sum,
                           fabs(sum - (value - f_base)));
    }
    if (j->m == M_SMOOTHGRAD)
        at += snprintf(nums + at, sizeof nums - at, "mean over %d samples, noise %.3g of the range, seed %llu\n",
                       j->samples, j->noise, j->seed);
    if (j->m != M_IG)
        at += snprintf(nums + at, sizeof nums - at, "sum of attributions = %.9g\n", sum);
    snprintf(nums + at, sizeof nums - at, "%s from 0 to %.6g",
             j->m == M_GRADCAM ? "the map" : "shown: max over channels of |attribution|,", top);
    char title[640];
    snprintf(title, sizeof title, "%s: %s of %s", net->arch, j->mname, name);
    out_path(path, sizeof path, j, name, j->fig_ext);
    if ((st = write_figure(path, net, x, j->pic, title, j->mname, nums, j->style)))
        return st;

    printf("%s: %s of %s = %.9g", name, j->mname, what, value);
    if (j->m == M_IG)
        printf("; F(baseline) = %.9g, sum of attributions %.9g, completeness error %.6g (%d steps, %s)",
               f_base, sum, fabs(sum - (value - f_base)), j->steps,
               j->rule == ZF_IG_TRAPEZOID ? "trapezoid" : "midpoint");
    if (j->m == M_SMOOTHGRAD)
        printf("; %d samples, noise %.3g of the value range, seed %llu", j->samples, j->noise, j->seed);
    printf("\n");
    return ZF_OK;
}

/* The baseline of integrated gradients into base (in size): black, zero or a .npy. */
static zf_status load_baseline(float *base, const zf_net *net, const char *spec)
{
    const size_t in = (size_t)zf_net_in_size(net), hw = (size_t)net->in_h * net->in_w;
    if (!spec || !strcmp(spec, "black")) {
        /* pixel 0 through the preprocessing: (0 / 255 * scale - mean) / std in the net's order */
        for (int c = 0; c < net->in_c; c++) {
            const int rgb = net->pre.order == ZF_COLOR_GREY ? 0 : net->pre.order == ZF_COLOR_BGR ? 2 - c : c;
            const float v = (0.0f - net->pre.mean[rgb]) / net->pre.std[rgb];
            for (size_t p = 0; p < hw; p++)
                base[(size_t)c * hw + p] = v;
        }
        return ZF_OK;
    }
    if (!strcmp(spec, "zero")) {
        memset(base, 0, sizeof(float) * in);
        return ZF_OK;
    }
    zf_tensor *b = NULL;
    zf_status st = zf_npy_read(spec, &b);
    if (st)
        return st;
    int64_t count = 1;
    for (int i = 0; i < b->ndim; i++)
        count *= b->shape[i];
    const int lead = b->ndim == 4 ? 1 : 0;
    if (b->dtype != ZF_DTYPE_F32 || (b->ndim != 3 && b->ndim != 4) || (lead && b->shape[0] != 1) ||
        b->shape[lead] != net->in_c || b->shape[lead + 1] != net->in_h || b->shape[lead + 2] != net->in_w) {
        char s[64];
        st = zf_error(ZF_ERR_SHAPE, "%s: a baseline of shape %s; %s needs (%d, %d, %d) or (1, %d, %d, %d)", spec,
                      zf_tensor_shape_str(b, s, sizeof s), net->arch, net->in_c, net->in_h, net->in_w, net->in_c,
                      net->in_h, net->in_w);
    } else if (!(st = zf_values_check_finite(zf_tensor_f32(b), (size_t)count, spec, NULL))) {
        memcpy(base, zf_tensor_f32(b), sizeof(float) * in);
    }
    zf_tensor_free(b);
    return st;
}

/* Where the images come from: an N-image .npy, or image files (paths); names[i] the output name. */
typedef struct source {
    zf_tensor *npy;
    char **paths;
    char **names;
    int64_t n;
} source;

/* Input i into dst (in size), preprocessed for the net. */
static zf_status source_load(const source *src, const zf_net *net, int64_t i, float *dst)
{
    const size_t in = (size_t)zf_net_in_size(net);
    if (src->npy) {
        memcpy(dst, zf_tensor_f32(src->npy) + (size_t)i * in, sizeof(float) * in);
        return ZF_OK;
    }
    zf_tensor *x = NULL;
    zf_status st = zf_input_load(src->paths[i], net, &x);
    if (!st && x->shape[0] != 1)
        st = zf_error(ZF_ERR_SHAPE, "%s: holds %lld inputs; a list takes one per file", src->paths[i],
                      (long long)x->shape[0]);
    if (!st)
        memcpy(dst, zf_tensor_f32(x), sizeof(float) * in);
    zf_tensor_free(x);
    return st;
}

/* The mean baseline: every pixel the mean colour of all the inputs (each channel's mean over
 * every image and position, after the preprocessing), so that it is the same for every image of
 * the folder and for a resumed run. */
static zf_status mean_baseline(float *base, float *scratch, const source *src, const zf_net *net)
{
    const size_t hw = (size_t)net->in_h * net->in_w;
    double *sum = calloc((size_t)net->in_c, sizeof *sum);
    if (!sum)
        return zf_error(ZF_ERR_NOMEM, "out of memory for the mean baseline");
    zf_status st = ZF_OK;
    for (int64_t i = 0; i < src->n && !st; i++)
        if (!(st = source_load(src, net, i, scratch)))
            for (int c = 0; c < net->in_c; c++)
                for (size_t p = 0; p < hw; p++)
                    sum[c] += scratch[(size_t)c * hw + p];
    for (int c = 0; c < net->in_c && !st; c++) {
        const float v = (float)(sum[c] / ((double)hw * src->n));
        for (size_t p = 0; p < hw; p++)
            base[(size_t)c * hw + p] = v;
    }
    free(sum);
    return st;
}

/* DIR/<method>.settings.txt: what defines the files in DIR. Images are skipped as finished only
 * when it holds the same settings (1 in *resume), so that a run with other settings (another
 * class, more steps) replaces the files instead of keeping those of the old ones. */
static zf_status check_settings(const job *j, const char *text, int *resume)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.settings.txt", j->out, j->mname);
    size_t len = 0;
    uint8_t *old = NULL;
    *resume = !zf_file_force() && zf_file_is_ours(path) &&
              !zf_input_read(path, "settings file", 0, 1 << 16, &old, &len) && !strcmp((const char *)old, text);
    free(old);
    zf_status st = zft_output_prepare(path);
    return st ? st : zf_file_save(path, text, strlen(text), 0);
}

/* The layer `name` names, or -1 after the one usage line. */
static int find_layer(const zf_net *net, const char *name)
{
    int i = zf_net_find(net, name);
    if (i < 0)
        zft_usage_error("attribute", "%s has no layer '%s' (see zfviz info)", net->arch, name);
    return i;
}

int zf_cmd_attribute(int argc, char **argv)
{
    zft_model_opts mo = {0};
    const char *input = NULL, *out = NULL, *layer = NULL, *position = NULL, *cam_layer = NULL, *baseline = NULL;
    int cls = -1, channel = -1, prob = 0, steps = 50, batch = 16, m = -1, over = -1, samples = 50;
    double noise = 0.15;
    long seed = 0;
    zf_ig_rule rule = ZF_IG_MIDPOINT;
    zf_viz_style style = {0};
    int pdf = 0;
    const zft_opt opts[] = {ZFT_STR("input", 'i', &input), ZFT_STR("out", 'o', &out),
                            ZFT_OWN("method", OPT_METHOD, required_argument),
                            ZFT_INT("class", OPT_CLASS, 0, 1 << 30, "a class index", &cls),
                            ZFT_FLAG("prob", OPT_PROB, &prob), ZFT_STR("layer", OPT_LAYER, &layer),
                            ZFT_INT("channel", OPT_CHANNEL, 0, 1 << 30, "a channel number", &channel),
                            ZFT_STR("position", OPT_POSITION, &position),
                            ZFT_STR("cam-layer", OPT_CAM_LAYER, &cam_layer),
                            ZFT_STR("baseline", OPT_BASELINE, &baseline),
                            ZFT_INT("steps", OPT_STEPS, 1, 1 << 20, "a positive number", &steps),
                            ZFT_OWN("rule", OPT_RULE, required_argument),
                            ZFT_INT("batch", OPT_BATCH, 1, 1 << 12, "a positive number", &batch),
                            ZFT_OWN("over", OPT_OVER, required_argument),
                            ZFT_INT("samples", OPT_SAMPLES, 1, 1 << 20, "a positive number", &samples),
                            ZFT_REAL("noise", OPT_NOISE, 0, 10, "a fraction of the value range in [0, 10]", &noise),
                            ZFT_LONG("seed", OPT_SEED, 0, 9e18, "a non-negative number", &seed),
                            ZFT_OWN("format", OPT_FORMAT, required_argument), {0}};
    zft_device dev = {.needs = ZF_ENGINE_NEEDS(ZF_ENGINE_OP_FORWARD) | ZF_ENGINE_NEEDS(ZF_ENGINE_OP_BACKWARD)};
    zft_args a = {.cmd = "attribute", .argc = argc, .argv = argv, .shortopts = "hi:o:", .opts = opts,
                  .usage = usage, .model = &mo, .style = &style, .device = &dev, .shared = ZFT_WITH_FORCE};
    int c;
    while ((c = zft_args_next(&a)) != -1) {
        int k;
        switch (c) {
        case OPT_METHOD:
            if ((m = zft_args_choice(&a, METHOD_CHOICES)) < 0)
                return ZFT_EXIT_USAGE;
            break;
        case OPT_OVER: {
            static const method overs[] = {M_GRADIENT, M_INPUT_X_GRADIENT, M_GUIDED, M_IG};
            if ((k = zft_args_choice(&a, "gradient|input-x-gradient|guided-backprop|integrated-gradients")) < 0)
                return ZFT_EXIT_USAGE;
            over = overs[k];
            break;
        }
        case OPT_FORMAT:
            if ((k = zft_args_choice(&a, "png|pdf")) < 0)
                return ZFT_EXIT_USAGE;
            pdf = k;
            break;
        case OPT_RULE:
            if ((k = zft_args_choice(&a, "midpoint|trapezoid")) < 0)
                return ZFT_EXIT_USAGE;
            rule = k ? ZF_IG_TRAPEZOID : ZF_IG_MIDPOINT;
            break;
        default:
            return a.rc;
        }
    }
    if (!input || !out || m < 0)
        return zft_usage_error("attribute", "--input, --method and --out are required");
    if (dev.precision && strcmp(dev.precision, "fp32"))
        return zft_usage_error("attribute", "--precision %s: the gradients are computed in fp32", dev.precision);
    if (layer && (cls >= 0 || prob))
        return zft_usage_error("attribute", "--layer (a unit) and --class/--prob (a class) exclude each other");
    if (!layer && (channel >= 0 || position))
        return zft_usage_error("attribute", "--channel and --position need --layer");
    if (layer && channel < 0)
        return zft_usage_error("attribute", "--layer needs --channel");
    const int any_ig = m == M_IG || (m == M_SMOOTHGRAD && over == M_IG);
    if (cam_layer && m != M_GRADCAM && m != M_GUIDED_GRADCAM)
        return zft_usage_error("attribute", "--cam-layer is for --method gradcam and guided-gradcam");
    if (!any_ig && baseline)
        return zft_usage_error("attribute", "--baseline is for --method integrated-gradients");
    if (over >= 0 && m != M_SMOOTHGRAD)
        return zft_usage_error("attribute", "--over is for --method smoothgrad");
    if (over < 0)
        over = M_GRADIENT;
    int py = -1, px = -1;
    if (position) {
        char extra;
        if (sscanf(position, "%d,%d%c", &py, &px, &extra) != 2 || py < 0 || px < 0)
            return zft_usage_error("attribute", "--position needs Y,X (two non-negative numbers), got '%s'", position);
    }

    zf_net *net = NULL;
    zf_backprop *bp = NULL;
    float *base = NULL, *xb = NULL, *attr = NULL, *pic = NULL, *cam = NULL, *weights = NULL, *xs = NULL, *z = NULL;
    double *acc = NULL, *values = NULL;
    zf_attr_target *targets = NULL;
    source src = {0};
    int rc = 1;
    zf_status st = zft_load_model(&mo, &net);
    if (st)
        goto fail;
    job j = {.m = (method)m, .over = (method)over, .net = net, .prob = prob, .steps = steps, .rule = rule,
             .samples = samples, .noise = noise, .seed = (unsigned long long)seed, .out = out};
    /* The target and the layers, checked before any work: a bad one is a usage error. */
    if (layer) {
        if ((j.t.layer = find_layer(net, layer)) < 0) {
            rc = ZFT_EXIT_USAGE;
            goto fail;
        }
        j.t.channel = channel;
        j.t.y = py;
        j.t.x = px;
    } else {
        j.t.layer = zf_attr_logits_layer(net, prob);
        if (j.t.layer < 0) {
            rc = zft_usage_error("attribute", "%s ends in no %s to explain", net->arch, prob ? "softmax" : "layer");
            goto fail;
        }
        j.t.channel = cls >= 0 ? cls : 0;
        j.t.y = -1;
    }
    if ((st = zf_attr_target_check(net, &j.t))) {
        rc = zft_usage_error("attribute", "%s", zf_last_error());
        goto fail;
    }
    if (!layer && cls < 0)
        j.t.channel = -1;
    if (m == M_GRADCAM || m == M_GUIDED_GRADCAM) {
        if (cam_layer) {
            if ((j.cam_layer = find_layer(net, cam_layer)) < 0) {
                rc = ZFT_EXIT_USAGE;
                goto fail;
            }
        } else {
            int last = -1;
            for (int i = 0; i < net->n_layers; i++)
                if (net->layers[i].op == ZF_OP_CONV)
                    last = i;
            j.cam_layer = last < 0 ? -1 : zf_net_rectified(net, last);
        }
        zf_attr_target tt = j.t;
        if (tt.channel < 0)
            tt.channel = 0;
        if (j.cam_layer < 0 || zf_attr_gradcam_check(net, j.cam_layer, &tt)) {
            rc = j.cam_layer < 0 ? zft_usage_error("attribute", "%s has no conv layer for Grad-CAM", net->arch)
                                 : zft_usage_error("attribute", "%s", zf_last_error());
            goto fail;
        }
    }
    const size_t in = (size_t)zf_net_in_size(net);
    const size_t hw = (size_t)net->in_h * net->in_w;
    const size_t len = strlen(input);
    if (len > 4 && !strcmp(input + len - 4, ".npy")) {
        if ((st = zf_input_load(input, net, &src.npy)))
            goto fail;
        src.n = src.npy->shape[0];
        if (!(src.names = calloc((size_t)src.n, sizeof *src.names))) {
            st = zf_error(ZF_ERR_NOMEM, "out of memory for %lld names", (long long)src.n);
            goto fail;
        }
        for (int64_t i = 0; i < src.n; i++) {
            const char *b = strrchr(input, '/');
            b = b ? b + 1 : input;
            char name[512];
            if (src.n > 1)
                snprintf(name, sizeof name, "%.*s-%lld", (int)(strlen(b) - 4), b, (long long)i);
            else
                snprintf(name, sizeof name, "%.*s", (int)(strlen(b) - 4), b);
            if (!(src.names[i] = strdup(name))) {
                st = zf_error(ZF_ERR_NOMEM, "out of memory for %lld names", (long long)src.n);
                goto fail;
            }
        }
    } else {
        if ((st = zf_images_find(input, &src.paths, &src.n)))
            goto fail;
        if (!(src.names = calloc((size_t)src.n, sizeof *src.names))) {
            st = zf_error(ZF_ERR_NOMEM, "out of memory for %lld names", (long long)src.n);
            goto fail;
        }
        if ((st = name_inputs(src.names, src.paths, src.n, input))) {
            rc = zft_usage_error("attribute", "%s", zf_last_error());
            goto fail;
        }
    }
    /* Images per forward and backward: the gradient methods and Grad-CAM take --batch images at
     * a time; integrated gradients and SmoothGrad one, with integrated gradients' path points
     * --batch at a time. */
    const int batched = m != M_IG && m != M_SMOOTHGRAD;
    const int points = any_ig ? (rule == ZF_IG_TRAPEZOID ? steps + 1 : steps) : 1;
    const int per = batched ? (int)(src.n < batch ? src.n : batch) : 1;
    const int bp_batch = per > (points < batch ? points : batch) ? per : (points < batch ? points : batch);
    const int cam_k = m == M_GRADCAM || m == M_GUIDED_GRADCAM ? net->layers[j.cam_layer].out_c : 1;
    base = malloc(sizeof(float) * in);
    xb = malloc(sizeof(float) * in * (size_t)per);
    attr = malloc(sizeof(float) * in * (size_t)per);
    pic = malloc(sizeof(float) * hw);
    cam = malloc(sizeof(float) * hw * (size_t)per);
    weights = malloc(sizeof(float) * (size_t)cam_k * (size_t)per);
    xs = malloc(sizeof(float) * in);
    z = malloc(sizeof(float) * in);
    acc = malloc(sizeof(double) * in);
    targets = malloc(sizeof *targets * (size_t)per);
    values = malloc(sizeof(double) * 2 * (size_t)per);
    if (!base || !xb || !attr || !pic || !cam || !weights || !xs || !z || !acc || !targets || !values) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for attributions of %s", net->arch);
        goto fail;
    }
    if (any_ig) {
        if (baseline && !strcmp(baseline, "mean"))
            st = mean_baseline(base, xb, &src, net);
        else if ((st = load_baseline(base, net, baseline)))
            rc = zft_usage_error("attribute", "%s", zf_last_error());
        if (st)
            goto fail;
    }
    j.baseline = base;
    j.baseline_name = baseline ? baseline : "black";
    j.fig_ext = pdf ? "pdf" : "png";
    j.style = &style;
    j.attr = attr;
    j.pic = pic;
    j.cam = cam;
    j.weights = weights;
    j.xs = xs;
    j.z = z;
    j.acc = acc;
    if (m == M_SMOOTHGRAD)
        snprintf(j.mname, sizeof j.mname, "smoothgrad-%s", method_names[over]);
    else
        snprintf(j.mname, sizeof j.mname, "%s", method_names[m]);
    if ((st = zf_backprop_new(net, bp_batch, &bp)))
        goto fail;
    /* another engine than the cpu's runs the forwards and backward passes (the cpu's own functions
     * run on the net directly, as they always have) */
    if (dev.iface != zf_engine_list()[0] &&
        ((st = zft_device_open(&dev, net, bp_batch)) || (st = zf_backprop_set_engine(bp, dev.eng))))
        goto fail;
    j.bp = bp;
    if ((st = zft_mkdirs(out)))
        goto fail;
    int resume = 0;
    {
        char settings[2048];
        snprintf(settings, sizeof settings,
                 "zfviz attribute: the settings of the %s files here\nmodel %s %s %s\ninput %s\ntarget %s %d %d,%d "
                 "prob %d\ncam-layer %d\nbaseline %s steps %d rule %d\nsmoothgrad %d samples %d noise %.17g seed %lld\n",
                 j.mname, net->arch, mo.model ? mo.model : mo.weights ? mo.weights : "random:0",
                 mo.preproc ? mo.preproc : "-", input, layer ? layer : "class", j.t.channel, j.t.y, j.t.x, prob,
                 j.cam_layer, any_ig ? (baseline ? baseline : "black") : "-", any_ig ? steps : 0, (int)rule,
                 (int)over, samples, noise, (long long)seed);
        if ((st = check_settings(&j, settings, &resume)))
            goto fail;
    }
    zft_install_sigint();
    zft_progress bar;
    zft_progress_start(&bar, "attribute", src.n, "img");
    int64_t skipped = 0;
    for (int64_t b0 = 0; b0 < src.n && !st; b0 += per) {
        const int nb = src.n - b0 < per ? (int)(src.n - b0) : per;
        /* A batch resumed is computed whole, so its files are the bytes an uninterrupted run
         * writes whatever the float sums' dependence on the batch. */
        int all = resume;
        for (int k = 0; k < nb && all; k++)
            all = already_done(&j, src.names[b0 + k]);
        if (all) {
            skipped += nb;
            zft_progress_update(&bar, b0 + nb);
            continue;
        }
        for (int k = 0; k < nb && !st; k++) {
            targets[k] = j.t;
            st = source_load(&src, net, b0 + k, xb + (size_t)k * in);
        }
        if (st || (st = compute(&j, j.m, xb, nb, targets, attr, values, values + per)))
            break;
        const size_t out_size = m == M_GRADCAM ? hw : in;
        for (int k = 0; k < nb && !st; k++)
            st = write_one(&j, xb + (size_t)k * in, attr + (size_t)k * out_size, weights + (size_t)k * cam_k,
                           &targets[k], values[k], values[per + k], src.names[b0 + k]);
        if (st)
            break;
        zft_outputs_keep(); /* finished images stay whatever comes later: a rerun resumes after them */
        fflush(stdout);
        zft_progress_update(&bar, b0 + nb);
        if (zf_interrupted && b0 + nb < src.n)
            st = zf_error(ZF_ERR_INTERRUPTED, "interrupted after %lld of %lld images (run it again to go on)",
                          (long long)(b0 + nb), (long long)src.n);
    }
    zft_progress_finish(&bar);
    if (st)
        goto fail;
    if (src.n > 1 || skipped)
        fprintf(stderr, "zfviz attribute: %lld images: %lld done now, %lld finished before\n", (long long)src.n,
                (long long)(src.n - skipped), (long long)skipped);
    rc = 0;
fail:
    if (rc == 1)
        rc = zft_fail("attribute", st);
    zf_paths_free(src.paths, src.n);
    if (src.names)
        for (int64_t i = 0; i < src.n; i++)
            free(src.names[i]);
    free(src.names);
    zf_tensor_free(src.npy);
    zf_backprop_free(bp);
    zft_device_close(&dev);
    free(base);
    free(xb);
    free(attr);
    free(pic);
    free(cam);
    free(weights);
    free(xs);
    free(z);
    free(acc);
    free(targets);
    free(values);
    zf_net_free(net);
    return rc;
}
