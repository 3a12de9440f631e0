/* The rest of Zeiler & Fergus in zfviz demo: invariance, part correspondence, conv2 in pixels, the
 * linear probes and feature evolution of both embedded nets, through the functions zfviz
 * invariance, correspond, compare --layer, probe and evolve run (paper_exp.h, paper_units.h) with
 * their defaults, so that each page is what its command gives on the same files. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "demo_paper.h"
#include "embedded_runs.h"
#include "paper_exp.h"
#include "paper_units.h"
#include "zf/dataset.h"
#include "zf/file.h"

#define ZFT_DEMO_PAPER_PARTS 2
/* Fig. 8's parts on Fashion-MNIST's ankle boots, in the nets' 112 x 112 input: the boots point left,
 * the toe at the bottom left (columns 1-7, rows 16-22 of the 28 x 28 image), the heel at the bottom
 * right (columns 20-26, the same rows). */
static const char *const part_names[ZFT_DEMO_PAPER_PARTS] = {"toe", "heel"};
static const zf_part_box part_boxes[ZFT_DEMO_PAPER_PARTS] = {{4, 64, 28, 28}, {80, 64, 28, 28}};
#define COR_RANDOM 5    /* zfviz correspond's default draws, seed 0, fill 0 */
#define CONV2_IMAGES 64 /* zfviz compare --layer's default image count */
/* The probes: the paper's layers 1-7 (conv1..conv5, fc6, fc7), zfviz probe's grid and L2. */
static const char *const probe_layers[] = {"conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"};
/* Feature evolution: two units of each conv layer, over the first images of the demo. */
#define EVO_UNITS 2
#define ZFT_DEMO_PAPER_PROBE_LAYERS 16

typedef struct zft_demo_paper_net {
    const char *name;   /* alexnet-mini */
    const char *label;  /* as the commands name it: "alexnet-mini (embedded)" */
    zf_net *net;        /* borrowed */
    zf_engine *eng;     /* borrowed: the engine on it, which the experiments run on */
    zft_image_set inv_im;
    zft_sweep sw[ZF_TRANSFORM_COUNT];
    int inv_layers[2], *inv_cls;
    zft_image_set cor_im;
    zft_correspond cor;
    char *cor_table;    /* zfviz correspond's table */
    int n_probe;
    char probe_names[ZFT_DEMO_PAPER_PROBE_LAYERS][32];
    zft_probe_row probe[ZFT_DEMO_PAPER_PROBE_LAYERS];
    char *probe_table;  /* zfviz probe's table */
    zft_evolve evo;
    int evo_done;
} zft_demo_paper_net;

struct zft_demo_paper {
    const char *dir;
    int quick;
    zft_demo_paper_net nets[ZFT_DEMO_PAPER_NETS];
    zft_part parts[ZFT_DEMO_PAPER_PARTS];
    zf_part_box part_box[ZFT_DEMO_PAPER_PARTS];
    int cor_class;      /* the class whose images are occluded */
    int cor_images;     /* how many (under 2: no measure, the page says why) */
    zft_deep deep[ZFT_DEMO_PAPER_NETS];
    zft_deep_fig deep_fig;
    long probe_train, probe_test, probe_iters;
    long evo_images;    /* the first N demo images evolve looks through */
    zft_device dev;     /* where evolve runs the training runs' models */
};


