/* What the libFuzzer targets share: the input written to a file of this process's own (the
 * loaders read paths), in /dev/shm when there is one so that each execution stays in memory. */
#ifndef ZF_FUZZ_UTIL_H
#define ZF_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_path[256];

static void fz_cleanup(void)
{
    if (fz_path[0])
        unlink(fz_path);
}

/* Writes data to "<dir>/zf-fuzz-<pid><suffix>" and returns that path (static storage), removed
 * when the process exits. */
static inline const char *fz_write(const uint8_t *data, size_t size, const char *suffix)
{
    char *path = fz_path;
    if (!path[0])
        atexit(fz_cleanup);
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof fz_path, "%s/zf-fuzz-%d%s", dir, (int)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort(); /* the harness itself is broken, not the code under test */
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    return path;
}

#endif
