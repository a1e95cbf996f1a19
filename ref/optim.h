/* ref/optim.h — the reference optimizer step on one rank's shard: AdamW in the two dialects
 * (DESIGN.md §4.1 `adam`), the global gradient norm over the shards of all ranks (`norm`),
 * gradient clipping and unscaling (`clip`).
 *
 * Storage: every array is f32 holding values of the dtype named next to it (the plan's
 * master_dtype for params, grads and moments). Each framework op is modelled as computing in f32
 * ("opmath") with one rounding to the tensor dtype when its result is stored; Python scalars
 * (lr, betas, ...) are doubles until an op consumes them as f32. Operations are kept separate
 * (this file is compiled with -ffp-contract=off): the frameworks' GPU and AVX kernels fuse some of
 * them into FMAs, and torch's CUDA division of a tensor by a Python scalar multiplies by the f32
 * reciprocal; each moves a result by at most one rounding — inside the conformance tolerances,
 * and the same for every run. */
#ifndef SHARDLAB_REF_OPTIM_H
#define SHARDLAB_REF_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "shardlab/dtype.h"
#include "shardlab/plan.h"
#include "shardlab/status.h"

/* One AdamW step, in place, on n elements: param, m, v (n) in master_dtype (F32, BF16 or F16),
 * grad (n) holding master_dtype values (already unscaled and clipped). `lr` is this step's rate
 * (lr_schedule.h), `step` the 1-based count of applied (not skipped) steps including this one.
 * Uses cfg->beta1, beta2, eps, weight_decay.
 *
 * SL_ADAM_TORCH — torch.optim.AdamW, single-tensor path (torch/optim/adamw.py, _single_tensor_adam
 * with decoupled weight decay):
 *     p = p · f32(1 - lr·wd)                       param.mul_(1 - lr * weight_decay)
 *     m = lerp(m, g, f32(1 - β1))                  exp_avg.lerp_(grad, 1 - beta1)
 *     v = v · f32(β2);  v = v + f32(1 - β2)·g·g    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, ...)
 *     bc1 = 1 - β1^step, bc2 = 1 - β2^step          (double)
 *     step_size = lr / bc1, bc2_sqrt = sqrt(bc2)    (double)
 *     d = sqrt(v);  d = d / f32(bc2_sqrt);  d = d + f32(eps)      each stored in the tensor dtype
 *     p = p + f32(-step_size)·(m / d)              param.addcdiv_(exp_avg, denom, value=-step_size)
 *   lerp is ATen's (aten/src/ATen/native/Lerp.h): for |w| < 0.5, m + w·(g - m); otherwise
 *   g - (g - m)·(1 - w).
 *
 * SL_ADAM_DS_FUSED — DeepSpeed FusedAdam, adam_w_mode (csrc/adam/multi_tensor_adam.cu,
 * AdamFunctor, ADAM_MODE_1): lr, β1, β2, eps, wd arrive as C floats; bias corrections are
 * bc = f32(1 - std::pow(β_f32, step)) (C++ promotes pow(float, int) to double); then in f32:
 *     m = β1·m + (1 - β1)·g
 *     v = β2·v + (1 - β2)·g·g
 *     m̂ = m / bc1;  v̂ = v / bc2;  d = sqrtf(v̂) + eps
 *     p = p - lr·((m̂ / d) + wd·p)                  decay on the pre-update p
 *   and p, m, v are stored in master_dtype.
 *
 * Errors (SL_ERR_INVALID_ARG): step < 1, n < 0, a master_dtype other than F32/BF16/F16. */
sl_status sl_ref_adamw_step(sl_adam_variant variant, const sl_optim_config *cfg, double lr,
                            int step, float *param, const float *grad, float *m, float *v,
                            int64_t n, sl_dtype master_dtype);

/* One contiguous piece of ONE tensor's gradient held by a rank: a per-tensor norm is taken over
 * each piece. A FlatParameter shard (FSDP1) is one piece; with use_orig_params, each original
 * parameter's part of the shard is one piece; under ZeRO each parameter's part of the rank's
 * partition is one piece. Padding may be included (it holds zeros). */
