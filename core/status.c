/* The thread-local last-error message behind zf_error() / zf_last_error(). */
#include "zf/status.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_msg[1024];

/* Cancellation: a lock-free atomic flag (safe to set from a signal handler) behind a callback. */
static atomic_int abort_flag;
static int abort_flag_read(void *ctx)
{
    (void)ctx;
    return atomic_load_explicit(&abort_flag, memory_order_relaxed);
}
static _Atomic(zf_abort_callback) abort_cb = abort_flag_read;
static void *_Atomic abort_ctx;

void zf_set_abort_callback(zf_abort_callback cb, void *ctx)
{
    atomic_store(&abort_ctx, ctx);
    atomic_store(&abort_cb, cb ? cb : abort_flag_read);
}

int zf_abort_requested(void)
{
    zf_abort_callback cb = atomic_load(&abort_cb);
    return cb(atomic_load(&abort_ctx));
}

void zf_abort_request(void) { atomic_store(&abort_flag, 1); }
void zf_abort_clear(void) { atomic_store(&abort_flag, 0); }

zf_status zf_error(zf_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    return code;
}

zf_status zf_error_prefix(zf_status code, const char *fmt, ...)
{
    char prefix[512], old[sizeof last_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_msg, sizeof old);
    /* Truncation of an over-long message is acceptable; the precision keeps gcc's check quiet. */
    snprintf(last_msg, sizeof last_msg, "%.511s%.511s", prefix, old);
    return code;
}

int zf_debug(void)
{
    const char *v = getenv("ZFVIZ_DEBUG");
    return v && *v && strcmp(v, "0") != 0;
}

zf_status zf_error_where(zf_status code, const char *fmt, ...)
{
    if (!zf_debug())
        return code;
    char where[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, sizeof where, fmt, ap);
    va_end(ap);
    size_t n = strlen(last_msg);
    snprintf(last_msg + n, sizeof last_msg - n, " [%s]", where);
    return code;
}

const char *zf_last_error(void) { return last_msg; }

const char *zf_status_name(zf_status code)
{
    switch (code) {
    case ZF_OK: return "ok";
    case ZF_ERR_IO: return "I/O error";
    case ZF_ERR_FORMAT: return "bad format";
    case ZF_ERR_SHAPE: return "wrong shape";
    case ZF_ERR_ARG: return "bad argument";
    case ZF_ERR_NOMEM: return "out of memory";
    case ZF_ERR_UNSUPPORTED: return "unsupported";
    case ZF_ERR_DEVICE: return "device error";
    case ZF_ERR_DB: return "database error";
    case ZF_ERR_INTERRUPTED: return "interrupted";
    default: return "unknown error";
    }
}
