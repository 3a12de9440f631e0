/* zfviz merge: join the databases of a sharded scan (zfviz scan --shard K/N) into the database
 * one scan of the whole list gives. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "zf/db.h"
#include "zf/file.h"

const char zf_cmd_merge_summary[] = "join the shard databases of a sharded scan into one";

static void usage(void)
{
    printf("usage: zfviz merge -o OUT.db [--force] SHARD.db...\n\n"
           "Joins the databases that `zfviz scan --shard K/N` wrote (in any order) into OUT.db,\n"
           "which then holds exactly what one scan of the whole list writes: the same images,\n"
           "counts, maxima and where, top-k (ties to the earlier image) and sums (exact, so the\n"
           "cut does not matter). The shards must share the model, preprocessing, image list,\n"
           "layers, top-k and batch, be finished, and cover the list exactly once; otherwise\n"
           "nothing is written and one line names the file and what differs. Memory does not\n"
           "grow with the number of shards. See docs/scale.md.\n\n"
           "  -o, --out F       the merged database; written beside F and renamed into place, so\n"
           "                    F is whole or untouched; a zfviz database there is replaced\n" ZFT_FORCE_HELP
           "  -h, --help        this help\n");
}

int zf_cmd_merge(int argc, char **argv)
{
    const char *out = NULL;
    const zft_opt opts[] = {ZFT_STR("out", 'o', &out), {0}};
    zft_args a = {.cmd = "merge", .argc = argc, .argv = argv, .shortopts = "o:h", .opts = opts,
                  .usage = usage, .shared = ZFT_WITH_FORCE, .operands = -1};
    if (zft_args_parse(&a))
        return a.rc;
    if (!out)
        return zft_usage_error("merge", "-o OUT.db is required (see --help)");
    if (optind >= argc)
        return zft_usage_error("merge", "no shard databases given (see --help)");
    zf_status s = zf_file_check(out);
    if (s)
        return zft_fail("merge", s);
    zf_merge_result r;
    s = zf_db_merge(out, (const char *const *)argv + optind, argc - optind, &r);
    if (s)
        return zft_fail("merge", s);
    printf("merged %d shard%s into %s: run %lld, %lld images (%lld ok, %lld failed)\n", r.n_shards,
           r.n_shards == 1 ? "" : "s", out, (long long)r.run_id, (long long)r.n_images,
           (long long)r.n_ok, (long long)r.n_failed);
    return 0;
}
