/* sl_plan_compile: the one place where Accelerate / FSDP / DeepSpeed vocabulary becomes a plan
 * (DESIGN.md §3). This file picks the dialect, the world and the strategy, and reads the run and
 * optimizer settings; plan_precision.c applies the dialect's precision rules (§4.2);
 * plan_layout.c, plan_schedule.c and plan_memory.c derive the rest. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config_internal.h"
#include "common/plan_internal.h"
#include "common/plan_read.h"
#include "shardlab/log.h"

/* A key of another sharding family is a mistake (a ZeRO stage under FSDP, an FSDP option under
 * DDP): reject it, naming where it was set. */
static sl_status sl_plan_check_families(sl_plan_reader *rd) {
    const sl_dialect d = rd->plan->dialect;
    for (size_t i = 0; i < sl_config_size(rd->cfg); i++) {
        const char *key = sl_config_entry(rd->cfg, i, NULL, NULL);
        const sl_key_family fam = sl_config_key_family(sl_config_key_find(key));
        const char *where = sl_plan_src(rd, key);
        if (fam == SL_FAMILY_FSDP && d != SL_DIALECT_FSDP1 && d != SL_DIALECT_FSDP2) {
            return sl_error_set(SL_ERR_CONFIG,
                                "%s (from %s) is an FSDP option, but the plan is %s (use_fsdp is "
                                "not set); add --use_fsdp or remove %s",
                                key, where, sl_dialect_name(d), key);
        }
        if (fam == SL_FAMILY_DEEPSPEED && d != SL_DIALECT_DEEPSPEED) {
            return sl_error_set(SL_ERR_CONFIG,
                                "%s (from %s) is a DeepSpeed option, but the plan is %s "
                                "(use_deepspeed is not set); add --use_deepspeed or remove %s",
                                key, where, sl_dialect_name(d), key);
        }
        if (fam == SL_FAMILY_TORCH && d == SL_DIALECT_DEEPSPEED) {
            return sl_error_set(SL_ERR_CONFIG,
                                "%s (from %s) applies to DDP and FSDP; DeepSpeed clips with "
                                "gradient_clipping (default 1.0): use --gradient_clipping instead",
                                key, where);
        }
    }
    return SL_OK;
}

static sl_status sl_plan_read_dialect(sl_plan_reader *rd) {
    sl_plan *plan = rd->plan;
    bool fsdp, ds;
    SL_TRY(sl_plan_read_bool(rd, "use_fsdp", &fsdp));
    SL_TRY(sl_plan_read_bool(rd, "use_deepspeed", &ds));
    SL_TRY(sl_plan_dialect_from_type(rd, &fsdp, &ds));
    if (fsdp && ds) {
        return sl_error_set(SL_ERR_CONFIG,
                            "use_fsdp (from %s) and use_deepspeed (from %s) are exclusive: a plan "
                            "follows one framework; keep one of them",
                            sl_plan_src(rd, "use_fsdp"), sl_plan_src(rd, "use_deepspeed"));
    }
    plan->fsdp_version = 0;
    plan->zero_stage = -1;
    if (fsdp) {
        long long v;
        SL_TRY(sl_plan_read_int(rd, "fsdp_version", 1, 2, &v));
        plan->fsdp_version = (int)v;
        plan->dialect = v == 1 ? SL_DIALECT_FSDP1 : SL_DIALECT_FSDP2;
    } else if (ds) {
        long long stage;
        SL_TRY(sl_plan_read_int(rd, "zero_stage", 0, 3, &stage));
        plan->zero_stage = (int)stage;
        plan->dialect = SL_DIALECT_DEEPSPEED;
    } else {
        plan->dialect = SL_DIALECT_DDP;
    }
    return sl_plan_check_families(rd);
}

