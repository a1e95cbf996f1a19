/* Helpers of the engine tests: the model they train and a plan compiled from a flag string.
 * Processes and scratch directories are tests/support's; reading a run's files and measuring
 * divergences is the conformance library's (conformance/runner.h, conformance/divergence.h). */
#ifndef SHARDLAB_TESTS_ENGINE_HARNESS_H
#define SHARDLAB_TESTS_ENGINE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "shardlab/model.h"
#include "shardlab/plan.h"
#include "tests/support/support.h"

/* The model every engine test trains: GPT-2 L2 C32 H2 T32 V256. */
#define EH_MODEL_FLAGS "--n_layer 2 --n_embd 32 --n_head 2 --block_size 32 --vocab_size 256"
sl_model_desc *eh_model(void);

/* Compiles plan flags (space-separated) for model; fails the test with the message otherwise. */
sl_plan *eh_plan(const sl_model_desc *model, const char *flags);

/* The conformance suite's series divergence, max_i |a_i - b_i| / |b_i| over n values
 * (sl_conf_series_divergence). */
double eh_series_divergence(const double *a, const double *b, int n);

#endif
