/* `shardlab train` checkpoints on real ranks (DESIGN.md §7, §9 T2/T3): a run resumed under the
 * same plan and W is bit-identical to the uninterrupted one, from inside an epoch and from an
 * epoch's end; a SHARDED checkpoint loads exactly under another W and layout (4 → 2, 2 → 4,
 * 4 → 3; FSDP1 ↔ ZeRO-3 ↔ ZeRO-1 ↔ FSDP2) and the continued run stays within the derived
 * tolerance of the uninterrupted one; a save killed at any point leaves the previous checkpoint
 * loadable and `latest` naming it; `latest` with no checkpoint starts from scratch. The test
 * executable is also its own per-rank worker (--worker).
 *
 * Tolerance of a resharded continuation. The continued run differs from the uninterrupted one in
 * the order of the terms of its reductions (another W) and, across dialects, in rounding points
 * of rules that are equivalent in exact arithmetic (fp32 everywhere, weight decay 0, clipping at
 * 1.0 in both dialects: FSDP's f32 norm vs DeepSpeed's f64 per-tensor norm, torch vs fused AdamW
 * bias corrections, the divide rules) — each a change of about one ulp of f32 per operation.
 * The noise floor is measured on the reference for the source plan, as the engine tests measure
 * it: the larger divergence from the plain reference run of (a) the same run with every
 * reduction summed in reverse rank order and (b) the run started from parameters moved one ulp.
 * The tolerance is 4 × that floor (DESIGN.md §9), for the loss series and the final parameters. */
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

#include "common/param_file.h"
#include "ref/trainer.h"
#include "shardlab/checkpoint.h"
#include "shardlab/safetensors.h"
#include "tests/ckpt/ckpt_harness.h"

#define DET "--seq_len 32 --seed 11 --deterministic true --quiet " CH_MODEL_FLAGS

/* ---- worker: load a checkpoint under the launch plan and save it again as FULL --------------- */

static int worker_reshard(const char *src, const char *dst) {
    sl_session *s = NULL;
    const sl_gpt2_config cfg = {
        .n_layer = 2, .n_embd = 32, .n_head = 2, .block_size = 32, .vocab_size = 256};
    sl_model_desc *model = NULL;
    sl_plan *plan = NULL;
    sl_engine *e = NULL;
    sl_status st = sl_model_desc_create_gpt2(&cfg, &model);
    if (st == SL_OK) st = sl_session_create_from_env(&s);
    if (st == SL_OK) st = sl_session_compile_plan(s, model, &plan);
    if (st == SL_OK) st = sl_engine_create_gpt2(s, plan, model, NULL, &e);
    if (st == SL_OK) st = sl_engine_load_state(e, src, NULL);
    sl_ckpt_save_options o = sl_ckpt_save_options_default();
    o.type = SL_STATE_DICT_FULL;
    if (st == SL_OK) st = sl_engine_save_state(e, dst, &o);
    if (st != SL_OK) printf("worker: %s\n", sl_error_message());
    sl_engine_destroy(e);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(model);
    sl_session_destroy(s);
    return st == SL_OK ? 0 : 1;
}

static void train_ok(int W, const char *args) {
    const int st = ch_train(W, NULL, args, NULL);
    if (st != 0) fail_msg("W = %d train %s: exit status %d; output:\n%s", W, args, st, ch_output());
}

/* A raw-text file of 100 ten-byte lines: 90 train documents, 899 / 32 = 28 packed samples, so
 * 7 steps per epoch at G = 4. */
