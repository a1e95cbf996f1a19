/* The C API over Google Benchmark (bench/benchmark_c): registering C functions with user data,
 * arguments and ranges, the run loop, counters, errors, and the Google Benchmark JSON it writes.
 * No assertion depends on how fast anything ran. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench/benchmark_c/benchmark_c.h"
#include "bench/results.h"
#include "tests/support/support.h"

typedef struct sl_seen {
    int calls;
    int64_t args[16];
    int n_args;
} sl_seen;

static void sl_note_arg(sl_seen *s, int64_t a) {
    for (int i = 0; i < s->n_args; i++)
        if (s->args[i] == a) return;
    if (s->n_args < 16) s->args[s->n_args++] = a;
}

static void bm_trivial(sl_bench_state *st, void *user) {
    sl_seen *seen = user;
    seen->calls++;
    const int64_t n = sl_bench_arg(st, 0);
    sl_note_arg(seen, n);
    volatile int64_t sink = 0;
    while (sl_bench_keep_running(st)) {
        for (int64_t i = 0; i < n; i++)
            sink += i;
        sl_bench_pause_timing(st);
        sink += 1; /* per-iteration set-up outside the timed part */
        sl_bench_resume_timing(st);
    }
    const int64_t iters = sl_bench_iterations(st);
    sl_bench_set_items_processed(st, iters * n);
    sl_bench_set_bytes_processed(st, iters * n * 8);
    sl_bench_set_counter(st, "plain", 42, SL_BENCH_COUNTER_PLAIN);
    sl_bench_set_counter(st, "per_iteration", 10.0 * (double)iters,
                         SL_BENCH_COUNTER_AVG_ITERATIONS);
    sl_bench_set_counter(st, "invariant", 3, SL_BENCH_COUNTER_ITER_INVARIANT);
    sl_bench_set_counter(st, "tokens_per_s", 1000.0 * (double)iters, SL_BENCH_COUNTER_RATE);
    char label[32];
    snprintf(label, sizeof label, "n=%lld", (long long)n);
    sl_bench_set_label(st, label);
}

static double sl_num(const sl_json *entry, const char *key) {
    const sl_json *v = sl_json_get(entry, key);
    if (!v || sl_json_type_of(v) != SL_JSON_NUMBER) fail_msg("entry has no number \"%s\"", key);
    return sl_json_number(v);
}

