/* zfviz probe: how much each layer's features carry for a task: a linear softmax classifier
 * trained on a frozen net's features per layer (Zeiler & Fergus section 5.3, the per-layer table). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "paper_exp.h"
#include "zf/dataset.h"
#include "zf/io.h"
#include "zf/probe.h"
#include "zf/tensor.h"
#include "zf/viz.h"
#include "zf/viz_probe.h"

const char zf_cmd_probe_summary[] = "per-layer linear probes: a softmax classifier on each layer's features";

#define MAX_LAYERS 32

static void usage(void)
{
    printf("usage: zfviz probe [--arch A [--weights W] | --model F] [--data SOURCE] [options]\n\n"
           "Freezes the net, computes each chosen layer's features for the training and the test\n"
           "images, and trains a linear softmax classifier per layer on its standardised features\n"
           "(multinomial logistic regression, L2 on the weights, full-batch L-BFGS from zero:\n"
           "deterministic). Prints the layers' test accuracy as a table (or CSV).\n"
           "SOURCE is `fashion-mnist` (default: its training set to train, its test set to test) or\n"
           "a folder with one sub-folder of JPEG/PNG images per class (ImageFolder, as zfviz train\n"
           "reads it): every fifth image (the 5th, 10th, ... in class and name order) is held out\n"
           "for testing, unless --test-data names a folder of the same classes.\n"
           "Features: a conv or fc layer's rectified output (its ReLU), a pool's output; maps are\n"
           "averaged over a G x G grid (PyTorch's adaptive average pooling; fewer bins where the map\n"
           "is smaller) and flattened (channel, row, column).\n\n" ZFT_MODEL_HELP
           "  --data SOURCE     fashion-mnist (default) or a folder\n"
           "  --test-data DIR   a folder of test images (with a folder --data)\n"
           "  --limit N         train on the first N training images only\n"
           "  --test-limit N    test on the first N test images only\n"
           "  --layers L,..     layers to probe (default: every conv and max-pool, and every fc but\n"
           "                    the last)\n"
           "  --grid G          bins per side of the average pooling of maps (default 4; 0 keeps\n"
           "                    the whole map)\n"
           "  --l2 X            L2 penalty on the weights: l2/2 |W|^2 added to the mean\n"
           "                    cross-entropy (default 1e-3)\n"
           "  --iters N         L-BFGS iterations at most (default 500)\n"
           "  --batch N         images per forward (default 100)\n"
           "  --size S          folders: the side images are stored at (default: the net's resize size)\n"
           "  --csv             print layer,features,train_acc,test_acc,iters,loss as CSV\n"
           "  --out FIG         also draw the accuracies as a bar chart (.png or .pdf)\n"
           "  --save-features DIR  also write DIR/<layer>.train.npy and .test.npy (float32, raw\n"
           "                    before standardisation) and train.labels.npy, test.labels.npy (int32)\n" ZFT_FORCE_HELP
           ZFT_DEVICE_HELP);
}

/* The images i of ds with (i % 5 == 4) == held, into a new dataset. */
static zf_status split_every_fifth(const zf_dataset *ds, int held, zf_dataset **out)
{
    int64_t n = 0;
    for (int64_t i = 0; i < ds->n; i++)
        n += (i % 5 == 4) == held;
    zf_dataset *o = zf_dataset_new(n, ds->c, ds->h, ds->w, ds->n_classes);
    if (!o)
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory for %lld images", ds->source, (long long)n);
    size_t px = (size_t)ds->c * ds->h * ds->w;
    int64_t j = 0;
    for (int64_t i = 0; i < ds->n; i++)
        if ((i % 5 == 4) == held) {
            memcpy(o->pixels + px * j, ds->pixels + px * i, px);
            o->labels[j++] = ds->labels[i];
        }
    for (int k = 0; k < ds->n_classes; k++)
        if (ds->class_names[k] && !(o->class_names[k] = strdup(ds->class_names[k]))) {
            zf_dataset_free(o);
            return zf_error(ZF_ERR_NOMEM, "out of memory");
        }
    snprintf(o->source, sizeof o->source, "%s", ds->source);
    *out = o;
    return ZF_OK;
}