static void write_small_data(const char *dir, char *path, size_t cap) {
    snprintf(path, cap, "%s/data.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 100; i++)
        fprintf(f, "line %04d\n", i);
    fclose(f);
}

static void assert_same_continuation(const sl_model_desc *model, const char *full,
                                     const char *resumed, int from) {
    int sa[16], sb[16];
    double la[16], lb[16];
    const int na = ch_read_trajectory(full, sa, la, 16);
    const int nb = ch_read_trajectory(resumed, sb, lb, 16);
    assert_int_equal(nb, na - from);
    for (int i = 0; i < nb; i++) {
        assert_int_equal(sb[i], sa[from + i]);
        if (memcmp(&lb[i], &la[from + i], sizeof(double)) != 0)
            fail_msg("resumed at %d: step %d loss %.17g, uninterrupted %.17g", from, sb[i], lb[i],
                     la[from + i]);
    }
    float **a = ch_read_params(model, full, "final.safetensors");
    float **b = ch_read_params(model, resumed, "final.safetensors");
    if (!ch_params_equal(model, a, b))
        fail_msg("resumed at %d: final.safetensors differs from the uninterrupted run's", from);
    sl_param_arrays_free(model, a);
    sl_param_arrays_free(model, b);
}

static void test_same_plan_resume_is_bit_identical_inside_and_at_epoch_end_w2(void **state) {
    (void)state;
    sl_model_desc *model = ch_model();
    char root[256], data[512], full[512], args[2048];
    sl_ts_mkdtemp("epoch", root, sizeof root);
    write_small_data(root, data, sizeof data);
    snprintf(full, sizeof full, "%s/full", root);
    const char *plan = "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --micro_batch_size 2";
    snprintf(args, sizeof args,
             "%s %s --data %s --steps 9 --out %s --output_dir %s "
             "--checkpointing_steps 1",
             DET, plan, data, full, full);
    train_ok(2, args);
    const int from[] = {3, 7};
    for (int i = 0; i < 2; i++) {
        char ck[600], resumed[512];
        snprintf(ck, sizeof ck, "%s/checkpoints/checkpoint_%d", full, from[i]);
        sl_ckpt_manifest m;
        if (sl_ckpt_manifest_read(ck, model, &m) != SL_OK) fail_msg("%s", sl_error_message());
        /* 3 steps of G = 4 are inside epoch 0; 7 are all of it */
        assert_int_equal(m.data.epoch, i == 0 ? 0 : 1);
        assert_int_equal(m.data.sample_in_epoch, i == 0 ? 12 : 0);
        sl_ckpt_manifest_free(&m);
        snprintf(resumed, sizeof resumed, "%s/from%d", root, from[i]);
        snprintf(args, sizeof args,
                 "%s %s --data %s --steps 9 --out %s "
                 "--resume_from_checkpoint %s",
                 DET, plan, data, resumed, ck);
        train_ok(2, args);
        assert_same_continuation(model, full, resumed, from[i]);
    }
    sl_model_desc_destroy(model);
    sl_ts_rmtree(root);
}

/* ---- resharding -------------------------------------------------------------------------- */

#define RESHARD_RUN "--seq_len 32 --seed 11 --deterministic true --weight_decay 0"
#define STEPS 6

/* full: reference run of the source plan; returns its loss series and final parameters. */
static void ref_run(const sl_plan *plan, const sl_model_desc *model, const char *dir, bool reversed,
                    const char *init_from, double *loss, float ***final) {
    sl_ref_options opt = sl_ref_options_default();
    opt.out_dir = dir;
    opt.reverse_reduction_order = reversed;
    opt.init_from = init_from;
    sl_trajectory traj;
    sl_trajectory_init(&traj, "ref");
    sl_observation obs = {0};
    assert_int_equal(sl_observation_init(&obs, plan->world_size), SL_OK);
    if (sl_ref_train(plan, model, &opt, &traj, &obs) != SL_OK)
        fail_msg("ref: %s", sl_error_message());
    for (int i = 0; i < traj.n_steps; i++)
        loss[i] = traj.steps[i].loss;
    sl_observation_free(&obs);
    sl_trajectory_free(&traj);
    *final = ch_read_params(model, dir, "final.safetensors");
}

static double series_divergence(const double *a, const double *b, int n) {
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        const double d = fabs(a[i] - b[i]) / (fabs(b[i]) > 0.0 ? fabs(b[i]) : 1.0);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

static sl_plan *compile(const sl_model_desc *model, const char *flags) {
    char text[1024];
    snprintf(text, sizeof text, "%s", flags);
    char *argv[64], *rest[64];
    int argc = 0, n_rest = 0;
    for (char *tok = strtok(text, " "); tok && argc < 63; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    assert_int_equal(sl_config_parse_args(cfg, argc, argv, rest, &n_rest), SL_OK);
    assert_int_equal(n_rest, 0);
    sl_plan *plan = NULL;
    if (sl_plan_compile(cfg, model, &plan) != SL_OK) fail_msg("%s", sl_error_message());
    sl_config_destroy(cfg);
    return plan;
}

/* Noise floor of the source plan (see the top of the file): [0] loss series, [1] final. */
static void noise_floor(const sl_model_desc *model, const char *plan_flags, const char *root,
                        double floor[2]) {
    char flags[1024], dirs[3][512], init[600];
    snprintf(flags, sizeof flags, "%s %s --max_steps %d", plan_flags, RESHARD_RUN, STEPS);
    sl_plan *plan = compile(model, flags);
    double loss[3][STEPS];
    float **final[3];
    static int calls;
    calls++;
    for (int i = 0; i < 3; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/ref%d_%d", root, calls, i);
        assert_int_equal(mkdir(dirs[i], 0777), 0);
    }
    ref_run(plan, model, dirs[0], false, NULL, loss[0], &final[0]);
    ref_run(plan, model, dirs[1], true, NULL, loss[1], &final[1]);
    float **start = ch_read_params(model, dirs[0], "init.safetensors");
    for (int p = 0; p < model->n_params; p++) {
        for (int64_t j = 0; j < model->params[p].numel; j++)
            start[p][j] = nextafterf(start[p][j], start[p][j] >= 0.0f ? INFINITY : -INFINITY);
    }
    snprintf(init, sizeof init, "%s/init_ulp.safetensors", dirs[2]);
    assert_int_equal(sl_param_file_write(model, start, "test", init), SL_OK);
    sl_param_arrays_free(model, start);
    ref_run(plan, model, dirs[2], false, init, loss[2], &final[2]);
    floor[0] = floor[1] = 0.0;
    for (int i = 1; i < 3; i++) {
        const double ds = series_divergence(loss[i], loss[0], STEPS);
        const double dp = ch_params_divergence(model, final[i], final[0]);
        if (ds > floor[0]) floor[0] = ds;
        if (dp > floor[1]) floor[1] = dp;
    }
    for (int i = 0; i < 3; i++)
        sl_param_arrays_free(model, final[i]);
    sl_plan_destroy(plan);
}

/* The FULL checkpoint `dst` a worker saved after loading `src` holds src's state exactly. */
static void assert_same_state(const sl_model_desc *model, const char *src, const char *dst,
                              const char *what) {
    sl_ckpt_reader *a = NULL, *b = NULL;
    if (sl_ckpt_reader_open(src, model, &a) != SL_OK) fail_msg("%s", sl_error_message());
    if (sl_ckpt_reader_open(dst, model, &b) != SL_OK) fail_msg("%s", sl_error_message());
    for (int k = 0; k < 3; k++) {
        for (int p = 0; p < model->n_params; p++) {
            const int64_t n = model->params[p].numel;
            float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
            assert_non_null(x);
            assert_non_null(y);
            assert_int_equal(sl_ckpt_reader_read(a, (sl_ckpt_state)k, p, 0, n, x), SL_OK);
            assert_int_equal(sl_ckpt_reader_read(b, (sl_ckpt_state)k, p, 0, n, y), SL_OK);
            if (memcmp(x, y, (size_t)n * sizeof *x) != 0)
                fail_msg("%s: state %d of '%s' differs after the reshard", what, k,
                         model->params[p].name);
            free(x);
            free(y);
        }
    }
    assert_int_equal(sl_ckpt_reader_manifest(a)->step, sl_ckpt_reader_manifest(b)->step);
    sl_ckpt_reader_close(a);
    sl_ckpt_reader_close(b);
}

#define FSDP1 "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --max_grad_norm 1.0 "
#define FSDP2 "--use_fsdp --fsdp_version 2 --max_grad_norm 1.0 "
#define ZERO1 "--use_deepspeed --zero_stage 1 "
#define ZERO3 "--use_deepspeed --zero_stage 3 "

/* Runs of the resharding test, in order; every one keeps G = W·b = 12. `from` names a run and
 * the checkpoint it resumes (NULL: from scratch); every run checkpoints at steps 2, 4, 6. */
typedef struct reshard_run {
    const char *name;
    int W;
    const char *plan;
    const char *from;
    int from_step;
    const char *baseline; /* the uninterrupted run it must track (its own dialect), or NULL */
} reshard_run;

static const reshard_run reshard_runs[] = {
    {"A", 4, FSDP1 "--micro_batch_size 3", NULL, 0, NULL},
    {"E", 2, FSDP1 "--micro_batch_size 6", "A", 2, "A"}, /* 4 → 2 */
    {"C", 4, FSDP2 "--micro_batch_size 3", "E", 4, "A"}, /* 2 → 4, FSDP1 → FSDP2 */
    /* FSDP1 → ZeRO-3: another dialect (DeepSpeed's fused Adam rounds its bias corrections in
     * f32, far above the noise floor), so B is the baseline of the DeepSpeed runs */
    {"B", 4, ZERO3 "--micro_batch_size 3", "A", 2, NULL},
    {"D", 3, ZERO1 "--micro_batch_size 4", "B", 4, "B"}, /* 4 → 3, ZeRO-3 → ZeRO-1 */
};

/* Loads whose state must equal the checkpoint's exactly (through a worker that saves it again). */
static const reshard_run reshard_loads[] = {
    {"A@2 → W2 ZeRO-3", 2, ZERO3 "--micro_batch_size 6", "A", 2, NULL},
    {"B@4 → W2 FSDP2", 2, FSDP2 "--micro_batch_size 6", "B", 4, NULL},
    {"D@6 → W4 FSDP1", 4, FSDP1 "--micro_batch_size 3", "D", 6, NULL},
    {"E@4 → W3 ZeRO-1", 3, ZERO1 "--micro_batch_size 4", "E", 4, NULL},
};

static void check_continuation(const sl_model_desc *model, const char *root, const reshard_run *r,
                               const double floor[2]) {
    char run[512], base[512];
    snprintf(run, sizeof run, "%s/%s", root, r->name);
    snprintf(base, sizeof base, "%s/%s", root, r->baseline);
    double loss[STEPS], base_loss[STEPS];
    int steps[STEPS], base_steps[STEPS];
    const int nb = ch_read_trajectory(base, base_steps, base_loss, STEPS);
    const int n = ch_read_trajectory(run, steps, loss, STEPS);
    assert_int_equal(steps[0], r->from_step + 1);
    /* the baseline may itself start late (B resumed A): align on the step number */
    const int offset = r->from_step + 1 - base_steps[0];
    assert_int_equal(nb - offset, n);
    float **final = ch_read_params(model, run, "final.safetensors");
    float **base_final = ch_read_params(model, base, "final.safetensors");
    const double got[2] = {series_divergence(loss, base_loss + offset, n),
                           ch_params_divergence(model, final, base_final)};
    printf("%s: W=%d %-56s from %s@%d vs %s: loss %.1e/%.1e final %.1e/%.1e\n", r->name, r->W,
           r->plan, r->from, r->from_step, r->baseline, got[0], 4 * floor[0], got[1], 4 * floor[1]);
    for (int q = 0; q < 2; q++) {
        if (!(got[q] <= 4.0 * floor[q]))
            fail_msg("%s (W = %d %s, resumed from %s@%d): %s divergence %.3e from %s exceeds 4 x "
                     "the noise floor %.3e",
                     r->name, r->W, r->plan, r->from, r->from_step, q ? "final" : "loss", got[q],
                     r->baseline, floor[q]);
    }
    sl_param_arrays_free(model, final);
    sl_param_arrays_free(model, base_final);
}

static void test_sharded_checkpoint_reshards_across_w_and_layouts(void **state) {
    (void)state;
    sl_model_desc *model = ch_model();
    char root[256], args[4096];
    sl_ts_mkdtemp("reshard", root, sizeof root);
    for (size_t i = 0; i < sizeof reshard_runs / sizeof *reshard_runs; i++) {
        const reshard_run *r = &reshard_runs[i];
        char resume[700] = "";
        if (r->from) {
            snprintf(resume, sizeof resume,
                     "--resume_from_checkpoint %s/%s/checkpoints/"
                     "checkpoint_%d",
                     root, r->from, r->from_step);
        }
        snprintf(args, sizeof args,
                 "%s %s " CH_MODEL_FLAGS " --quiet --steps %d --out %s/%s "
                 "--output_dir %s/%s --checkpointing_steps 2 --state_dict_type "
                 "SHARDED_STATE_DICT %s",
                 r->plan, RESHARD_RUN, STEPS, root, r->name, root, r->name, resume);
        train_ok(r->W, args);
    }
    for (size_t i = 0; i < sizeof reshard_loads / sizeof *reshard_loads; i++) {
        const reshard_run *r = &reshard_loads[i];
        char src[600], dst[600], wargs[1400];
        snprintf(src, sizeof src, "%s/%s/checkpoints/checkpoint_%d", root, r->from, r->from_step);
        snprintf(dst, sizeof dst, "%s/load%zu", root, i);
        snprintf(args, sizeof args, "%s %s --max_steps %d", r->plan, RESHARD_RUN, STEPS);
        snprintf(wargs, sizeof wargs, "reshard %s %s", src, dst);
        if (ch_launch_self(r->W, args, wargs) != 0)
            fail_msg("%s: loading %s failed:\n%s", r->name, src, ch_output());
        assert_same_state(model, src, dst, r->name);
    }
    double torch_floor[2], ds_floor[2];
    noise_floor(model, FSDP1 "--micro_batch_size 3 --num_processes 4", root, torch_floor);
    noise_floor(model, ZERO3 "--micro_batch_size 3 --num_processes 4", root, ds_floor);
    for (size_t i = 0; i < sizeof reshard_runs / sizeof *reshard_runs; i++) {
        const reshard_run *r = &reshard_runs[i];
        if (r->baseline)
            check_continuation(model, root, r, r->baseline[0] == 'A' ? torch_floor : ds_floor);
    }
    sl_model_desc_destroy(model);
    sl_ts_rmtree(root);
}

/* ---- kill during save -------------------------------------------------------------------- */

static void test_killed_save_leaves_previous_checkpoint_loadable(void **state) {
    (void)state;
    sl_model_desc *model = ch_model();
    static const char *const faults[] = {"after_file=1,step=4",    "after_file=2,step=4",
                                         "before_manifest,step=4", "before_rename,step=4",
                                         "before_latest,step=4",   "after_file=1,step=4,rank=1"};
    const char *plan = "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --micro_batch_size 2 "
                       "--state_dict_type SHARDED_STATE_DICT --steps 5 --checkpointing_steps 2";
    char root[256], args[4096], full[2][512];
    sl_ts_mkdtemp("kill", root, sizeof root);
    for (int w = 0; w < 2; w++) { /* the uninterrupted runs at W = 1 and 2 */
        snprintf(full[w], sizeof full[w], "%s/full%d", root, w + 1);
        snprintf(args, sizeof args, "%s %s --out %s --output_dir %s", DET, plan, full[w], full[w]);
        train_ok(w + 1, args);
    }
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++) {
        const int W = strstr(faults[i], "rank=1") ? 2 : 1;
        char dir[512], env_fault[128];
        snprintf(dir, sizeof dir, "%s/k%zu", root, i);
        snprintf(env_fault, sizeof env_fault, "SHARDLAB_CKPT_FAULT=%s", faults[i]);
        char *env[] = {env_fault, NULL};
        snprintf(args, sizeof args,
                 "%s %s --out %s --output_dir %s --resume_from_checkpoint "
                 "latest",
                 DET, plan, dir, dir);
        const int st = ch_train(W, NULL, args, env);
        if (st == 0) fail_msg("%s: the run was not killed:\n%s", faults[i], ch_output());
        char ckdir[600];
        snprintf(ckdir, sizeof ckdir, "%s/checkpoints", dir);
        if (strcmp(ch_read_text(ckdir, "latest"), "checkpoint_2") != 0)
            fail_msg("%s: latest is '%s' after the killed save, expected checkpoint_2", faults[i],
                     ch_read_text(ckdir, "latest"));
        /* the restart: the same command, without the fault */
        train_ok(W, args);
        if (!strstr(ch_output(), "resuming from") || !strstr(ch_output(), "checkpoint_2"))
            fail_msg("%s: the restart did not resume from checkpoint_2:\n%s", faults[i],
                     ch_output());
        assert_string_equal(ch_read_text(ckdir, "latest"), "checkpoint_4");
        float **x = ch_read_params(model, full[W - 1], "final.safetensors");
        float **y = ch_read_params(model, dir, "final.safetensors");
        if (!ch_params_equal(model, x, y))
            fail_msg("%s: the restarted run's final state differs from the uninterrupted run's",
                     faults[i]);
        sl_param_arrays_free(model, x);
        sl_param_arrays_free(model, y);
    }
    sl_model_desc_destroy(model);
    sl_ts_rmtree(root);
}

static void test_resume_latest_without_checkpoint_starts_from_scratch(void **state) {
    (void)state;
    sl_model_desc *model = ch_model();
    char root[256], a[512], b[512], args[2048];
    sl_ts_mkdtemp("fresh", root, sizeof root);
    snprintf(a, sizeof a, "%s/plain", root);
    snprintf(b, sizeof b, "%s/latest", root);
    snprintf(args, sizeof args, "%s --micro_batch_size 2 --steps 2 --out %s", DET, a);
    train_ok(1, args);
    snprintf(args, sizeof args,
             "%s --micro_batch_size 2 --steps 2 --out %s --output_dir %s "
             "--resume_from_checkpoint latest",
             DET, b, b);
    train_ok(1, args);
    assert_non_null(strstr(ch_output(), "starting from scratch"));
    float **x = ch_read_params(model, a, "final.safetensors");
    float **y = ch_read_params(model, b, "final.safetensors");
    assert_true(ch_params_equal(model, x, y));
    sl_param_arrays_free(model, x);
    sl_param_arrays_free(model, y);
    sl_model_desc_destroy(model);
    sl_ts_rmtree(root);
}

static void test_checkpoint_flag_errors_name_the_flag(void **state) {
    (void)state;
    static const char *const cases[][2] = {
        {"--checkpointing_steps 2", "--output_dir"},
        {"--state_dict_type BOGUS --output_dir /tmp", "BOGUS"},
        {"--resume_from_checkpoint /nonexistent/ckpt", "/nonexistent/ckpt"},
        {"--checkpointing_steps x --output_dir /tmp", "--checkpointing_steps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[1024];
        snprintf(args, sizeof args, "%s --micro_batch_size 2 --steps 1 %s", DET, cases[i][0]);
        const int st = ch_train(1, NULL, args, NULL);
        if (st == 0 || !strstr(ch_output(), cases[i][1]))
            fail_msg("%s: expected a failure naming '%s'; status %d, output:\n%s", cases[i][0],
                     cases[i][1], st, ch_output());
    }
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--worker") && !strcmp(argv[2], "reshard"))
        return worker_reshard(argv[3], argv[4]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_plan_resume_is_bit_identical_inside_and_at_epoch_end_w2),
        cmocka_unit_test(test_sharded_checkpoint_reshards_across_w_and_layouts),
        cmocka_unit_test(test_killed_save_leaves_previous_checkpoint_loadable),
        cmocka_unit_test(test_resume_latest_without_checkpoint_starts_from_scratch),
        cmocka_unit_test(test_checkpoint_flag_errors_name_the_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
