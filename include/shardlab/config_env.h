/* How a resolved configuration travels from `shardlab launch` to every rank: one environment
 * variable per key, SHARDLAB_CONFIG_<KEY> with the key upper-cased
 * (zero_stage -> SHARDLAB_CONFIG_ZERO_STAGE=3), so a program switches between FSDP and DeepSpeed
 * plans with no code change (DESIGN.md §8).
 *
 * Only what the user said on the launcher's command line or in its environment travels this way;
 * config files travel by name (SHARDLAB_CONFIG_CONFIG_FILE, SHARDLAB_CONFIG_DEEPSPEED_CONFIG_FILE,
 * absolute paths) and each rank loads them below the variables, exactly as the launcher did below
 * its flags. So the precedence a rank sees is the launcher's, and a program that loads another
 * plan of the same file (plan_name, config_file.h) still gets that plan's values. */
#ifndef SHARDLAB_CONFIG_ENV_H
#define SHARDLAB_CONFIG_ENV_H

#include <stddef.h>

#include "shardlab/config.h"
#include "shardlab/status.h"

#define SL_CONFIG_ENV_PREFIX "SHARDLAB_CONFIG_"

/* "SHARDLAB_CONFIG_" + key upper-cased, '-' written as '_'; truncated to cap. */
void sl_config_env_name(const char *key, char *buf, size_t cap);

/* The environment entries ("NAME=value", NULL-terminated, malloc'd; free with
 * sl_config_env_free) for every entry of cfg set by a flag or the environment, in insertion
 * order. */
sl_status sl_config_export_env(const sl_config *cfg, char ***out);
void sl_config_env_free(char **env);

/* Sets every key named by a SHARDLAB_CONFIG_<KEY> variable of `envp` (NULL: this process's
 * environment) with an SL_SOURCE_ENV source naming the variable, then loads the config files
 * those variables name (config_file with plan_name, deepspeed_config_file) below them. A
 * variable that names no key is an SL_ERR_CONFIG error naming it, with the nearest key. */
sl_status sl_config_load_env(sl_config *cfg, char *const *envp);

#endif
