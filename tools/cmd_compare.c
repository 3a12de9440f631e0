/* zfviz compare: the first layers of two models on one page (Zeiler & Fergus section 4.1). */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "figure_opts.h"
#include "paper_units.h"
#include "viz_db.h"
#include "zf/alloc.h"
#include "zf/dataset.h"
#include "zf/db.h"
#include "zf/evolve.h"
#include "zf/input.h"
#include "zf/io.h"
#include "zf/viz.h"

const char zf_cmd_compare_summary[] = "compare the first layers of two models on one page (PNG or PDF)";

static void usage(void)
{
    printf("usage: zfviz compare [A [B]] [--layer CONV] [--images DIR|LIST|IMAGE] [--max-images N] [--zoom N]\n"
           "                     [--near-dead F] [--npy DIR] [--no-title] [--font-size PT] [--width W]\n"
           "                     -o FILE.png|FILE.pdf\n\n"
           "Puts the conv1 filters of models A and B side by side at the same pixels per tap and measures\n"
           "what Zeiler & Fergus saw in them (section 4.1): dead and near-dead filters, the per-filter RMS\n"
           "histogram, the mean radially averaged power spectrum with its low/mid/high-frequency shares\n"
           "and, given images, the fraction of conv1 feature maps that never fire (ReLU output 0 at\n"
           "every position of every image).\n\n"
           "A model is ARCH or ARCH=WEIGHTS (weights as for --weights: random:SEED, a .npy folder, a\n"
           ".safetensors file) or an .onnx file. Defaults: A = alexnet, B = zfnet. ARCH alone takes the\n"
           "embedded trained model where there is one (alexnet-mini, zfnet-mini), else random:0.\n"
           "A grey net (alexnet-mini, zfnet-mini: one input channel) shows grey tiles and may be compared\n"
           "with a colour net: each reads the --images its own way (luma or RGB).\n\n"
           "--layer conv2 (or any conv layer above the first) compares that layer in pixels, for the aliasing\n"
           "of Zeiler & Fergus Fig. 6: each unit's strongest activation over the images (default: the first\n"
           "--max-images, default 64, Fashion-MNIST test images) is projected to pixels by the deconvnet and\n"
           "cropped to its receptive field (R x R, placed top left, zeros where the field leaves the image);\n"
           "the spectrum as for conv1, zero-padded to P x P (P the smallest multiple of 32 >= 2R), bands in\n"
           "cycles per pixel. Units that never fire (ReLU 0 everywhere on every image) are dead and have no\n"
           "projection. One page: the nine strongest units' projections of each net beside the image\n"
           "patches under them, the two nets side by side, the numbers in the title; stdout one line per net.\n\n"
           "  --images P        a folder (searched recursively for .jpg/.jpeg/.png, as zfviz scan does), a list\n"
           "                    of image paths one a line (a file, a pipe or -), or one image\n"
           "  --max-images N    use at most N images (default all; 64 with --layer above conv1)\n"
           "  --layer CONV      the conv layer to compare (default the first: conv1's filters)\n"
           "  --npy DIR         with --layer above conv1: DIR/a.npy and DIR/b.npy, the live units' cropped\n"
           "                    projections of A and B (units x C x R x R, float32)\n"
           "  --zoom N          pixels per tap for both grids (default 4)\n"
           "  --near-dead F     near-dead threshold as a fraction of the median RMS (default 0.1)\n" ZFT_FIGURE_HELP
           "  -o, --out FILE    .png or .pdf (its folder is created)\n" ZFT_FORCE_HELP
           "  --store DB        also store the page as a PNG in the database DB (table renderings, kind\n"
           "                    'compare'); -o is then optional\n" ZFT_WAIT_HELP
           ZFT_DEVICE_HELP);
}

typedef struct cmp_ctx {
    const zf_viz_compare_model *a, *b;
    const zf_viz_compare_opts *o;
} cmp_ctx;

static zf_status draw_compare(zf_viz_doc *doc, void *ctx)
{
    const cmp_ctx *c = ctx;
    return zf_viz_compare(doc, c->a, c->b, c->o);
}

