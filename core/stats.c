/* Per-plane statistics for the scan (zf/stats.h), on the CPU. */
#include "zf/stats.h"

#include <string.h>

/* The first position (row-major) of p[0..n) equal to v; 0 where none is (v a NaN). */
static int first_equal(const float *p, int n, float v)
{
    int a = 0;
    while (a < n && !(p[a] == v))
        a++;
    return a < n ? a : 0;
}

void zf_plane_stats_compute(const float *p, int n, zf_xsum_bins *bins, zf_plane_stats *out)
{
    /* eight lanes, so that the compiler keeps them in vector registers */
    int c8[8] = {0};
    float m8[8], n8[8];
    int j = 0;
    for (int l = 0; l < 8; l++)
        m8[l] = n8[l] = p[0];
    for (; j + 8 <= n; j += 8) {
        for (int l = 0; l < 8; l++) {
            float v = p[j + l];
            c8[l] += v > 0.0f;
            m8[l] = v > m8[l] ? v : m8[l];
            n8[l] = v < n8[l] ? v : n8[l];
        }
    }
    for (int l = 0; j < n; j++, l++) {
        float v = p[j];
        c8[l] += v > 0.0f;
        m8[l] = v > m8[l] ? v : m8[l];
        n8[l] = v < n8[l] ? v : n8[l];
    }
    for (int i = 0; i < n; i++)
        if (p[i] > 0.0f)
            zf_xsum_bins_add(bins, p[i]);
    zf_xsum_zero(&out->sum);
    zf_xsum_bins_flush(bins, &out->sum);
    int c = 0;
    float m = m8[0], mn = n8[0];
    for (int l = 0; l < 8; l++) {
        c += c8[l];
        m = m8[l] > m ? m8[l] : m;
        mn = n8[l] < mn ? n8[l] : mn;
    }
    out->positive = c;
    out->max = m;
    out->argmax = first_equal(p, n, m);
    out->min = mn;
    out->argmin = first_equal(p, n, mn);
}

void zf_layer_stats(const float *act, int n, int units, int hw, zf_plane_stats *planes, int64_t *hist)
{
#pragma omp parallel
    {
        zf_xsum_bins bins;
        zf_xsum_bins_init(&bins);
#pragma omp for schedule(static)
        for (int c = 0; c < units; c++) {
            int64_t *h = hist + (size_t)c * ZF_HIST_BINS;
            for (int i = 0; i < n; i++) {
                const float *p = act + ((size_t)i * units + c) * (size_t)hw;
                zf_plane_stats_compute(p, hw, &bins, &planes[(size_t)i * units + c]);
                for (int q = 0; q < hw; q++)
                    h[zf_hist_bin(p[q])]++;
            }
        }
    }
}
