/* DeepSpeed JSON configs (runtime/config.py, runtime/zero/config.py, runtime/precision_config.py,
 * DeepSpeed 0.19.6; fsdp-zero-semantics.md §3) read into the config store. Every key DeepSpeed
 * documents for a training run is known here: a key that changes what a step computes maps to a
 * config key the plan compiler reads; a key of monitoring or I/O tuning is accepted with a notice;
 * a key whose non-default value would change numerics in a way this runtime does not model is
 * accepted only at DeepSpeed's default. Spellings keep the JSON path ("zero_optimization.stage").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config_internal.h"
#include "common/config_tree.h"
#include "shardlab/log.h"

enum {
    SL_DS_SECTION = 1 << 0, /* a nested object */
    SL_DS_AUTO = 1 << 1,    /* "auto" is resolved from the run (accelerate-facts.md §1.5) */
    SL_DS_NOTICE = 1 << 2,  /* no effect here: `text` says why */
    SL_DS_FIXED = 1 << 3,   /* only DeepSpeed's default, `text`, is accepted */
    SL_DS_BETAS = 1 << 4    /* [beta1, beta2] */
};

typedef struct sl_ds_row {
    const char *path;
    const char *key; /* config key, or NULL */
    unsigned flags;
    const char *text;
} sl_ds_row;

static const char sl_monitor[] = "configures monitoring or profiling output";
static const char sl_io[] = "tunes host or NVMe transfers (numerics unchanged)";
static const char sl_perf[] = "tunes communication or memory scheduling (numerics unchanged)";

