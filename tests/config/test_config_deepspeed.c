/* DeepSpeed JSON configs: every key reaches its config key with the JSON path as its spelling,
 * every key that changes numerics reaches the plan, "auto" is resolved from the run (and what
 * cannot be resolved is named), and DeepSpeed's own defaults apply where the file is silent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardlab/log.h"
#include "tests/config/config_harness.h"
#include "tests/support/support.h"

static sl_plan *plan_ok(const char *flags) {
    sl_plan *plan = NULL;
    if (harness_plan(flags, &plan) != SL_OK) fail_msg("%s: %s", flags, sl_error_message());
    return plan;
}

static void assert_spelled(const sl_config *cfg, const char *key, const char *value,
                           const char *spelling, int line) {
    const sl_source *src = NULL;
    const char *v = sl_config_get(cfg, key, &src);
    if (!v) fail_msg("%s (%s) is not in the store", key, spelling);
    assert_string_equal(v, value);
    assert_string_equal(src->spelling, spelling);
    assert_int_equal(src->line, line);
}

static const char full_json[] =
    "{\n"                                                             /* 1 */
    "  \"fp16\": {\n"                                                 /* 2 */
    "    \"enabled\": true,\n"                                        /* 3 */
    "    \"loss_scale\": 0,\n"                                        /* 4 */
    "    \"initial_scale_power\": 12,\n"                              /* 5 */
    "    \"loss_scale_window\": 500,\n"                               /* 6 */
    "    \"hysteresis\": 3,\n"                                        /* 7 */
    "    \"consecutive_hysteresis\": true,\n"                         /* 8 */
    "    \"min_loss_scale\": 2\n"                                     /* 9 */
    "  },\n"                                                          /* 10 */
    "  \"bf16\": {\"enabled\": false},\n"                             /* 11 */
    "  \"communication_data_type\": \"fp32\",\n"                      /* 12 */
    "  \"data_types\": {\"grad_accum_dtype\": \"fp32\"},\n"           /* 13 */
    "  \"zero_optimization\": {\n"                                    /* 14 */
    "    \"stage\": 3,\n"                                             /* 15 */
    "    \"offload_optimizer\": {\"device\": \"cpu\"},\n"             /* 16 */
    "    \"offload_param\": {\"device\": \"cpu\"},\n"                 /* 17 */
    "    \"reduce_bucket_size\": 5e7,\n"                              /* 18 */
    "    \"allgather_bucket_size\": 5e7,\n"                           /* 19 */
    "    \"overlap_comm\": false,\n"                                  /* 20 */
    "    \"contiguous_gradients\": false,\n"                          /* 21 */
    "    \"reduce_scatter\": true,\n"                                 /* 22 */
    "    \"stage3_prefetch_bucket_size\": 1e6,\n"                     /* 23 */
    "    \"stage3_param_persistence_threshold\": 200,\n"              /* 24 */
    "    \"stage3_max_live_parameters\": 1e8,\n"                      /* 25 */
    "    \"stage3_max_reuse_distance\": 1e8,\n"                       /* 26 */
    "    \"stage3_gather_16bit_weights_on_model_save\": true,\n"      /* 27 */
    "    \"zero_hpz_partition_size\": 2\n"                            /* 28 */
    "  },\n"                                                          /* 29 */
    "  \"gradient_accumulation_steps\": 2,\n"                         /* 30 */
    "  \"gradient_clipping\": 0.5,\n"                                 /* 31 */
    "  \"train_batch_size\": 24,\n"                                   /* 32 */
    "  \"train_micro_batch_size_per_gpu\": 3,\n"                      /* 33 */
    "  \"optimizer\": {\"type\": \"Adam\", \"params\": {\n"           /* 34 */
    "    \"lr\": 2e-4, \"betas\": [0.8, 0.95], \"eps\": 1e-6,\n"      /* 35 */
    "    \"weight_decay\": 0.05, \"adam_w_mode\": true}},\n"          /* 36 */
    "  \"scheduler\": {\"type\": \"WarmupCosineLR\", \"params\": {\n" /* 37 */
    "    \"warmup_num_steps\": 5, \"warmup_type\": \"linear\",\n"     /* 38 */
    "    \"total_num_steps\": 40, \"cos_min_ratio\": 0.1}},\n"        /* 39 */
    "  \"steps_per_print\": 100,\n"                                   /* 40 */
    "  \"wall_clock_breakdown\": true\n"                              /* 41 */
    "}\n";

