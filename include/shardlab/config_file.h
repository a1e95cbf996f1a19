/* Config files as users already write them (DESIGN.md §3): Accelerate config files (YAML, or the
 * JSON form Accelerate also reads) and DeepSpeed JSON configs fill the same store the flags fill,
 * each entry with an SL_SOURCE_FILE source naming the file, the line and the key as written
 * ("ds.json:4 (zero_optimization.stage)"). Files sit below flags and the environment.
 *
 * Validation is stricter than Accelerate's: an unknown key at any depth is an error with its
 * file:line and the nearest known key; a value of the wrong type or outside the allowed values is
 * an error listing what is allowed; keys that mean nothing to this runtime (TPU, dynamo,
 * SageMaker, DeepSpeed monitoring, ...) are accepted with one logged notice each. Two files that
 * give the same key different values (gradient_accumulation_steps in the Accelerate file and in
 * its DeepSpeed JSON) are an error naming both places; "auto" yields to any value.
 *
 * DeepSpeed "auto" values stay "auto" in the store; the plan compiler resolves them from the run
 * the way Accelerate does (accelerate-facts.md §1.5) and logs each resolution. An "auto" that
 * Accelerate cannot fill either is an error at load time naming the key.
 *
 * Several DeepSpeed configurations for several models live in one Accelerate file as
 *     deepspeed_configs:
 *       student: {zero_optimization: {stage: 2}, bf16: {enabled: true}}
 *       teacher: teacher_zero3.json       # a path, relative to this file
 * The first entry is the default; `plan_name` (--plan_name, or the argument below) picks
 * another. Every entry is validated whichever is picked. */
#ifndef SHARDLAB_CONFIG_FILE_H
#define SHARDLAB_CONFIG_FILE_H

#include <stddef.h>

#include "shardlab/config.h"
#include "shardlab/status.h"

/* Loads an Accelerate config or a DeepSpeed JSON config into cfg. The format follows the
 * extension (.yaml/.yml: YAML; .json: JSON) or, for other names, the first non-blank character;
 * a JSON object with distributed_type or compute_environment is an Accelerate config, any other
 * a DeepSpeed config. A deepspeed_config_file named inside an Accelerate file is loaded too
 * (a relative path is tried as given, then relative to the Accelerate file), unless a flag or
 * the environment already set deepspeed_config_file. `plan_name` (NULL: the first) picks the
 * entry of deepspeed_configs; naming a plan that is not there is an error listing the names. */
sl_status sl_config_load_file(sl_config *cfg, const char *path, const char *plan_name);

/* Loads a DeepSpeed JSON config, whatever its name (what --deepspeed_config_file names). */
sl_status sl_config_load_deepspeed_file(sl_config *cfg, const char *path);

/* The names of the deepspeed_configs entries of an Accelerate file, in file order (*n = 0 when
 * it has none). Free with sl_config_plan_names_free. */
sl_status sl_config_file_plan_names(const char *path, char ***names, size_t *n);
void sl_config_plan_names_free(char **names, size_t n);

#endif
