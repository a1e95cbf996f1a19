/* The JSON parser: recursive descent over an explicit byte range. Nesting is bounded by
 * SL_JSON_MAX_DEPTH, so recursion depth is too. */
#include "common/json_dom.h"

#include "common/fileio.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *p, *end;
    const char *line_start;
    int line;
    const char *file;
    int depth;
    char *scratch; /* decoded string being built */
    size_t scratch_len, scratch_cap;
} parser;

typedef struct json_pos {
    int line, col;
} json_pos;

static int col_of(const parser *ps, const char *p) {
    return (int)(p - ps->line_start) + 1;
}

/* Position of `p`, which must lie on the line being read. */
static json_pos pos_of(const parser *ps, const char *p) {
    return (json_pos){ps->line, col_of(ps, p)};
}

static sl_status fail_v(const parser *ps, json_pos at, const char *fmt, va_list ap) {
    char msg[768];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return sl_error_set(SL_ERR_FORMAT, "%s:%d:%d: %s", ps->file, at.line, at.col, msg);
}

static sl_status fail_pos(const parser *ps, json_pos at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static sl_status fail_at(const parser *ps, const char *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sl_status fail_pos(const parser *ps, json_pos at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_status st = fail_v(ps, at, fmt, ap);
    va_end(ap);
    return st;
}

/* An error at `p`, which must lie on the line being read. */
static sl_status fail_at(const parser *ps, const char *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_status st = fail_v(ps, pos_of(ps, p), fmt, ap);
    va_end(ap);
    return st;
}

static sl_status fail_oom(const parser *ps) {
    return sl_error_set(SL_ERR_OOM, "out of memory parsing %s", ps->file);
}

static int is_word_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* What the input holds at `p`, for "expected X, found Y". */
static const char *describe(const parser *ps, const char *p, char *buf, size_t cap) {
    if (p >= ps->end) return "end of input";
    const unsigned char c = (unsigned char)*p;
    if (is_word_char(c)) {
        int n = 0;
        while (p + n < ps->end && n < 24 && is_word_char((unsigned char)p[n]))
            n++;
        snprintf(buf, cap, "'%.*s'", n, p);
    } else if (c >= 0x20 && c < 0x7f) {
        snprintf(buf, cap, "'%c'", c);
    } else if (c == '\n') {
        return "end of line";
    } else {
        snprintf(buf, cap, "byte 0x%02x", c);
    }
    return buf;
}

static sl_status fail_expected(const parser *ps, const char *expected) {
    char buf[48];
    const char *found = describe(ps, ps->p, buf, sizeof buf);
    const char *hint = "";
    if (!strcmp(found, "'NaN'") || !strcmp(found, "'Infinity'") || !strcmp(found, "'nan'") ||
        !strcmp(found, "'inf'"))
        hint = " (JSON has no NaN or Infinity; write a finite number or null)";
    return fail_at(ps, ps->p, "expected %s, found %s%s", expected, found, hint);
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end) {
        const char c = *ps->p;
        if (c == '\n') {
            ps->line++;
            ps->line_start = ps->p + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            return;
        }
        ps->p++;
    }
}

static bool scratch_put(parser *ps, const char *bytes, size_t n) {
    if (ps->scratch_len + n + 1 > ps->scratch_cap) {
        size_t cap = ps->scratch_cap ? ps->scratch_cap : 64;
        while (cap < ps->scratch_len + n + 1)
            cap *= 2;
        char *grown = realloc(ps->scratch, cap);
        if (!grown) return false;
        ps->scratch = grown;
        ps->scratch_cap = cap;
    }
    memcpy(ps->scratch + ps->scratch_len, bytes, n);
    ps->scratch_len += n;
    return true;
}

static bool scratch_put_codepoint(parser *ps, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return scratch_put(ps, b, n);
}

/* Four hex digits at ps->p (after "\u"). */
static sl_status parse_hex4(parser *ps, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        const char c = ps->p < ps->end ? *ps->p : 0;
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return fail_expected(ps, "a hex digit in a \\u escape");
        v = v * 16 + (uint32_t)d;
        ps->p++;
    }
    *out = v;
    return SL_OK;
}

