/* One table of op cases (geometries: shapes, strides, pads, groups, odd sizes, the built-in nets'
 * layers) and their float64 references, shared by the CPU engine's op tests (test_ops.c) and the
 * CUDA engine's (test_cuda.c), so that every case runs on both engines against the same reference.
 * A new geometry goes here once. */
#ifndef TU_OP_CASES_H
#define TU_OP_CASES_H

#include <stddef.h>
#include <stdint.h>

#include "zf/net.h"
#include "zf/ops.h"

/* A convolution: the geometry's oh/ow follow from the pads, pb and pr the bottom and right ones
 * (cuDNN cannot express them unequal to the top and left: the CUDA engine pads a copy). */
typedef struct tu_conv_case {
    const char *what;
    zf_conv_geom g;
    int pb, pr;
    uint64_t seed;
} tu_conv_case;
extern const tu_conv_case tu_conv_cases[];
extern const size_t tu_n_conv_cases;
/* The case's geometry with oh and ow set. */
zf_conv_geom tu_conv_case_geom(const tu_conv_case *c);

/* A pooling window over (n, c, h, w); `ties`: inputs of few distinct values (as after a ReLU), so
 * windows are full of equal maxima; avg_pad: the average's divisor counts the padding. */
typedef struct tu_pool_case {
    const char *what;
    int n, c, h, w;
    zf_window win;
    int ceil_mode, ties, avg_pad;
    uint64_t seed;
} tu_pool_case;
extern const tu_pool_case tu_pool_cases[];
extern const size_t tu_n_pool_cases;
zf_pool_geom tu_pool_case_geom(const tu_pool_case *c);
/* The case's input: uniform in [-2, 2], or with `ties` rectified and floored to whole numbers. */
void tu_pool_case_input(const tu_pool_case *c, float *in);

/* Float64 references, written out as the definitions: the convolution and its backward
 * (tu_ref_conv, tu_ref_conv_f, tu_ref_conv_backward in testutil.h, defined in op_cases.c), and: */
/* Max pooling: out and switches (the first maximum in row-major order of the window, as an index
 * into the input plane); unpool (n, c, h, w): each dout value added at its switch. */
void tu_ref_maxpool(double *out, int32_t *switches, const float *in, const zf_pool_geom *g);
void tu_ref_unpool(double *din, const float *dout, const int32_t *switches, const zf_pool_geom *g);
/* Average pooling as PyTorch: the window clipped to the input, divided by its size or, with
 * count_include_pad, by the window clipped to the padded input; and its gradient. */
void tu_ref_avgpool(double *out, const float *in, const zf_pool_geom *g, int count_include_pad);
void tu_ref_avgpool_backward(double *din, const float *dout, const zf_pool_geom *g, int count_include_pad);

#endif
