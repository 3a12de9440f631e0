/* Timing helpers shared by the benchmarks. */
#ifndef ZF_BENCH_UTIL_H
#define ZF_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

#include "zf/clock.h"

/* Seconds on a clock: CLOCK_MONOTONIC for the wall clock, CLOCK_PROCESS_CPUTIME_ID for CPU time
 * (bench_cpu's --cpu-time). */
static inline double bench_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Wall-clock seconds, on the engine's own clock. */
static inline double bench_now(void) { return zf_clock_now(); }

/* qsort order of doubles. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n), n >= 1 (sorts v). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
