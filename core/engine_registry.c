/* The one place that lists the engines (zf/engine.h): the CPU engine always, the CUDA engine when
 * this build has it (cuda/CMakeLists.txt defines ZF_CUDA_ENABLED for this file alone). */
#include "zf/engine.h"

extern const zf_engine_iface zf_engine_cpu;
#ifdef ZF_CUDA_ENABLED
extern const zf_engine_iface zf_engine_cuda;
#endif

const zf_engine_iface *const *zf_engine_list(void)
{
    static const zf_engine_iface *const list[] = {
        &zf_engine_cpu,
#ifdef ZF_CUDA_ENABLED
        &zf_engine_cuda,
#endif
        NULL};
    return list;
}