static sl_status sl_plan_read_world(sl_plan_reader *rd) {
    sl_plan *plan = rd->plan;
    long long w, m;
    SL_TRY(sl_plan_read_int(rd, "num_processes", 1, 1 << 20, &w));
    SL_TRY(sl_plan_read_int(rd, "num_machines", 1, 1 << 20, &m));
    if (w % m != 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "num_processes = %lld (from %s) is not divisible by num_machines = "
                            "%lld (from %s): every machine runs num_processes / num_machines "
                            "ranks; choose a multiple of %lld",
                            w, sl_plan_src(rd, "num_processes"), m, sl_plan_src(rd, "num_machines"),
                            m);
    }
    plan->world_size = (int)w;
    plan->num_machines = (int)m;
    return sl_plan_check_distributed_type(rd);
}

/* The strategy name accelerate config's FSDP1 questions store under fsdp_reshard_after_forward
 * (accelerate-facts.md §1.3), or NULL when the key holds a truth value or nothing. */
static const char *sl_plan_reshard_strategy_name(const sl_plan_reader *rd) {
    const char *v = sl_config_get(rd->cfg, "fsdp_reshard_after_forward", NULL);
    const sl_config_key *bool_key = sl_config_key_find("fsdp_reshard_after_forward");
    if (!v || sl_config_values_equal(bool_key, v, "true") ||
        sl_config_values_equal(bool_key, v, "false")) {
        return NULL;
    }
    return sl_config_key_resolve_enum(sl_config_key_find("fsdp_sharding_strategy"), v);
}

/* FSDP1 keeps torch's ShardingStrategy; fsdp_reshard_after_forward only stands in for it when it
 * is absent (Accelerate's FullyShardedDataParallelPlugin reads it only then). */
static sl_status sl_plan_fsdp1_strategy(sl_plan_reader *rd, const char **name) {
    const bool named = sl_plan_is_set(rd, "fsdp_sharding_strategy");
    const char *in_reshard = sl_plan_reshard_strategy_name(rd);
    if (in_reshard) {
        if (named) {
            const char *given;
            SL_TRY(sl_plan_read_enum(rd, "fsdp_sharding_strategy", &given));
            if (strcmp(given, in_reshard) != 0) {
                return sl_error_set(SL_ERR_CONFIG,
                                    "fsdp_reshard_after_forward = %s (from %s) contradicts "
                                    "fsdp_sharding_strategy = %s (from %s); drop one of them",
                                    in_reshard, sl_plan_src(rd, "fsdp_reshard_after_forward"),
                                    given, sl_plan_src(rd, "fsdp_sharding_strategy"));
            }
        } else {
            SL_LOG_INFO("fsdp_reshard_after_forward = %s (from %s) is read as FSDP1's sharding "
                        "strategy, as accelerate config writes it (accelerate launch would pass "
                        "its default FULL_SHARD instead unless fsdp_sharding_strategy is given)",
                        in_reshard, sl_plan_src(rd, "fsdp_reshard_after_forward"));
        }
        *name = in_reshard;
        return SL_OK;
    }
    if (!named && sl_plan_is_set(rd, "fsdp_reshard_after_forward")) {
        bool reshard;
        SL_TRY(sl_plan_read_bool(rd, "fsdp_reshard_after_forward", &reshard));
        *name = reshard ? "FULL_SHARD" : "SHARD_GRAD_OP";
        return SL_OK;
    }
    SL_TRY(sl_plan_read_enum(rd, "fsdp_sharding_strategy", name));
    if (named && sl_plan_is_set(rd, "fsdp_reshard_after_forward") &&
        strcmp(*name, "NO_SHARD") != 0) {
        bool reshard;
        SL_TRY(sl_plan_read_bool(rd, "fsdp_reshard_after_forward", &reshard));
        const bool strategy_reshards =
            !strcmp(*name, "FULL_SHARD") || !strcmp(*name, "HYBRID_SHARD");
        if (reshard != strategy_reshards) {
            return sl_error_set(SL_ERR_CONFIG,
                                "fsdp_reshard_after_forward = %s (from %s) contradicts "
                                "fsdp_sharding_strategy = %s (from %s), which %s after forward; "
                                "drop one of them",
                                reshard ? "true" : "false",
                                sl_plan_src(rd, "fsdp_reshard_after_forward"), *name,
                                sl_plan_src(rd, "fsdp_sharding_strategy"),
                                strategy_reshards ? "reshards" : "does not reshard");
        }
    }
    return SL_OK;
}

