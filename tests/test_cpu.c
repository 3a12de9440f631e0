/* The BLAS kernels zfviz asks for: OpenBLAS's own choice kept where it uses the CPU's vector
 * extensions, replaced where it took the CPU for an older one; and what `zfviz info` reports. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "zf/cpu.h"

static void expect_core(const char *chosen, int avx2, int avx512, const char *want)
{
    const char *got = zf_blas_better_core(chosen, avx2, avx512);
    if (!want)
        cr_assert_null(got, "%s (avx2 %d, avx512 %d): replaced by %s", chosen, avx2, avx512, got);
    else
        cr_assert(got && !strcmp(got, want), "%s (avx2 %d, avx512 %d): %s, want %s", chosen, avx2,
                  avx512, got ? got : "kept", want);
}

Test(cpu, old_kernels_on_a_newer_cpu_are_replaced_and_modern_ones_kept)
{
    /* the case measured on an Emerald Rapids Xeon under OpenBLAS 0.3.21 */
    expect_core("Prescott", 1, 1, "SkylakeX");
    expect_core("Prescott", 1, 0, "Haswell");
    expect_core("Core2", 1, 0, "Haswell");
    expect_core("Nehalem", 1, 1, "SkylakeX");
    expect_core("Sandybridge", 1, 0, "Haswell"); /* AVX without FMA */
    expect_core("Barcelona", 1, 0, "Haswell");
    /* OpenBLAS's choice is as good as the features allow: kept, whatever the case */
    expect_core("Haswell", 1, 0, NULL);
    expect_core("Zen", 1, 1, NULL);
    expect_core("SKYLAKEX", 1, 1, NULL);
    expect_core("CooperLake", 1, 1, NULL);
    expect_core("SapphireRapids", 1, 1, NULL);
    /* a CPU without AVX2 and FMA: nothing better to name */
    expect_core("Prescott", 0, 0, NULL);
    expect_core("Sandybridge", 0, 0, NULL);
}
