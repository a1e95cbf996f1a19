/* AdamW on one shard, in the torch and DeepSpeed-FusedAdam dialects, bit for bit as
 * sl_ref_adamw_step (ref/optim.h documents the formulas). Every element-wise op is IEEE-exact in
 * any vector width, so vectorising changes no bit as long as the operations and their order are
 * the reference's: each chunk of SL_ADAM_CHUNK elements goes through the reference's operations
 * as one pass each (vectorised; compiled for AVX-512 and AVX2 too and chosen at run time), and
 * each "stored in the tensor dtype" of the reference is a rounding pass over the chunk. No pass
 * contracts a multiply and an add (-ffp-contract=off, no fma target). */
#include "impl/cpu/cpu.h"

#include <immintrin.h>
#include <math.h>

#define SL_ADAM_CHUNK 512

typedef struct sl_adam_consts {
    float decay, w1, b2, w2, neg_step_size, bc2_sqrt, eps;            /* SL_ADAM_TORCH */
    float lr, beta1, beta2, one_minus_b1, one_minus_b2, bc1, bc2, wd; /* SL_ADAM_DS_FUSED */
} sl_adam_consts;

/* dst = sqrtf(src): the one pass GCC does not vectorise itself (sqrtf may set errno). */
__attribute__((target("avx512f"))) static void sl_adam_sqrt_avx512(float *dst, const float *src,
                                                                   int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_sqrt_ps(_mm512_loadu_ps(src + i)));
    for (; i < n; i++)
        dst[i] = sqrtf(src[i]);
}

__attribute__((target("avx2"))) static void sl_adam_sqrt_avx2(float *dst, const float *src,
                                                              int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_sqrt_ps(_mm256_loadu_ps(src + i)));
    for (; i < n; i++)
        dst[i] = sqrtf(src[i]);
}

