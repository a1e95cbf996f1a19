/* Global gradient norm over per-rank shards, clipping coefficients in the torch and DeepSpeed
 * rules, and GradScaler unscaling (ref/clip.c), against values worked out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "ref/optim.h"
#include "shardlab/dtype.h"

static const double U32 = 0x1p-24;

/* rank 0 holds pieces {3, 4} and {0}; rank 1 holds {12}: norms 5 and 12, total 13 — exact in
 * every precision. */
static void test_norm_of_two_ranks_is_exact_for_pythagorean_values(void **state) {
    (void)state;
    const float a[] = {3, 4}, b[] = {0}, c[] = {12};
    const sl_grad_piece r0[] = {{a, 2}, {b, 1}}, r1[] = {{c, 1}};
    const sl_rank_grads ranks[] = {{r0, 2}, {r1, 1}};
    assert_true(sl_ref_grad_norm(SL_NORM_F32, ranks, 2) == 13.0);
    assert_true(sl_ref_grad_norm(SL_NORM_F64, ranks, 2) == 13.0);
}

/* One rank with pieces {1}, {2^-12} ×3. F32: squares 1 and 2^-24 added in f32: each 1 + 2^-24
 * ties back to 1, total 1. F64: 1 + 3·2^-24 exact in double, cast to f32 ties to 1 + 2^-22,
 * sqrtf -> 1 + 2^-23. */
static void test_f64_norm_sums_pieces_in_double_before_the_f32_cast(void **state) {
    (void)state;
    const float one[] = {1.0f}, tiny[] = {0x1p-12f};
    const sl_grad_piece pieces[] = {{one, 1}, {tiny, 1}, {tiny, 1}, {tiny, 1}};
    const sl_rank_grads rank = {pieces, 4};
    assert_true(sl_ref_grad_norm(SL_NORM_F32, &rank, 1) == 1.0);
    assert_true(sl_ref_grad_norm(SL_NORM_F64, &rank, 1) == 1.0 + 0x1p-23);
}

/* Each rank's f64 sum is cast to f32 before the f32 sum across ranks. Ranks: {1}; {2^-12}, {2^-25};
 * {2^-12}, {2^-25}. Ranks 1 and 2 hold 2^-24 + 2^-50 in f64, 2^-24 in f32; 1 + 2^-24 ties to 1
 * twice, total 1. Adding the f64 values across ranks would round 1 + 2^-24 + 2^-50 up and end at
 * 1 + 2^-22, norm 1 + 2^-23. */
static void test_f64_norm_casts_each_rank_to_f32_before_summing_ranks(void **state) {
    (void)state;
    const float one[] = {1.0f}, a[] = {0x1p-12f}, b[] = {0x1p-25f};
    const sl_grad_piece r0[] = {{one, 1}}, r1[] = {{a, 1}, {b, 1}};
    const sl_rank_grads ranks[] = {{r0, 1}, {r1, 2}, {r1, 2}};
    assert_true(sl_ref_grad_norm(SL_NORM_F64, ranks, 3) == 1.0);
}

/* 2^20 equal elements x = 0.1f: exact norm = 1024·x. A pairwise f32 sum of 2^20 terms is within
 * (log2(2^20 / 32) + 32)·u = 47u of exact (x² itself rounded: +1u), so the norm is within 25u; an
 * in-order f32 sum drifts by ~2^-10 relative here. */
static void test_f32_piece_norm_is_pairwise_accurate(void **state) {
    (void)state;
    const int64_t n = 1 << 20;
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++)
        x[i] = 0.1f;
    const sl_grad_piece piece = {x, n};
    const sl_rank_grads rank = {&piece, 1};
    double exact = 1024.0 * (double)0.1f;
    double got = sl_ref_grad_norm(SL_NORM_F32, &rank, 1);
    free(x);
    if (fabs(got - exact) > 25.0 * U32 * exact)
        fail_msg("norm %.9g, exact %.17g, relative error %.3g > 25u", got, exact,
                 fabs(got - exact) / exact);
}

