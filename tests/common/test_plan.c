/* The plan compiler's dialect rules (DESIGN.md §4), strategies, hybrid groups, divide factors,
 * provenance and error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "plan_fixture.h"

static void assert_table(const char *flags, const char *const expected[SL_STAGE_COUNT]) {
    fixture fx = fixture_compile(flags);
    sl_dtype table[SL_STAGE_COUNT];
    sl_plan_dtype_table(fx.plan, table);
    for (int s = 0; s < SL_STAGE_COUNT; s++) {
        if (strcmp(sl_dtype_name(table[s]), expected[s]) != 0 ||
            fx.plan->predicted.dtype_table[s] != table[s]) {
            fail_msg("%s: %s is %s, expected %s", flags, sl_stage_key((sl_stage)s),
                     sl_dtype_name(table[s]), expected[s]);
        }
    }
    fixture_free(&fx);
}

/* The three columns of DESIGN.md §4.3 (Accelerate's concept guide table). */
static void test_dtype_table_fsdp_bf16_load_no_mixed_precision(void **state) {
    (void)state;
    const char *col[] = {"bf16", "bf16", "bf16", "bf16", "bf16"};
    assert_table("--use_fsdp --load_dtype bf16 --num_processes 2", col);
}

static void test_dtype_table_fsdp_fp32_load_bf16_mixed_precision(void **state) {
    (void)state;
    const char *col[] = {"fp32", "fp32", "bf16", "bf16", "fp32"};
    assert_table("--use_fsdp --mixed_precision bf16 --num_processes 2", col);
}

static void test_dtype_table_deepspeed_fp32_load_bf16(void **state) {
    (void)state;
    const char *col[] = {"fp32", "fp32", "bf16", "bf16", "fp32"};
    assert_table("--use_deepspeed --mixed_precision bf16 --num_processes 2", col);
}

/* Accelerate's upcast (>= 0.30) turns a bf16-loaded FSDP model's flat params into fp32 under
 * mixed precision; `off` keeps raw PyTorch FSDP's bf16 optimizer (accelerate#2624). */
static void test_upcast_sharded_params_auto_and_off(void **state) {
    (void)state;
    const char *upcast[] = {"fp32", "fp32", "bf16", "bf16", "fp32"};
    const char *raw[] = {"bf16", "bf16", "bf16", "bf16", "bf16"};
    assert_table("--use_fsdp --load_dtype bf16 --mixed_precision bf16", upcast);
    assert_table("--use_fsdp --fsdp_version 2 --load_dtype bf16 --mixed_precision bf16", upcast);
    assert_table("--use_fsdp --load_dtype bf16 --mixed_precision bf16 "
                 "--fsdp_upcast_sharded_params off",
                 raw);
    fixture fx = fixture_compile("--use_fsdp --load_dtype bf16 --mixed_precision bf16");
    assert_true(fx.plan->precision.upcast_sharded_params);
    fixture_free(&fx);
    fx = fixture_compile("--use_fsdp --load_dtype bf16");
    assert_false(fx.plan->precision.upcast_sharded_params);
    fixture_free(&fx);
}

static void test_fsdp1_precision_rules(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_fsdp --mixed_precision bf16 --num_processes 4");
    const sl_precision *p = &fx.plan->precision;
    assert_int_equal(fx.plan->dialect, SL_DIALECT_FSDP1);
    assert_int_equal(p->master_init, SL_MASTER_EXACT);
    assert_int_equal(p->reduce_dtype, SL_DTYPE_BF16); /* defaults to param_dtype */
    assert_int_equal(p->grad_divide, SL_DIVIDE_PRE_POST_POW2);
    assert_int_equal(p->accum_dtype, SL_DTYPE_BF16); /* no_sync: unsharded grads in param dtype */
    assert_int_equal(p->optim_dtype, SL_DTYPE_F32);
    assert_int_equal(p->norm, SL_NORM_F32);
    assert_int_equal(p->clip, SL_CLIP_TORCH);
    assert_int_equal(p->adam, SL_ADAM_TORCH);
    assert_int_equal(p->loss_scale, SL_SCALER_NONE);
    assert_int_equal(fx.plan->accum_mode, SL_ACCUM_LOCAL_UNSHARDED);
    assert_true(fx.plan->optim.weight_decay == 0.01); /* torch AdamW */
    assert_true(fx.plan->optim.max_grad_norm == 0.0);
    assert_non_null(strstr(fx.plan->follows, "FSDP1"));
    fixture_free(&fx);
    fx = fixture_compile("--use_fsdp --mixed_precision bf16 --fsdp_reduce_dtype fp32");
    assert_int_equal(fx.plan->precision.reduce_dtype, SL_DTYPE_F32);
    assert_int_equal(fx.plan->precision.accum_dtype, SL_DTYPE_BF16);
    fixture_free(&fx);
}

