/* The CPU's vector extensions (GCC's __builtin_cpu_supports: CPUID and what the OS saves) and the
 * OpenBLAS kernels chosen for it. */
#include "zf/cpu.h"

#include <cblas.h>
#include <strings.h>

static int has_avx2_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int has_avx512_skx(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

const char *zf_cpu_isa(void)
{
    __builtin_cpu_init();
    if (has_avx512_skx())
        return "avx512";
    if (has_avx2_fma())
        return "avx2";
    if (__builtin_cpu_supports("avx"))
        return "avx";
    return "sse";
}

const char *zf_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c && *c ? c : "unknown";
}

const char *zf_blas_better_core(const char *core, int avx2_fma, int avx512_skx)
{
    /* OpenBLAS's x86-64 cores whose kernels use AVX2 and FMA (or AVX-512) */
    static const char *const modern[] = {"haswell", "zen", "skylakex", "cooperlake",
                                         "sapphirerapids", NULL};
    if (!avx2_fma || !core)
        return NULL;
    for (int i = 0; modern[i]; i++)
        if (!strcasecmp(core, modern[i]))
            return NULL;
    return avx512_skx ? "SkylakeX" : "Haswell";
}

const char *zf_blas_better_core_here(void)
{
    __builtin_cpu_init();
    return zf_blas_better_core(zf_blas_core(), has_avx2_fma(), has_avx512_skx());
}