static void test_every_deepspeed_key_lands_under_its_config_key(void **state) {
    (void)state;
    char flags[600];
    snprintf(flags, sizeof flags, "--use_deepspeed --deepspeed_config_file %s",
             harness_write("full.json", full_json));
    sl_config *cfg = NULL;
    if (harness_config(flags, &cfg) != SL_OK) fail_msg("%s", sl_error_message());
    static const struct {
        const char *key, *value, *spelling;
        int line;
    } expected[] = {
        {"fp16_enabled", "true", "fp16.enabled", 3},
        {"loss_scale", "0", "fp16.loss_scale", 4},
        {"initial_scale_power", "12", "fp16.initial_scale_power", 5},
        {"loss_scale_window", "500", "fp16.loss_scale_window", 6},
        {"hysteresis", "3", "fp16.hysteresis", 7},
        {"consecutive_hysteresis", "true", "fp16.consecutive_hysteresis", 8},
        {"min_loss_scale", "2", "fp16.min_loss_scale", 9},
        {"bf16_enabled", "false", "bf16.enabled", 11},
        {"communication_data_type", "fp32", "communication_data_type", 12},
        {"grad_accum_dtype", "fp32", "data_types.grad_accum_dtype", 13},
        {"zero_stage", "3", "zero_optimization.stage", 15},
        {"offload_optimizer_device", "cpu", "zero_optimization.offload_optimizer.device", 16},
        {"offload_param_device", "cpu", "zero_optimization.offload_param.device", 17},
        {"reduce_bucket_size", "5e7", "zero_optimization.reduce_bucket_size", 18},
        {"allgather_bucket_size", "5e7", "zero_optimization.allgather_bucket_size", 19},
        {"overlap_comm", "false", "zero_optimization.overlap_comm", 20},
        {"contiguous_gradients", "false", "zero_optimization.contiguous_gradients", 21},
        {"reduce_scatter", "true", "zero_optimization.reduce_scatter", 22},
        {"stage3_prefetch_bucket_size", "1e6", "zero_optimization.stage3_prefetch_bucket_size", 23},
        {"stage3_param_persistence_threshold", "200",
         "zero_optimization.stage3_param_persistence_threshold", 24},
        {"stage3_max_live_parameters", "1e8", "zero_optimization.stage3_max_live_parameters", 25},
        {"stage3_max_reuse_distance", "1e8", "zero_optimization.stage3_max_reuse_distance", 26},
        {"zero3_save_16bit_model", "true",
         "zero_optimization.stage3_gather_16bit_weights_on_model_save", 27},
        {"zero_hpz_partition_size", "2", "zero_optimization.zero_hpz_partition_size", 28},
        {"gradient_accumulation_steps", "2", "gradient_accumulation_steps", 30},
        {"gradient_clipping", "0.5", "gradient_clipping", 31},
        {"train_batch_size", "24", "train_batch_size", 32},
        {"micro_batch_size", "3", "train_micro_batch_size_per_gpu", 33},
        {"optimizer_type", "Adam", "optimizer.type", 34},
        {"lr", "2e-4", "optimizer.params.lr", 35},
        {"adam_beta1", "0.8", "optimizer.params.betas", 35},
        {"adam_beta2", "0.95", "optimizer.params.betas", 35},
        {"adam_epsilon", "1e-6", "optimizer.params.eps", 35},
        {"weight_decay", "0.05", "optimizer.params.weight_decay", 36},
        {"adam_w_mode", "true", "optimizer.params.adam_w_mode", 36},
        {"lr_scheduler", "WarmupCosineLR", "scheduler.type", 37},
        {"warmup_steps", "5", "scheduler.params.warmup_num_steps", 38},
        {"warmup_type", "linear", "scheduler.params.warmup_type", 38},
        {"max_steps", "40", "scheduler.params.total_num_steps", 39},
        {"min_lr_ratio", "0.1", "scheduler.params.cos_min_ratio", 39},
        {"steps_per_print", "100", "steps_per_print", 40},
        {"wall_clock_breakdown", "true", "wall_clock_breakdown", 41},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        assert_spelled(cfg, expected[i].key, expected[i].value, expected[i].spelling,
                       expected[i].line);
    }
    sl_config_destroy(cfg);
}

