/* Conflicts between keys, files and flags: each is an error that names both keys and where each
 * was set (file:line, or the flag), as the issue lists them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "shardlab/log.h"
#include "tests/config/config_harness.h"
#include "tests/support/support.h"

typedef struct conflict_case {
    const char *what;
    const char *files[2][2]; /* {name, text}: the first is given with --config_file */
    const char *flags;       /* more flags (may be "") */
    const char *needles[6];
} conflict_case;

static void run_case(const conflict_case *c) {
    const char *path = harness_write(c->files[0][0], c->files[0][1]);
    if (c->files[1][0]) harness_write(c->files[1][0], c->files[1][1]);
    char flags[1024];
    snprintf(flags, sizeof flags, "--config_file %s %s", path, c->flags);
    harness_expect_error(flags, 0, c->needles);
}

static void test_mixed_precision_in_accelerate_file_with_deepspeed_json(void **state) {
    (void)state;
    const conflict_case c = {
        "mixed_precision beside deepspeed_config_file",
        {{"mp.yaml", "distributed_type: DEEPSPEED\n"
                     "mixed_precision: bf16\n"
                     "deepspeed_config:\n"
                     "  deepspeed_config_file: mp.json\n"},
         {"mp.json", "{\"zero_optimization\": {\"stage\": 2}}"}},
        "",
        {"mixed_precision (from ", "mp.yaml:2", "deepspeed_config_file (from ", "mp.yaml:4", NULL}};
    run_case(&c);
}

static void test_dtype_contradicting_the_enabled_json_section(void **state) {
    (void)state;
    const conflict_case c = {"--mixed_precision fp16 against bf16.enabled",
                             {{"dt.yaml", "distributed_type: DEEPSPEED\n"
                                          "deepspeed_config:\n"
                                          "  deepspeed_config_file: dt.json\n"},
                              {"dt.json", "{\n  \"bf16\": {\"enabled\": true},\n"
                                          "  \"zero_optimization\": {\"stage\": 2}\n}"}},
                             "--mixed_precision fp16",
                             {"mixed_precision = fp16 (from --mixed_precision)",
                              "bf16_enabled = true", "dt.json:2 (bf16.enabled)", NULL}};
    run_case(&c);
    const conflict_case off = {"--mixed_precision bf16 against bf16.enabled false",
                               {{"off.yaml", "distributed_type: DEEPSPEED\n"
                                             "deepspeed_config:\n"
                                             "  deepspeed_config_file: off.json\n"},
                                {"off.json", "{\"bf16\": {\"enabled\": false}}"}},
                               "--mixed_precision bf16",
                               {"mixed_precision = bf16 (from --mixed_precision)",
                                "bf16_enabled = false", "off.json:1 (bf16.enabled)", NULL}};
    run_case(&off);
}

static void test_fp16_and_bf16_both_enabled(void **state) {
    (void)state;
    const conflict_case c = {
        "fp16 and bf16",
        {{"both.json", "{\n  \"fp16\": {\"enabled\": true},\n  \"bf16\": {\"enabled\": true}\n}"},
         {NULL, NULL}},
        "--use_deepspeed",
        {"fp16_enabled (from ", "both.json:2 (fp16.enabled)", "bf16_enabled (from ",
         "both.json:3 (bf16.enabled)", NULL}};
    run_case(&c);
}

static void test_accumulation_steps_differ_between_the_two_files(void **state) {
    (void)state;
    const conflict_case c = {"gradient_accumulation_steps",
                             {{"ga.yaml", "distributed_type: DEEPSPEED\n"
                                          "deepspeed_config:\n"
                                          "  gradient_accumulation_steps: 4\n"
                                          "  deepspeed_config_file: ga.json\n"},
                              {"ga.json", "{\n  \"gradient_accumulation_steps\": 8\n}"}},
                             "",
                             {"gradient_accumulation_steps is given twice", "4 at ", "ga.yaml:3",
                              "8 at ", "ga.json:2", NULL}};
    run_case(&c);
}

