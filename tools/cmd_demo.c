/* zfviz demo: the tour for a newcomer. The two embedded mini nets on Fashion-MNIST test images:
 * every figure of the toolkit (conv1 comparison, top-9 deconv sheets, occlusion, dead units,
 * training curves, accuracy) written as PNGs and a text file, and gathered in one PDF.
 *
 * It calls the library functions the subcommands are built on (compare, scan, sheet, occlude, dead,
 * eval) rather than the subcommands themselves: each figure is drawn once into its PNG and again
 * into the PDF from the same data, nothing is computed twice, and the models are the embedded ones
 * (zfviz compare would take a bare mini arch as random weights). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "demo_attribution.h"
#include "demo_paper.h"
#include "figure_opts.h"
#include "viz_db.h"
#include "zf/dataset.h"
#include "zf/file.h"
#include "zf/model.h"
#include "zf/train.h"

const char zf_cmd_demo_summary[] = "the tour: every figure of both embedded nets on Fashion-MNIST, PNGs and one PDF";

#include "zf/viz.h"

#define N_NETS 2
#define SHEET_UNITS 4  /* conv5 units per sheet: one legible page */
#define N_OCCL 4       /* occlusion images per net */
#define N_STAGES 15
#define DEFAULT_IMAGES 500
#define QUICK_IMAGES 50
#define FULL_EVAL_S 90.0 /* the longest the whole-test-set accuracy may take (both nets) */

static void usage(void)
{
    printf("usage: zfviz demo [-o DIR] [--images N] [--quick] [figure options]\n\n"
           "Runs the two models built into this zfviz, alexnet-mini and zfnet-mini (AlexNet and ZFNet\n"
           "in miniature, trained on Fashion-MNIST), over N Fashion-MNIST test images and writes into DIR:\n"
           "  demo.pdf                   everything below in one PDF, with a cover page\n"
           "  conv1-compare.png          conv1 of both nets side by side with the comparison numbers\n"
           "  conv5-top9-NET.png         top-9 deconv sheets of the strongest conv5 units (ZF Fig. 2)\n"
           "  occlusion-NET.png          occlusion sensitivity of 4 images (ZF Fig. 7)\n"
           "  attribution.png, .npy      7 attribution methods on the occlusion images, both nets\n"
           "  invariance-NET.png, .csv   shifts, scaling and rotation of the same images (ZF Fig. 5)\n"
           "  correspondence.png         part correspondence on ankle boots, toe and heel (ZF Fig. 8's table;\n"
           "                             correspond-NET.csv)\n"
           "  conv2-compare.png          conv2 of both nets in pixels: aliasing (ZF Fig. 6)\n"
           "  probes.png, probe-NET.csv  linear probes of layers 1-7 (ZF 5.3), %d/%d Fashion-MNIST training/test\n"
           "                             images (%d/%d with --quick)\n"
           "  evolve-NET.png, .csv       feature evolution over the training snapshots (ZF Fig. 4)\n"
           "  NET-training.sqlite        the embedded training runs (zfviz evolve --db ... --model NET)\n"
           "  dead-units.txt             units that never (or rarely) fire over the images\n"
           "  training-curves.png        loss and accuracy per epoch of both trainings\n"
           "  images/                    the test images used, as PNGs (00042-Sneaker.png)\n"
           "  NET.db                     the scans, for zfviz sheet, dead, report and topk\n"
           "It prints the accuracy of both nets on the images, and on the whole test set when that takes\n"
           "under %.0f s at the rate the demo images were evaluated.\n\n"
           "  -o, --out DIR     output folder (default zfviz-demo; created)\n"
           "  --force           replace files in DIR that the demo did not make (refused otherwise)\n"
           "  --images N        test images to use, 10 to 10000 (default %d, spread evenly over the classes)\n"
           "  --quick           %d images and no whole-test-set accuracy (for tests)\n"
           "figure options (the PNGs and the PDF's figure pages):\n" ZFT_FIGURE_HELP ZFT_FIGURE_PROJ_HELP
           ZFT_FIGURE_PROB_HELP
           ZFT_WAIT_HELP ZFT_DEVICE_HELP
           "                    (every stage that runs a net runs on it: accuracy, scans, sheets,\n"
           "                    occlusion, attributions, the paper's experiments)\n"
           "  -h, --help        this help\n\n"
           "Fashion-MNIST comes from Debian's dataset-fashion-mnist or $ZFVIZ_FASHION_MNIST.\n",
           ZFT_DEMO_PROBE_TRAIN, ZFT_DEMO_PROBE_TEST, ZFT_DEMO_QUICK_PROBE_TRAIN, ZFT_DEMO_QUICK_PROBE_TEST, FULL_EVAL_S, DEFAULT_IMAGES, QUICK_IMAGES);
}

static const char *const net_names[N_NETS] = {"alexnet-mini", "zfnet-mini"};

typedef struct demo_net {
    const char *name;
    zf_net *net;
    zf_engine *eng;                    /* the chosen engine on net */
    zft_model_ref ref;                 /* its label as the commands give it */
    char *command, *val_acc, *history; /* from the model file's metadata */
    /* the training history (epoch, train_loss, val_loss, train_acc, val_acc), n_epochs each */
    double *hist;
    int n_epochs;
    double top1, top5, loss;           /* on the demo images */
    double full_top1, full_top5;       /* on the whole test set; NaN when not measured */
    char db[PATH_MAX];
    zft_scan scan;
    int scan_open;
    zft_sheet sheet;
    zft_report occl;                   /* only its occlusion rows are used */
    char *captions[N_OCCL];            /* theirs, with the net's name */
    zf_db_dead *dead;
    int n_dead;
    int conv1_never;                   /* conv1 maps that never fired */
    zf_viz_compare_model cmp;
    char cmp_name[96];
} demo_net;

typedef struct demo {
    const char *dir;
    int n_images, quick;
    zf_dataset *test, *sel;            /* the test set, the images used */
    int64_t *idx;                      /* test-set index of each image used */
    char **paths;                      /* their PNG files, absolute */
    int occl_img[N_OCCL], n_occl;      /* rows of sel shown in the occlusion figures */
    demo_net nets[N_NETS];
    int full_eval;                     /* the whole test set was evaluated */
    double full_eval_s;                /* its estimated time */
    double t0;
    int stage;
    zf_viz_style style;                /* the figure options */
    zft_demo_attr attr;                /* the attribution page */
    zft_demo_paper *paper;             /* the rest of the paper's figures */
    zft_device *dev;                   /* --device: the engine every stage runs on */
} demo;

