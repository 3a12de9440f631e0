/* PNG encoding into memory, for renderings stored as blobs: core's libpng simplified writer. */
#include "internal.h"
#include "zf/io.h"

zf_status zf_db_png_encode(const zf_image *img, void **out, size_t *out_len)
{
    return zf_image_encode_png(img, out, out_len);
}
