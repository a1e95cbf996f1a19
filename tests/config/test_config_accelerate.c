/* Accelerate config files (YAML, and the JSON form): every key Accelerate writes lands in the
 * store with its file:line, the sections and aliases mean what Accelerate means, and what is
 * wrong is named with its place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardlab/config_file.h"
#include "shardlab/log.h"
#include "tests/config/config_harness.h"
#include "tests/support/support.h"

static sl_config *load_ok(const char *flags) {
    sl_config *cfg = NULL;
    if (harness_config(flags, &cfg) != SL_OK) fail_msg("%s: %s", flags, sl_error_message());
    return cfg;
}

static sl_plan *plan_ok(const char *flags) {
    sl_plan *plan = NULL;
    if (harness_plan(flags, &plan) != SL_OK) fail_msg("%s: %s", flags, sl_error_message());
    return plan;
}

static void assert_entry(const sl_config *cfg, const char *key, const char *value, int line,
                         const char *spelling) {
    const sl_source *src = NULL;
    const char *v = sl_config_get(cfg, key, &src);
    if (!v) fail_msg("%s is not in the store", key);
    assert_string_equal(v, value);
    assert_int_equal(src->kind, SL_SOURCE_FILE);
    assert_int_equal(src->line, line);
    assert_string_equal(src->spelling, spelling);
}

static const char fsdp_yaml[] = "compute_environment: LOCAL_MACHINE\n"         /* 1 */
                                "distributed_type: FSDP\n"                     /* 2 */
                                "fsdp_config:\n"                               /* 3 */
                                "  fsdp_sharding_strategy: SHARD_GRAD_OP\n"    /* 4 */
                                "  fsdp_backward_prefetch: BACKWARD_POST\n"    /* 5 */
                                "  fsdp_state_dict_type: SHARDED_STATE_DICT\n" /* 6 */
                                "  fsdp_version: 1\n"                          /* 7 */
                                "mixed_precision: bf16\n"                      /* 8 */
                                "num_processes: 4\n"                           /* 9 */
                                "main_process_port: 29501\n";                  /* 10 */

static void test_yaml_entries_carry_file_line_and_spelling(void **state) {
    (void)state;
    char flags[600];
    const char *path = harness_write("fsdp.yaml", fsdp_yaml);
    snprintf(flags, sizeof flags, "--config_file %s", path);
    sl_config *cfg = load_ok(flags);
    assert_entry(cfg, "distributed_type", "FSDP", 2, "distributed_type");
    assert_entry(cfg, "fsdp_sharding_strategy", "SHARD_GRAD_OP", 4,
                 "fsdp_config.fsdp_sharding_strategy");
    assert_entry(cfg, "mixed_precision", "bf16", 8, "mixed_precision");
    assert_entry(cfg, "main_process_port", "29501", 10, "main_process_port");
    const sl_source *src;
    sl_config_get(cfg, "num_processes", &src);
    assert_string_equal(src->file, path);
    char where[512];
    sl_source_describe(src, where, sizeof where);
    sl_ts_expect(where, "fsdp.yaml:9 (num_processes)");
    sl_config_destroy(cfg);

    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->dialect, SL_DIALECT_FSDP1);
    assert_int_equal(plan->strategy, SL_STRATEGY_SHARD_GRAD_OP);
    assert_int_equal(plan->backward_prefetch, 2);
    assert_int_equal(plan->world_size, 4);
    assert_int_equal(plan->precision.param_dtype, SL_DTYPE_BF16);
    sl_plan_destroy(plan);
}

/* Every key of the list is accepted: the top level, all of fsdp_config and all of
 * deepspeed_config. */
