/* The rules of the keys config files bring (Accelerate's distributed_type and FSDP plugin fields,
 * DeepSpeed's batch, ZeRO++ and optimizer keys): each either reaches a plan field or is checked
 * for coherence with the rest, every error naming the keys and where they were set. Sources:
 * accelerate-facts.md §1.3-§1.5, DeepSpeed runtime/config.py and runtime/lr_schedules.py. */
#include <stdio.h>
#include <string.h>

#include "common/config_internal.h"
#include "common/plan_read.h"
#include "shardlab/log.h"

static bool sl_truthy(const sl_config *cfg, const char *key) {
    const char *v = sl_config_get(cfg, key, NULL);
    return v && sl_config_values_equal(sl_config_key_find(key), v, "true");
}

sl_status sl_plan_strip_inactive(sl_config *work) {
    bool fsdp = sl_truthy(work, "use_fsdp"), ds = sl_truthy(work, "use_deepspeed");
    const char *type = sl_config_get(work, "distributed_type", NULL);
    if (!fsdp && !ds && type) {
        const sl_config_key *k = sl_config_key_find("distributed_type");
        fsdp = sl_config_values_equal(k, type, "FSDP");
        ds = sl_config_values_equal(k, type, "DEEPSPEED");
    }
    char names[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < sl_config_size(work);) {
        const sl_source *src;
        const char *key = sl_config_entry(work, i, NULL, &src);
        const bool in_fsdp = !strncmp(src->spelling, "fsdp_config.", 12);
        const bool in_ds = !strncmp(src->spelling, "deepspeed_config.", 17) ||
                           !strncmp(src->spelling, "deepspeed_configs.", 18);
        if (src->kind != SL_SOURCE_FILE || !((in_fsdp && !fsdp) || (in_ds && !ds))) {
            i++;
            continue;
        }
        if (used < sizeof names) {
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s:%d", used ? ", " : "",
                                     src->spelling, src->line);
        }
        sl_config_unset(work, key);
    }
    if (used) {
        SL_LOG_INFO("inactive under the plan's dialect (%s), as in Accelerate: %s",
                    fsdp ? "FSDP"
                    : ds ? "DeepSpeed"
                         : "DDP",
                    names);
    }
    return SL_OK;
}

sl_status sl_plan_dialect_from_type(sl_plan_reader *rd, bool *fsdp, bool *ds) {
    if (!sl_plan_is_set(rd, "distributed_type")) return SL_OK;
    const char *type;
    SL_TRY(sl_plan_read_enum(rd, "distributed_type", &type));
    const bool type_fsdp = !strcmp(type, "FSDP"), type_ds = !strcmp(type, "DEEPSPEED");
    if (*fsdp || *ds) {
        if ((*fsdp && !type_fsdp) || (*ds && !type_ds)) {
            SL_LOG_INFO("%s beats distributed_type = %s (from %s), as in accelerate launch",
                        sl_plan_src(rd, *fsdp ? "use_fsdp" : "use_deepspeed"), type,
                        sl_plan_src(rd, "distributed_type"));
        }
        return SL_OK;
    }
    *fsdp = type_fsdp;
    *ds = type_ds;
    return SL_OK;
}

sl_status sl_plan_check_distributed_type(sl_plan_reader *rd) {
    if (!sl_plan_is_set(rd, "distributed_type") || rd->plan->world_size == 1) return SL_OK;
    const char *type;
    SL_TRY(sl_plan_read_enum(rd, "distributed_type", &type));
    if (strcmp(type, "NO") != 0) return SL_OK;
    return sl_error_set(SL_ERR_CONFIG,
                        "distributed_type = NO (from %s) means one process, but num_processes = "
                        "%d (from %s); use MULTI_CPU or MULTI_GPU, or one process",
                        sl_plan_src(rd, "distributed_type"), rd->plan->world_size,
                        sl_plan_src(rd, "num_processes"));
}

