/* The benchmark report: reports/benchmarks.md and the gnuplot scripts and data behind its plots
 * (bus bandwidth against message size per world size, with memcpy bandwidth for reference;
 * kernel GFLOP/s in fp32 and bf16 against the sgemm peak; training tokens/s per strategy and
 * memory per category against W). The PNGs come from running gnuplot
 * on the scripts in the report directory (ci/nightly.sh does). */
#ifndef SHARDLAB_BENCH_REPORT_H
#define SHARDLAB_BENCH_REPORT_H

#include <stdio.h>

#include "bench/results.h"

typedef struct sl_bench_report_opts {
    const char *dir;        /* where the files go (must exist) */
    const char *results;    /* the result file as the report should name it */
    const char *comparison; /* a file holding `bench compare` output to include, or NULL */
    /* for a report of several result files: a markdown list naming each (date, load), or NULL;
     * the context table is then the first file's */
    const char *sources;
} sl_bench_report_opts;

/* report_e2e.c: per model of the e2e runs, dir/bench-e2e-tokens-MODEL.{dat,gp} (tokens/s per
 * strategy against W) and dir/bench-e2e-memory-MODEL.{dat,gp} (rank 0's memory per category
 * against W under ZeRO-3); *n_plots is increased by the scripts written. */
sl_status sl_bench_report_e2e_plots(const sl_bench_results *r, const char *dir, int *n_plots);
/* The markdown section of the training steps (nothing without e2e runs). */
void sl_bench_report_e2e_md(const sl_bench_results *r, FILE *f);

/* Writes dir/benchmarks.md, dir/bench-busbw-w<W>.{dat,gp} per world size and
 * dir/bench-kernels.{dat,gp}; *n_plots receives the number of gnuplot scripts written. */
sl_status sl_bench_report_write(const sl_bench_results *r, const sl_bench_report_opts *o,
                                int *n_plots);

#endif
