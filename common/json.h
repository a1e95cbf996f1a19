/* JSON (RFC 8259): a strict DOM parser that remembers where every value came from, and a
 * streaming pretty-printing writer.
 *
 * Parser: rejects duplicate object keys, trailing commas, NaN/Infinity, numbers that overflow a
 * double, invalid UTF-8, raw control characters in strings, lone surrogates, and nesting deeper
 * than SL_JSON_MAX_DEPTH; errors (SL_ERR_FORMAT) read "file:line:col: ..." and say what was
 * expected and what was found. Lines and columns are 1-based; a column counts bytes. A UTF-8 byte
 * order mark at the start is skipped. Numbers are converted with strtod, so the process must not
 * have switched LC_NUMERIC away from "C" (programs that never call setlocale are fine). */
#ifndef SHARDLAB_COMMON_JSON_H
#define SHARDLAB_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shardlab/status.h"

#define SL_JSON_MAX_DEPTH 64

typedef enum sl_json_type {
    SL_JSON_NULL,
    SL_JSON_BOOL,
    SL_JSON_NUMBER,
    SL_JSON_STRING,
    SL_JSON_ARRAY,
    SL_JSON_OBJECT
} sl_json_type;

typedef struct sl_json sl_json;

/* Parses exactly `len` bytes of `text` (no NUL terminator needed). `filename` is used in messages
 * and kept for sl_json_file. On success *out is the root; free it with sl_json_free. */
sl_status sl_json_parse(const char *text, size_t len, const char *filename, sl_json **out);
sl_status sl_json_parse_file(const char *path, sl_json **out);
/* Frees a root returned by a parse function (never a child). NULL is allowed. */
void sl_json_free(sl_json *root);

sl_json_type sl_json_type_of(const sl_json *v);
const char *sl_json_type_name(sl_json_type t); /* "null", "bool", "number", ... */
int sl_json_line(const sl_json *v);
int sl_json_column(const sl_json *v);
const char *sl_json_file(const sl_json *v);

/* Checks v's type; otherwise sets SL_ERR_FORMAT "file:line:col: <what>: expected <t>, found <type>
 * <text>". `what` names the key path ("zero_optimization.stage"). */
sl_status sl_json_expect(const sl_json *v, sl_json_type t, const char *what);

/* Value accessors; each returns a neutral value (false, 0, "") when v has another type. */
bool sl_json_bool(const sl_json *v);
double sl_json_number(const sl_json *v);
/* The number as written in the document ("1e3", "-0"). */
const char *sl_json_number_text(const sl_json *v);
/* True when the number was written as an integer (no fraction, no exponent) that fits in int64. */
bool sl_json_int64(const sl_json *v, int64_t *out);
/* Decoded UTF-8, NUL-terminated; may contain NUL bytes (from \u0000), hence the length. */
const char *sl_json_string(const sl_json *v);
size_t sl_json_string_length(const sl_json *v);

/* Arrays and objects: element or member count, and element or member value i (document order). */
size_t sl_json_count(const sl_json *v);
const sl_json *sl_json_at(const sl_json *v, size_t i);
/* Object member i's key (document order), or NULL when v is not an object or i is out of range. */
const char *sl_json_key_at(const sl_json *v, size_t i);
/* Object member by key (O(log n)), or NULL when absent or v is not an object. */
const sl_json *sl_json_get(const sl_json *obj, const char *key);

/* Length (1-4) of the well-formed UTF-8 sequence at s, or 0 when it is not one (overlong forms,
 * surrogates and code points above U+10FFFF are not well formed). */
size_t sl_utf8_sequence_length(const unsigned char *s, size_t avail);

/* Streaming writer. With indent > 0 every member and element goes on its own line, indented by
 * `indent` spaces per level; indent 0 writes one compact line. Misuse (a value where a key is
 * due, unbalanced ends, nesting deeper than SL_JSON_MAX_DEPTH, a string that is not valid UTF-8)
 * makes the writer ignore everything after it; sl_json_writer_finish reports the first problem.
 * Fields are private; the struct is visible so that a writer can live on the stack. */
typedef struct sl_json_writer {
    FILE *f;
    int indent;
    int depth;
    int base_level;
    bool in_object[SL_JSON_MAX_DEPTH];
    bool has_items[SL_JSON_MAX_DEPTH];
    bool key_pending; /* a key was written and its value is due */
    bool done;        /* the single top-level value is complete */
    sl_status status;
    char error[160];
} sl_json_writer;

void sl_json_writer_init(sl_json_writer *w, FILE *f, int indent);
/* As sl_json_writer_init for a value that sits `level` levels deep in a document written by
 * someone else: its nested lines are indented as if it were there. */
void sl_json_writer_init_at(sl_json_writer *w, FILE *f, int indent, int level);
void sl_json_writer_begin_object(sl_json_writer *w);
void sl_json_writer_end_object(sl_json_writer *w);
void sl_json_writer_begin_array(sl_json_writer *w);
void sl_json_writer_end_array(sl_json_writer *w);
void sl_json_writer_key(sl_json_writer *w, const char *key);
void sl_json_writer_string(sl_json_writer *w, const char *s);
void sl_json_writer_int64(sl_json_writer *w, int64_t v);
void sl_json_writer_uint64(sl_json_writer *w, uint64_t v);
/* The shortest of %.15g, %.16g, %.17g that reads back as the same double ("0.1", "1e+300"); an
 * integral value gets ".0" so readers keep it a float. JSON has no NaN or Inf: they are written as
 * the strings "NaN", "Infinity", "-Infinity" (Python's spellings). */
void sl_json_writer_double(sl_json_writer *w, double v);
/* As sl_json_writer_double with the shortest %.6g..%.9g that reads back, as a double narrowed to
 * float, as the same float. */
void sl_json_writer_f32(sl_json_writer *w, float v);
void sl_json_writer_bool(sl_json_writer *w, bool v);
void sl_json_writer_null(sl_json_writer *w);
/* A key and its value, for the members of an object. */
void sl_json_writer_kv_string(sl_json_writer *w, const char *key, const char *v);
void sl_json_writer_kv_int64(sl_json_writer *w, const char *key, int64_t v);
void sl_json_writer_kv_double(sl_json_writer *w, const char *key, double v);
void sl_json_writer_kv_bool(sl_json_writer *w, const char *key, bool v);
/* For a value that other code writes straight to the FILE (for example a function that takes a
 * FILE* and an indent): writes the separator and indentation due before a value, counts the value
 * as written, and returns the level to pass to that code's sl_json_writer_init_at. */
int sl_json_writer_external_value(sl_json_writer *w);
/* Ends the document (a newline after it when indenting). SL_ERR_INTERNAL on misuse or an unfinished
 * document, SL_ERR_IO when the FILE reported an error. */
sl_status sl_json_writer_finish(sl_json_writer *w);

#endif
