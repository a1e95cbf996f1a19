/* Loss scalers: the state machines that pick the scale the loss is multiplied by before backward
 * and decide whether an optimizer step is skipped (DESIGN.md §4.2). Pure state, shared by ref/ and
 * impl/, so both follow the same sequence of scales.
 *
 * Protocol, once per optimizer step (at the accumulation boundary):
 *   1. read `scale`: the backward passes of this step multiply the loss by it;
 *   2. compute `overflow` = any non-finite gradient element on any rank (a global OR);
 *   3. call sl_loss_scaler_update(s, overflow, &skip): it sets the scale for the NEXT step and
 *      says whether this step's parameter update (and LR-scheduler step) is skipped.
 *
 * The kinds (sl_loss_scaler_kind, plan.h):
 *   NONE              scale 1, never skips, even on overflow (nothing detects it). A run that must
 *                     skip non-finite steps at scale 1 — DeepSpeed bf16 with
 *                     bf16.check_grad_overflow — is STATIC with init_scale 1.
 *   STATIC            scale fixed at init_scale; an overflow skips the step (DeepSpeed fp16 with
 *                     loss_scale > 0: ZeRO and FP16_Optimizer check overflow themselves).
 *   TORCH_GRADSCALER  torch.amp.GradScaler / ShardedGradScaler (_amp_update_scale_): the scale is
 *                     an f32 tensor. Overflow: scale ×= backoff_factor, growth tracker := 0, skip.
 *                     Clean: tracker += 1; when it reaches growth_interval, scale ×= growth_factor
 *                     (kept only if the f32 result is finite) and tracker := 0.
 *   ZERO_DYNAMIC      DeepSpeed DynamicLossScaler.update_scale (ZeRO 1-3, fp16). Overflow: if
 *                     hysteresis (delayed_shift) is 1 or cur_hysteresis is 1, the scale becomes
 *                     max(scale / growth_factor, min_scale) — or, when it already equals min_scale,
 *                     the run fails with SL_ERR_NUMERIC —, else cur_hysteresis -= 1;
 *                     last_overflow_iter := cur_iter; skip. Clean: with consecutive_hysteresis
 *                     cur_hysteresis := hysteresis; then with s = cur_iter - last_overflow_iter
 *                     - 1, if s > 0 and s % growth_interval == 0: cur_hysteresis := hysteresis
 *                     and scale ×= growth_factor. Both: cur_iter += 1.
 *                     With no overflow the first growth happens in the update with
 *                     cur_iter == growth_interval (the (growth_interval+1)-th step).
 *   FP16_OPT_DYNAMIC  DeepSpeed stage-0 FP16_Optimizer._update_scale as of the versions the plan
 *                     follows: every overflow sets scale := max(scale / growth_factor, min_scale)
 *                     (no hysteresis, no error at the minimum); growth as ZERO_DYNAMIC.
 *
 * DeepSpeed keeps one scale_factor (2.0) for both directions, so the DeepSpeed kinds divide by
 * growth_factor on overflow; backoff_factor is used by TORCH_GRADSCALER only. DeepSpeed's scale is
 * a Python float: its arithmetic is double; GradScaler's is rounded to f32 after each update. */
#ifndef SHARDLAB_LOSS_SCALER_H
#define SHARDLAB_LOSS_SCALER_H

#include <stdbool.h>
#include <stdint.h>

#include "shardlab/plan.h"
#include "shardlab/status.h"

/* Plain state: a checkpoint saves and restores every field. */
typedef struct sl_loss_scaler {
    sl_loss_scaler_kind kind;
    sl_loss_scaler_config cfg;
    double scale;               /* the scale for the next backward */
    int64_t cur_iter;           /* updates done so far (DeepSpeed cur_iter) */
    int64_t last_overflow_iter; /* cur_iter of the last overflow; -1 before the first */
    int cur_hysteresis;         /* DeepSpeed cur_hysteresis (ZERO_DYNAMIC) */
    int growth_tracker;         /* GradScaler clean steps since the last change of scale */
} sl_loss_scaler;

/* Validates `cfg` for `kind` (fields a kind does not use are not checked) and sets the initial
 * state: scale = init_scale (1 for NONE; rounded to f32 for TORCH_GRADSCALER), cur_iter 0,
 * last_overflow_iter -1, cur_hysteresis = hysteresis, growth_tracker 0. Errors
 * (SL_ERR_INVALID_ARG) name the offending field. */
sl_status sl_loss_scaler_init(sl_loss_scaler *s, sl_loss_scaler_kind kind,
                              const sl_loss_scaler_config *cfg);

/* Advances the state machine by one optimizer step whose gradients did (`overflow`) or did not
 * overflow; *skip_step tells whether that step's update is skipped. Returns SL_ERR_NUMERIC when a
 * ZERO_DYNAMIC scaler overflows with the scale already at min_scale: the state is left unchanged
 * and *skip_step is true; the run cannot continue (DeepSpeed raises at that point). */
sl_status sl_loss_scaler_update(sl_loss_scaler *s, bool overflow, bool *skip_step);

const char *sl_loss_scaler_kind_name(sl_loss_scaler_kind kind); /* "none", "static", ... */

#endif
