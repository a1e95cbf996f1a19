/* YAML config files into a node tree (config_tree.h), through libyaml's event API: the marks of
 * the events give every key and value its line and column. Accelerate writes its files with
 * PyYAML's safe_dump (block style, no anchors); anything beyond plain YAML data is refused rather
 * than interpreted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/config_tree.h"

typedef struct sl_yaml_frame {
    sl_node *node;
    char *pending_key; /* MAP: a key read, its value due */
    int key_line, key_col;
} sl_yaml_frame;

typedef struct sl_yaml_builder {
    const char *file;
    sl_yaml_frame stack[SL_NODE_MAX_DEPTH + 1];
    int depth; /* frames in use */
    sl_node *root;
    long n_nodes;
    int documents;
} sl_yaml_builder;

static sl_status sl_yaml_error(const sl_yaml_builder *b, const yaml_mark_t *m, const char *what) {
    return sl_error_set(SL_ERR_FORMAT, "%s:%d:%d: %s", b->file, (int)m->line + 1,
                        (int)m->column + 1, what);
}

static sl_node *sl_yaml_new_node(sl_yaml_builder *b, sl_node_kind kind, const yaml_mark_t *m) {
    if (++b->n_nodes > SL_NODE_MAX_NODES) return NULL;
    sl_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    return n;
}

/* Only YAML's own data tags ("!!str 1"): others (!!python/object, !name) ask for objects a
 * config has no use for. */
static int sl_yaml_tag_ok(const yaml_char_t *tag) {
    static const char *const core[] = {"str", "int", "float", "bool", "null", "map", "seq", NULL};
    if (!tag) return 1;
    if (strncmp((const char *)tag, "tag:yaml.org,2002:", 18) != 0) return 0;
    for (const char *const *c = core; *c; c++) {
        if (!strcmp((const char *)tag + 18, *c)) return 1;
    }
    return 0;
}

static int sl_yaml_plain_null(const char *text) {
    return !text[0] || !strcmp(text, "~") || !strcmp(text, "null") || !strcmp(text, "Null") ||
           !strcmp(text, "NULL");
}

/* Attaches a finished node to the frame on top of the stack (or makes it the root). */
static sl_status sl_yaml_attach(sl_yaml_builder *b, sl_node *child, const yaml_mark_t *m) {
    if (b->depth == 0) {
        b->root = child;
        return SL_OK;
    }
    sl_yaml_frame *f = &b->stack[b->depth - 1];
    sl_node *parent = f->node;
    if (parent->kind == SL_NODE_SEQ) {
        if (parent->n == parent->cap) {
            size_t cap = parent->cap ? 2 * parent->cap : 8;
            sl_node **grown = realloc(parent->items, cap * sizeof *grown);
            if (!grown) {
                sl_node_free(child);
                return sl_error_set(SL_ERR_OOM, "out of memory reading %s", b->file);
            }
            parent->items = grown;
            parent->cap = cap;
        }
        parent->items[parent->n++] = child;
        return SL_OK;
    }
    if (!f->pending_key) {
        /* a mapping or a list where a key is due */
        sl_node_free(child);
        return sl_yaml_error(b, m, "a key must be a single name, found a mapping or a list");
    }
    if (parent->n == SL_NODE_MAX_KEYS) {
        sl_node_free(child);
        return sl_yaml_error(b, m, "more than 4096 keys in one mapping");
    }
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? 2 * parent->cap : 8;
        sl_node_pair *grown = realloc(parent->pairs, cap * sizeof *grown);
        if (!grown) {
            sl_node_free(child);
            return sl_error_set(SL_ERR_OOM, "out of memory reading %s", b->file);
        }
        parent->pairs = grown;
        parent->cap = cap;
    }
    parent->pairs[parent->n++] = (sl_node_pair){
        .key = f->pending_key, .line = f->key_line, .col = f->key_col, .value = child};
    f->pending_key = NULL;
    return SL_OK;
}

/* A scalar: a key when its mapping waits for one, else a value. */
static sl_status sl_yaml_scalar(sl_yaml_builder *b, const yaml_event_t *ev) {
    const yaml_mark_t *m = &ev->start_mark;
    const char *text = (const char *)ev->data.scalar.value;
    const size_t len = ev->data.scalar.length;
    if (!sl_yaml_tag_ok(ev->data.scalar.tag)) {
        return sl_yaml_error(
            b, m,
            "tags other than YAML's own (!!str, !!int, ...) are not supported in config files");
    }
    if (strlen(text) != len) return sl_yaml_error(b, m, "a value holds a NUL character");
    sl_yaml_frame *f = b->depth ? &b->stack[b->depth - 1] : NULL;
    if (f && f->node->kind == SL_NODE_MAP && !f->pending_key) {
        for (size_t i = 0; i < f->node->n; i++) {
            if (strcmp(f->node->pairs[i].key, text) == 0) {
                char msg[400];
                snprintf(msg, sizeof msg, "duplicate key '%.200s' (first at line %d); keep one",
                         text, f->node->pairs[i].line);
                return sl_yaml_error(b, m, msg);
            }
        }
        f->pending_key = malloc(len + 1);
        if (!f->pending_key) return sl_error_set(SL_ERR_OOM, "out of memory reading %s", b->file);
        memcpy(f->pending_key, text, len + 1);
        f->key_line = (int)m->line + 1;
        f->key_col = (int)m->column + 1;
        return SL_OK;
    }
    const bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    sl_node *n =
        sl_yaml_new_node(b, plain && sl_yaml_plain_null(text) ? SL_NODE_NULL : SL_NODE_SCALAR, m);
    if (!n) return sl_yaml_error(b, m, "too many values (more than 100000) or out of memory");
    n->quoted = !plain;
    n->text = malloc(len + 1);
    if (!n->text) {
        sl_node_free(n);
        return sl_error_set(SL_ERR_OOM, "out of memory reading %s", b->file);
    }
    memcpy(n->text, text, len + 1);
    return sl_yaml_attach(b, n, m);
}

