/* safetensors.h and the atomic writer in common/fileio.h: byte-exact round trips, the reference
 * layout, every validation the reader promises (each message naming file and tensor), truncated
 * and corrupted files, and atomic replacement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "shardlab/safetensors.h"

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

/* A fresh directory per test, removed with its contents afterwards. */
static int make_dir(void **state) {
    char *dir = malloc(512);
    snprintf(dir, 512, "%s/test_safetensors.XXXXXX", SL_BINARY_DIR);
    if (!mkdtemp(dir)) return -1;
    *state = dir;
    return 0;
}

static int remove_dir(void **state) {
    char *dir = *state;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove(path);
    }
    if (d) closedir(d);
    rmdir(dir);
    free(dir);
    return 0;
}

static char *path_in(void **state, const char *name) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", (const char *)*state, name);
    return path;
}

/* Names of the directory's entries, space-separated, sorted by readdir order. */
static void list_dir(const char *dir, char *out, size_t cap) {
    out[0] = '\0';
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        strncat(out, e->d_name, cap - strlen(out) - 2);
        strcat(out, " ");
    }
    if (d) closedir(d);
}

static unsigned char *read_file(const char *path, size_t *len) {
    char *data;
    assert_int_equal(sl_file_read_all(path, &data, len), SL_OK);
    return (unsigned char *)data;
}

/* An 8-byte length, `header` unpadded, then `data_len` bytes 0, 1, 2, ... */
static unsigned char *make_file(const char *header, size_t data_len, size_t *len) {
    const size_t n = strlen(header);
    *len = 8 + n + data_len;
    unsigned char *b = malloc(*len);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_len; i++)
        b[8 + n + i] = (unsigned char)i;
    return b;
}

/* ---- round trips ---- */

static void test_each_dtype_round_trips_byte_exactly_in_order_added(void **state) {
    const uint64_t seed = test_seed();
    uint64_t rng = seed;
    static unsigned char data[6][8 * 15];
    for (size_t i = 0; i < sizeof data; i++)
        data[i / sizeof data[0]][i % sizeof data[0]] = (unsigned char)splitmix64(&rng);
    const sl_dtype dts[6] = {SL_DTYPE_I64, SL_DTYPE_F32, SL_DTYPE_BF16,
                             SL_DTYPE_F16, SL_DTYPE_F64, SL_DTYPE_I32};
    char names[6][16];
    const int64_t shape[2] = {3, 5}, empty[2] = {0, 4};
    sl_safetensors_writer *w;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    for (int k = 0; k < 6; k++) {
        snprintf(names[k], sizeof names[k], "t%d.%s", 5 - k, sl_dtype_name(dts[k]));
        assert_int_equal(sl_safetensors_writer_add(w, names[k], dts[k], shape, 2, data[k]), SL_OK);
    }
    const float scalar = 2.5f;
    assert_int_equal(sl_safetensors_writer_add(w, "scalar", SL_DTYPE_F32, NULL, 0, &scalar), SL_OK);
    assert_int_equal(sl_safetensors_writer_add(w, "empty", SL_DTYPE_BF16, empty, 2, NULL), SL_OK);
    const char *path = path_in(state, "all.safetensors");
    assert_int_equal(sl_safetensors_writer_write(w, path), SL_OK);
    sl_safetensors_writer_destroy(w);

    size_t len;
    unsigned char *file = read_file(path, &len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | file[i];
    assert_int_equal(n % 8, 0);
    assert_int_equal(file[8], '{');
    size_t data_bytes = 4;
    for (int k = 0; k < 6; k++)
        data_bytes += 15 * sl_dtype_size(dts[k]);
    assert_int_equal(len, 8 + n + data_bytes);
    free(file);

    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open(path, &st), SL_OK);
    assert_int_equal(sl_safetensors_count(st), 8);
    for (int k = 0; k < 6; k++) {
        const sl_safetensors_tensor *t = sl_safetensors_at(st, (size_t)k);
        assert_string_equal(t->name, names[k]); /* header order = order added */
        assert_ptr_equal(sl_safetensors_find(st, names[k]), t);
        assert_int_equal(t->dtype, dts[k]);
        assert_int_equal(t->ndim, 2);
        assert_true(t->shape[0] == 3 && t->shape[1] == 5);
        assert_int_equal(t->numel, 15);
        assert_int_equal(t->nbytes, 15 * sl_dtype_size(dts[k]));
        if (memcmp(t->data, data[k], t->nbytes) != 0)
            fail_msg("tensor %s: bytes differ after the round trip (seed %llu)", names[k],
                     (unsigned long long)seed);
    }
    /* The data are packed in the order added: each tensor starts where the previous one ends. */
    for (int k = 1; k < 8; k++) {
        const sl_safetensors_tensor *a = sl_safetensors_at(st, (size_t)k - 1);
        assert_ptr_equal((const unsigned char *)a->data + a->nbytes,
                         sl_safetensors_at(st, (size_t)k)->data);
    }
    const sl_safetensors_tensor *s = sl_safetensors_find(st, "scalar");
    assert_true(s->ndim == 0 && s->numel == 1 && s->nbytes == 4);
    assert_memory_equal(s->data, &scalar, 4);
    const sl_safetensors_tensor *e = sl_safetensors_find(st, "empty");
    assert_true(e->ndim == 2 && e->numel == 0 && e->nbytes == 0 && e->shape[1] == 4);
    assert_null(sl_safetensors_find(st, "missing"));
    assert_null(sl_safetensors_at(st, 8));
    sl_safetensors_close(st);
}

