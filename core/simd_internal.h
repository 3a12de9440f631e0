/* AVX2 pieces the compiler does not find by itself (core only): strided loads of eight floats for
 * im2col and max-pooling, whose windows step by 2 or 4 columns, and an 8x8 transpose for the
 * Winograd tiles and the occlusion's weight rearrangement. */
#ifndef ZF_SIMD_INTERNAL_H
#define ZF_SIMD_INTERNAL_H

#ifdef __AVX2__
#include <immintrin.h>

/* p[0], p[2], ..., p[14] (reads p[0..15]). */
static inline __m256 zf_load8_stride2(const float *p)
{
    const __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8);
    const __m256 ev = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)); /* p0 p2 p8 p10 | p4 p6 p12 p14 */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* p[0], p[4], ..., p[28] (reads p[0..31]). */
static inline __m256 zf_load8_stride4(const float *p)
{
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    const __m256 c = _mm256_loadu_ps(p + 16), d = _mm256_loadu_ps(p + 24);
    const __m256 t0 = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(0, 0, 0, 0)); /* p0 p0 p8 p8 | p4 p4 p12 p12 */
    const __m256 t1 = _mm256_shuffle_ps(c, d, _MM_SHUFFLE(0, 0, 0, 0)); /* p16 p16 p24 p24 | p20 p20 p28 p28 */
    const __m256 u = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0)); /* p0 p8 p16 p24 | p4 p12 p20 p28 */
    return _mm256_permutevar8x32_ps(u, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Eight rows of eight floats into eight columns: on return a[j] holds element j of every row
 * (row q in lane q). Pairs, then quads, then halves. */
static inline void zf_transpose8x8(__m256 a[8])
{
    __m256 b[8];
    for (int q = 0; q < 8; q += 2) {
        b[q] = _mm256_unpacklo_ps(a[q], a[q + 1]);
        b[q + 1] = _mm256_unpackhi_ps(a[q], a[q + 1]);
    }
    for (int q = 0; q < 8; q += 4) {
        a[q] = _mm256_shuffle_ps(b[q], b[q + 2], _MM_SHUFFLE(1, 0, 1, 0));
        a[q + 1] = _mm256_shuffle_ps(b[q], b[q + 2], _MM_SHUFFLE(3, 2, 3, 2));
        a[q + 2] = _mm256_shuffle_ps(b[q + 1], b[q + 3], _MM_SHUFFLE(1, 0, 1, 0));
        a[q + 3] = _mm256_shuffle_ps(b[q + 1], b[q + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; j++) {
        b[j] = _mm256_permute2f128_ps(a[j], a[4 + j], 0x20);
        b[4 + j] = _mm256_permute2f128_ps(a[j], a[4 + j], 0x31);
    }
    for (int j = 0; j < 8; j++)
        a[j] = b[j];
}
#endif

#endif
