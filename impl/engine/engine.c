/* The engine's lifecycle and its micro-step: one rank doing, in the same order, what the
 * reference's trainer does for that rank (ref/trainer.c sl_ref_micro_step). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "impl/engine/engine_internal.h"

sl_engine_options sl_engine_options_default(void) {
    return (sl_engine_options){
        .init_from = NULL, .deterministic = -1, .inference_only = false, .keep_step1_grads = false};
}

static sl_status sl_engine_comms(sl_engine *e) {
    const sl_plan *plan = e->plan;
    sl_comm *world = sl_session_comm(e->session);
    const int replica = sl_plan_replica(plan, e->rank);
    SL_TRY(sl_comm_split(world, 0, e->rank, SL_GROUP_WORLD, &e->world_comm));
    if (plan->n_replicas > 1) {
        SL_TRY(
            sl_comm_split_hybrid(world, plan->shard_group_size, &e->shard_comm, &e->replica_comm));
    } else {
        SL_TRY(sl_comm_split(world, 0, e->rank, SL_GROUP_SHARD, &e->shard_comm));
    }
    return sl_comm_split(world, replica, e->shard_rank, SL_GROUP_SHARD, &e->aux_comm);
}

static void sl_engine_dtypes(sl_engine *e) {
    const sl_plan *plan = e->plan;
    const sl_precision *pr = &plan->precision;
    e->md = pr->master_dtype;
    e->pd = pr->param_dtype;
    e->rd = pr->reduce_dtype;
    e->ad = pr->accum_dtype;
    e->od = pr->optim_dtype;
    e->gsd = plan->accum_mode == SL_ACCUM_REDUCED_SHARD ? e->ad : e->md;
    e->per_unit = plan->layout == SL_LAYOUT_FLAT_PER_UNIT ||
                  plan->layout == SL_LAYOUT_PER_PARAM_DIM0 ||
                  plan->layout == SL_LAYOUT_PER_PARAM_FLAT;
    e->whole_model_grads =
        plan->layout == SL_LAYOUT_REPLICATED || plan->layout == SL_LAYOUT_FLAT_GLOBAL;
    e->accumulates = plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED && plan->grad_accum_steps > 1;
    /* The kernels store a gradient as param_dtype or as f32 holding param_dtype values. */
    const bool own_dtype = e->ad == SL_DTYPE_F32 || e->ad == e->pd;
    e->ugd = e->whole_model_grads && plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED &&
                     !e->accumulates && own_dtype
                 ? e->ad
                 : e->pd;
}

static sl_status sl_engine_state_alloc(sl_engine *e) {
    const sl_plan *plan = e->plan;
    const sl_mem_space master_sp = plan->offload_params ? SL_SPACE_HOST : SL_SPACE_DEVICE;
    const sl_mem_space optim_sp = plan->offload_optimizer ? SL_SPACE_HOST : SL_SPACE_DEVICE;
    const int64_t n = e->owned;
    SL_TRY(sl_engine_alloc(e, master_sp, SL_MEM_PARAMS_MASTER, n * (int64_t)sl_dtype_size(e->md),
                           &e->master));
    if (!e->opt.inference_only) {
        const int64_t ob = n * (int64_t)sl_dtype_size(e->od);
        SL_TRY(sl_engine_alloc(e, optim_sp, SL_MEM_OPTIM_STATES, ob, &e->m));
        SL_TRY(sl_engine_alloc(e, optim_sp, SL_MEM_OPTIM_STATES, ob, &e->v));
        const int64_t gb = n * (int64_t)sl_dtype_size(e->gsd);
        SL_TRY(sl_engine_alloc(e, optim_sp, SL_MEM_GRADS_SHARDED, gb, &e->grad_shard));
        if (e->m) memset(e->m, 0, (size_t)ob);
        if (e->v) memset(e->v, 0, (size_t)ob);
        if (e->grad_shard) memset(e->grad_shard, 0, (size_t)gb);
    }
    if (e->master) memset(e->master, 0, (size_t)(n * (int64_t)sl_dtype_size(e->md)));
    SL_TRY(sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_PARAMS_GATHERED,
                           e->resident_numel * (int64_t)sl_dtype_size(e->pd), &e->resident));
    if (e->opt.keep_step1_grads && !e->opt.inference_only) {
        /* an output of the run (grads_step1), not training state: not in the categories */
        e->step1_grads = calloc((size_t)n + 1, sizeof(float));
        if (!e->step1_grads)
            return sl_error_set(SL_ERR_OOM, "engine: out of memory (step-1 grads)");
    }
    const size_t bt = (size_t)plan->micro_batch_size * (size_t)plan->seq_len;
    e->losses = calloc(bt, sizeof(float));
    e->dlosses = calloc(bt, sizeof(float));
    if (!e->losses || !e->dlosses)
        return sl_error_set(SL_ERR_OOM, "engine: out of memory (losses)");
    return SL_OK;
}

