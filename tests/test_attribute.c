/* zfviz attribute against PyTorch autograd in float64 (tests/fixtures/gen_attribute.py: every
 * method on alexnet-mini, zfnet-mini and a full-size alexnet with seeded weights), Grad-CAM's
 * weights and map by hand on a net small enough to write out, integrated gradients' completeness
 * against the printed error and as the steps grow, and the refusals of bad input (exit 2, one
 * line). Errors are relative in the L2 norm: |got - ref|_2 / |ref|_2. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/attribution.h"
#include "zf/file.h"
#include "zf/io.h"
#include "zf/net.h"

#define REL_TOL 1e-5

static char zfviz[4096];

static void find_zfviz(void) { snprintf(zfviz, sizeof zfviz, "%s", tu_build("tools/zfviz")); }

/* |a - ref|_2 / |ref|_2 over n values; *worst the index of the largest |a - ref|. */
static double rel_l2(const float *a, const float *ref, size_t n, size_t *worst)
{
    double num = 0, den = 0, big = -1;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
        if (fabs(d) > big || isnan(d)) {
            big = isnan(d) ? INFINITY : fabs(d);
            *worst = i;
        }
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static zf_tensor *read_npy(const char *path)
{
    zf_tensor *t = NULL;
    cr_assert(zf_npy_read(path, &t) == ZF_OK, "%s: %s", path, zf_last_error());
    return t;
}

/* Runs zfviz attribute on a fixture net with `opts` and --out dir; the exit status. stdout and
 * stderr go to log/out.txt and log/err.txt. */
static int run_attribute_log(const char *dir, const char *log, const char *net, const char *opts)
{
    char weights[2048], input[2048];
    snprintf(weights, sizeof weights, "%s", tu_fixturef("attribute/%s/weights", net));
    snprintf(input, sizeof input, "%s", tu_fixturef("attribute/%s/input.npy", net));
    return tu_system("%s attribute --arch %s --weights %s --input %s --out %s %s >%s/out.txt 2>%s/err.txt",
                     zfviz, net, weights, input, dir, opts, log, log);
}

static int run_attribute(const char *dir, const char *net, const char *opts)
{
    return run_attribute_log(dir, dir, net, opts);
}

/* One row of cases.tsv. */
typedef struct ref_case {
    char net[64], name[64], method[64], opts[512], diff[64];
} ref_case;

static int read_cases(ref_case *cases, int max)
{
    const char *path = tu_fixture("attribute/cases.tsv");
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s: missing (run tests/fixtures/gen_attribute.py)", path);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        if (line[0] == '#')
            continue;
        line[strcspn(line, "\n")] = 0;
        ref_case *c = &cases[n];
        char *fields[5], *save = NULL, *p = line;
        int k = 0;
        for (char *tok; k < 5 && (tok = strtok_r(p, "\t", &save)); p = NULL)
            fields[k++] = tok;
        cr_assert(k == 5, "%s: a row of %d fields", path, k);
        snprintf(c->net, sizeof c->net, "%s", fields[0]);
        snprintf(c->name, sizeof c->name, "%s", fields[1]);
        snprintf(c->method, sizeof c->method, "%s", fields[2]);
        snprintf(c->diff, sizeof c->diff, "%s", fields[4]);
        /* BASELINE stands for the net's baseline.npy */
        char *b = strstr(fields[3], "BASELINE");
        if (b) {
            *b = 0;
            snprintf(c->opts, sizeof c->opts, "%s%s%s", fields[3],
                     tu_fixturef("attribute/%s/baseline.npy", c->net), b + 8);
        } else {
            snprintf(c->opts, sizeof c->opts, "%s", fields[3]);
        }
        n++;
    }
    fclose(f);
    return n;
}

static void check_net(const char *net)
{
    find_zfviz();
    static ref_case cases[64];
    const int n = read_cases(cases, 64);
    int done = 0;
    for (int i = 0; i < n; i++) {
        const ref_case *c = &cases[i];
        if (strcmp(c->net, net))
            continue;
        char dir[2048];
        snprintf(dir, sizeof dir, "%s", tu_tmpdir(c->name));
        const int rc = run_attribute(dir, net, c->opts);
        char path[4096];
        snprintf(path, sizeof path, "%s/err.txt", dir);
        char *msg = tu_read_file(path, NULL);
        cr_assert(rc == 0, "%s %s: exit %d: %s", net, c->name, rc, msg ? msg : "");
        free(msg);
        snprintf(path, sizeof path, "%s/input.%s.npy", dir, c->method);
        zf_tensor *got = read_npy(path);
        char ref_path[2048];
        snprintf(ref_path, sizeof ref_path, "%s", tu_fixturef("attribute/%s/ref/%s.npy", net, c->name));
        zf_tensor *ref = read_npy(ref_path);
        cr_assert(got->size == ref->size, "%s %s: %lld values, the reference %lld", net, c->name,
                  (long long)got->size, (long long)ref->size);
        size_t worst = 0;
        const double e = rel_l2(zf_tensor_f32(got), zf_tensor_f32(ref), (size_t)ref->size, &worst);
        cr_log_info("%-12s %-24s relative L2 error %.2e", net, c->name, e);
        cr_expect(e < REL_TOL, "%s %s: relative L2 error %.3g; largest difference at %zu: %.9g vs %.9g", net,
                  c->name, e, worst, zf_tensor_f32(got)[worst], zf_tensor_f32(ref)[worst]);
        snprintf(path, sizeof path, "%s/input.%s.png", dir, c->method);
        tu_rgb png = tu_png_read(path);
        /* the image beside the map, each scaled to 224 pixels, the numbers under the map */
        cr_expect(png.w > 2 * 224 + 24 && png.h > 224 + 60, "%s: a figure of %d x %d", path, png.w, png.h);
        free(png.px);
        zf_tensor_free(got);
        zf_tensor_free(ref);
        done++;
    }
    cr_assert(done > 0, "cases.tsv has no case for %s", net);
}

