/* Config files out of a config store (config_write.h): each entry is placed at its path in a node
 * tree, then the tree is printed as YAML (PyYAML safe_dump's style: block mappings, sorted keys,
 * strings quoted where YAML 1.1 would read them as something else) or as JSON. */
#include "common/config_write.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config_internal.h"
#include "common/config_tree.h"
#include "common/json.h"

/* The keys of Accelerate's deepspeed_config section (accelerate-facts.md §1.4). */
static const char *const sl_plugin_ds_keys[] = {"zero_stage",
                                                "offload_optimizer_device",
                                                "offload_param_device",
                                                "offload_optimizer_nvme_path",
                                                "offload_param_nvme_path",
                                                "zero3_init_flag",
                                                "zero3_save_16bit_model",
                                                "gradient_clipping",
                                                "deepspeed_config_file",
                                                "deepspeed_hostfile",
                                                "deepspeed_multinode_launcher",
                                                "deepspeed_exclusion_filter",
                                                "deepspeed_inclusion_filter",
                                                NULL};

static bool sl_in(const char *const *list, const char *s) {
    for (; *list; list++) {
        if (!strcmp(*list, s)) return true;
    }
    return false;
}

static sl_node *sl_map_child(sl_node *map, const char *key, sl_node_kind kind) {
    for (size_t i = 0; i < map->n; i++) {
        if (!strcmp(map->pairs[i].key, key)) return map->pairs[i].value;
    }
    if (map->n == map->cap) {
        size_t cap = map->cap ? 2 * map->cap : 8;
        sl_node_pair *grown = realloc(map->pairs, cap * sizeof *grown);
        if (!grown) return NULL;
        map->pairs = grown;
        map->cap = cap;
    }
    sl_node *child = calloc(1, sizeof *child);
    char *name = malloc(strlen(key) + 1);
    if (!child || !name) {
        free(child);
        free(name);
        return NULL;
    }
    memcpy(name, key, strlen(key) + 1);
    child->kind = kind;
    map->pairs[map->n++] = (sl_node_pair){.key = name, .value = child};
    return child;
}

/* The node at a dotted path, created as a scalar (mappings on the way). */
static sl_node *sl_tree_leaf(sl_node *root, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    sl_node *at = root;
    char *save = NULL;
    char *part = strtok_r(buf, ".", &save);
    while (part && at) {
        char *next = strtok_r(NULL, ".", &save);
        at = sl_map_child(at, part, next ? SL_NODE_MAP : SL_NODE_SCALAR);
        part = next;
    }
    return at;
}

/* A value in the form the key's type prints as: truth words become true/false, integers lose
 * exponents, floats keep a '.' so that YAML 1.1 reads them as floats ("1.0e-05"). */
static void sl_format_value(const sl_config_key *k, const char *value, char *out, size_t cap,
                            bool *quoted) {
    *quoted = false;
    if (!strcmp(value, "auto")) {
        snprintf(out, cap, "auto");
        *quoted = true;
        return;
    }
    switch (k->type) {
    case SL_KEY_BOOL:
        snprintf(out, cap, "%s", sl_config_values_equal(k, value, "true") ? "true" : "false");
        return;
    case SL_KEY_INT: snprintf(out, cap, "%.0f", strtod(value, NULL)); return;
    case SL_KEY_FLOAT: {
        const double d = strtod(value, NULL);
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, cap, "%.*g", prec, d);
            if (strtod(out, NULL) == d) break;
        }
        if (!strchr(out, '.') && !strchr(out, 'n') && !strchr(out, 'i')) {
            char *e = strchr(out, 'e');
            char tail[64] = "";
            if (e) {
                snprintf(tail, sizeof tail, "%s", e);
                *e = '\0';
            }
            const size_t n = strlen(out);
            snprintf(out + n, cap - n, ".0%s", tail);
        }
        return;
    }
    case SL_KEY_ENUM: {
        const char *canonical = sl_config_key_resolve_enum(k, value);
        snprintf(out, cap, "%s", canonical ? canonical : value);
        *quoted = true;
        return;
    }
    case SL_KEY_STRING:
        snprintf(out, cap, "%s", value);
        *quoted = true;
        return;
    }
}

