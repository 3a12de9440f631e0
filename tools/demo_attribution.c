/* The attribution page of zfviz demo: gradient, guided backpropagation, the deconvnet, Grad-CAM,
 * guided Grad-CAM, integrated gradients and SmoothGrad of the same images through both embedded
 * nets, for each image's top class, with zfviz attribute's defaults (Grad-CAM at the last conv's
 * ReLU, integrated gradients from a black image in 50 midpoint steps, SmoothGrad of the gradient
 * over 50 samples at noise 0.15 of the value range, seed 0: deterministic). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "demo_attribution.h"
#include "zf/attribution.h"
#include "zf/file.h"
#include "zf/io.h"

#define IG_STEPS 50
#define SG_SAMPLES 50
#define SG_NOISE 0.15
#define SG_SEED 0
#define BATCH 16

const char *const zft_demo_attr_methods[ZFT_DEMO_ATTR_METHODS] = {
    "gradient", "guided-backprop", "deconvnet", "gradcam", "guided-gradcam", "integrated-gradients", "smoothgrad"};
/* the headings, short enough for a column */
static const char *const headings[ZFT_DEMO_ATTR_METHODS] = {
    "gradient", "guided backprop", "deconvnet", "Grad-CAM", "guided Grad-CAM", "integrated grads", "SmoothGrad"};

