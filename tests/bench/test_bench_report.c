/* `shardlab bench report` and the pieces around the runs: merging result files, the report's
 * markdown and gnuplot inputs from a constructed file, and the command's argument errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench/results.h"
#include "tests/bench/fake_results.h"
#include "tests/support/support.h"

static char sl_dir[256];
static char sl_out[64 * 1024];

static int sl_setup(void **state) {
    (void)state;
    sl_ts_mkdtemp("bench-report", sl_dir, sizeof sl_dir);
    return 0;
}

static int sl_teardown(void **state) {
    (void)state;
    sl_ts_rmtree(sl_dir);
    return 0;
}

static int sl_cli(char **args, int n) {
    char *argv[16] = {sl_ts_shardlab_bin(), "bench"};
    for (int i = 0; i < n && i < 13; i++)
        argv[2 + i] = args[i];
    argv[2 + (n < 13 ? n : 13)] = NULL;
    bool timed_out = false;
    const int rc = sl_ts_run(argv, NULL, 120, sl_out, sizeof sl_out, &timed_out);
    assert_false(timed_out);
    return rc;
}

static void sl_expect_in(const char *path, const char *needle) {
    char *text = sl_ts_read(path, NULL);
    if (!text) fail_msg("%s was not written", path);
    if (!strstr(text, needle)) fail_msg("%s does not contain '%s':\n%s", path, needle, text);
    free(text);
}

/* The sgemm peak, one matmul, memcpy (the kernels' runs, the first SL_SAMPLE_KERNEL_RUNS), then
 * all_reduce at 16 MiB on 2 and 4 ranks: busbw 6 and 4 GB/s against memcpy's 10 GB/s. */
enum { SL_SAMPLE_KERNEL_RUNS = 3, SL_SAMPLE_RUNS = 5 };
static const sl_fake_run sl_sample_runs[SL_SAMPLE_RUNS] = {
    {.name = "peak/sgemm_f32/m:2048/n:2048/k:2048/real_time",
     .unit = "ms",
     .times = {55},
     .n = 1,
     .counters = "\"gflops\": 300.0"},
    {.name = "matmul_fwd/fp32/gpt-small/fc/real_time",
     .unit = "us",
     .times = {8000},
     .n = 1,
     .counters = "\"gflops\": 150.0, \"pct_peak\": 50.0"},
    {.name = "memcpy/bytes:16777216/real_time",
     .unit = "us",
     .times = {1600},
     .n = 1,
     .counters = "\"gbps\": 10.0, \"size\": 16777216"},
    {.name = "coll/all_reduce/fp32/native/W:2/bytes:16777216/iterations:5/manual_time",
     .unit = "us",
     .times = {2800},
     .n = 1,
     .counters = "\"size\": 16777216, \"count\": 4194304, \"time_us\": 2796.2, "
                 "\"algbw\": 6.0, \"busbw\": 6.0, \"world\": 2"},
    {.name = "coll/all_reduce/fp32/native/W:4/bytes:16777216/iterations:5/manual_time",
     .unit = "us",
     .times = {6300},
     .n = 1,
     .counters = "\"size\": 16777216, \"count\": 4194304, \"time_us\": 6291.5, "
                 "\"algbw\": 2.6666666666666665, \"busbw\": 4.0, \"world\": 4"},
};

/* A result file with every sample run. */
static void sl_write_sample(const char *path) {
    sl_fake_results(path, "host-a", sl_sample_runs, SL_SAMPLE_RUNS);
}

static void test_report_writes_markdown_and_gnuplot_inputs(void **state) {
    (void)state;
    char results[4096], md[4096], path[4096];
    snprintf(results, sizeof results, "%s/results.json", sl_dir);
    sl_write_sample(results);
    char *args[] = {"report", results, "--dir", sl_dir};
    const int rc = sl_cli(args, 4);
    if (rc != 0) fail_msg("exit status %d; output:\n%s", rc, sl_out);
    snprintf(md, sizeof md, "%s/benchmarks.md", sl_dir);
    sl_expect_in(md, "**300.0 GFLOP/s**");
    sl_expect_in(md, "| matmul_fwd/fp32/gpt-small/fc |");
    sl_expect_in(md, "| 150.0 | 50.0 |");
    /* busbw / memcpy: 6 / 10 at W = 2 meets the 50% target, 4 / 10 at W = 4 does not */
    sl_expect_in(md, "| coll/all_reduce/fp32/native/W:2 | 60.0% | 16 MiB | 6.00 | 10.00 | met |");
    sl_expect_in(md,
                 "| coll/all_reduce/fp32/native/W:4 | 40.0% | 16 MiB | 4.00 | 10.00 | not met |");
    sl_expect_in(md, "![busbw, W = 4](bench-busbw-w4.png)");
    sl_expect_in(md, "host-a");
    snprintf(path, sizeof path, "%s/bench-busbw-w2.dat", sl_dir);
    sl_expect_in(path, "16777216 6.0000");
    sl_expect_in(path, "16777216 10.0000"); /* the memcpy line */
    snprintf(path, sizeof path, "%s/bench-busbw-w2.gp", sl_dir);
    sl_expect_in(path, "set output 'bench-busbw-w2.png'");
    snprintf(path, sizeof path, "%s/bench-kernels.dat", sl_dir);
    sl_expect_in(path, "\"gpt-small fc matmul_fwd\" 150.000 nan");
    snprintf(path, sizeof path, "%s/bench-kernels.gp", sl_dir);
    sl_expect_in(path, "first 300.000");
}

