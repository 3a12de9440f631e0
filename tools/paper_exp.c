/* The paper's experiments as zfviz runs them: what zfviz invariance, correspond and probe compute,
 * write and draw, shared with zfviz demo (paper_exp.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "paper_exp.h"
#include "zf/file.h"
#include "zf/io.h"
#include "zf/viz_paper.h"

/* A CSV field: quoted when it holds a comma, a quote or a newline. */
static void csv_name(FILE *o, const char *name, const char *special)
{
    if (!strpbrk(name, special)) {
        fputs(name, o);
        return;
    }
    fputc('"', o);
    for (const char *p = name; *p; p++)
        fputs(*p == '"' ? "\"\"" : (char[2]){*p, 0}, o);
    fputc('"', o);
}

/* ---- invariance ---- */

static const char *const xlabels[ZF_TRANSFORM_COUNT] = {"vertical translation (pixels)", "scale (ratio)",
                                                       "rotation (degrees)"};

void zft_invariance_ranges(zft_sweep *sw, const zf_net *net)
{
    if (!sw[0].given) {
        const double r = round(60.0 * net->in_h / 224.0);
        sw[0] = (zft_sweep){sw[0].on, 0, -r, r, 13, NULL, NULL};
    }
    if (!sw[1].given)
        sw[1] = (zft_sweep){sw[1].on, 0, 1.0, 1.8, 9, NULL, NULL};
    if (!sw[2].given)
        sw[2] = (zft_sweep){sw[2].on, 0, 0.0, 360.0, 37, NULL, NULL};
}

zf_status zft_invariance_run(zf_engine *e, const zft_image_set *im, zft_sweep *sw, const zf_invariance_params *p,
                             int *layers, int *cls)
{
    const int64_t isz = zf_net_in_size(zf_engine_net(e));
    for (int t = 0; t < ZF_TRANSFORM_COUNT; t++) {
        if (!sw[t].on)
            continue;
        zft_sweep *w = &sw[t];
        w->amounts = malloc(sizeof(double) * w->n);
        w->rows = malloc(sizeof(zf_invariance_row) * (size_t)w->n * im->n);
        if (!w->amounts || !w->rows)
            return zf_error(ZF_ERR_NOMEM, "out of memory");
        for (int k = 0; k < w->n; k++)
            w->amounts[k] = w->n > 1 ? w->lo + (w->hi - w->lo) * k / (w->n - 1) : w->lo;
        for (int i = 0; i < im->n; i++) {
            zf_status st = zf_invariance_sweep(e, im->x + isz * i, (zf_transform)t, w->amounts, w->n, p,
                                               w->rows + (size_t)i * w->n, layers, &cls[i]);
            if (st)
                return st;
        }
    }
    return ZF_OK;
}

void zft_invariance_free(zft_sweep *sw)
{
    for (int t = 0; t < ZF_TRANSFORM_COUNT; t++) {
        free(sw[t].amounts);
        free(sw[t].rows);
        sw[t].amounts = NULL;
        sw[t].rows = NULL;
    }
}

zf_status zft_invariance_write_csv(const char *path, const zf_net *net, const char *model, const zft_image_set *im,
                                   const zft_sweep *sw, const int *cls, const int *layers)
{
    zf_file *f = NULL;
    zf_status st = zf_file_open(path, 0, &f);
    if (st)
        return st;
    FILE *o = zf_file_stream(f);
    fprintf(o, "zfviz invariance: %s, %d image%s\n", model, im->n, im->n == 1 ? "" : "s");
    fprintf(o, "image,class,transform,amount,dist_%s,dist_%s,prob,top\n", net->layers[layers[0]].name,
            net->layers[layers[1]].name);
    for (int t = 0; t < ZF_TRANSFORM_COUNT; t++) {
        if (!sw[t].on)
            continue;
        for (int i = 0; i < im->n; i++)
            for (int k = 0; k < sw[t].n; k++) {
                const zf_invariance_row *r = &sw[t].rows[(size_t)i * sw[t].n + k];
                csv_name(o, im->names[i], ",\"\n");
                fprintf(o, ",%d,%s,%.9g,%.9g,%.9g,%.9g,%d\n", cls[i], zf_transform_name((zf_transform)t),
                        sw[t].amounts[k], r->dist[0], r->dist[1], r->prob, (int)r->top);
            }
    }
    return zf_file_commit(f);
}