static const sl_ds_row sl_ds_rows[] = {
    {"train_batch_size", "train_batch_size", SL_DS_AUTO, NULL},
    {"train_micro_batch_size_per_gpu", "micro_batch_size", SL_DS_AUTO, NULL},
    {"gradient_accumulation_steps", "gradient_accumulation_steps", SL_DS_AUTO, NULL},
    {"gradient_clipping", "gradient_clipping", SL_DS_AUTO, NULL},
    {"steps_per_print", "steps_per_print", 0, NULL},
    {"wall_clock_breakdown", "wall_clock_breakdown", 0, NULL},
    {"communication_data_type", "communication_data_type", 0, NULL},
    {"prescale_gradients", NULL, SL_DS_FIXED, "false"},
    {"gradient_predivide_factor", NULL, SL_DS_FIXED, "1.0"},
    {"data_types", NULL, SL_DS_SECTION, NULL},
    {"data_types.grad_accum_dtype", "grad_accum_dtype", 0, NULL},
    {"fp16", NULL, SL_DS_SECTION, NULL},
    {"fp16.enabled", "fp16_enabled", SL_DS_AUTO, NULL},
    {"fp16.auto_cast", NULL, SL_DS_NOTICE, "casts inputs to fp16; the whole forward runs in fp16"},
    {"fp16.loss_scale", "loss_scale", 0, NULL},
    {"fp16.initial_scale_power", "initial_scale_power", 0, NULL},
    {"fp16.loss_scale_window", "loss_scale_window", 0, NULL},
    {"fp16.hysteresis", "hysteresis", 0, NULL},
    {"fp16.consecutive_hysteresis", "consecutive_hysteresis", 0, NULL},
    {"fp16.min_loss_scale", "min_loss_scale", 0, NULL},
    {"fp16.fp16_master_weights_and_grads", NULL, SL_DS_FIXED, "false"},
    {"bf16", NULL, SL_DS_SECTION, NULL},
    {"bf16.enabled", "bf16_enabled", SL_DS_AUTO, NULL},
    {"bf16.immediate_grad_update", NULL, SL_DS_NOTICE, sl_perf},
    {"bf16.check_grad_overflow", NULL, SL_DS_NOTICE, "checks bf16 gradients for overflow"},
    {"bf16.bf16_master_weights_and_grads", NULL, SL_DS_FIXED, "false"},
    {"bf16.bf16_optimizer_states", NULL, SL_DS_FIXED, "false"},
    {"zero_optimization", NULL, SL_DS_SECTION, NULL},
    {"zero_optimization.stage", "zero_stage", SL_DS_AUTO, NULL},
    {"zero_optimization.offload_optimizer", NULL, SL_DS_SECTION, NULL},
    {"zero_optimization.offload_optimizer.device", "offload_optimizer_device", SL_DS_AUTO, NULL},
    {"zero_optimization.offload_optimizer.nvme_path", "offload_optimizer_nvme_path", SL_DS_AUTO,
     NULL},
    {"zero_optimization.offload_optimizer.pin_memory", NULL, SL_DS_NOTICE, sl_io},
    {"zero_optimization.offload_optimizer.buffer_count", NULL, SL_DS_NOTICE, sl_io},
    {"zero_optimization.offload_optimizer.fast_init", NULL, SL_DS_NOTICE, sl_io},
    {"zero_optimization.offload_optimizer.pipeline_read", NULL, SL_DS_NOTICE, sl_io},
    {"zero_optimization.offload_optimizer.pipeline_write", NULL, SL_DS_NOTICE, sl_io},
    {"zero_optimization.offload_optimizer.ratio", NULL, SL_DS_FIXED, "1.0"},
    {"zero_optimization.offload_param", NULL, SL_DS_SECTION, NULL},
    {"zero_optimization.offload_param.device", "offload_param_device", SL_DS_AUTO, NULL},
    {"zero_optimization.offload_param.nvme_path", "offload_param_nvme_path", SL_DS_AUTO, NULL},
    {"zero_optimization.offload_param.pin_memory", NULL, SL_DS_NOTICE, sl_io},
    {"zero_optimization.offload_param.buffer_count", NULL, SL_DS_NOTICE, sl_io},
    {"zero_optimization.offload_param.buffer_size", NULL, SL_DS_NOTICE, sl_io},
    {"zero_optimization.offload_param.max_in_cpu", NULL, SL_DS_NOTICE, sl_io},
    {"zero_optimization.reduce_bucket_size", "reduce_bucket_size", SL_DS_AUTO, NULL},
    {"zero_optimization.allgather_bucket_size", "allgather_bucket_size", 0, NULL},
    {"zero_optimization.allgather_partitions", NULL, SL_DS_NOTICE, sl_perf},
    {"zero_optimization.overlap_comm", "overlap_comm", 0, NULL},
    {"zero_optimization.contiguous_gradients", "contiguous_gradients", 0, NULL},
    {"zero_optimization.reduce_scatter", "reduce_scatter", 0, NULL},
    {"zero_optimization.stage3_prefetch_bucket_size", "stage3_prefetch_bucket_size", SL_DS_AUTO,
     NULL},
    {"zero_optimization.stage3_param_persistence_threshold", "stage3_param_persistence_threshold",
     SL_DS_AUTO, NULL},
    {"zero_optimization.stage3_max_live_parameters", "stage3_max_live_parameters", 0, NULL},
    {"zero_optimization.stage3_max_reuse_distance", "stage3_max_reuse_distance", 0, NULL},
    {"zero_optimization.stage3_gather_16bit_weights_on_model_save", "zero3_save_16bit_model",
     SL_DS_AUTO, NULL},
    {"zero_optimization.zero_hpz_partition_size", "zero_hpz_partition_size", 0, NULL},
    {"zero_optimization.round_robin_gradients", NULL, SL_DS_NOTICE, sl_perf},
    {"zero_optimization.sub_group_size", NULL, SL_DS_NOTICE, sl_perf},
    {"zero_optimization.elastic_checkpoint", NULL, SL_DS_NOTICE, "concerns DeepSpeed checkpoints"},
    {"zero_optimization.ignore_unused_parameters", NULL, SL_DS_NOTICE,
     "concerns parameters without gradients (every parameter has one here)"},
    {"zero_optimization.load_from_fp32_weights", NULL, SL_DS_NOTICE,
     "concerns DeepSpeed checkpoints"},
    {"zero_optimization.stage3_model_persistence_threshold", NULL, SL_DS_NOTICE, sl_perf},
    {"zero_optimization.memory_efficient_linear", NULL, SL_DS_NOTICE, sl_perf},
    {"zero_optimization.use_multi_rank_bucket_allreduce", NULL, SL_DS_NOTICE, sl_perf},
    {"zero_optimization.zero_quantized_weights", NULL, SL_DS_FIXED, "false"},
    {"zero_optimization.zero_quantized_gradients", NULL, SL_DS_FIXED, "false"},
    {"zero_optimization.zero_quantized_nontrainable_weights", NULL, SL_DS_FIXED, "false"},
    {"optimizer", NULL, SL_DS_SECTION, NULL},
    {"optimizer.type", "optimizer_type", 0, NULL},
    {"optimizer.params", NULL, SL_DS_SECTION, NULL},
    {"optimizer.params.lr", "lr", SL_DS_AUTO, NULL},
    {"optimizer.params.betas", NULL, SL_DS_BETAS | SL_DS_AUTO, NULL},
    {"optimizer.params.eps", "adam_epsilon", SL_DS_AUTO, NULL},
    {"optimizer.params.weight_decay", "weight_decay", SL_DS_AUTO, NULL},
    {"optimizer.params.adam_w_mode", "adam_w_mode", 0, NULL},
    {"optimizer.params.torch_adam", "torch_adam", 0, NULL},
    {"optimizer.params.bias_correction", NULL, SL_DS_FIXED, "true"},
    {"optimizer.params.amsgrad", NULL, SL_DS_FIXED, "false"},
    {"scheduler", NULL, SL_DS_SECTION, NULL},
    {"scheduler.type", "lr_scheduler", 0, NULL},
    {"scheduler.params", NULL, SL_DS_SECTION, NULL},
    {"scheduler.params.warmup_min_lr", "warmup_min_lr", SL_DS_AUTO, NULL},
    {"scheduler.params.warmup_max_lr", "lr", SL_DS_AUTO, NULL},
    {"scheduler.params.warmup_num_steps", "warmup_steps", SL_DS_AUTO, NULL},
    {"scheduler.params.total_num_steps", "max_steps", SL_DS_AUTO, NULL},
    {"scheduler.params.warmup_type", "warmup_type", 0, NULL},
    {"scheduler.params.warmup_min_ratio", "warmup_min_ratio", 0, NULL},
    {"scheduler.params.cos_min_ratio", "min_lr_ratio", 0, NULL},
    {"zero_allow_untested_optimizer", NULL, SL_DS_NOTICE, "permits client optimizers"},
    {"zero_force_ds_cpu_optimizer", NULL, SL_DS_NOTICE, "concerns client optimizers"},
    {"dump_state", NULL, SL_DS_NOTICE, sl_monitor},
    {"memory_breakdown", NULL, SL_DS_NOTICE, sl_monitor},
    {"flops_profiler", NULL, SL_DS_NOTICE, sl_monitor},
    {"tensorboard", NULL, SL_DS_NOTICE, sl_monitor},
    {"wandb", NULL, SL_DS_NOTICE, sl_monitor},
    {"csv_monitor", NULL, SL_DS_NOTICE, sl_monitor},
    {"comet", NULL, SL_DS_NOTICE, sl_monitor},
    {"comms_logger", NULL, SL_DS_NOTICE, sl_monitor},
    {"timers", NULL, SL_DS_NOTICE, sl_monitor},
    {"aio", NULL, SL_DS_NOTICE, sl_io},
    {"checkpoint", NULL, SL_DS_NOTICE, "concerns DeepSpeed checkpoint files"},
    {"activation_checkpointing", NULL, SL_DS_NOTICE,
     "configures activation recomputation (values unchanged; the memory prediction keeps every "
     "activation)"},
    {"seq_parallel_communication_data_type", NULL, SL_DS_NOTICE,
     "concerns sequence parallelism, which this runtime does not do"},
    {"amp", NULL, SL_DS_SECTION, NULL},
    {"amp.enabled", NULL, SL_DS_FIXED, "false"},
};

