/* `shardlab compare` and its ablation: identical configs agree exactly and differ in no field; a
 * single differing field gets the whole divergence; fields are grouped into knobs as promised;
 * bad sides are errors naming the file or key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/ablate.h"
#include "conformance/compare.h"
#include "conformance/compare_ablate.h"
#include "conformance/compare_side.h"
#include "tests/support/support.h"

/* A run of shardlab past this is a hang (a W = 2 compare of gpt-tiny takes seconds). */
#define SL_RUN_LIMIT_S 300.0

#define TINY "--micro_batch_size 2 --seq_len 32 --num_processes 2"

static sl_model_desc *tiny_model(void) {
    sl_gpt2_config c;
    assert_int_equal(sl_gpt2_config_from_name("gpt-tiny", &c), SL_OK);
    sl_model_desc *m = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&c, &m), SL_OK);
    return m;
}

/* The engine trains both sides under `shardlab launch`; the same config twice, deterministic
 * reductions and the same seed must give bit-identical runs. */
static void test_compare_identical_configs_report_zero_divergence_and_no_fields(void **state) {
    (void)state;
    char dir[512];
    sl_ts_mkdtemp("test-compare", dir, sizeof dir);
    char args[2048];
    snprintf(args, sizeof args,
             "compare " SL_SOURCE_DIR "/examples/configs/deepspeed_zero1_fp16.yaml " SL_SOURCE_DIR
             "/examples/configs/deepspeed_zero1_fp16.yaml --steps 3 --num_processes 2 --out %s",
             dir);
    char *out = NULL;
    const int status = sl_ts_shardlab(args, NULL, SL_RUN_LIMIT_S, &out);
    if (status != 0) {
        print_error("compare failed:\n%s", out);
        free(out);
        fail();
    }
    sl_ts_expect(out, "plan fields that differ: none");
    sl_ts_expect(out, "max relative loss divergence 0;");
    sl_ts_expect(out, "||thetaA - thetaB|| / ||thetaB|| = 0\n");
    sl_ts_expect(out, "engine (shardlab launch");
    char path[1024];
    snprintf(path, sizeof path, "%s/compare.txt", dir);
    char *saved = sl_ts_read_or_fail(path);
    sl_ts_expect(saved, "plan fields that differ: none");
    free(saved);
    sl_ts_rmtree(dir);
    free(out);
}

static void open_side(sl_compare_side *s, char name, const char *flags, const sl_model_desc *m) {
    if (sl_compare_side_open(s, name, flags, "--max_steps 4 --seed 7 " TINY, m) != SL_OK)
        fail_msg("side %c '%s': %s", name, flags, sl_error_message());
}

/* With one differing knob, A with that knob switched is B's plan exactly, so the run equals B's
 * bit for bit and the share is 1 up to the f64 arithmetic of the share itself. */
static void check_single_knob(const char *a, const char *b, const char *knob) {
    sl_model_desc *m = tiny_model();
    sl_compare_side sa, sb;
    open_side(&sa, 'A', a, m);
    open_side(&sb, 'B', b, m);
    const sl_compare_run_opts ro = {.sampling = SL_SAMPLE_PACKED};
    sl_ablation ab;
    if (sl_ablation_run(sa.cfg, sb.cfg, m, &ro, true, &ab) != SL_OK)
        fail_msg("ablation: %s", sl_error_message());
    /* the knob, and at most the derived entry (predicted memory follows the dtypes) */
    assert_true(ab.n_rows == 1 || (ab.n_rows == 2 && ab.rows[1].knob.kind == SL_KNOB_DERIVED));
    const sl_ablation_row *row = &ab.rows[0];
    assert_string_equal(row->knob.name, knob);
    assert_true(row->ran);
    assert_true(ab.param_div > 0);
    print_message("%s: loss share %.17g, param share %.17g\n", knob, row->loss_share,
                  row->param_share);
    assert_true(fabs(row->loss_share - 1.0) < 1e-12);
    assert_true(fabs(row->param_share - 1.0) < 1e-12);
    assert_true(fabs(ab.remainder_param) < 1e-12);
    assert_true(row->param_div_to_b == 0.0);
    sl_ablation_free(&ab);
    sl_compare_side_close(&sa);
    sl_compare_side_close(&sb);
    sl_model_desc_destroy(m);
}

static void test_ablation_attributes_all_to_the_one_differing_field(void **state) {
    (void)state;
    check_single_knob("--use_deepspeed --zero_stage 2 --weight_decay 0.0",
                      "--use_deepspeed --zero_stage 2 --weight_decay 0.1", "optim.weight_decay");
}

