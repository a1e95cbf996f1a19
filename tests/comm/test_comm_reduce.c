/* The reduction arithmetic of impl/comm (comm_reduce.h): divide rules, per-addition rounding in
 * bf16/f16, and the sequential rank-order sum, against the plain reference of comm_harness.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "impl/comm/comm_reduce.h"
#include "tests/comm/comm_harness.h"

static const sl_dtype sl_dtypes[] = {SL_DTYPE_F32, SL_DTYPE_BF16, SL_DTYPE_F16};
static const sl_grad_divide sl_rules[] = {SL_DIVIDE_PRE_POST_POW2, SL_DIVIDE_AVG, SL_DIVIDE_PRE,
                                          SL_DIVIDE_POST};

static sl_comm_opts sl_opts(int world, sl_grad_divide rule) {
    sl_comm_opts o = sl_comm_opts_default();
    o.divide_world = world;
    o.divide = rule;
    return o;
}

static uint32_t sl_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static void test_divide_resolve_follows_design_4_4(void **state) {
    (void)state;
    /* PRE_POST_POW2: pre = 1, 2, 2, 2, 4 for W = 1, 2, 3, 4, 8; a factor of 1 is skipped */
    const int worlds[] = {1, 2, 3, 4, 8};
    const float pre[] = {0.0f, 2.0f, 2.0f, 2.0f, 4.0f};
    const float post[] = {0.0f, 0.0f, 1.5f, 2.0f, 2.0f};
    for (int i = 0; i < 5; i++) {
        const sl_comm_opts o = sl_opts(worlds[i], SL_DIVIDE_PRE_POST_POW2);
        const sl_comm_divide d = sl_comm_divide_resolve(&o);
        assert_true(d.pre_div == pre[i]);
        assert_true(d.post_div == post[i]);
        assert_true(d.post_mul == 0.0f);
    }
    sl_comm_opts o = sl_opts(3, SL_DIVIDE_AVG);
    sl_comm_divide d = sl_comm_divide_resolve(&o);
    assert_true(d.pre_div == 0.0f && d.post_div == 3.0f && d.post_mul == 0.0f);
    o = sl_opts(3, SL_DIVIDE_PRE);
    d = sl_comm_divide_resolve(&o);
    assert_true(d.pre_div == 3.0f && d.post_div == 0.0f && d.post_mul == 0.0f);
    o = sl_opts(3, SL_DIVIDE_POST);
    d = sl_comm_divide_resolve(&o);
    assert_true(d.pre_div == 0.0f && d.post_div == 0.0f && d.post_mul == (float)(1.0 / 3.0));
    o = sl_opts(0, SL_DIVIDE_PRE);
    d = sl_comm_divide_resolve(&o);
    assert_true(d.pre_div == 0.0f && d.post_div == 0.0f && d.post_mul == 0.0f);
    /* hybrid sharding splits the rule between the two collectives */
    o = sl_opts(8, SL_DIVIDE_PRE_POST_POW2);
    o.skip_post_divide = true;
    d = sl_comm_divide_resolve(&o);
    assert_true(d.pre_div == 4.0f && d.post_div == 0.0f);
    o.skip_post_divide = false;
    o.skip_pre_divide = true;
    d = sl_comm_divide_resolve(&o);
    assert_true(d.pre_div == 0.0f && d.post_div == 2.0f);
}

/* 1 + 2^-8 is a tie in bf16 (8 significant bits) and rounds to even, 1; so does the next
 * addition: a bf16 running sum stays at 1 where an f32 accumulator would reach 1 + 2^-7. */
static void test_bf16_sum_rounds_every_addition(void **state) {
    (void)state;
    const float x[3] = {1.0f, 0x1p-8f, 0x1p-8f};
    uint16_t in[3], out;
    sl_convert_from_f32(in, SL_DTYPE_BF16, x, 3);
    sl_comm_sum_ranks(&out, in, 1, 3, 1, SL_DTYPE_BF16, 0.0f);
    assert_true(sl_bf16_to_f32(out) == 1.0f);
    uint16_t acc = in[0];
    sl_comm_sum_into(&acc, &in[1], 1, SL_DTYPE_BF16);
    sl_comm_sum_into(&acc, &in[2], 1, SL_DTYPE_BF16);
    assert_true(sl_bf16_to_f32(acc) == 1.0f);
}

/* The same with f16's 11 significant bits: 1 + 2^-11 ties to 1. */
static void test_f16_sum_rounds_every_addition(void **state) {
    (void)state;
    const float x[3] = {1.0f, 0x1p-11f, 0x1p-11f};
    uint16_t in[3], out;
    sl_convert_from_f32(in, SL_DTYPE_F16, x, 3);
    sl_comm_sum_ranks(&out, in, 1, 3, 1, SL_DTYPE_F16, 0.0f);
    assert_true(sl_f16_to_f32(out) == 1.0f);
}

/* Rank order matters: 2^24 + 1 + 1 in f32 is 2^24 (each +1 is a tie to even), while 1 + 1 + 2^24
 * is 2^24 + 2. The sum must be rank 0's value, then rank 1's, ... */
