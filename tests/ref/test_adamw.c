/* AdamW (ref/adamw.c): both dialects track a double-precision AdamW within a derived rounding
 * bound, agree with each other to a few ulp, round every op to a bf16 master, decay decoupled
 * from the gradient, and use the step count they are given for bias correction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/optim.h"
#include "shardlab/dtype.h"
#include "shardlab/rng.h"

#define N 257
#define STEPS 5
#define SEED 20240611u

/* Unit roundoff of f32. */
static const double U32 = 0x1p-24;

static sl_optim_config adam_config(double wd) {
    sl_optim_config c = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = wd};
    return c;
}

/* The textbook AdamW in double: decay on the pre-update parameter, eps after sqrt(v̂). */
static void adamw_double(const sl_optim_config *c, double lr, int step, double *p, const double *g,
                         double *m, double *v, int n) {
    double bc1 = 1.0 - pow(c->beta1, step), bc2 = 1.0 - pow(c->beta2, step);
    for (int i = 0; i < n; i++) {
        m[i] = c->beta1 * m[i] + (1.0 - c->beta1) * g[i];
        v[i] = c->beta2 * v[i] + (1.0 - c->beta2) * g[i] * g[i];
        double update = (m[i] / bc1) / (sqrt(v[i] / bc2) + c->eps);
        p[i] = p[i] - lr * (update + c->weight_decay * p[i]);
    }
}

/* Gradients keep one sign per element across steps and a magnitude in [0.5, 1.5)·scale, so the
 * moments never cancel and their relative errors stay bounded. */
static double test_grad(int step, int i, double scale) {
    double sign = (i % 3 == 0) ? -1.0 : 1.0;
    return sign * scale * (0.5 + sl_rng_uniform(SEED, 1000 + (uint64_t)step, (uint64_t)i));
}

static double test_param(int i) {
    return 2.0 * sl_rng_uniform(SEED, 7, (uint64_t)i) - 1.0;
}

/* Runs STEPS steps of `variant` in f32 and of adamw_double, and checks every parameter against
 * the bound. Derivation: each step the f32 path rounds p twice (decay, update: ≤ 2u|p|); the
 * update term lr·m̂/(sqrt(v̂)+eps) passes through ≤ 10 roundings and inherits the relative errors
 * of m and v (each ≤ 3u per step, damped by β, so ≤ 3u·STEPS), in all < 64u of |update|. */
static void check_tracks_double(sl_adam_variant variant, double grad_scale) {
    sl_optim_config c = adam_config(0.01);
    float p[N], g[N], m[N], v[N];
    double pd[N], gd[N], md[N], vd[N], tol[N];
    for (int i = 0; i < N; i++) {
        p[i] = (float)test_param(i);
        pd[i] = p[i];
        m[i] = v[i] = 0.0f;
        md[i] = vd[i] = 0.0;
        tol[i] = 0.0;
    }
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < N; i++) {
            g[i] = (float)test_grad(t, i, grad_scale);
            gd[i] = g[i];
        }
        double before[N];
        memcpy(before, pd, sizeof before);
        assert_int_equal(sl_ref_adamw_step(variant, &c, c.lr, t, p, g, m, v, N, SL_DTYPE_F32),
                         SL_OK);
        adamw_double(&c, c.lr, t, pd, gd, md, vd, N);
        for (int i = 0; i < N; i++) {
            double update = fabs(before[i] * (1.0 - c.lr * c.weight_decay) - pd[i]);
            tol[i] += 2.0 * U32 * fabs(pd[i]) + 64.0 * U32 * update;
            if (fabs(p[i] - pd[i]) > tol[i])
                fail_msg("variant %d, grad scale %g, seed %u: step %d element %d: f32 %.9g, "
                         "double %.17g, |diff| %.3g > tol %.3g",
                         (int)variant, grad_scale, SEED, t, i, p[i], pd[i], fabs(p[i] - pd[i]),
                         tol[i]);
        }
    }
}

static void test_torch_adamw_f32_tracks_double_adamw(void **state) {
    (void)state;
    check_tracks_double(SL_ADAM_TORCH, 1.0);
    /* |g| ~ eps: sqrt(v̂) and eps are comparable, so eps must sit after the sqrt. */
    check_tracks_double(SL_ADAM_TORCH, 1e-8);
}

static void test_ds_fused_adamw_f32_tracks_double_adamw(void **state) {
    (void)state;
    check_tracks_double(SL_ADAM_DS_FUSED, 1.0);
    check_tracks_double(SL_ADAM_DS_FUSED, 1e-8);
}

