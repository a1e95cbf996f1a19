/* Loading a checkpoint into the engine (include/shardlab/checkpoint.h): every rank reads the
 * global ranges of the pieces it owns under ITS plan into staging copies of its state, from
 * whichever files of whatever layout hold them; only when every rank has succeeded are the
 * staging copies committed, so a failed load changes nothing. */
#include <stdlib.h>
#include <string.h>

#include "impl/ckpt/ckpt_internal.h"
#include "shardlab/log.h"

typedef struct sl_ckpt_stage {
    void *state[3];   /* (owned) masters in md; exp_avg and exp_avg_sq in od */
    int64_t narrowed; /* elements a narrower dtype than the file's changed */
} sl_ckpt_stage;

static void sl_ckpt_stage_free(sl_ckpt_stage *s) {
    for (int k = 0; k < 3; k++)
        free(s->state[k]);
}

static sl_status sl_ckpt_stage_read(sl_engine *e, sl_ckpt_reader *r, sl_ckpt_stage *s) {
    const int n_states = e->opt.inference_only ? 1 : 3;
    int64_t largest = 1;
    for (int p = 0; p < e->desc->n_params; p++) {
        if (e->desc->params[p].numel > largest) largest = e->desc->params[p].numel;
    }
    for (int k = 0; k < n_states; k++) {
        const sl_dtype dt = k == 0 ? e->md : e->od;
        /* staging beside the live state: transient, outside the training categories; zeros
         * where the shard is padding, as the engine keeps it */
        s->state[k] = calloc((size_t)e->owned + 1, sl_dtype_size(dt));
        if (!s->state[k]) return sl_error_set(SL_ERR_OOM, "out of memory loading a checkpoint");
    }
    float *vals = malloc((size_t)largest * sizeof *vals);
    if (!vals) return sl_error_set(SL_ERR_OOM, "out of memory loading a checkpoint");
    sl_status st = SL_OK;
    for (int b = 0; st == SL_OK && b < e->plan->n_buffers; b++) {
        for (int i = 0; st == SL_OK && i < e->n_pieces[b]; i++) {
            const sl_shard_piece *pc = &e->pieces[b][i];
            const int64_t n = pc->end - pc->start, at = e->shard_off[b] + pc->shard_offset;
            for (int k = 0; st == SL_OK && n > 0 && k < n_states; k++) {
                const sl_dtype dt = k == 0 ? e->md : e->od;
                st = sl_ckpt_reader_read(r, (sl_ckpt_state)k, pc->param, pc->start, pc->end, vals);
                for (int64_t j = 0; st == SL_OK && j < n; j++) {
                    sl_engine_set(s->state[k], dt, at + j, vals[j]);
                    s->narrowed += sl_engine_get(s->state[k], dt, at + j) != vals[j];
                }
            }
        }
    }
    free(vals);
    return st;
}

/* What differs between the saving run and this one and changes the continuation: logged. */
static void sl_ckpt_note_changes(const sl_engine *e, const sl_ckpt_manifest *m, const char *dir) {
    const sl_plan *plan = e->plan;
    if (m->world_size != e->world || strcmp(m->layout, sl_layout_name(plan->layout)) != 0) {
        SL_LOG_INFO("%s: resharding from W = %d %s (%s) to W = %d %s (%s)", dir, m->world_size,
                    m->strategy, m->layout, e->world, sl_strategy_name(plan->strategy),
                    sl_layout_name(plan->layout));
    }
    if (m->seed != plan->seed) {
        SL_LOG_WARN("%s: saved with seed %llu, this run has seed %llu: the data order from here "
                    "on is another one",
                    dir, (unsigned long long)m->seed, (unsigned long long)plan->seed);
    }
    if (m->total_steps != plan->steps) {
        SL_LOG_WARN("%s: saved by a run of max_steps %d, this run has %d: the LR schedule "
                    "continues on the new length",
                    dir, m->total_steps, plan->steps);
    }
    if (m->scaler.kind != e->scaler.kind) {
        SL_LOG_WARN("%s: saved with the %s loss scaler, this plan uses %s: the scaler starts "
                    "afresh",
                    dir, sl_loss_scaler_kind_name(m->scaler.kind),
                    sl_loss_scaler_kind_name(e->scaler.kind));
    }
}

static void sl_ckpt_commit_state(sl_engine *e, sl_ckpt_stage *s, const sl_ckpt_manifest *m) {
    void *live[3] = {e->master, e->m, e->v};
    for (int k = 0; k < 3; k++) {
        if (!s->state[k] || !live[k]) continue;
        memcpy(live[k], s->state[k], (size_t)e->owned * sl_dtype_size(k == 0 ? e->md : e->od));
    }
    if (m->scaler.kind == e->scaler.kind) {
        e->scaler.scale = m->scaler.scale;
        e->scaler.cur_iter = m->scaler.cur_iter;
        e->scaler.last_overflow_iter = m->scaler.last_overflow_iter;
        e->scaler.cur_hysteresis = m->scaler.cur_hysteresis;
        e->scaler.growth_tracker = m->scaler.growth_tracker;
    }
    e->applied_steps = (int)m->applied_steps;
    e->steps_done = (int)m->step;
}

sl_status sl_engine_load_state(sl_engine *e, const char *dir, sl_ckpt_info *info) {
    sl_ckpt_reader *r = NULL;
    sl_ckpt_stage stage = {0};
    sl_status st = sl_ckpt_reader_open(dir, e->desc, &r);
    const sl_ckpt_manifest *m = st == SL_OK ? sl_ckpt_reader_manifest(r) : NULL;
    if (st == SL_OK && (m->step > 1000000000 || m->applied_steps > m->step)) {
        st = sl_error_set(SL_ERR_FORMAT,
                          "%s/%s: step %lld, applied_steps %lld: expected "
                          "0 <= applied_steps <= step <= 1e9",
                          dir, SL_CKPT_MANIFEST, (long long)m->step, (long long)m->applied_steps);
    }
    if (st == SL_OK) st = sl_ckpt_stage_read(e, r, &stage);
    st = sl_ckpt_agree(e, st, "loading the checkpoint");
    if (st == SL_OK) {
        if (e->rank == 0) sl_ckpt_note_changes(e, m, dir);
        if (stage.narrowed > 0) {
            SL_LOG_WARN("%s: %lld values were rounded to this plan's narrower master or "
                        "optimizer-state dtype (%s / %s)",
                        dir, (long long)stage.narrowed, sl_dtype_name(e->md), sl_dtype_name(e->od));
        }
        sl_ckpt_commit_state(e, &stage, m);
        if (info) {
            *info = (sl_ckpt_info){.type = m->type,
                                   .step = m->step,
                                   .applied_steps = m->applied_steps,
                                   .world_size = m->world_size,
                                   .has_data = m->has_data,
                                   .data = m->data,
                                   .consumed_samples = m->consumed_samples};
        }
        /* every gathered or resident copy of the parameters is stale */
        st = sl_engine_refresh_resident(e, true);
    }
    sl_ckpt_stage_free(&stage);
    sl_ckpt_reader_close(r);
    if (st == SL_OK && e->rank == 0)
        SL_LOG_INFO("loaded checkpoint %s (step %d)", dir, e->steps_done);
    return st;
}
