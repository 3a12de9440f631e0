/* libc's allocator behind the fault hooks of zf/alloc.h: one atomic countdown, off (negative)
 * unless a test sets it, and a size limit, off (SIZE_MAX) unless a test sets it, so the cost
 * outside tests is two relaxed loads per allocation. */
#include "zf/alloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int64_t countdown = -1;
static atomic_int hit;
static _Atomic size_t largest_allowed = SIZE_MAX;

void zf_alloc_fail_after(int64_t n)
{
    atomic_store(&hit, 0);
    atomic_store(&countdown, n < 0 ? -1 : n);
}

int zf_alloc_fault_hit(void)
{
    return atomic_load(&hit);
}

void zf_alloc_set_limit(size_t bytes)
{
    atomic_store(&largest_allowed, bytes ? bytes : SIZE_MAX);
}

/* Counts one allocation of `bytes` against the hooks; 1 if it must fail. */
static int fault_next_sized(size_t bytes)
{
    if (bytes > atomic_load_explicit(&largest_allowed, memory_order_relaxed)) {
        atomic_store(&hit, 1);
        return 1;
    }
    if (atomic_load_explicit(&countdown, memory_order_relaxed) < 0)
        return 0;
    /* The thread that takes the countdown from 0 to -1 gets the one failure. */
    if (atomic_fetch_sub(&countdown, 1) != 0)
        return 0;
    atomic_store(&hit, 1);
    return 1;
}

void *zf_malloc(size_t n)
{
    return fault_next_sized(n) ? NULL : malloc(n);
}

void *zf_calloc(size_t n, size_t size)
{
    size_t bytes = n && size > SIZE_MAX / n ? SIZE_MAX : n * size;
    return fault_next_sized(bytes) ? NULL : calloc(n, size);
}

void *zf_realloc(void *p, size_t n)
{
    return fault_next_sized(n) ? NULL : realloc(p, n);
}

char *zf_strdup(const char *s)
{
    return fault_next_sized(strlen(s) + 1) ? NULL : strdup(s);
}

int zf_posix_memalign(void **p, size_t align, size_t n)
{
    if (fault_next_sized(n))
        return ENOMEM;
    return posix_memalign(p, align, n);
}