/* FSDP2: ReduceOp.AVG for fp32/bf16, the pre/post split for fp16; no-sync accumulation in
 * reduce_dtype; fp16 gets torch's GradScaler (init 2^16, x2 per 2000 clean steps, x0.5). */
static void test_fsdp2_precision_rules(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_fsdp --fsdp_version 2 --mixed_precision bf16 "
                                 "--fsdp_reduce_dtype fp32 --num_processes 4");
    assert_int_equal(fx.plan->dialect, SL_DIALECT_FSDP2);
    assert_int_equal(fx.plan->precision.grad_divide, SL_DIVIDE_AVG);
    assert_int_equal(fx.plan->precision.accum_dtype, SL_DTYPE_F32);
    fixture_free(&fx);
    fx = fixture_compile("--use_fsdp --fsdp_version 2 --mixed_precision fp16 --num_processes 4");
    const sl_precision *p = &fx.plan->precision;
    assert_int_equal(p->reduce_dtype, SL_DTYPE_F16);
    assert_int_equal(p->grad_divide, SL_DIVIDE_PRE_POST_POW2);
    assert_int_equal(p->accum_dtype, SL_DTYPE_F16);
    assert_int_equal(p->loss_scale, SL_SCALER_TORCH_GRADSCALER);
    assert_true(fx.plan->scaler.init_scale == 65536.0);
    assert_true(fx.plan->scaler.growth_factor == 2.0);
    assert_true(fx.plan->scaler.backoff_factor == 0.5);
    assert_int_equal(fx.plan->scaler.growth_interval, 2000);
    assert_int_equal(fx.plan->backward_prefetch, 1); /* fully_shard always prefetches */
    fixture_free(&fx);
}

/* DeepSpeed: fp32 masters made from the bf16-cast module, pre-divide, fp64 norms, DS clip,
 * FusedAdam, weight decay 0, gradient_clipping 1.0, ZeRO-2/3 accumulate reduced shards. */
static void test_deepspeed_precision_rules(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_deepspeed --mixed_precision bf16 --num_processes 4");
    const sl_precision *p = &fx.plan->precision;
    assert_int_equal(fx.plan->zero_stage, 2);
    assert_int_equal(p->master_dtype, SL_DTYPE_F32);
    assert_int_equal(p->master_init, SL_MASTER_ROUNDED);
    assert_int_equal(p->reduce_dtype, SL_DTYPE_BF16);
    assert_int_equal(p->grad_divide, SL_DIVIDE_PRE);
    assert_int_equal(p->accum_dtype, SL_DTYPE_BF16);
    assert_int_equal(p->norm, SL_NORM_F64);
    assert_int_equal(p->clip, SL_CLIP_DS);
    assert_int_equal(p->adam, SL_ADAM_DS_FUSED);
    assert_int_equal(p->loss_scale, SL_SCALER_NONE);
    assert_false(p->upcast_sharded_params);
    assert_int_equal(fx.plan->accum_mode, SL_ACCUM_REDUCED_SHARD);
    assert_true(fx.plan->optim.weight_decay == 0.0);
    assert_true(fx.plan->optim.max_grad_norm == 1.0);
    fixture_free(&fx);
    fx = fixture_compile("--use_deepspeed --mixed_precision bf16 --communication_data_type fp32 "
                         "--grad_accum_dtype fp32 --gradient_clipping 0");
    assert_int_equal(fx.plan->precision.reduce_dtype, SL_DTYPE_F32);
    assert_int_equal(fx.plan->precision.accum_dtype, SL_DTYPE_F32);
    assert_true(fx.plan->optim.max_grad_norm == 0.0);
    fixture_free(&fx);
    fx = fixture_compile("--use_deepspeed"); /* no fp16/bf16: fp32 everywhere, exact masters */
    assert_int_equal(fx.plan->precision.param_dtype, SL_DTYPE_F32);
    assert_int_equal(fx.plan->precision.master_init, SL_MASTER_EXACT);
    fixture_free(&fx);
}