Test(attribute, alexnet_mini_matches_torch) { check_net("alexnet-mini"); }
Test(attribute, zfnet_mini_matches_torch) { check_net("zfnet-mini"); }
Test(attribute, alexnet_full_size_matches_torch) { check_net("alexnet"); }

/* The completeness error printed for `opts`, after checking the run and its printed line. */
static double ig_error(const char *dir, const char *opts, double *sum_out)
{
    cr_assert(run_attribute(dir, "alexnet-mini", opts) == 0, "zfviz attribute %s failed", opts);
    char path[4096];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    char *text = tu_read_file(path, NULL);
    cr_assert(text, "%s: missing", path);
    const char *at = strstr(text, "completeness error ");
    cr_assert(at, "no completeness error printed: %s", text);
    double e = strtod(at + strlen("completeness error "), NULL);
    free(text);
    snprintf(path, sizeof path, "%s/input.integrated-gradients.npy", dir);
    zf_tensor *a = read_npy(path);
    double s = 0;
    for (int64_t i = 0; i < a->size; i++)
        s += zf_tensor_f32(a)[i];
    zf_tensor_free(a);
    *sum_out = s;
    return e;
}

Test(attribute, integrated_gradients_completeness_printed_and_shrinking)
{
    find_zfviz();
    static ref_case cases[64];
    const int n = read_cases(cases, 64);
    const ref_case *c = NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(cases[i].net, "alexnet-mini") && !strcmp(cases[i].name, "ig-midpoint"))
            c = &cases[i];
    cr_assert(c, "cases.tsv has no ig-midpoint case for alexnet-mini");
    /* F(x) - F(x') from PyTorch in float64: the error against it must be what the command printed
     * (to the float32 rounding of the sum) and fall as the steps grow. */
    const double diff = strtod(c->diff, NULL);
    const char *cls = strstr(c->opts, "--class");
    cr_assert(cls);
    int k = atoi(cls + 8);
    const int steps[] = {2, 8, 32, 128};
    double errs[4];
    for (int i = 0; i < 4; i++) {
        char opts[1024], tag[32];
        snprintf(opts, sizeof opts, "--method integrated-gradients --class %d --baseline %s --steps %d", k,
                 tu_fixture("attribute/alexnet-mini/baseline.npy"), steps[i]);
        snprintf(tag, sizeof tag, "ig-steps-%d", steps[i]);
        char dir[2048];
        snprintf(dir, sizeof dir, "%s", tu_tmpdir(tag));
        double sum;
        const double printed = ig_error(dir, opts, &sum);
        errs[i] = fabs(sum - diff);
        cr_log_info("integrated gradients, %3d steps: completeness error %.3e (printed %.3e)", steps[i],
                    errs[i], printed);
        cr_expect(errs[i] <= printed * 1.001 + 1e-5 * fabs(diff) && printed <= errs[i] * 1.001 + 1e-5 * fabs(diff),
                  "%d steps: |sum - (F(x) - F(x'))| = %.6g against PyTorch, printed %.6g", steps[i], errs[i],
                  printed);
    }
    cr_expect(errs[3] < errs[0] && errs[2] < errs[0] && errs[3] < errs[1],
              "the completeness error does not fall with the steps: %.3g %.3g %.3g %.3g", errs[0], errs[1],
              errs[2], errs[3]);
}

/* Grad-CAM on a net small enough to do by hand: 4x4 grey input, conv 3x3 (2 channels) -> 2x2
 * maps, ReLU, flatten, fc to 3 classes. d logit_c / d A_k(p) is fc's weight W[c][k*4+p], so the
 * channel weights are its means, the map ReLU(sum_k w_k A_k), and the 2x2 -> 4x4 bilinear
 * upsampling with half-pixel centres takes, per axis, (1, 0), (3/4, 1/4), (1/4, 3/4), (0, 1). */
