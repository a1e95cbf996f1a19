/* Config files (config_file.h): reading a file into a node tree by its format, handing the tree to
 * the Accelerate or the DeepSpeed reader, and the rules every file-set value follows. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/config_internal.h"
#include "common/config_tree.h"
#include "common/fileio.h"
#include "shardlab/config_file.h"
#include "shardlab/log.h"

static bool sl_ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), m = strlen(suffix);
    if (n < m) return false;
    for (size_t i = 0; i < m; i++) {
        if (tolower((unsigned char)s[n - m + i]) != suffix[i]) return false;
    }
    return true;
}

static sl_file_format sl_guess_format(const char *name, const char *text, size_t len) {
    if (sl_ends_with(name, ".json")) return SL_FORMAT_JSON;
    if (sl_ends_with(name, ".yaml") || sl_ends_with(name, ".yml")) return SL_FORMAT_YAML;
    size_t i = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) i = 3; /* a UTF-8 byte order mark */
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    return i < len && text[i] == '{' ? SL_FORMAT_JSON : SL_FORMAT_YAML;
}

sl_status sl_config_parse_text(const char *text, size_t len, const char *name, sl_file_format fmt,
                               sl_node **out) {
    if (len > SL_CONFIG_MAX_FILE) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s: %zu bytes is too large for a config file (at most "
                            "%d)",
                            name, len, SL_CONFIG_MAX_FILE);
    }
    if (fmt == SL_FORMAT_GUESS) fmt = sl_guess_format(name, text, len);
    SL_TRY(fmt == SL_FORMAT_JSON ? sl_node_from_json(text, len, name, out)
                                 : sl_node_from_yaml(text, len, name, out));
    if ((*out)->kind != SL_NODE_MAP) {
        const int line = (*out)->line;
        const char *kind = sl_node_kind_name(*out);
        sl_node_free(*out);
        *out = NULL;
        return sl_error_set(SL_ERR_FORMAT,
                            "%s:%d: a config file holds a mapping of keys to values, found %s",
                            name, line, kind);
    }
    return SL_OK;
}

sl_status sl_config_parse_tree(const char *path, sl_file_format fmt, sl_node **out) {
    *out = NULL;
    if (!path || !path[0]) return sl_error_set(SL_ERR_CONFIG, "a config file path is empty");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return sl_error_set(SL_ERR_IO, "config file %s: %s; pass an existing file", path,
                            strerror(errno));
    }
    if (!S_ISREG(sb.st_mode)) {
        return sl_error_set(SL_ERR_IO, "config file %s is not a regular file", path);
    }
    if (sb.st_size > SL_CONFIG_MAX_FILE) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s: %lld bytes is too large for a config file (at most %d)", path,
                            (long long)sb.st_size, SL_CONFIG_MAX_FILE);
    }
    char *text = NULL;
    size_t len = 0;
    SL_TRY(sl_file_read_all(path, &text, &len));
    sl_status st = sl_config_parse_text(text, len, path, fmt, out);
    free(text);
    return st;
}

bool sl_node_is_accelerate(const sl_node *root) {
    return sl_node_find(root, "distributed_type") || sl_node_find(root, "compute_environment");
}

static sl_status sl_load_tree(sl_config *cfg, const sl_node *root, const char *name, bool deepspeed,
                              const char *plan_name) {
    if (deepspeed || !sl_node_is_accelerate(root)) {
        if (plan_name && !deepspeed) {
            return sl_error_set(SL_ERR_CONFIG,
                                "plan_name = %s, but %s is a DeepSpeed config: only an Accelerate "
                                "config's deepspeed_configs map has named plans",
                                plan_name, name);
        }
        return sl_deepspeed_load(cfg, root, name, "");
    }
    return sl_accelerate_load(cfg, root, name, plan_name);
}

sl_status sl_config_load_text(sl_config *cfg, const char *text, size_t len, const char *name,
                              sl_file_format fmt, const char *plan_name) {
    sl_node *root = NULL;
    SL_TRY(sl_config_parse_text(text, len, name, fmt, &root));
    sl_status st = sl_load_tree(cfg, root, name, false, plan_name);
    sl_node_free(root);
    return st;
}

sl_status sl_config_load_file(sl_config *cfg, const char *path, const char *plan_name) {
    sl_node *root = NULL;
    SL_TRY(sl_config_parse_tree(path, SL_FORMAT_GUESS, &root));
    sl_status st = sl_load_tree(cfg, root, path, false, plan_name);
    sl_node_free(root);
    return st;
}

sl_status sl_config_load_deepspeed_file(sl_config *cfg, const char *path) {
    sl_node *root = NULL;
    SL_TRY(sl_config_parse_tree(path, SL_FORMAT_JSON, &root));
    sl_status st = sl_load_tree(cfg, root, path, true, NULL);
    sl_node_free(root);
    return st;
}

