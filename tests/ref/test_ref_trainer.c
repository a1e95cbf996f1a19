/* The reference trainer (ref/trainer.c) as a whole: W = 1 under every strategy is plain
 * single-rank training; with fp32 everywhere every strategy and layout at W = 4 gives the same
 * trajectory within the summation-order noise floor; runs are bitwise deterministic; what the
 * trainer observes (dtypes, collectives, memory) is what the plan predicts; fp16 overflow skips
 * steps; the loss falls on the default data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/gpt2.h"
#include "ref/optim.h"
#include "ref_harness.h"
#include "shardlab/data.h"
#include "shardlab/lr_schedule.h"

#define RUN " --micro_batch_size 2 --seq_len 32 --seed 11 --lr 3e-3 --weight_decay 0.01"

static sl_ref_options quiet_options(void) {
    sl_ref_options o = sl_ref_options_default();
    o.progress = 0;
    return o;
}

/* ---- W = 1: every strategy is plain training --------------------------------------------- */

/* Single-rank training written directly on the kernels, without plans, shards or reductions:
 * full f32 parameters, loss = mean token loss, AdamW of the given variant, no clipping. */
static void plain_training(const sl_model_desc *model, sl_adam_variant adam, int steps,
                           float **final, double *losses) {
    const int b = 2, T = 32, P = model->n_params;
    const uint64_t seed = 11;
    sl_optim_config oc = {
        .lr = 3e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
    float **grads = calloc((size_t)P, sizeof *grads), **m = calloc((size_t)P, sizeof *m),
          **v = calloc((size_t)P, sizeof *v);
    for (int p = 0; p < P; p++) {
        size_t n = (size_t)model->params[p].numel;
        sl_model_init_range(model, p, seed, 0, model->params[p].numel, final[p]);
        grads[p] = calloc(n, sizeof(float));
        m[p] = calloc(n, sizeof(float));
        v[p] = calloc(n, sizeof(float));
    }
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_open("default", SL_SPLIT_TRAIN, &ds), SL_OK);
    sl_sampler_options so = sl_sampler_options_default();
    so.seed = seed;
    so.micro_batch_size = b;
    so.seq_len = T;
    sl_sampler *smp = NULL;
    assert_int_equal(sl_sampler_create(ds, &so, &smp), SL_OK);
    sl_ref_gpt2_acts *acts = NULL;
    assert_int_equal(sl_ref_gpt2_acts_create(model, b, T, &acts), SL_OK);
    int32_t inputs[64], targets[64];
    float tl[64], dl[64];
    for (int s = 0; s < steps; s++) {
        assert_int_equal(sl_sampler_fill(smp, s, 0, 0, inputs, targets, NULL, NULL), SL_OK);
        sl_ref_gpt2_embed_forward(model, final, inputs, SL_DTYPE_F32, acts);
        for (int l = 0; l < model->gpt2.n_layer; l++)
            sl_ref_gpt2_block_forward(model, l, final, SL_DTYPE_F32, acts);
        sl_ref_gpt2_head_forward(model, final, targets, SL_DTYPE_F32, acts, tl);
        double sum = 0.0;
        for (int i = 0; i < b * T; i++)
            sum += tl[i];
        losses[s] = sum / (b * T);
        for (int i = 0; i < b * T; i++)
            dl[i] = (float)(1.0 / (b * T));
        for (int p = 0; p < P; p++)
            memset(grads[p], 0, (size_t)model->params[p].numel * sizeof(float));
        sl_ref_gpt2_head_backward(model, final, grads, targets, dl, SL_DTYPE_F32, acts);
        for (int l = model->gpt2.n_layer - 1; l >= 0; l--)
            sl_ref_gpt2_block_backward(model, l, final, grads, SL_DTYPE_F32, acts);
        sl_ref_gpt2_embed_backward(model, grads, inputs, SL_DTYPE_F32, acts);
        for (int p = 0; p < P; p++) {
            assert_int_equal(sl_ref_adamw_step(adam, &oc, oc.lr, s + 1, final[p], grads[p], m[p],
                                               v[p], model->params[p].numel, SL_DTYPE_F32),
                             SL_OK);
        }
    }
    sl_ref_gpt2_acts_destroy(acts);
    sl_sampler_destroy(smp);
    sl_dataset_destroy(ds);
    for (int p = 0; p < P; p++) {
        free(grads[p]);
        free(m[p]);
        free(v[p]);
    }
    free(grads);
    free(m);
    free(v);
}

static const char *const w1_plans[] = {
    "",
    "--use_fsdp --fsdp_sharding_strategy FULL_SHARD",
    "--use_fsdp --fsdp_sharding_strategy SHARD_GRAD_OP",
    "--use_fsdp --fsdp_sharding_strategy NO_SHARD",
    "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --fsdp_use_orig_params false",
    "--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward true",
    "--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward false",
    "--use_deepspeed --zero_stage 0 --gradient_clipping 0",
    "--use_deepspeed --zero_stage 1 --gradient_clipping 0",
    "--use_deepspeed --zero_stage 2 --gradient_clipping 0",
    "--use_deepspeed --zero_stage 3 --gradient_clipping 0 --stage3_param_persistence_threshold 0",
};