Test(gradcam, weights_and_map_by_hand)
{
    zf_net *net = zf_net_new("tiny", 1, 4, 4);
    cr_assert(net);
    cr_assert(!zf_net_add_conv(net, "conv1", 2, zf_win(3, 1, 0), 1));
    cr_assert(!zf_net_add_relu(net, "relu1"));
    cr_assert(!zf_net_add_flatten(net, "flatten"));
    cr_assert(!zf_net_add_fc(net, "fc", 3));
    cr_assert(!zf_net_finalize(net));
    zf_layer *conv = &net->layers[0], *fc = &net->layers[3];
    tu_fill_uniform(conv->weight, 18, 7, -1, 1);
    tu_fill_uniform(conv->bias, 2, 8, 0.2f, 0.5f);
    tu_fill_uniform(fc->weight, 24, 9, -1, 1);
    tu_fill_uniform(fc->bias, 3, 10, -1, 1);
    float x[16];
    tu_fill_uniform(x, 16, 11, -1, 1);
    /* A by hand */
    double A[2][4];
    for (int k = 0; k < 2; k++)
        for (int oy = 0; oy < 2; oy++)
            for (int ox = 0; ox < 2; ox++) {
                double s = conv->bias[k];
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++)
                        s += (double)conv->weight[k * 9 + ky * 3 + kx] * x[(oy + ky) * 4 + ox + kx];
                A[k][oy * 2 + ox] = s > 0 ? s : 0;
            }
    const double coef[4][2] = {{1, 0}, {0.75, 0.25}, {0.25, 0.75}, {0, 1}};
    zf_backprop *bp = NULL;
    cr_assert(!zf_backprop_new(net, 1, &bp), "%s", zf_last_error());
    for (int c = 0; c < 3; c++) {
        double w[2], map[4];
        for (int k = 0; k < 2; k++) {
            w[k] = 0;
            for (int p = 0; p < 4; p++)
                w[k] += fc->weight[c * 8 + k * 4 + p] / 4.0;
        }
        int any = 0;
        for (int p = 0; p < 4; p++) {
            const double s = w[0] * A[0][p] + w[1] * A[1][p];
            map[p] = s > 0 ? s : 0;
            any |= map[p] > 0;
        }
        float cam[16], weights[2], low[4];
        double value;
        zf_attr_target t = {3, c, -1, -1};
        cr_assert(!zf_attr_gradcam(bp, cam, weights, low, &value, x, 1, &t), "%s", zf_last_error());
        for (int k = 0; k < 2; k++)
            cr_expect(fabs(weights[k] - w[k]) < 1e-6, "class %d channel %d: weight %.9g, by hand %.9g", c, k,
                      weights[k], w[k]);
        for (int y = 0; y < 4; y++)
            for (int xx = 0; xx < 4; xx++) {
                double v = 0;
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++)
                        v += coef[y][i] * coef[xx][j] * map[i * 2 + j];
                cr_expect(fabs(cam[y * 4 + xx] - v) < 1e-6, "class %d at %d,%d: %.9g, by hand %.9g", c, y, xx,
                          cam[y * 4 + xx], v);
            }
        cr_log_info("class %d: weights %.4f %.4f, map %s", c, w[0], w[1], any ? "non-zero" : "all zero");
    }
    zf_backprop_free(bp);
    zf_net_free(net);
}

/* A .npy of float32 zeros of the given shape, written here byte by byte. */
/* A float32 .npy of `shape` (Python tuple text) holding data (count values; NULL: zeros). */
static void write_f32_npy(const char *path, const char *shape, const float *data, size_t count)
{
    char header[128];
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    const int total = 10 + len + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    const unsigned short hl = (unsigned short)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hl, 2, 1, f);
    fwrite(header, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    float z = 0;
    for (size_t i = 0; i < count; i++)
        fwrite(data ? &data[i] : &z, 4, 1, f);
    fclose(f);
}

static void write_zeros_npy(const char *path, const char *shape, size_t count)
{
    write_f32_npy(path, shape, NULL, count);
}

/* Each is refused with exit 2 and one line on stderr that says what is wrong (`says`). */
Test(attribute, refuses_bad_input)
{
    find_zfviz();
    char dir[2048], bad[2300];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("attribute-bad"));
    snprintf(bad, sizeof bad, "%s/bad-baseline.npy", dir);
    write_zeros_npy(bad, "(1, 1, 100, 112)", 100 * 112);
    char bad_opt[2400];
    snprintf(bad_opt, sizeof bad_opt, "--method integrated-gradients --baseline %s", bad);
    const struct {
        const char *opts, *says;
    } cases[] = {
        {"--method gradcam --cam-layer fc6", "flatten"},
        {"--method gradcam --cam-layer relu7", "flatten"},
        {"--method gradient --layer conv4 --channel 96", "channel 96 out of range"},
        {"--method gradient --layer relu3 --channel 0 --position 6,0", "position 6,0 out of range"},
        {"--method gradient --class 10", "channel 10 out of range"},
        {"--method gradient --layer nosuch --channel 0", "no layer 'nosuch'"},
        {bad_opt, "baseline of shape"},
        {"--method integrated-gradients --steps 0", "--steps"},
        {"--method saliency", "--method"},
        {"--method integrated-gradients --rule simpson", "--rule"},
        {"--method gradient --format svg", "--format"},
        {"--method gradient --baseline mean", "--baseline is for"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[2300];
        snprintf(out, sizeof out, "%s/out", dir);
        const int rc = run_attribute_log(out, dir, "alexnet-mini", cases[i].opts);
        char path[4096];
        snprintf(path, sizeof path, "%s/err.txt", dir);
        char *msg = tu_read_file(path, NULL);
        cr_assert(msg, "%s: missing", path);
        const char *nl = strchr(msg, '\n');
        cr_expect(nl && nl[1] == 0, "%s: not one line on stderr: %s", cases[i].opts, msg);
        cr_expect(strstr(msg, cases[i].says), "%s: stderr does not say '%s': %s", cases[i].opts, cases[i].says,
                  msg);
        cr_expect(access(out, F_OK) != 0, "%s: the output folder was made", cases[i].opts);
        free(msg);
        cr_expect(rc == 2, "%s: exit %d, not 2", cases[i].opts, rc);
    }
}

