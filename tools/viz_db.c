/* Pictures from a scan database (see viz_db.h): top-9 sheets and the report from the store's rows,
 * the deconvnet run again on the stored examples, and renderings stored as PNG blobs. */
#include "viz_db.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "zf/input.h"
#include "zf/io.h"
#include "zf/model.h"
#include "zf/occlusion.h"

static void on_db_wait(void *ctx, const char *path, double waited, double timeout)
{
    (void)ctx;
    fprintf(stderr, "zfviz %s: %s is locked by another process; waited %.1f s of %g s (--wait)\n", zft_command,
            path, waited, timeout);
}

zf_status zft_db_open(const char *path, int readwrite, zf_db **out)
{
    zf_db_opts o = {readwrite ? ZF_DB_READWRITE : ZF_DB_READONLY, zft_wait_seconds(), on_db_wait, NULL};
    return zf_db_open(path, &o, out);
}

zf_status zft_load_recorded_model(const zf_db_model *m, int64_t run_id, const zft_model_opts *given,
                                  zf_net **out)
{
    *out = NULL;
    zft_model_opts mo = given ? *given : (zft_model_opts){0};
    const int recorded = !mo.arch && !mo.weights && !mo.model;
    if (recorded) {
        if (m->file[0])
            mo.model = m->file;
        else {
            mo.arch = m->arch;
            mo.weights = m->weights;
        }
    }
    zf_net *net = NULL;
    char hash[65];
    zf_status st = zft_load_model(&mo, &net);
    if (!st)
        st = zf_db_model_hash(net, hash);
    const void *bytes;
    size_t len;
    if (!st && strcmp(hash, m->sha256) && recorded && !m->file[0] && zft_embedded_model(m->arch, &bytes, &len)) {
        /* Databases written before scans named the embedded models record them as ARCH random:0. */
        zf_net_free(net);
        net = NULL;
        st = zf_model_load_memory(bytes, len, m->arch, &net);
        if (!st)
            st = zf_db_model_hash(net, hash);
    }
    if (!st && strcmp(hash, m->sha256))
        st = zf_error(ZF_ERR_ARG,
                      "the model loaded (%s %s) is not the one run %lld scanned (%s, sha256 %.12s); give "
                      "that model with --arch/--weights or --model",
                      net->arch, mo.model ? mo.model : mo.weights ? mo.weights : "", (long long)run_id,
                      m->arch, m->sha256);
    if (st) {
        zf_net_free(net);
        return st;
    }
    *out = net;
    return ZF_OK;
}

zf_status zft_run_open(zft_scan *s, const char *dbpath, int64_t run_id, const char *layer, int readwrite)
{
    memset(s, 0, sizeof *s);
    zf_status st;
    if ((st = zft_db_open(dbpath, readwrite, &s->db)) || (!run_id && (st = zf_db_run_latest(s->db, layer, &run_id))) ||
        (st = zf_db_run_get(s->db, run_id, &s->run)))
        return st;
    return zf_db_model_get(s->db, s->run.model_id, &s->model);
}

zf_status zft_scan_open(zft_scan *s, const char *dbpath, int64_t run_id, const char *layer,
                        const zft_model_opts *given, int readwrite)
{
    zf_status st = zft_run_open(s, dbpath, run_id, layer, readwrite);
    return st ? st : zft_load_recorded_model(&s->model, s->run.id, given, &s->net);
}

void zft_scan_close(zft_scan *s)
{
    if (s->device_open)
        zft_device_close(&s->device);
    for (int i = 0; i < s->n_missing; i++)
        free(s->missing[i]);
    free(s->missing);
    zf_net_free(s->net);
    zf_db_close(s->db);
    memset(s, 0, sizeof *s);
}

typedef struct unit_score {
    int unit;
    double score;
} unit_score;

static int by_score(const void *a, const void *b)
{
    const unit_score *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->unit - y->unit;
}

