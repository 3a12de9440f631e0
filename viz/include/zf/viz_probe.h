/* The linear-probe figure (zfviz probe; Zeiler & Fergus's per-layer table as a chart): each layer's
 * training and test accuracy as bars, layers in net order. */
#ifndef ZF_VIZ_PROBE_H
#define ZF_VIZ_PROBE_H

#include "zf/viz.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zf_viz_probe_in {
    const char *title;           /* NULL: none */
    int n;                       /* layers */
    const char *const *layers;   /* their names */
    const double *train_acc;     /* n accuracies in [0, 1] */
    const double *test_acc;
} zf_viz_probe_in;

/* One page: per layer a pair of bars (training light, test dark) on a 0-100% axis, the test accuracy
 * printed above its bar. */
zf_status zf_viz_probe(zf_viz_doc *doc, const zf_viz_probe_in *in, const zf_viz_style *style);

#ifdef __cplusplus
}
#endif
#endif
