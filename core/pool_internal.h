/* The windows and divisors of average pooling, shared by its forward (pool.c) and its gradient
 * (backward.c) so that both divide by the same count (core only). */
#ifndef ZF_POOL_INTERNAL_H
#define ZF_POOL_INTERNAL_H

/* One side of window o (stride s, kernel k, leading padding p0 and trailing p1, over n inputs):
 * the inputs it covers [lo, hi), and `padded`, its length clipped to the padded input, which
 * PyTorch's divisor counts when count_include_pad is set ((hi - lo) when it is not). */
typedef struct zf_avg_span {
    int lo, hi, padded;
} zf_avg_span;

static inline zf_avg_span zf_avgpool_span(int o, int s, int k, int p0, int p1, int n)
{
    const int start = o * s - p0;
    const int end_pad = start + k < n + p1 ? start + k : n + p1;
    const zf_avg_span r = {start < 0 ? 0 : start, start + k < n ? start + k : n, end_pad - start};
    return r;
}

/* The divisor of the window with sides y and x. */
static inline int zf_avgpool_div(zf_avg_span y, zf_avg_span x, int count_include_pad)
{
    return count_include_pad ? y.padded * x.padded : (y.hi - y.lo) * (x.hi - x.lo);
}

#endif
