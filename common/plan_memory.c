/* Predicted peak bytes per rank and memory category (DESIGN.md §6); the definitions are stated in
 * plan.h above sl_plan. Every rank owns equally sized shards, so every rank gets the same numbers.
 */
#include "common/plan_internal.h"

static int64_t sl_max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

/* Peak elements of gathered (param_dtype) parameters. */
static int64_t sl_gathered_numel(const sl_plan *plan, const sl_model_desc *model) {
    int64_t all = 0, persistent = 0, root = 0, largest = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].persistent) persistent += plan->buffers[b].numel_padded;
        all += plan->buffers[b].numel_padded;
    }
    switch (plan->layout) {
    case SL_LAYOUT_REPLICATED:
        /* a low-precision compute copy exists only when compute and master dtypes differ */
        return plan->precision.param_dtype != plan->precision.master_dtype ? all : 0;
    case SL_LAYOUT_FLAT_GLOBAL: return all; /* ZeRO-1/2 keep full compute params on every rank */
    case SL_LAYOUT_FLAT_PER_UNIT:
    case SL_LAYOUT_PER_PARAM_DIM0:
    case SL_LAYOUT_PER_PARAM_FLAT: break;
    }
    if (plan->strategy == SL_STRATEGY_SHARD_GRAD_OP ||
        plan->strategy == SL_STRATEGY_HYBRID_SHARD_ZERO2) {
        return all; /* every unit stays gathered from its forward until the end of backward */
    }
    for (int u = 0; u < model->n_units; u++) {
        const int64_t n = sl_plan_unit_gather_numel(plan, u);
        if (model->units[u].is_root) {
            root += n;
        } else {
            largest = sl_max64(largest, n);
        }
        /* backward prefetch gathers unit u - 1 while unit u is still gathered, forward prefetch
         * unit u while u - 1 is: the same adjacent pair */
        if ((plan->backward_prefetch || plan->forward_prefetch) && u > 0 &&
            !model->units[u].is_root && !model->units[u - 1].is_root) {
            largest = sl_max64(largest, n + sl_plan_unit_gather_numel(plan, u - 1));
        }
    }
    return root + largest + persistent;
}

/* Σ numel_padded of the root's buffers and the largest of the other units'. */
static int64_t sl_root_plus_largest_unit(const sl_plan *plan, const sl_model_desc *model) {
    int64_t root = 0, largest = 0;
    for (int u = 0; u < model->n_units; u++) {
        int64_t n = 0;
        for (int b = 0; b < plan->n_buffers; b++) {
            if (plan->buffers[b].unit == u) n += plan->buffers[b].numel_padded;
        }
        if (model->units[u].is_root) {
            root += n;
        } else {
            largest = sl_max64(largest, n);
        }
    }
    return root + largest;
}

/* Peak bytes of full-size (unsharded) gradients. One micro-step's backward produces them in
 * param_dtype — the whole model's at once for REPLICATED and FLAT_GLOBAL layouts, else the
 * root's (produced first by the tied head, reduced last with the embeddings) beside the largest
 * other unit's. Without accumulation a whole-model LOCAL_UNSHARDED gradient is kept in
 * accum_dtype directly. With no_sync over k > 1 the accumulator (full, accum_dtype) lives from
 * the first micro-step to the sync, and each micro-step's own gradient is held beside it until
 * it is added in. */
static int64_t sl_unsharded_grad_bytes(const sl_plan *plan, const sl_model_desc *model) {
    const sl_precision *p = &plan->precision;
    int64_t all = 0;
    for (int b = 0; b < plan->n_buffers; b++)
        all += plan->buffers[b].numel_padded;
    const bool whole_model =
        plan->layout == SL_LAYOUT_REPLICATED || plan->layout == SL_LAYOUT_FLAT_GLOBAL;
    const bool accumulates =
        plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED && plan->grad_accum_steps > 1;
    const int64_t micro = whole_model ? all : sl_root_plus_largest_unit(plan, model);
    if (accumulates) {
        return all * (int64_t)sl_dtype_size(p->accum_dtype) +
               micro * (int64_t)sl_dtype_size(p->param_dtype);
    }
    const sl_dtype dt = plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED && whole_model
                            ? p->accum_dtype
                            : p->param_dtype;
    return micro * (int64_t)sl_dtype_size(dt);
}