zf_status zft_scan_strongest_units(zft_scan *s, const char *layer, int n, int *units, int *got)
{
    *got = 0;
    int li = zf_net_find(s->net, layer);
    if (li < 0)
        return zf_error(ZF_ERR_ARG, "'%s' is not a layer of %s", layer, s->net->arch);
    int count = s->net->layers[li].out_c;
    unit_score *us = malloc(sizeof *us * (size_t)count);
    if (!us)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    int m = 0;
    zf_status st = ZF_OK;
    for (int u = 0; u < count && !st; u++) {
        zf_db_example *ex = NULL;
        int k = 0;
        if (!(st = zf_db_topk_get(s->db, s->run.id, layer, u, &ex, &k)) && k > 0) {
            us[m].unit = u;
            us[m++].score = ex[0].score;
        }
        free(ex);
    }
    if (!st) {
        qsort(us, (size_t)m, sizeof *us, by_score);
        for (int i = 0; i < m && i < n; i++)
            units[(*got)++] = us[i].unit;
    }
    free(us);
    return st;
}

/* Keeps p in a growing list of buffers to free later (bufs, n, cap); frees p when it cannot. */
static zf_status keep_buf(void ***bufs, int *n, int *cap, void *p)
{
    if (!p)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 64;
        void **nb = realloc(*bufs, sizeof *nb * (size_t)c);
        if (!nb) {
            free(p);
            return zf_error(ZF_ERR_NOMEM, "out of memory");
        }
        *bufs = nb;
        *cap = c;
    }
    (*bufs)[(*n)++] = p;
    return ZF_OK;
}

static zf_status keep(zft_sheet *sh, void *p) { return keep_buf(&sh->bufs, &sh->n_bufs, &sh->cap_bufs, p); }

zf_status zft_reroot_set(void *r, const char *spec) { return zft_reroot_parse(r, spec); }

zf_status zft_reroot_parse(zft_reroot *r, const char *spec)
{
    memset(r, 0, sizeof *r);
    const char *eq = strchr(spec, '=');
    size_t a = eq ? (size_t)(eq - spec) : 0, b = eq ? strlen(eq + 1) : 0;
    while (a > 1 && spec[a - 1] == '/')
        a--;
    while (b > 1 && eq[b] == '/')
        b--;
    if (!eq || a == 0 || b == 0)
        return zf_error(ZF_ERR_ARG, "--reroot takes OLD=NEW (two folders), got '%s'", spec);
    if (a >= sizeof r->from || b >= sizeof r->to)
        return zf_error(ZF_ERR_ARG, "--reroot '%s': path too long", spec);
    memcpy(r->from, spec, a);
    memcpy(r->to, eq + 1, b);
    r->set = 1;
    return ZF_OK;
}

const char *zft_reroot_path(const zft_reroot *r, const char *path, char *buf, size_t len)
{
    if (!r || !r->set)
        return path;
    size_t n = strlen(r->from);
    /* OLD must be a whole leading folder: /data/a=... does not move /data/ab/x.jpg */
    int under = !strncmp(path, r->from, n) && (path[n] == '/' || path[n] == 0 || r->from[n - 1] == '/');
    if (!under || snprintf(buf, len, "%s%s", r->to, path + n) >= (int)len)
        return path;
    return buf;
}

zf_status zft_example_load(const zf_net *net, const zf_db_example *e, const zft_reroot *r, float *in)
{
    char moved[4096];
    const char *path = zft_reroot_path(r, e->path, moved, sizeof moved);
    uint8_t *bytes = NULL;
    size_t len = 0;
    /* as large as scan reads (1 GiB) */
    zf_status st = zf_input_read(path, "an image file", 0, (size_t)1 << 30, &bytes, &len);
    if (st)
        return st;
    char sha[65];
    zf_db_sha256_hex(bytes, len, sha);
    zf_image *img = NULL;
    if (strcmp(sha, e->sha256))
        st = zf_error(ZF_ERR_ARG, "%s: the file changed since it was scanned", path);
    else if (!(st = zf_image_decode(bytes, len, path, &img)))
        st = zf_image_to_input(in, img, &net->pre, net->in_h, net->in_w);
    zf_image_free(img);
    free(bytes);
    return st;
}

/* 1 the first time `path` is found missing in this scan (the one time it is warned of), else 0. */
static int note_missing(zft_scan *s, const char *path)
{
    for (int i = 0; i < s->n_missing; i++)
        if (!strcmp(s->missing[i], path))
            return 0;
    char **m = realloc(s->missing, sizeof *m * (size_t)(s->n_missing + 1));
    if (m) {
        s->missing = m;
        if ((m[s->n_missing] = strdup(path)))
            s->n_missing++;
    }
    return 1;
}

