/* Fully connected layers, ReLU, softmax on the CPU. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "zf/ops.h"

void zf_fc_forward(float *out, const float *in, const float *w, const float *bias, int n, int in_f,
                   int out_f)
{
    for (int i = 0; i < n; i++) {
        if (bias)
            memcpy(out + (size_t)i * out_f, bias, sizeof(float) * out_f);
        else
            memset(out + (size_t)i * out_f, 0, sizeof(float) * out_f);
    }
    if (n == 1) {
        /* Memory-bound: sgemv reads the weights once at full bandwidth. */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out_f, in_f, 1.0f, w, in_f, in, 1, 1.0f, out, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out_f, in_f, 1.0f, in, in_f, w, in_f,
                    1.0f, out, out_f);
    }
}

void zf_relu_forward(float *out, const float *in, size_t count)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t i = 0; i < count; i++)
        out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void zf_softmax_forward(float *out, const float *in, int n, int k)
{
    for (int i = 0; i < n; i++) {
        const float *x = in + (size_t)i * k;
        float *y = out + (size_t)i * k;
        float m = x[0];
        for (int j = 1; j < k; j++)
            m = x[j] > m ? x[j] : m;
        double s = 0;
        for (int j = 0; j < k; j++) {
            y[j] = expf(x[j] - m);
            s += y[j];
        }
        const float inv = (float)(1.0 / s);
        for (int j = 0; j < k; j++)
            y[j] *= inv;
    }
}