static sl_status sl_engine_create_ctx(sl_session *s, const sl_plan *plan,
                                      const sl_engine_model *model, const sl_engine_options *opt,
                                      sl_kctx *ctx, bool owns_ctx, sl_engine **out) {
    *out = NULL;
    sl_engine *e = calloc(1, sizeof *e);
    if (!e) {
        if (model->destroy) model->destroy(model->self);
        if (owns_ctx) sl_kernels_cpu()->context_destroy(ctx);
        return sl_error_set(SL_ERR_OOM, "out of memory creating the engine");
    }
    e->session = s;
    e->plan = plan;
    e->desc = model->desc;
    e->model = *model;
    e->opt = opt ? *opt : sl_engine_options_default();
    e->k = sl_kernels_cpu();
    e->ctx = ctx;
    e->owns_ctx = owns_ctx;
    e->rank = sl_session_rank(s);
    e->world = sl_session_world_size(s);
    sl_status st = SL_OK;
    if (plan->world_size != e->world) {
        st = sl_error_set(SL_ERR_CONFIG,
                          "engine: the plan is for num_processes = %d but %d processes are "
                          "running; start with `shardlab launch --num_processes %d`",
                          plan->world_size, e->world, plan->world_size);
        goto done;
    }
    e->shard_rank = sl_plan_shard_rank(plan, e->rank);
    if ((st = sl_engine_overlap_create(e)) != SL_OK) goto done;
    sl_engine_dtypes(e);
    if ((st = sl_observation_init(&e->obs, plan->world_size)) != SL_OK) goto done;
    for (int i = 0; i < SL_STAGE_COUNT; i++)
        e->obs.dtype_table[i] = SL_DTYPE_COUNT;
    if ((st = sl_engine_comms(e)) != SL_OK) goto done;
    e->reduce_opts = sl_comm_opts_default();
    e->reduce_opts.deterministic =
        e->opt.deterministic < 0 ? plan->deterministic : e->opt.deterministic;
    e->reduce_opts.divide_world = plan->world_size;
    e->reduce_opts.divide = plan->precision.grad_divide;
    if ((st = sl_engine_layout_create(e)) != SL_OK) goto done;
    if ((st = sl_engine_state_alloc(e)) != SL_OK) goto done;
    if ((st = sl_engine_init_shards(e)) != SL_OK) goto done;
    sl_engine_bind_views(e);
    st = sl_loss_scaler_init(&e->scaler, plan->precision.loss_scale, &plan->scaler);
done:
    if (st != SL_OK) {
        sl_engine_destroy(e);
        return st;
    }
    *out = e;
    return SL_OK;
}

sl_status sl_engine_create(sl_session *s, const sl_plan *plan, const sl_engine_model *model,
                           const sl_engine_options *opt, sl_engine **out) {
    sl_kctx *ctx = NULL;
    const sl_status st = sl_kernels_cpu()->context_create(&ctx);
    if (st != SL_OK) {
        if (model->destroy) model->destroy(model->self);
        return st;
    }
    return sl_engine_create_ctx(s, plan, model, opt, ctx, true, out);
}

sl_status sl_engine_create_gpt2(sl_session *s, const sl_plan *plan, const sl_model_desc *desc,
                                const sl_engine_options *opt, sl_engine **out) {
    *out = NULL;
    const sl_kernels *k = sl_kernels_cpu();
    sl_kctx *ctx = NULL;
    SL_TRY(k->context_create(&ctx));
    sl_engine_model model;
    sl_status st = sl_engine_gpt2_model(k, ctx, desc, plan, &model);
    if (st != SL_OK) {
        k->context_destroy(ctx);
        return st;
    }
    /* from here the engine owns (and on failure releases) the model and the context */
    return sl_engine_create_ctx(s, plan, &model, opt, ctx, true, out);
}

