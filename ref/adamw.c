/* AdamW on one shard, in the torch and DeepSpeed-FusedAdam dialects (optim.h). Every assignment
 * below is one framework op: computed in f32, stored once rounded to the master dtype. */
#include "ref/optim.h"

#include <math.h>

/* ATen's lerp (aten/src/ATen/native/Lerp.h): the formula switches at |weight| = 0.5 so that the
 * end point it is closer to is reproduced exactly. */
static float lerp_aten(float self, float end, float weight) {
    if (fabsf(weight) < 0.5f) return self + weight * (end - self);
    return end - (end - self) * (1.0f - weight);
}

static void adamw_torch(const sl_optim_config *cfg, double lr, int step, float *param,
                        const float *grad, float *m, float *v, int64_t n, sl_dtype dt) {
    /* Python-side scalars (double), consumed by the tensor ops as f32. */
    float decay = (float)(1.0 - lr * cfg->weight_decay);
    float w1 = (float)(1.0 - cfg->beta1);
    float b2 = (float)cfg->beta2;
    float w2 = (float)(1.0 - cfg->beta2);
    double bias_correction1 = 1.0 - pow(cfg->beta1, step);
    double bias_correction2 = 1.0 - pow(cfg->beta2, step);
    float neg_step_size = (float)(-(lr / bias_correction1));
    float bc2_sqrt = (float)sqrt(bias_correction2);
    float eps = (float)cfg->eps;
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        float p = sl_round_to(param[i] * decay, dt);
        float mi = sl_round_to(lerp_aten(m[i], g, w1), dt);
        float vi = sl_round_to(v[i] * b2, dt);
        vi = sl_round_to(vi + w2 * g * g, dt);
        float denom = sl_round_to(sqrtf(vi), dt);
        denom = sl_round_to(denom / bc2_sqrt, dt);
        denom = sl_round_to(denom + eps, dt);
        param[i] = sl_round_to(p + neg_step_size * (mi / denom), dt);
        m[i] = mi;
        v[i] = vi;
    }
}

static void adamw_ds_fused(const sl_optim_config *cfg, double lr, int step, float *param,
                           const float *grad, float *m, float *v, int64_t n, sl_dtype dt) {
    /* FusedAdam passes every hyper-parameter to the kernel as a C float. */
    float lr_f = (float)lr;
    float beta1 = (float)cfg->beta1;
    float beta2 = (float)cfg->beta2;
    float eps = (float)cfg->eps;
    float decay = (float)cfg->weight_decay;
    /* multi_tensor_adam_cuda: bias_correction = 1 - std::pow(beta, step), pow in double, the
     * result stored in a float. */
    float bias_correction1 = (float)(1.0 - pow((double)beta1, step));
    float bias_correction2 = (float)(1.0 - pow((double)beta2, step));
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        float p = param[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        float m_unbiased = mi / bias_correction1;
        float v_unbiased = vi / bias_correction2;
        float denom = sqrtf(v_unbiased) + eps;
        float update = (m_unbiased / denom) + (decay * p);
        param[i] = sl_round_to(p - (lr_f * update), dt);
        m[i] = sl_round_to(mi, dt);
        v[i] = sl_round_to(vi, dt);
    }
}

sl_status sl_ref_adamw_step(sl_adam_variant variant, const sl_optim_config *cfg, double lr,
                            int step, float *param, const float *grad, float *m, float *v,
                            int64_t n, sl_dtype master_dtype) {
    if (step < 1)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "adamw: step must be the 1-based count of applied optimizer steps, "
                            "got %d",
                            step);
    if (n < 0)
        return sl_error_set(SL_ERR_INVALID_ARG, "adamw: element count must be >= 0, got %lld",
                            (long long)n);
    if (master_dtype != SL_DTYPE_F32 && master_dtype != SL_DTYPE_BF16 &&
        master_dtype != SL_DTYPE_F16)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "adamw: master dtype must be fp32, bf16 or fp16, got %s",
                            sl_dtype_name(master_dtype));
    switch (variant) {
    case SL_ADAM_TORCH:
        adamw_torch(cfg, lr, step, param, grad, m, v, n, master_dtype);
        return SL_OK;
    case SL_ADAM_DS_FUSED:
        adamw_ds_fused(cfg, lr, step, param, grad, m, v, n, master_dtype);
        return SL_OK;
    }
    return sl_error_set(SL_ERR_INVALID_ARG, "adamw: unknown variant %d", (int)variant);
}