static sl_status parse_escape(parser *ps) {
    const char *esc = ps->p; /* at the backslash */
    ps->p++;
    if (ps->p >= ps->end) return fail_expected(ps, "an escape character after '\\'");
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = *ps->p ? strchr(from, *ps->p) : NULL;
    if (hit) {
        ps->p++;
        return scratch_put(ps, &to[hit - from], 1) ? SL_OK : fail_oom(ps);
    }
    if (*ps->p != 'u') return fail_expected(ps, "one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u");
    ps->p++;
    uint32_t cp;
    SL_TRY(parse_hex4(ps, &cp));
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail_at(ps, esc,
                       "lone low surrogate \\u%04x; a low surrogate must follow a high one",
                       (unsigned)cp);
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
            return fail_at(ps, esc,
                           "lone high surrogate \\u%04x; expected a \\uDC00-\\uDFFF escape "
                           "right after it",
                           (unsigned)cp);
        ps->p += 2;
        uint32_t low;
        SL_TRY(parse_hex4(ps, &low));
        if (low < 0xdc00 || low > 0xdfff)
            return fail_at(ps, esc,
                           "high surrogate \\u%04x followed by \\u%04x, which is not a low "
                           "surrogate (\\uDC00-\\uDFFF)",
                           (unsigned)cp, (unsigned)low);
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
    }
    return scratch_put_codepoint(ps, cp) ? SL_OK : fail_oom(ps);
}

