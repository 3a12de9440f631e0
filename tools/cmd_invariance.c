/* zfviz invariance: Zeiler & Fergus Fig. 5 for a model and a few images: vertical translation,
 * scale and rotation sweeps, each transformed image's distance to the original at two layers and
 * the probability of its class; one figure, .npy arrays and a CSV. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "figure_opts.h"
#include "paper_exp.h"
#include "zf/file.h"
#include "zf/io.h"
#include "zf/paper.h"
#include "zf/viz.h"
#include "zf/viz_paper.h"

const char zf_cmd_invariance_summary[] = "feature invariance to shifts, scaling and rotation (Zeiler & Fergus Fig. 5)";

static const char usage_text[] =
    "usage: zfviz invariance [--arch A --weights W | --model F] IMAGE... --out DIR\n"
    "                        [--translate LO:HI:N] [--scale LO:HI:N] [--rotate LO:HI:N]\n"
    "                        [--transforms LIST] [--layers A,B] [--class K] [--fill V] [--pdf F]\n\n"
    "Zeiler & Fergus's feature invariance (section 4, Fig. 5). Each image (as the net sees it, after\n"
    "its resize and normalisation) is shifted vertically, scaled about its centre and rotated about\n"
    "its centre by N evenly spaced amounts from LO to HI (bilinear resampling; what comes in from\n"
    "outside the image is --fill, 0 being the mean colour). For every transformed image: the Euclidean\n"
    "distance between its output and the untransformed image's at two layers (default: the first conv\n"
    "layer's rectified output, the paper's layer 1, and the rectified output of the fully connected\n"
    "layer before the last, its layer 7), the probability of the image's class and the top class.\n\n"
    "Writes DIR/invariance.png (Fig. 5: a row per transform: thumbnails of the first image, the two\n"
    "distances and the probability against the amount, a line per image), DIR/invariance.csv\n"
    "(a 'zfviz' line, then image,class,transform,amount,dist_A,dist_B,prob,top a row each),\n"
    "DIR/<transform>.npy (float32, images x N x 3: dist_A, dist_B, prob) and\n"
    "DIR/<transform>_amounts.npy (float32, N).\n\n" ZFT_MODEL_HELP
    "  IMAGE...          image files, .npy inputs (n x C x H x W), folders or lists of images\n"
    "  --out DIR         output folder (created)\n" ZFT_FORCE_HELP
    ZFT_DEVICE_HELP
    "  --translate R     vertical shift in input pixels, positive moves the image down (default\n"
    "                    -60:60:13 at 224 pixels high, the same fraction at other sizes: -30:30:13\n"
    "                    for the mini nets' 112)\n"
    "  --scale R         zoom factor about the centre (default 1:1.8:9)\n"
    "  --rotate R        degrees anticlockwise (default 0:360:37)\n"
    "  --transforms L    which sweeps, comma-separated: translate,scale,rotate (default all)\n"
    "  --layers A,B      the two layers compared (names as zfviz info shows them)\n"
    "  --class K         class whose probability is followed, for every image (default: each\n"
    "                    image's top class untransformed)\n"
    "  --fill V          value shown where the transform leaves the image (default 0, the mean)\n"
    "  --pdf F           also draw the figure as a PDF\n"
    "  options of the figure:\n" ZFT_FIGURE_HELP;

static void usage(void) { fputs(usage_text, stdout); }

enum { OPT_TRANSLATE = 256, OPT_SCALE, OPT_ROTATE, OPT_TRANSFORMS, OPT_LAYERS, OPT_CLASS, OPT_FILL, OPT_PDF };

/* "LO:HI:N" with N >= 1 (N == 1 takes LO); -1 when it is not one. */
static int parse_range(const char *s, zft_sweep *w)
{
    char *end;
    w->lo = strtod(s, &end);
    if (end == s || *end != ':')
        return -1;
    s = end + 1;
    w->hi = strtod(s, &end);
    if (end == s || *end != ':')
        return -1;
    s = end + 1;
    long n = strtol(s, &end, 10);
    if (end == s || *end || n < 1 || n > 100000 || !isfinite(w->lo) || !isfinite(w->hi))
        return -1;
    w->n = (int)n;
    w->given = 1;
    return 0;
}

