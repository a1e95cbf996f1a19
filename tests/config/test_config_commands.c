/* The commands around config files as a user runs them: explain and ref with --config_file,
 * estimate-memory's table against the plans and the ZeRO formulas, and env. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardlab/log.h"
#include "tests/config/config_harness.h"
#include "tests/support/support.h"

static const char fsdp_yaml[] = "distributed_type: FSDP\n"
                                "num_processes: 2\n"
                                "mixed_precision: bf16\n"
                                "fsdp_config:\n"
                                "  fsdp_sharding_strategy: SHARD_GRAD_OP\n";

/* explain shows where each value came from: the file's line, the flag, or the default. */
static void test_explain_prints_each_source_beside_its_value(void **state) {
    (void)state;
    harness_write("ex.yaml", fsdp_yaml);
    harness_run_result r = harness_run("explain --config_file ex.yaml --seed 7", NULL, 0);
    assert_int_equal(r.status, 0);
    sl_ts_expect(r.out, "plan: fsdp1 SHARD_GRAD_OP, W = 2");
    sl_ts_expect(r.out, "ex.yaml:5 (fsdp_config.fsdp_sharding_strategy)");
    sl_ts_expect(r.out, "ex.yaml:3 (mixed_precision)");
    sl_ts_expect(r.out, "--seed");
    sl_ts_expect(r.out, "= mixed_precision (from ex.yaml:3 (mixed_precision))");
    free(r.out);
}

/* --config_file works for every command that takes plan flags: ref trains with it. */
static void test_ref_takes_a_config_file(void **state) {
    (void)state;
    harness_write("ref.yaml", "distributed_type: DEEPSPEED\nnum_processes: 2\n"
                              "deepspeed_config:\n  zero_stage: 2\n"
                              "  gradient_accumulation_steps: 2\n");
    harness_run_result r = harness_run("ref --config_file ref.yaml --steps 2 --quiet", NULL, 1);
    if (r.status != 0) fail_msg("%s", r.out);
    sl_ts_expect(r.out, "ref: 2 steps");
    free(r.out);
    r = harness_run("ref --config_file missing.yaml --steps 1", NULL, 1);
    assert_true(r.status != 0);
    sl_ts_expect(r.out, "missing.yaml");
    free(r.out);
}

/* The value estimate-memory prints in `column` of the row starting with `row`. */
static long long table_cell(const char *out, const char *row, int column) {
    const char *line = out;
    char label[64];
    snprintf(label, sizeof label, "\n%s ", row);
    line = strstr(out, label);
    if (!line) fail_msg("no row '%s' in:\n%s", row, out);
    line += strlen(label);
    long long v = -1;
    for (int c = 0; c <= column; c++) {
        while (*line == ' ')
            line++;
        char *end = NULL;
        v = strtoll(line, &end, 10);
        if (end == line) fail_msg("row '%s' column %d is not a number", row, c);
        line = end;
        while (*line == '+')
            line++;
    }
    return v;
}

static void test_estimate_memory_matches_the_plans_and_the_zero_formulas(void **state) {
    (void)state;
    harness_run_result r = harness_run("estimate-memory --model gpt-tiny --num_processes 4 "
                                       "--mixed_precision bf16 --bytes",
                                       NULL, 0);
    assert_int_equal(r.status, 0);
    static const struct {
        const char *row, *flags;
        int stage;
    } rows[] = {{"ddp", "", 0},
                {"fsdp1 FULL_SHARD", "--use_fsdp", 3},
                {"fsdp2 SHARD_GRAD_OP",
                 "--use_fsdp --fsdp_version 2 "
                 "--fsdp_reshard_after_forward false",
                 2},
                {"deepspeed ZeRO-1", "--use_deepspeed --zero_stage 1", 1},
                {"deepspeed ZeRO-3", "--use_deepspeed --zero_stage 3", 3}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char flags[256];
        snprintf(flags, sizeof flags, "%s --num_processes 4 --mixed_precision bf16", rows[i].flags);
        sl_plan *plan = NULL;
        if (harness_plan(flags, &plan) != SL_OK) fail_msg("%s", sl_error_message());
        const sl_mem_usage *m = &plan->predicted.memory[0];
        for (int c = 0; c < SL_MEM_CATEGORY_COUNT - 1; c++) {
            const long long want = m->peak[SL_SPACE_DEVICE][c] + m->peak[SL_SPACE_HOST][c];
            const long long got = table_cell(r.out, rows[i].row, c);
            if (got != want) {
                fail_msg("%s %s: table %lld, plan %lld", rows[i].row,
                         sl_mem_category_name((sl_mem_category)c), got, want);
            }
        }
        sl_plan_destroy(plan);
    }
    /* Ψ = 120576 (gpt-tiny), W = 4, mixed precision: 16Ψ, 4Ψ+12Ψ/W, 2Ψ+14Ψ/W, 16Ψ/W */
    const long long psi = 120576;
    sl_ts_expect(r.out, "4Ψ+12Ψ/W");
    char expect[64];
    snprintf(expect, sizeof expect, "16Ψ/W %12lld", 16 * psi / 4);
    sl_ts_expect(r.out, expect);
    snprintf(expect, sizeof expect, "4Ψ+12Ψ/W %12lld", 4 * psi + 12 * psi / 4);
    sl_ts_expect(r.out, expect);
    snprintf(expect, sizeof expect, "16Ψ %12lld", 16 * psi);
    sl_ts_expect(r.out, expect);
    assert_null(strstr(r.out, "HYBRID")); /* one machine */
    free(r.out);
}

