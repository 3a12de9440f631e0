/* The trainer: one SGD step against a hand computation, ZF's renormalisation rule, the whole-net
 * gradient against finite differences, resume after a kill against an uninterrupted run, and a
 * small run that must learn. The per-op gradients are checked in test_backward.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "zf/dataset.h"
#include "zf/model.h"
#include "zf/train.h"

/* fc (in -> k) + softmax: the smallest trainable net, for sums done by hand. */
static zf_net *tiny_fc(int in, int k)
{
    zf_net *net = zf_net_new("tiny", in, 1, 1);
    cr_assert(net);
    cr_assert_eq(zf_net_add_flatten(net, "flatten"), ZF_OK);
    cr_assert_eq(zf_net_add_fc(net, "fc1", k), ZF_OK);
    cr_assert_eq(zf_net_add_softmax(net, "prob"), ZF_OK);
    cr_assert_eq(zf_net_finalize(net), ZF_OK);
    return net;
}

Test(sgd, two_steps_match_a_hand_computation)
{
    enum { IN = 3, K = 4, N = 2 };
    zf_net *net = tiny_fc(IN, K);
    zf_layer *l = &net->layers[1];
    tu_fill_uniform(l->weight, IN * K, 1, -0.5f, 0.5f);
    tu_fill_uniform(l->bias, K, 2, -0.2f, 0.2f);
    float x[N * IN];
    tu_fill_uniform(x, N * IN, 3, -1, 1);
    int32_t y[N] = {2, 0};
    const double lr = 0.1, mom = 0.9, wd = 0.01;
    /* By hand, in double: W (K, IN), b (K), velocity v. */
    double W[K][IN], b[K], vW[K][IN] = {{0}}, vb[K] = {0};
    for (int i = 0; i < K; i++) {
        b[i] = l->bias[i];
        for (int j = 0; j < IN; j++)
            W[i][j] = l->weight[i * IN + j];
    }
    zf_trainer *t;
    cr_assert_eq(zf_trainer_new(net, N, &t), ZF_OK);
    zf_sgd opt = {(float)lr, (float)mom, (float)wd, 0};
    for (int step = 0; step < 2; step++) {
        double gW[K][IN] = {{0}}, gb[K] = {0}, loss = 0;
        for (int n = 0; n < N; n++) {
            double z[K], m = -1e300, s = 0;
            for (int i = 0; i < K; i++) {
                z[i] = b[i];
                for (int j = 0; j < IN; j++)
                    z[i] += W[i][j] * x[n * IN + j];
                m = fmax(m, z[i]);
            }
            for (int i = 0; i < K; i++)
                s += exp(z[i] - m);
            loss += (log(s) + m - z[y[n]]) / N;
            for (int i = 0; i < K; i++) {
                double d = (exp(z[i] - m) / s - (i == y[n])) / N;
                gb[i] += d;
                for (int j = 0; j < IN; j++)
                    gW[i][j] += d * x[n * IN + j];
            }
        }
        for (int i = 0; i < K; i++) {
            vb[i] = mom * vb[i] + gb[i]; /* biases are not decayed */
            b[i] -= lr * vb[i];
            for (int j = 0; j < IN; j++) {
                vW[i][j] = mom * vW[i][j] + gW[i][j] + wd * W[i][j];
                W[i][j] -= lr * vW[i][j];
            }
        }
        double got_loss;
        cr_assert_eq(zf_trainer_backprop(t, x, y, N, 7, &got_loss, NULL), ZF_OK);
        cr_expect(fabs(got_loss - loss) < 1e-5, "step %d: loss %.8f, by hand %.8f", step, got_loss, loss);
        zf_trainer_update(t, &opt);
    }
    for (int i = 0; i < K; i++) {
        cr_expect(fabs(l->bias[i] - b[i]) < 1e-6, "bias %d: %.8f vs %.8f", i, l->bias[i], b[i]);
        for (int j = 0; j < IN; j++)
            cr_expect(fabs(l->weight[i * IN + j] - W[i][j]) < 1e-6, "weight %d,%d: %.8f vs %.8f", i, j,
                      l->weight[i * IN + j], W[i][j]);
    }
    zf_trainer_free(t);
    zf_net_free(net);
}

