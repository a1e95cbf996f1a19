/* examples/distill as a user runs it: a gpt-tiny teacher trained by `shardlab train`, then the
 * distillation program under `shardlab launch --num_processes 2` with the two named plans of
 * examples/configs/distillation_multi_model.yaml (ZeRO-3 bf16 teacher, ZeRO-2 student). The
 * student's loss falls, the teacher's parameters come out exactly as they went in (rounded to
 * bf16 by DeepSpeed's master init, and never stepped), and bad invocations fail naming what is
 * wrong. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shardlab/dtype.h"
#include "shardlab/safetensors.h"
#include "tests/support/support.h"

#define STEPS 24
#define OUT_CAP (1 << 16)

static const char dt_distill[] = SL_BINARY_DIR "/examples/distill";
static const char dt_config[] = SL_SOURCE_DIR "/examples/configs/distillation_multi_model.yaml";

/* A teacher trained once for every test (gpt-tiny, W = 1, fp32: 40 steps of the embedded corpus
 * take its loss from 5.5 to about 2.5, so its softmax carries something to learn). */
static char dt_dir[64];
static char dt_teacher[256];

static int dt_setup(void **state) {
    (void)state;
    sl_ts_mkdtemp("distill", dt_dir, sizeof dt_dir);
    char out_dir[96];
    snprintf(out_dir, sizeof out_dir, "%s/teacher", dt_dir);
    snprintf(dt_teacher, sizeof dt_teacher, "%s/final.safetensors", out_dir);
    char *argv[] = {sl_ts_shardlab_bin(),
                    "train",
                    "--steps",
                    "40",
                    "--lr",
                    "3e-3",
                    "--quiet",
                    "--out",
                    out_dir,
                    NULL};
    static char out[OUT_CAP];
    const int rc = sl_ts_run(argv, NULL, 60, out, sizeof out, NULL);
    if (rc != 0) fprintf(stderr, "teacher training failed (%d):\n%s\n", rc, out);
    return rc == 0 ? 0 : -1;
}

static int dt_teardown(void **state) {
    (void)state;
    sl_ts_rmtree(dt_dir);
    return 0;
}

/* The "step N loss L ce C kl K teacher_ce T" lines rank 0 prints. */
static int dt_parse_steps(const char *out, double *loss, double *ce, double *kl) {
    int n = 0;
    for (const char *p = strstr(out, "step "); p && n < STEPS; p = strstr(p + 1, "step ")) {
        int step;
        double l, c, k, t;
        if (sscanf(p, "step %d loss %lf ce %lf kl %lf teacher_ce %lf", &step, &l, &c, &k, &t) != 5)
            continue;
        assert_int_equal(step, n + 1);
        loss[n] = l;
        ce[n] = c;
        kl[n] = k;
        n++;
    }
    return n;
}

static double dt_mean(const double *x, int from, int to) {
    double s = 0;
    for (int i = from; i < to; i++)
        s += x[i];
    return s / (to - from);
}

