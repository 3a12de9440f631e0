/* SHA-256 content hashes of images, image lists and models, through nettle (which picks the x86
 * SHA instructions itself where the CPU has them). */
#include <stdio.h>

#include "internal.h"

void zf_sha256_init(zf_sha256 *s) { sha256_init(&s->ctx); }

void zf_sha256_update(zf_sha256 *s, const void *data, size_t len)
{
    sha256_update(&s->ctx, len, (const uint8_t *)data);
}

void zf_sha256_final_hex(zf_sha256 *s, char hex[65])
{
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&s->ctx, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

void zf_db_sha256_hex(const void *data, size_t len, char hex[65])
{
    zf_sha256 s;
    zf_sha256_init(&s);
    zf_sha256_update(&s, data, len);
    zf_sha256_final_hex(&s, hex);
}
