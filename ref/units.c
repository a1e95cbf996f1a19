/* Gathering and releasing sharding units on the logical ranks, with the memory and collectives
 * that go with it (DESIGN.md §5: FULL_SHARD frees a unit after forward, SHARD_GRAD_OP keeps it
 * until backward ends, the root is never freed after forward). */
#include "ref/run.h"

static bool sl_ref_reshards_after_forward(const sl_plan *plan) {
    return plan->strategy == SL_STRATEGY_FULL_SHARD || plan->strategy == SL_STRATEGY_HYBRID_SHARD;
}

bool sl_ref_run_syncs(const sl_ref_run *run, int micro) {
    return run->plan->accum_mode == SL_ACCUM_REDUCED_SHARD ||
           micro == run->plan->grad_accum_steps - 1;
}

void sl_ref_run_gather(sl_ref_run *run, int r, int unit, sl_phase phase, int micro) {
    const sl_plan *plan = run->plan;
    const sl_unit_desc *u = &run->model->units[unit];
    run->obs->dtype_table[SL_STAGE_TRAINING] = plan->precision.param_dtype;
    if (run->gathered[r][unit]) return;
    sl_ref_shards_gather(run->shards, u->params, u->n_params, run->params);
    run->gathered[r][unit] = true;
    if (!sl_ref_layout_gathers_per_unit(plan)) return; /* parameters are resident */
    const int64_t numel = sl_ref_unit_gather_numel(plan, unit, false);
    sl_observation_mem_alloc(run->obs, r, SL_SPACE_DEVICE, SL_MEM_PARAMS_GATHERED,
                             numel * (int64_t)sl_dtype_size(plan->precision.param_dtype));
    if (r == 0) {
        sl_ref_record(run, SL_COLL_ALL_GATHER, SL_GROUP_SHARD, phase, micro, unit,
                      plan->precision.param_dtype, numel);
    }
}

void sl_ref_run_release(sl_ref_run *run, int r, int unit) {
    const sl_plan *plan = run->plan;
    if (!run->gathered[r][unit]) return;
    run->gathered[r][unit] = false;
    if (!sl_ref_layout_gathers_per_unit(plan)) return;
    const int64_t numel = sl_ref_unit_gather_numel(plan, unit, false);
    sl_observation_mem_free(run->obs, r, SL_SPACE_DEVICE, SL_MEM_PARAMS_GATHERED,
                            numel * (int64_t)sl_dtype_size(plan->precision.param_dtype));
}

void sl_ref_run_after_forward(sl_ref_run *run, int r, int unit) {
    /* The root stays: its head backward comes first (torch FSDP1 skips the root's reshard after
     * forward; FSDP2 never reshards the root after forward). */
    if (sl_ref_reshards_after_forward(run->plan) && !run->model->units[unit].is_root) {
        sl_ref_run_release(run, r, unit);
    }
}

/* The reference keeps llm.c's activation set (sl_gpt2_activation_numel) to stay readable, but
 * accounts what a training implementation holds (model.h, sl_gpt2_buf): the kept activations,
 * and one layer's activation gradients as workspace through the micro-step. */
void sl_ref_run_activations_begin(sl_ref_run *run, int r) {
    const sl_plan *plan = run->plan;
    const int b = plan->micro_batch_size, T = plan->seq_len;
    const sl_dtype cd = plan->precision.param_dtype;
    sl_observation_mem_alloc(run->obs, r, SL_SPACE_DEVICE, SL_MEM_ACTIVATIONS,
                             sl_gpt2_kept_activation_bytes(&run->model->gpt2, b, T, cd));
    sl_observation_mem_alloc(run->obs, r, SL_SPACE_DEVICE, SL_MEM_WORKSPACE,
                             sl_gpt2_scratch_bytes(&run->model->gpt2, b, T, cd));
}

void sl_ref_run_activations_end(sl_ref_run *run, int r) {
    const sl_plan *plan = run->plan;
    const int b = plan->micro_batch_size, T = plan->seq_len;
    const sl_dtype cd = plan->precision.param_dtype;
    sl_observation_mem_free(run->obs, r, SL_SPACE_DEVICE, SL_MEM_ACTIVATIONS,
                            sl_gpt2_kept_activation_bytes(&run->model->gpt2, b, T, cd));
    sl_observation_mem_free(run->obs, r, SL_SPACE_DEVICE, SL_MEM_WORKSPACE,
                            sl_gpt2_scratch_bytes(&run->model->gpt2, b, T, cd));
}