static void test_nonfinite_norm_is_minus_one_for_deepspeed_only(void **state) {
    (void)state;
    const float with_inf[] = {1.0f, INFINITY}, with_nan[] = {NAN, 2.0f};
    const sl_grad_piece inf_piece = {with_inf, 2}, nan_piece = {with_nan, 2};
    const sl_rank_grads inf_rank = {&inf_piece, 1}, nan_rank = {&nan_piece, 1};
    assert_true(sl_ref_grad_norm(SL_NORM_F64, &inf_rank, 1) == -1.0);
    assert_true(sl_ref_grad_norm(SL_NORM_F64, &nan_rank, 1) == -1.0);
    assert_true(isinf(sl_ref_grad_norm(SL_NORM_F32, &inf_rank, 1)));
    assert_true(isnan(sl_ref_grad_norm(SL_NORM_F32, &nan_rank, 1)));
    /* Finite grads whose squares fit f32 per rank ((2^63)² = 2^126) but overflow once summed
     * across ranks in f32 (4 × 2^126 = 2^128 > FLT_MAX). */
    const float big[] = {0x1p63f};
    const sl_grad_piece big_piece = {big, 1};
    const sl_rank_grads four[] = {
        {&big_piece, 1}, {&big_piece, 1}, {&big_piece, 1}, {&big_piece, 1}};
    assert_true(sl_ref_grad_norm(SL_NORM_F64, four, 3) == 0x1p63 * (double)sqrtf(3.0f));
    assert_true(sl_ref_grad_norm(SL_NORM_F64, four, 4) == -1.0);
}

/* norm 3, max 1: torch computes reciprocal(3 + 1e-6 in f32) · 1 = 0.333333224 (1/3.000001 =
 * 0.3333332222 to 1 ulp); below 1 it is not clamped. */
static void test_torch_coef_is_max_over_norm_plus_eps(void **state) {
    (void)state;
    float coef = sl_ref_clip_coef(SL_CLIP_TORCH, 3.0, 1.0, 1.0);
    assert_true(fabs(coef - 0.33333322222225925) <= 0x1p-25);
    /* norm 7, max 0.7: 7 + 1e-6 -> 7.00000095, reciprocal 0.142857123, × 0.7f = 0.0999999791
     * (dividing 0.7f by 7.00000095 instead would give 0.0999999866). */
    assert_true(sl_ref_clip_coef(SL_CLIP_TORCH, 7.0, 0.7, 1.0) == 0.09999997913837433f);
    /* norm 0.5 < max: 2/(1+2e-6) > 1 -> clamped to 1; norm 0 likewise. */
    assert_true(sl_ref_clip_coef(SL_CLIP_TORCH, 0.5, 1.0, 1.0) == 1.0f);
    assert_true(sl_ref_clip_coef(SL_CLIP_TORCH, 0.0, 1.0, 1.0) == 1.0f);
    /* clipping disabled */
    assert_true(sl_ref_clip_coef(SL_CLIP_TORCH, 1e6, 0.0, 1.0) == 1.0f);
    /* torch.clamp propagates NaN */
    assert_true(isnan(sl_ref_clip_coef(SL_CLIP_TORCH, NAN, 1.0, 1.0)));
}

/* Scaled norm 3·2^16 at scale 2^16, max 1: c = 3 + 1e-6 in f32 = 3.00000095; combined =
 * c·2^16 = 196608.0625 exactly; multiplier = 1/196608.0625 = 5.0862613e-6 (to 1 ulp). */
static void test_deepspeed_coef_combines_unscale_and_clip(void **state) {
    (void)state;
    float k = sl_ref_clip_coef(SL_CLIP_DS, 3.0 * 65536.0, 1.0, 65536.0);
    assert_true(fabs(k - 5.08626135342638e-06) <= 5.08626135342638e-06 * U32 * 2);
    /* c = 0.5 + 1e-6 < 1: clamped to 1, multiplier 1/scale exactly. */
    assert_true(sl_ref_clip_coef(SL_CLIP_DS, 0.5 * 65536.0, 1.0, 65536.0) == 0x1p-16f);
    /* -1 (non-finite norm) never clips. */
    assert_true(sl_ref_clip_coef(SL_CLIP_DS, -1.0, 1.0, 65536.0) == 0x1p-16f);
    /* max_norm 0 disables clipping: plain unscale. */
    assert_true(sl_ref_clip_coef(SL_CLIP_DS, 1e9, 0.0, 65536.0) == 0x1p-16f);
    assert_true(sl_ref_clip_coef(SL_CLIP_DS, 1e9, 0.0, 3.0) == (float)(1.0 / 3.0));
}

/* The two rules form the same quantity with different roundings: for max 0.7 and scale 2^10,
 * DeepSpeed's multiplier × scale and torch's coefficient are each within 3 roundings of
 * max/(norm + 1e-6), so within 8u of each other. */
static void test_torch_and_deepspeed_coefs_agree_within_few_ulp(void **state) {
    (void)state;
    const double norms[] = {1.5, 3.0, 17.25, 1e3, 123456.0};
    for (int i = 0; i < 5; i++) {
        float torch_coef = sl_ref_clip_coef(SL_CLIP_TORCH, norms[i], 0.7, 1.0);
        double ds = (double)sl_ref_clip_coef(SL_CLIP_DS, norms[i] * 1024.0, 0.7, 1024.0) * 1024.0;
        if (fabs(ds - torch_coef) > 8.0 * U32 * torch_coef)
            fail_msg("norm %g: torch %.9g, deepspeed %.9g", norms[i], torch_coef, ds);
    }
}

