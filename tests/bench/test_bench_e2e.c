/* The end-to-end suite as users run it — `shardlab bench --suite e2e`, the ranks started through
 * `shardlab launch` — on gpt-tiny at W = 1 and 2: that every run reports its throughput, its MFU
 * against the sgemm peak measured in the same run, and rank 0's memory next to the plan's
 * prediction, with the numbers wired to the right rank and category. */
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
#include "tests/support/support.h"

static char sl_dir[256];
static char sl_out[256 * 1024];

static int sl_setup(void **state) {
    (void)state;
    sl_ts_mkdtemp("bench-e2e", sl_dir, sizeof sl_dir);
    return 0;
}

static int sl_teardown(void **state) {
    (void)state;
    sl_ts_rmtree(sl_dir);
    return 0;
}

static double sl_counter(const sl_bench_results *r, const char *run_name, const char *key) {
    const sl_bench_result *run = NULL;
    char base[160];
    for (int i = 0; i < r->n_runs && !run; i++) {
        sl_bench_name_base(r->runs[i].name, base, sizeof base);
        if (!strcmp(base, run_name)) run = &r->runs[i];
    }
    if (!run) fail_msg("no run %s", run_name);
    if (run->error) fail_msg("%s failed: %s", run_name, run->error);
    sl_bench_stat s;
    if (!sl_bench_run_stat(run, key, &s)) fail_msg("%s has no counter %s", run_name, key);
    return s.median;
}

static void test_e2e_reports_throughput_mfu_and_memory_against_the_plan(void **state) {
    (void)state;
    char json[4096];
    snprintf(json, sizeof json, "%s/e2e.json", sl_dir);
    char *argv[] = {
        sl_ts_shardlab_bin(), "bench",      "--suite", "e2e", "--quick", "--worlds", "1,2",
        "--filter",           "e2e/|peak/", "--out",   json,  NULL};
    bool timed_out = false;
    const int rc = sl_ts_run(argv, NULL, 300, sl_out, sizeof sl_out, &timed_out);
    if (timed_out || rc != 0) fail_msg("exit status %d; output:\n%s", rc, sl_out);
    assert_non_null(strstr(sl_out, "tokens/s"));
    sl_bench_results r;
    if (sl_bench_results_load(json, &r) != SL_OK) fail_msg("%s", sl_error_message());
    const char *runs[] = {"e2e/gpt-tiny/single/fp32/W:1", "e2e/gpt-tiny/fsdp1_full_shard/fp32/W:2",
                          "e2e/gpt-tiny/zero3/fp32/W:2"};
    const double worlds[] = {1, 2, 2};
    for (int i = 0; i < 3; i++) {
        assert_true(sl_counter(&r, runs[i], "world") == worlds[i]);
        assert_true(sl_counter(&r, runs[i], "tokens_per_s") > 0);
        assert_true(sl_counter(&r, runs[i], "mfu") > 0);
        assert_true(sl_counter(&r, runs[i], "step_ms") > sl_counter(&r, runs[i], "optimizer_ms"));
        /* the engine accounts its sharded state exactly as the plan predicts (README: equal
         * for every strategy), so the counters must agree when they read the same rank and
         * category */
        const char *state_cats[] = {"params_master", "grads_sharded", "optim_states"};
        for (int c = 0; c < 3; c++) {
            char seen[64], pred[64];
            snprintf(seen, sizeof seen, "mem_%s_MiB", state_cats[c]);
            snprintf(pred, sizeof pred, "pred_%s_MiB", state_cats[c]);
            if (sl_counter(&r, runs[i], seen) != sl_counter(&r, runs[i], pred))
                fail_msg("%s: %s %g, predicted %g", runs[i], state_cats[c],
                         sl_counter(&r, runs[i], seen), sl_counter(&r, runs[i], pred));
        }
        assert_true(sl_counter(&r, runs[i], "mem_MiB") > 0);
    }
    /* ZeRO-3 shards the Adam moments over 2 ranks: rank 0 holds fewer than one rank alone */
    assert_true(sl_counter(&r, runs[2], "mem_optim_states_MiB") <
                sl_counter(&r, runs[0], "mem_optim_states_MiB"));
    sl_bench_results_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e2e_reports_throughput_mfu_and_memory_against_the_plan),
    };
    return cmocka_run_group_tests(tests, sl_setup, sl_teardown);
}
