/* Accelerate config files (what `accelerate config` writes; accelerate-facts.md §1.2-§1.4), read
 * into the config store. Accelerate validates only the top-level keys and silently ignores unknown
 * nested ones; here every key at every depth is known, mapped to a config key, or accepted with a
 * notice saying it has no effect on this runtime. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config_internal.h"
#include "common/config_tree.h"
#include "shardlab/config_file.h"
#include "shardlab/log.h"

typedef enum sl_acc_kind {
    SL_ACC_KEY,         /* a scalar for the config key of the same name */
    SL_ACC_NOTICE,      /* accepted, no effect here (why) */
    SL_ACC_DISTRIBUTED, /* distributed_type */
    SL_ACC_PRECISION,   /* mixed_precision */
    SL_ACC_LEGACY_FP16, /* fp16: true (Accelerate < 0.x) */
    SL_ACC_FSDP,        /* fsdp_config: {...} */
    SL_ACC_DEEPSPEED,   /* deepspeed_config: {...} */
    SL_ACC_PLANS,       /* deepspeed_configs: {name: {...} | path} */
    SL_ACC_MPIRUN,      /* mpirun_config: {mpirun_hostfile: ...} */
    SL_ACC_PARALLELISM  /* parallelism_config: {...} */
} sl_acc_kind;

typedef struct sl_acc_row {
    const char *name;
    sl_acc_kind kind;
    const char *why; /* NOTICE */
} sl_acc_row;

static const char sl_tpu[] = "configures TPUs (this runtime runs on CPUs and CUDA GPUs)";
static const char sl_sagemaker[] = "configures Amazon SageMaker (this runtime runs where launched)";

static const sl_acc_row sl_acc_top[] = {
    {"compute_environment", SL_ACC_KEY, NULL},
    {"distributed_type", SL_ACC_DISTRIBUTED, NULL},
    {"mixed_precision", SL_ACC_PRECISION, NULL},
    {"num_processes", SL_ACC_KEY, NULL},
    {"num_machines", SL_ACC_KEY, NULL},
    {"machine_rank", SL_ACC_KEY, NULL},
    {"main_process_ip", SL_ACC_KEY, NULL},
    {"main_process_port", SL_ACC_KEY, NULL},
    {"rdzv_backend", SL_ACC_KEY, NULL},
    {"same_network", SL_ACC_KEY, NULL},
    {"gpu_ids", SL_ACC_KEY, NULL},
    {"use_cpu", SL_ACC_KEY, NULL},
    {"debug", SL_ACC_KEY, NULL},
    {"enable_cpu_affinity", SL_ACC_KEY, NULL},
    {"fsdp_config", SL_ACC_FSDP, NULL},
    {"deepspeed_config", SL_ACC_DEEPSPEED, NULL},
    {"deepspeed_configs", SL_ACC_PLANS, NULL},
    {"mpirun_config", SL_ACC_MPIRUN, NULL},
    {"parallelism_config", SL_ACC_PARALLELISM, NULL},
    {"fp16", SL_ACC_LEGACY_FP16, NULL},
    {"downcast_bf16", SL_ACC_NOTICE, sl_tpu},
    {"main_training_function", SL_ACC_NOTICE, sl_tpu},
    {"tpu_name", SL_ACC_NOTICE, sl_tpu},
    {"tpu_zone", SL_ACC_NOTICE, sl_tpu},
    {"tpu_use_cluster", SL_ACC_NOTICE, sl_tpu},
    {"tpu_use_sudo", SL_ACC_NOTICE, sl_tpu},
    {"tpu_vm", SL_ACC_NOTICE, sl_tpu},
    {"tpu_env", SL_ACC_NOTICE, sl_tpu},
    {"command_file", SL_ACC_NOTICE, sl_tpu},
    {"commands", SL_ACC_NOTICE, sl_tpu},
    {"dynamo_config", SL_ACC_NOTICE, "configures torch.compile (there is no compiler here)"},
    {"dynamo_backend", SL_ACC_NOTICE, "configures torch.compile (there is no compiler here)"},
    {"fp8_config", SL_ACC_NOTICE, "configures fp8 training, which this runtime does not do"},
    {"megatron_lm_config", SL_ACC_NOTICE,
     "configures Megatron-LM (distributed_type MEGATRON_LM is not supported)"},
    {"ec2_instance_type", SL_ACC_NOTICE, sl_sagemaker},
    {"iam_role_name", SL_ACC_NOTICE, sl_sagemaker},
    {"image_uri", SL_ACC_NOTICE, sl_sagemaker},
    {"profile", SL_ACC_NOTICE, sl_sagemaker},
    {"region", SL_ACC_NOTICE, sl_sagemaker},
    {"base_job_name", SL_ACC_NOTICE, sl_sagemaker},
    {"pytorch_version", SL_ACC_NOTICE, sl_sagemaker},
    {"transformers_version", SL_ACC_NOTICE, sl_sagemaker},
    {"py_version", SL_ACC_NOTICE, sl_sagemaker},
    {"sagemaker_inputs_file", SL_ACC_NOTICE, sl_sagemaker},
    {"sagemaker_metrics_file", SL_ACC_NOTICE, sl_sagemaker},
    {"additional_args", SL_ACC_NOTICE, sl_sagemaker},
};

