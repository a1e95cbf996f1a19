/* manifest.json of a checkpoint (format in include/shardlab/checkpoint.h): the writer. */
#include <inttypes.h>
#include <stdio.h>

#include "common/ckpt_format.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/optim_json.h"
#include "shardlab/lr_schedule.h"

typedef struct sl_mf_ctx {
    const sl_ckpt_manifest *m;
    const sl_model_desc *model;
} sl_mf_ctx;

static void sl_mf_plan(sl_json_writer *w, const sl_ckpt_manifest *m) {
    sl_json_writer_key(w, "plan");
    sl_json_writer_begin_object(w);
    sl_json_writer_kv_string(w, "dialect", m->dialect);
    sl_json_writer_kv_string(w, "strategy", m->strategy);
    sl_json_writer_kv_string(w, "layout", m->layout);
    sl_json_writer_kv_int64(w, "shard_group_size", m->shard_group_size);
    sl_json_writer_kv_int64(w, "grad_accum_steps", m->grad_accum_steps);
    sl_json_writer_kv_int64(w, "micro_batch_size", m->micro_batch_size);
    sl_json_writer_kv_int64(w, "seq_len", m->seq_len);
    sl_json_writer_kv_int64(w, "max_steps", m->total_steps);
    sl_json_writer_key(w, "seed");
    sl_json_writer_uint64(w, m->seed);
    sl_json_writer_key(w, "deterministic");
    sl_json_writer_bool(w, m->deterministic);
    sl_json_writer_kv_string(w, "master_dtype", sl_dtype_name(m->master_dtype));
    sl_json_writer_kv_string(w, "optim_dtype", sl_dtype_name(m->optim_dtype));
    sl_json_writer_end_object(w);
}

static void sl_mf_model(sl_json_writer *w, const sl_ckpt_manifest *m, const sl_model_desc *model) {
    sl_json_writer_key(w, "model");
    sl_json_writer_begin_object(w);
    sl_json_writer_kv_string(w, "kind", model->kind);
    sl_json_writer_kv_int64(w, "n_layer", m->gpt2.n_layer);
    sl_json_writer_kv_int64(w, "n_embd", m->gpt2.n_embd);
    sl_json_writer_kv_int64(w, "n_head", m->gpt2.n_head);
    sl_json_writer_kv_int64(w, "block_size", m->gpt2.block_size);
    sl_json_writer_kv_int64(w, "vocab_size", m->gpt2.vocab_size);
    sl_json_writer_key(w, "params");
    sl_json_writer_begin_array(w);
    for (int p = 0; p < model->n_params; p++) {
        const sl_param_desc *pd = &model->params[p];
        sl_json_writer_begin_object(w);
        sl_json_writer_kv_string(w, "name", pd->name);
        sl_json_writer_key(w, "shape");
        sl_json_writer_begin_array(w);
        for (int d = 0; d < pd->ndim; d++)
            sl_json_writer_int64(w, pd->shape[d]);
        sl_json_writer_end_array(w);
        sl_json_writer_end_object(w);
    }
    sl_json_writer_end_array(w);
    sl_json_writer_end_object(w);
}

