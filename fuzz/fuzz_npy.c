/* libFuzzer target: any file given to the .npy reader loads or fails with a message, never
 * crashes, leaks or allocates what the header merely claims. */
#include "fuzz_util.h"
#include "zf/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_write(data, size, ".npy");
    zf_tensor *t = NULL;
    if (zf_npy_read(path, &t) == ZF_OK)
        zf_tensor_free(t);
    return 0;
}
