/* The statistics a dataset scan keeps of every unit (db/scan.c), per plane: one channel's output on
 * one image. Both engines make them (the engine table's layer_stats; core/stats.c and its twin
 * cuda/stats.cu) so that another engine sends a scan a few numbers a plane instead of the plane. */
#ifndef ZF_STATS_H
#define ZF_STATS_H

#include <stdint.h>

#include "zf/xsum.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A value's histogram bin, from its bits: magnitudes in [2^-16, 2^16) in quarter octaves
 * ([2^o (1 + m/4), 2^o (1 + (m+1)/4)), o = -16..15, m = 0..3), mirrored for negative values.
 * Bin 0: below -2^16 (and -inf); 1..128: negative, most negative first; 129: (-2^-16, 2^-16) and
 * zero; 130..257: positive; 258: 2^16 and above (and +inf); 259: NaN. */
#define ZF_HIST_BINS 260

#ifdef __CUDACC__
#define ZF_STATS_FN static inline __host__ __device__
#else
#define ZF_STATS_FN static inline
#endif

ZF_STATS_FN int zf_hist_bin(float v)
{
    union {
        float f;
        uint32_t u;
    } x = {v};
    int e = (int)(x.u >> 23 & 0xff);
    if (e == 0xff && (x.u & 0x7fffff))
        return 259;
    if (e < 127 - 16)
        return 129;
    int neg = (int)(x.u >> 31);
    if (e >= 127 + 16)
        return neg ? 0 : 258;
    int j = ((e - (127 - 16)) << 2) | (int)(x.u >> 21 & 3); /* 0..127 by magnitude */
    return neg ? 128 - j : 130 + j;
}

/* One plane's summary. */
typedef struct zf_plane_stats {
    zf_xsum sum;            /* of the values > 0, exactly (+inf as its flag) */
    int32_t positive;       /* how many values are > 0 */
    int32_t argmax, argmin; /* the first position (row-major) holding max, min; 0 where none does */
    float max, min;         /* m = p[0], then m = (v > m ? v : m) over the rest (min likewise): a NaN
                               counts only as the first value */
} zf_plane_stats;

/* The summary of p[0..n), n >= 1. bins is scratch (zf_xsum_bins_init'ed, left empty). */
void zf_plane_stats_compute(const float *p, int n, zf_xsum_bins *bins, zf_plane_stats *out);

/* The summaries of a layer's output act (n images x units x hw), planes[i * units + c], and every
 * value's bin counted into hist (units x ZF_HIST_BINS, added to). The CPU engine's layer_stats. */
void zf_layer_stats(const float *act, int n, int units, int hw, zf_plane_stats *planes, int64_t *hist);

#ifdef __cplusplus
}
#endif
#endif
