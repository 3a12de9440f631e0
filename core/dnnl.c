/* oneDNN behind dnnl_internal.h: convolution primitives planned once per geometry (oneDNN's
 * blocked layouts inside, NCHW outside, its scratch in the caller's workspace) and dnnl_sgemm. */
#include "dnnl_internal.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zf/cpu.h"

/* One engine and stream for the process, made on first use. oneDNN fixes its widest instruction
 * set then too: the one zfviz's own kernels run (ZFVIZ_ISA narrows both alike). */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static char isa_name[16];

static void init(void)
{
    const char *k = zf_cpu_kernels();
    dnnl_cpu_isa_t isa = !strcmp(k, "sse") ? dnnl_cpu_isa_sse41 : !strcmp(k, "avx2") ? dnnl_cpu_isa_avx2 : dnnl_cpu_isa_all;
    if (dnnl_set_max_cpu_isa(isa) != dnnl_success)
        return;
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        return;
    if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(engine);
        engine = NULL;
        return;
    }
    snprintf(isa_name, sizeof isa_name, "%s", k);
}

/* The engine when oneDNN runs the kernel set zfviz runs now, else NULL. */
static dnnl_engine_t get_engine(void)
{
    pthread_once(&once, init);
    return engine && !strcmp(isa_name, zf_cpu_kernels()) ? engine : NULL;
}

const char *zf_dnnl_version(void)
{
    static char buf[32];
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, sizeof buf, "%d.%d.%d", v->major, v->minor, v->patch);
    return buf;
}

const char *zf_dnnl_isa(void)
{
    if (!get_engine())
        return NULL;
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

/* A planned convolution: the primitive, the reorders between NCHW and its layouts (NULL where
 * it reads or writes NCHW itself), and where each piece lives in the caller's workspace. The
 * memory objects are made once and pointed at the caller's buffers on each call, under lock. */
typedef struct plan {
    zf_conv_geom g;
    int relu;
    int ok;
    dnnl_primitive_t conv, r_src, r_wei, r_dst;
    dnnl_memory_t m_src, m_wei, m_bias, m_dst, m_scratch, u_src, u_wei, u_dst;
    size_t off_src, off_wei, off_dst, off_scratch, floats;
    char impl[64];
    pthread_mutex_t lock;
} plan;

/* Plans live for the process: a net has a few conv layers and a few batch sizes. Past the table's
 * size oneDNN is not used (the caller's own paths run), so nothing grows without bound. */
#define MAX_PLANS 96
static plan plans[MAX_PLANS];
static int n_plans;
static pthread_mutex_t plans_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t floats_of(const dnnl_memory_desc_t *md) { return (dnnl_memory_desc_get_size(md) + 63) / 64 * 16; }

static int same_md(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b) { return dnnl_memory_desc_equal(a, b); }

/* A reorder from a to b and the memory object of the layout that is not the caller's. */
static int make_reorder(dnnl_primitive_t *r, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t pd;
    if (dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL) != dnnl_success)
        return 1;
    int bad = dnnl_primitive_create(r, pd) != dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    return bad;
}

static void plan_build(plan *p)
{
    const zf_conv_geom *g = &p->g;
    const int pr = (g->oh - 1) * g->sh + g->kh - g->h - g->pt, pb_ = pr; /* what oh implies */
    const int pw = (g->ow - 1) * g->sw + g->kw - g->w - g->pl;
    if (-pb_ >= g->sh || -pw >= g->sw)
        return;
    const dnnl_dims_t src_d = {g->n, g->c, g->h, g->w}, dst_d = {g->n, g->k, g->oh, g->ow}, bias_d = {g->k};
    const dnnl_dims_t strides = {g->sh, g->sw}, pad_l = {g->pt, g->pl};
    const dnnl_dims_t pad_r = {pb_ > 0 ? pb_ : 0, pw > 0 ? pw : 0};
    dnnl_dims_t wei_d = {g->groups, g->k / g->groups, g->c / g->groups, g->kh, g->kw};
    const int grouped = g->groups > 1;
    if (!grouped)
        memmove(wei_d, wei_d + 1, sizeof(dnnl_dim_t) * 4);
    dnnl_memory_desc_t u_src, u_wei, u_dst, a_src, a_wei, a_dst, md_bias;
    dnnl_memory_desc_init_by_tag(&u_src, 4, src_d, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&u_dst, 4, dst_d, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&u_wei, grouped ? 5 : 4, wei_d, dnnl_f32, grouped ? dnnl_goihw : dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&a_src, 4, src_d, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&a_dst, 4, dst_d, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&a_wei, grouped ? 5 : 4, wei_d, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&md_bias, 1, bias_d, dnnl_f32, dnnl_x);
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &a_src, &a_wei,
                                           &md_bias, &a_dst, strides, pad_l, pad_r) != dnnl_success)
        return;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_post_ops_t po = NULL;
    if (p->relu && dnnl_post_ops_create(&po) == dnnl_success) {
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (po)
        dnnl_post_ops_destroy(po);
    if (st != dnnl_success)
        return;
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(p->impl, sizeof p->impl, "%s", impl ? impl : "?");
    const dnnl_memory_desc_t *c_src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *c_wei = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *c_dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *c_scr = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    int bad = dnnl_primitive_create(&p->conv, pd) != dnnl_success;
    size_t at = 0;
    if (!bad && !same_md(c_src, &u_src)) {
        bad |= make_reorder(&p->r_src, &u_src, c_src);
        p->off_src = at;
        at += floats_of(c_src);
    }
    if (!bad && !same_md(c_wei, &u_wei)) {
        bad |= make_reorder(&p->r_wei, &u_wei, c_wei);
        p->off_wei = at;
        at += floats_of(c_wei);
    }
    if (!bad && !same_md(c_dst, &u_dst)) {
        bad |= make_reorder(&p->r_dst, c_dst, &u_dst);
        p->off_dst = at;
        at += floats_of(c_dst);
    }
    p->off_scratch = at;
    at += floats_of(c_scr);
    p->floats = at;
    bad = bad || dnnl_memory_create(&p->m_src, c_src, engine, DNNL_MEMORY_NONE) != dnnl_success ||
          dnnl_memory_create(&p->m_wei, c_wei, engine, DNNL_MEMORY_NONE) != dnnl_success ||
          dnnl_memory_create(&p->m_dst, c_dst, engine, DNNL_MEMORY_NONE) != dnnl_success ||
          dnnl_memory_create(&p->m_bias, &md_bias, engine, DNNL_MEMORY_NONE) != dnnl_success ||
          dnnl_memory_create(&p->m_scratch, c_scr, engine, DNNL_MEMORY_NONE) != dnnl_success ||
          dnnl_memory_create(&p->u_src, &u_src, engine, DNNL_MEMORY_NONE) != dnnl_success ||
          dnnl_memory_create(&p->u_wei, &u_wei, engine, DNNL_MEMORY_NONE) != dnnl_success ||
          dnnl_memory_create(&p->u_dst, &u_dst, engine, DNNL_MEMORY_NONE) != dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    p->ok = !bad;
}

