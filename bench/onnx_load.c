/* ONNX load time against the time to read the same file: zf_onnx_load must stay under twice the
 * read time for a ~250 MB model (issue 3). Measures both with the file in the page cache (warm)
 * and after dropping the file's cached pages with posix_fadvise (cold), median of N runs.
 *   zf_bench_onnx_load MODEL.onnx [RUNS]
 * The full-size bvlc_alexnet fixture (build/fixtures/onnx/bvlc_alexnet_full.onnx, 244 MB, made
 * by tests/fixtures/gen_onnx.py) is the model the issue means. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "zf/onnx.h"

static int drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    fdatasync(fd);
    int r = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    return r;
}

/* What "reading the file" costs: open, read all of it into fresh memory, close. */
static double time_read(const char *path, size_t size)
{
    double t0 = bench_now();
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    char *buf = malloc(size);
    size_t done = 0;
    while (buf && done < size) {
        ssize_t r = read(fd, buf + done, size - done);
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    close(fd);
    free(buf);
    double t = bench_now() - t0;
    return done == size ? t : -1;
}

static double time_load(const char *path)
{
    double t0 = bench_now();
    zf_net *net;
    if (zf_onnx_load(path, NULL, &net)) {
        fprintf(stderr, "zf_bench_onnx_load: %s\n", zf_last_error());
        exit(1);
    }
    double t = bench_now() - t0;
    zf_net_free(net);
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: zf_bench_onnx_load MODEL.onnx [RUNS (default 5)]\n");
        return 2;
    }
    const char *path = argv[1];
    int runs = argc == 3 ? atoi(argv[2]) : 5;
    if (runs < 1 || runs > 100) {
        fprintf(stderr, "zf_bench_onnx_load: RUNS must be 1..100\n");
        return 2;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "zf_bench_onnx_load: %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t size = (size_t)st.st_size;
    double rw[100], lw[100], rc[100], lc[100];
    int cold = drop_cache(path) == 0;
    time_load(path); /* warm up: page cache, allocator */
    for (int i = 0; i < runs; i++) {
        rw[i] = time_read(path, size);
        lw[i] = time_load(path);
        if (cold) {
            drop_cache(path);
            rc[i] = time_read(path, size);
            drop_cache(path);
            lc[i] = time_load(path);
        }
    }
    double mrw = bench_median(rw, runs), mlw = bench_median(lw, runs);
    printf("model      %s (%.1f MB)\n", path, size / 1e6);
    printf("warm       read %.3f s   load %.3f s   load/read %.2f\n", mrw, mlw, mlw / mrw);
    if (cold) {
        double mrc = bench_median(rc, runs), mlc = bench_median(lc, runs);
        printf("cold       read %.3f s   load %.3f s   load/read %.2f\n", mrc, mlc, mlc / mrc);
    } else {
        printf("cold       (posix_fadvise could not drop the file's pages; not measured)\n");
    }
    printf("runs       %d (medians)\n", runs);
    return 0;
}
