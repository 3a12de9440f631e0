/* The built-in architectures of SPEC section 1: torchvision's AlexNet, Caffe's bvlc_alexnet and
 * ZFNet as the paper draws it (LRN after the pool). */
#include <string.h>

#include "zf/net.h"

const char *const zf_builtin_archs[] = {"alexnet", "alexnet-caffe", "zfnet", NULL};

/* bvlc_alexnet's LRN: size 5, alpha 1e-4 (divided by the size inside the formula), beta 0.75, k 1. */
static const zf_lrn_params caffe_lrn = {5, 2, 1e-4f, 0.75f, 1.0f};

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

static zf_status build_alexnet(zf_net *n)
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
    TRY(zf_net_add_fc(n, "fc8", 1000));
    TRY(zf_net_add_softmax(n, "prob"));
    return ZF_OK;
}

static zf_status add_classifier(zf_net *n)
{
    TRY(zf_net_add_flatten(n, "flatten"));
    TRY(zf_net_add_fc(n, "fc6", 4096));
    TRY(zf_net_add_relu(n, "relu6"));
    TRY(zf_net_add_dropout(n, "drop6", 0.5f));
    TRY(zf_net_add_fc(n, "fc7", 4096));
    TRY(zf_net_add_relu(n, "relu7"));
    TRY(zf_net_add_dropout(n, "drop7", 0.5f));
    TRY(zf_net_add_fc(n, "fc8", 1000));
    TRY(zf_net_add_softmax(n, "prob"));
    return ZF_OK;
}

static zf_status build_alexnet_caffe(zf_net *n)
{
    TRY(zf_net_add_conv(n, "conv1", 96, zf_win(11, 4, 0), 1));
    TRY(zf_net_add_relu(n, "relu1"));
    TRY(zf_net_add_lrn(n, "norm1", caffe_lrn));
    TRY(zf_net_add_maxpool(n, "pool1", zf_win(3, 2, 0), 0));
    TRY(zf_net_add_conv(n, "conv2", 256, zf_win(5, 1, 2), 2));
    TRY(zf_net_add_relu(n, "relu2"));
    TRY(zf_net_add_lrn(n, "norm2", caffe_lrn));
    TRY(zf_net_add_maxpool(n, "pool2", zf_win(3, 2, 0), 0));
    TRY(zf_net_add_conv(n, "conv3", 384, zf_win(3, 1, 1), 1));
    TRY(zf_net_add_relu(n, "relu3"));
    TRY(zf_net_add_conv(n, "conv4", 384, zf_win(3, 1, 1), 2));
    TRY(zf_net_add_relu(n, "relu4"));
    TRY(zf_net_add_conv(n, "conv5", 256, zf_win(3, 1, 1), 2));
    TRY(zf_net_add_relu(n, "relu5"));
    TRY(zf_net_add_maxpool(n, "pool5", zf_win(3, 2, 0), 0));
    return add_classifier(n);
}

static zf_status build_zfnet(zf_net *n)
{
    /* Fig. 3: ReLU, then pool, then normalisation across feature maps; pad-1 floor pooling. */
    TRY(zf_net_add_conv(n, "conv1", 96, zf_win(7, 2, 1), 1));
    TRY(zf_net_add_relu(n, "relu1"));
    TRY(zf_net_add_maxpool(n, "pool1", zf_win(3, 2, 1), 0));
    TRY(zf_net_add_lrn(n, "norm1", caffe_lrn));
    TRY(zf_net_add_conv(n, "conv2", 256, zf_win(5, 2, 0), 1));
    TRY(zf_net_add_relu(n, "relu2"));
    TRY(zf_net_add_maxpool(n, "pool2", zf_win(3, 2, 1), 0));
    TRY(zf_net_add_lrn(n, "norm2", caffe_lrn));
    TRY(zf_net_add_conv(n, "conv3", 384, zf_win(3, 1, 1), 1));
    TRY(zf_net_add_relu(n, "relu3"));
    TRY(zf_net_add_conv(n, "conv4", 384, zf_win(3, 1, 1), 1));
    TRY(zf_net_add_relu(n, "relu4"));
    TRY(zf_net_add_conv(n, "conv5", 256, zf_win(3, 1, 1), 1));
    TRY(zf_net_add_relu(n, "relu5"));
    TRY(zf_net_add_maxpool(n, "pool5", zf_win(3, 2, 0), 0));
    return add_classifier(n);
}

zf_status zf_net_new_builtin(const char *arch, zf_net **out)
{
    *out = NULL;
    zf_net *net;
    zf_status st;
    if (!arch)
        arch = "";
    if (!strcmp(arch, "alexnet")) {
        net = zf_net_new(arch, 3, 224, 224);
        if (!net)
            return ZF_ERR_NOMEM;
        torchvision_preproc(net);
        st = build_alexnet(net);
    } else if (!strcmp(arch, "alexnet-caffe")) {
        net = zf_net_new(arch, 3, 227, 227);
        if (!net)
            return ZF_ERR_NOMEM;
        caffe_preproc(net);
        st = build_alexnet_caffe(net);
    } else if (!strcmp(arch, "zfnet")) {
        net = zf_net_new(arch, 3, 224, 224);
        if (!net)
            return ZF_ERR_NOMEM;
        torchvision_preproc(net);
        st = build_zfnet(net);
    } else {
        return zf_error(ZF_ERR_ARG, "unknown architecture '%s' (built in: alexnet, alexnet-caffe, zfnet)", arch);
    }
    if (!st)
        st = zf_net_finalize(net);
    if (st) {
        zf_net_free(net);
        return st;
    }
    *out = net;
    return ZF_OK;
}
