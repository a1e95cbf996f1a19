/* impl/ckpt/ckpt_internal.h — what the engine's checkpoint save and load share. */
#ifndef SHARDLAB_IMPL_CKPT_INTERNAL_H
#define SHARDLAB_IMPL_CKPT_INTERNAL_H

#include <stdbool.h>

#include "common/ckpt_format.h"
#include "impl/engine/engine_internal.h"

/* Every rank passes its own status of a phase; every rank returns SL_OK only when all did. A
 * rank that succeeded while another failed gets an error naming the failed ranks (whose own
 * messages say why); a failed rank keeps its message. `what` names the phase. Collective over
 * the engine's world, outside every recorded schedule. */
sl_status sl_ckpt_agree(sl_engine *e, sl_status mine, const char *what);

/* Whether global rank `rank` writes a SHARDED file: replica 0 of every shard group, and for a
 * replicated layout rank 0 alone (the others hold the same elements). */
bool sl_ckpt_rank_writes(const sl_plan *plan, int rank);

/* The parameter ranges shard rank `shard_rank` owns, in buffer order; *out is malloc'd. */
sl_status sl_ckpt_rank_ranges(const sl_plan *plan, int shard_rank, sl_ckpt_range **out, int *n);

/* The testing hook of checkpoint.h (SHARDLAB_CKPT_FAULT): raises SIGKILL when `point` (with
 * `count` for after_file) matches at the save of `step` on `rank`. */
void sl_ckpt_fault(const char *point, int count, int64_t step, int rank);

#endif