/* One unit's examples: forward and deconv of all at once, then the crops. */
static zf_status build_unit(zft_sheet *sh, zft_scan *s, int conv, const char *layer, int unit, int lrn_backward,
                            zf_viz_unit *out, zf_viz_patch *patches)
{
    zf_net *net = s->net;
    zf_db_example *ex = NULL;
    int n = 0;
    zf_status st = zf_db_topk_get(s->db, s->run.id, layer, unit, &ex, &n);
    if (st)
        return st;
    if (n > 9)
        n = 9;
    const int H = net->in_h, W = net->in_w, C = net->in_c;
    const size_t in_size = (size_t)zf_net_in_size(net);
    if (C != zf_viz_planes(&net->pre)) {
        free(ex);
        return zf_error(ZF_ERR_SHAPE, "%s has %d input channels but its preprocessing makes %d: no sheet",
                        net->arch, C, zf_viz_planes(&net->pre));
    }
    float *rec = NULL;
    uint8_t *rgb = NULL;
    int chan[9], ys[9], xs[9];
    if (n > 0 && !s->device_open) { /* the device for every sheet of this scan: batches of 9 */
        if (!(st = zf_net_reserve(net, 9)) && !(st = zft_device_open(&s->device, net, 9)))
            s->device_open = 1;
    }
    if (n > 0 && !st && !(st = zf_net_reserve(net, n))) {
        rec = malloc(sizeof(float) * in_size * (size_t)n);
        rgb = malloc((size_t)H * W * 3);
        if (!rec || !rgb)
            st = zf_error(ZF_ERR_NOMEM, "out of memory");
    }
    int missing[9] = {0};
    for (int i = 0; i < n && !st; i++) {
        /* A missing or changed image becomes a placeholder: one moved file should not cost the
         * sheet. Its input is zero (the deconv of it is computed and not shown). */
        if (zft_example_load(net, &ex[i], &s->reroot, net->input + i * in_size)) {
            if (note_missing(s, ex[i].path))
                fprintf(stderr, "zfviz: warning: %s; drawn as a grey 'missing' placeholder%s\n", zf_last_error(),
                        s->reroot.set ? "" : " (moved? --reroot OLD=NEW reads it from its new folder)");
            memset(net->input + i * in_size, 0, sizeof(float) * in_size);
            missing[i] = 1;
            sh->n_missing++;
        }
        sh->n_examples++;
        chan[i] = unit;
        ys[i] = ex[i].y;
        xs[i] = ex[i].x;
    }
    if (n > 0 && !st) {
        zf_deconv_req req = {conv, ZF_DECONV_UNIT, lrn_backward, chan, ys, xs};
        /* Only as far as the projected layer's ReLU: the switches below it are all it needs. */
        st = zft_device_deconv(&s->device, net, net->input, n, &req, rec);
    }
    for (int i = 0; i < n && !st; i++) {
        zf_box b = ex[i].box;
        int w = b.x1 - b.x0, h = b.y1 - b.y0;
        float *rc = rec + i * in_size;
        zf_viz_proj_to_rgb(rc, &net->pre, H, W);
        zf_viz_input_to_rgb(rgb, net->input + i * in_size, &net->pre, H, W);
        float *proj = malloc(sizeof(float) * C * (size_t)w * h);
        uint8_t *patch = malloc((size_t)w * h * 3);
        const char *base = strrchr(ex[i].path, '/');
        size_t cap_len = strlen(base ? base + 1 : ex[i].path) + 16;
        char *cap = malloc(cap_len);
        if (cap)
            snprintf(cap, cap_len, "%s%s", missing[i] ? "missing: " : "", base ? base + 1 : ex[i].path);
        if ((st = keep(sh, proj)) || (st = keep(sh, patch)) || (st = keep(sh, cap)))
            break;
        if (missing[i]) {
            /* Grey, crossed out on both sides (the projection's zero shows as mid-grey, its -1 as
             * black); the caption says "missing: NAME". */
            memset(proj, 0, sizeof(float) * C * (size_t)w * h);
            memset(patch, 160, (size_t)w * h * 3);
            for (int k = 0; k < (w > h ? w : h); k++) {
                int x = (int)((long)k * w / (w > h ? w : h)), y = (int)((long)k * h / (w > h ? w : h));
                for (int c = 0; c < 3; c++) {
                    patch[((size_t)y * w + x) * 3 + c] = 64;
                    patch[((size_t)(h - 1 - y) * w + x) * 3 + c] = 64;
                }
                for (int c = 0; c < C; c++) {
                    proj[((size_t)c * h + y) * w + x] = -1.0f;
                    proj[((size_t)c * h + h - 1 - y) * w + x] = -1.0f;
                }
            }
            zf_viz_patch p = {w, h, proj, patch, (float)ex[i].score, cap, C};
            patches[i] = p;
            continue;
        }
        for (int c = 0; c < C; c++)
            for (int y = 0; y < h; y++)
                memcpy(proj + ((size_t)c * h + y) * w, rc + ((size_t)c * H + b.y0 + y) * W + b.x0, sizeof(float) * w);
        for (int y = 0; y < h; y++)
            memcpy(patch + (size_t)y * w * 3, rgb + ((size_t)(b.y0 + y) * W + b.x0) * 3, (size_t)w * 3);
        zf_viz_patch p = {w, h, proj, patch, (float)ex[i].score, cap, C};
        patches[i] = p;
    }
    if (!st) {
        /* The full receptive field: the box of a position in the middle of the map. */
        zf_box mid = {0, 0, 0, 0};
        const zf_layer *l = &net->layers[conv];
        zf_db_receptive_field(net, conv, l->out_h / 2, l->out_w / 2, &mid);
        int rf = mid.x1 - mid.x0 > mid.y1 - mid.y0 ? mid.x1 - mid.x0 : mid.y1 - mid.y0;
        zf_viz_unit u = {layer, unit, n, patches, rf};
        *out = u;
    }
    free(rec);
    free(rgb);
    free(ex);
    return st;
}

