/* The one dispatch point of zfviz's own kernels: the table of each compiled instruction set
 * (kernels_internal.h), the choice among them by what the CPU runs and ZFVIZ_ISA, and the plain
 * names of the kernel functions, which call the chosen set's. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_internal.h"
#include "zf/cpu.h"
#include "zf/status.h"

#define ZF_KERNEL_DECLARE(type, name, params, args) type name##_sse params; type name##_avx2 params; \
    type name##_avx512 params;
ZF_KERNELS(ZF_KERNEL_DECLARE, ZF_KERNEL_DECLARE)

typedef struct zf_kernel_table {
    const char *isa;
#define ZF_KERNEL_FIELD(type, name, params, args) type(*name) params;
    ZF_KERNELS(ZF_KERNEL_FIELD, ZF_KERNEL_FIELD)
} zf_kernel_table;

#define ZF_KERNEL_SSE(type, name, params, args) .name = name##_sse,
#define ZF_KERNEL_AVX2(type, name, params, args) .name = name##_avx2,
#define ZF_KERNEL_AVX512(type, name, params, args) .name = name##_avx512,
/* narrowest first */
static const zf_kernel_table tables[] = {
    {.isa = "sse", ZF_KERNELS(ZF_KERNEL_SSE, ZF_KERNEL_SSE)},
    {.isa = "avx2", ZF_KERNELS(ZF_KERNEL_AVX2, ZF_KERNEL_AVX2)},
    {.isa = "avx512", ZF_KERNELS(ZF_KERNEL_AVX512, ZF_KERNEL_AVX512)},
};
#define N_TABLES ((int)(sizeof tables / sizeof tables[0]))

static _Atomic(const zf_kernel_table *) active;

static int table_index(const char *isa)
{
    for (int i = 0; i < N_TABLES; i++)
        if (!strcmp(tables[i].isa, isa))
            return i;
    return -1;
}

/* The table for isa (NULL or "": the widest this CPU runs), or NULL when there is none or the CPU
 * cannot run it; records nothing, so that the first kernel call leaves zf_last_error alone. */
static const zf_kernel_table *choose(const char *isa)
{
    const int top = table_index(zf_cpu_kernels_max());
    const int i = isa && *isa ? table_index(isa) : top;
    return i >= 0 && i <= top ? &tables[i] : NULL;
}

/* The first kernel call chooses unless zf_cpu_set_kernels did: threads that race here store the
 * same table. */
static const zf_kernel_table *kernels(void)
{
    const zf_kernel_table *t = atomic_load_explicit(&active, memory_order_acquire);
    if (t)
        return t;
    t = choose(getenv("ZFVIZ_ISA"));
    if (!t)
        t = choose(NULL);
    atomic_store_explicit(&active, t, memory_order_release);
    return t;
}

const char *zf_cpu_kernels(void) { return kernels()->isa; }

zf_status zf_cpu_set_kernels(const char *isa)
{
    const zf_kernel_table *t = choose(isa);
    if (!t && table_index(isa) < 0)
        return zf_error(ZF_ERR_ARG, "'%s' is not a kernel set (sse, avx2 or avx512)", isa);
    if (!t)
        return zf_error(ZF_ERR_UNSUPPORTED, "this CPU cannot run the %s kernels (the widest it runs: %s)", isa,
                        zf_cpu_kernels_max());
    atomic_store_explicit(&active, t, memory_order_release);
    return ZF_OK;
}

#define ZF_KERNEL_CALL_R(type, name, params, args) type name params { return kernels()->name args; }
#define ZF_KERNEL_CALL_V(type, name, params, args) type name params { kernels()->name args; }
ZF_KERNELS(ZF_KERNEL_CALL_R, ZF_KERNEL_CALL_V)