Test(renorm, scales_filters_above_the_radius_to_it_and_leaves_the_rest)
{
    zf_net *net = zf_net_new("r", 2, 9, 9);
    cr_assert_eq(zf_net_add_conv(net, "conv1", 4, zf_win(3, 1, 0), 1), ZF_OK);
    cr_assert_eq(zf_net_add_conv(net, "conv2", 4, zf_win(3, 1, 0), 2), ZF_OK);
    cr_assert_eq(zf_net_finalize(net), ZF_OK);
    const float radius = 0.1f;
    double before_rms[9];
    float before[9][18];
    int f = 0, expect_scaled = 0;
    for (int li = 0; li < 2; li++) {
        zf_layer *l = &net->layers[li];
        int per = (int)(l->weight_count / l->out_c);
        for (int k = 0; k < l->out_c; k++, f++) {
            float *w = l->weight + k * per;
            /* RMS from 0.02 to 0.34: some filters below, some above the radius */
            tu_fill_uniform(w, (size_t)per, 10 + (uint64_t)f, -1, 1);
            double ss = 0;
            for (int j = 0; j < per; j++)
                ss += (double)w[j] * w[j];
            double target = 0.02 + 0.04 * f, s = target / sqrt(ss / per);
            for (int j = 0; j < per; j++)
                w[j] = (float)(w[j] * s);
            before_rms[f] = target;
            memcpy(before[f], w, sizeof(float) * (size_t)per);
            expect_scaled += target > radius;
        }
    }
    cr_assert_eq(zf_net_renorm_filters(net, radius), expect_scaled);
    f = 0;
    for (int li = 0; li < 2; li++) {
        zf_layer *l = &net->layers[li];
        int per = (int)(l->weight_count / l->out_c);
        for (int k = 0; k < l->out_c; k++, f++) {
            const float *w = l->weight + k * per;
            double ss = 0;
            for (int j = 0; j < per; j++)
                ss += (double)w[j] * w[j];
            double rms = sqrt(ss / per);
            if (before_rms[f] > radius) {
                cr_expect(fabs(rms - radius) < 1e-6, "filter %d: rms %.8f after, radius %.2f", f, rms, radius);
                for (int j = 0; j < per; j++) /* same direction */
                    cr_expect(fabs(w[j] - before[f][j] * radius / before_rms[f]) < 1e-6);
            } else {
                cr_expect(memcmp(w, before[f], sizeof(float) * (size_t)per) == 0, "filter %d changed", f);
            }
        }
    }
    zf_net_free(net);
}

/* Every kind of layer, small: grouped conv, LRN, overlapping max-pool, adaptive pool, dropout. */
static zf_net *chain_net(void)
{
    zf_net *net = zf_net_new("chain", 2, 11, 10);
    zf_lrn_params lrn = {5, 2, 0.5f, 0.75f, 1.0f};
    cr_assert(!zf_net_add_conv(net, "conv1", 4, zf_win(3, 2, 1), 2));
    cr_assert(!zf_net_add_relu(net, "relu1"));
    cr_assert(!zf_net_add_lrn(net, "norm1", lrn));
    cr_assert(!zf_net_add_maxpool(net, "pool1", zf_win(3, 2, 1), 0));
    cr_assert(!zf_net_add_conv(net, "conv2", 6, zf_win(2, 1, 0), 1));
    cr_assert(!zf_net_add_relu(net, "relu2"));
    cr_assert(!zf_net_add_adaptive_avgpool(net, "avgpool", 2, 2));
    cr_assert(!zf_net_add_flatten(net, "flatten"));
    cr_assert(!zf_net_add_dropout(net, "drop6", 0.5f));
    cr_assert(!zf_net_add_fc(net, "fc6", 7));
    cr_assert(!zf_net_add_relu(net, "relu6"));
    cr_assert(!zf_net_add_fc(net, "fc8", 3));
    cr_assert(!zf_net_add_softmax(net, "prob"));
    cr_assert(!zf_net_finalize(net));
    return net;
}