#define SL_ACC_N_TOP (sizeof sl_acc_top / sizeof sl_acc_top[0])

/* The keys `accelerate config` writes under deepspeed_config (accelerate-facts.md §1.4). */
static const char *const sl_acc_ds_keys[] = {"zero_stage",
                                             "offload_optimizer_device",
                                             "offload_param_device",
                                             "offload_optimizer_nvme_path",
                                             "offload_param_nvme_path",
                                             "zero3_init_flag",
                                             "zero3_save_16bit_model",
                                             "gradient_accumulation_steps",
                                             "gradient_clipping",
                                             "deepspeed_config_file",
                                             "deepspeed_multinode_launcher",
                                             "deepspeed_hostfile",
                                             "deepspeed_exclusion_filter",
                                             "deepspeed_inclusion_filter",
                                             "deepspeed_moe_layer_cls_names",
                                             NULL};

/* Accelerate types this runtime does not run (DistributedType, dataclasses.py). */
static const char *const sl_acc_unsupported_types[] = {
    "MULTI_NPU",   "MULTI_MLU", "MULTI_SDAA",   "MULTI_MUSA", "MULTI_XPU", "XLA",
    "MEGATRON_LM", "MULTI_HPU", "MULTI_NEURON", "TPU",        NULL};

typedef struct sl_acc_reader {
    sl_config *cfg;
    const char *file;
    const char *plan_name;
    sl_notices notices;
} sl_acc_reader;

/* A scalar (or null, which leaves the key unset) for `key`. A list of scalars is accepted for
 * string keys and joined with commas (fsdp_transformer_layer_cls_to_wrap: [GPT2Block]). */
static sl_status sl_acc_scalar(sl_acc_reader *r, const sl_node_pair *p, const char *spelling,
                               const char *key) {
    const sl_node *v = p->value;
    if (sl_node_is_null(v)) return SL_OK;
    const sl_config_key *k = sl_config_key_find(key);
    if (v->kind == SL_NODE_SEQ && k->type == SL_KEY_STRING) {
        char joined[1024] = "";
        size_t n = 0;
        for (size_t i = 0; i < v->n; i++) {
            if (v->items[i]->kind != SL_NODE_SCALAR) break;
            n += (size_t)snprintf(joined + n, n < sizeof joined ? sizeof joined - n : 0, "%s%s",
                                  i ? "," : "", v->items[i]->text);
        }
        if (n < sizeof joined) {
            return sl_config_file_set(r->cfg, r->file, p->line, spelling, key, joined);
        }
    }
    if (v->kind != SL_NODE_SCALAR) {
        return sl_error_set(SL_ERR_CONFIG, "%s:%d: %s: expected a single value, found %s", r->file,
                            p->line, spelling, sl_node_kind_name(v));
    }
    return sl_config_file_set(r->cfg, r->file, p->line, spelling, key, v->text);
}