static const char *path_in(char *buf, const char *dir, const char *name)
{
    if (snprintf(buf, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
        buf[0] = '\0';
    return buf;
}

static int embedded_run(const char *name, const unsigned char **bytes, size_t *len)
{
    for (int i = 0; zf_embedded_runs[i].name; i++)
        if (!strcmp(zf_embedded_runs[i].name, name)) {
            *bytes = zf_embedded_runs[i].begin;
            *len = (size_t)(zf_embedded_runs[i].end - zf_embedded_runs[i].begin);
            return 1;
        }
    return 0;
}

static const char *const net_names[ZFT_DEMO_PAPER_NETS] = {"alexnet-mini", "zfnet-mini"};

zf_status zft_demo_paper_check(const char *dir)
{
    const unsigned char *b;
    size_t len;
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS; i++)
        if (!embedded_run(net_names[i], &b, &len))
            return zf_error(ZF_ERR_UNSUPPORTED,
                            "this zfviz has no embedded %s training run (assets/runs/%s.sqlite was missing when it "
                            "was built): copy the --db of the run that made assets/models/%s.safetensors (zfviz "
                            "train --snapshots ...) there, then re-run cmake and rebuild",
                            net_names[i], net_names[i], net_names[i]);
    static const char *const fixed[] = {"correspondence.png", "conv2-compare.png", "probes.png"};
    static const char *const per_net[] = {"invariance-%s.png", "invariance-%s.csv", "correspond-%s.csv",
                                          "probe-%s.csv",      "evolve-%s.png",     "evolve-%s.csv",
                                          "%s-training.sqlite"};
    char p[PATH_MAX], name[128];
    zf_status st = ZF_OK;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed && !st; i++)
        st = zf_file_check(path_in(p, dir, fixed[i]));
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS && !st; i++)
        for (size_t k = 0; k < sizeof per_net / sizeof *per_net && !st; k++) {
            snprintf(name, sizeof name, per_net[k], net_names[i]);
            st = zf_file_check(path_in(p, dir, name));
        }
    return st;
}

zf_status zft_demo_paper_new(const char *dir, int quick, zf_engine *const *engines, const char *const *names,
                             const char *const *labels, const zft_device *dev, zft_demo_paper **out)
{
    zft_demo_paper *p = calloc(1, sizeof *p);
    if (!(*out = p))
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    p->dir = dir;
    p->quick = quick;
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS; i++) {
        p->nets[i].eng = engines[i];
        p->nets[i].net = zf_engine_net(engines[i]);
        p->nets[i].name = names[i];
        p->nets[i].label = labels[i];
    }
    p->dev = zft_device_choice(dev);
    for (int k = 0; k < ZFT_DEMO_PAPER_PARTS; k++) {
        snprintf(p->parts[k].name, sizeof p->parts[k].name, "%s", part_names[k]);
        p->part_box[k] = part_boxes[k];
        p->parts[k].n = 1;
        p->parts[k].box = &p->part_box[k];
    }
    p->cor_class = ZFT_DEMO_COR_CLASS;
    p->probe_train = quick ? ZFT_DEMO_QUICK_PROBE_TRAIN : ZFT_DEMO_PROBE_TRAIN;
    p->probe_test = quick ? ZFT_DEMO_QUICK_PROBE_TEST : ZFT_DEMO_PROBE_TEST;
    p->probe_iters = quick ? ZFT_DEMO_QUICK_PROBE_ITERS : ZFT_DEMO_PROBE_ITERS;
    p->evo_images = ZFT_DEMO_EVOLVE_IMAGES;
    return ZF_OK;
}

/* One figure into DIR/name. */
typedef zf_status (*draw_fn)(zf_viz_doc *doc, zft_demo_paper *p, int which, const zf_viz_style *style);

static zf_status write_png(zft_demo_paper *p, const char *name, draw_fn fn, int which, const zf_viz_style *style)
{
    char path[PATH_MAX];
    zf_viz_doc *doc = NULL;
    zf_status st;
    if (!(st = zf_viz_doc_open(path_in(path, p->dir, name), &doc)) && !(st = fn(doc, p, which, style)))
        st = zf_viz_doc_finish(doc);
    zf_viz_doc_free(doc);
    return st;
}

/* What a function prints, as a string (the tables the commands print, for the text pages). */
typedef struct mem_out {
    char *s;
    size_t len;
    FILE *f;
} mem_out;

static zf_status mem_open(mem_out *m)
{
    m->s = NULL;
    m->len = 0;
    if (!(m->f = open_memstream(&m->s, &m->len)))
        return zf_error(ZF_ERR_NOMEM, "out of memory for a table: %s", strerror(errno));
    return ZF_OK;
}

