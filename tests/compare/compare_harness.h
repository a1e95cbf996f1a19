/* Helpers of the compare tests: running the shardlab binary, substring checks, scratch dirs. */
#ifndef SHARDLAB_TESTS_COMPARE_HARNESS_H
#define SHARDLAB_TESTS_COMPARE_HARNESS_H

#include <stddef.h>

typedef struct cmd_result {
    int status;
    char *out; /* stdout and stderr */
} cmd_result;

/* Runs `$SHARDLAB_BIN ARGS 2>&1` (skips the test when SHARDLAB_BIN is unset). */
cmd_result harness_shardlab(const char *args);
void assert_contains(const char *haystack, const char *needle);
/* A fresh directory under $TMPDIR or /tmp; removed with its plain files by harness_rmdir. */
void harness_mkdtemp(char *buf, size_t cap);
void harness_rmdir(const char *dir);
/* The whole file as a NUL-terminated string (fails the test when unreadable). */
char *harness_read(const char *path);

#endif