void sl_engine_destroy(sl_engine *e) {
    if (!e) return;
    sl_engine_overlap_destroy(e);
    if (e->model.destroy) e->model.destroy(e->model.self);
    if (e->desc && e->plan) {
        for (int u = 0; e->gathered && u < e->desc->n_units; u++) {
            if (e->gathered[u]) e->k->release(e->ctx, e->gathered[u]);
            if (e->grads_unit && e->grads_unit[u]) e->k->release(e->ctx, e->grads_unit[u]);
        }
        e->k->release(e->ctx, e->grads_model);
        e->k->release(e->ctx, e->accum);
        e->k->release(e->ctx, e->master);
        e->k->release(e->ctx, e->m);
        e->k->release(e->ctx, e->v);
        e->k->release(e->ctx, e->grad_shard);
        e->k->release(e->ctx, e->resident);
        sl_engine_layout_destroy(e);
    }
    free(e->step1_grads);
    free(e->losses);
    free(e->dlosses);
    sl_comm_destroy(e->aux_comm);
    sl_comm_destroy(e->replica_comm);
    sl_comm_destroy(e->shard_comm);
    sl_comm_destroy(e->world_comm);
    sl_observation_free(&e->obs);
    if (e->owns_ctx && e->ctx) e->k->context_destroy(e->ctx);
    free(e);
}

sl_kctx *sl_engine_kernel_context(sl_engine *e) {
    return e->ctx;
}
const sl_plan *sl_engine_plan(const sl_engine *e) {
    return e->plan;
}
double sl_engine_loss_scale(const sl_engine *e) {
    return e->scaler.scale;
}
int64_t sl_engine_comm_scratch_peak(const sl_engine *e) {
    return e->comm_scratch_peak;
}

sl_status sl_engine_step_begin(sl_engine *e, int64_t global_tokens) {
    if (e->opt.inference_only) {
        return sl_error_set(SL_ERR_INVALID_ARG, "engine: an inference-only engine cannot train");
    }
    e->global_tokens = global_tokens;
    e->loss_sum = 0.0;
    e->record = e->steps_done == 0;
    return SL_OK;
}

static sl_status sl_engine_check_batch(const sl_engine *e, const sl_batch *batch) {
    const sl_plan *plan = e->plan;
    if (!batch || !batch->inputs || !batch->targets || batch->B != plan->micro_batch_size ||
        batch->T != plan->seq_len) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "engine: a micro-batch must be (micro_batch_size %d, seq_len %d) "
                            "inputs and targets; got (%d, %d)",
                            plan->micro_batch_size, plan->seq_len, batch ? batch->B : 0,
                            batch ? batch->T : 0);
    }
    return SL_OK;
}

/* d objective / d loss[b,t] (DESIGN.md §5), times the loss scale as `(loss * scale).backward()`:
 * global_tokens weighs every valid token W / N_global (the reduction then divides by W);
 * per_microbatch_mean scales each micro-step's mean by 1/k. */
static void sl_engine_token_weights(sl_engine *e, const sl_batch *batch) {
    const sl_plan *plan = e->plan;
    const int64_t bt = (int64_t)batch->B * batch->T;
    double w;
    if (plan->loss_norm == SL_LOSS_NORM_GLOBAL_TOKENS) {
        w = e->global_tokens > 0 ? (double)plan->world_size / (double)e->global_tokens : 0.0;
    } else {
        int64_t local = 0;
        for (int64_t i = 0; i < bt; i++)
            local += batch->targets[i] >= 0;
        w = local > 0 ? 1.0 / ((double)local * plan->grad_accum_steps) : 0.0;
    }
    const float wf = (float)w * (float)e->scaler.scale;
    for (int64_t i = 0; i < bt; i++)
        e->dlosses[i] = batch->targets[i] >= 0 ? wf : 0.0f;
}

static void sl_engine_charge_model(sl_engine *e, bool on) {
    sl_engine_charge(e, SL_SPACE_DEVICE, SL_MEM_ACTIVATIONS, e->model.activation_bytes, on);
    sl_engine_charge(e, SL_SPACE_DEVICE, SL_MEM_WORKSPACE, e->model.workspace_bytes, on);
}

static double sl_engine_sum_losses(const sl_engine *e, const sl_batch *batch) {
    double s = 0.0; /* f64: a metric, not part of the gradient */
    for (int64_t i = 0; i < (int64_t)batch->B * batch->T; i++) {
        if (batch->targets[i] >= 0) s += e->losses[i];
    }
    return s;
}

/* Forward through every unit. With forward_prefetch the next unit's all-gather is issued before
 * this unit computes (FSDP1 forward_prefetch) and advances between its kernels. */
static sl_status sl_engine_forward_units(sl_engine *e, int micro, const sl_batch *batch) {
    const sl_engine_model *m = &e->model;
    const int n = e->desc->n_units;
    for (int u = 0; u < n; u++) {
        SL_TRY(sl_engine_gather(e, u, SL_PHASE_FORWARD, micro));
        if (e->plan->forward_prefetch && u + 1 < n)
            SL_TRY(sl_engine_prefetch(e, u + 1, SL_PHASE_FORWARD, micro));
        SL_TRY(m->forward(m->self, u, e->params, batch));
        sl_engine_after_forward(e, u);
    }
    return SL_OK;
}

