/* The config store (config.h): entries in insertion order, each with the source that set it, and
 * the typed reads the plan compiler validates values with. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config_internal.h"
#include "shardlab/config_file.h"

typedef struct sl_config_item {
    const char *key; /* the canonical name, pointing into the key table */
    char *value;
    sl_source src;
} sl_config_item;

struct sl_config {
    size_t n, cap;
    sl_config_item *entries;
};

void sl_source_describe(const sl_source *src, char *buf, size_t cap) {
    if (!src || src->kind == SL_SOURCE_DEFAULT) {
        snprintf(buf, cap, "default");
    } else if (src->kind == SL_SOURCE_FLAG) {
        snprintf(buf, cap, "%s", src->spelling[0] ? src->spelling : "the command line");
    } else if (src->kind == SL_SOURCE_ENV) {
        snprintf(buf, cap, "$%s", src->file);
    } else if (src->line > 0 && src->spelling[0]) {
        snprintf(buf, cap, "%s:%d (%s)", src->file, src->line, src->spelling);
    } else if (src->line > 0) {
        snprintf(buf, cap, "%s:%d", src->file, src->line);
    } else {
        snprintf(buf, cap, "%s", src->file);
    }
}

sl_status sl_config_create(sl_config **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return sl_error_set(SL_ERR_OOM, "out of memory creating a config");
    return SL_OK;
}

void sl_config_destroy(sl_config *cfg) {
    if (!cfg) return;
    for (size_t i = 0; i < cfg->n; i++)
        free(cfg->entries[i].value);
    free(cfg->entries);
    free(cfg);
}

static char *sl_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

sl_status sl_config_clone(const sl_config *cfg, sl_config **out) {
    SL_TRY(sl_config_create(out));
    for (size_t i = 0; i < cfg->n; i++) {
        const sl_config_item *e = &cfg->entries[i];
        sl_status st = sl_config_set(*out, e->key, e->value, &e->src);
        if (st != SL_OK) {
            sl_config_destroy(*out);
            *out = NULL;
            return st;
        }
    }
    return SL_OK;
}

static sl_config_item *sl_config_find(const sl_config *cfg, const char *canonical) {
    for (size_t i = 0; i < cfg->n; i++) {
        if (cfg->entries[i].key == canonical) return &cfg->entries[i];
    }
    return NULL;
}

const char *sl_config_key_suggest(const char *name) {
    return sl_config_suggest(name, NULL);
}

const char *sl_config_suggest(const char *name, const char *const *extra) {
    const char *best = NULL;
    int best_d = 1 << 30;
    const size_t n_keys = sl_config_key_count();
    size_t n_extra = 0;
    while (extra && extra[n_extra])
        n_extra++;
    for (size_t i = 0; i < n_keys + n_extra; i++) {
        const char *cand = i < n_keys ? sl_config_key_at(i)->name : extra[i - n_keys];
        const int d = sl_config_edit_distance(name, cand);
        if (d < best_d) {
            best_d = d;
            best = cand;
        }
    }
    const int len = (int)strlen(name);
    if (best && best_d <= (len / 3 > 2 ? len / 3 : 2)) return best;
    /* "stage" for "zero_stage", "sharding_strategy" for "fsdp_sharding_strategy" */
    for (size_t i = 0; len >= 4 && i < n_keys + n_extra; i++) {
        const char *cand = i < n_keys ? sl_config_key_at(i)->name : extra[i - n_keys];
        if (strstr(cand, name)) return cand;
    }
    return NULL;
}

sl_status sl_config_unknown_arg(const char *command, const char *arg,
                                const char *const *command_flags) {
    if (strncmp(arg, "--", 2) != 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "unexpected argument '%s' for 'shardlab %s'; run 'shardlab %s --help' "
                            "for its options",
                            arg, command, command);
    }
    char name[128];
    snprintf(name, sizeof name, "%s", arg + 2);
    char *eq = strchr(name, '=');
    if (eq) *eq = '\0';
    const sl_config_key *k = sl_config_key_find(name);
    if (k && sl_config_key_family(k) == SL_FAMILY_LAUNCH) {
        return sl_error_set(SL_ERR_CONFIG,
                            "'--%s' is an option of 'shardlab launch' (where processes run), not "
                            "of 'shardlab %s'; remove it here",
                            name, command);
    }
    const char *hint = sl_config_suggest(name, command_flags);
    if (hint) {
        return sl_error_set(SL_ERR_CONFIG,
                            "unknown option '--%s' for 'shardlab %s'; did you mean '--%s'?", name,
                            command, hint);
    }
    return sl_error_set(SL_ERR_CONFIG,
                        "unknown option '--%s' for 'shardlab %s'; run 'shardlab %s --help' for "
                        "its options",
                        name, command, command);
}