/* The keys that change what a step computes change the plan. */
static void test_numeric_deepspeed_keys_reach_the_plan(void **state) {
    (void)state;
    char flags[600];
    snprintf(flags, sizeof flags, "--use_deepspeed --num_processes 4 --deepspeed_config_file %s",
             harness_write("full.json", full_json));
    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->zero_stage, 3);
    assert_int_equal(plan->precision.param_dtype, SL_DTYPE_F16);
    assert_int_equal(plan->precision.reduce_dtype, SL_DTYPE_F32);
    assert_int_equal(plan->precision.accum_dtype, SL_DTYPE_F32);
    assert_int_equal(plan->precision.loss_scale, SL_SCALER_ZERO_DYNAMIC);
    assert_true(plan->scaler.init_scale == 4096.0); /* 2^12 */
    assert_int_equal(plan->scaler.growth_interval, 500);
    assert_int_equal(plan->scaler.hysteresis, 3);
    assert_true(plan->scaler.consecutive_hysteresis);
    assert_true(plan->scaler.min_scale == 2.0);
    assert_true(plan->offload_params && plan->offload_optimizer);
    assert_int_equal(plan->persistence_threshold, 200);
    assert_int_equal(plan->micro_batch_size, 3);
    assert_int_equal(plan->grad_accum_steps, 2); /* 24 = 3 x 2 x 4 */
    assert_true(plan->optim.lr == 2e-4 && plan->optim.beta1 == 0.8 && plan->optim.beta2 == 0.95);
    assert_true(plan->optim.eps == 1e-6 && plan->optim.weight_decay == 0.05);
    assert_true(plan->optim.max_grad_norm == 0.5);
    assert_int_equal(plan->optim.schedule, SL_LR_WARMUP_COSINE);
    assert_int_equal(plan->optim.warmup_steps, 5);
    assert_int_equal(plan->steps, 40);
    assert_true(plan->optim.min_lr_ratio == 0.1);
    assert_int_equal(plan->precision.adam, SL_ADAM_DS_FUSED);
    sl_plan_destroy(plan);

    /* torch_adam steps torch.optim.AdamW; reduce_scatter false all-reduces then scales */
    snprintf(flags, sizeof flags, "--use_deepspeed --num_processes 2 --deepspeed_config_file %s",
             harness_write("torch_adam.json",
                           "{\"zero_optimization\": {\"stage\": 2, \"reduce_scatter\": false},"
                           " \"optimizer\": {\"type\": \"AdamW\","
                           " \"params\": {\"torch_adam\": true}}}"));
    plan = plan_ok(flags);
    assert_int_equal(plan->precision.adam, SL_ADAM_TORCH);
    assert_true(plan->optim.weight_decay == 0.01); /* torch.optim.AdamW's default */
    assert_int_equal(plan->precision.grad_divide, SL_DIVIDE_POST);
    sl_plan_destroy(plan);
}

static const char auto_json[] = "{\n"
                                "  \"bf16\": {\"enabled\": \"auto\"},\n"
                                "  \"zero_optimization\": {\n"
                                "    \"stage\": 3,\n"
                                "    \"reduce_bucket_size\": \"auto\",\n"
                                "    \"stage3_prefetch_bucket_size\": \"auto\",\n"
                                "    \"stage3_param_persistence_threshold\": \"auto\"\n"
                                "  },\n"
                                "  \"gradient_accumulation_steps\": \"auto\",\n"
                                "  \"gradient_clipping\": \"auto\",\n"
                                "  \"train_batch_size\": \"auto\",\n"
                                "  \"train_micro_batch_size_per_gpu\": \"auto\"\n"
                                "}\n";

