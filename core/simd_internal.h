/* Strided loads of eight floats with AVX2 (core only): what the compiler does not vectorise by
 * itself in im2col and max-pooling, whose windows step by 2 or 4 columns. */
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
#endif

#endif
