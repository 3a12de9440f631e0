/* zfviz correspond (Zeiler & Fergus Fig. 8): the paper's measure worked out by hand on three
 * images through a one-filter net, against a naive loop written here (each image and each occluded
 * copy through one plain forward, signs and Hamming distances counted in the test) on a mini net,
 * the seeded random boxes, the command's CSV against the same loop, and the refusals of bad input
 * (exit 2, one line). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/io.h"
#include "zf/net.h"
#include "zf/paper.h"
#include "zf/tensor.h"

static void he_init(zf_net *net, uint64_t seed)
{
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i];
        if (l->op != ZF_OP_CONV && l->op != ZF_OP_FC)
            continue;
        const double fan_in = (double)l->weight_count / l->out_c;
        const float a = (float)sqrt((l->op == ZF_OP_CONV ? 6.0 : 3.0) / fan_in);
        tu_fill_uniform(l->weight, (size_t)l->weight_count, seed + 2 * i, -a, a);
        tu_fill_uniform(l->bias, (size_t)l->bias_count, seed + 2 * i + 1, -0.05f, 0.05f);
    }
}

/* Three 2x2 one-channel images through a 1x1 convolution of weight 1 and a ReLU: the layer is the
 * rectified image. Filling a row with 0 changes exactly the positive pixels of that row:
 *   image 1 [1 -1; 2 3], top row filled:    eps = relu(x) - relu(x~) = [1 0; 0 0]
 *   image 2 [-2 4; 5 6], top row filled:    eps = [0 4; 0 0]
 *   image 3 [3 3; -1 1], bottom row filled: eps = [0 0; 0 1]
 * signs (1,0,0,0), (0,1,0,0), (0,0,0,1): every pair differs in 2 places, Delta = 2 + 2 + 2 = 6,
 * and 6 / (3 pairs x 4 elements) = 0.5. With the bottom row filled in all three the signs are
 * (0,0,1,1), (0,0,1,1), (0,0,0,1): H = 0, 1, 1, Delta = 2. */
Test(correspond, paper_measure_by_hand)
{
    zf_net *net = zf_net_new("one", 1, 2, 2);
    cr_assert(net);
    cr_assert_eq(zf_net_add_conv(net, "conv", 1, zf_win(1, 1, 0), 1), ZF_OK);
    cr_assert_eq(zf_net_add_relu(net, "relu"), ZF_OK);
    cr_assert_eq(zf_net_finalize(net), ZF_OK);
    net->layers[0].weight[0] = 1;
    net->layers[0].bias[0] = 0;
    zf_engine *e = tu_cpu_engine(net);
    const float x[12] = {1, -1, 2, 3, -2, 4, 5, 6, 3, 3, -1, 1};
    const zf_part_box top = {0, 0, 2, 1}, bottom = {0, 1, 2, 1};
    const zf_part_box set0[3] = {top, top, bottom}, set1[3] = {bottom, bottom, bottom};
    const zf_part_box *sets[2] = {set0, set1};
    const int layers[2] = {1, 0};
    double delta[4], norm[4];
    cr_assert_eq(zf_correspond_run(e, x, 3, sets, 2, layers, 2, 0.0f, delta, norm), ZF_OK, "%s", zf_last_error());
    cr_expect_eq(delta[0], 6.0, "relu, rows as given: Delta %g, not 6", delta[0]);
    cr_expect_eq(norm[0], 0.5, "relu: fraction %g, not 0.5", norm[0]);
    /* The conv output before the ReLU: eps = x - x~ is the filled row itself: signs (1,-1,0,0),
     * (-1,1,0,0), (0,0,-1,1); H = 2, 4, 4 between the pairs: 10. */
    cr_expect_eq(delta[1], 10.0, "conv: Delta %g, not 10", delta[1]);
    cr_expect_eq(delta[2], 2.0, "relu, bottom rows: Delta %g, not 2", delta[2]);
    /* One image has no pairs; a box outside the input is refused, naming it. */
    cr_expect_eq(zf_correspond_run(e, x, 1, sets, 2, layers, 2, 0.0f, delta, norm), ZF_ERR_ARG);
    const zf_part_box outside[3] = {{1, 1, 2, 1}, top, top};
    const zf_part_box *bad[1] = {outside};
    cr_expect_eq(zf_correspond_run(e, x, 3, bad, 1, layers, 1, 0.0f, delta, norm), ZF_ERR_ARG);
    cr_expect(strstr(zf_last_error(), "not inside"), "%s", zf_last_error());
    zf_engine_close(e);
    zf_net_free(net);
}

/* The naive measure: every image and every occluded copy through one forward of its own; signs of
 * the differences and the Hamming distances counted here. */
