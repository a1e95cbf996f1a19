/* Helpers of the checkpoint tests: running `shardlab train` (alone or under launch) with a time
 * limit and extra environment, and reading a run's outputs. Scratch directories and the process
 * runner are tests/support's. */
#ifndef SHARDLAB_TESTS_CKPT_HARNESS_H
#define SHARDLAB_TESTS_CKPT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "shardlab/model.h"
#include "tests/support/support.h"

/* The model of every checkpoint test (the engine tests' GPT-2 L2 C32 H2 T32 V256). */
#define CH_MODEL_FLAGS "--n_layer 2 --n_embd 32 --n_head 2 --block_size 32 --vocab_size 256"
sl_model_desc *ch_model(void);

/* Runs `shardlab train ARGS` (space-separated), under `shardlab launch --num_processes W
 * LAUNCH_FLAGS` when W > 1, with `env` ("NAME=value", NULL-terminated, may be NULL) added;
 * output into ch_output(). Fails the test after 120 s. Returns the exit status (128 + signal
 * when killed). */
int ch_train(int W, const char *launch_flags, const char *args, char *const *env);
const char *ch_output(void);
/* `shardlab launch --num_processes W LAUNCH_FLAGS <this test> --worker ARGS`. */
int ch_launch_self(int W, const char *launch_flags, const char *args);

/* The contents of dir/name without trailing newlines (static storage); "" when absent. */
const char *ch_read_text(const char *dir, const char *name);

/* Steps of DIR/trajectory.json: step[i], loss[i]; returns the count. */
int ch_read_trajectory(const char *dir, int *step, double *loss, int cap);
/* DIR/NAME as per-parameter f32 arrays (sl_param_arrays_alloc). */
float **ch_read_params(const sl_model_desc *model, const char *dir, const char *name);
/* Bit equality of two parameter sets. */
bool ch_params_equal(const sl_model_desc *model, float **a, float **b);
/* max |a - b| / max |b| over every element (the engine tests' measure). */
double ch_params_divergence(const sl_model_desc *model, float **a, float **b);

#endif
