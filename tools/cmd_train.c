/* zfviz train: train a built-in net on Fashion-MNIST or an image folder on either engine (the steps,
 * updates and validation through the engine table), with checkpoints, exact resume (on either
 * engine), per-epoch metrics and filter snapshots in SQLite and a curves plot. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "viz_db.h"
#include "zf/dataset.h"
#include "zf/file.h"
#include "zf/model.h"
#include "zf/train.h"
#include "zf/db_train.h"
#include "zf/viz.h"

const char zf_cmd_train_summary[] = "train a network (Fashion-MNIST or an image folder) on the CPU or a GPU";

static void usage(void)
{
    printf("usage: zfviz train --arch A --data SOURCE --out MODEL.safetensors [options]\n\n"
           "Trains a built-in network from scratch with SGD (momentum, weight decay, learning-rate\n"
           "steps) and Zeiler & Fergus's filter renormalisation. SOURCE is `fashion-mnist` (Debian's\n"
           "dataset-fashion-mnist; $ZFVIZ_FASHION_MNIST overrides the folder) or an ImageNet-style\n"
           "folder with one sub-folder of JPEG/PNG images per class. Writes MODEL (a whole model:\n"
           "zfviz --model MODEL ... uses it), MODEL.ckpt (checkpoint, for --resume), the metrics and\n"
           "filter snapshots in a SQLite file and the loss/accuracy curves as PNG and PDF.\n\n"
           "  --arch A          alexnet-mini (default), zfnet-mini, alexnet, alexnet-caffe, zfnet,\n"
           "                    zfnet-pytorch\n"
           "  --data SOURCE     fashion-mnist or a folder\n"
           "  --out MODEL       the trained model (.safetensors; its folder is created); an existing file\n"
           "                    is refused unless --resume continues its run or --force replaces it\n"
           "  --force           start over, replacing --out and its checkpoint\n"
           "  --epochs N        epochs (default 10)\n"
           "  --batch N         images per step (default 64)\n"
           "  --lr X            starting learning rate (default 0.01)\n"
           "  --lr-steps E,..   multiply the rate by --lr-gamma at the start of these epochs (default none)\n"
           "  --lr-gamma X      (default 0.1)\n"
           "  --momentum X      (default 0.9)\n"
           "  --wd X            weight decay on weights, not biases (default 5e-4)\n"
           "  --renorm R        renormalise conv filters whose RMS exceeds R (ZF: 0.1, the default; 0 = off)\n"
           "  --seed N          initialisation, shuffling, augmentation and dropout (default 1)\n"
           "  --init I          he (default): He et al. normal weights, std sqrt(2 / fan-in), the last fc\n"
           "                    N(0, 0.01), zero biases; alexnet: the AlexNet paper's N(0, --init-std)\n"
           "                    weights with biases 1 in conv2, conv4, conv5 and the hidden fc layers\n"
           "  --init-std X      the alexnet initialisation's standard deviation (default 0.01)\n"
           "  --first-std X     draw the first conv layer's weights from N(0, X) instead (a small start\n"
           "                    for the first layer, whose learned filters then keep little noise)\n"
           "  --val N           hold out the last N training images for validation (default: 5000 for\n"
           "                    Fashion-MNIST, a tenth for folders; 0 = none)\n"
           "  --limit N         train on the first N images only (quick runs)\n"
           "  --crop P          random crops: pad grey images by P px (default 2); folders always crop\n"
           "  --no-flip         no horizontal flips\n"
           "  --pca-std X       AlexNet's PCA colour noise for RGB data (default 0.1; 0 = off)\n"
           "  --size S          folders: images are stored resized to S x S (default: the net's resize size)\n"
           "  --snapshots E,..  store every parameter (weights and biases) after these epochs, for\n"
           "                    zfviz evolve (default 1,2,5,10)\n"
           "  --db FILE         SQLite file for metrics and snapshots (default MODEL without .safetensors + .sqlite)\n"
           ZFT_WAIT_HELP ZFT_DEVICE_HELP
           "                    (training is fp32 on both; a checkpoint from one resumes on the other)\n"
           "  --checkpoint-every S  seconds between mid-epoch checkpoints (default 60)\n"
           "  --resume          continue from MODEL.ckpt (same arch, data, seed and batch)\n");
}

typedef struct {
    int snapshots[32], n_snapshots;
    int epochs;
    zft_progress bar;
    int bar_epoch;
    zf_db *db;
    int64_t run;
    const char *out;
    int quiet_tty;
} train_ctx;

static int on_step(void *vctx, int epoch, int64_t step, int64_t steps, double loss, double acc, double ips)
{
    train_ctx *c = vctx;
    if (c->bar_epoch != epoch) {
        static char label[32];
        snprintf(label, sizeof label, "epoch %d/%d", epoch, c->epochs);
        zft_progress_start(&c->bar, label, steps, "step");
        c->bar.delay = 0.5;
        c->bar_epoch = epoch;
    }
    snprintf(c->bar.extra, sizeof c->bar.extra, "loss %.4f  acc %.2f%%  %.0f img/s", loss, 100.0 * acc, ips);
    zft_progress_update(&c->bar, step);
    return 0;
}

static zf_status filters_png(const zf_layer *l, void **png, size_t *len)
{
    zf_viz_doc *doc;
    zf_status st = zf_viz_doc_open_mem(ZF_VIZ_PNG, &doc);
    if (st)
        return st;
    zf_viz_filters_in in = {0};
    in.w = l->weight;
    in.k = l->out_c;
    in.c = l->in_c / l->groups;
    in.kh = l->win.kh;
    in.kw = l->win.kw;
    in.title = l->name;
    st = zf_viz_filters(doc, &in, NULL);
    if (!st)
        st = zf_viz_doc_finish(doc);
    if (!st) {
        size_t n;
        const uint8_t *b = zf_viz_doc_bytes(doc, &n);
        *png = malloc(n);
        if (*png) {
            memcpy(*png, b, n);
            *len = n;
        } else
            st = zf_error(ZF_ERR_NOMEM, "out of memory");
    }
    zf_viz_doc_free(doc);
    return st;
}

static zf_status on_epoch(void *vctx, const zf_epoch_stats *s, const zf_net *net)
{
    train_ctx *c = vctx;
    zft_progress_finish(&c->bar);
    c->bar_epoch = 0;
    printf("epoch %2d  lr %-8.3g train loss %.4f acc %6.2f%%", s->epoch, s->lr, s->train_loss, 100 * s->train_acc);
    if (!isnan(s->val_acc))
        printf("   val loss %.4f acc %6.2f%% top-5 %6.2f%%", s->val_loss, 100 * s->val_acc, 100 * s->val_top5);
    printf("   %.0f s, %.0f img/s\n", s->seconds, s->images_per_s);
    fflush(stdout);
    zf_status st = ZF_OK;
    if (c->db) {
        if ((st = zf_db_begin(c->db)))
            return st;
        st = zf_db_train_epoch_put(c->db, c->run, s);
        int snap = 0;
        for (int i = 0; i < c->n_snapshots; i++)
            snap |= c->snapshots[i] == s->epoch;
        for (int i = 0; snap && !st && i < net->n_layers; i++) {
            const zf_layer *l = &net->layers[i];
            if (l->op != ZF_OP_CONV && l->op != ZF_OP_FC) /* every parameter: zfviz evolve recomputes activations */
                continue;
            void *png = NULL;
            size_t len = 0;
            if (i == 0)
                st = filters_png(l, &png, &len);
            if (!st)
                st = zf_db_train_snapshot_put(c->db, c->run, s->epoch, l, png, len);
            free(png);
        }
        if (!st)
            st = zf_db_commit(c->db);
        else
            zf_db_rollback(c->db);
    }
    return st;
}