static double ulp32(double x) {
    int e;
    frexp(fabs(x), &e);
    return ldexp(1.0, e - 24);
}

/* From a common state, one step of each variant. p: each result is within 2 roundings of |p|
 * plus < 32u of the update (incl. lr·wd·p) of the exact value, so they are within twice that.
 * m: both are (1-w)·m + w·g with w = f32(1 - β1) = 0.1f (torch) or 1 - 0.9f (DeepSpeed), which
 * differ by 4u relative, plus ≤ 3 roundings each: within 10u of max(|m|, |g|). (v is not compared:
 * DeepSpeed's 1 - 0.999f differs from f32(0.001) by 1.3e-5 relative; its bias correction uses the
 * same f32 β2, so v̂ — and p — agree again.) */
static void test_torch_and_ds_variants_agree_within_few_ulp(void **state) {
    (void)state;
    sl_optim_config c = adam_config(0.01);
    float p[N], g[N], m[N], v[N];
    for (int i = 0; i < N; i++) {
        p[i] = (float)test_param(i);
        m[i] = v[i] = 0.0f;
    }
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < N; i++)
            g[i] = (float)test_grad(t, i, 1.0);
        assert_int_equal(sl_ref_adamw_step(SL_ADAM_TORCH, &c, c.lr, t, p, g, m, v, N, SL_DTYPE_F32),
                         SL_OK);
    }
    float pt[N], mt[N], vt[N], pd[N], md[N], vd[N];
    memcpy(pt, p, sizeof p);
    memcpy(pd, p, sizeof p);
    memcpy(mt, m, sizeof m);
    memcpy(md, m, sizeof m);
    memcpy(vt, v, sizeof v);
    memcpy(vd, v, sizeof v);
    for (int i = 0; i < N; i++)
        g[i] = (float)test_grad(4, i, 1.0);
    assert_int_equal(sl_ref_adamw_step(SL_ADAM_TORCH, &c, c.lr, 4, pt, g, mt, vt, N, SL_DTYPE_F32),
                     SL_OK);
    assert_int_equal(
        sl_ref_adamw_step(SL_ADAM_DS_FUSED, &c, c.lr, 4, pd, g, md, vd, N, SL_DTYPE_F32), SL_OK);
    for (int i = 0; i < N; i++) {
        double update = fabs((double)p[i] - pt[i]) + c.lr * c.weight_decay * fabs(p[i]);
        double tol_p = 4.0 * ulp32(p[i]) + 64.0 * U32 * update;
        if (fabs((double)pt[i] - pd[i]) > tol_p)
            fail_msg("seed %u element %d: torch p %.9g, ds p %.9g, tol %.3g", SEED, i, pt[i], pd[i],
                     tol_p);
        double tol_m = 10.0 * U32 * fmax(fabs(m[i]), fabs(g[i]));
        if (fabs((double)mt[i] - md[i]) > tol_m)
            fail_msg("seed %u element %d: torch m %.9g, ds m %.9g, tol %.3g", SEED, i, mt[i], md[i],
                     tol_m);
    }
}

/* p = 1, g = 1, lr = 0.01, wd = 0, step 1, bf16 master, worked by hand op by op (torch):
 *   m = bf16(0.1f) = 0.10009765625;  v = bf16(0.001f) = 131·2^-17
 *   d = bf16(sqrtf(v)) = 129·2^-12;  d = bf16(d / f32(sqrt(0.001))) = 0.99609375;  d + eps = d
 *   p = bf16(1 + f32(-0.1)·(m / d)) = bf16(0.98995) = 0.98828125   (f32 would keep 0.98995)
 * DeepSpeed computes m̂ = v̂ = 1 in f32 and stores p = bf16(1 - 0.01f) = 0.98828125, with the same
 * stored m and v. */
