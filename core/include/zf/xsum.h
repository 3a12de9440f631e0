/* Exact sums of floats: a fixed-point accumulator wide enough for every float and 2^63 of them, so
 * the sum does not depend on the order of the additions or on how the work was cut and merged. */
#ifndef ZF_XSUM_H
#define ZF_XSUM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The value is a two's-complement integer of ZF_XSUM_LIMBS 64-bit limbs (least significant first)
 * in units of 2^-149, the smallest float: every float is an integer there (at most 2^277), and
 * 2^63 of them still fit in the 384 bits. Infinities and NaN are kept aside as flags. */
#define ZF_XSUM_LIMBS 6
#define ZF_XSUM_BYTES (8 * ZF_XSUM_LIMBS + 8) /* the stored form: the limbs, then the flags */

enum { ZF_XSUM_POS_INF = 1, ZF_XSUM_NEG_INF = 2, ZF_XSUM_NAN = 4 };

typedef struct zf_xsum {
    uint64_t limb[ZF_XSUM_LIMBS];
    uint32_t special; /* ZF_XSUM_* flags of the non-finite values added */
} zf_xsum;

/* Floats gathered by exponent before they reach the limbs: adding one is a shift-free integer add,
 * and zf_xsum_bins_flush folds the touched bins into an accumulator. Holds up to 2^38 values
 * between flushes. */
typedef struct zf_xsum_bins {
    int64_t bin[256]; /* by the float's biased exponent; the significand (with its sign) summed */
    int lo, hi;       /* touched range; lo > hi when empty */
    uint32_t special;
} zf_xsum_bins;

void zf_xsum_zero(zf_xsum *a);
void zf_xsum_add_float(zf_xsum *a, float v);
/* The sum rounded once, to the nearest double (ties to even); +-Inf or NaN as IEEE addition of
 * the non-finite values would give. */
double zf_xsum_double(const zf_xsum *a);
/* Adds a double exactly when it is a multiple of 2^-149 below 2^230 in magnitude (any sum of
 * floats in double arithmetic is); otherwise the bits below 2^-149 are dropped and a larger value
 * counts as an infinity. For sums stored before the exact form existed. */
void zf_xsum_add_double(zf_xsum *a, double v);
/* The stored form: ZF_XSUM_BYTES bytes, little-endian, the same on every machine. */
void zf_xsum_pack(const zf_xsum *a, unsigned char out[ZF_XSUM_BYTES]);
/* 0 on success, -1 when len is not ZF_XSUM_BYTES or the flags are unknown. */
int zf_xsum_unpack(zf_xsum *a, const void *data, size_t len);

#ifdef __CUDACC__
#define ZF_XSUM_FN static inline __host__ __device__
#else
#define ZF_XSUM_FN static inline
#endif

/* a += m * 2^shift (in units of 2^-149), m sign-extended over the limbs above. (Inline, so that the
 * CUDA engine's per-plane sums, cuda/stats.cu, fold their bins the same way.) */
ZF_XSUM_FN void zf_xsum_add_shifted(zf_xsum *a, int64_t m, int shift)
{
    if (!m)
        return;
    const int q = shift >> 6, r = shift & 63;
    const uint64_t ext = m < 0 ? ~0ull : 0;
    const uint64_t lo = (uint64_t)m << r;
    const uint64_t hi = r ? (uint64_t)(m >> (64 - r)) : ext; /* arithmetic shift: gcc, clang, nvcc */
    uint64_t carry = 0;
    for (int i = q; i < ZF_XSUM_LIMBS; i++) {
        uint64_t add = i == q ? lo : i == q + 1 ? hi : ext;
        uint64_t s = a->limb[i] + add;
        uint64_t c1 = s < add;
        uint64_t t = s + carry;
        carry = c1 | (t < s);
        a->limb[i] = t;
        if (i > q && !ext && !carry)
            break;
    }
}

/* a += b, exactly (merging two partial sums). Inline, for the scan's fold on the device too. */
ZF_XSUM_FN void zf_xsum_merge(zf_xsum *a, const zf_xsum *b)
{
    uint64_t carry = 0;
    for (int i = 0; i < ZF_XSUM_LIMBS; i++) {
        uint64_t s = a->limb[i] + b->limb[i];
        uint64_t c1 = s < b->limb[i];
        uint64_t t = s + carry;
        carry = c1 | (t < s);
        a->limb[i] = t;
    }
    a->special |= b->special;
}

/* v's biased exponent e and signed integer significand *m: v = *m 2^(max(e, 1) - 150). For an
 * infinity or NaN, e = 0xff and *m is its ZF_XSUM_* flag. */
ZF_XSUM_FN int zf_xsum_split(float v, int64_t *m)
{
    union {
        float f;
        uint32_t u;
    } x = {v};
    int e = (int)(x.u >> 23 & 0xff);
    if (e == 0xff) {
        *m = (x.u & 0x7fffff) ? ZF_XSUM_NAN : (x.u >> 31) ? ZF_XSUM_NEG_INF : ZF_XSUM_POS_INF;
        return e;
    }
    int64_t a = (int64_t)((x.u & 0x7fffff) | (e ? 0x800000u : 0));
    *m = (x.u >> 31) ? -a : a;
    return e;
}

void zf_xsum_bins_init(zf_xsum_bins *b);
static inline void zf_xsum_bins_add(zf_xsum_bins *b, float v)
{
    int64_t m;
    int e = zf_xsum_split(v, &m);
    if (e == 0xff) {
        b->special |= (uint32_t)m;
        return;
    }
    b->bin[e] += m;
    if (e < b->lo)
        b->lo = e;
    if (e > b->hi)
        b->hi = e;
}
/* Adds the bins to a and empties them. */
void zf_xsum_bins_flush(zf_xsum_bins *b, zf_xsum *a);

#ifdef __cplusplus
}
#endif
#endif
