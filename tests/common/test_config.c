/* The config store, the key vocabulary and the flag parser (include/shardlab/config.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "common/config_internal.h"
#include "shardlab/config.h"

static void assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("expected \"%s\" in: %s", needle, haystack);
}

static sl_config *new_config(void) {
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    return cfg;
}

static const sl_source flag_src = {.kind = SL_SOURCE_FLAG, .spelling = "--zero_stage"};
static const sl_source file_src = {
    .kind = SL_SOURCE_FILE, .file = "ds.json", .line = 4, .spelling = "zero_optimization.stage"};
static const sl_source env_src = {.kind = SL_SOURCE_ENV, .file = "SHARDLAB_ZERO_STAGE"};

static void test_set_then_get_returns_value_and_source(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    assert_int_equal(sl_config_set(cfg, "zero_stage", "3", &file_src), SL_OK);
    const sl_source *src = NULL;
    assert_string_equal(sl_config_get(cfg, "zero_stage", &src), "3");
    assert_int_equal(src->kind, SL_SOURCE_FILE);
    assert_int_equal(src->line, 4);
    assert_null(sl_config_get(cfg, "num_processes", &src));
    assert_null(src);
    sl_config_destroy(cfg);
}

/* FLAG > ENV > FILE > DEFAULT; a lower source never replaces, an equal one does. */
static void test_precedence_flag_beats_env_beats_file(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    const sl_source *src;
    assert_int_equal(sl_config_set(cfg, "zero_stage", "1", &file_src), SL_OK);
    assert_int_equal(sl_config_set(cfg, "zero_stage", "2", &flag_src), SL_OK);
    assert_int_equal(sl_config_set(cfg, "zero_stage", "3", &env_src), SL_OK);
    assert_int_equal(sl_config_set(cfg, "zero_stage", "0", NULL), SL_OK);
    assert_string_equal(sl_config_get(cfg, "zero_stage", &src), "2");
    assert_int_equal(src->kind, SL_SOURCE_FLAG);
    assert_int_equal(sl_config_set(cfg, "zero_stage", "1", &flag_src), SL_OK);
    assert_string_equal(sl_config_get(cfg, "zero_stage", NULL), "1");
    assert_int_equal(sl_config_size(cfg), 1);
    sl_config_destroy(cfg);
}

static void test_source_describe_names_every_kind(void **state) {
    (void)state;
    char buf[512];
    sl_source_describe(&flag_src, buf, sizeof buf);
    assert_string_equal(buf, "--zero_stage");
    sl_source_describe(&file_src, buf, sizeof buf);
    assert_string_equal(buf, "ds.json:4 (zero_optimization.stage)");
    sl_source_describe(&env_src, buf, sizeof buf);
    assert_string_equal(buf, "$SHARDLAB_ZERO_STAGE");
    sl_source_describe(NULL, buf, sizeof buf);
    assert_string_equal(buf, "default");
}

static void test_unknown_key_is_config_error_naming_source_and_suggestion(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    assert_int_equal(sl_config_set(cfg, "zero_stag", "3", &file_src), SL_ERR_CONFIG);
    const char *msg = sl_error_message();
    assert_contains(msg, "'zero_stag'");
    assert_contains(msg, "ds.json:4");
    assert_contains(msg, "did you mean 'zero_stage'");
    assert_int_equal(sl_config_size(cfg), 0);
    sl_config_destroy(cfg);
}

static void test_non_bool_key_without_value_is_an_error(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    assert_int_equal(sl_config_set(cfg, "use_fsdp", NULL, &flag_src), SL_OK);
    assert_string_equal(sl_config_get(cfg, "use_fsdp", NULL), "true");
    assert_int_equal(sl_config_set(cfg, "zero_stage", NULL, &flag_src), SL_ERR_CONFIG);
    assert_contains(sl_error_message(), "zero_stage");
    sl_config_destroy(cfg);
}