#define SL_DS_N_ROWS (sizeof sl_ds_rows / sizeof sl_ds_rows[0])

typedef struct sl_ds_reader {
    sl_config *cfg;
    const char *file;
    const char *prefix; /* spelling prefix: "" or "deepspeed_configs.teacher" */
    sl_notices notices;
} sl_ds_reader;

static const sl_ds_row *sl_ds_find(const char *path) {
    for (size_t i = 0; i < SL_DS_N_ROWS; i++) {
        if (!strcmp(sl_ds_rows[i].path, path)) return &sl_ds_rows[i];
    }
    return NULL;
}

const char *sl_deepspeed_path(const char *key) {
    for (size_t i = 0; i < SL_DS_N_ROWS; i++) {
        if (sl_ds_rows[i].key && !strcmp(sl_ds_rows[i].key, key)) return sl_ds_rows[i].path;
    }
    return NULL;
}

/* "bfloat16" is DeepSpeed's older name of the bf16 section. */
static void sl_ds_schema_path(char *buf, size_t cap, const char *section, const char *key) {
    const char *name = !section[0] && !strcmp(key, "bfloat16") ? "bf16" : key;
    sl_config_path_join(buf, cap, section, name);
}

static sl_status sl_ds_unknown(const sl_ds_reader *r, const sl_node_pair *p, const char *section) {
    const char *known[64];
    size_t n = 0;
    const size_t len = strlen(section);
    for (size_t i = 0; i < SL_DS_N_ROWS && n < 63; i++) {
        const char *path = sl_ds_rows[i].path;
        const char *name =
            len ? (strncmp(path, section, len) || path[len] != '.' ? NULL : path + len + 1) : path;
        if (name && !strchr(name, '.')) known[n++] = name;
    }
    known[n] = NULL;
    const sl_config_key *k = sl_config_key_find(p->key);
    const char *hint =
        !len && k && sl_config_key_family(k) == SL_FAMILY_DEEPSPEED
            ? "Accelerate's spelling is not DeepSpeed's: see the DeepSpeed config keys in README"
            : NULL;
    char where[300];
    sl_config_path_join(where, sizeof where, r->prefix, section);
    return sl_config_file_unknown(r->file, p->line, where, p->key, known, hint);
}