zf_status zft_invariance_write_npys(const char *dir, const zft_image_set *im, const zft_sweep *sw)
{
    for (int t = 0; t < ZF_TRANSFORM_COUNT; t++) {
        if (!sw[t].on)
            continue;
        const int n = sw[t].n;
        float *v = malloc(sizeof(float) * (size_t)im->n * n * 3 + sizeof(float) * n);
        if (!v)
            return zf_error(ZF_ERR_NOMEM, "out of memory for the %s arrays", zf_transform_name((zf_transform)t));
        for (int i = 0; i < im->n * n; i++) {
            v[3 * i] = (float)sw[t].rows[i].dist[0];
            v[3 * i + 1] = (float)sw[t].rows[i].dist[1];
            v[3 * i + 2] = (float)sw[t].rows[i].prob;
        }
        float *a = v + (size_t)im->n * n * 3;
        for (int k = 0; k < n; k++)
            a[k] = (float)sw[t].amounts[k];
        char path[4096];
        const int64_t shape[3] = {im->n, n, 3}, ashape[1] = {n};
        snprintf(path, sizeof path, "%s/%s.npy", dir, zf_transform_name((zf_transform)t));
        zf_status st = zf_npy_write_raw(path, ZF_DTYPE_F32, v, 3, shape);
        if (!st) {
            snprintf(path, sizeof path, "%s/%s_amounts.npy", dir, zf_transform_name((zf_transform)t));
            st = zf_npy_write_raw(path, ZF_DTYPE_F32, a, 1, ashape);
        }
        free(v);
        if (st)
            return st;
    }
    return ZF_OK;
}

/* Fig. 5: a row per transform, thumbnails of the first image at 5 of the amounts (ends and middle). */
zf_status zft_invariance_draw(zf_viz_doc *doc, const zf_net *net, const char *model, const zft_image_set *im,
                              const zft_sweep *sw, const int *layers, float fill, const zf_viz_style *style)
{
    const int h = net->in_h, w = net->in_w, planes = zf_viz_planes(&net->pre);
    if (net->in_c != planes)
        return zf_error(ZF_ERR_SHAPE, "%s has %d input channels but its preprocessing makes %d: cannot show its "
                        "input as an image", net->arch, net->in_c, planes);
    zf_viz_invariance_row rows[ZF_TRANSFORM_COUNT];
    zf_image thumbs[ZF_TRANSFORM_COUNT][ZF_VIZ_INVARIANCE_EXAMPLES];
    double ex_amounts[ZF_TRANSFORM_COUNT][ZF_VIZ_INVARIANCE_EXAMPLES];
    double *vals[ZF_TRANSFORM_COUNT] = {0};
    uint8_t *pix = malloc((size_t)ZF_TRANSFORM_COUNT * ZF_VIZ_INVARIANCE_EXAMPLES * h * w * 3);
    float *tx = malloc(sizeof(float) * (size_t)zf_net_in_size(net));
    zf_status st = ZF_OK;
    int nr = 0;
    if (!pix || !tx) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for the invariance figure");
        goto done;
    }
    for (int t = 0; t < ZF_TRANSFORM_COUNT; t++) {
        if (!sw[t].on)
            continue;
        const int n = sw[t].n;
        if (!(vals[t] = malloc(sizeof(double) * 3 * (size_t)im->n * n))) {
            st = zf_error(ZF_ERR_NOMEM, "out of memory for the invariance figure");
            goto done;
        }
        for (int i = 0; i < im->n * n; i++)
            for (int c = 0; c < 3; c++)
                vals[t][(size_t)c * im->n * n + i] = c < 2 ? sw[t].rows[i].dist[c] : sw[t].rows[i].prob;
        const int ne = n < 5 ? n : 5;
        for (int k = 0; k < ne; k++) {
            const int idx = ne > 1 ? (int)lround((double)k * (n - 1) / (ne - 1)) : 0;
            ex_amounts[nr][k] = sw[t].amounts[idx];
            if ((st = zf_transform_image(tx, im->x, net->in_c, h, w, (zf_transform)t, sw[t].amounts[idx], fill)))
                goto done;
            uint8_t *rgb = pix + ((size_t)nr * ZF_VIZ_INVARIANCE_EXAMPLES + k) * h * w * 3;
            zf_viz_input_to_rgb(rgb, tx, &net->pre, h, w);
            thumbs[nr][k] = (zf_image){w, h, rgb};
        }
        rows[nr] = (zf_viz_invariance_row){xlabels[t], n, sw[t].amounts,
                                           {vals[t], vals[t] + (size_t)im->n * n}, vals[t] + (size_t)2 * im->n * n,
                                           ne, thumbs[nr], ex_amounts[nr]};
        nr++;
    }
    char la[96], lb[96], sub[1400];
    snprintf(la, sizeof la, "%s: distance", net->layers[layers[0]].name);
    snprintf(lb, sizeof lb, "%s: distance", net->layers[layers[1]].name);
    snprintf(sub, sizeof sub, "%s; Euclidean distance of each layer's output to the untransformed image's; "
             "probability of each image's class", model);
    zf_viz_invariance_in in = {"Feature invariance (Zeiler & Fergus Fig. 5)", sub, {la, lb}, im->n,
                               (const char *const *)im->names, nr, rows};
    st = zf_viz_invariance(doc, &in, style);