static sl_status sl_put(sl_node *root, const char *path, const sl_config_key *k,
                        const char *value) {
    char text[512];
    bool quoted;
    sl_format_value(k, value, text, sizeof text, &quoted);
    sl_node *leaf = sl_tree_leaf(root, path);
    char *copy = malloc(strlen(text) + 1);
    if (!leaf || !copy) {
        free(copy);
        return sl_error_set(SL_ERR_OOM, "out of memory writing a config file");
    }
    memcpy(copy, text, strlen(text) + 1);
    free(leaf->text);
    leaf->kind = SL_NODE_SCALAR;
    leaf->text = copy;
    leaf->quoted = quoted;
    return SL_OK;
}

static sl_status sl_put_text(sl_node *root, const char *path, const char *text, bool quoted) {
    sl_node *leaf = sl_tree_leaf(root, path);
    char *copy = malloc(strlen(text) + 1);
    if (!leaf || !copy) {
        free(copy);
        return sl_error_set(SL_ERR_OOM, "out of memory writing a config file");
    }
    memcpy(copy, text, strlen(text) + 1);
    free(leaf->text);
    leaf->kind = SL_NODE_SCALAR;
    leaf->text = copy;
    leaf->quoted = quoted;
    return SL_OK;
}

static const char *sl_value(const sl_config *cfg, const char *key) {
    const sl_source *src = NULL;
    const char *v = sl_config_get(cfg, key, &src);
    return v && src->kind != SL_SOURCE_DEFAULT ? v : NULL;
}

static bool sl_truthy(const sl_config *cfg, const char *key) {
    const char *v = sl_value(cfg, key);
    return v && sl_config_values_equal(sl_config_key_find(key), v, "true");
}

/* ------------------------------------------------------------------ Accelerate */

static const char *sl_distributed_type(const sl_config *cfg) {
    if (sl_truthy(cfg, "use_fsdp")) return "FSDP";
    if (sl_truthy(cfg, "use_deepspeed")) return "DEEPSPEED";
    const char *t = sl_value(cfg, "distributed_type");
    if (t) return sl_config_key_resolve_enum(sl_config_key_find("distributed_type"), t);
    const char *w = sl_value(cfg, "num_processes");
    if (!w || strtol(w, NULL, 10) <= 1) return "NO";
    return sl_truthy(cfg, "use_cpu") ? "MULTI_CPU" : "MULTI_GPU";
}

/* Where an entry goes in an Accelerate file, or NULL when it has no place there. */
static const char *sl_accelerate_path(const sl_config_key *k, char *buf, size_t cap) {
    const sl_key_family fam = sl_config_key_family(k);
    if (!strcmp(k->name, "mpirun_hostfile")) return "mpirun_config.mpirun_hostfile";
    /* Accelerate spells accumulation only in deepspeed_config, which other dialects ignore */
    if (sl_in(sl_plugin_ds_keys, k->name) || !strcmp(k->name, "gradient_accumulation_steps")) {
        snprintf(buf, cap, "deepspeed_config.%s", k->name);
        return buf;
    }
    if (fam == SL_FAMILY_FSDP) {
        snprintf(buf, cap, "fsdp_config.%s", k->name);
        return buf;
    }
    if (fam == SL_FAMILY_LAUNCH || !strcmp(k->name, "mixed_precision") ||
        !strcmp(k->name, "num_processes") || !strcmp(k->name, "num_machines")) {
        return k->name;
    }
    return NULL;
}

static sl_status sl_fill_accelerate(const sl_config *cfg, sl_node *root, sl_config *unwritten) {
    const char *type = sl_distributed_type(cfg);
    SL_TRY(sl_put_text(root, "compute_environment", "LOCAL_MACHINE", true));
    SL_TRY(sl_put_text(root, "distributed_type", type, true));
    SL_TRY(sl_put_text(root, "num_processes", "1", false));
    for (size_t i = 0; i < sl_config_size(cfg); i++) {
        const char *value;
        const sl_source *src;
        const sl_config_key *k = sl_config_key_find(sl_config_entry(cfg, i, &value, &src));
        if (src->kind == SL_SOURCE_DEFAULT || !strcmp(k->name, "config_file")) continue;
        if (!strcmp(k->name, "use_fsdp") || !strcmp(k->name, "use_deepspeed") ||
            !strcmp(k->name, "distributed_type")) {
            continue; /* folded into distributed_type */
        }
        char buf[200];
        const char *path = sl_accelerate_path(k, buf, sizeof buf);
        if (path) {
            SL_TRY(sl_put(root, path, k, value));
        } else if (unwritten) {
            SL_TRY(sl_config_set(unwritten, k->name, value, src));
        }
    }
    return SL_OK;
}

