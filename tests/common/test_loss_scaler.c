/* Loss-scaler state machines: each kind follows the sequence of scales, hysteresis values and
 * skipped steps worked out by hand from the framework source it reproduces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "shardlab/loss_scaler.h"

/* One update: the overflow flag fed in, and the state expected after it. */
typedef struct expected_step {
    bool overflow;
    double scale;
    int hysteresis; /* -1: not checked */
    bool skip;
} expected_step;

static void run_sequence(sl_loss_scaler *s, const expected_step *steps, int n) {
    for (int i = 0; i < n; i++) {
        bool skip = !steps[i].skip;
        sl_status st = sl_loss_scaler_update(s, steps[i].overflow, &skip);
        if (st != SL_OK)
            fail_msg("update %d (overflow=%d): %s: %s", i, steps[i].overflow, sl_status_name(st),
                     sl_error_message());
        if (s->scale != steps[i].scale)
            fail_msg("update %d (overflow=%d): scale %.17g, expected %.17g", i, steps[i].overflow,
                     s->scale, steps[i].scale);
        if (steps[i].hysteresis >= 0 && s->cur_hysteresis != steps[i].hysteresis)
            fail_msg("update %d (overflow=%d): cur_hysteresis %d, expected %d", i,
                     steps[i].overflow, s->cur_hysteresis, steps[i].hysteresis);
        if (skip != steps[i].skip)
            fail_msg("update %d (overflow=%d): skip %d, expected %d", i, steps[i].overflow, skip,
                     steps[i].skip);
    }
}

static sl_loss_scaler_config deepspeed_config(double init, int window, int hysteresis,
                                              double min_scale) {
    sl_loss_scaler_config c = {.init_scale = init,
                               .growth_factor = 2.0,
                               .backoff_factor = 0.5,
                               .growth_interval = window,
                               .hysteresis = hysteresis,
                               .consecutive_hysteresis = false,
                               .min_scale = min_scale};
    return c;
}

static sl_loss_scaler_config gradscaler_config(double init, int interval) {
    sl_loss_scaler_config c = {.init_scale = init,
                               .growth_factor = 2.0,
                               .backoff_factor = 0.5,
                               .growth_interval = interval,
                               .hysteresis = 1,
                               .min_scale = 1.0};
    return c;
}

/* Window 4, hysteresis 2, overflow at cur_iter 3, 4, 9. stable = cur_iter - last_overflow - 1.
 * it3: hysteresis 2 -> 1, scale kept; it4: hysteresis is 1 -> halve (1024 -> 512);
 * it9: hysteresis still 1 (only a growth refills it) -> 256; it14: stable 4 -> 512, refill 2;
 * it18: stable 8 -> 1024. */
static void test_zero_dynamic_hysteresis_then_halving_then_window_growth(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = deepspeed_config(1024, 4, 2, 1);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_ZERO_DYNAMIC, &c), SL_OK);
    const expected_step steps[] = {
        {false, 1024, 2, false}, {false, 1024, 2, false}, {false, 1024, 2, false}, /* it0-2 */
        {true, 1024, 1, true},                                                     /* it3 */
        {true, 512, 1, true},                                                      /* it4 */
        {false, 512, 1, false},  {false, 512, 1, false},  {false, 512, 1, false},  /* it5-7 */
        {false, 512, 1, false},                                                    /* it8 */
        {true, 256, 1, true},                                                      /* it9 */
        {false, 256, 1, false},  {false, 256, 1, false},  {false, 256, 1, false},  /* it10-12 */
        {false, 256, 1, false},                                                    /* it13 */
        {false, 512, 2, false},                                                    /* it14 */
        {false, 512, 2, false},  {false, 512, 2, false},  {false, 512, 2, false},  /* it15-17 */
        {false, 1024, 2, false},                                                   /* it18 */
    };
    run_sequence(&s, steps, (int)(sizeof steps / sizeof steps[0]));
    assert_int_equal(s.cur_iter, 19);
    assert_int_equal(s.last_overflow_iter, 9);
}

/* No overflow: stable = cur_iter, so the first growth is the update with cur_iter == window,
 * i.e. the (window+1)-th update; then every window updates. */
static void test_zero_dynamic_first_growth_after_window_plus_one_clean_steps(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = deepspeed_config(1024, 4, 2, 1);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_ZERO_DYNAMIC, &c), SL_OK);
    const expected_step steps[] = {
        {false, 1024, 2, false}, {false, 1024, 2, false}, {false, 1024, 2, false},
        {false, 1024, 2, false}, {false, 2048, 2, false}, {false, 2048, 2, false},
        {false, 2048, 2, false}, {false, 2048, 2, false}, {false, 4096, 2, false},
    };
    run_sequence(&s, steps, (int)(sizeof steps / sizeof steps[0]));
}

/* DeepSpeed defaults (window 1000): the 1001st clean update doubles 2^16. */
static void test_zero_dynamic_default_window_doubles_on_step_1001(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = deepspeed_config(65536, 1000, 2, 1);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_ZERO_DYNAMIC, &c), SL_OK);
    bool skip;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sl_loss_scaler_update(&s, false, &skip), SL_OK);
    assert_true(s.scale == 65536);
    assert_int_equal(sl_loss_scaler_update(&s, false, &skip), SL_OK);
    assert_true(s.scale == 131072);
}

