/* The paper's experiments on units in pixels as zfviz runs them: what zfviz compare --layer (above
 * conv1) and zfviz evolve compute and draw, shared with zfviz demo (paper_units.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "paper_units.h"
#include "viz_db.h"
#include "zf/dataset.h"
#include "zf/db.h"
#include "zf/db_train.h"
#include "zf/evolve.h"
#include "zf/input.h"
#include "zf/io.h"

/* ---- a conv layer above the first in pixels ---- */

/* The images as the net reads them (n, in_c, in_h, in_w): the first `limit` (0: all) Fashion-MNIST
 * test images, or of those at `paths`. */
static zf_status load_inputs(zf_net *net, char *const *paths, int64_t n_paths, long limit, float **out,
                             int64_t *n_out)
{
    const int64_t in_size = zf_net_in_size(net);
    zf_status st = ZF_OK;
    zf_dataset *ds = NULL;
    int64_t n = n_paths;
    if (!paths) {
        if ((st = zf_dataset_load_fashion_mnist(NULL, 0, &ds)))
            return st;
        n = ds->n;
    }
    if (limit > 0 && limit < n)
        n = limit;
    float *x = zf_alloc(sizeof(float) * (size_t)(n * in_size));
    int64_t *idx = malloc(sizeof *idx * (size_t)(n > 0 ? n : 1));
    if (!x || !idx)
        st = zf_error(ZF_ERR_NOMEM, "out of memory for %lld images", (long long)n);
    for (int64_t i = 0; !st && i < n; i++) {
        idx[i] = i;
        if (ds)
            continue;
        zf_tensor *t;
        if ((st = zf_input_load(paths[i], net, &t)))
            break;
        if (t->shape[0] != 1)
            st = zf_error(ZF_ERR_SHAPE, "%s: %lld inputs, not one image", paths[i], (long long)t->shape[0]);
        else
            memcpy(x + i * in_size, zf_tensor_f32(t), sizeof(float) * (size_t)in_size);
        zf_tensor_free(t);
    }
    for (int64_t at = 0; ds && !st && at < n; at += 256)
        st = zf_dataset_batch(x + at * in_size, NULL, ds, idx + at, n - at < 256 ? (int)(n - at) : 256, net, NULL, 0);
    free(idx);
    zf_dataset_free(ds);
    if (!st && n < 1)
        st = zf_error(ZF_ERR_ARG, "no images");
    if (st) {
        zf_free(x);
        return st;
    }
    *out = x;
    *n_out = n;
    return ZF_OK;
}