/* ------------------------------------------------------------------ DeepSpeed */

static bool sl_optimizer_key(const char *key) {
    static const char *const keys[] = {"lr",         "weight_decay",   "adam_epsilon",
                                       "adam_beta1", "adam_beta2",     "adam_w_mode",
                                       "torch_adam", "optimizer_type", NULL};
    return sl_in(keys, key);
}

static bool sl_scheduler_key(const char *key) {
    static const char *const keys[] = {
        "lr_scheduler",  "warmup_steps",     "max_steps",    "warmup_type",
        "warmup_min_lr", "warmup_min_ratio", "min_lr_ratio", NULL};
    return sl_in(keys, key);
}

static const char *sl_or(const sl_config *cfg, const char *key) {
    const char *v = sl_value(cfg, key);
    return v ? v : sl_config_key_default(sl_config_key_find(key));
}

/* optimizer: {type, params: {lr, betas, eps, weight_decay, adam_w_mode, torch_adam}} */
static sl_status sl_fill_optimizer(const sl_config *cfg, sl_node *root) {
    const sl_config_key *type = sl_config_key_find("optimizer_type");
    SL_TRY(sl_put(root, "optimizer.type", type, sl_or(cfg, "optimizer_type")));
    static const struct {
        const char *key, *path;
    } params[] = {{"lr", "optimizer.params.lr"},
                  {"adam_epsilon", "optimizer.params.eps"},
                  {"weight_decay", "optimizer.params.weight_decay"},
                  {"adam_w_mode", "optimizer.params.adam_w_mode"},
                  {"torch_adam", "optimizer.params.torch_adam"}};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        const char *v = sl_value(cfg, params[i].key);
        if (v) SL_TRY(sl_put(root, params[i].path, sl_config_key_find(params[i].key), v));
    }
    if (!sl_value(cfg, "adam_beta1") && !sl_value(cfg, "adam_beta2")) return SL_OK;
    sl_node *betas = sl_tree_leaf(root, "optimizer.params.betas");
    if (!betas) return sl_error_set(SL_ERR_OOM, "out of memory writing a config file");
    betas->kind = SL_NODE_SEQ;
    betas->items = calloc(2, sizeof *betas->items);
    if (!betas->items) return sl_error_set(SL_ERR_OOM, "out of memory writing a config file");
    static const char *const beta_keys[] = {"adam_beta1", "adam_beta2"};
    for (int i = 0; i < 2; i++) {
        sl_node *item = calloc(1, sizeof *item);
        if (!item) return sl_error_set(SL_ERR_OOM, "out of memory writing a config file");
        betas->items[betas->n++] = item;
        char text[64];
        bool quoted;
        sl_format_value(sl_config_key_find(beta_keys[i]), sl_or(cfg, beta_keys[i]), text,
                        sizeof text, &quoted);
        item->kind = SL_NODE_SCALAR;
        item->quoted = quoted;
        item->text = malloc(strlen(text) + 1);
        if (!item->text) return sl_error_set(SL_ERR_OOM, "out of memory writing a config file");
        memcpy(item->text, text, strlen(text) + 1);
    }
    return SL_OK;
}

/* scheduler: DeepSpeed's names for the three shapes, with the parameters that pin them down
 * (a linear warmup, the run's lr as the peak, the run's steps as the total). */
