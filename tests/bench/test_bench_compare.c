/* The regression gate, `shardlab bench compare`: constructed result files with known medians
 * and spreads, judged by the library and by the command (whose exit status CI acts on). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench/compare.h"
#include "tests/bench/fake_results.h"
#include "tests/support/support.h"

static char sl_dir[256];
static char sl_out[64 * 1024];

static int sl_setup(void **state) {
    (void)state;
    sl_ts_mkdtemp("bench-compare", sl_dir, sizeof sl_dir);
    return 0;
}

static int sl_teardown(void **state) {
    (void)state;
    sl_ts_rmtree(sl_dir);
    return 0;
}

/* Writes base.json and new.json, each with one run "r" of the given repetitions. */
static void sl_pair(const sl_fake_run *base, const sl_fake_run *cur, char *bpath, char *npath) {
    snprintf(bpath, 4096, "%s/base.json", sl_dir);
    snprintf(npath, 4096, "%s/new.json", sl_dir);
    sl_fake_results(bpath, "host-a", base, 1);
    sl_fake_results(npath, "host-a", cur, 1);
}

/* The library's verdict on the pair at `threshold`. */
static sl_bench_verdict sl_verdict(const sl_fake_run *base, const sl_fake_run *cur,
                                   double threshold, sl_bench_change *row) {
    char bpath[4096], npath[4096];
    sl_pair(base, cur, bpath, npath);
    sl_bench_results b, n;
    if (sl_bench_results_load(bpath, &b) != SL_OK) fail_msg("%s", sl_error_message());
    if (sl_bench_results_load(npath, &n) != SL_OK) fail_msg("%s", sl_error_message());
    sl_bench_comparison c;
    assert_int_equal(sl_bench_compare(&b, &n, threshold, &c), SL_OK);
    assert_int_equal(c.n, 1);
    const sl_bench_verdict v = c.rows[0].verdict;
    static char why[256];
    if (row) {
        *row = c.rows[0]; /* its strings point into the files, freed below */
        snprintf(why, sizeof why, "%s", row->why ? row->why : "");
        row->why = why;
        row->name = NULL;
    }
    sl_bench_comparison_free(&c);
    sl_bench_results_free(&b);
    sl_bench_results_free(&n);
    return v;
}

/* `shardlab bench compare base new EXTRA...`: exit status, output in sl_out. */
static int sl_compare_cli(const char *bpath, const char *npath, const char *extra) {
    char *argv[8] = {sl_ts_shardlab_bin(), "bench", "compare", (char *)bpath, (char *)npath};
    int n = 5;
    char threshold[32];
    if (extra) {
        snprintf(threshold, sizeof threshold, "%s", extra);
        argv[n++] = "--threshold";
        argv[n++] = threshold;
    }
    argv[n] = NULL;
    bool timed_out = false;
    const int rc = sl_ts_run(argv, NULL, 60, sl_out, sizeof sl_out, &timed_out);
    assert_false(timed_out);
    return rc;
}

static void test_regression_beyond_threshold_and_noise_fails_the_gate(void **state) {
    (void)state;
    const sl_fake_run base = {.name = "coll/all_reduce/x", .times = {100, 101, 99}, .n = 3};
    const sl_fake_run cur = {.name = "coll/all_reduce/x", .times = {120, 121, 119}, .n = 3};
    sl_bench_change row;
    assert_int_equal(sl_verdict(&base, &cur, 0.05, &row), SL_BENCH_SLOWER);
    assert_true(fabs(row.change - 0.2) < 1e-12);       /* 120 / 100 - 1 */
    assert_true(fabs(row.base_spread - 0.02) < 1e-12); /* (101 - 99) / 100 */
    char bpath[4096], npath[4096];
    sl_pair(&base, &cur, bpath, npath);
    const int rc = sl_compare_cli(bpath, npath, NULL);
    if (rc != 1) fail_msg("exit status %d, expected 1; output:\n%s", rc, sl_out);
    assert_non_null(strstr(sl_out, "coll/all_reduce/x"));
    assert_non_null(strstr(sl_out, "+20.0%"));
    assert_non_null(strstr(sl_out, "SLOWER"));
    assert_non_null(strstr(sl_out, "1 slower"));
}