static int parse_list(const char *s, int *out, int max)
{
    char buf[256];
    const char *items[32];
    int n = zft_split_list(s, buf, sizeof buf, items, max < 32 ? max : 32);
    for (int i = 0; i < n; i++) {
        long v = zft_parse_long(items[i]);
        if (v < 1 || v > 100000)
            return -1;
        out[i] = (int)v;
    }
    return n;
}

/* The curves of this run from the database, drawn to BASE-curves.png and .pdf. */
static void write_curves(train_ctx *c, const char *arch, char *png_path, size_t plen)
{
    png_path[0] = 0;
    zf_epoch_stats *e;
    int n;
    if (!c->db || zf_db_train_epochs(c->db, c->run, &e, &n) || n == 0)
        return;
    double *v = calloc((size_t)n * 5, sizeof *v);
    if (v) {
        for (int i = 0; i < n; i++) {
            v[i] = e[i].epoch;
            v[n + i] = e[i].train_loss;
            v[2 * n + i] = e[i].val_loss;
            v[3 * n + i] = e[i].train_acc;
            v[4 * n + i] = e[i].val_acc;
        }
        zf_viz_curve cv = {arch, n, v, v + n, v + 2 * n, v + 3 * n, v + 4 * n};
        zf_viz_curves_in in = {&cv, 1};
        char title[160];
        snprintf(title, sizeof title, "Training %s", arch);
        size_t ol = strlen(c->out);
        int base = ol > 12 && !strcmp(c->out + ol - 12, ".safetensors") ? (int)(ol - 12) : (int)ol;
        for (int f = 0; f < 2; f++) {
            char path[4200];
            snprintf(path, sizeof path, "%.*s-curves.%s", base, c->out, f ? "pdf" : "png");
            zf_viz_doc *doc;
            zf_status st = zf_viz_doc_open(path, &doc);
            if (!st)
                st = zf_viz_curves(doc, &in, title);
            if (!st)
                st = zf_viz_doc_finish(doc);
            if (!st)
                zf_viz_doc_free(doc);
            if (st)
                fprintf(stderr, "zfviz train: %s\n", zf_last_error());
            else if (!f)
                snprintf(png_path, plen, "%s", path);
        }
    }
    free(v);
    free(e);
}

