/* The incremental occlusion's fully connected tail: the first fc layer as a change of its
 * unoccluded output over positions gathered across batches, the rest dense, skipping inputs that
 * are zero in every row. */
#include "zf/alloc.h"
#include "occlusion_internal.h"

#include <stdlib.h>
#include <string.h>

#include "zf/clock.h"
#include "simd_internal.h"
#include "gemm_internal.h"
#include "kernels_internal.h" /* last: this copy's names for the kernel functions */

static zf_status grow_int(int **buf, size_t *cap, size_t n)
{
    if (n <= *cap)
        return ZF_OK;
    int *p = zf_realloc(*buf, sizeof(int) * n);
    if (!p)
        return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory");
    *buf = p;
    *cap = n;
    return ZF_OK;
}

/* Products by inputs that are zero in a whole column (a ReLU's zeros, the same in every row:
 * half of fc7's inputs over AlexNet's 625 positions) skip those columns and their weights. */
#define SPARSE_MIN_ROWS 16 /* below, gathering the weights costs about what it saves */
#define SPARSE_MAX_KEPT 0.9

/* y (n, out_f) = beta y + x (n, k) W^T, W given per input (w_per_input: (k, out_f), a row per
 * input) or per output ((out_f, k), a layer's weights), over only the columns of x that hold a
 * nonzero. Equal to the full product: the dropped terms are exact zeros. */
static zf_status sparse_product(occl *o, float *y, float beta, const float *x, int n, int k,
                                const float *w, int out_f, int w_per_input)
{
    zf_status st;
    int nnz = k;
    if (n >= SPARSE_MIN_ROWS) {
        if ((st = grow_int(&o->sp_idx, &o->sp_idx_cap, (size_t)k)))
            return st;
        int *idx = o->sp_idx;
        for (int c = 0; c < k; c++)
            idx[c] = 0;
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * k;
            for (int c = 0; c < k; c++)
                idx[c] |= xi[c] != 0.0f;
        }
        nnz = 0;
        for (int c = 0; c < k; c++)
            if (idx[c])
                idx[nnz++] = c;
    }
    if (nnz > SPARSE_MAX_KEPT * k) {
        zf_sgemm('N', w_per_input ? 'N' : 'T', n, out_f, k, 1.0f,
                    x, k, w, w_per_input ? out_f : k, beta, y, out_f);
        return ZF_OK;
    }
    if (nnz == 0) {
        if (beta == 0.0f)
            memset(y, 0, sizeof(float) * (size_t)n * out_f);
        return ZF_OK;
    }
    if ((st = zf_occl_grow(&o->sp_x, &o->sp_x_cap, (size_t)n * nnz)) ||
        (st = zf_occl_grow(&o->sp_w, &o->sp_w_cap, (size_t)nnz * out_f)))
        return st;
    const int *idx = o->sp_idx;
    float *xs = o->sp_x, *ws = o->sp_w;
#pragma omp parallel if (ZF_OCCL_BIG((int64_t)(n + out_f) * nnz))
    {
#pragma omp for schedule(static) nowait
        for (int i = 0; i < n; i++)
            for (int j = 0; j < nnz; j++)
                xs[(size_t)i * nnz + j] = x[(size_t)i * k + idx[j]];
        if (w_per_input) {
#pragma omp for schedule(static)
            for (int j = 0; j < nnz; j++)
                memcpy(ws + (size_t)j * out_f, w + (size_t)idx[j] * out_f, sizeof(float) * out_f);
        } else {
#pragma omp for schedule(static)
            for (int f = 0; f < out_f; f++)
                for (int j = 0; j < nnz; j++)
                    ws[(size_t)f * nnz + j] = w[(size_t)f * k + idx[j]];
        }
    }
    zf_sgemm('N', w_per_input ? 'N' : 'T', n, out_f, nnz, 1.0f,
                xs, nnz, ws, w_per_input ? out_f : nnz, beta, y, out_f);
    return ZF_OK;
}

/* The first fully connected layer's output for each position into o->dense[1], from the last
 * spatial layer's region g: the unoccluded output plus, cell by cell of the map, the change of
 * the cell's channels times their rows of the weights, over the positions whose region holds
 * the cell. */
