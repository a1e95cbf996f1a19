/* The dialects' precision rules (DESIGN.md §4.2), each field with the reason it has its value.
 * Sources: torch FSDP1 _flat_param.py / api.py / _init_utils.py, FSDP2 _fsdp_api.py /
 * _fsdp_collectives.py, torch DDP reducer, DeepSpeed engine.py / stage_1_and_2.py / stage3.py /
 * fp16 loss_scaler.py, Accelerate accelerator.py / utils/fsdp_utils.py (versions: plan->follows).
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/plan_read.h"

typedef struct sl_mixed_precision {
    bool on;
    sl_dtype dtype; /* when on */
    const char *name;
    char src[300];
} sl_mixed_precision;

static void sl_why(sl_plan *plan, sl_precision_field f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sl_why(sl_plan *plan, sl_precision_field f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(plan->precision_why[f], sizeof plan->precision_why[f], fmt, ap);
    va_end(ap);
}

/* DDP and FSDP step with torch: clip_grad_norm_ and torch.optim.AdamW, GradScaler for fp16. */
static void sl_precision_torch_step(sl_plan *plan, const sl_mixed_precision *mp) {
    sl_precision *p = &plan->precision;
    p->optim_dtype = p->master_dtype;
    sl_why(plan, SL_PREC_OPTIM_DTYPE,
           "= master_dtype: Adam moments take the dtype of the "
           "parameters the optimizer holds");
    p->norm = SL_NORM_F32;
    sl_why(plan, SL_PREC_NORM, "torch clip_grad_norm_: per-tensor norms in fp32");
    p->clip = SL_CLIP_TORCH;
    sl_why(plan, SL_PREC_CLIP, "torch: coef = max_norm / (norm + 1e-6), clamped to at most 1");
    p->adam = SL_ADAM_TORCH;
    sl_why(plan, SL_PREC_ADAM, "torch.optim.AdamW: bias corrections computed in double");
    if (mp->on && mp->dtype == SL_DTYPE_F16) {
        p->loss_scale = SL_SCALER_TORCH_GRADSCALER;
        sl_why(plan, SL_PREC_LOSS_SCALE, "fp16 mixed precision (from %s): Accelerate creates a %s",
               mp->src,
               plan->dialect == SL_DIALECT_FSDP1 ? "ShardedGradScaler" : "torch.amp.GradScaler");
        plan->scaler = (sl_loss_scaler_config){.init_scale = 65536.0,
                                               .growth_factor = 2.0,
                                               .backoff_factor = 0.5,
                                               .growth_interval = 2000,
                                               .hysteresis = 1,
                                               .min_scale = 0.0};
    } else {
        p->loss_scale = SL_SCALER_NONE;
        sl_why(plan, SL_PREC_LOSS_SCALE, "no fp16 mixed precision (mixed_precision = %s from %s)",
               mp->name, mp->src);
    }
}

static sl_status sl_precision_fsdp(sl_plan_reader *rd, const sl_mixed_precision *mp) {
    sl_plan *plan = rd->plan;
    sl_precision *p = &plan->precision;
    const bool v2 = plan->dialect == SL_DIALECT_FSDP2;
    const char *mode;
    SL_TRY(sl_plan_read_enum(rd, "fsdp_upcast_sharded_params", &mode));
    const char *mode_src = sl_plan_src(rd, "fsdp_upcast_sharded_params");
    if (!strcmp(mode, "on") && !mp->on) {
        return sl_error_set(SL_ERR_CONFIG,
                            "fsdp_upcast_sharded_params = on (from %s) needs mixed precision: "
                            "Accelerate upcasts sharded params only when mixed_precision is fp16 "
                            "or bf16, found no (from %s); set --mixed_precision or use auto",
                            mode_src, mp->src);
    }
    p->upcast_sharded_params = mp->on && strcmp(mode, "off") != 0;
    if (!strcmp(mode, "auto")) {
        sl_why(plan, SL_PREC_UPCAST_SHARDED_PARAMS,
               "auto (from %s): %s (mixed_precision = %s from %s)", mode_src,
               mp->on ? "Accelerate >= 0.30 upcasts low-precision sharded params to fp32 under "
                        "mixed precision"
                      : "nothing is upcast without mixed precision",
               mp->name, mp->src);
    } else {
        sl_why(plan, SL_PREC_UPCAST_SHARDED_PARAMS, "%s (from %s)%s", mode, mode_src,
               p->upcast_sharded_params ? ""
                                        : ": raw PyTorch FSDP keeps the flat parameter in "
                                          "load_dtype (accelerate#2624)");
    }

    const char *load_src = sl_plan_src(rd, "load_dtype");
    if (p->upcast_sharded_params && p->load_dtype != SL_DTYPE_F32) {
        p->master_dtype = SL_DTYPE_F32;
        sl_why(plan, SL_PREC_MASTER_DTYPE,
               "fp32: upcast_sharded_params is on and the model was loaded in %s (load_dtype "
               "from %s)",
               sl_dtype_name(p->load_dtype), load_src);
    } else {
        p->master_dtype = p->load_dtype;
        sl_why(plan, SL_PREC_MASTER_DTYPE,
               "= load_dtype (from %s): FSDP flattens the parameters in the dtype they were "
               "loaded in",
               load_src);
    }
    p->master_init = SL_MASTER_EXACT;
    sl_why(plan, SL_PREC_MASTER_INIT, "FSDP shards the loaded values; widening is exact");
    p->param_dtype = mp->on ? mp->dtype : p->load_dtype;
    if (mp->on) {
        sl_why(plan, SL_PREC_PARAM_DTYPE,
               "= mixed_precision (from %s): MixedPrecision "
               "param_dtype",
               mp->src);
    } else {
        sl_why(plan, SL_PREC_PARAM_DTYPE,
               "= load_dtype: no mixed precision (from %s), compute runs in the flat "
               "parameter's dtype",
               mp->src);
    }

    bool explicit_reduce;
    SL_TRY(sl_plan_read_dtype(rd, "fsdp_reduce_dtype", &p->reduce_dtype, &explicit_reduce));
    if (explicit_reduce) {
        sl_why(plan, SL_PREC_REDUCE_DTYPE, "from %s", sl_plan_src(rd, "fsdp_reduce_dtype"));
    } else {
        p->reduce_dtype = p->param_dtype;
        sl_why(plan, SL_PREC_REDUCE_DTYPE, "= param_dtype: %s",
               v2       ? "FSDP2 reduces in the gradient's dtype, the compute dtype"
               : mp->on ? "MixedPrecision.reduce_dtype defaults to param_dtype (Accelerate "
                          "sets both to mixed_precision)"
                        : "without MixedPrecision gradients are reduced in the flat parameter's "
                          "dtype");
    }

    double pre, post;
    sl_divide_factors_pow2(plan->world_size, &pre, &post);
    if (v2 && p->reduce_dtype != SL_DTYPE_F16) {
        p->grad_divide = SL_DIVIDE_AVG;
        sl_why(plan, SL_PREC_GRAD_DIVIDE,
               "FSDP2 reduces fp32/bf16 with ReduceOp.AVG: SUM, then "
               "divide by W = %d",
               plan->world_size);
    } else {
        p->grad_divide = SL_DIVIDE_PRE_POST_POW2;
        sl_why(plan, SL_PREC_GRAD_DIVIDE,
               "%s: divide by pre = %g, SUM, divide by post = %g "
               "(W = %d)",
               v2 ? "FSDP2 keeps the pre/post split for fp16" : "FSDP1", pre, post,
               plan->world_size);
    }
    if (v2) {
        p->accum_dtype = p->reduce_dtype;
        sl_why(plan, SL_PREC_ACCUM_DTYPE,
               "= reduce_dtype: FSDP2 accumulates unsynchronised "
               "gradients in reduce_dtype");
    } else {
        p->accum_dtype = p->param_dtype;
        sl_why(plan, SL_PREC_ACCUM_DTYPE,
               "= param_dtype: FSDP1 no_sync accumulates the "
               "unsharded flat gradient in the compute dtype");
    }
    sl_precision_torch_step(plan, mp);
    return SL_OK;
}

static void sl_precision_ddp(sl_plan_reader *rd, const sl_mixed_precision *mp) {
    sl_plan *plan = rd->plan;
    sl_precision *p = &plan->precision;
    p->master_dtype = p->load_dtype;
    sl_why(plan, SL_PREC_MASTER_DTYPE,
           "= load_dtype (from %s): DDP trains the module's own "
           "parameters",
           sl_plan_src(rd, "load_dtype"));
    p->master_init = SL_MASTER_EXACT;
    sl_why(plan, SL_PREC_MASTER_INIT, "the optimizer updates the loaded values");
    p->param_dtype = mp->on ? mp->dtype : p->load_dtype;
    sl_why(plan, SL_PREC_PARAM_DTYPE, "%s (mixed_precision from %s)",
           mp->on ? "= mixed_precision: autocast computes in it" : "= load_dtype: no autocast",
           mp->src);
    p->reduce_dtype = p->master_dtype;
    sl_why(plan, SL_PREC_REDUCE_DTYPE,
           "= master_dtype: DDP all-reduces .grad, which autocast "
           "leaves in the parameter's dtype");
    p->grad_divide = SL_DIVIDE_PRE;
    sl_why(plan, SL_PREC_GRAD_DIVIDE,
           "DDP divides each gradient bucket by W before the "
           "all-reduce (torch Reducer)");
    p->accum_dtype = p->master_dtype;
    sl_why(plan, SL_PREC_ACCUM_DTYPE,
           "= master_dtype: no_sync accumulates .grad in the "
           "parameter's dtype");
    p->upcast_sharded_params = false;
    sl_why(plan, SL_PREC_UPCAST_SHARDED_PARAMS, "off: not FSDP");
    sl_precision_torch_step(plan, mp);
}

static sl_status sl_precision_deepspeed_scaler(sl_plan_reader *rd, const sl_mixed_precision *mp) {
    sl_plan *plan = rd->plan;
    sl_precision *p = &plan->precision;
    if (!mp->on || mp->dtype != SL_DTYPE_F16) {
        p->loss_scale = SL_SCALER_NONE;
        sl_why(plan, SL_PREC_LOSS_SCALE, "no fp16 (mixed_precision = %s from %s)", mp->name,
               mp->src);
        return SL_OK;
    }
    double static_scale;
    SL_TRY(sl_plan_read_double(rd, "loss_scale", NULL, 0.0, DBL_MAX, &static_scale));
    if (static_scale > 0) {
        p->loss_scale = SL_SCALER_STATIC;
        sl_why(plan, SL_PREC_LOSS_SCALE, "loss_scale = %g (from %s): a static scale", static_scale,
               sl_plan_src(rd, "loss_scale"));
        plan->scaler = (sl_loss_scaler_config){.init_scale = static_scale,
                                               .growth_factor = 2.0,
                                               .backoff_factor = 0.5,
                                               .growth_interval = 1000,
                                               .hysteresis = 1,
                                               .min_scale = static_scale};
        return SL_OK;
    }
    long long power, window, hysteresis;
    SL_TRY(sl_plan_read_int(rd, "initial_scale_power", 0, 127, &power));
    SL_TRY(sl_plan_read_int(rd, "loss_scale_window", 1, INT_MAX, &window));
    SL_TRY(sl_plan_read_int(rd, "hysteresis", 1, INT_MAX, &hysteresis));
    SL_TRY(sl_plan_read_bool(rd, "consecutive_hysteresis", &plan->scaler.consecutive_hysteresis));
    SL_TRY(
        sl_plan_read_double(rd, "min_loss_scale", NULL, DBL_MIN, DBL_MAX, &plan->scaler.min_scale));
    plan->scaler.init_scale = ldexp(1.0, (int)power);
    plan->scaler.growth_factor = 2.0;
    plan->scaler.backoff_factor = 0.5;
    plan->scaler.growth_interval = (int)window;
    plan->scaler.hysteresis = (int)hysteresis;
    if (plan->zero_stage == 0) {
        p->loss_scale = SL_SCALER_FP16_OPT_DYNAMIC;
        sl_why(plan, SL_PREC_LOSS_SCALE,
               "fp16 at stage 0: FP16_Optimizer's dynamic scaler, "
               "no hysteresis");
    } else {
        p->loss_scale = SL_SCALER_ZERO_DYNAMIC;
        sl_why(plan, SL_PREC_LOSS_SCALE,
               "fp16 under ZeRO-%d: DynamicLossScaler with hysteresis "
               "%lld",
               plan->zero_stage, hysteresis);
    }
    return SL_OK;
}

static sl_status sl_precision_deepspeed(sl_plan_reader *rd, const sl_mixed_precision *mp) {
    sl_plan *plan = rd->plan;
    sl_precision *p = &plan->precision;
    p->master_dtype = SL_DTYPE_F32;
    sl_why(plan, SL_PREC_MASTER_DTYPE,
           "DeepSpeed keeps fp32 master partitions whatever the "
           "model was loaded in");
    p->master_init = mp->on ? SL_MASTER_ROUNDED : SL_MASTER_EXACT;
    if (mp->on) {
        sl_why(plan, SL_PREC_MASTER_INIT,
               "the engine casts the module to %s before it makes the "
               "fp32 masters (mixed_precision from %s)",
               mp->name, mp->src);
    } else {
        sl_why(plan, SL_PREC_MASTER_INIT,
               "no fp16/bf16 (from %s): the loaded values are widened "
               "to fp32",
               mp->src);
    }
    p->param_dtype = mp->on ? mp->dtype : SL_DTYPE_F32;
    sl_why(plan, SL_PREC_PARAM_DTYPE, "%s (mixed_precision from %s)",
           mp->on ? "the enabled fp16/bf16 section: parameters and compute in it"
                  : "fp32: neither fp16 nor bf16 is enabled",
           mp->src);

    bool set;
    SL_TRY(sl_plan_read_dtype(rd, "communication_data_type", &p->reduce_dtype, &set));
    if (set) {
        sl_why(plan, SL_PREC_REDUCE_DTYPE, "from %s", sl_plan_src(rd, "communication_data_type"));
    } else {
        p->reduce_dtype = p->param_dtype;
        sl_why(plan, SL_PREC_REDUCE_DTYPE,
               "= param_dtype: communication_data_type defaults to "
               "the model dtype");
    }
    bool reduce_scatter = true;
    if (plan->zero_stage == 1 || plan->zero_stage == 2) {
        SL_TRY(sl_plan_read_bool(rd, "reduce_scatter", &reduce_scatter));
    }
    if (plan->zero_stage == 0) {
        p->grad_divide = SL_DIVIDE_POST;
        sl_why(plan, SL_PREC_GRAD_DIVIDE,
               "stage 0 all-reduces the sum, then multiplies by 1/W "
               "(postscale_gradients)");
    } else if (!reduce_scatter) {
        p->grad_divide = SL_DIVIDE_POST;
        sl_why(plan, SL_PREC_GRAD_DIVIDE,
               "reduce_scatter = false (from %s): all-reduce the sum, "
               "then multiply by 1/W",
               sl_plan_src(rd, "reduce_scatter"));
    } else {
        p->grad_divide = SL_DIVIDE_PRE;
        sl_why(plan, SL_PREC_GRAD_DIVIDE,
               "ZeRO-%d divides by W before it sums (average_tensor / "
               "reduce_scatter_coalesced)",
               plan->zero_stage);
    }
    SL_TRY(sl_plan_read_dtype(rd, "grad_accum_dtype", &p->accum_dtype, &set));
    if (set) {
        sl_why(plan, SL_PREC_ACCUM_DTYPE, "from %s", sl_plan_src(rd, "grad_accum_dtype"));
    } else {
        p->accum_dtype = p->param_dtype;
        sl_why(plan, SL_PREC_ACCUM_DTYPE,
               "= param_dtype: data_types.grad_accum_dtype defaults "
               "to the model dtype");
    }
    p->optim_dtype = SL_DTYPE_F32;
    sl_why(plan, SL_PREC_OPTIM_DTYPE, "fp32 Adam states beside the fp32 masters");
    p->norm = SL_NORM_F64;
    sl_why(plan, SL_PREC_NORM,
           "per-tensor norms in fp64, squares summed and cast to fp32; a "
           "non-finite norm reads -1");
    p->clip = SL_CLIP_DS;
    sl_why(plan, SL_PREC_CLIP,
           "DeepSpeed: c = ((norm / scale) + 1e-6) / max, clamped >= 1, "
           "grads *= 1 / (c * scale)");
    bool torch_adam;
    SL_TRY(sl_plan_read_bool(rd, "torch_adam", &torch_adam));
    p->adam = torch_adam ? SL_ADAM_TORCH : SL_ADAM_DS_FUSED;
    if (torch_adam) {
        sl_why(plan, SL_PREC_ADAM,
               "torch_adam = true (from %s): DeepSpeed steps torch.optim.AdamW, bias corrections "
               "in double",
               sl_plan_src(rd, "torch_adam"));
    } else {
        sl_why(plan, SL_PREC_ADAM,
               "FusedAdam in adam_w_mode (DeepSpeed's \"Adam\" is AdamW): bias "
               "corrections in float");
    }
    p->upcast_sharded_params = false;
    sl_why(plan, SL_PREC_UPCAST_SHARDED_PARAMS, "off: not FSDP");
    return sl_precision_deepspeed_scaler(rd, mp);
}

/* Under DeepSpeed the JSON's fp16/bf16 sections give the dtype; mixed_precision must agree with
 * an enabled one (Accelerate: "`--mixed_precision` arg cannot be set to X when Y is set in the
 * DeepSpeed config file") and may pick the dtype when the sections leave it open. */
static sl_status sl_precision_deepspeed_enabled(sl_plan_reader *rd, sl_mixed_precision *mp) {
    bool fp16 = false, bf16 = false;
    if (sl_plan_is_set(rd, "fp16_enabled")) SL_TRY(sl_plan_read_bool(rd, "fp16_enabled", &fp16));
    if (sl_plan_is_set(rd, "bf16_enabled")) SL_TRY(sl_plan_read_bool(rd, "bf16_enabled", &bf16));
    if (fp16 && bf16) {
        return sl_error_set(SL_ERR_CONFIG,
                            "fp16_enabled (from %s) and bf16_enabled (from %s) are both true: "
                            "DeepSpeed trains in one of them; disable one",
                            sl_plan_src(rd, "fp16_enabled"), sl_plan_src(rd, "bf16_enabled"));
    }
    const bool mp_set = sl_plan_is_set(rd, "mixed_precision");
    if (fp16 || bf16) {
        const char *key = fp16 ? "fp16_enabled" : "bf16_enabled";
        const char *name = fp16 ? "fp16" : "bf16";
        if (mp_set && strcmp(mp->name, name) != 0) {
            return sl_error_set(SL_ERR_CONFIG,
                                "mixed_precision = %s (from %s) contradicts %s = true (from %s); "
                                "Accelerate refuses this too: make them agree or drop "
                                "mixed_precision",
                                mp->name, mp->src, key, sl_plan_src(rd, key));
        }
        mp->on = true;
        mp->name = name;
        mp->dtype = fp16 ? SL_DTYPE_F16 : SL_DTYPE_BF16;
        snprintf(mp->src, sizeof mp->src, "%s", sl_plan_src(rd, key));
        return SL_OK;
    }
    if (!mp->on) return SL_OK;
    const char *key = mp->dtype == SL_DTYPE_F16 ? "fp16_enabled" : "bf16_enabled";
    if (!sl_plan_is_set(rd, key)) return SL_OK;
    return sl_error_set(SL_ERR_CONFIG,
                        "mixed_precision = %s (from %s) contradicts %s = false (from %s); make "
                        "them agree or drop one",
                        mp->name, mp->src, key, sl_plan_src(rd, key));
}

sl_status sl_plan_resolve_precision(sl_plan_reader *rd) {
    sl_plan *plan = rd->plan;
    sl_precision *p = &plan->precision;
    sl_mixed_precision mp = {0};
    bool set;
    SL_TRY(sl_plan_read_enum(rd, "mixed_precision", &mp.name));
    snprintf(mp.src, sizeof mp.src, "%s", sl_plan_src(rd, "mixed_precision"));
    mp.on = strcmp(mp.name, "no") != 0;
    if (mp.on) SL_TRY(sl_dtype_parse(mp.name, "mixed_precision", &mp.dtype));
    if (plan->dialect == SL_DIALECT_DEEPSPEED) SL_TRY(sl_precision_deepspeed_enabled(rd, &mp));
    SL_TRY(sl_plan_read_dtype(rd, "load_dtype", &p->load_dtype, &set));
    sl_why(plan, SL_PREC_LOAD_DTYPE, "from %s", sl_plan_src(rd, "load_dtype"));
    /* neutral settings for plans without a scaler; the fp16 rules below replace them */
    plan->scaler = (sl_loss_scaler_config){.init_scale = 1.0,
                                           .growth_factor = 2.0,
                                           .backoff_factor = 0.5,
                                           .growth_interval = 1000,
                                           .hysteresis = 1,
                                           .min_scale = 1.0};
    switch (plan->dialect) {
    case SL_DIALECT_DDP: sl_precision_ddp(rd, &mp); return SL_OK;
    case SL_DIALECT_FSDP1:
    case SL_DIALECT_FSDP2: return sl_precision_fsdp(rd, &mp);
    case SL_DIALECT_DEEPSPEED: return sl_precision_deepspeed(rd, &mp);
    }
    return sl_error_set(SL_ERR_INTERNAL, "plan compiler: unknown dialect %d", (int)plan->dialect);
}
