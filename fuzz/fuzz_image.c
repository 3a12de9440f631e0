/* libFuzzer target: JPEG and PNG bytes decoded and preprocessed as a net's input (both resize
 * modes): each image decodes or fails with a message, and what decodes preprocesses cleanly. */
#include "fuzz_util.h"
#include "zf/io.h"
#include "zf/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zf_image *img = NULL;
    if (zf_image_decode(data, size, "fuzz", &img) != ZF_OK)
        return 0;
    static float out[3 * 37 * 29];
    zf_preproc pre = {.order = ZF_COLOR_RGB, .scale = 1, .mean = {0.485f, 0.456f, 0.406f},
                      .std = {0.229f, 0.224f, 0.225f}, .resize = ZF_RESIZE_SHORT_CROP,
                      .resize_short = 41};
    zf_image_to_input(out, img, &pre, 37, 29);
    pre.resize = ZF_RESIZE_EXACT;
    pre.order = ZF_COLOR_GREY;
    zf_image_to_input(out, img, &pre, 29, 37);
    zf_image_free(img);
    return 0;
}