static zf_status fc_from_region(occl *o, const region *g)
{
    const zf_layer *fl = &o->net->layers[o->fc_delta];
    const int C = g->c, cells = g->h * g->w, out_f = fl->out_c, n = g->n;
    const float *y0 = o->base[o->fc_delta], *old = o->base[o->n_spatial - 1];
    zf_status st;
    if ((st = zf_occl_grow(&o->dense[1], &o->dense_cap[1], (size_t)n * out_f)) ||
        (st = zf_occl_grow(&o->fc_a, &o->fc_a_cap, (size_t)n * C)) ||
        (st = zf_occl_grow(&o->fc_y, &o->fc_y_cap, (size_t)n * out_f)))
        return st;
    float *y = o->dense[1];
    for (int b = 0; b < n; b++)
        memcpy(y + (size_t)b * out_f, y0, sizeof(float) * out_f);
    int *rows = o->fc_rows;
    for (int cell = 0; cell < cells; cell++) {
        const int cy = cell / g->w, cx = cell % g->w;
        int ns = 0;
        for (int b = 0; b < n; b++) {
            rect r = g->r[b];
            if (cy >= r.y0 && cy < r.y1 && cx >= r.x0 && cx < r.x1)
                rows[ns++] = b;
        }
        if (!ns)
            continue;
        /* every position holds the cell (the map's middle, mostly): add straight into y */
        const int all = ns == n;
#pragma omp parallel for schedule(static) if (ZF_OCCL_BIG((int64_t)ns * C))
        for (int j = 0; j < ns; j++) {
            const int b = rows[j];
            const rect r = g->r[b];
            const float *v = g->v + g->off[b] + (size_t)(cy - r.y0) * rect_w(r) + (cx - r.x0);
            float *a = o->fc_a + (size_t)j * C;
            for (int c = 0; c < C; c++)
                a[c] = v[(size_t)c * g->cols] - old[(size_t)c * cells + cell];
        }
        if ((st = sparse_product(o, all ? y : o->fc_y, all ? 1.0f : 0.0f, o->fc_a, ns, C,
                                 o->fc_w + (size_t)cell * C * out_f, out_f, 1)))
            return st;
        if (all)
            continue;
#pragma omp parallel for schedule(static) if (ZF_OCCL_BIG((int64_t)ns * out_f))
        for (int j = 0; j < ns; j++) {
            float *dst = y + (size_t)rows[j] * out_f;
            const float *src = o->fc_y + (size_t)j * out_f;
            for (int f = 0; f < out_f; f++)
                dst[f] += src[f];
        }
    }
    return ZF_OK;
}

/* The dense tail on (n, width) rows, in place between two buffers, from layer `first` on;
 * returns the output rows. */
static float *run_tail(occl *o, int first, int cur, int n, zf_status *st)
{
    const zf_net *net = o->net;
    for (int li = first; li < net->n_layers; li++) {
        const zf_layer *l = &net->layers[li];
        const int64_t in_f = zf_layer_in_size(l), out_f = zf_layer_out_size(l);
        float *x = o->dense[cur];
        switch (l->op) {
        case ZF_OP_FC:
            if ((*st = zf_occl_grow(&o->dense[!cur], &o->dense_cap[!cur], (size_t)n * (size_t)out_f)))
                return NULL;
            if (n >= SPARSE_MIN_ROWS) {
                float *y = o->dense[!cur];
                for (int i = 0; i < n; i++) {
                    if (l->bias)
                        memcpy(y + (size_t)i * out_f, l->bias, sizeof(float) * (size_t)out_f);
                    else
                        memset(y + (size_t)i * out_f, 0, sizeof(float) * (size_t)out_f);
                }
                if ((*st = sparse_product(o, y, 1.0f, x, n, (int)in_f, l->weight, (int)out_f, 0)))
                    return NULL;
            } else {
                zf_fc_forward(o->dense[!cur], x, l->weight, l->bias, n, (int)in_f, (int)out_f);
            }
            cur = !cur;
            break;
        case ZF_OP_RELU:
            zf_relu_forward(x, x, (size_t)n * (size_t)in_f);
            break;
        case ZF_OP_SOFTMAX:
            zf_softmax_forward(x, x, n, (int)in_f);
            break;
        default: /* flatten, dropout: the identity at inference */
            break;
        }
    }
    *st = ZF_OK;
    return o->dense[cur];
}

/* Full vectors into o->dense[0]: the unoccluded map with each position's region laid over it. */
static zf_status assemble_dense(occl *o, const region *g, const float *base)
{
    const int64_t width = (int64_t)g->c * g->h * g->w;
    zf_status st = zf_occl_grow(&o->dense[0], &o->dense_cap[0], (size_t)g->n * (size_t)width);
    if (st)
        return st;
#pragma omp parallel for schedule(static) if (ZF_OCCL_BIG((int64_t)g->n * width))
    for (int b = 0; b < g->n; b++) {
        float *dst = o->dense[0] + (size_t)b * width;
        memcpy(dst, base, sizeof(float) * (size_t)width);
        rect r = g->r[b];
        for (int c = 0; c < g->c; c++)
            for (int y = r.y0; y < r.y1; y++)
                memcpy(dst + ((size_t)c * g->h + y) * g->w + r.x0,
                       g->v + (size_t)c * g->cols + g->off[b] + (size_t)(y - r.y0) * rect_w(r),
                       sizeof(float) * (size_t)rect_w(r));
    }
    return ZF_OK;
}

