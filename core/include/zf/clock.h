/* The monotonic clock that every timing in zfviz reads: the engine's layer and epoch timings, the
 * tools' progress lines and the benchmarks. */
#ifndef ZF_CLOCK_H
#define ZF_CLOCK_H

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds on CLOCK_MONOTONIC (from an arbitrary origin: only differences mean anything). */
double zf_clock_now(void);

#ifdef __cplusplus
}
#endif
#endif