/* FSDP2 has no ShardingStrategy: reshard_after_forward picks FULL_SHARD or SHARD_GRAD_OP, and a
 * 2-D (replicate, shard) mesh gives HSDP. Names are accepted where they mean one of those
 * (`accelerate to-fsdp2` maps them the same way). */
static sl_status sl_plan_fsdp2_strategy(sl_plan_reader *rd, const char **name) {
    const char *in_reshard = sl_plan_reshard_strategy_name(rd);
    if (in_reshard) {
        return sl_error_set(SL_ERR_CONFIG,
                            "fsdp_reshard_after_forward = %s (from %s) must be a boolean with "
                            "FSDP2 (fsdp_version = 2 from %s): true reshards after forward "
                            "(FULL_SHARD), false keeps parameters gathered (SHARD_GRAD_OP); "
                            "Accelerate refuses a strategy name here too",
                            in_reshard, sl_plan_src(rd, "fsdp_reshard_after_forward"),
                            sl_plan_src(rd, "fsdp_version"));
    }
    bool reshard;
    SL_TRY(sl_plan_read_bool(rd, "fsdp_reshard_after_forward", &reshard));
    if (!sl_plan_is_set(rd, "fsdp_sharding_strategy")) {
        *name = reshard ? "FULL_SHARD" : "SHARD_GRAD_OP";
        return SL_OK;
    }
    SL_TRY(sl_plan_read_enum(rd, "fsdp_sharding_strategy", name));
    const char *where = sl_plan_src(rd, "fsdp_sharding_strategy");
    if (!strcmp(*name, "NO_SHARD") || !strcmp(*name, "HYBRID_SHARD_ZERO2")) {
        return sl_error_set(SL_ERR_CONFIG,
                            "fsdp_sharding_strategy = %s (from %s) is not available with FSDP2 "
                            "(fsdp_version = 2 from %s); allowed with FSDP2: FULL_SHARD, "
                            "SHARD_GRAD_OP (fsdp_reshard_after_forward true/false) and "
                            "HYBRID_SHARD; use fsdp_version 1 for %s",
                            *name, where, sl_plan_src(rd, "fsdp_version"), *name);
    }
    const bool wants = strcmp(*name, "SHARD_GRAD_OP") != 0;
    if (sl_plan_is_set(rd, "fsdp_reshard_after_forward") && reshard != wants) {
        return sl_error_set(SL_ERR_CONFIG,
                            "fsdp_reshard_after_forward = %s (from %s) contradicts "
                            "fsdp_sharding_strategy = %s (from %s); drop one of them",
                            reshard ? "true" : "false",
                            sl_plan_src(rd, "fsdp_reshard_after_forward"), *name, where);
    }
    return SL_OK;
}

