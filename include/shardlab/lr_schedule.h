/* Learning-rate schedules, in the convention of Hugging Face transformers' LambdaLR schedules
 * (transformers/optimization.py: get_constant_schedule_with_warmup,
 * get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup and
 * get_cosine_with_min_lr_schedule_with_warmup with num_cycles = 0.5), computed in double as
 * Python does: lr(step) = cfg->lr * factor(step).
 *
 * `step` is the number of scheduler steps taken before this optimizer step, i.e. the 0-based
 * index of the optimizer step counting only steps that were NOT skipped. A step skipped on
 * overflow does not advance the scheduler (DeepSpeed's engine and Accelerate's scheduler wrapper
 * both skip scheduler.step() then), so the caller passes the count of applied steps, not the
 * iteration number. `total_steps` is num_training_steps. With W = cfg->warmup_steps and
 * r = cfg->min_lr_ratio:
 *
 *   warmup, step < W:  factor = step / max(1, W)             (so the first step runs at lr 0
 *                                                             when W > 0, as in transformers)
 *   CONSTANT:          factor = 1
 *   WARMUP_LINEAR:     d = max(0, (total - step) / max(1, total - W)); factor = d·(1 - r) + r
 *   WARMUP_COSINE:     p = (step - W) / max(1, total - W), capped at 1;
 *                      c = 0.5·(1 + cos(π·p));                 factor = c·(1 - r) + r
 *
 * With r = 0 these are transformers' schedules exactly; r > 0 is
 * get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate = r) for cosine, and the same floor
 * applied to the linear decay. The cap on p only changes steps past total_steps, which a run
 * never takes (transformers would let the cosine rise again there). CONSTANT honours a warmup
 * (get_constant_schedule_with_warmup); with W = 0 it is the plain constant schedule. */
#ifndef SHARDLAB_LR_SCHEDULE_H
#define SHARDLAB_LR_SCHEDULE_H

#include "shardlab/plan.h"

/* Domain: step >= 0, total_steps >= 1, 0 <= warmup_steps, 0 <= min_lr_ratio <= 1 (the plan
 * validates them); values outside are handled by the max(1, ·) guards above, never by a division
 * by zero. */
double sl_lr_at(const sl_optim_config *cfg, int step, int total_steps);

const char *sl_lr_schedule_name(sl_lr_schedule s); /* "constant", "warmup_cosine", ... */

#endif