static void test_change_within_noise_passes(void **state) {
    (void)state;
    /* median +8.3% is beyond the 5% threshold but inside the 40% spread of the baseline */
    const sl_fake_run base = {.name = "r", .times = {100, 120, 140}, .n = 3};
    const sl_fake_run cur = {.name = "r", .times = {110, 130, 150}, .n = 3};
    assert_int_equal(sl_verdict(&base, &cur, 0.05, NULL), SL_BENCH_NOISY);
    char bpath[4096], npath[4096];
    sl_pair(&base, &cur, bpath, npath);
    const int rc = sl_compare_cli(bpath, npath, NULL);
    if (rc != 0) fail_msg("exit status %d, expected 0; output:\n%s", rc, sl_out);
    assert_non_null(strstr(sl_out, "noise"));
    assert_non_null(strstr(sl_out, "1 moved within noise"));
}

static void test_threshold_decides_small_changes(void **state) {
    (void)state;
    /* +3% with a 2% spread: below the default 5% threshold, beyond a 2.5% one */
    const sl_fake_run base = {.name = "r", .times = {100, 101, 99}, .n = 3};
    const sl_fake_run cur = {.name = "r", .times = {103, 104, 102}, .n = 3};
    assert_int_equal(sl_verdict(&base, &cur, 0.05, NULL), SL_BENCH_SAME);
    assert_int_equal(sl_verdict(&base, &cur, 0.025, NULL), SL_BENCH_SLOWER);
    char bpath[4096], npath[4096];
    sl_pair(&base, &cur, bpath, npath);
    assert_int_equal(sl_compare_cli(bpath, npath, "5%"), 0);
    assert_int_equal(sl_compare_cli(bpath, npath, "2.5%"), 1);
    assert_int_equal(sl_compare_cli(bpath, npath, "2.5"), 1);
}

static void test_improvement_passes(void **state) {
    (void)state;
    const sl_fake_run base = {.name = "r", .times = {100, 101, 99}, .n = 3};
    const sl_fake_run cur = {.name = "r", .times = {80, 81, 79}, .n = 3};
    assert_int_equal(sl_verdict(&base, &cur, 0.05, NULL), SL_BENCH_FASTER);
    char bpath[4096], npath[4096];
    sl_pair(&base, &cur, bpath, npath);
    assert_int_equal(sl_compare_cli(bpath, npath, NULL), 0);
}

static void test_time_units_are_converted(void **state) {
    (void)state;
    const sl_fake_run base = {.name = "r", .unit = "us", .times = {1.0, 1.01, 0.99}, .n = 3};
    const sl_fake_run cur = {.name = "r", .unit = "ns", .times = {1000, 1010, 990}, .n = 3};
    sl_bench_change row;
    assert_int_equal(sl_verdict(&base, &cur, 0.05, &row), SL_BENCH_SAME);
    assert_true(fabs(row.change) < 1e-12);
}

static void test_failed_runs_and_wrong_results_fail_the_gate(void **state) {
    (void)state;
    const sl_fake_run base = {.name = "r", .times = {100, 101, 99}, .n = 3};
    const sl_fake_run failed = {.name = "r",
                                .times = {100, 101, 99},
                                .n = 3,
                                .error = "rank 1 could not allocate its buffers"};
    const sl_fake_run wrong = {.name = "r", .times = {100, 101, 99}, .n = 3, .wrong = 3};
    sl_bench_change row;
    assert_int_equal(sl_verdict(&base, &failed, 0.05, &row), SL_BENCH_FAILED);
    assert_string_equal(row.why, "rank 1 could not allocate its buffers");
    assert_int_equal(sl_verdict(&base, &wrong, 0.05, NULL), SL_BENCH_FAILED);
    char bpath[4096], npath[4096];
    sl_pair(&base, &wrong, bpath, npath);
    const int rc = sl_compare_cli(bpath, npath, NULL);
    if (rc != 1) fail_msg("exit status %d, expected 1; output:\n%s", rc, sl_out);
    assert_non_null(strstr(sl_out, "wrong results"));
}

