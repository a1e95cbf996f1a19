/* Round trips: `shardlab config` answers -> file -> plan; a config store -> written file -> the
 * same plan; and convert-config A -> B -> A gives back A's plan for every strategy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config_tree.h"
#include "common/config_write.h"
#include "common/plan_diff.h"
#include "shardlab/log.h"
#include "tests/config/config_harness.h"
#include "tests/support/support.h"

static sl_plan *plan_ok(const char *flags) {
    sl_plan *plan = NULL;
    if (harness_plan(flags, &plan) != SL_OK) fail_msg("%s: %s", flags, sl_error_message());
    return plan;
}

static sl_plan *plan_of_file(const char *name, const char *more) {
    char flags[1024];
    snprintf(flags, sizeof flags, "--config_file %s/%s %s", harness_dir(), name, more);
    return plan_ok(flags);
}

static void assert_same_plan(const sl_plan *a, const sl_plan *b, const char *what) {
    sl_plan_difference d[64];
    const size_t n = sl_plan_diff(a, b, d, 64);
    if (n) {
        fail_msg("%s: %zu plan fields differ, first %s: %s vs %s", what, n, d[0].field, d[0].a,
                 d[0].b);
    }
}

/* ------------------------------------------------------------------ questionnaire */

typedef struct questionnaire_case {
    const char *answers;
    sl_dialect dialect;
    sl_strategy strategy;
    int world, machines, accum;
    sl_dtype compute;
} questionnaire_case;