/* Writes n noise PNGs of 64 x 64 into folder `sub`, img000.png ... (seeded by `seed`). */
static void write_pngs(const char *sub, int n, unsigned seed)
{
    static uint8_t rgb[64 * 64 * 3];
    for (int k = 0; k < n; k++) {
        for (size_t i = 0; i < sizeof rgb; i++)
            rgb[i] = (uint8_t)(((i + 1) * (k * 7 + seed + 3) * 2654435761u) >> 13);
        char path[4400];
        snprintf(path, sizeof path, "%s/img%03d.png", sub, k);
        cr_assert(tu_write_png(path, 64, 64, rgb) == 0);
    }
}

static int same_bytes(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *da = tu_slurp(a, &la), *db = tu_slurp(b, &lb);
    const int same = da && db && la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return same;
}

/* A folder of images: one .npy and one figure per image; at --batch 1 each is the same bytes as the
 * command gives for that image alone, at the default batch of 16 the same values to within the
 * float32 sums' order (5e-7 to 6e-7 measured); same-named images in different subfolders write
 * to mirrored subfolders of the output, each its own. */
Test(attribute, folder_gives_each_image_its_own_files)
{
    find_zfviz();
    char dir[2048], sub[4096];
    tu_tmpdir_sub(dir, sub, "attribute-folder", "images");
    static uint8_t rgb[112 * 112 * 3];
    const char *names[] = {"a", "b", "deep/a"};
    char deep[4200];
    snprintf(deep, sizeof deep, "%s/deep", sub);
    cr_assert(mkdir(deep, 0755) == 0);
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < sizeof rgb; i++)
            rgb[i] = (uint8_t)((i * (k + 3) * 2654435761u) >> 13);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.png", sub, names[k]);
        cr_assert(tu_write_png(path, 112, 112, rgb) == 0);
    }
    char weights[2048];
    snprintf(weights, sizeof weights, "%s", tu_fixture("attribute/alexnet-mini/weights"));
    cr_assert(tu_system("%s attribute --arch alexnet-mini --weights %s --input %s --method guided-backprop "
                        "--batch 1 --out %s/all >/dev/null 2>&1", zfviz, weights, sub, dir) == 0);
    cr_assert(tu_system("%s attribute --arch alexnet-mini --weights %s --input %s --method guided-backprop "
                        "--out %s/batched >/dev/null 2>&1", zfviz, weights, sub, dir) == 0);
    for (int k = 0; k < 3; k++) {
        cr_assert(tu_system("%s attribute --arch alexnet-mini --weights %s --input %s/%s.png --method guided-backprop "
                            "--out %s/one-%d >/dev/null 2>&1", zfviz, weights, sub, names[k], dir, k) == 0);
        const char *base = strrchr(names[k], '/') ? strrchr(names[k], '/') + 1 : names[k];
        char a[4200], b[4200], c[4200];
        snprintf(a, sizeof a, "%s/all/%s.guided-backprop.npy", dir, names[k]);
        snprintf(b, sizeof b, "%s/one-%d/%s.guided-backprop.npy", dir, k, base);
        snprintf(c, sizeof c, "%s/batched/%s.guided-backprop.npy", dir, names[k]);
        cr_expect(same_bytes(a, b), "%s differs from %s", a, b);
        zf_tensor *ta = read_npy(a), *tc = read_npy(c);
        size_t worst = 0;
        const double e = rel_l2(zf_tensor_f32(tc), zf_tensor_f32(ta), (size_t)ta->size, &worst);
        cr_log_info("%s: batch 16 against batch 1: relative error %.2g", names[k], e);
        cr_expect(e < 2e-6, "%s: batch 16 differs from batch 1 by %.3g", names[k], e);
        zf_tensor_free(ta);
        zf_tensor_free(tc);
        snprintf(a, sizeof a, "%s/all/%s.guided-backprop.png", dir, names[k]);
        tu_rgb png = tu_png_read(a);
        cr_expect(png.w > 2 * 224 + 24 && png.h > 224 + 60, "%s: %d x %d", a, png.w, png.h);
        free(png.px);
    }
}