static void join(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

zf_status zft_demo_attr_check(const char *dir)
{
    char p[PATH_MAX];
    zf_status st;
    join(p, sizeof p, dir, "attribution.png");
    if ((st = zf_file_check(p)))
        return st;
    join(p, sizeof p, dir, "attribution.npy");
    return zf_file_check(p);
}

/* max over channels of |a| into map (hw). */
static void max_abs(float *map, const float *a, int c, size_t hw)
{
    for (size_t p = 0; p < hw; p++) {
        float v = 0;
        for (int k = 0; k < c; k++)
            v = fmaxf(v, fabsf(a[(size_t)k * hw + p]));
        map[p] = v;
    }
}

static double map_max(const float *m, size_t n)
{
    double top = 0;
    for (size_t i = 0; i < n; i++)
        top = m[i] > top ? m[i] : top;
    return top;
}

static char *dup_text(const char *s)
{
    char *r = strdup(s);
    if (!r)
        zf_error(ZF_ERR_NOMEM, "out of memory");
    return r;
}

/* Every method on one preprocessed image x through net: maps (methods, h, w), the numbers under
 * each, the row's label. */
static zf_status one_row(zft_demo_attr *a, int row, zf_backprop *bp, zf_net *net, const char *net_name,
                         const float *x, const float *black, int cam_layer, const char *file, float *attr,
                         float *cam, float *noisy, float *z, double *acc)
{
    const size_t in = (size_t)zf_net_in_size(net), hw = (size_t)net->in_h * net->in_w;
    float *maps = a->maps + (size_t)row * ZFT_DEMO_ATTR_METHODS * hw;
    char nums[ZFT_DEMO_ATTR_METHODS][160];
    const char *cam_name = net->layers[cam_layer].name;
    zf_attr_target t = {zf_attr_logits_layer(net, 0), -1, -1, -1};
    double f = 0, f_base = 0, v;
    zf_status st = zf_attr_choose(bp, x, 1, &t);
    if (!st)
        st = zf_attr_value(bp, x, &t, &f);
    /* gradient, guided backpropagation, deconvnet */
    static const zf_relu_rule rules[3] = {ZF_RELU_RULE_GRADIENT, ZF_RELU_RULE_GUIDED, ZF_RELU_RULE_DECONVNET};
    for (int m = 0; m < 3 && !st; m++)
        if (!(st = zf_attr_gradient_each(bp, attr, &v, x, 1, &t, rules[m]))) {
            max_abs(maps + m * hw, attr, net->in_c, hw);
            snprintf(nums[m], sizeof nums[m], "max %.3g", map_max(maps + m * hw, hw));
        }
    /* Grad-CAM and guided Grad-CAM (guided backpropagation times the map) */
    if (!st)
        st = zf_attr_gradcam_each(bp, cam, NULL, NULL, &v, x, 1, cam_layer, &t);
    if (!st) {
        memcpy(maps + 3 * hw, cam, sizeof(float) * hw);
        snprintf(nums[3], sizeof nums[3], "max %.3g\nat %s, %d maps", map_max(cam, hw), cam_name,
                 net->layers[cam_layer].out_c);
        st = zf_attr_gradient_each(bp, attr, &v, x, 1, &t, ZF_RELU_RULE_GUIDED);
    }
    if (!st) {
        for (int c = 0; c < net->in_c; c++)
            for (size_t p = 0; p < hw; p++)
                attr[(size_t)c * hw + p] *= cam[p];
        max_abs(maps + 4 * hw, attr, net->in_c, hw);
        snprintf(nums[4], sizeof nums[4], "max %.3g\nguided x Grad-CAM", map_max(maps + 4 * hw, hw));
        st = zf_attr_integrated_gradients(bp, attr, &v, &f_base, x, black, &t, IG_STEPS, ZF_IG_MIDPOINT);
    }
    if (!st) {
        double sum = 0;
        for (size_t i = 0; i < in; i++)
            sum += attr[i];
        max_abs(maps + 5 * hw, attr, net->in_c, hw);
        snprintf(nums[5], sizeof nums[5], "max %.3g, %d steps\ncompleteness err %.2g",
                 map_max(maps + 5 * hw, hw), IG_STEPS, fabs(sum - (f - f_base)));
    }
    /* SmoothGrad of the gradient, as zfviz attribute --method smoothgrad computes it */
    if (!st) {
        float lo = x[0], hi = x[0];
        for (size_t k = 1; k < in; k++) {
            lo = x[k] < lo ? x[k] : lo;
            hi = x[k] > hi ? x[k] : hi;
        }
        const float sigma = (float)(SG_NOISE * ((double)hi - lo));
        memset(acc, 0, sizeof(double) * in);
        /* one noisy copy per pass, each sample's gradient added in sample order, as zfviz
         * attribute computes it: copies batched together round the GEMMs otherwise, and near a
         * ReLU or max-pool tie that moves the map (the page is the command's bits) */
        enum { SG_BATCH = 1 };
        zf_attr_target tb[SG_BATCH];
        double vb[SG_BATCH];
        for (int s0 = 0; s0 < SG_SAMPLES && !st; s0 += SG_BATCH) {
            const int n = SG_SAMPLES - s0 < SG_BATCH ? SG_SAMPLES - s0 : SG_BATCH;
            for (int j = 0; j < n; j++) {
                tb[j] = t;
                zf_attr_noise(z, in, SG_SEED, s0 + j);
                for (size_t k = 0; k < in; k++)
                    noisy[(size_t)j * in + k] = x[k] + sigma * z[k];
            }
            if (!(st = zf_attr_gradient_each(bp, attr, vb, noisy, n, tb, ZF_RELU_RULE_GRADIENT)))
                for (int j = 0; j < n; j++)
                    for (size_t k = 0; k < in; k++)
                        acc[k] += attr[(size_t)j * in + k];
        }
        for (size_t k = 0; k < in; k++)
            attr[k] = (float)(acc[k] / SG_SAMPLES);
        if (!st) {
            max_abs(maps + 6 * hw, attr, net->in_c, hw);
            snprintf(nums[6], sizeof nums[6], "max %.3g\n%d x noise %.2g, seed %d", map_max(maps + 6 * hw, hw),
                     SG_SAMPLES, SG_NOISE, SG_SEED);
        }
    }
    if (st)
        return st;
    char cname[160], label[512];
    snprintf(label, sizeof label, "%s\n%s\nclass %s\nscore F = %.4g", net_name, file,
             zft_class_text(cname, sizeof cname, net, t.channel), f);
    if (!(a->labels[row] = dup_text(label)))
        return ZF_ERR_NOMEM;
    for (int m = 0; m < ZFT_DEMO_ATTR_METHODS; m++)
        if (!(a->numbers[(size_t)row * ZFT_DEMO_ATTR_METHODS + m] = dup_text(nums[m])))
            return ZF_ERR_NOMEM;
    if (!(a->images[row] = zf_image_new(net->in_w, net->in_h)))
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    zf_viz_input_to_rgb(a->images[row]->rgb, x, &net->pre, net->in_h, net->in_w);
    return ZF_OK;
}

static zf_status net_rows(zft_demo_attr *a, int first_row, zf_engine *e, const char *net_name, char *const *paths,
                          int n_img)
{
    zf_net *net = zf_engine_net(e);
    const size_t in = (size_t)zf_net_in_size(net), hw = (size_t)net->in_h * net->in_w;
    if (net->in_h != a->h || net->in_w != a->w)
        return zf_error(ZF_ERR_SHAPE, "%s: input %dx%d, the other net's is %dx%d", net_name, net->in_w, net->in_h,
                        a->w, a->h);
    if (zf_viz_planes(&net->pre) != net->in_c)
        return zf_error(ZF_ERR_SHAPE, "%s: its input cannot be shown as an image", net_name);
    int cam_layer = -1;
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].op == ZF_OP_CONV)
            cam_layer = i;
    if (cam_layer < 0)
        return zf_error(ZF_ERR_ARG, "%s has no conv layer for Grad-CAM", net_name);
    cam_layer = zf_net_rectified(net, cam_layer);
    zf_backprop *bp = NULL;
    float *buf = malloc(sizeof(float) * ((3 + 2 * BATCH) * in + hw));
    double *acc = malloc(sizeof(double) * in);
    zf_status st = !buf || !acc ? zf_error(ZF_ERR_NOMEM, "out of memory") : zf_backprop_new(net, BATCH, &bp);
    /* on another engine than the CPU's, the methods' passes run there (as zfviz attribute --device) */
    if (!st && strcmp(zf_engine_name(e), "cpu") && !(st = zf_engine_reserve(e, BATCH)))
        st = zf_backprop_set_engine(bp, e);
    float *black = buf, *z = buf + in, *x = buf + 2 * in, *attr = buf + 3 * in, *noisy = attr + BATCH * in,
          *cam = noisy + BATCH * in;
    if (!st) /* pixel 0 through the preprocessing, as zfviz attribute's black baseline */
        for (int c = 0; c < net->in_c; c++) {
            const int rgb = net->pre.order == ZF_COLOR_GREY ? 0 : net->pre.order == ZF_COLOR_BGR ? 2 - c : c;
            const float v = (0.0f - net->pre.mean[rgb]) / net->pre.std[rgb];
            for (size_t p = 0; p < hw; p++)
                black[(size_t)c * hw + p] = v;
        }
    for (int i = 0; i < n_img && !st; i++) {
        zf_tensor *t = NULL;
        if (!(st = zf_input_load(paths[i], net, &t))) {
            memcpy(x, zf_tensor_f32(t), sizeof(float) * in);
            const char *slash = strrchr(paths[i], '/');
            st = one_row(a, first_row + i, bp, net, net_name, x, black, cam_layer, slash ? slash + 1 : paths[i], attr,
                         cam, noisy, z, acc);
        }
        zf_tensor_free(t);
    }
    zf_backprop_free(bp);
    free(buf);
    free(acc);
    return st;
}

