/* Helpers of the benchmark tests: a scratch directory, whole-file reads and writes, and a runner
 * for the CLI with a time limit. */
#ifndef SHARDLAB_TESTS_BENCH_HARNESS_H
#define SHARDLAB_TESTS_BENCH_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

/* A fresh directory under $TMPDIR (or /tmp) whose name starts with `tag`; *dir must hold 256. */
void sl_bt_mkdtemp(const char *tag, char *dir);
/* Removes the files of dir, then dir (no subdirectories expected). */
void sl_bt_rmtree(const char *dir);
/* dir/name into path (4096 bytes). */
void sl_bt_path(char *path, const char *dir, const char *name);
void sl_bt_write(const char *path, const char *text);
/* The whole file, NUL-terminated, malloc'd; NULL when it cannot be read. */
char *sl_bt_read(const char *path);

/* $SHARDLAB_BIN, or the build tree's shardlab. */
char *sl_bt_shardlab(void);
/* Runs argv (argv[0] a path) with `env` ("NAME=value", NULL-terminated, may be NULL) added,
 * stdout and stderr into out (cap bytes, NUL-terminated). The process group is killed after
 * timeout_s and *timed_out set. Returns the exit status (128 + signal when killed). */
int sl_bt_run(char *const *argv, char *const *env, double timeout_s, char *out, size_t cap,
              bool *timed_out);

#endif
