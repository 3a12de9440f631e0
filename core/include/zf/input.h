/* What comes in from the user, checked before it is used: files (a folder, a device or an endless
 * pipe is refused in one message naming it, before anything is read), lists of image paths read
 * within fixed bounds, the one way every command finds the images under a folder, and values that
 * must be finite. */
#ifndef ZF_INPUT_H
#define ZF_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds on a list of image paths (one a line): no line longer than ZF_LIST_MAX_LINE bytes (a path
 * longer than any the system takes), at most ZF_LIST_MAX_BYTES bytes and ZF_LIST_MAX_ENTRIES
 * paths in all (ImageNet-21k's 14 million fit). A list beyond them is refused, not read on. */
#define ZF_LIST_MAX_LINE 4096
#define ZF_LIST_MAX_BYTES ((int64_t)1 << 30)
#define ZF_LIST_MAX_ENTRIES ((int64_t)1 << 24)

/* Whether `path` may be read as a `what` ("image", "list", ...): a regular file passes; a pipe
 * (FIFO, or "-" for standard input) passes when allow_pipe; a folder, a device or a socket is
 * refused ("x: is a folder, not a list"). *size (may be NULL) gets a regular file's size, -1 for
 * a pipe. */
zf_status zf_input_check(const char *path, const char *what, int allow_pipe, int64_t *size);

/* All of `path` in memory (*out is malloc'd, *len bytes, a 0 byte after them), checked as
 * zf_input_check says; a file of more than max bytes is refused without reading it, and a pipe is
 * read only as far as max. */
zf_status zf_input_read(const char *path, const char *what, int allow_pipe, size_t max, uint8_t **out,
                        size_t *len);

/* The lines of a text list of paths within the bounds above, "-" being standard input: blank lines
 * and lines starting with '#' skipped, a trailing CR dropped, a NUL byte refused. A relative path
 * is taken relative to `base` when it is not NULL. The caller frees with zf_paths_free. */
zf_status zf_list_read(const char *path, const char *base, char ***lines, int64_t *n);

/* The images at `arg`, found the one way every command finds them: a folder is searched
 * recursively (hidden names skipped, symbolic links followed, at most 64 levels deep) for .jpg,
 * .jpeg and .png files, in byte order of their absolute paths; an image file is itself; anything
 * else readable is a list (zf_list_read, paths relative to the list's folder, or to the current
 * folder for "-" and pipes). Finding none is an error. */
zf_status zf_images_find(const char *arg, char ***paths, int64_t *n);
/* The image files (as zf_images_find takes them) under folder `dir`, recursively, appended to
 * *paths (*n of them, *cap allocated), in no particular order. */
zf_status zf_images_walk(const char *dir, char ***paths, int64_t *n, int64_t *cap);
/* Whether `name` ends in .jpg, .jpeg or .png (any case). */
int zf_is_image_name(const char *name);
void zf_paths_free(char **paths, int64_t n);

/* ZF_OK when all n values are finite; else an error naming `name` and the first NaN or Inf found
 * (its flat index into *where, which may be NULL). */
zf_status zf_values_check_finite(const float *x, size_t n, const char *name, size_t *where);

#ifdef __cplusplus
}
#endif
#endif