static sl_status sl_fill_scheduler(const sl_config *cfg, sl_node *root, sl_config *unwritten) {
    const sl_config_key *sk = sl_config_key_find("lr_scheduler");
    const char *shape = sl_config_key_resolve_enum(sk, sl_or(cfg, "lr_scheduler"));
    const bool cosine = !strcmp(shape, "warmup_cosine"), linear = !strcmp(shape, "warmup_linear");
    SL_TRY(sl_put_text(root, "scheduler.type",
                       cosine   ? "WarmupCosineLR"
                       : linear ? "WarmupDecayLR"
                                : "WarmupLR",
                       true));
    SL_TRY(sl_put(root, "scheduler.params.warmup_num_steps", sl_config_key_find("warmup_steps"),
                  sl_or(cfg, "warmup_steps")));
    SL_TRY(sl_put(root, "scheduler.params.warmup_type", sl_config_key_find("warmup_type"),
                  sl_or(cfg, "warmup_type")));
    if (!cosine) {
        SL_TRY(sl_put(root, "scheduler.params.warmup_max_lr", sl_config_key_find("lr"),
                      sl_or(cfg, "lr")));
    }
    if (cosine || linear) {
        const char *total = sl_value(cfg, "max_steps");
        SL_TRY(sl_put(root, "scheduler.params.total_num_steps", sl_config_key_find("max_steps"),
                      total ? total : "auto"));
    }
    const char *floor = sl_value(cfg, "min_lr_ratio");
    if (floor && cosine) {
        SL_TRY(sl_put(root, "scheduler.params.cos_min_ratio", sl_config_key_find("min_lr_ratio"),
                      floor));
    } else if (floor && unwritten) {
        const sl_source *src;
        sl_config_get(cfg, "min_lr_ratio", &src);
        SL_TRY(sl_config_set(unwritten, "min_lr_ratio", floor, src));
    }
    return SL_OK;
}

static sl_status sl_fill_deepspeed(const sl_config *cfg, sl_node *root, sl_config *unwritten) {
    bool optimizer = false, scheduler = sl_value(cfg, "lr_scheduler") != NULL;
    for (size_t i = 0; i < sl_config_size(cfg); i++) {
        const char *value;
        const sl_source *src;
        const sl_config_key *k = sl_config_key_find(sl_config_entry(cfg, i, &value, &src));
        if (src->kind == SL_SOURCE_DEFAULT || !strcmp(k->name, "config_file")) continue;
        if (!strcmp(k->name, "mixed_precision")) {
            const char *mp = sl_config_key_resolve_enum(k, value);
            SL_TRY(sl_put_text(root, "fp16.enabled", mp && !strcmp(mp, "fp16") ? "true" : "false",
                               false));
            SL_TRY(sl_put_text(root, "bf16.enabled", mp && !strcmp(mp, "bf16") ? "true" : "false",
                               false));
            continue;
        }
        if (sl_optimizer_key(k->name)) {
            optimizer = true;
            continue;
        }
        if (scheduler && sl_scheduler_key(k->name)) continue;
        const char *path = sl_deepspeed_path(k->name);
        const bool placed = path && strncmp(path, "scheduler.", 10) != 0 &&
                            strncmp(path, "optimizer.", 10) != 0 &&
                            (sl_config_key_family(k) == SL_FAMILY_DEEPSPEED ||
                             sl_config_key_family(k) == SL_FAMILY_COMMON);
        if (placed) {
            SL_TRY(sl_put(root, path, k, value));
        } else if (unwritten &&
                   !(!strcmp(k->name, "use_deepspeed") || !strcmp(k->name, "distributed_type"))) {
            SL_TRY(sl_config_set(unwritten, k->name, value, src));
        }
    }
    if (optimizer) SL_TRY(sl_fill_optimizer(cfg, root));
    if (scheduler) SL_TRY(sl_fill_scheduler(cfg, root, unwritten));
    if (!sl_node_find(root, "zero_optimization")) {
        /* DeepSpeed runs stage 0 without it; say so */
        SL_TRY(sl_put_text(root, "zero_optimization.stage", "0", false));
    }
    return SL_OK;
}

/* ------------------------------------------------------------------ printing */

static int sl_pair_cmp(const void *a, const void *b) {
    return strcmp(((const sl_node_pair *)a)->key, ((const sl_node_pair *)b)->key);
}

