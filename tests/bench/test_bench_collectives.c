/* The collective benchmarks run the way users run them — `shardlab bench --suite collectives`,
 * which starts the ranks through `shardlab launch` — on 1 KiB messages at W = 2 and 4. What is
 * checked is what the report promises: every result verified (#wrong 0), nccl-tests' bus
 * bandwidth factors, and a check that is real: corrupting one element makes #wrong count it
 * and the command fail. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench/results.h"
#include "bench/suites.h"
#include "tests/support/support.h"

static char sl_dir[256];
static char sl_out[256 * 1024];

static int sl_setup(void **state) {
    (void)state;
    sl_ts_mkdtemp("bench-coll", sl_dir, sizeof sl_dir);
    return 0;
}

static int sl_teardown(void **state) {
    (void)state;
    sl_ts_rmtree(sl_dir);
    return 0;
}

/* Every collective family at 1 KiB, W = 2 and 4, into out.json; returns the exit status. */
static int sl_run_collectives(const char *extra_env, char *json) {
    snprintf(json, 4096, "%s/out.json", sl_dir);
    remove(json);
    char *env[] = {(char *)extra_env, NULL};
    char *argv[] = {sl_ts_shardlab_bin(),
                    "bench",
                    "--suite",
                    "collectives",
                    "--quick",
                    "--worlds",
                    "2,4",
                    "--filter",
                    "coll/.*/bytes:1024/",
                    "--out",
                    json,
                    NULL};
    const sl_ts_spawn how = {.env = env};
    return sl_ts_run(argv, &how, 300, sl_out, sizeof sl_out, NULL);
}

static double sl_counter(const sl_bench_result *run, const char *key) {
    sl_bench_stat s;
    if (!sl_bench_run_stat(run, key, &s)) fail_msg("%s has no counter %s", run->name, key);
    return s.hi;
}

/* nccl-tests' bus bandwidth factor of the run's collective (DESIGN.md §6). */
static double sl_busbw_factor(const char *name, double w) {
    if (strstr(name, "/all_reduce/")) return 2 * (w - 1) / w;
    if (strstr(name, "/broadcast/")) return 1;
    return (w - 1) / w;
}

static void test_collectives_are_checked_and_report_nccl_bandwidths(void **state) {
    (void)state;
    char json[4096];
    const int rc = sl_run_collectives(NULL, json);
    if (rc != 0) fail_msg("exit status %d; output:\n%s", rc, sl_out);
    assert_non_null(strstr(sl_out, "#wrong"));
    assert_non_null(strstr(sl_out, "busbw"));
    sl_bench_results r;
    if (sl_bench_results_load(json, &r) != SL_OK) fail_msg("%s", sl_error_message());
    /* all_reduce and reduce_scatter in fp32 and bf16, native and deterministic, all_gather,
     * broadcast: 10 families at each of 2 world sizes */
    assert_int_equal(r.n_runs, 20);
    for (int i = 0; i < r.n_runs; i++) {
        const sl_bench_result *run = &r.runs[i];
        const char *name = run->name;
        if (run->error) fail_msg("%s failed: %s", name, run->error);
        const double w = sl_counter(run, "world");
        assert_true(w == 2 || w == 4);
        if (sl_counter(run, "wrong") != 0)
            fail_msg("%s: #wrong %g on correct collectives", name, sl_counter(run, "wrong"));
        assert_true(sl_counter(run, "size") == 1024);
        const double elem = strstr(name, "/bf16/") ? 2 : 4;
        assert_true(sl_counter(run, "count") == 1024 / elem);
        assert_true(sl_counter(run, "time_us") > 0);
        const double algbw = sl_counter(run, "algbw"), busbw = sl_counter(run, "busbw");
        /* both are bytes over the same time: the ratio is the factor up to double rounding */
        if (fabs(busbw / algbw - sl_busbw_factor(name, w)) > 1e-12)
            fail_msg("%s: busbw / algbw = %.17g, expected %g", name, busbw / algbw,
                     sl_busbw_factor(name, w));
    }
    sl_bench_results_free(&r);
}

static void test_a_corrupted_result_is_counted_wrong_and_fails_the_run(void **state) {
    (void)state;
    char json[4096];
    const int rc = sl_run_collectives(SL_BENCH_CORRUPT_ENV "=1", json);
    if (rc != 1) fail_msg("exit status %d, expected 1; output:\n%s", rc, sl_out);
    assert_non_null(strstr(sl_out, "wrong results"));
    sl_bench_results r;
    if (sl_bench_results_load(json, &r) != SL_OK) fail_msg("%s", sl_error_message());
    assert_int_equal(r.n_runs, 20);
    for (int i = 0; i < r.n_runs; i++) {
        /* rank 0 changed exactly one element of its result; the other ranks' are intact */
        if (sl_counter(&r.runs[i], "wrong") != 1)
            fail_msg("%s: #wrong %g, expected 1", r.runs[i].name, sl_counter(&r.runs[i], "wrong"));
    }
    sl_bench_results_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collectives_are_checked_and_report_nccl_bandwidths),
        cmocka_unit_test(test_a_corrupted_result_is_counted_wrong_and_fails_the_run),
    };
    return cmocka_run_group_tests(tests, sl_setup, sl_teardown);
}
