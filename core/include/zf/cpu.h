/* What the CPU offers and which BLAS kernels run on it. Debian's OpenBLAS is built for every x86
 * core and picks its kernels by the CPU model it recognises; a CPU newer than the library is taken
 * for an old one (an Emerald Rapids Xeon, under OpenBLAS 0.3.21, for a Prescott: SSE3 kernels, a
 * quarter of the speed of its SkylakeX ones). zfviz then names the kernels the CPU's features
 * allow instead (OPENBLAS_CORETYPE, read when the library loads: tools/main.c). */
#ifndef ZF_CPU_H
#define ZF_CPU_H

#include "zf/ops.h"
#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The widest vector extension this CPU and its OS support: "avx512", "avx2", "avx" or "sse". */
const char *zf_cpu_isa(void);
/* zfviz's own kernels (convolution, Winograd, pooling, LRN, fully connected, ReLU, softmax, the
 * occlusion's recomputation) are compiled once per instruction set and one set is chosen at run
 * time (core/kernels.c): "avx512" (x86-64-v4), "avx2" (x86-64-v3: AVX2 and FMA) or "sse" (x86-64).
 * The widest set this CPU and its OS can run. */
const char *zf_cpu_kernels_max(void);
/* The set that runs. Until zf_cpu_set_kernels is called: the one the environment variable
 * ZFVIZ_ISA names when this CPU can run it, else the widest (zfviz and the benchmarks refuse a
 * ZFVIZ_ISA they cannot follow: tools/main.c). */
const char *zf_cpu_kernels(void);
/* Runs the set `isa` ("sse", "avx2" or "avx512") from now on; NULL or "" for the widest this CPU
 * can run. ZF_ERR_ARG for another name and ZF_ERR_UNSUPPORTED for a set wider than the CPU's, which
 * leave the kernels as they were. Not to be called while kernels run on other threads. */
zf_status zf_cpu_set_kernels(const char *isa);
/* The kernels OpenBLAS runs ("Haswell", "SkylakeX", "Prescott", ...). */
const char *zf_blas_core(void);
/* The core OPENBLAS_CORETYPE should name for a CPU with these features when OpenBLAS chose
 * `core`: "SkylakeX" (AVX-512 F, BW, DQ, VL) or "Haswell" (AVX2 and FMA) where `core`'s kernels
 * are older than the CPU's features (SSE or AVX only); NULL where they are not. */
const char *zf_blas_better_core(const char *core, int avx2_fma, int avx512_skx);
/* The same for this CPU and the OpenBLAS loaded. */
const char *zf_blas_better_core_here(void);

/* oneDNN as the CPU engine uses it: "oneDNN 2.6.3 (avx2)", its version and the widest instruction
 * set it dispatches to with the kernel set that runs; NULL where zfviz is built without it or it
 * cannot run that set (core/dnnl_internal.h). */
const char *zf_cpu_dnnl(void);
/* The library every SGEMM of the CPU engine runs in this process: "oneDNN" where OpenBLAS's kernels
 * are older than the CPU and zfviz has oneDNN, else "OpenBLAS" (core/gemm_internal.h). */
const char *zf_cpu_gemm(void);
/* How the OpenMP threads wait for one another, as libgomp reads it from the environment: "wait
 * policy passive" (OMP_WAIT_POLICY), "waiting threads spin 3000 times, then sleep" (GOMP_SPINCOUNT,
 * or libgomp's default of 300000). */
const char *zf_cpu_wait(void);
/* The path the CPU engine's convolution takes for g: "winograd-f4", "winograd-f2", "polyphase-f4",
 * "polyphase-f2", "im2col" or "onednn:<oneDNN's implementation>" (core/conv.c says when). */
const char *zf_cpu_conv_path(const zf_conv_geom *g);

#ifdef __cplusplus
}
#endif
#endif