static double naive_delta(zf_net *net, const float *x, int n, const zf_part_box *boxes, int layer, float fill)
{
    const int64_t isz = zf_net_in_size(net), d = zf_layer_out_size(&net->layers[layer]);
    int *sg = malloc(sizeof(int) * n * d);
    float *base = malloc(4 * d), *occ = malloc(4 * isz);
    cr_assert_eq(zf_net_reserve(net, 1), ZF_OK);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(zf_net_forward(net, x + isz * i, 1), ZF_OK);
        memcpy(base, net->acts[layer], 4 * d);
        memcpy(occ, x + isz * i, 4 * isz);
        for (int c = 0; c < net->in_c; c++)
            for (int y = 0; y < net->in_h; y++)
                for (int k = 0; k < net->in_w; k++)
                    if (y >= boxes[i].y && y < boxes[i].y + boxes[i].h && k >= boxes[i].x &&
                        k < boxes[i].x + boxes[i].w)
                        occ[(c * net->in_h + y) * net->in_w + k] = fill;
        cr_assert_eq(zf_net_forward(net, occ, 1), ZF_OK);
        for (int64_t e = 0; e < d; e++) {
            const double v = (double)base[e] - net->acts[layer][e];
            sg[i * d + e] = v > 0 ? 1 : v < 0 ? -1 : 0;
        }
    }
    double sum = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            for (int64_t e = 0; e < d; e++)
                sum += sg[i * d + e] != sg[j * d + e];
    free(sg);
    free(base);
    free(occ);
    return sum;
}

static void pictures(float *x, int n, int h, int w)
{
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int k = 0; k < w; k++)
                x[(i * h + y) * w + k] = (float)(sin(0.13 * k + i) * cos(0.09 * y - 0.5 * i) +
                                                 0.5 * sin(0.37 * (k + y) * (1 + 0.1 * i)));
}

Test(correspond, matches_naive_loop_on_a_mini_net)
{
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("zfnet-mini", &net), ZF_OK);
    he_init(net, 3);
    zf_engine *e = tu_cpu_engine(net);
    enum { N = 4 };
    const int64_t isz = zf_net_in_size(net);
    float *x = malloc(4 * isz * N);
    pictures(x, N, net->in_h, net->in_w);
    const zf_part_box part[N] = {{30, 40, 16, 16}, {33, 38, 16, 16}, {28, 44, 16, 16}, {31, 41, 16, 16}};
    zf_part_box rnd[N];
    zf_box_random(rnd, part, N, net->in_h, net->in_w, 77);
    const zf_part_box *sets[2] = {part, rnd};
    const int layers[3] = {zf_paper_layer_last_conv(net), zf_paper_layer_penultimate(net), zf_net_find(net, "relu1")};
    cr_expect_str_eq(net->layers[layers[0]].name, "relu5");
    cr_expect_str_eq(net->layers[layers[1]].name, "relu7");
    double delta[6], norm[6];
    cr_assert_eq(zf_correspond_run(e, x, N, sets, 2, layers, 3, 0.0f, delta, norm), ZF_OK, "%s", zf_last_error());
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < 3; l++) {
            const double want = naive_delta(net, x, N, sets[s], layers[l], 0.0f);
            const int64_t d = zf_layer_out_size(&net->layers[layers[l]]);
            cr_expect_eq(delta[s * 3 + l], want, "set %d %s: Delta %.17g, not %.17g", s, net->layers[layers[l]].name,
                         delta[s * 3 + l], want);
            cr_expect(fabs(norm[s * 3 + l] - want / (6.0 * d)) < 1e-12, "set %d %s: fraction %g, not %g", s,
                      net->layers[layers[l]].name, norm[s * 3 + l], want / (6.0 * d));
            cr_expect(want > 0, "set %d %s: Delta 0 tells nothing", s, net->layers[layers[l]].name);
        }
    free(x);
    zf_engine_close(e);
    zf_net_free(net);
}

Test(correspond, random_boxes_fit_and_repeat)
{
    const zf_part_box like[5] = {{0, 0, 16, 16}, {3, 4, 1, 30}, {0, 0, 112, 112}, {9, 9, 100, 5}, {1, 1, 7, 9}};
    zf_part_box a[5], b[5], c[5];
    zf_box_random(a, like, 5, 112, 112, 1);
    zf_box_random(b, like, 5, 112, 112, 1);
    zf_box_random(c, like, 5, 112, 112, 2);
    int differ = 0;
    for (int i = 0; i < 5; i++) {
        cr_expect(a[i].w == like[i].w && a[i].h == like[i].h, "box %d changed size", i);
        cr_expect(a[i].x >= 0 && a[i].y >= 0 && a[i].x + a[i].w <= 112 && a[i].y + a[i].h <= 112, "box %d outside", i);
        cr_expect(!memcmp(&a[i], &b[i], sizeof a[i]), "box %d: the same seed gave another box", i);
        differ += memcmp(&a[i], &c[i], sizeof a[i]) != 0;
    }
    cr_expect(differ >= 3, "another seed moved only %d of 4 movable boxes", differ);
    /* Over many draws every place is reached: both ends of a 16-wide box in 112. */
    int lo = 200, hi = -1;
    for (uint64_t s = 0; s < 2000; s++) {
        zf_box_random(a, like, 1, 112, 112, s);
        lo = a[0].x < lo ? a[0].x : lo;
        hi = a[0].x > hi ? a[0].x : hi;
    }
    cr_expect(lo == 0 && hi == 96, "x from %d to %d, not 0 to 96", lo, hi);
}