zf_status zft_sheet_build(zft_sheet *sh, zft_scan *s, const char *layer, const int *units, int n, int lrn_backward)
{
    memset(sh, 0, sizeof *sh);
    int conv = zf_net_find_conv(s->net, layer);
    if (conv < 0)
        return zf_error(ZF_ERR_ARG, "top-9 sheets project conv layers with the deconvnet; %s of %s is not one",
                        layer, s->net->arch);
    const char *lname = s->net->layers[conv].name;
    sh->units = calloc((size_t)n, sizeof *sh->units);
    sh->patches = calloc((size_t)n * 9, sizeof *sh->patches);
    if (!sh->units || !sh->patches)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    zft_progress pr;
    zft_progress_start(&pr, lname, n, "units");
    zf_status st = ZF_OK;
    for (int i = 0; i < n && !st; i++) {
        st = build_unit(sh, s, conv, lname, units[i], lrn_backward, &sh->units[i], &sh->patches[9 * i]);
        zft_progress_update(&pr, i + 1);
        if (!st && zf_interrupted)
            st = zf_error(ZF_ERR_INTERRUPTED, "interrupted after %d of %d units", i + 1, n);
    }
    zft_progress_finish(&pr);
    if (!st && sh->n_examples > 0 && sh->n_missing == sh->n_examples)
        st = zf_error(ZF_ERR_IO, "none of the %d images of the %s sheet could be read (moved? --reroot "
                      "OLD=NEW reads them from their new folder)", sh->n_examples, lname);
    snprintf(sh->title, sizeof sh->title, "%s %s: top %d (run %lld)", s->net->arch, lname,
             s->run.top_k < 9 ? s->run.top_k : 9, (long long)s->run.id);
    zf_viz_sheet_in in = {sh->title, n, sh->units};
    sh->in = in;
    return st;
}

void zft_sheet_free(zft_sheet *sh)
{
    for (int i = 0; i < sh->n_bufs; i++)
        free(sh->bufs[i]);
    free(sh->bufs);
    free(sh->units);
    free(sh->patches);
    memset(sh, 0, sizeof *sh);
}

/* ---- the report ---- */

