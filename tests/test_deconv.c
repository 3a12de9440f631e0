/* The deconvnet's pieces proven independently: the transposed filtering is the adjoint of the
 * convolution for every conv layer of the built-in nets, and a single conv1 unit projects to
 * exactly its activation times its filter, placed on its receptive field (borders included). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "zf/net.h"
#include "zf/tensor.h"

static zf_net *builtin(const char *arch)
{
    zf_net *net = NULL;
    cr_assert_eq(zf_net_new_builtin(arch, &net), ZF_OK, "%s: %s", arch, zf_last_error());
    return net;
}

Test(deconv, transposed_filtering_is_adjoint_of_every_conv_layer)
{
    const char *archs[] = {"alexnet", "alexnet-caffe", "zfnet"};
    for (int a = 0; a < 3; a++) {
        zf_net *net = builtin(archs[a]);
        for (int i = 0; i < net->n_layers; i++) {
            zf_layer *l = &net->layers[i];
            if (l->op != ZF_OP_CONV)
                continue;
            zf_conv_geom g = zf_layer_conv_geom(l, 1);
            size_t nin = (size_t)zf_layer_in_size(l), nout = (size_t)zf_layer_out_size(l);
            float *x = zf_alloc(nin * 4), *y = zf_alloc(nout * 4), *cx = zf_alloc(nout * 4), *ty = zf_alloc(nin * 4);
            float *ws = zf_alloc(zf_conv_workspace_floats(&g) * 4);
            tu_fill_uniform(l->weight, (size_t)l->weight_count, 100 + i, -0.1f, 0.1f);
            tu_fill_uniform(x, nin, 200 + i, -1, 1);
            tu_fill_uniform(y, nout, 300 + i, -1, 1);
            zf_conv_forward(cx, x, l->weight, NULL, &g, ws);
            zf_conv_backward_data(ty, y, l->weight, &g, ws);
            double lhs = 0, rhs = 0, mag = 0;
            for (size_t j = 0; j < nout; j++) {
                lhs += (double)cx[j] * y[j];
                mag += fabs((double)cx[j] * y[j]);
            }
            for (size_t j = 0; j < nin; j++)
                rhs += (double)x[j] * ty[j];
            cr_expect(fabs(lhs - rhs) <= 1e-6 * mag, "%s %s: <conv x, y> = %.9g but <x, convT y> = %.9g", archs[a],
                      l->name, lhs, rhs);
            zf_free(x); zf_free(y); zf_free(cx); zf_free(ty); zf_free(ws);
        }
        zf_net_free(net);
    }
}

static void check_conv1_unit(const char *arch, int y, int x)
{
    zf_net *net = builtin(arch);
    zf_layer *l = &net->layers[0];
    cr_assert_eq(l->op, ZF_OP_CONV);
    const int c = 5;
    tu_fill_uniform(l->weight, (size_t)l->weight_count, 7, -0.05f, 0.05f);
    l->bias[c] = 3.0f; /* keep the chosen unit alive */
    cr_assert_eq(zf_net_reserve(net, 2), ZF_OK);
    const size_t isz = (size_t)zf_net_in_size(net);
    tu_fill_uniform(net->input, 2 * isz, 8, -1, 1);
    cr_assert_eq(zf_net_forward(net, NULL, 2), ZF_OK);
    if (y < 0) y += l->out_h;
    if (x < 0) x += l->out_w;
    int chan[2] = {c, c}, ys[2] = {y, y}, xs[2] = {x, x};
    float *out = zf_alloc(2 * isz * sizeof(float));
    zf_deconv_req req = {0, ZF_DECONV_UNIT, 0, chan, ys, xs};
    cr_assert_eq(zf_net_deconv(net, out, 2, &req), ZF_OK, "%s", zf_last_error());
    const int relu = zf_net_rectified(net, 0);
    for (int img = 0; img < 2; img++) {
        const float act = net->acts[relu][((size_t)img * l->out_c + c) * l->out_h * l->out_w + y * l->out_w + x];
        cr_assert(act > 0, "unit is dead");
        for (int ci = 0; ci < net->in_c; ci++)
            for (int iy = 0; iy < net->in_h; iy++)
                for (int ix = 0; ix < net->in_w; ix++) {
                    int ky = iy - (y * l->win.sh - l->win.pt), kx = ix - (x * l->win.sw - l->win.pl);
                    double ref = 0;
                    if (ky >= 0 && ky < l->win.kh && kx >= 0 && kx < l->win.kw)
                        ref = (double)act * l->weight[(((size_t)c * net->in_c + ci) * l->win.kh + ky) * l->win.kw + kx];
                    float got = out[(size_t)img * isz + ((size_t)ci * net->in_h + iy) * net->in_w + ix];
                    cr_assert(fabs(got - ref) <= 1e-6 * fmax(1e-3, fabs(ref)),
                              "%s unit (%d,%d) image %d pixel (%d,%d,%d): %g vs %g", arch, y, x, img, ci, iy, ix, got,
                              ref);
                }
    }
    zf_free(out);
    zf_net_free(net);
}