/* ---- the command ---- */

static char zfviz[4096];

static zf_net *write_case(const char *dir, int n)
{
    snprintf(zfviz, sizeof zfviz, "%s", tu_build("tools/zfviz"));
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    he_init(net, 5);
    char path[4096];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    cr_assert_eq(zf_net_save_safetensors(net, path), ZF_OK, "%s", zf_last_error());
    const int64_t isz = zf_net_in_size(net);
    float *x = malloc(4 * isz * n);
    pictures(x, n, net->in_h, net->in_w);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/im%d.npy", dir, i);
        const int64_t shape[3] = {1, net->in_h, net->in_w};
        cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, x + isz * i, 3, shape), ZF_OK);
    }
    free(x);
    return net;
}

/* The part rows of the CSV: delta at relu5 and relu7 for part `name`. */
static void csv_part(const char *csv, const char *name, double *d5, double *d7)
{
    *d5 = *d7 = -1;
    for (const char *l = csv; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        char part[64], control[16], layer[32];
        int draw, pairs;
        long long elements;
        double delta, frac;
        if (sscanf(l, "%63[^,],%15[^,],%d,%31[^,],%lld,%d,%lf,%lf", part, control, &draw, layer, &elements, &pairs,
                   &delta, &frac) != 8 ||
            strcmp(part, name) || strcmp(control, "part"))
            continue;
        cr_expect_eq(pairs, 3);
        cr_expect(fabs(frac - delta / (3.0 * elements)) < 1e-8, "%s %s: fraction %g", name, layer, frac);
        if (!strcmp(layer, "relu5"))
            *d5 = delta;
        if (!strcmp(layer, "relu7"))
            *d7 = delta;
    }
}

Test(correspond, command_csv_matches_naive_loop)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("correspond-cli"));
    zf_net *net = write_case(dir, 3);
    const int rc = tu_system("%s correspond --arch alexnet-mini --weights %s/w.safetensors %s/im0.npy %s/im1.npy "
                             "%s/im2.npy --part 'left eye=30,40,16,16;33,38,16,16;28,44,16,16' "
                             "--part 'chin=50,80,20,12' --random 3 --seed 7 --out %s/a.csv >%s/out.txt 2>%s/err.txt",
                             zfviz, dir, dir, dir, dir, dir, dir, dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/err.txt", dir);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, tu_read_file(path, NULL));
    snprintf(path, sizeof path, "%s/a.csv", dir);
    char *csv = tu_read_file(path, NULL);
    cr_assert(csv);
    cr_expect(!strncmp(csv, "zfviz correspond", 16), "first line: %.40s", csv);
    const int64_t isz = zf_net_in_size(net);
    float *x = malloc(4 * isz * 3);
    pictures(x, 3, net->in_h, net->in_w);
    const zf_part_box eye[3] = {{30, 40, 16, 16}, {33, 38, 16, 16}, {28, 44, 16, 16}};
    const zf_part_box chin[3] = {{50, 80, 20, 12}, {50, 80, 20, 12}, {50, 80, 20, 12}};
    const int l5 = zf_net_find(net, "relu5"), l7 = zf_net_find(net, "relu7");
    double d5, d7;
    csv_part(csv, "left eye", &d5, &d7);
    cr_expect_eq(d5, naive_delta(net, x, 3, eye, l5, 0), "left eye relu5: %g", d5);
    cr_expect_eq(d7, naive_delta(net, x, 3, eye, l7, 0), "left eye relu7: %g", d7);
    csv_part(csv, "chin", &d5, &d7);
    cr_expect_eq(d5, naive_delta(net, x, 3, chin, l5, 0), "chin relu5: %g", d5);
    cr_expect_eq(d7, naive_delta(net, x, 3, chin, l7, 0), "chin relu7: %g", d7);
    /* 2 parts x (1 + 3 draws) x 2 layers rows after the two header lines. */
    int lines = 0;
    for (const char *p = csv; *p; p++)
        lines += *p == '\n';
    cr_expect_eq(lines, 2 + 2 * 4 * 2);
    /* The same boxes as JSON give the same file; the same seed the same random draws. */
    snprintf(path, sizeof path, "%s/boxes.json", dir);
    const char *json = "{\"parts\": {\"left eye\": [[30,40,16,16],[33,38,16,16],[28,44,16,16]], "
                       "\"chin\": [[50,80,20,12]]}, \"images\": [\"im0.npy\", \"im1.npy\", \"im2.npy\"]}";
    tu_write_file(path, json, strlen(json));
    cr_assert_eq(tu_system("cd / && %s correspond --arch alexnet-mini --weights %s/w.safetensors --boxes %s/boxes.json "
                           "--random 3 --seed 7 --out %s/b.csv >%s/out.txt 2>&1",
                           zfviz, dir, dir, dir, dir),
                 0);
    snprintf(path, sizeof path, "%s/b.csv", dir);
    char *csv2 = tu_read_file(path, NULL);
    cr_assert(csv2);
    cr_expect_str_eq(csv2, csv, "the JSON boxes gave another table");
    free(csv2);
    cr_assert_eq(tu_system("%s correspond --arch alexnet-mini --weights %s/w.safetensors --boxes %s/boxes.json "
                           "--random 3 --seed 8 --out %s/c.csv >%s/out.txt 2>&1",
                           zfviz, dir, dir, dir, dir),
                 0);
    snprintf(path, sizeof path, "%s/c.csv", dir);
    csv2 = tu_read_file(path, NULL);
    cr_assert(csv2);
    cr_expect(strcmp(strchr(csv2, '\n'), strchr(csv, '\n')), "seed 8 gave seed 7's random boxes");
    free(csv2);
    free(csv);
    free(x);
    zf_net_free(net);
}