static zf_status cut(zf_dataset **ds, long limit)
{
    if (limit <= 0 || limit >= (*ds)->n)
        return ZF_OK;
    zf_dataset *s;
    zf_status st = zf_dataset_slice(*ds, 0, limit, &s);
    if (!st) {
        zf_dataset_free(*ds);
        *ds = s;
    }
    return st;
}

typedef struct {
    int csv;
    const char (*names)[32];
    const char *model, *data;
    const zf_dataset *train, *test;
    int grid;
    double l2;
} row_ctx;

/* The table's heading with the first row: after the features' progress, as the table's start. */
static void print_row(void *vctx, int k, const zft_probe_row *r)
{
    const row_ctx *c = vctx;
    if (k == 0)
        zft_probe_print_head(stdout, c->csv, c->model, c->train->n, c->test->n, c->data, c->train->n_classes, c->grid,
                             c->l2);
    zft_probe_print_row(stdout, c->csv, c->names[k], r);
    fflush(stdout);
}

int zf_cmd_probe(int argc, char **argv)
{
    enum { O_TEST = 256, O_TLIMIT, O_LAYERS, O_GRID, O_L2, O_ITERS, O_SIZE, O_CSV, O_SAVE, O_LIMIT, O_OUT };
    zft_model_opts mo = {0};
    const char *data = "fashion-mnist", *test_data = NULL, *layer_list = NULL, *save_dir = NULL,
               *fig = NULL;
    zf_viz_style style = {0};
    long limit = 0, test_limit = 0, batch = 100, size = 0;
    int grid = 4, csv = 0;
    zf_probe_opts po = zf_probe_defaults();
    const zft_opt opts[] = {ZFT_STR("data", 'd', &data), ZFT_STR("test-data", O_TEST, &test_data),
                            ZFT_LONG("limit", O_LIMIT, 1, 1e12, "a count of images from 1", &limit),
                            ZFT_LONG("test-limit", O_TLIMIT, 1, 1e12, "a count of images from 1", &test_limit),
                            ZFT_STR("layers", O_LAYERS, &layer_list),
                            ZFT_INT("grid", O_GRID, 0, 1024, "0 to 1024 bins", &grid),
                            ZFT_REAL("l2", O_L2, 0, 1e6, "a number >= 0", &po.l2),
                            ZFT_INT("iters", O_ITERS, 0, 1000000, "0 to 1000000 iterations", &po.iters),
                            ZFT_LONG("batch", 'b', 1, 65536, "a whole number from 1 to 65536", &batch),
                            ZFT_LONG("size", O_SIZE, 8, 4096, "a side of 8 to 4096 px", &size),
                            ZFT_FLAG("csv", O_CSV, &csv), ZFT_STR("save-features", O_SAVE, &save_dir),
                            ZFT_STR("out", O_OUT, &fig), {0}};
    zft_device dev = {0};
    zft_args a = {.cmd = "probe", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .model = &mo, .style = &style, .device = &dev, .shared = ZFT_WITH_FORCE};
    if (zft_args_parse(&a))
        return a.rc;
    int fmnist = !strcmp(data, "fashion-mnist");
    if (test_data && fmnist)
        return zft_usage_error("probe", "--test-data goes with a folder --data (Fashion-MNIST has its test set)");
    if (fig) {
        zf_viz_format fmt;
        if (zf_viz_format_of(fig, &fmt))
            return zft_usage_error("probe", "--out %s: %s", fig, zf_last_error());
        zf_status cs = zft_output_check(fig);
        if (cs)
            return zft_fail("probe", cs);
    }
    zft_install_sigint();
    zf_net *net;
    zft_model_ref ref;
    zf_status st = zft_load_model_ref(&mo, &net, &ref);
    if (st)
        return zft_fail("probe", st);

    int layers[MAX_LAYERS], n_layers = 0;
    char names[MAX_LAYERS][32];
    if (layer_list) {
        char buf[1024];
        const char *items[MAX_LAYERS];
        n_layers = zft_split_list(layer_list, buf, sizeof buf, items, MAX_LAYERS);
        for (int k = 0; k < n_layers; k++) {
            layers[k] = zf_probe_resolve(net, items[k]);
            if (layers[k] < 0) {
                zf_net_free(net);
                return zft_usage_error("probe", "--layers: %s has no layer '%s'", ref.label, items[k]);
            }
            snprintf(names[k], sizeof names[k], "%s", items[k]);
        }
        if (n_layers < 1) {
            zf_net_free(net);
            return zft_usage_error("probe", "--layers names no layer");
        }
    } else {
        n_layers = zf_probe_default_layers(net, layers, MAX_LAYERS);
        for (int k = 0; k < n_layers; k++) {
            snprintf(names[k], sizeof names[k], "%s", net->layers[layers[k]].name);
            layers[k] = zf_probe_resolve(net, names[k]);
        }
    }

    zf_dataset *train = NULL, *test = NULL;
    int store = size ? (int)size : net->pre.resize == ZF_RESIZE_SHORT_CROP ? net->pre.resize_short : net->in_h;
    if (fmnist) {
        st = zf_dataset_load_fashion_mnist(NULL, 1, &train);
        if (!st)
            st = zf_dataset_load_fashion_mnist(NULL, 0, &test);
    } else {
        zf_dataset *all = NULL;
        st = zf_dataset_load_folder(data, store, &all);
        if (!st && test_data) {
            train = all;
            all = NULL;
            st = zf_dataset_load_folder(test_data, store, &test);
            if (!st && test->n_classes != train->n_classes)
                st = zf_error(ZF_ERR_ARG, "%s: %d classes, but %s has %d", test_data, test->n_classes, data,
                              train->n_classes);
        } else if (!st) {
            st = split_every_fifth(all, 0, &train);
            if (!st)
                st = split_every_fifth(all, 1, &test);
        }
        zf_dataset_free(all);
    }
    if (!st)
        st = cut(&train, limit);
    if (!st)
        st = cut(&test, test_limit);
    if (!st && (train->n < 1 || test->n < 1))
        st = zf_error(ZF_ERR_ARG, "%s: no %s images", data, train->n < 1 ? "training" : "test");
    if (!st && train->n_classes < 2)
        st = zf_error(ZF_ERR_ARG, "%s: one class: nothing to classify", data);
    if (!st && save_dir) {
        for (int k = 0; k < n_layers && !st; k++)
            for (int s = 0; s < 2 && !st; s++) {
                char path[4300];
                snprintf(path, sizeof path, "%s/%s.%s.npy", save_dir, names[k], s ? "test" : "train");
                st = zft_output_check(path);
            }
    }
    if (st) {
        zf_dataset_free(train);
        zf_dataset_free(test);
        zf_net_free(net);
        return zft_fail("probe", st);
    }

    zft_probe_row rows[MAX_LAYERS];
    double acc_train[MAX_LAYERS], acc_test[MAX_LAYERS];
    row_ctx rc = {csv, (const char (*)[32])names, ref.label, data, train, test, grid, po.l2};
    st = zft_device_open(&dev, net, (int)batch);
    if (!st)
        st = zft_probe_run(dev.eng, train, test, layers, (const char (*)[32])names, n_layers, grid, (int)batch, &po,
                           save_dir, rows, print_row, &rc);
    for (int k = 0; k < n_layers && !st; k++) {
        acc_train[k] = rows[k].train_acc;
        acc_test[k] = rows[k].test_acc;
    }
    if (!st && fig) {
        const char *lnames[MAX_LAYERS];
        for (int k = 0; k < n_layers; k++)
            lnames[k] = names[k];
        char title[1400];
        snprintf(title, sizeof title, "Linear probes of %s (%lld training, %lld test images)", ref.label,
                 (long long)train->n, (long long)test->n);
        zf_viz_probe_in vin = {title, n_layers, lnames, acc_train, acc_test};
        zf_viz_doc *doc = NULL;
        if (!(st = zft_output_prepare(fig)) && !(st = zf_viz_doc_open(fig, &doc)) &&
            !(st = zf_viz_probe(doc, &vin, &style)))
            st = zf_viz_doc_finish(doc);
        zf_viz_doc_free(doc);
    }
    zft_device_close(&dev);
    zf_dataset_free(train);
    zf_dataset_free(test);
    zf_net_free(net);
    return st ? zft_fail("probe", st) : 0;
}
