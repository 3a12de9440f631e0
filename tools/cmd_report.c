/* zfviz report: a multi-page PDF of a scan: model summary, filter grids, dead units, top-9 sheets. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "figure_opts.h"
#include "viz_db.h"
#include "zf/viz.h"

const char zf_cmd_report_summary[] = "a multi-page PDF report of a scan database";

static void usage(void)
{
    printf("usage: zfviz report --db DB -o REPORT.pdf [--run ID] [--top-units N] [--min-active F] [--reroot OLD=NEW]\n"
           "                    [--arch A --weights W | --model F] [--no-title] [--font-size PT]\n"
           "                    [--clip-percentile P] [--prob-range R]\n\n"
           "An A4-landscape PDF of a scan: a title page with a linked table of contents, the model\n"
           "summary, the filters of every conv layer, the dead-unit table and a bar chart of dead and\n"
           "rarely firing units per layer, and top-9 deconv sheets of the strongest units of each scanned\n"
           "conv layer. Every page is numbered. A missing image in a sheet is drawn as a placeholder\n"
           "with a warning; a run in which no image could be read is refused.\n\n"
           "  --db F            the scan database\n"
           ZFT_WAIT_HELP
           "  --run ID          which scan (default: the newest)\n"
           "  --top-units N     units per layer with top-9 sheets (default 4; 0: none)\n"
           "  --min-active F    'rare' units fire on fewer than this fraction of images (default 0.01)\n"
           "  --occlude IMG,... occlusion figures (Zeiler & Fergus Fig. 7) of these images\n"
           "  --patch P         their grey square's side in input pixels (default 1/7 of the input's\n"
           "                    shorter side: 32 for 224x224, 16 for the mini nets' 112x112)\n"
           "  --stride S        its step (default 1/28 of that side: 8 for 224, 4 for 112)\n"
           ZFT_REROOT_HELP
           "  --no-title        leave out the figures' titles and explanation lines\n"
           "  --font-size PT    body text size of the figures in points (default 12)\n"
           ZFT_FIGURE_PROJ_HELP ZFT_FIGURE_PROB_HELP
           "  the model defaults to the one the run scanned:\n" ZFT_MODEL_HELP ZFT_DEVICE_HELP
           "  -o, --out FILE    the .pdf (its folder is created)\n" ZFT_FORCE_HELP);
}

int zf_cmd_report(int argc, char **argv)
{
    zft_model_opts mo = {0};
    zft_device dev = {.needs = ZF_ENGINE_NEEDS(ZF_ENGINE_OP_DECONV)};
    zft_reroot reroot = {0};
    const char *dbpath = NULL, *out = NULL, *occlude = NULL;
    long run = 0, top = 4, patch = 0, stride = 0; /* 0: zft_occlusion_defaults for the net */
    double min_active = 0.01;
    zf_viz_style style = {0};
    const zft_opt opts[] = {ZFT_STR("db", 'd', &dbpath), ZFT_RUN_OPT(&run),
                            ZFT_LONG("top-units", 't', 0, 64, "0..64", &top), ZFT_MIN_ACTIVE_OPT(&min_active),
                            ZFT_STR("occlude", 'O', &occlude),
                            ZFT_LONG("patch", 'q', 1, 1e18, "a positive number of pixels", &patch),
                            ZFT_LONG("stride", 's', 1, 1e18, "a positive number of pixels", &stride),
                            ZFT_STR("out", 'o', &out), ZFT_REROOT_OPT(&reroot), {0}};
    zft_args a = {.cmd = "report", .argc = argc, .argv = argv, .shortopts = "ho:", .opts = opts,
                  .usage = usage, .model = &mo, .style = &style, .device = &dev,
                  .shared = ZFT_WITH_FORCE | ZFT_WITH_WAIT | ZFT_WITH_PROJ | ZFT_WITH_PROB};
    if (zft_args_parse(&a))
        return a.rc;
    if (!dbpath || !out)
        return zft_usage_error("report", "--db and -o REPORT.pdf are required");
    if (style.width > 0)
        return zft_usage_error("report", "--width does not apply: the report's pages are A4");
    zf_viz_format fmt;
    if (zf_viz_format_of(out, &fmt) || fmt != ZF_VIZ_PDF)
        return zft_usage_error("report", "%s: the report has several pages: write a .pdf", out);
    if (zft_output_check(out)) /* before any work: a file zfviz may not replace */
        return zft_fail("report", ZF_ERR_IO);

    zft_scan scan;
    zft_report rep = {0};
    zf_viz_doc *doc = NULL;
    int rc = 1;
    zf_status st;
    if (!(st = zft_scan_open(&scan, dbpath, run, NULL, &mo, 0))) {
        scan.reroot = reroot;
        scan.device = dev;
    }
    if (st || (st = zft_report_build(&rep, &scan, min_active, (int)top)))
        goto fail;
    rep.in.style = style;
    if (occlude) {
        int def_patch, def_stride;
        zft_occlusion_defaults(scan.net, &def_patch, &def_stride);
        if (!patch)
            patch = def_patch;
        if (!stride)
            stride = def_stride;
        char buf[8192];
        const char *items[64];
        int n = zft_split_list(occlude, buf, sizeof buf, items, 64);
        for (int i = 0; i < n; i++)
            if ((st = zft_report_add_occlusion(&rep, &scan, items[i], (int)patch, (int)stride)))
                goto fail;
    }
    if ((st = zft_output_prepare(out)) || (st = zf_viz_doc_open(out, &doc)) || (st = zf_viz_report(doc, &rep.in)) || (st = zf_viz_doc_finish(doc)))
        goto fail;
    fprintf(stderr, "wrote %s (%d pages)\n", out, zf_viz_doc_pages(doc));
    rc = 0;
fail:
    if (rc)
        rc = zft_fail("report", st);
    zf_viz_doc_free(doc);
    zft_report_free(&rep);
    zft_scan_close(&scan);
    return rc;
}