/* Loose equality for the values DeepSpeed's defaults take: numbers, then truth words. */
static bool sl_ds_same(const char *a, const char *b) {
    char *ea, *eb;
    const double da = strtod(a, &ea), db = strtod(b, &eb);
    if (ea != a && !*ea && eb != b && !*eb) return da == db;
    return sl_config_values_equal(sl_config_key_find("use_fsdp"), a, b);
}

static sl_status sl_ds_set(sl_ds_reader *r, int line, const char *path, const char *key,
                           const char *value) {
    char spelling[300];
    sl_config_path_join(spelling, sizeof spelling, r->prefix, path);
    return sl_config_file_set(r->cfg, r->file, line, spelling, key, value);
}

static sl_status sl_ds_betas(sl_ds_reader *r, const sl_node_pair *p, const char *path) {
    const sl_node *v = p->value;
    if (v->kind == SL_NODE_SCALAR && !strcmp(v->text, "auto")) {
        SL_TRY(sl_ds_set(r, p->line, path, "adam_beta1", "auto"));
        return sl_ds_set(r, p->line, path, "adam_beta2", "auto");
    }
    if (v->kind != SL_NODE_SEQ || v->n != 2 || v->items[0]->kind != SL_NODE_SCALAR ||
        v->items[1]->kind != SL_NODE_SCALAR) {
        char spelling[300];
        sl_config_path_join(spelling, sizeof spelling, r->prefix, path);
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: %s: expected [beta1, beta2] (two numbers) or \"auto\", found "
                            "%s",
                            r->file, p->line, spelling, sl_node_kind_name(v));
    }
    SL_TRY(sl_ds_set(r, p->line, path, "adam_beta1", v->items[0]->text));
    return sl_ds_set(r, p->line, path, "adam_beta2", v->items[1]->text);
}

static sl_status sl_ds_walk(sl_ds_reader *r, const sl_node *map, const char *section,
                            const char *written);

/* `section` is the schema path of the enclosing object, `written` its path as the file spells
 * it (they differ under "bfloat16"). */
static sl_status sl_ds_member(sl_ds_reader *r, const sl_node_pair *p, const char *section,
                              const char *written) {
    char path[300], as_written[300];
    sl_ds_schema_path(path, sizeof path, section, p->key);
    sl_config_path_join(as_written, sizeof as_written, written, p->key);
    const sl_ds_row *row = sl_ds_find(path);
    if (!row) return sl_ds_unknown(r, p, section);
    const sl_node *v = p->value;
    char spelling[300];
    sl_config_path_join(spelling, sizeof spelling, r->prefix, as_written);
    if (row->flags & SL_DS_NOTICE) {
        sl_notices_add(&r->notices, p->line, spelling, row->text);
        return SL_OK;
    }
    if (sl_node_is_null(v)) return SL_OK;
    if (row->flags & SL_DS_SECTION) {
        if (v->kind != SL_NODE_MAP) {
            return sl_error_set(SL_ERR_CONFIG, "%s:%d: %s: expected an object, found %s", r->file,
                                p->line, spelling, sl_node_kind_name(v));
        }
        return sl_ds_walk(r, v, path, as_written);
    }
    if (row->flags & SL_DS_BETAS) return sl_ds_betas(r, p, as_written);
    if (v->kind != SL_NODE_SCALAR) {
        return sl_error_set(SL_ERR_CONFIG, "%s:%d: %s: expected a single value, found %s", r->file,
                            p->line, spelling, sl_node_kind_name(v));
    }
    const bool is_auto = !strcmp(v->text, "auto");
    if (is_auto && !(row->flags & SL_DS_AUTO)) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: %s is \"auto\", which cannot be resolved from the run "
                            "(Accelerate fills \"auto\" only for batch sizes, accumulation, "
                            "clipping, bucket sizes, precision, optimizer and scheduler "
                            "parameters); write a value",
                            r->file, p->line, spelling);
    }
    if (row->flags & SL_DS_FIXED) {
        if (sl_ds_same(v->text, row->text)) return SL_OK;
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: %s = %s changes the numerics in a way this runtime does not "
                            "model; only DeepSpeed's default (%s) is accepted: remove the key",
                            r->file, p->line, spelling, v->text, row->text);
    }
    return sl_config_file_set(r->cfg, r->file, p->line, spelling, row->key, v->text);
}

