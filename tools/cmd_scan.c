/* zfviz scan: run a folder or list of images through a net and store per-unit statistics and
 * top-k examples in a SQLite database; re-running the same command continues an unfinished scan. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "viz_db.h"
#include "world.h"
#include "zf/db.h"
#include "zf/file.h"

const char zf_cmd_scan_summary[] = "scan images into a database: unit statistics, top-k, dead units";

static void usage(void)
{
    printf(
        "usage: zfviz scan (--arch A --weights W | --model F) --images DIR_OR_LIST --db OUT.db\n"
        "                  [--layers L1,L2,...] [--top K] [--batch N] [--chunk N] [--wait S]\n"
        "                  [--shard K/N] [--decode-threads N]\n\n"
        "Runs every image through the net and stores, for each unit of each scanned layer,\n"
        "how often and how strongly it fires and its top-K images, in OUT.db (SQLite; see\n"
        "docs/db.md). Re-running the same command continues where a stopped scan left off.\n\n" ZFT_MODEL_HELP
        ZFT_DEVICE_HELP
        "                    (on a GPU the forward and the conv layers' statistics run there)\n"
        "  --images P        a folder (searched recursively for .jpg/.jpeg/.png, sorted by path),\n"
        "                    one image, or a list of image paths one a line (a file, a pipe, or -\n"
        "                    for standard input; relative paths from the list's folder; at most\n"
        "                    4096 bytes a line, 1 GiB and 16,777,216 paths); a device is refused\n"
        "  --db F            the database (created if missing)\n" ZFT_WAIT_HELP
        "  --layers L,...    conv/fc layers to scan (default: every one a ReLU follows)\n"
        "  --top K           examples kept per unit, one per image (default 9)\n"
        "  --batch N         images per forward pass (default 16)\n"
        "  --chunk N         images per commit at least (default 512); commits are also spaced\n"
        "                    to take at most ~3%% of the time and are never more than a minute\n"
        "                    apart: what a killed scan loses\n"
        "  --decode-threads N  on a GPU: the threads that decode and resize the images ahead of\n"
        "                    it (default: every core this process may use); on the CPU the\n"
        "                    forward's own threads decode between its batches\n"
        "  --shard K/N       scan only the K-th of N contiguous slices of the ordered list\n"
        "                    (K = 1..N), into a database of its own; zfviz merge joins the\n"
        "                    shards into the database one scan of the whole list gives\n"
        "                    (docs/scale.md)\n"
        "  --shard-dir DIR   under mpirun (-np N): where each rank keeps its shard database,\n"
        "                    on its node's own disk (default $TMPDIR, else /tmp); rank 0 then\n"
        "                    merges the shards into --db (docs/scale.md)\n"
        "  -h, --help        this help\n\n"
        "An image that cannot be read or decoded, or whose preprocessed values are not finite\n"
        "(NaN or Inf), is skipped with a warning and counted as failed; a scan in which no image\n"
        "could be read exits with status 1.\n");
}

typedef struct ui {
    zft_progress bar;
    int started;
    int64_t start;
} ui;

static void on_started(void *ctx, const zf_scan_result *r)
{
    ui *u = ctx;
    u->start = r->start_seq;
    if (r->resumed && r->start_seq >= r->n_images)
        return;
    if (r->resumed)
        fprintf(stderr,
                "zfviz scan: continuing run %lld at image %lld of %lld (batch %d, as it began)\n",
                (long long)r->run_id, (long long)r->start_seq, (long long)r->n_images, r->batch);
    zft_progress_start(&u->bar, "scan", r->n_images - r->start_seq, "img");
    u->started = 1;
}

static void on_progress(void *ctx, int64_t done, int64_t total)
{
    ui *u = ctx;
    (void)total;
    if (u->started)
        zft_progress_update(&u->bar, done - u->start);
}

typedef struct err_ctx {
    int shown, total;
} err_ctx;

static void on_error_image(void *ctx, int64_t seq, const char *path, const char *error)
{
    err_ctx *e = ctx;
    (void)path;
    if (e->shown < 10)
        fprintf(stderr, "zfviz scan: skipped image %lld: %s\n", (long long)seq, error);
    e->shown++;
}

int zf_cmd_scan(int argc, char **argv)
{
    zft_model_opts mo = {0};
    zft_model_ref ref;
    const char *images = NULL, *dbpath = NULL, *layers_arg = NULL, *shard_dir = NULL;
    long top = 9, batch = 16, chunk = 512, decode_threads = 0;
    int shard_k = 0, shard_n = 0;
    const zft_opt opts[] = {ZFT_STR("images", 'i', &images), ZFT_STR("db", 'd', &dbpath),
                            ZFT_STR("layers", 'l', &layers_arg),
                            ZFT_LONG("top", 't', 1, 1000, "1..1000", &top),
                            ZFT_LONG("batch", 'b', 1, 4096, "1..4096", &batch),
                            ZFT_LONG("chunk", 'c', 1, 1 << 20, "1..1048576", &chunk),
                            ZFT_LONG("decode-threads", 'T', 1, 256, "1..256", &decode_threads),
                            ZFT_OWN("shard", 's', required_argument), ZFT_STR("shard-dir", 'S', &shard_dir),
                            {0}};
    zft_device dev = {0};
    zft_args a = {.cmd = "scan", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .model = &mo, .device = &dev, .shared = ZFT_WITH_WAIT};
    int opt;
    while ((opt = zft_args_next(&a)) != -1) {
        switch (opt) {
        case 's': {
            char tail;
            if (sscanf(optarg, "%d/%d%c", &shard_k, &shard_n, &tail) != 2 || shard_n < 1 ||
                shard_n > 1000000 || shard_k < 1 || shard_k > shard_n)
                return zft_usage_error("scan", "--shard takes K/N with 1 <= K <= N, not '%s'",
                                       optarg);
            break;
        }
        default: return a.rc;
        }
    }
    if (!images || !dbpath)
        return zft_usage_error("scan", "--images and --db are required (see --help)");
    /* Under mpirun, each rank scans its shard into a database of its own; rank 0 merges them. */
    zft_world w;
    zf_status s = zft_world_join(&w);
    if (s)
        return zft_fail("scan", s);
    char cmd[64] = "scan", shard_db[PATH_MAX] = "";
    const char *out_db = dbpath;
    if (w.size > 1) {
        snprintf(cmd, sizeof cmd, "scan [rank %d/%d]", w.rank + 1, w.size);
        int r0 = shard_n ? zft_usage_error(cmd, "--shard cannot be combined with mpirun's ranks, "
                                                "which give each process its shard") : 0;
        if (!r0 && (s = zft_world_shard_path(&w, shard_dir, out_db, shard_db, sizeof shard_db)))
            r0 = zft_fail(cmd, s);
        if (!r0 && w.rank == 0 && (s = zf_file_check(out_db)))
            r0 = zft_fail(cmd, s); /* before any rank scans */
        if ((r0 = zft_world_agree(&w, r0))) {
            zft_world_leave(&w);
            return r0;
        }
        shard_k = w.rank + 1;
        shard_n = w.size;
        dbpath = shard_db;
    } else if (shard_dir) {
        return zft_usage_error("scan", "--shard-dir is for the ranks of mpirun -np N");
    }

    char **paths = NULL;
    int64_t n = 0;
    zf_net *net = NULL;
    zf_db *db = NULL;
    int *idx = NULL;
    int rc = 0;
    zft_scan_forward fw = {0};
    if ((s = zf_db_scan_list(images, &paths, &n)) || (s = zft_load_model_ref(&mo, &net, &ref))) {
        rc = zft_fail(cmd, s);
        goto out;
    }
    idx = malloc((size_t)net->n_layers * sizeof *idx);
    if (!idx) {
        rc = zft_fail(cmd, zf_error(ZF_ERR_NOMEM, "out of memory"));
        goto out;
    }
    int nl = 0;
    if (layers_arg) {
        char buf[1024];
        const char *names[64];
        int k = zft_split_list(layers_arg, buf, sizeof buf, names, 64);
        for (int i = 0; i < k; i++) {
            int li = zf_net_find(net, names[i]);
            if (li > 0 && net->layers[li].op == ZF_OP_RELU)
                li--; /* relu5 means the unit outputs of conv5 */
            if (li < 0 || (net->layers[li].op != ZF_OP_CONV && net->layers[li].op != ZF_OP_FC)) {
                rc = zft_usage_error(cmd, "%s has no conv or fc layer '%s'", net->arch,
                                     names[i]);
                goto out;
            }
            idx[nl++] = li;
        }
    }
    const char *netfs = zf_db_network_fs(dbpath);
    if (netfs)
        fprintf(stderr,
                "zfviz scan: warning: %s is on a network filesystem (%s): SQLite's WAL mode is not "
                "safe there and every commit is a round trip; scan into local disk and copy the "
                "finished database (docs/scale.md)\n",
                dbpath, netfs);
    if ((s = zft_db_open(dbpath, 1, &db))) {
        rc = zft_fail(cmd, s);
        goto out;
    }
    /* On another engine than the CPU's the scan's forward runs there, the conv layers' statistics
     * are reduced there and the fc layers read back; the CPU engine keeps the scan's own
     * layer-by-layer forward. */
    fw.dev = &dev;
    fw.layers = layers_arg ? idx : NULL;
    fw.n_layers = nl;
    ui u = {0};
    zf_scan_opts so = {
        .layers = layers_arg ? idx : NULL,
        .n_layers = nl,
        .top_k = (int)top,
        .batch = (int)batch,
        .chunk = (int)chunk,
        .images_arg = images,
        .weights = ref.weights,
        .model_file = ref.file,
        .started = w.rank == 0 ? on_started : NULL, /* one progress bar for a job */
        .progress = w.rank == 0 ? on_progress : NULL,
        .progress_ctx = &u,
        .shard_k = shard_k,
        .shard_n = shard_n,
        .decode_threads = (int)decode_threads,
    };
    if ((s = zft_scan_forward_attach(&fw, net, (int)batch, &so))) {
        rc = zft_fail(cmd, s);
        goto out;
    }
    zf_scan_result res;
    s = zf_db_scan(db, net, (const char *const *)paths, n, &so, &res);
    if (u.started && !s)
        zft_progress_finish(&u.bar);
    else if (u.started && u.bar.drawn)
        fputc('\n', stderr); /* leave the bar where it stopped */
    if (s && s != ZF_ERR_INTERRUPTED) {
        rc = zft_fail(cmd, s);
        goto out;
    }
    int already = res.resumed && res.start_seq >= res.n_images;
    err_ctx ec = {0};
    zf_status se = already ? ZF_OK : zf_db_run_errors(db, res.run_id, on_error_image, &ec);
    if (se) {
        rc = zft_fail(cmd, se);
        goto out;
    }
    if (ec.shown > 10)
        fprintf(stderr, "zfviz scan: ... and %d more skipped images (SELECT path, error FROM images "
                        "WHERE status = 'error')\n", ec.shown - 10);
    if (s == ZF_ERR_INTERRUPTED) {
        fprintf(stderr, "zfviz scan: %s\n", zf_last_error());
        rc = 130;
        goto out;
    }
    if (already)
        printf("run %lld was already complete: %lld images (%lld ok, %lld failed) in %s\n",
               (long long)res.run_id, (long long)res.n_images, (long long)res.n_ok,
               (long long)res.n_failed, dbpath);
    else
        printf("run %lld: %lld images scanned (%lld ok, %lld failed) into %s\n",
               (long long)res.run_id, (long long)res.n_images, (long long)res.n_ok,
               (long long)res.n_failed, dbpath);
    if (!already && res.decode_threads > 0 && res.secs_images > 0)
        printf("  %d threads decoded ahead of the %s engine; it waited %.1f s of %.1f s for them%s\n",
               res.decode_threads, dev.iface->name, res.secs_wait, res.secs_images,
               res.secs_wait > 0.25 * res.secs_images ? " (decoding limits this scan)" : "");
    if (res.n_classes > 0)
        printf("  in %d class folders: per-class means in the views unit_class_mean and "
               "unit_selectivity\n", res.n_classes);
    if (res.n_ok == 0 && w.size == 1) { /* a job's shard may hold only bad images */
        fprintf(stderr, "zfviz scan: no image could be read: all %lld of %s failed (see above)\n",
                (long long)res.n_images, images);
        rc = 1;
    }
out:
    zft_scan_forward_close(&fw);
    zf_db_close(db);
    zf_net_free(net);
    zf_db_scan_list_free(paths, n);
    free(idx);
    if (w.size > 1)
        rc = zft_world_merge("scan", &w, rc, shard_db, out_db);
    zft_world_leave(&w);
    return rc;
}
