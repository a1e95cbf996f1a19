/* The optimizer step of the reference (DESIGN.md §4.1–§4.2): gradients into the master dtype,
 * overflow detection and unscaling, the global norm, clipping, AdamW on every rank's shard, and
 * the loss scaler's verdict on whether the step happens at all. */
#include <math.h>
#include <stdlib.h>

#include "ref/optim.h"
#include "ref/run.h"
#include "shardlab/lr_schedule.h"

double sl_ref_run_loss_scale(const sl_ref_run *run) {
    return run->scaler.scale;
}

/* Runs fn over every owned piece of every rank's shards. */
#define SL_REF_FOR_EACH_PIECE(run, r, b, rs, pc)                                                   \
    for (int r = 0; r < (run)->plan->world_size; r++)                                              \
        for (int b = 0; b < (run)->plan->n_buffers; b++)                                           \
            for (sl_ref_rank_shard *rs = &(run)->shards->rank[r][b]; rs; rs = NULL)                \
                for (const sl_shard_piece *pc = rs->pieces; pc < rs->pieces + rs->n_pieces; pc++)

static bool sl_ref_any_nonfinite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return true;
    }
    return false;
}

/* The norm over the shard group of replica 0 (replicas hold identical shards; a replicated layout
 * means each rank holds everything, so rank 0 alone). */
static sl_status sl_ref_global_norm(sl_ref_run *run, double *norm) {
    const sl_plan *plan = run->plan;
    const int n_ranks = plan->layout == SL_LAYOUT_REPLICATED ? 1 : plan->shard_group_size;
    int total_pieces = 0;
    for (int r = 0; r < n_ranks; r++) {
        for (int b = 0; b < plan->n_buffers; b++)
            total_pieces += run->shards->rank[r][b].n_pieces;
    }
    sl_grad_piece *pieces = calloc((size_t)total_pieces + 1, sizeof *pieces);
    sl_rank_grads *ranks = calloc((size_t)n_ranks, sizeof *ranks);
    if (!pieces || !ranks) {
        free(pieces);
        free(ranks);
        return sl_error_set(SL_ERR_OOM, "out of memory computing the gradient norm");
    }
    int k = 0;
    for (int r = 0; r < n_ranks; r++) {
        ranks[r].pieces = pieces + k;
        for (int b = 0; b < plan->n_buffers; b++) {
            const sl_ref_rank_shard *rs = &run->shards->rank[r][b];
            for (int i = 0; i < rs->n_pieces; i++) {
                pieces[k++] = (sl_grad_piece){.data = rs->grad + rs->pieces[i].shard_offset,
                                              .numel = (rs->pieces[i].end - rs->pieces[i].start)};
            }
        }
        ranks[r].n_pieces = (int)(pieces + k - ranks[r].pieces);
    }
    *norm = sl_ref_grad_norm(plan->precision.norm, ranks, n_ranks);
    free(pieces);
    free(ranks);
    if (plan->strategy != SL_STRATEGY_NO_SHARD) { /* Σ of squares over the shard group */
        sl_ref_record(run, SL_COLL_ALL_REDUCE, SL_GROUP_SHARD, SL_PHASE_STEP,
                      plan->grad_accum_steps - 1, -1, SL_DTYPE_F32, 1);
    }
    return SL_OK;
}

/* Parameters every rank keeps gathered are refreshed from the updated shards: ZeRO-1/2's full
 * module, ZeRO-3's persistent parameters (stage3.py _post_step). */
static void sl_ref_step_gathers(sl_ref_run *run) {
    const sl_plan *plan = run->plan;
    const int last = plan->grad_accum_steps - 1;
    int64_t numel = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        const sl_flat_buffer *buf = &plan->buffers[b];
        if (plan->layout == SL_LAYOUT_FLAT_GLOBAL || buf->persistent) numel += buf->numel_padded;
    }
    sl_ref_record(run, SL_COLL_ALL_GATHER, SL_GROUP_SHARD, SL_PHASE_STEP, last, -1,
                  plan->precision.param_dtype, numel);
}

