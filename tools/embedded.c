/* The trained models linked into zfviz (tools/CMakeLists.txt generates the table). */
#include <string.h>

#include "common.h"
#include "embedded_models.h"

int zft_embedded_model(const char *name, const void **bytes, size_t *len)
{
    for (int i = 0; name && zf_embedded[i].name; i++)
        if (!strcmp(zf_embedded[i].name, name)) {
            *bytes = zf_embedded[i].begin;
            *len = (size_t)(zf_embedded[i].end - zf_embedded[i].begin);
            return 1;
        }
    return 0;
}