static char *mem_close(mem_out *m)
{
    if (fclose(m->f) || !m->s) {
        free(m->s);
        zf_error(ZF_ERR_NOMEM, "out of memory for a table");
        return NULL;
    }
    return m->s;
}

/* ---- invariance ---- */

static zf_status draw_invariance(zf_viz_doc *doc, zft_demo_paper *p, int which, const zf_viz_style *style)
{
    const zft_demo_paper_net *n = &p->nets[which];
    zf_invariance_params ip;
    zf_invariance_params_default(&ip);
    return zft_invariance_draw(doc, n->net, n->label, &n->inv_im, n->sw, n->inv_layers, ip.fill, style);
}

zf_status zft_demo_paper_invariance(zft_demo_paper *p, char *const *paths, int n, const zf_viz_style *style)
{
    zf_status st = ZF_OK;
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS && !st; i++) {
        zft_demo_paper_net *dn = &p->nets[i];
        zf_invariance_params ip;
        zf_invariance_params_default(&ip);
        char name[128], csv[PATH_MAX];
        for (int t = 0; t < ZF_TRANSFORM_COUNT; t++)
            dn->sw[t].on = 1;
        if ((st = zft_image_set_load(dn->net, paths, n, &dn->inv_im)))
            break;
        zft_invariance_ranges(dn->sw, dn->net);
        if (!(dn->inv_cls = malloc(sizeof(int) * (size_t)dn->inv_im.n))) {
            st = zf_error(ZF_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(name, sizeof name, "invariance-%s.csv", dn->name);
        if ((st = zft_invariance_run(dn->eng, &dn->inv_im, dn->sw, &ip, dn->inv_layers, dn->inv_cls)) ||
            (st = zft_invariance_write_csv(path_in(csv, p->dir, name), dn->net, dn->label, &dn->inv_im, dn->sw,
                                           dn->inv_cls, dn->inv_layers)))
            break;
        snprintf(name, sizeof name, "invariance-%s.png", dn->name);
        st = write_png(p, name, draw_invariance, i, style);
    }
    return st;
}

/* ---- correspondence ---- */

static zf_status draw_correspond(zf_viz_doc *doc, zft_demo_paper *p, int which, const zf_viz_style *style)
{
    (void)which;
    (void)style;
    const char *title = "Part correspondence under occlusion (Zeiler & Fergus Fig. 8)";
    if (p->cor_images < 2) {
        char why[512];
        snprintf(why, sizeof why, "The demo images hold %d ankle boot%s, and the measure compares pairs of images: "
                 "run the demo with --images 20 or more for this page.", p->cor_images, p->cor_images == 1 ? "" : "s");
        zf_viz_text_block b[] = {{NULL, why, 0, 0}};
        return zf_viz_text_page(doc, title, b, 1);
    }
    char note[2048];
    int at = snprintf(note, sizeof note,
                      "Zeiler & Fergus section 4.3 (Fig. 8's table) on %d ankle boots of the demo images, as zfviz "
                      "correspond computes it: a part is filled with the mean colour in every image (boxes x,y,w,h in "
                      "the nets' 112 \xc3\x97 112 input:",
                      p->nets[0].cor.n_images);
    for (int k = 0; k < ZFT_DEMO_PAPER_PARTS && at < (int)sizeof note; k++)
        at += snprintf(note + at, sizeof note - (size_t)at, "%s %s %d,%d,%d,%d", k ? ";" : "", p->parts[k].name,
                       p->part_box[k].x, p->part_box[k].y, p->part_box[k].w, p->part_box[k].h);
    if (at < (int)sizeof note)
        snprintf(note + at, sizeof note - (size_t)at,
                 "), and %d boxes of the same size at random places as the control. The number is the mean fraction "
                 "of a layer's elements whose sign of change differs between two images: lower means the occlusion "
                 "changes the layer the same way in every boot. The CSVs are in %s/correspond-NET.csv.",
                 COR_RANDOM, p->dir);
    zf_viz_text_block b[] = {{NULL, note, 0, 0},
                             {p->nets[0].name, p->nets[0].cor_table, 1, 0},
                             {p->nets[1].name, p->nets[1].cor_table, 1, 0}};
    return zf_viz_text_page(doc, title, b, 3);
}

zf_status zft_demo_paper_correspond(zft_demo_paper *p, char *const *paths, int n, const zf_viz_style *style)
{
    zf_status st = ZF_OK;
    p->cor_images = n;
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS && !st && n >= 2; i++) {
        zft_demo_paper_net *dn = &p->nets[i];
        char name[128], csv[PATH_MAX];
        zft_correspond *c = &dn->cor;
        c->random = COR_RANDOM;
        c->seed = 0;
        c->fill = 0;
        if ((st = zft_image_set_load(dn->net, paths, n, &dn->cor_im)) ||
            (st = zft_correspond_default_layers(dn->net, c->layers, &c->n_layers)) ||
            (st = zft_correspond_run(c, dn->eng, &dn->cor_im, p->parts, ZFT_DEMO_PAPER_PARTS)))
            break;
        snprintf(name, sizeof name, "correspond-%s.csv", dn->name);
        if ((st = zft_correspond_write_csv(path_in(csv, p->dir, name), c, dn->net, dn->label, p->parts)))
            break;
        mem_out m;
        if ((st = mem_open(&m)))
            break;
        zft_correspond_print(m.f, c, dn->net, dn->label, p->parts);
        if (!(dn->cor_table = mem_close(&m)))
            st = ZF_ERR_NOMEM;
    }
    return st ? st : write_png(p, "correspondence.png", draw_correspond, 0, style);
}

