/* The engine table (zf/engine.h) and --device: the CPU engine through the table gives exactly what
 * core's direct calls give (forward, read, deconvnet, occlusion, backward); --device cuda where no
 * GPU can be used stops every command that runs a net with one line and exit 2 (where a GPU is
 * usable, the command runs instead); --device cpu writes the bytes of no option; --device auto
 * names the engine on the first line. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/attribution.h"
#include "zf/engine.h"
#include "zf/io.h"
#include "zf/net.h"
#include "zf/occlusion.h"
#include "zf/tensor.h"
#include "zf/train.h"

#define OK(x) cr_assert_eq((x), ZF_OK, "%s: %s", #x, zf_last_error())

/* ---- the table against core's direct calls ---- */

static zf_net *mini(uint64_t seed)
{
    zf_net *net = NULL;
    OK(zf_net_new_builtin("alexnet-mini", &net));
    OK(zf_net_init_random(net, seed));
    return net;
}

/* The first index where a and b differ bit for bit, or -1. */
static long first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)))
            return (long)i;
    return -1;
}

Test(engine, cpu_is_registered_first_and_parses_devices)
{
    const zf_engine_iface *const *list = zf_engine_list();
    cr_assert(list[0] && !strcmp(list[0]->name, "cpu"), "the cpu engine comes first");
    cr_assert_eq(zf_engine_find("cpu"), list[0]);
    cr_assert_null(zf_engine_find("tpu"));
    for (int op = 0; op < ZF_ENGINE_OP_COUNT; op++)
        cr_expect(list[0]->supports((zf_engine_op)op), "the cpu engine has %s", zf_engine_op_name((zf_engine_op)op));
    char name[32];
    int dev = -1;
    OK(zf_engine_parse("cuda:3", name, sizeof name, &dev));
    cr_expect(!strcmp(name, "cuda") && dev == 3);
    OK(zf_engine_parse("gpu", name, sizeof name, &dev));
    cr_expect(!strcmp(name, "cuda") && dev == 0);
    OK(zf_engine_parse(NULL, name, sizeof name, &dev));
    cr_expect(!strcmp(name, "auto"));
    const char *bad[] = {"cuda:", "cuda:x", "cuda:-1", "cpu:1", "tpu", "cuda:1x", ""};
    for (size_t i = 0; i + 1 < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(zf_engine_parse(bad[i], name, sizeof name, &dev), ZF_ERR_ARG, "'%s' refused", bad[i]);
}

Test(engine, auto_without_a_usable_gpu_takes_the_cpu_and_says_why)
{
    const zf_engine_iface *e = NULL;
    int dev = -1, fallback = -1;
    char note[512];
    const unsigned all = ~0u >> (32 - ZF_ENGINE_OP_COUNT);
    OK(zf_engine_select("auto", all, &e, &dev, &fallback, note, sizeof note));
    cr_assert(e && dev == 0, "%s", note);
    const int no_driver =
        access("/dev/nvidiactl", F_OK) && access("/proc/driver/nvidia/version", F_OK) && access("/dev/dxg", F_OK);
    if (zf_engine_find("cuda") && !strcmp(e->name, "cuda")) {
        /* a usable GPU: auto takes it for every op, the backward pass included */
        cr_expect(!no_driver && !strncmp(note, "cuda: ", 6) && strstr(note, "(auto)"), "%s", note);
        cr_expect_eq(fallback, 0);
    } else if (zf_engine_find("cuda")) {
        cr_expect(!strcmp(e->name, "cpu") && !strncmp(note, "cpu: ", 5), "%s", note);
        cr_expect_eq(fallback, 1);
        /* without a driver, auto tells so without loading the engine; with one, the device's reason */
        if (no_driver)
            cr_expect(strstr(note, "cuda: no CUDA device: the NVIDIA driver is not loaded"), "%s", note);
        else
            cr_expect(strstr(note, "cuda: "), "%s", note);
        /* named, it is refused in one message, never a fallback */
        zf_status st = zf_engine_select("cuda", all, &e, &dev, &fallback, note, sizeof note);
        cr_expect(st == ZF_ERR_DEVICE || st == ZF_ERR_UNSUPPORTED, "status %d", st);
        cr_expect_null(e);
    } else {
        cr_expect(!strcmp(e->name, "cpu") && strstr(note, "built without another engine"), "%s", note);
        cr_expect_eq(zf_engine_select("cuda", 0, &e, &dev, &fallback, note, sizeof note), ZF_ERR_UNSUPPORTED);
        cr_expect(strstr(zf_last_error(), "built without the CUDA engine"), "%s", zf_last_error());
    }
    OK(zf_engine_select("cpu", all, &e, &dev, &fallback, note, sizeof note));
    cr_expect(!strcmp(e->name, "cpu") && fallback == 0);
}

Test(engine, cpu_forward_read_deconv_occlusion_backward_equal_the_direct_calls)
{
    zf_net *a = mini(11), *b = mini(11);
    const int n = 3;
    const size_t in_size = (size_t)zf_net_in_size(a);
    float *x = malloc(sizeof(float) * n * in_size);
    tu_fill_uniform(x, n * in_size, 5, -1.5f, 1.5f);
    zf_engine *e = NULL;
    zf_engine_opts o = {.device = 0, .batch = n};
    OK(zf_engine_open(zf_engine_find("cpu"), a, &o, &e));
    cr_assert(!strcmp(zf_engine_name(e), "cpu") && zf_engine_net(e) == a);
    OK(zf_net_reserve(b, n));

    /* forward up to conv3 and every layer to the end, read back into separate memory */
    const int conv3 = zf_net_find(a, "conv3"), last = a->n_layers - 1;
    cr_assert(conv3 > 0);
    const int ups[] = {conv3, last};
    for (int k = 0; k < 2; k++) {
        OK(zf_engine_forward(e, x, n, ups[k]));
        OK(zf_net_forward_upto(b, x, n, ups[k]));
        for (int l = -1; l <= ups[k]; l++) {
            const size_t cnt = (size_t)n * (l < 0 ? in_size : (size_t)zf_layer_out_size(&b->layers[l]));
            float *got = malloc(sizeof(float) * cnt);
            OK(zf_engine_read(e, l, got, n));
            long at = first_diff(got, zf_net_act(b, l), cnt);
            cr_expect_eq(at, -1, "forward to %d: layer %d differs at %ld", ups[k], l, at);
            free(got);
        }
    }
    /* the forward with reads into the net's own buffers, as the scan and the tools use it */
    OK(zf_engine_forward_layers(e, x, n, conv3, (const int[]){1, conv3}, 2));
    OK(zf_net_forward_upto(b, x, n, conv3));
    for (int l = 0; l <= conv3; l++) {
        long at = first_diff(a->acts[l], b->acts[l], (size_t)n * (size_t)zf_layer_out_size(&b->layers[l]));
        cr_expect_eq(at, -1, "forward_layers to conv3: layer %d differs at %ld", l, at);
    }
    cr_expect_eq(zf_engine_forward(e, x, n, a->n_layers), ZF_ERR_ARG, "a layer past the end is refused");
    cr_expect_eq(zf_engine_read(e, a->n_layers, x, n), ZF_ERR_ARG);

    /* deconvnet: a unit at its strongest position and a whole map, after a forward to conv5's ReLU */
    const int conv5 = zf_net_find(a, "conv5");
    int ch[3] = {0, 5, 2}, ya[3] = {-1, -1, 1}, xa[3] = {-1, -1, 2}, yb[3] = {-1, -1, 1}, xb[3] = {-1, -1, 2};
    float *pa = malloc(sizeof(float) * n * in_size), *pb = malloc(sizeof(float) * n * in_size);
    for (int mode = 0; mode < 2; mode++) {
        zf_deconv_req ra = {conv5, mode ? ZF_DECONV_MAP : ZF_DECONV_UNIT, 0, ch, ya, xa};
        zf_deconv_req rb = {conv5, mode ? ZF_DECONV_MAP : ZF_DECONV_UNIT, 0, ch, yb, xb};
        OK(zf_engine_forward(e, x, n, zf_engine_deconv_last(a, &ra)));
        OK(zf_engine_deconv(e, pa, n, &ra));
        OK(zf_net_forward(b, x, n));
        OK(zf_net_deconv(b, pb, n, &rb));
        long at = first_diff(pa, pb, (size_t)n * in_size);
        cr_expect_eq(at, -1, "deconv mode %d differs at %ld", mode, at);
        cr_expect(tu_max_abs(pa, (size_t)n * in_size) > 0, "a projection that is not all zero");
        cr_expect(!memcmp(ya, yb, sizeof ya) && !memcmp(xa, xb, sizeof xa), "the positions written back");
    }

    /* occlusion, both methods */
    for (int m = 0; m < 2; m++) {
        zf_occlusion_params p;
        zf_occlusion_params_default(&p);
        p.patch = 23;
        p.stride = 13;
        p.method = m ? ZF_OCCLUSION_INCREMENTAL : ZF_OCCLUSION_BRUTE;
        zf_occlusion_result *ra = NULL, *rb = NULL;
        OK(zf_engine_occlusion(e, x, &p, &ra));
        OK(zf_occlusion_run(b, x, &p, &rb));
        cr_assert(ra->rows == rb->rows && ra->cols == rb->cols && ra->rows > 1);
        const size_t cells = (size_t)ra->rows * ra->cols;
        cr_expect_eq(first_diff(ra->feature, rb->feature, cells), -1, "method %d feature", m);
        cr_expect_eq(first_diff(ra->prob, rb->prob, cells), -1, "method %d prob", m);
        cr_expect(!memcmp(ra->argmax, rb->argmax, cells * sizeof(int32_t)), "method %d argmax", m);
        cr_expect(ra->channel == rb->channel && ra->cls == rb->cls && ra->method == rb->method);
        zf_occlusion_result_free(ra);
        zf_occlusion_result_free(rb);
    }

    /* backward from fc8 (the logits) to the input, against zf_net_backward on the other net */
    const int fc8 = zf_net_find(a, "fc8");
    cr_assert(fc8 > 0);
    const size_t top = (size_t)zf_layer_out_size(&a->layers[fc8]);
    float *dtop = calloc((size_t)n * top, sizeof(float));
    for (int i = 0; i < n; i++)
        dtop[(size_t)i * top + (size_t)i] = 1; /* class i of image i */
    OK(zf_engine_forward(e, x, n, last));
    OK(zf_engine_backward(e, pa, dtop, fc8, -1, n, ZF_RELU_RULE_GRADIENT));
    zf_backprop *bp = NULL;
    OK(zf_backprop_new(b, n, &bp));
    OK(zf_net_forward(b, x, n));
    OK(zf_net_backward(bp, pb, dtop, fc8, -1, n, ZF_RELU_RULE_GRADIENT));
    long at = first_diff(pa, pb, (size_t)n * in_size);
    cr_expect_eq(at, -1, "backward differs at %ld", at);
    cr_expect(tu_max_abs(pa, (size_t)n * in_size) > 0, "a gradient that is not all zero");
    /* the ReLU rule passes through the table: guided backpropagation */
    OK(zf_engine_backward(e, pa, dtop, fc8, -1, n, ZF_RELU_RULE_GUIDED));
    OK(zf_net_backward(bp, pb, dtop, fc8, -1, n, ZF_RELU_RULE_GUIDED));
    at = first_diff(pa, pb, (size_t)n * in_size);
    cr_expect_eq(at, -1, "guided backward differs at %ld", at);
    cr_expect_eq(zf_engine_backward(e, pa, dtop, fc8, -1, n, 3), ZF_ERR_ARG);

    /* reserve beyond the opening batch, then a forward of the larger batch */
    OK(zf_engine_reserve(e, n + 2));
    cr_expect_eq(zf_engine_reserve(e, 0), ZF_ERR_ARG);
    zf_backprop_free(bp);
    free(dtop);
    free(pa);
    free(pb);
    free(x);
    zf_engine_close(e);
    zf_engine_close(NULL);
    zf_net_free(a);
    zf_net_free(b);
}

/* n grey 28x28 images of noise labelled i % classes (Fashion-MNIST's shape), in memory. */
static zf_dataset *tiny_set(int n, int classes, uint64_t seed)
{
    zf_dataset *d = calloc(1, sizeof *d);
    cr_assert(d);
    d->n = n;
    d->c = 1;
    d->h = d->w = 28;
    d->pixels = malloc((size_t)n * 28 * 28);
    d->labels = malloc(sizeof(int32_t) * (size_t)n);
    cr_assert(d->pixels && d->labels);
    for (size_t i = 0; i < (size_t)n * 28 * 28; i++)
        d->pixels[i] = (uint8_t)(tu_mix(&seed) >> 56);
    for (int i = 0; i < n; i++)
        d->labels[i] = i % classes;
    d->n_classes = classes;
    snprintf(d->source, sizeof d->source, "noise");
    return d;
}

Test(engine, evaluate_through_the_table_scores_as_the_test_does)
{
    zf_net *a = mini(4), *b = mini(4);
    zf_dataset *ds = tiny_set(13, 10, 21);
    zf_engine *e = NULL;
    zf_engine_opts o = {.device = 0, .batch = 1};
    OK(zf_engine_open(zf_engine_find("cpu"), a, &o, &e));
    double t1 = -1, t5 = -1, loss = -1;
    OK(zf_engine_evaluate(e, ds, 5, &t1, &t5, &loss, NULL, NULL)); /* batches of 5, 5 and 3 */
    /* the reference: one plain forward per image, ranks (ties to the lower index) and the
     * cross-entropy counted here in double */
    /* the logits: the layer before the final softmax */
    cr_assert_eq(b->layers[b->n_layers - 1].op, ZF_OP_SOFTMAX);
    const int last = b->n_layers - 2, k = b->layers[last].out_c;
    OK(zf_net_reserve(b, 1));
    int c1 = 0, c5 = 0;
    double nll = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        int32_t label;
        OK(zf_dataset_batch(b->input, &label, ds, &i, 1, b, NULL, 0));
        OK(zf_net_forward(b, b->input, 1));
        const float *z = zf_net_act(b, last);
        int above = 0;
        double m = -INFINITY, s = 0;
        for (int j = 0; j < k; j++) {
            above += z[j] > z[label] || (z[j] == z[label] && j < label);
            m = z[j] > m ? z[j] : m;
        }
        for (int j = 0; j < k; j++)
            s += exp((double)z[j] - m);
        c1 += above == 0;
        c5 += above < 5;
        nll += m + log(s) - z[label];
    }
    cr_expect(t1 == (double)c1 / ds->n && t5 == (double)c5 / ds->n, "top-1 %g/%g top-5 %g/%g", t1,
              (double)c1 / ds->n, t5, (double)c5 / ds->n);
    cr_expect(fabs(loss - nll / ds->n) <= 1e-6 * fabs(nll / ds->n), "loss %.17g, by hand %.17g", loss, nll / ds->n);
    cr_expect(t5 >= t1 && t5 > 0 && loss > 0, "plausible: top-1 %g, top-5 %g, loss %g", t1, t5, loss);
    ds->n_classes = 7; /* against a net of 10 classes */
    cr_expect_eq(zf_engine_evaluate(e, ds, 5, &t1, &t5, &loss, NULL, NULL), ZF_ERR_SHAPE);
    zf_dataset_free(ds);
    zf_engine_close(e);
    zf_net_free(a);
    zf_net_free(b);
}