zf_status zft_deep_side(zf_engine *e, int conv, char *const *paths, int64_t n_paths, int limit, zft_deep *d)
{
    zf_net *net = zf_engine_net(e);
    const zf_layer *l = &net->layers[conv];
    const int k = l->out_c, c = net->in_c, h = net->in_h, w = net->in_w;
    float *x = NULL, *full = NULL, *show_full = NULL;
    uint8_t *rgb_full = NULL;
    int *ch = NULL, *order = NULL;
    zf_unit_max *m = NULL;
    int64_t n = 0;
    zf_status st = load_inputs(net, paths, n_paths, limit, &x, &n);
    if (st)
        return st;
    d->units = k;
    d->images = (int)n;
    /* The receptive field of a unit away from the borders gives the crop size. */
    zf_box box;
    if ((st = zf_db_receptive_field(net, conv, l->out_h / 2, l->out_w / 2, &box)))
        goto done;
    d->rf = box.x1 - box.x0 > box.y1 - box.y0 ? box.x1 - box.x0 : box.y1 - box.y0;
    d->pad = (2 * d->rf + 31) / 32 * 32;
    const size_t tile = (size_t)c * d->rf * d->rf;
    ch = malloc(sizeof *ch * (size_t)k);
    order = malloc(sizeof *order * (size_t)k);
    m = malloc(sizeof *m * (size_t)k);
    full = zf_alloc(sizeof(float) * (size_t)c * h * w);
    show_full = zf_alloc(sizeof(float) * (size_t)c * h * w);
    d->proj = calloc((size_t)k, sizeof(float) * tile);
    d->show = calloc(ZFT_DEEP_SHOW, sizeof(float) * tile);
    d->rgb = calloc(ZFT_DEEP_SHOW, (size_t)3 * d->rf * d->rf);
    rgb_full = malloc((size_t)3 * h * w);
    if (!ch || !order || !m || !full || !show_full || !d->proj || !d->show || !d->rgb || !rgb_full) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for %d projections of %s", k, l->name);
        goto done;
    }
    for (int u = 0; u < k; u++)
        ch[u] = order[u] = u;
    if ((st = zf_units_strongest(e, x, n, 16, conv, ch, k, m)))
        goto done;
    for (int i = 1; i < k; i++) /* strongest first, ties by unit (a stable insertion sort) */
        for (int j = i; j > 0 && m[order[j]].value > m[order[j - 1]].value; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    zft_progress pr;
    zft_progress_start(&pr, net->arch, k, "unit");
    for (int r = 0; r < k && !st; r++) {
        int u = order[r];
        if (!(m[u].value > 0))
            break; /* the rest never fire */
        int cu = u, y = m[u].y, xx = m[u].x;
        zf_deconv_req req = {conv, ZF_DECONV_UNIT, 0, &cu, &y, &xx};
        if ((st = zf_engine_forward(e, x + m[u].image * zf_net_in_size(net), 1, zf_net_rectified(net, conv))) ||
            (st = zf_engine_deconv(e, full, 1, &req)) || (st = zf_db_receptive_field(net, conv, y, xx, &box)))
            break;
        int bw = box.x1 - box.x0, bh = box.y1 - box.y0;
        float *p = d->proj + (size_t)d->live * tile;
        for (int cc = 0; cc < c; cc++)
            for (int yy = 0; yy < bh && yy < d->rf; yy++)
                memcpy(p + ((size_t)cc * d->rf + yy) * d->rf, full + ((size_t)cc * h + box.y0 + yy) * w + box.x0,
                       sizeof(float) * (size_t)(bw < d->rf ? bw : d->rf));
        if (d->n_show < ZFT_DEEP_SHOW) {
            memcpy(show_full, full, sizeof(float) * (size_t)c * h * w);
            zf_viz_proj_to_rgb(show_full, &net->pre, h, w);
            float *q = d->show + (size_t)d->n_show * tile;
            for (int cc = 0; cc < c; cc++)
                for (int yy = 0; yy < bh; yy++)
                    memcpy(q + ((size_t)cc * bh + yy) * bw, show_full + ((size_t)cc * h + box.y0 + yy) * w + box.x0,
                           sizeof(float) * (size_t)bw);
            zf_viz_patch *pp = &d->patch[d->n_show];
            uint8_t *g = d->rgb + (size_t)d->n_show * 3 * d->rf * d->rf;
            zf_viz_input_to_rgb(rgb_full, x + m[u].image * zf_net_in_size(net), &net->pre, h, w);
            for (int yy = 0; yy < bh; yy++)
                memcpy(g + (size_t)yy * bw * 3, rgb_full + ((size_t)(box.y0 + yy) * w + box.x0) * 3, (size_t)bw * 3);
            pp->rgb = g;
            snprintf(d->caption[d->n_show], sizeof d->caption[0], "#%d", u);
            pp->w = bw;
            pp->h = bh;
            pp->proj = q;
            pp->score = m[u].value;
            pp->caption = d->caption[d->n_show];
            pp->channels = c;
            d->n_show++;
        }
        d->live++;
        zft_progress_update(&pr, r + 1);
        if (zf_interrupted)
            st = zf_error(ZF_ERR_INTERRUPTED, "interrupted after %d of %d units", r + 1, k);
    }
    zft_progress_finish(&pr);
    if (!st && d->live > 0)
        st = zf_viz_filter_spectrum_n(&d->sp, d->proj, d->live, c, d->rf, d->rf, d->pad);
done:
    zf_free(x);
    zf_free(full);
    zf_free(show_full);
    free(rgb_full);
    free(ch);
    free(order);
    free(m);
    return st;
}

void zft_deep_free(zft_deep *d)
{
    free(d->proj);
    free(d->show);
    free(d->rgb);
    d->proj = d->show = NULL;
    d->rgb = NULL;
}

void zft_deep_fig_init(zft_deep_fig *f, const char *layer, const char *const names[2], const zf_net *const nets[2],
                       const int conv[2], const zft_deep d[2], const zf_viz_style *style)
{
    for (int i = 0; i < 2; i++) {
        snprintf(f->label[i], sizeof f->label[i], "%s %s", names[i], nets[i]->layers[conv[i]].name);
        zf_viz_unit u = {f->label[i], d[i].n_show ? atoi(d[i].caption[0] + 1) : 0, d[i].n_show, d[i].patch, 0};
        f->units[i] = u;
    }
    snprintf(f->title, sizeof f->title,
             "%s in pixels (deconvnet, strongest of %d images) \xe2\x80\x94 %s: high-frequency %.1f%%, dead %.1f%%; "
             "%s: high-frequency %.1f%%, dead %.1f%%",
             layer, d[0].images, names[0], 100 * d[0].sp.high, 100.0 * (d[0].units - d[0].live) / d[0].units, names[1],
             100 * d[1].sp.high, 100.0 * (d[1].units - d[1].live) / d[1].units);
    f->in = (zf_viz_sheet_in){style->no_title ? NULL : f->title, 2, f->units};
    f->o = zf_viz_sheet_defaults();
    f->o.units_per_row = 2;
    f->o.style = *style;
}