/* ---- conv2 in pixels ---- */

static zf_status draw_conv2(zf_viz_doc *doc, zft_demo_paper *p, int which, const zf_viz_style *style)
{
    (void)which;
    (void)style;
    return zft_deep_draw(doc, &p->deep_fig);
}

zf_status zft_demo_paper_conv2(zft_demo_paper *p, char *const *paths, int n, const zf_viz_style *style, FILE *out)
{
    int conv[ZFT_DEMO_PAPER_NETS];
    const zf_net *nets[ZFT_DEMO_PAPER_NETS];
    const char *labels[ZFT_DEMO_PAPER_NETS];
    zf_status st = ZF_OK;
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS && !st; i++) {
        nets[i] = p->nets[i].net;
        labels[i] = p->nets[i].label;
        if ((conv[i] = zf_net_find_conv(nets[i], "conv2")) < 0)
            return zf_error(ZF_ERR_ARG, "%s has no conv2", p->nets[i].name);
        st = zft_deep_side(p->nets[i].eng, conv[i], paths, n, CONV2_IMAGES, &p->deep[i]);
    }
    if (st)
        return st;
    zft_deep_fig_init(&p->deep_fig, "conv2", labels, nets, conv, p->deep, style);
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS; i++)
        zft_deep_print(out, labels[i], nets[i]->layers[conv[i]].name, &p->deep[i]);
    return write_png(p, "conv2-compare.png", draw_conv2, 0, style);
}

/* ---- linear probes ---- */

static zf_status draw_probes(zf_viz_doc *doc, zft_demo_paper *p, int which, const zf_viz_style *style)
{
    (void)which;
    (void)style;
    char note[1400];
    snprintf(note, sizeof note,
             "Zeiler & Fergus section 5.3: the features of each of the paper's layers 1-7 in the frozen net (maps "
             "averaged over a 4 \xc3\x97 4 grid), a linear softmax classifier trained on them, as zfviz probe "
             "--layers conv1,conv2,conv3,conv4,conv5,fc6,fc7 --limit %ld --test-limit %ld --iters %ld does: the "
             "first %ld training and %ld test images of Fashion-MNIST, at most %ld L-BFGS iterations (zfviz probe's "
             "defaults are all 60,000 and 10,000 and 500). The CSVs are in %s/probe-NET.csv.",
             p->probe_train, p->probe_test, p->probe_iters, p->probe_train, p->probe_test, p->probe_iters, p->dir);
    zf_viz_text_block b[] = {{NULL, note, 0, 0},
                             {p->nets[0].name, p->nets[0].probe_table, 1, 0},
                             {p->nets[1].name, p->nets[1].probe_table, 1, 0}};
    return zf_viz_text_page(doc, "What each layer's features carry: linear probes", b, 3);
}