/* A run killed in the middle (SIGKILL, while it writes) and run again skips the images it
 * finished and ends with the bytes of one uninterrupted run. Integrated gradients, one image per
 * pass. */
Test(attribute, resumed_after_kill_gives_the_same_bytes)
{
    find_zfviz();
    char dir[2048], sub[4096];
    tu_tmpdir_sub(dir, sub, "attribute-resume", "images");
    const int n = 24;
    write_pngs(sub, n, 1);
    char weights[2048], cmd[16384];
    snprintf(weights, sizeof weights, "%s", tu_fixture("attribute/alexnet-mini/weights"));
    snprintf(cmd, sizeof cmd, "%s attribute --arch alexnet-mini --weights %s --input %s --method integrated-gradients "
             "--steps 24 --batch 8", zfviz, weights, sub);
    cr_assert(tu_system("%s --out %s/full >/dev/null 2>&1", cmd, dir) == 0);
    /* killed once 3 images are written */
    tu_system("%s --out %s/part >/dev/null 2>&1 & pid=$!; "
              "while kill -0 $pid 2>/dev/null && [ $(ls %s/part 2>/dev/null | grep -c 'npy$') -lt 3 ]; do sleep 0.01; done; "
              "kill -9 $pid; wait $pid", cmd, dir, dir);
    int written = 0;
    for (int k = 0; k < n; k++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/part/img%03d.integrated-gradients.png", dir, k); /* written last */
        written += access(p, F_OK) == 0;
    }
    cr_assert(written >= 2 && written < n, "the run was not stopped in the middle: %d of %d written", written, n);
    cr_assert(tu_system("%s --out %s/part >/dev/null 2>%s/err.txt", cmd, dir, dir) == 0);
    char path[2300];
    snprintf(path, sizeof path, "%s/err.txt", dir);
    char *err = tu_slurp(path, NULL), want[64];
    snprintf(want, sizeof want, "%d finished before", written);
    cr_expect(err && strstr(err, want), "stderr does not say '%s': %s", want, err);
    free(err);
    for (int k = 0; k < n; k++)
        for (int e = 0; e < 2; e++) {
            char a[4200], b[4200];
            snprintf(a, sizeof a, "%s/full/img%03d.integrated-gradients.%s", dir, k, e ? "png" : "npy");
            snprintf(b, sizeof b, "%s/part/img%03d.integrated-gradients.%s", dir, k, e ? "png" : "npy");
            cr_expect(same_bytes(a, b), "%s differs from %s", b, a);
        }
}

/* A batch of which some images are finished and some not (a run stopped while it wrote that
 * batch's files) is computed again whole, so that each image keeps the bytes the uninterrupted
 * run gave it: float sums at another batch size differ in the last bits. Other settings
 * recompute every image. */
Test(attribute, resumed_batch_gives_the_same_bytes)
{
    find_zfviz();
    char dir[2048], sub[4096];
    tu_tmpdir_sub(dir, sub, "attribute-resume-batch", "images");
    const int n = 11;
    write_pngs(sub, n, 2);
    char weights[2048], cmd[16384];
    snprintf(weights, sizeof weights, "%s", tu_fixture("attribute/alexnet-mini/weights"));
    snprintf(cmd, sizeof cmd, "%s attribute --arch alexnet-mini --weights %s --input %s --method gradient --batch 4",
             zfviz, weights, sub);
    cr_assert(tu_system("%s --out %s/full >/dev/null 2>&1", cmd, dir) == 0);
    cr_assert(tu_system("cp -r %s/full %s/part && cd %s/part && rm img005.gradient.npy img006.gradient.png "
                        "img010.gradient.npy", dir, dir, dir) == 0);
    cr_assert(tu_system("%s --out %s/part >%s/out.txt 2>&1", cmd, dir, dir) == 0);
    char path[2300];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    char *out = tu_slurp(path, NULL);
    /* batches 4..7 and 8..10 again, 0..3 skipped */
    cr_expect(out && strstr(out, "7 done now, 4 finished before") && !strstr(out, "img003:") && strstr(out, "img004:"),
              "%s", out);
    free(out);
    for (int k = 0; k < n; k++)
        for (int e = 0; e < 2; e++) {
            char a[4200], b[4200];
            snprintf(a, sizeof a, "%s/full/img%03d.gradient.%s", dir, k, e ? "png" : "npy");
            snprintf(b, sizeof b, "%s/part/img%03d.gradient.%s", dir, k, e ? "png" : "npy");
            cr_expect(same_bytes(a, b), "%s differs from %s", b, a);
        }
    /* another class: every image again */
    cr_assert(tu_system("%s --class 3 --out %s/part >%s/out.txt 2>&1", cmd, dir, dir) == 0);
    out = tu_slurp(path, NULL);
    cr_expect(out && strstr(out, "11 done now, 0 finished before"), "%s", out);
    free(out);
}

/* Peak memory (VmHWM of the zfviz process, from getrusage of a child that ran only it) over a
 * folder of 100 images is that over 10 to within 2 MiB: nothing is kept per image (one input
 * is 49 KiB, its attribution as much, its figure 300 KiB). */