static void test_deepspeed_divide_post_for_stage0_and_no_reduce_scatter(void **state) {
    (void)state;
    const struct {
        const char *flags;
        sl_grad_divide divide;
    } cases[] = {{"--use_deepspeed --zero_stage 0", SL_DIVIDE_POST},
                 {"--use_deepspeed --zero_stage 1", SL_DIVIDE_PRE},
                 {"--use_deepspeed --zero_stage 1 --reduce_scatter false", SL_DIVIDE_POST},
                 {"--use_deepspeed --zero_stage 2 --reduce_scatter false", SL_DIVIDE_POST},
                 {"--use_deepspeed --zero_stage 3", SL_DIVIDE_PRE}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture fx = fixture_compile(cases[i].flags);
        if (fx.plan->precision.grad_divide != cases[i].divide) {
            fail_msg("%s: divide %d, expected %d", cases[i].flags,
                     (int)fx.plan->precision.grad_divide, (int)cases[i].divide);
        }
        fixture_free(&fx);
    }
}

/* fp16: FP16_Optimizer at stage 0, DynamicLossScaler under ZeRO, static with loss_scale > 0. */
static void test_deepspeed_fp16_loss_scalers(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_deepspeed --zero_stage 0 --mixed_precision fp16");
    assert_int_equal(fx.plan->precision.loss_scale, SL_SCALER_FP16_OPT_DYNAMIC);
    fixture_free(&fx);
    fx = fixture_compile("--use_deepspeed --zero_stage 1 --mixed_precision fp16");
    const sl_loss_scaler_config *s = &fx.plan->scaler;
    assert_int_equal(fx.plan->precision.loss_scale, SL_SCALER_ZERO_DYNAMIC);
    assert_true(s->init_scale == 65536.0);
    assert_int_equal(s->growth_interval, 1000);
    assert_int_equal(s->hysteresis, 2);
    assert_false(s->consecutive_hysteresis);
    assert_true(s->min_scale == 1.0);
    fixture_free(&fx);
    fx = fixture_compile("--use_deepspeed --zero_stage 3 --mixed_precision fp16 "
                         "--initial_scale_power 8 --loss_scale_window 50 --hysteresis 1 "
                         "--consecutive_hysteresis --min_loss_scale 0.25");
    s = &fx.plan->scaler;
    assert_true(s->init_scale == 256.0);
    assert_int_equal(s->growth_interval, 50);
    assert_int_equal(s->hysteresis, 1);
    assert_true(s->consecutive_hysteresis);
    assert_true(s->min_scale == 0.25);
    fixture_free(&fx);
    fx = fixture_compile("--use_deepspeed --mixed_precision fp16 --loss_scale 128");
    assert_int_equal(fx.plan->precision.loss_scale, SL_SCALER_STATIC);
    assert_true(fx.plan->scaler.init_scale == 128.0);
    fixture_free(&fx);
}

/* DDP: the module's own parameters, autocast compute, .grad reduced in the parameter dtype after
 * a pre-divide by W. */
