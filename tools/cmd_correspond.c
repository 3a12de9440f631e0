/* zfviz correspond: Zeiler & Fergus Fig. 8 and its table: occlude the same object part in several
 * images, and random places of the same size as the control, and measure how consistently the
 * occlusion changes a layer's output across the images. */
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "paper_exp.h"
#include "zf/file.h"
#include "zf/input.h"
#include "zf/paper.h"

const char zf_cmd_correspond_summary[] = "part correspondence under occlusion (Zeiler & Fergus Fig. 8)";

static const char usage_text[] =
    "usage: zfviz correspond [--arch A --weights W | --model F] (--part NAME=BOXES ... | --boxes F.json)\n"
    "                        [IMAGE...] --out F.csv [--layers L,...] [--random R] [--seed S] [--fill V]\n\n"
    "Zeiler & Fergus section 4.3 (Fig. 8). For each part, a box is filled with --fill (0, the mean\n"
    "colour) in every image; with x_i a layer's output for image i and x~_i that with the box filled,\n"
    "eps_i = x_i - x~_i and\n"
    "    Delta = sum over image pairs i < j of H(sign(eps_i), sign(eps_j)),\n"
    "H the number of elements whose signs (-1, 0, +1) differ. Lower means the occlusion changes the\n"
    "layer the same way in every image: the net ties the part together across images. The control\n"
    "fills R random boxes of the same sizes (seeded). Prints the table, per part and layer, of\n"
    "Delta / (pairs x elements), the mean fraction of elements whose signs differ between two images\n"
    "(the random control as mean +- standard deviation over its R draws), and writes F.csv (a\n"
    "'zfviz' line, then part,control,draw,layer,elements,pairs,delta,fraction a row each).\n\n"
    "Boxes are x,y,w,h in the net's input pixels (after its resize: zfviz info shows the size) and\n"
    "must lie inside it.\n\n" ZFT_MODEL_HELP
    "  IMAGE...          image files, .npy inputs, folders or lists (at least 2 images in all)\n"
    "  --part NAME=B     a part and its boxes, one per image in order, separated by ';', e.g.\n"
    "                    'right eye=40,30,16,16;38,32,16,16;...'; a single box is used for every\n"
    "                    image (repeat --part for more parts)\n"
    "  --boxes F         the parts as JSON: {\"parts\": {\"NAME\": [[x,y,w,h], ...], ...}, \"images\":\n"
    "                    [paths, relative to F's folder]}; \"images\" is used when no IMAGE is given\n"
    "  --out F           the CSV file\n" ZFT_FORCE_HELP
    ZFT_DEVICE_HELP
    "  --layers L        layers measured, comma-separated (default: the rectified output of the last\n"
    "                    conv layer and of the fully connected layer before the last: the paper's\n"
    "                    layers 5 and 7)\n"
    "  --random R        random boxes drawn per part for the control (default 5, 0 for none)\n"
    "  --seed S          seed of the random boxes (default 0)\n"
    "  --fill V          value of the occluding box in the net's normalised input (default 0)\n";

static void usage(void) { fputs(usage_text, stdout); }

enum { OPT_PART = 256, OPT_BOXES, OPT_LAYERS, OPT_RANDOM, OPT_SEED, OPT_FILL };

#define MAX_PARTS 64
#define MAX_LAYERS ZFT_CORRESPOND_MAX_LAYERS

static int usage_fail(const char *fmt, const char *a, const char *b)
{
    return zft_usage_error("correspond", fmt, a, b);
}

/* "x,y,w,h"; 0 when it is one. */
static int parse_box(const char *s, zf_part_box *b)
{
    int used = -1;
    if (sscanf(s, " %d , %d , %d , %d %n", &b->x, &b->y, &b->w, &b->h, &used) != 4 || used < 0 || s[used])
        return -1;
    return 0;
}

/* "NAME=x,y,w,h;x,y,w,h". */
static int parse_part(const char *arg, zft_part *p)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof p->name)
        return usage_fail("--part needs NAME=x,y,w,h[;x,y,w,h...], got '%s'%s", arg, "");
    snprintf(p->name, sizeof p->name, "%.*s", (int)(eq - arg), arg);
    char *copy = strdup(eq + 1);
    int n = 1;
    for (const char *c = eq + 1; *c; c++)
        n += *c == ';';
    p->box = calloc((size_t)n, sizeof(zf_part_box));
    if (!copy || !p->box) {
        free(copy);
        return zft_fail("correspond", zf_error(ZF_ERR_NOMEM, "out of memory"));
    }
    p->n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
        if (parse_box(tok, &p->box[p->n++])) {
            int rc = usage_fail("--part '%s': a box is x,y,w,h (whole numbers), got '%s'", p->name, tok);
            free(copy);
            return rc;
        }
    free(copy);
    if (p->n < 1)
        return usage_fail("--part '%s' has no boxes%s", p->name, "");
    return 0;
}

