/* The gradients of one micro-step: where each rank keeps them (DESIGN.md §4.2 accumulation rules),
 * when they are reduced across ranks (§4.4–§4.5, ref/reduce.c), and the memory they occupy. */
#include <string.h>

#include "ref/reduce.h"
#include "ref/run.h"

/* A micro-step's backward produces the whole model's unsharded gradient at once for the
 * layouts that keep it whole (DDP / NO_SHARD, ZeRO-1/2 buckets); otherwise each unit's lives
 * from its backward until its reduction (or its addition to the no_sync accumulator). */
static bool sl_ref_whole_model_grads(const sl_plan *plan) {
    return plan->layout == SL_LAYOUT_REPLICATED || plan->layout == SL_LAYOUT_FLAT_GLOBAL;
}

/* no_sync over k > 1: a full accumulator in accum_dtype lives from the first micro-step to the
 * sync, beside each micro-step's own gradient. */
static bool sl_ref_accumulates(const sl_plan *plan) {
    return plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED && plan->grad_accum_steps > 1;
}

/* Without an accumulator, a whole-model gradient that is kept locally is held in accum_dtype
 * directly; every other micro-step gradient is produced in param_dtype. */
static sl_dtype sl_ref_unsharded_grad_dtype(const sl_plan *plan) {
    return plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED && sl_ref_whole_model_grads(plan) &&
                   !sl_ref_accumulates(plan)
               ? plan->precision.accum_dtype
               : plan->precision.param_dtype;
}

static int64_t sl_ref_unit_numel_padded(const sl_plan *plan, int unit) {
    int64_t n = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].unit == unit) n += plan->buffers[b].numel_padded;
    }
    return n;
}

/* Accounts `numel` elements of dtype dt of unsharded gradient on every rank. */
static void sl_ref_account_unsharded(sl_ref_run *run, int64_t numel, sl_dtype dt, bool alloc) {
    const int64_t bytes = numel * (int64_t)sl_dtype_size(dt);
    for (int r = 0; r < run->plan->world_size; r++) {
        if (alloc) {
            sl_observation_mem_alloc(run->obs, r, SL_SPACE_DEVICE, SL_MEM_GRADS_UNSHARDED, bytes);
        } else {
            sl_observation_mem_free(run->obs, r, SL_SPACE_DEVICE, SL_MEM_GRADS_UNSHARDED, bytes);
        }
    }
}

static int64_t sl_ref_model_grad_numel(const sl_plan *plan) {
    int64_t numel = 0;
    for (int b = 0; b < plan->n_buffers; b++)
        numel += plan->buffers[b].numel_padded;
    return numel;
}

/* Accounts the micro-step gradient of `unit` (-1: the whole model) on every rank. */
static void sl_ref_account_grads(sl_ref_run *run, int unit, bool alloc) {
    const sl_plan *plan = run->plan;
    const int64_t numel =
        unit < 0 ? sl_ref_model_grad_numel(plan) : sl_ref_unit_numel_padded(plan, unit);
    sl_ref_account_unsharded(run, numel, sl_ref_unsharded_grad_dtype(plan), alloc);
}

void sl_ref_run_backward_begin(sl_ref_run *run, int micro) {
    const sl_plan *plan = run->plan;
    for (int r = 0; r < plan->world_size; r++) {
        for (int p = 0; p < run->model->n_params; p++) {
            memset(run->grads[r][p], 0, (size_t)run->model->params[p].numel * sizeof(float));
        }
    }
    if (sl_ref_accumulates(plan) && micro == 0) {
        sl_ref_account_unsharded(run, sl_ref_model_grad_numel(plan), plan->precision.accum_dtype,
                                 true);
    }
    /* per unit: the root's first, as the head's backward comes first */
    sl_ref_account_grads(run, sl_ref_whole_model_grads(plan) ? -1 : 0, true);
}

/* no_sync: the unsharded gradient of the unit's params accumulates locally in accum_dtype. */
static void sl_ref_keep_local(sl_ref_run *run, int unit, int micro) {
    const sl_dtype ad = run->plan->precision.accum_dtype;
    const sl_unit_desc *u = &run->model->units[unit];
    for (int r = 0; r < run->plan->world_size; r++) {
        for (int i = 0; i < u->n_params; i++) {
            const int p = u->params[i];
            float *acc = run->local[r][p];
            const float *g = run->grads[r][p];
            const int64_t n = run->model->params[p].numel;
            for (int64_t e = 0; e < n; e++) {
                acc[e] = micro == 0 ? sl_round_to(g[e], ad)
                                    : sl_round_to(acc[e] + sl_round_to(g[e], ad), ad);
            }
        }
    }
}

static float *const *const *sl_ref_reduce_source(const sl_ref_run *run) {
    return (float *const *const *)(run->plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED ? run->local
                                                                                     : run->grads);
}

static void sl_ref_reduce_one(sl_ref_run *run, int b, int micro) {
    const sl_ref_reduce_mode mode = run->plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED
                                        ? SL_REF_REDUCE_ASSIGN
                                        : SL_REF_REDUCE_ACCUMULATE;
    sl_ref_reduce_buffer(run->shards, sl_ref_reduce_source(run), mode, micro == 0, b);
}