static void test_ddp_precision_rules(void **state) {
    (void)state;
    fixture fx = fixture_compile("--mixed_precision fp16 --num_processes 2");
    const sl_precision *p = &fx.plan->precision;
    assert_int_equal(fx.plan->dialect, SL_DIALECT_DDP);
    assert_int_equal(fx.plan->strategy, SL_STRATEGY_NO_SHARD);
    assert_int_equal(p->master_dtype, SL_DTYPE_F32);
    assert_int_equal(p->param_dtype, SL_DTYPE_F16);
    assert_int_equal(p->reduce_dtype, SL_DTYPE_F32);
    assert_int_equal(p->grad_divide, SL_DIVIDE_PRE);
    assert_int_equal(p->accum_dtype, SL_DTYPE_F32);
    assert_int_equal(p->loss_scale, SL_SCALER_TORCH_GRADSCALER);
    assert_int_equal(fx.plan->accum_mode, SL_ACCUM_LOCAL_UNSHARDED);
    fixture_free(&fx);
    const char *bf16[] = {"bf16", "bf16", "bf16", "bf16", "bf16"};
    assert_table("--load_dtype bf16", bf16);
}

static void test_accumulation_modes_by_stage(void **state) {
    (void)state;
    const struct {
        const char *flags;
        sl_accum_mode mode;
    } cases[] = {{"--use_deepspeed --zero_stage 0", SL_ACCUM_LOCAL_UNSHARDED},
                 {"--use_deepspeed --zero_stage 1", SL_ACCUM_LOCAL_UNSHARDED},
                 {"--use_deepspeed --zero_stage 2", SL_ACCUM_REDUCED_SHARD},
                 {"--use_deepspeed --zero_stage 3", SL_ACCUM_REDUCED_SHARD},
                 {"--use_fsdp --fsdp_version 2", SL_ACCUM_LOCAL_UNSHARDED},
                 {"", SL_ACCUM_LOCAL_UNSHARDED}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture fx = fixture_compile(cases[i].flags);
        assert_int_equal(fx.plan->accum_mode, cases[i].mode);
        fixture_free(&fx);
    }
}

static void test_strategies_from_names_aliases_and_stages(void **state) {
    (void)state;
    const struct {
        const char *flags;
        sl_strategy strategy;
    } cases[] = {
        {"--use_fsdp", SL_STRATEGY_FULL_SHARD},
        {"--use_fsdp --fsdp_sharding_strategy 2", SL_STRATEGY_SHARD_GRAD_OP},
        {"--use_fsdp --fsdp_sharding_strategy NO_SHARD", SL_STRATEGY_NO_SHARD},
        {"--use_fsdp --fsdp_reshard_after_forward false", SL_STRATEGY_SHARD_GRAD_OP},
        {"--use_fsdp --fsdp_sharding_strategy 5 --num_processes 4 --num_machines 2",
         SL_STRATEGY_HYBRID_SHARD_ZERO2},
        {"--use_fsdp --fsdp_version 2", SL_STRATEGY_FULL_SHARD},
        {"--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward false",
         SL_STRATEGY_SHARD_GRAD_OP},
        {"--use_fsdp --fsdp_version 2 --fsdp_sharding_strategy SHARD_GRAD_OP",
         SL_STRATEGY_SHARD_GRAD_OP},
        {"--use_fsdp --fsdp_version 2 --fsdp_sharding_strategy HYBRID_SHARD --num_processes 4 "
         "--num_machines 2",
         SL_STRATEGY_HYBRID_SHARD},
        {"--use_deepspeed --zero_stage 0", SL_STRATEGY_NO_SHARD},
        {"--use_deepspeed --zero_stage 1", SL_STRATEGY_SHARD_OPTIM},
        {"--use_deepspeed --zero_stage 2", SL_STRATEGY_SHARD_GRAD_OP},
        {"--use_deepspeed --zero_stage 3", SL_STRATEGY_FULL_SHARD},
        {"--num_processes 2", SL_STRATEGY_NO_SHARD},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture fx = fixture_compile(cases[i].flags);
        if (fx.plan->strategy != cases[i].strategy) {
            fail_msg("%s: %s, expected %s", cases[i].flags, sl_strategy_name(fx.plan->strategy),
                     sl_strategy_name(cases[i].strategy));
        }
        fixture_free(&fx);
    }
}

