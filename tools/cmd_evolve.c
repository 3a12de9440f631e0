/* zfviz evolve: how features evolve during training (Zeiler & Fergus Fig. 4): for each snapshot a
 * training run stored, each chosen unit's strongest activation over a set of images, projected to
 * pixels by the deconvnet, as one figure (rows units, columns snapshots). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "viz_db.h"
#include "zf/dataset.h"
#include "zf/db.h"
#include "zf/db_train.h"
#include "zf/evolve.h"
#include "zf/input.h"
#include "zf/io.h"
#include "zf/viz.h"
#include "zf/viz_evolve.h"

const char zf_cmd_evolve_summary[] = "feature evolution during training (ZF Fig. 4) from a run's snapshots";

#define MAX_UNITS 64
#define MAX_EPOCHS 64

static void usage(void)
{
    printf("usage: zfviz evolve --db RUN.sqlite --layer L --out FIG.png|pdf [options]\n\n"
           "Zeiler & Fergus's Fig. 4 from the snapshots zfviz train stored (--snapshots): at each\n"
           "snapshot, the net takes that epoch's parameters (every weight and bias), finds each chosen\n"
           "unit's strongest activation over the images (the largest value of its rectified map at\n"
           "any position of any image; first image, then first position, on ties), and projects it to\n"
           "pixels with the deconvnet, cropped to the unit's receptive field. The figure has a row per\n"
           "unit and a column per snapshot; stdout gets a line per unit and snapshot.\n\n"
           "  --db FILE         the training run's SQLite file (zfviz train --db; MODEL.sqlite)\n"
           "  --run ID          which training run in it (default: the latest)\n"
           "  --model F         the model whose architecture and preprocessing to use (default: the\n"
           "                    run's --out file)\n"
           "  --images SOURCE   fashion-mnist (default: its test set) or a folder, image or list of\n"
           "                    images (as zfviz scan finds them)\n"
           "  --limit N         the first N images only (default 500; 0: all)\n"
           "  --layer L         a conv layer (conv2 or relu2: its rectified output)\n"
           "  --units C,..      channels of that layer (default 0-5)\n"
           "  --epochs E,..     snapshots to show (default: every one stored)\n"
           "  --out FILE        the figure, .png or .pdf\n"
           "  --cell N          pixels per cell (default 64)\n"
           "  --lrn-backward    the true LRN backward on the way down (default: identity)\n"
           "  --csv             stdout as CSV: layer,unit,epoch,image,y,x,activation\n"
           "  --batch N         images per forward (default 50)\n" ZFT_WAIT_HELP ZFT_FORCE_HELP);
}

/* The images as the net's inputs (n, in_c, in_h, in_w); names[i] (may stay NULL) for messages. */
static zf_status load_images(const char *src, long limit, zf_net *net, float **out, int64_t *n_out)
{
    int64_t in_size = zf_net_in_size(net), n = 0;
    *out = NULL;
    *n_out = 0;
    zf_status st;
    if (!strcmp(src, "fashion-mnist")) {
        zf_dataset *ds;
        if ((st = zf_dataset_load_fashion_mnist(NULL, 0, &ds)))
            return st;
        n = limit > 0 && limit < ds->n ? limit : ds->n;
        float *x = zf_alloc(sizeof(float) * (size_t)(n * in_size));
        int64_t *idx = malloc(sizeof *idx * (size_t)n);
        if (!x || !idx)
            st = zf_error(ZF_ERR_NOMEM, "out of memory for %lld images", (long long)n);
        for (int64_t i = 0; !st && i < n; i++)
            idx[i] = i;
        for (int64_t at = 0; !st && at < n; at += 256)
            st = zf_dataset_batch(x + at * in_size, NULL, ds, idx + at, n - at < 256 ? (int)(n - at) : 256, net,
                                  NULL, 0);
        free(idx);
        zf_dataset_free(ds);
        if (st) {
            zf_free(x);
            return st;
        }
        *out = x;
        *n_out = n;
        return ZF_OK;
    }
    char **paths;
    int64_t np;
    if ((st = zf_images_find(src, &paths, &np)))
        return st;
    n = limit > 0 && limit < np ? limit : np;
    float *x = zf_alloc(sizeof(float) * (size_t)(n * in_size));
    if (!x)
        st = zf_error(ZF_ERR_NOMEM, "out of memory for %lld images", (long long)n);
    for (int64_t i = 0; !st && i < n; i++) {
        zf_tensor *t;
        if ((st = zf_input_load(paths[i], net, &t)))
            break;
        if (t->shape[0] != 1)
            st = zf_error(ZF_ERR_SHAPE, "%s: %lld inputs, not one image", paths[i], (long long)t->shape[0]);
        else
            memcpy(x + i * in_size, zf_tensor_f32(t), sizeof(float) * (size_t)in_size);
        zf_tensor_free(t);
    }
    zf_paths_free(paths, np);
    if (st) {
        zf_free(x);
        return st;
    }
    *out = x;
    *n_out = n;
    return ZF_OK;
}

