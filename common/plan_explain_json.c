/* `shardlab explain --json`: the plan as one JSON object. Top-level members: "plan", "model",
 * "dtype_table", "precision", "loss_scaler", "optimizer", "config", "layout", "schedule",
 * "memory". */
#include <stdlib.h>

#include "common/observe_json.h"
#include "common/optim_json.h"
#include "common/plan_internal.h"
#include "shardlab/log.h"

static void sl_json_plan(sl_json_writer *w, const sl_plan *plan) {
    sl_json_writer_begin_object(w);
    sl_json_writer_kv_string(w, "dialect", sl_dialect_name(plan->dialect));
    sl_json_writer_kv_string(w, "strategy", sl_strategy_name(plan->strategy));
    sl_json_writer_kv_int64(w, "fsdp_version", plan->fsdp_version);
    sl_json_writer_kv_int64(w, "zero_stage", plan->zero_stage);
    sl_json_writer_kv_string(w, "follows", plan->follows);
    sl_json_writer_kv_int64(w, "world_size", plan->world_size);
    sl_json_writer_kv_int64(w, "num_machines", plan->num_machines);
    sl_json_writer_kv_int64(w, "shard_group_size", plan->shard_group_size);
    sl_json_writer_kv_int64(w, "n_replicas", plan->n_replicas);
    sl_json_writer_kv_int64(w, "grad_accum_steps", plan->grad_accum_steps);
    sl_json_writer_kv_string(w, "accum_mode", sl_accum_mode_name(plan->accum_mode));
    sl_json_writer_kv_string(w, "loss_normalization", sl_loss_norm_name(plan->loss_norm));
    sl_json_writer_kv_bool(w, "deterministic", plan->deterministic);
    sl_json_writer_kv_bool(w, "reshard_after_forward", plan->reshard_after_forward);
    sl_json_writer_kv_bool(w, "use_orig_params", plan->use_orig_params);
    sl_json_writer_kv_bool(w, "forward_prefetch", plan->forward_prefetch);
    sl_json_writer_kv_string(w, "backward_prefetch",
                             sl_backward_prefetch_name(plan->backward_prefetch));
    sl_json_writer_kv_bool(w, "limit_all_gathers", plan->limit_all_gathers);
    sl_json_writer_kv_bool(w, "offload_params", plan->offload_params);
    sl_json_writer_kv_bool(w, "offload_optimizer", plan->offload_optimizer);
    sl_json_writer_kv_int64(w, "persistence_threshold", plan->persistence_threshold);
    sl_json_writer_kv_int64(w, "micro_batch_size", plan->micro_batch_size);
    sl_json_writer_kv_int64(w, "seq_len", plan->seq_len);
    sl_json_writer_kv_int64(w, "steps", plan->steps);
    sl_json_writer_key(w, "seed");
    sl_json_writer_uint64(w, plan->seed);
    sl_json_writer_end_object(w);
}

static void sl_json_model(sl_json_writer *w, const sl_model_desc *model) {
    sl_json_writer_begin_object(w);
    sl_json_writer_kv_string(w, "kind", model->kind);
    sl_json_writer_kv_int64(w, "n_layer", model->gpt2.n_layer);
    sl_json_writer_kv_int64(w, "n_embd", model->gpt2.n_embd);
    sl_json_writer_kv_int64(w, "n_head", model->gpt2.n_head);
    sl_json_writer_kv_int64(w, "block_size", model->gpt2.block_size);
    sl_json_writer_kv_int64(w, "vocab_size", model->gpt2.vocab_size);
    sl_json_writer_kv_int64(w, "total_numel", model->total_numel);
    sl_json_writer_key(w, "units");
    sl_json_writer_begin_array(w);
    for (int u = 0; u < model->n_units; u++)
        sl_json_writer_string(w, model->units[u].name);
    sl_json_writer_end_array(w);
    sl_json_writer_end_object(w);
}