static const char *str(zft_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *str(zft_report *r, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (r->n_strings == r->cap_strings) {
        int cap = r->cap_strings ? 2 * r->cap_strings : 32;
        char **ns = realloc(r->strings, sizeof *ns * (size_t)cap);
        if (!ns)
            return "";
        r->strings = ns;
        r->cap_strings = cap;
    }
    char *s = strdup(buf);
    if (!s)
        return "";
    r->strings[r->n_strings++] = s;
    return s;
}

static zf_status dead_rows(zft_report *r, zft_scan *s, double min_active)
{
    char buf[512];
    const char *names[64];
    int n = zft_split_list(s->run.layers, buf, sizeof buf, names, 64);
    r->dead = calloc((size_t)(n > 0 ? n : 1), sizeof *r->dead);
    if (!r->dead)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    zf_db_dead *d = NULL;
    int nd = 0;
    zf_status st = zf_db_dead_units(s->db, s->run.id, NULL, min_active, &d, &nd);
    if (st)
        return st;
    for (int i = 0; i < n; i++) {
        int li = zf_net_find(s->net, names[i]);
        zf_viz_dead_row row = {str(r, "%s", names[i]), li >= 0 ? s->net->layers[li].out_c : 0, 0, 0};
        for (int k = 0; k < nd; k++) {
            if (strcmp(d[k].layer, names[i]))
                continue;
            if (d[k].max_activation <= 0)
                row.dead++;
            else
                row.rare++;
        }
        r->dead[r->in.n_dead++] = row;
    }
    free(d);
    return ZF_OK;
}

zf_status zft_report_build(zft_report *r, zft_scan *s, double min_active, int top_units)
{
    memset(r, 0, sizeof *r);
    if (s->run.n_ok == 0) /* its dead-unit table would say "0 dead" of nothing */
        return zf_error(ZF_ERR_ARG, "run %lld has no images: none of its %lld could be read%s",
                        (long long)s->run.id, (long long)s->run.n_images, s->run.complete ? "" : " so far");
    zf_net *net = s->net;
    zf_viz_report_in *in = &r->in;
    in->title = str(r, "%s scan report", net->arch);
    in->subtitle = str(r, "%s, run %lld (started %s, updated %s)", zf_db_path(s->db), (long long)s->run.id,
                       s->run.started, s->run.updated);
    in->model = str(r, "%s (%s)", s->model.arch, s->model.file[0] ? s->model.file : s->model.weights);
    in->model_notes = str(r,
                          "Input %s, preprocessing: %s. Model sha256 %.16s. Scan: %lld of %lld images read "
                          "(%lld failed) from %s; layers %s; top %d per unit.",
                          s->model.input, s->model.preproc, s->model.sha256, (long long)s->run.n_ok,
                          (long long)s->run.n_images, (long long)s->run.n_failed, s->run.images, s->run.layers,
                          s->run.top_k);
    in->params = zf_net_param_count(net);
    in->images = s->run.n_ok;
    in->min_active = (float)min_active;

    r->layers = calloc((size_t)net->n_layers, sizeof *r->layers);
    r->grids = calloc((size_t)net->n_layers, sizeof *r->grids);
    if (!r->layers || !r->grids)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    int first_conv = 1;
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        zf_viz_layer_row row = {l->name, zf_op_name(l->op), l->out_c, l->out_h, l->out_w,
                                l->weight_count + l->bias_count};
        r->layers[in->n_layers++] = row;
        if (l->op == ZF_OP_CONV) {
            zf_viz_filters_in g = {str(r, "%s %s", net->arch, l->name), l->weight, l->out_c,
                                   l->in_c / (l->groups > 0 ? l->groups : 1), l->win.kh, l->win.kw,
                                   first_conv && net->pre.order == ZF_COLOR_BGR};
            r->grids[in->n_grids++] = g;
            first_conv = 0;
        }
    }
    in->layers = r->layers;
    in->grids = r->grids;
    zf_status st = dead_rows(r, s, min_active);
    if (st)
        return st;
    in->dead = r->dead;

    char buf[512];
    const char *names[64];
    int n = zft_split_list(s->run.layers, buf, sizeof buf, names, 64);
    r->sheets = calloc((size_t)(n > 0 ? n : 1), sizeof *r->sheets);
    zf_viz_sheet_in *sheets = calloc((size_t)(n > 0 ? n : 1), sizeof *sheets);
    if (!r->sheets || !sheets) {
        free(sheets);
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    }
    r->n_sheets = 0;
    for (int i = 0; i < n && top_units > 0; i++) {
        if (zf_net_find_conv(net, names[i]) < 0)
            continue; /* fc layers have no pixel-space projection */
        int units[64], got = 0;
        if ((st = zft_scan_strongest_units(s, names[i], top_units < 64 ? top_units : 64, units, &got)))
            break;
        if (got == 0)
            continue;
        if ((st = zft_sheet_build(&r->sheets[r->n_sheets], s, names[i], units, got, 0)))
            break;
        sheets[r->n_sheets] = r->sheets[r->n_sheets].in;
        r->n_sheets++;
    }
    in->sheets = sheets;
    in->n_sheets = r->n_sheets;
    return st;
}