static int parse_ints(const char *s, int *out, int max, int lo)
{
    char buf[1024];
    const char *items[MAX_EPOCHS];
    int n = zft_split_list(s, buf, sizeof buf, items, max < MAX_EPOCHS ? max : MAX_EPOCHS);
    for (int i = 0; i < n; i++) {
        long v = zft_parse_long(items[i]);
        if (v < lo || v > 1000000)
            return -1;
        out[i] = (int)v;
    }
    return n;
}

int zf_cmd_evolve(int argc, char **argv)
{
    enum { O_DB = 256, O_RUN, O_IMAGES, O_LIMIT, O_LAYER, O_UNITS, O_EPOCHS, O_OUT, O_CELL, O_LRN, O_CSV, O_BATCH,
           O_MODEL };
    const char *db_path = NULL, *images = "fashion-mnist", *layer_name = NULL, *out = NULL, *units_s = NULL,
               *epochs_s = NULL, *model = NULL;
    long run = 0, limit = 500, batch = 50;
    int cell = 64, lrn_backward = 0, csv = 0;
    zf_viz_style style = {0};
    const zft_opt opts[] = {ZFT_STR("db", O_DB, &db_path), ZFT_LONG("run", O_RUN, 1, 1e18, "a run id", &run),
                            ZFT_STR("model", O_MODEL, &model), ZFT_STR("images", O_IMAGES, &images),
                            ZFT_LONG("limit", O_LIMIT, 0, 1e12, "a count of images (0: all)", &limit),
                            ZFT_STR("layer", O_LAYER, &layer_name), ZFT_STR("units", O_UNITS, &units_s),
                            ZFT_STR("epochs", O_EPOCHS, &epochs_s), ZFT_STR("out", O_OUT, &out),
                            ZFT_INT("cell", O_CELL, 8, 1024, "8 to 1024 pixels", &cell),
                            ZFT_FLAG("lrn-backward", O_LRN, &lrn_backward), ZFT_FLAG("csv", O_CSV, &csv),
                            ZFT_LONG("batch", O_BATCH, 1, 65536, "a whole number from 1 to 65536", &batch), {0}};
    zft_args a = {.cmd = "evolve", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .style = &style, .shared = ZFT_WITH_FORCE | ZFT_WITH_WAIT};
    if (zft_args_parse(&a))
        return a.rc;
    if (!db_path || !layer_name || !out)
        return zft_usage_error("evolve", "--db, --layer and --out are required");
    int units[MAX_UNITS], n_units = 0, want_epochs[MAX_EPOCHS], n_want = 0;
    if (units_s && (n_units = parse_ints(units_s, units, MAX_UNITS, 0)) < 1)
        return zft_usage_error("evolve", "--units takes channels like 0,5,17, got '%s'", units_s);
    if (epochs_s && (n_want = parse_ints(epochs_s, want_epochs, MAX_EPOCHS, 1)) < 1)
        return zft_usage_error("evolve", "--epochs takes epochs like 1,2,5, got '%s'", epochs_s);
    zf_viz_format fmt;
    zf_status st = zf_viz_format_of(out, &fmt);
    if (st)
        return zft_usage_error("evolve", "--out %s: %s", out, zf_last_error());
    if ((st = zft_output_check(out)))
        return zft_fail("evolve", st);
    zft_install_sigint();

    zf_db *db = NULL;
    zf_net *net = NULL;
    float *inputs = NULL, *proj = NULL;
    int *epochs = NULL, n_epochs = 0;
    zf_unit_max *found = NULL;
    zf_viz_patch *cells = NULL;
    char **row_labels = NULL, **col_labels = NULL;
    int64_t run_id, n_images = 0;
    char run_out[4096], arch[64];
    if ((st = zft_db_open(db_path, 0, &db)) ||
        (st = zf_db_train_run_info(db, run, &run_id, run_out, sizeof run_out, arch, sizeof arch)))
        goto done;
    /* The run records --out as given, relative to where zfviz train ran; the model is usually beside
     * its database (MODEL.sqlite is the default), so look there too. */
    if (!model && access(run_out, R_OK) && run_out[0] != '/') {
        const char *slash = strrchr(db_path, '/'), *base = strrchr(run_out, '/');
        char beside[8300];
        snprintf(beside, sizeof beside, "%.*s%s", slash ? (int)(slash - db_path + 1) : 0, db_path,
                 base ? base + 1 : run_out);
        size_t bl = strlen(beside);
        if (bl < sizeof run_out && !access(beside, R_OK))
            memcpy(run_out, beside, bl + 1);
    }
    zft_model_opts mo = {0};
    mo.model = model ? model : run_out;
    if (!model && access(run_out, R_OK)) {
        st = zf_error(ZF_ERR_ARG, "%s: training run %lld's model %s cannot be read; --model names one of the "
                                  "same architecture (%s)",
                      db_path, (long long)run_id, run_out, arch);
        goto done;
    }
    if ((st = zft_load_model(&mo, &net)))
        goto done;
    int conv = zf_net_find_conv(net, layer_name);
    if (conv < 0) {
        int rc = zft_usage_error("evolve", "--layer: %s has no conv layer '%s'", net->arch, layer_name);
        zf_db_close(db);
        zf_net_free(net);
        return rc;
    }
    const zf_layer *cl = &net->layers[conv];
    if (!units_s)
        for (n_units = 0; n_units < 6 && n_units < cl->out_c; n_units++)
            units[n_units] = n_units;
    for (int u = 0; u < n_units; u++)
        if (units[u] >= cl->out_c) {
            int c = units[u], k = cl->out_c;
            zf_db_close(db);
            zf_net_free(net);
            return zft_usage_error("evolve", "--units: %s has channels 0..%d, not %d", layer_name, k - 1, c);
        }
    if ((st = zf_db_train_snapshot_epochs(db, run_id, &epochs, &n_epochs)))
        goto done;
    if (n_epochs == 0) {
        st = zf_error(ZF_ERR_ARG, "%s: training run %lld stored no snapshots", db_path, (long long)run_id);
        goto done;
    }
    if (n_want) {
        for (int i = 0; i < n_want; i++) {
            int ok = 0;
            for (int j = 0; j < n_epochs; j++)
                ok |= epochs[j] == want_epochs[i];
            if (!ok) {
                st = zf_error(ZF_ERR_ARG, "%s: training run %lld has no snapshot of epoch %d", db_path,
                              (long long)run_id, want_epochs[i]);
                goto done;
            }
        }
        memcpy(epochs, want_epochs, sizeof(int) * (size_t)n_want);
        n_epochs = n_want;
    }
    if ((st = load_images(images, limit, net, &inputs, &n_images)))
        goto done;
    int planes = zf_viz_planes(&net->pre);
    int64_t in_size = zf_net_in_size(net), plane = (int64_t)net->in_h * net->in_w;
    size_t cells_n = (size_t)n_units * n_epochs;
    found = calloc(cells_n, sizeof *found);
    cells = calloc(cells_n, sizeof *cells);
    proj = zf_alloc(sizeof(float) * cells_n * (size_t)(net->in_c * plane));
    row_labels = calloc((size_t)n_units, sizeof *row_labels);
    col_labels = calloc((size_t)n_epochs, sizeof *col_labels);
    if (!found || !cells || !proj || !row_labels || !col_labels) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for %zu projections", cells_n);
        goto done;
    }
    if (csv)
        printf("layer,unit,epoch,image,y,x,activation\n");
    float *full = zf_alloc(sizeof(float) * (size_t)in_size);
    if (!full) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int e = 0; e < n_epochs && !st; e++) {
        zf_unit_max got[MAX_UNITS];
        if ((st = zf_db_train_snapshot_get(db, run_id, epochs[e], net)) ||
            (st = zf_units_strongest(net, inputs, n_images, (int)batch, conv, units, n_units, got)))
            break;
        for (int u = 0; u < n_units && !st; u++) {
            zf_unit_max *m = &found[u * n_epochs + e];
            *m = got[u];
            if (csv)
                printf("%s,%d,%d,%lld,%d,%d,%.9g\n", layer_name, units[u], epochs[e], (long long)m->image, m->y, m->x,
                       (double)m->value);
            else
                printf("%s unit %d, epoch %d: image %lld at (%d, %d), activation %.6g\n", layer_name, units[u],
                       epochs[e], (long long)m->image, m->y, m->x, (double)m->value);
            int ch = units[u], y = m->y, x = m->x;
            zf_deconv_req req = {conv, ZF_DECONV_UNIT, lrn_backward, &ch, &y, &x};
            if ((st = zf_net_forward_upto(net, inputs + m->image * in_size, 1, zf_net_rectified(net, conv))) ||
                (st = zf_net_deconv(net, full, 1, &req)))
                break;
            zf_viz_proj_to_rgb(full, &net->pre, net->in_h, net->in_w);
            zf_box box;
            if ((st = zf_db_receptive_field(net, conv, m->y, m->x, &box)))
                break;
            int bw = box.x1 - box.x0, bh = box.y1 - box.y0;
            float *p = proj + (size_t)(u * n_epochs + e) * (size_t)(net->in_c * plane);
            for (int c = 0; c < planes; c++)
                for (int yy = 0; yy < bh; yy++)
                    memcpy(p + ((size_t)c * bh + yy) * bw, full + (c * net->in_h + box.y0 + yy) * net->in_w + box.x0,
                           sizeof(float) * (size_t)bw);
            zf_viz_patch *cp = &cells[u * n_epochs + e];
            cp->w = bw;
            cp->h = bh;
            cp->proj = m->value > 0 ? p : NULL; /* a unit that never fires has nothing to show */
            cp->score = m->value;
            cp->channels = planes;
        }
        fflush(stdout);
        if (!st && zf_interrupted)
            st = zf_error(ZF_ERR_INTERRUPTED, "stopped");
    }
    zf_free(full);
    if (st)
        goto done;
    for (int u = 0; u < n_units && !st; u++)
        if (!(row_labels[u] = malloc(48)))
            st = zf_error(ZF_ERR_NOMEM, "out of memory");
        else
            snprintf(row_labels[u], 48, "%s #%d", layer_name, units[u]);
    for (int e = 0; e < n_epochs && !st; e++)
        if (!(col_labels[e] = malloc(24)))
            st = zf_error(ZF_ERR_NOMEM, "out of memory");
        else
            snprintf(col_labels[e], 24, "epoch %d", epochs[e]);
    if (!st) {
        char title[256];
        snprintf(title, sizeof title, "Feature evolution: %s of %s over %lld images", layer_name, net->arch,
                 (long long)n_images);
        zf_viz_evolve_in vin = {title, n_units, n_epochs, (const char *const *)row_labels,
                                (const char *const *)col_labels, cells};
        zf_viz_evolve_opts vo = {cell, style};
        zf_viz_doc *doc = NULL;
        if (!(st = zft_output_prepare(out)) && !(st = zf_viz_doc_open(out, &doc)) &&
            !(st = zf_viz_evolve(doc, &vin, &vo)))
            st = zf_viz_doc_finish(doc);
        zf_viz_doc_free(doc);
        if (!st && !csv)
            printf("wrote %s\n", out);
    }
done:
    if (row_labels)
        for (int u = 0; u < n_units; u++)
            free(row_labels[u]);
    if (col_labels)
        for (int e = 0; e < n_epochs; e++)
            free(col_labels[e]);
    free(row_labels);
    free(col_labels);
    free(found);
    free(cells);
    zf_free(proj);
    zf_free(inputs);
    free(epochs);
    zf_net_free(net);
    zf_db_close(db);
    return st ? zft_fail("evolve", st) : 0;
}