/* Accelerate's _prepare_deepspeed rules: hidden size h = 64 for gpt-tiny. */
static void test_auto_values_are_resolved_from_the_run(void **state) {
    (void)state;
    char flags[600];
    snprintf(flags, sizeof flags,
             "--use_deepspeed --num_processes 2 --micro_batch_size 8 --mixed_precision bf16 "
             "--gradient_accumulation_steps 2 --deepspeed_config_file %s",
             harness_write("auto.json", auto_json));
    sl_plan *plan = plan_ok(flags);
    static const struct {
        const char *key, *value;
    } expected[] = {{"train_batch_size", "32"},                    /* 8 x 2 x 2 */
                    {"reduce_bucket_size", "4096"},                /* h*h */
                    {"stage3_prefetch_bucket_size", "3686"},       /* floor(0.9*h*h) */
                    {"stage3_param_persistence_threshold", "640"}, /* 10*h */
                    {"gradient_clipping", "1.0"},
                    {"bf16_enabled", "true"}};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const sl_source *src;
        const char *v = sl_config_get(plan->config, expected[i].key, &src);
        if (!v) fail_msg("%s not resolved", expected[i].key);
        assert_string_equal(v, expected[i].value);
        sl_ts_expect(src->spelling, ": auto");
        assert_int_equal(src->kind, SL_SOURCE_FILE);
    }
    assert_int_equal(plan->persistence_threshold, 640);
    assert_int_equal(plan->micro_batch_size, 8); /* the flag, not the file's "auto" */
    assert_int_equal(plan->precision.param_dtype, SL_DTYPE_BF16);
    assert_true(plan->optim.max_grad_norm == 1.0);
    sl_plan_destroy(plan);

    /* the resolutions are printed */
    harness_write("auto.json", auto_json);
    harness_run_result r = harness_run("explain --use_deepspeed --num_processes 2 "
                                       "--deepspeed_config_file auto.json --dtype_table",
                                       NULL, 1);
    assert_int_equal(r.status, 0);
    sl_ts_expect(r.out, "auto.json:11 (train_batch_size): \"auto\" resolved: "
                        "train_batch_size = 8");
    sl_ts_expect(r.out, "\"auto\" resolved: micro_batch_size = 4");
    free(r.out);
}