static sl_status sl_acc_expect_map(const sl_acc_reader *r, const sl_node_pair *p) {
    if (p->value->kind == SL_NODE_MAP) return SL_OK;
    return sl_error_set(SL_ERR_CONFIG, "%s:%d: %s: expected a mapping of keys, found %s", r->file,
                        p->line, p->key, sl_node_kind_name(p->value));
}

static sl_status sl_acc_distributed(sl_acc_reader *r, const sl_node_pair *p) {
    const sl_node *v = p->value;
    if (v->kind == SL_NODE_SCALAR) {
        for (const char *const *u = sl_acc_unsupported_types; *u; u++) {
            if (strcmp(v->text, *u) != 0) continue;
            return sl_error_set(SL_ERR_CONFIG,
                                "%s:%d: distributed_type %s is an Accelerate type this runtime "
                                "does not run; supported: NO, MULTI_CPU, MULTI_GPU, FSDP, "
                                "DEEPSPEED",
                                r->file, p->line, v->text);
        }
    }
    return sl_acc_scalar(r, p, p->key, "distributed_type");
}

static sl_status sl_acc_precision(sl_acc_reader *r, const sl_node_pair *p) {
    const sl_node *v = p->value;
    if (v->kind == SL_NODE_SCALAR && !strcmp(v->text, "fp8")) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: mixed_precision fp8 is not supported by this runtime; "
                            "allowed: no, fp16, bf16",
                            r->file, p->line);
    }
    /* PyYAML reads a bare `no` as false; Accelerate writes 'no' quoted */
    if (v->kind == SL_NODE_SCALAR && !v->quoted &&
        (!strcmp(v->text, "false") || !strcmp(v->text, "False") || !strcmp(v->text, "No"))) {
        return sl_config_file_set(r->cfg, r->file, p->line, p->key, "mixed_precision", "no");
    }
    return sl_acc_scalar(r, p, p->key, "mixed_precision");
}

static sl_status sl_acc_fsdp(sl_acc_reader *r, const sl_node_pair *section) {
    SL_TRY(sl_acc_expect_map(r, section));
    const char *known[64];
    size_t n_known = 0;
    for (size_t i = 0; i < sl_config_key_count() && n_known < 62; i++) {
        const sl_config_key *k = sl_config_key_at(i);
        if (sl_config_key_family(k) == SL_FAMILY_FSDP) known[n_known++] = k->name;
    }
    known[n_known++] = "fsdp_ignored_modules";
    known[n_known] = NULL;
    for (size_t i = 0; i < section->value->n; i++) {
        const sl_node_pair *p = &section->value->pairs[i];
        /* Accelerate prefixes fsdp_config keys that lack it (launch.py) */
        char key[160], spelling[300];
        snprintf(key, sizeof key, "%s%.150s", strncmp(p->key, "fsdp_", 5) ? "fsdp_" : "", p->key);
        sl_config_path_join(spelling, sizeof spelling, section->key, p->key);
        if (!strcmp(key, "fsdp_ignored_modules")) {
            if (sl_node_is_null(p->value)) continue;
            return sl_error_set(SL_ERR_CONFIG,
                                "%s:%d: %s: ignoring modules is not supported (every parameter of "
                                "the model is trained and sharded); remove it or set it to null",
                                r->file, p->line, spelling);
        }
        const sl_config_key *k = sl_config_key_find(key);
        if (!k || sl_config_key_family(k) != SL_FAMILY_FSDP) {
            return sl_config_file_unknown(r->file, p->line, section->key, p->key, known, NULL);
        }
        SL_TRY(sl_acc_scalar(r, p, spelling, k->name));
    }
    return SL_OK;
}