done:
    for (int t = 0; t < ZF_TRANSFORM_COUNT; t++)
        free(vals[t]);
    free(pix);
    free(tx);
    return st;
}

void zft_invariance_print(FILE *f, const zf_net *net, const char *model, const zft_image_set *im,
                          const zft_sweep *sw, const int *layers, double secs)
{
    fprintf(f, "%s: %d image%s, layers %s and %s, %.2f s\n", model, im->n, im->n == 1 ? "" : "s",
            net->layers[layers[0]].name, net->layers[layers[1]].name, secs);
    fprintf(f, "%-10s %8s %8s  %14s %14s  %10s\n", "transform", "from", "to", "max dist A", "max dist B", "min prob");
    for (int t = 0; t < ZF_TRANSFORM_COUNT; t++) {
        if (!sw[t].on)
            continue;
        double m0 = 0, m1 = 0, pmin = 1;
        for (int i = 0; i < im->n * sw[t].n; i++) {
            m0 = fmax(m0, sw[t].rows[i].dist[0]);
            m1 = fmax(m1, sw[t].rows[i].dist[1]);
            pmin = fmin(pmin, sw[t].rows[i].prob);
        }
        fprintf(f, "%-10s %8g %8g  %14.6g %14.6g  %10.4g\n", zf_transform_name((zf_transform)t), sw[t].lo, sw[t].hi,
                m0, m1, pmin);
    }
}

/* ---- correspondence ---- */

zf_status zft_correspond_default_layers(const zf_net *net, int *layers, int *n_layers)
{
    layers[0] = zf_paper_layer_last_conv(net);
    layers[1] = zf_paper_layer_penultimate(net);
    *n_layers = layers[1] < 0 ? 1 : 2;
    if (layers[0] < 0)
        return zf_error(ZF_ERR_ARG, "%s has no conv layer: name the layers with --layers", net->arch);
    return ZF_OK;
}

zf_status zft_correspond_run(zft_correspond *c, zf_engine *e, const zft_image_set *im, const zft_part *parts,
                             int n_parts)
{
    const zf_net *net = zf_engine_net(e);
    c->n_parts = n_parts;
    c->n_images = im->n;
    if (im->n < 2)
        return zf_error(ZF_ERR_ARG, "correspondence needs at least 2 images, got %d", im->n);
    /* Every part's boxes, one per image, checked before any forward. */
    const int n_sets = n_parts * (1 + c->random), nl = c->n_layers;
    c->sets = calloc((size_t)n_sets, sizeof(zf_part_box *));
    c->delta = malloc(sizeof(double) * (size_t)n_sets * nl);
    c->norm = malloc(sizeof(double) * (size_t)n_sets * nl);
    if (!c->sets || !c->delta || !c->norm)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    for (int s = 0; s < n_sets; s++)
        if (!(c->sets[s] = malloc(sizeof(zf_part_box) * im->n)))
            return zf_error(ZF_ERR_NOMEM, "out of memory");
    for (int p = 0; p < n_parts; p++) {
        if (parts[p].n != 1 && parts[p].n != im->n)
            return zf_error(ZF_ERR_ARG, "part '%s' has %d boxes for %d images (give one, or one per image)",
                            parts[p].name, parts[p].n, im->n);
        zf_part_box *b = c->sets[p * (1 + c->random)];
        for (int i = 0; i < im->n; i++) {
            b[i] = parts[p].box[parts[p].n == 1 ? 0 : i];
            char what[512];
            snprintf(what, sizeof what, "part '%.127s', image %d (%.300s)", parts[p].name, i + 1, im->names[i]);
            zf_status st = zf_box_check(&b[i], net->in_h, net->in_w, what);
            if (st)
                return st;
        }
        for (int r = 0; r < c->random; r++)
            zf_box_random(c->sets[p * (1 + c->random) + 1 + r], b, im->n, net->in_h, net->in_w,
                          (uint64_t)c->seed * 1000003u + (uint64_t)p * 10007u + (uint64_t)r);
    }
    const double t0 = zft_now();
    zf_status st = zf_correspond_run(e, im->x, im->n, (const zf_part_box *const *)c->sets, n_sets, c->layers, nl,
                                     c->fill, c->delta, c->norm);
    c->secs = zft_now() - t0;
    return st;
}

