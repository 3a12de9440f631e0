/* zfviz gpuinfo: is there a usable GPU for the CUDA engine, and which libraries it runs on. */
#include <getopt.h>
#include <stdio.h>

#include "common.h"

#ifdef ZF_CUDA_ENABLED
#include "zf/cuda.h"
#endif

const char zf_cmd_gpuinfo_summary[] = "show the GPU, driver, CUDA/cuDNN/cuBLAS versions the CUDA engine uses";

static void usage(void)
{
    printf("usage: zfviz gpuinfo\n\n"
           "Prints the CUDA devices, the driver, and the CUDA runtime, cuDNN and cuBLAS versions the\n"
           "CUDA engine loads, then opens device 0 as --device cuda would (streams, cuDNN and\n"
           "cuBLAS handles) and reports its free memory. Exits with 1 when no GPU can be used.\n");
}

int zf_cmd_gpuinfo(int argc, char **argv)
{
    const zft_opt opts[] = {{0}};
    zft_args a = {.cmd = "gpuinfo", .argc = argc, .argv = argv, .shortopts = "h", .opts = opts,
                  .usage = usage};
    if (zft_args_parse(&a))
        return a.rc;
#ifndef ZF_CUDA_ENABLED
    printf("built without the CUDA engine (no nvcc or cuDNN at configure time, or -DZF_CUDA=OFF): CPU only\n");
    return 1;
#else
    char versions[256], desc[256];
    zf_cuda_versions(versions, sizeof versions);
    printf("libraries: %s\n", versions);
    const int n = zf_cuda_device_count(desc, sizeof desc);
    if (n == 0)
        return zft_fail("gpuinfo", ZF_ERR_DEVICE);
    printf("devices:   %d; device 0: %s\n", n, desc);
    zf_cuda_ctx *ctx = NULL;
    zf_status st = zf_cuda_ctx_new(0, &ctx);
    if (st)
        return zft_fail("gpuinfo", st);
    size_t free_b = 0, total_b = 0;
    st = zf_cuda_mem_info(ctx, &free_b, &total_b);
    if (!st)
        printf("context:   %s, %.0f MiB free of %.0f MiB, %s arithmetic by default\n", zf_cuda_ctx_name(ctx),
               free_b / 1048576.0, total_b / 1048576.0, zf_cuda_precision_name(zf_cuda_ctx_precision(ctx)));
    zf_cuda_ctx_free(ctx);
    return st ? zft_fail("gpuinfo", st) : 0;
#endif
}