static void stage(demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stage(demo *d, const char *fmt, ...)
{
    va_list ap;
    printf("[%d/%d %5.1f s] ", ++d->stage, N_STAGES, zft_now() - d->t0);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* "DIR/name" into a buffer of PATH_MAX (cut short, and then failing to open, past PATH_MAX). */
static const char *path_in(char *buf, const char *dir, const char *name)
{
    if (snprintf(buf, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
        buf[0] = '\0';
    return buf;
}

/* ---- checks before any work: one line that says what to do ---- */

static zf_status check_models(void)
{
    const void *b;
    size_t len;
    for (int i = 0; i < N_NETS; i++)
        if (!zft_embedded_model(net_names[i], &b, &len))
            return zf_error(ZF_ERR_UNSUPPORTED,
                            "this zfviz has no embedded %s model (assets/models/%s.safetensors was missing when it "
                            "was built): train it with `zfviz train --arch %s --data fashion-mnist --out "
                            "assets/models/%s.safetensors`, then re-run cmake and rebuild",
                            net_names[i], net_names[i], net_names[i], net_names[i]);
    return ZF_OK;
}

/* The folder exists (created if needed) and a file can be made in it. */
static zf_status check_out_dir(const char *dir)
{
    zf_status st = zft_mkdirs(dir);
    if (st)
        return zf_error_prefix(st, "cannot use the output folder %s: ", dir);
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s/.zfviz-demo-XXXXXX", dir);
    int fd = mkstemp(probe);
    if (fd < 0)
        return zf_error(ZF_ERR_IO, "cannot write into the output folder %s: %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    return ZF_OK;
}

static zf_status load_test_set(zf_dataset **out)
{
    const char *env = getenv("ZFVIZ_FASHION_MNIST");
    const char *dir = env && *env ? env : ZF_FASHION_MNIST_DIR;
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(b, sizeof b, "%s/t10k-images-idx3-ubyte", dir);
    if (access(a, R_OK) && access(b, R_OK))
        return zf_error(ZF_ERR_IO,
                        "Fashion-MNIST's test set is not in %s (no t10k-images-idx3-ubyte.gz): apt-get install "
                        "dataset-fashion-mnist, or set $ZFVIZ_FASHION_MNIST to the folder that holds it", dir);
    return zf_dataset_load_fashion_mnist(dir, 0, out);
}

/* ---- the models and what their files say about their training ---- */

static void on_meta(void *ctx, const char *key, const char *value)
{
    demo_net *n = ctx;
    char **slot = !strcmp(key, "zfviz.train.command") ? &n->command
                : !strcmp(key, "zfviz.train.val_acc") ? &n->val_acc
                : !strcmp(key, "zfviz.train.history") ? &n->history : NULL;
    if (slot && !*slot)
        *slot = strdup(value);
}

static double json_num(json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }

/* [[epoch, lr, train_loss, train_acc, val_loss, val_acc, val_top5, seconds, images_per_s], ...] */
static zf_status parse_history(demo_net *n)
{
    if (!n->history)
        return zf_error(ZF_ERR_ARG, "the embedded %s has no training history (zfviz.train.history): was it "
                        "made by zfviz train?", n->name);
    json_error_t err;
    json_t *root = json_loads(n->history, 0, &err);
    if (!root || !json_is_array(root) || json_array_size(root) == 0) {
        json_decref(root);
        return zf_error(ZF_ERR_ARG, "the embedded %s: zfviz.train.history is not a JSON array of epochs", n->name);
    }
    size_t k = json_array_size(root);
    n->hist = malloc(sizeof(double) * 5 * k);
    if (!n->hist) {
        json_decref(root);
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < k; i++) {
        json_t *row = json_array_get(root, i);
        if (!json_is_array(row) || json_array_size(row) < 6) {
            json_decref(root);
            return zf_error(ZF_ERR_ARG, "the embedded %s: epoch row %zu of zfviz.train.history is not "
                            "[epoch, lr, train_loss, train_acc, val_loss, val_acc, ...]", n->name, i + 1);
        }
        n->hist[i] = json_num(json_array_get(row, 0));
        n->hist[k + i] = json_num(json_array_get(row, 2));
        n->hist[2 * k + i] = json_num(json_array_get(row, 4));
        n->hist[3 * k + i] = json_num(json_array_get(row, 3));
        n->hist[4 * k + i] = json_num(json_array_get(row, 5));
    }
    n->n_epochs = (int)k;
    json_decref(root);
    return ZF_OK;
}

static zf_status load_net(demo_net *n)
{
    const void *bytes;
    size_t len;
    if (!zft_embedded_model(n->name, &bytes, &len))
        return check_models();
    zft_model_opts mo = {0};
    mo.model = n->name;
    zf_status st = zft_load_model_ref(&mo, &n->net, &n->ref);
    if (st)
        return st;
    if (zft_net_classes(n->net) != 10 || n->net->in_c != 1)
        return zf_error(ZF_ERR_ARG, "the embedded %s has %d classes and %d input channels, not Fashion-MNIST's 10 "
                        "and 1", n->name, zft_net_classes(n->net), n->net->in_c);
    FILE *f = fmemopen((void *)bytes, len, "rb");
    if (!f)
        return zf_error(ZF_ERR_NOMEM, "cannot read the embedded %s: %s", n->name, strerror(errno));
    st = zf_safetensors_stream_read(f, n->name, NULL, NULL, on_meta, n);
    fclose(f);
    return st ? st : parse_history(n);
}

/* ---- the images ---- */

/* A class name as a file name part: "T-shirt/top" -> "T-shirt-top", "Ankle boot" -> "Ankle-boot". */
static void file_part(char *out, size_t len, const char *name)
{
    size_t i = 0;
    for (; name[i] && i + 1 < len; i++) {
        char ch = name[i];
        out[i] = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) ? ch : '-';
    }
    out[i] = '\0';
}

/* The first N/10 test images of each class (one more for the first N % 10 classes), in test-set
 * order: every class is shown and the choice does not depend on anything but N. */
static zf_status choose_images(demo *d)
{
    const zf_dataset *t = d->test;
    int quota[64] = {0}, taken[64] = {0};
    if (t->n_classes > 64)
        return zf_error(ZF_ERR_ARG, "%s: %d classes, expected 10", t->source, t->n_classes);
    for (int k = 0; k < t->n_classes; k++)
        quota[k] = d->n_images / t->n_classes + (k < d->n_images % t->n_classes);
    d->idx = malloc(sizeof *d->idx * (size_t)d->n_images);
    if (!d->idx)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int64_t i = 0; i < t->n && n < d->n_images; i++) {
        int k = t->labels[i];
        if (taken[k] < quota[k]) {
            taken[k]++;
            d->idx[n++] = i;
        }
    }
    if (n < d->n_images)
        return zf_error(ZF_ERR_ARG, "%s has too few images of some class for %d spread evenly", t->source,
                        d->n_images);
    /* The chosen images as a dataset of their own, for zf_evaluate. */
    const size_t px = (size_t)t->c * t->h * t->w;
    d->sel = zf_dataset_new(n, t->c, t->h, t->w, t->n_classes);
    if (!d->sel)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        memcpy(d->sel->pixels + i * px, t->pixels + d->idx[i] * px, px);
        d->sel->labels[i] = t->labels[d->idx[i]];
    }
    for (int k = 0; k < t->n_classes; k++)
        if (t->class_names[k] && !(d->sel->class_names[k] = strdup(t->class_names[k])))
            return zf_error(ZF_ERR_NOMEM, "out of memory");
    snprintf(d->sel->source, sizeof d->sel->source, "%d images of %.400s", n, t->source);
    return ZF_OK;
}

/* Removes the PNGs an earlier demo left in images/, so the folder holds exactly this run's. */
static zf_status clear_images(const char *dir)
{
    DIR *dd = opendir(dir);
    if (!dd)
        return zf_error(ZF_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
    struct dirent *e;
    char p[PATH_MAX];
    zf_status st = ZF_OK;
    while (!st && (e = readdir(dd))) {
        size_t len = strlen(e->d_name);
        int ours = len > 10 && !strcmp(e->d_name + len - 4, ".png") && e->d_name[5] == '-';
        for (int i = 0; i < 5 && ours; i++)
            ours = e->d_name[i] >= '0' && e->d_name[i] <= '9';
        if (ours && zf_file_is_ours(path_in(p, dir, e->d_name)) && unlink(p))
            st = zf_error(ZF_ERR_IO, "%s: cannot remove: %s", p, strerror(errno));
    }
    closedir(dd);
    return st;
}

static zf_status write_images(demo *d)
{
    char dir[PATH_MAX], real[PATH_MAX], p[PATH_MAX];
    path_in(dir, d->dir, "images");
    zf_status st;
    if ((st = zft_mkdirs(dir)) || (st = clear_images(dir)))
        return st;
    if (!realpath(dir, real))
        return zf_error(ZF_ERR_IO, "%s: %s", dir, strerror(errno));
    const zf_dataset *s = d->sel;
    d->paths = calloc((size_t)s->n, sizeof *d->paths);
    zf_image *img = zf_image_new(s->w, s->h);
    if (!d->paths || !img) {
        zf_image_free(img);
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < s->n && !st; i++) {
        const uint8_t *g = s->pixels + (size_t)i * s->w * s->h * s->c;
        for (int k = 0; k < s->w * s->h; k++)
            memset(img->rgb + 3 * k, g[k * s->c], 3);
        char part[64];
        const char *cname = s->class_names[s->labels[i]];
        file_part(part, sizeof part, cname ? cname : "class");
        if (snprintf(p, sizeof p, "%s/%05lld-%s.png", real, (long long)d->idx[i], part) >= (int)sizeof p)
            st = zf_error(ZF_ERR_ARG, "%s: the path is too long", real);
        else if (!(d->paths[i] = strdup(p)))
            st = zf_error(ZF_ERR_NOMEM, "out of memory");
        else
            st = zf_image_save_png(p, img);
    }
    zf_image_free(img);
    return st;
}

/* ---- accuracy ---- */

typedef struct eval_ctx {
    zft_progress bar;
} eval_ctx;

static int eval_progress(void *vctx, int64_t done, int64_t total)
{
    (void)total;
    zft_progress_update(&((eval_ctx *)vctx)->bar, done);
    return 0;
}

static zf_status evaluate(zf_engine *e, const zf_dataset *ds, const char *label, double *top1, double *top5,
                          double *loss)
{
    eval_ctx c;
    zft_progress_start(&c.bar, label, ds->n, "img");
    zf_status st = zf_engine_evaluate(e, ds, 100, top1, top5, loss, eval_progress, &c);
    zft_progress_finish(&c.bar);
    return st;
}

/* The top class of image i of sel. */
static zf_status predict(zf_engine *e, const zf_dataset *sel, int64_t i, int *cls)
{
    zf_net *net = zf_engine_net(e);
    const int last = net->n_layers - 1, k = zft_net_classes(net);
    zf_status st = zf_engine_reserve_host(e, 1);
    if (st || (st = zf_dataset_batch(net->input, NULL, sel, &i, 1, net, NULL, 0)) ||
        (st = zf_engine_forward_layers(e, net->input, 1, last, &last, 1)))
        return st;
    const float *p = zf_net_act(net, last);
    int best = 0;
    for (int j = 1; j < k; j++)
        if (p[j] > p[best])
            best = j;
    *cls = best;
    return ZF_OK;
}

/* Occlusion images: of different classes, in an order that starts with the shapes that tell most
 * (boot, trouser, bag, sneaker), each the first of its class that both nets get right, so panel
 * (d) is the probability of the correct class as in ZF Fig. 7. */
static zf_status choose_occlusion_images(demo *d)
{
    static const int prefer[10] = {9, 1, 8, 7, 3, 5, 0, 2, 4, 6};
    const zf_dataset *s = d->sel;
    d->n_occl = 0;
    for (int pass = 0; pass < 2 && d->n_occl < N_OCCL; pass++)
        for (int c = 0; c < 10 && d->n_occl < N_OCCL; c++) {
            int cls = prefer[c], dup = 0;
            for (int j = 0; j < d->n_occl; j++)
                dup |= s->labels[d->occl_img[j]] == cls;
            if (dup)
                continue;
            for (int64_t i = 0; i < s->n; i++) {
                if (s->labels[i] != cls)
                    continue;
                int right = 1;
                /* The second pass takes any image, for nets that get a whole class wrong. */
                for (int k = 0; k < N_NETS && right && pass == 0; k++) {
                    int p;
                    zf_status st = predict(d->nets[k].eng, s, i, &p);
                    if (st)
                        return st;
                    right = p == cls;
                }
                if (right) {
                    d->occl_img[d->n_occl++] = (int)i;
                    break;
                }
            }
        }
    return ZF_OK;
}

/* ---- scans, sheets, occlusion, dead units ---- */

static void remove_db(const char *path)
{
    static const char *const ext[] = {"", "-wal", "-shm", "-journal"};
    char p[PATH_MAX + 16];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, ext[i]);
        unlink(p);
    }
}

static zf_status scan(demo *d, demo_net *n)
{
    char name[128];
    snprintf(name, sizeof name, "%s.db", n->name);
    path_in(n->db, d->dir, name);
    /* A fresh database: a scan of the same images would only find its run complete, one of other
     * images would add a second run to pick from. */
    remove_db(n->db);
    zf_db *db = NULL;
    zf_status st = zft_db_open(n->db, 1, &db);
    if (st)
        return st;
    char images[PATH_MAX], rel[PATH_MAX];
    /* Absolute, so that a later demo run from another folder knows the database as its own. */
    if (!realpath(path_in(rel, d->dir, "images"), images))
        snprintf(images, sizeof images, "%s", rel);
    zf_scan_opts so = {0};
    so.top_k = 9;
    so.images_arg = images;
    so.weights = "";
    so.model_file = n->name; /* an embedded model's name: zfviz sheet --db finds the model by it */
    /* on another engine than the CPU's, its forward and statistics (as zfviz scan --device) */
    zft_device sdev = zft_device_choice(d->dev);
    zft_scan_forward fw = {.dev = &sdev};
    zf_scan_result res;
    if (!(st = zft_scan_forward_attach(&fw, n->net, 16, &so)))
        st = zf_db_scan(db, n->net, (const char *const *)d->paths, d->sel->n, &so, &res);
    zft_scan_forward_close(&fw);
    zf_db_close(db);
    if (st)
        return st;
    if (res.n_failed)
        return zf_error(ZF_ERR_IO, "%s: %lld of the images failed to load in the scan", n->db,
                        (long long)res.n_failed);
    zft_model_opts mo = {0};
    mo.model = n->name;
    if ((st = zft_scan_open(&n->scan, n->db, res.run_id, NULL, &mo, 0)))
        return st;
    n->scan_open = 1;
    n->scan.device = zft_device_choice(d->dev); /* the sheets' projections and the occlusion maps */
    return ZF_OK;
}

static zf_status dead_units(demo_net *n)
{
    zf_status st = zf_db_dead_units(n->scan.db, n->scan.run.id, NULL, 0.01, &n->dead, &n->n_dead);
    if (st)
        return st;
    n->conv1_never = 0;
    for (int i = 0; i < n->n_dead; i++)
        n->conv1_never += !strcmp(n->dead[i].layer, "conv1") && n->dead[i].max_activation <= 0;
    return ZF_OK;
}

static zf_status compare_model(demo_net *n, int images)
{
    const zf_net *net = n->net;
    int conv = zf_net_find_conv(net, "conv1");
    if (conv < 0)
        return zf_error(ZF_ERR_ARG, "%s has no conv1", n->name);
    const zf_layer *l = &net->layers[conv];
    snprintf(n->cmp_name, sizeof n->cmp_name, "%s", n->name);
    zf_viz_compare_model m = {n->cmp_name, l->weight, l->out_c, l->in_c / (l->groups > 0 ? l->groups : 1),
                              l->win.kh, l->win.kw, l->win.sh, 0, (float)n->conv1_never / l->out_c, images};
    n->cmp = m;
    return ZF_OK;
}

static zf_status sheet(demo_net *n)
{
    int units[SHEET_UNITS], got = 0;
    zf_status st = zft_scan_strongest_units(&n->scan, "conv5", SHEET_UNITS, units, &got);
    if (st)
        return st;
    if (got == 0)
        return zf_error(ZF_ERR_ARG, "%s: no conv5 unit fired on any image", n->name);
    return zft_sheet_build(&n->sheet, &n->scan, "conv5", units, got, 0);
}

static zf_status occlusion(demo *d, demo_net *n)
{
    int patch, stride;
    zft_occlusion_defaults(n->net, &patch, &stride);
    zf_status st = ZF_OK;
    for (int i = 0; i < d->n_occl && !st; i++)
        st = zft_report_add_occlusion(&n->occl, &n->scan, d->paths[d->occl_img[i]], patch, stride);
    /* The figure's title is generic: name the net under each image, as the two pages look alike. */
    for (int i = 0; i < n->occl.in.n_occlusions && !st; i++) {
        const char *cap = n->occl.occl[i].caption;
        int len = snprintf(NULL, 0, "%s: %s", n->name, cap ? cap : "");
        if (!(n->captions[i] = malloc((size_t)len + 1)))
            return zf_error(ZF_ERR_NOMEM, "out of memory");
        snprintf(n->captions[i], (size_t)len + 1, "%s: %s", n->name, cap ? cap : "");
        n->occl.occl[i].caption = n->captions[i];
    }
    return st;
}

/* The dead-unit report of one net, exactly as `zfviz dead --db NET.db --min-active 0.01` prints it. */
static void print_dead(FILE *f, const demo_net *n, double min_active)
{
    const zf_db_run *run = &n->scan.run;
    const zf_db_model *m = &n->scan.model;
    fprintf(f, "run %lld: %s (sha256 %.12s), %lld images (%lld failed to load), layers %s\n", (long long)run->id,
            m->arch, m->sha256, (long long)run->n_ok, (long long)run->n_failed, run->layers);
    fprintf(f, "units that never fire (max <= 0) or fire on fewer than %.4g of the images: %d\n", min_active,
            n->n_dead);
    if (n->n_dead > 0)
        fprintf(f, "%-12s %6s %16s %16s\n", "layer", "unit", "active_fraction", "max_activation");
    for (int i = 0; i < n->n_dead; i++)
        fprintf(f, "%-12s %6d %16.6f %16.6g%s\n", n->dead[i].layer, n->dead[i].unit, n->dead[i].active_fraction,
                n->dead[i].max_activation, n->dead[i].max_activation <= 0 ? "  dead" : "");
}

static zf_status write_dead(demo *d, const char *path)
{
    zf_file *out;
    zf_status st = zf_file_open(path, 0, &out);
    if (st)
        return st;
    FILE *f = zf_file_stream(out);
    fprintf(f, "zfviz demo: dead units of the embedded nets over the %d demo images: the units that never fire\n"
               "(max <= 0 before the ReLU on every image) or fire on fewer than 1%% of them.\n",
            d->n_images);
    for (int i = 0; i < N_NETS; i++) {
        fprintf(f, "\n== %s: zfviz dead --db %s --min-active 0.01\n", d->nets[i].name, d->nets[i].db);
        print_dead(f, &d->nets[i], 0.01);
    }
    return zf_file_commit(out);
}

/* ---- figures ---- */

typedef zf_status (*figure_fn)(zf_viz_doc *doc, demo *d, int which);

static zf_status fig_compare(zf_viz_doc *doc, demo *d, int which)
{
    (void)which;
    zf_viz_compare_opts o = zf_viz_compare_defaults();
    o.style = d->style;
    return zf_viz_compare(doc, &d->nets[0].cmp, &d->nets[1].cmp, &o);
}

static zf_status fig_sheet(zf_viz_doc *doc, demo *d, int which)
{
    zf_viz_sheet_opts o = zf_viz_sheet_defaults();
    o.style = d->style;
    return zf_viz_sheet(doc, &d->nets[which].sheet.in, &o);
}

static zf_status fig_occlusion(zf_viz_doc *doc, demo *d, int which)
{
    const zft_report *r = &d->nets[which].occl;
    zf_viz_occlusion_opts o = zf_viz_occlusion_defaults();
    o.style = d->style;
    return zf_viz_occlusion_figure(doc, r->occl, r->in.n_occlusions, &o);
}

static zf_status fig_curves(zf_viz_doc *doc, demo *d, int which)
{
    (void)which;
    zf_viz_curve c[N_NETS];
    for (int i = 0; i < N_NETS; i++) {
        const demo_net *n = &d->nets[i];
        const int k = n->n_epochs;
        zf_viz_curve one = {n->name, k, n->hist, n->hist + k, n->hist + 2 * k, n->hist + 3 * k, n->hist + 4 * k};
        c[i] = one;
    }
    zf_viz_curves_in in = {c, N_NETS};
    return zf_viz_curves_styled(doc, &in, "Training curves of the embedded nets (Fashion-MNIST)", &d->style);
}

static zf_status write_png(demo *d, const char *name, figure_fn fn, int which)
{
    char p[PATH_MAX];
    zf_viz_doc *doc = NULL;
    zf_status st;
    if (!(st = zf_viz_doc_open(path_in(p, d->dir, name), &doc)) && !(st = fn(doc, d, which)))
        st = zf_viz_doc_finish(doc);
    zf_viz_doc_free(doc);
    return st;
}

/* ---- the PDF ---- */

#define PDF_PAGES (9 + ZFT_DEMO_PAPER_PAGES)

static void pct(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.2f%%", 100 * v);
}

/* A growing string for the text pages. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->cap ? 2 * b->cap : 1024) + (size_t)n;
        char *ns = realloc(b->s, cap);
        if (!ns)
            return; /* the page then lacks the line; out of memory shows up elsewhere first */
        b->s = ns;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* 383114 -> "383,114". */
static void thousands(char *buf, size_t len, long long v)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", v), at = 0;
    for (int i = 0; i < n && at + 2 < (int)len; i++) {
        if (i && (n - i) % 3 == 0 && digits[i - 1] != '-')
            buf[at++] = ',';
        buf[at++] = digits[i];
    }
    buf[at] = '\0';
}

