/* The JSON DOM: accessors, freeing, and the UTF-8 check shared by the parser and the writer. */
#include "common/json_dom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t sl_utf8_sequence_length(const unsigned char *s, size_t avail) {
    if (avail == 0) return 0;
    const unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0; /* no overlong forms */
        if (c == 0xed) hi = 0x9f; /* no UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return n;
}

void sl_json_free(sl_json *v) {
    if (!v) return;
    switch (v->type) {
    case SL_JSON_NUMBER: free(v->u.num.text); break;
    case SL_JSON_STRING: free(v->u.str.s); break;
    case SL_JSON_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++)
            sl_json_free(v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case SL_JSON_OBJECT:
        for (size_t i = 0; i < v->u.obj.n; i++) {
            free(v->u.obj.members[i].key);
            sl_json_free(v->u.obj.members[i].value);
        }
        free(v->u.obj.members);
        free(v->u.obj.sorted);
        break;
    default: break;
    }
    free(v->owned_file);
    free(v);
}

sl_json_type sl_json_type_of(const sl_json *v) {
    return v->type;
}

const char *sl_json_type_name(sl_json_type t) {
    static const char *const names[] = {"null", "bool", "number", "string", "array", "object"};
    return (unsigned)t < 6 ? names[t] : "unknown";
}

int sl_json_line(const sl_json *v) {
    return v->line;
}
int sl_json_column(const sl_json *v) {
    return v->col;
}
const char *sl_json_file(const sl_json *v) {
    return v->file;
}

sl_status sl_json_expect(const sl_json *v, sl_json_type t, const char *what) {
    if (v->type == t) return SL_OK;
    char found[96] = "";
    if (v->type == SL_JSON_NUMBER) snprintf(found, sizeof found, " %.64s", v->u.num.text);
    if (v->type == SL_JSON_STRING) snprintf(found, sizeof found, " \"%.64s\"", v->u.str.s);
    if (v->type == SL_JSON_BOOL)
        snprintf(found, sizeof found, " %s", v->u.boolean ? "true" : "false");
    return sl_error_set(SL_ERR_FORMAT, "%s:%d:%d: %s: expected %s, found %s%s", v->file, v->line,
                        v->col, what, sl_json_type_name(t), sl_json_type_name(v->type), found);
}

bool sl_json_bool(const sl_json *v) {
    return v->type == SL_JSON_BOOL && v->u.boolean;
}
double sl_json_number(const sl_json *v) {
    return v->type == SL_JSON_NUMBER ? v->u.num.value : 0;
}
const char *sl_json_number_text(const sl_json *v) {
    return v->type == SL_JSON_NUMBER ? v->u.num.text : "";
}

bool sl_json_int64(const sl_json *v, int64_t *out) {
    if (v->type != SL_JSON_NUMBER || !v->u.num.is_int64) return false;
    *out = v->u.num.i64;
    return true;
}

const char *sl_json_string(const sl_json *v) {
    return v->type == SL_JSON_STRING ? v->u.str.s : "";
}
size_t sl_json_string_length(const sl_json *v) {
    return v->type == SL_JSON_STRING ? v->u.str.len : 0;
}

size_t sl_json_count(const sl_json *v) {
    if (v->type == SL_JSON_ARRAY) return v->u.arr.n;
    if (v->type == SL_JSON_OBJECT) return v->u.obj.n;
    return 0;
}

const sl_json *sl_json_at(const sl_json *v, size_t i) {
    if (v->type == SL_JSON_ARRAY && i < v->u.arr.n) return v->u.arr.items[i];
    if (v->type == SL_JSON_OBJECT && i < v->u.obj.n) return v->u.obj.members[i].value;
    return NULL;
}

const char *sl_json_key_at(const sl_json *v, size_t i) {
    return v->type == SL_JSON_OBJECT && i < v->u.obj.n ? v->u.obj.members[i].key : NULL;
}

const sl_json *sl_json_get(const sl_json *obj, const char *key) {
    if (obj->type != SL_JSON_OBJECT) return NULL;
    const size_t key_len = strlen(key);
    size_t lo = 0, hi = obj->u.obj.n; /* keys are unique: at most one match */
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        const sl_json_member *m = obj->u.obj.sorted[mid];
        const size_t n = m->key_len < key_len ? m->key_len : key_len;
        int c = memcmp(m->key, key, n);
        if (c == 0 && m->key_len != key_len) c = m->key_len < key_len ? -1 : 1;
        if (c == 0) return m->value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
