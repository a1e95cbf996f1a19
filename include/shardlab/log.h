/* The logger: the only way library code prints. Level from SHARDLAB_LOG
 * (error|warn|info|debug; default info); output to stderr with a level tag. */
#ifndef SHARDLAB_LOG_H
#define SHARDLAB_LOG_H

typedef enum sl_log_level { SL_LOG_ERROR, SL_LOG_WARN, SL_LOG_INFO, SL_LOG_DEBUG } sl_log_level;

void sl_log(sl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sl_log_set_level(sl_log_level level);
sl_log_level sl_log_get_level(void);

#define SL_LOG_ERROR(...) sl_log(SL_LOG_ERROR, __VA_ARGS__)
#define SL_LOG_WARN(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define SL_LOG_INFO(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define SL_LOG_DEBUG(...) sl_log(SL_LOG_DEBUG, __VA_ARGS__)

#endif
