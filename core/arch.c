/* The built-in architectures of SPEC section 1: torchvision's AlexNet, Caffe's bvlc_alexnet,
 * ZFNet as the paper draws it (LRN after the pool) and the widely copied PyTorch rendering of ZFNet
 * (LRN of 30 and 50 channels before the pool). */
#include <string.h>

#include "zf/net.h"

const char *const zf_builtin_archs[] = {"alexnet",      "alexnet-caffe", "zfnet", "zfnet-pytorch",
                                        "alexnet-mini", "zfnet-mini",    NULL};

/* bvlc_alexnet's LRN: size 5, alpha 1e-4 (divided by the size inside the formula), beta 0.75, k 1. */
static const zf_lrn_params caffe_lrn = {5, 2, 1e-4f, 0.75f, 1.0f};
/* nn.LocalResponseNorm(size) with PyTorch's defaults (alpha 1e-4 divided by the size, beta 0.75,
 * k 1): its window pads size/2 channels before and (size-1)/2 after, so it starts size/2 channels
 * before the centre (15 of 30, 25 of 50), one more than Caffe's (size-1)/2 for these even sizes. */
static const zf_lrn_params torch_lrn30 = {30, 15, 1e-4f, 0.75f, 1.0f};
static const zf_lrn_params torch_lrn50 = {50, 25, 1e-4f, 0.75f, 1.0f};

static void torchvision_preproc(zf_net *net)
{
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    net->pre.order = ZF_COLOR_RGB;
    net->pre.scale = 1.0f;
    memcpy(net->pre.mean, mean, sizeof mean);
    memcpy(net->pre.std, std, sizeof std);
    net->pre.resize = ZF_RESIZE_SHORT_CROP;
    net->pre.resize_short = 256;
}

static void caffe_preproc(zf_net *net)
{
    /* ImageNet mean in RGB order, pixels 0-255, fed as BGR. */
    const float mean[3] = {123.68f, 116.779f, 103.939f};
    net->pre.order = ZF_COLOR_BGR;
    net->pre.scale = 255.0f;
    memcpy(net->pre.mean, mean, sizeof mean);
    for (int i = 0; i < 3; i++)
        net->pre.std[i] = 1.0f;
    net->pre.resize = ZF_RESIZE_SHORT_CROP;
    net->pre.resize_short = 256;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        zf_status st_ = (x);                                                                       \
        if (st_)                                                                                   \
            return st_;                                                                            \
    } while (0)

static zf_status build_alexnet(zf_net *n, int classes)
{
    TRY(zf_net_add_conv(n, "conv1", 64, zf_win(11, 4, 2), 1));
    TRY(zf_net_add_relu(n, "relu1"));
    TRY(zf_net_add_maxpool(n, "pool1", zf_win(3, 2, 0), 0));
    TRY(zf_net_add_conv(n, "conv2", 192, zf_win(5, 1, 2), 1));
    TRY(zf_net_add_relu(n, "relu2"));
    TRY(zf_net_add_maxpool(n, "pool2", zf_win(3, 2, 0), 0));
    TRY(zf_net_add_conv(n, "conv3", 384, zf_win(3, 1, 1), 1));
    TRY(zf_net_add_relu(n, "relu3"));
    TRY(zf_net_add_conv(n, "conv4", 256, zf_win(3, 1, 1), 1));
    TRY(zf_net_add_relu(n, "relu4"));
    TRY(zf_net_add_conv(n, "conv5", 256, zf_win(3, 1, 1), 1));
    TRY(zf_net_add_relu(n, "relu5"));
    TRY(zf_net_add_maxpool(n, "pool5", zf_win(3, 2, 0), 0));
    TRY(zf_net_add_adaptive_avgpool(n, "avgpool", 6, 6));
    TRY(zf_net_add_flatten(n, "flatten"));
    /* torchvision puts dropout before each of the first two linear layers */
    TRY(zf_net_add_dropout(n, "drop6", 0.5f));
    TRY(zf_net_add_fc(n, "fc6", 4096));
    TRY(zf_net_add_relu(n, "relu6"));
    TRY(zf_net_add_dropout(n, "drop7", 0.5f));
    TRY(zf_net_add_fc(n, "fc7", 4096));
    TRY(zf_net_add_relu(n, "relu7"));
    TRY(zf_net_add_fc(n, "fc8", classes));
    TRY(zf_net_add_softmax(n, "prob"));
    return ZF_OK;
}

/* The Caffe-style family (bvlc_alexnet, ZFNet and their minis): sizes that differ between a full
 * net and its mini. */
typedef struct {
    int conv[5];     /* output channels of conv1..conv5 */
    int groups[5];   /* bvlc_alexnet's two-GPU split: 2 for conv2, conv4, conv5 */
    int conv1_pad;
    int fc;          /* fc6 and fc7 width */
} family_sizes;

