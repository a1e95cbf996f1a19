/* The reference training loop. For every optimizer step, for every micro-step, unit by unit in
 * execution order, every logical rank: gather the unit, compute, and — after backward — keep the
 * local gradient as the dialect says and reduce across ranks when the plan synchronises; then the
 * optimizer step on each rank's shard (ref/step.c). Collectives are recorded, in issue order,
 * during the first step; memory is accounted per rank as the engine would allocate it. */
#include "ref/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ref/gpt2.h"
#include "ref/reduce.h"
#include "ref/run.h"
#include "ref/shards.h"
#include "shardlab/log.h"

sl_ref_options sl_ref_options_default(void) {
    return (sl_ref_options){.data = "default",
                            .sampling = SL_SAMPLE_PACKED,
                            .out_dir = NULL,
                            .init_from = NULL,
                            .eval_every = 0,
                            .eval_batches = 4,
                            .progress = 0};
}

static double sl_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The token weights d objective / d loss[b,t] of rank r's micro-step m (DESIGN.md §5): with
 * global_tokens every valid token of the global batch weighs W / N_global (the reduction then
 * divides by W), with per_microbatch_mean each micro-step's mean is scaled by 1/k. The loss
 * scale multiplies in, as `(loss * scale).backward()` does. */
static void sl_ref_token_weights(const sl_ref_run *run, int r, int m, int64_t global_tokens,
                                 float scale, float *dlosses) {
    const sl_plan *plan = run->plan;
    const int64_t bt = (int64_t)plan->micro_batch_size * plan->seq_len;
    const int32_t *targets = sl_ref_run_targets(run, r, m);
    double w;
    if (plan->loss_norm == SL_LOSS_NORM_GLOBAL_TOKENS) {
        w = (double)plan->world_size / (double)global_tokens;
    } else {
        int64_t local = 0;
        for (int64_t i = 0; i < bt; i++)
            local += targets[i] >= 0;
        w = local > 0 ? 1.0 / ((double)local * plan->grad_accum_steps) : 0.0;
    }
    const float wf = (float)w * scale;
    for (int64_t i = 0; i < bt; i++)
        dlosses[i] = targets[i] >= 0 ? wf : 0.0f;
}

/* Micro-step m on every rank. Ranks advance in lockstep, unit by unit, because that is where
 * a real job synchronises: a unit's all-gather before its compute, its reduction after every
 * rank's backward of it. Returns the Σ of token losses over all ranks (f64). */
static double sl_ref_micro_step(sl_ref_run *run, int m, int64_t global_tokens, float scale) {
    const sl_plan *plan = run->plan;
    const sl_model_desc *model = run->model;
    const sl_dtype cd = plan->precision.param_dtype;
    const int W = plan->world_size, L = model->gpt2.n_layer;
    const int64_t bt = (int64_t)plan->micro_batch_size * plan->seq_len;

    /* forward: root (embeddings), blocks 0..L-1, then the root's ln_f + tied head */
    for (int r = 0; r < W; r++)
        sl_ref_run_activations_begin(run, r);
    for (int u = 0; u <= L; u++) {
        for (int r = 0; r < W; r++) {
            sl_ref_run_gather(run, r, u, SL_PHASE_FORWARD, m);
            /* forward prefetch (FSDP1): the next block's all-gather is issued before this unit
             * computes, so the two are gathered together; the order of the gathers is unchanged */
            if (plan->forward_prefetch && u + 1 <= L) {
                sl_ref_run_gather(run, r, u + 1, SL_PHASE_FORWARD, m);
            }
            if (u == 0) {
                sl_ref_gpt2_embed_forward(model, run->params, sl_ref_run_inputs(run, r, m), cd,
                                          run->acts[r]);
            } else {
                sl_ref_gpt2_block_forward(model, u - 1, run->params, cd, run->acts[r]);
            }
            sl_ref_run_after_forward(run, r, u);
        }
    }
    double loss_sum = 0.0; /* f64: a metric, not part of the gradient */
    for (int r = 0; r < W; r++) {
        const int32_t *targets = sl_ref_run_targets(run, r, m);
        sl_ref_gpt2_head_forward(model, run->params, targets, cd, run->acts[r], run->losses);
        for (int64_t i = 0; i < bt; i++)
            loss_sum += targets[i] >= 0 ? run->losses[i] : 0.0;
        sl_ref_token_weights(run, r, m, global_tokens, scale, run->dlosses[r]);
    }

    /* backward, units in reverse; each rank's gradients land in run->grads[r] (param dtype) */
    sl_ref_run_backward_begin(run, m);
    for (int r = 0; r < W; r++) {
        sl_ref_gpt2_head_backward(model, run->params, run->grads[r], sl_ref_run_targets(run, r, m),
                                  run->dlosses[r], cd, run->acts[r]);
    }
    for (int l = L - 1; l >= 0; l--) {
        for (int r = 0; r < W; r++) {
            sl_ref_run_gather(run, r, 1 + l, SL_PHASE_BACKWARD, m);
            sl_ref_gpt2_block_backward(model, l, run->params, run->grads[r], cd, run->acts[r]);
        }
        sl_ref_run_unit_backward_done(run, 1 + l, m);
    }
    for (int r = 0; r < W; r++) {
        sl_ref_gpt2_embed_backward(model, run->grads[r], sl_ref_run_inputs(run, r, m), cd,
                                   run->acts[r]);
    }
    sl_ref_run_unit_backward_done(run, 0, m); /* the root's gradients are complete last */
    sl_ref_run_backward_end(run, m);
    for (int r = 0; r < W; r++)
        sl_ref_run_activations_end(run, r);
    return loss_sum;
}

