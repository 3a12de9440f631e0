/* The models the ONNX import knows by shape (the zoo's bvlc_alexnet and zfnet512, torchvision's
 * AlexNet) and their preprocessing, preprocessing specs, and finding model files by name. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx_internal.h"

typedef struct ox_known {
    const char *arch;
    int convs[5][4]; /* out channels, kernel, stride, groups */
    int fcs[3];
    int lrns[2][2];  /* size and front of the LRN layers, when they tell models apart */
} ox_known;

static const ox_known known[] = {
    {"bvlc_alexnet",
     {{96, 11, 4, 1}, {256, 5, 1, 2}, {384, 3, 1, 1}, {384, 3, 1, 2}, {256, 3, 1, 2}},
     {4096, 4096, 1000},
     {{0, 0}, {0, 0}}},
    {"zfnet512",
     {{96, 7, 2, 1}, {256, 5, 2, 1}, {512, 3, 1, 1}, {512, 3, 1, 1}, {512, 3, 1, 1}},
     {4096, 1024, 1000},
     {{0, 0}, {0, 0}}},
    {"torchvision-alexnet",
     {{64, 11, 4, 1}, {192, 5, 1, 1}, {384, 3, 1, 1}, {256, 3, 1, 1}, {256, 3, 1, 1}},
     {4096, 4096, 1000},
     {{0, 0}, {0, 0}}},
    /* the PyTorch ZFNet rendering (--arch zfnet-pytorch): the paper's convolutions, told apart
     * from an export of the paper's layout by its LocalResponseNorm(30) and (50) */
    {"zfnet-pytorch",
     {{96, 7, 2, 1}, {256, 5, 2, 1}, {384, 3, 1, 1}, {384, 3, 1, 1}, {256, 3, 1, 1}},
     {4096, 4096, 1000},
     {{30, 15}, {50, 25}}},
};

/* The zoo's accuracy scripts: RGB resized to the input size, 0-255, ImageNet means, BGR. */
static const zf_preproc pre_zoo = {ZF_COLOR_BGR, 255.0f, {123.68f, 116.779f, 103.939f},
                                   {1.0f, 1.0f, 1.0f}, ZF_RESIZE_EXACT, 0};
/* torchvision's ImageClassification transform for AlexNet_Weights.IMAGENET1K_V1. */
static const zf_preproc pre_torchvision = {ZF_COLOR_RGB, 1.0f, {0.485f, 0.456f, 0.406f},
                                           {0.229f, 0.224f, 0.225f}, ZF_RESIZE_SHORT_CROP, 256};

int zf_onnx_preproc_for(const char *arch, zf_preproc *out)
{
    if (!strcmp(arch, "bvlc_alexnet") || !strcmp(arch, "zfnet512")) {
        *out = pre_zoo;
        return 1;
    }
    *out = pre_torchvision;
    return !strcmp(arch, "torchvision-alexnet") || !strcmp(arch, "zfnet-pytorch");
}

void ox_recognise(zf_net *net)
{
    int conv[16][4], fc[16], lrn[16][2], nc = 0, nf = 0, nl = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const zf_layer *l = &net->layers[i];
        if (l->op == ZF_OP_CONV && nc < 16) {
            int *c = conv[nc++];
            c[0] = l->out_c;
            c[1] = l->win.kh == l->win.kw ? l->win.kh : -1;
            c[2] = l->win.sh == l->win.sw ? l->win.sh : -1;
            c[3] = l->groups;
        } else if (l->op == ZF_OP_FC && nf < 16) {
            fc[nf++] = l->out_c;
        } else if (l->op == ZF_OP_LRN && nl < 16) {
            lrn[nl][0] = l->lrn.size;
            lrn[nl++][1] = l->lrn.front;
        }
    }
    snprintf(net->arch, sizeof net->arch, "onnx");
    for (size_t k = 0; k < sizeof known / sizeof known[0] && nc == 5 && nf == 3; k++) {
        int lrn_ok = !known[k].lrns[0][0] || (nl == 2 && !memcmp(lrn, known[k].lrns, sizeof known[k].lrns));
        if (!memcmp(conv, known[k].convs, sizeof known[k].convs) &&
            !memcmp(fc, known[k].fcs, sizeof known[k].fcs) && net->in_c == 3 && lrn_ok) {
            snprintf(net->arch, sizeof net->arch, "%s", known[k].arch);
            break;
        }
    }
    zf_onnx_preproc_for(net->arch, &net->pre);
}

