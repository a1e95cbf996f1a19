/* Internal to the config-file frontend: a parsed config file as a tree of nodes with their
 * positions, whatever the syntax (YAML or JSON), and the helpers the Accelerate and DeepSpeed
 * readers share. Only scalars carry text; a reader decides what a scalar means from the key. */
#ifndef SHARDLAB_COMMON_CONFIG_TREE_H
#define SHARDLAB_COMMON_CONFIG_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "shardlab/config.h"
#include "shardlab/status.h"

/* Guards against hostile input: no config file is anywhere near these. */
#define SL_NODE_MAX_DEPTH 64
#define SL_NODE_MAX_KEYS 4096        /* members of one mapping */
#define SL_NODE_MAX_NODES 100000     /* nodes in one file */
#define SL_CONFIG_MAX_FILE (4 << 20) /* bytes */

typedef enum sl_node_kind { SL_NODE_NULL, SL_NODE_SCALAR, SL_NODE_MAP, SL_NODE_SEQ } sl_node_kind;

typedef struct sl_node sl_node;

typedef struct sl_node_pair {
    char *key;
    int line, col; /* of the key */
    sl_node *value;
} sl_node_pair;

struct sl_node {
    sl_node_kind kind;
    int line, col;       /* 1-based */
    bool quoted;         /* a scalar written as a string: JSON "...", YAML '...' or "..." */
    char *text;          /* SCALAR: as written (JSON true/false and numbers as their text) */
    size_t n, cap;       /* MAP: pairs, SEQ: items */
    sl_node_pair *pairs; /* MAP, document order; keys are unique */
    sl_node **items;     /* SEQ */
};

/* Parse `len` bytes; `file` names the input in messages ("file:line:col: ..."). YAML: one
 * document, no anchors, aliases or tags other than YAML's own, no duplicate keys, keys are
 * scalars. Errors are SL_ERR_FORMAT. */
sl_status sl_node_from_yaml(const char *text, size_t len, const char *file, sl_node **out);
sl_status sl_node_from_json(const char *text, size_t len, const char *file, sl_node **out);
void sl_node_free(sl_node *node);

/* Member `key` of a mapping, or NULL. */
const sl_node_pair *sl_node_find(const sl_node *map, const char *key);
/* "a mapping", "a list", "null", "a value" */
const char *sl_node_kind_name(const sl_node *node);
/* A YAML null: an empty or "~"/"null" plain scalar, or JSON null. */
bool sl_node_is_null(const sl_node *node);

/* Sets `key` from a file: source FILE with `file`, `line` and `spelling`, after checking the value
 * reads as the key's type ("auto" is stored as is). When a file already set the key, "auto"
 * yields to the other value, equal values keep the first, and different values are an
 * SL_ERR_CONFIG error naming both places. */
sl_status sl_config_file_set(sl_config *cfg, const char *file, int line, const char *spelling,
                             const char *key, const char *value);

/* Keys accepted without effect, grouped by reason and logged as one line per reason when the
 * file is read: "file: no effect here (<why>): tpu_env (line 23), tpu_use_sudo (line 25)". */
typedef struct sl_notices {
    const char *file;
    int n;
    struct {
        const char *why;
        char names[480];
    } groups[8];
} sl_notices;
void sl_notices_add(sl_notices *ns, int line, const char *spelling, const char *why);
void sl_notices_flush(sl_notices *ns);

/* An SL_ERR_CONFIG error for an unknown key `name` at `path` ("" at the top), with the nearest of
 * `known` (NULL-terminated) as a did-you-mean and `hint` (may be NULL) appended. */
sl_status sl_config_file_unknown(const char *file, int line, const char *path, const char *name,
                                 const char *const *known, const char *hint);

/* "prefix" + "." + "name" into buf ("name" alone when prefix is empty). */
void sl_config_path_join(char *buf, size_t cap, const char *prefix, const char *name);

/* The readers (config_accelerate.c, config_deepspeed.c). `prefix` is prepended to every spelling
 * (the path of an inline DeepSpeed config inside an Accelerate file). */
sl_status sl_accelerate_load(sl_config *cfg, const sl_node *root, const char *file,
                             const char *plan_name);
sl_status sl_deepspeed_load(sl_config *cfg, const sl_node *root, const char *file,
                            const char *prefix);
/* The JSON path a DeepSpeed config writes `key` at ("zero_optimization.stage" for zero_stage), the
 * first where several map to it (lr: optimizer.params.lr); NULL when DeepSpeed has no such key. */
const char *sl_deepspeed_path(const char *key);
/* Whether a JSON root reads as an Accelerate config rather than a DeepSpeed one. */
bool sl_node_is_accelerate(const sl_node *root);

/* config_file.c: parse a file into a tree (format by extension or content) */
typedef enum sl_file_format { SL_FORMAT_GUESS, SL_FORMAT_YAML, SL_FORMAT_JSON } sl_file_format;
sl_status sl_config_parse_tree(const char *path, sl_file_format fmt, sl_node **out);
sl_status sl_config_parse_text(const char *text, size_t len, const char *name, sl_file_format fmt,
                               sl_node **out);
/* Loads Accelerate or DeepSpeed content from memory (what convert-config reads back). */
sl_status sl_config_load_text(sl_config *cfg, const char *text, size_t len, const char *name,
                              sl_file_format fmt, const char *plan_name);
/* The path a config file names (`name`), relative paths tried as given and then beside `file`;
 * SL_ERR_IO when neither exists, naming both. */
sl_status sl_config_resolve_path(const char *file, const char *name, char *out, size_t cap);

#endif
