/* Status codes and the thread-local last-error message shared by every zfviz library. */
#ifndef ZF_STATUS_H
#define ZF_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef int zf_status;

enum {
    ZF_OK = 0,
    ZF_ERR_IO,          /* a file could not be opened, read or written */
    ZF_ERR_FORMAT,      /* a file's contents are malformed or truncated */
    ZF_ERR_SHAPE,       /* a tensor has the wrong shape for its use */
    ZF_ERR_ARG,         /* a bad parameter: unknown layer, channel out of range, ... */
    ZF_ERR_NOMEM,       /* an allocation failed */
    ZF_ERR_UNSUPPORTED, /* valid input the engine does not implement */
    ZF_ERR_DEVICE,      /* CUDA, cuDNN or cuBLAS failure, or no device */
    ZF_ERR_DB,          /* SQLite failure */
    ZF_ERR_INTERRUPTED  /* the user asked to stop (SIGINT) */
};

/* Records a message (printf-style) for zf_last_error() and returns `code`, so that error paths
 * read `return zf_error(ZF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));`. */
zf_status zf_error(zf_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with more context ("loading weights: " + old message). */
zf_status zf_error_prefix(zf_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether ZFVIZ_DEBUG is set to anything but "" or "0": messages then also name the failing
 * library call and its place in the source, for a bug report; users see one plain line. */
int zf_debug(void);

/* Appends " [<where>]" (printf-style: the call, function, file and line) to the current message
 * when zf_debug(), and returns `code`. */
zf_status zf_error_where(zf_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message of the last error on this thread; "" when none was recorded. */
const char *zf_last_error(void);

/* A short name for a status code ("I/O error", "bad format", ...). */
const char *zf_status_name(zf_status code);

/* Cancellation. Long-running library loops poll zf_interrupted and return ZF_ERR_INTERRUPTED so
 * that partial work can be closed cleanly. It asks the abort callback; the default one reads an
 * atomic flag that zf_abort_request() sets (async-signal-safe: the tools' SIGINT handler calls
 * it) and zf_abort_clear() clears. */
typedef int (*zf_abort_callback)(void *ctx);
/* Installs `cb` (NULL: the default, the flag); set it before the work it is to stop starts. It
 * may be called from any of the work's threads. */
void zf_set_abort_callback(zf_abort_callback cb, void *ctx);
/* The abort callback's answer: nonzero when the work is to stop. */
int zf_abort_requested(void);
void zf_abort_request(void);
void zf_abort_clear(void);
/* What the library's loops read. */
#define zf_interrupted (zf_abort_requested() != 0)

#ifdef __cplusplus
}
#endif
#endif