/* upcast off vs auto moves master_dtype, optim_dtype and upcast_sharded_params: one knob. */
static void test_ablation_switches_master_dtype_with_its_companions(void **state) {
    (void)state;
    check_single_knob("--use_fsdp --load_dtype bf16 --mixed_precision bf16 "
                      "--fsdp_upcast_sharded_params off",
                      "--use_fsdp --load_dtype bf16 --mixed_precision bf16 "
                      "--fsdp_upcast_sharded_params auto",
                      "precision.master_dtype");
}

static const sl_knob *find_knob(const sl_knob *k, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k[i].name, name)) return &k[i];
    fail_msg("no knob %s", name);
    return NULL;
}

static void test_knobs_group_structure_and_derived_fields(void **state) {
    (void)state;
    sl_model_desc *m = tiny_model();
    sl_compare_side sa, sb;
    open_side(&sa, 'A', "--use_fsdp --mixed_precision bf16", m);
    open_side(&sb, 'B', "--use_deepspeed --zero_stage 3 --mixed_precision bf16", m);
    sl_knob k[SL_ABLATE_MAX_KNOBS];
    const size_t n = sl_ablate_knobs(sa.plan, sb.plan, k, SL_ABLATE_MAX_KNOBS);
    const sl_knob *mi = find_knob(k, n, "precision.master_init");
    assert_int_equal(mi->kind, SL_KNOB_SWITCH);
    assert_string_equal(mi->a, "EXACT");
    assert_string_equal(mi->b, "ROUNDED");
    assert_int_equal(find_knob(k, n, "optim.max_grad_norm")->kind, SL_KNOB_SWITCH);
    const sl_knob *st = find_knob(k, n, "structure");
    assert_int_equal(st->kind, SL_KNOB_STRUCTURE);
    assert_non_null(strstr(st->fields, "dialect"));
    assert_non_null(strstr(st->fields, "accum_mode"));
    const sl_knob *d = find_knob(k, n, "derived");
    assert_non_null(strstr(d->fields, "layout.digest"));
    assert_null(strstr(d->fields, "precision."));
    /* applying every SWITCH knob and then the structure leaves no difference but derived ones */
    for (size_t i = 0; i < n; i++)
        if (k[i].kind == SL_KNOB_SWITCH) sl_ablate_apply(sa.plan, sb.plan, &k[i]);
    sl_knob rest[SL_ABLATE_MAX_KNOBS];
    const size_t n_rest = sl_ablate_knobs(sa.plan, sb.plan, rest, SL_ABLATE_MAX_KNOBS);
    for (size_t i = 0; i < n_rest; i++)
        assert_int_not_equal(rest[i].kind, SL_KNOB_SWITCH);
    sl_compare_side_close(&sa);
    sl_compare_side_close(&sb);
    sl_model_desc_destroy(m);
}

static void test_compare_missing_file_names_it(void **state) {
    (void)state;
    sl_compare_opts o = sl_compare_opts_default();
    o.a = "/nonexistent/acc.yaml";
    o.b = "--use_fsdp";
    o.ref_only = true;
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(sl_compare(&o, devnull), SL_ERR_CONFIG);
    fclose(devnull);
    assert_non_null(strstr(sl_error_message(), "/nonexistent/acc.yaml"));
    assert_non_null(strstr(sl_error_message(), "compare: A"));
}

static void test_compare_unknown_config_key_names_file_and_key(void **state) {
    (void)state;
    char dir[512], path[1024];
    sl_ts_mkdtemp("test-compare", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bad.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("distributed_type: FSDP\nnum_processes: 2\nfsdp_config:\n  fsdp_sharding_strateg: "
          "FULL_SHARD\n",
          f);
    fclose(f);
    char args[2048];
    snprintf(args, sizeof args, "compare --use_fsdp %s --ref --steps 2", path);
    char *out = NULL;
    const int status = sl_ts_shardlab(args, NULL, SL_RUN_LIMIT_S, &out);
    assert_int_equal(status, 2);
    sl_ts_expect(out, "compare: B");
    sl_ts_expect(out, "bad.yaml:4");
    sl_ts_expect(out, "fsdp_sharding_strateg");
    free(out);
    sl_ts_rmtree(dir);
}

static void test_compare_unknown_flag_is_refused(void **state) {
    (void)state;
    char *out = NULL;
    const int status =
        sl_ts_shardlab("compare --use_fsdp --use_deepspeed --stpes 3", NULL, SL_RUN_LIMIT_S, &out);
    assert_int_equal(status, 2);
    sl_ts_expect(out, "--stpes");
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_identical_configs_report_zero_divergence_and_no_fields),
        cmocka_unit_test(test_ablation_attributes_all_to_the_one_differing_field),
        cmocka_unit_test(test_ablation_switches_master_dtype_with_its_companions),
        cmocka_unit_test(test_knobs_group_structure_and_derived_fields),
        cmocka_unit_test(test_compare_missing_file_names_it),
        cmocka_unit_test(test_compare_unknown_config_key_names_file_and_key),
        cmocka_unit_test(test_compare_unknown_flag_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