static void test_clone_unset_and_entries_keep_insertion_order(void **state) {
    (void)state;
    sl_config *cfg = new_config(), *copy = NULL;
    assert_int_equal(sl_config_set(cfg, "seed", "7", &flag_src), SL_OK);
    assert_int_equal(sl_config_set(cfg, "lr", "0.5", &file_src), SL_OK);
    assert_int_equal(sl_config_set(cfg, "seq_len", "16", &env_src), SL_OK);
    assert_int_equal(sl_config_clone(cfg, &copy), SL_OK);
    sl_config_unset(cfg, "lr");
    assert_int_equal(sl_config_size(cfg), 2);
    const char *value;
    const sl_source *src;
    assert_string_equal(sl_config_entry(cfg, 1, &value, &src), "seq_len");
    assert_int_equal(src->kind, SL_SOURCE_ENV);
    assert_int_equal(sl_config_size(copy), 3);
    assert_string_equal(sl_config_entry(copy, 1, &value, &src), "lr");
    assert_string_equal(value, "0.5");
    assert_int_equal(src->line, 4);
    assert_null(sl_config_entry(copy, 3, &value, &src));
    sl_config_destroy(copy);
    sl_config_destroy(cfg);
}

/* ------------------------------------------------------------------ flags */

static int parse(sl_config *cfg, int argc, const char **argv, char **rest, int *n_rest) {
    return sl_config_parse_args(cfg, argc, (char **)argv, rest, n_rest);
}

static void test_parse_args_key_value_equals_and_bare_bool(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    const char *argv[] = {"--use_deepspeed",        "--zero_stage",    "3",
                          "--mixed_precision=bf16", "--deterministic", "no",
                          "--reduce_scatter",       "--seed=9"};
    char *rest[8];
    int n_rest = -1;
    assert_int_equal(parse(cfg, 8, argv, rest, &n_rest), SL_OK);
    assert_int_equal(n_rest, 0);
    assert_string_equal(sl_config_get(cfg, "use_deepspeed", NULL), "true");
    assert_string_equal(sl_config_get(cfg, "zero_stage", NULL), "3");
    assert_string_equal(sl_config_get(cfg, "mixed_precision", NULL), "bf16");
    assert_string_equal(sl_config_get(cfg, "deterministic", NULL), "no");
    assert_string_equal(sl_config_get(cfg, "reduce_scatter", NULL), "true");
    const sl_source *src;
    assert_string_equal(sl_config_get(cfg, "seed", &src), "9");
    assert_int_equal(src->kind, SL_SOURCE_FLAG);
    assert_string_equal(src->spelling, "--seed");
    sl_config_destroy(cfg);
}

/* A bool flag takes the next argument only when it is a truth value. */
static void test_parse_args_bool_accepts_truth_words_only(void **state) {
    (void)state;
    const char *words[] = {"true", "false", "yes", "no", "1", "0"};
    for (int i = 0; i < 6; i++) {
        sl_config *cfg = new_config();
        const char *argv[] = {"--use_fsdp", words[i], "train.py"};
        char *rest[3];
        int n_rest;
        assert_int_equal(parse(cfg, 3, argv, rest, &n_rest), SL_OK);
        assert_string_equal(sl_config_get(cfg, "use_fsdp", NULL), words[i]);
        assert_int_equal(n_rest, 1);
        assert_string_equal(rest[0], "train.py");
        sl_config_destroy(cfg);
    }
    sl_config *cfg = new_config();
    const char *argv[] = {"--use_fsdp", "train.py"};
    char *rest[2];
    int n_rest;
    assert_int_equal(parse(cfg, 2, argv, rest, &n_rest), SL_OK);
    assert_string_equal(sl_config_get(cfg, "use_fsdp", NULL), "true");
    assert_int_equal(n_rest, 1);
    sl_config_destroy(cfg);
}