static void sl_json_precision(sl_json_writer *w, const sl_plan *plan) {
    sl_json_writer_begin_object(w);
    for (int i = 0; i < SL_PREC_FIELD_COUNT; i++) {
        sl_json_writer_key(w, sl_precision_field_name((sl_precision_field)i));
        sl_json_writer_begin_object(w);
        sl_json_writer_kv_string(w, "value",
                                 sl_precision_field_value(&plan->precision, (sl_precision_field)i));
        sl_json_writer_kv_string(w, "why", plan->precision_why[i]);
        sl_json_writer_end_object(w);
    }
    sl_json_writer_end_object(w);
}

static void sl_json_scaler_optim(sl_json_writer *w, const sl_plan *plan) {
    const sl_loss_scaler_config *s = &plan->scaler;
    sl_json_writer_key(w, "loss_scaler");
    sl_json_writer_begin_object(w);
    sl_json_writer_kv_string(w, "kind",
                             sl_precision_field_value(&plan->precision, SL_PREC_LOSS_SCALE));
    sl_json_writer_kv_double(w, "init_scale", s->init_scale);
    sl_json_writer_kv_double(w, "growth_factor", s->growth_factor);
    sl_json_writer_kv_double(w, "backoff_factor", s->backoff_factor);
    sl_json_writer_kv_int64(w, "growth_interval", s->growth_interval);
    sl_json_writer_kv_int64(w, "hysteresis", s->hysteresis);
    sl_json_writer_kv_bool(w, "consecutive_hysteresis", s->consecutive_hysteresis);
    sl_json_writer_kv_double(w, "min_scale", s->min_scale);
    sl_json_writer_end_object(w);
    const sl_optim_config *o = &plan->optim;
    sl_json_writer_key(w, "optimizer");
    sl_json_writer_begin_object(w);
    sl_optim_hparams_write_json(w, o);
    sl_json_writer_kv_string(w, "schedule", sl_lr_schedule_name(o->schedule));
    sl_json_writer_kv_int64(w, "warmup_steps", o->warmup_steps);
    sl_json_writer_kv_double(w, "min_lr_ratio", o->min_lr_ratio);
    sl_json_writer_end_object(w);
}

static void sl_json_config(sl_json_writer *w, const sl_plan *plan) {
    static const char *const kinds[] = {"default", "file", "env", "flag"};
    sl_json_writer_begin_array(w);
    for (size_t i = 0; i < sl_config_size(plan->config); i++) {
        const char *value;
        const sl_source *src;
        const char *key = sl_config_entry(plan->config, i, &value, &src);
        char where[512];
        sl_source_describe(src, where, sizeof where);
        sl_json_writer_begin_object(w);
        sl_json_writer_kv_string(w, "key", key);
        sl_json_writer_kv_string(w, "value", value);
        sl_json_writer_kv_string(w, "source", kinds[src->kind]);
        sl_json_writer_kv_string(w, "from", where);
        sl_json_writer_end_object(w);
    }
    sl_json_writer_end_array(w);
}

static void sl_json_shards(sl_json_writer *w, const sl_plan *plan, const sl_model_desc *model,
                           const sl_flat_buffer *buf, sl_shard_piece *pieces) {
    const bool replicated = buf->shard_numel == buf->numel_padded;
    const int n_shards = replicated ? 1 : plan->shard_group_size;
    sl_json_writer_begin_array(w);
    for (int s = 0; s < n_shards; s++) {
        int64_t pad;
        const int n = sl_plan_shard_pieces(buf, s, pieces, &pad);
        sl_json_writer_begin_object(w);
        sl_json_writer_kv_int64(w, "shard_rank", s);
        sl_json_writer_key(w, "ranks");
        sl_json_writer_begin_array(w);
        for (int r = 0; r < plan->world_size; r++) {
            if (replicated || sl_plan_shard_rank(plan, r) == s) sl_json_writer_int64(w, r);
        }
        sl_json_writer_end_array(w);
        sl_json_writer_key(w, "pieces");
        sl_json_writer_begin_array(w);
        for (int i = 0; i < n; i++) {
            sl_json_writer_begin_object(w);
            sl_json_writer_kv_string(w, "param", model->params[pieces[i].param].name);
            sl_json_writer_kv_int64(w, "start", pieces[i].start);
            sl_json_writer_kv_int64(w, "end", pieces[i].end);
            sl_json_writer_end_object(w);
        }
        sl_json_writer_end_array(w);
        sl_json_writer_kv_int64(w, "pad", pad);
        sl_json_writer_end_object(w);
    }
    sl_json_writer_end_array(w);
}