static void test_every_accelerate_key_is_accepted(void **state) {
    (void)state;
    harness_write("tiny_ds.json", "{\"zero_optimization\": {\"stage\": 2}}\n");
    const char *top =
        "compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nmixed_precision: fp16\n"
        "num_processes: 4\nnum_machines: 2\nmachine_rank: 1\nmain_process_ip: 10.1.2.3\n"
        "main_process_port: 29500\nrdzv_backend: c10d\nsame_network: false\ngpu_ids: 0,1\n"
        "use_cpu: false\ndebug: true\nenable_cpu_affinity: true\ndowncast_bf16: 'no'\n"
        "main_training_function: main\ndynamo_config:\n  dynamo_backend: INDUCTOR\n"
        "mpirun_config:\n  mpirun_hostfile: /etc/hosts.mpi\n";
    char text[4096], flags[600];
    snprintf(text, sizeof text,
             "%sfsdp_config:\n  fsdp_version: 1\n  fsdp_sharding_strategy: 4\n"
             "  fsdp_reshard_after_forward: true\n  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n"
             "  fsdp_transformer_layer_cls_to_wrap: GPT2Block\n  fsdp_min_num_params: 100000000\n"
             "  fsdp_backward_prefetch: NO_PREFETCH\n  fsdp_forward_prefetch: false\n"
             "  fsdp_state_dict_type: 3\n  fsdp_offload_params: false\n"
             "  fsdp_cpu_ram_efficient_loading: true\n  fsdp_sync_module_states: true\n"
             "  fsdp_use_orig_params: true\n  fsdp_activation_checkpointing: false\n"
             "deepspeed_config:\n  zero_stage: 3\n  offload_optimizer_device: cpu\n"
             "  offload_param_device: cpu\n  offload_optimizer_nvme_path: /nvme\n"
             "  offload_param_nvme_path: /nvme\n  zero3_init_flag: true\n"
             "  zero3_save_16bit_model: true\n  gradient_accumulation_steps: 2\n"
             "  gradient_clipping: 1.0\n  deepspeed_config_file: tiny_ds.json\n"
             "  deepspeed_multinode_launcher: standard\n  deepspeed_hostfile: /etc/hosts.ds\n",
             top);
    snprintf(flags, sizeof flags, "--config_file %s", harness_write("all.yaml", text));
    sl_config *cfg = load_ok(flags);
    static const char *const keys[] = {"compute_environment",
                                       "distributed_type",
                                       "mixed_precision",
                                       "num_processes",
                                       "num_machines",
                                       "machine_rank",
                                       "main_process_ip",
                                       "main_process_port",
                                       "rdzv_backend",
                                       "same_network",
                                       "gpu_ids",
                                       "use_cpu",
                                       "debug",
                                       "enable_cpu_affinity",
                                       "mpirun_hostfile",
                                       "fsdp_version",
                                       "fsdp_sharding_strategy",
                                       "fsdp_reshard_after_forward",
                                       "fsdp_auto_wrap_policy",
                                       "fsdp_transformer_layer_cls_to_wrap",
                                       "fsdp_min_num_params",
                                       "fsdp_backward_prefetch",
                                       "fsdp_forward_prefetch",
                                       "fsdp_state_dict_type",
                                       "fsdp_offload_params",
                                       "fsdp_cpu_ram_efficient_loading",
                                       "fsdp_sync_module_states",
                                       "fsdp_use_orig_params",
                                       "fsdp_activation_checkpointing",
                                       "zero_stage",
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
                                       NULL};
    for (const char *const *k = keys; *k; k++) {
        if (!sl_config_get(cfg, *k, NULL)) fail_msg("%s was not stored", *k);
    }
    assert_null(sl_config_get(cfg, "downcast_bf16", NULL)); /* TPU: a notice, not a key */
    /* distributed_type is FSDP: the DeepSpeed JSON the inactive section names is not read, so
     * zero_stage is the YAML's */
    assert_string_equal(sl_config_get(cfg, "zero_stage", NULL), "3");
    sl_config_destroy(cfg);
    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->strategy, SL_STRATEGY_HYBRID_SHARD);
    assert_int_equal(plan->num_machines, 2);
    assert_null(sl_config_get(plan->config, "zero_stage", NULL)); /* inactive section left out */
    sl_plan_destroy(plan);
}