/* The reduction of one unit: one reduce-scatter of its buffers (FSDP's flat parameter / param
 * group), then, with hybrid sharding, the all-reduce of the shard across replicas; ZeRO-3
 * reduce-scatters each parameter, in the order backward produces them; NO_SHARD all-reduces. */
static void sl_ref_reduce_unit(sl_ref_run *run, int unit, int micro) {
    const sl_plan *plan = run->plan;
    const sl_dtype rd = plan->precision.reduce_dtype;
    run->obs->dtype_table[SL_STAGE_GRADIENT_REDUCTION] = rd;
    if (plan->layout == SL_LAYOUT_PER_PARAM_FLAT) {
        const sl_unit_desc *u = &run->model->units[unit];
        for (int i = u->n_params - 1; i >= 0; i--) {
            const int b = u->params[i]; /* one buffer per parameter, indexed like the params */
            sl_ref_reduce_one(run, b, micro);
            sl_ref_record(run, SL_COLL_REDUCE_SCATTER, SL_GROUP_SHARD, SL_PHASE_BACKWARD, micro,
                          unit, rd, plan->buffers[b].numel_padded);
        }
        return;
    }
    int64_t numel = 0, shard = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].unit != unit) continue;
        sl_ref_reduce_one(run, b, micro);
        numel += plan->buffers[b].numel_padded;
        shard += plan->buffers[b].shard_numel;
    }
    if (plan->layout == SL_LAYOUT_REPLICATED) {
        sl_ref_record(run, SL_COLL_ALL_REDUCE, SL_GROUP_WORLD, SL_PHASE_BACKWARD, micro, unit, rd,
                      numel);
        return;
    }
    sl_ref_record(run, SL_COLL_REDUCE_SCATTER, SL_GROUP_SHARD, SL_PHASE_BACKWARD, micro, unit, rd,
                  numel);
    sl_ref_record(run, SL_COLL_ALL_REDUCE, SL_GROUP_REPLICA, SL_PHASE_BACKWARD, micro, unit, rd,
                  shard);
}

void sl_ref_run_unit_backward_done(sl_ref_run *run, int unit, int micro) {
    const sl_plan *plan = run->plan;
    const bool sync = sl_ref_run_syncs(run, micro);
    const bool per_unit_grads = !sl_ref_whole_model_grads(plan);
    if (per_unit_grads && unit != 0) sl_ref_account_grads(run, unit, true);
    /* Backward prefetch (BACKWARD_PRE / BACKWARD_POST): the next unit's all-gather is issued
     * before this unit's reduction. The root is still gathered. */
    if (plan->backward_prefetch && unit - 1 >= 1 &&
        (plan->strategy == SL_STRATEGY_FULL_SHARD || plan->strategy == SL_STRATEGY_HYBRID_SHARD)) {
        for (int r = 0; r < plan->world_size; r++)
            sl_ref_run_gather(run, r, unit - 1, SL_PHASE_BACKWARD, micro);
    }
    /* FSDP1 keeps SHARD_GRAD_OP parameters gathered after a no_sync backward
     * (_should_free_in_backward); everything else is released after its backward. */
    const bool keep = plan->dialect == SL_DIALECT_FSDP1 && !sync &&
                      (plan->strategy == SL_STRATEGY_SHARD_GRAD_OP ||
                       plan->strategy == SL_STRATEGY_HYBRID_SHARD_ZERO2);
    for (int r = 0; !keep && r < plan->world_size; r++)
        sl_ref_run_release(run, r, unit);
    if (plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED) sl_ref_keep_local(run, unit, micro);
    if (sync && plan->layout != SL_LAYOUT_FLAT_GLOBAL) sl_ref_reduce_unit(run, unit, micro);
    if (per_unit_grads) sl_ref_account_grads(run, unit, false);
}

void sl_ref_run_backward_end(sl_ref_run *run, int micro) {
    const sl_plan *plan = run->plan;
    const bool sync = sl_ref_run_syncs(run, micro);
    if (sync && plan->layout == SL_LAYOUT_FLAT_GLOBAL) {
        /* ZeRO-1/2: the gradients of every parameter, pre-divided and all-reduced in buckets,
         * each rank keeping its partition (DeepSpeed stage_1_and_2.py average_tensor). */
        const sl_dtype rd = plan->precision.reduce_dtype;
        run->obs->dtype_table[SL_STAGE_GRADIENT_REDUCTION] = rd;
        for (int b = 0; b < plan->n_buffers; b++)
            sl_ref_reduce_one(run, b, micro);
        sl_ref_record(run, SL_COLL_ALL_REDUCE, SL_GROUP_WORLD, SL_PHASE_BACKWARD, micro, -1, rd,
                      run->model->total_numel);
    }
    if (sl_ref_whole_model_grads(plan)) sl_ref_account_grads(run, -1, false);
    if (sl_ref_accumulates(plan) && sync) {
        sl_ref_account_unsharded(run, sl_ref_model_grad_numel(plan), plan->precision.accum_dtype,
                                 false);
    }
}
