/* DESIGN.md §9 T1 and T2 for the engine, on real ranks started by `shardlab launch`: what each
 * rank allocated and issued — the dtype of its buffers at every stage, every collective of the
 * first step (op, group, phase, micro-step, unit, dtype, elements, bytes) and its peak bytes per
 * memory category — equals the plan's prediction for every strategy and precision; and two
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

static void launch_worker(int w, const char *scenario, const char *arg) {
    char np[16];
    snprintf(np, sizeof np, "%d", w);
    char *argv[] = {eh_shardlab_bin(), "launch",         "--num_processes", np,  eh_self(),
                    "--worker",        (char *)scenario, (char *)arg,       NULL};
    const int st = eh_run(argv, NULL, 300.0, out, sizeof out);
    if (st != 0)
        fail_msg("W = %d %s %s: exit status %d; output:\n%s", w, scenario, arg ? arg : "", st, out);
}

static void test_observed_equals_predicted_every_strategy_and_precision_w4(void **state) {
    (void)state;
    launch_worker(4, "observe", "1");
}

static void test_observed_equals_predicted_with_accumulation_w4_k2(void **state) {
    (void)state;
    launch_worker(4, "observe", "2");
}

static void test_observed_equals_predicted_w2(void **state) {
    (void)state;
    launch_worker(2, "observe", "1");
}

static void test_observed_equals_predicted_w1_k2(void **state) {
    (void)state;
    launch_worker(1, "observe", "2");
}

static void test_deterministic_runs_are_bit_identical_w4(void **state) {
    (void)state;
    launch_worker(4, "determinism", NULL);
}

static void test_teacher_and_student_engines_coexist_w2(void **state) {
    (void)state;
    launch_worker(2, "coexist", NULL);
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "--worker")) return ew_main(argc - 2, argv + 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observed_equals_predicted_every_strategy_and_precision_w4),
        cmocka_unit_test(test_observed_equals_predicted_with_accumulation_w4_k2),
        cmocka_unit_test(test_observed_equals_predicted_w2),
        cmocka_unit_test(test_observed_equals_predicted_w1_k2),
        cmocka_unit_test(test_deterministic_runs_are_bit_identical_w4),
        cmocka_unit_test(test_teacher_and_student_engines_coexist_w2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
