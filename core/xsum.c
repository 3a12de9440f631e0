/* Exact sums of floats (zf/xsum.h): a 384-bit fixed-point integer in units of 2^-149, added to
 * without rounding and rounded once when read. */
#include <math.h>
#include <string.h>

#include "zf/xsum.h"

void zf_xsum_zero(zf_xsum *a) { memset(a, 0, sizeof *a); }

void zf_xsum_add_float(zf_xsum *a, float v)
{
    int64_t m;
    int e = zf_xsum_split(v, &m);
    if (e == 0xff)
        a->special |= (uint32_t)m;
    else
        zf_xsum_add_shifted(a, m, e ? e - 1 : 0);
}

void zf_xsum_add_double(zf_xsum *a, double v)
{
    if (isnan(v)) {
        a->special |= ZF_XSUM_NAN;
        return;
    }
    if (isinf(v) || fabs(v) >= 0x1p230) {
        a->special |= v > 0 ? ZF_XSUM_POS_INF : ZF_XSUM_NEG_INF;
        return;
    }
    if (v == 0)
        return;
    int e;
    double f = frexp(fabs(v), &e); /* |v| = f * 2^e, f in [0.5, 1) */
    int64_t m = (int64_t)ldexp(f, 53);
    int shift = e - 53 + 149; /* |v| = m * 2^(shift - 149) */
    if (shift < 0) {
        m = shift > -64 ? m >> -shift : 0;
        shift = 0;
    }
    zf_xsum_add_shifted(a, v < 0 ? -m : m, shift);
}

double zf_xsum_double(const zf_xsum *a)
{
    if (a->special) {
        if ((a->special & ZF_XSUM_NAN) ||
            (a->special & (ZF_XSUM_POS_INF | ZF_XSUM_NEG_INF)) == (ZF_XSUM_POS_INF | ZF_XSUM_NEG_INF))
            return NAN;
        return a->special & ZF_XSUM_POS_INF ? INFINITY : -INFINITY;
    }
    uint64_t m[ZF_XSUM_LIMBS];
    memcpy(m, a->limb, sizeof m);
    int neg = (int)(m[ZF_XSUM_LIMBS - 1] >> 63);
    if (neg) { /* magnitude: two's complement negation */
        uint64_t carry = 1;
        for (int i = 0; i < ZF_XSUM_LIMBS; i++) {
            m[i] = ~m[i] + carry;
            carry = carry && m[i] == 0;
        }
    }
    int top = ZF_XSUM_LIMBS - 1;
    while (top >= 0 && !m[top])
        top--;
    if (top < 0)
        return 0.0;
    int p = top * 64 + 63 - __builtin_clzll(m[top]); /* the highest set bit */
    /* the 64 bits [p - 63, p] and whether anything below them is set */
    uint64_t w = 0;
    int sticky = 0;
    int low = p - 63;
    if (low <= 0) {
        w = m[0] << -low; /* p < 64: everything is in limb 0 */
    } else {
        int q = low >> 6, r = low & 63;
        w = m[q] >> r;
        if (r && q + 1 < ZF_XSUM_LIMBS)
            w |= m[q + 1] << (64 - r);
        sticky = r && (m[q] & ((1ull << r) - 1)) != 0;
        for (int i = 0; i < q && !sticky; i++)
            sticky = m[i] != 0;
    }
    /* round the 64 bits to 53: 11 bits go */
    uint64_t mant = w >> 11, rest = w & 0x7ff;
    if (rest > 0x400 || (rest == 0x400 && (sticky || (mant & 1))))
        mant++;
    double d = ldexp((double)mant, low + 11 - 149);
    return neg ? -d : d;
}

void zf_xsum_pack(const zf_xsum *a, unsigned char out[ZF_XSUM_BYTES])
{
    for (int i = 0; i < ZF_XSUM_LIMBS; i++)
        for (int b = 0; b < 8; b++)
            out[i * 8 + b] = (unsigned char)(a->limb[i] >> (8 * b));
    for (int b = 0; b < 8; b++)
        out[ZF_XSUM_LIMBS * 8 + b] = (unsigned char)(b < 4 ? a->special >> (8 * b) : 0);
}

int zf_xsum_unpack(zf_xsum *a, const void *data, size_t len)
{
    const unsigned char *p = data;
    if (len != ZF_XSUM_BYTES || !p)
        return -1;
    zf_xsum_zero(a);
    for (int i = 0; i < ZF_XSUM_LIMBS; i++)
        for (int b = 0; b < 8; b++)
            a->limb[i] |= (uint64_t)p[i * 8 + b] << (8 * b);
    uint64_t sp = 0;
    for (int b = 0; b < 8; b++)
        sp |= (uint64_t)p[ZF_XSUM_LIMBS * 8 + b] << (8 * b);
    if (sp & ~(uint64_t)(ZF_XSUM_POS_INF | ZF_XSUM_NEG_INF | ZF_XSUM_NAN))
        return -1;
    a->special = (uint32_t)sp;
    return 0;
}

void zf_xsum_bins_init(zf_xsum_bins *b)
{
    memset(b->bin, 0, sizeof b->bin);
    b->lo = 256;
    b->hi = -1;
    b->special = 0;
}

void zf_xsum_bins_flush(zf_xsum_bins *b, zf_xsum *a)
{
    for (int e = b->lo; e <= b->hi; e++) {
        zf_xsum_add_shifted(a, b->bin[e], e ? e - 1 : 0);
        b->bin[e] = 0;
    }
    a->special |= b->special;
    b->lo = 256;
    b->hi = -1;
    b->special = 0;
}