/* With --params there is no shape: what needs one is n/a, and the note says so. */
static void test_estimate_memory_with_params_only(void **state) {
    (void)state;
    harness_run_result r = harness_run("estimate-memory --params 7e9 --num_processes 8 "
                                       "--num_machines 2 --mixed_precision bf16 --bytes",
                                       NULL, 0);
    assert_int_equal(r.status, 0);
    /* ZeRO-3 masters: ceil(7e9 / 8) fp32 elements; the paper's 16Ψ/W */
    assert_int_equal(table_cell(r.out, "deepspeed ZeRO-3", 0), 7000000000LL / 8 * 4);
    sl_ts_expect(r.out, "16Ψ/W  14000000000");
    sl_ts_expect(r.out, "fsdp1 HYBRID_SHARD ");
    sl_ts_expect(r.out, "16Ψ/G");
    sl_ts_expect(r.out, "n/a");
    sl_ts_expect(r.out, "activations");
    sl_ts_expect(r.out, "lower bound");
    free(r.out);
}

static void test_estimate_memory_refuses_strategy_flags_and_needs_a_size(void **state) {
    (void)state;
    harness_run_result r = harness_run("estimate-memory --model gpt-tiny --zero_stage 3", NULL, 1);
    assert_int_equal(r.status, 2);
    sl_ts_expect(r.out, "--zero_stage");
    sl_ts_expect(r.out, "compares every strategy");
    free(r.out);
    r = harness_run("estimate-memory --num_processes 2", NULL, 1);
    assert_int_equal(r.status, 2);
    sl_ts_expect(r.out, "--model NAME");
    free(r.out);
    r = harness_run("estimate-memory --params lots", NULL, 1);
    assert_int_equal(r.status, 2);
    sl_ts_expect(r.out, "'lots'");
    free(r.out);
}

static void test_env_prints_versions_cpu_threads_and_the_config(void **state) {
    (void)state;
    harness_write("env.yaml", fsdp_yaml);
    harness_run_result r = harness_run("env --config_file env.yaml", NULL, 0);
    assert_int_equal(r.status, 0);
    static const char *const lines[] = {"compiler:",       "mpi:",
                                        "blas:",           "cuda",
                                        "nccl:",           "cpu:",
                                        "simd:",           "nproc:",
                                        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                        "env.yaml:5"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        sl_ts_expect(r.out, lines[i]);
    free(r.out);
    r = harness_run("env --jsno", NULL, 1);
    assert_int_equal(r.status, 2);
    sl_ts_expect(r.out, "'--jsno'");
    free(r.out);
}

/* The thread variables are read from the environment the command runs in. */
static void test_env_reports_thread_settings(void **state) {
    (void)state;
    setenv("OMP_NUM_THREADS", "3", 1);
    harness_run_result r = harness_run("env", NULL, 0);
    unsetenv("OMP_NUM_THREADS");
    assert_int_equal(r.status, 0);
    sl_ts_expect(r.out, "OMP_NUM_THREADS        3");
    free(r.out);
}

int main(void) {
    sl_log_set_level(SL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explain_prints_each_source_beside_its_value),
        cmocka_unit_test(test_ref_takes_a_config_file),
        cmocka_unit_test(test_estimate_memory_matches_the_plans_and_the_zero_formulas),
        cmocka_unit_test(test_estimate_memory_with_params_only),
        cmocka_unit_test(test_estimate_memory_refuses_strategy_flags_and_needs_a_size),
        cmocka_unit_test(test_env_prints_versions_cpu_threads_and_the_config),
        cmocka_unit_test(test_env_reports_thread_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
