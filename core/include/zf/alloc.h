/* The allocator under core's loaders, nets and maps: libc's, behind a hook that lets a test make
 * one chosen allocation fail (every out-of-memory branch can then be run). Memory from these is
 * released with free(). */
#ifndef ZF_ALLOC_H
#define ZF_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *zf_malloc(size_t n);
void *zf_calloc(size_t n, size_t size);
void *zf_realloc(void *p, size_t n);
char *zf_strdup(const char *s);
int zf_posix_memalign(void **p, size_t align, size_t n); /* 0 or ENOMEM, as posix_memalign */

/* Test-only: the n-th allocation from now (0: the next one) fails, once; n < 0 turns the hook
 * off. zf_alloc_fault_hit() says whether that failure has happened since. */
void zf_alloc_fail_after(int64_t n);
int zf_alloc_fault_hit(void);
/* Test-only: every allocation of more than `bytes` fails (and counts as a hit); 0 turns it off.
 * Shows that a loader refuses a lying header before it allocates what the header claims. */
void zf_alloc_set_limit(size_t bytes);

#endif
