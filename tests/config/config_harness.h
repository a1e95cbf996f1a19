/* Helpers shared by the config-file tests: files in a private temporary directory, configs built
 * the way the command line builds them (flags, then the files they name), plans for gpt-tiny,
 * and the `shardlab` binary run as a user runs it. Include after <cmocka.h>. */
#ifndef SHARDLAB_TESTS_CONFIG_HARNESS_H
#define SHARDLAB_TESTS_CONFIG_HARNESS_H

#include <stddef.h>

#include "shardlab/config.h"
#include "shardlab/plan.h"

/* Writes `text` to <temporary dir>/<name> and returns the full path (a sl_ts_join slot). */
const char *harness_write(const char *name, const char *text);
/* The temporary directory's path. */
const char *harness_dir(void);

/* A config from space-separated flags, as sl_config_parse_args reads them (so --config_file
 * loads its file). The status is returned; *out is created either way and must be destroyed. */
sl_status harness_config(const char *flags, sl_config **out);

/* harness_config + sl_plan_compile for gpt-tiny. On success *out is the plan. */
sl_status harness_plan(const char *flags, sl_plan **out);

/* Asserts that `flags` fail to load or compile with SL_ERR_CONFIG (or SL_ERR_FORMAT when
 * `format` is set) and that the message names each of the NULL-terminated needles. */
void harness_expect_error(const char *flags, int format, const char *const *needles);

typedef struct harness_run_result {
    int status;
    char *out;
    size_t len;
} harness_run_result;

/* Runs `shardlab args` (tests/support's sl_ts_shardlab) with `input` on standard input (NULL:
 * none) in the temporary directory; merge_stderr folds standard error into the output. Free out
 * with free(). */
harness_run_result harness_run(const char *args, const char *input, int merge_stderr);

#endif
