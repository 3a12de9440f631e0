/* zfviz eval: top-1 and top-5 accuracy of a model on Fashion-MNIST's test set or an image folder. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "zf/dataset.h"
#include "zf/train.h"

const char zf_cmd_eval_summary[] = "top-1/top-5 accuracy of a model on Fashion-MNIST or an image folder";

typedef struct {
    zft_progress bar;
} eval_ctx;

static int progress(void *vctx, int64_t done, int64_t total)
{
    (void)total;
    eval_ctx *c = vctx;
    zft_progress_update(&c->bar, done);
    return 0;
}

static void usage(void)
{
    printf("usage: zfviz eval [--arch A [--weights W] | --model F] [--data SOURCE] [--split test|train]\n\n"
           "Prints the model's top-1 and top-5 accuracy and mean cross-entropy on SOURCE:\n"
           "`fashion-mnist` (default; its 10,000-image test set, or with --split train the\n"
           "60,000 training images) or an ImageNet-style folder (one sub-folder per class,\n"
           "classes in sorted order as zfviz train numbers them; each class's .jpg/.jpeg/.png\n"
           "files found anywhere under its folder, as zfviz scan finds images).\n\n" ZFT_MODEL_HELP
           ZFT_DEVICE_HELP
           "  --data SOURCE     fashion-mnist (default) or a folder\n"
           "  --split S         test (default) or train, for fashion-mnist\n"
           "  --batch N         images per forward (default 100)\n"
           "  --size S          folders: the side images are stored at before cropping (default:\n"
           "                    the net's resize size)\n");
}

int zf_cmd_eval(int argc, char **argv)
{
    enum { O_SPLIT = 256, O_SIZE };
    zft_model_opts mo = {0};
    const char *data = "fashion-mnist", *split = "test";
    long batch = 100, size = 0;
    const zft_opt opts[] = {ZFT_STR("data", 'd', &data), ZFT_STR("split", O_SPLIT, &split),
                            ZFT_LONG("batch", 'b', 1, 65536, "a whole number from 1 to 65536", &batch),
                            ZFT_LONG("size", O_SIZE, 8, 4096, "a side of 8 to 4096 px", &size), {0}};
    zft_device dev = {0};
    zft_args a = {.cmd = "eval", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts, .usage = usage,
                  .model = &mo, .device = &dev};
    if (zft_args_parse(&a))
        return a.rc;
    if (strcmp(split, "test") && strcmp(split, "train"))
        return zft_usage_error("eval", "--split is test or train");
    zft_install_sigint();
    zf_net *net;
    zf_status st = zft_load_model(&mo, &net);
    if (st)
        return zft_fail("eval", st);
    zf_dataset *ds = NULL;
    if (!strcmp(data, "fashion-mnist"))
        st = zf_dataset_load_fashion_mnist(NULL, !strcmp(split, "train"), &ds);
    else
        st = zf_dataset_load_folder(data, size ? (int)size
                                          : net->pre.resize == ZF_RESIZE_SHORT_CROP ? net->pre.resize_short
                                                                                    : net->in_h,
                                    &ds);
    double top1 = 0, top5 = 0, loss = 0;
    eval_ctx ctx;
    zft_progress_start(&ctx.bar, "eval", ds ? ds->n : 0, "img");
    if (!st && strcmp(dev.iface->name, "cpu")) { /* the forward on the device, the scores here */
        if (!(st = zft_device_open(&dev, net, (int)batch)))
            st = zf_engine_evaluate(dev.eng, ds, (int)batch, &top1, &top5, &loss, progress, &ctx);
    } else if (!st) {
        st = zf_evaluate(net, ds, (int)batch, &top1, &top5, &loss, progress, &ctx);
    }
    zft_progress_finish(&ctx.bar);
    if (!st)
        printf("%s on %s (%lld images): top-1 %.2f%%  top-5 %.2f%%  loss %.4f\n", net->arch,
               !strcmp(data, "fashion-mnist") ? (!strcmp(split, "train") ? "fashion-mnist train" : "fashion-mnist test") : data,
               (long long)ds->n, 100 * top1, 100 * top5, loss);
    zft_device_close(&dev);
    zf_dataset_free(ds);
    zf_net_free(net);
    return st ? zft_fail("eval", st) : 0;
}