/* W = 8 on 2 machines: shard groups {0,1,2,3} and {4,5,6,7}; rank = replica·4 + shard rank. */
static void test_hybrid_groups_w8_m2(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD "
                                 "--num_processes 8 --num_machines 2");
    assert_int_equal(fx.plan->shard_group_size, 4);
    assert_int_equal(fx.plan->n_replicas, 2);
    const int shard[8] = {0, 1, 2, 3, 0, 1, 2, 3}, replica[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    for (int r = 0; r < 8; r++) {
        assert_int_equal(sl_plan_shard_rank(fx.plan, r), shard[r]);
        assert_int_equal(sl_plan_replica(fx.plan, r), replica[r]);
    }
    fixture_free(&fx);
    /* without hybrid sharding the machines do not split the shard group */
    fx = fixture_compile("--use_fsdp --num_processes 8 --num_machines 2");
    assert_int_equal(fx.plan->shard_group_size, 8);
    assert_int_equal(fx.plan->n_replicas, 1);
    assert_int_equal(sl_plan_shard_rank(fx.plan, 5), 5);
    fixture_free(&fx);
}

/* torch FSDP1's factors, worked out from its loop (double while f divides W and W/f > f):
 * the reference table gives W = 3 (2, 1.5), 6 (4, 1.5), 12 (4, 3), 16 (4, 4), 32 (8, 4),
 * 64 (8, 8). */
static void test_pre_post_pow2_factors_table(void **state) {
    (void)state;
    const struct {
        int w;
        double pre, post;
    } t[] = {{1, 1, 1},    {2, 2, 1},    {3, 2, 1.5},  {4, 2, 2},    {5, 2, 2.5},  {6, 4, 1.5},
             {7, 2, 3.5},  {8, 4, 2},    {9, 2, 4.5},  {10, 4, 2.5}, {11, 2, 5.5}, {12, 4, 3},
             {13, 2, 6.5}, {14, 4, 3.5}, {15, 2, 7.5}, {16, 4, 4},   {32, 8, 4},   {64, 8, 8}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        double pre, post;
        sl_divide_factors_pow2(t[i].w, &pre, &post);
        if (pre != t[i].pre || post != t[i].post) {
            fail_msg("W = %d: (%g, %g), expected (%g, %g)", t[i].w, pre, post, t[i].pre, t[i].post);
        }
    }
}

/* The defining property for every W: pre is a power of two, pre · post = W, the previous factor
 * f = pre/2 passed the loop's test (W % f == 0 and W/f > f) and pre itself fails it. */
static void test_pre_post_pow2_defining_property(void **state) {
    (void)state;
    for (int w = 1; w <= 4096; w++) {
        double dpre, post;
        sl_divide_factors_pow2(w, &dpre, &post);
        const int pre = (int)dpre;
        if ((double)pre != dpre || (pre & (pre - 1)) != 0 || dpre * post != (double)w) {
            fail_msg("W = %d: pre %g post %g", w, dpre, post);
        }
        const bool pre_fails = w % pre != 0 || w / pre <= pre;
        const bool prev_passes = pre == 1 || (w % (pre / 2) == 0 && w / (pre / 2) > pre / 2);
        if (!pre_fails || !prev_passes)
            fail_msg("W = %d: pre %d is not where the loop stops", w, pre);
    }
}

/* --------------------------------------------------------------- provenance */

static const char *config_value(const sl_plan *plan, const char *key, sl_source_kind *kind) {
    const sl_source *src = NULL;
    const char *v = sl_config_get(plan->config, key, &src);
    if (v) *kind = src->kind;
    return v;
}

