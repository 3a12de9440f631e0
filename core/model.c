/* Whole-model files: a net's description in safetensors metadata, so one file rebuilds the net
 * (arch, channels, classes, names, preprocessing) and loads its weights; also from memory, for the
 * models embedded in zfviz. */
#include "zf/alloc.h"
#include "zf/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void zf_meta_free(zf_meta *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

const char *zf_meta_get(const zf_meta *m, const char *key)
{
    for (int i = 0; m && i < m->n; i++)
        if (!strcmp(m->keys[i], key))
            return m->values[i];
    return NULL;
}

typedef struct {
    zf_meta *m;
    int failed;
} meta_ctx;

static void collect(void *ctx, const char *key, const char *value)
{
    meta_ctx *c = ctx;
    zf_meta *m = c->m;
    char **k = zf_realloc(m->keys, sizeof *k * (size_t)(m->n + 1));
    if (k)
        m->keys = k;
    char **v = zf_realloc(m->values, sizeof *v * (size_t)(m->n + 1));
    if (v)
        m->values = v;
    if (!k || !v) {
        c->failed = 1;
        return;
    }
    m->keys[m->n] = zf_strdup(key);
    m->values[m->n] = zf_strdup(value);
    if (!m->keys[m->n] || !m->values[m->n]) {
        free(m->keys[m->n]);
        free(m->values[m->n]);
        c->failed = 1;
        return;
    }
    m->n++;
}

static zf_status read_meta_stream(FILE *f, const char *name, zf_meta *out)
{
    memset(out, 0, sizeof *out);
    meta_ctx c = {out, 0};
    zf_status st = zf_safetensors_stream_read(f, name, NULL, NULL, collect, &c);
    if (!st && c.failed)
        st = zf_error(ZF_ERR_NOMEM, "%s: out of memory for the metadata", name);
    if (st)
        zf_meta_free(out);
    return st;
}

zf_status zf_model_read_meta(const char *path, zf_meta *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    zf_status st = read_meta_stream(f, path, out);
    fclose(f);
    return st;
}

int zf_model_is_whole(const char *path)
{
    zf_meta m;
    zf_status st = zf_model_read_meta(path, &m);
    int whole = !st && zf_meta_get(&m, "zfviz.in_c") && zf_meta_get(&m, "arch");
    zf_meta_free(&m);
    return whole;
}

static int parse_floats3(const char *s, float v[3])
{
    char *end;
    for (int i = 0; i < 3; i++) {
        v[i] = strtof(s, &end);
        if (end == s)
            return 0;
        s = end;
        if (i < 2 && *s++ != ',')
            return 0;
    }
    return *s == 0;
}

/* Builds the net the metadata describes (weights not loaded), refusing one with more parameters
 * than a file of file_bytes can hold (2 bytes each, as F16). */
static zf_status net_from_meta(const zf_meta *m, const char *name, int64_t file_bytes, zf_net **out)
{
    const char *arch = zf_meta_get(m, "arch"), *in_c = zf_meta_get(m, "zfviz.in_c");
    const char *classes = zf_meta_get(m, "zfviz.classes");
    if (!arch || !in_c || !classes)
        return zf_error(ZF_ERR_FORMAT, "%s: not a whole zfviz model (its metadata lacks arch, "
                        "zfviz.in_c or zfviz.classes; give --arch with --weights instead)", name);
    zf_net *net;
    zf_status st = zf_net_new_builtin_bounded(arch, atoi(in_c), atoi(classes), file_bytes / 2, &net);
    if (st)
        return zf_error_prefix(st, "%s: ", name);
    zf_preproc p = net->pre;
    const char *v;
    if ((v = zf_meta_get(m, "zfviz.order")))
        p.order = !strcmp(v, "bgr") ? ZF_COLOR_BGR : !strcmp(v, "grey") ? ZF_COLOR_GREY : ZF_COLOR_RGB;
    if ((v = zf_meta_get(m, "zfviz.scale")))
        p.scale = !strcmp(v, "255") ? 255.0f : 1.0f;
    int bad = 0;
    if ((v = zf_meta_get(m, "zfviz.mean")))
        bad |= !parse_floats3(v, p.mean);
    if ((v = zf_meta_get(m, "zfviz.std")))
        bad |= !parse_floats3(v, p.std) || !(p.std[0] > 0 && p.std[1] > 0 && p.std[2] > 0);
    if ((v = zf_meta_get(m, "zfviz.resize"))) {
        if (!strcmp(v, "exact"))
            p.resize = ZF_RESIZE_EXACT;
        else if (!strncmp(v, "short:", 6) && atoi(v + 6) > 0) {
            p.resize = ZF_RESIZE_SHORT_CROP;
            p.resize_short = atoi(v + 6);
        } else
            bad = 1;
    }
    if (bad || (p.order == ZF_COLOR_GREY) != (net->in_c == 1)) {
        zf_net_free(net);
        return zf_error(ZF_ERR_FORMAT, "%s: bad preprocessing in the model's metadata", name);
    }
    net->pre = p;
    if ((v = zf_meta_get(m, "zfviz.labels"))) {
        int n = net->layers[net->n_layers - 1].out_c;
        char *copy = zf_strdup(v);
        const char **names = zf_calloc((size_t)n, sizeof *names);
        if (!copy || !names) {
            free(copy);
            free(names);
            zf_net_free(net);
            return zf_error(ZF_ERR_NOMEM, "%s: out of memory", name);
        }
        int k = 0;
        for (char *s = copy, *save = NULL, *t; k < n && (t = strtok_r(s, "\n", &save)); s = NULL)
            names[k++] = t;
        st = k == n ? zf_net_set_labels(net, n, names)
                    : zf_error(ZF_ERR_FORMAT, "%s: %d class names for %d classes", name, k, n);
        free(copy);
        free(names);
        if (st) {
            zf_net_free(net);
            return st;
        }
    }
    *out = net;
    return ZF_OK;
}

