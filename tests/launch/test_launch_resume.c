/* `launch --max_restarts` + `train --resume_from_checkpoint latest`: a job that loses a rank —
 * SIGKILLed at a random step, or killed inside a checkpoint save — restarts, resumes from the
 * latest complete checkpoint and ends bit-identical to a run that was never interrupted
 * (deterministic reductions): the same final.safetensors bytes, and every step's loss and
 * gradient norm (each printed with 17 significant digits in metrics.jsonl) the same, including
 * the steps the killed start had already run.
 *
 * gpt-tiny, W = 2, FSDP FULL_SHARD in bf16 with accumulation 2 and a warmup+cosine schedule (so
 * that parameters, moments, the schedule's position and the sampler's all have to survive),
 * SHARDED_STATE_DICT (both ranks write files), a checkpoint every 3 of 24 steps.
 *
 * Random choices (rank, step, fault point) come from SHARDLAB_TEST_SEED (default: the time) and
 * are printed with the seed. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "shardlab/rng.h"
#include "tests/support/support.h"

#define SL_STEPS 24
#define SL_CKPT_EVERY 3
#define SL_OUT_CAP (256 * 1024)
static char sl_out[SL_OUT_CAP];

typedef struct sl_resume_fixture {
    char base[4096]; /* the uninterrupted run */
    uint64_t seed;
    uint64_t draws; /* random numbers taken so far */
} sl_resume_fixture;

static uint32_t sl_draw(sl_resume_fixture *fx, uint32_t n) {
    return (uint32_t)(sl_rng_bits(fx->seed, 0, fx->draws++) % n);
}

/* The rank program: records its pid for the watcher, arms the save fault on the first start
 * only (a restarted job saves the same steps again), and becomes `shardlab train`. */
static const char *sl_rank_script(const char *dir, const char *fault) {
    char text[8192];
    snprintf(text, sizeof text,
             "#!/bin/sh\n"
             "d='%s'\n"
             "echo $$ > \"$d/pid.$OMPI_COMM_WORLD_RANK.$SHARDLAB_RESTART_COUNT\"\n"
             "if [ \"$SHARDLAB_RESTART_COUNT\" = 0 ] && [ -n '%s' ]; then\n"
             "  SHARDLAB_CKPT_FAULT='%s'; export SHARDLAB_CKPT_FAULT\n"
             "fi\n"
             "exec '%s' train --model gpt-tiny --steps %d --micro_batch_size 2 --seq_len 32 "
             "--gradient_accumulation_steps 2 --lr_scheduler warmup_cosine --warmup_steps 4 "
             "--out \"$d/out\" --output_dir \"$d\" --checkpointing_steps %d "
             "--state_dict_type SHARDED_STATE_DICT --resume_from_checkpoint latest --quiet\n",
             dir, fault, fault, sl_ts_shardlab_bin(), SL_STEPS, SL_CKPT_EVERY);
    return sl_ts_write(sl_ts_join(dir, "rank.sh"), text, true);
}

static void sl_start_train(sl_ts_proc *p, const char *prog) {
    sl_ts_launch_start(p, NULL, 240.0,
                       (char *[]){"--num_processes", "2", "--max_restarts", "2", "--deterministic",
                                  "--use_fsdp", "--fsdp_sharding_strategy", "FULL_SHARD",
                                  "--mixed_precision", "bf16", (char *)prog, NULL});
}

static int sl_group_setup(void **state) {
    static sl_resume_fixture fx;
    const char *s = getenv("SHARDLAB_TEST_SEED");
    fx.seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    printf("seed %llu (rerun with SHARDLAB_TEST_SEED=%llu)\n", (unsigned long long)fx.seed,
           (unsigned long long)fx.seed);
    sl_ts_mkdtemp("launch-test", fx.base, sizeof fx.base);
    sl_ts_proc p;
    sl_start_train(&p, sl_rank_script(fx.base, ""));
    const int st = sl_ts_finish(&p, sl_out, sizeof sl_out, NULL);
    if (st != 0) {
        fprintf(stderr, "the uninterrupted run failed with status %d:\n%s\n", st, sl_out);
        return -1;
    }
    *state = &fx;
    return 0;
}

static int sl_group_teardown(void **state) {
    sl_resume_fixture *fx = *state;
    if (fx) sl_ts_rmtree(fx->base);
    return 0;
}

/* The value text of "key": in a metrics line ("" when absent). */
static void sl_json_field(const char *line, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *v = strstr(line, pat);
    out[0] = '\0';
    if (!v) return;
    v += strlen(pat);
    const size_t n = strcspn(v, ",}");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), v);
}

