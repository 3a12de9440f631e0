/* Operands of the paper's experiments (invariance, correspond): images, .npy batches, folders and
 * lists, loaded into one batch of preprocessed inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "paper_inputs.h"
#include "zf/input.h"
#include "zf/io.h"
#include "zf/tensor.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

static const char *base_name(const char *p)
{
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

void zft_image_set_free(zft_image_set *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
    zf_free(s->x);
    memset(s, 0, sizeof *s);
}

/* Appends the k images of t (k, c, h, w) named after `path`. */
static zf_status append(zft_image_set *s, int *cap, const zf_net *net, const zf_tensor *t, const char *path)
{
    const int64_t isz = zf_net_in_size(net);
    const int k = (int)t->shape[0];
    if (s->n + k > *cap) {
        int nc = (s->n + k) * 2;
        float *x = zf_alloc(sizeof(float) * (size_t)(isz * nc));
        char **names = realloc(s->names, sizeof(char *) * nc);
        if (names)
            s->names = names;
        if (!x || !names) {
            zf_free(x);
            return zf_error(ZF_ERR_NOMEM, "%s: out of memory for %d images", path, s->n + k);
        }
        if (s->n)
            memcpy(x, s->x, sizeof(float) * (size_t)(isz * s->n));
        zf_free(s->x);
        s->x = x;
        *cap = nc;
    }
    memcpy(s->x + isz * s->n, zf_tensor_f32(t), sizeof(float) * (size_t)(isz * k));
    for (int i = 0; i < k; i++) {
        char buf[1100];
        if (k > 1)
            snprintf(buf, sizeof buf, "%s[%d]", base_name(path), i);
        else
            snprintf(buf, sizeof buf, "%s", base_name(path));
        if (!(s->names[s->n] = strdup(buf)))
            return zf_error(ZF_ERR_NOMEM, "%s: out of memory", path);
        s->n++;
    }
    return ZF_OK;
}

zf_status zft_image_set_load(const zf_net *net, char *const *args, int n_args, zft_image_set *out)
{
    memset(out, 0, sizeof *out);
    if (n_args < 1)
        return zf_error(ZF_ERR_ARG, "no images given");
    for (int i = 0; i < n_args; i++) {
        struct stat sb;
        if (stat(args[i], &sb))
            return zf_error(ZF_ERR_ARG, "%s: no such image, .npy, folder or list", args[i]);
        if (!S_ISDIR(sb.st_mode) && zf_input_check(args[i], "image", 0, NULL))
            return ZF_ERR_ARG;
    }
    int cap = 0;
    zf_status st = ZF_OK;
    for (int i = 0; i < n_args && !st; i++) {
        zf_tensor *t = NULL;
        if (ends_with(args[i], ".npy")) {
            if (!(st = zf_input_load(args[i], net, &t)))
                st = append(out, &cap, net, t, args[i]);
            zf_tensor_free(t);
            continue;
        }
        char **paths = NULL;
        int64_t np = 0;
        if ((st = zf_images_find(args[i], &paths, &np)))
            break;
        for (int64_t j = 0; j < np && !st; j++) {
            if (!(st = zf_input_load(paths[j], net, &t)))
                st = append(out, &cap, net, t, paths[j]);
            zf_tensor_free(t);
            t = NULL;
        }
        zf_paths_free(paths, np);
    }
    if (st)
        zft_image_set_free(out);
    return st;
}
