/* The collectives of one optimizer step (k micro-steps), in issue order (DESIGN.md §5, §6); the
 * rules are stated in plan.h above sl_plan. */
#include "common/plan_internal.h"

static sl_status sl_emit(sl_plan *plan, sl_coll_op op, sl_coll_group group, sl_phase phase,
                         int micro, int unit, sl_dtype dt, int64_t elements) {
    const int n = group == SL_GROUP_SHARD     ? plan->shard_group_size
                  : group == SL_GROUP_REPLICA ? plan->n_replicas
                                              : plan->world_size;
    if (n <= 1 || elements <= 0) return SL_OK; /* a collective over one rank is not issued */
    const sl_collective_record rec = {.op = op,
                                      .group = group,
                                      .group_size = n,
                                      .phase = phase,
                                      .micro_step = micro,
                                      .unit = unit,
                                      .dtype = dt,
                                      .elements = elements,
                                      .bytes_sent_per_rank =
                                          sl_collective_bytes_sent(op, n, elements, dt)};
    return sl_observation_add_collective(&plan->predicted, &rec);
}

static bool sl_hybrid(const sl_plan *plan) {
    return plan->strategy == SL_STRATEGY_HYBRID_SHARD ||
           plan->strategy == SL_STRATEGY_HYBRID_SHARD_ZERO2;
}

static bool sl_reshards_after_forward(const sl_plan *plan) {
    return plan->strategy == SL_STRATEGY_FULL_SHARD || plan->strategy == SL_STRATEGY_HYBRID_SHARD;
}

static sl_status sl_gather_unit(sl_plan *plan, sl_phase phase, int micro, int unit) {
    return sl_emit(plan, SL_COLL_ALL_GATHER, SL_GROUP_SHARD, phase, micro, unit,
                   plan->precision.param_dtype, sl_plan_unit_gather_numel(plan, unit));
}

/* The gradient reduction of one unit: an all-reduce of the replicated grads (NO_SHARD); one
 * reduce-scatter of the unit's buffers (FSDP1 flat param, FSDP2 param group) followed, with
 * hybrid sharding, by an all-reduce of the shard across replicas; one reduce-scatter per param
 * buffer (ZeRO-3), the unit's params in reverse. */
static sl_status sl_reduce_unit(sl_plan *plan, const sl_model_desc *model, int micro, int unit) {
    const sl_dtype rd = plan->precision.reduce_dtype;
    if (plan->layout == SL_LAYOUT_PER_PARAM_FLAT) {
        const sl_unit_desc *u = &model->units[unit];
        for (int i = u->n_params - 1; i >= 0; i--) {
            const sl_flat_buffer *b = &plan->buffers[u->params[i]];
            SL_TRY(sl_emit(plan, SL_COLL_REDUCE_SCATTER, SL_GROUP_SHARD, SL_PHASE_BACKWARD, micro,
                           unit, rd, b->numel_padded));
        }
        return SL_OK;
    }
    int64_t full = 0, shard = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].unit != unit) continue;
        full += plan->buffers[b].numel_padded;
        shard += plan->buffers[b].shard_numel;
    }
    if (plan->layout == SL_LAYOUT_REPLICATED) {
        return sl_emit(plan, SL_COLL_ALL_REDUCE, SL_GROUP_WORLD, SL_PHASE_BACKWARD, micro, unit, rd,
                       full);
    }
    SL_TRY(sl_emit(plan, SL_COLL_REDUCE_SCATTER, SL_GROUP_SHARD, SL_PHASE_BACKWARD, micro, unit, rd,
                   full));
    if (sl_hybrid(plan)) {
        SL_TRY(sl_emit(plan, SL_COLL_ALL_REDUCE, SL_GROUP_REPLICA, SL_PHASE_BACKWARD, micro, unit,
                       rd, shard));
    }
    return SL_OK;
}

/* One micro-step of a per-unit layout (REPLICATED, FLAT_PER_UNIT, PER_PARAM_DIM0,
 * PER_PARAM_FLAT). */
