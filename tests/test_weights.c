/* Weights: the seeded initialisation is the documented generator (checked against its Python
 * twin) with N(0, 0.01) statistics; .npy folders and safetensors files round-trip, files written
 * by numpy and by a hand-written Python safetensors writer load as numpy converts them, and every
 * wrong shape, missing or stray tensor is refused with the file named. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "zf/file.h"
#include "zf/io.h"
#include "zf/net.h"

/* The net of tests/fixtures/gen_weights.py. */
static zf_net *small_net(void)
{
    zf_net *net = zf_net_new("small", 3, 9, 11);
    cr_assert(net);
    cr_assert_eq(zf_net_add_conv(net, "c1", 6, zf_win(3, 1, 1), 1), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_relu(net, "r1"), ZF_OK);
    cr_assert_eq(zf_net_add_maxpool(net, "p1", zf_win(2, 2, 0), 0), ZF_OK);
    cr_assert_eq(zf_net_add_conv(net, "c2", 4, zf_win(3, 1, 1), 2), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_add_flatten(net, "flat"), ZF_OK);
    cr_assert_eq(zf_net_add_fc(net, "f1", 7), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_finalize(net), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_param_count(net), 6 * 27 + 6 + 4 * 27 + 4 + 7 * 80 + 7);
    return net;
}

static zf_net *fc_net(const char *name, int in, int out)
{
    zf_net *net = zf_net_new("fc", in, 1, 1);
    cr_assert(net);
    cr_assert_eq(zf_net_add_fc(net, name, out), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_finalize(net), ZF_OK, "%s", zf_last_error());
    return net;
}

static const char *wfx(const char *rel) { return tu_fixturef("weights/%s", rel); }

/* The layers of small_net() with weights. */
static const char *const small_layers[3] = {"c1", "c2", "f1"};

/* Compares the whole parameter blocks (the alignment padding between tensors stays zero). */
static void expect_same_params(const zf_net *a, const zf_net *b, const char *what)
{
    cr_assert_eq(a->n_params, b->n_params);
    for (int64_t i = 0; i < a->n_params; i++)
        cr_assert(!memcmp(&a->params[i], &b->params[i], 4), "%s: parameter %lld is %.9g, expected %.9g",
                  what, (long long)i, (double)a->params[i], (double)b->params[i]);
}

static void expect_error_naming(zf_status st, const char *file, const char *w1, const char *w2)
{
    const char *m = zf_last_error();
    cr_assert_neq(st, ZF_OK, "%s was accepted", file);
    cr_assert(strstr(m, file), "message does not name %s: %s", file, m);
    if (w1)
        cr_assert(strstr(m, w1), "message lacks '%s': %s", w1, m);
    if (w2)
        cr_assert(strstr(m, w2), "message lacks '%s': %s", w2, m);
}

static void expect_tensor_equals(const float *got, const char *npy, int64_t n)
{
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(npy, &t), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(t->size, n, "%s: %lld values, layer has %lld", npy, (long long)t->size, (long long)n);
    for (int64_t i = 0; i < n; i++)
        cr_assert(!memcmp(&got[i], &zf_tensor_f32(t)[i], 4), "%s: value %lld is %.9g, expected %.9g",
                  npy, (long long)i, (double)got[i], (double)zf_tensor_f32(t)[i]);
    zf_tensor_free(t);
}

Test(weights, random_init_is_the_documented_generator)
{
    zf_net *net = small_net();
    for (int64_t i = 0; i < net->n_params; i++)
        net->params[i] = 1.0f; /* biases must be reset, not left */
    cr_assert_eq(zf_net_init_random(net, 7), ZF_OK, "%s", zf_last_error());
    for (int k = 0; k < 3; k++) {
        zf_layer *l = &net->layers[zf_net_find(net, small_layers[k])];
        expect_tensor_equals(l->weight, tu_fixturef("weights/random_seed7/%s.weight.npy", small_layers[k]), l->weight_count);
        for (int64_t i = 0; i < l->bias_count; i++)
            cr_assert_eq(l->bias[i], 0.0f, "%s bias %lld not zero", small_layers[k], (long long)i);
    }
    zf_net_free(net);
    /* Two blocks of 65536: the second has its own stream. */
    net = fc_net("big", 300, 400);
    cr_assert_eq(zf_net_init_random(net, 7), ZF_OK);
    expect_tensor_equals(net->layers[0].weight, wfx("random_seed7/big.weight.npy"), 120000);
    zf_net_free(net);
}

