/* The test suite's one copy of its process and file helpers: commands run with a time limit in
 * their own process group (a hang kills mpirun and every rank at once and fails the test instead
 * of stalling the suite), scratch directories, whole-file reads and writes, and the paths of the
 * shardlab binary and of the running test. Failures here fail the calling test (cmocka). */
#ifndef SHARDLAB_TESTS_SUPPORT_H
#define SHARDLAB_TESTS_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- processes (process.c) ---- */

/* How a command runs; a zeroed struct (or NULL) means: this environment, this directory,
 * inherited standard input, stdout and stderr both captured. Under AddressSanitizer the child
 * also gets the settings that let the ranks' leak check see past Open MPI (which keeps
 * allocations until exit): its components stay loaded (so their frames have names), stacks are
 * unwound without frame pointers (the MPI libraries have none) and tests/support/lsan.supp names
 * the libraries to ignore; `env` is applied after them and may override them. */
typedef struct sl_ts_spawn {
    char *const *env;  /* "NAME=value" additions, NULL-terminated; may be NULL */
    const char *cwd;   /* working directory of the command; NULL: this one */
    const char *input; /* text on its standard input; NULL: inherited */
    bool drop_stderr;  /* standard error to /dev/null instead of the capture */
} sl_ts_spawn;

/* A command running in its own process group, its output going to an unlinked temporary file. */
typedef struct sl_ts_proc {
    pid_t pid;
    int fd;
    double deadline;
    double timeout_s;
    char what[256]; /* argv[0], for messages */
} sl_ts_proc;

/* Starts argv (argv[0] a path, NULL-terminated); fails the test when it cannot fork. */
void sl_ts_start(sl_ts_proc *p, char *const *argv, const sl_ts_spawn *how, double timeout_s);
/* Waits for p, killing its whole process group at the deadline; out receives the output
 * (truncated to cap - 1 bytes, NUL-terminated). On a timeout *timed_out is set, or, when
 * timed_out is NULL, the test fails showing the output. Returns the exit status, 128 + signal
 * when killed by one. */
int sl_ts_finish(sl_ts_proc *p, char *out, size_t cap, bool *timed_out);
/* sl_ts_finish keeping the whole output: *out is malloc'd and NUL-terminated. */
int sl_ts_finish_alloc(sl_ts_proc *p, char **out, bool *timed_out);
/* Whether p's output so far contains needle, polling until it does or timeout_s passes. */
bool sl_ts_await_output(const sl_ts_proc *p, const char *needle, double timeout_s);
/* Start then finish. */
int sl_ts_run(char *const *argv, const sl_ts_spawn *how, double timeout_s, char *out, size_t cap,
              bool *timed_out);

/* Starts `shardlab launch ARGS...` (args NULL-terminated, at most 61) with env ("NAME=value",
 * NULL-terminated, may be NULL) added, as sl_ts_start does. */
void sl_ts_launch_start(sl_ts_proc *p, char *const *env, double timeout_s, char *const *args);
/* sl_ts_launch_start, then sl_ts_finish; a run past timeout_s fails the test. */
int sl_ts_launch(char *const *env, double timeout_s, char *const *args, char *out, size_t cap);

/* Runs `shardlab ARGS` (args split at spaces, no shell quoting) as sl_ts_run does, keeping the
 * whole output: *out is malloc'd. A run past timeout_s fails the test. */
int sl_ts_shardlab(const char *args, const sl_ts_spawn *how, double timeout_s, char **out);

/* Splits text at spaces into argv (NULL-terminated, at most cap - 1 words); the words live in
 * storage (at least strlen(text) + 1 bytes). Returns the count. */
int sl_ts_split(const char *text, char *storage, char **argv, int cap);

/* Seconds on a monotonic clock. */
double sl_ts_now(void);

/* ---- files (files.c) ---- */

/* A fresh directory $TMPDIR/shardlab-TAG-XXXXXX (TMPDIR unset: /tmp) into dir. */
void sl_ts_mkdtemp(const char *tag, char *dir, size_t cap);
/* Removes dir and everything below it (links are removed, not followed); fails the test when
 * something there cannot be removed. A missing dir is not an error. */
void sl_ts_rmtree(const char *dir);
/* dir/name, in a static slot of 64 (the next 63 calls keep it valid). */
const char *sl_ts_join(const char *dir, const char *name);
/* Writes text to path (mode 0755 when executable) and returns path; fails the test when it
 * cannot. */
const char *sl_ts_write(const char *path, const char *text, bool executable);
/* The whole file, malloc'd and NUL-terminated (*len its length when len is not NULL); NULL when
 * it cannot be read. */
char *sl_ts_read(const char *path, size_t *len);
/* sl_ts_read, failing the test (naming path) when the file cannot be read. */
char *sl_ts_read_or_fail(const char *path);
/* The file into buf (truncated to cap - 1 bytes, NUL-terminated); "" when it cannot be read. */
void sl_ts_read_into(const char *path, char *buf, size_t cap);
/* How many lines of the file at path contain needle (0 when it cannot be read). */
int sl_ts_count_lines(const char *path, const char *needle);
/* Whether path exists. */
bool sl_ts_exists(const char *path);

/* ---- checks (expect.c) ---- */

/* Fails the test, showing text, unless text contains needle. */
void sl_ts_expect(const char *text, const char *needle);

/* ---- paths (paths.c) ---- */

/* $SHARDLAB_BIN (the CLI), or the build tree's copy. */
char *sl_ts_shardlab_bin(void);
/* This test executable's path. */
char *sl_ts_self(void);

/* ---- plan variants (plan_variants.c) ---- */

/* Plan flags of every strategy variant (Accelerate's flags; "" is DDP) and every precision whose
 * observed dtypes, collectives and memory must equal the plan's prediction. */
extern const char *const sl_ts_strategies[];
extern const size_t sl_ts_n_strategies;
extern const char *const sl_ts_precisions[];
extern const size_t sl_ts_n_precisions;

#endif
