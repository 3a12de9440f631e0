/* zfviz sheet: Zeiler & Fergus Fig. 2 from a scan database: the top-9 deconv projections of
 * chosen units beside the image patches under their receptive fields. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "figure_opts.h"
#include "viz_db.h"
#include "zf/viz.h"

const char zf_cmd_sheet_summary[] = "top-9 deconv sheets of units from a scan database (PNG or PDF)";

static void usage(void)
{
    printf("usage: zfviz sheet --db DB --layer convK (--units C[,C...] | --top-units N) -o FILE.png|FILE.pdf\n"
           "                   [--run ID] [--per-page N] [--cell N] [--lrn-backward] [--store] [--reroot OLD=NEW]\n"
           "                   [--arch A --weights W | --model F] [--no-title] [--font-size PT] [--width W]\n"
           "                   [--clip-percentile P]\n\n"
           "For each unit, the deconvnet projections of its strongest examples in the scan (a 3x3 grid,\n"
           "strongest at the top left) beside the image patches under their receptive fields, as in\n"
           "Zeiler & Fergus Fig. 2. The examples are read from the database, the images from their files\n"
           "(which must not have changed since the scan), and projected again with the scanned model.\n"
           "An image that is missing or changed is drawn as a grey placeholder captioned 'missing'\n"
           "with a warning; only a sheet none of whose images can be read is an error.\n\n"
           "  --db F            the scan database\n"
           ZFT_WAIT_HELP
           "  --layer L         a scanned conv layer (conv1..conv5)\n"
           "  --units C,...     these units\n"
           "  --top-units N     the N units with the strongest single activation\n"
           "  --run ID          which scan (default: the newest that covers the layer)\n"
           "  --per-page N      units per page (a .pdf; default all on one page)\n"
           "  --cell N          pixels per patch (default 64)\n"
           "  --lrn-backward    the true LRN backward on the way down (default: identity)\n"
           "  --store           also store each unit's sheet in the database (table renderings, kind\n"
           "                    'top9-sheet')\n" ZFT_REROOT_HELP ZFT_FIGURE_HELP ZFT_FIGURE_PROJ_HELP
           "  the model defaults to the one the run scanned:\n" ZFT_MODEL_HELP ZFT_DEVICE_HELP
           "  -o, --out FILE    .png or .pdf (its folder is created)\n" ZFT_FORCE_HELP);
}

typedef struct one_unit {
    const zf_viz_sheet_in *all;
    int index;
    const zf_viz_sheet_opts *o;
} one_unit;

static zf_status draw_one(zf_viz_doc *doc, void *ctx)
{
    const one_unit *u = ctx;
    zf_viz_sheet_in in = {u->all->title, 1, &u->all->units[u->index]};
    zf_viz_sheet_opts o = *u->o;
    o.units_per_page = 0;
    o.units_per_row = 1;
    return zf_viz_sheet(doc, &in, &o);
}

int zf_cmd_sheet(int argc, char **argv)
{
    zft_model_opts mo = {0};
    zft_device dev = {.needs = ZF_ENGINE_NEEDS(ZF_ENGINE_OP_DECONV)};
    zft_reroot reroot = {0};
    zf_viz_sheet_opts so = zf_viz_sheet_defaults();
    const char *dbpath = NULL, *layer = NULL, *unit_list = NULL, *out = NULL;
    long top = 0, run = 0;
    int lrn_backward = 0, store = 0;
    const zft_opt opts[] = {ZFT_STR("db", 'd', &dbpath), ZFT_STR("layer", 'l', &layer),
                            ZFT_STR("units", 'u', &unit_list),
                            ZFT_LONG("top-units", 't', 1, 4096, "a positive number", &top), ZFT_RUN_OPT(&run),
                            ZFT_INT("per-page", 'p', 1, INT_MAX, "a positive number", &so.units_per_page),
                            ZFT_INT("cell", 'c', 8, 1024, "8..1024 pixels", &so.cell),
                            ZFT_FLAG("lrn-backward", 'L', &lrn_backward), ZFT_FLAG("store", 'S', &store),
                            ZFT_STR("out", 'o', &out), ZFT_REROOT_OPT(&reroot), {0}};
    zft_args a = {.cmd = "sheet", .argc = argc, .argv = argv, .shortopts = "ho:", .opts = opts,
                  .usage = usage, .model = &mo, .style = &so.style, .device = &dev,
                  .shared = ZFT_WITH_FORCE | ZFT_WITH_WAIT | ZFT_WITH_PROJ};
    if (zft_args_parse(&a))
        return a.rc;
    if (!dbpath || !layer || (!out && !store))
        return zft_usage_error("sheet", "--db, --layer and -o (or --store) are required");
    if (!unit_list == !top)
        return zft_usage_error("sheet", "give either --units or --top-units");
    zf_viz_format fmt = ZF_VIZ_PNG;
    if (out && zf_viz_format_of(out, &fmt))
        return zft_usage_error("sheet", "%s", zf_last_error());
    if (out && fmt == ZF_VIZ_PNG && so.units_per_page)
        return zft_usage_error("sheet", "--per-page makes several pages: write a .pdf");
    if (out && zft_output_check(out)) /* before any work: a file zfviz may not replace */
        return zft_fail("sheet", ZF_ERR_IO);

    int units[4096], n = 0;
    if (unit_list) {
        char buf[16384];
        const char *items[4096];
        int k = zft_split_list(unit_list, buf, sizeof buf, items, 4096);
        for (int i = 0; i < k; i++) {
            long u = zft_parse_long(items[i]);
            if (u < 0)
                return zft_usage_error("sheet", "--units takes unit numbers, got '%s'", items[i]);
            units[n++] = (int)u;
        }
        if (n == 0)
            return zft_usage_error("sheet", "--units is empty");
    }

    zft_scan scan;
    zft_sheet sheet = {0};
    zf_viz_doc *doc = NULL;
    int rc = 1;
    zf_status st = zft_scan_open(&scan, dbpath, run, layer, &mo, store);
    scan.device = dev;
    if (st)
        goto fail;
    scan.reroot = reroot;
    if (top && (st = zft_scan_strongest_units(&scan, layer, (int)top, units, &n)))
        goto fail;
    if (n == 0) {
        st = zf_error(ZF_ERR_ARG, "%s: run %lld has no examples of %s", dbpath, (long long)scan.run.id, layer);
        goto fail;
    }
    if ((st = zft_sheet_build(&sheet, &scan, layer, units, n, lrn_backward)))
        goto fail;
    if (out) {
        if ((st = zft_output_prepare(out)) || (st = zf_viz_doc_open(out, &doc)) || (st = zf_viz_sheet(doc, &sheet.in, &so)) ||
            (st = zf_viz_doc_finish(doc)))
            goto fail;
        fprintf(stderr, "wrote %s\n", out);
    }
    if (store) {
        if ((st = zf_db_begin(scan.db)))
            goto fail;
        for (int i = 0; i < n && !st; i++) {
            const zf_viz_unit *u = &sheet.units[i];
            char what[512];
            snprintf(what, sizeof what,
                     "top-%d sheet of %s unit %d (run %lld): deconvnet projections (LRN %s on the way down) of "
                     "its strongest examples beside the image patches under their receptive fields",
                     u->n, u->layer, u->channel, (long long)scan.run.id, lrn_backward ? "backward" : "as identity");
            zf_db_rendering r = {scan.run.id, -1, u->layer, u->channel, -1, "top9-sheet", what, 0, 0};
            one_unit ou = {&sheet.in, i, &so};
            int64_t id;
            st = zft_store_rendering(scan.db, &r, draw_one, &ou, &id);
        }
        if (!st)
            st = zf_db_commit(scan.db);
        if (st) {
            zf_db_rollback(scan.db);
            goto fail;
        }
        fprintf(stderr, "stored %d sheets in %s\n", n, dbpath);
    }
    rc = 0;
fail:
    if (rc)
        rc = zft_fail("sheet", st);
    zf_viz_doc_free(doc);
    zft_sheet_free(&sheet);
    zft_scan_close(&scan);
    return rc;
}