/* Fig. 5 into a file of its own. */
static zf_status write_figure(const char *path, const zf_net *net, const char *model, const zft_image_set *im,
                              const zft_sweep *sw, const int *layers, float fill, const zf_viz_style *style)
{
    const int planes = zf_viz_planes(&net->pre);
    if (net->in_c != planes)
        return zf_error(ZF_ERR_SHAPE, "%s: %s has %d input channels but its preprocessing makes %d: cannot "
                        "show its input as an image", path, net->arch, net->in_c, planes);
    zf_viz_doc *doc = NULL;
    zf_status st;
    if (!(st = zft_output_prepare(path)) && !(st = zf_viz_doc_open(path, &doc)) &&
        !(st = zft_invariance_draw(doc, net, model, im, sw, layers, fill, style)))
        st = zf_viz_doc_finish(doc);
    zf_viz_doc_free(doc);
    return st;
}

/* A usage error (exit 2) for bad parameters the library refused, else the command's failure. */
static int fail(zf_status st)
{
    if (st == ZF_ERR_ARG)
        return zft_usage_error("invariance", "%s", zf_last_error());
    return zft_fail("invariance", st);
}

int zf_cmd_invariance(int argc, char **argv)
{
    zft_model_opts mo = {0};
    const char *out = NULL, *pdf = NULL, *layers_arg = NULL, *transforms = NULL;
    zf_invariance_params p;
    zf_invariance_params_default(&p);
    zf_viz_style style = {0};
    zft_sweep sw[ZF_TRANSFORM_COUNT] = {{0}};
    const zft_opt opts[] = {ZFT_STR("out", 'o', &out),
                            ZFT_OWN("translate", OPT_TRANSLATE, required_argument),
                            ZFT_OWN("scale", OPT_SCALE, required_argument),
                            ZFT_OWN("rotate", OPT_ROTATE, required_argument),
                            ZFT_STR("transforms", OPT_TRANSFORMS, &transforms),
                            ZFT_STR("layers", OPT_LAYERS, &layers_arg),
                            ZFT_INT("class", OPT_CLASS, 0, 1 << 30, "a class index", &p.cls),
                            ZFT_FLOAT("fill", OPT_FILL, -FLT_MAX, FLT_MAX, "a finite number", &p.fill),
                            ZFT_STR("pdf", OPT_PDF, &pdf), {0}};
    zft_device dev = {0};
    zft_args a = {.cmd = "invariance", .argc = argc, .argv = argv, .shortopts = "ho:", .opts = opts,
                  .usage = usage, .model = &mo, .style = &style, .device = &dev, .shared = ZFT_WITH_FORCE,
                  .operands = -1};
    int c;
    while ((c = zft_args_next(&a)) != -1) {
        const int t = c == OPT_TRANSLATE ? 0 : c == OPT_SCALE ? 1 : c == OPT_ROTATE ? 2 : -1;
        if (t < 0)
            return a.rc;
        if (parse_range(optarg, &sw[t]))
            return zft_usage_error("invariance", "--%s needs LO:HI:N with N a whole number of steps from 1, got '%s'",
                                   a.name, optarg);
    }
    if (!out)
        return zft_usage_error("invariance", "--out is required");
    if (optind >= argc)
        return zft_usage_error("invariance", "no images given");
    if (sw[1].given && !(sw[1].lo > 0 && sw[1].hi > 0))
        return zft_usage_error("invariance", "--scale needs positive factors, got %g:%g", sw[1].lo, sw[1].hi);
    if (transforms) {
        char buf[256];
        const char *items[8];
        const int k = zft_split_list(transforms, buf, sizeof buf, items, 8);
        for (int i = 0; i < k; i++) {
            int found = 0;
            for (int t = 0; t < ZF_TRANSFORM_COUNT; t++)
                if (!strcmp(items[i], zf_transform_name((zf_transform)t)))
                    sw[t].on = found = 1;
            if (!found)
                return zft_usage_error("invariance", "--transforms takes translate, scale and rotate, got '%s'",
                                       items[i]);
        }
        if (k < 1)
            return zft_usage_error("invariance", "--transforms names no transform");
    } else {
        for (int t = 0; t < ZF_TRANSFORM_COUNT; t++)
            sw[t].on = 1;
    }
    char fig[4096], csv[4096];
    snprintf(fig, sizeof fig, "%s/invariance.png", out);
    snprintf(csv, sizeof csv, "%s/invariance.csv", out);
    if (zft_output_check(fig) || zft_output_check(csv) || (pdf && zft_output_check(pdf)))
        return zft_fail("invariance", ZF_ERR_IO);
    for (int t = 0; t < ZF_TRANSFORM_COUNT; t++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", out, zf_transform_name((zf_transform)t));
        if (sw[t].on && zft_output_check(path))
            return zft_fail("invariance", ZF_ERR_IO);
        snprintf(path, sizeof path, "%s/%s_amounts.npy", out, zf_transform_name((zf_transform)t));
        if (sw[t].on && zft_output_check(path))
            return zft_fail("invariance", ZF_ERR_IO);
    }

    zf_net *net = NULL;
    zft_model_ref ref;
    zft_image_set im = {0};
    int *cls = NULL, rc = 1;
    zf_status st = zft_load_model_ref(&mo, &net, &ref);
    if (st)
        goto fail;
    if (layers_arg) {
        char buf[256];
        const char *items[4];
        if (zft_split_list(layers_arg, buf, sizeof buf, items, 4) != 2) {
            st = zf_error(ZF_ERR_ARG, "--layers needs two layer names A,B, got '%s'", layers_arg);
            goto fail;
        }
        for (int l = 0; l < 2; l++)
            if ((p.layers[l] = zf_net_find(net, items[l])) < 0) {
                st = zf_error(ZF_ERR_ARG, "%s has no layer '%s' (see zfviz info)", net->arch, items[l]);
                goto fail;
            }
    }
    if ((st = zft_image_set_load(net, argv + optind, argc - optind, &im)))
        goto fail;
    zft_invariance_ranges(sw, net);
    if (!(cls = malloc(sizeof(int) * im.n))) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int layers[2] = {-1, -1};
    const double t0 = zft_now();
    if ((st = zft_device_open(&dev, net, p.batch > 0 ? p.batch : 1)) ||
        (st = zft_invariance_run(dev.eng, &im, sw, &p, layers, cls)))
        goto fail;
    const double secs = zft_now() - t0;
    if ((st = zft_mkdirs(out)) || (st = zft_invariance_write_npys(out, &im, sw)) ||
        (st = zft_invariance_write_csv(csv, net, ref.label, &im, sw, cls, layers)) ||
        (st = write_figure(fig, net, ref.label, &im, sw, layers, p.fill, &style)) ||
        (pdf && (st = write_figure(pdf, net, ref.label, &im, sw, layers, p.fill, &style))))
        goto fail;

    /* What the figure shows, in numbers: the largest distance and the lowest probability per sweep. */
    zft_invariance_print(stdout, net, ref.label, &im, sw, layers, secs);
    fprintf(stderr, "wrote %s, %s and the .npy arrays\n", fig, csv);
    rc = 0;
fail:
    if (rc)
        rc = fail(st);
    zft_invariance_free(sw);
    free(cls);
    zft_image_set_free(&im);
    zft_device_close(&dev);
    zf_net_free(net);
    return rc;
}
