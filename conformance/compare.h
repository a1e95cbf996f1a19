/* `shardlab compare A B`: both sides trained on the same data from the same initial weights,
 * then, side by side, their dtype tables, the plan fields that differ, the loss curves with the
 * divergence per step, the final parameter divergence, peak memory per category and tokens/s;
 * with `ablate`, the final divergence attributed to the differing fields (compare_ablate.h). */
#ifndef SHARDLAB_CONFORMANCE_COMPARE_H
#define SHARDLAB_CONFORMANCE_COMPARE_H

#include <stdbool.h>
#include <stdio.h>

#include "shardlab/data.h"
#include "shardlab/status.h"

typedef struct sl_compare_opts {
    const char *a, *b; /* config file or a quoted plan-flag set */
    const char *model; /* "gpt-tiny", "gpt-small", "gpt2-124m" */
    int steps;         /* optimizer steps of every run */
    int world;         /* --num_processes for both sides; 0: each side's own */
    long long seed;    /* the same seed (initial weights, data order) for both */
    sl_sample_mode sampling;
    bool ablate;
    bool ref_only;       /* train A and B with the reference instead of the engine */
    const char *out_dir; /* NULL: no files; else compare.md, the runs, the plots */
} sl_compare_opts;

sl_compare_opts sl_compare_opts_default(void); /* gpt-tiny, 20 steps, seed 1234, packed */

/* Runs the comparison and prints it to f. */
sl_status sl_compare(const sl_compare_opts *o, FILE *f);

#endif