static zf_status load_stream(FILE *f, const char *name, int64_t file_bytes, zf_net **out)
{
    *out = NULL;
    zf_meta m;
    zf_status st = read_meta_stream(f, name, &m);
    zf_net *net = NULL;
    if (!st)
        st = net_from_meta(&m, name, file_bytes, &net);
    zf_meta_free(&m);
    if (!st)
        st = zf_safetensors_stream_read(f, name, net, NULL, NULL, NULL);
    if (st) {
        zf_net_free(net);
        return st;
    }
    *out = net;
    return ZF_OK;
}

zf_status zf_model_load(const char *path, zf_net **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int64_t bytes = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : INT64_MAX;
    zf_status st = load_stream(f, path, bytes, out);
    fclose(f);
    return st;
}

zf_status zf_model_load_memory(const void *bytes, size_t len, const char *name, zf_net **out)
{
    *out = NULL;
    FILE *f = len ? fmemopen((void *)bytes, len, "rb") : NULL;
    if (!f)
        return zf_error(ZF_ERR_FORMAT, "%s: empty or unreadable model", name);
    zf_status st = load_stream(f, name, (int64_t)len, out);
    fclose(f);
    return st;
}

zf_status zf_model_save(const zf_net *net, const char *path, const char *const *meta_kv,
                        const float *momentum)
{
    char in_c[16], classes[16], scale[8], mean[64], std[64], resize[32];
    const zf_layer *last = &net->layers[net->n_layers - 1];
    snprintf(in_c, sizeof in_c, "%d", net->in_c);
    snprintf(classes, sizeof classes, "%d", last->out_c);
    snprintf(scale, sizeof scale, "%s", net->pre.scale == 255.0f ? "255" : "1");
    snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", net->pre.mean[0], net->pre.mean[1], net->pre.mean[2]);
    snprintf(std, sizeof std, "%.9g,%.9g,%.9g", net->pre.std[0], net->pre.std[1], net->pre.std[2]);
    if (net->pre.resize == ZF_RESIZE_EXACT)
        snprintf(resize, sizeof resize, "exact");
    else
        snprintf(resize, sizeof resize, "short:%d", net->pre.resize_short);
    size_t lab_len = 1;
    for (int i = 0; i < net->n_labels; i++)
        lab_len += strlen(net->labels[i]) + 1;
    char *labels = zf_calloc(1, lab_len);
    int n_extra = 0;
    while (meta_kv && meta_kv[n_extra])
        n_extra += 2;
    const char **kv = zf_calloc((size_t)n_extra + 20, sizeof *kv);
    if (!labels || !kv) {
        free(labels);
        free(kv);
        return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < net->n_labels; i++) {
        strcat(labels, net->labels[i]);
        if (i + 1 < net->n_labels)
            strcat(labels, "\n");
    }
    const char *order = net->pre.order == ZF_COLOR_GREY ? "grey" : net->pre.order == ZF_COLOR_BGR ? "bgr" : "rgb";
    int k = 0;
    const char *base[] = {"zfviz.in_c", in_c, "zfviz.classes", classes, "zfviz.order", order,
                          "zfviz.scale", scale, "zfviz.mean", mean, "zfviz.std", std,
                          "zfviz.resize", resize};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        kv[k++] = base[i];
    if (net->n_labels) {
        kv[k++] = "zfviz.labels";
        kv[k++] = labels;
    }
    for (int i = 0; i < n_extra; i++)
        kv[k++] = meta_kv[i];
    kv[k] = NULL;
    zf_status st = zf_net_save_safetensors_ex(net, path, kv, momentum);
    free(labels);
    free(kv);
    return st;
}

zf_status zf_model_load_checkpoint(zf_net *net, const char *path, float *momentum, zf_meta *meta)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    zf_status st = ZF_OK;
    if (meta)
        st = read_meta_stream(f, path, meta);
    if (!st)
        st = zf_safetensors_stream_read(f, path, net, momentum, NULL, NULL);
    fclose(f);
    if (st && meta)
        zf_meta_free(meta);
    return st;
}
