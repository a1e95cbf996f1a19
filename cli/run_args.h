/* The run flags `shardlab ref` and `shardlab train` share (data, steps, outputs, evaluation),
 * parsed together with the plan flags (sl_config_parse_args) and the model flags
 * (cli/model_args.h). */
#ifndef SHARDLAB_CLI_RUN_ARGS_H
#define SHARDLAB_CLI_RUN_ARGS_H

#include <stdbool.h>

#include "cli/model_args.h"
#include "shardlab/config.h"
#include "shardlab/data.h"

typedef struct sl_run_args {
    const char *data; /* "default" or a path */
    sl_sample_mode sampling;
    const char *out_dir;   /* NULL: write nothing */
    const char *init_from; /* NULL: the model's init rules */
    int eval_every;        /* 0: never */
    int eval_batches;      /* global batches per held-out evaluation */
    bool quiet;
    sl_model_args model;
} sl_run_args;

/* Usage lines of the run flags. */
extern const char *const sl_run_args_usage;

/* Plan flags go into cfg (--steps sets max_steps), model and run flags into *out; anything else
 * is an error naming the argument, followed by `usage`. */
sl_status sl_run_args_parse(sl_config *cfg, int argc, char **argv, const char *usage,
                            sl_run_args *out);

/* Creates the --out directory (an existing one is reused). */
sl_status sl_run_args_make_out_dir(const sl_run_args *a);

#endif