static void test_file_bytes_match_the_reference_layout(void **state) {
    const float values[2] = {1.0f, 2.0f};
    const int64_t shape[1] = {2};
    sl_safetensors_writer *w;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    assert_int_equal(sl_safetensors_writer_add(w, "a", SL_DTYPE_F32, shape, 1, values), SL_OK);
    assert_int_equal(sl_safetensors_writer_set_metadata(w, "format", "pt"), SL_OK);
    const char *path = path_in(state, "ref.safetensors");
    assert_int_equal(sl_safetensors_writer_write(w, path), SL_OK);
    sl_safetensors_writer_destroy(w);
    /* What the reference implementation writes for {"a": tensor([1., 2.])}, metadata {"format":
     * "pt"}: compact JSON, metadata first, padded with spaces to 88 = 11 * 8 bytes. */
    const char header[] =
        "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
        "\"data_offsets\":[0,8]}}";
    assert_int_equal(sizeof header - 1, 85);
    unsigned char want[8 + 88 + 8] = {88};
    memcpy(want + 8, header, 85);
    memset(want + 8 + 85, ' ', 3);
    memcpy(want + 96, values, 8);
    size_t len;
    unsigned char *got = read_file(path, &len);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(got, want, sizeof want);
    free(got);
}

static void test_metadata_round_trips_in_order_with_replacement(void **state) {
    sl_safetensors_writer *w;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    assert_int_equal(sl_safetensors_writer_set_metadata(w, "format", "np"), SL_OK);
    assert_int_equal(sl_safetensors_writer_set_metadata(w, "step", "12"), SL_OK);
    assert_int_equal(sl_safetensors_writer_set_metadata(w, "note", "quote \" tab\t \xc3\xa9"),
                     SL_OK);
    assert_int_equal(sl_safetensors_writer_set_metadata(w, "format", "pt"), SL_OK);
    const char *path = path_in(state, "meta.safetensors");
    assert_int_equal(sl_safetensors_writer_write(w, path), SL_OK);
    sl_safetensors_writer_destroy(w);
    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open(path, &st), SL_OK);
    assert_int_equal(sl_safetensors_count(st), 0);
    assert_int_equal(sl_safetensors_metadata_count(st), 3);
    const char *k, *v;
    sl_safetensors_metadata_at(st, 0, &k, &v);
    assert_string_equal(k, "format");
    assert_string_equal(v, "pt");
    sl_safetensors_metadata_at(st, 2, &k, &v);
    assert_string_equal(k, "note");
    assert_string_equal(v, "quote \" tab\t \xc3\xa9");
    assert_string_equal(sl_safetensors_metadata(st, "step"), "12");
    assert_null(sl_safetensors_metadata(st, "absent"));
    sl_safetensors_metadata_at(st, 3, &k, &v);
    assert_null(k);
    sl_safetensors_close(st);
}

