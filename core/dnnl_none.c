/* dnnl_internal.h where zfviz is built without oneDNN (libdnnl-dev): every call declines and
 * the callers take their own paths. */
#include "dnnl_internal.h"

const char *zf_dnnl_version(void) { return NULL; }
const char *zf_dnnl_isa(void) { return NULL; }
int zf_dnnl_conv_ok(const zf_conv_geom *g, int relu) { return (void)g, (void)relu, 0; }
size_t zf_dnnl_conv_workspace_floats(const zf_conv_geom *g, int relu) { return (void)g, (void)relu, 0; }

int zf_dnnl_conv_forward(float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g,
                         int relu, float *ws)
{
    (void)out, (void)in, (void)w, (void)bias, (void)g, (void)relu, (void)ws;
    return 1;
}

const char *zf_dnnl_conv_impl(const zf_conv_geom *g, int relu) { return (void)g, (void)relu, NULL; }

int zf_dnnl_sgemm(char transa, char transb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc)
{
    (void)transa, (void)transb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b, (void)ldb;
    (void)beta, (void)c, (void)ldc;
    return 1;
}
