/* The PyTorch peer: bench/peer/gpt2_peer.py writes Google Benchmark JSON that the result reader
 * takes, bench/peer/peer_check.py reproduces the reference's step-1 loss and gradients on the
 * same weights and batch (DESIGN.md §9 T5), the e2e table and report put peer rows beside the
 * engine's and say whether the engine is ahead, and `shardlab bench` without torch says why the
 * rows are missing. The tests that need torch are skipped where no Python imports it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench/report.h"
#include "bench/results.h"
#include "bench/tables.h"
#include "shardlab/safetensors.h"
#include "tests/bench/fake_results.h"
#include "tests/support/support.h"

static char sl_dir[256];
static char sl_out[128 * 1024];

static int sl_setup(void **state) {
    (void)state;
    sl_ts_mkdtemp("bench-peer", sl_dir, sizeof sl_dir);
    return 0;
}

static int sl_teardown(void **state) {
    (void)state;
    sl_ts_rmtree(sl_dir);
    return 0;
}

/* A Python that imports torch ($SHARDLAB_PYTHON, else Debian's), or NULL. */
static char *sl_torch_python(void) {
    static char path[512];
    const char *env = getenv("SHARDLAB_PYTHON");
    const char *candidates[] = {env && *env ? env : NULL, "/usr/bin/python3",
                                "/usr/local/bin/python3"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        if (!candidates[i]) continue;
        snprintf(path, sizeof path, "%s", candidates[i]);
        char *argv[] = {path, "-c", "import torch", NULL};
        bool timed_out = false;
        if (sl_ts_run(argv, NULL, 120, sl_out, sizeof sl_out, &timed_out) == 0) return path;
    }
    return NULL;
}

static const sl_bench_result *sl_find(const sl_bench_results *r, const char *base_name) {
    char base[160];
    for (int i = 0; i < r->n_runs; i++) {
        sl_bench_name_base(r->runs[i].name, base, sizeof base);
        if (!strcmp(base, base_name)) return &r->runs[i];
    }
    fail_msg("no run %s", base_name);
    return NULL;
}

static double sl_counter(const sl_bench_result *run, const char *key) {
    sl_bench_stat s;
    if (!sl_bench_run_stat(run, key, &s)) fail_msg("%s has no counter %s", run->name, key);
    return s.median;
}

static void test_peer_script_writes_results_the_reader_takes(void **state) {
    (void)state;
    char *python = sl_torch_python();
    if (!python) skip();
    char json[4096];
    snprintf(json, sizeof json, "%s/peer.json", sl_dir);
    char *argv[] = {python,
                    SL_SOURCE_DIR "/bench/peer/gpt2_peer.py",
                    "--models",
                    "gpt-tiny",
                    "--dtypes",
                    "fp32,bf16",
                    "--steps",
                    "1",
                    "--warmup",
                    "0",
                    "--threads",
                    "1",
                    "--peak_gflops",
                    "100",
                    "--repetitions",
                    "2",
                    "--out",
                    json,
                    NULL};
    bool timed_out = false;
    const int rc = sl_ts_run(argv, NULL, 120, sl_out, sizeof sl_out, &timed_out);
    if (timed_out || rc != 0) fail_msg("exit status %d:\n%s", rc, sl_out);
    sl_bench_results r;
    if (sl_bench_results_load(json, &r) != SL_OK) fail_msg("%s", sl_error_message());
    const char *names[] = {"peer/torch_eager/gpt-tiny/fp32/W:1",
                           "peer/torch_eager/gpt-tiny/bf16/W:1"};
    for (int i = 0; i < 2; i++) {
        const sl_bench_result *run = sl_find(&r, names[i]);
        assert_int_equal(run->n, 2);
        assert_null(run->error);
        for (int k = 0; k < run->n; k++) {
            /* tokens/s is B·T = 8·64 tokens over the step time, in every repetition */
            const double tok = sl_json_number(sl_json_get(run->reps[k], "tokens_per_s"));
            const double ms = sl_json_number(sl_json_get(run->reps[k], "step_ms"));
            if (!(tok > 0 && fabs(tok * ms / 1e3 - 512) < 1e-9 * 512))
                fail_msg("%s repetition %d: %g tokens/s, %g ms/step", names[i], k, tok, ms);
        }
        assert_true(sl_counter(run, "mfu") > 0);
        assert_true(sl_counter(run, "world") == 1);
        assert_non_null(strstr(run->label, "threads=1"));
    }
    sl_bench_results_free(&r);
}

/* The reference's step 1 on gpt-tiny in fp32 at W = 2 with accumulation 2, and PyTorch on the
 * same weights and batch: both compute in f32 and differ only in the order of their sums. The
 * longest sums have n = 1024 terms (the batch's tokens into a weight gradient), whose relative
 * error is bounded by n·u = 1024 · 2^-24 ≈ 6.1e-5 (Higham's γ_n): 1e-4 of each tensor's
 * largest magnitude covers it (1e-6 is typical). */
