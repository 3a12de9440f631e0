/* zfviz runs: the scans a database holds, with their models and progress; two models scanned
 * over the same images show side by side. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "viz_db.h"
#include "zf/db.h"

const char zf_cmd_runs_summary[] = "list the scans in a database, their models and progress";

static void usage(void)
{
    printf("usage: zfviz runs --db OUT.db\n\n"
           "Lists every scan in the database: id, model (arch, weights or file, hash), images\n"
           "done of the list, layers and top-k.\n\n"
           "  --db F            the scan database\n" ZFT_WAIT_HELP "  -h, --help        this help\n");
}

static void show(void *ctx, const zf_db_run *r, const zf_db_model *m)
{
    (void)ctx;
    printf("run %lld: %s %s (sha256 %.12s), %lld/%lld images (%lld failed)%s, top %d, "
           "started %s\n  images %s\n  layers %s\n",
           (long long)r->id, m->arch, m->file[0] ? m->file : m->weights, m->sha256,
           (long long)r->next_seq, (long long)r->n_images, (long long)r->n_failed,
           r->complete ? ", complete" : ", unfinished", r->top_k, r->started, r->images, r->layers);
}

int zf_cmd_runs(int argc, char **argv)
{
    const char *dbpath = NULL;
    const zft_opt opts[] = {ZFT_STR("db", 'd', &dbpath), {0}};
    zft_args a = {.cmd = "runs", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .shared = ZFT_WITH_WAIT};
    if (zft_args_parse(&a))
        return a.rc;
    if (!dbpath)
        return zft_usage_error("runs", "--db is required (see --help)");
    zf_db *db = NULL;
    zf_status s;
    if ((s = zft_db_open(dbpath, 0, &db)) || (s = zf_db_runs(db, show, NULL))) {
        zf_db_close(db);
        return zft_fail("runs", s);
    }
    zf_db_close(db);
    return 0;
}
