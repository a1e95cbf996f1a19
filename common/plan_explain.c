/* `shardlab explain` as text: the plan in the order a reader checks it — dtype table, precision
 * with provenance, the configuration used, who owns what, the collectives of one step, memory. */
#include <stdlib.h>
#include <string.h>

#include "common/plan_internal.h"

static const char *const sl_stage_titles[SL_STAGE_COUNT] = {
    "preparation (flat/master params)", "optimizer states", "training step (forward/backward)",
    "gradient reduction", "optimizer step"};

static void sl_explain_header(const sl_plan *plan, const sl_model_desc *model, FILE *f) {
    fprintf(f,
            "plan: %s %s, W = %d on %d machine%s, shard group G = %d, %d replica%s, k = %d "
            "micro-step%s\n",
            sl_dialect_name(plan->dialect), sl_strategy_name(plan->strategy), plan->world_size,
            plan->num_machines, plan->num_machines == 1 ? "" : "s", plan->shard_group_size,
            plan->n_replicas, plan->n_replicas == 1 ? "" : "s", plan->grad_accum_steps,
            plan->grad_accum_steps == 1 ? "" : "s");
    fprintf(f, "follows: %s\n", plan->follows);
    fprintf(f, "model: %s L%d C%d H%d T%d V%d, %lld parameters in %d tensors and %d units\n",
            model->kind, model->gpt2.n_layer, model->gpt2.n_embd, model->gpt2.n_head,
            model->gpt2.block_size, model->gpt2.vocab_size, (long long)model->total_numel,
            model->n_params, model->n_units);
    fprintf(f, "run: micro_batch_size %d, seq_len %d, %d steps, seed %llu, loss %s, %s\n",
            plan->micro_batch_size, plan->seq_len, plan->steps, (unsigned long long)plan->seed,
            sl_loss_norm_name(plan->loss_norm),
            plan->deterministic ? "deterministic reductions" : "native reductions");
}

static void sl_explain_precision(const sl_plan *plan, FILE *f) {
    sl_dtype table[SL_STAGE_COUNT];
    sl_plan_dtype_table(plan, table);
    fprintf(f,
            "\ndtype table (the stages of Accelerate's \"Moving between FSDP and DeepSpeed\")\n");
    for (int s = 0; s < SL_STAGE_COUNT; s++) {
        fprintf(f, "  %-34s %s\n", sl_stage_titles[s], sl_dtype_name(table[s]));
    }
    fprintf(f, "\nprecision (value, and why)\n");
    for (int i = 0; i < SL_PREC_FIELD_COUNT; i++) {
        fprintf(f, "  %-22s %-16s %s\n", sl_precision_field_name((sl_precision_field)i),
                sl_precision_field_value(&plan->precision, (sl_precision_field)i),
                plan->precision_why[i]);
    }
    fprintf(f, "  %-22s %s\n", "accumulation", sl_accum_mode_name(plan->accum_mode));
    const sl_loss_scaler_config *s = &plan->scaler;
    if (plan->precision.loss_scale != SL_SCALER_NONE) {
        fprintf(f,
                "  %-22s init %g, x%g every %d clean steps, x%g on overflow, hysteresis %d%s, "
                "min %g\n",
                "loss scaler", s->init_scale, s->growth_factor, s->growth_interval,
                plan->precision.loss_scale == SL_SCALER_TORCH_GRADSCALER ? s->backoff_factor
                                                                         : 1.0 / s->growth_factor,
                s->hysteresis, s->consecutive_hysteresis ? " (consecutive)" : "", s->min_scale);
    }
    const sl_optim_config *o = &plan->optim;
    char clip[64] = "off";
    if (o->max_grad_norm > 0) snprintf(clip, sizeof clip, "at global norm %g", o->max_grad_norm);
    fprintf(f,
            "  %-22s AdamW lr %g betas (%g, %g) eps %g weight_decay %g, clip %s, %s schedule "
            "(warmup %d, min_lr_ratio %g)\n",
            "optimizer", o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, clip,
            sl_lr_schedule_name(o->schedule), o->warmup_steps, o->min_lr_ratio);
}

static void sl_explain_config(const sl_plan *plan, FILE *f) {
    fprintf(f, "\nconfiguration used (value, source)\n");
    for (size_t i = 0; i < sl_config_size(plan->config); i++) {
        const char *value;
        const sl_source *src;
        const char *key = sl_config_entry(plan->config, i, &value, &src);
        char where[512];
        sl_source_describe(src, where, sizeof where);
        fprintf(f, "  %-36s %-14s %s\n", key, value, where);
    }
    fprintf(f,
            "  strategy options: reshard_after_forward %s, use_orig_params %s, forward_prefetch "
            "%s, backward_prefetch %s, limit_all_gathers %s, offload params %s / optimizer %s\n",
            plan->reshard_after_forward ? "yes" : "no", plan->use_orig_params ? "yes" : "no",
            plan->forward_prefetch ? "yes" : "no",
            sl_backward_prefetch_name(plan->backward_prefetch),
            plan->limit_all_gathers ? "yes" : "no", plan->offload_params ? "host" : "device",
            plan->offload_optimizer ? "host" : "device");
}

static void sl_explain_ranks(const sl_plan *plan, int s, FILE *f) {
    if (plan->n_replicas == 1) {
        fprintf(f, "rank %d", s);
        return;
    }
    fprintf(f, "ranks");
    for (int r = 0; r < plan->n_replicas; r++) {
        fprintf(f, "%s%d", r ? "," : " ", r * plan->shard_group_size + s);
    }
}

