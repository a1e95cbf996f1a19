/* ref/run.h — the state of one reference run and the operations the training loop is made of:
 * gathering and releasing units, keeping and reducing gradients, the optimizer step, batches,
 * and the files a run writes. Memory accounting and collective recording happen here, next to
 * the operation they describe. */
#ifndef SHARDLAB_REF_RUN_H
#define SHARDLAB_REF_RUN_H

#include <stdbool.h>

#include "ref/gpt2.h"
#include "ref/shards.h"
#include "ref/trainer.h"
#include "shardlab/data.h"
#include "shardlab/loss_scaler.h"

typedef struct sl_ref_run {
    const sl_plan *plan;
    const sl_model_desc *model;
    const sl_ref_options *opt;
    sl_observation *obs;
    sl_ref_shards *shards;
    sl_loss_scaler scaler;
    int applied_steps; /* optimizer steps not skipped: what the LR schedule counts */
    bool record;       /* record collectives (the first step) */

    float **initial; /* [P] the loaded parameters (load_dtype values), kept for init.safetensors */
    float **params;  /* [P] full parameters as gathered (param_dtype values; identical on every
                        rank, so one copy serves all) */
    float ***grads;  /* [W][P] each rank's gradients of the current backward (param_dtype) */
    float ***local;  /* [W][P] with SL_ACCUM_LOCAL_UNSHARDED, each rank's no_sync accumulator
                        (accum_dtype); otherwise NULL and reductions read grads */
    bool **gathered; /* [W][n_units] whether rank r holds unit u gathered */
    sl_ref_gpt2_acts **acts; /* [W] */
    float *losses;           /* (b, T) scratch */
    float **dlosses;         /* [W] (b, T) */

    sl_dataset *train, *heldout;
    sl_sampler *sampler;
    int32_t *inputs, *targets; /* (W, k, b, T) of the current step */
    int32_t *step1_inputs, *step1_targets;
    float **step1_grads; /* [P] full averaged gradient of step 1 before clipping */
} sl_ref_run;

sl_status sl_ref_run_create(const sl_plan *plan, const sl_model_desc *model,
                            const sl_ref_options *opt, sl_observation *obs, sl_ref_run **out);
void sl_ref_run_destroy(sl_ref_run *run);

/* batches */
sl_status sl_ref_run_load_batch(sl_ref_run *run, int step);
const int32_t *sl_ref_run_inputs(const sl_ref_run *run, int r, int m);
const int32_t *sl_ref_run_targets(const sl_ref_run *run, int r, int m);
int64_t sl_ref_run_count_tokens(const sl_ref_run *run, int r, int m);

/* units (ref/units.c): gather before use, release per the strategy */
void sl_ref_run_gather(sl_ref_run *run, int r, int unit, sl_phase phase, int micro);
void sl_ref_run_after_forward(sl_ref_run *run, int r, int unit);
void sl_ref_run_release(sl_ref_run *run, int r, int unit);
void sl_ref_run_activations_begin(sl_ref_run *run, int r);
void sl_ref_run_activations_end(sl_ref_run *run, int r);
/* Whether micro-step m ends with a gradient reduction (every micro-step reduces with
 * SL_ACCUM_REDUCED_SHARD; no_sync accumulation reduces at the last one). */
bool sl_ref_run_syncs(const sl_ref_run *run, int micro);

/* gradients (ref/grads.c): the backward of micro-step m on all ranks */
void sl_ref_run_backward_begin(sl_ref_run *run, int micro);
/* Every rank finished the backward of `unit`: prefetch the next unit, release this one, keep
 * its local gradients, reduce them if the step synchronises now. */
void sl_ref_run_unit_backward_done(sl_ref_run *run, int unit, int micro);
void sl_ref_run_backward_end(sl_ref_run *run, int micro);

/* the optimizer step (ref/step.c): overflow, unscale, norm, clip, AdamW, loss scaler */
double sl_ref_run_loss_scale(const sl_ref_run *run);
sl_status sl_ref_run_optimizer_step(sl_ref_run *run, sl_trajectory_step *rec);

/* held-out loss over opt->eval_batches global batches, with the current parameters */
sl_status sl_ref_run_eval(sl_ref_run *run, double *loss);

/* files (ref/outputs.c) */
sl_status sl_ref_run_write_initial(sl_ref_run *run);
sl_status sl_ref_run_write_step1(sl_ref_run *run);
sl_status sl_ref_run_write_final(sl_ref_run *run, const sl_trajectory *traj);

/* helpers shared by the files above */
int64_t sl_ref_unit_gather_numel(const sl_plan *plan, int unit, bool persistent);
bool sl_ref_layout_gathers_per_unit(const sl_plan *plan);
void sl_ref_record(sl_ref_run *run, sl_coll_op op, sl_coll_group group, sl_phase phase, int micro,
                   int unit, sl_dtype dt, int64_t elements);

#endif
