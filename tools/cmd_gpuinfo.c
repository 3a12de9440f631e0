/* zfviz gpuinfo: is there a usable GPU for the CUDA engine, and which libraries it runs on. */
#include <getopt.h>
#include <stdio.h>

#include "common.h"

#include "zf/engine.h"

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
    const zf_engine_iface *gpu = NULL; /* the first engine after the CPU's */
    for (const zf_engine_iface *const *e = zf_engine_list() + 1; *e && !gpu; e++)
        gpu = *e;
    if (!gpu) {
        printf("built without the CUDA engine (no nvcc or cuDNN at configure time, or -DZF_CUDA=OFF): CPU only\n");
        return 1;
    }
    char versions[256], desc[512];
    gpu->versions(versions, sizeof versions);
    printf("libraries: %s\n", versions);
    /* the probe opens device 0 as --device cuda would: streams, cuDNN and cuBLAS handles */
    zf_status st = gpu->probe(0, desc, sizeof desc);
    if (st)
        return zft_fail("gpuinfo", st);
    printf("device 0:  %s: %s\n", gpu->name, desc);
    return 0;
}