static void test_sum_runs_in_rank_order(void **state) {
    (void)state;
    const float a[3] = {0x1p24f, 1.0f, 1.0f}, b[3] = {1.0f, 1.0f, 0x1p24f};
    float out;
    sl_comm_sum_ranks(&out, a, 1, 3, 1, SL_DTYPE_F32, 0.0f);
    assert_true(out == 0x1p24f);
    sl_comm_sum_ranks(&out, b, 1, 3, 1, SL_DTYPE_F32, 0.0f);
    assert_true(out == 0x1p24f + 2.0f);
}

/* -0 from rank 0 stays -0 when every rank contributes -0: the sum starts from rank 0's value,
 * not from +0. */
static void test_sum_of_negative_zeros_is_negative_zero(void **state) {
    (void)state;
    const float x[2] = {-0.0f, -0.0f};
    float out;
    sl_comm_sum_ranks(&out, x, 1, 2, 1, SL_DTYPE_F32, 0.0f);
    assert_true(sl_bits(out) == sl_bits(-0.0f));
}

/* sl_comm_sum_ranks + sl_comm_post_divide (the deterministic path) equal the plain reference bit
 * for bit, for every dtype, rule and n = 1..5, including counts that cross the staging block. */
static void test_sum_ranks_matches_sequential_reference(void **state) {
    (void)state;
    const uint64_t seed = 20240611;
    const size_t count = 1500; /* > the 1024-element staging block */
    for (size_t di = 0; di < 3; di++) {
        const sl_dtype dt = sl_dtypes[di];
        const size_t es = sl_dtype_size(dt);
        for (int n = 1; n <= 5; n++) {
            for (size_t ri = 0; ri < 5; ri++) {
                const sl_comm_opts o =
                    ri < 4 ? sl_opts(n, sl_rules[ri]) : sl_opts(0, SL_DIVIDE_AVG);
                const sl_comm_divide d = sl_comm_divide_resolve(&o);
                char *in = malloc((size_t)n * count * es), *out = malloc(count * es);
                assert_non_null(in);
                assert_non_null(out);
                for (int r = 0; r < n; r++)
                    sl_test_fill(in + (size_t)r * count * es, count, dt, seed, r, (int)ri, 0);
                sl_comm_sum_ranks(out, in, count, n, count, dt, d.pre_div);
                sl_comm_post_divide(out, count, dt, &d);
                for (size_t i = 0; i < count; i++) {
                    float x[5];
                    for (int r = 0; r < n; r++)
                        x[r] = sl_test_input(seed, r, (int)ri, i, dt);
                    const float want = sl_test_reduce_ref(x, n, dt, &o);
                    const float got = sl_test_get(out, i, dt);
                    if (sl_bits(want) != sl_bits(got)) {
                        fail_msg("seed %llu dtype %s n %d rule %zu element %zu: want %a got %a",
                                 (unsigned long long)seed, sl_dtype_name(dt), n, ri, i, want, got);
                    }
                }
                free(in);
                free(out);
            }
        }
    }
}

/* POST multiplies by f32(1/W), which differs from dividing by W for some values. */
static void test_post_rule_multiplies_by_rounded_reciprocal(void **state) {
    (void)state;
    const sl_comm_opts o = sl_opts(3, SL_DIVIDE_POST);
    const sl_comm_divide d = sl_comm_divide_resolve(&o);
    int differ = 0;
    for (int k = 1; k <= 200; k++) {
        float v = (float)k * 0.37f;
        const float want = v * (float)(1.0 / 3.0);
        sl_comm_post_divide(&v, 1, SL_DTYPE_F32, &d);
        assert_true(sl_bits(v) == sl_bits(want));
        differ += want != (float)k * 0.37f / 3.0f;
    }
    assert_true(differ > 0); /* the rule is observable on these inputs */
}

/* sl_comm_divide_array rounds each quotient to the dtype. */
static void test_divide_array_rounds_to_dtype(void **state) {
    (void)state;
    const float x = 1.0f; /* 1/3 is not a bf16 value */
    uint16_t in, out;
    sl_convert_from_f32(&in, SL_DTYPE_BF16, &x, 1);
    sl_comm_divide_array(&out, &in, 1, SL_DTYPE_BF16, 3.0f);
    assert_true(sl_bf16_to_f32(out) == sl_round_to(x / 3.0f, SL_DTYPE_BF16));
    assert_true(sl_bf16_to_f32(out) != x / 3.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_divide_resolve_follows_design_4_4),
        cmocka_unit_test(test_bf16_sum_rounds_every_addition),
        cmocka_unit_test(test_f16_sum_rounds_every_addition),
        cmocka_unit_test(test_sum_runs_in_rank_order),
        cmocka_unit_test(test_sum_of_negative_zeros_is_negative_zero),
        cmocka_unit_test(test_sum_ranks_matches_sequential_reference),
        cmocka_unit_test(test_post_rule_multiplies_by_rounded_reciprocal),
        cmocka_unit_test(test_divide_array_rounds_to_dtype),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