static zf_status keep_report(zft_report *r, void *p) { return keep_buf(&r->bufs, &r->n_bufs, &r->cap_bufs, p); }

/* The maps, the image the net saw and the deconv projection of the mapped channel on it. */
static zf_status occlusion_row(zft_report *r, zf_net *net, const char *path, const float *input, int patch,
                               int stride, zf_viz_occlusion *row)
{
    zf_occlusion_params p;
    zf_occlusion_params_default(&p);
    p.patch = patch;
    p.stride = stride;
    zf_occlusion_result *res = NULL;
    zf_status st = zf_occlusion_run(net, input, &p, &res);
    if (st)
        return zf_error_prefix(st, "%s: ", path);
    const int H = net->in_h, W = net->in_w, C = net->in_c, npos = res->rows * res->cols;
    if (C != zf_viz_planes(&net->pre)) {
        zf_occlusion_result_free(res);
        return zf_error(ZF_ERR_SHAPE, "%s: %s has %d input channels but its preprocessing makes %d", path,
                        net->arch, C, zf_viz_planes(&net->pre));
    }
    float *feature = malloc(sizeof(float) * npos), *prob = malloc(sizeof(float) * npos);
    int32_t *argmax = malloc(sizeof(int32_t) * npos);
    float *proj = malloc(sizeof(float) * C * H * W);
    int n_names = 0;
    const char **names = zft_class_names_new(net, &n_names);
    uint8_t *rgb = malloc((size_t)H * W * 3);
    zf_image *img = malloc(sizeof *img);
    const char *base = strrchr(path, '/');
    char *cap = strdup(base ? base + 1 : path);
    char *fname = malloc(96);
    if ((st = keep_report(r, feature)) || (st = keep_report(r, prob)) || (st = keep_report(r, argmax)) ||
        (st = keep_report(r, proj)) || (st = keep_report(r, rgb)) || (st = keep_report(r, img)) ||
        (st = keep_report(r, cap)) || (st = keep_report(r, fname)) || (st = keep_report(r, (void *)names))) {
        zf_occlusion_result_free(res);
        return st;
    }
    memcpy(feature, res->feature, sizeof(float) * npos);
    memcpy(prob, res->prob, sizeof(float) * npos);
    memcpy(argmax, res->argmax, sizeof(int32_t) * npos);
    zf_viz_input_to_rgb(rgb, input, &net->pre, H, W);
    img->w = W;
    img->h = H;
    img->rgb = rgb;
    snprintf(fname, 96, "%s map %d", net->layers[res->conv_layer].name, res->channel);
    int ch = res->channel;
    zf_deconv_req req = {res->conv_layer, ZF_DECONV_MAP, 0, &ch, NULL, NULL};
    /* The unoccluded image again, as far as the mapped layer, for its switches; then the map down. */
    if (!(st = zf_net_reserve(net, 1))) {
        memcpy(net->input, input, sizeof(float) * (size_t)zf_net_in_size(net));
        if (!(st = zf_net_forward_range(net, 0, zf_net_rectified(net, res->conv_layer), 1)) &&
            !(st = zf_net_deconv(net, proj, 1, &req)))
            zf_viz_proj_to_rgb(proj, &net->pre, H, W);
    }
    zf_viz_occlusion o = {img, res->rows, res->cols, res->patch, res->stride, feature, fname, proj, prob,
                          res->cls, argmax, NULL, cap, C, names, n_names};
    *row = o;
    zf_occlusion_result_free(res);
    return st;
}
zf_status zft_report_add_occlusion(zft_report *r, zft_scan *s, const char *path, int patch, int stride)
{
    zf_tensor *x = NULL;
    zf_status st = zf_input_load(path, s->net, &x);
    if (st)
        return st;
    if (x->shape[0] != 1) {
        zf_tensor_free(x);
        return zf_error(ZF_ERR_ARG, "%s: occlusion figures take one image, this holds %lld", path,
                        (long long)x->shape[0]);
    }
    zf_viz_occlusion *no = realloc(r->occl, sizeof *no * (size_t)(r->in.n_occlusions + 1));
    if (!no) {
        zf_tensor_free(x);
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    }
    r->occl = no;
    st = occlusion_row(r, s->net, path, zf_tensor_f32(x), patch, stride, &r->occl[r->in.n_occlusions]);
    zf_tensor_free(x);
    if (st)
        return st;
    r->in.n_occlusions++;
    r->in.occlusions = r->occl;
    return ZF_OK;
}