zf_status zft_deep_draw(zf_viz_doc *doc, void *fig)
{
    const zft_deep_fig *f = fig;
    return zf_viz_sheet(doc, &f->in, &f->o);
}

void zft_deep_print(FILE *f, const char *name, const char *layer, const zft_deep *d)
{
    fprintf(f, "%s: %s, %d units, dead %d (%.1f%%, never fire on %d image%s), projections %dx%d padded to %d, "
               "frequency shares low %.1f%% mid %.1f%% high %.1f%%\n",
            name, layer, d->units, d->units - d->live, 100.0 * (d->units - d->live) / d->units, d->images,
            d->images == 1 ? "" : "s", d->rf, d->rf, d->pad, 100 * d->sp.low, 100 * d->sp.mid, 100 * d->sp.high);
}

/* ---- feature evolution ---- */

/* The images as the net's inputs (n, in_c, in_h, in_w): "fashion-mnist" (its test set) or a folder,
 * image or list of images. */
static zf_status evolve_images(const char *src, long limit, zf_net *net, float **out, int64_t *n_out)
{
    if (!strcmp(src, "fashion-mnist"))
        return load_inputs(net, NULL, 0, limit, out, n_out);
    char **paths;
    int64_t np;
    zf_status st = zf_images_find(src, &paths, &np);
    if (st)
        return st;
    st = load_inputs(net, paths, np, limit, out, n_out);
    zf_paths_free(paths, np);
    return st;
}

void zft_evolve_free(zft_evolve *e)
{
    for (int u = 0; e->row_labels && u < e->rows; u++)
        free(e->row_labels[u]);
    for (int k = 0; e->col_labels && k < e->cols; k++)
        free(e->col_labels[k]);
    free(e->row_labels);
    free(e->col_labels);
    free(e->cells);
    zf_free(e->proj);
    memset(e, 0, sizeof *e);
}

/* The run's model: --model, else the run's --out as recorded (relative to where zfviz train ran),
 * else the file of that name beside the database (MODEL.sqlite is the default). */
static zf_status evolve_model(const zft_evolve_opts *o, zf_db *db, int64_t *run_id, zf_net **net)
{
    char run_out[4096], arch[64];
    zf_status st = zf_db_train_run_info(db, o->run, run_id, run_out, sizeof run_out, arch, sizeof arch);
    if (st)
        return st;
    if (!o->model && access(run_out, R_OK) && run_out[0] != '/') {
        const char *slash = strrchr(o->db_path, '/'), *base = strrchr(run_out, '/');
        char beside[8300];
        snprintf(beside, sizeof beside, "%.*s%s", slash ? (int)(slash - o->db_path + 1) : 0, o->db_path,
                 base ? base + 1 : run_out);
        size_t bl = strlen(beside);
        if (bl < sizeof run_out && !access(beside, R_OK))
            memcpy(run_out, beside, bl + 1);
    }
    if (!o->model && access(run_out, R_OK))
        return zf_error(ZF_ERR_ARG, "%s: training run %lld's model %s cannot be read; --model names one of the "
                                    "same architecture (%s)",
                        o->db_path, (long long)*run_id, run_out, arch);
    zft_model_opts mo = {0};
    mo.model = o->model ? o->model : run_out;
    return zft_load_model(&mo, net);
}

