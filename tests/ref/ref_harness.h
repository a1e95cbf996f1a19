/* Helpers for tests that run the reference trainer in-process: compile a plan from a flag string,
 * train it into a temporary directory, read back the final parameters, measure divergence. */
#ifndef SHARDLAB_TESTS_REF_HARNESS_H
#define SHARDLAB_TESTS_REF_HARNESS_H

#include <stdbool.h>

#include "ref/trainer.h"
#include "shardlab/model.h"
#include "shardlab/observe.h"
#include "shardlab/plan.h"
#include "shardlab/trajectory.h"

typedef struct ref_result {
    sl_plan *plan;
    sl_trajectory traj;
    sl_observation obs;
    float **final; /* [P] final master parameters (f32) */
    char dir[256]; /* the run's output directory */
} ref_result;

/* A small GPT-2 that keeps these tests fast: L2 C32 H2 T32 V256. */
sl_model_desc *harness_model(void);

/* Compiles `flags` (space-separated plan flags) for `model` and trains with `opt` (out_dir is
 * replaced by a fresh temporary directory). Fails the test on any error, printing the flags. */
void harness_run(const sl_model_desc *model, const char *flags, const sl_ref_options *opt,
                 ref_result *out);
void harness_free(const sl_model_desc *model, ref_result *r);

/* max over steps of |loss_a - loss_b| / |loss_b| */
double harness_loss_divergence(const ref_result *a, const ref_result *b);
/* max over parameter elements of |a - b| / (|b| + 1e-3) */
double harness_param_divergence(const sl_model_desc *model, const ref_result *a,
                                const ref_result *b);
/* Number of parameter elements whose bits differ. */
long harness_param_bits_differ(const sl_model_desc *model, const ref_result *a,
                               const ref_result *b);

#endif