static void test_bf16_master_rounds_each_stored_tensor(void **state) {
    (void)state;
    sl_optim_config c = adam_config(0.0);
    const sl_adam_variant variants[] = {SL_ADAM_TORCH, SL_ADAM_DS_FUSED};
    for (int k = 0; k < 2; k++) {
        float p = 1.0f, g = 1.0f, m = 0.0f, v = 0.0f;
        assert_int_equal(
            sl_ref_adamw_step(variants[k], &c, 0.01, 1, &p, &g, &m, &v, 1, SL_DTYPE_BF16), SL_OK);
        assert_true(p == 0.98828125f);
        assert_true(m == 0.10009765625f);
        assert_true(v == 131.0f * 0x1p-17f);
        /* lr 1e-3: the update is below half a bf16 ulp of 1 and is lost. */
        p = 1.0f, m = 0.0f, v = 0.0f;
        assert_int_equal(
            sl_ref_adamw_step(variants[k], &c, 1e-3, 1, &p, &g, &m, &v, 1, SL_DTYPE_BF16), SL_OK);
        assert_true(p == 1.0f);
    }
}

/* v = 1, g = 2, bf16. torch stores after each op: bf16(1·0.999) = 1 (0.999 is nearer 1 than
 * 1 - 2^-8), then bf16(1 + 0.001·4) = bf16(1.004) = 1.0078125 (128.51 in units of 2^-7). DeepSpeed
 * computes 0.999·1 + 0.001·4 = 1.003 in f32 and stores once: bf16(1.003) = 1. */
static void test_bf16_torch_rounds_each_op_deepspeed_once_per_store(void **state) {
    (void)state;
    sl_optim_config c = adam_config(0.0);
    float p = 0.0f, g = 2.0f, m = 0.0f, v = 1.0f;
    assert_int_equal(
        sl_ref_adamw_step(SL_ADAM_TORCH, &c, 1e-3, 2, &p, &g, &m, &v, 1, SL_DTYPE_BF16), SL_OK);
    assert_true(v == 1.0078125f);
    p = 0.0f, m = 0.0f, v = 1.0f;
    assert_int_equal(
        sl_ref_adamw_step(SL_ADAM_DS_FUSED, &c, 1e-3, 2, &p, &g, &m, &v, 1, SL_DTYPE_BF16), SL_OK);
    assert_true(v == 1.0f);
}

static void test_bf16_master_values_stay_bf16_representable(void **state) {
    (void)state;
    sl_optim_config c = adam_config(0.01);
    const sl_adam_variant variants[] = {SL_ADAM_TORCH, SL_ADAM_DS_FUSED};
    for (int k = 0; k < 2; k++) {
        float p[N], g[N], m[N], v[N];
        for (int i = 0; i < N; i++) {
            p[i] = sl_round_to((float)test_param(i), SL_DTYPE_BF16);
            m[i] = v[i] = 0.0f;
        }
        for (int t = 1; t <= STEPS; t++) {
            for (int i = 0; i < N; i++)
                g[i] = sl_round_to((float)test_grad(t, i, 1.0), SL_DTYPE_BF16);
            assert_int_equal(
                sl_ref_adamw_step(variants[k], &c, 0.02, t, p, g, m, v, N, SL_DTYPE_BF16), SL_OK);
            for (int i = 0; i < N; i++) {
                if (sl_round_to(p[i], SL_DTYPE_BF16) != p[i] ||
                    sl_round_to(m[i], SL_DTYPE_BF16) != m[i] ||
                    sl_round_to(v[i], SL_DTYPE_BF16) != v[i])
                    fail_msg("variant %d seed %u step %d element %d: p %.9g m %.9g v %.9g not "
                             "all bf16 values",
                             k, SEED, t, i, p[i], m[i], v[i]);
            }
        }
    }
}

/* With zero gradient and zero moments the Adam term is 0/(0+eps) = 0, so only the decay acts:
 * torch p·f32(1 - lr·wd); DeepSpeed p - lr·(wd·p) in f32. */
static void test_weight_decay_alone_scales_the_parameter(void **state) {
    (void)state;
    sl_optim_config c = adam_config(0.1);
    float p = 0.75f, g = 0.0f, m = 0.0f, v = 0.0f;
    assert_int_equal(sl_ref_adamw_step(SL_ADAM_TORCH, &c, 0.5, 1, &p, &g, &m, &v, 1, SL_DTYPE_F32),
                     SL_OK);
    assert_true(p == 0.75f * 0.95f);
    p = 0.75f;
    m = v = 0.0f;
    assert_int_equal(
        sl_ref_adamw_step(SL_ADAM_DS_FUSED, &c, 0.5, 1, &p, &g, &m, &v, 1, SL_DTYPE_F32), SL_OK);
    assert_true(p == 0.75f - 0.5f * (0.1f * 0.75f));
}

