/* `shardlab explain` as a user runs it ($SHARDLAB_BIN): JSON that parses with the promised keys,
 * the text sections, exit statuses and messages for bad arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "shardlab/observe.h"
#include "tests/support/support.h"

typedef struct run_result {
    int status;
    char *out; /* stdout (+ stderr when merged) */
    size_t len;
} run_result;

/* Runs `shardlab ARGS`; with merge_stderr the output holds both streams. */
static run_result run_shardlab(const char *args, int merge_stderr) {
    const sl_ts_spawn how = {.drop_stderr = !merge_stderr};
    run_result r = {0};
    /* explain answers at once: a minute is a hang */
    r.status = sl_ts_shardlab(args, &how, 60.0, &r.out);
    r.len = strlen(r.out);
    return r;
}

static const sl_json *member(const sl_json *obj, const char *key, sl_json_type type) {
    const sl_json *v = sl_json_get(obj, key);
    if (!v) fail_msg("missing member \"%s\"", key);
    if (sl_json_type_of(v) != type)
        fail_msg("\"%s\" is %s", key, sl_json_type_name(sl_json_type_of(v)));
    return v;
}

static void test_json_has_the_dtype_table_and_plan_sections(void **state) {
    (void)state;
    run_result r = run_shardlab("explain --use_deepspeed --mixed_precision bf16 "
                                "--num_processes 2 --json",
                                0);
    assert_int_equal(r.status, 0);
    sl_json *doc = NULL;
    if (sl_json_parse(r.out, r.len, "explain --json", &doc) != SL_OK) {
        fail_msg("%s", sl_error_message());
    }
    const sl_json *table = member(doc, "dtype_table", SL_JSON_OBJECT);
    const char *expected[SL_STAGE_COUNT] = {"fp32", "fp32", "bf16", "bf16", "fp32"};
    for (int s = 0; s < SL_STAGE_COUNT; s++) {
        const sl_json *v = member(table, sl_stage_key((sl_stage)s), SL_JSON_STRING);
        assert_string_equal(sl_json_string(v), expected[s]);
    }
    const sl_json *precision = member(doc, "precision", SL_JSON_OBJECT);
    const sl_json *master_init = member(precision, "master_init", SL_JSON_OBJECT);
    assert_string_equal(sl_json_string(member(master_init, "value", SL_JSON_STRING)), "ROUNDED");
    sl_ts_expect(sl_json_string(member(master_init, "why", SL_JSON_STRING)), "--mixed_precision");
    const sl_json *layout = member(doc, "layout", SL_JSON_OBJECT);
    assert_string_equal(sl_json_string(member(layout, "kind", SL_JSON_STRING)), "FLAT_GLOBAL");
    const sl_json *buffers = member(layout, "buffers", SL_JSON_ARRAY);
    assert_int_equal(sl_json_count(buffers), 1);
    const sl_json *shards = member(sl_json_at(buffers, 0), "shards", SL_JSON_ARRAY);
    assert_int_equal(sl_json_count(shards), 2);
    const sl_json *schedule = member(doc, "schedule", SL_JSON_ARRAY);
    assert_true(sl_json_count(schedule) >= 2);
    assert_string_equal(sl_json_string(member(sl_json_at(schedule, 0), "op", SL_JSON_STRING)),
                        "all_reduce");
    const sl_json *memory = member(doc, "memory", SL_JSON_ARRAY);
    assert_int_equal(sl_json_count(memory), 2);
    member(member(sl_json_at(memory, 1), "device", SL_JSON_OBJECT), "optim_states", SL_JSON_NUMBER);
    member(doc, "config", SL_JSON_ARRAY);
    sl_json_free(doc);
    free(r.out);
}

/* Every dialect and layout prints a document that parses. */
static void test_json_parses_for_every_layout(void **state) {
    (void)state;
    const char *configs[] = {
        "--num_processes 3",
        "--use_fsdp --num_processes 3 --mixed_precision fp16",
        "--use_fsdp --fsdp_version 2 --num_processes 8 --num_machines 2 "
        "--fsdp_sharding_strategy HYBRID_SHARD",
        "--use_deepspeed --zero_stage 3 --num_processes 5 --gradient_accumulation_steps 2",
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        char args[512];
        snprintf(args, sizeof args, "explain %s --json", configs[i]);
        run_result r = run_shardlab(args, 0);
        assert_int_equal(r.status, 0);
        sl_json *doc = NULL;
        if (sl_json_parse(r.out, r.len, args, &doc) != SL_OK) fail_msg("%s", sl_error_message());
        member(doc, "dtype_table", SL_JSON_OBJECT);
        sl_json_free(doc);
        free(r.out);
    }
}

static void test_text_prints_every_section(void **state) {
    (void)state;
    run_result r = run_shardlab("explain --use_fsdp --mixed_precision bf16 --num_processes 2", 0);
    assert_int_equal(r.status, 0);
    sl_ts_expect(r.out, "preparation (flat/master params)");
    sl_ts_expect(r.out, "gradient reduction");
    sl_ts_expect(r.out, "upcast_sharded_params");
    sl_ts_expect(r.out, "mixed_precision                      bf16           --mixed_precision");
    sl_ts_expect(r.out, "layout FLAT_PER_UNIT");
    sl_ts_expect(r.out, "rank 1: transformer.wte.weight[10304,16384)");
    sl_ts_expect(r.out, "reduce_scatter");
    sl_ts_expect(r.out, "optim_states");
    free(r.out);
}

static void test_config_error_exits_2_naming_the_flag(void **state) {
    (void)state;
    run_result r = run_shardlab("explain --use_fsdp --zero_stage 3", 1);
    assert_int_equal(r.status, 2);
    sl_ts_expect(r.out, "zero_stage (from --zero_stage)");
    free(r.out);
}

static void test_unknown_option_suggests_the_nearest(void **state) {
    (void)state;
    run_result r = run_shardlab("explain --jsn", 1);
    assert_int_equal(r.status, 2);
    sl_ts_expect(r.out, "did you mean '--json'");
    free(r.out);
    r = run_shardlab("explain --mixed_precison bf16", 1);
    assert_int_equal(r.status, 2);
    sl_ts_expect(r.out, "did you mean '--mixed_precision'");
    free(r.out);
    r = run_shardlab("explan", 1);
    assert_int_equal(r.status, 2);
    sl_ts_expect(r.out, "did you mean 'explain'");
    free(r.out);
}

static void test_help_lists_plan_keys(void **state) {
    (void)state;
    run_result r = run_shardlab("explain --help", 0);
    assert_int_equal(r.status, 0);
    sl_ts_expect(r.out, "--fsdp_sharding_strategy");
    sl_ts_expect(r.out, "--json");
    sl_ts_expect(r.out, "--model NAME");
    free(r.out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_has_the_dtype_table_and_plan_sections),
        cmocka_unit_test(test_json_parses_for_every_layout),
        cmocka_unit_test(test_text_prints_every_section),
        cmocka_unit_test(test_config_error_exits_2_naming_the_flag),
        cmocka_unit_test(test_unknown_option_suggests_the_nearest),
        cmocka_unit_test(test_help_lists_plan_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