/* The parts (and images, when *images is not NULL) of a --boxes file; ZF_ERR_ARG for a file that
 * does not say them. */
static zf_status read_boxes(const char *path, zft_part *parts, int *n_parts, char ***images, int *n_images)
{
    zf_status st = zf_input_check(path, "JSON file of boxes", 0, NULL);
    if (st)
        return ZF_ERR_ARG;
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return zf_error(ZF_ERR_ARG, "%s:%d: %s", path, err.line, err.text);
    json_t *jp = json_object_get(root, "parts"), *ji = json_object_get(root, "images");
    if (!json_is_object(root) || !json_is_object(jp) || json_object_size(jp) < 1) {
        json_decref(root);
        return zf_error(ZF_ERR_ARG, "%s: needs an object \"parts\" of NAME: [[x,y,w,h], ...]", path);
    }
    const char *key;
    json_t *val;
    json_object_foreach(jp, key, val)
    {
        if (*n_parts >= MAX_PARTS) {
            st = zf_error(ZF_ERR_ARG, "%s: more than %d parts", path, MAX_PARTS);
            break;
        }
        zft_part *p = &parts[*n_parts];
        snprintf(p->name, sizeof p->name, "%s", key);
        const size_t nb = json_is_array(val) ? json_array_size(val) : 0;
        if (nb < 1 || !(p->box = calloc(nb, sizeof(zf_part_box)))) {
            st = zf_error(ZF_ERR_ARG, "%s: part \"%s\" needs a list of boxes [x,y,w,h]", path, key);
            break;
        }
        (*n_parts)++;
        p->n = (int)nb;
        for (size_t i = 0; i < nb && !st; i++) {
            json_t *b = json_array_get(val, i);
            int v[4];
            int ok = json_is_array(b) && json_array_size(b) == 4;
            for (int k = 0; k < 4 && ok; k++) {
                json_t *e = json_array_get(b, k);
                ok = json_is_integer(e) && json_integer_value(e) > -(1 << 30) && json_integer_value(e) < (1 << 30);
                v[k] = ok ? (int)json_integer_value(e) : 0;
            }
            if (!ok)
                st = zf_error(ZF_ERR_ARG, "%s: part \"%s\", box %zu is not [x, y, w, h] of whole numbers", path,
                              key, i + 1);
            else
                p->box[i] = (zf_part_box){v[0], v[1], v[2], v[3]};
        }
        if (st)
            break;
    }
    if (!st && images && ji) {
        if (!json_is_array(ji) || json_array_size(ji) < 1 || json_array_size(ji) > 100000) {
            st = zf_error(ZF_ERR_ARG, "%s: \"images\" must be a list of paths", path);
        } else {
            const size_t n = json_array_size(ji);
            const char *slash = strrchr(path, '/');
            const int dirlen = slash ? (int)(slash - path) : 0;
            *images = calloc(n, sizeof(char *));
            for (size_t i = 0; *images && i < n && !st; i++) {
                const char *s = json_string_value(json_array_get(ji, i));
                if (!s) {
                    st = zf_error(ZF_ERR_ARG, "%s: \"images\" entry %zu is not a path", path, i + 1);
                    break;
                }
                size_t len = strlen(s) + dirlen + 2;
                if (!((*images)[i] = malloc(len)))
                    break;
                if (s[0] == '/' || !slash)
                    snprintf((*images)[i], len, "%s", s);
                else
                    snprintf((*images)[i], len, "%.*s/%s", dirlen, path, s);
                (*n_images)++;
            }
            if (!st && (!*images || *n_images < (int)n))
                st = zf_error(ZF_ERR_NOMEM, "out of memory");
        }
    }
    json_decref(root);
    return st;
}

static int fail(zf_status st)
{
    if (st == ZF_ERR_ARG)
        return zft_usage_error("correspond", "%s", zf_last_error());
    return zft_fail("correspond", st);
}