sl_status sl_config_set(sl_config *cfg, const char *key, const char *value, const sl_source *src) {
    static const sl_source default_src = {.kind = SL_SOURCE_DEFAULT};
    if (!src) src = &default_src;
    char where[512];
    sl_source_describe(src, where, sizeof where);
    const sl_config_key *k = sl_config_key_find(key);
    if (!k) {
        const char *hint = sl_config_key_suggest(key);
        return sl_error_set(
            SL_ERR_CONFIG, "unknown configuration key '%s' (from %s)%s%s%s", key, where,
            hint ? "; did you mean '" : "; 'shardlab explain --help' lists the keys",
            hint ? hint : "", hint ? "'?" : "");
    }
    if (!value) {
        if (k->type != SL_KEY_BOOL) {
            return sl_error_set(SL_ERR_CONFIG, "%s (from %s) needs a value", k->name, where);
        }
        value = "true";
    }
    sl_config_item *e = sl_config_find(cfg, k->name);
    if (e && e->src.kind > src->kind) return SL_OK;
    char *copy = sl_strdup(value);
    if (!copy) return sl_error_set(SL_ERR_OOM, "out of memory setting %s", k->name);
    if (!e) {
        if (cfg->n == cfg->cap) {
            size_t cap = cfg->cap ? 2 * cfg->cap : 16;
            sl_config_item *grown = realloc(cfg->entries, cap * sizeof *grown);
            if (!grown) {
                free(copy);
                return sl_error_set(SL_ERR_OOM, "out of memory setting %s", k->name);
            }
            cfg->entries = grown;
            cfg->cap = cap;
        }
        e = &cfg->entries[cfg->n++];
        e->key = k->name;
    } else {
        free(e->value);
    }
    e->value = copy;
    e->src = *src;
    return SL_OK;
}

const char *sl_config_get(const sl_config *cfg, const char *key, const sl_source **src_out) {
    const sl_config_key *k = sl_config_key_find(key);
    const sl_config_item *e = k ? sl_config_find(cfg, k->name) : NULL;
    if (src_out) *src_out = e ? &e->src : NULL;
    return e ? e->value : NULL;
}

void sl_config_unset(sl_config *cfg, const char *key) {
    const sl_config_key *k = sl_config_key_find(key);
    sl_config_item *e = k ? sl_config_find(cfg, k->name) : NULL;
    if (!e) return;
    free(e->value);
    size_t i = (size_t)(e - cfg->entries);
    memmove(e, e + 1, (cfg->n - i - 1) * sizeof *e);
    cfg->n--;
}

size_t sl_config_size(const sl_config *cfg) {
    return cfg->n;
}

const char *sl_config_entry(const sl_config *cfg, size_t i, const char **value,
                            const sl_source **src) {
    if (i >= cfg->n) return NULL;
    if (value) *value = cfg->entries[i].value;
    if (src) *src = &cfg->entries[i].src;
    return cfg->entries[i].key;
}

/* The value of `key` or NULL, after checking the key exists and has `type`. */
static sl_status sl_config_lookup(const sl_config *cfg, const char *key, sl_key_type type,
                                  const sl_config_key **k_out, const char **value, char *where,
                                  size_t where_cap) {
    static const char *const type_names[] = {"bool", "int", "float", "enum", "string"};
    const sl_config_key *k = sl_config_key_find(key);
    if (!k) return sl_error_set(SL_ERR_INVALID_ARG, "no config key named '%s'", key);
    if (k->type != type) {
        return sl_error_set(SL_ERR_INVALID_ARG, "config key '%s' is a %s key, read as %s", key,
                            type_names[k->type], type_names[type]);
    }
    const sl_source *src = NULL;
    *value = sl_config_get(cfg, key, &src);
    sl_source_describe(src, where, where_cap);
    *k_out = k;
    return SL_OK;
}

/* Accelerate's str_to_bool spellings (utils/environment.py), ignoring case. */
static int sl_parse_bool(const char *text, bool *out) {
    static const char *const yes[] = {"true", "yes", "1", "on", "t", "y"};
    static const char *const no[] = {"false", "no", "0", "off", "f", "n"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 1;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 1;
        }
    }
    return 0;
}