/* A string starting at ps->p (the opening quote). The result is malloc'd and NUL-terminated. */
static sl_status parse_string(parser *ps, char **out, size_t *out_len) {
    const char *open = ps->p;
    const int open_line = ps->line, open_col = col_of(ps, open);
    ps->p++;
    ps->scratch_len = 0;
    for (;;) {
        if (ps->p >= ps->end)
            return fail_at(ps, ps->p, "unterminated string (opened at %d:%d); expected '\"'",
                           open_line, open_col);
        const unsigned char c = (unsigned char)*ps->p;
        if (c == '"') break;
        if (c == '\\') {
            SL_TRY(parse_escape(ps));
        } else if (c < 0x20) {
            return fail_at(ps, ps->p,
                           "control character 0x%02x inside a string (opened at %d:%d); "
                           "write it as an escape such as \\n or \\u%04x",
                           c, open_line, open_col, c);
        } else {
            size_t n =
                sl_utf8_sequence_length((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
            if (n == 0)
                return fail_at(ps, ps->p,
                               "invalid UTF-8 (byte 0x%02x) inside a string; the file "
                               "must be UTF-8",
                               c);
            if (!scratch_put(ps, ps->p, n)) return fail_oom(ps);
            ps->p += n;
        }
    }
    ps->p++;
    char *s = malloc(ps->scratch_len + 1);
    if (!s) return fail_oom(ps);
    if (ps->scratch_len) memcpy(s, ps->scratch, ps->scratch_len);
    s[ps->scratch_len] = '\0';
    *out = s;
    *out_len = ps->scratch_len;
    return SL_OK;
}

static sl_json *new_node(parser *ps, sl_json_type type, const char *at) {
    sl_json *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->type = type;
    v->line = ps->line;
    v->col = col_of(ps, at);
    v->file = ps->file;
    return v;
}

static int digit(const parser *ps) {
    return ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9';
}

static sl_status parse_number(parser *ps, sl_json **out) {
    const char *start = ps->p;
    bool integral = true;
    if (*ps->p == '-') ps->p++;
    if (!digit(ps)) return fail_expected(ps, "a digit");
    if (*ps->p == '0') {
        ps->p++;
        if (digit(ps)) return fail_at(ps, start, "leading zeros are not allowed in numbers");
    }
    while (digit(ps))
        ps->p++;
    if (ps->p < ps->end && *ps->p == '.') {
        integral = false;
        ps->p++;
        if (!digit(ps)) return fail_expected(ps, "a digit after '.'");
        while (digit(ps))
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integral = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (!digit(ps)) return fail_expected(ps, "a digit in the exponent");
        while (digit(ps))
            ps->p++;
    }
    const size_t n = (size_t)(ps->p - start);
    sl_json *v = new_node(ps, SL_JSON_NUMBER, start);
    char *text = malloc(n + 1);
    if (!v || !text) {
        free(v);
        free(text);
        return fail_oom(ps);
    }
    memcpy(text, start, n);
    text[n] = '\0';
    v->u.num.text = text;
    v->u.num.value = strtod(text, NULL);
    if (isinf(v->u.num.value)) {
        sl_status st = fail_at(ps, start,
                               "number %.64s%s is out of range for a double (largest finite "
                               "magnitude about 1.8e308)",
                               text, n > 64 ? "..." : "");
        sl_json_free(v);
        return st;
    }
    if (integral) {
        /* Magnitude accumulated in uint64; the int64 range is asymmetric by one. */
        const bool neg = text[0] == '-';
        const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
        uint64_t mag = 0;
        bool fits = true;
        for (const char *d = text + neg; *d && fits; d++) {
            const uint64_t dv = (uint64_t)(*d - '0');
            if (mag > (limit - dv) / 10)
                fits = false;
            else
                mag = mag * 10 + dv;
        }
        if (fits) {
            v->u.num.is_int64 = true;
            v->u.num.i64 =
                neg ? (mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        }
    }
    *out = v;
    return SL_OK;
}

static sl_status parse_value(parser *ps, sl_json **out);

static sl_status parse_array(parser *ps, sl_json **out) {
    const char *open = ps->p;
    sl_json *v = new_node(ps, SL_JSON_ARRAY, open);
    if (!v) return fail_oom(ps);
    ps->p++;
    bool comma = false; /* a comma precedes the element now due */
    json_pos comma_at = {0, 0};
    sl_status st = SL_OK;
    for (;;) {
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ']') {
            if (comma) {
                st = fail_pos(ps, comma_at,
                              "trailing comma before ']' (array opened at %d:%d); remove "
                              "the comma",
                              v->line, v->col);
                break;
            }
            ps->p++;
            break;
        }
        if (v->u.arr.n == v->u.arr.cap) {
            size_t cap = v->u.arr.cap ? 2 * v->u.arr.cap : 4;
            sl_json **grown = realloc(v->u.arr.items, cap * sizeof *grown);
            if (!grown) {
                st = fail_oom(ps);
                break;
            }
            v->u.arr.items = grown;
            v->u.arr.cap = cap;
        }
        if (!comma && v->u.arr.n > 0) {
            st = fail_expected(ps, "',' or ']'");
            break;
        }
        if (ps->p >= ps->end) {
            st = fail_at(ps, ps->p,
                         "unexpected end of input; expected a value or ']' (array "
                         "opened at %d:%d)",
                         v->line, v->col);
            break;
        }
        st = parse_value(ps, &v->u.arr.items[v->u.arr.n]);
        if (st != SL_OK) break;
        v->u.arr.n++;
        skip_ws(ps);
        comma = ps->p < ps->end && *ps->p == ',';
        if (comma) comma_at = pos_of(ps, ps->p++);
    }
    if (st != SL_OK) {
        sl_json_free(v);
        return st;
    }
    *out = v;
    return SL_OK;
}

static int member_cmp(const void *a, const void *b) {
    const sl_json_member *x = *(sl_json_member *const *)a, *y = *(sl_json_member *const *)b;
    const size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
    return x < y ? -1 : (x > y); /* members is one array: address order is document order */
}

/* Sorts the member index and reports the duplicate whose second occurrence comes first. */
static sl_status index_members(parser *ps, sl_json *v) {
    const size_t n = v->u.obj.n;
    if (n == 0) return SL_OK;
    v->u.obj.sorted = malloc(n * sizeof *v->u.obj.sorted);
    if (!v->u.obj.sorted) return fail_oom(ps);
    for (size_t i = 0; i < n; i++)
        v->u.obj.sorted[i] = &v->u.obj.members[i];
    qsort(v->u.obj.sorted, n, sizeof *v->u.obj.sorted, member_cmp);
    const sl_json_member *first = NULL, *dup = NULL;
    for (size_t i = 1, group = 0; i < n; i++) {
        const sl_json_member *a = v->u.obj.sorted[group], *b = v->u.obj.sorted[i];
        if (a->key_len != b->key_len || memcmp(a->key, b->key, a->key_len) != 0) {
            group = i;
        } else if (!dup || b < dup) {
            first = a;
            dup = b;
        }
    }
    if (!dup) return SL_OK;
    return fail_pos(ps, (json_pos){dup->line, dup->col},
                    "duplicate key \"%.*s\" (first at "
                    "%s:%d:%d); each key may appear once per object",
                    (int)(dup->key_len > 64 ? 64 : dup->key_len), dup->key, ps->file, first->line,
                    first->col);
}

static sl_status parse_member(parser *ps, sl_json *v) {
    if (v->u.obj.n == v->u.obj.cap) {
        size_t cap = v->u.obj.cap ? 2 * v->u.obj.cap : 4;
        sl_json_member *grown = realloc(v->u.obj.members, cap * sizeof *grown);
        if (!grown) return fail_oom(ps);
        v->u.obj.members = grown;
        v->u.obj.cap = cap;
    }
    sl_json_member *m = &v->u.obj.members[v->u.obj.n];
    memset(m, 0, sizeof *m);
    m->line = ps->line;
    m->col = col_of(ps, ps->p);
    SL_TRY(parse_string(ps, &m->key, &m->key_len));
    v->u.obj.n++; /* counted now so that an error below frees the key */
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':') return fail_expected(ps, "':' after the object key");
    ps->p++;
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail_at(ps, ps->p, "unexpected end of input; expected the value of key \"%.64s\"",
                       m->key);
    return parse_value(ps, &m->value);
}

static sl_status parse_object(parser *ps, sl_json **out) {
    sl_json *v = new_node(ps, SL_JSON_OBJECT, ps->p);
    if (!v) return fail_oom(ps);
    ps->p++;
    bool comma = false;
    json_pos comma_at = {0, 0};
    sl_status st = SL_OK;
    for (;;) {
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '}') {
            if (comma)
                st = fail_pos(ps, comma_at,
                              "trailing comma before '}' (object opened at %d:%d); "
                              "remove the comma",
                              v->line, v->col);
            else
                ps->p++;
            break;
        }
        if (!comma && v->u.obj.n > 0) {
            st = fail_expected(ps, "',' or '}'");
            break;
        }
        if (ps->p >= ps->end) {
            st = fail_at(ps, ps->p,
                         "unexpected end of input; expected a key or '}' (object "
                         "opened at %d:%d)",
                         v->line, v->col);
            break;
        }
        if (*ps->p != '"') {
            st = fail_expected(ps, "a string key in double quotes");
            break;
        }
        st = parse_member(ps, v);
        if (st != SL_OK) break;
        skip_ws(ps);
        comma = ps->p < ps->end && *ps->p == ',';
        if (comma) comma_at = pos_of(ps, ps->p++);
    }
    if (st == SL_OK) st = index_members(ps, v);
    if (st != SL_OK) {
        sl_json_free(v);
        return st;
    }
    *out = v;
    return SL_OK;
}

