/* Helpers of the engine tests: running `shardlab launch` / `shardlab train` with a time limit,
 * compiling a plan from a flag string. Reading a run's files and measuring divergences is the
 * conformance library's (conformance/runner.h, conformance/divergence.h). */
#ifndef SHARDLAB_TESTS_ENGINE_HARNESS_H
#define SHARDLAB_TESTS_ENGINE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "shardlab/model.h"
#include "shardlab/plan.h"

/* The model every engine test trains: GPT-2 L2 C32 H2 T32 V256. */
#define EH_MODEL_FLAGS "--n_layer 2 --n_embd 32 --n_head 2 --block_size 32 --vocab_size 256"
sl_model_desc *eh_model(void);

/* Splits `text` at spaces into argv (NULL-terminated, at most cap - 1 entries); the strings
 * live in `storage` (at least strlen(text) + 1 bytes). Returns the count. */
int eh_split(const char *text, char *storage, char **argv, int cap);

/* Compiles plan flags (space-separated) for model; fails the test with the message otherwise. */
sl_plan *eh_plan(const sl_model_desc *model, const char *flags);

/* Runs argv (argv[0] a path) with `env` ("NAME=value", NULL-terminated, may be NULL) added,
 * output captured into out; kills the process group after timeout_s (failing the test). Returns
 * the exit status. */
int eh_run(char *const *argv, char *const *env, double timeout_s, char *out, size_t cap);

char *eh_shardlab_bin(void); /* $SHARDLAB_BIN, or the build tree's copy */
char *eh_self(void);         /* this test executable */

/* A fresh empty directory under /tmp (the path is static storage per call of `tag`). */
void eh_tmpdir(const char *tag, char *out, size_t cap);

/* Removes a run directory made by eh_tmpdir and the files runs write there. */
void eh_rmdir(const char *dir);

/* The conformance suite's series divergence, max_i |a_i - b_i| / |b_i| over n values
 * (sl_conf_series_divergence). */
double eh_series_divergence(const double *a, const double *b, int n);

#endif
