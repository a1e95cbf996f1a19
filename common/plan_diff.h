/* Comparing two compiled plans field by field: what `convert-config` prints as the semantic
 * differences left between a config and its conversion, and what its round-trip test requires to
 * be empty. The fields are every value of sl_plan that decides what a run computes or how it is
 * laid out: the dialect and strategy, every sl_precision field, the loss scaler, the optimizer and
 * schedule, the run shape, the layout (with a digest of every buffer's segments), and the
 * predicted collectives and memory. */
#ifndef SHARDLAB_COMMON_PLAN_DIFF_H
#define SHARDLAB_COMMON_PLAN_DIFF_H

#include <stddef.h>

#include "shardlab/plan.h"

typedef struct sl_plan_difference {
    char field[48]; /* "precision.master_init", "strategy", "memory.params_master", ... */
    char a[64], b[64];
} sl_plan_difference;

/* The number of fields that differ; the first `cap` of them, in field order, go to out. */
size_t sl_plan_diff(const sl_plan *a, const sl_plan *b, sl_plan_difference *out, size_t cap);

#endif
