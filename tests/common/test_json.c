/* common/json.h: the parser's DOM and positions, every rejection with file:line:col, robustness on
 * truncated and random input, and the writer's formatting and number round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"

static uint64_t test_seed(void) {
    const char *env = getenv("SHARDLAB_TEST_SEED");
    if (env) return strtoull(env, NULL, 0);
    return (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static sl_json *parse_ok(const char *text) {
    sl_json *root = NULL;
    const sl_status st = sl_json_parse(text, strlen(text), "t.json", &root);
    if (st != SL_OK) fail_msg("unexpected parse error: %s", sl_error_message());
    return root;
}

/* Parses `text`, expects SL_ERR_FORMAT, and checks that the message contains each needle. */
static void expect_reject(const char *text, size_t len, const char *needle1, const char *needle2) {
    sl_json *root = NULL;
    const sl_status st = sl_json_parse(text, len, "t.json", &root);
    if (st != SL_ERR_FORMAT) fail_msg("input %.60s: expected SL_ERR_FORMAT, got %d", text, st);
    assert_null(root);
    const char *msg = sl_error_message();
    if (!strstr(msg, needle1) || (needle2 && !strstr(msg, needle2)))
        fail_msg("input %.60s: message \"%s\" lacks \"%s\"%s%s", text, msg, needle1,
                 needle2 ? " or " : "", needle2 ? needle2 : "");
}

#define REJECT(text, n1, n2) expect_reject(text, sizeof(text) - 1, n1, n2)

static char *write_to_string(void (*fill)(sl_json_writer *), int indent, sl_status *st) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sl_json_writer w;
    sl_json_writer_init(&w, f, indent);
    fill(&w);
    *st = sl_json_writer_finish(&w);
    fclose(f);
    return buf;
}

/* ---- DOM ---- */

static void test_parse_keeps_values_order_and_positions(void **state) {
    (void)state;
    sl_json *root = parse_ok("{\n"
                             "  \"zero_optimization\": {\"stage\": 3},\n"
                             "  \"lr\": 3e-4, \"b\": true, \"n\": null,\n"
                             "  \"list\": [1, \"two\", [], {}]\n"
                             "}");
    assert_int_equal(sl_json_type_of(root), SL_JSON_OBJECT);
    assert_int_equal(sl_json_count(root), 5);
    assert_string_equal(sl_json_key_at(root, 0), "zero_optimization");
    assert_string_equal(sl_json_key_at(root, 4), "list");
    assert_null(sl_json_key_at(root, 5));
    const sl_json *stage = sl_json_get(sl_json_get(root, "zero_optimization"), "stage");
    int64_t i = 0;
    assert_true(sl_json_int64(stage, &i));
    assert_int_equal(i, 3);
    assert_int_equal(sl_json_line(stage), 2);
    assert_int_equal(sl_json_column(stage), 34);
    assert_string_equal(sl_json_file(stage), "t.json");
    const sl_json *lr = sl_json_get(root, "lr");
    assert_true(sl_json_number(lr) == 3e-4);
    assert_string_equal(sl_json_number_text(lr), "3e-4");
    assert_false(sl_json_int64(lr, &i));
    assert_int_equal(sl_json_line(lr), 3);
    assert_int_equal(sl_json_column(lr), 9);
    assert_true(sl_json_bool(sl_json_get(root, "b")));
    assert_int_equal(sl_json_type_of(sl_json_get(root, "n")), SL_JSON_NULL);
    const sl_json *list = sl_json_get(root, "list");
    assert_int_equal(sl_json_count(list), 4);
    assert_string_equal(sl_json_string(sl_json_at(list, 1)), "two");
    assert_int_equal(sl_json_column(sl_json_at(list, 1)), 15);
    assert_int_equal(sl_json_type_of(sl_json_at(list, 2)), SL_JSON_ARRAY);
    assert_int_equal(sl_json_count(sl_json_at(list, 3)), 0);
    assert_null(sl_json_at(list, 4));
    assert_null(sl_json_get(root, "missing"));
    assert_null(sl_json_get(list, "lr")); /* not an object */
    sl_json_free(root);
}

