/* Internal to the plan compiler: the steps sl_plan_compile runs after the dialect rules, and
 * names of the plan enums for explain. */
#ifndef SHARDLAB_COMMON_PLAN_INTERNAL_H
#define SHARDLAB_COMMON_PLAN_INTERNAL_H

#include "shardlab/lr_schedule.h"
#include "shardlab/plan.h"

/* plan_layout.c: fills plan->layout, n_buffers, buffers from strategy, dialect, G, model. */
sl_status sl_plan_build_layout(sl_plan *plan, const sl_model_desc *model);

/* Gathered elements of a unit: Σ numel_padded of its buffers that are not persistent. */
int64_t sl_plan_unit_gather_numel(const sl_plan *plan, int unit);
/* Whether the gradients (and optimizer states) are sharded across the shard group. */
int sl_plan_shards_grads(const sl_plan *plan);

/* plan_schedule.c: appends one optimizer step's collectives to plan->predicted. */
sl_status sl_plan_build_schedule(sl_plan *plan, const sl_model_desc *model);

/* plan_memory.c: fills plan->predicted.memory (peak bytes per rank, space, category). */
void sl_plan_predict_memory(sl_plan *plan, const sl_model_desc *model);
/* Workspace bytes of the element map an all-gather of `elements` elements needs when it spans
 * several buffers (one bit per gathered element: the gathered shards are put in buffer order in
 * place); 0 for a single buffer. unit < 0: the step phase's re-gather of the resident buffers
 * (FLAT_GLOBAL: all of them; per-unit layouts: the persistent ones). */
int64_t sl_plan_gather_map_bytes(const sl_plan *plan, int unit, int64_t elements);

/* plan_names.c */
const char *sl_grad_divide_name(sl_grad_divide d);
const char *sl_master_init_name(sl_master_init m);
const char *sl_loss_scaler_name(sl_loss_scaler_kind k);
const char *sl_accum_mode_name(sl_accum_mode m);
const char *sl_loss_norm_name(sl_loss_norm n);
const char *sl_backward_prefetch_name(int prefetch);

#endif