Test(backprop, whole_chain_gradient_matches_finite_differences)
{
    zf_net *net = chain_net();
    tu_fill_uniform(net->params, (size_t)net->n_params, 5, -0.6f, 0.6f);
    enum { N = 3 };
    float x[N * 2 * 11 * 10];
    tu_fill_uniform(x, sizeof x / sizeof x[0], 6, -1, 1);
    int32_t y[N] = {0, 2, 1};
    zf_trainer *t;
    cr_assert_eq(zf_trainer_new(net, N, &t), ZF_OK);
    const uint64_t seed = 99; /* the same dropout masks for every evaluation */
    cr_assert_eq(zf_trainer_backprop(t, x, y, N, seed, NULL, NULL), ZF_OK);
    float *g = malloc(sizeof(float) * (size_t)net->n_params);
    memcpy(g, t->grad, sizeof(float) * (size_t)net->n_params);
    int checked = 0, worst_at = -1;
    double worst = 0;
    for (int64_t p = 0; p < net->n_params; p += 3) {
        float keep = net->params[p];
        const double h = 1e-3;
        double lp, lm;
        net->params[p] = (float)(keep + h);
        cr_assert_eq(zf_trainer_backprop(t, x, y, N, seed, &lp, NULL), ZF_OK);
        net->params[p] = (float)(keep - h);
        cr_assert_eq(zf_trainer_backprop(t, x, y, N, seed, &lm, NULL), ZF_OK);
        net->params[p] = keep;
        double fd = (lp - lm) / (2 * h);
        double err = fabs(fd - g[p]) / fmax(fabs(fd), 1e-2);
        if (getenv("ZF_TRAIN_REPORT"))
            fprintf(stderr, "param %lld fd %.6g analytic %.6g err %.3g\n", (long long)p, fd, g[p], err);
        /* a ReLU or max switch that flips inside +-h spoils the difference: skip those points */
        if (fabs(fd) > 1e-3 && err > worst) {
            worst = err;
            worst_at = (int)p;
        }
        checked++;
    }
    cr_expect(checked > 50);
    cr_expect(worst < 2e-2, "worst relative error %.3g at parameter %d (analytic %.6g)", worst, worst_at,
              worst_at >= 0 ? g[worst_at] : 0.0);
    free(g);
    zf_trainer_free(t);
    zf_net_free(net);
}

/* 10 classes of 28x28 grey images that differ in where a bright bar sits, plus noise. */
static zf_dataset *bars(int64_t n, uint64_t seed)
{
    zf_dataset *ds = zf_dataset_new(n, 1, 28, 28, 10);
    cr_assert(ds);
    for (int k = 0; k < 10; k++) {
        ds->class_names[k] = malloc(8);
        snprintf(ds->class_names[k], 8, "bar%d", k);
    }
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        int k = (int)(i % 10);
        ds->labels[i] = k;
        uint8_t *p = ds->pixels + i * 28 * 28;
        for (int j = 0; j < 28 * 28; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            p[j] = (uint8_t)((s >> 33) % 60);
        }
        for (int yy = 0; yy < 28; yy++)
            for (int xx = 2 + 2 * k; xx < 5 + 2 * k; xx++)
                p[yy * 28 + xx] = 230;
    }
    return ds;
}

static zf_train_config small_config(const char *ckpt)
{
    zf_train_config cfg = {0};
    cfg.epochs = 2;
    cfg.batch = 16;
    cfg.sgd = (zf_sgd){0.01f, 0.9f, 5e-4f, 0.1f};
    cfg.lr_gamma = 0.1f;
    cfg.lr_steps[0] = 2;
    cfg.n_lr_steps = 1;
    cfg.seed = 42;
    cfg.aug.crop = 2;
    cfg.aug.flip = 1;
    cfg.checkpoint = ckpt;
    cfg.checkpoint_s = 1e-9; /* every step */
    return cfg;
}

static int kill_at_step;
static int die_at(void *ctx, int epoch, int64_t step, int64_t steps, double loss, double acc, double ips)
{
    (void)ctx, (void)loss, (void)acc, (void)ips;
    if ((epoch - 1) * steps + step == kill_at_step)
        raise(SIGKILL);
    return 0;
}