/* "auto" in one file yields to the other's value; equal values agree. */
static void test_auto_and_equal_values_do_not_conflict(void **state) {
    (void)state;
    harness_write("ga_auto.json", "{\"gradient_accumulation_steps\": \"auto\",\n"
                                  " \"zero_optimization\": {\"stage\": 2}}");
    const char *path = harness_write("ga_ok.yaml", "distributed_type: DEEPSPEED\n"
                                                   "num_processes: 2\n"
                                                   "deepspeed_config:\n"
                                                   "  gradient_accumulation_steps: 4\n"
                                                   "  zero_stage: 2\n"
                                                   "  deepspeed_config_file: ga_auto.json\n");
    char flags[600];
    snprintf(flags, sizeof flags, "--config_file %s", path);
    sl_plan *plan = NULL;
    if (harness_plan(flags, &plan) != SL_OK) fail_msg("%s", sl_error_message());
    assert_int_equal(plan->grad_accum_steps, 4);
    assert_int_equal(plan->zero_stage, 2);
    const sl_source *src;
    sl_config_get(plan->config, "gradient_accumulation_steps", &src);
    sl_ts_expect(src->file, "ga_ok.yaml");
    sl_plan_destroy(plan);
}

static void test_train_batch_size_must_be_micro_x_accumulation_x_world(void **state) {
    (void)state;
    const conflict_case c = {
        "train_batch_size",
        {{"tbs.json", "{\n  \"train_batch_size\": 10,\n  \"train_micro_batch_size_per_gpu\": 4,\n"
                      "  \"gradient_accumulation_steps\": 1\n}"},
         {NULL, NULL}},
        "--use_deepspeed --num_processes 2",
        {"train_batch_size = 10 (from ", "tbs.json:2", "micro_batch_size 4 (from ", "tbs.json:3",
         "num_processes 2 (from --num_processes)", NULL}};
    run_case(&c);
    const conflict_case indivisible = {
        "train_batch_size not a multiple",
        {{"tbs2.json", "{\"train_batch_size\": 10,\n \"train_micro_batch_size_per_gpu\": 4}"},
         {NULL, NULL}},
        "--use_deepspeed --num_processes 2",
        {"train_batch_size = 10", "tbs2.json:1", "whole number of accumulation steps", NULL}};
    run_case(&indivisible);
}

static void test_ram_efficient_loading_needs_sync_module_states(void **state) {
    (void)state;
    const conflict_case c = {"cpu_ram_efficient_loading",
                             {{"ram.yaml", "distributed_type: FSDP\n"
                                           "fsdp_config:\n"
                                           "  fsdp_version: 1\n"
                                           "  fsdp_cpu_ram_efficient_loading: true\n"
                                           "  fsdp_sync_module_states: false\n"},
                              {NULL, NULL}},
                             "",
                             {"fsdp_cpu_ram_efficient_loading = true (from ", "ram.yaml:4",
                              "fsdp_sync_module_states = true, found false (from ", "ram.yaml:5",
                              NULL}};
    run_case(&c);
}

static void test_fsdp2_refuses_fsdp1_only_settings(void **state) {
    (void)state;
    const conflict_case local = {"FSDP2 LOCAL_STATE_DICT",
                                 {{"local.yaml", "distributed_type: FSDP\n"
                                                 "fsdp_config:\n"
                                                 "  fsdp_version: 2\n"
                                                 "  fsdp_state_dict_type: LOCAL_STATE_DICT\n"},
                                  {NULL, NULL}},
                                 "",
                                 {"fsdp_state_dict_type = LOCAL_STATE_DICT (from ", "local.yaml:4",
                                  "fsdp_version = 2", "local.yaml:3", NULL}};
    run_case(&local);
    const conflict_case prefetch = {"FSDP2 forward prefetch",
                                    {{"fwd.yaml", "distributed_type: FSDP\n"
                                                  "fsdp_config:\n"
                                                  "  fsdp_version: 2\n"
                                                  "  fsdp_forward_prefetch: true\n"},
                                     {NULL, NULL}},
                                    "",
                                    {"fsdp_forward_prefetch = true (from ", "fwd.yaml:4", NULL}};
    run_case(&prefetch);
    const conflict_case reshard = {"FSDP2 non-boolean reshard_after_forward",
                                   {{"rs.yaml", "distributed_type: FSDP\n"
                                                "fsdp_config:\n"
                                                "  fsdp_version: 2\n"
                                                "  fsdp_reshard_after_forward: FULL_SHARD\n"},
                                    {NULL, NULL}},
                                   "",
                                   {"fsdp_reshard_after_forward = FULL_SHARD (from ", "rs.yaml:4",
                                    "must be a boolean", "fsdp_version = 2 from ", NULL}};
    run_case(&reshard);
    const conflict_case word = {
        "non-boolean word",
        {{"rs2.yaml", "distributed_type: FSDP\n"
                      "fsdp_config:\n"
                      "  fsdp_reshard_after_forward: sometimes\n"},
         {NULL, NULL}},
        "",
        {"fsdp_reshard_after_forward (from ", "rs2.yaml:3", "expected a boolean", NULL}};
    run_case(&word);
}