/* A report of two result files (the kernels measured in one run, a collective in another) holds
 * the rows of both, names both files, and leaves no staging file behind. */
static void test_report_of_several_files_holds_the_runs_of_each(void **state) {
    (void)state;
    char a[4096], b[4096], md[4096], staged[4096];
    snprintf(a, sizeof a, "%s/kernels.json", sl_dir);
    snprintf(b, sizeof b, "%s/collectives.json", sl_dir);
    sl_fake_results(a, "host-a", sl_sample_runs, SL_SAMPLE_KERNEL_RUNS);
    /* the W = 2 all_reduce alone */
    sl_fake_results(b, "host-b", sl_sample_runs + SL_SAMPLE_KERNEL_RUNS, 1);
    char *args[] = {"report", a, b, "--dir", sl_dir};
    const int rc = sl_cli(args, 5);
    if (rc != 0) fail_msg("exit status %d; output:\n%s", rc, sl_out);
    snprintf(md, sizeof md, "%s/benchmarks.md", sl_dir);
    sl_expect_in(md, "| 150.0 | 50.0 |");
    sl_expect_in(md, "| coll/all_reduce/fp32/native/W:2 | 60.0% | 16 MiB | 6.00 | 10.00 | met |");
    sl_expect_in(md, "kernels.json`: ");
    sl_expect_in(md, "collectives.json`: ");
    snprintf(staged, sizeof staged, "%s/.bench-report-merged.json", sl_dir);
    assert_false(sl_ts_exists(staged));
}

static void test_merge_keeps_every_entry_and_keeps_families_apart(void **state) {
    (void)state;
    char a[4096], b[4096], merged[4096];
    snprintf(a, sizeof a, "%s/a.json", sl_dir);
    snprintf(b, sizeof b, "%s/b.json", sl_dir);
    snprintf(merged, sizeof merged, "%s/merged.json", sl_dir);
    const sl_fake_run ra[] = {{.name = "x", .times = {1, 2, 3}, .n = 3},
                              {.name = "y", .times = {4}, .n = 1}};
    const sl_fake_run rb[] = {{.name = "z", .times = {5, 6}, .n = 2}};
    sl_fake_results(a, "host-a", ra, 2);
    sl_fake_results(b, "host-b", rb, 1);
    const char *paths[] = {a, b};
    if (sl_bench_results_merge(paths, 2, merged) != SL_OK) fail_msg("%s", sl_error_message());
    sl_bench_results r;
    if (sl_bench_results_load(merged, &r) != SL_OK) fail_msg("%s", sl_error_message());
    assert_string_equal(sl_bench_results_context(&r, "host_name"), "host-a");
    assert_int_equal(r.n_runs, 3);
    const char *names[] = {"x", "y", "z"};
    const int reps[] = {3, 1, 2};
    int64_t family[3];
    for (int i = 0; i < 3; i++) {
        const sl_bench_result *run = sl_bench_results_find(&r, names[i]);
        assert_non_null(run);
        assert_int_equal(run->n, reps[i]);
        assert_true(sl_json_int64(sl_json_get(run->reps[0], "family_index"), &family[i]));
    }
    assert_true(family[0] != family[1] && family[1] != family[2] && family[0] != family[2]);
    sl_bench_stat s;
    assert_true(sl_bench_run_stat(sl_bench_results_find(&r, "x"), "real_time", &s));
    assert_true(s.median == 2 && s.lo == 1 && s.hi == 3);
    sl_bench_results_free(&r);
}

static void sl_expect_cli_error(char **args, int n, const char *needle) {
    const int rc = sl_cli(args, n);
    if (rc != 2) fail_msg("exit status %d, expected 2; output:\n%s", rc, sl_out);
    if (!strstr(sl_out, needle)) fail_msg("output does not name '%s':\n%s", needle, sl_out);
}

static void test_bench_command_errors_name_the_problem(void **state) {
    (void)state;
    char *worlds0[] = {"--suite", "e2e", "--worlds", "0"};
    sl_expect_cli_error(worlds0, 4, "--worlds");
    char *suite[] = {"--suite", "kernel"};
    sl_expect_cli_error(suite, 2, "unknown suite 'kernel'");
    char *worlds[] = {"--worlds", "2,17"};
    sl_expect_cli_error(worlds, 2, "--worlds");
    char *filter[] = {"--suite", "kernels", "--filter", "no-benchmark-is-called-this"};
    sl_expect_cli_error(filter, 4, "no-benchmark-is-called-this");
    char *regex[] = {"--suite", "kernels", "--filter", "matmul(["};
    sl_expect_cli_error(regex, 4, "not a valid extended regular expression");
    char *flag[] = {"--repetitons", "3"};
    sl_expect_cli_error(flag, 2, "--repetitons");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_writes_markdown_and_gnuplot_inputs),
        cmocka_unit_test(test_report_of_several_files_holds_the_runs_of_each),
        cmocka_unit_test(test_merge_keeps_every_entry_and_keeps_families_apart),
        cmocka_unit_test(test_bench_command_errors_name_the_problem),
    };
    return cmocka_run_group_tests(tests, sl_setup, sl_teardown);
}