static void test_f32_sources_are_stored_rounded_and_read_back_as_f32(void **state) {
    enum { N = 40000 }; /* more than one conversion chunk */
    static float src[N], back[N];
    for (int i = 0; i < N; i++)
        src[i] = (float)i * 1.000244140625f + 0x1p-9f;
    src[0] = 1.0f + 0x1p-8f;  /* bf16 tie, rounds to even 1.0 */
    src[1] = 1.0f + 0x1p-11f; /* f16 tie, rounds to even 1.0 */
    src[2] = 70000.0f;        /* f16 overflow: Inf */
    const int64_t shape[2] = {200, 200};
    const sl_dtype storage[3] = {SL_DTYPE_BF16, SL_DTYPE_F16, SL_DTYPE_F64};
    sl_safetensors_writer *w;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    for (int k = 0; k < 3; k++)
        assert_int_equal(
            sl_safetensors_writer_add_f32(w, sl_dtype_name(storage[k]), storage[k], shape, 2, src),
            SL_OK);
    const char *path = path_in(state, "conv.safetensors");
    assert_int_equal(sl_safetensors_writer_write(w, path), SL_OK);
    sl_safetensors_writer_destroy(w);
    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open(path, &st), SL_OK);
    for (int k = 0; k < 3; k++) {
        const sl_safetensors_tensor *t = sl_safetensors_find(st, sl_dtype_name(storage[k]));
        assert_int_equal(t->dtype, storage[k]);
        assert_int_equal(sl_safetensors_read_f32(st, t->name, back, N), SL_OK);
        for (int i = 0; i < N; i++) {
            const float want = sl_round_to(src[i], storage[k]);
            if (memcmp(&back[i], &want, 4) != 0)
                fail_msg("%s element %d: stored %a as %a, expected %a", t->name, i, (double)src[i],
                         (double)back[i], (double)want);
        }
    }
    assert_true(back[0] == 1.0f + 0x1p-8f); /* F64 keeps it; the bf16 check above saw 1.0 */
    sl_safetensors_close(st);
}

static void test_reader_lookup_errors_name_file_and_tensor(void **state) {
    const int32_t ints[4] = {1, 2, 3, 4};
    const int64_t shape[1] = {4};
    sl_safetensors_writer *w;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    assert_int_equal(sl_safetensors_writer_add(w, "ids", SL_DTYPE_I32, shape, 1, ints), SL_OK);
    assert_int_equal(
        sl_safetensors_writer_add_f32(w, "w", SL_DTYPE_F32, shape, 1, (const float *)ints), SL_OK);
    const char *path = path_in(state, "lookup.safetensors");
    assert_int_equal(sl_safetensors_writer_write(w, path), SL_OK);
    sl_safetensors_writer_destroy(w);
    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open(path, &st), SL_OK);
    float out[4];
    const sl_safetensors_tensor *t;
    assert_int_equal(sl_safetensors_get(st, "nope", &t), SL_ERR_MISMATCH);
    assert_non_null(strstr(sl_error_message(), "lookup.safetensors"));
    assert_non_null(strstr(sl_error_message(), "\"nope\""));
    assert_int_equal(sl_safetensors_read_f32(st, "w", out, 3), SL_ERR_MISMATCH);
    assert_non_null(strstr(sl_error_message(), "\"w\" has 4 elements"));
    assert_non_null(strstr(sl_error_message(), "lookup.safetensors"));
    assert_int_equal(sl_safetensors_read_f32(st, "ids", out, 4), SL_ERR_MISMATCH);
    assert_non_null(strstr(sl_error_message(), "\"ids\" is I32"));
    assert_string_equal(sl_safetensors_path(st), path);
    sl_safetensors_close(st);
    assert_int_equal(sl_safetensors_open(path_in(state, "absent.safetensors"), &st), SL_ERR_IO);
    assert_non_null(strstr(sl_error_message(), "absent.safetensors"));
}

