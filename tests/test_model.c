/* Whole-model files: the metadata rebuilds the same net (channels, classes, names, preprocessing),
 * the weights and a checkpoint's momentum come back bit for bit, from a file or from memory, and bad
 * files are refused with the file named. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "zf/model.h"

static zf_net *labelled_mini(void)
{
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin_ex("zfnet-mini", 1, 4, &net), ZF_OK);
    tu_fill_uniform(net->params, (size_t)net->n_params, 11, -1, 1);
    const char *names[] = {"cat", "dog, hound", "bird", "fish"};
    cr_assert_eq(zf_net_set_labels(net, 4, names), ZF_OK);
    net->pre.mean[0] = net->pre.mean[1] = net->pre.mean[2] = 0.25f;
    net->pre.std[0] = net->pre.std[1] = net->pre.std[2] = 0.5f;
    return net;
}

/* Parameters layer by layer (the block may hold alignment gaps between layers). */
static int same_params(const zf_net *a, const float *pa, const zf_net *b, const float *pb)
{
    for (int i = 0; i < a->n_layers; i++) {
        const zf_layer *l = &a->layers[i], *m = &b->layers[i];
        if (l->weight_count && memcmp(pa + (l->weight - a->params), pb + (m->weight - b->params),
                                      sizeof(float) * (size_t)l->weight_count))
            return 0;
        if (l->bias_count && memcmp(pa + (l->bias - a->params), pb + (m->bias - b->params),
                                    sizeof(float) * (size_t)l->bias_count))
            return 0;
    }
    return 1;
}

static void expect_same(const zf_net *a, const zf_net *b)
{
    cr_expect_str_eq(a->arch, b->arch);
    cr_expect_eq(a->in_c, b->in_c);
    cr_expect_eq(a->in_h, b->in_h);
    cr_expect_eq(a->n_params, b->n_params);
    cr_expect_eq(a->layers[a->n_layers - 2].out_c, b->layers[b->n_layers - 2].out_c);
    cr_expect(same_params(a, a->params, b, b->params), "weights differ");
    cr_expect_eq(a->n_labels, b->n_labels);
    for (int i = 0; i < a->n_labels && i < b->n_labels; i++)
        cr_expect_str_eq(a->labels[i], b->labels[i]);
    cr_expect_eq(a->pre.order, b->pre.order);
    cr_expect_eq(a->pre.resize, b->pre.resize);
    for (int c = 0; c < 3; c++) {
        cr_expect_eq(a->pre.mean[c], b->pre.mean[c]);
        cr_expect_eq(a->pre.std[c], b->pre.std[c]);
    }
}

Test(model, a_saved_model_rebuilds_the_same_net_from_file_and_memory)
{
    const char *dir = tu_tmpdir("model_roundtrip");
    char path[512];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    zf_net *net = labelled_mini(), *back;
    const char *kv[] = {"zfviz.train.command", "zfviz train --arch zfnet-mini", NULL};
    cr_assert_eq(zf_model_save(net, path, kv, NULL), ZF_OK);
    cr_expect(zf_model_is_whole(path));
    cr_assert_eq(zf_model_load(path, &back), ZF_OK, "%s", zf_last_error());
    expect_same(net, back);
    zf_meta m;
    cr_assert_eq(zf_model_read_meta(path, &m), ZF_OK);
    cr_expect_str_eq(zf_meta_get(&m, "zfviz.train.command"), "zfviz train --arch zfnet-mini");
    cr_expect_str_eq(zf_meta_get(&m, "zfviz.classes"), "4");
    cr_expect_null(zf_meta_get(&m, "no.such.key"));
    zf_meta_free(&m);
    zf_net_free(back);
    /* from memory, as the embedded models are read */
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *bytes = malloc((size_t)len);
    cr_assert_eq(fread(bytes, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    cr_assert_eq(zf_model_load_memory(bytes, (size_t)len, "embedded", &back), ZF_OK, "%s", zf_last_error());
    expect_same(net, back);
    zf_net_free(back);
    /* cut short: refused, named */
    cr_expect_neq(zf_model_load_memory(bytes, (size_t)len - 100, "cut", &back), ZF_OK);
    cr_expect(strstr(zf_last_error(), "cut"), "%s", zf_last_error());
    free(bytes);
    zf_net_free(net);
}

Test(model, a_checkpoint_brings_back_its_momentum_and_plain_loading_ignores_it)
{
    const char *dir = tu_tmpdir("model_ckpt");
    char path[512];
    snprintf(path, sizeof path, "%s/c.ckpt", dir);
    zf_net *net = labelled_mini();
    float *mom = malloc(sizeof(float) * (size_t)net->n_params), *back_mom = calloc((size_t)net->n_params, sizeof(float));
    tu_fill_uniform(mom, (size_t)net->n_params, 12, -3, 3);
    cr_assert_eq(zf_model_save(net, path, NULL, mom), ZF_OK);
    zf_net *back;
    cr_assert_eq(zf_net_new_builtin_ex("zfnet-mini", 1, 4, &back), ZF_OK);
    zf_meta m;
    cr_assert_eq(zf_model_load_checkpoint(back, path, back_mom, &m), ZF_OK, "%s", zf_last_error());
    cr_expect(same_params(back, back->params, net, net->params), "weights differ");
    cr_expect(same_params(back, back_mom, net, mom), "momentum differs");
    zf_meta_free(&m);
    zf_net_free(back);
    cr_assert_eq(zf_model_load(path, &back), ZF_OK, "%s", zf_last_error());
    cr_expect(same_params(back, back->params, net, net->params), "weights differ");
    zf_net_free(back);
    free(mom);
    free(back_mom);
    zf_net_free(net);
}

Test(model, weights_only_files_and_wrong_metadata_are_refused_by_name)
{
    const char *dir = tu_tmpdir("model_bad");
    char plain[512], bad[512];
    snprintf(plain, sizeof plain, "%s/plain.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    zf_net *net = labelled_mini(), *back;
    cr_assert_eq(zf_net_save_safetensors(net, plain), ZF_OK);
    cr_expect(!zf_model_is_whole(plain));
    cr_expect_eq(zf_model_load(plain, &back), ZF_ERR_FORMAT);
    cr_expect(strstr(zf_last_error(), plain) && strstr(zf_last_error(), "--arch"), "%s", zf_last_error());
    /* metadata that does not fit the tensors: 5 classes for a file with 4 */
    const char *kv[] = {"zfviz.classes", "5", NULL};
    cr_assert_eq(zf_model_save(net, bad, kv, NULL), ZF_OK);
    cr_expect_neq(zf_model_load(bad, &back), ZF_OK);
    cr_expect(strstr(zf_last_error(), bad), "%s", zf_last_error());
    cr_expect_eq(zf_model_load("/nonexistent/m.safetensors", &back), ZF_ERR_IO);
    zf_net_free(net);
}
