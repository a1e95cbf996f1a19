/* The SHARDLAB_CONFIG_<KEY> encoding that carries a plan from `shardlab launch` to its ranks
 * (shardlab/config_env.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shardlab/config_env.h"

static void test_env_name_upper_cases_the_key(void **state) {
    (void)state;
    char name[64];
    sl_config_env_name("zero_stage", name, sizeof name);
    assert_string_equal(name, "SHARDLAB_CONFIG_ZERO_STAGE");
    sl_config_env_name("fsdp-version", name, sizeof name);
    assert_string_equal(name, "SHARDLAB_CONFIG_FSDP_VERSION");
}

/* Flags exported and read back give the same values, now from the environment; defaults and
 * file entries are not exported (the ranks load the files themselves). */
static void test_export_then_load_round_trips_with_env_sources(void **state) {
    (void)state;
    sl_config *cfg = NULL, *back = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    const sl_source flag = {.kind = SL_SOURCE_FLAG, .spelling = "--zero_stage"};
    const sl_source file = {.kind = SL_SOURCE_FILE, .file = "ds.json", .line = 3};
    const sl_source dflt = {.kind = SL_SOURCE_DEFAULT};
    assert_int_equal(sl_config_set(cfg, "use_deepspeed", "true", &flag), SL_OK);
    assert_int_equal(sl_config_set(cfg, "zero_stage", "3", &flag), SL_OK);
    assert_int_equal(sl_config_set(cfg, "lr", "3e-4", &dflt), SL_OK);
    assert_int_equal(sl_config_set(cfg, "seed", "7", &file), SL_OK);
    char **env = NULL;
    assert_int_equal(sl_config_export_env(cfg, &env), SL_OK);
    assert_string_equal(env[0], "SHARDLAB_CONFIG_USE_DEEPSPEED=true");
    assert_string_equal(env[1], "SHARDLAB_CONFIG_ZERO_STAGE=3");
    assert_null(env[2]);
    char *with_others[] = {"PATH=/bin", env[0], env[1], NULL};
    assert_int_equal(sl_config_create(&back), SL_OK);
    assert_int_equal(sl_config_load_env(back, with_others), SL_OK);
    const sl_source *src = NULL;
    assert_string_equal(sl_config_get(back, "zero_stage", &src), "3");
    assert_int_equal(src->kind, SL_SOURCE_ENV);
    char where[128];
    sl_source_describe(src, where, sizeof where);
    assert_string_equal(where, "$SHARDLAB_CONFIG_ZERO_STAGE");
    assert_string_equal(sl_config_get(back, "use_deepspeed", NULL), "true");
    assert_null(sl_config_get(back, "lr", NULL));
    assert_int_equal(sl_config_size(back), 2);
    sl_config_env_free(env);
    sl_config_destroy(cfg);
    sl_config_destroy(back);
}

/* A config file named by a variable is loaded below the variables: the file's stage yields to
 * SHARDLAB_CONFIG_ZERO_STAGE, its other keys arrive with the file as their source. */
static void test_config_file_variable_is_loaded_below_the_variables(void **state) {
    (void)state;
    char path[] = "/tmp/shardlab-env-ds-XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char json[] = "{\n  \"zero_optimization\": {\"stage\": 3},\n"
                        "  \"gradient_clipping\": 0.5\n}\n";
    assert_int_equal(write(fd, json, sizeof json - 1), (ssize_t)(sizeof json - 1));
    close(fd);
    char var[128];
    snprintf(var, sizeof var, "SHARDLAB_CONFIG_DEEPSPEED_CONFIG_FILE=%s", path);
    char *env[] = {"SHARDLAB_CONFIG_USE_DEEPSPEED=1", "SHARDLAB_CONFIG_ZERO_STAGE=2", var, NULL};
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    const sl_status st = sl_config_load_env(cfg, env);
    unlink(path);
    assert_int_equal(st, SL_OK);
    const sl_source *src = NULL;
    assert_string_equal(sl_config_get(cfg, "zero_stage", &src), "2");
    assert_int_equal(src->kind, SL_SOURCE_ENV);
    const char *clip = sl_config_get(cfg, "gradient_clipping", &src);
    assert_non_null(clip);
    assert_true(strtod(clip, NULL) == 0.5);
    assert_int_equal(src->kind, SL_SOURCE_FILE);
    assert_string_equal(src->file, path);
    sl_config_destroy(cfg);
}

static void test_unknown_variable_is_named_with_a_suggestion(void **state) {
    (void)state;
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    char *env[] = {"SHARDLAB_CONFIG_ZERO_STAEG=3", NULL};
    assert_int_equal(sl_config_load_env(cfg, env), SL_ERR_CONFIG);
    assert_non_null(strstr(sl_error_message(), "$SHARDLAB_CONFIG_ZERO_STAEG"));
    assert_non_null(strstr(sl_error_message(), "did you mean $SHARDLAB_CONFIG_ZERO_STAGE?"));
    sl_config_destroy(cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_name_upper_cases_the_key),
        cmocka_unit_test(test_export_then_load_round_trips_with_env_sources),
        cmocka_unit_test(test_config_file_variable_is_loaded_below_the_variables),
        cmocka_unit_test(test_unknown_variable_is_named_with_a_suggestion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
