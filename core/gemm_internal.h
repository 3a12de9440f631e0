/* The one SGEMM of core (core only): every GEMM of the convolution paths (im2col, Winograd, the
 * backward passes) and of the fully connected layers goes through zf_sgemm, which takes oneDNN's
 * sgemm (its kernels chosen by the CPU's features) where OpenBLAS runs kernels older than the CPU
 * (it does not know it, or OPENBLAS_CORETYPE forces old ones), and OpenBLAS elsewhere. */
#ifndef ZF_GEMM_INTERNAL_H
#define ZF_GEMM_INTERNAL_H

/* Row-major C (m, n) = alpha op(A) op(B) + beta C, op given by transa / transb ('N' or 'T'), as
 * cblas_sgemm with CblasRowMajor. Within one process the same library runs every call (decided on
 * the first), so results are the same for the same CPU, threads and kernel set. */
void zf_sgemm(char transa, char transb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
              int ldb, float beta, float *c, int ldc);

/* 1 when zf_sgemm takes oneDNN (OpenBLAS's kernels are older than the CPU and zfviz is built with
 * oneDNN), else 0; decided once per process. oneDNN still declines a call where a later
 * zf_cpu_set_kernels changed the kernel set from the one it started with: OpenBLAS runs it. */
int zf_sgemm_onednn(void);

/* The library zf_sgemm takes: "oneDNN" or "OpenBLAS". */
const char *zf_sgemm_library(void);

/* How many zf_sgemm calls oneDNN ran in this process (for tests). */
unsigned long zf_sgemm_onednn_calls(void);

#endif