/* An abort callback that asks to stop at its fourth call. */
static int stop_at_fourth(void *ctx)
{
    int *calls = ctx;
    return ++*calls >= 4;
}

Test(engine, cancellation_is_the_abort_callback_and_its_default_atomic_flag)
{
    zf_net *net = mini(2);
    const size_t in_size = (size_t)zf_net_in_size(net);
    float *x = malloc(sizeof(float) * in_size);
    tu_fill_uniform(x, in_size, 9, -1, 1);
    zf_engine *e = NULL;
    zf_engine_opts o = {.device = 0, .batch = 1};
    OK(zf_engine_open(zf_engine_find("cpu"), net, &o, &e));
    zf_occlusion_params p;
    zf_occlusion_params_default(&p);
    p.patch = 17;
    p.stride = 9;
    p.batch = 4; /* 121 positions: 31 batches, the callback asked between them */
    p.method = ZF_OCCLUSION_BRUTE;
    zf_occlusion_result *r = (zf_occlusion_result *)1;
    int calls = 0;
    zf_set_abort_callback(stop_at_fourth, &calls);
    cr_expect(!zf_interrupted && !zf_interrupted && !zf_interrupted && zf_interrupted, "read through the callback");
    calls = 0;
    zf_status st = zf_engine_occlusion(e, x, &p, &r);
    const int seen = calls;
    zf_set_abort_callback(NULL, NULL);
    cr_expect_eq(st, ZF_ERR_INTERRUPTED, "status %d: %s", st, zf_last_error());
    cr_expect_null(r);
    cr_expect_eq(seen, 4, "stopped at the callback's first yes (%d calls)", seen);
    /* the default: the flag that the SIGINT handler sets */
    cr_expect(!zf_interrupted);
    zf_abort_request();
    cr_expect(zf_interrupted);
    cr_expect_eq(zf_engine_occlusion(e, x, &p, &r), ZF_ERR_INTERRUPTED);
    zf_abort_clear();
    OK(zf_engine_occlusion(e, x, &p, &r));
    cr_expect_eq(r->rows * r->cols, 121);
    zf_occlusion_result_free(r);
    zf_engine_close(e);
    zf_net_free(net);
    free(x);
}