/* "alexnet", "zfnet=path/w.safetensors" or "m.onnx" into model options (pointing into spec). */
static void parse_model(char *spec, zft_model_opts *o)
{
    memset(o, 0, sizeof *o);
    size_t n = strlen(spec);
    if (n > 5 && !strcasecmp(spec + n - 5, ".onnx")) {
        o->model = spec;
        return;
    }
    char *eq = strchr(spec, '=');
    if (eq) {
        *eq = '\0';
        o->weights = eq + 1;
    }
    o->arch = spec; /* without weights, as everywhere: the embedded model, else random:0 */
}

/* The images, found as every command finds them (zf_images_find). */
typedef struct path_list {
    char **p;
    int64_t n;
} path_list;

/* Fraction of conv1's rectified maps that are 0 at every position of every image. */
static zf_status never_fire(zf_engine *e, int conv, const path_list *imgs, int n_imgs, float *out)
{
    zf_net *net = zf_engine_net(e);
    const int relu = zf_net_rectified(net, conv);
    const zf_layer *l = &net->layers[conv];
    const size_t hw = (size_t)l->out_h * l->out_w, in_size = (size_t)zf_net_in_size(net);
    int *fired = calloc((size_t)l->out_c, sizeof *fired);
    if (!fired)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    zf_status st = zf_engine_reserve_host(e, 1);
    zft_progress pr;
    zft_progress_start(&pr, net->arch, n_imgs, "img");
    for (int i = 0; !st && i < n_imgs; i++) {
        zf_tensor *x = NULL;
        if ((st = zf_input_load(imgs->p[i], net, &x)))
            break;
        memcpy(net->input, zf_tensor_f32(x), in_size * sizeof(float));
        zf_tensor_free(x);
        if ((st = zf_engine_forward_layers(e, net->input, 1, relu, &relu, 1)))
            break;
        const float *a = zf_net_act(net, relu);
        for (int c = 0; c < l->out_c; c++)
            for (size_t p = 0; !fired[c] && p < hw; p++)
                fired[c] = a[c * hw + p] > 0;
        zft_progress_update(&pr, i + 1);
        if (zf_interrupted)
            st = zf_error(ZF_ERR_INTERRUPTED, "interrupted after %d of %d images", i + 1, n_imgs);
    }
    zft_progress_finish(&pr);
    int never = 0;
    for (int c = 0; c < l->out_c; c++)
        never += !fired[c];
    free(fired);
    *out = (float)never / l->out_c;
    return st;
}

typedef struct side {
    char spec[1024];
    zft_model_opts mo;
    zf_net *net;
    zf_engine *eng; /* the chosen engine on net */
    int conv;
    char name[1200];
} side;

static zf_status load_side(side *s)
{
    zft_model_ref ref;
    zf_status st = zft_load_model_ref(&s->mo, &s->net, &ref);
    if (st)
        return st;
    s->conv = -1;
    for (int i = 0; i < s->net->n_layers && s->conv < 0; i++)
        if (s->net->layers[i].op == ZF_OP_CONV)
            s->conv = i;
    if (s->conv < 0)
        return zf_error(ZF_ERR_ARG, "%s has no conv layer", s->net->arch);
    snprintf(s->name, sizeof s->name, "%s", ref.label);
    return ZF_OK;
}

static zf_status write_deep_npy(const char *dir, const char *name, const zft_deep *d, int c)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    zf_status st = zft_output_prepare(path);
    if (st)
        return st;
    const int64_t shape[4] = {d->live, c, d->rf, d->rf};
    return zf_npy_write_raw(path, ZF_DTYPE_F32, d->proj, 4, shape);
}