static void test_lookup_finds_every_key_of_a_large_object(void **state) {
    (void)state;
    enum { N = 2000 };
    char *text = malloc(N * 24 + 4);
    size_t at = 0;
    text[at++] = '{';
    for (int k = 0; k < N; k++)
        at += (size_t)sprintf(text + at, "%s\"key%d\": %d", k ? "," : "", (k * 7919) % N, k);
    text[at++] = '}';
    sl_json *root = NULL;
    assert_int_equal(sl_json_parse(text, at, "big.json", &root), SL_OK);
    for (int k = 0; k < N; k++) {
        char key[16];
        snprintf(key, sizeof key, "key%d", (k * 7919) % N);
        int64_t v = -1;
        assert_true(sl_json_int64(sl_json_get(root, key), &v));
        assert_int_equal(v, k);
    }
    sl_json_free(root);
    free(text);
}

static void test_strings_decode_escapes_surrogates_and_nul(void **state) {
    (void)state;
    sl_json *root = parse_ok("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\ud83d\\ude00\", "
                             "\"x\\u0000y\", \"\xc3\xa9\xf0\x9f\x98\x80\"]");
    assert_string_equal(sl_json_string(sl_json_at(root, 0)), "a\"b\\c/d\b\f\n\r\t");
    assert_string_equal(sl_json_string(sl_json_at(root, 1)), "\xc3\xa9\xf0\x9f\x98\x80");
    assert_int_equal(sl_json_string_length(sl_json_at(root, 2)), 3);
    assert_memory_equal(sl_json_string(sl_json_at(root, 2)), "x\0y", 4);
    assert_string_equal(sl_json_string(sl_json_at(root, 3)), "\xc3\xa9\xf0\x9f\x98\x80");
    sl_json_free(root);
}

static void test_numbers_keep_text_sign_and_int64_range(void **state) {
    (void)state;
    sl_json *root = parse_ok("[-0, 1e308, 5e-324, 1e-400, 9223372036854775807, "
                             "9223372036854775808, -9223372036854775808, -9223372036854775809, "
                             "1.0, 1e2, 0.1]");
    int64_t i = 1;
    const sl_json *neg_zero = sl_json_at(root, 0);
    assert_true(sl_json_int64(neg_zero, &i) && i == 0);
    assert_true(sl_json_number(neg_zero) == 0.0 && signbit(sl_json_number(neg_zero)));
    assert_string_equal(sl_json_number_text(neg_zero), "-0");
    assert_true(sl_json_number(sl_json_at(root, 1)) == 1e308);
    assert_true(sl_json_number(sl_json_at(root, 2)) == 5e-324);
    assert_true(sl_json_number(sl_json_at(root, 3)) == 0.0); /* underflow is not an error */
    assert_true(sl_json_int64(sl_json_at(root, 4), &i) && i == INT64_MAX);
    assert_false(sl_json_int64(sl_json_at(root, 5), &i));
    assert_true(sl_json_number(sl_json_at(root, 5)) == 9223372036854775808.0);
    assert_true(sl_json_int64(sl_json_at(root, 6), &i) && i == INT64_MIN);
    assert_false(sl_json_int64(sl_json_at(root, 7), &i));
    assert_false(sl_json_int64(sl_json_at(root, 8), &i)); /* written as a fraction */
    assert_false(sl_json_int64(sl_json_at(root, 9), &i));
    assert_true(sl_json_number(sl_json_at(root, 10)) == 0.1);
    sl_json_free(root);
}

static void test_bom_is_skipped_and_columns_start_after_it(void **state) {
    (void)state;
    sl_json *root = parse_ok("\xef\xbb\xbf{\"a\": 1}");
    assert_int_equal(sl_json_column(sl_json_get(root, "a")), 7);
    sl_json_free(root);
}

/* ---- rejections ---- */