/* The built-in model's blocks are Hugging Face's GPT2Block. */
static sl_status sl_plan_check_wrap(sl_plan_reader *rd, const sl_model_desc *model) {
    const char *policy;
    SL_TRY(sl_plan_read_enum(rd, "fsdp_auto_wrap_policy", &policy));
    if (strcmp(policy, "TRANSFORMER_BASED_WRAP") != 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "fsdp_auto_wrap_policy = %s (from %s): shardlab makes every "
                            "transformer block one FSDP unit (TRANSFORMER_BASED_WRAP), and the "
                            "units decide the layout; use TRANSFORMER_BASED_WRAP",
                            policy, sl_plan_src(rd, "fsdp_auto_wrap_policy"));
    }
    const char *classes = sl_config_get(rd->cfg, "fsdp_transformer_layer_cls_to_wrap", NULL);
    for (const char *c = classes; c && *c;) {
        const char *end = strchr(c, ',');
        const size_t n = end ? (size_t)(end - c) : strlen(c);
        size_t s = 0, e = n;
        while (s < n && c[s] == ' ')
            s++;
        while (e > s && c[e - 1] == ' ')
            e--;
        if (e - s != 9 || strncmp(c + s, "GPT2Block", 9) != 0) {
            return sl_error_set(SL_ERR_CONFIG,
                                "fsdp_transformer_layer_cls_to_wrap names '%.*s' (from %s), which "
                                "the %s model does not have; its blocks are GPT2Block",
                                (int)(e - s), c + s,
                                sl_plan_src(rd, "fsdp_transformer_layer_cls_to_wrap"), model->kind);
        }
        c = end ? end + 1 : c + n;
    }
    return SL_OK;
}

sl_status sl_plan_check_fsdp_keys(sl_plan_reader *rd, const sl_model_desc *model) {
    const bool v2 = rd->plan->dialect == SL_DIALECT_FSDP2;
    SL_TRY(sl_plan_check_wrap(rd, model));
    const char *sd;
    SL_TRY(sl_plan_read_enum(rd, "fsdp_state_dict_type", &sd));
    if (!sd) {
        sd = v2 ? "SHARDED_STATE_DICT" : "FULL_STATE_DICT";
        SL_TRY(sl_config_set(rd->plan->config, "fsdp_state_dict_type", sd, NULL));
    }
    if (v2 && !strcmp(sd, "LOCAL_STATE_DICT")) {
        return sl_error_set(SL_ERR_CONFIG,
                            "fsdp_state_dict_type = LOCAL_STATE_DICT (from %s) does not exist in "
                            "FSDP2 (fsdp_version = 2 from %s); use SHARDED_STATE_DICT or "
                            "FULL_STATE_DICT",
                            sl_plan_src(rd, "fsdp_state_dict_type"),
                            sl_plan_src(rd, "fsdp_version"));
    }
    bool ram, sync, ckpt;
    SL_TRY(sl_plan_read_bool(rd, "fsdp_cpu_ram_efficient_loading", &ram));
    if (!v2) SL_TRY(sl_plan_read_bool(rd, "fsdp_sync_module_states", &sync));
    if (!v2 && ram && !sync && sl_plan_is_set(rd, "fsdp_cpu_ram_efficient_loading") &&
        sl_plan_is_set(rd, "fsdp_sync_module_states")) {
        return sl_error_set(SL_ERR_CONFIG,
                            "fsdp_cpu_ram_efficient_loading = true (from %s) needs "
                            "fsdp_sync_module_states = true, found false (from %s): only rank 0 "
                            "loads the weights and the others receive them by that broadcast "
                            "(accelerate launch refuses it too)",
                            sl_plan_src(rd, "fsdp_cpu_ram_efficient_loading"),
                            sl_plan_src(rd, "fsdp_sync_module_states"));
    }
    SL_TRY(sl_plan_read_bool(rd, "fsdp_activation_checkpointing", &ckpt));
    if (ckpt) {
        SL_LOG_WARN("fsdp_activation_checkpointing = true (from %s): recorded; values are "
                    "unchanged and the memory prediction keeps every activation",
                    sl_plan_src(rd, "fsdp_activation_checkpointing"));
    }
    long long min_params;
    return sl_plan_read_int(rd, "fsdp_min_num_params", 0, INT64_MAX, &min_params);
}