void zft_correspond_free(zft_correspond *c)
{
    for (int s = 0; c->sets && s < c->n_parts * (1 + c->random); s++)
        free(c->sets[s]);
    free(c->sets);
    free(c->delta);
    free(c->norm);
    c->sets = NULL;
    c->delta = c->norm = NULL;
}

zf_status zft_correspond_write_csv(const char *path, const zft_correspond *c, const zf_net *net, const char *model,
                                   const zft_part *parts)
{
    const int pairs = c->n_images * (c->n_images - 1) / 2, nl = c->n_layers;
    zf_file *f = NULL;
    zf_status st = zft_output_prepare(path);
    if (st || (st = zf_file_open(path, 0, &f)))
        return st;
    FILE *o = zf_file_stream(f);
    fprintf(o, "zfviz correspond: %s, %d images, fill %g, seed %ld\n", model, c->n_images, (double)c->fill, c->seed);
    fprintf(o, "part,control,draw,layer,elements,pairs,delta,fraction\n");
    for (int p = 0; p < c->n_parts; p++)
        for (int r = 0; r <= c->random; r++)
            for (int l = 0; l < nl; l++) {
                const int s = p * (1 + c->random) + r;
                csv_name(o, parts[p].name, ",\"");
                fprintf(o, ",%s,%d,%s,%lld,%d,%.17g,%.9g\n", r ? "random" : "part", r, net->layers[c->layers[l]].name,
                        (long long)zf_layer_out_size(&net->layers[c->layers[l]]), pairs, c->delta[s * nl + l],
                        c->norm[s * nl + l]);
            }
    return zf_file_commit(f);
}

void zft_correspond_print(FILE *o, const zft_correspond *c, const zf_net *net, const char *model,
                          const zft_part *parts)
{
    const int pairs = c->n_images * (c->n_images - 1) / 2, nl = c->n_layers, random = c->random;
    fprintf(o, "%s: %d images (%d pairs), %d parts, %d random draws each, %.2f s\n", model, c->n_images, pairs,
            c->n_parts, random, c->secs);
    fprintf(o, "mean fraction of elements whose sign change differs between two images (lower: more consistent)\n");
    fprintf(o, "%-24s", "part");
    for (int l = 0; l < nl; l++)
        fprintf(o, "  %-20s", net->layers[c->layers[l]].name);
    fprintf(o, "\n");
    for (int p = 0; p < c->n_parts; p++) {
        fprintf(o, "%-24.24s", parts[p].name);
        for (int l = 0; l < nl; l++)
            fprintf(o, "  %-20.4f", c->norm[p * (1 + random) * nl + l]);
        fprintf(o, "\n");
        if (!random)
            continue;
        fprintf(o, "%-24s", "  random, same size");
        for (int l = 0; l < nl; l++) {
            double m = 0, v = 0;
            for (int r = 1; r <= random; r++)
                m += c->norm[(p * (1 + random) + r) * nl + l];
            m /= random;
            for (int r = 1; r <= random; r++) {
                const double d = c->norm[(p * (1 + random) + r) * nl + l] - m;
                v += d * d;
            }
            char cell[48];
            snprintf(cell, sizeof cell, "%.4f +- %.4f", m, random > 1 ? sqrt(v / (random - 1)) : 0.0);
            fprintf(o, "  %-20s", cell);
        }
        fprintf(o, "\n");
    }
}

/* ---- linear probes ---- */

static zf_status save_features(const char *dir, const char *name, const char *split, const float *x, int64_t n,
                               int64_t d)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.%s.npy", dir, name, split);
    int64_t shape[2] = {n, d};
    zf_status st = zft_output_prepare(path);
    return st ? st : zf_npy_write_raw(path, ZF_DTYPE_F32, x, 2, shape);
}

static zf_status save_labels(const char *dir, const char *split, const zf_dataset *ds)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.labels.npy", dir, split);
    int64_t shape[1] = {ds->n};
    zf_status st = zft_output_prepare(path);
    return st ? st : zf_npy_write_raw(path, ZF_DTYPE_I32, ds->labels, 1, shape);
}

static int probe_progress(void *vctx, int64_t done, int64_t total)
{
    (void)total;
    zft_progress_update(vctx, done);
    return 0;
}