static void test_rejects_truncation_and_trailing_garbage_with_position(void **state) {
    (void)state;
    REJECT("{\"a\": [1, 2", "t.json:1:12:", "end of input");
    REJECT("{\"a\": ", "t.json:1:7:", "value of key \"a\"");
    REJECT("\"abc", "t.json:1:5:", "unterminated string (opened at 1:1)");
    REJECT("{} x", "t.json:1:4:", "found 'x'");
    REJECT("[1]\n]", "t.json:2:1:", "end of input after the JSON value");
    REJECT("", "t.json:1:1:", "empty document");
    REJECT("  \n ", "t.json:2:2:", "empty document");
}

static void test_rejects_trailing_commas_naming_the_line(void **state) {
    (void)state;
    REJECT("[1, 2,]", "t.json:1:6:", "trailing comma before ']'");
    REJECT("{\n  \"a\": 1,\n}", "t.json:2:9:", "trailing comma before '}'");
    REJECT("[,1]", "t.json:1:2:", "expected a value");
    REJECT("{,}", "t.json:1:2:", "expected a string key");
}

static void test_rejects_duplicate_keys_naming_both_positions(void **state) {
    (void)state;
    REJECT("{\n  \"x\": 1,\n  \"y\": 2,\n  \"x\": 3\n}",
           "t.json:4:3: duplicate key \"x\" (first at t.json:2:3)", NULL);
    REJECT("{\"a\": {\"k\": 1, \"k\": 2}}", "t.json:1:16: duplicate key \"k\"", NULL);
    /* Three copies: the second occurrence is the one reported. */
    REJECT("{\"d\":1, \"d\":2, \"d\":3}", "t.json:1:9: duplicate key \"d\" (first at t.json:1:2)",
           NULL);
}

static void test_rejects_invalid_utf8_and_control_characters(void **state) {
    (void)state;
    REJECT("\"\xff\"", "t.json:1:2:", "invalid UTF-8 (byte 0xff)");
    REJECT("\"\xc0\xaf\"", "t.json:1:2:", "invalid UTF-8");         /* overlong '/' */
    REJECT("\"\xed\xa0\x80\"", "t.json:1:2:", "invalid UTF-8");     /* encoded surrogate */
    REJECT("\"\xf4\x90\x80\x80\"", "t.json:1:2:", "invalid UTF-8"); /* above U+10FFFF */
    REJECT("\"ab\xe2\x82\"", "t.json:1:4:", "invalid UTF-8");       /* cut sequence */
    REJECT("\"a\tb\"", "t.json:1:3:", "control character 0x09");
    REJECT("[\"a\nb\"]", "t.json:1:4:", "control character 0x0a");
    REJECT("\"\\ud800\"", "t.json:1:2:", "lone high surrogate");
    REJECT("\"\\ud800\\u0041\"", "t.json:1:2:", "not a low surrogate");
    REJECT("\"\\udc00\"", "t.json:1:2:", "lone low surrogate");
    REJECT("\"\\x\"", "t.json:1:3:", "expected one of");
    REJECT("\"\\u12g4\"", "t.json:1:6:", "hex digit");
    REJECT("[\xef\xbb\xbf]", "t.json:1:2:", "byte 0xef"); /* a BOM is only skipped at the start */
}

static void test_rejects_nan_infinity_and_out_of_range_numbers(void **state) {
    (void)state;
    REJECT("[NaN]", "t.json:1:2:", "'NaN' (JSON has no NaN or Infinity");
    REJECT("{\"a\": Infinity}", "t.json:1:7:", "'Infinity'");
    REJECT("[-Infinity]", "t.json:1:3:", "'Infinity'");
    REJECT("1e309", "t.json:1:1:", "number 1e309 is out of range");
    REJECT("[0, -1e309]", "t.json:1:5:", "-1e309");
    REJECT("01", "t.json:1:1:", "leading zeros");
    REJECT("-", "t.json:1:2:", "expected a digit");
    REJECT("1.", "t.json:1:3:", "digit after '.'");
    REJECT("1e+", "t.json:1:4:", "exponent");
    REJECT("+1", "t.json:1:1:", "found '+'");
    REJECT(".5", "t.json:1:1:", "found '.'");
    REJECT("[tru]", "t.json:1:2:", "found 'tru'");
    REJECT("[truex]", "t.json:1:2:", "found 'truex'");
    REJECT("{'a': 1}", "t.json:1:2:", "a string key in double quotes");
    REJECT("{\"a\" 1}", "t.json:1:6:", "':'");
    REJECT("[1 2]", "t.json:1:4:", "',' or ']'");
    REJECT("{\"a\": 1 \"b\": 2}", "t.json:1:9:", "',' or '}'");
    REJECT("[1]\0", "t.json:1:4:", "byte 0x00");
}