static void test_parse_args_passes_unknown_arguments_through_in_order(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    const char *argv[] = {"--model", "gpt-tiny", "--num_processes", "4",
                          "--json",  "--",       "--zero_stage",    "3"};
    char *rest[8];
    int n_rest;
    assert_int_equal(parse(cfg, 8, argv, rest, &n_rest), SL_OK);
    assert_string_equal(sl_config_get(cfg, "num_processes", NULL), "4");
    assert_null(sl_config_get(cfg, "zero_stage", NULL)); /* after "--": not a plan flag */
    assert_int_equal(n_rest, 6);
    const char *expected[] = {"--model", "gpt-tiny", "--json", "--", "--zero_stage", "3"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(rest[i], expected[i]);
    sl_config_destroy(cfg);
}

static void test_parse_args_accepts_dashed_spelling(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    const char *argv[] = {"--fsdp-sharding-strategy", "SHARD_GRAD_OP"};
    char *rest[2];
    int n_rest;
    const sl_source *src;
    assert_int_equal(parse(cfg, 2, argv, rest, &n_rest), SL_OK);
    assert_string_equal(sl_config_get(cfg, "fsdp_sharding_strategy", &src), "SHARD_GRAD_OP");
    assert_string_equal(src->spelling, "--fsdp-sharding-strategy");
    sl_config_destroy(cfg);
}

static void test_parse_args_missing_value_names_the_flag(void **state) {
    (void)state;
    const char *argvs[2][2] = {{"--seq_len", NULL}, {"--num_processes", "--use_fsdp"}};
    const int argcs[2] = {1, 2};
    for (int i = 0; i < 2; i++) {
        sl_config *cfg = new_config();
        char *rest[2];
        int n_rest;
        assert_int_equal(parse(cfg, argcs[i], argvs[i], rest, &n_rest), SL_ERR_CONFIG);
        assert_contains(sl_error_message(), argvs[i][0]);
        assert_contains(sl_error_message(), "needs a value");
        sl_config_destroy(cfg);
    }
}

/* ------------------------------------------------------------------ typed reads */

static void test_get_bool_parses_and_rejects_with_key_and_source(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    bool b = true;
    assert_int_equal(sl_config_get_bool(cfg, "deterministic", true, &b), SL_OK);
    assert_true(b);
    assert_int_equal(sl_config_set(cfg, "deterministic", "OFF", &flag_src), SL_OK);
    assert_int_equal(sl_config_get_bool(cfg, "deterministic", true, &b), SL_OK);
    assert_false(b);
    const sl_source src = {.kind = SL_SOURCE_FLAG, .spelling = "--deterministic"};
    assert_int_equal(sl_config_set(cfg, "deterministic", "maybe", &src), SL_OK);
    assert_int_equal(sl_config_get_bool(cfg, "deterministic", true, &b), SL_ERR_CONFIG);
    assert_contains(sl_error_message(), "deterministic (from --deterministic)");
    assert_contains(sl_error_message(), "'maybe'");
    sl_config_destroy(cfg);
}

static void test_get_int_checks_syntax_and_range(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    long long v = 0;
    assert_int_equal(sl_config_get_int(cfg, "seq_len", 64, 1, 100, &v), SL_OK);
    assert_int_equal(v, 64);
    /* DeepSpeed JSON writes thresholds like 1e5 */
    assert_int_equal(sl_config_set(cfg, "stage3_param_persistence_threshold", "1e5", &file_src),
                     SL_OK);
    assert_int_equal(
        sl_config_get_int(cfg, "stage3_param_persistence_threshold", 0, 0, 1 << 30, &v), SL_OK);
    assert_int_equal(v, 100000);
    assert_int_equal(sl_config_set(cfg, "seq_len", "2.5", &flag_src), SL_OK);
    assert_int_equal(sl_config_get_int(cfg, "seq_len", 64, 1, 100, &v), SL_ERR_CONFIG);
    assert_contains(sl_error_message(), "seq_len");
    assert_contains(sl_error_message(), "'2.5'");
    assert_int_equal(sl_config_set(cfg, "seq_len", "101", &flag_src), SL_OK);
    assert_int_equal(sl_config_get_int(cfg, "seq_len", 64, 1, 100, &v), SL_ERR_CONFIG);
    assert_contains(sl_error_message(), "[1, 100]");
    assert_contains(sl_error_message(), "101");
    sl_config_destroy(cfg);
}

static void test_get_double_rejects_garbage_and_out_of_range(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    double d;
    const sl_source lr_src = {.kind = SL_SOURCE_FLAG, .spelling = "--lr"};
    assert_int_equal(sl_config_set(cfg, "lr", "3e-4", &lr_src), SL_OK);
    assert_int_equal(sl_config_get_double(cfg, "lr", 1e-3, 0, 1, &d), SL_OK);
    assert_true(d == 3e-4);
    assert_int_equal(sl_config_set(cfg, "lr", "fast", &lr_src), SL_OK);
    assert_int_equal(sl_config_get_double(cfg, "lr", 1e-3, 0, 1, &d), SL_ERR_CONFIG);
    assert_contains(sl_error_message(), "lr (from --lr)");
    assert_contains(sl_error_message(), "'fast'");
    assert_int_equal(sl_config_set(cfg, "lr", "-1", &lr_src), SL_OK);
    assert_int_equal(sl_config_get_double(cfg, "lr", 1e-3, 0, 1, &d), SL_ERR_CONFIG);
    assert_contains(sl_error_message(), "[0, 1]");
    assert_int_equal(sl_config_set(cfg, "lr", "nan", &lr_src), SL_OK);
    assert_int_equal(sl_config_get_double(cfg, "lr", 1e-3, 0, 1, &d), SL_ERR_CONFIG);
    sl_config_destroy(cfg);
}

/* Accelerate maps torch's enum values 1-5 onto the names; names ignore case. */
static void test_get_enum_resolves_aliases_and_case(void **state) {
    (void)state;
    struct {
        const char *key, *text, *canonical;
    } cases[] = {{"fsdp_sharding_strategy", "1", "FULL_SHARD"},
                 {"fsdp_sharding_strategy", "5", "HYBRID_SHARD_ZERO2"},
                 {"fsdp_sharding_strategy", "shard_grad_op", "SHARD_GRAD_OP"},
                 {"fsdp_backward_prefetch", "2", "BACKWARD_POST"},
                 {"load_dtype", "bfloat16", "bf16"},
                 {"communication_data_type", "float32", "fp32"},
                 {"fsdp_upcast_sharded_params", "false", "off"},
                 {"mixed_precision", "BF16", "bf16"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_config *cfg = new_config();
        assert_int_equal(sl_config_set(cfg, cases[i].key, cases[i].text, &flag_src), SL_OK);
        const char *out = NULL;
        assert_int_equal(sl_config_get_enum(cfg, cases[i].key, NULL, &out), SL_OK);
        assert_string_equal(out, cases[i].canonical);
        sl_config_destroy(cfg);
    }
}

static void test_get_enum_error_lists_allowed_values(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    const sl_source src = {.kind = SL_SOURCE_FLAG, .spelling = "--fsdp_sharding_strategy"};
    assert_int_equal(sl_config_set(cfg, "fsdp_sharding_strategy", "FULL_SHRD", &src), SL_OK);
    const char *out;
    assert_int_equal(sl_config_get_enum(cfg, "fsdp_sharding_strategy", "FULL_SHARD", &out),
                     SL_ERR_CONFIG);
    const char *msg = sl_error_message();
    assert_contains(msg, "fsdp_sharding_strategy (from --fsdp_sharding_strategy)");
    assert_contains(msg, "'FULL_SHRD'");
    assert_contains(msg, "FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, HYBRID_SHARD, HYBRID_SHARD_ZERO2");
    assert_contains(msg, "1=FULL_SHARD");
    sl_config_destroy(cfg);
}

static void test_typed_read_of_wrong_type_is_invalid_arg(void **state) {
    (void)state;
    sl_config *cfg = new_config();
    bool b;
    assert_int_equal(sl_config_get_bool(cfg, "zero_stage", false, &b), SL_ERR_INVALID_ARG);
    assert_contains(sl_error_message(), "zero_stage");
    assert_int_equal(sl_config_get_bool(cfg, "no_such_key", false, &b), SL_ERR_INVALID_ARG);
    sl_config_destroy(cfg);
}

/* ------------------------------------------------------------------ the table */

/* Every row is usable: unique names, enum rows list values, aliases point at allowed values,
 * and every default reads back through the typed parser of its key. */
static void test_key_table_rows_are_consistent(void **state) {
    (void)state;
    assert_true(sl_config_key_count() >= 46);
    for (size_t i = 0; i < sl_config_key_count(); i++) {
        const sl_config_key *k = sl_config_key_at(i);
        assert_non_null(k->help);
        assert_ptr_equal(sl_config_key_find(k->name), k);
        for (size_t j = i + 1; j < sl_config_key_count(); j++) {
            if (!strcmp(k->name, sl_config_key_at(j)->name)) fail_msg("duplicate key %s", k->name);
        }
        if (k->type == SL_KEY_ENUM) {
            assert_non_null(k->allowed);
            for (const char *const *a = k->aliases; a && *a; a++) {
                const char *target = strchr(*a, '=');
                assert_non_null(target);
                if (!sl_config_key_resolve_enum(k, target + 1)) {
                    fail_msg("%s: alias %s targets no allowed value", k->name, *a);
                }
            }
        }
        const char *dflt = sl_config_key_default(k);
        if (!dflt) continue;
        sl_config *cfg = new_config();
        assert_int_equal(sl_config_set(cfg, k->name, dflt, NULL), SL_OK);
        bool b;
        long long n;
        double d;
        const char *e;
        sl_status st = SL_OK;
        switch (k->type) {
        case SL_KEY_BOOL: st = sl_config_get_bool(cfg, k->name, false, &b); break;
        case SL_KEY_INT: st = sl_config_get_int(cfg, k->name, 0, 0, INT64_MAX, &n); break;
        case SL_KEY_FLOAT: st = sl_config_get_double(cfg, k->name, 0, 0, 1e300, &d); break;
        case SL_KEY_ENUM: st = sl_config_get_enum(cfg, k->name, NULL, &e); break;
        case SL_KEY_STRING: break;
        }
        if (st != SL_OK) fail_msg("default of %s does not parse: %s", k->name, sl_error_message());
        sl_config_destroy(cfg);
    }
    assert_null(sl_config_key_at(sl_config_key_count()));
}

/* The launch vocabulary is all there. */
static void test_key_table_has_accelerate_launch_flags(void **state) {
    (void)state;
    const char *names[] = {"use_fsdp",
                           "fsdp_version",
                           "fsdp_sharding_strategy",
                           "fsdp_use_orig_params",
                           "fsdp_reshard_after_forward",
                           "fsdp_upcast_sharded_params",
                           "use_deepspeed",
                           "zero_stage",
                           "communication_data_type",
                           "grad_accum_dtype",
                           "gradient_clipping",
                           "mixed_precision",
                           "load_dtype",
                           "num_processes",
                           "num_machines",
                           "gradient_accumulation_steps",
                           "loss_normalization",
                           "deterministic",
                           "micro_batch_size",
                           "seq_len",
                           "max_steps",
                           "seed",
                           "lr",
                           "weight_decay",
                           "adam_beta1",
                           "adam_beta2",
                           "adam_epsilon",
                           "lr_scheduler",
                           "warmup_steps",
                           "min_lr_ratio",
                           "max_grad_norm",
                           "fsdp_forward_prefetch",
                           "fsdp_backward_prefetch",
                           "fsdp_limit_all_gathers",
                           "fsdp_offload_params",
                           "offload_optimizer_device",
                           "offload_param_device",
                           "stage3_param_persistence_threshold",
                           "loss_scale",
                           "initial_scale_power",
                           "loss_scale_window",
                           "hysteresis",
                           "consecutive_hysteresis",
                           "min_loss_scale",
                           "reduce_scatter"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!sl_config_key_find(names[i])) fail_msg("missing key %s", names[i]);
    }
    assert_string_equal(sl_config_key_default(sl_config_key_find("micro_batch_size")), "4");
    assert_string_equal(sl_config_key_default(sl_config_key_find("gradient_clipping")), "1.0");
    assert_string_equal(sl_config_key_default(sl_config_key_find("loss_normalization")),
                        "global_tokens");
    assert_null(sl_config_key_default(sl_config_key_find("weight_decay"))); /* per dialect */
}

static void test_suggest_finds_typos_and_substrings(void **state) {
    (void)state;
    assert_string_equal(sl_config_key_suggest("zero_stag"), "zero_stage");
    assert_string_equal(sl_config_key_suggest("mixed_precison"), "mixed_precision");
    assert_string_equal(sl_config_key_suggest("num-proceses"), "num_processes");
    assert_string_equal(sl_config_key_suggest("sharding_strategy"), "fsdp_sharding_strategy");
    assert_null(sl_config_key_suggest("xyzzy"));
    const char *extra[] = {"json", "model", NULL};
    assert_string_equal(sl_config_suggest("jsno", extra), "json");
}

static void test_unknown_arg_names_command_and_suggests_its_flags(void **state) {
    (void)state;
    const char *flags[] = {"json", "model", NULL};
    assert_int_equal(sl_config_unknown_arg("explain", "--jsn", flags), SL_ERR_CONFIG);
    assert_contains(sl_error_message(), "unknown option '--jsn' for 'shardlab explain'");
    assert_contains(sl_error_message(), "did you mean '--json'");
    assert_int_equal(sl_config_unknown_arg("explain", "--zero_stagee=3", flags), SL_ERR_CONFIG);
    assert_contains(sl_error_message(), "'--zero_stagee'");
    assert_contains(sl_error_message(), "'--zero_stage'");
    assert_int_equal(sl_config_unknown_arg("explain", "stray", flags), SL_ERR_CONFIG);
    assert_contains(sl_error_message(), "unexpected argument 'stray'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_then_get_returns_value_and_source),
        cmocka_unit_test(test_precedence_flag_beats_env_beats_file),
        cmocka_unit_test(test_source_describe_names_every_kind),
        cmocka_unit_test(test_unknown_key_is_config_error_naming_source_and_suggestion),
        cmocka_unit_test(test_non_bool_key_without_value_is_an_error),
        cmocka_unit_test(test_clone_unset_and_entries_keep_insertion_order),
        cmocka_unit_test(test_parse_args_key_value_equals_and_bare_bool),
        cmocka_unit_test(test_parse_args_bool_accepts_truth_words_only),
        cmocka_unit_test(test_parse_args_passes_unknown_arguments_through_in_order),
        cmocka_unit_test(test_parse_args_accepts_dashed_spelling),
        cmocka_unit_test(test_parse_args_missing_value_names_the_flag),
        cmocka_unit_test(test_get_bool_parses_and_rejects_with_key_and_source),
        cmocka_unit_test(test_get_int_checks_syntax_and_range),
        cmocka_unit_test(test_get_double_rejects_garbage_and_out_of_range),
        cmocka_unit_test(test_get_enum_resolves_aliases_and_case),
        cmocka_unit_test(test_get_enum_error_lists_allowed_values),
        cmocka_unit_test(test_typed_read_of_wrong_type_is_invalid_arg),
        cmocka_unit_test(test_key_table_rows_are_consistent),
        cmocka_unit_test(test_key_table_has_accelerate_launch_flags),
        cmocka_unit_test(test_suggest_finds_typos_and_substrings),
        cmocka_unit_test(test_unknown_arg_names_command_and_suggests_its_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