zf_status zf_occl_fc_flush(occl *o)
{
    region *g = &o->fc_grp;
    if (!g->n)
        return ZF_OK;
    const zf_net *net = o->net;
    double tt = zf_clock_now();
    zf_status st = fc_from_region(o, g);
    const float *outp = st ? NULL : run_tail(o, o->fc_delta + 1, 1, g->n, &st);
    o->res->layer_seconds[net->n_layers - 1] += zf_clock_now() - tt;
    if (st)
        return st;
    zf_occl_read_outputs(o, outp, g->n, o->res->prob + o->fc_grp_p0, o->res->argmax + o->fc_grp_p0);
    o->fc_grp_p0 += g->n;
    g->n = 0;
    return ZF_OK;
}

zf_status zf_occl_fc_gather(occl *o, const region *cur, int64_t p0)
{
    region *g = &o->fc_grp;
    zf_status st;
    if (g->n + cur->n > o->fc_grp_max && (st = zf_occl_fc_flush(o)))
        return st;
    if (!g->n)
        o->fc_grp_p0 = p0;
    const int64_t at = g->n ? g->off[g->n - 1] + rect_area(g->r[g->n - 1]) : 0;
    for (int b = 0; b < cur->n; b++) {
        g->r[g->n + b] = cur->r[b];
        g->off[g->n + b] = at + cur->off[b];
    }
    for (int c = 0; c < cur->c; c++)
        memcpy(g->v + (size_t)c * g->cols + at, cur->v + (size_t)c * cur->cols, sizeof(float) * (size_t)cur->cols);
    g->n += cur->n;
    return ZF_OK;
}


zf_status zf_occl_tail_dense(occl *o, const region *cur, int64_t p0)
{
    const zf_net *net = o->net;
    const int n = cur->n;
    double tt = zf_clock_now();
    zf_status st = assemble_dense(o, cur, o->base[o->n_spatial - 1]);
    const float *outp = st ? NULL : run_tail(o, o->n_spatial, 0, n, &st);
    o->res->layer_seconds[net->n_layers - 1] += zf_clock_now() - tt;
    if (!st)
        zf_occl_read_outputs(o, outp, n, o->res->prob + p0, o->res->argmax + p0);
    return st;
}

zf_status zf_occl_fc_prepare(occl *o)
{
    const zf_net *net = o->net;
    const zf_layer *fl = &net->layers[o->fc_delta], *ll = &net->layers[o->n_spatial - 1];
    const int C = ll->out_c, cells = ll->out_h * ll->out_w, out_f = fl->out_c;
    const int64_t in_f = zf_layer_in_size(fl);
    o->fc_w = zf_occl_scratch_alloc(sizeof(float) * (size_t)in_f * out_f);
    if (!o->fc_w)
        return zf_error(ZF_ERR_NOMEM, "occlusion: out of memory for %s", fl->name);
    /* W^T with its rows in cell-major order: eight weight rows by eight columns at a time
     * (one 8 x 8 transpose), each column's eight values stored past the caches where aligned
     * (151 MB on AlexNet, written once and read back much later) */
    const float *w = fl->weight;
    float *fw = o->fc_w;
#pragma omp parallel
    {
#pragma omp for schedule(static)
    for (int f0 = 0; f0 < out_f; f0 += 8) {
        const int fn = imin(8, out_f - f0);
        const float *rows = w + (size_t)f0 * in_f;
        int64_t j = 0;
#ifdef __AVX2__
        if (fn == 8)
            for (; j + 8 <= in_f; j += 8) {
                __m256 a[8];
                for (int q = 0; q < 8; q++)
                    a[q] = _mm256_loadu_ps(rows + (size_t)q * in_f + j);
                zf_transpose8x8(a);
                for (int q = 0; q < 8; q++) { /* column j + q of the eight rows */
                    const __m256 col = a[q];
                    const int64_t jj = j + q, c = jj / cells, cell = jj % cells;
                    float *dst = fw + ((size_t)cell * C + c) * out_f + f0;
                    if (((uintptr_t)dst & 31) == 0)
                        _mm256_stream_ps(dst, col);
                    else
                        _mm256_storeu_ps(dst, col);
                }
            }
#endif
        for (; j < in_f; j++) {
            const int64_t c = j / cells, cell = j % cells;
            float *dst = fw + ((size_t)cell * C + c) * out_f + f0;
            for (int f = 0; f < fn; f++)
                dst[f] = rows[(size_t)f * in_f + j];
        }
    }
#ifdef __AVX2__
    _mm_sfence(); /* this thread's streamed stores, before the barrier that ends the region */
#endif
    }
    return ZF_OK;
}