static sl_status parse_literal(parser *ps, sl_json **out) {
    static const struct {
        const char *word;
        sl_json_type type;
        bool value;
    } literals[] = {{"true", SL_JSON_BOOL, true},
                    {"false", SL_JSON_BOOL, false},
                    {"null", SL_JSON_NULL, false}};
    for (size_t i = 0; i < 3; i++) {
        const size_t n = strlen(literals[i].word);
        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, literals[i].word, n) == 0 &&
            (ps->end - ps->p == (ptrdiff_t)n || !is_word_char((unsigned char)ps->p[n]))) {
            sl_json *v = new_node(ps, literals[i].type, ps->p);
            if (!v) return fail_oom(ps);
            v->u.boolean = literals[i].value;
            ps->p += n;
            *out = v;
            return SL_OK;
        }
    }
    return fail_expected(ps, "a value (object, array, string, number, true, false or null)");
}

static sl_status parse_value(parser *ps, sl_json **out) {
    if (ps->p >= ps->end) return fail_expected(ps, "a value");
    const char c = *ps->p;
    if (c == '{' || c == '[') {
        if (ps->depth == SL_JSON_MAX_DEPTH)
            return fail_at(ps, ps->p, "nesting deeper than %d levels; flatten the document",
                           SL_JSON_MAX_DEPTH);
        ps->depth++;
        sl_status st = c == '{' ? parse_object(ps, out) : parse_array(ps, out);
        ps->depth--;
        return st;
    }
    if (c == '"') {
        sl_json *v = new_node(ps, SL_JSON_STRING, ps->p);
        if (!v) return fail_oom(ps);
        sl_status st = parse_string(ps, &v->u.str.s, &v->u.str.len);
        if (st != SL_OK) {
            free(v);
            return st;
        }
        *out = v;
        return SL_OK;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps, out);
    return parse_literal(ps, out);
}

sl_status sl_json_parse(const char *text, size_t len, const char *filename, sl_json **out) {
    *out = NULL;
    if (!filename) filename = "<json>";
    char *file = malloc(strlen(filename) + 1);
    if (!file) return sl_error_set(SL_ERR_OOM, "out of memory parsing %s", filename);
    strcpy(file, filename);
    parser ps = {.p = text, .end = text + len, .line_start = text, .line = 1, .file = file};
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) ps.p = ps.line_start = text + 3;
    skip_ws(&ps);
    sl_json *root = NULL;
    sl_status st;
    if (ps.p >= ps.end)
        st = fail_at(&ps, ps.p, "empty document; expected a JSON value");
    else
        st = parse_value(&ps, &root);
    if (st == SL_OK) {
        skip_ws(&ps);
        if (ps.p < ps.end) st = fail_expected(&ps, "end of input after the JSON value");
    }
    free(ps.scratch);
    if (st != SL_OK) {
        sl_json_free(root);
        free(file);
        return st;
    }
    root->owned_file = file;
    *out = root;
    return SL_OK;
}

sl_status sl_json_parse_file(const char *path, sl_json **out) {
    char *text;
    size_t len;
    *out = NULL;
    SL_TRY(sl_file_read_all(path, &text, &len));
    sl_status st = sl_json_parse(text, len, path, out);
    free(text);
    return st;
}