static int parse_triple(const char *s, float v[3])
{
    char *end;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        v[i] = strtof(s, &end);
        if (errno || end == s)
            return 0;
        s = end;
        if (i < 2) {
            if (*s != ':' && *s != '/')
                return 0;
            s++;
        }
    }
    return *s == 0;
}

zf_status zf_onnx_preproc_parse(const char *spec, zf_preproc *pre)
{
    char buf[256];
    if (strlen(spec) >= sizeof buf)
        return zf_error(ZF_ERR_ARG, "preprocessing spec too long");
    snprintf(buf, sizeof buf, "%s", spec);
    zf_preproc p = *pre;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        const char *val = eq ? eq + 1 : "";
        if (eq)
            *eq = 0;
        if (!eq && (!strcmp(item, "zoo") || !strcmp(item, "caffe"))) {
            p = pre_zoo;
        } else if (!eq && !strcmp(item, "torchvision")) {
            p = pre_torchvision;
        } else if (!strcmp(item, "order") &&
                   (!strcmp(val, "rgb") || !strcmp(val, "bgr") || !strcmp(val, "grey"))) {
            p.order = val[0] == 'b' ? ZF_COLOR_BGR : val[0] == 'g' ? ZF_COLOR_GREY : ZF_COLOR_RGB;
        } else if (!strcmp(item, "scale") && (!strcmp(val, "1") || !strcmp(val, "255"))) {
            p.scale = val[0] == '1' ? 1.0f : 255.0f;
        } else if (!strcmp(item, "mean") && eq) {
            if (!parse_triple(val, p.mean))
                return zf_error(ZF_ERR_ARG, "preprocessing: mean '%s' is not R:G:B", val);
        } else if (!strcmp(item, "std") && eq) {
            if (!parse_triple(val, p.std) || !(p.std[0] > 0 && p.std[1] > 0 && p.std[2] > 0))
                return zf_error(ZF_ERR_ARG, "preprocessing: std '%s' is not three positive R:G:B", val);
        } else if (!strcmp(item, "resize") && !strcmp(val, "exact")) {
            p.resize = ZF_RESIZE_EXACT;
        } else if (!strcmp(item, "resize") && !strncmp(val, "short:", 6)) {
            char *end;
            long n = strtol(val + 6, &end, 10);
            if (*end || n < 1 || n > 65536)
                return zf_error(ZF_ERR_ARG, "preprocessing: resize '%s' is not short:N", val);
            p.resize = ZF_RESIZE_SHORT_CROP;
            p.resize_short = (int)n;
        } else {
            return zf_error(ZF_ERR_ARG,
                            "preprocessing: '%s%s%s' is not zoo, caffe, torchvision, order=rgb|bgr|grey, "
                            "scale=1|255, mean=R:G:B, std=R:G:B or resize=exact|short:N",
                            item, eq ? "=" : "", val);
        }
    }
    *pre = p;
    return ZF_OK;
}

const char *zf_onnx_preproc_format(const zf_preproc *p, int in_h, int in_w, char *buf, size_t len)
{
    char resize[96];
    if (p->resize == ZF_RESIZE_EXACT)
        snprintf(resize, sizeof resize, "resize to %dx%d (no crop)", in_h, in_w);
    else
        snprintf(resize, sizeof resize, "resize short side to %d, centre crop %dx%d", p->resize_short,
                 in_h, in_w);
    if (p->order == ZF_COLOR_GREY)
        snprintf(buf, len, "grey (luma), %s, mean %g, std %g, %s", p->scale == 255.0f ? "0-255" : "0-1",
                 p->mean[0], p->std[0], resize);
    else
        snprintf(buf, len, "%s, %s, mean %g %g %g, std %g %g %g (R G B), %s",
                 p->order == ZF_COLOR_BGR ? "BGR" : "RGB", p->scale == 255.0f ? "0-255" : "0-1",
                 p->mean[0], p->mean[1], p->mean[2], p->std[0], p->std[1], p->std[2], resize);
    return buf;
}