static void test_provenance_records_flags_and_defaults(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_fsdp --mixed_precision bf16 --num_processes 4");
    sl_source_kind kind;
    assert_string_equal(config_value(fx.plan, "mixed_precision", &kind), "bf16");
    assert_int_equal(kind, SL_SOURCE_FLAG);
    assert_string_equal(config_value(fx.plan, "load_dtype", &kind), "fp32");
    assert_int_equal(kind, SL_SOURCE_DEFAULT);
    assert_string_equal(config_value(fx.plan, "fsdp_sharding_strategy", &kind), "FULL_SHARD");
    assert_int_equal(kind, SL_SOURCE_DEFAULT);
    assert_string_equal(config_value(fx.plan, "weight_decay", &kind), "0.01");
    assert_int_equal(kind, SL_SOURCE_DEFAULT);
    assert_null(config_value(fx.plan, "zero_stage", &kind)); /* not consulted by FSDP */
    char(*why)[256] = fx.plan->precision_why;
    fixture_assert_contains(why[SL_PREC_PARAM_DTYPE], "--mixed_precision");
    fixture_assert_contains(why[SL_PREC_LOAD_DTYPE], "default");
    fixture_assert_contains(why[SL_PREC_REDUCE_DTYPE], "param_dtype");
    fixture_assert_contains(why[SL_PREC_GRAD_DIVIDE], "pre = 2");
    for (int f = 0; f < SL_PREC_FIELD_COUNT; f++) {
        if (!why[f][0])
            fail_msg("%s has no provenance", sl_precision_field_name((sl_precision_field)f));
    }
    fixture_free(&fx);
    fx = fixture_compile("--use_deepspeed --mixed_precision bf16 --communication_data_type fp32 "
                         "--load_dtype bf16");
    fixture_assert_contains(fx.plan->precision_why[SL_PREC_LOAD_DTYPE], "--load_dtype");
    fixture_assert_contains(fx.plan->precision_why[SL_PREC_REDUCE_DTYPE],
                            "--communication_data_type");
    assert_string_equal(sl_precision_field_value(&fx.plan->precision, SL_PREC_MASTER_INIT),
                        "ROUNDED");
    assert_string_equal(sl_precision_field_value(&fx.plan->precision, SL_PREC_ADAM), "DS_FUSED");
    fixture_free(&fx);
}

/* A value from a config file is named by file and line in the error. */
static void test_error_names_a_file_source(void **state) {
    (void)state;
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    const sl_source yaml = {.kind = SL_SOURCE_FILE,
                            .file = "fsdp.yaml",
                            .line = 7,
                            .spelling = "fsdp_config.fsdp_version"};
    assert_int_equal(sl_config_set(cfg, "use_fsdp", "true", &yaml), SL_OK);
    assert_int_equal(sl_config_set(cfg, "fsdp_version", "3", &yaml), SL_OK);
    sl_model_desc *m = fixture_model("gpt-tiny");
    sl_plan *plan = NULL;
    assert_int_equal(sl_plan_compile(cfg, m, &plan), SL_ERR_CONFIG);
    assert_null(plan);
    fixture_assert_contains(sl_error_message(), "fsdp_version (from fsdp.yaml:7 "
                                                "(fsdp_config.fsdp_version))");
    sl_model_desc_destroy(m);
    sl_config_destroy(cfg);
}

/* Every rejected combination is an SL_ERR_CONFIG naming the flag (with its source) and what is
 * allowed. */
