/* The DOM behind the opaque sl_json handle, shared by the parser (json_parse.c) and the
 * accessors (json.c). */
#ifndef SHARDLAB_COMMON_JSON_DOM_H
#define SHARDLAB_COMMON_JSON_DOM_H

#include "common/json.h"

typedef struct sl_json_member {
    char *key;
    size_t key_len;
    int line, col;
    sl_json *value;
} sl_json_member;

struct sl_json {
    sl_json_type type;
    int line, col;
    const char *file;
    char *owned_file; /* root only */
    union {
        bool boolean;
        struct {
            double value;
            int64_t i64;
            bool is_int64;
            char *text;
        } num;
        struct {
            char *s;
            size_t len;
        } str;
        struct {
            sl_json **items;
            size_t n, cap;
        } arr;
        struct {
            sl_json_member *members;
            sl_json_member **sorted; /* by (key, document order), for lookup and duplicate checks */
            size_t n, cap;
        } obj;
    } u;
};

#endif