static zf_status load_split(int train, long limit, zf_dataset **out)
{
    zf_dataset *ds = NULL, *s = NULL;
    zf_status st = zf_dataset_load_fashion_mnist(NULL, train, &ds);
    if (!st && limit < ds->n && !(st = zf_dataset_slice(ds, 0, limit, &s))) {
        zf_dataset_free(ds);
        ds = s;
    }
    if (st) {
        zf_dataset_free(ds);
        return st;
    }
    *out = ds;
    return ZF_OK;
}

zf_status zft_demo_paper_probe(zft_demo_paper *p, const zf_viz_style *style)
{
    zf_dataset *train = NULL, *test = NULL;
    zf_status st = load_split(1, p->probe_train, &train);
    if (!st)
        st = load_split(0, p->probe_test, &test);
    zf_probe_opts po = zf_probe_defaults();
    po.iters = (int)p->probe_iters;
    const int grid = 4, batch = 100; /* zfviz probe's defaults */
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS && !st; i++) {
        zft_demo_paper_net *dn = &p->nets[i];
        int layers[ZFT_DEMO_PAPER_PROBE_LAYERS];
        dn->n_probe = 0;
        for (size_t k = 0; k < sizeof probe_layers / sizeof *probe_layers; k++)
            if ((layers[dn->n_probe] = zf_probe_resolve(dn->net, probe_layers[k])) >= 0)
                snprintf(dn->probe_names[dn->n_probe++], sizeof dn->probe_names[0], "%s", probe_layers[k]);
        if ((st = zft_probe_run(dn->eng, train, test, layers, (const char (*)[32])dn->probe_names, dn->n_probe, grid,
                                batch, &po, NULL, dn->probe, NULL, NULL)))
            break;
        for (int csv = 1; csv >= 0 && !st; csv--) {
            mem_out m;
            if ((st = mem_open(&m)))
                break;
            /* The CSV's first line names the command that gives the rest (and marks the file as zfviz's). */
            if (csv)
                fprintf(m.f, "zfviz probe --model %s --layers conv1,conv2,conv3,conv4,conv5,fc6,fc7 --limit %ld "
                             "--test-limit %ld --iters %ld --csv\n",
                        dn->name, p->probe_train, p->probe_test, p->probe_iters);
            zft_probe_print_head(m.f, csv, dn->label, train->n, test->n, "fashion-mnist", train->n_classes, grid,
                                 po.l2);
            for (int k = 0; k < dn->n_probe; k++)
                zft_probe_print_row(m.f, csv, dn->probe_names[k], &dn->probe[k]);
            char *text = mem_close(&m);
            if (!text) {
                st = ZF_ERR_NOMEM;
                break;
            }
            if (csv) {
                char name[128], path[PATH_MAX];
                snprintf(name, sizeof name, "probe-%s.csv", dn->name);
                st = zf_file_save(path_in(path, p->dir, name), text, strlen(text), 0);
                free(text);
            } else {
                dn->probe_table = text;
            }
        }
    }
    zf_dataset_free(train);
    zf_dataset_free(test);
    return st ? st : write_png(p, "probes.png", draw_probes, 0, style);
}

/* ---- feature evolution ---- */

static zf_status draw_evolve(zf_viz_doc *doc, zft_demo_paper *p, int which, const zf_viz_style *style)
{
    return zft_evolve_draw(doc, &p->nets[which].evo, 0, style);
}

