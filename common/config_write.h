/* Writing a config store back out as a file users take to Accelerate or DeepSpeed: what
 * `shardlab config` and `shardlab convert-config` produce. The output reads back through
 * config_file.h to the same entries (a round trip the tests check). */
#ifndef SHARDLAB_COMMON_CONFIG_WRITE_H
#define SHARDLAB_COMMON_CONFIG_WRITE_H

#include <stdio.h>

#include "shardlab/config.h"
#include "shardlab/status.h"

typedef enum sl_config_out {
    SL_OUT_ACCELERATE_YAML, /* as `accelerate config` writes it: block style, sorted keys */
    SL_OUT_ACCELERATE_JSON, /* the same mapping as JSON, which Accelerate also reads */
    SL_OUT_DEEPSPEED_JSON   /* a DeepSpeed config: zero_optimization, bf16, optimizer, ... */
} sl_config_out;

/* Writes every entry of cfg whose source is not DEFAULT. An Accelerate file always gets
 * compute_environment, distributed_type (from use_fsdp / use_deepspeed / distributed_type /
 * num_processes and use_cpu) and num_processes. Entries the format has no place for (the run's
 * lr or seed in an Accelerate file, FSDP keys in a DeepSpeed config, ...) are not written; they
 * are copied, with their sources, into `unwritten` when it is not NULL. config_file is never
 * written. */
sl_status sl_config_write(const sl_config *cfg, sl_config_out fmt, FILE *f, sl_config *unwritten);

#endif