/* Accelerate maps torch's enum numbers onto the names. */
static void test_fsdp_numeric_aliases_mean_the_named_values(void **state) {
    (void)state;
    static const struct {
        const char *strategy;
        sl_strategy expected;
    } cases[] = {{"1", SL_STRATEGY_FULL_SHARD},
                 {"2", SL_STRATEGY_SHARD_GRAD_OP},
                 {"3", SL_STRATEGY_NO_SHARD},
                 {"4", SL_STRATEGY_HYBRID_SHARD},
                 {"5", SL_STRATEGY_HYBRID_SHARD_ZERO2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[600], flags[600];
        snprintf(text, sizeof text,
                 "distributed_type: FSDP\nnum_processes: 4\nnum_machines: 2\nfsdp_config:\n"
                 "  fsdp_sharding_strategy: %s\n  fsdp_backward_prefetch: %d\n"
                 "  fsdp_state_dict_type: %d\n",
                 cases[i].strategy, (int)(i % 2) + 1, (int)(i % 3) + 1);
        snprintf(flags, sizeof flags, "--config_file %s", harness_write("alias.yaml", text));
        sl_plan *plan = plan_ok(flags);
        assert_int_equal(plan->strategy, cases[i].expected);
        assert_int_equal(plan->backward_prefetch, (int)(i % 2) + 1);
        static const char *const sd[] = {"FULL_STATE_DICT", "LOCAL_STATE_DICT",
                                         "SHARDED_STATE_DICT"};
        const char *got = NULL;
        assert_int_equal(sl_config_get_enum(plan->config, "fsdp_state_dict_type", NULL, &got),
                         SL_OK);
        assert_string_equal(got, sd[i % 3]);
        sl_plan_destroy(plan);
    }
    char flags[600];
    snprintf(flags, sizeof flags, "--config_file %s",
             harness_write("noprefetch.yaml", "distributed_type: FSDP\nfsdp_config:\n"
                                              "  fsdp_backward_prefetch: NO_PREFETCH\n"));
    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->backward_prefetch, 0);
    sl_plan_destroy(plan);
}

/* Accelerate prefixes fsdp_config keys written without fsdp_. */
static void test_fsdp_keys_without_prefix_get_it(void **state) {
    (void)state;
    char flags[600];
    const char *path = harness_write("noprefix.yaml", "distributed_type: FSDP\nnum_processes: 2\n"
                                                      "fsdp_config:\n"
                                                      "  sharding_strategy: SHARD_GRAD_OP\n");
    snprintf(flags, sizeof flags, "--config_file %s", path);
    sl_config *cfg = load_ok(flags);
    assert_entry(cfg, "fsdp_sharding_strategy", "SHARD_GRAD_OP", 4,
                 "fsdp_config.sharding_strategy");
    sl_config_destroy(cfg);
}

/* CLI flag > config file > defaults, and a use_* flag beats distributed_type. */
static void test_flags_beat_the_file(void **state) {
    (void)state;
    char flags[600];
    const char *path = harness_write("prec.yaml", fsdp_yaml);
    snprintf(flags, sizeof flags, "--mixed_precision fp16 --config_file %s --num_processes 2",
             path);
    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->precision.param_dtype, SL_DTYPE_F16);
    assert_int_equal(plan->world_size, 2);
    const sl_source *src;
    sl_config_get(plan->config, "mixed_precision", &src);
    assert_int_equal(src->kind, SL_SOURCE_FLAG);
    sl_plan_destroy(plan);

    snprintf(flags, sizeof flags, "--config_file %s --use_deepspeed", path);
    plan = plan_ok(flags);
    assert_int_equal(plan->dialect, SL_DIALECT_DEEPSPEED);
    assert_null(sl_config_get(plan->config, "fsdp_sharding_strategy", NULL));
    sl_plan_destroy(plan);
}