static void sl_explain_layout(const sl_plan *plan, const sl_model_desc *model, FILE *f) {
    fprintf(f,
            "\nlayout %s: %d buffer%s; rank r of a shard group owns [r*shard, (r+1)*shard) "
            "of each buffer\n",
            sl_layout_name(plan->layout), plan->n_buffers, plan->n_buffers == 1 ? "" : "s");
    int max_segments = 1;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].n_segments > max_segments) max_segments = plan->buffers[b].n_segments;
    }
    sl_shard_piece *pieces = malloc((size_t)max_segments * sizeof *pieces);
    if (!pieces) {
        fprintf(f, "  (out of memory listing the layout)\n");
        return;
    }
    for (int b = 0; b < plan->n_buffers; b++) {
        const sl_flat_buffer *buf = &plan->buffers[b];
        fprintf(f, "  buffer %d (unit %s): %lld elements, shard %lld%s\n", b,
                buf->unit >= 0 ? model->units[buf->unit].name : "(whole model)",
                (long long)buf->numel_padded, (long long)buf->shard_numel,
                buf->persistent ? ", persistent (kept gathered)" : "");
        const bool replicated = buf->shard_numel == buf->numel_padded;
        const int n_shards = replicated ? 1 : plan->shard_group_size;
        for (int s = 0; s < n_shards; s++) {
            int64_t pad;
            const int n = sl_plan_shard_pieces(buf, s, pieces, &pad);
            fprintf(f, "    ");
            if (replicated) {
                fprintf(f, "every rank");
            } else {
                sl_explain_ranks(plan, s, f);
            }
            fprintf(f, ":");
            for (int i = 0; i < n; i++) {
                fprintf(f, " %s[%lld,%lld)", model->params[pieces[i].param].name,
                        (long long)pieces[i].start, (long long)pieces[i].end);
            }
            fprintf(f, " pad %lld\n", (long long)pad);
        }
    }
    free(pieces);
}

static void sl_explain_schedule(const sl_plan *plan, const sl_model_desc *model, FILE *f) {
    const sl_observation *o = &plan->predicted;
    int64_t total = 0;
    for (int i = 0; i < o->n_collectives; i++)
        total += o->collectives[i].bytes_sent_per_rank;
    fprintf(f, "\ncollectives of one optimizer step: %d, %lld bytes sent per rank (ring)\n",
            o->n_collectives, (long long)total);
    if (o->n_collectives == 0) return;
    fprintf(f, "  %4s %-8s %5s %-18s %-14s %-7s %5s %-5s %12s %12s\n", "#", "phase", "micro",
            "unit", "op", "group", "ranks", "dtype", "elements", "bytes/rank");
    for (int i = 0; i < o->n_collectives; i++) {
        const sl_collective_record *c = &o->collectives[i];
        fprintf(f, "  %4d %-8s %5d %-18s %-14s %-7s %5d %-5s %12lld %12lld\n", i,
                sl_phase_name(c->phase), c->micro_step,
                c->unit >= 0 ? model->units[c->unit].name : "-", sl_coll_op_name(c->op),
                sl_coll_group_name(c->group), c->group_size, sl_dtype_name(c->dtype),
                (long long)c->elements, (long long)c->bytes_sent_per_rank);
    }
}

static bool sl_same_memory(const sl_mem_usage *a, const sl_mem_usage *b) {
    return memcmp(a->peak, b->peak, sizeof a->peak) == 0;
}

static void sl_explain_memory(const sl_plan *plan, FILE *f) {
    const sl_observation *o = &plan->predicted;
    fprintf(f, "\npredicted peak bytes per rank (logical: elements x dtype size)\n");
    for (int r = 0; r < o->world_size;) {
        int last = r;
        while (last + 1 < o->world_size && sl_same_memory(&o->memory[r], &o->memory[last + 1])) {
            last++;
        }
        const sl_mem_usage *m = &o->memory[r];
        if (last > r) {
            fprintf(f, "  ranks %d-%d\n", r, last);
        } else {
            fprintf(f, "  rank %d\n", r);
        }
        int64_t total[SL_SPACE_COUNT] = {0};
        for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
            fprintf(f, "    %-16s device %14lld  host %14lld\n",
                    sl_mem_category_name((sl_mem_category)c),
                    (long long)m->peak[SL_SPACE_DEVICE][c], (long long)m->peak[SL_SPACE_HOST][c]);
            total[SL_SPACE_DEVICE] += m->peak[SL_SPACE_DEVICE][c];
            total[SL_SPACE_HOST] += m->peak[SL_SPACE_HOST][c];
        }
        fprintf(f, "    %-16s device %14lld  host %14lld\n", "sum of peaks",
                (long long)total[SL_SPACE_DEVICE], (long long)total[SL_SPACE_HOST]);
        r = last + 1;
    }
}

void sl_plan_explain_dtypes(const sl_plan *plan, const sl_model_desc *model, FILE *f) {
    sl_explain_header(plan, model, f);
    sl_explain_precision(plan, f);
}

void sl_plan_explain_text(const sl_plan *plan, const sl_model_desc *model, FILE *f) {
    sl_explain_header(plan, model, f);
    sl_explain_precision(plan, f);
    sl_explain_config(plan, f);
    sl_explain_layout(plan, model, f);
    sl_explain_schedule(plan, model, f);
    sl_explain_memory(plan, f);
}
