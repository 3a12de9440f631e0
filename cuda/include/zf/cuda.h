/* The CUDA engine's public face. Every function works on a machine without a GPU: it returns
 * ZF_ERR_DEVICE with a message that says why. */
#ifndef ZF_CUDA_H
#define ZF_CUDA_H

#include <stddef.h>

#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices (0 with the reason in zf_last_error() when there is none, e.g. no
 * driver). desc gets "NVIDIA H100 80GB HBM3, 79 GiB, compute 9.0, driver 13.0" for device 0. */
int zf_cuda_device_count(char *desc, size_t len);

#ifdef __cplusplus
}
#endif
#endif