static zf_status cover_page(zf_viz_doc *doc, demo *d)
{
    sbuf intro = {0}, table = {0}, train = {0}, pages = {0}, more = {0};
    sb_add(&intro,
           "zfviz reproduces the pictures of Zeiler & Fergus, \xe2\x80\x9cVisualizing and Understanding "
           "Convolutional Networks\xe2\x80\x9d (ECCV 2014). This demo draws them for the two models built into "
           "this zfviz: alexnet-mini and zfnet-mini, AlexNet (Krizhevsky et al. 2012) and ZF's ZFNet in "
           "miniature: the same sequence of five conv and three fc layers, fewer channels, a 112 \xc3\x97 112 "
           "grey input (a 28 \xc3\x97 28 image enlarged 4\xc3\x97), each keeping its first layer's character "
           "(11 \xc3\x97 11 at stride 4 against 7 \xc3\x97 7 at stride 2). Both were trained from scratch with "
           "zfviz train on Fashion-MNIST's training images (10 classes of clothing). The figures use %d images "
           "of its 10,000-image test set, which the nets never saw: the first %d%s of each class, written to "
           "%s/images.",
           d->n_images, d->n_images / 10, d->n_images % 10 ? " or so" : "", d->dir);
    char tl[40];
    snprintf(tl, sizeof tl, "%d images", d->n_images);
    sb_add(&table, "%-13s %10s  %-14s %6s  %12s  %12s  %12s\n", "", "", "", "", "validation", "top-1 on", "top-1 on");
    sb_add(&table, "%-13s %10s  %-14s %6s  %12s  %12s  %12s\n", "model", "parameters", "conv1", "epochs",
           "(training)", tl, "test set");
    for (int i = 0; i < N_NETS; i++) {
        const demo_net *n = &d->nets[i];
        const zf_layer *c1 = &n->net->layers[zf_net_find_conv(n->net, "conv1")];
        char conv1[48], params[32], va[16], a[16], f[16];
        snprintf(conv1, sizeof conv1, "%d of %dx%d /%d", c1->out_c, c1->win.kh, c1->win.kw, c1->win.sh);
        thousands(params, sizeof params, (long long)zf_net_param_count(n->net));
        pct(va, sizeof va, n->val_acc ? strtod(n->val_acc, NULL) : NAN);
        pct(a, sizeof a, n->top1);
        pct(f, sizeof f, n->full_top1);
        sb_add(&table, "%-13s %10s  %-14s %6d  %12s  %12s  %12s\n", n->name, params, conv1, n->n_epochs, va, a,
               d->quick ? "(--quick)" : !d->full_eval ? "(skipped)" : f);
        sb_add(&train, "%s%s: %s", i ? "\n" : "", n->name, n->command ? n->command : "(no command recorded)");
    }
    if (!d->quick && !d->full_eval)
        sb_add(&table, "(skipped: the whole test set would have taken about %.0f s on this machine then;\n"
                       " zfviz eval --model alexnet-mini gives it)\n", d->full_eval_s);
    sb_add(&pages,
           " 2  Training curves: loss and top-1 accuracy per epoch of both trainings, from the model files\n"
           " 3  conv1 of both nets side by side: dead and near-dead filters, RMS, frequency content (ZF 4.1)\n"
           " 4  alexnet-mini conv5: top-9 deconv projections of its %d strongest units beside the patches (ZF Fig. 2)\n"
           " 5  zfnet-mini conv5: the same\n"
           " 6  alexnet-mini: occlusion sensitivity of %d test images of different classes (ZF Fig. 7)\n"
           " 7  zfnet-mini: the same images\n"
           " 8  Dead units of both nets over the %d images\n"
           " 9  Attribution methods (gradient, guided backprop, deconvnet, Grad-CAM, IG, SmoothGrad) on the same images\n"
           "10  alexnet-mini: feature invariance to shifts, scaling and rotation of the same images (ZF Fig. 5)\n"
           "11  zfnet-mini: the same\n"
           "12  Part correspondence: toe and heel of ankle boots occluded, random boxes as control (ZF Fig. 8's table)\n"
           "13  conv2 of both nets in pixels, the aliasing of the larger stride (ZF Fig. 6)\n"
           "14  Linear probes: what each of layers 1-7 carries for classifying (ZF section 5.3)\n"
           "15  alexnet-mini: feature evolution of conv1-conv5 units over the training snapshots (ZF Fig. 4)\n"
           "16  zfnet-mini: the same\n",
           SHEET_UNITS, d->n_occl, d->n_images);
    sb_add(&more,
           "# every page is also a PNG in %s; the scans are kept for the commands that read them:\n"
           "zfviz sheet --db %s/alexnet-mini.db --layer conv3 --top-units 8 -o conv3.png\n"
           "zfviz report --db %s/zfnet-mini.db -o zfnet-mini-report.pdf\n"
           "zfviz evolve --db %s/zfnet-mini-training.sqlite --model zfnet-mini --layer conv2 --units 0,1,2,3 --out ev.png\n"
           "# any image through either net, and the accuracy on the whole test set:\n"
           "zfviz occlude --model zfnet-mini --input IMAGE.png --out occ --png occlusion.png\n"
           "zfviz eval --model alexnet-mini\n"
           "zfviz --help",
           d->dir, d->dir, d->dir, d->dir);
    zf_status st = ZF_OK;
    if (!intro.s || !table.s || !train.s || !pages.s || !more.s)
        st = zf_error(ZF_ERR_NOMEM, "out of memory for the cover page");
    zf_viz_text_block b[] = {{NULL, intro.s, 0, 0},
                             {"The models", table.s, 1, 0},
                             {"How they were trained", train.s, 0, 0},
                             {"Pages", pages.s, 1, 0},
                             {"Going further", more.s, 1, 0}};
    if (!st)
        st = zf_viz_text_page(doc, "zfviz demo: AlexNet and ZFNet in miniature on Fashion-MNIST", b,
                              (int)(sizeof b / sizeof b[0]));
    free(intro.s);
    free(table.s);
    free(train.s);
    free(pages.s);
    free(more.s);
    return st;
}