zf_status zft_evolve_run(zft_evolve *e, const zft_evolve_opts *o, int *usage)
{
    memset(e, 0, sizeof *e);
    *usage = 0;
    zf_db *db = NULL;
    zf_net *net = NULL;
    zf_engine *eng = NULL; /* o->dev's, or a CPU engine of this function's own */
    float *inputs = NULL, *full = NULL;
    int *epochs = NULL, n_epochs = 0, conv[ZFT_EVOLVE_MAX_LAYERS], units[ZFT_EVOLVE_MAX_LAYERS][ZFT_EVOLVE_MAX_UNITS],
        n_units[ZFT_EVOLVE_MAX_LAYERS];
    int64_t run_id;
    const int nl = o->n_layers;
    zf_status st = ZF_OK;
    if (nl < 1 || nl > ZFT_EVOLVE_MAX_LAYERS || o->n_units > ZFT_EVOLVE_MAX_UNITS ||
        o->n_epochs > ZFT_EVOLVE_MAX_EPOCHS)
        return zf_error(ZF_ERR_ARG, "evolve: %d layers, %d units, %d epochs (at most %d, %d, %d)", nl, o->n_units,
                        o->n_epochs, ZFT_EVOLVE_MAX_LAYERS, ZFT_EVOLVE_MAX_UNITS, ZFT_EVOLVE_MAX_EPOCHS);
    if ((st = zft_db_open(o->db_path, 0, &db)) || (st = evolve_model(o, db, &run_id, &net)))
        goto done;
    if (o->dev) {
        if ((st = zft_device_open(o->dev, net, (int)o->batch)))
            goto done;
        eng = o->dev->eng;
    } else {
        const zf_engine_opts eo = {.batch = (int)o->batch};
        if ((st = zf_engine_open(zf_engine_list()[0], net, &eo, &eng)))
            goto done;
    }
    for (int l = 0; l < nl; l++) {
        if ((conv[l] = zf_net_find_conv(net, o->layers[l])) < 0) {
            *usage = 1;
            st = zf_error(ZF_ERR_ARG, "--layer: %s has no conv layer '%s'", net->arch, o->layers[l]);
            goto done;
        }
        const zf_layer *cl = &net->layers[conv[l]];
        n_units[l] = o->n_units;
        if (!o->n_units)
            for (n_units[l] = 0; n_units[l] < 6 && n_units[l] < cl->out_c; n_units[l]++)
                units[l][n_units[l]] = n_units[l];
        else
            memcpy(units[l], o->units, sizeof(int) * (size_t)o->n_units);
        for (int u = 0; u < n_units[l]; u++)
            if (units[l][u] >= cl->out_c) {
                *usage = 1;
                st = zf_error(ZF_ERR_ARG, "--units: %s has channels 0..%d, not %d", o->layers[l], cl->out_c - 1,
                              units[l][u]);
                goto done;
            }
        e->rows += n_units[l];
    }
    if ((st = zf_db_train_snapshot_epochs(db, run_id, &epochs, &n_epochs)))
        goto done;
    if (n_epochs == 0) {
        st = zf_error(ZF_ERR_ARG, "%s: training run %lld stored no snapshots", o->db_path, (long long)run_id);
        goto done;
    }
    if (o->n_epochs) {
        for (int i = 0; i < o->n_epochs; i++) {
            int ok = 0;
            for (int j = 0; j < n_epochs; j++)
                ok |= epochs[j] == o->epochs[i];
            if (!ok) {
                st = zf_error(ZF_ERR_ARG, "%s: training run %lld has no snapshot of epoch %d", o->db_path,
                              (long long)run_id, o->epochs[i]);
                goto done;
            }
        }
        memcpy(epochs, o->epochs, sizeof(int) * (size_t)o->n_epochs);
        n_epochs = o->n_epochs;
    }
    if (n_epochs > ZFT_EVOLVE_MAX_EPOCHS) {
        st = zf_error(ZF_ERR_ARG, "%s: training run %lld has %d snapshots; --epochs picks at most %d", o->db_path,
                      (long long)run_id, n_epochs, ZFT_EVOLVE_MAX_EPOCHS);
        goto done;
    }
    e->cols = n_epochs;
    if ((st = evolve_images(o->images, o->limit, net, &inputs, &e->n_images)))
        goto done;
    const int planes = zf_viz_planes(&net->pre);
    const int64_t in_size = zf_net_in_size(net), plane = (int64_t)net->in_h * net->in_w;
    const size_t cells_n = (size_t)e->rows * n_epochs;
    e->cells = calloc(cells_n, sizeof *e->cells);
    e->proj = zf_alloc(sizeof(float) * cells_n * (size_t)(net->in_c * plane));
    e->row_labels = calloc((size_t)e->rows, sizeof *e->row_labels);
    e->col_labels = calloc((size_t)n_epochs, sizeof *e->col_labels);
    full = zf_alloc(sizeof(float) * (size_t)in_size);
    if (!e->cells || !e->proj || !e->row_labels || !e->col_labels || !full) {
        st = zf_error(ZF_ERR_NOMEM, "out of memory for %zu projections", cells_n);
        goto done;
    }
    if (o->csv)
        fprintf(o->lines, "layer,unit,epoch,image,y,x,activation\n");
    for (int k = 0; k < n_epochs && !st; k++) {
        if ((st = zf_db_train_snapshot_get(db, run_id, epochs[k], net)) || (st = zf_engine_weights_changed(eng)))
            break;
        for (int l = 0, row0 = 0; l < nl && !st; row0 += n_units[l], l++) {
            zf_unit_max got[ZFT_EVOLVE_MAX_UNITS];
            const char *lname = o->layers[l];
            if ((st = zf_units_strongest(eng, inputs, e->n_images, (int)o->batch, conv[l], units[l], n_units[l], got)))
                break;
            for (int u = 0; u < n_units[l] && !st; u++) {
                const int row = row0 + u;
                const zf_unit_max *m = &got[u];
                if (o->csv)
                    fprintf(o->lines, "%s,%d,%d,%lld,%d,%d,%.9g\n", lname, units[l][u], epochs[k], (long long)m->image,
                            m->y, m->x, (double)m->value);
                else
                    fprintf(o->lines, "%s unit %d, epoch %d: image %lld at (%d, %d), activation %.6g\n", lname,
                            units[l][u], epochs[k], (long long)m->image, m->y, m->x, (double)m->value);
                int ch = units[l][u], y = m->y, x = m->x;
                zf_deconv_req req = {conv[l], ZF_DECONV_UNIT, o->lrn_backward, &ch, &y, &x};
                if ((st = zf_engine_forward(eng, inputs + m->image * in_size, 1, zf_net_rectified(net, conv[l]))) ||
                    (st = zf_engine_deconv(eng, full, 1, &req)))
                    break;
                zf_viz_proj_to_rgb(full, &net->pre, net->in_h, net->in_w);
                zf_box box;
                if ((st = zf_db_receptive_field(net, conv[l], m->y, m->x, &box)))
                    break;
                int bw = box.x1 - box.x0, bh = box.y1 - box.y0;
                float *p = e->proj + (size_t)(row * n_epochs + k) * (size_t)(net->in_c * plane);
                for (int c = 0; c < planes; c++)
                    for (int yy = 0; yy < bh; yy++)
                        memcpy(p + ((size_t)c * bh + yy) * bw,
                               full + (c * net->in_h + box.y0 + yy) * net->in_w + box.x0, sizeof(float) * (size_t)bw);
                zf_viz_patch *cp = &e->cells[row * n_epochs + k];
                cp->w = bw;
                cp->h = bh;
                cp->proj = m->value > 0 ? p : NULL; /* a unit that never fires has nothing to show */
                cp->score = m->value;
                cp->channels = planes;
            }
        }
        fflush(o->lines);
        if (!st && zf_interrupted)
            st = zf_error(ZF_ERR_INTERRUPTED, "stopped");
    }
    for (int l = 0, row = 0; l < nl && !st; l++)
        for (int u = 0; u < n_units[l] && !st; u++, row++)
            if (!(e->row_labels[row] = malloc(48)))
                st = zf_error(ZF_ERR_NOMEM, "out of memory");
            else
                snprintf(e->row_labels[row], 48, "%s #%d", o->layers[l], units[l][u]);
    for (int k = 0; k < n_epochs && !st; k++)
        if (!(e->col_labels[k] = malloc(24)))
            st = zf_error(ZF_ERR_NOMEM, "out of memory");
        else
            snprintf(e->col_labels[k], 24, "epoch %d", epochs[k]);
    if (!st) {
        char names[512] = "";
        for (int l = 0, at = 0; l < nl && at < (int)sizeof names; l++)
            at += snprintf(names + at, sizeof names - (size_t)at, "%s%s", l ? ", " : "", o->layers[l]);
        snprintf(e->title, sizeof e->title, "Feature evolution: %s of %s over %lld images", names, net->arch,
                 (long long)e->n_images);
    }
done:
    zf_free(full);
    zf_free(inputs);
    free(epochs);
    if (o->dev)
        zft_device_close(o->dev);
    else
        zf_engine_close(eng);
    zf_net_free(net);
    zf_db_close(db);
    return st;
}

zf_status zft_evolve_draw(zf_viz_doc *doc, const zft_evolve *e, int cell, const zf_viz_style *style)
{
    zf_viz_evolve_in vin = {e->title, e->rows, e->cols, (const char *const *)e->row_labels,
                            (const char *const *)e->col_labels, e->cells};
    zf_viz_evolve_opts vo = {cell, *style};
    return zf_viz_evolve(doc, &vin, &vo);
}