static void test_peer_check_reproduces_the_reference_step1_gradients(void **state) {
    (void)state;
    char *python = sl_torch_python();
    if (!python) skip();
    char run[256];
    sl_ts_mkdtemp("bench-peer-ref", run, sizeof run);
    char *ref[] = {sl_ts_shardlab_bin(),
                   "ref",
                   "--steps",
                   "1",
                   "--num_processes",
                   "2",
                   "--gradient_accumulation_steps",
                   "2",
                   "--quiet",
                   "--out",
                   run,
                   NULL};
    bool timed_out = false;
    int rc = sl_ts_run(ref, NULL, 120, sl_out, sizeof sl_out, &timed_out);
    if (timed_out || rc != 0) fail_msg("shardlab ref: exit status %d:\n%s", rc, sl_out);
    char out[4096], grads[4096];
    snprintf(out, sizeof out, "%s/peer_step1.safetensors", run);
    snprintf(grads, sizeof grads, "%s/grads_step1.safetensors", run);
    char *check[] = {
        python, SL_SOURCE_DIR "/bench/peer/peer_check.py", run, "--out", out, "--tolerance", "1e-4",
        NULL};
    rc = sl_ts_run(check, NULL, 120, sl_out, sizeof sl_out, &timed_out);
    if (timed_out || rc != 0) fail_msg("peer_check.py: exit status %d:\n%s", rc, sl_out);
    /* the C side reads what the script wrote: every gradient of the run under the same name */
    sl_safetensors *peer = NULL, *want = NULL;
    if (sl_safetensors_open(out, &peer) != SL_OK || sl_safetensors_open(grads, &want) != SL_OK)
        fail_msg("%s", sl_error_message());
    float loss = 0;
    assert_int_equal(sl_safetensors_read_f32(peer, "loss", &loss, 1), SL_OK);
    assert_true(loss > 5 && loss < 6); /* a fresh model on V = 256: about ln 256 = 5.55 */
    for (size_t t = 0; t < sl_safetensors_count(want); t++) {
        const sl_safetensors_tensor *g = sl_safetensors_at(want, t);
        float *a = malloc(g->numel * sizeof *a), *b = malloc(g->numel * sizeof *b);
        assert_non_null(a);
        assert_non_null(b);
        if (sl_safetensors_read_f32(want, g->name, a, g->numel) != SL_OK ||
            sl_safetensors_read_f32(peer, g->name, b, g->numel) != SL_OK)
            fail_msg("%s", sl_error_message());
        double scale = 0, diff = 0;
        for (size_t i = 0; i < g->numel; i++) {
            scale = fmax(scale, fabs(a[i]));
            diff = fmax(diff, fabs((double)a[i] - b[i]));
        }
        if (!(diff <= 1e-4 * scale))
            fail_msg("%s: largest difference %.3g against magnitude %.3g", g->name, diff, scale);
        free(a);
        free(b);
    }
    sl_safetensors_close(peer);
    sl_safetensors_close(want);
    sl_ts_rmtree(run);
}

/* Engine 1000 tokens/s against PyTorch 500 (fp32) and 1250 (bf16), MFU 5, 2 and 6 %. */
static void sl_write_steps(const char *path) {
    const sl_fake_run runs[] = {
        {.name = "e2e/gpt-tiny/single/fp32/W:1/iterations:10/manual_time",
         .unit = "ms",
         .times = {512},
         .n = 1,
         .counters = "\"tokens_per_s\": 1000.0, \"step_ms\": 512.0, \"optimizer_ms\": 10.0, "
                     "\"comm_wait_ms\": 3.5, \"mfu\": 5.0, \"world\": 1, \"mem_MiB\": 9.8, "
                     "\"pred_MiB\": 9.7"},
        {.name = "peer/torch_eager/gpt-tiny/fp32/W:1/manual_time",
         .unit = "ms",
         .times = {1024},
         .n = 1,
         .counters = "\"tokens_per_s\": 500.0, \"step_ms\": 1024.0, \"mfu\": 2.0, \"world\": 1"},
        {.name = "peer/torch_eager/gpt-tiny/bf16/W:1/manual_time",
         .unit = "ms",
         .times = {409.6},
         .n = 1,
         .counters = "\"tokens_per_s\": 1250.0, \"step_ms\": 409.6, \"mfu\": 6.0, \"world\": 1"},
    };
    sl_fake_results(path, "host-p", runs, 3);
}

static char *sl_print(void (*fn)(const sl_bench_results *, FILE *, bool), const sl_bench_results *r,
                      bool markdown) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(r, f, markdown);
    fclose(f);
    return buf;
}

