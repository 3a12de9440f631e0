/* Output files: each appears whole or not at all (written beside its path and renamed into place),
 * and a file zfviz did not make is never replaced unless the program was told to (--force). */
#ifndef ZF_FILE_H
#define ZF_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zf_file zf_file;

enum {
    ZF_FILE_SYNC = 1 /* fsync before the rename: for files that hold long work (models, checkpoints) */
};

/* Whether `path` may be written: it does not exist, is empty, is not a regular file (a device such
 * as /dev/null), was made by zfviz (zf_file_is_ours), or replacing is forced. Otherwise an error
 * naming the file that says --force replaces it. A folder at `path` is always an error. */
zf_status zf_file_check(const char *path);

/* 1 when the file's content says zfviz made it: a PNG with tEXt Software=zfviz, a PDF whose
 * Creator is zfviz, a .npy whose header ends in "# zfviz", a .safetensors whose metadata has a
 * "zfviz." key, a SQLite database whose application_id is zfviz's, JSON whose first key is
 * "software": "zfviz", a text file whose first line starts "zfviz ", an HTML page that opens
 * "<!DOCTYPE html>\n<!-- zfviz ", a stylesheet or script that opens with a block comment whose
 * text starts "zfviz "; else 0. */
int zf_file_is_ours(const char *path);

/* Starts writing `path` (after zf_file_check): a temporary file in the same folder, or the device
 * itself when `path` is one. Errors name `path`. */
zf_status zf_file_open(const char *path, unsigned flags, zf_file **out);
/* The stdio stream to write to (its errors are found by zf_file_commit). */
FILE *zf_file_stream(zf_file *f);
/* fwrite that keeps the first error; returns it, naming the file and the OS's reason. */
zf_status zf_file_write(zf_file *f, const void *data, size_t n);
/* Flushes, closes and renames the file into place; on any failure removes the temporary file and
 * leaves what was at the path before. Frees f in every case. */
zf_status zf_file_commit(zf_file *f);
/* Abandons the file: the temporary file is removed, the path keeps what it had. NULL is a no-op. */
void zf_file_discard(zf_file *f);
/* zf_file_open + one write + zf_file_commit. */
zf_status zf_file_save(const char *path, const void *data, size_t n, unsigned flags);

/* Process-wide: replace files zfviz did not make (the tools' --force). */
void zf_file_set_force(int force);
int zf_file_force(void);

/* Process-wide record of the files this process created (paths that did not exist before), so that
 * a failed command can remove what it made. zf_file_remove_created removes them (newest first) and
 * empties the record; zf_file_forget_created only empties it. */
void zf_file_remove_created(void);
void zf_file_forget_created(void);

/* A PNG (whole file in memory) with a tEXt chunk Software=zfviz after its IHDR, in a new buffer
 * the caller frees. */
zf_status zf_png_mark(const void *png, size_t len, void **out, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
