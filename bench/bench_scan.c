/* Times `zfviz scan` against the engine's forward pass in the same run: images/s of a full scan
 * into a fresh SQLite database (decoding on the second thread, statistics, top-k, commits) and
 * images/s of forward alone over the same images already decoded and preprocessed in memory,
 * and of the same decode + forward pipeline storing nothing (zf_scan_opts.dry_run). The store's
 * overhead is 1 - scan/pipeline (target: under 10%); 1 - scan/forward is printed too (on a
 * machine with few cores the decoding threads compete with the forward for them).
 *   bench_scan [--images DIR_OR_LIST | --make N] [--nets alexnet,zfnet] [--batch 16] [--reps 3]
 *              [--weights random:0]
 * --store-only replaces the scan's forward pass by a random fill: what the store itself costs.
 * --make N --to DIR only writes the N synthetic images into DIR (bench/run-scan.sh's folder).
 * Without --images it writes N (default 300) synthetic 500x375 JPEGs (ImageNet's typical size,
 * quality 90, textured enough that decoding costs what a photo's does) to a temporary folder.
 * Prints one JSON line per net (medians over the repetitions, forward and scan alternating so
 * drift hits both alike) and a readable summary on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "testutil.h"
#include "zf/db.h"
#include "zf/io.h"
#include "zf/net.h"

/* CPU seconds of every thread of this process: on a shared machine, a steadier measure of the
 * work done than wall time. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* Gradients, blobs and fine noise: JPEG files of 60-120 KB at 500x375, like photos. */