sl_status sl_ref_run_optimizer_step(sl_ref_run *run, sl_trajectory_step *rec) {
    const sl_plan *plan = run->plan;
    const sl_precision *pr = &plan->precision;
    const sl_dtype md = pr->master_dtype;
    const double scale = run->scaler.scale;
    sl_observation *obs = run->obs;
    obs->dtype_table[SL_STAGE_PREPARATION] = md;
    obs->dtype_table[SL_STAGE_OPTIMIZER_STATES] = pr->optim_dtype;

    /* Reduced shards accumulated in accum_dtype reach the optimizer in master_dtype. */
    SL_REF_FOR_EACH_PIECE(run, r, b, rs, pc) {
        sl_round_array(rs->grad + pc->shard_offset, (size_t)(pc->end - pc->start), md);
    }

    /* Overflow: GradScaler unscales first and detects on the way (unscale_); DeepSpeed checks the
     * scaled gradients. Either way it is a global OR over ranks. */
    bool overflow = false;
    if (pr->loss_scale == SL_SCALER_TORCH_GRADSCALER) {
        const float inv = sl_ref_torch_inv_scale(scale);
        SL_REF_FOR_EACH_PIECE(run, r, b, rs, pc) {
            overflow |=
                sl_ref_grads_unscale(rs->grad + pc->shard_offset, (pc->end - pc->start), inv, md);
        }
    } else if (pr->loss_scale != SL_SCALER_NONE) {
        SL_REF_FOR_EACH_PIECE(run, r, b, rs, pc) {
            overflow |= sl_ref_any_nonfinite(rs->grad + pc->shard_offset, (pc->end - pc->start));
        }
    }
    const int last = plan->grad_accum_steps - 1;
    const bool sharded_grads = plan->strategy != SL_STRATEGY_NO_SHARD;
    if (pr->loss_scale != SL_SCALER_NONE && sharded_grads) { /* replicas all see every gradient */
        sl_ref_record(run, SL_COLL_ALL_REDUCE, SL_GROUP_SHARD, SL_PHASE_STEP, last, -1,
                      SL_DTYPE_F32, 1);
    }

    double norm = 0.0;
    SL_TRY(sl_ref_global_norm(run, &norm));
    const bool ds_scaled = pr->clip == SL_CLIP_DS;
    rec->grad_norm = ds_scaled && norm >= 0.0 ? norm / scale : norm;
    if (run->record) {
        sl_ref_shards_grads(run->shards, run->step1_grads);
        if (ds_scaled && scale != 1.0) { /* grads_step1 holds unscaled gradients */
            for (int p = 0; p < run->model->n_params; p++) {
                for (int64_t i = 0; i < run->model->params[p].numel; i++) {
                    run->step1_grads[p][i] = (float)(run->step1_grads[p][i] / scale);
                }
            }
        }
    }

    bool skip = false;
    SL_TRY(sl_loss_scaler_update(&run->scaler, overflow, &skip));
    rec->skipped = skip;
    rec->lr = sl_lr_at(&plan->optim, run->applied_steps, plan->steps);
    if (!skip) {
        const float coef = sl_ref_clip_coef(pr->clip, norm, plan->optim.max_grad_norm, scale);
        const int step = run->applied_steps + 1;
        obs->dtype_table[SL_STAGE_OPTIMIZER_STEP] = md;
        SL_REF_FOR_EACH_PIECE(run, r, b, rs, pc) {
            float *g = rs->grad + pc->shard_offset;
            sl_ref_clip_apply(pr->clip, coef, g, (pc->end - pc->start), md);
            SL_TRY(sl_ref_adamw_step(pr->adam, &plan->optim, rec->lr, step,
                                     rs->master + pc->shard_offset, g, rs->m + pc->shard_offset,
                                     rs->v + pc->shard_offset, (pc->end - pc->start), md));
        }
        run->applied_steps++;
        sl_ref_step_gathers(run);
    }
    /* New masters: every rank's gathered copies are stale. */
    for (int r = 0; r < plan->world_size; r++) {
        for (int u = 0; u < run->model->n_units; u++)
            run->gathered[r][u] = false;
    }
    return SL_OK;
}
