/* The conformance checks can fail: a perturbed loss or final parameter beyond the tolerance, a
 * one-bit difference between two "identical" runs, a predicted collective the run did not
 * issue, a documented difference hidden in the noise — each gives FAIL with the quantity named;
 * the divergence measure is the documented formula; the runner reports a failing or missing run
 * by its log and a malformed result file by its name. Runs come from one real `shardlab ref`
 * (W = 2, gpt-tiny, 2 steps) loaded twice and edited in memory. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "conformance/check.h"
#include "conformance/runner.h"
#include "tests/support/support.h"

static char root[256];
static sl_conf_run_spec ref_spec;

static int setup(void **state) {
    (void)state;
    sl_ts_mkdtemp("conformance-checks", root, sizeof root);
    ref_spec = sl_conf_run_spec_default();
    ref_spec.world_size = 2;
    ref_spec.steps = 2;
    snprintf(ref_spec.plan_flags, sizeof ref_spec.plan_flags,
             "--use_fsdp --micro_batch_size 2 --seq_len 16 --seed 3");
    snprintf(ref_spec.out_dir, sizeof ref_spec.out_dir, "%s/ref", root);
    ref_spec.timeout_s = 120.0;
    sl_conf_result r;
    const sl_status st = sl_conf_run(&ref_spec, &r);
    if (st != SL_OK) fprintf(stderr, "reference run: %s\n", sl_error_message());
    sl_conf_result_free(&r);
    return st == SL_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    sl_ts_rmtree(root);
    return 0;
}

static void load(sl_conf_result *r) {
    if (sl_conf_result_load(SL_CONF_TOOL_REF, ref_spec.out_dir, r) != SL_OK)
        fail_msg("%s", sl_error_message());
    assert_int_equal(r->n_steps, 2);
    assert_true(r->final.n > 0);
}

/* A floor of 1e-6 relative in every quantity: tolerance 4e-6. */
static const sl_conf_divergence small_floor = {{1e-6, 1e-6, 1e-6, 1e-6}};

static void test_identical_runs_pass_tolerance_and_bitwise(void **state) {
    (void)state;
    sl_conf_result a, b;
    load(&a);
    load(&b);
    sl_conf_check c = sl_conf_check_make("T3", "impl_vs_ref", "same");
    sl_conf_check_tolerance(&a, &b, &small_floor, SL_CONF_TOLERANCE_MULTIPLE, &c);
    assert_int_equal(c.verdict, SL_CONF_PASS);
    assert_true(c.measured == 0.0);
    sl_conf_check bw = sl_conf_check_make("T2", "bitwise", "same");
    sl_conf_check_bitwise(&a, &b, &bw);
    assert_int_equal(bw.verdict, SL_CONF_PASS);
    sl_conf_result_free(&a);
    sl_conf_result_free(&b);
}

static void test_perturbed_loss_beyond_tolerance_fails_naming_loss(void **state) {
    (void)state;
    sl_conf_result a, b;
    load(&a);
    load(&b);
    /* 1e-4 relative on step 2's loss: 25× the 4e-6 tolerance */
    a.steps[1].loss *= 1.0 + 1e-4;
    sl_conf_check c = sl_conf_check_make("T3", "impl_vs_ref", "perturbed loss");
    sl_conf_check_tolerance(&a, &b, &small_floor, SL_CONF_TOLERANCE_MULTIPLE, &c);
    assert_int_equal(c.verdict, SL_CONF_FAIL);
    assert_string_equal(c.quantity, "loss");
    assert_true(fabs(c.measured - 1e-4) < 1e-9); /* |a-b|/|b| = 1e-4 exactly up to rounding */
    assert_true(c.tolerance == 4e-6);
    sl_conf_check bw = sl_conf_check_make("T2", "bitwise", "perturbed loss");
    sl_conf_check_bitwise(&a, &b, &bw);
    assert_int_equal(bw.verdict, SL_CONF_FAIL);
    assert_non_null(strstr(bw.detail, "step 2 loss"));
    sl_conf_result_free(&a);
    sl_conf_result_free(&b);
}

