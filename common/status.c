#include "shardlab/status.h"

#include <stdio.h>
#include <string.h>

#define SL_ERROR_CAPACITY 4096

static _Thread_local char sl_error_buffer[SL_ERROR_CAPACITY];

sl_status sl_error_setv(sl_status code, const char *fmt, va_list ap) {
    vsnprintf(sl_error_buffer, sizeof sl_error_buffer, fmt, ap);
    return code;
}

sl_status sl_error_set(sl_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_error_setv(code, fmt, ap);
    va_end(ap);
    return code;
}

sl_status sl_error_prefix(sl_status code, const char *fmt, ...) {
    char prefix[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Shift the old message right to make room; a message longer than the buffer is cut. */
    size_t plen = strlen(prefix), olen = strlen(sl_error_buffer);
    if (plen >= SL_ERROR_CAPACITY) plen = SL_ERROR_CAPACITY - 1;
    if (plen + olen >= SL_ERROR_CAPACITY) olen = SL_ERROR_CAPACITY - 1 - plen;
    memmove(sl_error_buffer + plen, sl_error_buffer, olen);
    memcpy(sl_error_buffer, prefix, plen);
    sl_error_buffer[plen + olen] = '\0';
    return code;
}

const char *sl_error_message(void) {
    return sl_error_buffer;
}

void sl_error_clear(void) {
    sl_error_buffer[0] = '\0';
}

const char *sl_status_name(sl_status code) {
    switch (code) {
    case SL_OK: return "SL_OK";
    case SL_ERR_INVALID_ARG: return "SL_ERR_INVALID_ARG";
    case SL_ERR_CONFIG: return "SL_ERR_CONFIG";
    case SL_ERR_IO: return "SL_ERR_IO";
    case SL_ERR_FORMAT: return "SL_ERR_FORMAT";
    case SL_ERR_OOM: return "SL_ERR_OOM";
    case SL_ERR_NUMERIC: return "SL_ERR_NUMERIC";
    case SL_ERR_MISMATCH: return "SL_ERR_MISMATCH";
    case SL_ERR_INTERNAL: return "SL_ERR_INTERNAL";
    }
    return "SL_ERR_UNKNOWN";
}
