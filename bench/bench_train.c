/* Times a training step of the CPU engine, exactly what zf_train_run does per step: the batch drawn
 * from Fashion-MNIST (zf_dataset_batch: 28x28 grey, padded random crop, flip, upsampled to the
 * net's input, normalised), then forward with dropout, softmax cross-entropy, backward
 * (zf_trainer_backprop) and the SGD update with momentum, weight decay and ZF's renormalisation
 * (zf_trainer_update). Prints one JSON line per net and batch (medians over steps);
 * bench/run-train.sh runs PyTorch's side in the same session and prints the ratios.
 *   bench_train [--quick] [--nets alexnet-mini,zfnet-mini] [--batches 16,64,128] [--seconds S]
 *               [--data DIR] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "zf/dataset.h"
#include "zf/net.h"
#include "zf/tensor.h"
#include "zf/train.h"

#define MAX_REPS 512

static int usage(void)
{
    fprintf(stderr, "usage: bench_train [--quick] [--nets a,b] [--batches 16,64,128] [--seconds S] "
                    "[--data DIR]\n");
    return 2;
}

/* zfviz train's defaults (tools/cmd_train.c); the full nets at a tenth of the rate, where a few
 * steps on upsampled 28x28 images do not diverge (the rate does not change the work). */
static const zf_sgd sgd_mini = {0.01f, 0.9f, 5e-4f, 0.1f}, sgd_full = {0.001f, 0.9f, 5e-4f, 0.1f};

/* Times steps of `arch` at `batch` on ds. Returns 0, or 1 after printing an error. */
static int bench_one(const char *arch, int batch, const zf_dataset *ds, int quick, double seconds)
{
    zf_net *net = NULL;
    zf_trainer *t = NULL;
    int64_t *perm = NULL;
    int32_t *labels = NULL;
    double *prep = NULL, *step = NULL, *total = NULL;
    int rc = 1;
    /* Built with the data's channels and classes, as zfviz train builds a net for its data: the mini
     * nets are grey with 10 classes anyway; a full net keeps 3 channels (the grey plane copied)
     * and gets a 10-way fc8. */
    int in_c = zf_arch_is_mini(arch) ? ds->c : 3;
    if (zf_net_new_builtin_ex(arch, in_c, ds->n_classes, &net) || zf_net_init_he(net, 1) ||
        zf_trainer_new(net, batch, &t)) {
        fprintf(stderr, "bench_train: %s at batch %d: %s\n", arch, batch, zf_last_error());
        goto done;
    }
    perm = malloc(sizeof *perm * (size_t)ds->n);
    labels = malloc(sizeof *labels * (size_t)batch);
    prep = malloc(sizeof(double) * MAX_REPS);
    step = malloc(sizeof(double) * MAX_REPS);
    total = malloc(sizeof(double) * MAX_REPS);
    if (!perm || !labels || !prep || !step || !total) {
        fprintf(stderr, "bench_train: out of memory\n");
        goto done;
    }
    zf_dataset_shuffle(perm, ds->n, 1, 1);
    zf_augment aug = {0};
    aug.crop = 2;
    aug.flip = 1;
    const zf_sgd *sgd = zf_arch_is_mini(arch) ? &sgd_mini : &sgd_full;
    const int warmup = quick ? 1 : 3, min_reps = quick ? 3 : 10;
    int64_t at = 0;
    int reps = 0;
    double loss_first = 0, loss_last = 0, t_end = 0;
    for (int s = 0; s < warmup + MAX_REPS; s++) {
        if (s == warmup)
            t_end = bench_now() + seconds;
        if (s >= warmup && reps >= min_reps && bench_now() >= t_end)
            break;
        if (at + batch > ds->n)
            at = 0;
        double loss, t0 = bench_now();
        /* Into net->input, as zf_train_run does: backprop then skips the copy. */
        zf_status st = zf_dataset_batch(net->input, labels, ds, perm + at, batch, net, &aug, 7);
        double t1 = bench_now();
        if (!st)
            st = zf_trainer_backprop(t, net->input, labels, batch, 1000 + (uint64_t)s, &loss, NULL);
        if (st) {
            fprintf(stderr, "bench_train: %s at batch %d: %s\n", arch, batch, zf_last_error());
            goto done;
        }
        zf_trainer_update(t, sgd);
        double t2 = bench_now();
        at += batch;
        if (s == 0)
            loss_first = loss;
        loss_last = loss;
        if (s >= warmup) {
            prep[reps] = (t1 - t0) * 1e3;
            step[reps] = (t2 - t1) * 1e3;
            total[reps] = (t2 - t0) * 1e3;
            reps++;
        }
    }
    double ms_total = bench_median(total, reps), ms_prep = bench_median(prep, reps), ms_step = bench_median(step, reps);
    /* The wait policy decides a lot on a loaded machine (see docs/training.md): say which ran. */
    const char *policy = getenv("OMP_WAIT_POLICY");
    printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"train_step\", \"batch\": %d, \"ms\": %.3f, "
           "\"img_per_s\": %.2f, \"prep_ms\": %.3f, \"step_ms\": %.3f, \"reps\": %d, "
           "\"loss_first\": %.4f, \"loss_last\": %.4f, \"omp_wait_policy\": \"%s\"}\n",
           arch, batch, ms_total, batch * 1e3 / ms_total, ms_prep, ms_step, reps, loss_first, loss_last,
           policy && strlen(policy) < 16 && !strpbrk(policy, "\"\\") ? policy : "");
    /* The two parts on their own lines too, so the summary pairs each with PyTorch's. */
    printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"train_step_compute\", \"batch\": %d, "
           "\"ms\": %.3f, \"img_per_s\": %.2f}\n",
           arch, batch, ms_step, batch * 1e3 / ms_step);
    printf("{\"side\": \"zfviz\", \"net\": \"%s\", \"what\": \"batch_prep\", \"batch\": %d, \"ms\": %.3f, "
           "\"img_per_s\": %.2f}\n",
           arch, batch, ms_prep, batch * 1e3 / ms_prep);
    fflush(stdout);
    rc = 0;