static const family_sizes caffe_alexnet = {{96, 256, 384, 384, 256}, {1, 2, 1, 2, 2}, 0, 4096};
static const family_sizes paper_zfnet = {{96, 256, 384, 384, 256}, {1, 1, 1, 1, 1}, 1, 4096};
/* The mini nets (issue 8): the same layer sequences at a 112x112 input (a 28x28 image upsampled
 * 4x), with fewer channels. Each keeps its first layer's character, so the AlexNet-vs-ZFNet
 * first-layer comparison still means something: alexnet-mini has AlexNet's 11x11 stride-4 conv1
 * (maps 27 -> 13 -> 6 -> 2, as AlexNet's 55 -> 27 -> 13 -> 6), zfnet-mini ZFNet's 7x7 stride-2
 * conv1 with pad-1 pooling and LRN after the pool (54 -> 27 -> 12 -> 6 -> 6 -> 2). */
static const family_sizes mini_alexnet = {{32, 64, 96, 96, 64}, {1, 1, 1, 1, 1}, 2, 256};
static const family_sizes mini_zfnet = {{32, 64, 96, 96, 64}, {1, 1, 1, 1, 1}, 1, 256};

static zf_status add_classifier(zf_net *n, int width, int classes)
{
    TRY(zf_net_add_flatten(n, "flatten"));
    TRY(zf_net_add_fc(n, "fc6", width));
    TRY(zf_net_add_relu(n, "relu6"));
    TRY(zf_net_add_dropout(n, "drop6", 0.5f));
    TRY(zf_net_add_fc(n, "fc7", width));
    TRY(zf_net_add_relu(n, "relu7"));
    TRY(zf_net_add_dropout(n, "drop7", 0.5f));
    TRY(zf_net_add_fc(n, "fc8", classes));
    TRY(zf_net_add_softmax(n, "prob"));
    return ZF_OK;
}

/* conv3..conv5, relu5, pool5: the same in every net of the family. */
static zf_status add_conv345(zf_net *n, const family_sizes *z)
{
    TRY(zf_net_add_conv(n, "conv3", z->conv[2], zf_win(3, 1, 1), z->groups[2]));
    TRY(zf_net_add_relu(n, "relu3"));
    TRY(zf_net_add_conv(n, "conv4", z->conv[3], zf_win(3, 1, 1), z->groups[3]));
    TRY(zf_net_add_relu(n, "relu4"));
    TRY(zf_net_add_conv(n, "conv5", z->conv[4], zf_win(3, 1, 1), z->groups[4]));
    TRY(zf_net_add_relu(n, "relu5"));
    return zf_net_add_maxpool(n, "pool5", zf_win(3, 2, 0), 0);
}

/* Caffe's AlexNet order: ReLU, LRN, then the pool. */
static zf_status build_alexnet_caffe(zf_net *n, const family_sizes *z, int classes)
{
    TRY(zf_net_add_conv(n, "conv1", z->conv[0], zf_win(11, 4, z->conv1_pad), z->groups[0]));
    TRY(zf_net_add_relu(n, "relu1"));
    TRY(zf_net_add_lrn(n, "norm1", caffe_lrn));
    TRY(zf_net_add_maxpool(n, "pool1", zf_win(3, 2, 0), 0));
    TRY(zf_net_add_conv(n, "conv2", z->conv[1], zf_win(5, 1, 2), z->groups[1]));
    TRY(zf_net_add_relu(n, "relu2"));
    TRY(zf_net_add_lrn(n, "norm2", caffe_lrn));
    TRY(zf_net_add_maxpool(n, "pool2", zf_win(3, 2, 0), 0));
    TRY(add_conv345(n, z));
    return add_classifier(n, z->fc, classes);
}

/* Fig. 3: ReLU, then pool, then normalisation across feature maps; pad-1 floor pooling. */
static zf_status build_zfnet(zf_net *n, const family_sizes *z, int classes)
{
    TRY(zf_net_add_conv(n, "conv1", z->conv[0], zf_win(7, 2, z->conv1_pad), z->groups[0]));
    TRY(zf_net_add_relu(n, "relu1"));
    TRY(zf_net_add_maxpool(n, "pool1", zf_win(3, 2, 1), 0));
    TRY(zf_net_add_lrn(n, "norm1", caffe_lrn));
    TRY(zf_net_add_conv(n, "conv2", z->conv[1], zf_win(5, 2, 0), z->groups[1]));
    TRY(zf_net_add_relu(n, "relu2"));
    TRY(zf_net_add_maxpool(n, "pool2", zf_win(3, 2, 1), 0));
    TRY(zf_net_add_lrn(n, "norm2", caffe_lrn));
    TRY(add_conv345(n, z));
    return add_classifier(n, z->fc, classes);
}

/* The PyTorch ZFNet found in most tutorials and repositories: conv1 7x7/2 pad 1, ReLU,
 * LocalResponseNorm(30), max-pool 3/2 pad 1, conv2 5x5/2 (no padding), ReLU, LocalResponseNorm(50),
 * max-pool 3/2 pad 1, conv3-5 3x3 'same', max-pool 3/2, then 9216-4096-4096-1000 without dropout.
 * Maps 224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 6: 256 * 6 * 6 = 9216 features into fc6. */
