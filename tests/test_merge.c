/* Exact sums and sharded scans: the accumulator against Python's rational arithmetic on
 * adversarial floats and across orders and cuts; scans cut into shards (--shard K/N), one killed
 * and resumed, merged (zfviz merge) and compared with a one-process scan of the same list through
 * sqlite3; shards that do not belong together refused. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/xsum.h"

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A float with a random sign, significand and exponent over the whole range (subnormals too). */
static float any_float(uint64_t *s)
{
    union {
        uint32_t u;
        float f;
    } x;
    do
        x.u = (uint32_t)mix(s);
    while ((x.u >> 23 & 0xff) == 0xff);
    return x.f;
}

/* The sum of v[0..n) as Python's fractions.Fraction computes it, rounded once to a double. */
static double rational_sum(const float *v, size_t n, const char *tag)
{
    const char *dir = tu_tmpdir(tag);
    char in[4096], out[4096];
    snprintf(in, sizeof in, "%s/values.txt", dir);
    snprintf(out, sizeof out, "%s/sum.txt", dir);
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%a\n", (double)v[i]);
    fclose(f);
    cr_assert_eq(tu_system("/usr/bin/python3 -c \"import sys; from fractions import Fraction as F; "
                           "s = sum((F(float.fromhex(l)) for l in open(sys.argv[1])), F(0)); "
                           "open(sys.argv[2], 'w').write(float(s).hex())\" '%s' '%s'",
                           in, out),
                 0, "python3 did not run");
    f = fopen(out, "r");
    cr_assert_not_null(f);
    char buf[64] = "";
    cr_assert(fgets(buf, sizeof buf, f));
    fclose(f);
    return strtod(buf, NULL);
}

static double xsum_of(const float *v, size_t n)
{
    zf_xsum a;
    zf_xsum_zero(&a);
    for (size_t i = 0; i < n; i++)
        zf_xsum_add_float(&a, v[i]);
    return zf_xsum_double(&a);
}

static void expect_same_double(double got, double want, const char *what)
{
    cr_assert(memcmp(&got, &want, sizeof got) == 0, "%s: %a, the rational sum rounds to %a", what,
              got, want);
}

Test(xsum, adversarial_sums_equal_the_rational_sum_rounded_once)
{
    /* cancellation: the largest floats cancel and leave the tiny ones (float64 arithmetic in any
     * order loses them all) */
    float a[] = {3.4e38f, 1e-45f, -3.4e38f, 3e-39f, 1.0f, 3.4e38f, -1.0f, -3.4e38f, 7e-45f};
    expect_same_double(xsum_of(a, 9), rational_sum(a, 9, "xsum_cancel"), "cancellation");
    cr_assert(xsum_of(a, 9) > 0 && xsum_of(a, 9) < 1e-37);
    /* huge and tiny mixed: 2^127 with halves of the last place below it, so the rounding is a tie
     * decided by the sticky tiny values */
    float b[] = {0x1p127f, 0x1p73f, 1e-45f, 0x1p73f, -1e-45f, 1e-45f};
    expect_same_double(xsum_of(b, 6), rational_sum(b, 6, "xsum_tie"), "tie and sticky bit");
    /* a sum that is exactly zero */
    float c[] = {1e30f, -1e-30f, -1e30f, 1e-30f};
    cr_assert(xsum_of(c, 4) == 0.0);
    /* many values over the whole float range, and many small positive ones (the scan's case) */
    size_t n = 20000;
    float *v = malloc(n * sizeof *v);
    uint64_t s = 42;
    for (size_t i = 0; i < n; i++)
        v[i] = any_float(&s);
    expect_same_double(xsum_of(v, n), rational_sum(v, n, "xsum_wide"), "whole range");
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(mix(&s) % 1000000) * 1e-3f * (i % 3 ? 1.0f : 1e-6f);
    expect_same_double(xsum_of(v, n), rational_sum(v, n, "xsum_small"), "small positive");
    free(v);
}

Test(xsum, the_sum_does_not_depend_on_order_or_on_the_cut)
{
    size_t n = 5000;
    float *v = malloc(n * sizeof *v);
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++)
        v[i] = any_float(&s);
    zf_xsum ref;
    zf_xsum_zero(&ref);
    for (size_t i = 0; i < n; i++)
        zf_xsum_add_float(&ref, v[i]);
    unsigned char want[ZF_XSUM_BYTES], got[ZF_XSUM_BYTES];
    zf_xsum_pack(&ref, want);
    for (int trial = 0; trial < 5; trial++) {
        for (size_t i = n - 1; i > 0; i--) { /* shuffle */
            size_t j = (size_t)(mix(&s) % (i + 1));
            float t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        /* cut into pieces of random sizes, each summed apart (bins or single adds), stored and
         * read back, then merged */
        zf_xsum total;
        zf_xsum_zero(&total);
        for (size_t i = 0; i < n;) {
            size_t len = 1 + (size_t)(mix(&s) % 700);
            if (len > n - i)
                len = n - i;
            zf_xsum part;
            zf_xsum_zero(&part);
            if (trial & 1) {
                zf_xsum_bins b;
                zf_xsum_bins_init(&b);
                for (size_t j = 0; j < len; j++)
                    zf_xsum_bins_add(&b, v[i + j]);
                zf_xsum_bins_flush(&b, &part);
            } else {
                for (size_t j = 0; j < len; j++)
                    zf_xsum_add_float(&part, v[i + j]);
            }
            unsigned char blob[ZF_XSUM_BYTES];
            zf_xsum_pack(&part, blob);
            zf_xsum back;
            cr_assert_eq(zf_xsum_unpack(&back, blob, sizeof blob), 0);
            zf_xsum_merge(&total, &back);
            i += len;
        }
        zf_xsum_pack(&total, got);
        cr_assert(memcmp(got, want, sizeof got) == 0, "trial %d: the limbs differ", trial);
    }
    free(v);
}

Test(xsum, double_sums_of_floats_enter_exactly_and_non_finite_values_are_kept)
{
    zf_xsum a, b;
    zf_xsum_zero(&a);
    zf_xsum_zero(&b);
    double d = 0;
    uint64_t s = 3;
    for (int i = 0; i < 1000; i++) {
        float f = (float)(mix(&s) % 100000) * 1e-5f;
        d += f;
        zf_xsum_add_float(&a, f);
    }
    zf_xsum_add_double(&b, d);
    cr_assert(zf_xsum_double(&b) == d, "%a came back as %a", d, zf_xsum_double(&b));
    /* and exactly: taking away the float64 sum of the floats leaves its rounding error */
    zf_xsum_add_double(&b, -d);
    cr_assert(zf_xsum_double(&b) == 0.0);
    zf_xsum_add_float(&a, INFINITY);
    cr_assert(isinf(zf_xsum_double(&a)) && zf_xsum_double(&a) > 0);
    zf_xsum_add_float(&a, -INFINITY);
    cr_assert(isnan(zf_xsum_double(&a)));
    unsigned char bad[ZF_XSUM_BYTES] = {0};
    bad[ZF_XSUM_BYTES - 1] = 1;
    cr_assert_eq(zf_xsum_unpack(&a, bad, sizeof bad), -1);
    cr_assert_eq(zf_xsum_unpack(&a, bad, 10), -1);
}
