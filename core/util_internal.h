/* Small pieces several core files share (core only): SplitMix64's mixer behind every counter-based
 * random stream, half and bfloat16 to float and float to bfloat16, Python's round of d/2, and the
 * first maximum. */
#ifndef ZF_UTIL_INTERNAL_H
#define ZF_UTIL_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* 2^64 / the golden ratio: SplitMix64's increment, and the stride between a stream's counters. */
#define ZF_GOLDEN 0x9e3779b97f4a7c15ULL

/* SplitMix64's output function (its finaliser): a bijection of 64-bit words whose every output
 * bit depends on every input bit, which makes a counter into independent-looking random words.
 * Training resumes and tests depend on its exact values: do not change the constants. */
static inline uint64_t zf_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* One step of the SplitMix64 generator: advances *s by ZF_GOLDEN and mixes the new state. */
static inline uint64_t zf_splitmix64(uint64_t *s) { return zf_mix64(*s += ZF_GOLDEN); }

/* IEEE half to float (exact: every half is a float). */
static inline float zf_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, nan */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal half: normalise */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* bfloat16 to float (exact: its bits are a float's top half). */
static inline float zf_bf16_to_float(uint16_t b)
{
    const uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* float to bfloat16, rounded to nearest with ties to even (as hardware converts: vcvtneps2bf16,
 * PyTorch's .bfloat16()); a NaN stays a (quiet) NaN. */
static inline uint16_t zf_float_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* Python's round() of d/2: halves go to the even neighbour (torchvision's CenterCrop offset). */
static inline int zf_half_round_even(int d)
{
    int q = d / 2;
    return (d % 2) && (q % 2) ? q + 1 : q;
}

/* The index of the largest of x[0..n), the first on ties (0 when n < 2). */
static inline int zf_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

#endif