static void sl_mf_state(sl_json_writer *w, const sl_ckpt_manifest *m) {
    const sl_optim_config *o = &m->optim;
    sl_json_writer_key(w, "optimizer");
    sl_json_writer_begin_object(w);
    sl_json_writer_kv_string(w, "kind", "adamw");
    sl_json_writer_kv_int64(w, "applied_steps", m->applied_steps);
    sl_optim_hparams_write_json(w, o);
    sl_json_writer_end_object(w);

    sl_json_writer_key(w, "lr_schedule");
    sl_json_writer_begin_object(w);
    sl_json_writer_kv_string(w, "schedule", sl_lr_schedule_name(o->schedule));
    sl_json_writer_kv_int64(w, "warmup_steps", o->warmup_steps);
    sl_json_writer_kv_double(w, "min_lr_ratio", o->min_lr_ratio);
    sl_json_writer_kv_int64(w, "total_steps", m->total_steps);
    /* the schedule is a pure function of the steps it has taken: the applied ones */
    sl_json_writer_kv_int64(w, "scheduler_steps", m->applied_steps);
    sl_json_writer_end_object(w);

    const sl_loss_scaler *s = &m->scaler;
    sl_json_writer_key(w, "loss_scaler");
    sl_json_writer_begin_object(w);
    sl_json_writer_kv_string(w, "kind", sl_loss_scaler_kind_name(s->kind));
    sl_json_writer_kv_double(w, "scale", s->scale);
    sl_json_writer_kv_int64(w, "cur_iter", s->cur_iter);
    sl_json_writer_kv_int64(w, "last_overflow_iter", s->last_overflow_iter);
    sl_json_writer_kv_int64(w, "cur_hysteresis", s->cur_hysteresis);
    sl_json_writer_kv_int64(w, "growth_tracker", s->growth_tracker);
    sl_json_writer_end_object(w);

    sl_json_writer_key(w, "data");
    if (!m->has_data) {
        sl_json_writer_null(w);
    } else {
        sl_json_writer_begin_object(w);
        sl_json_writer_kv_int64(w, "epoch", m->data.epoch);
        sl_json_writer_kv_int64(w, "sample_in_epoch", m->data.sample_in_epoch);
        sl_json_writer_kv_int64(w, "batch_in_epoch", m->data.batch_in_epoch);
        sl_json_writer_kv_int64(w, "consumed_samples", m->consumed_samples);
        sl_json_writer_end_object(w);
    }

    sl_json_writer_key(w, "rng");
    sl_json_writer_begin_object(w);
    sl_json_writer_kv_string(w, "kind", "counter-based");
    sl_json_writer_key(w, "seed");
    sl_json_writer_uint64(w, m->seed);
    sl_json_writer_kv_string(
        w, "determines",
        "every random number is a pure function of (seed, stream, counter): initial "
        "parameters of (seed, parameter name, element), the sampler's order of (seed, "
        "epoch); no rank holds generator state, so seed and data position restore it");
    sl_json_writer_end_object(w);
}

static void sl_mf_files(sl_json_writer *w, const sl_ckpt_manifest *m, const sl_model_desc *model) {
    sl_json_writer_kv_string(w, "checksum", "fnv1a64");
    sl_json_writer_key(w, "files");
    sl_json_writer_begin_array(w);
    for (int i = 0; i < m->n_files; i++) {
        const sl_ckpt_file *f = &m->files[i];
        char hex[32];
        snprintf(hex, sizeof hex, "%016" PRIx64, f->fnv1a64);
        sl_json_writer_begin_object(w);
        sl_json_writer_kv_string(w, "name", f->name);
        sl_json_writer_kv_int64(w, "rank", f->rank);
        sl_json_writer_kv_string(w, "kind", f->optim ? "optim" : "params");
        sl_json_writer_kv_int64(w, "bytes", f->bytes);
        sl_json_writer_kv_string(w, "fnv1a64", hex);
        sl_json_writer_key(w, "tensors"); /* [parameter, start, end] */
        sl_json_writer_begin_array(w);
        for (int r = 0; r < f->n_ranges; r++) {
            const sl_ckpt_range *rg = &f->ranges[r];
            sl_json_writer_begin_array(w);
            sl_json_writer_string(w, model->params[rg->param].name);
            sl_json_writer_int64(w, rg->start);
            sl_json_writer_int64(w, rg->end);
            sl_json_writer_end_array(w);
        }
        sl_json_writer_end_array(w);
        sl_json_writer_end_object(w);
    }
    sl_json_writer_end_array(w);
}

static sl_status sl_mf_write(FILE *f, void *ctx) {
    const sl_mf_ctx *c = ctx;
    const sl_ckpt_manifest *m = c->m;
    sl_json_writer w;
    sl_json_writer_init(&w, f, 2);
    sl_json_writer_begin_object(&w);
    sl_json_writer_kv_string(&w, "format", "shardlab-checkpoint");
    sl_json_writer_kv_int64(&w, "format_version", m->format_version);
    sl_json_writer_kv_string(&w, "state_dict_type", sl_state_dict_type_name(m->type));
    sl_json_writer_kv_int64(&w, "step", m->step);
    sl_json_writer_kv_int64(&w, "epoch", m->has_data ? m->data.epoch : 0);
    sl_json_writer_kv_int64(&w, "world_size", m->world_size);
    sl_mf_plan(&w, m);
    sl_mf_model(&w, m, c->model);
    sl_mf_state(&w, m);
    sl_mf_files(&w, m, c->model);
    sl_json_writer_end_object(&w);
    return sl_json_writer_finish(&w);
}

sl_status sl_ckpt_manifest_write(const sl_ckpt_manifest *m, const sl_model_desc *model,
                                 const char *path) {
    sl_mf_ctx ctx = {.m = m, .model = model};
    return sl_file_write_atomic(path, sl_mf_write, &ctx);
}