zf_status zft_probe_run(zf_engine *e, const zf_dataset *train, const zf_dataset *test, const int *layers,
                        const char (*names)[32], int n_layers, int grid, int batch, const zf_probe_opts *po,
                        const char *save_dir, zft_probe_row *rows, zft_probe_row_fn on_row, void *ctx)
{
    const zf_net *net = zf_engine_net(e);
    float **ftrain = calloc((size_t)n_layers, sizeof(float *)), **ftest = calloc((size_t)n_layers, sizeof(float *));
    if (!ftrain || !ftest) {
        free(ftrain);
        free(ftest);
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    }
    zft_progress bar;
    zft_progress_start(&bar, "features (train)", train->n, "img");
    zf_status st = zf_probe_features(e, train, layers, n_layers, grid, batch, ftrain, probe_progress, &bar);
    zft_progress_finish(&bar);
    if (!st) {
        zft_progress_start(&bar, "features (test)", test->n, "img");
        st = zf_probe_features(e, test, layers, n_layers, grid, batch, ftest, probe_progress, &bar);
        zft_progress_finish(&bar);
    }
    if (!st && save_dir) {
        st = save_labels(save_dir, "train", train);
        if (!st)
            st = save_labels(save_dir, "test", test);
        for (int k = 0; k < n_layers && !st; k++) {
            int64_t d = zf_probe_dim(net, layers[k], grid);
            st = save_features(save_dir, names[k], "train", ftrain[k], train->n, d);
            if (!st)
                st = save_features(save_dir, names[k], "test", ftest[k], test->n, d);
        }
    }
    for (int k = 0; k < n_layers && !st; k++) {
        int64_t d = zf_probe_dim(net, layers[k], grid);
        int K = train->n_classes;
        float *mean = malloc(sizeof(float) * (size_t)d), *sd = malloc(sizeof(float) * (size_t)d);
        double *W = malloc(sizeof(double) * (size_t)d * (size_t)K), b[256];
        if (!mean || !sd || !W || K > 256)
            st = K > 256 ? zf_error(ZF_ERR_ARG, "%s: %d classes; a probe takes at most 256", train->source, K)
                         : zf_error(ZF_ERR_NOMEM, "out of memory");
        zf_probe_fit_info info = {0};
        if (!st) {
            zf_probe_moments(mean, sd, ftrain[k], train->n, d);
            zf_probe_standardize(ftrain[k], train->n, d, mean, sd);
            zf_probe_standardize(ftest[k], test->n, d, mean, sd);
            st = zf_probe_fit(W, b, ftrain[k], train->labels, train->n, d, K, po, &info);
            if (st)
                zf_error_prefix(st, "%s: ", names[k]);
        }
        if (!st) {
            zft_probe_row *r = &rows[k];
            r->dim = d;
            r->train_acc = zf_probe_accuracy(W, b, ftrain[k], train->labels, train->n, d, K);
            r->test_acc = zf_probe_accuracy(W, b, ftest[k], test->labels, test->n, d, K);
            r->iters = info.iters;
            r->loss = info.loss;
            if (on_row)
                on_row(ctx, k, r);
        }
        free(mean);
        free(sd);
        free(W);
        if (zf_interrupted && !st)
            st = zf_error(ZF_ERR_INTERRUPTED, "stopped");
    }
    for (int k = 0; k < n_layers; k++) {
        zf_free(ftrain[k]);
        zf_free(ftest[k]);
    }
    free(ftrain);
    free(ftest);
    return st;
}

void zft_probe_print_head(FILE *f, int csv, const char *model, int64_t n_train, int64_t n_test, const char *data,
                          int classes, int grid, double l2)
{
    if (csv)
        fprintf(f, "layer,features,train_acc,test_acc,iters,loss\n");
    else
        fprintf(f, "linear probes of %s: %lld training and %lld test images of %s, %d classes; grid %d, l2 %g\n"
                   "%-10s %9s %10s %10s %6s %10s\n",
                model, (long long)n_train, (long long)n_test, data, classes, grid, l2, "layer", "features",
                "train acc", "test acc", "iters", "loss");
}

void zft_probe_print_row(FILE *f, int csv, const char *name, const zft_probe_row *r)
{
    if (csv)
        fprintf(f, "%s,%lld,%.6f,%.6f,%d,%.6g\n", name, (long long)r->dim, r->train_acc, r->test_acc, r->iters,
                r->loss);
    else
        fprintf(f, "%-10s %9lld %9.2f%% %9.2f%% %6d %10.4g\n", name, (long long)r->dim, 100 * r->train_acc,
                100 * r->test_acc, r->iters, r->loss);
}