static void test_questionnaire_on_a_pipe_writes_a_file_that_compiles(void **state) {
    (void)state;
    harness_write("answers_ds.json", "{\"bf16\": {\"enabled\": true},"
                                     " \"zero_optimization\": {\"stage\": 1}}");
    static const questionnaire_case cases[] = {
        /* multi-GPU, 1 machine, no debug, DeepSpeed without JSON, stage 3, offload both, k = 4,
         * clipping 0.5, 16-bit save, no zero.Init, 4 processes, all GPUs, bf16 */
        {"2\n\nno\nyes\nno\n3\ncpu\ncpu\n4\nyes\n0.5\nyes\nno\n4\n\nbf16\n", SL_DIALECT_DEEPSPEED,
         SL_STRATEGY_FULL_SHARD, 4, 1, 4, SL_DTYPE_BF16},
        /* multi-CPU, no mpirun, FSDP version 2 without resharding, FULL_STATE_DICT, fp16 */
        {"multi-CPU\n1\nno\nno\nno\nyes\n2\nno\nno\n1\nyes\nno\n2\nfp16\n", SL_DIALECT_FSDP2,
         SL_STRATEGY_SHARD_GRAD_OP, 2, 1, 1, SL_DTYPE_F16},
        /* multi-GPU on 2 machines, FSDP1 HYBRID_SHARD, names for the menus, bf16 */
        {"2\n2\n0\n10.0.0.2\n\nyes\nno\nno\nyes\n1\nHYBRID_SHARD\nno\n\nSHARDED_STATE_DICT\nno\n\n"
         "no\n\nno\n4\n\nbf16\n",
         SL_DIALECT_FSDP1, SL_STRATEGY_HYBRID_SHARD, 4, 2, 1, SL_DTYPE_BF16},
        /* no distributed training */
        {"0\nno\n", SL_DIALECT_DDP, SL_STRATEGY_NO_SHARD, 1, 1, 1, SL_DTYPE_F32},
        /* wrong answers are asked again; a DeepSpeed JSON skips the precision question */
        {"7\nmulti-GPU\nmany\n1\nmaybe\nno\nyes\nyes\nnot_there.json\nanswers_ds.json\n2\n\n",
         SL_DIALECT_DEEPSPEED, SL_STRATEGY_SHARD_OPTIM, 2, 1, 1, SL_DTYPE_BF16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const questionnaire_case *c = &cases[i];
        char args[256], name[64];
        snprintf(name, sizeof name, "asked_%zu.yaml", i);
        snprintf(args, sizeof args, "config --config_file %s", name);
        harness_run_result r = harness_run(args, c->answers, 1);
        if (r.status != 0) fail_msg("case %zu: exit %d:\n%s", i, r.status, r.out);
        sl_ts_expect(r.out, "configuration saved at");
        free(r.out);
        sl_plan *plan = plan_of_file(name, "");
        assert_int_equal(plan->dialect, c->dialect);
        assert_int_equal(plan->strategy, c->strategy);
        assert_int_equal(plan->world_size, c->world);
        assert_int_equal(plan->num_machines, c->machines);
        assert_int_equal(plan->grad_accum_steps, c->accum);
        assert_int_equal(plan->precision.param_dtype, c->compute);
        if (i == 0) {
            assert_true(plan->offload_params && plan->offload_optimizer);
            assert_true(plan->optim.max_grad_norm == 0.5);
        }
        sl_plan_destroy(plan);
    }
}

static void test_questionnaire_stops_when_input_ends(void **state) {
    (void)state;
    harness_run_result r = harness_run("config --config_file never.yaml", "2\n1\n", 1);
    assert_int_equal(r.status, 2);
    sl_ts_expect(r.out, "standard input ended before the question");
    sl_ts_expect(r.out, "errors?"); /* the question it stopped at: debug checks */
    free(r.out);
}

static void test_config_default_writes_one_process_and_never_overwrites(void **state) {
    (void)state;
    harness_run_result r =
        harness_run("config default --config_file dflt.yaml --mixed_precision bf16", NULL, 1);
    assert_int_equal(r.status, 0);
    free(r.out);
    sl_plan *plan = plan_of_file("dflt.yaml", "");
    assert_int_equal(plan->dialect, SL_DIALECT_DDP);
    assert_int_equal(plan->world_size, 1);
    assert_int_equal(plan->precision.param_dtype, SL_DTYPE_BF16);
    sl_plan_destroy(plan);
    r = harness_run("config default --config_file dflt.yaml", NULL, 1);
    assert_int_equal(r.status, 1);
    sl_ts_expect(r.out, "dflt.yaml exists");
    sl_ts_expect(r.out, "never overwrites");
    free(r.out);
}

/* ------------------------------------------------------------------ writer */

/* Writes the store of `flags` in `fmt`, reads it back with `reload_flags`, and requires the same
 * plan. */
static void check_written_round_trip(const char *flags, sl_config_out fmt, const char *name,
                                     const char *reload_flags) {
    sl_config *cfg = NULL;
    if (harness_config(flags, &cfg) != SL_OK) fail_msg("%s", sl_error_message());
    char path[512];
    snprintf(path, sizeof path, "%s/%s", harness_dir(), name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(sl_config_write(cfg, fmt, f, NULL), SL_OK);
    fclose(f);
    sl_config_destroy(cfg);
    sl_plan *a = plan_ok(flags);
    char again[1024];
    snprintf(again, sizeof again, "--config_file %s %s", path, reload_flags);
    sl_plan *b = plan_ok(again);
    assert_same_plan(a, b, name);
    sl_plan_destroy(a);
    sl_plan_destroy(b);
}

static void test_written_files_read_back_to_the_same_plan(void **state) {
    (void)state;
    check_written_round_trip("--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD --num_processes 4 "
                             "--num_machines 2 --mixed_precision bf16 --fsdp_backward_prefetch 1 "
                             "--fsdp_offload_params true --fsdp_reduce_dtype fp32",
                             SL_OUT_ACCELERATE_YAML, "w_fsdp1.yaml", "");
    check_written_round_trip("--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward false "
                             "--num_processes 2 --mixed_precision fp16",
                             SL_OUT_ACCELERATE_JSON, "w_fsdp2.json", "");
    check_written_round_trip("--use_deepspeed --zero_stage 1 --num_processes 2 "
                             "--mixed_precision bf16 --gradient_accumulation_steps 3 "
                             "--gradient_clipping 0.25 --offload_optimizer_device cpu",
                             SL_OUT_ACCELERATE_YAML, "w_ds.yaml", "");
    /* a DeepSpeed JSON: every DeepSpeed key, the optimizer and the schedule */
    check_written_round_trip(
        "--use_deepspeed --zero_stage 2 --num_processes 2 --mixed_precision fp16 "
        "--initial_scale_power 10 --hysteresis 4 --loss_scale_window 50 --communication_data_type "
        "fp32 --grad_accum_dtype fp32 --reduce_scatter false --lr 3e-4 --adam_beta2 0.95 "
        "--weight_decay 0.1 --adam_epsilon 1e-6 --lr_scheduler warmup_cosine --warmup_steps 10 "
        "--max_steps 50 --min_lr_ratio 0.1 --micro_batch_size 2 --gradient_accumulation_steps 2",
        SL_OUT_DEEPSPEED_JSON, "w_ds.json", "--use_deepspeed --num_processes 2");
}

/* ------------------------------------------------------------------ convert-config */

typedef struct convert_case {
    const char *name, *text, *to, *back;
} convert_case;

static const convert_case convert_cases[] = {
    {"c_full.yaml",
     "distributed_type: FSDP\nnum_processes: 4\nmixed_precision: bf16\nfsdp_config:\n"
     "  fsdp_version: 1\n  fsdp_sharding_strategy: FULL_SHARD\n  fsdp_backward_prefetch: "
     "BACKWARD_PRE\n  fsdp_state_dict_type: SHARDED_STATE_DICT\n  fsdp_use_orig_params: false\n",
     "deepspeed", "fsdp1"},
    {"c_sgo.yaml",
     "distributed_type: FSDP\nnum_processes: 2\nmixed_precision: fp16\nfsdp_config:\n"
     "  fsdp_version: 1\n  fsdp_sharding_strategy: SHARD_GRAD_OP\n  fsdp_offload_params: true\n",
     "deepspeed", "fsdp1"},
    {"c_noshard.yaml",
     "distributed_type: FSDP\nnum_processes: 2\nfsdp_config:\n  fsdp_version: 1\n"
     "  fsdp_sharding_strategy: NO_SHARD\n",
     "deepspeed", "fsdp1"},
    {"c_hybrid.yaml",
     "distributed_type: FSDP\nnum_processes: 4\nnum_machines: 2\nmixed_precision: bf16\n"
     "fsdp_config:\n  fsdp_version: 1\n  fsdp_sharding_strategy: HYBRID_SHARD\n",
     "deepspeed", "fsdp1"},
    {"c_hybrid2.yaml",
     "distributed_type: FSDP\nnum_processes: 8\nnum_machines: 2\nfsdp_config:\n"
     "  fsdp_version: 1\n  fsdp_sharding_strategy: HYBRID_SHARD_ZERO2\n",
     "deepspeed", "fsdp1"},
    {"c_fsdp2_full.yaml",
     "distributed_type: FSDP\nnum_processes: 2\nmixed_precision: bf16\nfsdp_config:\n"
     "  fsdp_version: 2\n  fsdp_reshard_after_forward: true\n",
     "deepspeed", "fsdp2"},
    {"c_fsdp2_sgo.yaml",
     "distributed_type: FSDP\nnum_processes: 4\nfsdp_config:\n  fsdp_version: 2\n"
     "  fsdp_reshard_after_forward: false\n  fsdp_offload_params: true\n",
     "deepspeed", "fsdp2"},
    {"c_z0.yaml",
     "distributed_type: DEEPSPEED\nnum_processes: 2\nmixed_precision: 'no'\n"
     "deepspeed_config:\n  zero_stage: 0\n",
     "fsdp1", "deepspeed"},
    {"c_z1.yaml",
     "distributed_type: DEEPSPEED\nnum_processes: 2\nmixed_precision: fp16\n"
     "deepspeed_config:\n  zero_stage: 1\n  gradient_accumulation_steps: 4\n"
     "  gradient_clipping: 0.5\n",
     "fsdp1", "deepspeed"},
    {"c_z2.yaml",
     "distributed_type: DEEPSPEED\nnum_processes: 4\nmixed_precision: bf16\n"
     "deepspeed_config:\n  zero_stage: 2\n  offload_optimizer_device: cpu\n",
     "fsdp2", "deepspeed"},
    {"c_z3.yaml",
     "distributed_type: DEEPSPEED\nnum_processes: 2\nmixed_precision: bf16\n"
     "deepspeed_config:\n  zero_stage: 3\n  offload_optimizer_device: cpu\n"
     "  offload_param_device: cpu\n  zero3_init_flag: true\n",
     "fsdp1", "deepspeed"},
    {"c_z3_json.yaml",
     "distributed_type: DEEPSPEED\nnum_processes: 2\ndeepspeed_config:\n"
     "  deepspeed_config_file: c_z3.json\n",
     "fsdp1", "deepspeed"},
};

static void test_convert_config_there_and_back_gives_the_same_plan(void **state) {
    (void)state;
    harness_write("c_z3.json", "{\"bf16\": {\"enabled\": true}, \"communication_data_type\": "
                               "\"fp32\",\n \"zero_optimization\": {\"stage\": 3,"
                               " \"stage3_param_persistence_threshold\": \"auto\"},"
                               " \"gradient_clipping\": \"auto\"}");
    for (size_t i = 0; i < sizeof convert_cases / sizeof convert_cases[0]; i++) {
        const convert_case *c = &convert_cases[i];
        harness_write(c->name, c->text);
        char args[512];
        snprintf(args, sizeof args, "convert-config %s --to %s -o there_%zu.yaml", c->name, c->to,
                 i);
        harness_run_result r = harness_run(args, NULL, 1);
        if (r.status != 0) fail_msg("%s: %s", args, r.out);
        free(r.out);
        snprintf(args, sizeof args, "convert-config there_%zu.yaml --to %s -o back_%zu.yaml", i,
                 c->back, i);
        r = harness_run(args, NULL, 1);
        if (r.status != 0) fail_msg("%s: %s", args, r.out);
        free(r.out);
        char back[64];
        snprintf(back, sizeof back, "back_%zu.yaml", i);
        sl_plan *a = plan_of_file(c->name, "");
        sl_plan *a2 = plan_of_file(back, "");
        assert_same_plan(a, a2, c->name);
        sl_plan_destroy(a);
        sl_plan_destroy(a2);
    }
}

/* The report lists what the plans say, not a fixed list: FSDP with an fp32-loaded model and bf16
 * keeps exact masters, DeepSpeed rounds them; an FSDP1 -> FSDP1 conversion differs nowhere. */
static void test_convert_config_reports_the_plan_differences(void **state) {
    (void)state;
    harness_write("c_full.yaml", convert_cases[0].text);
    harness_run_result r =
        harness_run("convert-config c_full.yaml --to deepspeed -o r.yaml", NULL, 1);
    assert_int_equal(r.status, 0);
    sl_ts_expect(r.out, "precision.master_init");
    sl_ts_expect(r.out, "EXACT");
    sl_ts_expect(r.out, "ROUNDED");
    sl_ts_expect(r.out, "precision.adam");
    sl_ts_expect(r.out, "DS_FUSED");
    sl_ts_expect(r.out, "layout.digest");
    free(r.out);
    r = harness_run("convert-config c_full.yaml --to fsdp1", NULL, 1);
    assert_int_equal(r.status, 0);
    sl_ts_expect(r.out, "no semantic difference");
    sl_ts_expect(r.out, "distributed_type: FSDP"); /* the YAML, on standard output */
    free(r.out);
    r = harness_run("convert-config c_full.yaml --to fsdp2 -o r2.yaml", NULL, 1);
    assert_int_equal(r.status, 0);
    sl_ts_expect(r.out, "dropped fsdp_backward_prefetch = BACKWARD_PRE");
    sl_ts_expect(r.out, "accelerate to-fsdp2");
    free(r.out);
    r = harness_run("convert-config c_full.yaml --to zero3", NULL, 1);
    assert_int_equal(r.status, 2);
    sl_ts_expect(r.out, "--to zero3");
    free(r.out);
}

int main(void) {
    sl_log_set_level(SL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_questionnaire_on_a_pipe_writes_a_file_that_compiles),
        cmocka_unit_test(test_questionnaire_stops_when_input_ends),
        cmocka_unit_test(test_config_default_writes_one_process_and_never_overwrites),
        cmocka_unit_test(test_written_files_read_back_to_the_same_plan),
        cmocka_unit_test(test_convert_config_there_and_back_gives_the_same_plan),
        cmocka_unit_test(test_convert_config_reports_the_plan_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