/* Per net: dead and rare units per layer, then which units are dead (as many as fit). */
static zf_status dead_page(zf_viz_doc *doc, demo *d)
{
    sbuf t[N_NETS] = {{0}};
    for (int i = 0; i < N_NETS; i++) {
        const demo_net *n = &d->nets[i];
        char buf[512];
        const char *names[64];
        int nl = zft_split_list(n->scan.run.layers, buf, sizeof buf, names, 64);
        sb_add(&t[i], "%-7s %6s %6s %6s %8s\n", "layer", "units", "dead", "rare", "dead %");
        for (int l = 0; l < nl; l++) {
            int li = zf_net_find(n->net, names[l]), units = li >= 0 ? n->net->layers[li].out_c : 0, dead = 0,
                rare = 0;
            for (int k = 0; k < n->n_dead; k++) {
                if (strcmp(n->dead[k].layer, names[l]))
                    continue;
                if (n->dead[k].max_activation <= 0)
                    dead++;
                else
                    rare++;
            }
            sb_add(&t[i], "%-7s %6d %6d %6d %7.1f%%\n", names[l], units, dead, rare,
                   units ? 100.0 * dead / units : 0.0);
        }
        sb_add(&t[i], "\nthe dead units:\n");
        for (int l = 0; l < nl; l++) {
            char line[128];
            int at = snprintf(line, sizeof line, "%-6s", names[l]), shown = 0, total = 0;
            for (int k = 0; k < n->n_dead; k++)
                if (!strcmp(n->dead[k].layer, names[l]) && n->dead[k].max_activation <= 0) {
                    total++;
                    if (at < 48) { /* what fits the half-page column with " and N more" */
                        at += snprintf(line + at, sizeof line - at, " %d", n->dead[k].unit);
                        shown++;
                    }
                }
            if (total > shown)
                snprintf(line + at, sizeof line - at, " and %d more", total - shown);
            else if (!total)
                snprintf(line + at, sizeof line - at, " none");
            sb_add(&t[i], "%s\n", line);
        }
    }
    sbuf note = {0};
    sb_add(&note,
           "Over the %d demo images, scanned as zfviz scan does. Dead: never positive before the ReLU, at any "
           "position of any image (max \xe2\x89\xa4 0); rare: positive on fewer than 1%% of the images. Zeiler & "
           "Fergus found dead filters in AlexNet's first layer (their Fig. 6); a dead conv1 map here is a "
           "\xe2\x80\x9cnever fires\xe2\x80\x9d share on page 3. The full list with each unit's active fraction "
           "and largest value is in %s/dead-units.txt.",
           d->n_images, d->dir);
    zf_status st = ZF_OK;
    if (!t[0].s || !t[1].s || !note.s)
        st = zf_error(ZF_ERR_NOMEM, "out of memory for the dead-unit page");
    zf_viz_text_block b[] = {{NULL, note.s, 0, 0}, {d->nets[0].name, t[0].s, 1, 1}, {d->nets[1].name, t[1].s, 1, 2}};
    if (!st)
        st = zf_viz_text_page(doc, "Dead units", b, 3);
    for (int i = 0; i < N_NETS; i++)
        free(t[i].s);
    free(note.s);
    return st;
}

