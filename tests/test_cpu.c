/* The BLAS kernels zfviz asks for: OpenBLAS's own choice kept where it uses the CPU's vector
 * extensions, replaced where it took the CPU for an older one; and what `zfviz info` reports. */
#include <criterion/criterion.h>
#include <stdio.h>
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

/* `zfviz info`'s kernels line, run with `env` before the program (an empty string: as it is). */
static char *info_kernels(const char *env)
{
    const char *dir = tu_tmpdir("cpu_info");
    char out[4096];
    snprintf(out, sizeof out, "%s/info.txt", dir);
    cr_assert_eq(tu_system("env -u OPENBLAS_CORETYPE -u ZFVIZ_BLAS_GUESS %s '%s' info > '%s' 2>&1",
                           env, tu_build("tools/zfviz"), out),
                 0);
    char *text = tu_slurp(out, NULL);
    char *line = strstr(text, "kernels: ");
    cr_assert_not_null(line, "no kernels line in: %s", text);
    char *copy = strndup(line, strcspn(line, "\n"));
    free(text);
    return copy;
}

Test(cpu, zfviz_runs_kernels_the_cpu_allows_and_keeps_a_coretype_it_is_given)
{
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    /* as it is: whatever OpenBLAS chose, it is nothing the CPU's features could better */
    char *line = info_kernels("");
    char core[64] = "";
    const char *p = strstr(line, "OpenBLAS: ");
    cr_assert_not_null(p, "%s", line);
    sscanf(p + 10, "%63[A-Za-z0-9]", core);
    cr_assert_null(zf_blas_better_core(core, avx2, avx512), "runs %s: %s", core, line);
    /* and so its GEMMs stay with OpenBLAS */
    cr_assert(strstr(line, "; GEMM: OpenBLAS)"), "%s", line);
    free(line);
    /* a coretype the caller set is what runs */
    line = info_kernels("OPENBLAS_CORETYPE=Prescott");
    cr_assert(strstr(line, "OpenBLAS: Prescott, as OPENBLAS_CORETYPE asks"), "%s", line);
    /* Prescott is older than any x86-64 CPU with AVX2: the GEMMs move to oneDNN where zfviz has it */
    if (avx2 && zf_cpu_dnnl())
        cr_assert(strstr(line, "; GEMM: oneDNN)"), "%s", line);
    else
        cr_assert(strstr(line, "; GEMM: OpenBLAS)"), "%s", line);
    free(line);
}