Test(correspond, refuses_bad_input)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("correspond-bad"));
    zf_net_free(write_case(dir, 3));
    char path[4096];
    snprintf(path, sizeof path, "%s/broken.json", dir);
    const char *broken = "{\"parts\": {\"eye\": [[1,2,3]]}}";
    tu_write_file(path, broken, strlen(broken));
    snprintf(path, sizeof path, "%s/syntax.json", dir);
    tu_write_file(path, "{\"parts\": ", 10);
    const struct {
        const char *opts, *says;
    } cases[] = {
        {"%s/im0.npy %s/missing.png --part eye=1,1,8,8", "missing.png"},
        {"%s/im0.npy %s/im1.npy --part eye=1,1,8", "x,y,w,h"},
        {"%s/im0.npy %s/im1.npy --part eye=100,100,16,16", "not inside"},
        {"%s/im0.npy %s/im1.npy --part eye=-1,0,16,16", "not inside"},
        {"%s/im0.npy %s/im1.npy --part eye=1,1,0,8", "empty"},
        {"%s/im0.npy %s/im1.npy --part 'eye=1,1,8,8;2,2,8,8;3,3,8,8'", "3 boxes for 2 images"},
        {"%s/im0.npy %s/im1.npy --part noequals", "NAME=x,y,w,h"},
        {"%s/im0.npy %s/im1.npy --boxes %s/broken.json", "not [x, y, w, h]"},
        {"%s/im0.npy %s/im1.npy --boxes %s/syntax.json", "syntax.json"},
        {"%s/im0.npy %s/im1.npy --boxes %s/none.json", "none.json"},
        {"%s/im0.npy --part eye=1,1,8,8", "at least 2 images"},
        {"%s/im0.npy %s/im1.npy --part eye=1,1,8,8 --layers relu5,nosuch", "no layer 'nosuch'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char opts[8192];
        snprintf(opts, sizeof opts, cases[i].opts, dir, dir, dir);
        const int rc = tu_system("%s correspond --arch alexnet-mini --weights %s/w.safetensors --out %s/out.csv %s "
                                 ">%s/stdout.txt 2>%s/err.txt",
                                 zfviz, dir, dir, opts, dir, dir);
        snprintf(path, sizeof path, "%s/err.txt", dir);
        char *msg = tu_read_file(path, NULL);
        cr_assert(msg, "%s: missing", path);
        const char *nl = strchr(msg, '\n');
        cr_expect(nl && nl[1] == 0, "%s: not one line on stderr: %s", opts, msg);
        cr_expect(strstr(msg, cases[i].says), "%s: stderr does not say '%s': %s", opts, cases[i].says, msg);
        cr_expect_eq(rc, 2, "%s: exit %d, not 2", opts, rc);
        snprintf(path, sizeof path, "%s/out.csv", dir);
        cr_expect(access(path, F_OK) != 0, "%s: the CSV was written", opts);
        free(msg);
    }
}