Test(deconv, conv1_unit_is_activation_times_filter_on_its_receptive_field)
{
    const char *archs[] = {"alexnet", "alexnet-caffe", "zfnet"};
    for (int a = 0; a < 3; a++) {
        check_conv1_unit(archs[a], 0, 0);   /* top-left: filter taps in the padding are cut */
        check_conv1_unit(archs[a], 7, 11);  /* inside */
        check_conv1_unit(archs[a], -1, -1); /* bottom-right: input pixels no unit sees stay zero */
    }
}

Test(deconv, strongest_position_is_first_maximum_and_bad_requests_fail)
{
    zf_net *net = builtin("zfnet");
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].weight)
            tu_fill_uniform(net->layers[i].weight, (size_t)net->layers[i].weight_count, 70 + i, -0.05f, 0.05f);
    cr_assert_eq(zf_net_reserve(net, 1), ZF_OK);
    tu_fill_uniform(net->input, (size_t)zf_net_in_size(net), 9, -1, 1);
    cr_assert_eq(zf_net_forward(net, NULL, 1), ZF_OK);
    const int conv5 = zf_net_find_conv(net, "conv5");
    cr_assert_eq(conv5, zf_net_find_conv(net, "relu5"));
    const int relu5 = zf_net_rectified(net, conv5);
    const zf_layer *l = &net->layers[relu5];
    /* find a live channel and its first maximum, directly */
    int c = -1, best = 0;
    for (int ch = 0; ch < l->out_c && c < 0; ch++) {
        const float *m = net->acts[relu5] + (size_t)ch * l->out_h * l->out_w;
        best = 0;
        for (int p = 1; p < l->out_h * l->out_w; p++)
            if (m[p] > m[best])
                best = p;
        if (m[best] > 0)
            c = ch;
    }
    cr_assert(c >= 0, "no live conv5 channel");
    int chan = c, y = -1, x = -1;
    float *out = zf_alloc((size_t)zf_net_in_size(net) * sizeof(float));
    zf_deconv_req req = {conv5, ZF_DECONV_UNIT, 0, &chan, &y, &x};
    cr_assert_eq(zf_net_deconv(net, out, 1, &req), ZF_OK);
    cr_assert_eq(y * l->out_w + x, best, "strongest position %d,%d, first maximum at %d", y, x, best);
    chan = l->out_c;
    cr_assert_eq(zf_net_deconv(net, out, 1, &req), ZF_ERR_ARG);
    cr_assert(strstr(zf_last_error(), "channel"), "message: %s", zf_last_error());
    chan = 0;
    req.layer = zf_net_find(net, "pool5");
    cr_assert_eq(zf_net_deconv(net, out, 1, &req), ZF_ERR_ARG);
    zf_free(out);
    zf_net_free(net);
}