int64_t sl_plan_gather_map_bytes(const sl_plan *plan, int unit, int64_t elements) {
    int buffers = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        const sl_flat_buffer *buf = &plan->buffers[b];
        if (unit >= 0) {
            buffers += buf->unit == unit && !buf->persistent;
        } else {
            buffers += plan->layout == SL_LAYOUT_FLAT_GLOBAL || buf->persistent;
        }
    }
    return buffers > 1 ? (elements + 7) / 8 : 0;
}

/* Peak workspace: the model's one-layer scratch through every micro-step, plus the element map
 * of a multi-buffer all-gather issued inside the micro-step; the step phase's re-gather has its
 * map alone. */
static int64_t sl_workspace_bytes(const sl_plan *plan, int64_t scratch) {
    int64_t in_micro = 0, in_step = 0;
    for (int i = 0; i < plan->predicted.n_collectives; i++) {
        const sl_collective_record *c = &plan->predicted.collectives[i];
        if (c->op != SL_COLL_ALL_GATHER) continue;
        const int64_t map = sl_plan_gather_map_bytes(plan, c->unit, c->elements);
        if (c->phase == SL_PHASE_STEP) {
            in_step = sl_max64(in_step, map);
        } else {
            in_micro = sl_max64(in_micro, map);
        }
    }
    return sl_max64(scratch + in_micro, in_step);
}

static int64_t sl_comm_buffer_bytes(const sl_observation *obs) {
    int64_t peak = 0;
    for (int i = 0; i < obs->n_collectives; i++) {
        const sl_collective_record *c = &obs->collectives[i];
        int64_t n = c->elements;
        if (c->op == SL_COLL_ALL_GATHER) n /= c->group_size;
        peak = sl_max64(peak, n * (int64_t)sl_dtype_size(c->dtype));
    }
    return peak;
}

void sl_plan_predict_memory(sl_plan *plan, const sl_model_desc *model) {
    const sl_precision *p = &plan->precision;
    int64_t owned = 0;
    for (int b = 0; b < plan->n_buffers; b++)
        owned += plan->buffers[b].shard_numel;
    const int64_t unsharded = sl_unsharded_grad_bytes(plan, model);
    const sl_dtype sharded_dt =
        plan->accum_mode == SL_ACCUM_REDUCED_SHARD ? p->accum_dtype : p->master_dtype;
    const sl_mem_space master_space = plan->offload_params ? SL_SPACE_HOST : SL_SPACE_DEVICE;
    const sl_mem_space optim_space = plan->offload_optimizer ? SL_SPACE_HOST : SL_SPACE_DEVICE;
    const int b = plan->micro_batch_size, T = plan->seq_len;
    const int64_t acts = sl_gpt2_kept_activation_bytes(&model->gpt2, b, T, p->param_dtype);
    const int64_t workspace =
        sl_workspace_bytes(plan, sl_gpt2_scratch_bytes(&model->gpt2, b, T, p->param_dtype));
    for (int r = 0; r < plan->world_size; r++) {
        sl_mem_usage *m = &plan->predicted.memory[r];
        m->peak[master_space][SL_MEM_PARAMS_MASTER] =
            owned * (int64_t)sl_dtype_size(p->master_dtype);
        m->peak[SL_SPACE_DEVICE][SL_MEM_PARAMS_GATHERED] =
            sl_gathered_numel(plan, model) * (int64_t)sl_dtype_size(p->param_dtype);
        m->peak[optim_space][SL_MEM_GRADS_SHARDED] = owned * (int64_t)sl_dtype_size(sharded_dt);
        m->peak[SL_SPACE_DEVICE][SL_MEM_GRADS_UNSHARDED] = unsharded;
        m->peak[optim_space][SL_MEM_OPTIM_STATES] =
            2 * owned * (int64_t)sl_dtype_size(p->optim_dtype);
        m->peak[SL_SPACE_DEVICE][SL_MEM_ACTIVATIONS] = acts;
        m->peak[SL_SPACE_DEVICE][SL_MEM_COMM_BUFFERS] = sl_comm_buffer_bytes(&plan->predicted);
        m->peak[SL_SPACE_DEVICE][SL_MEM_WORKSPACE] = workspace;
    }
}