static void sl_print_e2e_void(const sl_bench_results *r, FILE *f, bool markdown) {
    sl_bench_print_e2e(r, f, markdown);
}

static void test_peer_rows_sit_beside_the_engine_with_the_target_verdict(void **state) {
    (void)state;
    char results[4096], path[4096];
    snprintf(results, sizeof results, "%s/steps.json", sl_dir);
    sl_write_steps(results);
    sl_bench_results r;
    if (sl_bench_results_load(results, &r) != SL_OK) fail_msg("%s", sl_error_message());
    char *table = sl_print(sl_print_e2e_void, &r, true);
    /* a peer row has no optimizer split, no engine collectives and no accounted memory: blank
     * cells */
    if (!strstr(table, "| peer/torch_eager/gpt-tiny/fp32/W:1 | 500 | 1024.0 |  |  | 2.0 |  |  |"))
        fail_msg("no peer row in:\n%s", table);
    if (!strstr(table, "| e2e/gpt-tiny/single/fp32/W:1 | 1000 | 512.0 | 10.0 | 3.5 | 5.0 | 9.8 | "
                       "9.7 |"))
        fail_msg("no engine row with its exposed communication in:\n%s", table);
    free(table);
    char *targets = sl_print(sl_bench_print_peer_targets, &r, false);
    if (!strstr(targets, "PyTorch eager fp32 500 tokens/s (2.00x; target: ahead): met") ||
        !strstr(targets, "PyTorch eager bf16 1250 tokens/s (0.80x; target: ahead): not met"))
        fail_msg("verdicts missing:\n%s", targets);
    free(targets);
    char *kernels = sl_print(sl_bench_print_kernels, &r, true);
    assert_null(strstr(kernels, "peer/")); /* steps are not kernels */
    free(kernels);

    int n_plots = 0;
    const sl_bench_report_opts o = {.dir = sl_dir, .results = "steps.json"};
    if (sl_bench_report_write(&r, &o, &n_plots) != SL_OK) fail_msg("%s", sl_error_message());
    sl_bench_results_free(&r);
    snprintf(path, sizeof path, "%s/bench-e2e-mfu.dat", sl_dir);
    char *dat = sl_ts_read(path, NULL);
    assert_non_null(dat);
    if (!strstr(dat, "\"gpt-tiny single W=1\" 5.000") ||
        !strstr(dat, "\"gpt-tiny torch eager fp32\" 2.000") ||
        !strstr(dat, "\"gpt-tiny torch eager bf16\" 6.000"))
        fail_msg("MFU data:\n%s", dat);
    free(dat);
    snprintf(path, sizeof path, "%s/bench-e2e-mfu.gp", sl_dir);
    char *gp = sl_ts_read(path, NULL);
    assert_non_null(gp);
    assert_non_null(strstr(gp, "set output 'bench-e2e-mfu.png'"));
    free(gp);
    snprintf(path, sizeof path, "%s/benchmarks.md", sl_dir);
    char *md = sl_ts_read(path, NULL);
    assert_non_null(md);
    assert_non_null(strstr(md, "![MFU per configuration](bench-e2e-mfu.png)"));
    assert_non_null(strstr(md, "| peer/torch_eager/gpt-tiny/bf16/W:1 | 1250 |"));
    assert_null(strstr(md, "## Kernels")); /* no kernel runs in this file */
    free(md);
}

static void test_bench_without_torch_says_why_the_peer_rows_are_missing(void **state) {
    (void)state;
    char json[4096];
    snprintf(json, sizeof json, "%s/none.json", sl_dir);
    /* the filter selects no engine run, so nothing but the peer's discovery happens */
    char *argv[] = {sl_ts_shardlab_bin(), "bench",  "--suite", "e2e", "--quick", "--worlds", "1",
                    "--filter",           "^peer/", "--out",   json,  NULL};
    char *env[] = {"SHARDLAB_PYTHON=/nonexistent/python3", NULL};
    const sl_ts_spawn how = {.env = env};
    bool timed_out = false;
    sl_ts_run(argv, &how, 120, sl_out, sizeof sl_out, &timed_out);
    assert_false(timed_out);
    if (!strstr(sl_out, "PyTorch peer rows skipped") ||
        !strstr(sl_out, "SHARDLAB_PYTHON=/nonexistent/python3 cannot be run") ||
        !strstr(sl_out, "ci/deps.sh --with-torch"))
        fail_msg("no notice:\n%s", sl_out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_script_writes_results_the_reader_takes),
        cmocka_unit_test(test_peer_check_reproduces_the_reference_step1_gradients),
        cmocka_unit_test(test_peer_rows_sit_beside_the_engine_with_the_target_verdict),
        cmocka_unit_test(test_bench_without_torch_says_why_the_peer_rows_are_missing),
    };
    return cmocka_run_group_tests(tests, sl_setup, sl_teardown);
}