static sl_status sl_ds_walk(sl_ds_reader *r, const sl_node *map, const char *section,
                            const char *written) {
    for (size_t i = 0; i < map->n; i++)
        SL_TRY(sl_ds_member(r, &map->pairs[i], section, written));
    return SL_OK;
}

/* A value DeepSpeed uses when the file does not give it, and that differs from shardlab's own
 * default for the key: set with a spelling that says so. */
static sl_status sl_ds_implied(sl_ds_reader *r, int line, const char *path, const char *key,
                               const char *value) {
    char spelling[300];
    char full[240];
    sl_config_path_join(full, sizeof full, r->prefix, path);
    snprintf(spelling, sizeof spelling, "%s absent: DeepSpeed's default", full);
    return sl_config_file_set(r->cfg, r->file, line, spelling, key, value);
}

static const sl_node *sl_ds_section(const sl_node *map, const char *name) {
    const sl_node_pair *p = sl_node_find(map, name);
    return p && p->value->kind == SL_NODE_MAP ? p->value : NULL;
}

/* DeepSpeed's scheduler defaults (runtime/lr_schedules.py): warm up over 1000 steps on a log
 * curve to 0.001; WarmupCosineLR ends at 0.0001 of the lr. */
static sl_status sl_ds_scheduler_defaults(sl_ds_reader *r, const sl_node_pair *sched) {
    const sl_node_pair *type = sl_node_find(sched->value, "type");
    if (!type || type->value->kind != SL_NODE_SCALAR) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: scheduler has no \"type\"; DeepSpeed needs one of WarmupLR, "
                            "WarmupDecayLR, WarmupCosineLR",
                            r->file, sched->line);
    }
    const char *t = type->value->text;
    const sl_node *params = sl_ds_section(sched->value, "params");
    const bool cosine = !strcmp(t, "WarmupCosineLR");
    if ((cosine || !strcmp(t, "WarmupDecayLR")) && !sl_node_find(params, "total_num_steps")) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: scheduler %s needs params.total_num_steps (a number, or "
                            "\"auto\" for the run's max_steps)",
                            r->file, type->line, t);
    }
    const int line = type->line;
    if (!sl_node_find(params, "warmup_num_steps")) {
        SL_TRY(sl_ds_implied(r, line, "scheduler.params.warmup_num_steps", "warmup_steps", "1000"));
    }
    if (!sl_node_find(params, "warmup_type")) {
        SL_TRY(sl_ds_implied(r, line, "scheduler.params.warmup_type", "warmup_type", "log"));
    }
    if (!cosine && !sl_node_find(params, "warmup_max_lr")) {
        SL_TRY(sl_ds_implied(r, line, "scheduler.params.warmup_max_lr", "lr", "0.001"));
    }
    if (cosine && !sl_node_find(params, "cos_min_ratio")) {
        SL_TRY(sl_ds_implied(r, line, "scheduler.params.cos_min_ratio", "min_lr_ratio", "0.0001"));
    }
    return SL_OK;
}

sl_status sl_deepspeed_load(sl_config *cfg, const sl_node *root, const char *file,
                            const char *prefix) {
    sl_ds_reader r = {.cfg = cfg, .file = file, .prefix = prefix, .notices.file = file};
    SL_TRY(sl_ds_walk(&r, root, "", ""));
    sl_notices_flush(&r.notices);
    /* DeepSpeed runs stage 0 when zero_optimization or its stage is absent */
    const sl_node_pair *zero = sl_node_find(root, "zero_optimization");
    if (!zero || !sl_node_find(zero->value, "stage")) {
        SL_TRY(sl_ds_implied(&r, zero ? zero->line : root->line, "zero_optimization.stage",
                             "zero_stage", "0"));
    }
    const sl_node_pair *opt = sl_node_find(root, "optimizer");
    if (opt && opt->value->kind == SL_NODE_MAP && !sl_node_find(opt->value, "type")) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: optimizer has no \"type\"; DeepSpeed needs one (Adam or AdamW "
                            "here)",
                            file, opt->line);
    }
    const sl_node_pair *sched = sl_node_find(root, "scheduler");
    if (sched && sched->value->kind == SL_NODE_MAP) SL_TRY(sl_ds_scheduler_defaults(&r, sched));
    return SL_OK;
}