static void sl_sort_tree(sl_node *n) {
    if (n->kind != SL_NODE_MAP) return;
    qsort(n->pairs, n->n, sizeof *n->pairs, sl_pair_cmp);
    for (size_t i = 0; i < n->n; i++)
        sl_sort_tree(n->pairs[i].value);
}

/* Whether YAML 1.1 reads `s` unquoted as the same string (not a bool, null or number). */
static bool sl_yaml_plain_ok(const char *s) {
    static const char *const special[] = {"y",    "n",     "yes",  "no", "on", "off",
                                          "true", "false", "null", "~",  NULL};
    if (!s[0] || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == '/')) return false;
    for (const char *const *w = special; *w; w++) {
        if (!strcasecmp(s, *w)) return false;
    }
    for (const char *c = s; *c; c++) {
        if (!isalnum((unsigned char)*c) && !strchr("_./-", *c)) return false;
    }
    return true;
}

static void sl_yaml_scalar_out(FILE *f, const sl_node *v) {
    if (!v->quoted || sl_yaml_plain_ok(v->text)) {
        fputs(v->text, f);
        return;
    }
    fputc('\'', f);
    for (const char *c = v->text; *c; c++) {
        if (*c == '\'') fputc('\'', f);
        fputc(*c, f);
    }
    fputc('\'', f);
}

static void sl_yaml_out(FILE *f, const sl_node *map, int indent) {
    for (size_t i = 0; i < map->n; i++) {
        const sl_node *v = map->pairs[i].value;
        fprintf(f, "%*s%s:", indent, "", map->pairs[i].key);
        if (v->kind == SL_NODE_MAP) {
            fputc('\n', f);
            sl_yaml_out(f, v, indent + 2);
        } else if (v->kind == SL_NODE_SEQ) {
            fputs(" [", f);
            for (size_t j = 0; j < v->n; j++) {
                if (j) fputs(", ", f);
                sl_yaml_scalar_out(f, v->items[j]);
            }
            fputs("]\n", f);
        } else {
            fputc(' ', f);
            sl_yaml_scalar_out(f, v);
            fputc('\n', f);
        }
    }
}

static void sl_json_out(sl_json_writer *w, FILE *f, const sl_node *v) {
    switch (v->kind) {
    case SL_NODE_MAP:
        sl_json_writer_begin_object(w);
        for (size_t i = 0; i < v->n; i++) {
            sl_json_writer_key(w, v->pairs[i].key);
            sl_json_out(w, f, v->pairs[i].value);
        }
        sl_json_writer_end_object(w);
        return;
    case SL_NODE_SEQ:
        sl_json_writer_begin_array(w);
        for (size_t i = 0; i < v->n; i++)
            sl_json_out(w, f, v->items[i]);
        sl_json_writer_end_array(w);
        return;
    case SL_NODE_NULL: sl_json_writer_null(w); return;
    case SL_NODE_SCALAR:
        if (v->quoted) {
            sl_json_writer_string(w, v->text);
        } else if (!strcmp(v->text, "true") || !strcmp(v->text, "false")) {
            sl_json_writer_bool(w, v->text[0] == 't');
        } else {
            /* numbers were normalised by sl_format_value: print them as they are */
            sl_json_writer_external_value(w);
            fputs(v->text, f);
        }
        return;
    }
}

sl_status sl_config_write(const sl_config *cfg, sl_config_out fmt, FILE *f, sl_config *unwritten) {
    sl_node *root = calloc(1, sizeof *root);
    if (!root) return sl_error_set(SL_ERR_OOM, "out of memory writing a config file");
    root->kind = SL_NODE_MAP;
    sl_status st = fmt == SL_OUT_DEEPSPEED_JSON ? sl_fill_deepspeed(cfg, root, unwritten)
                                                : sl_fill_accelerate(cfg, root, unwritten);
    if (st == SL_OK) {
        sl_sort_tree(root);
        if (fmt == SL_OUT_ACCELERATE_YAML) {
            sl_yaml_out(f, root, 0);
        } else {
            sl_json_writer w;
            sl_json_writer_init(&w, f, 2);
            sl_json_out(&w, f, root);
            st = sl_json_writer_finish(&w);
        }
    }
    sl_node_free(root);
    return st;
}