static void sl_adam_sqrt(float *dst, const float *src, int64_t n) {
    switch (sl_cpu_isa_active()) {
    case SL_CPU_ISA_AVX512: sl_adam_sqrt_avx512(dst, src, n); return;
    case SL_CPU_ISA_AVX2: sl_adam_sqrt_avx2(dst, src, n); return;
    case SL_CPU_ISA_PORTABLE: break;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = sqrtf(src[i]);
}

/* torch.optim.AdamW, single-tensor path: each line one torch op, rounded to dt when stored. */
static inline __attribute__((always_inline)) void
sl_adam_torch_body(const sl_adam_consts *k, float *restrict p, const float *restrict g,
                   float *restrict m, float *restrict v, float *restrict d, int64_t n,
                   sl_dtype dt) {
    for (int64_t i = 0; i < n; i++)
        p[i] = p[i] * k->decay;
    sl_cpu_round_f32(p, p, n, dt);
    /* ATen's lerp switches formula at |weight| = 0.5; the weight is the same for all elements */
    if (fabsf(k->w1) < 0.5f) {
        for (int64_t i = 0; i < n; i++)
            m[i] = m[i] + k->w1 * (g[i] - m[i]);
    } else {
        for (int64_t i = 0; i < n; i++)
            m[i] = g[i] - (g[i] - m[i]) * (1.0f - k->w1);
    }
    sl_cpu_round_f32(m, m, n, dt);
    for (int64_t i = 0; i < n; i++)
        v[i] = v[i] * k->b2;
    sl_cpu_round_f32(v, v, n, dt);
    for (int64_t i = 0; i < n; i++)
        v[i] = v[i] + k->w2 * g[i] * g[i];
    sl_cpu_round_f32(v, v, n, dt);
    sl_adam_sqrt(d, v, n);
    sl_cpu_round_f32(d, d, n, dt);
    for (int64_t i = 0; i < n; i++)
        d[i] = d[i] / k->bc2_sqrt;
    sl_cpu_round_f32(d, d, n, dt);
    for (int64_t i = 0; i < n; i++)
        d[i] = d[i] + k->eps;
    sl_cpu_round_f32(d, d, n, dt);
    for (int64_t i = 0; i < n; i++)
        p[i] = p[i] + k->neg_step_size * (m[i] / d[i]);
    sl_cpu_round_f32(p, p, n, dt);
}

/* FusedAdam, adam_w_mode: all in f32 registers; p, m, v rounded to dt once, when stored. */
static inline __attribute__((always_inline)) void
sl_adam_ds_body(const sl_adam_consts *k, float *restrict p, const float *restrict g,
                float *restrict m, float *restrict v, float *restrict d, int64_t n, sl_dtype dt) {
    for (int64_t i = 0; i < n; i++) {
        m[i] = k->beta1 * m[i] + k->one_minus_b1 * g[i];
        v[i] = k->beta2 * v[i] + k->one_minus_b2 * g[i] * g[i];
        d[i] = v[i] / k->bc2; /* v_unbiased */
    }
    sl_adam_sqrt(d, d, n);
    for (int64_t i = 0; i < n; i++) {
        const float m_unbiased = m[i] / k->bc1;
        const float denom = d[i] + k->eps;
        const float update = (m_unbiased / denom) + (k->wd * p[i]);
        p[i] = p[i] - (k->lr * update);
    }
    sl_cpu_round_f32(p, p, n, dt);
    sl_cpu_round_f32(m, m, n, dt);
    sl_cpu_round_f32(v, v, n, dt);
}

typedef void (*sl_adam_chunk_fn)(const sl_adam_consts *, float *, const float *, float *, float *,
                                 float *, int64_t, sl_dtype);

#define SL_ADAM_VARIANTS(body)                                                                     \
    static void body##_portable(const sl_adam_consts *k, float *p, const float *g, float *m,       \
                                float *v, float *d, int64_t n, sl_dtype dt) {                      \
        body(k, p, g, m, v, d, n, dt);                                                             \
    }                                                                                              \
    __attribute__((target("avx2"))) static void body##_avx2(const sl_adam_consts *k, float *p,     \
                                                            const float *g, float *m, float *v,    \
                                                            float *d, int64_t n, sl_dtype dt) {    \
        body(k, p, g, m, v, d, n, dt);                                                             \
    }                                                                                              \
    __attribute__((target("avx512f"))) static void body##_avx512(                                  \
        const sl_adam_consts *k, float *p, const float *g, float *m, float *v, float *d,           \
        int64_t n, sl_dtype dt) {                                                                  \
        body(k, p, g, m, v, d, n, dt);                                                             \
    }

SL_ADAM_VARIANTS(sl_adam_torch_body)
SL_ADAM_VARIANTS(sl_adam_ds_body)

static sl_adam_chunk_fn sl_adam_pick(sl_adam_variant variant) {
    const sl_cpu_isa isa = sl_cpu_isa_active();
    if (variant == SL_ADAM_TORCH) {
        return isa == SL_CPU_ISA_AVX512 ? sl_adam_torch_body_avx512
               : isa == SL_CPU_ISA_AVX2 ? sl_adam_torch_body_avx2
                                        : sl_adam_torch_body_portable;
    }
    return isa == SL_CPU_ISA_AVX512 ? sl_adam_ds_body_avx512
           : isa == SL_CPU_ISA_AVX2 ? sl_adam_ds_body_avx2
                                    : sl_adam_ds_body_portable;
}

