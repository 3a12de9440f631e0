/* zfviz topk: a unit's strongest examples from a scan database; with --deconv, their deconvnet
 * projections and image patches, cropped to the receptive field, stored as PNG renderings. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "viz_db.h"
#include "zf/db.h"

const char zf_cmd_topk_summary[] = "a unit's top examples from a scan; --deconv stores projections";

static void usage(void)
{
    printf(
        "usage: zfviz topk --db OUT.db --layer L --unit C [--run ID] [--deconv [--lrn-backward]\n"
        "                  [--arch A --weights W | --model F] [--reroot OLD=NEW]]\n\n"
        "Prints the unit's strongest examples from a scan (one per image, best first): score\n"
        "(the value before the ReLU), position in the layer's output, receptive field in input\n"
        "pixels, image. With --deconv, projects each to pixel space with the deconvnet\n"
        "(Zeiler & Fergus), crops it and the input patch to the receptive field, and stores both\n"
        "in the database as PNG renderings (table renderings, kinds 'deconv' and 'patch').\n\n"
        "  --db F            the scan database\n" ZFT_WAIT_HELP
        "  --layer L         a scanned layer (conv5, fc6, ...)\n"
        "  --unit C          the unit (channel) number\n"
        "  --run ID          which scan (default: the newest that covers the layer)\n"
        "  --deconv          project and store renderings (conv layers)\n"
        "  --lrn-backward    the true LRN backward on the way down (default: identity)\n" ZFT_REROOT_HELP
        "  the model defaults to the one the run scanned (its arch and weights as recorded):\n" ZFT_MODEL_HELP
        ZFT_DEVICE_HELP "  -h, --help        this help\n");
}

/* Channel j of the net's input holds RGB channel rgb_of(j); a grey net's one channel is all three. */
static int rgb_of(const zf_net *net, int j) { return net->pre.order == ZF_COLOR_BGR ? 2 - j : j; }

/* Sets the colour channels that input channel c of the net shows: its own, or all three for grey. */
static void put(const zf_net *net, uint8_t *px, int c, float v)
{
    uint8_t b = (uint8_t)fminf(255, fmaxf(0, roundf(v)));
    if (net->in_c == 1)
        px[0] = px[1] = px[2] = b;
    else
        px[rgb_of(net, c)] = b;
}

/* The reconstruction inside `box`, scaled so the largest |value| in the crop is 0 or 255 and
 * zero is mid-grey (the usual way deconvnet projections are shown); grey for a grey net. */
static zf_image *render_deconv(const zf_net *net, const float *rec, zf_box box)
{
    int w = box.x1 - box.x0, h = box.y1 - box.y0, H = net->in_h, W = net->in_w, C = net->in_c;
    zf_image *img = zf_image_new(w, h);
    if (!img)
        return NULL;
    float amax = 0;
    for (int c = 0; c < C; c++)
        for (int y = box.y0; y < box.y1; y++)
            for (int x = box.x0; x < box.x1; x++)
                amax = fmaxf(amax, fabsf(rec[((size_t)c * H + y) * W + x]));
    float scale = amax > 0 ? 127.5f / amax : 0;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                put(net, img->rgb + ((size_t)y * w + x) * 3, c,
                    127.5f + scale * rec[((size_t)c * H + y + box.y0) * W + x + box.x0]);
    return img;
}

/* The input patch inside `box`, the preprocessing undone: what the net saw there (a grey net's
 * luma plane, normalised with the first mean and std, as grey). */
static zf_image *render_patch(const zf_net *net, const float *in, zf_box box)
{
    int w = box.x1 - box.x0, h = box.y1 - box.y0, H = net->in_h, W = net->in_w, C = net->in_c;
    zf_image *img = zf_image_new(w, h);
    if (!img)
        return NULL;
    const zf_preproc *p = &net->pre;
    for (int c = 0; c < C; c++) {
        int k = C == 1 ? 0 : rgb_of(net, c);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float v = in[((size_t)c * H + y + box.y0) * W + x + box.x0];
                put(net, img->rgb + ((size_t)y * w + x) * 3, c, (v * p->std[k] + p->mean[k]) / p->scale * 255.0f);
            }
    }
    return img;
}