/* A float setting as the shortest decimal that reads back as the same float (0.01, not
 * 0.0099999998), for people reading the config as much as for programs. */
static json_t *json_float(float f)
{
    char b[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        if ((float)strtod(b, NULL) == f)
            break;
    }
    return json_real(strtod(b, NULL));
}

/* v rounded as `fmt` prints it; null where it is not finite (JSON has no NaN or Inf). */
static json_t *json_rounded(double v, const char *fmt)
{
    char b[64];
    if (!isfinite(v))
        return json_null();
    snprintf(b, sizeof b, fmt, v);
    return json_real(strtod(b, NULL));
}

/* Reals printed with up to 9 significant digits: enough for every value above, which are rounded. */
#define TRAIN_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))

/* The run's settings as the model file and the database record them, into buf: written by jansson
 * so that any path (quotes, backslashes, control characters) reads back exactly. */
typedef struct {
    const char *kind;  /* "he" or "alexnet" */
    float std, first_std;
} train_init;

static zf_status config_json(char *buf, size_t size, const char *arch, const char *data,
                             const zf_train_config *cfg, const train_init *init, long val, long long n_train)
{
    json_error_t err;
    json_t *o = json_pack_ex(&err, 0,
                             "{s:s, s:s, s:i, s:i, s:o, s:i, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:i, s:i, s:o, s:s, s:o, s:o}",
                             "arch", arch, "data", data, "epochs", cfg->epochs, "batch", cfg->batch,
                             "lr", json_float(cfg->sgd.lr), "lr_steps", cfg->n_lr_steps ? cfg->lr_steps[0] : 0,
                             "lr_gamma", json_float(cfg->lr_gamma), "momentum", json_float(cfg->sgd.momentum),
                             "wd", json_float(cfg->sgd.weight_decay), "renorm", json_float(cfg->sgd.renorm),
                             "seed", (json_int_t)cfg->seed, "val", (json_int_t)val, "train_images",
                             (json_int_t)n_train, "crop", cfg->aug.crop, "flip", cfg->aug.flip, "pca_std",
                             json_float(cfg->aug.pca_std), "init", init->kind,
                             "init_std", json_float(init->kind[0] == 'a' ? init->std : 0),
                             "first_std", json_float(init->first_std));
    if (!o)
        return zf_error(ZF_ERR_ARG, "--data %s: cannot be recorded in the model's JSON metadata (%s)", data,
                        err.text);
    size_t n = json_dumpb(o, buf, size - 1, TRAIN_JSON_FLAGS);
    json_decref(o);
    if (n == 0 || n >= size)
        return zf_error(ZF_ERR_ARG, "--data %s: too long to record in the model's metadata", data);
    buf[n] = 0;
    return ZF_OK;
}