void zft_report_free(zft_report *r)
{
    for (int i = 0; i < r->n_bufs; i++)
        free(r->bufs[i]);
    free(r->bufs);
    free(r->occl);
    for (int i = 0; i < r->n_sheets; i++)
        zft_sheet_free(&r->sheets[i]);
    free(r->sheets);
    free((void *)r->in.sheets);
    for (int i = 0; i < r->n_strings; i++)
        free(r->strings[i]);
    free(r->strings);
    free(r->layers);
    free(r->grids);
    free(r->dead);
    memset(r, 0, sizeof *r);
}

zf_status zft_store_rendering(zf_db *db, const zf_db_rendering *what, zft_render_fn fn, void *ctx, int64_t *id)
{
    zf_viz_doc *doc = NULL;
    zf_status st;
    if ((st = zf_viz_doc_open_mem(ZF_VIZ_PNG, &doc)) || (st = fn(doc, ctx)) || (st = zf_viz_doc_finish(doc))) {
        zf_viz_doc_free(doc);
        return st;
    }
    size_t len;
    const uint8_t *png = zf_viz_doc_bytes(doc, &len);
    zf_db_rendering r = *what;
    zf_viz_doc_page_size(doc, &r.width, &r.height);
    st = zf_db_rendering_put(db, &r, png, len, id);
    zf_viz_doc_free(doc);
    return st;
}

zf_status zft_store_rendering_at(const char *dbpath, const zf_db_rendering *what, zft_render_fn fn, void *ctx)
{
    zf_db *db = NULL;
    int64_t id = 0;
    zf_status st = zft_db_open(dbpath, 1, &db);
    if (!st)
        st = zft_store_rendering(db, what, fn, ctx, &id);
    zf_db_close(db);
    if (!st)
        fprintf(stderr, "stored %s rendering %lld in %s\n", what->kind, (long long)id, dbpath);
    return st;
}

zf_status zft_scan_forward_open(zft_scan_forward *f, zf_net *net, int batch)
{
    f->idx = malloc(sizeof *f->idx * (size_t)(net->n_layers > 0 ? net->n_layers : 1));
    if (!f->idx)
        return zf_error(ZF_ERR_NOMEM, "out of memory");
    if (f->layers) {
        memcpy(f->idx, f->layers, sizeof *f->idx * (size_t)f->n_layers);
        f->n_idx = f->n_layers;
    } else {
        f->n_idx = zf_db_scan_default_layers(net, f->idx);
    }
    f->last = 0;
    for (int i = 0; i < f->n_idx; i++)
        if (f->idx[i] > f->last)
            f->last = f->idx[i];
    f->batch = batch;
    zf_status st = zft_device_open(f->dev, net, batch);
    if (st)
        return st;
    /* The layers the engine summarises (zf_db_scan_on_engine: zft_scan_forward_stats, or its
     * fold) are not read back; only the others (fc layers) are. */
    f->device_stats = zf_engine_supports(f->dev->eng, ZF_ENGINE_OP_STATS);
    if (f->device_stats) {
        int k = 0;
        for (int i = 0; i < f->n_idx; i++) {
            const zf_layer *l = &net->layers[f->idx[i]];
            if (!zf_db_scan_on_engine(l))
                f->idx[k++] = f->idx[i];
        }
        f->n_idx = k;
    }
    return ZF_OK;
}

