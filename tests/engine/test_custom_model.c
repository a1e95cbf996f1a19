/* The engine trains a model that is not GPT — examples/custom_model's residual MLP, compiled in
 * here as the example ships it — under several plans on real ranks, with only the engine calls:
 * the loss falls, FSDP1 FULL_SHARD follows NO_SHARD (the same dialect's rules on a different
 * layout), two deterministic runs are bit-identical, and the state categories the engine
 * accounts equal the plan's prediction for this model too. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "examples/custom_model/mlp.c"
#include "shardlab/data.h"
#include "tests/engine/engine_harness.h"

#define STEPS 30

static sl_status cm_train(sl_session *s, const char *flags, double *losses, sl_observation *obs,
                          sl_plan **plan_out) {
    sl_model_desc *desc = NULL;
    SL_TRY(mlp_desc_create(2, 32, 256, 16, &desc));
    char text[1024];
    snprintf(text, sizeof text,
             "%s --num_processes %d --max_steps %d --micro_batch_size 2 "
             "--seq_len 16 --seed 3 --lr 1e-2 --deterministic true",
             flags, sl_session_world_size(s), STEPS);
    sl_plan *plan = NULL;
    sl_status st = SL_OK;
    {
        char storage[1024];
        char *argv[64], *rest[64];
        const int argc = sl_ts_split(text, storage, argv, 64);
        sl_config *cfg = NULL;
        int n_rest = 0;
        st = sl_config_create(&cfg);
        if (st == SL_OK) st = sl_config_parse_args(cfg, argc, argv, rest, &n_rest);
        if (st == SL_OK) st = sl_plan_compile(cfg, desc, &plan);
        sl_config_destroy(cfg);
    }
    sl_engine_model model;
    sl_engine *e = NULL;
    if (st == SL_OK) st = mlp_model_create(desc, plan, &model);
    if (st == SL_OK) st = sl_engine_create(s, plan, &model, NULL, &e);
    sl_dataset *ds = NULL;
    sl_sampler *sampler = NULL;
    if (st == SL_OK) st = sl_dataset_open("default", SL_SPLIT_TRAIN, &ds);
    if (st == SL_OK) {
        sl_sampler_options so = sl_plan_sampler_options(plan);
        st = sl_sampler_create(ds, &so, &sampler);
    }
    int32_t in[2 * 16], tg[2 * 16];
    for (int step = 0; st == SL_OK && step < STEPS; step++) {
        st = sl_engine_step_begin(e, (int64_t)plan->world_size * plan->grad_accum_steps * 32);
        for (int m = 0; st == SL_OK && m < plan->grad_accum_steps; m++) {
            st = sl_sampler_fill(sampler, step, sl_session_rank(s), m, in, tg, NULL, NULL);
            const sl_batch b = {.inputs = in, .targets = tg, .B = 2, .T = 16};
            if (st == SL_OK) st = sl_engine_micro_step(e, m, &b, NULL);
        }
        sl_trajectory_step rec;
        if (st == SL_OK) st = sl_engine_optimizer_step(e, &rec);
        losses[step] = rec.loss;
    }
    if (st == SL_OK && obs) st = sl_engine_observation(e, obs);
    sl_sampler_destroy(sampler);
    sl_dataset_destroy(ds);
    sl_engine_destroy(e);
    if (plan_out && st == SL_OK) {
        *plan_out = plan;
    } else {
        sl_plan_destroy(plan);
    }
    sl_model_desc_destroy(desc);
    return st;
}

static int cm_worker(void) {
    static const char *const plans[] = {
        "--use_fsdp --fsdp_sharding_strategy NO_SHARD",
        "--use_fsdp --fsdp_sharding_strategy FULL_SHARD",
        "--use_deepspeed --zero_stage 3 --mixed_precision bf16",
        "--use_fsdp --fsdp_version 2 --mixed_precision bf16 --gradient_accumulation_steps 2",
        "--use_deepspeed --zero_stage 2 --mixed_precision fp16 --initial_scale_power 8",
    };
    sl_session *s = NULL;
    if (sl_session_create_from_env(&s) != SL_OK) return 2;
    const bool root = sl_session_rank(s) == 0;
    double losses[5][STEPS], again[STEPS];
    int bad = 0;
    for (int i = 0; i < 5; i++) { /* every rank runs every plan: the calls are collective */
        sl_observation obs = {0};
        sl_plan *plan = NULL;
        if (cm_train(s, plans[i], losses[i], &obs, &plan) != SL_OK ||
            cm_train(s, plans[i], again, NULL, NULL) != SL_OK) {
            printf("%s: %s\n", plans[i], sl_error_message());
            return 1;
        }
        if (root) {
            printf("%s: loss %.4f -> %.4f\n", plans[i], losses[i][0], losses[i][STEPS - 1]);
            /* 30 AdamW steps at lr 1e-2 on the embedded corpus take the loss of a
             * near-uniform model (ln 256 = 5.55) well down; 10% is far beyond step noise */
            if (!(losses[i][STEPS - 1] < 0.9 * losses[i][0])) bad++;
            if (memcmp(again, losses[i], sizeof again) != 0) {
                printf("%s: two deterministic runs differ\n", plans[i]);
                bad++;
            }
            static const sl_mem_category state[] = {SL_MEM_PARAMS_MASTER, SL_MEM_PARAMS_GATHERED,
                                                    SL_MEM_GRADS_SHARDED, SL_MEM_OPTIM_STATES};
            for (size_t c = 0; c < sizeof state / sizeof *state; c++) {
                const int64_t want = plan->predicted.memory[0].peak[SL_SPACE_DEVICE][state[c]];
                const int64_t got = obs.memory[0].peak[SL_SPACE_DEVICE][state[c]];
                if (want != got) {
                    printf("%s: %s predicted %lld observed %lld\n", plans[i],
                           sl_mem_category_name(state[c]), (long long)want, (long long)got);
                    bad++;
                }
            }
        }
        sl_observation_free(&obs);
        sl_plan_destroy(plan);
    }
    if (root && !bad) {
        /* FULL_SHARD vs NO_SHARD under FSDP1 at W = 2: the same divide (by the power-of-two
         * factors, exact), the same AdamW; only the norm's association (per-shard pieces vs the
         * whole tensor) differs, by a few f32 ulps of the clip coefficient: 1e-5 relative is
         * ~100 f32 ulps accumulated over 30 steps. */
        const double d = eh_series_divergence(losses[1], losses[0], STEPS);
        printf("FULL_SHARD vs NO_SHARD loss divergence %.2e\n", d);
        if (!(d <= 1e-5)) bad++;
    }
    sl_session_destroy(s);
    return bad ? 1 : 0;
}

static void test_custom_mlp_trains_under_every_family_w2(void **state) {
    (void)state;
    static char out[64 * 1024];
    char *argv[] = {sl_ts_shardlab_bin(), "launch", "--num_processes", "2", sl_ts_self(),
                    "--worker",           NULL};
    const int st = sl_ts_run(argv, NULL, 300.0, out, sizeof out, NULL);
    if (st != 0) fail_msg("exit status %d; output:\n%s", st, out);
    if (!strstr(out, "FULL_SHARD vs NO_SHARD")) fail_msg("no comparison in the output:\n%s", out);
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "--worker")) return cm_worker();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_custom_mlp_trains_under_every_family_w2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