Test(weights, random_init_is_normal_0_001_and_seeded)
{
    zf_net *a = fc_net("fc", 4096, 1001), *b = fc_net("fc", 4096, 1001), *c = fc_net("fc", 4096, 1001);
    cr_assert_eq(zf_net_load_weights(a, "random:42"), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_init_random(b, 42), ZF_OK);
    cr_assert_eq(zf_net_init_random(c, 43), ZF_OK);
    const float *w = a->layers[0].weight;
    int64_t n = a->layers[0].weight_count;
    double sum = 0, sum2 = 0, sum4 = 0;
    int64_t in1 = 0, same_c = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = w[i];
        sum += v;
        sum2 += v * v;
        sum4 += v * v * v * v;
        in1 += fabs(v) < 0.01;
        same_c += w[i] == c->layers[0].weight[i];
    }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean), kurt = sum4 / n / (sd * sd * sd * sd);
    cr_log_info("n %lld: mean %.3g, std %.6g, kurtosis %.4f, within 1 sd %.5f", (long long)n, mean, sd,
                kurt, (double)in1 / n);
    /* Sampling errors for n = 4.1e6: mean 5e-6, std 3.5e-6, P(|z|<1) 2.3e-4, kurtosis 1.2e-3. */
    cr_expect(fabs(mean) < 3e-5, "mean %g", mean);
    cr_expect(fabs(sd - 0.01) < 3e-5, "std %g", sd);
    cr_expect(fabs((double)in1 / n - 0.682689) < 2e-3, "P(|z| < 1) = %g", (double)in1 / n);
    cr_expect(fabs(kurt - 3.0) < 0.02, "kurtosis %g", kurt);
    cr_expect_eq(memcmp(a->params, b->params, sizeof(float) * (size_t)a->n_params), 0,
                 "same seed, different weights");
    cr_expect_lt(same_c, n / 1000, "seeds 42 and 43 share %lld of %lld weights", (long long)same_c,
                 (long long)n);
    for (int64_t i = 0; i < a->layers[0].bias_count; i++)
        cr_assert_eq(a->layers[0].bias[i], 0.0f);
    zf_net_free(a);
    zf_net_free(b);
    zf_net_free(c);
}

Test(weights, npy_folder_round_trips_in_pytorch_layout)
{
    zf_net *a = small_net(), *b = small_net();
    cr_assert_eq(zf_net_init_random(a, 3), ZF_OK);
    for (int i = 0; i < a->n_layers; i++)
        for (int64_t k = 0; k < a->layers[i].bias_count; k++)
            a->layers[i].bias[k] = (float)(k + 1) * 0.125f * (float)(i + 1);
    const char *dir = tu_tmpdir("w_npy_rt");
    char sub[2048];
    snprintf(sub, sizeof sub, "%.2000s/w", dir); /* created by the save */
    cr_assert_eq(zf_net_save_npy_dir(a, sub), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_load_weights(b, sub), ZF_OK, "%s", zf_last_error());
    expect_same_params(b, a, "npy folder round trip");
    char path[4096];
    snprintf(path, sizeof path, "%s/c2.weight.npy", sub);
    zf_tensor *t = NULL;
    cr_assert_eq(zf_npy_read(path, &t), ZF_OK);
    cr_assert(t->ndim == 4 && t->shape[0] == 4 && t->shape[1] == 3 && t->shape[2] == 3 && t->shape[3] == 3,
              "c2.weight saved with the wrong shape");
    zf_tensor_free(t);
    zf_net_free(a);
    zf_net_free(b);
}

Test(weights, loads_numpy_written_npy_folder)
{
    zf_net *net = small_net();
    cr_assert_eq(zf_net_load_npy_dir(net, wfx("small_npy")), ZF_OK, "%s", zf_last_error());
    for (int k = 0; k < 3; k++) {
        zf_layer *l = &net->layers[zf_net_find(net, small_layers[k])];
        expect_tensor_equals(l->weight, tu_fixturef("weights/small_npy/%s.weight.npy", small_layers[k]), l->weight_count);
        expect_tensor_equals(l->bias, tu_fixturef("weights/small_npy/%s.bias.npy", small_layers[k]), l->bias_count);
    }
    zf_net_free(net);
}

/* A copy of the numpy-written folder to damage. */
static const char *copy_small_npy(const char *tag)
{
    const char *dir = tu_tmpdir(tag);
    cr_assert_eq(tu_system("cp '%s'/*.npy '%s'/", wfx("small_npy"), dir), 0);
    return dir;
}

