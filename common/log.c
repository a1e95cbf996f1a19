#include "shardlab/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sl_log_level_current = -1; /* -1: not yet read from SHARDLAB_LOG */

static sl_log_level sl_log_level_from_env(void) {
    const char *v = getenv("SHARDLAB_LOG");
    if (!v) return SL_LOG_INFO;
    if (!strcmp(v, "error")) return SL_LOG_ERROR;
    if (!strcmp(v, "warn")) return SL_LOG_WARN;
    if (!strcmp(v, "debug")) return SL_LOG_DEBUG;
    return SL_LOG_INFO;
}

sl_log_level sl_log_get_level(void) {
    if (sl_log_level_current < 0) sl_log_level_current = (int)sl_log_level_from_env();
    return (sl_log_level)sl_log_level_current;
}

void sl_log_set_level(sl_log_level level) {
    sl_log_level_current = (int)level;
}

void sl_log(sl_log_level level, const char *fmt, ...) {
    if (level > sl_log_get_level()) return;
    static const char *const tags[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "shardlab: %s: ", tags[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