static sl_status sl_micro_step_units(sl_plan *plan, const sl_model_desc *model, int m, bool sync) {
    const int n = model->n_units;
    const bool sharded = plan->layout != SL_LAYOUT_REPLICATED;
    /* FSDP1 SHARD_GRAD_OP keeps parameters gathered after a no_sync backward
     * (_should_free_in_backward), so later micro-steps of the step gather nothing. */
    const bool kept =
        plan->dialect == SL_DIALECT_FSDP1 && !sl_reshards_after_forward(plan) && m > 0;
    for (int u = 0; sharded && !kept && u < n; u++) {
        SL_TRY(sl_gather_unit(plan, SL_PHASE_FORWARD, m, u));
    }
    /* Backward visits units in reverse. Resharded units are gathered again, except the root,
     * which FSDP never frees after forward (torch FSDP1 _post_forward_reshard skips the root;
     * FSDP2 sets reshard_after_forward False for the root). With backward prefetch the next
     * unit's all-gather is issued before the current unit's reduction. */
    const bool regather = sharded && sl_reshards_after_forward(plan);
    const bool prefetch = plan->backward_prefetch != 0;
    for (int i = 0; i < n; i++) {
        const int u = n - 1 - i;
        if (regather && !model->units[u].is_root && (!prefetch || i == 0)) {
            SL_TRY(sl_gather_unit(plan, SL_PHASE_BACKWARD, m, u));
        }
        if (regather && prefetch && i + 1 < n && !model->units[u - 1].is_root) {
            SL_TRY(sl_gather_unit(plan, SL_PHASE_BACKWARD, m, u - 1));
        }
        if (sync) SL_TRY(sl_reduce_unit(plan, model, m, u));
    }
    return SL_OK;
}

/* ZeRO-1/2: DeepSpeed has no reduce-scatter here; gradients are pre-divided and all-reduced in
 * buckets, each rank keeping its partition (stage_1_and_2.py average_tensor). One record stands
 * for the buckets of a micro-step: the gradients of every param, no padding. */
static sl_status sl_micro_step_flat_global(sl_plan *plan, const sl_model_desc *model, int m,
                                           bool sync) {
    if (!sync) return SL_OK;
    return sl_emit(plan, SL_COLL_ALL_REDUCE, SL_GROUP_WORLD, SL_PHASE_BACKWARD, m, -1,
                   plan->precision.reduce_dtype, model->total_numel);
}

static sl_status sl_step(sl_plan *plan) {
    const int m = plan->grad_accum_steps - 1;
    if (sl_plan_shards_grads(plan)) {
        /* the overflow flag (fp16) and the squared grad norm are sums over the shard group */
        if (plan->precision.loss_scale != SL_SCALER_NONE) {
            SL_TRY(sl_emit(plan, SL_COLL_ALL_REDUCE, SL_GROUP_SHARD, SL_PHASE_STEP, m, -1,
                           SL_DTYPE_F32, 1));
        }
        SL_TRY(sl_emit(plan, SL_COLL_ALL_REDUCE, SL_GROUP_SHARD, SL_PHASE_STEP, m, -1, SL_DTYPE_F32,
                       1));
    }
    const sl_dtype pd = plan->precision.param_dtype;
    if (plan->layout == SL_LAYOUT_FLAT_GLOBAL) {
        /* the updated partitions are all-gathered into every rank's full param copy */
        SL_TRY(sl_emit(plan, SL_COLL_ALL_GATHER, SL_GROUP_SHARD, SL_PHASE_STEP, m, -1, pd,
                       plan->buffers[0].numel_padded));
    }
    if (plan->layout == SL_LAYOUT_PER_PARAM_FLAT) {
        /* ZeRO-3 re-gathers the updated persistent params once (stage3.py _post_step) */
        int64_t persistent = 0;
        for (int b = 0; b < plan->n_buffers; b++) {
            if (plan->buffers[b].persistent) persistent += plan->buffers[b].numel_padded;
        }
        SL_TRY(sl_emit(plan, SL_COLL_ALL_GATHER, SL_GROUP_SHARD, SL_PHASE_STEP, m, -1, pd,
                       persistent));
    }
    return SL_OK;
}

sl_status sl_plan_build_schedule(sl_plan *plan, const sl_model_desc *model) {
    const int k = plan->grad_accum_steps;
    for (int m = 0; m < k; m++) {
        const bool sync = m == k - 1 || plan->accum_mode == SL_ACCUM_REDUCED_SHARD;
        if (plan->layout == SL_LAYOUT_FLAT_GLOBAL) {
            SL_TRY(sl_micro_step_flat_global(plan, model, m, sync));
        } else {
            SL_TRY(sl_micro_step_units(plan, model, m, sync));
        }
    }
    return sl_step(plan);
}