/* The scalars, computed exactly as ref/adamw.c computes them. */
static sl_adam_consts sl_adam_make_consts(sl_adam_variant variant, const sl_optim_config *cfg,
                                          double lr, int step) {
    sl_adam_consts k = {0};
    if (variant == SL_ADAM_TORCH) {
        /* Python-side scalars (double), consumed by the tensor ops as f32 */
        k.decay = (float)(1.0 - lr * cfg->weight_decay);
        k.w1 = (float)(1.0 - cfg->beta1);
        k.b2 = (float)cfg->beta2;
        k.w2 = (float)(1.0 - cfg->beta2);
        const double bias_correction1 = 1.0 - pow(cfg->beta1, step);
        const double bias_correction2 = 1.0 - pow(cfg->beta2, step);
        k.neg_step_size = (float)(-(lr / bias_correction1));
        k.bc2_sqrt = (float)sqrt(bias_correction2);
        k.eps = (float)cfg->eps;
    } else {
        /* FusedAdam passes every hyper-parameter as a C float; bias corrections via pow in
         * double, stored in a float */
        k.lr = (float)lr;
        k.beta1 = (float)cfg->beta1;
        k.beta2 = (float)cfg->beta2;
        k.eps = (float)cfg->eps;
        k.wd = (float)cfg->weight_decay;
        k.one_minus_b1 = 1.0f - k.beta1;
        k.one_minus_b2 = 1.0f - k.beta2;
        k.bc1 = (float)(1.0 - pow((double)k.beta1, step));
        k.bc2 = (float)(1.0 - pow((double)k.beta2, step));
    }
    return k;
}

sl_status sl_cpu_adamw_step(sl_kctx *ctx, sl_adam_variant variant, const sl_optim_config *cfg,
                            double lr, int step, sl_dtype master_dtype, const sl_tensor *param,
                            const sl_tensor *grad, const sl_tensor *m, const sl_tensor *v) {
    (void)ctx;
    static const char op[] = "adamw_step";
    if (variant != SL_ADAM_TORCH && variant != SL_ADAM_DS_FUSED) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: unknown variant %d", op, (int)variant);
    }
    if (step < 1) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "%s: step must be the 1-based count of applied optimizer steps, got %d",
                            op, step);
    }
    if (master_dtype != SL_DTYPE_F32 && master_dtype != SL_DTYPE_BF16 &&
        master_dtype != SL_DTYPE_F16) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "%s: master dtype must be fp32, bf16 or fp16, got %s", op,
                            sl_dtype_name(master_dtype));
    }
    SL_TRY(sl_cpu_check_out(op, "param", param, master_dtype));
    SL_TRY(sl_cpu_check_out(op, "exp_avg", m, master_dtype));
    SL_TRY(sl_cpu_check_out(op, "exp_avg_sq", v, master_dtype));
    SL_TRY(sl_cpu_check_float(op, "grad", grad));
    const int64_t n = sl_tensor_numel(param);
    SL_TRY(sl_cpu_check_numel(op, "grad", grad, n));
    SL_TRY(sl_cpu_check_numel(op, "exp_avg", m, n));
    SL_TRY(sl_cpu_check_numel(op, "exp_avg_sq", v, n));
    const sl_adam_consts k = sl_adam_make_consts(variant, cfg, lr, step);
    const sl_adam_chunk_fn chunk = sl_adam_pick(variant);
    const int64_t chunks = (n + SL_ADAM_CHUNK - 1) / SL_ADAM_CHUNK;
#pragma omp parallel for num_threads(sl_cpu_threads()) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i0 = c * SL_ADAM_CHUNK;
        const int64_t len = n - i0 < SL_ADAM_CHUNK ? n - i0 : SL_ADAM_CHUNK;
        float pb[SL_ADAM_CHUNK], gb[SL_ADAM_CHUNK], mb[SL_ADAM_CHUNK], vb[SL_ADAM_CHUNK];
        float db[SL_ADAM_CHUNK];
        sl_cpu_to_f32(pb, sl_cpu_at(param, i0), param->dtype, len);
        sl_cpu_to_f32(gb, sl_cpu_at(grad, i0), grad->dtype, len);
        sl_cpu_to_f32(mb, sl_cpu_at(m, i0), m->dtype, len);
        sl_cpu_to_f32(vb, sl_cpu_at(v, i0), v->dtype, len);
        chunk(&k, pb, gb, mb, vb, db, len, master_dtype);
        sl_cpu_from_f32(sl_cpu_at(param, i0), param->dtype, pb, len, master_dtype);
        sl_cpu_from_f32(sl_cpu_at(m, i0), m->dtype, mb, len, master_dtype);
        sl_cpu_from_f32(sl_cpu_at(v, i0), v->dtype, vb, len, master_dtype);
    }
    return SL_OK;
}