static void test_distill_student_learns_and_teacher_is_unchanged_w2(void **state) {
    (void)state;
    char out_dir[96];
    snprintf(out_dir, sizeof out_dir, "%s/distill", dt_dir);
    char steps[16];
    snprintf(steps, sizeof steps, "%d", STEPS);
    char *argv[] = {sl_ts_shardlab_bin(),
                    "launch",
                    "--num_processes",
                    "2",
                    "--config_file",
                    (char *)dt_config,
                    (char *)dt_distill,
                    "--teacher",
                    dt_teacher,
                    "--max_steps",
                    steps,
                    "--lr",
                    "3e-3",
                    "--out",
                    out_dir,
                    NULL};
    static char out[OUT_CAP];
    const int rc = sl_ts_run(argv, NULL, 120, out, sizeof out, NULL);
    if (rc != 0) fail_msg("distill exited with %d:\n%s", rc, out);
    double loss[STEPS], ce[STEPS], kl[STEPS];
    const int n = dt_parse_steps(out, loss, ce, kl);
    if (n != STEPS) fail_msg("expected %d step lines, found %d:\n%s", STEPS, n, out);
    /* A fresh student starts near ln 256 = 5.55 in cross-entropy and far from the teacher; 24
     * AdamW steps at lr 3e-3 on the embedded corpus take both terms well down. A fall of 10%
     * of the mean of the last 4 steps against the first is several times the step-to-step
     * spread of the objective (a few % between batches of 2 × 4 × 64 tokens). */
    const double first = loss[0], last = dt_mean(loss, STEPS - 4, STEPS);
    if (!(last < 0.9 * first))
        fail_msg("student objective %.4f -> %.4f (last 4 steps): did not fall by 10%%\n%s", first,
                 last, out);
    if (!(dt_mean(kl, STEPS - 4, STEPS) < kl[0]))
        fail_msg("KL to the teacher %.4f -> %.4f: the student did not move towards the teacher",
                 kl[0], dt_mean(kl, STEPS - 4, STEPS));
    /* the objective is alpha·CE + (1 - alpha)·tau²·KL with alpha 0.5, tau 2, summed per token
     * and divided by the same token count; the two sides differ only by float rounding of
     * per-token f32 losses, far below 1e-4 relative */
    for (int i = 0; i < STEPS; i++) {
        const double want = 0.5 * ce[i] + 0.5 * 4.0 * kl[i];
        if (!(fabs(loss[i] - want) <= 1e-4 * want))
            fail_msg("step %d: loss %.6f but 0.5·ce + 2·kl = %.6f", i + 1, loss[i], want);
    }

    /* The teacher: DeepSpeed bf16 makes masters from the loaded values rounded to bf16; an
     * inference-only engine never steps them, so what it saves is that rounding, bit for bit. */
    char saved[256];
    snprintf(saved, sizeof saved, "%s/teacher.safetensors", out_dir);
    sl_safetensors *before = NULL, *after = NULL;
    if (sl_safetensors_open(dt_teacher, &before) != SL_OK ||
        sl_safetensors_open(saved, &after) != SL_OK)
        fail_msg("%s", sl_error_message());
    assert_int_equal(sl_safetensors_count(before), sl_safetensors_count(after));
    for (size_t t = 0; t < sl_safetensors_count(before); t++) {
        const sl_safetensors_tensor *b = sl_safetensors_at(before, t);
        float *x = malloc(b->numel * sizeof *x), *y = malloc(b->numel * sizeof *y);
        assert_non_null(x);
        assert_non_null(y);
        if (sl_safetensors_read_f32(before, b->name, x, b->numel) != SL_OK ||
            sl_safetensors_read_f32(after, b->name, y, b->numel) != SL_OK)
            fail_msg("%s", sl_error_message());
        sl_round_array(x, b->numel, SL_DTYPE_BF16);
        for (size_t i = 0; i < b->numel; i++) {
            if (memcmp(&x[i], &y[i], sizeof x[i]) != 0)
                fail_msg("teacher %s[%zu]: loaded %.9g (bf16), saved %.9g", b->name, i,
                         (double)x[i], (double)y[i]);
        }
        free(x);
        free(y);
    }
    sl_safetensors_close(before);
    sl_safetensors_close(after);
}

/* One process without launch: the errors come before any training. */
static void dt_expect_error(char **extra, const char *const *needles) {
    char *argv[24] = {(char *)dt_distill};
    int k = 1;
    for (int i = 0; extra[i]; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    static char out[OUT_CAP];
    const int rc = sl_ts_run(argv, NULL, 30, out, sizeof out, NULL);
    if (rc == 0) fail_msg("expected a failure, got exit 0:\n%s", out);
    for (int i = 0; needles[i]; i++) {
        if (!strstr(out, needles[i])) fail_msg("the message lacks '%s':\n%s", needles[i], out);
    }
}

static void test_distill_without_config_file_names_it(void **state) {
    (void)state;
    char *args[] = {"--teacher", dt_teacher, NULL};
    const char *const needles[] = {"--config_file", "deepspeed_configs", "teacher", NULL};
    dt_expect_error(args, needles);
}

static void test_distill_unknown_plan_name_lists_the_plans(void **state) {
    (void)state;
    char *args[] = {"--config_file", (char *)dt_config, "--num_processes", "1", "--teacher",
                    dt_teacher,      "--teacher_plan",  "mentor",          NULL};
    const char *const needles[] = {"mentor", "student", "teacher", NULL};
    dt_expect_error(args, needles);
}

static void test_distill_missing_teacher_file_names_it(void **state) {
    (void)state;
    char *args[] = {"--config_file",
                    (char *)dt_config,
                    "--num_processes",
                    "1",
                    "--teacher",
                    "/nonexistent/teacher.safetensors",
                    NULL};
    const char *const needles[] = {"/nonexistent/teacher.safetensors", NULL};
    dt_expect_error(args, needles);
}

static void test_distill_unknown_flag_is_named(void **state) {
    (void)state;
    char *args[] = {"--teacher", dt_teacher, "--temprature", "2", NULL};
    const char *const needles[] = {"--temprature", "temperature", NULL};
    dt_expect_error(args, needles);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distill_student_learns_and_teacher_is_unchanged_w2),
        cmocka_unit_test(test_distill_without_config_file_names_it),
        cmocka_unit_test(test_distill_unknown_plan_name_lists_the_plans),
        cmocka_unit_test(test_distill_missing_teacher_file_names_it),
        cmocka_unit_test(test_distill_unknown_flag_is_named),
    };
    return cmocka_run_group_tests(tests, dt_setup, dt_teardown);
}
