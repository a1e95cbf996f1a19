/* The run flags `shardlab ref` and `shardlab train` share (data, steps, outputs, evaluation),
 * parsed together with the plan flags (sl_config_parse_args) and the model flags
 * (cli/model_args.h). */
#ifndef SHARDLAB_CLI_RUN_ARGS_H
#define SHARDLAB_CLI_RUN_ARGS_H

#include <stdbool.h>

#include "cli/model_args.h"
#include "shardlab/config.h"
#include "shardlab/data.h"
#include "shardlab/engine.h"

typedef struct sl_run_args {
    const char *data; /* "default" or a path */
    sl_sample_mode sampling;
    const char *out_dir;   /* NULL: write nothing */
    const char *init_from; /* NULL: the model's init rules */
    int eval_every;        /* 0: never */
    int eval_batches;      /* global batches per held-out evaluation */
    bool quiet;
    sl_model_args model;
    const char *save_model; /* NULL: no Hugging Face export (`train` only) */
    sl_engine_export_options save_opts;
} sl_run_args;

/* `shardlab train`'s checkpoint flags (Accelerate's spellings). */
typedef struct sl_ckpt_args {
    int checkpointing_steps;            /* save every N optimizer steps; 0: never */
    const char *output_dir;             /* checkpoints in DIR/checkpoints/checkpoint_{step} */
    int checkpoints_total_limit;        /* keep the newest K; 0: all */
    const char *resume_from_checkpoint; /* "latest" or a checkpoint directory; NULL: afresh */
    const char *state_dict_type;        /* NULL: from the plan (fsdp_state_dict_type) */
} sl_ckpt_args;

extern const char *const sl_ckpt_args_usage;

/* Moves the checkpoint flags ("--flag value" or "--flag=value") out of argv[0..*argc), which is
 * compacted (*argc updated), into *out; errors name the flag. */
sl_status sl_ckpt_args_extract(int *argc, char **argv, sl_ckpt_args *out);

/* Usage lines of the run flags. */
extern const char *const sl_run_args_usage;

/* Plan flags go into cfg (--steps sets max_steps), model and run flags into *out; anything else
 * is an error naming the argument, followed by `usage`. */
sl_status sl_run_args_parse(sl_config *cfg, int argc, char **argv, const char *usage,
                            sl_run_args *out);

/* Creates the --out directory (an existing one is reused). */
sl_status sl_run_args_make_out_dir(const sl_run_args *a);

#endif