static void test_deepspeed_errors_name_the_key_and_place(void **state) {
    (void)state;
    static const struct {
        const char *name, *text;
        const char *needles[5];
    } cases[] = {
        {"live_auto.json",
         "{\"zero_optimization\": {\"stage\": 3,\n"
         " \"stage3_max_live_parameters\": \"auto\"}}",
         {"live_auto.json:2", "zero_optimization.stage3_max_live_parameters", "\"auto\"",
          "cannot be resolved", NULL}},
        {"prescale.json",
         "{\"prescale_gradients\": true}",
         {"prescale.json:1", "prescale_gradients", "only DeepSpeed's default (false)", NULL}},
        {"amsgrad.json",
         "{\"optimizer\": {\"type\": \"Adam\",\n \"params\": {\"amsgrad\": true}}}",
         {"amsgrad.json:2", "optimizer.params.amsgrad", NULL}},
        {"quant.json",
         "{\"zero_optimization\": {\"stage\": 3, \"zero_quantized_weights\": true}}",
         {"quant.json:1", "zero_optimization.zero_quantized_weights", NULL}},
        {"typo.json",
         "{\"zero_optimization\": {\"stage\": 2,\n \"reduce_bucket_sise\": 5}}",
         {"typo.json:2", "'reduce_bucket_sise'", "under zero_optimization",
          "did you mean 'reduce_bucket_size'", NULL}},
        {"stage_text.json",
         "{\"zero_optimization\": {\n \"stage\": \"three\"}}",
         {"zero_stage", "stage_text.json:2 (zero_optimization.stage)", "'three'", NULL}},
        {"betas.json",
         "{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\n \"betas\": [0.9]}}}",
         {"betas.json:2", "optimizer.params.betas", "[beta1, beta2]", NULL}},
        {"fp16_bool.json",
         "{\"fp16\": true}",
         {"fp16_bool.json:1", "fp16", "expected an object", NULL}},
        {"no_type.json",
         "{\"optimizer\": {\"params\": {\"lr\": 1e-3}}}",
         {"no_type.json:1", "optimizer has no \"type\"", NULL}},
        {"lamb.json",
         "{\"optimizer\": {\"type\": \"Lamb\"}}",
         {"optimizer_type", "lamb.json:1 (optimizer.type)", "'Lamb'", "AdamW, Adam", NULL}},
        {"decay_total.json",
         "{\"scheduler\": {\"type\": \"WarmupDecayLR\",\n"
         " \"params\": {\"warmup_num_steps\": 0}}}",
         {"decay_total.json:1", "WarmupDecayLR", "total_num_steps", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char flags[600];
        snprintf(flags, sizeof flags, "--use_deepspeed --deepspeed_config_file %s",
                 harness_write(cases[i].name, cases[i].text));
        harness_expect_error(flags, 0, cases[i].needles);
    }
}

/* What the plan cannot represent is an error naming the key, not an approximation. */
static void test_unrepresentable_optimizer_and_schedule_settings_are_errors(void **state) {
    (void)state;
    static const struct {
        const char *name, *text;
        const char *needles[4];
    } cases[] = {
        /* DeepSpeed's default warmup is logarithmic; shardlab's is linear */
        {"log.json",
         "{\"scheduler\": {\"type\": \"WarmupLR\",\n"
         " \"params\": {\"warmup_num_steps\": 10, \"warmup_max_lr\": 1e-3}}}",
         {"warmup_type = log",
          "log.json:1 (scheduler.params.warmup_type absent: DeepSpeed's "
          "default)",
          NULL}},
        {"minlr.json",
         "{\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_type\": "
         "\"linear\",\n \"warmup_min_lr\": 1e-5, \"warmup_max_lr\": 1e-3}}}",
         {"warmup_min_lr", "minlr.json:2", NULL}},
        /* Adam with L2 regularisation (adam_w_mode false) */
        {"l2.json",
         "{\"optimizer\": {\"type\": \"Adam\", \"params\": {\n"
         " \"adam_w_mode\": false, \"weight_decay\": 0.1}}}",
         {"adam_w_mode = false", "l2.json:2", "weight_decay", NULL}},
        /* WarmupLR's peak defaults to 0.001 in DeepSpeed, whatever the optimizer's lr */
        {"peak.json",
         "{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 3e-4}},\n"
         " \"scheduler\": {\"type\": \"WarmupLR\", \"params\": "
         "{\"warmup_type\": \"linear\"}}}",
         {"lr is given twice", "peak.json:1 (optimizer.params.lr)",
          "scheduler.params.warmup_max_lr absent", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char flags[600];
        snprintf(flags, sizeof flags, "--use_deepspeed --deepspeed_config_file %s",
                 harness_write(cases[i].name, cases[i].text));
        harness_expect_error(flags, 0, cases[i].needles);
    }
}

/* Without zero_optimization DeepSpeed runs stage 0; "bfloat16" is bf16's older name; monitoring
 * sections are accepted. */
static void test_deepspeed_defaults_and_old_spellings(void **state) {
    (void)state;
    char flags[600];
    snprintf(flags, sizeof flags, "--use_deepspeed --num_processes 2 --deepspeed_config_file %s",
             harness_write("plain.json", "{\"bfloat16\": {\"enabled\": true},\n"
                                         " \"tensorboard\": {\"enabled\": true},\n"
                                         " \"flops_profiler\": {\"enabled\": false}}"));
    sl_plan *plan = plan_ok(flags);
    assert_int_equal(plan->zero_stage, 0);
    assert_int_equal(plan->precision.param_dtype, SL_DTYPE_BF16);
    const sl_source *src;
    sl_config_get(plan->config, "zero_stage", &src);
    sl_ts_expect(src->spelling, "zero_optimization.stage absent: DeepSpeed's default");
    sl_config_get(plan->config, "bf16_enabled", &src);
    assert_string_equal(src->spelling, "bfloat16.enabled");
    sl_plan_destroy(plan);
}

/* A bare DeepSpeed file needs --use_deepspeed, as the usage says. */
static void test_bare_deepspeed_file_without_use_deepspeed_is_an_error(void **state) {
    (void)state;
    char flags[600];
    snprintf(flags, sizeof flags, "--deepspeed_config_file %s",
             harness_write("bare.json", "{\"zero_optimization\": {\"stage\": 2}}"));
    static const char *const needles[] = {"deepspeed_config_file", "--use_deepspeed", NULL};
    harness_expect_error(flags, 0, needles);
}

int main(void) {
    sl_log_set_level(SL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_deepspeed_key_lands_under_its_config_key),
        cmocka_unit_test(test_numeric_deepspeed_keys_reach_the_plan),
        cmocka_unit_test(test_auto_values_are_resolved_from_the_run),
        cmocka_unit_test(test_deepspeed_errors_name_the_key_and_place),
        cmocka_unit_test(test_unrepresentable_optimizer_and_schedule_settings_are_errors),
        cmocka_unit_test(test_deepspeed_defaults_and_old_spellings),
        cmocka_unit_test(test_bare_deepspeed_file_without_use_deepspeed_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
