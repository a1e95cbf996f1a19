/* Datasets: the embedded default corpus, llm.c .bin token files and raw text files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shardlab/data.h"

/* A scratch path unique to this process: SL_BINARY_DIR/tests/test_data_<pid>_<name>. */
static void scratch_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/tests/test_data_%d_%s", SL_BINARY_DIR, (int)getpid(), name);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* An llm.c token file: header (magic, version, count) then uint16 tokens, little-endian; `extra`
 * bytes of zeros are appended after the tokens. */
static void write_llmc(const char *path, int32_t magic, int32_t version, int32_t count,
                       const uint16_t *tokens, size_t n_tokens, size_t extra) {
    size_t n = 1024 + 2 * n_tokens + extra;
    unsigned char *buf = calloc(n, 1);
    assert_non_null(buf);
    int32_t head[3] = {magic, version, count};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++)
            buf[4 * i + k] = (unsigned char)((uint32_t)head[i] >> (8 * k));
    for (size_t i = 0; i < n_tokens; i++) {
        buf[1024 + 2 * i] = (unsigned char)(tokens[i] & 0xff);
        buf[1024 + 2 * i + 1] = (unsigned char)(tokens[i] >> 8);
    }
    write_bytes(path, buf, n);
    free(buf);
}

static void assert_message_has(const char *needle) {
    const char *msg = sl_error_message();
    if (!strstr(msg, needle)) fail_msg("error message lacks \"%s\": %s", needle, msg);
}

static sl_dataset *open_ok(const char *spec, sl_split split) {
    sl_dataset *ds = NULL;
    sl_status st = sl_dataset_open(spec, split, &ds);
    if (st != SL_OK) fail_msg("opening '%s' failed: %s", spec, sl_error_message());
    return ds;
}

/* ---- the default corpus ---- */

static void test_default_corpus_is_identical_across_opens(void **state) {
    (void)state;
    for (int split = SL_SPLIT_TRAIN; split <= SL_SPLIT_HELDOUT; split++) {
        sl_dataset *a = open_ok("default", (sl_split)split);
        sl_dataset *b = open_ok("default", (sl_split)split);
        assert_int_equal(sl_dataset_num_tokens(a), sl_dataset_num_tokens(b));
        assert_int_equal(sl_dataset_num_documents(a), sl_dataset_num_documents(b));
        assert_memory_equal(sl_dataset_tokens(a), sl_dataset_tokens(b),
                            (size_t)sl_dataset_num_tokens(a) * sizeof(int32_t));
        for (int64_t d = 0; d < sl_dataset_num_documents(a); d++) {
            int64_t sa, la, sb, lb;
            sl_dataset_document(a, d, &sa, &la);
            sl_dataset_document(b, d, &sb, &lb);
            assert_int_equal(sa, sb);
            assert_int_equal(la, lb);
        }
        sl_dataset_destroy(a);
        sl_dataset_destroy(b);
    }
}

static void test_default_splits_are_nonempty_bytes_and_differ(void **state) {
    (void)state;
    sl_dataset *train = open_ok("default", SL_SPLIT_TRAIN);
    sl_dataset *held = open_ok("default", SL_SPLIT_HELDOUT);
    assert_true(sl_dataset_num_tokens(train) >= (1 << 20));
    assert_true(sl_dataset_num_tokens(held) >= (100 << 10));
    assert_true(sl_dataset_num_tokens(held) < sl_dataset_num_tokens(train));
    sl_dataset *both[2] = {train, held};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(sl_dataset_vocab_size(both[k]), 256);
        const int32_t *t = sl_dataset_tokens(both[k]);
        int32_t max = -1;
        for (int64_t i = 0; i < sl_dataset_num_tokens(both[k]); i++) {
            if (t[i] < 0 || t[i] >= 256)
                fail_msg("%s token %lld = %d is not a byte", sl_dataset_name(both[k]), (long long)i,
                         t[i]);
            max = t[i] > max ? t[i] : max;
        }
        assert_int_equal(sl_dataset_max_token(both[k]), max);
        assert_int_equal(sl_dataset_check_vocab(both[k], 256), SL_OK);
    }
    assert_memory_not_equal(sl_dataset_tokens(train), sl_dataset_tokens(held), 4096);
    assert_non_null(strstr(sl_dataset_name(train), "train"));
    assert_non_null(strstr(sl_dataset_name(held), "held-out"));
    sl_dataset_destroy(train);
    sl_dataset_destroy(held);
}

