/* The regression gate: two Google Benchmark result files compared run by run, with the noise of
 * each measurement taken into account.
 *
 * For every run name in both files the quantity compared is real_time (lower is better; a rate
 * counter such as busbw or gflops moves the other way by the same factor). Each side gives the
 * median over its repetitions and its spread, (max - min) / median. A run
 *   regressed  when its median time rose by more than the threshold AND by more than the noise,
 *              the larger of the two spreads: every repetition of the new file is then slower
 *              than the middle of the baseline by more than the baseline itself varied;
 *   improved   when it fell by more than both;
 *   is noisy   when it moved by more than the threshold but not beyond the noise;
 *   failed     when the new file reports an error for it, or a non-zero "wrong" counter
 *              (results that a collective benchmark found incorrect).
 * Runs present on one side only are listed, not judged. A moved run whose new timing thread got
 * less than 80% of a CPU (sl_bench_run_cpu_share) is marked: other processes ran. */
#ifndef SHARDLAB_BENCH_COMPARE_H
#define SHARDLAB_BENCH_COMPARE_H

#include <stdio.h>

#include "bench/results.h"

typedef enum sl_bench_verdict {
    SL_BENCH_SAME,
    SL_BENCH_NOISY,
    SL_BENCH_FASTER,
    SL_BENCH_SLOWER,
    SL_BENCH_FAILED,
    SL_BENCH_NEW, /* only in the new file */
    SL_BENCH_GONE /* only in the baseline */
} sl_bench_verdict;

typedef struct sl_bench_change {
    const char *name;
    sl_bench_verdict verdict;
    double base_ns, new_ns;         /* medians of real_time */
    double base_spread, new_spread; /* (max - min) / median */
    int base_n, new_n;              /* repetitions */
    double change;                  /* new / base - 1 */
    const char *why;                /* FAILED: the error, or "wrong results" */
    double new_cpu_share;           /* sl_bench_run_cpu_share of the new run, or 1 */
} sl_bench_change;

typedef struct sl_bench_comparison {
    int n;
    sl_bench_change *rows; /* baseline order, then the runs only the new file has */
    int count[SL_BENCH_GONE + 1];
} sl_bench_comparison;

/* threshold: a fraction (0.05 for 5%). The rows point into base and cur, which must outlive the
 * comparison. */
sl_status sl_bench_compare(const sl_bench_results *base, const sl_bench_results *cur,
                           double threshold, sl_bench_comparison *out);
void sl_bench_comparison_free(sl_bench_comparison *c);

/* True when the gate fails: a regression or a failed run. */
bool sl_bench_comparison_failed(const sl_bench_comparison *c);

/* The table of what moved (every row when `all`), then one summary line. */
void sl_bench_comparison_print(const sl_bench_comparison *c, double threshold, bool all, FILE *f);

const char *sl_bench_verdict_name(sl_bench_verdict v);

#endif