/* Every line of the interrupted run's metrics against the uninterrupted run's line of the same
 * step; every step present. */
static void sl_expect_same_metrics(const sl_resume_fixture *fx, const char *dir) {
    char base_loss[SL_STEPS + 1][64], base_norm[SL_STEPS + 1][64];
    char path[4200], line[1024], field[64];
    snprintf(path, sizeof path, "%s/out/metrics.jsonl", fx->base);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot read %s", path);
    for (int s = 1; s <= SL_STEPS; s++) {
        if (!fgets(line, sizeof line, f)) fail_msg("%s: step %d missing", path, s);
        sl_json_field(line, "step", field, sizeof field);
        assert_int_equal(atoi(field), s);
        sl_json_field(line, "loss", base_loss[s], sizeof base_loss[s]);
        sl_json_field(line, "grad_norm", base_norm[s], sizeof base_norm[s]);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/out/metrics.jsonl", dir);
    if (!(f = fopen(path, "r"))) fail_msg("cannot read %s", path);
    bool seen[SL_STEPS + 1] = {false};
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        sl_json_field(line, "step", field, sizeof field);
        const int s = atoi(field);
        if (s < 1 || s > SL_STEPS) fail_msg("%s line %d: no step in '%s'", path, lines, line);
        seen[s] = true;
        sl_json_field(line, "loss", field, sizeof field);
        if (strcmp(field, base_loss[s]) != 0) {
            fail_msg("step %d (line %d of %s): loss %s, uninterrupted %s (seed %llu)", s, lines,
                     path, field, base_loss[s], (unsigned long long)fx->seed);
        }
        sl_json_field(line, "grad_norm", field, sizeof field);
        if (strcmp(field, base_norm[s]) != 0) {
            fail_msg("step %d (line %d of %s): grad_norm %s, uninterrupted %s (seed %llu)", s,
                     lines, path, field, base_norm[s], (unsigned long long)fx->seed);
        }
    }
    fclose(f);
    for (int s = 1; s <= SL_STEPS; s++) {
        if (!seen[s])
            fail_msg("%s: step %d never ran (seed %llu)", path, s, (unsigned long long)fx->seed);
    }
}

static void sl_expect_same_final(const sl_resume_fixture *fx, const char *dir) {
    char a_path[4200], b_path[4200];
    snprintf(a_path, sizeof a_path, "%s/out/final.safetensors", fx->base);
    snprintf(b_path, sizeof b_path, "%s/out/final.safetensors", dir);
    FILE *fa = fopen(a_path, "rb"), *fb = fopen(b_path, "rb");
    if (!fa || !fb) fail_msg("cannot open %s or %s", a_path, b_path);
    size_t n = 0;
    for (int ca, cb;; n++) {
        ca = fgetc(fa);
        cb = fgetc(fb);
        if (ca != cb) {
            fclose(fa);
            fclose(fb);
            fail_msg("%s and %s differ at byte %zu (seed %llu)", a_path, b_path, n,
                     (unsigned long long)fx->seed);
        }
        if (ca == EOF) break;
    }
    fclose(fa);
    fclose(fb);
    assert_true(n > 0);
}

/* The step the restarted job resumed at (train logs "resuming from DIR at step N"); 0 when it
 * started from scratch. A from-scratch rerun would match the uninterrupted run too, so the tests
 * check where it resumed. */
static int sl_resumed_at(const sl_resume_fixture *fx) {
    const char *r = strstr(sl_out, "resuming from ");
    if (!r) {
        sl_ts_expect(sl_out, "starting from scratch");
        return 0;
    }
    const char *at = strstr(r, " at step ");
    if (!at)
        fail_msg("no step after 'resuming from' (seed %llu):\n%s", (unsigned long long)fx->seed,
                 sl_out);
    return atoi(at + strlen(" at step "));
}

static void sl_expect_resumed(const sl_resume_fixture *fx, const char *dir, int st, const char *how,
                              int at_least, int at_most) {
    if (st != 0) {
        fail_msg("%s: exit status %d, expected 0 after a restart (seed %llu); output:\n%s", how, st,
                 (unsigned long long)fx->seed, sl_out);
    }
    sl_ts_expect(sl_out, "was killed by signal 9 (SIGKILL); restart 1 of 2");
    const int at = sl_resumed_at(fx);
    if (at < at_least || at > at_most || at % SL_CKPT_EVERY != 0) {
        fail_msg("%s: the restart resumed at step %d, expected a checkpoint step in [%d, %d] "
                 "(seed %llu); output:\n%s",
                 how, at, at_least, at_most, (unsigned long long)fx->seed, sl_out);
    }
    sl_expect_same_metrics(fx, dir);
    sl_expect_same_final(fx, dir);
}