/* Accelerate's plugin fields: gradient_accumulation_steps and gradient_clipping may be "auto". */
static sl_status sl_acc_deepspeed(sl_acc_reader *r, const sl_node_pair *section) {
    SL_TRY(sl_acc_expect_map(r, section));
    for (size_t i = 0; i < section->value->n; i++) {
        const sl_node_pair *p = &section->value->pairs[i];
        char spelling[300];
        sl_config_path_join(spelling, sizeof spelling, section->key, p->key);
        size_t j = 0;
        while (sl_acc_ds_keys[j] && strcmp(sl_acc_ds_keys[j], p->key) != 0)
            j++;
        if (!sl_acc_ds_keys[j]) {
            const char *hint = sl_config_key_find(p->key)
                                   ? "a DeepSpeed JSON setting belongs in the file "
                                     "deepspeed_config_file names (or in deepspeed_configs)"
                                   : NULL;
            return sl_config_file_unknown(r->file, p->line, section->key, p->key, sl_acc_ds_keys,
                                          hint);
        }
        if (!strcmp(p->key, "deepspeed_moe_layer_cls_names")) {
            sl_notices_add(&r->notices, p->line, spelling,
                           "Mixture-of-Experts layers: the model has none");
            continue;
        }
        const bool may_be_auto =
            !strcmp(p->key, "gradient_accumulation_steps") || !strcmp(p->key, "gradient_clipping");
        if (!may_be_auto && p->value->kind == SL_NODE_SCALAR && !strcmp(p->value->text, "auto")) {
            return sl_error_set(SL_ERR_CONFIG,
                                "%s:%d: %s is \"auto\", which only gradient_accumulation_steps and "
                                "gradient_clipping may be here; write a value",
                                r->file, p->line, spelling);
        }
        SL_TRY(sl_acc_scalar(r, p, spelling, p->key));
    }
    return SL_OK;
}

static sl_status sl_acc_mpirun(sl_acc_reader *r, const sl_node_pair *section) {
    SL_TRY(sl_acc_expect_map(r, section));
    static const char *const known[] = {"mpirun_hostfile", "mpirun_ccl", NULL};
    for (size_t i = 0; i < section->value->n; i++) {
        const sl_node_pair *p = &section->value->pairs[i];
        char spelling[300];
        sl_config_path_join(spelling, sizeof spelling, section->key, p->key);
        if (!strcmp(p->key, "mpirun_hostfile")) {
            SL_TRY(sl_acc_scalar(r, p, spelling, "mpirun_hostfile"));
        } else if (!strcmp(p->key, "mpirun_ccl")) {
            sl_notices_add(&r->notices, p->line, spelling, "selects Intel oneCCL bindings");
        } else {
            return sl_config_file_unknown(r->file, p->line, section->key, p->key, known, NULL);
        }
    }
    return SL_OK;
}

/* Tensor, context and sequence parallelism change what each rank computes; sizes of 1 are the
 * data-parallel run this runtime does. */
static sl_status sl_acc_parallelism(sl_acc_reader *r, const sl_node_pair *section) {
    if (sl_node_is_null(section->value)) return SL_OK;
    SL_TRY(sl_acc_expect_map(r, section));
    for (size_t i = 0; i < section->value->n; i++) {
        const sl_node_pair *p = &section->value->pairs[i];
        const sl_node *v = p->value;
        const bool size_key = strstr(p->key, "_size") != NULL;
        if (!size_key || sl_node_is_null(v) ||
            (v->kind == SL_NODE_SCALAR && !strcmp(v->text, "1"))) {
            continue;
        }
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: %s.%s = %s: tensor, context and sequence parallelism are not "
                            "supported (this runtime is data-parallel); remove parallelism_config",
                            r->file, p->line, section->key, p->key,
                            v->kind == SL_NODE_SCALAR ? v->text : sl_node_kind_name(v));
    }
    return SL_OK;
}

/* Loads one named DeepSpeed config (inline mapping or a path) into cfg. */
static sl_status sl_acc_plan_into(sl_acc_reader *r, sl_config *cfg, const sl_node_pair *entry) {
    char prefix[300];
    snprintf(prefix, sizeof prefix, "deepspeed_configs.%.200s", entry->key);
    if (entry->value->kind == SL_NODE_MAP) {
        return sl_deepspeed_load(cfg, entry->value, r->file, prefix);
    }
    if (entry->value->kind != SL_NODE_SCALAR) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: %s: expected a DeepSpeed config (a mapping) or the path of a "
                            "DeepSpeed JSON file, found %s",
                            r->file, entry->line, prefix, sl_node_kind_name(entry->value));
    }
    char path[1024];
    SL_TRY(sl_config_resolve_path(r->file, entry->value->text, path, sizeof path));
    return sl_config_load_deepspeed_file(cfg, path);
}

