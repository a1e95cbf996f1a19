/* A C API over Google Benchmark (Debian's libbenchmark 1.7): every benchmark in bench/ is written
 * against it, and its output is Google Benchmark's own JSON, so that Google Benchmark's
 * comparison tooling (tools/compare.py) reads our result files as they are.
 *
 * A benchmark is a C function called with a state and the user data it was registered with. It
 * prepares its inputs, then loops `while (sl_bench_keep_running(st)) { ... }`; only the loop is
 * timed. Google Benchmark calls the function several times to pick an iteration count (unless
 * sl_bench_set_iterations fixed it) and once per repetition, so set-up belongs inside the
 * function, before the loop. The function must loop until sl_bench_keep_running returns false or
 * call sl_bench_skip_with_error and return.
 *
 *     static void bm_copy(sl_bench_state *st, void *user) {
 *         const int64_t n = sl_bench_arg(st, 0);
 *         ... allocate src, dst of n bytes ...
 *         while (sl_bench_keep_running(st)) memcpy(dst, src, n);
 *         sl_bench_set_bytes_processed(st, sl_bench_iterations(st) * n);
 *     }
 *     sl_bench *b;
 *     SL_TRY(sl_bench_register("memcpy", bm_copy, NULL, &b));
 *     SL_TRY(sl_bench_add_range(b, 1024, 1 << 26));       // memcpy/1024 ... memcpy/67108864
 *
 * The header lives in bench/, not include/shardlab/: it is the interface of the benchmark
 * harness (linked into the CLI with the C++ library behind it), not of the runtime.
 *
 * Registration and runs are process-wide and not thread-safe: register and run from one thread.
 * Benchmarks run in registration order. */
#ifndef SHARDLAB_BENCH_BENCHMARK_C_H
#define SHARDLAB_BENCH_BENCHMARK_C_H

#include <stdbool.h>
#include <stdint.h>

#include "shardlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_bench sl_bench;             /* a registered benchmark (one family of runs) */
typedef struct sl_bench_state sl_bench_state; /* one run: the loop, its timers and counters */
typedef void (*sl_bench_fn)(sl_bench_state *st, void *user);

/* ---- registration ---- */

/* Registers `fn` under `name` (copied). `user` is passed to every call and must outlive the
 * runs. Names with arguments get "/arg" (or "/name:arg") appended per argument. */
sl_status sl_bench_register(const char *name, sl_bench_fn fn, void *user, sl_bench **out);

/* Adds one run with argument list {a} / {v[0..n)}. Every run of a benchmark has the same number
 * of arguments. */
sl_status sl_bench_add_arg(sl_bench *b, int64_t a);
sl_status sl_bench_add_args(sl_bench *b, const int64_t *v, int n);
/* One argument from lo to hi: lo, then the powers of the range multiplier strictly between, then
 * hi (0 <= lo <= hi). */
sl_status sl_bench_add_range(sl_bench *b, int64_t lo, int64_t hi);
/* The cartesian product of one such range per argument: lohi[i] = {lo, hi} of argument i. */
sl_status sl_bench_add_ranges(sl_bench *b, const int64_t (*lohi)[2], int n);
/* lo, lo + step, ... up to hi inclusive (step > 0). */
sl_status sl_bench_add_dense_range(sl_bench *b, int64_t lo, int64_t hi, int64_t step);
/* The multiplier of the following sl_bench_add_range(s) calls (>= 2; Google Benchmark's
 * default 8). */
sl_status sl_bench_set_range_multiplier(sl_bench *b, int multiplier);
/* Names of the arguments, shown in run names as "name:value"; n must match the argument count. */
sl_status sl_bench_set_arg_names(sl_bench *b, const char *const *names, int n);

/* Runs exactly n iterations instead of growing the count until the minimum time is reached:
 * what benchmarks that must move in lock step with other processes (collectives) need. */
sl_status sl_bench_set_iterations(sl_bench *b, int64_t n);
/* Repetitions of the whole measurement (>= 1); with more than one, the JSON gets mean, median,
 * stddev and cv aggregates after the repetitions. Overrides sl_bench_run_opts.repetitions. */
sl_status sl_bench_set_repetitions(sl_bench *b, int n);
/* Seconds the timed loop must run at least (> 0; Google Benchmark's default 0.5). */
sl_status sl_bench_set_min_time(sl_bench *b, double seconds);
/* Seconds of untimed iterations before the measurement (>= 0; default 0). */
sl_status sl_bench_set_min_warmup_time(sl_bench *b, double seconds);

/* The clock: CPU time of the calling thread by default; wall time for anything that runs other
 * threads (OpenMP kernels) or waits (collectives); or the times the function reports itself
 * with sl_bench_set_iteration_time (wall time too). Rates (items, bytes, rate counters)
 * divide by this time. */
