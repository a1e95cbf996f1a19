/* Helpers of the export tests: a small GPT-2, parameter values with a printed seed, running the
 * shardlab binary into a log, and reading an export back. Scratch directories are
 * tests/support's. */
#ifndef SHARDLAB_TESTS_EXPORT_HELPERS_H
#define SHARDLAB_TESTS_EXPORT_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardlab/model.h"
#include "tests/support/support.h"

/* GPT-2 L2 C32 H2 T32 V256: 2 blocks, 29 parameters, 0.1 MB in f32. */
#define XH_MODEL_FLAGS "--n_layer 2 --n_embd 32 --n_head 2 --block_size 32 --vocab_size 256"
sl_model_desc *xh_model(void);

/* arrays[p] = values from seed: N(0, 1) scaled by 1/(1 + p), so every parameter differs and
 * bf16 rounding is exercised at many exponents. The seed is printed by the caller on failure. */
float **xh_random_params(const sl_model_desc *desc, uint64_t seed);

/* Runs `shardlab ARGS` (split at spaces) with its output written to `log` (a file path); a run
 * past 300 s fails the test. Returns the exit status. */
int xh_shardlab(const char *args, const char *log);
/* The file's contents (static buffer, truncated to 64 KiB). */
const char *xh_slurp(const char *path);

/* The export at path as per-parameter f32 arrays (sl_hf_model_open; fails the test otherwise). */
float **xh_read_export(const sl_model_desc *desc, const char *path);
/* A safetensors file's parameters as f32 arrays (by the description's names). */
float **xh_read_file(const sl_model_desc *desc, const char *path);

/* Fails with the parameter, element and both bit patterns unless a and b are bit-equal. */
void xh_assert_params_equal(const sl_model_desc *desc, float **a, float **b, const char *what);

#endif
