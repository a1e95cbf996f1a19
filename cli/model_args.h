/* Model selection flags shared by every command that builds a model:
 * --model NAME, or --n_layer --n_embd --n_head --block_size --vocab_size (each overriding the
 * named size's field when both are given). */
#ifndef SHARDLAB_CLI_MODEL_ARGS_H
#define SHARDLAB_CLI_MODEL_ARGS_H

#include <stdbool.h>

#include "shardlab/model.h"

typedef struct sl_model_args {
    const char *name;                                    /* default "gpt-tiny" */
    int n_layer, n_embd, n_head, block_size, vocab_size; /* 0: from the named size */
} sl_model_args;

void sl_model_args_init(sl_model_args *a);

/* If argv[*i] is a model flag, consumes it and its value (advancing *i) and returns true.
 * A missing or non-integer value is an error (*status set, message naming the flag). */
bool sl_model_args_parse(sl_model_args *a, int argc, char **argv, int *i, sl_status *status);

/* The resolved configuration, validated. */
sl_status sl_model_args_resolve(const sl_model_args *a, sl_gpt2_config *out);

/* Usage lines for the flags above. */
extern const char *const sl_model_args_usage;

#endif
