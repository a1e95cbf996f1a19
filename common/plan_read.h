/* Internal to the plan compiler: reading config values while remembering where they came from.
 * Every read of a key the user did not set adds the default to plan->config with an
 * SL_SOURCE_DEFAULT source, so the compiled plan lists every value it used. */
#ifndef SHARDLAB_COMMON_PLAN_READ_H
#define SHARDLAB_COMMON_PLAN_READ_H

#include <stdbool.h>

#include "shardlab/config.h"
#include "shardlab/plan.h"

typedef struct sl_plan_reader {
    const sl_config *cfg; /* what the user said */
    sl_plan *plan;        /* plan->config receives the defaults used */
    char ring[8][300];    /* storage for sl_plan_src results, reused round-robin */
    int ring_next;
} sl_plan_reader;

/* Where `key`'s value comes from: "--zero_stage", "ds.json:4 (zero_optimization.stage)", or
 * "default". Valid until eight more calls. */
const char *sl_plan_src(sl_plan_reader *rd, const char *key);
bool sl_plan_is_set(const sl_plan_reader *rd, const char *key);

/* Typed reads with the default from the key table (or `dflt` where the table has none). */
sl_status sl_plan_read_bool(sl_plan_reader *rd, const char *key, bool *out);
sl_status sl_plan_read_int(sl_plan_reader *rd, const char *key, long long min, long long max,
                           long long *out);
sl_status sl_plan_read_double(sl_plan_reader *rd, const char *key, const char *dflt, double min,
                              double max, double *out);
/* *out is NULL when the key is unset and has no default. */
sl_status sl_plan_read_enum(sl_plan_reader *rd, const char *key, const char **out);
/* A dtype-valued enum key; *set tells whether it had a value (set or defaulted). */
sl_status sl_plan_read_dtype(sl_plan_reader *rd, const char *key, sl_dtype *out, bool *set);

/* plan_precision.c: the dialect's precision rules (DESIGN.md §4.2) fill plan->precision,
 * plan->precision_why and plan->scaler. Needs dialect, strategy and world already set. */
sl_status sl_plan_resolve_precision(sl_plan_reader *rd);

#endif