static zf_status build_zfnet_pytorch(zf_net *n, int classes)
{
    TRY(zf_net_add_conv(n, "conv1", 96, zf_win(7, 2, 1), 1));
    TRY(zf_net_add_relu(n, "relu1"));
    TRY(zf_net_add_lrn(n, "norm1", torch_lrn30));
    TRY(zf_net_add_maxpool(n, "pool1", zf_win(3, 2, 1), 0));
    TRY(zf_net_add_conv(n, "conv2", 256, zf_win(5, 2, 0), 1));
    TRY(zf_net_add_relu(n, "relu2"));
    TRY(zf_net_add_lrn(n, "norm2", torch_lrn50));
    TRY(zf_net_add_maxpool(n, "pool2", zf_win(3, 2, 1), 0));
    TRY(add_conv345(n, &paper_zfnet));
    TRY(zf_net_add_flatten(n, "flatten"));
    TRY(zf_net_add_fc(n, "fc6", 4096));
    TRY(zf_net_add_relu(n, "relu6"));
    TRY(zf_net_add_fc(n, "fc7", 4096));
    TRY(zf_net_add_relu(n, "relu7"));
    TRY(zf_net_add_fc(n, "fc8", classes));
    return zf_net_add_softmax(n, "prob");
}

/* Fashion-MNIST's pixel statistics (training set, [0,1] scale), the mini nets' default input. */
static void grey_preproc(zf_net *net)
{
    net->pre.order = net->in_c == 1 ? ZF_COLOR_GREY : ZF_COLOR_RGB;
    net->pre.scale = 1.0f;
    for (int i = 0; i < 3; i++) {
        net->pre.mean[i] = 0.2860f;
        net->pre.std[i] = 0.3530f;
    }
    net->pre.resize = ZF_RESIZE_EXACT;
    net->pre.resize_short = 0;
}

int zf_arch_is_mini(const char *arch)
{
    return arch && (!strcmp(arch, "alexnet-mini") || !strcmp(arch, "zfnet-mini"));
}

zf_status zf_net_new_builtin(const char *arch, zf_net **out)
{
    return zf_net_new_builtin_ex(arch, 0, 0, out);
}

zf_status zf_net_new_builtin_ex(const char *arch, int in_c, int classes, zf_net **out)
{
    return zf_net_new_builtin_bounded(arch, in_c, classes, INT64_MAX, out);
}

zf_status zf_net_new_builtin_bounded(const char *arch, int in_c, int classes, int64_t max_params,
                                     zf_net **out)
{
    *out = NULL;
    zf_net *net;
    zf_status st;
    if (!arch)
        arch = "";
    int mini = zf_arch_is_mini(arch);
    if (in_c == 0)
        in_c = mini ? 1 : 3;
    if (classes == 0)
        classes = mini ? 10 : 1000;
    if (in_c != 1 && in_c != 3)
        return zf_error(ZF_ERR_ARG, "%s: %d input channels (1 or 3 are supported)", arch, in_c);
    if (classes < 2 || classes > 100000)
        return zf_error(ZF_ERR_ARG, "%s: %d classes (2 to 100000 are supported)", arch, classes);
    int full = !strcmp(arch, "alexnet") || !strcmp(arch, "alexnet-caffe") || !strcmp(arch, "zfnet") ||
               !strcmp(arch, "zfnet-pytorch");
    if (!full && !mini)
        return zf_error(ZF_ERR_ARG,
                        "unknown architecture '%s' (built in: alexnet, alexnet-caffe, zfnet, "
                        "zfnet-pytorch, alexnet-mini, zfnet-mini)",
                        arch);
    int side = !strcmp(arch, "alexnet-caffe") ? 227 : mini ? 112 : 224;
    net = zf_net_new(arch, in_c, side, side);
    if (!net)
        return ZF_ERR_NOMEM;
    if (!strcmp(arch, "alexnet")) {
        torchvision_preproc(net);
        st = build_alexnet(net, classes);
    } else if (!strcmp(arch, "alexnet-caffe")) {
        caffe_preproc(net);
        st = build_alexnet_caffe(net, &caffe_alexnet, classes);
    } else if (!strcmp(arch, "zfnet")) {
        torchvision_preproc(net);
        st = build_zfnet(net, &paper_zfnet, classes);
    } else if (!strcmp(arch, "zfnet-pytorch")) {
        torchvision_preproc(net);
        st = build_zfnet_pytorch(net, classes);
    } else if (!strcmp(arch, "alexnet-mini")) {
        grey_preproc(net);
        st = build_alexnet_caffe(net, &mini_alexnet, classes);
    } else {
        grey_preproc(net);
        st = build_zfnet(net, &mini_zfnet, classes);
    }
    if (!st && zf_net_param_count(net) > max_params)
        st = zf_error(ZF_ERR_FORMAT, "%s with %d classes has %lld parameters, more than the %lld "
                      "the file can hold", arch, classes, (long long)zf_net_param_count(net),
                      (long long)max_params);
    if (!st)
        st = zf_net_finalize(net);
    if (st) {
        zf_net_free(net);
        return st;
    }
    *out = net;
    return ZF_OK;
}