static sl_status sl_plan_read_strategy(sl_plan_reader *rd) {
    sl_plan *plan = rd->plan;
    const char *name = "NO_SHARD";
    if (plan->dialect == SL_DIALECT_FSDP1) SL_TRY(sl_plan_fsdp1_strategy(rd, &name));
    if (plan->dialect == SL_DIALECT_FSDP2) SL_TRY(sl_plan_fsdp2_strategy(rd, &name));
    if (plan->dialect == SL_DIALECT_DEEPSPEED) {
        static const sl_strategy by_stage[] = {SL_STRATEGY_NO_SHARD, SL_STRATEGY_SHARD_OPTIM,
                                               SL_STRATEGY_SHARD_GRAD_OP, SL_STRATEGY_FULL_SHARD};
        plan->strategy = by_stage[plan->zero_stage];
    } else {
        static const struct {
            const char *name;
            sl_strategy s;
        } names[] = {{"FULL_SHARD", SL_STRATEGY_FULL_SHARD},
                     {"SHARD_GRAD_OP", SL_STRATEGY_SHARD_GRAD_OP},
                     {"NO_SHARD", SL_STRATEGY_NO_SHARD},
                     {"HYBRID_SHARD", SL_STRATEGY_HYBRID_SHARD},
                     {"HYBRID_SHARD_ZERO2", SL_STRATEGY_HYBRID_SHARD_ZERO2}};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            if (!strcmp(name, names[i].name)) plan->strategy = names[i].s;
        }
    }
    const bool hybrid = plan->strategy == SL_STRATEGY_HYBRID_SHARD ||
                        plan->strategy == SL_STRATEGY_HYBRID_SHARD_ZERO2;
    if (hybrid && plan->num_machines < 2) {
        return sl_error_set(SL_ERR_CONFIG,
                            "fsdp_sharding_strategy = %s (from %s) needs num_machines >= 2, found "
                            "%d (from %s): hybrid sharding shards within each machine's "
                            "num_processes / num_machines ranks and replicates across machines",
                            name, sl_plan_src(rd, "fsdp_sharding_strategy"), plan->num_machines,
                            sl_plan_src(rd, "num_machines"));
    }
    plan->shard_group_size = hybrid ? plan->world_size / plan->num_machines : plan->world_size;
    plan->n_replicas = plan->world_size / plan->shard_group_size;
    plan->reshard_after_forward =
        plan->strategy == SL_STRATEGY_FULL_SHARD || plan->strategy == SL_STRATEGY_HYBRID_SHARD;
    return SL_OK;
}

/* Knobs of one FSDP version only are errors under the other. */
static sl_status sl_plan_reject_fsdp1_only(sl_plan_reader *rd, const char *key) {
    if (!sl_plan_is_set(rd, key)) return SL_OK;
    return sl_error_set(SL_ERR_CONFIG,
                        "%s (from %s) is an FSDP1 option; FSDP2 (fsdp_version = 2 from %s) has "
                        "no such knob: remove it or use fsdp_version 1",
                        key, sl_plan_src(rd, key), sl_plan_src(rd, "fsdp_version"));
}

static sl_status sl_plan_read_fsdp_options(sl_plan_reader *rd, const sl_model_desc *model) {
    sl_plan *plan = rd->plan;
    bool offload;
    SL_TRY(sl_plan_check_fsdp_keys(rd, model));
    SL_TRY(sl_plan_read_bool(rd, "fsdp_offload_params", &offload));
    plan->offload_params = plan->offload_optimizer = offload;
    if (plan->dialect == SL_DIALECT_FSDP2) {
        SL_TRY(sl_plan_reject_fsdp1_only(rd, "fsdp_use_orig_params"));
        SL_TRY(sl_plan_reject_fsdp1_only(rd, "fsdp_backward_prefetch"));
        SL_TRY(sl_plan_reject_fsdp1_only(rd, "fsdp_limit_all_gathers"));
        SL_TRY(sl_plan_reject_fsdp1_only(rd, "fsdp_sync_module_states"));
        bool fwd;
        SL_TRY(sl_plan_read_bool(rd, "fsdp_forward_prefetch", &fwd));
        if (fwd) {
            return sl_error_set(SL_ERR_CONFIG,
                                "fsdp_forward_prefetch = true (from %s) is not implemented in "
                                "FSDP2 (Accelerate raises the same); remove it or use "
                                "fsdp_version 1",
                                sl_plan_src(rd, "fsdp_forward_prefetch"));
        }
        /* fully_shard always prefetches the next unit's all-gather in backward */
        plan->backward_prefetch = 1;
        plan->use_orig_params = true;
        plan->limit_all_gathers = false;
        return SL_OK;
    }
    const char *prefetch;
    SL_TRY(sl_plan_read_bool(rd, "fsdp_use_orig_params", &plan->use_orig_params));
    SL_TRY(sl_plan_read_bool(rd, "fsdp_forward_prefetch", &plan->forward_prefetch));
    SL_TRY(sl_plan_read_bool(rd, "fsdp_limit_all_gathers", &plan->limit_all_gathers));
    SL_TRY(sl_plan_read_enum(rd, "fsdp_backward_prefetch", &prefetch));
    plan->backward_prefetch = !strcmp(prefetch, "BACKWARD_PRE")    ? 1
                              : !strcmp(prefetch, "BACKWARD_POST") ? 2
                                                                   : 0;
    return SL_OK;
}

