/* The streaming JSON writer declared in json.h. */
#include "common/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void sl_json_writer_init_at(sl_json_writer *w, FILE *f, int indent, int level) {
    memset(w, 0, sizeof *w);
    w->f = f;
    w->indent = indent > 0 ? indent : 0;
    w->base_level = level > 0 ? level : 0;
    w->status = SL_OK;
}

void sl_json_writer_init(sl_json_writer *w, FILE *f, int indent) {
    sl_json_writer_init_at(w, f, indent, 0);
}

static void misuse(sl_json_writer *w, sl_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void misuse(sl_json_writer *w, sl_status code, const char *fmt, ...) {
    if (w->status != SL_OK) return;
    w->status = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof w->error, fmt, ap);
    va_end(ap);
}

static void newline_indent(sl_json_writer *w, int level) {
    if (!w->indent) return;
    fputc('\n', w->f);
    for (int i = 0; i < (w->base_level + level) * w->indent; i++)
        fputc(' ', w->f);
}

/* The separator and indentation due before an array element or an object member. */
static void separate_item(sl_json_writer *w) {
    if (w->has_items[w->depth - 1]) fputc(',', w->f);
    newline_indent(w, w->depth);
    w->has_items[w->depth - 1] = true;
}

static bool begin_value(sl_json_writer *w, const char *what) {
    if (w->status != SL_OK) return false;
    if (w->done) {
        misuse(w, SL_ERR_INTERNAL, "%s after the complete top-level value", what);
        return false;
    }
    if (w->depth > 0 && w->in_object[w->depth - 1]) {
        if (!w->key_pending) {
            misuse(w, SL_ERR_INTERNAL, "%s inside an object where a key is due", what);
            return false;
        }
        w->key_pending = false; /* sl_json_writer_key wrote the separator */
    } else if (w->depth > 0) {
        separate_item(w);
    }
    return true;
}

static void end_value(sl_json_writer *w) {
    if (w->depth == 0) w->done = true;
}

static void begin_container(sl_json_writer *w, bool object) {
    if (!begin_value(w, object ? "an object" : "an array")) return;
    if (w->depth == SL_JSON_MAX_DEPTH) {
        misuse(w, SL_ERR_INTERNAL, "nesting deeper than %d levels", SL_JSON_MAX_DEPTH);
        return;
    }
    fputc(object ? '{' : '[', w->f);
    w->in_object[w->depth] = object;
    w->has_items[w->depth] = false;
    w->depth++;
}

static void end_container(sl_json_writer *w, bool object) {
    if (w->status != SL_OK) return;
    if (w->depth == 0 || w->in_object[w->depth - 1] != object) {
        misuse(w, SL_ERR_INTERNAL, "end of %s without a matching begin",
               object ? "object" : "array");
        return;
    }
    if (w->key_pending) {
        misuse(w, SL_ERR_INTERNAL, "object ended where the value of a key is due");
        return;
    }
    w->depth--;
    if (w->has_items[w->depth]) newline_indent(w, w->depth);
    fputc(object ? '}' : ']', w->f);
    end_value(w);
}

void sl_json_writer_begin_object(sl_json_writer *w) {
    begin_container(w, true);
}
void sl_json_writer_end_object(sl_json_writer *w) {
    end_container(w, true);
}
void sl_json_writer_begin_array(sl_json_writer *w) {
    begin_container(w, false);
}
void sl_json_writer_end_array(sl_json_writer *w) {
    end_container(w, false);
}

/* Checks the whole string first, so that a rejected string leaves nothing half-written. */
static bool write_escaped(sl_json_writer *w, const char *s) {
    const size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        const size_t n = sl_utf8_sequence_length((const unsigned char *)s + i, len - i);
        if (n == 0) {
            misuse(w, SL_ERR_INVALID_ARG,
                   "string \"%.40s\" is not valid UTF-8 (byte 0x%02x at "
                   "offset %zu)",
                   s, (unsigned char)s[i], i);
            return false;
        }
        i += n;
    }
    fputc('"', w->f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", w->f); break;
        case '\\': fputs("\\\\", w->f); break;
        case '\n': fputs("\\n", w->f); break;
        case '\r': fputs("\\r", w->f); break;
        case '\t': fputs("\\t", w->f); break;
        case '\b': fputs("\\b", w->f); break;
        case '\f': fputs("\\f", w->f); break;
        default:
            if (*p < 0x20)
                fprintf(w->f, "\\u%04x", *p);
            else
                fputc(*p, w->f);
        }
    }
    fputc('"', w->f);
    return true;
}

