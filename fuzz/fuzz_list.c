/* libFuzzer target: image list files (one path a line, comments, CRLF, relative paths joined to
 * the list's folder) read within their limits or refused with a message. */
#include "fuzz_util.h"
#include "zf/input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_write(data, size, ".txt");
    char **lines = NULL;
    int64_t n = 0;
    if (zf_list_read(path, "/data/images", &lines, &n) == ZF_OK)
        zf_paths_free(lines, n);
    if (zf_list_read(path, NULL, &lines, &n) == ZF_OK)
        zf_paths_free(lines, n);
    return 0;
}
