/* Helpers of the launch tests: `shardlab launch` run in the background with a time limit (so a
 * hang fails the test instead of stalling the suite), a scratch directory per test, and small
 * files (shell scripts as rank programs, their logs). */
#ifndef SHARDLAB_TESTS_LAUNCH_HARNESS_H
#define SHARDLAB_TESTS_LAUNCH_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

/* A command running in its own process group, stdout and stderr going to a temporary file. */
typedef struct sl_lt_proc {
    int pid;
    int fd;
    double deadline;
} sl_lt_proc;

/* Starts `shardlab launch ARGS...` (args NULL-terminated) with env ("NAME=value", NULL-terminated,
 * may be NULL) added to the environment. */
void sl_lt_start(sl_lt_proc *p, char *const *env, double timeout_s, char *const *args);
/* Waits for p; at its deadline kills the whole group and fails the test, showing the output.
 * Returns the exit status (128 + signal when killed); out receives the output. */
int sl_lt_finish(sl_lt_proc *p, char *out, size_t cap);
/* Whether p's output contains `needle`, polling until it does or timeout_s passes. */
bool sl_lt_await_output(const sl_lt_proc *p, const char *needle, double timeout_s);
/* Start then finish. */
int sl_lt_launch(char *const *env, double timeout_s, char *const *args, char *out, size_t cap);

/* Fails the test, showing out, unless out contains needle. */
void sl_lt_expect(const char *out, const char *needle);

/* A fresh directory under $TMPDIR (or /tmp); *dir receives its path. */
void sl_lt_mkdtemp(char *dir, size_t cap);
/* Removes dir and everything in it. */
void sl_lt_rmtree(const char *dir);
/* Writes text to dir/name (mode 0755 when executable) and returns the path in a static slot of
 * 8 (the next 8 calls keep it valid). */
const char *sl_lt_write(const char *dir, const char *name, const char *text, bool executable);
/* The contents of path ("" when it cannot be read), NUL-terminated, into buf. */
void sl_lt_read(const char *path, char *buf, size_t cap);
/* How many lines of the file at path contain needle. */
int sl_lt_count_lines(const char *path, const char *needle);

/* $SHARDLAB_BIN (the CLI), or the build tree's copy. */
char *sl_lt_shardlab_bin(void);
/* This test executable's path. */
char *sl_lt_self(void);
/* Seconds on a monotonic clock. */
double sl_lt_now(void);

#endif