void sl_json_writer_key(sl_json_writer *w, const char *key) {
    if (w->status != SL_OK) return;
    if (w->depth == 0 || !w->in_object[w->depth - 1]) {
        misuse(w, SL_ERR_INTERNAL, "key \"%.40s\" outside an object", key);
        return;
    }
    if (w->key_pending) {
        misuse(w, SL_ERR_INTERNAL, "key \"%.40s\" where the previous key's value is due", key);
        return;
    }
    separate_item(w);
    if (!write_escaped(w, key)) return;
    fputs(w->indent ? ": " : ":", w->f);
    w->key_pending = true;
}

void sl_json_writer_string(sl_json_writer *w, const char *s) {
    if (!begin_value(w, "a string")) return;
    if (write_escaped(w, s)) end_value(w);
}

void sl_json_writer_int64(sl_json_writer *w, int64_t v) {
    if (!begin_value(w, "a number")) return;
    fprintf(w->f, "%" PRId64, v);
    end_value(w);
}

void sl_json_writer_uint64(sl_json_writer *w, uint64_t v) {
    if (!begin_value(w, "a number")) return;
    fprintf(w->f, "%" PRIu64, v);
    end_value(w);
}

static void write_non_finite(sl_json_writer *w, double v) {
    sl_json_writer_string(w, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
}

/* %g drops the point from integral values; ".0" keeps them floats for readers that care. */
static void write_number_text(sl_json_writer *w, char *buf, size_t cap) {
    if (!strpbrk(buf, ".e")) strncat(buf, ".0", cap - strlen(buf) - 1);
    fputs(buf, w->f);
    end_value(w);
}

void sl_json_writer_double(sl_json_writer *w, double v) {
    if (!isfinite(v)) {
        write_non_finite(w, v);
        return;
    }
    if (!begin_value(w, "a number")) return;
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    write_number_text(w, buf, sizeof buf);
}

void sl_json_writer_f32(sl_json_writer *w, float v) {
    if (!isfinite(v)) {
        write_non_finite(w, v);
        return;
    }
    if (!begin_value(w, "a number")) return;
    char buf[40];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) break; /* readers usually parse a double, then narrow */
    }
    write_number_text(w, buf, sizeof buf);
}

void sl_json_writer_bool(sl_json_writer *w, bool v) {
    if (!begin_value(w, "a bool")) return;
    fputs(v ? "true" : "false", w->f);
    end_value(w);
}

void sl_json_writer_null(sl_json_writer *w) {
    if (!begin_value(w, "null")) return;
    fputs("null", w->f);
    end_value(w);
}

int sl_json_writer_external_value(sl_json_writer *w) {
    if (!begin_value(w, "an external value")) return 0;
    end_value(w);
    return w->base_level + w->depth;
}

sl_status sl_json_writer_finish(sl_json_writer *w) {
    if (w->status != SL_OK) return sl_error_set(w->status, "JSON writer: %s", w->error);
    if (!w->done)
        return sl_error_set(SL_ERR_INTERNAL, "JSON writer: document unfinished (%d open %s)",
                            w->depth, w->depth == 1 ? "container" : "containers");
    if (w->indent && w->base_level == 0) fputc('\n', w->f);
    if (ferror(w->f)) return sl_error_set(SL_ERR_IO, "JSON writer: the output stream failed");
    return SL_OK;
}

void sl_json_writer_kv_string(sl_json_writer *w, const char *key, const char *v) {
    sl_json_writer_key(w, key);
    sl_json_writer_string(w, v);
}

void sl_json_writer_kv_int64(sl_json_writer *w, const char *key, int64_t v) {
    sl_json_writer_key(w, key);
    sl_json_writer_int64(w, v);
}

void sl_json_writer_kv_double(sl_json_writer *w, const char *key, double v) {
    sl_json_writer_key(w, key);
    sl_json_writer_double(w, v);
}

void sl_json_writer_kv_bool(sl_json_writer *w, const char *key, bool v) {
    sl_json_writer_key(w, key);
    sl_json_writer_bool(w, v);
}