static sl_status sl_plan_read_deepspeed_options(sl_plan_reader *rd) {
    sl_plan *plan = rd->plan;
    const char *opt_dev, *param_dev;
    SL_TRY(sl_plan_check_deepspeed_keys(rd));
    SL_TRY(sl_plan_read_enum(rd, "offload_optimizer_device", &opt_dev));
    SL_TRY(sl_plan_read_enum(rd, "offload_param_device", &param_dev));
    plan->offload_optimizer = !strcmp(opt_dev, "cpu");
    if (plan->offload_optimizer && plan->zero_stage == 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "offload_optimizer_device = cpu (from %s) needs zero_stage >= 1, found "
                            "0 (from %s): ZeRO-Offload offloads the optimizer partition",
                            sl_plan_src(rd, "offload_optimizer_device"),
                            sl_plan_src(rd, "zero_stage"));
    }
    const bool param_cpu = !strcmp(param_dev, "cpu");
    if (param_cpu && plan->zero_stage != 3) {
        return sl_error_set(SL_ERR_CONFIG,
                            "offload_param_device = cpu (from %s) needs zero_stage 3, found %d "
                            "(from %s): only ZeRO-3 partitions parameters",
                            sl_plan_src(rd, "offload_param_device"), plan->zero_stage,
                            sl_plan_src(rd, "zero_stage"));
    }
    plan->offload_params = plan->offload_optimizer || param_cpu;
    if (plan->zero_stage == 3) {
        long long t;
        SL_TRY(sl_plan_read_int(rd, "stage3_param_persistence_threshold", 0, LLONG_MAX, &t));
        plan->persistence_threshold = t;
    }
    return SL_OK;
}

static sl_status sl_plan_read_run(sl_plan_reader *rd, const sl_model_desc *model) {
    sl_plan *plan = rd->plan;
    long long k, b, t, steps, seed;
    const char *norm;
    SL_TRY(sl_plan_read_batch(rd, &b, &k));
    SL_TRY(sl_plan_read_enum(rd, "loss_normalization", &norm));
    SL_TRY(sl_plan_read_bool(rd, "deterministic", &plan->deterministic));
    SL_TRY(sl_plan_read_int(rd, "seq_len", 1, 1 << 30, &t));
    SL_TRY(sl_plan_read_int(rd, "max_steps", 1, INT_MAX, &steps));
    SL_TRY(sl_plan_read_int(rd, "seed", 0, LLONG_MAX, &seed));
    if (t > model->gpt2.block_size) {
        return sl_error_set(SL_ERR_CONFIG,
                            "seq_len = %lld (from %s) exceeds the model's block_size %d: the "
                            "position table has block_size rows; use seq_len <= %d",
                            t, sl_plan_src(rd, "seq_len"), model->gpt2.block_size,
                            model->gpt2.block_size);
    }
    plan->grad_accum_steps = (int)k;
    plan->loss_norm = !strcmp(norm, "global_tokens") ? SL_LOSS_NORM_GLOBAL_TOKENS
                                                     : SL_LOSS_NORM_PER_MICROBATCH_MEAN;
    plan->micro_batch_size = (int)b;
    plan->seq_len = (int)t;
    plan->steps = (int)steps;
    plan->seed = (uint64_t)seed;
    return SL_OK;
}