/* consecutive_hysteresis refills on every clean step, so isolated overflows never halve. */
static void test_zero_dynamic_consecutive_hysteresis_refills_on_clean_steps(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = deepspeed_config(1024, 1000, 2, 1);
    c.consecutive_hysteresis = true;
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_ZERO_DYNAMIC, &c), SL_OK);
    const expected_step steps[] = {
        {true, 1024, 1, true}, {false, 1024, 2, false}, {true, 1024, 1, true},
        {true, 512, 1, true},  {false, 512, 2, false},  {true, 512, 1, true},
    };
    run_sequence(&s, steps, (int)(sizeof steps / sizeof steps[0]));

    /* The same flags without consecutive_hysteresis: the clean step does not refill. */
    c.consecutive_hysteresis = false;
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_ZERO_DYNAMIC, &c), SL_OK);
    const expected_step plain[] = {
        {true, 1024, 1, true},
        {false, 1024, 1, false},
        {true, 512, 1, true},
    };
    run_sequence(&s, plain, (int)(sizeof plain / sizeof plain[0]));
}

/* Hysteresis 1: init 4 -> 2 -> 1 (= min) -> the next overflow is fatal, state untouched. */
static void test_zero_dynamic_overflow_at_min_scale_is_numeric_error(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = deepspeed_config(4, 1000, 1, 1);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_ZERO_DYNAMIC, &c), SL_OK);
    const expected_step steps[] = {{true, 2, 1, true}, {true, 1, 1, true}};
    run_sequence(&s, steps, 2);
    bool skip = false;
    assert_int_equal(sl_loss_scaler_update(&s, true, &skip), SL_ERR_NUMERIC);
    assert_true(skip);
    assert_true(s.scale == 1);
    assert_int_equal(s.cur_iter, 2);
    assert_non_null(strstr(sl_error_message(), "min_loss_scale"));
    assert_non_null(strstr(sl_error_message(), "minimum 1"));
}

/* A halving that would go below min stops at min (max(scale/2, min)); the error comes only once
 * the scale equals min. */
static void test_zero_dynamic_halving_clamps_to_min_before_failing(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = deepspeed_config(4, 1000, 1, 1.5);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_ZERO_DYNAMIC, &c), SL_OK);
    const expected_step steps[] = {{true, 2, 1, true}, {true, 1.5, 1, true}};
    run_sequence(&s, steps, 2);
    bool skip;
    assert_int_equal(sl_loss_scaler_update(&s, true, &skip), SL_ERR_NUMERIC);
}

/* The ZeRO sequence above without hysteresis: it3 1024 -> 512, it4 -> 256, it9 -> 128,
 * it14 (stable 4) -> 256, it18 (stable 8) -> 512. */
static void test_fp16_opt_dynamic_halves_on_every_overflow(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = deepspeed_config(1024, 4, 2, 1);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_FP16_OPT_DYNAMIC, &c), SL_OK);
    const expected_step steps[] = {
        {false, 1024, -1, false}, {false, 1024, -1, false}, {false, 1024, -1, false},
        {true, 512, -1, true},    {true, 256, -1, true},    {false, 256, -1, false},
        {false, 256, -1, false},  {false, 256, -1, false},  {false, 256, -1, false},
        {true, 128, -1, true},    {false, 128, -1, false},  {false, 128, -1, false},
        {false, 128, -1, false},  {false, 128, -1, false},  {false, 256, -1, false},
        {false, 256, -1, false},  {false, 256, -1, false},  {false, 256, -1, false},
        {false, 512, -1, false},
    };
    run_sequence(&s, steps, (int)(sizeof steps / sizeof steps[0]));
}

/* At min the stage-0 optimizer keeps the scale (no error) and keeps skipping. */
static void test_fp16_opt_dynamic_clamps_at_min_without_error(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = deepspeed_config(4, 1000, 2, 1);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_FP16_OPT_DYNAMIC, &c), SL_OK);
    const expected_step steps[] = {
        {true, 2, -1, true}, {true, 1, -1, true},   {true, 1, -1, true},
        {true, 1, -1, true}, {false, 1, -1, false},
    };
    run_sequence(&s, steps, (int)(sizeof steps / sizeof steps[0]));
}

/* growth_interval 3: the third consecutive clean step doubles; an overflow halves and resets the
 * tracker, so the next growth needs three new clean steps. */
static void test_gradscaler_backoff_and_growth_interval(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = gradscaler_config(65536, 3);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_TORCH_GRADSCALER, &c), SL_OK);
    const expected_step steps[] = {
        {false, 65536, -1, false}, {false, 65536, -1, false}, {false, 131072, -1, false},
        {true, 65536, -1, true},   {false, 65536, -1, false}, {true, 32768, -1, true},
        {false, 32768, -1, false}, {false, 32768, -1, false}, {false, 65536, -1, false},
    };
    run_sequence(&s, steps, (int)(sizeof steps / sizeof steps[0]));
    assert_int_equal(s.growth_tracker, 0);
}

