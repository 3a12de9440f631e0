/* zf_sgemm (gemm_internal.h): oneDNN's sgemm or OpenBLAS's, by the rule decided once. */
#include "gemm_internal.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>

#include "dnnl_internal.h"
#include "zf/cpu.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int onednn;
static atomic_ulong onednn_calls;

/* OpenBLAS runs kernels older than the CPU: oneDNN's sgemm picks its own by the CPU's features (on
 * the Zen 3 machine with OPENBLAS_CORETYPE=Prescott, one thread: 3.4-3.9x OpenBLAS's speed on the
 * fully connected layers at batch 32 and 64). Where OpenBLAS knows the CPU the two are even
 * (bench_cpu --variants --only fc: 0.9-1.1x) and OpenBLAS stays. */
static void decide(void) { onednn = zf_blas_better_core_here() && zf_dnnl_version(); }

int zf_sgemm_onednn(void)
{
    pthread_once(&once, decide);
    return onednn;
}

const char *zf_sgemm_library(void) { return zf_sgemm_onednn() ? "oneDNN" : "OpenBLAS"; }

unsigned long zf_sgemm_onednn_calls(void) { return atomic_load_explicit(&onednn_calls, memory_order_relaxed); }

void zf_sgemm(char transa, char transb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
              int ldb, float beta, float *c, int ldc)
{
    if (zf_sgemm_onednn() && !zf_dnnl_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) {
        atomic_fetch_add_explicit(&onednn_calls, 1, memory_order_relaxed);
        return;
    }
    cblas_sgemm(CblasRowMajor, transa == 'T' ? CblasTrans : CblasNoTrans, transb == 'T' ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