typedef struct sl_grad_piece {
    const float *data; /* (numel,) gradient values of the grad dtype */
    int64_t numel;
} sl_grad_piece;

/* What one rank of the shard group holds. Ranks are listed in rank order; with hybrid sharding
 * pass the ranks of ONE shard group (replicas hold identical shards, and both frameworks reduce
 * the norm over the shard group only). When every rank holds the whole gradient (NO_SHARD), pass
 * one rank: FSDP1 adds such "non-sharded" norms after its all-reduce, not through it. */
typedef struct sl_rank_grads {
    const sl_grad_piece *pieces;
    int n_pieces;
} sl_rank_grads;

/* The global L2 norm, as a double holding an f32 value.
 *
 * SL_NORM_F32 (FSDP1 clip_grad_norm_, torch/distributed/fsdp/fully_sharded_data_parallel.py and
 * _get_grad_norm): per piece t_i = sqrtf(Σ x² in f32); per rank
 * local = sqrtf(Σ_i t_i² in f32); across ranks total = sqrtf(Σ_r local_r² in f32, rank order).
 * A non-finite result is returned as is.
 *
 * SL_NORM_F64 (DeepSpeed get_grad_norm_direct, deepspeed/runtime/zero/stage_1_and_2.py): per
 * piece t_i = sqrt(Σ x² in f64); per rank s_r = f32(Σ_i t_i² in f64); total =
 * sqrtf(Σ_r s_r in f32, rank order); a non-finite total becomes -1.
 *
 * Every f32 sum over a piece's elements is pairwise (halves summed recursively, runs of at most
 * 32 elements summed in order), like the tree and cascade reductions torch uses, so its error
 * grows with log n; sums over pieces and over ranks are sequential, in order. */
double sl_ref_grad_norm(sl_norm_precision precision, const sl_rank_grads *ranks, int n_ranks);

/* The f32 multiplier that unscales and clips gradients whose norm is `norm` (the output of
 * sl_ref_grad_norm), for a clip threshold `max_norm` (0: no clipping).
 *
 * SL_CLIP_TORCH (torch clip_grad_norm_ / FSDP1 clip_grad_norm_): `norm` is of gradients already
 * unscaled (GradScaler.unscale_ runs first, see sl_ref_grads_unscale), so `loss_scale` is not
 * used. coef = f32(reciprocal(f32(norm + 1e-6)) · max_norm) — Python's `max_norm / tensor` is
 * tensor.reciprocal() * max_norm —, clamped to at most 1. No clipping: 1.
 *
 * SL_CLIP_DS (DeepSpeed unscale_and_clip_grads, stage_1_and_2.py / stage3.py): `norm` is of the
 * still-scaled gradients. In f32 (the norm is a 0-d f32 tensor): c = ((norm / scale) + 1e-6) /
 * max_norm, clamped to at least 1; combined = c · scale; multiplier = reciprocal(combined). No
 * clipping: multiplier = f32(1.0 / scale) (a Python float division). A norm of -1 gives c < 1,
 * hence no clipping. */
float sl_ref_clip_coef(sl_clip_rule rule, double norm, double max_norm, double loss_scale);

/* grad[i] = round_dt(grad[i] · k), n elements of dtype grad_dtype, where k is the multiplier from
 * sl_ref_clip_coef — for SL_CLIP_TORCH first rounded to grad_dtype (torch multiplies by
 * clip_coef_clamped.to(grad.dtype)); for SL_CLIP_DS used as the f32 it is. */
void sl_ref_clip_apply(sl_clip_rule rule, float coef, float *grad, int64_t n, sl_dtype grad_dtype);

/* GradScaler's inverse scale: f32(1 / scale) computed in double
 * (torch/amp/grad_scaler.py: self._scale.double().reciprocal().float()). */
float sl_ref_torch_inv_scale(double loss_scale);

/* GradScaler.unscale_ on one piece (_amp_foreach_non_finite_check_and_unscale_): each element is
 * tested on its scaled value, then grad[i] = round_dt(grad[i] · inv_scale). Returns true when any
 * element was non-finite. */
bool sl_ref_grads_unscale(float *grad, int64_t n, float inv_scale, sl_dtype grad_dtype);

#endif