/* FNV-1a of a document's bytes. */
static uint64_t doc_hash(const sl_dataset *ds, int64_t d) {
    int64_t s, n;
    sl_dataset_document(ds, d, &s, &n);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int64_t i = 0; i < n; i++) {
        h ^= (uint64_t)sl_dataset_tokens(ds)[s + i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int doc_equals(const sl_dataset *a, int64_t da, const sl_dataset *b, int64_t db) {
    int64_t sa, la, sb, lb;
    sl_dataset_document(a, da, &sa, &la);
    sl_dataset_document(b, db, &sb, &lb);
    return la == lb && memcmp(sl_dataset_tokens(a) + sa, sl_dataset_tokens(b) + sb,
                              (size_t)la * sizeof(int32_t)) == 0;
}

static void test_default_heldout_lines_never_occur_in_train(void **state) {
    (void)state;
    sl_dataset *train = open_ok("default", SL_SPLIT_TRAIN);
    sl_dataset *held = open_ok("default", SL_SPLIT_HELDOUT);
    int64_t n = sl_dataset_num_documents(train);
    uint64_t *hashes = malloc((size_t)n * sizeof *hashes);
    assert_non_null(hashes);
    for (int64_t d = 0; d < n; d++)
        hashes[d] = doc_hash(train, d);
    qsort(hashes, (size_t)n, sizeof *hashes, cmp_u64);
    for (int64_t d = 0; d < sl_dataset_num_documents(held); d++) {
        uint64_t h = doc_hash(held, d);
        if (!bsearch(&h, hashes, (size_t)n, sizeof *hashes, cmp_u64)) continue;
        /* A hash hit: confirm it is a real duplicate, not a collision. */
        for (int64_t t = 0; t < n; t++)
            if (doc_hash(train, t) == h && doc_equals(train, t, held, d))
                fail_msg("held-out document %lld also occurs in train (document %lld)",
                         (long long)d, (long long)t);
    }
    free(hashes);
    sl_dataset_destroy(train);
    sl_dataset_destroy(held);
}

/* Document d as a NUL-terminated string in buf. */
static const char *doc_text(const sl_dataset *ds, int64_t d, char *buf, size_t cap) {
    int64_t s, n;
    sl_dataset_document(ds, d, &s, &n);
    assert_true((size_t)n < cap);
    for (int64_t i = 0; i < n; i++)
        buf[i] = (char)sl_dataset_tokens(ds)[s + i];
    buf[n] = '\0';
    return buf;
}

static void test_default_documents_are_single_lines_that_fit_gpt_tiny(void **state) {
    (void)state;
    sl_dataset *ds = open_ok("default", SL_SPLIT_ALL);
    char line[256];
    for (int64_t d = 0; d < sl_dataset_num_documents(ds); d++) {
        doc_text(ds, d, line, sizeof line);
        size_t n = strlen(line);
        assert_true(n >= 2);
        if (line[n - 1] != '\n' || memchr(line, '\n', n - 1))
            fail_msg("document %lld is not exactly one line: \"%s\"", (long long)d, line);
        /* gpt-tiny's block size is 64: a whole line fits one documents-mode sample. */
        if (n > 65)
            fail_msg("document %lld has %zu bytes, more than T+1 = 65: \"%s\"", (long long)d, n,
                     line);
    }
    sl_dataset_destroy(ds);
}

static void test_default_arithmetic_and_counting_lines_are_correct(void **state) {
    (void)state;
    sl_dataset *ds = open_ok("default", SL_SPLIT_ALL);
    char line[256];
    int n_add = 0, n_mul = 0, n_count = 0, n_sentence = 0;
    for (int64_t d = 0; d < sl_dataset_num_documents(ds); d++) {
        doc_text(ds, d, line, sizeof line);
        int a, b, c, used = 0;
        if (sscanf(line, "%d+%d=%d\n%n", &a, &b, &c, &used) == 3 && line[used] == '\0') {
            if (a + b != c) fail_msg("document %lld is wrong arithmetic: %s", (long long)d, line);
            n_add++;
        } else if (sscanf(line, "%d*%d=%d\n%n", &a, &b, &c, &used) == 3 && line[used] == '\0') {
            if (a * b != c) fail_msg("document %lld is wrong arithmetic: %s", (long long)d, line);
            n_mul++;
        } else if (strncmp(line, "count ", 6) == 0) {
            char *p = line + 5;
            long prev = -1;
            int terms = 0;
            while (*p == ' ') {
                long v = strtol(p + 1, &p, 10);
                if (prev >= 0 && v != prev + 1)
                    fail_msg("document %lld does not count by one: %s", (long long)d, line);
                prev = v;
                terms++;
            }
            assert_true(terms >= 3);
            assert_string_equal(p, "\n");
            n_count++;
        } else {
            size_t n = strlen(line);
            if (n < 3 || strcmp(line + n - 2, ".\n") != 0)
                fail_msg("document %lld is neither arithmetic, counting nor a sentence: %s",
                         (long long)d, line);
            n_sentence++;
        }
    }
    /* Every kind is present in quantity (weights 6:3:2:9 of 20 over ~40k lines). */
    assert_true(n_add > 1000 && n_mul > 1000 && n_count > 1000 && n_sentence > 1000);
    sl_dataset_destroy(ds);
}

static int is_vowel(char c) {
    return strchr("aeiou", c) != NULL;
}

static void test_default_sentences_use_a_and_an_correctly(void **state) {
    (void)state;
    sl_dataset *ds = open_ok("default", SL_SPLIT_TRAIN);
    char line[256];
    int n_a = 0, n_an = 0;
    for (int64_t d = 0; d < sl_dataset_num_documents(ds); d++) {
        doc_text(ds, d, line, sizeof line);
        for (char *w = strtok(line, " .\n"), *prev = NULL; w; prev = w, w = strtok(NULL, " .\n")) {
            if (!prev) continue;
            if (strcmp(prev, "a") == 0) {
                if (is_vowel(w[0])) fail_msg("document %lld: \"a %s\"", (long long)d, w);
                n_a++;
            } else if (strcmp(prev, "an") == 0) {
                if (!is_vowel(w[0])) fail_msg("document %lld: \"an %s\"", (long long)d, w);
                n_an++;
            }
        }
    }
    assert_true(n_a > 100 && n_an > 100);
    sl_dataset_destroy(ds);
}

static void test_default_all_split_is_train_then_heldout(void **state) {
    (void)state;
    sl_dataset *train = open_ok("default", SL_SPLIT_TRAIN);
    sl_dataset *held = open_ok("default", SL_SPLIT_HELDOUT);
    sl_dataset *all = open_ok("default", SL_SPLIT_ALL);
    int64_t nt = sl_dataset_num_tokens(train), nh = sl_dataset_num_tokens(held);
    assert_int_equal(sl_dataset_num_tokens(all), nt + nh);
    assert_int_equal(sl_dataset_num_documents(all),
                     sl_dataset_num_documents(train) + sl_dataset_num_documents(held));
    assert_memory_equal(sl_dataset_tokens(all), sl_dataset_tokens(train),
                        (size_t)nt * sizeof(int32_t));
    assert_memory_equal(sl_dataset_tokens(all) + nt, sl_dataset_tokens(held),
                        (size_t)nh * sizeof(int32_t));
    sl_dataset_destroy(train);
    sl_dataset_destroy(held);
    sl_dataset_destroy(all);
}

/* ---- llm.c .bin files ---- */

/* 30 documents, each EOT followed by 1..5 tokens, plus 2 tokens before the first EOT. */
static size_t make_gpt2_tokens(uint16_t *t, int64_t *doc_starts, int *n_docs) {
    size_t n = 0;
    int d = 0;
    doc_starts[d++] = 0;
    t[n++] = 464; /* tokens before the first EOT form document 0 */
    t[n++] = 3290;
    for (int k = 0; k < 30; k++) {
        doc_starts[d++] = (int64_t)n;
        t[n++] = SL_GPT2_EOT;
        for (int i = 0; i <= k % 5; i++)
            t[n++] = (uint16_t)(1000 * k + i);
    }
    *n_docs = d;
    return n;
}

static void test_bin_file_loads_tokens_and_splits_at_eot(void **state) {
    (void)state;
    uint16_t tokens[256];
    int64_t starts[64];
    int n_docs;
    size_t n = make_gpt2_tokens(tokens, starts, &n_docs);
    char path[512];
    scratch_path(path, sizeof path, "ok.bin");
    write_llmc(path, SL_LLMC_MAGIC, SL_LLMC_VERSION, (int32_t)n, tokens, n, 0);

    sl_dataset *all = open_ok(path, SL_SPLIT_ALL);
    assert_int_equal(sl_dataset_num_tokens(all), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sl_dataset_tokens(all)[i], tokens[i]);
    assert_int_equal(sl_dataset_num_documents(all), n_docs);
    for (int d = 0; d < n_docs; d++) {
        int64_t s, len;
        sl_dataset_document(all, d, &s, &len);
        assert_int_equal(s, starts[d]);
    }
    assert_int_equal(sl_dataset_vocab_size(all), 50257);
    assert_int_equal(sl_dataset_max_token(all), SL_GPT2_EOT);
    assert_int_equal(sl_dataset_check_vocab(all, 50257), SL_OK);

    /* 31 documents: held-out = the last 31/10 = 3, train = the first 28. */
    sl_dataset *train = open_ok(path, SL_SPLIT_TRAIN);
    sl_dataset *held = open_ok(path, SL_SPLIT_HELDOUT);
    assert_int_equal(sl_dataset_num_documents(train), n_docs - 3);
    assert_int_equal(sl_dataset_num_documents(held), 3);
    int64_t cut = starts[n_docs - 3];
    assert_int_equal(sl_dataset_num_tokens(train), cut);
    assert_int_equal(sl_dataset_num_tokens(held), (int64_t)n - cut);
    assert_int_equal(sl_dataset_tokens(held)[0], SL_GPT2_EOT);
    for (int64_t i = 0; i < (int64_t)n - cut; i++)
        assert_int_equal(sl_dataset_tokens(held)[i], tokens[cut + i]);
    int64_t s, len;
    sl_dataset_document(held, 1, &s, &len);
    assert_int_equal(s, starts[n_docs - 2] - cut);
    sl_dataset_destroy(all);
    sl_dataset_destroy(train);
    sl_dataset_destroy(held);
    unlink(path);
}

static void test_bin_magic_detects_format_without_bin_suffix(void **state) {
    (void)state;
    uint16_t tokens[4] = {1, 2, SL_GPT2_EOT, 3};
    char path[512];
    scratch_path(path, sizeof path, "tokens.dat");
    write_llmc(path, SL_LLMC_MAGIC, SL_LLMC_VERSION, 4, tokens, 4, 0);
    sl_dataset *ds = open_ok(path, SL_SPLIT_ALL);
    assert_int_equal(sl_dataset_num_tokens(ds), 4);
    assert_int_equal(sl_dataset_num_documents(ds), 2);
    assert_int_equal(sl_dataset_vocab_size(ds), 50257);
    sl_dataset_destroy(ds);
    unlink(path);
}

/* Opens `path`, expects SL_ERR_FORMAT whose message names the file and each of `needles`. */
static void expect_format_error(const char *path, const char *const *needles, int n) {
    sl_dataset *ds = (sl_dataset *)1;
    assert_int_equal(sl_dataset_open(path, SL_SPLIT_TRAIN, &ds), SL_ERR_FORMAT);
    assert_null(ds);
    assert_message_has(path);
    for (int i = 0; i < n; i++)
        assert_message_has(needles[i]);
    unlink(path);
}

static void test_bin_rejects_bad_magic_naming_field_expected_and_found(void **state) {
    (void)state;
    uint16_t tokens[8] = {0};
    char path[512];
    scratch_path(path, sizeof path, "magic.bin");
    write_llmc(path, 20240801, 1, 8, tokens, 8, 0);
    const char *needles[] = {"'magic'", "expected 20240520", "found 20240801", "llama-3"};
    expect_format_error(path, needles, 4);
}

static void test_bin_rejects_bad_version_naming_field_expected_and_found(void **state) {
    (void)state;
    uint16_t tokens[8] = {0};
    char path[512];
    scratch_path(path, sizeof path, "version.bin");
    write_llmc(path, SL_LLMC_MAGIC, 7, 8, tokens, 8, 0);
    const char *needles[] = {"'version'", "expected 1", "found 7"};
    expect_format_error(path, needles, 3);
}

static void test_bin_rejects_size_mismatch_naming_count_and_sizes(void **state) {
    (void)state;
    uint16_t tokens[8] = {0};
    char path[512];
    /* Header says 10 tokens, the file holds 8: 1044 bytes expected, 1040 found. */
    scratch_path(path, sizeof path, "short.bin");
    write_llmc(path, SL_LLMC_MAGIC, SL_LLMC_VERSION, 10, tokens, 8, 0);
    const char *short_needles[] = {"'token count'", "1044 bytes", "found 1040"};
    expect_format_error(path, short_needles, 3);
    /* Trailing bytes are as wrong as missing ones. */
    scratch_path(path, sizeof path, "long.bin");
    write_llmc(path, SL_LLMC_MAGIC, SL_LLMC_VERSION, 8, tokens, 8, 2);
    const char *long_needles[] = {"'token count'", "1040 bytes", "found 1042"};
    expect_format_error(path, long_needles, 3);
}

static void test_bin_rejects_zero_token_count(void **state) {
    (void)state;
    char path[512];
    scratch_path(path, sizeof path, "empty.bin");
    write_llmc(path, SL_LLMC_MAGIC, SL_LLMC_VERSION, 0, NULL, 0, 0);
    const char *needles[] = {"'token count'", "expected > 0", "found 0"};
    expect_format_error(path, needles, 3);
}

static void test_bin_rejects_truncated_header(void **state) {
    (void)state;
    unsigned char head[100] = {0};
    head[0] = (unsigned char)(SL_LLMC_MAGIC & 0xff);
    head[1] = (unsigned char)((SL_LLMC_MAGIC >> 8) & 0xff);
    head[2] = (unsigned char)((SL_LLMC_MAGIC >> 16) & 0xff);
    head[3] = (unsigned char)((SL_LLMC_MAGIC >> 24) & 0xff);
    char path[512];
    /* No .bin suffix: recognised by its magic, then found too short. */
    scratch_path(path, sizeof path, "truncated");
    write_bytes(path, head, sizeof head);
    const char *needles[] = {"'header'", "expected 1024 bytes", "found 100 bytes"};
    expect_format_error(path, needles, 3);
}

static void test_check_vocab_names_dataset_and_token(void **state) {
    (void)state;
    uint16_t tokens[3] = {5, SL_GPT2_EOT, 7};
    char path[512];
    scratch_path(path, sizeof path, "vocab.bin");
    write_llmc(path, SL_LLMC_MAGIC, SL_LLMC_VERSION, 3, tokens, 3, 0);
    sl_dataset *ds = open_ok(path, SL_SPLIT_ALL);
    assert_int_equal(sl_dataset_check_vocab(ds, 256), SL_ERR_MISMATCH);
    assert_message_has(path);
    assert_message_has("token id 50256");
    assert_message_has("vocab_size is 256");
    sl_dataset_destroy(ds);
    unlink(path);
}

/* ---- raw text ---- */

static void test_raw_text_is_bytes_with_one_document_per_line(void **state) {
    (void)state;
    char text[1024];
    size_t n = 0;
    for (int i = 0; i < 25; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "line %d%s\n", i, i % 3 ? "" : "!");
    n += (size_t)snprintf(text + n, sizeof text - n, "tail");
    char path[512];
    scratch_path(path, sizeof path, "text.txt");
    write_bytes(path, text, n);

    sl_dataset *all = open_ok(path, SL_SPLIT_ALL);
    assert_int_equal(sl_dataset_vocab_size(all), 256);
    assert_int_equal(sl_dataset_num_tokens(all), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sl_dataset_tokens(all)[i], (unsigned char)text[i]);
    /* 25 lines ending in '\n' plus the unterminated "tail". */
    assert_int_equal(sl_dataset_num_documents(all), 26);
    char buf[64];
    assert_string_equal(doc_text(all, 0, buf, sizeof buf), "line 0!\n");
    assert_string_equal(doc_text(all, 1, buf, sizeof buf), "line 1\n");
    assert_string_equal(doc_text(all, 25, buf, sizeof buf), "tail");

    /* 26 documents: held-out = the last 26/10 = 2. */
    sl_dataset *train = open_ok(path, SL_SPLIT_TRAIN);
    sl_dataset *held = open_ok(path, SL_SPLIT_HELDOUT);
    assert_int_equal(sl_dataset_num_documents(train), 24);
    assert_int_equal(sl_dataset_num_documents(held), 2);
    assert_string_equal(doc_text(held, 0, buf, sizeof buf), "line 24!\n");
    assert_string_equal(doc_text(held, 1, buf, sizeof buf), "tail");
    assert_string_equal(doc_text(train, 23, buf, sizeof buf), "line 23\n");
    assert_int_equal(sl_dataset_num_tokens(train) + sl_dataset_num_tokens(held), n);
    sl_dataset_destroy(all);
    sl_dataset_destroy(train);
    sl_dataset_destroy(held);
    unlink(path);
}

static void test_raw_few_documents_keep_at_least_one_heldout(void **state) {
    (void)state;
    char path[512];
    scratch_path(path, sizeof path, "two.txt");
    write_bytes(path, "ab\ncd\n", 6);
    sl_dataset *train = open_ok(path, SL_SPLIT_TRAIN);
    sl_dataset *held = open_ok(path, SL_SPLIT_HELDOUT);
    char buf[16];
    assert_int_equal(sl_dataset_num_documents(train), 1);
    assert_int_equal(sl_dataset_num_documents(held), 1);
    assert_string_equal(doc_text(train, 0, buf, sizeof buf), "ab\n");
    assert_string_equal(doc_text(held, 0, buf, sizeof buf), "cd\n");
    sl_dataset_destroy(train);
    sl_dataset_destroy(held);
    unlink(path);
}

static void test_single_document_file_splits_by_tokens(void **state) {
    (void)state;
    char text[40];
    memset(text, 'x', sizeof text);
    memcpy(text + 36, "abcd", 4);
    char path[512];
    scratch_path(path, sizeof path, "oneline.txt");
    write_bytes(path, text, sizeof text);
    sl_dataset *train = open_ok(path, SL_SPLIT_TRAIN);
    sl_dataset *held = open_ok(path, SL_SPLIT_HELDOUT);
    /* 40 tokens: held-out = the last 40/10 = 4. */
    assert_int_equal(sl_dataset_num_tokens(train), 36);
    assert_int_equal(sl_dataset_num_tokens(held), 4);
    assert_int_equal(sl_dataset_num_documents(held), 1);
    char buf[8];
    assert_string_equal(doc_text(held, 0, buf, sizeof buf), "abcd");
    sl_dataset_destroy(train);
    sl_dataset_destroy(held);

    write_bytes(path, "x", 1);
    sl_dataset *ds = (sl_dataset *)1;
    assert_int_equal(sl_dataset_open(path, SL_SPLIT_TRAIN, &ds), SL_ERR_INVALID_ARG);
    assert_null(ds);
    assert_message_has(path);
    assert_message_has("single token");
    ds = open_ok(path, SL_SPLIT_ALL);
    assert_int_equal(sl_dataset_num_tokens(ds), 1);
    sl_dataset_destroy(ds);
    unlink(path);
}

static void test_missing_and_empty_files_are_errors_naming_the_path(void **state) {
    (void)state;
    char path[512];
    scratch_path(path, sizeof path, "does-not-exist.txt");
    sl_dataset *ds = (sl_dataset *)1;
    assert_int_equal(sl_dataset_open(path, SL_SPLIT_TRAIN, &ds), SL_ERR_IO);
    assert_null(ds);
    assert_message_has(path);

    scratch_path(path, sizeof path, "empty.txt");
    write_bytes(path, "", 0);
    assert_int_equal(sl_dataset_open(path, SL_SPLIT_TRAIN, &ds), SL_ERR_INVALID_ARG);
    assert_message_has(path);
    assert_message_has("empty");
    unlink(path);
}

/* ---- datasets from memory ---- */

static void test_create_from_tokens_validates_tokens_and_starts(void **state) {
    (void)state;
    int32_t tokens[6] = {1, 2, 3, 4, 5, 6};
    int64_t starts[2] = {0, 4};
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_create_from_tokens("mem", tokens, 6, starts, 2, 7, &ds), SL_OK);
    int64_t s, len;
    sl_dataset_document(ds, 1, &s, &len);
    assert_int_equal(s, 4);
    assert_int_equal(len, 2);
    assert_int_equal(sl_dataset_max_token(ds), 6);
    sl_dataset_destroy(ds);

    assert_int_equal(sl_dataset_create_from_tokens("mem", tokens, 6, starts, 2, 6, &ds),
                     SL_ERR_INVALID_ARG);
    assert_null(ds);
    assert_message_has("'mem'");
    assert_message_has("token 5 is 6");

    int64_t bad_starts[2] = {0, 0};
    assert_int_equal(sl_dataset_create_from_tokens("mem", tokens, 6, bad_starts, 2, 7, &ds),
                     SL_ERR_INVALID_ARG);
    assert_message_has("document 1");
    int64_t late_start[1] = {2};
    assert_int_equal(sl_dataset_create_from_tokens("mem", tokens, 6, late_start, 1, 7, &ds),
                     SL_ERR_INVALID_ARG);
    assert_message_has("document 0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_corpus_is_identical_across_opens),
        cmocka_unit_test(test_default_splits_are_nonempty_bytes_and_differ),
        cmocka_unit_test(test_default_heldout_lines_never_occur_in_train),
        cmocka_unit_test(test_default_documents_are_single_lines_that_fit_gpt_tiny),
        cmocka_unit_test(test_default_arithmetic_and_counting_lines_are_correct),
        cmocka_unit_test(test_default_sentences_use_a_and_an_correctly),
        cmocka_unit_test(test_default_all_split_is_train_then_heldout),
        cmocka_unit_test(test_bin_file_loads_tokens_and_splits_at_eot),
        cmocka_unit_test(test_bin_magic_detects_format_without_bin_suffix),
        cmocka_unit_test(test_bin_rejects_bad_magic_naming_field_expected_and_found),
        cmocka_unit_test(test_bin_rejects_bad_version_naming_field_expected_and_found),
        cmocka_unit_test(test_bin_rejects_size_mismatch_naming_count_and_sizes),
        cmocka_unit_test(test_bin_rejects_zero_token_count),
        cmocka_unit_test(test_bin_rejects_truncated_header),
        cmocka_unit_test(test_check_vocab_names_dataset_and_token),
        cmocka_unit_test(test_raw_text_is_bytes_with_one_document_per_line),
        cmocka_unit_test(test_raw_few_documents_keep_at_least_one_heldout),
        cmocka_unit_test(test_single_document_file_splits_by_tokens),
        cmocka_unit_test(test_missing_and_empty_files_are_errors_naming_the_path),
        cmocka_unit_test(test_create_from_tokens_validates_tokens_and_starts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