/* Polls `metrics` until it holds step `step`. */
static bool sl_await_step(const sl_ts_proc *p, const char *metrics, int step, double timeout_s) {
    char needle[32], buf[64 * 1024];
    snprintf(needle, sizeof needle, "{\"step\":%d,", step);
    const double deadline = sl_ts_now() + timeout_s;
    while (sl_ts_now() < deadline) {
        sl_ts_read_into(metrics, buf, sizeof buf);
        if (strstr(buf, needle)) return true;
        if (sl_ts_await_output(p, "shardlab: error", 0.05)) return false;
    }
    return false;
}

static void test_rank_sigkilled_at_random_step_resumes_bit_identical_w2(void **state) {
    sl_resume_fixture *fx = *state;
    const int rank = (int)sl_draw(fx, 2);
    /* after the first checkpoint (saved after step 3, before step 4 runs), and with at least half
     * the run left, so that the kill lands while it trains */
    const int step = SL_CKPT_EVERY + 1 + (int)sl_draw(fx, SL_STEPS / 2 - SL_CKPT_EVERY);
    printf("seed %llu: SIGKILL to rank %d after step %d\n", (unsigned long long)fx->seed, rank,
           step);
    char dir[4096], metrics[4200], pid_path[4200], pid_text[64];
    sl_ts_mkdtemp("launch-test", dir, sizeof dir);
    snprintf(metrics, sizeof metrics, "%s/out/metrics.jsonl", dir);
    snprintf(pid_path, sizeof pid_path, "%s/pid.%d.0", dir, rank);
    sl_ts_proc p;
    sl_start_train(&p, sl_rank_script(dir, ""));
    const bool reached = sl_await_step(&p, metrics, step, 120.0);
    sl_ts_read_into(pid_path, pid_text, sizeof pid_text);
    const int pid = atoi(pid_text);
    if (reached && pid > 0) kill(pid, SIGKILL);
    const int st = sl_ts_finish(&p, sl_out, sizeof sl_out, NULL);
    if (!reached || pid <= 0) {
        fail_msg("the first start never reached step %d or wrote %s (seed %llu); output:\n%s", step,
                 pid_path, (unsigned long long)fx->seed, sl_out);
    }
    /* the kill lands at step `step` or a little later: the checkpoint before it, or a later one */
    sl_expect_resumed(fx, dir, st, "SIGKILL at a random step",
                      SL_CKPT_EVERY * ((step - 1) / SL_CKPT_EVERY), SL_STEPS - 1);
    sl_ts_rmtree(dir);
}

static void test_rank_killed_inside_a_save_resumes_bit_identical_w2(void **state) {
    sl_resume_fixture *fx = *state;
    /* checkpoint.h's fault points: a writing rank after its 1st or 2nd file (params, optim);
     * rank 0 alone commits (manifest, rename, `latest`) */
    static const char *const points[] = {"after_file=1,rank=0",    "after_file=1,rank=1",
                                         "after_file=2,rank=0",    "after_file=2,rank=1",
                                         "before_manifest,rank=0", "before_rename,rank=0",
                                         "before_latest,rank=0"};
    const char *point = points[sl_draw(fx, sizeof points / sizeof points[0])];
    const int save_step = SL_CKPT_EVERY * (1 + (int)sl_draw(fx, SL_STEPS / SL_CKPT_EVERY / 2));
    char fault[128];
    snprintf(fault, sizeof fault, "%s,step=%d", point, save_step);
    printf("seed %llu: SHARDLAB_CKPT_FAULT=%s on the first start\n", (unsigned long long)fx->seed,
           fault);
    char dir[4096];
    sl_ts_mkdtemp("launch-test", dir, sizeof dir);
    sl_ts_proc p;
    sl_start_train(&p, sl_rank_script(dir, fault));
    const int st = sl_ts_finish(&p, sl_out, sizeof sl_out, NULL);
    sl_ts_expect(sl_out, "SHARDLAB_CKPT_FAULT: killing rank");
    /* the killed save never becomes `latest`: the one before it does (none for step 3) */
    sl_expect_resumed(fx, dir, st, fault, save_step - SL_CKPT_EVERY, save_step - SL_CKPT_EVERY);
    sl_ts_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_sigkilled_at_random_step_resumes_bit_identical_w2),
        cmocka_unit_test(test_rank_killed_inside_a_save_resumes_bit_identical_w2),
    };
    return cmocka_run_group_tests(tests, sl_group_setup, sl_group_teardown);
}
