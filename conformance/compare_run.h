/* One training run of a plan as `compare` and the equivalence report hold it: the per-step
 * trajectory, every final parameter (f32, the model's parameters concatenated in registration
 * order), what the run observed (dtypes, collectives, peak memory) and its speed; and the
 * divergence measures between two such runs.
 *
 * sl_compare_ref_run executes a compiled plan with the reference trainer in this process. It is
 * what ablation needs: a plan whose fields were switched one by one in memory (ablate.h) is not a
 * configuration any flag set describes, so it cannot go through a subprocess. */
#ifndef SHARDLAB_CONFORMANCE_COMPARE_RUN_H
#define SHARDLAB_CONFORMANCE_COMPARE_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "shardlab/data.h"
#include "shardlab/model.h"
#include "shardlab/observe.h"
#include "shardlab/plan.h"
#include "shardlab/trajectory.h"

typedef struct sl_compare_result {
    char producer[16]; /* "ref" or "impl" */
    sl_trajectory traj;
    int64_t n_values; /* model->total_numel */
    float *params;    /* [n_values] final parameters */
    sl_observation obs;
    double tokens_per_s;
} sl_compare_result;

typedef struct sl_compare_run_opts {
    sl_sample_mode sampling;
    bool reverse_reduction_order; /* the summation-order twin of a run: the noise floor */
} sl_compare_run_opts;

/* Trains plan->steps steps with the reference (W logical ranks, default data). */
sl_status sl_compare_ref_run(const sl_plan *plan, const sl_model_desc *model,
                             const sl_compare_run_opts *opt, sl_compare_result *out);
/* Reads every parameter of `model` from a final.safetensors into out->params. */
sl_status sl_compare_read_params(const char *path, const sl_model_desc *model,
                                 sl_compare_result *out);
void sl_compare_result_free(sl_compare_result *r);
/* Removes a run directory of plain files (what the reference and the runner write) and itself. */
void sl_compare_remove_run_dir(const char *dir);

/* |loss_a − loss_b| at step i (0-based); NaN when either run lacks it. */
double sl_compare_loss_gap(const sl_compare_result *a, const sl_compare_result *b, int i);
/* The largest relative loss gap |La − Lb| / |Lb| over all steps (NaN propagates). */
double sl_compare_loss_div(const sl_compare_result *a, const sl_compare_result *b);
/* ‖θa − θb‖₂ / ‖θb‖₂ over all final parameters (f64 sums). */
double sl_compare_param_div(const sl_compare_result *a, const sl_compare_result *b);
/* Final-step loss of a run (NaN without steps). */
double sl_compare_final_loss(const sl_compare_result *r);

#endif