static long peak_kib_of(const char *cmd)
{
    int fd[2];
    cr_assert(pipe(fd) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        long kib = -1;
        if (tu_system("%s", cmd) == 0) {
            struct rusage ru;
            getrusage(RUSAGE_CHILDREN, &ru);
            kib = ru.ru_maxrss;
        }
        if (write(fd[1], &kib, sizeof kib) != (ssize_t)sizeof kib)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    long kib = -1;
    cr_assert(read(fd[0], &kib, sizeof kib) == (ssize_t)sizeof kib);
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return kib;
}

Test(attribute, folder_memory_does_not_grow)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("the sanitizer's quarantine holds freed memory, which grows with the images (its leak "
                 "check covers what this test is for there)");
#endif
    find_zfviz();
    char dir[2048], sub[4096], small[4200], big[4200];
    tu_tmpdir_sub(dir, sub, "attribute-memory", "images");
    snprintf(small, sizeof small, "%s/10", sub);
    snprintf(big, sizeof big, "%s/100", sub);
    cr_assert(mkdir(small, 0755) == 0 && mkdir(big, 0755) == 0);
    write_pngs(small, 10, 3);
    write_pngs(big, 100, 3);
    char weights[2048], cmd[16384];
    snprintf(weights, sizeof weights, "%s", tu_fixture("attribute/alexnet-mini/weights"));
    long kib[2];
    for (int r = 0; r < 2; r++) {
        snprintf(cmd, sizeof cmd, "%s attribute --arch alexnet-mini --weights %s --input %s --method gradcam "
                 "--batch 4 --out %s/out%d >/dev/null 2>&1", zfviz, weights, r ? big : small, dir, r);
        kib[r] = peak_kib_of(cmd);
        cr_assert(kib[r] > 0, "%s failed", cmd);
    }
    cr_log_info("peak memory: %ld KiB for 10 images, %ld KiB for 100", kib[0], kib[1]);
    cr_expect(kib[1] - kib[0] < 2048, "peak memory grew from %ld KiB (10 images) to %ld KiB (100)", kib[0], kib[1]);
}

/* SmoothGrad is seeded: the same seed gives the same bytes, another seed other values. */
Test(attribute, smoothgrad_same_seed_same_bytes)
{
    find_zfviz();
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("attribute-seed"));
    const int seeds[] = {5, 5, 6};
    char *data[3];
    size_t len[3];
    for (int i = 0; i < 3; i++) {
        char out[2300], opts[128], path[2400];
        snprintf(out, sizeof out, "%s/run%d", dir, i);
        snprintf(opts, sizeof opts, "--method smoothgrad --samples 3 --seed %d", seeds[i]);
        cr_assert(run_attribute_log(out, dir, "alexnet-mini", opts) == 0, "%s failed", opts);
        snprintf(path, sizeof path, "%s/input.smoothgrad-gradient.npy", out);
        data[i] = tu_slurp(path, &len[i]);
    }
    cr_expect(len[0] == len[1] && memcmp(data[0], data[1], len[0]) == 0, "seed 5 twice: different bytes");
    cr_expect(len[0] == len[2] && memcmp(data[0], data[2], len[0]) != 0, "seeds 5 and 6: the same bytes");
    for (int i = 0; i < 3; i++)
        free(data[i]);
}

/* The deconvnet through the gradient path is zfviz deconv's projection of the same unit: that one
 * starts from the unit's activation, this one from 1, and the rule is positively homogeneous, so
 * deconv = value * attribution. The units: the strongest of a relu3 and of a conv4 channel (the
 * positions zfviz deconv picks and prints). */