/* torch defaults: 2^16, growth after 2000 clean steps. */
static void test_gradscaler_default_doubles_on_step_2000(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = gradscaler_config(65536, 2000);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_TORCH_GRADSCALER, &c), SL_OK);
    bool skip;
    for (int i = 0; i < 1999; i++)
        assert_int_equal(sl_loss_scaler_update(&s, false, &skip), SL_OK);
    assert_true(s.scale == 65536);
    assert_int_equal(s.growth_tracker, 1999);
    assert_int_equal(sl_loss_scaler_update(&s, false, &skip), SL_OK);
    assert_true(s.scale == 131072);
    assert_int_equal(s.growth_tracker, 0);
}

/* The scale is an f32 tensor: it is stored rounded to f32 and never grows to inf. */
static void test_gradscaler_scale_is_f32_and_never_grows_to_inf(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = gradscaler_config(0.1, 1);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_TORCH_GRADSCALER, &c), SL_OK);
    assert_true(s.scale == (double)0.1f);

    c = gradscaler_config(0x1p127, 1);
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_TORCH_GRADSCALER, &c), SL_OK);
    bool skip;
    assert_int_equal(sl_loss_scaler_update(&s, false, &skip), SL_OK);
    assert_true(s.scale == 0x1p127);
    assert_int_equal(s.growth_tracker, 0);
}

static void test_static_scaler_keeps_scale_and_skips_overflow(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = {.init_scale = 128};
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_STATIC, &c), SL_OK);
    const expected_step steps[] = {
        {true, 128, -1, true}, {false, 128, -1, false}, {true, 128, -1, true}};
    run_sequence(&s, steps, 3);
}

static void test_none_scaler_is_one_and_never_skips(void **state) {
    (void)state;
    sl_loss_scaler s;
    sl_loss_scaler_config c = {.init_scale = 128};
    assert_int_equal(sl_loss_scaler_init(&s, SL_SCALER_NONE, &c), SL_OK);
    const expected_step steps[] = {{true, 1, -1, false}, {false, 1, -1, false}};
    run_sequence(&s, steps, 2);
}

static void expect_invalid(sl_loss_scaler_kind kind, sl_loss_scaler_config c, const char *field) {
    sl_loss_scaler s;
    sl_error_clear();
    assert_int_equal(sl_loss_scaler_init(&s, kind, &c), SL_ERR_INVALID_ARG);
    if (!strstr(sl_error_message(), field))
        fail_msg("error for %s does not name '%s': %s", sl_loss_scaler_kind_name(kind), field,
                 sl_error_message());
}

static void test_invalid_config_errors_name_the_field(void **state) {
    (void)state;
    sl_loss_scaler_config c = deepspeed_config(65536, 1000, 0, 1);
    expect_invalid(SL_SCALER_ZERO_DYNAMIC, c, "hysteresis");
    c = deepspeed_config(65536, 0, 2, 1);
    expect_invalid(SL_SCALER_FP16_OPT_DYNAMIC, c, "growth_interval");
    c = deepspeed_config(65536, 1000, 2, 0);
    expect_invalid(SL_SCALER_FP16_OPT_DYNAMIC, c, "min_scale");
    c = deepspeed_config(0, 1000, 2, 1);
    expect_invalid(SL_SCALER_STATIC, c, "init_scale");
    c = gradscaler_config(65536, 2000);
    c.backoff_factor = 1.0;
    expect_invalid(SL_SCALER_TORCH_GRADSCALER, c, "backoff_factor");
    c = gradscaler_config(65536, 2000);
    c.growth_factor = 1.0;
    expect_invalid(SL_SCALER_TORCH_GRADSCALER, c, "growth_factor");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_dynamic_hysteresis_then_halving_then_window_growth),
        cmocka_unit_test(test_zero_dynamic_first_growth_after_window_plus_one_clean_steps),
        cmocka_unit_test(test_zero_dynamic_default_window_doubles_on_step_1001),
        cmocka_unit_test(test_zero_dynamic_consecutive_hysteresis_refills_on_clean_steps),
        cmocka_unit_test(test_zero_dynamic_overflow_at_min_scale_is_numeric_error),
        cmocka_unit_test(test_zero_dynamic_halving_clamps_to_min_before_failing),
        cmocka_unit_test(test_fp16_opt_dynamic_halves_on_every_overflow),
        cmocka_unit_test(test_fp16_opt_dynamic_clamps_at_min_without_error),
        cmocka_unit_test(test_gradscaler_backoff_and_growth_interval),
        cmocka_unit_test(test_gradscaler_default_doubles_on_step_2000),
        cmocka_unit_test(test_gradscaler_scale_is_f32_and_never_grows_to_inf),
        cmocka_unit_test(test_static_scaler_keeps_scale_and_skips_overflow),
        cmocka_unit_test(test_none_scaler_is_one_and_never_skips),
        cmocka_unit_test(test_invalid_config_errors_name_the_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
