/* The export end to end, through the shardlab binary: `train --save_model` writes the final
 * masters (exactly, or rounded to nearest even into the 16-bit dtype the plan names), `train
 * --init_from` an export starts from exactly the saved state, `merge-weights` consolidates a
 * SHARDED checkpoint written by 2 ranks into the same weights, and bad flags are refused by
 * name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/hf_model.h"
#include "common/json.h"
#include "common/param_file.h"
#include "shardlab/safetensors.h"
#include "tests/export/export_helpers.h"

#define TRAIN_FLAGS XH_MODEL_FLAGS " --micro_batch_size 2 --seq_len 16 --seed 5 --quiet"

typedef struct fixture {
    sl_model_desc *desc;
    char dir[256];
    char log[300];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->desc = xh_model();
    sl_ts_mkdtemp("export-train", f->dir, sizeof f->dir);
    snprintf(f->log, sizeof f->log, "%s/log.txt", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    sl_model_desc_destroy(f->desc);
    sl_ts_rmtree(f->dir);
    free(f);
    return 0;
}

/* Runs shardlab with printf-style arguments; fails with its output unless it exits `want`. */
static void run(const fixture *f, int want, const char *fmt, ...) {
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const int rc = xh_shardlab(args, f->log);
    if (rc != want)
        fail_msg("shardlab %s: exit %d, expected %d:\n%s", args, rc, want, xh_slurp(f->log));
}

static void expect_log(const fixture *f, const char *needle) {
    if (!strstr(xh_slurp(f->log), needle))
        fail_msg("output lacks '%s':\n%s", needle, xh_slurp(f->log));
}

static float **read_final(const fixture *f, const char *run_dir) {
    char path[400];
    snprintf(path, sizeof path, "%s/final.safetensors", run_dir);
    return xh_read_file(f->desc, path);
}

static void round_all(const sl_model_desc *desc, float **a, sl_dtype dt) {
    for (int p = 0; p < desc->n_params; p++)
        sl_round_array(a[p], (size_t)desc->params[p].numel, dt);
}

/* Every tensor of every file in the export is stored as dt. */
static void expect_stored_as(const fixture *f, const char *export_dir, sl_dtype dt) {
    sl_hf_model *m = NULL;
    if (sl_hf_model_open(export_dir, f->desc, &m) != SL_OK) fail_msg("%s", sl_error_message());
    for (int p = 0; p < f->desc->n_params; p++) {
        sl_safetensors *st = NULL;
        assert_int_equal(sl_safetensors_open(sl_hf_model_file_of(m, p), &st), SL_OK);
        assert_int_equal(sl_safetensors_find(st, f->desc->params[p].name)->dtype, dt);
        sl_safetensors_close(st);
    }
    sl_hf_model_close(m);
}

static void test_train_save_model_writes_the_final_masters(void **state) {
    fixture *f = *state;
    char out[300], model[400], index[500];
    snprintf(out, sizeof out, "%s/f32", f->dir);
    snprintf(model, sizeof model, "%s/model", out);
    run(f, 0, "train " TRAIN_FLAGS " --steps 2 --out %s --save_model %s --max_shard_size 40KB", out,
        model);
    snprintf(index, sizeof index, "%s/%s", model, SL_HF_INDEX_NAME);
    assert_true(sl_ts_exists(index));
    expect_stored_as(f, model, SL_DTYPE_F32);
    float **final = read_final(f, out);
    float **got = xh_read_export(f->desc, model);
    xh_assert_params_equal(f->desc, got, final, "export vs final.safetensors");
    sl_param_arrays_free(f->desc, got);
    sl_param_arrays_free(f->desc, final);
}