static void test_nesting_is_limited_to_64_without_recursing_deeper(void **state) {
    (void)state;
    char ok[2 * SL_JSON_MAX_DEPTH + 1], deep[2 * SL_JSON_MAX_DEPTH + 3];
    for (int i = 0; i < SL_JSON_MAX_DEPTH; i++) {
        ok[i] = '[';
        ok[2 * SL_JSON_MAX_DEPTH - 1 - i] = ']';
    }
    sl_json *root = NULL;
    assert_int_equal(sl_json_parse(ok, 2 * SL_JSON_MAX_DEPTH, "t.json", &root), SL_OK);
    sl_json_free(root);
    for (int i = 0; i <= SL_JSON_MAX_DEPTH; i++) {
        deep[i] = '[';
        deep[2 * SL_JSON_MAX_DEPTH + 1 - i] = ']';
    }
    expect_reject(deep, 2 * SL_JSON_MAX_DEPTH + 2, "t.json:1:65:", "nesting deeper than 64");
    /* Hundreds of thousands of openers must fail at level 65, not exhaust the stack. */
    const size_t reps = 200000, n = 1000000;
    char *huge = malloc(n);
    for (size_t i = 0; i < reps; i++)
        memcpy(huge + 5 * i, "{\"a\":", 5);
    expect_reject(huge, 5 * reps, "t.json:1:321:", "nesting deeper than 64"); /* 64 * 5 + 1 */
    memset(huge, '[', n);
    expect_reject(huge, n, "t.json:1:65:", NULL);
    free(huge);
}

/* ---- robustness ---- */

static const char valid_doc[] =
    "{\"name\": \"gpt2\\u00e9\", \"layers\": [1, -2.5e-3, true, false, null],\n"
    " \"nested\": {\"a\": {\"b\": [[], {}, \"\\ud83d\\ude00\"]}, \"big\": 9223372036854775808},\n"
    " \"s\": \"tab\\t\xc3\xa9\", \"z\": 0}";

static void test_every_truncation_of_a_valid_document_is_rejected_cleanly(void **state) {
    (void)state;
    const size_t len = sizeof valid_doc - 1;
    sl_json *root = NULL;
    assert_int_equal(sl_json_parse(valid_doc, len, "doc.json", &root), SL_OK);
    sl_json_free(root);
    for (size_t k = 0; k < len; k++) {
        char *prefix = malloc(k ? k : 1); /* exactly k bytes, so reading past them is caught */
        memcpy(prefix, valid_doc, k);
        root = NULL;
        const sl_status st = sl_json_parse(prefix, k, "doc.json", &root);
        if (st != SL_ERR_FORMAT || root) fail_msg("prefix of %zu bytes: status %d", k, st);
        if (strncmp(sl_error_message(), "doc.json:", 9) != 0)
            fail_msg("prefix of %zu bytes: message \"%s\" lacks the position", k,
                     sl_error_message());
        free(prefix);
    }
}

