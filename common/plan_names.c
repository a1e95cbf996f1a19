/* Spellings of the plan's enums, as DESIGN.md writes them: what explain prints and JSON holds. */
#include "common/plan_internal.h"

const char *sl_dialect_name(sl_dialect d) {
    switch (d) {
    case SL_DIALECT_DDP: return "ddp";
    case SL_DIALECT_FSDP1: return "fsdp1";
    case SL_DIALECT_FSDP2: return "fsdp2";
    case SL_DIALECT_DEEPSPEED: return "deepspeed";
    }
    return "?";
}

const char *sl_strategy_name(sl_strategy s) {
    switch (s) {
    case SL_STRATEGY_NO_SHARD: return "NO_SHARD";
    case SL_STRATEGY_SHARD_OPTIM: return "SHARD_OPTIM";
    case SL_STRATEGY_SHARD_GRAD_OP: return "SHARD_GRAD_OP";
    case SL_STRATEGY_FULL_SHARD: return "FULL_SHARD";
    case SL_STRATEGY_HYBRID_SHARD: return "HYBRID_SHARD";
    case SL_STRATEGY_HYBRID_SHARD_ZERO2: return "HYBRID_SHARD_ZERO2";
    }
    return "?";
}

const char *sl_layout_name(sl_layout_kind k) {
    switch (k) {
    case SL_LAYOUT_REPLICATED: return "REPLICATED";
    case SL_LAYOUT_FLAT_PER_UNIT: return "FLAT_PER_UNIT";
    case SL_LAYOUT_PER_PARAM_DIM0: return "PER_PARAM_DIM0";
    case SL_LAYOUT_FLAT_GLOBAL: return "FLAT_GLOBAL";
    case SL_LAYOUT_PER_PARAM_FLAT: return "PER_PARAM_FLAT";
    }
    return "?";
}

const char *sl_grad_divide_name(sl_grad_divide d) {
    switch (d) {
    case SL_DIVIDE_PRE_POST_POW2: return "PRE_POST_POW2";
    case SL_DIVIDE_AVG: return "AVG";
    case SL_DIVIDE_PRE: return "PRE";
    case SL_DIVIDE_POST: return "POST";
    }
    return "?";
}

const char *sl_master_init_name(sl_master_init m) {
    return m == SL_MASTER_ROUNDED ? "ROUNDED" : "EXACT";
}

const char *sl_loss_scaler_name(sl_loss_scaler_kind k) {
    switch (k) {
    case SL_SCALER_NONE: return "NONE";
    case SL_SCALER_STATIC: return "STATIC";
    case SL_SCALER_ZERO_DYNAMIC: return "ZERO_DYNAMIC";
    case SL_SCALER_FP16_OPT_DYNAMIC: return "FP16_OPT_DYNAMIC";
    case SL_SCALER_TORCH_GRADSCALER: return "TORCH_GRADSCALER";
    }
    return "?";
}

const char *sl_accum_mode_name(sl_accum_mode m) {
    return m == SL_ACCUM_REDUCED_SHARD ? "REDUCED_SHARD" : "LOCAL_UNSHARDED";
}

const char *sl_loss_norm_name(sl_loss_norm n) {
    return n == SL_LOSS_NORM_PER_MICROBATCH_MEAN ? "per_microbatch_mean" : "global_tokens";
}

const char *sl_backward_prefetch_name(int prefetch) {
    return prefetch == 1 ? "BACKWARD_PRE" : prefetch == 2 ? "BACKWARD_POST" : "NO_PREFETCH";
}

const char *sl_precision_field_name(sl_precision_field f) {
    static const char *const names[SL_PREC_FIELD_COUNT] = {
        "load_dtype",  "master_dtype", "master_init",          "param_dtype", "reduce_dtype",
        "grad_divide", "accum_dtype",  "optim_dtype",          "norm",        "clip",
        "adam",        "loss_scale",   "upcast_sharded_params"};
    return (unsigned)f < SL_PREC_FIELD_COUNT ? names[f] : "?";
}

const char *sl_precision_field_value(const sl_precision *p, sl_precision_field f) {
    switch (f) {
    case SL_PREC_LOAD_DTYPE: return sl_dtype_name(p->load_dtype);
    case SL_PREC_MASTER_DTYPE: return sl_dtype_name(p->master_dtype);
    case SL_PREC_MASTER_INIT: return sl_master_init_name(p->master_init);
    case SL_PREC_PARAM_DTYPE: return sl_dtype_name(p->param_dtype);
    case SL_PREC_REDUCE_DTYPE: return sl_dtype_name(p->reduce_dtype);
    case SL_PREC_GRAD_DIVIDE: return sl_grad_divide_name(p->grad_divide);
    case SL_PREC_ACCUM_DTYPE: return sl_dtype_name(p->accum_dtype);
    case SL_PREC_OPTIM_DTYPE: return sl_dtype_name(p->optim_dtype);
    case SL_PREC_NORM: return p->norm == SL_NORM_F64 ? "F64" : "F32";
    case SL_PREC_CLIP: return p->clip == SL_CLIP_DS ? "DS" : "TORCH";
    case SL_PREC_ADAM: return p->adam == SL_ADAM_DS_FUSED ? "DS_FUSED" : "TORCH";
    case SL_PREC_LOSS_SCALE: return sl_loss_scaler_name(p->loss_scale);
    case SL_PREC_UPCAST_SHARDED_PARAMS: return p->upcast_sharded_params ? "on" : "off";
    case SL_PREC_FIELD_COUNT: break;
    }
    return "?";
}
