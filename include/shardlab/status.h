/* sl_status: how every fallible shardlab function reports failure.
 *
 * A function that fails returns a non-OK code and leaves a message (what failed, where — file,
 * line, key or tensor —, what was expected, what was found, how to fix it) in a thread-local
 * buffer that the caller reads with sl_error_message(). The library never exits or aborts on
 * user input; the CLI turns codes into exit statuses. */
#ifndef SHARDLAB_STATUS_H
#define SHARDLAB_STATUS_H

#include <stdarg.h>

typedef enum sl_status {
    SL_OK = 0,
    SL_ERR_INVALID_ARG, /* a caller passed a value outside the documented domain */
    SL_ERR_CONFIG,      /* a configuration key, flag or combination is wrong */
    SL_ERR_IO,          /* open/read/write/rename failed */
    SL_ERR_FORMAT,      /* a file's contents are malformed (safetensors, JSON, YAML, .bin) */
    SL_ERR_OOM,         /* an allocation failed */
    SL_ERR_NUMERIC,     /* a numeric condition the run cannot continue from (e.g. scale at min) */
    SL_ERR_MISMATCH,    /* two things that must agree do not (shapes, plans, checksums) */
    SL_ERR_INTERNAL     /* a broken invariant inside shardlab: a bug */
} sl_status;

/* Records `fmt` as the current error message and returns `code` (so callers can write
 * `return sl_error_set(SL_ERR_IO, "...", ...)`). */
sl_status sl_error_set(sl_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
sl_status sl_error_setv(sl_status code, const char *fmt, va_list ap);

/* Prepends context ("while loading FILE: ") to the current message; returns `code`. */
sl_status sl_error_prefix(sl_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The current thread's last error message ("" when none was set). */
const char *sl_error_message(void);
void sl_error_clear(void);

/* A short stable name for a code ("SL_ERR_CONFIG"). */
const char *sl_status_name(sl_status code);

/* Evaluate a fallible expression; return its status from the enclosing function on failure. */
#define SL_TRY(expr)                                                                               \
    do {                                                                                           \
        sl_status sl_try_status_ = (expr);                                                         \
        if (sl_try_status_ != SL_OK) return sl_try_status_;                                        \
    } while (0)

#endif