static void test_random_and_mutated_input_never_crashes(void **state) {
    (void)state;
    const uint64_t seed = test_seed();
    print_message("seed %llu (set SHARDLAB_TEST_SEED to repeat)\n", (unsigned long long)seed);
    uint64_t rng = seed;
    static const char alphabet[] = "{}[]:,\"\\u0123456789abcdefeE+-. \n\tnulltruefalse\xc3\xa9\xff";
    const size_t doc_len = sizeof valid_doc - 1;
    for (int iter = 0; iter < 40000; iter++) {
        size_t len;
        char *buf;
        if (iter % 2) {
            len = (size_t)(splitmix64(&rng) % 80);
            buf = malloc(len ? len : 1);
            for (size_t i = 0; i < len; i++) {
                const uint64_t r = splitmix64(&rng);
                buf[i] = r % 8 ? alphabet[(r >> 8) % (sizeof alphabet - 1)] : (char)(r >> 16);
            }
        } else {
            len = doc_len;
            buf = malloc(len);
            memcpy(buf, valid_doc, len);
            for (int m = 1 + (int)(splitmix64(&rng) % 3); m > 0; m--) {
                const uint64_t r = splitmix64(&rng);
                buf[r % len] = (r >> 32) % 2 ? (char)(r >> 40) : alphabet[(r >> 40) % 40];
            }
        }
        sl_json *root = NULL;
        const sl_status st = sl_json_parse(buf, len, "fuzz.json", &root);
        if (st == SL_OK) {
            assert_non_null(root);
            sl_json_free(root);
        } else if (st != SL_ERR_FORMAT || strncmp(sl_error_message(), "fuzz.json:", 10) != 0) {
            fail_msg("iteration %d: status %d, message \"%s\" (seed %llu)", iter, st,
                     sl_error_message(), (unsigned long long)seed);
        }
        free(buf);
    }
}

/* ---- writer ---- */

static void fill_sample(sl_json_writer *w) {
    sl_json_writer_begin_object(w);
    sl_json_writer_key(w, "name");
    sl_json_writer_string(w, "q\"\\\n\x01\xc3\xa9");
    sl_json_writer_key(w, "steps");
    sl_json_writer_begin_array(w);
    sl_json_writer_int64(w, -3);
    sl_json_writer_uint64(w, UINT64_MAX);
    sl_json_writer_double(w, 0.1);
    sl_json_writer_double(w, 2.0);
    sl_json_writer_f32(w, 0.1f);
    sl_json_writer_double(w, NAN);
    sl_json_writer_end_array(w);
    sl_json_writer_key(w, "empty");
    sl_json_writer_begin_object(w);
    sl_json_writer_end_object(w);
    sl_json_writer_key(w, "flags");
    sl_json_writer_begin_array(w);
    sl_json_writer_bool(w, true);
    sl_json_writer_null(w);
    sl_json_writer_end_array(w);
    sl_json_writer_end_object(w);
}

static void test_writer_pretty_and_compact_output_is_exact(void **state) {
    (void)state;
    sl_status st;
    char *pretty = write_to_string(fill_sample, 2, &st);
    assert_int_equal(st, SL_OK);
    assert_string_equal(pretty, "{\n"
                                "  \"name\": \"q\\\"\\\\\\n\\u0001\xc3\xa9\",\n"
                                "  \"steps\": [\n"
                                "    -3,\n"
                                "    18446744073709551615,\n"
                                "    0.1,\n"
                                "    2.0,\n"
                                "    0.1,\n"
                                "    \"NaN\"\n"
                                "  ],\n"
                                "  \"empty\": {},\n"
                                "  \"flags\": [\n"
                                "    true,\n"
                                "    null\n"
                                "  ]\n"
                                "}\n");
    char *compact = write_to_string(fill_sample, 0, &st);
    assert_int_equal(st, SL_OK);
    assert_string_equal(compact, "{\"name\":\"q\\\"\\\\\\n\\u0001\xc3\xa9\",\"steps\":[-3,"
                                 "18446744073709551615,0.1,2.0,0.1,\"NaN\"],\"empty\":{},"
                                 "\"flags\":[true,null]}");
    sl_json *root = parse_ok(pretty);
    assert_string_equal(sl_json_string(sl_json_get(root, "name")), "q\"\\\n\x01\xc3\xa9");
    sl_json_free(root);
    free(pretty);
    free(compact);
}