/* ---- --device on the command line ---- */

static const char *zfviz(void)
{
    static char path[4096]; /* tu_build's buffer is shared with the other tu_ paths */
    if (!path[0])
        snprintf(path, sizeof path, "%s", tu_build("tools/zfviz"));
    return path;
}

/* Whether this machine has a GPU the cuda engine can use (then the no-GPU checks are skipped). */
static int gpu_usable(void)
{
    return zf_engine_find("cuda") && tu_system("'%s' gpuinfo >/dev/null 2>&1", zfviz()) == 0;
}

static int lines_of(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* A small input for the commands: one grey 112x112 PNG (the embedded alexnet-mini's size). */
static void write_input(const char *dir)
{
    uint8_t *rgb = malloc(112 * 112 * 3);
    for (int i = 0; i < 112 * 112 * 3; i++)
        rgb[i] = (uint8_t)((i * 37 + (i / 336) * 11) & 0xff);
    char p[4096];
    snprintf(p, sizeof p, "%s/img/a.png", dir);
    cr_assert_eq(tu_system("mkdir -p '%s/img'", dir), 0);
    cr_assert_eq(tu_write_png(p, 112, 112, rgb), 0);
    free(rgb);
}

/* Every command that runs a net, with what it needs to get as far as running it. */
static const char *const commands[] = {
    "forward --input img/a.png",
    "deconv --input img/a.png --layer conv1 --channel 0 --out y.npy",
    "occlude --input img/a.png -o occ",
    "scan --images img --db s.db",
    "topk --db s.db --layer conv1 --unit 0 --deconv",
    "sheet --db s.db --layer conv1 -o sheet.png",
    "report --db s.db -o report.pdf",
    "eval --data img",
    "train --data img --epochs 1 --out m.safetensors",
    "demo -o demo --quick",
    "activations --input img/a.png --layer conv1 -o act.png",
    "attribute --input img/a.png --method gradient --out att",
    "optimize --layer conv2 --units 0 --steps 2 --out opt",
    "invariance img/a.png --out inv",
    "correspond img/a.png img/a.png --part p=1,1,8,8 --out corr.csv",
    "compare --layer conv2 --images img -o cmp.png",
    "probe --limit 10 --test-limit 10",
    "evolve --db run.sqlite --layer conv1 --out evo.png",
};

Test(device, cuda_without_a_gpu_is_one_line_and_exit_2_for_every_command)
{
    if (gpu_usable())
        cr_skip_test("a GPU is usable here: device.cuda_runs_where_a_gpu_is checks the commands instead");
    char dir[2048]; /* tu_tmpdir's buffer is shared with tu_build's */
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("device_nogpu"));
    write_input(dir);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        for (int k = 0; k < 2; k++) {
            const char *spec = k ? "cuda:1" : "cuda";
            int rc = tu_system("cd '%s' && '%s' %s --device %s > out 2> err", dir, zfviz(), commands[i], spec);
            char p[4096];
            snprintf(p, sizeof p, "%s/err", dir);
            char *err = tu_read_file(p, NULL);
            snprintf(p, sizeof p, "%s/out", dir);
            char *out = tu_read_file(p, NULL);
            cr_assert(err && out);
            cr_expect_eq(rc, 2, "%s --device %s: exit %d, stderr: %s", commands[i], spec, rc, err);
            cr_expect_eq(lines_of(err), 1, "%s --device %s: one line, got: %s", commands[i], spec, err);
            cr_expect(strstr(err, "--device cuda") &&
                          (strstr(err, "CUDA") || strstr(err, "built without the CUDA engine")),
                      "%s: the line names the reason: %s", commands[i], err);
            cr_expect_eq(out[0], '\0', "%s: nothing on stdout: %s", commands[i], out);
            free(err);
            free(out);
        }
    }
    /* nothing was made: no output of any command, no fallback to the CPU */
    cr_expect_eq(tu_system("cd '%s' && test -z \"$(ls | grep -v -x -e img -e out -e err)\"", dir), 0,
                 "a command wrote something");
}

