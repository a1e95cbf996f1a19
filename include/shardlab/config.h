/* sl_config: what the user said, before anything interprets it (DESIGN.md §3).
 *
 * A config is a set of (key, value text, source) entries. Keys are the canonical vocabulary of
 * Accelerate's `launch` flags without the dashes ("use_fsdp", "fsdp_sharding_strategy",
 * "zero_stage", "mixed_precision", ...) plus shardlab's own ("load_dtype", "deterministic", ...).
 * Command-line flags, config files and the launch environment all fill the same store; only the
 * plan compiler (plan.h) gives values meaning. Precedence is by source kind: a FLAG beats ENV
 * beats FILE beats DEFAULT; a set from a lower-precedence source than the current entry's is
 * ignored, an equal or higher one replaces it. Every entry remembers where it came from, so
 * errors and `explain` can say "zero_stage = 3 (from ds.json:4)". */
#ifndef SHARDLAB_CONFIG_H
#define SHARDLAB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "shardlab/status.h"

typedef enum sl_source_kind {
    SL_SOURCE_DEFAULT = 0,
    SL_SOURCE_FILE = 1,
    SL_SOURCE_ENV = 2,
    SL_SOURCE_FLAG = 3
} sl_source_kind;

typedef struct sl_source {
    sl_source_kind kind;
    char file[256]; /* FILE: path; ENV: variable name; FLAG/DEFAULT: "" */
    int line;       /* FILE: 1-based line; otherwise 0 */
    char
        spelling[128]; /* the key as the user wrote it: "--zero_stage", "zero_optimization.stage" */
} sl_source;

/* "--zero_stage", "ds.json:4 (zero_optimization.stage)", "$SHARDLAB_ZERO_STAGE", "default". */
void sl_source_describe(const sl_source *src, char *buf, size_t cap);

typedef enum sl_key_type {
    SL_KEY_BOOL,
    SL_KEY_INT,
    SL_KEY_FLOAT,
    SL_KEY_ENUM,
    SL_KEY_STRING
} sl_key_type;

/* One entry of the vocabulary. For SL_KEY_ENUM, `allowed` is a NULL-terminated list of canonical
 * values; `aliases` is a NULL-terminated list of "alias=CANONICAL" pairs (e.g. "1=FULL_SHARD"). */
typedef struct sl_config_key {
    const char *name;
    sl_key_type type;
    const char *const *allowed;
    const char *const *aliases;
    const char *help;
} sl_config_key;

/* '-' and '_' match each other in names ("fsdp-version"), as Accelerate accepts both. */
const sl_config_key *sl_config_key_find(const char *name);
size_t sl_config_key_count(void);
const sl_config_key *sl_config_key_at(size_t i);

/* The known key nearest to `name` by edit distance, or NULL if none is close. */
const char *sl_config_key_suggest(const char *name);
/* As sl_config_key_suggest over the keys and `extra` (NULL-terminated names without dashes; may
 * be NULL): the nearest by edit distance, else one containing `name`, else NULL. */
const char *sl_config_suggest(const char *name, const char *const *extra);

/* For a command that does not know `arg`, one of the arguments sl_config_parse_args left in
 * rest[]: sets and returns an SL_ERR_CONFIG error naming the command and the argument, with a
 * did-you-mean over the plan keys and the command's own flags (`command_flags`, NULL-terminated,
 * without dashes). */
sl_status sl_config_unknown_arg(const char *command, const char *arg,
                                const char *const *command_flags);

typedef struct sl_config sl_config;

sl_status sl_config_create(sl_config **out);
void sl_config_destroy(sl_config *cfg);
sl_status sl_config_clone(const sl_config *cfg, sl_config **out);

/* Sets key to value. An unknown key is an SL_ERR_CONFIG error naming the source and suggesting
 * the nearest known key. Values are not validated here (the plan compiler does, naming the
 * source), except that a BOOL flag given without a value means "true". */
sl_status sl_config_set(sl_config *cfg, const char *key, const char *value, const sl_source *src);

/* NULL when the key was never set. `src_out` may be NULL. */
const char *sl_config_get(const sl_config *cfg, const char *key, const sl_source **src_out);

/* Removes an entry (used by convert-config). */
void sl_config_unset(sl_config *cfg, const char *key);

size_t sl_config_size(const sl_config *cfg);
/* Entry i in insertion order; returns the key and fills value/src. */
const char *sl_config_entry(const sl_config *cfg, size_t i, const char **value,
                            const sl_source **src);

/* Typed reads used by the plan compiler. An unset key yields `dflt` (as a DEFAULT source). A
 * malformed or out-of-range value is an SL_ERR_CONFIG error naming the key, its source, what was
 * found and what is allowed. Enum reads resolve aliases and return the canonical spelling (a
 * pointer into the key table, valid forever). */
sl_status sl_config_get_bool(const sl_config *cfg, const char *key, bool dflt, bool *out);
sl_status sl_config_get_int(const sl_config *cfg, const char *key, long long dflt, long long min,
                            long long max, long long *out);
sl_status sl_config_get_double(const sl_config *cfg, const char *key, double dflt, double min,
                               double max, double *out);
sl_status sl_config_get_enum(const sl_config *cfg, const char *key, const char *dflt,
                             const char **out);
sl_status sl_config_get_string(const sl_config *cfg, const char *key, const char *dflt,
                               const char **out);

/* Consumes the plan flags in argv[0..argc) ("--key value", "--key=value", bare "--bool_flag")
 * into cfg with SL_SOURCE_FLAG; every argument that is not a known key is copied, in order, to
 * rest[] (capacity argc) and counted in *n_rest, for the command to parse. A "--" argument ends
 * the flags: it and everything after it go to rest[] unread (a program and its arguments).
 * Flags of launch keys (machine_rank, main_process_ip, ...) go to rest[] too: they belong to
 * `shardlab launch`. After the flags, the files named by --config_file (with --plan_name) and
 * --deepspeed_config_file are loaded below them (config_file.h), so every command that takes
 * plan flags takes config files. */
sl_status sl_config_parse_args(sl_config *cfg, int argc, char **argv, char **rest, int *n_rest);

#endif