static sl_status sl_yaml_open(sl_yaml_builder *b, const yaml_event_t *ev, sl_node_kind kind) {
    const yaml_mark_t *m = &ev->start_mark;
    const yaml_char_t *tag =
        kind == SL_NODE_MAP ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    if (!sl_yaml_tag_ok(tag)) {
        return sl_yaml_error(
            b, m,
            "tags other than YAML's own (!!str, !!int, ...) are not supported in config files");
    }
    if (b->depth == SL_NODE_MAX_DEPTH) {
        return sl_yaml_error(b, m, "nesting deeper than 64 levels");
    }
    sl_yaml_frame *f = b->depth ? &b->stack[b->depth - 1] : NULL;
    if (f && f->node->kind == SL_NODE_MAP && !f->pending_key) {
        return sl_yaml_error(b, m, "a key must be a single name, found a mapping or a list");
    }
    sl_node *n = sl_yaml_new_node(b, kind, m);
    if (!n) return sl_yaml_error(b, m, "too many values (more than 100000) or out of memory");
    b->stack[b->depth++] = (sl_yaml_frame){.node = n};
    return SL_OK;
}

static sl_status sl_yaml_close(sl_yaml_builder *b, const yaml_event_t *ev) {
    sl_yaml_frame f = b->stack[--b->depth];
    free(f.pending_key); /* libyaml never ends a mapping after a key, but stay safe */
    return sl_yaml_attach(b, f.node, &ev->start_mark);
}

static sl_status sl_yaml_event(sl_yaml_builder *b, const yaml_event_t *ev) {
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1) {
            return sl_yaml_error(b, &ev->start_mark,
                                 "a second YAML document ('---'); a config file holds one");
        }
        return SL_OK;
    case YAML_ALIAS_EVENT:
        return sl_yaml_error(b, &ev->start_mark,
                             "anchors and aliases (*name) are not supported in config files; "
                             "write the value out");
    case YAML_SCALAR_EVENT: return sl_yaml_scalar(b, ev);
    case YAML_MAPPING_START_EVENT: return sl_yaml_open(b, ev, SL_NODE_MAP);
    case YAML_SEQUENCE_START_EVENT: return sl_yaml_open(b, ev, SL_NODE_SEQ);
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT: return sl_yaml_close(b, ev);
    default: return SL_OK;
    }
}

static void sl_yaml_builder_free(sl_yaml_builder *b) {
    /* unwind frames bottom-up: each node owns what was attached to it */
    for (int d = 0; d < b->depth; d++) {
        free(b->stack[d].pending_key);
        sl_node_free(b->stack[d].node);
    }
    b->depth = 0;
    sl_node_free(b->root);
    b->root = NULL;
}

sl_status sl_node_from_yaml(const char *text, size_t len, const char *file, sl_node **out) {
    *out = NULL;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        return sl_error_set(SL_ERR_OOM, "out of memory starting the YAML parser for %s", file);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    sl_yaml_builder b = {.file = file};
    sl_status st = SL_OK;
    for (bool done = false; st == SL_OK && !done;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_READER_ERROR) {
                st = sl_error_set(
                    SL_ERR_FORMAT, "%s: byte %zu: not UTF-8 text (%s); save the file as UTF-8",
                    file, parser.problem_offset, parser.problem ? parser.problem : "bad byte");
                break;
            }
            char what[400];
            snprintf(what, sizeof what, "not valid YAML: %s%s%s",
                     parser.problem ? parser.problem : "error", parser.context ? " " : "",
                     parser.context ? parser.context : "");
            st = sl_yaml_error(&b, &parser.problem_mark, what);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        st = sl_yaml_event(&b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (st == SL_OK && !b.root) {
        st = sl_error_set(SL_ERR_FORMAT, "%s: the file holds no settings (an empty YAML document)",
                          file);
    }
    if (st != SL_OK) {
        sl_yaml_builder_free(&b);
        return st;
    }
    *out = b.root;
    return SL_OK;
}
