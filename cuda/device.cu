/* Device discovery for the CUDA engine: is there a GPU, and what is it. */
#include <cuda_runtime.h>
#include <stdio.h>

#include "zf/cuda.h"

extern "C" int zf_cuda_device_count(char *desc, size_t len)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        zf_error(ZF_ERR_DEVICE, "no CUDA device: %s", cudaGetErrorString(e));
        if (desc && len)
            desc[0] = '\0';
        return 0;
    }
    if (count > 0 && desc && len) {
        cudaDeviceProp p;
        int drv = 0;
        if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) {
            cudaDriverGetVersion(&drv);
            snprintf(desc, len, "%s, %.0f GiB, compute %d.%d, driver %d.%d", p.name,
                     p.totalGlobalMem / 1073741824.0, p.major, p.minor, drv / 1000, (drv % 1000) / 10);
        }
    }
    return count;
}