Test(weights, npy_folder_wrong_shape_names_the_file_and_both_shapes)
{
    zf_file_set_force(1); /* it writes over copies of files numpy made */
    const char *dir = copy_small_npy("w_npy_shape");
    char path[4096];
    snprintf(path, sizeof path, "%s/c2.weight.npy", dir);
    float v[108] = {0};
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, v, 4, (int64_t[]){4, 6, 3, 3 / 2}), ZF_OK);
    zf_net *net = small_net();
    expect_error_naming(zf_net_load_npy_dir(net, dir), path, "(4, 3, 3, 3)", "(4, 6, 3, 1)");
    /* A bias saved as (1, 4) instead of (4). */
    cr_assert_eq(tu_system("cp '%s'/c2.weight.npy '%s'/", wfx("small_npy"), dir), 0);
    snprintf(path, sizeof path, "%s/c2.bias.npy", dir);
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_F32, v, 2, (int64_t[]){1, 4}), ZF_OK);
    expect_error_naming(zf_net_load_npy_dir(net, dir), path, "(4,)", "(1, 4)");
    /* Integers are not weights. */
    cr_assert_eq(zf_npy_write_raw(path, ZF_DTYPE_I32, v, 1, (int64_t[]){4}), ZF_OK);
    expect_error_naming(zf_net_load_npy_dir(net, dir), path, "floats", NULL);
    zf_net_free(net);
}

Test(weights, npy_folder_missing_or_stray_file_is_named)
{
    const char *dir = copy_small_npy("w_npy_missing");
    char path[4096];
    snprintf(path, sizeof path, "%s/f1.bias.npy", dir);
    cr_assert_eq(remove(path), 0);
    zf_net *net = small_net();
    expect_error_naming(zf_net_load_npy_dir(net, dir), path, "missing", NULL);
    cr_assert_eq(tu_system("cp '%s'/f1.bias.npy '%s'/", wfx("small_npy"), dir), 0);
    cr_assert_eq(zf_net_load_npy_dir(net, dir), ZF_OK, "%s", zf_last_error());
    /* Weights for a layer this net lacks (another architecture's, or torchvision's names). */
    cr_assert_eq(tu_system("cp '%s'/c1.weight.npy '%s'/features.0.weight.npy", wfx("small_npy"), dir), 0);
    expect_error_naming(zf_net_load_npy_dir(net, dir), "features.0.weight.npy", "features.0", NULL);
    snprintf(path, sizeof path, "%s/features.0.weight.npy", dir);
    remove(path);
    /* A bias for a layer without parameters. */
    cr_assert_eq(tu_system("cp '%s'/c1.bias.npy '%s'/r1.bias.npy", wfx("small_npy"), dir), 0);
    expect_error_naming(zf_net_load_npy_dir(net, dir), "r1.bias.npy", NULL, NULL);
    zf_net_free(net);
}

Test(weights, safetensors_round_trips_with_a_valid_header)
{
    zf_net *a = small_net(), *b = small_net();
    cr_assert_eq(zf_net_init_random(a, 5), ZF_OK);
    a->layers[zf_net_find(a, "f1")].bias[6] = -3.5f;
    const char *dir = tu_tmpdir("w_st_rt");
    char path[4096];
    snprintf(path, sizeof path, "%s/small.safetensors", dir);
    cr_assert_eq(zf_net_save_safetensors(a, path), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_load_weights(b, path), ZF_OK, "%s", zf_last_error());
    expect_same_params(b, a, "safetensors round trip");

    /* The layout as the format defines it, checked with an independent JSON parse. */
    FILE *f = fopen(path, "rb");
    unsigned char len8[8];
    cr_assert(fread(len8, 1, 8, f) == 8);
    uint64_t hn = 0;
    for (int i = 0; i < 8; i++)
        hn |= (uint64_t)len8[i] << (8 * i);
    cr_assert_eq(hn % 8, 0, "header length %llu not a multiple of 8", (unsigned long long)hn);
    char *hdr = calloc(1, hn + 1);
    cr_assert(fread(hdr, 1, hn, f) == hn);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    cr_assert_eq((uint64_t)size, 8 + hn + 4 * (uint64_t)zf_net_param_count(a));
    json_error_t e;
    json_t *root = json_loads(hdr, 0, &e);
    cr_assert(root, "header is not JSON: %s", e.text);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "__metadata__"), "arch")), "small");
    json_t *cw = json_object_get(root, "c2.weight");
    cr_assert_str_eq(json_string_value(json_object_get(cw, "dtype")), "F32");
    json_t *sh = json_object_get(cw, "shape");
    cr_assert_eq(json_array_size(sh), 4);
    int64_t want[4] = {4, 3, 3, 3};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(json_integer_value(json_array_get(sh, (size_t)i)), want[i]);
    json_t *offs = json_object_get(json_object_get(root, "f1.bias"), "data_offsets");
    cr_assert_eq(json_integer_value(json_array_get(offs, 1)), 4 * zf_net_param_count(a), "f1.bias is not last");
    float last;
    f = fopen(path, "rb");
    fseek(f, (long)(8 + hn + (uint64_t)json_integer_value(json_array_get(offs, 0)) + 24), SEEK_SET);
    cr_assert(fread(&last, 4, 1, f) == 1);
    fclose(f);
    cr_assert_eq(last, -3.5f);
    json_decref(root);
    free(hdr);
    zf_net_free(a);
    zf_net_free(b);
}