static void test_errors_name_the_flag(void **state) {
    (void)state;
    const struct {
        const char *flags;
        const char *needles[3];
    } cases[] = {
        {"--use_fsdp --zero_stage 3",
         {"zero_stage (from --zero_stage)", "DeepSpeed", "--use_deepspeed"}},
        {"--use_fsdp --use_deepspeed",
         {"use_fsdp (from --use_fsdp)", "use_deepspeed (from --use_deepspeed)", "exclusive"}},
        {"--use_fsdp --fsdp_version 2 --fsdp_sharding_strategy HYBRID_SHARD_ZERO2 --num_processes "
         "4 --num_machines 2",
         {"HYBRID_SHARD_ZERO2 (from --fsdp_sharding_strategy)", "FSDP2", "HYBRID_SHARD"}},
        {"--use_fsdp --fsdp_version 2 --fsdp_sharding_strategy NO_SHARD",
         {"NO_SHARD", "--fsdp_sharding_strategy", "fsdp_version 1"}},
        {"--use_fsdp --fsdp_sharding_strategy FULLY_SHARD",
         {"--fsdp_sharding_strategy", "'FULLY_SHARD'", "SHARD_GRAD_OP"}},
        {"--num_processes 6 --num_machines 4",
         {"num_processes = 6 (from --num_processes)", "num_machines = 4 (from --num_machines)",
          "multiple of 4"}},
        {"--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD --num_processes 4",
         {"HYBRID_SHARD (from --fsdp_sharding_strategy)", "num_machines >= 2", "default"}},
        {"--use_fsdp --fsdp_version 3", {"fsdp_version (from --fsdp_version)", "[1, 2]", "3"}},
        {"--use_deepspeed --zero_stage 4", {"zero_stage (from --zero_stage)", "[0, 3]", "4"}},
        {"--mixed_precision fp8",
         {"mixed_precision (from --mixed_precision)", "'fp8'", "no, fp16, bf16"}},
        {"--load_dtype int8", {"load_dtype (from --load_dtype)", "'int8'", "fp32, bf16, fp16"}},
        {"--use_fsdp --fsdp_upcast_sharded_params on",
         {"fsdp_upcast_sharded_params = on (from --fsdp_upcast_sharded_params)", "mixed_precision",
          "auto"}},
        {"--use_deepspeed --zero_stage 2 --offload_param_device cpu",
         {"offload_param_device = cpu (from --offload_param_device)", "zero_stage 3",
          "--zero_stage"}},
        {"--use_deepspeed --zero_stage 0 --offload_optimizer_device cpu",
         {"offload_optimizer_device = cpu (from --offload_optimizer_device)", "zero_stage >= 1",
          "--zero_stage"}},
        {"--use_deepspeed --max_grad_norm 1",
         {"max_grad_norm (from --max_grad_norm)", "gradient_clipping", "DDP and FSDP"}},
        {"--fsdp_offload_params",
         {"fsdp_offload_params (from --fsdp_offload_params)", "FSDP option", "--use_fsdp"}},
        {"--gradient_clipping 1",
         {"gradient_clipping (from --gradient_clipping)", "DeepSpeed option", "--use_deepspeed"}},
        {"--use_fsdp --fsdp_version 2 --fsdp_use_orig_params false",
         {"fsdp_use_orig_params (from --fsdp_use_orig_params)", "FSDP1 option", "fsdp_version 1"}},
        {"--use_fsdp --fsdp_version 2 --fsdp_forward_prefetch",
         {"fsdp_forward_prefetch = true (from --fsdp_forward_prefetch)", "FSDP2",
          "fsdp_version 1"}},
        {"--use_fsdp --fsdp_sharding_strategy SHARD_GRAD_OP --fsdp_reshard_after_forward true",
         {"fsdp_reshard_after_forward = true (from --fsdp_reshard_after_forward)",
          "SHARD_GRAD_OP (from --fsdp_sharding_strategy)", "contradicts"}},
        {"--seq_len 65", {"seq_len = 65 (from --seq_len)", "block_size 64", "seq_len <= 64"}},
        {"--adam_beta2 1", {"adam_beta2 = 1 (from --adam_beta2)", "[0, 1)", "bias correction"}},
        {"--gradient_accumulation_steps 0",
         {"gradient_accumulation_steps (from --gradient_accumulation_steps)", "[1,", "0"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const sl_status st = fixture_compile_status(cases[i].flags);
        if (st != SL_ERR_CONFIG) {
            fail_msg("%s: %s, expected SL_ERR_CONFIG", cases[i].flags, sl_status_name(st));
        }
        for (int n = 0; n < 3; n++) {
            if (!strstr(sl_error_message(), cases[i].needles[n])) {
                fail_msg("%s: expected \"%s\" in: %s", cases[i].flags, cases[i].needles[n],
                         sl_error_message());
            }
        }
    }
}

/* Compiling does not touch the caller's config; the plan keeps its own copy. */
static void test_compile_leaves_the_config_alone(void **state) {
    (void)state;
    sl_config *cfg = fixture_config("--use_fsdp --num_processes 2");
    sl_model_desc *m = fixture_model("gpt-tiny");
    sl_plan *plan = NULL;
    assert_int_equal(sl_plan_compile(cfg, m, &plan), SL_OK);
    assert_int_equal(sl_config_size(cfg), 2);
    assert_true(sl_config_size(plan->config) > 2);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
    sl_config_destroy(cfg);
}

static void test_run_and_optimizer_settings(void **state) {
    (void)state;
    fixture fx = fixture_compile("--micro_batch_size 2 --seq_len 32 --max_steps 7 --seed 99 "
                                 "--lr 3e-4 --adam_beta1 0.8 --lr_scheduler warmup_cosine "
                                 "--warmup_steps 2 --min_lr_ratio 0.1 --max_grad_norm 1.5 "
                                 "--gradient_accumulation_steps 3 "
                                 "--loss_normalization per_microbatch_mean --deterministic");
    const sl_plan *p = fx.plan;
    assert_int_equal(p->micro_batch_size, 2);
    assert_int_equal(p->seq_len, 32);
    assert_int_equal(p->steps, 7);
    assert_int_equal(p->seed, 99);
    assert_int_equal(p->grad_accum_steps, 3);
    assert_int_equal(p->loss_norm, SL_LOSS_NORM_PER_MICROBATCH_MEAN);
    assert_true(p->deterministic);
    assert_true(p->optim.lr == 3e-4);
    assert_true(p->optim.beta1 == 0.8);
    assert_true(p->optim.beta2 == 0.999);
    assert_true(p->optim.eps == 1e-8);
    assert_int_equal(p->optim.schedule, SL_LR_WARMUP_COSINE);
    assert_int_equal(p->optim.warmup_steps, 2);
    assert_true(p->optim.min_lr_ratio == 0.1);
    assert_true(p->optim.max_grad_norm == 1.5);
    fixture_free(&fx);
    fx = fixture_compile("");
    assert_int_equal(fx.plan->micro_batch_size, 4);
    assert_int_equal(fx.plan->seq_len, 64);
    assert_int_equal(fx.plan->steps, 100);
    assert_int_equal(fx.plan->seed, 1234);
    assert_int_equal(fx.plan->loss_norm, SL_LOSS_NORM_GLOBAL_TOKENS);
    assert_int_equal(fx.plan->world_size, 1);
    fixture_free(&fx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_table_fsdp_bf16_load_no_mixed_precision),
        cmocka_unit_test(test_dtype_table_fsdp_fp32_load_bf16_mixed_precision),
        cmocka_unit_test(test_dtype_table_deepspeed_fp32_load_bf16),
        cmocka_unit_test(test_upcast_sharded_params_auto_and_off),
        cmocka_unit_test(test_fsdp1_precision_rules),
        cmocka_unit_test(test_fsdp2_precision_rules),
        cmocka_unit_test(test_deepspeed_precision_rules),
        cmocka_unit_test(test_deepspeed_divide_post_for_stage0_and_no_reduce_scatter),
        cmocka_unit_test(test_deepspeed_fp16_loss_scalers),
        cmocka_unit_test(test_ddp_precision_rules),
        cmocka_unit_test(test_accumulation_modes_by_stage),
        cmocka_unit_test(test_strategies_from_names_aliases_and_stages),
        cmocka_unit_test(test_hybrid_groups_w8_m2),
        cmocka_unit_test(test_pre_post_pow2_factors_table),
        cmocka_unit_test(test_pre_post_pow2_defining_property),
        cmocka_unit_test(test_provenance_records_flags_and_defaults),
        cmocka_unit_test(test_error_names_a_file_source),
        cmocka_unit_test(test_errors_name_the_flag),
        cmocka_unit_test(test_compile_leaves_the_config_alone),
        cmocka_unit_test(test_run_and_optimizer_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