static void test_one_ulp_in_final_parameters_fails_bitwise_and_a_zero_tolerance(void **state) {
    (void)state;
    sl_conf_result a, b;
    load(&a);
    load(&b);
    float *x = &a.final.data[a.final.n - 1][0];
    *x = nextafterf(*x, INFINITY);
    sl_conf_check bw = sl_conf_check_make("T2", "bitwise", "ulp");
    sl_conf_check_bitwise(&a, &b, &bw);
    assert_int_equal(bw.verdict, SL_CONF_FAIL);
    assert_non_null(strstr(bw.detail, a.final.names[a.final.n - 1]));
    const sl_conf_divergence zero = {{0, 0, 0, 0}}; /* a wrong (zero) tolerance */
    sl_conf_check c = sl_conf_check_make("T3", "impl_vs_ref", "ulp");
    sl_conf_check_tolerance(&a, &b, &zero, SL_CONF_TOLERANCE_MULTIPLE, &c);
    assert_int_equal(c.verdict, SL_CONF_FAIL);
    assert_string_equal(c.quantity, "final");
    sl_conf_result_free(&a);
    sl_conf_result_free(&b);
}

static void test_fp16_scaler_sequence_must_match_exactly(void **state) {
    (void)state;
    sl_conf_result a, b;
    load(&a);
    load(&b);
    a.steps[0].skipped = !a.steps[0].skipped; /* within every tolerance, but not the same run */
    sl_conf_check c = sl_conf_check_make("T3", "impl_vs_ref", "scaler");
    sl_conf_check_tolerance(&a, &b, &small_floor, SL_CONF_TOLERANCE_MULTIPLE, &c);
    assert_int_equal(c.verdict, SL_CONF_FAIL);
    assert_string_equal(c.quantity, "loss_scale");
    sl_conf_result_free(&a);
    sl_conf_result_free(&b);
}

static void test_documented_divergence_within_the_floor_fails(void **state) {
    (void)state;
    sl_conf_result a, b;
    load(&a);
    load(&b);
    a.steps[1].loss *= 1.0 + 1e-7; /* below the 1e-6 floor: the difference is not real */
    sl_conf_check c = sl_conf_check_make("T4", "documented", "hidden");
    sl_conf_check_documented(&a, &b, &small_floor, &c);
    assert_int_equal(c.verdict, SL_CONF_FAIL);
    a.steps[1].loss *= 1.0 + 1e-3; /* far above it: measured and real */
    sl_conf_check_documented(&a, &b, &small_floor, &c);
    assert_int_equal(c.verdict, SL_CONF_PASS);
    assert_string_equal(c.quantity, "loss");
    assert_true(c.measured > c.tolerance);
    sl_conf_result_free(&a);
    sl_conf_result_free(&b);
}

static void test_state_divergence_is_max_abs_difference_over_max_abs_baseline(void **state) {
    (void)state;
    char *names[2] = {"x", "y"};
    size_t numel[2] = {2, 1};
    float xa[2] = {1.0f, -4.0f}, ya[1] = {0.5f};
    float xb[2] = {1.5f, -4.0f}, yb[1] = {0.5f};
    float *da[2] = {xa, ya}, *db[2] = {xb, yb};
    const sl_conf_tensors a = {2, names, numel, da}, b = {2, names, numel, db};
    double d = 0.0;
    assert_int_equal(sl_conf_tensors_divergence(&a, &b, &d), SL_OK);
    assert_true(d == 0.5 / 4.0); /* max |a-b| = 0.5, max |b| = 4 */
    const double s1[3] = {1.0, 2.0, 0.0}, s2[3] = {1.0, 2.5, 0.0};
    assert_true(sl_conf_series_divergence(s1, s2, 3) == 0.5 / 2.5);
    char *other[2] = {"x", "z"};
    const sl_conf_tensors c = {2, other, numel, da};
    assert_int_equal(sl_conf_tensors_divergence(&c, &b, &d), SL_ERR_MISMATCH);
    assert_non_null(strstr(sl_error_message(), "'y'"));
}

static void test_collective_not_issued_fails_t1_naming_it(void **state) {
    (void)state;
    sl_conf_result run;
    load(&run);
    sl_conf_result pred;
    load(&pred);
    /* the reference observes what the plan predicts; drop the last observed collective */
    assert_true(run.observed.n_collectives > 0);
    run.observed.n_collectives--;
    sl_conf_check out[4];
    for (int i = 0; i < 4; i++)
        out[i] = sl_conf_check_make("T1", "x", "dropped");
    sl_conf_check_observation(&pred, &run, out);
    assert_int_equal(out[0].verdict, SL_CONF_PASS); /* dtype table */
    assert_int_equal(out[1].verdict, SL_CONF_PASS); /* layout */
    assert_int_equal(out[2].verdict, SL_CONF_FAIL);
    assert_non_null(strstr(out[2].detail, "observed (none)"));
    run.observed.memory[1].peak[SL_SPACE_DEVICE][SL_MEM_OPTIM_STATES] *= 2;
    sl_conf_check_observation(&pred, &run, out);
    assert_int_equal(out[3].verdict, SL_CONF_FAIL);
    assert_string_equal(out[3].quantity, "optim_states");
    sl_conf_result_free(&run);
    sl_conf_result_free(&pred);
}

