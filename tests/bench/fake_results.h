/* Google Benchmark JSON files written by hand, with exactly the repetitions a test needs. */
#ifndef SHARDLAB_TESTS_BENCH_FAKE_RESULTS_H
#define SHARDLAB_TESTS_BENCH_FAKE_RESULTS_H

#include <stdbool.h>

typedef struct sl_fake_run {
    const char *name;
    const char *unit; /* time_unit; NULL: "ns" */
    double times[8];  /* real_time of each repetition */
    int n;
    const char *error;    /* error_message of the first repetition, or NULL */
    double wrong;         /* a "wrong" counter on every repetition when > 0 */
    bool aggregates_only; /* write only mean/median/stddev/cv, as
                             --benchmark_report_aggregates_only does */
    const char *counters; /* more members of every repetition, e.g. "\"busbw\": 1.5" */
    double cpu_share;     /* cpu_time = cpu_share · real_time; 0 means 1 */
} sl_fake_run;

/* Writes a file as Google Benchmark 1.7 does: context, then per run its repetitions and (with
 * more than one) the mean, median, stddev and cv aggregates — the cv of the all-zero "wrong"
 * counter written as a bare NaN, as Google Benchmark writes it. */
void sl_fake_results(const char *path, const char *host, const sl_fake_run *runs, int n);

#endif
