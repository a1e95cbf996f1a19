/* ref/reduce.h — gradient reduction as the spec (DESIGN.md §4.4–§4.5): each element of a
 * reduction is the sequential sum over ranks in the plan's reduce_dtype, every addition rounded,
 * with the dialect's divide rule applied before and/or after. */
#ifndef SHARDLAB_REF_REDUCE_H
#define SHARDLAB_REF_REDUCE_H

#include <stdbool.h>

#include "ref/shards.h"

typedef enum sl_ref_reduce_mode {
    SL_REF_REDUCE_ASSIGN,    /* shard grad = reduced value, rounded to master_dtype */
    SL_REF_REDUCE_ACCUMULATE /* shard grad (accum_dtype) += reduced value, micro-step > 0 */
} sl_ref_reduce_mode;

/* local[r][p]: rank r's local gradient of parameter p (full tensor, values of any float dtype).
 * Reduces flat buffer b into every rank's owned shard elements of s->rank[r][b].grad.
 * ACCUMULATE with first_micro set assigns (rounded to accum_dtype) instead of adding. */
void sl_ref_reduce_buffer(sl_ref_shards *s, float *const *const *local, sl_ref_reduce_mode mode,
                          bool first_micro, int b);

/* One element's reduced value: exposed for tests of the rule itself. `reversed` sums the ranks of
 * each group (and the groups) in descending order: another legal order, used to measure the
 * noise floor of summation order (DESIGN.md §9). */
float sl_ref_reduce_element(const sl_plan *plan, float *const *const *local, int p, int64_t idx,
                            bool reversed);

#endif