static void test_unknown_keys_name_file_line_and_nearest_key(void **state) {
    (void)state;
    static const struct {
        const char *name, *text;
        const char *needles[5];
    } cases[] = {
        {"typo_top.yaml",
         "distributed_type: 'NO'\nmixed_precison: bf16\n",
         {"typo_top.yaml:2", "unknown key 'mixed_precison'", "did you mean 'mixed_precision'",
          NULL}},
        {"typo_fsdp.yaml",
         "distributed_type: FSDP\nfsdp_config:\n  fsdp_sharding_stratgy: FULL_SHARD\n",
         {"typo_fsdp.yaml:3", "'fsdp_sharding_stratgy'", "under fsdp_config",
          "did you mean 'fsdp_sharding_strategy'", NULL}},
        {"typo_ds.yaml",
         "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stag: 3\n",
         {"typo_ds.yaml:3", "'zero_stag'", "under deepspeed_config", "did you mean 'zero_stage'",
          NULL}},
        {"misplaced.yaml",
         "distributed_type: DEEPSPEED\nzero_stage: 2\n",
         {"misplaced.yaml:2", "'zero_stage'", "belongs under deepspeed_config", NULL}},
        {"ds_json_key_in_yaml.yaml",
         "distributed_type: DEEPSPEED\ndeepspeed_config:\n  reduce_bucket_size: 5\n",
         {"ds_json_key_in_yaml.yaml:3", "'reduce_bucket_size'", "deepspeed_config_file", NULL}},
        {"mpirun.yaml",
         "distributed_type: MULTI_CPU\nmpirun_config:\n  hostfile: h\n",
         {"mpirun.yaml:3", "'hostfile'", "did you mean 'mpirun_hostfile'", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char flags[600];
        snprintf(flags, sizeof flags, "--config_file %s",
                 harness_write(cases[i].name, cases[i].text));
        harness_expect_error(flags, 0, cases[i].needles);
    }
}

static void test_wrong_types_and_values_list_what_is_allowed(void **state) {
    (void)state;
    static const struct {
        const char *name, *text;
        const char *needles[5];
    } cases[] = {
        {"t1.yaml",
         "distributed_type: MULTI_CPU\nnum_processes: four\n",
         {"num_processes", "t1.yaml:2", "expected an integer", "'four'", NULL}},
        {"t2.yaml",
         "distributed_type: FSDP\nfsdp_config:\n  fsdp_backward_prefetch: SOMETIMES\n",
         {"fsdp_backward_prefetch", "t2.yaml:3", "BACKWARD_PRE, BACKWARD_POST, NO_PREFETCH", NULL}},
        {"t3.yaml",
         "distributed_type: FSDP\nfsdp_config: [a, b]\n",
         {"t3.yaml:2", "fsdp_config", "expected a mapping", NULL}},
        {"t4.yaml",
         "distributed_type: FSDP\nfsdp_config:\n  fsdp_offload_params: maybe\n",
         {"fsdp_offload_params", "t4.yaml:3", "expected a boolean", NULL}},
        {"t5.yaml",
         "distributed_type: MULTI_NPU\n",
         {"t5.yaml:1", "MULTI_NPU", "NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED", NULL}},
        {"t6.yaml",
         "distributed_type: 'NO'\nmixed_precision: fp8\n",
         {"t6.yaml:2", "fp8", "no, fp16, bf16", NULL}},
        {"t7.yaml",
         "distributed_type: DEEPSPEED\ndeepspeed_config:\n  offload_param_device: nvme\n",
         {"offload_param_device", "t7.yaml:3", "'nvme'", "none, cpu", NULL}},
        {"t8.yaml",
         "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: auto\n",
         {"t8.yaml:3", "deepspeed_config.zero_stage", "\"auto\"", NULL}},
        {"t9.yaml",
         "distributed_type: FSDP\nnum_processes: 2\nparallelism_config:\n"
         "  parallelism_config_tp_size: 2\n",
         {"t9.yaml:4", "parallelism_config_tp_size", "not supported", NULL}},
        {"t10.yaml",
         "distributed_type: FSDP\nfsdp_config:\n  fsdp_ignored_modules: '.*lm_head'\n",
         {"t10.yaml:3", "fsdp_ignored_modules", "not supported", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char flags[600];
        snprintf(flags, sizeof flags, "--config_file %s",
                 harness_write(cases[i].name, cases[i].text));
        harness_expect_error(flags, 0, cases[i].needles);
    }
}

/* The JSON form Accelerate also reads, told apart from a DeepSpeed config by its keys. */
static void test_accelerate_json_form_is_read(void **state) {
    (void)state;
    char flags[600];
    const char *path = harness_write("acc.json", "{\n"
                                                 "  \"distributed_type\": \"FSDP\",\n"
                                                 "  \"fsdp_config\": {\n"
                                                 "    \"fsdp_version\": 2,\n"
                                                 "    \"fsdp_reshard_after_forward\": false\n"
                                                 "  },\n"
                                                 "  \"num_processes\": 2\n"
                                                 "}\n");
    snprintf(flags, sizeof flags, "--config_file %s", path);
    sl_config *cfg = load_ok(flags);
    assert_entry(cfg, "fsdp_reshard_after_forward", "false", 5,
                 "fsdp_config.fsdp_reshard_after_forward");
    sl_config_destroy(cfg);
    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->dialect, SL_DIALECT_FSDP2);
    assert_int_equal(plan->strategy, SL_STRATEGY_SHARD_GRAD_OP);
    sl_plan_destroy(plan);
}

/* Small spellings Accelerate's files carry: a bare `no` (YAML's false), the old `fp16: true`,
 * and FSDP1's strategy stored under fsdp_reshard_after_forward by accelerate config. */
static void test_accelerate_quirks_are_read_as_meant(void **state) {
    (void)state;
    char flags[600];
    snprintf(flags, sizeof flags, "--config_file %s",
             harness_write("bare_no.yaml", "distributed_type: 'NO'\nmixed_precision: no\n"));
    sl_config *cfg = load_ok(flags);
    assert_string_equal(sl_config_get(cfg, "mixed_precision", NULL), "no");
    sl_config_destroy(cfg);

    snprintf(flags, sizeof flags, "--config_file %s",
             harness_write("legacy.yaml", "distributed_type: 'NO'\nfp16: true\n"));
    cfg = load_ok(flags);
    assert_string_equal(sl_config_get(cfg, "mixed_precision", NULL), "fp16");
    sl_config_destroy(cfg);

    snprintf(flags, sizeof flags, "--config_file %s",
             harness_write("quirk.yaml", "distributed_type: FSDP\nnum_processes: 2\n"
                                         "fsdp_config:\n  fsdp_version: 1\n"
                                         "  fsdp_reshard_after_forward: SHARD_GRAD_OP\n"));
    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->strategy, SL_STRATEGY_SHARD_GRAD_OP);
    sl_plan_destroy(plan);
}

/* A file that keeps both sections switches with distributed_type, as with Accelerate. */
static void test_section_of_the_other_dialect_is_inactive(void **state) {
    (void)state;
    char flags[600];
    snprintf(flags, sizeof flags, "--config_file %s",
             harness_write("both.yaml", "distributed_type: DEEPSPEED\nnum_processes: 2\n"
                                        "deepspeed_config:\n  zero_stage: 1\n"
                                        "fsdp_config:\n  fsdp_sharding_strategy: FULL_SHARD\n"
                                        "  fsdp_offload_params: true\n"));
    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->dialect, SL_DIALECT_DEEPSPEED);
    assert_int_equal(plan->zero_stage, 1);
    assert_false(plan->offload_params);
    assert_null(sl_config_get(plan->config, "fsdp_offload_params", NULL));
    sl_plan_destroy(plan);
}

static const char multi_yaml[] = "distributed_type: DEEPSPEED\n"
                                 "num_processes: 2\n"
                                 "deepspeed_configs:\n"
                                 "  student:\n"
                                 "    zero_optimization: {stage: 2}\n"
                                 "    bf16: {enabled: true}\n"
                                 "  teacher: teacher.json\n";

static void test_named_plans_first_is_default_and_plan_name_picks(void **state) {
    (void)state;
    harness_write("teacher.json", "{\"zero_optimization\": {\"stage\": 3}, "
                                  "\"fp16\": {\"enabled\": true}}\n");
    const char *path = harness_write("multi.yaml", multi_yaml);
    char flags[600];
    snprintf(flags, sizeof flags, "--config_file %s", path);
    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->zero_stage, 2);
    assert_int_equal(plan->precision.param_dtype, SL_DTYPE_BF16);
    assert_string_equal(sl_config_get(plan->config, "plan_name", NULL), "student");
    sl_plan_destroy(plan);

    snprintf(flags, sizeof flags, "--config_file %s --plan_name teacher", path);
    plan = plan_ok(flags);
    assert_int_equal(plan->zero_stage, 3);
    assert_int_equal(plan->precision.param_dtype, SL_DTYPE_F16);
    sl_plan_destroy(plan);

    /* the API the engines will use: one store per named plan */
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    assert_int_equal(sl_config_load_file(cfg, path, "teacher"), SL_OK);
    assert_string_equal(sl_config_get(cfg, "zero_stage", NULL), "3");
    sl_config_destroy(cfg);

    char **names = NULL;
    size_t n = 0;
    assert_int_equal(sl_config_file_plan_names(path, &names, &n), SL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "student");
    assert_string_equal(names[1], "teacher");
    sl_config_plan_names_free(names, n);
}

