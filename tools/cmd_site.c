/* zfviz site: the unit atlas, a static web site of a scan database (pages per run, layer and unit). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "site.h"

const char zf_cmd_site_summary[] = "a static web site of a scan: a page per layer and per unit";

static void usage(void)
{
    printf("usage: zfviz site --db SCAN.db -o DIR [--run ID] [--layers L1,L2] [--top-units N]\n"
           "                  [--min-active F] [--lrn-backward] [--reroot OLD=NEW]\n"
           "                  [--arch A --weights W | --model F] [--force]\n\n"
           "Writes the unit atlas of a scan: DIR/index.html lists the runs, their models and layers;\n"
           "DIR/<run>/<layer>/index.html is a sortable table of the layer's units (active fraction,\n"
           "positive fraction, mean, max; dead and near-dead flagged; class selectivity and best class\n"
           "where the images sit in one folder per class) with a thumbnail of each unit's strongest\n"
           "projection; DIR/<run>/<layer>/<unit>.html shows the unit's top examples beside their\n"
           "deconvnet projections (with each one's class), its statistics and histogram, its bottom-k\n"
           "input patches, its mean per class, and its filter (the first conv layer in colour, deeper\n"
           "ones as the norm over each input channel), with links to the previous and next unit (arrow\n"
           "keys) and to the same unit in other runs. The pages open from file:// or any static host\n"
           "and ask nothing of the network. Projections and patches not yet in the database are\n"
           "computed with the run's model and stored (table renderings, as zfviz topk --deconv stores\n"
           "them), so the next build copies them.\n\n"
           "  --db F            the scan database (opened read-write to store renderings)\n"
           ZFT_WAIT_HELP
           "  -o, --out DIR     the site's folder (created; a failed build removes what it made)\n"
           "  --run ID          this run only (default: every run of the database)\n"
           "  --layers L,...    these scanned layers only (default: all)\n"
           "  --top-units N     project only the N strongest units of each conv layer (default: all)\n"
           "  --min-active F    'near-dead' units are active on fewer than this fraction of the images\n"
           "                    (default 0.01)\n"
           "  --lrn-backward    the true LRN backward on the way down (default: identity)\n"
           ZFT_REROOT_HELP
           "  the model defaults to the one each run scanned:\n" ZFT_MODEL_HELP ZFT_DEVICE_HELP ZFT_FORCE_HELP
           "  -h, --help        this help\n");
}

int zf_cmd_site(int argc, char **argv)
{
    zft_site_opts o = {0};
    o.min_active = 0.01;
    const zft_opt opts[] = {ZFT_STR("db", 'd', &o.dbpath), ZFT_STR("out", 'o', &o.out), ZFT_RUN_OPT(&o.run),
                            ZFT_STR("layers", 'l', &o.layers),
                            ZFT_INT("top-units", 't', 1, 100000, "a positive number", &o.top_units),
                            ZFT_MIN_ACTIVE_OPT(&o.min_active), ZFT_FLAG("lrn-backward", 'L', &o.lrn_backward),
                            ZFT_REROOT_OPT(&o.reroot), {0}};
    zft_args a = {.cmd = "site", .argc = argc, .argv = argv, .shortopts = "ho:", .opts = opts, .usage = usage,
                  .model = &o.model, .device = &o.device, .shared = ZFT_WITH_FORCE | ZFT_WITH_WAIT};
    if (zft_args_parse(&a))
        return a.rc;
    if (!o.dbpath || !o.out)
        return zft_usage_error("site", "--db and -o DIR are required (see --help)");
    if (!*o.out)
        return zft_usage_error("site", "-o needs a folder");
    struct stat sb;
    if (stat(o.dbpath, &sb) != 0)
        return zft_usage_error("site", "%s: no such database", o.dbpath);
    if (stat(o.out, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return zft_usage_error("site", "%s: exists and is not a folder", o.out);
    char idx[4096];
    snprintf(idx, sizeof idx, "%s/index.html", o.out);
    if (zft_output_check(idx)) /* before any work: a site zfviz did not make is not replaced */
        return zft_fail("site", ZF_ERR_IO);
    zft_site_stats stats;
    double t0 = zft_now();
    zf_status st = zft_site_build(&o, &stats);
    if (st)
        return zft_fail("site", st);
    fprintf(stderr,
            "wrote %s: %d pages, %d images in %.1f s; %d examples projected now (%.1f s), %d bottom-k patches cut "
            "now (%.1f s), %d pictures copied from the database; largest page %zu bytes (%s)\n",
            o.out, stats.pages, stats.pngs, zft_now() - t0, stats.rendered, stats.secs_render, stats.rendered_bottom,
            stats.secs_bottom, stats.reused, stats.largest, stats.largest_path);
    return 0;
}