/* zf_scan_opts' hooks on f's engine (the zf_engine_* of each). */
static zf_status zft_scan_forward_run(void *f, zf_net *net, const float *input, int n);
static zf_status zft_scan_forward_stats(void *f, int layer, int n, zf_plane_stats *planes, int64_t *hist);
static zf_status zft_scan_forward_fold_open(void *f, int slot, const zf_fold_acc *acc);
static zf_status zft_scan_forward_fold_add(void *f, int slot, int layer, int n, const int64_t *seqs,
                                           const int32_t *classes);
static zf_status zft_scan_forward_fold_read(void *f, int slot, zf_fold_acc *acc);
static void *zft_scan_forward_host_alloc(void *f, size_t bytes);
static void zft_scan_forward_host_free(void *f, void *p);
static zf_status zft_scan_forward_prefetch(void *f, const float *input, int n);

zf_status zft_scan_forward_attach(zft_scan_forward *f, zf_net *net, int batch, zf_scan_opts *so)
{
    if (!strcmp(f->dev->iface->name, "cpu"))
        return ZF_OK;
    zf_status st = zft_scan_forward_open(f, net, batch);
    if (st)
        return st;
    so->forward = zft_scan_forward_run;
    so->layer_stats = f->device_stats ? zft_scan_forward_stats : NULL;
    if (f->device_stats && zf_engine_supports(f->dev->eng, ZF_ENGINE_OP_FOLD)) {
        so->fold_open = zft_scan_forward_fold_open;
        so->fold_add = zft_scan_forward_fold_add;
        so->fold_read = zft_scan_forward_fold_read;
    }
    so->host_alloc = zft_scan_forward_host_alloc;
    so->host_free = zft_scan_forward_host_free;
    so->prefetch = zft_scan_forward_prefetch;
    so->forward_ctx = f;
    return ZF_OK;
}

static zf_status zft_scan_forward_fold_open(void *ctx, int slot, const zf_fold_acc *acc)
{
    return zf_engine_fold_open(((zft_scan_forward *)ctx)->dev->eng, slot, acc);
}

static zf_status zft_scan_forward_fold_add(void *ctx, int slot, int layer, int n, const int64_t *seqs, const int32_t *classes)
{
    return zf_engine_fold_add(((zft_scan_forward *)ctx)->dev->eng, slot, layer, n, seqs, classes);
}

static zf_status zft_scan_forward_fold_read(void *ctx, int slot, zf_fold_acc *acc)
{
    return zf_engine_fold_read(((zft_scan_forward *)ctx)->dev->eng, slot, acc);
}

static void *zft_scan_forward_host_alloc(void *ctx, size_t bytes)
{
    return zf_engine_host_alloc(((zft_scan_forward *)ctx)->dev->eng, bytes);
}

static void zft_scan_forward_host_free(void *ctx, void *p)
{
    zf_engine_host_free(((zft_scan_forward *)ctx)->dev->eng, p);
}

static zf_status zft_scan_forward_prefetch(void *ctx, const float *input, int n)
{
    zft_scan_forward *f = ctx;
    return n <= f->batch ? zf_engine_prefetch(f->dev->eng, input, n) : ZF_OK; /* a larger batch reserves first */
}

static zf_status zft_scan_forward_stats(void *ctx, int layer, int n, zf_plane_stats *planes, int64_t *hist)
{
    zft_scan_forward *f = ctx;
    return zf_engine_layer_stats(f->dev->eng, layer, n, planes, hist);
}

static zf_status zft_scan_forward_run(void *ctx, zf_net *net, const float *input, int n)
{
    zft_scan_forward *f = ctx;
    zf_engine *e = f->dev->eng;
    zf_status st;
    if (n > f->batch) { /* a resumed run keeps the batch it began with */
        if ((st = zf_engine_reserve(e, n)))
            return st;
        f->batch = n;
    }
    (void)net; /* the engine's own: the one the scan runs */
    if (!f->n_idx) /* every scanned layer is summarised there */
        return zf_engine_forward(e, input, n, f->last);
    return zf_engine_forward_layers(e, input, n, f->last, f->idx, f->n_idx);
}

void zft_scan_forward_close(zft_scan_forward *f)
{
    free(f->idx);
    f->idx = NULL;
    if (f->dev)
        zft_device_close(f->dev);
}