static void test_aggregate_only_files_with_nan_are_read(void **state) {
    (void)state;
    /* the baseline holds only Google Benchmark's aggregates (median 100, cv about 1%) and a NaN */
    const sl_fake_run base = {
        .name = "r", .times = {100, 101, 99}, .n = 3, .aggregates_only = true};
    const sl_fake_run cur = {.name = "r", .times = {150, 151, 149}, .n = 3};
    sl_bench_change row;
    assert_int_equal(sl_verdict(&base, &cur, 0.05, &row), SL_BENCH_SLOWER);
    assert_true(fabs(row.base_ns - 100) < 1e-9);
    assert_true(fabs(row.change - 0.5) < 1e-12);
}

static void test_runs_on_one_side_are_listed_not_judged(void **state) {
    (void)state;
    char bpath[4096], npath[4096];
    snprintf(bpath, sizeof bpath, "%s/base.json", sl_dir);
    snprintf(npath, sizeof npath, "%s/new.json", sl_dir);
    const sl_fake_run base[] = {{.name = "kept", .times = {100, 101, 99}, .n = 3},
                                {.name = "removed", .times = {5}, .n = 1}};
    const sl_fake_run cur[] = {{.name = "kept", .times = {100, 101, 99}, .n = 3},
                               {.name = "added", .times = {7}, .n = 1}};
    sl_fake_results(bpath, "host-a", base, 2);
    sl_fake_results(npath, "host-b", cur, 2);
    const int rc = sl_compare_cli(bpath, npath, NULL);
    if (rc != 0) fail_msg("exit status %d, expected 0; output:\n%s", rc, sl_out);
    assert_non_null(strstr(sl_out, "removed"));
    assert_non_null(strstr(sl_out, "gone"));
    assert_non_null(strstr(sl_out, "added"));
    assert_non_null(strstr(sl_out, "different machines")); /* host-a against host-b */
}

static void test_a_run_that_lost_its_cpu_is_marked_contended(void **state) {
    (void)state;
    /* the new run took twice as long while its timing thread got half a CPU */
    const sl_fake_run base = {.name = "k/real_time", .times = {100, 101, 99}, .n = 3};
    const sl_fake_run cur = {
        .name = "k/real_time", .times = {200, 202, 198}, .n = 3, .cpu_share = 0.5};
    sl_bench_change row;
    assert_int_equal(sl_verdict(&base, &cur, 0.05, &row), SL_BENCH_SLOWER);
    assert_true(fabs(row.new_cpu_share - 0.5) < 1e-12);
    char bpath[4096], npath[4096];
    sl_pair(&base, &cur, bpath, npath);
    assert_int_equal(sl_compare_cli(bpath, npath, NULL), 1);
    assert_non_null(strstr(sl_out, "contended: the new run got 50% of a CPU"));
}

static void test_bad_input_exits_2_naming_the_problem(void **state) {
    (void)state;
    char bpath[4096], npath[4096], missing[4096];
    const sl_fake_run run = {.name = "r", .times = {1}, .n = 1};
    sl_pair(&run, &run, bpath, npath);
    snprintf(missing, sizeof missing, "%s/missing.json", sl_dir);
    assert_int_equal(sl_compare_cli(missing, npath, NULL), 2);
    assert_non_null(strstr(sl_out, "missing.json"));
    sl_ts_write(npath, "{\"runs\": []}\n", false);
    assert_int_equal(sl_compare_cli(bpath, npath, NULL), 2);
    assert_non_null(strstr(sl_out, "new.json"));
    assert_non_null(strstr(sl_out, "benchmarks"));
    sl_pair(&run, &run, bpath, npath);
    assert_int_equal(sl_compare_cli(bpath, npath, "five"), 2);
    assert_non_null(strstr(sl_out, "--threshold"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regression_beyond_threshold_and_noise_fails_the_gate),
        cmocka_unit_test(test_change_within_noise_passes),
        cmocka_unit_test(test_threshold_decides_small_changes),
        cmocka_unit_test(test_improvement_passes),
        cmocka_unit_test(test_time_units_are_converted),
        cmocka_unit_test(test_failed_runs_and_wrong_results_fail_the_gate),
        cmocka_unit_test(test_aggregate_only_files_with_nan_are_read),
        cmocka_unit_test(test_runs_on_one_side_are_listed_not_judged),
        cmocka_unit_test(test_a_run_that_lost_its_cpu_is_marked_contended),
        cmocka_unit_test(test_bad_input_exits_2_naming_the_problem),
    };
    return cmocka_run_group_tests(tests, sl_setup, sl_teardown);
}
