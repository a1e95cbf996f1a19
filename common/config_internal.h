/* Internal to the config store and the plan compiler: what the public key table does not say. */
#ifndef SHARDLAB_COMMON_CONFIG_INTERNAL_H
#define SHARDLAB_COMMON_CONFIG_INTERNAL_H

#include <stdbool.h>

#include "shardlab/config.h"

/* Which sharding family a key belongs to; the plan compiler rejects a key of another family. */
typedef enum sl_key_family {
    SL_FAMILY_COMMON,    /* every dialect */
    SL_FAMILY_FSDP,      /* only with use_fsdp */
    SL_FAMILY_DEEPSPEED, /* only with use_deepspeed */
    SL_FAMILY_TORCH,     /* DDP and FSDP (torch optimizers and clipping), not DeepSpeed */
    SL_FAMILY_LAUNCH     /* where and how processes start (machine_rank, main_process_ip, ...):
                            config files fill them for `shardlab launch`; sl_config_parse_args
                            leaves their flags to that command; the plan never reads them */
} sl_key_family;

/* The key's default as text ("4", "FULL_SHARD", "1e-3"), or NULL when the default depends on the
 * dialect (the plan compiler supplies it; the help text says what it is). */
const char *sl_config_key_default(const sl_config_key *key);
sl_key_family sl_config_key_family(const sl_config_key *key);

/* Resolves `text` against an enum key's allowed values and aliases, ignoring case; NULL when it
 * matches neither. The result points into the key table. */
const char *sl_config_key_resolve_enum(const sl_config_key *key, const char *text);

/* Checks that `value` reads as the key's type (a truth word for BOOL, an integer for INT, a finite
 * number for FLOAT, an allowed value or alias for ENUM). Otherwise an SL_ERR_CONFIG error naming
 * the key, `where` (a described source), the value found and what is allowed. */
sl_status sl_config_check_value(const sl_config_key *key, const char *value, const char *where);

/* Whether two texts are the same value of `key` ("4" and "4.0" for an INT, "yes" and "true" for
 * a BOOL, "1" and "FULL_SHARD" for fsdp_sharding_strategy). Texts that do not parse compare as
 * strings. */
bool sl_config_values_equal(const sl_config_key *key, const char *a, const char *b);

/* Levenshtein distance with adjacent transpositions, ignoring case, '-' and '_' equivalent. */
int sl_config_edit_distance(const char *a, const char *b);

#endif
