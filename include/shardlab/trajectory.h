/* What a training run produced, per optimizer step, in the schema ref/ and impl/ both write
 * (DIR/trajectory.json) and conformance compares. */
#ifndef SHARDLAB_TRAJECTORY_H
#define SHARDLAB_TRAJECTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "shardlab/observe.h"
#include "shardlab/status.h"

typedef struct sl_trajectory_step {
    int step;          /* 1-based optimizer step */
    double loss;       /* mean token loss of the global batch (Σ in f64 ÷ token count) */
    double grad_norm;  /* global norm of the averaged, unscaled gradient before clipping;
                          -1 when DeepSpeed's rule maps a non-finite norm to -1 */
    double loss_scale; /* scale used for this step's backward (1 without a scaler) */
    bool skipped;      /* overflow: parameters and LR schedule not advanced */
    double lr;         /* learning rate applied (or that would have been, if skipped) */
    int64_t tokens;    /* target tokens counted in the loss, all ranks and micro-steps */
    double eval_loss;  /* held-out loss when evaluated at this step, else NaN */
} sl_trajectory_step;

typedef struct sl_trajectory {
    char producer[16]; /* "ref" or "impl" */
    int n_steps;
    int cap_steps;
    sl_trajectory_step *steps;
    double seconds; /* wall time of the training loop */
} sl_trajectory;

void sl_trajectory_init(sl_trajectory *t, const char *producer);
void sl_trajectory_free(sl_trajectory *t);
sl_status sl_trajectory_append(sl_trajectory *t, const sl_trajectory_step *s);

/* Writes {"producer":..., "plan": <explain json>, "steps": [...], "observed": <observation>}
 * atomically to path. plan / obs may be NULL. */
struct sl_plan;
struct sl_model_desc;
sl_status sl_trajectory_write_json(const sl_trajectory *t, const struct sl_plan *plan,
                                   const struct sl_model_desc *model, const sl_observation *obs,
                                   const char *path);

#endif