static sl_status sl_plan_read_optim(sl_plan_reader *rd) {
    sl_plan *plan = rd->plan;
    sl_optim_config *o = &plan->optim;
    const bool ds = plan->dialect == SL_DIALECT_DEEPSPEED;
    const double big = 1e300;
    long long warmup;
    const char *sched;
    SL_TRY(sl_plan_read_double(rd, "lr", NULL, 0.0, big, &o->lr));
    /* torch.optim.AdamW defaults weight_decay to 0.01, DeepSpeed's FusedAdam to 0; DeepSpeed's
     * torch_adam hands its params to torch.optim.AdamW */
    bool torch_adam = false;
    if (ds) SL_TRY(sl_plan_read_bool(rd, "torch_adam", &torch_adam));
    SL_TRY(sl_plan_read_double(rd, "weight_decay", ds && !torch_adam ? "0" : "0.01", 0.0, big,
                               &o->weight_decay));
    SL_TRY(sl_plan_read_double(rd, "adam_beta1", NULL, 0.0, 1.0, &o->beta1));
    SL_TRY(sl_plan_read_double(rd, "adam_beta2", NULL, 0.0, 1.0, &o->beta2));
    SL_TRY(sl_plan_read_double(rd, "adam_epsilon", NULL, 0.0, 1.0, &o->eps));
    const char *beta_key = o->beta1 == 1.0 ? "adam_beta1" : o->beta2 == 1.0 ? "adam_beta2" : NULL;
    if (beta_key) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s = 1 (from %s) makes Adam's bias correction 1 - beta^t zero; use a "
                            "value in [0, 1)",
                            beta_key, sl_plan_src(rd, beta_key));
    }
    SL_TRY(sl_plan_read_enum(rd, "lr_scheduler", &sched));
    SL_TRY(sl_plan_read_int(rd, "warmup_steps", 0, INT_MAX, &warmup));
    SL_TRY(sl_plan_read_double(rd, "min_lr_ratio", NULL, 0.0, 1.0, &o->min_lr_ratio));
    o->schedule = !strcmp(sched, "warmup_cosine")   ? SL_LR_WARMUP_COSINE
                  : !strcmp(sched, "warmup_linear") ? SL_LR_WARMUP_LINEAR
                                                    : SL_LR_CONSTANT;
    o->warmup_steps = (int)warmup;
    if (ds) SL_TRY(sl_plan_check_deepspeed_optim(rd));
    return sl_plan_read_double(rd, ds ? "gradient_clipping" : "max_grad_norm", NULL, 0.0, big,
                               &o->max_grad_norm);
}

static const char *sl_plan_follows(const sl_plan *plan) {
    switch (plan->dialect) {
    case SL_DIALECT_DDP:
        return "torch 2.3-2.8 DistributedDataParallel + autocast / accelerate 1.15.0.dev0";
    case SL_DIALECT_FSDP1:
        return "torch 2.3-2.8 FSDP1 (FlatParameter) / accelerate 1.15.0.dev0 (fp32 upcast of "
               "sharded params since 0.30.0)";
    case SL_DIALECT_FSDP2:
        return "torch 2.6-2.8 FSDP2 fully_shard (ReduceOp.AVG for fp32/bf16) / accelerate "
               "1.15.0.dev0 (fp32 upcast as fixed by PR #3985)";
    case SL_DIALECT_DEEPSPEED:
        return "DeepSpeed 0.19.6 ZeRO / accelerate 1.15.0.dev0 (gradient_clipping auto = 1.0)";
    }
    return "";
}

static sl_status sl_plan_compile_into(sl_plan_reader *rd, const sl_model_desc *model) {
    sl_plan *plan = rd->plan;
    SL_TRY(sl_plan_read_dialect(rd));
    SL_TRY(sl_plan_read_world(rd));
    SL_TRY(sl_plan_read_strategy(rd));
    if (plan->dialect == SL_DIALECT_FSDP1 || plan->dialect == SL_DIALECT_FSDP2) {
        SL_TRY(sl_plan_read_fsdp_options(rd, model));
    }
    if (plan->dialect == SL_DIALECT_DEEPSPEED) SL_TRY(sl_plan_read_deepspeed_options(rd));
    SL_TRY(sl_plan_read_run(rd, model));
    SL_TRY(sl_plan_resolve_precision(rd));
    SL_TRY(sl_plan_read_optim(rd));
    plan->accum_mode = plan->dialect == SL_DIALECT_DEEPSPEED && plan->zero_stage >= 2
                           ? SL_ACCUM_REDUCED_SHARD
                           : SL_ACCUM_LOCAL_UNSHARDED;
    plan->follows = sl_plan_follows(plan);

    SL_TRY(sl_plan_build_layout(plan, model));
    SL_TRY(sl_observation_init(&plan->predicted, plan->world_size));
    sl_plan_dtype_table(plan, plan->predicted.dtype_table);
    SL_TRY(sl_plan_build_schedule(plan, model));
    sl_plan_predict_memory(plan, model);
    return SL_OK;
}