Test(attribute, deconvnet_is_the_deconv_projection)
{
    find_zfviz();
    char dir[2048], weights[2048], input[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("attribute-deconv"));
    snprintf(weights, sizeof weights, "%s", tu_fixture("attribute/alexnet-mini/weights"));
    snprintf(input, sizeof input, "%s", tu_fixture("attribute/alexnet-mini/input.npy"));
    const struct {
        const char *conv, *relu;
        int channel;
    } units[] = {{"conv3", "relu3", 83}, {"conv4", "relu4", 7}, {"conv5", "relu5", 0}};
    int checked = 0;
    for (int u = 0; u < 3; u++) {
        char path[2300];
        snprintf(path, sizeof path, "%s/deconv.txt", dir);
        if (tu_system("%s deconv --arch alexnet-mini --weights %s --input %s --layer %s --channel %d --out %s/d.npy "
                      ">%s 2>/dev/null", zfviz, weights, input, units[u].conv, units[u].channel, dir, path) != 0)
            continue; /* the channel does not fire on this input */
        char *text = tu_slurp(path, NULL);
        int y = -1, x = -1;
        const char *at = strstr(text, " at y=");
        cr_assert(at && sscanf(at, " at y=%d x=%d", &y, &x) == 2, "no position printed: %s", text);
        free(text);
        char opts[256];
        snprintf(opts, sizeof opts, "--method deconvnet --layer %s --channel %d --position %d,%d", units[u].relu,
                 units[u].channel, y, x);
        cr_assert(run_attribute(dir, "alexnet-mini", opts) == 0, "%s failed", opts);
        snprintf(path, sizeof path, "%s/out.txt", dir);
        text = tu_slurp(path, NULL);
        const char *eq = strstr(text, " = ");
        cr_assert(eq, "no value printed: %s", text);
        const double value = strtod(eq + 3, NULL);
        free(text);
        snprintf(path, sizeof path, "%s/input.deconvnet.npy", dir);
        zf_tensor *a = read_npy(path);
        snprintf(path, sizeof path, "%s/d.npy", dir);
        zf_tensor *d = read_npy(path);
        cr_assert(a->size == d->size);
        float *scaled = malloc(sizeof(float) * (size_t)a->size);
        cr_assert(scaled);
        for (int64_t i = 0; i < a->size; i++)
            scaled[i] = (float)(value * zf_tensor_f32(a)[i]);
        size_t worst = 0;
        const double e = rel_l2(scaled, zf_tensor_f32(d), (size_t)d->size, &worst);
        cr_log_info("%s channel %d at %d,%d: value %.6g, relative L2 error against zfviz deconv %.2e",
                    units[u].relu, units[u].channel, y, x, value, e);
        cr_expect(value > 0 && e < REL_TOL, "%s: value %g, relative L2 error %.3g", opts, value, e);
        free(scaled);
        zf_tensor_free(a);
        zf_tensor_free(d);
        unlink(path);
        checked++;
    }
    cr_assert(checked >= 2, "only %d of the units fire on this input", checked);
}

/* The named baselines of integrated gradients: F at black (pixel 0 through the net's
 * preprocessing, the default) and at zero, printed by the command, against PyTorch's forward of
 * those inputs (baselines.tsv). */
Test(attribute, integrated_gradients_named_baselines)
{
    find_zfviz();
    const char *nets[] = {"alexnet-mini", "zfnet-mini"};
    for (int n = 0; n < 2; n++) {
        char *tsv = tu_slurp(tu_fixturef("attribute/%s/baselines.tsv", nets[n]), NULL);
        const char *names[] = {"black", "zero", NULL};
        for (int b = 0; b < 3; b++) {
            const char *key = names[b] ? names[b] : "black"; /* no --baseline: black */
            char pat[32];
            snprintf(pat, sizeof pat, "\n%s\t", key);
            const char *row = strstr(tsv, pat);
            cr_assert(row, "baselines.tsv has no %s", key);
            int cls = 0;
            double want = 0;
            cr_assert(sscanf(row + strlen(pat), "%d\t%lf", &cls, &want) == 2);
            char dir[2048], opts[256];
            snprintf(dir, sizeof dir, "%s", tu_tmpdir(key));
            snprintf(opts, sizeof opts, "--method integrated-gradients --steps 2 --class %d%s%s", cls,
                     names[b] ? " --baseline " : "", names[b] ? names[b] : "");
            cr_assert(run_attribute(dir, nets[n], opts) == 0, "%s %s failed", nets[n], opts);
            char path[2300];
            snprintf(path, sizeof path, "%s/out.txt", dir);
            char *text = tu_slurp(path, NULL);
            const char *at = strstr(text, "F(baseline) = ");
            cr_assert(at, "no F(baseline) printed: %s", text);
            const double got = strtod(at + strlen("F(baseline) = "), NULL);
            free(text);
            cr_log_info("%s %-5s baseline: F = %.9g, PyTorch %.9g", nets[n], names[b] ? names[b] : "(default)", got,
                        want);
            cr_expect(fabs(got - want) <= 1e-5 * fabs(want), "%s %s: F(baseline) %.9g, PyTorch %.9g", nets[n], opts,
                      got, want);
        }
        free(tsv);
    }
}

/* --baseline mean: every pixel the mean colour of all the images given (not of each image), the
 * same baseline for each: a two-image .npy gives both images the F(baseline) and attributions of
 * a baseline file holding that mean, computed here. */