zf_status zft_demo_attr_run(zft_demo_attr *a, zf_engine *const *engines, const char *const *net_names, int n_nets,
                            char *const *paths, int n_img, const char *dir, const zf_viz_style *style)
{
    memset(a, 0, sizeof *a);
    if (n_nets < 1 || n_img < 1)
        return zf_error(ZF_ERR_ARG, "the attribution page needs a net and an image");
    a->rows = n_nets * n_img;
    a->w = zf_engine_net(engines[0])->in_w;
    a->h = zf_engine_net(engines[0])->in_h;
    const size_t hw = (size_t)a->w * a->h;
    a->images = calloc((size_t)a->rows, sizeof *a->images);
    a->labels = calloc((size_t)a->rows, sizeof *a->labels);
    a->numbers = calloc((size_t)a->rows * ZFT_DEMO_ATTR_METHODS, sizeof *a->numbers);
    a->maps = calloc((size_t)a->rows * ZFT_DEMO_ATTR_METHODS * hw, sizeof *a->maps);
    if (!a->images || !a->labels || !a->numbers || !a->maps)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    zf_status st = ZF_OK;
    for (int k = 0; k < n_nets && !st; k++)
        st = net_rows(a, k * n_img, engines[k], net_names[k], paths, n_img);
    if (st)
        return st;
    zf_viz_attr_grid_in in = {"Attribution methods on the same images, for each net's top class",
                              a->rows, ZFT_DEMO_ATTR_METHODS, a->w, a->h, headings,
                              (const char *const *)a->labels, (const zf_image *const *)a->images, a->maps,
                              (const char *const *)a->numbers};
    a->in = in;
    char p[PATH_MAX];
    zf_viz_doc *doc = NULL;
    join(p, sizeof p, dir, "attribution.png");
    if (!(st = zf_viz_doc_open(p, &doc)) && !(st = zft_demo_attr_figure(doc, a, style)))
        st = zf_viz_doc_finish(doc);
    zf_viz_doc_free(doc);
    /* rows net-major, as in the figure */
    const int64_t shape[4] = {a->rows, ZFT_DEMO_ATTR_METHODS, a->h, a->w};
    join(p, sizeof p, dir, "attribution.npy");
    if (!st && !(st = zft_output_prepare(p)))
        st = zf_npy_write_raw(p, ZF_DTYPE_F32, a->maps, 4, shape);
    if (!st) {
        printf("  rows of attribution.npy and .png: each net on");
        for (int i = 0; i < n_img; i++) {
            const char *slash = strrchr(paths[i], '/');
            printf(" %s", slash ? slash + 1 : paths[i]);
        }
        printf("\n");
    }
    return st;
}

zf_status zft_demo_attr_figure(zf_viz_doc *doc, const zft_demo_attr *a, const zf_viz_style *style)
{
    return zf_viz_attr_grid(doc, &a->in, style);
}

void zft_demo_attr_free(zft_demo_attr *a)
{
    for (int r = 0; r < a->rows; r++) {
        if (a->images)
            zf_image_free(a->images[r]);
        if (a->labels)
            free(a->labels[r]);
        for (int m = 0; m < ZFT_DEMO_ATTR_METHODS && a->numbers; m++)
            free(a->numbers[(size_t)r * ZFT_DEMO_ATTR_METHODS + m]);
    }
    free(a->images);
    free(a->labels);
    free(a->numbers);
    free(a->maps);
    memset(a, 0, sizeof *a);
}