Test(device, cuda_runs_where_a_gpu_is)
{
    if (!gpu_usable())
        cr_skip_test("no usable GPU here (device.cuda_without_a_gpu_... checks the refusal instead)");
    char dir[2048]; /* tu_tmpdir's buffer is shared with tu_build's */
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("device_gpu"));
    write_input(dir);
    cr_expect_eq(tu_system("cd '%s' && '%s' forward --input img/a.png --device cuda", dir, zfviz()), 0);
    cr_expect_eq(tu_system("cd '%s' && '%s' deconv --input img/a.png --layer conv1 --channel 0 --out y.npy "
                           "--device cuda", dir, zfviz()), 0);
    cr_expect_eq(tu_system("cd '%s' && '%s' occlude --input img/a.png -o occ --device cuda", dir, zfviz()), 0);
    cr_expect_eq(tu_system("cd '%s' && '%s' scan --images img --db s.db --device cuda", dir, zfviz()), 0);
    /* the gradient methods on the device give the CPU's maps to float rounding */
    for (int k = 0; k < 2; k++)
        cr_expect_eq(tu_system("cd '%s' && '%s' attribute --input img/a.png --method guided-backprop --out att%d "
                               "--device %s > /dev/null", dir, zfviz(), k, k ? "cuda" : "cpu"), 0);
    zf_tensor *maps[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/att%d/a.guided-backprop.npy", dir, k);
        OK(zf_npy_read(p, &maps[k]));
    }
    cr_assert_eq(maps[0]->size, maps[1]->size);
    size_t at;
    const double e = tu_max_rel_err_f((const float *)maps[1]->data, (const float *)maps[0]->data,
                                      (size_t)maps[0]->size, tu_max_abs((const float *)maps[0]->data,
                                                                        (size_t)maps[0]->size), &at);
    cr_expect(e <= 1e-4, "guided backprop on the GPU: rel err %g at %zu", e, at);
    zf_tensor_free(maps[0]);
    zf_tensor_free(maps[1]);
    cr_expect_eq(tu_system("cd '%s' && '%s' optimize --layer conv2 --units 0 --steps 2 --out opt --device cuda "
                           "> /dev/null", dir, zfviz()), 0);
    cr_expect_eq(tu_system("cd '%s' && '%s' attribute --input img/a.png --method gradient --out att9 --device cuda "
                           "--precision tf32 2> err", dir, zfviz()), 2);
    /* eval is not refused (this folder has no class folders: it fails later, exit 1) */
    cr_expect_neq(tu_system("cd '%s' && '%s' eval --data img --device cuda 2> err", dir, zfviz()), 2);
    /* the paper's experiments on the device (probe and evolve need data this folder lacks) */
    static const char *const paper[] = {"invariance img/a.png --out inv",
                                        "correspond img/a.png img/a.png --part p=1,1,8,8 --out corr.csv",
                                        "compare --layer conv2 --images img -o cmp.png"};
    for (size_t i = 0; i < sizeof paper / sizeof paper[0]; i++)
        cr_expect_eq(tu_system("cd '%s' && '%s' %s --device cuda > /dev/null", dir, zfviz(), paper[i]), 0, "%s",
                     paper[i]);
    /* train on the device: two classes of one image each, one epoch (test_cuda's cuda_train compares
     * the loop with the CPU's) */
    cr_expect_eq(tu_system("cd '%s' && mkdir -p cls/a cls/b && cp img/a.png cls/a/1.png && cp img/a.png cls/b/2.png && "
                           "'%s' train --data cls --arch alexnet-mini --epochs 1 --batch 2 --val 0 --out m.safetensors "
                           "--device cuda > out", dir, zfviz()), 0);
    cr_expect_eq(tu_system("cd '%s' && grep -q 'on cuda' out && test -s m.safetensors", dir), 0);
}