static void test_named_plan_errors_name_the_plans_and_places(void **state) {
    (void)state;
    harness_write("teacher.json", "{\"zero_optimization\": {\"stage\": 3}}\n");
    char flags[600];
    snprintf(flags, sizeof flags, "--config_file %s --plan_name assistant",
             harness_write("multi2.yaml", multi_yaml));
    static const char *const unknown[] = {"plan_name = assistant", "student, teacher", NULL};
    harness_expect_error(flags, 0, unknown);

    /* a broken entry is reported even when another one is chosen */
    snprintf(flags, sizeof flags, "--config_file %s",
             harness_write("multi3.yaml", "distributed_type: DEEPSPEED\n"
                                          "deepspeed_configs:\n"
                                          "  student:\n"
                                          "    zero_optimization: {stage: 2}\n"
                                          "  teacher:\n"
                                          "    zero_optimisation: {stage: 3}\n"));
    static const char *const broken[] = {"multi3.yaml:6", "'zero_optimisation'",
                                         "deepspeed_configs.teacher",
                                         "did you mean 'zero_optimization'", NULL};
    harness_expect_error(flags, 0, broken);

    snprintf(flags, sizeof flags, "--config_file %s --plan_name teacher",
             harness_write("single.yaml", "distributed_type: DEEPSPEED\n"));
    static const char *const no_map[] = {"plan_name = teacher", "no deepspeed_configs", NULL};
    harness_expect_error(flags, 0, no_map);
}