sl_status sl_plan_compile(const sl_config *cfg, const sl_model_desc *model, sl_plan **out) {
    *out = NULL;
    if (!cfg || !model) {
        return sl_error_set(SL_ERR_INVALID_ARG, "sl_plan_compile: %s is NULL",
                            cfg ? "the model description" : "the config");
    }
    sl_plan *plan = calloc(1, sizeof *plan);
    if (!plan) return sl_error_set(SL_ERR_OOM, "out of memory compiling a plan");
    sl_plan_reader *rd = calloc(1, sizeof *rd);
    sl_config *work = NULL;
    sl_plan_autos autos = {0};
    /* what the compiler reads: the user's entries without the sections of another dialect and
     * without "auto" (resolved after compiling) */
    sl_status st = rd ? sl_config_clone(cfg, &work)
                      : sl_error_set(SL_ERR_OOM, "out of memory compiling a plan");
    if (st == SL_OK) st = sl_plan_strip_inactive(work);
    if (st == SL_OK) st = sl_plan_autos_strip(work, model, &autos);
    if (st == SL_OK) st = sl_config_clone(work, &plan->config);
    if (st == SL_OK) {
        rd->cfg = work;
        rd->plan = plan;
        st = sl_plan_compile_into(rd, model);
    }
    if (st == SL_OK) st = sl_plan_autos_resolve(plan, &autos);
    sl_plan_autos_free(&autos);
    sl_config_destroy(work);
    free(rd);
    if (st != SL_OK) {
        sl_plan_destroy(plan);
        return st;
    }
    *out = plan;
    return SL_OK;
}

void sl_plan_destroy(sl_plan *plan) {
    if (!plan) return;
    for (int b = 0; plan->buffers && b < plan->n_buffers; b++)
        free(plan->buffers[b].segments);
    free(plan->buffers);
    sl_observation_free(&plan->predicted);
    sl_config_destroy(plan->config);
    free(plan);
}

void sl_plan_dtype_table(const sl_plan *plan, sl_dtype out[SL_STAGE_COUNT]) {
    const sl_precision *p = &plan->precision;
    out[SL_STAGE_PREPARATION] = p->master_dtype;
    out[SL_STAGE_OPTIMIZER_STATES] = p->optim_dtype;
    out[SL_STAGE_TRAINING] = p->param_dtype;
    out[SL_STAGE_GRADIENT_REDUCTION] = p->reduce_dtype;
    out[SL_STAGE_OPTIMIZER_STEP] = p->master_dtype;
}

/* torch FSDP1 _init_utils._get_gradient_predivide_factor: the loop, not a closed form (W = 3
 * gives pre = 2 although 3 % 2 != 0). */
void sl_divide_factors_pow2(int world, double *pre, double *post) {
    int f = 1;
    while (world % f == 0 && world / f > f)
        f *= 2;
    *pre = (double)f;
    *post = (double)world / (double)f;
}

int sl_plan_shard_rank(const sl_plan *plan, int rank) {
    return rank % plan->shard_group_size;
}

int sl_plan_replica(const sl_plan *plan, int rank) {
    return rank / plan->shard_group_size;
}

sl_sampler_options sl_plan_sampler_options(const sl_plan *plan) {
    sl_sampler_options so = sl_sampler_options_default();
    so.seed = plan->seed;
    so.world_size = plan->world_size;
    so.micro_batch_size = plan->micro_batch_size;
    so.grad_accum_steps = plan->grad_accum_steps;
    so.seq_len = plan->seq_len;
    return so;
}