/* The bytes of every file the command wrote (in path order) and its stdout, for comparison; with
 * `timed`, not its stdout or summary.json, which say how long it took. */
static char *run_capture(const char *dir, const char *sub, const char *env, const char *cmd, const char *device,
                         int timed)
{
    int rc = tu_system("cd '%s' && rm -rf %s && mkdir %s && cd %s && %s '%s' %s %s > stdout 2> ../err.%s", dir, sub, sub,
                       sub, env, zfviz(), cmd, device, sub);
    cr_assert_eq(rc, 0, "%s %s: exit %d", cmd, device, rc);
    char p[4096];
    snprintf(p, sizeof p, "cd '%s/%s' && find . -type f %s | LC_ALL=C sort | while read f; do echo \"== $f\"; "
                          "od -An -tx1 -v \"$f\"; done > ../all.%s", dir, sub,
             timed ? "! -name stdout ! -name summary.json" : "", sub);
    cr_assert_eq(tu_system("%s", p), 0);
    snprintf(p, sizeof p, "%s/all.%s", dir, sub);
    char *all = tu_read_file(p, NULL);
    cr_assert(all);
    return all;
}

Test(device, cpu_writes_the_bytes_of_no_option)
{
    char dir[2048]; /* tu_tmpdir's buffer is shared with tu_build's */
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("device_cpu"));
    write_input(dir);
    cr_assert_eq(tu_system("cd '%s' && mkdir -p in && cp img/a.png in/", dir), 0);
    const char *cmds[] = {
        "forward --input ../in/a.png --dump conv1,fc8 --out d",
        /* units that fire on this input in the embedded alexnet-mini (one that does not is refused) */
        "deconv --input ../in/a.png --layer conv2 --channel 0 --out y.npy",
        "deconv --input ../in/a.png --layer conv1 --channel 1 --map --out m.npy",
        "occlude --input ../in/a.png -o occ --patch 23 --stride 13",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const int timed = strstr(cmds[i], "occlude") != NULL;
        /* the default with no GPU visible is the CPU engine on any machine; --device cpu must be too */
        char *plain = run_capture(dir, "a", "CUDA_VISIBLE_DEVICES=", cmds[i], "", timed);
        char *cpu = run_capture(dir, "b", "", cmds[i], "--device cpu", timed);
        cr_expect(strlen(plain) > 100, "%s wrote files", cmds[i]);
        cr_expect(!strcmp(plain, cpu), "%s: --device cpu wrote other bytes than no option", cmds[i]);
        free(plain);
        free(cpu);
    }
}