static void test_writer_rejects_bad_tensors_by_name(void **state) {
    (void)state;
    const float x[2] = {0, 0};
    const int64_t shape[1] = {2}, negative[2] = {2, -1};
    sl_safetensors_writer *w;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    assert_int_equal(sl_safetensors_writer_add(w, "a", SL_DTYPE_F32, shape, 1, x), SL_OK);
    assert_int_equal(sl_safetensors_writer_add(w, "a", SL_DTYPE_F32, shape, 1, x),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "\"a\" added twice"));
    assert_int_equal(sl_safetensors_writer_add(w, "__metadata__", SL_DTYPE_F32, shape, 1, x),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "reserved"));
    assert_int_equal(sl_safetensors_writer_add(w, "b", SL_DTYPE_F32, negative, 2, x),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "\"b\": shape[1] = -1"));
    assert_int_equal(sl_safetensors_writer_add(w, "c\xff", SL_DTYPE_F32, shape, 1, x),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "not valid UTF-8"));
    assert_int_equal(sl_safetensors_writer_add(w, "d", SL_DTYPE_F32, shape, 1, NULL),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "\"d\": data is NULL"));
    assert_int_equal(sl_safetensors_writer_add_f32(w, "e", SL_DTYPE_I32, shape, 1, x),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "\"e\""));
    sl_safetensors_writer_destroy(w);
}

/* ---- validation ---- */

/* Opens `header` + `data_len` bytes as "bad.safetensors"; expects SL_ERR_FORMAT whose message
 * contains the file name and each needle. */
static void expect_reject(const char *header, size_t data_len, const char *needle1,
                          const char *needle2) {
    size_t len;
    unsigned char *bytes = make_file(header, data_len, &len);
    sl_safetensors *st = NULL;
    const sl_status status = sl_safetensors_open_memory(bytes, len, "bad.safetensors", &st);
    free(bytes);
    if (status != SL_ERR_FORMAT)
        fail_msg("header %s: expected SL_ERR_FORMAT, got %d", header, status);
    assert_null(st);
    const char *msg = sl_error_message();
    if (!strstr(msg, "bad.safetensors") || !strstr(msg, needle1) ||
        (needle2 && !strstr(msg, needle2)))
        fail_msg("header %s: message \"%s\" lacks the file name or \"%s\"%s%s", header, msg,
                 needle1, needle2 ? " or " : "", needle2 ? needle2 : "");
}

#define TENSOR(name, dtype, shape, offsets)                                                        \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets "}"

static void test_rejects_files_too_short_or_with_bad_header_length(void **state) {
    (void)state;
    unsigned char bytes[8] = {0};
    for (size_t len = 0; len < 8; len++) {
        sl_safetensors *st;
        assert_int_equal(sl_safetensors_open_memory(bytes, len, "short.safetensors", &st),
                         SL_ERR_FORMAT);
        assert_non_null(strstr(sl_error_message(), "short.safetensors"));
        assert_non_null(strstr(sl_error_message(), "shorter than the 8-byte header length"));
    }
    unsigned char past[20] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open_memory(past, sizeof past, "past.safetensors", &st),
                     SL_ERR_FORMAT);
    assert_non_null(strstr(sl_error_message(), "past.safetensors"));
    assert_non_null(strstr(sl_error_message(), "header length 100 runs past the end"));
    const uint64_t big = SL_SAFETENSORS_MAX_HEADER + 1ull;
    unsigned char huge[16] = {0};
    for (int i = 0; i < 8; i++)
        huge[i] = (unsigned char)(big >> (8 * i));
    assert_int_equal(sl_safetensors_open_memory(huge, sizeof huge, "huge.safetensors", &st),
                     SL_ERR_FORMAT);
    assert_non_null(strstr(sl_error_message(), "huge.safetensors: oversized header"));
    memset(huge, 0xff, 8); /* 2^64 - 1 must not wrap around any size computation */
    assert_int_equal(sl_safetensors_open_memory(huge, sizeof huge, "huge.safetensors", &st),
                     SL_ERR_FORMAT);
    assert_non_null(strstr(sl_error_message(), "oversized header"));
}