static int same_geom(const zf_conv_geom *a, const zf_conv_geom *b) { return !memcmp(a, b, sizeof *a); }

/* The plan of (g, relu), made on first use; NULL where oneDNN cannot run it. */
static plan *get_plan(const zf_conv_geom *g, int relu)
{
    if (!get_engine())
        return NULL;
    pthread_mutex_lock(&plans_lock);
    plan *p = NULL;
    for (int i = 0; i < n_plans && !p; i++)
        if (plans[i].relu == relu && same_geom(&plans[i].g, g))
            p = &plans[i];
    if (!p && n_plans < MAX_PLANS) {
        p = &plans[n_plans++];
        memset(p, 0, sizeof *p);
        p->g = *g;
        p->relu = relu;
        pthread_mutex_init(&p->lock, NULL);
        plan_build(p);
    }
    pthread_mutex_unlock(&plans_lock);
    return p && p->ok ? p : NULL;
}

int zf_dnnl_conv_ok(const zf_conv_geom *g, int relu) { return get_plan(g, relu) != NULL; }

size_t zf_dnnl_conv_workspace_floats(const zf_conv_geom *g, int relu)
{
    const plan *p = get_plan(g, relu);
    return p ? p->floats : 0;
}

const char *zf_dnnl_conv_impl(const zf_conv_geom *g, int relu)
{
    const plan *p = get_plan(g, relu);
    return p ? p->impl : NULL;
}

static int run(dnnl_primitive_t prim, int n, const dnnl_exec_arg_t *args)
{
    return dnnl_primitive_execute(prim, stream, n, args) != dnnl_success;
}

int zf_dnnl_conv_forward(float *out, const float *in, const float *w, const float *bias, const zf_conv_geom *g,
                         int relu, float *ws)
{
    plan *p = get_plan(g, relu);
    if (!p || !bias)
        return 1;
    pthread_mutex_lock(&p->lock);
    dnnl_memory_set_data_handle(p->u_src, (void *)in);
    dnnl_memory_set_data_handle(p->u_wei, (void *)w);
    dnnl_memory_set_data_handle(p->u_dst, out);
    dnnl_memory_set_data_handle(p->m_src, p->r_src ? ws + p->off_src : (void *)in);
    dnnl_memory_set_data_handle(p->m_wei, p->r_wei ? ws + p->off_wei : (void *)w);
    dnnl_memory_set_data_handle(p->m_dst, p->r_dst ? ws + p->off_dst : out);
    dnnl_memory_set_data_handle(p->m_bias, (void *)bias);
    dnnl_memory_set_data_handle(p->m_scratch, ws + p->off_scratch);
    int bad = 0;
    if (p->r_src)
        bad |= run(p->r_src, 2, (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, p->u_src}, {DNNL_ARG_TO, p->m_src}});
    if (p->r_wei)
        bad |= run(p->r_wei, 2, (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, p->u_wei}, {DNNL_ARG_TO, p->m_wei}});
    bad |= run(p->conv, 5,
               (dnnl_exec_arg_t[]){{DNNL_ARG_SRC, p->m_src}, {DNNL_ARG_WEIGHTS, p->m_wei}, {DNNL_ARG_BIAS, p->m_bias},
                                   {DNNL_ARG_DST, p->m_dst}, {DNNL_ARG_SCRATCHPAD, p->m_scratch}});
    if (p->r_dst)
        bad |= run(p->r_dst, 2, (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, p->m_dst}, {DNNL_ARG_TO, p->u_dst}});
    bad |= dnnl_stream_wait(stream) != dnnl_success;
    pthread_mutex_unlock(&p->lock);
    return bad;
}

int zf_dnnl_sgemm(char transa, char transb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc)
{
    if (!get_engine())
        return 1;
    return dnnl_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) != dnnl_success;
}