static int write_synthetic_jpeg(const char *path, int w, int h, uint64_t seed)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!rgb)
        return -1;
    uint64_t s = seed;
    double a[3], gx[3], gy[3], bx[8], by[8], br[8], bv[8];
    for (int k = 0; k < 3; k++) {
        a[k] = (double)(tu_mix(&s) % 256);
        gx[k] = ((double)(tu_mix(&s) % 200) - 100) / w;
        gy[k] = ((double)(tu_mix(&s) % 200) - 100) / h;
    }
    for (int i = 0; i < 8; i++) {
        bx[i] = (double)(tu_mix(&s) % (uint64_t)w);
        by[i] = (double)(tu_mix(&s) % (uint64_t)h);
        br[i] = 10 + (double)(tu_mix(&s) % 80);
        bv[i] = (double)(tu_mix(&s) % 240) - 120;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint64_t r = tu_mix(&s);
            for (int k = 0; k < 3; k++) {
                double v = a[k] + gx[k] * x + gy[k] * y + (double)((r >> (8 * k)) % 41) - 20;
                for (int i = 0; i < 8; i++) {
                    double d2 = (x - bx[i]) * (x - bx[i]) + (y - by[i]) * (y - by[i]);
                    if (d2 < br[i] * br[i])
                        v += bv[i] * ((i + k) % 3 ? 0.5 : 1);
                }
                rgb[((size_t)y * w + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    int rc = tu_write_jpeg(path, w, h, rgb, 90);
    free(rgb);
    return rc;
}

/* n synthetic photos 00000.jpg, 00001.jpg, ... in dir (made if missing); non-zero, said, on failure. */
static int write_photos(const char *dir, int n)
{
    if (mkdir(dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "bench_scan: cannot make %s: %s\n", dir, strerror(errno));
        return 1;
    }
    fprintf(stderr, "bench_scan: writing %d synthetic 500x375 JPEGs to %s\n", n, dir);
    for (int i = 0; i < n; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%05d.jpg", dir, i);
        if (write_synthetic_jpeg(p, 500, 375, 1000 + (uint64_t)i)) {
            fprintf(stderr, "bench_scan: cannot write %s\n", p);
            return 1;
        }
    }
    return 0;
}

/* --store-only: a stand-in for the forward pass that fills the scanned layers' outputs with
 * pseudo-random values, so the timings show the store's own cost per image. */
static zf_status fake_forward(void *ctx, zf_net *net, const float *input, int n)
{
    uint64_t *seed = ctx;
    (void)input;
    for (int i = 0; i + 1 < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if ((l->op != ZF_OP_CONV && l->op != ZF_OP_FC) || net->layers[i + 1].op != ZF_OP_RELU)
            continue;
        size_t m = (size_t)n * (size_t)zf_layer_out_size(l);
        float *a = net->acts[i];
        for (size_t j = 0; j < m; j++)
            a[j] = (float)((int64_t)(tu_mix(seed) >> 40) - (1 << 23)) * (1.0f / (1 << 23));
    }
    return ZF_OK;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_scan [--images DIR_OR_LIST | --make N] [--nets alexnet,zfnet] "
                    "[--batch 16] [--reps 3] [--store-only] [--weights random:0]\n"
                    "       bench_scan --make N --to DIR\n");
}

int main(int argc, char **argv)
{
    const char *images = NULL, *nets = "alexnet,zfnet", *to = NULL, *weights = "random:0";
    int make = 300, batch = 16, reps = 3, store_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--images") && i + 1 < argc)
            images = argv[++i];
        else if (!strcmp(argv[i], "--make") && i + 1 < argc)
            make = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nets") && i + 1 < argc)
            nets = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--weights") && i + 1 < argc)
            weights = argv[++i];
        else if (!strcmp(argv[i], "--to") && i + 1 < argc)
            to = argv[++i];
        else if (!strcmp(argv[i], "--store-only"))
            store_only = 1;
        else {
            usage();
            return 2;
        }
    }
    if (make < 1 || batch < 1 || reps < 1 || reps > 32) {
        usage();
        return 2;
    }
    if (to) {
        if (images) {
            usage();
            return 2;
        }
        return write_photos(to, make);
    }
    char tmp[] = "/tmp/zf_bench_scan.XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char imgdir[600];
    if (!images) {
        snprintf(imgdir, sizeof imgdir, "%s/images", tmp);
        if (write_photos(imgdir, make))
            return 1;
        images = imgdir;
    }
    char **paths;
    int64_t n;
    if (zf_db_scan_list(images, &paths, &n)) {
        fprintf(stderr, "bench_scan: %s\n", zf_last_error());
        return 1;
    }
    int status = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", nets);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name;
         name = strtok_r(NULL, ",", &save)) {
        zf_net *net = NULL;
        if (zf_net_new_builtin(name, &net) || zf_net_load_weights(net, weights) ||
            zf_net_reserve(net, batch)) {
            fprintf(stderr, "bench_scan: %s: %s\n", name, zf_last_error());
            zf_net_free(net);
            status = 1;
            continue;
        }
        /* every image decoded and preprocessed once, for the forward-only passes */
        size_t in_size = (size_t)zf_net_in_size(net);
        float *inputs = zf_alloc((size_t)n * in_size * sizeof(float));
        int64_t n_ok = 0;
        double t0 = bench_now();
        for (int64_t i = 0; i < n; i++) {
            zf_image *img = NULL;
            if (!zf_image_load(paths[i], &img) &&
                !zf_image_to_input(inputs + (size_t)n_ok * in_size, img, &net->pre, net->in_h,
                                   net->in_w))
                n_ok++;
            zf_image_free(img);
        }
        double decode_ips = (double)n / (bench_now() - t0);
        double fwd[32], scan[32], wall[32], setup[32], wait[32], fw[32], st[32], cm[32];
        double fwd_cpu[32], scan_cpu[32], pipe[32];
        for (int r = 0; r < reps; r++) {
            /* warm-up on the first repetition: one batch */
            if (r == 0 && !store_only)
                zf_net_forward(net, inputs, (int)(n_ok < batch ? n_ok : batch));
            t0 = bench_now();
            double c0 = cpu_s();
            for (int64_t b = 0; b < n_ok && !store_only; b += batch)
                zf_net_forward(net, inputs + (size_t)b * in_size,
                               (int)(n_ok - b < batch ? n_ok - b : batch));
            fwd[r] = store_only ? 0 : (double)n_ok / (bench_now() - t0);
            fwd_cpu[r] = 1e3 * (cpu_s() - c0) / (double)n_ok;

            /* the same pipeline storing nothing: decoding on its thread and the forward */
            {
                uint64_t dry_seed = 1;
                zf_scan_opts dry = {.batch = batch, .dry_run = 1,
                                    .forward = store_only ? fake_forward : NULL,
                                    .forward_ctx = &dry_seed};
                zf_scan_result res;
                if (zf_db_scan(NULL, net, (const char *const *)paths, n, &dry, &res)) {
                    fprintf(stderr, "bench_scan: %s: %s\n", name, zf_last_error());
                    status = 1;
                    break;
                }
                pipe[r] = (double)n / res.secs_images;
            }
            char dbpath[700];
            snprintf(dbpath, sizeof dbpath, "%s/%s.%d.db", tmp, name, r);
            zf_db *db = NULL;
            zf_scan_result res;
            uint64_t fake_seed = 1;
            zf_scan_opts so = {.batch = batch, .images_arg = images, .weights = weights,
                               .forward = store_only ? fake_forward : NULL,
                               .forward_ctx = &fake_seed};
            t0 = bench_now();
            c0 = cpu_s();
            if (zf_db_open(dbpath, NULL, &db) ||
                zf_db_scan(db, net, (const char *const *)paths, n, &so, &res)) {
                fprintf(stderr, "bench_scan: %s: %s\n", name, zf_last_error());
                zf_db_close(db);
                status = 1;
                break;
            }
            double total = bench_now() - t0;
            scan_cpu[r] = 1e3 * (cpu_s() - c0) / (double)n;
            zf_db_close(db);
            scan[r] = (double)n / res.secs_images;
            wall[r] = total;
            setup[r] = total - res.secs_images;
            wait[r] = res.secs_wait;
            fw[r] = res.secs_forward;
            st[r] = res.secs_stats;
            cm[r] = res.secs_commit;
        }
        if (!status) {
            double f = bench_median(fwd, reps), s = bench_median(scan, reps), pl = bench_median(pipe, reps);
            printf("{\"bench\":\"%s\",\"net\":\"%s\",\"images\":%lld,\"batch\":%d,\"reps\":%d,"
                   "\"forward_ips\":%.2f,\"pipeline_ips\":%.2f,\"scan_ips\":%.2f,"
                   "\"store_overhead\":%.4f,\"overhead_vs_forward\":%.4f,"
                   "\"decode_ips_one_thread\":%.2f,\"scan_wall_s\":%.3f,\"scan_setup_s\":%.3f,"
                   "\"scan_wait_s\":%.3f,\"scan_forward_s\":%.3f,\"scan_stats_s\":%.3f,"
                   "\"scan_commit_s\":%.3f,\"forward_cpu_ms_per_img\":%.3f,"
                   "\"scan_cpu_ms_per_img\":%.3f}\n",
                   store_only ? "scan-store-only" : "scan", name, (long long)n, batch, reps, f, pl,
                   s, 1 - s / pl, 1 - s / f, decode_ips,
                   bench_median(wall, reps), bench_median(setup, reps), bench_median(wait, reps), bench_median(fw, reps),
                   bench_median(st, reps), bench_median(cm, reps), bench_median(fwd_cpu, reps),
                   bench_median(scan_cpu, reps));
            if (store_only) {
                fprintf(stderr,
                        "%s (store only, no forward): statistics %.3f ms/img, commits %.3f ms/img "
                        "(%lld images)\n",
                        name, 1e3 * bench_median(st, reps) / (double)n,
                        1e3 * bench_median(cm, reps) / (double)n, (long long)n);
            } else {
                fprintf(stderr,
                        "%s: forward alone %.1f img/s; decode+forward pipeline %.1f img/s; scan "
                        "%.1f img/s: store overhead %.1f%% (target < 10%%), %.1f%% against "
                        "forward alone; per scan: forward %.2f s, statistics %.2f s, commits "
                        "%.2f s, waiting for decoding %.2f s; setup (model hash, run) %.2f s; "
                        "decoding alone %.1f img/s on one thread; CPU time per image: forward "
                        "%.2f ms, scan %.2f ms (decoding, setup and store included)\n",
                        name, f, pl, s, 100 * (1 - s / pl), 100 * (1 - s / f), bench_median(fw, reps),
                        bench_median(st, reps),
                        bench_median(cm, reps), bench_median(wait, reps), bench_median(setup, reps), decode_ips,
                        bench_median(fwd_cpu, reps), bench_median(scan_cpu, reps));
            }
            fflush(stdout);
        }
        zf_free(inputs);
        zf_net_free(net);
    }
    zf_db_scan_list_free(paths, n);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_scan: could not remove %s\n", tmp);
    return status;
}