static void test_rejects_headers_that_are_not_a_json_object(void **state) {
    (void)state;
    expect_reject("[1]", 0, "does not start with '{'", NULL);
    expect_reject("", 0, "does not start with '{'", NULL);
    expect_reject("{\"a\": ", 0, "malformed JSON header: header:1:7:", NULL);
    expect_reject("{\"a\":{}} x", 0, "malformed JSON header: header:1:10:", NULL);
    expect_reject("{" TENSOR("w", "F32", "[1]", "[0,4]") "," TENSOR("w", "F32", "[1]", "[4,8]") "}",
                  8, "duplicate key \"w\"", NULL);
    expect_reject("{\"w\": [1]}", 0, "tensor \"w\": entry is a JSON array", NULL);
}

static void test_rejects_bad_dtype_shape_and_offsets_naming_the_tensor(void **state) {
    (void)state;
    expect_reject("{" TENSOR("w", "BOOL", "[1]", "[0,1]") "}", 1, "tensor \"w\"", "\"BOOL\"");
    expect_reject("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"w\"",
                  "dtype is a JSON number");
    expect_reject("{" TENSOR("w", "F32", "[2,-1]", "[0,0]") "}", 0, "tensor \"w\"",
                  "shape[1] is -1");
    expect_reject("{" TENSOR("w", "F32", "[2.0]", "[0,8]") "}", 8, "tensor \"w\"",
                  "shape[0] is 2.0");
    expect_reject("{" TENSOR("w", "F32", "[\"2\"]", "[0,8]") "}", 8, "tensor \"w\"",
                  "shape[0] is string");
    expect_reject("{" TENSOR("w", "F32", "2", "[0,8]") "}", 8, "tensor \"w\"",
                  "shape is a JSON number");
    expect_reject("{" TENSOR("w", "F32", "[2]", "[8]") "}", 8, "tensor \"w\"",
                  "data_offsets must be a list of two");
    expect_reject("{" TENSOR("w", "F32", "[2]", "[0,8,8]") "}", 8, "tensor \"w\"",
                  "data_offsets must be a list of two");
    expect_reject("{" TENSOR("w", "F32", "[2]", "[-8,0]") "}", 8, "tensor \"w\"",
                  "data_offsets must be");
    expect_reject("{" TENSOR("w", "F32", "[2]", "[0,8.5]") "}", 8, "tensor \"w\"",
                  "data_offsets must be");
    expect_reject("{" TENSOR("w", "F32", "[0]", "[8,0]") "}", 8, "tensor \"w\"",
                  "end before they begin");
    expect_reject("{" TENSOR("w", "F32", "[2,3]", "[0,20]") "}", 20, "tensor \"w\"",
                  "6 elements of F32 (4 bytes each), but data_offsets [0, 20] span 20 bytes");
    expect_reject("{" TENSOR("w", "F16", "[4294967296,4294967296,16]", "[0,0]") "}", 0,
                  "tensor \"w\"", "more than");
    expect_reject("{" TENSOR("w", "F32", "[2]", "[0,8]") "}", 4, "tensor \"w\"",
                  "run past the end of the data buffer (4 bytes)");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor \"w\"",
                  "missing \"data_offsets\"");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offset\":[0,4]}}", 4,
                  "tensor \"w\"", "unexpected key \"data_offset\"");
}

static void test_rejects_overlaps_gaps_and_trailing_bytes(void **state) {
    (void)state;
    expect_reject(
        "{" TENSOR("a", "F32", "[2]", "[0,8]") "," TENSOR("b", "F32", "[2]", "[4,12]") "}", 12,
        "tensor \"b\": bytes [4, 12) overlap tensor \"a\"", NULL);
    /* Listed in the other order: sorting by offset still finds the pair. */
    expect_reject(
        "{" TENSOR("b", "F32", "[2]", "[4,12]") "," TENSOR("a", "F32", "[2]", "[0,8]") "}", 12,
        "tensor \"b\": bytes [4, 12) overlap tensor \"a\"", NULL);
    expect_reject(
        "{" TENSOR("a", "F32", "[1]", "[0,4]") "," TENSOR("b", "F32", "[1]", "[8,12]") "}", 12,
        "tensor \"b\": starts at byte 8", "gaps");
    expect_reject("{" TENSOR("a", "F32", "[1]", "[0,4]") "}", 8, "tensor \"a\"", "trailing bytes");
    expect_reject("{}", 3, "trailing bytes", NULL);
}