sl_status sl_bench_use_real_time(sl_bench *b);
sl_status sl_bench_use_manual_time(sl_bench *b); /* one clock per benchmark: not both */

typedef enum sl_bench_time_unit {
    SL_BENCH_NS,
    SL_BENCH_US,
    SL_BENCH_MS,
    SL_BENCH_S
} sl_bench_time_unit;
/* The unit of real_time and cpu_time in the output (default ns). */
void sl_bench_set_time_unit(sl_bench *b, sl_bench_time_unit unit);

/* Unregisters every benchmark. */
void sl_bench_clear(void);

/* ---- inside a benchmark function ---- */

/* True while iterations remain; the first call starts the timer, the last stops it. */
bool sl_bench_keep_running(sl_bench_state *st);
/* Stops / restarts the timer inside the loop (per-iteration set-up that must not count). Each
 * costs a clock read or two, so keep them out of loops over sub-microsecond bodies. */
void sl_bench_pause_timing(sl_bench_state *st);
void sl_bench_resume_timing(sl_bench_state *st);
/* Argument i of this run (see sl_bench_add_arg). */
int64_t sl_bench_arg(const sl_bench_state *st, int i);
/* Iterations done so far (after the loop: all of them), and the count this call will run. */
int64_t sl_bench_iterations(const sl_bench_state *st);
int64_t sl_bench_max_iterations(const sl_bench_state *st);

/* Totals over all iterations; reported per second as items_per_second / bytes_per_second. */
void sl_bench_set_items_processed(sl_bench_state *st, int64_t items);
void sl_bench_set_bytes_processed(sl_bench_state *st, int64_t bytes);

/* How a counter's value is turned into what is reported (combine with |). */
typedef enum sl_bench_counter_flags {
    SL_BENCH_COUNTER_PLAIN = 0,               /* reported as given */
    SL_BENCH_COUNTER_RATE = 1 << 0,           /* divided by the run's time in seconds */
    SL_BENCH_COUNTER_AVG_ITERATIONS = 1 << 1, /* divided by the iteration count: a mean */
    SL_BENCH_COUNTER_ITER_INVARIANT = 1 << 2, /* a per-iteration value: multiplied by iterations */
    SL_BENCH_COUNTER_INVERT = 1 << 3,         /* 1 / x, applied last */
    SL_BENCH_COUNTER_KIBI = 1 << 4            /* console prefixes k, M, G step by 1024 */
} sl_bench_counter_flags;

/* Sets the custom counter `name` (a JSON member of the run, next to real_time): tokens/s,
 * GFLOP/s, busbw, MFU... Setting it again replaces the value. */
void sl_bench_set_counter(sl_bench_state *st, const char *name, double value, unsigned flags);
/* A short text shown with the run ("label" in the JSON). */
void sl_bench_set_label(sl_bench_state *st, const char *label);
/* Manual time (sl_bench_use_manual_time): the seconds the current iteration took. */
void sl_bench_set_iteration_time(sl_bench_state *st, double seconds);
/* Marks the run as failed with `message` (reported as error_message, error_occurred: true);
 * sl_bench_keep_running returns false from then on. */
void sl_bench_skip_with_error(sl_bench_state *st, const char *message);
bool sl_bench_error_occurred(const sl_bench_state *st);

/* ---- running ---- */

typedef struct sl_bench_run_opts {
    const char *filter;    /* extended regular expression over run names, "-RE" for the runs
                              it does not match; NULL or "" runs all */
    const char *json_path; /* Google Benchmark JSON is written here; NULL: no file */
    bool console;          /* Google Benchmark's table on stdout (context on stderr) */
    int repetitions;       /* for benchmarks without their own; 0 means 1 */
    double min_time;       /* for benchmarks without their own; 0 means 0.5 s */
} sl_bench_run_opts;

/* Adds "key": "value" to the JSON's "context" object of every later run. A key keeps its first
 * value: adding it again with the same value does nothing, with another one is an error. */
sl_status sl_bench_add_context(const char *key, const char *value);

/* Runs the registered benchmarks matching opts->filter, in registration order; *n_run (may be
 * NULL) receives how many matched. When none matched, nothing runs and no file is written (not an
 * error: the caller decides). The JSON file appears only when the run completed. Errors:
 * SL_ERR_INVALID_ARG for a filter that is not a valid regular expression (the message names it),
 * SL_ERR_IO when the JSON file cannot be written. A benchmark that failed
 * (sl_bench_skip_with_error) does not fail the run: its error is in the output. */
sl_status sl_bench_run(const sl_bench_run_opts *opts, int *n_run);

#ifdef __cplusplus
}
#endif

#endif
