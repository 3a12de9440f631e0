/* zfviz evolve: how features evolve during training (Zeiler & Fergus Fig. 4): for each snapshot a
 * training run stored, each chosen unit's strongest activation over a set of images, projected to
 * pixels by the deconvnet, as one figure (rows units, columns snapshots). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "paper_units.h"
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

#define MAX_UNITS ZFT_EVOLVE_MAX_UNITS
#define MAX_EPOCHS ZFT_EVOLVE_MAX_EPOCHS

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
           "  --batch N         images per forward (default 50)\n" ZFT_WAIT_HELP ZFT_FORCE_HELP
           ZFT_DEVICE_HELP);
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
    zft_device dev = {0};
    zft_args a = {.cmd = "evolve", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .style = &style, .device = &dev, .shared = ZFT_WITH_FORCE | ZFT_WITH_WAIT};
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

    const char *layers[1] = {layer_name};
    zft_evolve_opts eo = {db_path, run,   model, images, limit,        layers, 1, units, n_units, want_epochs,
                          n_want,  lrn_backward, csv, batch, stdout, &dev};
    zft_evolve e;
    int usage_err = 0;
    st = zft_evolve_run(&e, &eo, &usage_err);
    if (st && usage_err) {
        zft_evolve_free(&e);
        return zft_usage_error("evolve", "%s", zf_last_error());
    }
    if (!st) {
        zf_viz_doc *doc = NULL;
        if (!(st = zft_output_prepare(out)) && !(st = zf_viz_doc_open(out, &doc)) &&
            !(st = zft_evolve_draw(doc, &e, cell, &style)))
            st = zf_viz_doc_finish(doc);
        zf_viz_doc_free(doc);
        if (!st && !csv)
            printf("wrote %s\n", out);
    }
    zft_evolve_free(&e);
    return st ? zft_fail("evolve", st) : 0;
}