/* --precision bf16 on the cpu: forward's fc8 moves from float32's by bfloat16's rounding (more than
 * float32's, less than 5%), deconv and activations run; a command whose cpu path does not go
 * through the engine refuses it with one line and exit 2, as does tf32. */
Test(device, bf16_on_the_cpu_runs_where_the_engine_runs_and_is_refused_elsewhere)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("device_bf16"));
    write_input(dir);
    for (int b = 0; b < 2; b++)
        cr_assert_eq(tu_system("cd '%s' && '%s' forward --input img/a.png --device cpu --dump fc8 --out d%d %s > out 2> err",
                               dir, zfviz(), b, b ? "--precision bf16" : ""),
                     0);
    zf_tensor *t[2] = {NULL, NULL};
    for (int b = 0; b < 2; b++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/d%d/fc8.npy", dir, b);
        OK(zf_npy_read(p, &t[b]));
    }
    const float *f32 = zf_tensor_f32(t[0]), *bf = zf_tensor_f32(t[1]);
    double se = 0, sr = 0;
    cr_assert_eq(t[0]->size, t[1]->size);
    for (int64_t i = 0; i < t[0]->size; i++) {
        se += ((double)f32[i] - bf[i]) * ((double)f32[i] - bf[i]);
        sr += (double)f32[i] * f32[i];
    }
    cr_expect(sqrt(se / sr) > 1e-4 && sqrt(se / sr) < 5e-2, "bf16 fc8 differs from float32's by %.2g (relative L2)",
              sqrt(se / sr));
    zf_tensor_free(t[0]);
    zf_tensor_free(t[1]);
    cr_expect_eq(tu_system("cd '%s' && '%s' deconv --input img/a.png --layer conv2 --channel 0 --out y.npy --device cpu "
                           "--precision bf16 > out 2> err",
                           dir, zfviz()),
                 0);
    const char *refused[] = {"scan --images img --db s.db", "eval --data img", "occlude --input img/a.png -o occ",
                             "attribute --input img/a.png --method gradient --out att"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cr_expect_eq(tu_system("cd '%s' && '%s' %s --device cpu --precision bf16 > out 2> err", dir, zfviz(), refused[i]), 2,
                     "%s --precision bf16", refused[i]);
        char p[4096];
        snprintf(p, sizeof p, "%s/err", dir);
        char *err = tu_read_file(p, NULL);
        cr_expect(err && lines_of(err) == 1 && strstr(err, "bf16"), "%s: %s", refused[i], err ? err : "");
        free(err);
    }
    cr_expect_eq(tu_system("cd '%s' && '%s' forward --input img/a.png --device cpu --precision tf32 > out 2> err", dir,
                           zfviz()),
                 2);
}