sl_status sl_config_get_bool(const sl_config *cfg, const char *key, bool dflt, bool *out) {
    const sl_config_key *k;
    const char *v;
    char where[512];
    SL_TRY(sl_config_lookup(cfg, key, SL_KEY_BOOL, &k, &v, where, sizeof where));
    if (!v) {
        *out = dflt;
        return SL_OK;
    }
    if (!sl_parse_bool(v, out)) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s (from %s): expected a boolean (true/false, yes/no, 1/0), found "
                            "'%s'",
                            k->name, where, v);
    }
    return SL_OK;
}

/* Integers may be written as exact floats ("1e5" for 100000), as DeepSpeed JSON often does. */
static int sl_parse_int(const char *text, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end != text && *end == '\0' && errno == 0) {
        *out = v;
        return 1;
    }
    errno = 0;
    double d = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !isfinite(d) || d != floor(d) ||
        fabs(d) > 9.0e15) {
        return 0;
    }
    *out = (long long)d;
    return 1;
}

sl_status sl_config_get_int(const sl_config *cfg, const char *key, long long dflt, long long min,
                            long long max, long long *out) {
    const sl_config_key *k;
    const char *v;
    char where[512];
    SL_TRY(sl_config_lookup(cfg, key, SL_KEY_INT, &k, &v, where, sizeof where));
    if (!v) {
        *out = dflt;
        return SL_OK;
    }
    if (!sl_parse_int(v, out)) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s (from %s): expected an integer in [%lld, %lld], "
                            "found '%s'",
                            k->name, where, min, max, v);
    }
    if (*out < min || *out > max) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s (from %s): expected an integer in [%lld, %lld], "
                            "found %lld",
                            k->name, where, min, max, *out);
    }
    return SL_OK;
}

sl_status sl_config_get_double(const sl_config *cfg, const char *key, double dflt, double min,
                               double max, double *out) {
    const sl_config_key *k;
    const char *v;
    char where[512];
    SL_TRY(sl_config_lookup(cfg, key, SL_KEY_FLOAT, &k, &v, where, sizeof where));
    if (!v) {
        *out = dflt;
        return SL_OK;
    }
    char *end;
    errno = 0;
    *out = strtod(v, &end);
    if (end == v || *end != '\0' || errno == ERANGE || !isfinite(*out)) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s (from %s): expected a finite number in [%g, %g], "
                            "found '%s'",
                            k->name, where, min, max, v);
    }
    if (*out < min || *out > max) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s (from %s): expected a number in [%g, %g], found "
                            "%s",
                            k->name, where, min, max, v);
    }
    return SL_OK;
}

