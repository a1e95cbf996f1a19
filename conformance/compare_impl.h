/* Running one side of `compare` with the engine: `shardlab launch --num_processes W shardlab
 * train` through the conformance runner (runner.h), its output loaded as a sl_compare_result. */
#ifndef SHARDLAB_CONFORMANCE_COMPARE_IMPL_H
#define SHARDLAB_CONFORMANCE_COMPARE_IMPL_H

#include "conformance/compare_run.h"
#include "conformance/compare_side.h"

typedef struct sl_compare_impl_opts {
    const char *model_flags; /* "--model gpt-tiny" */
    int steps;
    sl_sample_mode sampling;
    const char *common; /* the flags applied to both sides (compare_side.h) */
    const char *dir;    /* the run's directory (created; receives run.log and the files) */
} sl_compare_impl_opts;

sl_status sl_compare_impl_run(const sl_compare_side *side, const sl_model_desc *model,
                              const sl_compare_impl_opts *o, sl_compare_result *out);

#endif