static void test_zero_stage_outside_0_to_3(void **state) {
    (void)state;
    const conflict_case yaml = {"zero_stage 4",
                                {{"z4.yaml", "distributed_type: DEEPSPEED\n"
                                             "deepspeed_config:\n"
                                             "  zero_stage: 4\n"},
                                 {NULL, NULL}},
                                "",
                                {"zero_stage (from ", "z4.yaml:3 (deepspeed_config.zero_stage)",
                                 "[0, 3]", "found 4", NULL}};
    run_case(&yaml);
    const conflict_case json = {
        "stage -1",
        {{"zm1.json", "{\"zero_optimization\": {\n  \"stage\": -1}}"}, {NULL, NULL}},
        "--use_deepspeed",
        {"zero_stage (from ", "zm1.json:2 (zero_optimization.stage)", "[0, 3]", NULL}};
    run_case(&json);
}

static void test_other_conflicts_name_both_sources(void **state) {
    (void)state;
    const conflict_case no_type = {
        "distributed_type NO with 4 processes",
        {{"no4.yaml", "distributed_type: 'NO'\nnum_processes: 4\n"}, {NULL, NULL}},
        "",
        {"distributed_type = NO (from ", "no4.yaml:1", "num_processes = 4 (from ", "no4.yaml:2",
         NULL}};
    run_case(&no_type);
    const conflict_case hpz = {
        "hpZ below stage 3",
        {{"hpz.json", "{\"zero_optimization\": {\"stage\": 2,\n \"zero_hpz_partition_size\": 2}}"},
         {NULL, NULL}},
        "--use_deepspeed --num_processes 4",
        {"zero_hpz_partition_size = 2 (from ", "hpz.json:2", "zero_stage 3, found 2", "hpz.json:1",
         NULL}};
    run_case(&hpz);
    const conflict_case family = {
        "a DeepSpeed flag on an FSDP file",
        {{"fam.yaml", "distributed_type: FSDP\n"}, {NULL, NULL}},
        "--zero_stage 3",
        {"zero_stage (from --zero_stage)", "DeepSpeed option", "fsdp1", NULL}};
    run_case(&family);
    const conflict_case wrap = {
        "a wrap class the model lacks",
        {{"wrap.yaml", "distributed_type: FSDP\nfsdp_config:\n"
                       "  fsdp_transformer_layer_cls_to_wrap: BertLayer\n"},
         {NULL, NULL}},
        "",
        {"fsdp_transformer_layer_cls_to_wrap", "'BertLayer'", "wrap.yaml:3", "GPT2Block", NULL}};
    run_case(&wrap);
}

int main(void) {
    sl_log_set_level(SL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_precision_in_accelerate_file_with_deepspeed_json),
        cmocka_unit_test(test_dtype_contradicting_the_enabled_json_section),
        cmocka_unit_test(test_fp16_and_bf16_both_enabled),
        cmocka_unit_test(test_accumulation_steps_differ_between_the_two_files),
        cmocka_unit_test(test_auto_and_equal_values_do_not_conflict),
        cmocka_unit_test(test_train_batch_size_must_be_micro_x_accumulation_x_world),
        cmocka_unit_test(test_ram_efficient_loading_needs_sync_module_states),
        cmocka_unit_test(test_fsdp2_refuses_fsdp1_only_settings),
        cmocka_unit_test(test_zero_stage_outside_0_to_3),
        cmocka_unit_test(test_other_conflicts_name_both_sources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