/* "FULL_SHARD, SHARD_GRAD_OP (aliases: 1=FULL_SHARD, ...)" */
static void sl_enum_describe(const sl_config_key *k, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    for (const char *const *a = k->allowed; *a && n < cap; a++) {
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", a == k->allowed ? "" : ", ", *a);
    }
    for (const char *const *a = k->aliases; a && *a && n < cap; a++) {
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", a == k->aliases ? " (aliases: " : ", ", *a);
        if (!a[1] && n < cap) n += (size_t)snprintf(buf + n, cap - n, ")");
    }
}

sl_status sl_config_get_enum(const sl_config *cfg, const char *key, const char *dflt,
                             const char **out) {
    const sl_config_key *k;
    const char *v;
    char where[512];
    SL_TRY(sl_config_lookup(cfg, key, SL_KEY_ENUM, &k, &v, where, sizeof where));
    const char *text = v ? v : dflt;
    const char *canonical = sl_config_key_resolve_enum(k, text);
    if (!v && !canonical) {
        *out = dflt;
        return SL_OK;
    }
    if (!canonical) {
        char allowed[512];
        sl_enum_describe(k, allowed, sizeof allowed);
        return sl_error_set(SL_ERR_CONFIG, "%s (from %s): unknown value '%s'; allowed: %s", k->name,
                            where, v, allowed);
    }
    *out = canonical;
    return SL_OK;
}

sl_status sl_config_get_string(const sl_config *cfg, const char *key, const char *dflt,
                               const char **out) {
    const sl_config_key *k;
    const char *v;
    char where[512];
    SL_TRY(sl_config_lookup(cfg, key, SL_KEY_STRING, &k, &v, where, sizeof where));
    *out = v ? v : dflt;
    return SL_OK;
}

static int sl_is_bool_text(const char *text) {
    bool unused;
    return sl_parse_bool(text, &unused);
}

static int sl_parse_double(const char *text, double *out) {
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    return end != text && *end == '\0' && errno != ERANGE && isfinite(*out);
}

sl_status sl_config_check_value(const sl_config_key *k, const char *value, const char *where) {
    bool b;
    long long n;
    double d;
    switch (k->type) {
    case SL_KEY_BOOL:
        if (sl_parse_bool(value, &b)) return SL_OK;
        return sl_error_set(SL_ERR_CONFIG,
                            "%s (from %s): expected a boolean (true/false, yes/no, 1/0), found "
                            "'%s'",
                            k->name, where, value);
    case SL_KEY_INT:
        if (sl_parse_int(value, &n)) return SL_OK;
        return sl_error_set(SL_ERR_CONFIG,
                            "%s (from %s): expected an integer (at most 9e15 in magnitude), found "
                            "'%s'",
                            k->name, where, value);
    case SL_KEY_FLOAT:
        if (sl_parse_double(value, &d)) return SL_OK;
        return sl_error_set(SL_ERR_CONFIG, "%s (from %s): expected a finite number, found '%s'",
                            k->name, where, value);
    case SL_KEY_ENUM:
        if (sl_config_key_resolve_enum(k, value)) return SL_OK;
        char allowed[512];
        sl_enum_describe(k, allowed, sizeof allowed);
        return sl_error_set(SL_ERR_CONFIG, "%s (from %s): unknown value '%s'; allowed: %s", k->name,
                            where, value, allowed);
    case SL_KEY_STRING: return SL_OK;
    }
    return SL_OK;
}

bool sl_config_values_equal(const sl_config_key *k, const char *a, const char *b) {
    bool ba, bb;
    long long na, nb;
    double da, db;
    switch (k->type) {
    case SL_KEY_BOOL:
        if (sl_parse_bool(a, &ba) && sl_parse_bool(b, &bb)) return ba == bb;
        break;
    case SL_KEY_INT:
        if (sl_parse_int(a, &na) && sl_parse_int(b, &nb)) return na == nb;
        break;
    case SL_KEY_FLOAT:
        if (sl_parse_double(a, &da) && sl_parse_double(b, &db)) return da == db;
        break;
    case SL_KEY_ENUM: {
        const char *ca = sl_config_key_resolve_enum(k, a), *cb = sl_config_key_resolve_enum(k, b);
        if (ca && cb) return ca == cb;
        break;
    }
    case SL_KEY_STRING: break;
    }
    return strcmp(a, b) == 0;
}

/* After the flags: the files that --config_file and --deepspeed_config_file named, below them. */
static sl_status sl_config_load_flag_files(sl_config *cfg, bool config_file, bool ds_file) {
    if (config_file) {
        SL_TRY(sl_config_load_file(cfg, sl_config_get(cfg, "config_file", NULL),
                                   sl_config_get(cfg, "plan_name", NULL)));
    }
    if (ds_file) {
        SL_TRY(
            sl_config_load_deepspeed_file(cfg, sl_config_get(cfg, "deepspeed_config_file", NULL)));
    }
    return SL_OK;
}

sl_status sl_config_parse_args(sl_config *cfg, int argc, char **argv, char **rest, int *n_rest) {
    *n_rest = 0;
    bool config_file = false, ds_file = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            /* everything after "--" belongs to the command (a program and its arguments) */
            while (i < argc)
                rest[(*n_rest)++] = argv[i++];
            break;
        }
        char name[128];
        const char *eq = strchr(arg, '=');
        const size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const sl_config_key *k = NULL;
        if (strncmp(arg, "--", 2) == 0 && len - 2 < sizeof name) {
            memcpy(name, arg + 2, len - 2);
            name[len - 2] = '\0';
            k = sl_config_key_find(name);
        }
        if (!k || sl_config_key_family(k) == SL_FAMILY_LAUNCH) {
            rest[(*n_rest)++] = argv[i];
            continue;
        }
        sl_source src = {.kind = SL_SOURCE_FLAG};
        snprintf(src.spelling, sizeof src.spelling, "--%.100s", name);
        const char *value = eq ? eq + 1 : NULL;
        if (!value && k->type == SL_KEY_BOOL) {
            if (i + 1 < argc && sl_is_bool_text(argv[i + 1])) value = argv[++i];
        } else if (!value) {
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                return sl_error_set(SL_ERR_CONFIG, "%s needs a value (%s)", src.spelling, k->help);
            }
            value = argv[++i];
        }
        SL_TRY(sl_config_set(cfg, k->name, value, &src));
        config_file |= !strcmp(k->name, "config_file");
        ds_file |= !strcmp(k->name, "deepspeed_config_file");
    }
    return sl_config_load_flag_files(cfg, config_file, ds_file);
}