/* deepspeed_config_file is tried as given, then beside the Accelerate file. */
static void test_deepspeed_file_is_found_beside_the_yaml(void **state) {
    (void)state;
    harness_write("beside.json", "{\"zero_optimization\": {\"stage\": 1}}\n");
    char flags[600];
    snprintf(flags, sizeof flags, "--config_file %s",
             harness_write("uses_beside.yaml", "distributed_type: DEEPSPEED\nnum_processes: 2\n"
                                               "deepspeed_config:\n"
                                               "  deepspeed_config_file: beside.json\n"));
    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->zero_stage, 1);
    const sl_source *src;
    sl_config_get(plan->config, "zero_stage", &src);
    sl_ts_expect(src->file, "beside.json");
    sl_plan_destroy(plan);

    snprintf(flags, sizeof flags, "--config_file %s",
             harness_write("missing_json.yaml", "distributed_type: DEEPSPEED\ndeepspeed_config:\n"
                                                "  deepspeed_config_file: nowhere.json\n"));
    sl_config *cfg = NULL;
    assert_int_equal(harness_config(flags, &cfg), SL_ERR_IO);
    sl_ts_expect(sl_error_message(), "nowhere.json");
    sl_ts_expect(sl_error_message(), "missing_json.yaml");
    sl_config_destroy(cfg);
}

/* Keys without meaning here are accepted with one line naming them. */
static void test_runtime_free_keys_get_a_notice(void **state) {
    (void)state;
    harness_write("tpu.yaml", "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\n"
                              "downcast_bf16: 'no'\ntpu_use_cluster: false\n"
                              "dynamo_config:\n  dynamo_backend: INDUCTOR\n"
                              "iam_role_name: role\n");
    harness_run_result r = harness_run("explain --config_file tpu.yaml --dtype_table", NULL, 1);
    assert_int_equal(r.status, 0);
    sl_ts_expect(r.out, "no effect on this runtime");
    sl_ts_expect(r.out, "downcast_bf16 (line 3), tpu_use_cluster (line 4)");
    sl_ts_expect(r.out, "dynamo_config (line 5)");
    sl_ts_expect(r.out, "iam_role_name (line 7)");
    free(r.out);
}

int main(void) {
    sl_log_set_level(SL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_entries_carry_file_line_and_spelling),
        cmocka_unit_test(test_every_accelerate_key_is_accepted),
        cmocka_unit_test(test_fsdp_numeric_aliases_mean_the_named_values),
        cmocka_unit_test(test_fsdp_keys_without_prefix_get_it),
        cmocka_unit_test(test_flags_beat_the_file),
        cmocka_unit_test(test_unknown_keys_name_file_line_and_nearest_key),
        cmocka_unit_test(test_wrong_types_and_values_list_what_is_allowed),
        cmocka_unit_test(test_accelerate_json_form_is_read),
        cmocka_unit_test(test_accelerate_quirks_are_read_as_meant),
        cmocka_unit_test(test_section_of_the_other_dialect_is_inactive),
        cmocka_unit_test(test_named_plans_first_is_default_and_plan_name_picks),
        cmocka_unit_test(test_named_plan_errors_name_the_plans_and_places),
        cmocka_unit_test(test_deepspeed_file_is_found_beside_the_yaml),
        cmocka_unit_test(test_runtime_free_keys_get_a_notice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