static void test_rejects_metadata_that_is_not_string_to_string(void **state) {
    (void)state;
    expect_reject("{\"__metadata__\":{\"format\":\"pt\",\"step\":3}}", 0,
                  "__metadata__ entry \"step\" is a JSON number", NULL);
    expect_reject("{\"__metadata__\":[\"pt\"]}", 0, "__metadata__ is a JSON array", NULL);
}

/* ---- robustness ---- */

static unsigned char *valid_file(void **state, size_t *len) {
    const float a[3] = {1, 2, 3};
    const int64_t ids[2] = {7, -7};
    const int64_t sa[1] = {3}, sids[2] = {1, 2};
    sl_safetensors_writer *w;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    assert_int_equal(sl_safetensors_writer_add_f32(w, "h.0.w", SL_DTYPE_BF16, sa, 1, a), SL_OK);
    assert_int_equal(sl_safetensors_writer_add(w, "ids", SL_DTYPE_I64, sids, 2, ids), SL_OK);
    assert_int_equal(sl_safetensors_writer_add(w, "a", SL_DTYPE_F32, sa, 1, a), SL_OK);
    assert_int_equal(sl_safetensors_writer_set_metadata(w, "format", "pt"), SL_OK);
    const char *path = path_in(state, "valid.safetensors");
    assert_int_equal(sl_safetensors_writer_write(w, path), SL_OK);
    sl_safetensors_writer_destroy(w);
    return read_file(path, len);
}

static void test_every_truncation_is_rejected_without_crashing(void **state) {
    size_t len;
    unsigned char *bytes = valid_file(state, &len);
    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open_memory(bytes, len, "cut.safetensors", &st), SL_OK);
    sl_safetensors_close(st);
    for (size_t k = 0; k < len; k++) {
        st = NULL;
        if (sl_safetensors_open_memory(bytes, k, "cut.safetensors", &st) != SL_ERR_FORMAT || st)
            fail_msg("a %zu-byte prefix of a %zu-byte file was not rejected", k, len);
        assert_non_null(strstr(sl_error_message(), "cut.safetensors"));
    }
    /* The same through the file system for a few lengths. */
    const char *path = path_in(state, "cut.safetensors");
    for (size_t k = 0; k < len; k += 37) {
        assert_int_equal(sl_file_write_atomic_bytes(path, bytes, k), SL_OK);
        assert_int_equal(sl_safetensors_open(path, &st), SL_ERR_FORMAT);
        assert_non_null(strstr(sl_error_message(), path));
    }
    free(bytes);
}

static void test_corrupted_bytes_never_crash(void **state) {
    size_t len;
    unsigned char *bytes = valid_file(state, &len);
    const uint64_t seed = test_seed();
    print_message("seed %llu (set SHARDLAB_TEST_SEED to repeat)\n", (unsigned long long)seed);
    uint64_t rng = seed;
    unsigned char *copy = malloc(len);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(copy, bytes, len);
        for (int m = 1 + (int)(splitmix64(&rng) % 3); m > 0; m--) {
            const uint64_t r = splitmix64(&rng);
            const size_t at = iter % 4 ? 8 + r % (len - 8) : r % 8; /* mostly the header */
            copy[at] = (r >> 32) % 2 ? (unsigned char)(r >> 40)
                                     : (unsigned char)"{}[],:\"0 9"[(r >> 40) % 10];
        }
        sl_safetensors *st = NULL;
        const sl_status status = sl_safetensors_open_memory(copy, len, "fuzz.safetensors", &st);
        if (status == SL_OK) {
            for (size_t i = 0; i < sl_safetensors_count(st); i++) {
                const sl_safetensors_tensor *t = sl_safetensors_at(st, i);
                assert_true(t->nbytes == t->numel * sl_dtype_size(t->dtype));
            }
            sl_safetensors_close(st);
        } else if (status != SL_ERR_FORMAT || !strstr(sl_error_message(), "fuzz.safetensors")) {
            fail_msg("iteration %d: status %d, \"%s\" (seed %llu)", iter, status,
                     sl_error_message(), (unsigned long long)seed);
        }
    }
    free(copy);
    free(bytes);
}