zf_status zft_demo_paper_evolve(zft_demo_paper *p, const char *images_dir, const zf_viz_style *style)
{
    zf_status st = ZF_OK;
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS && !st; i++) {
        zft_demo_paper_net *dn = &p->nets[i];
        const unsigned char *bytes;
        size_t len;
        char name[128], db[PATH_MAX], csv[PATH_MAX];
        if (!embedded_run(dn->name, &bytes, &len))
            return zft_demo_paper_check(p->dir);
        snprintf(name, sizeof name, "%s-training.sqlite", dn->name);
        /* A WAL or journal an earlier demo's reading left beside the file belongs to that copy. */
        static const char *const side[] = {"-wal", "-shm", "-journal"};
        for (int k = 0; k < 3; k++) {
            char sp[PATH_MAX + 16];
            snprintf(sp, sizeof sp, "%s%s", path_in(db, p->dir, name), side[k]);
            unlink(sp);
        }
        if ((st = zf_file_save(path_in(db, p->dir, name), bytes, len, 0)))
            break;
        /* conv1..conv5, or as many conv layers as the net has */
        const char *layers[ZFT_EVOLVE_MAX_LAYERS];
        char lnames[ZFT_EVOLVE_MAX_LAYERS][16];
        int nl = 0;
        for (int k = 1; k <= 5; k++) {
            snprintf(lnames[nl], sizeof lnames[nl], "conv%d", k);
            if (zf_net_find_conv(dn->net, lnames[nl]) >= 0) {
                layers[nl] = lnames[nl];
                nl++;
            }
        }
        static const int units[EVO_UNITS] = {0, 1};
        snprintf(name, sizeof name, "evolve-%s.csv", dn->name);
        zf_file *f = NULL;
        if ((st = zf_file_open(path_in(csv, p->dir, name), 0, &f)))
            break;
        /* The first line names the commands that give the rest (and marks the file as zfviz's). */
        fprintf(zf_file_stream(f),
                "zfviz evolve --db %s --model %s --images %s --limit %ld --layer convK --units 0,1 --csv, K = 1..%d\n",
                db, dn->name, images_dir, p->evo_images, nl);
        zft_evolve_opts eo = {db,    0, dn->name, images_dir, p->evo_images, layers, nl, units, EVO_UNITS, NULL, 0,
                              0,     1, 50,       zf_file_stream(f), &p->dev};
        int usage = 0;
        st = zft_evolve_run(&dn->evo, &eo, &usage);
        if (st) {
            zf_file_discard(f);
            break;
        }
        dn->evo_done = 1;
        if ((st = zf_file_commit(f)))
            break;
        snprintf(name, sizeof name, "evolve-%s.png", dn->name);
        st = write_png(p, name, draw_evolve, i, style);
    }
    return st;
}

/* ---- the pages ---- */

zf_status zft_demo_paper_pages(zf_viz_doc *doc, zft_demo_paper *p, const zf_viz_style *style)
{
    zf_status st = ZF_OK;
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS && !st; i++)
        st = draw_invariance(doc, p, i, style);
    if (!st)
        st = draw_correspond(doc, p, 0, style);
    if (!st)
        st = draw_conv2(doc, p, 0, style);
    if (!st)
        st = draw_probes(doc, p, 0, style);
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS && !st; i++)
        st = draw_evolve(doc, p, i, style);
    return st;
}

void zft_demo_paper_free(zft_demo_paper *p)
{
    if (!p)
        return;
    for (int i = 0; i < ZFT_DEMO_PAPER_NETS; i++) {
        zft_demo_paper_net *n = &p->nets[i];
        zft_image_set_free(&n->inv_im);
        zft_invariance_free(n->sw);
        free(n->inv_cls);
        zft_image_set_free(&n->cor_im);
        zft_correspond_free(&n->cor);
        free(n->cor_table);
        free(n->probe_table);
        zft_evolve_free(&n->evo);
        zft_deep_free(&p->deep[i]);
    }
    free(p);
}