static void test_writer_numbers_round_trip_bit_exactly(void **state) {
    (void)state;
    const uint64_t seed = test_seed();
    uint64_t rng = seed;
    char *buf = NULL;
    size_t len = 0;
    enum { N = 20000 };
    static double d[N];
    static float f[N];
    const double fixed[] = {0.0, -0.0, 1e308, -1.7976931348623157e308, 5e-324, 0.1, 1.0 / 3.0};
    for (int i = 0; i < N; i++) {
        uint64_t u = splitmix64(&rng);
        if (i < 7) memcpy(&u, &fixed[i], 8);
        memcpy(&d[i], &u, 8);
        if (!isfinite(d[i])) d[i] = (double)i;
        uint32_t v = (uint32_t)(u >> 17);
        memcpy(&f[i], &v, 4);
        if (!isfinite(f[i])) f[i] = -(float)i;
    }
    FILE *out = open_memstream(&buf, &len);
    sl_json_writer w;
    sl_json_writer_init(&w, out, 1);
    sl_json_writer_begin_array(&w);
    for (int i = 0; i < N; i++) {
        sl_json_writer_double(&w, d[i]);
        sl_json_writer_f32(&w, f[i]);
    }
    sl_json_writer_end_array(&w);
    assert_int_equal(sl_json_writer_finish(&w), SL_OK);
    fclose(out);
    sl_json *root = parse_ok(buf);
    for (int i = 0; i < N; i++) {
        const double got = sl_json_number(sl_json_at(root, 2 * (size_t)i));
        const float got_f = (float)sl_json_number(sl_json_at(root, 2 * (size_t)i + 1));
        if (memcmp(&got, &d[i], 8) != 0 || memcmp(&got_f, &f[i], 4) != 0)
            fail_msg("element %d: wrote %a and %a, read %a and %a (seed %llu)", i, d[i],
                     (double)f[i], got, (double)got_f, (unsigned long long)seed);
    }
    /* Shortest forms: no more digits than needed. */
    assert_string_equal(sl_json_number_text(sl_json_at(root, 10)), "0.1");
    assert_string_equal(sl_json_number_text(sl_json_at(root, 2)), "-0.0");
    assert_string_equal(sl_json_number_text(sl_json_at(root, 4)), "1e+308");
    sl_json_free(root);
    free(buf);
}

static void misuse_value_without_key(sl_json_writer *w) {
    sl_json_writer_begin_object(w);
    sl_json_writer_int64(w, 1);
    sl_json_writer_end_object(w);
}
static void misuse_key_in_array(sl_json_writer *w) {
    sl_json_writer_begin_array(w);
    sl_json_writer_key(w, "k");
    sl_json_writer_end_array(w);
}
static void misuse_unbalanced(sl_json_writer *w) {
    sl_json_writer_begin_array(w);
    sl_json_writer_end_object(w);
}
static void misuse_unfinished(sl_json_writer *w) {
    sl_json_writer_begin_array(w);
}
static void misuse_two_values(sl_json_writer *w) {
    sl_json_writer_null(w);
    sl_json_writer_null(w);
}
static void misuse_bad_utf8(sl_json_writer *w) {
    sl_json_writer_string(w, "ab\xff");
}

static void test_writer_reports_misuse_at_finish(void **state) {
    (void)state;
    struct {
        void (*fill)(sl_json_writer *);
        sl_status want;
        const char *needle;
    } cases[] = {
        {misuse_value_without_key, SL_ERR_INTERNAL, "key is due"},
        {misuse_key_in_array, SL_ERR_INTERNAL, "key \"k\" outside an object"},
        {misuse_unbalanced, SL_ERR_INTERNAL, "end of object without a matching begin"},
        {misuse_unfinished, SL_ERR_INTERNAL, "unfinished"},
        {misuse_two_values, SL_ERR_INTERNAL, "after the complete top-level value"},
        {misuse_bad_utf8, SL_ERR_INVALID_ARG, "not valid UTF-8 (byte 0xff at offset 2)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_status st;
        free(write_to_string(cases[i].fill, 2, &st));
        assert_int_equal(st, cases[i].want);
        if (!strstr(sl_error_message(), cases[i].needle))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, sl_error_message(),
                     cases[i].needle);
    }
}

