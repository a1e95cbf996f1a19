/* ref/trainer.h — the reference trainer: one process executing a plan on W logical ranks
 * (DESIGN.md §3–§5). It is the executable specification: slow, sequential, every rounding
 * explicit. */
#ifndef SHARDLAB_REF_TRAINER_H
#define SHARDLAB_REF_TRAINER_H

#include <stdbool.h>

#include "shardlab/data.h"
#include "shardlab/model.h"
#include "shardlab/observe.h"
#include "shardlab/plan.h"
#include "shardlab/trajectory.h"

typedef struct sl_ref_options {
    const char *data; /* "default" or a path (data.h) */
    sl_sample_mode sampling;
    const char *out_dir;          /* NULL: write nothing */
    const char *init_from;        /* safetensors file with Hugging Face names, or NULL */
    int eval_every;               /* held-out loss every N steps (0: never) */
    int eval_batches;             /* global batches per held-out evaluation */
    int progress;                 /* print one line per step through the logger */
    bool reverse_reduction_order; /* sum ranks in descending order (noise-floor measurement) */
} sl_ref_options;

sl_ref_options sl_ref_options_default(void);

/* Trains plan->steps optimizer steps. `traj` receives one entry per step; `obs` (initialised by
 * the caller for plan->world_size ranks) receives the dtypes, collectives of the first step and
 * memory actually used. With out_dir set, writes trajectory.json, init.safetensors,
 * batch_step1.safetensors, grads_step1.safetensors and final.safetensors there. */
sl_status sl_ref_train(const sl_plan *plan, const sl_model_desc *model, const sl_ref_options *opt,
                       sl_trajectory *traj, sl_observation *obs);

#endif