static void sl_json_layout(sl_json_writer *w, const sl_plan *plan, const sl_model_desc *model) {
    int max_segments = 1;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].n_segments > max_segments) max_segments = plan->buffers[b].n_segments;
    }
    sl_shard_piece *pieces = malloc((size_t)max_segments * sizeof *pieces);
    sl_json_writer_begin_object(w);
    sl_json_writer_kv_string(w, "kind", sl_layout_name(plan->layout));
    sl_json_writer_key(w, "buffers");
    sl_json_writer_begin_array(w);
    for (int b = 0; pieces && b < plan->n_buffers; b++) {
        const sl_flat_buffer *buf = &plan->buffers[b];
        sl_json_writer_begin_object(w);
        sl_json_writer_kv_int64(w, "unit", buf->unit);
        sl_json_writer_kv_int64(w, "numel_padded", buf->numel_padded);
        sl_json_writer_kv_int64(w, "shard_numel", buf->shard_numel);
        sl_json_writer_kv_bool(w, "persistent", buf->persistent);
        sl_json_writer_key(w, "segments");
        sl_json_writer_begin_array(w);
        for (int i = 0; i < buf->n_segments; i++) {
            const sl_segment *seg = &buf->segments[i];
            sl_json_writer_begin_object(w);
            sl_json_writer_key(w, "param");
            if (seg->param >= 0) {
                sl_json_writer_string(w, model->params[seg->param].name);
            } else {
                sl_json_writer_null(w);
            }
            sl_json_writer_kv_int64(w, "param_offset", seg->param_offset);
            sl_json_writer_kv_int64(w, "flat_offset", seg->flat_offset);
            sl_json_writer_kv_int64(w, "numel", seg->numel);
            sl_json_writer_end_object(w);
        }
        sl_json_writer_end_array(w);
        sl_json_writer_key(w, "shards");
        sl_json_shards(w, plan, model, buf, pieces);
        sl_json_writer_end_object(w);
    }
    sl_json_writer_end_array(w);
    sl_json_writer_end_object(w);
    free(pieces);
}

void sl_plan_explain_json(const sl_plan *plan, const sl_model_desc *model, FILE *f) {
    sl_json_writer w;
    sl_json_writer_init(&w, f, 2);
    sl_json_writer_begin_object(&w);
    sl_json_writer_key(&w, "plan");
    sl_json_plan(&w, plan);
    sl_json_writer_key(&w, "model");
    sl_json_model(&w, model);
    sl_json_writer_key(&w, "dtype_table");
    sl_observation_json_dtype_table(&w, plan->predicted.dtype_table);
    sl_json_writer_key(&w, "precision");
    sl_json_precision(&w, plan);
    sl_json_scaler_optim(&w, plan);
    sl_json_writer_key(&w, "config");
    sl_json_config(&w, plan);
    sl_json_writer_key(&w, "layout");
    sl_json_layout(&w, plan, model);
    sl_json_writer_key(&w, "schedule");
    sl_observation_json_collectives(&w, &plan->predicted);
    sl_json_writer_key(&w, "memory");
    sl_observation_json_memory(&w, &plan->predicted);
    sl_json_writer_end_object(&w);
    if (sl_json_writer_finish(&w) != SL_OK) SL_LOG_WARN("explain: %s", sl_error_message());
}