/* Decoupled: the decay's effect on p is -lr·wd·p whatever the gradient's magnitude. L2-coupled
 * decay would add wd·p = 0.05 to g, where Adam's normalisation absorbs it at step 1 (effect 0 for
 * |g| = 1e3) or it flips the update's sign (|g| = 1e-3, g < 0: effect +2·lr). The two f32 runs
 * differ only through their roundings of p: within 4 ulp of p. */
static void test_weight_decay_is_decoupled_from_gradient_scale(void **state) {
    (void)state;
    const sl_adam_variant variants[] = {SL_ADAM_TORCH, SL_ADAM_DS_FUSED};
    const double scales[] = {1e3, -1e-3};
    for (int k = 0; k < 2; k++) {
        for (int s = 0; s < 2; s++) {
            sl_optim_config with = adam_config(0.1), without = adam_config(0.0);
            float p1 = 0.5f, p0 = 0.5f, g = (float)scales[s];
            float m1 = 0, v1 = 0, m0 = 0, v0 = 0;
            assert_int_equal(
                sl_ref_adamw_step(variants[k], &with, 1e-2, 1, &p1, &g, &m1, &v1, 1, SL_DTYPE_F32),
                SL_OK);
            assert_int_equal(sl_ref_adamw_step(variants[k], &without, 1e-2, 1, &p0, &g, &m0, &v0, 1,
                                               SL_DTYPE_F32),
                             SL_OK);
            double effect = (double)p1 - p0, expected = -1e-2 * 0.1 * 0.5;
            if (fabs(effect - expected) > 4.0 * ulp32(0.5))
                fail_msg("variant %d, g %g: decay moved p by %.9g, expected %.9g", k, scales[s],
                         effect, expected);
        }
    }
}

/* Fresh moments, g = 1, p = 0, wd = 0, lr = 1e-3: the update is lr·(0.1/bc1)/(sqrt(0.001/bc2)+eps)
 * with bc = 1 - β^step. step 1: m̂ = v̂ = 1 -> -1e-3/(1 + 1e-8) = -9.9999999e-4; step 3:
 * bc1 = 0.271, bc2 = 0.002997001 -> -6.3881359e-4. The f32 results are within 16u of these. */
static void test_step_count_sets_bias_correction(void **state) {
    (void)state;
    sl_optim_config c = adam_config(0.0);
    const sl_adam_variant variants[] = {SL_ADAM_TORCH, SL_ADAM_DS_FUSED};
    const int steps[] = {1, 3};
    const double expected[] = {-9.99999990000001e-4, -6.388135883394717e-4};
    for (int k = 0; k < 2; k++) {
        for (int s = 0; s < 2; s++) {
            float p = 0.0f, g = 1.0f, m = 0.0f, v = 0.0f;
            assert_int_equal(
                sl_ref_adamw_step(variants[k], &c, 1e-3, steps[s], &p, &g, &m, &v, 1, SL_DTYPE_F32),
                SL_OK);
            if (fabs(p - expected[s]) > 16.0 * U32 * fabs(expected[s]))
                fail_msg("variant %d step %d: p %.9g, expected %.9g", k, steps[s], p, expected[s]);
        }
    }
}

static void test_invalid_arguments_are_reported(void **state) {
    (void)state;
    sl_optim_config c = adam_config(0.0);
    float p = 0, g = 0, m = 0, v = 0;
    assert_int_equal(sl_ref_adamw_step(SL_ADAM_TORCH, &c, 1e-3, 0, &p, &g, &m, &v, 1, SL_DTYPE_F32),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "step"));
    assert_int_equal(sl_ref_adamw_step(SL_ADAM_TORCH, &c, 1e-3, 1, &p, &g, &m, &v, 1, SL_DTYPE_F64),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "fp64"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_adamw_f32_tracks_double_adamw),
        cmocka_unit_test(test_ds_fused_adamw_f32_tracks_double_adamw),
        cmocka_unit_test(test_torch_and_ds_variants_agree_within_few_ulp),
        cmocka_unit_test(test_bf16_master_rounds_each_stored_tensor),
        cmocka_unit_test(test_bf16_torch_rounds_each_op_deepspeed_once_per_store),
        cmocka_unit_test(test_bf16_master_values_stay_bf16_representable),
        cmocka_unit_test(test_weight_decay_alone_scales_the_parameter),
        cmocka_unit_test(test_weight_decay_is_decoupled_from_gradient_scale),
        cmocka_unit_test(test_step_count_sets_bias_correction),
        cmocka_unit_test(test_invalid_arguments_are_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
