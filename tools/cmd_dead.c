/* zfviz dead: the dead-unit report of a scan: units that never fire, and optionally those that
 * fire on too few images. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "viz_db.h"
#include "zf/db.h"

const char zf_cmd_dead_summary[] = "dead-unit report of a scan: units that never (or rarely) fire";

static void usage(void)
{
    printf("usage: zfviz dead --db OUT.db [--layer L] [--min-active F] [--csv [--header]] [--run ID]\n\n"
           "Lists the units of a scan that never fired: max <= 0 over every image, max being the\n"
           "value before the ReLU. With --min-active F also the units active (some position > 0)\n"
           "on fewer than the fraction F of the images. A run in which no image could be read\n"
           "is refused (exit 1): it has nothing to say about any unit.\n\n"
           "  --db F            the scan database\n" ZFT_WAIT_HELP
           "  --layer L         only this layer (default: every scanned layer)\n"
           "  --min-active F    also report units active on fewer than F (0-1) of the images\n"
           "  --csv             print layer,unit,active_fraction,max_activation a line each and\n"
           "                    nothing else on stdout\n"
           "  --header          with --csv: a first line naming the columns\n"
           "  --run ID          which scan (default: the newest, or the newest covering --layer)\n"
           "  -h, --help        this help\n");
}

int zf_cmd_dead(int argc, char **argv)
{
    const char *dbpath = NULL, *layer = NULL;
    double min_active = 0;
    long run_id = 0;
    int csv = 0, header = 0;
    const zft_opt opts[] = {ZFT_STR("db", 'd', &dbpath), ZFT_STR("layer", 'l', &layer),
                            ZFT_MIN_ACTIVE_OPT(&min_active), ZFT_FLAG("csv", 'c', &csv),
                            ZFT_FLAG("header", 'H', &header), ZFT_RUN_OPT(&run_id), {0}};
    zft_args a = {.cmd = "dead", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .shared = ZFT_WITH_WAIT};
    if (zft_args_parse(&a))
        return a.rc;
    if (!dbpath)
        return zft_usage_error("dead", "--db is required (see --help)");
    if (header && !csv)
        return zft_usage_error("dead", "--header goes with --csv");

    zft_scan scan;
    zf_db_dead *d = NULL;
    int n = 0, rc = 0;
    zf_status s;
    if ((s = zft_run_open(&scan, dbpath, run_id, layer, 0)) ||
        (s = zf_db_dead_units(scan.db, scan.run.id, layer, min_active, &d, &n))) {
        rc = zft_fail("dead", s);
        goto out;
    }
    if (scan.run.n_ok == 0) {
        /* "0 dead" of no images would read as a finding */
        rc = zft_fail("dead", zf_error(ZF_ERR_ARG, "run %lld has no images: none of its %lld could be "
                                       "read%s", (long long)scan.run.id, (long long)scan.run.n_images,
                                       scan.run.complete ? "" : " so far"));
        goto out;
    }
    if (!scan.run.complete)
        fprintf(stderr, "zfviz dead: run %lld is not finished: %lld of %lld images so far\n",
                (long long)scan.run.id, (long long)scan.run.next_seq, (long long)scan.run.n_images);
    if (csv) {
        if (header)
            printf("layer,unit,active_fraction,max_activation\n");
        for (int i = 0; i < n; i++)
            printf("%s,%d,%.9g,%.9g\n", d[i].layer, d[i].unit, d[i].active_fraction,
                   d[i].max_activation);
        goto out;
    }
    printf("run %lld: %s (sha256 %.12s), %lld images (%lld failed to load), layers %s\n",
           (long long)scan.run.id, scan.model.arch, scan.model.sha256, (long long)scan.run.n_ok,
           (long long)scan.run.n_failed, scan.run.layers);
    if (min_active > 0)
        printf("units that never fire (max <= 0) or fire on fewer than %.4g of the images: %d\n",
               min_active, n);
    else
        printf("units that never fire (max <= 0 before the ReLU on every image): %d\n", n);
    if (n > 0)
        printf("%-12s %6s %16s %16s\n", "layer", "unit", "active_fraction", "max_activation");
    for (int i = 0; i < n; i++)
        printf("%-12s %6d %16.6f %16.6g%s\n", d[i].layer, d[i].unit, d[i].active_fraction,
               d[i].max_activation, d[i].max_activation <= 0 ? "  dead" : "");
out:
    free(d);
    zft_scan_close(&scan);
    return rc;
}
