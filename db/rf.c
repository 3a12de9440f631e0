/* Receptive fields: which input pixels a position of a layer's output depends on, from the
 * windows of every conv and pool layer below it. */
#include "internal.h"

/* floor(a / b) and ceil(a / b) for b > 0 and any a. */
static int floor_div(long a, long b) { return (int)(a >= 0 ? a / b : -((-a + b - 1) / b)); }
static int ceil_div(long a, long b) { return (int)(a >= 0 ? (a + b - 1) / b : -((-a) / b)); }

zf_status zf_db_receptive_field(const zf_net *net, int layer, int y, int x, zf_box *out)
{
    if (layer < 0 || layer >= net->n_layers)
        return zf_error(ZF_ERR_ARG, "%s: no layer %d", net->arch, layer);
    const zf_layer *top = &net->layers[layer];
    if (y < 0 || y >= top->out_h || x < 0 || x >= top->out_w)
        return zf_error(ZF_ERR_ARG, "%s: position (%d, %d) is outside %s's %dx%d output",
                        net->arch, y, x, top->name, top->out_h, top->out_w);
    /* inclusive interval [y0, y1] x [x0, x1] in the coordinates of layer i's output */
    long y0 = y, y1 = y, x0 = x, x1 = x;
    int whole = 0;
    for (int i = layer; i >= 0 && !whole; i--) {
        const zf_layer *l = &net->layers[i];
        switch (l->op) {
        case ZF_OP_CONV:
        case ZF_OP_MAXPOOL:
        case ZF_OP_AVGPOOL:
            y0 = y0 * l->win.sh - l->win.pt;
            y1 = y1 * l->win.sh - l->win.pt + l->win.kh - 1;
            x0 = x0 * l->win.sw - l->win.pl;
            x1 = x1 * l->win.sw - l->win.pl + l->win.kw - 1;
            break;
        case ZF_OP_ADAPTIVE_AVGPOOL:
            /* bin i spans [floor(i*h/oh), ceil((i+1)*h/oh)) */
            y0 = floor_div(y0 * l->in_h, l->out_h);
            y1 = ceil_div((y1 + 1) * l->in_h, l->out_h) - 1;
            x0 = floor_div(x0 * l->in_w, l->out_w);
            x1 = ceil_div((x1 + 1) * l->in_w, l->out_w) - 1;
            break;
        case ZF_OP_FC:
        case ZF_OP_FLATTEN:
            whole = l->op == ZF_OP_FC || l->in_h * l->in_w > 1;
            break;
        default: /* ReLU, LRN (across channels only), dropout, softmax keep positions */
            break;
        }
        /* Positions past the edge of layer i's input exist only as padding: drop them before
         * going further down, or a window hanging over the bottom edge would claim input rows
         * that no real position of it sees. */
        if (y0 < 0)
            y0 = 0;
        if (x0 < 0)
            x0 = 0;
        if (y1 > l->in_h - 1)
            y1 = l->in_h - 1;
        if (x1 > l->in_w - 1)
            x1 = l->in_w - 1;
    }
    if (whole) {
        *out = (zf_box){0, 0, net->in_w, net->in_h};
        return ZF_OK;
    }
    out->x0 = x0 < 0 ? 0 : (int)x0;
    out->y0 = y0 < 0 ? 0 : (int)y0;
    out->x1 = x1 + 1 > net->in_w ? net->in_w : (int)(x1 + 1);
    out->y1 = y1 + 1 > net->in_h ? net->in_h : (int)(y1 + 1);
    return ZF_OK;
}