/* ---- atomic writes ---- */

static sl_status failing_write(FILE *f, void *ctx) {
    (void)ctx;
    fputs("partial", f);
    return sl_error_set(SL_ERR_NUMERIC, "the producer gave up");
}

static void test_atomic_write_replaces_the_file_and_leaves_no_temporary(void **state) {
    const char *dir = *state;
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const int64_t shape[1] = {1};
    const float one = 1.0f, two = 2.0f;
    for (int round = 0; round < 2; round++) {
        sl_safetensors_writer *w;
        assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
        assert_int_equal(sl_safetensors_writer_add(w, round ? "second" : "first", SL_DTYPE_F32,
                                                   shape, 1, round ? &two : &one),
                         SL_OK);
        assert_int_equal(sl_safetensors_writer_write(w, path), SL_OK);
        sl_safetensors_writer_destroy(w);
    }
    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open(path, &st), SL_OK);
    assert_int_equal(sl_safetensors_count(st), 1);
    assert_string_equal(sl_safetensors_at(st, 0)->name, "second");
    sl_safetensors_close(st);
    char listing[512];
    list_dir(dir, listing, sizeof listing);
    assert_string_equal(listing, "model.safetensors ");

    /* A producer that fails leaves the previous file untouched and no temporary behind. */
    assert_int_equal(sl_file_write_atomic(path, failing_write, NULL), SL_ERR_NUMERIC);
    assert_string_equal(sl_error_message(), "the producer gave up");
    assert_int_equal(sl_safetensors_open(path, &st), SL_OK);
    assert_string_equal(sl_safetensors_at(st, 0)->name, "second");
    sl_safetensors_close(st);
    list_dir(dir, listing, sizeof listing);
    assert_string_equal(listing, "model.safetensors ");

    /* A missing directory is an I/O error that names the path. */
    char missing[1100];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.safetensors", dir);
    sl_safetensors_writer *w;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    assert_int_equal(sl_safetensors_writer_write(w, missing), SL_ERR_IO);
    assert_non_null(strstr(sl_error_message(), "no/such/dir/x.safetensors"));
    sl_safetensors_writer_destroy(w);
    list_dir(dir, listing, sizeof listing);
    assert_string_equal(listing, "model.safetensors ");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_dtype_round_trips_byte_exactly_in_order_added,
                                        make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_file_bytes_match_the_reference_layout, make_dir,
                                        remove_dir),
        cmocka_unit_test_setup_teardown(test_metadata_round_trips_in_order_with_replacement,
                                        make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_f32_sources_are_stored_rounded_and_read_back_as_f32,
                                        make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_reader_lookup_errors_name_file_and_tensor, make_dir,
                                        remove_dir),
        cmocka_unit_test(test_writer_rejects_bad_tensors_by_name),
        cmocka_unit_test(test_rejects_files_too_short_or_with_bad_header_length),
        cmocka_unit_test(test_rejects_headers_that_are_not_a_json_object),
        cmocka_unit_test(test_rejects_bad_dtype_shape_and_offsets_naming_the_tensor),
        cmocka_unit_test(test_rejects_overlaps_gaps_and_trailing_bytes),
        cmocka_unit_test(test_rejects_metadata_that_is_not_string_to_string),
        cmocka_unit_test_setup_teardown(test_every_truncation_is_rejected_without_crashing,
                                        make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_corrupted_bytes_never_crash, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_atomic_write_replaces_the_file_and_leaves_no_temporary,
                                        make_dir, remove_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
