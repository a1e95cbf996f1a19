/* DESIGN.md §9 T1 and T2 for the engine, on real ranks started by `shardlab launch`: what each
 * rank allocated and issued — the dtype of its buffers at every stage, every collective of the
 * first step (op, group, phase, micro-step, unit, dtype, elements, bytes) and its peak bytes per
 * memory category — equals the plan's prediction for every strategy and precision on gpt-tiny
 * and, on gpt-small, for one strategy of each sharding family in bf16 and for ZeRO-3 at W = 1,
 * 2, 4. Memory is compared byte for byte, activations, workspace and no_sync's gradients included
 * (the kernel context's own scratch, which the plan leaves to the backend, set apart). And two
 * deterministic runs are bit-identical. The test executable is its own worker program. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tests/engine/engine_harness.h"
#include "tests/engine/engine_worker.h"

static char out[512 * 1024];

/* Runs the worker scenario `args` (space-separated) on W ranks; fails with its output. */
static void launch_worker(int w, const char *args) {
    char np[16], text[256], storage[256];
    snprintf(np, sizeof np, "%d", w);
    snprintf(text, sizeof text, "%s", args);
    char *split[8];
    const int n = sl_ts_split(text, storage, split, 8);
    char *argv[16] = {sl_ts_shardlab_bin(), "launch",  "--num_processes", np,
                      sl_ts_self(),         "--worker"};
    for (int i = 0; i < n; i++)
        argv[6 + i] = split[i];
    argv[6 + n] = NULL;
    const int st = sl_ts_run(argv, NULL, 300.0, out, sizeof out, NULL);
    if (st != 0) fail_msg("W = %d %s: exit status %d; output:\n%s", w, args, st, out);
}

static void test_observed_equals_predicted_every_strategy_and_precision_w4(void **state) {
    (void)state;
    launch_worker(4, "observe 1");
}

static void test_observed_equals_predicted_with_accumulation_w4_k2(void **state) {
    (void)state;
    launch_worker(4, "observe 2");
}

static void test_observed_equals_predicted_w2(void **state) {
    (void)state;
    launch_worker(2, "observe 1");
}

static void test_observed_equals_predicted_w1_k2(void **state) {
    (void)state;
    launch_worker(1, "observe 2");
}

/* One strategy of each sharding family in bf16 on gpt-small (every strategy and precision at
 * W = 4 is the worker's "observe 2 gpt-small all all", minutes long on two cores). */
static void test_observed_equals_predicted_gpt_small_each_family_bf16_w2_k2(void **state) {
    (void)state;
    launch_worker(2, "observe 2 gpt-small sharded bf16");
}

/* With the plan's per-rank ZeRO-3 prediction falling as 1/W (test_schedule.c), equality at
 * W = 1, 2, 4 is what makes the measured memory fall as 1/W too. */
static void test_zero3_gpt_small_observed_equals_predicted_w1_w2_w4(void **state) {
    (void)state;
    launch_worker(1, "observe 1 gpt-small zero3 bf16");
    launch_worker(2, "observe 1 gpt-small zero3 bf16");
    launch_worker(4, "observe 1 gpt-small zero3 bf16");
}

static void test_deterministic_runs_are_bit_identical_w4(void **state) {
    (void)state;
    launch_worker(4, "determinism");
}

static void test_teacher_and_student_engines_coexist_w2(void **state) {
    (void)state;
    launch_worker(2, "coexist");
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "--worker")) return ew_main(argc - 2, argv + 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observed_equals_predicted_every_strategy_and_precision_w4),
        cmocka_unit_test(test_observed_equals_predicted_with_accumulation_w4_k2),
        cmocka_unit_test(test_observed_equals_predicted_w2),
        cmocka_unit_test(test_observed_equals_predicted_w1_k2),
        cmocka_unit_test(test_observed_equals_predicted_gpt_small_each_family_bf16_w2_k2),
        cmocka_unit_test(test_zero3_gpt_small_observed_equals_predicted_w1_w2_w4),
        cmocka_unit_test(test_deterministic_runs_are_bit_identical_w4),
        cmocka_unit_test(test_teacher_and_student_engines_coexist_w2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