/* After clipping g = (5, 12)·s (norm 13·s) to max 1 with DeepSpeed's multiplier, the result is
 * (5, 12)/13.000001 within 4u per element, so its norm is at most 1 + 4u. */
static void test_deepspeed_clip_apply_brings_norm_to_max(void **state) {
    (void)state;
    float g[] = {5.0f * 256.0f, 12.0f * 256.0f};
    const sl_grad_piece piece = {g, 2};
    const sl_rank_grads rank = {&piece, 1};
    double norm = sl_ref_grad_norm(SL_NORM_F64, &rank, 1);
    assert_true(norm == 13.0 * 256.0);
    sl_ref_clip_apply(SL_CLIP_DS, sl_ref_clip_coef(SL_CLIP_DS, norm, 1.0, 256.0), g, 2,
                      SL_DTYPE_F32);
    assert_true(fabs(g[0] - 5.0 / 13.000001) <= 4.0 * U32 * (5.0 / 13.0));
    assert_true(fabs(g[1] - 12.0 / 13.000001) <= 4.0 * U32 * (12.0 / 13.0));
    double after = sl_ref_grad_norm(SL_NORM_F64, &rank, 1);
    assert_true(after <= 1.0 + 4.0 * U32);
}

/* torch multiplies by clip_coef.to(grad.dtype): for bf16 grads the coefficient 0.333333224 first
 * becomes bf16(1/3) = 171/512 = 0.333984375; 200 × that = 66.796875 -> bf16 67. Without the cast,
 * 200 × 0.333333224 = 66.67 -> bf16 66.5. */
static void test_torch_clip_apply_casts_coef_to_grad_dtype(void **state) {
    (void)state;
    float coef = sl_ref_clip_coef(SL_CLIP_TORCH, 3.0, 1.0, 1.0);
    float g_bf16[] = {200.0f};
    sl_ref_clip_apply(SL_CLIP_TORCH, coef, g_bf16, 1, SL_DTYPE_BF16);
    assert_true(g_bf16[0] == 67.0f);
    float g_f32[] = {200.0f};
    sl_ref_clip_apply(SL_CLIP_TORCH, coef, g_f32, 1, SL_DTYPE_F32);
    assert_true(g_f32[0] == 200.0f * coef);
}

static void test_gradscaler_unscale_reports_nonfinite_and_rounds(void **state) {
    (void)state;
    assert_true(sl_ref_torch_inv_scale(65536.0) == 0x1p-16f);
    assert_true(sl_ref_torch_inv_scale(3.0) == (float)(1.0 / 3.0));
    float g[] = {0.5f * 65536.0f, 3.0f * 65536.0f};
    assert_false(sl_ref_grads_unscale(g, 2, 0x1p-16f, SL_DTYPE_F32));
    assert_true(g[0] == 0.5f && g[1] == 3.0f);
    float bad[] = {1.0f, INFINITY};
    assert_true(sl_ref_grads_unscale(bad, 2, 0x1p-16f, SL_DTYPE_F32));
    assert_true(bad[0] == 0x1p-16f && isinf(bad[1]));
    /* fp16 grads: 65536·1.2345 unscaled in f32 then rounded to fp16 (1.234375). */
    float h[] = {65536.0f * 1.2345f};
    assert_false(sl_ref_grads_unscale(h, 1, 0x1p-16f, SL_DTYPE_F16));
    assert_true(h[0] == 1.234375f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norm_of_two_ranks_is_exact_for_pythagorean_values),
        cmocka_unit_test(test_f64_norm_sums_pieces_in_double_before_the_f32_cast),
        cmocka_unit_test(test_f64_norm_casts_each_rank_to_f32_before_summing_ranks),
        cmocka_unit_test(test_f32_piece_norm_is_pairwise_accurate),
        cmocka_unit_test(test_nonfinite_norm_is_minus_one_for_deepspeed_only),
        cmocka_unit_test(test_torch_coef_is_max_over_norm_plus_eps),
        cmocka_unit_test(test_deepspeed_coef_combines_unscale_and_clip),
        cmocka_unit_test(test_torch_and_deepspeed_coefs_agree_within_few_ulp),
        cmocka_unit_test(test_deepspeed_clip_apply_brings_norm_to_max),
        cmocka_unit_test(test_torch_clip_apply_casts_coef_to_grad_dtype),
        cmocka_unit_test(test_gradscaler_unscale_reports_nonfinite_and_rounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
