/* What `shardlab train` shows while and after it runs: the progress line (rewritten in place on
 * a terminal, one line per step otherwise), DIR/metrics.jsonl, and the per-category peak memory
 * table of every rank. */
#ifndef SHARDLAB_CLI_TRAIN_REPORT_H
#define SHARDLAB_CLI_TRAIN_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "shardlab/observe.h"
#include "shardlab/trajectory.h"

typedef struct sl_train_progress {
    int total_steps;
    double t0;      /* monotonic seconds at the start of training */
    int64_t tokens; /* trained so far */
    bool tty;
    FILE *metrics; /* DIR/metrics.jsonl, or NULL */
} sl_train_progress;

double sl_train_now(void);
/* One step done: the progress line on stdout (unless quiet) and a metrics line. */
void sl_train_progress_step(sl_train_progress *p, const sl_trajectory_step *rec, bool quiet);
/* Ends a `\r`-rewritten line. */
void sl_train_progress_end(sl_train_progress *p, bool quiet);
/* The peak bytes per memory category and space for every rank (MiB), and the comm layer's own
 * staging, which the categories do not include. */
void sl_train_print_memory(FILE *f, const sl_observation *obs, int64_t comm_scratch_peak,
                           int64_t kernel_scratch);

#endif