/* Accelerate refuses mixed_precision in its file next to a DeepSpeed JSON (the JSON's fp16/bf16
 * sections decide); a flag may still give it. */
static sl_status sl_plan_check_precision_source(sl_plan_reader *rd) {
    const sl_source *src = NULL;
    if (!sl_config_get(rd->cfg, "mixed_precision", &src) || src->kind != SL_SOURCE_FILE) {
        return SL_OK;
    }
    if (!sl_plan_is_set(rd, "deepspeed_config_file")) return SL_OK;
    return sl_error_set(SL_ERR_CONFIG,
                        "mixed_precision (from %s) is set in the Accelerate config together with "
                        "deepspeed_config_file (from %s), which Accelerate refuses: the DeepSpeed "
                        "JSON's fp16/bf16 sections give the dtype; remove mixed_precision from "
                        "the Accelerate file (a --mixed_precision flag is allowed)",
                        sl_plan_src(rd, "mixed_precision"),
                        sl_plan_src(rd, "deepspeed_config_file"));
}

sl_status sl_plan_check_deepspeed_keys(sl_plan_reader *rd) {
    SL_TRY(sl_plan_check_precision_source(rd));
    const sl_plan *plan = rd->plan;
    long long hpz;
    SL_TRY(sl_plan_read_int(rd, "zero_hpz_partition_size", 1, 1 << 20, &hpz));
    if (hpz > 1 && plan->zero_stage != 3) {
        return sl_error_set(SL_ERR_CONFIG,
                            "zero_hpz_partition_size = %lld (from %s) needs zero_stage 3, found "
                            "%d (from %s): ZeRO++ keeps a secondary partition of ZeRO-3 "
                            "parameters",
                            hpz, sl_plan_src(rd, "zero_hpz_partition_size"), plan->zero_stage,
                            sl_plan_src(rd, "zero_stage"));
    }
    if (plan->world_size % hpz != 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "zero_hpz_partition_size = %lld (from %s) must divide num_processes = "
                            "%d (from %s); it is usually the number of GPUs of one machine",
                            hpz, sl_plan_src(rd, "zero_hpz_partition_size"), plan->world_size,
                            sl_plan_src(rd, "num_processes"));
    }
    return SL_OK;
}

static sl_status sl_plan_batch_error(sl_plan_reader *rd, long long tbs, long long b, long long k,
                                     int w, const char *what) {
    return sl_error_set(SL_ERR_CONFIG,
                        "train_batch_size = %lld (from %s) must equal micro_batch_size %lld (from "
                        "%s) x gradient_accumulation_steps %lld (from %s) x num_processes %d "
                        "(from %s) = %lld%s; fix one of them or set train_batch_size to \"auto\"",
                        tbs, sl_plan_src(rd, "train_batch_size"), b,
                        sl_plan_src(rd, "micro_batch_size"), k,
                        sl_plan_src(rd, "gradient_accumulation_steps"), w,
                        sl_plan_src(rd, "num_processes"), b * k * w, what);
}

/* A value DeepSpeed derives from train_batch_size, recorded with that key's source. */
static sl_status sl_plan_note_derived(sl_plan_reader *rd, const char *key, long long v) {
    const sl_source *tbs_src = NULL;
    sl_config_get(rd->cfg, "train_batch_size", &tbs_src);
    sl_source s = *tbs_src;
    snprintf(s.spelling, sizeof s.spelling, "derived from train_batch_size");
    char text[32];
    snprintf(text, sizeof text, "%lld", v);
    SL_LOG_INFO("%s = %s, derived from train_batch_size (from %s) as DeepSpeed does", key, text,
                sl_plan_src(rd, "train_batch_size"));
    return sl_config_set(rd->plan->config, key, text, &s);
}