Test(device, auto_names_the_engine_on_the_first_line)
{
    char dir[2048]; /* tu_tmpdir's buffer is shared with tu_build's */
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("device_auto"));
    write_input(dir);
    cr_assert_eq(tu_system("cd '%s' && '%s' forward --input img/a.png --device auto > out 2> err", dir, zfviz()), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/err", dir);
    char *err = tu_read_file(p, NULL);
    cr_assert(err);
    const char *want = gpu_usable() ? "zfviz forward: device cuda: " : "zfviz forward: device cpu: ";
    cr_expect(!strncmp(err, want, strlen(want)), "first line '%s...', got: %s", want, err);
    free(err);
    /* the same choice through the table: cpu in a build or on a machine without a usable GPU */
    snprintf(p, sizeof p, "%s/out", dir);
    char *out = tu_read_file(p, NULL);
    cr_expect(out && strstr(out, "image 0"), "it ran: %s", out ? out : "");
    free(out);
}

/* The dynamic loader's own log (LD_DEBUG=files) says which libraries a process mapped: a command on
 * the CPU maps none of the CUDA engine's (its module, the CUDA runtime, cuBLAS), on a machine with
 * or without a GPU, and a command that asks for the CUDA engine loads its module. */
Test(device, the_cuda_libraries_are_loaded_only_for_the_cuda_engine)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir("device_lazy"));
    write_input(dir);
    const char *runs[] = {"forward --input img/a.png --device cpu", "info", "scan --images img --db s.db",
                          "forward --input img/a.png --device cuda", "gpuinfo"};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        const int wants_cuda = i >= 3;
        int rc = tu_system("cd '%s' && LD_DEBUG=files '%s' %s > out 2> err", dir, zfviz(), runs[i]);
        char p[4096];
        snprintf(p, sizeof p, "%s/err", dir);
        char *err = tu_read_file(p, NULL);
        cr_assert(err);
        if (!wants_cuda) {
            cr_expect_eq(rc, 0, "%s: exit %d", runs[i], rc);
            cr_expect(!strstr(err, "libzfviz_cuda") && !strstr(err, "libcudart") && !strstr(err, "libcublas"),
                      "%s mapped a CUDA library", runs[i]);
        } else if (zf_engine_find("cuda")) {
            cr_expect(strstr(err, "file=") && strstr(err, "libzfviz_cuda.so"), "%s did not load the module",
                      runs[i]);
        }
        free(err);
    }
}