static sl_status sl_ref_train_step(sl_ref_run *run, int step, sl_trajectory_step *out) {
    const sl_plan *plan = run->plan;
    const int W = plan->world_size, k = plan->grad_accum_steps;
    SL_TRY(sl_ref_run_load_batch(run, step));
    int64_t global_tokens = 0;
    for (int r = 0; r < W; r++) {
        for (int m = 0; m < k; m++)
            global_tokens += sl_ref_run_count_tokens(run, r, m);
    }
    const float scale = (float)sl_ref_run_loss_scale(run);
    double loss_sum = 0.0;
    for (int m = 0; m < k; m++)
        loss_sum += sl_ref_micro_step(run, m, global_tokens, scale);
    *out = (sl_trajectory_step){.step = step + 1,
                                .loss = global_tokens > 0 ? loss_sum / (double)global_tokens : NAN,
                                .loss_scale = scale,
                                .tokens = global_tokens,
                                .eval_loss = NAN};
    return sl_ref_run_optimizer_step(run, out);
}

sl_status sl_ref_train(const sl_plan *plan, const sl_model_desc *model, const sl_ref_options *opt,
                       sl_trajectory *traj, sl_observation *obs) {
    sl_ref_run *run = NULL;
    SL_TRY(sl_ref_run_create(plan, model, opt, obs, &run));
    sl_status st = sl_ref_run_write_initial(run);
    const double t0 = sl_now_seconds();
    for (int s = 0; st == SL_OK && s < plan->steps; s++) {
        sl_trajectory_step rec;
        run->record = s == 0;
        st = sl_ref_train_step(run, s, &rec);
        if (st != SL_OK) break;
        if (opt->eval_every > 0 && (s + 1) % opt->eval_every == 0) {
            st = sl_ref_run_eval(run, &rec.eval_loss);
            if (st != SL_OK) break;
        }
        if (s == 0) st = sl_ref_run_write_step1(run);
        if (st == SL_OK) st = sl_trajectory_append(traj, &rec);
        if (st == SL_OK && opt->progress) {
            SL_LOG_INFO("ref step %d/%d loss %.4f grad_norm %.4f lr %.3e%s", rec.step, plan->steps,
                        rec.loss, rec.grad_norm, rec.lr, rec.skipped ? " (skipped: overflow)" : "");
        }
    }
    traj->seconds = sl_now_seconds() - t0;
    if (st == SL_OK) st = sl_ref_run_write_final(run, traj);
    sl_ref_run_destroy(run);
    return st;
}