Test(attribute, mean_baseline_is_the_mean_colour_of_all_images)
{
    find_zfviz();
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("attribute-mean"));
    zf_tensor *a = read_npy(tu_fixture("attribute/alexnet-mini/input.npy"));
    zf_tensor *b = read_npy(tu_fixture("attribute/alexnet-mini/baseline.npy"));
    const size_t in = (size_t)a->size;
    float *two = malloc(sizeof(float) * 2 * in), *mean = malloc(sizeof(float) * in);
    memcpy(two, zf_tensor_f32(a), sizeof(float) * in);
    memcpy(two + in, zf_tensor_f32(b), sizeof(float) * in);
    double sum = 0; /* the mini nets are grey: one channel */
    for (size_t i = 0; i < 2 * in; i++)
        sum += two[i];
    for (size_t i = 0; i < in; i++)
        mean[i] = (float)(sum / (2.0 * in));
    char two_path[2300], mean_path[2300];
    snprintf(two_path, sizeof two_path, "%s/two.npy", dir);
    snprintf(mean_path, sizeof mean_path, "%s/mean.npy", dir);
    write_f32_npy(two_path, "(2, 1, 112, 112)", two, 2 * in);
    write_f32_npy(mean_path, "(1, 1, 112, 112)", mean, in);
    char weights[2048];
    snprintf(weights, sizeof weights, "%s", tu_fixture("attribute/alexnet-mini/weights"));
    const char *bases[] = {"mean", mean_path};
    double fb[2][2];
    for (int r = 0; r < 2; r++) {
        cr_assert(tu_system("%s attribute --arch alexnet-mini --weights %s --input %s --method integrated-gradients "
                            "--steps 4 --class 1 --baseline %s --out %s/run%d >%s/out%d.txt 2>/dev/null", zfviz,
                            weights, two_path, bases[r], dir, r, dir, r) == 0);
        char path[2400];
        snprintf(path, sizeof path, "%s/out%d.txt", dir, r);
        char *text = tu_slurp(path, NULL);
        const char *at = text;
        for (int k = 0; k < 2; k++) {
            at = strstr(at, "F(baseline) = ");
            cr_assert(at, "no F(baseline) for image %d: %s", k, text);
            at += strlen("F(baseline) = ");
            fb[r][k] = strtod(at, NULL);
        }
        free(text);
    }
    cr_log_info("F(mean baseline) %.9g %.9g, of the mean computed here %.9g", fb[0][0], fb[0][1], fb[1][0]);
    cr_expect(fb[0][0] == fb[0][1], "two images, two mean baselines: F %.9g and %.9g", fb[0][0], fb[0][1]);
    cr_expect(fabs(fb[0][0] - fb[1][0]) <= 1e-7 * fabs(fb[1][0]), "F(mean) %.9g, of the mean here %.9g", fb[0][0],
              fb[1][0]);
    for (int k = 0; k < 2; k++) {
        char p0[2400], p1[2400];
        snprintf(p0, sizeof p0, "%s/run0/two-%d.integrated-gradients.npy", dir, k);
        snprintf(p1, sizeof p1, "%s/run1/two-%d.integrated-gradients.npy", dir, k);
        zf_tensor *g0 = read_npy(p0), *g1 = read_npy(p1);
        size_t worst = 0;
        const double e = rel_l2(zf_tensor_f32(g0), zf_tensor_f32(g1), in, &worst);
        cr_expect(e < 1e-6, "image %d: attributions with --baseline mean and with its file differ by %.3g", k, e);
        zf_tensor_free(g0);
        zf_tensor_free(g1);
    }
    free(two);
    free(mean);
    zf_tensor_free(a);
    zf_tensor_free(b);
}

/* --format pdf: a PDF figure (zfviz's, one page) whose text holds the numbers that define the
 * map as the command prints them: the target's value, F(baseline), the completeness error, the
 * baseline and steps; Grad-CAM's layer and the shape of its maps. */
Test(attribute, pdf_figure_shows_the_numbers)
{
    find_zfviz();
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("attribute-pdf"));
    cr_assert(run_attribute(dir, "alexnet-mini", "--method integrated-gradients --steps 6 --format pdf") == 0);
    char path[2400];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    char *out = tu_slurp(path, NULL);
    double f = 0, fb = 0, sum = 0, err = 0;
    const char *eq = strstr(out, " = ");
    cr_assert(eq && sscanf(eq, " = %lf; F(baseline) = %lf, sum of attributions %lf, completeness error %lf", &f, &fb,
                           &sum, &err) == 4, "%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/input.integrated-gradients.pdf", dir);
    cr_assert(zf_file_is_ours(path), "%s: not a PDF zfviz made", path);
    cr_assert(tu_system("pdftotext %s %s/pdf.txt", path, dir) == 0, "pdftotext (poppler-utils)");
    snprintf(path, sizeof path, "%s/pdf.txt", dir);
    char *text = tu_slurp(path, NULL);
    char want[5][96];
    snprintf(want[0], sizeof want[0], "F = %.9g", f);
    snprintf(want[1], sizeof want[1], "F(baseline) = %.9g", fb);
    snprintf(want[2], sizeof want[2], "completeness error = %.3g", err);
    snprintf(want[3], sizeof want[3], "sum of attributions = %.9g", sum);
    snprintf(want[4], sizeof want[4], "baseline black, 6 steps, midpoint rule");
    for (int i = 0; i < 5; i++)
        cr_expect(strstr(text, want[i]), "the PDF does not say '%s':\n%s", want[i], text);
    free(text);
    cr_assert(run_attribute(dir, "alexnet-mini", "--method gradcam --cam-layer conv3 --format pdf") == 0);
    snprintf(path, sizeof path, "%s/input.gradcam.pdf", dir);
    cr_assert(tu_system("pdftotext %s %s/pdf.txt", path, dir) == 0);
    snprintf(path, sizeof path, "%s/pdf.txt", dir);
    text = tu_slurp(path, NULL);
    cr_expect(strstr(text, "at conv3: 96 maps A_k of 6\xc3\x97" "6"), "the PDF does not name Grad-CAM's layer:\n%s", text);
    free(text);
}
