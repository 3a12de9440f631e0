/* The CPU's vector extensions (GCC's __builtin_cpu_supports: CPUID and what the OS saves) and the
 * OpenBLAS kernels chosen for it. */
#include "zf/cpu.h"

#include <cblas.h>
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "conv_internal.h"
#include "dnnl_internal.h"
#include "gemm_internal.h"

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

/* The x86-64 level the kernels' copies are compiled for that this CPU and its OS run: 4 (x86-64-v4:
 * AVX-512 F, BW, CD, DQ, VL), 3 (x86-64-v3: AVX2, FMA, BMI1, BMI2, F16C, LZCNT, MOVBE) or 1 (x86-64:
 * SSE2). Read from CPUID itself: the compiler may use any instruction of the level, and clang's
 * __builtin_cpu_supports does not know every one of them. */
static int x86_level(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 1;
    const unsigned l1 = c; /* FMA 12, MOVBE 22, OSXSAVE 27, AVX 28, F16C 29 */
    const unsigned need1 = 1u << 12 | 1u << 22 | 1u << 27 | 1u << 28 | 1u << 29;
    if ((l1 & need1) != need1 || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 1;
    const unsigned l7 = b; /* BMI1 3, AVX2 5, BMI2 8, AVX512F 16, DQ 17, CD 28, BW 30, VL 31 */
    if (!__get_cpuid(0x80000001, &a, &b, &c, &d) || !(c & 1u << 5)) /* LZCNT */
        return 1;
    uint32_t xcr0_lo, xcr0_hi;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    (void)xcr0_hi;
    const unsigned need7 = 1u << 3 | 1u << 5 | 1u << 8;
    if ((xcr0_lo & 0x6) != 0x6 || (l7 & need7) != need7) /* the OS saves SSE and AVX state */
        return 1;
    const unsigned need512 = 1u << 16 | 1u << 17 | 1u << 28 | 1u << 30 | 1u << 31;
    if ((xcr0_lo & 0xe6) == 0xe6 && (l7 & need512) == need512) /* and opmask, ZMM state */
        return 4;
    return 3;
}

const char *zf_cpu_kernels_max(void)
{
    const int level = x86_level();
    return level >= 4 ? "avx512" : level >= 3 ? "avx2" : "sse";
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

const char *zf_cpu_gemm(void) { return zf_sgemm_library(); }

const char *zf_cpu_wait(void)
{
    static _Thread_local char buf[96];
    const char *wait = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    if (wait && *wait)
        snprintf(buf, sizeof buf, "wait policy %s", wait);
    else
        snprintf(buf, sizeof buf, "waiting threads spin %s times, then sleep", spin && *spin ? spin : "300000");
    return buf;
}

const char *zf_cpu_dnnl(void)
{
    static _Thread_local char buf[64];
    const char *isa = zf_dnnl_isa();
    if (!isa)
        return NULL;
    snprintf(buf, sizeof buf, "oneDNN %s (%s)", zf_dnnl_version(), isa);
    return buf;
}

const char *zf_cpu_conv_path(const zf_conv_geom *g) { return zf_conv_path_name(g); }