static zf_status store(zf_db *db, zf_image *img, const zf_db_rendering *r, int64_t *id)
{
    void *png = NULL;
    size_t len = 0;
    zf_status s = zf_db_png_encode(img, &png, &len);
    if (!s)
        s = zf_db_rendering_put(db, r, png, len, id);
    free(png);
    return s;
}

/* Projects every example with the deconvnet and stores the two renderings of each. */
static zf_status deconv_all(zf_db *db, const zf_db_run *run, const zft_model_opts *given,
                            const zft_reroot *reroot, const char *layer, int unit, int lrn_backward,
                            const zf_db_example *ex, int n, zft_device *dev)
{
    zf_db_model m;
    zf_status s = zf_db_model_get(db, run->model_id, &m);
    if (s)
        return s;
    zf_net *net = NULL;
    float *rec = NULL;
    int *chan = NULL, *ys = NULL, *xs = NULL;
    if ((s = zft_load_recorded_model(&m, run->id, given, &net)))
        return s;
    if (net->in_c != (net->pre.order == ZF_COLOR_GREY ? 1 : 3)) {
        s = zf_error(ZF_ERR_SHAPE, "%s: %d input channels do not match its preprocessing (%s): cannot render "
                     "image patches", net->arch, net->in_c, net->pre.order == ZF_COLOR_GREY ? "grey" : "colour");
        goto out;
    }
    int li = zf_net_find_conv(net, layer);
    if (li < 0) {
        s = zf_error(ZF_ERR_ARG, "%s: the deconvnet projects conv layers; %s is not one", net->arch,
                     layer);
        goto out;
    }
    if ((s = zf_net_reserve(net, n)) || (s = zft_device_open(dev, net, n)))
        goto out;
    size_t in_size = (size_t)zf_net_in_size(net);
    for (int i = 0; i < n; i++) {
        if ((s = zft_example_load(net, &ex[i], reroot, net->input + i * in_size))) {
            if (!reroot->set) {
                char why[4200];
                snprintf(why, sizeof why, "%s", zf_last_error());
                s = zf_error(s, "%s (moved? --reroot OLD=NEW reads it from its new folder)", why);
            }
            goto out;
        }
    }
    rec = zf_alloc((size_t)n * in_size * sizeof *rec);
    chan = malloc((size_t)n * sizeof *chan);
    ys = malloc((size_t)n * sizeof *ys);
    xs = malloc((size_t)n * sizeof *xs);
    if (!rec || !chan || !ys || !xs) {
        s = zf_error(ZF_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        chan[i] = unit;
        ys[i] = ex[i].y;
        xs[i] = ex[i].x;
    }
    zf_deconv_req req = {li, ZF_DECONV_UNIT, lrn_backward, chan, ys, xs};
    if ((s = zft_device_deconv(dev, net, net->input, n, &req, rec)))
        goto out;
    if ((s = zf_db_begin(db)))
        goto out;
    int64_t first = 0, last = 0;
    for (int i = 0; i < n && !s; i++) {
        const zf_db_example *e = &ex[i];
        zf_box b = e->box;
        char what[768];
        zf_image *img = render_deconv(net, rec + i * in_size, b);
        snprintf(what, sizeof what,
                 "deconvnet projection of %s unit %d at (y %d, x %d) of image %lld (rank %d, score "
                 "%.6g), cropped to its receptive field x %d-%d, y %d-%d of the %dx%d input; LRN %s "
                 "on the way down; zero is mid-grey, the largest |value| 0 or 255",
                 layer, unit, e->y, e->x, (long long)e->image_id, e->rank, e->score, b.x0, b.x1 - 1,
                 b.y0, b.y1 - 1, net->in_w, net->in_h, lrn_backward ? "backward" : "as identity");
        zf_db_rendering r = {run->id, e->image_id, layer, unit, e->rank, "deconv", what,
                             b.x1 - b.x0, b.y1 - b.y0};
        int64_t id = 0;
        s = img ? store(db, img, &r, &id) : zf_error(ZF_ERR_NOMEM, "out of memory");
        zf_image_free(img);
        if (s)
            break;
        if (!first)
            first = id;
        img = render_patch(net, net->input + i * in_size, b);
        snprintf(what, sizeof what,
                 "input patch under the receptive field of %s unit %d at (y %d, x %d) of image %lld "
                 "(rank %d): x %d-%d, y %d-%d of the %dx%d preprocessed input, preprocessing undone",
                 layer, unit, e->y, e->x, (long long)e->image_id, e->rank, b.x0, b.x1 - 1, b.y0,
                 b.y1 - 1, net->in_w, net->in_h);
        r.kind = "patch";
        r.description = what;
        s = img ? store(db, img, &r, &id) : zf_error(ZF_ERR_NOMEM, "out of memory");
        zf_image_free(img);
        last = id;
    }
    if (!s)
        s = zf_db_commit(db);
    if (s) {
        zf_db_rollback(db);
        goto out;
    }
    printf("stored %d renderings (deconv and patch for each example), ids %lld-%lld\n", 2 * n,
           (long long)first, (long long)last);
out:
    zf_free(rec);
    free(chan);
    free(ys);
    free(xs);
    zft_device_close(dev);
    zf_net_free(net);
    return s;
}

int zf_cmd_topk(int argc, char **argv)
{
    zft_model_opts mo = {0};
    zft_reroot reroot = {0};
    const char *dbpath = NULL, *layer = NULL;
    long unit = -1, run_id = 0;
    int deconv = 0, lrn_backward = 0;
    const zft_opt opts[] = {ZFT_STR("db", 'd', &dbpath), ZFT_STR("layer", 'l', &layer),
                            ZFT_LONG("unit", 'u', 0, INT_MAX, "a unit number", &unit), ZFT_RUN_OPT(&run_id),
                            ZFT_FLAG("deconv", 'D', &deconv), ZFT_FLAG("lrn-backward", 'L', &lrn_backward),
                            ZFT_REROOT_OPT(&reroot), {0}};
    zft_device dev = {.needs = ZF_ENGINE_NEEDS(ZF_ENGINE_OP_DECONV)};
    zft_args a = {.cmd = "topk", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .model = &mo, .device = &dev, .shared = ZFT_WITH_WAIT};
    if (zft_args_parse(&a))
        return a.rc;
    if (!dbpath || !layer || unit < 0)
        return zft_usage_error("topk", "--db, --layer and --unit are required (see --help)");
    if (!deconv && (mo.arch || mo.weights || mo.model || lrn_backward || reroot.set || dev.device || dev.precision))
        return zft_usage_error("topk", "model options, --device, --precision, --lrn-backward and --reroot go with "
                                       "--deconv");

    zft_scan scan;
    zf_db_example *ex = NULL;
    int n = 0, rc = 0;
    zf_status s;
    const zf_db_run *run = &scan.run;
    const char *lname = layer;
    if ((s = zft_run_open(&scan, dbpath, run_id, lname, deconv)) ||
        (s = zf_db_topk_get(scan.db, run->id, lname, (int)unit, &ex, &n))) {
        rc = zft_fail("topk", s);
        goto out;
    }
    printf("run %lld: %s (sha256 %.12s), %lld of %lld images scanned%s\n", (long long)run->id,
           scan.model.arch, scan.model.sha256, (long long)run->n_ok, (long long)run->n_images,
           run->complete ? "" : " so far (scan not finished)");
    printf("%s unit %ld: top %d (one per image; score = value before the ReLU)\n", lname, unit, n);
    printf("%4s %12s %4s %4s  %-19s %s\n", "rank", "score", "y", "x", "field x0,y0-x1,y1", "image");
    for (int i = 0; i < n; i++) {
        char box[40];
        snprintf(box, sizeof box, "%d,%d-%d,%d", ex[i].box.x0, ex[i].box.y0, ex[i].box.x1 - 1,
                 ex[i].box.y1 - 1);
        printf("%4d %12.6g %4d %4d  %-19s %s\n", ex[i].rank, ex[i].score, ex[i].y, ex[i].x, box,
               ex[i].path);
    }
    if (deconv && n > 0 && (s = deconv_all(scan.db, run, &mo, &reroot, lname, (int)unit, lrn_backward, ex, n, &dev)))
        rc = zft_fail("topk", s);
out:
    free(ex);
    zft_scan_close(&scan);
    return rc;
}