Test(train, resume_after_kill_gives_the_weights_of_an_uninterrupted_run)
{
    const char *dir = tu_tmpdir("train_resume");
    char ck_a[512], ck_b[512];
    snprintf(ck_a, sizeof ck_a, "%s/a.ckpt", dir);
    snprintf(ck_b, sizeof ck_b, "%s/b.ckpt", dir);
    zf_dataset *ds = bars(80, 1); /* 5 steps an epoch, 10 in all */
    /* The killed run, in a child process: SIGKILL in the middle of epoch 2 (step 8 of 10), right
     * after step 7's checkpoint. */
    kill_at_step = 8;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        zf_net *net;
        zf_train_config cfg = small_config(ck_a);
        zf_train_hooks hooks = {NULL, die_at, NULL, NULL};
        if (zf_net_new_builtin("alexnet-mini", &net) || zf_net_init_he(net, cfg.seed))
            _exit(3);
        zf_train_run(net, ds, NULL, &cfg, 0, &hooks);
        _exit(4); /* not reached: killed */
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child was not killed (status %d)", status);
    /* Resume it here. */
    zf_net *resumed, *whole;
    zf_train_config cfg = small_config(ck_a);
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &resumed), ZF_OK);
    zf_meta m;
    cr_assert_eq(zf_model_read_meta(ck_a, &m), ZF_OK);
    cr_expect_str_eq(zf_meta_get(&m, "zfviz.train.epoch"), "2");
    cr_expect_str_eq(zf_meta_get(&m, "zfviz.train.step"), "2");
    zf_meta_free(&m);
    cr_assert_eq(zf_train_run(resumed, ds, NULL, &cfg, 1, NULL), ZF_OK);
    /* The same run without interruption. */
    zf_train_config cfg_b = small_config(ck_b);
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &whole), ZF_OK);
    cr_assert_eq(zf_net_init_he(whole, cfg_b.seed), ZF_OK);
    cr_assert_eq(zf_train_run(whole, ds, NULL, &cfg_b, 0, NULL), ZF_OK);
    cr_assert_eq(resumed->n_params, whole->n_params);
    int64_t diff = 0, first = -1;
    for (int64_t i = 0; i < whole->n_params; i++)
        if (resumed->params[i] != whole->params[i] && diff++ == 0)
            first = i;
    cr_expect_eq(diff, 0, "%lld of %lld weights differ, first at %lld: %.9g vs %.9g", (long long)diff,
                 (long long)whole->n_params, (long long)first, first >= 0 ? resumed->params[first] : 0.0,
                 first >= 0 ? whole->params[first] : 0.0);
    /* and training moved the weights at all */
    zf_net *init;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &init), ZF_OK);
    cr_assert_eq(zf_net_init_he(init, cfg_b.seed), ZF_OK);
    int moved = 0;
    for (int64_t i = 0; i < whole->n_params; i++)
        moved += whole->params[i] != init->params[i];
    cr_expect(moved > whole->n_params / 2);
    zf_net_free(init);
    zf_net_free(resumed);
    zf_net_free(whole);
    zf_dataset_free(ds);
}

Test(train, a_small_run_learns_separable_classes)
{
    zf_dataset *train = bars(960, 2), *val = bars(100, 3);
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin("zfnet-mini", &net), ZF_OK);
    zf_train_config cfg = small_config(NULL);
    cfg.epochs = 3;
    cfg.n_lr_steps = 0;
    cfg.sgd.lr = 0.003f; /* at 0.01 and batch 16 these high-contrast bars make the run unstable */
    cfg.aug.crop = 0; /* a shift or a mirror would move a bar into another class */
    cfg.aug.flip = 0;
    cr_assert_eq(zf_net_init_he(net, 5), ZF_OK);
    double before;
    cr_assert_eq(zf_evaluate(net, val, 50, &before, NULL, NULL, NULL, NULL), ZF_OK);
    cr_assert_eq(zf_train_run(net, train, val, &cfg, 0, NULL), ZF_OK);
    double top1, top5, loss;
    cr_assert_eq(zf_evaluate(net, val, 50, &top1, &top5, &loss, NULL, NULL), ZF_OK);
    cr_expect(top1 > 0.9, "validation top-1 %.3f after 3 epochs (%.3f before)", top1, before);
    cr_expect(top5 >= top1);
    zf_net_free(net);
    zf_dataset_free(train);
    zf_dataset_free(val);
}

Test(train, errors_name_the_problem)
{
    zf_dataset *ds = bars(20, 4);
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin_ex("alexnet-mini", 1, 7, &net), ZF_OK);
    zf_train_config cfg = small_config(NULL);
    cr_expect_eq(zf_train_run(net, ds, NULL, &cfg, 0, NULL), ZF_ERR_SHAPE);
    cr_expect(strstr(zf_last_error(), "7 classes"), "%s", zf_last_error());
    zf_net_free(net);
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    cfg.checkpoint = "/nonexistent/dir/x.ckpt";
    cr_expect_eq(zf_train_run(net, ds, NULL, &cfg, 1, NULL), ZF_ERR_IO);
    cr_expect(strstr(zf_last_error(), "/nonexistent/dir/x.ckpt"), "%s", zf_last_error());
    zf_net_free(net);
    zf_dataset_free(ds);
}

/* The weights of random:SEED (N(0, 0.01) by the project's generator, whose Python twin is
 * tests/fixtures/gen_weights.py), scaled, are what the initialisations draw; the biases are the
 * AlexNet paper's list, written out here by layer name. */