/* Every named config is loaded into a scratch store, so that a broken "teacher" is reported even
 * when the "student" runs; the chosen one is then loaded into the real store. */
static sl_status sl_acc_plans(sl_acc_reader *r, const sl_node_pair *section) {
    SL_TRY(sl_acc_expect_map(r, section));
    const sl_node *plans = section->value;
    if (plans->n == 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: deepspeed_configs is empty; name at least one "
                            "DeepSpeed config",
                            r->file, section->line);
    }
    const sl_node_pair *chosen = r->plan_name ? NULL : &plans->pairs[0];
    for (size_t i = 0; i < plans->n; i++) {
        sl_config *scratch = NULL;
        SL_TRY(sl_config_create(&scratch));
        sl_status st = sl_acc_plan_into(r, scratch, &plans->pairs[i]);
        sl_config_destroy(scratch);
        SL_TRY(st);
        if (r->plan_name && !strcmp(plans->pairs[i].key, r->plan_name)) chosen = &plans->pairs[i];
    }
    if (!chosen) {
        char names[512] = "";
        size_t n = 0;
        for (size_t i = 0; i < plans->n && n < sizeof names; i++) {
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "",
                                  plans->pairs[i].key);
        }
        return sl_error_set(SL_ERR_CONFIG,
                            "plan_name = %s, but %s:%d deepspeed_configs has no such entry; "
                            "its plans: %s",
                            r->plan_name, r->file, section->line, names);
    }
    if (!r->plan_name) {
        char spelling[300];
        snprintf(spelling, sizeof spelling, "deepspeed_configs (first entry)");
        SL_TRY(
            sl_config_file_set(r->cfg, r->file, chosen->line, spelling, "plan_name", chosen->key));
    }
    SL_LOG_INFO("%s: DeepSpeed plan '%s' of deepspeed_configs", r->file, chosen->key);
    return sl_acc_plan_into(r, r->cfg, chosen);
}

static sl_status sl_acc_legacy_fp16(sl_acc_reader *r, const sl_node *root, const sl_node_pair *p) {
    if (sl_node_find(root, "mixed_precision")) {
        sl_notices_add(&r->notices, p->line, "fp16",
                       "the old spelling of mixed_precision, which the "
                       "file also gives");
        return SL_OK;
    }
    bool on = false;
    if (p->value->kind == SL_NODE_SCALAR) {
        const sl_config_key *k = sl_config_key_find("use_fsdp"); /* any bool key parses truth */
        SL_TRY(sl_config_check_value(k, p->value->text, "fp16"));
        on = sl_config_values_equal(k, p->value->text, "true");
    }
    return sl_config_file_set(r->cfg, r->file, p->line, "fp16 (old spelling of mixed_precision)",
                              "mixed_precision", on ? "fp16" : "no");
}

static sl_status sl_acc_row_load(sl_acc_reader *r, const sl_node *root, const sl_acc_row *row,
                                 const sl_node_pair *p) {
    switch (row->kind) {
    case SL_ACC_KEY: return sl_acc_scalar(r, p, p->key, p->key);
    case SL_ACC_NOTICE: sl_notices_add(&r->notices, p->line, p->key, row->why); return SL_OK;
    case SL_ACC_DISTRIBUTED: return sl_acc_distributed(r, p);
    case SL_ACC_PRECISION: return sl_acc_precision(r, p);
    case SL_ACC_LEGACY_FP16: return sl_acc_legacy_fp16(r, root, p);
    case SL_ACC_FSDP: return sl_node_is_null(p->value) ? SL_OK : sl_acc_fsdp(r, p);
    case SL_ACC_DEEPSPEED: return sl_node_is_null(p->value) ? SL_OK : sl_acc_deepspeed(r, p);
    case SL_ACC_PLANS: return SL_OK; /* after deepspeed_config, see sl_accelerate_load */
    case SL_ACC_MPIRUN: return sl_node_is_null(p->value) ? SL_OK : sl_acc_mpirun(r, p);
    case SL_ACC_PARALLELISM: return sl_acc_parallelism(r, p);
    }
    return SL_OK;
}

