/* What the CPU offers and which BLAS kernels run on it. Debian's OpenBLAS is built for every x86
 * core and picks its kernels by the CPU model it recognises; a CPU newer than the library is taken
 * for an old one (an Emerald Rapids Xeon, under OpenBLAS 0.3.21, for a Prescott: SSE3 kernels, a
 * quarter of the speed of its SkylakeX ones). zfviz then names the kernels the CPU's features
 * allow instead (OPENBLAS_CORETYPE, read when the library loads: tools/main.c). */
#ifndef ZF_CPU_H
#define ZF_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

/* The widest vector extension this CPU and its OS support: "avx512", "avx2", "avx" or "sse". */
const char *zf_cpu_isa(void);
/* The kernels OpenBLAS runs ("Haswell", "SkylakeX", "Prescott", ...). */
const char *zf_blas_core(void);
/* The core OPENBLAS_CORETYPE should name for a CPU with these features when OpenBLAS chose
 * `core`: "SkylakeX" (AVX-512 F, BW, DQ, VL) or "Haswell" (AVX2 and FMA) where `core`'s kernels
 * are older than the CPU's features (SSE or AVX only); NULL where they are not. */
const char *zf_blas_better_core(const char *core, int avx2_fma, int avx512_skx);
/* The same for this CPU and the OpenBLAS loaded. */
const char *zf_blas_better_core_here(void);

#ifdef __cplusplus
}
#endif
#endif
