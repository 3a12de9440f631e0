/* libFuzzer target: safetensors files as weights of a built net, as a training checkpoint (with
 * momentum and metadata) and as a whole model (the net built from the metadata). Each loads or
 * fails with a message. */
#include "fuzz_util.h"
#include "zf/model.h"
#include "zf/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static zf_net *net;
    static float *momentum;
    if (!net) {
        if (zf_net_new_builtin("alexnet-mini", &net))
            abort();
        momentum = calloc((size_t)zf_net_param_count(net), sizeof *momentum);
        if (!momentum)
            abort();
    }
    const char *path = fz_write(data, size, ".safetensors");
    zf_net_load_safetensors(net, path);
    zf_meta meta;
    if (zf_model_load_checkpoint(net, path, momentum, &meta) == ZF_OK)
        zf_meta_free(&meta);
    zf_net *whole = NULL;
    if (zf_model_load_memory(data, size, "fuzz.safetensors", &whole) == ZF_OK)
        zf_net_free(whole);
    return 0;
}