/* An unknown top-level key that is a key of a section gets told where it belongs. */
static const char *sl_acc_section_hint(const char *name) {
    const sl_config_key *k = sl_config_key_find(name);
    for (const char *const *d = sl_acc_ds_keys; *d; d++) {
        if (!strcmp(*d, name)) return "it belongs under deepspeed_config";
    }
    if (k && sl_config_key_family(k) == SL_FAMILY_FSDP) return "it belongs under fsdp_config";
    if (k) {
        return "it is a shardlab flag, not an Accelerate config key: pass it on the command line";
    }
    return NULL;
}

/* The DeepSpeed JSON the Accelerate file names, unless a flag or the environment named another
 * (those are loaded by whoever set them). */
static sl_status sl_acc_deepspeed_file(sl_acc_reader *r, const sl_node *root) {
    const sl_source *src = NULL;
    const char *named = sl_config_get(r->cfg, "deepspeed_config_file", &src);
    if (!named || src->kind != SL_SOURCE_FILE || strcmp(src->file, r->file) != 0) return SL_OK;
    const char *type = sl_config_get(r->cfg, "distributed_type", NULL);
    const char *use_ds = sl_config_get(r->cfg, "use_deepspeed", NULL);
    const sl_config_key *truth = sl_config_key_find("use_deepspeed");
    if (!(use_ds && sl_config_values_equal(truth, use_ds, "true")) &&
        !(type && !strcmp(type, "DEEPSPEED"))) {
        SL_LOG_INFO("%s:%d: deepspeed_config.deepspeed_config_file %s is not read: the "
                    "distributed_type is %s",
                    r->file, src->line, named, type ? type : "not DEEPSPEED");
        return SL_OK;
    }
    if (sl_node_find(root, "deepspeed_configs")) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: deepspeed_config.deepspeed_config_file and deepspeed_configs "
                            "both give the DeepSpeed config; keep one of them",
                            r->file, src->line);
    }
    char path[1024];
    SL_TRY(sl_config_resolve_path(r->file, named, path, sizeof path));
    return sl_config_load_deepspeed_file(r->cfg, path);
}

sl_status sl_accelerate_load(sl_config *cfg, const sl_node *root, const char *file,
                             const char *plan_name) {
    sl_acc_reader r = {.cfg = cfg, .file = file, .plan_name = plan_name, .notices.file = file};
    const char *known[SL_ACC_N_TOP + 1];
    for (size_t i = 0; i < SL_ACC_N_TOP; i++)
        known[i] = sl_acc_top[i].name;
    known[SL_ACC_N_TOP] = NULL;
    for (size_t i = 0; i < root->n; i++) {
        const sl_node_pair *p = &root->pairs[i];
        size_t j = 0;
        while (j < SL_ACC_N_TOP && strcmp(sl_acc_top[j].name, p->key) != 0)
            j++;
        if (j == SL_ACC_N_TOP) {
            return sl_config_file_unknown(file, p->line, "", p->key, known,
                                          sl_acc_section_hint(p->key));
        }
        SL_TRY(sl_acc_row_load(&r, root, &sl_acc_top[j], p));
    }
    sl_notices_flush(&r.notices);
    const sl_node_pair *plans = sl_node_find(root, "deepspeed_configs");
    if (plans) SL_TRY(sl_acc_plans(&r, plans));
    const sl_node_pair *env = sl_node_find(root, "compute_environment");
    if (env && env->value->kind == SL_NODE_SCALAR &&
        !strcmp(env->value->text, "AMAZON_SAGEMAKER")) {
        sl_notices_add(&r.notices, env->line, "compute_environment AMAZON_SAGEMAKER", sl_sagemaker);
        sl_notices_flush(&r.notices);
    }
    if (plan_name && !plans) {
        return sl_error_set(SL_ERR_CONFIG,
                            "plan_name = %s, but %s has no deepspeed_configs map of named plans",
                            plan_name, file);
    }
    return sl_acc_deepspeed_file(&r, root);
}