static void test_w1_every_strategy_is_bitwise_plain_training(void **state) {
    (void)state;
    const int steps = 4;
    sl_model_desc *model = harness_model();
    const sl_ref_options opt = quiet_options();
    for (size_t i = 0; i < sizeof w1_plans / sizeof w1_plans[0]; i++) {
        char flags[512];
        snprintf(flags, sizeof flags, "%s --num_processes 1 --max_steps %d" RUN, w1_plans[i],
                 steps);
        ref_result r;
        harness_run(model, flags, &opt, &r);
        float **plain = calloc((size_t)model->n_params, sizeof *plain);
        for (int p = 0; p < model->n_params; p++)
            plain[p] = calloc((size_t)model->params[p].numel, sizeof(float));
        double losses[16];
        plain_training(model, r.plan->precision.adam, steps, plain, losses);
        for (int s = 0; s < steps; s++) {
            if (r.traj.steps[s].loss != losses[s]) {
                print_error("plan '%s' step %d: loss %.9g, plain training %.9g\n", w1_plans[i],
                            s + 1, r.traj.steps[s].loss, losses[s]);
                fail();
            }
        }
        for (int p = 0; p < model->n_params; p++) {
            for (int64_t e = 0; e < model->params[p].numel; e++) {
                if (memcmp(&plain[p][e], &r.final[p][e], sizeof(float)) != 0) {
                    print_error("plan '%s': %s[%lld] = %.9g, plain training %.9g\n", w1_plans[i],
                                model->params[p].name, (long long)e, r.final[p][e], plain[p][e]);
                    fail();
                }
            }
            free(plain[p]);
        }
        free(plain);
        harness_free(model, &r);
    }
    sl_model_desc_destroy(model);
}

/* ---- W = 4, fp32: every strategy within the noise floor ---------------------------------- */

/* Each dialect's strategies against that dialect's unsharded plan: the Adam formula and the
 * weight-decay default are dialect rules (DESIGN.md §4.2), not properties of a layout. */
typedef struct w4_family {
    const char *baseline;
    const char *plans[6];
} w4_family;

static const w4_family w4_families[] = {
    {"",
     {"--use_fsdp --fsdp_sharding_strategy FULL_SHARD",
      "--use_fsdp --fsdp_sharding_strategy SHARD_GRAD_OP",
      "--use_fsdp --fsdp_sharding_strategy NO_SHARD",
      "--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD --num_machines 2",
      "--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD_ZERO2 --num_machines 2",
      "--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward true"}},
    {"--use_deepspeed --zero_stage 0 --gradient_clipping 0",
     {"--use_deepspeed --zero_stage 1 --gradient_clipping 0",
      "--use_deepspeed --zero_stage 2 --gradient_clipping 0",
      "--use_deepspeed --zero_stage 3 --gradient_clipping 0 --stage3_param_persistence_threshold 0",
      "--use_deepspeed --zero_stage 3 --gradient_clipping 0"}},
};

static void test_w4_fp32_strategies_agree_within_summation_noise_floor(void **state) {
    (void)state;
    sl_model_desc *model = harness_model();
    const char *run = "--num_processes 4 --max_steps 8" RUN;
    char flags[512];
    sl_ref_options opt = quiet_options();
    for (size_t f = 0; f < sizeof w4_families / sizeof w4_families[0]; f++) {
        const w4_family *fam = &w4_families[f];
        /* The floor: the baseline against itself with every reduction summed in the opposite
         * rank order, a legal order that changes only how the sums round. */
        ref_result a, b;
        snprintf(flags, sizeof flags, "%s %s", fam->baseline, run);
        harness_run(model, flags, &opt, &a);
        opt.reverse_reduction_order = true;
        harness_run(model, flags, &opt, &b);
        opt.reverse_reduction_order = false;
        const double floor_loss = harness_loss_divergence(&b, &a);
        const double floor_param = harness_param_divergence(model, &b, &a);
        assert_true(floor_loss >
                    0.0); /* the perturbation must be visible, or it measures nothing */
        /* The strategies of one dialect differ from its unsharded plan only in how reductions
         * and norms are ordered and split (layout, divide rule, group order): perturbations of
         * the floor's kind. 4× the floor (DESIGN.md §9) bounds them. */
        const double multiple = 4.0;
        for (size_t i = 0; i < 6 && fam->plans[i]; i++) {
            ref_result r;
            snprintf(flags, sizeof flags, "%s %s", fam->plans[i], run);
            harness_run(model, flags, &opt, &r);
            const double dl = harness_loss_divergence(&r, &a);
            const double dp = harness_param_divergence(model, &r, &a);
            print_message("%-70s loss %.3g (tol %.3g)  params %.3g (tol %.3g)\n", fam->plans[i], dl,
                          multiple * floor_loss, dp, multiple * floor_param);
            assert_true(dl <= multiple * floor_loss);
            assert_true(dp <= multiple * floor_param);
            harness_free(model, &r);
        }
        harness_free(model, &a);
        harness_free(model, &b);
    }
    sl_model_desc_destroy(model);
}

/* ---- determinism ------------------------------------------------------------------------ */

static void test_two_runs_are_bitwise_identical(void **state) {
    (void)state;
    sl_model_desc *model = harness_model();
    const sl_ref_options opt = quiet_options();
    const char *flags = "--use_deepspeed --zero_stage 3 --mixed_precision bf16 --num_processes 4 "
                        "--gradient_accumulation_steps 2 --max_steps 3" RUN;
    ref_result a, b;
    harness_run(model, flags, &opt, &a);
    harness_run(model, flags, &opt, &b);
    for (int s = 0; s < a.traj.n_steps; s++) {
        assert_memory_equal(&a.traj.steps[s].loss, &b.traj.steps[s].loss, sizeof(double));
        assert_memory_equal(&a.traj.steps[s].grad_norm, &b.traj.steps[s].grad_norm, sizeof(double));
    }
    assert_int_equal(harness_param_bits_differ(model, &a, &b), 0);
    harness_free(model, &a);
    harness_free(model, &b);
    sl_model_desc_destroy(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_w1_every_strategy_is_bitwise_plain_training),
        cmocka_unit_test(test_w4_fp32_strategies_agree_within_summation_noise_floor),
        cmocka_unit_test(test_two_runs_are_bitwise_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