static zf_status write_pdf(demo *d, const char *path)
{
    zf_viz_doc *doc = NULL;
    zf_status st = zf_viz_doc_open(path, &doc);
    if (!st)
        st = cover_page(doc, d);
    if (!st)
        st = fig_curves(doc, d, 0);
    if (!st)
        st = fig_compare(doc, d, 0);
    for (int i = 0; i < N_NETS && !st; i++)
        st = fig_sheet(doc, d, i);
    for (int i = 0; i < N_NETS && !st; i++)
        st = fig_occlusion(doc, d, i);
    if (!st)
        st = dead_page(doc, d);
    if (!st)
        st = zft_demo_attr_figure(doc, &d->attr, &d->style);
    if (!st)
        st = zft_demo_paper_pages(doc, d->paper, &d->style);
    if (!st && zf_viz_doc_pages(doc) != PDF_PAGES)
        st = zf_error(ZF_ERR_ARG, "%s: %d pages, the cover promises %d", path, zf_viz_doc_pages(doc), PDF_PAGES);
    if (!st)
        st = zf_viz_doc_finish(doc);
    zf_viz_doc_free(doc);
    return st;
}

/* ---- the run ---- */

typedef struct {
    char images[PATH_MAX]; /* the demo's image folder, resolved when it exists */
    int foreign;           /* a run scanned other images */
} own_db_ctx;