int zf_cmd_compare(int argc, char **argv)
{
    zf_viz_compare_opts co = zf_viz_compare_defaults();
    const char *images = NULL, *out = NULL, *store = NULL, *layer = NULL, *npy_dir = NULL;
    long max_images = 0;
    const zft_opt opts[] = {ZFT_STR("images", 'i', &images),
                            ZFT_LONG("max-images", 'n', 1, 1e18, "a positive number", &max_images),
                            ZFT_INT("zoom", 'z', 1, 64, "1..64 pixels per tap", &co.zoom),
                            ZFT_NEAR_DEAD_OPT(&co.near_dead), ZFT_STR("out", 'o', &out),
                            ZFT_STR("store", 'S', &store), ZFT_STR("layer", 'L', &layer),
                            ZFT_STR("npy", 'N', &npy_dir), {0}};
    zft_device dev = {0};
    zft_args a = {.cmd = "compare", .argc = argc, .argv = argv, .shortopts = "ho:", .opts = opts,
                  .usage = usage, .style = &co.style, .device = &dev, .shared = ZFT_WITH_FORCE | ZFT_WITH_WAIT,
                  .operands = -1};
    if (zft_args_parse(&a))
        return a.rc;
    if (argc - optind > 2)
        return zft_usage_error("compare", "at most two models, got '%s' too", argv[optind + 2]);
    if (!out && !store)
        return zft_usage_error("compare", "-o FILE.png or FILE.pdf (or --store DB) is required");
    zf_viz_format fmt;
    if (out && zf_viz_format_of(out, &fmt))
        return zft_usage_error("compare", "%s", zf_last_error());
    if (out && zft_output_check(out)) /* before any work: a file zfviz may not replace */
        return zft_fail("compare", ZF_ERR_IO);

    side sides[2];
    memset(sides, 0, sizeof sides);
    snprintf(sides[0].spec, sizeof sides[0].spec, "%s", optind < argc ? argv[optind] : "alexnet");
    snprintf(sides[1].spec, sizeof sides[1].spec, "%s", optind + 1 < argc ? argv[optind + 1] : "zfnet");
    path_list imgs = {0};
    zf_viz_doc *doc = NULL;
    int rc = 1;
    zf_status st = ZF_OK;
    if (images && (st = zf_images_find(images, &imgs.p, &imgs.n)))
        goto fail;
    if (imgs.n > INT32_MAX) {
        st = zf_error(ZF_ERR_UNSUPPORTED, "%s: %lld images are too many", images, (long long)imgs.n);
        goto fail;
    }
    int n_imgs = (int)imgs.n;
    if (max_images > 0 && max_images < n_imgs)
        n_imgs = (int)max_images;
    for (int i = 0; i < 2; i++) {
        parse_model(sides[i].spec, &sides[i].mo);
        if ((st = load_side(&sides[i])))
            goto fail;
    }
    int deep_conv[2] = {-1, -1};
    for (int i = 0; layer && i < 2; i++) {
        const zf_net *net = sides[i].net;
        int cv = zf_net_find_conv(net, layer);
        if (cv < 0 || net->layers[cv].op != ZF_OP_CONV) {
            rc = zft_usage_error("compare", "--layer %s: not a conv layer of %s", layer, sides[i].name);
            goto fail;
        }
        if (cv != sides[i].conv)
            deep_conv[i] = cv;
    }
    if ((deep_conv[0] < 0) != (deep_conv[1] < 0)) {
        rc = zft_usage_error("compare", "--layer %s is the first conv layer of one model only", layer);
        goto fail;
    }
    if (npy_dir && deep_conv[0] < 0) {
        rc = zft_usage_error("compare", "--npy needs --layer above the first conv layer");
        goto fail;
    }
    if (deep_conv[0] >= 0) {
        zft_deep d[2];
        memset(d, 0, sizeof d);
        zft_deep_fig df;
        const int limit = max_images > 0 ? (int)(max_images < INT32_MAX ? max_images : INT32_MAX) : images ? 0 : 64;
        for (int i = 0; i < 2 && !st; i++)
            if (!(st = zft_device_open_another(&dev, sides[i].net, 16, &sides[i].eng)))
                st = zft_deep_side(sides[i].eng, deep_conv[i], imgs.p, imgs.n, limit, &d[i]);
        for (int i = 0; i < 2 && !st && npy_dir; i++)
            st = write_deep_npy(npy_dir, i ? "b" : "a", &d[i], sides[i].net->in_c);
        if (!st) {
            const char *names[2] = {sides[0].name, sides[1].name};
            const zf_net *nets[2] = {sides[0].net, sides[1].net};
            zft_deep_fig_init(&df, layer, names, nets, deep_conv, d, &co.style);
            if (out && ((st = zft_output_prepare(out)) || (st = zf_viz_doc_open(out, &doc)) ||
                        (st = zft_deep_draw(doc, &df)) || (st = zf_viz_doc_finish(doc))))
                ;
            else if (store) {
                char what[2800];
                snprintf(what, sizeof what, "%s of %s and %s in pixels: aliasing (Zeiler & Fergus Fig. 6)", layer,
                         sides[0].name, sides[1].name);
                zf_db_rendering r = {-1, -1, layer, -1, -1, "compare", what, 0, 0};
                st = zft_store_rendering_at(store, &r, zft_deep_draw, &df);
            }
        }
        for (int i = 0; i < 2 && !st; i++)
            zft_deep_print(stdout, sides[i].name, sides[i].net->layers[deep_conv[i]].name, &d[i]);
        for (int i = 0; i < 2; i++)
            zft_deep_free(&d[i]);
        if (st)
            goto fail;
        if (out)
            fprintf(stderr, "wrote %s\n", out);
        rc = 0;
        goto fail;
    }
    zf_viz_compare_model m[2];
    for (int i = 0; i < 2; i++) {
        const zf_net *net = sides[i].net;
        const zf_layer *l = &net->layers[sides[i].conv];
        zf_viz_compare_model mm = {sides[i].name, l->weight, l->out_c, l->in_c / (l->groups > 0 ? l->groups : 1),
                                   l->win.kh, l->win.kw, l->win.sh, net->pre.order == ZF_COLOR_BGR, -1, 0};
        m[i] = mm;
        if (n_imgs > 0) { /* the only part that runs the nets: their engines are opened for it */
            if ((st = zft_device_open_another(&dev, sides[i].net, 1, &sides[i].eng)) ||
                (st = never_fire(sides[i].eng, sides[i].conv, &imgs, n_imgs, &m[i].never_fire)))
                goto fail;
            m[i].images = n_imgs;
        }
    }
    cmp_ctx cc = {&m[0], &m[1], &co};
    if (out && ((st = zft_output_prepare(out)) || (st = zf_viz_doc_open(out, &doc)) || (st = draw_compare(doc, &cc)) || (st = zf_viz_doc_finish(doc))))
        goto fail;
    if (store) {
        char what[2600];
        snprintf(what, sizeof what,
                 "first-layer comparison of %s and %s: conv1 grids at %d px per tap, RMS histogram, radial power "
                 "spectrum%s",
                 m[0].name, m[1].name, co.zoom, n_imgs > 0 ? ", never-firing maps over the images" : "");
        zf_db_rendering r = {-1, -1, "conv1", -1, -1, "compare", what, 0, 0};
        if ((st = zft_store_rendering_at(store, &r, draw_compare, &cc)))
            goto fail;
    }
    for (int i = 0; i < 2; i++) {
        zf_viz_compare_stats s;
        if ((st = zf_viz_compare_stats_of(&s, &m[i], co.near_dead)))
            goto fail;
        printf("%s: %d filters, %d dead, %d near-dead, frequency shares low %.1f%% mid %.1f%% high %.1f%%", m[i].name,
               s.filters, s.dead, s.near_dead, 100 * s.spectrum.low, 100 * s.spectrum.mid, 100 * s.spectrum.high);
        if (m[i].never_fire >= 0)
            printf(", never fire %.1f%% (%d image%s)", 100.0 * m[i].never_fire, m[i].images, m[i].images == 1 ? "" : "s");
        printf("\n");
    }
    if (out)
        fprintf(stderr, "wrote %s\n", out);
    rc = 0;
fail:
    if (rc == 1)
        rc = zft_fail("compare", st);
    zf_viz_doc_free(doc);
    for (int i = 0; i < 2; i++) {
        zf_engine_close(sides[i].eng);
        zf_net_free(sides[i].net);
    }
    zf_paths_free(imgs.p, imgs.n);
    return rc;
}