static void test_failing_run_reports_exit_status_and_log(void **state) {
    (void)state;
    sl_conf_run_spec s = ref_spec;
    snprintf(s.plan_flags, sizeof s.plan_flags, "--zero_stage 7");
    snprintf(s.out_dir, sizeof s.out_dir, "%s/bad", root);
    sl_conf_result r;
    assert_int_not_equal(sl_conf_run(&s, &r), SL_OK);
    assert_int_equal(r.exit_status, 2);
    assert_non_null(strstr(r.error, "run.log"));
    assert_non_null(strstr(sl_error_message(), "exited with status 2"));
    /* the log holds the command and shardlab's message naming the flag */
    char path[600], text[4096] = {0};
    snprintf(path, sizeof path, "%s/bad/run.log", root);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    const size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_non_null(strstr(text, "zero_stage"));
    sl_conf_check c = sl_conf_check_make("T3", "impl_vs_ref", "bad");
    sl_conf_result ok;
    load(&ok);
    sl_conf_check_tolerance(&ok, &r, &small_floor, SL_CONF_TOLERANCE_MULTIPLE, &c);
    assert_int_equal(c.verdict, SL_CONF_FAIL);
    assert_non_null(strstr(c.detail, "run failed"));
    sl_conf_result_free(&ok);
    sl_conf_result_free(&r);
}

static void test_malformed_trajectory_is_an_error_naming_the_file(void **state) {
    (void)state;
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/malformed", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/trajectory.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"steps\": [{\"step\": 1}]}\n", f);
    fclose(f);
    sl_conf_result r;
    assert_int_not_equal(sl_conf_result_load(SL_CONF_TOOL_REF, dir, &r), SL_OK);
    assert_non_null(strstr(r.error, "trajectory.json"));
    assert_non_null(strstr(r.error, "loss"));
}

static void test_runs_over_their_time_limit_are_killed(void **state) {
    (void)state;
    sl_conf_run_spec s = ref_spec;
    s.steps = 100000;
    s.timeout_s = 1.0;
    snprintf(s.out_dir, sizeof s.out_dir, "%s/slow", root);
    sl_conf_result r;
    assert_int_not_equal(sl_conf_run(&s, &r), SL_OK);
    assert_true(r.timed_out);
    assert_non_null(strstr(r.error, "did not finish within 1 s"));
    sl_conf_result_free(&r);
}

/* Runs `shardlab conformance ARGS`; returns the exit status, output in out. */
static int run_cli(const char *args, char *out, size_t cap) {
    char line[1024], *text = NULL;
    snprintf(line, sizeof line, "conformance %s", args);
    /* bad arguments are refused before anything runs: a minute is a hang */
    const int status = sl_ts_shardlab(line, NULL, 60.0, &text);
    snprintf(out, cap, "%s", text);
    free(text);
    return status;
}

static void test_cli_bad_arguments_exit_2_naming_them(void **state) {
    (void)state;
    char out[4096], args[512];
    assert_int_equal(run_cli("--tier medium", out, sizeof out), 2);
    assert_non_null(strstr(out, "--tier: expected quick or full, found 'medium'"));
    assert_int_equal(run_cli("--jobs 0", out, sizeof out), 2);
    assert_non_null(strstr(out, "--jobs"));
    assert_int_equal(run_cli("--bogus", out, sizeof out), 2);
    assert_non_null(strstr(out, "'--bogus'"));
    snprintf(args, sizeof args, "--filter no-such-check --report %s/none", root);
    assert_int_equal(run_cli(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "'no-such-check' matches no check"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_runs_pass_tolerance_and_bitwise),
        cmocka_unit_test(test_perturbed_loss_beyond_tolerance_fails_naming_loss),
        cmocka_unit_test(test_one_ulp_in_final_parameters_fails_bitwise_and_a_zero_tolerance),
        cmocka_unit_test(test_fp16_scaler_sequence_must_match_exactly),
        cmocka_unit_test(test_documented_divergence_within_the_floor_fails),
        cmocka_unit_test(test_state_divergence_is_max_abs_difference_over_max_abs_baseline),
        cmocka_unit_test(test_collective_not_issued_fails_t1_naming_it),
        cmocka_unit_test(test_failing_run_reports_exit_status_and_log),
        cmocka_unit_test(test_malformed_trajectory_is_an_error_naming_the_file),
        cmocka_unit_test(test_runs_over_their_time_limit_are_killed),
        cmocka_unit_test(test_cli_bad_arguments_exit_2_naming_them),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