Test(weights, loads_safetensors_written_by_python_in_every_float_dtype)
{
    const char *dtypes[] = {"f32", "f16", "bf16", "f64"};
    for (int k = 0; k < 4; k++) {
        char st[64], ex[64];
        snprintf(st, sizeof st, "small_%s.safetensors", dtypes[k]);
        snprintf(ex, sizeof ex, "expect_%s", dtypes[k]);
        zf_net *a = small_net(), *b = small_net();
        cr_assert_eq(zf_net_load_safetensors(a, wfx(st)), ZF_OK, "%s: %s", st, zf_last_error());
        cr_assert_eq(zf_net_load_npy_dir(b, wfx(ex)), ZF_OK, "%s: %s", ex, zf_last_error());
        expect_same_params(a, b, st);
        zf_net_free(a);
        zf_net_free(b);
    }
}

Test(weights, refuses_bad_safetensors_naming_the_file)
{
    struct {
        const char *file, *word;
    } cases[] = {
        {"bad_gap.safetensors", "after its header"},
        {"bad_overlap.safetensors", "overlapping"},
        {"bad_wrong_shape.safetensors", "(4, 3, 3, 3)"},
        {"bad_missing.safetensors", "f1.bias"},
        {"bad_extra.safetensors", "f9.weight"},
        {"bad_int_dtype.safetensors", "I32"},
        {"bad_offsets_past_end.safetensors", "offsets"},
        {"bad_json.safetensors", "header"},
        {"bad_length.safetensors", "header length"},
    };
    zf_net *net = small_net();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = wfx(cases[i].file);
        expect_error_naming(zf_net_load_safetensors(net, p), p, cases[i].word, NULL);
    }
    /* Truncated copies of a good file. */
    const char *dir = tu_tmpdir("w_st_cut");
    long cuts[] = {0, 5, 8, 100, 2000, 3000};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/cut%ld.safetensors", dir, cuts[i]);
        cr_assert_eq(tu_system("head -c %ld '%s' > '%s'", cuts[i], wfx("small_f32.safetensors"), path), 0);
        expect_error_naming(zf_net_load_safetensors(net, path), path, NULL, NULL);
    }
    zf_net_free(net);
}

Test(weights, load_weights_dispatches_and_rejects_bad_specs)
{
    zf_net *a = small_net(), *b = small_net();
    cr_assert_eq(zf_net_load_weights(a, "random:12"), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_init_random(b, 12), ZF_OK);
    expect_same_params(a, b, "random:12");
    const char *bad[] = {"random:", "random:-1", "random:1x", "random:99999999999999999999999"};
    for (int i = 0; i < 4; i++)
        expect_error_naming(zf_net_load_weights(a, bad[i]), bad[i], "seed", NULL);
    expect_error_naming(zf_net_load_weights(a, "/nonexistent/w"), "/nonexistent/w", NULL, NULL);
    const char *txt = wfx("small_npy/c1.bias.npy");
    expect_error_naming(zf_net_load_weights(a, txt), txt, ".safetensors", NULL);
    cr_assert_neq(zf_net_load_weights(a, ""), ZF_OK);
    cr_assert_eq(zf_net_load_weights(a, wfx("small_f32.safetensors")), ZF_OK, "%s", zf_last_error());
    cr_assert_eq(zf_net_load_weights(b, wfx("small_npy")), ZF_OK, "%s", zf_last_error());
    expect_same_params(a, b, "the same weights as safetensors and as .npy");
    zf_net_free(a);
    zf_net_free(b);
    zf_net *raw = zf_net_new("raw", 10, 1, 1);
    cr_assert_eq(zf_net_add_fc(raw, "f1", 3), ZF_OK);
    cr_assert_eq(zf_net_load_weights(raw, "random:1"), ZF_ERR_ARG, "weights into a net without parameters");
    cr_assert_eq(zf_net_load_safetensors(raw, wfx("small_f32.safetensors")), ZF_ERR_ARG);
    zf_net_free(raw);
}
