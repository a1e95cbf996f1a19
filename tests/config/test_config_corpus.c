/* Malformed config files never crash the reader: every file of tests/config/corpus (truncated,
 * wrong types, duplicate keys, deep nesting, huge numbers, non-UTF-8, aliases, tags, ...) is an
 * error that names the file, and every prefix and byte-flipped variant of the example configs
 * either loads or fails with a message. Run it under the sanitizer build too (make asan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config_tree.h"
#include "common/fileio.h"
#include "shardlab/log.h"
#include "tests/config/config_harness.h"
#include "tests/support/support.h"

#define CORPUS SL_SOURCE_DIR "/tests/config/corpus"
#define EXAMPLES SL_SOURCE_DIR "/examples/configs"

static int ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static void test_every_corpus_file_is_an_error_naming_the_file(void **state) {
    (void)state;
    DIR *dir = opendir(CORPUS);
    assert_non_null(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.') continue;
        char flags[1200];
        snprintf(flags, sizeof flags, "%s--config_file %s/%s",
                 ends_with(e->d_name, ".json") ? "--use_deepspeed " : "", CORPUS, e->d_name);
        sl_plan *plan = NULL;
        const sl_status st = harness_plan(flags, &plan);
        sl_plan_destroy(plan);
        if (st == SL_OK) fail_msg("%s loaded and compiled; it should not", e->d_name);
        if (st != SL_ERR_CONFIG && st != SL_ERR_FORMAT && st != SL_ERR_IO) {
            fail_msg("%s: %s (%s)", e->d_name, sl_status_name(st), sl_error_message());
        }
        if (!strstr(sl_error_message(), e->d_name)) {
            fail_msg("%s: the message does not name the file: %s", e->d_name, sl_error_message());
        }
        n++;
    }
    closedir(dir);
    assert_true(n >= 40);
}

/* The reader's guards by name: depth, aliases and duplicate keys each get their own message. */
static void test_guards_say_what_they_refused(void **state) {
    (void)state;
    static const struct {
        const char *file, *needle;
    } cases[] = {{"deep_nesting_flow.yaml", "nesting deeper than 64 levels"},
                 {"deep_nesting_block.yaml", "nesting deeper than 64 levels"},
                 {"alias_bomb.yaml", "anchors and aliases"},
                 {"duplicate_key.yaml", "duplicate key 'mixed_precision' (first at line 2)"},
                 {"duplicate_key.json", "duplicate"},
                 {"python_tag.yaml", "tags"},
                 {"two_documents.yaml", "second YAML document"},
                 {"non_utf8_value.yaml", "not UTF-8"},
                 {"huge_number.yaml", "num_processes"},
                 {"huge_integer.json", "gradient_accumulation_steps"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char flags[1200];
        snprintf(flags, sizeof flags, "--config_file %s/%s", CORPUS, cases[i].file);
        sl_config *cfg = NULL;
        const sl_status st = harness_config(flags, &cfg);
        sl_config_destroy(cfg);
        if (st == SL_OK) fail_msg("%s loaded", cases[i].file);
        sl_ts_expect(sl_error_message(), cases[i].needle);
    }
}

/* Loads `len` bytes as a config (format from the name) and checks that a failure says why. */
static void load_variant(const char *name, const char *text, size_t len, unsigned seed) {
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    const sl_status st = sl_config_load_text(cfg, text, len, name, SL_FORMAT_GUESS, NULL);
    if (st != SL_OK && !sl_error_message()[0]) {
        fail_msg("%s (%zu bytes, seed %u): failed without a message", name, len, seed);
    }
    sl_config_destroy(cfg);
}

/* Every prefix of every example, and byte flips at random positions (the seed is printed on a
 * failure). */
static void test_truncated_and_flipped_examples_never_crash(void **state) {
    (void)state;
    DIR *dir = opendir(EXAMPLES);
    assert_non_null(dir);
    const unsigned seed = 20251123u;
    srand(seed);
    for (struct dirent *e; (e = readdir(dir));) {
        if (!ends_with(e->d_name, ".yaml") && !ends_with(e->d_name, ".json")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", EXAMPLES, e->d_name);
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(sl_file_read_all(path, &text, &len), SL_OK);
        for (size_t cut = 0; cut < len; cut++)
            load_variant(e->d_name, text, cut, seed);
        char *copy = malloc(len + 1);
        assert_non_null(copy);
        for (int round = 0; round < 200; round++) {
            memcpy(copy, text, len + 1);
            for (int f = 0; f < 3; f++)
                copy[(size_t)rand() % len] = (char)(rand() % 256);
            load_variant(e->d_name, copy, len, seed);
        }
        free(copy);
        free(text);
    }
    closedir(dir);
}

int main(void) {
    sl_log_set_level(SL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_corpus_file_is_an_error_naming_the_file),
        cmocka_unit_test(test_guards_say_what_they_refused),
        cmocka_unit_test(test_truncated_and_flipped_examples_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
