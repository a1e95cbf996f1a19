/* Loss-scaler state machines (loss_scaler.h). Sources followed:
 *   torch:     aten/src/ATen/native/cuda/AmpKernels.cu (_amp_update_scale_cuda_kernel) and
 *              torch/amp/grad_scaler.py;
 *   DeepSpeed: deepspeed/runtime/fp16/loss_scaler.py (DynamicLossScaler.update_scale) and
 *              deepspeed/runtime/fp16/fused_optimizer.py (FP16_Optimizer._update_scale). */
#include "shardlab/loss_scaler.h"

#include <math.h>

const char *sl_loss_scaler_kind_name(sl_loss_scaler_kind kind) {
    switch (kind) {
    case SL_SCALER_NONE: return "none";
    case SL_SCALER_STATIC: return "static";
    case SL_SCALER_ZERO_DYNAMIC: return "zero_dynamic";
    case SL_SCALER_FP16_OPT_DYNAMIC: return "fp16_opt_dynamic";
    case SL_SCALER_TORCH_GRADSCALER: return "torch_gradscaler";
    }
    return "unknown";
}

static bool positive_finite(double x) {
    return isfinite(x) && x > 0.0;
}

static sl_status check_config(sl_loss_scaler_kind kind, const sl_loss_scaler_config *c) {
    const char *name = sl_loss_scaler_kind_name(kind);
    if (kind == SL_SCALER_NONE) return SL_OK;
    if (!positive_finite(c->init_scale))
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "loss scaler %s: init_scale must be a finite number > 0, got %g; "
                            "set fp16.loss_scale / fp16.initial_scale_power (DeepSpeed) or the "
                            "GradScaler init_scale to a positive value",
                            name, c->init_scale);
    if (kind == SL_SCALER_STATIC) return SL_OK;
    if (!(isfinite(c->growth_factor) && c->growth_factor > 1.0))
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "loss scaler %s: growth_factor must be a finite number > 1, got %g",
                            name, c->growth_factor);
    if (c->growth_interval < 1)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "loss scaler %s: growth_interval must be >= 1, got %d (GradScaler "
                            "growth_interval / DeepSpeed fp16.loss_scale_window)",
                            name, c->growth_interval);
    if (kind == SL_SCALER_TORCH_GRADSCALER) {
        if (!(c->backoff_factor > 0.0 && c->backoff_factor < 1.0))
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "loss scaler %s: backoff_factor must be in (0, 1), got %g", name,
                                c->backoff_factor);
        return SL_OK;
    }
    if (!positive_finite(c->min_scale))
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "loss scaler %s: min_scale must be a finite number > 0, got %g "
                            "(DeepSpeed fp16.min_loss_scale)",
                            name, c->min_scale);
    if (kind == SL_SCALER_ZERO_DYNAMIC && c->hysteresis < 1)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "loss scaler %s: hysteresis must be >= 1, got %d (DeepSpeed "
                            "fp16.hysteresis)",
                            name, c->hysteresis);
    return SL_OK;
}

sl_status sl_loss_scaler_init(sl_loss_scaler *s, sl_loss_scaler_kind kind,
                              const sl_loss_scaler_config *cfg) {
    if ((unsigned)kind > (unsigned)SL_SCALER_TORCH_GRADSCALER)
        return sl_error_set(SL_ERR_INVALID_ARG, "loss scaler: unknown kind %d", (int)kind);
    SL_TRY(check_config(kind, cfg));
    s->kind = kind;
    s->cfg = *cfg;
    s->cur_iter = 0;
    s->last_overflow_iter = -1;
    s->cur_hysteresis = cfg->hysteresis;
    s->growth_tracker = 0;
    switch (kind) {
    case SL_SCALER_NONE: s->scale = 1.0; break;
    case SL_SCALER_TORCH_GRADSCALER: s->scale = (float)cfg->init_scale; break;
    default: s->scale = cfg->init_scale; break;
    }
    return SL_OK;
}

/* GradScaler's scale tensor is f32; the factors arrive as double and the product is stored back
 * into the f32 tensor. */
static void update_gradscaler(sl_loss_scaler *s, bool overflow) {
    if (overflow) {
        s->scale = (float)(s->scale * s->cfg.backoff_factor);
        s->growth_tracker = 0;
        return;
    }
    int successful = s->growth_tracker + 1;
    if (successful == s->cfg.growth_interval) {
        float grown = (float)(s->scale * s->cfg.growth_factor);
        if (isfinite(grown)) s->scale = grown;
        s->growth_tracker = 0;
    } else {
        s->growth_tracker = successful;
    }
}

/* The clean-step branch both DeepSpeed scalers share. */
static void grow_deepspeed(sl_loss_scaler *s) {
    int64_t stable = s->cur_iter - s->last_overflow_iter - 1;
    if (stable > 0 && stable % s->cfg.growth_interval == 0) {
        s->cur_hysteresis = s->cfg.hysteresis;
        s->scale *= s->cfg.growth_factor;
    }
}

static sl_status update_zero_dynamic(sl_loss_scaler *s, bool overflow) {
    if (overflow) {
        if (s->cfg.hysteresis == 1 || s->cur_hysteresis == 1) {
            if (s->scale == s->cfg.min_scale)
                return sl_error_set(
                    SL_ERR_NUMERIC,
                    "loss scaler zero_dynamic: gradients overflowed at optimizer step %lld with "
                    "the loss scale already at its minimum %g (fp16.min_loss_scale); the scale "
                    "cannot be lowered further and every following step would be skipped. "
                    "Lower fp16.min_loss_scale, lower the learning rate, or train in bf16",
                    (long long)s->cur_iter + 1, s->cfg.min_scale);
            s->scale = fmax(s->scale / s->cfg.growth_factor, s->cfg.min_scale);
        } else {
            s->cur_hysteresis -= 1;
        }
        s->last_overflow_iter = s->cur_iter;
    } else {
        if (s->cfg.consecutive_hysteresis) s->cur_hysteresis = s->cfg.hysteresis;
        grow_deepspeed(s);
    }
    s->cur_iter += 1;
    return SL_OK;
}

static void update_fp16_opt_dynamic(sl_loss_scaler *s, bool overflow) {
    if (overflow) {
        s->scale = fmax(s->scale / s->cfg.growth_factor, s->cfg.min_scale);
        s->last_overflow_iter = s->cur_iter;
    } else {
        grow_deepspeed(s);
    }
    s->cur_iter += 1;
}

sl_status sl_loss_scaler_update(sl_loss_scaler *s, bool overflow, bool *skip_step) {
    *skip_step = overflow && s->kind != SL_SCALER_NONE;
    switch (s->kind) {
    case SL_SCALER_NONE:
    case SL_SCALER_STATIC: s->cur_iter += 1; return SL_OK;
    case SL_SCALER_TORCH_GRADSCALER:
        update_gradscaler(s, overflow);
        s->cur_iter += 1;
        return SL_OK;
    case SL_SCALER_ZERO_DYNAMIC: return update_zero_dynamic(s, overflow);
    case SL_SCALER_FP16_OPT_DYNAMIC: update_fp16_opt_dynamic(s, overflow); return SL_OK;
    }
    return sl_error_set(SL_ERR_INTERNAL, "loss scaler: unknown kind %d", (int)s->kind);
}