static void test_c_function_with_range_and_counters_writes_google_benchmark_json(void **state) {
    (void)state;
    sl_bench_clear();
    char dir[256], path[4096];
    sl_ts_mkdtemp("bench-c", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/out.json", dir);
    sl_seen seen = {0};
    sl_bench *b;
    assert_int_equal(sl_bench_register("trivial", bm_trivial, &seen, &b), SL_OK);
    assert_int_equal(sl_bench_set_range_multiplier(b, 2), SL_OK);
    assert_int_equal(sl_bench_add_range(b, 1, 8), SL_OK); /* 1, 2, 4, 8 */
    assert_int_equal(sl_bench_set_arg_names(b, (const char *const[]){"n"}, 1), SL_OK);
    assert_int_equal(sl_bench_set_iterations(b, 5), SL_OK);
    assert_int_equal(sl_bench_set_repetitions(b, 2), SL_OK);
    assert_int_equal(sl_bench_add_context("machine", "test-machine"), SL_OK);
    const sl_bench_run_opts o = {.json_path = path};
    int n = 0;
    assert_int_equal(sl_bench_run(&o, &n), SL_OK);
    assert_int_equal(n, 4);
    /* one call per repetition of each argument: the iteration count is fixed */
    assert_int_equal(seen.calls, 8);
    assert_int_equal(seen.n_args, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(seen.args[i], (int64_t)1 << i);

    sl_bench_results r;
    if (sl_bench_results_load(path, &r) != SL_OK) fail_msg("%s", sl_error_message());
    assert_string_equal(sl_bench_results_context(&r, "machine"), "test-machine");
    assert_non_null(sl_bench_results_context(&r, "host_name"));
    assert_int_equal(r.n_runs, 4);
    for (int i = 0; i < 4; i++) {
        char name[64], label[16];
        snprintf(name, sizeof name, "trivial/n:%d/iterations:5/repeats:2", 1 << i);
        snprintf(label, sizeof label, "n=%d", 1 << i);
        const sl_bench_result *run = sl_bench_results_find(&r, name);
        if (!run) fail_msg("no run named %s in %s", name, path);
        assert_int_equal(run->n, 2);
        assert_non_null(run->median); /* Google Benchmark's aggregates of the repetitions */
        assert_null(run->error);
        assert_string_equal(run->label, label);
        for (int k = 0; k < run->n; k++) {
            const sl_json *e = run->reps[k];
            assert_true(sl_num(e, "iterations") == 5);
            assert_true(sl_num(e, "plain") == 42);
            assert_true(sl_num(e, "per_iteration") == 10); /* 10·iters / iters */
            assert_true(sl_num(e, "invariant") == 15);     /* 3 · iters */
            assert_true(sl_num(e, "tokens_per_s") > 0);
            assert_true(sl_num(e, "items_per_second") > 0);
            assert_true(sl_num(e, "bytes_per_second") > 0);
            assert_true(sl_num(e, "real_time") >= 0);
            assert_string_equal(sl_json_string(sl_json_get(e, "run_type")), "iteration");
            assert_string_equal(sl_json_string(sl_json_get(e, "time_unit")), "ns");
        }
    }
    sl_bench_results_free(&r);
    sl_bench_clear();
    sl_ts_rmtree(dir);
}

static void bm_manual(sl_bench_state *st, void *user) {
    (void)user;
    while (sl_bench_keep_running(st))
        sl_bench_set_iteration_time(st, 0.002);
}

static void test_manual_time_is_the_reported_time(void **state) {
    (void)state;
    sl_bench_clear();
    char dir[256], path[4096];
    sl_ts_mkdtemp("bench-c", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/out.json", dir);
    sl_bench *b;
    assert_int_equal(sl_bench_register("manual", bm_manual, NULL, &b), SL_OK);
    assert_int_equal(sl_bench_use_manual_time(b), SL_OK);
    assert_int_equal(sl_bench_set_iterations(b, 4), SL_OK);
    sl_bench_set_time_unit(b, SL_BENCH_MS);
    const sl_bench_run_opts o = {.json_path = path};
    assert_int_equal(sl_bench_run(&o, NULL), SL_OK);
    sl_bench_results r;
    if (sl_bench_results_load(path, &r) != SL_OK) fail_msg("%s", sl_error_message());
    const sl_bench_result *run = sl_bench_results_find(&r, "manual/iterations:4/manual_time");
    assert_non_null(run);
    assert_string_equal(sl_json_string(sl_json_get(run->reps[0], "time_unit")), "ms");
    /* the mean of the reported iteration times: 2 ms, up to double rounding of 4 · 0.002 / 4 */
    assert_true(fabs(sl_num(run->reps[0], "real_time") - 2.0) < 1e-9);
    sl_bench_stat s;
    assert_true(sl_bench_run_stat(run, "real_time", &s));
    assert_true(fabs(s.median - 2e6) < 1e-3); /* in ns */
    sl_bench_results_free(&r);
    sl_bench_clear();
    sl_ts_rmtree(dir);
}

static void bm_fails(sl_bench_state *st, void *user) {
    (void)user;
    sl_bench_pause_timing(st); /* before the loop: must be harmless */
    char msg[64];
    snprintf(msg, sizeof msg, "cannot allocate %lld bytes", (long long)sl_bench_arg(st, 0));
    sl_bench_skip_with_error(st, msg);
    assert_true(sl_bench_error_occurred(st));
    assert_false(sl_bench_keep_running(st));
    sl_bench_resume_timing(st); /* after the error: harmless too */
}

static void test_skip_with_error_is_reported_and_the_run_continues(void **state) {
    (void)state;
    sl_bench_clear();
    char dir[256], path[4096];
    sl_ts_mkdtemp("bench-c", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/out.json", dir);
    sl_seen seen = {0};
    sl_bench *b;
    assert_int_equal(sl_bench_register("fails", bm_fails, NULL, &b), SL_OK);
    assert_int_equal(sl_bench_add_arg(b, 77), SL_OK);
    assert_int_equal(sl_bench_register("after", bm_trivial, &seen, &b), SL_OK);
    assert_int_equal(sl_bench_add_arg(b, 3), SL_OK);
    assert_int_equal(sl_bench_set_iterations(b, 2), SL_OK);
    const sl_bench_run_opts o = {.json_path = path};
    assert_int_equal(sl_bench_run(&o, NULL), SL_OK);
    assert_int_equal(seen.calls, 1); /* the benchmark after the failed one still ran */
    sl_bench_results r;
    if (sl_bench_results_load(path, &r) != SL_OK) fail_msg("%s", sl_error_message());
    const sl_bench_result *run = sl_bench_results_find(&r, "fails/77");
    assert_non_null(run);
    assert_non_null(run->error);
    assert_string_equal(run->error, "cannot allocate 77 bytes");
    assert_true(sl_json_bool(sl_json_get(run->reps[0], "error_occurred")));
    sl_bench_results_free(&r);
    sl_bench_clear();
    sl_ts_rmtree(dir);
}

static void sl_expect_invalid(sl_status st, const char *needle) {
    assert_int_equal(st, SL_ERR_INVALID_ARG);
    if (!strstr(sl_error_message(), needle))
        fail_msg("message '%s' does not name '%s'", sl_error_message(), needle);
}

static void test_bad_registrations_fail_with_a_message_naming_the_benchmark(void **state) {
    (void)state;
    sl_bench_clear();
    sl_bench *b;
    assert_int_equal(sl_bench_register("shapes", bm_trivial, NULL, &b), SL_OK);
    sl_expect_invalid(sl_bench_add_range(b, 8, 1), "shapes");
    sl_expect_invalid(sl_bench_add_range(b, -1, 4), "shapes");
    assert_int_equal(sl_bench_add_args(b, (const int64_t[]){1, 2}, 2), SL_OK);
    sl_expect_invalid(sl_bench_add_arg(b, 3), "earlier runs of this benchmark have 2");
    sl_expect_invalid(sl_bench_set_arg_names(b, (const char *const[]){"n"}, 1), "shapes");
    sl_expect_invalid(sl_bench_set_range_multiplier(b, 1), "shapes");
    sl_expect_invalid(sl_bench_set_iterations(b, 0), "shapes");
    sl_expect_invalid(sl_bench_set_repetitions(b, 0), "shapes");
    sl_expect_invalid(sl_bench_set_min_time(b, 0), "shapes");
    sl_expect_invalid(sl_bench_add_dense_range(b, 0, 4, 0), "shapes");
    assert_int_equal(sl_bench_use_real_time(b), SL_OK);
    sl_expect_invalid(sl_bench_use_manual_time(b), "one clock");
    sl_expect_invalid(sl_bench_register("", bm_trivial, NULL, &b), "name");
    sl_bench_clear();
}

static void test_filters_and_output_errors(void **state) {
    (void)state;
    sl_bench_clear();
    char dir[256], path[4096], bad[4096];
    sl_ts_mkdtemp("bench-c", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/out.json", dir);
    snprintf(bad, sizeof bad, "%s/no-such-dir/out.json", dir);
    sl_seen seen = {0};
    sl_bench *b;
    assert_int_equal(sl_bench_register("dense", bm_trivial, &seen, &b), SL_OK);
    assert_int_equal(sl_bench_add_dense_range(b, 1, 5, 2), SL_OK); /* 1, 3, 5 */
    assert_int_equal(sl_bench_set_iterations(b, 1), SL_OK);
    int n = -1;
    sl_bench_run_opts o = {.json_path = path, .filter = "dense/[35]"};
    assert_int_equal(sl_bench_run(&o, &n), SL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(seen.n_args, 2);
    assert_int_equal(seen.args[0], 3);
    assert_int_equal(seen.args[1], 5);

    remove(path);
    o.filter = "nothing-has-this-name";
    assert_int_equal(sl_bench_run(&o, &n), SL_OK);
    assert_int_equal(n, 0);
    char *text = sl_ts_read(path, NULL);
    assert_null(text); /* nothing ran, nothing written */

    o.filter = "dense/([";
    sl_expect_invalid(sl_bench_run(&o, &n), "dense/([");

    o.filter = NULL;
    o.json_path = bad;
    assert_int_equal(sl_bench_run(&o, &n), SL_ERR_IO);
    if (!strstr(sl_error_message(), "no-such-dir"))
        fail_msg("message '%s' does not name the file", sl_error_message());
    sl_bench_clear();
    sl_ts_rmtree(dir);
}

static void test_context_keys_keep_their_first_value(void **state) {
    (void)state;
    assert_int_equal(sl_bench_add_context("suite_key", "a"), SL_OK);
    assert_int_equal(sl_bench_add_context("suite_key", "a"), SL_OK);
    sl_expect_invalid(sl_bench_add_context("suite_key", "b"), "suite_key");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c_function_with_range_and_counters_writes_google_benchmark_json),
        cmocka_unit_test(test_manual_time_is_the_reported_time),
        cmocka_unit_test(test_skip_with_error_is_reported_and_the_run_continues),
        cmocka_unit_test(test_bad_registrations_fail_with_a_message_naming_the_benchmark),
        cmocka_unit_test(test_filters_and_output_errors),
        cmocka_unit_test(test_context_keys_keep_their_first_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