static void own_db_run(void *ctx, const zf_db_run *run, const zf_db_model *m)
{
    (void)m;
    own_db_ctx *c = ctx;
    char real[PATH_MAX];
    const char *p = realpath(run->images, real) ? real : run->images;
    c->foreign |= strcmp(p, c->images) != 0;
}

/* A database at the demo's path is replaced only when the demo made it: a zfviz database whose
 * every run scanned DIR/images. Anything else there is the user's (--force replaces it). */
static zf_status check_demo_db(const demo *d, const char *path)
{
    if (access(path, F_OK) != 0 || zf_file_force())
        return ZF_OK;
    own_db_ctx c = {{0}, 0};
    char images[PATH_MAX];
    path_in(images, d->dir, "images");
    if (!realpath(images, c.images))
        snprintf(c.images, sizeof c.images, "%s", images);
    zf_db_opts o = {ZF_DB_READONLY, 1.0, NULL, NULL};
    zf_db *db = NULL;
    zf_status st = zf_file_is_ours(path) ? zf_db_open(path, &o, &db) : ZF_ERR_DB;
    if (!st)
        st = zf_db_runs(db, own_db_run, &c);
    zf_db_close(db);
    if (st || c.foreign)
        return zf_error(ZF_ERR_IO, "%s: a database the demo did not make (%s); not replaced (--force replaces it)",
                        path, st ? "not one of its scans" : "it holds scans of other images");
    return ZF_OK;
}