/* Whether unit u, about to run backward, is gathered again in backward (it was resharded after
 * forward) rather than still held. */
static bool sl_engine_backward_regathers(const sl_engine *e, int u) {
    return e->per_unit && !e->held[u] && !e->desc->units[u].is_root;
}

static sl_status sl_engine_micro_body(sl_engine *e, int micro, const sl_batch *batch,
                                      double *loss_sum) {
    const sl_engine_model *m = &e->model;
    const sl_plan *plan = e->plan;
    const int n = e->desc->n_units;
    SL_TRY(sl_engine_forward_units(e, micro, batch));
    SL_TRY(m->loss_forward(m->self, e->params, batch, e->losses));
    *loss_sum = sl_engine_sum_losses(e, batch);
    sl_engine_token_weights(e, batch);

    SL_TRY(sl_engine_backward_begin(e, micro));
    /* Backward prefetch: the first unit to re-gather is fetched while the head's backward runs
     * (the schedule's next collective either way). */
    if (plan->backward_prefetch && n > 1 && sl_engine_backward_regathers(e, n - 1))
        SL_TRY(sl_engine_prefetch(e, n - 1, SL_PHASE_BACKWARD, micro));
    SL_TRY(m->loss_backward(m->self, e->params, e->grads, batch, e->dlosses));
    for (int u = n - 1; u >= 1; u--) {
        SL_TRY(sl_engine_gather(e, u, SL_PHASE_BACKWARD, micro));
        /* BACKWARD_PRE: the next unit's all-gather runs during this unit's backward compute;
         * BACKWARD_POST issues it after (sl_engine_unit_backward_done). */
        if (plan->backward_prefetch == 1 && u - 1 >= 1 && sl_engine_backward_regathers(e, u - 1))
            SL_TRY(sl_engine_prefetch(e, u - 1, SL_PHASE_BACKWARD, micro));
        SL_TRY(sl_engine_unit_grads_alloc(e, u));
        SL_TRY(m->backward(m->self, u, e->params, e->grads, batch));
        SL_TRY(sl_engine_unit_backward_done(e, u, micro));
    }
    SL_TRY(m->backward(m->self, 0, e->params, e->grads, batch));
    SL_TRY(sl_engine_unit_backward_done(e, 0, micro)); /* the root's gradients are complete last */
    return sl_engine_backward_end(e, micro);
}

sl_status sl_engine_micro_step(sl_engine *e, int micro, const sl_batch *batch, double *loss_sum) {
    SL_TRY(sl_engine_check_batch(e, batch));
    if (micro < 0 || micro >= e->plan->grad_accum_steps) {
        return sl_error_set(SL_ERR_INVALID_ARG, "engine: micro-step %d outside 0..%d", micro,
                            e->plan->grad_accum_steps - 1);
    }
    double local = 0.0;
    sl_engine_charge_model(e, true);
    sl_status st = sl_engine_micro_body(e, micro, batch, &local);
    sl_engine_charge_model(e, false);
    SL_TRY(st);
    e->loss_sum += local;
    if (loss_sum) *loss_sum = local;
    return SL_OK;
}

sl_status sl_engine_optimizer_step(sl_engine *e, sl_trajectory_step *rec) {
    double total = e->loss_sum;
    SL_TRY(sl_session_sum_f64(e->session, &total, 1));
    *rec =
        (sl_trajectory_step){.step = e->steps_done + 1,
                             .loss = e->global_tokens > 0 ? total / (double)e->global_tokens : NAN,
                             .loss_scale = e->scaler.scale,
                             .tokens = e->global_tokens,
                             .eval_loss = NAN};
    SL_TRY(sl_engine_step(e, rec));
    e->steps_done++;
    e->record = false;
    return SL_OK;
}

sl_status sl_engine_forward(sl_engine *e, const sl_batch *batch, float *losses) {
    SL_TRY(sl_engine_check_batch(e, batch));
    const sl_engine_model *m = &e->model;
    const bool was = e->record;
    e->record = false;
    sl_engine_charge_model(e, true);
    sl_status st = sl_engine_forward_units(e, 0, batch);
    if (st == SL_OK) st = m->loss_forward(m->self, e->params, batch, losses);
    for (int u = 0; u < e->desc->n_units; u++)
        sl_engine_release(e, u);
    sl_engine_charge_model(e, false);
    e->record = was;
    return st;
}