/* --save_16bit: the plan's param dtype when it is 16-bit (fp16 here), bf16 for an fp32 plan. */
static void test_train_save_16bit_is_rne_of_the_masters(void **state) {
    fixture *f = *state;
    const struct {
        const char *flags;
        sl_dtype dt;
        const char *torch_dtype;
    } cases[] = {{"", SL_DTYPE_BF16, "bfloat16"},
                 {"--mixed_precision fp16", SL_DTYPE_F16, "float16"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char out[300], model[400], config[500];
        snprintf(out, sizeof out, "%s/half%zu", f->dir, c);
        snprintf(model, sizeof model, "%s/model", out);
        run(f, 0, "train " TRAIN_FLAGS " %s --steps 2 --out %s --save_model %s --save_16bit",
            cases[c].flags, out, model);
        expect_stored_as(f, model, cases[c].dt);
        snprintf(config, sizeof config, "%s/config.json", model);
        assert_non_null(strstr(xh_slurp(config), cases[c].torch_dtype));
        float **final = read_final(f, out);
        round_all(f->desc, final, cases[c].dt);
        float **got = xh_read_export(f->desc, model);
        xh_assert_params_equal(f->desc, got, final, cases[c].torch_dtype);
        sl_param_arrays_free(f->desc, got);
        sl_param_arrays_free(f->desc, final);
    }
}

static void test_init_from_an_export_starts_from_the_saved_state(void **state) {
    fixture *f = *state;
    char a[300], model[400], half[400], b[300], index[500], init[400];
    snprintf(a, sizeof a, "%s/a", f->dir);
    snprintf(model, sizeof model, "%s/model", a);
    snprintf(half, sizeof half, "%s/model16", a);
    run(f, 0, "train " TRAIN_FLAGS " --steps 2 --out %s --save_model %s --max_shard_size 40KB", a,
        model);
    float **final = read_final(f, a);
    snprintf(index, sizeof index, "%s/%s", model, SL_HF_INDEX_NAME);
    const char *sources[] = {model, index};
    /* the engine and the reference read the same layouts */
    const char *tools[] = {"train", "ref"};
    for (size_t t = 0; t < 2; t++) {
        for (size_t s = 0; s < 2; s++) {
            snprintf(b, sizeof b, "%s/b%zu%zu", f->dir, t, s);
            run(f, 0, "%s " TRAIN_FLAGS " --steps 1 --out %s --init_from %s", tools[t], b,
                sources[s]);
            snprintf(init, sizeof init, "%s/init.safetensors", b);
            float **got = xh_read_file(f->desc, init);
            xh_assert_params_equal(f->desc, got, final, sources[s]);
            sl_param_arrays_free(f->desc, got);
        }
    }
    /* a bf16 export is widened exactly */
    run(f, 0, "train " TRAIN_FLAGS " --steps 2 --out %s --save_model %s --save_16bit", a, half);
    snprintf(b, sizeof b, "%s/b16", f->dir);
    run(f, 0, "train " TRAIN_FLAGS " --steps 1 --out %s --init_from %s", b, half);
    snprintf(init, sizeof init, "%s/init.safetensors", b);
    round_all(f->desc, final, SL_DTYPE_BF16);
    float **got = xh_read_file(f->desc, init);
    xh_assert_params_equal(f->desc, got, final, "bf16 export");
    sl_param_arrays_free(f->desc, got);
    sl_param_arrays_free(f->desc, final);
}

static void test_merge_weights_consolidates_a_sharded_checkpoint(void **state) {
    fixture *f = *state;
    char out[300], ck[300], merged[400], merged16[400], ckpt[400];
    snprintf(out, sizeof out, "%s/w2", f->dir);
    snprintf(ck, sizeof ck, "%s/ck", f->dir);
    run(f, 0,
        "launch --num_processes 2 --use_fsdp --fsdp_sharding_strategy FULL_SHARD %s "
        "train " TRAIN_FLAGS " --steps 2 --out %s --checkpointing_steps 2 --output_dir %s "
        "--state_dict_type SHARDED_STATE_DICT",
        sl_ts_shardlab_bin(), out, ck);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/checkpoint_2", ck);
    snprintf(merged, sizeof merged, "%s/merged", f->dir);
    run(f, 0, "merge-weights %s %s --max_shard_size 40KB", ckpt, merged);
    expect_log(f, "SHARDED_STATE_DICT");
    float **final = read_final(f, out);
    float **got = xh_read_export(f->desc, merged);
    xh_assert_params_equal(f->desc, got, final, "merged vs final.safetensors");
    sl_param_arrays_free(f->desc, got);
    /* the parent of the checkpoints, through its `latest` file, in 16 bits */
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints", ck);
    snprintf(merged16, sizeof merged16, "%s/merged16", f->dir);
    run(f, 0, "merge-weights %s %s --save_16bit", ckpt, merged16);
    expect_stored_as(f, merged16, SL_DTYPE_BF16);
    round_all(f->desc, final, SL_DTYPE_BF16);
    got = xh_read_export(f->desc, merged16);
    xh_assert_params_equal(f->desc, got, final, "merged bf16");
    sl_param_arrays_free(f->desc, got);
    sl_param_arrays_free(f->desc, final);
}

static void test_export_flags_refuse_bad_input_by_name(void **state) {
    fixture *f = *state;
    run(f, 2, "train " TRAIN_FLAGS " --steps 1 --save_16bit");
    expect_log(f, "--save_model");
    run(f, 2, "train " TRAIN_FLAGS " --steps 1 --save_model %s/x --max_shard_size 5XB", f->dir);
    expect_log(f, "--max_shard_size");
    expect_log(f, "5XB");
    run(f, 1, "train " TRAIN_FLAGS " --steps 1 --init_from %s/absent", f->dir);
    expect_log(f, "absent");
    /* the run directory holds the run's own files: an export there is refused, naming one */
    char out[300];
    snprintf(out, sizeof out, "%s/clash", f->dir);
    run(f, 1, "train " TRAIN_FLAGS " --steps 1 --out %s --save_model %s", out, out);
    expect_log(f, "refusing to replace");
    run(f, 1, "merge-weights %s %s/m", out, f->dir);
    expect_log(f, "is not a checkpoint");
    expect_log(f, out);
    run(f, 2, "merge-weights %s", out);
    expect_log(f, "CKPT_DIR and OUT_DIR");
    run(f, 2, "merge-weights %s %s/m --max_shard 5GB", out, f->dir);
    expect_log(f, "--max_shard");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_save_model_writes_the_final_masters),
        cmocka_unit_test(test_train_save_16bit_is_rne_of_the_masters),
        cmocka_unit_test(test_init_from_an_export_starts_from_the_saved_state),
        cmocka_unit_test(test_merge_weights_consolidates_a_sharded_checkpoint),
        cmocka_unit_test(test_export_flags_refuse_bad_input_by_name),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