sl_status sl_config_file_plan_names(const char *path, char ***names, size_t *n) {
    *names = NULL;
    *n = 0;
    sl_node *root = NULL;
    SL_TRY(sl_config_parse_tree(path, SL_FORMAT_GUESS, &root));
    const sl_node_pair *plans = sl_node_find(root, "deepspeed_configs");
    sl_status st = SL_OK;
    if (plans && plans->value->kind == SL_NODE_MAP && plans->value->n > 0) {
        *names = calloc(plans->value->n, sizeof **names);
        if (!*names) st = sl_error_set(SL_ERR_OOM, "out of memory listing the plans of %s", path);
        for (size_t i = 0; st == SL_OK && i < plans->value->n; i++) {
            const char *key = plans->value->pairs[i].key;
            (*names)[i] = malloc(strlen(key) + 1);
            if (!(*names)[i]) {
                st = sl_error_set(SL_ERR_OOM, "out of memory listing the plans of %s", path);
                break;
            }
            memcpy((*names)[i], key, strlen(key) + 1);
            *n = i + 1;
        }
    }
    sl_node_free(root);
    if (st != SL_OK) {
        sl_config_plan_names_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return st;
}

void sl_config_plan_names_free(char **names, size_t n) {
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

sl_status sl_config_resolve_path(const char *file, const char *name, char *out, size_t cap) {
    struct stat sb;
    if (name[0] == '/' || stat(name, &sb) == 0) {
        snprintf(out, cap, "%s", name);
        return SL_OK;
    }
    const char *slash = strrchr(file, '/');
    if (slash) {
        snprintf(out, cap, "%.*s/%s", (int)(slash - file), file, name);
        if (stat(out, &sb) == 0) return SL_OK;
    }
    return sl_error_set(SL_ERR_IO,
                        "%s names %s, which exists neither as given (from the current directory) "
                        "nor beside %s",
                        file, name, file);
}

void sl_notices_flush(sl_notices *ns) {
    for (int i = 0; i < ns->n; i++) {
        sl_log(SL_LOG_INFO, "%s: no effect on this runtime, ignored (%s): %s", ns->file,
               ns->groups[i].why, ns->groups[i].names);
    }
    ns->n = 0;
}

void sl_notices_add(sl_notices *ns, int line, const char *spelling, const char *why) {
    int g = 0;
    while (g < ns->n && ns->groups[g].why != why)
        g++;
    if (g == (int)(sizeof ns->groups / sizeof ns->groups[0])) {
        sl_notices_flush(ns);
        g = 0;
    }
    if (g == ns->n) {
        ns->groups[g].why = why;
        ns->groups[g].names[0] = '\0';
        ns->n++;
    }
    char *names = ns->groups[g].names;
    const size_t used = strlen(names), cap = sizeof ns->groups[g].names;
    if (used + 1 < cap) {
        snprintf(names + used, cap - used, "%s%s (line %d)", used ? ", " : "", spelling, line);
    }
}

sl_status sl_config_file_unknown(const char *file, int line, const char *path, const char *name,
                                 const char *const *known, const char *hint) {
    const char *best = NULL;
    int best_d = 1 << 30;
    for (const char *const *k = known; k && *k; k++) {
        const int d = sl_config_edit_distance(name, *k);
        if (d < best_d) {
            best_d = d;
            best = *k;
        }
    }
    const int len = (int)strlen(name);
    if (best && best_d > (len / 3 > 2 ? len / 3 : 2)) best = NULL;
    /* "hostfile" for "mpirun_hostfile" */
    for (const char *const *k = known; !best && len >= 4 && k && *k; k++) {
        if (strstr(*k, name)) best = *k;
    }
    char where[300];
    if (path[0]) {
        snprintf(where, sizeof where, " under %.200s", path);
    } else {
        where[0] = '\0';
    }
    return sl_error_set(SL_ERR_CONFIG, "%s:%d: unknown key '%.200s'%s%s%s%s%s%s", file, line, name,
                        where, best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "",
                        hint ? "; " : "", hint ? hint : "");
}

sl_status sl_config_file_set(sl_config *cfg, const char *file, int line, const char *spelling,
                             const char *key, const char *value) {
    const sl_config_key *k = sl_config_key_find(key);
    if (!k) return sl_error_set(SL_ERR_INTERNAL, "config file reader: no key named %s", key);
    sl_source src = {.kind = SL_SOURCE_FILE, .line = line};
    snprintf(src.file, sizeof src.file, "%s", file);
    snprintf(src.spelling, sizeof src.spelling, "%s", spelling);
    char where[512];
    sl_source_describe(&src, where, sizeof where);
    const bool is_auto = strcmp(value, "auto") == 0;
    /* FSDP1's questionnaire stores the sharding-strategy choice under fsdp_reshard_after_forward
     * (accelerate-facts.md §1.3): a truth value or a strategy name, which the plan compiler tells
     * apart */
    const bool strategy_name =
        !strcmp(k->name, "fsdp_reshard_after_forward") &&
        sl_config_key_resolve_enum(sl_config_key_find("fsdp_sharding_strategy"), value);
    if (!is_auto && !strategy_name) SL_TRY(sl_config_check_value(k, value, where));
    const sl_source *old_src = NULL;
    const char *old = sl_config_get(cfg, key, &old_src);
    if (old && old_src->kind == SL_SOURCE_FILE) {
        if (is_auto) return SL_OK; /* "auto" yields to a value another file gives */
        if (strcmp(old, "auto") != 0) {
            if (sl_config_values_equal(k, old, value)) return SL_OK;
            char old_where[512];
            sl_source_describe(old_src, old_where, sizeof old_where);
            return sl_error_set(SL_ERR_CONFIG,
                                "%s is given twice with different values: %s at %s, %s at %s; the "
                                "files must agree: keep one of them",
                                k->name, old, old_where, value, where);
        }
    }
    return sl_config_set(cfg, key, value, &src);
}