static zf_net *mini_random(uint64_t seed)
{
    zf_net *net;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    cr_assert_eq(zf_net_init_random(net, seed), ZF_OK);
    return net;
}

static void expect_scaled(const float *got, const float *ref, int64_t n, double s, const char *what)
{
    double ss = 0;
    for (int64_t j = 0; j < n; j++) {
        double want = ref[j] * s;
        cr_assert(fabs(got[j] - want) <= 1e-6 * fabs(want) + 1e-12, "%s[%lld]: %g, want %g", what, (long long)j,
                  (double)got[j], want);
        ss += (double)got[j] * got[j];
    }
    /* And the draw has the asked-for spread: the sample standard deviation within 5% of 0.01 s. */
    double sd = sqrt(ss / n);
    cr_expect(fabs(sd - 0.01 * s) < 0.05 * 0.01 * s, "%s: standard deviation %g, want %g", what, sd, 0.01 * s);
}

Test(init, alexnet_paper_gaussian_weights_and_unit_biases)
{
    const char *ones[] = {"conv2", "conv4", "conv5", "fc6", "fc7"};
    zf_net *ref = mini_random(7), *net;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    cr_assert_eq(zf_net_init_gauss(net, 7, 0.02f), ZF_OK);
    int checked = 0;
    for (int i = 0; i < net->n_layers; i++) {
        zf_layer *l = &net->layers[i], *r = &ref->layers[i];
        if (l->op != ZF_OP_CONV && l->op != ZF_OP_FC)
            continue;
        expect_scaled(l->weight, r->weight, l->weight_count, 2.0, l->name);
        int one = 0;
        for (size_t k = 0; k < sizeof ones / sizeof *ones; k++)
            one |= !strcmp(l->name, ones[k]);
        for (int64_t j = 0; j < l->bias_count; j++)
            cr_assert_eq(l->bias[j], one ? 1.0f : 0.0f, "%s.bias[%lld] = %g", l->name, (long long)j, (double)l->bias[j]);
        checked++;
    }
    cr_expect_eq(checked, 8);
    cr_expect_eq(zf_net_init_gauss(net, 7, 0.0f), ZF_ERR_ARG);
    cr_expect(strstr(zf_last_error(), "standard deviation"), "%s", zf_last_error());
    zf_net_free(net);
    zf_net_free(ref);
}

Test(init, first_conv_redrawn_small_and_the_rest_kept)
{
    zf_net *ref = mini_random(3), *he, *net;
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &he), ZF_OK);
    cr_assert_eq(zf_net_init_he(he, 3), ZF_OK);
    cr_assert_eq(zf_net_new_builtin("alexnet-mini", &net), ZF_OK);
    cr_assert_eq(zf_net_init_he(net, 3), ZF_OK);
    for (int64_t j = 0; j < net->layers[0].bias_count; j++)
        net->layers[0].bias[j] = 0.5f; /* the redraw must zero it */
    cr_assert_eq(zf_net_init_first_conv(net, 3, 0.001f), ZF_OK);
    cr_assert_str_eq(net->layers[0].name, "conv1");
    expect_scaled(net->layers[0].weight, ref->layers[0].weight, net->layers[0].weight_count, 0.1, "conv1");
    for (int64_t j = 0; j < net->layers[0].bias_count; j++)
        cr_assert_eq(net->layers[0].bias[j], 0.0f);
    int64_t first_end = net->layers[0].bias + net->layers[0].bias_count - net->params;
    cr_assert_eq(memcmp(net->params + first_end, he->params + first_end,
                        sizeof(float) * (size_t)(net->n_params - first_end)), 0,
                 "layers above conv1 must keep the He draw");
    zf_net_free(net);
    zf_net_free(he);
    zf_net_free(ref);
}

Test(init, train_refuses_an_unknown_initialisation)
{
    const char *dir = tu_tmpdir("train-init");
    int rc = tu_system("cd %s && %s train --arch alexnet-mini --data fashion-mnist --out x.safetensors --init xavier "
                       ">out 2>err", dir, tu_build("tools/zfviz"));
    cr_expect_eq(rc, 2);
    char path[4096];
    snprintf(path, sizeof path, "%s/err", dir);
    char *err = tu_slurp(path, NULL);
    cr_expect(strstr(err, "--init takes he or alexnet, got 'xavier'"), "%s", err);
    cr_expect_eq(strchr(err, '\n'), strrchr(err, '\n'), "one line: %s", err);
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    cr_expect(access(path, F_OK) != 0, "nothing written");
    free(err);
}
