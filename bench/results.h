/* Google Benchmark JSON result files, read back: the runs of a file grouped by run name with their
 * repetitions, statistics over the repetitions, and the merge of several files into one.
 *
 * Google Benchmark writes a non-finite number as a bare NaN or Infinity (the coefficient of
 * variation of an all-zero counter is NaN), which RFC 8259 forbids; the loader reads such a
 * token as null, which every statistic here skips. */
#ifndef SHARDLAB_BENCH_RESULTS_H
#define SHARDLAB_BENCH_RESULTS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/json.h"
#include "shardlab/status.h"

#define SL_BENCH_MAX_REPS 64

/* One run name and what the file holds about it. */
typedef struct sl_bench_result {
    const char *name;  /* run_name */
    const char *label; /* the first repetition's label, "" when none */
    const char *error; /* the first error_message of a failed repetition, else NULL */
    int n;             /* repetitions (run_type "iteration") */
    const sl_json *reps[SL_BENCH_MAX_REPS];
    const sl_json *median; /* the "median" aggregate, or NULL */
    const sl_json *cv;     /* the "cv" aggregate, or NULL */
} sl_bench_result;

typedef struct sl_bench_results {
    sl_json *doc;
    const char *path;
    int n_runs;
    sl_bench_result *runs; /* in the order of their first entry */
} sl_bench_results;

/* Reads a Google Benchmark JSON file (a "context" object and a "benchmarks" array of entries
 * with name, run_name, run_type, real_time and time_unit). SL_ERR_IO / SL_ERR_FORMAT name the
 * file and the offending entry. */
sl_status sl_bench_results_load(const char *path, sl_bench_results *out);
void sl_bench_results_free(sl_bench_results *r);

const sl_bench_result *sl_bench_results_find(const sl_bench_results *r, const char *name);
/* A string member of the file's context, or NULL. */
const char *sl_bench_results_context(const sl_bench_results *r, const char *key);

/* Statistics of one quantity over a run's repetitions: "real_time" and "cpu_time" in
 * nanoseconds whatever the file's time_unit, otherwise the counter of that name. Without
 * repetition entries (a file of aggregates only) the median aggregate stands for the value and
 * the coefficient of variation gives lo/hi as median·(1 ∓ cv). False when the run has no such
 * number. */
typedef struct sl_bench_stat {
    double median, lo, hi;
    int n;
} sl_bench_stat;
bool sl_bench_run_stat(const sl_bench_result *run, const char *key, sl_bench_stat *out);

/* For a run timed by the wall clock in one thread's loop ("/real_time"): the median of
 * cpu_time / real_time over its repetitions, the share of a CPU the timing thread got. Below
 * SL_BENCH_CONTENDED the run lost its CPU to other processes and its time is inflated (a kernel's
 * OpenMP threads wait for the one descheduled). False for other runs. */
#define SL_BENCH_CONTENDED 0.8
bool sl_bench_run_cpu_share(const sl_bench_result *run, double *share);

/* name without the components Google Benchmark appends ("/iterations:5", "/repeats:3",
 * "/min_time:0.500", "/real_time", "/manual_time", ...): "matmul_fwd/fp32/gpt-small/fc". */
void sl_bench_name_base(const char *name, char *buf, size_t cap);

/* Writes one Google Benchmark JSON file holding the context of the first input and the entries
 * of all inputs in order (family_index renumbered so that families stay distinct). */
sl_status sl_bench_results_merge(const char *const *paths, int n, const char *out_path);

#endif