done:
    free(perm);
    free(labels);
    free(prep);
    free(step);
    free(total);
    zf_trainer_free(t);
    zf_net_free(net);
    return rc;
}

int main(int argc, char **argv)
{
    int quick = 0;
    double seconds = -1;
    const char *nets = "alexnet-mini,zfnet-mini", *batches = "16,64,128", *data = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--nets") && i + 1 < argc)
            nets = argv[++i];
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc)
            batches = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else
            return usage();
    }
    if (seconds < 0)
        seconds = quick ? 0.5 : 5.0;
    zf_dataset *ds = NULL;
    if (zf_dataset_load_fashion_mnist(data, 1, &ds)) {
        fprintf(stderr, "bench_train: %s\n", zf_last_error());
        return 1;
    }
    int rc = 0;
    char nbuf[256];
    snprintf(nbuf, sizeof nbuf, "%s", nets);
    for (char *sn = NULL, *arch = strtok_r(nbuf, ",", &sn); arch && !rc; arch = strtok_r(NULL, ",", &sn)) {
        char bbuf[256];
        snprintf(bbuf, sizeof bbuf, "%s", batches);
        for (char *sb = NULL, *b = strtok_r(bbuf, ",", &sb); b && !rc; b = strtok_r(NULL, ",", &sb)) {
            char *end;
            long batch = strtol(b, &end, 10);
            if (*end || batch < 1 || batch > 4096) {
                fprintf(stderr, "bench_train: --batches: '%s' is not a batch size (1 to 4096)\n", b);
                rc = 2;
            } else {
                rc = bench_one(arch, (int)batch, ds, quick, seconds);
            }
        }
    }
    zf_dataset_free(ds);
    return rc;
}