/* Every file the demo writes, checked before any work. */
static zf_status check_outputs(const demo *d)
{
    static const char *const fixed[] = {"demo.pdf", "training-curves.png", "conv1-compare.png", "dead-units.txt"};
    static const char *const per_net[] = {"conv5-top9-%s.png", "occlusion-%s.png", "%s.db"};
    char p[PATH_MAX], name[128];
    zf_status st = ZF_OK;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed && !st; i++)
        st = zf_file_check(path_in(p, d->dir, fixed[i]));
    for (int i = 0; i < N_NETS && !st; i++)
        for (size_t k = 0; k < sizeof per_net / sizeof *per_net && !st; k++) {
            snprintf(name, sizeof name, per_net[k], net_names[i]);
            path_in(p, d->dir, name);
            st = k == 2 ? check_demo_db(d, p) : zf_file_check(p);
        }
    return st;
}

static zf_status run(demo *d)
{
    zf_status st;
    char p[PATH_MAX], name[128];
    if ((st = check_models()) || (st = check_outputs(d)) || (st = zft_demo_attr_check(d->dir)) ||
        (st = zft_demo_paper_check(d->dir)) || (st = check_out_dir(d->dir)))
        return st;
    stage(d, "loading the embedded models and Fashion-MNIST's test set");
    for (int i = 0; i < N_NETS; i++) {
        d->nets[i].name = net_names[i];
        d->nets[i].full_top1 = d->nets[i].full_top5 = NAN;
        if ((st = load_net(&d->nets[i])) || (st = zft_device_open_another(d->dev, d->nets[i].net, 100, &d->nets[i].eng)))
            return st;
    }
    if ((st = load_test_set(&d->test)) || (st = choose_images(d)))
        return st;
    {
        zf_engine *engines[N_NETS];
        const char *labels[N_NETS];
        for (int i = 0; i < N_NETS; i++) {
            engines[i] = d->nets[i].eng;
            labels[i] = d->nets[i].ref.label;
        }
        if ((st = zft_demo_paper_new(d->dir, d->quick, engines, net_names, labels, d->dev, &d->paper)))
            return st;
    }

    stage(d, "writing %d test images to %s/images", d->n_images, d->dir);
    if ((st = write_images(d)))
        return st;

    stage(d, "accuracy on the %d images%s", d->n_images, d->quick ? "" : ", then on the whole test set if time allows");
    const double t_eval = zft_now();
    for (int i = 0; i < N_NETS; i++) {
        demo_net *n = &d->nets[i];
        if ((st = evaluate(n->eng, d->sel, n->name, &n->top1, &n->top5, &n->loss)))
            return st;
        printf("  %s on the %d demo images: top-1 %.2f%%  top-5 %.2f%%  loss %.4f\n", n->name, d->n_images,
               100 * n->top1, 100 * n->top5, n->loss);
    }
    /* The whole test set is most of the demo's work (about 15 s a net on two idle cores), so it is
     * measured on the way: skipped when the rate just seen says it would take more than FULL_EVAL_S
     * (a busy machine), to keep the demo within its few minutes. */
    d->full_eval_s = (zft_now() - t_eval) * (double)d->test->n / d->sel->n;
    d->full_eval = !d->quick && d->full_eval_s <= FULL_EVAL_S;
    for (int i = 0; i < N_NETS && d->full_eval; i++) {
        demo_net *n = &d->nets[i];
        if ((st = evaluate(n->eng, d->test, n->name, &n->full_top1, &n->full_top5, NULL)))
            return st;
        printf("  %s on fashion-mnist test (%lld images): top-1 %.2f%%  top-5 %.2f%%\n", n->name,
               (long long)d->test->n, 100 * n->full_top1, 100 * n->full_top5);
    }
    if (!d->quick && !d->full_eval)
        printf("  the whole test set skipped: about %.0f s on this machine now (zfviz eval --model alexnet-mini "
               "gives it)\n", d->full_eval_s);
    fflush(stdout);

    stage(d, "scanning the images through both nets into %s/{alexnet-mini,zfnet-mini}.db", d->dir);
    for (int i = 0; i < N_NETS; i++)
        if ((st = scan(d, &d->nets[i])) || (st = dead_units(&d->nets[i])) ||
            (st = compare_model(&d->nets[i], d->n_images)))
            return st;

    stage(d, "conv1 of both nets side by side: %s/conv1-compare.png", d->dir);
    if ((st = write_png(d, "conv1-compare.png", fig_compare, 0)))
        return st;

    stage(d, "top-9 deconv sheets of the %d strongest conv5 units: %s/conv5-top9-*.png", SHEET_UNITS, d->dir);
    for (int i = 0; i < N_NETS; i++) {
        snprintf(name, sizeof name, "conv5-top9-%s.png", d->nets[i].name);
        if ((st = sheet(&d->nets[i])) || (st = write_png(d, name, fig_sheet, i)))
            return st;
    }

    if ((st = choose_occlusion_images(d)))
        return st;
    stage(d, "occlusion sensitivity of %d images: %s/occlusion-*.png", d->n_occl, d->dir);
    for (int i = 0; i < N_NETS; i++) {
        snprintf(name, sizeof name, "occlusion-%s.png", d->nets[i].name);
        if ((st = occlusion(d, &d->nets[i])) || (st = write_png(d, name, fig_occlusion, i)))
            return st;
    }

    stage(d, "attribution methods on the %d occlusion images: %s/attribution.png", d->n_occl, d->dir);
    {
        zf_engine *engines[N_NETS];
        char *paths[N_OCCL];
        for (int i = 0; i < N_NETS; i++)
            engines[i] = d->nets[i].eng;
        for (int i = 0; i < d->n_occl; i++)
            paths[i] = d->paths[d->occl_img[i]];
        if ((st = zft_demo_attr_run(&d->attr, engines, net_names, N_NETS, paths, d->n_occl, d->dir, &d->style)))
            return st;
    }

    {
        char *paths[N_OCCL];
        for (int i = 0; i < d->n_occl; i++)
            paths[i] = d->paths[d->occl_img[i]];
        stage(d, "feature invariance to shifts, scaling and rotation of the %d images: %s/invariance-*.png", d->n_occl,
              d->dir);
        if ((st = zft_demo_paper_invariance(d->paper, paths, d->n_occl, &d->style)))
            return st;
    }

    {
        char *boots[ZFT_DEMO_COR_IMAGES];
        int nb = 0;
        for (int64_t i = 0; i < d->sel->n && nb < ZFT_DEMO_COR_IMAGES; i++)
            if (d->sel->labels[i] == ZFT_DEMO_COR_CLASS)
                boots[nb++] = d->paths[i];
        stage(d, "part correspondence on %d ankle boots (toe, heel): %s/correspondence.png", nb, d->dir);
        if ((st = zft_demo_paper_correspond(d->paper, boots, nb, &d->style)))
            return st;
    }

    stage(d, "conv2 of both nets in pixels: %s/conv2-compare.png", d->dir);
    if ((st = zft_demo_paper_conv2(d->paper, d->paths, (int)d->sel->n, &d->style, stdout)))
        return st;

    stage(d, "linear probes of layers 1-7 on %d training and %d test images: %s/probes.png",
          d->quick ? ZFT_DEMO_QUICK_PROBE_TRAIN : ZFT_DEMO_PROBE_TRAIN,
          d->quick ? ZFT_DEMO_QUICK_PROBE_TEST : ZFT_DEMO_PROBE_TEST, d->dir);
    if ((st = zft_demo_paper_probe(d->paper, &d->style)))
        return st;

    stage(d, "feature evolution over the embedded training runs' snapshots: %s/evolve-*.png", d->dir);
    if ((st = zft_demo_paper_evolve(d->paper, path_in(p, d->dir, "images"), &d->style)))
        return st;

    stage(d, "dead units and training curves: %s/dead-units.txt, %s/training-curves.png", d->dir, d->dir);
    if ((st = write_dead(d, path_in(p, d->dir, "dead-units.txt"))) ||
        (st = write_png(d, "training-curves.png", fig_curves, 0)))
        return st;

    stage(d, "the PDF: %s/demo.pdf", d->dir);
    if ((st = write_pdf(d, path_in(p, d->dir, "demo.pdf"))))
        return st;

    const char *D = d->dir;
    printf("done in %.1f s. In %s:\n", zft_now() - d->t0, D);
    printf("  %s/demo.pdf                  everything in one PDF (%d pages)\n", D, PDF_PAGES);
    printf("  %s/training-curves.png       loss and accuracy per epoch of both nets\n", D);
    printf("  %s/conv1-compare.png         conv1 of both nets side by side\n", D);
    for (int i = 0; i < N_NETS; i++)
        printf("  %s/conv5-top9-%s.png%*s top-9 deconv sheets of %d conv5 units\n", D, d->nets[i].name,
               (int)(13 - strlen(d->nets[i].name)), "", SHEET_UNITS);
    for (int i = 0; i < N_NETS; i++)
        printf("  %s/occlusion-%s.png%*s occlusion sensitivity of %d images\n", D, d->nets[i].name,
               (int)(14 - strlen(d->nets[i].name)), "", d->n_occl);
    printf("  %s/attribution.png           7 attribution methods on %d images, both nets (maps: .npy)\n", D, d->n_occl);
    for (int i = 0; i < N_NETS; i++)
        printf("  %s/invariance-%s.png%*s shifts, scaling, rotation of the %d images (and .csv)\n", D, d->nets[i].name,
               (int)(13 - strlen(d->nets[i].name)), "", d->n_occl);
    printf("  %s/correspondence.png        part correspondence on ankle boots (correspond-NET.csv)\n", D);
    printf("  %s/conv2-compare.png         conv2 of both nets in pixels\n", D);
    printf("  %s/probes.png                linear probes of layers 1-7 (probe-NET.csv)\n", D);
    for (int i = 0; i < N_NETS; i++)
        printf("  %s/evolve-%s.png%*s feature evolution over the training snapshots (and .csv)\n", D,
               d->nets[i].name, (int)(17 - strlen(d->nets[i].name)), "");
    for (int i = 0; i < N_NETS; i++)
        printf("  %s/%s-training.sqlite  its training run (zfviz evolve --db ... --model %s)\n", D, d->nets[i].name,
               d->nets[i].name);
    printf("  %s/dead-units.txt            dead and rarely firing units\n", D);
    printf("  %s/images/                   the %d test images\n", D, d->n_images);
    printf("  %s/alexnet-mini.db, zfnet-mini.db  the scans (zfviz sheet, dead, report --db ...)\n", D);
    return ZF_OK;
}