sl_status sl_plan_read_batch(sl_plan_reader *rd, long long *b, long long *k) {
    const bool b_set = sl_plan_is_set(rd, "micro_batch_size");
    const bool k_set = sl_plan_is_set(rd, "gradient_accumulation_steps");
    const bool tbs_set = sl_plan_is_set(rd, "train_batch_size");
    if (!tbs_set || rd->plan->dialect != SL_DIALECT_DEEPSPEED || (b_set && k_set)) {
        SL_TRY(sl_plan_read_int(rd, "gradient_accumulation_steps", 1, 1 << 20, k));
        SL_TRY(sl_plan_read_int(rd, "micro_batch_size", 1, 1 << 20, b));
        if (!tbs_set || rd->plan->dialect != SL_DIALECT_DEEPSPEED) return SL_OK;
    }
    long long tbs;
    SL_TRY(sl_plan_read_int(rd, "train_batch_size", 1, 1LL << 40, &tbs));
    const int w = rd->plan->world_size;
    if (b_set && k_set) {
        return tbs == *b * *k * w ? SL_OK : sl_plan_batch_error(rd, tbs, *b, *k, w, "");
    }
    if (b_set) {
        SL_TRY(sl_plan_read_int(rd, "micro_batch_size", 1, 1 << 20, b));
        *k = tbs / (*b * w);
        if (*k < 1 || *k * *b * w != tbs) {
            return sl_plan_batch_error(rd, tbs, *b, *k < 1 ? 1 : *k, w,
                                       " for a whole number of accumulation steps");
        }
        return sl_plan_note_derived(rd, "gradient_accumulation_steps", *k);
    }
    if (k_set) SL_TRY(sl_plan_read_int(rd, "gradient_accumulation_steps", 1, 1 << 20, k));
    if (!k_set) *k = 1;
    *b = tbs / (*k * w);
    if (*b < 1 || *b * *k * w != tbs) {
        return sl_plan_batch_error(rd, tbs, *b < 1 ? 1 : *b, *k, w,
                                   " for a whole micro batch per rank");
    }
    if (!k_set) SL_TRY(sl_plan_note_derived(rd, "gradient_accumulation_steps", *k));
    return sl_plan_note_derived(rd, "micro_batch_size", *b);
}

sl_status sl_plan_check_deepspeed_optim(sl_plan_reader *rd) {
    const sl_plan *plan = rd->plan;
    const char *type, *warmup_type;
    bool w_mode;
    SL_TRY(sl_plan_read_enum(rd, "optimizer_type", &type));
    SL_TRY(sl_plan_read_bool(rd, "adam_w_mode", &w_mode));
    /* DeepSpeed: adam_w_mode = (type == "adamw") or params.adam_w_mode */
    if (!w_mode && strcmp(type, "AdamW") != 0 && plan->optim.weight_decay != 0.0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "adam_w_mode = false (from %s) with optimizer %s (from %s) and "
                            "weight_decay %g (from %s) asks for Adam with L2 regularisation, "
                            "which this runtime does not implement (it runs AdamW); set "
                            "adam_w_mode true, or weight_decay 0",
                            sl_plan_src(rd, "adam_w_mode"), type, sl_plan_src(rd, "optimizer_type"),
                            plan->optim.weight_decay, sl_plan_src(rd, "weight_decay"));
    }
    static const char *const starts[] = {"warmup_min_lr", "warmup_min_ratio"};
    for (int i = 0; i < 2; i++) {
        double v;
        SL_TRY(sl_plan_read_double(rd, starts[i], NULL, 0.0, 1e300, &v));
        if (v == 0.0) continue;
        return sl_error_set(SL_ERR_CONFIG,
                            "%s = %g (from %s): shardlab's schedules warm up from 0 "
                            "(lr_schedule.h); set it to 0",
                            starts[i], v, sl_plan_src(rd, starts[i]));
    }
    SL_TRY(sl_plan_read_enum(rd, "warmup_type", &warmup_type));
    if (!strcmp(warmup_type, "log") && plan->optim.warmup_steps > 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "warmup_type = log (from %s) with %d warmup steps (from %s): "
                            "shardlab's schedules warm up linearly; set scheduler.params."
                            "warmup_type to \"linear\" (DeepSpeed's default is log)",
                            sl_plan_src(rd, "warmup_type"), plan->optim.warmup_steps,
                            sl_plan_src(rd, "warmup_steps"));
    }
    return SL_OK;
}
