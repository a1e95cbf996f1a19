/* The node tree of a config file (config_tree.h): JSON documents converted from the strict JSON
 * parser's DOM, and the accessors both readers use. */
#include <stdlib.h>
#include <string.h>

#include "common/config_tree.h"
#include "common/json.h"
#include "common/json_dom.h"

void sl_node_free(sl_node *node) {
    if (!node) return;
    for (size_t i = 0; node->kind == SL_NODE_MAP && i < node->n; i++) {
        free(node->pairs[i].key);
        sl_node_free(node->pairs[i].value);
    }
    for (size_t i = 0; node->kind == SL_NODE_SEQ && i < node->n; i++)
        sl_node_free(node->items[i]);
    free(node->pairs);
    free(node->items);
    free(node->text);
    free(node);
}

const sl_node_pair *sl_node_find(const sl_node *map, const char *key) {
    for (size_t i = 0; map && map->kind == SL_NODE_MAP && i < map->n; i++) {
        if (strcmp(map->pairs[i].key, key) == 0) return &map->pairs[i];
    }
    return NULL;
}

const char *sl_node_kind_name(const sl_node *node) {
    switch (node->kind) {
    case SL_NODE_NULL: return "null";
    case SL_NODE_SCALAR: return "a value";
    case SL_NODE_MAP: return "a mapping";
    case SL_NODE_SEQ: return "a list";
    }
    return "?";
}

bool sl_node_is_null(const sl_node *node) {
    return !node || node->kind == SL_NODE_NULL;
}

void sl_config_path_join(char *buf, size_t cap, const char *prefix, const char *name) {
    snprintf(buf, cap, "%s%s%s", prefix, prefix[0] ? "." : "", name);
}

static char *sl_strdup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Depth is bounded by the JSON parser (SL_JSON_MAX_DEPTH == SL_NODE_MAX_DEPTH). */
static sl_status sl_node_from_dom(const sl_json *v, const char *file, sl_node **out) {
    sl_node *n = calloc(1, sizeof *n);
    if (!n) return sl_error_set(SL_ERR_OOM, "out of memory reading %s", file);
    n->line = v->line;
    n->col = v->col;
    *out = n;
    switch (v->type) {
    case SL_JSON_NULL: n->kind = SL_NODE_NULL; return SL_OK;
    case SL_JSON_BOOL:
        n->kind = SL_NODE_SCALAR;
        n->text = sl_strdup_n(v->u.boolean ? "true" : "false", v->u.boolean ? 4 : 5);
        break;
    case SL_JSON_NUMBER:
        n->kind = SL_NODE_SCALAR;
        n->text = sl_strdup_n(v->u.num.text, strlen(v->u.num.text));
        break;
    case SL_JSON_STRING:
        if (strlen(v->u.str.s) != v->u.str.len) {
            return sl_error_set(SL_ERR_FORMAT, "%s:%d:%d: a string holds a NUL character (\\u0000)",
                                file, v->line, v->col);
        }
        n->kind = SL_NODE_SCALAR;
        n->quoted = true;
        n->text = sl_strdup_n(v->u.str.s, v->u.str.len);
        break;
    case SL_JSON_ARRAY:
        n->kind = SL_NODE_SEQ;
        n->items = calloc(v->u.arr.n ? v->u.arr.n : 1, sizeof *n->items);
        if (!n->items) return sl_error_set(SL_ERR_OOM, "out of memory reading %s", file);
        for (size_t i = 0; i < v->u.arr.n; i++) {
            SL_TRY(sl_node_from_dom(v->u.arr.items[i], file, &n->items[i]));
            n->n = i + 1;
        }
        return SL_OK;
    case SL_JSON_OBJECT:
        n->kind = SL_NODE_MAP;
        if (v->u.obj.n > SL_NODE_MAX_KEYS) {
            return sl_error_set(SL_ERR_FORMAT, "%s:%d:%d: more than 4096 keys in one object", file,
                                v->line, v->col);
        }
        n->pairs = calloc(v->u.obj.n ? v->u.obj.n : 1, sizeof *n->pairs);
        if (!n->pairs) return sl_error_set(SL_ERR_OOM, "out of memory reading %s", file);
        for (size_t i = 0; i < v->u.obj.n; i++) {
            const sl_json_member *m = &v->u.obj.members[i];
            if (strlen(m->key) != m->key_len) {
                return sl_error_set(SL_ERR_FORMAT,
                                    "%s:%d:%d: a key holds a NUL character (\\u0000)", file,
                                    m->line, m->col);
            }
            sl_node_pair *p = &n->pairs[i];
            p->key = sl_strdup_n(m->key, m->key_len);
            p->line = m->line;
            p->col = m->col;
            n->n = i + 1;
            if (!p->key) return sl_error_set(SL_ERR_OOM, "out of memory reading %s", file);
            SL_TRY(sl_node_from_dom(m->value, file, &p->value));
        }
        return SL_OK;
    }
    if (!n->text) return sl_error_set(SL_ERR_OOM, "out of memory reading %s", file);
    return SL_OK;
}

sl_status sl_node_from_json(const char *text, size_t len, const char *file, sl_node **out) {
    *out = NULL;
    sl_json *dom = NULL;
    SL_TRY(sl_json_parse(text, len, file, &dom));
    sl_status st = sl_node_from_dom(dom, file, out);
    sl_json_free(dom);
    if (st != SL_OK) {
        sl_node_free(*out);
        *out = NULL;
    }
    return st;
}