static void demo_free(demo *d)
{
    for (int i = 0; i < N_NETS; i++) {
        demo_net *n = &d->nets[i];
        zft_report_free(&n->occl);
        for (int k = 0; k < N_OCCL; k++)
            free(n->captions[k]);
        zft_sheet_free(&n->sheet);
        if (n->scan_open)
            zft_scan_close(&n->scan);
        zf_engine_close(n->eng);
        free(n->dead);
        free(n->hist);
        free(n->command);
        free(n->val_acc);
        free(n->history);
        zf_net_free(n->net);
    }
    if (d->paths)
        for (int64_t i = 0; d->sel && i < d->sel->n; i++)
            free(d->paths[i]);
    free(d->paths);
    free(d->idx);
    zf_dataset_free(d->sel);
    zf_dataset_free(d->test);
    zft_demo_attr_free(&d->attr);
    zft_demo_paper_free(d->paper);
}

int zf_cmd_demo(int argc, char **argv)
{
    demo d;
    memset(&d, 0, sizeof d);
    d.dir = "zfviz-demo";
    long images = -1;
    const zft_opt opts[] = {ZFT_STR("out", 'o', &d.dir),
                            ZFT_LONG("images", 'n', 10, 10000, "10 to 10000", &images),
                            ZFT_FLAG("quick", 'q', &d.quick), {0}};
    zft_device dev = {.needs = ZF_ENGINE_NEEDS(ZF_ENGINE_OP_FORWARD) | ZF_ENGINE_NEEDS(ZF_ENGINE_OP_BACKWARD) |
                              ZF_ENGINE_NEEDS(ZF_ENGINE_OP_DECONV) | ZF_ENGINE_NEEDS(ZF_ENGINE_OP_OCCLUSION)};
    zft_args a = {.cmd = "demo", .argc = argc, .argv = argv, .shortopts = "ho:", .opts = opts, .usage = usage,
                  .style = &d.style, .device = &dev,
                  .shared = ZFT_WITH_FORCE | ZFT_WITH_WAIT | ZFT_WITH_PROJ | ZFT_WITH_PROB};
    if (zft_args_parse(&a))
        return a.rc;
    if (!*d.dir)
        return zft_usage_error("demo", "-o needs a folder");
    d.n_images = images > 0 ? (int)images : d.quick ? QUICK_IMAGES : DEFAULT_IMAGES;
    d.dev = &dev;
    d.t0 = zft_now();
    zf_status st = run(&d);
    demo_free(&d);
    return st ? zft_fail("demo", st) : 0;
}