/* The run's epochs as a JSON array of [epoch, lr, train_loss, train_acc, val_loss, val_acc,
 * val_top5, seconds, images_per_s] rows (null where there is no validation or a value is not
 * finite), for the model file: the curves travel with the model. NULL when there is no database. */
static char *history_json(train_ctx *c)
{
    zf_epoch_stats *e;
    int n;
    if (!c->db || zf_db_train_epochs(c->db, c->run, &e, &n))
        return NULL;
    json_t *rows = json_array();
    for (int i = 0; rows && i < n; i++) {
        json_t *row = json_pack("[i, o, o, o, o, o, o, o, o]", e[i].epoch, json_rounded(e[i].lr, "%.6g"),
                                json_rounded(e[i].train_loss, "%.6g"), json_rounded(e[i].train_acc, "%.6g"),
                                json_rounded(e[i].val_loss, "%.6g"), json_rounded(e[i].val_acc, "%.6g"),
                                json_rounded(e[i].val_top5, "%.6g"), json_rounded(e[i].seconds, "%.1f"),
                                json_rounded(e[i].images_per_s, "%.1f"));
        if (!row || json_array_append_new(rows, row)) {
            json_decref(rows);
            rows = NULL;
        }
    }
    free(e);
    char *s = rows ? json_dumps(rows, TRAIN_JSON_FLAGS) : NULL;
    json_decref(rows);
    return s;
}

