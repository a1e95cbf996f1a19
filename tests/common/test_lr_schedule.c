/* Learning-rate schedules (common/lr_schedule.c) against values worked out by hand from
 * transformers' schedule formulas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "shardlab/lr_schedule.h"

/* 0.5·(1 + cos(π·p)) is a handful of double operations: within 4e-16 of the true value, so
 * lr·factor is within 1e-15·lr of the constants below (given to 16 digits). */
static void assert_lr(const sl_optim_config *c, int step, int total, double expected) {
    double got = sl_lr_at(c, step, total);
    if (fabs(got - expected) > 1e-15 * c->lr)
        fail_msg("%s step %d of %d: lr %.17g, expected %.17g", sl_lr_schedule_name(c->schedule),
                 step, total, got, expected);
}

static sl_optim_config schedule(sl_lr_schedule s, int warmup, double min_ratio) {
    sl_optim_config c = {
        .lr = 1e-3, .schedule = s, .warmup_steps = warmup, .min_lr_ratio = min_ratio};
    return c;
}

/* Warmup 4: step/4, so the first optimizer step runs at lr 0 and step 4 reaches lr. */
static void test_warmup_is_step_over_warmup_starting_at_zero(void **state) {
    (void)state;
    const sl_lr_schedule kinds[] = {SL_LR_CONSTANT, SL_LR_WARMUP_COSINE, SL_LR_WARMUP_LINEAR};
    for (int k = 0; k < 3; k++) {
        sl_optim_config c = schedule(kinds[k], 4, 0.0);
        assert_lr(&c, 0, 12, 0.0);
        assert_lr(&c, 1, 12, 0.25e-3);
        assert_lr(&c, 3, 12, 0.75e-3);
        assert_lr(&c, 4, 12, 1e-3);
    }
}

/* Warmup 4 of 12: p = (step - 4)/8. step 6: p = 1/4, 0.5·(1 + √2/2) = 0.8535533905932737;
 * step 8: p = 1/2, 0.5; step 11: p = 7/8, 0.5·(1 - cos(π/8)) = 0.03806023374435663. */
static void test_cosine_decay_values(void **state) {
    (void)state;
    sl_optim_config c = schedule(SL_LR_WARMUP_COSINE, 4, 0.0);
    assert_lr(&c, 6, 12, 0.8535533905932737e-3);
    assert_lr(&c, 8, 12, 0.5e-3);
    assert_lr(&c, 11, 12, 0.03806023374435663e-3);
}

/* min_lr_ratio 0.1: factor·0.9 + 0.1. step 8: 0.55; at and past the end (p capped at 1): 0.1. */
static void test_cosine_decays_to_min_lr_ratio(void **state) {
    (void)state;
    sl_optim_config c = schedule(SL_LR_WARMUP_COSINE, 4, 0.1);
    assert_lr(&c, 8, 12, 0.55e-3);
    assert_lr(&c, 12, 12, 0.1e-3);
    assert_lr(&c, 20, 12, 0.1e-3);
}

/* Without warmup the first step runs at the full rate (p = 0). */
static void test_cosine_without_warmup_starts_at_lr(void **state) {
    (void)state;
    sl_optim_config c = schedule(SL_LR_WARMUP_COSINE, 0, 0.0);
    assert_lr(&c, 0, 10, 1e-3);
    assert_lr(&c, 5, 10, 0.5e-3);
}

/* Warmup 4 of 12: (12 - step)/8. step 8: 0.5; step 11: 0.125; step 12 and past: 0 (or the
 * floor 0.1 with min_lr_ratio 0.1: step 8 -> 0.5·0.9 + 0.1 = 0.55). */
static void test_linear_decay_values(void **state) {
    (void)state;
    sl_optim_config c = schedule(SL_LR_WARMUP_LINEAR, 4, 0.0);
    assert_lr(&c, 8, 12, 0.5e-3);
    assert_lr(&c, 11, 12, 0.125e-3);
    assert_lr(&c, 12, 12, 0.0);
    assert_lr(&c, 14, 12, 0.0);
    c.min_lr_ratio = 0.1;
    assert_lr(&c, 8, 12, 0.55e-3);
    assert_lr(&c, 14, 12, 0.1e-3);
}

static void test_constant_schedule_is_lr_after_warmup(void **state) {
    (void)state;
    sl_optim_config c = schedule(SL_LR_CONSTANT, 0, 0.5);
    assert_lr(&c, 0, 10, 1e-3);
    assert_lr(&c, 9, 10, 1e-3);
    assert_lr(&c, 50, 10, 1e-3);
    c.warmup_steps = 2;
    assert_lr(&c, 1, 10, 0.5e-3);
    assert_lr(&c, 2, 10, 1e-3);
}

/* Degenerate totals use max(1, ·) guards: warmup == total gives p = (step - W)/1, no division by
 * zero. */
static void test_degenerate_lengths_do_not_divide_by_zero(void **state) {
    (void)state;
    sl_optim_config c = schedule(SL_LR_WARMUP_LINEAR, 5, 0.0);
    assert_lr(&c, 5, 5, 0.0);
    c.schedule = SL_LR_WARMUP_COSINE;
    assert_lr(&c, 5, 5, 1e-3);
    assert_true(isfinite(sl_lr_at(&c, 0, 0)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warmup_is_step_over_warmup_starting_at_zero),
        cmocka_unit_test(test_cosine_decay_values),
        cmocka_unit_test(test_cosine_decays_to_min_lr_ratio),
        cmocka_unit_test(test_cosine_without_warmup_starts_at_lr),
        cmocka_unit_test(test_linear_decay_values),
        cmocka_unit_test(test_constant_schedule_is_lr_after_warmup),
        cmocka_unit_test(test_degenerate_lengths_do_not_divide_by_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
