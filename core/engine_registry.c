/* The one place that lists the engines (zf/engine.h): the CPU engine always; the CUDA engine where
 * this build has it, from its own module (libzfviz_cuda.so, cuda/CMakeLists.txt defines
 * ZF_CUDA_MODULE for this file alone) loaded at its first use. The libraries behind it (the CUDA
 * runtime, cuDNN, cuBLAS) take 0.15 s and 26,000 page faults to map into a process; a command that
 * runs on the CPU never loads them, and `--device auto` loads them only where an NVIDIA driver is
 * there to be asked. A build that links the engine into the program (the host emulation of
 * scripts/cuda-emu-test.sh) defines ZF_CUDA_LINKED instead. */
#include "zf/engine.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern const zf_engine_iface zf_engine_cpu;

#if defined(ZF_CUDA_LINKED)
extern const zf_engine_iface zf_engine_cuda;
#define HAVE_CUDA 1
static const zf_engine_iface *cuda_load(char *why, size_t len)
{
    (void)why, (void)len;
    return &zf_engine_cuda;
}
#elif defined(ZF_CUDA_MODULE)
#define HAVE_CUDA 1
/* The module beside the program (its folder's ZF_CUDA_MODULE_DIR), else by the search path. */
static const zf_engine_iface *cuda_load(char *why, size_t len)
{
    char exe[PATH_MAX], path[PATH_MAX + 64];
    void *h = NULL;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(path, sizeof path, "%s/%s/%s", exe, ZF_CUDA_MODULE_DIR, ZF_CUDA_MODULE);
            if (!access(path, F_OK) && !(h = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
                snprintf(why, len, "%s", dlerror());
        }
    }
    if (!h && !why[0] && !(h = dlopen(ZF_CUDA_MODULE, RTLD_NOW | RTLD_LOCAL)))
        snprintf(why, len, "%s", dlerror());
    if (!h)
        return NULL;
    const zf_engine_iface *e = dlsym(h, "zf_engine_cuda");
    if (!e)
        snprintf(why, len, "%s has no engine table: %s", ZF_CUDA_MODULE, dlerror());
    return e; /* the module stays loaded for the life of the process */
}
#endif

#ifdef HAVE_CUDA
/* The CUDA engine's entry in the list: it loads the module when first asked anything that needs
 * it, answers probe, versions and supports through it, and hands its table to zf_engine_open. */
static const zf_engine_iface *cuda_real;
static char cuda_why[512];

static void cuda_load_once(void)
{
    cuda_real = cuda_load(cuda_why, sizeof cuda_why);
}

static const zf_engine_iface *cuda(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, cuda_load_once);
    if (!cuda_real)
        zf_error(ZF_ERR_DEVICE, "the CUDA engine cannot be loaded: %s", cuda_why);
    return cuda_real;
}

/* A device node or driver file that a machine with an NVIDIA driver has: its absence tells that no
 * CUDA device can be used without loading anything (nodes in containers, /dev/dxg under WSL). */
static zf_status cuda_present(void)
{
    static const char *const paths[] = {"/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/dxg"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (!access(paths[i], F_OK))
            return ZF_OK;
    return zf_error(ZF_ERR_DEVICE, "no CUDA device: the NVIDIA driver is not loaded (no /dev/nvidiactl)");
}

static zf_status cuda_probe(int device, char *desc, size_t len)
{
    const zf_engine_iface *e = cuda();
    return e ? e->probe(device, desc, len) : ZF_ERR_DEVICE;
}
static void cuda_versions(char *buf, size_t len)
{
    const zf_engine_iface *e = cuda();
    if (e)
        e->versions(buf, len);
    else
        snprintf(buf, len, "not loaded: %s", zf_last_error());
}
static int cuda_supports(zf_engine_op op)
{
    const zf_engine_iface *e = cuda();
    return e && e->supports(op);
}
static const zf_engine_iface cuda_entry = {
    .name = "cuda",
    .probe = cuda_probe,
    .versions = cuda_versions,
    .supports = cuda_supports,
    .present = cuda_present,
    .resolve = cuda, /* the loaded engine's table opens and runs its contexts */
};
#endif

const zf_engine_iface *const *zf_engine_list(void)
{
    static const zf_engine_iface *const list[] = {
        &zf_engine_cpu,
#ifdef HAVE_CUDA
        &cuda_entry,
#endif
        NULL};
    return list;
}