int zf_cmd_correspond(int argc, char **argv)
{
    zft_model_opts mo = {0};
    const char *out = NULL, *boxes = NULL, *layers_arg = NULL;
    int random = 5;
    long seed = 0;
    float fill = 0;
    zft_part parts[MAX_PARTS];
    int n_parts = 0;
    memset(parts, 0, sizeof parts);
    const zft_opt opts[] = {ZFT_STR("out", 'o', &out), ZFT_OWN("part", OPT_PART, required_argument),
                            ZFT_STR("boxes", OPT_BOXES, &boxes), ZFT_STR("layers", OPT_LAYERS, &layers_arg),
                            ZFT_INT("random", OPT_RANDOM, 0, 10000, "0..10000 draws", &random),
                            ZFT_LONG("seed", OPT_SEED, 0, 1e18, "a whole number from 0", &seed),
                            ZFT_FLOAT("fill", OPT_FILL, -FLT_MAX, FLT_MAX, "a finite number", &fill), {0}};
    zft_device dev = {0};
    zft_args a = {.cmd = "correspond", .argc = argc, .argv = argv, .shortopts = "ho:", .opts = opts,
                  .usage = usage, .model = &mo, .device = &dev, .shared = ZFT_WITH_FORCE, .operands = -1};
    zf_net *net = NULL;
    zft_model_ref ref;
    zft_image_set im = {0};
    char **json_images = NULL;
    int n_json_images = 0, rc = -1, c; /* -1: not decided, st says */
    zft_correspond cr = {0};
    int *layers = cr.layers, n_layers = 0;
    zf_status st = ZF_OK;
    while ((c = zft_args_next(&a)) != -1) {
        if (c != OPT_PART) {
            rc = a.rc;
            goto done;
        }
        if (n_parts >= MAX_PARTS) {
            rc = zft_usage_error("correspond", "at most %d parts", MAX_PARTS);
            goto done;
        }
        if ((rc = parse_part(optarg, &parts[n_parts++])))
            goto done;
        rc = -1;
    }
    if (!out) {
        rc = zft_usage_error("correspond", "--out is required");
        goto done;
    }
    if (!n_parts && !boxes) {
        rc = zft_usage_error("correspond", "no parts: give --part NAME=BOXES or --boxes F.json");
        goto done;
    }
    if (boxes && (st = read_boxes(boxes, parts, &n_parts, optind >= argc ? &json_images : NULL, &n_json_images)))
        goto done;
    if (optind >= argc && !n_json_images) {
        rc = zft_usage_error("correspond", "no images given");
        goto done;
    }
    if (zft_output_check(out)) {
        rc = zft_fail("correspond", ZF_ERR_IO);
        goto done;
    }
    if ((st = zft_load_model_ref(&mo, &net, &ref)))
        goto done;
    if (layers_arg) {
        char buf[1024];
        const char *items[MAX_LAYERS + 1];
        n_layers = zft_split_list(layers_arg, buf, sizeof buf, items, MAX_LAYERS + 1);
        if (n_layers < 1 || n_layers > MAX_LAYERS) {
            st = zf_error(ZF_ERR_ARG, "--layers needs 1 to %d layer names, got '%s'", MAX_LAYERS, layers_arg);
            goto done;
        }
        for (int l = 0; l < n_layers; l++)
            if ((layers[l] = zf_net_find(net, items[l])) < 0) {
                st = zf_error(ZF_ERR_ARG, "%s has no layer '%s' (see zfviz info)", net->arch, items[l]);
                goto done;
            }
    } else if ((st = zft_correspond_default_layers(net, layers, &n_layers))) {
        goto done;
    }
    if ((st = json_images ? zft_image_set_load(net, json_images, n_json_images, &im)
                          : zft_image_set_load(net, argv + optind, argc - optind, &im)))
        goto done;
    cr.n_layers = n_layers;
    cr.random = random;
    cr.seed = seed;
    cr.fill = fill;
    if ((st = zft_device_open(&dev, net, 1)) || (st = zft_correspond_run(&cr, dev.eng, &im, parts, n_parts)) ||
        (st = zft_correspond_write_csv(out, &cr, net, ref.label, parts)))
        goto done;
    zft_correspond_print(stdout, &cr, net, ref.label, parts);

    fprintf(stderr, "wrote %s\n", out);
    rc = 0;
done:
    if (rc < 0)
        rc = fail(st);
    for (int p = 0; p < n_parts; p++)
        free(parts[p].box);
    zft_correspond_free(&cr);
    for (int i = 0; i < n_json_images; i++)
        free(json_images[i]);
    free(json_images);
    zft_image_set_free(&im);
    zft_device_close(&dev);
    zf_net_free(net);
    return rc;
}
