/* zf_clock_now: the monotonic clock behind every timing (zf/clock.h). */
#include "zf/clock.h"

#include <time.h>

double zf_clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