static void fill_with_external(sl_json_writer *w) {
    sl_json_writer_begin_object(w);
    sl_json_writer_key(w, "outer");
    sl_json_writer_begin_array(w);
    const int level = sl_json_writer_external_value(w);
    sl_json_writer inner;
    sl_json_writer_init_at(&inner, w->f, 2, level);
    sl_json_writer_begin_object(&inner);
    sl_json_writer_key(&inner, "x");
    sl_json_writer_int64(&inner, 1);
    sl_json_writer_end_object(&inner);
    assert_int_equal(sl_json_writer_finish(&inner), SL_OK);
    sl_json_writer_int64(w, 2);
    sl_json_writer_end_array(w);
    sl_json_writer_end_object(w);
}

static void test_writer_embeds_an_externally_written_value(void **state) {
    (void)state;
    sl_status st;
    char *text = write_to_string(fill_with_external, 2, &st);
    assert_int_equal(st, SL_OK);
    assert_string_equal(text, "{\n  \"outer\": [\n    {\n      \"x\": 1\n    },\n    2\n  ]\n}\n");
    free(text);
}

static void test_parse_file_names_the_path_and_missing_files(void **state) {
    (void)state;
    const char *path = SL_BINARY_DIR "/test_json_parse_file.json";
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("{\n  \"a\": [1,]\n}\n", f);
    fclose(f);
    sl_json *root = NULL;
    assert_int_equal(sl_json_parse_file(path, &root), SL_ERR_FORMAT);
    if (!strstr(sl_error_message(), "test_json_parse_file.json:2:10:"))
        fail_msg("%s", sl_error_message());
    remove(path);
    assert_int_equal(sl_json_parse_file(path, &root), SL_ERR_IO);
    assert_non_null(strstr(sl_error_message(), "test_json_parse_file.json"));
    assert_null(root);
}

static void test_expect_names_position_key_and_found_value(void **state) {
    (void)state;
    sl_json *root = parse_ok("{\"zero_optimization\": {\n  \"stage\": \"three\"}}");
    const sl_json *stage = sl_json_get(sl_json_get(root, "zero_optimization"), "stage");
    assert_int_equal(sl_json_expect(stage, SL_JSON_STRING, "zero_optimization.stage"), SL_OK);
    assert_int_equal(sl_json_expect(stage, SL_JSON_NUMBER, "zero_optimization.stage"),
                     SL_ERR_FORMAT);
    assert_string_equal(sl_error_message(),
                        "t.json:2:12: zero_optimization.stage: expected number, found string "
                        "\"three\"");
    sl_json_free(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_keeps_values_order_and_positions),
        cmocka_unit_test(test_lookup_finds_every_key_of_a_large_object),
        cmocka_unit_test(test_strings_decode_escapes_surrogates_and_nul),
        cmocka_unit_test(test_numbers_keep_text_sign_and_int64_range),
        cmocka_unit_test(test_bom_is_skipped_and_columns_start_after_it),
        cmocka_unit_test(test_rejects_truncation_and_trailing_garbage_with_position),
        cmocka_unit_test(test_rejects_trailing_commas_naming_the_line),
        cmocka_unit_test(test_rejects_duplicate_keys_naming_both_positions),
        cmocka_unit_test(test_rejects_invalid_utf8_and_control_characters),
        cmocka_unit_test(test_rejects_nan_infinity_and_out_of_range_numbers),
        cmocka_unit_test(test_nesting_is_limited_to_64_without_recursing_deeper),
        cmocka_unit_test(test_every_truncation_of_a_valid_document_is_rejected_cleanly),
        cmocka_unit_test(test_random_and_mutated_input_never_crashes),
        cmocka_unit_test(test_writer_pretty_and_compact_output_is_exact),
        cmocka_unit_test(test_writer_numbers_round_trip_bit_exactly),
        cmocka_unit_test(test_writer_reports_misuse_at_finish),
        cmocka_unit_test(test_writer_embeds_an_externally_written_value),
        cmocka_unit_test(test_parse_file_names_the_path_and_missing_files),
        cmocka_unit_test(test_expect_names_position_key_and_found_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