int zf_onnx_names(const zf_net *net, zf_onnx_name *names, int max)
{
    for (int i = 0; i < net->n_layers && i < max; i++) {
        names[i].caffe = net->layers[i].name;
        names[i].graph = net->layers[i].graph_name;
    }
    return net->n_layers;
}

const char *zf_onnx_model_dir(char *buf, size_t len)
{
    const char *env = getenv("ZFVIZ_MODELS");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return buf;
    }
    env = getenv("XDG_CACHE_HOME");
    if (env && *env) {
        snprintf(buf, len, "%s/zfviz/models", env);
        return buf;
    }
    env = getenv("HOME");
    snprintf(buf, len, "%s/.cache/zfviz/models", env && *env ? env : ".");
    return buf;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir/stem.onnx, else the dir/stem-<N>.onnx with the highest N. */
static int find_in_dir(const char *dir, const char *stem, char *path, size_t len)
{
    if ((size_t)snprintf(path, len, "%s/%s.onnx", dir, stem) < len && is_file(path))
        return 1;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    long best = -1;
    char best_name[NAME_MAX + 1] = "";
    size_t sl = strlen(stem);
    for (struct dirent *e; (e = readdir(d));) {
        const char *n = e->d_name;
        if (strncmp(n, stem, sl) || n[sl] != '-')
            continue;
        char *end;
        long v = strtol(n + sl + 1, &end, 10);
        if (end == n + sl + 1 || strcmp(end, ".onnx") || v <= best)
            continue;
        best = v;
        snprintf(best_name, sizeof best_name, "%s", n);
    }
    closedir(d);
    if (best < 0)
        return 0;
    return (size_t)snprintf(path, len, "%s/%s", dir, best_name) < len && is_file(path);
}

zf_status zf_onnx_resolve_model(const char *spec, char *path, size_t len)
{
    if (strchr(spec, '/') || is_file(spec)) {
        if (!is_file(spec))
            return zf_error(ZF_ERR_IO, "%s: no such model file", spec);
        snprintf(path, len, "%s", spec);
        return ZF_OK;
    }
    char dir[PATH_MAX];
    zf_onnx_model_dir(dir, sizeof dir);
    char stem[256];
    snprintf(stem, sizeof stem, "%s", spec);
    size_t sl = strlen(stem);
    if (sl > 5 && !strcmp(stem + sl - 5, ".onnx"))
        stem[sl - 5] = 0;
    /* The zoo spells the file bvlcalexnet-N.onnx and the model bvlc_alexnet: accept both. */
    const char *alias = !strcmp(stem, "bvlc_alexnet")  ? "bvlcalexnet"
                        : !strcmp(stem, "bvlcalexnet") ? "bvlc_alexnet"
                                                       : NULL;
    if (find_in_dir(dir, stem, path, len) || (alias && find_in_dir(dir, alias, path, len)))
        return ZF_OK;
    return zf_error(ZF_ERR_IO, "model '%s': no file %s.onnx or %s-<opset>.onnx in %s (scripts/"
                    "fetch-models.sh downloads the zoo's; ZFVIZ_MODELS sets the folder)",
                    spec, stem, stem, dir);
}

zf_status zf_onnx_open_model(const char *spec, const zf_onnx_options *opts, zf_net **out)
{
    char path[PATH_MAX];
    *out = NULL;
    zf_status st = zf_onnx_resolve_model(spec, path, sizeof path);
    return st ? st : zf_onnx_load(path, opts, out);
}
