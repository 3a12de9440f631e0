/* libFuzzer target: any byte string given to the ONNX loader must load or fail with a message,
 * never crash, hang or allocate without bound. Build: see docs/onnx.md (Fuzzing). */
#include <stddef.h>
#include <stdint.h>

#include "zf/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A few MB of parameters at most: ConstantOfShape lets a tiny file ask for any size. */
    zf_onnx_options o = {.max_params = 1 << 20};
    zf_net *net = NULL;
    if (zf_onnx_load_buffer(data, size, "fuzz", &o, &net) == ZF_OK)
        zf_net_free(net);
    return 0;
}
