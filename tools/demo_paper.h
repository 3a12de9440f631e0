/* The rest of Zeiler & Fergus in zfviz demo (tools/demo_paper.c): invariance (Fig. 5), part
 * correspondence (Fig. 8's table), conv2 in pixels (Fig. 6), the per-layer linear probes and feature
 * evolution (Fig. 4) of both embedded nets, each computed by the code its zfviz command runs. */
#ifndef ZFT_DEMO_PAPER_H
#define ZFT_DEMO_PAPER_H

#include <stdio.h>

#include "zf/engine.h"
#include "zf/net.h"
#include "zf/viz.h"

#define ZFT_DEMO_PAPER_NETS 2
#define ZFT_DEMO_PAPER_PAGES 7 /* invariance x 2, correspondence, conv2, probes, evolution x 2 */
#define ZFT_DEMO_COR_CLASS 9   /* Fashion-MNIST's ankle boots: the correspondence page's images */
#define ZFT_DEMO_COR_IMAGES 8  /* at most this many of them */
/* The probes' sizes: the first N training and test images of Fashion-MNIST and L-BFGS iterations
 * at most (fewer than zfviz probe's 500: the fits are most of a probe's time). */
#define ZFT_DEMO_PROBE_TRAIN 1000
#define ZFT_DEMO_PROBE_TEST 500
#define ZFT_DEMO_PROBE_ITERS 50
#define ZFT_DEMO_QUICK_PROBE_TRAIN 300
#define ZFT_DEMO_QUICK_PROBE_TEST 100
#define ZFT_DEMO_QUICK_PROBE_ITERS 30
#define ZFT_DEMO_EVOLVE_IMAGES 100

/* The pages' data, from the stages to the PDF. */
typedef struct zft_demo_paper zft_demo_paper;

/* Before any work: both training runs are embedded (else one line saying how to embed them) and
 * the files the pages write into dir may be written (zf_file_check). */
zf_status zft_demo_paper_check(const char *dir);
/* The engines on the nets (borrowed, ZFT_DEMO_PAPER_NETS of them: the experiments run on them),
 * their names, their labels as the commands give them ("alexnet-mini (embedded)"), the sizes
 * (--quick: smaller), and the device the feature evolution opens on the training runs' models. */
zf_status zft_demo_paper_new(const char *dir, int quick, zf_engine *const *engines, const char *const *names,
                             const char *const *labels, const struct zft_device *dev, zft_demo_paper **out);

/* Each stage writes its files into dir and keeps what its page needs. */
/* Fig. 5: the sweeps of the images at paths (DIR/invariance-NET.png, .csv). */
zf_status zft_demo_paper_invariance(zft_demo_paper *p, char *const *paths, int n, const zf_viz_style *style);
/* Fig. 8's table: the images at paths (all of class ZFT_DEMO_COR_CLASS) with the parts occluded
 * (DIR/correspond-NET.csv, DIR/correspondence.png); fewer than 2 images make a page that says so. */
zf_status zft_demo_paper_correspond(zft_demo_paper *p, char *const *paths, int n, const zf_viz_style *style);
/* Fig. 6: conv2 of both nets in pixels over the first 64 images at paths (DIR/conv2-compare.png);
 * zfviz compare --layer conv2's lines to out. */
zf_status zft_demo_paper_conv2(zft_demo_paper *p, char *const *paths, int n, const zf_viz_style *style, FILE *out);
/* The probes on the first ZFT_DEMO_PROBE_TRAIN training and ZFT_DEMO_PROBE_TEST test images of
 * Fashion-MNIST (the QUICK sizes with --quick) (DIR/probe-NET.csv, DIR/probes.png). */
zf_status zft_demo_paper_probe(zft_demo_paper *p, const zf_viz_style *style);
/* Fig. 4: each embedded run written to DIR/NET-training.sqlite, then zfviz evolve's code on it over
 * the first ZFT_DEMO_EVOLVE_IMAGES images of images_dir (DIR/evolve-NET.png, .csv). */
zf_status zft_demo_paper_evolve(zft_demo_paper *p, const char *images_dir, const zf_viz_style *style);

/* The ZFT_DEMO_PAPER_PAGES pages, in the order above. */
zf_status zft_demo_paper_pages(zf_viz_doc *doc, zft_demo_paper *p, const zf_viz_style *style);
void zft_demo_paper_free(zft_demo_paper *p);

#endif