int zf_cmd_train(int argc, char **argv)
{
    enum { O_LRSTEPS = 256, O_LRGAMMA, O_WD, O_RENORM, O_VAL, O_LIMIT, O_CROP, O_NOFLIP, O_PCA, O_SIZE,
           O_SNAP, O_DB, O_CKPT, O_RESUME, O_MOM, O_INIT, O_INITSTD, O_FIRSTSTD };
    const char *arch = "alexnet-mini", *data = NULL, *out = NULL, *db_path = NULL;
    zf_train_config cfg = {0};
    cfg.epochs = 10;
    cfg.batch = 64;
    cfg.sgd = (zf_sgd){0.01f, 0.9f, 5e-4f, 0.1f};
    cfg.lr_gamma = 0.1f;
    cfg.seed = 1;
    cfg.checkpoint_s = 60;
    cfg.aug.crop = 2;
    cfg.aug.flip = 1;
    cfg.aug.pca_std = 0.1f;
    long val = -1, limit = -1, size = 0;
    int resume = 0;
    train_init init = {"he", 0.01f, 0};
    train_ctx ctx = {0};
    ctx.n_snapshots = parse_list("1,2,5,10", ctx.snapshots, 32);
    const zft_opt opts[] = {ZFT_STR("arch", 'A', &arch), ZFT_STR("data", 'd', &data),
                            ZFT_STR("out", 'o', &out),
                            ZFT_INT("epochs", 'e', 1, 100000, "a whole number from 1 to 100000", &cfg.epochs),
                            ZFT_INT("batch", 'b', 1, 65536, "a whole number from 1 to 65536", &cfg.batch),
                            ZFT_FLOAT("lr", 'l', 1e-12, 100, "a positive number", &cfg.sgd.lr),
                            ZFT_OWN("lr-steps", O_LRSTEPS, required_argument),
                            ZFT_FLOAT("lr-gamma", O_LRGAMMA, 1e-9, 1, "a number in (0, 1]", &cfg.lr_gamma),
                            ZFT_FLOAT("momentum", O_MOM, 0, 0.9999, "a number in [0, 1)", &cfg.sgd.momentum),
                            ZFT_FLOAT("wd", O_WD, 0, 1, "a number in [0, 1]", &cfg.sgd.weight_decay),
                            ZFT_FLOAT("renorm", O_RENORM, 0, 1e6, "a radius >= 0 (0 turns it off)", &cfg.sgd.renorm),
                            ZFT_OWN("seed", 's', required_argument), ZFT_STR("init", O_INIT, &init.kind),
                            ZFT_FLOAT("init-std", O_INITSTD, 1e-9, 10, "a positive number", &init.std),
                            ZFT_FLOAT("first-std", O_FIRSTSTD, 1e-9, 10, "a positive number", &init.first_std),
                            ZFT_LONG("val", O_VAL, 0, 1e18, "a count of images", &val),
                            ZFT_LONG("limit", O_LIMIT, 1, 1e18, "a count of images from 1", &limit),
                            ZFT_INT("crop", O_CROP, 0, 64, "a padding of 0 to 64 px", &cfg.aug.crop),
                            ZFT_OWN("no-flip", O_NOFLIP, no_argument),
                            ZFT_FLOAT("pca-std", O_PCA, 0, 10, "a number >= 0", &cfg.aug.pca_std),
                            ZFT_LONG("size", O_SIZE, 8, 4096, "a side of 8 to 4096 px", &size),
                            ZFT_OWN("snapshots", O_SNAP, required_argument), ZFT_STR("db", O_DB, &db_path),
                            ZFT_REAL("checkpoint-every", O_CKPT, 0, 1e9, "seconds (0: only at epoch ends)", &cfg.checkpoint_s),
                            ZFT_FLAG("resume", O_RESUME, &resume), {0}};
    zft_device dev = {.needs = ZF_ENGINE_NEEDS(ZF_ENGINE_OP_FORWARD) | ZF_ENGINE_NEEDS(ZF_ENGINE_OP_TRAIN)};
    zft_args a = {.cmd = "train", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .device = &dev, .shared = ZFT_WITH_FORCE | ZFT_WITH_WAIT};
    int c;
    while ((c = zft_args_next(&a)) != -1) {
        switch (c) {
        case O_LRSTEPS:
            if ((cfg.n_lr_steps = parse_list(optarg, cfg.lr_steps, 16)) < 0)
                return zft_usage_error("train", "--lr-steps takes epochs like 6,9, got '%s'", optarg);
            break;
        case 's': {
            char *end;
            cfg.seed = strtoull(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end)
                return zft_usage_error("train", "--seed takes a non-negative whole number, got '%s'", optarg);
            break;
        }
        case O_SNAP:
            if ((ctx.n_snapshots = parse_list(optarg, ctx.snapshots, 32)) < 0)
                return zft_usage_error("train", "--snapshots takes epochs like 1,2,5,10, got '%s'", optarg);
            break;
        case O_NOFLIP: cfg.aug.flip = 0; break;
        default: return a.rc;
        }
    }
    if (!data || !out)
        return zft_usage_error("train", "--data and --out are required");
    if (strcmp(init.kind, "he") && strcmp(init.kind, "alexnet"))
        return zft_usage_error("train", "--init takes he or alexnet, got '%s'", init.kind);
    size_t ol = strlen(out);
    if (ol < 13 || strcmp(out + ol - 12, ".safetensors"))
        return zft_usage_error("train", "--out names a .safetensors file");
    /* A model or checkpoint at --out may hold hours of training: never replaced unasked. */
    if (!resume && !zf_file_force()) {
        char ck[4200];
        snprintf(ck, sizeof ck, "%s.ckpt", out);
        const char *there = access(out, F_OK) == 0 ? out : access(ck, F_OK) == 0 ? ck : NULL;
        if (there)
            return zft_fail("train", zf_error(ZF_ERR_IO, "%s: exists; --resume continues its run, --force starts "
                                                         "over and replaces it", there));
    }
    if (zft_output_check(out)) /* with --resume too: a file zfviz did not make is not a run to go on */
        return zft_fail("train", ZF_ERR_IO);
    zft_install_sigint();
    /* The output folder first: a run must not train for an hour and then find it cannot save. */
    {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", out);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            zf_status ds = zft_mkdirs(dir);
            if (ds)
                return zft_fail("train", ds);
        }
        if (access(slash ? dir : ".", W_OK) != 0)
            return zft_fail("train", zf_error(ZF_ERR_IO, "%s: cannot write into %s", out, slash ? dir : "."));
    }

    /* Data. */
    zf_status st;
    zf_dataset *all = NULL, *train = NULL, *valset = NULL;
    zf_net *net = NULL;
    int fmnist = !strcmp(data, "fashion-mnist");
    if (fmnist) {
        st = zf_dataset_load_fashion_mnist(NULL, 1, &all);
    } else {
        zf_net *probe;
        if ((st = zf_net_new_builtin(arch, &probe)))
            return zft_fail("train", st);
        int store = size ? (int)size
                         : probe->pre.resize == ZF_RESIZE_SHORT_CROP ? probe->pre.resize_short : probe->in_h;
        zf_net_free(probe);
        fprintf(stderr, "zfviz train: loading %s (images stored at %dx%d)\n", data, store, store);
        st = zf_dataset_load_folder(data, store, &all);
    }
    if (st)
        return zft_fail("train", st);
    if (val < 0)
        val = fmnist ? 5000 : all->n / 10;
    if (val >= all->n) {
        zf_dataset_free(all);
        return zft_usage_error("train", "--val %ld leaves no training images (the data has %lld)", val, (long long)all->n);
    }
    int64_t n_train = all->n - val;
    if (limit > 0 && limit < n_train)
        n_train = limit;
    st = zf_dataset_slice(all, 0, n_train, &train);
    if (!st && val > 0)
        st = zf_dataset_slice(all, all->n - val, val, &valset);

    /* The net: the data decides channels and classes. */
    if (!st)
        st = zf_net_new_builtin_ex(arch, all->c == 1 && zf_arch_is_mini(arch) ? 1 : 3, all->n_classes, &net);
    if (!st) {
        st = zf_net_set_labels(net, all->n_classes, (const char *const *)all->class_names);
        if (zf_arch_is_mini(arch) && !fmnist && !st) {
            /* The mini nets normalise with their data's own statistics. */
            float mean[3], sd[3];
            zf_dataset_stats(train, mean, sd);
            memcpy(net->pre.mean, mean, sizeof mean);
            memcpy(net->pre.std, sd, sizeof sd);
        }
        if (!st && all->c == 3 && cfg.aug.pca_std > 0)
            st = zf_dataset_pca(train, cfg.aug.eigval, cfg.aug.eigvec);
    }
    if (!st && !resume)
        st = init.kind[0] == 'a' ? zf_net_init_gauss(net, cfg.seed, init.std) : zf_net_init_he(net, cfg.seed);
    if (!st && !resume && init.first_std > 0)
        st = zf_net_init_first_conv(net, cfg.seed, init.first_std);
    if (st) {
        zf_dataset_free(all);
        zf_dataset_free(train);
        zf_dataset_free(valset);
        zf_net_free(net);
        return zft_fail("train", st);
    }

    char ckpt[4200], dbp[4200], command[2048] = "", config[16384], acc[64] = "", nimg[32];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    snprintf(dbp, sizeof dbp, "%s", db_path ? db_path : "");
    if (!db_path)
        snprintf(dbp, sizeof dbp, "%.*s.sqlite", (int)(ol - 12), out);
    for (int i = 0; i < argc; i++) { /* argv[0] is "zfviz train" (main.c) */
        size_t at = strlen(command);
        snprintf(command + at, sizeof command - at, "%s%s", i ? " " : "", argv[i]);
    }
    if ((st = config_json(config, sizeof config, arch, data, &cfg, &init, val, (long long)n_train))) {
        zf_dataset_free(all);
        zf_dataset_free(train);
        zf_dataset_free(valset);
        zf_net_free(net);
        return zft_fail("train", st);
    }
    snprintf(nimg, sizeof nimg, "%lld", (long long)n_train);
    const char *meta[] = {"zfviz.train.command", command, "zfviz.train.data", data, "zfviz.train.config", config,
                          NULL};
    cfg.checkpoint = ckpt;
    cfg.meta_kv = meta;
    if (resume && access(ckpt, R_OK) != 0) {
        zf_dataset_free(all);
        zf_dataset_free(train);
        zf_dataset_free(valset);
        zf_net_free(net);
        return zft_usage_error("train", "--resume: no checkpoint %s to resume from", ckpt);
    }
    ctx.epochs = cfg.epochs;
    ctx.out = out;
    st = zft_db_open(dbp, 1, &ctx.db);
    if (!st)
        st = zf_db_train_run(ctx.db, out, arch, data, config, resume, &ctx.run);
    if (!st)
        st = zft_device_open(&dev, net, cfg.batch);
    if (!st) {
        printf("training %s on %s: %lld images (%d classes), %lld held out, %d epochs of %lld steps, batch %d, on %s\n",
               arch, data, (long long)train->n, train->n_classes, (long long)val, cfg.epochs,
               (long long)((train->n + cfg.batch - 1) / cfg.batch), cfg.batch, zf_engine_describe(dev.eng));
        fflush(stdout);
        zf_train_hooks hooks = {&ctx, on_step, on_epoch, NULL};
        st = zf_train_run_on(dev.eng, train, valset, &cfg, resume, &hooks);
        zft_outputs_keep(); /* a failed or stopped run keeps its checkpoint for --resume */
    }
    zft_progress_finish(&ctx.bar);
    if (st == ZF_ERR_INTERRUPTED) {
        fprintf(stderr, "zfviz train: stopped; the checkpoint %s holds the run: add --resume to go on\n", ckpt);
    } else if (!st) {
        double top1 = NAN, top5 = NAN;
        if (valset)
            st = zf_engine_evaluate(dev.eng, valset, cfg.batch, &top1, &top5, NULL, NULL, NULL);
        snprintf(acc, sizeof acc, "%.4f", top1);
        char *history = history_json(&ctx);
        const char *final_meta[] = {"zfviz.train.command", command, "zfviz.train.data", data,
                                    "zfviz.train.config", config, "zfviz.train.val_acc", acc,
                                    "zfviz.train.images", nimg, "zfviz.train.history",
                                    history ? history : "[]", NULL};
        if (!st)
            st = zf_model_save(net, out, final_meta, NULL);
        free(history);
        char png[4200];
        if (!st)
            write_curves(&ctx, arch, png, sizeof png);
        if (!st) {
            printf("wrote %s", out);
            if (!isnan(top1))
                printf(" (validation top-1 %.2f%%, top-5 %.2f%%)", 100 * top1, 100 * top5);
            printf("\n  checkpoint %s\n  metrics    %s\n", ckpt, dbp);
            if (png[0])
                printf("  curves     %s (and .pdf)\n", png);
        }
    }
    zft_device_close(&dev);
    zf_db_close(ctx.db);
    zf_dataset_free(all);
    zf_dataset_free(train);
    zf_dataset_free(valset);
    zf_net_free(net);
    return st ? zft_fail("train", st) : 0;
}
